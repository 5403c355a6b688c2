"""The distributed engine: per-shard steps on Spark executors, counts per shard summed.

``--engine spark --master URL`` runs the shard tasks as one Spark task each (the same
functions the embedded engine runs: :mod:`privsynth.engine.ingest`) and counts the encoded
view's Parquet partitions in Spark tasks too, one per shard, each returning its count
tables, which the driver sums (:mod:`privsynth.engine.counts`); only count tables reach the
driver. Without a master
it runs in local mode with ``workers`` cores (what the tests use). Past one machine the
working directory must be storage every executor reaches (a shared or object-store path),
and privsynth must be installed on the executors.

Spark needs pyspark (the project's ``spark`` extra) and Java 17; without them this engine
says what to install. A privsynth input error raised in a task comes back to the driver as
itself (not as a Java stack trace).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

from privsynth.engine.counts import ShardCounts
from privsynth.engine.registry import register
from privsynth.errors import InputError, PrivsynthError

T = TypeVar("T")
R = TypeVar("R")

NEEDS = ("the spark engine needs pyspark and Java 17: pip install 'privsynth[spark]' and install a Java 17 "
         "runtime (Debian: apt-get install openjdk-17-jre-headless)")


class _Captured:
    """A task's privsynth error, carried back to the driver to be raised there as itself."""

    def __init__(self, error: PrivsynthError) -> None:
        self.error = error


def _capturing(fn: Callable[[T], R]) -> Callable[[T], R | _Captured]:
    def run(task: T) -> R | _Captured:
        try:
            return fn(task)
        except PrivsynthError as exc:
            return _Captured(exc)
    return run


class SparkEngine:
    """Shard tasks as Spark tasks; counts per shard in Spark tasks, summed on the driver."""

    name = "spark"
    summary = "past one machine: Spark executors for the shards and their counts (--master URL)"

    def __init__(self, workers: int, master: str | None, options: dict[str, Any]) -> None:
        try:
            from pyspark.sql import SparkSession
        except ImportError:
            raise InputError(NEEDS) from None
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)  # local mode: the executors run this Python
        os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
        builder = (SparkSession.builder.master(master or f"local[{workers}]").appName("privsynth")
                   .config("spark.ui.enabled", "false").config("spark.ui.showConsoleProgress", "false")
                   .config("spark.sql.shuffle.partitions", str(max(2, workers)))
                   .config("spark.driver.memory", options.get("driver_memory", "2g")))
        try:
            self.spark = builder.getOrCreate()
        except Exception as exc:  # pyspark's Java gateway errors name no common base class
            raise InputError(f"{NEEDS} (Spark did not start: {type(exc).__name__})") from None
        self.spark.sparkContext.setLogLevel("ERROR")
        self.workers = workers

    @property
    def parallelism(self) -> int:
        return int(self.spark.sparkContext.defaultParallelism)

    def map(self, fn: Callable[[T], R], tasks: Sequence[T]) -> list[R]:
        if not tasks:
            return []
        results = (self.spark.sparkContext.parallelize(list(tasks), len(tasks)).map(_capturing(fn)).collect())
        out: list[R] = []
        for r in results:
            if isinstance(r, _Captured):
                raise r.error
            out.append(r)
        return out

    def counts(self, root: Path, sizes: tuple[int, ...]) -> ShardCounts:
        return ShardCounts(self, root, sizes)

    def close(self) -> None:
        self.spark.stop()


def _start(workers: int, master: str | None, options: dict[str, Any]) -> SparkEngine:
    return SparkEngine(workers, master, options)


register(SparkEngine.name, SparkEngine.summary, _start)
