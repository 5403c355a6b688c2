"""Attribute inference (anonymeter-style), for partial synthesis: knowing a patient's real
kept columns, can an attacker guess their secret (a replaced column) from the release?

For each target the attacker takes the released row nearest on the kept columns (the audit
distance) and guesses its value of the secret. A guess is right when it equals the truth
(categories) or is within ``tolerance`` of the column's public range (numbers). The attack
runs on train targets (whose kept columns ARE in the release) and, as the control, on
holdout targets (who are not). The risk is anonymeter's

    risk = (attack rate - control rate) / (1 - control rate)

with a normal interval on the difference of the two rates (both are estimated), at
confidence 1 - 0.05 / (number of replaced columns) so that the family of columns has a 5%
false-alarm rate at most. 0 means the release tells an attacker nothing about a training
patient's secret beyond what it tells about anyone.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from scipy.stats import norm

from privsynth.audit.neighbours import nearest
from privsynth.audit.policy import Policy
from privsynth.audit.protocol import AuditContext, Threshold
from privsynth.audit.registry import register
from privsynth.audit.result import Check
from privsynth.audit.space import audit_space
from privsynth.domain import encode
from privsynth.schema.model import NumericDomain, Schema

TOLERANCE = 0.05  # of the public range: a numeric guess this close counts as right


def _numbers(series: pd.Series) -> np.ndarray:
    return pd.to_numeric(series, errors="coerce").to_numpy(dtype=float, na_value=np.nan)


def _right_number(guess: pd.Series, truth: pd.Series, domain: NumericDomain) -> np.ndarray:
    g, t = _numbers(guess), _numbers(truth)
    close = np.abs(g - t) <= TOLERANCE * (domain.upper - domain.lower)
    return (np.isnan(g) & np.isnan(t)) | np.nan_to_num(close, nan=0).astype(bool)


def attribute_inference_checks(released: pd.DataFrame, train: pd.DataFrame, holdout: pd.DataFrame,
                               keep: list[str], schema: Schema, policy: Policy, rng: np.random.Generator,
                               workers: int | None = None) -> tuple[list[Check], dict]:
    m = min(len(train), len(holdout))
    targets = train.iloc[rng.permutation(len(train))[:m]].reset_index(drop=True)
    control = holdout.iloc[rng.permutation(len(holdout))[:m]].reset_index(drop=True)
    kept_schema = schema.only(keep)
    released_space = audit_space(released, kept_schema)
    guess_t = nearest(audit_space(targets, kept_schema), released_space, workers=workers).index
    guess_c = nearest(audit_space(control, kept_schema), released_space, workers=workers).index
    released = released.reset_index(drop=True)
    # categories are compared by their codes over the public domain (so 0, 0.0 and "0" agree)
    codes = {name: encode(frame, schema)[0] for name, frame in
             (("released", released), ("targets", targets), ("control", control))}
    index = {c.name: j for j, c in enumerate(schema.learned_columns)}
    checks, figures = [], {}
    secrets = [c for c in schema.learned_columns if c.name not in keep]
    z = float(norm.ppf(1 - 0.05 / 2 / max(1, len(secrets))))
    for col in secrets:
        if isinstance(col.domain, NumericDomain):
            attack = _right_number(released[col.name].iloc[guess_t].reset_index(drop=True), targets[col.name],
                                   col.domain)
            base = _right_number(released[col.name].iloc[guess_c].reset_index(drop=True), control[col.name],
                                 col.domain)
        else:
            j = index[col.name]
            attack = codes["released"][guess_t, j] == codes["targets"][:, j]
            base = codes["released"][guess_c, j] == codes["control"][:, j]
        rate, rate_c = float(attack.mean()), float(base.mean())
        half = z * float(np.sqrt((rate * (1 - rate) + rate_c * (1 - rate_c)) / m))
        scale = max(1.0 / m, 1 - rate_c)
        risk = (rate - rate_c) / scale
        interval = ((rate - rate_c - half) / scale, (rate - rate_c + half) / scale)
        checks.append(Check(AttributeInference.name, f"risk for '{col.name}' from the kept columns", risk, interval,
                            f"fails if lower bound > {policy.attribute_risk_max:g}",
                            interval[0] <= policy.attribute_risk_max,
                            f"attack {rate:.3f}, control {rate_c:.3f}, {m} targets each"))
        figures[col.name] = {"attack_rate": rate, "control_rate": rate_c, "risk": risk, "interval": list(interval)}
    return checks, figures


class AttributeInference:
    """Anonymeter-style attribute inference (module docstring), for partial synthesis only."""

    name = "attribute inference"
    thresholds = (
        Threshold("attribute_risk_max", 0.05, 0.0, 1.0, True,
                  help="partial synthesis: attribute-inference risk lower bound above this fails"),
    )
    partial_synthesis = "runs only then: every replaced column's risk, from the kept ones, gates the release"

    def applies(self, context: AuditContext) -> bool:
        return context.partial

    def run(self, context: AuditContext) -> tuple[list[Check], dict[str, Any]]:
        train, holdout, synthetic = context.audited()
        checks, figures = attribute_inference_checks(synthetic, train, holdout,
                                                     list(context.keep), context.schema, context.policy,
                                                     context.rng, context.workers)
        return checks, {"columns": figures, "kept_columns": list(context.keep)}


register(AttributeInference())
