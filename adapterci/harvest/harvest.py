"""`adapterci harvest`: request logs -> failed requests -> redacted, clustered, ranked labeling queue."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from adapterci import __version__
from adapterci.canary.config import duration_seconds
from adapterci.canary.logs import LogError, expand
from adapterci.errors import UsageError
from adapterci.fsio import write_json_atomic
from adapterci.harvest.cluster import Cluster, cluster
from adapterci.harvest.queue import items_of, write_queue
from adapterci.harvest.redact import redact
from adapterci.harvest.select import select


@dataclass
class Harvest:
    """What a harvest read, kept and wrote."""

    rows: int
    filtered: int
    failures: int
    dropped_secrets: int
    missing_payload: int
    clusters: list[Cluster]
    items: list[dict[str, Any]]
    files: dict[str, str] = field(default_factory=dict)
    settings: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        queued: dict[str, int] = {}
        for item in self.items:
            queued[item["cluster"]] = queued.get(item["cluster"], 0) + 1
        return {"adapterci_version": __version__, "rows": self.rows, "filtered_out": self.filtered,
                "failures": self.failures, "dropped_with_secrets": self.dropped_secrets,
                "missing_payload": self.missing_payload, "queued": len(self.items),
                "clusters": [{**c.as_dict(rank), "queued": queued.get(c.id, 0)}
                             for rank, c in enumerate(self.clusters, 1)],
                "files": self.files, **self.settings}


def harvest(cfg, logs: list[str] | None = None, version: str | None = None, since: str | None = None,
            limit: int | None = None, payloads: list[str] | None = None, out: str | None = None,
            now: float | None = None) -> Harvest:
    """Select the failed requests of the logs (`logs`, else `canary.logs`), redact them, cluster and rank them,
    and write the labeling queue into `out` (default `harvest.queue`). LogError (exit 2) for bad log rows,
    UsageError for bad options; nothing is written then."""
    if limit is not None and limit < 1:
        raise UsageError("--limit must be at least 1")
    paths = _log_paths(cfg, logs)
    since_s = parse_since(since, time.time() if now is None else now)
    payload_paths = expand(list(payloads), Path.cwd()) if payloads else None
    selection = select(paths, cfg.canary.fields, version, since_s, payload_paths)
    failures, dropped = redact(selection.failures)
    clusters = cluster(failures, cfg.checks.near_duplicate_threshold, selection.background)
    items = items_of(clusters, limit)
    directory = Path(out) if out else cfg.resolve(cfg.harvest.queue)
    result = Harvest(selection.rows, selection.filtered, selection.found, dropped, selection.missing_payload,
                     clusters, items, settings={"version": version, "since": since, "limit": limit,
                                                "logs": [str(p) for p in paths]})
    result.files = write_queue(directory, items)
    result.files["clusters"] = str(directory / "clusters.json")
    write_json_atomic(directory / "clusters.json", result.to_json())
    return result


def _log_paths(cfg, logs: list[str] | None) -> list[Path]:
    if logs:
        return expand(list(logs), Path.cwd())
    if not cfg.canary.logs:
        raise UsageError("no request logs: pass --logs PATH or set `canary.logs` in the config")
    paths: list[Path] = []
    for i, pattern in enumerate(cfg.canary.logs):
        try:
            paths += [p for p in expand([pattern], cfg.base_dir, root=cfg.root) if p not in paths]
        except LogError as exc:
            raise cfg.error(f"canary.logs.{i}", str(exc)) from None
    return paths


def parse_since(text: str | None, now: float) -> float | None:
    """`--since`: an ISO 8601 time (no zone: UTC) or a duration back from now (`12h`, `7d`)."""
    if text is None:
        return None
    try:
        return now - duration_seconds(text)
    except ValueError:
        pass
    try:
        stamp = datetime.fromisoformat(text)
    except ValueError:
        raise UsageError(f"--since {text!r}: neither an ISO 8601 time (2026-01-01T00:00:00Z) nor a duration "
                         "(12h, 7d)") from None
    return (stamp if stamp.tzinfo else stamp.replace(tzinfo=timezone.utc)).timestamp()
