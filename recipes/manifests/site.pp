# Classify every node into one role: the drb_role fact wins, otherwise the node's name decides.
$drb_role_from_name = $trusted['certname'] ? {
  /^db\d*(\.|$)/   => 'db',
  /^web\d*(\.|$)/  => 'web',
  /^mail\d*(\.|$)/ => 'mail',
  /^(db|web|mail)-standby\d+(\.|$)/ => $1,  # a warm spare (spec `standby:`) takes its group's role
  default          => undef,
}
$drb_node_role = $facts['drb_role'] ? {
  undef   => $drb_role_from_name,
  ''      => $drb_role_from_name,
  default => $facts['drb_role'],
}

node default {
  if $drb_node_role {
    include "role::${drb_node_role}"
  } else {
    notice("drbootstrap: no role for ${trusted['certname']}; set the drb_role fact or name it db*, web* or mail*")
  }
}
