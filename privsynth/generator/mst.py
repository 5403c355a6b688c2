"""MST (McKenna, Miklau, Sheldon 2021): 1-way marginals, a DP maximum spanning tree of
2-way marginals, and their measurement -- every noisy number from OpenDP.

Budget split of the rho given (``SPLIT``): 30% to the 1-way marginals, 10% to selecting
the d-1 tree edges (report noisy max, one round per edge), 60% to measuring the chosen
pairs (the original MST uses thirds; pairs carry the correlations, and selection needs
little budget to find strong ones; measured in benchmarks/run.py). After the 1-way
marginals, categories too rare to measure are merged (:mod:`privsynth.generator.compress`).
Each part is divided evenly and shaved by one part in a billion so that the sum of what
OpenDP reports never exceeds the budget through float rounding.

Selection score of a pair (i, j): the L1 distance between its true 2-way table and the
one implied by independence of the noisy 1-way marginals, minus a public noise penalty.
Adding or removing a patient changes one cell of the true table by 1 and leaves the
(already released) model table and the penalty unchanged, so each score moves by at most
1: sensitivity 1.
"""

from __future__ import annotations

import itertools
import math

import numpy as np

from privsynth.generator.compress import Compression
from privsynth.generator.constraint import compress_masks
from privsynth.generator.counts import Counts, as_counts
from privsynth.generator.estimate import Measurement, estimate_total, mirror_descent
from privsynth.generator.factor import Clique
from privsynth.generator.forest import DisjointSets
from privsynth.generator.measure import SAFETY, measure, measure_one_ways, measure_structure
from privsynth.generator.prior import PublicPrior
from privsynth.generator.protocol import Fitted, Problem
from privsynth.generator.registry import register
from privsynth.privacy.accounting import Accountant
from privsynth.privacy.mechanism import gaussian_scale, select_max
from privsynth.progress import Progress

SPLIT = (0.3, 0.1, 0.6)  # shares of rho: 1-way marginals, selection, 2-way marginals


def select_tree(
    small: Counts, one_way: list[Measurement], rho: float,
    accountant: Accountant, names: tuple[str, ...], sigma_pair: float,
    progress: Progress | None = None, connected: tuple[Clique, ...] = (),
) -> list[tuple[int, int]]:
    """Choose pairs completing a spanning tree, each by OpenDP report-noisy-max.

    ``one_way`` holds one 1-way measurement per column, in column order; ``connected``
    cliques (the structural prior, already measured) join their columns before selection,
    so fewer pairs are chosen and each choice gets more of ``rho``.

    The score of a pair is its L1 gap to independence minus the L1 error its own
    measurement is expected to add (``sqrt(2/pi) * sigma_pair * cells``, as in AIM):
    a pair worth measuring is one whose signal beats its noise. The penalty is public
    (it depends only on the domain and the budget), so the sensitivity stays 1.
    """
    sizes = small.sizes
    d = len(sizes)
    sets = DisjointSets(d)
    for clique in connected:
        for a, b in zip(clique, clique[1:]):
            sets.union(a, b)
    rounds = len({sets.root(a) for a in range(d)}) - 1
    if d < 2 or rounds == 0:
        return []
    total = estimate_total(one_way)
    probs = []
    for m in one_way:
        p = np.clip(m.values, 0, None)
        probs.append(p / p.sum() if p.sum() > 0 else np.full(p.shape, 1.0 / p.size))
    pairs = list(itertools.combinations(range(d), 2))
    scores = np.empty(len(pairs))
    for k, ((i, j), true) in enumerate(zip(pairs, small.many(pairs))):
        model = np.outer(probs[i], probs[j]) * total
        penalty = math.sqrt(2.0 / math.pi) * sigma_pair * sizes[i] * sizes[j]
        scores[k] = float(np.abs(true - model).sum()) - penalty
    chosen: list[tuple[int, int]] = []
    per_round = rho / rounds * SAFETY
    for r in range(rounds):
        candidates = [k for k, (i, j) in enumerate(pairs) if not sets.connected(i, j)]
        index, release = select_max(scores[candidates], per_round, sensitivity=1.0)
        i, j = pairs[candidates[index]]
        accountant.charge(f"select pair {names[i]} x {names[j]}", release)
        sets.union(i, j)
        chosen.append((i, j))
        if progress is not None:
            progress("select", r + 1, rounds)
    return chosen


