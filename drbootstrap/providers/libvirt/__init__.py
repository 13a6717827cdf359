"""The `libvirt` provider: real KVM virtual machines on a libvirt host (qemu:///system), on libcloud's
libvirt driver with what it lacks added here: domains made from an image (a qcow2 overlay and a
cloud-init NoCloud seed), tags and static addresses kept in each domain's metadata, volumes as
virtio qcow2 disks, the serial console as a log file, and the environment's own isolated network.

Modules: provider (the Provider class), driver (the libcloud driver subclass), xml (the libvirt XML
it writes and reads), seed (the NoCloud seed ISO), network (the isolated network and its subnet).
"""
