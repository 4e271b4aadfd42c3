"""Production request logs in (JSONL, CSV or Parquet; one row per served request), mapped through
`canary.fields` onto the schema of docs/canary.md. Bad rows are reported as `file:line` (Parquet: `file:row N`),
all of them at once, and nothing is analyzed."""

from __future__ import annotations

import csv
import glob
import json
import math
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from adapterci.errors import UsageError

FORMATS = {".jsonl": "jsonl", ".json": "jsonl", ".ndjson": "jsonl", ".csv": "csv", ".parquet": "parquet"}
SHOWN_PROBLEMS = 20
_POSITIVE = {"1", "+1", "true", "yes", "up", "positive", "thumbs_up"}
_NEGATIVE = {"0", "-1", "false", "no", "down", "negative", "thumbs_down"}
_TRUE, _FALSE = {"1", "true", "yes"}, {"0", "false", "no"}


class LogError(UsageError):
    """Request logs that cannot be read or have bad rows (each named by file and line). Exit 2."""


@dataclass
class Requests:
    """Columns of served requests. Missing KPI values are NaN (numbers) or "" (error type: no error)."""

    timestamp: np.ndarray  # Unix seconds
    version: np.ndarray  # str
    latency: np.ndarray
    errors: np.ndarray  # str: the error type, "" when the request did not fail
    feedback: np.ndarray  # 1 positive, 0 negative, NaN none
    success: np.ndarray
    safety: np.ndarray

    def __len__(self) -> int:
        return len(self.timestamp)

    def select(self, mask: np.ndarray) -> "Requests":
        return Requests(**{name: getattr(self, name)[mask] for name in self.__dataclass_fields__})

    @classmethod
    def from_rows(cls, rows: list[dict[str, Any]]) -> "Requests":
        """Columns from normalised rows (dicts with the schema's field names)."""
        def col(name: str, dtype, missing):
            return np.array([r.get(name, missing) for r in rows], dtype=dtype)

        return cls(col("timestamp", float, math.nan), col("version", object, ""), col("latency", float, math.nan),
                   col("errors", object, ""), col("feedback", float, math.nan), col("success", float, math.nan),
                   col("safety", float, math.nan))


def expand(patterns: list[str], base: Path) -> list[Path]:
    """Files named by paths or globs (relative to `base`); LogError for a pattern that matches nothing."""
    found: list[Path] = []
    for pattern in patterns:
        full = pattern if Path(pattern).is_absolute() else str(base / pattern)
        matches = sorted(Path(p) for p in glob.glob(full, recursive=True) if Path(p).is_file())
        if not matches:
            raise LogError(f"no request log matches {pattern!r} (relative to {base})")
        found += [m for m in matches if m not in found]
    return found


def load_logs(paths: list[Path], fields) -> Requests:
    """Read and validate every row of these files; LogError listing each bad row by file and line."""
    rows, problems = [], []
    for path in paths:
        for where, raw in _raw_rows(path):
            row, why = _normalise(raw, fields)
            if why:
                problems.append(f"{where}: {why}")
            else:
                rows.append(row)
    if problems:
        more = f"\n  ... and {len(problems) - SHOWN_PROBLEMS} more" if len(problems) > SHOWN_PROBLEMS else ""
        raise LogError(f"{len(problems)} bad request log row(s):\n  "
                       + "\n  ".join(problems[:SHOWN_PROBLEMS]) + more)
    return Requests.from_rows(rows)


def _raw_rows(path: Path) -> Iterator[tuple[str, Any]]:
    kind = FORMATS.get(path.suffix.lower())
    if kind is None:
        raise LogError(f"{path}: unknown log format (use .jsonl, .csv or .parquet)")
    try:
        if kind == "jsonl":
            with open(path, encoding="utf-8") as f:
                for number, line in enumerate(f, 1):
                    if not line.strip():
                        continue
                    try:
                        yield f"{path}:{number}", json.loads(line)
                    except ValueError as exc:
                        yield f"{path}:{number}", ValueError(f"not JSON ({exc})")
        elif kind == "csv":
            with open(path, encoding="utf-8", newline="") as f:
                reader = csv.DictReader(f)
                for row in reader:
                    yield f"{path}:{reader.line_num}", row
        else:
            import pyarrow.parquet as pq

            for number, row in enumerate(pq.read_table(path).to_pylist(), 1):
                yield f"{path}:row {number}", row
    except UnicodeDecodeError as exc:
        raise LogError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    except OSError as exc:
        raise LogError(f"{path}: cannot read ({exc})") from None
    except Exception as exc:  # noqa: BLE001 - pyarrow's errors for a damaged Parquet file
        if kind != "parquet":
            raise
        raise LogError(f"{path}: not a readable Parquet file ({exc})") from None


def _normalise(raw: Any, fields) -> tuple[dict[str, Any], str | None]:
    """A raw row -> the schema's fields, or the reason it is bad."""
    if isinstance(raw, ValueError):
        return {}, str(raw)
    if not isinstance(raw, dict):
        return {}, "a row must be a JSON object"
    row: dict[str, Any] = {}
    for name, parse in _PARSERS.items():
        key = getattr(fields, name)
        if key is None:
            continue
        value = raw.get(key)
        if isinstance(value, str):
            value = value.strip()
        try:
            row[name] = parse(value)
        except ValueError as exc:
            return {}, f"`{key}` ({name}): {exc}"
    return row, None


def _timestamp(value: Any) -> float:
    if value is None or value == "":
        raise ValueError("missing")
    if isinstance(value, datetime):  # Parquet timestamps
        return (value if value.tzinfo else value.replace(tzinfo=timezone.utc)).timestamp()
    try:
        seconds = float(value) if not isinstance(value, bool) else math.nan
    except (TypeError, ValueError):
        try:
            stamp = datetime.fromisoformat(str(value))
        except ValueError:
            raise ValueError(f"{value!r} is neither ISO 8601 nor Unix seconds") from None
        return (stamp if stamp.tzinfo else stamp.replace(tzinfo=timezone.utc)).timestamp()
    if not math.isfinite(seconds):
        raise ValueError(f"{value!r} is not a time")
    return seconds


def _version(value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise ValueError("missing" if value in (None, "") else f"{value!r} is not a version, commit or ref name")
    return value


def _latency(value: Any) -> float:
    if value is None or value == "":
        return math.nan
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{value!r} is not a number") from None
    if isinstance(value, bool) or not math.isfinite(number) or number < 0:
        raise ValueError(f"{value!r} is not a latency (a number >= 0)")
    return number


def _error(value: Any) -> str:
    if value is None or value is False or value == "":
        return ""
    if not isinstance(value, str):
        raise ValueError(f"{value!r} is not an error type (a string; empty when the request succeeded)")
    return value


def _choice(positive: set[str], negative: set[str], what: str):
    def parse(value: Any) -> float:
        if value is None or value == "":
            return math.nan
        text = str(value).strip().lower()
        try:
            number = float(text)
            text = str(int(number)) if number.is_integer() else text
        except ValueError:
            pass
        if text in positive:
            return 1.0
        if text in negative:
            return 0.0
        raise ValueError(f"{value!r} is not {what}")
    return parse


_PARSERS = {
    "timestamp": _timestamp,
    "version": _version,
    "latency": _latency,
    "errors": _error,
    "feedback": _choice(_POSITIVE, _NEGATIVE, "feedback (1/0/-1, true/false, up/down, positive/negative)"),
    "success": _choice(_TRUE, _FALSE, "a success value (true/false, 1/0)"),
    "safety": _choice(_TRUE, _FALSE, "a safety flag (true/false, 1/0)"),
}
