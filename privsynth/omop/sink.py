"""Synthetic records as OMOP CDM v5.4 rows: the same typed records the FHIR writer serialises.

Each :class:`~privsynth.fhir.record.Record` becomes one ``person``, one
``observation_period``, a ``visit_occurrence`` per encounter, and one row per condition,
measurement (a panel: one per component), drug, procedure and death. A code goes where its
standard concept's domain says (obesity's SNOMED code is an Observation, a depression
screening a Measurement), else where its FHIR resource would. Dates are the records' own
(UTC), values are written to a tenth as in the FHIR, and every event points to the visit
its resource points to, so a cohort counted on the OMOP tables is the cohort counted on the
FHIR. Codes the shipped vocabulary cannot map are written with concept 0 and their code in
``*_source_value``, and counted (``unmapped``).
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from privsynth.fhir.record import (
    ACT_CODE,
    UCUM,
    Concept,
    Condition,
    Encounter,
    Event,
    Observation,
    Order,
    Record,
    tenths,
)
from privsynth.fhir.record import Quantity as FhirQuantity
from privsynth.omop.tables import TABLES
from privsynth.omop.vocabulary import Vocabulary

GENDER_SYSTEM = "http://hl7.org/fhir/administrative-gender"
EHR = 32817  # Type Concept "EHR"
EHR_ENCOUNTER = 32827  # "EHR encounter record"
EHR_PRESCRIPTION = 32838  # "EHR prescription"
PERIOD_FROM_EHR = 32882  # "Standard algorithm from EHR"
# where a row goes when its concept is unmapped: the table of its FHIR resource
HOME = {"Condition": "condition_occurrence", "Observation": "measurement", "MedicationRequest": "drug_exposure",
        "Procedure": "procedure_occurrence"}
BY_DOMAIN = {"Condition": "condition_occurrence", "Measurement": "measurement", "Observation": "observation",
             "Drug": "drug_exposure", "Procedure": "procedure_occurrence"}


def _utc(moment: dt.datetime) -> dt.datetime:
    return moment.astimezone(dt.UTC).replace(tzinfo=None)


def _source(concept: Concept) -> str:
    """The code as written (its text when it has none), at most OMOP's 50 characters."""
    return (concept.code or concept.display)[:50]


@dataclass
class OmopRows:
    """The rows of every table, in the tables' field order, and what could not be mapped."""

    rows: dict[str, list[tuple[Any, ...]]] = field(default_factory=lambda: {name: [] for name in TABLES})
    unmapped: Counter[str] = field(default_factory=Counter)  # "Resource system|code" -> rows with concept 0
    undated_deaths: int = 0
    _next: Counter[str] = field(default_factory=Counter)

    def next_id(self, table: str) -> int:
        self._next[table] += 1
        return self._next[table]

    @property
    def next_ids(self) -> Counter[str]:
        """The keys given so far per table (the last one: keys run from 1)."""
        return Counter(self._next)


