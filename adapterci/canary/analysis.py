"""Canary vs stable on production request logs -> PROMOTE / ROLLBACK / CONTINUE, one reason per rule, and the
error types compared (docs/canary.md).

Every rule `KPI.METRIC OP factor * stable + offset` is judged on d = canary - threshold with an always-valid
confidence sequence (the normal-mixture SPRT, `stats.mixture_radius`) at `significance / len(rules)`: the rule
HOLDS when the whole sequence is on its passing side, is VIOLATED when it is on the failing side, else UNDECIDED.
Because the sequences are valid at every sample size at once, an hourly job may look as often as it likes.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Literal

import numpy as np

from adapterci import __version__
from adapterci.canary.config import CanaryConfig, parse_canary_rule
from adapterci.canary.logs import LogError, Requests, expand, load_logs
from adapterci.errors import UsageError
from adapterci.eval import stats
from adapterci.gate.rules import Rule
from adapterci.registry import open_registry
from adapterci.registry.base import MANIFEST
from adapterci.release import promote, retract_canary

Outcome = Literal["HOLDS", "VIOLATED", "UNDECIDED"]
Verdict = Literal["PROMOTE", "ROLLBACK", "CONTINUE"]
EXIT_CODES = {"PROMOTE": 0, "ROLLBACK": 1, "CONTINUE": 3}
METHOD = "always-valid confidence sequences: normal-mixture SPRT (Johari et al.), Bonferroni over rules"
_RATES = ("rate", "positive_rate", "negative_rate", "flag_rate")
CLOCK_SKEW_S = 300.0  # how far a log server's clock may be off the registry's before a row is out of the window
SHOWN_OUTSIDE = 3  # examples of each kind of out-of-window row named in the output


@dataclass
class RuleCheck:
    """How one rule fared. `interval`: the always-valid interval of d = canary - threshold (d >= 0 passes a
    `>=` rule, d <= 0 a `<=` rule)."""

    rule: str
    outcome: Outcome
    reason: str
    canary: float | None = None
    stable: float | None = None
    threshold: float | None = None
    interval: tuple[float, float] | None = None
    n_canary: int = 0
    n_stable: int = 0


@dataclass
class ErrorType:
    """One error type in both arms. `grew`: the canary's rate is higher, with always-valid confidence."""

    type: str
    canary: int
    stable: int
    canary_rate: float
    stable_rate: float
    new: bool
    grew: bool


@dataclass
class Arm:
    """One side of the comparison: the ref, its commit and version, and how many logged requests it served."""

    ref: str
    commit: str | None
    version: str | None
    requests: int = 0
    first: float | None = None
    last: float | None = None


@dataclass
class Window:
    """The canary's time in traffic: from its release (the version commit's date in the registry, else the
    manifest's `released_at`) to now, each end widened by CLOCK_SKEW_S. Rows outside it (logged before the
    canary existed, or in the future: a mis-set clock, a unit mix-up) are counted here and not analyzed, so one
    mis-dated row can neither age the canary past `max_age` nor count for either arm."""

    released_at: float | None
    now: float
    before_release: int = 0
    in_future: int = 0
    examples: list[str] = field(default_factory=list)

    @property
    def outside(self) -> int:
        return self.before_release + self.in_future

    def as_dict(self) -> dict[str, Any]:
        return {"from": _iso(self.released_at), "to": _iso(self.now), "clock_skew_s": CLOCK_SKEW_S,
                "before_release": self.before_release, "in_future": self.in_future, "examples": self.examples}


@dataclass
class CanaryDecision:
    verdict: Verdict
    reason: str
    canary: Arm
    stable: Arm
    rules: list[RuleCheck] = field(default_factory=list)
    errors: list[ErrorType] = field(default_factory=list)
    unknown: dict[str, int] = field(default_factory=dict)  # version value in the logs -> rows
    age_seconds: float | None = None
    settings: dict[str, Any] = field(default_factory=dict)
    acted: dict[str, Any] | None = None
    window: Window | None = None

    @property
    def exit_code(self) -> int:
        return EXIT_CODES[self.verdict]

    def to_json(self) -> dict[str, Any]:
        return {"adapterci_version": __version__, "verdict": self.verdict, "reason": self.reason,
                "version": self.canary.version, "canary": asdict(self.canary), "stable": asdict(self.stable),
                "rules": [asdict(r) for r in self.rules], "errors": [asdict(e) for e in self.errors],
                "unknown_versions": self.unknown, "age_seconds": self.age_seconds,
                "released_at": _iso(self.window.released_at) if self.window else None,
                "out_of_window": self.window.as_dict() if self.window else None, "method": METHOD,
                **self.settings, "acted": self.acted}


