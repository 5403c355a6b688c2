"""Data-quality findings after ingest: on the data owner's screen and in the internal report only."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from privsynth.pipeline import read_view, synthesize
from privsynth.schema import load_schema
from tests.conftest import SCHEMA


@pytest.fixture(scope="module")
def exports(tmp_path_factory):
    """The example hospital as it is, with its lab codes replaced by local ones, and with only Patients."""
    from privsynth.example.hospital import write_example_export

    tmp = tmp_path_factory.mktemp("quality")
    clean = write_example_export(tmp / "clean", 150, 7)
    local, patients = tmp / "local-codes", tmp / "patients-only"
    local.mkdir()
    patients.mkdir()
    for path in sorted(clean.glob("*.json")):
        bundle = json.loads(path.read_text())
        for entry in bundle["entry"]:
            r = entry["resource"]
            if r["resourceType"] == "Observation":
                for coding in r["code"]["coding"]:
                    coding["system"], coding["code"] = "http://hospital.example/lab", "L" + coding["code"]
        (local / path.name).write_text(json.dumps(bundle))
        bundle["entry"] = [e for e in bundle["entry"] if e["resource"]["resourceType"] == "Patient"]
        (patients / path.name).write_text(json.dumps(bundle))
    return clean, local, patients


def _findings(path):
    _, ingest = read_view([path], load_schema(SCHEMA))
    return [f.as_dict() for f in ingest.data_quality]


def test_a_clean_export_has_no_findings(exports):
    assert _findings(exports[0]) == []


def test_lab_codes_that_match_nothing_are_named_with_a_hint(exports):
    found = _findings(exports[1])
    never = [f for f in found if f["kind"] == "never present"]
    assert len(never) == 1 and never[0]["subject"].endswith("Observation column(s)")
    assert "hba1c" in never[0]["message"] and "LOINC" in never[0]["hint"]
    assert all(f["kind"] != "resource type absent" for f in found)


def test_an_export_of_patients_only_says_which_resources_are_missing(exports):
    found = _findings(exports[2])
    absent = {f["subject"] for f in found if f["kind"] == "resource type absent"}
    assert absent == {"Condition", "Observation", "Encounter", "MedicationRequest", "Procedure"}


def test_findings_reach_the_screen_and_the_internal_report_never_the_output(exports, tmp_path):
    proc = subprocess.run([sys.executable, "-m", "privsynth", "synthesize", str(exports[1]), "--schema", str(SCHEMA),
                           "--epsilon", "1", "--out", str(tmp_path / "out")], capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr
    assert "data quality:" in proc.stderr and "LOINC" in proc.stderr
    internal = json.loads((tmp_path / "out.internal.json").read_text())
    assert internal["ingest"]["data_quality"]
    for path in (tmp_path / "out").rglob("*"):
        if path.is_file():
            assert b"data_quality" not in path.read_bytes() and b"LOINC lists" not in path.read_bytes()


def test_synthesize_returns_the_findings(exports, tmp_path):
    seen = []
    result = synthesize([exports[2]], load_schema(SCHEMA), tmp_path / "out", epsilon=1.0, rows=20, notice=seen.append)
    assert len(result.findings) == len(seen) >= 5
