"""Data-quality findings for the data owner, right after ingest.

Problems in an export that would otherwise surface only as odd synthetic data: a column
that is (almost) always missing or ``other``, a code list that matched nothing (a lab whose
LOINC codes the export does not use), a resource type the schema reads but the export does
not hold (its columns would be generated from noise alone), references that resolve to no
patient, files and lines skipped.

These are exact counts from the real data (not differentially private): they go to the
screen of whoever runs privsynth and to the internal report, never into the shareable
directory. Messages name columns, resource types and counts, never a patient's value.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from privsynth.domain import encode

if TYPE_CHECKING:
    from privsynth.ingest import Ingest
from privsynth.schema.model import CategoricalDomain, Schema

MOSTLY = 0.95  # a column this often missing or 'other' is reported
CODE_SYSTEMS = {"Observation": "LOINC", "Condition": "SNOMED CT", "MedicationRequest": "RxNorm",
                "Procedure": "SNOMED CT", "Encounter": "class"}


@dataclass(frozen=True)
class Finding:
    """One data-quality finding: what, how many, and what to check."""

    kind: str
    subject: str
    message: str
    hint: str = ""

    def line(self) -> str:
        return f"{self.subject}: {self.message}" + (f" ({self.hint})" if self.hint else "")

    def as_dict(self) -> dict[str, str]:
        return {"kind": self.kind, "subject": self.subject, "message": self.message, "hint": self.hint}


def findings(view: pd.DataFrame, schema: Schema, ingest: Ingest) -> list[Finding]:
    """The findings of one ingest: ``view`` is the patient view, ``ingest`` what reading it counted."""
    return findings_of(column_stats(view, schema), schema, ingest)


def findings_of(stats: ColumnStats, schema: Schema, ingest: Ingest) -> list[Finding]:
    """The findings from the view's per-column counts (:func:`column_stats`, summed over
    shards when the view is sharded) and what reading it counted."""
    if stats.rows == 0:
        return [Finding("empty", "input", "no patients were read")]
    out, absent_types = _absent_resources(schema, ingest)
    out += _column_findings(stats, schema, absent_types)
    return out + _ingest_findings(schema, ingest)


@dataclass
class ColumnStats:
    """Per learned column: patients with no value, with a value ('present': a flag set or a
    count above zero) and with an 'other' code; exact counts that add up over shards."""

    rows: int = 0
    missing: Counter[str] = field(default_factory=Counter)
    present: Counter[str] = field(default_factory=Counter)
    other: Counter[str] = field(default_factory=Counter)

    def add(self, more: ColumnStats) -> ColumnStats:
        return ColumnStats(self.rows + more.rows, self.missing + more.missing, self.present + more.present,
                           self.other + more.other)


def column_stats(view: pd.DataFrame, schema: Schema) -> ColumnStats:
    """:class:`ColumnStats` of a patient view."""
    stats = ColumnStats(rows=len(view))
    if len(view) == 0:
        return stats
    codes, _ = encode(view, schema)
    for j, col in enumerate(schema.learned_columns):
        series = view[col.name]
        stats.missing[col.name] = int(series.isna().sum())
        if not col.source.summary_kind.reads_value:
            present = (series.fillna(False).astype(bool) if col.source.summary_kind.flags
                       else pd.to_numeric(series, errors="coerce").fillna(0) > 0)
            stats.present[col.name] = int(present.sum())
        domain = col.domain
        if isinstance(domain, CategoricalDomain) and domain.other_code is not None:
            stats.other[col.name] = int(np.sum(codes[:, j] == domain.other_code))
    return stats


def _absent_resources(schema: Schema, ingest: Ingest) -> tuple[list[Finding], set[str]]:
    """Resource types the schema reads that the input holds none of."""
    out: list[Finding] = []
    absent_types: set[str] = set()
    if schema.input_format != "fhir":
        return out, absent_types
    read = ingest.resources_read
    wanted = sorted({c.source.resource for c in schema.learned_columns
                     if c.source.resource and c.source.resource != "Patient"})
    for rtype in wanted:
        if not read.get(rtype):
            absent_types.add(rtype)
            columns = [c.name for c in schema.learned_columns if c.source.resource == rtype]
            out.append(Finding("resource type absent", rtype,
                               f"no {rtype} resources in the input; {len(columns)} column(s) read from them "
                               "will be learned from an empty source (all absent, zero or missing)",
                               f"export {rtype} resources, or drop these columns from the schema"))
    return out, absent_types


def _column_findings(stats: ColumnStats, schema: Schema, absent_types: set[str]) -> list[Finding]:
    """Columns mostly missing, mostly 'other' or never present, and code groups that matched nothing."""
    out: list[Finding] = []
    groups_matched: dict[tuple[str, str], bool] = {}
    never: dict[str, list[str]] = {}
    onsets = {c.onset.name for c in schema.conditions if c.onset is not None}
    for col in schema.learned_columns:
        src = col.source
        if src.resource in absent_types or src.cell is not None:
            continue  # reported above; timeline cells are reported per stream, below
        if col.name in onsets or src.anchor is not None:
            continue  # an onset (or a value around it) is missing when its condition is absent: not a data problem
        if not src.summary_kind.reads_value:
            if src.codes:
                key = (src.resource or "", src.codes)
                groups_matched[key] = groups_matched.get(key, False) or stats.present[col.name] > 0
            continue  # absent and zero are values here, not missing
        missing = stats.missing[col.name] / stats.rows
        other = stats.other[col.name] / stats.rows
        if missing >= 1.0:
            never.setdefault(src.resource or "the input", []).append(col.name)
        elif missing >= MOSTLY:
            out.append(Finding("mostly missing", col.name, f"{missing:.0%} of patients have no value",
                               "a column this empty teaches the model little; check the export or drop the column"))
        elif other >= MOSTLY:
            out.append(Finding("mostly other", col.name,
                               f"{other:.0%} of patients have a value outside the schema's categories "
                               "(written as 'other')", "the export's codes differ from the schema's category list"))
    for resource, names in sorted(never.items()):
        shown = ", ".join(names[:8]) + (f" and {len(names) - 8} more" if len(names) > 8 else "")
        out.append(Finding("never present", f"{len(names)} {resource} column(s)",
                           f"no patient has a value: {shown}", _hint(resource)))
    for (rtype, group), matched in sorted(groups_matched.items()):
        if not matched:
            system = CODE_SYSTEMS.get(rtype, "code")
            out.append(Finding("codes matched nothing", f"code group '{group}'",
                               f"none of its codes occurs in the input's {rtype} resources",
                               f"{rtype.lower()} codes in this export do not match the schema's {system} list"))
    return out


def _ingest_findings(schema: Schema, ingest: Ingest) -> list[Finding]:
    """What reading counted: empty timeline streams, unresolved references, skipped input, unusable values."""
    out: list[Finding] = []
    if schema.timeline is not None and ingest.timeline is not None:
        for stream, figures in ingest.timeline.items():
            if figures.get("events_in_window", 0) == 0:
                out.append(Finding("timeline empty", f"stream '{stream}'",
                                   "no event of the input falls in the stream's window and groups",
                                   "check the reference date, the window and the code lists"))
    unresolved = sum(ingest.unresolved_patient_reference.values())
    if unresolved:
        out.append(Finding("unresolved references", "references",
                           f"{unresolved:,} resource(s) name a patient not in the input; they were not used",
                           "export every Patient the resources refer to"))
    skipped = ingest.errors_skipped
    if skipped:
        out.append(Finding("skipped", "input", f"{sum(skipped.values()):,} bad line(s) or file(s) skipped "
                           "(--skip-bad-input): " + ", ".join(f"{k} {v:,}" for k, v in sorted(skipped.items())),
                           "the internal report lists them"))
    if ingest.files_skipped:
        out.append(Finding("skipped", "files", f"{ingest.files_skipped:,} file(s) in the input directories were "
                           "not read (not FHIR JSON or NDJSON)", "check that nothing of the export was left out"))
    for what, counted in (("unit mismatch", ingest.unit_mismatch), ("unreadable value", ingest.unreadable_value)):
        for column, count in sorted(counted.items()):
            if count:
                out.append(Finding(what, column, f"{count:,} value(s) could not be used ({what}) and count as "
                                   "missing", "the export's units or formats differ from the schema's"))
    return out


def _hint(resource: str) -> str:
    if resource == "Observation":
        return "lab codes in this export do not match the schema's LOINC lists, or it holds no such results"
    if resource == "Patient":
        return "the export's Patient resources do not carry these elements"
    return f"no {resource} of the input matches these columns' codes, filters or paths"
