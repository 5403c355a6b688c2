"""The example hospital's Encounters: visits, emergencies, admissions and home visits drawn
from the patient's conditions, and every clinical resource tied to the encounter it was
recorded in."""

from __future__ import annotations

import datetime as dt

import numpy as np

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
)

# Encounter class -> (display, SNOMED types, duration range in hours).
_ENCOUNTERS: dict[str, tuple[str, tuple[Code, ...], tuple[float, float]]] = {
    "AMB": ("ambulatory", (("185349003", "Encounter for check up (procedure)"),
                           ("185345009", "Encounter for symptom (procedure)"),
                           ("390906007", "Follow-up encounter (procedure)")), (0.25, 1.0)),
    "EMER": ("emergency", (("50849002", "Emergency room admission (procedure)"),), (1.0, 8.0)),
    "IMP": ("inpatient encounter", (("32485007", "Hospital admission (procedure)"),), (24.0, 240.0)),
    "HH": ("home health", (("439708006", "Home visit (procedure)"),), (0.5, 1.5)),
}


def start_of(resource: Resource) -> dt.datetime:
    """When an Encounter starts."""
    return dt.datetime.fromisoformat(resource["period"]["start"])


def draw_encounters(rng: np.random.Generator, pid: str, chronic: dict[str, Code], onsets: dict[str, dt.datetime],
                    birth: dt.datetime, end: dt.datetime, age_end: float) -> list[Resource]:
    """The patient's Encounters of the last ten years, more of them with age and conditions;
    admissions mostly in the three years after heart failure, COPD or a stroke begins."""
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
    lo, hi = max(birth + DAY, end - 10 * YEAR), end - dt.timedelta(hours=2)
    causes = [onsets[k] for k in ("heart_failure", "copd", "stroke") if k in onsets]
    out: list[Resource] = []
    for cls, count in counts.items():
        display, types, (short, long) = _ENCOUNTERS[cls]
        for _ in range(count):
            # admissions come after the onset of the disease that causes them, mostly within 3 years
            after = min(causes) if cls == "IMP" and causes else None
            if after is not None and lo <= after < hi:
                start = between(rng, after, min(hi, after + 3 * YEAR) if rng.random() < 0.7 else hi)
            else:
                start = between(rng, lo, hi)
            stop = min(start + dt.timedelta(hours=float(rng.uniform(short, long))), end)
            kind = types[int(rng.integers(len(types)))]
            out.append({
                "resourceType": "Encounter", "id": new_uuid(rng), "status": "finished",
                "class": {"system": TERM + "v3-ActCode", "code": cls, "display": display},
                "type": [concept(SNOMED, kind)], "subject": reference(pid),
                "period": {"start": iso(start), "end": iso(stop.replace(second=0, microsecond=0))}})
    return out


_DATES = {"Condition": "onsetDateTime", "Observation": "effectiveDateTime", "MedicationRequest": "authoredOn"}
_PROBLEM: Code = ("185347001", "Encounter for problem (procedure)")


def link_encounters(rng: np.random.Generator, pid: str, clinical: list[Resource], encounters: list[Resource],
                    end: dt.datetime) -> list[Resource]:
    """Every clinical resource references the encounter it was recorded in (as Synthea's do):
    one of the patient's encounters on the same day, else a new ambulatory encounter for the
    problem at that moment. Returns encounters and clinical resources, encounters first."""
    by_day: dict[dt.date, Resource] = {}
    for e in encounters:
        by_day.setdefault(start_of(e).date(), e)
    for r in clinical:
        if r["resourceType"] == "Procedure":
            moment = dt.datetime.fromisoformat(r["performedPeriod"]["start"])
        else:
            moment = dt.datetime.fromisoformat(r[_DATES[r["resourceType"]]])
        encounter = by_day.get(moment.date())
        if encounter is None:
            stop = min(moment + dt.timedelta(minutes=int(rng.integers(15, 60))), end)
            encounter = {
                "resourceType": "Encounter", "id": new_uuid(rng), "status": "finished",
                "class": {"system": TERM + "v3-ActCode", "code": "AMB", "display": "ambulatory"},
                "type": [concept(SNOMED, _PROBLEM)], "subject": reference(pid),
                "period": {"start": iso(moment), "end": iso(max(stop, moment))}}
            encounters.append(encounter)
            by_day[moment.date()] = encounter
        r["encounter"] = {"reference": f"urn:uuid:{encounter['id']}"}
    return [*sorted(encounters, key=start_of), *clinical]
