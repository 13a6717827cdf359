"""`python -m drbootstrap.providers.local.reboot NODE_ID --state-dir DIR`: what /run/drb-cloud/reboot runs.

It runs in the host's namespaces (the in-node command entered them), detached from the node, so
it survives the node's processes being stopped.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from drbootstrap.errors import DrbError
from drbootstrap.providers.local.driver import LocalNodeDriver


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="drbootstrap.providers.local.reboot")
    parser.add_argument("node_id")
    parser.add_argument("--state-dir", type=Path, required=True)
    parser.add_argument("--delay", type=float, default=0.5,
                        help="seconds to wait first, so the caller can send its reply")
    args = parser.parse_args(argv)
    driver = LocalNodeDriver(state_dir=args.state_dir)
    time.sleep(args.delay)
    console = args.state_dir / "local-cloud" / "nodes" / args.node_id / "console.log"
    try:
        _log(console, "drb-cloud: reboot requested from inside the node")
        driver.reboot_node(args.node_id)
    except DrbError as error:
        _log(console, f"drb-cloud: reboot failed: {error}")
        return 1
    return 0


def _log(console: Path, line: str) -> None:
    if console.parent.is_dir():
        with open(console, "a") as handle:
            handle.write(line + "\n")


if __name__ == "__main__":
    raise SystemExit(main())
