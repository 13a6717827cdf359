"""RFC 2136 message construction: what the update says, how it is signed, what errors show."""

from __future__ import annotations

import base64
from types import SimpleNamespace

import dns.message
import dns.rdataclass
import dns.rdatatype
import pytest

from drbootstrap.dns.rfc2136 import (
    DynamicDnsError,
    TsigKey,
    absolute_name,
    build_register_update,
    build_remove_update,
    build_replace_update,
    target_from_spec,
)

SECRET = base64.b64encode(b"k" * 32).decode()
KEY = TsigKey("drb-key", SECRET)


def parsed(update) -> dns.message.Message:
    wire = update.to_wire()
    return dns.message.from_wire(wire, keyring=KEY.keyring())


def test_register_update_deletes_old_addresses_then_adds_the_new_one_in_the_zone():
    update = build_register_update("demo.internal", "controller", "10.213.0.2", KEY, ttl=30)

    assert str(update.zone[0].name) == "demo.internal."
    records = [(str(r.name), r.deleting, r.rdtype, r.ttl, [str(d) for d in r]) for r in update.update]
    assert records == [
        ("controller.demo.internal.", dns.rdataclass.ANY, dns.rdatatype.A, 0, []),
        ("controller.demo.internal.", None, dns.rdatatype.A, 30, ["10.213.0.2"]),
    ]


def test_register_update_uses_aaaa_for_an_ipv6_address():
    update = build_register_update("demo.internal", "controller", "fd00::2", KEY)

    assert {r.rdtype for r in update.update} == {dns.rdatatype.AAAA}


def test_update_is_signed_with_the_named_key_and_verifies():
    message = parsed(build_register_update("demo.internal", "controller", "10.213.0.2", KEY))

    assert message.had_tsig
    assert str(message.keyname) == "drb-key."


def test_remove_update_deletes_the_address_and_alias_records_of_the_name_only():
    update = build_remove_update("demo.internal", "controller.demo.internal.", KEY)

    assert [(str(r.name), r.deleting, r.rdtype) for r in update.update] == [
        ("controller.demo.internal.", dns.rdataclass.ANY, dns.rdatatype.A),
        ("controller.demo.internal.", dns.rdataclass.ANY, dns.rdatatype.AAAA),
        ("controller.demo.internal.", dns.rdataclass.ANY, dns.rdatatype.CNAME),
    ]


def test_cname_replacement_clears_addresses_in_the_same_update():
    update = build_replace_update("example.org", "www", "CNAME", ["web.site-b.example.org"], KEY)

    absolute = [
        (r.deleting, r.rdtype, [d.to_text(origin=update.origin, relativize=False) for d in r]) for r in update.update
    ]
    assert absolute == [
        (dns.rdataclass.ANY, dns.rdatatype.A, []),
        (dns.rdataclass.ANY, dns.rdatatype.AAAA, []),
        (dns.rdataclass.ANY, dns.rdatatype.CNAME, []),
        (None, dns.rdatatype.CNAME, ["web.site-b.example.org."]),
    ]


def test_address_replacement_sets_every_value_and_refuses_a_mismatched_type():
    update = build_replace_update("example.org", "www", "A", ["192.0.2.1", "192.0.2.2"], KEY)

    added = sorted(str(d) for r in update.update if r.deleting is None for d in r)
    assert added == ["192.0.2.1", "192.0.2.2"]
    with pytest.raises(DynamicDnsError, match="'2001:db8::1' is not an A address"):
        build_replace_update("example.org", "www", "A", ["2001:db8::1"], KEY)


def test_target_from_spec_reads_the_secret_and_defaults_the_name_to_the_master():
    secret = SimpleNamespace(reveal=lambda: SECRET + "\n")
    spec = SimpleNamespace(
        server="192.0.2.53", port=5353, zone="demo.example", name=None,
        tsig_key_name="drb-key", tsig_algorithm="hmac-sha512", tsig_secret=secret,
    )

    target = target_from_spec(spec, "controller")

    where = (target.server.host, target.server.port, target.zone, target.name)
    assert where == ("192.0.2.53", 5353, "demo.example", "controller")
    assert target.key == TsigKey("drb-key", SECRET, "hmac-sha512")


def test_name_outside_the_zone_is_an_error_naming_both():
    with pytest.raises(DynamicDnsError, match=r"controller\.elsewhere\. is not inside zone demo\.internal\."):
        absolute_name("controller.elsewhere.", "demo.internal")


def test_address_that_is_not_an_ip_is_an_error():
    with pytest.raises(DynamicDnsError, match="'controller' is not an IP address"):
        build_register_update("demo.internal", "x", "controller", KEY)


def test_key_repr_and_errors_never_show_the_secret():
    assert SECRET not in repr(KEY)
    with pytest.raises(DynamicDnsError) as bad_algorithm:
        TsigKey("k", SECRET, algorithm="rot13")
    assert SECRET not in str(bad_algorithm.value)


def test_key_with_a_secret_that_is_not_base64_is_refused_without_echoing_it():
    with pytest.raises(DynamicDnsError, match="not valid base64") as bad:
        TsigKey("k", "not base64 !!!")
    assert "not base64 !!!" not in str(bad.value)
