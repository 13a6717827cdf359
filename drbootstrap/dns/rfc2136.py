"""Dynamic DNS: register and remove the controller's name with RFC 2136 updates signed by TSIG.

Used where the spec asks for the master's address under a stable name on a site's own DNS
server (BIND, Knot, PowerDNS...). Secrets never appear in messages, exceptions or reprs.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import dns.exception
import dns.message
import dns.name
import dns.query
import dns.rcode
import dns.rdatatype
import dns.tsig
import dns.update

from drbootstrap.errors import DrbError

if TYPE_CHECKING:
    from drbootstrap.spec.models import DynamicDnsSpec

DEFAULT_TTL = 60
TSIG_ALGORITHMS = {
    "hmac-sha256": dns.tsig.HMAC_SHA256,
    "hmac-sha512": dns.tsig.HMAC_SHA512,
    "hmac-sha384": dns.tsig.HMAC_SHA384,
    "hmac-sha224": dns.tsig.HMAC_SHA224,
    "hmac-sha1": dns.tsig.HMAC_SHA1,
    "hmac-md5": dns.tsig.HMAC_MD5,
}


class DynamicDnsError(DrbError):
    """An RFC 2136 update or query did not do what was asked."""


class DnsKeyRefused(DynamicDnsError):
    """The server does not accept our TSIG key (BADKEY, BADSIG, BADTIME or NOTAUTH)."""


class DnsServerUnreachable(DynamicDnsError):
    """Nothing answered at the server's address and port."""


class DnsUpdateRefused(DynamicDnsError):
    """The server answered but refused the update (REFUSED, NOTZONE, SERVFAIL...)."""


@dataclass(frozen=True)
class TsigKey:
    """A TSIG key as BIND writes it: `key "NAME" { algorithm ALG; secret "BASE64"; };`."""

    name: str
    secret: str = field(repr=False)  # base64, as in named.conf / tsig-keygen output
    algorithm: str = "hmac-sha256"

    def __post_init__(self) -> None:
        if self.algorithm.lower() not in TSIG_ALGORITHMS:
            known = ", ".join(TSIG_ALGORITHMS)
            raise DynamicDnsError(
                f"TSIG key {self.name!r}: unknown algorithm {self.algorithm!r}", hint=f"use one of {known}"
            )
        try:
            base64.b64decode(self.secret, validate=True)
        except (binascii.Error, ValueError):
            raise DynamicDnsError(
                f"TSIG key {self.name!r}: the secret is not valid base64",
                hint="copy the `secret` value from tsig-keygen output",
            ) from None

    def keyring(self) -> dict[dns.name.Name, dns.tsig.Key]:
        name = dns.name.from_text(self.name)
        algorithm = TSIG_ALGORITHMS[self.algorithm.lower()]
        return {name: dns.tsig.Key(name, self.secret, algorithm)}


@dataclass(frozen=True)
class DnsServer:
    """Where updates and queries go: the zone's primary server."""

    host: str
    port: int = 53
    timeout: float = 5.0

    def __str__(self) -> str:
        return f"{self.host}:{self.port}"


@dataclass(frozen=True)
class DynamicDnsTarget:
    """Where the controller's name is registered: server, zone, the name, and the key to sign with."""

    server: DnsServer
    zone: str
    name: str
    key: TsigKey


def target_from_spec(spec: DynamicDnsSpec, master_hostname: str) -> DynamicDnsTarget:
    """The spec's `master.dynamic_dns` block as a target; reads the TSIG secret reference now."""
    key = TsigKey(
        name=str(spec.tsig_key_name),
        secret=spec.tsig_secret.reveal().strip(),
        algorithm=spec.tsig_algorithm,
    )
    return DynamicDnsTarget(
        DnsServer(str(spec.server), int(spec.port)), str(spec.zone), spec.name or master_hostname, key
    )


def absolute_name(name: str, zone: str) -> dns.name.Name:
    """`controller` in `demo.internal` -> `controller.demo.internal.`; FQDNs must lie in the zone."""
    origin = dns.name.from_text(zone)
    fqdn = dns.name.from_text(name, origin=origin) if not name.endswith(".") else dns.name.from_text(name)
    if not fqdn.is_subdomain(origin):
        raise DynamicDnsError(
            f"name {fqdn} is not inside zone {origin}", hint="give a name in the zone, or the zone that holds it"
        )
    return fqdn


