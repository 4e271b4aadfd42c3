"""The run directory: where stages leave their outputs for the next stage and the report.

Layout (all relative to the run directory, default `.adapterci/run` beside the config):
    check/check.json  check/summary.md  check/data_docs/      adapterci check
    adapter/  (PEFT adapter + adapterci-train.json)  train/loss.png   adapterci train
    eval/results.json  eval/items.jsonl  eval/summary.md      adapterci eval
    eval/regressions.jsonl                                     adapterci eval (item-level diff)
    explain/attribution.json                                   adapterci explain (and run, on a FAIL)
    gate.json                                                  adapterci gate
    release.json  serving.json                                 adapterci release
    report.md  manifest.json                                   adapterci report / run
    pr.json                                                    adapterci pr materialize (an input of the run)

`RunDir` owns it: the paths above, `clear()` (what a new `run` removes) and `locked()`, which every library
function that writes here holds, so two adapterci commands never mix their outputs in one directory.
"""

from __future__ import annotations

import shutil
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from filelock import FileLock, Timeout

from adapterci import settings
from adapterci.adapterdir import TRAIN_JSON
from adapterci.errors import UsageError
from adapterci.trust import trust_domain


@dataclass(frozen=True)
class RunDir:
    path: Path

    @property
    def check_dir(self) -> Path:
        return self.path / "check"

    @property
    def check_json(self) -> Path:
        return self.check_dir / "check.json"

    @property
    def check_md(self) -> Path:
        return self.check_dir / "summary.md"

    @property
    def data_docs(self) -> Path:
        return self.check_dir / "data_docs"

    @property
    def adapter(self) -> Path:
        return self.path / "adapter"

    @property
    def train_json(self) -> Path:
        return self.adapter / TRAIN_JSON

    @property
    def train_dir(self) -> Path:
        return self.path / "train"

    @property
    def loss_png(self) -> Path:
        return self.train_dir / "loss.png"

    @property
    def eval_dir(self) -> Path:
        return self.path / "eval"

    @property
    def eval_json(self) -> Path:
        return self.eval_dir / "results.json"

    @property
    def eval_items(self) -> Path:
        return self.eval_dir / "items.jsonl"

    @property
    def eval_md(self) -> Path:
        return self.eval_dir / "summary.md"

    @property
    def eval_regressions(self) -> Path:
        return self.eval_dir / "regressions.jsonl"

    @property
    def explain_dir(self) -> Path:
        return self.path / "explain"

    @property
    def attribution_json(self) -> Path:
        return self.explain_dir / "attribution.json"

    @property
    def gate_json(self) -> Path:
        return self.path / "gate.json"

    @property
    def release_json(self) -> Path:
        return self.path / "release.json"

    @property
    def serving_json(self) -> Path:
        return self.path / "serving.json"

    @property
    def report_md(self) -> Path:
        return self.path / "report.md"

    @property
    def manifest(self) -> Path:
        return self.path / "manifest.json"

    @property
    def pr_json(self) -> Path:
        """What `adapterci pr materialize` took from a pull request, refused, and its policy change."""
        return self.path / "pr.json"

    def outputs(self) -> tuple[Path, ...]:
        """What the stages write (every path above but pr.json, which is the run's input)."""
        return (self.check_dir, self.adapter, self.train_dir, self.eval_dir, self.explain_dir, self.gate_json,
                self.release_json, self.serving_json, self.report_md, self.manifest)

    def clear(self) -> None:
        """Remove the outputs of an earlier run, so a report never mixes two runs."""
        for path in self.outputs():
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)
        self.path.mkdir(parents=True, exist_ok=True)

    @contextmanager
    def locked(self) -> Iterator["RunDir"]:
        """Hold the run directory for this process while it writes there: a second adapterci command on the same
        directory refuses (UsageError, exit 2) instead of mixing its outputs in. Re-entrant within a process
        (`run` holds it while its stages take it again)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        path = str(self.path) + ".lock"  # beside the directory: clearing it must not remove the lock
        lock = _HELD.setdefault(path, FileLock(path))
        try:
            lock.acquire(timeout=0)
        except Timeout:
            raise UsageError(f"the run directory {self.path} is in use by another adapterci command (lock {path}): "
                             "wait for it to finish, or pass --run-dir DIR") from None
        try:
            yield self
        finally:
            lock.release()


_HELD: dict[str, FileLock] = {}


def run_dir_for(cfg, override: str | Path | RunDir | None = None) -> RunDir:
    """The run directory of a config: `override` if given, else `.adapterci/run` beside the config."""
    if isinstance(override, RunDir):
        return override
    return RunDir(Path(override).resolve() if override else cfg.workdir / "run")


def cache_dir(cfg, kind: str) -> Path:
    """A content-addressed cache folder (`adapters`, `eval`, ...) shared by the runs of one trust domain.

    `ADAPTERCI_CACHE_DIR` moves the cache root (e.g. to a CI runner's persistent disk); below it every trust
    domain (`adapterci.trust`) has its own folder, so a run never reads what a run of another domain wrote."""
    return (settings.current().cache_dir or cfg.workdir / "cache") / trust_domain() / kind
