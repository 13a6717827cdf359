"""The rendered dnsmasq configuration, run by a real dnsmasq: forward, reverse, reload on SIGHUP."""

from __future__ import annotations

import time

import dns.message
import dns.query
import dns.rcode
import dns.reversename
import pytest

from tests.support.dnsmasq import DnsmasqServer
from tests.support.prereq import require_binary, require_root

pytestmark = pytest.mark.integration

DOMAIN = "drb-test.internal"


@pytest.fixture(scope="module")
def dnsmasq(tmp_path_factory):
    require_root()
    require_binary("dnsmasq")
    server = DnsmasqServer(tmp_path_factory.mktemp("dnsmasq"), domain=DOMAIN)
    server.hosts_file.parent.mkdir(parents=True, exist_ok=True)
    server.hosts_file.write_text(
        f"10.213.7.2 controller.{DOMAIN} controller\n"
        f"10.213.7.11 db01.{DOMAIN} db01\n"
    )
    with server:
        yield server


def ask(server: DnsmasqServer, name: str, rdtype: str) -> dns.message.Message:
    return dns.query.udp(dns.message.make_query(name, rdtype), server.host, port=server.port, timeout=3)


def answers(response: dns.message.Message) -> list[str]:
    return sorted(str(rdata) for rrset in response.answer for rdata in rrset)


def eventually(check, attempts: int = 50) -> None:
    """dnsmasq re-reads the file after the signal arrives: poll (bounded) instead of sleeping blind."""
    for _ in range(attempts):
        if check():
            return
        time.sleep(0.1)
    assert check()


def test_forward_lookup_of_fqdn_and_short_name_returns_the_address(dnsmasq):
    assert answers(ask(dnsmasq, f"db01.{DOMAIN}.", "A")) == ["10.213.7.11"]
    assert answers(ask(dnsmasq, "controller.", "A")) == ["10.213.7.2"]
    assert answers(ask(dnsmasq, f"controller.{DOMAIN}.", "A")) == ["10.213.7.2"]


def test_reverse_lookup_returns_the_fqdn(dnsmasq):
    response = ask(dnsmasq, dns.reversename.from_address("10.213.7.11").to_text(), "PTR")

    assert answers(response) == [f"db01.{DOMAIN}."]


def test_unknown_name_in_the_domain_is_answered_locally_as_nxdomain(dnsmasq):
    assert ask(dnsmasq, f"nobody.{DOMAIN}.", "A").rcode() == dns.rcode.NXDOMAIN


def test_unknown_private_address_has_no_name_and_is_not_forwarded(dnsmasq):
    response = ask(dnsmasq, dns.reversename.from_address("10.213.7.99").to_text(), "PTR")

    assert response.rcode() == dns.rcode.NXDOMAIN


def test_names_outside_the_domain_are_not_resolved_without_upstream(dnsmasq):
    response = ask(dnsmasq, "example.com.", "A")

    assert answers(response) == []
    assert response.rcode() in (dns.rcode.REFUSED, dns.rcode.SERVFAIL, dns.rcode.NXDOMAIN)


def test_edited_hosts_file_is_served_after_sighup(dnsmasq):
    with dnsmasq.hosts_file.open("a") as hosts:
        hosts.write(f"10.213.7.21 web01.{DOMAIN} web01\n")
    dnsmasq.reload()

    eventually(lambda: answers(ask(dnsmasq, f"web01.{DOMAIN}.", "A")) == ["10.213.7.21"])
    ptr = ask(dnsmasq, dns.reversename.from_address("10.213.7.21").to_text(), "PTR")
    assert answers(ptr) == [f"web01.{DOMAIN}."]


def test_name_removed_from_hosts_file_is_gone_after_sighup(dnsmasq):
    dnsmasq.hosts_file.write_text(f"10.213.7.2 controller.{DOMAIN} controller\n")
    dnsmasq.reload()

    eventually(lambda: ask(dnsmasq, f"db01.{DOMAIN}.", "A").rcode() == dns.rcode.NXDOMAIN)
    assert answers(ask(dnsmasq, f"controller.{DOMAIN}.", "A")) == ["10.213.7.2"]
