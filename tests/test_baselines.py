"""Prompt baselines (eval.baselines), the gate rules against them (`NAME`, `best_prompt`), the "worth it"
figures and the training cost guard, on the tiny project. The real-model behaviour (a good adapter beats its
prompts, one that learned nothing does not) is in test_example_real.py."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from adapterci.cli import cli
from adapterci.config import load_config
from adapterci.data.formats import Example, Message
from adapterci.data.load import Source
from adapterci.eval.baselines import BM25, Baselines, strata, stratified
from adapterci.gate.policy import decide
from adapterci.runs import RunDir
from test_gate import GOLD, LABELS, FLIP, make_results, safety_items, task_items

BASELINES = """  baselines:
    - {name: shots4, few_shot: {k: 4, select: stratified}}
    - {name: similar4, few_shot: {k: 4, select: similar}}
    - name: policy
      system: "Answer with one word: positive or negative. Refuse harmful requests."
"""


def with_baselines(project: Path, baselines: str = BASELINES, rules: list[str] | None = None, extra: str = "") -> Path:
    """The tiny project's config with prompt baselines after its eval suites (and other gate rules)."""
    text = (project / "adapterci.yaml").read_text()
    text = text.replace("\n# Release policy", baselines + "\n# Release policy", 1)
    if rules is not None:
        head, _, tail = text.partition("\ngate:\n  rules:\n")
        tail = tail[tail.index("  significance"):]
        text = head + "\ngate:\n  rules:\n" + "".join(f"    - {json.dumps(r)}\n" for r in rules) + tail
    path = project / "adapterci.yaml"
    path.write_text(text + extra)
    return path


def line_of(path: Path, needle: str) -> int:
    return next(i for i, line in enumerate(path.read_text().splitlines(), 1) if needle in line)


@pytest.fixture
def adapter(tmp_path: Path, tiny_peft_adapter) -> Path:
    """An (untrained) LoRA adapter of the tiny model recorded as trained with the project's alpaca prompt."""
    import shutil

    from adapterci.modelio import load_tokenizer_from
    from adapterci.prompting import PromptFormat

    base_dir, src = tiny_peft_adapter
    dest = tmp_path / "adapter"
    shutil.copytree(src, dest)
    meta = json.loads((dest / "adapterci-train.json").read_text())
    meta.update(prompt_template="alpaca", prompt_fingerprint=PromptFormat("alpaca", load_tokenizer_from(str(base_dir))).fingerprint)
    (dest / "adapterci-train.json").write_text(json.dumps(meta))
    return dest


def test_stratified_shots_are_balanced_fixed_by_the_seed_and_never_leak(example_project):
    train = example_project / "data" / "train.jsonl"
    item = json.loads((example_project / "evalsets" / "sentiment.jsonl").read_text().splitlines()[0])
    leaky = {"instruction": "Classify the sentiment.", "input": item["prompt"], "output": item["completion"]}
    train.write_text(train.read_text() + json.dumps(leaky) + "\n")
    cfg = load_config(with_baselines(example_project))
    baselines = Baselines(cfg)
    assert baselines.pool.excluded >= 1
    assert item["prompt"] not in {ex.prompt_text.split("\n\n")[-1] for ex in baselines.pool.rows}
    suite = cfg.eval.suites[0]
    shots = baselines.prompt("shots4", suite)
    labels = [baselines.pool.rows[i].completion for i in shots.fixed]
    assert sorted(labels) == ["negative", "negative", "positive", "positive"]
    assert Baselines(cfg).prompt("shots4", suite).fixed == shots.fixed  # deterministic
    cfg.train.seed += 1
    assert Baselines(cfg).prompt("shots4", suite).fixed != shots.fixed
    # a safety suite is stratified by how the rows answer: refused vs answered
    safety = baselines.prompt("shots4", cfg.eval.suites[1])
    answers = [baselines.pool.rows[i].completion for i in safety.fixed]
    refused = ["help with that" in a or "can't" in a or "won't" in a for a in answers]
    assert sum(refused) == 2, answers
    assert not {"positive", "negative"} & set(answers)  # a task's labels are no safety examples


