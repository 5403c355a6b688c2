"""Flatten FHIR R4 resources into the PATIENT VIEW: one row per patient.

Every resource the schema reads is attributed to its patient through ``subject``,
``patient`` or ``beneficiary``, resolved as FHIR resolves references: a ``urn:uuid:``
reference within its own Bundle only (it names that Bundle's entry with the same
``fullUrl``), ``Patient/<id>`` and absolute ``.../Patient/<id>`` references by Patient.id.
A Patient's ``fullUrl`` must name the Patient's own id. Many resources per patient are
summarised as the schema says (exists, count, first, last). Resources whose patient cannot
be resolved are counted and reported. Nothing here prints; values never appear in messages.

One patient is one row: a second Patient with the same id is an error naming both places,
and so is a second Patient sharing a value of any identifier the schema keys patients by
(``patient_id``: an MRN, an SSN) -- unless the schema says ``shared: merge``, which makes
them one patient (one row, whose resources are all of theirs). Never a silent last-one-wins:
that would let one neighbour change another patient's row instead of adding one. The view's
index holds each patient's stable keys (:class:`privsynth.privacy.keys.PatientKeys`), used
only to charge the per-patient privacy budget; they never reach an output.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from privsynth.errors import InputError
from privsynth.fhir.extractor import DEFAULT_DATE, Extractor, Extractors, read_values
from privsynth.fhir.patients import DuplicatePatientError, PatientIndex, full_url_id
from privsynth.fhir.read import Location, ReadStats, discover, iter_resources, reason, validate_resource
from privsynth.fhir.reference import PATIENT_FIELDS, ref_key
from privsynth.fhir.report import IngestReport
from privsynth.fhir.summary import ColumnState, finish, read_clinical
from privsynth.fhir.value import coerce, parse_instant
from privsynth.progress import Progress
from privsynth.schema.model import Schema

__all__ = ["DEFAULT_DATE", "PATIENT_FIELDS", "IngestReport", "build_patient_view", "check_fhir_schema", "view_of"]


@dataclass
class _Charts:
    """What reading has gathered: each Patient's values and birth date, the references that
    name it, and each reference's running column summaries."""

    seen: PatientIndex
    patients: dict[str, dict[str, Any]] = field(default_factory=dict)  # patient id -> raw Patient values
    birth: dict[str, dt.date | None] = field(default_factory=dict)
    aliases: dict[str, str] = field(default_factory=dict)  # reference key -> patient id
    states: defaultdict[str, dict[str, ColumnState]] = field(
        default_factory=lambda: defaultdict(dict))  # reference key -> column -> state


def build_patient_view(
    inputs: Iterable[str | Path],
    schema: Schema,
    *,
    validate: bool = False,
    on_error: str = "raise",
    progress: Progress | None = None,
) -> tuple[pd.DataFrame, IngestReport]:
    """Read FHIR files into the patient view (raw values, one row per patient).

    Columns are the schema's learned columns. Values are raw (strings, numbers,
    booleans, None for missing); encoding to public domains happens in
    :mod:`privsynth.domain`, which counts what falls outside them.
    """
    check_fhir_schema(schema, on_error)
    stats = ReadStats()
    files = discover(list(inputs), stats)
    resources = iter_resources(files, stats, on_error, _ticker(progress, len(files)))
    frame, report = view_of(resources, stats, schema, validate=validate, on_error=on_error)
    report.files_skipped = len(stats.files_skipped)
    return frame, report


def check_fhir_schema(schema: Schema, on_error: str) -> None:
    if schema.input_format != "fhir":
        raise InputError("this schema describes a table; use a table input, not FHIR files")
    if on_error not in ("raise", "skip"):
        raise InputError("on_error must be 'raise' or 'skip'")


def view_of(
    resources: Iterable[tuple[dict[str, Any], Location]], stats: ReadStats, schema: Schema, *,
    validate: bool = False, on_error: str = "raise", require_patients: bool = True,
) -> tuple[pd.DataFrame, IngestReport]:
    """The patient view of ``resources`` (each with where it was read); what reading them
    skipped is counted in ``stats``. The one code path that decides what a patient's row is:
    the whole export here, or one shard of it (:mod:`privsynth.engine.ingest`), where a
    shard without patients is no error (``require_patients=False``)."""
    compiled = Extractors(schema)
    report = IngestReport()
    charts = _Charts(PatientIndex(schema.patient_id))
    for resource, loc in resources:
        try:
            _read_resource(resource, loc, compiled, charts, report, validate)
        except InputError as exc:
            if on_error != "skip" or isinstance(exc, DuplicatePatientError):
                raise
            stats.errors_skipped[reason(exc)] += 1

    report.files_read = stats.files_read
    report.resources_read = dict(stats.resources)
    report.errors_skipped = dict(stats.errors_skipped)
    if not charts.patients and require_patients:
        raise InputError(
            "no Patient resource found in the input; the patient view needs one Patient per "
            "patient (Bundles with a Patient entry, or a Patient.ndjson file)"
        )
    frame = _assemble(schema, charts, report)
    report.patients = len(frame)
    report.patient_key = schema.patient_id.describe("fhir")
    return frame, report


