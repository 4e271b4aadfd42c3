"""Typed config of the `canary` section: traffic share, where the request logs are, how their fields are named,
and the rules (the gate's rule language, against `stable`) that decide PROMOTE / ROLLBACK / CONTINUE."""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import AfterValidator, Field, field_validator

from adapterci.configbase import StrictModel
from adapterci.gate.rules import RuleError, parse_rule

# KPI -> its metrics, the names canary rules use (`KPI.METRIC`); see docs/canary.md.
KPIS: dict[str, tuple[str, ...]] = {
    "latency": ("mean", "p50", "p90", "p95", "p99"),
    "errors": ("rate",),
    "feedback": ("positive_rate", "negative_rate"),
    "success": ("rate",),
    "safety": ("flag_rate",),
}
REFERENCE = ("stable",)
DEFAULT_RULES = [
    "feedback.positive_rate >= stable - 0.02",
    "errors.rate <= stable + 0.005",
    "latency.p95 <= stable * 1.10",
    "safety.flag_rate <= stable",
]
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$")
_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
MAX_DURATION_S = 520 * 604800  # ten years


def parse_canary_rule(text: str):
    """Parse a canary rule (`KPI.METRIC OP stable [* F] [± N]` or `... OP NUMBER`); RuleError says why not."""
    rule = parse_rule(text, models=REFERENCE, scaling=True)
    if rule.kind == "metric":
        raise RuleError(f"rule {text!r}: a canary rule compares with `stable` or a number, not with another metric")
    if rule.suite not in KPIS:
        raise RuleError(f"rule {text!r}: unknown KPI `{rule.suite}` (KPIs: {', '.join(KPIS)})")
    if rule.metric not in KPIS[rule.suite]:
        raise RuleError(f"rule {text!r}: unknown metric `{rule.metric}` of `{rule.suite}` "
                        f"(metrics: {', '.join(KPIS[rule.suite])})")
    return rule


def _parses(text: str) -> str:
    parse_canary_rule(text)  # RuleError is a ValueError: reported with the rule's key and line
    return text


def duration_seconds(text: str) -> float:
    """`30m`, `12h`, `7d`, `2w` (or seconds `90s`) -> seconds, at most MAX_DURATION_S; ValueError otherwise."""
    m = _DURATION.match(text)
    if not m:
        raise ValueError(f"{text!r} is not a duration: use a number with s, m, h, d or w (e.g. `7d`)")
    seconds = float(m[1]) * _SECONDS[m[2]]
    if not seconds <= MAX_DURATION_S:  # also a number of 400 digits, which is infinite as a float
        raise ValueError(f"{text!r} is longer than a canary may run ({MAX_DURATION_S // _SECONDS['w']:.0f}w)")
    return seconds


class LogFields(StrictModel):
    """Where each schema field is in your request logs (a column or JSON key). `null`: your logs lack it."""

    timestamp: str = Field("timestamp", description="When the request was served: ISO 8601 or Unix seconds (epoch milli-, micro- or nanoseconds are recognised by magnitude).")
    version: str = Field("adapter_version", description="Which adapter served it: a version tag, a commit id (7+ hex digits), or `canary` / `stable`.")
    latency: str | None = Field("latency_ms", description="Latency (a number >= 0; empty: not measured).")
    errors: str | None = Field("error_type", description="Error type of a failed request; empty or null: no error.")
    feedback: str | None = Field("feedback", description="User feedback: positive (1, true, up, positive) or negative (0, -1, false, down, negative); empty: none given.")
    success: str | None = Field("task_success", description="Task success: true/false or 1/0; empty: not assessed.")
    safety: str | None = Field("safety_flag", description="Safety flag raised: true/false or 1/0; empty: not assessed.")
    request_id: str | None = Field("request_id", description="The request's id (`adapterci harvest`: provenance of a queue item, and the key into `--payloads`).")
    prompt: str | None = Field("prompt", description="The prompt the model was sent (`adapterci harvest`; or in a `--payloads` file).")
    response: str | None = Field("response", description="The model's answer (`adapterci harvest`: the draft a reviewer corrects).")
    category: str | None = Field("category", description="A category of the request, when your logs have one (`adapterci harvest` groups failures by it).")


class CanaryConfig(StrictModel):
    """Canary analysis: production KPIs of canary vs stable decide promote or rollback (docs/canary.md)."""

    traffic: float = Field(0.1, gt=0, lt=1, description="Share of requests the router sends to the canary (serving.json).")
    logs: list[str] = Field(default_factory=list, description="Request log files or globs (JSONL, CSV or Parquet), relative to the config and inside the repository (symlinks resolved); `--logs` overrides.")
    fields: LogFields = Field(default_factory=LogFields, description="Field names of your logs for each schema field.")
    rules: list[Annotated[str, AfterValidator(_parses)]] = Field(
        default_factory=lambda: list(DEFAULT_RULES),
        description="Rules such as `latency.p95 <= stable * 1.10` (KPI.METRIC of the canary against stable); every rule must hold to PROMOTE, one violated rule is a ROLLBACK.",
    )
    significance: float = Field(0.05, gt=0, lt=1, description="Chance of any wrong decision over all rules and all looks (always-valid confidence sequences).")
    min_requests: int = Field(1000, ge=1, le=1_000_000_000, description="Requests each of canary and stable must have served before any decision.")
    max_age: str | None = Field("7d", description="Time in traffic (the canary version's release in the registry to the newest logged request, rows dated before it or in the future left out) after which a canary with no violated rule is promoted; null: only on proof.")
    horizon_requests: int = Field(10000, ge=10, le=1_000_000_000, description="Canary request count at which the confidence sequences are tightest (they stay valid at every count).")

    @field_validator("max_age")
    @classmethod
    def _max_age(cls, value: str | None) -> str | None:
        if value is not None:
            duration_seconds(value)
        return value

    @property
    def max_age_seconds(self) -> float | None:
        return duration_seconds(self.max_age) if self.max_age is not None else None

    def rule_problems(self) -> list[tuple[int, str]]:
        """(index, reason) of every rule on a KPI whose field is mapped to null."""
        found = []
        for i, text in enumerate(self.rules):
            kpi = parse_canary_rule(text).suite
            if getattr(self.fields, kpi) is None:
                found.append((i, f"rule {text!r}: `canary.fields.{kpi}` is null (your logs have no {kpi} field)"))
        return found
