"""mco's filters: parse `-I/-F/-C/-A` the way mco does, and decide whether a node matches.

Semantics (as mco): identity filters are OR'd; fact, class and agent filters are AND'd;
`/regex/` means a regex search; fact comparisons are numeric when both sides are numbers.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

from drbootstrap.errors import MessagingError
from drbootstrap.messaging.envelope import FactFilter, Filter

FACT_OPERATORS = ("==", "!=", "=~", "<=", ">=", "<", ">")
_FACT = re.compile(r"^([^=!<>~]+?)\s*(==|!=|=~|<=|>=|<|>|=)\s*(.*)$")


def parse_fact_filter(text: str) -> FactFilter:
    """`fact=value`, `fact=/re/`, `fact==v`, `fact!=v`, `fact=~re`, `fact<v` ... as mco reads them."""
    match = _FACT.match(text.strip())
    if not match or not match.group(3):
        raise MessagingError(
            f"bad fact filter {text!r}", hint="use FACT=VALUE, FACT=/REGEX/ or FACT OP VALUE with one of == != =~ < > <= >="
        )
    fact, operator, value = match.groups()
    if operator == "=":
        if len(value) > 1 and value.startswith("/") and value.endswith("/"):
            operator, value = "=~", value[1:-1]
        else:
            operator = "=="
    elif operator == "=~" and len(value) > 1 and value.startswith("/") and value.endswith("/"):
        value = value[1:-1]
    if operator == "=~":
        _compile(value, f"fact filter {text!r}")
    return FactFilter(fact.strip(), operator, value)


def build_filter(
    identity: Iterable[str] = (), fact: Iterable[str] = (), cf_class: Iterable[str] = (), agent: Iterable[str] = ()
) -> Filter:
    """A Filter from command-line strings; regexes are checked here so a typo fails before sending."""
    identities = tuple(identity)
    classes = tuple(cf_class)
    agents = tuple(agent)
    for value in (*identities, *classes, *agents):
        if _is_regex(value):
            _compile(value[1:-1], f"filter {value!r}")
    return Filter(identities, tuple(parse_fact_filter(f) for f in fact), classes, agents)


def matches(
    filter_: Filter, *, identity: str, facts: Mapping[str, object], classes: Iterable[str], agents: Iterable[str]
) -> bool:
    """Whether a node with these properties is one the filter selects."""
    if filter_.identity and not any(_matches_value(pattern, identity) for pattern in filter_.identity):
        return False
    class_list = list(classes)
    for pattern in filter_.cf_class:
        if not any(_matches_value(pattern, name) for name in class_list):
            return False
    agent_list = list(agents)
    for pattern in filter_.agent:
        if not any(_matches_value(pattern, name) for name in agent_list):
            return False
    return all(_fact_matches(rule, facts) for rule in filter_.fact)


def _fact_matches(rule: FactFilter, facts: Mapping[str, object]) -> bool:
    if rule.fact not in facts:
        return False
    actual = facts[rule.fact]
    actual_text = str(actual).lower() if isinstance(actual, bool) else str(actual)
    operator, wanted = rule.operator, rule.value
    if operator == "=~":
        try:
            return re.search(wanted, actual_text) is not None
        except re.error:
            return False
    left, right = _numbers(actual_text, wanted)
    if operator == "==":
        return left == right if left is not None else actual_text == wanted
    if operator == "!=":
        return left != right if left is not None else actual_text != wanted
    if left is None:
        left, right = actual_text, wanted  # type: ignore[assignment]
    return {"<": left < right, ">": left > right, "<=": left <= right, ">=": left >= right}.get(operator, False)


def _numbers(left: str, right: str) -> tuple[float | None, float | None]:
    try:
        return float(left), float(right)
    except ValueError:
        return None, None


def _matches_value(pattern: str, value: str) -> bool:
    if _is_regex(pattern):
        try:
            return re.search(pattern[1:-1], value) is not None
        except re.error:
            return False
    return pattern == value


def _is_regex(value: str) -> bool:
    return len(value) > 1 and value.startswith("/") and value.endswith("/")


def _compile(pattern: str, where: str) -> re.Pattern[str]:
    try:
        return re.compile(pattern)
    except re.error as error:
        raise MessagingError(f"bad regular expression in {where}: {error}", hint="fix the /regex/") from error
