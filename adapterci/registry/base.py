"""The registry model shared by every backend: commits, refs, versions, and the `Registry` protocol.

A registry holds release commits (each one release's files) on the `releases` branch, immutable version tags
`vMAJOR.MINOR.PATCH`, the moving refs `canary` and `stable`, and `main`, the default revision, which serves what
`stable` serves (before the first promote only a README that says so). A moving ref (and `main`) is moved only
by compare-and-swap (`set_ref` names the state it saw), so it never goes missing and concurrent writers cannot
overwrite each other blindly; its state says which version commit it serves and, for `stable`, which ones it
served before (what `rollback` walks back). Backends implement the primitive operations; `list_versions` and
`resolve_ref` build the views on top of them, so both backends answer the same way. See docs/registry.md.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from adapterci.errors import RegistryError, UsageError

VERSION_RE = re.compile(r"^v(\d+)\.(\d+)\.(\d+)$")
MOVING_REFS = ("canary", "stable")
MAIN = "main"  # the default revision: follows `stable` (set_ref moves it like a moving ref)
SETTABLE_REFS = (*MOVING_REFS, MAIN)
RELEASES = "releases"  # the branch release commits land on (never `main`: it serves `stable`)
MANIFEST = "adapterci.json"
REF_STATE = "adapterci-ref.json"  # on a moved ref's commit: the RefState it records


class RefConflict(RegistryError):
    """A version was taken by another writer (its tag points elsewhere, or `main` moved under an upload)."""


class RefRace(RegistryError):
    """A moving ref is no longer in the state the writer saw: read it again and decide again."""


@dataclass(frozen=True)
class RefState:
    """A moving ref: `head` (what a writer must have seen to move it), the version commit it serves (`target`)
    and the targets it served, oldest first, ending with `target` (what `rollback` walks back). `main` before
    the first promote serves no version: target "" and no history."""

    head: str
    target: str
    history: tuple[str, ...]

    def as_json(self, name: str) -> dict[str, Any]:
        """The content of `adapterci-ref.json` (without `head`: a commit cannot name itself)."""
        return {"ref": name, "target": self.target, "history": list(self.history)}

    @classmethod
    def from_json(cls, head: str, raw: bytes | None, where: str) -> "RefState":
        try:
            data = json.loads(raw or b"")
            target, history = data["target"], tuple(data["history"])
            if not (isinstance(target, str) and history and history[-1] == target
                    and all(isinstance(h, str) for h in history)):
                raise ValueError("target must end history")
        except (ValueError, KeyError, TypeError) as exc:
            raise RegistryError(f"{where}: {REF_STATE} is missing or malformed ({exc}): this ref was not moved by "
                                "adapterci") from None
        return cls(head, target, history)


@dataclass(frozen=True)
class Entry:
    """A file as a registry lists it: `digest` (`sha1:<git blob id>` or, for an LFS file, `sha256:<hex>`) and
    its size in bytes."""

    digest: str
    size: int


@dataclass(frozen=True)
class Commit:
    id: str
    title: str
    message: str
    date: str


@dataclass(frozen=True)
class Refs:
    """Tags and branches, each name -> commit id."""

    tags: dict[str, str] = field(default_factory=dict)
    branches: dict[str, str] = field(default_factory=dict)
    moving: dict[str, RefState] = field(default_factory=dict)

    def versions(self) -> dict[str, str]:
        """Version tags, oldest first."""
        found = {name: sha for name, sha in self.tags.items() if VERSION_RE.match(name)}
        return dict(sorted(found.items(), key=lambda kv: parse_version(kv[0])))

    def target(self, name: str) -> str | None:
        """The version commit the moving ref `name` serves, or None when it was never set."""
        state = self.moving.get(name)
        return (state.target or None) if state else None

    def version_of(self, commit: str | None) -> str | None:
        """The newest version tag on `commit`."""
        tags = [t for t, s in self.versions().items() if s == commit]
        return tags[-1] if tags else None


@dataclass
class Version:
    """One released version: its tag, commit, date, manifest summary and the moving refs at it."""

    version: str
    commit: str
    date: str | None
    manifest: dict[str, Any]
    refs: list[str]

    def as_dict(self) -> dict[str, Any]:
        return {"version": self.version, "commit": self.commit, "date": self.date,
                "refs": self.refs, **self.manifest}


class Registry(Protocol):
    """What a backend provides. Release commits land on `releases`; refs move only through these calls.

    `init_main` gives a registry whose `main` holds nothing yet the placeholder README (False: it already holds
    something). `upload` commits on top of `parent` (the head of `releases` as the caller saw it) and raises
    RefConflict when it has moved. `create_tag` creates an immutable tag: True if created, False if it already
    points at the commit, RefConflict if it points elsewhere. `set_ref` moves `canary`, `stable` or `main` from
    `expected` (None: absent) to serve `target`, recording `history`, and returns the revision that now serves it
    (what a read-back lists); RefRace when the ref is no longer at `expected`. `serving` is that revision for a
    ref in a state read back from `refs`."""

    url: str

    def lock(self) -> AbstractContextManager: ...
    def refs(self) -> Refs: ...
    def commits(self) -> list[Commit]: ...
    def init_main(self, readme: str) -> bool: ...
    def upload(self, folder: Path, title: str, message: str, parent: str | None) -> str: ...
    def tree(self, commit: str) -> dict[str, Entry]: ...
    def read_file(self, commit: str, path: str) -> bytes | None: ...
    def download_commit(self, commit: str, dest: Path) -> Path: ...
    def create_tag(self, name: str, commit: str) -> bool: ...
    def set_ref(self, name: str, target: str, history: tuple[str, ...], expected: RefState | None,
                title: str) -> str: ...
    def serving(self, state: RefState) -> str: ...
    def versions(self) -> list[Version]: ...
    def resolve(self, ref: str) -> Version | None: ...
    def download(self, ref: str, dest: Path) -> Path: ...


class RegistryViews:
    """The read-only views every backend shares, built on its primitives."""

    url: str

    def versions(self) -> list[Version]:
        return list_versions(self)  # type: ignore[arg-type]

    def resolve(self, ref: str) -> Version | None:
        return resolve_ref(self, ref)  # type: ignore[arg-type]

    def download(self, ref: str, dest: Path) -> Path:
        version = self.resolve(ref)
        if version is None:
            raise RegistryError(f"{ref!r} is not a released version in {self.url} (see `adapterci versions`)")
        return self.download_commit(version.commit, dest)  # type: ignore[attr-defined]


def parse_version(tag: str) -> tuple[int, int, int]:
    match = VERSION_RE.match(tag)
    if not match:
        raise ValueError(f"not a version tag: {tag}")
    return tuple(int(x) for x in match.groups())  # type: ignore[return-value]


def git_blob_sha1(data: bytes) -> str:
    """The id git (and the Hub) gives a file's content."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def file_digest(path: Path, kind: str) -> str:
    """`sha1:<git blob id>` or `sha256:<hex>` of a local file, to compare with `Registry.tree`."""
    data = Path(path).read_bytes()
    return f"sha1:{git_blob_sha1(data)}" if kind == "sha1" else f"sha256:{hashlib.sha256(data).hexdigest()}"


