"""Exact marginal counts of a sharded, encoded patient view, counted where the shards lie.

Each engine task reads one shard's Parquet partition (only the columns asked for), counts
every table of the call with numpy (``bincount`` of the cells' flat index) and returns them;
the driver sums the shards' tables. The sums are exact, the same tables a whole-view count
gives; only count tables leave a task, never rows. A compressed domain (a function of
released 1-way marginals, :meth:`ShardCounts.mapped`) is a lookup applied in the task.
Noise is added to the sums once, centrally, through OpenDP.

This is how the Spark engine counts: a Spark SQL job that expands the rows once per
grouping set cost about 70 ms per table in local mode, counting in the tasks a few
milliseconds (docs/engines.md).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from privsynth.engine.protocol import Engine
from privsynth.generator.counts import mapped_sizes
from privsynth.generator.factor import Clique


@dataclass(frozen=True)
class CountTask:
    """One shard's part of a call: its Parquet files, the (sorted) column sets, and the
    columns' code maps and sizes."""

    files: tuple[str, ...]
    sets: tuple[Clique, ...]
    maps: tuple[np.ndarray | None, ...]
    sizes: tuple[int, ...]


def count_shard(task: CountTask) -> list[np.ndarray]:
    """Every table of ``task.sets`` over one shard (on a worker)."""
    import pyarrow.parquet as pq

    used = sorted({a for s in task.sets for a in s})
    codes: dict[int, np.ndarray] = {a: np.empty(0, dtype=np.int64) for a in used}
    parts = [pq.read_table(f, columns=[f"c{a}" for a in used]) for f in task.files]
    for a in used:
        column = np.concatenate([p[f"c{a}"].to_numpy().astype(np.int64) for p in parts]) if parts else codes[a]
        m = task.maps[a]
        codes[a] = column if m is None else np.asarray(m, dtype=np.int64)[column]
    rows = sum(p.num_rows for p in parts)
    out = []
    for s in task.sets:
        if not s:
            out.append(np.array(rows, dtype=np.int64))
            continue
        shape = tuple(task.sizes[a] for a in s)
        flat = np.ravel_multi_index(tuple(codes[a] for a in s), shape) if rows else np.empty(0, dtype=np.int64)
        out.append(np.bincount(flat, minlength=int(np.prod(shape))).astype(np.int64).reshape(shape))
    return out


class ShardCounts:
    """:class:`~privsynth.generator.counts.Counts` of the partitions ``root/shard=K/*.parquet``,
    counted by ``engine``'s tasks, one per shard, and summed here."""

    def __init__(self, engine: Engine, root: Path | str, sizes: tuple[int, ...],
                 maps: tuple[np.ndarray | None, ...] | None = None) -> None:
        self.engine = engine
        self.root = Path(root)
        self._sizes = tuple(int(s) for s in sizes)
        self.maps = maps if maps is not None else (None,) * len(sizes)
        self.shards = tuple(tuple(str(f) for f in sorted(d.glob("*.parquet")))
                            for d in sorted(self.root.glob("shard=*")))

    @property
    def sizes(self) -> tuple[int, ...]:
        return self._sizes

    def mapped(self, maps: Sequence[np.ndarray]) -> ShardCounts:
        composed = tuple(np.asarray(m) if old is None else np.asarray(m)[old] for m, old in zip(maps, self.maps))
        return ShardCounts(self.engine, self.root, mapped_sizes(maps), composed)

    def contingency(self, attrs: Clique) -> np.ndarray:
        return self.many([attrs])[0]

    def many(self, cliques: Sequence[Clique]) -> list[np.ndarray]:
        """Each clique's exact table: one task per shard counts them all; the driver sums."""
        sets = tuple(dict.fromkeys(tuple(sorted(c)) for c in cliques))
        tasks = [CountTask(files, sets, self.maps, self._sizes) for files in self.shards if files]
        totals = [np.zeros(tuple(self._sizes[a] for a in s), dtype=np.int64) for s in sets]
        for tables in self.engine.map(count_shard, tasks):
            for total, table in zip(totals, tables):
                total += table
        by_set = dict(zip(sets, totals))
        out = []
        for c in cliques:
            key = tuple(sorted(c))
            order = [key.index(a) for a in c]  # the table as the clique orders its columns
            out.append(np.transpose(by_set[key], order) if order != sorted(order) else by_set[key])
        return out
