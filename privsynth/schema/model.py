"""The schema model: frozen objects describing the patient view and its public domains.

A :class:`Schema` lists :class:`Column` objects. Each column has a source (where its
value comes from in FHIR or in a table, :mod:`privsynth.schema.source`), a kind, a role and
a PUBLIC domain (:mod:`privsynth.schema.domain`). Domains never come from the data: they are
written in the schema and checked when built. This module re-exports both modules' names.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from privsynth.schema.domain import MISSING, OTHER, CategoricalDomain, Category, Domain, NumericDomain
from privsynth.schema.source import SUMMARIES, TRANSFORMS, CodeGroup, Source, Summary, Where

if TYPE_CHECKING:
    from privsynth.schema.rule import Formula, Rule
    from privsynth.schema.timeline import Timeline

__all__ = ["FAKER_KINDS", "KINDS", "MISSING", "OTHER", "ROLES", "SHARED_IDENTIFIER", "SUMMARIES", "TRANSFORMS",
           "CategoricalDomain", "Category", "CodeGroup", "Column", "ConditionColumns", "Domain", "Kind",
           "NumericDomain", "PatientKey", "Role", "Schema", "Source", "Structure", "Summary", "Where",
           "pair_conditions"]

ROLES = ("direct_identifier", "quasi_identifier", "sensitive", "other")
KINDS = ("categorical", "boolean", "numeric", "integer")
FAKER_KINDS = ("name", "mrn", "ssn", "phone", "address", "email", "id")

Role = Literal["direct_identifier", "quasi_identifier", "sensitive", "other"]
Kind = Literal["categorical", "boolean", "numeric", "integer"]


@dataclass(frozen=True)
class ConditionColumns:
    """A condition of the patient view: its presence flag (Condition, ``exists``, a code
    group) and, when the schema has one, its onset column (Condition, ``first``, the same
    group). The one place that pairs them: ingest, rules, writers and report ask here."""

    flag: Column
    onset: Column | None

    @property
    def name(self) -> str:
        return self.flag.name

    @property
    def codes(self) -> str:
        return self.flag.source.codes or ""


def pair_conditions(columns: Iterable[Column]) -> tuple[ConditionColumns, ...]:
    """Each condition flag (Condition, ``exists``, a code group; not a timeline cell) with the
    onset column of the same group (Condition, ``first``), if the columns have one."""
    columns = [c for c in columns if c.source.resource == "Condition" and c.source.codes and c.source.cell is None]
    onsets = {c.source.codes: c for c in columns if c.source.summary_kind.keeps == "earliest"}
    return tuple(ConditionColumns(c, onsets.get(c.source.codes)) for c in columns if c.source.summary_kind.flags)


@dataclass(frozen=True)
class Column:
    """One column of the patient view."""

    name: str
    kind: Kind
    role: Role
    source: Source
    domain: Domain | None
    description: str | None = None
    faker: str | None = None
    output: Mapping[str, str] = field(default_factory=dict)
    location: str | None = field(default=None, compare=False)  # "file:line" of its domain, for errors
    derived: Formula | None = None  # computed from other columns after sampling, never learned

    @property
    def learned(self) -> bool:
        """Whether the generator models this column (never direct identifiers, never derived ones)."""
        return self.role != "direct_identifier" and self.derived is None

    @property
    def in_view(self) -> bool:
        """Whether the column is in the patient view: read from the input, written to the output."""
        return self.role != "direct_identifier"

    @property
    def contribution_bound(self) -> str:
        """A sentence stating how one patient's contribution to this column is bounded."""
        if self.domain is None:
            return "not learned"
        if isinstance(self.domain, NumericDomain):
            what = "count capped" if self.source.summary_kind.counts else "value clamped"
            return f"{what} to [{self.domain.lower:g}, {self.domain.upper:g}]"
        return f"one of {self.domain.size} public categories"


@dataclass(frozen=True)
class Structure:
    """A public structural prior: marginals the model must contain, measured with ``share``
    of the budget (split evenly) before adaptive selection spends the rest."""

    marginals: tuple[tuple[str, ...], ...]
    share: float


SHARED_IDENTIFIER = ("refuse", "merge")


