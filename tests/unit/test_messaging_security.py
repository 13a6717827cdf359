"""Native protocol security: signatures, TTL both ways, replay, size, authorisation policy."""

from __future__ import annotations

import json
import time

import pytest

from drbootstrap.errors import SecurityError
from drbootstrap.messaging.envelope import Reply, Request, StatusCode
from drbootstrap.messaging.native import NativeProtocol
from drbootstrap.messaging.security import (
    AuthorizationPolicy,
    HmacSigner,
    ReplayCache,
    check_ttl,
    load_signer,
)

KEY = b"0123456789abcdef0123456789abcdef"


def make_request(**overrides) -> Request:
    values = dict(
        request_id="r1", sender_id="client_1", caller_id="claimed", agent="rpcutil", action="ping",
        data={"x": 1}, created_at=time.time(), reply_to="/queue/drb.mcollective.reply.client_1",
    )
    values.update(overrides)
    return Request(**values)


def protocols(**kw):
    return NativeProtocol(HmacSigner(KEY), **kw), NativeProtocol(HmacSigner(KEY), **kw)


def test_signed_request_round_trips_and_caller_is_the_signing_key_not_the_claim():
    client, server = protocols()
    frame = client.request_frames(make_request())[0]
    assert frame.destination == "/topic/drb.mcollective.rpcutil.agent"
    request = server.decode_request(frame.body, dict(frame.headers))
    assert (request.agent, request.action, request.data) == ("rpcutil", "ping", {"x": 1})
    assert request.caller_id == "key=psk"


def test_direct_requests_go_to_the_nodes_queue_with_one_identity_header_each():
    client, _ = protocols()
    frames = client.request_frames(make_request(targets=("a", "b")))
    assert [f.headers["drb_identity"] for f in frames] == ["a", "b"]
    assert {f.destination for f in frames} == {"/queue/drb.mcollective.nodes"}


def test_request_signed_with_another_key_is_refused():
    forger = NativeProtocol(HmacSigner(b"another-key-of-sixteen-bytes!!"))
    _, server = protocols()
    frame = forger.request_frames(make_request())[0]
    with pytest.raises(SecurityError, match="bad signature"):
        server.decode_request(frame.body, {})


def test_tampered_body_is_refused():
    client, server = protocols()
    envelope = json.loads(client.request_frames(make_request())[0].body)
    envelope["body"] = envelope["body"].replace('"ping"', '"inventory"')
    with pytest.raises(SecurityError, match="bad signature"):
        server.decode_request(json.dumps(envelope).encode(), {})


def test_unsigned_request_is_refused():
    _, server = protocols()
    body = json.dumps({"v": 1, "kind": "request", "body": "{}"}).encode()
    with pytest.raises(SecurityError, match="unsigned or malformed"):
        server.decode_request(body, {})


@pytest.mark.parametrize("offset", [-400, 400])
def test_expired_and_future_dated_requests_are_refused(offset):
    client, server = protocols(clock_skew=30)
    frame = client.request_frames(make_request(created_at=time.time() + offset, ttl=60))[0]
    with pytest.raises(SecurityError, match="expired|future"):
        server.decode_request(frame.body, {})


@pytest.mark.parametrize("created_at,ttl", [(float("nan"), 60), (float("inf"), 60), (time.time(), float("nan")),
                                             (time.time(), 10**9), (time.time(), 0), (time.time(), True)])
def test_non_finite_or_unbounded_times_are_refused(created_at, ttl):
    client, server = protocols()
    frame = client.request_frames(make_request(created_at=created_at, ttl=ttl))[0]
    with pytest.raises(SecurityError, match="ttl|finite|malformed"):
        server.decode_request(frame.body, {})


@pytest.mark.parametrize("filter_", ["web01", {"identity": "web01"}, {"identity": [1]}, {"fact": [["a", "=="]]},
                                     {"nonsense": []}])
def test_filters_of_the_wrong_shape_are_a_clean_refusal(filter_):
    client, server = protocols()
    frame = client.request_frames(make_request())[0]
    envelope = json.loads(frame.body)
    body = json.loads(envelope["body"])
    body["filter"] = filter_
    envelope["body"] = json.dumps(body)
    envelope["sig"] = HmacSigner(KEY).sign(envelope["body"].encode())
    with pytest.raises(SecurityError, match="malformed request"):
        server.decode_request(json.dumps(envelope).encode(), {})


def test_deeply_nested_json_is_refused_before_parsing_signed_or_not():
    _, server = protocols()
    with pytest.raises(SecurityError, match="malformed"):
        server.decode_request(b"[" * 100_000 + b"]" * 100_000, {})
    with pytest.raises(SecurityError, match="malformed"):
        server.decode_request(b'{"v":1,"kind":"request","x":' + b"[" * 200_000, {})


def test_oversized_request_is_refused_before_parsing():
    client, server = protocols(max_message_bytes=1024)
    frame = client.request_frames(make_request(data={"blob": "x" * 2000}))[0]
    with pytest.raises(SecurityError, match="exceeds"):
        server.decode_request(frame.body, {})


def test_reply_to_outside_drbootstrap_reply_queues_is_refused():
    client, server = protocols()
    frame = client.request_frames(make_request(reply_to="/topic/drb.mcollective.rpcutil.agent"))[0]
    with pytest.raises(SecurityError, match="reply-to"):
        server.decode_request(frame.body, {})


def test_reply_round_trips_and_a_duplicate_reply_is_refused():
    client, server = protocols()
    request = make_request()
    frame = server.reply_frame(Reply("r1", "node1", "rpcutil", "ping", StatusCode.OK, "OK", {"pong": 1}), request)
    reply = client.decode_reply(frame.body, {})
    assert (reply.sender_id, reply.data) == ("node1", {"pong": 1})
    with pytest.raises(SecurityError, match="replayed"):
        client.decode_reply(frame.body, {})


