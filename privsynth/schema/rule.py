"""Public clinical structure: formulas for derived columns and rules between columns.

A **formula** computes a derived column from others after sampling (never learned):
``body_weight / (body_height / 100) ** 2``. It uses columns, numbers, ``+ - * / **`` and
parentheses.

A **rule** is a condition, or an implication ``condition -> condition``. Conditions combine
atoms with ``and``, ``or``, ``not`` and parentheses. Atoms:

- ``a <= b`` (also ``<``, ``>``, ``>=``, ``==``, ``!=``) between columns or numbers;
- ``col in [A, B]`` and ``col not in [A, B]`` for categorical columns (``missing`` and
  ``other`` may be listed);
- ``col is missing``, ``col is present``;
- a boolean column on its own (true).

Values are three-valued: a comparison with a missing number is *unknown*, and a rule is
violated only where it is surely false (Kleene logic). So ``diabetes_onset_age <= age``
holds vacuously when either is missing.

The same rule is evaluated two ways: on rows (:meth:`Rule.violated`, vectorised) and on
*boxes* of public bins (:meth:`Rule.surely_violated`): a cell of the model whose every
value violates the rule is a structural zero, known from the bin edges alone.

>>> r = parse_rule("age < 16 -> marital in [S, missing]")
>>> sorted(r.columns)
['age', 'marital']
>>> import pandas as pd
>>> rows = pd.DataFrame({"age": [10, 10, 30, None], "marital": ["S", "M", "M", "M"]})
>>> r.violated(rows).tolist()
[False, True, False, False]
>>> parse_formula("w / (h / 100) ** 2").evaluate({"w": np.array([80.0]), "h": np.array([200.0])}).tolist()
[20.0]
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

MISSING = "missing"

_TOKEN = re.compile(r"""\s*(?:(?P<number>\d+(?:\.\d*)?(?:[eE][-+]?\d+)?|\.\d+(?:[eE][-+]?\d+)?)
                         |(?P<string>'[^']*'|"[^"]*")
                         |(?P<op>->|<=|>=|==|!=|\*\*|[-+*/()<>\[\],])
                         |(?P<name>[A-Za-z_][A-Za-z0-9_.\-]*))""", re.VERBOSE)


class RuleSyntaxError(ValueError):
    """A formula or rule that does not parse; the message says where and what was expected."""


def _tokens(text: str) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    pos = 0
    text = text.rstrip()
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if m is None or m.end() == pos:
            raise RuleSyntaxError(f"unexpected character {text[pos]!r} at position {pos + 1}")
        kind = m.lastgroup or ""
        value = m.group(kind)
        if kind == "string":
            value = value[1:-1]
        out.append((kind, value))
        pos = m.end()
    return out


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens = _tokens(text)
        self.i = 0

    def peek(self, offset: int = 0) -> tuple[str, str] | None:
        j = self.i + offset
        return self.tokens[j] if j < len(self.tokens) else None

    def take(self) -> tuple[str, str]:
        token = self.peek()
        if token is None:
            raise RuleSyntaxError("the text ends too early")
        self.i += 1
        return token

    def accept(self, value: str) -> bool:
        token = self.peek()
        if token is not None and token[1] == value and token[0] in ("op", "name"):
            self.i += 1
            return True
        return False

    def expect(self, value: str) -> None:
        if not self.accept(value):
            found = self.peek()
            raise RuleSyntaxError(f"expected '{value}'" + (f", found '{found[1]}'" if found else " at the end"))

    def done(self) -> None:
        if self.peek() is not None:
            raise RuleSyntaxError(f"unexpected '{self.peek()[1]}' after a complete expression")  # type: ignore[index]

    # -- formulas (arithmetic) -----------------------------------------------------------
    def sum(self) -> Node:
        node = self.product()
        while (tok := self.peek()) is not None and tok[1] in ("+", "-") and tok[0] == "op":
            self.take()
            node = Arithmetic(tok[1], node, self.product())
        return node

    def product(self) -> Node:
        node = self.power()
        while (tok := self.peek()) is not None and tok[1] in ("*", "/") and tok[0] == "op":
            self.take()
            node = Arithmetic(tok[1], node, self.power())
        return node

    def power(self) -> Node:
        node = self.unary()
        if self.accept("**"):
            return Arithmetic("**", node, self.power())
        return node

    def unary(self) -> Node:
        if self.accept("-"):
            return Arithmetic("-", Number(0.0), self.unary())
        return self.value()

    def value(self) -> Node:
        kind, text = self.take()
        if kind == "number":
            return Number(float(text))
        if kind == "name" and text not in KEYWORDS:
            return Column(text)
        if text == "(":
            node = self.sum()
            self.expect(")")
            return node
        raise RuleSyntaxError(f"expected a column or a number, found '{text}'")

    # -- rules (logic) -------------------------------------------------------------------
    def rule(self) -> Node:
        left = self.disjunction()
        if self.accept("->"):
            return Implies(left, self.disjunction())
        return left

    def disjunction(self) -> Node:
        node = self.conjunction()
        while self.accept("or"):
            node = Logic("or", node, self.conjunction())
        return node

    def conjunction(self) -> Node:
        node = self.negation()
        while self.accept("and"):
            node = Logic("and", node, self.negation())
        return node

    def negation(self) -> Node:
        if self.accept("not"):
            return Not(self.negation())
        if self.peek() is not None and self.peek() == ("op", "("):  # a parenthesised condition
            start = self.i
            self.take()
            try:
                node = self.disjunction()
                self.expect(")")
                return node
            except RuleSyntaxError:
                self.i = start  # maybe arithmetic: (a + b) <= c
        return self.atom()

    def atom(self) -> Node:
        kind, name = self.peek() or ("", "")
        nxt = self.peek(1)
        if kind == "name" and name not in KEYWORDS and (nxt is None or nxt[1] in ("and", "or", "->", ")")):
            self.take()
            return Flag(name)
        if kind == "name" and name not in KEYWORDS and nxt is not None and nxt[1] in ("in", "not", "is"):
            self.take()
            if self.accept("is"):
                word = self.take()[1]
                if word not in ("missing", "present"):
                    raise RuleSyntaxError(f"expected 'missing' or 'present' after 'is', found '{word}'")
                return IsMissing(name, word == "missing")
            negate = self.accept("not")
            self.expect("in")
            return Member(name, self.codes(), negate)
        left = self.sum()
        token = self.peek()
        if token is None or token[1] not in COMPARISONS:
            raise RuleSyntaxError("expected a comparison (<, <=, >, >=, ==, !=), 'in', 'is' or a boolean column")
        self.take()
        return Compare(token[1], left, self.sum())

    def codes(self) -> tuple[str, ...]:
        self.expect("[")
        out: list[str] = []
        while True:
            kind, text = self.take()
            if kind not in ("name", "number", "string"):
                raise RuleSyntaxError(f"expected a code in the list, found '{text}'")
            out.append(text)
            if self.accept("]"):
                return tuple(out)
            self.expect(",")


KEYWORDS = frozenset({"and", "or", "not", "in", "is"})
COMPARISONS = ("<", "<=", ">", ">=", "==", "!=")


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


_COMPARE = {"<": np.less, "<=": np.less_equal, ">": np.greater, ">=": np.greater_equal, "==": np.equal,
            "!=": np.not_equal}


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


# -- what schemas hold -------------------------------------------------------------------

@dataclass(frozen=True)
class Formula:
    """A derived column's formula over other columns."""

    text: str
    node: Node

    @property
    def columns(self) -> frozenset[str]:
        return self.node.columns()

    def evaluate(self, rows: Rows) -> np.ndarray:
        """Row-wise values (NaN where an input is missing or the result is not finite)."""
        return np.asarray(self.node.evaluate(rows), dtype=np.float64)


