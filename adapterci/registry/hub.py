"""`hf://OWNER/NAME`: the Hugging Face Hub through the real `huggingface_hub` client.

Releases are commits on the branch `releases` made with `parent_commit` (the Hub answers 412 when it moved),
versions are tags, `canary`/`stable` are branches, and `main` (the default revision every unpinned consumer
gets) serves what `stable` serves. A branch is created once at a version commit and from then on moved only by
a commit guarded by `parent_commit` that copies the target version's files and records the ref's state in
`adapterci-ref.json`: the Hub's compare-and-swap, so a ref never goes missing and a concurrent move is refused
instead of lost (docs/registry.md). `main` exists from the repo's creation and moves the same way; before the
first promote it holds only a README. Transient failures are retried in one layer with a total time budget
(`hubhttp.py`); every error is rewritten without the token. `huggingface_hub` is imported lazily: it reads
`HF_ENDPOINT` once at import.

Xet is disabled for this client (`constants.HF_HUB_DISABLE_XET`): LFS files then travel through the classic LFS
batch API on the client's HTTP session, inside the one retry layer, its timeouts and the environment's proxies;
hf_xet's own transfer client would bypass all three. Adapters are megabytes, so Xet's deduplication buys nothing.

Environment: HF_TOKEN (or the usual `hf auth login`), ADAPTERCI_HUB_RETRY_S (time budget of one call's retries,
default 20 s), ADAPTERCI_HUB_BACKOFF (first wait in seconds, default 1), ADAPTERCI_HUB_TIMEOUT (per request,
default 60 s).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from contextlib import nullcontext
from pathlib import Path
from typing import Callable, TypeVar

from adapterci import settings
from adapterci.errors import RegistryError
from adapterci.registry.base import (
    MAIN,
    REF_STATE,
    RELEASES,
    SETTABLE_REFS,
    Commit,
    Entry,
    RefConflict,
    RefRace,
    Refs,
    RefState,
    RegistryViews,
)
from adapterci.registry.hubhttp import TRANSIENT_STATUS, HubTransient, causes, client_factory, retrying

T = TypeVar("T")
LFS_VERIFY = "/info/lfs/objects/verify"  # the git-lfs verify step: 4xx when the stored object does not match
_TOKEN_RE = re.compile(r"hf_[A-Za-z0-9]{8,}")


class HubRegistry(RegistryViews):
    def __init__(self, repo_id: str, private: bool = True):
        self.repo_id = repo_id
        self.url = f"hf://{repo_id}"
        self.private = private
        env = settings.current()
        self.retry_s, self.backoff, self.timeout = env.hub_retry_s, env.hub_backoff_s, env.hub_timeout_s
        self._api = None
        self._repo_ready = False
        self._releases_ready = False

    @property
    def api(self):
        if self._api is None:
            from huggingface_hub import HfApi, constants, set_client_factory

            constants.HF_HUB_DISABLE_XET = True  # see the module docstring: every transfer inside the retry layer
            set_client_factory(client_factory(self.timeout))  # process-wide: the client has one shared session
            self._api = HfApi()
        return self._api

    # --- primitives --------------------------------------------------------------------------------------
    def lock(self):
        """No cross-process lock on the Hub: every write is a create-if-absent or a `parent_commit` swap."""
        return nullcontext()

    def refs(self) -> Refs:
        from huggingface_hub.errors import RepositoryNotFoundError

        try:
            listed = self._call("list refs", lambda: self.api.list_repo_refs(self.repo_id))
        except RepositoryNotFoundError:
            self._check_token()  # "not found" may mean "not visible with this token"
            return Refs()
        tags = {t.name: t.target_commit for t in listed.tags}
        branches = {b.name: b.target_commit for b in listed.branches}
        released = set(Refs(tags=tags).versions().values())
        moving = {name: self._ref_state(name, head, released) for name in SETTABLE_REFS
                  if (head := branches.get(name)) is not None}
        return Refs(tags=tags, branches=branches, moving=moving)

    def commits(self) -> list[Commit]:
        """The release commits, newest first: those of `releases`, or before it exists those of `main` (the
        placeholder, or the release commits of a repo from before `main` followed `stable`)."""
        from huggingface_hub.errors import RepositoryNotFoundError, RevisionNotFoundError

        try:
            try:
                found = self._call("list commits", lambda: self.api.list_repo_commits(self.repo_id, revision=RELEASES))
            except RevisionNotFoundError:
                found = self._call("list commits", lambda: self.api.list_repo_commits(self.repo_id, revision=MAIN))
        except RepositoryNotFoundError:
            return []
        return [Commit(c.commit_id, c.title, c.message, c.created_at.strftime("%Y-%m-%dT%H:%M:%S.%fZ"))
                for c in found]

    def init_main(self, readme: str) -> bool:
        """Create the repo if needed and commit `readme` as README.md onto a `main` that holds nothing else than
        `.gitattributes` (a new repo). False when `main` already holds more, or another writer just did it."""
        from huggingface_hub import CommitOperationAdd

        self._ensure_repo()
        info = self._call("list files", lambda: self.api.model_info(self.repo_id, revision=MAIN))
        if {s.rfilename for s in info.siblings or []} - {".gitattributes"}:
            return False
        try:
            self._guarded("write the README of main", lambda: self.api.create_commit(
                self.repo_id, [CommitOperationAdd("README.md", readme.encode())], revision=MAIN,
                commit_message="main serves `stable` (nothing promoted yet)", parent_commit=info.sha),
                RefRace("main moved"))
        except RefRace:
            return False
        return True

    def upload(self, folder: Path, title: str, message: str, parent: str | None) -> str:
        """One commit on `releases` on top of `parent`, holding exactly the files of `folder` (stale files
        deleted); the branch starts at `parent` if it does not exist yet. RefConflict when `releases` is no longer
        at `parent` (the Hub's 412), nothing committed. `folder` must differ from every commit: the client answers
        an unchanged tree with the head, without asking the Hub."""
        from huggingface_hub import CommitOperationAdd, CommitOperationDelete

        self._ensure_repo()
        conflict = RefConflict(f"`{RELEASES}` of {self.url} moved since it was read")
        if parent is None:  # the repo was created just now (by us or a concurrent release): read its head again
            raise RefConflict(f"{self.url} had no commits when the version was chosen")
        if not self._releases_ready:  # create-if-absent; 409: it exists (the commit below checks where)
            try:
                self._guarded(f"create {RELEASES}", lambda: self.api.create_branch(
                    self.repo_id, branch=RELEASES, revision=parent), conflict)
            except RefConflict:
                pass
            self._releases_ready = True
        files = {p.relative_to(folder).as_posix(): p for p in sorted(Path(folder).rglob("*")) if p.is_file()}
        current = set(self._paths(parent))

        def commit() -> str:
            ops = [CommitOperationAdd(rel, str(path)) for rel, path in files.items()]
            ops += [CommitOperationDelete(p) for p in sorted(current - set(files) - {".gitattributes"})]
            return self.api.create_commit(self.repo_id, ops, commit_message=title, commit_description=message,
                                          revision=RELEASES, parent_commit=parent).oid

        return self._guarded("upload", commit, conflict)

    def tree(self, commit: str) -> dict[str, Entry]:
        """Every file of `commit` as the Hub lists it: git blob id (LFS: sha256) and size."""
        from huggingface_hub.hf_api import RepoFile

        entries = self._call("read back the file list",
                             lambda: list(self.api.list_repo_tree(self.repo_id, revision=commit, recursive=True)))
        return {e.path: (Entry(f"sha256:{e.lfs.sha256}", e.lfs.size) if e.lfs else Entry(f"sha1:{e.blob_id}", e.size))
                for e in entries if isinstance(e, RepoFile)}

    def read_file(self, commit: str, path: str) -> bytes | None:
        from huggingface_hub import hf_hub_download
        from huggingface_hub.errors import EntryNotFoundError

        try:
            local = self._call(f"download {path}",
                               lambda: hf_hub_download(self.repo_id, path, revision=commit))
        except EntryNotFoundError:
            return None
        return Path(local).read_bytes()

    def download_commit(self, commit: str, dest: Path) -> Path:
        from huggingface_hub import snapshot_download

        with tempfile.TemporaryDirectory() as tmp:
            self._call("download", lambda: snapshot_download(self.repo_id, revision=commit, local_dir=tmp))
            shutil.copytree(tmp, dest, dirs_exist_ok=True, ignore=shutil.ignore_patterns(".cache", REF_STATE))
        return Path(dest)

    def create_tag(self, name: str, commit: str) -> bool:
        """Create an immutable tag: True if created, False if it already points at `commit`, else RefConflict."""
        try:
            self._call(f"create tag {name}", lambda: self.api.create_tag(self.repo_id, tag=name, revision=commit))
            return True
        except RegistryError as exc:
            if _status(exc.__cause__) != 409:
                raise
        current = self.refs().tags.get(name)
        if current != commit:
            raise RefConflict(f"tag {name} already points at {(current or 'a commit not listed yet')[:12]}")
        return False

    def set_ref(self, name: str, target: str, history: tuple[str, ...], expected: RefState | None,
                title: str) -> str:
        """Create the branch at `target` (expected None; 409 -> RefRace), or commit onto it with `parent_commit`
        = the head that was seen: the target's files plus `adapterci-ref.json` (412 -> RefRace). Returns the new
        head (what a read-back lists)."""
        from huggingface_hub import CommitOperationAdd, CommitOperationCopy, CommitOperationDelete

        if name not in SETTABLE_REFS:
            raise RegistryError(f"{name!r} is not a moving ref ({', '.join(SETTABLE_REFS)})")
        race = RefRace(f"`{name}` of {self.url} moved since it was read")
        if expected is None:
            if history != (target,) or name == MAIN:
                raise RegistryError(f"a new `{name}` starts with its target as its whole history")
            self._guarded(f"create {name}", lambda: self.api.create_branch(self.repo_id, branch=name,
                                                                          revision=target), race)
            return target
        want, have = set(self._paths(target)), set(self._paths(expected.head))
        state = json.dumps(RefState(expected.head, target, history).as_json(name), indent=2).encode()

        def commit() -> str:
            ops = [CommitOperationCopy(p, p, src_revision=target) for p in sorted(want)]
            ops += [CommitOperationDelete(p) for p in sorted(have - want - {REF_STATE})]
            ops.append(CommitOperationAdd(REF_STATE, state))
            return self.api.create_commit(self.repo_id, ops, commit_message=title, revision=name,
                                          parent_commit=expected.head).oid

        return self._guarded(f"move {name}", commit, race)

    def serving(self, state: RefState) -> str:
        """The branch head: its files are what the ref serves."""
        return state.head

    # --- plumbing ----------------------------------------------------------------------------------------
    def _ref_state(self, name: str, head: str, released: set[str]) -> RefState:
        """A branch created at a release commit serves it; a moved one says what it serves in its ref file;
        `main` without one serves no version (the placeholder README)."""
        raw = None if head in released else self.read_file(head, REF_STATE)
        if raw is None:
            return RefState(head, head, (head,)) if name != MAIN or head in released else RefState(head, "", ())
        return RefState.from_json(head, raw, f"`{name}` of {self.url} at {head[:12]}")

    def _paths(self, commit: str) -> list[str]:
        info = self._call("list files", lambda: self.api.model_info(self.repo_id, revision=commit))
        return [s.rfilename for s in info.siblings or []]

    def _guarded(self, what: str, fn: Callable[[], T], conflict: RegistryError) -> T:
        """`_call`, with the Hub's answer to a lost race (409 exists, 412 stale parent) raised as `conflict`."""
        try:
            return self._call(what, fn)
        except RegistryError as exc:
            if _status(exc.__cause__) in (409, 412):
                raise conflict from None
            raise

    def _check_token(self) -> None:
        try:
            self._call("check the token", self.api.whoami)
        except RegistryError as exc:
            if _status(exc.__cause__) == 401:
                raise RegistryError(f"the Hub rejected the token for {self.url}: set HF_TOKEN (or `hf auth login`) "
                                    "to a token with write access") from None
            raise

    def _ensure_repo(self) -> None:
        if not self._repo_ready:
            try:
                self._call("create repo", lambda: self.api.create_repo(self.repo_id, private=self.private,
                                                                       exist_ok=True))
            except RegistryError as exc:
                if _status(exc.__cause__) == 401:
                    self._check_token()  # says so when the token is the problem
                raise
            self._repo_ready = True

    def _call(self, what: str, fn: Callable[[], T]) -> T:
        """Run one client call; transient failures are retried within ADAPTERCI_HUB_RETRY_S (hubhttp.retrying).

        Not-found errors pass through unchanged for callers that expect them; every other failure becomes a
        RegistryError (the client's exception as its cause) whose message never contains the token."""
        from huggingface_hub.errors import EntryNotFoundError, RepositoryNotFoundError, RevisionNotFoundError

        def gave_up(exc: BaseException, attempts: int, elapsed: float) -> RegistryError:
            return RegistryError(f"{what} failed on {self.url} after {attempts} attempts in {elapsed:.1f} s: "
                                 f"{scrub(_describe(exc))} (retries stop after ADAPTERCI_HUB_RETRY_S="
                                 f"{self.retry_s:g} s)")

        self.api  # noqa: B018 - installs the client factory before the first request
        try:
            return retrying(fn, _transient, self.retry_s, self.backoff, gave_up, grace_s=self.timeout)
        except (RepositoryNotFoundError, RevisionNotFoundError, EntryNotFoundError, RegistryError):
            raise
        except Exception as exc:  # noqa: BLE001 - re-raised as RegistryError
            raise RegistryError(f"{what} failed on {self.url}: {scrub(_describe(exc))}") from exc


def scrub(text: str) -> str:
    """`text` with the Hub token (and anything shaped like one) replaced by `***`."""
    token = os.environ.get("HF_TOKEN")
    if not token:
        try:
            from huggingface_hub import get_token

            token = get_token()
        except Exception:  # noqa: BLE001 - no token is fine here
            token = None
    if token:
        text = text.replace(token, "***")
    return _TOKEN_RE.sub("hf_***", text)


def _status(exc: BaseException | None) -> int | None:
    response = getattr(exc, "response", None)
    return getattr(response, "status_code", None)


def _transient(exc: BaseException) -> bool:
    """Worth another attempt: the failure, or one it was raised from (the client wraps LFS transfer errors in
    errors of its own), is transient; or the LFS verify step refused the object (it arrived damaged: upload again)."""
    import httpx2
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError, OfflineModeIsEnabled

    def one(e: BaseException) -> bool:
        if isinstance(e, HfHubHTTPError):
            request = getattr(e.response, "request", None)
            damaged = request is not None and request.url.path.endswith(LFS_VERIFY) and _status(e) in (400, 422)
            return damaged or _status(e) in TRANSIENT_STATUS
        return isinstance(e, (HubTransient, httpx2.TransportError, LocalEntryNotFoundError, ConnectionError,
                              TimeoutError))

    found = list(causes(exc))
    return not any(isinstance(e, OfflineModeIsEnabled) for e in found) and any(one(e) for e in found)


def _describe(exc: BaseException) -> str:
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip() and "developer.mozilla.org" not in ln]
    return " ".join(lines) or type(exc).__name__
