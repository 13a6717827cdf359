"""`up` killed with SIGKILL at several points converges to exactly the spec's nodes; a node whose image
fails to boot fails alone, and `up --only FAILED` completes the environment once the image is fixed."""

from __future__ import annotations

import os
import shutil
import signal
import time

import pytest

from tests.integration.up.conftest import E2E_GATE, PROJECT, make_environment, tear_down

pytestmark = [pytest.mark.integration, E2E_GATE]

APPLY_SPEC = """
environment: demo
domain: demo.internal
provider: {name: local, network: 10.213.0.0/24, max_parallel: 8, rate: {per_second: 20, burst: 40}}
master: {hostname: controller, image: master, puppet: {mode: apply}}
nodes:
  - {role: db, image: IMAGE, hostnames: [db01]}
  - {role: web, image: worker, count: 2, hostname_pattern: "web{n:02}", after: [db]}
  - {role: mail, image: worker, hostnames: [mail01]}
"""
NAMES = ["controller", "db01", "mail01", "web01", "web02"]


def _kill_after(process, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.1)
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGKILL)  # the process group we started
    process.wait(timeout=30)


def test_up_killed_at_several_points_converges_without_duplicates_or_orphans():
    env = make_environment(APPLY_SPEC.replace("IMAGE", "worker"), "upcrash")
    try:
        for delay in (0.3, 2.0, 6.0, 12.0):  # during launch, boot, names/discovery, Puppet
            _kill_after(env.start("up", str(env.spec_file), "--plain"), delay)
            hostnames = env.live_hostnames()
            assert len(hostnames) == len(set(hostnames)), hostnames
        final = env.cli("up", str(env.spec_file), "--plain")
        assert final.returncode == 0, final.stdout[-3000:]
        assert env.live_hostnames() == NAMES
        assert all(n.name in NAMES for n in env.driver().list_nodes())
    finally:
        tear_down(env)


def test_node_whose_image_fails_to_boot_fails_alone_and_only_failed_completes_after_the_fix():
    env = make_environment(APPLY_SPEC.replace("IMAGE", "broken"), "upfail")
    project = env.home / "project"  # a copy of the project whose `broken` image cannot boot
    shutil.copytree(PROJECT / "images", project / "images")
    (project / "recipes").symlink_to(PROJECT / "recipes")
    (project / "images" / "broken").mkdir()
    (project / "images" / "broken" / "boot.sh").write_text("#!/bin/sh\necho 'broken image: no kernel'\nexit 1\n")
    env.project = project
    try:
        first = env.cli("up", str(env.spec_file), "--plain")
        assert first.returncode == 7, first.stdout[-3000:]
        assert "db01 failed at boot" in first.stdout and "broken image: no kernel" in first.stdout
        assert "web01 blocked" in first.stdout and "mail01" not in first.stdout.split("nodes not up")[1]
        shutil.copy(PROJECT / "images" / "worker" / "boot.sh", project / "images" / "broken" / "boot.sh")
        second = env.cli("up", str(env.spec_file), "--only", "FAILED", "--plain")
        assert second.returncode == 0, second.stdout[-3000:]
        assert env.live_hostnames() == NAMES
    finally:
        tear_down(env)
