"""A session-wide private ActiveMQ for integration tests: `from tests.support.activemq import activemq`."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.prereq import require, require_binary, require_root


def start_test_broker(base_dir: Path, *, tls: bool = False):
    """Start a private broker under base_dir (caller stops it); skips/fails if ActiveMQ is absent."""
    require_root()
    require_binary("java")
    require(Path("/usr/share/activemq/bin/activemq.jar").exists(), "Debian's activemq package")
    from drbootstrap.broker import make_self_signed_keystore, start_broker

    material = make_self_signed_keystore(base_dir / "tls") if tls else None
    return start_broker(base_dir, tls=material)


@pytest.fixture(scope="session")
def activemq() -> Iterator:
    """One ActiveMQ (plain STOMP and stomp+ssl) shared by the whole test session."""
    base = Path(tempfile.mkdtemp(prefix="drb-amq-"))
    broker = None
    try:
        broker = start_test_broker(base, tls=True)
        yield broker
    finally:
        if broker is not None:
            broker.stop()
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="module")
def private_activemq() -> Iterator:
    """A broker of this module's own, for tests that kill and restart it."""
    base = Path(tempfile.mkdtemp(prefix="drb-amq-"))
    broker = None
    try:
        broker = start_test_broker(base)
        yield broker
    finally:
        if broker is not None:
            broker.stop()
        shutil.rmtree(base, ignore_errors=True)
