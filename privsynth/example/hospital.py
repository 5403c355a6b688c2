"""Seeded, rule-based generator of an example hospital FHIR R4 export (for ``privsynth demo``).

Every patient becomes one FHIR R4 ``transaction`` Bundle (shaped like Synthea's 2019 bundles)
holding a Patient plus Conditions, Observations, Encounters, MedicationRequests and Procedures
that reference it as ``urn:uuid:<patient id>``. Prevalences rise with age and follow textbook
correlations (obesity -> diabetes -> kidney disease, hypertension -> heart failure, ...) so a
synthesizer has real structure to learn. Nothing here is derived from patient data.
"""

from __future__ import annotations

import datetime as dt
import math
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import orjson
from faker import Faker

REFERENCE_DATE = dt.date(2024, 1, 1)

SNOMED = "http://snomed.info/sct"
LOINC = "http://loinc.org"
UCUM = "http://unitsofmeasure.org"
RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
_TERM = "http://terminology.hl7.org/CodeSystem/"
_US_CORE = "http://hl7.org/fhir/us/core/StructureDefinition/"
_OMB = "urn:oid:2.16.840.1.113883.6.238"
_YEAR = dt.timedelta(days=365.25)
_DAY = dt.timedelta(days=1)

Resource = dict[str, Any]
Code = tuple[str, str]

# Share of patients per decade of age (0-9, ..., 90-100), roughly the US population pyramid.
_AGE_BANDS = np.array([12.0, 13, 13, 13, 12, 13, 12, 8, 4, 1.2]) / 101.2
# USPS state -> (share, ((city, 3-digit ZIP prefix), ...)).
_STATES: dict[str, tuple[float, tuple[tuple[str, str], ...]]] = {
    "MA": (0.70, (("Boston", "021"), ("Worcester", "016"), ("Springfield", "011"),
                  ("Cambridge", "021"), ("Lowell", "018"), ("Quincy", "021"), ("Lynn", "019"),
                  ("New Bedford", "027"), ("Brockton", "023"), ("Newton", "024"))),
    "NH": (0.07, (("Manchester", "031"), ("Nashua", "030"), ("Concord", "033"))),
    "RI": (0.06, (("Providence", "029"), ("Warwick", "028"), ("Cranston", "029"))),
    "CT": (0.07, (("Hartford", "061"), ("New Haven", "065"), ("Stamford", "069"))),
    "NY": (0.05, (("Albany", "122"), ("Buffalo", "142"), ("Rochester", "146"))),
    "VT": (0.025, (("Burlington", "054"), ("Rutland", "057"))),
    "ME": (0.025, (("Portland", "041"), ("Bangor", "044"))),
}
_RACES: tuple[tuple[str, str, float], ...] = (
    ("2106-3", "White", 0.70), ("2054-5", "Black or African American", 0.09),
    ("2028-9", "Asian", 0.07), ("1002-5", "American Indian or Alaska Native", 0.005),
    ("2076-8", "Native Hawaiian or Other Pacific Islander", 0.005), ("2131-1", "Other Race", 0.13),
)
_MARITAL = {"M": "Married", "S": "Never Married", "D": "Divorced", "W": "Widowed"}
# Age lower bounds -> probabilities of M, S, D, W.
_MARITAL_BY_AGE = ((70, (0.45, 0.05, 0.15, 0.35)), (50, (0.60, 0.12, 0.20, 0.08)),
                   (30, (0.60, 0.25, 0.13, 0.02)), (18, (0.20, 0.78, 0.02, 0.00)))

