"""The workflows, executed with act in host mode (no Docker, no network), against the Hub emulator.

Remote actions are replaced by the stand-ins in tests/actions/; act's `--json` log gives each job's result,
which every test asserts (a job act skipped has no result at all, and act still exits 0).
One project (with a short training: these tests are about the workflows, tests/test_workflows_gate.py about a
gate that fails), one emulator and one runner cache serve the whole module. Each test sets up what it needs and
passes alone or in any order: the same-repository PR run (which trains) is a module fixture that the PR test and
the push test (which must reuse its adapter) share; the registry dispatch test releases its own versions into a
repo of its own.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml

from conftest import REPO, copy_tiny_files

BIN = Path(sys.executable).parent
STUBS = REPO / "tests" / "actions"
PROJECT_FILES = ("action.yml", "constraints.txt", ".github")  # besides the tiny test project (conftest)
LABELS = ("ubuntu-latest", "self-hosted", "gpu")
TOKEN = "hf_test_release_token_0123456789"
HUB_REPO = "acme/sentiment"

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("act")]


@dataclass
class ActRun:
    returncode: int
    jobs: dict[str, str]  # job id -> success | failure (absent: skipped)
    outputs: dict[tuple[str, str], str] = field(default_factory=dict)  # (job id, step output name) -> value
    summaries: list[str] = field(default_factory=list)
    log: str = ""

    def output_lines(self, job: str) -> str:
        return "\n".join(line for line in self.log.splitlines() if f'"jobID":"{job}"' in line)


def remote_actions() -> dict[str, Path]:
    """`actions/NAME@SHA` used by the workflows and action.yml -> the stand-in directory."""
    uses = set()
    for path in [*(REPO / ".github" / "workflows").glob("*.yml"), REPO / "action.yml"]:
        uses |= set(re.findall(r"uses: (actions/[\w-]+@[0-9a-f]{40})", path.read_text()))
    return {u: STUBS / u.split("/")[1].split("@")[0] for u in sorted(uses)}


def make_project(dest: Path, quick: bool = False) -> Path:
    """A git repository with the example project, the action and the workflows (what a clone holds).

    `quick`: a few training steps and a gate the barely trained tiny model passes, for tests of the workflow
    mechanics (jobs, artifacts, comment, registry refs) rather than of what training learns."""
    copy_tiny_files(dest)
    for name in PROJECT_FILES:
        src = REPO / name
        (shutil.copytree(src, dest / name, dirs_exist_ok=True) if src.is_dir() else shutil.copy2(src, dest / name))
    if quick:
        config = yaml.safe_load((dest / "adapterci.yaml").read_text())
        config["train"].update(max_steps=6, epochs=1)
        config["gate"]["rules"] = ["safety.over_refusal_rate <= 0.5"]
        (dest / "adapterci.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    git = ["git", "-C", str(dest), "-c", "user.name=t", "-c", "user.email=t@example.com"]
    subprocess.run(["git", "init", "-q", "-b", "main", str(dest)], check=True)
    subprocess.run([*git, "add", "-A"], check=True)
    subprocess.run([*git, "commit", "-qm", "example"], check=True)
    return dest


def act(project: Path, event_name: str, event: dict, workflow: str, home: Path, *, env: dict | None = None,
        variables: dict | None = None, secrets: dict | None = None, timeout: int = 900) -> ActRun:
    """Run one workflow for one event with act in host mode; parse its JSON log."""
    event_file = home / f"event-{event_name}.json"
    event_file.write_text(json.dumps(event))
    cmd = [str(BIN / "act"), event_name, "-e", str(event_file), "-W", f".github/workflows/{workflow}", "--json",
           "--action-offline-mode", "--pull=false", "--no-cache-server",
           "--action-cache-path", str(home / "act-cache")]
    for label in LABELS:
        cmd += ["-P", f"{label}=-self-hosted"]
    for uses, stub in remote_actions().items():
        cmd += ["--local-repository", f"{uses}={stub}"]
    for key, value in (variables or {}).items():
        cmd += ["--var", f"{key}={value}"]
    for key, value in (secrets or {}).items():
        cmd += ["-s", f"{key}={value}"]
    proc_env = {
        "PATH": f"{BIN}:/usr/local/bin:/usr/bin:/bin", "HOME": str(home), "XDG_CACHE_HOME": str(home / "cache"),
        "ADAPTERCI_HOME": str(home / "adapterci-home"), "HF_HOME": str(home / "hf"),
        "HF_HUB_OFFLINE": "1", "HF_HUB_DISABLE_TELEMETRY": "1", "TOKENIZERS_PARALLELISM": "false",
        "ADAPTERCI_STUB_ACTIONS": str(STUBS),
        "ADAPTERCI_STUB_ARTIFACTS": str(home / "artifacts"),
        "ADAPTERCI_STUB_GITHUB_STATE": str(home / "github-state.json"),
        **(env or {}),
    }
    proc = subprocess.run(cmd, cwd=project, env=proc_env, capture_output=True, text=True, timeout=timeout)
    run = ActRun(proc.returncode, {}, log=proc.stdout + proc.stderr)
    for line in proc.stdout.splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if "jobResult" in entry:
            run.jobs[entry["jobID"]] = entry["jobResult"]
        if entry.get("command") == "set-output":
            run.outputs[(entry["jobID"], entry["name"])] = entry.get("arg", "")
        if entry.get("command") == "summary":
            run.summaries.append(entry.get("content", ""))
    return run


def pr_event(number: int, fork: bool = False, action: str = "synchronize", label: str | None = None) -> dict:
    event = {"action": action, "number": number,
             "pull_request": {"number": number, "head": {"ref": f"pr-{number}", "repo": {"fork": fork}},
                              "base": {"ref": "main"}, "labels": [{"name": label}] if label else []}}
    if label:
        event["label"] = {"name": label}
    return event


@pytest.fixture(scope="module")
def hub():
    from adapterci.hub_emulator.server import HubEmulator

    with HubEmulator(token=TOKEN) as emulator:
        yield emulator


@pytest.fixture(scope="module")
def ci(tmp_path_factory: pytest.TempPathFactory, hub):
    """The project, act's home and the settings every workflow run gets (repository variables, emulator)."""
    root = tmp_path_factory.mktemp("act")
    home = root / "home"
    home.mkdir()
    return {
        "project": make_project(root / "project", quick=True), "home": home,
        "variables": {"ADAPTERCI_REGISTRY": f"hf://{HUB_REPO}", "ADAPTERCI_CACHE_DIR": str(root / "runner-cache")},
        "env": {"HF_ENDPOINT": hub.url, "HF_HUB_OFFLINE": "0"},
    }


