"""Write synthetic patient-view rows as FHIR R4 resources, each one validated.

Mapping (driven by each column's schema source):

- Patient columns: ``gender``, ``birthDate`` (an age becomes a birth date drawn inside
  the age year), US Core race and ethnicity extensions, ``address.state``,
  ``maritalStatus``, ``deceased[x]``. Identifiers, name, telecom and the rest of the
  address are fresh (see :mod:`privsynth.identity`).
- Condition ``exists`` columns: one Condition with the group's first code; its onset
  comes from the group's ``first`` onset column when there is one.
- Observation ``last`` columns: one Observation with the column's ``output`` code, UCUM
  unit and category.
- Encounter ``count`` columns: that many Encounters of the column's class.

Other columns stay in the synthetic patient-view table. All of this is post-processing.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from privsynth.domain import is_missing
from privsynth.fhir.instant import instant
from privsynth.fhir.record import (
    INPATIENT,
    LOINC,
    NO_REASON,
    UTC,
    Concept,
    Condition,
    Encounter,
    Event,
    Observation,
    Order,
    Quantity,
    Record,
)
from privsynth.history.write import HistoryWriter
from privsynth.identity import Identity, IdentityFactory
from privsynth.schema.model import OTHER, CategoricalDomain, Column, Schema

RACE_URL = "http://hl7.org/fhir/us/core/StructureDefinition/us-core-race"
ETHNICITY_URL = "http://hl7.org/fhir/us/core/StructureDefinition/us-core-ethnicity"
OMB_SYSTEM = "urn:oid:2.16.840.1.113883.6.238"
FHIR_GENDERS = ("male", "female", "other", "unknown")
COUNTED = ("MedicationRequest", "Procedure")  # whole-record counts written as that many resources
UNSPECIFIED = {"MedicationRequest": "Medication not specified (a count of medication requests in this synthetic "
                                    "record; the schema names no medication)",
               "Procedure": "Procedure not specified (a count of procedures in this synthetic record; the schema "
                            "names no procedure)"}


@dataclass(frozen=True)
class _Plan:
    """Which columns feed which resources; computed once per schema."""

    patient: dict[str, Column]
    conditions: list[tuple[Column, Column | None]]
    observations: list[Column]
    encounters: list[Column]
    panels: list[list[Column]] = field(default_factory=list)  # components of one Observation (a code group)
    counts: list[Column] = field(default_factory=list)  # other resources written as many as the count says


def _plan(schema: Schema) -> _Plan:
    patient: dict[str, Column] = {}
    observations: list[Column] = []
    encounters: list[Column] = []
    panels: dict[str, list[Column]] = {}
    counts: list[Column] = []
    for col in schema.view_columns:
        src = col.source
        path = src.path or ""
        if src.cell is not None or src.anchor is not None:
            continue  # timeline cells and values around an onset: privsynth.history.write places them
        if src.resource == "Patient":
            if path == "gender":
                patient["gender"] = col
            elif path == "birthDate" and src.transform == "age":
                patient["age"] = col
            elif RACE_URL in path:
                patient["race"] = col
            elif ETHNICITY_URL in path:
                patient["ethnicity"] = col
            elif path == "address.state":
                patient["state"] = col
            elif path.startswith("maritalStatus"):
                patient["marital"] = col
            elif path.startswith("deceased") and src.transform == "age":
                patient["death_years"] = col
            elif path.startswith("deceased"):
                patient["deceased"] = col
        elif src.resource == "Observation" and src.summary_kind.keeps == "latest" and col.output.get("code"):
            if path.startswith("component[") and src.codes:
                panels.setdefault(src.codes, []).append(col)  # read from a panel's component: written as one
            else:
                observations.append(col)
        elif src.resource == "Encounter" and src.summary_kind.counts:
            encounters.append(col)
        elif src.resource in COUNTED and src.summary_kind.counts:
            counts.append(col)
    conditions = [(c.flag, c.onset) for c in schema.conditions]
    return _Plan(patient, conditions, observations, encounters, list(panels.values()), counts)


def unwritten(schema: Schema) -> list[tuple[str, str]]:
    """The view columns a FHIR schema reads but the writer cannot write back, each with why:
    what ``schema check`` reports, so a column is never learned and then silently dropped.
    Derived columns are computed, not read, and go to patients.csv."""
    if schema.input_format != "fhir":
        return []
    plan = _plan(schema)
    written = {c.name for c in plan.patient.values()} | {c.name for c in plan.observations + plan.encounters
                                                           + plan.counts}
    written |= {c.name for cols in plan.panels for c in cols}
    written |= {c.name for flag, onset in plan.conditions for c in (flag, onset) if c is not None}
    out = []
    for col in schema.view_columns:
        src = col.source
        if col.name in written or col.derived is not None or src.cell is not None or src.anchor is not None:
            continue
        if src.resource == "Patient":
            why = "a Patient element the writer does not write (gender, age, race, ethnicity, state, marital status " \
                  "and deceased are written)"
        elif src.resource == "Observation" and not col.output.get("code"):
            why = "an Observation value without output.code: the writer does not know which code to write"
        elif src.resource == "Condition":
            why = "a Condition column that is neither a presence flag with a code group nor its onset"
        else:
            why = f"{src.resource} with summary '{src.summary}' has no writer"
        out.append((col.name, why))
    return out


def _present(value: Any) -> bool:
    return not is_missing(value)


def _display(col: Column, code: str) -> str | None:
    if isinstance(col.domain, CategoricalDomain):
        for c in col.domain.categories:
            if c.code == code:
                return c.display
    return None


def _moment(day: dt.date, rng: np.random.Generator) -> dt.datetime:
    """A moment during ``day``'s working hours (UTC, whole seconds)."""
    seconds = int(rng.integers(8 * 3600, 18 * 3600))
    return dt.datetime.combine(day, dt.time(), tzinfo=UTC) + dt.timedelta(seconds=seconds)


