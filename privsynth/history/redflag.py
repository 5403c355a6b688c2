"""Red flags: a clinician's face-validity check of FHIR R4 patient records.

Each flag is a share among the patients its premise concerns: of the patients with heart
failure, how many have it from childhood; of the patients with an admission, how many have
one with no reason and nothing recorded; of the children, how many had a cholesterol
measured; and so on. The same functions run on a real FHIR export and on a synthetic one, so
the two can be compared side by side (:func:`compare`; ``benchmarks/believability.py``).
A flag is not an error in itself (real records have early-onset disease, repeat
colonoscopies after a polyp, metformin for prediabetes); a synthetic rate far above the real
one is what betrays a generator.

Input: one patient's resources as plain FHIR R4 JSON dicts (Patient, Encounter, Condition,
Observation, MedicationRequest, Procedure; other types are ignored) and a reference date
(the export's "now"). :func:`iter_patients` groups the resources of FHIR files or
directories (Bulk Data NDJSON or per-patient transaction Bundles, optionally gzipped) by
patient.

Code lists: the condition groups (heart_failure, coronary_disease, atrial_fibrillation,
stroke, alzheimers, copd, hypertension, diabetes) and the blood-pressure panel codes are
the public SNOMED CT / LOINC lists of ``schemas/patient-core.yaml`` (``code_groups``).

The flag functions are pure: ``(resources, reference_date) -> (applies, flagged)``. They
parse a patient once and reuse the parse for the next flag while the same list object is
passed (an identity cache of one entry); do not mutate a list between two calls.
"""

from __future__ import annotations

import datetime as dt
import functools
import gzip
import statistics
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

Resource = dict[str, Any]
Check = Callable[[Sequence[Resource], dt.date], tuple[bool, bool]]

RESOURCE_TYPES = frozenset({"Patient", "Encounter", "Condition", "Observation", "MedicationRequest", "Procedure"})
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
BODY_HEIGHT = frozenset({"8302-2"})
BODY_WEIGHT = frozenset({"29463-7"})
BMI = frozenset({"39156-5"})
# Paperwork after a death is not care after it: a death certification encounter (SNOMED
# 308646001, as Synthea writes it) and a cause-of-death observation (LOINC 69453-9).
DEATH_CERTIFICATION = frozenset({"308646001"})
CAUSE_OF_DEATH = frozenset({"69453-9"})
SYSTOLIC, DIASTOLIC = "8480-6", "8462-4"
# RxNorm codes of the antidiabetics the example hospital and Synthea prescribe (metformin 500 mg
# ER and IR, Humulin 70/30); any drug whose name says metformin or insulin counts too.
ANTIDIABETIC_RXNORM = frozenset({"860975", "861007", "106892"})
ANTIDIABETIC_WORDS = ("metformin", "insulin")

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


# -- reading -------------------------------------------------------------------------------

# The elements the flags read; iter_patients keeps only these (a 6,000-patient export then
# fits in a few hundred MB).
_KEEP = frozenset({
    "resourceType", "id", "_fullUrl", "subject", "patient", "encounter", "code", "medicationCodeableConcept",
    "class", "type", "period", "reasonCode", "reasonReference", "onsetDateTime", "onsetPeriod", "recordedDate",
    "effectiveDateTime", "effectivePeriod", "issued", "valueQuantity", "component", "authoredOn",
    "performedDateTime", "performedPeriod", "birthDate", "gender", "deceasedDateTime", "deceasedBoolean",
})


def _slim(resource: Resource) -> Resource:
    return {k: v for k, v in resource.items() if k in _KEEP}


def ref_id(reference: Any) -> str | None:
    """The id a reference points at: ``Patient/<id>``, ``urn:uuid:<id>`` or an absolute URL
    (``.../Patient/<id>/_history/2``) give ``<id>``; a conditional reference gives None.

    >>> ref_id("Patient/p1"), ref_id("urn:uuid:ab-12"), ref_id("http://x/fhir/Encounter/e9/_history/2")
    ('p1', 'ab-12', 'e9')
    """
    if isinstance(reference, dict):
        reference = reference.get("reference")
    if not isinstance(reference, str) or not reference or "?" in reference:
        return None
    if reference.startswith(("urn:uuid:", "urn:oid:")):
        return reference.split(":", 2)[2]
    parts = reference.rstrip("/").split("/")
    if "_history" in parts:
        parts = parts[: parts.index("_history")]
    return parts[-1] or None


