"""Static checks of the workflows and the composite action: zizmor, check-jsonschema, injection-free scripts,
SHA-pinned actions, and the scaffold's workflows matching the repository's own."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


def _found(paths: list[Path], what: str) -> list[Path]:
    """A glob the tests below iterate over: empty, every one of them would pass on nothing, so none is collected."""
    assert paths, f"no {what}"
    return paths


WORKFLOWS = _found(sorted((REPO / ".github" / "workflows").glob("*.yml")), "workflows in .github/workflows")
TEMPLATES = REPO / "adapterci" / "templates" / "project" / ".github" / "workflows"
STUB_ACTIONS = _found(sorted((REPO / "tests" / "actions").glob("*/action.yml")), "stand-in actions in tests/actions")
ACTION_FILES = [REPO / "action.yml", *STUB_ACTIONS]
PINNED = re.compile(r"^[\w.-]+/[\w./-]+@[0-9a-f]{40}$")
# README's list of the workflows, and the remote actions they and action.yml use (each has a stand-in for act).
WORKFLOW_NAMES = ["adapter-canary.yml", "adapter-pr-gpu.yml", "adapter-pr.yml", "adapter-registry.yml",
                  "adapter-release.yml"]
REMOTE_ACTIONS = ["checkout", "download-artifact", "github-script", "setup-python", "upload-artifact"]
HOSTED = "ubuntu-latest"  # the only GitHub-hosted runner the workflows use; any other `runs-on` is a self-hosted one


def _self_hosted(job: dict) -> bool:
    return job["runs-on"] != HOSTED


def test_workflows_are_the_documented_set() -> None:
    assert [p.name for p in WORKFLOWS] == WORKFLOW_NAMES
    assert sorted(p.name for p in TEMPLATES.glob("*.yml")) == WORKFLOW_NAMES
    used = {m for p in [*WORKFLOWS, REPO / "action.yml"] for m in re.findall(r"uses: actions/([\w-]+)@", p.read_text())}
    assert sorted(used) == REMOTE_ACTIONS
    assert [p.parent.name for p in STUB_ACTIONS] == REMOTE_ACTIONS


def _tool(name: str) -> str:
    path = BIN / name
    return str(path) if path.exists() else shutil.which(name) or pytest.fail(f"{name} is not installed")


def _zizmor(*args: str, paths: list[Path]) -> list[dict]:
    out = subprocess.run([_tool("zizmor"), "--offline", "--format", "json", *args, *map(str, paths)],
                         capture_output=True, text=True, cwd=REPO, env={"PATH": str(BIN), "HOME": str(REPO)})
    assert out.returncode in (0, 10, 11, 12, 13, 14), out.stderr  # 10-14: findings by severity; others: it failed
    return json.loads(out.stdout or "[]")


def _steps(doc: dict) -> list[dict]:
    if "runs" in doc:
        return doc["runs"].get("steps", [])
    return [s for job in doc["jobs"].values() for s in job.get("steps", [])]


@pytest.mark.parametrize("persona", ["regular", "auditor"])
def test_workflows_zizmor_has_no_high_findings(persona: str) -> None:
    findings = _zizmor("--persona", persona, paths=[REPO / ".github" / "workflows", REPO / "action.yml"])
    high = [(f["ident"], f["locations"][0]["symbolic"]["key"]) for f in findings
            if f["determinations"]["severity"] == "High"]
    assert high == []


def test_workflows_zizmor_auditor_reports_nothing() -> None:
    """The GPU jobs name runner scale sets (docs/self-hosted-runner.md), not the `self-hosted` label that zizmor's
    `self-hosted-runner` audit looks for; the rules below check what that audit would."""
    findings = _zizmor("--persona", "auditor", paths=[REPO / ".github" / "workflows", REPO / "action.yml"])
    assert [(f["ident"], f["locations"][0]["symbolic"]["key"]) for f in findings] == []


def test_workflows_zizmor_flags_an_injection(tmp_path: Path) -> None:
    """The audit is live: a `${{ }}` of PR-controlled text inside `run:` is reported as high."""
    bad = tmp_path / ".github" / "workflows" / "bad.yml"
    bad.parent.mkdir(parents=True)
    bad.write_text("on: pull_request\npermissions: {}\njobs:\n  x:\n    runs-on: ubuntu-latest\n    steps:\n"
                   "      - run: echo \"${{ github.event.pull_request.title }}\"\n")
    findings = _zizmor(paths=[bad])
    assert any(f["ident"] == "template-injection" and f["determinations"]["severity"] == "High" for f in findings)


def test_workflows_validate_against_schemas() -> None:
    cj = _tool("check-jsonschema")
    wf = subprocess.run([cj, "--builtin-schema", "vendor.github-workflows", *map(str, WORKFLOWS)],
                        capture_output=True, text=True)
    assert wf.returncode == 0, wf.stdout + wf.stderr
    act = subprocess.run([cj, "--builtin-schema", "vendor.github-actions", *map(str, ACTION_FILES)],
                         capture_output=True, text=True)
    assert act.returncode == 0, act.stdout + act.stderr


def test_workflows_check_jsonschema_rejects_a_broken_workflow(tmp_path: Path) -> None:
    broken = tmp_path / "broken.yml"
    broken.write_text("on: push\njobs:\n  x:\n    steps:\n      - run: echo\n")  # no runs-on
    out = subprocess.run([_tool("check-jsonschema"), "--builtin-schema", "vendor.github-workflows", str(broken)],
                         capture_output=True, text=True)
    assert out.returncode == 1 and "runs-on" in out.stdout


@pytest.mark.parametrize("path", [*WORKFLOWS, REPO / "action.yml"], ids=lambda p: p.name)
def test_workflows_scripts_take_inputs_only_through_env(path: Path) -> None:
    for step in _steps(yaml.safe_load(path.read_text())):
        assert "${{" not in step.get("run", ""), f"{path.name}: expression inside run: {step.get('run')}"
        assert "${{" not in step.get("with", {}).get("script", ""), f"{path.name}: expression inside a script"


@pytest.mark.parametrize("path", [*WORKFLOWS, REPO / "action.yml"], ids=lambda p: p.name)
def test_workflows_pin_remote_actions_by_sha(path: Path) -> None:
    for step in _steps(yaml.safe_load(path.read_text())):
        uses = step.get("uses")
        if uses and not uses.startswith("./"):
            assert PINNED.match(uses), f"{path.name}: {uses} is not pinned by a full commit SHA"
            line = next(l for l in path.read_text().splitlines() if uses in l)
            assert re.search(r"# v\d", line), f"{path.name}: {uses} lacks a `# vX` comment"


def test_workflows_least_permissions() -> None:
    for path in WORKFLOWS:
        doc = yaml.safe_load(path.read_text())
        assert doc["permissions"] == {}, path.name
        for name, job in doc["jobs"].items():
            granted = {k: v for k, v in job["permissions"].items() if v != "none"}
            assert set(granted) <= {"contents", "pull-requests"}, (path.name, name, granted)
            assert granted.get("contents", "read") == "read", (path.name, name)
            for step in job.get("steps", []):
                if step.get("uses", "").startswith("actions/checkout@"):
                    assert step["with"]["persist-credentials"] is False, (path.name, name)


def _triggers(doc: dict) -> set[str]:
    on = doc[True]  # PyYAML reads the key `on` as True
    return {on} if isinstance(on, str) else set(on)


def test_workflows_secrets_only_in_protected_environment() -> None:
    for path in WORKFLOWS:
        doc = yaml.safe_load(path.read_text())
        for name, job in doc["jobs"].items():
            used = set(re.findall(r"secrets\.(\w+)", yaml.safe_dump(job)))
            assert used <= {"HF_TOKEN", "HF_READ_TOKEN"}, (path.name, name, used)
            if "HF_TOKEN" in used:  # the write token: protected environment, never where training code runs
                assert job.get("environment") == "hub-release", (path.name, name)
                assert not _self_hosted(job), (path.name, name)
            if "HF_READ_TOKEN" in used:
                assert job.get("environment") == "hub-read", (path.name, name)


def test_workflows_tokens_only_on_the_steps_that_need_them() -> None:
    for path in WORKFLOWS:
        doc = yaml.safe_load(path.read_text())
        assert not re.search(r"secrets\.|github\.token", yaml.safe_dump(doc.get("env") or {})), path.name
        for name, job in doc["jobs"].items():
            assert not re.search(r"secrets\.|github\.token", yaml.safe_dump(job.get("env") or {})), (path.name, name)


def test_workflows_gpu_runner_runs_only_default_branch_code() -> None:
    """`pull_request` runs the PR's own workflow, action and scripts: no such workflow may reach the GPU runner.
    The PR GPU workflow (pull_request_target / dispatch) reads the PR head only as data, checked out beside the
    default branch's tree; the release workflow runs on pushes to main."""
    for path in WORKFLOWS:
        doc = yaml.safe_load(path.read_text())
        triggers = _triggers(doc)
        gpu = [name for name, job in doc["jobs"].items() if _self_hosted(job)]
        if "pull_request" in triggers:
            assert gpu == [], path.name
        if "pull_request_target" in triggers:
            assert path.name == "adapter-pr-gpu.yml" and triggers == {"pull_request_target", "workflow_dispatch"}
            for name, job in doc["jobs"].items():
                for step in job.get("steps", []):
                    if step.get("uses", "").startswith("actions/checkout@") and "ref" in step.get("with", {}):
                        assert step["with"]["path"] == ".adapterci/pr-head", (name, step)
                    assert ".adapterci/pr-head" not in str(step.get("uses", "")), (name, step)
        if gpu and "push" in triggers:
            assert doc[True]["push"]["branches"] == ["main"], path.name


