"""The MCollective 2.12 codec against frames captured from Debian's real `mco` and `mcollectived`.

The fixtures in data/mcollective/ were captured on a private ActiveMQ with plugin.psk = s3cret
(a test-only key): `mco ping`, `mco ping -F role=web -F os=/deb/ -C foo -I /real/ -A rpcutil`,
`mco rpc rpcutil ping --nodes` (direct addressing) and mcollectived's replies.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from drbootstrap.errors import SecurityError
from drbootstrap.messaging import ruby_marshal as rm
from drbootstrap.messaging.envelope import (
    FactFilter,
    Filter,
    Reply,
    Request,
    StatusCode,
)
from drbootstrap.messaging.mcollective import McollectiveProtocol, psk_digest
from drbootstrap.messaging.ruby_marshal import Sym

DATA = Path(__file__).parent / "data" / "mcollective"
PSK = "s3cret"
DISCOVERY_TIME = 1795308663  # msgtime of discovery_request.bin / discovery_reply.bin
FILTERED_TIME = 1795308639
DIRECT_TIME = 1795308668
RPC_REPLY_TIME = 1795308645


def fixture(name: str) -> bytes:
    return (DATA / name).read_bytes()


def protocol_at(now: float, psk: str = PSK) -> McollectiveProtocol:
    return McollectiveProtocol(psk, clock=lambda: now)


def test_decodes_real_mco_ping_request():
    request = protocol_at(DISCOVERY_TIME + 1).decode_request(
        fixture("discovery_request.bin"), {"reply-to": "/queue/mcollective.reply.real-client_11786.1"}
    )
    assert (request.agent, request.action, request.sender_id, request.caller_id) == (
        "discovery",
        "ping",
        "real-client",
        "uid=0",
    )
    assert request.request_id == "b16982830c02576886f8c07e54f4d380"
    assert (request.ttl, request.created_at, request.collective) == (60, DISCOVERY_TIME, "mcollective")
    assert request.filter.is_empty() and request.targets == ()
    assert request.reply_to == "/queue/mcollective.reply.real-client_11786.1"


def test_reencodes_real_mco_ping_request_byte_for_byte():
    raw = fixture("discovery_request.bin")
    protocol = protocol_at(DISCOVERY_TIME)
    request = protocol.decode_request(raw, {"reply-to": "/queue/mcollective.reply.real-client_11786.1"})
    [frame] = protocol.request_frames(request)
    assert frame.body == raw
    assert frame.destination == "/topic/mcollective.discovery.agent"
    assert frame.headers["reply-to"] == "/queue/mcollective.reply.real-client_11786.1"
    assert frame.headers["expires"] == str((DISCOVERY_TIME + 60 + 10) * 1000)  # as Connector::Activemq


def test_decodes_every_filter_kind_mco_sends():
    request = protocol_at(FILTERED_TIME).decode_request(
        fixture("discovery_request_filtered.bin"), {"reply-to": "/queue/mcollective.reply.c_1.1"}
    )
    assert request.filter == Filter(
        identity=("/real/",),
        fact=(FactFilter("role", "==", "web"), FactFilter("os", "=~", "/deb/")),
        cf_class=("foo",),
        agent=("rpcutil",),
    )


def test_decodes_real_direct_addressed_rpc_request():
    headers = json.loads(fixture("rpcutil_ping_direct_request.headers.json"))
    request = protocol_at(DIRECT_TIME).decode_request(fixture("rpcutil_ping_direct_request.bin"), headers)
    assert (request.agent, request.action, request.data) == ("rpcutil", "ping", {})  # process_results is mco's
    assert request.targets == ("cap-node",)
    assert request.filter == Filter(agent=("rpcutil",))


def test_decodes_real_rpc_request_data_with_symbol_keys():
    request = protocol_at(1795308644).decode_request(
        fixture("rpcutil_get_fact_request.bin"), {"reply-to": "/queue/captured"}
    )
    assert (request.action, request.data) == ("get_fact", {"fact": "role"})


def test_decodes_real_mcollectived_replies():
    pong = protocol_at(DISCOVERY_TIME).decode_reply(fixture("discovery_reply.bin"), {})
    assert (pong.sender_id, pong.agent, pong.status_code, pong.status_message) == (
        "real-server",
        "discovery",
        StatusCode.OK,
        "pong",
    )
    assert pong.data == {"pong": DISCOVERY_TIME}
    rpc = protocol_at(RPC_REPLY_TIME).decode_reply(fixture("rpcutil_ping_reply.bin"), {})
    assert (rpc.request_id, rpc.status_code, rpc.data) == (
        "130eabdbea5a5a25beff01f216d09706",
        StatusCode.OK,
        {"pong": RPC_REPLY_TIME},
    )
    fact = protocol_at(1795308644).decode_reply(fixture("rpcutil_get_fact_reply.bin"), {})
    assert fact.data == {"fact": "role", "value": None}


def test_request_with_wrong_psk_is_refused():
    with pytest.raises(SecurityError, match="invalid psk signature"):
        protocol_at(DISCOVERY_TIME, psk="not-the-key").decode_request(
            fixture("discovery_request.bin"), {"reply-to": "/queue/x"}
        )


def test_reply_with_wrong_psk_is_refused():
    with pytest.raises(SecurityError, match="invalid psk signature"):
        protocol_at(RPC_REPLY_TIME, psk="not-the-key").decode_reply(fixture("rpcutil_ping_reply.bin"), {})


def test_request_whose_body_was_altered_is_refused():
    envelope = rm.loads_raw(fixture("rpcutil_get_fact_request.bin"))
    envelope[Sym("body")] = envelope[Sym("body")].replace(b"role", b"pass")
    with pytest.raises(SecurityError, match="invalid psk signature"):
        protocol_at(1795308644).decode_request(rm.dumps(envelope), {"reply-to": "/queue/x"})


def test_expired_request_is_refused():
    with pytest.raises(SecurityError, match="expired"):
        protocol_at(DISCOVERY_TIME + 60 + 31).decode_request(fixture("discovery_request.bin"), {"reply-to": "/queue/x"})


def test_request_dated_in_the_future_is_refused():
    with pytest.raises(SecurityError, match="future"):
        protocol_at(DISCOVERY_TIME - 31).decode_request(fixture("discovery_request.bin"), {"reply-to": "/queue/x"})


def test_decoding_leaves_replay_to_the_receiver_so_it_can_authorise_first():
    protocol = protocol_at(DISCOVERY_TIME)
    first = protocol.decode_request(fixture("discovery_request.bin"), {"reply-to": "/queue/x"})
    again = protocol.decode_request(fixture("discovery_request.bin"), {"reply-to": "/queue/x"})
    assert first.request_id == again.request_id  # the agent's replay cache refuses the second


@pytest.mark.parametrize("field,value", [("msgtime", float("nan")), ("ttl", float("nan")), ("ttl", 10**9),
                                         ("msgtime", float("inf")), ("ttl", -1)])
def test_non_finite_or_unbounded_times_are_refused(field, value):
    protocol = protocol_at(1000)
    envelope = rm.loads_raw(protocol.request_frames(_request(created_at=1000))[0].body)
    envelope[Sym(field)] = value
    with pytest.raises(SecurityError, match="ttl|finite|malformed"):
        protocol.decode_request(rm.dumps(envelope), {"reply-to": "/queue/x"})


def test_request_without_reply_to_is_refused():
    with pytest.raises(SecurityError, match="reply-to"):
        protocol_at(DISCOVERY_TIME).decode_request(fixture("discovery_request.bin"), {})


def test_oversized_and_non_marshal_messages_are_refused():
    protocol = McollectiveProtocol(PSK, max_message_bytes=100)
    with pytest.raises(SecurityError, match="exceeds"):
        protocol.decode_request(fixture("discovery_request.bin"), {})
    with pytest.raises(SecurityError, match="malformed"):
        McollectiveProtocol(PSK).decode_request(b'{"json": true}', {})


def test_ruby_objects_in_a_signed_body_are_refused():
    body = b"\x04\x08o:\x0bObject\x00"  # Marshal.dump(Object.new)
    protocol = protocol_at(1000)
    frame_request = _request(created_at=1000)
    envelope = rm.loads_raw(protocol.request_frames(frame_request)[0].body)
    envelope[Sym("body")], envelope[Sym("hash")] = body, psk_digest(body, PSK)
    with pytest.raises(SecurityError, match="never sends"):
        protocol.decode_request(rm.dumps(envelope), {"reply-to": "/queue/x"})


def test_compound_filters_are_refused_rather_than_guessed():
    protocol = protocol_at(1000)
    envelope = rm.loads_raw(protocol.request_frames(_request(created_at=1000))[0].body)
    envelope[Sym("filter")]["compound"] = [[{"statement": "role=web"}]]
    with pytest.raises(SecurityError, match="compound"):
        protocol.decode_request(rm.dumps(envelope), {"reply-to": "/queue/x"})


def test_request_without_caller_id_goes_out_as_the_unix_uid_like_mco():
    frame = protocol_at(1000).request_frames(_request(caller_id=""))[0]
    assert rm.loads_raw(frame.body)[Sym("callerid")] == f"uid={os.getuid()}"


def test_forged_caller_id_is_refused_both_ways():
    with pytest.raises(SecurityError, match="caller id"):
        protocol_at(1000).request_frames(_request(caller_id="uid=0/../x"))
    protocol = protocol_at(1000)
    envelope = rm.loads_raw(protocol.request_frames(_request(created_at=1000))[0].body)
    envelope[Sym("callerid")] = "root"
    with pytest.raises(SecurityError, match="caller id"):
        protocol.decode_request(rm.dumps(envelope), {"reply-to": "/queue/x"})


def test_rpc_request_round_trips_with_ruby_shaped_body():
    protocol = protocol_at(1000)
    request = _request(
        created_at=1000,
        data={"fact": "role"},
        filter=Filter(fact=(FactFilter("role", "==", "web"),), identity=("/web/",)),
    )
    [frame] = protocol.request_frames(request)
    assert frame.destination == "/topic/mcollective.rpcutil.agent"
    inner = rm.loads_raw(rm.loads_raw(frame.body)[Sym("body")])
    assert inner[Sym("agent")] == "rpcutil" and inner[Sym("caller")] == "uid=0"
    assert inner[Sym("data")] == {Sym("fact"): "role", Sym("process_results"): True}
    decoded = protocol.decode_request(frame.body, frame.headers)
    assert (decoded.request_id, decoded.data, decoded.filter, decoded.reply_to) == (
        request.request_id,
        {"fact": "role"},
        request.filter,
        request.reply_to,
    )


def test_direct_request_makes_one_queue_frame_per_target_with_agent_filter():
    frames = protocol_at(1000).request_frames(_request(created_at=1000, targets=("web01", "web02")))
    assert [f.destination for f in frames] == ["/queue/mcollective.nodes"] * 2
    assert [f.headers["mc_identity"] for f in frames] == ["web01", "web02"]
    decoded = protocol_at(1000).decode_request(frames[1].body, frames[1].headers)
    assert decoded.targets == ("web02",) and decoded.filter == Filter(agent=("rpcutil",))


def test_replies_round_trip_for_rpc_and_discovery():
    protocol = protocol_at(1000)
    request = _request(created_at=1000)
    rpc = Reply(request.request_id, "web01", "rpcutil", "ping", StatusCode.OK, "OK", {"pong": 1000}, 1000)
    frame = protocol.reply_frame(rpc, request)
    assert frame.destination == request.reply_to
    body = rm.loads_raw(rm.loads_raw(frame.body)[Sym("body")])
    assert body == {Sym("statuscode"): 0, Sym("statusmsg"): "OK", Sym("data"): {Sym("pong"): 1000}}
    decoded = protocol_at(1000).decode_reply(frame.body, frame.headers)
    assert (decoded.sender_id, decoded.data, decoded.status_code) == ("web01", {"pong": 1000}, StatusCode.OK)
    pong = protocol.reply_frame(Reply(request.request_id, "web01", "discovery", "ping", created_at=1000), request)
    assert rm.loads_raw(rm.loads_raw(pong.body)[Sym("body")]) == "pong"


def test_destinations_and_subscriptions_are_mcollectives():
    protocol = McollectiveProtocol(PSK)
    assert protocol.server_subscriptions("web01", ["discovery", "rpcutil"], "mcollective") == [
        ("/topic/mcollective.discovery.agent", {}),
        ("/topic/mcollective.rpcutil.agent", {}),
        ("/queue/mcollective.nodes", {"selector": "mc_identity = 'web01'"}),
    ]
    first, second = (protocol.reply_destination("ops", "mcollective") for _ in range(2))
    assert first.startswith("/queue/mcollective.reply.ops_") and first != second


def test_psk_never_shows_in_repr_or_errors():
    protocol = McollectiveProtocol("very-secret-psk")
    assert "very-secret-psk" not in repr(protocol)
    with pytest.raises(SecurityError) as refused:
        protocol.decode_request(fixture("discovery_request.bin"), {"reply-to": "/queue/x"})
    assert "very-secret-psk" not in str(refused.value)


@pytest.mark.parametrize(
    ("value", "ruby_hex"),  # Marshal.dump(value) from Ruby 3.1 on amd64
    [
        (0, "04086900"),
        (-1, "040869fa"),
        (2**30 - 1, "04086904ffffff3f"),
        (2**30, "04086c2b0700000040"),
        (-(2**30) - 1, "04086c2d0701000040"),
        (1795308645, "04086c2b07653c026b"),
        (10**12, "04086c2b080010a5d4e800"),
    ],
)
def test_integers_marshal_exactly_as_ruby(value, ruby_hex):
    assert rm.dumps(value).hex() == ruby_hex
    assert rm.to_python(rm.loads_raw(bytes.fromhex(ruby_hex))) == value


def _request(**overrides) -> Request:
    values = {
        "request_id": "0123456789abcdef0123456789abcdef",
        "sender_id": "drb-client",
        "caller_id": "uid=0",
        "agent": "rpcutil",
        "action": "ping",
        "reply_to": "/queue/mcollective.reply.drb-client_1.1",
        "created_at": 1000,
    }
    values.update(overrides)
    return Request(**values)


def test_psk_file_is_read_stripped_and_a_missing_one_says_what_to_set(tmp_path):
    from drbootstrap.messaging.mcollective import make_mcollective_protocol

    (tmp_path / "psk").write_text(f"{PSK}\n")
    protocol = make_mcollective_protocol(tmp_path / "psk")
    protocol._clock = lambda: DISCOVERY_TIME
    assert protocol.decode_request(fixture("discovery_request.bin"), {"reply-to": "/queue/x"}).agent == "discovery"
    with pytest.raises(SecurityError, match="cannot read the mcollective psk file"):
        make_mcollective_protocol(tmp_path / "absent")
    with pytest.raises(SecurityError, match="no psk file"):
        make_mcollective_protocol(None)


def test_agent_filter_mcollective_matches_every_node_as_in_ruby():
    from drbootstrap.messaging.mcollective_filters import filter_from_wire

    wire = {"fact": [], "cf_class": [], "agent": ["mcollective", "rpcutil"], "identity": [], "compound": []}
    assert filter_from_wire(wire) == Filter(agent=("rpcutil",))