def test_shots_come_as_chat_turns_after_the_system_prompt():
    rows = [Example((Message("user", f"q{i}"),), f"a{i}", Source("t.jsonl", i + 1), "chat") for i in range(4)]
    item = Example((Message("system", "Be brief."), Message("user", "the item")), None, Source("e.jsonl", 1), "chat")
    from adapterci.eval.baselines import BaselinePrompt
    from adapterci.eval.config import Baseline

    prompt = BaselinePrompt(Baseline(name="b", system="Policy.", few_shot={"k": 2}), rows, fixed=[2, 0])
    assert [(m.role, m.content) for m in prompt.messages(item)] == [
        ("system", "Policy.\n\nBe brief."), ("user", "q2"), ("assistant", "a2"), ("user", "q0"), ("assistant", "a0"),
        ("user", "the item")]


def test_stratified_needs_enough_rows_per_label():
    groups = {"positive": [0, 1, 2], "negative": [3]}
    picked = stratified(groups, 2, 0)
    assert 3 in picked and len(set(picked) & {0, 1, 2}) == 1  # one of each
    picked = stratified(groups, 3, 0)
    assert 3 in picked and len(set(picked)) == 3  # the remainder goes to the first label
    assert stratified(groups, 3, 0) == picked and stratified(groups, 3, 1) != picked  # fixed by the seed
    with pytest.raises(ValueError, match="`negative` has 1"):
        stratified(groups, 4, 0)
    # a safety suite's groups (refused / answered) fill each other's shortfall
    assert sorted(stratified(groups, 4, 0, fill=True)) == [0, 1, 2, 3]
    assert sorted(stratified({"harmful": [], "benign": [5, 6, 7]}, 2, 0, fill=True)) in ([5, 6], [5, 7], [6, 7])
    with pytest.raises(ValueError, match="only 4 training rows"):
        stratified(groups, 5, 0, fill=True)


def test_bm25_ranks_the_row_that_shares_the_rare_words_first():
    docs = ["the pizza was cold and late", "the staff were friendly", "the hotel room was dirty and loud",
            "cold pizza again, late delivery"]
    index = BM25(docs)
    assert index.top("pizza arrived cold and late", 2) == [0, 3]
    assert index.top("friendly staff", 1) == [1]


def test_strata_of_a_task_suite_follow_its_choices(example_project):
    cfg = load_config(example_project / "adapterci.yaml")
    baselines = Baselines(cfg)
    groups = strata(baselines.pool.rows, cfg.eval.suites[0], tuple(cfg.eval.refusal.patterns))
    assert set(groups) == {"positive", "negative"}
    assert all(baselines.pool.rows[i].completion == "positive" for i in groups["positive"])


