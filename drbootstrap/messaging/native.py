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
from drbootstrap.messaging.security import (
    DEFAULT_CLOCK_SKEW,
    DEFAULT_MAX_MESSAGE_BYTES,
    ReplayCache,
    Signer,
    check_size,
    check_ttl,
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
        raise SecurityError(f"{what} {value!r} may only hold letters, digits, '.', '_' and '-'")
    return value


class NativeProtocol(WireProtocol):
    """Signs what it encodes; verifies signature, size, TTL (both ways) and replay on decode."""

    name = "native"

    def __init__(
        self,
        signer: Signer,
        *,
        clock_skew: float = DEFAULT_CLOCK_SKEW,
        max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
        replay_cache: ReplayCache | None = None,
    ) -> None:
        self.signer = signer
        self.clock_skew = clock_skew
        self.max_message_bytes = max_message_bytes
        self.replay_cache = replay_cache or ReplayCache()

    # -- destinations -------------------------------------------------------------------------

    def broadcast_destination(self, agent: str, collective: str) -> str:
        return f"/topic/{PREFIX}.{safe_name(collective, 'collective')}.{safe_name(agent, 'agent')}.agent"

    def direct_destination(self, collective: str) -> str:
        return f"/queue/{PREFIX}.{safe_name(collective, 'collective')}.nodes"

    def reply_destination(self, client_identity: str, collective: str) -> str:
        return f"/queue/{PREFIX}.{safe_name(collective, 'collective')}.reply.{safe_name(client_identity, 'client id')}"

    def server_subscriptions(self, identity: str, agents: list[str], collective: str) -> list[tuple[str, dict[str, str]]]:
        subscriptions = [(self.broadcast_destination(agent, collective), {}) for agent in agents]
        selector = f"{IDENTITY_HEADER} = '{safe_name(identity, 'identity')}'"
        subscriptions.append((self.direct_destination(collective), {"selector": selector}))
        return subscriptions

    # -- requests -----------------------------------------------------------------------------

    def request_frames(self, request: Request) -> list[Frame]:
        body = self._seal("request", _request_body(request))
        if not request.targets:
            return [Frame(self.broadcast_destination(request.agent, request.collective), body, self._headers())]
        destination = self.direct_destination(request.collective)
        return [
            Frame(destination, body, {**self._headers(), IDENTITY_HEADER: safe_name(target, "identity")})
            for target in request.targets
        ]

    def decode_request(self, body: bytes, headers: dict[str, str]) -> Request:
        payload, key_id = self._open(body, "request")
        try:
            request = _request_from(payload)
        except (KeyError, TypeError, ValueError) as error:
            raise SecurityError(f"malformed request body ({type(error).__name__})") from error
        check_ttl(request.created_at, request.ttl, skew=self.clock_skew)
        if not request.reply_to.startswith(f"/queue/{PREFIX}.{request.collective}.reply."):
            raise SecurityError(f"reply-to {request.reply_to!r} is not a drbootstrap reply queue")
        self.replay_cache.check_and_remember(
            f"req:{request.request_id}", request.created_at + request.ttl + 2 * self.clock_skew
        )
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
        except (KeyError, TypeError, ValueError) as error:
            raise SecurityError(f"malformed reply body ({type(error).__name__})") from error
        check_ttl(reply.created_at, REPLY_TTL, skew=self.clock_skew)
        self.replay_cache.check_and_remember(
            f"rep:{reply.request_id}/{reply.sender_id}", reply.created_at + REPLY_TTL + 2 * self.clock_skew
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
            envelope = json.loads(raw)
            if not isinstance(envelope, dict) or envelope.get("v") != 1 or envelope.get("kind") != kind:
                raise ValueError("not a v1 envelope of this kind")
            text, signature, key_id = envelope["body"], envelope["sig"], envelope["key_id"]
            if not (isinstance(text, str) and isinstance(signature, str) and isinstance(key_id, str)):
                raise ValueError("envelope fields of the wrong type")
        except (ValueError, KeyError) as error:
            raise SecurityError(f"unsigned or malformed {kind} envelope") from error
        if envelope.get("scheme") != self.signer.scheme:
            raise SecurityError(f"{kind} signed with scheme {envelope.get('scheme')!r}, expected {self.signer.scheme}")
        self.signer.verify(key_id, text.encode(), signature)
        payload = json.loads(text)
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


def _bounded_filter(raw_filter: dict[str, Any]) -> dict[str, Any]:
    """Filters hold regexes the node evaluates: bound how many and how long (cheap DoS otherwise)."""
    for key in ("identity", "fact", "cf_class", "agent"):
        terms = raw_filter.get(key, ())
        if len(terms) > MAX_FILTER_TERMS:
            raise ValueError(f"too many {key} filter terms")
        for term in terms:
            if len(str(term)) > MAX_FILTER_TERM_LENGTH:
                raise ValueError(f"{key} filter term too long")
    return raw_filter


def _request_from(payload: dict[str, Any]) -> Request:
    raw_filter = _bounded_filter(payload.get("filter") or {})
    data = payload.get("data") or {}
    if not isinstance(data, dict):
        raise TypeError("data")
    return Request(
        request_id=str(payload["request_id"]),
        sender_id=str(payload["sender_id"]),
        caller_id=str(payload.get("caller_id", "")),
        agent=str(payload["agent"]),
        action=str(payload["action"]),
        data=data,
        filter=Filter(
            identity=tuple(str(v) for v in raw_filter.get("identity", ())),
            fact=tuple(FactFilter(str(f), str(o), str(v)) for f, o, v in raw_filter.get("fact", ())),
            cf_class=tuple(str(v) for v in raw_filter.get("cf_class", ())),
            agent=tuple(str(v) for v in raw_filter.get("agent", ())),
        ),
        collective=str(payload.get("collective", "mcollective")),
        ttl=int(payload["ttl"]),
        created_at=float(payload["created_at"]),
        reply_to=str(payload["reply_to"]),
        targets=tuple(str(t) for t in payload.get("targets", ())),
        reply_wanted=payload.get("reply_wanted", True) is not False,
    )
