"""Public clinical structure in the model and in every synthetic row.

Two steps, both post-processing of public facts (bin edges and the schema's rules), so they
cost no privacy:

1. **Structural zeros.** A cell of the model (a combination of public codes) in which
   every value violates a rule -- an onset-age bin above the whole age bin, a married
   patient in an age bin entirely under 16 -- gets probability exactly 0: the rule's columns
   become a clique of the model carrying a log-potential of -inf on those cells, which
   estimation never moves (:func:`zero_masks`, :func:`compress_masks`).
2. **Rows that satisfy every rule.** After decoding, rows that still break a rule (values
   drawn inside bins that only partly overlap, a derived number outside its bounds) get
   their numbers redrawn inside their bins, then, if that is not enough, the whole row is
   drawn again from the model: the output is the model conditioned on the rules, and every
   hard rule holds in every row (:func:`satisfy`). Derived columns are computed here too,
   so every writer reads the same rows.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pandas as pd

from privsynth.domain import code_box, decode_numeric, decode_one, rule_rows
from privsynth.errors import InputError
from privsynth.generator.compress import Compression
from privsynth.generator.factor import Clique
from privsynth.schema.model import Column, NumericDomain, Schema
from privsynth.schema.rule import Flag, Implies, IsMissing, Node, Not, Rule, substitute

MAX_MASK_CELLS = 2_000_000  # a rule over more cells than this is enforced on rows only
VALUE_ROUNDS = 12  # redraws of numbers inside their bins before whole rows are drawn again
STEER_ROUNDS = 48  # redraws inside their bins of the numbers of a row that breaks a panel rule ...
STEER_IDLE = 12  # ... stopped after this many in a row that mend none (the bins leave the rule no room)
SOFT_RENEWALS = 6  # redraws given who the patient is of a row that still breaks one after that ...
SOFT_FREE = 2  # ... and then whole-row redraws (an age its events pin where the bins leave no room)
ROW_ROUNDS = 60
IDLE_ROUNDS = 10  # partial synthesis: whole-row rounds that mend no row before the last-resort repair
PAIR_TRIES = 32  # joint draws per pair of columns in the last-resort repair
SOFT_KEEP = 0.05  # what a row breaking a panel rule keeps with this public probability per round ...
NARROW_TRIES = 8  # narrow draws (an onset alone) before wide ones (with its condition) ...
WIDE_TRIES = 4  # ... of which there are this many, and then of the last move (the rest of the row) ...
LAST_TRIES = 8  # ... this many
MAX_BLOCK_CELLS = 4096  # a block drawn jointly holds at most this many cells (else column by column)
SOFT_ROUNDS = 8  # ... over this many rounds (docs/generator.md, "The panel as a prior")
HELD_ROUNDS = 30  # whole-row redraws that keep who the patient is (the quasi-identifiers) before free ones

# ``redraw(rows, held)``: fresh rows for ``rows`` (frame rows and model codes), drawn from the
# model given ``held`` (column index -> the codes to keep, one per row; empty: whole rows)
Redraw = Callable[[np.ndarray, dict[int, np.ndarray]], tuple[pd.DataFrame, np.ndarray]]


def rule_mask(rule: Rule, schema: Schema) -> tuple[Clique, np.ndarray] | None:
    """The learned columns of ``rule`` (derived numbers replaced by their formulas) and a
    boolean table over their public codes: False where every value of the cell breaks the
    rule. None when the rule reads a column that is not learned or its table is too large."""
    index = {c.name: j for j, c in enumerate(schema.learned_columns)}
    # a rule on a derived number is a rule on the numbers it is computed from
    rule = Rule(rule.text, substitute(rule.node, _formulas(schema)), rule.kind)
    if not rule.columns or not rule.columns <= set(index):
        return None
    clique = tuple(sorted(index[name] for name in rule.columns))
    cols = [schema.learned_columns[j] for j in clique]
    shape = tuple(c.domain.size for c in cols if c.domain is not None)
    if int(np.prod(shape)) > MAX_MASK_CELLS:
        return None
    boxes = [[code_box(c, k) for k in range(size)] for c, size in zip(cols, shape)]
    possible = np.ones(shape, dtype=bool)
    for cell in itertools.product(*(range(s) for s in shape)):
        box = {c.name: boxes[a][k] for a, (c, k) in enumerate(zip(cols, cell))}
        if rule.surely_violated(box):
            possible[cell] = False
    return clique, possible


_PLANS: dict[tuple[int, tuple[str, ...]], tuple[Schema, list[Any]]] = {}


def _plans(schema: Schema, fixed: tuple[str, ...]) -> list[Any]:
    """Each panel rule's mask over its cells and its narrow and wide blocks, made once per
    schema and fixed columns (a sampler calls :func:`tilt` for every redraw)."""
    key = (id(schema), fixed)
    if key in _PLANS and _PLANS[key][0] is schema:
        return _PLANS[key][1]
    index = {c.name: j for j, c in enumerate(schema.learned_columns)}
    who = {c.name for c in schema.learned_columns if c.role == "quasi_identifier"}
    plans = []
    for rule in schema.plausibility:
        found = rule_mask(rule, schema) or _lazy_mask(rule, schema)
        if found is None or (isinstance(found[1], np.ndarray) and found[1].all()):
            continue
        steps = [tuple(tuple(index[n] for n in block) for block in movable(rule, schema, fixed, wide))
                 for wide in (False, True)]
        # the last move: the rest of the row drawn again given who the patient is (the age and
        # the other quasi-identifiers) and the fixed columns, so correlated cells (a child's
        # yearly labs; a child's diabetes with its HbA1c and its drug) move together
        keep = tuple(sorted(index[n] for n in who | set(fixed) if n in index))
        last = keep or None
        if fixed:  # under a condition or kept real values: only for a rule whose premise is among them
            node = substitute(rule.node, _formulas(schema))
            premise = node.premise.columns() if isinstance(node, Implies) else frozenset()
            last = last if premise and premise <= who | set(fixed) else None
        if steps[0] or steps[1] or last:
            plans.append((found, steps, last))
    if len(_PLANS) > 64:
        _PLANS.clear()
    _PLANS[key] = (schema, plans)
    return plans


class _LazyMask:
    """A rule's 'possible' table over too many cells to build (ten yearly counts): each cell
    asked for is worked out once, by the rule's interval logic, and kept."""

    def __init__(self, rule: Rule, cols: list[Column]) -> None:
        self.rule, self.cols = rule, cols
        self.known: dict[tuple[int, ...], bool] = {}

    def __getitem__(self, cells: tuple[np.ndarray, ...]) -> np.ndarray:
        stacked = np.stack([np.asarray(c, dtype=np.int64) for c in cells], axis=1)
        if len(stacked) == 0:
            return np.ones(0, dtype=bool)
        unique, inverse = np.unique(stacked, axis=0, return_inverse=True)
        out = np.empty(len(unique), dtype=bool)
        for k, cell in enumerate(map(tuple, unique.tolist())):
            if cell not in self.known:
                box = {c.name: code_box(c, v) for c, v in zip(self.cols, cell)}
                self.known[cell] = not self.rule.surely_violated(box)
            out[k] = self.known[cell]
        return out[inverse.ravel()]


