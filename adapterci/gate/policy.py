"""The gate: rules + eval results -> PASS / FAIL / INCONCLUSIVE with one reason per rule (docs/gate.md)."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from adapterci import __version__
from adapterci.cost.worth import worth_it
from adapterci.errors import UsageError
from adapterci.eval import stats
from adapterci.eval.metrics import BINARY_METRICS, LOWER_IS_BETTER, binary_outcomes, compute
from adapterci.eval.results import EvalResults
from adapterci.fsio import read_json, write_json_atomic
from adapterci.gate import power
from adapterci.gate.power import SampleSize
from adapterci.gate.rules import BEST_PROMPT, Rule, gate_models, parse_rule
from adapterci.provenance import verdict_provenance
from adapterci.runs import RunDir, run_dir_for
from adapterci.stagecache import store_verdict, verdict_entry

Outcome = Literal["PASS", "FAIL", "INCONCLUSIVE"]
Verdict = Literal["PASS", "FAIL", "INCONCLUSIVE"]


@dataclass
class RuleResult:
    """How one rule fared. `margin` is how far the observed value is on the passing side of the threshold
    (negative: it fails); `interval` is the (1 - 2*significance) interval of the candidate's value (threshold
    rules) or of the difference candidate - other model (comparisons)."""

    rule: str
    outcome: Outcome
    reason: str
    baseline: str | None = None  # the model a comparison was judged against (for `best_prompt`: the prompt chosen)
    observed: dict[str, float | None] = field(default_factory=dict)
    threshold: float | None = None
    margin: float | None = None
    test: str | None = None
    p_value: float | None = None
    interval: tuple[float, float] | None = None
    n: int = 0
    sample_size: SampleSize | None = None  # about how many items the suite needs to decide the rule (gate.power)


@dataclass
class GateDecision:
    verdict: Verdict
    rules: list[RuleResult]
    significance: float
    min_items: int
    baseline: str = "champion"  # what `champion` rules were judged against: `champion`, or `base` on a first release
    worth_it: dict[str, Any] | None = None  # the prompt baselines beside the candidate, and the costs (cost.worth)

    def to_json(self) -> dict[str, Any]:
        return {"adapterci_version": __version__, "verdict": self.verdict, "baseline": self.baseline,
                "significance": self.significance, "min_items": self.min_items,
                "rules": [asdict(r) for r in self.rules], "worth_it": self.worth_it}


def baseline(results: EvalResults) -> str:
    """The model rules against `champion` are judged against: the champion, or (first release) the base model
    with its prompt."""
    return "champion" if results.has_model("champion") else "base"


def decide(cfg, results: EvalResults | str | Path, run_dir: RunDir | None = None, write: bool = True) -> GateDecision:
    """Apply `cfg.gate.rules` to eval results and (unless not `write`) write gate.json into the run directory,
    with its provenance when it judges the run's own results of the run's own adapter (what release checks);
    such a verdict is also kept in this trust domain's cache (`adapterci.stagecache`) for `adapterci run`.
    Any FAIL -> FAIL; else any INCONCLUSIVE -> INCONCLUSIVE; else PASS."""
    if not isinstance(results, EvalResults):
        results = EvalResults.load(results)
    rd = run_dir_for(cfg, run_dir)
    models = gate_models(cfg.eval)
    outcomes = [judge(parse_rule(text, models), results, cfg.gate) for text in cfg.gate.rules]
    seen = {r.outcome for r in outcomes}
    verdict: Verdict = "FAIL" if "FAIL" in seen else "INCONCLUSIVE" if "INCONCLUSIVE" in seen else "PASS"
    decision = GateDecision(verdict, outcomes, cfg.gate.significance, cfg.gate.min_items, baseline(results),
                            worth_it(cfg.cost, results, _train_seconds(rd)))
    if write:
        record = decision.to_json()
        own = results.path is not None and Path(results.path).resolve() == rd.eval_json.resolve()
        if own and (rd.adapter / "adapter_config.json").is_file():
            record["provenance"] = verdict_provenance(cfg, rd.adapter, rd.eval_json)
        with rd.locked():
            write_json_atomic(rd.gate_json, record)
            if "provenance" in record:  # `run` on the same results and policy reuses it
                store_verdict(cfg, verdict_entry(cfg, rd.adapter, rd.eval_json), rd.gate_json)
    return decision


def _train_seconds(rd: RunDir) -> float | None:
    """How long training the run's adapter took (its adapterci-train.json), None when unknown."""
    try:
        seconds = read_json(rd.train_json).get("wall_time_s")
    except (OSError, ValueError, AttributeError):
        return None
    return float(seconds) if isinstance(seconds, (int, float)) else None