_CONDITIONS: dict[str, Code] = {
    "obesity": ("162864005", "Body mass index 30+ - obesity"), "prediabetes": ("15777000", "Prediabetes"),
    "diabetes": ("44054006", "Diabetes mellitus type 2"), "hypertension": ("38341003", "Hypertension"),
    "hyperlipidemia": ("55822004", "Hyperlipidemia"), "asthma": ("195967001", "Asthma"),
    "copd": ("185086009", "Chronic obstructive bronchitis"),
    "heart_failure": ("88805009", "Chronic congestive heart failure"),
    "coronary": ("53741008", "Coronary arteriosclerosis"), "mi": ("22298006", "Myocardial infarction"),
    "afib": ("49436004", "Atrial fibrillation"), "stroke": ("230690007", "Cerebrovascular accident"),
    "depression": ("370143000", "Major depressive disorder"), "anxiety": ("197480006", "Anxiety disorder"),
    "colon_cancer": ("363406005", "Malignant tumor of colon"),
    "lung_cancer": ("254637007", "Non-small cell lung cancer"),
    "prostate_cancer": ("126906006", "Neoplasm of prostate"),
    "breast_cancer": ("254837009", "Malignant neoplasm of breast"), "anemia": ("271737000", "Anemia"),
    "alzheimers": ("26929004", "Alzheimer's disease"),
}
_CKD_STAGES: tuple[Code, ...] = (
    ("431855005", "Chronic kidney disease stage 1"), ("431856006", "Chronic kidney disease stage 2"),
    ("433144002", "Chronic kidney disease stage 3"))
_ACUTE: tuple[tuple[Code, float], ...] = (
    (("444814009", "Viral sinusitis (disorder)"), 0.5), (("10509002", "Acute bronchitis (disorder)"), 0.25))
_LOCAL_CODE: Code = ("999999001", "Example local code")
_ONSET_MIN_AGE = {"obesity": 2, "asthma": 1, "depression": 12, "anxiety": 10, "anemia": 1,
                  "copd": 35, "alzheimers": 55}
_CANCERS = ("colon_cancer", "lung_cancer", "prostate_cancer", "breast_cancer")

_DRUGS: dict[str, Code] = {
    "diabetes": ("860975", "24 HR Metformin hydrochloride 500 MG Extended Release Oral Tablet"),
    "hypertension": ("314076", "lisinopril 10 MG Oral Tablet"),
    "hyperlipidemia": ("312961", "Simvastatin 20 MG Oral Tablet"),
    "asthma": ("745679", "200 ACTUAT Albuterol 0.09 MG/ACTUAT Metered Dose Inhaler"),
    "copd": ("745679", "200 ACTUAT Albuterol 0.09 MG/ACTUAT Metered Dose Inhaler"),
    "heart_failure": ("313988", "Furosemide 40 MG Oral Tablet"),
    "afib": ("855332", "Warfarin Sodium 5 MG Oral Tablet"),
    "coronary": ("309362", "Clopidogrel 75 MG Oral Tablet"),
    "depression": ("312938", "Sertraline 100 MG Oral Tablet"),
}
_ACUTE_DRUGS: tuple[Code, ...] = (("308182", "Amoxicillin 250 MG Oral Capsule"),
                                  ("313782", "Acetaminophen 325 MG Oral Tablet"))
_CATEGORIES = {"vital-signs": "Vital Signs", "laboratory": "Laboratory"}
_MED_REC: Code = ("430193006", "Medication Reconciliation (procedure)")
_COLONOSCOPY: Code = ("73761001", "Colonoscopy")
_ECG: Code = ("29303009", "Electrocardiographic procedure")
_CHEST_XRAY: Code = ("399208008", "Plain chest X-ray (procedure)")
_DEPRESSION_SCREEN: Code = ("171207006", "Depression screening (procedure)")
_MAMMOGRAPHY: Code = ("71651007", "Mammography (procedure)")

# Encounter class -> (display, SNOMED types, duration range in hours).
_ENCOUNTERS: dict[str, tuple[str, tuple[Code, ...], tuple[float, float]]] = {
    "AMB": ("ambulatory", (("185349003", "Encounter for check up (procedure)"),
                           ("185345009", "Encounter for symptom (procedure)"),
                           ("390906007", "Follow-up encounter (procedure)")), (0.25, 1.0)),
    "EMER": ("emergency", (("50849002", "Emergency room admission (procedure)"),), (1.0, 8.0)),
    "IMP": ("inpatient encounter", (("32485007", "Hospital admission (procedure)"),), (24.0, 240.0)),
    "HH": ("home health", (("439708006", "Home visit (procedure)"),), (0.5, 1.5)),
}
# Child height as a share of adult height, by age (years).
_GROWTH_AGES = np.array([0.0, 1, 2, 4, 6, 8, 10, 12, 14, 16, 18])
_GROWTH_SHARE = np.array([0.29, 0.43, 0.50, 0.58, 0.66, 0.73, 0.80, 0.87, 0.93, 0.98, 1.0])
_CHILD_BMI_AGES = np.array([0.0, 1, 2, 5, 10, 15, 18])
_CHILD_BMI = np.array([13.5, 17.0, 16.5, 15.5, 17.0, 20.5, 22.0])


