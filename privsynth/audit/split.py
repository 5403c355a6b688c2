"""The patient-level train / holdout split, made before the generator sees anything.

Each patient goes to the holdout by an independent coin with probability ``fraction``,
drawn from fresh OS entropy that is never recorded. So the assignment cannot be computed
from anything published (seeds, the manifest) nor from the order of the input, and adding
one patient x to the input changes the training set by at most x (the other patients'
coins are the same random variables either way): the DP guarantee of the model fitted on
train carries over to the input, with the patient as the unit. A split keyed to a seed and
to the number of rows reshuffles everyone when one patient is added, and then the
neighbouring training sets differ by hundreds of patients (docs/privacy.md).

>>> train, holdout = holdout_split(10_000, 0.2, 100)
>>> len(train) + len(holdout), len(set(train) & set(holdout))
(10000, 0)
>>> 1_800 < len(holdout) < 2_200
True
"""

from __future__ import annotations

import math

import numpy as np

from privsynth.errors import AuditError

MARGIN_SD = 4.0  # the realised holdout falls short of min_holdout with probability < 1e-4


def patients_needed(fraction: float, min_holdout: int) -> int:
    """The fewest patients whose random split leaves ``min_holdout`` on each side with
    overwhelming probability: ``n * f - 4 sd >= min_holdout`` for the smaller side, where
    ``sd = sqrt(n f (1 - f))`` is the binomial spread of its size (a public formula)."""
    side, spread = min(fraction, 1 - fraction), math.sqrt(fraction * (1 - fraction))
    root = (MARGIN_SD * spread + math.sqrt((MARGIN_SD * spread) ** 2 + 4 * side * min_holdout)) / (2 * side)
    n = max(1, int(math.floor(root * root)) - 1)
    while n * side - MARGIN_SD * spread * math.sqrt(n) < min_holdout:
        n += 1
    return n


def check_split_size(n: int, fraction: float, min_holdout: int, show_counts: bool = False) -> None:
    """Refuse data too small to audit, before anything is spent. The message gives the
    input's exact patient count only with ``show_counts`` (the screen is no counting oracle)."""
    need = patients_needed(fraction, min_holdout)
    if n < need:
        have = f"{n} patients" if show_counts else "fewer patients than needed"
        raise AuditError(
            f"too few patients to audit a release: {have}, and the policy's holdout_fraction {fraction:g} "
            f"with min_holdout {min_holdout} on each side needs at least {need} (the holdout is drawn at random, "
            "so its size varies). Audits on fewer patients cannot tell a leak from chance; use more patients, "
            "or a policy with a smaller min_holdout (recorded as a weakening)")


def holdout_split(n: int, fraction: float, min_holdout: int,
                  rng: np.random.Generator | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Row indices of train and holdout: each of the ``n`` patients is held out with
    probability ``fraction``, independently.

    ``rng`` is for tests only: without it the coins come from fresh OS entropy, which is
    how ``privsynth release`` splits (the assignment must never be reproducible from
    anything recorded). Refuses data too small to audit: the holdout must have
    ``min_holdout`` patients, and train at least as many (the audits compare equal-size
    samples of both).
    """
    check_split_size(n, fraction, min_holdout)
    generator = np.random.default_rng() if rng is None else rng  # no seed: OS entropy
    held = generator.random(n) < fraction
    train, holdout = np.flatnonzero(~held), np.flatnonzero(held)
    if len(holdout) < min_holdout or len(train) < min_holdout:  # probability < 1e-4 after the check
        raise AuditError(
            f"the random split left fewer than min_holdout {min_holdout} patients on one side (a rare draw); "
            "nothing was fitted and the budget was not spent: run the release again")
    return train, holdout
