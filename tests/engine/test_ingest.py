"""Patient-sharded ingest reads exactly what the whole-export path reads (issue 23).

For every export kind (per-patient Bundles, Bulk NDJSON, the example hospital with its
timelines), the sharded view's ingest record (every count and finding), its encoded counts,
fine histograms, counted treatments and patient keys equal the whole view's; a second
Patient claiming an identifier is refused across shards with the whole path's message, and
``shared: merge`` joins charts that landed in different shards.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
from pathlib import Path

import numpy as np
import pytest

from privsynth.engine import registry
from privsynth.engine.ingest import read_sharded
from privsynth.engine.shard import shard_of
from privsynth.errors import InputError
from privsynth.fhir.view import build_patient_view
from privsynth.generator.synthesizer import view_counts
from privsynth.pipeline import read_view
from tests.conftest import FHIR_2019, NDJSON, need_shared
from tests.fhir.test_view import ASTHMA, DIABETES, SSN, _bundle, _condition, _patient, _write


def _same(inputs, schema, shards, workers=1, engine="duckdb", on_error="raise"):
    """Assert the sharded read of ``inputs`` equals the whole read; return the whole view."""
    frame, ingest = read_view(list(inputs), schema, on_error=on_error)
    whole = view_counts(frame, schema)
    running = registry.start(engine, workers) if isinstance(engine, str) else engine
    try:
        with read_sharded(list(inputs), schema, running, shards, on_error=on_error) as sharded:
            assert sharded.rows == len(frame)
            assert sharded.ingest.as_dict() == ingest.as_dict()  # every count and every finding
            d = len(whole.counts.sizes)
            cliques = [(a,) for a in range(d)] + list(itertools.combinations(range(d), 2))[::11] + [(0, 1, 2)]
            for clique, a, b in zip(cliques, whole.counts.many(cliques), sharded.counts.counts.many(cliques)):
                assert np.array_equal(a, b), clique
            assert whole.fine.keys() == sharded.counts.fine.keys()
            assert all(np.array_equal(whole.fine[k], sharded.counts.fine[k]) for k in whole.fine)
            assert sharded.counts.report.as_dict() == whole.report.as_dict()
            assert sorted(sharded.keys()) == sorted(k.values for k in frame.index)
            work = sharded.setup.work
        assert not Path(work).exists()  # real data: removed after the run
    finally:
        if isinstance(engine, str):
            running.close()
    return frame


def test_bundles_read_in_shards_equal_the_whole_export(core_schema):
    need_shared()
    _same([FHIR_2019], core_schema, shards=5, workers=2)


def test_bulk_ndjson_with_timelines_read_in_shards_equals_the_whole_export(timeline_schema):
    need_shared()
    _same([NDJSON], timeline_schema, shards=3)


def test_the_example_hospital_with_histories_in_shards_equals_the_whole_export(timeline_schema, tmp_path):
    from privsynth.example.hospital import write_example_export

    export = write_example_export(tmp_path / "export", 300, 11)
    _same([export], timeline_schema, shards=7)


def _apart(*ids: str) -> int:
    """A number of shards that puts these patients in different shards."""
    for n in range(2, 40):
        if len({shard_of(i, n) for i in ids}) == len(ids):
            return n
    raise AssertionError("no such number of shards")


def test_an_identifier_claimed_in_another_shard_is_refused_as_the_whole_path_refuses_it(core_schema, tmp_path):
    ssn = {"identifier": [{"system": SSN, "value": "999-55-SENTINEL"}]}
    _write(tmp_path / "a.json", _bundle(_patient("A-1", **ssn), "urn:uuid:A-1", _condition("urn:uuid:A-1", DIABETES)))
    _write(tmp_path / "b.json", _bundle(_patient("B-2", **ssn), "urn:uuid:B-2", _condition("urn:uuid:B-2", ASTHMA)))
    _write(tmp_path / "d.json", _bundle(_patient("D-3"), "urn:uuid:D-3"))
    shards = _apart("A-1", "B-2")
    engine = registry.start("duckdb", 1)
    for on_error in ("raise", "skip"):
        with pytest.raises(InputError) as whole:
            build_patient_view([tmp_path], core_schema, on_error=on_error)
        with pytest.raises(InputError) as sharded:
            read_sharded([tmp_path], core_schema, engine, shards, on_error=on_error)
        assert str(sharded.value) == str(whole.value) and "SENTINEL" not in str(sharded.value)
    merging = dataclasses.replace(core_schema, patient_id=dataclasses.replace(core_schema.patient_id, shared="merge"))
    frame = _same([tmp_path], merging, shards)  # merged across shards: one row with both charts' records
    assert len(frame) == 2


def test_errors_name_the_export_file_and_line_not_the_shards(core_schema, tmp_path):
    export = tmp_path / "export"
    export.mkdir()
    (export / "Patient.ndjson").write_text(json.dumps(_patient("P-1")) + "\n")
    lines = [_condition("Patient/P-1", DIABETES), {**_condition("Patient/P-1", ASTHMA), "subject": None}]
    del lines[1]["subject"]
    (export / "Condition.ndjson").write_text("\n".join(json.dumps(x) for x in lines) + "\n")
    with pytest.raises(InputError) as whole:
        build_patient_view([export], core_schema)
    with pytest.raises(InputError) as sharded:
        read_sharded([export], core_schema, registry.start("duckdb", 1), 3)
    assert str(sharded.value) == str(whole.value)
    assert "Condition.ndjson:2: field 'Condition.subject'" in str(sharded.value)
    _same([export], core_schema, shards=3, on_error="skip")  # skipped and counted alike


def test_a_urn_reference_resolves_only_within_its_bundle_in_shards_too(core_schema, tmp_path):
    """The aliasing attack of issue 19, sharded: X's bundle re-uses C's urn:uuid and an NDJSON
    line names it; neither reaches C's row, and both are counted unresolved."""
    _write(tmp_path / "c.json", _bundle(_patient("C-7"), "urn:uuid:C-7", _condition("urn:uuid:C-7", DIABETES)))
    _write(tmp_path / "x.json", _bundle(_patient("X-1"), "urn:uuid:X-1", _condition("urn:uuid:C-7", ASTHMA)))
    (tmp_path / "Condition.ndjson").write_text(json.dumps(_condition("urn:uuid:C-7", ASTHMA)) + "\n")
    _same([tmp_path], core_schema, shards=_apart("C-7", "X-1"))


def test_a_bad_number_of_shards_or_engine_is_refused(core_schema, tmp_path):
    with pytest.raises(InputError, match="--shards"):
        read_sharded([tmp_path], core_schema, registry.start("duckdb", 1), 0)
    with pytest.raises(InputError, match="unknown engine 'hadoop'; allowed: duckdb, spark"):
        registry.start("hadoop")


def test_a_release_asked_to_read_in_shards_refuses_before_anything_is_charged(core_schema, tmp_path):
    from privsynth.privacy.ledger import Ledger
    from privsynth.release.release import release

    ledger = Ledger(tmp_path / "ledger.sqlite3")
    with pytest.raises(InputError, match="a release reads the export whole"):
        release([FHIR_2019], core_schema, tmp_path / "out", ledger=ledger, epsilon=1.0, engine="duckdb")
    assert ledger.budgets() == [] and not (tmp_path / "out").exists()
