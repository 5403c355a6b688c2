"""Coherence: do the synthetic patients contradict themselves where real ones never do?

For every rule of the schema -- declared constraints and the ones its semantics imply (an
onset age at most the age, a condition with an onset exactly when present, a derived number
inside its bounds) -- and for every rule of its plausibility panel, the violation rate among
the real patients (train and holdout) and among the synthetic ones, side by side. A rate is
taken among the rows where the rule's premise holds (children, for "age < 12 -> ..."), or
among all rows for a plain condition.

- A hard rule **gates**: one synthetic row breaking it fails the release (the generator
  guarantees none; a failure is a bug). In a partial synthesis a rule over kept columns
  only is information: those values are real.
- A panel rule is **flagged** (information) when its synthetic rate exceeds both
  ``panel_ratio_max`` times the real rate and ``panel_rate_floor``.

The real rates are computed on real patients and stay in the internal audit.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from privsynth.audit.protocol import AuditContext, Threshold
from privsynth.audit.registry import register
from privsynth.audit.result import Check
from privsynth.audit.section import ReportInfo, Section, Strong, Table, Text
from privsynth.domain import rule_rows
from privsynth.schema.model import Schema
from privsynth.schema.rule import Implies, Rule

KINDS = {"declared": "hard (declared)", "implied": "hard (implied)", "plausibility": "panel"}  # in the report


def rates(frame: pd.DataFrame, schema: Schema, rules: tuple[Rule, ...]) -> list[tuple[int, int]]:
    """For each rule: (rows breaking it, rows where its premise holds)."""
    rows = rule_rows(frame, schema)
    out = []
    for rule in rules:
        broken = int(rule.violated(rows).sum())
        node = rule.node
        premise = int(node.premise.truth(rows).true.sum()) if isinstance(node, Implies) else len(frame)
        out.append((broken, premise))
    return out


def _rate(count: tuple[int, int]) -> float:
    return count[0] / count[1] if count[1] else 0.0


class Coherence:
    """Hard rules gate; the plausibility panel is compared with the real rates."""

    name = "coherence"
    thresholds = (
        Threshold("panel_ratio_max", 2.0, 1.0, 1e6, True,
                  help="a panel rule is flagged when its synthetic violation rate exceeds this times the real one ..."),
        Threshold("panel_rate_floor", 0.01, 0.0, 1.0, True, help="... and this rate"),
    )
    partial_synthesis = "the same, but a rule over kept (real) columns only is information"

    def applies(self, context: AuditContext) -> bool:
        return bool(context.schema.rules or context.schema.plausibility)

    def run(self, context: AuditContext) -> tuple[list[Check], dict[str, Any]]:
        schema, policy = context.schema, context.policy
        real = pd.concat([context.train, context.holdout], ignore_index=True)
        kept = set(context.keep)
        figures: dict[str, Any] = {"rules": []}
        broken_hard, real_only, flagged_panel = [], [], []
        for group in (schema.rules, schema.plausibility):
            real_counts = rates(real, schema, group)
            synthetic_counts = rates(context.synthetic, schema, group)
            for rule, r, s in zip(group, real_counts, synthetic_counts):
                if rule.kind == "plausibility":
                    flagged = _rate(s) > max(policy.panel_ratio_max * _rate(r), policy.panel_rate_floor)
                    if flagged:
                        flagged_panel.append(f"{rule.text} ({100 * _rate(s):.1f}% of {s[1]})")
                elif rule.columns <= kept:
                    flagged = False
                    real_only.append(rule.text)
                else:
                    flagged = s[0] > 0
                    if flagged:
                        broken_hard.append(f"{rule.text} ({s[0]} row(s))")
                figures["rules"].append({"rule": rule.text, "kind": rule.kind, "real": list(r),
                                         "synthetic": list(s), "flagged": bool(flagged), "real_columns_only":
                                         rule.columns <= kept})
        hard = [r for r in figures["rules"] if r["kind"] != "plausibility" and not r["real_columns_only"]]
        panel = [r for r in figures["rules"] if r["kind"] == "plausibility"]
        checks = []
        if hard:
            rows = sum(r["synthetic"][0] for r in hard)
            checks.append(Check(self.name, f"hard rules broken by synthetic rows ({len(hard)} rules)", rows, None,
                                "fails if any synthetic row breaks a rule", not broken_hard,
                                "; ".join(broken_hard) + (f"; {len(real_only)} rule(s) over kept real columns only: "
                                                          "information" if real_only else "")))
        if panel:
            checks.append(Check(self.name, f"plausibility panel rules flagged ({len(panel)} rules)",
                                len(flagged_panel), None,
                                f"information: a rule is flagged when its synthetic rate exceeds "
                                f"max({policy.panel_ratio_max:g} x real, {policy.panel_rate_floor:g})", None,
                                "; ".join(flagged_panel)))
        return checks, figures

    def section(self, figures: dict[str, Any], info: ReportInfo) -> Section:
        """Every rule, real beside synthetic; real counts under ``min_cell`` read "under"
        (the report shows no small cell)."""
        rules = figures.get("rules", [])
        if not rules:
            return Section("coherence", "Coherence", (
                Text(("The schema declares no rules between columns (docs/schema.md: constraints, plausibility).",)),))
        min_cell = info.min_cell

        def real_rate(count: list[int]) -> str:
            broken, among = count
            if 0 < broken < min_cell:
                return f"under {min_cell} of about {int(round(among / min_cell)) * min_cell}"
            return f"{100 * broken / among:.1f}%" if among else "–"

        rows, flagged = [], []
        for r in rules:
            broken, among = r["synthetic"]
            verdict = ("flagged" if r["flagged"] else "ok") if r["kind"] == "plausibility" else (
                "FAIL" if broken else "holds")
            rows.append((r["rule"], KINDS[r["kind"]], real_rate(r["real"]),
                         f"{100 * broken / among:.1f}% ({broken} of {among})" if among else "–", verdict))
            flagged.append(bool(r["flagged"]))
        return Section("coherence", "Coherence", (
            Text(("Rules a real record never breaks. ", Strong("Hard"), " rules, declared in the schema or implied by "
                  "it (an onset age at most the age; a condition with an onset exactly when present; a derived value "
                  "inside its bounds), hold in every synthetic row by construction, and one breaking row would "
                  "refuse the release. The ", Strong("panel"), " is what a clinician would check: each rule's share "
                  "of breaking rows among the patients its premise concerns, real beside synthetic, flagged when the "
                  "synthetic share is well above the real one.")),
            Table(("rule", "kind", "real patients breaking it", "synthetic patients breaking it", ""), tuple(rows),
                  tuple(flagged))))


register(Coherence())
