"""Red flags (privsynth.history.redflag): every flag on tiny hand-built patients (one flagged,
one not, one outside the premise), the reader (Bulk NDJSON and Bundles), the summary and the
real-vs-synthetic comparison."""

from __future__ import annotations

import datetime as dt
import gzip
import json
from pathlib import Path
from typing import Any

import pytest

from privsynth.history import chart
from privsynth.history import redflag as rf

REF = dt.date(2024, 1, 1)
SCT, LNC, RX = "http://snomed.info/sct", "http://loinc.org", "http://www.nlm.nih.gov/research/umls/rxnorm"
_n = [0]


def _id() -> str:
    _n[0] += 1
    return f"r{_n[0]}"


def patient(birth: str = "1960-05-01", gender: str = "female", pid: str = "p1", **extra: Any) -> dict:
    return {"resourceType": "Patient", "id": pid, "gender": gender, "birthDate": birth, **extra}


def condition(code: str, onset: str | None, pid: str = "p1", encounter: str | None = None,
              recorded: str | None = None) -> dict:
    r: dict[str, Any] = {"resourceType": "Condition", "id": _id(), "subject": {"reference": f"Patient/{pid}"},
                         "code": {"coding": [{"system": SCT, "code": code}]}}
    if onset:
        r["onsetDateTime"] = onset
    if recorded:
        r["recordedDate"] = recorded
    if encounter:
        r["encounter"] = {"reference": f"Encounter/{encounter}"}
    return r


def encounter(start: str, end: str | None = None, cls: str = "AMB", eid: str | None = None, pid: str = "p1",
              reason: bool = False, type_code: str | None = None) -> dict:
    r: dict[str, Any] = {"resourceType": "Encounter", "id": eid or _id(), "status": "finished",
                         "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": cls},
                         "subject": {"reference": f"Patient/{pid}"}, "period": {"start": start, "end": end or start}}
    if reason:
        r["reasonCode"] = [{"coding": [{"system": SCT, "code": "84114007"}]}]
    if type_code:
        r["type"] = [{"coding": [{"system": SCT, "code": type_code}]}]
    return r


def procedure(code: str | None, day: str, pid: str = "p1", encounter: str | None = None) -> dict:
    r: dict[str, Any] = {"resourceType": "Procedure", "id": _id(), "status": "completed",
                         "subject": {"reference": f"Patient/{pid}"}, "performedDateTime": day,
                         "code": {"coding": [{"system": SCT, "code": code}]} if code else {"text": "unspecified"}}
    if encounter:
        r["encounter"] = {"reference": f"Encounter/{encounter}"}
    return r


def medication(code: str | None, day: str, display: str = "", pid: str = "p1", encounter: str | None = None) -> dict:
    concept: dict[str, Any] = {"text": display} if display else {}
    if code:
        concept["coding"] = [{"system": RX, "code": code, "display": display}]
    r: dict[str, Any] = {"resourceType": "MedicationRequest", "id": _id(), "status": "active", "intent": "order",
                         "subject": {"reference": f"Patient/{pid}"}, "medicationCodeableConcept": concept,
                         "authoredOn": day}
    if encounter:
        r["encounter"] = {"reference": f"Encounter/{encounter}"}
    return r


def observation(code: str, day: str, value: float | None = None, unit: str = "1", pid: str = "p1",
                encounter: str | None = None) -> dict:
    r: dict[str, Any] = {"resourceType": "Observation", "id": _id(), "status": "final",
                         "subject": {"reference": f"Patient/{pid}"}, "effectiveDateTime": day,
                         "code": {"coding": [{"system": LNC, "code": code}]}}
    if value is not None:
        r["valueQuantity"] = {"value": value, "unit": unit, "code": unit}
    if encounter:
        r["encounter"] = {"reference": f"Encounter/{encounter}"}
    return r


def bp(day: str, systolic: float, diastolic: float, code: str = "85354-9") -> dict:
    r = observation(code, day)
    r["component"] = [
        {"code": {"coding": [{"system": LNC, "code": "8480-6"}]}, "valueQuantity": {"value": systolic}},
        {"code": {"coding": [{"system": LNC, "code": "8462-4"}]}, "valueQuantity": {"value": diastolic}},
    ]
    return r


def run(name: str, resources: list[dict], reference: dt.date = REF) -> tuple[bool, bool]:
    flag = next(f for f in rf.FLAGS if f.name == name)
    return flag(list(resources), reference)