def _day_between(start: dt.date, end: dt.date, rng: np.random.Generator) -> dt.date:
    span = max(0, (end - start).days)
    return start + dt.timedelta(days=int(rng.integers(0, span + 1)))


class FhirWriter:
    """Turns decoded synthetic rows into R4 resources for one schema."""

    def __init__(self, schema: Schema, seed: int) -> None:
        self.schema = schema
        self.plan = _plan(schema)
        self.identities = IdentityFactory(seed)
        self.kinds = frozenset(c.faker for c in schema.identifier_columns if c.faker)
        self.rng = np.random.default_rng(seed + 1)
        self.history = HistoryWriter(schema, self.rng, self.identities.new_id) if schema.timeline else None
        self._end = dt.date.min  # the last day of the record being written (set per patient)

    def patients(self, frame: pd.DataFrame) -> Iterator[tuple[Identity, dict[str, Any], list[dict[str, Any]]]]:
        """Yield ``(identity, birth/row facts, resources)`` per synthetic row."""
        records = frame.to_dict(orient="records")
        for row in records:
            yield self._patient(row)

    def _patient(self, row: dict[str, Any]) -> tuple[Identity, dict[str, Any], list[dict[str, Any]]]:
        plan, rng, ref_date = self.plan, self.rng, self.schema.reference
        gender_col = plan.patient.get("gender")
        gender = row.get(gender_col.name) if gender_col else None
        gender = gender if gender in FHIR_GENDERS else None
        state_col = plan.patient.get("state")
        state = row.get(state_col.name) if state_col else None
        state = state if _present(state) and state != OTHER else None
        who = self.identities.make(gender, state)
        age_col = plan.patient.get("age")
        age = row.get(age_col.name) if age_col else None
        if age is not None and _present(age):
            birth = _add_years(ref_date, -int(age) - 1) + dt.timedelta(days=int(rng.integers(1, 366)))
            birth = min(birth, ref_date)
        else:
            birth = _day_between(dt.date(ref_date.year - 90, 1, 1), ref_date, rng)
        patient: dict[str, Any] = {
            "resourceType": "Patient",
            "id": who.id,
            "gender": gender or "unknown",
            "birthDate": birth.isoformat(),
            "meta": {"tag": [{"system": "urn:privsynth", "code": "synthetic",
                              "display": "Synthetic record (privsynth); not a real person"}]},
        }
        patient.update(_identity_elements(who, self.kinds))
        extensions = []
        for key, url in (("race", RACE_URL), ("ethnicity", ETHNICITY_URL)):
            col = plan.patient.get(key)
            if col is None:
                continue
            value = row.get(col.name)
            if not _present(value):
                continue
            code = str(value)
            text = _display(col, code) if code != OTHER else "Other"
            sub: list[dict[str, Any]] = []
            if code != OTHER:
                sub.append({"url": "ombCategory", "valueCoding": {
                    "system": col.output.get("system", OMB_SYSTEM), "code": code, "display": text}})
            sub.append({"url": "text", "valueString": text or code})
            extensions.append({"url": url, "extension": sub})
        if extensions:
            patient["extension"] = extensions
        marital = plan.patient.get("marital")
        if marital is not None and _present(row.get(marital.name)):
            code = str(row[marital.name])
            if code == OTHER:
                patient["maritalStatus"] = {"text": "Other"}
            else:
                coding = {"code": code, "display": _display(marital, code) or code}
                if "system" in marital.output:
                    coding["system"] = marital.output["system"]
                patient["maritalStatus"] = {"coding": [coding], "text": coding["display"]}
        end = ref_date  # the last day of the record: the reference date, or the death
        deceased, years_dead = plan.patient.get("deceased"), plan.patient.get("death_years")
        if deceased is not None and row.get(deceased.name) is True:
            years = row.get(years_dead.name) if years_dead is not None else None
            if years is not None and _present(years):
                # inside the year before the reference that the whole years since the death name
                start = max(_add_years(ref_date, -int(years) - 1) + dt.timedelta(days=1), birth)
                end = max(min(_add_years(ref_date, -int(years)), ref_date), start)
                # not before the year of life of its latest onset begins (the rule holds by whole years)
                onsets = [int(row[o.name]) for f, o in plan.conditions if o is not None
                          and row.get(f.name) is True and _present(row.get(o.name))]
                start = min(max(start, _add_years(birth, max(onsets, default=0))), end)
                end = _day_between(start, end, rng)
                death = dt.datetime.combine(end, dt.time(23, 59), tzinfo=UTC)  # after that day's events
                patient["deceasedDateTime"] = instant(death)
            else:
                patient["deceasedBoolean"] = True  # the model has no date: none is invented
        self._end = end
        record = Record(patient, birth, end=end)
        for present_col, onset_col in plan.conditions:
            if row.get(present_col.name) is not True:
                continue
            record.events.append(self._condition(present_col, onset_col, row, birth))
        for col in plan.observations:
            value = row.get(col.name)
            if value is not None and _present(value):
                record.events.append(self._observation(col, float(value), birth))
        for cols in plan.panels:
            values = {c.name: float(row[c.name]) for c in cols if row.get(c.name) is not None
                      and _present(row[c.name])}
            if values:
                record.events.append(self._panel(cols, values, birth))
        for col in plan.encounters:
            count = row.get(col.name)
            if count is not None and _present(count):
                for k in range(int(count)):
                    record.events.append(self._encounter(col, birth, latest=k == 0))
        for col in plan.counts:
            count = row.get(col.name)
            if count is not None and _present(count):
                record.events += [self._counted(col, birth) for _ in range(int(count))]
        if self.history is not None:
            self.history.place(row, record)
        else:
            _at_visits(record.events, self.rng)
            _admitted_for(record.events)
        return who, {"birth_date": birth.isoformat()}, record.resources()

    def _recent(self, birth: dt.date, years: int) -> dt.datetime:
        """A moment in the last ``years`` years of the record (before the reference date or the
        death), not before birth."""
        ref_date = self._end
        return _moment(_day_between(max(birth, ref_date - dt.timedelta(days=years * 365)), ref_date, self.rng),
                       self.rng)

    def _condition(self, col: Column, onset_col: Column | None, row: dict[str, Any], birth: dt.date) -> Condition:
        """The condition's first code, its onset inside the year of life (or the calendar year)
        its onset column names; without one, no onset at all -- never a date drawn over the
        patient's life -- and the Condition is dated by when it was recorded (recently)."""
        ref_date = self._end
        group = self.schema.code_groups[col.source.codes or ""]
        first = group.codes[0]
        concept = Concept(group.system, first.code, first.display or col.name)
        onset_day = None
        if onset_col is not None and _present(row.get(onset_col.name)):
            value = int(row[onset_col.name])
            if onset_col.source.transform == "age_at_event":
                # inside the year of life the onset age names, never after the reference date: the
                # row's onset age is at most its age (a rule of the schema), so this is never empty
                start = _add_years(birth, value)
                onset_day = _day_between(start, min(start + dt.timedelta(days=364), ref_date), self.rng)
            elif onset_col.source.transform == "year" and dt.MINYEAR <= value <= dt.MAXYEAR:
                onset_day = _day_between(dt.date(value, 1, 1), dt.date(value, 12, 31), self.rng)
            if onset_day is not None:
                onset_day = min(max(onset_day, birth), ref_date)
        if onset_day is None:
            return Condition(self.identities.new_id(), concept, None, col.name, recorded=self._recent(birth, 2))
        return Condition(self.identities.new_id(), concept, _moment(onset_day, self.rng), col.name)

    def _observation(self, col: Column, value: float, birth: dt.date) -> Observation:
        return Observation(self.identities.new_id(), _concept(col), col.output.get("category", "laboratory"),
                           self._recent(birth, 2), value=_quantity(col, value))

    def _panel(self, cols: list[Column], values: dict[str, float], birth: dt.date) -> Observation:
        """One Observation of a panel's code group, a component per column (as the schema reads them)."""
        group = self.schema.code_groups[cols[0].source.codes or ""]
        panel = group.codes[0]
        oid = self.identities.new_id()
        return Observation(oid, Concept(group.system, panel.code, panel.display or panel.code),
                           cols[0].output.get("category", "vital-signs"), self._recent(birth, 2),
                           components=tuple(_quantity(c, values[c.name]) for c in cols if c.name in values))

    def _counted(self, col: Column, birth: dt.date) -> Order:
        """One resource of a whole-record count (a MedicationRequest, a Procedure): the group's
        first code when the column names a code group, else a text saying what it stands for."""
        rtype = col.source.resource or ""
        if col.source.codes:
            group = self.schema.code_groups[col.source.codes]
            first = group.codes[0]
            concept = Concept(group.system, first.code, first.display or first.code)
        else:
            concept = Concept(None, None, UNSPECIFIED[rtype])
        when = self._recent(birth, 5)
        return Order(self.identities.new_id(), rtype, concept, when)

    def _encounter(self, col: Column, birth: dt.date, latest: bool = False) -> Encounter:
        """One encounter of a whole-record count: anywhere in the record (the count is the
        whole record's: ten admissions are not crowded into the last few years), but a
        patient's first ambulatory one is a visit in the last two years, where the latest
        values are taken."""
        ref_date = self._end
        code = col.output.get("code")
        if code is None:
            code = sorted(col.source.where[0].values)[0] if col.source.where else "AMB"
        recent = latest and code == "AMB"
        since = max(birth, ref_date - dt.timedelta(days=2 * 365)) if recent else birth
        start_day = _day_between(since, ref_date, self.rng)
        start = dt.datetime.combine(start_day, dt.time(9), tzinfo=UTC)
        start += dt.timedelta(minutes=int(self.rng.integers(0, 480)))
        hours = 72 if code in INPATIENT else 1
        end = start + dt.timedelta(hours=hours, minutes=int(self.rng.integers(0, 60)))
        return Encounter(self.identities.new_id(), code, col.output.get("display", code), start, end)


