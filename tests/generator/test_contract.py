"""The contract every registered generator passes (the suite reads the registry).

Each check is a plain function of the generator's name, so a generator registered later
(tests/generator/test_registry.py registers a toy one) runs the same checks.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from privsynth.domain import domain_sizes
from privsynth.generator import Synthesizer, registry
from privsynth.generator.constraint import violations
from privsynth.schema import load_schema

TABLE_SCHEMA = {
    "name": "toy", "input": "table",
    "constraints": ["age < 20 -> stage in [1]"],
    "columns": [
        {"name": "sex", "kind": "categorical", "role": "quasi_identifier", "source": {"column": "sex"},
         "domain": {"categories": ["F", "M"], "other": False, "missing": False}},
        {"name": "stage", "kind": "categorical", "role": "sensitive", "source": {"column": "stage"},
         "domain": {"categories": [1, 2, 3], "other": False, "missing": False}},
        {"name": "age", "kind": "integer", "role": "quasi_identifier", "source": {"column": "age"},
         "domain": {"lower": 0, "upper": 99, "bins": 10, "missing": False}},
        {"name": "smoker", "kind": "boolean", "role": "sensitive", "source": {"column": "smoker"}},
    ],
}


def toy_frame(n: int = 2000, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    sex = rng.choice(["F", "M"], n)
    age = rng.integers(0, 100, n)
    stage = np.where(age > 60, rng.choice([2, 3], n), np.where(age < 20, 1, rng.choice([1, 2], n)))
    smoker = rng.random(n) < np.where(sex == "M", 0.4, 0.2)
    return pd.DataFrame({"sex": sex, "stage": stage, "age": age, "smoker": smoker})


def check_spends_the_budget_and_returns_self(method: str, epsilon: float) -> None:
    synth = Synthesizer(load_schema(TABLE_SCHEMA), epsilon=epsilon, method=method)
    assert synth.fit(toy_frame()) is synth
    acc = synth.accountant_
    assert acc.rho_spent <= acc.rho_total
    assert acc.rho_spent == pytest.approx(acc.rho_total, rel=1e-6)
    assert all(c.purpose and c.rho > 0 for c in acc.charges)
    assert synth.n_rows_estimate > 0 and synth.model_.metadata["method"] == method


def check_domains_are_the_public_ones_and_rules_hold(method: str) -> None:
    schema = load_schema(TABLE_SCHEMA)
    synth = Synthesizer(schema, epsilon=3.0, method=method).fit(toy_frame())
    assert synth.model_.domain_sizes == domain_sizes(schema) == (2, 3, 10, 3)  # a boolean has a missing code
    out = synth.sample(2000, rng=0)
    assert set(out["stage"].unique()) <= {1, 2, 3} and pd.api.types.is_integer_dtype(out["stage"])
    assert out["age"].between(0, 99).all() and pd.api.types.is_integer_dtype(out["age"])
    assert not violations(out, schema, schema.rules).any()
    # the structural zero (a stage above 1 before 20) is exactly zero in the model itself
    codes = synth.model_.sample(20_000, np.random.default_rng(1))
    assert not ((codes[:, 2] <= 1) & (codes[:, 1] > 0)).any()


def check_save_load_round_trip(method: str, tmp_path: Path) -> None:
    schema = load_schema(TABLE_SCHEMA)
    synth = Synthesizer(schema, epsilon=2.0, method=method).fit(toy_frame())
    synth.save(tmp_path / "m")
    again = Synthesizer.load(tmp_path / "m", schema)
    pd.testing.assert_frame_equal(synth.sample(300, rng=5), again.sample(300, rng=5))


def check_tiny_schemas_fit(method: str, columns: int) -> None:
    schema = load_schema(dict(TABLE_SCHEMA, columns=TABLE_SCHEMA["columns"][:columns], constraints=[]))
    synth = Synthesizer(schema, epsilon=1.0, method=method).fit(toy_frame())
    assert synth.accountant_.rho_spent <= synth.accountant_.rho_total
    assert synth.sample(10, rng=0).shape == (10, columns)


METHODS = [pytest.param(name, id=name) for name in registry.names()]


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("epsilon", [0.3, 1.0, 3.0])
def test_fit_returns_self_and_spends_exactly_the_budget(method, epsilon):
    check_spends_the_budget_and_returns_self(method, epsilon)


@pytest.mark.parametrize("method", METHODS)
def test_domains_are_public_and_structural_zeros_hold(method):
    check_domains_are_the_public_ones_and_rules_hold(method)


@pytest.mark.parametrize("method", METHODS)
def test_save_load_round_trip_gives_identical_samples(method, tmp_path):
    check_save_load_round_trip(method, tmp_path)


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("columns", [1, 2], ids=["one-column", "two-columns"])
def test_tiny_schemas_fit(method, columns):
    check_tiny_schemas_fit(method, columns)


def test_unknown_method_is_a_clear_error_listing_the_registered_ones():
    from privsynth.errors import InputError

    with pytest.raises(InputError, match="allowed: aim, mst"):
        Synthesizer(load_schema(TABLE_SCHEMA), method="gan").fit(toy_frame())