def _lazy_mask(rule: Rule, schema: Schema) -> tuple[Clique, _LazyMask] | None:
    index = {c.name: j for j, c in enumerate(schema.learned_columns)}
    rule = Rule(rule.text, substitute(rule.node, _formulas(schema)), rule.kind)
    if not rule.columns or not rule.columns <= set(index):
        return None
    clique = tuple(sorted(index[name] for name in rule.columns))
    return clique, _LazyMask(rule, [schema.learned_columns[j] for j in clique])


def zero_masks(schema: Schema) -> dict[Clique, np.ndarray]:
    """For each group of learned columns that rules tie together, a boolean table over their
    public codes: False where every value of the cell breaks a rule (a structural zero)."""
    masks: dict[Clique, np.ndarray] = {}
    for rule in schema.rules:
        found = rule_mask(rule, schema)
        if found is None:
            continue
        clique, possible = found
        if not possible.all():
            masks[clique] = masks[clique] & possible if clique in masks else possible
    return masks


def tilt(codes: np.ndarray, schema: Schema, resample: Callable[[np.ndarray, Sequence[Clique]], np.ndarray],
         rng: np.random.Generator, fixed: Sequence[str] = (),
         given: Callable[[np.ndarray, tuple[int, ...]], np.ndarray] | None = None) -> np.ndarray:
    """The plausibility panel as a public prior, on the model's codes before decoding: in a
    row whose cells surely break a panel rule, the columns the rule's conclusion names
    (:func:`movable`) are kept with probability ``SOFT_KEEP`` and otherwise drawn again from
    the model given the rest of the row (``resample(codes, blocks)``), for ``SOFT_ROUNDS``
    rounds; rows a narrow move cannot mend (an onset rule in a child) move wide. The output
    is the model tilted by a public factor of about ``SOFT_KEEP`` against what a clinician
    calls rare (heart failure in a child, a diagnosis decades before the age it is lived
    with): what the noise of a small count adds to such cells is cut twentyfold, a rare real
    case stays possible, and the premise (the age, the condition) keeps the model's share.
    Rows that only may break a rule (a bin across its threshold) are steered inside their
    bins after decoding. Post-processing of the model and the schema's public rules."""
    plans = _plans(schema, tuple(fixed))
    codes = np.array(codes, copy=True)
    stuck = [np.zeros(len(codes), dtype=bool) for _ in plans]  # rows no draw of a rule's blocks mended
    for _ in range(SOFT_ROUNDS):
        moved = False
        for k, ((clique, possible), steps, last) in enumerate(plans):
            broken = ~possible[tuple(codes[:, j] for j in clique)] & ~stuck[k]
            rows = np.flatnonzero(broken)
            rows = rows[rng.random(len(rows)) >= SOFT_KEEP]
            for blocks, tries in zip(steps, (NARROW_TRIES, WIDE_TRIES)):
                for _ in range(tries):
                    if len(rows) == 0 or not blocks:
                        break
                    moved = True
                    codes[rows] = resample(codes[rows], blocks)
                    rows = rows[~possible[tuple(codes[rows][:, j] for j in clique)]]
            hopeless = last is None or given is None or set(clique) <= set(last)  # the move keeps the rule's cells
            for _ in range(0 if hopeless else LAST_TRIES):
                if len(rows) == 0:
                    break
                moved = True
                assert given is not None and last is not None
                codes[rows] = given(codes[rows], last)
                still = rows[~possible[tuple(codes[rows][:, j] for j in clique)]]
                if len(still) == len(rows):
                    break  # no row mended: the kept cells leave the rule no room (partial synthesis)
                rows = still
            # what no move mended (the rule's conclusion is fixed: a conditioned COPD in a
            # conditioned child) is not tried again: the model's draw stands
            stuck[k][rows] = True
        if not moved:
            break
    return codes


