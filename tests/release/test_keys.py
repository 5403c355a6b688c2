"""Issue 19 at the release level: what keys the patients is stated and cannot be weakened
silently, partial synthesis cannot be unshuffled from the release directory, and the
manifest says what the gate means."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from privsynth.audit import Policy
from privsynth.errors import AuditFailed, InputError
from privsynth.privacy.ledger import Ledger
from privsynth.schema import load_schema

COLUMNS = [
    {"name": "sex", "kind": "categorical", "role": "quasi_identifier", "source": {"column": "sex"},
     "domain": {"categories": ["F", "M"]}},
    {"name": "age", "kind": "integer", "role": "quasi_identifier", "source": {"column": "age"},
     "domain": {"lower": 0, "upper": 100}},
    {"name": "chol", "kind": "numeric", "role": "sensitive", "source": {"column": "chol"},
     "domain": {"lower": 100, "upper": 400}},
    {"name": "outcome", "kind": "categorical", "role": "sensitive", "source": {"column": "outcome"},
     "domain": {"categories": [0, 1]}},
]
POLICY = Policy(min_holdout=100)


def _schema(keyed: bool):
    columns = COLUMNS + ([{"name": "pid", "role": "direct_identifier", "faker": "id", "source": {"column": "pid"}}]
                         if keyed else [])
    return load_schema({"name": "keys", "input": "table", **({"patient_id": "pid"} if keyed else {}),
                        "columns": columns})


@pytest.fixture(scope="module")
def table(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("keys")
    rng = np.random.default_rng(3)
    n = 1200
    sex = rng.choice(["F", "M"], n)
    age = rng.integers(18, 90, n)
    chol = np.round(150 + age * 1.2 + rng.normal(0, 25, n), 2).clip(100, 400)
    outcome = (rng.random(n) < 0.2 + 0.3 * (sex == "F")).astype(int)
    pd.DataFrame({"pid": [f"P{i:05d}" for i in range(n)], "sex": sex, "age": age, "chol": chol,
                  "outcome": outcome}).to_csv(tmp / "t.csv", index=False)
    return tmp / "t.csv"


def _release(table: Path, tmp: Path, schema, policy: Policy = POLICY, **kw):
    from privsynth.release.release import release

    for attempt in range(3):  # the gates are statistical at a holdout of ~240: retry a clean refusal
        out = tmp / f"attempt{attempt}" / "release"
        try:
            return release([table], schema, out, epsilon=1.0, policy=policy.replace(max_attempts=5),
                           ledger=Ledger(out.parent / "l.sqlite3"), **kw)
        except AuditFailed:
            continue
    raise AssertionError("three clean releases in a row were refused")


def test_a_table_keyed_by_row_hash_needs_the_policy_and_is_recorded(table, tmp_path):
    """A re-export with one value changed by 1e-6 is a new patient under a row hash: refused
    unless the policy allows it, and then stated in the manifest as a weakening."""
    with pytest.raises(InputError, match="allow_row_hash_key: 1"):
        _release(table, tmp_path, _schema(keyed=False))
    assert all(Ledger(p).budgets() == [] for p in tmp_path.rglob("*.sqlite3"))  # refused before any charge
    result = _release(table, tmp_path, _schema(keyed=False), POLICY.replace(allow_row_hash_key=1))
    manifest = json.loads((result.out / "manifest.json").read_text())
    assert manifest["patient_key"] == {"key": "a hash of each row (no patient_id column declared)", "row_hash": True}
    assert any(w.startswith("allow_row_hash_key: 1") for w in manifest["policy"]["weakened"])
    keyed = _release(table, tmp_path / "keyed", _schema(keyed=True))
    manifest = json.loads((keyed.out / "manifest.json").read_text())
    assert manifest["patient_key"] == {"key": "column 'pid'", "row_hash": False}
    assert manifest["gate"]["differentially_private"] is False and manifest["gate"]["max_attempts"] == 5
    assert "e^epsilon * beta" in manifest["gate"]["guarantee"]


def test_partial_synthesis_cannot_be_mapped_back_to_train_positions(table, tmp_path, monkeypatch):
    """The attack of issue 19: replay the published seed over the train patients in their
    order and look for the released values. Before the fix every released row was found (its
    drawn cholesterol value tells its train position); now none is beyond chance."""
    import privsynth.release.release as release_module
    from privsynth.generator import Synthesizer

    seen: list[pd.DataFrame] = []
    split = release_module.split_view

    def spying(view, policy):
        train, holdout = split(view, policy)
        seen.append(train.reset_index(drop=True))
        return train, holdout

    monkeypatch.setattr(release_module, "split_view", spying)
    schema = _schema(keyed=True)
    result = _release(table, tmp_path, schema, keep=["sex", "age"])
    released = pd.read_csv(result.out / "data" / "synthetic.csv")
    train = seen[-1]
    assert len(released) == len(train)
    model = Synthesizer.load(result.out / "model", schema)

    def tuples(frame: pd.DataFrame) -> set[tuple]:
        return set(zip(frame["sex"], frame["age"].astype(int), frame["chol"].round(6)))

    def reproduced(order: np.ndarray) -> float:
        replay = model.sample_partial(train.iloc[order].reset_index(drop=True), ["sex", "age"],
                                      rng=result.manifest.seed)
        return float(np.mean([t in tuples(replay) for t in zip(released["sex"], released["age"].astype(int),
                                                                released["chol"].round(6))]))

    found = reproduced(np.arange(len(train)))  # the attacker's replay, in train order
    chance = reproduced(np.random.default_rng(0).permutation(len(train)))  # a replay in an order unrelated to it
    assert found < chance + 0.05, f"{found:.0%} of released rows reproduced (chance {chance:.0%})"
