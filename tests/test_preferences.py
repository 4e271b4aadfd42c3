"""Preference pairs (issue 26) on the tiny model: the row formats, the `preferences` check, config and data
errors (exit 2 naming the key or file:line), DPO / ORPO / SFT-then-DPO training with PEFT, and `kind: preference`
eval suites through the gate."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from adapterci.cli import cli
from adapterci.data.formats import normalise
from adapterci.data.load import Problem, RawRow, Source

pytestmark = pytest.mark.timeout(300)

SENTIMENT = "Classify the sentiment of this review as positive or negative.\n\n"


def sentiment_pairs(project: Path, source: str, count: int, swap: bool = False) -> list[dict]:
    """Pairs from a sentiment file of the tiny project: the right label chosen over the wrong one."""
    pairs = []
    for line in (project / source).read_text().splitlines():
        row = json.loads(line)
        answer = row.get("output") or row.get("completion")
        if answer not in ("positive", "negative"):
            continue
        prompt = row["prompt"] if "prompt" in row else f"{row['instruction']}\n\n{row['input']}"
        wrong = "negative" if answer == "positive" else "positive"
        chosen, rejected = (wrong, answer) if swap else (answer, wrong)
        pairs.append({"prompt": prompt, "chosen": chosen, "rejected": rejected})
    return pairs[:count]


def write_jsonl(path: Path, rows: list[dict]) -> None:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def configure(project: Path, method: str, pairs: list[dict], **train) -> Path:
    """The tiny project set up for `method` with `pairs` (in data.train for dpo/orpo, data.preferences for
    sft+dpo), a held-out preference suite and a preference rule."""
    path = project / "adapterci.yaml"
    data = yaml.safe_load(path.read_text())
    write_jsonl(project / "data" / "prefs.jsonl", pairs)
    if method in ("dpo", "orpo"):
        data["data"] = {"train": "data/prefs.jsonl"}
        data["checks"].pop("labels")
    else:
        data["data"]["preferences"] = "data/prefs.jsonl"
    write_jsonl(project / "evalsets" / "prefs.jsonl", sentiment_pairs(project, "evalsets/sentiment.jsonl", 40))
    data["eval"]["suites"].append({"name": "prefs", "path": "evalsets/prefs.jsonl", "kind": "preference"})
    data["train"].update({"method": method, "max_steps": 2, "batch_size": 8, "logging_steps": 1, **train})
    data["gate"]["rules"].append("prefs.logp_accuracy >= champion")
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def run(*args: str):
    return CliRunner().invoke(cli, list(args))


# --- row formats ------------------------------------------------------------------------------------------------

USER = {"role": "user", "content": "Is it safe?"}


@pytest.mark.parametrize("row", [
    {"prompt": "Is it safe?", "chosen": "Yes.", "rejected": "No."},
    {"prompt": [USER], "chosen": [{"role": "assistant", "content": "Yes."}],
     "rejected": [{"role": "assistant", "content": "No."}]},
    {"chosen": [USER, {"role": "assistant", "content": "Yes."}], "rejected": [USER, {"role": "assistant", "content": "No."}]},
], ids=["plain", "conversational", "implicit-prompt"])
def test_preference_row_formats_normalise_to_one_pair(row):
    ex = normalise(RawRow(row, Source("p.jsonl", 4)))
    assert (ex.prompt_text, ex.completion, ex.rejected, ex.format) == ("Is it safe?", "Yes.", "No.", "preference")
    assert ex.as_dict()["rejected"] == "No."


@pytest.mark.parametrize("row, says", [
    ({"prompt": "q", "chosen": "a"}, "missing field `rejected`"),
    ({"prompt": "q", "chosen": "a", "rejected": " "}, "field `rejected` is empty"),
    ({"chosen": "a", "rejected": "b"}, "plain-text preference row needs `prompt`"),
    ({"chosen": [USER, {"role": "assistant", "content": "a"}],
      "rejected": [{"role": "user", "content": "other"}, {"role": "assistant", "content": "b"}]},
     "share every message but the last"),
    ({"prompt": [USER], "chosen": [{"role": "user", "content": "a"}], "rejected": [{"role": "assistant", "content": "b"}]},
     "last message of `chosen` must be from `assistant`"),
])
def test_bad_preference_rows_name_the_problem(row, says):
    problem = normalise(RawRow(row, Source("p.jsonl", 7)))
    assert isinstance(problem, Problem) and says in problem.message and str(problem).startswith("p.jsonl:7: ")


# --- check ------------------------------------------------------------------------------------------------------


def test_check_flags_pair_problems_with_file_and_line(example_project):
    pairs = sentiment_pairs(example_project, "data/train.jsonl", 60)
    pairs[3] = {"prompt": pairs[3]["prompt"], "chosen": "positive", "rejected": "positive"}  # line 4: identical
    pairs[10] = {**pairs[9], "chosen": pairs[9]["rejected"], "rejected": pairs[9]["chosen"]}  # line 11: contradicts 10
    pairs[20] = {**pairs[20], "rejected": pairs[20]["chosen"] + " I hope this helps, let me know!"}  # 21: length only
    pairs[30] = {**pairs[30], "rejected": "Mail me at jane.doe@example.com"}  # line 31: PII in an answer
    configure(example_project, "sft+dpo", pairs)
    result = run("check", "--config", str(example_project / "adapterci.yaml"), "--json")
    assert result.exit_code == 1, result.output
    report = {c["name"]: c for c in json.loads(result.output)["checks"]}
    found = [(f["line"], f["message"]) for f in report["preferences"]["failures"]]
    assert any(line == 4 and "are the same answer" in m for line, m in found), found
    assert any(line == 11 and "contradicts the pair at data/prefs.jsonl:10" in m for line, m in found), found
    assert any(line == 21 and "differs only in length" in m for line, m in found), found
    assert any(f["file"] == "data/prefs.jsonl" and f["line"] == 31 for f in report["pii"]["failures"])
    assert report["preferences"]["failures"] and all(f["file"] == "data/prefs.jsonl"
                                                      for f in report["preferences"]["failures"])


def test_check_flags_a_set_that_teaches_verbosity(example_project):
    pairs = sentiment_pairs(example_project, "data/train.jsonl", 60)
    padded = [{**p, "chosen": f"After reading it closely, I would say the review is {p['chosen']}, overall.",
               "rejected": p["rejected"]} for p in pairs]
    configure(example_project, "sft+dpo", padded)
    result = run("check", "--config", str(example_project / "adapterci.yaml"), "--json")
    prefs = next(c for c in json.loads(result.output)["checks"] if c["name"] == "preferences")
    messages = [f["message"] for f in prefs["failures"]]
    assert any("longer one in 100% of 60 pairs" in m for m in messages), messages
    assert any("`checks.max_chosen_length_ratio`" in m for m in messages), messages


def test_clean_pairs_pass_the_preference_check(example_project):
    configure(example_project, "sft+dpo", sentiment_pairs(example_project, "data/train.jsonl", 60))
    result = run("check", "--config", str(example_project / "adapterci.yaml"), "--json")
    prefs = next(c for c in json.loads(result.output)["checks"] if c["name"] == "preferences")
    assert prefs["passed"], prefs


# --- config and data errors: exit 2 naming the key (and line) or the file:line --------------------------------


def yaml_line(path: Path, snippet: str) -> int:
    return next(n for n, text in enumerate(path.read_text().splitlines(), 1) if snippet in text)


@pytest.mark.parametrize("edit, key", [
    (lambda d: d["train"]["preference"].update(beta=0), "`train.preference.beta`"),
    (lambda d: d["train"].update(method="sft"), "`data.preferences`"),
    (lambda d: (d["train"].update(method="sft+dpo"), d["data"].pop("preferences")), "`train.method`"),
])
def test_preference_config_errors_name_the_key_and_line(example_project, edit, key):
    path = configure(example_project, "sft+dpo", sentiment_pairs(example_project, "data/train.jsonl", 60),
                     preference={"beta": 0.1})
    data = yaml.safe_load(path.read_text())
    edit(data)
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    result = run("train", "--config", str(path))
    assert result.exit_code == 2, result.output
    assert key in result.output and "line " in result.output and "Traceback" not in result.output


def test_preference_file_given_to_sft_and_the_reverse_exit_2_with_file_and_line(example_project):
    path = configure(example_project, "dpo", sentiment_pairs(example_project, "data/train.jsonl", 60))
    data = yaml.safe_load(path.read_text())
    data["train"]["method"] = "sft"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    result = run("train", "--config", str(path))
    assert result.exit_code == 2, result.output
    assert "data/prefs.jsonl:1: a preference pair" in result.output and "`train.method: sft`" in result.output

    data["train"]["method"], data["data"]["train"] = "dpo", "data/train.jsonl"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    result = run("train", "--config", str(path))
    assert result.exit_code == 2, result.output
    assert "data/train.jsonl:1: a supervised row" in result.output and "Traceback" not in result.output


# --- training ---------------------------------------------------------------------------------------------------


def train_json(project: Path) -> dict:
    adapter = project / ".adapterci" / "run" / "adapter"
    assert not (adapter / "ref").exists()  # DPO's frozen reference copy is not part of the adapter
    return json.loads((adapter / "adapterci-train.json").read_text())


@pytest.mark.parametrize("method", ["dpo", "orpo"])
def test_preference_methods_train_a_peft_adapter_with_provenance(example_project, method):
    path = configure(example_project, method, sentiment_pairs(example_project, "data/train.jsonl", 32))
    result = run("train", "--config", str(path))
    assert result.exit_code == 0, result.output
    record = train_json(example_project)
    assert record["method"] == method and [s["method"] for s in record["stages"]] == [method]
    assert record["steps"] == 2 and record["rows"]["pairs"] == 32 and record["tokens_per_s"] > 0


def test_sft_then_dpo_runs_both_stages_from_one_config(example_project):
    path = configure(example_project, "sft+dpo", sentiment_pairs(example_project, "data/train.jsonl", 32),
                     preference={"max_steps": 3})
    result = run("train", "--config", str(path))
    assert result.exit_code == 0, result.output
    record = train_json(example_project)
    assert [(s["method"], s["steps"]) for s in record["stages"]] == [("sft", 2), ("dpo", 3)]
    assert record["rows"]["pairs"] == 32 and record["rows"]["train"] > 100


# --- eval and gate ----------------------------------------------------------------------------------------------


def test_preference_suite_reports_reward_metrics_and_gates(example_project):
    path = configure(example_project, "dpo", sentiment_pairs(example_project, "data/train.jsonl", 32),
                     max_steps=4, learning_rate=3e-3)
    config = str(path)
    assert run("train", "--config", config).exit_code == 0
    result = run("eval", "--config", config, "--champion", "none")
    assert result.exit_code == 0, result.output
    runs = example_project / ".adapterci" / "run"
    results = json.loads((runs / "eval" / "results.json").read_text())
    prefs = results["suites"]["prefs"]
    assert prefs["kind"] == "preference" and prefs["n"] == 40
    assert prefs["metrics"]["base"]["reward_accuracy"] == 0 and prefs["metrics"]["base"]["reward_margin"] == 0
    assert set(prefs["deltas"]["base"]) == {"reward_accuracy", "reward_margin", "logp_accuracy", "logp_margin"}
    item = next(json.loads(line) for line in (runs / "eval" / "items.jsonl").read_text().splitlines()
                if json.loads(line)["suite"] == "prefs")
    cand = item["models"]["candidate"]
    assert cand["margin"] == pytest.approx(cand["score"]["chosen"] - cand["score"]["rejected"], abs=1e-5)
    assert "### Preference: `prefs`" in (runs / "eval" / "summary.md").read_text()
    assert run("gate", "--config", config).exit_code in (0, 1)
    verdict = json.loads((runs / "gate.json").read_text())
    rule = next(r for r in verdict["rules"] if r["rule"].startswith("prefs."))
    assert rule["test"] == "exact McNemar" and rule["n"] == 40


@pytest.mark.gpu
@pytest.mark.slow
@pytest.mark.skipif("not __import__('torch').cuda.is_available()", reason="needs CUDA (unsloth, bitsandbytes 4-bit)")
@pytest.mark.parametrize("backend, quantization, method", [
    ("unsloth", "none", "dpo"), ("unsloth", "4bit", "sft+dpo"), ("trl", "4bit", "dpo"), ("auto", "none", "orpo")])
def test_preference_methods_on_gpu_backends(example_project, backend, quantization, method):
    pairs = sentiment_pairs(example_project, "data/train.jsonl", 32)
    path = configure(example_project, method, pairs, backend=backend, quantization=quantization, precision="auto")
    result = run("train", "--config", str(path))
    assert result.exit_code == 0, result.output
    record = train_json(example_project)
    assert record["device"] == "cuda" and record["method"] == method and record["steps"] == 2


def test_malformed_pairs_stop_training_with_file_and_line(example_project):
    pairs = sentiment_pairs(example_project, "data/train.jsonl", 40)
    pairs[5] = {"prompt": pairs[5]["prompt"], "chosen": "positive"}
    pairs[6] = {**pairs[6], "rejected": ""}
    path = configure(example_project, "sft+dpo", pairs)
    result = run("train", "--config", str(path))
    assert result.exit_code == 1, result.output  # like a malformed SFT row: the data fails, not the config
    assert "data/prefs.jsonl:6: missing field `rejected`" in result.output
    assert "data/prefs.jsonl:7: field `rejected` is empty" in result.output and "Traceback" not in result.output
    assert not (example_project / ".adapterci" / "run" / "adapter").exists()


def test_sft_then_dpo_resumes_the_interrupted_stage_and_trains_the_same_weights(example_project):
    import torch
    from safetensors.torch import load_file
    from transformers import TrainerCallback

    from adapterci.config import load_config
    from adapterci.train.run import train

    path = configure(example_project, "sft+dpo", sentiment_pairs(example_project, "data/train.jsonl", 32),
                     save_steps=2, preference={"max_steps": 4})
    cfg = load_config(path)
    whole = train(cfg, output=example_project / "whole", log=lambda _: None)

    class Crash(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            if args.output_dir.endswith("stage-dpo") and state.global_step == 3:
                raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(cfg, output=example_project / "c", log=lambda _: None, callbacks=[Crash()])
    lines: list[str] = []
    resumed = train(cfg, output=example_project / "c", resume=True, log=lines.append)
    assert any("stage sft is complete" in line for line in lines), lines
    assert any(line.endswith("stage-dpo/checkpoint-2") for line in lines), lines
    assert [(s["method"], s["steps"]) for s in resumed.metrics["stages"]] == [("sft", 2), ("dpo", 4)]
    a = load_file(str(whole.adapter_dir / "adapter_model.safetensors"))
    b = load_file(str(resumed.adapter_dir / "adapter_model.safetensors"))
    assert a.keys() == b.keys() and all(torch.allclose(a[k], b[k], atol=1e-5) for k in a)
