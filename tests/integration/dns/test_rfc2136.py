"""RFC 2136 + TSIG against a real BIND 9 started for this module on a loopback port."""

from __future__ import annotations

import dns.message
import dns.query
import dns.rcode
import pytest

from drbootstrap.dns.rfc2136 import (
    DnsKeyRefused,
    DnsServer,
    DnsServerUnreachable,
    DnsUpdateRefused,
    TsigKey,
    register_address,
    remove_name,
    replace_records,
    resolve_addresses,
    verify_registered,
)
from tests.support.bind import BindServer, random_tsig_key
from tests.support.prereq import require_binary, require_root
from tests.support.server_process import free_port

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def bind(tmp_path_factory):
    require_root()
    require_binary("named")
    with BindServer(tmp_path_factory.mktemp("bind"), zone="drb-test.internal") as server:
        yield server


@pytest.fixture
def server(bind) -> DnsServer:
    return DnsServer(bind.host, bind.port, timeout=3.0)


def rcode_of(bind: BindServer, fqdn: str) -> int:
    response = dns.query.udp(dns.message.make_query(fqdn, "A"), bind.host, port=bind.port, timeout=3)
    return response.rcode()


def test_registered_name_resolves_to_the_address(bind, server):
    register_address(server, bind.zone, "controller", "10.213.0.2", bind.key)

    assert resolve_addresses(server, "controller", bind.zone) == ["10.213.0.2"]
    verify_registered(server, bind.zone, "controller", "10.213.0.2")


def test_registering_again_replaces_the_old_address(bind, server):
    register_address(server, bind.zone, "moved", "10.213.0.2", bind.key)
    register_address(server, bind.zone, "moved.drb-test.internal.", "10.213.0.9", bind.key)

    assert resolve_addresses(server, "moved", bind.zone) == ["10.213.0.9"]


def test_switching_a_name_from_addresses_to_an_alias_and_back(bind, server):
    replace_records(server, bind.zone, "www", "A", ["10.213.0.7", "10.213.0.8"], bind.key)
    assert sorted(resolve_addresses(server, "www", bind.zone)) == ["10.213.0.7", "10.213.0.8"]

    replace_records(server, bind.zone, "www", "CNAME", [f"ns.{bind.zone}"], bind.key)
    response = dns.query.udp(dns.message.make_query(f"www.{bind.zone}.", "CNAME"), bind.host, port=bind.port, timeout=3)
    assert [str(r) for rrset in response.answer for r in rrset] == [f"ns.{bind.zone}."]

    replace_records(server, bind.zone, "www", "A", ["10.213.0.9"], bind.key)
    assert resolve_addresses(server, "www", bind.zone) == ["10.213.0.9"]


def test_removed_name_is_nxdomain(bind, server):
    register_address(server, bind.zone, "gone", "10.213.0.3", bind.key)
    remove_name(server, bind.zone, "gone", bind.key)

    assert rcode_of(bind, f"gone.{bind.zone}.") == dns.rcode.NXDOMAIN
    assert resolve_addresses(server, "gone", bind.zone) == []


@pytest.mark.parametrize(
    "wrong_key",
    [
        pytest.param(lambda good: random_tsig_key(good.name), id="right-name-wrong-secret"),
        pytest.param(lambda good: random_tsig_key("unknown-key"), id="unknown-key-name"),
    ],
)
def test_wrong_key_is_refused_clearly_and_the_zone_is_unchanged(bind, server, wrong_key):
    bad: TsigKey = wrong_key(bind.key)

    with pytest.raises(DnsKeyRefused) as refused:
        register_address(server, bind.zone, "intruder", "10.213.0.66", bad)

    message = str(refused.value)
    assert "refused TSIG key" in message and bad.name in message and "\n" not in message
    assert bad.secret not in message and bind.key.secret not in message
    assert rcode_of(bind, f"intruder.{bind.zone}.") == dns.rcode.NXDOMAIN


def test_update_for_a_zone_the_server_does_not_serve_is_refused(bind, server):
    with pytest.raises(DnsUpdateRefused) as refused:
        register_address(server, "other.internal", "controller", "10.213.0.2", bind.key)

    assert "not authoritative for zone other.internal." in str(refused.value)


def test_update_to_a_zone_that_allows_no_updates_is_refused(bind, server):
    with pytest.raises(DnsUpdateRefused) as refused:
        register_address(server, bind.locked_zone, "controller", "10.213.0.2", bind.key)

    assert "answered REFUSED" in str(refused.value)
    assert rcode_of(bind, f"controller.{bind.locked_zone}.") == dns.rcode.NXDOMAIN


def test_unreachable_server_is_reported_with_its_address(bind):
    nobody = DnsServer("127.0.0.1", free_port(), timeout=1.0)

    with pytest.raises(DnsServerUnreachable) as unreachable:
        register_address(nobody, bind.zone, "controller", "10.213.0.2", bind.key)

    assert f"127.0.0.1:{nobody.port}" in str(unreachable.value)