def compress_masks(masks: dict[Clique, np.ndarray], compressions: Sequence[Compression]) -> dict[Clique, np.ndarray]:
    """The masks over the model's compressed domains, as log-potentials (0 or -inf): a merged
    cell is possible when any of its members is."""
    out: dict[Clique, np.ndarray] = {}
    for clique, mask in masks.items():
        table = mask.astype(np.float64)
        for axis, a in enumerate(clique):
            comp = compressions[a]
            moved = np.moveaxis(table, axis, 0)
            merged = np.zeros((comp.size,) + moved.shape[1:])
            np.add.at(merged, comp.to_small, moved)
            table = np.moveaxis(merged, 0, axis)
        if (table > 0).all():
            continue
        with np.errstate(divide="ignore"):
            out[clique] = np.log((table > 0).astype(np.float64))
    return out


def _formulas(schema: Schema) -> dict[str, Node]:
    """Each derived column's formula, to read a rule on it as a rule on what it is made of."""
    return {c.name: c.derived.node for c in schema.derived_columns if c.derived is not None}


def enforced(schema: Schema, fixed: Sequence[str] = ()) -> tuple[Rule, ...]:
    """The rules every synthetic row must satisfy: all the schema's hard rules, except those
    whose columns are all ``fixed`` (real values kept in a partial synthesis)."""
    kept = set(fixed)
    return tuple(r for r in schema.rules if not r.columns <= kept)