def _patient_ref(resource: Resource) -> str | None:
    return ref_id(resource.get("subject") or resource.get("patient"))


def _aliases(resource: Resource) -> set[str]:
    out = {str(resource["id"])} if resource.get("id") else set()
    full = ref_id(resource.get("_fullUrl"))
    if full:
        out.add(full)
    return out


def _files(paths: str | Path | Iterable[str | Path]) -> list[Path]:
    from privsynth.fhir.read import ReadStats, discover

    items: list[str | Path] = [paths] if isinstance(paths, str | Path) else list(paths)
    return discover(items, ReadStats())


def _load(path: Path) -> bytes:
    if path.name.endswith(".gz"):
        with gzip.open(path, "rb") as fh:
            return fh.read()
    return path.read_bytes()


def _lines(path: Path) -> Iterator[bytes]:
    opener: Any = gzip.open if path.name.endswith(".gz") else open
    with opener(path, "rb") as fh:
        yield from fh


def _bundle_resources(doc: Any) -> list[Resource]:
    if not isinstance(doc, dict):
        return []
    if doc.get("resourceType") != "Bundle":
        return [_slim(doc)] if doc.get("resourceType") in RESOURCE_TYPES else []
    out = []
    for entry in doc.get("entry") or []:
        resource = entry.get("resource") if isinstance(entry, dict) else None
        if not isinstance(resource, dict) or resource.get("resourceType") not in RESOURCE_TYPES:
            continue
        resource = _slim(resource)
        full = entry.get("fullUrl")
        if isinstance(full, str) and ref_id(full) != resource.get("id"):
            resource["_fullUrl"] = full  # references to it use the fullUrl (privsynth.fhir.read does the same)
        out.append(resource)
    return out


def iter_patients(paths: str | Path | Iterable[str | Path]) -> Iterator[list[Resource]]:
    """Each patient's resources (the Patient first), from FHIR files or directories.

    Per-patient Bundles (``*.json[.gz]``, one Patient whose resources all point at it) are
    yielded as they are read. Everything else (Bulk Data ``<Type>[.<n>].ndjson[.gz]``,
    multi-patient Bundles) is grouped by ``subject`` / ``patient`` reference
    (``Patient/<id>``, ``urn:uuid:<id>``) and yielded at the end. Resources of other types,
    and resources of patients with no Patient resource, are left out. Only the elements the
    flags read are kept.
    """
    # resources waiting for their patient are kept as compact JSON (a third of their size as dicts)
    pending: dict[str, list[bytes]] = defaultdict(list)
    patients: list[Resource] = []

    def hold(resource: Resource) -> None:
        if resource["resourceType"] == "Patient":
            patients.append(resource)
        else:
            key = _patient_ref(resource)
            if key is not None:
                # copied: orjson's own output keeps a 4 KiB buffer per resource
                pending[key].append(bytes(bytearray(orjson.dumps(resource))))

    for path in _files(paths):
        if path.name.endswith((".ndjson", ".ndjson.gz")):
            for line in _lines(path):
                if not line.strip():
                    continue
                resource = orjson.loads(line)
                if isinstance(resource, dict) and resource.get("resourceType") in RESOURCE_TYPES:
                    hold(_slim(resource))
            continue
        resources = _bundle_resources(orjson.loads(_load(path)))
        own = [r for r in resources if r["resourceType"] == "Patient"]
        if len(own) == 1:
            names = _aliases(own[0])
            if all(_patient_ref(r) in names for r in resources if r is not own[0]):
                yield [own[0]] + [r for r in resources if r is not own[0]]
                continue
        for resource in resources:
            hold(resource)
    for patient in patients:
        group = [patient]
        for name in sorted(_aliases(patient)):
            group.extend(orjson.loads(raw) for raw in pending.pop(name, ()))
        yield group


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


def _has(codes: Codes, system: str, wanted: frozenset[str]) -> bool:
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
        return [c.day for c in self.conditions if c.day is not None and _has(c.codes, SNOMED, wanted)]

    def has_condition(self, group: str) -> bool:
        wanted = code_group(group)
        return any(_has(c.codes, SNOMED, wanted) for c in self.conditions)

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
        if _has(codes, LOINC, frozenset({SYSTOLIC})):
            systolic = _quantity(comp.get("valueQuantity"))
        elif _has(codes, LOINC, frozenset({DIASTOLIC})):
            diastolic = _quantity(comp.get("valueQuantity"))
    return systolic, diastolic


