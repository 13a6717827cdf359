"""The master's dnsmasq configuration: the environment's names, forward and reverse, from one hosts file.

The dns agent edits the hosts file (drbootstrap.dns.hosts_file) and sends dnsmasq SIGHUP; this
module only renders the configuration dnsmasq starts with.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field
from pathlib import Path

from drbootstrap.errors import DrbError

_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")


class DnsmasqConfigError(DrbError):
    """A value that would make dnsmasq refuse to start or answer for the wrong names."""


@dataclass(frozen=True)
class DnsmasqSettings:
    """What the master's dnsmasq needs to know; paths are on the master."""

    domain: str  # the environment's domain: demo.internal
    listen_address: str  # the master's own address; dnsmasq binds only there
    hosts_file: Path  # ADDRESS FQDN SHORT lines, edited by the dns agent
    pid_file: Path
    port: int = 53
    upstream_servers: tuple[str, ...] = ()  # from the spec; none means answer locally only
    user: str | None = None  # None keeps dnsmasq's default (drops root); "root" in tests
    log_file: Path | None = None  # None logs to syslog
    local_ttl: int = 30  # short, so a renamed node is seen again quickly
    extra_lines: tuple[str, ...] = field(default=())

    def __post_init__(self) -> None:
        domain = self.domain.rstrip(".").lower()
        if not domain or not all(_LABEL.match(label) for label in domain.split(".")):
            raise DnsmasqConfigError(
                f"domain {self.domain!r} is not a valid DNS domain",
                hint="use lowercase labels of letters, digits and hyphens, e.g. demo.internal",
            )
        object.__setattr__(self, "domain", domain)
        _require_ip(self.listen_address, "listen address")
        for upstream in self.upstream_servers:
            _require_ip(upstream.split("#", 1)[0], "upstream server")
        if not 0 < self.port < 65536:
            raise DnsmasqConfigError(f"dnsmasq port {self.port} is out of range", hint="use 1-65535 (53 on a master)")


def _require_ip(value: str, what: str) -> None:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        raise DnsmasqConfigError(
            f"dnsmasq {what} {value!r} is not an IP address", hint="give an IPv4 or IPv6 address"
        ) from None


def render_dnsmasq_config(settings: DnsmasqSettings) -> str:
    """The dnsmasq.conf text for SETTINGS (pass it with `dnsmasq -C FILE`)."""
    s = settings
    lines = [
        f"# drbootstrap: dnsmasq for {s.domain}; generated, do not edit (names live in {s.hosts_file})",
        f"port={s.port}",
        f"listen-address={s.listen_address}",
        # Bind only the master's address: other resolvers (and other environments) may share the host.
        "bind-interfaces",
        f"pid-file={s.pid_file}",
        # Only the agent-owned file is the truth; the master's own /etc/hosts is not served.
        "no-hosts",
        f"addn-hosts={s.hosts_file}",
        f"domain={s.domain}",
        # Names in the domain are answered here or not at all: never leaked upstream.
        f"local=/{s.domain}/",
        "expand-hosts",
        "domain-needed",
        # Reverse lookups of private addresses not in the hosts file get NXDOMAIN, not forwarded.
        "bogus-priv",
        f"local-ttl={s.local_ttl}",
        # No DHCP: the cloud assigns addresses; dnsmasq serves names only.
        "no-dhcp-interface=",
        "no-resolv",
        "no-poll",
    ]
    lines += [f"server={upstream}" for upstream in s.upstream_servers]
    if s.user:
        lines.append(f"user={s.user}")
    if s.log_file is not None:
        lines.append(f"log-facility={s.log_file}")
    lines += list(s.extra_lines)
    return "\n".join(lines) + "\n"


def write_dnsmasq_config(settings: DnsmasqSettings, path: Path) -> None:
    """Write the rendered configuration, and an empty hosts file if there is none yet."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render_dnsmasq_config(settings))
    if not settings.hosts_file.exists():
        settings.hosts_file.parent.mkdir(parents=True, exist_ok=True)
        settings.hosts_file.write_text("")
