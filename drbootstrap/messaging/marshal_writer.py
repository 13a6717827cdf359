"""Ruby Marshal 4.8 writer for what drbootstrap sends: one recursive function, no stream object.

Output is byte for byte what drbootstrap wrote through the `rubymarshal` package before
(tests/unit/test_marshal_writer.py compares the two over many shapes): str as a UTF-8 String
(ivar E=true), `AsciiStr` as US-ASCII (E=false), bytes as a binary String, integers in
[-2**30, 2**30) as Fixnum and the rest as Bignum, symbols once and then as symbol links. Only a
hash, array or tagged String that appears twice (the same Python object) is written as an object
link, and its index counts every object Ruby's reader counts (Strings, Floats, Bignums too).
"""

from __future__ import annotations

import re
from typing import Any

from rubymarshal.classes import RubyString, Symbol

# Ruby (64-bit) writes Integers in [-2**30, 2**30) as Fixnum, the rest as Bignum.
FIXNUM_MIN, FIXNUM_MAX = -(2**30), 2**30 - 1
_SIMPLE_FLOAT = re.compile(r"^\d+\.\d*0+$")


class AsciiStr(str):
    """A str Ruby holds as US-ASCII (marshalled with E=false), e.g. request ids and digests."""


def _long_bytes(number: int) -> bytes:
    """Marshal's w_long as rubymarshal writes it (a negative takes the bytes its magnitude needs)."""
    if number == 0:
        return b"\x00"
    if 0 < number < 123:
        return bytes((number + 5,))
    if -124 < number < 0:
        return bytes(((number - 5) & 0xFF,))
    size = (number.bit_length() + 7) // 8
    if size > 5:
        raise ValueError(f"{number} too long for serialization")
    if number < 0:
        return bytes((256 - size,)) + (number + (1 << (8 * size))).to_bytes(size, "little")
    return bytes((size,)) + number.to_bytes(size, "little")


_SMALL = {number: _long_bytes(number) for number in range(-1024, 1025)}


def _long(number: int) -> bytes:
    small = _SMALL.get(number)
    return small if small is not None else _long_bytes(number)


class _State:
    __slots__ = ("symbols", "objects", "count")

    def __init__(self) -> None:
        self.symbols: dict[str, int] = {}
        self.objects: dict[int, int] = {}  # id() of a hash, array or RubyString -> its object index
        self.count = 0  # objects written so far, as Ruby's reader numbers them


def _symbol(out: bytearray, state: _State, name: str) -> None:
    index = state.symbols.get(name)
    if index is not None:
        out += b";"
        out += _long(index)
        return
    state.symbols[name] = len(state.symbols)
    encoded = name.encode("utf-8")
    out += b":"
    out += _long(len(encoded))
    out += encoded


def _linked(out: bytearray, state: _State, obj: Any) -> bool:
    """True (and a link written) if OBJ was written before; else OBJ takes the next object index."""
    index = state.objects.get(id(obj))
    if index is not None:
        out += b"@"
        out += _long(index)
        return True
    state.objects[id(obj)] = state.count
    state.count += 1
    return False


