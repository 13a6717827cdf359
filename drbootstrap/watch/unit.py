"""The systemd unit that keeps `drbootstrap watch` running (`watch --print-unit`)."""

from __future__ import annotations

import shlex
from pathlib import Path


def systemd_unit(python: Path, spec_file: Path, state_dir: Path, environment: str) -> str:
    """A service unit running the watcher for one environment (`python -m drbootstrap`, the
    interpreter that has it installed), restarted when it dies."""
    command = shlex.join([str(python), "-m", "drbootstrap", "watch", str(spec_file), "--state-dir", str(state_dir)])
    return f"""[Unit]
Description=drbootstrap watch: keep environment {environment} alive
Wants=network-online.target
After=network-online.target

[Service]
Type=simple
ExecStart={command}
Restart=always
RestartSec=10
KillSignal=SIGTERM
TimeoutStopSec=30

[Install]
WantedBy=multi-user.target
"""
