"""The whole path on the 200 shared Bundles: valid R4 out, nothing leaked, budget kept."""

from __future__ import annotations

import gzip
import json
import re

import orjson
import pytest

from privsynth.fhir.output import check
from privsynth.pipeline import synthesize
from tests.conftest import BUNDLES, need_shared

UUID = re.compile(rb"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def _all_output_bytes(out) -> bytes:
    return b"\n".join(p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file())


def test_every_output_resource_validates_as_r4(synthea_release):
    fhir = synthea_release.out / "fhir"
    manifest = json.loads((fhir / "manifest.json").read_text())
    total = 0
    for item in manifest["output"]:
        lines = (fhir / item["url"]).read_bytes().splitlines()
        assert len(lines) == item["count"]
        for line in lines:
            resource = orjson.loads(line)
            assert resource["resourceType"] == item["type"]
            check(resource)  # raises on any invalid resource
            total += 1
    assert {"Patient", "Condition", "Observation", "Encounter"} <= {i["type"] for i in manifest["output"]}
    assert total == sum(synthea_release.resources_out.values())


def test_about_200_patients_and_consistent_references(synthea_release):
    fhir = synthea_release.out / "fhir"
    patients = [orjson.loads(x) for x in (fhir / "Patient.ndjson").read_bytes().splitlines()]
    assert 120 <= len(patients) <= 280  # a DP estimate of 200 at epsilon 1
    ids = {p["id"] for p in patients}
    for rtype in ("Condition", "Observation", "Encounter"):
        for line in (fhir / f"{rtype}.ndjson").read_bytes().splitlines():
            ref = orjson.loads(line)["subject"]["reference"]
            assert ref.startswith("Patient/") and ref.split("/", 1)[1] in ids


def test_budget_spent_equals_budget_allowed(synthea_release):
    privacy = json.loads((synthea_release.out / "privacy.json").read_text())
    assert privacy["rho_spent"] <= privacy["rho_total"]
    assert privacy["rho_spent"] == pytest.approx(privacy["rho_total"], rel=1e-6)
    assert sum(m["rho"] for m in privacy["measurements"]) == pytest.approx(privacy["rho_spent"], rel=1e-12)
    # the generator's tunables are recorded with the release they shaped (issue 20)
    from dataclasses import asdict

    from privsynth.generator.aim import AIM_SETTINGS

    assert privacy["generator"] == "aim" and privacy["generator_settings"] == json.loads(
        json.dumps(asdict(AIM_SETTINGS)))


def test_no_input_identifier_reaches_the_output(synthea_release):
    need_shared()
    uuids: set[bytes] = set()
    strings: set[str] = set()
    for path in BUNDLES.glob("*.json.gz"):
        bundle = json.load(gzip.open(path, "rt", encoding="utf-8"))
        for entry in bundle["entry"]:
            resource = entry["resource"]
            uuids.add(resource["id"].encode())
            uuids.add(entry["fullUrl"].removeprefix("urn:uuid:").encode())
            if resource["resourceType"] != "Patient":
                continue
            strings.update(i["value"] for i in resource.get("identifier", []))
            strings.update(t["value"] for t in resource.get("telecom", []))
            for name in resource.get("name", []):
                strings.add(" ".join(name.get("given", []) + [name.get("family", "")]))
            for address in resource.get("address", []):
                strings.update(address.get("line", []))
    blob = _all_output_bytes(synthea_release.out)
    assert len(uuids) > 60_000 and len(strings) > 1_000
    assert not (set(UUID.findall(blob)) & uuids)
    leaked = [s for s in strings if len(s) >= 6 and s.encode() in blob]
    assert leaked == []


def test_data_only_codes_never_appear_in_output(core_schema, tmp_path):
    """Categories that exist only in the data go to 'other'; the output never shows them."""
    need_shared()
    src = tmp_path / "in"
    src.mkdir()
    for k, path in enumerate(sorted(BUNDLES.glob("*.json.gz"))[:60]):
        bundle = json.load(gzip.open(path, "rt", encoding="utf-8"))
        for entry in bundle["entry"]:
            r = entry["resource"]
            if r["resourceType"] == "Patient":
                r["maritalStatus"] = {"coding": [{"system": "urn:local", "code": "ZQXMARITAL"}]}
                r["address"][0]["state"] = "Atlantis-Province"
        (src / f"{k}.json").write_bytes(orjson.dumps(bundle))
    result = synthesize([src], core_schema, tmp_path / "out", epsilon=2.0, rows=300, seed=1)
    blob = _all_output_bytes(result.out)
    assert b"ZQXMARITAL" not in blob and b"Atlantis" not in blob
    internal = json.loads(result.internal_report.read_text())
    assert internal["encoding"]["mapped_to_other"]["marital_status"] == 60
    assert internal["encoding"]["mapped_to_other"]["state"] == 60
    assert "unknown_mapped_to_missing" in internal["encoding"]


def test_internal_report_is_outside_the_shareable_directory(synthea_release):
    assert synthea_release.internal_report.exists()
    assert synthea_release.out not in synthea_release.internal_report.parents
    shareable = _all_output_bytes(synthea_release.out)
    assert b"INTERNAL" not in shareable and b"resources_read" not in shareable


def test_bundle_format_writes_one_valid_transaction_bundle_per_patient(core_schema, tmp_path):
    need_shared()
    files = sorted(BUNDLES.glob("*.json.gz"))[:20]
    result = synthesize(files, core_schema, tmp_path / "out", epsilon=1.0, rows=25, output_format="bundle")
    bundles = sorted((result.out / "fhir").glob("*.json"))
    assert len(bundles) == 25 and result.resources_out == {"Bundle": 25}
    for path in bundles:
        bundle = orjson.loads(path.read_bytes())
        check(bundle)
        patient = bundle["entry"][0]["resource"]
        assert patient["resourceType"] == "Patient" and path.stem == patient["id"]
        refs = {e["resource"]["subject"]["reference"] for e in bundle["entry"][1:]
                if e["resource"]["resourceType"] != "Provenance"}
        assert refs <= {f"urn:uuid:{patient['id']}"}
        [provenance] = [e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == "Provenance"]
        assert provenance["target"] == [{"reference": f"urn:uuid:{patient['id']}"}]


def test_a_failed_run_leaves_no_partial_output(core_schema, tmp_path, monkeypatch):
    need_shared()
    import privsynth.fhir.output as output

    calls = {"n": 0}

    def broken(resource):
        calls["n"] += 1
        if calls["n"] > 50:
            raise RuntimeError("disk on fire")
        return check(resource)

    monkeypatch.setattr(output, "check", broken)
    with pytest.raises(RuntimeError):
        synthesize(sorted(BUNDLES.glob("*.json.gz"))[:10], core_schema, tmp_path / "out", epsilon=1.0, rows=30)
    assert list(tmp_path.iterdir()) == []


def test_existing_output_directory_is_refused_before_reading(core_schema, tmp_path):
    from privsynth.errors import OutputError

    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "keep.txt").write_text("x")
    with pytest.raises(OutputError, match="already exists"):
        synthesize([tmp_path / "nowhere"], core_schema, tmp_path / "out", epsilon=1.0)


def test_two_default_runs_share_no_synthetic_identity(core_schema, tmp_path):
    """Without --seed each run draws a fresh post-processing seed (recorded in privacy.json):
    merging two releases never collides on Patient ids or MRNs, and their names differ."""
    import pandas as pd

    need_shared()
    files = sorted(BUNDLES.glob("*.json.gz"))[:20]
    runs = [synthesize(files, core_schema, tmp_path / f"out{k}", epsilon=1.0, rows=60) for k in range(2)]
    tables = [pd.read_csv(r.out / "patients.csv", dtype=str) for r in runs]
    ids = [{json.loads(line)["id"] for line in (r.out / "fhir" / "Patient.ndjson").read_text().splitlines()}
           for r in runs]
    assert len(ids[0]) == 60 and not ids[0] & ids[1]
    assert not set(tables[0]["mrn"]) & set(tables[1]["mrn"])
    assert list(tables[0]["name"]) != list(tables[1]["name"])
    seeds = [json.loads((r.out / "privacy.json").read_text())["seed"] for r in runs]
    assert seeds[0] != seeds[1]  # recorded: it only ever touched DP output
