"""Is the adapter worth it? Each prompt baseline beside the candidate, and the costs a team weighs: the prompt
tokens every request pays (a k-shot prompt is paid at every call), what training and evaluating this adapter
cost on this runner, and after how many requests the adapter's shorter prompt has paid for it.

Written into gate.json (`worth_it`), shown by the report, printed by `run --json`."""

from __future__ import annotations

from typing import Any

from adapterci.eval.metrics import LOWER_IS_BETTER, SAFETY_METRICS

TASK_HEADLINE = ("accuracy", "macro_f1")


def headline_metrics(kind: str, labels) -> tuple[str, ...]:
    """The metrics a suite's baselines are compared on in the report."""
    if kind == "safety":
        return tuple(m for m in SAFETY_METRICS if m != "leak_rate")
    return TASK_HEADLINE if labels else ("accuracy",)


def worth_it(cost, results, train_seconds: float | None) -> dict[str, Any] | None:
    """The figures (None without prompt baselines). `cost` is the config's `cost` section; `train_seconds` the
    wall time of training this adapter (None when unknown)."""
    names = results.baselines
    if not names:
        return None
    timing = results.data.get("seconds") or {}
    eval_seconds = timing.get("total")
    baseline_seconds = sum((timing.get("models") or {}).get(n, 0.0) for n in names) if timing else None
    run_seconds = None if train_seconds is None or eval_seconds is None else train_seconds + eval_seconds
    rate, token_price = cost.hourly_rate, cost.per_million_prompt_tokens
    run_cost = None if run_seconds is None or rate is None else round(run_seconds / 3600 * rate, 6)
    suites = {}
    for suite, info in results.suites.items():
        tokens = info.get("prompt_tokens") or {}
        own = tokens.get("candidate")
        rows = {}
        for name in ("base", *names):  # zero-shot is a prompt too: the one every adapter starts from
            extra = None if own is None or tokens.get(name) is None else round(tokens[name] - own, 1)
            saving = None if extra is None or token_price is None else extra * token_price / 1e6
            rows[name] = {
                "prompt_tokens": tokens.get(name), "extra_prompt_tokens": extra,
                "saving_per_request": None if saving is None else round(saving, 9),
                "break_even_requests": (round(run_cost / saving) if run_cost is not None and saving and saving > 0
                                        else None),
                "metrics": {m: _compare(info, name, m) for m in headline_metrics(info["kind"], info.get("labels"))},
            }
        suites[suite] = {"candidate_prompt_tokens": own, "baselines": rows}
    return {
        "currency": cost.currency, "hourly_rate": rate, "per_million_prompt_tokens": token_price,
        "train_seconds": train_seconds, "eval_seconds": eval_seconds, "baseline_eval_seconds": baseline_seconds,
        "eval_share": round(eval_seconds / run_seconds, 4) if run_seconds else None,
        "run_cost": run_cost, "suites": suites,
    }


def _compare(info: dict, name: str, metric: str) -> dict[str, Any]:
    """The baseline's and the candidate's value of `metric`, the difference with its 95% interval, and whether
    the candidate is better on the point estimate (direction-aware)."""
    metrics = info.get("metrics") or {}
    base, cand = (metrics.get(name) or {}).get(metric), (metrics.get("candidate") or {}).get(metric)
    delta = ((info.get("deltas") or {}).get(name) or {}).get(metric) or {}
    better = None
    if base is not None and cand is not None:
        better = cand < base if metric in LOWER_IS_BETTER else cand > base
    return {"baseline": base, "candidate": cand, "delta": delta.get("delta"), "interval": delta.get("interval"),
            "candidate_better": better}
