"""Model consistency: released rows that copy training records beyond what fresh draws of the
same model do are refused; clean releases are not (issue 19: 1% near-copies on flchain)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from privsynth.audit import Policy
from privsynth.audit.consistency import Consistency, consistency_z, copied_records
from privsynth.audit.protocol import AuditContext
from privsynth.audit.space import AuditSpace
from tests.conftest import ROOT, SHARED


def test_copied_records_counts_distinct_isolated_close_records():
    """Three training records on a line; rows: a copy of record 0 (isolated), a second copy of
    it (same record: counted once), a row between 1 and 2 (close to both: not isolated), a
    row far from everything."""
    train = AuditSpace.from_arrays(np.array([[0.0], [0.5], [0.52]]), np.zeros((3, 0)), ())
    rows = AuditSpace.from_arrays(np.array([[0.001], [0.002], [0.51], [0.9]]), np.zeros((4, 0)), ())
    assert copied_records(rows, train, near=0.01) == 1


@pytest.mark.parametrize(("released", "fresh", "z"), [
    pytest.param(100, [100, 100], 0.0, id="as-the-draws"),
    pytest.param(130, [100, 100, 100, 100], 30 / np.sqrt(125), id="above"),
    pytest.param(1, [0, 0], 1 / np.sqrt(1.5), id="a-variance-of-at-least-one"),
])
def test_the_z_score_by_hand(released, fresh, z):
    assert consistency_z(released, np.array(fresh, dtype=float)) == pytest.approx(z)


def test_flchain_near_copies_are_refused_and_clean_releases_pass():
    """Ten fits at epsilon 1 on flchain's train patients: 1% of the rows replaced by training
    records jittered by up to 1% of each number's range (the leak the train/holdout tests
    could catch once in ten) is refused at least 9 times; the clean samples never."""
    from privsynth.audit.canary import plant
    from privsynth.generator import Synthesizer
    from privsynth.schema import load_schema
    from privsynth.table import read_table

    path = SHARED / "tabular" / "flchain.csv"
    if not path.is_file():
        pytest.skip(f"shared data not found at {SHARED}")
    schema = load_schema(ROOT / "schemas" / "tabular" / "flchain.yaml")
    view, _ = read_table([path], schema)
    rng = np.random.default_rng(19)
    refused = {"clean": 0, "near-copies": 0}
    for run in range(10):
        held = rng.random(len(view)) < 0.2
        train, holdout = view[~held].reset_index(drop=True), view[held].reset_index(drop=True)
        model = Synthesizer(schema, 1.0).fit(train)
        clean = model.sample(None, rng=run)
        for kind, synthetic in (("clean", clean), ("near-copies", plant("near-copies", clean, train, schema, rng))):
            context = AuditContext(train, holdout, synthetic, schema, Policy(), np.random.default_rng(run),
                                   resample=model.sample)
            [check], _ = Consistency().run(context)
            refused[kind] += check.passed is False
    assert refused["near-copies"] >= 9 and refused["clean"] == 0, refused


def test_it_needs_the_model_and_a_full_synthesis():
    frame = pd.DataFrame({"x": [1.0]})
    context = AuditContext(frame, frame, frame, None, Policy(), np.random.default_rng(0))  # type: ignore[arg-type]
    assert not Consistency().applies(context)
