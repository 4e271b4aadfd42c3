"""How many eval items a gate rule needs (adapterci.gate.power): the numbers against closed forms and against
the gate's own decisions simulated on synthetic items; the INCONCLUSIVE reason, gate.json, the report and
`adapterci validate` name them."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from adapterci.cli import cli
from adapterci.eval import stats
from adapterci.gate import power
from adapterci.gate.config import GateConfig
from adapterci.gate.policy import judge
from adapterci.gate.rules import parse_rule
from adapterci.report import render
from adapterci.runs import RunDir

from test_gate import FLIP, make_results, safety_items, task_items, verdict

ALPHA = 0.05
REPLICATES = 400


def pass_rate(rule: str, draw, n: int, replicates: int = REPLICATES, resamples: int = 100) -> float:
    """The share of PASS verdicts of the gate's own `judge` on `replicates` synthetic eval sets of n items."""
    gate = GateConfig(rules=[rule], significance=ALPHA, min_items=1, bootstrap_resamples=resamples)
    rng = np.random.default_rng(7)
    parsed = parse_rule(rule)
    return float(np.mean([judge(parsed, draw(rng, n), gate).outcome == "PASS" for _ in range(replicates)]))


def within(rate: float, expected: float, replicates: int = REPLICATES) -> bool:
    """`rate` is within 3.5 binomial standard errors of `expected`."""
    return abs(rate - expected) <= 3.5 * math.sqrt(expected * (1 - expected) / replicates)


def binomial_power(n: int, threshold: float, rate: float) -> float:
    """Closed form: the chance that the exact binomial test (the gate's p-value) rejects at n items."""
    from scipy.stats import binom

    k = np.arange(n + 1)
    rejects = np.array([stats.binomial_pvalue(int(x), n, threshold, "greater") <= ALPHA for x in k])
    return float(binom.pmf(k, n, rate)[rejects].sum())


def test_power_binomial_sample_size_is_the_smallest_n_with_80_percent_power() -> None:
    n = power.binomial_items(0.7, 0.8, ALPHA, power.POWER, "greater")
    assert n == 119
    assert binomial_power(n, 0.7, 0.8) >= 0.8 > binomial_power(n - 1, 0.7, 0.8)
    # `<=` counts the other side: the same test on the complementary rate
    assert power.binomial_items(0.3, 0.2, ALPHA, power.POWER, "less") == n
    assert power.binomial_items(0.7, 0.65, ALPHA, power.POWER, "greater") is None  # fails on the true value


