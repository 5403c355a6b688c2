"""Private-PGM's reference MST, run on mbi 2.0, as a marginal_bench plug-in (an anchor).

    python3 -m venv /tmp/mbi-venv
    /tmp/mbi-venv/bin/pip install mbi==2.0.0 scikit-survival==0.28.0 opendp==0.16.0 networkx psutil
    cd ../shared/bench && PYTHONPATH=/path/to/privsynth/benchmarks /tmp/mbi-venv/bin/python \\
        marginal_bench.py run --dataset whas500 --epsilon 1 --generator plugin:reference_mst:ReferenceMST

(``python -m benchmarks.harness --reference-python /tmp/mbi-venv/bin/python`` runs it for
every cell.) This is ``reference/mst.py`` of Private-PGM (commit 4d2b3c5, Apache-2.0, McKenna
et al.) with only what mbi 2.0 renamed changed: ``Dataset.df`` is gone (compression goes
through ``Dataset.compress`` / ``LinearMeasurement.compress`` / ``Dataset.decompress``, which
re-express a merged cell exactly as the original does), and ``estimation.mirror_descent``
is ``estimation.MirrorDescent().estimate``. The budget is the original's: every measurement
round gets a third of rho, and within a round the cliques' weights are normalised
(``weights / ||weights||``), so d 1-way marginals each get noise ``sigma * sqrt(d)``.

``ReferenceMSTUnnormalised`` drops that normalisation, so every marginal gets ``sigma``:
it spends 2d / 3 times rho (d 1-way and d - 1 pair marginals at rho / 3 each, plus the
selection's third: 7.3x on flchain, 10.7x on whas500). It is here only
because it reproduces the figures recorded as ``mbi_mst`` in ../shared/bench/results
(docs/generator.md, "Measured").
"""

from __future__ import annotations

import itertools
import warnings

import numpy as np
import pandas as pd

warnings.filterwarnings("ignore")

ITERS = 10_000  # the original's final estimation
SELECT_ITERS = 2_500  # the original's estimation inside select()


class ReferenceMST:
    normalise = True

    def __init__(self, epsilon, delta, rho, seed=0):
        self.rho, self.seed = float(rho), int(seed)

    def _measure(self, data, cliques, sigma, rng):
        from mbi import LinearMeasurement

        weights = np.ones(len(cliques))
        if self.normalise:
            weights = weights / np.linalg.norm(weights)
        out = []
        for proj, wgt in zip(cliques, weights):
            x = np.asarray(data.project(proj).datavector())
            y = x + rng.normal(0, sigma / wgt, x.size)
            out.append(LinearMeasurement(y, proj, sigma / wgt))
        return out

    @staticmethod
    def _supports(log1):
        mapping = {}
        for m in log1:
            y = np.asarray(m.noisy_measurement)
            sup = y >= 3 * m.stddev
            if not sup.all():
                to = np.empty(y.size, dtype=np.int64)
                to[sup] = np.arange(int(sup.sum()))
                to[~sup] = int(sup.sum())
                mapping[m.clique[0]] = to
        return mapping

    def _select(self, data, rho, log1, rng):
        import networkx as nx
        from mbi import estimation
        from scipy.cluster.hierarchy import DisjointSet
        from scipy.special import logsumexp

        est = estimation.MirrorDescent().estimate(data.domain, log1, iters=SELECT_ITERS)
        weights = {}
        candidates = list(itertools.combinations(data.domain.attributes, 2))
        for a, b in candidates:
            xhat = np.asarray(est.project([a, b]).datavector())
            x = np.asarray(data.project([a, b]).datavector())
            weights[a, b] = np.linalg.norm(x - xhat, 1)
        tree = nx.Graph()
        tree.add_nodes_from(data.domain.attributes)
        sets = DisjointSet(data.domain.attributes)
        r = len(list(nx.connected_components(tree)))
        epsilon = np.sqrt(8 * rho / (r - 1))
        for _ in range(r - 1):
            candidates = [e for e in candidates if not sets.connected(*e)]
            scores = 0.5 * epsilon * np.array([weights[e] for e in candidates])  # sensitivity 1
            probs = np.exp(scores - logsumexp(scores))
            e = candidates[rng.choice(len(candidates), p=probs)]
            tree.add_edge(*e)
            sets.merge(*e)
        return list(tree.edges)

    def fit(self, df: pd.DataFrame, domain: dict[str, int]) -> None:
        from mbi import Dataset, Domain, estimation

        rng = np.random.default_rng()  # fresh noise, as the original's np.random
        np.random.seed(self.seed)  # decompress draws with np.random
        self.columns = list(domain)
        data = Dataset({c: df[c].to_numpy() for c in domain}, Domain(list(domain), list(domain.values())))
        sigma = np.sqrt(3 / (2 * self.rho))
        log1 = self._measure(data, [(c,) for c in domain], sigma, rng)
        self.mapping = self._supports(log1)
        log1 = [m.compress(self.mapping, data.domain) for m in log1]
        small = data.compress(self.mapping)
        cliques = self._select(small, self.rho / 3.0, log1, rng)
        log2 = self._measure(small, cliques, sigma, rng)
        self.model = estimation.MirrorDescent().estimate(small.domain, log1 + log2, iters=ITERS)

    def sample(self, n: int) -> pd.DataFrame:
        synth = self.model.synthetic_data(n).decompress(self.mapping)
        return pd.DataFrame({c: np.asarray(synth.data[c]) for c in self.columns})


class ReferenceMSTUnnormalised(ReferenceMST):
    normalise = False