def test_a_request_cannot_be_passed_off_as_a_reply():
    client, server = protocols()
    frame = client.request_frames(make_request())[0]
    with pytest.raises(SecurityError):
        client.decode_reply(frame.body, {})


def test_ed25519_keys_sign_and_only_trusted_keys_verify(tmp_path):
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    def write_key(name):
        key = Ed25519PrivateKey.generate()
        (tmp_path / f"{name}.pem").write_bytes(key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
        return key

    ops = write_key("ops")
    write_key("mallory")
    trusted = tmp_path / "trusted"
    trusted.mkdir()
    (trusted / "ops.pub").write_bytes(ops.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    node = NativeProtocol(load_signer(tmp_path / "mallory.pem", key_id="node", trusted_dir=trusted))
    client = NativeProtocol(load_signer(tmp_path / "ops.pem"))
    assert node.decode_request(client.request_frames(make_request())[0].body, {}).caller_id == "key=ops"
    mallory = NativeProtocol(load_signer(tmp_path / "mallory.pem"))
    with pytest.raises(SecurityError, match="untrusted"):
        node.decode_request(mallory.request_frames(make_request(request_id="r2"))[0].body, {})


def test_short_pre_shared_key_is_rejected(tmp_path):
    (tmp_path / "psk").write_text("short")
    with pytest.raises(SecurityError, match="shorter than 16"):
        load_signer(tmp_path / "psk")


def test_replay_cache_forgets_expired_ids_and_when_full_drops_the_soonest_to_expire():
    cache = ReplayCache(capacity=2)
    cache.check_and_remember("a", expires_at=10, now=0)
    cache.check_and_remember("b", expires_at=100, now=0)
    with pytest.raises(SecurityError, match="replayed"):
        cache.check_and_remember("b", expires_at=100, now=1)
    cache.check_and_remember("c", expires_at=100, now=5)  # full: "a" (expiring first) makes room
    assert (len(cache), cache.evicted) == (2, 1)
    cache.check_and_remember("d", expires_at=200, now=101)  # "b" and "c" expired
    assert len(cache) == 1


def test_replay_cache_refuses_a_non_finite_expiry_and_keeps_evicting_after_one():
    cache = ReplayCache(capacity=10)
    with pytest.raises(SecurityError):
        cache.check_and_remember("nan", expires_at=float("nan"), now=0)
    for index in range(50):
        cache.check_and_remember(f"id{index}", expires_at=index + 1, now=index)
    assert len(cache) <= 2


def test_replay_store_survives_a_restart_and_drops_expired_ids(tmp_path):
    store = tmp_path / "state" / "replay-ids"
    cache = ReplayCache(store=store)
    cache.check_and_remember("old", expires_at=time.time() - 1, now=time.time() - 10)
    cache.check_and_remember("live", expires_at=time.time() + 100)
    assert store.stat().st_mode & 0o777 == 0o600
    restarted = ReplayCache(store=store)
    with pytest.raises(SecurityError, match="replayed"):
        restarted.check_and_remember("live", expires_at=time.time() + 100)
    restarted.check_and_remember("old", expires_at=time.time() + 100)


def test_ttl_allows_clock_skew_both_ways():
    check_ttl(created_at=1000, ttl=60, skew=30, now=1085)
    check_ttl(created_at=1025, ttl=60, skew=30, now=1000)
    with pytest.raises(SecurityError):
        check_ttl(created_at=1000, ttl=60, skew=30, now=1095)


def test_policy_first_match_wins_and_rules_imply_default_deny():
    policy = AuthorizationPolicy.from_config([
        {"caller": "key=ops", "agent": "*"},
        {"caller": "key=ro", "agent": "rpcutil", "action": "*"},
        {"caller": "*", "agent": "reboot", "allow": False},
    ])
    assert policy.allows("key=ops", "reboot", "reboot")
    assert policy.allows("key=ro", "rpcutil", "inventory")
    assert not policy.allows("key=ro", "reboot", "reboot")
    assert not policy.allows("key=other", "puppet", "status")
    assert AuthorizationPolicy().allows("key=anyone", "reboot", "reboot")


def test_generated_ed25519_keys_are_private_and_trusted_by_stem(tmp_path):
    from drbootstrap.messaging.security import generate_ed25519_key

    trusted = tmp_path / "trusted"
    trusted.mkdir()
    generate_ed25519_key(tmp_path / "ops.pem", trusted / "ops.pub")
    generate_ed25519_key(tmp_path / "node1.pem", trusted / "node1.pub")
    assert (tmp_path / "ops.pem").stat().st_mode & 0o777 == 0o600
    client = NativeProtocol(load_signer(tmp_path / "ops.pem", trusted_dir=trusted))
    node = NativeProtocol(load_signer(tmp_path / "node1.pem", trusted_dir=trusted))
    request = node.decode_request(client.request_frames(make_request())[0].body, {})
    reply = client.decode_reply(node.reply_frame(Reply("r1", "node1", "rpcutil"), request).body, {})
    assert (request.caller_id, reply.sender_id) == ("key=ops", "node1")


def test_requests_with_oversized_filters_are_refused():
    from drbootstrap.messaging.envelope import Filter

    client, server = protocols()
    frame = client.request_frames(make_request(filter=Filter(identity=("/" + "a" * 300 + "/",))))[0]
    with pytest.raises(SecurityError, match="malformed request"):
        server.decode_request(frame.body, {})
