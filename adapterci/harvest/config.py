"""Typed config of the `harvest` section: where reviewed failures go and what share becomes eval items."""

from __future__ import annotations

from pydantic import Field, ValidationInfo, field_validator

from adapterci.configbase import StrictModel, resolve_in_project


class HarvestConfig(StrictModel):
    """`adapterci harvest` and `adapterci ingest` (docs/harvest.md)."""

    holdout: float = Field(0.3, gt=0, lt=1, description="Share of the reviewed items of each cluster that `ingest` makes eval items (the rest become training rows).")
    train_file: str | None = Field(None, description="JSONL file (relative to the config) that `ingest` appends training rows to; it must be one of `data.train`'s files. Default: `data.train` when it names one file.")
    eval_suite: str | None = Field(None, description="Name of the task suite (`eval.suites`) whose file `ingest` appends eval items to. Default: the first task suite.")
    queue: str = Field(".adapterci/harvest", description="Directory (relative to the config) that `harvest` writes the labeling queue to; `--out` overrides.")

    @field_validator("train_file", "queue")
    @classmethod
    def _inside_project(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is not None:
            if not value.strip():
                raise ValueError("an empty path: name a file relative to the config")
            resolve_in_project(value, info)
        return value
