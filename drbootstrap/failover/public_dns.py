"""The public records a failover moves: read them (values and TTL) from the zone's server, and
switch them to a site's targets with one RFC 2136 update each, signed with TSIG (dns/rfc2136.py).

The TSIG secret is read from the spec's reference when the records are built and lives only in
TsigKey (never in a repr, a message, the journal or the report).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import dns.exception
import dns.message
import dns.name
import dns.query
import dns.rcode
import dns.rdatatype
import dns.tsig

from drbootstrap.dns import rfc2136
from drbootstrap.dns.rfc2136 import DnsServer, DynamicDnsError, TsigKey
from drbootstrap.errors import DrbError
from drbootstrap.exit_status import ExitStatus
from drbootstrap.spec.models import EnvironmentSpec
from drbootstrap.spec.operations import DnsRecordSpec


class NoPublicDns(DrbError):
    """The spec has no `public_dns:` a failover could switch, or one this version cannot drive."""

    exit_status = ExitStatus.INVALID_SPEC


@dataclass(frozen=True)
class RecordState:
    """One public record as the server holds it: its name, type, values and TTL (None: absent)."""

    name: str
    type: str
    values: tuple[str, ...]
    ttl: int | None

    def describe(self) -> str:
        shown = ", ".join(self.values) or "(none)"
        return f"{self.name} {self.type} {shown}" + (f" (TTL {self.ttl} s)" if self.ttl is not None else "")


@dataclass(frozen=True)
class PublicDns:
    """The zone's server, its key, the TTL written, and the records the spec names."""

    server: DnsServer
    zone: str
    key: TsigKey = field(repr=False)
    ttl: int
    records: tuple[DnsRecordSpec, ...]

    def fqdn(self, record: DnsRecordSpec) -> str:
        name = "@" if record.name == "@" else record.name
        if name == "@":
            return str(dns.name.from_text(self.zone))
        return str(rfc2136.absolute_name(name, self.zone))


def public_dns_from_spec(spec: EnvironmentSpec) -> PublicDns:
    """The spec's `public_dns:` as something to query and update; reads the TSIG secret now."""
    public = spec.public_dns
    if public is None:
        raise NoPublicDns("the spec has no public_dns: nothing to switch on failover",
                          hint="add public_dns: with the records to move (see examples/README.md#public_dns)")
    if public.provider != "rfc2136":
        raise NoPublicDns(f"public_dns.provider {public.provider}: failover switches records through rfc2136 only",
                          hint="use provider: rfc2136 with server, tsig_key_name and credentials.tsig_secret")
    assert public.server is not None and public.tsig_key_name is not None  # the model requires them
    key = TsigKey(name=str(public.tsig_key_name), secret=public.credentials["tsig_secret"].reveal().strip(),
                  algorithm=public.tsig_algorithm)
    return PublicDns(DnsServer(str(public.server), int(public.port)), str(public.zone), key, public.ttl,
                     tuple(public.records))


def targets_at(public: PublicDns, site: str) -> list[tuple[DnsRecordSpec, str]]:
    """Each record with its target at `site`; a SpecError naming every record that has none."""
    missing = [record.name for record in public.records if site not in record.targets]
    if missing:
        raise NoPublicDns(f"public_dns.records: {', '.join(missing)} {'has' if len(missing) == 1 else 'have'} "
                          f"no target for site {site}; nothing switched",
                          hint=f"add `{site}: <address>` under each record's targets")
    return [(record, record.targets[site]) for record in public.records]


def check_key(public: PublicDns) -> int:
    """Ask the server for the zone's SOA signed with our key: its serial, or DnsKeyRefused when the
    server does not accept the key (nothing is changed either way)."""
    origin = dns.name.from_text(public.zone)
    query = dns.message.make_query(origin, "SOA")
    key = public.key
    query.use_tsig(key.keyring(), keyname=dns.name.from_text(key.name),
                   algorithm=rfc2136.TSIG_ALGORITHMS[key.algorithm.lower()])
    what = f"checking TSIG key {key.name!r} on zone {public.zone}"
    try:
        response = dns.query.tcp(query, public.server.host, port=public.server.port, timeout=public.server.timeout)
    except (dns.tsig.PeerError, dns.tsig.BadSignature, dns.tsig.BadKey, dns.message.UnknownTSIGKey) as refused:
        raise _refused(public, what, type(refused).__name__) from None
    except dns.exception.Timeout:
        raise rfc2136.DnsServerUnreachable(f"{what}: no answer from DNS server {public.server}",
                                           hint="check public_dns.server and port, and that it is running") from None
    except OSError as error:
        raise rfc2136.DnsServerUnreachable(f"{what}: cannot reach DNS server {public.server}: "
                                           f"{error.strerror or error}",
                                           hint="check public_dns.server and port, and that it is running") from None
    if response.rcode() == dns.rcode.NOTAUTH:
        raise _refused(public, what, "NOTAUTH")
    if response.rcode() != dns.rcode.NOERROR or not response.answer:
        raise DynamicDnsError(f"{what}: DNS server {public.server} answered {dns.rcode.to_text(response.rcode())}",
                              hint="check public_dns.zone is served there")
    return int(response.answer[0][0].serial)


def _refused(public: PublicDns, what: str, reason: str) -> rfc2136.DnsKeyRefused:
    return rfc2136.DnsKeyRefused(f"{what}: DNS server {public.server} refused the key ({reason}); nothing switched",
                                 hint="check public_dns.tsig_key_name, tsig_algorithm and the secret match "
                                      "the server's key statement")


def read_records(public: PublicDns) -> list[RecordState]:
    """Every record the spec names, as the server answers now (values and TTL)."""
    return [read_record(public, record) for record in public.records]


def read_record(public: PublicDns, record: DnsRecordSpec) -> RecordState:
    fqdn = public.fqdn(record)
    query = dns.message.make_query(fqdn, record.type)
    try:
        response = dns.query.udp(query, public.server.host, port=public.server.port, timeout=public.server.timeout)
    except (dns.exception.Timeout, OSError) as error:
        raise rfc2136.DnsServerUnreachable(f"reading {fqdn} {record.type}: no answer from DNS server "
                                           f"{public.server} ({type(error).__name__})",
                                           hint="check public_dns.server and port") from None
    if response.rcode() not in (dns.rcode.NOERROR, dns.rcode.NXDOMAIN):
        raise DynamicDnsError(f"reading {fqdn} {record.type}: DNS server {public.server} answered "
                              f"{dns.rcode.to_text(response.rcode())}")
    wanted = dns.rdatatype.from_text(record.type)
    for rrset in response.answer:
        if rrset.name == dns.name.from_text(fqdn) and rrset.rdtype == wanted:
            return RecordState(fqdn, record.type, tuple(sorted(rdata.to_text() for rdata in rrset)), int(rrset.ttl))
    return RecordState(fqdn, record.type, (), None)


def wanted_value(record: DnsRecordSpec, target: str) -> str:
    """How the server shows `target` once written (a CNAME's target is absolute)."""
    if record.type == "CNAME" and not target.endswith("."):
        return target + "."
    return target


def switch_record(public: PublicDns, record: DnsRecordSpec, target: str) -> None:
    """Make the record exactly `target`, in one signed update."""
    name = "@" if record.name == "@" else record.name
    rfc2136.replace_records(public.server, public.zone, public.zone + "." if name == "@" else name,
                            record.type, [target], public.key, ttl=public.ttl)
