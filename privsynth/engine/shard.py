"""Patients in shards, counted by an engine (issue 23's first step: the counting).

Every patient lands in one shard, chosen by a keyed hash of the patient's key, so a patient's
whole record stays together wherever the shards are processed. The encoded patient view of
each shard is written as a Parquet partition (``shard=K/part.parquet``: one integer column per
learned column, ``c0 .. c{d-1}``); the marginals a generator measures are then counted per
shard and summed by the engine -- DuckDB on one machine here -- and the sums are exactly the
counts of the whole view (tests/engine/test_shard.py), so noise is still added once, centrally,
through OpenDP. No step needs the whole view in one process's memory.

>>> shard_of("patient-1", 8) == shard_of("patient-1", 8)
True
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from privsynth.generator.factor import Clique

SHARD_SALT = b"privsynth-shard-v1"  # public: shards split the work, not the privacy


def shard_of(key: str, shards: int) -> int:
    """The shard of a patient key (stable across runs, machines and engines)."""
    digest = hashlib.blake2b(key.encode(), digest_size=8, key=SHARD_SALT).digest()
    return int.from_bytes(digest, "big") % shards


def write_shards(codes: np.ndarray, keys: Iterable[str], out: Path, shards: int) -> list[Path]:
    """Write the encoded view ``codes`` (n x d) as one Parquet partition per shard, each row in
    the shard of its patient's key; the partitions written."""
    assignment = np.fromiter((shard_of(k, shards) for k in keys), dtype=np.int64, count=len(codes))
    written = []
    for k in range(shards):
        rows = codes[assignment == k]
        table = pa.table({f"c{j}": pa.array(rows[:, j].astype(np.int32)) for j in range(codes.shape[1])})
        part = out / f"shard={k}"
        part.mkdir(parents=True, exist_ok=True)
        pq.write_table(table, part / "part.parquet")
        written.append(part / "part.parquet")
    return written


class ShardCounts:
    """Marginal counts of a sharded view, computed by DuckDB as per-shard counts summed (the
    engine's GROUP BY runs over the partitions in parallel; only the count table returns)."""

    def __init__(self, root: Path, sizes: tuple[int, ...]) -> None:
        import duckdb

        self.sizes = sizes
        self.glob = str(Path(root) / "shard=*" / "*.parquet")
        self.con = duckdb.connect()

    def contingency(self, attrs: Clique) -> np.ndarray:
        """The exact count table over ``attrs``: per shard, then summed (equal to
        :func:`privsynth.generator.factor.contingency` of the whole view)."""
        shape = tuple(self.sizes[a] for a in attrs)
        out = np.zeros(shape, dtype=np.int64)
        if not attrs:
            row = self.con.execute(f"SELECT count(*) FROM read_parquet('{self.glob}')").fetchone()
            return np.array(row[0] if row else 0)
        columns = ", ".join(f"c{a}" for a in attrs)
        query = (f"SELECT {columns}, sum(n) FROM (SELECT shard, {columns}, count(*) AS n FROM "
                 f"read_parquet('{self.glob}', hive_partitioning = true) GROUP BY ALL) GROUP BY {columns}")
        rows = self.con.execute(query).fetchnumpy()
        index = tuple(rows[f"c{a}"].astype(np.int64) for a in attrs)
        np.add.at(out, index, rows["sum(n)"].astype(np.int64))
        return out
