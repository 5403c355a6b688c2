"""What the generator knows before it reads any data: public structure from the schema.

- **Structural zeros** (:mod:`privsynth.generator.constraint`): cells every rule forbids.
- **A structural prior**: marginals a clinician expects to matter (age with height, a
  condition with its onset and its lab), measured with the schema's ``structure.share`` of
  the budget before adaptive selection spends the rest. Which pairs depend on each other is
  a public modelling choice; their measurement is charged like any other.
- **Protected attributes**: their 1-way marginals get ``PROTECTED_WEIGHT`` times the budget
  of another column's and are never merged by domain compression, so small groups are not
  lost to noise first (DP noise hits small groups hardest).
- Columns that structural zeros tie together are never compressed either: a merged cell is
  possible when any of its members is, so merging would erase the zeros.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from privsynth.generator.factor import Clique
from privsynth.schema.model import Schema

PROTECTED_WEIGHT = 4.0


@dataclass(frozen=True)
class PublicPrior:
    masks: dict[Clique, np.ndarray]  # possible cells (True) over public codes, per clique
    structure: tuple[Clique, ...]  # marginals measured first
    structure_share: float  # of the generator's rho, for them
    weights: tuple[float, ...]  # relative rho of each column's 1-way marginal
    whole: tuple[bool, ...]  # never compressed (protected, or tied by structural zeros)
    unordered: tuple[bool, ...] = ()  # categorical columns (their codes have no order); () = all

    def __post_init__(self) -> None:
        if not self.unordered:
            object.__setattr__(self, "unordered", (True,) * len(self.weights))

    @classmethod
    def none(cls, d: int) -> PublicPrior:
        return cls({}, (), 0.0, (1.0,) * d, (False,) * d)

    @classmethod
    def from_schema(cls, schema: Schema) -> PublicPrior:
        from privsynth.generator.constraint import zero_masks

        names = [c.name for c in schema.learned_columns]
        index = {n: j for j, n in enumerate(names)}
        protected = set(schema.protected)
        structure: tuple[Clique, ...] = ()
        share = 0.0
        if schema.structure is not None:
            structure = tuple(tuple(sorted(index[n] for n in group)) for group in schema.structure.marginals)
            share = schema.structure.share
        masks = zero_masks(schema)
        tied = {a for clique in masks for a in clique}
        return cls(masks, structure, share, tuple(PROTECTED_WEIGHT if n in protected else 1.0 for n in names),
                   tuple(n in protected or j in tied for j, n in enumerate(names)),
                   tuple(c.kind == "categorical" for c in schema.learned_columns))

    def rho_one_way(self, rho_total: float) -> np.ndarray:
        """Each column's share of ``rho_total`` for its 1-way marginal, by weight."""
        weights = np.asarray(self.weights, dtype=np.float64)
        return rho_total * weights / weights.sum()

    def compressible(self, base: tuple[bool, ...] | None) -> tuple[bool, ...]:
        """Which columns may be compressed: ``base`` (None: all), never a whole one."""
        allowed = base if base is not None else (True,) * len(self.whole)
        return tuple(a and not w for a, w in zip(allowed, self.whole))