HF, CAD, AF, STROKE, ALZ, COPD, HTN, T2D, T1D = ("84114007", "53741008", "49436004", "230690007", "26929004",
                                               "13645005", "38341003", "44054006", "46635009")
ONSET_CODES = {"heart failure": HF, "coronary disease": CAD, "atrial fibrillation": AF, "stroke": STROKE,
               "Alzheimer's": ALZ, "COPD": COPD, "hypertension": HTN, "type 2 diabetes": T2D}
MAMMO, COLO = "71651007", "73761001"

# (flag, resources, expected (applies, flagged))
CASES: list[tuple[str, list[dict], tuple[bool, bool]]] = []
for _label, _code in ONSET_CODES.items():
    CASES += [
        (f"{_label} onset under 18", [patient("2000-06-15"), condition(_code, "2018-06-14T10:00:00Z")], (True, True)),
        (f"{_label} onset under 18", [patient("2000-06-15"), condition(_code, "2018-06-15T10:00:00Z")], (True, False)),
        (f"{_label} onset under 18", [patient("2000-06-15"), condition("10509002", "2005-01-01")], (False, False)),
    ]
CASES += [
    # onset falls back on recordedDate; the earliest onset counts
    ("heart failure onset under 18", [patient("2000-01-01"), condition(HF, None, recorded="2010-01-01")], (True, True)),
    ("heart failure onset under 18", [patient("2000-01-01"), condition(HF, "2030-01-01"),
                                      condition("88805009", "2012-01-01")], (True, True)),
    # type 1 diabetes is not type 2: childhood onset is expected
    ("type 2 diabetes onset under 18", [patient("2000-01-01"), condition(T1D, "2008-01-01")], (False, False)),
    ("Alzheimer's before 50", [patient("1960-01-01"), condition(ALZ, "2009-12-31")], (True, True)),
    ("Alzheimer's before 50", [patient("1960-01-01"), condition(ALZ, "2010-01-01")], (True, False)),
    ("Alzheimer's before 50", [patient("1960-01-01"), condition(HTN, "2000-01-01")], (False, False)),
    ("atrial fibrillation before 30", [patient("1990-01-01"), condition(AF, "2019-06-01")], (True, True)),
    ("atrial fibrillation before 30", [patient("1990-01-01"), condition(AF, "2020-06-01")], (True, False)),
    ("atrial fibrillation before 30", [patient("1990-01-01")], (False, False)),
    ("stroke before 30", [patient("1990-01-01"), condition(STROKE, "2019-06-01")], (True, True)),
    ("stroke before 30", [patient("1990-01-01"), condition(STROKE, "2021-06-01")], (True, False)),
    ("stroke before 30", [patient("1990-01-01"), condition(CAD, "2015-01-01")], (False, False)),
    ("repeat colonoscopy within 3 years", [patient(), procedure(COLO, "2015-01-01"), procedure(COLO, "2017-12-31")],
     (True, True)),
    ("repeat colonoscopy within 3 years", [patient(), procedure(COLO, "2015-01-01"), procedure(COLO, "2018-01-01")],
     (True, False)),
    ("repeat colonoscopy within 3 years", [patient(), procedure(MAMMO, "2015-01-01")], (False, False)),
    ("colonoscopy under 40", [patient("1980-01-01"), procedure(COLO, "2019-12-31")], (True, True)),
    ("colonoscopy under 40", [patient("1970-01-01"), procedure(COLO, "2020-01-01")], (True, False)),
    ("colonoscopy under 40", [patient("1980-01-01")], (False, False)),
    ("mammography in a man or under 35", [patient("1960-01-01", "male"), procedure(MAMMO, "2020-01-01")],
     (True, True)),
    ("mammography in a man or under 35", [patient("1985-01-02"), procedure(MAMMO, "2020-01-01")], (True, True)),
    ("mammography in a man or under 35", [patient("1985-01-01"), procedure(MAMMO, "2020-01-01")], (True, False)),
    ("mammography in a man or under 35", [patient("1960-01-01", "male"), procedure(COLO, "2020-01-01")],
     (False, False)),
    ("same drug or procedure >=2 times on one day", [patient(), medication("314076", "2020-01-01T08:00:00Z"),
                                                     medication("314076", "2020-01-01T17:00:00Z")], (True, True)),
    ("same drug or procedure >=2 times on one day", [patient(), medication("314076", "2020-01-01"),
                                                     medication("314076", "2020-01-02"),
                                                     procedure("29303009", "2020-01-01")], (True, False)),
    ("same drug or procedure >=2 times on one day", [patient(), observation("4548-4", "2020-01-01", 6.0),
                                                     observation("4548-4", "2020-01-01", 6.1)], (False, False)),
    ("same drug or procedure >=3 times on one day", [patient()] + [procedure(COLO, "2020-01-01") for _ in range(3)],
     (True, True)),
    ("same drug or procedure >=3 times on one day", [patient()] + [procedure(COLO, "2020-01-01") for _ in range(2)],
     (True, False)),
    ("same drug or procedure >=3 times on one day", [patient()], (False, False)),
    ("drug or procedure without a code", [patient(), procedure(None, "2020-01-01")], (True, True)),
    ("drug or procedure without a code", [patient(), procedure(COLO, "2020-01-01")], (True, False)),
    ("drug or procedure without a code", [patient()], (False, False)),
    ("lab, drug or procedure outside any encounter", [patient(), encounter("2020-01-01", "2020-01-04", "IMP"),
                                                      observation("2093-3", "2020-01-05", 180)], (True, True)),
    # linked to an encounter, or on a day an encounter covers
    ("lab, drug or procedure outside any encounter", [patient(), encounter("2020-01-01", "2020-01-04", "IMP"),
                                                      observation("2093-3", "2020-01-03", 180),
                                                      medication("314076", "2021-01-01", encounter="elsewhere")],
     (True, False)),
    ("lab, drug or procedure outside any encounter", [patient(), encounter("2020-01-01")], (False, False)),
    (">=10 inpatient admissions in 10 years", [patient()] + [encounter(f"{2014 + k}-03-01", cls="IMP")
                                                             for k in range(10)], (True, True)),
    # nine in the 10 years before the reference date, one just before them and one after it
    (">=10 inpatient admissions in 10 years", [patient()] + [encounter(f"{2014 + k}-03-01", cls="ACUTE")
                                                             for k in range(9)]
     + [encounter("2014-01-01", cls="NONAC"), encounter("2024-02-01", cls="IMP")], (True, False)),
    (">=10 inpatient admissions in 10 years", [patient()] + [encounter(f"{2014 + k}-03-01", cls="NONAC")
                                                             for k in range(9)] + [encounter("2014-01-02", cls="IMP")],
     (True, True)),
    (">=10 inpatient admissions in 10 years", [condition(HF, "2020-01-01")], (False, False)),  # no Patient
    ("admission without a reason", [patient(), encounter("2020-01-01", "2020-01-05", "IMP", eid="e1")], (True, True)),
    ("admission without a reason", [patient(), encounter("2020-01-01", "2020-01-05", "IMP", reason=True)],
     (True, False)),
    ("admission without a reason", [patient(), encounter("2020-01-01", "2020-01-05", "IMP", eid="e1"),
                                    condition(HF, "2020-01-01", encounter="e1")], (True, False)),
    ("admission without a reason", [patient(), encounter("2020-01-01", "2020-01-05", "IMP", eid="e1"),
                                    medication("314076", "2020-01-02", encounter="e1")], (True, True)),
    ("admission without a reason", [patient(), encounter("2020-01-01", cls="AMB")], (False, False)),
    ("inpatient stay with nothing recorded", [patient(), encounter("2020-01-01", "2020-01-05", "IMP", reason=True)],
     (True, True)),
    ("inpatient stay with nothing recorded", [patient(), encounter("2020-01-01", "2020-01-05", "IMP", eid="e1"),
                                              medication("314076", "2020-01-02", encounter="e1")], (True, False)),
    ("inpatient stay with nothing recorded", [patient(), encounter("2020-01-01", cls="EMER")], (False, False)),
    ("HbA1c before 1980", [patient("1940-01-01"), observation("4548-4", "1979-12-31", 6.0)], (True, True)),
    ("HbA1c before 1980", [patient("1940-01-01"), observation("4548-4", "1980-01-01", 6.0)], (True, False)),
    ("HbA1c before 1980", [patient("1940-01-01"), observation("2093-3", "1975-01-01", 200)], (False, False)),
    ("event before birth", [patient("2000-01-01"), observation("2093-3", "1999-12-31", 200)], (True, True)),
    ("event before birth", [patient("2000-01-01"), encounter("2000-01-01")], (True, False)),
    ("event before birth", [patient("2000-01-01")], (False, False)),
    ("event after death", [patient(deceasedDateTime="2020-01-01T10:00:00Z"), encounter("2020-01-02")], (True, True)),
    ("event after death", [patient(deceasedDateTime="2020-01-01T10:00:00Z"), encounter("2020-01-01T18:00:00Z")],
     (True, False)),
    # death certification paperwork after the death is not care after it
    ("event after death", [patient(deceasedDateTime="2020-01-01"), encounter("2020-01-05", eid="dc",
                                                                             type_code="308646001"),
                           observation("69453-9", "2020-01-05", encounter="dc")], (True, False)),
    ("event after death", [patient(deceasedBoolean=True), encounter("2020-01-02")], (False, False)),
    ("deceased without a date", [patient(deceasedBoolean=True)], (True, True)),
    ("deceased without a date", [patient(deceasedDateTime="2020-01-01")], (True, False)),
    ("deceased without a date", [patient(deceasedBoolean=False)], (False, False)),
    ("COPD before 40", [patient("1990-01-01"), condition(COPD, "2025-01-01"), condition(COPD, "2020-01-01")],
     (True, True)),
    ("COPD before 40", [patient("1970-01-01"), condition(COPD, "2015-01-01")], (True, False)),
    ("COPD before 40", [patient("1990-01-01"), condition(HTN, "2020-01-01")], (False, False)),
    ("depression or anxiety before 6", [patient("2015-01-01"), condition("35489007", "2019-01-01")], (True, True)),
    ("depression or anxiety before 6", [patient("2005-01-01"), condition("197480006", "2019-01-01")], (True, False)),
    ("depression or anxiety before 6", [patient("2015-01-01"), condition("195967001", "2019-01-01")], (False, False)),
    ("prediabetes after diabetes", [patient(), condition(T2D, "2010-01-01"), condition("15777000", "2012-01-01")],
     (True, True)),
    ("prediabetes after diabetes", [patient(), condition("15777000", "2008-01-01"), condition(T2D, "2010-01-01"),
                                    condition("15777000", "2012-01-01")], (True, False)),
    ("prediabetes after diabetes", [patient(), condition("15777000", "2012-01-01")], (False, False)),
    ("alive at 100 or older", [patient("1923-06-01")], (True, True)),
    ("alive at 100 or older", [patient("1925-06-01")], (True, False)),
    ("alive at 100 or older", [patient("1900-06-01", deceasedDateTime="1990-01-01")], (False, False)),
    ("antidiabetic without diabetes", [patient(), medication("860975", "2020-01-01")], (True, True)),
    ("antidiabetic without diabetes", [patient(), medication(None, "2020-01-01", "Insulin glargine 100 UNT/ML")],
     (True, True)),
    ("antidiabetic without diabetes", [patient(), medication("861007", "2020-01-01"),
                                       condition("73211009", "2019-01-01")], (True, False)),
    ("antidiabetic without diabetes", [patient(), medication("314076", "2020-01-01", "lisinopril 10 MG")],
     (False, False)),
    ("drug without an indication", [patient(), medication("855332", "2020-01-01", "Warfarin Sodium 5 MG")],
     (True, True)),
    ("drug without an indication", [patient(), medication("855332", "2020-01-01", "Warfarin Sodium 5 MG"),
                                    condition("49436004", "2019-01-01")], (True, False)),  # atrial fibrillation
    ("drug without an indication", [patient(), medication("745679", "2020-01-01", "Albuterol 0.09 MG/ACTUAT"),
                                    condition("195967001", "2019-01-01")], (True, False)),  # asthma
    ("drug without an indication", [patient(), medication("314076", "2020-01-01", "lisinopril 10 MG")],
     (False, False)),
    ("HbA1c >= 6.5 % without diabetes", [patient(), observation("4548-4", "2020-01-01", 7.1, "%")], (True, True)),
    ("HbA1c >= 6.5 % without diabetes", [patient(), observation("4548-4", "2020-01-01", 7.1, "%"),
                                         condition(T2D, "2020-01-01")], (True, False)),
    ("HbA1c >= 6.5 % without diabetes", [patient(), observation("2339-0", "2020-01-01", 250)], (False, False)),
    ("child with cholesterol measured", [patient("2015-01-01"), observation("2093-3", "2020-01-01", 160)],
     (True, True)),
    ("child with cholesterol measured", [patient("2015-01-01"), observation("4548-4", "2020-01-01", 5.0)],
     (True, False)),
    ("child with cholesterol measured", [patient("2012-01-01"), observation("2093-3", "2020-01-01", 160)],
     (False, False)),  # 12 at the reference date
    # the latest reading counts; 55284-4 is a panel code too
    ("pulse pressure < 20 mmHg", [patient(), bp("2019-01-01", 120, 80), bp("2020-01-01", 100, 85, "55284-4")],
     (True, True)),
    ("pulse pressure < 20 mmHg", [patient(), bp("2019-01-01", 100, 85), bp("2020-01-01", 100, 80)], (True, False)),
    ("pulse pressure < 20 mmHg", [patient(), observation("8480-6", "2020-01-01", 120)], (False, False)),
    ("diastolic >= systolic", [patient(), bp("2019-01-01", 80, 80), bp("2020-01-01", 120, 80)], (True, True)),
    ("diastolic >= systolic", [patient(), bp("2019-01-01", 81, 80)], (True, False)),
    ("diastolic >= systolic", [patient()], (False, False)),
    # a 10-year-old boy: limit 0.9 x 126.7 = 114.0 cm; inches are converted
    ("child height below growth limit", [patient("2013-06-01", "male"), observation("8302-2", "2023-07-01", 113.0,
                                                                                    "cm")], (True, True)),
    ("child height below growth limit", [patient("2013-06-01", "male"), observation("8302-2", "2023-07-01", 44.0,
                                                                                    "[in_i]")], (True, True)),
    ("child height below growth limit", [patient("2013-06-01", "male"), observation("8302-2", "2023-07-01", 1.40,
                                                                                    "m")], (True, False)),
    ("child height below growth limit", [patient("2013-06-01", "male"), observation("8302-2", "2020-07-01", 90.0,
                                                                                    "cm"),
                                         observation("8302-2", "2023-07-01", 140.0, "cm")], (True, False)),
    ("child height below growth limit", [patient("2000-06-01"), observation("8302-2", "2010-07-01", 90.0, "cm")],
     (False, False)),
    # a 3-year-old girl: limit 1.1 x 109.5 = 120.5 cm
    ("child height above growth limit", [patient("2020-03-01"), observation("8302-2", "2023-07-01", 123.5, "cm")],
     (True, True)),
    ("child height above growth limit", [patient("2020-03-01"), observation("8302-2", "2023-07-01", 104.0, "cm")],
     (True, False)),
    ("child height above growth limit", [patient("2000-06-01"), observation("8302-2", "2010-07-01", 190.0, "cm")],
     (False, False)),
    ("HbA1c below 4 %", [patient(), observation("4548-4", "2020-01-01", 5.4, "%"),
                         observation("4548-4", "2021-01-01", 3.6, "%")], (True, True)),
    ("HbA1c below 4 %", [patient(), observation("4548-4", "2020-01-01", 4.0, "%")], (True, False)),
    ("HbA1c below 4 %", [patient(), observation("2339-0", "2020-01-01", 3.0)], (False, False)),
    # consecutive values 2 years or less apart; mmol/L is converted (3.0 mmol/L = 116 mg/dL)
    ("cholesterol halves or doubles within 2 years", [patient(), observation("2093-3", "2020-01-01", 460, "mg/dL"),
                                                      observation("2093-3", "2021-06-01", 3.0, "mmol/L")],
     (True, True)),
    ("cholesterol halves or doubles within 2 years", [patient(), observation("2093-3", "2020-01-01", 260, "mg/dL"),
                                                      observation("2093-3", "2021-06-01", 180, "mg/dL")],
     (True, False)),
    ("cholesterol halves or doubles within 2 years", [patient(), observation("2093-3", "2015-01-01", 400, "mg/dL"),
                                                      observation("2093-3", "2021-06-01", 150, "mg/dL")],
     (False, False)),
    ("glucose >= 200 mg/dL without diabetes", [patient(), observation("2339-0", "2020-01-01", 11.5, "mmol/L")],
     (True, True)),
    ("glucose >= 200 mg/dL without diabetes", [patient(), observation("2339-0", "2020-01-01", 250, "mg/dL"),
                                               condition(T2D, "2019-01-01")], (True, False)),
    ("glucose >= 200 mg/dL without diabetes", [patient(), observation("4548-4", "2020-01-01", 250)], (False, False)),
    ("BMI below 12 or above 70", [patient(), observation("39156-5", "2020-01-01", 11.4, "kg/m2")], (True, True)),
    ("BMI below 12 or above 70", [patient(), observation("39156-5", "2020-01-01", 24.0, "kg/m2")], (True, False)),
    ("BMI below 12 or above 70", [patient()], (False, False)),
    ("BMI disagrees with weight and height", [patient(), observation("8302-2", "2020-01-01", 180.0, "cm"),
                                              observation("29463-7", "2020-01-01", 81.0, "kg"),
                                              observation("39156-5", "2020-01-01", 30.0, "kg/m2")], (True, True)),
    ("BMI disagrees with weight and height", [patient(), observation("8302-2", "2020-01-01", 180.0, "cm"),
                                              observation("29463-7", "2020-01-01", 81.0, "kg"),
                                              observation("39156-5", "2020-01-01", 25.0, "kg/m2")], (True, False)),
    ("BMI disagrees with weight and height", [patient(), observation("8302-2", "2020-01-01", 180.0, "cm"),
                                              observation("29463-7", "2020-01-02", 81.0, "kg"),
                                              observation("39156-5", "2020-01-03", 30.0, "kg/m2")], (False, False)),
]


