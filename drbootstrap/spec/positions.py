"""Load YAML into plain data while remembering where every key and value sits (1-based).

A key path is a tuple such as ("nodes", 1, "count"); `SourceMap.key(path)` is where the key is
written, `SourceMap.value(path)` where its value starts. Problems point at one or the other.
Composition is bounded (drbootstrap.bounded_yaml): depth, values after alias expansion, scalar
length; a recursive alias is refused.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import yaml

from drbootstrap.bounded_yaml import BoundedSafeLoader, YamlLimitExceeded
from drbootstrap.input_files import position_of_char
from drbootstrap.spec.limits import MAX_DEPTH

Path_ = tuple[str | int, ...]
Position = tuple[int, int]


@dataclass
class SourceMap:
    """Positions of keys and values in one YAML document, by key path."""

    keys: dict[Path_, Position] = field(default_factory=dict)
    values: dict[Path_, Position] = field(default_factory=dict)

    def key(self, path: Path_) -> Position:
        """Where the key of `path` is written; falls back to the nearest known ancestor."""
        return self._nearest(path, self.keys) if path else (1, 1)

    def value(self, path: Path_) -> Position:
        """Where the value at `path` starts; falls back to the nearest known ancestor."""
        return self._nearest(path, self.values) if path else (1, 1)

    def has(self, path: Path_) -> bool:
        return path in self.values

    def _nearest(self, path: Path_, table: dict[Path_, Position]) -> Position:
        while path:
            if path in table:
                return table[path]
            path = path[:-1]
        return (1, 1)


@dataclass
class LocatedYamlError:
    """A problem found while reading the YAML itself (syntax, duplicate key)."""

    position: Position
    message: str
    hint: str


@dataclass
class LoadedDocument:
    data: Any
    source: SourceMap
    errors: list[LocatedYamlError]


def load_with_positions(text: str) -> LoadedDocument:
    """Parse `text`; on a syntax error `data` is None and `errors` holds the one located error."""
    try:
        loader = BoundedSafeLoader(text)  # the bounds of drbootstrap.spec.limits
    except yaml.reader.ReaderError as error:  # a control character YAML does not allow
        return LoadedDocument(None, SourceMap(), [_reader_error(text, error)])
    try:
        root = loader.get_single_node()
    except YamlLimitExceeded as error:
        located = LocatedYamlError(_mark(error.mark), error.message, error.hint)
        return LoadedDocument(None, SourceMap(), [located])
    except yaml.MarkedYAMLError as error:
        return LoadedDocument(None, SourceMap(), [_syntax_error(error)])
    except yaml.YAMLError as error:  # e.g. two documents in one file
        return LoadedDocument(
            None, SourceMap(), [LocatedYamlError((1, 1), f"YAML error: {_first_line(str(error))}", "")]
        )
    finally:
        loader.dispose()
    source = SourceMap()
    errors: list[LocatedYamlError] = []
    if root is None:
        return LoadedDocument(None, source, errors)
    builder = _Builder(loader, source, errors)
    try:
        data = builder.build(root, (), 0)
    except yaml.MarkedYAMLError as error:  # a scalar that cannot be constructed (bad timestamp)
        return LoadedDocument(None, SourceMap(), [_syntax_error(error)])
    return LoadedDocument(data, source, errors)


def _mark(mark: yaml.Mark) -> Position:
    return (mark.line + 1, mark.column + 1)


def _first_line(text: str) -> str:
    return text.strip().splitlines()[0] if text.strip() else "cannot parse"


def _reader_error(text: str, error: yaml.reader.ReaderError) -> LocatedYamlError:
    character = error.character if isinstance(error.character, str) else chr(error.character)
    return LocatedYamlError(
        position_of_char(text, error.position),
        f"character U+{ord(character):04X} is not allowed in YAML",
        "remove it; is this a binary file?",
    )


def _syntax_error(error: yaml.MarkedYAMLError) -> LocatedYamlError:
    mark = error.problem_mark or error.context_mark
    position = _mark(mark) if mark is not None else (1, 1)
    problem = _first_line(error.problem or "cannot parse")
    if "another document" in problem:
        return LocatedYamlError(
            position, "a second YAML document", "a spec is one document: remove this '---' and what follows"
        )
    context = f" {_first_line(error.context)}" if error.context else ""
    hint = "check the indentation and quoting on this line and the one above"
    if "end of stream" in problem:
        hint = "the file ends in the middle of a value: was it cut short?"
    elif "undefined alias" in problem:
        hint = "define the anchor first (&name) or write the value out"
    return LocatedYamlError(position, f"YAML syntax error: {problem}{context}", hint)


class _Builder:
    """Turns composed YAML nodes into dicts/lists/scalars, recording every position."""

    def __init__(self, loader: yaml.SafeLoader, source: SourceMap, errors: list[LocatedYamlError]) -> None:
        self.loader = loader
        self.source = source
        self.errors = errors

    def build(self, node: yaml.Node, path: Path_, depth: int) -> Any:
        self.source.values.setdefault(path, _mark(node.start_mark))
        if depth > MAX_DEPTH:  # the loader refuses deeper documents; kept as a guard for the walk
            self.errors.append(
                LocatedYamlError(_mark(node.start_mark), "YAML nested too deeply", "flatten the document")
            )
            return None
        if isinstance(node, yaml.MappingNode):
            return self._mapping(node, path, depth)
        if isinstance(node, yaml.SequenceNode):
            result = []
            for index, item in enumerate(node.value):
                self.source.keys.setdefault(path + (index,), _mark(item.start_mark))
                result.append(self.build(item, path + (index,), depth + 1))
            return result
        return self._scalar(node)

    def _scalar(self, node: yaml.Node) -> Any:
        try:
            return self.loader.construct_object(node, deep=True)
        except yaml.YAMLError:
            raise
        # pyyaml's scalar constructors fail on odd input with whatever Python raises:
        # 2001-02-30 (ValueError), 5000 digits (ValueError), !!bool maybe (KeyError),
        # !!timestamp x (AttributeError).
        except (ValueError, OverflowError, KeyError, AttributeError, TypeError, IndexError) as error:
            self.loader.recursive_objects.pop(node, None)  # else an alias to it reads as recursive
            if isinstance(error, (ValueError, OverflowError)):
                reason = _first_line(str(error)).split(";")[0]
            else:
                reason = f"not a valid !!{node.tag.rsplit(':', 1)[-1]}"
            self.errors.append(
                LocatedYamlError(
                    _mark(node.start_mark),
                    f"cannot read this value: {reason}",
                    "quote it to make it text, or correct it",
                )
            )
            return node.value  # its text, so that the other checks still run on the rest

    def _mapping(self, node: yaml.MappingNode, path: Path_, depth: int) -> dict:
        own_count = sum(1 for key, _ in node.value if key.tag != "tag:yaml.org,2002:merge")
        self.loader.flatten_mapping(node)  # resolves `<<:` merge keys, putting merged pairs first
        merged_count = len(node.value) - own_count
        result: dict = {}
        # Keys written here first (a repeated one is an error), then merged ones they override.
        pairs = [(pair, False) for pair in node.value[merged_count:]]
        # flatten_mapping relies on last-wins, so read the merged pairs backwards for first-wins.
        pairs += [(pair, True) for pair in reversed(node.value[:merged_count])]
        for (key_node, value_node), merged in pairs:
            if not isinstance(key_node, yaml.ScalarNode):
                self.errors.append(
                    LocatedYamlError(
                        _mark(key_node.start_mark), "a key must be a plain word", "write key: value"
                    )
                )
                continue
            key = self._scalar(key_node)
            key = key if isinstance(key, str) else str(key)
            if key in result:
                if not merged:
                    first_line = self.source.keys[path + (key,)][0]
                    self.errors.append(
                        LocatedYamlError(
                            _mark(key_node.start_mark),
                            f"duplicate key '{key}' (first written on line {first_line})",
                            "keep one of them",
                        )
                    )
                continue
            self.source.keys[path + (key,)] = _mark(key_node.start_mark)
            result[key] = self.build(value_node, path + (key,), depth + 1)
        return result