def build_chart(resources: Sequence[Resource]) -> Chart:
    """Parse one patient's resources into a :class:`Chart`."""
    patient = next((r for r in resources if r.get("resourceType") == "Patient"), None)
    conditions: list[Event] = []
    observations: list[Event] = []
    medications: list[Event] = []
    procedures: list[Event] = []
    encounters: list[Stay] = []
    findings: set[str] = set()
    cited: set[str] = set()
    days: list[dt.date] = []
    care: list[dt.date] = []
    paperwork = {alias for r in resources if r.get("resourceType") == "Encounter"
                 and any(_has(_codes(t), SNOMED, DEATH_CERTIFICATION) for t in r.get("type") or [])
                 for alias in _aliases(r)}
    for r in resources:
        kind = r.get("resourceType")
        enc = ref_id(r.get("encounter")) if kind != "Encounter" else None
        if enc is not None:
            cited.add(enc)
            if kind in ("Condition", "Procedure", "Observation"):
                findings.add(enc)
        if kind == "Encounter":
            period = r.get("period") or {}
            start, end = _instant(period.get("start")), _instant(period.get("end"))
            day = day_of(period.get("start"))
            encounters.append(Stay(
                ids=frozenset(_aliases(r)), inpatient=_encounter_class(r) in INPATIENT_CLASSES, start=day,
                end=day_of(period.get("end")) or day,
                hours=(end - start).total_seconds() / 3600 if start and end else None,
                has_reason=bool(r.get("reasonCode") or r.get("reasonReference"))))
            stamp = period.get("start")
        elif kind == "Condition":
            stamp = r.get("onsetDateTime") or (r.get("onsetPeriod") or {}).get("start") or r.get("recordedDate")
            conditions.append(Event(kind, _codes(r.get("code")), day_of(stamp), sort_key=str(stamp or "")))
        elif kind == "Observation":
            stamp = r.get("effectiveDateTime") or (r.get("effectivePeriod") or {}).get("start") or r.get("issued")
            codes = _codes(r.get("code"))
            value = (_centimetres(r.get("valueQuantity")) if _has(codes, LOINC, BODY_HEIGHT)
                     else _kilograms(r.get("valueQuantity")) if _has(codes, LOINC, BODY_WEIGHT)
                     else _quantity(r.get("valueQuantity")))
            systolic, diastolic = _bp(r)
            observations.append(Event(kind, codes, day_of(stamp), value=value, systolic=systolic,
                                      diastolic=diastolic, sort_key=str(stamp or ""), linked=enc is not None))
        elif kind == "MedicationRequest":
            stamp = r.get("authoredOn")
            concept = r.get("medicationCodeableConcept")
            codes = _codes(concept)
            medications.append(Event(kind, codes, day_of(stamp), words=_words(concept),
                                     sort_key=str(stamp or ""), coded=bool(codes), linked=enc is not None))
        elif kind == "Procedure":
            stamp = r.get("performedDateTime") or (r.get("performedPeriod") or {}).get("start")
            codes = _codes(r.get("code"))
            procedures.append(Event(kind, codes, day_of(stamp), sort_key=str(stamp or ""), coded=bool(codes),
                                    linked=enc is not None))
        else:
            continue
        d = day_of(stamp)
        if d is not None:
            days.append(d)
            if not (_aliases(r) & paperwork or enc in paperwork
                    or (kind == "Observation" and _has(_codes(r.get("code")), LOINC, CAUSE_OF_DEATH))):
                care.append(d)
    p = patient or {}
    death = day_of(p.get("deceasedDateTime"))
    return Chart(
        has_patient=patient is not None, birth=day_of(p.get("birthDate")), gender=p.get("gender"),
        death=death, deceased_no_date=p.get("deceasedBoolean") is True and death is None,
        conditions=tuple(conditions), observations=tuple(observations), medications=tuple(medications),
        procedures=tuple(procedures), encounters=tuple(encounters), cited_by_findings=frozenset(findings),
        cited_by_any=frozenset(cited), event_days=tuple(days), care_days=tuple(care))


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
    return sorted(p.day for p in c.procedures if p.day is not None and _has(p.codes, SNOMED, wanted))


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
    days = [o.day for o in chart_of(resources).observations if o.day and _has(o.codes, LOINC, HBA1C)]
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
    treated = any(_has(m.codes, RXNORM, ANTIDIABETIC_RXNORM) or any(w in m.words for w in ANTIDIABETIC_WORDS)
                  for m in c.medications)
    return treated, treated and not c.has_condition("diabetes")