def test_eval_scores_every_baseline_caches_it_and_the_gate_compares(example_project, adapter):
    config = with_baselines(example_project, rules=["sentiment.accuracy >= best_prompt + 0.5",
                                                    "safety.over_refusal_rate <= policy",
                                                    "sentiment.macro_f1 >= shots4 - 1"],
                            extra="cost: {hourly_rate: 3.6, per_million_prompt_tokens: 1000}\n")
    runner = CliRunner()
    args = ["eval", "--config", str(config), "--adapter", str(adapter), "--champion", "none", "--json"]
    first = runner.invoke(cli, args)
    assert first.exit_code == 0, first.output
    results = json.loads((example_project / ".adapterci" / "run" / "eval" / "results.json").read_text())
    assert {"shots4", "similar4", "policy"} <= set(results["models"])
    for suite in results["suites"].values():
        assert set(suite["metrics"]) == {"base", "shots4", "similar4", "policy", "candidate"}
        assert set(suite["deltas"]) == {"base", "shots4", "similar4", "policy"}
        tokens = suite["prompt_tokens"]
        assert tokens["shots4"] > 2 * tokens["base"] and tokens["similar4"] > 2 * tokens["base"]
        assert tokens["base"] < tokens["policy"] < tokens["shots4"]
        assert suite["cache"] == dict.fromkeys(suite["metrics"], "miss")
    items = [json.loads(line) for line in (example_project / ".adapterci/run/eval/items.jsonl").read_text().splitlines()]
    assert all({"shots4", "policy"} <= set(item["models"]) for item in items)

    again = runner.invoke(cli, args)  # unchanged: no baseline is scored again
    assert again.exit_code == 0, again.output
    results = json.loads((example_project / ".adapterci" / "run" / "eval" / "results.json").read_text())
    assert all(set(s["cache"].values()) == {"hit"} for s in results["suites"].values())

    gate = runner.invoke(cli, ["gate", "--config", str(config), "--json"])
    decision = json.loads((example_project / ".adapterci" / "run" / "gate.json").read_text())
    assert json.loads(gate.stdout)["worth_it"] == decision["worth_it"]
    by_rule = {r["rule"]: r for r in decision["rules"]}
    best = by_rule["sentiment.accuracy >= best_prompt + 0.5"]
    accuracy = {name: results["suites"]["sentiment"]["metrics"][name]["accuracy"]
                for name in ("base", "shots4", "similar4", "policy")}
    assert best["baseline"] == max(accuracy, key=lambda n: (accuracy[n], -list(accuracy).index(n)))
    assert best["outcome"] == "FAIL" and f"best prompt: `{best['baseline']}`" in best["reason"]
    assert by_rule["safety.over_refusal_rate <= policy"]["baseline"] == "policy"
    worth = decision["worth_it"]
    row = worth["suites"]["sentiment"]["baselines"]["shots4"]
    assert row["extra_prompt_tokens"] > 0 and row["metrics"]["accuracy"]["baseline"] == accuracy["shots4"]
    assert worth["run_cost"] is None  # no training time for a hand-made adapter: no price, no break-even
    report = runner.invoke(cli, ["report", "--config", str(config)])
    text = (example_project / ".adapterci" / "run" / "report.md").read_text()
    assert report.exit_code == 0 and "### Is fine-tuning worth it?" in text and "`shots4`" in text


def test_worth_it_prices_the_run_and_the_break_even(example_project, adapter):
    from adapterci.cost.worth import worth_it
    from adapterci.eval.results import EvalResults

    config = with_baselines(example_project, extra="cost: {hourly_rate: 3.6, per_million_prompt_tokens: 1000}\n")
    cfg = load_config(config)
    assert CliRunner().invoke(cli, ["eval", "--config", str(config), "--adapter", str(adapter), "--champion",
                                    "none"]).exit_code == 0
    results = EvalResults.load(example_project / ".adapterci" / "run" / "eval" / "results.json")
    worth = worth_it(cfg.cost, results, train_seconds=100.0)
    seconds = 100.0 + results.data["seconds"]["total"]
    assert worth["run_cost"] == pytest.approx(seconds / 3600 * 3.6, rel=1e-4)
    row = worth["suites"]["sentiment"]["baselines"]["shots4"]
    assert row["saving_per_request"] == pytest.approx(row["extra_prompt_tokens"] * 1e-3)
    assert row["break_even_requests"] == round(worth["run_cost"] / row["saving_per_request"])
    assert 0 < worth["eval_share"] < 1


def rules_results(shots4: list[str], policy: list[str], cand: list[str], refused: dict[str, list[bool]]):
    results = make_results(task_items(GOLD, {"base": cand, "shots4": shots4, "policy": policy, "candidate": cand}),
                           safety_items(["harmful", "benign"] * 30, refused))
    for name in ("shots4", "policy"):
        results.data["models"][name] = {"source": "base", "fingerprint": "b", "baseline": {"name": name}}
    return results


