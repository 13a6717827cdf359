"""Atomic forward+reverse hosts-file entries for dnsmasq (drbootstrap.dns.hosts_file)."""

from __future__ import annotations

import pytest

from drbootstrap.dns.hosts_file import HostsFileError, add_entry, read_entries, remove_entry


def test_add_writes_fqdn_and_short_name_and_re_adding_is_idempotent(tmp_path):
    hosts = tmp_path / "hosts"
    add_entry(hosts, "web01", "10.213.0.5", domain="demo.internal")
    add_entry(hosts, "web01", "10.213.0.5", domain="demo.internal")
    assert [e.line() for e in read_entries(hosts)] == ["10.213.0.5 web01.demo.internal web01"]


def test_conflicting_name_or_address_needs_replace(tmp_path):
    hosts = tmp_path / "hosts"
    add_entry(hosts, "web01", "10.213.0.5", domain="d.internal")
    with pytest.raises(HostsFileError, match="conflicts"):
        add_entry(hosts, "web02", "10.213.0.5", domain="d.internal")
    add_entry(hosts, "web01", "10.213.0.9", domain="d.internal", replace=True)
    assert [e.line() for e in read_entries(hosts)] == ["10.213.0.9 web01.d.internal web01"]


def test_remove_by_name_or_address_keeps_the_rest(tmp_path):
    hosts = tmp_path / "hosts"
    add_entry(hosts, "a", "10.213.0.1", domain="d.internal")
    add_entry(hosts, "b", "10.213.0.2", domain="d.internal")
    assert len(remove_entry(hosts, name="a", domain="d.internal")) == 1
    assert remove_entry(hosts, address="10.213.0.7") == []
    assert [e.names[1] for e in read_entries(hosts)] == ["b"]


@pytest.mark.parametrize(
    "name, address", [("bad_name", "10.0.0.1"), ("-x", "10.0.0.1"), ("ok", "10.0.0.300"), ("ok", "x")]
)
def test_invalid_names_and_addresses_are_refused(tmp_path, name, address):
    with pytest.raises(HostsFileError):
        add_entry(tmp_path / "hosts", name, address)
    assert not (tmp_path / "hosts").exists() or read_entries(tmp_path / "hosts") == []
