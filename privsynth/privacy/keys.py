"""The stable keys a patient is known by, for the per-patient budget ledger.

A patient may be known by several stable identifiers at once: a FHIR ``Patient.id``, the
hospital's MRN, an SSN -- whichever of them the schema lists. The ledger charges a release
to every one of them and links them to one person, so that re-keying the same patients
(by Patient.id, then by MRN, then by SSN) cannot reset their budget.

>>> keys = PatientKeys(("p1", "http://hospital.example.org/mrn|MRN7"))
>>> keys.primary, len(keys.values)
('p1', 2)
>>> str(keys)
'p1'
>>> as_keys("row-hash-0a1b").values
('row-hash-0a1b',)
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class PatientKeys:
    """Every stable key of one patient, the primary (the schema's ``patient_id``) first.

    Keys are raw identifiers: they live only in memory on the data owner's side and reach
    the ledger as keyed hashes, never as text."""

    values: tuple[str, ...]

    def __post_init__(self) -> None:
        if not self.values or not all(isinstance(v, str) and v for v in self.values):
            raise ValueError("a patient needs at least one non-empty key")

    @property
    def primary(self) -> str:
        return self.values[0]

    def __str__(self) -> str:
        return self.primary

    def __repr__(self) -> str:  # never print identifiers
        return f"PatientKeys({len(self.values)} key(s))"


def identifier_key(system: str, value: str) -> str:
    """The key of an identifier: its system and value (a value alone may recur across systems)."""
    return f"{system}|{value}"


def as_keys(value: object) -> PatientKeys:
    """A view index entry as the patient's keys (a plain id or row hash is one key)."""
    if isinstance(value, PatientKeys):
        return value
    return PatientKeys((str(value),))
