"""A stateful HTTP emulator of the Hugging Face Hub API surface that `huggingface_hub` uses to create repos,
commit, tag, branch, list and download (see /shared/reference/hub-http-api.md for the contract).

Uploads are answered with `uploadMode: regular` (contents travel base64 in the commit), so the client never
switches to Xet; downloads never advertise Xet. Control endpoints (no auth) under `/_emulator/`:
  GET/POST/DELETE /_emulator/faults   list / arm (JSON body: a Fault) / clear fault rules
  GET /_emulator/requests             the request log (method, path, status, fault)
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

from adapterci.hub_emulator.cardmeta import front_matter, model_info_fields, validated
from adapterci.hub_emulator.faults import Fault, FaultTable
from adapterci.hub_emulator.state import DEFAULT_BRANCH, HubError, HubState, Repo, hub_date

REPO_TYPES = {"models": "model", "datasets": "dataset", "spaces": "space"}
URL_PREFIX = {"models": "", "datasets": "datasets/", "spaces": "spaces/"}


class HubEmulator:
    """The emulator server. `with HubEmulator(token=...) as hub:` serves on a free port of 127.0.0.1."""

    def __init__(self, token: str, user: str = "tester", host: str = "127.0.0.1", port: int = 0,
                 data_dir: Path | None = None):
        self.token, self.user = token, user
        self.state = HubState(data_dir)
        self.faults = FaultTable()
        self.requests: list[dict] = []
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
        self.stale_s = 0.0
        length = int(self.headers.get("Content-Length") or 0)
        if self.parts[:1] != ["_emulator"]:
            drop = self.emu.faults.take(method, split.path, None, drops=True)
            if drop:
                self.rfile.read(length // 2)
                self._log(split.path, 0, "drop")
                self.close_connection = True
                self.connection.shutdown(socket.SHUT_RDWR)
                return
        self.body = self.rfile.read(length) if length else b""  # always read the body (keep-alive)
        if len(self.body) < length:  # the client went away mid-request: nothing of it may take effect
            self._log(split.path, 0, self.fault_name or "short body")
            self.close_connection = True
            return
        if self.parts[:1] != ["_emulator"]:
            fault = self.emu.faults.take(method, split.path, self.body, drops=False)
            if fault and fault.action in ("delay", "late", "stale"):
                self.fault_name = fault.action
                if fault.action == "delay":
                    time.sleep(fault.delay)
                elif fault.action == "late":
                    self.answer_delay = fault.delay
                else:
                    self.stale_s = fault.delay
            elif fault:
                self.fault_name = "status"
                self._error(HubError(fault.status, f"Injected fault: HTTP {fault.status}"))
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
        repo = self.emu.state.repo(repo_type, repo_id)
        if repo.private and not self.authed:
            raise HubError(404, f"Repository not found: {repo_id}", "RepoNotFound")
        return repo

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
        prefix = [p[0]] if p and p[0] in ("datasets", "spaces") else []
        rest = p[len(prefix):]
        if len(rest) >= 5 and rest[2] == "resolve" and m in ("GET", "HEAD"):
            repo_type = prefix[0] if prefix else "models"
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
        except HubError as exc:
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
            repo = self._readable(repo_type, repo_id)
            if self.stale_s and m == "GET":
                repo = repo.as_of(time.time() - self.stale_s)
            if action is None and m == "GET":
                return self._json(self._repo_info(repo, DEFAULT_BRANCH))
            if action == "revision" and arg and m == "GET":
                return self._json(self._repo_info(repo, arg))
            if action == "refs" and m == "GET":
                return self._json(self._refs(repo))
            if action == "commits" and arg and m == "GET":
                return self._json([{"id": c.id, "title": c.title, "message": c.message, "date": hub_date(c.date),
                                    "authors": [{"user": self.emu.user}]} for c in repo.history(arg)])
            if action == "tree" and arg and m == "GET":
                path = "/".join(unquote(x) for x in rest[2:])
                recursive = self.query.get("recursive", ["false"])[0].lower() in ("true", "1")
                return self._json(self._tree(repo, arg, path, recursive))
            if action == "paths-info" and arg and m == "POST":
                wanted = parse_qs(self.body.decode()).get("paths", [])
                entries = self._tree(repo, arg, "", True)
                return self._json([e for e in entries if e["path"] in wanted])
            if action == "xet-write-token":
                raise HubError(501, "Xet is not served by the emulator")
            self._require_auth()
            if action == "preupload" and arg and m == "POST":
                files = repo.commits[repo.resolve(arg)].files
                return self._json({"files": [{"path": f["path"], "uploadMode": "regular", "shouldIgnore": False,
                                              "oid": files.get(f["path"])} for f in self._body_json().get("files", [])]})
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
                "siblings": [{"rfilename": path, "size": len(blobs[sha]), "blobId": sha}
                             for path, sha in sorted(commit.files.items())]}

    def _refs(self, repo: Repo) -> dict:
        refs = {"branches": [{"name": n, "ref": f"refs/heads/{n}", "targetCommit": s} for n, s in repo.branches.items()],
                "tags": [{"name": n, "ref": f"refs/tags/{n}", "targetCommit": s} for n, s in repo.tags.items()],
                "converts": []}
        if self.query.get("include_prs"):
            refs["pullRequests"] = []
        return refs

    def _tree(self, repo: Repo, rev: str, path: str, recursive: bool) -> list[dict]:
        commit = repo.commits[repo.resolve(rev)]
        blobs = self.emu.state.blobs
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
                entries[file_path] = {"type": "file", "path": file_path, "size": len(blobs[sha]), "oid": sha}
        if prefix and not entries:
            raise HubError(404, f"{path} does not exist on {rev}", "EntryNotFound")
        return list(entries.values())

    def _commit(self, repo: Repo, branch: str) -> None:
        if self.query.get("create_pr"):
            raise HubError(400, "pull requests are not supported by the emulator")
        header: dict = {}
        adds: dict[str, bytes] = {}
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
                elif key in ("deletedFile", "deletedFolder"):
                    path = str(value["path"])
                    deletes.append(path + ("/" if key == "deletedFolder" and not path.endswith("/") else ""))
                else:
                    raise HubError(400, f"unsupported commit operation {key!r} (the emulator serves uploadMode=regular)")
            except (ValueError, KeyError, TypeError, AttributeError) as exc:
                raise HubError(400, f"commit payload line {number} is malformed: {type(exc).__name__}") from None
        if "README.md" in adds:
            validated(adds["README.md"])
        commit = self.emu.state.commit(repo, branch, adds, deletes, header.get("summary", ""),
                                       header.get("description", ""), header.get("parentCommit"))
        prefix = URL_PREFIX[repo.repo_type]
        self._json({"commitOid": commit.id, "commitUrl": f"{self.base}/{prefix}{repo.repo_id}/commit/{commit.id}"})

    def _resolve(self, repo_type: str, repo_id: str, rev: str, path: str) -> None:
        with self.emu.state.lock:
            repo = self._readable(repo_type, repo_id)
            commit = repo.commits[repo.resolve(rev)]
            sha = commit.files.get(path)
            if sha is None:
                return self._error(HubError(404, f"Entry not found: {path}", "EntryNotFound"),
                                   {"X-Repo-Commit": commit.id})
            data = self.emu.state.blobs[sha]
        headers = {"X-Repo-Commit": commit.id, "ETag": f'"{sha}"', "Accept-Ranges": "bytes"}
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
