"""Red-flag summaries of a set of patients, and a real summary compared with a synthetic one.

:func:`summarise` counts every flag's premise and findings over the patients (and a few
distributions that are not flags); :func:`compare` sets each real flag beside the synthetic
one of the same name and marks a miss (:func:`is_miss`).
"""

from __future__ import annotations

import datetime as dt
import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from privsynth.history.chart import CONDITION_GROUPS, Resource, age_at, chart_of
from privsynth.history.redflag.flag import FLAGS, Flag


@dataclass(frozen=True)
class FlagCount:
    name: str
    sentence: str
    premise: int  # patients the flag concerns
    flagged: int

    @property
    def rate(self) -> float | None:
        return self.flagged / self.premise if self.premise else None


@dataclass(frozen=True)
class Distribution:
    """A summary distribution (not a flag): its size, mean, median and, for ages, the share
    under 18."""

    name: str
    n: int
    mean: float | None
    median: float | None
    under_18: float | None = None


@dataclass(frozen=True)
class Summary:
    patients: int
    reference: dt.date
    flags: tuple[FlagCount, ...]
    distributions: tuple[Distribution, ...] = field(default=())
    any_flagged: int = 0  # patients with at least one flag

    def flag(self, name: str) -> FlagCount:
        return next(f for f in self.flags if f.name == name)

    def distribution(self, name: str) -> Distribution:
        return next(d for d in self.distributions if d.name == name)

    def to_dict(self) -> dict[str, Any]:
        return {"patients": self.patients, "reference": self.reference.isoformat(), "any_flagged": self.any_flagged,
                "flags": [{"name": f.name, "sentence": f.sentence, "premise": f.premise, "flagged": f.flagged,
                           "rate": f.rate} for f in self.flags],
                "distributions": [vars(d) for d in self.distributions]}


def _distribution(name: str, values: list[float], under_18: bool = False) -> Distribution:
    if not values:
        return Distribution(name, 0, None, None, None)
    return Distribution(name, len(values), statistics.fmean(values), statistics.median(values),
                        sum(v < 18 for v in values) / len(values) if under_18 else None)


def summarise(patients: Iterable[Sequence[Resource]], reference: dt.date,
              flags: Sequence[Flag] = FLAGS) -> Summary:
    """Every flag's premise and flagged counts over ``patients``, and the distributions: age at
    the reference date, encounters per patient, inpatient length of stay (days), age at onset
    per condition (the first onset); and how many patients carry at least one flag."""
    premise = [0] * len(flags)
    flagged = [0] * len(flags)
    n = anyone = 0
    encounters: list[float] = []
    ages: list[float] = []
    stays: list[float] = []
    onsets: dict[str, list[float]] = {group: [] for group, _ in CONDITION_GROUPS}
    for resources in patients:
        chart = chart_of(resources)
        if not chart.has_patient:
            continue
        n += 1
        hits = 0
        for i, flag in enumerate(flags):
            applies, hit = flag(resources, reference)
            premise[i] += applies
            flagged[i] += applies and hit
            hits += applies and hit
        anyone += hits > 0
        encounters.append(len(chart.encounters))
        age = chart.age(reference)
        if age is not None:
            ages.append(age)
        stays += [s.hours / 24 for s in chart.stays() if s.hours is not None]
        if chart.birth is not None:
            for group in onsets:
                days = chart.onset_days(group)
                if days:
                    onsets[group].append(age_at(chart.birth, min(days)))
    dists = [_distribution("age at the reference date", ages, under_18=True),
             _distribution("encounters per patient", encounters),
             _distribution("inpatient length of stay (days)", stays)]
    dists += [_distribution(f"age at onset: {label}", onsets[group], under_18=True)
              for group, label in CONDITION_GROUPS]
    return Summary(n, reference, tuple(FlagCount(f.name, f.sentence, p, k)
                                       for f, p, k in zip(flags, premise, flagged)), tuple(dists), anyone)


@dataclass(frozen=True)
class Comparison:
    """One flag, real against synthetic. ``miss``: the synthetic rate exceeds
    max(2 x the real rate, 1 %) (a real rate of None, no patient in the premise, counts as 0)."""

    name: str
    real_premise: int
    real_flagged: int
    real_rate: float | None
    synthetic_premise: int
    synthetic_flagged: int
    synthetic_rate: float | None
    miss: bool


MISS_FLOOR = 0.01


def is_miss(real_rate: float | None, synthetic_rate: float | None, ratio: float = 2.0,
            floor: float = MISS_FLOOR) -> bool:
    """Whether a synthetic rate is a miss against the real one: above max(ratio x real, floor).

    >>> is_miss(0.0, 0.011), is_miss(0.1, 0.2), is_miss(0.1, 0.21), is_miss(None, None)
    (True, False, True, False)
    """
    if synthetic_rate is None:
        return False
    return synthetic_rate > max(ratio * (real_rate or 0.0), floor)


def compare(real: Summary, synthetic: Summary, ratio: float = 2.0, floor: float = MISS_FLOOR) -> list[Comparison]:
    """Each flag of ``real`` (in its order) beside the synthetic one of the same name; a miss
    is a synthetic rate above max(``ratio`` x real, ``floor``)."""
    rows = []
    for r in real.flags:
        s = next((f for f in synthetic.flags if f.name == r.name), FlagCount(r.name, r.sentence, 0, 0))
        rows.append(Comparison(r.name, r.premise, r.flagged, r.rate, s.premise, s.flagged, s.rate,
                               is_miss(r.rate, s.rate, ratio, floor)))
    return rows


def max_date(patients: Iterable[Sequence[Resource]]) -> dt.date | None:
    """The latest event day (or date of death) of any patient: a reference date for an export
    that does not state one."""
    latest: dt.date | None = None
    for resources in patients:
        c = chart_of(resources)
        for d in (*c.event_days, *(x for x in (c.death,) if x)):
            if latest is None or d > latest:
                latest = d
    return latest