@dataclass(frozen=True)
class PatientKey:
    """What identifies a patient stably across exports (for the per-patient budget ledger).

    FHIR: ``Patient.id`` (``identifier_system`` None), or the value of the Patient's
    identifier of ``identifier_system`` (e.g. the hospital's MRN); ``identifiers``: every
    other identifier system a patient is also known by (MRN, SSN): the ledger charges a
    release to each of them, so re-keying the same patients cannot reset their budget, and
    two Patients sharing a value of any of them are one patient -- refused, or merged into
    one row when ``shared`` is "merge". Tables: the schema column ``column``; a table schema
    without one falls back to a hash of each row's values.
    """

    column: str | None = None
    identifier_system: str | None = None
    identifiers: tuple[str, ...] = ()
    shared: str = "refuse"

    def is_row_hash(self, input_format: str) -> bool:
        """Whether patients are keyed by a hash of their row's values (a table without a stable id):
        a patient whose values differ in another export counts as a new patient in the budget."""
        return input_format == "table" and self.column is None

    def describe(self, input_format: str) -> str:
        if self.column is not None:
            return f"column '{self.column}'"
        first = (f"Patient.identifier of system {self.identifier_system}" if self.identifier_system is not None
                 else "Patient.id")
        if input_format != "fhir":
            return "a hash of each row (no patient_id column declared)"
        if self.identifiers:
            first += " and every identifier of system " + ", ".join(self.identifiers)
        return first


