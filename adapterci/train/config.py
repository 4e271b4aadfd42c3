"""Typed config of the `train` section."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, field_validator

from adapterci.configbase import StrictModel


class LoraSettings(StrictModel):
    """LoRA adapter shape (PEFT `LoraConfig`)."""

    r: int = Field(16, ge=1, le=4096, description="Rank of the update matrices.")
    alpha: float = Field(32, gt=0, le=100_000, description="Scaling numerator (`lora_alpha`).")
    dropout: float = Field(0.05, ge=0, lt=1, description="Dropout on the LoRA input.")
    target_modules: str | list[str] = Field("all-linear", description="Modules to adapt: `all-linear` or a list of module names.")
    modules_to_save: list[str] | None = Field(None, description="Modules trained fully and saved with the adapter (e.g. `embed_tokens`, `lm_head`).")
    layers_to_transform: list[Annotated[int, Field(le=100_000)]] | None = Field(
        None, min_length=1,
        description="Adapt only these decoder layers (0-based indices; PEFT `layers_to_transform`), e.g. the last "
                    "few. Backward then stops at the lowest adapted layer: much faster on CPU. Default: every layer.")

    @field_validator("layers_to_transform")
    @classmethod
    def _layer_indices(cls, value: list[int] | None) -> list[int] | None:
        if value is None:
            return None
        if any(i < 0 for i in value):
            raise ValueError("layer indices must be >= 0")
        if len(set(value)) != len(value):
            raise ValueError("layer indices must be unique")
        return sorted(value)


class EarlyStopping(StrictModel):
    """Stop when validation loss stops improving; the best checkpoint is kept."""

    patience: int = Field(3, ge=1, le=100_000, description="Evaluations without improvement before stopping.")
    min_delta: float = Field(0.0, ge=0, le=1_000, description="Smallest decrease of validation loss that counts as improvement.")


Method = Literal["sft", "dpo", "orpo", "sft+dpo"]
PREFERENCE_METHODS = ("dpo", "orpo")


class PreferenceSettings(StrictModel):
    """The preference stage (`train.method` `dpo`, `orpo`, or the second stage of `sft+dpo`)."""

    beta: float = Field(0.1, gt=0, le=1_000, description="DPO: strength of the pull towards the reference model (the "
                                                         "base, or the SFT adapter in `sft+dpo`); ORPO: weight of the "
                                                         "odds-ratio term.")
    loss_type: Literal["sigmoid", "ipo", "hinge", "robust", "apo_zero"] = Field(
        "sigmoid", description="DPO loss (TRL `loss_type`): `sigmoid` is the DPO paper's; ignored by ORPO.")
    epochs: float | None = Field(None, gt=0, le=10_000, description="Passes over the pairs (default: `train.epochs`).")
    max_steps: int | None = Field(None, ge=1, le=100_000_000, description="Stop the preference stage after this many optimizer steps (default: `train.max_steps`).")
    learning_rate: float | None = Field(None, gt=0, le=1, description="Peak learning rate of the preference stage (default: `train.learning_rate`).")


class TrainConfig(StrictModel):
    """How the adapter is trained."""

    method: Method = Field("sft", description="`sft` (supervised rows), `dpo` or `orpo` (preference pairs in `data.train`), or `sft+dpo`: SFT on `data.train`, then DPO on `data.preferences` starting from that adapter (the SFT adapter is the DPO reference).")
    preference: PreferenceSettings = Field(default_factory=PreferenceSettings, description="Settings of the preference stage.")
    backend: Literal["auto", "unsloth", "trl"] = Field("auto", description="`unsloth` (CUDA only), `trl` (transformers+PEFT+TRL), or `auto`: unsloth on CUDA when installed, trl otherwise.")
    quantization: Literal["none", "4bit"] = Field("none", description="`4bit` trains a QLoRA adapter on an nf4 base (bitsandbytes, CUDA only).")
    lora: LoraSettings = Field(default_factory=LoraSettings)
    epochs: float = Field(3, gt=0, le=10_000, description="Passes over the training data (ignored when `max_steps` is set).")
    max_steps: int | None = Field(None, ge=1, le=100_000_000, description="Stop after this many optimizer steps.")
    learning_rate: float = Field(2e-4, gt=0, le=1, description="Peak learning rate.")
    lr_scheduler: Literal["linear", "cosine", "constant", "constant_with_warmup"] = Field("linear", description="Learning-rate schedule.")
    warmup: float = Field(0.0, ge=0, le=100_000_000, description="Warm-up: a fraction of the steps if < 1, else a number of steps.")
    weight_decay: float = Field(0.0, ge=0, le=10, description="AdamW weight decay.")
    batch_size: int = Field(8, ge=1, le=65_536, description="Rows per device per step.")
    gradient_accumulation: int = Field(1, ge=1, le=65_536, description="Steps accumulated per optimizer update.")
    max_length: int = Field(2048, ge=8, le=1_048_576, description="Longest training sequence in tokens.")
    overlength: Literal["drop", "truncate", "error"] = Field("error", description="What to do with rows longer than `max_length`.")
    packing: bool = Field(False, description="Pack rows into full sequences (padding-free).")
    completion_only_loss: bool = Field(True, description="Train only on the completion (answer) tokens.")
    seed: int = Field(42, ge=0, le=2**32 - 1, description="Seed for data order and initialisation; the same inputs give the same weights on CPU.")
    eval_steps: int | None = Field(None, ge=1, le=100_000_000, description="Evaluate validation loss every N steps (default: once per epoch).")
    save_steps: int | None = Field(None, ge=1, le=100_000_000, description="Write a checkpoint every N steps for `--resume` (default: once per epoch).")
    early_stopping: EarlyStopping | None = Field(None, description="Stop early on validation loss (off when absent).")
    precision: Literal["auto", "fp32", "bf16", "fp16"] = Field(
        "auto", description="Arithmetic of the forward and backward passes (the LoRA weights and optimizer stay "
                            "fp32): `auto` is bf16 where the hardware computes it natively (CUDA GPUs with bf16, CPUs "
                            "with AVX512-BF16 or AMX), fp16 on older CUDA GPUs, fp32 elsewhere.")
    gradient_checkpointing: bool = Field(False, description="Trade compute for memory on large models.")
    logging_steps: int = Field(10, ge=1, le=100_000_000, description="Log the training loss every N optimizer steps.")

    @property
    def stages(self) -> tuple[str, ...]:
        """The methods trained one after the other: (`sft`,), (`dpo`,), (`orpo`,) or (`sft`, `dpo`)."""
        return tuple(self.method.split("+"))


def method_config_problems(cfg) -> list[tuple[tuple, str]]:
    """(config key, why) where `train.method` and `data.preferences` disagree."""
    method, prefs = cfg.train.method, cfg.data.preferences
    if method == "sft+dpo" and prefs is None:
        return [(("train", "method"), "`sft+dpo` trains DPO on `data.preferences`: name the preference pairs there")]
    if method != "sft+dpo" and prefs is not None:
        where = "`data.train`" if method != "sft" else "nowhere (`sft` trains on `data.train`)"
        return [(("data", "preferences"), f"only `train.method: sft+dpo` reads it; `{method}` reads pairs from {where}")]
    return []

