"""`adapterci run` after stages run by hand: what `train`, `eval` and `gate` did on the same inputs is reused (and
`run --dry` says which stages are cached and why the others run), within one trust domain only."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from adapterci.adapterdir import content_digest
from adapterci.fsio import read_json

from test_pipeline import edit_config, invoke


def dry(project: Path) -> dict[str, tuple[str, str]]:
    result = invoke(project, "run", "--dry", "--no-release", "--json")
    assert result.exit_code == 0, result.output
    return {s["name"]: (s["status"], s["reason"]) for s in json.loads(result.stdout)["stages"]}


def test_run_dry_on_a_fresh_project_says_why_each_stage_runs(example_project: Path) -> None:
    text = invoke(example_project, "run", "--dry")
    assert text.exit_code == 0, text.output
    lines = text.output.splitlines()
    assert lines[1].split()[1:4] == ["train", "to", "run"]
    assert "none in the run directory to compare with" in lines[1]
    assert dry(example_project) == {
        "check": ("to run", "no check results of these data, eval sets and settings in the cache"),
        "train": ("to run", "no adapter of these inputs in the cache (and none in the run directory to compare with)"),
        "eval": ("to run", "after training: a new adapter"),
        "gate": ("to run", "after eval: new results")}
    assert not (example_project / ".adapterci").exists()  # --dry writes nothing


@pytest.mark.slow
def test_run_reuses_train_eval_and_gate_done_by_hand(example_project: Path, monkeypatch) -> None:
    edit_config(example_project, train={"max_steps": 6, "epochs": 1},
                gate={"rules": ["safety.over_refusal_rate <= 0.5"], "min_items": 20})
    for command in ("train", "eval", "gate"):
        done = invoke(example_project, command)
        assert done.exit_code == 0, f"{command}: {done.output[-2000:]}"
    run_dir = example_project / ".adapterci" / "run"
    weights = run_dir / "adapter" / "adapter_model.safetensors"
    digest, mtime = content_digest(run_dir / "adapter"), weights.stat().st_mtime_ns
    record = (run_dir / "adapter" / "adapterci-train.json").read_bytes()

    before = dry(example_project)
    assert before["check"][0] == "to run"  # `adapterci check` by hand was not run: run checks the data itself
    assert before["train"][0] == before["eval"][0] == before["gate"][0] == "cached", before
    assert before["train"][1].startswith("inputs unchanged: adapter ")
    assert before["gate"][1] == "results and policy unchanged: verdict PASS in the cache"

    result = invoke(example_project, "run", "--no-release", "--json")
    assert result.exit_code == 0, result.output[-3000:]
    stages = {s["name"]: s for s in json.loads(result.stdout)["stages"]}
    assert {name: s["status"] for name, s in stages.items()} == {
        "check": "ran", "train": "cached", "eval": "cached", "gate": "cached"}
    assert stages["train"]["message"].startswith("inputs unchanged: reused adapter")
    # the very adapter trained by hand: same files, same modification time, same training record
    assert content_digest(run_dir / "adapter") == digest and weights.stat().st_mtime_ns == mtime
    assert (run_dir / "adapter" / "adapterci-train.json").read_bytes() == record
    assert read_json(run_dir / "gate.json")["verdict"] == "PASS"
    assert all(status == "cached" for status, _ in dry(example_project).values())  # after run: check too

    # another trust domain's run vouches for nothing of this one, whatever lies in the run directory
    monkeypatch.setenv("ADAPTERCI_TRUST_DOMAIN", "pr")
    foreign = dry(example_project)
    assert foreign["train"] == ("to run", "the run directory's adapter was trained from these inputs, but no cache "
                                          "entry of this trust domain vouches for it (trained in another domain, by "
                                          "an older adapterci, or the cache was removed)")
    monkeypatch.delenv("ADAPTERCI_TRUST_DOMAIN")

    # one changed data row: train runs again, and --dry says what changed
    train = example_project / "data" / "train.jsonl"
    rows = train.read_text().splitlines()
    row = json.loads(rows[0])
    row["input"] = row["input"] + " Really."
    train.write_text("\n".join([json.dumps(row), *rows[1:]]) + "\n")
    changed = dry(example_project)
    assert changed["train"] == ("to run", "the data changed since the run directory's adapter was trained")
    assert changed["eval"] == ("to run", "after training: a new adapter")
    assert changed["check"][0] == "to run"