# --- the statistics (pure: the benchmark calls these per look) ---------------------------------------------------
def kpi_values(requests: Requests, kpi: str, metric: str) -> np.ndarray:
    """The per-request values a metric is computed on (requests without a value left out)."""
    if kpi == "errors":
        return (requests.errors != "").astype(float)
    column = getattr(requests, kpi)
    values = column[~np.isnan(column)]
    return 1 - values if metric == "negative_rate" else values


def estimate(values: np.ndarray, metric: str) -> tuple[float, float]:
    """(metric value, variance of the estimate)."""
    if metric in _RATES:
        return stats.rate_estimate(values)
    if metric == "mean":
        return stats.mean_estimate(values)
    return stats.quantile_estimate(values, int(metric[1:]) / 100)


def judge(rule: Rule, canary: Requests, stable: Requests, cc: CanaryConfig, alpha: float,
          sequential: bool = True) -> RuleCheck:
    """One rule on the two arms' requests; `sequential=False` is the fixed-horizon z-interval (for comparison)."""
    xc, xs = kpi_values(canary, rule.suite, rule.metric), kpi_values(stable, rule.suite, rule.metric)
    check = RuleCheck(rule.text, "UNDECIDED", "", n_canary=len(xc), n_stable=len(xs))
    name = f"{rule.suite}.{rule.metric}"
    if len(xc) == 0 or (rule.kind == "model" and len(xs) == 0):
        check.reason = f"no {rule.suite} values logged for {'the canary' if len(xc) == 0 else 'stable'} yet"
        return check
    check.canary, variance = estimate(xc, rule.metric)
    if rule.kind == "model":
        check.stable, var_s = estimate(xs, rule.metric)
        check.threshold, variance = rule.factor * check.stable + rule.offset, variance + rule.factor ** 2 * var_s
        against = f"stable {check.stable:.4g}" + (f" × {rule.factor:g}" if rule.factor != 1 else "") + (
            f" {'+' if rule.offset >= 0 else '-'} {abs(rule.offset):g}" if rule.offset else "")
    else:
        check.threshold, against = rule.offset, "the threshold"
    if not math.isfinite(variance):
        check.reason = f"{name}: too few values to estimate ({len(xc)} canary, {len(xs)} stable)"
        return check
    d = check.canary - check.threshold
    if sequential:
        horizon = variance * len(canary) / cc.horizon_requests  # the variance at the tuning horizon
        radius = stats.mixture_radius(variance, stats.mixture_tau2(horizon, alpha), alpha)
    else:
        radius = stats.fixed_radius(variance, alpha)
    check.interval = (d - radius, d + radius)
    passing, failing = (d - radius > 0, d + radius < 0) if rule.direction == "greater" else (d + radius < 0, d - radius > 0)
    value = f"{name} canary {check.canary:.4g} vs {check.threshold:.4g} ({against})"
    shown = f"canary − threshold in [{d - radius:+.3g}, {d + radius:+.3g}]"
    if failing:
        check.outcome, check.reason = "VIOLATED", f"{value}: violated ({shown})"
    elif passing:
        check.outcome, check.reason = "HOLDS", f"{value}: holds ({shown})"
    else:
        check.reason = f"{value}: undecided ({shown} includes 0)"
    return check


def compare_errors(canary: Requests, stable: Requests, cc: CanaryConfig) -> list[ErrorType]:
    """Each error type's counts and rates in both arms; `new` (not seen on stable), `grew` (higher on the canary
    with always-valid confidence at `significance / number of types`), most frequent on the canary first."""
    kinds = sorted(set(canary.errors[canary.errors != ""]) | set(stable.errors[stable.errors != ""]))
    alpha = cc.significance / max(len(kinds), 1)
    table = []
    for kind in kinds:
        xc, xs = (canary.errors == kind).astype(float), (stable.errors == kind).astype(float)
        (rc, vc), (rs, vs) = stats.rate_estimate(xc), stats.rate_estimate(xs)
        grew = False
        if len(xc) and len(xs):
            variance = vc + vs
            radius = stats.mixture_radius(variance, stats.mixture_tau2(variance * len(xc) / cc.horizon_requests, alpha), alpha)
            grew = rc - rs - radius > 0
        table.append(ErrorType(str(kind), int(xc.sum()), int(xs.sum()), rc if len(xc) else 0.0, rs if len(xs) else 0.0,
                               new=bool(xc.sum() > 0 and xs.sum() == 0), grew=bool(grew)))
    return sorted(table, key=lambda e: (-e.canary, -e.stable, e.type))


