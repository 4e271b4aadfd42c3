"""Read JSONL files row by row, keeping the file and line of every row and every problem."""

from __future__ import annotations

import glob
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from adapterci.configbase import confine
from adapterci.errors import ConfigError

MAX_LINE_BYTES = 1_000_000
"""A longer line is refused unparsed: no training row or eval item is a megabyte."""
MAX_ROW_DEPTH = 32
"""A row nested deeper (lists and objects) is refused: a chat row is 3 levels deep, and 100,000 nested `[` would
exhaust the parser's stack (and every recursive reader after it)."""


@dataclass(frozen=True)
class Source:
    """Where a row came from: the file (as given, relative when possible) and its 1-based line."""

    file: str
    line: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}"


@dataclass(frozen=True)
class Problem:
    """A row that could not be read or understood."""

    source: Source
    message: str

    def __str__(self) -> str:
        return f"{self.source}: {self.message}"


@dataclass(frozen=True)
class RawRow:
    """One parsed JSON object and where it came from."""

    data: dict[str, Any]
    source: Source


def display_path(path: Path, base: Path | None = None) -> str:
    """`path` relative to `base` (or the cwd) when it lies below it, else absolute."""
    for anchor in (base, Path.cwd()):
        if anchor is not None:
            try:
                return str(Path(path).resolve().relative_to(Path(anchor).resolve()))
            except ValueError:
                pass
    return str(path)


def expand(patterns: list[str], base: Path, root: Path | None = None) -> list[Path]:
    """Files matched by `patterns` (files or globs, relative to `base`), sorted, each once, symlinks resolved.
    ConfigError for a match outside `root` (default `base`) or not a regular file; a missing file is kept
    (its reader reports it)."""
    found: list[Path] = []
    for pattern in patterns:
        full = str(base / pattern)
        matches = sorted(glob.glob(full, recursive=True)) if glob.has_magic(pattern) else [full]
        for match in matches:
            try:
                p = confine(match, root or base, f"data file {os.path.relpath(match, base)} (from `{pattern}`)",
                            must_exist=False)
            except ValueError as exc:
                raise ConfigError(str(exc)) from None
            if p not in found:
                found.append(p)
    return found


def read_jsonl(path: Path, base: Path | None = None) -> tuple[list[RawRow], list[Problem]]:
    """Parse a JSONL file. Never raises for bad content: unreadable lines become problems."""
    name = display_path(path, base)
    rows: list[RawRow] = []
    problems: list[Problem] = []
    try:
        if Path(path).exists() and not Path(path).is_file():  # a FIFO would block the read forever
            return [], [Problem(Source(name, 0), "not a regular file")]
        raw = Path(path).read_bytes()
    except FileNotFoundError:
        return [], [Problem(Source(name, 0), "file not found")]
    except OSError as exc:
        return [], [Problem(Source(name, 0), f"cannot read file: {exc.strerror}")]
    for lineno, line in _lines(raw):
        source = Source(name, lineno)
        if len(line) > MAX_LINE_BYTES:
            problems.append(Problem(source, f"line is {len(line):,} bytes, longer than any row may be "
                                            f"({MAX_LINE_BYTES:,})"))
            continue
        try:
            text = line.decode("utf-8")
        except UnicodeDecodeError as exc:
            problems.append(Problem(source, f"not UTF-8 (byte 0x{line[exc.start]:02x} at column {exc.start + 1})"))
            continue
        if not text.strip():
            continue
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            problems.append(Problem(source, f"malformed JSON: {exc.msg} at column {exc.colno}"))
            continue
        except RecursionError:
            problems.append(Problem(source, f"nested more than {MAX_ROW_DEPTH} levels deep"))
            continue
        if text.count("[") + text.count("{") > MAX_ROW_DEPTH and _depth(data) > MAX_ROW_DEPTH:
            problems.append(Problem(source, f"nested more than {MAX_ROW_DEPTH} levels deep"))
            continue
        if not isinstance(data, dict):
            problems.append(Problem(source, f"expected a JSON object, got {type(data).__name__}"))
            continue
        if "\\u" in text and _lone_surrogate(data):
            problems.append(Problem(source, "contains a lone surrogate escape (such as \\ud800), which is not valid "
                                            "Unicode text"))
            continue
        rows.append(RawRow(data, source))
    if not rows and not problems:
        problems.append(Problem(Source(name, 0), "file is empty"))
    return rows, problems


def _depth(data: Any) -> int:
    """How deeply lists and objects nest in `data` (iteratively: the value may be as deep as the parser allowed)."""
    deepest, stack = 0, [(data, 1)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, (dict, list)):
            deepest = max(deepest, depth)
            if deepest > MAX_ROW_DEPTH:
                return deepest
            stack += [(v, depth + 1) for v in (value.values() if isinstance(value, dict) else value)]
    return deepest


def _lone_surrogate(data: dict[str, Any]) -> bool:
    try:
        json.dumps(data, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def _lines(raw: bytes) -> Iterator[tuple[int, bytes]]:
    if raw.startswith(b"\xef\xbb\xbf"):
        raw = raw[3:]
    for i, line in enumerate(raw.split(b"\n"), start=1):
        yield i, line.rstrip(b"\r")
