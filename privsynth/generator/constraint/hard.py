"""Every hard rule in every row: numbers drawn again inside their bins, rows drawn again
(given who the patient is, then whole), conditioned numbers mended inside their bins, and a
last-resort greedy repair."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pandas as pd

from privsynth.domain import decode_one, rule_rows
from privsynth.errors import InputError
from privsynth.generator.constraint.common import (
    Redraw,
    broken_per_row,
    count_broken,
    derive,
    formulas_of,
    needed_columns,
    redraw_numbers,
    restore_types,
    violations,
)
from privsynth.schema.model import NumericDomain, Schema
from privsynth.schema.rule import Rule, substitute

VALUE_ROUNDS = 12  # redraws of numbers inside their bins before whole rows are drawn again
ROW_ROUNDS = 60
HELD_ROUNDS = 30  # whole-row redraws that keep who the patient is (the quasi-identifiers) before free ones
IDLE_ROUNDS = 10  # partial synthesis: whole-row rounds that mend no row before the last-resort repair
PAIR_TRIES = 32  # joint draws per pair of columns in the last-resort repair


def enforce_hard(frame: pd.DataFrame, codes: np.ndarray, schema: Schema, rng: np.random.Generator,
          refinements: dict[str, np.ndarray], redraw: Redraw,
          rules: Sequence[Rule], numbers: dict[str, int], fixed: Sequence[str],
          one_way: Callable[[int], np.ndarray] | None, pinned: Sequence[str] = (), who: Sequence[int] = ()
          ) -> pd.DataFrame:
    formulas = formulas_of(schema)
    involved = sorted({name for r in rules for name in substitute(r.node, formulas).columns() if name in numbers})
    bad = np.flatnonzero(violations(frame, schema, rules))
    idle = rounds = 0  # whole-row rounds in a row that mended nothing; rounds run
    for round_ in range(VALUE_ROUNDS + ROW_ROUNDS):
        if len(bad) == 0:
            return frame
        if idle >= IDLE_ROUNDS and set(fixed) - set(pinned):
            break  # what is left, fresh rows do not mend (real kept values leave no room): the repair's
        rounds = round_ + 1
        if round_ < VALUE_ROUNDS and involved:
            # a pinned (conditioned) number is drawn uniformly in its bin: its within-bin detail
            # may give the part of the bin the rules allow no weight
            detail = {k: v for k, v in refinements.items() if k not in set(pinned)} if pinned else refinements
            redraw_numbers(frame, bad, involved, codes, schema, rng, detail, numbers)
        else:
            held = who if round_ < VALUE_ROUNDS + HELD_ROUNDS else ()
            new_rows, new_codes = redraw(bad, {j: codes[bad, j] for j in held})
            for name in new_rows.columns:
                frame.loc[bad, name] = new_rows[name].array
            codes[bad] = new_codes
        frame = derive(restore_types(frame, schema), schema)
        sub = violations(frame.iloc[bad].reset_index(drop=True), schema, rules)
        idle = idle + 1 if round_ >= VALUE_ROUNDS and sub.all() else 0
        bad = bad[sub]
    if len(bad) == 0:  # the last round may have mended them
        return frame
    pinned_numbers = [n for n in involved if n in set(pinned)]
    if pinned_numbers:
        bad = within_pinned_bins(frame, codes, bad, schema, rng, rules, pinned_numbers, numbers)
    if len(bad) and one_way is not None:
        bad = repair(frame, codes, bad, schema, rng, refinements, rules, fixed, one_way)
        # a conditioned number and a free one may have to move together (an age of 18-19 in
        # [15, 20) with COPD also needs an adult's weight): fresh starts inside the pinned
        # bins, each followed by the repair of the free columns
        for _ in range(PINNED_RESTARTS if pinned_numbers else 0):
            if len(bad) == 0:
                break
            redraw_numbers(frame, bad, pinned_numbers, codes, schema, rng, {}, numbers)
            derive(restore_types(frame, schema), schema)
            bad = repair(frame, codes, bad, schema, rng, refinements, rules, fixed, one_way)
    if len(bad) == 0:
        return frame
    rows = rule_rows(frame.iloc[bad].reset_index(drop=True), schema)
    broken = sorted({r.text for r in rules if r.violated(rows).any()})
    raise InputError(
        f"{len(bad)} synthetic row(s) still break a rule of schema '{schema.name}' after {VALUE_ROUNDS} redraws of "
        f"their numbers and {max(rounds - VALUE_ROUNDS, 0)} of whole rows; the rules leave the model almost no "
        f"room (do they contradict each other, or the data?): {'; '.join(broken)[:400]}")


PINNED_TRIES = 200  # uniform draws of conditioned numbers inside their bins, until the rules on them alone hold
PINNED_RESTARTS = 40  # ... each followed by the free numbers, rule by rule (and, late, by a repair of the rest)
FREE_TRIES = 48  # draws inside their bins of the free numbers of one rule a row breaks


def within_pinned_bins(frame: pd.DataFrame, codes: np.ndarray, bad: np.ndarray, schema: Schema,
                        rng: np.random.Generator, rules: Sequence[Rule], names: Sequence[str],
                        numbers: dict[str, int]) -> np.ndarray:
    """Rows whose conditioned (pinned) numbers sit where a rule fails -- the within-bin detail
    may give the allowed part of the bin no weight (ages 18-19 of [15, 20) with COPD) --
    get those numbers drawn uniformly inside the same bins until the rules on them alone
    hold; then, rule by rule, the free numbers a broken rule reads (the COPD onset, which
    must be 18 or 19 of its [18, 30) bin for an age of 18 or 19; any other onset in that bin)
    are drawn inside their own bins, kept when the rule then holds and no other breaks. One
    row's draws succeed alone, not all at once (a joint uniform draw of every onset of a
    young patient with several conditions almost never lands). The condition (the bin) is
    unchanged. Returns the rows still broken."""
    formulas = formulas_of(schema)
    read = [frozenset(n for n in substitute(r.node, formulas).columns() if n in numbers) for r in rules]
    pinned = set(names)
    own = [r for r, cols in zip(rules, read) if cols & pinned and cols <= pinned]
    free = [(r, sorted(cols - pinned)) for r, cols in zip(rules, read) if cols & pinned and cols - pinned]
    todo = bad
    for _ in range(PINNED_RESTARTS):
        if len(todo) == 0:
            break
        left = todo
        for _ in range(PINNED_TRIES):
            redraw_numbers(frame, left, names, codes, schema, rng, {}, numbers)
            rows = derive(restore_types(frame.iloc[left].reset_index(drop=True), schema), schema)
            left = left[violations(rows, schema, own)]
            if len(left) == 0:
                break
        for rule, moved in free:
            _mend_one(frame, todo, rule, moved, codes, schema, rng, rules, numbers)
        derive(restore_types(frame, schema), schema)
        todo = todo[violations(frame.iloc[todo].reset_index(drop=True), schema, rules)]
    derive(restore_types(frame, schema), schema)  # in place: the rows' types and derived columns
    rows = frame.iloc[bad].reset_index(drop=True)
    return bad[violations(rows, schema, rules)]


def _mend_one(frame: pd.DataFrame, rows: np.ndarray, rule: Rule, names: Sequence[str], codes: np.ndarray,
              schema: Schema, rng: np.random.Generator, rules: Sequence[Rule], numbers: dict[str, int]) -> None:
    """The ``names`` numbers of the ``rows`` that break ``rule`` drawn uniformly inside their
    bins, up to ``FREE_TRIES`` times, kept (in ``frame``) where the rule then holds and the
    row breaks no more of ``rules`` than before."""
    now = derive(restore_types(frame.iloc[rows].reset_index(drop=True), schema), schema)
    broken = rule_rows(now, schema, needed_columns(schema, [rule]))
    bad = rows[rule.violated(broken)]
    if len(bad) == 0:
        return
    was = broken_per_row(frame.iloc[bad].reset_index(drop=True), schema, rules)
    for _ in range(FREE_TRIES):
        trial = frame.iloc[bad].reset_index(drop=True)
        redraw_numbers(trial, np.arange(len(bad)), names, codes[bad], schema, rng, {}, numbers)
        trial = derive(restore_types(trial, schema), schema)
        after = count_broken(rule_rows(trial, schema, needed_columns(schema, rules)), rules)
        ok = ~rule.violated(rule_rows(trial, schema, needed_columns(schema, [rule]))) & (after <= was)
        if ok.any():
            keep, kept = bad[ok], np.flatnonzero(ok)
            for name in trial.columns:
                frame.loc[keep, name] = trial.loc[kept, name].array
        bad, was = bad[~ok], was[~ok]
        if len(bad) == 0:
            break


def repair(frame: pd.DataFrame, codes: np.ndarray, bad: np.ndarray, schema: Schema, rng: np.random.Generator,
            refinements: dict[str, np.ndarray], rules: Sequence[Rule], fixed: Sequence[str],
            one_way: Callable[[int], np.ndarray]) -> np.ndarray:
    """Last resort, row by row (a greedy local search): replace the value of a free column
    of a broken rule by a draw from the model's 1-way marginal whenever that breaks fewer
    rules; when no single change helps, two at once; when neither does, a single value of
    the public domain the model gives no weight. Until none is broken or nothing helps.
    Returns the rows still broken."""
    index = {c.name: j for j, c in enumerate(schema.learned_columns)}
    formulas = formulas_of(schema)
    reads = {r.text: substitute(r.node, formulas).columns() for r in rules}  # derived: what they are made of

    needed: set[str] = set().union(*(r.columns for r in rules)) if rules else set()
    reading = [c for c in schema.view_columns if c.name in needed]

    derived = {c.name: c.derived.columns for c in schema.derived_columns if c.derived is not None}
    known: dict[str, Any] = {}  # the current row as rules read it, and the rules it breaks

    def broken(one: pd.DataFrame, changed: Sequence[str] | None = None) -> list[Rule]:
        """The rules ``one`` breaks; ``changed``: the only columns in which it differs from the
        row last settled (``settle``) -- then only those columns are read again, and only
        the rules that read them are checked again."""
        if changed is None or not known:
            rows = rule_rows(one, schema, reading)
            return [r for r in rules if r.violated(rows).any()]
        moved = set(changed) | {d for d, read in derived.items() if read & set(changed)}
        rows = {**known["rows"], **rule_rows(one, schema, [c for c in reading if c.name in moved])}
        touched = [r for r in rules if r.columns & moved]
        return [r for r in known["now"] if not r.columns & moved] + [r for r in touched if r.violated(rows).any()]

    def settle(one: pd.DataFrame) -> list[Rule]:
        known["rows"] = rule_rows(one, schema, reading)
        known["now"] = [r for r in rules if r.violated(known["rows"]).any()]
        return known["now"]

    left = []
    for row in bad.tolist():
        one = derive(frame.iloc[[row]].reset_index(drop=True), schema)
        now = settle(one)
        for _ in range(2 * len(index)):
            if not now:
                break
            free = dict.fromkeys(n for r in now for n in sorted(reads[r.text]) if n in index and n not in set(fixed))
            moved = _single_move(one, now, list(free), schema, index, rng, refinements, one_way, broken, False)
            if moved is None:
                # a fix may need two changes at once (a condition and its onset)
                near = dict.fromkeys(n for r in rules if reads[r.text] & set(free) for n in sorted(reads[r.text])
                                     if n in index and n not in set(fixed))
                moved = _pair_move(one, now, list(near), schema, index, rng, refinements, one_way, broken)
            if moved is None:
                # the last resort on tiny inputs, where a noisy 1-way marginal gives every
                # helpful value probability 0: the rest of the public domain
                moved = _single_move(one, now, list(free), schema, index, rng, refinements, one_way, broken, True)
            if moved is None:
                break
            one, now, changed = moved
            now = settle(one)  # the same rules, read afresh from the row now kept
            for name, code in changed.items():
                codes[row, index[name]] = code
        for name in one.columns:
            frame.loc[row, name] = one[name].iloc[0]
        if now:
            left.append(row)
    return np.asarray(left, dtype=np.int64)


def _weights(marginal: np.ndarray) -> np.ndarray:
    """A 1-way marginal as draw probabilities: a value the model gives nothing is never drawn
    (uniform if it gives nothing to any)."""
    w = np.clip(np.asarray(marginal, dtype=float), 0, None)
    return w / w.sum() if w.sum() > 0 else np.full(len(w), 1 / len(w))


def _single_move(one: pd.DataFrame, now: list[Rule], names: list[str], schema: Schema, index: dict[str, int],
                 rng: np.random.Generator, refinements: dict[str, np.ndarray], one_way: Callable[[int], np.ndarray],
                 broken: Callable[..., list[Rule]],
                 outside: bool) -> tuple[pd.DataFrame, list[Rule], dict[str, int]] | None:
    """The first change of one column that breaks fewer rules: drawn among the values the
    model's 1-way marginal gives weight (``outside``: among those it gives none)."""
    for name in names:
        col, j = schema.column(name), index[name]
        weights = _weights(one_way(j))
        if outside:
            order = rng.permutation(np.flatnonzero(weights == 0))
        else:
            order = rng.choice(len(weights), size=int((weights > 0).sum()), replace=False, p=weights)
        tries = 4 if isinstance(col.domain, NumericDomain) else 1
        for code in order:
            for _ in range(tries):
                trial = one.copy()
                trial[name] = decode_one(col, int(code), rng, refinements.get(name))
                trial = derive(trial, schema)
                after = broken(trial, (name,))
                if len(after) < len(now):
                    return trial, after, {name: int(code)}
    return None


def _pair_move(one: pd.DataFrame, now: list[Rule], names: list[str], schema: Schema, index: dict[str, int],
               rng: np.random.Generator, refinements: dict[str, np.ndarray], one_way: Callable[[int], np.ndarray],
               broken: Callable[..., list[Rule]]) -> tuple[pd.DataFrame, list[Rule], dict[str, int]] | None:
    """Joint draws of two columns from their 1-way marginals, first one that breaks fewer rules."""
    weights = {n: _weights(one_way(index[n])) for n in names}
    for a, pos in enumerate(names):
        for other in names[a + 1:]:
            for _ in range(PAIR_TRIES):
                trial, changed = one.copy(), {}
                for name in (pos, other):
                    code = int(rng.choice(len(weights[name]), p=weights[name]))
                    trial[name] = decode_one(schema.column(name), code, rng, refinements.get(name))
                    changed[name] = code
                trial = derive(trial, schema)
                after = broken(trial, tuple(changed))
                if len(after) < len(now):
                    return trial, after, changed
    return None
