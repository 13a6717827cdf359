"""A bounded reader of Ruby Marshal 4.8: the subset MCollective 2.12 messages use, nothing more.

A hostile message must cost at most what its size allows: every count is checked against the
bytes left, nesting is capped, and an object link (`@`) is charged the size of what it points to,
so a 168-byte hash of links standing for 2^40 nodes is refused instead of expanded. Objects,
classes, user types, regexps and hash defaults are refused: no mcollective message carries one.
Values come out as the `rubymarshal` package gives them (Symbol, RubyString, bytes, dict, list).
"""

from __future__ import annotations

import codecs
from typing import Any

from rubymarshal.classes import RubyString, Symbol

MAX_DEPTH = 32  # mco's deepest: envelope -> filter -> fact list -> fact hash -> value
MAX_NODES = 20_000  # values after expanding links; a 256 KiB message of plain values stays below


_TOKENS = [chr(code) for code in range(256)]  # type bytes as the one-character names below
_CONTAINERS = frozenset('"fl[{I')


class MarshalLimitError(ValueError):
    """The bytes are not Marshal data within our bounds (the message says which bound)."""


class BoundedMarshalReader:
    def __init__(self, data: bytes, *, max_depth: int = MAX_DEPTH, max_nodes: int = MAX_NODES) -> None:
        self.data = data
        self.pos = 0
        self.max_depth = max_depth
        self.budget = max_nodes
        self.symbols: list[Symbol] = []
        self.objects: list[tuple[Any, int] | None] = []  # (value, expanded node count); None while open

    def load(self) -> Any:
        if self.data[:2] != b"\x04\x08":
            raise MarshalLimitError("not Ruby Marshal 4.8 data")
        self.pos = 2
        value, _ = self._value(0)
        if self.pos != len(self.data):
            raise MarshalLimitError("trailing bytes after the Marshal data")
        return value

    # -- primitives -----------------------------------------------------------------------------

    def _byte(self) -> int:
        if self.pos >= len(self.data):
            raise MarshalLimitError("truncated Marshal data")
        self.pos += 1
        return self.data[self.pos - 1]

    def _bytes(self, count: int) -> bytes:
        if count < 0 or self.pos + count > len(self.data):
            raise MarshalLimitError("a length beyond the end of the data")
        chunk = self.data[self.pos : self.pos + count]
        self.pos += count
        return chunk

    def _long(self) -> int:
        data, pos = self.data, self.pos
        if pos >= len(data):
            raise MarshalLimitError("truncated Marshal data")
        length = data[pos]
        self.pos = pos + 1
        if length == 0:
            return 0
        if length < 128:  # a signed byte: 1..127
            return length - 5 if length > 5 else self._long_bytes(length)
        length -= 256  # -128..-1
        return length + 5 if length < -5 else self._long_bytes(length)

    def _long_bytes(self, length: int) -> int:
        """A long of |length| little-endian bytes (negative length: a negative number)."""
        size = abs(length)
        if size > 4:
            raise MarshalLimitError("a long of more than 4 bytes")
        value = int.from_bytes(self._bytes(size), "little")
        return value - (1 << (8 * size)) if length < 0 else value

    def _count(self) -> int:
        """An element count: each element takes at least one byte, so more than are left is a lie."""
        count = self._long()
        if count < 0 or count > len(self.data) - self.pos:
            raise MarshalLimitError("an element count larger than the data")
        return count

    def _charge(self, nodes: int) -> None:
        self.budget -= nodes
        if self.budget < 0:
            raise MarshalLimitError("more values than a message may hold (object links expand too far)")

    # -- values ---------------------------------------------------------------------------------

    def _value(self, depth: int) -> tuple[Any, int]:
        """The next value and its expanded node count."""
        if depth > self.max_depth:
            raise MarshalLimitError("nested too deeply")
        self.budget -= 1  # _charge(1), inline: this runs once per value
        if self.budget < 0:
            raise MarshalLimitError("more values than a message may hold (object links expand too far)")
        data, pos = self.data, self.pos
        if pos >= len(data):
            raise MarshalLimitError("truncated Marshal data")
        self.pos = pos + 1
        token = _TOKENS[data[pos]]
        if token == "0":
            return None, 1
        if token == "T":
            return True, 1
        if token == "F":
            return False, 1
        if token == "i":
            return self._long(), 1
        if token == ":":
            return self._symbol_body(), 1
        if token == ";":
            index = self._long()
            if not 0 <= index < len(self.symbols):
                raise MarshalLimitError("a symbol link to nothing")
            return self.symbols[index], 1
        if token == "@":
            index = self._long()
            if not 0 <= index < len(self.objects) or self.objects[index] is None:
                raise MarshalLimitError("an object link to nothing (or to an object still being read)")
            value, size = self.objects[index]  # type: ignore[misc]  # not None: checked above
            self._charge(size - 1)
            return value, size
        if token in _CONTAINERS:
            return self._object(token, depth)
        raise MarshalLimitError(f"a Marshal type mcollective never sends ({token!r})")

    def _object(self, token: str, depth: int) -> tuple[Any, int]:
        index = len(self.objects)
        self.objects.append(None)
        if token == "I":
            if chr(self._byte()) != '"':
                raise MarshalLimitError("instance variables on something other than a String")
            value, size = self._string(self._bytes(self._count())), 1
        elif token == '"':
            value, size = self._bytes(self._count()), 1
        elif token == "f":
            value, size = self._float(self._bytes(self._count())), 1
        elif token == "l":
            value, size = self._bignum(), 1
        elif token == "[":
            value, size = [], 1
            for _ in range(self._count()):
                item, item_size = self._value(depth + 1)
                value.append(item)
                size += item_size
        else:
            value, size = {}, 1
            for _ in range(self._count()):
                key, key_size = self._value(depth + 1)
                if not isinstance(key, (str, bytes, int, Symbol, RubyString)) or isinstance(key, bool):
                    raise MarshalLimitError("a hash key that is not a string, symbol or integer")
                item, item_size = self._value(depth + 1)
                value[key] = item
                size += key_size + item_size
        self.objects[index] = (value, size)
        return value, size

    def _symbol_body(self) -> Symbol:
        raw = self._bytes(self._count())
        try:
            symbol = Symbol(raw.decode("utf-8"))
        except UnicodeDecodeError as error:
            raise MarshalLimitError("a symbol that is not UTF-8") from error
        self.symbols.append(symbol)
        return symbol

    def _string(self, raw: bytes) -> Any:
        """A String with instance variables: E (UTF-8 or US-ASCII) or an encoding name."""
        attributes: dict[str, Any] = {}
        for _ in range(self._count()):
            name, _ = self._value(self.max_depth)
            value, _ = self._value(self.max_depth)
            if not isinstance(name, Symbol):
                raise MarshalLimitError("a String instance variable not named by a symbol")
            attributes[name.name] = value
        encoding = "utf-8" if attributes.get("E") is True else "latin-1"
        if isinstance(attributes.get("encoding"), bytes):
            try:
                encoding = codecs.lookup(attributes["encoding"].decode("ascii")).name
            except (LookupError, UnicodeDecodeError) as error:
                raise MarshalLimitError("a String in an unknown encoding") from error
        try:
            return RubyString(raw.decode(encoding), attributes)
        except UnicodeDecodeError:
            return raw

    @staticmethod
    def _float(raw: bytes) -> float:
        text = raw.split(b"\0")[0].decode("ascii", "replace")
        try:
            return float(text)
        except ValueError as error:
            raise MarshalLimitError("a Float that is not a number") from error

    def _bignum(self) -> int:
        sign = chr(self._byte())
        shorts = self._long()
        if sign not in "+-" or not 0 <= shorts <= 64:
            raise MarshalLimitError("a Bignum out of bounds")
        magnitude = int.from_bytes(self._bytes(shorts * 2), "little")
        return -magnitude if sign == "-" else magnitude


def load_bounded(data: bytes, *, max_depth: int = MAX_DEPTH, max_nodes: int = MAX_NODES) -> Any:
    """Marshal.load within bounds; MarshalLimitError (a ValueError) on anything else."""
    return BoundedMarshalReader(data, max_depth=max_depth, max_nodes=max_nodes).load()
