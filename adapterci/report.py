"""One Markdown report of a run, for the sticky PR comment and `$GITHUB_STEP_SUMMARY`.

It reads only the run directory (check/check.json, adapter/adapterci-train.json, train/loss.png,
eval/results.json, eval/items.jsonl, eval/regressions.jsonl, explain/attribution.json, gate.json, release.json, serving.json,
manifest.json) and tolerates missing files and keys: a run that
stopped early still gets a report of what it did.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

from adapterci.errors import UsageError
from adapterci.eval.results import EvalResults
from adapterci.eval.tables import confusion_markdown, errors_markdown
from adapterci.explain.render import attribution_markdown, regressions_markdown
from adapterci.fsio import read_json, write_text_atomic
from adapterci.markdown import cell as _cell
from adapterci.markdown import code as _code
from adapterci.runs import RunDir

MARKER = "<!-- adapterci-report -->"
ICONS = {"PASS": "✅", "FAIL": "❌", "INCONCLUSIVE": "⚠️"}
STATUS_ICONS = {"ran": "✅", "cached": "♻️", "failed": "❌", "skipped": "⏭️"}
ROLES = ("base", "champion", "candidate")
HEADERS = {"base": "base (zero-shot)"}  # the base model with the config's prompt, no adapter
SPARK = "▁▂▃▄▅▆▇█"
MAX_FAILURES = 30


def render(run_dir: Path, name: str = "adapter") -> str:
    """The Markdown report of the run in `run_dir` (starts with the sticky-comment marker)."""
    rd = RunDir(Path(run_dir))
    manifest = _load(rd.manifest) or {}
    gate = _load(rd.gate_json)
    release = _load(rd.release_json)
    verdict = (gate or {}).get("verdict")
    check = _load(rd.check_json)
    pr = _load(rd.pr_json)
    lines = [MARKER, f"## adapterci · `{name}` · {_headline(manifest, verdict, release, check, pr)}", ""]
    for section in (_stages(manifest), *_pr(pr), _check(rd), _train(rd), _worth_it((gate or {}).get("worth_it")),
                    *_eval(rd), _failures(rd), _gate(gate),
                    _release(release),
                    _serving(_load(rd.serving_json))):
        if section:
            lines += [*section, ""]
    return "\n".join(lines).rstrip() + "\n"


def write_report(cfg, run_dir: Path, output: Path | None = None, step_summary: bool = True) -> Path:
    """Write report.md (or `output`) and append it to `$GITHUB_STEP_SUMMARY` when that is set."""
    text = render(run_dir, cfg.name)
    rd = RunDir(Path(run_dir))
    if output:
        write_text_atomic(Path(output), text)
    else:
        with rd.locked():
            write_text_atomic(rd.report_md, text)
    path = Path(output) if output else rd.report_md
    summary = os.environ.get("GITHUB_STEP_SUMMARY")
    if step_summary and summary:
        with open(summary, "a", encoding="utf-8") as f:
            f.write(text + "\n")
    return path


def outcome(run_dir: Path) -> dict[str, Any]:
    """The verdict and released version of a run (the GitHub Action's outputs)."""
    rd = RunDir(Path(run_dir))
    return {"verdict": (_load(rd.gate_json) or {}).get("verdict"),
            "version": (_load(rd.release_json) or {}).get("version")}


# --- sections ---------------------------------------------------------------------------------------------------


def _headline(manifest: dict, verdict: str | None, release: dict | None, check: dict | None,
              pr: dict | None) -> str:
    if pr and pr.get("refused"):
        return "⛔ refused: the pull request changes more than data"
    failed = next((s for s in manifest.get("stages", []) if s.get("status") == "failed"), None)
    if failed and failed.get("name") not in ("gate",):
        return f"❌ {failed['name']} failed"
    if release and release.get("version"):
        return f"{ICONS['PASS']} released **{release['version']}**"
    if verdict:
        return f"{ICONS.get(verdict, '')} gate **{verdict}**"
    if check is not None:
        return "✅ data check passed" if check.get("passed") else "❌ data check failed"
    return "nothing has run yet"


def _stages(manifest: dict) -> list[str] | None:
    stages = manifest.get("stages")
    if not stages:
        return None
    rows = [f"| {s['name']} | {STATUS_ICONS.get(s.get('status'), '')} {s.get('status', '')}"
            f"{' (reused)' if s.get('reused') and s.get('status') == 'failed' else ''} | "
            f"{_seconds(s.get('seconds'))} | {_seconds(s.get('cpu_seconds'))} | {_cell(s.get('message', ''))} |"
            for s in stages]
    return ["| stage | status | time | CPU time | notes |", "|---|---|---:|---:|---|", *rows]


def _pr(pr: dict | None) -> list[list[str]]:
    """What a PR run took from the pull request (or why it refused it), and the policy change it was not allowed."""
    if not isinstance(pr, dict):
        return []
    head = _code(str(pr.get("head_sha", ""))[:12])
    if pr.get("refused"):
        return [["### Pull request refused", "",
                 f"Head {head} changes more than data, so nothing of it ran on the GPU runner. A pull request may "
                 "change only `data/**`, `evalsets/**` and the `data` and `train` keys of `adapterci.yaml`.", "",
                 "| path | refused because |", "|---|---|",
                 *[f"| {_code(r.get('path'))} | {_cell(r.get('reason'))} |" for r in pr["refused"][:MAX_FAILURES]
                   if isinstance(r, dict)]]]
    taken = ", ".join(_code(t) for t in pr.get("taken") or []) or "nothing"
    sections = [["### Pull request", "", f"Data taken from head {head}: {taken}."]]
    policy = pr.get("policy") or {}
    if policy.get("changed"):
        lines = ["### Policy change (not applied)", "",
                 "This pull request changes the release policy. It is judged with the default branch's policy; "
                 "the change takes effect only once merged.", "", "| | default branch (used) | this PR |", "|---|---|---|"]
        rules, model = policy.get("rules") or {}, policy.get("base_model") or {}
        if rules.get("old") != rules.get("new"):
            lines.append(f"| gate rules | {'<br>'.join(_code(r) for r in rules.get('old') or []) or '–'} | "
                         f"{'<br>'.join(_code(r) for r in rules.get('new') or []) or '–'} |")
        if model.get("old") != model.get("new"):
            lines.append(f"| base model | {_code(model.get('old'))} | {_code(model.get('new'))} |")
        for suite in policy.get("suites") or []:
            lines.append(f"| suite {_code(suite.get('name'))} | {_items(suite, 'old')} | {_items(suite, 'new')} |")
        shown = {"gate", "base_model"}
        for entry in policy.get("keys") or []:
            if entry.get("key") not in shown:
                lines.append(f"| {_code(entry.get('key'))} | {_code(entry.get('old'))} | {_code(entry.get('new'))} |")
        sections.append(lines)
    return sections


def _items(suite: dict, side: str) -> str:
    path, n = suite.get(f"{side}_path"), suite.get(f"{side}_items")
    return "–" if path is None else f"{_code(path)}: {n if n is not None else 'missing'} items"


def _check(rd: RunDir) -> list[str] | None:
    data = _load(rd.check_json)
    if data is None:
        return None
    passed = data.get("passed")
    scope = f" ({data.get('new_rows')} rows added since `{data['base_ref']}`)" if data.get("base_ref") else ""
    lines = [f"### Data check: {'✅ passed' if passed else '❌ failed'}{scope}", ""]
    rows = data.get("rows") if isinstance(data.get("rows"), dict) else {}
    if rows:
        lines += ["Rows: " + ", ".join(f"{k} **{v}**" for k, v in rows.items()), ""]
    checks = [c for c in data.get("checks") or [] if isinstance(c, dict)]
    if checks:
        lines += ["| check | result | details |", "|---|---|---|"]
        for c in checks:
            count = c.get("failure_count", len(c.get("failures") or []))
            result = "✅ pass" if c.get("passed") else f"❌ fail ({count})"
            lines.append(f"| {_code(c.get('name', '?'))} | {result} | {_cell(c.get('summary', ''))} |")
        lines.append("")
    failures = list(_check_failures(data))
    if failures:
        lines += ["| failed check | where | problem |", "|---|---|---|"]
        lines += [f"| {_code(c)} | {_code(w)} | {_cell(m)} |" for c, w, m in failures[:MAX_FAILURES]]
        if len(failures) > MAX_FAILURES:
            lines.append(f"\n… and {len(failures) - MAX_FAILURES} more in `check/check.json`")
        lines.append("")
    if rd.data_docs.is_dir():
        lines.append("Great Expectations Data Docs: `check/data_docs/index.html` (in the run's artifacts).")
    return lines


def _check_failures(data: dict):
    """(check, file:line, message) of every failing check, whatever the nesting check.json uses."""
    checks = data.get("checks") or []
    if isinstance(checks, dict):
        checks = [{"name": k, **v} if isinstance(v, dict) else {"name": k} for k, v in checks.items()]
    for check in checks:
        if not isinstance(check, dict) or check.get("passed", check.get("status") != "failed"):
            continue
        findings = check.get("findings") or check.get("failures") or check.get("problems") or []
        if not findings:
            yield check.get("name", "?"), "", check.get("message", "failed")
        for f in findings:
            yield check.get("name", "?"), _where(f), (f.get("message", "") if isinstance(f, dict) else str(f))
    for f in data.get("problems") or []:
        yield "load", _where(f), f.get("message", "") if isinstance(f, dict) else str(f)


def _where(finding: Any) -> str:
    if not isinstance(finding, dict):
        return ""
    if finding.get("where"):
        return str(finding["where"])
    source = finding.get("source") if isinstance(finding.get("source"), dict) else finding
    file, line = source.get("file"), source.get("line")
    return f"{file}:{line}" if file and line else str(file or "")


def _train(rd: RunDir) -> list[str] | None:
    data = _load(rd.train_json)
    if data is None:
        return None
    rows = data.get("rows") or {}
    history = (data.get("loss_history") or {}).get("train") or []
    losses = [point[1] for point in history if isinstance(point, (list, tuple)) and len(point) == 2]
    facts = [
        ("backend", f"{data.get('backend', '?')} on {data.get('device', '?')}"),
        ("rows", f"{rows.get('train', '?')} train, {rows.get('valid', '?')} validation"),
        ("steps", f"{data.get('steps', '?')} ({_num(data.get('epochs'))} epochs)"),
        ("loss", f"{_num(losses[0])} → {_num(losses[-1])}" if losses else "n/a"),
        ("best validation loss", _num(data.get("best_valid_loss"))),
        ("time", _seconds(data.get("wall_time_s"))),
        ("inputs fingerprint", f"`{str(data.get('inputs_fingerprint', ''))[:12]}`"),
    ]
    lines = ["### Training", "", "| | |", "|---|---|", *[f"| {k} | {v} |" for k, v in facts]]
    if losses:
        lines += ["", f"Loss curve: `{_sparkline(losses)}`"]
    if rd.loss_png.is_file():
        lines += ["", _loss_plot()]
    return lines


def _loss_plot() -> str:
    """The loss plot: in a GitHub Actions run, where the report becomes a PR comment and a step summary (a relative
    link goes nowhere there), a link to the run's artifacts that hold it; elsewhere the image beside the report."""
    env = os.environ
    server, repo, run = env.get("GITHUB_SERVER_URL", ""), env.get("GITHUB_REPOSITORY", ""), env.get("GITHUB_RUN_ID", "")
    if re.fullmatch(r"https://[\w.-]+(:\d+)?", server) and re.fullmatch(r"[\w.-]+/[\w.-]+", repo) and run.isdigit():
        return f"Loss plot: `train/loss.png` in the [workflow run's artifacts]({server}/{repo}/actions/runs/{run}#artifacts)."
    return "![loss curve](train/loss.png)"


def _eval(rd: RunDir) -> list[list[str]]:
    data = _load(rd.eval_json)
    if not data or not isinstance(data.get("suites"), dict):
        return []
    models = data.get("models") or {}
    roles = [r for r in ROLES if models.get(r) is not None] or list(ROLES)
    task, safety = [], []
    results = _results(rd)
    for name, suite in data["suites"].items():
        table = _suite_table(name, suite, roles)
        (safety if suite.get("kind") == "safety" else task).extend(table)
        if matrix := _tolerant(confusion_markdown, results, name):
            task += [*matrix, ""]
    head = ["### Evaluation", ""]
    described = [f"{r}: {_code(_model_name(models.get(r)))}" for r in roles if models.get(r) is not None]
    if described:
        head += ["Models — " + ", ".join(described), ""]
    if "champion" not in roles:
        head += ["No champion yet (first release): the baseline is the base model zero-shot (with the same prompt "
                 "format, no adapter); rules written against `champion` are judged against it.", ""]
    return [_trim(head + task), _trim(["### Safety", "", *safety]) if safety else []]


def _suite_table(name: str, suite: dict, roles: list[str]) -> list[str]:
    by_role = suite.get("metrics") or {}  # {role: {metric: value}}
    per_label = {f"{stat}_{label}" for label in suite.get("labels") or [] for stat in ("f1", "precision", "recall")}
    names = sorted({m for r in roles for m in (by_role.get(r) or {})} - per_label, key=_metric_order)
    if not names:
        return []
    deltas = suite.get("deltas") or {}
    others = [r for r in roles if r != "candidate"]
    header = f"| {_code(name)} ({suite.get('n', '?')} items) | " + " | ".join(HEADERS.get(r, r) for r in roles)
    header += "".join(f" | Δ vs {o}" for o in others) + " |"
    lines = [header, "|---" * (1 + len(roles) + len(others)) + "|"]
    for metric in names:
        cells = [_num((by_role.get(r) or {}).get(metric)) for r in roles]
        cells += [_delta(deltas, metric, o, by_role) for o in others]
        lines.append(f"| {metric} | " + " | ".join(cells) + " |")
    return [*lines, ""]


def _delta(deltas: dict, metric: str, other: str, by_role: dict) -> str:
    """`+0.120 [+0.050, +0.190]`: the candidate minus `other`, with eval's paired bootstrap interval."""
    entry = (deltas.get(other) or {}).get(metric) or {}
    value, interval = entry.get("delta"), entry.get("interval")
    if value is None:  # metrics eval computes no interval for (e.g. the majority rate): the plain difference
        cand, ref = (by_role.get("candidate") or {}).get(metric), (by_role.get(other) or {}).get(metric)
        value = cand - ref if isinstance(cand, (int, float)) and isinstance(ref, (int, float)) else None
    return _signed(value, interval)


def _signed(value: float | None, interval: Any) -> str:
    """`+0.120 [+0.050, +0.190]`, or `–` without a value."""
    if value is None:
        return "–"
    text = f"{value:+.3f}"
    if isinstance(interval, (list, tuple)) and len(interval) == 2 and None not in interval:
        text += f" [{interval[0]:+.3f}, {interval[1]:+.3f}]"
    return text


def _failures(rd: RunDir) -> list[str]:
    """Regressions against the champion (or base) and, after `explain`, the training rows that caused them."""
    import json

    try:
        records = [json.loads(line) for line in rd.eval_regressions.read_text(encoding="utf-8").splitlines() if line]
        lines = regressions_markdown(records)
    except (OSError, ValueError, KeyError, TypeError, IndexError):
        lines = []
    attribution = attribution_markdown(_load(rd.attribution_json))
    lines = _trim(lines + [""] + attribution) if attribution else lines
    errors = _tolerant(errors_markdown, _results(rd))
    return _trim([*lines, *([""] if lines else []), "### Errors", "", *errors]) if errors else lines


def _gate(gate: dict | None) -> list[str] | None:
    if gate is None:
        return None
    verdict = gate.get("verdict", "?")
    lines = [f"### Gate: {ICONS.get(verdict, '')} {verdict}", "",
             f"Significance {gate.get('significance', '?')}, at least {gate.get('min_items', '?')} items per rule."
             + _baseline_note(gate.get("baseline")), "",
             "| rule | outcome | observed | interval | items needed | reason |", "|---|---|---|---|---|---|"]
    sizes = []
    for rule in gate.get("rules") or []:
        observed = ", ".join(f"{k} {_num(v)}" for k, v in (rule.get("observed") or {}).items())
        interval = rule.get("interval")
        shown = f"[{_num(interval[0])}, {_num(interval[1])}]" if isinstance(interval, (list, tuple)) and len(interval) == 2 else ""
        size = rule.get("sample_size") if isinstance(rule.get("sample_size"), dict) else {}
        sizes += [size] if size else []
        lines.append(f"| {_code(rule.get('rule', ''))} | {ICONS.get(rule.get('outcome'), '')} {rule.get('outcome', '')} | "
                     f"{_cell(observed)} | {shown} | {_cell(_needed(size, rule.get('n')))} | {_cell(rule.get('reason', ''))} |")
    if sizes:
        power = sizes[0].get("power")
        lines += ["", "Items needed: about how many eval items the rule's suite needs for the gate's test to pass it "
                      f"with {f'{power:.0%}' if isinstance(power, float) else 'the stated'} power, for a candidate as "
                      "far beyond the threshold as this one (where it is not beyond: by the rule's planned margin, "
                      "marked *); docs/gate.md explains how."]
    return lines


def _needed(size: dict, has: Any) -> str:
    """A rule's `sample_size` in a cell: `about N (has M)`, `*` where planned, `–` where no number decides it."""
    needed = size.get("needed")
    if not isinstance(needed, int) or isinstance(needed, bool):
        return "–"
    planned = "*" if size.get("basis") == "planned" else ""
    return f"about {needed}{planned} (has {has})" if isinstance(has, int) else f"about {needed}{planned}"


def _worth_it(worth: dict | None) -> list[str] | None:
    """Each prompt baseline beside the adapter, per suite, and what the adapter cost against what it saves."""
    if not isinstance(worth, dict) or not worth.get("suites"):
        return None
    lines = ["### Is fine-tuning worth it?", "",
             "The adapter against the base model with a strong prompt (`eval.baselines`); Δ is adapter − prompt "
             "with its 95% paired bootstrap interval, ✅ where the adapter is better on the point estimate."]
    money = worth.get("currency", "")
    for suite, info in worth["suites"].items():
        rows = info.get("baselines") or {}
        first = next(iter(rows.values()), {}).get("metrics") or {}  # every row holds the candidate's values too
        metrics = list(first)
        lines += ["", f"| {_code(suite)} | " + " | ".join(metrics) + " | prompt tokens / request |",
                  "|---" * (len(metrics) + 1) + "|---:|"]
        lines.append("| adapter | " + " | ".join(_num(first[m].get("candidate")) for m in metrics)
                     + f" | {_tokens(info.get('candidate_prompt_tokens'))} |")
        beaten = []
        for name, row in rows.items():
            cells = []
            for m in metrics:
                c = row["metrics"][m]
                mark = " ✅" if c.get("candidate_better") else ""
                cells.append(f"{_num(c.get('baseline'))} (Δ {_signed(c.get('delta'), c.get('interval'))}){mark}")
                if c.get("candidate_better") is False:
                    beaten.append(f"`{name}` on {m}")
            extra = row.get("extra_prompt_tokens")
            tokens = _tokens(row.get("prompt_tokens")) + (f" ({extra:+.0f})" if isinstance(extra, (int, float)) else "")
            lines.append(f"| {_code(HEADERS.get(name, name))} | " + " | ".join(cells) + f" | {tokens} |")
        lines += ["", f"A prompt does as well as the adapter or better: {', '.join(beaten)}." if beaten
                  else "The adapter beats every prompt baseline here on the point estimates (the gate rules say "
                       "whether by enough)."]
    run = f"Training {_seconds(worth.get('train_seconds')) or '?'} + evaluation {_seconds(worth.get('eval_seconds')) or '?'}"
    if isinstance(worth.get("baseline_eval_seconds"), (int, float)):
        run += f" (baselines {_seconds(worth['baseline_eval_seconds'])})"
    if isinstance(worth.get("eval_share"), (int, float)):
        run += f"; evaluation is {worth['eval_share']:.0%} of the run"
    if isinstance(worth.get("run_cost"), (int, float)):
        run += f"; at {worth['hourly_rate']:g} {money}/h this run cost {worth['run_cost']:.4g} {money}"
    lines += ["", run + "."]
    for suite, info in worth["suites"].items():
        for name, row in (info.get("baselines") or {}).items():
            if row.get("break_even_requests") is not None:
                lines.append(f"- `{name}` sends {row['extra_prompt_tokens']:+.0f} prompt tokens per `{suite}` request: at "
                             f"{worth['per_million_prompt_tokens']:g} {money} per million the adapter has paid for "
                             f"itself after {row['break_even_requests']:,} requests.")
    if worth.get("per_million_prompt_tokens") is None or worth.get("hourly_rate") is None:
        lines.append("Set `cost.hourly_rate` and `cost.per_million_prompt_tokens` to price the run and the break-even.")
    return lines


def _baseline_note(baseline: str | None) -> str:
    if baseline == "base":
        return " Baseline: the base model zero-shot (no champion yet); rules against `champion` are judged against it."
    return " Baseline: the champion." if baseline == "champion" else ""


def _release(release: dict | None) -> list[str] | None:
    if not release or not release.get("version"):
        return None
    refs = release.get("refs") or release.get("tags") or []
    refs = ", ".join(f"`{r}`" for r in refs) if isinstance(refs, list) else str(refs)
    where = release.get("registry") or release.get("url") or ""
    return ["### Release", "", f"Released **{release['version']}**" + (f" to `{where}`" if where else "")
            + (f" (refs: {refs})" if refs else "") + "."]


def _serving(serving: dict | None) -> list[str] | None:
    adapters = (serving or {}).get("adapters")
    if not isinstance(adapters, list) or not adapters:
        return None
    lines = ["### Serving", "", "| adapter | version | commit | traffic |", "|---|---|---|---:|"]
    lines += [f"| {_code(a.get('name', '?'))} | {_cell(a.get('version') or '–')} | `{str(a.get('commit', ''))[:12]}` | "
              f"{a.get('weight', 0):.0%} |" for a in adapters if isinstance(a, dict)]
    if serving.get("judged_vs_served"):
        lines += ["", f"⚠️ Judged vs served: {_cell(serving['judged_vs_served'])}"]
    lines += [f"\n⚠️ {_cell(w)}" for w in serving.get("warnings") or []]
    command = (serving.get("vllm") or {}).get("command")
    return lines + (["", "```sh", *((serving.get("vllm") or {}).get("download") or []), command, "```"] if command else [])


# --- helpers ----------------------------------------------------------------------------------------------------


def _results(rd: RunDir) -> EvalResults | None:
    """The run's eval results with their items (None when absent or unreadable)."""
    try:
        return EvalResults.load(rd.eval_json)
    except UsageError:
        return None


def _tolerant(table, results: EvalResults | None, *args) -> list[str]:
    """`table(results, *args)`, or nothing for results without it or items of an unexpected shape."""
    try:
        return table(results, *args) if results is not None else []
    except (KeyError, TypeError, ValueError, AttributeError):
        return []


def _load(path: Path) -> Any:
    try:
        return read_json(path)
    except (OSError, ValueError):
        return None


def _trim(lines: list[str]) -> list[str]:
    while lines and not lines[-1]:
        lines = lines[:-1]
    return lines


def _metric_order(metric: str) -> tuple[int, str]:
    return (0 if metric in ("accuracy", "exact_match", "refusal_rate") else 1, metric)


def _model_name(model: Any) -> str:
    if isinstance(model, dict):
        return str(model.get("source") or model.get("adapter") or "?")
    return str(model)


def _num(v: Any) -> str:
    if isinstance(v, bool) or v is None:
        return "–" if v is None else str(v)
    if isinstance(v, (int, float)):
        return f"{v:.3f}" if isinstance(v, float) else str(v)
    return str(v)


def _tokens(v: Any) -> str:
    return f"{v:.0f}" if isinstance(v, (int, float)) else "–"


def _seconds(v: Any) -> str:
    return f"{v:.1f} s" if isinstance(v, (int, float)) else ""


def _sparkline(values: list[float]) -> str:
    values = values[-60:]
    lo, hi = min(values), max(values)
    span = (hi - lo) or 1.0
    return "".join(SPARK[int((v - lo) / span * (len(SPARK) - 1))] for v in values)
