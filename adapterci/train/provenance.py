"""What an adapter was trained from: the cache key of the train stage and the provenance it records."""

from __future__ import annotations

import subprocess
from importlib import metadata
from pathlib import Path
from typing import Any

from adapterci import __version__
from adapterci.data.dataset import load_preferences, load_training_data
from adapterci.fingerprint import hash_examples, hash_json
from adapterci.modelio import base_model_identity
from adapterci.prompting import PromptFormat

PACKAGES = ("adapterci", "torch", "transformers", "trl", "peft", "accelerate", "datasets", "tokenizers",
            "safetensors", "unsloth", "bitsandbytes")


def data_fingerprint(train_examples, valid_examples, preference_examples=()) -> str:
    """The training data's hash (`data.preferences` included when configured)."""
    parts = [hash_examples(train_examples), hash_examples(valid_examples)]
    return hash_json(parts + [hash_examples(preference_examples)] if preference_examples else parts)


def _data_fingerprint(cfg) -> str:
    train, valid = load_training_data(cfg)
    return data_fingerprint(train.examples, valid.examples, load_preferences(cfg).examples)


def config_hash(cfg) -> str:
    """Hash of the `train` section (every knob, defaults included)."""
    return hash_json(cfg.train.model_dump(mode="json"))


def inputs_fingerprint(cfg) -> str:
    """The adapter cache key: base model, data, train config, prompt format and seed."""
    return hash_json({
        "base": base_model_identity(cfg),
        "data": _data_fingerprint(cfg),
        "train": config_hash(cfg),
        # `chat` renders with the base model's own template, which the base hash already pins
        "prompt": "chat" if cfg.prompt_template == "chat" else PromptFormat(cfg.prompt_template).fingerprint,
        "seed": cfg.train.seed,
    })


def changed_inputs(cfg, record: dict[str, Any]) -> list[str]:
    """Which inputs of the adapter whose training record is `record` differ from the config's now, in words
    ("the data", "the base model"...); empty when everything it records matches."""
    now = {"the data": ("data_fingerprint", _data_fingerprint(cfg)),
           "the `train` section": ("config_hash", config_hash(cfg)),
           "the base model": ("base_model", base_model_identity(cfg)),
           "the prompt template": ("prompt_template", cfg.prompt_template)}
    return [name for name, (key, value) in now.items() if record.get(key) != value]


def package_versions() -> dict[str, str]:
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions


def git_commit(path: Path) -> str | None:
    """HEAD of the git repository containing `path` (None outside a repository or without commits)."""
    try:
        out = subprocess.run(["git", "-C", str(path), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def prompt_fingerprint_of(cfg, tokenizer: Any) -> dict[str, str]:
    """The prompt format actually used in training, with the tokenizer (so `chat` gets a fingerprint too)."""
    fmt = PromptFormat(cfg.prompt_template, tokenizer)
    return {"prompt_template": cfg.prompt_template, "prompt_fingerprint": fmt.fingerprint}



def peak_memory_bytes(device: str) -> int:
    """Peak accelerator memory on CUDA, else the process's peak resident set size."""
    if device == "cuda":
        import torch

        return int(torch.cuda.max_memory_allocated())
    import resource

    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024


def provenance(cfg, tok_train, tok_valid, prompt_format, backend: str, device: str, trainer, train_output,
               history: dict, wall_time_s: float, resumed_from: str | None, pairs, pairs_valid,
               stages: list[dict[str, Any]]) -> dict[str, Any]:
    """The content of `adapterci-train.json` (schema documented in docs/train.md). `trainer` and `train_output`
    are the last stage's; `stages` records every stage run (`method`, `steps`, `epochs`, `train_loss`)."""
    state = trainer.state
    runtime = float(train_output.metrics.get("train_runtime") or wall_time_s)
    per_epoch = pairs.tokens if cfg.train.method != "sft" else tok_train.tokens
    tokens = per_epoch * float(state.epoch or 0)
    valid_losses = [loss for _, loss in history["valid"]]
    return {
        "schema_version": 1,
        "adapterci_version": __version__,
        "inputs_fingerprint": inputs_fingerprint(cfg),
        "base_model": base_model_identity(cfg),
        "prompt_template": cfg.prompt_template,
        "prompt_fingerprint": prompt_format.fingerprint,
        "data_fingerprint": _data_fingerprint(cfg),
        "method": cfg.train.method,
        "stages": stages,
        "rows": {"train": len(tok_train.rows), "valid": len(tok_valid.rows),
                 "pairs": len(pairs.rows), "valid_pairs": len(pairs_valid.rows),
                 "dropped": len(tok_train.dropped) + len(tok_valid.dropped) + len(pairs.dropped)
                 + len(pairs_valid.dropped),
                 "truncated": tok_train.truncated + tok_valid.truncated + pairs.truncated + pairs_valid.truncated},
        "config_hash": config_hash(cfg),
        "train_config": cfg.train.model_dump(mode="json"),
        "git_commit": git_commit(cfg.base_dir),
        "packages": package_versions(),
        "backend": backend,
        "device": device,
        "precision": "bf16" if trainer.args.bf16 else "fp16" if trainer.args.fp16 else "fp32",
        "world_size": int(trainer.args.world_size),
        "steps": int(state.global_step),
        "epochs": float(state.epoch or 0),
        "loss_history": history,
        "best_valid_loss": min(valid_losses) if valid_losses else None,
        "best_checkpoint_step": _step_of(state.best_model_checkpoint),
        "resumed_from_step": _step_of(resumed_from),
        "train_tokens": int(tokens),
        "wall_time_s": round(wall_time_s, 3),
        "train_runtime_s": round(runtime, 3),
        "tokens_per_s": round(tokens / runtime, 1) if runtime else 0.0,
        "peak_memory_bytes": peak_memory_bytes(device),
    }


def _step_of(checkpoint: str | None) -> int | None:
    return int(Path(checkpoint).name.rsplit("-", 1)[-1]) if checkpoint else None
