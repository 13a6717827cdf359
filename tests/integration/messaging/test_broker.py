"""The private ActiveMQ from Debian's package: starts, serves STOMP (plain and TLS), restarts, stops."""

from __future__ import annotations

import pytest

from drbootstrap.broker import stomp_connect_succeeds

pytestmark = pytest.mark.integration


def test_broker_accepts_stomp_connect_in_plain_and_tls(activemq):
    assert stomp_connect_succeeds(activemq.host, activemq.port)
    assert stomp_connect_succeeds(activemq.host, activemq.tls_port, tls_ca=activemq.config.tls.cert_pem)


def test_broker_restart_serves_again_on_the_same_port_and_stop_ends_the_process(private_activemq):
    port, old_pid = private_activemq.port, private_activemq.pid
    private_activemq.restart()
    assert private_activemq.pid != old_pid
    assert private_activemq.port == port
    assert stomp_connect_succeeds(private_activemq.host, port)
