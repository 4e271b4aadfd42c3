"""YAML loading that remembers the line of every key, so config errors can name it, within a fixed budget.

A config is small and plain. Before anything is built, one pass over the parser's events (iterative, so deep
nesting cannot exhaust the stack) counts the nodes the document expands to, aliases included, and refuses
more than MAX_NODES (a "billion laughs" file of a few KB would otherwise take minutes and gigabytes), nesting
deeper than MAX_DEPTH, recursive aliases and explicit tags (`!!python/name:`, `!!int ten`, `!custom`).
Merge keys (`<<`) are refused while building, with their line."""

from __future__ import annotations

from typing import Any

import yaml

KeyPath = tuple[str | int, ...]
MAX_BYTES = 1_000_000
MAX_NODES = 100_000
MAX_DEPTH = 64
_MERGE = "tag:yaml.org,2002:merge"
_Parser = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class YamlSyntaxError(ValueError):
    def __init__(self, message: str, line: int | None):
        self.line = line
        super().__init__(message)


def load_with_lines(text: str) -> tuple[Any, dict[KeyPath, int]]:
    """Parse YAML text; return the data and a map from key path to its 1-based line."""
    if len(text) > MAX_BYTES:
        raise YamlSyntaxError(f"the file is {len(text):,} characters, more than a config may have ({MAX_BYTES:,})",
                              None)
    try:
        _check_budget(text)
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        problem = f"{exc.problem or exc}"
        if "maximum nesting depth" in problem:  # PyYAML >= 6.0.4 stops deep flow nesting in its scanner
            problem = f"nested more than {MAX_DEPTH} levels deep"
        raise YamlSyntaxError(problem, mark.line + 1 if mark else None) from None
    except yaml.YAMLError as exc:
        raise YamlSyntaxError(str(exc), None) from None
    lines: dict[KeyPath, int] = {}
    if node is None:
        return None, lines
    return _construct(node, (), lines), lines


def _check_budget(text: str) -> None:
    """Refuse, from the event stream alone, what would be too large or too deep to build."""
    sizes: dict[str, int] = {}  # anchor -> nodes its value expands to
    stack: list[list[Any]] = []  # open collections: [anchor, nodes so far]
    total = 0
    for event in yaml.parse(text, Loader=_Parser):
        line = event.start_mark.line + 1 if event.start_mark else None
        if isinstance(event, (yaml.ScalarEvent, yaml.CollectionStartEvent)) and event.tag is not None:
            tag = event.tag.replace("tag:yaml.org,2002:", "!!")
            raise YamlSyntaxError(f"explicit YAML tags are not allowed in a config ({tag}): write the plain value",
                                  line)
        if isinstance(event, yaml.AliasEvent):
            if event.anchor not in sizes:
                raise YamlSyntaxError(f"alias *{event.anchor} refers to an unknown or enclosing anchor", line)
            size = sizes[event.anchor]
        elif isinstance(event, yaml.ScalarEvent):
            size = 1
            if event.anchor:
                sizes[event.anchor] = 1
        elif isinstance(event, yaml.CollectionStartEvent):
            stack.append([event.anchor, 1])
            total += 1
            if len(stack) > MAX_DEPTH:
                raise YamlSyntaxError(f"nested more than {MAX_DEPTH} levels deep", line)
            continue
        elif isinstance(event, yaml.CollectionEndEvent):
            anchor, size = stack.pop()
            if anchor:
                sizes[anchor] = size
            if stack:
                stack[-1][1] += size
            continue
        else:
            continue
        total += size
        if stack:
            stack[-1][1] += size
        if total > MAX_NODES:
            raise YamlSyntaxError(f"the document expands to more than {MAX_NODES:,} values (aliases included): "
                                  "a config has far fewer", line)


def _construct(node: yaml.Node, path: KeyPath, lines: dict[KeyPath, int]) -> Any:
    lines.setdefault(path, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        out: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            line = key_node.start_mark.line + 1
            if key_node.tag == _MERGE:
                raise YamlSyntaxError("merge keys (`<<`) are not allowed in a config: write the keys out", line)
            if not isinstance(key_node, yaml.ScalarNode):
                raise YamlSyntaxError("a key must be a plain value, not a list or mapping", line)
            key = _scalar(key_node)
            if key in out:
                raise YamlSyntaxError(f"duplicate key {key!r}", line)
            lines[path + (key,)] = line
            out[key] = _construct(value_node, path + (key,), lines)
        return out
    if isinstance(node, yaml.SequenceNode):
        return [_construct(item, path + (i,), lines) for i, item in enumerate(node.value)]
    return _scalar(node)


def _scalar(node: yaml.Node) -> Any:
    try:
        return yaml.SafeLoader(" ").construct_object(node, deep=True)
    except (yaml.YAMLError, ValueError, TypeError, OverflowError) as exc:
        raise YamlSyntaxError(f"cannot read the value {node.value!r}: {exc}", node.start_mark.line + 1) from None


def line_of(lines: dict[KeyPath, int], loc: KeyPath) -> int | None:
    """The line of the longest prefix of `loc` that the YAML text contains."""
    for end in range(len(loc), -1, -1):
        if loc[:end] in lines:
            return lines[loc[:end]]
    return None
