# The database role: its data directory and the ready marker the spec's check looks for.
class role::db {
  class { 'role::base': role => 'db' }
  $root = $drb::root

  file { ["${root}/srv", "${root}/srv/db", "${root}/etc/db"]:
    ensure => directory,
  }
  file { "${root}/etc/db/db.conf":
    ensure  => file,
    mode    => '0640',
    content => "data_dir = ${root}/srv/db\nlisten = 0.0.0.0:5432\n",
  }
  file { "${root}/srv/db/ready":
    ensure  => file,
    content => "ready\n",
    require => File["${root}/etc/db/db.conf"],
  }
}
