"""Red flags: a clinician's face-validity check of FHIR R4 patient records.

Each flag is a share among the patients its premise concerns: of the patients with heart
failure, how many have it from childhood; of the patients with an admission, how many have
one with no reason and nothing recorded; of the children, how many had a cholesterol
measured; and so on. The same functions run on a real FHIR export and on a synthetic one, so
the two can be compared side by side (:func:`compare`; ``benchmarks/believability.py``; the
face-validity audit of a release). A flag is not an error in itself (real records have
early-onset disease, repeat colonoscopies after a polyp, metformin for prediabetes); a
synthetic rate far above the real one is what betrays a generator.

The flag functions are pure: ``(resources, reference_date) -> (applies, flagged)``, reading
the patient's :class:`~privsynth.history.chart.Chart` (parsed once per patient).
"""

from __future__ import annotations

import datetime as dt
import statistics
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from privsynth.history.chart import (
    BMI,
    BODY_HEIGHT,
    BODY_WEIGHT,
    CHOLESTEROL,
    COLONOSCOPY,
    CONDITION_GROUPS,
    HBA1C,
    LOINC,
    MAMMOGRAPHY,
    RXNORM,
    SNOMED,
    Chart,
    Event,
    Resource,
    add_years,
    age_at,
    chart_of,
    code_group,
    has_code,
)

Check = Callable[[Sequence[Resource], dt.date], tuple[bool, bool]]

# RxNorm codes of the antidiabetics the example hospital and Synthea prescribe (metformin 500 mg
# ER and IR, Humulin 70/30); any drug whose name says metformin or insulin counts too.
ANTIDIABETIC_RXNORM = frozenset({"860975", "861007", "106892"})
ANTIDIABETIC_WORDS = ("metformin", "insulin")

# Drugs whose every use a clinician expects to see explained by a diagnosis the record can
# hold (FDA labels; GINA and GOLD for the inhalers): a drug named with one of these words
# and none of its conditions. Warfarin's other indications (venous thrombosis, valves) and
# furosemide's (oedema, hypertension) are not condition groups here; the real rate shows them.
INDICATED_DRUGS: dict[str, tuple[str, ...]] = {
    "warfarin": ("atrial_fibrillation", "stroke"),
    "clopidogrel": ("coronary_disease", "stroke"),
    "digoxin": ("heart_failure", "atrial_fibrillation"),
    "nitroglycerin": ("coronary_disease",),
    "albuterol": ("asthma", "copd"),
    "fluticasone": ("asthma", "copd"),
}

# Minimum plausible standing height (cm) by completed year of age, 2-17: the CDC 2000 growth
# charts' 3rd percentile of stature-for-age at the start of that year (CDC/NCHS, "Stature-for-
# age charts, 2 to 20 years", statage.csv, https://www.cdc.gov/growthcharts/percentile_data_files.htm),
# rounded to 0.1 cm. A child is flagged below HEIGHT_MARGIN times it (10 % below the 3rd
# percentile: about 3.5-5 SD below the median, short of any ordinary short stature).
CDC_STATURE_P3: dict[str, tuple[float, ...]] = {  # ages 2, 3, ..., 17
    "male": (79.9, 88.4, 94.6, 100.3, 106.1, 111.9, 117.5, 122.4,
             126.7, 130.8, 135.7, 141.7, 148.5, 154.6, 158.8, 161.3),
    "female": (78.4, 86.9, 93.1, 99.4, 105.8, 111.9, 117.3, 121.9,
               126.0, 130.7, 137.4, 144.2, 148.1, 149.7, 150.4, 150.7),
}
HEIGHT_MARGIN = 0.9


# -- the flags -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Flag:
    """One red flag: a premise (which patients it concerns) and a finding among them."""

    name: str
    sentence: str  # for a clinician: what is counted, and why it is odd
    check: Check

    def __call__(self, resources: Sequence[Resource], reference: dt.date) -> tuple[bool, bool]:
        applies, flagged = self.check(resources, reference)
        return applies, applies and flagged


