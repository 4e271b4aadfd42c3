"""`EvalResults`: what `evaluate` produces and `gate` consumes (eval/results.json + eval/items.jsonl)."""

from __future__ import annotations

import json
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

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
        """Read results.json and the items.jsonl it names (beside it). UsageError if missing or unreadable."""
        path = Path(results_json)
        if not path.is_file():
            raise UsageError(f"no eval results at {path}: run `adapterci eval` first (or pass --results FILE)")
        try:
            data = read_json(path)
            items_path = path.parent / data.get("items_file", "items.jsonl")
            items = [json.loads(line) for line in items_path.read_text(encoding="utf-8").splitlines() if line.strip()]
            data["suites"], data["models"]
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise UsageError(f"cannot read eval results {path}: {exc}; re-run `adapterci eval`") from None
        seen: set[tuple[str, str]] = set()
        for item in items:
            key = (item.get("suite"), " ".join(str(item.get("prompt")).split()))
            if key in seen:
                raise UsageError(f"{items_path}: item {item.get('source')} of `{key[0]}` is repeated: each item may "
                                 "count once; re-run `adapterci eval`")
            seen.add(key)
        if data.get("format_version", FORMAT_VERSION) > FORMAT_VERSION:
            warnings.warn(f"{path} was written by a newer adapterci ({data.get('adapterci_version')}); unknown keys are ignored")
        return cls(data, items, path)
