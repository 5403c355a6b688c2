"""Partial synthesis: exact conditional sampling, kept columns byte-identical, roles enforced."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from privsynth.errors import InputError
from privsynth.generator.model import MarginalModel


def test_conditioning_on_a_downstream_column_is_exact():
    # a chain 0 - 1 - 2 of binary columns; evidence on column 2 must reach column 0
    p01 = np.array([[0.4, 0.1], [0.1, 0.4]])
    p12_given_1 = np.array([[0.9, 0.1], [0.2, 0.8]])
    potentials = {(0, 1): np.log(p01), (1, 2): np.log(p12_given_1)}
    model = MarginalModel(("a", "b", "c"), (2, 2, 2), potentials, 1.0)
    joint = p01[:, :, None] * p12_given_1[None, :, :]
    expected = joint[:, :, 1].sum(axis=1) / joint[:, :, 1].sum()  # P(a | c = 1)
    n = 40_000
    rows = model.sample_given({2: np.ones(n, dtype=np.int64)}, np.random.default_rng(0))
    assert (rows[:, 2] == 1).all()
    # fixed tolerance: 5 standard errors of a proportion at n = 40,000
    assert np.mean(rows[:, 0] == 1) == pytest.approx(expected[1], abs=5 * np.sqrt(0.25 / n))


@pytest.fixture(scope="module")
def fitted():
    from privsynth.generator import Synthesizer
    from privsynth.schema import load_schema

    schema = load_schema({"name": "t", "input": "table", "columns": [
        {"name": "sex", "kind": "categorical", "role": "quasi_identifier", "source": {"column": "sex"},
         "domain": {"categories": ["F", "M"]}},
        {"name": "age", "kind": "numeric", "role": "quasi_identifier", "source": {"column": "age"},
         "domain": {"lower": 0, "upper": 100, "bins": 10}},
        {"name": "dx", "kind": "categorical", "role": "sensitive", "source": {"column": "dx"},
         "domain": {"categories": ["a", "b", "c"]}},
    ]})
    rng = np.random.default_rng(0)
    n = 3000
    sex = rng.choice(["F", "M"], n)
    dx = np.where(sex == "F", rng.choice(["a", "b"], n), rng.choice(["b", "c"], n))
    real = pd.DataFrame({"sex": sex, "age": rng.uniform(0, 100, n).round(3), "dx": dx})
    return schema, real, Synthesizer(schema, 3.0).fit(real)


def test_kept_columns_are_byte_identical_and_the_others_change(fitted):
    schema, real, synth = fitted
    out = synth.sample_partial(real, ["sex", "age"], rng=1)
    assert out[["sex", "age"]].to_csv(index=False) == real[["sex", "age"]].to_csv(index=False)
    assert (out["dx"].to_numpy() != real["dx"].to_numpy()).mean() > 0.2
    # and the replaced column follows the kept one: F -> a/b, M -> b/c (fixed tolerance)
    assert np.mean(out.loc[out["sex"] == "F", "dx"] == "c") < 0.1
    assert np.mean(out.loc[out["sex"] == "M", "dx"] == "a") < 0.1


@pytest.mark.parametrize(("keep", "message"), [
    pytest.param(["dx"], "sensitive column", id="sensitive"),
    pytest.param(["weight"], "not a learned column", id="unknown"),
    pytest.param([], "at least one column", id="none"),
])
def test_keep_is_checked(fitted, keep, message):
    _, real, synth = fitted
    with pytest.raises(InputError, match=message):
        synth.sample_partial(real, keep)
