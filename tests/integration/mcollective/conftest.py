"""One broker (the session's), one real mcollectived and two drbootstrap agents in compat mode per module."""

from __future__ import annotations

import secrets
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.mcollective import (
    Mcollectived,
    new_psk,
    start_mcollectived,
    write_mcollective_config,
)
from tests.support.prereq import require_binary, require_root


@dataclass
class McoPeers:
    broker_url: str
    psk_file: Path
    client_config: Path  # for `mco`
    daemon: Mcollectived  # the real mcollectived
    work: Path


@pytest.fixture(scope="module")
def mco(activemq) -> Iterator[McoPeers]:
    require_root()
    require_binary("mco", "mcollectived")
    work = Path(tempfile.mkdtemp(prefix="drb-mco-"))
    daemon = None
    try:
        psk = new_psk()
        suffix = secrets.token_hex(3)
        common = {"broker_host": activemq.host, "broker_port": activemq.port, "psk": psk}
        server_cfg = write_mcollective_config(
            work / "server.cfg", identity=f"legacy-{suffix}", facts={"role": "legacy"}, **common
        )
        client_cfg = write_mcollective_config(work / "client.cfg", identity=f"mco-client-{suffix}", **common)
        psk_file = work / "psk"
        psk_file.write_text(psk)
        psk_file.chmod(0o600)
        daemon = start_mcollectived(server_cfg, f"legacy-{suffix}")
        yield McoPeers(f"stomp://{activemq.host}:{activemq.port}", psk_file, client_cfg, daemon, work)
    finally:
        if daemon is not None:
            daemon.stop()
        shutil.rmtree(work, ignore_errors=True)
