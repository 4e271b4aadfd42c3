"""What a trusted run reuses (docs/trusted-runs.md): the runner's evidence read from a real process tree under a
stand-in `Runner.Worker`, the refusal on a machine another job used (and the config's opt-in), and cache entries
sealed under ADAPTERCI_CACHE_KEY, against which an entry planted without the key is ignored."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from adapterci.adapterdir import digests
from adapterci.config import load_config
from adapterci.eval import cache as eval_cache
from adapterci.runs import cache_dir
from adapterci.stagecache import adapter_entry, store_adapter

from test_pipeline import edit_config, invoke

pytestmark = pytest.mark.xdist_group("registry")

REPO = Path(__file__).resolve().parent.parent


def runner(tmp_path: Path, ephemeral: bool = True, jobs: int = 1) -> Path:
    """A runner's install directory as actions/runner lays it out: bin/Runner.Worker (here a script that runs
    its arguments as a child, as the real Worker runs a job's steps), .runner (written with a BOM, camelCase) and
    one _diag/Worker_*.log per job it ran."""
    root = tmp_path / "actions-runner"
    (root / "bin").mkdir(parents=True)
    worker = root / "bin" / "Runner.Worker"
    worker.write_text('#!/bin/sh\n"$@"\n')
    worker.chmod(0o755)
    settings = {"agentId": 7, "agentName": "gpu-1", "poolId": 1, "workFolder": "_work"}
    (root / ".runner").write_text(json.dumps({**settings, **({"ephemeral": True} if ephemeral else {})}),
                                  encoding="utf-8-sig")
    (root / "_diag").mkdir()
    for job in range(jobs):
        (root / "_diag" / f"Worker_20261206-12000{job}-utc.log").write_text("[INFO Worker] Job message received\n")
    return root


INSPECT = ("import json; from adapterci import machine; m = machine.inspect(); "
           "print(json.dumps({'root': str(m.runner_root), 'ephemeral': m.ephemeral, 'others': m.other_jobs, "
           "'why': m.describe()}))")


def inspect_in(root: Path | None, **env: str) -> dict:
    """machine.inspect() in a Python started by the runner's Worker (`root`), or directly (None)."""
    cmd = [sys.executable, "-c", INSPECT]
    done = subprocess.run([str(root / "bin" / "Runner.Worker"), *cmd] if root else cmd, capture_output=True,
                          text=True, check=True, env={**os.environ, "PYTHONPATH": str(REPO), **env})
    return json.loads(done.stdout)


def test_machine_evidence_of_an_ephemeral_runner_and_of_a_shared_one(tmp_path: Path) -> None:
    fresh = runner(tmp_path / "fresh")
    assert inspect_in(fresh) == {"root": str(fresh), "ephemeral": True, "others": [], "why": ""}
    shared = runner(tmp_path / "shared", jobs=3)
    found = inspect_in(shared)
    assert found["ephemeral"] is False and found["others"] == [f"3 job logs in {shared / '_diag'} (Worker_*.log, "
                                                                "one per job)"]
    persistent = inspect_in(runner(tmp_path / "persistent", ephemeral=False))
    assert persistent["ephemeral"] is False and "is not ephemeral" in persistent["why"]
    outside = inspect_in(None)
    assert outside["root"] == "None" and "no GitHub runner process (Runner.Worker)" in outside["why"]


def test_machine_marker_of_another_job_is_evidence(tmp_path: Path) -> None:
    root = runner(tmp_path)
    job = {"GITHUB_WORKFLOW": "adapter PR (GPU)", "GITHUB_EVENT_NAME": "pull_request_target", "GITHUB_RUN_ID": "41",
           "GITHUB_REF": "refs/pull/7/merge"}
    mark = "from adapterci import machine; print(machine.mark_job())"
    subprocess.run([str(root / "bin" / "Runner.Worker"), sys.executable, "-c", mark], check=True,
                   env={**os.environ, "PYTHONPATH": str(REPO), **job})
    (marker,) = (Path(os.environ["ADAPTERCI_HOME"]) / "jobs").glob("*.json")
    assert json.loads(marker.read_text())["GITHUB_RUN_ID"] == "41"
    later = inspect_in(root, GITHUB_RUN_ID="42", GITHUB_EVENT_NAME="push", GITHUB_REF="refs/heads/main")
    assert later["ephemeral"] is False
    assert later["others"] == [f"adapterci ran for another job here (adapter PR (GPU) pull_request_target "
                               f"refs/pull/7/merge: {marker})"]