def write_example_export(
    out_dir: str | Path, n_patients: int = 1000, seed: int = 0,
    progress: Callable[[int, int], None] | None = None,
) -> Path:
    """Write n_patients per-patient FHIR R4 transaction Bundles as out_dir/<uuid>.json. Returns out_dir."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    fake = Faker("en_US")
    fake.seed_instance(seed)
    for index in range(n_patients):
        bundle = example_bundle(index, rng, fake, REFERENCE_DATE)
        patient_id = bundle["entry"][0]["resource"]["id"]
        (out / f"{patient_id}.json").write_bytes(orjson.dumps(bundle, option=orjson.OPT_INDENT_2))
        if progress is not None:
            progress(index + 1, n_patients)
    return out


def example_bundle(
    index: int, rng: np.random.Generator, fake: Faker, reference_date: dt.date
) -> Resource:
    """One patient's transaction Bundle; everything random comes from ``rng`` and ``fake``."""
    ref = dt.datetime.combine(reference_date, dt.time(), dt.UTC)
    band = int(rng.choice(len(_AGE_BANDS), p=_AGE_BANDS))
    age = min(band * 10 + rng.random() * (11 if band == 9 else 10), 100.99)
    birth = (ref - max(age * _YEAR, 7 * _DAY)).replace(hour=0, minute=0, second=0, microsecond=0)
    male = bool(rng.random() < 0.49)
    died = bool(rng.random() < _sigmoid(-6.75 + 0.08 * age + 0.3 * male))
    start, stop = max(birth + 7 * _DAY, ref - 8 * _YEAR), ref - _DAY
    death = _between(rng, start, stop) if died and start < stop else None
    end = death or ref
    age_end = (end - birth) / _YEAR
    patient = _patient(index, rng, fake, male, birth, age, death)
    pid = patient["id"]
    chronic = _chronic(rng, age_end, male)
    conditions, onsets = _conditions(rng, pid, chronic, birth, end, age_end)
    encounters = _encounters(rng, pid, chronic, onsets, birth, end, age_end)
    visits = sorted(_start(e) for e in encounters if e["class"]["code"] == "AMB")
    clinical = conditions + _observations(rng, pid, chronic, onsets, birth, end, male, visits)
    clinical += _meds_and_procedures(rng, pid, chronic, onsets, birth, end, age_end, male, death, visits)
    resources: list[Resource] = [patient, *_link(rng, pid, clinical, encounters, end)]
    return {"resourceType": "Bundle", "type": "transaction", "entry": [
        {"fullUrl": f"urn:uuid:{r['id']}", "resource": r,
         "request": {"method": "POST", "url": r["resourceType"]}} for r in resources]}


def _sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


def _uuid(rng: np.random.Generator) -> str:
    return str(uuid.UUID(bytes=rng.bytes(16), version=4))


def _between(rng: np.random.Generator, lo: dt.datetime, hi: dt.datetime) -> dt.datetime:
    """A minute-aligned instant in [lo, hi)."""
    return (lo + (hi - lo) * rng.random()).replace(second=0, microsecond=0)


def _iso(t: dt.datetime) -> str:
    return t.isoformat(timespec="seconds")


def _concept(system: str, code: Code) -> dict[str, Any]:
    return {"coding": [{"system": system, "code": code[0], "display": code[1]}], "text": code[1]}


def _ref(pid: str) -> dict[str, str]:
    return {"reference": f"urn:uuid:{pid}"}


