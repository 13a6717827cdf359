"""Helpers for the failover tests: an environment on two local-cloud sites (two networks) and a
real BIND 9 serving its public zone, updated through RFC 2136 with TSIG."""

from __future__ import annotations

import random
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import dns.message
import dns.query
import pytest

from drbootstrap.dns.rfc2136 import DnsServer, replace_records
from tests.integration.up.conftest import Environment, make_environment
from tests.support.bind import BindServer
from tests.support.prereq import require_binary

PRIMARY_TARGET = "192.0.2.10"
B_TARGET = "198.51.100.10"

SPEC = """
environment: demo
domain: demo.internal
provider: {name: local, network: 10.213.0.0/24, max_parallel: 8, rate: {per_second: 20, burst: 40}}
master: {hostname: controller, image: master, puppet: {mode: apply}}
nodes:
  - role: app
    image: worker
    hostnames: [app01]
    volumes:
      - {name: data, mount: /srv/app, size_gb: 1, backup: {pre_snapshot: sync}}
    checks:
      - {command: "true", timeout_seconds: 5}
sites:
  - {name: b, copy_backups: true, provider: {name: local, network: NETWORK_B}}
public_dns:
  provider: rfc2136
  zone: ZONE
  server: 127.0.0.1
  port: PORT
  tsig_key_name: KEYNAME
  credentials: {tsig_secret: "${file:tsig.secret}"}
  ttl: 30
  records:
    - {name: www, type: A, targets: {primary: PRIMARY_TARGET, b: B_TARGET}}
failover: {fence: stop}
"""


@pytest.fixture(scope="module")
def bind(tmp_path_factory: pytest.TempPathFactory):
    require_binary("named")
    with BindServer(tmp_path_factory.mktemp("bind"), zone="shop-failover.test") as server:
        yield server


def spec_text(bind: BindServer, network_b: str) -> str:
    text = SPEC
    for placeholder, value in (("NETWORK_B", network_b), ("ZONE", bind.zone), ("PORT", str(bind.port)),
                               ("KEYNAME", bind.key.name), ("PRIMARY_TARGET", PRIMARY_TARGET),
                               ("B_TARGET", B_TARGET)):
        text = text.replace(placeholder, value)
    return text


def two_site_environment(bind: BindServer, name: str, secret: str | None = None) -> Environment:
    """An environment whose primary site and site b are two networks of one local cloud; the TSIG
    secret (the server's, unless another is given) in a 0600 file beside the spec."""
    network_b = f"10.{random.randint(150, 199)}.{random.randint(0, 255)}.0/24"
    env = make_environment(spec_text(bind, network_b), name)
    secret_file = env.home / "tsig.secret"
    secret_file.touch(mode=0o600)
    secret_file.write_text((secret or bind.key.secret) + "\n")
    return env


def www(bind: BindServer) -> list[str]:
    query = dns.message.make_query(f"www.{bind.zone}.", "A")
    response = dns.query.udp(query, bind.host, port=bind.port, timeout=2)
    return sorted(r.address for rrset in response.answer for r in rrset)


def serial(bind: BindServer) -> int:
    query = dns.message.make_query(f"{bind.zone}.", "SOA")
    response = dns.query.udp(query, bind.host, port=bind.port, timeout=2)
    return int(response.answer[0][0].serial)


def point_www_at(bind: BindServer, address: str) -> None:
    replace_records(DnsServer(bind.host, bind.port), bind.zone, "www", "A", [address], bind.key, ttl=120)


@dataclass
class DnsWatch:
    """Polls www at BIND while a run goes on: (wall time, addresses) whenever the answer changes."""

    bind: BindServer
    seen: list[tuple[float, list[str]]] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)

    def __enter__(self) -> DnsWatch:
        self._thread = threading.Thread(target=self._poll, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _poll(self) -> None:
        while not self._stop.is_set():
            try:
                now = www(self.bind)
            except Exception:  # noqa: BLE001 - a lost UDP answer: ask again
                now = None
            if now is not None and (not self.seen or self.seen[-1][1] != now):
                self.seen.append((time.time(), now))
            time.sleep(0.1)

    def first_time_at(self, address: str) -> float | None:
        return next((at for at, values in self.seen if values == [address]), None)


def site_node_states(env: Environment, cloud_environment: str, network: str) -> dict[str, str]:
    """hostname -> libcloud state of the environment's nodes at one site (its cloud-side name)."""
    from drbootstrap.providers import get_node_driver
    from drbootstrap.providers.nodes import ENVIRONMENT_TAG, HOSTNAME_TAG, node_tags

    driver = get_node_driver("local", state_dir=env.home / "state", network=network,
                             images_dir=env.project / "images")
    return {node_tags(n)[HOSTNAME_TAG]: str(n.state) for n in driver.list_nodes()
            if node_tags(n).get(ENVIRONMENT_TAG) == cloud_environment}


def site_driver(env: Environment, network: str):
    from drbootstrap.providers import get_node_driver

    return get_node_driver("local", state_dir=env.home / "state", network=network, images_dir=env.project / "images")


def in_site_node(env: Environment, cloud_environment: str, network: str, hostname: str, command: str) -> str:
    """Run `command` inside `hostname` of one site (both sites have a node of that name)."""
    from drbootstrap.providers.nodes import ENVIRONMENT_TAG, HOSTNAME_TAG, node_tags

    driver = site_driver(env, network)
    node = next(n for n in driver.list_nodes() if node_tags(n).get(ENVIRONMENT_TAG) == cloud_environment
                and node_tags(n).get(HOSTNAME_TAG) == hostname)
    argv = driver.ex_enter_command(node, ["sh", "-c", command])
    return subprocess.run(argv, capture_output=True, text=True, timeout=60, check=True).stdout.strip()


def app_data(env: Environment, site: str, network: str, text: str | None = None) -> str:
    """app01's volume at `site`: write `text` into it (synced), or read what it holds."""
    from drbootstrap.paths import EnvironmentPaths

    cloud_environment = env.name if site == "primary" else f"{env.name}.{site}"
    volume = EnvironmentPaths(env.home / "state", env.name, site).nodes / "app01" / "root" / "srv" / "app"
    if text is not None:
        return in_site_node(env, cloud_environment, network, "app01", f"echo {text} > {volume}/data.txt && sync")
    return in_site_node(env, cloud_environment, network, "app01", f"cat {volume}/data.txt")


def run_json(env: Environment, *args: str, timeout: float = 1200) -> tuple[subprocess.CompletedProcess, list[dict]]:
    import json

    result = env.cli(*args, "--json", timeout=timeout)
    events = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    return result, events


def cleanup_sites(env: Environment) -> None:
    """Every node of both sites, then the whole local cloud of this state dir, then the files."""
    from tests.integration.up.conftest import tear_down

    tear_down(env)  # down at the primary, ex_cleanup of the state dir's cloud (both networks), rm -rf


__all__ = ["B_TARGET", "PRIMARY_TARGET", "DnsWatch", "Path", "app_data", "cleanup_sites", "point_www_at", "run_json",
           "serial", "site_node_states", "two_site_environment", "www"]
