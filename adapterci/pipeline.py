"""`adapterci run`: check -> train -> eval -> gate -> (release), planned first and then run, reusing cached stages.

Like DVC's `plan_repro` / `_reproduce`: `plan()` lists the stages (cheap, so `--dry` costs nothing), `run()`
executes them in order under one error policy: the first failing stage stops the run, its exit code becomes the
run's, and the report and `manifest.json` are written whatever happened.

Reuse: the train stage is content-addressed by `adapterci.train.provenance.inputs_fingerprint` (data, config, base model,
prompt format, seed) under `cache_dir(cfg, "adapters")`; the check stage by a fingerprint of its inputs under
`cache_dir(cfg, "check")`; the eval stage by the adapter's fingerprint, the registry's `stable` commit (the
champion), the eval sets and settings under `cache_dir(cfg, "eval-results")` (and below that, eval keeps its
own per-model cache, so a new champion re-scores only the champion). Caches are per trust domain
(`adapterci.provenance`), and a cached entry is reused only when the digests it records match what is recomputed
now: the adapter's files, the eval results and the policy the gate judged.
"""

from __future__ import annotations

import shutil
import sys
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

from adapterci import __version__, settings
from adapterci.adapterdir import content_digest
from adapterci.check import run_checks
from adapterci.console import log_line
from adapterci.data.load import expand
from adapterci.errors import AdapterCIError, CheckFailed, FileSystemError, GateFailed, GateInconclusive, StageFailed
from adapterci.eval.stage import evaluate
from adapterci.explain import explain
from adapterci.fingerprint import hash_file, hash_json
from adapterci.fsio import read_json, read_tolerant, staged_dir, write_json_atomic
from adapterci.gate.policy import decide
from adapterci.modelio import base_model_identity
from adapterci.provenance import adapter_provenance, eval_set_hashes, verdict_provenance, vouches
from adapterci.registry import open_registry
from adapterci.release import release
from adapterci.report import write_report
from adapterci.runs import RunDir, cache_dir, run_dir_for
from adapterci.train.provenance import inputs_fingerprint
from adapterci.train.run import can_resume, train

STAGES = ("check", "train", "eval", "gate", "release")
DESCRIPTIONS = {
    "check": "validate training data and eval sets",
    "train": "train the LoRA adapter (or reuse the cached one)",
    "eval": "evaluate base, champion and candidate",
    "gate": "apply the release policy",
    "release": "release the adapter to the registry (on PASS)",
}


@dataclass(frozen=True)
class Stage:
    """One planned stage."""

    name: str
    description: str


@dataclass
class StageRecord:
    """What happened to one stage: `ran`, `cached` (outputs reused), `failed` or `skipped`. `reused` stays
    true for a stage that failed on reused outputs (a cached FAIL verdict)."""

    name: str
    status: str
    reused: bool = False
    seconds: float = 0.0
    cpu_seconds: float = 0.0  # user + system CPU time of this process and its children (all cores)
    fingerprint: str | None = None
    exit_code: int = 0
    message: str = ""


@dataclass
class RunResult:
    run_dir: Path
    stages: list[StageRecord] = field(default_factory=list)
    verdict: str | None = None
    version: str | None = None
    report: Path | None = None
    error: AdapterCIError | None = None
    worth_it: dict[str, Any] | None = None  # gate.json's prompt baselines beside the candidate, and the costs

    @property
    def exit_code(self) -> int:
        return self.error.exit_code if self.error else 0

    @property
    def passed(self) -> bool:
        return self.error is None

    def to_dict(self) -> dict[str, Any]:
        return {
            "run_dir": str(self.run_dir),
            "exit_code": self.exit_code,
            "error": str(self.error) if self.error else None,
            "verdict": self.verdict,
            "worth_it": self.worth_it,
            "version": self.version,
            "report": str(self.report) if self.report else None,
            "stages": [asdict(s) for s in self.stages],
        }


Event = Callable[[StageRecord], None]


def _cpu_seconds() -> float:
    """CPU time used so far by this process and its waited-for children: on a shared machine the stages' cost,
    where wall time also counts the other processes' load."""
    import resource

    return sum(r.ru_utime + r.ru_stime for r in (resource.getrusage(resource.RUSAGE_SELF),
                                                  resource.getrusage(resource.RUSAGE_CHILDREN)))


def plan(cfg, release: bool = True) -> list[Stage]:
    """The stages `run` will execute, in order. Reads nothing but the config."""
    names = STAGES if release else STAGES[:-1]
    return [Stage(name, DESCRIPTIONS[name]) for name in names]


