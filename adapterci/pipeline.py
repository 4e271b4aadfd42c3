"""`adapterci run`: check -> train -> eval -> gate -> (release), planned first and then run, reusing cached stages.

Like DVC's `plan_repro` / `_reproduce`: `plan()` lists the stages, `preview()` says for each whether `run` will
reuse a cached output or run it, and why (`run --dry`), and `run()` executes them in order under one error
policy: the first failing stage stops the run, its exit code becomes the run's, and the report and
`manifest.json` are written whatever happened.

Reuse (`adapterci.stagecache`): `run` starts from an empty run directory and fills it stage by stage, each from
this trust domain's cache when an entry there vouches for it, else by running the stage. The train, eval and gate
stages keep what they write in those caches themselves, so `adapterci train`, `eval` and `gate` run by hand on
the same inputs are reused by the next `run` exactly as its own earlier stages are. The train stage is keyed by
`adapterci.train.provenance.inputs_fingerprint` (data, config, base model, prompt format, seed); eval by the
adapter's content digest, the champion (the registry's `stable` commit), the eval sets and settings (and below
that, eval keeps its own per-model cache, so a new champion re-scores only the champion); the gate by the
verdict's provenance; check by a fingerprint of its inputs. A cached entry is reused only when the digests it
records match what is recomputed now (the adapter's files, the eval results and the policy the gate judged), in
this trust domain: an adapter, results or a verdict merely lying in the run directory are never trusted. A
trusted run in CI reuses only what `adapterci.reuse` allows (nothing on a runner that is not ephemeral; sealed
entries only, under ADAPTERCI_CACHE_KEY): it says so on the console and in manifest.json (`reuse`), and refuses
to start on a machine another job used unless the config's `trust.shared_runner_reason` says why.
"""

from __future__ import annotations

import shutil
import sys
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

from adapterci import __version__, machine, settings, stagecache
from adapterci.adapterdir import training_record
from adapterci.check import run_checks
from adapterci.console import log_line
from adapterci.errors import AdapterCIError, CheckFailed, FileSystemError, GateFailed, GateInconclusive, StageFailed
from adapterci.eval.stage import evaluate
from adapterci.explain import explain
from adapterci.fingerprint import hash_file
from adapterci.fsio import read_json, read_tolerant, write_json_atomic
from adapterci.gate.policy import decide
from adapterci.provenance import eval_set_hashes, policy_hash
from adapterci.release import release
from adapterci.report import write_report
from adapterci.reuse import Reuse, policy
from adapterci.runs import RunDir, run_dir_for
from adapterci.train.provenance import changed_inputs
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
    """One planned stage; from `preview`, also whether `run` will reuse its cached output (`cached`), run it
    (`to run`) or skip it (`skipped`), and why."""

    name: str
    description: str
    status: str = ""
    reason: str = ""


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
    reuse: dict[str, Any] = field(default_factory=lambda: {"allowed": True, "reason": ""})  # what it might reuse

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
            "reuse": self.reuse,
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


