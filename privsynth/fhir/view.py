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
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from privsynth.errors import InputError
from privsynth.fhir.patients import DuplicatePatientError, PatientIndex, full_url_id
from privsynth.fhir.read import Location, ReadStats, discover, iter_resources, reason, validate_resource
from privsynth.ingest import Ingest
from privsynth.progress import Progress
from privsynth.schema.model import Column, Schema
from privsynth.schema.path import ShapeError, compile_path
from privsynth.schema.timeline import Stream

PATIENT_FIELDS = ("subject", "patient", "beneficiary")
DEFAULT_DATE = {
    "Observation": "effective[x]",
    "Condition": "onset[x]",
    "Encounter": "period.start",
    "Procedure": "performed[x]",
    "MedicationRequest": "authoredOn",
    "Immunization": "occurrence[x]",
    "AllergyIntolerance": "recordedDate",
    "DiagnosticReport": "effective[x]",
    "CarePlan": "period.start",
}


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


@dataclass
class _Extractor:
    column: Column
    read: Callable[[Any], list[Any]] | None
    date: Callable[[Any], list[Any]] | None
    wheres: list[tuple[Callable[[Any], list[Any]], frozenset[str]]]
    cells: tuple[Column, ...] = ()  # a timeline group: its columns, most recent cell first
    stream: Stream | None = None  # and its stream
    edges: list[dt.date] = field(default_factory=list)  # the stream's cell boundaries (Stream.edges)


class _Compiled:
    """Per resource type: which columns read it and how."""

    def __init__(self, schema: Schema) -> None:
        self.by_type: dict[str, list[_Extractor]] = defaultdict(list)
        self.code_index: dict[str, dict[tuple[str, str], list[_Extractor]]] = defaultdict(dict)
        self.uncoded: dict[str, list[_Extractor]] = defaultdict(list)
        cells: dict[str, list[Column]] = defaultdict(list)
        for col in schema.view_columns:
            if col.source.cell is not None:
                cells[col.name.rsplit("_", 1)[0]].append(col)
        for col in schema.view_columns:
            src = col.source
            if src.resource is None or (src.cell is not None and src.cell[1] > 0):
                continue  # a timeline group reads once, into the cell its date falls in
            rtype = src.resource
            read = compile_path(src.path, rtype) if src.path else None
            date_text = src.date or DEFAULT_DATE.get(rtype)
            date = compile_path(date_text, rtype) if date_text else None
            wheres = [(compile_path(w.path, rtype), w.values) for w in src.where]
            ex = _Extractor(col, read, date, wheres)
            if src.cell is not None and schema.timeline is not None:
                ex.cells = tuple(cells[col.name.rsplit("_", 1)[0]])
                ex.stream = schema.timeline.stream(src.cell[0])
                ex.edges = ex.stream.edges(schema.reference)
            self.by_type[rtype].append(ex)
            if src.codes is not None:
                group = schema.code_groups[src.codes]
                for c in group.codes:
                    self.code_index[rtype].setdefault((group.system, c.code), []).append(ex)
            else:
                self.uncoded[rtype].append(ex)
        self.code_paths = {rtype: compile_path(_code_element(rtype) + ".coding", rtype) for rtype in self.code_index}


def _code_element(rtype: str) -> str:
    """The element a resource's codes are matched on: ``code``, else a medication concept."""
    from privsynth.schema.path import element_fields

    fields = element_fields(rtype)
    return "code" if "code" in fields else "medicationCodeableConcept"


def _patient_ref(resource: dict[str, Any]) -> str | None:
    for name in PATIENT_FIELDS:
        ref = resource.get(name)
        if isinstance(ref, dict):
            value = ref.get("reference")
            return value if isinstance(value, str) else ""
        if isinstance(ref, list):  # e.g. R5 shapes or odd exports
            return ""
    return None


