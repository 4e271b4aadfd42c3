"""The emulator's data model: repos with git-like commits, branches and tags over content-addressed blobs.

Commit ids and blob ids are computed the way git computes them (sha1 of a typed header + content), so the
client sees 40-hex ids and ETags that are unique per content. A commit maps each path to its content's key in
`blobs`: the git blob sha1 for a regular file, the sha256 (64 hex) for an LFS file, whose object must have been
uploaded to that repo's LFS storage. Repo ids are case-insensitive (`Org/Name` is `org/name`), as on the Hub.
Optionally persisted to a data directory.
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

from adapterci.hub_emulator.lfs import GITATTRIBUTES, SHA256, pointer
from adapterci.registry.base import git_blob_sha1

DEFAULT_BRANCH = "main"
STALE_PARENT = "The branch was updated since you opened this page. Please refresh and try again."


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
    files: dict[str, str]  # path -> blob sha1 (regular file) or sha256 (LFS file)


@dataclass
class Repo:
    repo_type: str
    repo_id: str
    private: bool
    created: float
    commits: dict[str, Commit] = field(default_factory=dict)
    branches: dict[str, str] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    lfs: set[str] = field(default_factory=set)  # sha256 of the LFS objects uploaded (and verified) to this repo
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
        return Repo(self.repo_type, self.repo_id, self.private, self.created, self.commits, dict(branches), dict(tags),
                    self.lfs)

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
        self.staged: dict[tuple[str, str, str], bytes] = {}  # (type, id, sha256) -> LFS upload awaiting `verify`
        self.data_dir = Path(data_dir) if data_dir else None
        if self.data_dir and (self.data_dir / "state.json").exists():
            self._load()

    # --- repos -------------------------------------------------------------------------------------------
    def repo(self, repo_type: str, repo_id: str) -> Repo:
        """A repo by type (`models` or `model`, ...) and id (any case); 404 RepoNotFound if absent."""
        repo = self.repos.get(repo_key(repo_type, repo_id))
        if repo is None:
            raise HubError(404, f"Repository not found: {repo_id}", "RepoNotFound")
        return repo

    def create_repo(self, repo_type: str, repo_id: str, private: bool) -> Repo:
        repo_type = _plural(repo_type)
        with self.lock:
            if repo_key(repo_type, repo_id) in self.repos:
                raise HubError(409, "You already created this model repo")
            repo = Repo(repo_type, repo_id, private, _now())
            self.repos[repo_key(repo_type, repo_id)] = repo
            self._commit(repo, DEFAULT_BRANCH, {".gitattributes": GITATTRIBUTES}, [], "initial commit", "", None)
            return repo

    def delete_repo(self, repo_type: str, repo_id: str) -> None:
        with self.lock:
            self.repo(repo_type, repo_id)
            del self.repos[repo_key(repo_type, repo_id)]
            self._save()

    # --- commits -----------------------------------------------------------------------------------------
    def commit(self, repo: Repo, branch: str, adds: dict[str, bytes], deletes: list[str], title: str,
               message: str, parent: str | None, lfs_adds: dict[str, str] | None = None) -> Commit:
        """A commit on `branch`: `adds` regular files (path -> content), `lfs_adds` LFS files (path -> sha256 of an
        object in the repo's LFS storage). 412 when `parent` is given and is not the branch's head."""
        with self.lock:
            if branch not in repo.branches:
                raise HubError(404, f"Invalid rev id: {branch} is not a branch", "RevisionNotFound")
            if parent and parent != repo.branches[branch]:
                raise HubError(412, STALE_PARENT)
            missing = sorted(p for p, oid in (lfs_adds or {}).items() if oid not in repo.lfs)
            if missing:
                raise HubError(400, "Your push was rejected because an LFS pointer pointed to a file that does not "
                                    f"exist. Offending files: {', '.join(missing)}")
            return self._commit(repo, branch, adds, deletes, title, message, repo.branches[branch], lfs_adds)

    def _commit(self, repo: Repo, branch: str, adds: dict[str, bytes], deletes: list[str], title: str,
                message: str, parent: str | None, lfs_adds: dict[str, str] | None = None) -> Commit:
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
        files.update(lfs_adds or {})
        date = _now()
        tree = hashlib.sha1("".join(f"{p}\0{self.git_oid(s)}\n" for p, s in sorted(files.items())).encode()).hexdigest()
        body = f"tree {tree}\n" + (f"parent {parent}\n" if parent else "") + f"author adapterci {date:.6f}\n\n{title}\n\n{message}"
        sha = hashlib.sha1(b"commit %d\0" % len(body.encode()) + body.encode()).hexdigest()
        commit = Commit(sha, parent, title, message, date, files)
        repo.commits[sha] = commit
        repo.branches[branch] = sha
        repo.record()
        self._save()
        return commit

    def is_lfs(self, key: str) -> bool:
        """Whether a commit's file key names an LFS object (sha256) rather than a git blob (sha1)."""
        return SHA256.fullmatch(key) is not None

    def git_oid(self, key: str) -> str:
        """The git blob id of a committed file: its own sha1, or the sha1 of its LFS pointer."""
        return git_blob_sha1(pointer(key, len(self.blobs[key]))) if self.is_lfs(key) else key

    def store_lfs(self, repo: Repo, oid: str, data: bytes) -> None:
        """Keep an uploaded LFS object whose content matches its sha256 (checked by the caller)."""
        with self.lock:
            self.blobs[oid] = data
            repo.lfs.add(oid)
            self._save()

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
                  "branches": r.branches, "tags": r.tags, "lfs": sorted(r.lfs),
                  "commits": [vars(c) for c in r.commits.values()]} for r in self.repos.values()]
        tmp = self.data_dir / "state.json.tmp"
        tmp.write_text(json.dumps(state), encoding="utf-8")
        os.replace(tmp, self.data_dir / "state.json")

    def _load(self) -> None:
        assert self.data_dir is not None
        for entry in json.loads((self.data_dir / "state.json").read_text(encoding="utf-8")):
            repo = Repo(entry["repo_type"], entry["repo_id"], entry["private"], entry["created"],
                        branches=entry["branches"], tags=entry["tags"], lfs=set(entry.get("lfs", [])))
            repo.commits = {c["id"]: Commit(**c) for c in entry["commits"]}
            self.repos[repo_key(repo.repo_type, repo.repo_id)] = repo
        for path in (self.data_dir / "blobs").glob("*"):
            self.blobs[path.name] = path.read_bytes()


def valid_ref_name(name: str) -> bool:
    """git's rules for a ref name (`git check-ref-format`), which the Hub applies to tags and branches."""
    return bool(name) and not (
        name.startswith(("/", ".", "-")) or name.endswith(("/", ".", ".lock")) or ".." in name or "//" in name
        or "@{" in name or name == "@" or "/." in name or re.search(r"[\x00-\x20\x7f~^:?*\[\\]", name))


def repo_key(repo_type: str, repo_id: str) -> tuple[str, str]:
    """The key of a repo in `HubState.repos`: plural type and the id in lower case (ids are case-insensitive)."""
    return _plural(repo_type), repo_id.lower()


def _plural(repo_type: str) -> str:
    return repo_type if repo_type.endswith("s") else repo_type + "s"


def _now() -> float:
    return datetime.now(timezone.utc).timestamp()
