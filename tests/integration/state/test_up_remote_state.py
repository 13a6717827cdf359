"""`up` with its state in a real moto S3 server, through the CLI, on the local cloud (a master and one
worker): two `up` at once (one refused naming the holder); a holder paused (SIGSTOP) while another
operator takes over and writes, then resumed: it writes not one journal entry and exits 16; the
new holder killed midway and its machine's state gone: a third operator, from the bucket alone,
waits out the lease with --take-over (first through an endpoint that never answers: exit 11 in one
line; then through one failing now and then: 500s and resets), resumes and converges with no node
twice. No object in the bucket holds a secret in clear text.

The local cloud keeps its nodes' files under the state directory (environments/<env>/nodes/ and
local-cloud/): those are the cloud, not the operator's state, so "the machine is gone" deletes
everything else of the environment's directory: journal, keys, reports.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import threading
import time
from pathlib import Path

import pytest

from tests.integration.state.conftest import all_objects, s3_block, versions
from tests.integration.up.conftest import E2E_GATE, make_environment, tear_down
from tests.integration.up.test_up_crash_and_failure import Run
from tests.support.s3_fault_proxy import ERROR_500, FLAKY, FORWARD, RESET, SILENT, s3_fault_proxy
from tests.support.secrets_scan import environment_secrets

pytestmark = [pytest.mark.integration, E2E_GATE]

SPEC = """
environment: demo
domain: demo.internal
provider: {name: local, network: 10.213.0.0/24, max_parallel: 4, rate: {per_second: 20, burst: 40}}
master: {hostname: controller, image: master, puppet: {mode: apply}}
nodes:
  - {role: web, image: worker, hostnames: [web01]}
