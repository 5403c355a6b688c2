"""Coherent, dated FHIR histories from a synthetic row's timeline cells (post-processing).

For each stream cell of a synthetic patient (:mod:`privsynth.schema.timeline`):

- an encounter count becomes that many Encounters of the group's class, on days drawn
  inside the cell and inside the patient's life (birth .. reference date);
- a lab value becomes one Observation in the cell, recorded at one of the patient's
  ambulatory encounters in that cell (a new one if there is none);
- a medication or procedure count becomes that many MedicationRequests / Procedures with the
  group's first code, each at an encounter in the cell (a new one if there is none); a
  treatment dated before the onset of the condition it ``treats`` moves to the onset day;
- a lab ``around`` a condition's onset gets its value at the onset on the diagnosis's day
  and its value after the onset on a day drawn in the public span (none past the reference);
- encounters of a group that ``follows`` conditions (admissions after a heart-failure
  diagnosis), in the cell of the earliest such onset, are dated after it;
- the patient's Conditions are recorded at an encounter on their onset day (a new one if
  none), and last-value Observations of the patient columns at the most recent encounter
  (vitals at the last visit), unless a lab stream already carries that lab's series.

Every clinical resource references its patient and its encounter, and every date lies
between birth and the reference date. Counts of what had to be added or moved are kept
on the writer (``HistoryWriter.stats``; synthetic events only) and reported as
``history_placement`` in the run's internal report.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from dataclasses import dataclass
from typing import Any

import numpy as np

from privsynth.domain import is_missing
from privsynth.fhir.record import (
    INPATIENT,
    LOINC,
    NO_REASON,
    SNOMED,
    UTC,
    Concept,
    Condition,
    Encounter,
    Event,
    Observation,
    Order,
    Quantity,
    Record,
)
from privsynth.schema.model import Column, Schema
from privsynth.schema.timeline import EventGroup, Stream

PROBLEM = Concept(SNOMED, "185347001", "Encounter for problem (procedure)")
HOURS = {"AMB": (0.25, 1.0), "EMER": (1.0, 8.0)}
# an inpatient stay: a median of 3 days, rarely past 2 weeks (HCUP: mean US stay 4.5-4.7 days)
STAY_MEDIAN_HOURS, STAY_SIGMA, STAY_HOURS = 72.0, 0.8, (24.0, 30 * 24.0)


def _moment(day: dt.date, rng: np.random.Generator) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(8), tzinfo=UTC) + dt.timedelta(minutes=int(rng.integers(0, 600)))


def _day_in(start: dt.date, end: dt.date, rng: np.random.Generator) -> dt.date:
    """A day in ``[start, end)`` (``start`` when the span is empty)."""
    span = (end - start).days
    return start + dt.timedelta(days=int(rng.integers(0, span))) if span > 0 else start


class HistoryWriter:
    """Places one synthetic patient's timeline cells as linked events of their record."""

    def __init__(self, schema: Schema, rng: np.random.Generator, new_id: Any) -> None:
        if schema.timeline is None:
            raise ValueError("the schema has no timeline")
        self.schema, self.rng, self.new_id = schema, rng, new_id
        self.timeline = schema.timeline
        self.stats: Counter[str] = Counter()
        self._last = schema.reference + dt.timedelta(days=1)  # the day after the record's end (per patient)
        self._stop = dt.datetime.combine(schema.reference, dt.time(), tzinfo=UTC)  # no moment after it
        self.flags = {c.name: c.codes for c in schema.conditions if c.flag.learned}
        # the conditions admissions follow (a stroke, heart failure): diagnosed at one (_at_a_visit)
        self.followed = frozenset(f for stream in self.timeline.streams if stream.resource == "Encounter"
                                  for g in stream.groups for f in g.follows)

    # -- encounters ---------------------------------------------------------------------
    def _encounter(self, start: dt.datetime, code: str, display: str, kind: Concept | None = None) -> Encounter:
        if code == "IMP":
            hours = float(np.clip(STAY_MEDIAN_HOURS * np.exp(STAY_SIGMA * self.rng.standard_normal()), *STAY_HOURS))
        else:
            short, long = HOURS.get(code, (0.5, 2.0))
            hours = float(self.rng.uniform(short, long))
        end = min(start + dt.timedelta(hours=hours), self._stop)
        return Encounter(self.new_id(), code, display, start, max(end, start), kind)

    def place(self, row: dict[str, Any], record: Record) -> None:
        """Add the timeline's events of ``row`` to ``record`` (whose events are the patient
        columns' Conditions and Observations) and link everything to encounters."""
        reference, birth = self.schema.reference, record.birth
        self._sex = record.patient.get("gender")
        self._birth = birth
        self._done: dict[str, dt.datetime] = {}  # the last time each scheduled code was done
        self._drug: dict[str, Any] = {}  # the drug a patient takes from each group (renewed, not switched)
        self._present = {name for name in self.flags if row.get(name) is True}  # rows hold Python values
        # the record ends at the reference date or at the death: no event after it
        self._last = (record.end or reference) + dt.timedelta(days=1)
        self._stop = (dt.datetime.combine(record.end, dt.time(23, 59), tzinfo=UTC) if record.end is not None
                      and record.end < reference else dt.datetime.combine(reference, dt.time(), tzinfo=UTC))
        encounters: list[Encounter] = []
        onsets = {c.concept.code or "": c.onset for c in record.conditions if c.onset is not None}
        counts = [s for s in self.timeline.streams if s.resource == "Encounter"]
        for stream in counts:
            for group in stream.groups:
                first = self.schema.column(stream.columns(group)[0])
                code, display = first.output.get("code", "AMB"), first.output.get("display", "ambulatory")
                cause = min((t for t in (self._onset(flag, onsets) for flag in group.follows) if t is not None),
                            default=None)
                for k, name in enumerate(stream.columns(group)):
                    n = _count(row.get(name))
                    start, end = stream.span(k, reference)
                    start, end = max(start, birth), min(end, self._last)
                    after = None  # in the onset's cell, these events follow the diagnosis
                    if n and cause is not None and start <= cause.date() < end:
                        after = cause
                        start = cause.date()
                        self.stats[f"{group.name} placed after the onset of the condition they follow"] += n
                    if n and start >= end:
                        self.stats["encounters outside the patient's life, not written"] += n
                        continue
                    for _ in range(n):
                        moment = _moment(_day_in(start, end, self.rng), self.rng)
                        if after is not None and moment <= after:  # the onset's own day, before its hour
                            moment = after + dt.timedelta(minutes=int(self.rng.integers(30, 240)))
                        encounters.append(self._encounter(moment, code, display))
        for condition in record.conditions:
            if condition.onset is not None:
                onsets[condition.concept.code or ""] = self._at_a_visit(condition, birth, encounters)
            self._link(condition, condition.moment, encounters)
        clinical: list[Event] = []
        for stream in self.timeline.streams:
            if stream.resource == "Encounter":
                continue
            for group in stream.groups:
                for k, name in enumerate(stream.columns(group)):
                    clinical += self._events(stream, group, k, row.get(name), birth, encounters, onsets)
                if group.around is not None:
                    clinical += self._around(stream, group, row, encounters, onsets)
        series = {r.concept.code for r in clinical if isinstance(r, Observation)}
        latest = max((e for e in encounters if e.code == "AMB"), key=lambda e: e.start, default=None)
        kept: list[Event] = []
        for r in record.events:
            if isinstance(r, Observation) and r.concept.code in series:
                self.stats["last values carried by a lab series instead"] += 1
                continue
            if isinstance(r, Observation) and latest is not None:
                r.moment, r.encounter = latest.start, latest
            elif isinstance(r, Observation):
                self._link(r, r.moment, encounters)
            kept.append(r)
        self._reasons(encounters, record.conditions)
        record.events, record.visits, record.history = kept, encounters, clinical

    def _reasons(self, encounters: list[Encounter], conditions: list[Condition]) -> None:
        """Each admission's reason: the latest-diagnosed condition it follows (heart failure,
        COPD, stroke) or else any condition diagnosed before it; with none, a text that says
        the reason is not part of the synthetic history (counted), never a silent blank."""
        follows = {g.output_code: g.follows for s in self.timeline.streams if s.resource == "Encounter"
                   for g in self._groups(s)}
        for enc in encounters:
            if enc.code != "IMP":
                continue
            before = [c for c in conditions if c.moment <= enc.start]
            preferred = [c for c in before if c.column in follows.get(enc.code, ())]
            pick = max(preferred or before, key=lambda c: c.moment, default=None)
            if pick is None:
                enc.reason_code = NO_REASON
                self.stats["admissions without a condition before them (reason: not recorded)"] += 1
            else:
                enc.reasons.append(pick.id)

    def _groups(self, stream: Stream) -> list[Any]:
        out = []
        for g in stream.groups:
            first = self.schema.column(stream.columns(g)[0])
            out.append(_Group(first.output.get("code", "AMB"), g.follows))
        return out

    def _at_a_visit(self, condition: Condition, birth: dt.date, encounters: list[Encounter]) -> dt.datetime:
        """The condition's onset moved to a visit the row already counts (no encounter is added):
        for a disease admissions follow, the first admission after it in the same year of life;
        else the latest ambulatory visit of that year not after it, if the history has one (a
        diagnosis is made at a visit). Either keeps the onset age; what was placed after the
        onset stays after it (the admissions follow it; treatments are placed from it later)."""
        onset = condition.moment
        years = onset.year - birth.year - ((onset.month, onset.day) < (birth.month, birth.day))
        year_start = _anniversary(birth, years)
        # a disease that admissions follow (a stroke, heart failure) is diagnosed at the first
        # of them later in the same year of life: the stay records it (its encounter), and the
        # admission has what a real one has, the diagnosis it was for
        if condition.column in self.followed:
            stays = [e for e in encounters if e.code in INPATIENT and onset <= e.start
                     and e.day < _anniversary(birth, years + 1)]
            if stays:
                condition.onset = min(stays, key=lambda e: e.start).start
                self.stats["onsets placed at the admission that follows them"] += 1
                return condition.onset
        visits = [e for e in encounters if e.code == "AMB" and year_start <= e.day and e.start <= onset]
        if not visits:
            return onset
        condition.onset = max(visits, key=lambda e: e.start).start
        self.stats["onsets moved to a visit earlier in their year of life"] += 1
        return condition.onset

    def _link(self, event: Condition | Observation, moment: dt.datetime, encounters: list[Encounter]) -> None:
        """Record ``event`` at an encounter on its day, or at a new one for the problem."""
        event.encounter = self._visit(moment, encounters, "a condition or a value", PROBLEM)

    def _visit(self, moment: dt.datetime, encounters: list[Encounter], why: str,
               kind: Concept | None = None) -> Encounter:
        """The patient's encounter on ``moment``'s day, or a new ambulatory one then (counted)."""
        found = _on_day(moment, encounters)
        if found is None:
            found = self._encounter(moment, "AMB", "ambulatory", kind)
            encounters.append(found)
            self.stats[f"encounters added to record {why}"] += 1
        return found

    def _events(self, stream: Stream, group: EventGroup, k: int, value: Any, birth: dt.date,
                encounters: list[Encounter], onsets: dict[str, dt.datetime]) -> list[Event]:
        n = _count(value) if stream.kind == "count" else int(not is_missing(value))
        if n == 0:
            return []
        start, end = stream.span(k, self.schema.reference)
        start, end = max(start, birth), min(end, self._last)
        if start >= end:
            self.stats[f"{stream.name} outside the patient's life, not written"] += n
            return []
        here = [e for e in encounters if start <= e.day < end]
        if stream.resource == "Observation":  # a lab at an ambulatory visit, or drawn in a stay
            here = [e for e in here if e.code == "AMB" or e.code in INPATIENT] or here
        # the first diagnosis among the conditions it treats (an inhaler from asthma or COPD)
        onset = min((t for t in (self._onset(flag, onsets) for flag in group.treats) if t is not None), default=None)
        if onset is not None:  # a treatment never precedes its diagnosis: from the onset's day on
            if onset.date() >= end:
                self.stats["treatments in a year before their diagnosis, not written"] += n
                return []
            if onset.date() > start:
                self.stats["treatments placed after their condition's onset"] += n
                start = onset.date()
                here = [e for e in here if e.day >= start]
        out: list[Event] = []
        # one event per day with a visit, as far as they go (two visits on a day are one for this)
        by_day = {e.day: e for e in sorted(here, key=lambda e: e.start, reverse=True)}
        days = list(by_day.values())
        free = [days[int(k)] for k in self.rng.permutation(len(days))]
        # a drug, a procedure or a lab goes to a stay first: a stay has care in it
        free.sort(key=lambda e: e.code in INPATIENT)  # stable: stays last, popped first
        used = set(by_day)
        for _ in range(n):
            if free:
                enc = free.pop()
            else:  # more events than visits: a new visit on a day without one
                day = self._free_day(start, end, used)
                if day is None:
                    self.stats[f"{stream.name}: more events than days in a cell, not written"] += 1
                    continue
                used.add(day)
                enc = self._encounter(_moment(day, self.rng), "AMB", "ambulatory")
                encounters.append(enc)
                self.stats[f"encounters added to record {stream.name}"] += 1
            moment = max(enc.start, onset) if onset is not None else enc.start
            concept = self._concept(stream, group, moment)
            if concept is None:
                self.stats[f"{group.name}: no test due by its schedule (age, sex, interval), not written"] += 1
                continue
            out.append(self._resource(stream, group, value, moment, enc, concept))
        return out

    def _free_day(self, start: dt.date, end: dt.date, used: set[dt.date]) -> dt.date | None:
        for _ in range(20):
            day = _day_in(start, end, self.rng)
            if day not in used:
                return day
        return None

    def _concept(self, stream: Stream, group: EventGroup, moment: dt.datetime) -> Concept | None:
        """The code an event is written with: a scheduled group's codes that are due (age, sex,
        interval since the patient's last one); a medication group's drug the patient takes
        (one per group, renewed; among those its conditions call for, where the group declares
        indications); another group's codes at random. None: nothing due."""
        if stream.resource == "Observation" or group.codes is None:
            return None if stream.resource != "Observation" else Concept(None, None, group.name)
        code_group = self.schema.code_groups[group.codes]
        if group.schedule:
            age = (moment.date() - self._birth).days / 365.25
            due = [s for s in group.schedule
                   if s.allows(age, self._sex, None if s.code not in self._done
                               else (moment - self._done[s.code]).days / 365.25)]
            if not due:
                return None
            pick = due[int(self.rng.integers(len(due)))]
            self._done[pick.code] = moment
            code = next(c for c in code_group.codes if c.code == pick.code)
        elif stream.resource == "MedicationRequest":
            if group.name not in self._drug:
                # a drug the patient's conditions call for (warfarin with atrial fibrillation,
                # an inhaler with asthma), when the group declares indications and one is met;
                # else any of the group's (the model gave a prescription without a condition)
                choices = code_group.indicated(self._present) or code_group.codes
                self._drug[group.name] = choices[int(self.rng.integers(len(choices)))]
            code = self._drug[group.name]
        else:
            code = code_group.codes[int(self.rng.integers(len(code_group.codes)))]
        return Concept(code_group.system, code.code, code.display or group.name)

    def _around(self, stream: Stream, group: EventGroup, row: dict[str, Any], encounters: list[Encounter],
                onsets: dict[str, dt.datetime]) -> list[Event]:
        """A lab's values around a condition's onset: the value at the onset on the diagnosis's
        day (diagnosed on it), the value after it on a day drawn in its span of days; none
        past the reference date (counted)."""
        assert group.around is not None
        onset = self._onset(group.around.condition, onsets)
        end = self._stop
        out = []
        for name, (first, last) in zip(stream.anchored(group), ((0, 0), group.around.after_days)):
            value = row.get(name)
            if is_missing(value):
                continue
            if onset is None:  # the rule ties them to the condition; a guard, counted if it ever fails
                self.stats["values around an onset without the condition, not written"] += 1
                continue
            moment = onset + dt.timedelta(days=int(self.rng.integers(first, last + 1)),
                                          minutes=int(self.rng.integers(5, 60)))
            if moment >= end:
                self.stats[f"{stream.name} after an onset past the reference date, not written"] += 1
                continue
            if moment.date() < stream.span(stream.cells - 1, self.schema.reference)[0]:
                # the stream's public window is where its values exist (an HbA1c at a diagnosis
                # in 1975 predates the test's use): none is dated before it
                self.stats[f"{stream.name} around an onset before the stream's window, not written"] += 1
                continue
            enc = self._visit(moment, encounters, f"{stream.name} around an onset")
            out.append(self._resource(stream, group, value, moment, enc, Concept(None, None, group.name)))
        return out

    def _onset(self, flag: str, onsets: dict[str, dt.datetime]) -> dt.datetime | None:
        """The patient's earliest onset of the condition column ``flag`` (None if absent)."""
        group_codes = self.schema.code_groups[self.flags[flag] or ""].code_set
        return min((t for c, t in onsets.items() if c in group_codes), default=None)

    def _resource(self, stream: Stream, group: EventGroup, value: Any, moment: dt.datetime,
                  enc: Encounter, concept: Concept) -> Event:
        rid = self.new_id()
        if stream.resource == "Observation":
            col: Column = self.schema.column(stream.columns(group)[0])
            lab = Concept(col.output.get("system", LOINC), col.output["code"], col.output.get("display", group.name))
            return Observation(rid, lab, col.output.get("category", "laboratory"), moment,
                               value=Quantity(lab, float(value), col.output.get("unit", col.source.unit or "1")),
                               encounter=enc)
        return Order(rid, stream.resource, concept, moment, enc, minutes=None if stream.resource ==
                     "MedicationRequest" else 30)


@dataclass(frozen=True)
class _Group:
    output_code: str
    follows: tuple[str, ...]


def _on_day(moment: dt.datetime, encounters: list[Encounter]) -> Encounter | None:
    """The first of ``encounters`` that starts on ``moment``'s day."""
    day = moment.date()
    return next((e for e in encounters if e.day == day), None)


def _count(value: Any) -> int:
    return 0 if is_missing(value) else int(value)


def _anniversary(birth: dt.date, years: int) -> dt.date:
    """The day ``years`` after ``birth`` (a 29 February birthday falls on 1 March)."""
    try:
        return birth.replace(year=birth.year + years)
    except ValueError:
        return dt.date(birth.year + years, 3, 1)
