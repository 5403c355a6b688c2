"""The example hospital's orders: MedicationRequests for the patient's chronic conditions
(and the odd acute prescription) and Procedures (screening, cardiac and chest work-up,
medication reconciliation), mostly at the patient's visits."""

from __future__ import annotations

import datetime as dt

import numpy as np

from privsynth.example.resource import (
    DAY,
    RXNORM,
    SNOMED,
    YEAR,
    Code,
    Resource,
    between,
    concept,
    iso,
    new_uuid,
    reference,
)

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
_MED_REC: Code = ("430193006", "Medication Reconciliation (procedure)")
_COLONOSCOPY: Code = ("73761001", "Colonoscopy")
_ECG: Code = ("29303009", "Electrocardiographic procedure")
_CHEST_XRAY: Code = ("399208008", "Plain chest X-ray (procedure)")
_DEPRESSION_SCREEN: Code = ("171207006", "Depression screening (procedure)")
_MAMMOGRAPHY: Code = ("71651007", "Mammography (procedure)")


def draw_meds_and_procedures(rng: np.random.Generator, pid: str, chronic: dict[str, Code],
                             onsets: dict[str, dt.datetime], birth: dt.datetime, end: dt.datetime, age_end: float,
                             male: bool, death: dt.datetime | None, visits: list[dt.datetime]) -> list[Resource]:
    """The patient's MedicationRequests and Procedures of the last ten years, most at a visit
    (``visits``): a chronic condition's drug from its diagnosis on, and the procedures the
    patient's age, sex and conditions call for."""
    lo, hi = max(birth + DAY, end - 10 * YEAR), end - dt.timedelta(hours=2)
    out: list[Resource] = []

    def when(after: dt.datetime) -> dt.datetime:
        """A visit after ``after`` (within the window) when there is one, else a new moment."""
        start = max(lo, after)
        later = [t for t in visits if t >= start]
        if later and rng.random() < 0.8:
            return later[int(rng.integers(len(later)))]
        return between(rng, start, hi) if start < hi else hi

    def meds(drug: Code, count: int, chronic_drug: bool, after: dt.datetime | None = None) -> None:
        # the first request on the day of the diagnosis when that falls in the window
        first = [after] if after is not None and lo <= after < hi and count else []
        times = first + [when(after or lo) for _ in range(count - len(first))]
        for i, authored in enumerate(sorted(times)):
            active = chronic_drug and i == count - 1 and death is None
            out.append({
                "resourceType": "MedicationRequest", "id": new_uuid(rng),
                "status": "active" if active else "stopped", "intent": "order",
                "medicationCodeableConcept": concept(RXNORM, drug), "subject": reference(pid),
                "authoredOn": iso(authored)})

    def procedure(code: Code, count: int) -> None:
        for _ in range(count):
            start = when(lo)
            stop = start + dt.timedelta(minutes=int(rng.integers(15, 91)))
            out.append({
                "resourceType": "Procedure", "id": new_uuid(rng), "status": "completed",
                "code": concept(SNOMED, code), "subject": reference(pid),
                "performedPeriod": {"start": iso(start), "end": iso(stop)}})

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
