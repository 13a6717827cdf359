"""The agent's dispatch: authorisation, unknown actions, input validation, status codes, registry."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from drbootstrap.agent.config import agent_config_from_dict
from drbootstrap.agent.daemon import AgentServer
from drbootstrap.agent.registry import ActionSpec, Input, RpcAgent, action, validate_inputs
from drbootstrap.errors import SpecError
from drbootstrap.messaging.envelope import Filter, Request, StatusCode


@pytest.fixture
def server(tmp_path: Path) -> AgentServer:
    (tmp_path / "psk").write_text("0123456789abcdef0123456789abcdef")
    (tmp_path / "facts.yaml").write_text("role: web\ncpus: 4\n")
    (tmp_path / "classes.txt").write_text("base\nnginx\n")
    config = agent_config_from_dict({
        "identity": "web01", "brokers": ["stomp://127.0.0.1:1"], "key_file": str(tmp_path / "psk"),
        "facts_file": str(tmp_path / "facts.yaml"), "classes_file": str(tmp_path / "classes.txt"),
        "policy": [{"caller": "key=psk", "agent": "reboot", "allow": False}, {"caller": "key=psk"}],
    })
    return AgentServer(config)


def request(agent: str, action: str, data=None, **kw) -> Request:
    return Request("r", "client", "key=psk", agent, action, data or {}, created_at=time.time(), **kw)


def test_rpcutil_ping_and_get_fact_answer_ok(server):
    assert server.handle(request("rpcutil", "ping")).status_code == StatusCode.OK
    reply = server.handle(request("rpcutil", "get_fact", {"fact": "role"}))
    assert (reply.status_code, reply.data["value"]) == (StatusCode.OK, "web")


def test_inventory_lists_agents_facts_with_builtins_and_classes(server):
    data = server.handle(request("rpcutil", "inventory")).data
    assert "puppet" in data["agents"] and "dns" not in data["agents"]
    assert data["facts"]["hostname"] == "web01" and data["facts"]["cpus"] == 4
    assert data["classes"] == ["base", "nginx"]


def test_unknown_agent_and_action_give_status_2(server):
    assert server.handle(request("nosuch", "ping")).status_code == StatusCode.UNKNOWN_ACTION
    assert server.handle(request("rpcutil", "nosuch")).status_code == StatusCode.UNKNOWN_ACTION


def test_missing_input_is_3_and_invalid_input_is_4_and_neither_executes(server):
    assert server.handle(request("rpcutil", "get_fact")).status_code == StatusCode.MISSING_DATA
    assert server.handle(request("rpcutil", "get_fact", {"fact": 5})).status_code == StatusCode.INVALID_DATA
    assert server.handle(request("rpcutil", "get_fact", {"fact": "x", "y": 1})).status_code == StatusCode.INVALID_DATA
    assert server.executed == 0


def test_unauthorised_action_is_aborted_with_status_1_and_not_executed(server):
    reply = server.handle(request("reboot", "reboot", {"delay": 0}))
    assert reply.status_code == StatusCode.ABORTED and "may not call" in reply.status_message
    assert server.executed == 0


def test_broadcast_filter_selects_by_fact_and_class(server):
    assert server._selected_by(request("rpcutil", "ping", filter=Filter(cf_class=("nginx",))))
    assert not server._selected_by(request("rpcutil", "ping", filter=Filter(cf_class=("mysql",))))


def test_a_crashing_action_becomes_status_5(server):
    class Boom(RpcAgent):
        name = "boom"

        @action("explode")
        def go(self, request, data):
            raise RuntimeError("kaput")

    server.agents["boom"] = Boom(None)
    reply = server.handle(request("boom", "go"))
    assert reply.status_code == StatusCode.UNKNOWN_ERROR and "kaput" in reply.status_message


def test_input_validation_checks_type_pattern_choices_and_length():
    spec = ActionSpec("a", "", {"n": Input("integer"), "s": Input("string", pattern="[a-z]+", max_length=5),
                                 "c": Input("string", choices=("x", "y"))}, False, lambda *a: None)
    validate_inputs(spec, {"n": 3, "s": "abc", "c": "x"})
    for bad in ({"n": True}, {"n": "3"}, {"s": "ABC"}, {"s": "abcdefg"}, {"c": "z"}):
        with pytest.raises(Exception) as caught:
            validate_inputs(spec, bad)
        assert caught.value.status == StatusCode.INVALID_DATA


def test_unknown_config_settings_are_all_reported_with_the_known_ones():
    with pytest.raises(SpecError) as caught:
        agent_config_from_dict({"identiy": "x", "puppet": {"moed": "apply"}}, "a.yaml")
    assert len(caught.value.problems) == 2
    assert "unknown setting `identiy`" in caught.value.problems[0]


def test_unknown_agent_name_in_config_is_a_spec_error(tmp_path):
    (tmp_path / "psk").write_text("0123456789abcdef0123456789abcdef")
    config = agent_config_from_dict({"identity": "n", "brokers": ["x:1"], "key_file": str(tmp_path / "psk"),
                                     "agents": ["rpcutil", "nosuch"]})
    with pytest.raises(SpecError, match="nosuch"):
        AgentServer(config)


def test_reboot_runs_its_command_only_after_a_reply_was_sent_over_the_broker(tmp_path):
    (tmp_path / "psk").write_text("0123456789abcdef0123456789abcdef")
    marker = tmp_path / "rebooted"
    config = agent_config_from_dict({"identity": "n", "brokers": ["x:1"], "key_file": str(tmp_path / "psk"),
                                     "reboot": {"command": f"touch {marker}", "delay": 0}})
    server = AgentServer(config)
    reply = server.handle(request("reboot", "reboot"))
    assert reply.status_code == StatusCode.OK and reply.data["rebooting_in"] == 0
    time.sleep(0.3)
    assert not marker.exists()
    reply, after_reply = server.run(request("reboot", "reboot"))
    assert callable(after_reply)


class EchoAgent(RpcAgent):
    """A stand-in third-party agent, found through the drbootstrap.agents entry-point group."""

    name = "echo"

    @action("Echo the text back", text=Input("string", required=True))
    def say(self, request, data):
        return {"text": data["text"]}


def test_third_party_agents_load_from_the_entry_point_group_and_validate_inputs(monkeypatch, tmp_path):
    import importlib.metadata

    from drbootstrap.agent import registry

    entry = importlib.metadata.EntryPoint("echo", f"{__name__}:EchoAgent", registry.ENTRY_POINT_GROUP)
    monkeypatch.setattr(importlib.metadata, "entry_points",
                        lambda group=None: [entry] if group == registry.ENTRY_POINT_GROUP else [])
    (tmp_path / "psk").write_text("0123456789abcdef0123456789abcdef")
    server = AgentServer(
        agent_config_from_dict({"identity": "n", "brokers": ["x:1"], "key_file": str(tmp_path / "psk")})
    )
    assert "echo" in server.agents
    assert server.handle(request("echo", "say", {"text": "hi"})).data == {"text": "hi"}
    assert server.handle(request("echo", "say")).status_code == StatusCode.MISSING_DATA
