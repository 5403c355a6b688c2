"""Nearest-neighbour re-identification: are synthetic rows closer to training patients
than to patients the generator never saw?

Train is cut into K = ceil(train / holdout) chunks of train // K rows, and the holdout is
subsampled to the same size: fewer than K training records fall outside the chunks, so a
leak of a few records is not diluted by subsampling. Under the null hypothesis -- the synthetic data do
not depend on who was in training -- the K + 1 equal-size sides are exchangeable for every
synthetic row, so a "hit" (an exact match, a distance in the tail) that lands on exactly one
side lands on the holdout with probability 1 / (K + 1). The tests below are exact binomial
tests of that. The closer-share statistic compares one train chunk with the holdout, as the
classic DCR share does.

The p-value tests (exact matches, near matches, isolated near matches, the two tails) form
one family: each is compared with its policy threshold divided by the family size
(Bonferroni), so that clean output raises a false alarm in this family with probability at
most the policy's p.
"""

from __future__ import annotations

import dataclasses
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from scipy.stats import binom

from privsynth.audit.neighbours import Nearest, nearest
from privsynth.audit.policy import Policy
from privsynth.audit.protocol import AuditContext, Threshold
from privsynth.audit.registry import register
from privsynth.audit.result import Check
from privsynth.audit.section import Bars, Grid, ReportInfo, Section, Text
from privsynth.audit.stats import Z95

# fine near 0, where a copy or a near-copy lands; coarser where clean synthetic rows do
HISTOGRAM_BINS = np.array([0.0, 0.005, 0.01, 0.02, 0.03, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.7, 1.0])
TAIL_QUANTILE = 0.01  # the closest 1% of distances
ISOLATION = 0.25  # an isolated near match: under a quarter of the other sides' median distance
# exact matches, near matches, isolated near matches, tail (mean), tail (worst column); the
# isolated test (near-copies hidden among look-alikes) joined the family, so it grew from 4
P_TESTS = 5


@dataclass(frozen=True)
class SideHits:
    """Hits of synthetic rows on K train chunks and the holdout (equal sizes).

    ``train``/``holdout``: rows hit on exactly one side, that side being a train chunk / the
    holdout; ``several``: rows hit on two sides or more (not informative, counted)."""

    train: int
    holdout: int
    several: int
    chunks: int

    @property
    def ratio(self) -> float:
        """Train hits per chunk over holdout hits (1 expected under the null). No holdout hit
        counts as half a hit (a continuity correction): the ratio stays a finite number, and
        the p-value, not the ratio, says whether the train hits are more than chance."""
        if self.holdout == 0:
            return self.train / self.chunks / 0.5 if self.train else 1.0
        return self.train / self.chunks / self.holdout

    @property
    def p(self) -> float:
        """P(holdout hits <= observed) if each single hit were on the holdout w.p. 1/(K+1)."""
        n = self.train + self.holdout
        return 1.0 if n == 0 else float(binom.cdf(self.holdout, n, 1.0 / (self.chunks + 1)))


def side_hits(hit_train: np.ndarray, hit_holdout: np.ndarray, train_index: np.ndarray | None = None,
              holdout_index: np.ndarray | None = None) -> SideHits:
    """``hit_train``: (n, K) booleans per chunk; ``hit_holdout``: (n,).

    With the index of the record each row hit (``train_index`` (n, K), ``holdout_index``
    (n,)), a side's hits are its DISTINCT records hit: many synthetic rows with one common
    profile hit the same record, and counted row by row they would make the test believe in
    hundreds of independent hits where there is one (a false alarm on low-dimensional
    tables); a leak copies many distinct records and still counts in full.

    >>> side_hits(np.array([[True], [False], [True]]), np.array([False, True, True]))
    SideHits(train=1, holdout=1, several=1, chunks=1)
    >>> side_hits(np.array([[True], [True], [False]]), np.array([False, False, True]),
    ...           np.array([[7], [7], [0]]), np.array([0, 0, 3]))
    SideHits(train=1, holdout=1, several=0, chunks=1)
    """
    count = hit_train.sum(axis=1) + hit_holdout
    single = count == 1
    on_train, on_holdout = single & ~hit_holdout, single & hit_holdout
    if train_index is None or holdout_index is None:
        return SideHits(int(on_train.sum()), int(on_holdout.sum()), int((count > 1).sum()), hit_train.shape[1])
    rows = np.flatnonzero(on_train)
    chunk = np.argmax(hit_train[rows], axis=1)
    train_records = len(set(zip(chunk.tolist(), train_index[rows, chunk].tolist())))
    holdout_records = len(set(holdout_index[on_holdout].tolist()))
    return SideHits(train_records, holdout_records, int((count > 1).sum()), hit_train.shape[1])


