"""Name service: dnsmasq on the master, dynamic DNS (RFC 2136) for the controller name."""
