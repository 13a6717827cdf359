"""MCollective 2.12 compatibility: its ActiveMQ destinations, psk security and Ruby Marshal bodies.

The reference is Debian's Ruby source (mcollective/security/psk.rb, security/base.rb,
connector/activemq.rb, message.rb, rpc/*.rb). Checks follow the native protocol's: size, bounded
Marshal, psk digest, TTL both ways, caller id; the agent then authorises, checks replay, filters.
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import os
import re
import time
from pathlib import Path
from typing import Any

from drbootstrap.errors import SecurityError
from drbootstrap.messaging import ruby_marshal as rm
from drbootstrap.messaging.envelope import (
    Frame,
    Reply,
    Request,
    StatusCode,
    WireProtocol,
)
from drbootstrap.messaging.marshal_plain import NotPlain, load_plain
from drbootstrap.messaging.mcollective_filters import empty_filter, filter_from_wire, filter_to_wire
from drbootstrap.messaging.naming import Destinations
from drbootstrap.messaging.ruby_marshal import AsciiStr, MarshalError, Sym
from drbootstrap.messaging.security import (
    DEFAULT_CLOCK_SKEW,
    DEFAULT_MAX_MESSAGE_BYTES,
    DEFAULT_MAX_TTL,
    ReplayCache,
    check_size,
    check_ttl,
    replay_expiry,
)

DISCOVERY_AGENT = "discovery"
REPLY_TTL = 60.0  # mcollective replies carry no ttl; accept one as long as a default request lives
IDENTITY_HEADER = "mc_identity"
_CALLER_ID = re.compile(r"^[\w]+=[\w.\-]+$")  # Security::Base#valid_callerid?
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,252}$")
_reply_sequence = itertools.count(1)
# The envelope's and bodies' symbols, made once (Sym() looks its name up in rubymarshal's registry).
_S = {name: Sym(name) for name in ("body", "senderid", "requestid", "filter", "collective", "agent", "callerid", "ttl",
                                   "msgtime", "hash", "senderagent", "process_results", "action", "caller", "data",
                                   "statuscode", "statusmsg")}


def psk_digest(serialized_body: bytes, psk: str | bytes) -> str:
    """Security::Psk#makehash: MD5 hex of the marshalled body followed by the psk (str or its UTF-8)."""
    key = psk.encode("utf-8") if isinstance(psk, str) else psk
    return hashlib.md5(serialized_body + key, usedforsecurity=False).hexdigest()


def load_psk(path: str | Path) -> str:
    """plugin.psk from a file of its own (0600): the whole file, surrounding whitespace dropped."""
    try:
        psk = Path(path).read_text().strip()
    except OSError as error:
        raise SecurityError(
            f"cannot read the mcollective psk file {path}: {error.strerror}",
            hint="key_file (or --key-file) must name a file holding plugin.psk of the mco peers",
        ) from error
    if not psk:
        raise SecurityError(f"the mcollective psk file {path} is empty",
                            hint="write plugin.psk of the mco peers into it")
    return psk


def make_mcollective_protocol(
    key_file: str | Path | None,
    *,
    clock_skew: float = DEFAULT_CLOCK_SKEW,
    max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
) -> McollectiveProtocol:
    """The protocol for `protocol: mcollective` (kept for callers; protocols.make_wire_protocol builds it too)."""
    from drbootstrap.messaging.protocols import ProtocolSettings, make_wire_protocol

    settings = ProtocolSettings("mcollective", Path(key_file) if key_file else None, clock_skew=clock_skew,
                                max_message_bytes=max_message_bytes)
    return make_wire_protocol(settings)  # type: ignore[return-value]


def _name(value: str, what: str) -> str:
    if not _NAME.match(value or ""):
        raise SecurityError(f"{what} {str(value)[:80]!r} may only hold letters, digits, '.', '_' and '-'")
    return value


