"""OpenDP mechanisms and zCDP accounting."""

from __future__ import annotations

import math

import numpy as np
import pytest

from privsynth.errors import BudgetError
from privsynth.privacy import Accountant, epsilon_for, measure_counts, rho_for, select_max
from privsynth.privacy.mechanism import Release


@pytest.mark.parametrize("epsilon", [0.1, 0.3, 1.0, 3.0, 10.0])
@pytest.mark.parametrize("delta", [1e-5, 1e-6, 1e-9])
def test_epsilon_rho_round_trip(epsilon, delta):
    rho = rho_for(epsilon, delta)
    assert epsilon_for(rho, delta) <= epsilon
    assert epsilon_for(rho, delta) == pytest.approx(epsilon, rel=1e-6)
    # OpenDP's conversion is at least as tight as the classic bound rho + 2 sqrt(rho log(1/delta))
    assert epsilon <= rho + 2 * math.sqrt(rho * math.log(1 / delta)) + 1e-9
    assert epsilon_for(rho * 1.01, delta) > epsilon


@pytest.mark.parametrize(("epsilon", "delta"), [(0, 1e-6), (-1, 1e-6), (float("inf"), 1e-6), (1, 0), (1, 1)])
def test_bad_budgets_are_refused(epsilon, delta):
    with pytest.raises(BudgetError):
        rho_for(epsilon, delta)


def test_gaussian_noise_has_the_stated_scale():
    rho = 0.02  # sigma = 1 / sqrt(2 rho) = 5
    noisy, release = measure_counts(np.zeros(40_000, dtype=np.int64), rho)
    assert release.scale == pytest.approx(5.0, rel=1e-6)
    assert release.rho <= rho and release.rho == pytest.approx(rho, rel=1e-9)
    assert np.all(noisy == np.round(noisy))  # discrete Gaussian: integer noise
    # SE of the sample std is sigma / sqrt(2n) = 0.018: a 3% tolerance is > 8 SE
    assert noisy.std() == pytest.approx(5.0, rel=0.03)
    assert abs(noisy.mean()) < 0.2  # SE 0.025


def test_measurement_is_unbiased_around_the_counts():
    counts = np.arange(0, 1000, dtype=np.int64)
    noisy, release = measure_counts(counts, 0.5)  # sigma = 1
    assert abs(float((noisy - counts).mean())) < 0.2  # SE 0.03


def test_report_noisy_max_picks_a_clear_winner_and_charges():
    picks = [select_max(np.array([0.0, 500.0, 1.0]), 0.05, 1.0) for _ in range(20)]
    assert all(index == 1 for index, _ in picks)
    assert all(r.rho <= 0.05 and r.rho == pytest.approx(0.05, rel=1e-9) for _, r in picks)


def test_report_noisy_max_is_random_on_ties():
    seen = {select_max(np.zeros(4), 0.01, 1.0)[0] for _ in range(60)}
    assert len(seen) >= 3  # P(missing 2 of 4 in 60 draws) < 1e-6


def test_accountant_refuses_overspend():
    acc = Accountant(rho_total=1.0, delta=1e-6)
    acc.charge("a", Release(0.6, 1.0, "m"))
    with pytest.raises(BudgetError, match="only 0.4"):
        acc.charge("b", Release(0.5, 1.0, "m"))
    assert acc.rho_spent == pytest.approx(0.6)
    assert len(acc.charges) == 1