@pytest.mark.parametrize(("name", "resources", "expected"), CASES,
                         ids=[f"{c[0]}-{i}" for i, c in enumerate(CASES)])
def test_flag(name: str, resources: list[dict], expected: tuple[bool, bool]) -> None:
    assert run(name, resources) == expected


def test_every_flag_has_a_flagged_a_clean_and_an_outside_case() -> None:
    names = [f.name for f in rf.FLAGS]
    assert len(set(names)) == len(names)
    for name in names:
        outcomes = {expected for n, _, expected in CASES if n == name}
        assert {(True, True), (True, False), (False, False)} <= outcomes, name
    required = {f"{label} onset under 18" for label in ONSET_CODES} | {
        "Alzheimer's before 50", "atrial fibrillation before 30", "stroke before 30",
        "repeat colonoscopy within 3 years", "colonoscopy under 40", "mammography in a man or under 35",
        "same drug or procedure >=2 times on one day", "same drug or procedure >=3 times on one day",
        ">=10 inpatient admissions in 10 years", "admission without a reason", "inpatient stay with nothing recorded",
        "HbA1c before 1980", "event before birth", "event after death", "deceased without a date",
        "antidiabetic without diabetes", "child with cholesterol measured", "pulse pressure < 20 mmHg",
        "diastolic >= systolic", "child height below growth limit", "child height above growth limit",
        "COPD before 40", "depression or anxiety before 6", "prediabetes after diabetes", "alive at 100 or older",
        "glucose >= 200 mg/dL without diabetes", "HbA1c below 4 %", "cholesterol halves or doubles within 2 years"}
    assert required <= set(names)
    assert all(f.sentence and callable(f.check) for f in rf.FLAGS)