def _patient(index: int, rng: np.random.Generator, fake: Faker, male: bool, birth: dt.datetime,
             age: float, death: dt.datetime | None) -> Resource:
    given = fake.first_name_male() if male else fake.first_name_female()
    state = str(rng.choice(list(_STATES), p=[s[0] for s in _STATES.values()]))
    cities = _STATES[state][1]
    city, zip3 = cities[int(rng.integers(len(cities)))]
    race = _RACES[int(rng.choice(len(_RACES), p=[r[2] for r in _RACES]))]
    hispanic = rng.random() < 0.12
    ethnicity = ("2135-2", "Hispanic or Latino") if hispanic else ("2186-5", "Not Hispanic or Latino")
    marital = next((p for lo, p in _MARITAL_BY_AGE if age >= lo), (0.0, 1.0, 0.0, 0.0))
    status = str(rng.choice(list(_MARITAL), p=marital))
    patient: Resource = {
        "resourceType": "Patient", "id": _uuid(rng),
        "extension": [_omb("us-core-race", race[:2]), _omb("us-core-ethnicity", ethnicity)],
        "identifier": [
            {"type": _concept(_TERM + "v2-0203", ("MR", "Medical record number")),
             "system": "http://hospital.example.org/mrn", "value": f"MRN{index + 100000:07d}"},
            {"system": "http://hl7.org/fhir/sid/us-ssn", "value": _ssn(index, rng)}],
        "name": [{"use": "official", "family": fake.last_name(), "given": [given]}],
        "telecom": [{"system": "phone", "value": fake.numerify("###-555-####"), "use": "home"}],
        "gender": "male" if male else "female",
        "birthDate": birth.date().isoformat(),
        "address": [{"line": [fake.street_address()], "city": city, "state": state,
                     "postalCode": zip3 + f"{int(rng.integers(1, 100)):02d}", "country": "US"}],
        "maritalStatus": _concept(_TERM + "v3-MaritalStatus", (status, _MARITAL[status])),
    }
    if death is not None:
        patient["deceasedDateTime"] = _iso(death)
    return patient


def _ssn(index: int, rng: np.random.Generator) -> str:
    """A fake SSN (area 999 is never issued), unique per patient as a real SSN is: the ledger
    and the reader treat two Patients sharing one as one person. Two draws are still made so
    that the rest of the seeded example stays as it was."""
    rng.integers(10, 100), rng.integers(1, 10000)
    return f"999-{10 + index // 10000 % 90:02d}-{index % 10000:04d}"


def _omb(name: str, code: Code) -> Resource:
    return {"url": _US_CORE + name, "extension": [
        {"url": "ombCategory", "valueCoding": {"system": _OMB, "code": code[0], "display": code[1]}},
        {"url": "text", "valueString": code[1]}]}


def _chronic(rng: np.random.Generator, age: float, male: bool) -> dict[str, Code]:
    """Decide which chronic conditions the patient has (at death or the reference date)."""
    has: dict[str, bool] = {}

    def draw(key: str, logit: float, allowed: bool = True) -> float:
        has[key] = allowed and rng.random() < _sigmoid(logit)
        return float(has[key])

    adult = age >= 18
    smoker = adult and rng.random() < 0.17
    obese = draw("obesity", -1.0 if adult else -1.9, age >= 2)
    diabetes = draw("diabetes", -5.5 + 0.055 * age + 1.3 * obese, adult)
    draw("prediabetes", -3.2 + 0.03 * age + 0.7 * obese, adult and not diabetes)
    htn = draw("hypertension", -5.0 + 0.07 * age + 1.0 * obese + 0.5 * diabetes, adult)
    lipid = draw("hyperlipidemia", -4.5 + 0.055 * age + 0.5 * diabetes + 0.4 * obese, adult)
    draw("asthma", -2.2 - 0.012 * age)
    draw("copd", -7.5 + 0.06 * age + 2.2 * smoker, age >= 35)
    ckd = draw("ckd", -7.0 + 0.06 * age + 1.4 * diabetes + 0.8 * htn, adult)
    cad = draw("coronary", -8.0 + 0.07 * age + 0.9 * diabetes + 0.8 * htn + 0.5 * lipid
               + 0.6 * smoker + 0.3 * male, adult)
    draw("mi", -1.0 + 0.5 * smoker, bool(cad))
    draw("heart_failure", -8.5 + 0.07 * age + 1.3 * htn + 1.0 * cad + 0.4 * diabetes, adult)
    afib = draw("afib", -8.8 + 0.08 * age + 0.5 * htn, adult)
    draw("stroke", -8.8 + 0.06 * age + 1.0 * htn + 0.9 * afib + 0.4 * diabetes, adult)
    draw("depression", -2.6 + 0.3 * obese, age >= 12)
    draw("anxiety", -2.4 + 0.3 * (not male), age >= 10)
    draw("colon_cancer", -9.0 + 0.07 * age, age >= 30)
    draw("lung_cancer", -10.0 + 0.07 * age + 2.2 * smoker, age >= 30)
    draw("prostate_cancer", -10.5 + 0.1 * age, male and age >= 40)
    draw("breast_cancer", -11.0 + 0.07 * age if male else -7.5 + 0.065 * age, age >= 25)
    cancer = any(has[c] for c in _CANCERS)
    draw("anemia", -3.5 + 0.02 * age + 0.9 * ckd + 0.7 * cancer + 0.4 * (not male))
    draw("alzheimers", -12.0 + 0.12 * age, age >= 55)
    codes = {k: _CONDITIONS[k] for k, v in has.items() if v and k != "ckd"}
    if has["ckd"]:
        codes["ckd"] = _CKD_STAGES[int(rng.choice(3, p=[0.2, 0.4, 0.4]))]
    return codes