def _write(out: bytearray, state: _State, obj: Any) -> None:
    """OBJ's Marshal bytes onto OUT: the exact types drbootstrap sends first, subclasses after."""
    kind = type(obj)
    if kind is str:
        _string(out, state, obj.encode("utf-8"), b"T")
    elif kind is Symbol:
        _symbol(out, state, obj.name)
    elif kind is dict:
        _hash(out, state, obj)
    elif kind is AsciiStr:
        _string(out, state, obj.encode("latin-1"), b"F")
    elif kind is bytes:
        state.count += 1
        out += b'"'
        out += _long(len(obj))
        out += obj
    elif kind is int:
        if FIXNUM_MIN <= obj <= FIXNUM_MAX:
            out += b"i"
            out += _long(obj)
        else:
            _integer(out, state, obj)
    elif obj is None:
        out += b"0"
    elif obj is True:
        out += b"T"
    elif obj is False:
        out += b"F"
    elif isinstance(obj, int):
        _integer(out, state, obj)
    elif isinstance(obj, AsciiStr):
        _string(out, state, obj.encode("latin-1"), b"F")
    elif isinstance(obj, tuple):
        state.count += 1  # a fresh Array each time (as rubymarshal copied it): never linked
        _items(out, state, obj)
    elif isinstance(obj, Symbol):
        _symbol(out, state, obj.name)
    elif isinstance(obj, list):
        if not _linked(out, state, obj):
            _items(out, state, obj)
    elif isinstance(obj, dict):
        _hash(out, state, obj)
    elif isinstance(obj, bytes):
        state.count += 1
        out += b'"'
        out += _long(len(obj))
        out += obj
    elif isinstance(obj, str):
        _string(out, state, obj.encode("utf-8"), b"T")
    elif isinstance(obj, RubyString):
        _ruby_string(out, state, obj)
    elif isinstance(obj, float):
        _float(out, state, obj)
    else:
        raise ValueError(f"unmarshable object: {type(obj).__name__}")


def _string(out: bytearray, state: _State, encoded: bytes, utf8: bytes) -> None:
    """A String with one ivar, E: T (UTF-8) or F (US-ASCII)."""
    state.count += 1
    out += b'I"'
    out += _long(len(encoded))
    out += encoded
    index = state.symbols.get("E")
    if index is None:
        state.symbols["E"] = len(state.symbols)
        out += b"\x06:\x06E"
    else:
        out += b"\x06;"
        out += _long(index)
    out += utf8


def _hash(out: bytearray, state: _State, obj: dict[Any, Any]) -> None:
    if _linked(out, state, obj):
        return
    out += b"{"
    out += _long(len(obj))
    for key, value in obj.items():
        _write(out, state, key)
        _write(out, state, value)


def _items(out: bytearray, state: _State, items: list[Any] | tuple[Any, ...]) -> None:
    out += b"["
    out += _long(len(items))
    for item in items:
        _write(out, state, item)


def _integer(out: bytearray, state: _State, number: int) -> None:
    if FIXNUM_MIN <= number <= FIXNUM_MAX:
        out += b"i"
        out += _long(number)
        return
    state.count += 1
    magnitude = abs(number)
    shorts = (magnitude.bit_length() + 15) // 16
    out += b"l-" if number < 0 else b"l+"
    out += _long(shorts)
    out += magnitude.to_bytes(shorts * 2, "little")


def _float(out: bytearray, state: _State, number: float) -> None:
    text = "%.20g" % number
    if _SIMPLE_FLOAT.match(text):
        text = text.rstrip("0")
    state.count += 1
    encoded = text.encode("utf-8")
    out += b"f"
    out += _long(len(encoded))
    out += encoded


def _ruby_string(out: bytearray, state: _State, obj: RubyString) -> None:
    """A String read back by ruby_marshal.loads_raw (tests re-send them): its ivars as they were."""
    if _linked(out, state, obj):
        return
    attributes = obj.attributes
    if "E" in attributes and not attributes["E"]:
        encoding = "latin-1"
    elif "encoding" in attributes:
        encoding = attributes["encoding"].decode()
    else:
        encoding = "utf-8"
        attributes["E"] = True  # as rubymarshal did: the object is tagged UTF-8 from then on
    encoded = obj.text.encode(encoding)
    out += b'I"'
    out += _long(len(encoded))
    out += encoded
    out += _long(len(attributes))
    for name, value in attributes.items():
        _symbol(out, state, name)
        _write(out, state, value)


def dumps(value: Any) -> bytes:
    """Marshal.dump(value): dict -> Hash (insertion order kept), list/tuple -> Array."""
    out = bytearray(b"\x04\x08")
    _write(out, _State(), value)
    return bytes(out)
