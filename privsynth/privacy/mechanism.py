"""The only place noise is drawn on private data: OpenDP's vetted mechanisms.

Sensitivity (privacy unit = one patient, add/remove): the patient view holds one row per
patient, so adding or removing a patient changes exactly one cell of any marginal's
contingency table by exactly 1. The table's L2 (and L1) distance is therefore 1, and
``d_in = 1`` is the sensitivity of every count vector measured here. Selection scores
state their own sensitivity (``d_in``), checked by the caller's derivation.

Each function calibrates the OpenDP measurement so that its privacy map at ``d_in`` is
at most the ``rho`` it is given, and returns the rho OpenDP reports, which the caller
charges to the :class:`~privsynth.privacy.accounting.Accountant`.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import opendp.prelude as dp

from privsynth.errors import BudgetError

dp.enable_features("contrib")

_COUNT_SPACE = (dp.vector_domain(dp.atom_domain(T=int)), dp.l2_distance(T=int))
_SCORE_SPACE = (dp.vector_domain(dp.atom_domain(T=float, nan=False)), dp.linf_distance(T=float))


@dataclass(frozen=True)
class Release:
    """What a mechanism released, and what it cost."""

    rho: float
    scale: float
    mechanism: str


def _calibrate(
    build: Callable[[float], dp.Measurement], rho: float, d_in: float, first_guess: float
) -> tuple[dp.Measurement, float, float]:
    """Find a scale whose OpenDP privacy map at ``d_in`` is <= rho (never over).

    Returns the measurement, its scale and the rho its map reports.
    """
    if not (rho > 0 and math.isfinite(rho)):
        raise BudgetError("each measurement needs a positive, finite rho")
    scale = first_guess * (1.0 + 1e-12)  # OpenDP rounds its maps up: start a hair above
    bump = 1e-12
    for _ in range(64):
        meas = build(scale)
        spent = float(meas.map(d_in))
        if spent <= rho:
            return meas, scale, spent
        scale *= 1.0 + bump
        bump *= 2.0
    raise BudgetError("could not calibrate the mechanism to the budget")  # pragma: no cover


def gaussian_scale(rho: float, sensitivity: float = 1.0) -> float:
    """The Gaussian noise scale that spends ``rho`` at the given L2 sensitivity."""
    return sensitivity / math.sqrt(2.0 * rho)


def measure_counts(counts: np.ndarray, rho: float) -> tuple[np.ndarray, Release]:
    """Release an integer count vector with exact discrete Gaussian noise (zCDP).

    ``counts`` must be a contingency table of the patient view (one row per patient),
    so its L2 sensitivity under add/remove of a patient is 1.
    """
    values = np.asarray(counts)
    if values.ndim != 1 or not np.issubdtype(values.dtype, np.integer):
        raise ValueError("counts must be a 1-d integer vector")

    def build(scale: float) -> dp.Measurement:
        return dp.m.make_gaussian(*_COUNT_SPACE, scale=scale)

    meas, scale, spent = _calibrate(build, rho, 1, gaussian_scale(rho))
    noisy = np.asarray(meas(values.astype(np.int64).tolist()), dtype=np.float64)
    return noisy, Release(spent, scale, "discrete Gaussian (OpenDP make_gaussian)")


def select_max(scores: np.ndarray, rho: float, sensitivity: float) -> tuple[int, Release]:
    """Report the index of the (noisy) largest score: OpenDP report-noisy-max under zCDP.

    ``sensitivity`` bounds how much any single score can change when one patient is
    added or removed (the L-infinity distance of the score vector).
    """
    values = np.asarray(scores, dtype=np.float64)
    if values.ndim != 1 or values.size == 0 or not np.all(np.isfinite(values)):
        raise ValueError("scores must be a non-empty vector of finite numbers")
    if not sensitivity > 0:
        raise ValueError("sensitivity must be positive")

    def build(scale: float) -> dp.Measurement:
        return dp.m.make_noisy_max(*_SCORE_SPACE, dp.zero_concentrated_divergence(), scale=scale)

    meas, scale, spent = _calibrate(build, rho, float(sensitivity), sensitivity / math.sqrt(2.0 * rho))
    index = int(meas(values.tolist()))
    return index, Release(spent, scale, "report noisy max (OpenDP make_noisy_max)")


def epsilon_for(rho: float, delta: float) -> float:
    """(epsilon, delta)-DP implied by rho-zCDP, by OpenDP's conversion."""
    if rho <= 0:
        return 0.0
    meas = dp.m.make_gaussian(*_COUNT_SPACE, scale=gaussian_scale(rho))
    # the map of this measurement at d_in=1 is rho (up to float rounding, never below)
    approx = dp.c.make_fix_delta(dp.c.make_zCDP_to_approxDP(meas), delta)
    return float(approx.map(1)[0])


@functools.lru_cache(maxsize=256)
def rho_for(epsilon: float, delta: float) -> float:
    """The largest rho whose OpenDP (epsilon, delta) conversion stays within ``epsilon``."""
    if not (epsilon > 0 and math.isfinite(epsilon)):
        raise BudgetError("epsilon must be a positive finite number (e.g. --epsilon 1)")
    if not (0 < delta < 1):
        raise BudgetError("delta must be strictly between 0 and 1 (e.g. --delta 1e-6)")
    # the classic bound epsilon = rho + 2 sqrt(rho log(1/delta)) is looser than OpenDP's
    # conversion, so its rho is feasible: a tight lower end for the bisection
    log_term = math.log(1.0 / delta)
    low = (math.sqrt(log_term + epsilon) - math.sqrt(log_term)) ** 2
    if epsilon_for(low, delta) > epsilon:
        low = 0.0
    high = max(low, 1e-300) * 2.0
    while epsilon_for(high, delta) <= epsilon:
        low, high = high, high * 2
    for _ in range(36):  # the bracket is within a factor 2: 2^-36 relative precision
        mid = (low + high) / 2
        if epsilon_for(mid, delta) <= epsilon:
            low = mid
        else:
            high = mid
    if low <= 0:
        raise BudgetError("epsilon too small for this delta")  # pragma: no cover
    return low
