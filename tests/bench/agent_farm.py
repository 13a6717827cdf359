"""One process of a benchmark's agent fleet: the agents named on the command line, each an
AgentServer with its own STOMP connection, until SIGTERM. Prints `ready` once all are connected.

    python -m tests.bench.agent_farm BROKER_URL KEY_FILE BROKER_KIND PROTOCOL NAME...
    (PROTOCOL: native, or mcollective with KEY_FILE holding plugin.psk)
"""

from __future__ import annotations

import signal
import sys
import threading

from drbootstrap.agent.config import agent_config_from_dict
from drbootstrap.agent.daemon import run_agents


def main(argv: list[str]) -> int:
    url, key_file, kind, protocol, *names = argv
    configs = [agent_config_from_dict({"identity": name, "brokers": [url], "key_file": key_file, "protocol": protocol,
                                       "broker_kind": kind, "agents": ["discovery", "rpcutil"]}) for name in names]
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    servers = run_agents(configs, wait=120)
    print("ready", flush=True)
    try:
        stop.wait()
    finally:
        for server in servers:
            server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
