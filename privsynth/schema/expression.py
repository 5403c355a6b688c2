"""The expression tree of formulas and rules, and its evaluation (:mod:`privsynth.schema.rule`).

Arithmetic nodes (:class:`Number`, :class:`Column`, :class:`Arithmetic`) compute numbers, on
rows (:meth:`Node.evaluate`) or as intervals over boxes of public bins (:meth:`Node.interval`).
Logical nodes compute three-valued truths, on rows (:meth:`Node.truth`, Kleene logic: a
comparison with a missing number is unknown) or over boxes (:meth:`Node.box_truth`: whether
every value in the box surely makes the condition true, or surely false).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

MISSING = "missing"


# -- values on rows: numbers (NaN = missing) and three-valued truths ----------------------

@dataclass(frozen=True)
class Truth:
    """Row-wise three-valued logic: ``true`` and ``false`` are disjoint; neither = unknown."""

    true: np.ndarray
    false: np.ndarray

    def __invert__(self) -> Truth:
        return Truth(self.false, self.true)

    def __and__(self, other: Truth) -> Truth:
        return Truth(self.true & other.true, self.false | other.false)

    def __or__(self, other: Truth) -> Truth:
        return Truth(self.true | other.true, self.false & other.false)


# column name -> array: numbers as float64 with NaN for missing; categories and booleans as an
# object array of labels (a code, 'other', 'missing'; 'true'/'false'); other inputs are converted
Rows = Mapping[str, Any]


class Node:
    def columns(self) -> frozenset[str]:
        raise NotImplementedError

    def evaluate(self, rows: Rows) -> np.ndarray:  # arithmetic nodes
        raise NotImplementedError

    def truth(self, rows: Rows) -> Truth:  # logical nodes
        raise NotImplementedError

    def interval(self, box: Mapping[str, Any]) -> tuple[float, float] | None:  # arithmetic over bins
        raise NotImplementedError

    def box_truth(self, box: Mapping[str, Any]) -> tuple[bool, bool]:  # (surely true, surely false)
        raise NotImplementedError


@dataclass(frozen=True)
class Number(Node):
    value: float

    def columns(self) -> frozenset[str]:
        return frozenset()

    def evaluate(self, rows: Rows) -> np.ndarray:
        return np.asarray(self.value, dtype=np.float64)

    def interval(self, box: Mapping[str, Any]) -> tuple[float, float] | None:
        return self.value, self.value


@dataclass(frozen=True)
class Column(Node):
    name: str

    def columns(self) -> frozenset[str]:
        return frozenset({self.name})

    def evaluate(self, rows: Rows) -> np.ndarray:
        return _numbers(rows[self.name])

    def interval(self, box: Mapping[str, Any]) -> tuple[float, float] | None:
        found = box[self.name]
        return None if found is None else (float(found[0]), float(found[1]))


_ARITHMETIC: dict[str, Callable[[np.ndarray, np.ndarray], np.ndarray]] = {
    "+": np.add, "-": np.subtract, "*": np.multiply, "/": np.divide, "**": np.power}


@dataclass(frozen=True)
class Binary(Node):
    """An operator between two nodes (arithmetic, comparison, and/or)."""

    op: str
    left: Node
    right: Node

    def columns(self) -> frozenset[str]:
        return self.left.columns() | self.right.columns()


@dataclass(frozen=True)
class Arithmetic(Binary):
    def evaluate(self, rows: Rows) -> np.ndarray:
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            out = _ARITHMETIC[self.op](self.left.evaluate(rows), self.right.evaluate(rows))
        return np.where(np.isfinite(out), out, np.nan)

    def interval(self, box: Mapping[str, Any]) -> tuple[float, float] | None:
        a, b = self.left.interval(box), self.right.interval(box)
        if a is None or b is None:
            return None
        if self.op == "+":
            return a[0] + b[0], a[1] + b[1]
        if self.op == "-":
            return a[0] - b[1], a[1] - b[0]
        if self.op == "/" and b[0] <= 0 <= b[1]:
            return -np.inf, np.inf
        if self.op == "**" and not (b[0] == b[1] and a[0] >= 0):
            return -np.inf, np.inf
        with np.errstate(all="ignore"):
            corners = [float(_ARITHMETIC[self.op](np.asarray(x), np.asarray(y))) for x in a for y in b]
        corners = [c for c in corners if not np.isnan(c)]
        return (min(corners), max(corners)) if corners else (-np.inf, np.inf)


_COMPARE: dict[str, Callable[..., np.ndarray]] = {
    "<": np.less, "<=": np.less_equal, ">": np.greater, ">=": np.greater_equal, "==": np.equal, "!=": np.not_equal}


def _numbers(values: Any) -> np.ndarray:
    if isinstance(values, np.ndarray) and values.dtype.kind in "fiu":
        return values.astype(np.float64, copy=False)
    return pd.to_numeric(pd.Series(values), errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)


@dataclass(frozen=True)
class Compare(Binary):
    def truth(self, rows: Rows) -> Truth:
        a, b = self.left.evaluate(rows), self.right.evaluate(rows)
        known = ~(np.isnan(a) | np.isnan(b))  # broadcast: a number against a column
        with np.errstate(invalid="ignore"):
            holds = _COMPARE[self.op](a, b)
        return Truth(known & holds, known & ~holds)

    def box_truth(self, box: Mapping[str, Any]) -> tuple[bool, bool]:
        a, b = self.left.interval(box), self.right.interval(box)
        if a is None or b is None:  # a missing operand: unknown, never surely anything
            return False, False
        (a0, a1), (b0, b1) = a, b
        if self.op == "<":
            return a1 < b0, a0 >= b1
        if self.op == "<=":
            return a1 <= b0, a0 > b1
        if self.op == ">":
            return a0 > b1, a1 <= b0
        if self.op == ">=":
            return a0 >= b1, a1 < b0
        if self.op == "==":
            return a0 == a1 == b0 == b1, a1 < b0 or b1 < a0
        return a1 < b0 or b1 < a0, a0 == a1 == b0 == b1


def _labels(values: Any) -> np.ndarray:
    """Categories as strings, missing as 'missing' (booleans as 'true'/'false'). An object
    array is taken as labels already (:func:`privsynth.domain.rule_rows` makes them)."""
    if isinstance(values, np.ndarray) and values.dtype == object:
        return values
    series = pd.Series(values)

    def one(v: object) -> str:
        if v is None or v is pd.NA or (isinstance(v, float) and np.isnan(v)):
            return MISSING
        if isinstance(v, bool | np.bool_):
            return "true" if v else "false"
        if isinstance(v, float) and v.is_integer():
            return str(int(v))
        return str(v)
    return np.asarray(series.map(one), dtype=object)


@dataclass(frozen=True)
class Member(Node):
    column: str
    codes: tuple[str, ...]
    negate: bool = False

    def columns(self) -> frozenset[str]:
        return frozenset({self.column})

    def truth(self, rows: Rows) -> Truth:
        inside = np.isin(_labels(rows[self.column]), list(self.codes))
        holds = ~inside if self.negate else inside
        return Truth(holds, ~holds)

    def box_truth(self, box: Mapping[str, Any]) -> tuple[bool, bool]:
        label = box[self.column]
        inside = label in self.codes
        holds = not inside if self.negate else inside
        return holds, not holds


@dataclass(frozen=True)
class IsMissing(Node):
    column: str
    missing: bool

    def columns(self) -> frozenset[str]:
        return frozenset({self.column})

    def truth(self, rows: Rows) -> Truth:
        values = rows[self.column]
        if isinstance(values, np.ndarray) and values.dtype.kind == "f":
            absent = np.isnan(values)
        else:
            absent = _labels(values) == MISSING
        holds = absent if self.missing else ~absent
        return Truth(holds, ~holds)

    def box_truth(self, box: Mapping[str, Any]) -> tuple[bool, bool]:
        absent = box[self.column] is None or box[self.column] == MISSING
        holds = absent if self.missing else not absent
        return holds, not holds


@dataclass(frozen=True)
class Flag(Node):
    column: str

    def columns(self) -> frozenset[str]:
        return frozenset({self.column})

    def truth(self, rows: Rows) -> Truth:
        labels = _labels(rows[self.column])
        return Truth(labels == "true", labels == "false")

    def box_truth(self, box: Mapping[str, Any]) -> tuple[bool, bool]:
        return box[self.column] == "true", box[self.column] == "false"


@dataclass(frozen=True)
class Not(Node):
    inner: Node

    def columns(self) -> frozenset[str]:
        return self.inner.columns()

    def truth(self, rows: Rows) -> Truth:
        return ~self.inner.truth(rows)

    def box_truth(self, box: Mapping[str, Any]) -> tuple[bool, bool]:
        sure_true, sure_false = self.inner.box_truth(box)
        return sure_false, sure_true


@dataclass(frozen=True)
class Logic(Binary):
    def truth(self, rows: Rows) -> Truth:
        a, b = self.left.truth(rows), self.right.truth(rows)
        return (a & b) if self.op == "and" else (a | b)

    def box_truth(self, box: Mapping[str, Any]) -> tuple[bool, bool]:
        (at, af), (bt, bf) = self.left.box_truth(box), self.right.box_truth(box)
        if self.op == "and":
            return at and bt, af or bf
        return at or bt, af and bf


@dataclass(frozen=True)
class Implies(Node):
    premise: Node
    conclusion: Node

    def columns(self) -> frozenset[str]:
        return self.premise.columns() | self.conclusion.columns()

    def truth(self, rows: Rows) -> Truth:
        return ~self.premise.truth(rows) | self.conclusion.truth(rows)

    def box_truth(self, box: Mapping[str, Any]) -> tuple[bool, bool]:
        (pt, pf), (ct, cf) = self.premise.box_truth(box), self.conclusion.box_truth(box)
        return pf or ct, pt and cf


def substitute(node: Node, formulas: Mapping[str, Node]) -> Node:
    """``node`` with each column named in ``formulas`` replaced by its formula (a rule on a
    derived column becomes a rule on the columns it is computed from)."""
    if isinstance(node, Column):
        return formulas.get(node.name, node)
    if not isinstance(node, Node) or not any(isinstance(v, Node) for v in vars(node).values()):
        return node
    changes = {k: substitute(v, formulas) for k, v in vars(node).items() if isinstance(v, Node)}
    return dataclasses.replace(node, **changes)  # type: ignore[type-var]
