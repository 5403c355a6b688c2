"""Which schema columns the FHIR writer writes back, and as what: Patient elements,
Conditions with their onsets, Observations (alone or as a panel's components), Encounters
and other resources written as many as a whole-record count says. What it cannot write is
named (:func:`unwritten`), so a column is never learned and then silently dropped."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from privsynth.domain import is_missing
from privsynth.schema.model import Column, Schema

RACE_URL = "http://hl7.org/fhir/us/core/StructureDefinition/us-core-race"
ETHNICITY_URL = "http://hl7.org/fhir/us/core/StructureDefinition/us-core-ethnicity"
COUNTED = ("MedicationRequest", "Procedure")  # whole-record counts written as that many resources


@dataclass(frozen=True)
class WritePlan:
    """Which columns feed which resources; computed once per schema."""

    patient: dict[str, Column]
    conditions: list[tuple[Column, Column | None]]
    observations: list[Column]
    encounters: list[Column]
    panels: list[list[Column]] = field(default_factory=list)  # components of one Observation (a code group)
    counts: list[Column] = field(default_factory=list)  # other resources written as many as the count says

    @classmethod
    def of(cls, schema: Schema) -> WritePlan:
        """The plan of ``schema``'s view columns."""
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
                role = _patient_role(path, src.transform)
                if role is not None:
                    patient[role] = col
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
        return cls(patient, conditions, observations, encounters, list(panels.values()), counts)


def _patient_role(path: str, transform: str | None) -> str | None:
    """What a Patient column's path makes it in the written Patient (None: not written)."""
    if path == "gender":
        return "gender"
    if path == "birthDate" and transform == "age":
        return "age"
    if RACE_URL in path:
        return "race"
    if ETHNICITY_URL in path:
        return "ethnicity"
    if path == "address.state":
        return "state"
    if path.startswith("maritalStatus"):
        return "marital"
    if path.startswith("deceased") and transform == "age":
        return "death_years"
    if path.startswith("deceased"):
        return "deceased"
    return None


def present(value: Any) -> bool:
    """Whether a synthetic row's value is there (not missing)."""
    return not is_missing(value)


def unwritten(schema: Schema) -> list[tuple[str, str]]:
    """The view columns a FHIR schema reads but the writer cannot write back, each with why:
    what ``schema check`` reports, so a column is never learned and then silently dropped.
    Derived columns are computed, not read, and go to patients.csv."""
    if schema.input_format != "fhir":
        return []
    plan = WritePlan.of(schema)
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


def unnamed_orders(schema: Schema) -> list[str]:
    """The whole-record counts of prescriptions or procedures whose schema column names no code
    group: each is written as an order that says it is not specified."""
    return [c.name for c in WritePlan.of(schema).counts if c.source.resource in COUNTED and not c.source.codes]