def unnamed_orders(schema: Schema) -> list[str]:
    """The whole-record counts of prescriptions or procedures whose schema column names no code
    group: each is written as an order that says it is not specified."""
    return [c.name for c in _plan(schema).counts if c.source.resource in COUNTED and not c.source.codes]


def _at_visits(events: list[Event], rng: np.random.Generator) -> None:
    """Care happens at a visit: the latest values are taken at the latest ambulatory encounter
    (else the latest encounter), each prescription or procedure at one of the record's
    encounters, linked to it. A record with no encounter keeps its dates, unlinked."""
    visits = sorted((e for e in events if isinstance(e, Encounter)), key=lambda e: e.start)
    if not visits:
        return
    latest = max((e for e in visits if e.code == "AMB"), key=lambda e: e.start, default=visits[-1])
    stays = [v for v in visits if v.code in INPATIENT]  # each stay has something done in it, while orders last
    for event in events:
        if isinstance(event, Observation):
            event.moment, event.encounter = latest.start, latest
        elif isinstance(event, Order):
            visit = stays.pop(0) if stays else visits[int(rng.integers(len(visits)))]
            minutes = max(int((visit.end - visit.start).total_seconds() // 60), 1)
            event.moment = visit.start + dt.timedelta(minutes=int(rng.integers(minutes)))
            event.encounter = visit


def _admitted_for(events: list[Event]) -> None:
    """Each inpatient stay's reason: the condition diagnosed last before it; with none, a text
    that says its reason is not part of the synthetic record (never a silent blank)."""
    conditions = [e for e in events if isinstance(e, Condition)]
    for stay in (e for e in events if isinstance(e, Encounter) and e.code in INPATIENT):
        before = [c for c in conditions if c.moment <= stay.start]
        if before:
            stay.reasons.append(max(before, key=lambda c: c.moment).id)
        else:
            stay.reason_code = NO_REASON


def _concept(col: Column) -> Concept:
    """The coded concept a value column writes (its ``output`` code)."""
    return Concept(col.output.get("system", LOINC), col.output["code"], col.output.get("display", col.name))


def _quantity(col: Column, value: float) -> Quantity:
    return Quantity(_concept(col), value, col.output.get("unit", col.source.unit or "1"))


def _identity_elements(who: Identity, kinds: frozenset[str]) -> dict[str, Any]:
    """The Patient elements for the schema's direct identifiers (fresh values only)."""
    v2 = "http://terminology.hl7.org/CodeSystem/v2-0203"
    out: dict[str, Any] = {}
    identifiers = []
    if "mrn" in kinds:
        identifiers.append({"type": {"coding": [{"system": v2, "code": "MR"}]},
                            "system": "urn:privsynth:synthetic-mrn", "value": who.mrn})
    if "ssn" in kinds:
        identifiers.append({"type": {"coding": [{"system": v2, "code": "SS"}]},
                            "system": "http://hl7.org/fhir/sid/us-ssn", "value": who.ssn})
    if identifiers:
        out["identifier"] = identifiers
    if "name" in kinds:
        out["name"] = [{"use": "official", "family": who.family, "given": [who.given]}]
    telecom = []
    if "phone" in kinds:
        telecom.append({"system": "phone", "value": who.phone, "use": "home"})
    if "email" in kinds:
        telecom.append({"system": "email", "value": who.email})
    if telecom:
        out["telecom"] = telecom
    address: dict[str, Any] = {"country": "US"}
    if who.state:
        address["state"] = who.state
    if "address" in kinds:
        address.update({"line": [who.line], "city": who.city, "postalCode": who.postal_code})
    out["address"] = [address]
    return out


IDENTITY_COLUMNS = ("name", "mrn", "ssn", "phone", "email", "address")


def identity_row(who: Identity, kinds: frozenset[str]) -> dict[str, str]:
    """The fresh identifiers of one synthetic patient for the patient-view table."""
    values = {"name": who.name, "mrn": who.mrn, "ssn": who.ssn, "phone": who.phone, "email": who.email,
              "address": f"{who.line}, {who.city}"}
    return {"patient_id": who.id, **{k: values[k] for k in IDENTITY_COLUMNS if k in kinds}}


def _add_years(day: dt.date, years: int) -> dt.date:
    """``day`` shifted by whole years (29 February becomes 28), kept in datetime's range."""
    year = min(max(day.year + years, dt.MINYEAR), dt.MAXYEAR)
    try:
        return day.replace(year=year)
    except ValueError:
        return day.replace(year=year, day=28)
