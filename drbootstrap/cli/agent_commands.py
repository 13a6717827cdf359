"""`drbootstrap agent`: run the node agent (one or more identities) until SIGTERM/SIGINT, then exit
within 2 s whatever its actions are doing."""

from __future__ import annotations

import logging
import os
import select
import signal
import sys
import threading
from pathlib import Path
from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:  # the agent is imported only when the command runs
    from drbootstrap.agent.daemon import AgentServer


@click.command("agent")
@click.option(
    "--config", "config_paths", multiple=True, required=True, type=click.Path(path_type=Path),
    help="Agent config YAML; repeat to run several identities in this one process.",
)
@click.option("--identity", help="Override the identity (only with a single --config).")
@click.option(
    "--broker", "brokers", multiple=True, help="Override the broker list: stomp[+ssl]://HOST:PORT (repeatable)."
)
@click.option("-v", "--verbose", is_flag=True, help="Log requests at INFO level.")
def agent(config_paths: tuple[Path, ...], identity: str | None, brokers: tuple[str, ...], verbose: bool) -> int:
    """Run the node agent: answer RPC requests from the broker until stopped.

    \b
    Examples:
      drbootstrap agent --config /var/lib/drbootstrap/node/agent.yaml
      drbootstrap agent --config a.yaml --config b.yaml -v     # two identities, one process
    """
    from drbootstrap.agent.config import load_agent_config
    from drbootstrap.agent.daemon import run_agents

    configs = [load_agent_config(path) for path in config_paths]
    if identity:
        if len(configs) != 1:
            raise click.UsageError("--identity needs exactly one --config")
        configs[0].identity = identity
    for config in configs:
        if brokers:
            config.brokers = list(brokers)
    _setup_logging(configs[0].log_file, verbose)
    for config in configs:
        if config.pid_file:
            Path(config.pid_file).parent.mkdir(parents=True, exist_ok=True)
            Path(config.pid_file).write_text(f"{os.getpid()}\n")

    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    servers = run_agents(configs)
    logging.getLogger("drbootstrap.agent").info("agent running for %s", ", ".join(c.identity for c in configs))
    try:
        _wait_for(stop)
    finally:
        try:
            _stop_within(servers, SHUTDOWN_SECONDS)
        finally:
            for config in configs:
                if config.pid_file:
                    Path(config.pid_file).unlink(missing_ok=True)
    return 0


def _wait_for(stop: threading.Event) -> None:
    """Block until a signal handler sets `stop`. Not stop.wait(): a signal the kernel hands to one
    of the other threads does not wake the main thread from a lock wait, so SIGTERM could sit
    unhandled; the wakeup fd is written whichever thread receives it, and select() sees it."""
    read_end, write_end = os.pipe()
    os.set_blocking(write_end, False)
    previous = signal.set_wakeup_fd(write_end)
    try:
        while not stop.is_set():
            select.select([read_end], [], [])
            os.read(read_end, 512)
    finally:
        signal.set_wakeup_fd(previous)
        os.close(read_end)
        os.close(write_end)


SHUTDOWN_SECONDS = 1.5  # SIGTERM to exit within 2 s, whatever an action or the broker is doing


def _stop_within(servers: list[AgentServer], seconds: float) -> None:
    """Stop every server; if that is not done in `seconds` (a wedged action, a broker that does not
    answer DISCONNECT), exit now: actions run on daemon threads and hold nothing to flush."""
    def stop_all() -> None:
        for server in servers:
            server.stop()

    stopper = threading.Thread(target=stop_all, name="agent-stop", daemon=True)
    stopper.start()
    stopper.join(seconds)
    if stopper.is_alive():
        logging.getLogger("drbootstrap.agent").warning("agent: stopping took over %.1f s; exiting anyway", seconds)
        for server in servers:
            if server.config.pid_file:
                Path(server.config.pid_file).unlink(missing_ok=True)
        logging.shutdown()
        os._exit(0)


def _setup_logging(log_file: str | None, verbose: bool) -> None:
    handler: logging.Handler = logging.FileHandler(log_file) if log_file else logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.addHandler(handler)
    root.setLevel(logging.INFO if verbose else logging.WARNING)
    logging.getLogger("stomp.py").setLevel(logging.CRITICAL)  # per-attempt noise; we log reconnects


@click.command("keygen")
@click.argument("private_key", type=click.Path(path_type=Path))
def keygen(private_key: Path) -> int:
    """Write an ed25519 key pair: PRIVATE_KEY (PEM, 0600) and its .pub beside it.

    The file stem is the key id: copy the .pub into the other side's trusted keys directory, and
    name the caller in agent policies as key=<stem>.

    \b
    Examples:
      drbootstrap keygen keys/operator.pem      # key id: operator
    """
    from drbootstrap.messaging.security import generate_ed25519_key

    if private_key.exists():
        raise click.UsageError(f"{private_key} exists; choose another path or remove it first")
    private_key.parent.mkdir(parents=True, exist_ok=True)
    public = generate_ed25519_key(private_key)
    click.echo(f"wrote {private_key} (0600) and {public}; key id {private_key.stem}")
    return 0