def best_prompt(results: EvalResults, suite: str, metric: str) -> str:
    """The best way to prompt the base model on `suite` by `metric`: zero-shot (`base`) or a prompt baseline,
    whichever scores highest (lowest where less is better; ties: `base`, then config order). UsageError when
    the results have no baseline."""
    if not results.baselines:
        raise UsageError(f"the eval results have no prompt baseline (rule names `{BEST_PROMPT}`): add "
                         "`eval.baselines` and re-run `adapterci eval`")
    prompts = ["base", *results.baselines]
    values = [(v, name) for name in prompts if (v := results.metric(suite, name, metric)) is not None]
    if not values:
        return "base"  # undefined for every prompt: judged (INCONCLUSIVE) like a rule against base
    sign = 1 if metric in LOWER_IS_BETTER else -1
    return min(values, key=lambda vn: (sign * vn[0], prompts.index(vn[1])))[1]


def judge(rule: Rule, results: EvalResults, gate) -> RuleResult:
    """One rule against the results (see docs/gate.md for the decision procedure). A rule against `champion`
    is judged against the base model when there is no champion (first release); `best_prompt` against the
    best prompt on the rule's metric (see `best_prompt`)."""
    for suite in {rule.suite, rule.ref_suite} - {None}:
        if suite not in results.suites:
            raise UsageError(f"the eval results have no suite `{suite}` (rule {rule.text!r}): re-run `adapterci eval`")
    if rule.model == "champion":
        other_model = baseline(results)
    elif rule.model == BEST_PROMPT:
        other_model = best_prompt(results, rule.suite, rule.metric)
    else:
        other_model = rule.model
    if other_model is not None and not results.has_model(other_model):
        raise UsageError(f"the eval results have no {other_model} model (rule {rule.text!r}): re-run `adapterci eval`")
    info = results.suites[rule.suite]
    labels = info.get("labels")
    cand = results.arrays(rule.suite, "candidate")
    observed = {"candidate": compute(rule.metric, cand, labels)}
    if rule.kind == "model":
        other = results.arrays(rule.suite, other_model)
        observed[other_model] = compute(rule.metric, other, labels)
        base_value = observed[other_model]
    elif rule.kind == "metric":
        base_value = results.metric(rule.ref_suite, "candidate", rule.ref_metric)
        observed[f"{rule.ref_suite}.{rule.ref_metric}"] = base_value
    else:
        base_value = 0.0
    n = int(info["n"])
    if observed["candidate"] is None or base_value is None:
        return RuleResult(rule.text, "INCONCLUSIVE", f"`{rule.suite}.{rule.metric}` is undefined on these items (none to compute it on)",
                          observed=observed, n=n)
    threshold = base_value + rule.offset
    margin = observed["candidate"] - threshold if rule.direction == "greater" else threshold - observed["candidate"]
    compared = other_model if rule.kind == "model" and other_model != "candidate" else None
    result = RuleResult(rule.text, "FAIL", "", compared, observed, threshold, margin, n=n)
    effect = power.effect_of(rule, margin)
    if compared:
        _paired_test(result, rule, cand, other, labels, gate, effect)
    else:
        _threshold_test(result, rule, cand, labels, threshold, gate, effect)
    holds = rule.holds(observed["candidate"], threshold)
    value = f"{rule.suite}.{rule.metric} {observed['candidate']:.4g} vs {threshold:.4g}"
    if rule.model == "champion" and compared == "base":
        value += " (judged against base: no champion yet)"
    elif rule.model == BEST_PROMPT:
        value += f" (best prompt: `{compared}`)"
    needed = result.sample_size.needed if result.sample_size else None
    needs = f"; needs about {needed} items at {power.POWER:.0%} power, has {n}" if needed else ""
    if n < gate.min_items:
        result.outcome, result.reason = "INCONCLUSIVE", f"only {n} items in `{rule.suite}` (gate.min_items is {gate.min_items}): too few to decide ({value}){needs}"
    elif not holds:
        result.outcome, result.reason = "FAIL", f"{value}: does not hold (margin {margin:+.4g})"
    elif result.p_value is None:
        result.outcome, result.reason = "PASS", f"{value}: holds; zero-tolerance threshold, decided on the observed value"
    elif result.p_value <= gate.significance:
        result.outcome, result.reason = "PASS", f"{value}: holds (margin {margin:+.4g}, {result.test} p={result.p_value:.3g})"
    else:
        result.outcome = "INCONCLUSIVE"
        result.reason = f"{value}: holds on the point estimate but is not significant ({result.test} p={result.p_value:.3g} > {gate.significance}){needs}"
    return result


