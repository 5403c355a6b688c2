"""Patient timelines in the schema: event streams bucketed in public time windows.

A schema's ``timeline`` declares event streams read from FHIR (encounters by class, lab
values, medication and procedure groups). Each stream has a public window (the
``window_years`` before the reference date), a public grain (month, quarter or year) and a
contribution bound: at most ``max_events`` events per patient (the most recent are kept,
the rest dropped and counted) and at most ``max_per_grain`` in one grain cell of one group.
Condition onsets are the patient columns' own (``exists`` + ``first`` onset age): the
timeline places them, it does not count them twice.

Each (group, grain cell) becomes one column of the patient view, named
``<stream>_<group>_<cell>`` where the cell is ``y1`` (the year before the reference date),
``y2`` ..., or ``q1``/``m1`` ... for quarters and months. A count stream's column counts the
group's events in the cell (0 .. ``max_per_grain``); a value stream's column holds the last
value in the cell (binned like any number). So one patient is still one row: every
marginal a generator measures changes by one cell when a patient is added, whatever the
history (docs/privacy.md, "Timelines").

>>> s = Stream("encounters", "Encounter", "count", 2, "year", 8, 4, (EventGroup("inpatient", None),))
>>> s.columns(s.groups[0])
('encounters_inpatient_y1', 'encounters_inpatient_y2')
>>> s.cell_of(dt.date(2023, 6, 1), dt.date(2024, 1, 1)), s.cell_of(dt.date(2021, 12, 31), dt.date(2024, 1, 1))
(0, None)
"""

from __future__ import annotations

import bisect
import datetime as dt
from dataclasses import dataclass
from typing import Literal

GRAINS = {"month": 1, "quarter": 3, "year": 12}
GRAIN_LETTER = {"month": "m", "quarter": "q", "year": "y"}
STREAM_RESOURCES = ("Encounter", "Observation", "MedicationRequest", "Procedure")
MAX_TIMELINE_COLUMNS = 240  # more cells than this make a patient view no DP budget can fill


def add_months(day: dt.date, months: int) -> dt.date:
    """``day`` moved by whole calendar months (the day clipped to the month's length)."""
    index = day.year * 12 + day.month - 1 + months
    year, month = divmod(index, 12)
    for last in (day.day, 30, 29, 28):
        try:
            return dt.date(year, month + 1, min(day.day, last))
        except ValueError:
            continue
    raise ValueError("unreachable")


@dataclass(frozen=True)
class Around:
    """A lab's values anchored to a condition's onset (HbA1c at a diabetes diagnosis and a
    year later): two patient columns, the value nearest the onset within ``at_days`` of it
    and the value nearest the middle of ``after_days`` (days after the onset). A yearly cell
    keeps one value a year at a calendar position; these keep the two a clinician compares."""

    condition: str
    onset_column: str
    at_days: int
    after_days: tuple[int, int]


@dataclass(frozen=True)
class Schedule:
    """When one code of a group may be done (public guidance, e.g. USPSTF screening): from
    ``min_age`` to ``max_age``, for ``sex`` only if given, at most once every ``every_years``."""

    code: str
    min_age: int = 0
    max_age: int = 200
    sex: str | None = None
    every_years: float = 0.0

    def allows(self, age: float, sex: str | None, years_since_last: float | None) -> bool:
        return (self.min_age <= age <= self.max_age and (self.sex is None or sex == self.sex)
                and (years_since_last is None or years_since_last >= self.every_years))


@dataclass(frozen=True)
class EventGroup:
    """One kind of event in a stream: a code group (``codes``) or, for encounters, a class
    filter; ``treats`` the patient columns of the conditions it treats, if any (its events
    need one of them);
    ``follows`` the condition columns whose onset these events follow (admissions after a
    heart-failure diagnosis); ``schedule`` when each code may be done (a screening's ages
    and interval): public clinical knowledge the prior and the writer use."""

    name: str
    codes: str | None
    treats: tuple[str, ...] = ()
    follows: tuple[str, ...] = ()
    around: Around | None = None
    schedule: tuple[Schedule, ...] = ()  # when each code may be done; none: any code, any time


@dataclass(frozen=True)
class Stream:
    """An event stream: ``kind`` is ``count`` (events per cell) or ``value`` (the last value
    per cell). ``max_per_grain`` caps one cell of a count stream."""

    name: str
    resource: str
    kind: Literal["count", "value"]
    window_years: int
    grain: str
    max_events: int
    max_per_grain: int
    groups: tuple[EventGroup, ...]

    @property
    def cells(self) -> int:
        return self.window_years * 12 // GRAINS[self.grain]

    def columns(self, group: EventGroup) -> tuple[str, ...]:
        letter = GRAIN_LETTER[self.grain]
        return tuple(f"{self.name}_{group.name}_{letter}{k + 1}" for k in range(self.cells))

    def anchored(self, group: EventGroup) -> tuple[str, str]:
        """The two patient columns of a group anchored ``around`` a condition's onset."""
        if group.around is None:
            raise ValueError(f"group '{group.name}' is not anchored to a condition")
        stem = f"{self.name}_{group.name}"
        return f"{stem}_at_{group.around.condition}", f"{stem}_after_{group.around.condition}"

    def edges(self, reference: dt.date) -> list[dt.date]:
        """Cell boundaries, oldest first: cell k (0 = most recent) is
        ``[edges[-k - 2], edges[-k - 1])``; the last edge is the reference date."""
        step = GRAINS[self.grain]
        return [add_months(reference, -step * k) for k in range(self.cells, -1, -1)]

    def cell_of(self, day: dt.date, reference: dt.date, edges: list[dt.date] | None = None) -> int | None:
        """The cell (0 = most recent) holding ``day``, or None outside the window."""
        edges = edges if edges is not None else self.edges(reference)
        if not edges[0] <= day < edges[-1]:
            return None
        return len(edges) - 1 - bisect.bisect_right(edges, day)

    def span(self, cell: int, reference: dt.date) -> tuple[dt.date, dt.date]:
        """``[start, end)`` of a cell (0 = most recent)."""
        step = GRAINS[self.grain]
        return add_months(reference, -step * (cell + 1)), add_months(reference, -step * cell)

    def years_before(self, cell: int) -> int:
        """Whole years between a cell's end and the reference date (an age a patient must
        have reached for the cell to lie in their life)."""
        return cell * GRAINS[self.grain] // 12


@dataclass(frozen=True)
class Timeline:
    """The event streams of a schema (see the module docstring)."""

    streams: tuple[Stream, ...]
    share: float = 0.5  # of the budget for the structural prior, which gains each group's transitions

    def stream(self, name: str) -> Stream:
        for s in self.streams:
            if s.name == name:
                return s
        raise KeyError(name)

    @property
    def column_names(self) -> tuple[str, ...]:
        return tuple(c for s in self.streams for g in s.groups for c in s.columns(g))