@dataclass(frozen=True)
class Schema:
    """The patient view: columns, code groups, a reference date for ages."""

    name: str
    input_format: Literal["fhir", "table"]
    reference_date: dt.date | None
    columns: tuple[Column, ...]
    code_groups: Mapping[str, CodeGroup] = field(default_factory=dict)
    description: str | None = None
    source_file: str | None = None
    target: str | None = None  # the column utility reports predict (TSTR), if any
    protected: tuple[str, ...] = ()  # attributes whose groups the bias check compares
    patient_id: PatientKey = field(default_factory=PatientKey)
    constraints: tuple[Rule, ...] = ()  # declared: every synthetic row satisfies them
    plausibility: tuple[Rule, ...] = ()  # audited only: a clinician's panel
    structure: Structure | None = None
    timeline: Timeline | None = None  # event streams, as columns of the view (privsynth.schema.timeline)
    # the schema as written (``extends`` resolved): public; saved beside a model so that a
    # recipient can sample from it with nothing else (privsynth.sample)
    document: Mapping[str, Any] | None = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        names = [c.name for c in self.columns]
        if len(set(names)) != len(names):
            raise ValueError("column names must be unique")

    def only(self, names: list[str] | tuple[str, ...]) -> Schema:
        """The schema with only ``names`` among its learned columns (the others left out)."""
        wanted = set(names)
        return dataclasses.replace(self, columns=tuple(c for c in self.columns if not c.learned or c.name in wanted))

    @property
    def learned_columns(self) -> tuple[Column, ...]:
        return tuple(c for c in self.columns if c.learned)

    @property
    def identifier_columns(self) -> tuple[Column, ...]:
        return tuple(c for c in self.columns if c.role == "direct_identifier")

    @property
    def view_columns(self) -> tuple[Column, ...]:
        """The patient view: learned and derived columns, in schema order."""
        return tuple(c for c in self.columns if c.in_view)

    @property
    def derived_columns(self) -> tuple[Column, ...]:
        return tuple(c for c in self.columns if c.derived is not None)

    @functools.cached_property
    def value_series(self) -> tuple[tuple[str, ...], ...]:
        """Repeated measures of one quantity in one patient: each value stream group's cells and
        its anchored columns, with the view's last value of the same codes (``summary: last``).
        Decoding draws their within-bin positions together, as a person's labs are correlated."""
        if self.timeline is None:
            return ()
        learned = {c.name: c for c in self.learned_columns}
        out = []
        for stream in self.timeline.streams:
            if stream.kind != "value":
                continue
            for group in stream.groups:
                names = [*stream.columns(group), *(stream.anchored(group) if group.around else ())]
                names += [c.name for c in learned.values() if group.codes and c.source.codes == group.codes
                          and c.source.resource == stream.resource and c.source.summary == "last"]
                out.append(tuple(n for n in dict.fromkeys(names) if n in learned))
        return tuple(s for s in out if len(s) > 1)

    @functools.cached_property
    def conditions(self) -> tuple[ConditionColumns, ...]:
        """Every condition of the view (not a timeline cell): its flag and its onset column, if any."""
        return pair_conditions(self.view_columns)

    @property
    def age_column(self) -> Column | None:
        """The patient's age at the reference date (Patient.birthDate, transform age), if any."""
        return next((c for c in self.learned_columns if c.source.resource == "Patient"
                     and c.source.transform == "age" and (c.source.path or "").startswith("birthDate")), None)

    @property
    def death_column(self) -> Column | None:
        """Whole years since the death (Patient.deceased[x], transform age), if any."""
        return next((c for c in self.learned_columns if c.source.resource == "Patient"
                     and c.source.transform == "age" and (c.source.path or "").startswith("deceased")), None)

    @functools.cached_property
    def rules(self) -> tuple[Rule, ...]:
        """Every rule a synthetic row must satisfy: the declared ones, and those the schema's
        own semantics imply (an onset age is at most the age, and at most the age at death; a
        condition has an onset age exactly when it is present; a derived number lies within
        its public bounds)."""
        from privsynth.schema.rule import parse_rule

        implied: list[Rule] = []
        age, death = self.age_column, self.death_column
        for condition in self.conditions:
            col = condition.onset
            if col is None or col.source.transform != "age_at_event" or not col.learned:
                continue
            if age is not None:
                implied.append(parse_rule(f"{col.name} <= {age.name}", "implied"))
                if death is not None:  # no diagnosis after the death
                    implied.append(parse_rule(f"{col.name} <= {age.name} - {death.name}", "implied"))
            if condition.flag.learned:
                implied.append(parse_rule(f"{col.name} is present -> {condition.name}", "implied"))
                implied.append(parse_rule(f"{condition.name} -> {col.name} is present", "implied"))
        implied += self._timeline_rules()
        for col in self.derived_columns:
            if isinstance(col.domain, NumericDomain):
                implied.append(parse_rule(f"{col.name} >= {col.domain.lower!r} and {col.name} <= {col.domain.upper!r}",
                                          "implied"))
        declared = {r.text for r in self.constraints}
        return tuple(self.constraints) + tuple(r for r in implied if r.text not in declared)

    def _timeline_rules(self) -> list[Rule]:
        """A timeline cell holds events only if it lies in the patient's life (its age at the
        reference date reaches the cell), a treatment only if its condition is present, and a
        lab value only if the patient's last value of that lab is present."""
        from privsynth.schema.rule import parse_rule

        if self.timeline is None:
            return []
        out: list[Rule] = []
        age = self.age_column
        for stream in self.timeline.streams:
            for group in stream.groups:
                # a patient column reading the last value of the same codes has one whenever
                # a cell of the window (or a value around an onset) does
                last = next((c.name for c in self.learned_columns if c.source.summary_kind.name == "last"
                             and c.source.resource == stream.resource and c.source.codes == group.codes
                             and group.codes is not None), None) if stream.kind == "value" else None
                cells = list(stream.columns(group)) + (list(stream.anchored(group)) if group.around else [])
                for k, name in enumerate(stream.columns(group)):
                    some = f"{name} > 0" if stream.kind == "count" else f"{name} is present"
                    years = stream.years_before(k)
                    if age is not None and years > 0:
                        out.append(parse_rule(f"{some} -> {age.name} >= {years}", "implied"))
                    if group.treats:
                        out.append(parse_rule(f"{some} -> {' or '.join(group.treats)}", "implied"))
                if last is not None:
                    out += [parse_rule(f"{name} is present -> {last} is present", "implied") for name in cells]
        return out

    @property
    def reference(self) -> dt.date:
        """The reference date for ages (FHIR schemas always have one)."""
        if self.reference_date is None:
            from privsynth.errors import SchemaError

            raise SchemaError(f"schema '{self.name}' has no reference_date; add one (YYYY-MM-DD)")
        return self.reference_date

    def column(self, name: str) -> Column:
        for c in self.columns:
            if c.name == name:
                return c
        raise KeyError(name)

    @property
    def resource_types(self) -> frozenset[str]:
        return frozenset(
            c.source.resource for c in self.learned_columns if c.source.resource is not None
        )
