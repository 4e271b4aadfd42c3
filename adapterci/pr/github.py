"""The few GitHub REST calls the PR GPU workflow needs, over `GITHUB_API_URL` (tests: adapterci.github_emulator)."""

from __future__ import annotations

import json
import os
import re
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from adapterci.errors import AdapterCIError, UsageError

REPO_RE = re.compile(r"^[\w.-]+/[\w.-]+$")
LOGIN_RE = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9-]{0,38})(?:\[bot\])?$")


class GitHubError(AdapterCIError):
    """The GitHub API could not answer. Exit 1."""

    exit_code = 1


@dataclass
class GitHub:
    """A minimal REST client: `api_url` (GITHUB_API_URL), `token` (GITHUB_TOKEN, only where a step needs it)."""

    api_url: str
    token: str | None = None

    @classmethod
    def from_env(cls) -> "GitHub":
        return cls(os.environ.get("GITHUB_API_URL") or "https://api.github.com",
                   os.environ.get("GITHUB_TOKEN") or os.environ.get("GH_TOKEN") or None)

    def request(self, method: str, path: str, ok_missing: bool = False) -> Any:
        """JSON of `METHOD api_url/path`; None for a 404 when `ok_missing`. GitHubError otherwise."""
        req = urllib.request.Request(self.api_url.rstrip("/") + path, method=method, headers={
            "Accept": "application/vnd.github+json", "X-GitHub-Api-Version": "2022-11-28",
            **({"Authorization": f"Bearer {self.token}"} if self.token else {})})
        try:
            with urllib.request.urlopen(req, timeout=30) as resp:  # noqa: S310 - the configured API URL
                body = resp.read()
        except urllib.error.HTTPError as exc:
            if exc.code == 404 and ok_missing:
                return None
            raise GitHubError(f"GitHub API {method} {path}: HTTP {exc.code}") from None
        except (urllib.error.URLError, OSError) as exc:
            raise GitHubError(f"GitHub API {method} {path}: {getattr(exc, 'reason', exc)}") from None
        return json.loads(body) if body else None

    def permission(self, repo: str, login: str) -> str:
        """The user's role on the repository: admin, maintain, write, triage, read or none."""
        data = self.request("GET", f"/repos/{_repo(repo)}/collaborators/{quote(_login(login))}/permission")
        return str(data.get("role_name") or data.get("permission") or "none")

    def pull(self, repo: str, number: int) -> dict[str, Any]:
        return self.request("GET", f"/repos/{_repo(repo)}/pulls/{int(number)}")

    def remove_label(self, repo: str, number: int, label: str) -> bool:
        """Remove `label` from the PR; False when it was not there."""
        path = f"/repos/{_repo(repo)}/issues/{int(number)}/labels/{quote(label, safe='')}"
        return self.request("DELETE", path, ok_missing=True) is not None


def _repo(repo: str) -> str:
    if not REPO_RE.match(repo or ""):
        raise UsageError(f"not a repository OWNER/NAME: {repo!r}")
    return repo


def _login(login: str) -> str:
    if not LOGIN_RE.match(login or ""):
        raise UsageError(f"not a GitHub login: {login!r}")
    return login
