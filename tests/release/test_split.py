"""The train/holdout split: drawn from OS entropy per patient, so it is not computable from
anything published or from the input's order, and adding one patient changes the training
set by at most that patient. The statistical neighbour test checks the whole path
(split as ``release`` makes it, then the DP fit) end to end."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from privsynth.audit import Policy, holdout_split
from privsynth.audit.split import check_split_size, patients_needed
from privsynth.audit.stats import neighbour_epsilon_bound
from privsynth.errors import AuditError

FLAGS = ("a", "b", "c", "e")


def _neighbours(n: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """D: n patients with four independent balanced flags; D + x: one more patient (all flags 1)."""
    rng = np.random.default_rng(12345)
    frame = pd.DataFrame({f: rng.integers(0, 2, n).astype(str) for f in FLAGS},
                         index=pd.Index([f"p{i}" for i in range(n)], name="patient_id"))
    extra = pd.DataFrame({f: ["1"] for f in FLAGS}, index=pd.Index(["x"], name="patient_id"))
    return frame, pd.concat([frame, extra])


@pytest.fixture(scope="module")
def flag_schema():
    from privsynth.schema import load_schema

    return load_schema({"name": "flags", "input": "table", "columns": [
        {"name": f, "kind": "categorical", "role": "sensitive", "source": {"column": f},
         "domain": {"categories": ["0", "1"], "other": False, "missing": False}} for f in FLAGS]})


def _statistics(view: pd.DataFrame, schema, policy: Policy, fits: int) -> np.ndarray:
    """Per fit, each flag's share of '1' in the DP model fitted on train as `release` splits it."""
    from privsynth.generator import Synthesizer
    from privsynth.release.release import split_view

    out = np.empty((fits, len(FLAGS)))
    for k in range(fits):
        train, _ = split_view(view, policy)
        model = Synthesizer(schema, epsilon=1.0, delta=1e-6, refine_numbers=False).fit(train).model_
        for j in range(len(FLAGS)):
            counts = model.marginal((j,))
            out[k, j] = counts[1] / counts.sum()
    return out


def test_adding_one_patient_changes_the_model_by_no_more_than_dp_allows(flag_schema):
    """A black-box neighbour test. D and D + x differ by one patient; 200 fits per side at
    epsilon 1; the statistics (each flag's modelled share) are fixed in advance. The
    empirical epsilon lower bound (Clopper-Pearson at 95%, Bonferroni over 20 thresholds
    and 4 statistics) must stay well under the claimed 1. A split keyed to a seed and to n
    reshuffles about 6,400 of 20,000 patients when x is added; the model then tells D
    from D + x with a bound above 3 (benchmarks/neighbour.py measures both)."""
    policy = Policy(min_holdout=100)
    small, large = _neighbours(20_000)
    without = _statistics(small, flag_schema, policy, 200)
    with_x = _statistics(large, flag_schema, policy, 200)
    bound = neighbour_epsilon_bound(without, with_x, 1e-6)
    assert bound <= 0.5, f"empirical epsilon lower bound {bound:.2f} against a claimed epsilon of 1"


def test_each_patient_is_held_out_by_an_independent_coin():
    """Order-invariant coupling: the holdout share is the policy's, and two splits of the
    same patients are different draws (nothing seeds them)."""
    train_a, holdout_a = holdout_split(50_000, 0.2, 1000)
    train_b, holdout_b = holdout_split(50_000, 0.2, 1000)
    assert abs(len(holdout_a) / 50_000 - 0.2) < 0.01  # 5.6 standard deviations
    assert len(np.intersect1d(train_a, holdout_a)) == 0 and len(train_a) + len(holdout_a) == 50_000
    overlap = len(np.intersect1d(holdout_a, holdout_b)) / len(holdout_a)
    assert 0.17 < overlap < 0.23  # independent draws overlap by about the fraction itself, not 1


@pytest.mark.parametrize(("fraction", "minimum", "needed"), [
    pytest.param(0.2, 1000, 5599, id="default-policy"),
    pytest.param(0.2, 100, 714, id="lowered-minimum"),
    pytest.param(0.5, 1000, 2188, id="half"),
])
def test_the_size_needed_leaves_min_holdout_on_each_side_with_margin(fraction, minimum, needed):
    assert patients_needed(fraction, minimum) == needed
    check_split_size(needed, fraction, minimum)
    with pytest.raises(AuditError, match=f"needs at least {needed}"):
        check_split_size(needed - 1, fraction, minimum)