def foreign_job(monkeypatch: pytest.MonkeyPatch) -> Path:
    """A trusted CI job's environment, on a machine where adapterci already ran for another job (its marker)."""
    marker = Path(os.environ["ADAPTERCI_HOME"]) / "jobs" / "0123456789abcdef.json"
    marker.parent.mkdir(parents=True, exist_ok=True)
    marker.write_text(json.dumps({"GITHUB_WORKFLOW": "evil", "GITHUB_EVENT_NAME": "pull_request"}))
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    monkeypatch.setenv("ADAPTERCI_TRUST_DOMAIN", "default-branch")
    return marker


def test_trusted_run_refuses_a_machine_another_job_used(example_project: Path, monkeypatch) -> None:
    marker = foreign_job(monkeypatch)
    for args in (("run", "--no-release"), ("run", "--dry")):
        refused = invoke(example_project, *args)
        assert refused.exit_code == 2, refused.output
        assert "this trusted (default-branch) run refuses to run: other jobs used this machine: adapterci ran for " \
               f"another job here (evil pull_request: {marker})" in refused.output
        assert "`trust.shared_runner_reason`" in refused.output and "Traceback" not in refused.output
    assert not (example_project / ".adapterci").exists()
    # the same machine outside CI (a person's run) and a run of another domain are not refused
    monkeypatch.setenv("ADAPTERCI_TRUST_DOMAIN", "pr")
    assert invoke(example_project, "run", "--dry").exit_code == 0
    monkeypatch.delenv("GITHUB_ACTIONS")
    monkeypatch.setenv("ADAPTERCI_TRUST_DOMAIN", "default-branch")
    assert invoke(example_project, "run", "--dry").exit_code == 0


def test_shared_runner_reason_must_say_why(example_project: Path, monkeypatch) -> None:
    edit_config(example_project, trust={"shared_runner_reason": "  "})
    result = invoke(example_project, "validate")
    assert result.exit_code == 2 and "trust.shared_runner_reason" in result.output
    assert "must say why" in result.output


@pytest.mark.slow
def test_trusted_run_with_the_opt_in_recomputes_everything(example_project: Path, monkeypatch) -> None:
    """A default-branch run outside CI fills the cache; in CI on a machine another job used, with
    `trust.shared_runner_reason`, the same inputs are trained, evaluated and judged again and the run says so."""
    edit_config(example_project, train={"max_steps": 4, "epochs": 1},
                gate={"rules": ["safety.over_refusal_rate <= 0.5"], "min_items": 20})
    monkeypatch.setenv("ADAPTERCI_TRUST_DOMAIN", "default-branch")
    first = invoke(example_project, "run", "--no-release", "--json")
    assert first.exit_code == 0, first.output[-3000:]
    foreign_job(monkeypatch)
    edit_config(example_project, trust={"shared_runner_reason": "single-tenant box, PR jobs never run here"})
    dry = json.loads(invoke(example_project, "run", "--dry", "--no-release", "--json").stdout)["stages"]
    assert {s["status"] for s in dry} == {"to run"}
    assert "a trusted run on a runner that is not ephemeral" in dry[1]["reason"]
    again = invoke(example_project, "run", "--no-release", "--json")
    assert again.exit_code == 0, again.output[-3000:]
    out = json.loads(again.stdout)
    assert {s["name"]: s["status"] for s in out["stages"]} == {"check": "ran", "train": "ran", "eval": "ran",
                                                               "gate": "ran"}
    assert all(s["message"].endswith("recomputed: nothing cached is reused") for s in out["stages"])
    assert out["reuse"]["allowed"] is False and "other jobs used this machine" in out["reuse"]["reason"]
    assert "reuse: a trusted run on a runner that is not ephemeral" in again.stderr
    manifest = json.loads((example_project / ".adapterci" / "run" / "manifest.json").read_text())
    assert manifest["reuse"] == out["reuse"]


