"""How many eval items a gate rule needs (docs/gate.md, "How many items a rule needs").

The number is the sample size at which the gate's own test (`gate.policy`) passes, with probability POWER at
`gate.significance`, a candidate whose true value lies `effect` beyond the rule's threshold, and never below
`gate.min_items`:

- a 0/1 rate against a constant: the exact one-sided binomial test. Its power at n items is exact (the
  critical count of Binomial(n, threshold), then the chance of reaching it at threshold ± effect); the smallest
  n with that power is found by bisection from the normal-approximation guess.
- a 0/1 rate against another model: the exact conditional McNemar test with the margin. Its power is exact
  too, summed over the number of discordant pairs m ~ Binomial(n, discordance), given m the candidate's
  wins ~ Binomial(m, (discordance + difference) / (2 discordance)). The discordance is the observed share of
  items on which the two models disagree, or (before any eval) ASSUMED_DISCORDANCE.
- other metrics (macro-F1, per-label scores), both kinds: the bootstrap test is a test of an asymptotically
  normal estimate, so n = ((z(1 - significance) + z(POWER)) * sd / effect)^2, with sd the per-item standard
  deviation: the bootstrap's standard error times sqrt(n) after an eval, an assumed one before.

`effect` is the observed margin when the rule holds on the point estimate (how many items would make this
result significant), else the planned effect: the rule's own offset when it has one (`>= champion - 0.01`
plans for a candidate as good as the champion, `>= base + 0.05` for one 0.05 beyond that bar), else
PLANNED_EFFECT. Above EXACT_UP_TO items the normal approximation is given as is, and never more than MOST_ITEMS.
scipy is imported inside the functions.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Literal

import numpy as np

from adapterci.data.dataset import load_suite
from adapterci.errors import AdapterCIError
from adapterci.eval.metrics import BINARY_METRICS, DATA_METRICS, label_key
from adapterci.gate.rules import Rule, gate_models, parse_rule

POWER = 0.8
"""The chance of a PASS the sample sizes plan for."""
PLANNED_EFFECT = 0.05
"""The true margin planned for where a rule has no offset (a constant threshold, or `>= base`)."""
ASSUMED_DISCORDANCE = 0.5
"""Before an eval, the share of items two models disagree on: that of independent models right half the time,
the most independent ones can have (more discordance needs more items)."""
EXACT_UP_TO = 20_000
"""Exact power is computed up to this many items; above, the normal approximation is the answer."""
MOST_ITEMS = 10**9
"""The largest answer: a margin that needs more items (one of 1e-9) is answered with this."""

Direction = Literal["greater", "less"]
Basis = Literal["observed", "planned"]


@dataclass(frozen=True)
class SampleSize:
    """About how many items of its suite a rule needs. `needed` is None where no number of items decides it
    (`note` says why)."""

    needed: int | None
    power: float
    effect: float | None
    basis: Basis
    method: str
    note: str = ""


RATED = {"refusal_rate": "harmful", "over_refusal_rate": "benign"}
"""The items a rate is over, where not all of the suite's (`eval.metrics.binary_outcomes`)."""


def planned_effect(rule: Rule) -> float:
    """The true margin to plan for where none is observed: the rule's own offset, else PLANNED_EFFECT (a rule
    against a constant has no offset: its number is the threshold)."""
    return abs(rule.offset) if rule.kind != "number" and rule.offset else PLANNED_EFFECT


def effect_of(rule: Rule, margin: float | None) -> tuple[float, Basis]:
    """The observed margin where the rule holds on the point estimate, else the planned effect."""
    observed = round(margin, 9) if margin is not None else 0.0  # float noise would show as 0.09999999999999998
    return (observed, "observed") if observed > 0 else (planned_effect(rule), "planned")


def for_rate(threshold: float, effect: float, basis: Basis, direction: Direction, significance: float, n_rated: int,
             n_suite: int, min_items: int, rated: str = "") -> SampleSize:
    """A 0/1 rate over `n_rated` of the suite's `n_suite` items (`rated`: which, e.g. `harmful`, when not all)
    against a constant `threshold`, by the exact binomial test."""
    method = "exact binomial test, exact power"
    if (direction == "greater" and threshold >= 1) or (direction == "less" and threshold <= 0):
        return SampleSize(None, POWER, None, basis, method, "zero tolerance: decided on the observed value")
    needed = binomial_items(threshold, _clip(threshold + (effect if direction == "greater" else -effect)),
                            significance, POWER, direction)
    return _in_suite(needed, n_rated, n_suite, min_items, effect, basis, method, rated)