def _ticker(progress: Progress | None, total: int) -> Callable[[int], None]:
    """Counts the files read, reporting each step to ``progress``."""
    done = 0

    def tick(n: int) -> None:
        nonlocal done
        done += n
        if progress is not None:
            progress("read", done, total)

    return tick


def _read_resource(
    resource: dict[str, Any], loc: Location, compiled: Extractors, charts: _Charts, report: IngestReport,
    validate: bool,
) -> None:
    """Read one resource into the charts: a Patient, a clinical resource the schema reads, or
    (only counted) one it does not."""
    rtype = resource["resourceType"]
    if rtype != "Patient" and rtype not in compiled.by_type:
        report.resources_not_in_schema += 1
        return
    if validate:
        validate_resource(resource, loc)
    if rtype == "Patient":
        _read_patient(resource, loc, compiled.by_type.get("Patient", []), charts, report)
    else:
        read_clinical(resource, rtype, loc, compiled, charts.states, report)


def _read_patient(
    resource: dict[str, Any], loc: Location, extractors: list[Extractor], charts: _Charts, report: IngestReport,
) -> None:
    pid = resource.get("id")
    if not isinstance(pid, str) or not pid:
        raise InputError(f"{loc.describe('Patient.id')}: missing; every Patient needs an id")
    full_url = resource.get("_fullUrl")
    if isinstance(full_url, str) and full_url_id(full_url) != pid:
        raise DuplicatePatientError(
            f"{loc.describe('Bundle.entry.fullUrl')}: does not name this Patient's own id. A Patient's fullUrl must be "
            "urn:uuid:<Patient.id> or <base>/Patient/<Patient.id>: references to it would otherwise reach another "
            "patient's record")
    charts.seen.add(pid, resource, loc)
    values: dict[str, Any] = {}
    for ex in extractors:
        found = read_values(ex, resource, loc)
        values[ex.column.name] = found[0] if found else None
    charts.patients[pid] = values
    born = parse_instant(resource.get("birthDate"))
    charts.birth[pid] = born.date() if born else None
    charts.aliases["Patient/" + pid] = pid
    if isinstance(full_url, str) and full_url.startswith("urn:uuid:"):
        charts.aliases[ref_key(full_url, loc.file)] = pid
    report.resources_used["Patient"] += 1


def _merged(schema: Schema, charts: _Charts, report: IngestReport) -> dict[str, dict[str, ColumnState]]:
    """Each patient's column states, over every reference that names it (and every chart
    merged into it); references to a Patient not in the input are counted as unresolved."""
    merged: dict[str, dict[str, ColumnState]] = defaultdict(dict)
    for key, cols in charts.states.items():
        pid = charts.aliases.get(key)
        if pid is None:
            report.unresolved_patient["(reference to a Patient not in the input)"] += report.per_reference[key]
            continue
        pid = charts.seen.root(pid)  # a merged chart's resources are its patient's
        target = merged[pid]
        for name, st in cols.items():
            if name not in target:
                target[name] = st
            else:
                target[name].absorb(st, schema.column(name).source.summary_kind)
    return merged


def _assemble(schema: Schema, charts: _Charts, report: IngestReport) -> pd.DataFrame:
    merged = _merged(schema, charts, report)
    ids = sorted(pid for pid in charts.patients if pid not in charts.seen.parent)
    report.patients_merged = len(charts.seen.parent)
    data: dict[str, list[Any]] = {}
    for col in schema.view_columns:
        out: list[Any] = []
        for pid in ids:
            if col.source.resource == "Patient":
                raw = charts.patients[pid].get(col.name)
            else:
                states = merged.get(pid, {})
                raw = finish(col, states.get(col.name), states)
            out.append(coerce(col, raw, schema, charts.birth.get(pid), report))
        data[col.name] = out
    # the index is each patient's stable keys (internal: they key the budget ledger, never an output)
    return pd.DataFrame(data, index=pd.Index([charts.seen.patient_keys(pid) for pid in ids], name="patient_id",
                                             dtype=object))
