"""Training backends: each turns the configured base model into a trainable PEFT model, in the same shape.

A backend is a module exposing `load(spec: ModelSpec) -> (peft_model, tokenizer)`; training itself (TRL's
SFTTrainer) is shared. `choose_backend` is a pure function so the choice logic is testable everywhere."""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any, Protocol

from adapterci.distribution import REPOSITORY, installed_origin, requirement
from adapterci.errors import ConfigError
from adapterci.train.config import LoraSettings

BACKENDS = {"trl": "adapterci.train.backends.trl", "unsloth": "adapterci.train.backends.unsloth"}


@dataclass(frozen=True)
class ModelSpec:
    """What a backend needs to build the trainable model."""

    ref: str  # local directory or Hub id
    revision: str | None
    lora: LoraSettings
    quantization: str  # none | 4bit
    max_length: int
    gradient_checkpointing: bool
    seed: int
    device: str  # cpu | cuda
    precision: str = "fp32"  # fp32 | bf16 | fp16 (from `choose_precision`)


class SettingError(ValueError):
    """A backend refused one setting of `train` (not the base model): `key` names it (e.g. `train.lora.r`)."""

    def __init__(self, key: str, message: str):
        self.key = key
        super().__init__(message)


def lora_key(message: str) -> str:
    """The `train.lora` key a PEFT error message is about (PEFT raises ValueError for every LoRA setting)."""
    for key in ("layers_to_transform", "modules_to_save", "target_modules"):
        if key in message or (key == "target_modules" and "Target module" in message):
            return f"train.lora.{key}"
    return "train.lora"


def check_module_names(model, lora: LoraSettings) -> None:
    """Every name of `train.lora.modules_to_save` and of a `train.lora.target_modules` list must match a module
    of the model the way PEFT matches it (modules to save: the end of a module's dotted name; targets: the name
    or its last dotted parts). PEFT silently skips a name that matches nothing when another name matches."""
    modules = [name for name, _ in model.named_modules() if name]
    lists = [("train.lora.modules_to_save", lora.modules_to_save, lambda m, n: m.endswith(n))]
    if isinstance(lora.target_modules, list):
        lists.append(("train.lora.target_modules", lora.target_modules, lambda m, n: m == n or m.endswith("." + n)))
    for key, names, matches in lists:
        missing = [n for n in names or [] if not any(matches(m, n) for m in modules)]
        if missing:
            last = sorted({m.rsplit(".", 1)[-1] for m in modules if not m.rsplit(".", 1)[-1].isdigit()})
            shown = ", ".join(last[:30]) + (" ..." if len(last) > 30 else "")
            raise SettingError(key, f"the base model has no module named {', '.join(map(repr, missing))} (its "
                                    f"module names end in: {shown})")


class Backend(Protocol):
    name: str

    def load(self, spec: ModelSpec) -> tuple[Any, Any]:
        """The PEFT-wrapped model and its tokenizer."""


def choose_backend(requested: str, quantization: str, cuda_available: bool, unsloth_importable: bool,
                   config_path: str | None = None) -> str:
    """`trl` or `unsloth` for a requested backend; ConfigError (exit 2) for a choice this machine cannot run."""
    if quantization == "4bit" and not cuda_available:
        raise ConfigError("`train.quantization`: 4bit (QLoRA with bitsandbytes nf4) needs a CUDA GPU; "
                          "none is available: set `train.quantization: none`", config_path)
    if requested == "unsloth":
        if not cuda_available:
            raise ConfigError("`train.backend`: unsloth needs a CUDA GPU; none is available: "
                              "use `train.backend: trl` or `auto`", config_path)
        if not unsloth_importable:
            origin = installed_origin() or (REPOSITORY, "COMMIT")
            raise ConfigError("`train.backend`: unsloth is not installed (or fails to import): install adapterci "
                              f"with the `gpu` extra (`pip install \"{requirement(*origin, extras='[gpu]')}\"`) or "
                              "use `train.backend: trl`", config_path)
        return "unsloth"
    if requested == "auto":
        return "unsloth" if cuda_available and unsloth_importable else "trl"
    return requested


def choose_precision(requested: str, cuda: bool, cuda_bf16: bool, cpu_bf16: bool,
                     config_path: str | None = None) -> str:
    """`fp32`, `bf16` or `fp16` for `train.precision`; ConfigError (exit 2) for arithmetic this machine lacks."""
    if requested == "auto":
        if cuda:
            return "bf16" if cuda_bf16 else "fp16"
        return "bf16" if cpu_bf16 else "fp32"
    if requested == "fp16" and not cuda:
        raise ConfigError("`train.precision`: fp16 training needs a CUDA GPU; use `bf16`, `fp32` or `auto`", config_path)
    if requested == "bf16" and cuda and not cuda_bf16:
        raise ConfigError("`train.precision`: this GPU has no bf16; use `fp16`, `fp32` or `auto`", config_path)
    return requested


def training_precision(cfg) -> str:
    """`train.precision` resolved on this machine."""
    import torch

    cuda = torch.cuda.is_available()
    return choose_precision(cfg.train.precision, cuda, cuda and torch.cuda.is_bf16_supported(),
                            not cuda and cpu_has_bf16(), str(cfg.path))


def cpu_has_bf16() -> bool:
    """Whether this CPU computes bf16 natively (AVX512-BF16 or AMX): there bf16 matmuls are 2-3x fp32's speed."""
    import torch

    probes = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")  # private torch API: absent means no
    return any(getattr(torch.cpu, name, lambda: False)() for name in probes)


def unsloth_importable() -> bool:
    """Whether `import unsloth` works (only asked on CUDA machines: it is slow and noisy)."""
    try:
        importlib.import_module("unsloth")
    except Exception:  # unsloth raises many kinds of errors on unsupported machines
        return False
    return True


def get_backend(name: str) -> Backend:
    return importlib.import_module(BACKENDS[name])  # type: ignore[return-value]
