"""`file://PATH`: the embedded registry. Commits are content-addressed folders, refs one JSON file replaced
atomically, and a file lock serialises writers (two processes never lose a ref or mint one version twice).

    PATH/refs.json                      {"branches": {"main": SHA}, "tags": {"v0.1.0": SHA},
                                         "moving": {"canary": {"head", "target", "history"}}}
    PATH/commits/SHA/commit.json        id, parent, title, message, date, files
    PATH/commits/SHA/files/...          the release's files
"""

from __future__ import annotations

import hashlib
import json
import shutil
from datetime import datetime, timezone
from pathlib import Path

from filelock import FileLock

from adapterci.errors import RegistryError
from adapterci.fsio import read_json, staged_dir, write_json_atomic
from adapterci.registry.base import (
    MOVING_REFS,
    Commit,
    RefConflict,
    RefRace,
    Refs,
    RefState,
    RegistryViews,
    git_blob_sha1,
)

DEFAULT_BRANCH = "main"


class LocalRegistry(RegistryViews):
    def __init__(self, root: Path):
        self.root = Path(root)
        self.url = f"file://{self.root}"
        self._lock = FileLock(str(self.root) + ".lock", timeout=120)

    # --- primitives --------------------------------------------------------------------------------------
    def lock(self) -> FileLock:
        """Held for a whole release/promote/rollback: writers queue instead of racing."""
        self.root.parent.mkdir(parents=True, exist_ok=True)
        return self._lock

    def refs(self) -> Refs:
        data = self._read_refs()
        moving = {name: RefState(m["head"], m["target"], tuple(m["history"])) for name, m in data["moving"].items()}
        return Refs(tags=dict(data["tags"]), branches=dict(data["branches"]), moving=moving)

    def commits(self) -> list[Commit]:
        out, sha = [], self._read_refs()["branches"].get(DEFAULT_BRANCH)
        while sha:
            meta = self._meta(sha)
            out.append(Commit(meta["id"], meta["title"], meta["message"], meta["date"]))
            sha = meta["parent"]
        return out

    def upload(self, folder: Path, title: str, message: str, parent: str | None) -> str:
        """One commit holding exactly the files of `folder`, on top of `main` when main is still at `parent`."""
        with self.lock():
            if self._read_refs()["branches"].get(DEFAULT_BRANCH) != parent:
                raise RefConflict(f"`main` of {self.url} moved since it was read")
            files = {p.relative_to(folder).as_posix(): git_blob_sha1(p.read_bytes())
                     for p in sorted(Path(folder).rglob("*")) if p.is_file()}
            date = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
            meta = {"parent": parent, "title": title, "message": message, "date": date, "files": files}
            sha = hashlib.sha1(json.dumps(meta, sort_keys=True).encode()).hexdigest()
            meta["id"] = sha
            with staged_dir(self.root / "commits" / sha) as tmp:
                shutil.copytree(folder, tmp / "files")
                write_json_atomic(tmp / "commit.json", meta)
            self._update_refs(lambda refs: refs["branches"].__setitem__(DEFAULT_BRANCH, sha))
            return sha

    def tree(self, commit: str) -> dict[str, str]:
        """Digests of the files as stored (read back from disk, not from the commit's own record)."""
        base = self._files(commit)
        return {p.relative_to(base).as_posix(): f"sha1:{git_blob_sha1(p.read_bytes())}"
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
                title: str) -> None:
        """Compare-and-swap under the lock: `name` moves to serve `target` only while it is still at `expected`."""
        if name not in MOVING_REFS:
            raise RegistryError(f"{name!r} is not a moving ref ({', '.join(MOVING_REFS)})")
        with self.lock():
            self._files(target)
            current = self.refs().moving.get(name)
            if current != expected:
                raise RefRace(f"`{name}` moved since it was read")
            head = hashlib.sha1(json.dumps([expected.head if expected else None, target, list(history), title])
                                .encode()).hexdigest()
            state = {"head": head, "target": target, "history": list(history)}
            self._update_refs(lambda refs: refs["moving"].__setitem__(name, state))

    # --- storage -----------------------------------------------------------------------------------------
    def _read_refs(self) -> dict:
        path = self.root / "refs.json"
        try:
            data = read_json(path) if path.exists() else {}
            return {"branches": dict(data.get("branches", {})), "tags": dict(data.get("tags", {})),
                    "moving": {name: {"head": str(m["head"]), "target": str(m["target"]), "history": list(m["history"])}
                               for name, m in dict(data.get("moving", {})).items()}}
        except (ValueError, TypeError, AttributeError, KeyError) as exc:  # truncated or hand-edited
            raise RegistryError(f"{path} is not a valid refs file ({exc}): restore it from a backup; nothing was "
                                "changed") from None

    def _update_refs(self, change) -> None:
        refs = self._read_refs()
        change(refs)
        write_json_atomic(self.root / "refs.json", refs)

    def _meta(self, sha: str) -> dict:
        path = self.root / "commits" / sha / "commit.json"
        if not path.is_file():
            raise RegistryError(f"commit {sha[:12]} not found in {self.url}")
        return read_json(path)

    def _files(self, sha: str) -> Path:
        self._meta(sha)
        return self.root / "commits" / sha / "files"
