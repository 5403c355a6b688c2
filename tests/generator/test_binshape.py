"""Where a number falls inside its bin (privsynth.binshape, privsynth.domain.decode_numeric):
tail bins decay away from their inner edge, noise alone never shapes a bin, a measured shape
survives, and a patient's repeated measures keep their place inside their bins."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from privsynth.binshape import SUB_BINS, public_shape, shrink
from privsynth.domain import decode, decode_numeric, series_positions
from privsynth.schema.load import load_schema
from privsynth.schema.model import NumericDomain

ROOT = Path(__file__).resolve().parents[2]
CHOLESTEROL = NumericDomain(50, 500, (50, 170, 200, 240, 500))


def test_public_shape_decays_in_tail_bins_and_is_uniform_elsewhere() -> None:
    shape = public_shape(CHOLESTEROL)
    assert shape.shape == (4, SUB_BINS)
    assert np.allclose(shape.sum(axis=1), 1.0)
    assert np.all(np.diff(shape[0]) > 0)  # [50, 170): denser towards 170
    assert np.all(np.diff(shape[3]) < 0)  # [240, 500]: denser towards 240
    assert np.allclose(shape[1:3], 1.0 / SUB_BINS)
    even = public_shape(NumericDomain(0, 20, (0, 5, 10, 15, 20)))  # no bin wider than its neighbour
    assert np.allclose(even, 1.0 / SUB_BINS)


def test_a_tail_bin_draws_near_its_inner_edge() -> None:
    rng = np.random.default_rng(7)
    codes = np.full(20_000, 3)  # all in [240, 500]
    values = np.asarray(decode_numeric(codes, CHOLESTEROL, rng), dtype=float)
    assert values.min() >= 240 and values.max() <= 500
    assert np.median(values) < 275  # about 240 + 40 ln 2 = 268
    assert (values > 400).mean() < 0.03  # exp(-160 / 40) = 1.8 %; uniform would put 38 % there
    low = np.asarray(decode_numeric(np.zeros(20_000, dtype=int), CHOLESTEROL, rng), dtype=float)
    assert np.median(low) > 145 and (low < 100).mean() < 0.12  # exp(-70 / 30) = 9.7 %; uniform: 42 %


def test_noise_alone_never_shapes_a_bin() -> None:
    rng = np.random.default_rng(11)
    prior = public_shape(CHOLESTEROL)
    sigma = 200.0
    true = 240.0 * prior  # a few dozen patients per sub-bin, as the prior has them: no shape to find
    kept_prior = 0
    for _ in range(300):
        out = shrink(true + rng.normal(0, sigma, true.shape), sigma, prior)
        norm = out / out.sum(axis=1, keepdims=True)
        kept_prior += int(np.allclose(norm, prior))
    assert kept_prior >= 285  # each bin lets pure noise through about 4 times in 1,000


def test_a_measured_shape_survives() -> None:
    rng = np.random.default_rng(3)
    prior = public_shape(CHOLESTEROL)
    true = np.zeros((4, SUB_BINS))
    true[1, 5] = 4000.0  # everyone in [200, 240) at 225-230
    for _ in range(20):
        out = shrink(true + rng.normal(0, 50.0, true.shape), 50.0, prior)
        assert out[1].argmax() == 5 and out[1, 5] / out[1].sum() > 0.85


def test_repeated_measures_keep_their_place_inside_their_bins() -> None:
    schema = load_schema(ROOT / "schemas" / "patient-timeline.yaml")
    series = next(s for s in schema.value_series if "labs_cholesterol_y1" in s)
    assert {"labs_cholesterol_y2", "total_cholesterol"} <= set(series)
    assert all(len(set(s)) == len(s) for s in schema.value_series)
    n = 4000
    names = [c.name for c in schema.learned_columns]
    codes = np.zeros((n, len(names)), dtype=np.int64)
    for j, col in enumerate(schema.learned_columns):
        if col.domain is not None and col.domain.missing_code is not None:
            codes[:, j] = col.domain.missing_code
    for name in ("labs_cholesterol_y1", "labs_cholesterol_y2"):
        codes[:, names.index(name)] = 1  # [170, 200) both years
    frame = decode(codes, schema, np.random.default_rng(5))
    y1 = frame["labs_cholesterol_y1"].astype(float).to_numpy()
    y2 = frame["labs_cholesterol_y2"].astype(float).to_numpy()
    assert np.corrcoef(y1, y2)[0, 1] > 0.85  # independent draws: about 0
    assert np.median(np.abs(y1 - y2)) < 4.0  # of a 30 mg/dL bin
    positions = series_positions(schema, 1000, np.random.default_rng(1))
    for values in positions.values():
        assert values.min() >= 0.0 and values.max() < 1.0


@pytest.mark.parametrize("integer", [False, True])
def test_a_given_position_is_the_inverse_of_the_bin_shape(integer: bool) -> None:
    domain = NumericDomain(0, 80, (0, 10, 20, 80), integer=integer)
    u = np.linspace(0, 0.999, 500)
    values = np.asarray(decode_numeric(np.full(500, 2), domain, np.random.default_rng(0), position=u), dtype=float)
    assert np.all(np.diff(values) >= 0)  # monotone in the position: one patient's place, kept
    assert values[0] == 20 and values[-1] <= 80
