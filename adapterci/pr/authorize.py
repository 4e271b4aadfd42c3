"""Who may send a pull request to the GPU runner, and which commit runs.

A run starts from a `pull_request_target` `labeled` event (label `safe-to-train`) or a maintainer's
`workflow_dispatch` (PR number + head SHA). Either way the person who asked must have write access or more (asked
from the GitHub API, not read from the event), the PR must be open, and its head must still be the SHA that was
labeled (or given): a commit pushed after the approval is not run. The label itself must still be on the PR (the
workflow removes it on every push)."""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from typing import Any

from adapterci.errors import AdapterCIError, UsageError
from adapterci.pr.github import GitHub

LABEL = "safe-to-train"
WRITE_ROLES = ("admin", "maintain", "write")
SHA_RE = re.compile(r"^[0-9a-f]{40}$")


class NotAuthorized(AdapterCIError):
    """The request to run a PR on the GPU runner is refused. Exit 1."""

    exit_code = 1


@dataclass
class Request:
    """What the event asks for: run PR `number` at `head_sha`, asked by `actor` (with `label`, or by dispatch)."""

    number: int
    head_sha: str
    actor: str
    label: str | None


@dataclass
class Authorization:
    repo: str
    number: int
    head_sha: str
    base_sha: str
    actor: str
    role: str

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def request_from_event(event_name: str, event: dict[str, Any]) -> Request:
    """The run a `pull_request_target` labeled event or a `workflow_dispatch` (inputs `pr`, `sha`) asks for."""
    actor = str((event.get("sender") or {}).get("login") or "")
    if event_name == "pull_request_target":
        label = (event.get("label") or {}).get("name")
        if event.get("action") != "labeled" or label != LABEL:
            raise NotAuthorized(f"only the `{LABEL}` label starts a GPU run (event: {event.get('action')} {label!r})")
        pr = event.get("pull_request") or {}
        return Request(_number(pr.get("number")), full_sha(str((pr.get("head") or {}).get("sha") or "")), actor, label)
    if event_name == "workflow_dispatch":
        inputs = event.get("inputs") or {}
        return Request(_number(inputs.get("pr")), full_sha(str(inputs.get("sha") or "").strip()), actor, None)
    raise UsageError(f"a GPU run starts from pull_request_target or workflow_dispatch, not {event_name!r}")


def authorize(gh: GitHub, repo: str, req: Request) -> Authorization:
    """Check the requester's permission and the PR's current state (NotAuthorized if anything is off)."""
    role = gh.permission(repo, req.actor)
    if role not in WRITE_ROLES:
        raise NotAuthorized(f"@{req.actor} has `{role}` access to {repo}: only write, maintain or admin may start "
                            f"a GPU run (`{LABEL}` label or dispatch)")
    pr = gh.pull(repo, req.number)
    if pr.get("state") != "open":
        raise NotAuthorized(f"pull request #{req.number} is {pr.get('state')}: nothing is run")
    head = str((pr.get("head") or {}).get("sha") or "")
    if head != req.head_sha:
        raise NotAuthorized(f"pull request #{req.number} was approved at {req.head_sha[:12]} but its head is now "
                            f"{head[:12]}: review the new commits and add the `{LABEL}` label again")
    if req.label and req.label not in {str(label.get("name")) for label in pr.get("labels") or []}:
        raise NotAuthorized(f"the `{req.label}` label is no longer on pull request #{req.number}")
    return Authorization(repo, req.number, head, full_sha(str((pr.get("base") or {}).get("sha") or "")), req.actor, role)


def _number(value: Any) -> int:
    if isinstance(value, int) or (isinstance(value, str) and value.isdigit()):
        return int(value)
    raise UsageError(f"not a pull request number: {value!r}")


def full_sha(value: str) -> str:
    if not SHA_RE.match(value):
        raise UsageError(f"not a full commit SHA: {value!r}")
    return value