def run(cfg, release: bool = True, run_dir: str | Path | None = None, on_stage: Event | None = None,
        champion: str = "auto", base_ref: str | None = None) -> RunResult:
    """Run the planned stages into `run_dir`; stop at the first failure. Always writes the report and manifest.

    `champion` is what eval compares with besides the base model: `auto` (the registry's `stable`), `none`, a
    registry ref or an adapter directory. `on_stage` is called with each stage's record when it starts (status
    `running`) and when it ends. When the gate fails, the regressions are attributed to training rows (those
    added since `base_ref` when given) for the report; a failure there is noted, never fatal."""
    rd = run_dir_for(cfg, run_dir)
    with rd.locked():
        return _run(cfg, rd, release, notify=on_stage or (lambda record: None), champion=champion,
                    base_ref=base_ref)


def _run(cfg, rd: RunDir, release: bool, notify: Event, champion: str, base_ref: str | None) -> RunResult:
    rd.clear()
    started = datetime.now(timezone.utc)
    result = RunResult(run_dir=rd.path)
    ctx: dict[str, Any] = {"champion": champion}
    for stage in plan(cfg, release):
        if result.error is not None:
            result.stages.append(StageRecord(stage.name, "skipped"))
            continue
        notify(StageRecord(stage.name, "running"))
        record = StageRecord(stage.name, "ran")
        t0, cpu0 = time.perf_counter(), _cpu_seconds()
        try:
            _RUNNERS[stage.name](cfg, rd, ctx, record)
        except AdapterCIError as exc:
            result.error = exc
        except OSError as exc:  # disk full, read-only: the environment, not a bug
            result.error = StageFailed(stage.name, str(FileSystemError.of(exc)))
        except Exception as exc:  # a crash inside a stage: stop here, keep the cause for ADAPTERCI_RAISE_ERRORS
            if settings.current().raise_errors or getattr(sys, "_called_from_test", False):
                _finish(cfg, rd, result, started, release)
                raise
            err = StageFailed(stage.name, f"{type(exc).__name__}: {exc}")
            err.__cause__ = exc
            result.error = err
        record.seconds = round(time.perf_counter() - t0, 3)
        record.cpu_seconds = round(_cpu_seconds() - cpu0, 3)
        record.reused = record.status == "cached"
        if result.error is not None:
            record.status, record.exit_code, record.message = "failed", result.error.exit_code, str(result.error)
        result.stages.append(record)
        notify(record)
    result.verdict = ctx.get("verdict")
    result.worth_it = ctx.get("worth_it")
    result.version = ctx.get("version")
    if result.verdict == "FAIL":
        _explain(cfg, rd, base_ref)
    try:
        _finish(cfg, rd, result, started, release)
        result.report = write_report(cfg, rd.path)
    except OSError:
        if result.error is None:
            raise
        # the stage's error (often the same full disk) is the one to report
    return result


def _finish(cfg, rd: RunDir, result: RunResult, started: datetime, release: bool) -> None:
    write_json_atomic(rd.manifest, {
        "adapterci_version": __version__,
        "config": str(cfg.path),
        "config_hash": hash_file(cfg.path),
        "registry": cfg.registry,
        "release": release,
        "started": started.isoformat(timespec="seconds"),
        "finished": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        **{k: v for k, v in result.to_dict().items() if k not in ("run_dir", "report")},
    })


# --- stages ---------------------------------------------------------------------------------------------------


def check_fingerprint(cfg) -> str:
    """Everything `adapterci check` reads: data and eval files, their config sections and the base model."""
    patterns = cfg.data.patterns("train") + cfg.data.patterns("validation")
    files = expand(patterns + [str(s.path) for s in cfg.eval.suites], cfg.base_dir, cfg.root)
    return hash_json({
        "adapterci": __version__,
        "files": {str(f.relative_to(cfg.root)): hash_file(f) if f.is_file() else None for f in files},
        "data": cfg.data.model_dump(mode="json"),
        "checks": cfg.checks.model_dump(mode="json"),
        "eval": cfg.eval.model_dump(mode="json"),
        "prompt_template": cfg.prompt_template,
        "base": base_model_identity(cfg),
    })


def _check(cfg, rd: RunDir, ctx: dict, record: StageRecord) -> None:
    record.fingerprint = check_fingerprint(cfg)
    cached = cache_dir(cfg, "check") / record.fingerprint
    if (cached / "check.json").is_file():
        shutil.copytree(cached, rd.check_dir, dirs_exist_ok=True)
        record.status, record.message = "cached", "data unchanged: reused the check results"
        return
    report = run_checks(cfg, run_dir=rd.path)
    if not report.passed:
        raise CheckFailed("data check failed (see the report)")
    with staged_dir(cached) as tmp:
        shutil.copytree(rd.check_dir, tmp, dirs_exist_ok=True)


