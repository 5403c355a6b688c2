"""The report's synthetic patients: a dozen random rows read as a clinician reads a record --
who, conditions with their onset ages, the latest values with units, medications and
procedures, encounters, the timeline in a line per event group. Values held by fewer than
``min_cell`` real patients show as "suppressed"."""

from __future__ import annotations

import datetime as dt
from typing import Any

import numpy as np
import pandas as pd

from privsynth.history.chart import add_years
from privsynth.report.data import PATIENTS, SUPPRESSED, counts, display_name
from privsynth.schema.model import CategoricalDomain, Column, Schema

UNITS = {"mm[Hg]": "mmHg", "kg/m2": "kg/m²", "[degF]": "°F", "Cel": "°C"}  # UCUM as a clinician writes it


def _number(value: Any, col: Column) -> str:
    unit = col.output.get("unit") or col.source.unit or ""
    unit = "" if unit == "1" else UNITS.get(unit, unit)
    text = f"{value:.1f}" if isinstance(value, float) else str(value)
    return f"{text} {unit}".strip()


def _whole(value: Any) -> Any:
    """A whole number as an int (an onset age of 60, not 60.0); anything else as it is."""
    if isinstance(value, float | np.floating) and float(value).is_integer():
        return int(value)
    return value


def _streams(schema: Schema, row: dict[str, Any], suppressed: set[str]) -> dict[str, list[str]]:
    """The timeline of one row in a line per event group: how many events in how many of the
    window's cells, or a lab's number of values and its latest one with its unit. Goes under
    the card's encounters, medications, procedures or observations."""
    out: dict[str, list[str]] = {"encounters": [], "medications": [], "procedures": [], "observations": []}
    timeline = schema.timeline
    if timeline is None:
        return out
    where = {"Encounter": "encounters", "MedicationRequest": "medications", "Procedure": "procedures"}
    for stream in timeline.streams:
        span = f"{stream.window_years} years"
        for group in stream.groups:
            names = stream.columns(group)
            label = group.name.replace("_", " ")
            if any(n in suppressed for n in names):
                out[where.get(stream.resource, "observations")].append(f"{label}: {SUPPRESSED}")
                continue
            if stream.kind == "count":
                counts = [int(row[n]) for n in names if row.get(n) is not None and row[n] is not pd.NA
                          and not (isinstance(row[n], float) and np.isnan(row[n])) and int(row[n]) > 0]
                if counts:
                    out[where.get(stream.resource, "observations")].append(
                        f"{label}: {sum(counts)} in {len(counts)} of the last {stream.cells} "
                        f"{stream.grain}s" if stream.cells != stream.window_years else
                        f"{label}: {sum(counts)} in {len(counts)} of the last {span}")
            else:
                values = [(k, row[n]) for k, n in enumerate(names) if row.get(n) is not None and row[n] is not pd.NA
                          and not (isinstance(row[n], float) and np.isnan(row[n]))]
                if values:
                    latest = schema.column(names[values[0][0]])  # cell 0 is the most recent
                    out["observations"].append(f"{label} series: {len(values)} value(s) in the last {span}, latest "
                                               f"{_number(float(values[0][1]), latest)}")
    return out


def _series_codes(schema: Schema, row: dict[str, Any]) -> set[str]:
    """The observation codes a timeline lab series of this row holds a value of."""
    out: set[str] = set()
    if schema.timeline is None:
        return out
    for stream in schema.timeline.streams:
        if stream.kind != "value":
            continue
        for group in stream.groups:
            names = stream.columns(group)
            if any(row.get(n) is not None for n in names):
                code = schema.column(names[0]).output.get("code")
                if code:
                    out.add(str(code))
    return out


