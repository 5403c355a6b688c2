"""Adaptive, workload-aware selection (AIM, McKenna et al. 2022), made cheap.

What is kept from AIM: the workload (all 3-way marginals), candidates weighted by their
overlap with it, a score that is the candidate's L1 gap to the current model minus the
L1 error its own measurement would add, selection by report-noisy-max, measurement by the
Gaussian mechanism, and annealing (a round that barely moved the model doubles the
precision of the next). What changes, and why (see docs/generator.md):

- 1-way marginals sized by a DP estimate of the signal (:func:`one_way_plan`): 10% of rho
  first, then nothing more when a typical pair measured with the rest would be precise,
  up to 20% more when it would be lean, 50% more in the noisy regime, and everything
  when no pair could be measured usefully (the model is then independent columns).
- Rounds sized to the table: 3 d on small tables (AIM: 16 d), d on wide ones, with
  annealing when a round does not move the model.
- Candidates: every 1-, 2- and 3-way marginal on tables of at most ``ALL_TRIPLES_UP_TO``
  columns; on wider ones every 1- and 2-way marginal and the 3-way marginals that add one
  column to a measured pair, of which a fresh random subset of ``WIDE_CANDIDATES`` is
  scored per pass, several selections share one pass unless measurements are precise,
  and cliques that would grow the model past a size limit are not offered. All of these
  read only public sizes, the DP model and earlier DP selections.
- Model marginals for scoring come from the junction tree exactly (query.py), and the
  estimator is warm-started each round, so a round costs milliseconds, not a JAX compile.

Every selection is charged (sensitivity = the largest candidate weight) and every
measurement too; the last round spends exactly what is left.
"""

from __future__ import annotations

import itertools
import math
from math import comb

import numpy as np

from privsynth.generator.compress import Compression
from privsynth.generator.constraint import compress_masks
from privsynth.generator.estimate import Estimate, Measurement, mirror_descent
from privsynth.generator.factor import Clique, cells, contingency
from privsynth.generator.junction import DEFAULT_MAX_CELLS, JunctionTree
from privsynth.generator.measure import SAFETY, measure, measure_one_ways, measure_structure
from privsynth.generator.prior import PublicPrior
from privsynth.generator.protocol import Fitted, Problem
from privsynth.generator.query import marginal, steiner
from privsynth.generator.registry import register
from privsynth.privacy.accounting import Accountant
from privsynth.privacy.mechanism import gaussian_scale, select_max
from privsynth.progress import Progress

ONE_WAY_SHARE = 0.1  # of rho, on every 1-way marginal (first pass)
NOISY_SHARE = 0.5  # a second pass over the 1-way marginals in the noisy regime
NOISY_RATIO = 10.0  # noisy regime: patients per cell (DP estimate) below this many sigma of a
NOISY_REFERENCE_SHARE = 0.3  # ... 1-way marginal measured with this share of rho
HOPELESS_TVD = 0.1  # 1-ways only when even one typical pair measured with all of rho is noisier
RICH_TVD = (0.01, 0.03)  # between these, the 1-way marginals get up to LEAN_SHARE more
LEAN_SHARE = 0.2
SELECT_SHARE = 0.1  # of each round
ROUNDS_PER_COLUMN = 3.0  # first-round size: rho left / (this * d); AIM uses 16
ROUND_ITERATIONS = 20  # mirror-descent steps between rounds (warm-started)
FINAL_ITERATIONS = 300  # for the final estimate
FINAL_TOL = 1e-3
CLIQUE_CELLS_MIN = 10_000  # wide tables, largest model clique: at least this many cells,
CLIQUE_CELLS_PER_PATIENT = 12.0  # ... this many per (DP-estimated) patient,
CLIQUE_CELLS_MAX = 50_000  # ... and at most this many (small tables: only max_cells)
ALL_TRIPLES_UP_TO = 20  # a "small" table: every 3-way marginal is a candidate; wider ones use WIDE_*
WIDE_ROUNDS_PER_COLUMN = 1.0
WIDE_SCORINGS = 12  # scoring passes at most (several selections per pass)
WIDE_ROUND_ITERATIONS = 15
WIDE_CANDIDATES = 800  # scored per pass at most (a fresh random subset)
BATCH_FREE_TVD = 1e-3
BATCH_OVERLAP = 1  # a batch skips candidates sharing this many columns with an earlier pick