def violations(frame: pd.DataFrame, schema: Schema, rules: Sequence[Rule]) -> np.ndarray:
    """One boolean per row: does the row break any of ``rules``?"""
    return _broken(frame, schema, rules) > 0


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
    formulas = _formulas(schema)
    read = set().union(*(substitute(r.node, formulas).columns() for r in (*schema.rules, *schema.plausibility)))
    who = () if fixed else tuple(j for j, c in enumerate(schema.learned_columns)
                                 if c.role == "quasi_identifier" and c.name in read)
    numbers = {c.name: j for j, c in enumerate(schema.learned_columns)
               if isinstance(c.domain, NumericDomain) and c.name not in set(fixed)}
    if hard:
        frame = _hard(frame, codes, schema, rng, refinements, redraw, hard, numbers, (*fixed, *pinned), one_way,
                      pinned, who)
    soft = tuple(r for r in schema.plausibility if not r.columns <= set(fixed))
    if soft:
        frame = _steer(frame, codes, schema, rng, refinements, hard, soft, numbers)
        if not fixed:
            frame = _renew(frame, codes, schema, rng, refinements, redraw, hard, soft, numbers, who)
    return frame


def _renew(frame: pd.DataFrame, codes: np.ndarray, schema: Schema, rng: np.random.Generator,
           refinements: dict[str, np.ndarray], redraw: Redraw,
           hard: Sequence[Rule], soft: Sequence[Rule], numbers: dict[str, int], who: Sequence[int]) -> pd.DataFrame:
    """Rows that still break a panel rule after steering -- a number its bin cannot mend, an
    age its events pin inside a bin that straddles the rule (a 9-year-old of [5, 10) 105 cm
    tall, with visits nine years ago) -- are drawn again by ``redraw`` (the tilted model,
    under the same condition, given ``who`` the patient is), at most ``SOFT_RENEWALS`` times,
    then whole ``SOFT_FREE`` times for the few rows left; a fresh row, steered
    in turn, replaces the old one when it breaks no hard rule and fewer panel rules."""
    for round_ in range(SOFT_RENEWALS + (SOFT_FREE if who else 0)):
        count = _broken(frame, schema, soft)
        bad = np.flatnonzero(count > 0)
        if len(bad) == 0:
            break
        held = who if round_ < SOFT_RENEWALS else ()
        fresh, fresh_codes = redraw(bad, {j: codes[bad, j] for j in held})
        fresh = derive(_restore_types(fresh.reset_index(drop=True), schema), schema)
        fresh = _steer(fresh, fresh_codes, schema, rng, refinements, hard, soft, numbers)
        better = ~violations(fresh, schema, hard) & (_broken(fresh, schema, soft) < count[bad])
        if better.any():
            keep, kept = bad[better], np.flatnonzero(better)
            for name in fresh.columns:
                frame.loc[keep, name] = fresh.loc[kept, name].array
            codes[keep] = fresh_codes[kept]
            frame = _restore_types(frame, schema)
    return frame


