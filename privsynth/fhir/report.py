"""What reading a FHIR export counted: files, resources used and skipped, references that
could not be attributed to a patient. Counts only: never a value."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from privsynth.ingest import Ingest


@dataclass
class IngestReport:
    """Counts of everything that was read, used, skipped or could not be attributed."""

    files_read: int = 0
    files_skipped: int = 0
    resources_read: dict[str, int] = field(default_factory=dict)
    resources_used: Counter[str] = field(default_factory=Counter)
    resources_not_in_schema: int = 0
    unresolved_patient: Counter[str] = field(default_factory=Counter)
    unit_mismatch: Counter[str] = field(default_factory=Counter)
    unreadable_value: Counter[str] = field(default_factory=Counter)
    errors_skipped: dict[str, int] = field(default_factory=dict)
    patients: int = 0
    patients_merged: int = 0  # Patient resources merged into another sharing an identifier (shared: merge)
    patient_key: str = "Patient.id"
    per_reference: Counter[str] = field(default_factory=Counter, repr=False)  # internal, never reported

    def to_ingest(self) -> Ingest:
        """The typed record of this ingest (what crosses into quality and the internal report)."""
        return Ingest(
            patients=self.patients, patient_key=self.patient_key, files_read=self.files_read,
            files_skipped=self.files_skipped, resources_read=dict(self.resources_read),
            resources_used=dict(self.resources_used), resources_not_in_schema=self.resources_not_in_schema,
            unresolved_patient_reference=dict(self.unresolved_patient), unit_mismatch=dict(self.unit_mismatch),
            unreadable_value=dict(self.unreadable_value), errors_skipped=dict(self.errors_skipped),
            patients_merged=self.patients_merged)