def _condition(rng: np.random.Generator, pid: str, code: Code, onset: dt.datetime,
               abated: dt.datetime | None = None) -> Resource:
    cond: Resource = {
        "resourceType": "Condition", "id": _uuid(rng),
        "clinicalStatus": _concept(_TERM + "condition-clinical",
                                   ("resolved", "Resolved") if abated else ("active", "Active")),
        "verificationStatus": _concept(_TERM + "condition-ver-status", ("confirmed", "Confirmed")),
        "code": _concept(SNOMED, code), "subject": _ref(pid),
        "onsetDateTime": _iso(onset), "recordedDate": _iso(onset)}
    if abated is not None:
        cond["abatementDateTime"] = _iso(abated)
    return cond


def _conditions(rng: np.random.Generator, pid: str, chronic: dict[str, Code], birth: dt.datetime,
                end: dt.datetime, age_end: float) -> tuple[list[Resource], dict[str, dt.datetime]]:
    out: list[Resource] = []
    onsets: dict[str, dt.datetime] = {}
    for key, code in chronic.items():
        lo_age = float(_ONSET_MIN_AGE.get(key, 18))
        lo_age = max(lo_age, age_end - 25) if lo_age < age_end else 0.0
        lo = min(max(birth + lo_age * _YEAR, birth + _DAY), end - 2 * _DAY)
        onsets[key] = _between(rng, lo, end - _DAY)
        out.append(_condition(rng, pid, code, onsets[key]))
    recent = max(birth + _DAY, end - 10 * _YEAR)
    for code, rate in _ACUTE:
        for _ in range(min(int(rng.poisson(rate)), 4)):
            onset = _between(rng, recent, end - _DAY)
            abated = min(onset + int(rng.integers(7, 22)) * _DAY, end - dt.timedelta(minutes=1))
            out.append(_condition(rng, pid, code, onset, abated))
    if rng.random() < 0.01:
        out.append(_condition(rng, pid, _LOCAL_CODE, _between(rng, recent, end - _DAY)))
    return out, onsets


def _observation(rng: np.random.Generator, pid: str, t: dt.datetime, category: str,
                 code: Code, value: float | None, unit: str,
                 components: tuple[tuple[Code, float], ...] = ()) -> Resource:
    obs: Resource = {
        "resourceType": "Observation", "id": _uuid(rng), "status": "final",
        "category": [_concept(_TERM + "observation-category", (category, _CATEGORIES[category]))],
        "code": _concept(LOINC, code), "subject": _ref(pid), "effectiveDateTime": _iso(t)}
    if value is not None:
        obs["valueQuantity"] = _quantity(value, unit)
    if components:
        obs["component"] = [{"code": _concept(LOINC, c), "valueQuantity": _quantity(v, unit)}
                            for c, v in components]
    return obs


def _quantity(value: float, unit: str) -> dict[str, Any]:
    return {"value": value, "unit": unit, "system": UCUM, "code": unit}


