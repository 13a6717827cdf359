"""Speed of the master's name and copy paths: RFC 2136 against BIND, dnsmasq reload, SSH push, user-data.

Run: python -m pytest tests/bench/bench_dns_ssh.py -s   (root; prints a table for RESULTS.md)
"""

from __future__ import annotations

import statistics
import time

import dns.message
import dns.query
import pytest

from drbootstrap.dns.rfc2136 import DnsServer, register_address, remove_name, resolve_addresses
from drbootstrap.images.userdata import NodeBootConfig, render_user_data
from drbootstrap.paths import project_root
from drbootstrap.ssh import SshTarget, parse_console_host_keys, push_tree
from tests.support.bind import BindServer
from tests.support.dnsmasq import DnsmasqServer
from tests.support.prereq import require_binary, require_root
from tests.support.sshd import SshServer

pytestmark = pytest.mark.bench


def timed(action, rounds: int) -> list[float]:
    samples = []
    for _ in range(rounds):
        start = time.perf_counter()
        action()
        samples.append(time.perf_counter() - start)
    return samples


def report(what: str, samples: list[float]) -> None:
    ms = [s * 1000 for s in samples]
    print(f"| {what} | {statistics.median(ms):.1f} ms | {min(ms):.1f} ms | {max(ms):.1f} ms | {len(ms)} |")


def test_bench_dns_ssh_userdata(tmp_path):
    require_root()
    require_binary("named", "dnsmasq", "sshd")
    print("\n| what | median | min | max | n |\n| --- | --- | --- | --- | --- |")

    start = time.perf_counter()
    with BindServer(tmp_path / "bind") as bind:
        report("named start until it answers SOA", [time.perf_counter() - start])
        server = DnsServer(bind.host, bind.port)

        def register_and_check() -> None:
            register_address(server, bind.zone, "controller", "10.213.0.2", bind.key)
            assert resolve_addresses(server, "controller", bind.zone) == ["10.213.0.2"]
            remove_name(server, bind.zone, "controller", bind.key)

        report("RFC 2136 register + resolve + remove (TSIG, TCP)", timed(register_and_check, 50))

    with DnsmasqServer(tmp_path / "dnsmasq") as dnsmasq:
        counter = iter(range(1000))

        def add_name_until_visible() -> None:
            n = next(counter)
            with dnsmasq.hosts_file.open("a") as hosts:
                hosts.write(f"10.213.9.{n % 250 + 1} n{n}.{dnsmasq.domain} n{n}\n")
            dnsmasq.reload()
            query = dns.message.make_query(f"n{n}.{dnsmasq.domain}.", "A")
            while not dns.query.udp(query, dnsmasq.host, port=dnsmasq.port, timeout=2).answer:
                time.sleep(0.002)

        report("dnsmasq: hosts line + SIGHUP until it resolves", timed(add_name_until_visible, 20))

    with SshServer(tmp_path / "sshd") as sshd:
        target = SshTarget(
            sshd.host, parse_console_host_keys(sshd.console_output()), sshd.client_key, port=sshd.port
        )
        recipes = project_root() / "recipes"
        files = sum(1 for p in recipes.rglob("*") if p.is_file())
        counter2 = iter(range(100))
        samples = timed(lambda: push_tree(target, recipes, str(tmp_path / f"pushed{next(counter2)}")), 5)
        report(f"SSH connect (pinned key) + push recipes/ ({files} files)", samples)

    worker = NodeBootConfig(
        environment="demo", domain="demo.internal", hostname="web01", role="web", image="worker",
        master_address="10.213.0.2", broker_host="10.213.0.2", agent_key="k" * 64, autosign_token="t" * 32,
        embed_boot_script=(project_root() / "images/worker/boot.sh").read_text(),
    )
    report("render worker user-data (boot.sh embedded)", timed(lambda: render_user_data(worker), 200))
    print(f"worker user-data size with boot.sh embedded: {len(render_user_data(worker))} bytes")