class McollectiveProtocol(WireProtocol):
    """MCollective 2.12's wire format with the psk security provider.

    `psk` is plugin.psk of the peers' server.cfg/client.cfg. One instance per node identity (the
    replay cache is per receiver: mco sends the same request id to every node).
    """

    name = "mcollective"

    def __init__(
        self,
        psk: str,
        *,
        clock_skew: float = DEFAULT_CLOCK_SKEW,
        max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
        replay_cache: ReplayCache | None = None,
        clock: Any = time.time,
        max_ttl: float = DEFAULT_MAX_TTL,
        broker_kind: str = "activemq",
    ) -> None:
        self.destinations = Destinations("mcollective", broker_kind)
        if not psk:
            raise SecurityError("mcollective mode needs a psk", hint="set psk_file (plugin.psk of the mco peers)")
        self._psk = psk.encode("utf-8")
        self.clock_skew = clock_skew
        self.max_message_bytes = max_message_bytes
        self.replay_cache = replay_cache or ReplayCache()  # for replies this end receives
        self.max_ttl = max_ttl
        self._clock = clock

    def __repr__(self) -> str:  # never show the psk
        return f"McollectiveProtocol(clock_skew={self.clock_skew})"

    # -- destinations (Connector::Activemq#make_target, Connector::Rabbitmq#make_target: messaging.naming) --

    def broadcast_destination(self, agent: str, collective: str) -> str:
        return self.destinations.broadcast(_name(agent, "agent"), _name(collective, "collective"))

    def _reply_queue(self, client_identity: str) -> str:
        """mco's <identity>_<pid>.<sequence>: unique per call."""
        return f"{_name(client_identity, 'client id')}_{os.getpid()}.{next(_reply_sequence)}"

    def reply_destination(self, client_identity: str, collective: str) -> str:
        """mco's /queue/<collective>.reply.<identity>_<pid>.<sequence>, unique per call."""
        return self.destinations.reply(self._reply_queue(client_identity), _name(collective, "collective"))

    def reply_endpoints(self, client_identity: str, collective: str) -> tuple[str, tuple[str, dict[str, str]]]:
        return self.destinations.reply_endpoints(self._reply_queue(client_identity), _name(collective, "collective"))

    def server_subscriptions(
        self, identity: str, agents: list[str], collective: str
    ) -> list[tuple[str, dict[str, str]]]:
        return self.destinations.server_subscriptions(
            _name(identity, "identity"), [_name(agent, "agent") for agent in agents], _name(collective, "collective"))

    # -- requests -----------------------------------------------------------------------------

    def request_frames(self, request: Request) -> list[Frame]:
        created = int(request.created_at or self._clock())
        caller_id = request.caller_id or f"uid={os.getuid()}"  # Psk#callerid's default callertype
        if not _CALLER_ID.match(caller_id):
            raise SecurityError(f"caller id {caller_id!r} is not of the form uid=0 or user=name")
        body = rm.dumps(_request_body(request, caller_id))
        wire_filter = empty_filter() if request.targets else filter_to_wire(request.filter)
        if request.targets:  # Message#type= for :direct_request: empty filter plus the agent
            wire_filter["agent"].append(request.agent)
        envelope = {  # Security::Base#create_request, key order as Ruby writes it
            _S["body"]: body,
            _S["senderid"]: request.sender_id,
            _S["requestid"]: AsciiStr(request.request_id),
            _S["filter"]: wire_filter,
            _S["collective"]: request.collective,
            _S["agent"]: request.agent,
            _S["callerid"]: caller_id,
            _S["ttl"]: int(request.ttl),
            _S["msgtime"]: created,
            _S["hash"]: AsciiStr(psk_digest(body, self._psk)),
        }
        payload = rm.dumps(envelope)
        headers = self._headers(request.sender_id, created, request.ttl)
        headers["reply-to"] = request.reply_to
        if not request.targets:
            return [Frame(self.broadcast_destination(request.agent, request.collective), payload, headers)]
        collective = _name(request.collective, "collective")
        frames = []
        for target in request.targets:
            destination, selecting = self.destinations.direct(_name(target, "identity"), collective)
            frames.append(Frame(destination, payload, {**headers, **selecting}))
        return frames

    def decode_request(self, body: bytes, headers: dict[str, str]) -> Request:
        """Size, bounded Marshal, psk digest, structure, TTL. The psk covers the body only: the
        envelope's callerid, requestid, ttl, msgtime, filter and the reply-to header are not
        signed (a protocol limit; see the agent docs). Replay is the receiver's to check."""
        envelope, inner = self._open(body, "request")
        try:
            request = _request_from(envelope, inner, headers)
        except (KeyError, TypeError, ValueError, AttributeError) as error:
            reason = f"{type(error).__name__}: {str(error)[:120]}"
            raise SecurityError(f"malformed mcollective request ({reason})") from error
        check_ttl(request.created_at, request.ttl, skew=self.clock_skew, now=self._clock(), max_ttl=self.max_ttl)
        if not self.destinations.reply_allowed(request.reply_to, request.collective):
            raise SecurityError(f"reply-to {request.reply_to[:80]!r} is not a STOMP reply destination")
        return request

    # -- replies ------------------------------------------------------------------------------

    def reply_frame(self, reply: Reply, request: Request) -> Frame:
        created = int(reply.created_at or self._clock())
        body = rm.dumps(_reply_body(reply))
        envelope = {  # Security::Base#create_reply + Psk#encodereply
            _S["senderid"]: reply.sender_id,
            _S["requestid"]: AsciiStr(reply.request_id),
            _S["senderagent"]: reply.agent,
            _S["msgtime"]: created,
            _S["body"]: body,
            _S["hash"]: AsciiStr(psk_digest(body, self._psk)),
        }
        return Frame(request.reply_to, rm.dumps(envelope), self._headers(reply.sender_id, created, REPLY_TTL))

    def decode_reply(self, body: bytes, headers: dict[str, str]) -> Reply:
        envelope, inner = self._open(body, "reply")
        try:
            reply = _reply_from(envelope, inner)
        except (KeyError, TypeError, ValueError, AttributeError) as error:
            raise SecurityError(f"malformed mcollective reply ({error})") from error
        check_ttl(reply.created_at, REPLY_TTL, skew=self.clock_skew, now=self._clock())
        self.replay_cache.check_and_remember(
            f"rep:{reply.request_id[:48]}/{reply.sender_id[:64]}",
            replay_expiry(reply.created_at, REPLY_TTL, self.clock_skew), now=self._clock(),
        )
        return reply

    # -- envelope -----------------------------------------------------------------------------

    def _headers(self, sender: str, created: int, ttl: float) -> dict[str, str]:
        """Connector::Activemq#headers_for: broker timestamp/expiry in ms, and mc_sender."""
        return {
            "timestamp": str(created * 1000),
            "expires": str(int(created + ttl + 10) * 1000),
            "mc_sender": sender,
        }

    def _open(self, raw: bytes, kind: str) -> tuple[dict[str, Any], Any]:
        """Size, Marshal, psk digest (Psk#validrequest?), then the inner body; plain Python out.

        marshal_plain reads what mco sends in one pass; anything else (and every refusal) goes
        the exact way, marshal_reader then to_python, which words the refusal."""
        check_size(raw, self.max_message_bytes)
        try:
            plain, serialized, digest = _envelope_plain(raw)
        except NotPlain:
            return self._open_exactly(raw, kind)
        self._check_digest(serialized, digest, kind)
        try:
            inner = load_plain(serialized)
        except NotPlain:
            try:
                inner = rm.to_python(rm.loads_raw(serialized))
            except MarshalError as error:
                raise SecurityError(f"malformed mcollective {kind} body ({error})") from error
        return plain, inner

    def _check_digest(self, serialized: bytes, digest: Any, kind: str) -> None:
        expected = psk_digest(serialized, self._psk).encode("ascii")
        if not hmac.compare_digest(expected, str(digest).encode("utf-8", "surrogateescape")):
            raise SecurityError(f"mcollective {kind} with an invalid psk signature")

    def _open_exactly(self, raw: bytes, kind: str) -> tuple[dict[str, Any], Any]:
        try:
            envelope = rm.loads_raw(raw)
            serialized = rm.raw_string(rm.get(envelope, "body"))
            digest = rm.get(envelope, "hash")
            if serialized is None or digest is None:
                raise MarshalError("no :body or :hash")
        except MarshalError as error:
            raise SecurityError(f"unsigned or malformed mcollective {kind} ({error})") from error
        self._check_digest(serialized, digest, kind)
        try:
            plain = rm.to_python({k: v for k, v in envelope.items() if rm.to_python(k) != "body"})
            inner = rm.to_python(rm.loads_raw(serialized))
        except MarshalError as error:
            raise SecurityError(f"malformed mcollective {kind} body ({error})") from error
        return plain, inner


