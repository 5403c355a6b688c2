"""The example hospital's Observations: vital signs at a patient's recent visits and, for
adults with labs, HbA1c, glucose and cholesterol; values follow the patient's conditions."""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from privsynth.example.resource import (
    DAY,
    LOINC,
    TERM,
    UCUM,
    YEAR,
    Code,
    Resource,
    between,
    concept,
    iso,
    new_uuid,
    reference,
)

_CATEGORIES = {"vital-signs": "Vital Signs", "laboratory": "Laboratory"}
# Child height as a share of adult height, by age (years).
_GROWTH_AGES = np.array([0.0, 1, 2, 4, 6, 8, 10, 12, 14, 16, 18])
_GROWTH_SHARE = np.array([0.29, 0.43, 0.50, 0.58, 0.66, 0.73, 0.80, 0.87, 0.93, 0.98, 1.0])
_CHILD_BMI_AGES = np.array([0.0, 1, 2, 5, 10, 15, 18])
_CHILD_BMI = np.array([13.5, 17.0, 16.5, 15.5, 17.0, 20.5, 22.0])


def _observation(rng: np.random.Generator, pid: str, t: dt.datetime, category: str,
                 code: Code, value: float | None, unit: str,
                 components: tuple[tuple[Code, float], ...] = ()) -> Resource:
    obs: Resource = {
        "resourceType": "Observation", "id": new_uuid(rng), "status": "final",
        "category": [concept(TERM + "observation-category", (category, _CATEGORIES[category]))],
        "code": concept(LOINC, code), "subject": reference(pid), "effectiveDateTime": iso(t)}
    if value is not None:
        obs["valueQuantity"] = _quantity(value, unit)
    if components:
        obs["component"] = [{"code": concept(LOINC, c), "valueQuantity": _quantity(v, unit)}
                            for c, v in components]
    return obs


def _quantity(value: float, unit: str) -> dict[str, Any]:
    return {"value": value, "unit": unit, "system": UCUM, "code": unit}


def _visit_times(rng: np.random.Generator, first: dt.datetime, end: dt.datetime,
                 visits: list[dt.datetime]) -> list[dt.datetime]:
    """When the vitals are taken: the latest visit of the last year (else a new moment in that
    year) and one to five of the earlier visits of the last six years, in order."""
    recent = [t for t in visits if t >= max(first, end - 6 * YEAR)]
    latest = recent[-1] if recent and recent[-1] >= end - YEAR else between(
        rng, max(first, end - YEAR), end - dt.timedelta(hours=1))
    earlier = [t for t in recent if t < latest]
    picked: list[int] = rng.choice(len(earlier), size=min(len(earlier), int(rng.integers(1, 6))),
                                   replace=False).tolist() if earlier else []
    return sorted(earlier[i] for i in picked) + [latest]


@dataclass(frozen=True)
class _Physique:
    """A patient's build and blood pressure: adult height (cm) and BMI, a child's BMI offset
    from the typical one, and the rise (mmHg) hypertension adds to the systolic."""

    adult_height: float
    adult_bmi: float
    child_offset: float
    hypertension: float


def _physique(rng: np.random.Generator, chronic: dict[str, Code], male: bool) -> _Physique:
    adult_height = rng.normal(176.0, 7.0) if male else rng.normal(163.0, 6.5)
    obese = "obesity" in chronic
    adult_bmi = (float(np.clip(rng.normal(34.0, 4.0), 30.2, 55.0)) if obese
                 else float(np.clip(rng.normal(25.5, 2.8), 17.5, 29.8)))
    child_offset = 5.5 if obese else rng.normal(0.0, 1.2)
    return _Physique(adult_height, adult_bmi, child_offset, 12.0 * ("hypertension" in chronic))


