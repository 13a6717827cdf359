"""Destinations per wire protocol and broker kind (messaging.naming), and the RabbitMQ node's files."""

from __future__ import annotations

import base64
import hashlib
import json
import time
from pathlib import Path

import pytest

from drbootstrap.errors import MessagingError
from drbootstrap.messaging.naming import Destinations
from drbootstrap.messaging.native import NativeProtocol
from drbootstrap.messaging.protocols import ProtocolSettings, make_wire_protocol
from drbootstrap.rabbitmq import RabbitConfig, password_hash, render_definitions, render_rabbitmq_conf


def test_activemq_naming_is_unchanged():
    names = Destinations("native", "activemq")
    assert names.broadcast("rpcutil", "mcollective") == "/topic/drb.mcollective.rpcutil.agent"
    assert names.direct("web01", "mcollective") == ("/queue/drb.mcollective.nodes", {"drb_identity": "web01"})
    assert names.direct_subscription("web01", "mcollective") == (
        "/queue/drb.mcollective.nodes", {"selector": "drb_identity = 'web01'"})
    assert names.reply_endpoints("c1", "mcollective") == (
        "/queue/drb.mcollective.reply.c1", ("/queue/drb.mcollective.reply.c1", {}))
    mco = Destinations("mcollective", "activemq")
    assert mco.broadcast("rpcutil", "mcollective") == "/topic/mcollective.rpcutil.agent"
    assert not mco.reply_allowed("/temp-queue/x", "mcollective")


def test_rabbitmq_native_has_a_queue_per_agent_and_self_deleting_reply_queues():
    names = Destinations("native", "rabbitmq")
    assert names.broadcast("rpcutil", "c") == "/topic/drb.c.rpcutil.agent"  # amq.topic, key drb.c.rpcutil.agent
    assert names.direct_subscription("web01", "c") == ("/queue/drb.c.node.web01", {})
    assert names.direct("web01", "c")[0] == "/queue/drb.c.node.web01"
    reply_to, (queue, headers) = names.reply_endpoints("c1", "c")
    assert reply_to == "/amq/queue/drb.c.reply.c1" and queue == "/queue/drb.c.reply.c1"
    assert headers == {"auto-delete": "true", "durable": "false"}
    assert names.reply_allowed(reply_to, "c")
    assert not names.reply_allowed("/queue/drb.c.reply.c1", "c") and not names.reply_allowed("/amq/queue/other", "c")


def test_rabbitmq_mcollective_uses_mcollectives_own_connector_naming():
    names = Destinations("mcollective", "rabbitmq")
    assert names.broadcast("rpcutil", "mcollective") == "/exchange/mcollective_broadcast/rpcutil"
    assert names.direct_subscription("web01", "mcollective") == ("/exchange/mcollective_directed/web01", {})
    assert names.reply_allowed("/reply-queue/amq.gen-abc_DEF-1", "mcollective")  # the rewritten /temp-queue/
    assert not names.reply_allowed("/exchange/../x", "mcollective")


def test_protocols_refuse_an_unknown_broker_kind():
    with pytest.raises(MessagingError):
        make_wire_protocol(ProtocolSettings("native", Path("/nonexistent"), broker_kind="kafka"))


def test_native_protocol_sends_directed_requests_to_each_agents_queue_on_rabbitmq(tmp_path):
    from drbootstrap.messaging.envelope import Request
    from drbootstrap.messaging.security import load_signer

    key = tmp_path / "psk"
    key.write_text("k" * 64)
    key.chmod(0o600)
    protocol = NativeProtocol(load_signer(key), broker_kind="rabbitmq")
    reply_to, _ = protocol.reply_endpoints("client", "mcollective")
    request = Request(request_id="r1", sender_id="client", caller_id="", agent="rpcutil", action="ping",
                      reply_to=reply_to,
                      collective="mcollective", targets=("a.example", "b.example"), ttl=60,
                      created_at=time.time())
    frames = protocol.request_frames(request)
    assert [frame.destination for frame in frames] == ["/queue/drb.mcollective.node.a.example",
                                                       "/queue/drb.mcollective.node.b.example"]
    assert protocol.decode_request(frames[0].body, dict(frames[0].headers)).reply_to == reply_to


def test_rabbitmq_conf_has_stomp_only_and_the_definitions_only_a_salted_hash(tmp_path):
    config = RabbitConfig(base_dir=tmp_path, host="10.0.0.1", port=61613, password="s3cret-pass",
                          plain_host="127.0.0.1")
    conf = render_rabbitmq_conf(config)
    assert "listeners.tcp = none" in conf and "stomp.listeners.tcp.1 = 127.0.0.1:61613" in conf
    assert "stomp.default_pass = s3cret-pass" in conf  # the file is written 0600
    definitions = json.loads(render_definitions(config))
    assert "s3cret-pass" not in json.dumps(definitions)
    [user] = definitions["users"]
    raw = base64.b64decode(user["password_hash"])
    assert hashlib.sha256(raw[:4] + b"s3cret-pass").digest() == raw[4:]
    assert {e["name"] for e in definitions["exchanges"]} == {"mcollective_broadcast", "mcollective_directed"}
    zero = b"\0\0\0\0"
    assert password_hash("x", zero) == base64.b64encode(zero + hashlib.sha256(zero + b"x").digest()).decode()
