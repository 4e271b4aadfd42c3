"""Markdown of the failure analysis: regressions by category, label and failure type, the top regressions with
every model's answer side by side, and the training rows ranked by their influence on them. The report and
`adapterci explain` print the same text."""

from __future__ import annotations

from collections import Counter
from typing import Any

from adapterci.eval.diff import FAILURES, counts
from adapterci.markdown import cell as _cell
from adapterci.markdown import code as _code
from adapterci.markdown import short as _short
from adapterci.markdown import tail as _tail

TOP = 10
UNSCOPED = ("**Weak evidence:** every training row was ranked, and over all rows the ranking can be no better than "
            "chance (in one flipped-label run, 4 of the top 10 were flipped when 40% of the rows were). Rank only the "
            "rows a change added with `--base-ref REF` (e.g. `--base-ref origin/main`): see docs/explain.md.")
ROLES = ("base", "champion", "candidate")


def regressions_markdown(records: list[dict[str, Any]], top: int = TOP) -> list[str]:
    """The regressions section (empty when the candidate neither regressed nor fixed anything)."""
    if not records:
        return []
    regressions = [r for r in records if r["change"] == "regression"]
    reference = records[0]["reference"]
    lines = [f"### Regressions: {len(regressions)} item(s) the {reference} got right and the candidate gets wrong "
             f"({len(records) - len(regressions)} fixed)", ""]
    lines += _by_category(records) + [""]
    lines += ["| suite | label | regressions | fixes |", "|---|---|---:|---:|"]
    lines += [f"| {s} | {_cell(v)} | {reg} | {fix} |" for s, v, reg, fix in counts(records, "label")]
    if regressions:
        shown = regressions[:top]
        roles = [r for r in ROLES if r in shown[0]["answers"]]
        lines += ["", f"<details><summary>Top {len(shown)} regression(s), answers side by side</summary>", "",
                  f"| item | category / label | failure | prompt | expected | {' | '.join(roles)} |",
                  "|---|---|---|---|---|" + "---|" * len(roles)]
        for r in shown:
            answers = " | ".join(_code(_short(r['answers'].get(role), 40)) for role in roles)
            lines.append(f"| {_code(r['source'])} | {_cell(r.get('category') or '–')} / {_cell(r.get('label') or '–')} | "
                         f"{FAILURES.get(r['failure'], r['failure'])} | {_cell(_tail(r['prompt'], 80))} | "
                         f"{_cell(_short(r.get('expected'), 30) or '–')} | {answers} |")
        lines += ["", "</details>"]
    return lines


def _by_category(records: list[dict[str, Any]]) -> list[str]:
    """Regressions by suite and category (rows) and failure type (columns), with the fixes of each row."""
    table: Counter = Counter()
    for r in records:
        row = (r["suite"], r.get("category") or "–")
        table[(row, r["failure"] if r["change"] == "regression" else "fix")] += 1
    kinds = [k for k in FAILURES if any(kind == k for _, kind in table)]
    rows = sorted({row for row, _ in table})
    lines = ["| suite | category | " + " | ".join(FAILURES[k] for k in kinds) + " | fixes |",
             "|---|---|" + "---:|" * (len(kinds) + 1)]
    for row in rows:
        lines.append(f"| {row[0]} | {_cell(row[1])} | " + " | ".join(str(table[(row, k)]) for k in kinds)
                     + f" | {table[(row, 'fix')]} |")
    return lines


def attribution_markdown(data: dict[str, Any] | None) -> list[str]:
    """The attribution section of `explain/attribution.json`: per group of regressions, the ranked rows."""
    if not data:
        return []
    method = data.get("method", "?")
    how = {"gradient": "LoRA gradient features (per-example gradients, random projection to "
                       f"{data.get('dim', '?')} dimensions, cosine similarity; LESS)",
           "text": "text similarity (TF-IDF cosine of row and item text)"}.get(method, method)
    lines = ["### Which training rows caused it", "",
             f"Rows ranked by **{how}**; scope: {data.get('scope', '?')} ({data.get('rows_scored', '?')} rows scored"
             f" in {data.get('seconds', 0):.1f} s)."]
    if data.get("fallback_reason"):
        lines.append(f"Text similarity was used because {data['fallback_reason']}.")
    groups = data.get("groups") or []
    if groups and not any(row.get("added") for group in groups for row in group.get("rows") or []):
        lines.append(UNSCOPED)
    for group in groups:
        failure = FAILURES.get(group.get("failure"), group.get("failure"))
        label = f", label `{group['label']}`" if group.get("label") else ""
        lines += ["", f"**{group.get('suite')}: {failure}{label}** ({len(group.get('items') or [])} of "
                      f"{group.get('regressions', '?')} regressed item(s) attributed)", "",
                  "| rank | row | added | score | prompt | answer |", "|---:|---|---|---:|---|---|"]
        for i, row in enumerate(group.get("rows") or [], 1):
            lines.append(f"| {i} | {_code(row['source'])} | {'yes' if row.get('added') else ''} | {row['score']:+.3f} | "
                         f"{_cell(_tail(row.get('prompt', ''), 80))} | {_code(_short(row.get('answer'), 40))} |")
    return lines
