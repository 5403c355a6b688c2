"""The face-validity audit: a clinician's red flags, real export against synthetic records,
gate a release by policy; a flag the schema decides is shown and never raised; too few
synthetic patients in a flag's premise raise nothing."""

from __future__ import annotations

import datetime as dt
from typing import Any

import numpy as np
import pandas as pd

from privsynth.audit import Policy
from privsynth.audit.facevalidity import FaceValidity
from privsynth.audit.protocol import AuditContext, Charts
from privsynth.audit.section import ReportInfo, Table
from privsynth.history.redflag import UNCODED_ORDER
from privsynth.schema import load_schema

REF = dt.date(2024, 1, 1)
SCT = "http://snomed.info/sct"
HF, HTN = "84114007", "38341003"
SCHEMA = load_schema({"name": "toy", "input": "table", "columns": [
    {"name": "age", "kind": "integer", "role": "quasi_identifier", "source": {"column": "age"},
     "domain": {"lower": 0, "upper": 99, "bins": 10}}]})


def patient(k: int, birth_year: int, hf_onset_year: int | None = None, order: bool = False) -> list[dict[str, Any]]:
    pid = f"p{k}"
    out: list[dict[str, Any]] = [{"resourceType": "Patient", "id": pid, "gender": "female",
                                  "birthDate": f"{birth_year}-03-01"}]
    if hf_onset_year is not None:
        out.append({"resourceType": "Condition", "id": f"c{k}", "subject": {"reference": f"Patient/{pid}"},
                    "code": {"coding": [{"system": SCT, "code": HF}]}, "onsetDateTime": f"{hf_onset_year}-06-01"})
    if order:  # at a visit, naming no drug
        out.append({"resourceType": "Encounter", "id": f"e{k}", "status": "finished", "class": {"code": "AMB"},
                    "subject": {"reference": f"Patient/{pid}"},
                    "period": {"start": "2023-01-01T09:00:00Z", "end": "2023-01-01T10:00:00Z"}})
        out.append({"resourceType": "MedicationRequest", "id": f"m{k}", "status": "active", "intent": "order",
                    "subject": {"reference": f"Patient/{pid}"}, "encounter": {"reference": f"Encounter/e{k}"},
                    "authoredOn": "2023-01-01", "medicationCodeableConcept": {"text": "Medication not specified"}})
    return out


def context(real: list[list[dict[str, Any]]], synthetic: list[list[dict[str, Any]]], policy: Policy,
            unjudged: dict[str, str] | None = None) -> AuditContext:
    frame = pd.DataFrame({"age": np.arange(len(synthetic)) % 90})
    charts = Charts(real=lambda: iter(real), synthetic=lambda rows: (synthetic[i] for i in rows), reference=REF,
                    unjudged=unjudged or {})
    return AuditContext(frame, frame, frame, SCHEMA, policy, np.random.default_rng(0), charts=charts)


# real: heart failure from 60; synthetic: the same, but a third of the heart-failure patients from childhood
REAL = [patient(k, 1950, 2012 if k % 2 else None) for k in range(300)]
CHILDHOOD = [patient(k, 1950 if k % 3 else 2000, (2012 if k % 3 else 2008) if k % 2 else None) for k in range(300)]


def test_a_raised_red_flag_fails_the_release_when_the_policy_allows_none():
    strict = Policy(min_holdout=100, red_flags_max=0)
    checks, figures = FaceValidity().run(context(REAL, CHILDHOOD, strict))
    gate = checks[0]
    assert gate.passed is False and gate.value >= 1
    raised = {f["name"] for f in figures["flags"] if f["raised"]}
    assert "heart failure onset under 18" in raised
    row = next(f for f in figures["flags"] if f["name"] == "heart failure onset under 18")
    assert row["real"] == [0, 150] and row["synthetic"][0] == 50
    # the default policy lets two raised flags through
    assert FaceValidity().run(context(REAL, CHILDHOOD, Policy(min_holdout=100)))[0][0].passed is True


def test_the_same_population_raises_nothing_and_passes():
    checks, figures = FaceValidity().run(context(REAL, REAL[::-1], Policy(min_holdout=100, red_flags_max=0)))
    assert checks[0].passed is True and checks[0].value == 0
    assert not any(f["raised"] for f in figures["flags"])
    assert figures["synthetic"]["patients"] == 300 and figures["real"]["any_flagged"] == 0


def test_a_flag_needs_enough_synthetic_patients_in_its_premise():
    few = CHILDHOOD[:20]  # 3 heart-failure patients from childhood among 10: under min_cell_patients
    policy = Policy(min_holdout=100, red_flags_max=0, min_cell_patients=12)
    checks, figures = FaceValidity().run(context(REAL, few, policy))
    row = next(f for f in figures["flags"] if f["name"] == "heart failure onset under 18")
    assert row["synthetic"][1] < 12 and row["synthetic"][0] > 0 and not row["raised"]
    assert checks[0].passed is True


def test_a_flag_the_schema_decides_is_shown_and_never_raised():
    unnamed = [patient(k, 1960, order=True) for k in range(200)]
    real = [patient(k, 1960) for k in range(200)]
    strict = Policy(min_holdout=100, red_flags_max=0)
    checks, figures = FaceValidity().run(context(real, unnamed, strict))
    assert checks[0].passed is False  # judged, every synthetic order unnamed against none real
    why = "the schema counts orders without naming them"
    checks, figures = FaceValidity().run(context(real, unnamed, strict, {UNCODED_ORDER: why}))
    assert checks[0].passed is True
    row = next(f for f in figures["flags"] if f["name"] == UNCODED_ORDER)
    assert row["synthetic"] == [200, 200] and not row["raised"] and row["unjudged"] == why
    section = FaceValidity().section(figures, ReportInfo(1.0, 1e-6))
    assert section is not None
    table = next(b for b in section.walk() if isinstance(b, Table))
    assert any(r[0] == UNCODED_ORDER and r[-1] == f"not judged: {why}" for r in table.rows)


def test_real_counts_under_the_smallest_cell_are_not_shown():
    real = REAL[:-40] + [patient(1000 + k, 2000, 2008) for k in range(3)]  # 3 real childhood onsets
    _, figures = FaceValidity().run(context(real, CHILDHOOD, Policy(min_holdout=100)))
    section = FaceValidity().section(figures, ReportInfo(1.0, 1e-6, min_cell=10))
    assert section is not None
    table = next(b for b in section.walk() if isinstance(b, Table))
    row = next(r for r in table.rows if r[0] == "heart failure onset under 18")
    assert row[1].startswith("under 10 of about")