def run_pr(ci, event: dict, project: Path | None = None) -> ActRun:
    """A PR event; like GitHub, a fork's run gets no secrets."""
    shutil.rmtree(ci["home"] / "artifacts", ignore_errors=True)
    fork = event["pull_request"]["head"]["repo"]["fork"]
    return act(project or ci["project"], "pull_request", event, "adapter-pr.yml", ci["home"], env=ci["env"],
               variables=ci["variables"], secrets=None if fork else {"HF_READ_TOKEN": TOKEN})


def artifact(ci, name: str) -> Path:
    return ci["home"] / "artifacts" / name


def comments(ci) -> list[dict]:
    path = ci["home"] / "github-state.json"
    return json.loads(path.read_text())["comments"] if path.exists() else []


@pytest.fixture(scope="module")
def pr_run(ci, tmp_path_factory: pytest.TempPathFactory) -> tuple[ActRun, Path, list[dict]]:
    """The same-repository PR's first run (it trains and fills the runner cache), with a copy of its artifacts
    and the comments as they were right after it."""
    run = run_pr(ci, pr_event(7))
    artifacts = shutil.copytree(ci["home"] / "artifacts", tmp_path_factory.mktemp("pr-run") / "artifacts")
    return run, artifacts, comments(ci)


def test_workflows_same_repo_pr_runs_the_pipeline_and_comments(ci, pr_run) -> None:
    run, artifacts, posted = pr_run
    assert run.jobs == {"check": "success", "train-eval-gate": "success", "comment": "success"}, run.log[-4000:]
    assert run.outputs[("train-eval-gate", "verdict")] == "PASS"
    report = (artifacts / "report-pipeline" / "report.md").read_text()
    assert report.startswith("<!-- adapterci-report -->")
    for section in ("### Data check", "### Training", "### Evaluation", "### Safety", "### Gate: ✅ PASS"):
        assert section in report
    assert (artifacts / "report-pipeline" / "adapter" / "adapter_config.json").is_file()
    assert (artifacts / "report-check" / "check" / "check.json").is_file()
    assert any("### Gate" in s for s in run.summaries)  # the step summary carries the report
    assert len(posted) == 1 and posted[0]["issue_number"] == 7 and posted[0]["body"] == report

    rerun = run_pr(ci, pr_event(7))  # a new push to the same PR: the comment is updated, not added
    assert rerun.jobs == run.jobs
    assert "cached" in rerun.output_lines("train-eval-gate")
    assert len(comments(ci)) == 1


