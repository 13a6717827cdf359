"""The embedded local cloud: a libcloud NodeDriver (`local`) whose nodes are namespaces here.

A node is a network namespace (`drb-<prefix>-<n>`, eth0 = a veth on the network's bridge, the
host holding the network's first address; no default route, no forwarding, no NAT) plus its own
UTS namespace (hostname `ip-10-213-0-11` until renamed) and mount namespace (propagation private).

Private to each node: /run and /tmp (fresh tmpfs each boot), /sys (shows the node's interfaces),
/etc/hosts, /etc/resolv.conf and /etc/hostname (per-node files, kept across reboots; write them in
place, `mv` over them fails), and attached volumes. Everything else is the host's filesystem;
the checkout, images, state dir and Python environment stay visible at their own paths even when
they live under /tmp or /run (bound back over the private tmpfs).

Inside a node (fixed paths; the boot environment names them too):
  /run/drb-cloud/meta-data.json  instance-id, hostname, local-ipv4, addresses, tags, user-data
                                 ($DRB_CLOUD_METADATA)
  /run/drb-cloud/user-data       the raw user-data ($DRB_CLOUD_USERDATA)
  /run/drb-cloud/reboot          reboot this node from inside (returns at once)
  /run/drb-image/                the image directory; its boot.sh runs first on every boot
  $DRB_CLOUD_INSTANCE_ID, $DRB_CLOUD_FIRST_BOOT (1 on the first boot), $DRB_IMAGE_DIR
Boot: images/<image>/boot.sh every boot, then user-data: a `#!` script on the first boot only,
`#cloud-config` as in cloudinit.py. As on a real cloud the node is RUNNING while they run; the end
of its boot is node.extra["boot"] ("booting", then "finished" once both exited 0: start daemons in
the background). A non-zero status makes it ERROR (console tail in node.extra["error"]).
Output of everything goes to node.extra["console_log"]. Reboot stops every process in the node's
network namespace (daemons that left the group too: SIGTERM, SIGKILL after 2 s) and boots again
with fresh /run and /tmp; address, volumes and /etc files stay.

State: <state_dir>/local-cloud/ (state.json under an fcntl lock, nodes/, volumes/, snapshots/,
ns/ holding the bound UTS/mount namespace files).
"""

from drbootstrap.providers.local.driver import LocalNodeDriver

__all__ = ["LocalNodeDriver"]
