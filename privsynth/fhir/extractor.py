"""How the schema's columns read FHIR resources: per resource type, the compiled paths of
every column that reads it (its value, its date, its filters), indexed by the codes it
matches, and the timeline cell a dated event falls in."""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from privsynth.errors import InputError
from privsynth.fhir.read import Location
from privsynth.fhir.value import parse_instant
from privsynth.schema.model import Column, Schema
from privsynth.schema.path import ShapeError, compile_path, element_fields
from privsynth.schema.timeline import Stream

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
class Extractor:
    """One column's compiled reading of its resource type."""

    column: Column
    read: Callable[[Any], list[Any]] | None
    date: Callable[[Any], list[Any]] | None
    wheres: list[tuple[Callable[[Any], list[Any]], frozenset[str]]]
    cells: tuple[Column, ...] = ()  # a timeline group: its columns, most recent cell first
    stream: Stream | None = None  # and its stream
    edges: list[dt.date] = field(default_factory=list)  # the stream's cell boundaries (Stream.edges)


class Extractors:
    """Per resource type: which columns read it and how."""

    def __init__(self, schema: Schema) -> None:
        self.by_type: dict[str, list[Extractor]] = defaultdict(list)
        self.code_index: dict[str, dict[tuple[str, str], list[Extractor]]] = defaultdict(dict)
        self.uncoded: dict[str, list[Extractor]] = defaultdict(list)
        cells: dict[str, list[Column]] = defaultdict(list)
        for col in schema.view_columns:
            if col.source.cell is not None:
                cells[col.name.rsplit("_", 1)[0]].append(col)
        for col in schema.view_columns:
            src = col.source
            if src.resource is None or (src.cell is not None and src.cell[1] > 0):
                continue  # a timeline group reads once, into the cell its date falls in
            ex = _extractor(col, src.resource, schema, cells)
            self.by_type[src.resource].append(ex)
            if src.codes is not None:
                group = schema.code_groups[src.codes]
                for c in group.codes:
                    self.code_index[src.resource].setdefault((group.system, c.code), []).append(ex)
            else:
                self.uncoded[src.resource].append(ex)
        self.code_paths = {rtype: compile_path(code_element(rtype) + ".coding", rtype) for rtype in self.code_index}


def _extractor(col: Column, rtype: str, schema: Schema, cells: dict[str, list[Column]]) -> Extractor:
    """The compiled reading of one column of ``rtype`` (a timeline group's: of all its cells)."""
    src = col.source
    read = compile_path(src.path, rtype) if src.path else None
    date_text = src.date or DEFAULT_DATE.get(rtype)
    date = compile_path(date_text, rtype) if date_text else None
    wheres = [(compile_path(w.path, rtype), w.values) for w in src.where]
    ex = Extractor(col, read, date, wheres)
    if src.cell is not None and schema.timeline is not None:
        ex.cells = tuple(cells[col.name.rsplit("_", 1)[0]])
        ex.stream = schema.timeline.stream(src.cell[0])
        ex.edges = ex.stream.edges(schema.reference)
    return ex


def code_element(rtype: str) -> str:
    """The element a resource's codes are matched on: ``code``, else a medication concept."""
    fields = element_fields(rtype)
    return "code" if "code" in fields else "medicationCodeableConcept"


def shape_error(loc: Location, exc: ShapeError) -> InputError:
    """An R4 shape mismatch as an input error at the resource's location."""
    return InputError(f"{loc.describe(exc.element)}: {str(exc).split(': ', 1)[-1]}")


def read_values(ex: Extractor, resource: dict[str, Any], loc: Location) -> list[Any]:
    """The values the column reads from ``resource`` (none without a path)."""
    if ex.read is None:
        return []
    try:
        return ex.read(resource)
    except ShapeError as exc:
        raise shape_error(loc, exc) from None


def passes_where(ex: Extractor, resource: dict[str, Any], loc: Location) -> bool:
    """Whether ``resource`` passes every one of the column's ``where`` filters."""
    for read_where, allowed in ex.wheres:
        try:
            got = read_where(resource)
        except ShapeError as exc:
            raise shape_error(loc, exc) from None
        if not any(str(v) in allowed for v in got):
            return False
    return True


def cell_column(ex: Extractor, resource: dict[str, Any], loc: Location) -> Column | None:
    """The timeline column (grain cell) an event falls in, or None outside the window."""
    if ex.date is None or ex.stream is None:
        return None
    try:
        dates = ex.date(resource)
    except ShapeError as exc:
        raise shape_error(loc, exc) from None
    when = parse_instant(dates[0]) if dates else None
    if when is None:
        return None
    cell = ex.stream.cell_of(when.date(), ex.edges[-1], ex.edges)
    return None if cell is None else ex.cells[cell]
