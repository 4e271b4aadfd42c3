"""Typed config of the `data` and `checks` sections."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, ValidationInfo, field_validator, model_validator

from adapterci.configbase import StrictModel, resolve_in_project

DataFormat = Literal["auto", "alpaca", "chat", "prompt_completion"]


class DataConfig(StrictModel):
    """Where the training data lives and how to read it."""

    train: str | list[str] = Field(description="Training JSONL: a file, a glob, or a list of them (relative to the config).")
    validation: str | list[str] | None = Field(None, description="Validation JSONL (file, glob or list). Exclusive with `validation_split`.")
    validation_split: float | None = Field(None, gt=0, lt=1, description="Hold out this fraction of `train` for validation (deterministic by content hash).")
    format: DataFormat = Field("auto", description="Row format: `alpaca` (instruction/input/output), `chat` (messages), `prompt_completion`, or `auto` (detected per row).")

    @field_validator("train", "validation")
    @classmethod
    def _inside_project(cls, value: str | list[str] | None, info: ValidationInfo) -> str | list[str] | None:
        for pattern in [value] if isinstance(value, str) else value or []:
            resolve_in_project(pattern, info)
        return value

    def patterns(self, which: str) -> list[str]:
        """The file patterns of `train` or `validation` as a list."""
        value = getattr(self, which)
        return [value] if isinstance(value, str) else list(value or [])

    @model_validator(mode="after")
    def _one_validation_source(self) -> "DataConfig":
        if self.validation is not None and self.validation_split is not None:
            raise ValueError("`validation` and `validation_split` cannot both be set")
        return self


class ChecksConfig(StrictModel):
    """Thresholds of `adapterci check`."""

    min_rows: int = Field(50, ge=1, le=100_000_000, description="Fewest training rows accepted.")
    max_rows: int | None = Field(None, ge=1, le=100_000_000, description="Most training rows accepted (none: no limit).")
    min_chars: int = Field(1, ge=0, le=1_000_000, description="Shortest prompt or completion, in characters.")
    max_chars: int = Field(32_000, ge=1, le=1_000_000, description="Longest prompt or completion, in characters.")
    max_tokens: int | None = Field(None, ge=1, le=1_048_576, description="Longest rendered row in base-model tokens (default: `train.max_length`).")
    labels: list[str] | None = Field(None, description="Allowed label completions; enables the label value-set and balance checks.")
    max_label_share: float = Field(0.8, gt=0, le=1, description="Largest share one label may take among labelled rows.")
    max_unlabeled_share: float = Field(0.3, ge=0, le=1, description="Largest share of rows whose completion is not one of `labels` (e.g. refusals).")
    near_duplicate_threshold: float = Field(0.9, gt=0, le=1, description="Estimated Jaccard similarity (word shingles) at which two rows count as near duplicates.")
    leakage_ngram: int = Field(8, ge=3, le=100, description="A training row sharing a word n-gram of this length with an eval item (or containing a shorter item whole) leaks.")
    leakage_template_share: float = Field(0.05, gt=0, le=1, description="Word n-grams found in more than this share of a suite's items or of the training rows (and in at least 3) are template text, such as a shared instruction, and never count as leakage.")
    pii: bool = Field(True, description="Look for emails, phone numbers, card numbers and API keys/tokens.")
