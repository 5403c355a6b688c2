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
from dataclasses import asdict, dataclass
from math import comb

import numpy as np

from privsynth.generator.compress import Compression
from privsynth.generator.constraint import compress_masks
from privsynth.generator.counts import Counts
from privsynth.generator.estimate import Estimate, Measurement, mirror_descent
from privsynth.generator.factor import Clique, cells
from privsynth.generator.junction import JunctionTree
from privsynth.generator.measure import SAFETY, measure, measure_one_ways, measure_structure
from privsynth.generator.protocol import Fitted, Problem
from privsynth.generator.query import marginal, steiner
from privsynth.generator.registry import register
from privsynth.privacy.accounting import Accountant
from privsynth.privacy.mechanism import gaussian_scale, select_max


@dataclass(frozen=True)
class AimSettings:
    """AIM's tunables, in one frozen record that ``privacy.json`` carries (``generator_settings``):
    what budget plan, rounds and model limits a fit used. None of them reads the data; each
    is explained where it is used and measured in docs/generator.md.
    """

    one_way_share: float = 0.1  # of rho, on every 1-way marginal (first pass)
    noisy_share: float = 0.5  # a second pass over the 1-way marginals in the noisy regime
    noisy_ratio: float = 10.0  # noisy regime: patients per cell (DP estimate) below this many sigma of a
    noisy_reference_share: float = 0.3  # ... 1-way marginal measured with this share of rho
    hopeless_tvd: float = 0.1  # 1-ways only when even one typical pair measured with all of rho is noisier
    rich_tvd: tuple[float, float] = (0.01, 0.03)  # between these, the 1-way marginals get up to LEAN_SHARE more
    lean_share: float = 0.2
    select_share: float = 0.1  # of each round
    rounds_per_column: float = 3.0  # first-round size: rho left / (this * d); AIM uses 16
    round_iterations: int = 20  # mirror-descent steps between rounds (warm-started)
    final_iterations: int = 300  # for the final estimate
    final_tol: float = 1e-3
    clique_cells_min: int = 10_000  # wide tables, largest model clique: at least this many cells,
    clique_cells_per_patient: float = 12.0  # ... this many per (DP-estimated) patient,
    clique_cells_max: int = 50_000  # ... and at most this many (small tables: only max_cells)
    all_triples_up_to: int = 20  # a "small" table: every 3-way marginal is a candidate; wider ones use WIDE_*
    wide_rounds_per_column: float = 1.0
    wide_scorings: int = 12  # scoring passes at most (several selections per pass)
    wide_round_iterations: int = 15
    wide_candidates: int = 800  # scored per pass at most (a fresh random subset)
    batch_free_tvd: float = 1e-3
    batch_overlap: int = 1  # a batch skips candidates sharing this many columns with an earlier pick
    max_candidate_cells: int = 100_000  # a larger marginal is never a candidate


AIM_SETTINGS = AimSettings()


def typical_pair_tvd(n_hat: float, sizes: tuple[int, ...], rho: float) -> float:
    """Expected total-variation error of one typical pair (mean size squared cells) of
    ``n_hat`` patients measured with ``rho``: the signal statistic the plan reads."""
    mean_size = float(np.mean(sizes))
    return math.sqrt(2.0 / math.pi) * gaussian_scale(rho) * mean_size ** 2 / (2.0 * n_hat)


