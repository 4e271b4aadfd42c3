"""Production request logs in (JSONL, CSV or Parquet; one row per served request), mapped through
`canary.fields` onto the schema of docs/canary.md. Bad rows are reported as `file:line` (Parquet: `file:row N`),
all of them at once, and nothing is analyzed. A value quoted in such a message is cut to `QUOTED` characters:
a file that is not a request log is never shown back at length.

Numeric timestamps are Unix seconds; a number too large to be seconds of this era is read by its magnitude as
epoch milliseconds (>= 1e11), microseconds (>= 1e14) or nanoseconds (>= 1e17), as loggers in Java, JavaScript
or OpenTelemetry write them. (1e11 seconds is the year 5138; 1e11 milliseconds is 1973.)"""

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

from adapterci.configbase import confine
from adapterci.errors import UsageError

FORMATS = {".jsonl": "jsonl", ".json": "jsonl", ".ndjson": "jsonl", ".csv": "csv", ".parquet": "parquet"}
SHOWN_PROBLEMS = 20
QUOTED = 40  # characters of a bad value shown in a message
PARQUET_BATCH = 65_536  # rows of a Parquet file held at once
# numeric timestamps at or above each bound are read in the unit (seconds per unit)
EPOCH_UNITS = ((1e17, 1e-9), (1e14, 1e-6), (1e11, 1e-3))
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
    where: np.ndarray | None = None  # str: `file:line` of each row (None: not read from files)

    def __len__(self) -> int:
        return len(self.timestamp)

    def select(self, mask: np.ndarray) -> "Requests":
        return Requests(**{name: None if getattr(self, name) is None else getattr(self, name)[mask]
                           for name in self.__dataclass_fields__})

    @classmethod
    def from_rows(cls, rows: list[dict[str, Any]]) -> "Requests":
        """Columns from normalised rows (dicts with the schema's field names)."""
        def col(name: str, dtype, missing):
            return np.array([r.get(name, missing) for r in rows], dtype=dtype)

        return cls(col("timestamp", float, math.nan), col("version", object, ""), col("latency", float, math.nan),
                   col("errors", object, ""), col("feedback", float, math.nan), col("success", float, math.nan),
                   col("safety", float, math.nan), col("where", object, ""))


def expand(patterns: list[str], base: Path, root: Path | None = None) -> list[Path]:
    """Files named by paths or globs (relative to `base`); LogError for a pattern that matches nothing. With
    `root`, every file must lie inside `root` once symlinks are resolved and be a regular file (LogError naming
    it, never its content): globs from a config file, which a pull request may change, cannot read `../` or a
    symlink out of the repository."""
    found: list[Path] = []
    for pattern in patterns:
        full = pattern if Path(pattern).is_absolute() else str(base / pattern)
        matches = sorted(Path(p) for p in glob.glob(full, recursive=True) if root is not None or Path(p).is_file())
        if root is not None:
            matches = [_confined(m, pattern, root) for m in matches if not (m.is_dir() and not m.is_symlink())]
        if not matches:
            raise LogError(f"no request log matches {pattern!r} (relative to {base})")
        found += [m for m in matches if m not in found]
    return found


def _confined(path: Path, pattern: str, root: Path) -> Path:
    try:
        confine(path, root, f"request log {path} (from {pattern!r})")
    except ValueError as exc:
        raise LogError(str(exc)) from None
    return path  # named as matched in messages


def load_logs(paths: list[Path], fields) -> Requests:
    """Read and validate every row of these files; LogError listing each bad row by file and line."""
    rows, problems = [], []
    for path in paths:
        for where, raw in raw_rows(path):
            row, why = normalise(raw, fields)
            if why:
                problems.append(f"{where}: {why}")
            else:
                rows.append({**row, "where": where})
    if problems:
        more = f"\n  ... and {len(problems) - SHOWN_PROBLEMS} more" if len(problems) > SHOWN_PROBLEMS else ""
        raise LogError(f"{len(problems)} bad request log row(s):\n  "
                       + "\n  ".join(problems[:SHOWN_PROBLEMS]) + more)
    return Requests.from_rows(rows)


def raw_rows(path: Path) -> Iterator[tuple[str, Any]]:
    """(`file:line`, the parsed row or a ValueError saying why it is not one) of every row, streamed; LogError
    for a file that cannot be read at all."""
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
                try:
                    for row in reader:
                        yield f"{path}:{reader.line_num}", row
                except csv.Error as exc:  # e.g. a field over csv's size limit: the rest cannot be read reliably
                    raise LogError(f"{path}:{reader.line_num + 1}: not readable as CSV ({exc}); is it a request "
                                   "log?") from None
        else:
            import pyarrow.parquet as pq

            number = 0
            for batch in pq.ParquetFile(path).iter_batches(batch_size=PARQUET_BATCH):  # streamed, batch by batch
                for row in batch.to_pylist():
                    number += 1
                    yield f"{path}:row {number}", row
    except UnicodeDecodeError as exc:
        raise LogError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    except OSError as exc:
        raise LogError(f"{path}: cannot read ({exc})") from None
    except Exception as exc:  # noqa: BLE001 - pyarrow's errors for a damaged Parquet file
        if kind != "parquet":
            raise
        raise LogError(f"{path}: not a readable Parquet file ({exc})") from None


def normalise(raw: Any, fields) -> tuple[dict[str, Any], str | None]:
    """A raw row -> the schema's KPI fields (`_PARSERS`), or the reason it is bad."""
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
            raise ValueError(f"{_quote(value)} is neither ISO 8601 nor Unix seconds") from None
        return (stamp if stamp.tzinfo else stamp.replace(tzinfo=timezone.utc)).timestamp()
    if not math.isfinite(seconds):
        raise ValueError(f"{_quote(value)} is not a time")
    return epoch_seconds(seconds)


def epoch_seconds(number: float) -> float:
    """A numeric epoch time in seconds: milli-, micro- and nanoseconds recognised by magnitude (EPOCH_UNITS)."""
    for bound, unit in EPOCH_UNITS:
        if abs(number) >= bound:
            return number * unit
    return number


def _quote(value: Any) -> str:
    """`repr(value)`, cut to QUOTED characters: a message never shows a long stretch of a file back."""
    text = repr(value)
    return text if len(text) <= QUOTED else f"{text[:QUOTED]}… ({len(text)} characters)"


def _version(value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise ValueError("missing" if value in (None, "") else f"{_quote(value)} is not a version, commit or ref name")
    return value


def _latency(value: Any) -> float:
    if value is None or value == "":
        return math.nan
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{_quote(value)} is not a number") from None
    if isinstance(value, bool) or not math.isfinite(number) or number < 0:
        raise ValueError(f"{_quote(value)} is not a latency (a number >= 0)")
    return number


def _error(value: Any) -> str:
    if value is None or value is False or value == "":
        return ""
    if not isinstance(value, str):
        raise ValueError(f"{_quote(value)} is not an error type (a string; empty when the request succeeded)")
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
        raise ValueError(f"{_quote(value)} is not {what}")
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
