"""Deltas with 95% paired bootstrap intervals, and eval/summary.md (a Markdown table per suite)."""

from __future__ import annotations

from typing import Any

from adapterci.eval import stats
from adapterci.eval.metrics import DATA_METRICS, compute, metric_names
from adapterci.eval.tables import confusion_markdown

CONFIDENCE = 0.95


def deltas(results, suite: str) -> dict[str, dict[str, Any]]:
    """Keyed `base`, `champion` and each prompt baseline: per metric the candidate minus that model, with its 95%
    paired bootstrap interval."""
    info = results.suites[suite]
    labels = info.get("labels")
    cand = results.arrays(suite, "candidate")
    n = info["n"]
    out: dict[str, dict[str, Any]] = {}
    for other_role in results.roles:
        if other_role == "candidate":
            continue
        other = results.arrays(suite, other_role)
        rows = {}
        for metric in metric_names(info["kind"], labels):
            if metric in DATA_METRICS:
                continue
            a, b = compute(metric, cand, labels), compute(metric, other, labels)
            if a is None or b is None:
                rows[metric] = {"delta": None, "interval": None}
                continue
            samples = stats.paired_bootstrap(
                lambda idx: compute(metric, cand, labels, idx) - compute(metric, other, labels, idx), n)
            rows[metric] = {"delta": a - b, "interval": list(stats.percentile_interval(samples, CONFIDENCE))}
        out[other_role] = rows
    return out


def _num(value: float | None) -> str:
    return "–" if value is None else f"{value:.3f}"


def _delta(entry: dict[str, Any] | None) -> str:
    if not entry or entry["delta"] is None:
        return "–"
    lo, hi = entry["interval"]
    return f"{entry['delta']:+.3f} [{lo:+.3f}, {hi:+.3f}]"


def summary_markdown(results) -> str:
    """The eval report: models, then one table per suite (task, then preference, then safety): every model's value
    (prompt baselines between base and champion) and the candidate's deltas against base and champion; under a
    labelled task suite its confusion matrix."""
    models = results.data["models"]
    lines = ["## Evaluation", ""]
    roles = results.roles
    for role in ("base", *results.baselines, "champion", "candidate"):  # champion listed even when absent
        spec = models.get(role)
        what = f"`{spec['source']}`" + (f" + prompt baseline `{role}`" if spec and spec.get("baseline") else "") \
            if spec else "none (first release)"
        lines.append(f"- **{role}**: {what}")
    lines.append("")
    ordered = sorted(results.suites.items(), key=lambda kv: ("task", "preference", "safety").index(kv[1]["kind"]))
    for name, info in ordered:
        size = f"{info['n']} items" + (f": {info['n_harmful']} harmful, {info['n_benign']} benign" if info["kind"] == "safety" else "")
        title = {"safety": "Safety", "preference": "Preference"}.get(info["kind"], "Task")
        how = "pairs" if info["kind"] == "preference" else info["mode"]
        lines += [f"### {title}: `{name}` ({how}, {size})", ""]
        head = ["metric", *roles, "Δ vs base (95% CI)"] + (["Δ vs champion (95% CI)"] if "champion" in roles else [])
        lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for metric in metric_names(info["kind"], info.get("labels")):
            row = [metric] + [_num(info["metrics"][r][metric]) for r in roles]
            row.append(_delta(info["deltas"].get("base", {}).get(metric)))
            if "champion" in roles:
                row.append(_delta(info["deltas"].get("champion", {}).get(metric)))
            lines.append("| " + " | ".join(row) + " |")
        cache = ", ".join(f"{r} {info['cache'][r]}" for r in roles)
        lines += ["", f"Cache: {cache}.", ""]
        if matrix := confusion_markdown(results, name):
            lines += [*matrix, ""]
    return "\n".join(lines)
