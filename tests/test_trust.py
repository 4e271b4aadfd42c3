"""The trust model's library side: caches per trust domain, provenance that `release` recomputes, and report text
from data rows rendered inert (see docs/self-hosted-runner.md)."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from adapterci.cli import cli
from adapterci.config import load_config
from adapterci.provenance import verdict_provenance
from adapterci.report import render
from adapterci.runs import cache_dir
from conftest import REPO

pytestmark = pytest.mark.xdist_group("registry")


def test_caches_are_kept_per_trust_domain(example_project: Path, monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    cfg = load_config(example_project / "adapterci.yaml")
    monkeypatch.setenv("ADAPTERCI_CACHE_DIR", str(tmp_path / "runner-cache"))
    seen = {}
    for domain in ("pr", "default-branch", ""):
        monkeypatch.setenv("ADAPTERCI_TRUST_DOMAIN", domain)
        seen[domain] = cache_dir(cfg, "adapters")
    assert seen == {"pr": tmp_path / "runner-cache" / "pr" / "adapters",
                    "default-branch": tmp_path / "runner-cache" / "default-branch" / "adapters",
                    "": tmp_path / "runner-cache" / "local" / "adapters"}
    monkeypatch.setenv("ADAPTERCI_TRUST_DOMAIN", "main")
    result = CliRunner().invoke(cli, ["run", "--config", str(example_project / "adapterci.yaml")])
    assert result.exit_code == 2 and "ADAPTERCI_TRUST_DOMAIN='main': must be one of" in result.output


def vouch(config: Path, adapter: Path, run_dir: Path, monkeypatch: pytest.MonkeyPatch, base: dict | None = None):
    """Copy `adapter` into `run_dir` (its training record naming `base` when given) and write a PASS verdict that
    vouches for it, as a trusted run writes it (eval results are a stand-in: the refusals tested here happen
    before they are re-judged). Returns invoke(*args) of `adapterci release` on this config."""
    shutil.copytree(adapter, run_dir / "adapter")
    if base is not None:
        record = run_dir / "adapter" / "adapterci-train.json"
        record.write_text(json.dumps({**json.loads(record.read_text()), "base_model": base}))
    (run_dir / "eval").mkdir()
    (run_dir / "eval" / "results.json").write_text(json.dumps({"suites": {}, "models": {}}))
    (run_dir / "eval" / "items.jsonl").write_text("")
    monkeypatch.setenv("ADAPTERCI_TRUST_DOMAIN", "default-branch")
    provenance = verdict_provenance(load_config(config), run_dir / "adapter", run_dir / "eval" / "results.json")
    (run_dir / "gate.json").write_text(json.dumps({"verdict": "PASS", "rules": [], "provenance": provenance}))
    monkeypatch.delenv("ADAPTERCI_TRUST_DOMAIN")

    def invoke(*args: str):
        return CliRunner().invoke(cli, ["release", "--config", str(config), *args])

    return invoke


@pytest.fixture
def vouched_run(example_project: Path, tiny_peft_adapter, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """(invoke, run dir, registry dir): a run directory whose PASS verdict vouches for its adapter."""
    invoke = vouch(example_project / "adapterci.yaml", tiny_peft_adapter[1], tmp_path / "run", monkeypatch)
    return invoke, tmp_path / "run", example_project / ".adapterci" / "registry"


def edit_gate(run_dir: Path, change) -> None:
    gate = json.loads((run_dir / "gate.json").read_text())
    change(gate)
    (run_dir / "gate.json").write_text(json.dumps(gate))


@pytest.mark.parametrize("case", ["no_verdict", "swapped_weights", "extra_file", "pr_domain", "no_provenance",
                                  "other_policy", "other_results", "inconclusive"])
def test_release_refuses_what_no_trusted_pass_verdict_vouches_for(vouched_run, example_project: Path, case) -> None:
    invoke, run_dir, registry = vouched_run
    adapter = run_dir / "adapter"
    expected = {
        "no_verdict": "no gate verdict at", "swapped_weights": "the adapter files differ from the ones it judged",
        "extra_file": "the adapter files differ", "pr_domain": "written by a `pr` run, not a trusted one",
        "no_provenance": "records no provenance", "other_policy": "judged under another policy",
        "other_results": "the eval results differ", "inconclusive": "its verdict is INCONCLUSIVE, not PASS"}[case]
    if case == "no_verdict":
        (run_dir / "gate.json").unlink()
    elif case == "swapped_weights":  # planted weights, e.g. from a runner's disk
        weights = adapter / "adapter_model.safetensors"
        weights.write_bytes(weights.read_bytes()[:-8] + b"planted!")
    elif case == "extra_file":
        (adapter / "tokenizer.json").write_text("{}")
    elif case == "pr_domain":
        edit_gate(run_dir, lambda g: g["provenance"].update(trust_domain="pr"))
    elif case == "no_provenance":
        edit_gate(run_dir, lambda g: g.pop("provenance"))
    elif case == "other_policy":
        config = example_project / "adapterci.yaml"
        config.write_text(config.read_text().replace('"safety.leak_rate <= 0"', '"safety.leak_rate <= 1"'))
    elif case == "other_results":
        (run_dir / "eval" / "items.jsonl").write_text('{"suite": "sentiment"}\n')
    else:
        edit_gate(run_dir, lambda g: g.update(verdict="INCONCLUSIVE"))
    result = invoke("--run-dir", str(run_dir))
    assert result.exit_code == 1, result.output
    assert expected in result.output and "Traceback" not in result.output
    assert not registry.exists() and not (run_dir / "release.json").exists()


EVIL_BASE = {"base_model": "attacker/evil-base", "revision": None, "resolved_revision": None}


def test_release_refuses_a_training_record_swapped_after_the_gate(vouched_run) -> None:
    """adapterci-train.json names the base a release publishes: it is part of what the verdict vouches for."""
    invoke, run_dir, registry = vouched_run
    record = run_dir / "adapter" / "adapterci-train.json"
    record.write_text(json.dumps({**json.loads(record.read_text()), "base_model": EVIL_BASE}))
    result = invoke("--run-dir", str(run_dir))
    assert result.exit_code == 1, result.output
    assert "the adapter files differ from the ones it judged (adapterci-train.json included)" in result.output
    assert not registry.exists() and not (run_dir / "release.json").exists()


def test_release_refuses_an_adapter_whose_record_names_another_base(example_project: Path, tiny_peft_adapter,
                                                                   tmp_path: Path, monkeypatch) -> None:
    """A self-consistent plant (judged as it is: digests match) whose training record names the attacker's base."""
    invoke = vouch(example_project / "adapterci.yaml", tiny_peft_adapter[1], tmp_path / "run", monkeypatch,
                   base=EVIL_BASE)
    result = invoke("--run-dir", str(tmp_path / "run"))
    assert result.exit_code == 1, result.output
    assert "its adapterci-train.json names the base attacker/evil-base, not the models/tiny-llama, content_hash " \
           in result.output and "it was judged with" in result.output
    assert not (example_project / ".adapterci" / "registry").exists()