def evaluate(cc: CanaryConfig, canary: Requests, stable: Requests, age_seconds: float | None,
             sequential: bool = True) -> tuple[Verdict, str, list[RuleCheck]]:
    """The verdict of the rules on these requests: ROLLBACK if any rule is violated, PROMOTE if all hold (or the
    canary is older than `max_age` with none violated), else CONTINUE; nothing is decided before both arms have
    `min_requests` requests."""
    rules = [parse_canary_rule(text) for text in cc.rules]
    alpha = cc.significance / max(len(rules), 1)
    checks = [judge(rule, canary, stable, cc, alpha, sequential) for rule in rules]
    if min(len(canary), len(stable)) < cc.min_requests:
        return "CONTINUE", (f"waiting for canary.min_requests ({cc.min_requests}) on each side: "
                            f"canary has {len(canary)}, stable {len(stable)}"), checks
    violated = [c.rule for c in checks if c.outcome == "VIOLATED"]
    if violated:
        return "ROLLBACK", f"{len(violated)} rule(s) violated: {'; '.join(violated)}", checks
    undecided = [c.rule for c in checks if c.outcome == "UNDECIDED"]
    if not undecided:
        return "PROMOTE", f"all {len(checks)} rule(s) hold", checks
    limit = cc.max_age_seconds
    if limit is not None and age_seconds is not None and age_seconds >= limit:
        return "PROMOTE", (f"in traffic for {_duration(age_seconds)} (canary.max_age {cc.max_age}) with no rule "
                           f"violated; still undecided: {'; '.join(undecided)}"), checks
    return "CONTINUE", f"{len(undecided)} rule(s) undecided: {'; '.join(undecided)}", checks


# --- logs + registry -> decision -------------------------------------------------------------------------------
def analyze(cfg, logs: list[str] | None = None, registry=None, now: float | None = None) -> CanaryDecision:
    """Read the request logs (`logs`, else `canary.logs`), split them by the registry's `canary` and `stable`
    and judge the canary on the rows inside its window (`Window`: its release to `now`). LogError (exit 2) for
    bad rows; UsageError when no logs are configured; ConfigError naming `canary.logs[i]` for a config glob
    that matches nothing or reaches outside the repository (`--logs`, given by the operator, may name any file)."""
    cc: CanaryConfig = cfg.canary
    now = time.time() if now is None else now
    if logs:
        paths = expand(list(logs), Path.cwd())
    elif cc.logs:
        paths = []
        for i, pattern in enumerate(cc.logs):
            try:
                paths += [p for p in expand([pattern], cfg.base_dir, root=cfg.root) if p not in paths]
            except LogError as exc:
                raise cfg.error(f"canary.logs.{i}", str(exc)) from None
    else:
        raise UsageError("no request logs: pass --logs PATH or set `canary.logs` in the config")
    requests = load_logs(paths, cc.fields)
    reg = registry or open_registry(cfg)
    refs = reg.refs()
    tag_of = {sha: tag for tag, sha in refs.versions().items()}
    commits = {"canary": refs.target("canary"), "stable": refs.target("stable")}
    canary, stable = (Arm(ref, sha, tag_of.get(sha or "")) for ref, sha in commits.items())
    settings = {"significance": cc.significance, "min_requests": cc.min_requests, "max_age": cc.max_age,
                "registry": reg.url}
    if canary.commit is None or stable.commit is None:
        missing = "canary" if canary.commit is None else "stable"
        hint = "run `adapterci release`" if missing == "canary" else "promote the first release with `adapterci promote`"
        return CanaryDecision("CONTINUE", f"no `{missing}` in {reg.url} yet: {hint}", canary, stable, settings=settings)
    if canary.commit == stable.commit:
        return CanaryDecision("CONTINUE", f"`canary` and `stable` are the same commit ({canary.version or canary.commit[:12]}):"
                              " no canary in traffic", canary, stable, settings=settings)
    window = Window(release_time(reg, canary.commit), now)
    requests = _inside(requests, window)
    arm = _arm_of_rows(requests.version, canary, stable)
    unknown_values, counts = np.unique(requests.version[arm == ""], return_counts=True)
    sides = {name: requests.select(arm == name) for name in ("canary", "stable")}
    for name, info in (("canary", canary), ("stable", stable)):
        info.requests = len(sides[name])
        if info.requests:
            info.first, info.last = float(sides[name].timestamp.min()), float(sides[name].timestamp.max())
    age = None
    if canary.first is not None and window.released_at is not None:  # unknown release time: no age, no max_age
        age = max(0.0, float(requests.timestamp.max()) - window.released_at)
    verdict, reason, checks = evaluate(cc, sides["canary"], sides["stable"], age)
    if window.outside:
        reason += f" ({window.outside} row(s) outside the canary's window not analyzed)"
    return CanaryDecision(verdict, reason, canary, stable, checks, compare_errors(sides["canary"], sides["stable"], cc),
                          {str(v): int(c) for v, c in zip(unknown_values, counts)}, age, settings, window=window)


