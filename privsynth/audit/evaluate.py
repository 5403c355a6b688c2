"""Run every audit on one synthetic dataset against its train and holdout patients.

Works for any synthetic data described by the schema -- privsynth's own or another
tool's. Audit statistics touch real data and are not differentially private: the full
figures are for the data owner; a release carries only the verdicts.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable

import numpy as np
import pandas as pd

from privsynth.audit.inference import attribute_inference_checks, restricted
from privsynth.audit.membership import membership_checks
from privsynth.audit.policy import Policy
from privsynth.audit.reidentification import reidentification_checks
from privsynth.audit.result import AuditResult
from privsynth.audit.space import audit_space
from privsynth.errors import AuditError
from privsynth.schema.model import Schema

Progress = Callable[[str, int, int], None]


def evaluate(train: pd.DataFrame, holdout: pd.DataFrame, synthetic: pd.DataFrame, schema: Schema,
             policy: Policy | None = None, *, epsilon: float | None = None, delta: float = 1e-6,
             seed: int | None = 0, workers: int | None = None, progress: Progress | None = None,
             keep: list[str] | None = None) -> AuditResult:
    """Audit ``synthetic`` (patient views, one row per patient) against ``train`` (what the
    generator saw) and ``holdout`` (what it never saw). ``epsilon``/``delta``: the claimed
    guarantee, if any (an empirical lower bound above it is a failure). ``seed``: of the
    audit's own resampling; None draws it from OS entropy (as ``release`` does).

    ``keep``: the synthetic rows are a PARTIAL synthesis of the train patients with these
    columns real. Membership is then disclosed by design (the rows are the train patients),
    so the distance checks run on the replaced columns only: exact and near matches stay
    gates (a copied secret shows there), the rest become information, and the attribute
    inference audit on every replaced column joins the gate.
    """
    policy = policy or Policy()
    full_schema = schema
    if keep:
        schema = restricted(schema, [c.name for c in schema.learned_columns if c.name not in keep])
    m = min(len(train), len(holdout))
    if m < policy.min_holdout:
        raise AuditError(
            f"too few patients to audit: train {len(train)}, holdout {len(holdout)}; the policy needs "
            f"min_holdout {policy.min_holdout} on each side. Audits on fewer patients cannot tell a leak "
            "from chance; use more patients or a policy with a smaller min_holdout"
        )
    if len(synthetic) == 0:
        raise AuditError("the synthetic dataset has no rows to audit")
    rng = np.random.default_rng(seed)
    t0 = time.perf_counter()
    # train, in random order, is cut into chunks the size of the (subsampled) holdout
    train_rows = rng.permutation(len(train))
    holdout_rows = rng.permutation(len(holdout))[:m]
    train_space = audit_space(train.iloc[train_rows], schema)
    holdout_space = audit_space(holdout.iloc[holdout_rows], schema)
    synthetic_space = audit_space(synthetic, schema)
    if progress is not None:
        progress("audit", 1, 3)
    checks, figures, train_to_synthetic, holdout_to_synthetic = reidentification_checks(
        synthetic_space, train_space, holdout_space, policy, workers)
    if progress is not None:
        progress("audit", 2, 3)
    mia, mia_figures = membership_checks(synthetic_space, train_space, holdout_space, train_to_synthetic,
                                         holdout_to_synthetic, policy, rng, epsilon, delta, workers)
    if progress is not None:
        progress("audit", 3, 3)
    figures["membership_inference"] = mia_figures
    checks = checks + mia
    if keep:
        why = "information only: in a partial synthesis the released rows are the train patients"
        checks = [c if c.passed is None or c.name.startswith(("exact matches", "near matches"))
                  else dataclasses.replace(c, passed=None, detail=f"{c.detail} ({why})".strip()) for c in checks]
        inference, inference_figures = attribute_inference_checks(synthetic, train, holdout, list(keep), full_schema,
                                                                  policy, rng, workers)
        checks += inference
        figures["attribute_inference"] = inference_figures
        figures["kept_columns"] = list(keep)
    figures["seconds"] = time.perf_counter() - t0
    figures["policy"] = policy.as_dict()
    figures["weakened"] = policy.weakened()
    sizes = {"train": len(train), "holdout": len(holdout), "holdout_compared": m, "synthetic": len(synthetic)}
    return AuditResult(tuple(checks), sizes, figures)
