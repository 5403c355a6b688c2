"""What the report shows, computed once at release time and kept with the internal audit.

Everything here is an aggregate over the real patients (or a figure from the synthetic
data) with SMALL CELLS SUPPRESSED: a category, bin or group held by fewer than
``min_cell`` real patients is dropped from every table and plot, and its label never
appears (the synthetic patients page shows such values as "suppressed"). The real counts
that are shown are also ROUNDED to a multiple of ``min_cell`` and shares are taken among the
shown cells, so a suppressed cell cannot be recovered by differencing shown figures. The
figures are not differentially private; they stay with the data owner and the reviewer.
"""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np

from privsynth.schema.model import CategoricalDomain, Column, Schema

SUPPRESSED = "suppressed"
MAX_COLUMNS = 40  # one-way plots and the association heatmap
PAIRS = 6  # two-way comparisons shown
PATIENTS = 12  # synthetic patients on the face-validation page


def labels(col: Column) -> list[str]:
    """Display labels of a column's codes: categories, or the public bins ``[a, b)``."""
    assert col.domain is not None
    return [str(x) for x in col.domain.labels]


def counts(codes: np.ndarray, size: int) -> np.ndarray:
    return np.bincount(codes.astype(np.int64), minlength=size)[:size]


def rounded(counts: np.ndarray, base: int) -> np.ndarray:
    """Real counts rounded to the nearest multiple of ``base`` (statistical disclosure control).

    >>> rounded(np.array([14, 15, 26, 3]), 10).tolist()
    [10.0, 20.0, 30.0, 0.0]
    """
    return np.round(np.asarray(counts, dtype=np.float64) / base + 1e-9) * base


def _shares(values: np.ndarray) -> np.ndarray:
    total = values.sum()
    return values / total if total > 0 else values


def one_way(real: np.ndarray, synthetic: np.ndarray, schema: Schema, min_cell: int) -> list[dict[str, Any]]:
    out = []
    for j, col in enumerate(schema.learned_columns[:MAX_COLUMNS]):
        names = labels(col)
        r, s = counts(real[:, j], len(names)), counts(synthetic[:, j], len(names))
        keep = r >= min_cell
        real_shares, synthetic_shares = _shares(rounded(r[keep], min_cell)), _shares(s[keep].astype(float))
        out.append({
            "column": col.name, "labels": [n for n, k in zip(names, keep) if k],
            "real": real_shares.tolist(), "synthetic": synthetic_shares.tolist(),
            "tvd": float(0.5 * np.abs(real_shares - synthetic_shares).sum()),
        })
    return out


def cramers_v(a: np.ndarray, b: np.ndarray, size_a: int, size_b: int) -> float:
    table = np.zeros((size_a, size_b))
    np.add.at(table, (a.astype(np.int64), b.astype(np.int64)), 1)
    table = table[table.sum(axis=1) > 0][:, table.sum(axis=0) > 0]
    n = table.sum()
    if n == 0 or min(table.shape) < 2:
        return 0.0
    expected = table.sum(axis=1, keepdims=True) * table.sum(axis=0, keepdims=True) / n
    chi2 = float(((table - expected) ** 2 / expected).sum())
    return float(np.sqrt(chi2 / n / (min(table.shape) - 1)))


def associations(real: np.ndarray, synthetic: np.ndarray, schema: Schema) -> dict[str, Any]:
    """Cramer's V between every pair of (binned) columns, real and synthetic."""
    cols = schema.learned_columns[:MAX_COLUMNS]
    sizes = [c.domain.size for c in cols if c.domain is not None]
    k = len(cols)
    r, s = np.eye(k), np.eye(k)
    for i, j in itertools.combinations(range(k), 2):
        r[i, j] = r[j, i] = cramers_v(real[:, i], real[:, j], sizes[i], sizes[j])
        s[i, j] = s[j, i] = cramers_v(synthetic[:, i], synthetic[:, j], sizes[i], sizes[j])
    return {"columns": [c.name for c in cols], "real": r.tolist(), "synthetic": s.tolist(),
            "mean_abs_difference": float(np.abs(r - s)[np.triu_indices(k, 1)].mean()) if k > 1 else 0.0}