def _onset_before(group: str, years: int) -> Check:
    def check(resources: Sequence[Resource], reference: dt.date) -> tuple[bool, bool]:
        c = chart_of(resources)
        days = c.onset_days(group)
        if c.birth is None or not days:
            return False, False
        return True, age_at(c.birth, min(days)) < years

    return check


def _procedure_days(c: Chart, wanted: frozenset[str]) -> list[dt.date]:
    return sorted(p.day for p in c.procedures if p.day is not None and has_code(p.codes, SNOMED, wanted))


def repeat_colonoscopy(resources: Sequence[Resource], reference: dt.date) -> tuple[bool, bool]:
    days = sorted(set(_procedure_days(chart_of(resources), COLONOSCOPY)))
    return bool(days), any(b < add_years(a, 3) for a, b in zip(days, days[1:]))


def young_colonoscopy(resources: Sequence[Resource], reference: dt.date) -> tuple[bool, bool]:
    c = chart_of(resources)
    days = _procedure_days(c, COLONOSCOPY)
    return bool(days), c.birth is not None and any(age_at(c.birth, d) < 40 for d in days)


def odd_mammography(resources: Sequence[Resource], reference: dt.date) -> tuple[bool, bool]:
    c = chart_of(resources)
    days = _procedure_days(c, MAMMOGRAPHY)
    young = c.birth is not None and any(age_at(c.birth, d) < 35 for d in days)
    return bool(days), bool(days) and (c.gender == "male" or young)


def _same_day(times: int) -> Check:
    def check(resources: Sequence[Resource], reference: dt.date) -> tuple[bool, bool]:
        c = chart_of(resources)
        orders = c.medications + c.procedures
        counts = Counter((e.kind, min(e.codes), e.day) for e in orders if e.codes and e.day is not None)
        return bool(orders), any(n >= times for n in counts.values())

    return check


def uncoded_order(resources: Sequence[Resource], reference: dt.date) -> tuple[bool, bool]:
    c = chart_of(resources)
    orders = c.medications + c.procedures
    return bool(orders), any(not e.coded for e in orders)


def _encounter_days(c: Chart) -> set[dt.date]:
    days: set[dt.date] = set()
    for s in c.encounters:
        if s.start is None:
            continue
        last = min(s.end or s.start, s.start + dt.timedelta(days=366))
        days.update(s.start + dt.timedelta(days=k) for k in range((last - s.start).days + 1))
    return days


def outside_encounters(resources: Sequence[Resource], reference: dt.date) -> tuple[bool, bool]:
    c = chart_of(resources)
    events = [e for e in c.observations + c.medications + c.procedures if e.day is not None]
    if not events:
        return False, False
    loose = [e for e in events if not e.linked]
    if not loose:
        return True, False
    days = _encounter_days(c)
    return True, any(e.day not in days for e in loose)


def frequent_admissions(resources: Sequence[Resource], reference: dt.date) -> tuple[bool, bool]:
    c = chart_of(resources)
    since = add_years(reference, -10)
    n = sum(1 for s in c.stays() if s.start is not None and since < s.start <= reference)
    return c.has_patient, n >= 10


def admission_without_reason(resources: Sequence[Resource], reference: dt.date) -> tuple[bool, bool]:
    c = chart_of(resources)
    stays = c.stays()
    return bool(stays), any(not s.has_reason and not (s.ids & c.cited_by_findings) for s in stays)


def empty_stay(resources: Sequence[Resource], reference: dt.date) -> tuple[bool, bool]:
    c = chart_of(resources)
    stays = c.stays()
    return bool(stays), any(not (s.ids & c.cited_by_any) for s in stays)


def early_hba1c(resources: Sequence[Resource], reference: dt.date) -> tuple[bool, bool]:
    days = [o.day for o in chart_of(resources).observations if o.day and has_code(o.codes, LOINC, HBA1C)]
    return bool(days), any(d.year < 1980 for d in days)


def before_birth(resources: Sequence[Resource], reference: dt.date) -> tuple[bool, bool]:
    c = chart_of(resources)
    if c.birth is None or not c.event_days:
        return False, False
    return True, min(c.event_days) < c.birth


