"""The red flags' checks: pure functions ``(resources, reference_date) -> (applies, flagged)``.

Each reads the patient's :class:`~privsynth.history.chart.Chart` (parsed once per patient,
:func:`~privsynth.history.chart.chart_of`): ``applies`` says whether the patient is in the
flag's premise, ``flagged`` whether the finding is there. The flags that name them, with a
sentence for a clinician, are in :mod:`privsynth.history.redflag.flag`.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence

from privsynth.history.chart import (
    BMI,
    BODY_HEIGHT,
    BODY_WEIGHT,
    CHOLESTEROL,
    COLONOSCOPY,
    GLUCOSE,
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
# The tallest: the same charts' 97th percentile at the END of each year of age 2-17 (the
# half-month point of months 36, 48, ..., 216), rounded to 0.1 cm; a child is flagged above
# TALL_MARGIN times it (about 4.5 SD above the median at 5, 3 SD at 16).
CDC_STATURE_P97: dict[str, tuple[float, ...]] = {  # ages 2, 3, ..., 17
    "male": (102.9, 110.5, 117.8, 125.1, 132.3, 139.3, 145.7, 151.5,
             157.3, 163.7, 171.3, 178.8, 184.1, 187.1, 188.6, 189.5),
    "female": (101.8, 109.5, 117.4, 125.3, 132.7, 139.4, 145.4, 151.3,
               158.1, 165.2, 170.2, 172.9, 174.2, 174.8, 175.1, 175.3),
}
TALL_MARGIN = 1.1


# -- the checks ------------------------------------------------------------------------------


def onset_before(group: str, years: int) -> Check:
    """Of the patients with a condition of ``group``, whether the first onset was before ``years`` of age."""

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


def same_day(times: int) -> Check:
    """Of the patients with a prescription or procedure, whether one coded drug or procedure
    comes ``times`` times or more on one calendar day."""

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


def height_limit(gender: str | None, age: int, tall: bool = False) -> float | None:
    """The shortest plausible height (cm) at ``age`` (2-17) for this sex, HEIGHT_MARGIN x the
    CDC 2000 3rd percentile; with ``tall``, the tallest, TALL_MARGIN x the 97th percentile at
    the end of that year (when the sex is not male or female, the more lenient of the two).

    >>> height_limit("male", 10), height_limit(None, 16), height_limit("female", 1)
    (114.0, 135.4, None)
    >>> height_limit("male", 3, tall=True), height_limit(None, 16, tall=True)
    (121.6, 207.5)
    """
    if not 2 <= age <= 17:
        return None
    table, margin, pick = (CDC_STATURE_P97, TALL_MARGIN, max) if tall else (CDC_STATURE_P3, HEIGHT_MARGIN, min)
    tables = [table[gender]] if gender in table else list(table.values())
    return round(margin * pick(t[age - 2] for t in tables), 1)


def _child_height(tall: bool) -> Check:
    """Of the patients aged 2-17 with a height measured at 2-17, whether the latest is below
    (or, with ``tall``, above) the growth limit for its age and sex (:func:`height_limit`)."""

    def check(resources: Sequence[Resource], reference: dt.date) -> tuple[bool, bool]:
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
        limit = height_limit(c.gender, age_at(c.birth, last.day), tall)
        return True, limit is not None and (last.value > limit if tall else last.value < limit)

    return check


short_child = _child_height(tall=False)
tall_child = _child_height(tall=True)


def onset_after(later: str, earlier: str) -> Check:
    """Of the patients with both conditions dated, whether the first onset of ``later`` (a
    stage that precedes ``earlier``, such as prediabetes before diabetes) came after it."""

    def check(resources: Sequence[Resource], reference: dt.date) -> tuple[bool, bool]:
        c = chart_of(resources)
        first, then = c.onset_days(later), c.onset_days(earlier)
        if not first or not then:
            return False, False
        return True, min(first) > min(then)

    return check


def _values(c: Chart, codes: frozenset[str]) -> list[Event]:
    return sorted((o for o in c.observations if o.value is not None and o.day is not None
                   and has_code(o.codes, LOINC, codes)), key=lambda o: (o.day or dt.date.min, o.sort_key))


def low_hba1c(resources: Sequence[Resource], reference: dt.date) -> tuple[bool, bool]:
    values = _values(chart_of(resources), HBA1C)
    return bool(values), any((o.value or 0.0) < 4.0 for o in values)


def glucose_without_diabetes(resources: Sequence[Resource], reference: dt.date) -> tuple[bool, bool]:
    c = chart_of(resources)
    values = _values(c, GLUCOSE)
    return bool(values), any((o.value or 0.0) >= 200 for o in values) and not c.has_condition("diabetes")


def lab_swing(codes: frozenset[str], ratio: float, years: int) -> Check:
    """Of the patients with two values of a lab ``years`` or less apart, whether one of two
    consecutive such values is more than ``ratio`` times the other."""

    def check(resources: Sequence[Resource], reference: dt.date) -> tuple[bool, bool]:
        values = _values(chart_of(resources), codes)
        pairs = [(a, b) for a, b in zip(values, values[1:])
                 if a.day is not None and b.day is not None and b.day <= add_years(a.day, years)]
        swung = any(max(a.value or 0.0, b.value or 0.0) > ratio * min(a.value or 0.0, b.value or 0.0)
                    for a, b in pairs)
        return bool(pairs), swung

    return check


def living_centenarian(resources: Sequence[Resource], reference: dt.date) -> tuple[bool, bool]:
    c = chart_of(resources)
    age = c.age(reference)
    if age is None or c.death is not None or c.deceased_no_date:
        return False, False
    return True, age >= 100


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
