"""Statistics of the gate and the eval report: exact binomial tests, Clopper-Pearson intervals, the exact
McNemar test (with a margin) and paired bootstrap intervals. scipy is imported inside the functions."""

from __future__ import annotations

from typing import Callable, Literal

import numpy as np

Alternative = Literal["greater", "less", "two-sided"]
BOOTSTRAP_RESAMPLES = 2000
BOOTSTRAP_SEED = 0


def binomial_pvalue(k: int, n: int, p0: float, alternative: Alternative) -> float:
    """Exact binomial test of `k` successes in `n` trials against success rate `p0`.

    `greater`: H0 rate <= p0; `less`: H0 rate >= p0. A `p0` at or beyond 0 or 1 is handled exactly
    (e.g. `greater` with p0 <= 0 can never be wrong: p-value 0 if k > 0)."""
    if n <= 0:
        return 1.0
    if p0 <= 0.0 or p0 >= 1.0:
        edge = 0 if p0 <= 0.0 else n  # the only outcome possible under H0
        if alternative == "greater":
            return 1.0 if k <= edge else 0.0
        if alternative == "less":
            return 1.0 if k >= edge else 0.0
        return 1.0 if k == edge else 0.0
    from scipy.stats import binomtest

    return float(binomtest(int(k), int(n), float(p0), alternative=alternative).pvalue)


def clopper_pearson(k: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """The exact two-sided interval for a binomial proportion; (0, 1) when n is 0."""
    if n <= 0:
        return 0.0, 1.0
    from scipy.stats import beta

    tail = (1 - confidence) / 2
    lo = 0.0 if k == 0 else float(beta.ppf(tail, k, n - k + 1))
    hi = 1.0 if k == n else float(beta.ppf(1 - tail, k + 1, n - k))
    return lo, hi


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