def after_death(resources: Sequence[Resource], reference: dt.date) -> tuple[bool, bool]:
    c = chart_of(resources)
    if c.death is None:
        return False, False
    return True, any(d > c.death for d in c.care_days)


def undated_death(resources: Sequence[Resource], reference: dt.date) -> tuple[bool, bool]:
    c = chart_of(resources)
    return c.death is not None or c.deceased_no_date, c.deceased_no_date


def antidiabetic_without_diabetes(resources: Sequence[Resource], reference: dt.date) -> tuple[bool, bool]:
    c = chart_of(resources)
    treated = any(has_code(m.codes, RXNORM, ANTIDIABETIC_RXNORM) or any(w in m.words for w in ANTIDIABETIC_WORDS)
                  for m in c.medications)
    return treated, treated and not c.has_condition("diabetes")


def drug_without_indication(resources: Sequence[Resource], reference: dt.date) -> tuple[bool, bool]:
    c = chart_of(resources)
    named = [w for m in c.medications for w in INDICATED_DRUGS if w in m.words]
    return bool(named), any(not any(c.has_condition(g) for g in INDICATED_DRUGS[w]) for w in named)


def diabetic_hba1c_without_diabetes(resources: Sequence[Resource], reference: dt.date) -> tuple[bool, bool]:
    c = chart_of(resources)
    values = [o.value for o in c.observations if o.value is not None and has_code(o.codes, LOINC, HBA1C)]
    return bool(values), any(v >= 6.5 for v in values) and not c.has_condition("diabetes")


def child_cholesterol(resources: Sequence[Resource], reference: dt.date) -> tuple[bool, bool]:
    c = chart_of(resources)
    age = c.age(reference)
    if age is None or not 0 <= age < 12:
        return False, False
    return True, any(has_code(o.codes, LOINC, CHOLESTEROL) for o in c.observations)


def _pressures(c: Chart) -> list[Event]:
    panel = code_group("blood_pressure_panel")
    return [o for o in c.observations if has_code(o.codes, LOINC, panel) and o.systolic is not None
            and o.diastolic is not None]


def narrow_pulse_pressure(resources: Sequence[Resource], reference: dt.date) -> tuple[bool, bool]:
    readings = _pressures(chart_of(resources))
    if not readings:
        return False, False
    last = max(readings, key=lambda o: (o.day or dt.date.min, o.sort_key))
    assert last.systolic is not None and last.diastolic is not None
    return True, last.systolic - last.diastolic < 20


def inverted_pressure(resources: Sequence[Resource], reference: dt.date) -> tuple[bool, bool]:
    readings = _pressures(chart_of(resources))
    return bool(readings), any((o.diastolic or 0.0) >= (o.systolic or 0.0) for o in readings)


def height_limit(gender: str | None, age: int) -> float | None:
    """The shortest plausible height (cm) at ``age`` (2-17) for this sex (the lower of the two
    when the sex is not male or female): HEIGHT_MARGIN x the CDC 2000 3rd percentile.

    >>> height_limit("male", 10), height_limit(None, 16), height_limit("female", 1)
    (114.0, 135.4, None)
    """
    if not 2 <= age <= 17:
        return None
    tables = [CDC_STATURE_P3[gender]] if gender in CDC_STATURE_P3 else list(CDC_STATURE_P3.values())
    return round(HEIGHT_MARGIN * min(t[age - 2] for t in tables), 1)


def short_child(resources: Sequence[Resource], reference: dt.date) -> tuple[bool, bool]:
    c = chart_of(resources)
    age = c.age(reference)
    if c.birth is None or age is None or not 2 <= age <= 17:
        return False, False
    heights = [o for o in c.observations if o.day is not None and o.value is not None
               and has_code(o.codes, LOINC, BODY_HEIGHT) and 2 <= age_at(c.birth, o.day) <= 17]
    if not heights:
        return False, False
    last = max(heights, key=lambda o: (o.day or dt.date.min, o.sort_key))
    assert last.day is not None and last.value is not None
    limit = height_limit(c.gender, age_at(c.birth, last.day))
    return True, limit is not None and last.value < limit


