"""The plausibility panel as a public prior on the model's codes, before decoding
(docs/generator.md, "The panel as a prior"): rows whose cells surely break a panel rule have
the columns its conclusion names drawn again from the model."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from privsynth.generator.constraint.common import formulas_of
from privsynth.generator.constraint.masks import lazy_mask, rule_mask
from privsynth.generator.factor import Clique
from privsynth.schema.model import Column, Schema
from privsynth.schema.rule import Flag, Implies, IsMissing, Node, Not, Rule, substitute

SOFT_KEEP = 0.05  # what a row breaking a panel rule keeps with this public probability per round ...
NARROW_TRIES = 8  # narrow draws (an onset alone) before wide ones (with its condition) ...
WIDE_TRIES = 4  # ... of which there are this many, and then of the last move (the rest of the row) ...
LAST_TRIES = 8  # ... this many
MAX_BLOCK_CELLS = 4096  # a block drawn jointly holds at most this many cells (else column by column)
SOFT_ROUNDS = 8  # ... over this many rounds (docs/generator.md, "The panel as a prior")


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
        found = rule_mask(rule, schema) or lazy_mask(rule, schema)
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
            node = substitute(rule.node, formulas_of(schema))
            premise = node.premise.columns() if isinstance(node, Implies) else frozenset()
            last = last if premise and premise <= who | set(fixed) else None
        if steps[0] or steps[1] or last:
            plans.append((found, steps, last))
    if len(_PLANS) > 64:
        _PLANS.clear()
    _PLANS[key] = (schema, plans)
    return plans


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


def movable(rule: Rule, schema: Schema, fixed: Sequence[str] = (),
            wide: bool = False) -> tuple[tuple[str, ...], ...]:
    """The columns the panel prior moves when a row breaks ``rule``, in blocks drawn jointly:
    what its conclusion names (never a fixed column or who the patient is: the age and the
    other quasi-identifiers stay the model's). A yes/no column (a condition) moves with the
    columns the hard rules tie to it (its onset); a number the conclusion names (an onset)
    moves alone, unless ``wide``: then with what ties to it, the premise's condition too
    (an onset rule a child cannot meet is met by not having the condition)."""
    node = substitute(rule.node, formulas_of(schema))  # a derived number moves through its inputs
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