def movable(rule: Rule, schema: Schema, fixed: Sequence[str] = (),
            wide: bool = False) -> tuple[tuple[str, ...], ...]:
    """The columns the panel prior moves when a row breaks ``rule``, in blocks drawn jointly:
    what its conclusion names (never a fixed column or who the patient is: the age and the
    other quasi-identifiers stay the model's). A yes/no column (a condition) moves with the
    columns the hard rules tie to it (its onset); a number the conclusion names (an onset)
    moves alone, unless ``wide``: then with what ties to it, the premise's condition too
    (an onset rule a child cannot meet is met by not having the condition)."""
    node = substitute(rule.node, _formulas(schema))  # a derived number moves through its inputs
    premise = node.premise.columns() if isinstance(node, Implies) else frozenset()
    names = node.conclusion.columns() - premise if isinstance(node, Implies) else node.columns()
    who = {c.name for c in schema.learned_columns if c.role == "quasi_identifier"}  # the age, the sex, ...
    ties = _ties(schema, set(fixed) | who)
    still = set(fixed) | who | (set() if wide else set(premise))
    blocks: list[tuple[str, ...]] = []
    seen: set[str] = set()
    order = [c.name for c in schema.learned_columns]
    for name in order:
        if name not in names or name in still or name in seen:
            continue
        tied = ties.get(name, {name})
        block = tied if wide or schema.column(name).kind == "boolean" else {name}
        if block & still:
            continue
        cells = math.prod(_size(schema.column(n)) for n in block)
        parts = [block] if cells <= MAX_BLOCK_CELLS else [{n} for n in block]  # a joint draw fits in memory
        blocks += [tuple(n for n in order if n in part) for part in parts]
        seen |= block
    return tuple(blocks)


def _size(col: Column) -> int:
    return col.domain.size if col.domain is not None else 1


def _ties(schema: Schema, still: set[str]) -> dict[str, set[str]]:
    """Learned columns that a hard rule makes present together (a condition and its onset, a
    death and its date; the quasi-identifiers and fixed columns left out): each column's
    group. Rules between values (an onset at most the age at death) tie nothing: the moved
    block is then redrawn inside them."""
    learned = {c.name for c in schema.learned_columns}
    parent = {n: n for n in learned}

    def root(n: str) -> str:
        while parent[n] != n:
            n = parent[n]
        return n

    # present together both ways (a condition and its onset, a death and its date): a rule
    # one way only (a lab cell's value implies a last value) ties nothing
    edges: set[tuple[frozenset[str], frozenset[str]]] = set()
    for rule in schema.rules:
        node = rule.node
        if isinstance(node, Implies) and _presence(node.premise) and _presence(node.conclusion):
            edges.add((node.premise.columns() & learned, node.conclusion.columns() & learned))
    for a, b in edges:
        if (b, a) not in edges:
            continue
        cols = sorted((a | b) - still)
        for other in cols[1:]:
            parent[root(other)] = root(cols[0])
    groups: dict[str, set[str]] = {}
    for n in learned:
        groups.setdefault(root(n), set()).add(n)
    return {n: groups[root(n)] for n in learned}


def _presence(node: Node) -> bool:
    """Whether ``node`` only says that one column is there (a flag, 'is present', 'is missing')."""
    while isinstance(node, Not):
        node = node.inner
    return isinstance(node, IsMissing | Flag)


def _redraw_numbers(frame: pd.DataFrame, rows: np.ndarray, names: Sequence[str], codes: np.ndarray, schema: Schema,
                    rng: np.random.Generator, refinements: dict[str, np.ndarray], numbers: dict[str, int]) -> None:
    for name in names:
        col = schema.column(name)
        assert isinstance(col.domain, NumericDomain)
        frame.loc[rows, name] = decode_numeric(codes[rows, numbers[name]], col.domain, rng, refinements.get(name))


