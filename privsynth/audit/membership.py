"""Membership inference: can an attacker holding the synthetic data tell training patients
from patients the generator never saw?

Two attacks, both scored on train members against holdout non-members (equal numbers):

- **distance**: the closer a record is to its nearest synthetic row, the likelier a member
  (score = minus that distance);
- **density ratio** (DOMIAS, van Breugel et al. 2023): a member is where the synthetic data
  are denser than the population. Densities are nearest-neighbour estimates with the
  audit distance: score = log(d_reference) - log(d_synthetic). (With 1-NN densities in a
  space of effective dimension D, log p_syn/p_ref = D * score + constant: the same ranking.)
  The reference is half of the holdout, cross-fitted: each holdout half is scored against
  the other half, so every holdout patient is a non-member and none is its own reference.

Each attack reports its AUC with a bootstrap interval, TPR at 1% and 0.1% FPR, and an
empirical epsilon lower bound (stats.epsilon_lower_bound) shown beside what the claimed
(epsilon, delta) allows at that FPR: TPR <= e^epsilon * FPR + delta.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from privsynth.audit.neighbours import nearest
from privsynth.audit.policy import Policy
from privsynth.audit.protocol import AuditContext, Threshold
from privsynth.audit.registry import register
from privsynth.audit.reidentification import informative, sides
from privsynth.audit.result import Check
from privsynth.audit.section import ReportInfo, Roc, Section, Text
from privsynth.audit.space import AuditSpace
from privsynth.audit.stats import auc, auc_interval, epsilon_lower_bound, roc, tpr_at_fpr, tpr_at_fpr_interval

SMOOTH = 1e-4  # added to distances before the log, so exact copies score high but finite
ROC_POINTS = 200


def attack_checks(name: str, members: np.ndarray, nonmembers: np.ndarray, policy: Policy,
                  rng: np.random.Generator, epsilon: float | None, delta: float) -> tuple[list[Check], dict]:
    audit = f"{MembershipInference.name} ({name})"
    value = auc(members, nonmembers)
    lo, hi = auc_interval(members, nonmembers, rng)
    tpr1, tpr1_lo, tpr1_hi = tpr_at_fpr_interval(members, nonmembers, 0.01)
    tpr01 = tpr_at_fpr(members, nonmembers, 0.001)
    eps_lb = epsilon_lower_bound(members, nonmembers, delta)
    allowed1 = None if epsilon is None else min(1.0, math.exp(epsilon) * 0.01 + delta)
    eps_limit = policy.epsilon_lower_bound_max if epsilon is None else min(policy.epsilon_lower_bound_max, epsilon)
    claimed = "" if epsilon is None else f"; claimed epsilon {epsilon:g} allows TPR <= {allowed1:.3f} at 1% FPR"
    checks = [
        Check(audit, "AUC", value, (lo, hi), f"fails if lower bound > {policy.mia_auc_max:g}",
              lo <= policy.mia_auc_max),
        Check(audit, "TPR at 1% FPR", tpr1, (tpr1_lo, tpr1_hi),
              f"fails if lower bound > {policy.mia_tpr_at_1pct_fpr_max:g}",
              tpr1_lo <= policy.mia_tpr_at_1pct_fpr_max, f"(TPR at 0.1% FPR {tpr01:.4f}{claimed})"),
        Check(audit, "empirical epsilon lower bound", eps_lb, None,
              f"fails if > {eps_limit:g}" + ("" if epsilon is None else " (policy limit or claimed epsilon)"),
              eps_lb <= eps_limit),
    ]
    fpr, tpr = roc(members, nonmembers)
    keep = np.unique(np.linspace(0, len(fpr) - 1, min(len(fpr), ROC_POINTS)).astype(int))
    figures = {"auc": value, "auc_interval": [lo, hi], "tpr_at_1pct_fpr": tpr1,
               "tpr_at_1pct_fpr_interval": [tpr1_lo, tpr1_hi], "tpr_at_0.1pct_fpr": tpr01,
               "epsilon_lower_bound": eps_lb, "roc_fpr": fpr[keep].tolist(), "roc_tpr": tpr[keep].tolist(),
               "members": len(members), "nonmembers": len(nonmembers)}
    return checks, figures


class MembershipInference:
    """The distance and density-ratio attacks (module docstring)."""

    name = "membership inference"
    thresholds = (
        Threshold("mia_auc_max", 0.55, 0.5, 1.0, True, help="membership-inference AUC: lower bound above this fails"),
        Threshold("mia_tpr_at_1pct_fpr_max", 0.02, 0.01, 1.0, True,
                  help="attack TPR at 1% FPR: lower bound above this fails"),
        Threshold("epsilon_lower_bound_max", 1.0, 0.0, 1e3, True,
                  help="empirical epsilon lower bound above this (or the claimed epsilon) fails"),
    )
    partial_synthesis = "information only: membership is disclosed by design (the rows are the train patients)"

    def applies(self, context: AuditContext) -> bool:
        return True

    def run(self, context: AuditContext) -> tuple[list[Check], dict[str, Any]]:
        found = sides(context)
        train, holdout, synthetic = context.spaces()
        checks, figures = membership_checks(synthetic, train, holdout, found.train_to_synthetic,
                                            found.holdout_to_synthetic, context.policy, context.rng,
                                            context.epsilon, context.delta, context.workers)
        if context.partial:
            checks = [informative(c, True) for c in checks]
        return checks, figures

    def section(self, figures: dict[str, Any], info: ReportInfo) -> Section:
        """Each attack's ROC curve against the DP envelope (none in a partial synthesis:
        the guarantee does not cover the kept columns)."""
        curves = tuple((name.replace("_", " "), tuple(f["roc_fpr"]), tuple(f["roc_tpr"]))
                       for name, f in figures.items())
        return Section("membership", "Membership inference", (
            Text(("An attacker who holds the synthetic data tries to tell training patients from held-out ones. "
                  "Each curve shows, on log axes, how many training patients (TPR) the attack flags for a given "
                  "share of false alarms (FPR). The black line is the most any attack can achieve under the DP "
                  "guarantee; curves near the dashed chance line mean the attack learns nothing.",)),
            Roc(curves, None if info.partial else info.epsilon, info.delta)))


def membership_checks(synthetic: AuditSpace, train: AuditSpace, holdout: AuditSpace,
                      train_to_synthetic: np.ndarray, holdout_to_synthetic: np.ndarray, policy: Policy,
                      rng: np.random.Generator, epsilon: float | None, delta: float,
                      workers: int | None = None) -> tuple[list[Check], dict]:
    """``*_to_synthetic``: each real row's nearest mean distance to the synthetic rows."""
    checks, figures = attack_checks("distance", -train_to_synthetic, -holdout_to_synthetic, policy, rng,
                                    epsilon, delta)
    out = {"distance": figures}
    # DOMIAS, cross-fitted: holdout halves A and B are each other's reference population;
    # each member is scored against one half, drawn at random
    order = rng.permutation(holdout.n)
    halves = (order[: holdout.n // 2], order[holdout.n // 2:])
    side = rng.integers(0, 2, train.n)
    d_ref_members = np.empty(train.n)
    d_ref_nonmembers = np.empty(holdout.n)
    for h in (0, 1):
        reference = holdout.take(halves[h])
        d_ref_nonmembers[halves[1 - h]] = nearest(holdout.take(halves[1 - h]), reference,
                                                  workers=workers).mean[:, 0]
        mine = np.flatnonzero(side == h)
        d_ref_members[mine] = nearest(train.take(mine), reference, workers=workers).mean[:, 0]

    def score(d_ref: np.ndarray, d_syn: np.ndarray) -> np.ndarray:
        return np.log(d_ref + SMOOTH) - np.log(d_syn + SMOOTH)

    domias, figures = attack_checks("density ratio", score(d_ref_members, train_to_synthetic),
                                    score(d_ref_nonmembers, holdout_to_synthetic), policy, rng, epsilon, delta)
    out["density_ratio"] = figures
    return checks + domias, out


register(MembershipInference())