def for_paired_rate(offset: float, effect: float, basis: Basis, direction: Direction, discordance: float,
                    significance: float, n_rated: int, n_suite: int, min_items: int, rated: str = "",
                    assumed: bool = False) -> SampleSize:
    """A 0/1 rate against another model's on the same items, by the exact McNemar test with the margin; the
    models disagree on a share `discordance` of the rated items (observed, or `assumed`)."""
    difference = offset + effect if direction == "greater" else offset - effect
    discordance = min(max(discordance, abs(difference)), 1.0)  # no fewer disagreements than the difference
    needed = mcnemar_items(offset, difference, discordance, significance, POWER, direction)
    share = f"the models disagree on {discordance:.0%} of the items ({'assumed' if assumed else 'observed'})"
    return _in_suite(needed, n_rated, n_suite, min_items, effect, basis, "exact McNemar test, exact power", rated,
                     share)


def for_estimate(effect: float, basis: Basis, sd: float, significance: float, min_items: int, edge: bool = False,
                 assumed: str = "") -> SampleSize:
    """A bootstrap-tested metric (or difference) whose per-item standard deviation is `sd` (observed, or as
    `assumed` says)."""
    method = "bootstrap test, normal approximation"
    if edge:
        return SampleSize(None, POWER, None, basis, method, "zero tolerance: decided on the observed value")
    if not math.isfinite(sd):
        return SampleSize(None, POWER, effect, basis, method, "undefined on resampled items: no spread to plan with")
    note = assumed or f"per-item standard deviation {sd:.3g} (observed)"
    return SampleSize(max(normal_items(effect, sd, significance, POWER), min_items), POWER, effect, basis, method,
                      note)


def _in_suite(needed: int | None, n_rated: int, n_suite: int, min_items: int, effect: float, basis: Basis, method: str,
              rated: str, note: str = "") -> SampleSize:
    """`needed` rated items as items of the suite (in the suite's proportions), at least `min_items`."""
    if not n_rated:
        return SampleSize(None, POWER, effect, basis, method, f"the suite has no {rated} items to rate")
    if needed is None:
        return SampleSize(None, POWER, effect, basis, method, "no number of items makes it pass")
    parts = [note] if note else []
    if rated and n_rated != n_suite:
        parts.append(f"{needed} {rated} items")
        needed = math.ceil(needed * n_suite / n_rated)
    return SampleSize(max(needed, min_items), POWER, effect, basis, method, "; ".join(parts))


# --- the sample sizes ------------------------------------------------------------------------------------------


def binomial_items(threshold: float, rate: float, alpha: float, power: float, direction: Direction) -> int | None:
    """The smallest n at which the exact one-sided binomial test against `threshold` at level `alpha` rejects
    with probability >= `power` when the true rate is `rate`; None when it never does (the rate is on the
    failing side)."""
    if direction == "less":  # count the failures instead: the same test with `greater`
        threshold, rate = 1 - threshold, 1 - rate
    if rate <= threshold:
        return None
    if threshold < 0:
        return 1  # `greater` than a negative rate: any one item shows it
    from scipy.stats import binom

    def power_at(n: int) -> float:
        critical = _critical(n, threshold, alpha)
        return float(binom.sf(critical - 1, n, rate)) if critical <= n else 0.0

    return _smallest(power_at, _normal_guess(threshold, rate, alpha, power), power)


