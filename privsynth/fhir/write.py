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
from typing import Any

import numpy as np
import pandas as pd

from privsynth.fhir.day import add_years, day_between, moment
from privsynth.fhir.demographics import (
    FHIR_GENDERS,
    IDENTITY_COLUMNS,
    OMB_SYSTEM,
    birth_date,
    fhir_gender,
    home_state,
    identity_row,
    omb_category,
    patient_resource,
    record_end,
)
from privsynth.fhir.plan import COUNTED, ETHNICITY_URL, RACE_URL, WritePlan, present, unnamed_orders, unwritten
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
from privsynth.schema.model import Column, Schema

__all__ = ["COUNTED", "ETHNICITY_URL", "FHIR_GENDERS", "IDENTITY_COLUMNS", "OMB_SYSTEM", "RACE_URL", "UNSPECIFIED",
           "FhirWriter", "identity_row", "unnamed_orders", "unwritten"]

UNSPECIFIED = {"MedicationRequest": "Medication not specified (a count of medication requests in this synthetic "
                                    "record; the schema names no medication)",
               "Procedure": "Procedure not specified (a count of procedures in this synthetic record; the schema "
                            "names no procedure)"}


class FhirWriter:
    """Turns decoded synthetic rows into R4 resources for one schema."""

    def __init__(self, schema: Schema, seed: int, block: tuple[int, int] = (0, 1)) -> None:
        self.schema = schema
        self.plan = WritePlan.of(schema)
        self.identities = IdentityFactory(seed, block=block)  # block: this part of an output written in parts
        self.kinds = frozenset(c.faker for c in schema.identifier_columns if c.faker)
        self.rng = np.random.default_rng(seed + 1)
        self.history = HistoryWriter(schema, self.rng, self.identities.new_id) if schema.timeline else None
        self._end = dt.date.min  # the last day of the record being written (set per patient)

    def patients(self, frame: pd.DataFrame) -> Iterator[tuple[Identity, dict[str, Any], list[dict[str, Any]]]]:
        """Yield ``(identity, birth/row facts, resources)`` per synthetic row."""
        for who, facts, record in self.records(frame):
            yield who, facts, record.resources()

    def records(self, frame: pd.DataFrame) -> Iterator[tuple[Identity, dict[str, Any], Record]]:
        """Yield ``(identity, birth/row facts, typed record)`` per synthetic row: what every
        output format (FHIR, OMOP) is written from."""
        for row in frame.to_dict(orient="records"):
            yield self._patient(row)

    def _patient(self, row: dict[str, Any]) -> tuple[Identity, dict[str, Any], Record]:
        plan, rng, ref_date = self.plan, self.rng, self.schema.reference
        gender = fhir_gender(plan, row)
        who = self.identities.make(gender, home_state(plan, row))
        birth = birth_date(plan, row, ref_date, rng)
        patient = patient_resource(who, gender, birth, plan, row, self.kinds)
        self._end, death = record_end(patient, plan, row, birth, ref_date, rng)
        record = Record(patient, birth, end=self._end, gender=gender or "unknown",
                        race=omb_category(plan, row, "race"), ethnicity=omb_category(plan, row, "ethnicity"),
                        death=death, deceased="deceasedBoolean" in patient or death is not None)
        self._add_events(record, row, birth)
        if self.history is not None:
            self.history.place(row, record)
        else:
            _at_visits(record.events, self.rng)
            _admitted_for(record.events)
        return who, {"birth_date": birth.isoformat()}, record

    def _add_events(self, record: Record, row: dict[str, Any], birth: dt.date) -> None:
        """The row's conditions, observations, panels, encounters and counted orders, in that order."""
        plan = self.plan
        for present_col, onset_col in plan.conditions:
            if row.get(present_col.name) is not True:
                continue
            record.events.append(self._condition(present_col, onset_col, row, birth))
        for col in plan.observations:
            value = row.get(col.name)
            if value is not None and present(value):
                record.events.append(self._observation(col, float(value), birth))
        for cols in plan.panels:
            values = {c.name: float(row[c.name]) for c in cols if row.get(c.name) is not None
                      and present(row[c.name])}
            if values:
                record.events.append(self._panel(cols, values, birth))
        for col in plan.encounters:
            count = row.get(col.name)
            if count is not None and present(count):
                for k in range(int(count)):
                    record.events.append(self._encounter(col, birth, latest=k == 0))
        for col in plan.counts:
            count = row.get(col.name)
            if count is not None and present(count):
                record.events += [self._counted(col, birth) for _ in range(int(count))]

    def _recent(self, birth: dt.date, years: int) -> dt.datetime:
        """A moment in the last ``years`` years of the record (before the reference date or the
        death), not before birth."""
        ref_date = self._end
        return moment(day_between(max(birth, ref_date - dt.timedelta(days=years * 365)), ref_date, self.rng),
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
        if onset_col is not None and present(row.get(onset_col.name)):
            value = int(row[onset_col.name])
            if onset_col.source.transform == "age_at_event":
                # inside the year of life the onset age names, never after the reference date: the
                # row's onset age is at most its age (a rule of the schema), so this is never empty
                start = add_years(birth, value)
                onset_day = day_between(start, min(start + dt.timedelta(days=364), ref_date), self.rng)
            elif onset_col.source.transform == "year" and dt.MINYEAR <= value <= dt.MAXYEAR:
                onset_day = day_between(dt.date(value, 1, 1), dt.date(value, 12, 31), self.rng)
            if onset_day is not None:
                onset_day = min(max(onset_day, birth), ref_date)
        if onset_day is None:
            return Condition(self.identities.new_id(), concept, None, col.name, recorded=self._recent(birth, 2))
        return Condition(self.identities.new_id(), concept, moment(onset_day, self.rng), col.name)

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
        start_day = day_between(since, ref_date, self.rng)
        start = dt.datetime.combine(start_day, dt.time(9), tzinfo=UTC)
        start += dt.timedelta(minutes=int(self.rng.integers(0, 480)))
        hours = 72 if code in INPATIENT else 1
        end = start + dt.timedelta(hours=hours, minutes=int(self.rng.integers(0, 60)))
        return Encounter(self.identities.new_id(), code, col.output.get("display", code), start, end)


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
