"""A stateful HTTP emulator of the Hugging Face Hub API surface that `huggingface_hub` uses to create repos,
commit, tag, branch, list and download (see /shared/reference/hub-http-api.md for the contract).

LFS as on the Hub (`lfs.py`): preupload answers `uploadMode: lfs` for `.gitattributes`-tracked, large and binary
files; the LFS batch API hands out a signed storage URL (PUT without auth, basic transfer) and a verify URL;
commits carry `lfsFile` lines (uploads and copies) naming verified objects; tree, paths-info and model_info report
`lfs`; resolve serves the content with `X-Linked-Etag`/`X-Linked-Size`. Xet is not emulated: no `xetHash`, no
`X-Xet-*` headers, and `xet-write-token` answers 501, so a client must upload LFS files with HF_HUB_DISABLE_XET=1.
Repo ids are case-insensitive; the tree and commit listings are paginated (`Link: <...>; rel="next"`); request
bodies may be chunked. Control endpoints (no auth) under `/_emulator/`:
  GET/POST/DELETE /_emulator/faults   list / arm (JSON body: a Fault) / clear fault rules
  GET/POST /_emulator/lag             read / set the replica lag (JSON `{"seconds": 3}`): every read answers with
                                      the refs as they were that long ago
  GET /_emulator/requests             the request log (method, path, status, fault)
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import secrets
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlencode, urlsplit

from adapterci.hub_emulator.cardmeta import front_matter, model_info_fields, validated
from adapterci.hub_emulator.faults import Fault, FaultTable
from adapterci.hub_emulator.lfs import LARGE, SHA256, pointer, upload_mode
from adapterci.hub_emulator.state import DEFAULT_BRANCH, Commit, HubError, HubState, Repo, hub_date, repo_key

REPO_TYPES = {"models": "model", "datasets": "dataset", "spaces": "space"}
URL_PREFIX = {"models": "", "datasets": "datasets/", "spaces": "spaces/"}
LFS_JSON = "application/vnd.git-lfs+json"
STORAGE = "lfs-storage"  # path prefix of the signed LFS upload URLs (the Hub's are pre-signed S3 URLs)


class HubEmulator:
    """The emulator server. `with HubEmulator(token=...) as hub:` serves on a free port of 127.0.0.1.
    `lag_s`: replica lag of every read; `tree_page`/`commits_page`: entries per page of those listings."""

    def __init__(self, token: str, user: str = "tester", host: str = "127.0.0.1", port: int = 0,
                 data_dir: Path | None = None, lag_s: float = 0.0, tree_page: int = 1000, commits_page: int = 50):
        self.token, self.user = token, user
        self.state = HubState(data_dir)
        self.faults = FaultTable()
        self.requests: list[dict] = []
        self.lag_s, self.tree_page, self.commits_page = lag_s, tree_page, commits_page
        self.url_key = secrets.token_bytes(32)  # signs the LFS storage URLs
        self._httpd = ThreadingHTTPServer((host, port), _Handler)
        self._httpd.daemon_threads = True
        self._httpd.emulator = self  # type: ignore[attr-defined]
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    def add_fault(self, path: str, **kwargs) -> Fault:
        """Arm a fault rule (see `faults.Fault`)."""
        return self.faults.add(Fault(path=path, **kwargs))

    def start(self) -> "HubEmulator":
        # a short poll interval: `stop()` waits for the serving loop to notice (0.5 s by default, per emulator)
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="hub-emulator", daemon=True)
        self._thread.start()
        return self

    def serve_forever(self) -> None:
        self._httpd.serve_forever()

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    def __enter__(self) -> "HubEmulator":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "adapterci-hub-emulator"
    disable_nagle_algorithm = True  # headers and body go out in separate writes: avoid 40 ms delayed-ACK stalls

    def log_message(self, format: str, *args) -> None:  # noqa: A002 - quiet by default
        pass

    do_GET = lambda self: self._handle("GET")  # noqa: E731
    do_HEAD = lambda self: self._handle("HEAD")  # noqa: E731
    do_POST = lambda self: self._handle("POST")  # noqa: E731
    do_PUT = lambda self: self._handle("PUT")  # noqa: E731
    do_DELETE = lambda self: self._handle("DELETE")  # noqa: E731

    @property
    def emu(self) -> HubEmulator:
        return self.server.emulator  # type: ignore[attr-defined]

    # --- plumbing ----------------------------------------------------------------------------------------
    def _handle(self, method: str) -> None:
        self.method = method
        split = urlsplit(self.path)
        self.query = parse_qs(split.query)
        self.parts = [p for p in split.path.split("/") if p]  # split BEFORE unquoting
        self.fault_name: str | None = None
        self.answer_delay = 0.0
        self.stale_s = self.emu.lag_s if method in ("GET", "HEAD") else 0.0
        self.truncate = False
        chunked = "chunked" in self.headers.get("Transfer-Encoding", "").lower()
        length = 0 if chunked else int(self.headers.get("Content-Length") or 0)
        if self.parts[:1] != ["_emulator"]:
            drop = self.emu.faults.take(method, split.path, None, drops=True)
            if drop:
                if chunked:
                    self.rfile.readline()
                else:
                    self.rfile.read(length // 2)
                self._log(split.path, 0, "drop")
                self.close_connection = True
                self.connection.shutdown(socket.SHUT_RDWR)
                return
        body = _read_chunked(self.rfile) if chunked else self.rfile.read(length) if length else b""
        if body is None or len(body) < length:  # the client went away mid-request: nothing of it may take effect
            self._log(split.path, 0, self.fault_name or "short body")
            self.close_connection = True
            return
        self.body = body  # always read the body (keep-alive)
        if self.parts[:1] != ["_emulator"]:
            fault = self.emu.faults.take(method, split.path, self.body, drops=False)
            if fault and fault.action in ("delay", "late", "stale", "truncate"):
                self.fault_name = fault.action
                if fault.action == "delay":
                    time.sleep(fault.delay)
                elif fault.action == "late":
                    self.answer_delay = fault.delay
                elif fault.action == "stale":
                    self.stale_s = max(self.stale_s, fault.delay)
                else:
                    self.truncate = True
            elif fault:
                self.fault_name = "status"
                self._error(HubError(fault.status, f"Injected fault: HTTP {fault.status}"), fault.headers)
                return
        try:
            self._route()
        except HubError as exc:
            self._error(exc)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
        if self.answer_delay:  # a `late` fault: acted (and released the state lock), now answer late
            time.sleep(self.answer_delay)
            self.answer_delay = 0.0
            self._send(*self.deferred)

    def _log(self, path: str, status: int, fault: str | None) -> None:
        self.emu.requests.append({"method": self.method, "path": path, "status": status, "fault": fault})

    def _send(self, status: int, body: bytes = b"", content_type: str = "application/json",
              headers: dict[str, str] | None = None) -> None:
        if self.answer_delay:
            self.deferred = (status, body, content_type, headers)
            return
        self._log(urlsplit(self.path).path, status, self.fault_name)
        try:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            for key, value in (headers or {}).items():
                self.send_header(key, value)
            self.end_headers()
            if self.method != "HEAD":
                self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    def _json(self, obj, status: int = 200, headers: dict[str, str] | None = None) -> None:
        self._send(status, json.dumps(obj).encode(), headers=headers)

    def _error(self, exc: HubError, headers: dict[str, str] | None = None) -> None:
        extra = dict(headers or {})
        if exc.code:
            extra["X-Error-Code"] = exc.code
        self._json({"error": exc.message}, exc.status, extra)

    def _body_json(self) -> dict:
        try:
            return json.loads(self.body or b"{}")
        except json.JSONDecodeError:
            raise HubError(400, "request body is not JSON") from None

    @property
    def base(self) -> str:
        return f"http://{self.headers.get('Host') or urlsplit(self.emu.url).netloc}"

    @property
    def authed(self) -> bool:
        return self.headers.get("authorization", "") == f"Bearer {self.emu.token}"

    def _require_auth(self) -> None:
        if not self.authed:
            raise HubError(401, "Invalid credentials in Authorization header")

    def _readable(self, repo_type: str, repo_id: str) -> Repo:
        """The repo, as a lagging replica sees it when this read is stale."""
        repo = self.emu.state.repo(repo_type, repo_id)
        if repo.private and not self.authed:
            raise HubError(404, f"Repository not found: {repo_id}", "RepoNotFound")
        return repo.as_of(time.time() - self.stale_s) if self.stale_s else repo

    def _next_link(self, **params: str) -> dict[str, str]:
        """The `Link` header of a paginated listing: this request's URL with `params` replaced."""
        split = urlsplit(self.path)
        query = {k: v[-1] for k, v in self.query.items()} | params
        return {"Link": f'<{self.base}{split.path}?{urlencode(query)}>; rel="next"'}

    # --- routing -----------------------------------------------------------------------------------------
    def _route(self) -> None:
        p, m = self.parts, self.method
        if p[:1] == ["_emulator"]:
            return self._control()
        if p == ["api", "whoami-v2"] and m == "GET":
            return self._whoami()
        if p == ["api", "agent-harnesses"]:
            return self._json({"standardEnvVars": [], "harnesses": {}})
        if p == ["api", "validate-yaml"] and m == "POST":
            try:
                front_matter(str(self._body_json().get("content") or ""))
            except ValueError as exc:
                return self._json({"errors": [{"message": str(exc)}], "warnings": []}, 400)
            return self._json({"errors": [], "warnings": []})
        if p == ["api", "repos", "create"] and m == "POST":
            return self._create_repo()
        if p == ["api", "repos", "delete"] and m == "DELETE":
            return self._delete_repo()
        if len(p) >= 4 and p[0] == "api" and p[1] in REPO_TYPES:
            return self._repo_api(p[1], f"{p[2]}/{p[3]}", p[4:])
        if len(p) == 5 and p[0] == STORAGE and p[1] in REPO_TYPES and m == "PUT":
            return self._lfs_store(p[1], f"{unquote(p[2])}/{unquote(p[3])}", p[4])
        prefix = [p[0]] if p and p[0] in ("datasets", "spaces") else []
        rest = p[len(prefix):]
        repo_type = prefix[0] if prefix else "models"
        if (len(rest) == 6 and rest[1].endswith(".git") and rest[2:5] == ["info", "lfs", "objects"]
                and m == "POST"):
            return self._lfs_api(repo_type, f"{rest[0]}/{rest[1][:-4]}", rest[5])
        if len(rest) >= 5 and rest[2] == "resolve" and m in ("GET", "HEAD"):
            return self._resolve(repo_type, f"{rest[0]}/{rest[1]}", unquote(rest[3]), "/".join(unquote(x) for x in rest[4:]))
        raise HubError(404, f"Not found: {m} {self.path}")

    def _control(self) -> None:
        what, m = self.parts[1:2], self.method
        if what == ["faults"] and m == "GET":
            return self._json(self.emu.faults.list())
        if what == ["faults"] and m == "POST":
            try:
                fault = self.emu.faults.add(Fault(**self._body_json()))
            except (TypeError, ValueError) as exc:
                raise HubError(400, f"bad fault: {exc}") from None
            return self._json(fault.as_dict())
        if what == ["faults"] and m == "DELETE":
            self.emu.faults.clear()
            return self._json({"cleared": True})
        if what == ["requests"] and m == "GET":
            return self._json(self.emu.requests)
        if what == ["lag"] and m in ("GET", "POST"):
            if m == "POST":
                seconds = self._body_json().get("seconds")
                if not isinstance(seconds, (int, float)) or isinstance(seconds, bool) or seconds < 0:
                    raise HubError(400, "bad lag: `seconds` must be a number >= 0")
                self.emu.lag_s = float(seconds)
            return self._json({"seconds": self.emu.lag_s})
        raise HubError(404, f"Not found: {m} {self.path}")

    def _whoami(self) -> None:
        if not self.authed:
            raise HubError(401, "Invalid user token.")
        self._json({"type": "user", "name": self.emu.user, "fullname": self.emu.user, "orgs": [],
                    "auth": {"type": "access_token", "accessToken": {"displayName": "emulator", "role": "write"}}})

    def _create_repo(self) -> None:
        self._require_auth()
        body = self._body_json()
        plural = {v: k for k, v in REPO_TYPES.items()}.get(body.get("type") or "model", "models")
        repo_id = f"{body.get('organization') or self.emu.user}/{body['name']}"
        private = bool(body.get("private")) or body.get("visibility") == "private"
        url = f"{self.base}/{URL_PREFIX[plural]}{repo_id}"
        try:
            self.emu.state.create_repo(plural, repo_id, private)
        except HubError as exc:  # the url of the repo that exists, spelled as it was created
            existing = self.emu.state.repos.get(repo_key(plural, repo_id))
            url = f"{self.base}/{URL_PREFIX[plural]}{existing.repo_id}" if existing else url
            return self._json({"error": exc.message, "url": url}, exc.status)
        self._json({"url": url, "name": repo_id, "id": repo_id})

    def _delete_repo(self) -> None:
        self._require_auth()
        body = self._body_json()
        plural = {v: k for k, v in REPO_TYPES.items()}.get(body.get("type") or "model", "models")
        self.emu.state.delete_repo(plural, f"{body.get('organization') or self.emu.user}/{body['name']}")
        self._json({})

    def _repo_api(self, repo_type: str, repo_id: str, rest: list[str]) -> None:
        m, state = self.method, self.emu.state
        action = rest[0] if rest else None
        arg = unquote(rest[1]) if len(rest) > 1 else None
        with state.lock:
            if action == "paths-info" and m == "POST":  # a read, served by a replica
                self.stale_s = max(self.stale_s, self.emu.lag_s)
            elif m != "GET":  # writes act on the primary
                self.stale_s = 0.0
            repo = self._readable(repo_type, repo_id)
            if action is None and m == "GET":
                return self._json(self._repo_info(repo, DEFAULT_BRANCH))
            if action == "revision" and arg and m == "GET":
                return self._json(self._repo_info(repo, arg))
            if action == "refs" and m == "GET":
                return self._json(self._refs(repo))
            if action == "commits" and arg and m == "GET":
                return self._commits(repo, arg)
            if action == "tree" and arg and m == "GET":
                path = "/".join(unquote(x) for x in rest[2:])
                recursive = self.query.get("recursive", ["false"])[0].lower() in ("true", "1")
                entries = self._tree(repo, arg, path, recursive)
                after = _cursor(self.query.get("cursor", [""])[0])
                page = [e for e in entries if e["path"] > after][:self.emu.tree_page]
                more = page and page[-1]["path"] != entries[-1]["path"]
                cursor = base64.urlsafe_b64encode(page[-1]["path"].encode()).decode() if more else ""
                return self._json(page, headers=self._next_link(cursor=cursor) if more else None)
            if action == "paths-info" and arg and m == "POST":
                wanted = set(parse_qs(self.body.decode()).get("paths", []))
                entries = self._tree(repo, arg, "", True)
                return self._json([e for e in entries if e["path"] in wanted])
            if action == "xet-write-token":
                raise HubError(501, "Xet storage is not emulated: upload with HF_HUB_DISABLE_XET=1 (LFS is served)")
            self._require_auth()
            if action == "preupload" and arg and m == "POST":
                return self._json({"files": self._preupload(repo, arg, self._body_json().get("files", []))})
            if action == "commit" and arg and m == "POST":
                return self._commit(repo, arg)
            if action in ("tag", "branch") and arg and m == "POST":
                body = self._body_json()
                if action == "tag":
                    state.create_ref(repo, "tag", body.get("tag") or "", arg)
                else:
                    state.create_ref(repo, "branch", arg, body.get("startingPoint") or DEFAULT_BRANCH)
                return self._json({})
            if action in ("tag", "branch") and arg and m == "DELETE":
                state.delete_ref(repo, action, arg)
                return self._json({})
        raise HubError(404, f"Not found: {m} {self.path}")

    def _repo_info(self, repo: Repo, rev: str) -> dict:
        commit = repo.commits[repo.resolve(rev)]
        blobs = self.emu.state.blobs
        readme = blobs[commit.files["README.md"]] if "README.md" in commit.files else None
        return {"id": repo.repo_id, "modelId": repo.repo_id, "author": repo.repo_id.split("/")[0],
                "sha": commit.id, "private": repo.private, "disabled": False, "gated": False,
                "downloads": 0, "likes": 0, "createdAt": hub_date(repo.created),
                "lastModified": hub_date(commit.date), **model_info_fields(readme),
                "siblings": [self._sibling(path, key) for path, key in sorted(commit.files.items())]}

    def _sibling(self, path: str, key: str) -> dict:
        state = self.emu.state
        entry = {"rfilename": path, "size": len(state.blobs[key]), "blobId": state.git_oid(key)}
        if state.is_lfs(key):
            entry["lfs"] = {"sha256": key, "size": len(state.blobs[key]),
                            "pointerSize": len(pointer(key, len(state.blobs[key])))}
        return entry

    def _file_entry(self, path: str, key: str) -> dict:
        """A file as tree and paths-info list it: git oid, size, and `lfs` for an LFS file (never `xetHash`)."""
        state = self.emu.state
        size = len(state.blobs[key])
        entry = {"type": "file", "path": path, "size": size, "oid": state.git_oid(key)}
        if state.is_lfs(key):
            entry["lfs"] = {"oid": key, "size": size, "pointerSize": len(pointer(key, size))}
        return entry

    def _commits(self, repo: Repo, rev: str) -> None:
        """A page of the history of `rev`, newest first (`?p=N`: page N)."""
        history = repo.history(rev)
        number = self.query.get("p", ["0"])[0]
        page = int(number) if number.isdigit() else 0
        size = self.emu.commits_page
        chunk = history[page * size:(page + 1) * size]
        more = (page + 1) * size < len(history)
        self._json([{"id": c.id, "title": c.title, "message": c.message, "date": hub_date(c.date),
                     "authors": [{"user": self.emu.user}]} for c in chunk],
                   headers=self._next_link(p=str(page + 1)) if more else None)

    def _preupload(self, repo: Repo, rev: str, files: list) -> list[dict]:
        """The upload mode of each file, and the key of what is at its path now (the client skips unchanged files)."""
        current = repo.commits[repo.resolve(rev)].files
        gitattributes = self.emu.state.blobs.get(current.get(".gitattributes", ""))
        out = []
        for item in files:
            try:
                path, size = str(item["path"]), int(item.get("size") or 0)
                sample = base64.b64decode(item.get("sample") or "", validate=True)
            except (KeyError, TypeError, ValueError):
                raise HubError(400, "preupload: each file needs a path, a size and a base64 sample") from None
            out.append({"path": path, "uploadMode": upload_mode(gitattributes, path, size, sample),
                        "shouldIgnore": False, "oid": current.get(path)})
        return out

    def _refs(self, repo: Repo) -> dict:
        refs = {"branches": [{"name": n, "ref": f"refs/heads/{n}", "targetCommit": s} for n, s in repo.branches.items()],
                "tags": [{"name": n, "ref": f"refs/tags/{n}", "targetCommit": s} for n, s in repo.tags.items()],
                "converts": []}
        if self.query.get("include_prs"):
            refs["pullRequests"] = []
        return refs

    def _tree(self, repo: Repo, rev: str, path: str, recursive: bool) -> list[dict]:
        commit = repo.commits[repo.resolve(rev)]
        prefix = f"{path.strip('/')}/" if path.strip("/") else ""
        entries: dict[str, dict] = {}
        for file_path, sha in sorted(commit.files.items()):
            if not file_path.startswith(prefix):
                continue
            rel = file_path[len(prefix):].split("/")
            depth = len(rel) if recursive else 1
            for i in range(1, min(depth, len(rel) - 1) + 1):  # the directories on the way
                d = prefix + "/".join(rel[:i])
                entries.setdefault(d, {"type": "directory", "path": d, "oid": _dir_oid(d, commit.id)})
            if recursive or len(rel) == 1:
                entries[file_path] = self._file_entry(file_path, sha)
        if prefix and not entries:
            raise HubError(404, f"{path} does not exist on {rev}", "EntryNotFound")
        return sorted(entries.values(), key=lambda e: e["path"])

    def _commit(self, repo: Repo, branch: str) -> None:
        if self.query.get("create_pr"):
            raise HubError(400, "pull requests are not supported by the emulator")
        header: dict | None = None
        adds: dict[str, bytes] = {}
        lfs_adds: dict[str, str] = {}
        deletes: list[str] = []
        for number, line in enumerate(self.body.decode(errors="replace").splitlines(), 1):
            if not line.strip():
                continue
            try:
                item = json.loads(line)
                key, value = item.get("key"), item.get("value", {})
                if key == "header":
                    header = dict(value)
                elif key == "file":
                    adds[str(value["path"])] = base64.b64decode(value["content"], validate=True)
                elif key == "lfsFile":  # an upload (with its size) or a copy of an LFS file (without)
                    lfs_adds[str(value["path"])] = self._lfs_object(repo, value)
                elif key in ("deletedFile", "deletedFolder"):
                    path = str(value["path"])
                    deletes.append(path + ("/" if key == "deletedFolder" and not path.endswith("/") else ""))
                else:
                    raise HubError(400, f"unsupported commit operation {key!r}")
            except (ValueError, KeyError, TypeError, AttributeError) as exc:
                raise HubError(400, f"commit payload line {number} is malformed: {type(exc).__name__}") from None
        if header is None:
            raise HubError(400, "the commit payload has no header line")
        for path, data in adds.items():  # what the preupload answered `lfs` for may not come inline
            if len(data) >= LARGE:
                raise HubError(400, "Your push was rejected because it contains files larger than 10 MiB. Please "
                                    f"use git-lfs to store large files. Offending files: {path}")
            if b"\0" in data[:8000]:
                raise HubError(400, "Your push was rejected because it contains binary files. Please use LFS to "
                                    f"store binary files. Offending files: {path}")
        if "README.md" in adds:
            validated(adds["README.md"])
        commit = self.emu.state.commit(repo, branch, adds, deletes, str(header.get("summary", "")),
                                       str(header.get("description", "")), header.get("parentCommit"), lfs_adds)
        prefix = URL_PREFIX[repo.repo_type]
        self._json({"commitOid": commit.id, "commitUrl": f"{self.base}/{prefix}{repo.repo_id}/commit/{commit.id}"})

    # --- LFS -------------------------------------------------------------------------------------------------
    def _lfs_object(self, repo: Repo, value: dict) -> str:
        """The sha256 an `lfsFile` commit line names; 400 unless it is in the repo's LFS storage with that size."""
        oid = str(value["oid"])
        if value.get("algo", "sha256") != "sha256" or not SHA256.fullmatch(oid):
            raise HubError(400, f"lfsFile {value['path']!r}: oid must be a sha256 (64 lowercase hex digits)")
        size = value.get("size")
        if oid in repo.lfs and size is not None and int(size) != len(self.emu.state.blobs[oid]):
            raise HubError(400, f"lfsFile {value['path']!r}: size {size} does not match the stored object")
        return oid

    def _lfs_url(self, repo: Repo, oid: str, size: int) -> str:
        """A pre-signed storage URL for one object (no token needed, valid for this repo, oid and size only)."""
        signature = self._url_signature(repo.repo_type, repo.repo_id, oid, str(size))
        return f"{self.base}/{STORAGE}/{repo.repo_type}/{repo.repo_id}/{oid}?size={size}&sig={signature}"

    def _url_signature(self, repo_type: str, repo_id: str, oid: str, size: str) -> str:
        """What signs a storage URL (`_lfs_url`) and what a storage request is checked against (`_lfs_store`)."""
        return hmac.new(self.emu.url_key, f"{repo_type}/{repo_id.lower()}/{oid}/{size}".encode(),
                        hashlib.sha256).hexdigest()

    def _lfs_api(self, repo_type: str, repo_id: str, what: str) -> None:
        """`objects/batch` (upload only, basic transfer) and `objects/verify` of the git-lfs API."""
        self._require_auth()
        state = self.emu.state
        body = self._body_json()
        with state.lock:
            repo = self._readable(repo_type, repo_id)
            if what == "verify":
                oid, size = str(body.get("oid")), body.get("size")
                staged = state.staged.get((repo_type, repo.repo_id.lower(), oid))
                if staged is None:
                    raise HubError(404, f"LFS object {oid} was not uploaded")
                if hashlib.sha256(staged).hexdigest() != oid or len(staged) != size:
                    del state.staged[(repo_type, repo.repo_id.lower(), oid)]
                    raise HubError(422, f"LFS object {oid}: the uploaded content does not match its oid and size")
                state.store_lfs(repo, oid, staged)
                del state.staged[(repo_type, repo.repo_id.lower(), oid)]
                return self._send(200, json.dumps({}).encode(), LFS_JSON)
            if what != "batch" or body.get("operation") != "upload":
                raise HubError(400, "the emulator's LFS API serves `batch` uploads and `verify`")
            verify = f"{self.base}/{URL_PREFIX[repo_type]}{repo.repo_id}.git/info/lfs/objects/verify"
            objects = []
            for item in body.get("objects") or []:
                oid, size = item.get("oid"), item.get("size")
                if not (isinstance(oid, str) and SHA256.fullmatch(oid) and isinstance(size, int) and size >= 0):
                    objects.append({"oid": str(oid), "size": size if isinstance(size, int) else 0,
                                    "error": {"code": 422, "message": "invalid oid or size"}})
                elif oid in repo.lfs:
                    objects.append({"oid": oid, "size": size})  # already stored: no actions
                else:
                    objects.append({"oid": oid, "size": size, "authenticated": True, "actions": {
                        "upload": {"href": self._lfs_url(repo, oid, size)}, "verify": {"href": verify}}})
        self._send(200, json.dumps({"transfer": "basic", "objects": objects, "hash_algo": "sha256"}).encode(),
                   LFS_JSON)

    def _lfs_store(self, repo_type: str, repo_id: str, oid: str) -> None:
        """The storage side of a signed upload URL: keep the body until `verify` checks it."""
        state = self.emu.state
        size = self.query.get("size", [""])[0]
        expected = self._url_signature(repo_type, repo_id, oid, size)
        if not hmac.compare_digest(expected, self.query.get("sig", [""])[0]):
            raise HubError(403, "Request signature does not match")
        data = self.body[:len(self.body) // 2] if self.truncate else self.body
        with state.lock:
            state.staged[(repo_type, repo_id.lower(), oid)] = data
        self._send(200, b"", "text/plain", {"ETag": f'"{hashlib.md5(data).hexdigest()}"'})

    def _resolve(self, repo_type: str, repo_id: str, rev: str, path: str) -> None:
        state = self.emu.state
        with state.lock:
            repo = self._readable(repo_type, repo_id)
            commit: Commit = repo.commits[repo.resolve(rev)]
            key = commit.files.get(path)
            if key is None:
                return self._error(HubError(404, f"Entry not found: {path}", "EntryNotFound"),
                                   {"X-Repo-Commit": commit.id})
            data = state.blobs[key]
            headers = {"X-Repo-Commit": commit.id, "ETag": f'"{state.git_oid(key)}"', "Accept-Ranges": "bytes"}
            if state.is_lfs(key):  # the Hub's ETag is the pointer's git id; the client names the blob by sha256
                headers |= {"X-Linked-Etag": f'"{key}"', "X-Linked-Size": str(len(data))}
        wanted = _byte_range(self.headers.get("Range"), len(data)) if self.method == "GET" else None
        if wanted == (0, 0):
            headers["Content-Range"] = f"bytes */{len(data)}"
            return self._send(416, b"", "application/octet-stream", headers)
        if wanted is not None:
            start, stop = wanted
            headers["Content-Range"] = f"bytes {start}-{stop - 1}/{len(data)}"
            return self._send(206, data[start:stop], "application/octet-stream", headers)
        self._send(200, data, "application/octet-stream", headers)



def _dir_oid(path: str, commit: str) -> str:
    return hashlib.sha1(f"{commit}:{path}".encode()).hexdigest()


def _byte_range(header: str | None, size: int) -> tuple[int, int] | None:
    """`Range: bytes=A-B`, `bytes=A-` or `bytes=-N` -> [start, stop); (0, 0) when unsatisfiable; None: whole file."""
    match = re.fullmatch(r"bytes=(\d*)-(\d*)", (header or "").strip())
    if not match or match.groups() == ("", ""):
        return None
    first, last = match.groups()
    if first == "":
        start, stop = max(size - int(last), 0), size
    else:
        start, stop = int(first), min(int(last) + 1, size) if last else size
    return (start, stop) if start < stop else (0, 0)


def _cursor(value: str) -> str:
    """The last path of the previous page, from a tree listing's `cursor` ("" for the first page)."""
    try:
        return base64.urlsafe_b64decode(value.encode()).decode() if value else ""
    except ValueError:
        raise HubError(400, "invalid cursor") from None


def _read_chunked(rfile) -> bytes | None:
    """A `Transfer-Encoding: chunked` body; None when it ends before its last chunk or is malformed."""
    out = bytearray()
    while True:
        line = rfile.readline(1024)
        try:
            size = int(line.split(b";", 1)[0].strip(), 16)
        except ValueError:
            return None
        if size == 0:
            while (trailer := rfile.readline(8192)) not in (b"\r\n", b"\n"):
                if not trailer:
                    return None
            return bytes(out)
        chunk = rfile.read(size)
        if len(chunk) < size or rfile.readline(3) not in (b"\r\n", b"\n"):
            return None
        out += chunk
