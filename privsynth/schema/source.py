"""Where a column's value comes from: a FHIR element (with code groups, filters and a
summary of many values per patient) or a table column."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from privsynth.schema.domain import Category
from privsynth.schema.summary import SUMMARIES as SUMMARY_KINDS
from privsynth.schema.summary import Summary as SummaryKind

SUMMARIES = tuple(SUMMARY_KINDS)
TRANSFORMS = ("age", "age_at_event", "year")

Summary = Literal["value", "exists", "count", "first", "last"]


@dataclass(frozen=True)
class CodeGroup:
    """A named list of codes from one code system (e.g. SNOMED CT codes for diabetes)."""

    name: str
    system: str
    codes: tuple[Category, ...]
    # what each code treats (a drug's indications), as condition columns of the schema:
    # (code, (condition, ...)) pairs; a code not listed has none declared
    indications: tuple[tuple[str, tuple[str, ...]], ...] = ()

    @property
    def code_set(self) -> frozenset[str]:
        return frozenset(c.code for c in self.codes)

    def indicated(self, present: frozenset[str] | set[str]) -> tuple[Category, ...]:
        """The codes a patient with the ``present`` conditions has an indication for: those
        whose declared indications include one of them."""
        treats = dict(self.indications)
        return tuple(c for c in self.codes if set(treats.get(c.code, ())) & set(present))


@dataclass(frozen=True)
class Where:
    """A filter: the element at ``path`` must have one of ``values``."""

    path: str
    values: frozenset[str]


@dataclass(frozen=True)
class Source:
    """Where a column's value comes from.

    For FHIR input ``resource`` names the resource type; ``path`` the element read;
    ``codes`` a code group matched against the resource's ``code`` (any coding);
    ``where`` extra filters; ``summary`` how many-per-patient values become one;
    ``date`` the element that orders resources in time (for first/last).
    For table input only ``column`` is used.
    """

    resource: str | None = None
    path: str | None = None
    codes: str | None = None
    where: tuple[Where, ...] = ()
    summary: Summary = "value"
    transform: str | None = None
    date: str | None = None
    unit: str | None = None
    column: str | None = None
    cell: tuple[str, int] | None = None  # a timeline column: (stream, cell; 0 = the most recent)
    # a value anchored to a condition's onset (timeline ``around``): (onset column, first day,
    # last day) relative to the onset; the value nearest the middle of that span is kept
    anchor: tuple[str, int, int] | None = None

    @property
    def summary_kind(self) -> SummaryKind:
        """What ``summary`` means (:mod:`privsynth.schema.summary`)."""
        return SUMMARY_KINDS[self.summary]
