"""Statistics of the gate and the eval report: exact binomial tests, Clopper-Pearson intervals, the exact
McNemar test (with a margin) and paired bootstrap intervals; and for canary analysis, always-valid confidence
sequences (the normal-mixture SPRT) over asymptotically normal estimates. scipy is imported inside the functions."""

from __future__ import annotations

import math
from typing import Callable, Literal

import numpy as np

Alternative = Literal["greater", "less", "two-sided"]
BOOTSTRAP_RESAMPLES = 2000
BOOTSTRAP_SEED = 0


def binomial_pvalue(k: int, n: int, p0: float, alternative: Alternative) -> float:
    """Exact binomial test of `k` successes in `n` trials against success rate `p0`.

    `greater`: H0 rate <= p0; `less`: H0 rate >= p0. A `p0` at or beyond 0 or 1 is handled exactly: beyond,
    H0 is impossible on one side (`greater` with p0 < 0, `less` with p0 > 1: p-value 0) and certain on the
    other; at 0 or 1 only one outcome is possible under H0 (`greater` with p0 = 0: p-value 0 if k > 0)."""
    if n <= 0:
        return 1.0
    if p0 < 0.0 or p0 > 1.0:  # scipy accepts only [0, 1]; at 0 and 1 it is exact already
        certain = (alternative == "greater") == (p0 > 1.0)
        return 1.0 if certain and alternative != "two-sided" else 0.0
    from scipy.stats import binomtest

    return float(binomtest(int(k), int(n), float(p0), alternative=alternative).pvalue)