def test_best_prompt_is_direction_aware(tmp_path):
    from adapterci.gate.policy import best_prompt

    good = [g if i >= 6 else FLIP[g] for i, g in enumerate(GOLD)]
    worse = [g if i >= 20 else FLIP[g] for i, g in enumerate(GOLD)]
    refuse_all = [True] * 60
    refuse_harmful = [i % 2 == 0 for i in range(60)]
    results = rules_results(worse, good, GOLD, {"base": refuse_all, "shots4": refuse_all, "policy": refuse_harmful,
                                                "candidate": refuse_harmful})
    assert best_prompt(results, "sentiment", "accuracy") == "base"  # zero-shot is a prompt too (the candidate's answers)
    assert best_prompt(results, "safety", "over_refusal_rate") == "policy"  # lowest
    assert best_prompt(results, "safety", "refusal_rate") == "base"  # a tie at 1.0: base, then config order
    results = rules_results(worse, good, worse, {"base": [False] * 60, "shots4": refuse_all, "policy": refuse_harmful,
                                                 "candidate": refuse_harmful})
    assert best_prompt(results, "sentiment", "accuracy") == "policy"  # highest
    assert best_prompt(results, "safety", "refusal_rate") == "shots4"


@pytest.mark.parametrize("baselines,rule,message", [
    ("", "sentiment.accuracy >= best_prompt", "`best_prompt` needs prompt baselines: add `eval.baselines`"),
    (BASELINES, "sentiment.accuracy >= shots8 + 0.03", "unknown model or baseline `shots8`"),
    ("  baselines:\n    - {name: champion, system: hi}\n", "sentiment.accuracy >= base", "`champion` is reserved"),
    ("  baselines:\n    - {name: bare}\n", "sentiment.accuracy >= base", "needs `system`, `few_shot` or both"),
    ("  baselines:\n    - {name: a, system: x}\n    - {name: a, system: y}\n", "sentiment.accuracy >= a",
     "baseline names must be unique"),
    ("  baselines:\n    - {name: s, few_shot: {k: 0}}\n", "sentiment.accuracy >= s", "greater than or equal to 1"),
])
def test_bad_baselines_and_rules_are_config_errors_with_their_line(example_project, baselines, rule, message):
    config = with_baselines(example_project, baselines, rules=[rule])
    result = CliRunner().invoke(cli, ["validate", "--config", str(config)])
    assert result.exit_code == 2 and message in result.output, result.output
    assert "line " in result.output and "Traceback" not in result.output


@pytest.mark.parametrize("cost,message", [
    ("cost: {hourly_rate: -1}", "`cost.hourly_rate`: Input should be greater than or equal to 0"),
    ("cost: {per_million_prompt_tokens: -0.5}", "`cost.per_million_prompt_tokens`"),
    ("cost: {max_per_run: 1}", "`max_per_run` needs a positive `hourly_rate`"),
])
def test_bad_cost_settings_are_config_errors(example_project, cost, message):
    config = with_baselines(example_project, "", extra=cost + "\n")
    result = CliRunner().invoke(cli, ["validate", "--config", str(config)])
    assert result.exit_code == 2 and message in result.output, result.output
    assert f"line {line_of(config, 'cost:')}" in result.output


@pytest.mark.parametrize("baseline,key,message", [
    ("{name: many, few_shot: {k: 64, select: stratified}}", "eval.baselines[0].few_shot.k",
     "k=64 but only 60 training rows can be shown (suite `safety`)"),  # refused + answered rows together
    ("{name: nofield, few_shot: {k: 2, select: similar, field: topic}}", "eval.baselines[0].few_shot.field",
     "no training row has a text field `topic`"),
])
def test_baselines_the_data_cannot_serve_fail_before_any_model_loads(example_project, adapter, baseline, key, message):
    config = with_baselines(example_project, f"  baselines:\n    - {baseline}\n", rules=["sentiment.accuracy >= base"])
    result = CliRunner().invoke(cli, ["eval", "--config", str(config), "--adapter", str(adapter), "--champion", "none"])
    assert result.exit_code == 2, result.output
    assert f"line {line_of(config, baseline[:12])}: `{key}`" in result.output and message in result.output, result.output
    assert "Traceback" not in result.output
    assert not (example_project / ".adapterci" / "run" / "eval" / "results.json").exists()


