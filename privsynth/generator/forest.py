"""Disjoint sets, for growing spanning trees (Kruskal) over columns or cliques."""

from __future__ import annotations


class DisjointSets:
    """Union-find with path halving.

    >>> sets = DisjointSets(3)
    >>> sets.union(0, 2)
    True
    >>> sets.connected(0, 2), sets.connected(0, 1)
    (True, False)
    """

    def __init__(self, n: int) -> None:
        self._parent = list(range(n))

    def root(self, x: int) -> int:
        parent = self._parent
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    def connected(self, a: int, b: int) -> bool:
        return self.root(a) == self.root(b)

    def union(self, a: int, b: int) -> bool:
        """Join the sets of ``a`` and ``b``; False if they were already one set."""
        ra, rb = self.root(a), self.root(b)
        if ra == rb:
            return False
        self._parent[ra] = rb
        return True