def mcnemar_items(offset: float, difference: float, discordance: float, alpha: float, power: float,
                  direction: Direction) -> int | None:
    """The smallest n at which the gate's exact McNemar test (`stats.paired_binary_pvalue`) rejects "difference
    <= offset" (`greater`) with probability >= `power` when the true difference of the two rates is
    `difference` and the models disagree on a share `discordance` (at least |difference|) of the items; None
    when it never does."""
    if direction == "less":  # swap the models: `less` than offset is `greater` than -offset
        offset, difference = -offset, -difference
    difference = min(difference, 1.0)  # a difference of two rates
    if difference <= offset:
        return None
    if offset < -1:
        return 1  # any difference of two rates is above it
    if discordance <= 0:  # the models always agree: the difference is exactly 0, which passes iff 0 > offset
        return 1 if offset < 0 else None
    win = (discordance + difference) / (2 * discordance)  # the candidate's share of the disagreements
    from scipy.stats import binom

    def power_at(n: int) -> float:
        m = np.arange(1, n + 1)
        shifted = 0.5 + offset * n / (2 * m)  # the null rate of the candidate's wins, given m disagreements
        inside = (shifted >= 0) & (shifted <= 1)
        critical = np.where(inside, _critical(m, np.clip(shifted, 0, 1), alpha), np.where(shifted < 0, 0, m + 1))
        rejects = np.where(critical <= m, binom.sf(critical - 1, m, win), 0.0)
        none = float(binom.pmf(0, n, discordance)) * (offset < 0)  # no disagreement: difference 0 > offset
        return none + float(np.sum(binom.pmf(m, n, discordance) * rejects))

    z = _z(alpha) * math.sqrt(max(discordance - offset ** 2 / discordance, 0.0))
    z += _z(1 - power) * math.sqrt(max(discordance - difference ** 2, 0.0))
    return _smallest(power_at, _squared(z / (difference - offset)), power)


def normal_items(effect: float, sd: float, alpha: float, power: float) -> int:
    """n = ((z(1 - alpha) + z(power)) * sd / effect)^2: a one-sided test of a normal estimate with standard error
    sd / sqrt(n) at level `alpha` has power `power` against a true value `effect` beyond its null."""
    if sd <= 0:
        return 1
    return _whole(_squared((_z(alpha) + _z(1 - power)) * sd / effect))


def _critical(n, threshold, alpha: float):
    """The smallest count k with P(Binomial(n, threshold) >= k) <= alpha (the exact test rejects from k on;
    n + 1 where it never does)."""
    from scipy.stats import binom

    k = np.asarray(binom.isf(alpha, n, threshold), float) + 1
    k = np.where(np.isnan(k), np.asarray(n) + 1, k)
    # isf works in floating point: step to the exact boundary of the test's own p-value, sf(k - 1)
    k = np.where(binom.sf(k - 2, n, threshold) <= alpha, k - 1, k)
    k = np.where(binom.sf(k - 1, n, threshold) > alpha, k + 1, k)
    return k.astype(int) if k.ndim else int(k)


def _normal_guess(threshold: float, rate: float, alpha: float, power: float) -> float:
    spread = _z(alpha) * math.sqrt(threshold * (1 - threshold)) + _z(1 - power) * math.sqrt(rate * (1 - rate))
    return _squared(spread / (rate - threshold))


def _smallest(power_at: Callable[[int], float], guess: float, power: float) -> int:
    """The smallest n with power_at(n) >= power, by bisection (the exact power zigzags a little with n, so this
    is one n where it crosses); the normal-approximation `guess` itself beyond EXACT_UP_TO."""
    if not guess <= EXACT_UP_TO:  # NaN and infinity too
        return _whole(guess)
    hi = max(math.ceil(guess), 1)
    while power_at(hi) < power:
        if hi > EXACT_UP_TO:
            return hi
        hi *= 2
    lo = 0
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (lo, mid) if power_at(mid) >= power else (mid, hi)
    return hi


def _squared(x: float) -> float:
    return x * x  # infinity where `x ** 2` would raise OverflowError


def _whole(n: float) -> int:
    """A sample size as a whole number of items, from 1 to MOST_ITEMS (a vanishing margin gives infinity)."""
    return math.ceil(n) if 1 <= n < MOST_ITEMS else 1 if n < 1 else MOST_ITEMS


def _z(tail: float) -> float:
    """The standard normal quantile with `tail` above it."""
    from scipy.stats import norm

    return float(norm.isf(tail))


def _clip(rate: float) -> float:
    return min(max(rate, 0.0), 1.0)


# --- before an eval: `adapterci validate` ----------------------------------------------------------------------


@dataclass(frozen=True)
class RulePlan:
    """A rule of the config, the items its suite has now (None: its eval set has no readable item yet) and the
    items it needs, planned before any eval."""

    rule: str
    suite: str
    items: int | None
    sample_size: SampleSize | None

    @property
    def too_small(self) -> bool:
        needed = self.sample_size.needed if self.sample_size else None
        return self.items is not None and needed is not None and self.items < needed


