"""Load YAML into plain data while remembering where every key and value sits (1-based).

A key path is a tuple such as ("nodes", 1, "count"); `SourceMap.key(path)` is where the key is
written, `SourceMap.value(path)` where its value starts. Problems point at one or the other.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import yaml

Path_ = tuple[str | int, ...]
Position = tuple[int, int]

# Aliases can make a document huge (the "billion laughs"); no real spec nests this deep.
_MAX_DEPTH = 64


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
    loader = yaml.SafeLoader(text)
    try:
        root = loader.get_single_node()
    except yaml.MarkedYAMLError as error:
        return LoadedDocument(None, SourceMap(), [_syntax_error(error)])
    except yaml.YAMLError as error:  # e.g. two documents in one file
        return LoadedDocument(None, SourceMap(), [LocatedYamlError((1, 1), f"YAML error: {error}", "")])
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


def _syntax_error(error: yaml.MarkedYAMLError) -> LocatedYamlError:
    mark = error.problem_mark or error.context_mark
    position = _mark(mark) if mark is not None else (1, 1)
    problem = error.problem or "cannot parse"
    context = f" {error.context}" if error.context else ""
    return LocatedYamlError(
        position,
        f"YAML syntax error: {problem}{context}",
        "check the indentation and quoting on this line and the one above",
    )


class _Builder:
    """Turns composed YAML nodes into dicts/lists/scalars, recording every position."""

    def __init__(self, loader: yaml.SafeLoader, source: SourceMap, errors: list[LocatedYamlError]):
        self.loader = loader
        self.source = source
        self.errors = errors

    def build(self, node: yaml.Node, path: Path_, depth: int) -> Any:
        self.source.values.setdefault(path, _mark(node.start_mark))
        if depth > _MAX_DEPTH:
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
        return self.loader.construct_object(node, deep=True)

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
            key = self.loader.construct_object(key_node)
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
