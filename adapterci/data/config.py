"""Typed config of the `data` and `checks` sections."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, ValidationInfo, field_validator, model_validator

from adapterci.configbase import StrictModel, resolve_in_project
from adapterci.data.labels import same_reading

DataFormat = Literal["auto", "alpaca", "chat", "prompt_completion", "preference"]


class DataConfig(StrictModel):
    """Where the training data lives and how to read it."""

    train: str | list[str] = Field(description="Training JSONL: a file, a glob, or a list of them (relative to the config).")
    validation: str | list[str] | None = Field(None, description="Validation JSONL (file, glob or list). Exclusive with `validation_split`.")
    validation_split: float | None = Field(None, gt=0, lt=1, description="Hold out this fraction of `train` for validation (deterministic by content hash).")
    format: DataFormat = Field("auto", description="Row format: `alpaca` (instruction/input/output), `chat` (messages), `prompt_completion`, `preference` (prompt/chosen/rejected pairs), or `auto` (detected per row).")
    preferences: str | list[str] | None = Field(None, description="Preference pairs (`prompt`/`chosen`/`rejected` JSONL: file, glob or list) for the second stage of `train.method: sft+dpo`; `train` then holds the supervised rows of the first stage.")

    @field_validator("train", "validation", "preferences")
    @classmethod
    def _inside_project(cls, value: str | list[str] | None, info: ValidationInfo) -> str | list[str] | None:
        if isinstance(value, list) and not value:
            raise ValueError("an empty list: name at least one file or glob" + (
                "" if info.field_name == "train" else f" (or remove `{info.field_name}`)"))
        for pattern in [value] if isinstance(value, str) else value or []:
            if not pattern.strip():
                raise ValueError("an empty path: name a file or glob (relative to the config)")
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
    leakage_containment: float = Field(0.75, ge=0.5, le=1, description="A training row holding at least this share of the character 4-grams of an eval item's non-template words, near each other in any order and among any other text, leaks: a paraphrased copy (words inserted, swapped or replaced, case and punctuation changed). Items of under about 6 words are left to `leakage_ngram`.")
    max_longer_chosen_share: float = Field(0.8, gt=0, le=1, description="Largest share of preference pairs whose chosen answer is the longer one (length bias: pairs that teach verbosity).")
    max_chosen_length_ratio: float = Field(1.5, gt=0, le=1_000, description="Largest mean length ratio chosen/rejected over the preference pairs.")
    pii: bool = Field(True, description="Look for emails, phone numbers, card numbers and API keys/tokens.")

    @field_validator("labels")
    @classmethod
    def _distinct_labels(cls, value: list[str] | None) -> list[str] | None:
        return None if value is None else distinct_answers(value, "label", "remove `checks.labels` to skip the "
                                                                           "label checks")


def distinct_answers(values: list[str], what: str, empty_hint: str) -> list[str]:
    """`values` (labels, choices) when non-empty, none blank and no two reading the same (case, Unicode width,
    invisible characters, lookalike letters of other scripts); ValueError naming the pair otherwise."""
    if not values:
        raise ValueError(f"an empty list: name the {what}s, or {empty_hint}")
    if any(not v.strip() for v in values):
        raise ValueError(f"a {what} is empty or blank")
    if pair := same_reading(values):
        a, b = pair
        how = "is repeated" if a == b else f"and {b!r} read the same ({_difference(a, b)})"
        raise ValueError(f"{what} {a!r} {how}: every {what} must be distinct")
    return values


def _difference(a: str, b: str) -> str:
    """What tells two values that read the same apart: the characters of one the other lacks, named."""
    import unicodedata

    fa, fb = a.casefold(), b.casefold()
    odd = [c for c in b if c.casefold() not in fa] + [c for c in a if c.casefold() not in fb]
    odd = [c for c in odd if not c.isascii()] or odd  # name the lookalike, not the letter it imitates
    if not odd:
        return "they differ only in case or spacing"
    return "; ".join(f"U+{ord(c):04X} {unicodedata.name(c, 'an unnamed character')}" for c in dict.fromkeys(odd))
