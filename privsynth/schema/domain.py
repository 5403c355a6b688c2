"""Public domains, as a schema writes them: categories, and numeric bounds cut by bins.

A domain never comes from the data. A :class:`CategoricalDomain` lists its categories and
adds an explicit ``other`` and ``missing`` bucket; a :class:`NumericDomain` has public bounds
cut by public bin edges, plus ``missing``. Both check themselves when built. (How a view's
values are encoded against these domains is :mod:`privsynth.domain`.)
"""

from __future__ import annotations

from dataclasses import dataclass

MISSING = "missing"
OTHER = "other"


@dataclass(frozen=True)
class Category:
    """One public category: the code written to the output, a display, input aliases."""

    code: str
    display: str | None = None
    aliases: tuple[str, ...] = ()


@dataclass(frozen=True)
class CategoricalDomain:
    """Categories from the schema, plus an explicit ``other`` and ``missing`` bucket.

    Integer codes ``0..len(categories)-1`` are the categories, then ``other`` (if
    allowed), then ``missing`` (if allowed).
    """

    categories: tuple[Category, ...]
    other: bool = True
    missing: bool = True
    integer_codes: bool = False

    def __post_init__(self) -> None:
        codes = [c.code for c in self.categories]
        if not codes:
            raise ValueError("a categorical domain needs at least one category")
        if len(set(codes)) != len(codes):
            raise ValueError("category codes must be unique")

    @property
    def labels(self) -> tuple[str, ...]:
        extra = ((OTHER,) if self.other else ()) + ((MISSING,) if self.missing else ())
        return tuple(c.code for c in self.categories) + extra

    @property
    def size(self) -> int:
        return len(self.labels)

    @property
    def other_code(self) -> int | None:
        return len(self.categories) if self.other else None

    @property
    def missing_code(self) -> int | None:
        return self.size - 1 if self.missing else None

    def lookup(self) -> dict[str, int]:
        """Map every accepted input string (code or alias) to its integer code."""
        table: dict[str, int] = {}
        for i, cat in enumerate(self.categories):
            table[cat.code] = i
            for alias in cat.aliases:
                table[alias] = i
        return table


@dataclass(frozen=True)
class NumericDomain:
    """Public bounds ``[lower, upper]`` cut by public bin ``edges`` (both ends included).

    Values outside the bounds are clamped (a contribution bound) and counted. Integer
    code ``k`` is the bin ``[edges[k], edges[k+1])`` (the last bin is closed); then
    ``missing`` if allowed.
    """

    lower: float
    upper: float
    edges: tuple[float, ...]
    missing: bool = True
    integer: bool = False

    def __post_init__(self) -> None:
        if not self.lower < self.upper:
            raise ValueError("lower must be below upper")
        if len(self.edges) < 2:
            raise ValueError("bins need at least two edges")
        if self.edges[0] != self.lower or self.edges[-1] != self.upper:
            raise ValueError("the first bin edge must equal lower and the last upper")
        if any(b <= a for a, b in zip(self.edges, self.edges[1:])):
            raise ValueError("bin edges must be strictly increasing")

    @property
    def n_bins(self) -> int:
        return len(self.edges) - 1

    @property
    def size(self) -> int:
        return self.n_bins + (1 if self.missing else 0)

    @property
    def missing_code(self) -> int | None:
        return self.n_bins if self.missing else None

    @property
    def labels(self) -> tuple[str, ...]:
        fmt = "{:g}"
        bins = tuple(
            f"[{fmt.format(a)}, {fmt.format(b)}{']' if i == self.n_bins - 1 else ')'}"
            for i, (a, b) in enumerate(zip(self.edges, self.edges[1:]))
        )
        return bins + ((MISSING,) if self.missing else ())


Domain = CategoricalDomain | NumericDomain
