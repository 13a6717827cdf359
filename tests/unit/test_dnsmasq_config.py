"""The dnsmasq configuration renderer: local domain, one hosts file, no DHCP, upstream only if named."""

from __future__ import annotations

from pathlib import Path

import pytest

from drbootstrap.dns.dnsmasq_config import DnsmasqConfigError, DnsmasqSettings, render_dnsmasq_config


def settings(**overrides) -> DnsmasqSettings:
    values = dict(
        domain="demo.internal",
        listen_address="10.213.0.2",
        hosts_file=Path("/var/lib/drbootstrap/dns/hosts"),
        pid_file=Path("/run/drbootstrap/dnsmasq.pid"),
    )
    values.update(overrides)
    return DnsmasqSettings(**values)


def lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line and not line.startswith("#")]


def test_config_answers_the_domain_locally_from_the_agent_hosts_file():
    config = lines(render_dnsmasq_config(settings()))

    for expected in (
        "local=/demo.internal/",
        "domain=demo.internal",
        "expand-hosts",
        "addn-hosts=/var/lib/drbootstrap/dns/hosts",
        "no-hosts",
        "listen-address=10.213.0.2",
        "bind-interfaces",
        "pid-file=/run/drbootstrap/dnsmasq.pid",
        "port=53",
    ):
        assert expected in config


def test_without_upstream_servers_nothing_is_forwarded():
    config = lines(render_dnsmasq_config(settings()))

    assert "no-resolv" in config
    assert not [line for line in config if line.startswith("server=")]


def test_upstream_servers_named_in_the_spec_are_used_in_order():
    config = lines(render_dnsmasq_config(settings(upstream_servers=("10.0.0.53", "10.0.1.53#5353"))))

    assert [line for line in config if line.startswith("server=")] == ["server=10.0.0.53", "server=10.0.1.53#5353"]
    assert "no-resolv" in config  # the master's resolv.conf points at itself: never read it


def test_no_dhcp_is_configured():
    config = lines(render_dnsmasq_config(settings()))

    assert not [line for line in config if line.startswith("dhcp-range")]


def test_domain_is_normalised_to_lowercase_without_trailing_dot():
    assert "local=/demo.internal/" in render_dnsmasq_config(settings(domain="Demo.Internal."))


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"domain": "bad domain"}, "not a valid DNS domain"),
        ({"listen_address": "controller"}, "listen address 'controller' is not an IP address"),
        ({"upstream_servers": ("dns.example",)}, "upstream server 'dns.example' is not an IP address"),
        ({"port": 0}, "port 0 is out of range"),
    ],
)
def test_invalid_settings_are_refused_with_a_clear_message(overrides, message):
    with pytest.raises(DnsmasqConfigError, match=message):
        settings(**overrides)
