"""Encoding to public domains and decoding inside bins."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from privsynth.domain import SUB_BINS, decode_numeric, encode, sub_bin_index
from privsynth.schema import NumericDomain, load_schema

SCHEMA = {"name": "d", "input": "table", "columns": [
    {"name": "x", "kind": "numeric", "role": "other", "source": {"column": "x"},
     "domain": {"lower": 0, "upper": 10, "bins": [0, 2, 5, 10]}},
    {"name": "k", "kind": "integer", "role": "other", "source": {"column": "k"},
     "domain": {"lower": 0, "upper": 9, "bins": [0, 3, 9]}},
    {"name": "c", "kind": "categorical", "role": "other", "source": {"column": "c"},
     "domain": {"categories": ["a", "b"]}},
]}


def test_encoding_by_hand_with_counted_treatments():
    schema = load_schema(SCHEMA)
    frame = pd.DataFrame({"x": [0, 1.99, 2, 10, 12, -1, None], "k": [0, 2, 3, 9, 9, 5, 1],
                          "c": ["a", "b", "zz", None, "a", "b", "a"]})
    codes, report = encode(frame, schema)
    assert codes[:, 0].tolist() == [0, 0, 1, 2, 2, 0, 3]  # 3 = missing bucket
    assert codes[:, 1].tolist() == [0, 0, 1, 1, 1, 1, 0]
    assert codes[:, 2].tolist() == [0, 1, 2, 3, 0, 1, 0]  # 2 = other, 3 = missing
    assert report.clamped["x"] == 2 and report.missing["x"] == 1
    assert report.mapped_to_other["c"] == 1 and report.missing["c"] == 1


@pytest.mark.parametrize("integer", [False, True], ids=["float", "integer"])
def test_decoded_values_stay_inside_their_bin(integer):
    domain = NumericDomain(0, 9, (0.0, 3.0, 9.0), missing=True, integer=integer)
    rng = np.random.default_rng(0)
    codes = rng.integers(0, 3, 5000)
    out = decode_numeric(codes, domain, rng)
    values = np.asarray(out.to_numpy(dtype=float, na_value=np.nan))
    assert np.isnan(values[codes == 2]).all()
    first, second = values[codes == 0], values[codes == 1]
    if integer:
        assert set(first) == {0, 1, 2} and set(second) == {3, 4, 5, 6, 7, 8, 9}
    else:
        assert (first >= 0).all() and (first < 3).all() and (second >= 3).all() and (second < 9).all()


def test_refinement_moves_values_inside_the_bin():
    domain = NumericDomain(0, 10, (0.0, 10.0), missing=False)
    weights = np.zeros((1, SUB_BINS))
    weights[0, 0] = 1000.0  # all the measured mass in the first sub-bin
    out = decode_numeric(np.zeros(4000, dtype=int), domain, np.random.default_rng(1), weights)
    values = out.to_numpy(dtype=float)
    assert (values < 10 / SUB_BINS).mean() > 0.95


def test_sub_bin_index_by_hand():
    domain = NumericDomain(0, 10, (0.0, 2.0, 10.0), missing=True)
    index = sub_bin_index(pd.Series([0.0, 1.99, 2.0, 10.0, None]), domain)
    assert index.tolist() == [0, SUB_BINS - 1, SUB_BINS, 2 * SUB_BINS - 1, -1]


def test_a_short_frame_is_read_as_the_long_one_is(core_schema):
    """Rules read a repaired row alone (value by value, without pandas' per-call cost): each
    row of a frame reads the same alone as inside the frame, whatever its types (numpy and
    pandas booleans, a missing category, one outside the domain, whole floats as codes)."""
    from privsynth.domain import decode, rule_rows

    rng = np.random.default_rng(4)
    sizes = [c.domain.size for c in core_schema.learned_columns]
    codes = np.stack([rng.integers(0, s, 60) for s in sizes], axis=1)
    frame = decode(codes, core_schema, rng)
    frame.loc[0, "race"] = None
    frame.loc[1, "gender"] = "robot"
    frame["diabetes"] = frame["diabetes"].astype(object)
    frame.loc[2, "diabetes"] = np.bool_(True)
    frame["marital_status"] = frame["marital_status"].astype(object)
    whole = rule_rows(frame, core_schema)
    for i in range(len(frame)):
        alone = rule_rows(frame.iloc[[i]].reset_index(drop=True), core_schema)
        assert alone.keys() == whole.keys()
        for name, values in alone.items():
            a, b = values[0], whole[name][i]
            assert (a == b) or (pd.isna(a) and pd.isna(b)), (i, name, a, b)
    assert whole["gender"][1] in ("other", "missing") and whole["race"][0] in ("other", "missing")