def test_release_refuses_a_gguf_base_swapped_after_the_gate(tmp_path: Path, tiny_peft_adapter, monkeypatch) -> None:
    """The policy digest pins a GGUF base by its sha256 (a file once hashed as an empty directory, so any swap
    passed); a release job with no copy of the file (a hosted runner) takes the hash the verdict recorded."""
    from adapterci.modelio import base_model_identity
    from gguf_files import write_tiny_gguf
    from test_gguf import project

    (tmp_path / "p").mkdir()
    config = project(tmp_path / "p", extra="base_upstream: acme/tiny-llama\n",
                     gguf=write_tiny_gguf(tmp_path / "tiny.gguf"))
    (tmp_path / "p" / "evalsets").mkdir()
    shutil.copy(REPO / "evalsets" / "sentiment.jsonl", tmp_path / "p" / "evalsets" / "qa.jsonl")
    base = base_model_identity(load_config(config))
    released = []
    for case in ("same", "absent", "swapped"):
        run_dir = tmp_path / case
        invoke = vouch(config, tiny_peft_adapter[1], run_dir, monkeypatch, base=base)
        gguf = tmp_path / "p" / "models" / "tiny.gguf"
        if case == "absent":
            gguf.unlink()
        elif case == "swapped":
            write_tiny_gguf(gguf, metadata={"general.source.url": "https://huggingface.co/attacker/evil-base"})
        released.append(invoke("--run-dir", str(run_dir)))
        if case == "absent":
            write_tiny_gguf(gguf)
    same, absent, swapped = released
    assert "does not vouch" not in same.output + absent.output, same.output + absent.output
    assert swapped.exit_code == 1 and "does not vouch for" in swapped.output
    assert "judged under another policy (gate rules, eval sets, or the base model or its content)" in swapped.output
    assert not (tmp_path / "swapped" / "release.json").exists()


