"""Encode the patient view to integer codes over PUBLIC domains, and decode back.

Encoding never looks at the data to decide a domain: a category not in the schema goes
to the ``other`` bucket, a number outside the bounds is clamped, a missing value goes to
the ``missing`` bucket -- and each of these is counted. Decoding is post-processing: it
draws numbers inside their bin with a seeded generator, by a public shape or the DP
within-bin detail (:mod:`privsynth.binshape`).
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from privsynth.binshape import SUB_BINS, public_shape
from privsynth.errors import InputError
from privsynth.schema.model import OTHER, CategoricalDomain, Column, NumericDomain, Schema


@dataclass
class EncodeReport:
    """Counted treatments of values that did not fit their public domain."""

    mapped_to_other: Counter[str] = field(default_factory=Counter)
    unknown_to_missing: Counter[str] = field(default_factory=Counter)
    clamped: Counter[str] = field(default_factory=Counter)
    missing: Counter[str] = field(default_factory=Counter)

    def as_dict(self) -> dict[str, dict[str, int]]:
        return {
            "mapped_to_other": dict(self.mapped_to_other),
            "unknown_mapped_to_missing": dict(self.unknown_to_missing),
            "clamped_to_bounds": dict(self.clamped),
            "missing": dict(self.missing),
        }


def code_dtype(sizes: tuple[int, ...] | list[int]) -> type[np.signedinteger]:
    """The smallest integer type that holds every code (int8 for most schemas: 8x less memory)."""
    largest = max(sizes, default=1)
    for dtype in (np.int8, np.int16, np.int32):
        if largest <= np.iinfo(dtype).max:
            return dtype
    return np.int64


def domain_sizes(schema: Schema) -> tuple[int, ...]:
    return tuple(c.domain.size for c in schema.learned_columns if c.domain is not None)


def is_missing(value: object) -> bool:
    """None, pandas' NA or a float NaN."""
    if value is None or value is pd.NA:
        return True
    return isinstance(value, float) and math.isnan(value)


def encode(frame: pd.DataFrame, schema: Schema) -> tuple[np.ndarray, EncodeReport]:
    """Encode the learned columns of ``frame`` to an ``(n, d)`` array of integer codes."""
    report = EncodeReport()
    columns = schema.learned_columns
    out = np.empty((len(frame), len(columns)), dtype=code_dtype(domain_sizes(schema)))
    for j, col in enumerate(columns):
        if col.name not in frame.columns:
            raise InputError(f"input has no column '{col.name}' that the schema needs")
        out[:, j] = _encode_column(frame[col.name], col, report)
    return out, report


def _encode_column(series: pd.Series, col: Column, report: EncodeReport) -> np.ndarray:
    domain = col.domain
    assert domain is not None  # learned columns always have a domain (schema invariant)
    if isinstance(domain, CategoricalDomain):
        return _encode_categorical(series, col, domain, report)
    return _encode_numeric(series, col, domain, report)


def _keys(series: pd.Series) -> pd.Series:
    """Normalise values to the strings category codes are written as (vectorised)."""
    if pd.api.types.is_bool_dtype(series):
        return series.map({True: "true", False: "false"})
    if pd.api.types.is_numeric_dtype(series):
        values = series.to_numpy(dtype=np.float64, na_value=np.nan)
        finite = np.isfinite(values)
        integral = finite & (np.mod(np.where(finite, values, 0), 1) == 0)
        text = np.where(integral, np.where(integral, values, 0).astype(np.int64).astype(str), values.astype(str))
        keyed = text.astype(object)
        keyed[~finite] = None
        return pd.Series(keyed, index=series.index, dtype=object)

    return series.map(_key)


def _key(value: object) -> str | None:
    """One value as the string its category code is written as (None when missing)."""
    if is_missing(value):
        return None
    if isinstance(value, bool | np.bool_):
        return "true" if value else "false"
    if isinstance(value, float | np.floating) and float(value).is_integer():
        return str(int(value))
    return str(value)


SMALL = 16  # rows: a frame this short is encoded value by value (pandas' per-call cost dominates)


