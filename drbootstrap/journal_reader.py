"""Read a journal file back into its dataclasses, checking every field on the way.

A journal may be cut short by a crash or edited by hand during an outage. Whatever it holds, the
reader answers with the records or with one line naming the line and column to fix: never a
traceback, never a silent fresh start (which would launch every node again).
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
import types
import typing
from collections.abc import Callable
from enum import Enum
from pathlib import Path
from typing import Any, TypeVar

from drbootstrap.errors import DrbError
from drbootstrap.input_files import Unreadable, position_of_char, read_bounded_text

MAX_JOURNAL_BYTES = 64 * 1024 * 1024  # 10,000 nodes with every step done take about 15 MB
MAX_JOURNAL_DEPTH = 32  # objects inside objects; a journal nests 4 deep
MAX_INTEGER_DIGITS = 20  # a count or a generation; longer is an edit gone wrong

T = TypeVar("T")
JsonPath = tuple[str, ...]
RESTORE_HINT = "or restore the journal from a backup"


@dataclasses.dataclass
class JournalFormat:
    """What a journal file must look like: its root dataclass, version, and named key sets."""

    root: type
    version: int
    key_kinds: dict[str, type[Enum]]  # a dict field's name -> the Enum its keys must belong to
    error: Callable[..., DrbError]  # the error class to raise: error(message, hint=...)


class _Invalid(Exception):
    def __init__(self, path: JsonPath, what: str, fix: str, *, at_key: bool = False) -> None:
        super().__init__(what)
        self.path, self.what, self.fix, self.at_key = path, what, fix, at_key


class _HugeInteger(int):
    """An integer literal too long to be a count; refused, located, by the field check."""


def read_journal_file(path: Path, form: JournalFormat) -> Any:
    """The journal at PATH as FORM.root, or FORM.error whose message is `PATH:LINE:COL: what`."""
    try:
        text = read_bounded_text(
            path,
            limit=MAX_JOURNAL_BYTES,
            what="the journal",
            too_big_fix="a journal is at most a few megabytes: check the file, " + RESTORE_HINT,
        )
    except Unreadable as refusal:
        raise form.error(f"{path}:{refusal.line}:{refusal.column}: {refusal.what}", hint=refusal.fix) from None
    return read_journal_text(text, path, form)


def read_journal_text(text: str, path: Path | str, form: JournalFormat) -> Any:
    """Like read_journal_file, for a journal already read (from remote state); PATH names it in errors."""
    if len(text) > MAX_JOURNAL_BYTES:
        raise form.error(f"{path}:1:1: the journal is over {MAX_JOURNAL_BYTES} bytes",
                         hint="a journal is at most a few megabytes: " + RESTORE_HINT.removeprefix("or "))
    raw = _parse(path, text, form)
    try:
        version = raw.get("version") if isinstance(raw, dict) else None
        if not isinstance(raw, dict):
            raise _Invalid((), "the journal must be a JSON object", RESTORE_HINT.removeprefix("or "))
        if version != form.version:
            raise _Invalid(
                ("version",),
                f"journal version {_show(version)} is not {form.version}",
                "run `drbootstrap down` with the version that wrote it, or move the file away",
            )
        return _convert(raw, form.root, (), form)
    except _Invalid as invalid:
        line, column = position_of_char(text, _locate(text, invalid.path, invalid.at_key))
        raise form.error(f"{path}:{line}:{column}: {_one_line(invalid.what)}", hint=invalid.fix) from None


def _parse(path: Path | str, text: str, form: JournalFormat) -> Any:
    try:
        return json.loads(text, parse_int=_integer)
    except json.JSONDecodeError as error:
        cut_short = error.pos >= len(text.rstrip()) or error.msg.startswith("Unterminated string")
        what = "the journal ends in the middle" if cut_short else f"the journal is not valid JSON: {error.msg}"
        fix = "the file was cut short: restore it from a backup" if cut_short else "fix this spot, " + RESTORE_HINT
        raise form.error(f"{path}:{error.lineno}:{error.colno}: {what}", hint=fix) from None
    except RecursionError:
        line, column = position_of_char(text, _too_deep_at(text))
        raise form.error(
            f"{path}:{line}:{column}: the journal nests deeper than {MAX_JOURNAL_DEPTH} levels",
            hint="it is not a journal this tool wrote: " + RESTORE_HINT,
        ) from None


def _integer(literal: str) -> int:
    return int(literal) if len(literal.lstrip("-")) <= MAX_INTEGER_DIGITS else _HugeInteger(0)


def _convert(value: Any, annotation: Any, path: JsonPath, form: JournalFormat) -> Any:
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        members = [arg for arg in args if arg is not type(None)]
        if len(members) == 1:
            return _convert(value, members[0], path, form)
        return value  # no such field today; accepted as written
    if isinstance(annotation, type) and dataclasses.is_dataclass(annotation):  # a record class
        return _record(value, annotation, path, form)
    if origin is dict:
        return _mapping(value, args[1] if len(args) == 2 else Any, path, form)
    if isinstance(annotation, type) and issubclass(annotation, Enum):
        allowed = [member.value for member in annotation]
        if value not in allowed:
            raise _Invalid(path, f"{_where(path)}: {_show(value)} is not one of {', '.join(allowed)}", RESTORE_HINT)
        return annotation(value)
    return _scalar(value, annotation, path)


def _scalar(value: Any, annotation: Any, path: JsonPath) -> Any:
    """str, bool, int (whole, not negative), float (finite, not negative); anything else as is."""
    if annotation is str and not isinstance(value, str):
        raise _Invalid(path, f"{_where(path)}: must be text, got {_show(value)}", "quote it, " + RESTORE_HINT)
    if annotation is bool and not isinstance(value, bool):
        raise _Invalid(path, f"{_where(path)}: must be true or false, got {_show(value)}", RESTORE_HINT)
    if annotation in (int, float):
        number_types = (int,) if annotation is int else (int, float)
        ok = isinstance(value, number_types) and not isinstance(value, (bool, _HugeInteger))
        kind = "a whole number" if annotation is int else "a number of seconds"
        if not ok or not math.isfinite(value) or value < 0:
            raise _Invalid(path, f"{_where(path)}: must be {kind}, 0 or more, got {_show(value)}", RESTORE_HINT)
        return annotation(value)
    return value


def _record(value: Any, cls: type, path: JsonPath, form: JournalFormat) -> Any:
    if not isinstance(value, dict):
        raise _Invalid(path, f"{_where(path)}: must be an object {{...}}, got {_show(value)}", RESTORE_HINT)
    fields = {field.name: field for field in dataclasses.fields(cls) if field.init}
    hints = typing.get_type_hints(cls)
    for key in value:
        if key not in fields:
            raise _Invalid(
                path + (key,),
                f"{_where(path + (key,))}: unknown field",
                f"fields here: {', '.join(fields)}; remove it, " + RESTORE_HINT,
                at_key=True,
            )
    arguments = {}
    for name, field in fields.items():
        if name in value:
            arguments[name] = _convert(value[name], hints[name], path + (name,), form)
        elif field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING:
            raise _Invalid(path, f"{_where(path) or 'the journal'}: missing field '{name}'", f"add it, {RESTORE_HINT}")
    return cls(**arguments)


def _mapping(value: Any, item_type: Any, path: JsonPath, form: JournalFormat) -> dict:
    if not isinstance(value, dict):
        raise _Invalid(path, f"{_where(path)}: must be an object {{...}}, got {_show(value)}", RESTORE_HINT)
    kind = form.key_kinds.get(path[-1]) if path else None
    allowed = [member.value for member in kind] if kind is not None else None
    result = {}
    for key, item in value.items():
        if allowed is not None and key not in allowed:
            raise _Invalid(
                path + (key,),
                f"{_where(path)}: unknown name {json.dumps(key)}",
                f"names here: {', '.join(allowed)}; remove it, {RESTORE_HINT}",
                at_key=True,
            )
        result[key] = _convert(item, item_type, path + (key,), form)
    return result


def _where(path: JsonPath) -> str:
    """nodes.db01.steps; a part that is empty or holds a control character is written as JSON."""
    return ".".join(part if part.isprintable() and part and "." not in part else json.dumps(part) for part in path)


def _one_line(text: str) -> str:
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def _show(value: Any) -> str:
    if isinstance(value, _HugeInteger):
        return f"an integer over {MAX_INTEGER_DIGITS} digits"
    text = (
        json.dumps(value)
        if not isinstance(value, (dict, list))
        else ("an object" if isinstance(value, dict) else "a list")
    )
    return text if len(text) <= 40 else text[:37] + "..."


def _locate(text: str, path: JsonPath, at_key: bool) -> int:
    """Index in TEXT of PATH's value (or key): each key found after the one before it."""
    position, key_at = 0, 0
    for key in path:
        match = re.compile(re.escape(json.dumps(key)) + r"\s*:\s*").search(text, position)
        if match is None:
            return key_at
        key_at, position = match.start(), match.end()
    return key_at if at_key else position


def _too_deep_at(text: str) -> int:
    depth = 0
    for token in re.finditer(r'"(?:[^"\\]|\\.)*"|[\[\]{}]', text):
        if token.group() in "[{":
            depth += 1
            if depth > MAX_JOURNAL_DEPTH:
                return token.start()
        elif token.group() in "]}":
            depth -= 1
    return 0
