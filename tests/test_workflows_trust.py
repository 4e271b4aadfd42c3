"""The attacks on the release path, as act runs (host mode) against the Hub and GitHub emulators.

Each one succeeded against the workflows before the trust model (docs/self-hosted-runner.md): a PR's edited action
script ran on the GPU runner; a label added before a new push ran the new commit; a triage-only labeler started a
GPU run; a PR's own weaker gate rule judged it; an adapter planted in the runner's cache was released by main, also
when a fork PR's own job planted it with a self-consistent record (docs/trusted-runs.md).
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest
import yaml

from test_workflows import (GH_TOKEN, HUB_REPO, LABELS, TOKEN, ActRun, act, drop_rows, git, github, label_event,
                            make_project, open_pr)

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("act")]


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory):
    from adapterci.hub_emulator.server import HubEmulator

    root = tmp_path_factory.mktemp("trust")
    with HubEmulator(token=TOKEN) as hub, github(GH_TOKEN) as gh:
        yield {"root": root, "hub": hub, "gh": gh, "cache": root / "runner-cache",
               "env": {"HF_ENDPOINT": hub.url, "HF_HUB_OFFLINE": "0"}}


def home_of(env, name: str) -> Path:
    home = env["root"] / f"home-{name}"
    home.mkdir(exist_ok=True)
    return home


def gpu_run(env, project: Path, event: dict, home: Path) -> ActRun:
    return act(project, "pull_request_target", event, "adapter-pr-gpu.yml", home, env=env["env"],
               variables={"ADAPTERCI_REGISTRY": f"hf://{HUB_REPO}", "ADAPTERCI_CACHE_DIR": str(env["cache"])},
               secrets={"HF_READ_TOKEN": TOKEN, "GITHUB_TOKEN": GH_TOKEN}, github_api=env["gh"].url)


def test_trust_pr_that_edits_the_action_never_reaches_the_gpu_job(env) -> None:
    project = make_project(env["root"] / "code-pr", quick=True)
    marker = env["root"] / "PWNED"

    def attack(p: Path) -> None:
        drop_rows(5)(p)
        script = p / ".github" / "scripts" / "action-step.sh"
        script.write_text(f"touch {marker}\n" + script.read_text())
        workflow = p / ".github" / "workflows" / "adapter-pr-gpu.yml"
        workflow.write_text(workflow.read_text().replace("adapterci pr materialize", f"touch {marker}; true"))
        (p / "action.yml").write_text((p / "action.yml").read_text().replace("name: adapterci", "name: mine"))

    base, head = open_pr(project, 11, attack)
    env["gh"].pull_request(11, head_sha=head, base_sha=base, labels=["safe-to-train"])
    home = home_of(env, "code-pr")
    run = gpu_run(env, project, label_event(11, head, base), home)
    assert run.jobs == {"authorize": "success", "train-eval-gate": "failure", "comment": "success"}, run.log[-4000:]
    assert not marker.exists()
    assert "changes more than data" in run.output_lines("train-eval-gate")
    report = (home / "artifacts" / "report-pipeline" / "report.md").read_text()
    assert "⛔ refused" in report and "### Training" not in report
    for path in (".github/scripts/action-step.sh", ".github/workflows/adapter-pr-gpu.yml", "action.yml"):
        assert f"| `{path}` | not data |" in report
    assert [c["body"] for c in json.loads((home / "github-state.json").read_text())["comments"]] == [report]


def test_trust_label_before_a_new_push_does_not_run_the_new_commit(env) -> None:
    project = make_project(env["root"] / "late-push")
    base, reviewed = open_pr(project, 12, drop_rows(5))
    git_head = open_pr(project, 13, drop_rows(6))[1]  # the commit pushed after the label
    env["gh"].pull_request(12, head_sha=git_head, base_sha=base, labels=["safe-to-train"])
    home = home_of(env, "late-push")
    run = gpu_run(env, project, label_event(12, reviewed, base), home)
    assert run.jobs == {"authorize": "failure"}, run.log[-4000:]
    assert f"its head is now {git_head[:12]}" in run.output_lines("authorize")
    # the push itself withdraws the approval
    pushed = gpu_run(env, project, label_event(12, git_head, base, action="synchronize"), home)
    assert pushed.jobs == {"unlabel": "success"}, pushed.log[-4000:]
    assert env["gh"].labels(12) == []


def test_trust_triage_labeler_is_refused(env) -> None:
    project = make_project(env["root"] / "triage")
    base, head = open_pr(project, 14, drop_rows(5))
    env["gh"].pull_request(14, head_sha=head, base_sha=base, labels=["safe-to-train"])
    run = gpu_run(env, project, label_event(14, head, base, actor="bob"), home_of(env, "triage"))
    assert run.jobs == {"authorize": "failure"}, run.log[-4000:]
    assert "@bob has `triage` access" in run.output_lines("authorize")
    assert ("GET", f"/repos/{HUB_REPO}/collaborators/bob/permission", 200) in env["gh"].requests


def test_trust_pr_weakening_the_gate_is_judged_by_the_default_branch_rule(env) -> None:
    project = make_project(env["root"] / "weaker-gate", quick=True)
    strict = "safety.refusal_rate >= 0.99"  # the barely trained tiny model fails it
    config = yaml.safe_load((project / "adapterci.yaml").read_text())
    config["gate"]["rules"] = [strict]
    (project / "adapterci.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    from test_workflows import git

    git(project, "commit", "-qam", "strict gate")

    def weaken(p: Path) -> None:
        drop_rows(5)(p)
        doc = yaml.safe_load((p / "adapterci.yaml").read_text())
        doc["gate"]["rules"] = ["safety.over_refusal_rate <= 0.5"]
        (p / "adapterci.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))

    base, head = open_pr(project, 15, weaken)
    env["gh"].pull_request(15, head_sha=head, base_sha=base, labels=["safe-to-train"])
    home = home_of(env, "weaker-gate")
    run = gpu_run(env, project, label_event(15, head, base), home)
    assert run.jobs == {"authorize": "success", "train-eval-gate": "failure", "comment": "success"}, run.log[-4000:]
    assert run.outputs[("train-eval-gate", "verdict")] == "FAIL"
    report = (home / "artifacts" / "report-pipeline" / "report.md").read_text()
    assert "### Policy change (not applied)" in report
    assert f"| gate rules | `{strict}` | `safety.over_refusal_rate <= 0.5` |" in report
    assert f"| `{strict}` | ❌ FAIL |" in report and "| `safety.over_refusal_rate <= 0.5` |" not in report.split("### Gate")[1]


def test_trust_planted_cache_entry_is_never_released(env, tiny_peft_adapter) -> None:
    """An adapter planted where a PR run (or anyone with the runner's disk) could write it, under the fingerprint
    main computes, is neither reused nor released: main trains its own and releases that."""
    from adapterci.config import load_config
    from adapterci.train.provenance import inputs_fingerprint

    project = make_project(env["root"] / "planted", quick=True)
    fingerprint = inputs_fingerprint(load_config(project / "adapterci.yaml"))
    _, planted = tiny_peft_adapter
    planted_digest = hashlib.sha256((planted / "adapter_model.safetensors").read_bytes()).hexdigest()
    for where in ("", "pr", "default-branch"):  # the old shared layout, the PR domain, and main's with a forged record
        entry = env["cache"] / where / "adapters" / fingerprint
        shutil.copytree(planted, entry / "adapter", dirs_exist_ok=True)
        (entry / "adapter" / "extra.py").write_text("print('planted')\n")
        (entry / "provenance.json").write_text(json.dumps({"trust_domain": where or "default-branch", "adapter": {}}))
    home = home_of(env, "planted")
    run = act(project, "push", {"ref": "refs/heads/main"}, "adapter-release.yml", home, env=env["env"],
              variables={"ADAPTERCI_REGISTRY": f"hf://{HUB_REPO}", "ADAPTERCI_CACHE_DIR": str(env["cache"])},
              secrets={"HF_TOKEN": TOKEN, "HF_READ_TOKEN": TOKEN})
    assert run.jobs == {"train-eval-gate": "success", "release": "success"}, run.log[-4000:]
    manifest = json.loads((home / "artifacts" / "run" / "manifest.json").read_text())
    assert {s["name"]: s["status"] for s in manifest["stages"]}["train"] == "ran"
    repo = env["hub"].state.repo("model", HUB_REPO)
    files = repo.commits[repo.tags[run.outputs[("release", "version")]]].files
    released = env["hub"].state.blobs[files["adapter_model.safetensors"]]
    assert hashlib.sha256(released).hexdigest() != planted_digest and "extra.py" not in files


PLANT = """import json, shutil, sys
from pathlib import Path

from adapterci.adapterdir import digests
from adapterci.config import load_config
from adapterci.train.provenance import inputs_fingerprint

# the fingerprint main's next push computes (this PR changes no data), and a record that vouches for the plant
entry = Path(sys.argv[1]) / "default-branch" / "adapters" / inputs_fingerprint(load_config("adapterci.yaml"))
shutil.copytree("evil-adapter", entry / "adapter", dirs_exist_ok=True)
(entry / "provenance.json").write_text(json.dumps({"trust_domain": "default-branch",
                                                   "adapter": digests(entry / "adapter")}))
print("planted", entry)
"""


def test_trust_fork_job_cache_plant_is_never_released(env, tiny_peft_adapter) -> None:
    """A fork PR adds its own `pull_request` job on the GPU runner's labels; it writes a self-consistent adapter
    entry (provenance.json and all, its adapterci-train.json naming `attacker/evil-base`) where main's next push
    looks. That push runs on a runner that is not ephemeral (act: no Runner.Worker), so it reuses nothing: it
    trains its own adapter, says so, and releases that."""
    project = make_project(env["root"] / "fork-plant", quick=True)
    cache = env["root"] / "fork-plant-cache"  # the persistent runner's cache directory, known to the attacker
    _, source = tiny_peft_adapter
    evil_base = "attacker/evil-base"

    def attack(p: Path) -> None:
        adapter = shutil.copytree(source, p / "evil-adapter")
        record = json.loads((adapter / "adapterci-train.json").read_text())
        record["base_model"] = {"base_model": evil_base, "revision": None, "resolved_revision": None}
        (adapter / "adapterci-train.json").write_text(json.dumps(record))
        config = json.loads((adapter / "adapter_config.json").read_text())
        (adapter / "adapter_config.json").write_text(json.dumps({**config, "base_model_name_or_path": evil_base}))
        (p / "plant.py").write_text(PLANT)
        (p / ".github" / "workflows" / "evil.yml").write_text(
            # the label of the GPU runner main's release job runs on
            f"name: evil\non: pull_request\npermissions: {{}}\njobs:\n  plant:\n    runs-on: {LABELS[-1]}\n"
            "    steps:\n      - uses: actions/checkout@08c6903cd8c0fde910a37f88322edcfb5dd907a8\n"
            f"      - run: python plant.py {cache}\n")

    _, head = open_pr(project, 16, attack)
    planted_digest = hashlib.sha256((source / "adapter_model.safetensors").read_bytes()).hexdigest()
    home = home_of(env, "fork-plant")  # one runner: the same home and cache for both jobs
    git(project, "checkout", "-q", head)  # GitHub runs the PR's copy of the workflows
    fork = act(project, "pull_request", {"number": 16, "pull_request": {"head": {"repo": {"fork": True}}}},
               "evil.yml", home, env=env["env"])
    git(project, "checkout", "-q", "main")
    assert fork.jobs == {"plant": "success"}, fork.log[-4000:]
    (entry,) = (cache / "default-branch" / "adapters").iterdir()
    assert json.loads((entry / "provenance.json").read_text())["trust_domain"] == "default-branch"

    run = act(project, "push", {"ref": "refs/heads/main"}, "adapter-release.yml", home, env=env["env"],
              variables={"ADAPTERCI_REGISTRY": f"hf://{HUB_REPO}", "ADAPTERCI_CACHE_DIR": str(cache)},
              secrets={"HF_TOKEN": TOKEN, "HF_READ_TOKEN": TOKEN})
    assert run.jobs == {"train-eval-gate": "success", "release": "success"}, run.log[-4000:]
    assert "reuse: a trusted run on a runner that is not ephemeral (no GitHub runner process (Runner.Worker) " \
           "among this job's ancestors): nothing cached on it is reused; every stage runs" in run.log
    manifest = json.loads((home / "artifacts" / "run" / "manifest.json").read_text())
    assert manifest["reuse"]["allowed"] is False
    stages = {s["name"]: s for s in manifest["stages"]}
    assert stages["train"]["status"] == "ran" and "recomputed" in stages["train"]["message"]
    assert stages["train"]["fingerprint"] == entry.name  # main looked exactly where the plant lay
    repo = env["hub"].state.repo("model", HUB_REPO)
    files = repo.commits[repo.tags[run.outputs[("release", "version")]]].files
    released = env["hub"].state.blobs[files["adapter_model.safetensors"]]
    assert hashlib.sha256(released).hexdigest() != planted_digest
    published = env["hub"].state.blobs[files["adapter_config.json"]].decode() + \
        env["hub"].state.blobs[files["README.md"]].decode()
    assert evil_base not in published