def release_time(reg, commit: str) -> float | None:
    """When `commit` was released: its commit date in the registry, else the `released_at` of its manifest."""
    date = next((c.date for c in reg.commits() if c.id == commit), None)
    if (stamp := _parse_time(date)) is not None:
        return stamp
    manifest = manifest_json(reg.read_file(commit, MANIFEST))
    return _parse_time(manifest.get("released_at"))


def manifest_json(raw: bytes | None) -> dict[str, Any]:
    try:
        data = json.loads(raw) if raw else {}
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def _parse_time(text: Any) -> float | None:
    if not isinstance(text, str) or not text:
        return None
    try:
        stamp = datetime.fromisoformat(text)
    except ValueError:
        return None
    return (stamp if stamp.tzinfo else stamp.replace(tzinfo=timezone.utc)).timestamp()


def _inside(requests: Requests, window: Window) -> Requests:
    """The rows inside the window; the others counted in `window` with a few examples (file:line and why)."""
    ts = requests.timestamp
    start = window.released_at - CLOCK_SKEW_S if window.released_at is not None else -math.inf
    before, future = ts < start, ts > window.now + CLOCK_SKEW_S
    window.before_release, window.in_future = int(before.sum()), int(future.sum())
    where = requests.where if requests.where is not None else np.array(["a row"] * len(requests), dtype=object)
    for mask, why in ((before, f"before the canary's release at {_iso(window.released_at)}"),
                      (future, f"in the future (now is {_iso(window.now)})")):
        for i in np.flatnonzero(mask)[:SHOWN_OUTSIDE]:
            window.examples.append(f"{where[i]}: {_iso(float(ts[i]))} is {why}")
    return requests.select(~(before | future))


def _iso(seconds: float | None) -> str | None:
    if seconds is None:
        return None
    try:
        return datetime.fromtimestamp(seconds, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    except (OverflowError, OSError, ValueError):
        return f"{seconds:.6g} s after 1970"


def act(cfg, decision: CanaryDecision, registry=None):
    """Carry out the verdict through the registry: PROMOTE moves `stable` to the analyzed canary version, ROLLBACK
    moves `canary` back to stable (each only while `canary` still points at the analyzed commit); CONTINUE does
    nothing. Both are the registry's idempotent operations (adapterci.release). Returns the RefMove or None."""
    if decision.verdict == "PROMOTE":
        if decision.canary.version is None:
            raise UsageError(f"the canary commit {decision.canary.commit} has no version tag: promote it by hand")
        move = promote(cfg, decision.canary.version, registry=registry, canary=decision.canary.commit)
    elif decision.verdict == "ROLLBACK":
        move = retract_canary(cfg, decision.canary.commit, registry=registry)
    else:
        return None
    decision.acted = move.as_dict()
    return move


def _arm_of_rows(versions: np.ndarray, canary: Arm, stable: Arm) -> np.ndarray:
    """Per row: `canary`, `stable` or "" (unknown). A row names a version tag, a commit id (7+ hex digits,
    a prefix is enough) or the ref name itself."""
    values, inverse = np.unique(versions, return_inverse=True)
    names = np.array([_side(str(v), canary, stable) for v in values], dtype=object)
    return names[inverse] if len(values) else np.array([], dtype=object)


def _side(value: str, canary: Arm, stable: Arm) -> str:
    for info in (canary, stable):
        if value == info.ref or value == info.version or (
                len(value) >= 7 and info.commit and info.commit.startswith(value.lower())):
            return info.ref
    return ""


def _duration(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds / size:.1f}{unit}"
    return f"{seconds:.0f}s"
