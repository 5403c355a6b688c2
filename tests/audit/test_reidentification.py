"""Re-identification statistics on tiny hand-made distance tables."""

from __future__ import annotations

import numpy as np
import pytest

from privsynth.audit.reidentification import closer_share, nndr, side_hits, tail


def test_closer_share_counts_ties_half():
    d_train = np.array([0.1, 0.2, 0.3, 0.4])
    d_holdout = np.array([0.2, 0.2, 0.1, 0.5])
    # closer: rows 0 and 3; tie: row 1 -> (2 + 0.5) / 4
    assert closer_share(d_train, d_holdout) == 0.625


def test_side_hits_and_exact_binomial_p():
    # 2 chunks + holdout; 6 rows hit only train, 0 only holdout, 1 both
    hit_train = np.array([[1, 0], [0, 1], [1, 0], [1, 0], [0, 1], [0, 1], [1, 0]], dtype=bool)
    hit_holdout = np.array([0, 0, 0, 0, 0, 0, 1], dtype=bool)
    hits = side_hits(hit_train, hit_holdout)
    assert (hits.train, hits.holdout, hits.several, hits.chunks) == (6, 0, 1, 2)
    assert hits.p == pytest.approx((2 / 3) ** 6)  # P(no holdout hit among 6), each w.p. 1/3
    assert hits.ratio == float("inf")


def test_tail_uses_the_pooled_quantile():
    d_train = np.array([[0.0], [0.5], [0.6], [0.7]])
    d_holdout = np.array([0.8, 0.4, 0.5, 0.9])
    q, hits = tail(d_train, d_holdout, 0.25)
    assert q == pytest.approx(np.quantile([0.0, 0.5, 0.6, 0.7, 0.4, 0.5, 0.8, 0.9], 0.25))
    # q = 0.475: row 0 hits train only, row 1 holdout only
    assert (hits.train, hits.holdout, hits.several) == (1, 1, 0)


def test_nndr():
    assert nndr(np.array([[0.1, 0.2], [0.0, 0.0], [0.3, 0.3]])).tolist() == [0.5, 1.0, 1.0]