def _hard(frame: pd.DataFrame, codes: np.ndarray, schema: Schema, rng: np.random.Generator,
          refinements: dict[str, np.ndarray], redraw: Redraw,
          rules: Sequence[Rule], numbers: dict[str, int], fixed: Sequence[str],
          one_way: Callable[[int], np.ndarray] | None, pinned: Sequence[str] = (), who: Sequence[int] = ()
          ) -> pd.DataFrame:
    formulas = _formulas(schema)
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
            _redraw_numbers(frame, bad, involved, codes, schema, rng, detail, numbers)
        else:
            held = who if round_ < VALUE_ROUNDS + HELD_ROUNDS else ()
            new_rows, new_codes = redraw(bad, {j: codes[bad, j] for j in held})
            for name in new_rows.columns:
                frame.loc[bad, name] = new_rows[name].array
            codes[bad] = new_codes
        frame = derive(_restore_types(frame, schema), schema)
        sub = violations(frame.iloc[bad].reset_index(drop=True), schema, rules)
        idle = idle + 1 if round_ >= VALUE_ROUNDS and sub.all() else 0
        bad = bad[sub]
    if len(bad) == 0:  # the last round may have mended them
        return frame
    pinned_numbers = [n for n in involved if n in set(pinned)]
    if pinned_numbers:
        bad = _within_pinned_bins(frame, codes, bad, schema, rng, rules, pinned_numbers, numbers)
    if len(bad) and one_way is not None:
        bad = _repair(frame, codes, bad, schema, rng, refinements, rules, fixed, one_way)
        # a conditioned number and a free one may have to move together (an age of 18-19 in
        # [15, 20) with COPD also needs an adult's weight): fresh starts inside the pinned
        # bins, each followed by the repair of the free columns
        for _ in range(PINNED_RESTARTS if pinned_numbers else 0):
            if len(bad) == 0:
                break
            _redraw_numbers(frame, bad, pinned_numbers, codes, schema, rng, {}, numbers)
            derive(_restore_types(frame, schema), schema)
            bad = _repair(frame, codes, bad, schema, rng, refinements, rules, fixed, one_way)
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