def typical_pair_tvd(n_hat: float, sizes: tuple[int, ...], rho: float) -> float:
    """Expected total-variation error of one typical pair (mean size squared cells) of
    ``n_hat`` patients measured with ``rho``: the signal statistic the plan reads."""
    mean_size = float(np.mean(sizes))
    return math.sqrt(2.0 / math.pi) * gaussian_scale(rho) * mean_size ** 2 / (2.0 * n_hat)


def one_way_plan(n_hat: float, sizes: tuple[int, ...], rho: float, rho_left: float) -> list[float]:
    """The share of ``rho`` for each further pass over the 1-way marginals, given the DP
    estimate ``n_hat`` of the number of patients after the first pass (and only public
    sizes and budgets otherwise).

    - *hopeless*: a typical pair (mean size squared cells) measured with all of
      ``rho_left`` would still have an expected total-variation error above
      ``HOPELESS_TVD``: no adaptive round can find structure, so everything left goes
      to the 1-way marginals (independent columns, measured as well as the budget allows);
    - *noisy*: fewer patients per average cell than ``NOISY_RATIO`` noise standard
      deviations of a 1-way marginal measured with ``NOISY_REFERENCE_SHARE`` of rho: the
      1-way marginals, on which every later estimate rests, get ``NOISY_SHARE`` more;
    - otherwise, between *rich* (that pair's error below ``RICH_TVD[0]``: no more) and
      *lean* (above ``RICH_TVD[1]``: ``LEAN_SHARE`` more), linearly in that error.
    Measured on the shared harness's tables (docs/generator.md): the 1-way share that
    minimised the 3-way error went from 0.1 (flchain, epsilon 3) to 0.3 (flchain,
    epsilon 0.3) to all of it (whas500, epsilon 0.3).
    """
    if rho_left <= 0:  # the structural prior takes everything after the first pass
        return []
    d = len(sizes)
    mean_size = float(np.mean(sizes))
    pair_tvd = typical_pair_tvd(n_hat, sizes, rho_left)
    if pair_tvd > HOPELESS_TVD:
        return [rho_left / rho]
    if n_hat / mean_size < NOISY_RATIO * gaussian_scale(NOISY_REFERENCE_SHARE * rho / d):
        return [min(NOISY_SHARE, rho_left / rho)]
    low, high = RICH_TVD
    extra = min(LEAN_SHARE * min(1.0, max(0.0, (pair_tvd - low) / (high - low))), rho_left / rho)
    return [extra] if extra > 0 else []


def workload_weight(size: int, d: int, order: int = 3) -> float:
    """AIM's weight of a clique of ``size`` columns: sum over workload cliques q of |r & q|."""
    return float(sum(k * comb(size, k) * comb(d - size, order - k) for k in range(1, min(size, order) + 1)))


