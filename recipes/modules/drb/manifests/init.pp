# Shared settings: $drb::root prefixes every path a role writes (the drb_root fact, "" on a node).
class drb {
  $root = $facts['drb_root'] ? {
    undef   => '',
    default => $facts['drb_root'],
  }
  $state_dir = "${root}/var/lib/drbootstrap/roles"

  file { ["${root}/etc", "${root}/etc/drbootstrap", "${root}/var", "${root}/var/lib",
          "${root}/var/lib/drbootstrap", $state_dir]:
    ensure => directory,
  }
}
