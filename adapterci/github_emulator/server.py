"""`GitHubEmulator`: GET collaborator permission, GET a pull request, DELETE an issue label.

State is plain dicts the test sets: `roles[login]` (admin | maintain | write | triage | read), and
`pulls[number]` (a PR object as the REST API returns it: state, head.sha, base.sha, labels). Requests without
`Authorization: Bearer <token>` get 401; every request is logged in `requests`."""

from __future__ import annotations

import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import unquote, urlsplit

PERMISSION = {"admin": "admin", "maintain": "write", "write": "write", "triage": "read", "read": "read"}
ROUTES = [
    ("GET", re.compile(r"^/repos/([^/]+/[^/]+)/collaborators/([^/]+)/permission$"), "_permission"),
    ("GET", re.compile(r"^/repos/([^/]+/[^/]+)/pulls/(\d+)$"), "_pull"),
    ("DELETE", re.compile(r"^/repos/([^/]+/[^/]+)/issues/(\d+)/labels/([^/]+)$"), "_remove_label"),
]


class GitHubEmulator:
    """`with GitHubEmulator(repo="acme/sentiment", token=...) as gh:` serves on a free port of 127.0.0.1."""

    def __init__(self, repo: str, token: str, host: str = "127.0.0.1", port: int = 0):
        self.repo, self.token = repo, token
        self.roles: dict[str, str] = {}
        self.pulls: dict[int, dict[str, Any]] = {}
        self.requests: list[tuple[str, str, int]] = []
        self._httpd = ThreadingHTTPServer((host, port), _Handler)
        self._httpd.daemon_threads = True
        self._httpd.emulator = self  # type: ignore[attr-defined]

    @property
    def url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    def pull_request(self, number: int, head_sha: str, base_sha: str, labels: list[str] = (),
                     state: str = "open") -> dict[str, Any]:
        """Set PR `number` as the API would return it."""
        self.pulls[number] = {"number": number, "state": state, "head": {"sha": head_sha}, "base": {"sha": base_sha},
                              "labels": [{"name": name} for name in labels]}
        return self.pulls[number]

    def labels(self, number: int) -> list[str]:
        return [label["name"] for label in self.pulls[number]["labels"]]

    def __enter__(self) -> "GitHubEmulator":
        threading.Thread(target=self._httpd.serve_forever, name="github-emulator", daemon=True).start()
        return self

    def __exit__(self, *exc) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()


class _Handler(BaseHTTPRequestHandler):
    def log_message(self, format: str, *args) -> None:  # noqa: A002 - quiet
        pass

    def do_GET(self) -> None:  # noqa: N802
        self._handle("GET")

    def do_DELETE(self) -> None:  # noqa: N802
        self._handle("DELETE")

    def _handle(self, method: str) -> None:
        emu: GitHubEmulator = self.server.emulator  # type: ignore[attr-defined]
        path = urlsplit(self.path).path
        status, body = 404, {"message": "Not Found"}
        if self.headers.get("Authorization") != f"Bearer {emu.token}":
            status, body = 401, {"message": "Bad credentials"}
        else:
            for verb, pattern, name in ROUTES:
                match = pattern.match(path)
                if verb == method and match and match.group(1) == emu.repo:
                    status, body = getattr(self, name)(emu, *map(unquote, match.groups()[1:]))
                    break
        emu.requests.append((method, path, status))
        data = json.dumps(body).encode() if body is not None else b""
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _permission(self, emu: GitHubEmulator, login: str) -> tuple[int, Any]:
        role = emu.roles.get(login)
        if role is None:
            return 200, {"permission": "none", "role_name": "none", "user": None}
        return 200, {"permission": PERMISSION[role], "role_name": role, "user": {"login": login}}

    def _pull(self, emu: GitHubEmulator, number: str) -> tuple[int, Any]:
        pr = emu.pulls.get(int(number))
        return (200, pr) if pr else (404, {"message": "Not Found"})

    def _remove_label(self, emu: GitHubEmulator, number: str, label: str) -> tuple[int, Any]:
        pr = emu.pulls.get(int(number))
        if not pr or label not in emu.labels(int(number)):
            return 404, {"message": "Label does not exist"}
        pr["labels"] = [entry for entry in pr["labels"] if entry["name"] != label]
        return 200, pr["labels"]

