"""MCollective 2.12's filter hash (Util.empty_filter's shape) to our Filter and back, bounded.

A filter arrives outside the psk's digest, so anyone may write one: its terms are counted and
their length capped here, and mcollective.py refuses what this module cannot read.
"""

from __future__ import annotations

from typing import Any

from drbootstrap.errors import SecurityError
from drbootstrap.messaging.envelope import FactFilter, Filter
from drbootstrap.messaging.ruby_marshal import Sym

_FACT_OPERATORS = ("==", "!=", "=~", "<", ">", "<=", ">=")


def empty_filter() -> dict[str, list[Any]]:
    """Util.empty_filter: string keys, in Ruby's order."""
    return {"fact": [], "cf_class": [], "agent": [], "identity": [], "compound": []}


def filter_to_wire(request_filter: Filter) -> dict[str, list[Any]]:
    """Our Filter as mcollective's filter hash (fact entries keyed by symbols, as Ruby writes)."""
    wire = empty_filter()
    wire["fact"] = [
        {Sym("fact"): f.fact, Sym("value"): f.value, Sym("operator"): f.operator} for f in request_filter.fact
    ]
    wire["cf_class"] = list(request_filter.cf_class)
    wire["agent"] = list(request_filter.agent)
    wire["identity"] = list(request_filter.identity)
    return wire


def filter_from_wire(wire: Any) -> Filter:
    """mcollective's filter hash (already plain Python) as our Filter; compound ones are refused."""
    if wire is None:
        return Filter()
    if not isinstance(wire, dict):
        raise TypeError("filter is not a hash")
    if wire == _EMPTY_WIRE:  # what mco ping and every broadcast without -F/-C/-I/-A send
        return _EMPTY
    if wire.get("compound"):
        # A compound filter needs mcollective's data plugins to evaluate; running a request we
        # cannot prove is meant for us would be worse than staying silent.
        raise SecurityError("compound (-S) filters are not supported by drbootstrap agents")
    facts = []
    for entry in _terms(wire.get("fact"), "fact"):
        if not isinstance(entry, dict):
            raise TypeError("fact filter entry is not a hash")
        operator = str(entry.get("operator", "=="))
        if operator not in _FACT_OPERATORS:
            raise ValueError(f"unknown fact operator {operator[:20]!r}")
        facts.append(FactFilter(_term(entry["fact"]), operator, _term(entry["value"])))
    return Filter(
        identity=tuple(_term(item) for item in _terms(wire.get("identity"), "identity")),
        fact=tuple(facts),
        cf_class=tuple(_term(item) for item in _terms(wire.get("cf_class"), "class")),
        # Security::Base#validate_filter? passes the agent name "mcollective" on every node.
        agent=tuple(_term(item) for item in _terms(wire.get("agent"), "agent") if item != "mcollective"),
    )


_EMPTY_WIRE: dict[str, list[Any]] = {"fact": [], "cf_class": [], "agent": [], "identity": [], "compound": []}
_EMPTY = Filter()
MAX_FILTER_TERMS = 64
MAX_FILTER_TERM_LENGTH = 256


def _terms(value: Any, what: str) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list) or len(value) > MAX_FILTER_TERMS:
        raise ValueError(f"{what} filter is not a list of at most {MAX_FILTER_TERMS} terms")
    return value


def _term(value: Any) -> str:
    if not isinstance(value, (str, int, float)) or isinstance(value, bool) or len(str(value)) > MAX_FILTER_TERM_LENGTH:
        raise ValueError(f"a filter term that is not a string of at most {MAX_FILTER_TERM_LENGTH} characters")
    return str(value)