def test_workflows_main_only_jobs_check_the_ref() -> None:
    for name in ("adapter-release.yml", "adapter-registry.yml", "adapter-canary.yml"):
        for job_name, job in yaml.safe_load((REPO / ".github" / "workflows" / name).read_text())["jobs"].items():
            assert "github.ref == 'refs/heads/main'" in job["if"], (name, job_name)


def test_workflows_registry_dispatches_are_never_dropped() -> None:
    """GitHub keeps one pending run per concurrency group and cancels the older pending one: a rollback queued
    behind a release, a promote or a canary analysis must not share a group with them."""
    docs = {p.name: yaml.safe_load(p.read_text()) for p in WORKFLOWS}
    assert docs["adapter-registry.yml"]["concurrency"] == {
        "group": "adapterci-registry-${{ github.run_id }}", "cancel-in-progress": False}
    assert docs["adapter-release.yml"]["concurrency"] == {"group": "adapterci-release", "cancel-in-progress": False}
    assert docs["adapter-canary.yml"]["concurrency"] == {"group": "adapterci-canary", "cancel-in-progress": False}


def test_workflows_unrelated_labels_do_not_cancel_the_gpu_run() -> None:
    group = yaml.safe_load((REPO / ".github" / "workflows" / "adapter-pr-gpu.yml").read_text())["concurrency"]["group"]
    assert "github.event.label.name != 'safe-to-train' && github.run_id" in group


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_workflows_match_the_init_templates(path: Path) -> None:
    """`adapterci init` ships the same workflows, with the action referenced remotely instead of `./`."""
    template = (TEMPLATES / path.name).read_text()
    assert template == path.read_text().replace("uses: ./\n", "uses: __ACTION__\n")


def test_workflows_init_templates_are_the_same_set() -> None:
    assert sorted(p.name for p in TEMPLATES.glob("*.yml")) == [p.name for p in WORKFLOWS]
    for name in ("scripts/sticky-comment.js", "zizmor.yml", "actionlint.yaml"):
        assert (TEMPLATES.parent / name).read_text() == (REPO / ".github" / name).read_text(), name