def plan(cfg) -> list[RulePlan]:
    """Every gate rule with the items it needs, from the eval sets as they are (their sizes and label counts)
    and the assumptions of the module docstring: the planned effect, ASSUMED_DISCORDANCE between two models,
    a rate of 1/2 where a metric's spread is unknown."""
    counts = {suite.name: _counts(cfg, suite) for suite in cfg.eval.suites}
    models = gate_models(cfg.eval)
    out = []
    for text in cfg.gate.rules:
        rule = parse_rule(text, models)
        found = counts.get(rule.suite)
        size = _planned(rule, found, counts, cfg.gate) if found else None
        out.append(RulePlan(rule.text, rule.suite, found["n"] if found else None, size))
    return out


def _counts(cfg, suite) -> dict[str, int] | None:
    """A suite's item count (`n`) and, by label, its items (label key -> count; `harmful`/`benign` for safety);
    None when it has no readable item yet (`adapterci check` and `eval` report why)."""
    try:
        examples = load_suite(cfg, suite).examples
    except AdapterCIError:  # e.g. the path is a directory: not this estimate's to report
        return None
    if not examples:
        return None
    labels = [ex.meta.get("label") if suite.kind == "safety" else ex.completion for ex in examples]
    by_label = {label_key(str(label)): 0 for label in (suite.choices or [])}
    for label in labels:
        by_label[label_key(str(label))] = by_label.get(label_key(str(label)), 0) + 1
    return {"n": len(examples), **{f"label:{k}": v for k, v in by_label.items()}}


def _planned(rule: Rule, counts: dict[str, int], every: dict[str, dict[str, int] | None], gate) -> SampleSize | None:
    n, effect, alpha = counts["n"], planned_effect(rule), gate.significance
    compared = rule.kind == "model" and rule.model != "candidate"
    if rule.metric in DATA_METRICS:
        return None  # a property of the eval set: the same for every model, no test of a model decides it
    if rule.metric in BINARY_METRICS:
        rated = RATED.get(rule.metric, "")
        n_rated = counts.get(f"label:{rated}", 0) if rated else n
        if compared:
            return for_paired_rate(rule.offset, effect, "planned", rule.direction, ASSUMED_DISCORDANCE, alpha,
                                   n_rated, n, gate.min_items, rated, assumed=True)
        return for_rate(_threshold(rule, every), effect, "planned", rule.direction, alpha, n_rated, n,
                        gate.min_items, rated)
    shares = _label_shares(rule.metric, counts)
    if not shares:
        return None
    spread = ASSUMED_DISCORDANCE if compared else 0.25  # per item: a difference of two 0/1 outcomes, or one rate
    sd = math.sqrt(sum(spread / share for share in shares)) / len(shares)
    threshold = None if compared else _threshold(rule, every)
    edge = threshold is not None and ((rule.direction == "greater" and threshold >= 1) or
                                      (rule.direction == "less" and threshold <= 0))
    what = "two models disagreeing on half of" if compared else "a rate of 1/2 over"
    assumed = f"per-item standard deviation {sd:.3g}, assumed from {what} each label's items"
    return for_estimate(effect, "planned", sd, alpha, gate.min_items, edge, assumed)


def _label_shares(metric: str, counts: dict[str, int]) -> list[float]:
    """The shares of the suite's items a metric averages over: one label's for a per-label score, every label's
    for macro-F1 (empty when a label has no item: nothing to plan with)."""
    keys = [k for k in counts if k.startswith("label:")]
    if metric != "macro_f1":
        keys = [f"label:{metric.partition('_')[2]}"]
    shares = [counts.get(k, 0) / counts["n"] for k in keys]
    return shares if shares and all(shares) else []


def _threshold(rule: Rule, every: dict[str, dict[str, int] | None]) -> float:
    """A threshold rule's threshold before any eval: its number; `SUITE.majority_rate` + offset from the label
    counts; 1/2 (the widest spread) for another metric of the candidate, unknown until it is evaluated."""
    if rule.kind == "number":
        return rule.offset
    ref = every.get(rule.ref_suite or "")
    if rule.ref_metric == "majority_rate" and ref:
        return max((v for k, v in ref.items() if k.startswith("label:")), default=0) / ref["n"] + rule.offset
    return 0.5 + rule.offset