def implausible_bmi(resources: Sequence[Resource], reference: dt.date) -> tuple[bool, bool]:
    values = [o.value for o in chart_of(resources).observations
              if o.value is not None and has_code(o.codes, LOINC, BMI)]
    return bool(values), any(not 12 <= v <= 70 for v in values)


def bmi_mismatch(resources: Sequence[Resource], reference: dt.date) -> tuple[bool, bool]:
    by_day: dict[dt.date, dict[str, float]] = defaultdict(dict)
    for o in chart_of(resources).observations:
        if o.day is None or o.value is None:
            continue
        for name, codes in (("bmi", BMI), ("weight", BODY_WEIGHT), ("height", BODY_HEIGHT)):
            if has_code(o.codes, LOINC, codes):
                by_day[o.day][name] = o.value
    trios = [v for v in by_day.values() if len(v) == 3 and v["height"] > 0]
    mismatched = any(abs(v["weight"] / (v["height"] / 100) ** 2 - v["bmi"]) > 0.1 * v["bmi"] for v in trios)
    return bool(trios), mismatched


UNCODED_ORDER = "drug or procedure without a code"


def _flags() -> tuple[Flag, ...]:
    out = [Flag(f"{label} onset under 18",
                f"Of the patients with {label}, the share whose first onset (Condition.onsetDateTime, "
                "else recordedDate) was before age 18.", _onset_before(group, 18))
           for group, label in CONDITION_GROUPS]
    out += [
        Flag("Alzheimer's before 50", "Of the patients with Alzheimer's disease, the share with onset before 50 "
             "(familial early-onset disease exists, but is rare).", _onset_before("alzheimers", 50)),
        Flag("atrial fibrillation before 30", "Of the patients with atrial fibrillation, the share with onset "
             "before 30.", _onset_before("atrial_fibrillation", 30)),
        Flag("stroke before 30", "Of the patients with a stroke, the share with the first before 30.",
             _onset_before("stroke", 30)),
        Flag("repeat colonoscopy within 3 years", "Of the patients with a colonoscopy, the share with two on "
             "different days less than 3 years apart (screening repeats every 10 years; surveillance after "
             "polyps sooner).", repeat_colonoscopy),
        Flag("colonoscopy under 40", "Of the patients with a colonoscopy, the share with one before age 40 "
             "(screening starts at 45).", young_colonoscopy),
        Flag("mammography in a man or under 35", "Of the patients with a mammography, the share who are men or "
             "had one before 35.", odd_mammography),
        Flag("same drug or procedure >=2 times on one day", "Of the patients with a prescription or procedure, "
             "the share with the same coded drug or procedure twice or more on one calendar day.", _same_day(2)),
        Flag("same drug or procedure >=3 times on one day", "As above, three times or more.", _same_day(3)),
        Flag(UNCODED_ORDER, "Of the patients with a prescription or procedure, the share "
             "with one that names no drug or procedure (no coding).", uncoded_order),
        Flag("lab, drug or procedure outside any encounter", "Of the patients with a dated observation, "
             "prescription or procedure, the share with one that names no encounter and falls on a day no "
             "encounter covers (care happens at a visit).", outside_encounters),
        Flag(">=10 inpatient admissions in 10 years", "Of all patients, the share with 10 or more inpatient "
             "stays (class IMP, ACUTE or NONAC) starting in the 10 years before the reference date.",
             frequent_admissions),
        Flag("admission without a reason", "Of the patients with an inpatient stay, the share with one that has "
             "no reasonCode or reasonReference and no Condition, Procedure or Observation recorded in it.",
             admission_without_reason),
        Flag("inpatient stay with nothing recorded", "Of the patients with an inpatient stay, the share with "
             "one that no resource (condition, observation, prescription, procedure) refers to.", empty_stay),
        Flag("HbA1c before 1980", "Of the patients with an HbA1c (LOINC 4548-4), the share with one before 1980 "
             "(it entered diabetes care in the late 1970s).", early_hba1c),
        Flag("event before birth", "Of the patients with a birth date and a dated event, the share with an "
             "encounter, condition, lab, prescription or procedure before birth.", before_birth),
        Flag("event after death", "Of the patients with a date of death, the share with an event on a later "
             "day (a death certification encounter and the cause of death excepted).", after_death),
        Flag("deceased without a date", "Of the deceased patients, the share recorded as deceased "
             "(deceasedBoolean) with no date of death.", undated_death),
        Flag("antidiabetic without diabetes", "Of the patients prescribed metformin or insulin, the share with "
             "no diabetes diagnosis (metformin for prediabetes or PCOS is legitimate, but uncommon).",
             antidiabetic_without_diabetes),
        Flag("drug without an indication", "Of the patients prescribed warfarin, clopidogrel, digoxin, "
             "nitroglycerin or an asthma inhaler (albuterol, fluticasone), the share with one and none of the "
             "conditions it is prescribed for (atrial fibrillation or stroke; coronary disease or stroke; heart "
             "failure or atrial fibrillation; coronary disease; asthma or COPD).", drug_without_indication),
        Flag("HbA1c >= 6.5 % without diabetes", "Of the patients with an HbA1c, the share with one in the "
             "diabetic range (>= 6.5 %, the ADA diagnostic threshold) and no diabetes diagnosis.",
             diabetic_hba1c_without_diabetes),
        Flag("child with cholesterol measured", "Of the patients under 12 at the reference date, the share with "
             "a total cholesterol (LOINC 2093-3); universal screening is at 9-11 years, earlier only if at risk.",
             child_cholesterol),
        Flag("pulse pressure < 20 mmHg", "Of the patients with a blood pressure, the share whose latest reading "
             "has systolic minus diastolic below 20 mmHg.", narrow_pulse_pressure),
        Flag("diastolic >= systolic", "Of the patients with a blood pressure, the share with any reading whose "
             "diastolic is at least the systolic (impossible).", inverted_pressure),
        Flag("child height below growth limit", "Of the patients aged 2-17 with a height measured at 2-17, the "
             "share whose latest is below 0.9 x the CDC 2000 3rd percentile for age and sex.", short_child),
        Flag("BMI below 12 or above 70", "Of the patients with a BMI (LOINC 39156-5), the share with any value "
             "outside 12-70 kg/m2.", implausible_bmi),
        Flag("BMI disagrees with weight and height", "Of the patients with a BMI, weight and height on one day, "
             "the share where the BMI is more than 10 % off weight / height^2.", bmi_mismatch),
    ]
    return tuple(out)


