"""Built-in agents: discovery, rpcutil, reboot, puppet, dns."""
