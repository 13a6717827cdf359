"""The provider-neutral launch layer over a fake in-memory driver: idempotency, capabilities, threads."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from libcloud.common.exceptions import BaseHTTPError
from libcloud.compute.base import Node, NodeLocation
from libcloud.compute.types import NodeState

from drbootstrap.errors import ProviderError
from drbootstrap.providers.libcloud_provider import LibcloudProvider
from drbootstrap.providers.nodes import (
    ENVIRONMENT_TAG,
    HOSTNAME_TAG,
    LaunchRequest,
    create_node_kwargs,
    find_environment_nodes,
    launch_node,
    resolve_location,
)
from drbootstrap.providers.pacing import Pacing
from drbootstrap.providers.settings import ProviderSettings
from drbootstrap.providers.throttle import RetryPolicy
from drbootstrap.providers.values import EnvironmentScope


class Cloud:
    """What the fake drivers share: the nodes, like a real account."""

    def __init__(self) -> None:
        self.nodes: list[Node] = []
        self.lock = threading.Lock()
        self.creates = 0
        self.fail_next_creates: list[BaseException] = []
        self.lose_next_answers = 0


class FakeDriver:
    name = "fake"

    def __init__(self, cloud: Cloud) -> None:
        self.cloud = cloud
        self.key, self.secret = "FAKEKEY123", "FAKESECRET456"
        self.thread = threading.get_ident()

    def create_node(self, name, size, image, location=None, ex_metadata=None, ex_userdata=None, ex_clienttoken=None):
        with self.cloud.lock:
            if self.cloud.fail_next_creates:
                raise self.cloud.fail_next_creates.pop(0)
            self.cloud.creates += 1
            node = Node(id=f"n-{len(self.cloud.nodes)}", name=name, state=NodeState.RUNNING, public_ips=[],
                        private_ips=[], driver=self, extra={"tags": dict(ex_metadata or {}),
                                                            "token": ex_clienttoken, "location": location,
                                                            "thread": threading.get_ident()})
            self.cloud.nodes.append(node)
            if self.cloud.lose_next_answers:
                self.cloud.lose_next_answers -= 1
                raise ConnectionResetError("connection reset after the create went through")
            return node

    def list_nodes(self):
        with self.cloud.lock:
            return list(self.cloud.nodes)

    def destroy_node(self, node):
        node.state = NodeState.TERMINATED
        return True

    def list_locations(self):
        return [NodeLocation("zone-a", "Zone A", "XX", self), NodeLocation("zone-b", "Zone B", "XX", self)]


class UntaggableDriver(FakeDriver):
    def create_node(self, name, size, image, location=None):  # no ex_metadata
        raise AssertionError("must not be called")


QUICK = Pacing(policy=RetryPolicy(max_attempts=4, base_delay=0.0, max_delay=0.0))


def request(hostname="web01", environment="env1", **more) -> LaunchRequest:
    return LaunchRequest(environment, hostname, "worker", "img-1", "small", **more)


def test_client_tokens_depend_only_on_environment_hostname_and_generation():
    assert request().client_token == request(user_data="other").client_token
    assert request().client_token != request(generation=2).client_token
    assert request().client_token != request(environment="env2").client_token
    assert len(request().client_token) <= 64  # EC2's limit


def test_launch_tags_the_node_with_environment_hostname_and_role():
    cloud = Cloud()
    node = launch_node(FakeDriver(cloud), request(extra_tags={"team": "ops"}), pacing=QUICK)
    assert node.extra["tags"] == {"team": "ops", ENVIRONMENT_TAG: "env1", HOSTNAME_TAG: "web01",
                                  "drbootstrap:role": "worker", "drbootstrap:generation": "1"}
    assert node.extra["token"] == request().client_token


def test_a_second_launch_of_the_same_node_finds_it():
    cloud = Cloud()
    first = launch_node(FakeDriver(cloud), request(), pacing=QUICK)
    assert launch_node(FakeDriver(cloud), request(), pacing=QUICK).id == first.id
    assert cloud.creates == 1


def fake_provider(cloud: Cloud, factory=None, tmp_path=None) -> LibcloudProvider:
    """The generic libcloud provider over the fake drivers (one per thread, from `factory`)."""
    scope = EnvironmentScope("env1", tmp_path or Path("/nonexistent"), Path("/nonexistent/key"))
    return LibcloudProvider(ProviderSettings("fake", extra={"retry_base_delay": 0.0, "retry_max_delay": 0.0}),
                            scope, driver_factory=factory or (lambda: FakeDriver(cloud)))


def test_a_terminated_node_does_not_count_as_existing():
    cloud = Cloud()
    driver = FakeDriver(cloud)
    first = launch_node(driver, request(), pacing=QUICK)
    assert fake_provider(cloud).destroy_environment().destroyed == ["web01"]
    assert find_environment_nodes(driver, "env1") == {}
    assert launch_node(driver, request(generation=2), pacing=QUICK).id != first.id


def test_a_create_whose_answer_was_lost_is_found_not_repeated():
    cloud = Cloud()
    cloud.lose_next_answers = 1
    node = launch_node(FakeDriver(cloud), request(), pacing=QUICK)
    assert cloud.creates == 1 and node.id == "n-0"


def test_a_throttled_create_is_repeated_without_a_lookup():
    cloud = Cloud()
    cloud.fail_next_creates = [BaseHTTPError(503, "RequestLimitExceeded: slow down")] * 2
    events = []
    pacing = Pacing(policy=RetryPolicy(base_delay=0.0), on_retry=events.append)
    launch_node(FakeDriver(cloud), request(), pacing=pacing)
    assert cloud.creates == 1 and [e.attempt for e in events] == [1, 2]


def test_a_driver_that_cannot_tag_is_refused_clearly():
    with pytest.raises(ProviderError, match="cannot tag nodes"):
        launch_node(UntaggableDriver(Cloud()), request(), pacing=QUICK)


def test_only_keywords_the_driver_accepts_are_passed():
    kwargs = create_node_kwargs(FakeDriver(Cloud()), request(key_name="k", security_groups=("g",), user_data="x"), None)
    assert "ex_keyname" not in kwargs and "ex_security_groups" not in kwargs
    assert kwargs["ex_userdata"] == "x" and kwargs["ex_clienttoken"] == request().client_token


def test_zones_resolve_to_the_drivers_locations_or_fail_with_the_choices():
    driver = FakeDriver(Cloud())
    assert resolve_location(driver, "zone-b").id == "zone-b"
    with pytest.raises(ProviderError, match="Zone A, Zone B"):
        resolve_location(driver, "zone-z")


def test_a_provider_gives_each_thread_its_own_driver_finds_what_exists_and_resolves_the_zone_once():
    cloud = Cloud()
    made: list[FakeDriver] = []

    def factory():
        driver = FakeDriver(cloud)
        made.append(driver)
        return driver

    provider = fake_provider(cloud, factory)
    launch_node(FakeDriver(cloud), request("web00"), pacing=QUICK)
    requests = [request(f"web{i:02d}", zone="zone-a") for i in range(12)]
    threads = [threading.Thread(target=provider.launch, args=(r,)) for r in requests]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(made) == 12  # each thread built its own driver...
    assert all(node.driver.thread == node.extra["thread"] for node in cloud.nodes[1:])  # ...and used only it
    assert sorted(provider.nodes()) == [f"web{i:02d}" for i in range(12)]
    assert cloud.creates == 12  # web00 was found, not launched again
    assert all(node.extra["location"].id == "zone-a" for node in cloud.nodes[1:])


def test_driver_credentials_never_appear_in_launch_errors():
    cloud = Cloud()
    cloud.fail_next_creates = [BaseHTTPError(400, "bad request key=FAKEKEY123 secret FAKESECRET456")]
    with pytest.raises(ProviderError) as caught:
        launch_node(FakeDriver(cloud), request(), pacing=QUICK)
    assert "FAKEKEY123" not in str(caught.value) and "FAKESECRET456" not in str(caught.value)


class TokenReplayingDriver(FakeDriver):
    """Like EC2: a client token already used answers with the old, now terminated, instance."""

    def create_node(self, name, size, image, location=None, ex_metadata=None, ex_userdata=None, ex_clienttoken=None):
        return Node(id="i-old", name=name, state=NodeState.TERMINATED, public_ips=[], private_ips=[], driver=self,
                    extra={"tags": dict(ex_metadata or {}), "status": "terminated"})


def test_a_client_token_answered_with_a_terminated_node_asks_for_the_next_generation():
    with pytest.raises(ProviderError, match="already terminated.*next generation"):
        launch_node(TokenReplayingDriver(Cloud()), request(), pacing=QUICK)


def test_a_size_without_capacity_gives_way_to_the_requests_next_fallback_size_with_its_own_token():
    cloud = Cloud()
    provider = fake_provider(cloud)
    provider.no_capacity_codes = ("InsufficientInstanceCapacity",)
    cloud.fail_next_creates = [BaseHTTPError(500, "InsufficientInstanceCapacity: none of m5.large left")]
    node = provider.launch(request(fallback_sizes=("medium", "small")))
    assert cloud.creates == 1 and node.extra["token"] == request(size_attempt=1).client_token
    assert request(size_attempt=1).client_token != request().client_token


def test_without_fallback_sizes_a_size_without_capacity_is_retried_as_before():
    cloud = Cloud()
    provider = fake_provider(cloud)
    provider.no_capacity_codes = ("InsufficientInstanceCapacity",)
    cloud.fail_next_creates = [BaseHTTPError(500, "InsufficientInstanceCapacity: try later")]
    node = provider.launch(request())
    assert cloud.creates == 1 and node.extra["token"] == request().client_token
