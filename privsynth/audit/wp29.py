"""The three risks of the Article 29 Working Party's opinion on anonymisation (WP216, 2014):
singling out, linkability and inference, each measured as an attack on the released rows
with ``anonymeter`` (Giomi et al., PETS 2023; the evaluators the French regulator CNIL
reviewed), rather than re-implemented here.

Each attack is run three ways, as anonymeter does: against the **train** patients (who
shaped the model), as a **naive** random guess (the baseline an attack must beat to mean
anything), and against the **holdout** patients (the control: what the synthetic rows
teach an attacker about anyone, not about the patients in the data). Gated is the **excess**:
the attack's success on train beyond its success on the control, with a 95 % interval;
anonymeter's risk, the excess as a share of what the control left to gain,
``(train - control) / (1 - control)``, is reported beside it (see :func:`_check` for why it
does not gate).

- **Singling out**: predicates of 3 columns written from synthetic rows that hold for exactly
  one real train patient (multivariate; and single values for the univariate check).
- **Linkability**: the quasi-identifiers split in two halves; an attacker holding one half of
  a patient's record and another dataset holding the other links them through their nearest
  synthetic rows.
- **Inference**: knowing a patient's quasi-identifiers, guess each sensitive column from the
  nearest synthetic row; the worst column is gated (every column is in the figures).

A risk gates (``*_risk_max``, 0.09 by default: the threshold the EMA's Policy 0070 guidance
and Health Canada's cite for data shared with a controlled group) when its excess is
demonstrably above the threshold: its whole 95 % interval (for inference, family-wise over the
sensitive columns) lies above it. Figures are computed on real patients: internal.
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np
import pandas as pd

from privsynth.audit.protocol import AuditContext, Threshold
from privsynth.audit.registry import register
from privsynth.audit.result import Check
from privsynth.audit.section import ReportInfo, Section, Table, Text
from privsynth.schema.model import Schema

CONFIDENCE = 0.95
MISSING = "(missing)"


def attack_frame(frame: pd.DataFrame, schema: Schema) -> pd.DataFrame:
    """The learned columns as anonymeter reads them: numbers as floats (missing: NaN), every
    other value as text (missing: its own category)."""
    out = {}
    for col in schema.learned_columns:
        series = frame[col.name]
        if col.kind == "numeric":
            out[col.name] = pd.to_numeric(series, errors="coerce").astype(float).to_numpy()
        else:
            out[col.name] = np.where(series.isna().to_numpy(), MISSING, series.astype(str).to_numpy()).astype(object)
    return pd.DataFrame(out)


def frames(context: AuditContext) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, Schema]:
    """Train, holdout (the control) and synthetic rows on the compared columns (of the
    audited sample, :meth:`AuditContext.audited`), made once. Train and holdout are cut to
    the same size (random rows): a predicate is likelier to hold for exactly one of 4,000
    patients than of 1,000, so unequal sizes would read as risk where there is none
    (independent draws of one population scored 0.23 at 1,500 vs 400)."""
    if "wp29" not in context.cache:
        schema = context.distance_schema
        train, holdout, synthetic = context.audited()
        m = min(len(train), len(holdout))
        train = train.iloc[np.sort(context.rng.permutation(len(train))[:m])]
        holdout = holdout.iloc[np.sort(context.rng.permutation(len(holdout))[:m])]
        context.cache["wp29"] = (attack_frame(train, schema), attack_frame(holdout, schema),
                                 attack_frame(synthetic, schema), schema)
    cached: tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, Schema] = context.cache["wp29"]
    return cached


def attacks(context: AuditContext) -> int:
    """Attacks per evaluation: the policy's, at most the holdout's and the synthetic rows' size."""
    return int(min(context.policy.wp29_attacks, *(len(frame) for frame in context.audited())))


def _risk(evaluator: Any, confidence: float = CONFIDENCE) -> dict[str, Any]:
    """An evaluated anonymeter evaluator's figures: its risk and interval, the three success
    rates, and the excess -- the success on train beyond the control -- with its interval
    (at ``confidence``)."""
    with warnings.catch_warnings():  # "attack no better than the baseline" is recorded below, not printed
        warnings.simplefilter("ignore", UserWarning)
        results = evaluator.results(confidence_level=confidence)
        risk = evaluator.risk(confidence_level=confidence)
    attack, control = results.attack_rate, results.control_rate
    excess = attack.value - (control.value if control is not None else 0.0)
    error = math.hypot(attack.error, control.error if control is not None else 0.0)
    return {"risk": float(risk.value), "interval": [float(risk.ci[0]), float(risk.ci[1])],
            "attack": float(attack.value), "baseline": float(results.baseline_rate.value),
            "control": float(control.value) if control is not None else None,
            "excess": float(excess), "excess_interval": [float(excess - error), float(excess + error)],
            "attacks": int(results.n_attacks_ori)}


