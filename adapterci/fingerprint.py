"""Content hashes: the keys of caches and the provenance of releases."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Iterable


def hash_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def hash_file(path: Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def hash_json(obj: Any) -> str:
    """sha256 of the canonical JSON form of `obj` (sorted keys, no whitespace)."""
    return hash_bytes(json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str).encode())


def hash_tree(root: Path, exclude: Iterable[str] = ()) -> str:
    """sha256 over the relative paths and contents of every file below `root`; for a file, its own sha256 (a tree
    walk would find nothing below it and hash every file alike)."""
    if Path(root).is_file():
        return hash_file(root)
    skip = set(exclude)
    h = hashlib.sha256()
    for path in sorted(p for p in Path(root).rglob("*") if p.is_file()):
        rel = path.relative_to(root).as_posix()
        if rel in skip or rel.split("/")[0] in skip:
            continue
        h.update(rel.encode() + b"\0" + hash_file(path).encode() + b"\0")
    return h.hexdigest()


def hash_examples(examples: Iterable[Any]) -> str:
    """Fingerprint of normalised examples (independent of file names, line numbers and JSON formatting)."""
    h = hashlib.sha256()
    for ex in examples:
        h.update(json.dumps(ex.as_dict(), sort_keys=True, ensure_ascii=False).encode() + b"\n")
    return h.hexdigest()