def list_versions(reg: Registry) -> list[Version]:
    """Every version, newest first, with its manifest summary and the moving refs pointing at it."""
    refs = reg.refs()
    dates = {c.id: c.date for c in reg.commits()}
    out = []
    for tag, sha in reversed(refs.versions().items()):
        out.append(Version(tag, sha, dates.get(sha), manifest_summary(reg.read_file(sha, MANIFEST)),
                           [name for name in MOVING_REFS if refs.target(name) == sha]))
    return out


def resolve_ref(reg: Registry, ref: str) -> Version | None:
    """`vX.Y.Z`, `canary`, `stable` or a commit id (full or at least 7 hex digits) -> the version at it."""
    refs = reg.refs()
    if VERSION_RE.match(ref):
        sha = refs.tags.get(ref)
    elif ref in MOVING_REFS:
        sha = refs.target(ref)
    elif re.fullmatch(r"[0-9a-f]{7,40}", ref):
        sha = next((s for s in refs.versions().values() if s.startswith(ref)), None)
    else:
        raise UsageError(f"unknown ref {ref!r}: use a version (v1.2.3), `canary`, `stable` or a commit id")
    if sha is None:
        return None
    return next((v for v in list_versions(reg) if v.commit == sha), None)


def manifest_summary(raw: bytes | None) -> dict[str, Any]:
    """The parts of a release manifest a listing shows (tolerant: anything missing is None)."""
    try:
        data = json.loads(raw) if raw else {}
    except ValueError:
        data = {}
    data = data if isinstance(data, dict) else {}
    return {"content_hash": data.get("content_hash"), "base_model": data.get("base_model"),
            "metrics": _metrics(data.get("metrics")), "gate_verdict": data.get("gate_verdict")}


def _metrics(raw: Any) -> dict[str, dict[str, float | None]]:
    """`{suite: {metric: number}}` from a manifest; a value that is not a finite number is None (missing), a
    suite that is not an object is left out: a listing never fails on one odd release."""
    if not isinstance(raw, dict):
        return {}
    out: dict[str, dict[str, float | None]] = {}
    for suite, values in raw.items():
        if isinstance(values, dict):
            out[str(suite)] = {str(name): float(v) if isinstance(v, (int, float)) and not isinstance(v, bool)
                               and math.isfinite(v) else None for name, v in values.items()}
    return out
