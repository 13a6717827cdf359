# The mail role: the mail name and aliases a mail server would read, and its spool directory.
class role::mail {
  class { 'role::base': role => 'mail' }
  $root = $drb::root

  file { ["${root}/etc/mail", "${root}/var/spool", "${root}/var/spool/mail"]:
    ensure => directory,
  }
  file { "${root}/etc/mailname":
    ensure  => file,
    content => "${trusted['certname']}\n",
  }
  file { "${root}/etc/mail/aliases":
    ensure  => file,
    content => "postmaster: root\nabuse: root\n",
  }
}