class OmopMapper:
    """Maps one record at a time into :class:`OmopRows` (ids are sequential per table)."""

    def __init__(self, vocabulary: Vocabulary, reference: dt.date) -> None:
        self.vocabulary = vocabulary
        self.reference = reference
        self.out = OmopRows()

    def add(self, record: Record) -> None:
        person_id = self.out.next_id("person")
        self._person(person_id, record)
        visits = {}
        encounters = [e for e in (*record.visits, *record.events, *record.history) if isinstance(e, Encounter)]
        for encounter in sorted(encounters, key=lambda e: e.start):
            visits[encounter.id] = self._visit(person_id, encounter)
        days: list[dt.date] = [_utc(e.start).date() for e in encounters]
        for event in (*record.events, *record.history):
            if not isinstance(event, Encounter):
                days += self._event(person_id, event, visits)
        self._death(person_id, record)
        self._period(person_id, record, days)

    def _concept(self, resource: str, concept: Concept) -> tuple[int, int, str]:
        """(standard concept, source concept, table) of a coded event."""
        mapped = self.vocabulary.concept(concept.system, concept.code)
        if mapped.concept_id == 0:
            self.out.unmapped[f"{resource} {concept.system or 'text'}|{concept.code or concept.display}"] += 1
        return mapped.concept_id, mapped.source_concept_id, BY_DOMAIN.get(mapped.domain, HOME[resource])

    def _person(self, person_id: int, record: Record) -> None:
        gender = self.vocabulary.concept(GENDER_SYSTEM, record.gender)
        race = self._demographic(record.race)
        ethnicity = self._demographic(record.ethnicity)
        birth = record.birth
        self.out.rows["person"].append((
            person_id, gender.concept_id, birth.year, birth.month, birth.day,
            dt.datetime.combine(birth, dt.time()), race[0], ethnicity[0], None, None, None,
            str(record.patient["id"]), record.gender, 0, race[1], 0, ethnicity[1], 0))

    def _demographic(self, concept: Concept | None) -> tuple[int, str | None]:
        if concept is None:
            return 0, None
        return self.vocabulary.concept(concept.system, concept.code).concept_id, _source(concept)

    def _visit(self, person_id: int, encounter: Encounter) -> int:
        visit_id = self.out.next_id("visit_occurrence")
        concept = self.vocabulary.concept(ACT_CODE, encounter.code).concept_id
        if concept == 0:
            self.out.unmapped[f"Encounter {ACT_CODE}|{encounter.code}"] += 1
        start, end = _utc(encounter.start), _utc(encounter.end)
        self.out.rows["visit_occurrence"].append((
            visit_id, person_id, concept, start.date(), start, end.date(), end, EHR_ENCOUNTER, None, None,
            encounter.code, 0, None, None, None, None, None))
        return visit_id

    def _event(self, person_id: int, event: Event, visits: dict[str, int]) -> list[dt.date]:
        """The rows of one condition, observation or order; the days they fall on."""
        visit = visits.get(event.encounter.id) if event.encounter is not None else None  # type: ignore[union-attr]
        if isinstance(event, Condition):
            return [self._coded(person_id, "Condition", event.concept, event.moment, visit)]
        if isinstance(event, Observation):
            parts = event.components if event.components else ((event.value,) if event.value is not None else ())
            if not parts:  # a coded observation without a value
                return [self._coded(person_id, "Observation", event.concept, event.moment, visit)]
            return [self._coded(person_id, "Observation", q.concept, event.moment, visit, q) for q in parts]
        assert isinstance(event, Order)
        end = event.moment + dt.timedelta(minutes=event.minutes) if event.minutes is not None else None
        return [self._coded(person_id, event.resource, event.concept, event.moment, visit, end=end)]

    def _coded(self, person_id: int, resource: str, concept: Concept, moment: dt.datetime, visit: int | None,
               value: FhirQuantity | None = None, end: dt.datetime | None = None) -> dt.date:
        concept_id, source_id, table = self._concept(resource, concept)
        when = _utc(moment)
        day, source = when.date(), _source(concept)
        number = tenths(value.value) if value is not None else None
        unit_id = self.vocabulary.concept(UCUM, value.unit).concept_id if value is not None else None
        unit = value.unit if value is not None else None
        rows, row_id = self.out.rows[table], self.out.next_id(table)
        if table == "condition_occurrence":
            rows.append((row_id, person_id, concept_id, day, when, None, None, EHR_ENCOUNTER, None, None, None,
                         visit, None, source, source_id, None))
        elif table == "measurement":
            rows.append((row_id, person_id, concept_id, day, when, None, EHR_ENCOUNTER, None, number, None, unit_id,
                         None, None, None, visit, None, source, source_id, unit, None, None, None, None))
        elif table == "observation":
            rows.append((row_id, person_id, concept_id, day, when, EHR, number, None, None, None, unit_id, None,
                         visit, None, source, source_id, unit, None, None, None, None))
        elif table == "drug_exposure":  # a prescription of one day (its duration is not in the record)
            rows.append((row_id, person_id, concept_id, day, when, day, when, None, EHR_PRESCRIPTION, None, None,
                         None, None, None, None, None, None, visit, None, source, source_id, None, None))
        else:
            end_when = _utc(end) if end is not None else None
            rows.append((row_id, person_id, concept_id, day, when, end_when.date() if end_when else None, end_when,
                         EHR_ENCOUNTER, None, None, None, visit, None, source, source_id, None))
        return day

    def _death(self, person_id: int, record: Record) -> None:
        if record.death is not None:
            when = _utc(record.death)
            self.out.rows["death"].append((person_id, when.date(), when, EHR, None, None, None))
        elif record.deceased:
            self.out.undated_deaths += 1  # OMOP's death needs a date the model does not give: counted

    def _period(self, person_id: int, record: Record, days: list[dt.date]) -> None:
        """From the first event (the birth when there is none) to the death or the export's date."""
        last = _utc(record.death).date() if record.death is not None else self.reference
        start = min(days, default=record.birth)
        end = max(max(days, default=start), last if record.death is not None or not days else max(last, start))
        self.out.rows["observation_period"].append((self.out.next_id("observation_period"), person_id,
                                                    min(start, end), end, PERIOD_FROM_EHR))


def columns(table: str, rows: list[tuple[Any, ...]]) -> Iterator[tuple[str, list[Any]]]:
    """A table's rows as columns (name, values), in field order."""
    names = TABLES[table].names
    for k, name in enumerate(names):
        yield name, [row[k] for row in rows]