def test_condition_groups_come_from_the_schema() -> None:
    assert {"84114007", "42343007", "88805009"} <= chart.code_group("heart_failure")
    assert "46635009" in chart.code_group("diabetes")  # left out of the type 2 onset flag only
    assert chart.code_group("blood_pressure_panel") == {"55284-4", "85354-9"}


def test_height_limit_follows_the_cdc_table() -> None:
    assert rf.height_limit("male", 10) == pytest.approx(0.9 * 126.7, abs=0.05)
    assert rf.height_limit("female", 16) == pytest.approx(0.9 * 150.4, abs=0.05)
    assert rf.height_limit("unknown", 16) == rf.height_limit("female", 16)  # the lower of the two
    assert rf.height_limit("male", 1) is None and rf.height_limit("male", 18) is None
    for table in rf.CDC_STATURE_P3.values():
        assert len(table) == 16 and list(table) == sorted(table)
    assert rf.height_limit("female", 3, tall=True) == pytest.approx(1.1 * 109.5, abs=0.05)
    assert rf.height_limit("unknown", 16, tall=True) == rf.height_limit("male", 16, tall=True)  # the taller
    for short, tall in zip(rf.CDC_STATURE_P3.values(), rf.CDC_STATURE_P97.values()):
        assert len(tall) == 16 and list(tall) == sorted(tall)
        assert all(t > s + 10 for s, t in zip(short, tall))