def patients(synthetic: pd.DataFrame, real_codes: np.ndarray, synthetic_codes: np.ndarray, schema: Schema,
             min_cell: int, rng: np.random.Generator) -> list[dict[str, Any]]:
    """A few random synthetic patients laid out as a clinician reads a record: who they are
    (display names, not codes), deceased and about when, the conditions they have with their
    onset age, the latest observations with units, medications and procedures, encounters by
    class, and each timeline group in a line. A value whose category or bin has fewer than
    ``min_cell`` real patients reads 'suppressed'. Absent conditions and missing values are
    left out."""
    cols = schema.learned_columns
    index = {c.name: j for j, c in enumerate(cols)}
    rare = [set(np.flatnonzero(counts(real_codes[:, j], c.domain.size if c.domain else 1) < min_cell).tolist())
            for j, c in enumerate(cols)]
    onset_of = {c.name: c.onset for c in schema.conditions if c.onset is not None and c.onset.learned}
    onsets = set(c.name for c in onset_of.values())
    flags = {c.name for c in schema.conditions}
    death = schema.death_column
    timeline = set(schema.timeline.column_names) if schema.timeline is not None else set()
    if schema.timeline is not None:
        for stream in schema.timeline.streams:
            for group in stream.groups:
                if group.around is not None:
                    timeline |= set(stream.anchored(group))
    picks = rng.choice(len(synthetic), size=min(PATIENTS, len(synthetic)), replace=False)
    out = []

    def shown(col: Column, i: int) -> Any:
        value = synthetic[col.name].iloc[i]
        if value is None or value is pd.NA or (isinstance(value, float) and np.isnan(value)):
            return None
        if col.name in index and int(synthetic_codes[i, index[col.name]]) in rare[index[col.name]]:
            return SUPPRESSED
        return _whole(value)

    for i in picks.tolist():
        card: dict[str, list[str]] = {key: [] for key in ("person", "conditions", "observations", "medications",
                                                          "procedures", "encounters", "other")}
        row = {c.name: shown(c, i) for c in schema.view_columns if c.name in synthetic.columns}
        observed: list[str | None] = []  # the code of each observation line
        suppressed = {name for name, value in row.items() if value == SUPPRESSED}
        for col in schema.view_columns:
            src = col.source
            value = row.get(col.name)
            if value is None or col.name in onsets or col.name in timeline:
                continue  # an onset is shown with its condition; a timeline cell in its group's line
            if death is not None and col.name == death.name:
                continue  # shown with "deceased"
            if col.name in flags:
                if _true(value) or value == SUPPRESSED:  # numpy booleans too (a card showed no condition)
                    onset = onset_of.get(col.name)
                    age = row.get(onset.name) if onset is not None else None
                    text = col.name.replace("_", " ") if _true(value) else SUPPRESSED
                    card["conditions"].append(text + (f" (onset at {age})" if age not in (None, SUPPRESSED) else ""))
            elif col.kind == "boolean" and src.resource == "Patient":
                if _true(value):
                    card["person"].append(_deceased(col, row, death, schema) if col.name == "deceased" else
                                          col.name.replace("_", " "))
            elif src.resource == "Patient" or (src.resource is None and col.kind != "numeric"):
                if value == SUPPRESSED:
                    card["person"].append(f"{col.name.replace('_', ' ')} suppressed")
                elif isinstance(col.domain, CategoricalDomain):
                    card["person"].append(display_name(col, str(value)))
                else:
                    card["person"].append(f"{col.name.replace('_', ' ')} {value}")
            elif src.summary_kind.counts:
                if value == SUPPRESSED or int(value) > 0:
                    key = {"Encounter": "encounters", "MedicationRequest": "medications",
                           "Procedure": "procedures"}.get(src.resource or "", "other")
                    name = col.output.get("display", col.name.replace("_", " "))
                    card[key].append(f"{name}: {value}")
            elif col.kind == "boolean":
                if _true(value):
                    card["other"].append(col.name.replace("_", " "))
            elif col.kind in ("numeric", "integer"):
                name = col.output.get("display", col.name.replace("_", " "))
                card["observations"].append(f"{name}: {value if value == SUPPRESSED else _number(value, col)}")
                observed.append(col.output.get("code"))
            else:
                card["other"].append(f"{col.name.replace('_', ' ')}: {value}")
        carried = _series_codes(schema, row)  # the FHIR writes a lab's series instead of its last value: so does
        card["observations"] = [line for line, code in zip(card["observations"], observed) if code not in carried]
        for key, lines in _streams(schema, row, suppressed).items():
            card[key] += lines
        out.append({"person": ", ".join(str(p) for p in card.pop("person")), **card})
    return out


def _deceased(col: Column, row: dict[str, Any], death: Column | None, schema: Schema) -> str:
    """'deceased' with the year of death the model gives (its years before the reference date)."""
    years = row.get(death.name) if death is not None else None
    if years is None or years == SUPPRESSED:
        return "deceased"
    # the writer dates the death inside the year before the reference these whole years name
    end = add_years(schema.reference, -int(years))
    start = add_years(schema.reference, -int(years) - 1) + dt.timedelta(days=1)
    when = (f"in {start.year}" if start.year == end.year or (end.month, end.day) == (1, 1)
            else f"between {start:%b %Y} and {end:%b %Y}")
    age = schema.age_column
    lived = row.get(age.name) if age is not None else None
    if lived is None or lived == SUPPRESSED:
        return f"deceased {when}"
    return f"deceased {when}, at about {max(int(lived) - int(years), 0)}"  # the age is counted to the reference


def _true(value: Any) -> bool:
    """A boolean cell that is true: Python's True or numpy's (``value is True`` misses numpy's)."""
    return isinstance(value, bool | np.bool_) and bool(value)
