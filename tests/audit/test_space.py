"""The Gower-like audit distance, by hand, and blocked computation equal to the direct one."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from privsynth.audit.neighbours import nearest
from privsynth.audit.space import AuditSpace, audit_space, pairwise
from privsynth.schema import load_schema

SCHEMA = load_schema({"name": "t", "input": "table", "columns": [
    {"name": "age", "kind": "integer", "role": "quasi_identifier", "source": {"column": "age"},
     "domain": {"lower": 0, "upper": 100, "bins": 10, "missing": True}},
    {"name": "sex", "kind": "categorical", "role": "quasi_identifier", "source": {"column": "sex"},
     "domain": {"categories": ["F", "M"], "missing": True}},
]})


@pytest.mark.parametrize(("a", "b", "mean", "worst"), [
    pytest.param((30, "F"), (30, "F"), 0.0, 0.0, id="identical"),
    pytest.param((30, "F"), (40, "F"), 0.05, 0.1, id="age-10-of-100"),
    pytest.param((30, "F"), (30, "M"), 0.5, 1.0, id="category-differs"),
    pytest.param((None, "F"), (None, "F"), 0.0, 0.0, id="missing-vs-missing"),
    pytest.param((None, "F"), (99, "F"), 0.5, 1.0, id="missing-vs-value"),
    pytest.param((30, None), (30, "F"), 0.5, 1.0, id="missing-category"),
    pytest.param((150, "F"), (100, "F"), 0.0, 0.0, id="clamped-to-bounds"),
])
def test_distance_by_hand(a, b, mean, worst):
    frame = pd.DataFrame([a, b], columns=["age", "sex"])
    space = audit_space(frame, SCHEMA)
    m, w = pairwise(space.take(np.array([0])), space.take(np.array([1])))
    assert m[0, 0] == pytest.approx(mean)
    assert w[0, 0] == pytest.approx(worst)


def test_blocked_nearest_equals_brute_force(monkeypatch):
    import privsynth.audit.space as space_module

    rng = np.random.default_rng(0)

    def random_space(n):
        numbers = rng.random((n, 3))
        numbers[rng.random((n, 3)) < 0.1] = np.nan
        return AuditSpace.from_arrays(numbers, rng.integers(0, 4, (n, 2)), (4, 4))

    x, y = random_space(300), random_space(200)
    monkeypatch.setattr(space_module, "BLOCK_CELLS", 1000)  # many small blocks
    nn = nearest(x, y, k=2, workers=2)
    mean, worst = pairwise(x, y)
    assert np.allclose(nn.mean, np.sort(mean, axis=1)[:, :2])
    assert np.allclose(nn.worst, worst.min(axis=1))
    assert np.allclose(nn.reverse, mean.min(axis=0))
