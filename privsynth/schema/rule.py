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

The expression tree and both evaluations live in :mod:`privsynth.schema.expression`, the
parser in :mod:`privsynth.schema.grammar`; this module holds what a schema keeps (a
:class:`Formula`, a :class:`Rule`) and re-exports the rest.

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

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from privsynth.schema.expression import (
    MISSING,
    Arithmetic,
    Binary,
    Column,
    Compare,
    Flag,
    Implies,
    IsMissing,
    Logic,
    Member,
    Node,
    Not,
    Number,
    Rows,
    Truth,
    substitute,
)
from privsynth.schema.grammar import COMPARISONS, KEYWORDS, Parser, RuleSyntaxError

__all__ = ["COMPARISONS", "KEYWORDS", "MISSING", "Arithmetic", "Binary", "Column", "Compare", "Flag", "Formula",
           "Implies", "IsMissing", "Logic", "Member", "Node", "Not", "Number", "Rows", "Rule",
           "RuleSyntaxError", "Truth", "parse_formula", "parse_rule", "substitute"]


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


def parse_formula(text: str) -> Formula:
    parser = Parser(text)
    node = parser.sum()
    parser.done()
    return Formula(text, node)


def parse_rule(text: str, kind: str = "declared", location: str = "") -> Rule:
    parser = Parser(text)
    node = parser.rule()
    parser.done()
    if isinstance(node, Arithmetic | Number | Column):
        raise RuleSyntaxError("a rule must be a condition (e.g. 'a <= b'), not a number")
    return Rule(text, node, kind, location)
