"""Measurements every generator shares: each noisy number comes from OpenDP through here.

A generator chooses WHAT to measure and with how much rho; these helpers count the
marginal (:class:`~privsynth.generator.counts.Counts`: in memory, or summed over shards
by an engine), add the noise (:func:`privsynth.privacy.mechanism.measure_counts`), charge the
accountant, and return a :class:`~privsynth.generator.estimate.Measurement`. One patient
is one row of ``codes``, so every marginal has L2 sensitivity 1.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from privsynth.generator.compress import Compression
from privsynth.generator.counts import Counts
from privsynth.generator.estimate import Measurement, estimate_total
from privsynth.generator.factor import Clique
from privsynth.privacy.accounting import Accountant
from privsynth.privacy.mechanism import measure_counts

SAFETY = 1.0 - 1e-9  # shave each share so that float rounding never overspends the total


def measure(
    data: Counts, clique: tuple[int, ...], rho: float, accountant: Accountant, purpose: str,
    table: np.ndarray | None = None,
) -> Measurement:
    """Measure one marginal of the patient view with the Gaussian mechanism; charge it.
    ``table``: its exact counts when already computed (``data.contingency(clique)``)."""
    exact = data.contingency(clique) if table is None else table
    noisy, release = measure_counts(exact.ravel(), rho)
    accountant.charge(purpose, release)
    return Measurement(clique, noisy.reshape(tuple(data.sizes[a] for a in clique)), release.scale)


def measure_one_ways(
    data: Counts, accountant: Accountant, names: tuple[str, ...],
    rho_one: float | np.ndarray, compressible: tuple[bool, ...] | None, threshold: float,
    then: Callable[[float], Sequence[float | np.ndarray]] | None = None,
) -> tuple[list[Measurement], list[Compression], Counts]:
    """Measure every 1-way marginal with ``rho_one`` each (one value, or one per column),
    then compress rare cells.

    ``then`` (optional) is called with the DP estimate of the number of patients from that
    first pass and returns the rho (per column, or one value) of each further pass over
    the 1-way marginals: a decision on released values and public sizes only. Cells are
    compressed on the inverse-variance weighted mean of all passes. Returns the
    measurements over the compressed domains, each column's compression, and the view's
    counts over the compressed domains.
    """
    d = len(data.sizes)
    tables = data.many([(a,) for a in range(d)])  # exact, once: each pass adds its own noise

    def one_pass(rho: float | np.ndarray, label: str) -> list[Measurement]:
        rhos = np.broadcast_to(np.asarray(rho, dtype=np.float64), (d,))
        return [measure(data, (a,), float(rhos[a]), accountant, f"{label} {names[a]}", tables[a]) for a in range(d)]

    passes = [one_pass(rho_one, "1-way")]
    if then is not None:
        further = then(estimate_total(passes[0]))
        passes += [one_pass(rho, "1-way again") for rho in further if np.all(np.asarray(rho) > 0)]
    measurements: list[Measurement] = []
    compressions: list[Compression] = []
    for a in range(d):
        precision = np.array([1.0 / float(np.max(p[a].sigma)) ** 2 for p in passes])
        mean = np.sum([w * p[a].values for w, p in zip(precision, passes)], axis=0) / precision.sum()
        sigma = float(1.0 / np.sqrt(precision.sum()))
        if compressible is None or compressible[a]:
            comp = Compression.from_noisy(mean, sigma, threshold)
        else:
            comp = Compression.identity(data.sizes[a])
        merged = np.bincount(comp.to_small, minlength=comp.size)
        for p in passes:
            measurements.append(Measurement((a,), comp.compress_counts(p[a].values),
                                            float(np.max(p[a].sigma)) * np.sqrt(merged)))
        compressions.append(comp)
    return measurements, compressions, data.mapped([c.to_small for c in compressions])


def measure_structure(
    small: Counts, cliques: tuple[Clique, ...], rho: float,
    accountant: Accountant, names: tuple[str, ...],
) -> list[Measurement]:
    """Measure the structural prior's marginals (public choices), ``rho`` split evenly."""
    if not cliques:
        return []
    each = rho / len(cliques) * SAFETY
    tables = small.many(list(cliques))
    return [measure(small, c, each, accountant, f"{len(c)}-way (structure) {' x '.join(names[a] for a in c)}", t)
            for c, t in zip(cliques, tables)]