def _same_fact(a: Column, b: Column) -> bool:
    """Two columns read from the same FHIR codes (a condition and its own onset): their
    association is the schema's doing, not a finding."""
    return (a.source.resource is not None and a.source.resource == b.source.resource
            and a.source.codes is not None and a.source.codes == b.source.codes)


def two_way(real: np.ndarray, synthetic: np.ndarray, schema: Schema, assoc: dict[str, Any],
            min_cell: int) -> list[dict[str, Any]]:
    """The most associated pairs (in the real data), cell by cell, small cells suppressed;
    never a column against another read from the same codes."""
    cols = schema.learned_columns[:MAX_COLUMNS]
    strength = np.array(assoc["real"])
    pairs = sorted((p for p in itertools.combinations(range(len(cols)), 2) if not _same_fact(cols[p[0]], cols[p[1]])),
                   key=lambda p: -strength[p])[:PAIRS]
    out = []
    for i, j in pairs:
        li, lj = labels(cols[i]), labels(cols[j])
        r = np.zeros((len(li), len(lj)))
        s = np.zeros((len(li), len(lj)))
        np.add.at(r, (real[:, i].astype(np.int64), real[:, j].astype(np.int64)), 1)
        np.add.at(s, (synthetic[:, i].astype(np.int64), synthetic[:, j].astype(np.int64)), 1)
        rows = r.sum(axis=1) >= min_cell
        columns = r.sum(axis=0) >= min_cell
        r, s = r[rows][:, columns], s[rows][:, columns]
        small = r < min_cell
        shown_real = np.where(small, 0.0, rounded(r, min_cell))
        shown_synthetic = np.where(small, 0.0, s)
        out.append({
            "columns": [cols[i].name, cols[j].name],
            "row_labels": [x for x, k in zip(li, rows) if k], "col_labels": [x for x, k in zip(lj, columns) if k],
            "real": np.where(small, np.nan, _shares(shown_real)).tolist(),
            "synthetic": np.where(small, np.nan, _shares(shown_synthetic)).tolist(),
        })
    return out


def _feature_columns(schema: Schema, target: str) -> list[int]:
    """Every learned column but the target and those read from the same FHIR codes (an
    onset age of the target condition would give the answer away)."""
    cols = schema.learned_columns
    goal = schema.column(target).source
    same = goal.codes is not None and goal.resource is not None
    return [j for j, c in enumerate(cols) if c.name != target
            and not (same and c.source.resource == goal.resource and c.source.codes == goal.codes)]


def tstr(train_codes: np.ndarray, synthetic_codes: np.ndarray, holdout_codes: np.ndarray, schema: Schema,
         target: str, protected_groups: dict[str, np.ndarray], seed: int) -> dict[str, Any]:
    """Train on synthetic, test on real (holdout), beside train on real: accuracy overall
    and per protected group (groups given as holdout masks)."""
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.metrics import balanced_accuracy_score

    names = [c.name for c in schema.learned_columns]
    t = names.index(target)
    features = _feature_columns(schema, target)
    y_test = holdout_codes[:, t]
    out: dict[str, Any] = {"target": target, "test_patients": int(len(y_test)), "majority": 0.0,
                           "features": [names[j] for j in features]}
    out["majority"] = float(np.max(np.bincount(y_test.astype(np.int64))) / max(1, len(y_test)))
    for label, source in (("real", train_codes), ("synthetic", synthetic_codes)):
        model = HistGradientBoostingClassifier(max_iter=100, random_state=seed % 2**32)
        y = source[:, t]
        if len(np.unique(y)) < 2:
            out[label] = {"accuracy": None, "balanced_accuracy": None, "auc": None, "by_group": {}}
            continue
        model.fit(source[:, features].astype(np.float64), y)
        x_test = holdout_codes[:, features].astype(np.float64)
        predicted = model.predict(x_test)
        right = predicted == y_test
        out[label] = {"accuracy": float(right.mean()),
                      "balanced_accuracy": float(balanced_accuracy_score(y_test, predicted)),
                      "auc": _auc(model, x_test, y_test),
                      "by_group": {g: float(right[mask].mean()) for g, mask in protected_groups.items()}}
    return out