def _lookup_integers(series: pd.Series, table: dict[str, int]) -> tuple[np.ndarray, np.ndarray]:
    """Fast path for integer category codes given as numbers: an array lookup, no strings."""
    values = series.to_numpy(dtype=np.float64, na_value=np.nan)
    missing = np.isnan(values)
    codes = {int(k): v for k, v in table.items()}
    low, high = min(codes), max(codes)
    lookup = np.full(high - low + 1, np.nan)
    for k, v in codes.items():
        lookup[k - low] = v
    integral = ~missing & (np.mod(np.where(missing, 0, values), 1) == 0)
    inside = integral & (values >= low) & (values <= high)
    looked = np.full(values.shape, np.nan)
    looked[inside] = lookup[values[inside].astype(np.int64) - low]
    return looked, missing


def _encode_categorical(
    series: pd.Series, col: Column, domain: CategoricalDomain, report: EncodeReport
) -> np.ndarray:
    table: dict[str, int] = domain.lookup()
    if col.kind == "boolean":
        table = {"false": 0, "true": 1, "False": 0, "True": 1, "0": 0, "1": 1}
    if domain.integer_codes and pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series):
        looked, missing = _lookup_integers(series, table)
    elif len(series) <= SMALL:  # one row of a repair: the same keys, without pandas' per-call cost
        keyed = [_key(v) for v in series.tolist()]
        if pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series):
            keyed = [None if k in ("inf", "-inf", "nan") else k for k in keyed]  # as the vectorised path reads them
        missing = np.array([k is None for k in keyed], dtype=bool)
        looked = np.array([np.nan if k is None else table.get(k, np.nan) for k in keyed], dtype=np.float64)
    else:
        keys = _keys(series)
        missing = keys.isna().to_numpy()
        looked = keys.map(table).to_numpy(dtype=np.float64, na_value=np.nan)
    unknown = ~missing & np.isnan(looked)
    codes = np.where(np.isnan(looked), 0, looked).astype(np.int32)
    if missing.any():
        if domain.missing_code is not None:
            codes[missing] = domain.missing_code
            report.missing[col.name] += int(missing.sum())
        elif domain.other_code is not None:
            codes[missing] = domain.other_code
            report.mapped_to_other[col.name] += int(missing.sum())
        else:
            raise InputError(
                f"column '{col.name}': {int(missing.sum())} value(s) missing and the schema allows neither "
                "'missing' nor 'other'; set domain.missing: true"
            )
    if unknown.any():
        if domain.other_code is not None:
            codes[unknown] = domain.other_code
            report.mapped_to_other[col.name] += int(unknown.sum())
        elif domain.missing_code is not None:
            codes[unknown] = domain.missing_code
            report.unknown_to_missing[col.name] += int(unknown.sum())
        else:
            raise InputError(
                f"column '{col.name}': {int(unknown.sum())} value(s) not in the schema's categories and the "
                "domain has no 'other' bucket; add the categories or set domain.other: true"
            )
    return codes


