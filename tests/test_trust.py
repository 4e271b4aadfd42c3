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


@pytest.fixture
def vouched_run(example_project: Path, tiny_peft_adapter, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """(invoke, run dir, registry dir): a run directory whose PASS verdict vouches for its adapter, as a trusted
    run writes it (eval results are a stand-in: every refusal below happens before they are re-judged)."""
    _, source = tiny_peft_adapter
    cfg = load_config(example_project / "adapterci.yaml")
    run_dir = tmp_path / "run"
    shutil.copytree(source, run_dir / "adapter")
    (run_dir / "eval").mkdir()
    (run_dir / "eval" / "results.json").write_text(json.dumps({"suites": {}, "models": {}}))
    (run_dir / "eval" / "items.jsonl").write_text("")
    monkeypatch.setenv("ADAPTERCI_TRUST_DOMAIN", "default-branch")
    gate = {"verdict": "PASS", "rules": [], "provenance": verdict_provenance(cfg, run_dir / "adapter", run_dir / "eval" / "results.json")}
    (run_dir / "gate.json").write_text(json.dumps(gate))
    monkeypatch.delenv("ADAPTERCI_TRUST_DOMAIN")

    def invoke(*args: str):
        return CliRunner().invoke(cli, ["release", "--config", str(example_project / "adapterci.yaml"), *args])

    return invoke, run_dir, example_project / ".adapterci" / "registry"


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