def _write_ndjson(path: Path, resources: list[dict], gz: bool = False) -> None:
    text = "".join(json.dumps(r) + "\n" for r in resources)
    if gz:
        with gzip.open(path, "wt", encoding="utf-8") as fh:
            fh.write(text)
    else:
        path.write_text(text, encoding="utf-8")


def test_iter_patients_groups_bulk_ndjson(tmp_path: Path) -> None:
    _write_ndjson(tmp_path / "Patient.000.ndjson", [patient(pid="a"), patient(pid="b", gender="male")])
    _write_ndjson(tmp_path / "Condition.000.ndjson.gz", [condition(HF, "2020-01-01", pid="a"),
                                                         condition(HTN, "2020-01-01", pid="b")], gz=True)
    encs = [encounter("2020-01-01", pid="a"), encounter("2020-01-02", pid="a")]
    encs[1]["subject"] = {"reference": "urn:uuid:a"}  # the other reference form
    _write_ndjson(tmp_path / "Encounter.ndjson", encs + [encounter("2020-01-03", pid="ghost")])
    claim = {"resourceType": "Claim", "id": "c1", "patient": {"reference": "Patient/a"}}
    _write_ndjson(tmp_path / "Claim.ndjson", [claim])
    (tmp_path / "log.ndjson").write_text('{"not": "fhir"}\n', encoding="utf-8")
    groups = {g[0]["id"]: g for g in chart.iter_patients(tmp_path)}
    assert set(groups) == {"a", "b"}  # the ghost's encounter has no Patient: left out
    assert all(g[0]["resourceType"] == "Patient" for g in groups.values())
    assert sorted(r["resourceType"] for r in groups["a"]) == ["Condition", "Encounter", "Encounter", "Patient"]
    assert sorted(r["resourceType"] for r in groups["b"]) == ["Condition", "Patient"]


