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

import datetime as dt
import itertools
from typing import Any

import numpy as np
import pandas as pd

from privsynth.domain import encode
from privsynth.history.chart import add_years
from privsynth.report.dossier import variables
from privsynth.schema.model import CategoricalDomain, Column, Schema

SUPPRESSED = "suppressed"
MAX_COLUMNS = 40  # one-way plots and the association heatmap
PAIRS = 6  # two-way comparisons shown
PATIENTS = 12  # synthetic patients on the face-validation page


def labels(col: Column) -> list[str]:
    """Display labels of a column's codes: categories, or the public bins ``[a, b)``."""
    assert col.domain is not None
    return [str(x) for x in col.domain.labels]


def _counts(codes: np.ndarray, size: int) -> np.ndarray:
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
        r, s = _counts(real[:, j], len(names)), _counts(synthetic[:, j], len(names))
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
        r, s = _counts(real[:, j], len(group_labels)), _counts(synthetic[:, j], len(group_labels))
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
            rows.append({"attribute": attr, "group": name, "display": _display(col, name),
                         "real": float(real_share), "synthetic": float(synthetic_share),
                         "shift": float(synthetic_share - real_share), "ratio": float(ratio),
                         "flagged": bool(absolute or relative),
                         "why": "vanished" if synthetic_share == 0 else
                         ("shift" if absolute else "") + (" and " if absolute and relative else "")
                         + ("relative change" if relative else "")})
    return rows, masks


def _display(col: Column, label: str) -> str:
    """A category's display name from the schema ('2106-3' -> 'White'), else the label."""
    if isinstance(col.domain, CategoricalDomain):
        for c in col.domain.categories:
            if c.code == label and c.display:
                return c.display
    return label


UNITS = {"mm[Hg]": "mmHg", "kg/m2": "kg/m²", "[degF]": "°F", "Cel": "°C"}  # UCUM as a clinician writes it


def _number(value: Any, col: Column) -> str:
    unit = col.output.get("unit") or col.source.unit or ""
    unit = "" if unit == "1" else UNITS.get(unit, unit)
    text = f"{value:.1f}" if isinstance(value, float) else str(value)
    return f"{text} {unit}".strip()


def _whole(value: Any) -> Any:
    """A whole number as an int (an onset age of 60, not 60.0); anything else as it is."""
    if isinstance(value, float | np.floating) and float(value).is_integer():
        return int(value)
    return value


def _streams(schema: Schema, row: dict[str, Any], suppressed: set[str]) -> dict[str, list[str]]:
    """The timeline of one row in a line per event group: how many events in how many of the
    window's cells, or a lab's number of values and its latest one with its unit. Goes under
    the card's encounters, medications, procedures or observations."""
    out: dict[str, list[str]] = {"encounters": [], "medications": [], "procedures": [], "observations": []}
    timeline = schema.timeline
    if timeline is None:
        return out
    where = {"Encounter": "encounters", "MedicationRequest": "medications", "Procedure": "procedures"}
    for stream in timeline.streams:
        span = f"{stream.window_years} years"
        for group in stream.groups:
            names = stream.columns(group)
            label = group.name.replace("_", " ")
            if any(n in suppressed for n in names):
                out[where.get(stream.resource, "observations")].append(f"{label}: {SUPPRESSED}")
                continue
            if stream.kind == "count":
                counts = [int(row[n]) for n in names if row.get(n) is not None and row[n] is not pd.NA
                          and not (isinstance(row[n], float) and np.isnan(row[n])) and int(row[n]) > 0]
                if counts:
                    out[where.get(stream.resource, "observations")].append(
                        f"{label}: {sum(counts)} in {len(counts)} of the last {stream.cells} "
                        f"{stream.grain}s" if stream.cells != stream.window_years else
                        f"{label}: {sum(counts)} in {len(counts)} of the last {span}")
            else:
                values = [(k, row[n]) for k, n in enumerate(names) if row.get(n) is not None and row[n] is not pd.NA
                          and not (isinstance(row[n], float) and np.isnan(row[n]))]
                if values:
                    latest = schema.column(names[values[0][0]])  # cell 0 is the most recent
                    out["observations"].append(f"{label} series: {len(values)} value(s) in the last {span}, latest "
                                               f"{_number(float(values[0][1]), latest)}")
    return out