def preview(cfg, release: bool = True, run_dir: str | Path | None = None, champion: str = "auto") -> list[Stage]:
    """The planned stages, each `cached` (this trust domain's cache holds an output that vouches for today's
    inputs: `run` reuses it) or `to run`, with the reason; where a stage runs, the run directory's previous
    outputs tell what changed. Reads the data, the eval sets, the caches and the champion's ref; trains and
    evaluates nothing and writes nothing (`run --dry`)."""
    rd = run_dir_for(cfg, run_dir)
    reuse = policy(cfg)
    if not reuse.allowed:
        return [Stage(s.name, s.description, "to run", reuse.reason if s.name != "release" else "when the gate passes")
                for s in plan(cfg, release)]
    shown: dict[str, tuple[str, str]] = {}
    check = stagecache.check_entry(cfg)
    shown["check"] = (("cached", "data, eval sets and settings unchanged: check results in the cache") if check.hit
                      else ("to run", "no check results of these data, eval sets and settings in the cache"))
    adapter = stagecache.adapter_entry(cfg)
    shown["train"] = (("cached", f"inputs unchanged: adapter {adapter.key[:12]} in the cache") if adapter.hit
                      else ("to run", _train_reason(cfg, rd, adapter.key)))
    results = stagecache.results_entry(cfg, adapter.path / "adapter", champion) if adapter.hit else None
    if results is None:
        shown["eval"] = ("to run", "after training: a new adapter")
    else:
        shown["eval"] = (("cached", "adapter, champion, eval sets and settings unchanged: results in the cache")
                         if results.hit else ("to run", _eval_reason(cfg, rd)))
    verdict = None
    if results is None or not results.hit:
        shown["gate"] = ("to run", "after eval: new results")
    else:
        entry = stagecache.verdict_entry(cfg, adapter.path / "adapter", results.path / "results.json")
        verdict = read_tolerant(entry.path / "gate.json").get("verdict") if entry.hit else None  # hit: an object
        shown["gate"] = (("cached", f"results and policy unchanged: verdict {verdict} in the cache") if entry.hit
                         else ("to run", _gate_reason(cfg, rd)))
    shown["release"] = (("skipped", f"the cached verdict is {verdict}") if verdict not in (None, "PASS")
                        else ("to run", "when the gate passes"))
    return [Stage(s.name, s.description, *shown[s.name]) for s in plan(cfg, release)]


def _train_reason(cfg, rd: RunDir, fingerprint: str) -> str:
    """Why the adapter must be trained: which inputs changed since the run directory's adapter was trained."""
    record = training_record(rd.adapter)
    if not isinstance(record, dict):
        return "no adapter of these inputs in the cache (and none in the run directory to compare with)"
    if record.get("inputs_fingerprint") == fingerprint:
        return ("the run directory's adapter was trained from these inputs, but no cache entry of this trust "
                "domain vouches for it (trained in another domain, by an older adapterci, or the cache was removed)")
    changed = changed_inputs(cfg, record) or ["its inputs"]
    return f"{_listing(changed)} changed since the run directory's adapter was trained"


def _eval_reason(cfg, rd: RunDir) -> str:
    recorded = (_provenance(rd.eval_json) or {}).get("eval_sets")
    changed = [name for name, digest in eval_set_hashes(cfg).items()
               if isinstance(recorded, dict) and recorded.get(name) != digest]
    if changed:
        return f"eval set {_listing([f'`{name}`' for name in changed])} changed since the last eval"
    return "no results of this adapter, champion, eval sets and settings in the cache"


def _gate_reason(cfg, rd: RunDir) -> str:
    recorded = (_provenance(rd.gate_json) or {}).get("policy")
    if recorded is not None and recorded != policy_hash(cfg):
        return "the policy (gate rules, eval settings or sets, base model or prompt) changed since the last verdict"
    return "no verdict on these results under this policy in the cache"


def _provenance(path: Path) -> dict | None:
    """The provenance record of a stage output in the run directory (None when absent or unreadable)."""
    record = read_tolerant(path)
    found = record.get("provenance") if isinstance(record, dict) else None
    return found if isinstance(found, dict) else None


def _listing(names: list[str]) -> str:
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} and {names[-1]}"


def run(cfg, release: bool = True, run_dir: str | Path | None = None, on_stage: Event | None = None,
        champion: str = "auto", base_ref: str | None = None) -> RunResult:
    """Run the planned stages into `run_dir`; stop at the first failure. Always writes the report and manifest.

    `champion` is what eval compares with besides the base model: `auto` (the registry's `stable`), `none`, a
    registry ref or an adapter directory. `on_stage` is called with each stage's record when it starts (status
    `running`) and when it ends. When the gate fails, the regressions are attributed to training rows (those
    added since `base_ref` when given) for the report; a failure there is noted, never fatal."""
    rd = run_dir_for(cfg, run_dir)
    reuse = policy(cfg)  # refuses (exit 2) a trusted CI run on a machine other jobs used, before anything is touched
    if settings.current().in_ci:
        machine.mark_job()  # a later trusted job on this machine finds it
    if not reuse.allowed:
        log_line(f"reuse: {reuse.reason}; every stage runs")
    with rd.locked():
        return _run(cfg, rd, release, notify=on_stage or (lambda record: None), champion=champion,
                    base_ref=base_ref, reuse=reuse)


