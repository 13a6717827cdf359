"""Built-in agents: discovery, rpcutil, reboot, puppet, dns, backup, dumps, broker_node."""