def _within_pinned_bins(frame: pd.DataFrame, codes: np.ndarray, bad: np.ndarray, schema: Schema,
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
    formulas = _formulas(schema)
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
            _redraw_numbers(frame, left, names, codes, schema, rng, {}, numbers)
            rows = derive(_restore_types(frame.iloc[left].reset_index(drop=True), schema), schema)
            left = left[violations(rows, schema, own)]
            if len(left) == 0:
                break
        for rule, moved in free:
            _mend_one(frame, todo, rule, moved, codes, schema, rng, rules, numbers)
        derive(_restore_types(frame, schema), schema)
        todo = todo[violations(frame.iloc[todo].reset_index(drop=True), schema, rules)]
    derive(_restore_types(frame, schema), schema)  # in place: the rows' types and derived columns
    rows = frame.iloc[bad].reset_index(drop=True)
    return bad[violations(rows, schema, rules)]


def _mend_one(frame: pd.DataFrame, rows: np.ndarray, rule: Rule, names: Sequence[str], codes: np.ndarray,
              schema: Schema, rng: np.random.Generator, rules: Sequence[Rule], numbers: dict[str, int]) -> None:
    """The ``names`` numbers of the ``rows`` that break ``rule`` drawn uniformly inside their
    bins, up to ``FREE_TRIES`` times, kept (in ``frame``) where the rule then holds and the
    row breaks no more of ``rules`` than before."""
    now = derive(_restore_types(frame.iloc[rows].reset_index(drop=True), schema), schema)
    broken = rule_rows(now, schema, _needed(schema, [rule]))
    bad = rows[rule.violated(broken)]
    if len(bad) == 0:
        return
    was = _broken(frame.iloc[bad].reset_index(drop=True), schema, rules)
    for _ in range(FREE_TRIES):
        trial = frame.iloc[bad].reset_index(drop=True)
        _redraw_numbers(trial, np.arange(len(bad)), names, codes[bad], schema, rng, {}, numbers)
        trial = derive(_restore_types(trial, schema), schema)
        after = _count(rule_rows(trial, schema, _needed(schema, rules)), rules)
        ok = ~rule.violated(rule_rows(trial, schema, _needed(schema, [rule]))) & (after <= was)
        if ok.any():
            keep, kept = bad[ok], np.flatnonzero(ok)
            for name in trial.columns:
                frame.loc[keep, name] = trial.loc[kept, name].array
        bad, was = bad[~ok], was[~ok]
        if len(bad) == 0:
            break


def _repair(frame: pd.DataFrame, codes: np.ndarray, bad: np.ndarray, schema: Schema, rng: np.random.Generator,
            refinements: dict[str, np.ndarray], rules: Sequence[Rule], fixed: Sequence[str],
            one_way: Callable[[int], np.ndarray]) -> np.ndarray:
    """Last resort, row by row (a greedy local search): replace the value of a free column
    of a broken rule by a draw from the model's 1-way marginal whenever that breaks fewer
    rules; when no single change helps, two at once; when neither does, a single value of
    the public domain the model gives no weight. Until none is broken or nothing helps.
    Returns the rows still broken."""
    index = {c.name: j for j, c in enumerate(schema.learned_columns)}
    formulas = _formulas(schema)
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


def _steer(frame: pd.DataFrame, codes: np.ndarray, schema: Schema, rng: np.random.Generator,
           refinements: dict[str, np.ndarray], hard: Sequence[Rule], soft: Sequence[Rule],
           numbers: dict[str, int]) -> pd.DataFrame:
    """Panel rule by panel rule, the numbers of a row that breaks it are drawn again inside
    their bins; a draw is kept when the rule then holds, no other panel rule breaks that held
    and every hard rule holds (a row the panel cannot fully mend is still mended where it can)."""
    formulas = _formulas(schema)
    inputs = {c.name: c.derived.columns for c in schema.derived_columns if c.derived is not None}
    needed = _needed(schema, [*soft, *hard])
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
        was = _count({name: values[bad] for name, values in rows.items()}, others)
        idle = 0
        for _ in range(STEER_ROUNDS):
            if len(bad) == 0 or idle >= STEER_IDLE:
                break
            trial = frame.iloc[bad, at].reset_index(drop=True)  # the columns that move and what they make
            _redraw_numbers(trial, np.arange(len(bad)), names, codes[bad], schema, rng, refinements, numbers)
            trial = derive(_restore_types(trial, schema), schema)
            tried = {**{name: values[bad] for name, values in rows.items()},
                     **rule_rows(trial, schema, moved)}  # only what moved is encoded again
            ok = ~rule.violated(tried) & ~_count(tried, watched).astype(bool) & (_count(tried, others) <= was)
            was = was[~ok]
            idle = 0 if ok.any() else idle + 1
            if ok.any():
                keep, kept = bad[ok], np.flatnonzero(ok)
                for name in sorted(touched):
                    frame.loc[keep, name] = trial.loc[kept, name].array
                    if name in rows:
                        rows[name][keep] = tried[name][kept]
            bad = bad[~ok]
    return _restore_types(frame, schema)


def _needed(schema: Schema, rules: Sequence[Rule]) -> list[Column]:
    """The view columns ``rules`` read."""
    names: set[str] = set().union(*(r.columns for r in rules)) if rules else set()
    return [c for c in schema.view_columns if c.name in names]


def _count(rows: dict[str, np.ndarray], rules: Sequence[Rule]) -> np.ndarray:
    """How many of ``rules`` each already-encoded row breaks."""
    size = len(next(iter(rows.values()))) if rows else 0
    if not rules:
        return np.zeros(size, dtype=np.int64)
    return np.sum([r.violated(rows) for r in rules], axis=0).astype(np.int64)


def _broken(frame: pd.DataFrame, schema: Schema, rules: Sequence[Rule]) -> np.ndarray:
    """How many of ``rules`` each row breaks."""
    if not rules or len(frame) == 0:
        return np.zeros(len(frame), dtype=np.int64)
    return _count(rule_rows(frame, schema, _needed(schema, rules)), rules)


def _restore_types(frame: pd.DataFrame, schema: Schema) -> pd.DataFrame:
    """Writing rows back with .loc can widen dtypes to object; put the decoded types back."""
    for col in schema.learned_columns:
        if col.name in frame.columns and isinstance(col.domain, NumericDomain) and frame[col.name].dtype == object:
            frame[col.name] = pd.array(pd.to_numeric(frame[col.name], errors="coerce"),
                                       dtype="Int64" if col.domain.integer else "Float64")
    return frame
