"""The machine a CI job runs on: an ephemeral runner that serves this one job, or one that other jobs used too.

Evidence, from GitHub's runner (actions/runner): a job's steps descend from the `Runner.Worker` process, started
from `<runner root>/bin/` for this job alone. The runner root holds `.runner`, the settings that
`config.sh --ephemeral` or a just-in-time config (`run.sh --jitconfig`, what actions-runner-controller uses)
write with `"ephemeral": true`; such a runner takes one job, deletes its settings and exits. Its `_diag/` holds
one `Worker_*.log` per job it ran. adapterci adds a marker per job in `$ADAPTERCI_HOME/jobs/` (`mark_job`).

A machine counts as ephemeral when this job descends from a `Runner.Worker` whose settings say so and nothing
shows that another job used it: one Worker log, no adapterci marker of another job. No earlier job can become an
ancestor of this one, but a job that ran on a persistent machine as the runner's user could edit its files: delete
its log and marker, rewrite `.runner`. The evidence catches a shared machine; it cannot prove a clean one. That
residual risk is why the release pool is ephemeral by construction (docs/trusted-runs.md)."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from adapterci import settings
from adapterci.fingerprint import hash_json
from adapterci.fsio import read_tolerant, write_json_atomic

WORKER = "Runner.Worker"
JOB_VARIABLES = ("GITHUB_REPOSITORY", "GITHUB_WORKFLOW", "GITHUB_EVENT_NAME", "GITHUB_REF", "GITHUB_SHA",
                 "GITHUB_RUN_ID", "GITHUB_RUN_ATTEMPT", "GITHUB_JOB")
"""What names a job (GitHub sets them for every step); with the Worker process, one marker per job."""


@dataclass(frozen=True)
class Machine:
    """What this job found out about its machine."""

    runner_root: Path | None  # the runner's install directory; None: no `Runner.Worker` among our ancestors
    ephemeral_settings: bool  # `.runner` says `ephemeral`
    other_jobs: tuple[str, ...]  # evidence that other jobs used this machine, in words

    @property
    def ephemeral(self) -> bool:
        return self.runner_root is not None and self.ephemeral_settings and not self.other_jobs

    def describe(self) -> str:
        """Why this machine is not ephemeral, in words ("" when it is)."""
        if self.other_jobs:
            return "other jobs used this machine: " + "; ".join(self.other_jobs)
        if self.runner_root is None:
            return f"no GitHub runner process ({WORKER}) among this job's ancestors"
        if not self.ephemeral_settings:
            return f"the runner in {self.runner_root} is not ephemeral (its .runner settings say so)"
        return ""


def inspect() -> Machine:
    """The evidence on this machine now (reads a few small files; writes nothing)."""
    worker = _worker()
    root = _runner_root(worker) if worker else None
    others: list[str] = []
    ephemeral = False
    if root is not None:
        ephemeral = _ephemeral_setting(root / ".runner")
        logs = sorted((root / "_diag").glob("Worker_*.log"))
        if len(logs) > 1:
            others.append(f"{len(logs)} job logs in {root / '_diag'} (Worker_*.log, one per job)")
    mine = job_id(worker)
    for marker in sorted(_jobs_dir().glob("*.json")):
        if marker.stem != mine:
            record = read_tolerant(marker) or {}
            what = " ".join(str(record.get(k)) for k in ("GITHUB_WORKFLOW", "GITHUB_EVENT_NAME", "GITHUB_REF")
                            if record.get(k))
            others.append(f"adapterci ran for another job here ({what or 'unknown job'}: {marker})")
    return Machine(root, ephemeral, tuple(others))


def mark_job() -> Path:
    """Leave this job's marker in `$ADAPTERCI_HOME/jobs/`, where a later job on this machine finds it."""
    worker = _worker()
    path = _jobs_dir() / f"{job_id(worker)}.json"
    if not path.is_file():
        write_json_atomic(path, {k: os.environ.get(k) for k in JOB_VARIABLES})
    return path


def job_id(worker: int | None = None) -> str:
    """This job's identity: GitHub's job variables and the Worker process (pid and start time) when there is one."""
    stat = _stat(worker) if worker else []
    process = {"pid": worker, "started": stat[19] if len(stat) > 19 else None}  # field 22 of /proc/PID/stat
    return hash_json({"job": {k: os.environ.get(k) for k in JOB_VARIABLES}, "worker": process})[:32]


def _jobs_dir() -> Path:
    return settings.current().home / "jobs"


def _worker() -> int | None:
    """The pid of the nearest `Runner.Worker` ancestor of this process, or None."""
    pid = os.getppid()
    for _ in range(64):  # the chain worker -> step shell -> ... -> us is short; never loop forever
        if pid <= 1:
            return None
        if _comm(pid) == WORKER:
            return pid
        stat = _stat(pid)
        if len(stat) < 2:
            return None
        pid = int(stat[1])
    return None


def _runner_root(pid: int) -> Path | None:
    """The runner's install directory: two levels above `bin/Runner.Worker` (its executable, or the script the
    process runs)."""
    candidates = []
    try:
        candidates.append(os.readlink(f"/proc/{pid}/exe"))
    except OSError:
        pass
    try:
        candidates += Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")[:2]
    except OSError:
        pass
    for candidate in candidates:
        path = Path(candidate)
        if path.name == WORKER and path.parent.name == "bin" and path.is_absolute():
            return path.parent.parent
    return None


def _ephemeral_setting(path: Path) -> bool:
    """Whether the runner's settings file says `ephemeral` (the runner writes it with a BOM, keys camelCase)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8-sig"))
    except (OSError, ValueError):
        return False
    return isinstance(data, dict) and any(k.lower() == "ephemeral" and v is True for k, v in data.items())


def _comm(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""


def _stat(pid: int) -> list[str]:
    """/proc/PID/stat split into fields after the command name (pid, state, ppid, ...): [state, ppid, ...]."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return []
    return text[text.rfind(")") + 2:].split()