def _envelope_plain(raw: bytes) -> tuple[dict[str, Any], bytes, Any]:
    """The envelope without :body, :body's bytes and :hash, when shaped as mco sends it (symbol
    keys, :body a binary String, :hash a tagged one); else NotPlain and the exact way decides."""
    envelope = load_plain(raw, envelope=True)
    if type(envelope) is not dict:
        raise NotPlain
    body = envelope.pop("body", None)
    digest = envelope.get("hash")
    if body is None or digest is None:
        raise NotPlain
    return envelope, body.encode("utf-8") if type(body) is str else body, digest


def _request_body(request: Request, caller_id: str) -> Any:
    """The discovery agent takes the bare string "ping"; SimpleRPC agents a hash (RPC::Client)."""
    if request.agent == DISCOVERY_AGENT:
        return request.action or "ping"
    data = rm.symbolize(request.data)
    data[_S["process_results"]] = request.reply_wanted
    return {_S["agent"]: request.agent, _S["action"]: request.action, _S["caller"]: caller_id, _S["data"]: data}


def _request_from(envelope: dict[str, Any], inner: Any, headers: dict[str, str]) -> Request:
    agent = _name(str(envelope["agent"]), "agent")
    caller_id = str(envelope["callerid"])
    if not _CALLER_ID.match(caller_id):  # Message#decode!: refuse a forged-looking caller id
        raise SecurityError(f"caller id {caller_id[:80]!r} in request is not valid")
    reply_wanted = True
    data: dict[Any, Any]
    if agent == DISCOVERY_AGENT:
        if not isinstance(inner, str):
            raise TypeError("discovery body is not a string")
        action, data = inner, {}
    else:
        if not isinstance(inner, dict):
            raise TypeError("SimpleRPC body is not a hash")
        action = str(inner["action"])
        data = inner.get("data") or {}
        if not isinstance(data, dict):
            raise TypeError("request data is not a hash")
        # RPC::Client puts process_results in every request's data; false or nil (--no-results,
        # fire and forget) means "do not reply", as RPC::Request#should_respond? reads it.
        reply_wanted = "process_results" not in data or data["process_results"] not in (False, None)
        data = {key: value for key, value in data.items() if key != "process_results"}
    targeted = headers.get(IDENTITY_HEADER)
    request_id = envelope["requestid"]
    if not isinstance(request_id, str) or not 0 < len(request_id) <= 64:
        raise ValueError("requestid is not a string of at most 64 characters")
    for key in ("ttl", "msgtime"):
        if isinstance(envelope[key], bool) or not isinstance(envelope[key], (int, float)):
            raise TypeError(f"{key} is not a number")
    ttl = envelope["ttl"]
    return Request(
        request_id=request_id,
        sender_id=str(envelope["senderid"]),
        caller_id=caller_id,
        agent=agent,
        action=action,
        data=data,
        filter=filter_from_wire(envelope.get("filter")),
        collective=_name(str(envelope["collective"]), "collective"),
        ttl=int(ttl) if isinstance(ttl, int) or (ttl == ttl and abs(ttl) < 2**53) else ttl,
        created_at=float(envelope["msgtime"]),
        reply_to=headers.get("reply-to", ""),
        targets=(targeted,) if targeted else (),
        reply_wanted=reply_wanted,
    )


