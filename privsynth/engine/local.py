"""The embedded engine: per-shard steps in worker processes, counts by DuckDB (one machine).

Tasks run in a pool of ``workers`` fresh processes (``spawn``: nothing of the parent's
state, DuckDB threads included, is inherited); each returns a small result. Counting reads
the view's Parquet partitions with DuckDB, whose ``GROUP BY`` aggregates each partition in
parallel and sums the partial counts (:mod:`privsynth.engine.sql`). With ``workers=1`` the
tasks run in this process, in order (no pool: what tests and small exports want).
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from privsynth.engine.registry import register
from privsynth.engine.sql import SqlCounts

T = TypeVar("T")
R = TypeVar("R")


class DuckCounts(SqlCounts):
    """Counts of Parquet partitions, by DuckDB."""

    def __init__(self, root: Path | str, sizes: tuple[int, ...], maps: tuple[np.ndarray | None, ...] | None = None,
                 threads: int = 2) -> None:
        import duckdb

        self.root = str(root)
        self.threads = threads
        glob = str(Path(root) / "shard=*" / "*.parquet").replace("'", "''")
        super().__init__(f"read_parquet('{glob}', hive_partitioning = true)", sizes, maps)
        self.con = duckdb.connect(config={"threads": threads})

    def _run(self, query: str) -> dict[str, np.ndarray]:
        return dict(self.con.execute(query).fetchnumpy())

    def _lookup(self, column: str, values: np.ndarray) -> str:
        return "[" + ", ".join(str(int(v)) for v in values) + f"][{column} + 1]"  # DuckDB lists are 1-based

    def _with(self, maps: tuple[np.ndarray | None, ...], sizes: tuple[int, ...]) -> DuckCounts:
        return DuckCounts(self.root, sizes, maps, self.threads)


class LocalEngine:
    """Worker processes on this machine; DuckDB for the counts."""

    name = "duckdb"
    summary = "one machine: worker processes for the shards, DuckDB for the counts (the default)"

    def __init__(self, workers: int) -> None:
        self.workers = workers
        self._pool: ProcessPoolExecutor | None = None

    @property
    def parallelism(self) -> int:
        return self.workers

    def map(self, fn: Callable[[T], R], tasks: Sequence[T]) -> list[R]:
        if self.workers == 1 or len(tasks) <= 1:
            return [fn(t) for t in tasks]
        if self._pool is None:
            self._pool = ProcessPoolExecutor(self.workers, mp_context=multiprocessing.get_context("spawn"))
        try:
            return list(self._pool.map(fn, tasks))
        except BrokenProcessPool:
            from privsynth.errors import EngineError

            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None
            raise EngineError(
                f"a worker process of the duckdb engine stopped while running {getattr(fn, '__name__', 'a step')} "
                f"on {len(tasks)} task(s) (killed, or out of memory?); nothing was written. Run again with fewer "
                "--workers or more --shards (smaller tasks), or see the system log for why it stopped") from None

    def counts(self, root: Path, sizes: tuple[int, ...]) -> DuckCounts:
        return DuckCounts(root, sizes, threads=self.workers)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown()
            self._pool = None


def _start(workers: int, master: str | None, options: dict[str, Any]) -> LocalEngine:
    from privsynth.errors import InputError

    if master is not None:
        raise InputError("--master is for the spark engine; the duckdb engine runs on this machine")
    return LocalEngine(workers)


register(LocalEngine.name, LocalEngine.summary, _start)
