"""`check data` can be a required status check (docs/self-hosted-runner.md, "Repository settings").

adapter-pr.yml has no `paths:` filter, since a workflow skipped by it never reports and a required check that never
reports blocks the merge. A PR that changes no data still gets a `check data` job that succeeds, without
checking or commenting; a PR that changes data is checked and commented on. Static checks here, act runs (slow)
below."""

from __future__ import annotations

import pytest
import yaml

from conftest import REPO
from test_workflows import GH_TOKEN, act, drop_rows, make_project, open_pr, pr_event

WORKFLOW = REPO / ".github" / "workflows" / "adapter-pr.yml"


def test_workflows_required_check_runs_on_every_pull_request() -> None:
    doc = yaml.safe_load(WORKFLOW.read_text())
    assert doc[True] == {"pull_request": {"types": ["opened", "synchronize", "reopened"]}}  # no paths: filter
    check = doc["jobs"]["check"]
    assert check["name"] == "check data" and "if" not in check and "needs" not in check  # never skipped whole
    steps = check["steps"]
    changes = next(i for i, s in enumerate(steps) if s.get("id") == "changes")
    assert all("steps.changes.outputs.data == 'true'" in s["if"] for s in steps[changes + 1:])
    assert "needs.check.outputs.checked == 'true'" in doc["jobs"]["comment"]["if"]


def _event(number: int, base: str, head: str) -> dict:
    event = pr_event(number)
    event["pull_request"]["base"]["sha"], event["pull_request"]["head"]["sha"] = base, head
    return event


@pytest.mark.slow
@pytest.mark.xdist_group("act")
def test_workflows_required_check_passes_a_pr_without_data_and_checks_one_with_data(tmp_path) -> None:
    project = make_project(tmp_path / "project")
    home = tmp_path / "home"
    home.mkdir()
    docs_pr = open_pr(project, 21, lambda p: (p / "NOTES.md").write_text("how we label messages\n"))
    data_pr = open_pr(project, 22, drop_rows(5))

    secrets = {"GITHUB_TOKEN": GH_TOKEN}
    docs = act(project, "pull_request", _event(21, *docs_pr), "adapter-pr.yml", home, secrets=secrets)
    assert docs.jobs == {"check": "success"}, docs.log[-4000:]  # act leaves the skipped comment job out
    assert docs.outputs[("check", "data")] == "false"
    assert any("nothing to check" in s for s in docs.summaries)
    assert not (home / "artifacts" / "report-check").exists() and not (home / "github-state.json").exists()

    data = act(project, "pull_request", _event(22, *data_pr), "adapter-pr.yml", home, secrets=secrets)
    assert data.jobs == {"check": "success", "comment": "success"}, data.log[-4000:]
    assert data.outputs[("check", "data")] == "true"
    assert "### Data check" in (home / "artifacts" / "report-check" / "report.md").read_text()
