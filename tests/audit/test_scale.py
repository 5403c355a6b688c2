"""The distance audits at scale: a stated uniform sample of each side (docs/audit.md, "At scale")."""

from __future__ import annotations

import numpy as np
import pandas as pd

from privsynth.audit import Policy
from privsynth.audit.protocol import AuditContext
from tests.audit.test_reidentification import TWINS, twin_trials

SMALL = Policy(audit_rows_max=2000, min_holdout=100)


def frame(n: int) -> pd.DataFrame:
    return pd.DataFrame({"x": np.arange(n, dtype=float)})


def test_each_side_past_the_cap_is_a_uniform_sample_of_it_once():
    context = AuditContext(frame(8000), frame(2000), frame(800), TWINS, SMALL, np.random.default_rng(0))
    train, holdout, synthetic = context.audited()
    assert (len(train), len(holdout), len(synthetic)) == (2000, 500, 800)  # train and holdout at one rate
    assert train["x"].is_unique and set(train["x"]) <= set(range(8000))
    assert synthetic is context.synthetic  # under the cap: every row, untouched
    assert context.audited()[0] is train  # drawn once: every audit compares the same rows


def test_neither_the_cap_nor_the_holdout_goes_below_min_holdout():
    context = AuditContext(frame(6000), frame(1500), frame(3000), TWINS,
                           Policy(audit_rows_max=1000, min_holdout=1200), np.random.default_rng(0))
    assert context.audit_rows == 1200
    assert [len(f) for f in context.audited()] == [1200, 1200, 1200]


def test_a_smaller_sample_is_recorded_as_a_weakening():
    assert SMALL.weakened() == ["min_holdout: 100 (default 1000)", "audit_rows_max: 2000 (default 50000)"]


def test_a_leak_is_still_refused_on_a_sample_nine_times_in_ten_and_clean_rows_pass():
    # 20% near-copies of train patients, among twins (the hard case: every patient has a
    # look-alike 1% away, on another side 4 times in 5). The sample keeps 2,000 of about 4,800
    # train patients (a rate of 0.42; about 500 of 1,200 holdout patients at the same rate:
    # K = 4 chunks) and 2,000 of the synthetic rows. Only copies of SAMPLED records count as a
    # leak (about 400 x 0.42 = 170); a copy whose source was not sampled may hit its source's
    # twin, on train 4 times in 5: noise in the null's proportions. The sample costs power by
    # the sampling rate (docs/audit.md, "At scale"): the full data refuse 1% near-copies here
    # nine times in ten (test_reidentification), the sample needs about 20% for the same.
    def sampled(context: AuditContext) -> None:
        train, holdout = len(context.train), len(context.holdout)
        assert [len(f) for f in context.audited()] == [2000, round(2000 * holdout / train), 2000]

    refused, clean_refused = twin_trials(SMALL, 0.2, 1.0, sampled)
    assert refused >= 9 and clean_refused == 0