def test_release_in_ci_takes_only_a_default_branch_verdict(vouched_run, monkeypatch) -> None:
    invoke, run_dir, registry = vouched_run
    edit_gate(run_dir, lambda g: g["provenance"].update(trust_domain="local"))
    monkeypatch.setenv("CI", "true")
    refused = invoke("--run-dir", str(run_dir))
    assert refused.exit_code == 1, refused.output
    assert "written by a `local` run, and in CI only a `default-branch` run's verdict releases" in refused.output
    assert not registry.exists()
    monkeypatch.delenv("CI")
    assert "in CI only" not in invoke("--run-dir", str(run_dir)).output
    edit_gate(run_dir, lambda g: g["provenance"].update(trust_domain="default-branch"))
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    assert "in CI only" not in invoke("--run-dir", str(run_dir)).output


def test_release_without_a_run_needs_unverified(vouched_run) -> None:
    invoke, run_dir, registry = vouched_run
    refused = invoke("--adapter", str(run_dir / "adapter"))
    assert refused.exit_code == 1 and "no gate verdict for" in refused.output and "--unverified" in refused.output
    assert not registry.exists()
    assert invoke("--adapter", str(run_dir / "adapter"), "--unverified").exit_code == 0


ATTACK = ("<img src=x onerror=alert(1)> @acme/admins\n### Gate: ✅ PASS\n[click](https://evil.example) "
          "![x](https://evil.example/p.png) www.evil.example | col")


def test_report_renders_text_from_data_rows_inert(tmp_path: Path) -> None:
    (tmp_path / "check").mkdir()
    (tmp_path / "check" / "check.json").write_text(json.dumps({"passed": False, "checks": [
        {"name": "pii", "passed": False, "summary": ATTACK, "failures": [
            {"file": "data/<img src=x>`@acme/x`.jsonl", "line": 3, "message": ATTACK}]}]}))
    (tmp_path / "manifest.json").write_text(json.dumps({"stages": [{"name": "check", "status": "failed", "message": ATTACK}]}))
    report = render(tmp_path, "sentiment")
    text = re.sub(r"`[^`\n]*`", "", report)  # outside code spans, which GitHub renders verbatim (inert)
    assert "<img" not in text and "[click](" not in text and "![x](" not in text  # brackets escaped: no links
    assert "://" not in text.replace(":\u200b//", "")
    assert "@acme" not in text and "www.evil" not in text  # a zero-width space follows every @ and www
    assert "&lt;img" in text and "@\u200bacme/admins" in text
    assert [line for line in report.splitlines() if line.startswith("#")] == [
        "## adapterci · `sentiment` · ❌ check failed", "### Data check: ❌ failed"]
    rows = [line for line in report.splitlines() if line.startswith("| `pii`")]
    assert len(rows) == 2 and all(len(re.findall(r"(?<!\\)\|", row)) == 4 for row in rows)  # no extra cells


def test_policy_hash_is_independent_of_where_the_repository_is_checked_out(example_project: Path, tmp_path) -> None:
    """The GPU runner that judged and the hosted runner that releases check out in different directories."""
    from adapterci.provenance import policy_hash

    other = shutil.copytree(example_project, tmp_path / "elsewhere" / "checkout")
    assert policy_hash(load_config(example_project / "adapterci.yaml")) == policy_hash(load_config(other / "adapterci.yaml"))
    config = other / "adapterci.yaml"
    config.write_text(config.read_text().replace("safety.leak_rate <= 0", "safety.leak_rate <= 1"))
    assert policy_hash(load_config(example_project / "adapterci.yaml")) != policy_hash(load_config(config))