def _encode_numeric(
    series: pd.Series, col: Column, domain: NumericDomain, report: EncodeReport
) -> np.ndarray:
    values = pd.to_numeric(series, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
    bad = pd.to_numeric(series, errors="coerce").isna() & series.notna()
    if bad.any():
        report.mapped_to_other[col.name] += int(bad.sum())
    missing = np.isnan(values)
    if missing.any():
        if domain.missing_code is None:
            raise InputError(
                f"column '{col.name}': {int(missing.sum())} value(s) missing and the domain has "
                "no 'missing' bucket; set domain.missing: true"
            )
        report.missing[col.name] += int(missing.sum())
    clamped = ~missing & ((values < domain.lower) | (values > domain.upper))
    if clamped.any():
        report.clamped[col.name] += int(clamped.sum())
    safe = np.clip(np.where(missing, domain.lower, values), domain.lower, domain.upper)
    edges = np.asarray(domain.edges)
    codes = np.clip(np.searchsorted(edges, safe, side="right") - 1, 0, domain.n_bins - 1)
    if missing.any() and domain.missing_code is not None:
        codes = np.where(missing, domain.missing_code, codes)
    return codes.astype(np.int32)




def _bin_bounds(domain: NumericDomain, bins: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Lower end and width of each bin, on the integer grid for integer domains."""
    edges = np.asarray(domain.edges)
    low, high = edges[bins], edges[bins + 1]
    if domain.integer:
        last = bins == domain.n_bins - 1
        lo = np.ceil(low)
        hi = np.maximum(np.where(last, np.floor(high), np.ceil(high) - 1), lo)
        return lo, hi - lo + 1
    return low, high - low


def sub_bin_index(series: pd.Series, domain: NumericDomain) -> np.ndarray:
    """For each value, ``bin * SUB_BINS + sub-bin`` of its clamped value; -1 when missing."""
    values = pd.to_numeric(series, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
    missing = np.isnan(values)
    safe = np.clip(np.where(missing, domain.lower, values), domain.lower, domain.upper)
    bins = np.clip(np.searchsorted(np.asarray(domain.edges), safe, side="right") - 1, 0, domain.n_bins - 1)
    low, width = _bin_bounds(domain, bins)
    position = np.clip((safe - low) / width, 0.0, 1.0 - 1e-12)
    index = bins * SUB_BINS + (position * SUB_BINS).astype(np.int64)
    return np.where(missing, -1, index)


SERIES_JITTER = 0.08  # a repeated measure's within-bin position: the patient's, moved by this much (SD)


def series_positions(schema: Schema, n: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Within-bin positions in [0, 1) for the columns of :attr:`Schema.value_series`: one
    draw per patient and series, moved a little per column (reflected at the bin's edges),
    so that a patient's yearly cholesterol stays near where it was when its bin does."""
    out: dict[str, np.ndarray] = {}
    for names in schema.value_series:
        base = rng.random(n)
        for name in names:
            p = np.abs(base + rng.normal(0.0, SERIES_JITTER, n))
            out[name] = np.minimum(np.where(p >= 1.0, 2.0 - p, p), np.nextafter(1.0, 0.0))
    return out


def decode(
    codes: np.ndarray, schema: Schema, rng: np.random.Generator,
    refinements: dict[str, np.ndarray] | None = None,
) -> pd.DataFrame:
    """Turn integer codes back into values: categories, or numbers drawn inside their bin
    (a patient's repeated measures at related positions, :func:`series_positions`)."""
    data: dict[str, pd.Series] = {}
    positions = series_positions(schema, len(codes), rng)
    for j, col in enumerate(schema.learned_columns):
        data[col.name] = _decode_column(codes[:, j], col, rng, (refinements or {}).get(col.name),
                                        positions.get(col.name))
    # copy=False: the decoded columns are fresh arrays; copying them would double the peak
    return pd.DataFrame(data, copy=False)


def _decode_column(
    codes: np.ndarray, col: Column, rng: np.random.Generator, refinement: np.ndarray | None = None,
    position: np.ndarray | None = None,
) -> pd.Series:
    domain = col.domain
    assert domain is not None
    if isinstance(domain, CategoricalDomain):
        if col.kind == "boolean":
            flags = pd.array(codes == 1, dtype="boolean")
            if domain.missing_code is not None:
                flags[codes == domain.missing_code] = pd.NA
            return pd.Series(flags)
        labels: list[object] = [c.code for c in domain.categories]
        if domain.integer_codes and not domain.other:
            # nullable integers straight from a lookup table: no per-row Python objects
            numbers = np.array([int(str(x)) for x in labels] + [0], dtype=np.int64)
            mask = codes == len(labels) if domain.missing else np.zeros(len(codes), dtype=bool)
            return pd.Series(pd.arrays.IntegerArray(numbers[codes], mask))
        if domain.integer_codes:
            labels = [int(str(x)) for x in labels]
        if domain.other:
            labels.append(OTHER)
        if domain.missing:
            labels.append(None)
        lookup = np.array(labels, dtype=object)
        return pd.Series(lookup[codes], dtype=object)
    return pd.Series(decode_numeric(codes, domain, rng, refinement, position))


def decode_one(col: Column, code: int, rng: np.random.Generator, refinement: np.ndarray | None = None) -> object:
    """One value of ``col`` for one public code (missing as None)."""
    value = _decode_column(np.array([code]), col, rng, refinement).iloc[0]
    return None if value is pd.NA else value


def decode_numeric(
    codes: np.ndarray, domain: NumericDomain, rng: np.random.Generator,
    refinement: np.ndarray | None = None, position: np.ndarray | None = None,
) -> pd.api.extensions.ExtensionArray:
    """Draw a value inside each code's bin, never on its edges by construction.

    Values follow a shape inside the bin -- ``refinement``, an ``(n_bins, SUB_BINS)`` array of
    weights (the DP detail pulled to the public shape, :mod:`privsynth.binshape`), else the
    public shape itself (uniform, or decaying in a tail bin) -- through the inverse of the
    bin's piecewise-uniform CDF; integers among the bin's integers.
    ``position`` (uniform in [0, 1), one per row) replaces the fresh uniform draw.
    """
    missing = codes == domain.missing_code if domain.missing_code is not None else np.zeros(len(codes), bool)
    bins = np.where(missing, 0, codes).astype(np.int64)
    low, width = _bin_bounds(domain, bins)
    u = rng.random(len(codes)) if position is None else np.asarray(position, dtype=np.float64)
    shape = public_shape(domain) if refinement is None else refinement
    weights = np.clip(np.asarray(shape, dtype=np.float64), 0, None) + 1e-3 / SUB_BINS
    cdf = np.cumsum(weights / weights.sum(axis=1, keepdims=True), axis=1)
    cdf[:, -1] = 1.0
    # the sub-bin is the number of cdf entries of its bin at or below u; one sorted search
    # over all bins (bin b's cdf shifted to (b, b+1]) keeps memory O(n)
    shifted = (cdf + np.arange(len(cdf))[:, None]).ravel()
    sub = np.clip(np.searchsorted(shifted, u + bins, side="right") - bins * SUB_BINS, 0, SUB_BINS - 1)
    below = np.where(sub > 0, cdf[bins, np.maximum(sub - 1, 0)], 0.0)
    share = cdf[bins, sub] - below
    inside = np.clip((u - below) / np.where(share > 0, share, 1.0), 0.0, np.nextafter(1.0, 0.0))
    u = (sub + inside) / SUB_BINS
    if domain.integer:
        values = low + np.minimum(np.floor(u * width), width - 1)
        out = pd.array(values.astype(np.int64), dtype="Int64")
    else:
        out = pd.array(low + u * width, dtype="Float64")
    out[missing] = pd.NA
    return out


def rule_rows(frame: pd.DataFrame, schema: Schema, columns: list[Column] | None = None) -> dict[str, np.ndarray]:
    """The view's columns as rules read them (:mod:`privsynth.schema.rule`): numbers as
    float64 with NaN for missing, categories and booleans as labels over the public domain
    (an unknown value is 'other', an absent one 'missing'). Vectorised through the codes."""
    out: dict[str, np.ndarray] = {}
    for col in columns if columns is not None else schema.view_columns:
        if col.name not in frame.columns or col.domain is None:
            continue
        if isinstance(col.domain, CategoricalDomain):
            codes = _encode_categorical(frame[col.name], col, col.domain, EncodeReport())
            out[col.name] = np.asarray(col.domain.labels, dtype=object)[codes]
        else:
            out[col.name] = pd.to_numeric(frame[col.name], errors="coerce").to_numpy(dtype=np.float64,
                                                                                  na_value=np.nan)
    return out


def code_box(col: Column, code: int) -> object:
    """What a rule knows of a value from its public code alone: a category's label, or a
    number's closed bin interval (None when missing)."""
    domain = col.domain
    if isinstance(domain, CategoricalDomain):
        return domain.labels[code]
    assert isinstance(domain, NumericDomain)
    if domain.missing_code is not None and code == domain.missing_code:
        return None
    low, width = _bin_bounds(domain, np.array([code]))
    if domain.integer:
        return float(low[0]), float(low[0] + width[0] - 1)
    return float(low[0]), float(low[0] + width[0])
