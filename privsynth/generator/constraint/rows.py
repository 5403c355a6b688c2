"""Rows that satisfy every rule: the hard rules, then the panel (the steps in order)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import pandas as pd

from privsynth.generator.constraint.common import Redraw, derive, enforced, formulas_of
from privsynth.generator.constraint.hard import enforce_hard
from privsynth.generator.constraint.steer import renew, steer
from privsynth.schema.model import NumericDomain, Schema
from privsynth.schema.rule import substitute


def satisfy(frame: pd.DataFrame, codes: np.ndarray, schema: Schema, rng: np.random.Generator,
            refinements: dict[str, np.ndarray], redraw: Redraw,
            fixed: Sequence[str] = (), one_way: Callable[[int], np.ndarray] | None = None,
            pinned: Sequence[str] = ()) -> pd.DataFrame:
    """Rows of ``frame`` (decoded from ``codes``) made to satisfy every enforced rule.

    First the numbers of a breaking row are drawn again inside their public bins (the same
    within-bin detail as decoding); rows that still break a rule are drawn again by
    ``redraw`` (:data:`Redraw`): first ``HELD_ROUNDS`` times given who the patient is (the
    quasi-identifiers' codes, unless real values are kept), so the model's counts of ages and
    sexes stand, then whole. Rejection keeps the distribution the model's, conditioned on the
    rules. Raises when rows still break a rule after all rounds
    (the rules leave the model almost no room: they contradict the data or each other).
    Before that, with ``fixed`` (real) columns a row's model conditional may leave no room
    (a real age of 15 in an age bin where the model marries most): each remaining row then
    gets, column by column, a value drawn from the model's 1-way marginal (``one_way``)
    among those that satisfy every rule.

    ``pinned`` columns (a condition of ``sample --where``) keep their public code -- their
    bin -- but, unlike ``fixed`` ones, every rule still holds: their numbers are drawn again
    inside the bin, whole rows are drawn again by ``redraw`` under the same condition, and the
    last-resort repair never changes them.

    Then the plausibility panel steers values inside their bins: a row that breaks a panel
    rule gets its numbers drawn again inside the same bins, kept when the redraw satisfies
    the panel and every hard rule (never a new bin, never a rejected row: the model's
    counts are untouched)."""
    hard = enforced(schema, fixed)
    frame = derive(frame.reset_index(drop=True), schema)
    # a fresh row keeps who the patient is, as far as the rules read it (the age, the sex, the
    # marital status: the model's counts of them stand) unless real values are kept; rejecting
    # whole rows would otherwise trade the rows a rule catches most (children, under growth
    # rules) for the others. Quasi-identifiers no rule reads are not held (fewer distinct
    # evidences to condition the model on)
    formulas = formulas_of(schema)
    read = set().union(*(substitute(r.node, formulas).columns() for r in (*schema.rules, *schema.plausibility)))
    who = () if fixed else tuple(j for j, c in enumerate(schema.learned_columns)
                                 if c.role == "quasi_identifier" and c.name in read)
    numbers = {c.name: j for j, c in enumerate(schema.learned_columns)
               if isinstance(c.domain, NumericDomain) and c.name not in set(fixed)}
    if hard:
        frame = enforce_hard(frame, codes, schema, rng, refinements, redraw, hard, numbers, (*fixed, *pinned), one_way,
                      pinned, who)
    soft = tuple(r for r in schema.plausibility if not r.columns <= set(fixed))
    if soft:
        frame = steer(frame, codes, schema, rng, refinements, hard, soft, numbers)
        if not fixed:
            frame = renew(frame, codes, schema, rng, refinements, redraw, hard, soft, numbers, who)
    return frame
