"""`adapterci pr authorize | materialize | unlabel`: the steps of the PR GPU workflow (thin shells over adapterci.pr).

They read the GitHub event (`GITHUB_EVENT_PATH`, `GITHUB_EVENT_NAME`, `GITHUB_REPOSITORY`) and call the GitHub
API at `GITHUB_API_URL` with `GITHUB_TOKEN`, like the workflow step that runs them."""

from __future__ import annotations

import json
import os
from pathlib import Path

import click

from adapterci.cli.common import config_option, emit_json, json_option, run_dir_option
from adapterci.errors import UsageError
from adapterci.pr.authorize import LABEL, full_sha, request_from_event
from adapterci.pr.authorize import authorize as check
from adapterci.pr.github import GitHub
from adapterci.pr.materialize import Refused, materialize_run


@click.group(name="pr")
def pr() -> None:
    """Pull requests on the GPU runner: authorize a run, take the PR's data, drop a stale approval."""


def _event() -> tuple[str, dict, str]:
    path, name, repo = (os.environ.get(k, "") for k in ("GITHUB_EVENT_PATH", "GITHUB_EVENT_NAME", "GITHUB_REPOSITORY"))
    if not path or not name or not repo:
        raise UsageError("GITHUB_EVENT_PATH, GITHUB_EVENT_NAME and GITHUB_REPOSITORY must be set (a GitHub Actions step)")
    try:
        return name, json.loads(Path(path).read_text(encoding="utf-8")), repo
    except (OSError, ValueError) as exc:
        raise UsageError(f"cannot read the GitHub event {path}: {exc}") from None


def _github_output(values: dict) -> None:
    out = os.environ.get("GITHUB_OUTPUT")
    if out:
        with open(out, "a", encoding="utf-8") as f:
            f.writelines(f"{k.replace('_', '-')}={v}\n" for k, v in values.items())


@pr.command(name="authorize")
@json_option
def authorize(as_json: bool) -> None:
    """Check that a write-or-higher user asked for this run and that the PR head is the approved SHA.

    Writes `head-sha`, `base-sha` and `number` to $GITHUB_OUTPUT; exit 1 when refused.

    \b
    adapterci pr authorize          # in a pull_request_target (labeled) or workflow_dispatch job
    """
    name, event, repo = _event()
    granted = check(GitHub.from_env(), repo, request_from_event(name, event))
    _github_output({"head_sha": granted.head_sha, "base_sha": granted.base_sha, "number": granted.number})
    if as_json:
        emit_json(granted.as_dict())
    else:
        click.echo(f"Authorized: #{granted.number} at {granted.head_sha[:12]}, asked by @{granted.actor} "
                   f"({granted.role}).")


@pr.command(name="unlabel")
def unlabel() -> None:
    """Remove the `safe-to-train` label after a push to the PR: new commits need a new approval.

    \b
    adapterci pr unlabel            # in a pull_request_target (synchronize) job
    """
    _, event, repo = _event()
    number = int((event.get("pull_request") or {}).get("number") or 0)
    removed = GitHub.from_env().remove_label(repo, number, LABEL)
    click.echo(f"Removed `{LABEL}` from #{number}: the new commits need a new approval." if removed
               else f"#{number} had no `{LABEL}` label.")


@pr.command(name="materialize")
@config_option
@click.option("--head-repo", required=True, type=click.Path(file_okay=False, exists=True),
              help="A git repository holding the PR head commit (its work tree is never read).")
@click.option("--head-sha", required=True, help="The approved PR head commit.")
@click.option("--base-sha", required=True, help="The PR's base commit (the diff starts at the merge base).")
@run_dir_option
@json_option
def materialize(config_path: str, head_repo: str, head_sha: str, base_sha: str, run_dir: str | None,
                as_json: bool) -> None:
    """Take the PR's data files and allowed config keys into this (trusted) checkout; refuse anything else.

    Writes pr.json into the run directory (what was taken, refused, and the policy change). A refused PR gets a
    report (and step summary) that says why, and exit 1. A head holding a path no checkout would write (a
    component `..`, `.` or `.git`) or an adapterci.yaml over the YAML budget is refused with exit 2, before
    anything is written.

    \b
    adapterci pr materialize --head-repo .adapterci/pr-head --head-sha SHA --base-sha SHA
    """
    result = materialize_run(Path(config_path), Path(head_repo), full_sha(head_sha), full_sha(base_sha), run_dir)
    if result.refused:
        raise Refused(result.refusal())
    if as_json:
        emit_json(result.as_dict())
    else:
        click.echo(f"Took {len(result.taken)} path(s) from {head_sha[:12]}: {', '.join(result.taken) or 'none'}"
                   + ("; the PR changes the policy (see the report)" if result.policy.get("changed") else ""))