def _series_codes(schema: Schema, row: dict[str, Any]) -> set[str]:
    """The observation codes a timeline lab series of this row holds a value of."""
    out: set[str] = set()
    if schema.timeline is None:
        return out
    for stream in schema.timeline.streams:
        if stream.kind != "value":
            continue
        for group in stream.groups:
            names = stream.columns(group)
            if any(row.get(n) is not None for n in names):
                code = schema.column(names[0]).output.get("code")
                if code:
                    out.add(str(code))
    return out


def patients(synthetic: pd.DataFrame, real_codes: np.ndarray, synthetic_codes: np.ndarray, schema: Schema,
             min_cell: int, rng: np.random.Generator) -> list[dict[str, Any]]:
    """A few random synthetic patients laid out as a clinician reads a record: who they are
    (display names, not codes), deceased and about when, the conditions they have with their
    onset age, the latest observations with units, medications and procedures, encounters by
    class, and each timeline group in a line. A value whose category or bin has fewer than
    ``min_cell`` real patients reads 'suppressed'. Absent conditions and missing values are
    left out."""
    cols = schema.learned_columns
    index = {c.name: j for j, c in enumerate(cols)}
    rare = [set(np.flatnonzero(_counts(real_codes[:, j], c.domain.size if c.domain else 1) < min_cell).tolist())
            for j, c in enumerate(cols)]
    onset_of = {c.name: c.onset for c in schema.conditions if c.onset is not None and c.onset.learned}
    onsets = set(c.name for c in onset_of.values())
    flags = {c.name for c in schema.conditions}
    death = schema.death_column
    timeline = set(schema.timeline.column_names) if schema.timeline is not None else set()
    if schema.timeline is not None:
        for stream in schema.timeline.streams:
            for group in stream.groups:
                if group.around is not None:
                    timeline |= set(stream.anchored(group))
    picks = rng.choice(len(synthetic), size=min(PATIENTS, len(synthetic)), replace=False)
    out = []

    def shown(col: Column, i: int) -> Any:
        value = synthetic[col.name].iloc[i]
        if value is None or value is pd.NA or (isinstance(value, float) and np.isnan(value)):
            return None
        if col.name in index and int(synthetic_codes[i, index[col.name]]) in rare[index[col.name]]:
            return SUPPRESSED
        return _whole(value)

    for i in picks.tolist():
        card: dict[str, list[str]] = {key: [] for key in ("person", "conditions", "observations", "medications",
                                                          "procedures", "encounters", "other")}
        row = {c.name: shown(c, i) for c in schema.view_columns if c.name in synthetic.columns}
        observed: list[str | None] = []  # the code of each observation line
        suppressed = {name for name, value in row.items() if value == SUPPRESSED}
        for col in schema.view_columns:
            src = col.source
            value = row.get(col.name)
            if value is None or col.name in onsets or col.name in timeline:
                continue  # an onset is shown with its condition; a timeline cell in its group's line
            if death is not None and col.name == death.name:
                continue  # shown with "deceased"
            if col.name in flags:
                if _true(value) or value == SUPPRESSED:  # numpy booleans too (a card showed no condition)
                    onset = onset_of.get(col.name)
                    age = row.get(onset.name) if onset is not None else None
                    text = col.name.replace("_", " ") if _true(value) else SUPPRESSED
                    card["conditions"].append(text + (f" (onset at {age})" if age not in (None, SUPPRESSED) else ""))
            elif col.kind == "boolean" and src.resource == "Patient":
                if _true(value):
                    card["person"].append(_deceased(col, row, death, schema) if col.name == "deceased" else
                                          col.name.replace("_", " "))
            elif src.resource == "Patient" or (src.resource is None and col.kind != "numeric"):
                if value == SUPPRESSED:
                    card["person"].append(f"{col.name.replace('_', ' ')} suppressed")
                elif isinstance(col.domain, CategoricalDomain):
                    card["person"].append(_display(col, str(value)))
                else:
                    card["person"].append(f"{col.name.replace('_', ' ')} {value}")
            elif src.summary_kind.counts:
                if value == SUPPRESSED or int(value) > 0:
                    key = {"Encounter": "encounters", "MedicationRequest": "medications",
                           "Procedure": "procedures"}.get(src.resource or "", "other")
                    name = col.output.get("display", col.name.replace("_", " "))
                    card[key].append(f"{name}: {value}")
            elif col.kind == "boolean":
                if _true(value):
                    card["other"].append(col.name.replace("_", " "))
            elif col.kind in ("numeric", "integer"):
                name = col.output.get("display", col.name.replace("_", " "))
                card["observations"].append(f"{name}: {value if value == SUPPRESSED else _number(value, col)}")
                observed.append(col.output.get("code"))
            else:
                card["other"].append(f"{col.name.replace('_', ' ')}: {value}")
        carried = _series_codes(schema, row)  # the FHIR writes a lab's series instead of its last value: so does
        card["observations"] = [line for line, code in zip(card["observations"], observed) if code not in carried]
        for key, lines in _streams(schema, row, suppressed).items():
            card[key] += lines
        out.append({"person": ", ".join(str(p) for p in card.pop("person")), **card})
    return out


