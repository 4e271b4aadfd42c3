"""`file://PATH`: the embedded registry. Commits are content-addressed folders, refs one JSON file replaced
atomically, and a file lock serialises writers (two processes never lose a ref or mint one version twice).

    PATH/refs.json                      {"branches": {"releases": SHA, "main": SHA}, "tags": {"v0.1.0": SHA},
                                         "moving": {"canary": {"head", "target", "history"}, "main": ...}}
    PATH/commits/SHA/commit.json        id, parent, title, message, date, files
    PATH/commits/SHA/files/...          the release's files

Release commits chain on `releases`. `main` is the commit `stable` serves (and `moving.main` its state, as for
the moving refs); before the first promote it is a commit holding only the placeholder README. A registry
written before `main` followed `stable` has its release commits on `main` and no `releases`: the first new
upload starts `releases` from there.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import tempfile
from datetime import datetime, timezone
from pathlib import Path

from filelock import FileLock

from adapterci.errors import RegistryError, UsageError
from adapterci.fsio import read_json, staged_dir, write_json_atomic
from adapterci.registry.base import (
    MAIN,
    RELEASES,
    SETTABLE_REFS,
    Commit,
    Entry,
    RefConflict,
    RefRace,
    Refs,
    RefState,
    RegistryViews,
    git_blob_sha1,
)

COMMIT_ID = re.compile(r"[0-9a-f]{40}")  # every commit id this registry mints: a SHA-1 in hex


class LocalRegistry(RegistryViews):
    def __init__(self, root: Path):
        self.root = Path(root)
        self.url = f"file://{self.root}"
        self._lock = FileLock(str(self.root) + ".lock", timeout=120)

    # --- primitives --------------------------------------------------------------------------------------
    def lock(self) -> FileLock:
        """Held for a whole release/promote/rollback: writers queue instead of racing."""
        self._check_root()
        self.root.parent.mkdir(parents=True, exist_ok=True)
        return self._lock

    def refs(self) -> Refs:
        data = self._read_refs()
        moving = {name: RefState(m["head"], m["target"], tuple(m["history"])) for name, m in data["moving"].items()}
        main = data["branches"].get(MAIN)
        if MAIN not in moving and main is not None:  # never moved: the placeholder (or an older layout's release)
            released = main in data["tags"].values()
            moving[MAIN] = RefState(main, main, (main,)) if released else RefState(main, "", ())
        return Refs(tags=dict(data["tags"]), branches=dict(data["branches"]), moving=moving)

    def init_main(self, readme: str) -> bool:
        """Create `main` as a commit holding only `readme` (README.md), unless `main` exists."""
        with self.lock():
            if MAIN in self._read_refs()["branches"]:
                return False
            with tempfile.TemporaryDirectory(prefix="adapterci-main-") as tmp:
                (Path(tmp) / "README.md").write_text(readme, encoding="utf-8")
                sha = self._commit(Path(tmp), None, "main serves `stable` (nothing promoted yet)", "")
            self._update_refs(lambda refs: refs["branches"].__setitem__(MAIN, sha))
            return True

    def commits(self) -> list[Commit]:
        """The release commits (of `releases`, else of an older layout's `main`), newest first; RegistryError
        naming the commit.json whose parent closes a cycle."""
        out, seen, sha = [], set(), _releases_head(self._read_refs())
        while sha:
            seen.add(sha)
            meta = self._meta(sha)
            out.append(Commit(meta["id"], meta["title"], meta["message"], meta["date"]))
            if meta["parent"] in seen:
                raise RegistryError(f"{self._meta_path(sha)}: parent {meta['parent'][:12]} is this commit or one of "
                                    "its descendants (a cycle): the registry was edited by hand; nothing was changed")
            sha = meta["parent"]
        return out

    def upload(self, folder: Path, title: str, message: str, parent: str | None) -> str:
        """One commit holding exactly the files of `folder`, on top of `releases` when it is still at `parent`."""
        with self.lock():
            if _releases_head(self._read_refs()) != parent:
                raise RefConflict(f"`{RELEASES}` of {self.url} moved since it was read")
            sha = self._commit(Path(folder), parent, title, message)
            self._update_refs(lambda refs: refs["branches"].__setitem__(RELEASES, sha))
            return sha

    def tree(self, commit: str) -> dict[str, Entry]:
        """Digests and sizes of the files as stored (read back from disk, not from the commit's own record)."""
        base = self._files(commit)
        return {p.relative_to(base).as_posix(): Entry(f"sha1:{git_blob_sha1(data := p.read_bytes())}", len(data))
                for p in sorted(base.rglob("*")) if p.is_file()}

    def read_file(self, commit: str, path: str) -> bytes | None:
        target = self._files(commit) / path
        return target.read_bytes() if target.is_file() else None

    def download_commit(self, commit: str, dest: Path) -> Path:
        shutil.copytree(self._files(commit), dest, dirs_exist_ok=True)
        return Path(dest)

    def commit_dir(self, commit: str) -> Path:
        """The folder holding a commit's files (what a serving manifest points vLLM at)."""
        return self._files(commit)

    def create_tag(self, name: str, commit: str) -> bool:
        """Create an immutable tag: True if created, False if it already points at `commit`, else RefConflict."""
        with self.lock():
            self._files(commit)
            current = self._read_refs()["tags"].get(name)
            if current == commit:
                return False
            if current is not None:
                raise RefConflict(f"tag {name} already points at {current[:12]}")
            self._update_refs(lambda refs: refs["tags"].__setitem__(name, commit))
            return True

    def set_ref(self, name: str, target: str, history: tuple[str, ...], expected: RefState | None,
                title: str) -> str:
        """Compare-and-swap under the lock: `name` moves to serve `target` only while it is still at `expected`
        (`main` also points its branch at `target`). Returns `target`: the commit whose files it serves."""
        if name not in SETTABLE_REFS:
            raise RegistryError(f"{name!r} is not a moving ref ({', '.join(SETTABLE_REFS)})")
        with self.lock():
            self._files(target)
            current = self.refs().moving.get(name)
            if current != expected:
                raise RefRace(f"`{name}` moved since it was read")
            head = hashlib.sha1(json.dumps([expected.head if expected else None, target, list(history), title])
                                .encode()).hexdigest()
            state = {"head": head, "target": target, "history": list(history)}

            def change(refs: dict) -> None:
                refs["moving"][name] = state
                if name == MAIN:
                    refs["branches"][MAIN] = target

            self._update_refs(change)
            return target

    def serving(self, state: RefState) -> str:
        """A ref here is its target commit's folder (its `head` only names the state)."""
        return state.target

    # --- storage -----------------------------------------------------------------------------------------
    def _commit(self, folder: Path, parent: str | None, title: str, message: str) -> str:
        """Store a commit holding exactly the files of `folder` (no ref moves); returns its id."""
        files = {p.relative_to(folder).as_posix(): git_blob_sha1(p.read_bytes())
                 for p in sorted(folder.rglob("*")) if p.is_file()}
        date = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        meta = {"parent": parent, "title": title, "message": message, "date": date, "files": files}
        sha = hashlib.sha1(json.dumps(meta, sort_keys=True).encode()).hexdigest()
        meta["id"] = sha
        with staged_dir(self.root / "commits" / sha) as tmp:
            shutil.copytree(folder, tmp / "files")
            write_json_atomic(tmp / "commit.json", meta)
        return sha

    def _check_root(self) -> None:
        if self.root.exists() and not self.root.is_dir():
            raise UsageError(f"registry {self.url}: {self.root} is a file, not a directory: point `registry` (or "
                             f"ADAPTERCI_REGISTRY) at a directory")

    def _read_refs(self) -> dict:
        """refs.json, every commit id in it checked (RegistryError naming the file and key otherwise)."""
        self._check_root()
        path = self.root / "refs.json"
        try:
            data = read_json(path) if path.exists() else {}
            if not isinstance(data, dict):
                raise ValueError("expected a JSON object")
            refs = {"branches": _ids(data.get("branches", {}), "branches"), "tags": _ids(data.get("tags", {}), "tags"),
                    "moving": {}}
            moving = data.get("moving", {})
            if not isinstance(moving, dict):
                raise ValueError("`moving` must be an object")
            for name, m in moving.items():
                if not isinstance(m, dict) or not isinstance(m.get("history"), list):
                    raise ValueError(f"`moving.{name}` must be an object with `head`, `target` and `history`")
                refs["moving"][name] = {"head": _id(m.get("head"), f"moving.{name}.head"),
                                        "target": _id(m.get("target"), f"moving.{name}.target"),
                                        "history": [_id(h, f"moving.{name}.history") for h in m["history"]]}
            return refs
        except (ValueError, TypeError, AttributeError, KeyError) as exc:  # truncated or hand-edited
            raise RegistryError(f"{path} is not a valid refs file ({exc}): restore it from a backup; nothing was "
                                "changed") from None

    def _update_refs(self, change) -> None:
        refs = self._read_refs()
        change(refs)
        write_json_atomic(self.root / "refs.json", refs)

    def _meta_path(self, sha: str) -> Path:
        if not isinstance(sha, str) or not COMMIT_ID.fullmatch(sha):  # never a path: `../..` stays out
            raise RegistryError(f"{sha!r} is not a commit id of {self.url} (40 hex digits)")
        return self.root / "commits" / sha / "commit.json"

    def _meta(self, sha: str) -> dict:
        """commit.json of `sha`, checked: an object whose `id` is `sha`, `parent` a commit id or null, text
        fields (RegistryError naming the file otherwise)."""
        path = self._meta_path(sha)
        if not path.is_file():
            raise RegistryError(f"commit {sha[:12]} not found in {self.url}")
        try:
            meta = read_json(path)
            if not isinstance(meta, dict):
                raise ValueError("expected a JSON object")
            if meta.get("id") != sha:
                raise ValueError(f"`id` is {str(meta.get('id'))[:60]!r}, not the commit's own id")
            if meta.get("parent") is not None:
                _id(meta["parent"], "parent")
            for key in ("title", "message", "date"):
                if not isinstance(meta.get(key), str):
                    raise ValueError(f"`{key}` must be a string")
        except (OSError, ValueError) as exc:
            raise RegistryError(f"{path} is not a valid commit record ({exc}): the registry was damaged or edited "
                                "by hand; nothing was changed") from None
        return meta

    def _files(self, sha: str) -> Path:
        self._meta(sha)
        return self.root / "commits" / sha / "files"


def _releases_head(refs: dict) -> str | None:
    """The head of `releases`; before the first release commit, `main` (the placeholder, or an older layout's
    release commits) is where `releases` starts."""
    return refs["branches"].get(RELEASES) or refs["branches"].get(MAIN)


def _id(value, where: str) -> str:
    """A commit id read from the registry's files; ValueError naming `where` for anything else (a path)."""
    if not isinstance(value, str) or not COMMIT_ID.fullmatch(value):
        raise ValueError(f"`{where}`: {str(value)[:60]!r} is not a commit id (40 hex digits)")
    return value


def _ids(names, where: str) -> dict[str, str]:
    if not isinstance(names, dict):
        raise ValueError(f"`{where}` must be an object")
    return {str(name): _id(sha, f"{where}.{name}") for name, sha in names.items()}
