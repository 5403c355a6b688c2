"""Each patient's many clinical resources folded into one running summary per column (as the
column's summary kind says: exists, count, first, last), merged over a patient's aliases and
finished into the column's raw value."""

from __future__ import annotations

import datetime as dt
from typing import Any

from privsynth.errors import InputError
from privsynth.fhir.extractor import Extractor, Extractors, cell_column, passes_where, read_values, shape_error
from privsynth.fhir.read import Location
from privsynth.fhir.reference import patient_ref, ref_key
from privsynth.fhir.report import IngestReport
from privsynth.fhir.value import parse_instant
from privsynth.schema.model import Column
from privsynth.schema.path import ShapeError
from privsynth.schema.summary import Summary


class ColumnState:
    """The running summary of one column for one patient."""

    __slots__ = ("count", "date", "value", "series")

    def __init__(self) -> None:
        self.count = 0
        self.date: dt.datetime | None = None
        self.value: Any = None
        self.series: list[tuple[dt.datetime, Any]] = []  # a value anchored to an onset: every dated value

    def absorb(self, other: ColumnState, summary: Summary) -> None:
        """Add ``other`` (the same column, read under another alias of the patient) to this one."""
        self.count += other.count
        self.series += other.series
        if other.date is not None and summary.better(other.date, self.date):
            self.date, self.value = other.date, other.value


def read_clinical(
    resource: dict[str, Any], rtype: str, loc: Location, compiled: Extractors,
    states: dict[str, dict[str, ColumnState]], report: IngestReport,
) -> None:
    """Fold a clinical resource into the states of its patient reference's columns."""
    extractors = _extractors_for(resource, rtype, loc, compiled)
    if not extractors:
        return
    ref = patient_ref(resource)
    if ref is None:
        raise InputError(
            f"{loc.describe(rtype + '.subject')}: missing; every {rtype} must reference its "
            "patient (subject or patient)"
        )
    if not ref:
        report.unresolved_patient[rtype] += 1
        return
    key = ref_key(ref, loc.file)
    used = False
    per_patient = states[key]
    for ex in extractors:
        used |= _fold(ex, resource, loc, per_patient)
    if used:
        report.resources_used[rtype] += 1
        report.per_reference[key] += 1


def _extractors_for(resource: dict[str, Any], rtype: str, loc: Location, compiled: Extractors) -> list[Extractor]:
    """The columns that read this resource: those of its type without codes, then those
    whose codes it carries (each once)."""
    extractors = list(compiled.uncoded.get(rtype, ()))
    index = compiled.code_index.get(rtype)
    if index:
        try:
            codings = compiled.code_paths[rtype](resource)
        except ShapeError as exc:
            raise shape_error(loc, exc) from None
        seen: set[int] = set()
        for coding in codings:
            if isinstance(coding, dict):
                coded = (str(coding.get("system")), str(coding.get("code")))
                for ex in index.get(coded, ()):
                    if id(ex) not in seen:
                        seen.add(id(ex))
                        extractors.append(ex)
    return extractors


def _fold(ex: Extractor, resource: dict[str, Any], loc: Location, per_patient: dict[str, ColumnState]) -> bool:
    """Fold the resource into the state of the column ``ex`` reads (a timeline group: of the
    cell its date falls in); whether it was used."""
    if not passes_where(ex, resource, loc):
        return False
    col = cell_column(ex, resource, loc) if ex.cells else ex.column
    if col is None:
        return False  # outside the stream's window
    if col.name not in per_patient:
        per_patient[col.name] = ColumnState()
    state = per_patient[col.name]
    state.count += 1
    if col.source.summary_kind.reads_value:
        _keep_value(ex, col, resource, loc, state)
    return True


def _keep_value(ex: Extractor, col: Column, resource: dict[str, Any], loc: Location, state: ColumnState) -> None:
    """Keep the resource's value if the summary prefers it (by its date) to the one kept; a
    value anchored to an onset joins the dated series instead (chosen at the end)."""
    values = read_values(ex, resource, loc)
    if not values:
        return
    when = None
    if ex.date is not None:
        dates = ex.date(resource)
        when = parse_instant(dates[0]) if dates else None
    if col.source.anchor is not None:  # which value is kept depends on the onset: at the end
        if when is not None:
            state.series.append((when, values[0]))
        return
    if when is None:
        when = dt.datetime.min.replace(tzinfo=dt.UTC)
    if col.source.summary_kind.better(when, state.date):
        state.date = when
        state.value = values[0]


def finish(col: Column, found: ColumnState | None, states: dict[str, ColumnState]) -> Any:
    """A clinical column's raw value from the patient's (merged) states."""
    if col.source.anchor is not None:
        return anchored(col.source.anchor, found, states)
    if found is None:
        return col.source.summary_kind.finish(0, None)
    return col.source.summary_kind.finish(found.count, found.value)


def anchored(anchor: tuple[str, int, int], found: ColumnState | None, states: dict[str, ColumnState]) -> Any:
    """Of a patient's dated values, the one nearest the middle of ``anchor``'s span of days
    after the condition's onset (the earliest, its onset column's value); None without an
    onset or a value in the span. Ties go to the earlier value."""
    onset_state = states.get(anchor[0])
    onset = parse_instant(onset_state.value) if onset_state is not None else None
    if found is None or onset is None:
        return None
    first, last = anchor[1], anchor[2]
    middle = (first + last) / 2
    inside = [(abs(days - middle), when, value) for when, value in found.series
              if first <= (days := (when - onset).total_seconds() / 86400) <= last]
    return min(inside, key=lambda c: c[:2])[2] if inside else None
