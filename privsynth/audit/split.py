"""The patient-level train / holdout split, made before the generator sees anything.

>>> train, holdout = holdout_split(1000, 0.2, 100, np.random.default_rng(0))
>>> len(train), len(holdout), len(set(train) & set(holdout))
(800, 200, 0)
"""

from __future__ import annotations

import numpy as np

from privsynth.errors import AuditError


def holdout_split(n: int, fraction: float, min_holdout: int,
                  rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Row indices of train and holdout (a uniformly random ``fraction`` of patients).

    Refuses data too small to audit: the holdout must have ``min_holdout`` patients, and
    train at least as many (the audits compare equal-size samples of both).
    """
    size = int(round(n * fraction))
    if size < min_holdout or n - size < min_holdout:
        need = int(np.ceil(min_holdout / min(fraction, 1 - fraction)))
        raise AuditError(
            f"too few patients to audit a release: {n} patients give a holdout of {size} at "
            f"holdout_fraction {fraction:g}, and the policy needs min_holdout {min_holdout} on each side "
            f"(at least {need} patients). Audits on fewer patients cannot tell a leak from chance; "
            "use more patients, or a policy with a smaller min_holdout (recorded as a weakening)"
        )
    order = rng.permutation(n)
    return np.sort(order[size:]), np.sort(order[:size])
