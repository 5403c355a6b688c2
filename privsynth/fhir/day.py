"""Days and moments drawn for synthetic records: whole seconds, UTC, inside datetime's range."""

from __future__ import annotations

import datetime as dt

import numpy as np

from privsynth.fhir.record import UTC


def moment(day: dt.date, rng: np.random.Generator) -> dt.datetime:
    """A moment during ``day``'s working hours (UTC, whole seconds)."""
    seconds = int(rng.integers(8 * 3600, 18 * 3600))
    return dt.datetime.combine(day, dt.time(), tzinfo=UTC) + dt.timedelta(seconds=seconds)


def day_between(start: dt.date, end: dt.date, rng: np.random.Generator) -> dt.date:
    """A day from ``start`` to ``end`` (both included; ``start`` when ``end`` is before it)."""
    span = max(0, (end - start).days)
    return start + dt.timedelta(days=int(rng.integers(0, span + 1)))


def add_years(day: dt.date, years: int) -> dt.date:
    """``day`` shifted by whole years (29 February becomes 28), kept in datetime's range."""
    year = min(max(day.year + years, dt.MINYEAR), dt.MAXYEAR)
    try:
        return day.replace(year=year)
    except ValueError:
        return day.replace(year=year, day=28)
