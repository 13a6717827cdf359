"""Spec problems: one located line each, `FILE:LINE:COL: what is wrong (how to fix)`.

Also turns pydantic's validation errors into such problems, with did-you-mean for unknown keys.
"""

from __future__ import annotations

import difflib
import re
import types
import typing
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from drbootstrap.spec.positions import Path_, Position, SourceMap

# Credentials and keys: their values are never echoed in a message.
SECRET_KEYS = frozenset({"credentials", "psk", "tsig_secret", "encryption_key"})
_QUOTED_MAX = 80  # characters of a user's value echoed in a message


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a spec, at a key path; `at_key` points at the key, else its value."""

    path: Path_
    message: str
    hint: str = ""
    at_key: bool = False
    position: Position | None = None  # set when the path alone cannot say where (YAML errors)

    def locate(self, source: SourceMap) -> Position:
        if self.position is not None:
            return self.position
        return source.key(self.path) if self.at_key else source.value(self.path)

    def render(self, filename: str, source: SourceMap) -> str:
        line, column = self.locate(source)
        hint = f" ({self.hint})" if self.hint else ""
        return f"{filename}:{line}:{column}: {one_line(shorten_quoted(self.message))}{one_line(hint)}"


# The tags of tagged unions (spec/models.py): which shape a value took is no part of where it is.
UNION_TAGS = frozenset({"by-id", "by-name", "by-ssm", "by-tags"})
_LONG_QUOTED = re.compile(r"'([^']{%d,})'" % (_QUOTED_MAX + 1))


def shorten_quoted(message: str) -> str:
    """A 'quoted value' the user wrote, cut to its start when long, so the line stays readable."""
    return _LONG_QUOTED.sub(lambda m: f"'{m.group(1)[:_QUOTED_MAX - 3]}...' ({len(m.group(1))} characters)", message)


def one_line(text: str) -> str:
    """Escape newlines and other control characters a user's value may carry into a message."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def dotted(path: Path_) -> str:
    """("nodes", 1, "count") -> "nodes[1].count"."""
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def describe(value: Any) -> str:
    """A short rendering of a YAML value for a message (null/true/false as YAML writes them)."""
    if value is None or isinstance(value, bool):
        return {None: "null", True: "true", False: "false"}[value]
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _is_secret(path: Path_) -> bool:
    return any(part in SECRET_KEYS for part in path if isinstance(part, str))


_TYPE_PHRASES = {
    "string_type": ("must be text", "quote it if YAML reads it as something else"),
    "int_type": ("must be a whole number", "write a number without quotes, e.g. 2"),
    "int_from_float": ("must be a whole number", "write a number without a fraction"),
    "float_type": ("must be a number", "write a number without quotes, e.g. 5"),
    "bool_type": ("must be true or false", "write true or false without quotes"),
    "list_type": ("must be a list", "write [a, b] or one '- item' per line"),
    "dict_type": ("must be a mapping", "write key: value pairs"),
    "model_type": ("must be a mapping", "write key: value pairs"),
    "model_attributes_type": ("must be a mapping", "write key: value pairs"),
    "none_required": ("must be empty", "remove the value"),
}


def from_validation_error(error: ValidationError, root: type[BaseModel], data: Any) -> list[Problem]:
    """One Problem per pydantic error, located by its `loc`, never echoing a secret."""
    problems = []
    for item in error.errors(include_url=False):
        problem = _translate(item, root, data)
        if problem is not None:
            problems.append(problem)
    return problems


