"""Ruby Marshal 4.8 as MCollective 2.12 writes it: drbootstrap's side of Marshal in one place.

Python values in, Ruby-identical bytes out (marshal_writer; reading goes through the bounded
marshal_reader, or marshal_plain's one-pass path to plain Python). Values read raw are the
`rubymarshal` package's classes (Symbol, RubyString), which the writer also takes:
`Sym("x")` is the symbol :x, str a UTF-8 String, `AsciiStr` a US-ASCII String (what Ruby's
hexdigest and uuid give), integers outside 31 bits Bignums.
"""

from __future__ import annotations

from typing import Any

from rubymarshal.classes import RubyObject, RubyString, Symbol

from drbootstrap.messaging.marshal_writer import AsciiStr, dumps


class MarshalError(ValueError):
    """The bytes are not Ruby Marshal data we accept."""


def Sym(name: str) -> Symbol:  # named like Ruby's :name reads
    return Symbol(name)


def loads_raw(data: bytes) -> Any:
    """Marshal.load(data) into rubymarshal's objects (Symbol, RubyString, bytes), within bounds.

    The reader is drbootstrap's own (marshal_reader): rubymarshal's follows object links and
    element counts without limit, so a few hostile bytes could occupy it for ever.
    """
    from drbootstrap.messaging.marshal_reader import MarshalLimitError, load_bounded

    try:
        return load_bounded(data)
    except MarshalLimitError as error:
        raise MarshalError(str(error)) from error


def to_python(value: Any) -> Any:
    """Plain Python from rubymarshal's objects: symbols and strings become str, keys too.

    Binary (non-UTF-8) strings stay bytes; Ruby objects other than String are refused, since no
    mcollective message carries one and a forged one has no business reaching an agent.
    """
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, Symbol):
        return value.name
    if isinstance(value, RubyString):
        return str(value.text)
    if isinstance(value, bytes):
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError:
            return value
    if isinstance(value, dict):
        return {_key(k): to_python(v) for k, v in value.items()}
    if isinstance(value, list):
        return [to_python(item) for item in value]
    if isinstance(value, RubyObject):
        raise MarshalError(f"unexpected Ruby object of class {value.ruby_class_name}")
    raise MarshalError(f"unexpected value of type {type(value).__name__}")


def _key(key: Any) -> str:
    converted = to_python(key)
    if not isinstance(converted, (str, int)):
        raise MarshalError("hash key that is neither a string, a symbol nor an integer")
    return str(converted)


def symbolize(mapping: dict[str, Any]) -> dict[Symbol, Any]:
    """{"a": 1} -> {:a => 1}: top-level keys as Ruby symbols (what mco's DDL lookups use)."""
    return {Sym(str(key)): value for key, value in mapping.items()}


def raw_string(value: Any) -> bytes | None:
    """The bytes of a Ruby String value as read (binary or tagged), else None."""
    if isinstance(value, bytes):
        return value
    if isinstance(value, RubyString):
        encoding = value.attributes.get("encoding")
        return value.text.encode(encoding.decode() if isinstance(encoding, bytes) else "utf-8")
    if isinstance(value, str):
        return value.encode("utf-8")
    return None


def get(mapping: Any, name: str) -> Any:
    """Hash lookup that accepts either :name or "name" (Ruby code reads both in places)."""
    if not isinstance(mapping, dict):
        return None
    if Sym(name) in mapping:
        return mapping[Sym(name)]
    for key, value in mapping.items():
        if isinstance(key, (str, RubyString)) and str(key) == name:
            return value
    return None


__all__ = ["AsciiStr", "MarshalError", "Sym", "dumps", "get", "loads_raw", "raw_string", "symbolize", "to_python"]
