"""YAML read with bounds: depth, values after alias expansion, length of one value.

pyyaml's safe loader will compose a 600-byte alias bomb instantly and then expand it for as long
as memory lasts, and recurses once per nesting level. Every YAML we read from outside (the spec,
a node's user-data) goes through BoundedSafeLoader instead.
"""

from __future__ import annotations

from typing import cast

import yaml
from yaml.events import AliasEvent, ScalarEvent

MAX_DEPTH = 64  # mappings and lists inside each other; a real spec nests 6 deep
MAX_VALUES = 25_000  # YAML nodes once every alias is expanded (stops the "billion laughs")
MAX_SCALAR_CHARS = 16_384  # one key or value; a node's whole user-data must fit in 16 KB
MAX_CHARS = 1_048_576  # all keys and values once aliases are expanded (aliases of one long value)


class YamlLimitExceeded(yaml.YAMLError):
    """A bound was crossed while composing: where (mark), what, and how to fix it."""

    def __init__(self, mark: yaml.Mark, message: str, hint: str) -> None:
        super().__init__(f"{message} ({hint})")
        self.mark, self.message, self.hint = mark, message, hint


class BoundedSafeLoader(yaml.SafeLoader):
    """pyyaml's safe loader: at most max_depth deep, max_values values and max_chars characters
    once aliases are expanded, no value over max_scalar_chars.

    pyyaml composes an alias as the very node it names, so nine levels of ten aliases compose
    instantly and only explode when walked. Each node's expanded size is counted as it is
    composed (an alias adds the size of the node it names), so the bomb is refused at the alias
    that crosses the budget, before anything walks it.
    """

    max_depth = MAX_DEPTH
    max_values = MAX_VALUES
    max_scalar_chars = MAX_SCALAR_CHARS
    max_chars = MAX_CHARS

    def __init__(self, text: str) -> None:
        super().__init__(text)
        self._depth = 0
        # values and characters composed so far, aliases counted at their expanded size
        self._values = 0
        self._chars = 0
        self._sizes: dict[int, tuple[int, int]] = {}  # id(anchored node) -> (values, chars) once composed

    def compose_node(self, parent: yaml.Node | None, index: object) -> yaml.Node | None:
        event = self.peek_event()
        mark = cast(yaml.Mark, event.start_mark)  # the parser marks every event it makes
        if isinstance(event, AliasEvent):
            named = self.anchors.get(event.anchor)
            if named is not None:
                if id(named) not in self._sizes:
                    raise YamlLimitExceeded(
                        mark,
                        f"alias *{event.anchor} is inside the collection it names (it would never end)",
                        "write the values out instead of the alias",
                    )
                self._count(*self._sizes[id(named)], mark, alias=True)
            # The stubs say index is an int; PyYAML passes a mapping value's key node there.
            return super().compose_node(parent, index)  # type: ignore[arg-type]
        chars = len(event.value) if isinstance(event, ScalarEvent) else 0
        if chars > self.max_scalar_chars:
            raise YamlLimitExceeded(
                mark,
                f"a value of {chars} characters, over the limit of {self.max_scalar_chars}",
                "shorten it; long text belongs in a file the spec references",
            )
        if self._depth >= self.max_depth:
            raise YamlLimitExceeded(
                mark,
                f"YAML nested more than {self.max_depth} levels deep",
                "flatten the document",
            )
        before = (self._values, self._chars)
        self._count(1, chars, mark, alias=False)
        self._depth += 1
        try:
            node = super().compose_node(parent, index)  # type: ignore[arg-type]  # index: as above
        finally:
            self._depth -= 1
        if event.anchor is not None:
            self._sizes[id(node)] = (self._values - before[0], self._chars - before[1])
        return node

    def _count(self, values: int, chars: int, mark: yaml.Mark, *, alias: bool) -> None:
        self._values += values
        self._chars += chars
        if self._values <= self.max_values and self._chars <= self.max_chars:
            return
        amount = (
            f"more than {self.max_values} values"
            if self._values > self.max_values
            else f"more than {self.max_chars} characters of values"
        )
        if alias:
            raise YamlLimitExceeded(
                mark,
                f"with its aliases expanded the document has {amount}",
                "write the values out instead of repeating them through aliases",
            )
        raise YamlLimitExceeded(mark, f"the document has {amount}", "a spec is a few hundred values")


def load_bounded(text: str) -> object:
    """Like yaml.safe_load, within the bounds above; YamlLimitExceeded (a YAMLError) past them."""
    loader = BoundedSafeLoader(text)
    try:
        return loader.get_single_data()
    finally:
        loader.dispose()
