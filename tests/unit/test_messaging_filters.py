"""mco filter parsing and matching semantics."""

from __future__ import annotations

import pytest

from drbootstrap.errors import MessagingError
from drbootstrap.messaging.envelope import FactFilter
from drbootstrap.messaging.filters import build_filter, matches, parse_fact_filter

NODE = dict(identity="web01.demo", facts={"role": "web", "cpus": 4, "os": "debian"}, classes=["nginx", "base"],
            agents=["rpcutil", "puppet"])


@pytest.mark.parametrize("text, expected", [
    ("role=web", FactFilter("role", "==", "web")),
    ("role=/we/", FactFilter("role", "=~", "we")),
    ("role==web", FactFilter("role", "==", "web")),
    ("role!=db", FactFilter("role", "!=", "db")),
    ("cpus>=2", FactFilter("cpus", ">=", "2")),
    ("cpus<8", FactFilter("cpus", "<", "8")),
    ("os=~^deb", FactFilter("os", "=~", "^deb")),
])
def test_fact_filters_parse_like_mco(text, expected):
    assert parse_fact_filter(text) == expected


@pytest.mark.parametrize("text", ["role", "=web", "role=", "role=~("])
def test_bad_fact_filters_are_rejected_with_a_hint(text):
    with pytest.raises(MessagingError):
        parse_fact_filter(text)


@pytest.mark.parametrize("kwargs, selected", [
    ({}, True),
    ({"identity": ["db01", "web01.demo"]}, True),
    ({"identity": ["/^web/"]}, True),
    ({"identity": ["web01"]}, False),
    ({"fact": ["role=web", "cpus>2"]}, True),
    ({"fact": ["cpus>=5"]}, False),
    ({"fact": ["cpus<10"]}, True),  # numeric, not string, comparison
    ({"fact": ["role!=web"]}, False),
    ({"fact": ["missing=1"]}, False),
    ({"cf_class": ["nginx", "/ba/"]}, True),
    ({"cf_class": ["nginx", "mysql"]}, False),
    ({"agent": ["puppet"]}, True),
    ({"agent": ["dns"]}, False),
])
def test_filter_matching_ors_identities_and_ands_everything_else(kwargs, selected):
    assert matches(build_filter(**kwargs), **NODE) is selected
