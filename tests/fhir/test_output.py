"""Streamed FHIR output: worker processes write exactly what one process writes."""

from __future__ import annotations

import pytest

import privsynth.fhir.output as output
from privsynth.fhir.output import FhirSink, InvalidResourceError
from privsynth.fhir.write import FhirWriter
from privsynth.schema import load_schema
from tests.fhir.test_write import frame, schema_dict


def _write(tmp_path, name, fmt, workers):
    schema = load_schema(schema_dict())
    out = tmp_path / name
    out.mkdir()
    sink = FhirSink(out, fmt, 600, workers=workers)
    for who, _facts, resources in FhirWriter(schema, seed=4).patients(frame(600)):
        sink.add(who.id, resources)
    counts = sink.close()
    return counts, {p.name: p.read_bytes() for p in out.iterdir()}


@pytest.mark.parametrize("fmt", ["ndjson", "bundle"])
def test_two_workers_write_the_same_files_as_one_process(tmp_path, monkeypatch, fmt):
    monkeypatch.setattr(output, "INLINE_BELOW", 0)
    monkeypatch.setattr(output, "BATCH", 64)
    one = _write(tmp_path, "one", fmt, workers=1)
    two = _write(tmp_path, "two", fmt, workers=2)
    assert one == two
    counts, files = one
    assert counts["Patient"] == 600 and sum(counts.values()) > 600
    assert len(files) == (600 if fmt == "bundle" else len(counts))


def test_an_invalid_resource_stops_the_write_with_the_type_named(tmp_path, monkeypatch):
    monkeypatch.setattr(output, "INLINE_BELOW", 0)
    sink = FhirSink(tmp_path, "ndjson", 10, workers=2)
    sink.add("p", [{"resourceType": "Patient", "id": "p", "birthDate": "yesterday"}])
    with pytest.raises(InvalidResourceError, match="invalid Patient"):
        sink.close()
    assert sink._pool is None  # workers stopped