def _run(cfg, rd: RunDir, release: bool, notify: Event, champion: str, base_ref: str | None,
         reuse: Reuse) -> RunResult:
    rd.clear()
    started = datetime.now(timezone.utc)
    result = RunResult(run_dir=rd.path, reuse={"allowed": reuse.allowed, "reason": reuse.reason})
    ctx: dict[str, Any] = {"champion": champion, "reuse": reuse}
    for stage in plan(cfg, release):
        if result.error is not None:
            result.stages.append(StageRecord(stage.name, "skipped"))
            continue
        notify(StageRecord(stage.name, "running"))
        record = StageRecord(stage.name, "ran")
        t0, cpu0 = time.perf_counter(), _cpu_seconds()
        try:
            _RUNNERS[stage.name](cfg, rd, ctx, record)
            if record.status == "ran" and not reuse.allowed and stage.name != "release":
                record.message = "; ".join(filter(None, [record.message, "recomputed: nothing cached is reused"]))
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


def _check(cfg, rd: RunDir, ctx: dict, record: StageRecord) -> None:
    entry = stagecache.check_entry(cfg)
    record.fingerprint = entry.key
    if entry.hit:
        shutil.copytree(entry.path, rd.check_dir, dirs_exist_ok=True)
        record.status, record.message = "cached", "data unchanged: reused the check results"
        return
    report = run_checks(cfg, run_dir=rd.path)
    if not report.passed:
        raise CheckFailed("data check failed (see the report)")
    stagecache.store_check(cfg, entry, rd.check_dir)


def _train(cfg, rd: RunDir, ctx: dict, record: StageRecord) -> None:
    entry = stagecache.adapter_entry(cfg)
    record.fingerprint = entry.key
    if entry.hit:
        stagecache.restore_adapter(entry, rd)
        record.status, record.message = "cached", f"inputs unchanged: reused adapter {entry.key[:12]}"
        return
    # checkpoints of an interrupted run on the same inputs: never sealed, so resumed only where files found on
    # disk may be reused as they are (not in a trusted CI run, not under ADAPTERCI_CACHE_KEY)
    reuse = ctx["reuse"]
    resume = reuse.allowed and reuse.key is None and can_resume(rd.adapter, entry.key)
    train(cfg, output=rd.adapter, run_dir=rd, resume=resume)  # keeps the adapter in the cache itself
    if resume:
        record.message = "resumed the interrupted training"


def _eval(cfg, rd: RunDir, ctx: dict, record: StageRecord) -> None:
    entry = stagecache.results_entry(cfg, rd.adapter, ctx["champion"])
    record.fingerprint = entry.key
    if entry.hit:
        shutil.copytree(entry.path, rd.eval_dir, dirs_exist_ok=True)
        record.status, record.message = "cached", "adapter, champion and eval sets unchanged: reused eval results"
        return
    evaluate(cfg, rd.adapter, champion=ctx["champion"], run_dir=rd)


def _gate(cfg, rd: RunDir, ctx: dict, record: StageRecord) -> None:
    entry = stagecache.verdict_entry(cfg, rd.adapter, rd.eval_json)
    record.fingerprint = entry.key
    if entry.hit:
        shutil.copy2(entry.path / "gate.json", rd.gate_json)
        record.status = "cached"
    else:
        decide(cfg, rd.eval_json, run_dir=rd)
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
