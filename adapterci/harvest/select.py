"""Failed requests out of request logs, streamed row by row: only the failures are kept in memory.

A request failed when a safety flag was raised, it has an error type, the task failed, or the user gave negative
feedback (the canary log schema, `canary.fields`); the most severe of these is its `reason`. Its prompt and
response come from the log row itself or, with `payloads`, from payload files keyed by request id."""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from adapterci.canary.logs import SHOWN_PROBLEMS, LogError, normalise, raw_rows

SEVERITY = {"safety": 4, "error": 3, "task_failure": 2, "negative_feedback": 1}
"""Failure reasons, most severe first: a cluster's rank is its size times the severity of its reason."""
_KPIS = ("errors", "feedback", "success", "safety")
BACKGROUND = 5000  # prompts of requests that did not fail, sampled uniformly: what template text looks like


@dataclass(slots=True)
class Failure:
    """One failed request. `where` is its `file:line` in the logs."""

    where: str
    request_id: str
    version: str
    timestamp: float
    reason: str
    error: str = ""
    category: str = ""
    prompt: str = ""
    response: str = ""
    redacted: list[str] = field(default_factory=list)


@dataclass
class Selection:
    """The failures of some logs and what was read to find them."""

    failures: list[Failure]
    rows: int = 0
    found: int = 0  # failed requests in the logs (with --payloads, some may lack a payload)
    filtered: int = 0  # rows left out by --version / --since
    missing_payload: int = 0
    background: list[str] = field(default_factory=list)  # a sample of the prompts that did not fail


def reason_of(row: dict[str, Any]) -> str | None:
    """The most severe failure of a normalised row, or None when the request did not fail."""
    if row.get("safety") == 1.0:
        return "safety"
    if row.get("errors"):
        return "error"
    if row.get("success") == 0.0:
        return "task_failure"
    if row.get("feedback") == 0.0:
        return "negative_feedback"
    return None


def select(paths: list[Path], fields, version: str | None = None, since: float | None = None,
           payloads: list[Path] | None = None) -> Selection:
    """Every failed request of the logs at `paths` (of `version`, at or after `since`). LogError listing the bad
    rows (file:line, and the `canary.fields` key to map when a field is missing) and nothing selected."""
    if all(getattr(fields, kpi) is None for kpi in _KPIS):
        raise LogError("no failure signal: `canary.fields` maps none of errors, feedback, success and safety")
    text_from_logs = not payloads
    if text_from_logs and fields.prompt is None:
        raise LogError("`canary.fields.prompt` is null: harvest needs the prompt of each request in the logs "
                       "(name its field) or payload files (--payloads)")
    if payloads and fields.request_id is None:
        raise LogError("--payloads needs request ids: set `canary.fields.request_id` to your logs' name for them")
    out, problems = Selection([]), _Problems()
    responses, passed, sample = 0, 0, random.Random(0)
    for path in paths:
        for where, raw in raw_rows(path):
            out.rows += 1
            row, why = normalise(raw, fields)
            if why:
                problems.add(f"{where}: {why}")
                continue
            if (version is not None and row["version"] != version) or (since is not None and row["timestamp"] < since):
                out.filtered += 1
                continue
            reason = reason_of(row)
            if reason is None:
                if text_from_logs:  # reservoir sampling: every passed request equally likely to be kept
                    passed += 1
                    if passed <= BACKGROUND:
                        out.background.append(_text(raw, fields.prompt))
                    elif (slot := sample.randrange(passed)) < BACKGROUND:
                        out.background[slot] = _text(raw, fields.prompt)
                continue
            failure, why = _failure(raw, row, reason, where, fields, text_from_logs)
            if why:
                problems.add(f"{where}: {why}")
                continue
            responses += fields.response is not None and fields.response in raw
            out.failures.append(failure)
    if text_from_logs and out.failures and fields.response is not None and not responses:
        problems.add(f"no failed request has a `{fields.response}` field: set `canary.fields.response` to your "
                     "logs' name for the model's answer (or null when they have none)")
    problems.raise_any()
    out.found = len(out.failures)
    if payloads:
        out.missing_payload = _join_payloads(out.failures, payloads, fields)
    return out


def _failure(raw: dict, row: dict, reason: str, where: str, fields, text_from_logs: bool) -> tuple[Failure, str | None]:
    request_id = where
    if fields.request_id is not None:
        value = raw.get(fields.request_id)
        if value in (None, ""):
            return None, (f"no `{fields.request_id}` (request id): set `canary.fields.request_id` to your logs' "
                          "name for it, or null to identify requests by file:line")
        request_id = str(value)
    failure = Failure(where, request_id, row["version"], row["timestamp"], reason, row.get("errors") or "",
                      _text(raw, fields.category))
    if text_from_logs:
        prompt = _text(raw, fields.prompt)
        if not prompt.strip():
            return None, (f"no `{fields.prompt}` (prompt): set `canary.fields.prompt` to your logs' name for it, "
                          "or pass the payload files (--payloads)")
        failure.prompt, failure.response = prompt, _text(raw, fields.response)
    return failure, None


def _text(raw: dict, key: str | None) -> str:
    value = raw.get(key) if key is not None else None
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    return value if isinstance(value, str) else str(value)


def _join_payloads(failures: list[Failure], payloads: list[Path], fields) -> int:
    """Fill in prompt and response from payload files (rows with the request id, prompt and response fields),
    streamed, keeping only the rows of failed requests; failures without a payload are dropped (counted)."""
    wanted = {f.request_id: f for f in failures}
    found: set[str] = set()
    problems = _Problems()
    for path in payloads:
        for where, raw in raw_rows(path):
            if not isinstance(raw, dict):
                problems.add(f"{where}: {raw if isinstance(raw, ValueError) else 'a row must be a JSON object'}")
                continue
            failure = wanted.get(str(raw.get(fields.request_id, "")))
            if failure is None:
                continue
            prompt = _text(raw, fields.prompt)
            if not prompt.strip():
                problems.add(f"{where}: no `{fields.prompt}` (prompt): set `canary.fields.prompt` to the payload "
                             "files' name for it")
                continue
            failure.prompt, failure.response = prompt, _text(raw, fields.response)
            found.add(failure.request_id)
    problems.raise_any()
    missing = len(wanted) - len(found)
    failures[:] = [f for f in failures if f.request_id in found]
    return missing


class _Problems:
    """Bad rows, all counted, the first SHOWN_PROBLEMS kept (a log of a million bad rows stays small)."""

    def __init__(self) -> None:
        self.shown: list[str] = []
        self.count = 0

    def add(self, message: str) -> None:
        self.count += 1
        if len(self.shown) < SHOWN_PROBLEMS:
            self.shown.append(message)

    def raise_any(self) -> None:
        if self.count:
            more = f"\n  ... and {self.count - len(self.shown)} more" if self.count > len(self.shown) else ""
            raise LogError(f"{self.count} bad request log row(s):\n  " + "\n  ".join(self.shown) + more)
