"""Estimation: a graphical model whose marginals best fit the noisy measurements.

Private-PGM's estimator (McKenna et al., 2019) over numpy: minimise
``sum_i ||mu_{C_i} - y_i||^2 / (2 sigma_i^2)`` over the marginal polytope by entropic
mirror descent -- gradient steps on log-potentials, belief propagation for the
marginals -- with backtracking on the step size. The result is one consistent
distribution: every clique marginal agrees with every other. Pure post-processing of
DP measurements; no data is read here.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from privsynth.generator.factor import Clique, expand, project
from privsynth.generator.junction import DEFAULT_MAX_CELLS, JunctionTree


@dataclass(frozen=True)
class Measurement:
    """A noisy marginal: ``values`` over ``clique`` with Gaussian noise of ``sigma``.

    ``sigma`` is one scale for every cell, or an array of per-cell scales (a merged cell
    of a compressed domain is a sum of several noisy cells).
    """

    clique: Clique
    values: np.ndarray
    sigma: float | np.ndarray

    @property
    def variance(self) -> np.ndarray:
        return np.broadcast_to(np.asarray(self.sigma, dtype=np.float64) ** 2, self.values.shape)


@dataclass(frozen=True)
class Estimate:
    tree: JunctionTree
    marginals: list[np.ndarray]
    potentials: dict[Clique, np.ndarray]
    total: float
    loss: float
    iterations: int


def clique_log_potentials(
    tree: JunctionTree, potentials: dict[Clique, np.ndarray], hosts: dict[Clique, int] | None = None,
) -> dict[int, np.ndarray]:
    """The log-potentials on cliques, summed into the tree clique that hosts each."""
    if hosts is None:
        hosts = {c: tree.host(c) for c in potentials}
    logs: dict[int, np.ndarray] = {}
    for c in sorted(potentials, key=lambda c: (len(c), c)):
        h = hosts[c]
        logs[h] = logs.get(h, 0.0) + expand(potentials[c], c, tree.cliques[h], tree.sizes)
    return {h: np.broadcast_to(v, tuple(tree.sizes[a] for a in tree.cliques[h])).copy() for h, v in logs.items()}


def clique_marginals(
    tree: JunctionTree, potentials: dict[Clique, np.ndarray], total: float,
    hosts: dict[Clique, int] | None = None,
) -> list[np.ndarray]:
    """Calibrated marginals (in counts) of every tree clique for log-potentials on cliques."""
    return tree.calibrate(clique_log_potentials(tree, potentials, hosts), total)


def estimate_total(measurements: Sequence[Measurement]) -> float:
    """Inverse-variance weighted record count from the measurements' sums (at least 1)."""
    num = 0.0
    den = 0.0
    for m in measurements:
        var = float(m.variance.sum())
        num += float(m.values.sum()) / var
        den += 1.0 / var
    return max(1.0, num / den) if den > 0 else 1.0


def _tree_start(
    measurements: Sequence[Measurement], tree: JunctionTree, sizes: tuple[int, ...],
    zeros: dict[Clique, np.ndarray],
) -> dict[Clique, np.ndarray]:
    """Start from the junction-tree factorisation of the noisy marginals when every tree
    clique was measured: log p = sum over cliques of log p_C - sum over separators of log p_S.

    For MST this is the tree-structured distribution the measurements describe (made
    positive and normalised); mirror descent then only has to reconcile the overlaps.
    Otherwise the uniform start is kept.
    """
    measured: dict[Clique, np.ndarray] = {}
    for m in measurements:
        if m.clique not in measured:
            p = np.clip(m.values, 0, None) + 0.5
            measured[m.clique] = p / p.sum()
    if not all(c in measured and c in zeros for c in tree.cliques):
        return zeros
    start = {c: v.copy() for c, v in zeros.items()}
    for c in tree.cliques:
        start[c] = start[c] + np.log(measured[c])
    for i, j in tree.edges:  # i -> j in the spanning tree: divide by the separator once
        sep = tree.separator(i, j)
        if not sep:
            continue
        child = tree.cliques[j]
        p_sep = project(measured[child], child, sep)
        start[child] = start[child] - expand(np.log(p_sep), sep, child, sizes)
    return start


