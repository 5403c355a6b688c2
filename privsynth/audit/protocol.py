"""What every audit is: its thresholds, whether it applies, and how it runs on a context.

An audit is one object with a ``name``, the ``thresholds`` it reads from the policy (each a
:class:`Threshold`: default, sane range, which way is looser), a sentence on what it does in
a partial synthesis, ``applies(context)`` and ``run(context) -> (checks, figures)``. The
registry (:mod:`privsynth.audit.registry`) lists them; ``evaluate``, the policy, the CLI and
the report read the registry, so adding an audit is one module and one ``register`` call.

An audit may also show its figures in the release report: a method
``section(figures, info) -> Section | None`` (:class:`HasSection`) describes its section in
the typed, HTML-free blocks of :mod:`privsynth.audit.section`; the report draws the
sections of the registered audits in registry order. Without the method, or when it returns
None, the audit has no section (its checks still appear in the gate table).

A check whose ``passed`` is None is information. An audit decides that itself, from the
context (e.g. in a partial synthesis the re-identification audit keeps only its exact and
near matches as gates): nothing outside it gates by check name.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import numpy as np
import pandas as pd

from privsynth.schema.model import Schema

if TYPE_CHECKING:
    from privsynth.audit.policy import Policy
    from privsynth.audit.result import Check
    from privsynth.audit.section import ReportInfo, Section
    from privsynth.audit.space import AuditSpace



@dataclass(frozen=True)
class Threshold:
    """One policy value: its default, the range outside which a gate would be meaningless,
    and whether a larger value lets more through (a larger one is then a weakening)."""

    name: str
    default: float
    low: float
    high: float
    looser_when_larger: bool
    whole: bool = False
    help: str = ""

    def __post_init__(self) -> None:
        if not self.low <= self.default <= self.high:
            raise ValueError(f"threshold '{self.name}': default {self.default} outside [{self.low}, {self.high}]")


@dataclass(frozen=True)
class Charts:
    """Real and synthetic patients as FHIR R4 resources (one list of JSON dicts per patient),
    for audits that read records as a clinician does. ``real()`` reads the input export
    again; ``synthetic(rows)`` writes the synthetic rows at those positions the way the
    release writes them (fresh identifiers, histories); ``reference`` is the schema's "now"."""

    real: Callable[[], Iterable[Sequence[dict[str, Any]]]]
    synthetic: Callable[[np.ndarray], Iterable[Sequence[dict[str, Any]]]]
    reference: dt.date
    # red flags the schema decides rather than the model (name -> why): shown, never raised
    unjudged: Mapping[str, str] = field(default_factory=dict)


@dataclass
class AuditContext:
    """Everything an audit may read. Patient views are one row per patient; ``keep`` names
    the real columns of a partial synthesis (empty for a full one). Shared intermediate
    results (nearest-neighbour distances) are computed once and kept in ``cache``."""

    train: pd.DataFrame
    holdout: pd.DataFrame
    synthetic: pd.DataFrame
    schema: Schema
    policy: Policy
    rng: np.random.Generator
    epsilon: float | None = None
    delta: float = 1e-6
    keep: tuple[str, ...] = ()
    workers: int | None = None
    cache: dict[str, Any] = field(default_factory=dict)
    # fresh draws of the model that made ``synthetic`` (n rows, a generator): the release has
    # them, an audit of another tool's data does not (post-processing; they never leave)
    resample: Callable[[int, np.random.Generator], pd.DataFrame] | None = None
    # the same patients as FHIR records (a release of FHIR input has them; a table does not)
    charts: Charts | None = None

    @property
    def partial(self) -> bool:
        return bool(self.keep)

    @property
    def distance_schema(self) -> Schema:
        """The columns distances are computed on: all learned ones, or in a partial synthesis
        the replaced ones (the kept ones are the train patients' own, by design)."""
        if not self.keep:
            return self.schema
        return self.schema.only([c.name for c in self.schema.learned_columns if c.name not in self.keep])

    @property
    def audit_rows(self) -> int:
        """The most rows of each side the distance audits compare (never below min_holdout)."""
        return max(int(self.policy.audit_rows_max), int(self.policy.min_holdout))

    def audited(self) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
        """The train, holdout and synthetic rows the distance audits compare: all of them, or
        past ``audit_rows`` a uniform random sample, drawn once from the audit's own
        randomness (docs/audit.md, "At scale"). Train and holdout are sampled at the SAME rate
        (the larger one cut to ``audit_rows``; the holdout never below ``min_holdout``), so
        the sides keep their proportions: a copy whose source was not sampled then hits a
        look-alike on train and holdout as the null hypothesis expects, not more often on the
        holdout. Synthetic rows are cut to ``audit_rows``. Audits of rates (coherence) read
        the full frames."""
        if "audited" not in self.cache:
            cap = self.audit_rows
            rate = min(1.0, cap / max(1, len(self.train), len(self.holdout)))

            def cut(frame: pd.DataFrame, size: int) -> pd.DataFrame:
                if len(frame) <= size:
                    return frame
                return frame.iloc[np.sort(self.rng.choice(len(frame), size=size, replace=False))]

            holdout = max(round(rate * len(self.holdout)), int(self.policy.min_holdout))
            self.cache["audited"] = (cut(self.train, round(rate * len(self.train))), cut(self.holdout, holdout),
                                     cut(self.synthetic, cap))
        audited: tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame] = self.cache["audited"]
        return audited

    def spaces(self) -> tuple[AuditSpace, AuditSpace, AuditSpace]:
        """Train (in random order), holdout (random, cut to the compared size) and synthetic
        rows of :meth:`audited` in the audit space, made once."""
        if "spaces" not in self.cache:
            from privsynth.audit.space import audit_space

            train, holdout, synthetic = self.audited()
            m = min(len(train), len(holdout))
            train_rows = self.rng.permutation(len(train))
            holdout_rows = self.rng.permutation(len(holdout))[:m]
            schema = self.distance_schema
            self.cache["spaces"] = (audit_space(train.iloc[train_rows], schema),
                                    audit_space(holdout.iloc[holdout_rows], schema),
                                    audit_space(synthetic, schema))
        spaces: tuple[AuditSpace, AuditSpace, AuditSpace] = self.cache["spaces"]
        return spaces


class Audit(Protocol):
    """The shape of every audit."""

    @property
    def name(self) -> str:
        """Its name, which every check it makes carries (its figures are filed under it)."""
        ...

    @property
    def thresholds(self) -> tuple[Threshold, ...]:
        """The policy values it reads."""
        ...

    @property
    def partial_synthesis(self) -> str:
        """What it does when columns are kept, in one sentence (docs, report)."""
        ...

    def applies(self, context: AuditContext) -> bool:
        """Whether it runs on this context (e.g. attribute inference only in a partial synthesis)."""
        ...

    def run(self, context: AuditContext) -> tuple[list[Check], dict[str, Any]]:
        """Its checks (``audit`` = its name) and its figures (JSON-serialisable)."""
        ...


@runtime_checkable
class HasSection(Protocol):
    """An audit that shows a section in the release report (optional: see the module docstring)."""

    def section(self, figures: dict[str, Any], info: ReportInfo) -> Section | None:
        """Its report section, from the figures its ``run`` made (``{}`` when it did not run:
        it did not apply, or the audit file predates it) and ``info``; None for no section."""
        ...