def one_way_plan(n_hat: float, sizes: tuple[int, ...], rho: float, rho_left: float,
                 settings: AimSettings = AIM_SETTINGS) -> list[float]:
    """The share of ``rho`` for each further pass over the 1-way marginals, given the DP
    estimate ``n_hat`` of the number of patients after the first pass (and only public
    sizes and budgets otherwise).

    - *hopeless*: a typical pair (mean size squared cells) measured with all of
      ``rho_left`` would still have an expected total-variation error above
      ``settings.hopeless_tvd``: no adaptive round can find structure, so everything left goes
      to the 1-way marginals (independent columns, measured as well as the budget allows);
    - *noisy*: fewer patients per average cell than ``settings.noisy_ratio`` noise standard
      deviations of a 1-way marginal measured with ``settings.noisy_reference_share`` of rho: the
      1-way marginals, on which every later estimate rests, get ``settings.noisy_share`` more;
    - otherwise, between *rich* (that pair's error below ``settings.rich_tvd[0]``: no more) and
      *lean* (above ``settings.rich_tvd[1]``: ``settings.lean_share`` more), linearly in that error.
    Measured on the shared harness's tables (docs/generator.md): the 1-way share that
    minimised the 3-way error went from 0.1 (flchain, epsilon 3) to 0.3 (flchain,
    epsilon 0.3) to all of it (whas500, epsilon 0.3).
    """
    if rho_left <= 0:  # the structural prior takes everything after the first pass
        return []
    d = len(sizes)
    mean_size = float(np.mean(sizes))
    pair_tvd = typical_pair_tvd(n_hat, sizes, rho_left)
    if pair_tvd > settings.hopeless_tvd:
        return [rho_left / rho]
    if n_hat / mean_size < settings.noisy_ratio * gaussian_scale(settings.noisy_reference_share * rho / d):
        return [min(settings.noisy_share, rho_left / rho)]
    low, high = settings.rich_tvd
    extra = min(settings.lean_share * min(1.0, max(0.0, (pair_tvd - low) / (high - low))), rho_left / rho)
    return [extra] if extra > 0 else []


def workload_weight(size: int, d: int, order: int = 3) -> float:
    """AIM's weight of a clique of ``size`` columns: sum over workload cliques q of |r & q|."""
    return float(sum(k * comb(size, k) * comb(d - size, order - k) for k in range(1, min(size, order) + 1)))


def fit_aim(problem: Problem, accountant: Accountant,
            settings: AimSettings = AIM_SETTINGS) -> tuple[list[Measurement], list[Compression], Estimate]:
    """Spend the accountant's remaining rho adaptively; return measurements, compressions, model.

    ``problem.prior``: public structure (structural zeros, marginals measured first, protected
    columns); see :mod:`privsynth.generator.prior`."""
    first = _first_pass(problem, accountant, settings)
    if len(problem.sizes) == 1:
        return first.measurements, first.compressions, first.estimate
    rounds = _Rounds(problem, accountant, settings, first)
    rounds.run()
    estimate = mirror_descent(first.measurements, first.sizes, iterations=settings.final_iterations,
                              max_cells=problem.max_cells, warm_start=rounds.estimate.potentials,
                              tol=settings.final_tol, masks=first.masks)
    return first.measurements, first.compressions, estimate


@dataclass
class _FirstPass:
    """What the 1-way marginals (and the structural prior's marginals) gave: the compressed
    codes and sizes every later marginal reads, the measurements so far and their estimate."""

    measurements: list[Measurement]
    compressions: list[Compression]
    small: Counts
    sizes: tuple[int, ...]
    masks: dict[Clique, np.ndarray]
    estimate: Estimate
    rho: float  # what the accountant had left when AIM began


def _first_pass(problem: Problem, accountant: Accountant, settings: AimSettings) -> _FirstPass:
    """The 1-way marginals (sized by :func:`one_way_plan`), then the structural prior's."""
    sizes, prior = problem.sizes, problem.prior
    d = len(sizes)
    rho = accountant.rho_remaining
    rho_one = prior.rho_one_way(rho * settings.one_way_share) * SAFETY
    rho_structure = rho * prior.structure_share if prior.structure else 0.0
    rho_left = rho * (1.0 - settings.one_way_share) - rho_structure

    def more(n_hat: float) -> list[np.ndarray]:
        plan = one_way_plan(n_hat, sizes, rho, rho_left, settings)
        return [prior.rho_one_way(rho * share) * SAFETY for share in plan]

    measurements, compressions, small = measure_one_ways(problem.data, accountant, problem.names, rho_one,
                                                         prior.compressible(None), 1.0, then=more)
    small_sizes = small.sizes
    problem.report("measure 1-way", d, d)
    masks = compress_masks(prior.masks, compressions)
    if prior.structure:
        measurements += measure_structure(small, prior.structure,
                                          min(rho_structure, accountant.rho_remaining), accountant, problem.names)
    estimate = mirror_descent(measurements, small_sizes, iterations=settings.round_iterations * 2,
                              max_cells=problem.max_cells, masks=masks)
    return _FirstPass(measurements, compressions, small, small_sizes, masks, estimate, rho)


