"""Provenance of stage outputs: the trust domain that wrote them and the digests of what they judged.

A run belongs to one trust domain, named by `ADAPTERCI_TRUST_DOMAIN`: `default-branch` (the release workflow,
on a push to the default branch), `pr` (the PR GPU workflow, on a pull request's data) or `local` (the default:
a person's own machine). Caches are kept per domain (`runs.cache_dir`), eval results and the gate verdict
record the domain and the digests of the adapter, eval sets and policy they judged, and `release` ships an
adapter only when it can recompute all of that from the run directory: a verdict from a `pr` run, a verdict
for other adapter files, or one judged under another policy is refused. See docs/self-hosted-runner.md.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from adapterci.errors import ReleaseRefused, UsageError
from adapterci.fingerprint import hash_file, hash_json, hash_tree

DOMAINS = ("default-branch", "pr", "local")
UNTRUSTED = ("pr",)
ENV = "ADAPTERCI_TRUST_DOMAIN"


def trust_domain() -> str:
    """The trust domain of this process (`ADAPTERCI_TRUST_DOMAIN`, default `local`)."""
    value = os.environ.get(ENV) or "local"
    if value not in DOMAINS:
        raise UsageError(f"{ENV}={value!r}: must be one of {', '.join(DOMAINS)}")
    return value


def adapter_digests(adapter_dir: Path) -> dict[str, str]:
    """sha256 of every file `release` would ship from `adapter_dir`."""
    from adapterci.release import adapter_files

    return {rel: hash_file(path) for rel, path in adapter_files(Path(adapter_dir)).items()}


def policy(cfg) -> dict[str, Any]:
    """What the gate judges with: rules, eval suites and their files, base model and prompt."""
    local = cfg.base_model_path()
    suites = [{**suite.model_dump(mode="json"), "path": _relative(cfg, suite.path)} for suite in cfg.eval.suites]
    return {  # paths relative to the repository: a GPU runner and a hosted runner check out in different places
        "gate": cfg.gate.model_dump(mode="json"),
        "eval": {**cfg.eval.model_dump(mode="json"), "suites": suites},
        "eval_sets": eval_set_hashes(cfg),
        "base_model": cfg.base_model,
        "base_revision": cfg.base_revision,
        "base_content": hash_tree(local) if local is not None else None,
        "prompt_template": cfg.prompt_template,
    }


def _relative(cfg, path: Path) -> str:
    return Path(path).resolve().relative_to(cfg.root).as_posix()


def policy_hash(cfg) -> str:
    return hash_json(policy(cfg))


def eval_set_hashes(cfg) -> dict[str, str]:
    return {s.name: hash_file(s.path) for s in cfg.eval.suites}


def results_digest(results_json: Path) -> str:
    """sha256 over eval/results.json and the items file beside it (what the gate reads)."""
    results_json = Path(results_json)
    items = results_json.parent / "items.jsonl"
    return hash_json({"results": hash_file(results_json), "items": hash_file(items) if items.is_file() else None})


def stamp(record_path: Path, provenance: dict[str, Any]) -> None:
    """Add `provenance` to the JSON record at `record_path` (eval/results.json or gate.json)."""
    from adapterci.runs import read_json, write_json_atomic

    write_json_atomic(record_path, {**read_json(record_path), "provenance": provenance})


def results_provenance(cfg, adapter_dir: Path) -> dict[str, Any]:
    return {"trust_domain": trust_domain(), "adapter": adapter_digests(adapter_dir),
            "eval_sets": eval_set_hashes(cfg)}


def verdict_provenance(cfg, adapter_dir: Path, results_json: Path) -> dict[str, Any]:
    return {"trust_domain": trust_domain(), "adapter": adapter_digests(adapter_dir),
            "eval_results": results_digest(results_json), "eval_sets": eval_set_hashes(cfg),
            "policy": policy_hash(cfg)}


def verify_release(cfg, rd, adapter_dir: Path) -> str:
    """Refuse (ReleaseRefused) unless `rd` holds a PASS verdict of a trusted run for exactly these adapter files,
    judged under this config's policy; the verdict is recomputed from the eval results. Returns the verdict."""
    from adapterci.gate import decide
    from adapterci.registry.card import read_tolerant

    if rd is None:
        raise ReleaseRefused(f"no gate verdict for {adapter_dir}: release the adapter of a run directory "
                             "(--run-dir) whose gate passed, or pass --unverified to release it without one")
    gate = read_tolerant(rd.gate_json)
    if not gate:
        raise ReleaseRefused(f"no gate verdict at {rd.gate_json}: run `adapterci gate` (or `adapterci run`) first")
    problems = _problems(cfg, gate, rd, adapter_dir)
    if problems:
        raise ReleaseRefused(f"the gate verdict in {rd.gate_json} does not vouch for {adapter_dir}: "
                             + "; ".join(problems))
    recomputed = decide(cfg, rd.eval_json, write=False).verdict
    if recomputed != "PASS":
        raise ReleaseRefused(f"the gate verdict recomputed from {rd.eval_json} with this config's rules is "
                             f"{recomputed}, not PASS")
    return recomputed


def _problems(cfg, gate: dict, rd, adapter_dir: Path) -> list[str]:
    if gate.get("verdict") != "PASS":
        return [f"its verdict is {gate.get('verdict')}, not PASS"]
    prov = gate.get("provenance")
    if not isinstance(prov, dict):
        return ["it records no provenance (which adapter, eval results and policy it judged)"]
    problems = []
    if prov.get("trust_domain") not in DOMAINS or prov.get("trust_domain") in UNTRUSTED:
        problems.append(f"it was written by a `{prov.get('trust_domain')}` run, not a trusted one")
    if prov.get("adapter") != adapter_digests(adapter_dir):
        problems.append("the adapter files differ from the ones it judged")
    if not rd.eval_json.is_file() or prov.get("eval_results") != results_digest(rd.eval_json):
        problems.append("the eval results differ from the ones it judged")
    if prov.get("policy") != policy_hash(cfg):
        problems.append("it was judged under another policy (gate rules, eval sets or base model)")
    return problems