def _ref_key(ref: str, file: str) -> str:
    """Normalise a reference to a key comparable with Patient keys. A ``urn:uuid:`` reference
    resolves within its own Bundle (file) only: the same uuid in another Bundle is another
    resource."""
    if ref.startswith("urn:uuid:"):
        return f"{file}#{ref}"
    if "/Patient/" in ref:
        ref = "Patient/" + ref.rsplit("/Patient/", 1)[1]
    if ref.startswith("Patient/"):
        return "Patient/" + ref[len("Patient/") :].split("/_history", 1)[0]
    return ref


def _parse_instant(value: Any) -> dt.datetime | None:
    if isinstance(value, dict):  # a Period
        value = value.get("start") or value.get("end")
    if not isinstance(value, str) or len(value) < 4:
        return None
    try:
        if len(value) == 4:
            return dt.datetime(int(value), 1, 1, tzinfo=dt.UTC)
        if len(value) == 7:
            return dt.datetime(int(value[:4]), int(value[5:7]), 1, tzinfo=dt.UTC)
        parsed = dt.datetime.fromisoformat(value)
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=dt.UTC)
    return parsed


def _years_between(start: dt.date, end: dt.date) -> int:
    years = end.year - start.year
    if (end.month, end.day) < (start.month, start.day):
        years -= 1
    return years


class _State:
    """The running summary of one column for one patient."""

    __slots__ = ("count", "date", "value", "series")

    def __init__(self) -> None:
        self.count = 0
        self.date: dt.datetime | None = None
        self.value: Any = None
        self.series: list[tuple[dt.datetime, Any]] = []  # a value anchored to an onset: every dated value


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
    if schema.input_format != "fhir":
        raise InputError("this schema describes a table; use a table input, not FHIR files")
    if on_error not in ("raise", "skip"):
        raise InputError("on_error must be 'raise' or 'skip'")
    stats = ReadStats()
    files = discover(list(inputs), stats)
    compiled = _Compiled(schema)
    wanted = set(compiled.by_type) | {"Patient"}
    patient_cols = compiled.by_type.get("Patient", [])
    report = IngestReport()

    patients: dict[str, dict[str, Any]] = {}  # patient id -> raw Patient values
    birth: dict[str, dt.date | None] = {}
    aliases: dict[str, str] = {}  # reference key -> patient id
    seen = PatientIndex(schema.patient_id)
    states: dict[str, dict[str, _State]] = defaultdict(dict)  # reference key -> column -> state

    done = 0

    def tick(n: int) -> None:
        nonlocal done
        done += n
        if progress is not None:
            progress("read", done, len(files))

    for resource, loc in iter_resources(files, stats, on_error, tick):
        rtype = resource["resourceType"]
        if rtype not in wanted:
            report.resources_not_in_schema += 1
            continue
        try:
            if validate:
                validate_resource(resource, loc)
            if rtype == "Patient":
                _read_patient(resource, loc, patient_cols, patients, birth, aliases, seen, report)
                continue
            _read_clinical(resource, rtype, loc, compiled, states, report)
        except InputError as exc:
            if on_error != "skip" or isinstance(exc, DuplicatePatientError):
                raise
            stats.errors_skipped[reason(exc)] += 1

    report.files_read = stats.files_read
    report.files_skipped = len(stats.files_skipped)
    report.resources_read = dict(stats.resources)
    report.errors_skipped = dict(stats.errors_skipped)
    if not patients:
        raise InputError(
            "no Patient resource found in the input; the patient view needs one Patient per "
            "patient (Bundles with a Patient entry, or a Patient.ndjson file)"
        )
    frame = _assemble(schema, patients, birth, aliases, states, report, seen)
    report.patients = len(frame)
    report.patient_key = schema.patient_id.describe("fhir")
    return frame, report


