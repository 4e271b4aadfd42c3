"""Typed config of the `gate` section."""

from __future__ import annotations

from pydantic import Field

from adapterci.configbase import StrictModel


class GateConfig(StrictModel):
    """The release policy: rules over metrics of base, champion and candidate."""

    rules: list[str] = Field(default_factory=list, description="Rules such as `sentiment.exact_match >= base + 0.05` (see docs/gate.md).")
    significance: float = Field(0.05, gt=0, lt=1, description="A comparison between two models must be significant at this level to PASS.")
    min_items: int = Field(20, ge=1, description="Fewer eval items than this make a rule INCONCLUSIVE.")
