"""The internal audit: what a release learned about the real patients, kept BESIDE it.

``<out>.audit.json`` holds what must never enter the shareable directory -- the input files'
names and hashes, exact patient counts, the ledger's place and key file, the ingest and
encoding counts, every audit figure and the report's real-data aggregates. It is typed here
until it is written (one :meth:`InternalAudit.to_json`) and read back by one
:meth:`InternalAudit.from_json` (``privsynth report`` rebuilds the report from it).

>>> note = LedgerNote("l.sqlite", "default", 0.02, "budget 'default'", "l.key", "2026-01-01", True, ())
>>> a = InternalAudit("r1", "2026-01-01T00:00:00+00:00", ({"path": "in.csv", "sha256": "ab"},),
...     PatientCounts(10, 8, 2, "Patient.id"), note, False, {}, {}, {}, {"passed": True, "checks": []}, {})
>>> InternalAudit.from_json(a.to_json()) == a
True
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from privsynth.errors import InputError

WARNING = ("INTERNAL: input files, patient counts and audit figures computed on the real patients; not "
           "differentially private; do not share")


@dataclass(frozen=True)
class PatientCounts:
    """Exact counts of the real patients (never shared)."""

    input: int
    train: int
    holdout: int
    patient_key: str


@dataclass(frozen=True)
class LedgerNote:
    """Where the ledger that charged this release lives, and what it said afterwards."""

    path: str
    budget: str
    rho: float
    summary: str  # the report's ledger line: the budget and its worst-off patient's spend
    # (audits written before ledger format 3 lack these)
    key_file: str = ""
    created: str = ""
    created_by_this_release: bool = False
    other_ledgers_nearby: tuple[str, ...] = ()


@dataclass(frozen=True)
class InternalAudit:
    """One release's internal record (see the module docstring). ``audit`` is the audit
    result as :meth:`privsynth.audit.AuditResult.as_dict` wrote it; ``report`` the report
    data (only when the gate passed)."""

    release_id: str
    created: str
    inputs: tuple[Mapping[str, str], ...]
    patients: PatientCounts
    ledger: LedgerNote
    show_counts: bool
    ingest: dict[str, Any]
    encoding: dict[str, Any]
    model: dict[str, Any]
    audit: dict[str, Any]
    seconds: dict[str, float]
    report: dict[str, Any] | None = None
    warning: str = field(default=WARNING)

    def to_json(self) -> bytes:
        doc = {"warning": self.warning, **{k: v for k, v in asdict(self).items() if k != "warning"}}
        if self.report is None:
            doc.pop("report")
        return json.dumps(doc, indent=2, default=_plain).encode()

    @classmethod
    def from_json(cls, data: bytes | str, where: str = "internal audit") -> InternalAudit:
        try:
            doc = json.loads(data)
        except json.JSONDecodeError as exc:
            raise InputError(f"{where}: not valid JSON (line {exc.lineno}); is this a privsynth audit?") from None
        if not isinstance(doc, dict) or not isinstance(doc.get("audit"), dict):
            raise InputError(f"{where}: not the internal audit of a privsynth release")
        try:
            ledger = dict(doc["ledger"])
            ledger["other_ledgers_nearby"] = tuple(ledger.get("other_ledgers_nearby") or ())
            return cls(release_id=str(doc["release_id"]), created=str(doc["created"]),
                       inputs=tuple(doc["inputs"]), patients=PatientCounts(**doc["patients"]),
                       ledger=LedgerNote(**ledger), show_counts=bool(doc["show_counts"]),
                       ingest=doc["ingest"], encoding=doc["encoding"], model=doc["model"], audit=doc["audit"],
                       seconds=doc["seconds"], report=doc.get("report"), warning=str(doc.get("warning", WARNING)))
        except (KeyError, TypeError) as exc:
            raise InputError(f"{where}: not the internal audit of a privsynth release ({exc} is missing or "
                             "malformed)") from None


def _plain(value: Any) -> Any:
    """numpy numbers and other number-likes as JSON numbers."""
    return float(value)
