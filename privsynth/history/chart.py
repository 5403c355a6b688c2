"""One patient's FHIR R4 record read as a clinician reads it: a :class:`Chart`.

Input: one patient's resources as plain FHIR R4 JSON dicts (Patient, Encounter, Condition,
Observation, MedicationRequest, Procedure; other types are ignored), as
:func:`~privsynth.history.export.iter_patients` groups them (re-exported here).
:func:`build_chart` parses one patient once; :func:`chart_of` reuses the parse while the
same list object is passed again (an identity cache of one entry).

Code lists: the condition groups (heart_failure, coronary_disease, atrial_fibrillation,
stroke, alzheimers, copd, hypertension, diabetes) and the blood-pressure panel codes are
the public SNOMED CT / LOINC lists of ``schemas/patient-core.yaml`` (``code_groups``).
The red flags that read charts are in :mod:`privsynth.history.redflag`.
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from privsynth.history.export import RESOURCE_TYPES as RESOURCE_TYPES  # re-exported: read where charts are
from privsynth.history.export import Resource as Resource
from privsynth.history.export import aliases, ref_id
from privsynth.history.export import iter_patients as iter_patients

CONDITION_GROUPS: tuple[tuple[str, str], ...] = (
    ("heart_failure", "heart failure"),
    ("coronary_disease", "coronary disease"),
    ("atrial_fibrillation", "atrial fibrillation"),
    ("stroke", "stroke"),
    ("alzheimers", "Alzheimer's"),
    ("copd", "COPD"),
    ("hypertension", "hypertension"),
    ("diabetes", "type 2 diabetes"),
)
# Type 1 diabetes begins in childhood: the "type 2 diabetes" onset flag and distribution leave
# it out of patient-core's diabetes group (the antidiabetic flag keeps every diabetes code).
TYPE_1_DIABETES = frozenset({"46635009"})
INPATIENT_CLASSES = frozenset({"IMP", "ACUTE", "NONAC"})

SNOMED, LOINC, RXNORM = "snomed", "loinc", "rxnorm"
_SYSTEMS = {
    "http://snomed.info/sct": SNOMED,
    "http://loinc.org": LOINC,
    "http://www.nlm.nih.gov/research/umls/rxnorm": RXNORM,
}
COLONOSCOPY = frozenset({"73761001"})
MAMMOGRAPHY = frozenset({"71651007"})
HBA1C = frozenset({"4548-4"})
CHOLESTEROL = frozenset({"2093-3"})
GLUCOSE = frozenset({"2339-0"})
BODY_HEIGHT = frozenset({"8302-2"})
BODY_WEIGHT = frozenset({"29463-7"})
BMI = frozenset({"39156-5"})
# Paperwork after a death is not care after it: a death certification encounter (SNOMED
# 308646001, as Synthea writes it) and a cause-of-death observation (LOINC 69453-9).
DEATH_CERTIFICATION = frozenset({"308646001"})
CAUSE_OF_DEATH = frozenset({"69453-9"})
SYSTOLIC, DIASTOLIC = "8480-6", "8462-4"


# -- one patient's chart -------------------------------------------------------------------


def day_of(value: Any) -> dt.date | None:
    """The calendar day of a FHIR date or dateTime as written (its local day; a year or a
    year-month is its first day).

    >>> day_of("2019-05-05T23:38:05-05:00"), day_of("1980-07"), day_of(None)
    (datetime.date(2019, 5, 5), datetime.date(1980, 7, 1), None)
    """
    if not isinstance(value, str) or len(value) < 4:
        return None
    try:
        year = int(value[0:4])
        month = int(value[5:7]) if len(value) >= 7 else 1
        day = int(value[8:10]) if len(value) >= 10 else 1
        return dt.date(year, month, day)
    except ValueError:
        return None


def _instant(value: Any) -> dt.datetime | None:
    if not isinstance(value, str):
        return None
    try:
        moment = dt.datetime.fromisoformat(value)
    except ValueError:
        d = day_of(value)
        return dt.datetime(d.year, d.month, d.day) if d else None
    return moment.replace(tzinfo=None) - (moment.utcoffset() or dt.timedelta())


def age_at(birth: dt.date, day: dt.date) -> int:
    """Completed years of age on ``day``.

    >>> age_at(dt.date(2000, 6, 15), dt.date(2018, 6, 14)), age_at(dt.date(2000, 6, 15), dt.date(2018, 6, 15))
    (17, 18)
    """
    return day.year - birth.year - ((day.month, day.day) < (birth.month, birth.day))


def add_years(day: dt.date, years: int) -> dt.date:
    try:
        return day.replace(year=day.year + years)
    except ValueError:  # 29 February
        return day.replace(year=day.year + years, day=28)


Codes = frozenset[tuple[str, str]]


def _codes(concept: Any) -> Codes:
    """(system, code) of every coding; a system this module does not name is kept as written,
    a missing one as ''."""
    if not isinstance(concept, dict):
        return frozenset()
    out = set()
    for coding in concept.get("coding") or []:
        if isinstance(coding, dict) and coding.get("code"):
            system = coding.get("system") or ""
            out.add((_SYSTEMS.get(system, system), str(coding["code"])))
    return frozenset(out)


def has_code(codes: Codes, system: str, wanted: frozenset[str]) -> bool:
    return any(code in wanted and sys_ in (system, "") for sys_, code in codes)


def _words(concept: Any) -> str:
    if not isinstance(concept, dict):
        return ""
    parts = [str(concept.get("text") or "")]
    parts += [str(c.get("display") or "") for c in concept.get("coding") or [] if isinstance(c, dict)]
    return " ".join(parts).lower()


def _quantity(q: Any) -> float | None:
    if isinstance(q, dict) and isinstance(q.get("value"), int | float) and not isinstance(q.get("value"), bool):
        return float(q["value"])
    return None


def _centimetres(q: Any) -> float | None:
    value = _quantity(q)
    if value is None:
        return None
    unit = str(q.get("code") or q.get("unit") or "cm")
    return value * {"m": 100.0, "mm": 0.1, "[in_i]": 2.54, "in": 2.54, "[in_us]": 2.54}.get(unit, 1.0)


def _kilograms(q: Any) -> float | None:
    value = _quantity(q)
    if value is None:
        return None
    unit = str(q.get("code") or q.get("unit") or "kg")
    return value * {"g": 0.001, "[lb_av]": 0.45359237, "lb": 0.45359237}.get(unit, 1.0)


@dataclass(frozen=True)
class Event:
    kind: str  # resourceType
    codes: Codes
    day: dt.date | None
    words: str = ""  # lower-case text and displays (drugs)
    value: float | None = None
    systolic: float | None = None
    diastolic: float | None = None
    sort_key: str = ""  # the full timestamp, to order events of one day
    coded: bool = True
    linked: bool = False  # points at an encounter


@dataclass(frozen=True)
class Stay:
    ids: frozenset[str]
    inpatient: bool
    start: dt.date | None
    end: dt.date | None
    hours: float | None
    has_reason: bool


@dataclass(frozen=True)
class Chart:
    """What the flags need of one patient, parsed once."""

    has_patient: bool
    birth: dt.date | None
    gender: str | None
    death: dt.date | None
    deceased_no_date: bool
    conditions: tuple[Event, ...]
    observations: tuple[Event, ...]
    medications: tuple[Event, ...]
    procedures: tuple[Event, ...]
    encounters: tuple[Stay, ...]
    cited_by_findings: frozenset[str]  # encounters a Condition/Procedure/Observation points at
    cited_by_any: frozenset[str]  # encounters any resource points at
    event_days: tuple[dt.date, ...]  # every dated event
    care_days: tuple[dt.date, ...]  # the same without death certification paperwork

    def age(self, day: dt.date) -> int | None:
        return age_at(self.birth, day) if self.birth else None

    def onset_days(self, group: str) -> list[dt.date]:
        wanted = code_group(group) - TYPE_1_DIABETES if group == "diabetes" else code_group(group)
        return [c.day for c in self.conditions if c.day is not None and has_code(c.codes, SNOMED, wanted)]

    def has_condition(self, group: str) -> bool:
        wanted = code_group(group)
        return any(has_code(c.codes, SNOMED, wanted) for c in self.conditions)

    def stays(self) -> list[Stay]:
        return [s for s in self.encounters if s.inpatient]


def _encounter_class(resource: Resource) -> str | None:
    cls = resource.get("class")
    if isinstance(cls, list):  # R5 shape: a list of CodeableConcepts
        codes = [c.get("code") for cc in cls if isinstance(cc, dict) for c in cc.get("coding") or []]
        return str(codes[0]) if codes else None
    return str(cls.get("code")) if isinstance(cls, dict) and cls.get("code") else None


def _bp(resource: Resource) -> tuple[float | None, float | None]:
    systolic = diastolic = None
    for comp in resource.get("component") or []:
        if not isinstance(comp, dict):
            continue
        codes = _codes(comp.get("code"))
        if has_code(codes, LOINC, frozenset({SYSTOLIC})):
            systolic = _quantity(comp.get("valueQuantity"))
        elif has_code(codes, LOINC, frozenset({DIASTOLIC})):
            diastolic = _quantity(comp.get("valueQuantity"))
    return systolic, diastolic


def _stamp(resource: Resource) -> Any:
    """The FHIR date or dateTime that dates a resource, as written (None for other types)."""
    r, kind = resource, resource.get("resourceType")
    if kind == "Encounter":
        return (r.get("period") or {}).get("start")
    if kind == "Condition":
        return r.get("onsetDateTime") or (r.get("onsetPeriod") or {}).get("start") or r.get("recordedDate")
    if kind == "Observation":
        return r.get("effectiveDateTime") or (r.get("effectivePeriod") or {}).get("start") or r.get("issued")
    if kind == "MedicationRequest":
        return r.get("authoredOn")
    if kind == "Procedure":
        return r.get("performedDateTime") or (r.get("performedPeriod") or {}).get("start")
    return None


def _stay(r: Resource) -> Stay:
    period = r.get("period") or {}
    start, end = _instant(period.get("start")), _instant(period.get("end"))
    day = day_of(period.get("start"))
    return Stay(
        ids=frozenset(aliases(r)), inpatient=_encounter_class(r) in INPATIENT_CLASSES, start=day,
        end=day_of(period.get("end")) or day,
        hours=(end - start).total_seconds() / 3600 if start and end else None,
        has_reason=bool(r.get("reasonCode") or r.get("reasonReference")))


def _condition(r: Resource, stamp: Any, linked: bool) -> Event:
    return Event("Condition", _codes(r.get("code")), day_of(stamp), sort_key=str(stamp or ""))


def _mg_per_dl(q: Any, per_mmol: float) -> float | None:
    """A serum concentration in mg/dL; a value in mmol/L times ``per_mmol`` (the molar mass / 10)."""
    value = _quantity(q)
    if value is None:
        return None
    return value * per_mmol if "mmol" in str(q.get("code") or q.get("unit") or "").lower() else value


def _observation(r: Resource, stamp: Any, linked: bool) -> Event:
    codes = _codes(r.get("code"))
    q = r.get("valueQuantity")
    value = (_centimetres(q) if has_code(codes, LOINC, BODY_HEIGHT)
             else _kilograms(q) if has_code(codes, LOINC, BODY_WEIGHT)
             else _mg_per_dl(q, 18.016) if has_code(codes, LOINC, GLUCOSE)
             else _mg_per_dl(q, 38.67) if has_code(codes, LOINC, CHOLESTEROL)
             else _quantity(q))
    systolic, diastolic = _bp(r)
    return Event("Observation", codes, day_of(stamp), value=value, systolic=systolic, diastolic=diastolic,
                 sort_key=str(stamp or ""), linked=linked)


def _medication(r: Resource, stamp: Any, linked: bool) -> Event:
    concept = r.get("medicationCodeableConcept")
    codes = _codes(concept)
    return Event("MedicationRequest", codes, day_of(stamp), words=_words(concept), sort_key=str(stamp or ""),
                 coded=bool(codes), linked=linked)


def _procedure(r: Resource, stamp: Any, linked: bool) -> Event:
    codes = _codes(r.get("code"))
    return Event("Procedure", codes, day_of(stamp), sort_key=str(stamp or ""), coded=bool(codes), linked=linked)


# resourceType -> how to read it as an Event (a Condition's ``linked`` stays False: no flag asks)
_EVENT_KINDS: tuple[str, ...] = ("Condition", "Observation", "MedicationRequest", "Procedure")
_READERS: dict[str, Callable[[Resource, Any, bool], Event]] = {
    "Condition": _condition, "Observation": _observation, "MedicationRequest": _medication,
    "Procedure": _procedure,
}


def _paperwork(resources: Sequence[Resource]) -> set[str]:
    """The ids of the death certification encounters."""
    return {alias for r in resources if r.get("resourceType") == "Encounter"
            and any(has_code(_codes(t), SNOMED, DEATH_CERTIFICATION) for t in r.get("type") or [])
            for alias in aliases(r)}


def _is_care(r: Resource, encounter: str | None, paperwork: set[str]) -> bool:
    """Not paperwork after a death: not in or of a death certification encounter, not a cause of death."""
    return not (aliases(r) & paperwork or encounter in paperwork
                or (r.get("resourceType") == "Observation"
                    and has_code(_codes(r.get("code")), LOINC, CAUSE_OF_DEATH)))


def _of_patient(patient: Resource | None, events: dict[str, list[Event]], encounters: list[Stay],
                findings: set[str], cited: set[str], days: list[dt.date], care: list[dt.date]) -> Chart:
    p = patient or {}
    death = day_of(p.get("deceasedDateTime"))
    return Chart(
        has_patient=patient is not None, birth=day_of(p.get("birthDate")), gender=p.get("gender"),
        death=death, deceased_no_date=p.get("deceasedBoolean") is True and death is None,
        conditions=tuple(events["Condition"]), observations=tuple(events["Observation"]),
        medications=tuple(events["MedicationRequest"]), procedures=tuple(events["Procedure"]),
        encounters=tuple(encounters), cited_by_findings=frozenset(findings), cited_by_any=frozenset(cited),
        event_days=tuple(days), care_days=tuple(care))


def build_chart(resources: Sequence[Resource]) -> Chart:
    """Parse one patient's resources into a :class:`Chart`."""
    patient = next((r for r in resources if r.get("resourceType") == "Patient"), None)
    events: dict[str, list[Event]] = {kind: [] for kind in _EVENT_KINDS}
    encounters: list[Stay] = []
    findings: set[str] = set()  # encounters a Condition/Procedure/Observation points at
    cited: set[str] = set()  # encounters any resource points at
    days: list[dt.date] = []
    care: list[dt.date] = []
    paperwork = _paperwork(resources)
    for r in resources:
        kind = r.get("resourceType")
        enc = ref_id(r.get("encounter")) if kind != "Encounter" else None
        if enc is not None:
            cited.add(enc)
            if kind in ("Condition", "Procedure", "Observation"):
                findings.add(enc)
        stamp = _stamp(r)
        if kind == "Encounter":
            encounters.append(_stay(r))
        elif kind in _EVENT_KINDS:
            events[kind].append(_READERS[kind](r, stamp, enc is not None))
        else:
            continue
        d = day_of(stamp)
        if d is not None:
            days.append(d)
            if _is_care(r, enc, paperwork):
                care.append(d)
    return _of_patient(patient, events, encounters, findings, cited, days, care)


_LAST: list[tuple[Sequence[Resource], Chart]] = []


def chart_of(resources: Sequence[Resource]) -> Chart:
    """:func:`build_chart`, reused while the same list object is passed again."""
    if _LAST and _LAST[0][0] is resources:
        return _LAST[0][1]
    chart = build_chart(resources)
    _LAST[:] = [(resources, chart)]
    return chart


@functools.cache
def _schema_groups() -> dict[str, frozenset[str]]:
    from privsynth.schema.load import load_schema

    schema = load_schema(Path(__file__).resolve().parents[1] / "schemas" / "patient-core.yaml")
    return {name: group.code_set for name, group in schema.code_groups.items()}


def code_group(name: str) -> frozenset[str]:
    """The codes of one of patient-core's public code groups (e.g. ``heart_failure``)."""
    return _schema_groups()[name]
