"""ActiveMQ's defaults hold 5,000 agents (tests/bench/bench_scale.py): NIO STOMP connectors, room
for 10,000 connections, a 1 GB heap ceiling, and the broker's open-file limit raised before start."""

from __future__ import annotations

import resource
import subprocess
import sys
from pathlib import Path

from drbootstrap.broker import HEAP_MB, MAX_CONNECTIONS, BrokerConfig, BrokerTls, render_activemq_xml
from tests.support.prereq import REPO_ROOT


def test_connectors_are_nio_with_room_for_5000_agents(tmp_path):
    tls = BrokerTls(tmp_path / "ks.p12", "pw", tmp_path / "cert.pem")
    xml = render_activemq_xml(BrokerConfig(base_dir=tmp_path, port=61613, tls=tls, tls_port=61614))
    assert 'uri="stomp+nio://127.0.0.1:61613?maximumConnections=10000&amp;' in xml
    assert 'uri="stomp+nio+ssl://127.0.0.1:61614?maximumConnections=10000&amp;' in xml
    assert MAX_CONNECTIONS >= 5_000 * 2
    assert BrokerConfig(base_dir=Path("x")).heap_mb == HEAP_MB == 1024


def test_open_files_limit_raises_the_soft_limit_to_the_hard_one():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    low = min(1024, soft, hard)
    code = ("import resource; from drbootstrap.broker import open_files_limit\n"
            f"resource.setrlimit(resource.RLIMIT_NOFILE, ({low}, {hard}))\n"
            "open_files_limit(); print(resource.getrlimit(resource.RLIMIT_NOFILE)[0])")
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, check=True)
    expected = 65_536 if hard == resource.RLIM_INFINITY else min(hard, 65_536)
    assert int(done.stdout) == max(low, expected)
