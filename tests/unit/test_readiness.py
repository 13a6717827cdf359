"""The waits between nodes: a wait ends when what it waits for happened, or its node ended without it."""

from __future__ import annotations

import threading

import pytest

from drbootstrap.executor.readiness import Readiness, RunAborted
from drbootstrap.plan import Step


def _in_thread(call) -> tuple[threading.Thread, list]:
    out: list = []
    thread = threading.Thread(target=lambda: out.append(_outcome(call)), daemon=True)
    thread.start()
    return thread, out


def _outcome(call):
    try:
        return call()
    except RunAborted as aborted:
        return aborted


def test_a_wait_for_a_step_ends_when_the_node_reaches_it():
    readiness = Readiness()
    thread, out = _in_thread(lambda: readiness.wait_for_step("controller", Step.PUPPET_CA))
    thread.join(0.1)
    assert thread.is_alive()
    readiness.reached("controller", Step.SERVICES)
    thread.join(0.1)
    assert thread.is_alive()
    readiness.reached("controller", Step.PUPPET_CA)
    thread.join(2)
    assert out == [True]


@pytest.mark.parametrize(("ok", "expected"), [(True, True), (False, False)])
def test_a_node_that_ends_without_the_step_ends_the_wait_as_it_ended(ok, expected):
    readiness = Readiness()
    readiness.ended("controller", ok)
    assert readiness.wait_for_step("controller", Step.PUPPET_CA) is expected


def test_waiting_for_dependencies_names_those_that_failed():
    readiness = Readiness()
    thread, out = _in_thread(lambda: readiness.wait_for_ends({"db01", "db02"}))
    readiness.ended("db02", False)
    thread.join(0.1)
    assert thread.is_alive()
    readiness.ended("db01", True)
    thread.join(2)
    assert out == [["db02"]]
    assert readiness.wait_for_ends(set()) == []


def test_abort_releases_every_waiting_pipeline():
    readiness = Readiness()
    thread, out = _in_thread(lambda: readiness.wait_for_step("controller", Step.DISCOVER))
    readiness.abort()
    thread.join(2)
    assert isinstance(out[0], RunAborted)
