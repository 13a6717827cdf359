"""drbootstrap's own wire protocol: signed JSON envelopes on `drb.`-prefixed ActiveMQ destinations.

Envelope: {"v":1, "kind", "body": <exact JSON text that was signed>, "sig", "key_id", "scheme"}.
The `drb.` prefix and the `drb_protocol` header keep native traffic apart from MCollective's.
"""

from __future__ import annotations

import json
import logging
import re
import time
from dataclasses import asdict
from typing import Any

from drbootstrap.errors import SecurityError
from drbootstrap.messaging.envelope import FactFilter, Filter, Frame, Reply, Request, StatusCode, WireProtocol
from drbootstrap.messaging.naming import Destinations
from drbootstrap.messaging.replay import MAX_ID_LENGTH
from drbootstrap.messaging.security import (
    DEFAULT_CLOCK_SKEW,
    DEFAULT_MAX_MESSAGE_BYTES,
    DEFAULT_MAX_TTL,
    ReplayCache,
    Signer,
    check_size,
    check_ttl,
    replay_expiry,
)

log = logging.getLogger("drbootstrap.messaging")

PREFIX = "drb"
PROTOCOL_HEADER = "drb_protocol"
PROTOCOL_VERSION = "native-1"
IDENTITY_HEADER = "drb_identity"
REPLY_TTL = 60.0
_SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,252}$")


def safe_name(value: str, what: str) -> str:
    """Identities, agents and collectives go into destinations and selectors: keep them plain."""
    if not _SAFE_NAME.match(value or ""):
        raise SecurityError(f"{what} {str(value)[:80]!r} may only hold letters, digits, '.', '_' and '-'")
    return value


