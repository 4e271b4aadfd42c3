"""The stage caches: what `adapterci run` reuses instead of redoing a stage.

The stages fill them themselves. `train`, `evaluate` and `decide` store what they write into the run directory
in a content-addressed cache of this trust domain (`runs.cache_dir`), whether `run` called them or a person ran
`adapterci train`, `eval` or `gate` by hand. `run` and `run --dry` look them up under the same keys, so a stage
done by hand on the same inputs is reused, not redone; `run` copies the entry into its freshly cleared run
directory. The check stage's entries are written by `run` only.

An entry is reused only when its provenance record, written in this trust domain, vouches for exactly the
files it is used with (`provenance.vouches`). An entry of another domain lives in another folder, and a
planted, stale or unreadable one is ignored and the stage runs. The run directory itself is never trusted:
an adapter there is reused only through its cache entry. Keys:

- `adapters/<inputs fingerprint>`: base model, data, train config, prompt format and seed
  (`train.provenance.inputs_fingerprint`); holds `adapter/`, `loss.png` and `provenance.json`.
- `eval-results/<key>`: the adapter's content digest, the champion (registry commit or content digest), the
  registry, eval sets and settings, base model and prompt; holds the run directory's `eval/`.
- `gate/<key>`: the verdict's provenance (trust domain, adapter, results, policy) and the cost settings.
- `check/<key>`: data and eval files, their config sections and the base model.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from adapterci import __version__
from adapterci.adapterdir import content_digest
from adapterci.console import log_line
from adapterci.data.load import expand
from adapterci.errors import AdapterCIError
from adapterci.fingerprint import hash_file, hash_json
from adapterci.fsio import read_tolerant, staged_dir, write_json_atomic
from adapterci.modelio import base_model_identity
from adapterci.provenance import adapter_provenance, eval_set_hashes, verdict_provenance, vouches
from adapterci.registry import open_registry
from adapterci.reuse import policy
from adapterci.runs import RunDir, cache_dir
from adapterci.train.provenance import inputs_fingerprint


@dataclass(frozen=True)
class Entry:
    """One cache entry: its key, its folder, and whether it holds a reusable (vouched-for) output."""

    key: str
    path: Path
    hit: bool


# --- check -----------------------------------------------------------------------------------------------------


def check_entry(cfg) -> Entry:
    """The check results of the data, eval sets and settings as they are now."""
    patterns = cfg.data.patterns("train") + cfg.data.patterns("validation")
    files = expand(patterns + [str(s.path) for s in cfg.eval.suites], cfg.base_dir, cfg.root)
    key = hash_json({
        "adapterci": __version__,
        "files": {str(f.relative_to(cfg.root)): hash_file(f) if f.is_file() else None for f in files},
        "data": cfg.data.model_dump(mode="json"),
        "checks": cfg.checks.model_dump(mode="json"),
        "eval": cfg.eval.model_dump(mode="json"),
        "prompt_template": cfg.prompt_template,
        "base": base_model_identity(cfg),
    })
    path = cache_dir(cfg, "check") / key
    return Entry(key, path, _reusable(cfg, path) and (path / "check.json").is_file())


def store_check(cfg, entry: Entry, check_dir: Path) -> None:
    _store(cfg, entry.path, lambda tmp: shutil.copytree(check_dir, tmp, dirs_exist_ok=True))


# --- train -----------------------------------------------------------------------------------------------------


def adapter_entry(cfg, fingerprint: str | None = None) -> Entry:
    """The adapter trained from the config's inputs (`fingerprint`, computed when not given)."""
    key = fingerprint or inputs_fingerprint(cfg)
    path = cache_dir(cfg, "adapters") / key
    return Entry(key, path, _reusable(cfg, path) and _vouched(path / "provenance.json", path / "adapter"))


def store_adapter(cfg, fingerprint: str, adapter_dir: Path, loss_png: Path) -> None:
    """Keep a trained adapter (and its loss curve) under its inputs fingerprint."""
    def fill(tmp: Path) -> None:
        shutil.copytree(adapter_dir, tmp / "adapter")
        if loss_png.is_file():
            shutil.copy2(loss_png, tmp / "loss.png")
        write_json_atomic(tmp / "provenance.json", adapter_provenance(tmp / "adapter"))

    _store(cfg, cache_dir(cfg, "adapters") / fingerprint, fill)