@dataclass(frozen=True)
class Rule:
    """A rule between columns: where it came from (``declared``, ``implied`` by the schema's
    semantics, or a ``plausibility`` rule that is only audited) and its text."""

    text: str
    node: Node
    kind: str = "declared"
    location: str = ""

    @property
    def columns(self) -> frozenset[str]:
        return self.node.columns()

    def violated(self, rows: Rows) -> np.ndarray:
        """True where the rule is surely false for the row."""
        return np.asarray(self.node.truth(rows).false, dtype=bool)

    def surely_violated(self, box: Mapping[str, Any]) -> bool:
        """Whether EVERY row inside the box violates the rule. ``box`` maps each of the
        rule's columns to a category label ('missing', 'true', a code), to a closed interval
        ``(low, high)`` for a number, or to None for a missing number."""
        return self.node.box_truth(box)[1]


def substitute(node: Node, formulas: Mapping[str, Node]) -> Node:
    """``node`` with each column named in ``formulas`` replaced by its formula (a rule on a
    derived column becomes a rule on the columns it is computed from)."""
    if isinstance(node, Column):
        return formulas.get(node.name, node)
    if not isinstance(node, Node) or not any(isinstance(v, Node) for v in vars(node).values()):
        return node
    import dataclasses

    changes = {k: substitute(v, formulas) for k, v in vars(node).items() if isinstance(v, Node)}
    return dataclasses.replace(node, **changes)  # type: ignore[type-var]


def parse_formula(text: str) -> Formula:
    parser = _Parser(text)
    node = parser.sum()
    parser.done()
    return Formula(text, node)


def parse_rule(text: str, kind: str = "declared", location: str = "") -> Rule:
    parser = _Parser(text)
    node = parser.rule()
    parser.done()
    if isinstance(node, Arithmetic | Number | Column):
        raise RuleSyntaxError("a rule must be a condition (e.g. 'a <= b'), not a number")
    return Rule(text, node, kind, location)
