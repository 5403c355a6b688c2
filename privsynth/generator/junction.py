"""A junction tree over numpy: triangulation, belief propagation, forward sampling.

The tree is built once for a set of model cliques (greedy min-fill triangulation, then
a maximum spanning tree on separator sizes). Belief propagation runs in log space on
plain numpy arrays -- no compilation step -- and memory is bounded by refusing a tree
whose largest clique would not fit in ``max_cells``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from privsynth.errors import ModelTooLargeError
from privsynth.generator.factor import Clique, cells
from privsynth.generator.forest import DisjointSets

DEFAULT_MAX_CELLS = 5_000_000  # 40 MB per float64 table


class JunctionTree:
    """Cliques of a triangulated graph, their tree, and a message schedule."""

    def __init__(
        self, model_cliques: Sequence[Clique], sizes: Sequence[int], max_cells: int = DEFAULT_MAX_CELLS
    ) -> None:
        self.sizes = tuple(int(s) for s in sizes)
        d = len(self.sizes)
        covered = {a for c in model_cliques for a in c}
        cliques = [tuple(sorted(c)) for c in model_cliques] + [(a,) for a in range(d) if a not in covered]
        self.cliques = _triangulate(cliques, self.sizes, max_cells)
        self.edges = _spanning_tree(self.cliques)
        self.order = _schedule(len(self.cliques), self.edges)
        self.neighbours: dict[int, list[int]] = {i: [] for i in range(len(self.cliques))}
        for i, j in self.edges:
            self.neighbours[i].append(j)
            self.neighbours[j].append(i)
        # precomputed for belief propagation: separator, axes to sum, shape to broadcast
        self._sep: dict[tuple[int, int], Clique] = {}
        self._sum_axes: dict[tuple[int, int], tuple[int, ...]] = {}
        self._into: dict[tuple[int, int], tuple[int, ...]] = {}
        for i, j in self.edges:
            for a, b in ((i, j), (j, i)):
                sep = tuple(sorted(set(self.cliques[a]) & set(self.cliques[b])))
                self._sep[(a, b)] = sep
                self._sum_axes[(a, b)] = tuple(k for k, x in enumerate(self.cliques[a]) if x not in sep)
                # a message a -> b, reshaped to broadcast over clique b
                self._into[(a, b)] = tuple(self.sizes[x] if x in sep else 1 for x in self.cliques[b])
        self._shapes = [tuple(self.sizes[a] for a in c) for c in self.cliques]
        self._sets = [frozenset(c) for c in self.cliques]
        self._cells = [cells(c, self.sizes) for c in self.cliques]
        self._hosts: dict[Clique, int] = {}
        self._uncovered: set[Clique] = set()
        # the forest rooted once (each component at its lowest index): parent, depth, component
        k = len(self.cliques)
        self.parent = [-1] * k
        self.depth = [0] * k
        self.component = [-1] * k
        for root in range(k):
            if self.component[root] >= 0:
                continue
            self.component[root] = root
            stack = [root]
            while stack:
                i = stack.pop()
                for j in self.neighbours[i]:
                    if self.component[j] < 0:
                        self.component[j], self.parent[j], self.depth[j] = root, i, self.depth[i] + 1
                        stack.append(j)

    def host(self, clique: Clique) -> int:
        """The index of the smallest tree clique that contains ``clique`` (memoised)."""
        key = tuple(sorted(clique))
        found = self._hosts.get(key)
        if found is not None:
            return found
        best = -1
        best_cells = None
        want = set(key)
        for i, members in enumerate(self._sets):
            if want <= members:
                n = self._cells[i]
                if best_cells is None or n < best_cells:
                    best, best_cells = i, n
        if best < 0:
            raise ValueError("clique not covered by the junction tree")
        self._hosts[key] = best
        return best

    def covering(self, clique: Clique) -> int:
        """Like :meth:`host`, but -1 when no single tree clique contains ``clique``."""
        key = tuple(sorted(clique))
        found = self._hosts.get(key)
        if found is not None:
            return found
        if key in self._uncovered:
            return -1
        want = set(key)
        if any(want <= members for members in self._sets):
            return self.host(key)
        self._uncovered.add(key)
        return -1

    def separator(self, i: int, j: int) -> Clique:
        found = self._sep.get((i, j))
        if found is not None:
            return found
        return tuple(sorted(set(self.cliques[i]) & set(self.cliques[j])))

    def calibrate(self, log_potentials: dict[int, np.ndarray], total: float) -> list[np.ndarray]:
        """Belief propagation: the marginal (in counts summing to ``total``) of every clique.

        Messages are passed in probability space (each potential scaled by its maximum,
        each message normalised), which needs no exp/log per message; when that underflows
        (a clique whose whole belief rounds to 0) it is done again in log space."""
        with np.errstate(divide="ignore", invalid="ignore", under="ignore"):  # evidence (log 0 = -inf) is allowed
            out = self._calibrate_linear(log_potentials, total)
            return out if out is not None else self._calibrate(log_potentials, total)

    def _calibrate_linear(self, log_potentials: dict[int, np.ndarray], total: float) -> list[np.ndarray] | None:
        k = len(self.cliques)
        probs: list[np.ndarray | None] = [None] * k
        for i, lp in log_potentials.items():
            top = lp.max()
            if not np.isfinite(top):
                return None
            probs[i] = np.exp(lp - top)
        messages: dict[tuple[int, int], np.ndarray] = {}
        for i, j in self.order:  # collect then distribute
            belief = probs[i]
            for n in self.neighbours[i]:
                if n != j and (n, i) in messages:
                    incoming = messages[(n, i)].reshape(self._into[(n, i)])
                    belief = incoming if belief is None else belief * incoming
            if belief is None:
                belief = np.ones(self._shapes[i])
            axes = self._sum_axes[(i, j)]
            message = belief.sum(axis=axes) if axes else belief
            norm = float(message.sum())
            if not (norm > 0 and np.isfinite(norm)):
                return None
            messages[(i, j)] = message / norm
        out: list[np.ndarray] = []
        for i in range(k):
            belief = probs[i]
            for n in self.neighbours[i]:
                incoming = messages[(n, i)].reshape(self._into[(n, i)])
                belief = incoming if belief is None else belief * incoming
            if belief is None:
                belief = np.ones(self._shapes[i])
            else:
                belief = np.broadcast_to(belief, self._shapes[i])
            norm = float(belief.sum())
            if not (norm > 0 and np.isfinite(norm)):
                return None
            out.append(belief * (total / norm))
        return out

    def _calibrate(self, log_potentials: dict[int, np.ndarray], total: float) -> list[np.ndarray]:
        k = len(self.cliques)
        beliefs = [log_potentials[i] if i in log_potentials else np.zeros(self._shapes[i]) for i in range(k)]
        messages: dict[tuple[int, int], np.ndarray] = {}
        for i, j in self.order:  # collect then distribute
            belief = beliefs[i]
            for n in self.neighbours[i]:
                if n != j and (n, i) in messages:
                    belief = belief + messages[(n, i)].reshape(self._into[(n, i)])
            axes = self._sum_axes[(i, j)]
            if axes:
                top = belief.max(axis=axes, keepdims=True)
                top = np.where(np.isfinite(top), top, 0.0)
                messages[(i, j)] = np.log(np.exp(belief - top).sum(axis=axes)) + top.reshape(
                    [s for x, s in enumerate(top.shape) if x not in axes])
            else:
                messages[(i, j)] = belief
        out: list[np.ndarray] = []
        for i in range(k):
            belief = beliefs[i]
            for n in self.neighbours[i]:
                belief = belief + messages[(n, i)].reshape(self._into[(n, i)])
            top = belief.max()
            probs = np.exp(belief - (top if np.isfinite(top) else 0.0))
            out.append(probs * (total / probs.sum()))
        return out

    def sample(
        self, marginals: Sequence[np.ndarray], n: int, rng: np.random.Generator, stratified: bool = True,
        given: dict[int, np.ndarray] | None = None, tables: dict[int, tuple[Clique, Clique, np.ndarray]] | None = None,
    ) -> np.ndarray:
        """Draw ``n`` rows (integer codes) from calibrated clique marginals.

        Forward sampling along the tree. With ``stratified`` (default), the rows that share
        a separator value get stratified uniforms (one per equal stratum, in random order)
        instead of independent ones: each row's draw is still uniform and independent of
        everything sampled so far except through the separator, so no spurious correlation
        appears (unlike rounding to sorted ranks), but the sample's marginals sit closer to
        the model's. ``stratified=False`` draws plain i.i.d. rows.

        ``given`` fixes some columns (index -> codes of every row); the others are drawn
        given them. That is exact when ``marginals`` are calibrated on that evidence.

        ``tables``: a dict kept by the caller with the same ``marginals`` and given columns:
        each clique's conditional table is made once and read again on the next call.
        """
        d = len(self.sizes)
        largest = max(self.sizes, default=1)
        dtype = np.int8 if largest <= 127 else np.int16 if largest <= 32767 else np.int32
        out = np.zeros((n, d), dtype=dtype)
        done: set[int] = set()
        for a, codes in (given or {}).items():
            out[:, a] = codes
            done.add(a)
        visited: set[int] = set()
        for root in range(len(self.cliques)):
            if root in visited:
                continue
            stack = [root]
            visited.add(root)
            while stack:
                i = stack.pop()
                _sample_clique(self.cliques[i], marginals[i], done, out, self.sizes, rng, stratified,
                               tables, i)
                done.update(self.cliques[i])
                for nb in self.neighbours[i]:
                    if nb not in visited:
                        visited.add(nb)
                        stack.append(nb)
        return out


def _conditional(clique: Clique, marginal: np.ndarray, done: set[int], sizes: Sequence[int]
                 ) -> tuple[Clique, Clique, np.ndarray]:
    """A clique's columns already drawn, those to draw, and the cumulative distribution of
    the latter given the former (a row per configuration of the drawn ones)."""
    given = tuple(a for a in clique if a in done)
    new = tuple(a for a in clique if a not in done)
    if not new:
        return given, new, np.zeros((1, 1))
    # reorder axes to (given..., new...) and flatten to a (given configs x new configs) table
    perm = [clique.index(a) for a in given + new]
    table = np.transpose(np.clip(marginal, 0, None), perm)
    g_cells = int(np.prod([sizes[a] for a in given], dtype=np.int64)) if given else 1
    table = table.reshape(g_cells, -1)
    totals = table.sum(axis=1, keepdims=True)
    probs = np.where(totals > 0, table / np.where(totals > 0, totals, 1), 1.0 / table.shape[1])
    cdf = np.cumsum(probs, axis=1)
    cdf[:, -1] = 1.0
    return given, new, cdf


def _sample_clique(
    clique: Clique, marginal: np.ndarray, done: set[int], out: np.ndarray,
    sizes: Sequence[int], rng: np.random.Generator, stratified: bool,
    tables: dict[int, tuple[Clique, Clique, np.ndarray]] | None = None, key: int = 0,
) -> None:
    found = tables.get(key) if tables is not None else None
    if found is None:
        found = _conditional(clique, marginal, done, sizes)
        if tables is not None:
            tables[key] = found
    given, new, cdf = found
    if not new:
        return
    n = out.shape[0]
    if given:
        gidx = np.ravel_multi_index(tuple(out[:, a] for a in given), tuple(sizes[a] for a in given))
    else:
        gidx = np.zeros(n, dtype=np.int64)
    u: np.ndarray = np.asarray(rng.random(n))
    picked = np.empty(n, dtype=np.int64)
    order = np.argsort(gidx, kind="stable")
    sorted_g = gidx[order]
    starts = np.flatnonzero(np.r_[True, sorted_g[1:] != sorted_g[:-1]])
    ends = np.r_[starts[1:], n]
    for s, e in zip(starts.tolist(), ends.tolist()):
        rows = order[s:e]
        row_cdf = np.asarray(cdf[int(sorted_g[s])])
        draws = np.asarray(u[rows])
        if stratified:
            # one uniform in each of m equal strata, dealt to the group's rows in random order:
            # every row still gets a U(0,1) draw, but the group's counts match its conditional
            # distribution up to rounding instead of multinomial noise
            m = e - s
            draws = (rng.permutation(m) + draws) / m
        picked[rows] = np.searchsorted(row_cdf, draws, side="right")
    picked = np.minimum(picked, cdf.shape[1] - 1)
    values = np.unravel_index(picked, tuple(sizes[a] for a in new))
    for a, v in zip(new, values):
        out[:, a] = v


def _triangulate(cliques: list[Clique], sizes: tuple[int, ...], max_cells: int) -> list[Clique]:
    """Greedy min-fill elimination; returns the maximal cliques of the chordal graph."""
    d = len(sizes)
    adj: dict[int, set[int]] = {a: set() for a in range(d)}
    for c in cliques:
        for a in c:
            adj[a].update(b for b in c if b != a)
    remaining = set(range(d))
    found: list[set[int]] = []
    while remaining:
        def fill(v: int) -> tuple[int, int]:
            nb = [u for u in adj[v] if u in remaining]
            missing = sum(1 for x in range(len(nb)) for y in range(x + 1, len(nb)) if nb[y] not in adj[nb[x]])
            return missing, cells(tuple(nb) + (v,), sizes)

        v = min(remaining, key=lambda x: (fill(x), x))
        nb = {u for u in adj[v] if u in remaining}
        clique = nb | {v}
        if cells(tuple(clique), sizes) > max_cells:
            raise ModelTooLargeError(
                f"the model needs a clique of {cells(tuple(clique), sizes):,} cells "
                f"(limit {max_cells:,}); select fewer or smaller marginals, or coarsen bins"
            )
        for a in nb:
            adj[a].update(nb - {a})
        found.append(clique)
        remaining.remove(v)
    maximal = [c for c in found if not any(c < o for o in found)]
    unique: list[Clique] = []
    for members in maximal:
        t = tuple(sorted(members))
        if t not in unique:
            unique.append(t)
    return unique


def _spanning_tree(cliques: list[Clique]) -> list[tuple[int, int]]:
    """Kruskal maximum spanning tree on separator size (a forest if disconnected)."""
    k = len(cliques)
    weighted = sorted(
        ((len(set(cliques[i]) & set(cliques[j])), i, j) for i in range(k) for j in range(i + 1, k)),
        reverse=True,
    )
    sets = DisjointSets(k)
    return [(i, j) for _, i, j in weighted if sets.union(i, j)]


def _schedule(k: int, edges: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Messages leaves-to-root then root-to-leaves, for every tree of the forest."""
    nbrs: dict[int, list[int]] = {i: [] for i in range(k)}
    for i, j in edges:
        nbrs[i].append(j)
        nbrs[j].append(i)
    seen: set[int] = set()
    down: list[tuple[int, int]] = []
    for r in range(k):
        if r in seen:
            continue
        seen.add(r)
        queue = [r]
        while queue:
            i = queue.pop(0)
            for j in nbrs[i]:
                if j not in seen:
                    seen.add(j)
                    down.append((i, j))
                    queue.append(j)
    up = [(j, i) for i, j in reversed(down)]
    return up + down
