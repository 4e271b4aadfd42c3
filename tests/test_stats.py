"""The statistics of the gate against scipy and textbook values, plus property tests."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import binomtest

from adapterci.eval import stats


@pytest.mark.parametrize("k,n,p0,alt", [(18, 20, 0.7, "greater"), (3, 40, 0.2, "less"), (50, 100, 0.5, "two-sided"),
                                        (20, 20, 0.8, "greater"), (0, 20, 0.2, "less")])
def test_stats_binomial_matches_scipy(k, n, p0, alt):
    assert stats.binomial_pvalue(k, n, p0, alt) == pytest.approx(binomtest(k, n, p0, alternative=alt).pvalue)


def test_stats_binomial_known_values():
    assert stats.binomial_pvalue(20, 20, 0.8, "greater") == pytest.approx(0.8**20)  # 0.0115
    assert stats.binomial_pvalue(0, 20, 0.2, "less") == pytest.approx(0.8**20)


def test_stats_binomial_edges_are_exact():
    assert stats.binomial_pvalue(5, 10, 0.0, "greater") == 0.0  # any success disproves rate 0
    assert stats.binomial_pvalue(0, 10, 0.0, "greater") == 1.0
    assert stats.binomial_pvalue(10, 10, 1.0, "greater") == 1.0
    assert stats.binomial_pvalue(3, 0, 0.5, "greater") == 1.0


def test_stats_clopper_pearson_matches_scipy():
    for k, n in [(0, 10), (7, 10), (10, 10), (45, 104)]:
        ci = binomtest(k, n).proportion_ci(confidence_level=0.95, method="exact")
        assert stats.clopper_pearson(k, n, 0.95) == pytest.approx((ci.low, ci.high))


@pytest.mark.parametrize("k,n,confidence,expected", [
    (7, 10, 0.95, (0.347547149940003, 0.933260488822266)),  # the textbook 7/10: (0.3475, 0.9333)
    (45, 104, 0.95, (0.335851872117774, 0.533466338348270)),
    (1, 20, 0.90, (0.00256137877653028, 0.216106164206847)),
    (0, 10, 0.95, (0.0, 1 - 0.025 ** (1 / 10))),  # k = 0: the upper bound is 1 - (alpha/2)^(1/n)
    (10, 10, 0.95, (0.025 ** (1 / 10), 1.0)),
])
def test_stats_clopper_pearson_known_values(k, n, confidence, expected):
    """Reference values: the roots of the binomial tails P(X >= k | p) = alpha/2 and P(X <= k | p) = alpha/2,
    found with mpmath at 50 digits."""
    assert stats.clopper_pearson(k, n, confidence) == pytest.approx(expected, abs=1e-9)


@pytest.mark.parametrize("confidence", [0.0, 0.5, 0.9, 0.95, 0.99, -0.2])
def test_stats_clopper_pearson_is_the_beta_quantiles(confidence):
    """The textbook form: lo = Beta(alpha/2; k, n-k+1), hi = Beta(1-alpha/2; k+1, n-k). A confidence below 0 (the
    gate's 1 - 2 * significance when significance > 0.5) gives the same crossed bounds, not an error."""
    from scipy.stats import beta

    tail = (1 - confidence) / 2
    for n in (1, 7, 30):
        for k in range(n + 1):
            lo = 0.0 if k == 0 else beta.ppf(tail, k, n - k + 1)
            hi = 1.0 if k == n else beta.ppf(1 - tail, k + 1, n - k)
            assert stats.clopper_pearson(k, n, confidence) == pytest.approx((lo, hi), abs=1e-10), (k, n)


@pytest.mark.parametrize("alt", ["greater", "less", "two-sided"])
def test_stats_binomial_null_at_0_or_1_allows_one_outcome(alt):
    """At p0 = 0 (1) only k = 0 (k = n) can happen under H0: every p-value is exactly 0 or 1."""
    n = 12
    for k in range(n + 1):
        for p0, edge in ((0.0, 0), (1.0, n)):
            holds = {"greater": k <= edge, "less": k >= edge, "two-sided": k == edge}[alt]
            assert stats.binomial_pvalue(k, n, p0, alt) == (1.0 if holds else 0.0), (k, p0)


def test_stats_binomial_null_beyond_0_1_is_impossible_on_one_side():
    assert stats.binomial_pvalue(3, 10, -0.1, "greater") == 0.0  # rate <= -0.1 is impossible
    assert stats.binomial_pvalue(3, 10, -0.1, "less") == 1.0
    assert stats.binomial_pvalue(3, 10, 1.1, "less") == 0.0
    assert stats.binomial_pvalue(3, 10, 1.1, "greater") == 1.0
    assert stats.binomial_pvalue(3, 10, 1.1, "two-sided") == 0.0


def test_stats_mcnemar_exact_known_value():
    # b=10, c=2: two-sided exact p = 2 * P(X <= 2 | 12, 1/2) = 2 * 79/4096
    assert stats.mcnemar_exact(10, 2) == pytest.approx(2 * 79 / 4096)
    assert stats.mcnemar_exact(10, 2, "greater") == pytest.approx(79 / 4096)
    assert stats.mcnemar_exact(0, 0) == 1.0


def test_stats_paired_binary_margin_zero_is_mcnemar():
    x = np.array([1] * 10 + [0] * 2 + [1] * 30 + [0] * 8)
    y = np.array([0] * 10 + [1] * 2 + [1] * 30 + [0] * 8)
    assert stats.paired_binary_pvalue(x, y, 0.0, "greater") == pytest.approx(stats.mcnemar_exact(10, 2, "greater"))


def test_stats_paired_binary_margin_shifts_the_null():
    x = np.array([1] * 10 + [0] * 2 + [1] * 38)
    y = np.array([0] * 10 + [1] * 2 + [1] * 38)
    n, m = 50, 12
    expected = binomtest(10, m, 0.5 + 0.05 * n / (2 * m), alternative="greater").pvalue
    assert stats.paired_binary_pvalue(x, y, 0.05, "greater") == pytest.approx(expected)
    # a negative margin that even losing every discordant pair satisfies: certain
    assert stats.paired_binary_pvalue(x, y, -0.5, "greater") == 0.0
    assert stats.paired_binary_pvalue(y, x, -0.5, "greater") == 0.0  # however the discordant pairs fall
    assert stats.paired_binary_pvalue(x, y, 0.5, "less") == 0.0  # likewise for `<=` rules
    assert stats.paired_binary_pvalue(x, y, 0.1, "less") > 0.05  # 10 of 12 against it: +0.16 is not below +0.1


def test_stats_paired_binary_identical_models():
    x = np.array([1, 0, 1, 1])
    assert stats.paired_binary_pvalue(x, x, 0.0, "greater") == 1.0  # no evidence of improvement
    assert stats.paired_binary_pvalue(x, x, -0.01, "greater") == 0.0  # surely not worse by 0.01


def test_stats_bootstrap_is_reproducible_and_covers_the_mean():
    rng = np.random.default_rng(1)
    x = rng.integers(0, 2, 200).astype(float)
    a = stats.paired_bootstrap(lambda idx: x[idx].mean(axis=1), len(x))
    b = stats.paired_bootstrap(lambda idx: x[idx].mean(axis=1), len(x))
    assert np.array_equal(a, b)
    lo, hi = stats.percentile_interval(a, 0.95)
    assert lo < x.mean() < hi
    # close to the normal approximation's half-width
    assert (hi - lo) / 2 == pytest.approx(1.96 * x.std() / np.sqrt(len(x)), rel=0.15)


@settings(max_examples=60, deadline=None)
@given(n=st.integers(1, 60), data=st.data())
def test_stats_clopper_pearson_contains_estimate(n, data):
    k = data.draw(st.integers(0, n))
    lo, hi = stats.clopper_pearson(k, n, 0.9)
    assert 0.0 <= lo <= k / n <= hi <= 1.0


@settings(max_examples=60, deadline=None)
@given(n=st.integers(1, 50), p0=st.floats(0.01, 0.99), data=st.data())
def test_stats_binomial_pvalue_monotone_in_successes(n, p0, data):
    k = data.draw(st.integers(0, n - 1))
    assert 0.0 <= stats.binomial_pvalue(k + 1, n, p0, "greater") <= stats.binomial_pvalue(k, n, p0, "greater") + 1e-12


@settings(max_examples=60, deadline=None)
@given(n=st.integers(1, 40), p0=st.floats(0.05, 0.95), data=st.data())
def test_stats_binomial_test_agrees_with_clopper_pearson(n, p0, data):
    """The one-sided exact test at alpha rejects exactly when the (1 - 2 alpha) interval's lower bound exceeds p0."""
    k = data.draw(st.integers(0, n))
    lo, _ = stats.clopper_pearson(k, n, 0.90)
    if abs(lo - p0) > 1e-9:
        assert (stats.binomial_pvalue(k, n, p0, "greater") <= 0.05) == (lo > p0)


@settings(max_examples=60, deadline=None)
@given(pairs=st.lists(st.tuples(st.booleans(), st.booleans()), min_size=1, max_size=60))
def test_stats_paired_binary_swapping_models_mirrors_the_test(pairs):
    x = np.array([a for a, _ in pairs])
    y = np.array([b for _, b in pairs])
    assert stats.paired_binary_pvalue(x, y, 0.0, "greater") == pytest.approx(stats.paired_binary_pvalue(y, x, 0.0, "less"))
    b, c = stats.discordant(x, y)
    assert b - c == int(x.sum()) - int(y.sum())


def test_mixture_confidence_sequence_stays_valid_under_peeking_where_a_fixed_interval_does_not() -> None:
    """2000 null paths of N(0, 1) observations, looked at 100 times (every 50 up to 5000): the always-valid
    sequence ever excludes the true mean 0 in at most alpha of the paths; the fixed-horizon interval, peeked at
    as often, in far more."""
    alpha, looks = 0.05, np.arange(50, 5001, 50)
    x = np.random.default_rng(7).standard_normal((2000, looks[-1]))
    means = np.cumsum(x, axis=1)[:, looks - 1] / looks
    variance = 1.0 / looks
    tau2 = stats.mixture_tau2(1.0 / 1000, alpha)
    always = np.array([stats.mixture_radius(v, tau2, alpha) for v in variance])
    fixed = np.array([stats.fixed_radius(v, alpha) for v in variance])
    assert np.all(always > fixed)
    assert np.mean(np.any(np.abs(means) > always, axis=1)) <= alpha
    assert np.mean(np.any(np.abs(means) > fixed, axis=1)) >= 3 * alpha


def test_quantile_standard_error_matches_the_asymptotic_formula() -> None:
    from scipy.stats import norm

    n, q = 20000, 0.95
    values = np.random.default_rng(3).standard_normal(n)
    estimate, variance = stats.quantile_estimate(values, q)
    expected_se = np.sqrt(q * (1 - q) / n) / norm.pdf(norm.ppf(q))
    assert abs(estimate - norm.ppf(q)) < 3 * expected_se
    assert 0.8 < np.sqrt(variance) / expected_se < 1.25


def test_rate_estimate_never_claims_certainty_at_zero_events() -> None:
    rate, variance = stats.rate_estimate(np.zeros(1000))
    assert rate == 0.0 and variance > 0
    assert stats.rate_estimate(np.array([]))[1] == np.inf
