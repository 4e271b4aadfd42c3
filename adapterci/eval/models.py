"""The models an evaluation compares: base, champion and candidate, each with its adapter directory,
its prompt format (the one recorded at training time) and a content fingerprint for the cache."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from adapterci.adapterdir import TRAIN_JSON, adapter_files, content_digest, training_record
from adapterci.errors import ConfigError, RegistryError, UsageError
from adapterci.fingerprint import hash_json
from adapterci.fsio import staged_dir
from adapterci.modelio import base_model_identity
from adapterci.prompting import PromptFormat
from adapterci.registry import open_registry
from adapterci.reuse import policy
from adapterci.runs import cache_dir


@dataclass(frozen=True)
class ModelSpec:
    """One model to evaluate. `adapter` is None for the base model."""

    role: str
    adapter: Path | None
    source: str  # what the user named: a path, a registry ref (with its version), or the base model id
    prompt_template: str
    fingerprint: str
    baseline: dict[str, Any] | None = None  # a prompt baseline's settings (eval.baselines): the base model + them

    def describe(self) -> dict[str, Any]:
        out = {"source": self.source, "adapter": str(self.adapter) if self.adapter else None,
               "fingerprint": self.fingerprint, "prompt_template": self.prompt_template}
        return out | ({"baseline": self.baseline} if self.baseline else {})


def base_fingerprint(cfg) -> str:
    return hash_json(base_model_identity(cfg))


def adapter_fingerprint(base_fp: str, adapter: Path) -> str:
    return hash_json({"base": base_fp, "adapter": content_digest(adapter)})


def resolve_adapter(cfg, value: str | Path, role: str) -> tuple[Path, str] | None:
    """An adapter directory, or a registry ref (`stable`, `canary`, `vX.Y.Z`) downloaded into the eval cache.
    Returns (directory, description); None when the ref does not exist in the registry (yet)."""
    path = Path(value)
    if path.is_dir():
        if not (path / "adapter_config.json").is_file():
            raise UsageError(f"{role} {path} is not a PEFT adapter directory (no adapter_config.json)")
        adapter_files(path)  # regular files only, safetensors weights (never a pickle)
        return path.resolve(), str(value)
    if path.is_absolute() or "/" in str(value) or str(value).startswith("."):
        raise UsageError(f"{role} adapter directory not found: {value}")

    registry = open_registry(cfg.registry_location())
    version = registry.resolve(str(value))
    if version is None:
        return None
    dest = cache_dir(cfg, "eval") / "adapters" / version.commit
    reuse = policy(cfg)  # a trusted CI run downloads again what it may not reuse (a job could have swapped it)
    if not (reuse.reusable_dir("champion", version.commit, dest) and (dest / "adapter_config.json").is_file()):
        try:
            with staged_dir(dest) as tmp:
                registry.download(str(value), tmp)
                reuse.seal_dir("champion", version.commit, tmp)
        except OSError as exc:
            raise RegistryError(f"cannot download {role} {value!r}: {exc}") from None
    adapter_files(dest)  # what a registry holds is checked like a local directory
    return dest, f"{value} ({version.version})" if str(value) != version.version else str(value)


def trained_prompt(adapter: Path, role: str) -> dict[str, Any]:
    """The prompt template and fingerprint recorded by `adapterci train` in the adapter directory."""
    meta = training_record(adapter) or {}
    try:
        return {"prompt_template": meta["prompt_template"], "prompt_fingerprint": meta["prompt_fingerprint"]}
    except KeyError:
        raise UsageError(f"{role} adapter {adapter} has no readable {TRAIN_JSON} recording its prompt format: "
                         "evaluate adapters trained by `adapterci train`") from None


def check_prompt(cfg, tokenizer, adapter: Path, role: str, must_match_config: bool) -> str:
    """The prompt template to evaluate `adapter` with: the one it was trained with. For the candidate it must be
    the config's (`must_match_config`); a mismatch is a ConfigError (exit 2)."""
    recorded = trained_prompt(adapter, role)
    current = PromptFormat(cfg.prompt_template, tokenizer).fingerprint
    if must_match_config and recorded["prompt_fingerprint"] != current:
        raise ConfigError(
            f"`prompt_template`: the {role} adapter {adapter} was trained with prompt template "
            f"{_short(recorded['prompt_template'])} (fingerprint {recorded['prompt_fingerprint'][:12]}), but the config "
            f"renders {_short(cfg.prompt_template)} (fingerprint {current[:12]}): retrain the adapter or restore the template",
            str(cfg.path))
    template = recorded["prompt_template"]
    if PromptFormat(template, tokenizer).fingerprint != recorded["prompt_fingerprint"]:
        raise ConfigError(f"the {role} adapter {adapter} records prompt template {_short(template)}, which renders "
                          "differently with this base model's tokenizer: it was trained on another base", str(cfg.path))
    return template


def _short(template: str) -> str:
    return repr(template if len(template) <= 40 else template[:37] + "...")