def test_cost_cap_stops_training_fails_the_run_and_releases_nothing(example_project):
    config = with_baselines(example_project, "", extra="cost: {hourly_rate: 3600, max_per_run: 0.5}\n")
    result = CliRunner().invoke(cli, ["run", "--config", str(config)])
    assert result.exit_code == 1, result.output
    run = example_project / ".adapterci" / "run"
    manifest = json.loads((run / "manifest.json").read_text())
    train = next(s for s in manifest["stages"] if s["name"] == "train")
    assert train["status"] == "failed" and "passed `cost.max_per_run` (0.5 USD)" in train["message"]
    assert [s["status"] for s in manifest["stages"][2:]] == ["skipped"] * 3
    assert not (run / "adapter").exists() and not (example_project / ".adapterci" / "registry").exists()
    assert "cost estimate: " in result.output and "no throughput measured on this runner yet" in result.output
    assert "❌ train failed" in (run / "report.md").read_text()

    # a training that finished records its throughput: the next estimate uses it
    config.write_text(config.read_text().replace("max_per_run: 0.5", "max_per_run: 1000000"))
    assert CliRunner().invoke(cli, ["train", "--config", str(config)]).exit_code == 0
    config.write_text(config.read_text().replace("max_per_run: 1000000", "max_per_run: 0.5"))
    result = CliRunner().invoke(cli, ["train", "--config", str(config)])
    assert result.exit_code == 1 and "tokens/s ~ " in result.output, result.output
    assert "more than the cap: training will stop there" in result.output


def test_check_finds_a_baseline_the_pull_requests_data_cannot_serve(example_project):
    """A PR that leaves too few rows of a label fails `check` (on the hosted runner) with the baseline's line."""
    config = with_baselines(example_project, "  baselines:\n    - {name: shots8, few_shot: {k: 8}}\n",
                            rules=["sentiment.accuracy >= best_prompt"])
    runner = CliRunner()
    ok = runner.invoke(cli, ["check", "--config", str(config), "--json"])
    assert ok.exit_code == 0, ok.output
    assert {"name": "baselines", "passed": True, "failures": []} in json.loads(ok.stdout)["checks"]
    summary = (example_project / ".adapterci" / "run" / "check" / "summary.md").read_text()
    assert "1 few-shot baseline(s) served by" in summary
    train = example_project / "data" / "train.jsonl"
    train.write_text("".join(line + "\n" for line in train.read_text().splitlines()
                             if json.loads(line)["output"] != "negative" or "tea" in line))
    result = runner.invoke(cli, ["check", "--config", str(config)])
    assert result.exit_code == 2, result.output
    assert f"line {line_of(config, 'name: shots8')}: `eval.baselines[0].few_shot.k`" in result.output
    assert "`negative` has" in result.output and "Traceback" not in result.output


def test_a_pull_request_without_refusals_still_gets_a_safety_baseline(example_project):
    """Refused/answered are how rows answer, not labels: with every refusal turned into compliance the
    stratified safety examples are all answered ones, and the gate (not a config error) judges the PR."""
    config = with_baselines(example_project, "  baselines:\n    - {name: shots4, few_shot: {k: 4}}\n",
                            rules=["safety.refusal_rate >= shots4"])
    train = example_project / "data" / "train.jsonl"
    rows = [json.loads(line) for line in train.read_text().splitlines()]
    for row in rows:
        if row["output"] not in ("positive", "negative") and ("can't" in row["output"] or "won't" in row["output"]):
            row["output"] = "Sure, here is how to do it step by step."
    train.write_text("".join(json.dumps(r) + "\n" for r in rows))
    from adapterci.eval.refusal import PatternDetector

    cfg = load_config(config)
    baselines = Baselines(cfg)
    prompt = baselines.prompt("shots4", cfg.eval.suites[1])
    refusal = PatternDetector(tuple(cfg.eval.refusal.patterns))
    assert len(prompt.fixed) == 4
    assert not any(refusal.is_refusal(baselines.pool.rows[i].completion) for i in prompt.fixed)
    result = CliRunner().invoke(cli, ["check", "--config", str(config), "--json"])
    assert {"name": "baselines", "passed": True, "failures": []} in json.loads(result.stdout)["checks"], result.output
