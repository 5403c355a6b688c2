"""The panel after decoding: numbers steered inside their bins, and rows steering cannot mend
drawn again given who the patient is."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from privsynth.domain import rule_rows
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
from privsynth.schema.model import Schema
from privsynth.schema.rule import Rule, substitute

STEER_ROUNDS = 48  # redraws inside their bins of the numbers of a row that breaks a panel rule ...
STEER_IDLE = 12  # ... stopped after this many in a row that mend none (the bins leave the rule no room)
SOFT_RENEWALS = 6  # redraws given who the patient is of a row that still breaks one after that ...
SOFT_FREE = 2  # ... and then whole-row redraws (an age its events pin where the bins leave no room)


def renew(frame: pd.DataFrame, codes: np.ndarray, schema: Schema, rng: np.random.Generator,
           refinements: dict[str, np.ndarray], redraw: Redraw,
           hard: Sequence[Rule], soft: Sequence[Rule], numbers: dict[str, int], who: Sequence[int]) -> pd.DataFrame:
    """Rows that still break a panel rule after steering -- a number its bin cannot mend, an
    age its events pin inside a bin that straddles the rule (a 9-year-old of [5, 10) 105 cm
    tall, with visits nine years ago) -- are drawn again by ``redraw`` (the tilted model,
    under the same condition, given ``who`` the patient is), at most ``SOFT_RENEWALS`` times,
    then whole ``SOFT_FREE`` times for the few rows left; a fresh row, steered
    in turn, replaces the old one when it breaks no hard rule and fewer panel rules."""
    for round_ in range(SOFT_RENEWALS + (SOFT_FREE if who else 0)):
        count = broken_per_row(frame, schema, soft)
        bad = np.flatnonzero(count > 0)
        if len(bad) == 0:
            break
        held = who if round_ < SOFT_RENEWALS else ()
        fresh, fresh_codes = redraw(bad, {j: codes[bad, j] for j in held})
        fresh = derive(restore_types(fresh.reset_index(drop=True), schema), schema)
        fresh = steer(fresh, fresh_codes, schema, rng, refinements, hard, soft, numbers)
        better = ~violations(fresh, schema, hard) & (broken_per_row(fresh, schema, soft) < count[bad])
        if better.any():
            keep, kept = bad[better], np.flatnonzero(better)
            for name in fresh.columns:
                frame.loc[keep, name] = fresh.loc[kept, name].array
            codes[keep] = fresh_codes[kept]
            frame = restore_types(frame, schema)
    return frame


def steer(frame: pd.DataFrame, codes: np.ndarray, schema: Schema, rng: np.random.Generator,
           refinements: dict[str, np.ndarray], hard: Sequence[Rule], soft: Sequence[Rule],
           numbers: dict[str, int]) -> pd.DataFrame:
    """Panel rule by panel rule, the numbers of a row that breaks it are drawn again inside
    their bins; a draw is kept when the rule then holds, no other panel rule breaks that held
    and every hard rule holds (a row the panel cannot fully mend is still mended where it can)."""
    formulas = formulas_of(schema)
    inputs = {c.name: c.derived.columns for c in schema.derived_columns if c.derived is not None}
    needed = needed_columns(schema, [*soft, *hard])
    rows = {k: np.array(v) for k, v in rule_rows(frame, schema, needed).items()}  # kept in step with the frame
    for rule in soft:
        names = sorted(n for n in substitute(rule.node, formulas).columns() if n in numbers)
        if not names:
            continue
        touched = set(names) | {d for d, read in inputs.items() if read & set(names)}
        # only rules that read what moves can change: the others are left as they were
        others = [r for r in soft if r is not rule and r.columns & touched]
        watched = [r for r in hard if r.columns & touched]
        width = sorted(touched | set().union(*(inputs[d] for d in touched if d in inputs)))
        at = [frame.columns.get_loc(n) for n in width]
        moved = [c for c in needed if c.name in touched]
        bad = np.flatnonzero(rule.violated(rows))
        # what the other panel rules say of a row that still breaks this one: its cells are as they were
        was = count_broken({name: values[bad] for name, values in rows.items()}, others)
        idle = 0
        for _ in range(STEER_ROUNDS):
            if len(bad) == 0 or idle >= STEER_IDLE:
                break
            trial = frame.iloc[bad, at].reset_index(drop=True)  # the columns that move and what they make
            redraw_numbers(trial, np.arange(len(bad)), names, codes[bad], schema, rng, refinements, numbers)
            trial = derive(restore_types(trial, schema), schema)
            tried = {**{name: values[bad] for name, values in rows.items()},
                     **rule_rows(trial, schema, moved)}  # only what moved is encoded again
            ok = (~rule.violated(tried) & ~count_broken(tried, watched).astype(bool)
                  & (count_broken(tried, others) <= was))
            was = was[~ok]
            idle = 0 if ok.any() else idle + 1
            if ok.any():
                keep, kept = bad[ok], np.flatnonzero(ok)
                for name in sorted(touched):
                    frame.loc[keep, name] = trial.loc[kept, name].array
                    if name in rows:
                        rows[name][keep] = tried[name][kept]
            bad = bad[~ok]
    return restore_types(frame, schema)