def _bundle(resources: list[dict], full_urls: list[str]) -> dict:
    return {"resourceType": "Bundle", "type": "transaction",
            "entry": [{"fullUrl": u, "resource": r, "request": {"method": "POST", "url": r["resourceType"]}}
                      for r, u in zip(resources, full_urls)]}


def test_iter_patients_reads_bundles_with_urn_references(tmp_path: Path) -> None:
    pat = patient(pid="local-id")  # Patient.id differs from its fullUrl: references use the fullUrl
    enc = encounter("2020-01-01", "2020-01-04", "IMP", eid="enc-local")
    enc["subject"] = {"reference": "urn:uuid:u-pat"}
    cond = condition(HF, "2020-01-01")
    cond["subject"] = {"reference": "urn:uuid:u-pat"}
    cond["encounter"] = {"reference": "urn:uuid:u-enc"}
    org = {"resourceType": "Organization", "id": "o1"}
    doc = _bundle([pat, enc, cond, org], ["urn:uuid:u-pat", "urn:uuid:u-enc", "urn:uuid:u-cond", "urn:uuid:o1"])
    with gzip.open(tmp_path / "one.json.gz", "wt", encoding="utf-8") as fh:
        json.dump(doc, fh)
    two = _bundle([patient(pid="p2"), condition(HTN, "2010-01-01", pid="p2")], ["urn:uuid:p2", "urn:uuid:x"])
    (tmp_path / "two.json").write_text(json.dumps(two), encoding="utf-8")
    groups = {g[0]["id"]: g for g in chart.iter_patients([tmp_path / "one.json.gz", tmp_path / "two.json"])}
    assert set(groups) == {"local-id", "p2"}
    one = groups["local-id"]
    assert [r["resourceType"] for r in one] == ["Patient", "Encounter", "Condition"]  # Organization left out
    # the Condition points at the stay through the fullUrl: the stay is not empty
    assert rf.FLAGS[[f.name for f in rf.FLAGS].index("inpatient stay with nothing recorded")](one, REF) == (True, False)
    assert "text" not in one[0] and one[0]["birthDate"] == "1960-05-01"