def _threshold_test(result: RuleResult, rule: Rule, cand: dict, labels, threshold: float, gate,
                    effect: tuple[float, str]) -> None:
    """Candidate metric against a constant: exact binomial test for 0/1 rates, bootstrap otherwise.
    A threshold at the edge of the metric's range (>= 1, <= 0) cannot be established by a test: it is a
    zero-tolerance rule, decided on the observed value (p_value stays None)."""
    confidence = 1 - 2 * gate.significance
    edge = (rule.direction == "greater" and threshold >= 1) or (rule.direction == "less" and threshold <= 0)
    if rule.metric in BINARY_METRICS:
        outcomes = binary_outcomes(rule.metric, cand)
        k, n = int(np.sum(outcomes)), len(outcomes)
        result.test, result.interval = "exact binomial", stats.clopper_pearson(k, n, confidence)
        if not edge:
            result.p_value = stats.binomial_pvalue(k, n, threshold, rule.direction)
        result.sample_size = power.for_rate(threshold, *effect, rule.direction, gate.significance, n, result.n,
                                            gate.min_items, power.RATED.get(rule.metric, ""))
        return
    n = len(next(iter(cand.values())))
    samples = stats.paired_bootstrap(lambda idx: compute(rule.metric, cand, labels, idx), n, gate.bootstrap_resamples)
    result.test, result.interval = "bootstrap", stats.percentile_interval(samples, confidence)
    if not edge:
        result.p_value = stats.bootstrap_pvalue(samples, threshold, rule.direction)
    result.sample_size = power.for_estimate(*effect, _item_sd(samples, n), gate.significance, gate.min_items, edge)


def _paired_test(result: RuleResult, rule: Rule, cand: dict, other: dict, labels, gate,
                 effect: tuple[float, str]) -> None:
    """Candidate against another model on the same items: exact McNemar (with the margin) for 0/1 outcomes,
    paired bootstrap of the difference otherwise. The interval is the bootstrap interval of the difference."""
    n = len(next(iter(cand.values())))
    diff = stats.paired_bootstrap(
        lambda idx: compute(rule.metric, cand, labels, idx) - compute(rule.metric, other, labels, idx), n, gate.bootstrap_resamples)
    result.interval = stats.percentile_interval(diff, 1 - 2 * gate.significance)
    if rule.metric in BINARY_METRICS:
        x, y = binary_outcomes(rule.metric, cand), binary_outcomes(rule.metric, other)
        result.test = "exact McNemar"
        result.p_value = stats.paired_binary_pvalue(x, y, rule.offset, rule.direction)
        discordance = sum(stats.discordant(x, y)) / len(x) if len(x) else 0.0
        result.sample_size = power.for_paired_rate(rule.offset, *effect, rule.direction, discordance,
                                                   gate.significance, len(x), n, gate.min_items,
                                                   power.RATED.get(rule.metric, ""))
    else:
        result.test = "paired bootstrap"
        result.p_value = stats.bootstrap_pvalue(diff, rule.offset, rule.direction)
        result.sample_size = power.for_estimate(*effect, _item_sd(diff, n), gate.significance, gate.min_items)


def _item_sd(samples: np.ndarray, n: int) -> float:
    """The per-item standard deviation of a bootstrapped statistic: its bootstrap standard error times sqrt(n)."""
    finite = samples[~np.isnan(samples)]
    return float(np.std(finite)) * math.sqrt(n) if finite.size else math.nan
