# The web role: a page, and a small HTTP server (python3 http.server) kept running by Puppet.
class role::web {
  class { 'role::base': role => 'web' }
  $root = $drb::root
  $port = $facts['drb_web_port'] ? { undef => '8080', default => $facts['drb_web_port'] }
  $bind = $facts['drb_web_bind'] ? { undef => '0.0.0.0', default => $facts['drb_web_bind'] }

  file { ["${root}/srv", "${root}/srv/www"]:
    ensure => directory,
  }
  file { "${root}/srv/www/index.html":
    ensure  => file,
    content => "<html><body>${trusted['certname']} (web) is up</body></html>\n",
  }
  drb::daemon { 'web':
    command  => "python3 -m http.server ${port} --bind ${bind} --directory ${root}/srv/www",
    pid_file => "${drb::state_dir}/web.pid",
    log_file => "${drb::state_dir}/web.log",
    require  => File["${root}/srv/www/index.html"],
  }
}
