"""MST (McKenna, Miklau, Sheldon 2021): 1-way marginals, a DP maximum spanning tree of
2-way marginals, and their measurement -- every noisy number from OpenDP.

Budget split of the rho given: a third to the 1-way marginals, a third to selecting the
d-1 tree edges (report noisy max, one round per edge), a third to measuring the chosen
pairs. Each part is divided evenly and shaved by one part in a billion so that the sum of
what OpenDP reports never exceeds the budget through float rounding.

Selection score of a pair (i, j): the L1 distance between its true 2-way table and the
one implied by independence of the noisy 1-way marginals. Adding or removing a patient
changes one cell of the true table by 1 and leaves the (already released) model table
unchanged, so each score moves by at most 1: sensitivity 1.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable

import numpy as np

from privsynth.generator.estimate import Measurement, estimate_total
from privsynth.generator.factor import contingency
from privsynth.privacy.accounting import Accountant
from privsynth.privacy.mechanism import measure_counts, select_max

SAFETY = 1.0 - 1e-9
Progress = Callable[[str, int, int], None]


def measure(
    codes: np.ndarray, sizes: tuple[int, ...], clique: tuple[int, ...], rho: float,
    accountant: Accountant, purpose: str,
) -> Measurement:
    """Measure one marginal of the patient view with the Gaussian mechanism; charge it."""
    table = contingency(codes, clique, sizes).ravel()
    noisy, release = measure_counts(table, rho)
    accountant.charge(purpose, release)
    return Measurement(clique, noisy.reshape(tuple(sizes[a] for a in clique)), release.scale)


def select_tree(
    codes: np.ndarray, sizes: tuple[int, ...], one_way: list[Measurement], rho: float,
    accountant: Accountant, names: tuple[str, ...], progress: Progress | None = None,
) -> list[tuple[int, int]]:
    """Choose d-1 pairs forming a spanning tree, each by OpenDP report-noisy-max."""
    d = len(sizes)
    if d < 2:
        return []
    total = estimate_total(one_way)
    probs = []
    for m in one_way:
        p = np.clip(m.values, 0, None)
        probs.append(p / p.sum() if p.sum() > 0 else np.full(p.shape, 1.0 / p.size))
    pairs = list(itertools.combinations(range(d), 2))
    scores = np.empty(len(pairs))
    for k, (i, j) in enumerate(pairs):
        true = contingency(codes, (i, j), sizes)
        model = np.outer(probs[i], probs[j]) * total
        scores[k] = float(np.abs(true - model).sum())
    parent = list(range(d))

    def root(x: int) -> int:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    chosen: list[tuple[int, int]] = []
    rounds = d - 1
    per_round = rho / rounds * SAFETY
    for r in range(rounds):
        candidates = [k for k, (i, j) in enumerate(pairs) if root(i) != root(j)]
        index, release = select_max(scores[candidates], per_round, sensitivity=1.0)
        i, j = pairs[candidates[index]]
        accountant.charge(f"select pair {names[i]} x {names[j]}", release)
        parent[root(i)] = root(j)
        chosen.append((i, j))
        if progress is not None:
            progress("select", r + 1, rounds)
    return chosen


def fit_mst(
    codes: np.ndarray, sizes: tuple[int, ...], accountant: Accountant, names: tuple[str, ...],
    progress: Progress | None = None,
) -> list[Measurement]:
    """Spend the accountant's remaining rho on MST's measurements and return them."""
    d = len(sizes)
    rho = accountant.rho_remaining
    if d == 1:
        return [measure(codes, sizes, (0,), rho * SAFETY, accountant, f"1-way {names[0]}")]
    rho_part = rho / 3.0
    one_way = [
        measure(codes, sizes, (a,), rho_part / d * SAFETY, accountant, f"1-way {names[a]}")
        for a in range(d)
    ]
    if progress is not None:
        progress("measure 1-way", d, d)
    tree = select_tree(codes, sizes, one_way, rho_part, accountant, names, progress)
    two_way = []
    for k, (i, j) in enumerate(tree):
        two_way.append(
            measure(codes, sizes, (i, j), rho_part / len(tree) * SAFETY, accountant,
                    f"2-way {names[i]} x {names[j]}")
        )
        if progress is not None:
            progress("measure 2-way", k + 1, len(tree))
    return one_way + two_way