def _observations(rng: np.random.Generator, pid: str, chronic: dict[str, Code], onsets: dict[str, dt.datetime],
                  birth: dt.datetime, end: dt.datetime, male: bool, visits: list[dt.datetime]) -> list[Resource]:
    first = birth + _DAY
    recent = [t for t in visits if t >= max(first, end - 6 * _YEAR)]
    latest = recent[-1] if recent and recent[-1] >= end - _YEAR else _between(
        rng, max(first, end - _YEAR), end - dt.timedelta(hours=1))
    earlier = [t for t in recent if t < latest]
    picked: list[int] = rng.choice(len(earlier), size=min(len(earlier), int(rng.integers(1, 6))),
                                   replace=False).tolist() if earlier else []
    times = sorted(earlier[i] for i in picked) + [latest]
    adult_height = rng.normal(176.0, 7.0) if male else rng.normal(163.0, 6.5)
    obese, diabetes = "obesity" in chronic, "diabetes" in chronic
    adult_bmi = (float(np.clip(rng.normal(34.0, 4.0), 30.2, 55.0)) if obese
                 else float(np.clip(rng.normal(25.5, 2.8), 17.5, 29.8)))
    child_offset = 5.5 if obese else rng.normal(0.0, 1.2)
    labs = rng.random() < (0.9 if diabetes or "hyperlipidemia" in chronic else 0.6)
    onset = onsets.get("diabetes")
    if diabetes and labs and onset is not None and onset >= max(first + 18 * _YEAR, end - 6 * _YEAR):
        # a diagnosis made in the window is made on an HbA1c, and followed up at 3, 6 and 12 months
        follow = [onset + months * _YEAR / 12 for months in (0, 3, 6, 12)]
        times = sorted({*times, *(t for t in follow if t < end)})
    htn = 12.0 * ("hypertension" in chronic)
    out: list[Resource] = []
    for t in times:
        age = (t - birth) / _YEAR
        height = round(adult_height * float(np.interp(age, _GROWTH_AGES, _GROWTH_SHARE)), 1)
        bmi = (adult_bmi if age >= 18 else float(np.interp(age, _CHILD_BMI_AGES, _CHILD_BMI))
               + child_offset) + rng.normal(0.0, 0.4)
        weight = round(bmi * (height / 100) ** 2, 1)
        bmi = round(weight / (height / 100) ** 2, 1)
        grown = min(max(age - 18.0, 0.0), 70.0)
        systolic = round(100 + 10 * (age >= 13) + 0.35 * grown + htn + rng.normal(0.0, 9.0))
        diastolic = round(min(62 + 8 * (age >= 13) + 0.1 * grown + 0.6 * htn + rng.normal(0.0, 6.0),
                              systolic - 25))
        out += [
            _observation(rng, pid, t, "vital-signs", ("8302-2", "Body height"), height, "cm"),
            _observation(rng, pid, t, "vital-signs", ("29463-7", "Body weight"), weight, "kg"),
            _observation(rng, pid, t, "vital-signs", ("39156-5", "Body mass index (BMI) [Ratio]"),
                         bmi, "kg/m2"),
            _observation(rng, pid, t, "vital-signs", ("55284-4", "Blood pressure systolic and diastolic"),
                         None, "mm[Hg]", ((("8480-6", "Systolic blood pressure"), systolic),
                                          (("8462-4", "Diastolic blood pressure"), diastolic)))]
        if not labs or age < 18:
            continue
        if diabetes and t >= onsets["diabetes"]:
            # high at diagnosis, brought down by treatment over the first year or two
            years = (t - onsets["diabetes"]) / _YEAR
            a1c = 6.9 + 1.6 * math.exp(-years / 1.2) + rng.normal(0.0, 0.5)
            glucose = 20.0 * a1c + rng.normal(0.0, 20.0)
        elif diabetes:  # creeping up in the years before the diagnosis
            years = (onsets["diabetes"] - t) / _YEAR
            a1c, glucose = 6.4 - 0.15 * min(years, 5.0) + rng.normal(0.0, 0.2), rng.normal(115.0, 10.0)
        elif "prediabetes" in chronic:
            a1c, glucose = rng.normal(6.0, 0.2), rng.normal(110.0, 8.0)
        else:
            a1c, glucose = rng.normal(5.3, 0.25), rng.normal(92.0, 8.0)
        chol = rng.normal(235.0, 30.0) if "hyperlipidemia" in chronic else rng.normal(185.0, 25.0)
        out += [
            _observation(rng, pid, t, "laboratory", ("4548-4", "Hemoglobin A1c/Hemoglobin.total in Blood"),
                         round(float(np.clip(a1c, 4.0, 14.0)), 1), "%"),
            _observation(rng, pid, t, "laboratory", ("2339-0", "Glucose [Mass/volume] in Blood"),
                         round(float(np.clip(glucose, 60.0, 450.0))), "mg/dL"),
            _observation(rng, pid, t, "laboratory",
                         ("2093-3", "Cholesterol [Mass/volume] in Serum or Plasma"),
                         round(float(np.clip(chol, 100.0, 400.0))), "mg/dL")]
    return out