def _train(cfg, rd: RunDir, ctx: dict, record: StageRecord) -> None:
    record.fingerprint = ctx["adapter_fingerprint"] = inputs_fingerprint(cfg)
    cached = cache_dir(cfg, "adapters") / record.fingerprint
    if _vouched(cached / "provenance.json", cached / "adapter"):
        shutil.copytree(cached / "adapter", rd.adapter, dirs_exist_ok=True)
        if (cached / "loss.png").is_file():
            rd.loss_png.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(cached / "loss.png", rd.loss_png)
        record.status = "cached"
        record.message = f"inputs unchanged: reused adapter {record.fingerprint[:12]}"
        return

    resume = can_resume(rd.adapter, record.fingerprint)  # checkpoints of an interrupted run on the same inputs
    train(cfg, output=rd.adapter, run_dir=rd, resume=resume)
    if resume:
        record.message = "resumed the interrupted training"
    with staged_dir(cached) as tmp:
        shutil.copytree(rd.adapter, tmp / "adapter")
        if rd.loss_png.is_file():
            shutil.copy2(rd.loss_png, tmp / "loss.png")
        write_json_atomic(tmp / "provenance.json", adapter_provenance(rd.adapter))


def _vouched(record_path: Path, adapter_dir: Path, **expected: Any) -> bool:
    """Whether a cached entry's provenance record vouches for exactly the files of `adapter_dir` in this trust
    domain (`provenance.vouches`): a planted, stale or unreadable entry is ignored, not reused."""
    record = read_tolerant(record_path)
    try:
        return vouches((record or {}).get("provenance", record), adapter_dir, **expected)
    except AdapterCIError:
        return False


def eval_fingerprint(cfg, adapter_fingerprint: str, champion: str = "auto") -> str:
    """Everything the eval stage's results depend on, given the candidate adapter's train fingerprint."""
    return hash_json({
        "adapterci": __version__,
        "candidate": adapter_fingerprint,
        "champion": _champion_identity(cfg, champion),
        "registry": cfg.registry_location(),
        "eval": cfg.eval.model_dump(mode="json"),
        "suites": {s.name: hash_file(s.path) for s in cfg.eval.suites},
        "base": base_model_identity(cfg),
        "prompt_template": cfg.prompt_template,
    })


def _champion_identity(cfg, champion: str) -> str | None:
    """The commit (registry ref) or content digest (adapter directory) of the champion; None for no champion."""
    if champion == "none":
        return None
    if Path(champion).is_dir():
        return content_digest(Path(champion))

    found = open_registry(cfg).resolve("stable" if champion == "auto" else champion)
    return found.commit if found else None


def _eval(cfg, rd: RunDir, ctx: dict, record: StageRecord) -> None:
    record.fingerprint = ctx["eval_fingerprint"] = eval_fingerprint(cfg, ctx["adapter_fingerprint"], ctx["champion"])
    cached = cache_dir(cfg, "eval-results") / record.fingerprint
    if _vouched(cached / "results.json", rd.adapter, eval_sets=eval_set_hashes(cfg)):
        shutil.copytree(cached, rd.eval_dir, dirs_exist_ok=True)
        record.status, record.message = "cached", "adapter, champion and eval sets unchanged: reused eval results"
        return
    evaluate(cfg, rd.adapter, champion=ctx["champion"], run_dir=rd)
    with staged_dir(cached) as tmp:
        shutil.copytree(rd.eval_dir, tmp, dirs_exist_ok=True)


def _gate(cfg, rd: RunDir, ctx: dict, record: StageRecord) -> None:
    record.fingerprint = hash_json({"adapterci": __version__, "eval": ctx["eval_fingerprint"],
                                    "gate": cfg.gate.model_dump(mode="json"),
                                    "cost": cfg.cost.model_dump(mode="json")})
    cached = cache_dir(cfg, "gate") / record.fingerprint / "gate.json"
    provenance = verdict_provenance(cfg, rd.adapter, rd.eval_json)
    if _vouched(cached, rd.adapter, **provenance):
        shutil.copy2(cached, rd.gate_json)
        record.status = "cached"
    else:
        decide(cfg, rd.eval_json, run_dir=rd)
        with staged_dir(cached.parent) as tmp:
            shutil.copy2(rd.gate_json, tmp / "gate.json")
    decision = read_json(rd.gate_json)
    verdict = ctx["verdict"] = decision["verdict"]
    ctx["worth_it"] = decision.get("worth_it")
    record.message = f"verdict {verdict}"
    if verdict == "FAIL":
        raise GateFailed("gate: FAIL (see the report for the rules that failed)")
    if verdict == "INCONCLUSIVE":
        raise GateInconclusive("gate: INCONCLUSIVE (too few eval items or no significant difference)")


def _release(cfg, rd: RunDir, ctx: dict, record: StageRecord) -> None:
    released = release(cfg, rd.adapter, run_dir=rd, verified=True)
    ctx["version"] = released.version
    record.message = f"released {released.version}"


def _explain(cfg, rd: RunDir, base_ref: str | None) -> None:
    """Which training rows made the candidate regress (explain/attribution.json, shown in the report)."""
    try:
        explain(cfg, rd.path, base_ref=base_ref)
    except (AdapterCIError, OSError) as exc:
        log_line(f"explain: no attribution: {exc}")


_RUNNERS = {"check": _check, "train": _train, "eval": _eval, "gate": _gate, "release": _release}
