# What every role has: a record of the role on the node, readable by checks and the agent.
class role::base (String $role) {
  include drb

  file { "${drb::root}/etc/drbootstrap/role":
    ensure  => file,
    mode    => '0644',
    content => "${role}\n",
  }
}
