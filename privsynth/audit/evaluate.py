"""Run every audit on one synthetic dataset against its train and holdout patients.

Works for any synthetic data described by the schema -- privsynth's own or another
tool's. Audit statistics touch real data and are not differentially private: the full
figures are for the data owner; a release carries only the verdicts.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np
import pandas as pd

from privsynth.audit.policy import Policy
from privsynth.audit.protocol import AuditContext, Charts
from privsynth.audit.registry import audits
from privsynth.audit.result import AuditResult
from privsynth.errors import AuditError
from privsynth.progress import Progress
from privsynth.schema.model import Schema


def evaluate(train: pd.DataFrame, holdout: pd.DataFrame, synthetic: pd.DataFrame, schema: Schema,
             policy: Policy | None = None, *, epsilon: float | None = None, delta: float = 1e-6,
             seed: int | None = 0, workers: int | None = None, progress: Progress | None = None,
             keep: list[str] | None = None,
             resample: Callable[[int, np.random.Generator], pd.DataFrame] | None = None,
             charts: Charts | None = None) -> AuditResult:
    """Audit ``synthetic`` (patient views, one row per patient) against ``train`` (what the
    generator saw) and ``holdout`` (what it never saw) with every registered audit that
    applies. ``epsilon``/``delta``: the claimed guarantee, if any (an empirical lower bound
    above it is a failure). ``seed``: of the audit's own resampling; None draws it from OS
    entropy (as ``release`` does).

    ``keep``: the synthetic rows are a PARTIAL synthesis of the train patients with these
    columns real. Each audit says what it does then (``partial_synthesis``): membership is
    disclosed by design, so distances run on the replaced columns, and attribute inference
    joins the gate.

    ``resample``: fresh draws of the model that made ``synthetic`` (``release`` gives it):
    the model-consistency audit then checks that the released rows are no closer to training
    patients than the model's own draws are.

    ``charts``: the real and synthetic patients as FHIR records (``release`` of a FHIR
    export gives them): the face-validity audit then compares a clinician's red flags.
    """
    policy = policy or Policy()
    m = min(len(train), len(holdout))
    if m < policy.min_holdout:
        raise AuditError(
            f"too few patients to audit: train {len(train)}, holdout {len(holdout)}; the policy needs "
            f"min_holdout {policy.min_holdout} on each side. Audits on fewer patients cannot tell a leak "
            "from chance; use more patients or a policy with a smaller min_holdout"
        )
    if len(synthetic) == 0:
        raise AuditError("the synthetic dataset has no rows to audit")
    context = AuditContext(train, holdout, synthetic, schema, policy, np.random.default_rng(seed), epsilon, delta,
                           tuple(keep or ()), workers, resample=resample, charts=charts)
    t0 = time.perf_counter()
    checks = []
    figures: dict = {}
    running = [a for a in audits() if a.applies(context)]
    for k, audit in enumerate(running):
        found, audit_figures = audit.run(context)
        checks.extend(found)
        figures[audit.name] = audit_figures
        if progress is not None:
            progress("audit", k + 1, len(running))
    figures["seconds"] = time.perf_counter() - t0
    figures["policy"] = policy.as_dict()
    figures["weakened"] = policy.weakened()
    audited = [len(frame) for frame in context.audited()]
    sizes = {"train": len(train), "holdout": len(holdout), "holdout_compared": min(m, *audited[:2]),
             "synthetic": len(synthetic), "audit_rows_max": context.audit_rows,
             "train_audited": audited[0], "holdout_audited": audited[1], "synthetic_audited": audited[2]}
    return AuditResult(tuple(checks), sizes, figures)