"""
NAMES = ["controller", "web01"]
LEASE_SECONDS = 5


def _wait_for(seen, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = seen()
        if found:
            return found
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def _spec_through(env, bucket: str, endpoint: str, proxy: str, name: str, **settings) -> Path:
    """The same spec, its state: block reaching the same bucket through the proxy."""
    path = env.home / name
    path.write_text(env.spec_file.read_text().replace(
        s3_block(bucket, endpoint, lease_seconds=LEASE_SECONDS), s3_block(bucket, proxy, lease_seconds=LEASE_SECONDS,
                                                                          **settings)))
    return path


def _flap(proxy, stop: threading.Event) -> None:
    """Two seconds of 500s and resets in every five, until STOP."""
    while not stop.wait(3.0):
        proxy.set_mode(FLAKY)
        stop.wait(2.0)
        proxy.set_mode(FORWARD)


def test_two_operators_a_paused_holder_fenced_and_a_lost_machine_resumed_from_the_bucket(moto, bucket, state_key):
    name, client = bucket
    env = make_environment(SPEC + s3_block(name, moto.url, lease_seconds=LEASE_SECONDS), "upremote")
    journal_key = f"teams/ops/{env.name}/journal.json"
    runs: list[Run] = []

    def generations() -> list[int]:
        return [int(v["metadata"].get("generation", 0)) for v in versions(client, name, journal_key)]

    def start(*extra: str) -> Run:
        run = Run(env.start("up", str(env.spec_file), "--json", *extra))
        threading.Thread(target=run._read, daemon=True).start()
        runs.append(run)
        return run

    try:
        a = start()
        _wait_for(lambda: any(e.get("node") == "controller" and e.get("step") == "launch" and e["state"] == "done"
                              for e in a.events()), 300, "A's master launched")

        # Two operators at once: the second is refused, naming the holder.
        refused = env.cli("up", str(env.spec_file), "--plain", timeout=120)
        assert refused.returncode == 10, refused.stderr
        assert f"`up` by root (pid {a.process.pid} on " in refused.stderr and "up refused" in refused.stderr
        status = env.cli("status", str(env.spec_file), "--no-ping", timeout=120)
        assert f"state: held by `up` by root (pid {a.process.pid}" in status.stdout, status.stdout

        # A paused; B takes over once the lease expired and writes; A resumed writes nothing and exits 16.
        os.kill(a.process.pid, signal.SIGSTOP)
        a_generation = generations()[-1]
        time.sleep(LEASE_SECONDS + 1)
        b = start("--take-over")
        _wait_for(lambda: generations().count(a_generation + 1) >= 3, 300, "B's journal writes")
        # B is killed midway (its first step on web01) while A, resumed, finds it lost its lease.
        killer = threading.Thread(target=b.kill_when, args=(
            lambda e: e.get("node") == "web01" and e.get("state") == "running", 0.3), kwargs={"timeout": 600})
        killer.start()
        os.kill(a.process.pid, signal.SIGCONT)
        assert a.wait(timeout=600) == 16, "".join(a.output)[-3000:]
        line = [x for x in a.output if "lost its lease" in x]
        assert line and "generation" in line[-1] and "--take-over" in line[-1], a.output[-5:]
        history = generations()
        first_b = history.index(a_generation + 1)
        assert all(g == a_generation + 1 for g in history[first_b:]), history  # not one entry of A's after B's

        # B killed; its machine gone. The next operator waits out the lease and converges.
        killer.join(timeout=660)
        assert b.process.poll() == -signal.SIGKILL, "".join(b.output)[-2000:]
        for entry in env.paths.root.iterdir():
            if entry.name != "nodes":  # the local cloud's node files: the cloud's, not the operator's
                shutil.rmtree(entry) if entry.is_dir() else entry.unlink()
        expired = env.cli("up", str(env.spec_file), "--plain", timeout=120)
        assert expired.returncode == 10 and "--take-over" in expired.stderr, expired.stderr
        with s3_fault_proxy(moto.port) as proxy:
            # Its endpoint never answers: one line, exit 11, nothing changed.
            silent = _spec_through(env, name, moto.url, proxy.url, "silent.yaml", retry_seconds=2)
            proxy.set_mode(SILENT)
            unanswered = env.cli("up", str(silent), "--take-over", "--plain", timeout=300)
            assert unanswered.returncode == 11, unanswered.stdout[-2000:] + unanswered.stderr
            assert unanswered.stderr.count("\n") == 1 and "no good answer" in unanswered.stderr, unanswered.stderr
            # Then it answers, failing now and then (500s and resets): slower, nothing lost.
            flaky = _spec_through(env, name, moto.url, proxy.url, "flaky.yaml", retry_seconds=60)
            proxy.set_mode(FORWARD)
            stop = threading.Event()
            flapping = threading.Thread(target=_flap, args=(proxy, stop), daemon=True)
            flapping.start()
            try:
                final = env.cli("up", str(flaky), "--take-over", "--json", timeout=900)
            finally:
                stop.set()
                flapping.join()
            assert final.returncode == 0, final.stdout[-3000:] + final.stderr[-2000:]
            assert proxy.count(ERROR_500) and proxy.count(RESET), proxy.seen[-20:]
        result = json.loads(final.stdout.splitlines()[-1])
        assert result["failed"] == []
        assert env.live_hostnames() == NAMES  # none twice, none missing
        journal = json.loads(client.get_object(Bucket=name, Key=journal_key)["Body"].read())
        assert all(s["state"] == "done" for n in journal["nodes"].values() for s in n["steps"].values())
        assert any(k.startswith(f"teams/ops/{env.name}/reports/") for k in all_objects(client, name))
        status = env.cli("status", str(env.spec_file), "--no-ping", timeout=120)
        assert "state: free (last held by `up`" in status.stdout, status.stdout

        # No secret in clear text in any version of any object ever written to the bucket.
        known = environment_secrets(env.home / "state", env.name)
        assert known, "the run made no secret to look for"
        for key, bodies in all_objects(client, name).items():
            for body in bodies:
                leaked = [s.name for s in known if s.found_in(body)]
                assert not leaked, f"{key} holds {leaked} in clear text"
    finally:
        for run in runs:
            if run.process.poll() is None:
                os.kill(run.process.pid, signal.SIGCONT)
            run.stop()
        tear_down(env)
