"""The contract every registered audit keeps: well-formed thresholds that the policy knows,
checks carrying its name with a rule, JSON-serialisable figures, a clean verdict on data
that cannot leak, a clear stance in partial synthesis, and a report section (if any) made of
the known blocks only. A toy audit registered here shows that adding one needs nothing but
registering it (tests/report/test_report.py: nor does its report section)."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import numpy as np
import pandas as pd
import pytest

from privsynth.audit import Check, Policy, evaluate, load_policy
from privsynth.audit.protocol import AuditContext, Charts, HasSection, Threshold
from privsynth.audit.registry import RELEASE_THRESHOLDS, audits, register, thresholds, unregister
from privsynth.audit.section import BLOCKS, ReportInfo, Section
from privsynth.schema import load_schema

SCHEMA = load_schema({"name": "toy", "input": "table", "constraints": ["lab >= 0"],
                      "plausibility": ["age < 18 -> lab <= 9"], "columns": [
    {"name": "sex", "kind": "categorical", "role": "quasi_identifier", "source": {"column": "sex"},
     "domain": {"categories": ["F", "M"]}},
    {"name": "age", "kind": "integer", "role": "quasi_identifier", "source": {"column": "age"},
     "domain": {"lower": 0, "upper": 99, "bins": 10}},
    {"name": "dx", "kind": "categorical", "role": "sensitive", "source": {"column": "dx"},
     "domain": {"categories": ["a", "b", "c"]}},
    {"name": "lab", "kind": "numeric", "role": "sensitive", "source": {"column": "lab"},
     "domain": {"lower": 0, "upper": 10, "bins": 5}},
]})


def draw(n: int, rng: np.random.Generator) -> pd.DataFrame:
    """One population: the three frames below are independent draws of it (nothing can leak)."""
    sex = rng.choice(["F", "M"], n)
    age = rng.integers(0, 100, n)
    dx = np.where(age > 60, rng.choice(["a", "b", "c"], n, p=[0.6, 0.3, 0.1]), rng.choice(["a", "b", "c"], n))
    return pd.DataFrame({"sex": sex, "age": age, "dx": dx, "lab": np.round(rng.uniform(0, 10, n), 2)})


@pytest.fixture(scope="module")
def frames():
    rng = np.random.default_rng(7)
    return draw(1200, rng), draw(300, rng), draw(1200, rng)


POLICY = Policy(min_holdout=100)


def records(frame: pd.DataFrame) -> list[list[dict[str, Any]]]:
    """The rows as FHIR records (for the face-validity audit): a Patient of that sex and age,
    and for "a" after 40 a hypertension diagnosed at 35."""
    out = []
    for k, row in enumerate(frame.itertuples()):
        pid, birth = f"p{k}", 2020 - int(row.age)
        chart: list[dict[str, Any]] = [{"resourceType": "Patient", "id": pid, "birthDate": f"{birth}-01-01",
                                        "gender": "female" if row.sex == "F" else "male"}]
        if row.dx == "a" and row.age >= 40:
            chart.append({"resourceType": "Condition", "id": f"c{k}", "subject": {"reference": f"Patient/{pid}"},
                          "code": {"coding": [{"system": "http://snomed.info/sct", "code": "38341003"}]},
                          "onsetDateTime": f"{birth + 35}-06-01"})
        out.append(chart)
    return out


def charts(train: pd.DataFrame, holdout: pd.DataFrame, synthetic: pd.DataFrame) -> Charts:
    real, made = records(pd.concat([train, holdout])), records(synthetic)
    return Charts(real=lambda: iter(real), synthetic=lambda rows: (made[i] for i in rows),
                  reference=dt.date(2020, 12, 31))


@pytest.mark.parametrize("audit", audits(), ids=lambda a: a.name)
def test_thresholds_are_well_formed_and_known_to_the_policy(audit):
    names = [t.name for t in thresholds()]
    assert len(names) == len(set(names))  # no two audits share a threshold
    for spec in audit.thresholds:
        assert spec.low <= spec.default <= spec.high and spec.help
        assert getattr(Policy(), spec.name) == spec.default
        looser = spec.high if spec.looser_when_larger else spec.low
        if looser != spec.default:
            assert Policy(**{spec.name: looser}).weakened() == [f"{spec.name}: {looser:g} (default {spec.default:g})"]
    assert audit.partial_synthesis


@pytest.mark.parametrize("partial", [False, True], ids=["full", "partial"])
@pytest.mark.parametrize("audit", audits(), ids=lambda a: a.name)
def test_each_audit_runs_reports_and_passes_data_that_cannot_leak(audit, frames, partial):
    train, holdout, synthetic = frames
    keep = ("sex", "age") if partial else ()
    context = AuditContext(train, holdout, synthetic, SCHEMA, POLICY, np.random.default_rng(0), 1.0, 1e-6, keep,
                           resample=draw,  # fresh draws of the same "model" that made the synthetic rows
                           charts=charts(train, holdout, synthetic))
    if not audit.applies(context):
        # attribute inference is partial-only; model consistency needs full synthesis; WP29
        # inference reads the replaced columns, and here the kept ones are all the quasi-identifiers
        # (attribute inference is the partial synthesis' inference attack)
        assert (audit.name, partial) in {("attribute inference", False), ("model consistency", True),
                                         ("inference", True)}
        return
    checks, figures = audit.run(context)
    assert checks and all(isinstance(c, Check) and c.audit.startswith(audit.name) and c.rule for c in checks)
    json.dumps(figures)  # the internal audit file is JSON
    assert [c.line() for c in checks if c.passed is False] == []
    check_section(audit, figures, ReportInfo(1.0, 1e-6, keep, min_cell=10))


REPORT_OWN_KEYS = {"context", "variables", "guarantee", "gates", "residual", "utility", "bias", "patients", "terms",
                   "signoff"}


def check_section(audit: Any, figures: dict[str, Any], info: ReportInfo) -> None:
    """No section, or a Section of known blocks only, under an anchor of its own, that the
    report draws."""
    from privsynth.report.html import section_html

    if not isinstance(audit, HasSection):
        return
    section = audit.section(figures, info)
    if section is None:
        return
    assert isinstance(section, Section) and section.key and section.title
    assert section.key not in REPORT_OWN_KEYS
    assert all(type(block) in BLOCKS for block in section.walk())
    assert section_html(section).startswith(f'<section id="{section.key}">')


@pytest.mark.parametrize("audit", audits(), ids=lambda a: a.name)
def test_a_section_draws_without_figures(audit):
    """An audit that did not run (it did not apply; an audit file older than the audit)
    leaves no figures: its section, if any, still draws."""
    check_section(audit, {}, ReportInfo(1.0, 1e-6))
    check_section(audit, {}, ReportInfo(1.0, 1e-6, ("sex",), min_cell=5))


def test_section_anchors_are_unique():
    sections = [a.section({}, ReportInfo(1.0, 1e-6)) for a in audits() if isinstance(a, HasSection)]
    keys = [s.key for s in sections if s is not None]
    assert len(keys) == len(set(keys))


def test_evaluate_and_the_policy_read_the_registry(frames):
    """A toy audit, registered here, runs in evaluate with its own threshold in the policy."""

    class RowCount:
        name = "row count"
        thresholds = (Threshold("rows_ratio_max", 1.5, 1.0, 10.0, True, help="synthetic rows per train row"),)
        partial_synthesis = "the same"

        def applies(self, context: AuditContext) -> bool:
            return True

        def run(self, context: AuditContext) -> tuple[list[Check], dict[str, Any]]:
            ratio = len(context.synthetic) / len(context.train)
            limit = context.policy.rows_ratio_max
            return [Check(self.name, "synthetic / train rows", ratio, None, f"fails if > {limit:g}",
                          ratio <= limit)], {"ratio": ratio}

    register(RowCount())
    try:
        train, holdout, synthetic = frames
        assert "rows_ratio_max" in [t.name for t in thresholds()] and Policy().rows_ratio_max == 1.5
        result = evaluate(train, holdout, synthetic, SCHEMA, POLICY.replace(rows_ratio_max=1.5), seed=0)
        assert result.figures["row count"] == {"ratio": 1.0} and result.passed
        doubled = pd.concat([synthetic, synthetic], ignore_index=True)
        assert [c.name for c in evaluate(train, holdout, doubled, SCHEMA, Policy(min_holdout=100, rows_ratio_max=1.5),
                                         seed=0).failures() if c.audit == "row count"] == ["synthetic / train rows"]
        with pytest.raises(ValueError, match="already belong to another"):
            register(type("Clash", (RowCount,), {"name": "clash"})())
    finally:
        unregister("row count")
    assert "rows_ratio_max" not in [t.name for t in thresholds()]


def test_the_example_policy_lists_every_threshold():
    from tests.conftest import ROOT

    text = (ROOT / "examples" / "policy.yaml").read_text()
    assert all(f"{t.name}:" in text for t in thresholds())
    assert load_policy(ROOT / "examples" / "policy.yaml") == Policy()
    assert {t.name for t in RELEASE_THRESHOLDS} <= set(Policy().as_dict())