def _vitals(rng: np.random.Generator, pid: str, t: dt.datetime, age: float, body: _Physique) -> list[Resource]:
    """Height, weight, BMI and blood pressure at age ``age`` (years)."""
    height = round(body.adult_height * float(np.interp(age, _GROWTH_AGES, _GROWTH_SHARE)), 1)
    bmi = (body.adult_bmi if age >= 18 else float(np.interp(age, _CHILD_BMI_AGES, _CHILD_BMI))
           + body.child_offset) + rng.normal(0.0, 0.4)
    weight = round(bmi * (height / 100) ** 2, 1)
    bmi = round(weight / (height / 100) ** 2, 1)
    grown = min(max(age - 18.0, 0.0), 70.0)
    htn = body.hypertension
    systolic = round(100 + 10 * (age >= 13) + 0.35 * grown + htn + rng.normal(0.0, 9.0))
    diastolic = round(min(62 + 8 * (age >= 13) + 0.1 * grown + 0.6 * htn + rng.normal(0.0, 6.0),
                          systolic - 25))
    return [
        _observation(rng, pid, t, "vital-signs", ("8302-2", "Body height"), height, "cm"),
        _observation(rng, pid, t, "vital-signs", ("29463-7", "Body weight"), weight, "kg"),
        _observation(rng, pid, t, "vital-signs", ("39156-5", "Body mass index (BMI) [Ratio]"),
                     bmi, "kg/m2"),
        _observation(rng, pid, t, "vital-signs", ("55284-4", "Blood pressure systolic and diastolic"),
                     None, "mm[Hg]", ((("8480-6", "Systolic blood pressure"), systolic),
                                      (("8462-4", "Diastolic blood pressure"), diastolic)))]


def _labs(rng: np.random.Generator, pid: str, t: dt.datetime, chronic: dict[str, Code],
          onsets: dict[str, dt.datetime]) -> list[Resource]:
    """An adult's HbA1c, glucose and cholesterol at ``t``."""
    diabetes = "diabetes" in chronic
    if diabetes and t >= onsets["diabetes"]:
        # high at diagnosis, brought down by treatment over the first year or two
        years = (t - onsets["diabetes"]) / YEAR
        a1c = 6.9 + 1.6 * math.exp(-years / 1.2) + rng.normal(0.0, 0.5)
        glucose = 20.0 * a1c + rng.normal(0.0, 20.0)
    elif diabetes:  # creeping up in the years before the diagnosis
        years = (onsets["diabetes"] - t) / YEAR
        a1c, glucose = 6.4 - 0.15 * min(years, 5.0) + rng.normal(0.0, 0.2), rng.normal(115.0, 10.0)
    elif "prediabetes" in chronic:
        a1c, glucose = rng.normal(6.0, 0.2), rng.normal(110.0, 8.0)
    else:
        a1c, glucose = rng.normal(5.3, 0.25), rng.normal(92.0, 8.0)
    chol = rng.normal(235.0, 30.0) if "hyperlipidemia" in chronic else rng.normal(185.0, 25.0)
    return [
        _observation(rng, pid, t, "laboratory", ("4548-4", "Hemoglobin A1c/Hemoglobin.total in Blood"),
                     round(float(np.clip(a1c, 4.0, 14.0)), 1), "%"),
        _observation(rng, pid, t, "laboratory", ("2339-0", "Glucose [Mass/volume] in Blood"),
                     round(float(np.clip(glucose, 60.0, 450.0))), "mg/dL"),
        _observation(rng, pid, t, "laboratory",
                     ("2093-3", "Cholesterol [Mass/volume] in Serum or Plasma"),
                     round(float(np.clip(chol, 100.0, 400.0))), "mg/dL")]


def draw_observations(rng: np.random.Generator, pid: str, chronic: dict[str, Code], onsets: dict[str, dt.datetime],
                      birth: dt.datetime, end: dt.datetime, male: bool, visits: list[dt.datetime]) -> list[Resource]:
    """The patient's Observations: vital signs at up to six recent visits and, for adults drawn
    to have labs, labs at the same moments; a type 2 diabetes diagnosed in the last six years
    adds lab visits at the diagnosis and 3, 6 and 12 months after."""
    first = birth + DAY
    times = _visit_times(rng, first, end, visits)
    body = _physique(rng, chronic, male)
    diabetes = "diabetes" in chronic
    labs = rng.random() < (0.9 if diabetes or "hyperlipidemia" in chronic else 0.6)
    onset = onsets.get("diabetes")
    if diabetes and labs and onset is not None and onset >= max(first + 18 * YEAR, end - 6 * YEAR):
        # a diagnosis made in the window is made on an HbA1c, and followed up at 3, 6 and 12 months
        follow = [onset + months * YEAR / 12 for months in (0, 3, 6, 12)]
        times = sorted({*times, *(t for t in follow if t < end)})
    out: list[Resource] = []
    for t in times:
        age = (t - birth) / YEAR
        out += _vitals(rng, pid, t, age, body)
        if labs and age >= 18:
            out += _labs(rng, pid, t, chronic, onsets)
    return out
