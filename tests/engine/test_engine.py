"""The engine contract, on every registered engine (issue 23): ``map`` returns one result per
task in task order and re-raises a task's input error as itself; ``counts`` are exact; and a
sharded read on the engine equals the whole-export read. Spark runs in local mode; it is
skipped (saying why) only where pyspark or Java cannot be installed."""

from __future__ import annotations

import itertools
import os
import shutil

import numpy as np
import pytest

from privsynth.engine import registry
from privsynth.engine.shard import write_shards
from privsynth.errors import EngineError, InputError
from privsynth.generator.counts import ArrayCounts


def _needs(name: str) -> None:
    if name != "spark":
        return
    try:
        import pyspark  # noqa: F401
    except ImportError:
        pytest.skip("pyspark is not installed (pip install '.[test]' installs it)")
    if shutil.which("java") is None:
        pytest.skip("no Java runtime: the spark engine needs Java 17 (Debian: openjdk-17-jre-headless)")


@pytest.fixture(scope="module", params=registry.names())
def engine(request):
    _needs(request.param)
    running = registry.start(request.param, 2)
    yield running
    running.close()


def square(x: int) -> int:
    return x * x


def refuse(x: int) -> int:
    if x == 3:
        raise InputError(f"task {x}: refused")
    return x


def test_map_keeps_task_order_and_reraises_input_errors_as_themselves(engine):
    assert engine.parallelism == 2  # started with 2 workers (local cores for Spark)
    assert engine.map(square, list(range(9))) == [x * x for x in range(9)]
    with pytest.raises(InputError, match="^task 3: refused$"):
        engine.map(refuse, list(range(5)))


def stop(x: int) -> int:
    if x == 1:
        os._exit(9)  # a worker killed mid-task (as the out-of-memory killer does)
    return x


def test_a_worker_that_stops_is_one_clear_error_and_the_engine_still_runs():
    running = registry.start("duckdb", 2)
    try:
        with pytest.raises(EngineError, match="^a worker process of the duckdb engine stopped while running stop on 3"):
            running.map(stop, [0, 1, 2])
        assert running.map(square, [2, 3]) == [4, 9]  # a fresh pool for the next step
    finally:
        running.close()


def test_counts_are_exact_over_shards_and_under_a_compression(engine, tmp_path):
    rng = np.random.default_rng(5)
    sizes = (3, 7, 2, 12, 5)
    codes = np.column_stack([rng.integers(0, s, 4000) for s in sizes])
    write_shards(codes, [f"p{k}" for k in range(len(codes))], tmp_path / "view", 6)
    counts, exact = engine.counts(tmp_path / "view", sizes), ArrayCounts(codes, sizes)
    cliques = [(a,) for a in range(5)] + list(itertools.combinations(range(5), 2)) + [(4, 0, 3), ()]
    for clique, a, b in zip(cliques, counts.many(cliques), exact.many(cliques)):
        assert np.array_equal(a, b), clique
    maps = [rng.integers(0, max(1, s - 1), s) for s in sizes]
    small, small_exact = counts.mapped(maps), exact.mapped(maps)
    assert small.sizes == small_exact.sizes
    for clique in [(0, 3), (1, 2, 4)]:
        assert np.array_equal(small.contingency(clique), small_exact.contingency(clique)), clique


def test_a_sharded_read_on_the_engine_equals_the_whole_read(engine, timeline_schema, tmp_path):
    from privsynth.example.hospital import write_example_export
    from tests.engine.test_ingest import _same

    export = write_example_export(tmp_path / "export", 150, 3)
    _same([export], timeline_schema, shards=4, engine=engine)


def test_many_tables_over_many_columns_are_counted_in_scans_an_engine_accepts(engine, tmp_path):
    """Spark groups by at most 64 columns in one scan: batches stay within that."""
    rng = np.random.default_rng(9)
    sizes = (2,) * 80
    codes = rng.integers(0, 2, size=(500, 80))
    write_shards(codes, [f"p{k}" for k in range(500)], tmp_path / "wide", 3)
    pairs = [(a, 79 - a) for a in range(40)] + [(a, a + 1) for a in range(79)]
    exact = ArrayCounts(codes, sizes)
    for clique, a, b in zip(pairs, engine.counts(tmp_path / "wide", sizes).many(pairs), exact.many(pairs)):
        assert np.array_equal(a, b), clique