def _address_type(address: str) -> str:
    try:
        return "AAAA" if ipaddress.ip_address(address).version == 6 else "A"
    except ValueError:
        raise DynamicDnsError(
            f"{address!r} is not an IP address", hint="give the master's IPv4 or IPv6 address"
        ) from None


def build_register_update(
    zone: str, name: str, address: str, key: TsigKey, ttl: int = DEFAULT_TTL
) -> dns.update.UpdateMessage:
    """An update that makes NAME resolve to exactly ADDRESS (any older address of that type goes)."""
    rdtype = _address_type(address)
    update = dns.update.UpdateMessage(zone, keyring=key.keyring(), keyalgorithm=TSIG_ALGORITHMS[key.algorithm.lower()])
    fqdn = absolute_name(name, zone)
    update.replace(fqdn, ttl, rdtype, address)
    return update


def build_replace_update(
    zone: str, name: str, rdtype: str, values: list[str], key: TsigKey, ttl: int = DEFAULT_TTL
) -> dns.update.UpdateMessage:
    """An update that makes NAME's RDTYPE records exactly VALUES (A, AAAA or CNAME; public failover)."""
    if rdtype not in ("A", "AAAA", "CNAME"):
        raise DynamicDnsError(f"record type {rdtype} is not managed here", hint="use A, AAAA or CNAME")
    if not values or (rdtype == "CNAME" and len(values) != 1):
        raise DynamicDnsError(f"{name}: {rdtype} needs {'exactly one target' if rdtype == 'CNAME' else 'a value'}")
    update = dns.update.UpdateMessage(zone, keyring=key.keyring(), keyalgorithm=TSIG_ALGORITHMS[key.algorithm.lower()])
    fqdn = absolute_name(name, zone)
    if rdtype == "CNAME":
        # A CNAME may not coexist with other data: clear the addresses in the same atomic update.
        update.delete(fqdn, "A")
        update.delete(fqdn, "AAAA")
        target = values[0] if values[0].endswith(".") else values[0] + "."
        update.replace(fqdn, ttl, "CNAME", target)
        return update
    for value in values:
        if _address_type(value) != rdtype:
            raise DynamicDnsError(f"{name}: {value!r} is not an {rdtype} address")
    update.delete(fqdn, "CNAME")
    update.replace(fqdn, ttl, rdtype, *values)
    return update


def build_remove_update(zone: str, name: str, key: TsigKey) -> dns.update.UpdateMessage:
    """An update that deletes NAME's A, AAAA and CNAME records (nothing else it may own)."""
    update = dns.update.UpdateMessage(zone, keyring=key.keyring(), keyalgorithm=TSIG_ALGORITHMS[key.algorithm.lower()])
    fqdn = absolute_name(name, zone)
    for rdtype in ("A", "AAAA", "CNAME"):
        update.delete(fqdn, rdtype)
    return update


def send_update(server: DnsServer, update: dns.update.UpdateMessage, key: TsigKey, what: str) -> None:
    """Send a signed update over TCP and turn every way it can fail into one clear line."""
    try:
        response = dns.query.tcp(update, server.host, port=server.port, timeout=server.timeout)
    except (dns.tsig.PeerBadKey, dns.tsig.PeerBadSignature, dns.tsig.PeerBadTime, dns.tsig.PeerError) as refused:
        raise _key_refused(server, key, what, type(refused).__name__) from None
    except (dns.tsig.BadSignature, dns.tsig.BadKey) as bad:
        raise _key_refused(server, key, what, f"unverifiable reply ({type(bad).__name__})") from None
    except dns.exception.Timeout:
        raise DnsServerUnreachable(
            f"{what}: no answer from DNS server {server} within {server.timeout:g} s",
            hint="check the server address, port and firewall",
        ) from None
    except OSError as error:
        raise DnsServerUnreachable(
            f"{what}: cannot reach DNS server {server}: {error.strerror or error}",
            hint="check the server address and port, and that it is running",
        ) from None
    rcode = response.rcode()
    if rcode == dns.rcode.NOERROR:
        return
    if rcode == dns.rcode.NOTAUTH and not response.had_tsig:
        raise _key_refused(server, key, what, "NOTAUTH")
    if rcode in (dns.rcode.NOTAUTH, dns.rcode.NOTZONE):
        # A correctly signed NOTAUTH: the key is fine, the server is not primary for this zone.
        raise DnsUpdateRefused(
            f"{what}: DNS server {server} is not authoritative for zone {update.origin} "
            f"({dns.rcode.to_text(rcode)})",
            hint="send updates to the zone's primary server, or fix the zone name",
        )
    raise DnsUpdateRefused(
        f"{what}: DNS server {server} answered {dns.rcode.to_text(rcode)}",
        hint="check that the zone exists there and its allow-update / update-policy names this key",
    )