def diabetic_hba1c_without_diabetes(resources: Sequence[Resource], reference: dt.date) -> tuple[bool, bool]:
    c = chart_of(resources)
    values = [o.value for o in c.observations if o.value is not None and _has(o.codes, LOINC, HBA1C)]
    return bool(values), any(v >= 6.5 for v in values) and not c.has_condition("diabetes")


def child_cholesterol(resources: Sequence[Resource], reference: dt.date) -> tuple[bool, bool]:
    c = chart_of(resources)
    age = c.age(reference)
    if age is None or not 0 <= age < 12:
        return False, False
    return True, any(_has(o.codes, LOINC, CHOLESTEROL) for o in c.observations)


def _pressures(c: Chart) -> list[Event]:
    panel = code_group("blood_pressure_panel")
    return [o for o in c.observations if _has(o.codes, LOINC, panel) and o.systolic is not None
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
               and _has(o.codes, LOINC, BODY_HEIGHT) and 2 <= age_at(c.birth, o.day) <= 17]
    if not heights:
        return False, False
    last = max(heights, key=lambda o: (o.day or dt.date.min, o.sort_key))
    assert last.day is not None and last.value is not None
    limit = height_limit(c.gender, age_at(c.birth, last.day))
    return True, limit is not None and last.value < limit


def implausible_bmi(resources: Sequence[Resource], reference: dt.date) -> tuple[bool, bool]:
    values = [o.value for o in chart_of(resources).observations if o.value is not None and _has(o.codes, LOINC, BMI)]
    return bool(values), any(not 12 <= v <= 70 for v in values)


def bmi_mismatch(resources: Sequence[Resource], reference: dt.date) -> tuple[bool, bool]:
    by_day: dict[dt.date, dict[str, float]] = defaultdict(dict)
    for o in chart_of(resources).observations:
        if o.day is None or o.value is None:
            continue
        for name, codes in (("bmi", BMI), ("weight", BODY_WEIGHT), ("height", BODY_HEIGHT)):
            if _has(o.codes, LOINC, codes):
                by_day[o.day][name] = o.value
    trios = [v for v in by_day.values() if len(v) == 3 and v["height"] > 0]
    mismatched = any(abs(v["weight"] / (v["height"] / 100) ** 2 - v["bmi"]) > 0.1 * v["bmi"] for v in trios)
    return bool(trios), mismatched


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
        Flag("drug or procedure without a code", "Of the patients with a prescription or procedure, the share "
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

    def flag(self, name: str) -> FlagCount:
        return next(f for f in self.flags if f.name == name)

    def distribution(self, name: str) -> Distribution:
        return next(d for d in self.distributions if d.name == name)

    def to_dict(self) -> dict[str, Any]:
        return {"patients": self.patients, "reference": self.reference.isoformat(),
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
    per condition (the first onset)."""
    premise = [0] * len(flags)
    flagged = [0] * len(flags)
    n = 0
    encounters: list[float] = []
    ages: list[float] = []
    stays: list[float] = []
    onsets: dict[str, list[float]] = {group: [] for group, _ in CONDITION_GROUPS}
    for resources in patients:
        chart = chart_of(resources)
        if not chart.has_patient:
            continue
        n += 1
        for i, flag in enumerate(flags):
            applies, hit = flag(resources, reference)
            premise[i] += applies
            flagged[i] += applies and hit
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
                                       for f, p, k in zip(flags, premise, flagged)), tuple(dists))


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


def is_miss(real_rate: float | None, synthetic_rate: float | None) -> bool:
    """Whether a synthetic rate is a miss against the real one.

    >>> is_miss(0.0, 0.011), is_miss(0.1, 0.2), is_miss(0.1, 0.21), is_miss(None, None)
    (True, False, True, False)
    """
    if synthetic_rate is None:
        return False
    return synthetic_rate > max(2 * (real_rate or 0.0), MISS_FLOOR)


def compare(real: Summary, synthetic: Summary) -> list[Comparison]:
    """Each flag of ``real`` (in its order) beside the synthetic one of the same name."""
    rows = []
    for r in real.flags:
        s = next((f for f in synthetic.flags if f.name == r.name), FlagCount(r.name, r.sentence, 0, 0))
        rows.append(Comparison(r.name, r.premise, r.flagged, r.rate, s.premise, s.flagged, s.rate,
                               is_miss(r.rate, s.rate)))
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
