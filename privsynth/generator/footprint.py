"""How much memory a schema's model needs at least, known from the schema alone.

Every learned column's 1-way marginal is measured and kept in the model, and every
numeric column also has a within-bin detail histogram (``SUB_BINS`` cells per public bin):
so the sum of those cells is a floor on the model's size, whatever the data. A schema
whose floor exceeds the limit (default 50 M cells, about 400 MB as float64 and more while
OpenDP draws the noise) is refused by ``schema check`` and before any data is read, with
the computed size and the column that weighs most. So is a column whose domain alone
would not fit in one clique of the junction tree.

>>> from privsynth.schema import load_schema
>>> s = load_schema({"name": "t", "input": "table", "columns": [{"name": "x", "kind": "numeric",
...     "role": "other", "source": {"column": "x"}, "domain": {"lower": 0, "upper": 1, "bins": 10}}]})
>>> footprint(s).cells
91
"""

from __future__ import annotations

from dataclasses import dataclass

from privsynth.domain import SUB_BINS
from privsynth.errors import SchemaError
from privsynth.generator.junction import DEFAULT_MAX_CELLS
from privsynth.schema.model import Column, NumericDomain, Schema

DEFAULT_MAX_MODEL_CELLS = 50_000_000


@dataclass(frozen=True)
class Footprint:
    """Cells the model needs at least: 1-way marginals and within-bin detail histograms."""

    one_way: int
    detail: int
    largest: Column | None
    largest_cells: int

    @property
    def cells(self) -> int:
        return self.one_way + self.detail


def _cells(col: Column) -> tuple[int, int]:
    assert col.domain is not None  # learned columns always have a domain (schema invariant)
    detail = col.domain.n_bins * SUB_BINS if isinstance(col.domain, NumericDomain) else 0
    return col.domain.size, detail


def footprint(schema: Schema) -> Footprint:
    one_way = detail = 0
    largest: Column | None = None
    largest_cells = 0
    for col in schema.learned_columns:
        size, fine = _cells(col)
        one_way += size
        detail += fine
        if size + fine > largest_cells:
            largest, largest_cells = col, size + fine
    return Footprint(one_way, detail, largest, largest_cells)


def check_footprint(schema: Schema, limit: int = DEFAULT_MAX_MODEL_CELLS) -> Footprint:
    """The schema's footprint, or :class:`SchemaError` when it exceeds ``limit`` cells."""
    if limit < 1:
        raise SchemaError("the model size limit must be a positive number of cells")
    found = footprint(schema)
    worst = found.largest
    where = (worst.location or f"schema '{schema.name}': column '{worst.name}'") if worst else schema.name
    if found.cells > limit:
        raise SchemaError(
            f"{where}: the model of schema '{schema.name}' needs at least {found.cells:,} cells "
            f"({found.one_way:,} for the 1-way marginals, {found.detail:,} for within-bin detail; column "
            f"'{worst.name if worst else '?'}' alone {found.largest_cells:,}), above the limit of {limit:,} cells "
            f"(about {limit * 8 / 1e6:,.0f} MB as float64). Use fewer bins, or raise the limit (--max-model-cells) "
            "on a machine with the memory for it")
    for col in schema.learned_columns:
        if col.domain is not None and col.domain.size > DEFAULT_MAX_CELLS:
            raise SchemaError(
                f"{col.location or schema.name}: column '{col.name}' has {col.domain.size:,} public values; one "
                f"column may have at most {DEFAULT_MAX_CELLS:,} (its marginal must fit in the model). Use fewer "
                "bins or categories")
    return found
