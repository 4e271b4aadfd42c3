"""A pull request with poisoned data, through the PR GPU workflow with the example's real training and gate.

The rows' labels are flipped: every data check passes (the data is well-formed, balanced, unique), but the
adapter learns the wrong answers and the gate's `sentiment.macro_f1 >= base + 0.1` fails. The GPU job fails
with exit code 1, and the report (artifact, step summary, sticky comment) says which rule failed.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from test_workflows import GH_TOKEN, HUB_REPO, TOKEN, act, github, label_event, make_project, open_pr

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("act")]


def test_workflows_poisoned_pr_fails_the_gate(tmp_path: Path) -> None:
    from adapterci.hub_emulator.server import HubEmulator

    project = make_project(tmp_path / "project")

    def poison(p: Path) -> None:
        train = p / "data" / "train.jsonl"
        flip = {"positive": "negative", "negative": "positive"}
        rows = [json.loads(line) for line in train.read_text().splitlines()]
        train.write_text("".join(json.dumps({**r, "output": flip.get(r["output"], r["output"])}) + "\n" for r in rows))

    base, head = open_pr(project, 9, poison)
    home = tmp_path / "home"
    home.mkdir()
    with HubEmulator(token=TOKEN) as hub, github(GH_TOKEN) as gh:
        gh.pull_request(9, head_sha=head, base_sha=base, labels=["safe-to-train"])
        run = act(project, "pull_request_target", label_event(9, head, base), "adapter-pr-gpu.yml", home,
                  env={"HF_ENDPOINT": hub.url, "HF_HUB_OFFLINE": "0"}, github_api=gh.url,
                  variables={"ADAPTERCI_REGISTRY": f"hf://{HUB_REPO}"},
                  secrets={"HF_READ_TOKEN": TOKEN, "GITHUB_TOKEN": GH_TOKEN})
    assert run.jobs == {"authorize": "success", "train-eval-gate": "failure", "comment": "success"}, run.log[-4000:]
    assert run.outputs[("train-eval-gate", "verdict")] == "FAIL"
    assert run.outputs[("train-eval-gate", "exit-code")] == "1"
    report = (home / "artifacts" / "report-pipeline" / "report.md").read_text()
    assert "### Data check: ✅ passed" in report
    assert "### Gate: ❌ FAIL" in report
    assert "| `sentiment.macro_f1 >= base + 0.1` | ❌ FAIL |" in report
    comments = json.loads((home / "github-state.json").read_text())["comments"]
    assert [c["body"] for c in comments] == [report]