def fit_mst(
    data: Counts | np.ndarray, sizes: tuple[int, ...], accountant: Accountant, names: tuple[str, ...],
    progress: Progress | None = None, split: tuple[float, float, float] = SPLIT,
    compressible: tuple[bool, ...] | None = None, threshold: float = 3.0, prior: PublicPrior | None = None,
) -> tuple[list[Measurement], list[Compression]]:
    """Spend the accountant's remaining rho on MST's measurements: 1-way marginals, the
    structural prior's marginals (``prior.structure_share`` of rho), then the tree.

    Returns the measurements (over compressed domains) and each column's compression.
    """
    data = as_counts(data, sizes)
    d = len(sizes)
    prior = prior or PublicPrior.none(d)
    rho = accountant.rho_remaining
    if d == 1:
        return [measure(data, (0,), rho * SAFETY, accountant, f"1-way {names[0]}")], [
            Compression.identity(sizes[0])]
    rho_structure = rho * prior.structure_share if prior.structure else 0.0
    shares = np.asarray(split, dtype=np.float64) / sum(split)
    rho_one, rho_select, rho_two = ((rho - rho_structure) * s for s in shares)
    one_way, compressions, small = measure_one_ways(data, accountant, names,
                                                    prior.rho_one_way(rho_one) * SAFETY,
                                                    prior.compressible(compressible), threshold)
    if progress is not None:
        progress("measure 1-way", d, d)
    structural = measure_structure(small, prior.structure, rho_structure, accountant, names)
    pairs_left = max(1, d - 1 - sum(len(c) - 1 for c in prior.structure))
    rho_pair = rho_two / pairs_left * SAFETY
    sigma_pair = gaussian_scale(rho_pair)
    tree = select_tree(small, one_way[:d], rho_select, accountant, names, sigma_pair, progress,
                       connected=prior.structure)
    if len(tree) < pairs_left:  # the structure formed cycles: fewer pairs, each with more budget
        rho_pair = rho_two / max(1, len(tree)) * SAFETY
    two_way = structural
    for k, ((i, j), table) in enumerate(zip(tree, small.many(tree))):
        two_way.append(measure(small, (i, j), rho_pair, accountant, f"2-way {names[i]} x {names[j]}", table))
        if progress is not None:
            progress("measure 2-way", k + 1, len(tree))
    return one_way + two_way, compressions


class MST:
    """The generator: :func:`fit_mst`'s measurements, then mirror descent on them."""

    name = "mst"
    summary = "a spanning tree of pairs chosen by their DP signal (MST)"

    def fit(self, problem: Problem, accountant: Accountant) -> Fitted:
        # merges rare categories of unordered columns only (merging number bins hurt MST
        # in benchmarks/run.py)
        measurements, compressions = fit_mst(problem.data, problem.sizes, accountant, problem.names,
                                             problem.progress, compressible=problem.prior.unordered,
                                             threshold=1.0, prior=problem.prior)
        small_sizes = tuple(c.size for c in compressions)

        def on_iteration(i: int, loss: float) -> None:
            if i % 25 == 0:
                problem.report("estimate", i, problem.iterations)

        estimate = mirror_descent(measurements, small_sizes, iterations=problem.iterations,
                                  max_cells=problem.max_cells, callback=on_iteration,
                                  masks=compress_masks(problem.prior.masks, compressions))
        problem.report("estimate", problem.iterations, problem.iterations)
        return Fitted(measurements, compressions, estimate)


register(MST())
