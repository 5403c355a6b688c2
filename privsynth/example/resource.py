"""The building blocks of the example hospital's FHIR R4 resources: code systems, codings,
references, instants and identifiers, everything random drawn from the caller's ``rng``."""

from __future__ import annotations

import datetime as dt
import math
import uuid
from typing import Any

import numpy as np

SNOMED = "http://snomed.info/sct"
LOINC = "http://loinc.org"
UCUM = "http://unitsofmeasure.org"
RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
TERM = "http://terminology.hl7.org/CodeSystem/"
YEAR = dt.timedelta(days=365.25)
DAY = dt.timedelta(days=1)

Resource = dict[str, Any]
Code = tuple[str, str]


def sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


def new_uuid(rng: np.random.Generator) -> str:
    """A version-4 UUID from 16 bytes of ``rng``."""
    return str(uuid.UUID(bytes=rng.bytes(16), version=4))


def between(rng: np.random.Generator, lo: dt.datetime, hi: dt.datetime) -> dt.datetime:
    """A minute-aligned instant in [lo, hi)."""
    return (lo + (hi - lo) * rng.random()).replace(second=0, microsecond=0)


def iso(t: dt.datetime) -> str:
    return t.isoformat(timespec="seconds")


def concept(system: str, code: Code) -> dict[str, Any]:
    """A CodeableConcept of one coding, its display as its text."""
    return {"coding": [{"system": system, "code": code[0], "display": code[1]}], "text": code[1]}


def reference(pid: str) -> dict[str, str]:
    """A reference to the resource with id ``pid`` as its Bundle entry names it (``urn:uuid:``)."""
    return {"reference": f"urn:uuid:{pid}"}
