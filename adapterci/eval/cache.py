"""The eval cache: one model's raw outputs on one suite, keyed by (model fingerprint, eval set content hash,
scoring settings + prompt fingerprint). The base model's outputs are thus computed once and reused by every
later evaluation (every PR) of the same project; a trusted CI run reuses them only as `adapterci.reuse` allows
(a forged *base* score would pass `>= base + x`), sealed under ADAPTERCI_CACHE_KEY when it is set."""

from __future__ import annotations

import json
from typing import Any

from adapterci.console import log_line
from adapterci.fingerprint import hash_json
from adapterci.fsio import write_json_atomic
from adapterci.prompting import PromptFormat
from adapterci.reuse import policy
from adapterci.runs import cache_dir


def key(spec, suite, eval_cfg, tokenizer, scoring_version: int, prompts: list[str] | None = None) -> str:
    """Everything that determines the raw outputs (answers and scores) of `spec` on `suite`; for a prompt
    baseline also the `prompts` it renders (its system prompt and the training rows it shows)."""
    settings: dict[str, Any] = {
        "kind": suite.config.kind, "mode": suite.config.mode, "choices": suite.config.choices,
        "max_new_tokens": suite.config.max_new_tokens, "batch_size": eval_cfg.batch_size, "seed": eval_cfg.seed,
    }
    if suite.config.kind == "safety" and eval_cfg.refusal.detector == "choices":
        settings["refusal"] = [eval_cfg.refusal.refusal_answers, eval_cfg.refusal.compliance_answers]
    prompt = PromptFormat(spec.prompt_template, tokenizer).fingerprint
    return hash_json({"model": spec.fingerprint, "evalset": suite.content_hash, "settings": settings,
                      "prompt": prompt, "scoring": scoring_version} | ({"prompts": prompts} if prompts else {}))


def load(cfg, digest: str, n: int) -> list[dict] | None:
    """The cached outputs of `n` items, or None: a missing, unreadable or truncated entry (not one output per
    item, each with `answer` and `score`) is a miss and is computed again, and so is one this run may not reuse
    (`reuse.policy`: nothing on a shared runner, only a sealed entry under ADAPTERCI_CACHE_KEY)."""
    reuse = policy(cfg)
    path = cache_dir(cfg, "eval") / f"{digest}.json"
    if not reuse.allowed:
        return None
    try:
        entry = json.loads(path.read_text(encoding="utf-8"))
        outputs = entry["outputs"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if not isinstance(outputs, list) or len(outputs) != n or \
            not all(isinstance(o, dict) and "answer" in o and "score" in o for o in outputs):
        return None
    if not reuse.accepts("eval", digest, hash_json(outputs), entry.get("seal")):
        log_line(f"eval cache: ignored {digest[:12]}: no valid seal under ADAPTERCI_CACHE_KEY (recomputed)")
        return None
    return outputs


def store(cfg, digest: str, outputs: list[dict]) -> None:
    seal = policy(cfg).seal("eval", digest, hash_json(outputs))
    write_json_atomic(cache_dir(cfg, "eval") / f"{digest}.json",
                      {"outputs": outputs, **({"seal": seal} if seal else {})})