def test_iter_patients_groups_a_multi_patient_bundle(tmp_path: Path) -> None:
    doc = _bundle([patient(pid="a"), patient(pid="b"), condition(HF, "2020-01-01", pid="b")],
                  ["urn:uuid:a", "urn:uuid:b", "urn:uuid:c1"])
    (tmp_path / "all.json").write_text(json.dumps(doc), encoding="utf-8")
    groups = {g[0]["id"]: len(g) for g in chart.iter_patients(tmp_path)}
    assert groups == {"a": 1, "b": 2}


def test_summarise_and_compare() -> None:
    real = [[patient("1950-01-01", pid=f"r{i}"), condition(HF, "2010-01-01", pid=f"r{i}"),
             encounter("2020-01-01T00:00:00Z", "2020-01-03T12:00:00Z", "IMP", pid=f"r{i}", reason=True)]
            for i in range(10)]
    synthetic = [[patient("2010-01-01", pid=f"s{i}"), condition(HF, "2015-01-01", pid=f"s{i}")] for i in range(3)]
    synthetic += [[patient("1950-01-01", pid="s9"), condition(HF, "2010-01-01", pid="s9")]]
    r = rf.summarise(real, REF)
    s = rf.summarise(synthetic, REF)
    assert r.patients == 10 and s.patients == 4
    hf = s.flag("heart failure onset under 18")
    assert (hf.premise, hf.flagged, hf.rate) == (4, 3, 0.75)
    assert r.flag("heart failure onset under 18").rate == 0.0
    assert r.flag("admission without a reason").premise == 10 and s.flag("admission without a reason").rate is None
    stay = r.distribution("inpatient length of stay (days)")
    assert stay.n == 10 and stay.median == pytest.approx(2.5)
    onset = s.distribution("age at onset: heart failure")
    assert onset.n == 4 and onset.under_18 == 0.75 and onset.mean == pytest.approx((5 * 3 + 60) / 4)
    assert r.distribution("encounters per patient").mean == 1.0
    assert s.distribution("age at the reference date").under_18 == 0.75
    rows = {row.name: row for row in rf.compare(r, s)}
    assert len(rows) == len(rf.FLAGS)
    assert rows["heart failure onset under 18"].miss
    assert not rows["admission without a reason"].miss  # no synthetic stay: nothing to miss
    assert not rows["diastolic >= systolic"].miss
    json.dumps(r.to_dict())  # serialisable