FLAGS: tuple[Flag, ...] = _flags()


# -- summaries -------------------------------------------------------------------------------


@dataclass(frozen=True)
class FlagCount:
    name: str
    sentence: str
    premise: int  # patients the flag concerns
    flagged: int

    @property
    def rate(self) -> float | None:
        return self.flagged / self.premise if self.premise else None


@dataclass(frozen=True)
class Distribution:
    """A summary distribution (not a flag): its size, mean, median and, for ages, the share
    under 18."""

    name: str
    n: int
    mean: float | None
    median: float | None
    under_18: float | None = None


@dataclass(frozen=True)
class Summary:
    patients: int
    reference: dt.date
    flags: tuple[FlagCount, ...]
    distributions: tuple[Distribution, ...] = field(default=())
    any_flagged: int = 0  # patients with at least one flag

    def flag(self, name: str) -> FlagCount:
        return next(f for f in self.flags if f.name == name)

    def distribution(self, name: str) -> Distribution:
        return next(d for d in self.distributions if d.name == name)

    def to_dict(self) -> dict[str, Any]:
        return {"patients": self.patients, "reference": self.reference.isoformat(), "any_flagged": self.any_flagged,
                "flags": [{"name": f.name, "sentence": f.sentence, "premise": f.premise, "flagged": f.flagged,
                           "rate": f.rate} for f in self.flags],
                "distributions": [vars(d) for d in self.distributions]}


