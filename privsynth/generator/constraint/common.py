"""What every step of the rules shares: the rules a row must meet, which rows break them, the
derived columns, and numbers drawn again inside their public bins."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import pandas as pd

from privsynth.domain import decode_numeric, rule_rows
from privsynth.schema.model import Column, NumericDomain, Schema
from privsynth.schema.rule import Node, Rule

# ``redraw(rows, held)``: fresh rows for ``rows`` (frame rows and model codes), drawn from the
# model given ``held`` (column index -> the codes to keep, one per row; empty: whole rows)
Redraw = Callable[[np.ndarray, dict[int, np.ndarray]], tuple[pd.DataFrame, np.ndarray]]


def formulas_of(schema: Schema) -> dict[str, Node]:
    """Each derived column's formula, to read a rule on it as a rule on what it is made of."""
    return {c.name: c.derived.node for c in schema.derived_columns if c.derived is not None}


def enforced(schema: Schema, fixed: Sequence[str] = ()) -> tuple[Rule, ...]:
    """The rules every synthetic row must satisfy: all the schema's hard rules, except those
    whose columns are all ``fixed`` (real values kept in a partial synthesis)."""
    kept = set(fixed)
    return tuple(r for r in schema.rules if not r.columns <= kept)


def violations(frame: pd.DataFrame, schema: Schema, rules: Sequence[Rule]) -> np.ndarray:
    """One boolean per row: does the row break any of ``rules``?"""
    return broken_per_row(frame, schema, rules) > 0


def derive(frame: pd.DataFrame, schema: Schema) -> pd.DataFrame:
    """Compute the derived columns (NaN where an input is missing), rounded as integers
    for integer columns."""
    if not schema.derived_columns:
        return frame
    inputs: set[str] = set().union(*(c.derived.columns for c in schema.derived_columns if c.derived is not None))
    rows = rule_rows(frame, schema, [c for c in schema.learned_columns if c.name in inputs])
    for col in schema.derived_columns:
        assert col.derived is not None
        if not col.derived.columns <= set(frame.columns):
            continue  # a narrow frame (some columns of some rows) carries what it needs only
        values = col.derived.evaluate(rows)
        if col.kind == "integer":
            frame[col.name] = pd.array(np.where(np.isnan(values), np.nan, np.round(values)), dtype="Float64")\
                .astype("Int64")
        else:
            frame[col.name] = pd.array(np.round(values, 6), dtype="Float64")
    return frame


def redraw_numbers(frame: pd.DataFrame, rows: np.ndarray, names: Sequence[str], codes: np.ndarray, schema: Schema,
                    rng: np.random.Generator, refinements: dict[str, np.ndarray], numbers: dict[str, int]) -> None:
    for name in names:
        col = schema.column(name)
        assert isinstance(col.domain, NumericDomain)
        frame.loc[rows, name] = decode_numeric(codes[rows, numbers[name]], col.domain, rng, refinements.get(name))


def needed_columns(schema: Schema, rules: Sequence[Rule]) -> list[Column]:
    """The view columns ``rules`` read."""
    names: set[str] = set().union(*(r.columns for r in rules)) if rules else set()
    return [c for c in schema.view_columns if c.name in names]


def count_broken(rows: dict[str, np.ndarray], rules: Sequence[Rule]) -> np.ndarray:
    """How many of ``rules`` each already-encoded row breaks."""
    size = len(next(iter(rows.values()))) if rows else 0
    if not rules:
        return np.zeros(size, dtype=np.int64)
    return np.sum([r.violated(rows) for r in rules], axis=0).astype(np.int64)


def broken_per_row(frame: pd.DataFrame, schema: Schema, rules: Sequence[Rule]) -> np.ndarray:
    """How many of ``rules`` each row breaks."""
    if not rules or len(frame) == 0:
        return np.zeros(len(frame), dtype=np.int64)
    return count_broken(rule_rows(frame, schema, needed_columns(schema, rules)), rules)


def restore_types(frame: pd.DataFrame, schema: Schema) -> pd.DataFrame:
    """Writing rows back with .loc can widen dtypes to object; put the decoded types back."""
    for col in schema.learned_columns:
        if col.name in frame.columns and isinstance(col.domain, NumericDomain) and frame[col.name].dtype == object:
            frame[col.name] = pd.array(pd.to_numeric(frame[col.name], errors="coerce"),
                                       dtype="Int64" if col.domain.integer else "Float64")
    return frame