def _key_refused(server: DnsServer, key: TsigKey, what: str, reason: str) -> DnsKeyRefused:
    return DnsKeyRefused(
        f"{what}: DNS server {server} refused TSIG key {key.name!r} ({reason})",
        hint="check the key name, algorithm and secret match the server's key statement",
    )


def register_address(
    server: DnsServer, zone: str, name: str, address: str, key: TsigKey, ttl: int = DEFAULT_TTL
) -> None:
    """Make NAME in ZONE resolve to ADDRESS on SERVER (replacing any older address)."""
    fqdn = absolute_name(name, zone)
    update = build_register_update(zone, name, address, key, ttl)
    send_update(server, update, key, f"registering {fqdn} -> {address}")


def replace_records(
    server: DnsServer, zone: str, name: str, rdtype: str, values: list[str], key: TsigKey, ttl: int = DEFAULT_TTL
) -> None:
    """Make NAME's RDTYPE records in ZONE exactly VALUES on SERVER, in one atomic update."""
    update = build_replace_update(zone, name, rdtype, values, key, ttl)
    send_update(server, update, key, f"setting {absolute_name(name, zone)} {rdtype} -> {', '.join(values)}")


def remove_name(server: DnsServer, zone: str, name: str, key: TsigKey) -> None:
    """Delete NAME's addresses from ZONE on SERVER (a name that is already gone is fine)."""
    fqdn = absolute_name(name, zone)
    send_update(server, build_remove_update(zone, name, key), key, f"removing {fqdn}")


def resolve_addresses(server: DnsServer, name: str, zone: str | None = None) -> list[str]:
    """The A and AAAA addresses SERVER gives for NAME; [] when the name does not exist."""
    fqdn = absolute_name(name, zone) if zone else dns.name.from_text(name)
    addresses: list[str] = []
    for rdtype in ("A", "AAAA"):
        query = dns.message.make_query(fqdn, rdtype)
        try:
            response = dns.query.udp(query, server.host, port=server.port, timeout=server.timeout)
        except dns.exception.Timeout:
            raise DnsServerUnreachable(
                f"querying {fqdn}: no answer from DNS server {server} within {server.timeout:g} s",
                hint="check the server address, port and firewall",
            ) from None
        except OSError as error:
            raise DnsServerUnreachable(f"querying {fqdn}: cannot reach DNS server {server}: {error}") from None
        if response.rcode() == dns.rcode.NXDOMAIN:
            return []
        if response.rcode() != dns.rcode.NOERROR:
            raise DynamicDnsError(
                f"querying {fqdn}: DNS server {server} answered {dns.rcode.to_text(response.rcode())}"
            )
        for rrset in response.answer:
            if rrset.name == fqdn and rrset.rdtype == dns.rdatatype.from_text(rdtype):
                addresses.extend(rdata.address for rdata in rrset)
    return addresses


def verify_registered(server: DnsServer, zone: str, name: str, address: str) -> None:
    """Raise unless NAME resolves to exactly ADDRESS on SERVER."""
    found = resolve_addresses(server, name, zone)
    if found != [address]:
        shown = ", ".join(found) or "nothing"
        raise DynamicDnsError(
            f"{absolute_name(name, zone)} resolves to {shown} on {server}, expected {address}",
            hint="run the registration again; another writer may own this name",
        )