def _deceased(col: Column, row: dict[str, Any], death: Column | None, schema: Schema) -> str:
    """'deceased' with the year of death the model gives (its years before the reference date)."""
    years = row.get(death.name) if death is not None else None
    if years is None or years == SUPPRESSED:
        return "deceased"
    # the writer dates the death inside the year before the reference these whole years name
    end = add_years(schema.reference, -int(years))
    start = add_years(schema.reference, -int(years) - 1) + dt.timedelta(days=1)
    when = (f"in {start.year}" if start.year == end.year or (end.month, end.day) == (1, 1)
            else f"between {start:%b %Y} and {end:%b %Y}")
    age = schema.age_column
    lived = row.get(age.name) if age is not None else None
    if lived is None or lived == SUPPRESSED:
        return f"deceased {when}"
    return f"deceased {when}, at about {max(int(lived) - int(years), 0)}"  # the age is counted to the reference


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
            a, b = _shares(_counts(real[:, j], size).astype(float)), _shares(_counts(other[:, j], size).astype(float))
            tvds.append(0.5 * float(np.abs(a - b).sum()))
        return float(np.mean(tvds)) if tvds else 0.0

    return {"patients": m, "synthetic": mean_tvd(synthetic), "sampling": mean_tvd(holdout)}


def report_data(train: pd.DataFrame, holdout: pd.DataFrame, synthetic: pd.DataFrame, schema: Schema, *,
                min_cell: int, shift_max: float, target: str | None, seed: int) -> dict[str, Any]:
    """All the report's utility and bias figures (small cells suppressed)."""
    rng = np.random.default_rng(seed)
    real_codes, _ = encode(train, schema)
    synthetic_codes, _ = encode(synthetic, schema)
    holdout_codes, _ = encode(holdout, schema)
    assoc = associations(real_codes, synthetic_codes, schema)
    bias_rows, groups = bias(real_codes, synthetic_codes, holdout_codes, schema, min_cell, shift_max)
    target = target or schema.target
    data: dict[str, Any] = {
        "min_cell": min_cell,
        "one_way": one_way(real_codes, synthetic_codes, schema, min_cell),
        "associations": assoc,
        "two_way": two_way(real_codes, synthetic_codes, schema, assoc, min_cell),
        "bias": {"shift_max": shift_max, "groups": bias_rows},
        "patients": patients(synthetic, real_codes, synthetic_codes, schema, min_cell, rng),
        "tstr": None,
        "variables": variables(schema),
        "baseline": sampling_baseline(real_codes, synthetic_codes, holdout_codes, schema, rng),
    }
    if target is not None:
        data["tstr"] = tstr(real_codes, synthetic_codes, holdout_codes, schema, target, groups, seed)
    return data


def _true(value: Any) -> bool:
    """A boolean cell that is true: Python's True or numpy's (``value is True`` misses numpy's)."""
    return isinstance(value, bool | np.bool_) and bool(value)
