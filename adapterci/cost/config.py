"""Typed config of the `cost` section."""

from __future__ import annotations

from pydantic import Field, model_validator

from adapterci.configbase import StrictModel


class CostConfig(StrictModel):
    """Prices that turn a run's time and a baseline's longer prompts into money, and a cap on a run's cost."""

    currency: str = Field("USD", min_length=1, max_length=8, description="The unit every price is in (shown in reports).")
    hourly_rate: float | None = Field(None, ge=0, le=1_000_000, description="What an hour of the training runner costs: prices training and evaluation of a run.")
    per_million_prompt_tokens: float | None = Field(None, ge=0, le=1_000_000, description="What serving charges per million prompt tokens: prices the examples a prompt baseline sends with every request.")
    max_per_run: float | None = Field(None, gt=0, le=1_000_000_000, description="Stop training cleanly once the run's elapsed cost passes this (gate FAIL, nothing released; needs `hourly_rate`).")

    @model_validator(mode="after")
    def _cap_needs_rate(self) -> "CostConfig":
        if self.max_per_run is not None and not self.hourly_rate:
            raise ValueError("`max_per_run` needs a positive `hourly_rate` to price the run")
        return self
