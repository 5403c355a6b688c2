"""Exact marginal counts of a sharded, encoded patient view, by any SQL engine.

The view is Parquet partitions ``shard=K/*.parquet`` with one integer column per learned
column (``c0 .. c{d-1}``). A count table is a ``GROUP BY`` over a few of them, which every
engine runs as partial counts per partition summed (it never moves rows, only count rows);
several tables are answered in one scan with ``GROUPING SETS``. A compressed domain (a
function of released 1-way marginals, :meth:`mapped`) is a lookup in the query. The tables
returned are exact: noise is added to them once, centrally, through OpenDP.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from privsynth.generator.counts import mapped_sizes
from privsynth.generator.factor import Clique

BATCH = 48  # count tables per scan (GROUPING SETS); a scan is the cost, the tables are small
BATCH_COLUMNS = 60  # columns grouped by in one scan at most (Spark allows 64)


class SqlCounts:
    """:class:`~privsynth.generator.counts.Counts` over a table an engine can query. An engine
    supplies :meth:`_run` (a query -> its columns as arrays), :meth:`_lookup` (a mapped code
    in its SQL dialect) and the ``source`` it reads."""

    def __init__(self, source: str, sizes: tuple[int, ...], maps: tuple[np.ndarray | None, ...] | None = None,
                 ) -> None:
        self.source = source
        self._sizes = tuple(int(s) for s in sizes)
        self.maps = maps if maps is not None else (None,) * len(sizes)

    @property
    def sizes(self) -> tuple[int, ...]:
        return self._sizes

    def _run(self, query: str) -> dict[str, np.ndarray]:
        raise NotImplementedError

    def _lookup(self, column: str, values: np.ndarray) -> str:
        raise NotImplementedError

    def _with(self, maps: tuple[np.ndarray | None, ...], sizes: tuple[int, ...]) -> SqlCounts:
        raise NotImplementedError

    def _column(self, a: int) -> str:
        m = self.maps[a]
        return f"c{a}" if m is None else self._lookup(f"c{a}", m)

    def mapped(self, maps: Sequence[np.ndarray]) -> SqlCounts:
        composed = tuple(np.asarray(m) if old is None else np.asarray(m)[old] for m, old in zip(maps, self.maps))
        return self._with(composed, mapped_sizes(maps))

    def contingency(self, attrs: Clique) -> np.ndarray:
        return self.many([attrs])[0]

    def total(self) -> int:
        rows = self._run(f"SELECT count(*) AS n FROM {self.source}")
        return int(rows["n"][0]) if len(rows["n"]) else 0

    def many(self, cliques: Sequence[Clique]) -> list[np.ndarray]:
        """Each clique's exact table; distinct column sets answered together, BATCH per scan."""
        wanted = list(dict.fromkeys(tuple(sorted(c)) for c in cliques if c))
        tables: dict[Clique, np.ndarray] = {}
        for batch in _batches(wanted):
            tables.update(self._scan(batch))
        out = []
        for c in cliques:
            if not c:
                out.append(np.array(self.total()))
                continue
            key = tuple(sorted(c))
            order = [key.index(a) for a in c]  # the table as the clique orders its columns
            out.append(np.transpose(tables[key], order) if order != sorted(order) else tables[key])
        return out

    def _scan(self, sets: list[Clique]) -> dict[Clique, np.ndarray]:
        """The tables of ``sets`` from one scan (GROUPING SETS)."""
        used = sorted({a for s in sets for a in s})
        inner = ", ".join(f"{self._column(a)} AS g{a}" for a in used)
        grouping = ", ".join("(" + ", ".join(f"g{a}" for a in s) + ")" for s in sets)
        listed = ", ".join(f"g{a}, grouping(g{a}) AS k{a}" for a in used)  # k: 1 when not grouped by g
        query = (f"SELECT {listed}, count(*) AS n FROM "
                 f"(SELECT {inner} FROM {self.source}) AS view GROUP BY GROUPING SETS ({grouping})")
        rows = self._run(query)
        n = rows["n"].astype(np.int64)
        grouped = {a: rows[f"k{a}"].astype(np.int64) == 0 for a in used}
        out: dict[Clique, np.ndarray] = {}
        for s in sets:
            pick = np.ones(len(n), dtype=bool)
            for a in used:
                pick &= grouped[a] if a in s else ~grouped[a]
            table = np.zeros(tuple(self._sizes[a] for a in s), dtype=np.int64)
            index = tuple(rows[f"g{a}"][pick].astype(np.int64) for a in s)
            np.add.at(table, index, n[pick])
            out[s] = table
        return out


def _batches(sets: list[Clique]) -> list[list[Clique]]:
    """``sets`` in input order, in batches of at most BATCH sets over at most BATCH_COLUMNS columns."""
    out: list[list[Clique]] = []
    batch: list[Clique] = []
    columns: set[int] = set()
    for s in sets:
        if batch and (len(batch) == BATCH or len(columns | set(s)) > BATCH_COLUMNS):
            out.append(batch)
            batch, columns = [], set()
        batch.append(s)
        columns |= set(s)
    if batch:
        out.append(batch)
    return out