def _start(resource: Resource) -> dt.datetime:
    return dt.datetime.fromisoformat(resource["period"]["start"])


def _encounters(rng: np.random.Generator, pid: str, chronic: dict[str, Code], onsets: dict[str, dt.datetime],
                birth: dt.datetime, end: dt.datetime, age_end: float) -> list[Resource]:
    n_chronic = len(chronic)
    old = max(age_end - 65.0, 0.0)
    p_home = 0.01 + 0.01 * old + 0.1 * ("alzheimers" in chronic)
    counts = {
        "AMB": min(max(int(rng.poisson(1.5 + 0.08 * age_end + 3.0 * n_chronic + 4 * (age_end < 3))), 1), 150),
        "EMER": min(int(rng.poisson(0.3 + 0.12 * n_chronic)), 5),
        "IMP": min(int(rng.poisson(0.05 + 0.03 * old + 1.5 * ("heart_failure" in chronic)
                                   + 0.4 * ("copd" in chronic) + 0.5 * ("stroke" in chronic))), 20),
        "HH": int(rng.integers(1, 7)) if rng.random() < p_home else 0,
    }
    lo, hi = max(birth + _DAY, end - 10 * _YEAR), end - dt.timedelta(hours=2)
    causes = [onsets[k] for k in ("heart_failure", "copd", "stroke") if k in onsets]
    out: list[Resource] = []
    for cls, count in counts.items():
        display, types, (short, long) = _ENCOUNTERS[cls]
        for _ in range(count):
            # admissions come after the onset of the disease that causes them, mostly within 3 years
            after = min(causes) if cls == "IMP" and causes else None
            if after is not None and lo <= after < hi:
                start = _between(rng, after, min(hi, after + 3 * _YEAR) if rng.random() < 0.7 else hi)
            else:
                start = _between(rng, lo, hi)
            stop = min(start + dt.timedelta(hours=float(rng.uniform(short, long))), end)
            kind = types[int(rng.integers(len(types)))]
            out.append({
                "resourceType": "Encounter", "id": _uuid(rng), "status": "finished",
                "class": {"system": _TERM + "v3-ActCode", "code": cls, "display": display},
                "type": [_concept(SNOMED, kind)], "subject": _ref(pid),
                "period": {"start": _iso(start), "end": _iso(stop.replace(second=0, microsecond=0))}})
    return out