def test_eval_cache_entries_are_sealed_under_the_cache_key(example_project: Path, monkeypatch, capsys) -> None:
    cfg = load_config(example_project / "adapterci.yaml")
    outputs = [{"answer": "positive", "score": 1.0}, {"answer": "negative", "score": 0.0}]
    digest = "d" * 64
    monkeypatch.setenv("ADAPTERCI_CACHE_KEY", "release-environment-secret-1")
    eval_cache.store(cfg, digest, outputs)
    assert eval_cache.load(cfg, digest, 2) == outputs
    entry = cache_dir(cfg, "eval") / f"{digest}.json"
    assert "release-environment-secret-1" not in entry.read_text()
    # a job without the key forges a better base score, keeping the old seal
    forged = json.loads(entry.read_text())
    forged["outputs"][1]["score"] = 1.0
    entry.write_text(json.dumps(forged))
    assert eval_cache.load(cfg, digest, 2) is None
    assert "eval cache: ignored dddddddddddd: no valid seal under ADAPTERCI_CACHE_KEY (recomputed)" in \
        capsys.readouterr().err
    # an entry written without the key (or under another one) is not reused either
    monkeypatch.delenv("ADAPTERCI_CACHE_KEY")
    eval_cache.store(cfg, digest, outputs)
    assert eval_cache.load(cfg, digest, 2) == outputs  # a run without the key reuses as before
    monkeypatch.setenv("ADAPTERCI_CACHE_KEY", "release-environment-secret-1")
    assert eval_cache.load(cfg, digest, 2) is None


def test_adapter_entry_planted_without_the_key_is_ignored(example_project: Path, tiny_peft_adapter, tmp_path,
                                                          monkeypatch, capsys) -> None:
    """A self-consistent entry (its provenance.json names this domain and the planted files' digests) passes
    `provenance.vouches`; only the seal tells it from one this environment stored."""
    _, source = tiny_peft_adapter
    cfg = load_config(example_project / "adapterci.yaml")
    monkeypatch.setenv("ADAPTERCI_TRUST_DOMAIN", "default-branch")
    monkeypatch.setenv("ADAPTERCI_CACHE_KEY", "release-environment-secret-1")
    fingerprint = "f" * 64
    store_adapter(cfg, fingerprint, source, tmp_path / "no-loss.png")
    entry = cache_dir(cfg, "adapters") / fingerprint
    assert adapter_entry(cfg, fingerprint).hit and (entry / "adapterci-seal.json").is_file()

    weights = entry / "adapter" / "adapter_model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-8] + b"planted!")
    (entry / "provenance.json").write_text(json.dumps({"trust_domain": "default-branch",
                                                       "adapter": digests(entry / "adapter")}))
    assert not adapter_entry(cfg, fingerprint).hit
    assert f"cache: ignored adapters/{'f' * 12}: its seal is not valid under ADAPTERCI_CACHE_KEY" in \
        capsys.readouterr().err
    (entry / "adapterci-seal.json").unlink()
    assert not adapter_entry(cfg, fingerprint).hit
    monkeypatch.delenv("ADAPTERCI_CACHE_KEY")
    assert adapter_entry(cfg, fingerprint).hit  # what the seal alone stops: vouches() accepts the plant

    # a trusted CI job reuses a sealed entry on an ephemeral runner, and not even that on a persistent one
    monkeypatch.setenv("ADAPTERCI_CACHE_KEY", "release-environment-secret-1")
    shutil.rmtree(entry)
    store_adapter(cfg, fingerprint, source, tmp_path / "no-loss.png")
    lookup = (f"from adapterci.config import load_config; from adapterci.stagecache import adapter_entry; "
              f"print(adapter_entry(load_config({str(cfg.path)!r}), {fingerprint!r}).hit)")
    for ephemeral in (True, False):
        worker = runner(tmp_path / str(ephemeral), ephemeral=ephemeral) / "bin" / "Runner.Worker"
        found = subprocess.run([str(worker), sys.executable, "-c", lookup], capture_output=True, text=True,
                               check=True, env={**os.environ, "PYTHONPATH": str(REPO), "GITHUB_ACTIONS": "true"})
        assert found.stdout.strip() == str(ephemeral), found.stderr


def test_pr_run_holding_the_cache_key_refuses(example_project: Path, monkeypatch) -> None:
    monkeypatch.setenv("ADAPTERCI_TRUST_DOMAIN", "pr")
    monkeypatch.setenv("ADAPTERCI_CACHE_KEY", "release-environment-secret-1")
    result = invoke(example_project, "run", "--dry")
    assert result.exit_code == 2 and "ADAPTERCI_CACHE_KEY is set in a `pr` run" in result.output
    assert "release-environment-secret-1" not in result.output
