"""The stable keys a patient is known by, for the per-patient budget ledger.

A patient may be known by several stable identifiers at once: a FHIR ``Patient.id``, the
hospital's MRN, an SSN -- whichever of them the schema lists. The ledger charges a release
to every one of them and links them to one person, so that re-keying the same patients
(by Patient.id, then by MRN, then by SSN) cannot reset their budget.

>>> import pickle
>>> keys = PatientKeys(("p1", "http://hospital.example.org/mrn|MRN7"))
>>> keys.primary, len(keys.values)
('p1', 2)
>>> keys == "p1", pickle.loads(pickle.dumps(keys)).values == keys.values
(True, True)
>>> as_keys("row-hash-0a1b").values
('row-hash-0a1b',)
"""

from __future__ import annotations


class PatientKeys(str):
    """Every stable key of one patient, the primary (the schema's ``patient_id``) first.

    It IS the primary key as a string (so a view indexed by it is looked up, sorted and
    de-duplicated by the primary id as before) and carries the others in ``values``. Keys are
    raw identifiers: they live only in memory on the data owner's side and reach the ledger
    as keyed hashes, never as text."""

    values: tuple[str, ...]

    def __new__(cls, values: tuple[str, ...]) -> PatientKeys:
        values = tuple(values)
        if not values or not all(isinstance(v, str) and v for v in values):
            raise ValueError("a patient needs at least one non-empty key")
        obj = super().__new__(cls, values[0])
        obj.values = values
        return obj

    def __getnewargs__(self) -> tuple[tuple[str, ...]]:  # type: ignore[override]
        return (self.values,)

    @property
    def primary(self) -> str:
        return self.values[0]

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