def mirror_descent(
    measurements: Sequence[Measurement],
    sizes: Sequence[int],
    *,
    iterations: int = 500,
    total: float | None = None,
    warm_start: dict[Clique, np.ndarray] | None = None,
    max_cells: int = DEFAULT_MAX_CELLS,
    callback: Callable[[int, float], None] | None = None,
    tol: float = 1e-3,
    masks: dict[Clique, np.ndarray] | None = None,
) -> Estimate:
    """Fit log-potentials on the measured cliques so their marginals match the measurements.

    ``masks``: structural zeros, log-potentials of 0 (possible) or -inf (impossible) on
    cliques that join the model whether measured or not. They are added once and never
    move: a step subtracts a finite gradient from -inf, which stays -inf, so an impossible
    cell keeps probability exactly 0."""
    sizes = tuple(int(s) for s in sizes)
    masks = masks or {}
    cliques = sorted({m.clique for m in measurements} | set(masks), key=lambda c: (len(c), c))
    tree = JunctionTree(cliques, sizes, max_cells=max_cells)
    hosts = {c: tree.host(c) for c in cliques}
    n_total = estimate_total(measurements) if total is None else float(total)
    potentials = {
        c: (warm_start[c].copy() if warm_start and c in warm_start else np.zeros(tuple(sizes[a] for a in c)))
        for c in cliques
    }
    if not warm_start:
        potentials = _tree_start(measurements, tree, sizes, potentials)
    for c, mask in masks.items():  # idempotent: a warm start carries them already
        potentials[c] = potentials[c] + mask
    by_clique: dict[Clique, list[tuple[np.ndarray, np.ndarray]]] = {}
    for m in measurements:
        shape = tuple(sizes[a] for a in m.clique)
        by_clique.setdefault(m.clique, []).append((m.values.reshape(shape), m.variance.reshape(shape)))

    def marginals_of(pot: dict[Clique, np.ndarray]) -> list[np.ndarray]:
        return clique_marginals(tree, pot, n_total, hosts)

    def loss_and_grad(
        margs: list[np.ndarray],
    ) -> tuple[float, dict[Clique, np.ndarray], dict[Clique, np.ndarray]]:
        loss = 0.0
        grads: dict[Clique, np.ndarray] = {}
        mus: dict[Clique, np.ndarray] = {}
        for c, ms in by_clique.items():
            mu = project(margs[hosts[c]], tree.cliques[hosts[c]], c)
            g = np.zeros_like(mu)
            for values, var in ms:
                diff = mu - values
                loss += 0.5 * float((diff * diff / var).sum())
                g += diff / var
            grads[c] = g
            mus[c] = mu
        return loss, grads, mus

    margs = marginals_of(potentials)
    loss, grads, mus = loss_and_grad(margs)
    min_var = min(float(m.variance.min()) for m in measurements)
    alpha = min_var / n_total
    done = 0
    history: list[float] = []
    for done in range(1, iterations + 1):
        for _ in range(30):
            trial = {c: potentials[c] - alpha * grads[c] if c in grads else potentials[c] for c in potentials}
            trial_margs = marginals_of(trial)
            trial_loss, trial_grads, trial_mus = loss_and_grad(trial_margs)
            # Armijo condition on the linearisation in marginal space
            decrease = sum(float((grads[c] * (mus[c] - trial_mus[c])).sum()) for c in grads)
            if trial_loss <= loss - 0.5 * decrease or decrease <= 0:
                break
            alpha *= 0.5
        improvement = loss - trial_loss
        potentials, margs, loss, grads, mus = trial, trial_margs, trial_loss, trial_grads, trial_mus
        alpha *= 1.25
        if callback is not None:
            callback(done, loss)
        history.append(loss)
        if 0 <= improvement <= 1e-9 * max(1.0, abs(loss)):
            break
        # converged: the last 10 steps gained less than tol of the loss
        if len(history) > 10 and history[-11] - loss <= tol * max(1.0, abs(loss)):
            break
    return Estimate(tree, margs, potentials, n_total, loss, done)
