"""How a patient's many resources become one value: the summary kinds, in one registry.

A column's ``source.summary`` names one of these. Ingest folds every matching resource of a
patient into a running state (:meth:`Summary.better` says whether a dated value replaces the
kept one), merges the states of a patient's aliases, and finishes the state into the
column's raw value (:meth:`Summary.finish`); the schema loader, the data-quality findings,
the writers and the report ask the same object what the kind means, so no module tests the
kind by its name.

>>> SUMMARIES["last"].better(2, 1), SUMMARIES["first"].better(2, 1)
(True, False)
>>> SUMMARIES["exists"].finish(3, None), SUMMARIES["count"].finish(0, None), SUMMARIES["last"].finish(2, 7.5)
(True, 0, 7.5)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Summary:
    """One summary kind.

    ``makes``: the column kind it forces (None: any); ``reads_value``: it keeps a value read
    at the source's path (so the path is required), else it only counts resources;
    ``keeps``: which dated value wins ("earliest", "latest", or None: the first one read);
    ``has_missing``: its column has a missing bucket by default (a presence flag does not:
    absence is false); ``bound``: how its contribution is bounded, in words."""

    name: str
    makes: str | None
    reads_value: bool
    keeps: str | None
    has_missing: bool
    bound: str
    description: str

    def better(self, when: Any, kept: Any) -> bool:
        """Whether a value dated ``when`` replaces the one kept, dated ``kept`` (None: nothing kept)."""
        if kept is None:
            return True
        if self.keeps == "latest":
            return bool(when >= kept)
        if self.keeps == "earliest":
            return bool(when < kept)
        return False

    def finish(self, count: int, value: Any) -> Any:
        """The column's raw value from ``count`` matching resources and the value kept."""
        if self.makes == "boolean" and not self.reads_value:
            return count > 0
        if self.makes == "integer" and not self.reads_value:
            return count
        return value

    @property
    def counts(self) -> bool:
        """It counts resources (the column is a number of events)."""
        return self.makes == "integer" and not self.reads_value

    @property
    def flags(self) -> bool:
        """It says whether any resource matched (the column is a presence flag)."""
        return self.makes == "boolean" and not self.reads_value

    def present(self, value: Any) -> bool:
        """Whether a patient's finished value says the resource is there at all."""
        if self.flags:
            return bool(value) if value is not None else False
        if self.counts:
            return value is not None and value == value and float(value) > 0
        return value is not None and value == value


SUMMARIES: dict[str, Summary] = {s.name: s for s in (
    Summary("value", None, True, None, True, "one value: a category of a public list, or a number clamped to "
            "public bounds", "the element's value (Patient elements: one resource per patient)"),
    Summary("exists", "boolean", False, None, False, "one of two values", "whether any matching resource exists"),
    Summary("count", "integer", False, None, True, "capped at the schema's upper bound",
            "the number of matching resources"),
    Summary("first", None, True, "earliest", True, "clamped to public bounds", "the earliest value (by its date)"),
    Summary("last", None, True, "latest", True, "clamped to public bounds", "the latest value (by its date)"),
)}
