"""`EvalResults`: what `evaluate` produces and `gate` consumes (eval/results.json + eval/items.jsonl)."""

from __future__ import annotations

import json
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from adapterci.configbase import confine
from adapterci.errors import UsageError
from adapterci.eval.metrics import compute, outcome_arrays
from adapterci.fsio import read_json, write_json_atomic, write_jsonl_atomic

ROLES = ("base", "champion", "candidate")
FORMAT_VERSION = 1


@dataclass
class EvalResults:
    """Aggregate results (`data`, the content of results.json) and the per-item records of items.jsonl.

    `data["suites"][NAME]` holds `kind`, `mode`, `labels`, `n`, `metrics` (per model), `deltas` and `cache`;
    `data["models"][ROLE]` describes each model evaluated (`champion` is None when there is none); a prompt
    baseline is a model too, named after it, whose description carries its `baseline` settings."""

    data: dict[str, Any]
    items: list[dict[str, Any]] = field(default_factory=list)
    path: Path | None = None

    @property
    def suites(self) -> dict[str, dict[str, Any]]:
        return self.data["suites"]

    def has_model(self, role: str) -> bool:
        return self.data["models"].get(role) is not None

    @property
    def baselines(self) -> list[str]:
        """The prompt baselines evaluated, in config order."""
        return [role for role, spec in self.data["models"].items() if spec and spec.get("baseline")]

    @property
    def roles(self) -> list[str]:
        """Every model evaluated, in report order: base, the prompt baselines, champion, candidate."""
        return [r for r in ("base", *self.baselines, "champion", "candidate") if self.has_model(r)]

    def suite_items(self, suite: str) -> list[dict[str, Any]]:
        return [item for item in self.items if item["suite"] == suite]

    def arrays(self, suite: str, role: str) -> dict[str, np.ndarray]:
        """Per-item outcomes of `role` on `suite` (see `metrics.outcome_arrays`)."""
        info = self.suites[suite]
        return outcome_arrays(info["kind"], info.get("labels"), self.suite_items(suite), role)

    def metric(self, suite: str, role: str, metric: str) -> float | None:
        return compute(metric, self.arrays(suite, role), self.suites[suite].get("labels"))

    def write(self, results_json: Path, items_jsonl: Path) -> None:
        """Write both files atomically."""
        write_jsonl_atomic(items_jsonl, self.items)
        write_json_atomic(results_json, self.data)

    @classmethod
    def load(cls, results_json: str | Path) -> "EvalResults":
        """Read results.json and the items.jsonl it names (beside it). UsageError if missing or unreadable, if
        `items_file` leads outside the results' directory, or if a value the gate computes with has the wrong
        type (each names the file)."""
        path = Path(results_json)
        if not path.is_file():
            raise UsageError(f"no eval results at {path}: run `adapterci eval` first (or pass --results FILE)")
        rerun = "re-run `adapterci eval`"
        try:
            data = read_json(path)
        except (OSError, ValueError, RecursionError) as exc:
            raise UsageError(f"cannot read eval results {path}: {_reason(exc)}; {rerun}") from None
        if problem := _shape_problem(data):
            raise UsageError(f"{path}: {problem}; {rerun}")
        items_name = data.get("items_file", "items.jsonl")
        home = path.parent.resolve()
        if not isinstance(items_name, str) or Path(items_name).is_absolute() or \
                home not in (path.parent / items_name).resolve().parents:
            via = " (through a symlink)" if isinstance(items_name, str) and not Path(items_name).is_absolute() \
                and home in Path(os.path.abspath(path.parent / items_name)).parents else ""
            raise UsageError(f"{path}: `items_file` {items_name!r}{via} leads outside the results' directory {home}: "
                             f"the items must lie beside results.json; {rerun}")
        try:
            items_path = confine(path.parent / items_name, home, f"`items_file` {items_name!r}")
        except ValueError as exc:  # not found, or not a regular file
            raise UsageError(f"{path}: {exc}; {rerun}") from None
        try:
            items = [json.loads(line) for line in items_path.read_text(encoding="utf-8").splitlines() if line.strip()]
        except (OSError, ValueError, RecursionError) as exc:
            raise UsageError(f"cannot read eval results {items_path}: {_reason(exc)}; {rerun}") from None
        seen: set[tuple[str, str]] = set()
        for number, item in enumerate(items, 1):
            if not isinstance(item, dict) or not isinstance(item.get("suite"), str):
                raise UsageError(f"{items_path}: item {number} is not an object with a `suite`; {rerun}")
            key = (item.get("suite"), " ".join(str(item.get("prompt")).split()))
            if key in seen:
                raise UsageError(f"{items_path}: item {item.get('source')} of `{key[0]}` is repeated: each item may "
                                 f"count once; {rerun}")
            seen.add(key)
        for name, info in data["suites"].items():  # absent (older or hand-made results): what it counts
            if info.get("n") is None:
                info["n"] = sum(1 for item in items if item["suite"] == name)
        if data.get("format_version", FORMAT_VERSION) > FORMAT_VERSION:
            warnings.warn(f"{path} was written by a newer adapterci ({data.get('adapterci_version')}); unknown keys are ignored")
        return cls(data, items, path)


def _reason(exc: Exception) -> str:
    return "nested too deeply" if isinstance(exc, RecursionError) else str(exc)


def _shape_problem(data: Any) -> str | None:
    """What is wrong with the parts of results.json the gate and the report compute with, or None."""
    if not isinstance(data, dict):
        return "the top level must be an object"
    if not isinstance(data.get("models"), dict):
        return "`models` is missing or not an object"
    if not all(spec is None or isinstance(spec, dict) for spec in data["models"].values()):
        return "every entry of `models` must be an object or null"
    if not isinstance(data.get("suites"), dict):
        return "`suites` is missing or not an object"
    version = data.get("format_version", FORMAT_VERSION)
    if isinstance(version, bool) or not isinstance(version, int):
        return f"`format_version` is {version!r}, not a number"
    for name, info in data["suites"].items():
        if not isinstance(info, dict):
            return f"`suites.{name}` is not an object"
        n = info.get("n")
        if n is not None and (isinstance(n, bool) or not isinstance(n, int) or n < 0):
            return f"`suites.{name}.n` is {n!r}, not a count of items"
        if info.get("kind") not in ("task", "safety", "preference"):
            return f"`suites.{name}.kind` is {info.get('kind')!r}, not `task`, `safety` or `preference`"
        labels = info.get("labels")
        if labels is not None and not (isinstance(labels, list) and all(isinstance(x, str) for x in labels)):
            return f"`suites.{name}.labels` is {labels!r}, not a list of labels"
    return None
