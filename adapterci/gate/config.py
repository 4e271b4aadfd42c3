"""Typed config of the `gate` section."""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator, Field, field_validator

from adapterci.configbase import StrictModel
from adapterci.gate.rules import ANY_NAME, check_rule, parse_rule


def _parses(text: str) -> str:
    parse_rule(text, ANY_NAME)  # RuleError is a ValueError: reported with the rule's key and line; names are
    return text                 # checked against the eval config by `rule_problems`


NO_RULES = ("no rules: a release policy without rules would pass every adapter; add at least one rule such as "
            "`SUITE.METRIC >= base + 0.05` (docs/gate.md)")


class GateConfig(StrictModel):
    """The release policy: rules over metrics of base, champion and candidate (at least one rule)."""

    rules: list[Annotated[str, AfterValidator(_parses)]] = Field(
        description="Rules such as `sentiment.exact_match >= base + 0.05` (see docs/gate.md); every rule must hold. "
                    "At least one: a policy without rules would pass every adapter.",
    )
    significance: float = Field(0.05, gt=0, lt=1, description="A rule must hold at this significance level (one-sided test) to PASS; holding on the point estimate only is INCONCLUSIVE.")
    min_items: int = Field(20, ge=1, le=100_000_000, description="A suite with fewer eval items than this makes its rules INCONCLUSIVE.")
    bootstrap_resamples: int = Field(2000, ge=100, le=20_000, description="Paired bootstrap resamples for metrics that are not a rate of 0/1 outcomes (macro-F1, per-label scores).")

    @field_validator("rules")
    @classmethod
    def _some_rules(cls, value: list[str]) -> list[str]:
        if not value:
            raise ValueError(NO_RULES)
        return value

    def rule_problems(self, eval_cfg) -> list[tuple[int, str]]:
        """(index, reason) of every rule naming an unknown suite, metric, model or baseline of `eval_cfg`."""
        return [(i, why) for i, rule in enumerate(self.rules) if (why := check_rule(rule, eval_cfg))]
