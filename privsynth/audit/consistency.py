"""Model consistency: are the released rows draws of the released model, or closer to the
training patients than the model's own draws are?

Every other distance test compares train with a holdout, and its power is capped by the
holdout's size: under the null a near-copy of a training record is a training record with
probability K / (K + 1) anyway (docs/audit.md). A leak that enters AFTER the model -- a
decoder or writer bug that copies real records, the near-copies the leak suite plants --
has a sharper null. The released rows were drawn from the DP model, so they must look like
any other draws of it: the audit draws ``DRAWS`` fresh samples of the same size from the
same model (post-processing: they read only the model, and never leave the audit), and
counts in each the distinct training records that some row copies closely -- within
``near_match_distance / 2`` in every column, and ISOLATED: that record at most
``ISOLATION`` times as far as the second-nearest training record (a row among look-alikes
copies nobody in particular). Under the null the released count is one more draw of the
same count; the test is a one-sided z-score against the fresh draws' mean, with a Poisson
variance inflated for the mean's own error (distinct records counted, so duplicate rows of
one profile count once; stratified sampling only narrows the spread, which makes the test
conservative). It fails when z exceeds ``consistency_z_max``.

It needs the model (``AuditContext.resample``): ``release`` gives it; an audit of another
tool's data (``privsynth audit``) does not, and a partial synthesis (real rows, by design)
skips it. It compares at most ``ROWS`` released rows (a uniform sample of the audited ones)
and fresh draws of as many, against the audited train sample: five nearest-neighbour passes
of that size (docs/audit.md, "At scale"). What it cannot see is a leak inside the model
itself -- a model that memorised -- which the train-against-holdout tests are for.

>>> round(consistency_z(185, np.array([140.0, 150.0, 155.0, 151.0])), 2)
2.64
"""

from __future__ import annotations

from typing import Any

import numpy as np

from privsynth.audit.neighbours import nearest
from privsynth.audit.protocol import AuditContext, Threshold
from privsynth.audit.registry import register
from privsynth.audit.result import Check
from privsynth.audit.space import AuditSpace, audit_space

DRAWS = 4  # fresh samples of the model
ROWS = 10_000  # released rows compared (and rows per fresh draw)
ISOLATION = 0.3  # the copied record at most this times as far as the second-nearest training record


def consistency_z(released: int, fresh: np.ndarray) -> float:
    """How many standard deviations the released count lies above the fresh draws' mean
    (Poisson variance, inflated by 1 + 1/draws for the mean's own error)."""
    mean = float(np.mean(fresh))
    sd = float(np.sqrt(max(mean, 1.0) * (1.0 + 1.0 / len(fresh))))
    return (released - mean) / sd


def copied_records(rows: AuditSpace, train: AuditSpace, near: float, workers: int | None = None) -> int:
    """Distinct training records that some row copies closely and in isolation."""
    nn = nearest(rows, train, k=2, workers=workers)
    first, second = nn.mean[:, 0], nn.mean[:, 1]
    isolated = first <= ISOLATION * second
    hit = (nn.worst <= near) & isolated
    return len(set(nn.index[hit].tolist()))


class Consistency:
    """Released rows against fresh draws of the same model (module docstring)."""

    name = "model consistency"
    thresholds = (
        Threshold("consistency_z_max", 3.5, 2.0, 1e9, True,
                  help="released rows copying training records beyond the model's own draws: z above this fails"),
    )
    partial_synthesis = "skipped: the released rows are the train patients, with real columns by design"

    def applies(self, context: AuditContext) -> bool:
        return context.resample is not None and not context.partial

    def run(self, context: AuditContext) -> tuple[list[Check], dict[str, Any]]:
        assert context.resample is not None
        schema = context.schema
        train_rows, _, synthetic = context.audited()
        if len(synthetic) > ROWS:
            synthetic = synthetic.iloc[np.sort(context.rng.choice(len(synthetic), size=ROWS, replace=False))]
        train = audit_space(train_rows, schema)
        near = context.policy.near_match_distance / 2
        n = len(synthetic)
        released = copied_records(audit_space(synthetic, schema), train, near, context.workers)
        fresh = np.array([copied_records(audit_space(context.resample(n, context.rng), schema), train, near,
                                         context.workers) for _ in range(DRAWS)], dtype=float)
        z = consistency_z(released, fresh)
        limit = context.policy.consistency_z_max
        check = Check(self.name, "training records copied: released rows against fresh draws of the model", z, None,
                      f"fails if z > {limit:g}", z <= limit,
                      f"released {released}, fresh draws {', '.join(str(int(f)) for f in fresh)} "
                      f"(within {near:g} in every column, isolated)")
        return [check], {"released": released, "fresh": fresh.tolist(), "z": z, "distance": near,
                         "isolation": ISOLATION, "draws": DRAWS, "rows": n, "train_rows": train.n}


register(Consistency())
