"""Each audit statistic on numbers small enough to check by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

from privsynth.audit.stats import (
    auc,
    auc_interval,
    binomial_greater,
    clopper_pearson,
    epsilon_lower_bound,
    tpr_at_fpr,
    wilson,
)


@pytest.mark.parametrize(("k", "n", "expected"), [
    pytest.param(10, 10, 0.5 ** 10, id="all-ten"),
    pytest.param(0, 10, 1.0, id="none"),
    pytest.param(9, 10, 11 / 1024, id="nine-of-ten"),
])
def test_binomial_tail(k, n, expected):
    assert binomial_greater(k, n) == pytest.approx(expected)


def test_wilson_matches_the_formula():
    lo, hi = wilson(8, 10)
    # Wilson: (p + z^2/2n -+ z sqrt(p(1-p)/n + z^2/4n^2)) / (1 + z^2/n)
    z = 1.959963984540054
    centre = (0.8 + z * z / 20) / (1 + z * z / 10)
    half = z * math.sqrt(0.16 / 10 + z * z / 400) / (1 + z * z / 10)
    assert (lo, hi) == pytest.approx((centre - half, centre + half))


def test_clopper_pearson_edges():
    assert clopper_pearson(0, 10, 0.05)[0] == 0.0
    assert clopper_pearson(10, 10, 0.05)[1] == 1.0
    # 0 of n: upper bound solves (1-p)^n = alpha/2
    assert clopper_pearson(0, 10, 0.05)[1] == pytest.approx(1 - 0.025 ** (1 / 10))


@pytest.mark.parametrize(("members", "nonmembers", "expected"), [
    pytest.param([3, 4], [1, 2], 1.0, id="separated"),
    pytest.param([1, 2], [3, 4], 0.0, id="reversed"),
    pytest.param([1, 1], [1, 1], 0.5, id="all-tied"),
    pytest.param([3, 2], [1, 2], 0.875, id="one-tie"),
])
def test_auc(members, nonmembers, expected):
    assert auc(np.array(members, float), np.array(nonmembers, float)) == expected


def test_tpr_at_fpr_picks_the_best_allowed_threshold():
    nonmembers = np.arange(100, dtype=float)  # 0..99
    members = np.array([99.5, 98.5, 50.0, 10.0])
    # FPR <= 1%: threshold above 98 -> flags 99 (1 false positive) and members 99.5, 98.5
    assert tpr_at_fpr(members, nonmembers, 0.01) == 0.5
    # FPR 0: threshold above 99 -> only 99.5
    assert tpr_at_fpr(members, nonmembers, 0.0) == 0.25


def test_auc_interval_covers_the_point_and_is_reproducible():
    rng = np.random.default_rng(0)
    m, n = rng.normal(0.3, 1, 400), rng.normal(0, 1, 400)
    lo, hi = auc_interval(m, n, np.random.default_rng(1))
    assert lo < auc(m, n) < hi
    assert (lo, hi) == auc_interval(m, n, np.random.default_rng(1))


def test_epsilon_lower_bound_zero_without_signal_and_large_for_a_perfect_attack():
    rng = np.random.default_rng(0)
    same = epsilon_lower_bound(rng.normal(size=2000), rng.normal(size=2000), 1e-6)
    assert same < 0.3
    perfect = epsilon_lower_bound(np.full(2000, 10.0), rng.normal(size=2000), 1e-6)
    # 0 false positives of 2000: FPR_hi = 1 - (alpha/2/20)^(1/2000); TPR_lo close to 1
    fpr_hi = 1 - (0.05 / 20 / 2) ** (1 / 2000)
    assert perfect == pytest.approx(math.log(clopper_pearson(2000, 2000, 0.05 / 20)[0] / fpr_hi), rel=1e-6)
    assert perfect > 5


@pytest.mark.parametrize("value", [float("inf"), float("-inf"), float("nan")], ids=["inf", "minus-inf", "nan"])
def test_a_statistic_that_is_not_a_finite_number_never_passes(value):
    from privsynth.audit.result import Check

    check = Check("toy", "a ratio", value, None, "fails above 2", True)
    assert check.passed is False and "not a finite number" in check.detail
    assert check.line().startswith("FAIL")
    assert Check("toy", "a ratio", value, None, "information", None).passed is None  # information stays information
