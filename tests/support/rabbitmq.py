"""A private RabbitMQ (rabbitmq_stomp) for integration tests: `from tests.support.rabbitmq import rabbitmq`."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.prereq import require, require_binary, require_root


def start_test_rabbitmq(base_dir: Path):
    """Start a private RabbitMQ node under base_dir (caller stops it); fails if RabbitMQ is absent."""
    require_root()
    require_binary("epmd")
    from drbootstrap.rabbitmq import RABBITMQ_SERVER, start_rabbitmq

    require(RABBITMQ_SERVER.exists(), "RabbitMQ (Debian `rabbitmq-server`)")
    return start_rabbitmq(base_dir)


@pytest.fixture(scope="module")
def rabbitmq() -> Iterator:
    """A RabbitMQ node of this module's own (plain STOMP on loopback)."""
    base = Path(tempfile.mkdtemp(prefix="drb-rabbit-"))
    broker = None
    try:
        broker = start_test_rabbitmq(base / "node")
        yield broker
    finally:
        if broker is not None:
            broker.stop()
        shutil.rmtree(base, ignore_errors=True)