def restore_adapter(entry: Entry, rd: RunDir) -> None:
    """Copy a cached adapter and its loss curve into the run directory (file times kept)."""
    shutil.copytree(entry.path / "adapter", rd.adapter, dirs_exist_ok=True)
    if (entry.path / "loss.png").is_file():
        rd.loss_png.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(entry.path / "loss.png", rd.loss_png)


# --- eval ------------------------------------------------------------------------------------------------------


def results_entry(cfg, adapter_dir: Path, champion: str | Path | None) -> Entry:
    """The eval results of the adapter in `adapter_dir` against `champion` (as `evaluate` takes it)."""
    key = hash_json({
        "adapterci": __version__,
        "candidate": content_digest(adapter_dir),
        "champion": _champion_identity(cfg, champion),
        "registry": cfg.registry_location(),
        "eval": cfg.eval.model_dump(mode="json"),
        "suites": eval_set_hashes(cfg),
        "base": base_model_identity(cfg),
        "prompt_template": cfg.prompt_template,
    })
    path = cache_dir(cfg, "eval-results") / key
    return Entry(key, path, _reusable(cfg, path)
                 and _vouched(path / "results.json", adapter_dir, eval_sets=eval_set_hashes(cfg)))


def store_results(cfg, entry: Entry, eval_dir: Path) -> None:
    _store(cfg, entry.path, lambda tmp: shutil.copytree(eval_dir, tmp, dirs_exist_ok=True))


def _champion_identity(cfg, champion: str | Path | None) -> str | None:
    """The commit (registry ref) or content digest (adapter directory) of the champion; None for no champion."""
    if champion is None or str(champion) == "none":
        return None
    if Path(champion).is_dir():
        return content_digest(Path(champion))
    found = open_registry(cfg).resolve("stable" if str(champion) == "auto" else str(champion))
    return found.commit if found else None


# --- gate ------------------------------------------------------------------------------------------------------


def verdict_entry(cfg, adapter_dir: Path, results_json: Path) -> Entry:
    """The gate verdict on `results_json`, the results of the adapter in `adapter_dir`, under today's policy."""
    provenance = verdict_provenance(cfg, adapter_dir, results_json)
    key = hash_json({"adapterci": __version__, "provenance": provenance, "cost": cfg.cost.model_dump(mode="json")})
    path = cache_dir(cfg, "gate") / key
    return Entry(key, path, _reusable(cfg, path) and _vouched(path / "gate.json", adapter_dir, **provenance))


def store_verdict(cfg, entry: Entry, gate_json: Path) -> None:
    _store(cfg, entry.path, lambda tmp: shutil.copy2(gate_json, tmp / "gate.json"))


# --- shared ----------------------------------------------------------------------------------------------------


def _reusable(cfg, path: Path) -> bool:
    """Whether this run may reuse the entry folder `path` at all (`reuse.policy`: a trusted CI run on a shared
    runner reuses nothing; with ADAPTERCI_CACHE_KEY only a sealed entry)."""
    return policy(cfg).reusable_dir(path.parent.name, path.name, path)


def _vouched(record_path: Path, adapter_dir: Path, **expected: Any) -> bool:
    """Whether a cached entry's provenance record vouches for exactly the files of `adapter_dir` in this trust
    domain (`provenance.vouches`): a planted, stale or unreadable entry is ignored, not reused."""
    record = read_tolerant(record_path)
    try:
        return vouches(record.get("provenance", record) if isinstance(record, dict) else None, adapter_dir,
                       **expected)
    except AdapterCIError:
        return False


def _store(cfg, final: Path, fill: Callable[[Path], None]) -> None:
    """Build an entry in a staged folder (`fill` writes into it), sealed when this run holds ADAPTERCI_CACHE_KEY.
    A cache is an optimisation: a full disk here is logged and the stage, whose own output is already written,
    still succeeds."""
    reuse = policy(cfg)
    try:
        with staged_dir(final) as tmp:
            fill(tmp)
            reuse.seal_dir(final.parent.name, final.name, tmp)
    except OSError as exc:
        log_line(f"cache: could not keep {final.parent.name}/{final.name[:12]}: {exc}")