def _reply_body(reply: Reply) -> Any:
    """mco ping prints any discovery reply; mcollectived's says "pong". RPC: RPC::Reply#to_hash."""
    if reply.agent == DISCOVERY_AGENT:
        return "pong"
    data = rm.symbolize(reply.data)
    for key in _SYMBOL_KEYED_OUTPUTS.get((reply.agent, reply.action), ()):
        data[Sym(key)] = _symbolize_hashes(data.get(Sym(key)))
    return {
        _S["statuscode"]: int(reply.status_code),
        _S["statusmsg"]: reply.status_message,
        _S["data"]: data,
    }


# Outputs whose nested hashes Ruby keys by symbol (mco reads nodestats[:times][:utime]); facts and
# get_facts' values stay string-keyed, as mcollectived sends them.
_SYMBOL_KEYED_OUTPUTS = {("rpcutil", "daemon_stats"): ("times",), ("rpcutil", "agent_inventory"): ("agents",)}


def _symbolize_hashes(value: Any) -> Any:
    if isinstance(value, dict):
        return rm.symbolize(value)
    if isinstance(value, list):
        return [rm.symbolize(item) if isinstance(item, dict) else item for item in value]
    return value


def _reply_from(envelope: dict[str, Any], inner: Any) -> Reply:
    agent = str(envelope["senderagent"])
    common: dict[str, Any] = {  # the fields every Reply takes
        "request_id": str(envelope["requestid"]),
        "sender_id": str(envelope["senderid"]),
        "agent": agent,
        "created_at": float(envelope["msgtime"]),
    }
    if not isinstance(inner, dict):  # the discovery agent's bare "pong", shaped like our agent's reply
        data = {"pong": int(common["created_at"])} if agent == DISCOVERY_AGENT else {"value": inner}
        return Reply(**common, action="ping" if agent == DISCOVERY_AGENT else "", status_message=str(inner), data=data)
    data = inner.get("data") or {}
    return Reply(
        **common,
        status_code=StatusCode(int(inner.get("statuscode", StatusCode.UNKNOWN_ERROR))),
        status_message=str(inner.get("statusmsg", "")),
        data=data if isinstance(data, dict) else {"value": data},
    )
