"""A raw FHIR value as a patient-view value: instants parsed, quantities checked against the
column's unit, ages and years computed, kinds enforced. What cannot be read is counted in
the ingest report, never shown."""

from __future__ import annotations

import datetime as dt
from typing import Any

from privsynth.fhir.report import IngestReport
from privsynth.schema.model import Column, Schema


def parse_instant(value: Any) -> dt.datetime | None:
    """A FHIR date, dateTime, instant or Period (its start, else its end) as an aware
    datetime (UTC when it names no zone); None when it is none of these."""
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


def years_between(start: dt.date, end: dt.date) -> int:
    """Whole years from ``start`` to ``end``."""
    years = end.year - start.year
    if (end.month, end.day) < (start.month, start.day):
        years -= 1
    return years


def coerce(
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
        return _transformed(col, raw, schema, born, report)
    return _of_kind(col, raw, report)


def _transformed(col: Column, raw: Any, schema: Schema, born: dt.date | None, report: IngestReport) -> int | None:
    """A date as the column's transform says: its year, the age at the event, or the whole
    years from it to the reference date."""
    transform = col.source.transform
    when = parse_instant(raw)
    if when is None:
        report.unreadable_value[col.name] += 1
        return None
    if transform == "year":
        return when.year
    start = born if transform == "age_at_event" else when.date()
    end = when.date() if transform == "age_at_event" else schema.reference
    if start is None:
        report.unreadable_value[col.name] += 1
        return None
    return years_between(start, end)


def _of_kind(col: Column, raw: Any, report: IngestReport) -> Any:
    """A value as the column's kind: a boolean, a number or a string."""
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
