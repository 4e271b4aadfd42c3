"""The workflows, executed with act in host mode (no Docker, no network), against the Hub emulator.

Remote actions are replaced by the stand-ins in tests/actions/; act's `--json` log gives each job's result,
which every test asserts (a job act skipped has no result at all, and act still exits 0).
One project (with a short training: these tests are about the workflows, tests/test_workflows_gate.py about a
gate that fails), the Hub and GitHub emulators and one runner cache serve the whole module. Each test sets up what
it needs and passes alone or in any order: a PR's data check and sticky comment, a PR from another repository, a
labeled PR on the GPU workflow (trains the PR's data with the default branch's code), push to main (trains: it
never reuses a PR run's cache), and registry dispatches into a repo of their own (promote, an injected version
input, rollback). The attacks on this path are in tests/test_workflows_trust.py.
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
# Every runner the workflows name: GitHub-hosted `ubuntu-latest` and the two runner scale sets (deploy/arc/). act runs
# each on this machine (host mode); tests/test_runners.py checks that this is the set the workflows use.
LABELS = ("ubuntu-latest", "adapterci-pr", "adapterci-release")
TOKEN = "hf_test_release_token_0123456789"
GH_TOKEN = "ghs_test_workflow_token_0123456789"
HUB_REPO = "acme/sentiment"  # also the GitHub repository (the project's `origin`)

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
    subprocess.run([*git, "remote", "add", "origin", f"https://github.com/{HUB_REPO}.git"], check=True)  # github.repository
    subprocess.run([*git, "add", "-A"], check=True)
    subprocess.run([*git, "commit", "-qm", "example"], check=True)
    return dest


def act(project: Path, event_name: str, event: dict, workflow: str, home: Path, *, env: dict | None = None,
        variables: dict | None = None, secrets: dict | None = None, github_api: str | None = None,
        timeout: int = 900) -> ActRun:
    """Run one workflow for one event with act in host mode; parse its JSON log. `github_api`: the GitHub API
    the steps see as GITHUB_API_URL (the project's emulator)."""
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
    if github_api:
        cmd += ["--env", f"GITHUB_API_URL={github_api}"]
    proc_env = {
        "PATH": f"{BIN}:/usr/local/bin:/usr/bin:/bin", "HOME": str(home), "XDG_CACHE_HOME": str(home / "cache"),
        "ADAPTERCI_HOME": str(home / "adapterci-home"), "HF_HOME": str(home / "hf"),
        "HF_HUB_OFFLINE": "1", "HF_HUB_DISABLE_TELEMETRY": "1", "TOKENIZERS_PARALLELISM": "false",
        "ADAPTERCI_STUB_ACTIONS": str(STUBS),
        "ADAPTERCI_STUB_ARTIFACTS": str(home / "artifacts"),
        "ADAPTERCI_STUB_GITHUB_STATE": str(home / "github-state.json"),
        # the adapterci under test, where the tests run from a checkout other than the one installed
        **({"PYTHONPATH": os.environ["PYTHONPATH"]} if os.environ.get("PYTHONPATH") else {}),
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


def git(project: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(project), "-c", "user.name=t", "-c", "user.email=t@example.com", *args],
                          check=True, capture_output=True, text=True).stdout.strip()


def open_pr(project: Path, number: int, change) -> tuple[str, str]:
    """Commit `change(project)` on branch pr-N (the PR head), then go back to main (the trusted checkout act copies
    into the workspace, as `pull_request_target` checks out the default branch). Returns (base sha, head sha)."""
    base = git(project, "rev-parse", "main")
    git(project, "checkout", "-qb", f"pr-{number}", "main")
    change(project)
    git(project, "add", "-A")
    git(project, "commit", "-qm", f"PR {number}")
    head = git(project, "rev-parse", "HEAD")
    git(project, "checkout", "-q", "main")
    return base, head


def drop_rows(count: int):
    """A PR change: remove the last `count` training rows."""
    def change(project: Path) -> None:
        train = project / "data" / "train.jsonl"
        train.write_text("\n".join(train.read_text().splitlines()[:-count]) + "\n")
    return change


def pr_event(number: int, fork: bool = False, action: str = "synchronize", label: str | None = None,
             head_repo: str = HUB_REPO) -> dict:
    """A `pull_request` event (the check workflow)."""
    event = {"action": action, "number": number,
             "pull_request": {"number": number, "head": {"ref": f"pr-{number}",
                                                         "repo": {"fork": fork, "full_name": head_repo}},
                              "base": {"ref": "main"}, "labels": [{"name": label}] if label else []}}
    if label:
        event["label"] = {"name": label}
    return event


def label_event(number: int, head: str, base: str, actor: str = "alice", label: str = "safe-to-train",
                action: str = "labeled") -> dict:
    """A `pull_request_target` event of the PR GPU workflow: `actor` added `label` when the head was `head`."""
    return {"action": action, "number": number, "label": {"name": label}, "sender": {"login": actor},
            "repository": {"full_name": HUB_REPO, "default_branch": "main"},
            "pull_request": {"number": number, "head": {"sha": head, "ref": f"pr-{number}", "repo": {"full_name": HUB_REPO}},
                             "base": {"sha": base, "ref": "main"}, "labels": [{"name": label}]}}


def github(tokens: str):
    """The GitHub API emulator of the workflows' repository: alice maintains it, bob triages."""
    from adapterci.github_emulator import GitHubEmulator

    emulator = GitHubEmulator(repo=HUB_REPO, token=tokens)
    emulator.roles.update(alice="maintain", bob="triage")
    return emulator


@pytest.fixture(scope="module")
def hub():
    from adapterci.hub_emulator.server import HubEmulator

    with HubEmulator(token=TOKEN) as emulator:
        yield emulator


@pytest.fixture(scope="module")
def ci(tmp_path_factory: pytest.TempPathFactory, hub):
    """The project, act's home and the settings every workflow run gets (repository variables, emulators)."""
    root = tmp_path_factory.mktemp("act")
    home = root / "home"
    home.mkdir()
    with github(GH_TOKEN) as gh:
        yield {
            "project": make_project(root / "project", quick=True), "home": home, "gh": gh,
            "variables": {"ADAPTERCI_REGISTRY": f"hf://{HUB_REPO}", "ADAPTERCI_CACHE_DIR": str(root / "runner-cache")},
            "env": {"HF_ENDPOINT": hub.url, "HF_HUB_OFFLINE": "0"},
        }


def run_pr(ci, event: dict, project: Path | None = None) -> ActRun:
    """A `pull_request` event (the check workflow); like GitHub, a fork's run gets no secrets."""
    shutil.rmtree(ci["home"] / "artifacts", ignore_errors=True)
    same_repo = event["pull_request"]["head"]["repo"]["full_name"] == HUB_REPO
    return act(project or ci["project"], "pull_request", event, "adapter-pr.yml", ci["home"], env=ci["env"],
               variables=ci["variables"], secrets={"GITHUB_TOKEN": GH_TOKEN} if same_repo else None)


def run_gpu(ci, event: dict, event_name: str = "pull_request_target", project: Path | None = None) -> ActRun:
    """An event of the PR GPU workflow (the default branch's definition, with its secrets)."""
    shutil.rmtree(ci["home"] / "artifacts", ignore_errors=True)
    return act(project or ci["project"], event_name, event, "adapter-pr-gpu.yml", ci["home"], env=ci["env"],
               variables=ci["variables"], secrets={"HF_READ_TOKEN": TOKEN, "GITHUB_TOKEN": GH_TOKEN},
               github_api=ci["gh"].url)


def artifact(ci, name: str) -> Path:
    return ci["home"] / "artifacts" / name


def comments(ci) -> list[dict]:
    path = ci["home"] / "github-state.json"
    return json.loads(path.read_text())["comments"] if path.exists() else []


def test_workflows_pr_checks_the_data_and_keeps_one_sticky_comment(ci) -> None:
    # someone else's comment that carries the marker is never the sticky one
    foreign = {"id": 1, "issue_number": 7, "body": "<!-- adapterci-report --> mine", "user": {"login": "mallory", "type": "User"}}
    (ci["home"] / "github-state.json").write_text(json.dumps({"comments": [foreign]}))
    run = run_pr(ci, pr_event(7))
    assert run.jobs == {"check": "success", "comment": "success"}, run.log[-4000:]
    report = (artifact(ci, "report-check") / "report.md").read_text()
    assert report.startswith("<!-- adapterci-report -->") and "### Data check: ✅ passed" in report
    assert any("### Data check" in s for s in run.summaries)  # the step summary carries the report
    rerun = run_pr(ci, pr_event(7))  # a new push to the same PR: the bot's comment is updated, not added
    assert rerun.jobs == run.jobs
    posted = comments(ci)
    assert posted[0] == foreign
    assert [(c["issue_number"], c["user"]["login"], c["body"]) for c in posted[1:]] == [(7, "github-actions[bot]", report)]


def test_workflows_pr_from_another_repository_gets_no_comment_job(ci) -> None:
    """Decided by comparing repositories, not by `head.repo.fork` (false for a head repo not marked a fork)."""
    run = run_pr(ci, pr_event(8, fork=False, head_repo="mallory/sentiment"))
    assert run.jobs == {"check": "success"}, run.log[-4000:]
    assert "### Data check" in (artifact(ci, "report-check") / "report.md").read_text()


def test_workflows_labeled_pr_trains_its_data_with_default_branch_code(ci) -> None:
    base, head = open_pr(ci["project"], 9, drop_rows(20))
    ci["gh"].pull_request(9, head_sha=head, base_sha=base, labels=["safe-to-train"])
    run = run_gpu(ci, label_event(9, head, base))
    assert run.jobs == {"authorize": "success", "train-eval-gate": "success", "comment": "success"}, \
        run.output_lines("train-eval-gate")[-6000:]
    assert run.outputs[("train-eval-gate", "verdict")] == "PASS"
    report = (artifact(ci, "report-pipeline") / "report.md").read_text()
    for section in ("### Pull request", "### Data check", "### Training", "### Evaluation", "### Gate: ✅ PASS"):
        assert section in report
    assert f"Data taken from head `{head[:12]}`: `data/train.jsonl`." in report
    train = json.loads((artifact(ci, "report-pipeline") / "adapter" / "adapterci-train.json").read_text())
    main_rows = len((ci["project"] / "data" / "train.jsonl").read_text().splitlines())
    assert train["rows"]["train"] < main_rows  # the PR's data, not the default branch's
    gate = json.loads((artifact(ci, "report-pipeline") / "gate.json").read_text())
    assert gate["provenance"]["trust_domain"] == "pr"
    assert [(c["issue_number"], c["body"]) for c in comments(ci) if c["issue_number"] == 9] == [(9, report)]
    assert GH_TOKEN not in run.log and TOKEN not in run.log


def serves(hub, repo_id: str, ref: str) -> str:
    """The version the branch `ref` serves: the manifest in the files it holds."""
    repo = hub.state.repo("model", repo_id)
    return json.loads(hub.state.blobs[repo.commits[repo.resolve(ref)].files["adapterci.json"]])["version"]


def test_workflows_push_to_main_releases_v0_1_0_with_canary(ci, hub) -> None:
    home = ci["home"].parent / "release-runner"  # a runner of its own: on the PR jobs' one a release refuses
    home.mkdir(exist_ok=True)                     # (another job's marker: tests/test_reuse.py)
    run = act(ci["project"], "push", {"ref": "refs/heads/main"}, "adapter-release.yml", home,
              env=ci["env"], variables=ci["variables"], secrets={"HF_TOKEN": TOKEN, "HF_READ_TOKEN": TOKEN})
    assert run.jobs == {"train-eval-gate": "success", "release": "success"}, run.log[-4000:]
    assert run.outputs[("release", "version")] == "v0.1.0"
    assert serves(hub, HUB_REPO, "canary") == "v0.1.0"
    repo = hub.state.repo("model", HUB_REPO)
    manifest = json.loads(hub.state.blobs[repo.commits[repo.tags["v0.1.0"]].files["adapterci.json"]])
    assert manifest["gate_provenance"]["trust_domain"] == "default-branch"
    assert TOKEN not in run.log


def test_workflows_dispatch_promotes_and_rolls_back(ci, hub, adapters) -> None:
    registry = "acme/dispatch"  # its own repo: this test releases what it promotes
    env = {**os.environ, **ci["env"], "HF_TOKEN": TOKEN, "ADAPTERCI_REGISTRY": f"hf://{registry}"}

    def release_by_hand(i: int) -> str:  # a person's release: no gate verdict vouches for it, so --unverified
        cmd = [str(BIN / "adapterci"), "release", "--adapter", str(adapters(i)), "--json"]
        refused = subprocess.run(cmd, cwd=ci["project"], env=env, capture_output=True, text=True)
        assert refused.returncode == 1 and "no gate verdict" in refused.stderr
        released = subprocess.run([*cmd, "--unverified"], cwd=ci["project"], env=env, capture_output=True, text=True)
        assert released.returncode == 0, released.stderr
        return json.loads(released.stdout)["version"]

    def dispatch(operation: str, version: str = "") -> ActRun:
        event = {"inputs": {"operation": operation, "version": version}}
        return act(ci["project"], "workflow_dispatch", event, "adapter-registry.yml", ci["home"], env=ci["env"],
                   variables={**ci["variables"], "ADAPTERCI_REGISTRY": f"hf://{registry}"},
                   secrets={"HF_TOKEN": TOKEN})

    assert release_by_hand(0) == "v0.1.0"
    unnamed = dispatch("promote")  # whatever the canary is when the approved job runs: refused
    assert unnamed.jobs == {"registry": "failure"}
    assert "promote needs the version input: promote the canary version you analyzed" in unnamed.log + "".join(unnamed.summaries)
    promoted = dispatch("promote", "v0.1.0")
    assert promoted.jobs == {"registry": "success"}, promoted.log[-4000:]
    assert promoted.outputs[("registry", "version")] == "v0.1.0"
    assert serves(hub, registry, "stable") == "v0.1.0"

    # a different adapter gets released and promoted by name, not while the canary analyzed is no longer it ...
    assert release_by_hand(1) == "v0.1.1"
    stale = dispatch("promote", "v0.1.0")
    assert stale.jobs == {"registry": "failure"} and "not at the analyzed v0.1.0: nothing promoted" in stale.log
    assert serves(hub, registry, "stable") == "v0.1.0"
    assert dispatch("promote", "v0.1.1").outputs[("registry", "version")] == "v0.1.1"
    assert serves(hub, registry, "stable") == "v0.1.1"

    # ... a version input that is not a version (option injection) is refused before anything runs ...
    injected = dispatch("promote", "--json v0.1.0")
    # (the step summary too: act can drop the last stdout line of a step that exits at once)
    refusal = "version must look like v1.2.3"
    assert injected.jobs == {"registry": "failure"}
    assert refusal in injected.log or any(refusal in s for s in injected.summaries), injected.log[-4000:]
    assert serves(hub, registry, "stable") == "v0.1.1"

    # ... and rolled back by dispatch, from the version `stable` serves; a rerun of that dispatch changes nothing
    assert dispatch("rollback").jobs == {"registry": "failure"}  # which version to roll back from is required
    rolled = dispatch("rollback", "v0.1.1")
    assert rolled.jobs == {"registry": "success"}, rolled.log[-4000:]
    assert rolled.outputs[("registry", "version")] == "v0.1.0"
    assert serves(hub, registry, "stable") == "v0.1.0" and serves(hub, registry, "canary") == "v0.1.1"
    again = dispatch("rollback", "v0.1.1")
    assert again.jobs == {"registry": "success"}, again.log[-4000:]
    assert "nothing to roll back" in again.log and serves(hub, registry, "stable") == "v0.1.0"
    assert TOKEN not in promoted.log + rolled.log
