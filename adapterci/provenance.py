"""Provenance of stage outputs: the trust domain that wrote them and the digests of what they judged.

Eval results record the trust domain (adapterci.trust), the adapter's file digests (its training record
included) and the eval sets they were computed on (`results_provenance`); a gate verdict adds the digest of those
results, of the policy it judged with (a local base pinned by content) and the base model's identity as the
config names it (`verdict_provenance`). Each stage writes its record once, with its output. `release` recomputes
all of it from the run directory before it ships anything (adapterci.release.verify). See
docs/self-hosted-runner.md.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from adapterci.adapterdir import digests
from adapterci.fingerprint import hash_file, hash_json, hash_tree
from adapterci.modelio import base_model_identity
from adapterci.trust import trust_domain


def base_content(cfg) -> str | None:
    """sha256 of a local base model as it is now (a directory's files, or a GGUF file); None for a Hub base, or
    when the local base is not at hand (a gitignored GGUF file is not in a release job's checkout)."""
    local = cfg.base_model_path()
    return hash_tree(local) if local is not None and local.exists() else None


def policy(cfg, base: str | None = None) -> dict[str, Any]:
    """What the gate judges with: rules, eval suites and their files, base model (a local one by content) and
    prompt. `base`: the local base's content hash to use when it is not at hand here (release verification takes
    the one the verdict recorded)."""
    local = cfg.base_model_path() is not None
    suites = [{**suite.model_dump(mode="json"), "path": _relative(cfg, suite.path)} for suite in cfg.eval.suites]
    return {  # paths relative to the repository: a GPU runner and a hosted runner check out in different places
        "gate": cfg.gate.model_dump(mode="json"),
        "eval": {**cfg.eval.model_dump(mode="json"), "suites": suites},
        "eval_sets": eval_set_hashes(cfg),
        "base_model": cfg.base_model,
        "base_revision": cfg.base_revision,
        "base_gguf_file": cfg.base_gguf_file,
        "base_upstream": cfg.base_upstream,  # what a release names as a GGUF base's upstream
        "base_content": (base_content(cfg) or base) if local else None,
        "prompt_template": cfg.prompt_template,
    }


def _relative(cfg, path: Path) -> str:
    return Path(path).resolve().relative_to(cfg.root).as_posix()


def policy_hash(cfg, base: str | None = None) -> str:
    return hash_json(policy(cfg, base))


def eval_set_hashes(cfg) -> dict[str, str]:
    return {s.name: hash_file(s.path) for s in cfg.eval.suites}


def results_digest(results_json: Path) -> str:
    """sha256 over eval/results.json and the items file beside it (what the gate reads)."""
    results_json = Path(results_json)
    items = results_json.parent / "items.jsonl"
    return hash_json({"results": hash_file(results_json), "items": hash_file(items) if items.is_file() else None})


def results_provenance(cfg, adapter_dir: Path) -> dict[str, Any]:
    """What eval results of the adapter in `adapter_dir` record about themselves."""
    return {"trust_domain": trust_domain(), "adapter": digests(adapter_dir), "eval_sets": eval_set_hashes(cfg)}


def verdict_provenance(cfg, adapter_dir: Path, results_json: Path) -> dict[str, Any]:
    """What a gate verdict on `results_json` (the results of the adapter in `adapter_dir`) records."""
    return {**results_provenance(cfg, adapter_dir), "eval_results": results_digest(results_json),
            "policy": policy_hash(cfg), "base": base_model_identity(cfg)}


def adapter_provenance(adapter_dir: Path) -> dict[str, Any]:
    """What a cached adapter records: the domain that trained it and its file digests."""
    return {"trust_domain": trust_domain(), "adapter": digests(adapter_dir)}


def vouches(record: Any, adapter_dir: Path, **expected: Any) -> bool:
    """Whether a provenance `record` was written in this trust domain for exactly the files of `adapter_dir`
    (and the `expected` digests): a planted or stale cache entry is ignored, not reused."""
    return (isinstance(record, dict) and record.get("trust_domain") == trust_domain()
            and record.get("adapter") == digests(adapter_dir)
            and all(record.get(k) == v for k, v in expected.items()))
