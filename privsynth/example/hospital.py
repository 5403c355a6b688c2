"""Seeded, rule-based generator of an example hospital FHIR R4 export (for ``privsynth demo``).

Every patient becomes one FHIR R4 ``transaction`` Bundle (shaped like Synthea's 2019 bundles)
holding a Patient plus Conditions, Observations, Encounters, MedicationRequests and Procedures
that reference it as ``urn:uuid:<patient id>``. Prevalences rise with age and follow textbook
correlations (obesity -> diabetes -> kidney disease, hypertension -> heart failure, ...) so a
synthesizer has real structure to learn. Nothing here is derived from patient data.

This module draws the patient, their conditions and the Bundle; their Observations
(:mod:`.observation`), Encounters (:mod:`.encounter`) and MedicationRequests and Procedures
(:mod:`.order`) are drawn in their own modules, from the same ``rng``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from pathlib import Path

import numpy as np
import orjson
from faker import Faker

from privsynth.example.encounter import draw_encounters, link_encounters, start_of
from privsynth.example.observation import draw_observations
from privsynth.example.order import draw_meds_and_procedures
from privsynth.example.resource import (
    DAY,
    SNOMED,
    TERM,
    YEAR,
    Code,
    Resource,
    between,
    concept,
    iso,
    new_uuid,
    reference,
    sigmoid,
)
from privsynth.example.resource import LOINC as LOINC  # re-exported: the code systems of the example
from privsynth.example.resource import RXNORM as RXNORM
from privsynth.example.resource import UCUM as UCUM

REFERENCE_DATE = dt.date(2024, 1, 1)

_US_CORE = "http://hl7.org/fhir/us/core/StructureDefinition/"
_OMB = "urn:oid:2.16.840.1.113883.6.238"

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
    birth = (ref - max(age * YEAR, 7 * DAY)).replace(hour=0, minute=0, second=0, microsecond=0)
    male = bool(rng.random() < 0.49)
    died = bool(rng.random() < sigmoid(-6.75 + 0.08 * age + 0.3 * male))
    start, stop = max(birth + 7 * DAY, ref - 8 * YEAR), ref - DAY
    death = between(rng, start, stop) if died and start < stop else None
    end = death or ref
    age_end = (end - birth) / YEAR
    patient = _patient(index, rng, fake, male, birth, age, death)
    pid = patient["id"]
    chronic = _chronic(rng, age_end, male)
    conditions, onsets = _conditions(rng, pid, chronic, birth, end, age_end)
    encounters = draw_encounters(rng, pid, chronic, onsets, birth, end, age_end)
    visits = sorted(start_of(e) for e in encounters if e["class"]["code"] == "AMB")
    clinical = conditions + draw_observations(rng, pid, chronic, onsets, birth, end, male, visits)
    clinical += draw_meds_and_procedures(rng, pid, chronic, onsets, birth, end, age_end, male, death, visits)
    resources: list[Resource] = [patient, *link_encounters(rng, pid, clinical, encounters, end)]
    return {"resourceType": "Bundle", "type": "transaction", "entry": [
        {"fullUrl": f"urn:uuid:{r['id']}", "resource": r,
         "request": {"method": "POST", "url": r["resourceType"]}} for r in resources]}


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
        "resourceType": "Patient", "id": new_uuid(rng),
        "extension": [_omb("us-core-race", race[:2]), _omb("us-core-ethnicity", ethnicity)],
        "identifier": [
            {"type": concept(TERM + "v2-0203", ("MR", "Medical record number")),
             "system": "http://hospital.example.org/mrn", "value": f"MRN{index + 100000:07d}"},
            {"system": "http://hl7.org/fhir/sid/us-ssn", "value": _ssn(index, rng)}],
        "name": [{"use": "official", "family": fake.last_name(), "given": [given]}],
        "telecom": [{"system": "phone", "value": fake.numerify("###-555-####"), "use": "home"}],
        "gender": "male" if male else "female",
        "birthDate": birth.date().isoformat(),
        "address": [{"line": [fake.street_address()], "city": city, "state": state,
                     "postalCode": zip3 + f"{int(rng.integers(1, 100)):02d}", "country": "US"}],
        "maritalStatus": concept(TERM + "v3-MaritalStatus", (status, _MARITAL[status])),
    }
    if death is not None:
        patient["deceasedDateTime"] = iso(death)
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
        has[key] = allowed and rng.random() < sigmoid(logit)
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
        "resourceType": "Condition", "id": new_uuid(rng),
        "clinicalStatus": concept(TERM + "condition-clinical",
                                   ("resolved", "Resolved") if abated else ("active", "Active")),
        "verificationStatus": concept(TERM + "condition-ver-status", ("confirmed", "Confirmed")),
        "code": concept(SNOMED, code), "subject": reference(pid),
        "onsetDateTime": iso(onset), "recordedDate": iso(onset)}
    if abated is not None:
        cond["abatementDateTime"] = iso(abated)
    return cond


def _conditions(rng: np.random.Generator, pid: str, chronic: dict[str, Code], birth: dt.datetime,
                end: dt.datetime, age_end: float) -> tuple[list[Resource], dict[str, dt.datetime]]:
    out: list[Resource] = []
    onsets: dict[str, dt.datetime] = {}
    for key, code in chronic.items():
        lo_age = float(_ONSET_MIN_AGE.get(key, 18))
        lo_age = max(lo_age, age_end - 25) if lo_age < age_end else 0.0
        lo = min(max(birth + lo_age * YEAR, birth + DAY), end - 2 * DAY)
        onsets[key] = between(rng, lo, end - DAY)
        out.append(_condition(rng, pid, code, onsets[key]))
    recent = max(birth + DAY, end - 10 * YEAR)
    for code, rate in _ACUTE:
        for _ in range(min(int(rng.poisson(rate)), 4)):
            onset = between(rng, recent, end - DAY)
            abated = min(onset + int(rng.integers(7, 22)) * DAY, end - dt.timedelta(minutes=1))
            out.append(_condition(rng, pid, code, onset, abated))
    if rng.random() < 0.01:
        out.append(_condition(rng, pid, _LOCAL_CODE, between(rng, recent, end - DAY)))
    return out, onsets