def isolated_hits(distance: np.ndarray, near: np.ndarray, index: np.ndarray, ratio: float = ISOLATION) -> SideHits:
    """Near matches far closer to one side than to the others: the density-adaptive test.

    ``distance``: (n, K + 1) each synthetic row's nearest (mean) distance to each side, the K
    train chunks first and the holdout last; ``near``: (n, K + 1) whether that side holds a
    near match of the row; ``index``: (n, K + 1) the nearest record on each side. A row is a
    hit on its nearest side when that side holds a near match, is strictly the nearest, and
    is under ``ratio`` times the other sides' median distance; its hit is that side's nearest
    record (distinct records, as in :func:`side_hits`). ``several``: the other near matches.

    Why: where many real patients look alike (a table of a few crowded columns, children
    with no conditions), a near-copy of a training record is also a near match of records on
    other sides -- the near-match test counts it as "several" and it is lost -- while clean
    rows there make single-side near matches by chance. The other sides' distances measure
    how crowded the row's neighbourhood is (each side is an equal-size sample of the same
    patients): a clean row comes about as close to a typical side as to its nearest, a copy
    is far closer to its source's side. Under the null the event depends on the distances to
    the sides, not on which side is the holdout, so a hit lands on the holdout with
    probability 1 / (K + 1): the same exact binomial test.

    Two chunks and the holdout; a quarter of the others' median. Row 0: 0.002 against (0.03
    + 0.05) / 2, a train hit on record 7 of chunk 0. Row 1: 0.02 is not under 0.01: several.
    Row 2: a holdout hit. Row 3: no near match. Row 4: nearest on two sides: several. Row 5
    hits record 7 again (one record).

    >>> d = np.array([[0.002, 0.03, 0.05], [0.02, 0.03, 0.05], [0.04, 0.05, 0.001], [0.2, 0.6, 0.9],
    ...               [0.001, 0.001, 0.05], [0.002, 0.04, 0.04]])
    >>> near = d <= 0.02
    >>> index = np.array([[7, 1, 2], [3, 4, 5], [6, 8, 9], [1, 2, 3], [4, 5, 6], [7, 8, 9]])
    >>> isolated_hits(d, near, index, ratio=0.25)
    SideHits(train=1, holdout=1, several=2, chunks=2)
    """
    rows = np.arange(len(distance))
    side = np.argmin(distance, axis=1)
    ordered = np.sort(distance, axis=1)
    first, second, others = ordered[:, 0], ordered[:, 1], np.median(ordered[:, 1:], axis=1)
    close = near[rows, side]
    isolated = close & (first < second) & (first < ratio * others)  # two zeros are never isolated
    hit = np.zeros(distance.shape, dtype=bool)
    hit[rows[isolated], side[isolated]] = True
    chunks = distance.shape[1] - 1
    found = side_hits(hit[:, :chunks], hit[:, chunks], index[:, :chunks], index[:, chunks])
    return dataclasses.replace(found, several=int((close & ~isolated).sum()))


def closer_share(d_train: np.ndarray, d_holdout: np.ndarray) -> float:
    """Share of synthetic rows strictly closer to train than to holdout (ties count half)."""
    if len(d_train) == 0:
        return 0.5
    return float(_closer(d_train, d_holdout).mean())


def _closer(d_train: np.ndarray, d_holdout: np.ndarray) -> np.ndarray:
    return (d_train < d_holdout) + 0.5 * (d_train == d_holdout)


Side = tuple[np.ndarray, np.ndarray, np.ndarray, int]


