"""`adapterci check`: validate the training data and the eval sets before anything trains on them.

`run_checks(cfg)` loads every data file once, runs the Great Expectations suite and the LLM-aware checks,
and writes `check/check.json`, `check/summary.md` (for PR comments) and the GX Data Docs into the run dir."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from adapterci.data.checks.baselines import check_baselines
from adapterci.data.checks.corpus import load_corpus
from adapterci.data.checks.duplicates import check_duplicates
from adapterci.data.checks.gx_suite import run_expectations
from adapterci.data.checks.label_balance import check_label_balance
from adapterci.data.checks.leakage import check_leakage
from adapterci.data.checks.near_duplicates import check_near_duplicates
from adapterci.data.checks.pii_check import check_pii
from adapterci.data.checks.preferences import check_preferences
from adapterci.data.checks.result import CheckResult, Failure
from adapterci.data.checks.schema import check_schema
from adapterci.data.checks.token_length import check_token_length
from adapterci.data.gitdiff import added_lines
from adapterci.fsio import staged_dir, write_json_atomic, write_text_atomic
from adapterci.modelio import load_tokenizer
from adapterci.runs import RunDir, run_dir_for

CHECKS = ("schema", "row_count", "token_length", "duplicates", "near_duplicates", "leakage", "pii", "label_balance",
          "preferences", "baselines")
MAX_LISTED = 1000  # failures listed per check in JSON (the count is always complete)
MAX_IN_SUMMARY = 20  # failures listed per check in the Markdown summary


@dataclass
class CheckReport:
    checks: list[CheckResult]
    base_ref: str | None = None
    rows: dict[str, int] = field(default_factory=dict)
    data_docs: Path | None = None
    seconds: float = 0.0
    timings: dict[str, float] = field(default_factory=dict)  # seconds per stage of the run
    new_rows: int | None = None  # rows added since `base_ref` (None: no base ref, every row is checked)

    @property
    def passed(self) -> bool:
        return all(c.passed for c in self.checks)

    def as_dict(self) -> dict[str, Any]:
        """The machine-readable result (`--json`): passed, and every check with its failures."""
        return {"passed": self.passed, "checks": [
            {"name": c.name, "passed": c.passed, "failures": _listed(c.failures)} for c in self.checks]}

    def as_record(self) -> dict[str, Any]:
        """What `check/check.json` holds: `as_dict` plus counts, summaries and figures."""
        record = self.as_dict()
        for entry, c in zip(record["checks"], self.checks):
            entry.update(failure_count=len(c.failures), summary=c.summary, details=c.details)
        record.update(base_ref=self.base_ref, new_rows=self.new_rows, rows=self.rows, seconds=round(self.seconds, 3), timings=self.timings,
                      data_docs=str(self.data_docs) if self.data_docs else None)
        return record

    def markdown(self) -> str:
        """A PR-comment-sized Markdown summary."""
        scope = f" ({self.new_rows} rows added since `{self.base_ref}`)" if self.base_ref else ""
        lines = [f"### adapterci check: {'passed' if self.passed else 'FAILED'}{scope}", "",
                 "| Check | Result | Details |", "|---|---|---|"]
        for c in self.checks:
            result = "pass" if c.passed else f"**fail** ({len(c.failures)})"
            lines.append(f"| `{c.name}` | {result} | {c.summary.replace('|', '/')} |")
        for c in self.checks:
            if c.failures:
                lines += ["", f"<details><summary><code>{c.name}</code>: {len(c.failures)} failure(s)</summary>", ""]
                lines += [f"- `{f.file}:{f.line}` {f.message}" for f in c.failures[:MAX_IN_SUMMARY]]
                if len(c.failures) > MAX_IN_SUMMARY:
                    lines.append(f"- ... and {len(c.failures) - MAX_IN_SUMMARY} more (see check.json)")
                lines += ["", "</details>"]
        lines += ["", f"Rows: {', '.join(f'{k} {v}' for k, v in self.rows.items())}."]
        return "\n".join(lines) + "\n"


def _listed(failures: list[Failure]) -> list[dict[str, Any]]:
    shown = [f.as_dict() for f in sorted(failures, key=lambda f: (f.file, f.line))[:MAX_LISTED]]
    if len(failures) > MAX_LISTED:
        shown.append({"file": "", "line": 0, "message": f"... and {len(failures) - MAX_LISTED} more failures"})
    return shown


def run_checks(cfg, base_ref: str | None = None, run_dir: str | Path | None = None) -> CheckReport:
    """Run every check on the configured data and eval sets; write the results into the run directory."""
    rd = run_dir_for(cfg, run_dir)
    with rd.locked():
        return _run_checks(cfg, base_ref, rd)


def _run_checks(cfg, base_ref: str | None, rd: RunDir) -> CheckReport:
    started = time.perf_counter()
    timings: dict[str, float] = {}

    def timed(name: str, fn, *args):
        t = time.perf_counter()
        out = fn(*args)
        timings[name] = round(time.perf_counter() - t, 3)
        return out

    # the tokenizer alone (a GGUF base's from the file's metadata, never its weights): a config error before any work
    tokenizer = timed("tokenizer", load_tokenizer, cfg, True)
    corpus = timed("load", load_corpus, cfg)
    if base_ref:
        corpus.new_rows = timed("base_ref", added_lines, corpus.files, cfg.base_dir, base_ref)
    with staged_dir(rd.data_docs) as docs:
        gx = timed("great_expectations", run_expectations, corpus, cfg, docs)
    results = {
        "schema": timed("schema", check_schema, corpus, cfg),
        "row_count": CheckResult("row_count", summary=f"{len(corpus.train.examples)} training rows "
                                                      f"(`checks.min_rows` {cfg.checks.min_rows})"),
        "token_length": timed("token_length", check_token_length, corpus, cfg, tokenizer),
        "duplicates": timed("duplicates", check_duplicates, corpus, cfg),
        "near_duplicates": timed("near_duplicates", check_near_duplicates, corpus, cfg),
        "leakage": timed("leakage", check_leakage, corpus, cfg),
        "pii": timed("pii", check_pii, corpus, cfg),
        "label_balance": timed("label_balance", check_label_balance, corpus, cfg, corpus.train.where(cfg.base_dir)),
        "preferences": timed("preferences", check_preferences, corpus, cfg),
        "baselines": timed("baselines", check_baselines, corpus, cfg),
    }
    for name, failures in gx.failures.items():
        results[name].failures.extend(failures)
    results["schema"].details["expectations"] = gx.expectations
    report = CheckReport([results[name] for name in CHECKS], base_ref,
                         {p.name: len(p.examples) for p in corpus.parts}, rd.data_docs / "index.html",
                         time.perf_counter() - started, timings,
                         None if corpus.new_rows is None else len(corpus.new_rows))
    write_json_atomic(rd.check_json, report.as_record())
    write_text_atomic(rd.check_md, report.markdown())
    return report