def _translate(item: ErrorDetails, root: type[BaseModel], data: Any) -> Problem | None:
    kind = item["type"]
    loc = tuple(part for part in item["loc"] if part not in UNION_TAGS)
    ctx = item.get("ctx") or {}
    on_key = bool(loc) and loc[-1] == "[key]"
    path = loc[:-1] if on_key else loc
    where = dotted(path)
    value = item.get("input")

    if kind == "extra_forbidden":
        return _unknown_key(path, root)
    if kind == "missing":
        parent, name = path[:-1], path[-1]
        place = f" in {dotted(parent)}" if parent else ""
        return Problem(parent, f"missing required key '{name}'{place}", f"add {name}: ...", at_key=True)
    if kind == "drb":
        at = ctx.get("at")
        target = path + (at,) if at else path
        return Problem(target, _prefix(where, ctx["message"]), ctx.get("hint") or "", at_key=on_key)
    if kind == "literal_error":
        got = "" if _is_secret(path) else f", got {describe(value)}"
        return Problem(path, f"{where}: must be one of {ctx['expected']}{got}", "pick one of those values")
    bound = _bound_phrase(kind, ctx)
    if bound is not None:
        phrase, hint = bound
    elif kind in _TYPE_PHRASES:
        phrase, hint = _TYPE_PHRASES[kind]
    else:
        phrase, hint = item["msg"][0].lower() + item["msg"][1:], ""
    got = "" if _is_secret(path) or kind in ("too_short", "too_long") else f", got {describe(value)}"
    return Problem(path, f"{where}: {phrase}{got}", hint, at_key=on_key)


def _prefix(where: str, message: str) -> str:
    return f"{where}: {message}" if where else message


def _bound_phrase(kind: str, ctx: dict) -> tuple[str, str] | None:
    ctx = {k: int(v) if isinstance(v, float) and v.is_integer() else v for k, v in ctx.items()}
    if kind == "greater_than_equal":
        return f"must be at least {ctx['ge']}", f"use {ctx['ge']} or more"
    if kind == "greater_than":
        return f"must be more than {ctx['gt']}", f"use a value above {ctx['gt']}"
    if kind == "less_than_equal":
        return f"must be at most {ctx['le']}", f"use {ctx['le']} or less"
    if kind == "less_than":
        return f"must be less than {ctx['lt']}", f"use a value below {ctx['lt']}"
    if kind == "too_short":
        return f"must have at least {ctx['min_length']} item(s)", "add an item or remove the key"
    if kind == "too_long":
        return f"must have at most {ctx['max_length']} item(s)", "remove some"
    if kind == "string_pattern_mismatch":
        return f"does not match {ctx['pattern']}", "see examples/README.md for this key"
    return None


def _unknown_key(path: Path_, root: type[BaseModel]) -> Problem:
    parent, key = path[:-1], str(path[-1])
    model = model_at(root, parent)
    known = sorted(model.model_fields) if model is not None else []
    close = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
    if close:
        hint = f"did you mean '{close[0]}'?"
    elif known:
        hint = "valid keys here: " + ", ".join(known)
    else:
        hint = "remove it"
    place = f" in {dotted(parent)}" if parent else " at the top level"
    return Problem(path, f"unknown key '{key}'{place}", hint, at_key=True)


def model_at(root: type[BaseModel], path: Path_) -> type[BaseModel] | None:
    """The model class that describes the mapping at `path` (for listing its valid keys)."""
    annotation: Any = root
    for part in path:
        annotation = _unwrap(annotation)
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            field = annotation.model_fields.get(str(part))
            if field is None:
                return None
            annotation = field.annotation
            continue
        origin, args = typing.get_origin(annotation), typing.get_args(annotation)
        if origin is list and args:
            annotation = args[0]
        elif origin is dict and len(args) == 2:
            annotation = args[1]
        else:
            return None
    annotation = _unwrap(annotation)
    return annotation if isinstance(annotation, type) and issubclass(annotation, BaseModel) else None


def _unwrap(annotation: Any) -> Any:
    """Strip Optional[...] and Annotated[...] down to the type that matters."""
    while True:
        origin = typing.get_origin(annotation)
        if origin is typing.Annotated:
            annotation = typing.get_args(annotation)[0]
        elif origin in (typing.Union, types.UnionType):
            members = [arg for arg in typing.get_args(annotation) if arg is not type(None)]
            if len(members) != 1:
                return annotation
            annotation = members[0]
        else:
            return annotation
