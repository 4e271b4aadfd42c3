"""The Markdown view of a canary decision (step summary of the canary workflow, `adapterci canary --summary`)."""

from __future__ import annotations

import os

ICONS = {"PROMOTE": "✅", "ROLLBACK": "❌", "CONTINUE": "⏳", "HOLDS": "✅", "VIOLATED": "❌", "UNDECIDED": "⏳"}


def markdown(decision) -> str:
    """Verdict, arms, one row per rule, the error-type table and the unknown versions."""
    c, s = decision.canary, decision.stable
    lines = [f"## adapterci canary · {ICONS[decision.verdict]} {decision.verdict}", "", decision.reason, "",
             "| | ref | version | commit | requests |", "|---|---|---|---|---:|"]
    for arm in (c, s):
        lines.append(f"| {arm.ref} | `{arm.ref}` | {arm.version or '-'} | `{(arm.commit or '-')[:12]}` | {arm.requests} |")
    if decision.rules:
        lines += ["", "### Rules", "", "| rule | outcome | canary | stable | reason |", "|---|---|---:|---:|---|"]
        for r in decision.rules:
            lines.append(f"| `{r.rule}` | {ICONS[r.outcome]} {r.outcome} | {_num(r.canary)} | {_num(r.stable)} | "
                         f"{r.reason.replace('|', '/')} |")
    if decision.errors:
        lines += ["", "### Error types", "", "| type | canary | stable | canary rate | stable rate | |",
                  "|---|---:|---:|---:|---:|---|"]
        for e in decision.errors:
            flag = ", ".join(text for text, on in (("🆕 new", e.new), ("📈 grew significantly", e.grew)) if on)
            lines.append(f"| `{e.type}` | {e.canary} | {e.stable} | {e.canary_rate:.2%} | {e.stable_rate:.2%} | {flag} |")
    if decision.unknown:
        shown = ", ".join(f"`{v}` ({n})" for v, n in sorted(decision.unknown.items(), key=lambda kv: -kv[1]))
        lines += ["", f"Rows for neither canary nor stable (not analyzed): {sum(decision.unknown.values())}: {shown}"]
    window = decision.window
    if window is not None and window.outside:
        lines += ["", f"Rows outside the canary's window ({window.as_dict()['from'] or 'release unknown'} to now, "
                      f"not analyzed): {window.before_release} before its release, {window.in_future} in the future",
                  *(f"- `{e}`" for e in window.examples)]
    if decision.acted:
        move = decision.acted
        lines += ["", f"Acted: `{move['ref']}` -> {move.get('version') or move['commit'][:12]}"
                      + (" (already there)" if move.get("no_op") else "")]
    return "\n".join(lines) + "\n"


def append_step_summary(text: str) -> bool:
    """Append to `$GITHUB_STEP_SUMMARY` when set; whether it was."""
    path = os.environ.get("GITHUB_STEP_SUMMARY")
    if not path:
        return False
    with open(path, "a", encoding="utf-8") as f:
        f.write(text + "\n")
    return True


def _num(value: float | None) -> str:
    return "-" if value is None else f"{value:.4g}"
