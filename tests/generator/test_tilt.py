"""The plausibility panel as a public prior (constraint.tilt): rows whose cells surely break a
panel rule have the rule's conclusion drawn again from the model given the rest of the row,
so what a noisy small count adds to a rare cell (heart failure in a child) is cut about
twentyfold while the premise keeps the model's share; the model's block resampling keeps
its own distribution (one exact Gibbs step)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from privsynth.generator import Synthesizer
from privsynth.generator.constraint import movable, tilt, violations
from privsynth.schema import load_schema

SCHEMA = {"name": "ward", "input": "table",
          "constraints": ["hf_onset <= age", "hf -> hf_onset is present", "hf_onset is present -> hf"],
          "plausibility": ["age < 18 -> not hf", "hf -> hf_onset >= age - 20"],
          "columns": [
              {"name": "age", "kind": "integer", "role": "quasi_identifier", "source": {"column": "age"},
               "domain": {"lower": 0, "upper": 99, "bins": [0, 18, 40, 60, 80, 99]}},
              {"name": "hf", "kind": "boolean", "role": "sensitive", "source": {"column": "hf"}},
              {"name": "hf_onset", "kind": "integer", "role": "sensitive", "source": {"column": "hf_onset"},
               "domain": {"lower": 0, "upper": 99, "bins": [0, 18, 40, 60, 80, 99]}},
              {"name": "sex", "kind": "categorical", "role": "quasi_identifier", "source": {"column": "sex"},
               "domain": {"categories": ["F", "M"]}}]}


def ward(n: int, rng: np.random.Generator) -> pd.DataFrame:
    """A third of the children have 'heart failure' with an onset at birth (the kind of cell
    noise fills), adults have it with onsets up to 30 years back (a third beyond 20)."""
    age = rng.integers(0, 99, n)
    hf = np.where(age < 18, rng.random(n) < 0.3, rng.random(n) < 0.2)
    back = np.floor(rng.uniform(0, 30, n))
    onset = np.where(hf, np.where(age < 18, 0, np.maximum(age - back, 18)), np.nan)
    return pd.DataFrame({"age": age, "hf": hf, "hf_onset": onset, "sex": rng.choice(["F", "M"], n)})


@pytest.fixture(scope="module")
def fitted():
    schema = load_schema(SCHEMA)
    return schema, Synthesizer(schema, epsilon=50.0).fit(ward(20000, np.random.default_rng(3)))


@pytest.mark.parametrize("rule, wide, blocks", [
    ("age < 18 -> not hf", False, (("hf", "hf_onset"),)),  # a flag moves with its onset
    ("hf -> hf_onset >= age - 20", False, (("hf_onset",),)),  # an onset moves inside the condition ...
    ("hf -> hf_onset >= age - 20", True, (("hf", "hf_onset"),)),  # ... or, wide, with it
], ids=["flag-with-onset", "onset-alone", "onset-wide"])
def test_a_rule_moves_what_its_conclusion_names_never_the_age(fitted, rule, wide, blocks):
    schema, _ = fitted
    found = next(r for r in schema.plausibility if r.text == rule)
    assert movable(found, schema, wide=wide) == blocks
    # with the condition fixed (partial synthesis), an onset still moves alone; the flag never
    assert movable(found, schema, fixed=("hf",), wide=wide) == ((("hf_onset",),) if "onset" in rule else ())


def test_resampling_a_block_keeps_the_model_distribution(fitted):
    """One exact block-Gibbs step from the model's own draws leaves their distribution as it was."""
    schema, synth = fitted
    model = synth.model_
    rng = np.random.default_rng(5)
    codes = model.sample(40000, rng)
    moved = model.resample(codes, [(1, 2)], rng)
    assert (moved[:, [0, 3]] == codes[:, [0, 3]]).all()  # the rest of each row is untouched
    assert 0.05 < (moved[:, 2] != codes[:, 2]).mean()  # the block did move
    for j in (1, 2):
        before = np.bincount(codes[:, j], minlength=model.domain_sizes[j]) / len(codes)
        after = np.bincount(moved[:, j], minlength=model.domain_sizes[j]) / len(codes)
        assert np.abs(before - after).max() < 0.01  # 40,000 draws: binomial SE below 0.0025


def test_the_tilt_cuts_a_rare_cell_and_keeps_the_premise(fitted):
    """Children with heart failure: the model's share (about 0.3) is cut by about SOFT_KEEP,
    the share of children is the model's, adults' heart failure stays as the model has it."""
    schema, synth = fitted
    rng = np.random.default_rng(7)
    codes = synth.sample_codes(20000, rng)
    tilted = tilt(codes, schema, lambda c, blocks: synth.model_.resample(c, blocks, rng), rng)
    child = codes[:, 0] == 0
    assert (tilted[:, 0] == codes[:, 0]).all()  # the age never moves
    share_before = (codes[child, 1] == 1).mean()
    share_after = (tilted[child, 1] == 1).mean()
    assert share_before > 0.2
    assert share_after < share_before * 0.2  # SOFT_KEEP is 0.05: cut about twentyfold, at least fivefold
    adults = ~child
    assert abs((tilted[adults, 1] == 1).mean() - (codes[adults, 1] == 1).mean()) < 0.03


def test_sampled_rows_follow_the_panel_and_the_hard_rules(fitted):
    schema, synth = fitted
    rows = synth.sample(20000, rng=2)
    children = rows["age"] < 18
    assert rows.loc[children, "hf"].fillna(False).astype(bool).mean() < 0.06  # the model has about 0.3
    hf = rows["hf"].fillna(False).astype(bool)
    assert not violations(rows, schema, schema.rules).any()  # every hard rule holds
    onset, age = rows.loc[hf, "hf_onset"].astype(float), rows.loc[hf, "age"].astype(float)
    assert onset.notna().all()
    assert (onset < age - 20).mean() < 0.1  # the data put about a third of them there
