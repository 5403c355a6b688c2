"""The attribute-inference audit on small tables whose answer is known."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from privsynth.audit import Policy
from privsynth.audit.inference import attribute_inference_checks
from privsynth.schema import load_schema

SCHEMA = load_schema({"name": "t", "input": "table", "columns": [
    {"name": "age", "kind": "integer", "role": "quasi_identifier", "source": {"column": "age"},
     "domain": {"lower": 0, "upper": 1000, "bins": 10}},
    {"name": "dx", "kind": "categorical", "role": "sensitive", "source": {"column": "dx"},
     "domain": {"categories": [0, 1, 2, 3], "missing": True}},
]})


def _people(n: int, rng: np.random.Generator, offset: int) -> pd.DataFrame:
    dx = rng.integers(0, 4, n).astype(float)  # read from a CSV with gaps: floats, as pandas does
    dx[rng.random(n) < 0.05] = np.nan
    return pd.DataFrame({"age": np.arange(offset, offset + n), "dx": dx})


@pytest.mark.parametrize(("copied", "passes"), [pytest.param(True, False, id="secrets-copied"),
                                                pytest.param(False, True, id="secrets-redrawn")])
def test_risk_is_high_when_secrets_are_copied_and_zero_when_redrawn(copied, passes):
    rng = np.random.default_rng(0)
    train, holdout = _people(400, rng, 0), _people(400, rng, 500)
    released = train.copy()  # partial synthesis keeps age; dx copied or redrawn at random
    if not copied:
        released["dx"] = pd.array(rng.integers(0, 4, len(train)), dtype="Int64")
    else:
        released["dx"] = pd.array(train["dx"].astype("Int64"), dtype="Int64")  # Int64 vs float64: same codes
    checks, figures = attribute_inference_checks(released, train, holdout, ["age"], SCHEMA, Policy(),
                                                 np.random.default_rng(1))
    [check] = checks
    assert check.passed is passes
    if copied:
        assert figures["dx"]["attack_rate"] == 1.0
    else:
        assert abs(figures["dx"]["risk"]) < 0.15
