"""What reading the input found: one typed record for FHIR exports and tables alike.

It crosses module boundaries (ingest -> data-quality findings -> the internal report of
``synthesize`` and ``release``) as this frozen record, and becomes JSON only when it is
written (:meth:`Ingest.as_dict`). Every figure is an exact count from the real data: it
belongs to the data owner's internal files and screen, never to a shareable directory.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from privsynth.quality import Finding


@dataclass(frozen=True)
class Ingest:
    """Counts of what was read, used, skipped or could not be attributed (internal)."""

    patients: int
    patient_key: str
    files_read: int = 0
    files_skipped: int = 0
    resources_read: dict[str, int] = field(default_factory=dict)
    resources_used: dict[str, int] = field(default_factory=dict)
    resources_not_in_schema: int = 0
    unresolved_patient_reference: dict[str, int] = field(default_factory=dict)
    unit_mismatch: dict[str, int] = field(default_factory=dict)
    unreadable_value: dict[str, int] = field(default_factory=dict)
    errors_skipped: dict[str, int] = field(default_factory=dict)
    patients_merged: int = 0
    timeline: dict[str, dict[str, int]] | None = None  # per stream: kept and dropped events (timeline schemas)
    rows_sharing_a_key: int = 0  # tables keyed by row content: rows whose key another row has too
    data_quality: tuple[Finding, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "files_read": self.files_read,
            "files_skipped": self.files_skipped,
            "patients": self.patients,
            "resources_read": dict(sorted(self.resources_read.items())),
            "resources_used": dict(sorted(self.resources_used.items())),
            "resources_not_in_schema": self.resources_not_in_schema,
            "unresolved_patient_reference": dict(self.unresolved_patient_reference),
            "patient_key": self.patient_key,
            "patients_merged": self.patients_merged,
            "unit_mismatch": dict(self.unit_mismatch),
            "unreadable_value": dict(self.unreadable_value),
            "errors_skipped": dict(self.errors_skipped),
            "rows_sharing_a_key": self.rows_sharing_a_key,
            "data_quality": [f.as_dict() for f in self.data_quality],
        }
        if self.timeline is not None:
            out["timeline"] = self.timeline
        return out
