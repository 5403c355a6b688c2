"""Who is who in a FHIR export: one Patient resource per patient, and each patient's keys.

A second Patient with the same id is refused; so is a second Patient sharing a value of any
identifier the schema keys patients by (an MRN, an SSN), unless the schema says ``shared:
merge`` (then the two charts are one patient). Every patient's stable keys -- Patient.id,
the primary identifier, the listed identifiers -- are collected for the budget ledger.
Messages name files and entries, never an id.
"""

from __future__ import annotations

from typing import Any

from privsynth.errors import InputError
from privsynth.fhir.read import Location
from privsynth.privacy.keys import PatientKeys, identifier_key
from privsynth.schema.model import PatientKey


class DuplicatePatientError(InputError):
    """Two Patient resources claim one patient (or one alias): never skipped, whatever ``on_error`` says."""


class PatientIndex:
    """Where each Patient was read, by Patient.id and by every identifier the schema keys
    patients by, to refuse (or, with ``shared: merge``, to merge) a second Patient claiming
    one; and each patient's stable keys."""

    def __init__(self, key: PatientKey) -> None:
        self.system = key.identifier_system
        self.systems = ((key.identifier_system,) if key.identifier_system else ()) + key.identifiers
        self.merge = key.shared == "merge"
        self.by_id: dict[str, Location] = {}
        self.by_identifier: dict[str, tuple[str, Location]] = {}
        self.keys: dict[str, list[str]] = {}  # Patient.id -> its stable keys, the primary first
        self.parent: dict[str, str] = {}  # merged Patients: Patient.id -> the one it was merged into

    def add(self, pid: str, resource: dict[str, Any], loc: Location) -> None:
        if pid in self.by_id:
            raise duplicate("Patient.id", self.by_id[pid], loc)
        identifiers = [i for i in resource.get("identifier") or [] if isinstance(i, dict)]
        keys = [pid]
        if self.system is not None:
            values = [i.get("value") for i in identifiers if i.get("system") == self.system]
            if not values or not isinstance(values[0], str) or not values[0]:
                raise InputError(f"{loc.describe('Patient.identifier')}: no identifier of system {self.system}; the "
                                 "schema's patient_id needs it on every Patient (it keys the privacy budget)")
            keys = [values[0], pid]  # the primary key as earlier ledgers hashed it, and Patient.id always
        for system in self.systems:
            for value in (i.get("value") for i in identifiers if i.get("system") == system):
                if not isinstance(value, str) or not value:
                    continue
                key = identifier_key(system, value)
                keys.append(key)
                if key in self.by_identifier:
                    other, first = self.by_identifier[key]
                    if not self.merge:
                        raise duplicate(f"Patient.identifier ({system})", first, loc, merge_hint=True)
                    self._union(other, pid)
                else:
                    self.by_identifier[key] = (pid, loc)
        self.by_id[pid] = loc
        self.keys[pid] = list(dict.fromkeys(keys))

    def root(self, pid: str) -> str:
        while pid in self.parent:
            pid = self.parent[pid]
        return pid

    def _union(self, first: str, second: str) -> None:
        a, b = self.root(first), self.root(second)
        if a != b:
            self.parent[b] = a  # the Patient read first stays the patient's row

    def patient_keys(self, pid: str) -> PatientKeys:
        """Every key of the patient whose row ``pid`` is (itself and all merged into it)."""
        keys = list(self.keys[pid])
        if self.parent:
            for other in self.parent:
                if self.root(other) == pid:
                    keys.extend(self.keys[other])
        return PatientKeys(tuple(dict.fromkeys(keys)))


def duplicate(what: str, first: Location, second: Location, merge_hint: bool = False) -> DuplicatePatientError:
    hint = (" If they are two charts of the same person, say `shared: merge` under the schema's patient_id to make "
            "them one patient." if merge_hint else "")
    return DuplicatePatientError(
        f"{second.describe(what)}: the same {what} as the Patient at {first.describe()}. One patient must be "
        "one Patient (the privacy unit): if these are two exports of the same patients, give one of them; if they "
        f"are different patients, their ids must differ.{hint}")


def full_url_id(full_url: str) -> str | None:
    """The resource id a Patient's fullUrl names (``urn:uuid:<id>`` or ``<base>/Patient/<id>``)."""
    if full_url.startswith("urn:uuid:"):
        return full_url[len("urn:uuid:"):]
    if "/Patient/" in full_url or full_url.startswith("Patient/"):
        return full_url.rsplit("Patient/", 1)[1].split("/_history", 1)[0]
    return None
