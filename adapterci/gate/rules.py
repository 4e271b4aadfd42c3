"""The gate's rule language (documented in docs/gate.md):

    SUITE.METRIC OP EXPR          OP: >=  <=  >  <
    EXPR: NUMBER | MODEL | SUITE.METRIC, optionally followed by `+ NUMBER` or `- NUMBER`
    MODEL: base | champion | candidate  (the same SUITE.METRIC of that model)
           | a prompt baseline's name (eval.baselines) | best_prompt (the best baseline on that metric)

The left side is always the candidate's metric; a `SUITE.METRIC` on the right is the candidate's too (meant
for eval-set properties such as `sentiment.majority_rate`).

Canary rules (adapterci/canary) use the same grammar with the models `stable` only, and may scale the
model's value: `MODEL * NUMBER` (e.g. `latency.p95 <= stable * 1.10`); see `parse_rule(models=, scaling=)`."""

from __future__ import annotations

import functools
import math
import re
from dataclasses import dataclass
from typing import Literal

from adapterci.eval.metrics import metric_names

MODELS = ("base", "champion", "candidate")
BEST_PROMPT = "best_prompt"
ANY_NAME = (r"[a-z][a-z0-9_]*",)
"""`models` that parses any model name (for rules whose names were checked when the config was loaded)."""
_NUM = r"\d+(?:\.\d*)?(?:[eE][+-]?\d+)?|\.\d+(?:[eE][+-]?\d+)?"
_REF = r"[a-z][a-z0-9_]*\.[a-z0-9_]+"
SYNTAX = "expected `SUITE.METRIC OP EXPR` with OP one of >= <= > < and EXPR a number, {models} or SUITE.METRIC, optionally {extra}`+ NUMBER` or `- NUMBER`"


@functools.lru_cache(maxsize=None)
def _pattern(models: tuple[str, ...], scaling: bool) -> re.Pattern:
    factor = rf"(?:\s*\*\s*(?P<factor>{_NUM}))?" if scaling else ""
    return re.compile(
        rf"^\s*(?P<suite>[a-z][a-z0-9_]*)\.(?P<metric>[a-z0-9_]+)\s*(?P<op>>=|<=|>|<)\s*"
        rf"(?:(?P<number>-?(?:{_NUM}))|(?P<model>{'|'.join(models)}){factor}|(?P<ref>{_REF}))"
        rf"(?:\s*(?P<sign>[+-])\s*(?P<offset>{_NUM}))?\s*$"
    )


class RuleError(ValueError):
    """A rule that does not parse or names an unknown suite or metric."""


@dataclass(frozen=True)
class Rule:
    """One parsed rule: `candidate SUITE.METRIC OP factor * rhs + offset`, where rhs is a model's same metric,
    another metric of the candidate, or (kind `number`) 0. `factor` is 1 unless the rule scales a model."""

    text: str
    suite: str
    metric: str
    op: Literal[">=", "<=", ">", "<"]
    kind: Literal["number", "model", "metric"]
    offset: float
    model: str | None = None
    ref_suite: str | None = None
    ref_metric: str | None = None
    factor: float = 1.0

    @property
    def direction(self) -> Literal["greater", "less"]:
        """`greater` for >= and >, `less` for <= and <."""
        return "greater" if self.op.startswith(">") else "less"

    def holds(self, lhs: float, rhs: float) -> bool:
        return {">=": lhs >= rhs, "<=": lhs <= rhs, ">": lhs > rhs, "<": lhs < rhs}[self.op]

    def rhs_text(self) -> str:
        return self.text.split(self.op, 1)[1].strip()


def parse_rule(text: str, models: tuple[str, ...] = MODELS, scaling: bool = False) -> Rule:
    """Parse one rule; RuleError with the reason on bad syntax. `models` are the names allowed on the right;
    `scaling` allows `MODEL * NUMBER` (canary rules)."""
    m = _pattern(tuple(models), scaling).match(text)
    if not m:
        names = ", ".join(models)
        extra = "`* NUMBER` after the model, then " if scaling else ""
        raise RuleError(f"cannot parse rule {text!r}: {SYNTAX.format(models=names, extra=extra)}")
    offset = float(m["offset"]) * (-1 if m["sign"] == "-" else 1) if m["offset"] else 0.0
    common = dict(text=" ".join(text.split()), suite=m["suite"], metric=m["metric"], op=m["op"])
    for number in (m["number"], m["offset"], m["factor"] if scaling else None):
        if number is not None and not math.isfinite(float(number)):
            raise RuleError(f"rule {text!r}: {number.lstrip('-')} is too large to be a number (it reads as "
                            "infinity): write a finite number")
    if m["number"] is not None:
        if not math.isfinite(float(m["number"]) + offset):
            raise RuleError(f"rule {text!r}: the threshold {m['number']} {m['sign']} {m['offset']} is too large to "
                            "be a number: write a finite number")
        return Rule(kind="number", offset=float(m["number"]) + offset, **common)
    if m["model"]:
        factor = float(m["factor"]) if scaling and m["factor"] else 1.0
        return Rule(kind="model", offset=offset, model=m["model"], factor=factor, **common)
    ref_suite, ref_metric = m["ref"].split(".", 1)
    return Rule(kind="metric", offset=offset, ref_suite=ref_suite, ref_metric=ref_metric, **common)


def gate_models(eval_cfg) -> tuple[str, ...]:
    """The models a gate rule may name: base, champion, candidate and, with prompt baselines, each of them by
    name and `best_prompt`."""
    names = tuple(b.name for b in eval_cfg.baselines)
    return MODELS + ((*names, BEST_PROMPT) if names else ())


def check_rule(text: str, eval_cfg) -> str | None:
    """Why `text` is not a valid gate rule for this eval config (its suites and baselines), or None."""
    models = gate_models(eval_cfg)
    try:
        rule = parse_rule(text, models)
    except RuleError as exc:
        try:
            name = parse_rule(text, ANY_NAME).model
        except RuleError:
            return str(exc)
        if name == BEST_PROMPT:
            return f"rule {text!r}: `best_prompt` needs prompt baselines: add `eval.baselines`"
        if name in ("inf", "infinity", "nan"):
            return f"rule {text!r}: `{name}` is not a finite number: write a number, a model or SUITE.METRIC"
        return (f"rule {text!r}: unknown model or baseline `{name}` (rules compare with {', '.join(models)}; "
                "baselines are named in `eval.baselines`)")
    by_name = {s.name: s for s in eval_cfg.suites}
    for suite, metric in [(rule.suite, rule.metric)] + ([(rule.ref_suite, rule.ref_metric)] if rule.kind == "metric" else []):
        if suite not in by_name:
            known = ", ".join(sorted(by_name)) or "none configured"
            return f"rule {text!r}: unknown suite `{suite}` (suites: {known})"
        names = metric_names(by_name[suite].kind, by_name[suite].choices)
        if metric not in names:
            return f"rule {text!r}: unknown metric `{metric}` of {by_name[suite].kind} suite `{suite}` (metrics: {', '.join(names)})"
    return None