def closer_share_interval(train: Side, holdout: Side, z: float = Z95) -> tuple[float, float]:
    """The closer share's interval, with the variance of all three samples it depends on.

    ``train``/``holdout``: each synthetic row's nearest and second-nearest distance to that
    side, the index of its nearest record, and the side's number of records. The share varies with which synthetic rows
    were drawn AND with which real patients fill the train chunk and the holdout (a holdout
    that happens to hold more typical patients is closer to everything); a binomial
    interval over the synthetic rows alone is too narrow by about half on a holdout of 300
    and refused clean releases. The jackknife over each real side is exact and cheap:
    removing record r only moves the rows whose nearest record it was to their second
    nearest. The three variances add (a multi-sample jackknife, Arvesen 1969).

    Four rows, two closer to train (share 0.5). Variances: rows (1/3)/4; train record 0 is
    the nearest of both closer rows, removing it moves the share by -0.5: (1/2)(0.25^2 +
    0.25^2); the same for the holdout: 1/12 + 1/16 + 1/16 = 0.2083, so z = 1 gives 0.5 -+ 0.456.

    >>> far = np.full(4, 0.9)
    >>> lo, hi = closer_share_interval((np.array([0.1, 0.1, 0.5, 0.5]), far, np.array([0, 0, 1, 1]), 2),
    ...                               (np.full(4, 0.3), far, np.zeros(4, dtype=int), 2), z=1.0)
    >>> round(lo, 3), round(hi, 3)
    (0.044, 0.956)
    """
    (t1, t2, ti, t_size), (h1, h2, hi_, h_size) = train, holdout
    f = _closer(t1, h1)
    n = len(f)
    if n < 2:
        return 0.0, 1.0
    share = float(f.mean())
    variance = float(f.var(ddof=1)) / n
    for moved, index, size in ((_closer(t2, h1) - f, ti, t_size), (_closer(t1, h2) - f, hi_, h_size)):
        if size < 2:
            continue
        change = np.bincount(index, weights=moved, minlength=size) / n  # share without record r, minus share
        variance += (size - 1) / size * float(((change - change.mean()) ** 2).sum())
    half = z * float(np.sqrt(variance))
    return max(0.0, share - half), min(1.0, share + half)


def tail(d_train: np.ndarray, d_holdout: np.ndarray, quantile: float, train_index: np.ndarray | None = None,
         holdout_index: np.ndarray | None = None) -> tuple[float, SideHits]:
    """The pooled ``quantile`` of all distances (``d_train``: (n, K)), and the records at
    or below it on each side (distinct records, when their indices are given)."""
    q = float(np.quantile(np.concatenate([d_train.ravel(), d_holdout]), quantile))
    return q, side_hits(d_train <= q, d_holdout <= q, train_index, holdout_index)


def nndr(mean: np.ndarray) -> np.ndarray:
    """Nearest / second-nearest distance ratio per row (1 when both are 0)."""
    first, second = mean[:, 0], mean[:, 1]
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(second > 0, first / second, 1.0)


@dataclass(frozen=True)
class Sides:
    """Nearest neighbours of the synthetic rows on each side, computed once per audit run
    (the membership attacks reuse the reverse distances)."""

    chunks: int
    m: int
    to_chunk: list[Nearest]
    to_holdout: Nearest
    train_to_synthetic: np.ndarray  # every train row's nearest mean distance to the synthetic rows
    holdout_to_synthetic: np.ndarray


