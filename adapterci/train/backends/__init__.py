"""Training backends: each turns the configured base model into a trainable PEFT model, in the same shape.

A backend is a module exposing `load(spec: ModelSpec) -> (peft_model, tokenizer)`; training itself (TRL's
SFTTrainer) is shared. `choose_backend` is a pure function so the choice logic is testable everywhere."""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any, Protocol

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
            raise ConfigError("`train.backend`: unsloth is not installed (or fails to import): "
                              "`pip install 'adapterci[gpu]'` or use `train.backend: trl`", config_path)
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
