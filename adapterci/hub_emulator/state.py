"""The emulator's data model: repos with git-like commits, branches and tags over content-addressed blobs.

Commit ids and blob ids are computed the way git computes them (sha1 of a typed header + content), so the
client sees 40-hex ids and ETags that are unique per content. Optionally persisted to a data directory.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import threading
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from adapterci.registry.base import git_blob_sha1

DEFAULT_BRANCH = "main"
GITATTRIBUTES = b"*.safetensors filter=lfs diff=lfs merge=lfs -text\n*.bin filter=lfs diff=lfs merge=lfs -text\n"


class HubError(Exception):
    """An API error: HTTP status, message and the `X-Error-Code` the client maps to a typed exception."""

    def __init__(self, status: int, message: str, code: str | None = None):
        super().__init__(message)
        self.status, self.message, self.code = status, message, code


def hub_date(ts: float) -> str:
    """The Hub's date format: millisecond precision, ending in `Z`."""
    return datetime.fromtimestamp(ts, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.") + f"{int(ts * 1000) % 1000:03d}Z"


@dataclass
class Commit:
    id: str
    parent: str | None
    title: str
    message: str
    date: float
    files: dict[str, str]  # path -> blob sha1


@dataclass
class Repo:
    repo_type: str
    repo_id: str
    private: bool
    created: float
    commits: dict[str, Commit] = field(default_factory=dict)
    branches: dict[str, str] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    ref_log: list[tuple[float, dict[str, str], dict[str, str]]] = field(default_factory=list)  # (time, branches, tags)

    def record(self) -> None:
        """Remember the refs as they are now (what a lagging replica answers later, see `as_of`)."""
        self.ref_log = [*self.ref_log[-999:], (_now(), dict(self.branches), dict(self.tags))]

    def as_of(self, when: float) -> "Repo":
        """This repo with the refs it had at `when` (commits are immutable and stay): a stale read."""
        past = [entry for entry in self.ref_log if entry[0] <= when]
        if not past:
            return self
        _, branches, tags = past[-1]
        return Repo(self.repo_type, self.repo_id, self.private, self.created, self.commits, dict(branches), dict(tags))

    def resolve(self, rev: str) -> str:
        """A branch, tag (also as `refs/heads/X`, `refs/tags/X`), commit id or unique commit id prefix of at least
        7 hex digits -> commit id; 404 RevisionNotFound otherwise."""
        if rev.startswith("refs/heads/") and rev[len("refs/heads/"):] in self.branches:
            return self.branches[rev[len("refs/heads/"):]]
        if rev.startswith("refs/tags/") and rev[len("refs/tags/"):] in self.tags:
            return self.tags[rev[len("refs/tags/"):]]
        if rev in self.branches:
            return self.branches[rev]
        if rev in self.tags:
            return self.tags[rev]
        if rev in self.commits:
            return rev
        if re.fullmatch(r"[0-9a-f]{7,39}", rev):
            found = [sha for sha in self.commits if sha.startswith(rev)]
            if len(found) == 1:
                return found[0]
        raise HubError(404, f"Invalid rev id: {rev}", "RevisionNotFound")

    def history(self, rev: str) -> list[Commit]:
        """Commits reachable from `rev`, newest first."""
        out, sha = [], self.resolve(rev)
        while sha:
            commit = self.commits[sha]
            out.append(commit)
            sha = commit.parent
        return out


class HubState:
    """All repos and blobs of one emulator. Every public method holds the lock; mutations are persisted."""

    def __init__(self, data_dir: Path | None = None):
        self.lock = threading.RLock()
        self.repos: dict[tuple[str, str], Repo] = {}
        self.blobs: dict[str, bytes] = {}
        self.data_dir = Path(data_dir) if data_dir else None
        if self.data_dir and (self.data_dir / "state.json").exists():
            self._load()

    # --- repos -------------------------------------------------------------------------------------------
    def repo(self, repo_type: str, repo_id: str) -> Repo:
        """A repo by type (`models` or `model`, ...) and id; 404 RepoNotFound if absent."""
        repo = self.repos.get((_plural(repo_type), repo_id))
        if repo is None:
            raise HubError(404, f"Repository not found: {repo_id}", "RepoNotFound")
        return repo

    def create_repo(self, repo_type: str, repo_id: str, private: bool) -> Repo:
        repo_type = _plural(repo_type)
        with self.lock:
            if (repo_type, repo_id) in self.repos:
                raise HubError(409, "You already created this model repo")
            repo = Repo(repo_type, repo_id, private, _now())
            self.repos[(repo_type, repo_id)] = repo
            self._commit(repo, DEFAULT_BRANCH, {".gitattributes": GITATTRIBUTES}, [], "initial commit", "", None)
            return repo

    def delete_repo(self, repo_type: str, repo_id: str) -> None:
        with self.lock:
            self.repo(repo_type, repo_id)
            del self.repos[(_plural(repo_type), repo_id)]
            self._save()

    # --- commits -----------------------------------------------------------------------------------------
    def commit(self, repo: Repo, branch: str, adds: dict[str, bytes], deletes: list[str], title: str,
               message: str, parent: str | None) -> Commit:
        with self.lock:
            if branch not in repo.branches:
                raise HubError(404, f"Invalid rev id: {branch} is not a branch", "RevisionNotFound")
            if parent and parent != repo.branches[branch]:
                raise HubError(412, "A commit has happened since. Please refresh and try again.")
            return self._commit(repo, branch, adds, deletes, title, message, repo.branches[branch])

    def _commit(self, repo: Repo, branch: str, adds: dict[str, bytes], deletes: list[str], title: str,
                message: str, parent: str | None) -> Commit:
        files = dict(repo.commits[parent].files) if parent else {}
        for path in deletes:
            if path.endswith("/"):
                files = {p: s for p, s in files.items() if not p.startswith(path)}
            elif path in files:
                del files[path]
            else:
                raise HubError(404, f"A file with this name doesn't exist: {path}", "EntryNotFound")
        for path, data in adds.items():
            sha = git_blob_sha1(data)
            self.blobs[sha] = data
            files[path] = sha
        date = _now()
        tree = hashlib.sha1("".join(f"{p}\0{s}\n" for p, s in sorted(files.items())).encode()).hexdigest()
        body = f"tree {tree}\n" + (f"parent {parent}\n" if parent else "") + f"author adapterci {date:.6f}\n\n{title}\n\n{message}"
        sha = hashlib.sha1(b"commit %d\0" % len(body.encode()) + body.encode()).hexdigest()
        commit = Commit(sha, parent, title, message, date, files)
        repo.commits[sha] = commit
        repo.branches[branch] = sha
        repo.record()
        self._save()
        return commit

    # --- refs --------------------------------------------------------------------------------------------
    def create_ref(self, repo: Repo, kind: str, name: str, rev: str) -> None:
        if not valid_ref_name(name):
            raise HubError(400, f"Invalid {kind} name: {name!r}")
        with self.lock:
            table = repo.tags if kind == "tag" else repo.branches
            if name in table:
                raise HubError(409, f"{kind.capitalize()} {name} already exists")
            table[name] = repo.resolve(rev)
            repo.record()
            self._save()

    def delete_ref(self, repo: Repo, kind: str, name: str) -> None:
        with self.lock:
            table = repo.tags if kind == "tag" else repo.branches
            if name not in table:
                raise HubError(404, f"Invalid rev id: {name}", "RevisionNotFound")
            if kind == "branch" and name == DEFAULT_BRANCH:
                raise HubError(403, "You cannot delete the default branch")
            del table[name]
            repo.record()
            self._save()

    # --- persistence -------------------------------------------------------------------------------------
    def _save(self) -> None:
        if not self.data_dir:
            return
        blob_dir = self.data_dir / "blobs"
        blob_dir.mkdir(parents=True, exist_ok=True)
        for sha, data in self.blobs.items():
            if not (blob_dir / sha).exists():
                (blob_dir / sha).write_bytes(data)
        state = [{"repo_type": r.repo_type, "repo_id": r.repo_id, "private": r.private, "created": r.created,
                  "branches": r.branches, "tags": r.tags,
                  "commits": [vars(c) for c in r.commits.values()]} for r in self.repos.values()]
        tmp = self.data_dir / "state.json.tmp"
        tmp.write_text(json.dumps(state), encoding="utf-8")
        os.replace(tmp, self.data_dir / "state.json")

    def _load(self) -> None:
        assert self.data_dir is not None
        for entry in json.loads((self.data_dir / "state.json").read_text(encoding="utf-8")):
            repo = Repo(entry["repo_type"], entry["repo_id"], entry["private"], entry["created"],
                        branches=entry["branches"], tags=entry["tags"])
            repo.commits = {c["id"]: Commit(**c) for c in entry["commits"]}
            self.repos[(repo.repo_type, repo.repo_id)] = repo
        for path in (self.data_dir / "blobs").glob("*"):
            self.blobs[path.name] = path.read_bytes()


def valid_ref_name(name: str) -> bool:
    """git's rules for a ref name (`git check-ref-format`), which the Hub applies to tags and branches."""
    return bool(name) and not (
        name.startswith(("/", ".", "-")) or name.endswith(("/", ".", ".lock")) or ".." in name or "//" in name
        or "@{" in name or name == "@" or "/." in name or re.search(r"[\x00-\x20\x7f~^:?*\[\\]", name))


def _plural(repo_type: str) -> str:
    return repo_type if repo_type.endswith("s") else repo_type + "s"


def _now() -> float:
    return datetime.now(timezone.utc).timestamp()