def test_power_binomial_sample_size_matches_the_simulated_gate() -> None:
    """`safety.refusal_rate >= 0.7` with a candidate that truly refuses 80%: PASS four times in five at the
    estimated number of harmful items, far less often at half of it."""
    def draw(rng, n):
        return make_results([], safety_items(["harmful"] * n, {"candidate": list(rng.random(n) < 0.8)}))

    n = power.binomial_items(0.7, 0.8, ALPHA, power.POWER, "greater")
    assert within(pass_rate("safety.refusal_rate >= 0.7", draw, n), 0.8)
    assert pass_rate("safety.refusal_rate >= 0.7", draw, n // 2) < 0.65


def paired_task(psi: float, diff: float):
    """Task items where the candidate alone is right on (psi + diff)/2 of them and the base alone on (psi - diff)/2."""
    def draw(rng, n):
        gold = ["positive", "negative"] * (n // 2) + ["positive"] * (n % 2)
        u = rng.random(n)
        cand_only, base_only, both = u < (psi + diff) / 2, (u >= (psi + diff) / 2) & (u < psi), u >= psi + 0.2
        cand = [g if c or b else FLIP[g] for g, c, b in zip(gold, cand_only, both)]
        base = [g if o or b else FLIP[g] for g, o, b in zip(gold, base_only, both)]
        return make_results(task_items(gold, {"base": base, "candidate": cand}))
    return draw


def test_power_mcnemar_sample_size_matches_the_simulated_gate() -> None:
    """`sentiment.accuracy >= base + 0.05` with a candidate truly 0.15 better, the models disagreeing on 30% of
    the items: the gate's exact McNemar test passes it four times in five at the estimated n."""
    n = power.mcnemar_items(0.05, 0.15, 0.3, ALPHA, power.POWER, "greater")
    assert 150 < n < 400
    assert within(pass_rate("sentiment.accuracy >= base + 0.05", paired_task(0.3, 0.15), n), 0.8)
    # `<=` against the other model is the same test with the models swapped
    assert power.mcnemar_items(-0.05, -0.15, 0.3, ALPHA, power.POWER, "less") == n
    assert power.mcnemar_items(0.05, 0.05, 0.3, ALPHA, power.POWER, "greater") is None


def test_power_bootstrap_sample_size_matches_the_simulated_gate() -> None:
    """A per-label rule (bootstrap test): `sentiment.recall_positive >= 0.6` with a true recall of 0.75 on half
    of the items; the per-item standard deviation of that recall is sqrt(0.75 * 0.25 / 0.5)."""
    def draw(rng, n):
        gold = ["positive", "negative"] * (n // 2)
        right = rng.random(len(gold)) < 0.75
        return make_results(task_items(gold, {"candidate": [g if r else FLIP[g] for g, r in zip(gold, right)]}))

    sd = math.sqrt(0.75 * 0.25 / 0.5)
    n = power.normal_items(0.15, sd, ALPHA, power.POWER)
    assert n == math.ceil(((1.6448536 + 0.8416212) * sd / 0.15) ** 2)
    assert within(pass_rate("sentiment.recall_positive >= 0.6", draw, n + n % 2, replicates=300, resamples=1000),
                  0.8, replicates=300)


def test_power_the_gate_records_the_estimate_from_the_observed_result() -> None:
    """After an eval the estimate plans for the observed margin, with the observed discordance or spread: on a
    large sample it is close to the n computed from the true values."""
    rng = np.random.default_rng(3)
    gate = GateConfig(rules=["x.y >= 1"], significance=ALPHA, min_items=1, bootstrap_resamples=400)
    results = paired_task(0.3, 0.15)(rng, 4000)
    size = judge(parse_rule("sentiment.accuracy >= base + 0.05"), results, gate).sample_size
    assert size.basis == "observed" and size.method == "exact McNemar test, exact power"
    assert size.needed == pytest.approx(power.mcnemar_items(0.05, 0.15, 0.3, ALPHA, power.POWER, "greater"), rel=0.25)
    zero = judge(parse_rule("safety.leak_rate <= 0"),
                 make_results([], safety_items(["harmful"] * 30, {"candidate": [True] * 30})), gate).sample_size
    assert zero.needed is None and zero.note == "zero tolerance: decided on the observed value"


def test_power_an_inconclusive_rule_names_the_missing_count(tmp_path: Path) -> None:
    """15 items per label, a clearly better candidate: INCONCLUSIVE, and the reason, gate.json and the report
    say about how many items would decide it."""
    gold = ["positive", "negative"] * 15
    good = [g if i % 10 else FLIP[g] for i, g in enumerate(gold)]  # 12 of the 15 positives right
    coin = [g if (i // 2) % 2 else FLIP[g] for i, g in enumerate(gold)]  # 7 of them
    results = make_results(task_items(gold, {"base": coin, "candidate": good}))
    decision = verdict(tmp_path, ["sentiment.recall_positive >= base + 0.1"], results, "  min_items: 20\n")
    rule = decision.rules[0]
    needed = rule.sample_size.needed
    assert rule.outcome == "INCONCLUSIVE" and needed > 30
    assert rule.reason.endswith(f"; needs about {needed} items at 80% power, has 30")
    record = json.loads((tmp_path / "run" / "gate.json").read_text())["rules"][0]["sample_size"]
    assert record["needed"] == needed and record["power"] == 0.8 and record["basis"] == "observed"
    report = render(RunDir(tmp_path / "run").path)
    assert f"| about {needed} (has 30) |" in report and "with 80% power" in report

    few = verdict(tmp_path, ["sentiment.accuracy >= 0.6"], results, "  min_items: 50\n").rules[0]
    assert few.outcome == "INCONCLUSIVE"
    assert few.reason.startswith("only 30 items in `sentiment` (gate.min_items is 50)")
    assert few.reason.endswith(f"; needs about {few.sample_size.needed} items at 80% power, has 30")
    assert few.sample_size.needed >= 50


def test_power_validate_warns_about_rules_whose_suite_is_too_small(example_project: Path) -> None:
    """The tiny project: 104 sentiment items, 40 safety items (20 harmful). Before any eval `validate` plans with
    the rule's margin (0.05 for a constant threshold) and says which rules its suites are too small for."""
    config = example_project / "adapterci.yaml"
    result = CliRunner().invoke(cli, ["validate", str(config)])
    assert result.exit_code == 0, result.output
    assert result.stdout == f"{config.resolve()}: valid\n"
    harmful = power.binomial_items(0.7, 0.75, ALPHA, power.POWER, "greater")
    assert (f"warning: `safety.refusal_rate >= 0.7` needs about {2 * harmful} items in `safety`, which has 40: that "
            f"many pass a candidate 0.05 beyond its threshold with 80% power at significance 0.05 (exact binomial "
            f"test, exact power; {harmful} harmful items); see docs/gate.md") in result.stderr
    assert "`safety.leak_rate <= 0`" not in result.stderr  # zero tolerance: no number of items decides it

    listed = json.loads(CliRunner().invoke(cli, ["validate", str(config), "--json"]).stdout)["sample_sizes"]
    plans = {p["rule"]: p for p in listed}
    assert plans["safety.refusal_rate >= 0.7"]["sample_size"]["needed"] == 2 * harmful
    assert plans["safety.refusal_rate >= 0.7"]["too_small"] is True
    non_inferior = plans["sentiment.accuracy >= champion - 0.01"]["sample_size"]
    assert non_inferior["effect"] == 0.01 and "disagree on 50% of the items (assumed)" in non_inferior["note"]
    # macro-F1 of two labels at half the items each: sd^2 = (0.5/0.5 + 0.5/0.5) / 4
    macro = plans["sentiment.macro_f1 >= base + 0.1"]["sample_size"]
    assert macro["needed"] == power.normal_items(0.1, math.sqrt(0.5), ALPHA, power.POWER)
    assert plans["safety.leak_rate <= 0"]["too_small"] is False


def test_power_extreme_margins_give_bounded_answers() -> None:
    """A rule's numbers may be anything finite: a vanishing margin needs more items than any eval set
    (MOST_ITEMS), an impossible one none, a certain one a single item, and nothing overflows."""
    assert power.mcnemar_items(1e-300, 2e-300, 0.5, ALPHA, power.POWER, "greater") == power.MOST_ITEMS
    assert power.normal_items(1e-300, 0.5, ALPHA, power.POWER) == power.MOST_ITEMS
    assert power.mcnemar_items(1e300, 2e300, 1.0, ALPHA, power.POWER, "greater") is None
    assert power.mcnemar_items(-1e300, 0.0, 0.5, ALPHA, power.POWER, "greater") == 1
    assert power.binomial_items(-1e300, 0.5, ALPHA, power.POWER, "greater") == 1
