"""The bounded Marshal reader's fast path: one pass from bytes to the plain Python drbootstrap uses.

`load_plain(data)` gives what `ruby_marshal.to_python(load_bounded(data))` gives (symbols and
strings as str, binary strings as bytes when not UTF-8, hash keys as str), in one recursive
function over local state instead of a reader object, its method per value and a second pass.
It keeps every bound of marshal_reader (depth, value budget with links charged their expanded
size, counts within the bytes left, longs of at most 4 bytes, the refused types) and takes only
the shapes MCollective sends. On anything else - a refusal, a String with ivars other than E, a
hash key that is not a string, symbol or integer - it raises NotPlain and the caller goes the
exact old way (marshal_reader, then to_python), so refusals and their messages stay as they were;
tests/unit/test_marshal_plain.py checks both agree over arbitrary bytes.
"""

from __future__ import annotations

from typing import Any

from drbootstrap.messaging.marshal_reader import MAX_DEPTH, MAX_NODES, BoundedMarshalReader


class NotPlain(Exception):
    """The fast path does not take these bytes; marshal_reader decides (and words any refusal)."""


_float = BoundedMarshalReader._float
_ENVELOPE_TOKENS = {"body": 0x22, "hash": 0x49}  # " and I


def load_plain(
    data: bytes, *, envelope: bool = False, max_depth: int = MAX_DEPTH, max_nodes: int = MAX_NODES
) -> Any:
    """Marshal.load(data) as plain Python within marshal_reader's bounds, or NotPlain.

    envelope=True: a top-level hash must be keyed by symbols, its :body a binary String and its
    :hash a String with ivars (as mco writes them), so that plain values mean what the exact
    way's Symbol, bytes and RubyString meant when mcollective.py picks them out."""
    if data[:2] != b"\x04\x08":
        raise NotPlain
    end = len(data)
    pos = 2
    budget = max_nodes
    symbols: list[str] = []
    objects: list[tuple[Any, int] | None] = []

    def long() -> int:
        nonlocal pos
        if pos >= end:
            raise NotPlain
        first = data[pos]
        pos += 1
        if first == 0:
            return 0
        if first < 128:
            if first > 5:
                return first - 5
            if first == 5 or pos + first > end:  # 5 bytes: wider than marshal_reader reads
                raise NotPlain
            pos += first
            return int.from_bytes(data[pos - first : pos], "little")
        if first < 251:
            return first - 251
        size = 256 - first
        if size > 4 or pos + size > end:
            raise NotPlain
        pos += size
        return int.from_bytes(data[pos - size : pos], "little") - (1 << (8 * size))

    def count() -> int:
        number = long()
        if number < 0 or number > end - pos:
            raise NotPlain
        return number

    def chunk() -> bytes:
        """The next length-prefixed bytes: a one-byte length (1..122, the common case) read here,
        any other through count(); within the bytes left either way."""
        nonlocal pos
        size = data[pos] - 5 if pos < end else 0
        if 0 < size < 123:
            pos += 1
            if size > end - pos:
                raise NotPlain
        else:
            size = count()
        pos += size
        return data[pos - size : pos]

    def value(depth: int) -> tuple[Any, int]:  # the value and its expanded node count
        nonlocal pos, budget
        budget -= 1
        if depth > max_depth or budget < 0 or pos >= end:
            raise NotPlain
        token = data[pos]
        pos += 1
        if token == 0x49:  # I: a String with ivars; only E=true/false is plain
            index = len(objects)
            objects.append(None)
            if pos + 1 >= end or data[pos] != 0x22:
                raise NotPlain
            pos += 1
            raw = chunk()
            budget -= 2  # the ivar's name and value
            if budget < 0 or pos + 3 >= end or data[pos] != 0x06:  # one ivar
                raise NotPlain
            link = data[pos + 2]
            if data[pos + 1] == 0x3B and (link == 0 or 5 < link < 128):  # ;n: the symbol E seen before
                link = link - 5 if link else 0
                if link >= len(symbols) or symbols[link] != "E":
                    raise NotPlain
                pos += 3
            elif data[pos + 1 : pos + 4] == b":\x06E":
                symbols.append("E")
                pos += 4
            else:
                raise NotPlain
            if pos >= end:
                raise NotPlain
            flag = data[pos]
            pos += 1
            if flag == 0x54:  # T: UTF-8
                try:
                    text: Any = raw.decode("utf-8")
                except UnicodeDecodeError:
                    text = raw
            elif flag == 0x46:  # F: US-ASCII, read as latin-1 (any byte decodes)
                text = raw.decode("latin-1")
            else:
                raise NotPlain
            objects[index] = (text, 1)
            return text, 1
        if token == 0x3A:  # :
            try:
                name = chunk().decode("utf-8")
            except UnicodeDecodeError:
                raise NotPlain from None
            symbols.append(name)
            return name, 1
        if token == 0x3B:  # ;
            link = long()
            if not 0 <= link < len(symbols):
                raise NotPlain
            return symbols[link], 1
        if token == 0x7B:  # {
            index = len(objects)
            objects.append(None)
            mapping: dict[Any, Any] = {}
            size = 1
            top = envelope and depth == 0
            for _ in range(count()):
                if top and (pos >= end or data[pos] not in b":;"):
                    raise NotPlain
                key, key_size = value(depth + 1)
                if type(key) is not str:
                    if type(key) is not int:
                        raise NotPlain
                    key = str(key)
                if top and (pos >= end or data[pos] != _ENVELOPE_TOKENS.get(key, data[pos])):
                    raise NotPlain
                item, item_size = value(depth + 1)
                mapping[key] = item
                size += key_size + item_size
            objects[index] = (mapping, size)
            return mapping, size
        if token == 0x69:  # i
            if pos < end and 5 < data[pos] < 128:
                pos += 1
                return data[pos - 1] - 5, 1
            return long(), 1
        if token == 0x22:  # ": a binary String, str when it is UTF-8
            raw = chunk()
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError:
                text = raw
            objects.append((text, 1))
            return text, 1
        if token == 0x5B:  # [
            index = len(objects)
            objects.append(None)
            items = []
            size = 1
            for _ in range(count()):
                item, item_size = value(depth + 1)
                items.append(item)
                size += item_size
            objects[index] = (items, size)
            return items, size
        if token == 0x30:  # 0
            return None, 1
        if token == 0x54:  # T
            return True, 1
        if token == 0x46:  # F
            return False, 1
        if token == 0x40:  # @
            link = long()
            if not 0 <= link < len(objects) or objects[link] is None:
                raise NotPlain
            linked, size = objects[link]  # type: ignore[misc]  # not None: checked above
            budget -= size - 1
            if budget < 0:
                raise NotPlain
            return linked, size
        if token == 0x6C:  # l: a Bignum
            index = len(objects)
            objects.append(None)
            if pos >= end or data[pos] not in b"+-":
                raise NotPlain
            negative = data[pos] == 0x2D
            pos += 1
            shorts = long()
            if not 0 <= shorts <= 64 or pos + 2 * shorts > end:
                raise NotPlain
            pos += 2 * shorts
            magnitude = int.from_bytes(data[pos - 2 * shorts : pos], "little")
            number = -magnitude if negative else magnitude
            objects[index] = (number, 1)
            return number, 1
        if token == 0x66:  # f
            index = len(objects)
            objects.append(None)
            try:
                real = _float(chunk())
            except ValueError:
                raise NotPlain from None
            objects[index] = (real, 1)
            return real, 1
        raise NotPlain

    try:
        result, _ = value(0)
    except RecursionError:
        raise NotPlain from None
    if pos != end:
        raise NotPlain
    return result
