"""One process of agents for the broker-cluster tests: the agents named on the command line, each
an AgentServer connected to the cluster through the whole broker list, until SIGTERM. Prints
`ready` once all are connected, then `reconnected NAME UNIX_TIME` each time one fails over.

    python -m tests.support.cluster_agent_farm BROKER_URL,BROKER_URL,... KEY_FILE NAME...
"""

from __future__ import annotations

import logging
import re
import signal
import sys
import threading
import time

from drbootstrap.agent.config import agent_config_from_dict
from drbootstrap.agent.daemon import run_agents


class _Reconnections(logging.Handler):
    """The transport's "NAME: reconnected to the broker" warning, as one line with its time."""

    def emit(self, record: logging.LogRecord) -> None:
        found = re.match(r"(\S+): reconnected to the broker", record.getMessage())
        if found:
            print(f"reconnected {found.group(1)} {time.time():.3f}", flush=True)


def main(argv: list[str]) -> int:
    urls, key_file, *names = argv
    logging.getLogger("drbootstrap.transport").addHandler(_Reconnections())
    logging.getLogger("drbootstrap").addHandler(logging.StreamHandler())  # warnings to stderr, as before
    configs = [agent_config_from_dict({"identity": name, "brokers": urls.split(","), "key_file": key_file,
                                       "broker_kind": "rabbitmq", "agents": ["discovery", "rpcutil"]})
               for name in names]
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