@pytest.mark.parametrize(("real", "synthetic", "miss"), [
    (0.0, 0.01, False), (0.0, 0.0101, True), (0.2, 0.4, False), (0.2, 0.41, True), (None, 0.02, True),
    (0.3, None, False),
])
def test_miss_rule(real: float | None, synthetic: float | None, miss: bool) -> None:
    assert rf.is_miss(real, synthetic) is miss


def test_max_date_and_dates() -> None:
    pats = [[patient(), encounter("2021-03-31T23:00:00-05:00")], [patient(pid="p2", deceasedDateTime="2022-01-01")]]
    assert rf.max_date(pats) == dt.date(2022, 1, 1)
    assert chart.day_of("2019") == dt.date(2019, 1, 1) and chart.day_of("garbage") is None
    assert chart.ref_id("Practitioner?identifier=x|1") is None


def test_the_childrens_height_ceilings_agree_with_the_growth_flag() -> None:
    """patient-core's declared ceilings (by age at the reference date) let every child up to the
    97th percentile at the end of their year through, and stop one the tall-child flag would
    flag had the height been taken that year or the year before (the more lenient sex)."""
    import numpy as np

    from privsynth.schema.load import load_schema

    schema = load_schema(Path(__file__).resolve().parents[2] / "schemas" / "patient-core.yaml")
    rules = [r for r in schema.constraints if r.columns == {"age", "years_since_death", "body_height"}]

    def allowed(age: int, height: float) -> bool:
        rows = {"age": np.array([float(age)]), "years_since_death": np.array([np.nan]),
                "body_height": np.array([height])}
        return not any(bool(r.violated(rows)[0]) for r in rules)

    for age in range(2, 15):
        tallest = max(t[age - 2] for t in rf.CDC_STATURE_P97.values())  # the 97th percentile at the year's end
        assert allowed(age, tallest), age
        flagged_at = [a for a in (age, age - 1) if a >= 2]
        ceiling = min(rf.height_limit(None, a, tall=True) or 0.0 for a in flagged_at)
        assert not allowed(age, ceiling + 1.0), age
