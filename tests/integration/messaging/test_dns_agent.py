"""The dns agent against a real dnsmasq: add/remove forward and reverse entries, checked with dnspython."""

from __future__ import annotations

import random
import secrets
import shutil
import tempfile
from pathlib import Path

import dns.message
import dns.query
import dns.rcode
import dns.reversename
import pytest

from drbootstrap.agent.daemon import run_agents
from drbootstrap.messaging.envelope import StatusCode
from tests.integration.messaging.conftest import node_config
from tests.support.prereq import require_binary, require_root

pytestmark = pytest.mark.integration

DOMAIN = "drb-dnsagent.internal"


@pytest.fixture(scope="module")
def master(fleet):
    require_root()
    require_binary("dnsmasq")
    from tests.support.dnsmasq import DnsmasqServer

    work = Path(tempfile.mkdtemp(prefix="drb-dnsagent-"))
    identity = f"master-{secrets.token_hex(3)}"
    try:
        with DnsmasqServer(work, domain=DOMAIN) as server:
            config = node_config(fleet.work, fleet.broker_url, fleet.key_file, identity, dns={
                "hosts_file": str(server.hosts_file), "dnsmasq_pid_file": str(work / "dnsmasq.pid"), "domain": DOMAIN,
            })
            servers = run_agents([config], wait=20)
            try:
                yield identity, server
            finally:
                servers[0].stop()
    finally:
        shutil.rmtree(work, ignore_errors=True)


def ask(server, name: str, rdtype: str):
    response = dns.query.udp(dns.message.make_query(name, rdtype), server.host, port=server.port, timeout=2)
    answers = [item.to_text() for rrset in response.answer for item in rrset]
    return dns.rcode.to_text(response.rcode()), answers


def settled(server, name: str, rdtype: str, expected):
    """dnsmasq re-reads on SIGHUP asynchronously: give it a moment before judging the answer."""
    import time

    deadline = time.monotonic() + 5
    while True:
        got = ask(server, name, rdtype)
        if got == expected or time.monotonic() > deadline:
            return got
        time.sleep(0.05)


def dns_call(fleet, identity, action, **data):
    with fleet.client() as client:
        result = client.call("dns", action, data, targets=[identity])
    assert result.responded == [identity]
    return result.replies[0]


def test_add_then_remove_changes_forward_and_reverse_answers(fleet, master):
    identity, server = master
    address = f"10.{random.randint(213, 250)}.{random.randint(0, 255)}.{random.randint(2, 254)}"
    reverse = dns.reversename.from_address(address).to_text()

    reply = dns_call(fleet, identity, "add", name="web01", address=address)
    assert reply.status_code == StatusCode.OK and reply.data["reloaded"] is True
    assert settled(server, f"web01.{DOMAIN}.", "A", ("NOERROR", [address])) == ("NOERROR", [address])
    assert settled(server, reverse, "PTR", ("NOERROR", [f"web01.{DOMAIN}."])) == ("NOERROR", [f"web01.{DOMAIN}."])

    reply = dns_call(fleet, identity, "remove", name="web01")
    assert reply.status_code == StatusCode.OK and reply.data["removed"]
    assert settled(server, f"web01.{DOMAIN}.", "A", ("NXDOMAIN", []))[1] == []
    assert settled(server, reverse, "PTR", ("NXDOMAIN", []))[1] == []


def test_invalid_name_is_refused_with_status_4_and_the_file_is_untouched(fleet, master):
    identity, server = master
    before = server.hosts_file.read_text()
    reply = dns_call(fleet, identity, "add", name="bad_name!", address="10.213.0.9")
    assert reply.status_code == StatusCode.INVALID_DATA
    assert server.hosts_file.read_text() == before


def test_remove_without_name_or_address_is_missing_data(fleet, master):
    identity, _ = master
    assert dns_call(fleet, identity, "remove").status_code == StatusCode.MISSING_DATA