def _read_patient(
    resource: dict[str, Any], loc: Location, extractors: list[_Extractor],
    patients: dict[str, dict[str, Any]], birth: dict[str, dt.date | None],
    aliases: dict[str, str], seen: PatientIndex, report: IngestReport,
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
    seen.add(pid, resource, loc)
    values: dict[str, Any] = {}
    for ex in extractors:
        found = _read(ex, resource, loc)
        values[ex.column.name] = found[0] if found else None
    patients[pid] = values
    born = _parse_instant(resource.get("birthDate"))
    birth[pid] = born.date() if born else None
    aliases["Patient/" + pid] = pid
    if isinstance(full_url, str) and full_url.startswith("urn:uuid:"):
        aliases[_ref_key(full_url, loc.file)] = pid
    report.resources_used["Patient"] += 1


def _shape_error(loc: Location, exc: ShapeError) -> InputError:
    """An R4 shape mismatch as an input error at the resource's location."""
    return InputError(f"{loc.describe(exc.element)}: {str(exc).split(': ', 1)[-1]}")


def _read(ex: _Extractor, resource: dict[str, Any], loc: Location) -> list[Any]:
    if ex.read is None:
        return []
    try:
        return ex.read(resource)
    except ShapeError as exc:
        raise _shape_error(loc, exc) from None


def _read_clinical(
    resource: dict[str, Any], rtype: str, loc: Location, compiled: _Compiled,
    states: dict[str, dict[str, _State]], report: IngestReport,
) -> None:
    extractors = list(compiled.uncoded.get(rtype, ()))
    index = compiled.code_index.get(rtype)
    if index:
        try:
            codings = compiled.code_paths[rtype](resource)
        except ShapeError as exc:
            raise _shape_error(loc, exc) from None
        seen: set[int] = set()
        for coding in codings:
            if isinstance(coding, dict):
                coded = (str(coding.get("system")), str(coding.get("code")))
                for ex in index.get(coded, ()):
                    if id(ex) not in seen:
                        seen.add(id(ex))
                        extractors.append(ex)
    if not extractors:
        return
    ref = _patient_ref(resource)
    if ref is None:
        raise InputError(
            f"{loc.describe(rtype + '.subject')}: missing; every {rtype} must reference its "
            "patient (subject or patient)"
        )
    if not ref:
        report.unresolved_patient[rtype] += 1
        return
    key = _ref_key(ref, loc.file)
    used = False
    per_patient = states[key]
    for ex in extractors:
        ok = True
        for read_where, allowed in ex.wheres:
            try:
                got = read_where(resource)
            except ShapeError as exc:
                raise _shape_error(loc, exc) from None
            if not any(str(v) in allowed for v in got):
                ok = False
                break
        if not ok:
            continue
        cell = _cell(ex, resource, loc) if ex.cells else ex.column
        if cell is None:
            continue  # outside the stream's window
        col = cell
        summary = col.source.summary_kind
        if col.name not in per_patient:
            per_patient[col.name] = _State()
        state = per_patient[col.name]
        used = True
        state.count += 1
        if not summary.reads_value:
            continue
        values = _read(ex, resource, loc)
        if not values:
            continue
        when = None
        if ex.date is not None:
            dates = ex.date(resource)
            when = _parse_instant(dates[0]) if dates else None
        if col.source.anchor is not None:  # which value is kept depends on the onset: at the end
            if when is not None:
                state.series.append((when, values[0]))
            continue
        if when is None:
            when = dt.datetime.min.replace(tzinfo=dt.UTC)
        if summary.better(when, state.date):
            state.date = when
            state.value = values[0]
    if used:
        report.resources_used[rtype] += 1
        report.per_reference[key] += 1


def _cell(ex: _Extractor, resource: dict[str, Any], loc: Location) -> Column | None:
    """The timeline column (grain cell) an event falls in, or None outside the window."""
    if ex.date is None or ex.stream is None:
        return None
    try:
        dates = ex.date(resource)
    except ShapeError as exc:
        raise _shape_error(loc, exc) from None
    when = _parse_instant(dates[0]) if dates else None
    if when is None:
        return None
    cell = ex.stream.cell_of(when.date(), ex.edges[-1], ex.edges)
    return None if cell is None else ex.cells[cell]


def _assemble(
    schema: Schema, patients: dict[str, dict[str, Any]], birth: dict[str, dt.date | None],
    aliases: dict[str, str], states: dict[str, dict[str, _State]], report: IngestReport,
    seen: PatientIndex,
) -> pd.DataFrame:
    merged: dict[str, dict[str, _State]] = defaultdict(dict)
    for key, cols in states.items():
        pid = aliases.get(key)
        if pid is None:
            report.unresolved_patient["(reference to a Patient not in the input)"] += report.per_reference[key]
            continue
        pid = seen.root(pid)  # a merged chart's resources are its patient's
        target = merged[pid]
        for name, st in cols.items():
            if name not in target:
                target[name] = st
                continue
            cur = target[name]
            cur.count += st.count
            cur.series += st.series
            if st.date is not None and schema.column(name).source.summary_kind.better(st.date, cur.date):
                cur.date, cur.value = st.date, st.value
    ids = sorted(pid for pid in patients if pid not in seen.parent)
    report.patients_merged = len(seen.parent)
    data: dict[str, list[Any]] = {}
    for col in schema.view_columns:
        out: list[Any] = []
        for pid in ids:
            if col.source.resource == "Patient":
                raw = patients[pid].get(col.name)
            else:
                found = merged.get(pid, {}).get(col.name)
                if col.source.anchor is not None:
                    raw = _anchored(col.source.anchor, found, merged.get(pid, {}))
                elif found is None:
                    raw = col.source.summary_kind.finish(0, None)
                else:
                    raw = col.source.summary_kind.finish(found.count, found.value)
            out.append(_coerce(col, raw, schema, birth.get(pid), report))
        data[col.name] = out
    # the index is each patient's stable keys (internal: they key the budget ledger, never an output)
    return pd.DataFrame(data, index=pd.Index([seen.patient_keys(pid) for pid in ids], name="patient_id",
                                             dtype=object))


def _anchored(anchor: tuple[str, int, int], found: _State | None, states: dict[str, _State]) -> Any:
    """Of a patient's dated values, the one nearest the middle of ``anchor``'s span of days
    after the condition's onset (the earliest, its onset column's value); None without an
    onset or a value in the span. Ties go to the earlier value."""
    onset_state = states.get(anchor[0])
    onset = _parse_instant(onset_state.value) if onset_state is not None else None
    if found is None or onset is None:
        return None
    first, last = anchor[1], anchor[2]
    middle = (first + last) / 2
    inside = [(abs(days - middle), when, value) for when, value in found.series
              if first <= (days := (when - onset).total_seconds() / 86400) <= last]
    return min(inside, key=lambda c: c[:2])[2] if inside else None


def _coerce(
    col: Column, raw: Any, schema: Schema, born: dt.date | None, report: IngestReport
) -> Any:
    """Turn a raw FHIR value into the column's raw value (None when missing)."""
    if raw is None:
        # a boolean without a missing bucket reads absence as false (e.g. deceased[x])
        no_missing = col.domain is not None and col.domain.missing_code is None
        return False if col.kind == "boolean" and no_missing else None
    src = col.source
    quantity = isinstance(raw, dict) and ("value" in raw or "unit" in raw or "code" in raw)
    if quantity and col.kind in ("numeric", "integer"):
        if src.unit is not None and src.unit not in (raw.get("code"), raw.get("unit")):
            report.unit_mismatch[col.name] += 1
            return None
        raw = raw.get("value")
        if raw is None:
            return None
    if src.transform is not None:
        when = _parse_instant(raw)
        if when is None:
            report.unreadable_value[col.name] += 1
            return None
        if src.transform == "year":
            return when.year
        start = born if src.transform == "age_at_event" else when.date()
        end = when.date() if src.transform == "age_at_event" else schema.reference
        if start is None:
            report.unreadable_value[col.name] += 1
            return None
        return _years_between(start, end)
    if col.kind == "boolean":
        if isinstance(raw, bool):
            return raw
        if isinstance(raw, str):  # e.g. deceasedDateTime: a date means true
            return True
        report.unreadable_value[col.name] += 1
        return None
    if col.kind in ("numeric", "integer"):
        if isinstance(raw, bool) or not isinstance(raw, int | float):
            try:
                return float(raw)
            except (TypeError, ValueError):
                report.unreadable_value[col.name] += 1
                return None
        return raw
    if isinstance(raw, dict | list):
        report.unreadable_value[col.name] += 1
        return None
    return str(raw)
