"""Measurements every generator shares: each noisy number comes from OpenDP through here.

A generator chooses WHAT to measure and with how much rho; these helpers count the
marginal, add the noise (:func:`privsynth.privacy.mechanism.measure_counts`), charge the
accountant, and return a :class:`~privsynth.generator.estimate.Measurement`. One patient
is one row of ``codes``, so every marginal has L2 sensitivity 1.
"""

from __future__ import annotations

import numpy as np

from privsynth.generator.compress import Compression
from privsynth.generator.estimate import Measurement, estimate_total
from privsynth.generator.factor import Clique, contingency
from privsynth.privacy.accounting import Accountant
from privsynth.privacy.mechanism import measure_counts

SAFETY = 1.0 - 1e-9  # shave each share so that float rounding never overspends the total


def measure(
    codes: np.ndarray, sizes: tuple[int, ...], clique: tuple[int, ...], rho: float,
    accountant: Accountant, purpose: str,
) -> Measurement:
    """Measure one marginal of the patient view with the Gaussian mechanism; charge it."""
    table = contingency(codes, clique, sizes).ravel()
    noisy, release = measure_counts(table, rho)
    accountant.charge(purpose, release)
    return Measurement(clique, noisy.reshape(tuple(sizes[a] for a in clique)), release.scale)


def measure_one_ways(
    codes: np.ndarray, sizes: tuple[int, ...], accountant: Accountant, names: tuple[str, ...],
    rho_one: float | np.ndarray, compressible: tuple[bool, ...] | None, threshold: float,
    again_if_noisy: float | None = None,
) -> tuple[list[Measurement], list[Compression], np.ndarray]:
    """Measure every 1-way marginal with ``rho_one`` each (one value, or one per column),
    then compress rare cells.

    With ``again_if_noisy`` set, the 1-way marginals are measured a second time when the
    DP total per average cell is below that many noise standard deviations of a typical
    column (a decision on released values and public sizes only). Returns the measurements
    over the compressed domains, each column's compression, and the codes mapped to the
    compressed domains.
    """
    d = len(sizes)
    rhos = np.broadcast_to(np.asarray(rho_one, dtype=np.float64), (d,))
    passes = [[measure(codes, sizes, (a,), float(rhos[a]), accountant, f"1-way {names[a]}") for a in range(d)]]
    typical = float(max(float(np.max(m.sigma)) for m in passes[0]))
    if again_if_noisy is not None and estimate_total(passes[0]) / float(np.mean(sizes)) < again_if_noisy * typical:
        passes.append([measure(codes, sizes, (a,), float(rhos[a]), accountant, f"1-way again {names[a]}")
                       for a in range(d)])
    measurements: list[Measurement] = []
    compressions: list[Compression] = []
    small = np.empty_like(codes)
    for a in range(d):
        sigma = float(np.max(passes[0][a].sigma))
        mean = np.mean([p[a].values for p in passes], axis=0)
        if compressible is None or compressible[a]:
            comp = Compression.from_noisy(mean, sigma / np.sqrt(len(passes)), threshold)
        else:
            comp = Compression.identity(sizes[a])
        merged = np.bincount(comp.to_small, minlength=comp.size)
        for p in passes:
            measurements.append(Measurement((a,), comp.compress_counts(p[a].values), sigma * np.sqrt(merged)))
        compressions.append(comp)
        small[:, a] = comp.to_small[codes[:, a]]
    return measurements, compressions, small


def measure_structure(
    small: np.ndarray, small_sizes: tuple[int, ...], cliques: tuple[Clique, ...], rho: float,
    accountant: Accountant, names: tuple[str, ...],
) -> list[Measurement]:
    """Measure the structural prior's marginals (public choices), ``rho`` split evenly."""
    if not cliques:
        return []
    each = rho / len(cliques) * SAFETY
    return [measure(small, small_sizes, c, each, accountant,
                    f"{len(c)}-way (structure) {' x '.join(names[a] for a in c)}") for c in cliques]
