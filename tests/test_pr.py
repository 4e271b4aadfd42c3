"""`adapterci pr`: what a pull request may bring to the GPU runner (materialize) and who may start a run
(authorize, against the project's GitHub API emulator)."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from adapterci.cli import cli
from adapterci.github_emulator import GitHubEmulator
from adapterci.pr.authorize import NotAuthorized, Request, authorize, request_from_event
from adapterci.pr.github import GitHub
from adapterci.pr.materialize import materialize

TOKEN = "ghs_test_token"
REPO = "acme/sentiment"


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@example.com", *args],
                          check=True, capture_output=True, text=True).stdout.strip()


@pytest.fixture
def repo(example_project: Path) -> Path:
    """The example project committed on `main`, plus a file of code (the action) that a PR must not change."""
    (example_project / "action.yml").write_text("name: trusted action\n")
    git(example_project, "add", "-A")
    git(example_project, "commit", "-qm", "base")
    return example_project


def open_pr(repo: Path, change) -> tuple[str, str]:
    """Commit `change(repo)` on a PR branch; back on main. Returns (base sha, head sha)."""
    base = git(repo, "rev-parse", "HEAD")
    git(repo, "checkout", "-qb", "pr")
    change(repo)
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "pr")
    head = git(repo, "rev-parse", "HEAD")
    git(repo, "checkout", "-q", "main")
    return base, head


def edit_config(repo: Path, **sections) -> None:
    config = yaml.safe_load((repo / "adapterci.yaml").read_text())
    for key, value in sections.items():
        config[key] = {**config[key], **value} if isinstance(value, dict) else value
    (repo / "adapterci.yaml").write_text(yaml.safe_dump(config, sort_keys=False))


def test_materialize_takes_data_and_training_keys_and_shows_the_policy_change(repo: Path) -> None:
    rows = (repo / "data" / "train.jsonl").read_text().splitlines()
    suite = (repo / "evalsets" / "sentiment.jsonl").read_text().splitlines()

    def change(r: Path) -> None:
        (r / "data" / "train.jsonl").write_text("\n".join(rows[:-10]) + "\n")
        (r / "evalsets" / "sentiment.jsonl").write_text("\n".join(suite[:30]) + "\n")
        edit_config(r, train={"epochs": 2}, gate={"rules": ["safety.leak_rate <= 1"]}, base_model="models/other")

    base, head = open_pr(repo, change)
    result = materialize(repo / "adapterci.yaml", repo, head, base)
    assert result.refused == []
    assert result.taken == ["data/train.jsonl", "adapterci.yaml (data, train)"]
    assert len((repo / "data" / "train.jsonl").read_text().splitlines()) == len(rows) - 10  # the PR's data
    assert len((repo / "evalsets" / "sentiment.jsonl").read_text().splitlines()) == len(suite)  # not the PR's
    config = yaml.safe_load((repo / "adapterci.yaml").read_text())
    assert config["train"]["epochs"] == 2 and config["base_model"] == "models/tiny-llama"
    assert config["gate"]["rules"][0] == "sentiment.macro_f1 >= base + 0.1"
    policy = result.policy
    assert policy["changed"] and policy["rules"]["new"] == ["safety.leak_rate <= 1"]
    assert policy["rules"]["old"][0] == "sentiment.macro_f1 >= base + 0.1"
    assert policy["base_model"] == {"old": "models/tiny-llama", "new": "models/other"}
    sizes = {s["name"]: (s["old_items"], s["new_items"]) for s in policy["suites"]}
    assert sizes == {"sentiment": (len(suite), 30), "safety": (40, 40)}


def test_materialize_refuses_code_symlinks_and_data_paths_outside_data(repo: Path) -> None:
    before = (repo / "data" / "train.jsonl").read_bytes()

    def change(r: Path) -> None:
        (r / "action.yml").write_text("name: evil\nruns: {using: composite, steps: [{run: curl evil, shell: bash}]}\n")
        (r / ".github" / "workflows").mkdir(parents=True)
        (r / ".github" / "workflows" / "x.yml").write_text("on: push\n")
        (r / "data" / "link.jsonl").symlink_to("/etc/passwd")
        (r / "data" / "train.jsonl").write_text("{}\n")
        edit_config(r, data={"train": "evalsets/sentiment.jsonl"})

    base, head = open_pr(repo, change)
    result = materialize(repo / "adapterci.yaml", repo, head, base)
    assert [(r["path"], r["reason"]) for r in result.refused] == [
        (".github/workflows/x.yml", "not data"), ("action.yml", "not data"),
        ("data/link.jsonl", "not a regular file (git mode 120000)"),
        ("adapterci.yaml", "`data` reads 'evalsets/sentiment.jsonl', outside data/")]
    assert result.taken == [] and (repo / "data" / "train.jsonl").read_bytes() == before
    assert "action.yml" in result.refusal() and "docs/self-hosted-runner.md" in result.refusal()


def test_pr_materialize_cli_refuses_with_a_report(repo: Path, tmp_path: Path) -> None:
    base, head = open_pr(repo, lambda r: (r / ".github").mkdir() or (r / ".github" / "run.sh").write_text("rm -rf /\n"))
    run_dir = tmp_path / "run"
    result = CliRunner().invoke(cli, ["pr", "materialize", "--config", str(repo / "adapterci.yaml"), "--head-repo",
                                      str(repo), "--head-sha", head, "--base-sha", base, "--run-dir", str(run_dir)])
    assert result.exit_code == 1 and "changes more than data" in result.output and "Traceback" not in result.output
    assert json.loads((run_dir / "pr.json").read_text())["refused"] == [{"path": ".github/run.sh", "reason": "not data"}]
    report = (run_dir / "report.md").read_text()
    assert "⛔ refused" in report and "### Pull request refused" in report and "| `.github/run.sh` | not data |" in report
    bad = CliRunner().invoke(cli, ["pr", "materialize", "--config", str(repo / "adapterci.yaml"), "--head-repo",
                                   str(repo), "--head-sha", "main", "--base-sha", base])
    assert bad.exit_code == 2 and "not a full commit SHA" in bad.output


@pytest.fixture
def gh():
    with GitHubEmulator(repo=REPO, token=TOKEN) as emulator:
        emulator.roles.update(alice="maintain", bob="triage")
        emulator.pull_request(5, head_sha="a" * 40, base_sha="b" * 40, labels=["safe-to-train"])
        yield emulator


def labeled(sha: str, login: str, label: str = "safe-to-train") -> dict:
    return {"action": "labeled", "label": {"name": label}, "sender": {"login": login},
            "pull_request": {"number": 5, "head": {"sha": sha}}}


def test_authorize_a_writer_at_the_labeled_head(gh) -> None:
    granted = authorize(GitHub(gh.url, TOKEN), REPO, request_from_event("pull_request_target", labeled("a" * 40, "alice")))
    assert (granted.head_sha, granted.base_sha, granted.role) == ("a" * 40, "b" * 40, "maintain")


@pytest.mark.parametrize("case", ["triage", "stranger", "pushed_after_label", "label_removed", "closed"])
def test_authorize_refuses(gh, case: str) -> None:
    login, sha = {"triage": "bob", "stranger": "mallory"}.get(case, "alice"), "a" * 40
    if case == "pushed_after_label":
        gh.pulls[5]["head"]["sha"] = "c" * 40
    if case == "label_removed":
        gh.pulls[5]["labels"] = []
    if case == "closed":
        gh.pulls[5]["state"] = "closed"
    with pytest.raises(NotAuthorized) as err:
        authorize(GitHub(gh.url, TOKEN), REPO, request_from_event("pull_request_target", labeled(sha, login)))
    expected = {"triage": "@bob has `triage` access", "stranger": "@mallory has `none` access",
                "pushed_after_label": "its head is now cccccccccccc", "label_removed": "no longer on pull request #5",
                "closed": "is closed"}[case]
    assert expected in str(err.value) and err.value.exit_code == 1


def test_authorize_events(gh) -> None:
    with pytest.raises(NotAuthorized, match="only the `safe-to-train` label"):
        request_from_event("pull_request_target", labeled("a" * 40, "alice", label="documentation"))
    dispatched = request_from_event("workflow_dispatch", {"inputs": {"pr": "5", "sha": "a" * 40},
                                                          "sender": {"login": "alice"}})
    assert dispatched == Request(5, "a" * 40, "alice", None)
    assert authorize(GitHub(gh.url, TOKEN), REPO, dispatched).number == 5
    with pytest.raises(Exception, match="not a full commit SHA"):
        request_from_event("workflow_dispatch", {"inputs": {"pr": "5", "sha": "--upload-pack=x"}})


def test_pr_cli_authorize_and_unlabel(gh, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    event, output = tmp_path / "event.json", tmp_path / "output"
    event.write_text(json.dumps(labeled("a" * 40, "alice")))
    monkeypatch.setenv("GITHUB_API_URL", gh.url)
    for key, value in {"GITHUB_EVENT_PATH": str(event), "GITHUB_EVENT_NAME": "pull_request_target",
                       "GITHUB_REPOSITORY": REPO, "GITHUB_OUTPUT": str(output)}.items():
        monkeypatch.setenv(key, value)
    no_token = CliRunner().invoke(cli, ["pr", "authorize"])
    assert no_token.exit_code == 1 and "HTTP 401" in no_token.output
    monkeypatch.setenv("GITHUB_TOKEN", TOKEN)
    ok = CliRunner().invoke(cli, ["pr", "authorize"])
    assert ok.exit_code == 0, ok.output
    assert output.read_text().splitlines() == [f"head-sha={'a' * 40}", f"base-sha={'b' * 40}", "number=5"]
    event.write_text(json.dumps({"action": "synchronize", "pull_request": {"number": 5}}))
    assert "Removed `safe-to-train` from #5" in CliRunner().invoke(cli, ["pr", "unlabel"]).output
    assert gh.labels(5) == []
    assert "had no `safe-to-train` label" in CliRunner().invoke(cli, ["pr", "unlabel"]).output
    assert os.environ["GITHUB_TOKEN"] not in ok.output
