"""YAML loading that remembers the line of every key, so config errors can name it."""

from __future__ import annotations

from typing import Any

import yaml

KeyPath = tuple[str | int, ...]


class YamlSyntaxError(ValueError):
    def __init__(self, message: str, line: int | None):
        self.line = line
        super().__init__(message)


def load_with_lines(text: str) -> tuple[Any, dict[KeyPath, int]]:
    """Parse YAML text; return the data and a map from key path to its 1-based line."""
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        raise YamlSyntaxError(f"{exc.problem or exc}", mark.line + 1 if mark else None) from None
    lines: dict[KeyPath, int] = {}
    if node is None:
        return None, lines
    return _construct(node, (), lines), lines


def _construct(node: yaml.Node, path: KeyPath, lines: dict[KeyPath, int]) -> Any:
    lines.setdefault(path, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        out: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            key = yaml.SafeLoader(" ").construct_object(key_node)  # scalars only in our configs
            if key in out:
                raise YamlSyntaxError(f"duplicate key {key!r}", key_node.start_mark.line + 1)
            lines[path + (key,)] = key_node.start_mark.line + 1
            out[key] = _construct(value_node, path + (key,), lines)
        return out
    if isinstance(node, yaml.SequenceNode):
        return [_construct(item, path + (i,), lines) for i, item in enumerate(node.value)]
    loader = yaml.SafeLoader(" ")
    return loader.construct_object(node, deep=True)


def line_of(lines: dict[KeyPath, int], loc: KeyPath) -> int | None:
    """The line of the longest prefix of `loc` that the YAML text contains."""
    for end in range(len(loc), -1, -1):
        if loc[:end] in lines:
            return lines[loc[:end]]
    return None
