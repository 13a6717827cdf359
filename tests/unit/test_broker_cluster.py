"""A broker cluster's pieces that need no broker: a RabbitMQ node's cluster settings, the
transport's spreading over brokers, and the client asking silent nodes again."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest

from drbootstrap.messaging.client import ClientConfig, RpcClient
from drbootstrap.messaging.envelope import Reply
from drbootstrap.messaging.native import NativeProtocol
from drbootstrap.messaging.security import HmacSigner
from drbootstrap.rabbitmq import RabbitCluster, RabbitConfig, render_definitions, render_rabbitmq_conf

KEY = b"0123456789abcdef0123456789abcdef"


def clustered(address: str, seed: str = "10.9.0.11") -> RabbitConfig:
    return RabbitConfig(Path("/b"), host=address, cluster=RabbitCluster(address, seed, Path("/b/cookie")))


def test_a_cluster_node_is_named_by_its_address_and_joins_the_seed_by_classic_discovery():
    config = clustered("10.9.0.12")
    assert config.node == "drbootstrap@10.9.0.12"
    conf = render_rabbitmq_conf(config)
    assert "cluster_formation.peer_discovery_backend = classic_config" in conf
    assert "cluster_formation.classic_config.nodes.1 = drbootstrap@10.9.0.11" in conf


def test_a_cluster_mirrors_drbootstraps_named_queues_and_a_single_node_has_no_policy():
    policies = json.loads(render_definitions(clustered("10.9.0.12")))["policies"]
    assert policies[0]["pattern"] == r"^drb\..*\.node\." and policies[0]["definition"]["ha-mode"] == "all"
    single = json.loads(render_definitions(RabbitConfig(Path("/b"))))
    assert "policies" not in single
    assert RabbitConfig(Path("/b")).node == "drbootstrap@localhost"


class LossyFleet:
    """A broker that lost the broadcast for LOST nodes (their node died): they answer only what
    is addressed to them directly, as their directed queues keep it while they reconnect."""

    def __init__(self, client: RpcClient, nodes: list[str], lost: set[str]) -> None:
        self.client, self.nodes, self.lost = client, nodes, lost
        self.sent: list = []
        self.reconnects = 0
        self.connected = threading.Event()
        self.connected.set()

    def send(self, frame) -> None:
        self.sent.append(frame)
        request = NativeProtocol(HmacSigner(KEY)).decode_request(frame.body, dict(frame.headers))
        answering = [n for n in self.nodes if n not in self.lost] if not request.targets else [
            t for t in request.targets if t in self.nodes]
        for node in answering:
            reply = NativeProtocol(HmacSigner(KEY)).reply_frame(
                Reply(request.request_id, node, request.agent, request.action), request)
            threading.Thread(target=self.client._on_message, args=(reply.body, {})).start()


def lossy_client(nodes: list[str], lost: set[str], **config) -> tuple[RpcClient, LossyFleet]:
    config.setdefault("brokers", ["stomp://127.0.0.1:1", "stomp://127.0.0.2:1"])  # a cluster
    client = RpcClient(ClientConfig(**config), protocol=NativeProtocol(HmacSigner(KEY)))
    fleet = LossyFleet(client, nodes, lost)
    client.transport = fleet  # type: ignore[assignment]
    return client, fleet


def test_a_ping_asks_the_expected_nodes_that_missed_the_broadcast_again_directly():
    client, fleet = lossy_client(["a", "b", "c"], {"c"}, discovery_timeout=10, reask_after=0.1)
    result = client.ping(expect=["a", "b", "c"])
    assert sorted(result.responded) == ["a", "b", "c"]
    assert [f.headers.get("drb_identity") for f in fleet.sent[1:]] == ["c"]  # only the silent one


def test_no_reask_with_a_single_broker():
    client, fleet = lossy_client(["a", "b"], {"b"}, brokers=["stomp://127.0.0.1:1"], discovery_timeout=0.6,
                                 reask_after=0.1)
    assert client.ping(expect=["a", "b"]).no_response == ["b"] and len(fleet.sent) == 1


def test_no_reask_when_disabled_or_without_expected_identities():
    client, fleet = lossy_client(["a", "b"], {"b"}, discovery_timeout=0.6, reask_after=0)
    assert client.ping(expect=["a", "b"]).no_response == ["b"]
    client, fleet = lossy_client(["a", "b"], {"b"}, discovery_timeout=1, discovery_window=0.3, reask_after=0.1)
    assert client.ping().responded == ["a"]
    assert len(fleet.sent) == 1


def cluster_spec(tmp_path: Path):
    from drbootstrap.paths import project_root
    from drbootstrap.spec import load_spec

    text = (project_root() / "examples" / "local.yaml").read_text()
    spec_file = tmp_path / "env.yaml"
    spec_file.write_text(text.replace("    kind: activemq\n", "    kind: rabbitmq\n    replicas: 3\n"))
    return load_spec(spec_file)


def test_replicas_add_broker_nodes_to_the_plan_once(tmp_path):
    from drbootstrap.plan import build_plan
    from drbootstrap.spec.broker_nodes import with_broker_nodes

    spec = cluster_spec(tmp_path)
    hostnames = [node.hostname for node in build_plan(spec).nodes()]
    assert hostnames.count("broker1") == 1 and hostnames.count("broker2") == 1 and "broker3" not in hostnames
    assert with_broker_nodes(spec) is spec  # already added: never twice


def test_logs_knows_which_nodes_have_a_broker_log_and_refuses_it_elsewhere(tmp_path):
    from drbootstrap.errors import NotFoundError
    from drbootstrap.executor.operator_access import NodeLogs, broker_log_of

    spec = cluster_spec(tmp_path)
    assert broker_log_of(spec, "controller") == "broker.log"
    assert broker_log_of(spec, "broker2") == "supervisor.log"
    assert broker_log_of(spec, "db01") is None
    broker = NodeLogs("broker1", "", None, "/n", "supervisor.log")  # type: ignore[arg-type]
    assert broker.logs == ("boot", "agent", "puppet", "broker") and broker.path_of("broker") == "/n/supervisor.log"
    worker = NodeLogs("db01", "", None, "/n", None)  # type: ignore[arg-type]
    assert worker.logs == ("boot", "agent", "puppet")
    with pytest.raises(NotFoundError, match="db01 runs no broker"):
        worker.path_of("broker")


def test_every_node_is_told_the_broker_nodes_and_only_broker_nodes_get_the_cookie(tmp_path):
    from drbootstrap.images.from_spec import worker_boot_config
    from drbootstrap.images.userdata import node_env, render_user_data

    spec = cluster_spec(tmp_path)
    web = worker_boot_config(spec, "web01", master_address="10.213.0.11", autosign_token="t", agent_key="k")
    assert web.broker_replicas == ("broker1.demo.internal", "broker2.demo.internal")
    assert "DRB_BROKER_COOKIE_FILE=''" in node_env(web)
    cookie = "c" * 40
    broker = worker_boot_config(spec, "broker1", master_address="10.213.0.11", autosign_token="t", agent_key="k",
                                broker_cookie=cookie)
    assert broker.role == "broker" and cookie not in node_env(broker) and cookie not in repr(broker)
    user_data = render_user_data(broker, allow_gzip=False).decode()
    assert "broker-cookie" in user_data and "permissions: '0600'" in user_data


def test_a_client_of_a_rabbitmq_cluster_takes_a_new_reply_queue_at_each_reconnection():
    client = RpcClient(ClientConfig(brokers=["stomp://10.9.0.11:1", "stomp://10.9.0.12:1"], broker_kind="rabbitmq"),
                       protocol=NativeProtocol(HmacSigner(KEY)))
    client.transport.subscribe(*client._reply_subscription)
    first = client.reply_to
    assert client.transport.before_reconnect is not None
    client.transport.before_reconnect()
    assert client.reply_to != first and client.reply_to.startswith(first)
    assert [entry[0] for entry in client.transport.subscriptions] == [client._reply_subscription[0]]
    single = RpcClient(ClientConfig(brokers=["stomp://10.9.0.11:1"], broker_kind="rabbitmq"),
                       protocol=NativeProtocol(HmacSigner(KEY)))
    assert single.transport.before_reconnect is None  # one broker: its queue is the same after a restart


def test_a_ping_with_a_fact_filter_never_asks_the_silent_directly():
    from drbootstrap.messaging.envelope import FactFilter, Filter

    client, fleet = lossy_client(["a", "b"], {"b"}, discovery_timeout=0.8, reask_after=0.1)
    result = client.ping(Filter(fact=(FactFilter("role", "==", "db"),)), expect=["a", "b"])
    assert result.no_response == ["b"] and len(fleet.sent) == 1
