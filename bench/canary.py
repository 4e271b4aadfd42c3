"""Canary analysis on simulated traffic: the always-valid test (what `adapterci canary` runs) against a
fixed-horizon z-test that peeks just as often (goal: false rollbacks <= canary.significance when canary = stable).

For each effect of the traffic simulator, CANARIES canaries are simulated for LOOKS hours (PER_HOUR requests an
hour, SHARE of them to the canary) and judged after every hour with the default `canary:` config (its four
rules, significance 0.05, min_requests 1000; max_age 7d is never reached), stopping at the first PROMOTE or
ROLLBACK, as the scheduled workflow would. Both methods see the same logs. Two more rule sets are run on equal
traffic: every rule without a margin (each one at its boundary: where peeking inflates false rollbacks most)
and every rule with a margin (so equality can be proven: how many requests a PROMOTE takes).

    .venv/bin/python bench/canary.py [--canaries 200] [--seed 0]
"""

from __future__ import annotations

import argparse
import resource
import time

import numpy as np

from adapterci.canary.analysis import evaluate
from adapterci.canary.config import CanaryConfig
from adapterci.canary.simulate import EFFECTS, simulate
from adapterci.eval.stats import clopper_pearson

LOOKS, PER_HOUR, SHARE = 24, 4000, 0.1
METHODS = {"always-valid": True, "fixed-horizon": False}
EQUAL_ONLY = {
    "no margins": ["feedback.positive_rate >= stable", "errors.rate <= stable", "latency.p95 <= stable",
                   "safety.flag_rate <= stable"],
    "all margins": ["feedback.positive_rate >= stable - 0.02", "errors.rate <= stable + 0.005",
                    "latency.p95 <= stable * 1.10", "safety.flag_rate <= stable + 0.005"],
}


def first_decision(cc: CanaryConfig, canary, stable, canary_hour, stable_hour, sequential: bool) -> tuple[str, int]:
    """(verdict, canary requests) at the first look that decides; CONTINUE and the final count if none does."""
    for look in range(1, LOOKS + 1):
        c = canary.select(slice(0, int(np.searchsorted(canary_hour, look))))
        s = stable.select(slice(0, int(np.searchsorted(stable_hour, look))))
        verdict, _, _ = evaluate(cc, c, s, age_seconds=None, sequential=sequential)
        if verdict != "CONTINUE":
            return verdict, len(c)
    return "CONTINUE", len(canary)


def run(cc: CanaryConfig, effects: list[str], canaries: int, rng: np.random.Generator) -> dict[str, dict[str, list[tuple[str, int]]]]:
    results: dict[str, dict[str, list[tuple[str, int]]]] = {e: {m: [] for m in METHODS} for e in effects}
    for effect in effects:
        for _ in range(canaries):
            requests = simulate(rng, LOOKS, PER_HOUR, SHARE, effect)
            hour = ((requests.timestamp - requests.timestamp.min()) // 3600).astype(int)
            is_canary = requests.version == "canary"
            arms = (requests.select(is_canary), requests.select(~is_canary), hour[is_canary], hour[~is_canary])
            for method, sequential in METHODS.items():
                results[effect][method].append(first_decision(cc, *arms, sequential=sequential))
    return results


def table(title: str, results: dict[str, dict[str, list[tuple[str, int]]]]) -> None:
    print(f"{title}\n{'effect':<22} {'method':<14} {'rollback':>9} {'promote':>8} {'undecided':>9} "
          f"{'median canary requests':>23}")
    for effect, by_method in results.items():
        for method, outcomes in by_method.items():
            verdicts = [v for v, _ in outcomes]
            decided = [n for v, n in outcomes if v != "CONTINUE"]
            share = {v: verdicts.count(v) / len(verdicts) for v in ("ROLLBACK", "PROMOTE", "CONTINUE")}
            median = f"{np.median(decided):.0f}" if decided else "-"
            print(f"{effect:<22} {method:<14} {share['ROLLBACK']:>9.1%} {share['PROMOTE']:>8.1%} "
                  f"{share['CONTINUE']:>9.1%} {median:>23}")
    print()


def false_rollbacks(label: str, equal: dict[str, list[tuple[str, int]]], alpha: float) -> None:
    rates = {}
    for method, outcomes in equal.items():
        k = sum(v == "ROLLBACK" for v, _ in outcomes)
        lo, hi = clopper_pearson(k, len(outcomes), 0.95)
        rates[method] = k / len(outcomes)
        goal = "meets" if rates[method] <= alpha else "MISSES"
        print(f"false-rollback rate ({label}), {method:<13}: {k}/{len(outcomes)} = {rates[method]:.1%} "
              f"(95% CI {lo:.1%}-{hi:.1%}); {goal} the goal <= {alpha:.0%}")
    if rates["always-valid"]:
        print(f"ratio fixed-horizon / always-valid false rollbacks ({label}): "
              f"{rates['fixed-horizon'] / rates['always-valid']:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--canaries", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    started, cpu = time.perf_counter(), resource.getrusage(resource.RUSAGE_SELF).ru_utime
    rng = np.random.default_rng(args.seed)
    alpha = CanaryConfig().significance
    print(f"{args.canaries} simulated canaries per row, {LOOKS} hourly looks, {PER_HOUR} requests/hour, "
          f"{SHARE:.0%} to the canary, significance {alpha}, min_requests {CanaryConfig().min_requests}\n")
    results = run(CanaryConfig(), list(EFFECTS), args.canaries, rng)
    table("default rules", results)
    extra = {label: run(CanaryConfig(rules=rules), ["equal"], args.canaries, rng) for label, rules in EQUAL_ONLY.items()}
    for label, found in extra.items():
        table(f"{label}: {'; '.join(EQUAL_ONLY[label])}", found)
    false_rollbacks("default rules", results["equal"], alpha)
    for label, found in extra.items():
        false_rollbacks(label, found["equal"], alpha)
    for effect in list(EFFECTS)[1:]:
        med = {m: np.median([n for v, n in o if v == "ROLLBACK"] or [np.nan]) for m, o in results[effect].items()}
        print(f"ratio of median canary requests to rollback, always-valid / fixed-horizon, {effect}: "
              f"{med['always-valid'] / med['fixed-horizon']:.2f}")
    used = resource.getrusage(resource.RUSAGE_SELF).ru_utime - cpu
    print(f"\nwall {time.perf_counter() - started:.0f} s, cpu {used:.0f} s")


if __name__ == "__main__":
    main()