def test_workflows_fork_pr_skips_the_gpu_job(ci) -> None:
    run = run_pr(ci, pr_event(8, fork=True))
    assert run.jobs == {"check": "success"}, run.log[-4000:]  # train-eval-gate and comment never started
    assert not artifact(ci, "report-pipeline").exists()
    assert "### Data check" in (artifact(ci, "report-check") / "report.md").read_text()


def test_workflows_fork_pr_runs_on_gpu_after_the_safe_to_train_label(ci, tmp_path: Path) -> None:
    """A fork reaches the GPU runner only for the `safe-to-train` label event, without secrets or shared cache."""
    project = make_project(tmp_path / "fork", quick=True)
    train = project / "data" / "train.jsonl"
    train.write_text("\n".join(train.read_text().splitlines()[:-20]) + "\n")  # the fork removed some rows
    run = run_pr(ci, pr_event(8, fork=True, action="labeled", label="safe-to-train"), project)
    # no comment job: a fork's token is read-only; the report is in the step summary and the artifact
    assert run.jobs == {"check": "success", "train-eval-gate": "success"}, run.log[-4000:]
    report = (artifact(ci, "report-pipeline") / "report.md").read_text()
    assert "No champion yet" in report  # no registry token for a fork: compared with the base model only
    assert "| train | ✅ ran |" in report  # trained: the runner's shared cache is not offered to forks
    assert all(c["issue_number"] != 8 for c in comments(ci))


def test_workflows_push_to_main_releases_v0_1_0_with_canary(ci, hub, pr_run) -> None:
    run = act(ci["project"], "push", {"ref": "refs/heads/main"}, "adapter-release.yml", ci["home"],
              env=ci["env"], variables=ci["variables"], secrets={"HF_TOKEN": TOKEN, "HF_READ_TOKEN": TOKEN})
    assert run.jobs == {"train-eval-gate": "success", "release": "success"}, run.log[-4000:]
    assert run.outputs[("release", "version")] == "v0.1.0"
    assert "cached" in run.output_lines("train-eval-gate")  # the PR's adapter, same inputs fingerprint
    repo = hub.state.repo("model", HUB_REPO)
    assert repo.tags["v0.1.0"] == repo.resolve("canary")
    assert TOKEN not in run.log


def serves(hub, repo_id: str, ref: str) -> str:
    """The version the branch `ref` serves: the manifest in the files it holds."""
    repo = hub.state.repo("model", repo_id)
    return json.loads(hub.state.blobs[repo.commits[repo.resolve(ref)].files["adapterci.json"]])["version"]


def test_workflows_dispatch_promotes_and_rolls_back(ci, hub, adapters) -> None:
    registry = "acme/dispatch"  # its own repo: this test releases what it promotes

    def release_by_hand(i: int) -> str:
        env = {**os.environ, **ci["env"], "HF_TOKEN": TOKEN, "ADAPTERCI_REGISTRY": f"hf://{registry}"}
        released = subprocess.run([str(BIN / "adapterci"), "release", "--adapter", str(adapters(i)), "--json"],
                                  cwd=ci["project"], env=env, capture_output=True, text=True)
        assert released.returncode == 0, released.stderr
        return json.loads(released.stdout)["version"]

    def dispatch(operation: str, version: str = "") -> ActRun:
        event = {"inputs": {"operation": operation, "version": version}}
        return act(ci["project"], "workflow_dispatch", event, "adapter-registry.yml", ci["home"], env=ci["env"],
                   variables={**ci["variables"], "ADAPTERCI_REGISTRY": f"hf://{registry}"},
                   secrets={"HF_TOKEN": TOKEN})

    assert release_by_hand(0) == "v0.1.0"
    promoted = dispatch("promote")
    assert promoted.jobs == {"registry": "success"}, promoted.log[-4000:]
    assert promoted.outputs[("registry", "version")] == "v0.1.0"
    assert serves(hub, registry, "stable") == "v0.1.0"

    # a different adapter gets released and promoted by name ...
    assert release_by_hand(1) == "v0.1.1"
    assert dispatch("promote", "v0.1.1").outputs[("registry", "version")] == "v0.1.1"
    assert serves(hub, registry, "stable") == "v0.1.1"

    # ... and rolled back by dispatch
    rolled = dispatch("rollback")
    assert rolled.jobs == {"registry": "success"}, rolled.log[-4000:]
    assert rolled.outputs[("registry", "version")] == "v0.1.0"
    assert serves(hub, registry, "stable") == "v0.1.0" and serves(hub, registry, "canary") == "v0.1.1"
    assert TOKEN not in promoted.log + rolled.log
