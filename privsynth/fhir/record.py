"""One synthetic patient's clinical record as typed events, turned into FHIR R4 once.

The writers (:mod:`privsynth.fhir.write` and :mod:`privsynth.fhir.demographics` for the
patient columns, :mod:`privsynth.history.write` for timeline cells) build and move these
events -- an onset is a ``datetime``, an encounter is an object a resource points to -- and
:meth:`Record.resources` serialises the whole record at the end, so nothing is ever parsed
back from a resource that was just built. Every output format (FHIR, OMOP) is written from
these records. The code systems FHIR needs are named here once.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from privsynth.fhir.instant import instant

UTC = dt.UTC
UCUM = "http://unitsofmeasure.org"
LOINC = "http://loinc.org"
SNOMED = "http://snomed.info/sct"
ACT_CODE = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
OBS_CATEGORY = "http://terminology.hl7.org/CodeSystem/observation-category"
CLINICAL = "http://terminology.hl7.org/CodeSystem/condition-clinical"
VERIFICATION = "http://terminology.hl7.org/CodeSystem/condition-ver-status"
# HL7's mark of test data, on every synthetic resource (meta.security; v3-ActReason HTEST)
SYNTHETIC = {"system": "http://terminology.hl7.org/CodeSystem/v3-ActReason", "code": "HTEST",
             "display": "test health data"}


@dataclass(frozen=True)
class Concept:
    """A CodeableConcept: one coding and its text, or a text alone (``code`` None)."""

    system: str | None
    code: str | None
    display: str

    def json(self) -> dict[str, Any]:
        if self.code is None:
            return {"text": self.display}
        return {"coding": [{"system": self.system, "code": self.code, "display": self.display}], "text": self.display}


@dataclass(frozen=True)
class Quantity:
    """A coded value with its UCUM unit (an Observation's value or one of its components)."""

    concept: Concept
    value: float
    unit: str

    def json(self) -> dict[str, Any]:
        return {"value": tenths(self.value), "unit": self.unit, "system": UCUM, "code": self.unit}


INPATIENT = ("IMP", "ACUTE", "NONAC")  # v3 ActCode classes of a stay in hospital
NO_REASON = Concept(None, None, "Admission; its reason is not part of this synthetic record")


def tenths(value: Any) -> Any:
    """A value as written, to a tenth, rounded down: a sampled 6.46 that a rule keeps under
    6.5 (HbA1c without diabetes) or a bin keeps in [5.7, 6.5) is written 6.4, not 6.5; a
    difference that a rule keeps at 20 or more (a pulse pressure) stays so, written.

    >>> tenths(6.46), tenths(6.5), tenths(99.99), tenths(120.0)
    (6.4, 6.5, 99.9, 120.0)
    """
    if isinstance(value, np.ndarray):  # a column of them
        return np.floor(value * 10 + 1e-6) / 10
    return math.floor(value * 10 + 1e-6) / 10


@dataclass
class Encounter:
    id: str
    code: str  # the v3 ActCode class (AMB, EMER, IMP, ...)
    display: str
    start: dt.datetime
    end: dt.datetime
    kind: Concept | None = None  # Encounter.type
    reasons: list[str] = field(default_factory=list)  # ids of the Conditions it was for
    reason_code: Concept | None = None

    @property
    def day(self) -> dt.date:
        return self.start.date()

    def json(self, ref: dict[str, str]) -> dict[str, Any]:
        out: dict[str, Any] = {
            "resourceType": "Encounter", "id": self.id, "status": "finished",
            "class": {"system": ACT_CODE, "code": self.code, "display": self.display},
            "subject": dict(ref), "period": {"start": instant(self.start), "end": instant(self.end)}}
        if self.kind is not None:
            out["type"] = [self.kind.json()]
        if self.reason_code is not None:
            out["reasonCode"] = [self.reason_code.json()]
        if self.reasons:
            out["reasonReference"] = [{"reference": f"Condition/{r}"} for r in self.reasons]
        return out


def _at(encounter: Encounter | None) -> dict[str, Any]:
    return {} if encounter is None else {"encounter": {"reference": f"Encounter/{encounter.id}"}}


@dataclass
class Condition:
    """A diagnosis; ``onset`` None when the model has no onset for it (then only when it was
    ``recorded``)."""

    id: str
    concept: Concept
    onset: dt.datetime | None
    column: str  # the schema's presence flag it was written for
    encounter: Encounter | None = None
    recorded: dt.datetime | None = None

    @property
    def moment(self) -> dt.datetime:
        """When it enters the record: its onset, else when it was recorded."""
        when = self.onset or self.recorded
        assert when is not None, "a Condition has an onset or a recorded date"
        return when

    def json(self, ref: dict[str, str]) -> dict[str, Any]:
        out: dict[str, Any] = {
            "resourceType": "Condition", "id": self.id,
            "clinicalStatus": {"coding": [{"system": CLINICAL, "code": "active"}]},
            "verificationStatus": {"coding": [{"system": VERIFICATION, "code": "confirmed"}]},
            "code": self.concept.json(), "subject": dict(ref), **_at(self.encounter)}
        if self.onset is not None:
            out["onsetDateTime"] = instant(self.onset)
        if self.recorded is not None:
            out["recordedDate"] = instant(self.recorded)
        return out


@dataclass
class Observation:
    """A value (``value``) or a panel of components (``components``, ``concept`` the panel's)."""

    id: str
    concept: Concept
    category: str
    moment: dt.datetime
    value: Quantity | None = None
    components: tuple[Quantity, ...] = ()
    encounter: Encounter | None = None

    def json(self, ref: dict[str, str]) -> dict[str, Any]:
        out: dict[str, Any] = {
            "resourceType": "Observation", "id": self.id, "status": "final",
            "category": [{"coding": [{"system": OBS_CATEGORY, "code": self.category}]}],
            "code": self.concept.json(), "subject": dict(ref), **_at(self.encounter),
            "effectiveDateTime": instant(self.moment)}
        if self.value is not None:
            out["valueQuantity"] = self.value.json()
        if self.components:
            out["component"] = [{"code": c.concept.json(), "valueQuantity": c.json()} for c in self.components]
        return out


@dataclass
class Order:
    """A MedicationRequest or a Procedure; a Procedure with ``minutes`` has a performed period."""

    id: str
    resource: str
    concept: Concept
    moment: dt.datetime
    encounter: Encounter | None = None
    minutes: int | None = None

    def json(self, ref: dict[str, str]) -> dict[str, Any]:
        base = {"resourceType": self.resource, "id": self.id, "subject": dict(ref), **_at(self.encounter)}
        if self.resource == "MedicationRequest":
            return {**base, "status": "completed", "intent": "order", "medicationCodeableConcept": self.concept.json(),
                    "authoredOn": instant(self.moment)}
        if self.minutes is not None:
            return {**base, "status": "completed", "code": self.concept.json(),
                    "performedPeriod": {"start": instant(self.moment),
                                        "end": instant(self.moment + dt.timedelta(minutes=self.minutes))}}
        return {**base, "status": "completed", "code": self.concept.json(), "performedDateTime": instant(self.moment)}


Event = Encounter | Condition | Observation | Order


@dataclass
class Record:
    """A synthetic patient: the Patient resource, the events the patient columns give
    (``events``, in the writer's order) and, with a timeline, the placed history
    (``visits``, written first in time order, and ``history``, written last)."""

    patient: dict[str, Any]
    birth: dt.date
    events: list[Event] = field(default_factory=list)
    visits: list[Encounter] = field(default_factory=list)
    history: list[Event] = field(default_factory=list)
    end: dt.date | None = None  # the death's day, if the patient died: nothing happens after it
    # the person, typed (the Patient resource says the same): what a non-FHIR format reads
    gender: str = "unknown"
    race: Concept | None = None
    ethnicity: Concept | None = None
    death: dt.datetime | None = None  # when the model dates the death
    deceased: bool = False

    @property
    def ref(self) -> dict[str, str]:
        return {"reference": f"Patient/{self.patient['id']}"}

    @property
    def conditions(self) -> list[Condition]:
        return [e for e in self.events if isinstance(e, Condition)]

    def resources(self) -> list[dict[str, Any]]:
        """The record as R4 resources: the Patient, the history's encounters by start, the
        patient columns' events, then the history's other events."""
        ref = self.ref
        visits = sorted(self.visits, key=lambda e: e.start)
        out = [self.patient] + [e.json(ref) for e in (*visits, *self.events, *self.history)]
        for resource in out:  # every one is marked synthetic, as HL7 asks of test data
            resource.setdefault("meta", {})["security"] = [dict(SYNTHETIC)]
        return out