def fit_aim(
    codes: np.ndarray, sizes: tuple[int, ...], accountant: Accountant, names: tuple[str, ...],
    progress: Progress | None = None, compressible: tuple[bool, ...] | None = None,
    threshold: float = 1.0, max_cells: int = DEFAULT_MAX_CELLS, max_candidate_cells: int = 100_000,
    round_iterations: int | None = None, prior: PublicPrior | None = None,
) -> tuple[list[Measurement], list[Compression], Estimate]:
    """Spend the accountant's remaining rho adaptively; return measurements, compressions, model.

    ``prior``: public structure (structural zeros, marginals measured first, protected
    columns); see :mod:`privsynth.generator.prior`."""
    d = len(sizes)
    prior = prior or PublicPrior.none(d)
    round_iterations = ROUND_ITERATIONS if round_iterations is None else round_iterations
    rho = accountant.rho_remaining
    rho_one = prior.rho_one_way(rho * ONE_WAY_SHARE) * SAFETY
    rho_structure = rho * prior.structure_share if prior.structure else 0.0
    rho_left = rho * (1.0 - ONE_WAY_SHARE) - rho_structure

    def more(n_hat: float) -> list[np.ndarray]:
        return [prior.rho_one_way(rho * share) * SAFETY for share in one_way_plan(n_hat, sizes, rho, rho_left)]

    measurements, compressions, small = measure_one_ways(codes, sizes, accountant, names, rho_one,
                                                         prior.compressible(compressible), threshold, then=more)
    small = np.asfortranarray(small)  # every marginal reads a few whole columns
    small_sizes = tuple(c.size for c in compressions)
    if progress is not None:
        progress("measure 1-way", d, d)
    masks = compress_masks(prior.masks, compressions)
    if prior.structure:
        measurements += measure_structure(small, small_sizes, prior.structure,
                                          min(rho_structure, accountant.rho_remaining), accountant,
                                          names)
    estimate = mirror_descent(measurements, small_sizes, iterations=round_iterations * 2, max_cells=max_cells,
                              masks=masks)
    if d == 1:
        return measurements, compressions, estimate

    order = min(3, d)  # the workload: all marginals of `order` columns
    weights = {k: workload_weight(k, d, order) for k in range(1, order + 1)}
    sensitivity = max(weights.values())
    truth: dict[Clique, np.ndarray] = {}
    measured: set[Clique] = {(a,) for a in range(d)} | set(prior.structure)
    zeros = set(masks)  # in the model (and its size), but not measured: no candidates grow from them
    refused: set[Clique] = set()
    wide = d > ALL_TRIPLES_UP_TO
    # on wide tables the model's cliques stay within what a round can afford (and the data
    # can support): a DP estimate of the number of patients times CLIQUE_CELLS_PER_PATIENT,
    # within bounds; small tables only have max_cells
    clique_limit = max_cells if not wide else int(min(
        max_cells, CLIQUE_CELLS_MAX, max(CLIQUE_CELLS_MIN, CLIQUE_CELLS_PER_PATIENT * estimate.total)))
    rounds_planned = max(4, int(round((WIDE_ROUNDS_PER_COLUMN if wide else ROUNDS_PER_COLUMN) * d)))
    # wide tables: several selections from one scoring pass (each its own report-noisy-max,
    # each charged), so that scoring runs at most WIDE_SCORINGS times
    # ... unless measurements are so precise (typical pair error below BATCH_FREE_TVD)
    # that each one moves the model a lot and the next scores must see it
    precise = typical_pair_tvd(estimate.total, small_sizes, accountant.rho_remaining) < BATCH_FREE_TVD
    batch = max(1, math.ceil(rounds_planned / WIDE_SCORINGS)) if wide and not precise else 1
    iterations = min(round_iterations, WIDE_ROUND_ITERATIONS) if wide else round_iterations
    rho_round = accountant.rho_remaining / rounds_planned
    subset_rng = np.random.default_rng()  # OS entropy; which marginals are scored, not which patients
    step = 0
    while accountant.rho_remaining > 1e-6 * rho:  # (the 1-way plan may have spent it all)
        remaining = accountant.rho_remaining
        if remaining <= 2.0 * rho_round * batch:  # the last batch spends what is left
            rho_round = remaining / batch
        rho_select = rho_round * SELECT_SHARE * SAFETY
        rho_measure = rho_round * (1 - SELECT_SHARE) * SAFETY
        sigma = gaussian_scale(rho_measure)
        candidates = _candidates(measured, refused, small_sizes, max_candidate_cells)
        if wide and len(candidates) > WIDE_CANDIDATES:  # a fresh random subset each pass (public)
            keep = np.sort(subset_rng.choice(len(candidates), WIDE_CANDIDATES, replace=False))
            candidates = [candidates[k] for k in keep.tolist()]
        candidates = [c for c in candidates if _growth(estimate.tree, c) <= clique_limit]
        if not candidates:
            break
        scores = np.empty(len(candidates))
        for k, r in enumerate(candidates):
            if r not in truth:
                truth[r] = contingency(small, r, small_sizes).astype(np.float64)
            model = marginal(estimate.tree, estimate.marginals, r)
            penalty = math.sqrt(2.0 / math.pi) * sigma * truth[r].size
            scores[k] = weights[len(r)] * (float(np.abs(truth[r] - model).sum()) - penalty)
        open_ = list(range(len(candidates)))
        picked: list[tuple[Clique, np.ndarray]] = []
        for _ in range(batch):
            if not open_ or accountant.rho_remaining <= 1e-6 * rho:
                break
            index, release = select_max(scores[open_], min(rho_select, accountant.rho_remaining * SAFETY),
                                        sensitivity)
            chosen = candidates[open_[index]]
            accountant.charge(f"select {' x '.join(names[a] for a in chosen)}", release)
            # the rest of the batch skips what shares BATCH_OVERLAP columns with the pick (public)
            open_ = [j for j in open_ if len(set(candidates[j]) & set(chosen)) < BATCH_OVERLAP]
            if not _fits(measured | zeros | {chosen}, small_sizes, max_cells):
                refused.add(chosen)  # public: depends only on sizes and earlier selections
                continue
            before = marginal(estimate.tree, estimate.marginals, chosen)
            measurements.append(measure(small, small_sizes, chosen,
                                        min(rho_measure, accountant.rho_remaining * SAFETY), accountant,
                                        f"{len(chosen)}-way {' x '.join(names[a] for a in chosen)}"))
            measured.add(chosen)
            picked.append((chosen, before))
        if not picked:
            continue
        estimate = mirror_descent(measurements, small_sizes, iterations=iterations, max_cells=max_cells,
                                  warm_start=estimate.potentials, total=estimate.total, masks=masks)
        step += len(picked)
        if progress is not None:
            progress("select+measure", step, max(step, rounds_planned))
        noise = math.sqrt(2.0 / math.pi) * sigma
        if all(float(np.abs(marginal(estimate.tree, estimate.marginals, c) - before).sum())
               <= noise * cells(c, small_sizes) for c, before in picked):
            rho_round *= 4.0  # annealing: the model did not move, so measure more precisely
    estimate = mirror_descent(measurements, small_sizes, iterations=FINAL_ITERATIONS, max_cells=max_cells,
                              warm_start=estimate.potentials, tol=FINAL_TOL, masks=masks)
    return measurements, compressions, estimate


