"""run_agents: several identities in one process switch the interpreter less often; one keeps the default."""

from __future__ import annotations

import sys

import pytest

from drbootstrap.agent import daemon


class StubServer:
    def __init__(self, config) -> None:
        self.config = config

    def start(self, *, wait=None) -> None:
        pass

    def stop(self) -> None:
        pass


@pytest.fixture
def restore_switch_interval():
    before = sys.getswitchinterval()
    yield before
    sys.setswitchinterval(before)


def test_several_identities_in_one_process_switch_every_tenth_of_a_second(monkeypatch, restore_switch_interval):
    monkeypatch.setattr(daemon, "AgentServer", StubServer)
    servers = daemon.run_agents(["a", "b"])  # type: ignore[list-item]  # the stub takes any config
    assert len(servers) == 2
    assert sys.getswitchinterval() == pytest.approx(daemon.SHARED_SWITCH_INTERVAL)


def test_one_identity_keeps_the_interpreters_default(monkeypatch, restore_switch_interval):
    monkeypatch.setattr(daemon, "AgentServer", StubServer)
    daemon.run_agents(["a"])  # type: ignore[list-item]
    assert sys.getswitchinterval() == restore_switch_interval
