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
    pr.json                                                    adapterci pr materialize
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator


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
        return self.adapter / "adapterci-train.json"

    @property
    def loss_png(self) -> Path:
        return self.path / "train" / "loss.png"

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


_HELD: dict[str, Any] = {}


@contextmanager
def locked(rd: RunDir) -> Iterator[None]:
    """Hold the run directory for this process while it writes there: a second adapterci command on the same
    directory refuses (UsageError, exit 2) instead of mixing its outputs in. Re-entrant within a process
    (`run` holds it while its stages take it again)."""
    from filelock import FileLock, Timeout

    from adapterci.errors import UsageError

    rd.path.parent.mkdir(parents=True, exist_ok=True)
    path = str(rd.path) + ".lock"  # beside the directory: clearing it must not remove the lock
    lock = _HELD.setdefault(path, FileLock(path))
    try:
        lock.acquire(timeout=0)
    except Timeout:
        raise UsageError(f"the run directory {rd.path} is in use by another adapterci command (lock {path}): wait "
                         "for it to finish, or pass --run-dir DIR") from None
    try:
        yield
    finally:
        lock.release()


def run_dir_for(cfg, override: str | Path | None = None) -> RunDir:
    """The run directory of a config: `override` if given, else `.adapterci/run` beside the config."""
    return RunDir(Path(override).resolve() if override else cfg.workdir / "run")


def cache_dir(cfg, kind: str) -> Path:
    """A content-addressed cache folder (`adapters`, `eval`, ...) shared by the runs of one trust domain.

    `ADAPTERCI_CACHE_DIR` moves the cache root (e.g. to a CI runner's persistent disk); below it every trust
    domain (`ADAPTERCI_TRUST_DOMAIN`: default-branch, pr, local) has its own folder, so a run never reads what
    a run of another domain wrote."""
    from adapterci.provenance import trust_domain

    root = os.environ.get("ADAPTERCI_CACHE_DIR")
    return (Path(root).expanduser() if root else cfg.workdir / "cache") / trust_domain() / kind


def write_text_atomic(path: Path, text: str) -> None:
    """Write via a temp file and rename, so readers never see half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, path)
    except OSError as exc:  # a failed write() names no file: name the one we were writing
        Path(tmp).unlink(missing_ok=True)
        raise OSError(exc.errno, exc.strerror, str(path)) if exc.filename is None and exc.errno else exc
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_json_atomic(path: Path, obj: Any) -> None:
    write_text_atomic(path, json.dumps(obj, indent=2, sort_keys=False, default=str) + "\n")


def write_jsonl_atomic(path: Path, rows: list[Any]) -> None:
    write_text_atomic(path, "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows))


def read_json(path: Path) -> Any:
    return json.loads(Path(path).read_text(encoding="utf-8"))


@contextmanager
def staged_dir(final: Path) -> Iterator[Path]:
    """Build a directory in a temp sibling; it replaces `final` only if the block succeeds."""
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=final.parent, prefix=f".{final.name}.tmp-"))
    try:
        yield tmp
    except OSError as exc:  # a failed write() names no file: name the directory being built
        shutil.rmtree(tmp, ignore_errors=True)
        raise OSError(exc.errno, exc.strerror, str(final)) if exc.filename is None and exc.errno else exc
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    old = final.parent / f".{final.name}.old-{os.getpid()}"
    if final.exists():
        os.replace(final, old)
    os.replace(tmp, final)
    shutil.rmtree(old, ignore_errors=True)
