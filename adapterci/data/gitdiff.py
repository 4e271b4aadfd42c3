"""Which data rows a change adds: the lines of each file that were not in it at a git ref (`--base-ref`)."""

from __future__ import annotations

import subprocess
from collections import Counter
from pathlib import Path

from adapterci.errors import UsageError


def _git(root: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["git", "-C", str(root), *args], capture_output=True)


def _lines(raw: bytes) -> list[bytes]:
    """Lines as `read_jsonl` numbers them (BOM dropped, CR stripped)."""
    return [line.rstrip(b"\r") for line in raw.removeprefix(b"\xef\xbb\xbf").split(b"\n")]


def added_lines(files: dict[str, Path], start: Path, ref: str) -> set[tuple[str, int]]:
    """(display name, line) of every line of `files` that the file did not hold at `ref`, counted as a
    multiset (a line repeated once more is new). A file absent at `ref` is new throughout."""
    top = _git(start, "rev-parse", "--show-toplevel")
    if top.returncode:
        raise UsageError(f"--base-ref needs a git repository, and {start} is not in one")
    root = Path(top.stdout.decode().strip())
    if _git(root, "rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}").returncode:
        raise UsageError(f"--base-ref {ref!r} is not a commit in {root} (fetch it first, e.g. `git fetch origin {ref}`)")
    new: set[tuple[str, int]] = set()
    for name, path in files.items():
        rel = Path(path).resolve().relative_to(root.resolve()).as_posix()
        old = _git(root, "show", f"{ref}:{rel}")
        before = Counter(_lines(old.stdout)) if old.returncode == 0 else Counter()
        try:
            current = _lines(Path(path).read_bytes())
        except OSError:
            continue
        for lineno, line in enumerate(current, start=1):
            if not line.strip():
                continue  # blank lines hold no row
            if before[line] > 0:
                before[line] -= 1
            else:
                new.add((name, lineno))
    return new
