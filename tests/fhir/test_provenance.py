"""Every synthetic resource is marked as test data (meta.security HTEST) and each output carries
a Provenance saying how it was made (issue 22)."""

from __future__ import annotations

import json

import pytest

from privsynth.formats import Output
from privsynth.pipeline import read_view
from privsynth.records import write_fhir_output

NOW = "2024-01-01T00:00:00+00:00"


@pytest.fixture(scope="module")
def rows(core_schema, tmp_path_factory):
    from privsynth.example.hospital import write_example_export

    export = write_example_export(tmp_path_factory.mktemp("prov") / "export", 40, 3)
    view, _ = read_view([export], core_schema)
    return view.reset_index(drop=True)


def _htest(resource):
    return any(s.get("code") == "HTEST" and s.get("system", "").endswith("v3-ActReason")
               for s in resource.get("meta", {}).get("security", []))


def test_ndjson_resources_are_marked_and_one_provenance_names_every_patient(rows, core_schema, tmp_path):
    write_fhir_output(tmp_path, rows, core_schema, Output("ndjson", 3, NOW, 1.0, 1e-6, "r-1"))
    resources = [json.loads(line) for path in (tmp_path / "fhir").glob("*.ndjson")
                 for line in path.read_text().splitlines()]
    assert resources and all(_htest(r) for r in resources)
    [prov] = [r for r in resources if r["resourceType"] == "Provenance"]
    patients = {r["id"] for r in resources if r["resourceType"] == "Patient"}
    assert {t["reference"].split("/", 1)[1] for t in prov["target"]} == patients and len(patients) == 40
    facts = {e["url"]: next(v for k, v in e.items() if k.startswith("value"))
             for e in prov["extension"][0]["extension"]}
    assert facts == {"epsilon": 1.0, "delta": 1e-6, "privacyUnit": "patient", "release": "r-1"}
    assert prov["agent"][0]["who"]["display"].startswith("privsynth ")
    manifest = json.loads((tmp_path / "fhir" / "manifest.json").read_text())
    assert {"type": "Provenance", "url": "Provenance.ndjson", "count": 1} in manifest["output"]


def test_each_bundle_carries_its_own_provenance_resolved_inside_it(rows, core_schema, tmp_path):
    write_fhir_output(tmp_path, rows, core_schema, Output("bundle", 3, NOW, 1.0, 1e-6))
    bundles = [json.loads(p.read_text()) for p in (tmp_path / "fhir").glob("*.json")]
    assert len(bundles) == 40
    for bundle in bundles:
        entries = {e["fullUrl"]: e["resource"] for e in bundle["entry"]}
        assert all(_htest(r) for r in entries.values())
        [prov] = [r for r in entries.values() if r["resourceType"] == "Provenance"]
        [target] = prov["target"]
        assert entries[target["reference"]]["resourceType"] == "Patient"
        assert not any(e["url"] == "release" for e in prov["extension"][0]["extension"])  # synthesize: no release