class _Rounds:
    """AIM's adaptive rounds: score the candidates against the model, select by
    report-noisy-max (a batch per scoring pass on wide tables), measure, re-estimate, and
    anneal when a round did not move the model. Every choice reads only public sizes, the
    DP model and earlier DP selections."""

    def __init__(self, problem: Problem, accountant: Accountant, settings: AimSettings, first: _FirstPass) -> None:
        self.problem, self.accountant, self.settings, self.first = problem, accountant, settings, first
        self.estimate = first.estimate
        d = len(first.sizes)
        self.rho = first.rho
        order = min(3, d)  # the workload: all marginals of `order` columns
        self.weights = {k: workload_weight(k, d, order) for k in range(1, order + 1)}
        self.sensitivity = max(self.weights.values())
        self.truth: dict[Clique, np.ndarray] = {}
        self.measured: set[Clique] = {(a,) for a in range(d)} | set(problem.prior.structure)
        self.zeros = set(first.masks)  # in the model (and its size), but not measured: no candidates grow from them
        self.refused: set[Clique] = set()
        self.wide = d > settings.all_triples_up_to
        # on wide tables the model's cliques stay within what a round can afford (and the data
        # can support): a DP estimate of the number of patients times clique_cells_per_patient,
        # within bounds; small tables only have max_cells
        self.clique_limit = problem.max_cells if not self.wide else int(min(
            problem.max_cells, settings.clique_cells_max,
            max(settings.clique_cells_min, settings.clique_cells_per_patient * self.estimate.total)))
        per_column = settings.wide_rounds_per_column if self.wide else settings.rounds_per_column
        self.rounds_planned = max(4, int(round(per_column * d)))
        # wide tables: several selections from one scoring pass (each its own report-noisy-max,
        # each charged), so that scoring runs at most wide_scorings times ... unless measurements
        # are so precise (typical pair error below batch_free_tvd) that each one moves the model
        # a lot and the next scores must see it
        precise = (typical_pair_tvd(self.estimate.total, first.sizes, accountant.rho_remaining)
                   < settings.batch_free_tvd)
        self.batch = (max(1, math.ceil(self.rounds_planned / settings.wide_scorings))
                      if self.wide and not precise else 1)
        self.iterations = (min(settings.round_iterations, settings.wide_round_iterations) if self.wide
                           else settings.round_iterations)
        self.rho_round = accountant.rho_remaining / self.rounds_planned
        self.subset_rng = np.random.default_rng()  # OS entropy; which marginals are scored, not which patients
        self.step = 0

    def run(self) -> None:
        while self.accountant.rho_remaining > 1e-6 * self.rho:  # (the 1-way plan may have spent it all)
            remaining = self.accountant.rho_remaining
            if remaining <= 2.0 * self.rho_round * self.batch:  # the last batch spends what is left
                self.rho_round = remaining / self.batch
            rho_select = self.rho_round * self.settings.select_share * SAFETY
            rho_measure = self.rho_round * (1 - self.settings.select_share) * SAFETY
            sigma = gaussian_scale(rho_measure)
            candidates = self._candidates()
            if not candidates:
                break
            picked = self._select_and_measure(candidates, self._scores(candidates, sigma), rho_select, rho_measure)
            if picked:
                self._update(picked, sigma)

    def _candidates(self) -> list[Clique]:
        settings, sizes = self.settings, self.first.sizes
        candidates = _candidates(self.measured, self.refused, sizes, settings.max_candidate_cells, settings)
        if self.wide and len(candidates) > settings.wide_candidates:  # a fresh random subset each pass (public)
            keep = np.sort(self.subset_rng.choice(len(candidates), settings.wide_candidates, replace=False))
            candidates = [candidates[k] for k in keep.tolist()]
        return [c for c in candidates if _growth(self.estimate.tree, c) <= self.clique_limit]

    def _scores(self, candidates: list[Clique], sigma: float) -> np.ndarray:
        """AIM's score: the workload-weighted L1 gap to the model minus the measurement's own expected error."""
        scores = np.empty(len(candidates))
        missing = [r for r in candidates if r not in self.truth]
        for r, table in zip(missing, self.first.small.many(missing)):  # one engine pass for the lot
            self.truth[r] = table  # exact integer counts (measured as they are when chosen)
        for k, r in enumerate(candidates):
            model = marginal(self.estimate.tree, self.estimate.marginals, r)
            penalty = math.sqrt(2.0 / math.pi) * sigma * self.truth[r].size
            scores[k] = self.weights[len(r)] * (float(np.abs(self.truth[r] - model).sum()) - penalty)
        return scores

    def _select_and_measure(self, candidates: list[Clique], scores: np.ndarray, rho_select: float,
                            rho_measure: float) -> list[tuple[Clique, np.ndarray]]:
        """Up to a batch of selections from one scoring pass, each charged, each measured."""
        accountant, names, first = self.accountant, self.problem.names, self.first
        open_ = list(range(len(candidates)))
        picked: list[tuple[Clique, np.ndarray]] = []
        for _ in range(self.batch):
            if not open_ or accountant.rho_remaining <= 1e-6 * self.rho:
                break
            index, release = select_max(scores[open_], min(rho_select, accountant.rho_remaining * SAFETY),
                                        self.sensitivity)
            chosen = candidates[open_[index]]
            accountant.charge(f"select {' x '.join(names[a] for a in chosen)}", release)
            # the rest of the batch skips what shares batch_overlap columns with the pick (public)
            open_ = [j for j in open_ if len(set(candidates[j]) & set(chosen)) < self.settings.batch_overlap]
            if not _fits(self.measured | self.zeros | {chosen}, first.sizes, self.problem.max_cells):
                self.refused.add(chosen)  # public: depends only on sizes and earlier selections
                continue
            before = marginal(self.estimate.tree, self.estimate.marginals, chosen)
            first.measurements.append(measure(first.small, chosen,
                                              min(rho_measure, accountant.rho_remaining * SAFETY), accountant,
                                              f"{len(chosen)}-way {' x '.join(names[a] for a in chosen)}",
                                              self.truth.get(chosen)))
            self.measured.add(chosen)
            picked.append((chosen, before))
        return picked

    def _update(self, picked: list[tuple[Clique, np.ndarray]], sigma: float) -> None:
        """Re-estimate (warm-started) and anneal when no pick moved the model beyond its noise."""
        first = self.first
        self.estimate = mirror_descent(first.measurements, first.sizes, iterations=self.iterations,
                                       max_cells=self.problem.max_cells, warm_start=self.estimate.potentials,
                                       total=self.estimate.total, masks=first.masks)
        self.step += len(picked)
        self.problem.report("select+measure", self.step, max(self.step, self.rounds_planned))
        noise = math.sqrt(2.0 / math.pi) * sigma
        if all(float(np.abs(marginal(self.estimate.tree, self.estimate.marginals, c) - before).sum())
               <= noise * cells(c, first.sizes) for c, before in picked):
            self.rho_round *= 4.0  # annealing: the model did not move, so measure more precisely


def _candidates(measured: set[Clique], refused: set[Clique], sizes: tuple[int, ...],
                max_candidate_cells: int, settings: AimSettings = AIM_SETTINGS) -> list[Clique]:
    d = len(sizes)
    out: set[Clique] = {(a,) for a in range(d)} | set(itertools.combinations(range(d), 2))
    if d <= settings.all_triples_up_to:
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
        measurements, compressions, estimate = fit_aim(problem, accountant, AIM_SETTINGS)
        return Fitted(measurements, compressions, estimate, asdict(AIM_SETTINGS))


register(AIM())
