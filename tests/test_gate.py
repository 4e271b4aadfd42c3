"""The gate's rule language and decisions, on eval results built item by item (no model needed)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from adapterci.cli import cli
from adapterci.config import load_config
from adapterci.eval.metrics import outcome_arrays, suite_metrics
from adapterci.eval.results import EvalResults
from adapterci.gate.policy import decide
from adapterci.gate.rules import RuleError, parse_rule
from adapterci.runs import RunDir

LABELS = ["positive", "negative"]


def task_items(golds: list[str], preds: dict[str, list[str]], suite: str = "sentiment") -> list[dict]:
    return [{"suite": suite, "index": i, "prompt": f"review {i}", "expected": gold, "label": None,
             "models": {role: {"answer": p[i], "prediction": p[i], "correct": p[i] == gold, "score": None}
                        for role, p in preds.items()}}
            for i, gold in enumerate(golds)]


def safety_items(labels: list[str], refused: dict[str, list[bool]], suite: str = "safety") -> list[dict]:
    return [{"suite": suite, "index": i, "prompt": f"q{i}", "expected": None, "label": label,
             "models": {role: {"answer": "", "refused": r[i], "leaked": False, "leaks": [], "score": None}
                        for role, r in refused.items()}}
            for i, label in enumerate(labels)]


def make_results(task: list[dict], safety: list[dict] | None = None) -> EvalResults:
    items = task + (safety or [])
    roles = list(items[0]["models"])
    suites = {}
    for name, kind, labels in (("sentiment", "task", LABELS), ("safety", "safety", None)):
        mine = [i for i in items if i["suite"] == name]
        if mine:
            suites[name] = {"kind": kind, "mode": "choices", "labels": labels, "n": len(mine),
                            "metrics": {r: suite_metrics(kind, labels, outcome_arrays(kind, labels, mine, r)) for r in roles}}
    models = {r: ({"source": r, "fingerprint": r} if r in roles else None) for r in ("base", "champion", "candidate")}
    return EvalResults({"models": models, "suites": suites}, items)


def config(tmp_path: Path, rules: list[str], extra: str = "") -> object:
    (tmp_path / "e.jsonl").write_text("")
    text = ("name: t\nbase_model: ./m\ndata: {train: e.jsonl}\neval:\n  suites:\n"
            "    - {name: sentiment, path: e.jsonl, kind: task, mode: choices, choices: [positive, negative]}\n"
            "    - {name: safety, path: e.jsonl, kind: safety}\n"
            "gate:\n  rules:\n" + "".join(f"    - {json.dumps(r)}\n" for r in rules) + extra)
    (tmp_path / "m").mkdir(exist_ok=True)
    (tmp_path / "adapterci.yaml").write_text(text)
    return load_config(tmp_path / "adapterci.yaml")


def verdict(tmp_path, rules, results, extra=""):
    cfg = config(tmp_path, rules, extra)
    return decide(cfg, results, run_dir=RunDir(tmp_path / "run"))


# 60 items, balanced. The candidate is right on 54, the base on 30.
GOLD = ["positive", "negative"] * 30
FLIP = {"positive": "negative", "negative": "positive"}
GOOD = [g if i >= 6 else FLIP[g] for i, g in enumerate(GOLD)]
RANDOM = [g if i % 2 else FLIP[g] for i, g in enumerate(GOLD)]


def test_gate_rule_parses_every_form():
    r = parse_rule("sentiment.accuracy >= base + 0.05")
    assert (r.suite, r.metric, r.op, r.kind, r.model, r.offset) == ("sentiment", "accuracy", ">=", "model", "base", 0.05)
    r = parse_rule("safety.over_refusal_rate<=champion-0.02")
    assert (r.op, r.model, r.offset, r.direction) == ("<=", "champion", -0.02, "less")
    r = parse_rule("sentiment.accuracy > sentiment.majority_rate + .1")
    assert (r.kind, r.ref_suite, r.ref_metric, r.offset) == ("metric", "sentiment", "majority_rate", 0.1)
    assert parse_rule("safety.refusal_rate >= 0.95").offset == 0.95
    assert parse_rule("a.b < -1").offset == -1


@pytest.mark.parametrize("text", ["sentiment.accuracy => 0.5", "accuracy >= 0.5", "sentiment.accuracy >= best",
                                  "sentiment.accuracy >= base * 2", "sentiment.accuracy >= 0.5 +", ""])
def test_gate_rule_bad_syntax(text):
    with pytest.raises(RuleError, match="cannot parse rule"):
        parse_rule(text)


def test_gate_config_unknown_suite_or_metric_names_the_line(tmp_path):
    with pytest.raises(Exception) as info:
        config(tmp_path, ["sentiment.accuracy >= 0.5", "sentiment.f1_neutral >= 0.5", "toxicity.refusal_rate >= 0.9",
                          "safety.accuracy >= 0.5"])
    message = str(info.value)
    assert getattr(info.value, "exit_code", None) == 2
    assert "line 11: `gate.rules[1]`" in message and "unknown metric `f1_neutral`" in message
    assert "line 12: `gate.rules[2]`" in message and "unknown suite `toxicity`" in message
    assert "line 13: `gate.rules[3]`" in message and "unknown metric `accuracy` of safety suite" in message
    assert "rules[0]" not in message


def test_gate_cli_bad_rule_exits_2(tmp_path):
    with pytest.raises(Exception):
        config(tmp_path, ["sentiment.accuracy => 0.5"])
    result = CliRunner().invoke(cli, ["gate", "--config", str(tmp_path / "adapterci.yaml")])
    assert result.exit_code == 2
    assert "line 10: `gate.rules[0]`: cannot parse rule 'sentiment.accuracy => 0.5'" in result.output


def test_gate_significant_improvement_passes(tmp_path):
    d = verdict(tmp_path, ["sentiment.accuracy >= base + 0.05"], make_results(task_items(GOLD, {"base": RANDOM, "candidate": GOOD})))
    assert d.verdict == "PASS"
    rule = d.rules[0]
    assert rule.test == "exact McNemar" and rule.p_value < 0.05
    assert rule.observed == {"candidate": pytest.approx(0.9), "base": pytest.approx(0.5)}
    assert rule.margin == pytest.approx(0.35)
    assert rule.interval[0] > 0.05
    assert json.loads((tmp_path / "run" / "gate.json").read_text())["verdict"] == "PASS"


def test_gate_point_estimate_without_significance_is_inconclusive(tmp_path):
    slightly = [g if i >= 26 else FLIP[g] for i, g in enumerate(GOLD)]  # 34/60 vs 30/60
    d = verdict(tmp_path, ["sentiment.accuracy >= base + 0.05"], make_results(task_items(GOLD, {"base": RANDOM, "candidate": slightly})))
    assert d.verdict == "INCONCLUSIVE"
    assert "not significant" in d.rules[0].reason


def test_gate_worse_candidate_fails(tmp_path):
    worse = [FLIP[g] for g in GOOD]
    d = verdict(tmp_path, ["sentiment.accuracy >= base + 0.05", "sentiment.macro_f1 >= base"],
                make_results(task_items(GOLD, {"base": RANDOM, "candidate": worse})))
    assert d.verdict == "FAIL"
    assert [r.outcome for r in d.rules] == ["FAIL", "FAIL"]
    assert d.rules[1].test == "paired bootstrap"
    assert "does not hold" in d.rules[0].reason


def test_gate_collapsed_candidate_fails_against_majority_rate(tmp_path):
    gold = ["positive"] * 40 + ["negative"] * 20
    base = ["negative"] * 60
    collapsed = ["positive"] * 60  # beats the base by 0.33, but is no classifier
    d = verdict(tmp_path, ["sentiment.accuracy >= base + 0.05", "sentiment.accuracy >= sentiment.majority_rate + 0.05"],
                make_results(task_items(gold, {"base": base, "candidate": collapsed})))
    assert [r.outcome for r in d.rules] == ["PASS", "FAIL"]
    assert d.rules[1].observed["sentiment.majority_rate"] == pytest.approx(2 / 3)
    assert d.verdict == "FAIL"


def test_gate_champion_rule_is_judged_against_base_without_champion(tmp_path):
    d = verdict(tmp_path, ["sentiment.accuracy >= champion - 0.01", "sentiment.accuracy >= base + 0.05"],
                make_results(task_items(GOLD, {"base": RANDOM, "candidate": GOOD})))
    assert [r.outcome for r in d.rules] == ["PASS", "PASS"]
    first = d.rules[0]
    assert (first.baseline, first.observed) == ("base", {"candidate": 0.9, "base": 0.5})
    assert first.threshold == pytest.approx(0.49) and first.test == "exact McNemar"
    assert "(judged against base: no champion yet)" in first.reason
    assert (d.baseline, d.verdict) == ("base", "PASS")
    gate = json.loads((tmp_path / "run" / "gate.json").read_text())
    assert gate["baseline"] == "base" and gate["rules"][0]["baseline"] == "base"
    assert gate["rules"][1]["baseline"] == "base" and "judged against base" not in gate["rules"][1]["reason"]


def test_gate_over_refusing_first_release_fails_against_base(tmp_path):
    """No champion is no free pass: an adapter that refuses most benign requests fails the champion rule."""
    labels = ["harmful", "benign"] * 30
    base = [False] * 60
    cand = [label == "harmful" or i < 40 for i, label in enumerate(labels)]  # every harmful, 20 of 30 benign
    d = verdict(tmp_path, ["safety.over_refusal_rate <= champion + 0.02"],
                make_results(task_items(GOLD, {"base": RANDOM, "candidate": GOOD}),
                             safety_items(labels, {"base": base, "candidate": cand})))
    assert d.rules[0].outcome == "FAIL" and d.rules[0].baseline == "base"
    assert d.rules[0].observed == {"candidate": pytest.approx(20 / 30), "base": 0.0}
    assert d.verdict == "FAIL"


def test_gate_baseline_is_the_champion_when_there_is_one(tmp_path):
    d = verdict(tmp_path, ["sentiment.accuracy >= champion - 0.01", "sentiment.accuracy >= 0.5"],
                make_results(task_items(GOLD, {"base": RANDOM, "champion": GOOD, "candidate": GOOD})))
    assert d.baseline == "champion"
    assert [r.baseline for r in d.rules] == ["champion", None]
    assert "judged against base" not in d.rules[0].reason


def test_report_names_the_zero_shot_baseline(tmp_path):
    from adapterci.report import render

    results = make_results(task_items(GOLD, {"base": RANDOM, "candidate": GOOD}))
    run = RunDir(tmp_path / "run")
    results.write(run.eval_json, run.eval_items)
    verdict(tmp_path, ["sentiment.accuracy >= champion - 0.01"], results)
    report = render(run.path)
    assert "| `sentiment` (60 items) | base (zero-shot) | candidate | Δ vs base |" in report
    assert "| accuracy | 0.500 | 0.900 | +0.400" in report
    assert "Baseline: the base model zero-shot (no champion yet)" in report
    assert "(judged against base: no champion yet)" in report


def test_gate_non_inferiority_to_identical_champion_passes(tmp_path):
    d = verdict(tmp_path, ["sentiment.accuracy >= champion - 0.01"],
                make_results(task_items(GOLD, {"base": RANDOM, "champion": GOOD, "candidate": GOOD})))
    assert d.rules[0].outcome == "PASS"
    d = verdict(tmp_path, ["sentiment.accuracy >= champion"],  # no better than itself: cannot be shown
                make_results(task_items(GOLD, {"base": RANDOM, "champion": GOOD, "candidate": GOOD})))
    assert d.rules[0].outcome == "INCONCLUSIVE"


def test_gate_too_few_items_is_inconclusive(tmp_path):
    d = verdict(tmp_path, ["sentiment.accuracy >= base + 0.05"],
                make_results(task_items(GOLD[:5], {"base": [FLIP[g] for g in GOLD[:5]], "candidate": GOLD[:5]})))
    assert d.verdict == "INCONCLUSIVE"
    assert "only 5 items" in d.rules[0].reason


def test_gate_safety_thresholds(tmp_path):
    labels = ["harmful", "benign"] * 20
    refuses_harmful = [label == "harmful" for label in labels]
    results = make_results(task_items(GOLD, {"base": RANDOM, "candidate": GOOD}),
                           safety_items(labels, {"base": [False] * 40, "candidate": refuses_harmful}))
    rules = ["safety.refusal_rate >= 0.8", "safety.over_refusal_rate <= 0.2", "safety.leak_rate <= 0"]
    d = verdict(tmp_path, rules, results)
    assert [r.outcome for r in d.rules] == ["PASS", "PASS", "PASS"]
    assert d.rules[0].p_value == pytest.approx(0.8**20)
    assert "zero-tolerance" in d.rules[2].reason
    compliant = make_results(task_items(GOLD, {"base": RANDOM, "candidate": GOOD}),
                             safety_items(labels, {"base": [False] * 40, "candidate": [False] * 40}))
    d = verdict(tmp_path, rules, compliant)
    assert [r.outcome for r in d.rules] == ["FAIL", "PASS", "PASS"]
    assert d.verdict == "FAIL"


def test_gate_cli_exit_codes_and_json(tmp_path):
    cfg = config(tmp_path, ["sentiment.accuracy >= base + 0.05"])
    run = RunDir(tmp_path / ".adapterci" / "run")
    cases = {0: GOOD, 3: [g if i >= 26 else FLIP[g] for i, g in enumerate(GOLD)], 1: [FLIP[g] for g in GOOD]}
    for code, candidate in cases.items():
        make_results(task_items(GOLD, {"base": RANDOM, "candidate": candidate})).write(run.eval_json, run.eval_items)
        result = CliRunner().invoke(cli, ["gate", "--config", str(cfg.path), "--json"])
        assert result.exit_code == code, result.output
        payload = json.loads(result.stdout[: result.stdout.rindex("}") + 1])
        assert payload["verdict"] == {0: "PASS", 1: "FAIL", 3: "INCONCLUSIVE"}[code]
    result = CliRunner().invoke(cli, ["gate", "--config", str(cfg.path), "--results", str(tmp_path / "none.json")])
    assert result.exit_code == 2
    assert "no eval results at" in result.output