class NativeProtocol(WireProtocol):
    """Signs what it encodes; verifies size, signature, structure and TTL (both ways) on decode;
    replies are also checked against this end's replay cache."""

    name = "native"

    def __init__(
        self,
        signer: Signer,
        *,
        clock_skew: float = DEFAULT_CLOCK_SKEW,
        max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
        replay_cache: ReplayCache | None = None,
        max_ttl: float = DEFAULT_MAX_TTL,
        broker_kind: str = "activemq",
    ) -> None:
        self.destinations = Destinations("native", broker_kind)
        self.signer = signer
        self.clock_skew = clock_skew
        self.max_message_bytes = max_message_bytes
        self.max_ttl = max_ttl
        self.replay_cache = replay_cache or ReplayCache()  # for replies this end receives

    # -- destinations -------------------------------------------------------------------------

    # -- destinations (messaging.naming: per broker kind) ------------------------------------

    def broadcast_destination(self, agent: str, collective: str) -> str:
        return self.destinations.broadcast(safe_name(agent, "agent"), safe_name(collective, "collective"))

    def reply_destination(self, client_identity: str, collective: str) -> str:
        return self.destinations.reply(safe_name(client_identity, "client id"), safe_name(collective, "collective"))

    def reply_endpoints(self, client_identity: str, collective: str) -> tuple[str, tuple[str, dict[str, str]]]:
        return self.destinations.reply_endpoints(safe_name(client_identity, "client id"),
                                                 safe_name(collective, "collective"))

    def server_subscriptions(
        self, identity: str, agents: list[str], collective: str
    ) -> list[tuple[str, dict[str, str]]]:
        return self.destinations.server_subscriptions(
            safe_name(identity, "identity"), [safe_name(agent, "agent") for agent in agents],
            safe_name(collective, "collective"))

    # -- requests -----------------------------------------------------------------------------

    def request_frames(self, request: Request) -> list[Frame]:
        body = self._seal("request", _request_body(request))
        if not request.targets:
            return [Frame(self.broadcast_destination(request.agent, request.collective), body, self._headers())]
        collective = safe_name(request.collective, "collective")
        frames = []
        for target in request.targets:
            destination, selecting = self.destinations.direct(safe_name(target, "identity"), collective)
            frames.append(Frame(destination, body, {**self._headers(), **selecting}))
        return frames

    def decode_request(self, body: bytes, headers: dict[str, str]) -> Request:
        """Size, envelope, signature, body structure, TTL; the receiver then authorises, checks
        replay (only then, so an unauthorised caller cannot fill its cache) and evaluates filters."""
        payload, key_id = self._open(body, "request")
        try:
            request = _request_from(payload)
        except (KeyError, TypeError, ValueError) as error:
            raise SecurityError(f"malformed request body ({type(error).__name__}: {error})") from error
        check_ttl(request.created_at, request.ttl, skew=self.clock_skew, max_ttl=self.max_ttl)
        if not self.destinations.reply_allowed(request.reply_to, request.collective):
            raise SecurityError(f"reply-to {request.reply_to[:80]!r} is not a drbootstrap reply queue")
        request.caller_id = f"key={key_id}"  # who signed it, not who it claims to be
        return request

    # -- replies ------------------------------------------------------------------------------

    def reply_frame(self, reply: Reply, request: Request) -> Frame:
        payload = asdict(reply)
        payload["status_code"] = int(reply.status_code)
        payload["created_at"] = reply.created_at or time.time()
        return Frame(request.reply_to, self._seal("reply", payload), self._headers())

    def decode_reply(self, body: bytes, headers: dict[str, str]) -> Reply:
        payload, _ = self._open(body, "reply")
        try:
            reply = Reply(
                request_id=str(payload["request_id"]),
                sender_id=str(payload["sender_id"]),
                agent=str(payload["agent"]),
                action=str(payload.get("action", "")),
                status_code=StatusCode(int(payload["status_code"])),
                status_message=str(payload.get("status_message", "")),
                data=dict(payload.get("data") or {}),
                created_at=float(payload["created_at"]),
            )
        except (KeyError, TypeError, ValueError, AttributeError) as error:
            raise SecurityError(f"malformed reply body ({type(error).__name__})") from error
        check_ttl(reply.created_at, REPLY_TTL, skew=self.clock_skew)
        self.replay_cache.check_and_remember(
            f"rep:{reply.request_id[:48]}/{reply.sender_id[:64]}",
            replay_expiry(reply.created_at, REPLY_TTL, self.clock_skew),
        )
        return reply

    # -- envelope -----------------------------------------------------------------------------

    def _headers(self) -> dict[str, str]:
        return {PROTOCOL_HEADER: PROTOCOL_VERSION, "content-type": "application/json"}

    def _seal(self, kind: str, payload: dict[str, Any]) -> bytes:
        text = json.dumps({"kind": kind, **payload}, separators=(",", ":"), sort_keys=True)
        envelope = {
            "v": 1,
            "kind": kind,
            "body": text,
            "sig": self.signer.sign(text.encode()),
            "key_id": self.signer.key_id,
            "scheme": self.signer.scheme,
        }
        return json.dumps(envelope, separators=(",", ":")).encode()

    def _open(self, raw: bytes, kind: str) -> tuple[dict[str, Any], str]:
        check_size(raw, self.max_message_bytes)
        try:
            envelope = _bounded_json(raw)
            if not isinstance(envelope, dict) or envelope.get("v") != 1 or envelope.get("kind") != kind:
                raise ValueError("not a v1 envelope of this kind")
            text, signature, key_id = envelope["body"], envelope["sig"], envelope["key_id"]
            if not (isinstance(text, str) and isinstance(signature, str) and isinstance(key_id, str)):
                raise ValueError("envelope fields of the wrong type")
        except (ValueError, KeyError, TypeError) as error:
            raise SecurityError(f"unsigned or malformed {kind} envelope") from error
        if envelope.get("scheme") != self.signer.scheme:
            raise SecurityError(
                f"{kind} signed with scheme {str(envelope.get('scheme'))[:40]!r}, expected {self.signer.scheme}"
            )
        if len(key_id) > MAX_NAME_LENGTH or len(signature) > 256:
            raise SecurityError(f"{kind} envelope with an oversized key id or signature")
        self.signer.verify(key_id, text.encode(), signature)
        try:
            payload = _bounded_json(text.encode())
        except ValueError as error:
            raise SecurityError(f"signed {kind} body is not bounded JSON ({error})") from error
        if not isinstance(payload, dict) or payload.get("kind") != kind:
            raise SecurityError(f"signed body is not a {kind}")
        return payload, key_id


def _request_body(request: Request) -> dict[str, Any]:
    return {
        "request_id": request.request_id,
        "sender_id": request.sender_id,
        "caller_id": request.caller_id,
        "agent": request.agent,
        "action": request.action,
        "data": request.data,
        "filter": {
            "identity": list(request.filter.identity),
            "fact": [[f.fact, f.operator, f.value] for f in request.filter.fact],
            "cf_class": list(request.filter.cf_class),
            "agent": list(request.filter.agent),
        },
        "collective": request.collective,
        "ttl": request.ttl,
        "created_at": request.created_at or time.time(),
        "reply_to": request.reply_to,
        "targets": list(request.targets),
        "reply_wanted": request.reply_wanted,
    }


MAX_FILTER_TERMS = 64
MAX_FILTER_TERM_LENGTH = 256
MAX_NAME_LENGTH = 253
MAX_JSON_DEPTH = 32
_FILTER_KEYS = ("identity", "fact", "cf_class", "agent")