def _meds_and_procedures(rng: np.random.Generator, pid: str, chronic: dict[str, Code],
                         onsets: dict[str, dt.datetime], birth: dt.datetime, end: dt.datetime, age_end: float,
                         male: bool, death: dt.datetime | None, visits: list[dt.datetime]) -> list[Resource]:
    lo, hi = max(birth + _DAY, end - 10 * _YEAR), end - dt.timedelta(hours=2)
    out: list[Resource] = []

    def when(after: dt.datetime) -> dt.datetime:
        """A visit after ``after`` (within the window) when there is one, else a new moment."""
        start = max(lo, after)
        later = [t for t in visits if t >= start]
        if later and rng.random() < 0.8:
            return later[int(rng.integers(len(later)))]
        return _between(rng, start, hi) if start < hi else hi

    def meds(drug: Code, count: int, chronic_drug: bool, after: dt.datetime | None = None) -> None:
        # the first request on the day of the diagnosis when that falls in the window
        first = [after] if after is not None and lo <= after < hi and count else []
        times = first + [when(after or lo) for _ in range(count - len(first))]
        for i, authored in enumerate(sorted(times)):
            active = chronic_drug and i == count - 1 and death is None
            out.append({
                "resourceType": "MedicationRequest", "id": _uuid(rng),
                "status": "active" if active else "stopped", "intent": "order",
                "medicationCodeableConcept": _concept(RXNORM, drug), "subject": _ref(pid),
                "authoredOn": _iso(authored)})

    def procedure(code: Code, count: int) -> None:
        for _ in range(count):
            start = when(lo)
            stop = start + dt.timedelta(minutes=int(rng.integers(15, 91)))
            out.append({
                "resourceType": "Procedure", "id": _uuid(rng), "status": "completed",
                "code": _concept(SNOMED, code), "subject": _ref(pid),
                "performedPeriod": {"start": _iso(start), "end": _iso(stop)}})

    for key in sorted(set(chronic) & set(_DRUGS)):
        if rng.random() < 0.85:
            meds(_DRUGS[key], int(rng.integers(1, 4)), chronic_drug=True, after=onsets.get(key))
    for _ in range(int(rng.poisson(0.4))):
        meds(_ACUTE_DRUGS[int(rng.integers(len(_ACUTE_DRUGS)))], 1, chronic_drug=False)
    n_meds = len(out)
    procedure(_MED_REC, int(rng.poisson(1.0 + n_meds)) if n_meds else 0)
    colon = "colon_cancer" in chronic
    procedure(_COLONOSCOPY, int(rng.integers(1, 4)) if colon else int(age_end >= 45 and rng.random() < 0.4))
    cardiac = sum(k in chronic for k in ("coronary", "heart_failure", "afib", "mi"))
    procedure(_ECG, int(rng.poisson(1.5 * cardiac)))
    lungs = sum(k in chronic for k in ("copd", "lung_cancer", "asthma"))
    procedure(_CHEST_XRAY, int(rng.poisson(0.1 + 1.2 * lungs)))
    procedure(_DEPRESSION_SCREEN, int(age_end >= 12 and rng.random() < 0.3))
    breast = "breast_cancer" in chronic
    screen = not male and age_end >= 40 and rng.random() < 0.5
    procedure(_MAMMOGRAPHY, int(rng.integers(1, 4)) if breast or screen else 0)
    return out


_DATES = {"Condition": "onsetDateTime", "Observation": "effectiveDateTime", "MedicationRequest": "authoredOn"}
_PROBLEM: Code = ("185347001", "Encounter for problem (procedure)")


def _link(rng: np.random.Generator, pid: str, clinical: list[Resource], encounters: list[Resource],
          end: dt.datetime) -> list[Resource]:
    """Every clinical resource references the encounter it was recorded in (as Synthea's do):
    one of the patient's encounters on the same day, else a new ambulatory encounter for the
    problem at that moment. Returns encounters and clinical resources, encounters first."""
    by_day: dict[dt.date, Resource] = {}
    for e in encounters:
        by_day.setdefault(_start(e).date(), e)
    for r in clinical:
        if r["resourceType"] == "Procedure":
            moment = dt.datetime.fromisoformat(r["performedPeriod"]["start"])
        else:
            moment = dt.datetime.fromisoformat(r[_DATES[r["resourceType"]]])
        encounter = by_day.get(moment.date())
        if encounter is None:
            stop = min(moment + dt.timedelta(minutes=int(rng.integers(15, 60))), end)
            encounter = {
                "resourceType": "Encounter", "id": _uuid(rng), "status": "finished",
                "class": {"system": _TERM + "v3-ActCode", "code": "AMB", "display": "ambulatory"},
                "type": [_concept(SNOMED, _PROBLEM)], "subject": _ref(pid),
                "period": {"start": _iso(moment), "end": _iso(max(stop, moment))}}
            encounters.append(encounter)
            by_day[moment.date()] = encounter
        r["encounter"] = {"reference": f"urn:uuid:{encounter['id']}"}
    return [*sorted(encounters, key=_start), *clinical]
