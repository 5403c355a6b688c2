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


def _patients(sink: FhirSink, invalid: int | None, n: int = 1_030) -> None:
    for k in range(n):
        birth = "yesterday" if k == invalid else "2000-01-01"
        sink.add(f"p{k}", [{"resourceType": "Patient", "id": f"p{k}", "birthDate": birth}])


@pytest.mark.parametrize(("invalid", "caught"), [(5, True), (1_010, True), (1_005, False)],
                         ids=["in-the-first-1000", "a-10th-patient", "between-the-10ths"])
def test_sampled_validation_checks_the_first_patients_then_every_10th(tmp_path, monkeypatch, invalid, caught):
    monkeypatch.setattr(output, "FULL_FIRST", 1_000)
    monkeypatch.setattr(output, "SAMPLE_EVERY", 10)
    sink = FhirSink(tmp_path, "ndjson", 1_030, workers=1, validation="sample")
    if caught:
        with pytest.raises(InvalidResourceError, match="invalid Patient"):
            _patients(sink, invalid)
            sink.close()
        return
    _patients(sink, invalid)
    assert sink.close()["Patient"] == 1_030 and sink.validated == 1_000 + 3  # then patients 1000, 1010, 1020
    (tmp_path / "all").mkdir()
    full = FhirSink(tmp_path / "all", "ndjson", 1_030, workers=1)
    with pytest.raises(InvalidResourceError):  # what sampling let through, --validate-output all stops
        _patients(full, invalid)
        full.close()


def test_the_manifest_states_how_the_output_was_validated(core_schema, tmp_path):
    import json

    from privsynth.example.hospital import write_example_export
    from privsynth.pipeline import synthesize

    export = write_example_export(tmp_path / "export", 300, 2)
    for validation in ("all", "sample"):
        synthesize([export], core_schema, tmp_path / validation, epsilon=1.0, rows=50, seed=3,
                   validate_output=validation)
        stated = json.loads((tmp_path / validation / "fhir" / "manifest.json").read_text())
        assert stated["extension"]["privsynth"]["validation"].startswith(
            "every resource validated" if validation == "all" else "sampled: every resource of the first 1,000")