def _candidates(measured: set[Clique], refused: set[Clique], sizes: tuple[int, ...],
                max_candidate_cells: int) -> list[Clique]:
    d = len(sizes)
    out: set[Clique] = {(a,) for a in range(d)} | set(itertools.combinations(range(d), 2))
    if d <= ALL_TRIPLES_UP_TO:
        out |= set(itertools.combinations(range(d), 3))
    pairs = [c for c in measured if len(c) == 2]
    for i, j in pairs:
        for k in range(d):
            if k not in (i, j):
                out.add(tuple(sorted((i, j, k))))
    # measured cliques stay candidates (as in AIM): a noisy one can be measured again
    return sorted(c for c in out if c not in refused and cells(c, sizes) <= max_candidate_cells)


def _growth(tree: JunctionTree, clique: Clique) -> int:
    """Cells of the smallest clique the model must hold once ``clique`` is measured: the
    clique itself when one tree clique already contains it, else the clique with every
    separator on the tree path joining its columns (a lower bound on what triangulation
    adds). Public: reads only the model's structure and public sizes."""
    if tree.covering(clique) >= 0:
        return 0
    hosts = {tree.host((a,)) for a in clique}
    if len({tree.component[h] for h in hosts}) > 1:
        return cells(clique, tree.sizes)
    nodes, root = steiner(tree, hosts)
    joined = set(clique)
    for node in nodes:
        if node != root:
            joined |= set(tree.separator(node, tree.parent[node]))
    return cells(tuple(sorted(joined)), tree.sizes)


def _fits(cliques: set[Clique], sizes: tuple[int, ...], max_cells: int) -> bool:
    from privsynth.errors import ModelTooLargeError

    try:
        JunctionTree(sorted(cliques), sizes, max_cells=max_cells)
    except ModelTooLargeError:
        return False
    return True


class AIM:
    """The generator: :func:`fit_aim` (it estimates as it goes)."""

    name = "aim"
    summary = "adaptive selection of the marginals the model gets most wrong (AIM)"

    def fit(self, problem: Problem, accountant: Accountant) -> Fitted:
        # merges rare cells of every column, ordered ones too: measured on the four shared
        # tables this lowered the 3-way error at most budgets (docs/generator.md)
        measurements, compressions, estimate = fit_aim(
            problem.codes, problem.sizes, accountant, problem.names, problem.progress, compressible=None,
            threshold=1.0, max_cells=problem.max_cells, prior=problem.prior)
        return Fitted(measurements, compressions, estimate)


register(AIM())