def _auc(model: Any, x: np.ndarray, y: np.ndarray) -> float | None:
    """ROC AUC on the held-out patients (one-vs-rest macro for more than two values)."""
    from sklearn.metrics import roc_auc_score

    present = np.unique(y)
    if len(present) < 2:
        return None
    scores = model.predict_proba(x)
    classes = list(model.classes_)
    if not set(present) <= set(classes):
        return None
    columns = [classes.index(c) for c in present]
    probs = scores[:, columns] / np.clip(scores[:, columns].sum(axis=1, keepdims=True), 1e-12, None)
    if len(present) == 2:
        return float(roc_auc_score(y == present[1], probs[:, 1]))
    return float(roc_auc_score(y, probs, multi_class="ovr", labels=present))


RELATIVE_CHANGE = 2.0  # a group whose synthetic share is below half, or above twice, its real share is flagged


def bias(real: np.ndarray, synthetic: np.ndarray, holdout: np.ndarray, schema: Schema, min_cell: int,
         shift_max: float) -> tuple[list[dict[str, Any]], dict[str, np.ndarray]]:
    """Each protected attribute's groups: real share vs synthetic share, flagged when the
    shift exceeds ``shift_max`` points OR the share changes by more than a factor of
    ``RELATIVE_CHANGE`` (a group of 0.6% that vanishes shifts by 0.6 points only, yet it is
    gone: DP noise hits small groups hardest); also the holdout masks of the groups (for
    TSTR by group). Groups under ``min_cell`` real patients are not shown."""
    names = [c.name for c in schema.learned_columns]
    rows, masks = [], {}
    for attr in schema.protected:
        j = names.index(attr)
        col = schema.learned_columns[j]
        group_labels = labels(col)
        r, s = counts(real[:, j], len(group_labels)), counts(synthetic[:, j], len(group_labels))
        shown = r >= min_cell
        real_shares = np.zeros(len(r))
        real_shares[shown] = _shares(rounded(r[shown], min_cell))
        synthetic_shares = np.zeros(len(s))
        synthetic_shares[shown] = _shares(s[shown].astype(float))
        for code, name in enumerate(group_labels):
            if not shown[code]:
                continue
            real_share, synthetic_share = real_shares[code], synthetic_shares[code]
            key = f"{attr} = {name}"
            hold = holdout[:, j] == code
            if hold.sum() >= min_cell:
                masks[key] = hold
            ratio = synthetic_share / real_share if real_share > 0 else 1.0
            absolute = abs(synthetic_share - real_share) > shift_max
            relative = ratio < 1 / RELATIVE_CHANGE or ratio > RELATIVE_CHANGE
            rows.append({"attribute": attr, "group": name, "display": display_name(col, name),
                         "real": float(real_share), "synthetic": float(synthetic_share),
                         "shift": float(synthetic_share - real_share), "ratio": float(ratio),
                         "flagged": bool(absolute or relative),
                         "why": "vanished" if synthetic_share == 0 else
                         ("shift" if absolute else "") + (" and " if absolute and relative else "")
                         + ("relative change" if relative else "")})
    return rows, masks


def sampling_baseline(real: np.ndarray, synthetic: np.ndarray, holdout: np.ndarray, schema: Schema,
                      rng: np.random.Generator) -> dict[str, Any]:
    """How far the synthetic data are from the training patients, beside how far another
    sample of real patients of the same size (the holdout) is: the mean total-variation
    distance over every column's shares. Below the sampling baseline, the synthetic data are
    as close as fresh real data would be."""
    m = min(len(holdout), len(synthetic))
    synthetic = synthetic[rng.permutation(len(synthetic))[:m]]
    holdout = holdout[rng.permutation(len(holdout))[:m]]

    def mean_tvd(other: np.ndarray) -> float:
        tvds = []
        for j, col in enumerate(schema.learned_columns):
            size = len(labels(col))
            a, b = _shares(counts(real[:, j], size).astype(float)), _shares(counts(other[:, j], size).astype(float))
            tvds.append(0.5 * float(np.abs(a - b).sum()))
        return float(np.mean(tvds)) if tvds else 0.0

    return {"patients": m, "synthetic": mean_tvd(synthetic), "sampling": mean_tvd(holdout)}


def display_name(col: Column, label: str) -> str:
    """A category's display name from the schema ('2106-3' -> 'White'), else the label."""
    if isinstance(col.domain, CategoricalDomain):
        for c in col.domain.categories:
            if c.code == label and c.display:
                return c.display
    return label
