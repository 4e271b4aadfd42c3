"""`hf://OWNER/NAME`: the Hugging Face Hub through the real `huggingface_hub` client.

Releases are commits on `main`, versions are tags, `canary`/`stable` are branches (the client cannot move a
ref, so a move is delete + create). Transient failures (5xx, 429, timeouts, dropped connections) are retried
with exponential backoff; every error is rewritten without the token. `huggingface_hub` is imported lazily:
it reads `HF_ENDPOINT` once at import.

Environment: HF_TOKEN (or the usual `hf auth login`), ADAPTERCI_HUB_RETRIES (default 4),
ADAPTERCI_HUB_BACKOFF (first wait in seconds, default 1), ADAPTERCI_HUB_TIMEOUT (per request, default 60 s).
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
import time
from contextlib import nullcontext
from pathlib import Path
from typing import Callable, TypeVar

from adapterci.errors import RegistryError
from adapterci.registry.base import Commit, RefConflict, Refs, RegistryViews

T = TypeVar("T")
TRANSIENT_STATUS = {408, 429, 500, 502, 503, 504}
_TOKEN_RE = re.compile(r"hf_[A-Za-z0-9]{8,}")


class HubRegistry(RegistryViews):
    def __init__(self, repo_id: str, private: bool = True):
        self.repo_id = repo_id
        self.url = f"hf://{repo_id}"
        self.private = private
        self.retries = int(os.environ.get("ADAPTERCI_HUB_RETRIES", "4"))
        self.backoff = float(os.environ.get("ADAPTERCI_HUB_BACKOFF", "1"))
        self._api = None
        self._repo_ready = False

    @property
    def api(self):
        if self._api is None:
            import httpx2
            from huggingface_hub import HfApi
            from huggingface_hub.utils import get_session

            get_session().timeout = httpx2.Timeout(float(os.environ.get("ADAPTERCI_HUB_TIMEOUT", "60")))
            self._api = HfApi()
        return self._api

    # --- primitives --------------------------------------------------------------------------------------
    def lock(self):
        """No cross-process lock on the Hub: version tags are claimed with create-if-absent instead."""
        return nullcontext()

    def refs(self) -> Refs:
        from huggingface_hub.errors import RepositoryNotFoundError

        try:
            refs = self._call("list refs", lambda: self.api.list_repo_refs(self.repo_id))
        except RepositoryNotFoundError:
            self._check_token()  # "not found" may mean "not visible with this token"
            return Refs()
        return Refs(tags={t.name: t.target_commit for t in refs.tags},
                    branches={b.name: b.target_commit for b in refs.branches})

    def commits(self) -> list[Commit]:
        from huggingface_hub.errors import RepositoryNotFoundError

        try:
            found = self._call("list commits", lambda: self.api.list_repo_commits(self.repo_id, revision="main"))
        except RepositoryNotFoundError:
            return []
        return [Commit(c.commit_id, c.title, c.message, c.created_at.strftime("%Y-%m-%dT%H:%M:%S.%fZ"))
                for c in found]

    def upload(self, folder: Path, title: str, message: str) -> str:
        """One commit on `main` holding exactly the files of `folder` (stale files are deleted)."""
        from huggingface_hub import CommitOperationAdd, CommitOperationDelete

        self._ensure_repo()
        files = {p.relative_to(folder).as_posix(): p for p in sorted(Path(folder).rglob("*")) if p.is_file()}

        def commit() -> str:
            # Pinned to the head we diffed against: the client skips files it believes unchanged, so a commit
            # landing on a newer head would inherit someone else's files. A moved head answers 412: retry.
            info = self.api.repo_info(self.repo_id, revision="main")
            head, current = info.sha, {s.rfilename for s in info.siblings or []}
            ops = [CommitOperationAdd(rel, str(path)) for rel, path in files.items()]
            ops += [CommitOperationDelete(p) for p in sorted(current - set(files) - {".gitattributes"})]
            return self.api.create_commit(self.repo_id, ops, commit_message=title, commit_description=message,
                                          parent_commit=head).oid

        return self._call("upload", commit, retry_status={412})

    def tree(self, commit: str) -> dict[str, str]:
        from huggingface_hub.hf_api import RepoFile

        entries = self._call("read back the file list",
                             lambda: list(self.api.list_repo_tree(self.repo_id, revision=commit, recursive=True)))
        return {e.path: (f"sha256:{e.lfs.sha256}" if e.lfs else f"sha1:{e.blob_id}")
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
            shutil.copytree(tmp, dest, dirs_exist_ok=True, ignore=shutil.ignore_patterns(".cache"))
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
                raise RefConflict(f"tag {name} already points at {(current or '?')[:12]}") from None
            return False

    def delete_tag(self, name: str) -> None:
        from huggingface_hub.errors import RevisionNotFoundError

        try:
            self._call(f"delete tag {name}", lambda: self.api.delete_tag(self.repo_id, tag=name))
        except RevisionNotFoundError:
            pass

    def move_ref(self, name: str, commit: str) -> None:
        if name == "main":
            raise RegistryError("the default branch `main` is not a moving ref")
        current = self.refs().branches.get(name)
        if current == commit:
            return
        if current is not None:
            self.delete_ref(name)
        try:
            self._call(f"move {name}", lambda: self.api.create_branch(self.repo_id, branch=name, revision=commit))
        except RegistryError as exc:
            if _status(exc.__cause__) != 409 or self.refs().branches.get(name) != commit:
                raise

    def delete_ref(self, name: str) -> None:
        from huggingface_hub.errors import RevisionNotFoundError

        try:
            self._call(f"delete {name}", lambda: self.api.delete_branch(self.repo_id, branch=name))
        except RevisionNotFoundError:
            pass

    # --- plumbing ----------------------------------------------------------------------------------------
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
            self._call("create repo", lambda: self.api.create_repo(self.repo_id, private=self.private, exist_ok=True))
            self._repo_ready = True

    def _call(self, what: str, fn: Callable[[], T], retry_status: set[int] = frozenset()) -> T:
        """Run one client call, retrying transient failures (and `retry_status`) with exponential backoff.

        Not-found errors pass through unchanged for callers that expect them; every other failure becomes a
        RegistryError whose message never contains the token."""
        from huggingface_hub.errors import EntryNotFoundError, RepositoryNotFoundError, RevisionNotFoundError

        for attempt in range(self.retries + 1):
            try:
                return fn()
            except (RepositoryNotFoundError, RevisionNotFoundError, EntryNotFoundError):
                raise
            except Exception as exc:  # noqa: BLE001 - classified below, re-raised as RegistryError
                if (_transient(exc) or _status(exc) in retry_status) and attempt < self.retries:
                    time.sleep(self.backoff * 2 ** attempt)
                    continue
                tries = f" after {attempt + 1} attempts" if attempt else ""
                raise RegistryError(f"{what} failed on {self.url}{tries}: {scrub(_describe(exc))}") from exc
        raise AssertionError("unreachable")


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
    import httpx2
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError, OfflineModeIsEnabled

    if isinstance(exc, OfflineModeIsEnabled):
        return False
    if isinstance(exc, HfHubHTTPError):
        return _status(exc) in TRANSIENT_STATUS
    return isinstance(exc, (httpx2.TransportError, LocalEntryNotFoundError, ConnectionError, TimeoutError))


def _describe(exc: BaseException) -> str:
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip() and "developer.mozilla.org" not in ln]
    return " ".join(lines) or type(exc).__name__
