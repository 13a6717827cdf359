"""Fixtures shared by every integration area, registered once so a session starts one broker."""

from tests.support.activemq import activemq, private_activemq  # noqa: F401 - fixtures for all areas