def _check(name: str, what: str, figure: dict[str, Any], limit: float, detail: str = "",
           interval: str = "95% interval") -> Check:
    """Gates the excess: the share of attacks that succeed on the patients the model saw beyond
    the share that succeed on held-out patients. anonymeter's risk divides that excess by what
    the control left to gain, ``1 - control``: for a value nearly everyone shares (no stroke:
    the control guesses 98 % right) 8 more successes in 500 read as a risk of 0.67 with an
    interval of [0.34, 1] (example hospital at epsilon 1), while the excess, 0.016, says what
    an attacker gains. Both are in the figures and the report.

    The gate refuses when the excess is demonstrably above ``limit``: its whole interval lies
    above it. A point estimate alone would refuse clean releases by chance -- the worst of 48
    columns' excesses on clean rhc output at epsilon 1 was 0.081, about what the noise of 500
    attacks gives a maximum of 48 -- so inference takes its interval family-wise over its
    columns (Bonferroni)."""
    beats = figure["attack"] > figure["baseline"]
    notes = [f"anonymeter risk {figure['risk']:.3f} [{figure['interval'][0]:.3f}, {figure['interval'][1]:.3f}]"]
    if not beats:
        notes.append("the attack did no better than a random guess")
    detail = "; ".join([*notes, detail]).strip("; ")
    return Check(name, what, figure["excess"], tuple(figure["excess_interval"]),
                 f"fails if the success beyond the control is above {limit:g} (its {interval} above it)",
                 figure["excess_interval"][0] <= limit, detail)


HEAD = ("attack", "success beyond control", "95% interval", "success (train)", "success (holdout)", "random guess",
        "anonymeter risk")


def _row(what: str, f: dict[str, Any]) -> tuple[str, ...]:
    low, high = f["excess_interval"]
    return (what, f"{f['excess']:.3f}", f"[{low:.3f}, {high:.3f}]", f"{f['attack']:.3f}",
            f"{f['control']:.3f}" if f["control"] is not None else "–", f"{f['baseline']:.3f}",
            f"{f['risk']:.3f} [{f['interval'][0]:.3f}, {f['interval'][1]:.3f}]")


def _quasi_identifiers(schema: Schema) -> list[str]:
    return [c.name for c in schema.learned_columns if c.role == "quasi_identifier"]


class SinglingOut:
    name = "singling out"
    thresholds = (
        Threshold("singling_out_risk_max", 0.09, 0.0, 1.0, True,
                  help="refuse when the singling-out risk (anonymeter, beyond the holdout control) exceeds this"),
        Threshold("wp29_attacks", 500, 50, 100_000, False, whole=True,
                  help="attacks per singling-out, linkability and inference evaluation (more: narrower intervals)"),
    )
    partial_synthesis = "the same, on the replaced columns"

    def applies(self, context: AuditContext) -> bool:
        return len(context.distance_schema.learned_columns) >= 2

    def run(self, context: AuditContext) -> tuple[list[Check], dict[str, Any]]:
        from anonymeter.evaluators import SinglingOutEvaluator

        train, holdout, synthetic, schema = frames(context)
        n = attacks(context)
        figures: dict[str, Any] = {}
        for mode, columns in (("univariate", 1), ("multivariate", min(3, len(schema.learned_columns)))):
            evaluator = SinglingOutEvaluator(train, synthetic, n_attacks=n, n_cols=columns, control=holdout,
                                             max_attempts=50 * n, seed=int(context.rng.integers(2**31)))
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)
                figures[mode] = _risk(evaluator.evaluate(mode=mode))
        limit = context.policy.singling_out_risk_max
        return [_check(self.name, f"{mode} singling-out risk", figures[mode], limit)
                for mode in ("univariate", "multivariate")], figures

    def section(self, figures: dict[str, Any], info: ReportInfo) -> Section | None:
        if not figures:
            return None
        rows = tuple(_row(f"{mode} (predicates of {1 if mode == 'univariate' else 3} column(s))", figures[mode])
                     for mode in ("univariate", "multivariate") if mode in figures)
        return Section("singling-out", "Singling-out risk (WP29)", (
            Text(("Predicates written from synthetic rows that hold for exactly one real patient (anonymeter). The "
                  "risk is the success on the patients the model saw beyond the success on held-out patients.",)),
            Table(HEAD, rows)))