def sides(context: AuditContext) -> Sides:
    """Train cut into K = ceil(train / holdout) chunks, each compared with the holdout."""
    if "sides" in context.cache:
        found: Sides = context.cache["sides"]
        return found
    train, holdout, synthetic = context.spaces()
    workers = context.workers
    chunks = max(1, -(-train.n // holdout.n))
    m = train.n // chunks
    to_chunk = [nearest(synthetic, train.take(np.arange(k * m, (k + 1) * m)), k=2, workers=workers)
                for k in range(chunks)]
    to_holdout = nearest(synthetic, holdout.take(np.arange(m)), k=2, workers=workers)
    train_reverse = np.concatenate([nn.reverse for nn in to_chunk]
                                   + [nearest(synthetic, train.take(np.arange(chunks * m, train.n)),
                                              workers=workers).reverse])
    holdout_reverse = np.concatenate([to_holdout.reverse, nearest(synthetic, holdout.take(np.arange(m, holdout.n)),
                                                                  workers=workers).reverse])
    found = Sides(chunks, m, to_chunk, to_holdout, train_reverse, holdout_reverse)
    context.cache["sides"] = found
    return found


class Reidentification:
    """Nearest-neighbour re-identification (module docstring)."""

    name = "re-identification"
    thresholds = (
        Threshold("exact_match_p", 0.01, 1e-12, 0.5, False,
                  help="exact / near / isolated near matches: train beats holdout (one family of 5 tests)"),
        Threshold("near_match_distance", 0.02, 0.0, 1.0, False,
                  help="a near match: every column within this share of its range, categories equal"),
        Threshold("dcr_share_max", 0.52, 0.5, 1.0, True,
                  help="share of rows closer to train than holdout: lower bound above this fails"),
        Threshold("tail_ratio_max", 1.5, 1.0, 1e9, True, help="closest 1%: train hits per holdout hit ..."),
        Threshold("tail_p", 0.01, 1e-12, 0.5, False, help="... with this significance (same family)"),
    )
    partial_synthesis = ("runs on the replaced columns; exact, near and isolated near matches stay gates, the rest "
                         "becomes information (the released rows are the train patients)")

    def applies(self, context: AuditContext) -> bool:
        return True

    def run(self, context: AuditContext) -> tuple[list[Check], dict[str, Any]]:
        return _checks(sides(context), context.policy, context.partial)

    def section(self, figures: dict[str, Any], info: ReportInfo) -> Section:
        """Closest records: histograms of each synthetic row's distance to the closest train
        and holdout patient (shares of rows), for the mean and the worst-column distance."""
        charts = []
        for key, title in (("dcr_mean", "mean distance over columns"), ("dcr_worst-column", "worst single column")):
            d = figures.get(key)
            if not d:
                continue
            edges = d["histogram_edges"]
            labels = tuple(f"{edges[i]:g}–{edges[i + 1]:g}" for i in range(len(edges) - 1))
            n_t, n_h = max(1, sum(d["histogram_train"])), max(1, sum(d["histogram_holdout"]))
            charts.append(Bars(title, labels, (("train", tuple(x / n_t for x in d["histogram_train"])),
                                               ("holdout", tuple(x / n_h for x in d["histogram_holdout"]))),
                               label_axis="distance to the closest real patient",
                               value_axis="share of synthetic patients"))
        return Section("distances", "Closest records", (
            Text(("How far each synthetic patient is from the closest real patient, among training patients and "
                  "among held-out patients (same number of each). The distance between two patients is taken column "
                  "by column -- a number's difference as a share of its public range, 0 or 1 for a category -- "
                  "then averaged over the columns (mean) or its largest column taken (worst column); it lies "
                  "between 0 (identical) and 1. If the generator copied or memorised patients, the training bars "
                  "would pile up near 0, which the narrow first bins show.",)),
            Grid(tuple(charts))))


PARTIAL_INFO = "information only: in a partial synthesis the released rows are the train patients"


def informative(check: Check, partial: bool) -> Check:
    """In a partial synthesis, a check of closeness is information: the rows ARE the train patients."""
    if not partial or check.passed is None:
        return check
    return dataclasses.replace(check, passed=None, detail=f"{check.detail} ({PARTIAL_INFO})".strip())


def _checks(found: Sides, policy: Policy, partial: bool) -> tuple[list[Check], dict[str, Any]]:
    """Every re-identification statistic on the sides' distances. In a partial synthesis the
    exact, near and isolated near matches stay gates (a copied secret shows there); the rest
    is information."""
    chunks, m, to_chunk, to_holdout = found.chunks, found.m, found.to_chunk, found.to_holdout
    checks: list[Check] = []
    figures: dict = {"train_chunks": chunks}
    audit = Reidentification.name
    mean_t = np.column_stack([nn.mean[:, 0] for nn in to_chunk])
    worst_t = np.column_stack([nn.worst for nn in to_chunk])

    def p_check(name: str, hits: SideHits, p_limit: float, extra: str, ratio_limit: float | None = None) -> Check:
        limit = p_limit / P_TESTS
        ok = hits.p >= limit if ratio_limit is None else not (hits.ratio > ratio_limit and hits.p < limit)
        rule = (f"fails if p < {limit:.3g} ({p_limit:g} over {P_TESTS} tests)" if ratio_limit is None else
                f"fails if ratio > {ratio_limit:g} with p < {limit:.3g} ({p_limit:g} over {P_TESTS} tests)")
        return Check(audit, name, hits.ratio, None, rule, ok,
                     f"train {hits.train} over {chunks} chunk(s), holdout {hits.holdout}, several {hits.several}, "
                     f"{extra}p = {hits.p:.3g}")

    index_t = np.column_stack([nn.index for nn in to_chunk])
    worst_index_t = np.column_stack([nn.worst_index for nn in to_chunk])
    exact = side_hits(mean_t == 0, to_holdout.mean[:, 0] == 0, index_t, to_holdout.index)
    checks.append(p_check("exact matches, train per chunk / holdout", exact, policy.exact_match_p, ""))
    figures["exact_matches"] = asdict(exact) | {"p": exact.p}
    near_limit = policy.near_match_distance
    near = side_hits(worst_t <= near_limit, to_holdout.worst <= near_limit, worst_index_t, to_holdout.worst_index)
    checks.append(p_check(f"near matches (every column within {near_limit:g}), train per chunk / holdout", near,
                          policy.exact_match_p, ""))
    figures["near_matches"] = asdict(near) | {"p": near.p, "distance": near_limit}
    isolated = isolated_hits(np.column_stack([mean_t, to_holdout.mean[:, 0]]),
                             np.column_stack([worst_t, to_holdout.worst]) <= near_limit,
                             np.column_stack([index_t, to_holdout.index]))
    checks.append(p_check(f"isolated near matches (under {ISOLATION:g} x the other sides' distance), train per chunk / "
                          "holdout", isolated, policy.exact_match_p, ""))
    figures["isolated_near_matches"] = asdict(isolated) | {"p": isolated.p, "distance": near_limit,
                                                           "ratio": ISOLATION}

    first, hold = to_chunk[0], to_holdout
    sides = {"mean": ((first.mean[:, 0], first.mean[:, 1], first.index, m),
                      (hold.mean[:, 0], hold.mean[:, 1], hold.index, m)),
             "worst-column": ((first.worst_k[:, 0], first.worst_k[:, -1], first.worst_index, m),
                              (hold.worst_k[:, 0], hold.worst_k[:, -1], hold.worst_index, m))}
    indices = {"mean": (index_t, to_holdout.index), "worst-column": (worst_index_t, to_holdout.worst_index)}
    for metric, d_t, d_h in (("mean", mean_t, to_holdout.mean[:, 0]), ("worst-column", worst_t, to_holdout.worst)):
        share = closer_share(d_t[:, 0], d_h)
        lo, hi = closer_share_interval(*sides[metric])
        checks.append(informative(Check(audit, f"share closer to train ({metric} distance)", share, (lo, hi),
                                         f"fails if lower bound > {policy.dcr_share_max:g}",
                                         lo <= policy.dcr_share_max), partial))
        q, hits = tail(d_t, d_h, TAIL_QUANTILE, *indices[metric])
        checks.append(informative(p_check(f"closest-1% tail, train vs holdout ({metric} distance)", hits,
                                           policy.tail_p, f"threshold {q:.4f}, ", policy.tail_ratio_max), partial))
        figures[f"dcr_{metric}"] = {
            "share_closer_to_train": share, "interval": [lo, hi],
            "tail": asdict(hits) | {"threshold": q, "p": hits.p},
            "histogram_edges": HISTOGRAM_BINS.tolist(),
            "histogram_train": np.histogram(np.clip(d_t[:, 0], 0, 1), HISTOGRAM_BINS)[0].tolist(),
            "histogram_holdout": np.histogram(np.clip(d_h, 0, 1), HISTOGRAM_BINS)[0].tolist(),
        }
    ratio_t, ratio_h = nndr(to_chunk[0].mean), nndr(to_holdout.mean)
    checks.append(Check(audit, "median NNDR, train (holdout in detail)", float(np.median(ratio_t)), None,
                        "information: a train NNDR well below holdout's means isolated copies", None,
                        f"holdout {float(np.median(ratio_h)):.3f}"))
    figures["nndr"] = {"median_train": float(np.median(ratio_t)), "median_holdout": float(np.median(ratio_h))}
    return checks, figures


register(Reidentification())