def clopper_pearson(k: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """The exact (Clopper-Pearson) two-sided interval for a binomial proportion; (0, 1) when n is 0.

    Each bound is scipy's exact one-sided bound at level (1 + confidence) / 2, which is what its two-sided
    `proportion_ci(confidence, method="exact")` computes too. Taken one side at a time, a confidence below 0 (the
    gate's 1 - 2 * significance for a significance above 0.5) gives crossed bounds (lo > hi) instead of an error."""
    if n <= 0:
        return 0.0, 1.0
    from scipy.stats import binomtest

    one_sided = (1 + confidence) / 2
    lo = binomtest(int(k), int(n), alternative="greater").proportion_ci(one_sided, method="exact").low
    hi = binomtest(int(k), int(n), alternative="less").proportion_ci(one_sided, method="exact").high
    return float(lo), float(hi)


def discordant(x: np.ndarray, y: np.ndarray) -> tuple[int, int]:
    """(b, c): items where only `x` is 1, and items where only `y` is 1."""
    x, y = np.asarray(x, bool), np.asarray(y, bool)
    return int(np.sum(x & ~y)), int(np.sum(~x & y))


def mcnemar_exact(b: int, c: int, alternative: Alternative = "two-sided") -> float:
    """Exact McNemar test: `b` ~ Binomial(b + c, 1/2) under H0 (no difference). 1.0 without discordant pairs."""
    return binomial_pvalue(b, b + c, 0.5, alternative) if b + c else 1.0


def paired_binary_pvalue(x: np.ndarray, y: np.ndarray, margin: float, alternative: Literal["greater", "less"]) -> float:
    """Exact conditional (McNemar) test of mean(x) - mean(y) against `margin` on paired 0/1 outcomes.

    Conditional on the m discordant pairs, the difference is (b - c) / n, so `diff > margin` means
    b / m > 1/2 + margin * n / (2m): `b` is tested against that shifted rate. margin 0 is McNemar's exact test.
    `greater`: H0 diff <= margin; `less`: H0 diff >= margin."""
    n = len(x)
    b, c = discordant(x, y)
    m = b + c
    if n == 0:
        return 1.0
    if m == 0:  # the difference is exactly 0 on these items
        holds = 0 > margin if alternative == "greater" else 0 < margin
        return 0.0 if holds else 1.0
    return binomial_pvalue(b, m, 0.5 + margin * n / (2 * m), alternative)


def bootstrap_indices(n: int, resamples: int = BOOTSTRAP_RESAMPLES, seed: int = BOOTSTRAP_SEED) -> np.ndarray:
    """(resamples, n) item indices drawn with replacement, reproducibly."""
    return np.random.default_rng(seed).integers(0, n, size=(resamples, n)) if n else np.zeros((resamples, 0), int)


def bootstrap_pvalue(samples: np.ndarray, threshold: float, alternative: Literal["greater", "less"]) -> float:
    """One-sided bootstrap p-value: the share of resampled statistics on the wrong side of `threshold`
    (add-one corrected, so never 0). `greater`: H0 statistic <= threshold."""
    samples = np.asarray(samples, float)
    samples = samples[~np.isnan(samples)]
    if samples.size == 0:
        return 1.0
    wrong = np.sum(samples <= threshold) if alternative == "greater" else np.sum(samples >= threshold)
    return float((1 + wrong) / (1 + samples.size))


def percentile_interval(samples: np.ndarray, confidence: float = 0.95) -> tuple[float, float]:
    """The percentile interval of bootstrap samples (NaNs dropped)."""
    samples = np.asarray(samples, float)
    samples = samples[~np.isnan(samples)]
    if samples.size == 0:
        return float("nan"), float("nan")
    tail = (1 - confidence) / 2 * 100
    lo, hi = np.percentile(samples, [tail, 100 - tail])
    return float(lo), float(hi)


def paired_bootstrap(statistic: Callable[[np.ndarray], np.ndarray], n: int,
                     resamples: int = BOOTSTRAP_RESAMPLES, seed: int = BOOTSTRAP_SEED) -> np.ndarray:
    """Bootstrap samples of `statistic(indices)`, where `statistic` maps a (resamples, n) index array to one
    value per row. Pairing comes from using the same indices for both models inside `statistic`."""
    return np.asarray(statistic(bootstrap_indices(n, resamples, seed)), float)


# --- always-valid inference (canary analysis, docs/canary.md) -----------------------------------------------------
def mixture_tau2(horizon_variance: float, alpha: float) -> float:
    """The mixing variance that makes the normal-mixture boundary tightest when the estimate's variance is
    `horizon_variance` (Howard et al. 2021, eq. for the optimal mixture: tau^2 = V * (2L + log(1 + 2L)),
    L = log(1/alpha))."""
    log_inv = math.log(1 / alpha)
    return horizon_variance * (2 * log_inv + math.log(1 + 2 * log_inv))


def mixture_radius(variance: float, tau2: float, alpha: float) -> float:
    """Half-width of the always-valid (1 - alpha) confidence sequence for a parameter whose estimate is
    asymptotically N(parameter, `variance`): the set where the mixture SPRT with a N(0, tau2) mixture over the
    effect (Johari et al. 2017/2022) does not reject, Lambda = sqrt(V / (V + tau2)) * exp(tau2 * d^2 / (2V(V + tau2)))
    < 1/alpha. By Ville's inequality the chance that it ever excludes the parameter, over all looks, is <= alpha."""
    if variance <= 0:
        return 0.0
    if tau2 <= 0:
        return math.inf
    return math.sqrt(2 * variance * (variance + tau2) / tau2 * math.log(math.sqrt((variance + tau2) / variance) / alpha))


def fixed_radius(variance: float, alpha: float) -> float:
    """Half-width of the fixed-horizon (1 - alpha) normal interval: valid for one look only."""
    from scipy.stats import norm

    return float(norm.ppf(1 - alpha / 2)) * math.sqrt(max(variance, 0.0))


def rate_estimate(outcomes: np.ndarray) -> tuple[float, float]:
    """(rate, variance of the rate) of 0/1 outcomes. The variance uses (k + 1/2) / (n + 1), so a rate of 0 or
    1 does not claim certainty."""
    n = len(outcomes)
    if n == 0:
        return math.nan, math.inf
    k = float(np.sum(outcomes))
    smooth = (k + 0.5) / (n + 1)
    return k / n, smooth * (1 - smooth) / n


def mean_estimate(values: np.ndarray) -> tuple[float, float]:
    """(mean, variance of the mean)."""
    n = len(values)
    if n < 2:
        return (float(values[0]) if n else math.nan), math.inf
    return float(np.mean(values)), float(np.var(values, ddof=1)) / n


def quantile_estimate(values: np.ndarray, q: float) -> tuple[float, float]:
    """(q-quantile, its variance). The standard error comes from the order statistics bracketing the quantile's
    95% distribution-free interval, SE = (x_(u) - x_(l)) / (2 * 1.96) (the sparsity estimate of
    Siddiqui-Bloch-Gastwirth), so no density has to be estimated."""
    n = len(values)
    if n < 2:
        return (float(values[0]) if n else math.nan), math.inf
    ordered = np.sort(values)
    z = 1.959964
    half = z * math.sqrt(n * q * (1 - q))
    lo = min(max(int(math.floor(n * q - half)), 0), n - 1)
    hi = min(max(int(math.ceil(n * q + half)), 0), n - 1)
    se = (ordered[hi] - ordered[lo]) / (2 * z)
    return float(np.quantile(ordered, q)), float(se) ** 2