def _distribution(name: str, values: list[float], under_18: bool = False) -> Distribution:
    if not values:
        return Distribution(name, 0, None, None, None)
    return Distribution(name, len(values), statistics.fmean(values), statistics.median(values),
                        sum(v < 18 for v in values) / len(values) if under_18 else None)


def summarise(patients: Iterable[Sequence[Resource]], reference: dt.date,
              flags: Sequence[Flag] = FLAGS) -> Summary:
    """Every flag's premise and flagged counts over ``patients``, and the distributions: age at
    the reference date, encounters per patient, inpatient length of stay (days), age at onset
    per condition (the first onset); and how many patients carry at least one flag."""
    premise = [0] * len(flags)
    flagged = [0] * len(flags)
    n = anyone = 0
    encounters: list[float] = []
    ages: list[float] = []
    stays: list[float] = []
    onsets: dict[str, list[float]] = {group: [] for group, _ in CONDITION_GROUPS}
    for resources in patients:
        chart = chart_of(resources)
        if not chart.has_patient:
            continue
        n += 1
        hits = 0
        for i, flag in enumerate(flags):
            applies, hit = flag(resources, reference)
            premise[i] += applies
            flagged[i] += applies and hit
            hits += applies and hit
        anyone += hits > 0
        encounters.append(len(chart.encounters))
        age = chart.age(reference)
        if age is not None:
            ages.append(age)
        stays += [s.hours / 24 for s in chart.stays() if s.hours is not None]
        if chart.birth is not None:
            for group in onsets:
                days = chart.onset_days(group)
                if days:
                    onsets[group].append(age_at(chart.birth, min(days)))
    dists = [_distribution("age at the reference date", ages, under_18=True),
             _distribution("encounters per patient", encounters),
             _distribution("inpatient length of stay (days)", stays)]
    dists += [_distribution(f"age at onset: {label}", onsets[group], under_18=True)
              for group, label in CONDITION_GROUPS]
    return Summary(n, reference, tuple(FlagCount(f.name, f.sentence, p, k)
                                       for f, p, k in zip(flags, premise, flagged)), tuple(dists), anyone)


@dataclass(frozen=True)
class Comparison:
    """One flag, real against synthetic. ``miss``: the synthetic rate exceeds
    max(2 x the real rate, 1 %) (a real rate of None, no patient in the premise, counts as 0)."""

    name: str
    real_premise: int
    real_flagged: int
    real_rate: float | None
    synthetic_premise: int
    synthetic_flagged: int
    synthetic_rate: float | None
    miss: bool


MISS_FLOOR = 0.01


def is_miss(real_rate: float | None, synthetic_rate: float | None, ratio: float = 2.0,
            floor: float = MISS_FLOOR) -> bool:
    """Whether a synthetic rate is a miss against the real one: above max(ratio x real, floor).

    >>> is_miss(0.0, 0.011), is_miss(0.1, 0.2), is_miss(0.1, 0.21), is_miss(None, None)
    (True, False, True, False)
    """
    if synthetic_rate is None:
        return False
    return synthetic_rate > max(ratio * (real_rate or 0.0), floor)


def compare(real: Summary, synthetic: Summary, ratio: float = 2.0, floor: float = MISS_FLOOR) -> list[Comparison]:
    """Each flag of ``real`` (in its order) beside the synthetic one of the same name; a miss
    is a synthetic rate above max(``ratio`` x real, ``floor``)."""
    rows = []
    for r in real.flags:
        s = next((f for f in synthetic.flags if f.name == r.name), FlagCount(r.name, r.sentence, 0, 0))
        rows.append(Comparison(r.name, r.premise, r.flagged, r.rate, s.premise, s.flagged, s.rate,
                               is_miss(r.rate, s.rate, ratio, floor)))
    return rows


def max_date(patients: Iterable[Sequence[Resource]]) -> dt.date | None:
    """The latest event day (or date of death) of any patient: a reference date for an export
    that does not state one."""
    latest: dt.date | None = None
    for resources in patients:
        c = chart_of(resources)
        for d in (*c.event_days, *(x for x in (c.death,) if x)):
            if latest is None or d > latest:
                latest = d
    return latest
