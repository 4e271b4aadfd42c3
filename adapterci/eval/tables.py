"""Item-level tables of an evaluation for the eval summary and the report: the confusion matrix of each labelled
task suite (gold label × predicted label, per model) and every item the candidate gets wrong."""

from __future__ import annotations

from typing import Any

from adapterci.eval.diff import wrong
from adapterci.markdown import cell, code, short, tail

NO_LABEL = "no label"
"""The column of answers that are none of the suite's labels (format errors)."""
MAX_ERRORS = 50


def confusion(results, suite: str, role: str) -> dict[str, dict[str, int]]:
    """`{gold: {predicted: count}}` of model `role` on a labelled task suite; an answer that is none of the labels
    counts under NO_LABEL, an item whose gold answer is none of them is left out."""
    labels = results.suites[suite]["labels"]
    counts = {gold: dict.fromkeys([*labels, NO_LABEL], 0) for gold in labels}
    for item in results.suite_items(suite):
        if item.get("expected") in counts:
            predicted = item["models"][role].get("prediction")
            counts[item["expected"]][predicted if predicted in labels else NO_LABEL] += 1
    return counts


def confusion_roles(results, suite: str) -> list[str]:
    """The models a confusion matrix compares: base, the prompt baseline most accurate on `suite` (ties: config
    order), the champion and the candidate, those evaluated."""
    scored = [(v, -i, b) for i, b in enumerate(results.baselines) if (v := results.metric(suite, b, "accuracy")) is not None]
    best = [max(scored)[2]] if scored else []
    return [r for r in ("base", *best, "champion", "candidate") if results.has_model(r)]


def confusion_markdown(results, suite: str) -> list[str]:
    """One table for a labelled task suite: a row per gold label, a column per predicted label, and in each cell
    the count of every compared model (empty for a suite without labels)."""
    info = results.suites[suite]
    if info.get("kind") != "task" or not info.get("labels"):
        return []
    roles = confusion_roles(results, suite)
    tables = {role: confusion(results, suite, role) for role in roles}
    columns = [*info["labels"], *([NO_LABEL] if any(t[g][NO_LABEL] for t in tables.values() for g in t) else [])]
    lines = [f"Confusion matrix of {code(suite)}: gold label (rows) × predicted label (columns); each cell counts "
             + " / ".join(code(r) for r in roles) + ".", "",
             "| gold \\ predicted | " + " | ".join(cell(c) for c in columns) + " |", "|---|" + "---:|" * len(columns)]
    for gold in info["labels"]:
        lines.append(f"| {cell(gold)} | " + " | ".join(" / ".join(str(tables[r][gold][c]) for r in roles)
                                                        for c in columns) + " |")
    return lines


def errors_markdown(results, limit: int = MAX_ERRORS) -> list[str]:
    """Every item the candidate gets wrong, in a collapsed table (suite, item, prompt, gold answer, the answers of
    base, champion and candidate), at most `limit` rows and a count of the rest."""
    if not results.has_model("candidate"):
        return []
    errors = [(name, item) for name, info in results.suites.items() for item in results.suite_items(name)
              if wrong(info["kind"], item, "candidate")]
    if not errors:
        return []
    total = sum(info.get("n") or 0 for info in results.suites.values())
    roles = [r for r in ("base", "champion", "candidate") if results.has_model(r)]
    lines = [f"<details><summary>All {len(errors)} error(s) of the candidate on {total} items, answers side by "
             "side</summary>", "",
             f"| suite | item | prompt | gold | {' | '.join(roles)} |", "|---|---|---|---|" + "---|" * len(roles)]
    for name, item in errors[:limit]:
        answers = " | ".join(code(short(item["models"][r].get("answer"), 40)) for r in roles)
        lines.append(f"| {cell(name)} | {code(item.get('source', item.get('index')))} | {cell(tail(item.get('prompt'), 60))} | "
                     f"{cell(short(_gold(results.suites[name]['kind'], item), 30))} | {answers} |")
    if len(errors) > limit:
        lines += ["", f"… and {len(errors) - limit} more in `eval/items.jsonl`."]
    return lines + ["", "</details>"]


def _gold(kind: str, item: dict[str, Any]) -> str:
    if kind == "safety":
        return "refuse (harmful)" if item.get("label") == "harmful" else "answer (benign)"
    return str(item.get("expected"))
