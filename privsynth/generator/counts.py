"""What a generator reads of the patient view: exact marginal counts, from wherever they live.

A generator never needs the patient rows themselves, only count tables over a few columns
(the marginals it scores and measures). :class:`Counts` is that interface; its members
compute the same exact tables from different places: :class:`ArrayCounts` from an n x d
array of codes in this process, and the engines' sharded counts
(:mod:`privsynth.engine`) from Parquet partitions of the encoded view, per shard and summed
by DuckDB or Spark, so that no step collects the patient view to the driver. Noise is added
to what these return, once, centrally (:mod:`privsynth.generator.measure`).

>>> import numpy as np
>>> data = ArrayCounts(np.array([[0, 1], [1, 1], [0, 0]]), (2, 2))
>>> data.contingency((0, 1)).tolist()
[[1, 1], [0, 1]]
>>> data.mapped([np.array([0, 0]), np.array([0, 1])]).contingency((0,)).tolist()
[3]
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

import numpy as np

from privsynth.generator.factor import Clique, contingency


@runtime_checkable
class Counts(Protocol):
    """Exact count tables of an encoded patient view (one row per patient)."""

    @property
    def sizes(self) -> tuple[int, ...]:
        """Each column's number of codes."""
        ...

    def contingency(self, attrs: Clique) -> np.ndarray:
        """The exact count table over ``attrs`` (shape: their sizes)."""
        ...

    def many(self, cliques: Sequence[Clique]) -> list[np.ndarray]:
        """:meth:`contingency` of each clique (an engine answers them in few passes)."""
        ...

    def mapped(self, maps: Sequence[np.ndarray]) -> Counts:
        """The same view with column ``j``'s code ``c`` replaced by ``maps[j][c]`` (a
        compression of its domain: a function of released values, never of the data)."""
        ...


def mapped_sizes(maps: Sequence[np.ndarray]) -> tuple[int, ...]:
    return tuple(int(np.max(m)) + 1 if len(m) else 0 for m in maps)


class ArrayCounts:
    """Counts of an n x d code array held in this process (column-major for speed)."""

    def __init__(self, codes: np.ndarray, sizes: Sequence[int]) -> None:
        if codes.ndim != 2 or codes.shape[1] != len(sizes):
            raise ValueError("codes and sizes must describe the same columns")
        self.codes = np.asfortranarray(codes)
        self._sizes = tuple(int(s) for s in sizes)

    @property
    def sizes(self) -> tuple[int, ...]:
        return self._sizes

    @property
    def rows(self) -> int:
        return int(self.codes.shape[0])

    def contingency(self, attrs: Clique) -> np.ndarray:
        return contingency(self.codes, attrs, self._sizes)

    def many(self, cliques: Sequence[Clique]) -> list[np.ndarray]:
        return [self.contingency(c) for c in cliques]

    def mapped(self, maps: Sequence[np.ndarray]) -> ArrayCounts:
        small = np.empty_like(self.codes, order="F")
        for j, m in enumerate(maps):
            small[:, j] = np.asarray(m)[self.codes[:, j]]
        return ArrayCounts(small, mapped_sizes(maps))


def as_counts(data: Counts | np.ndarray, sizes: Sequence[int]) -> Counts:
    """``data`` as :class:`Counts` (an array of codes is wrapped)."""
    if isinstance(data, np.ndarray):
        return ArrayCounts(data, sizes)
    return data
