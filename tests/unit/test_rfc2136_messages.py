"""RFC 2136 message construction: what the update says, how it is signed, what errors show."""

from __future__ import annotations

import base64

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


def test_remove_update_deletes_a_and_aaaa_of_the_name_only():
    update = build_remove_update("demo.internal", "controller.demo.internal.", KEY)

    assert [(str(r.name), r.deleting, r.rdtype) for r in update.update] == [
        ("controller.demo.internal.", dns.rdataclass.ANY, dns.rdatatype.A),
        ("controller.demo.internal.", dns.rdataclass.ANY, dns.rdatatype.AAAA),
    ]


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
