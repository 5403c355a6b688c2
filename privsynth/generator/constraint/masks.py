"""Structural zeros: a cell of the model (a combination of public codes) in which every value
violates a rule -- an onset-age bin above the whole age bin, a married patient in an age bin
entirely under 16 -- gets probability exactly 0: the rule's columns become a clique of the
model carrying a log-potential of -inf on those cells, which estimation never moves."""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import numpy as np

from privsynth.domain import code_box
from privsynth.generator.compress import Compression
from privsynth.generator.constraint.common import formulas_of
from privsynth.generator.factor import Clique
from privsynth.schema.model import Column, Schema
from privsynth.schema.rule import Rule, substitute

MAX_MASK_CELLS = 2_000_000  # a rule over more cells than this is enforced on rows only


def rule_mask(rule: Rule, schema: Schema) -> tuple[Clique, np.ndarray] | None:
    """The learned columns of ``rule`` (derived numbers replaced by their formulas) and a
    boolean table over their public codes: False where every value of the cell breaks the
    rule. None when the rule reads a column that is not learned or its table is too large."""
    index = {c.name: j for j, c in enumerate(schema.learned_columns)}
    # a rule on a derived number is a rule on the numbers it is computed from
    rule = Rule(rule.text, substitute(rule.node, formulas_of(schema)), rule.kind)
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


def lazy_mask(rule: Rule, schema: Schema) -> tuple[Clique, _LazyMask] | None:
    index = {c.name: j for j, c in enumerate(schema.learned_columns)}
    rule = Rule(rule.text, substitute(rule.node, formulas_of(schema)), rule.kind)
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
