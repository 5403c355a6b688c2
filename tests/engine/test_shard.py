"""Counting a patient-sharded view with an engine gives exactly today's counts (issue 23)."""

from __future__ import annotations

import itertools

import numpy as np
import pyarrow.parquet as pq
import pytest

from privsynth.domain import domain_sizes, encode
from privsynth.engine.local import DuckCounts
from privsynth.engine.shard import shard_of, write_shards
from privsynth.generator.counts import ArrayCounts
from privsynth.generator.factor import contingency
from privsynth.pipeline import read_view


@pytest.fixture(scope="module")
def view(core_schema, tmp_path_factory):
    from privsynth.example.hospital import write_example_export

    export = write_example_export(tmp_path_factory.mktemp("shards") / "export", 500, 4)
    frame, _ = read_view([export], core_schema)
    return frame


def test_a_patient_always_lands_in_the_same_shard_and_shards_are_balanced():
    keys = [f"patient-{k}" for k in range(20_000)]
    first = [shard_of(k, 8) for k in keys]
    assert first == [shard_of(k, 8) for k in keys]
    counts = np.bincount(first, minlength=8)
    assert counts.min() > 0.9 * 2500 and counts.max() < 1.1 * 2500


def test_sharded_counts_equal_the_whole_views_counts_exactly(view, core_schema, tmp_path):
    codes, _ = encode(view, core_schema)
    sizes = tuple(domain_sizes(core_schema))
    parts = write_shards(codes, [str(k) for k in view.index], tmp_path / "view", 4)
    assert sum(pq.read_metadata(p).num_rows for p in parts) == len(view)
    counts = DuckCounts(tmp_path / "view", sizes)
    d = codes.shape[1]
    cliques = [(a,) for a in range(d)] + list(itertools.combinations(range(d), 2))[::7] + [(0, 1, 2), (3, 9, 20)]
    for clique, table in zip(cliques, counts.many(cliques)):
        assert np.array_equal(table, contingency(codes, clique, sizes)), clique
    assert np.array_equal(counts.contingency((9, 3)), contingency(codes, (9, 3), sizes))  # any column order
    assert int(counts.contingency(())) == len(view)
    # a compressed domain (codes mapped) is counted as the in-memory mapping counts it
    rng = np.random.default_rng(0)
    maps = [rng.integers(0, max(1, s // 2), size=s) for s in sizes]
    small = ArrayCounts(codes, sizes).mapped(maps)
    shard_small = counts.mapped(maps)
    assert shard_small.sizes == small.sizes
    for clique, table in zip(cliques[:40], shard_small.many(cliques[:40])):
        assert np.array_equal(table, small.contingency(clique)), clique
    twice = [rng.integers(0, max(1, s // 2), size=s) for s in small.sizes]
    assert np.array_equal(shard_small.mapped(twice).contingency((0, 5)), small.mapped(twice).contingency((0, 5)))