def _bounded_json(raw: bytes) -> Any:
    """json.loads, refusing (ValueError) nesting deeper than MAX_JSON_DEPTH before parsing it.

    The depth scan is linear and ignores brackets inside strings; json.loads itself would raise
    RecursionError (with a traceback in a log) on a 100k-deep array.
    """
    depth = 0
    in_string = escaped = False
    for byte in raw.translate(None, _NOT_STRUCTURAL):
        if in_string:
            if escaped:
                escaped = False
            elif byte == 0x5C:  # backslash
                escaped = True
            elif byte == 0x22:
                in_string = False
        elif byte == 0x22:
            in_string = True
        elif byte in (0x5B, 0x7B):
            depth += 1
            if depth > MAX_JSON_DEPTH:
                raise ValueError(f"nested deeper than {MAX_JSON_DEPTH}")
        elif byte in (0x5D, 0x7D):
            depth -= 1
    try:
        return json.loads(raw)
    except RecursionError as error:  # unreachable after the scan; kept as a last line
        raise ValueError("nested too deeply") from error


# Only quotes, backslashes and brackets matter to the depth scan; dropping the rest keeps it fast.
# A backslash's escaped character must survive (\" vs \\), so letters stay when escaped: we keep
# every byte that can follow a backslash in JSON.
_NOT_STRUCTURAL = bytes(b for b in range(256) if chr(b) not in '"\\[]{}/bfnrtu')


def _strings(
    value: Any, what: str, *, limit: int = MAX_FILTER_TERMS, length: int = MAX_FILTER_TERM_LENGTH
) -> tuple[str, ...]:
    if not isinstance(value, list) or len(value) > limit:
        raise ValueError(f"{what} must be a list of at most {limit} strings")
    if not all(isinstance(item, str) and len(item) <= length for item in value):
        raise ValueError(f"{what} must hold strings of at most {length} characters")
    return tuple(value)


def _filter_from(raw_filter: Any) -> Filter:
    """Filters hold patterns the node evaluates: exact types, bounded count and length."""
    if raw_filter is None:
        return Filter()
    if not isinstance(raw_filter, dict) or set(raw_filter) - set(_FILTER_KEYS):
        raise ValueError("filter must be a mapping of identity, fact, cf_class and agent")
    facts = []
    raw_facts = raw_filter.get("fact", [])
    if not isinstance(raw_facts, list) or len(raw_facts) > MAX_FILTER_TERMS:
        raise ValueError("fact filter must be a list of at most {MAX_FILTER_TERMS} [fact, operator, value]")
    for entry in raw_facts:
        fact, operator, value = _strings(entry, "a fact filter", limit=3)
        facts.append(FactFilter(fact, operator, value))
    return Filter(
        identity=_strings(raw_filter.get("identity", []), "identity filter"),
        fact=tuple(facts),
        cf_class=_strings(raw_filter.get("cf_class", []), "class filter"),
        agent=_strings(raw_filter.get("agent", []), "agent filter"),
    )


def _text(payload: dict[str, Any], key: str, *, default: str | None = None, length: int = MAX_NAME_LENGTH) -> str:
    value = payload.get(key, default)
    if not isinstance(value, str) or len(value) > length:
        raise ValueError(f"{key} must be a string of at most {length} characters")
    return value


def _number(payload: dict[str, Any], key: str) -> float:
    value = payload[key]
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{key} must be a number")
    return value


def _request_from(payload: dict[str, Any]) -> Request:
    data = payload.get("data") or {}
    if not isinstance(data, dict):
        raise TypeError("data must be a mapping")
    reply_wanted = payload.get("reply_wanted", True)
    if not isinstance(reply_wanted, bool):
        raise TypeError("reply_wanted must be true or false")
    ttl = _number(payload, "ttl")
    return Request(
        request_id=_text(payload, "request_id", length=MAX_ID_LENGTH),
        sender_id=_text(payload, "sender_id"),
        caller_id=_text(payload, "caller_id", default=""),
        agent=_text(payload, "agent"),
        action=_text(payload, "action"),
        data=data,
        filter=_filter_from(payload.get("filter")),
        collective=_text(payload, "collective", default="mcollective"),
        ttl=int(ttl) if ttl == ttl and abs(ttl) < 2**53 else ttl,  # type: ignore[arg-type]  # NaN: check_ttl refuses
        created_at=_number(payload, "created_at"),
        reply_to=_text(payload, "reply_to", length=512),
        targets=_strings(payload.get("targets", []), "targets", limit=10_000, length=MAX_NAME_LENGTH),
        reply_wanted=reply_wanted,
    )
