"""mco's filters: parse `-I/-F/-C/-A` the way mco does, and decide whether a node matches.

Semantics (as mco): identity filters are OR'd; fact, class and agent filters are AND'd;
`/regex/` means a regex search; fact comparisons are numeric when both sides are numbers.
Regexes run on RE2 (google-re2), which cannot backtrack: matching takes time linear in the text
whatever the pattern, so a hostile `/^((.*.*)*)*!/` costs microseconds. RE2 has no
backreferences or lookaround; a pattern using them is refused by the client and matches nothing
on an agent (mco's Ruby regexes in filters are plain: anchors, classes, alternation, repeats).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Mapping
from typing import Any, TypeVar

from drbootstrap.errors import MessagingError
from drbootstrap.messaging.envelope import FactFilter, Filter

FACT_OPERATORS = ("==", "!=", "=~", "<=", ">=", "<", ">")
_Comparable = TypeVar("_Comparable", str, float)  # fact and wanted value: both numbers, else both texts
_FACT = re.compile(r"^([^=!<>~]+?)\s*(==|!=|=~|<=|>=|<|>|=)\s*(.*)$")


def parse_fact_filter(text: str) -> FactFilter:
    """`fact=value`, `fact=/re/`, `fact==v`, `fact!=v`, `fact=~re`, `fact<v` ... as mco reads them."""
    match = _FACT.match(text.strip())
    if not match or not match.group(3):
        raise MessagingError(
            f"bad fact filter {text!r}",
            hint="use FACT=VALUE, FACT=/REGEX/ or FACT OP VALUE with one of == != =~ < > <= >=",
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
        return _search(wanted, actual_text)
    left, right = _numbers(actual_text, wanted)
    if operator == "==":
        return left == right if left is not None else actual_text == wanted
    if operator == "!=":
        return left != right if left is not None else actual_text != wanted
    if left is None or right is None:  # _numbers gives both or neither
        return _ordered(operator, actual_text, wanted)
    return _ordered(operator, left, right)


def _ordered(operator: str, left: _Comparable, right: _Comparable) -> bool:
    return {"<": left < right, ">": left > right, "<=": left <= right, ">=": left >= right}.get(operator, False)


def _numbers(left: str, right: str) -> tuple[float | None, float | None]:
    try:
        return float(left), float(right)
    except ValueError:
        return None, None


def _matches_value(pattern: str, value: str) -> bool:
    if _is_regex(pattern):
        return _search(pattern[1:-1], value)
    return pattern == value


def _search(pattern: str, text: str) -> bool:
    compiled = _re2(pattern)
    return compiled is not None and compiled.search(text) is not None


RE2_MAX_MEMORY = 1 << 20  # a pattern needing more (a{1000}{1000}) is refused, not run


@functools.lru_cache(maxsize=256)
def _re2(pattern: str) -> Any:
    """The compiled RE2 pattern, or None when RE2 refuses it (it then matches nothing)."""
    import re2

    options = re2.Options()
    options.log_errors = False  # RE2 would print to stderr; a refusal is ours to report
    options.max_mem = RE2_MAX_MEMORY
    try:
        return re2.compile(pattern, options)
    except Exception:  # noqa: BLE001 - re2 raises its own error type for every bad pattern
        return None


def _is_regex(value: str) -> bool:
    return len(value) > 1 and value.startswith("/") and value.endswith("/")


def _compile(pattern: str, where: str) -> None:
    if _re2(pattern) is None:
        raise MessagingError(
            f"bad regular expression in {where}",
            hint="fix the /regex/ (RE2 syntax: no backreferences or lookaround)",
        )