class Linkability:
    name = "linkability"
    thresholds = (Threshold("linkability_risk_max", 0.09, 0.0, 1.0, True,
                            help="refuse when the linkability risk (anonymeter, beyond the control) exceeds this"),)
    partial_synthesis = "the same, on the replaced columns"

    def applies(self, context: AuditContext) -> bool:
        return len(context.distance_schema.learned_columns) >= 2

    def halves(self, schema: Schema) -> tuple[list[str], list[str]]:
        """The quasi-identifiers split in two (alternating); with fewer than two, all columns."""
        names = _quasi_identifiers(schema)
        if len(names) < 2:
            names = [c.name for c in schema.learned_columns]
        return names[0::2], names[1::2]

    def run(self, context: AuditContext) -> tuple[list[Check], dict[str, Any]]:
        from anonymeter.evaluators import LinkabilityEvaluator

        train, holdout, synthetic, schema = frames(context)
        first, second = self.halves(schema)
        evaluator = LinkabilityEvaluator(train, synthetic, aux_cols=(first, second), n_attacks=attacks(context),
                                         n_neighbors=1, control=holdout)
        figure = {**_risk(evaluator.evaluate(n_jobs=context.workers or 1)), "halves": [first, second]}
        check = _check(self.name, "linkability risk (quasi-identifiers split in two)", figure,
                       context.policy.linkability_risk_max, f"{', '.join(first)} | {', '.join(second)}")
        return [check], figure

    def section(self, figures: dict[str, Any], info: ReportInfo) -> Section | None:
        if not figures:
            return None
        first, second = figures["halves"]
        return Section("linkability", "Linkability risk (WP29)", (
            Text((f"An attacker holding {', '.join(first)} of a patient, and another source holding "
                  f"{', '.join(second)}, links the two through their nearest synthetic rows (anonymeter).",)),
            Table(HEAD, (_row("quasi-identifiers split in two", figures),))))


class Inference:
    name = "inference"
    thresholds = (Threshold("inference_risk_max", 0.09, 0.0, 1.0, True,
                            help="refuse when the inference risk of any sensitive column (anonymeter, beyond the "
                                 "control) exceeds this"),)
    partial_synthesis = "the same, each replaced sensitive column guessed from the quasi-identifiers"

    def applies(self, context: AuditContext) -> bool:
        schema = context.distance_schema
        return bool(_quasi_identifiers(schema)) and any(c.role == "sensitive" for c in schema.learned_columns)

    def run(self, context: AuditContext) -> tuple[list[Check], dict[str, Any]]:
        from anonymeter.evaluators import InferenceEvaluator

        train, holdout, synthetic, schema = frames(context)
        aux = _quasi_identifiers(schema)
        per_column: dict[str, Any] = {}
        secrets = [col for col in schema.learned_columns if col.role == "sensitive"]
        confidence = 1.0 - (1.0 - CONFIDENCE) / len(secrets)  # family-wise over the columns (Bonferroni)
        for col in secrets:
            evaluator = InferenceEvaluator(train, synthetic, aux_cols=aux, secret=col.name,
                                           regression=col.kind == "numeric", n_attacks=attacks(context),
                                           control=holdout)
            per_column[col.name] = _risk(evaluator.evaluate(n_jobs=context.workers or 1), confidence)
        worst = max(per_column, key=lambda k: per_column[k]["excess"])
        check = _check(self.name, f"inference risk, worst of {len(per_column)} sensitive columns", per_column[worst],
                       context.policy.inference_risk_max, f"worst: {worst}; known: {', '.join(aux)}",
                       f"95% interval over all {len(per_column)} columns")
        return [check], {"columns": per_column, "worst": worst, "known": aux}

    def section(self, figures: dict[str, Any], info: ReportInfo) -> Section | None:
        """One section for the three risks (this audit runs last of them and sees only its own
        figures, so the section lists inference per column; the gate table holds all three)."""
        columns = figures.get("columns")
        if not columns:
            return None
        ranked = sorted(columns.items(), key=lambda kv: -kv[1]["excess"])[:10]
        rows = tuple(_row(name, f) for name, f in ranked)
        return Section("inference-risk", "Inference risk (WP29)", (
            Text((f"Knowing a patient's {', '.join(figures.get('known', []))}, an attacker guesses each sensitive "
                  "column from the nearest synthetic row (anonymeter). The risk is the success on the patients the "
                  "model saw beyond the success on held-out patients; the ten highest are shown.",)),
            Table(HEAD, rows)))


register(SinglingOut())
register(Linkability())
register(Inference())
