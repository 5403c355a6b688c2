"""The command line: exit codes, one-line errors, no tracebacks, no patient values."""

from __future__ import annotations

import gzip
import json
import subprocess
import sys

import pytest

from tests.conftest import BUNDLES, SCHEMA, need_shared

SENTINEL = "Zebulonsentinel"
PATIENT = {"resourceType": "Patient", "id": "p1", "gender": "female", "birthDate": "1970-01-01",
           "name": [{"family": SENTINEL, "given": ["Quillon"]}],
           "identifier": [{"system": "urn:x", "value": "SENTINEL-ID-991"}]}


def run(*args: str):
    return subprocess.run([sys.executable, "-m", "privsynth", *args], capture_output=True, text=True,
                          timeout=600)


def synth(inputs, out):
    return run("synthesize", *map(str, inputs), "--schema", str(SCHEMA), "--epsilon", "1", "--out", str(out))


def check_error(proc, *words):
    text = proc.stdout + proc.stderr
    assert proc.returncode == 2, text
    assert "Traceback" not in text
    errors = [line for line in proc.stderr.splitlines() if line.startswith("privsynth: error:")]
    assert len(errors) == 1, proc.stderr
    for word in words:
        assert word in errors[0], errors[0]
    assert SENTINEL not in text and "SENTINEL-ID" not in text and "Quillon" not in text
    return errors[0]


def bundle(*resources):
    return {"resourceType": "Bundle", "type": "collection",
            "entry": [{"fullUrl": f"urn:uuid:{r.get('id', 'x')}", "resource": r} for r in resources]}


def test_truncated_json(tmp_path):
    text = json.dumps(bundle(PATIENT), indent=2)
    (tmp_path / "cut.json").write_text(text[: len(text) // 2])
    check_error(synth([tmp_path], tmp_path / "o"), "cut.json:", "malformed JSON")


def test_truncated_real_gzip_bundle(tmp_path):
    need_shared()
    raw = gzip.open(next(BUNDLES.glob("*.json.gz"))).read()
    (tmp_path / "cut.json.gz").write_bytes(gzip.compress(raw[:5000]))
    check_error(synth([tmp_path], tmp_path / "o"), "cut.json.gz:", "malformed JSON")


def test_json_that_is_not_fhir(tmp_path):
    (tmp_path / "x.json").write_text(json.dumps({"patientName": SENTINEL}))
    check_error(synth([tmp_path], tmp_path / "o"), "x.json", "not a FHIR resource", "resourceType")


def test_r5_shaped_encounter(tmp_path):
    enc = {"resourceType": "Encounter", "id": "e1", "status": "completed",
           "class": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"}]}],
           "subject": {"reference": "urn:uuid:p1"}}
    (tmp_path / "r5.json").write_text(json.dumps(bundle(PATIENT, enc)))
    check_error(synth([tmp_path], tmp_path / "o"), "r5.json", "entry[1]", "Encounter.class", "R5")


def test_unknown_resource_type(tmp_path):
    lines = [json.dumps(PATIENT), json.dumps({"resourceType": "Patientish", "id": "q"})]
    (tmp_path / "Patient.ndjson").write_text("\n".join(lines) + "\n")
    check_error(synth([tmp_path], tmp_path / "o"), "Patient.ndjson:2", "resourceType", "not a FHIR R4")


def test_resource_without_subject(tmp_path):
    cond = {"resourceType": "Condition", "id": "c1",
            "code": {"coding": [{"system": "http://snomed.info/sct", "code": "44054006"}]}}
    (tmp_path / "Patient.ndjson").write_text(json.dumps(PATIENT) + "\n")
    (tmp_path / "Condition.ndjson").write_text(json.dumps(cond) + "\n")
    check_error(synth([tmp_path], tmp_path / "o"), "Condition.ndjson:1", "Condition.subject", "missing")


def test_non_utf8_bytes(tmp_path):
    data = json.dumps(PATIENT).encode().replace(SENTINEL.encode(), b"Zeb\xff\xfeulon")
    (tmp_path / "Patient.ndjson").write_bytes(data + b"\n")
    check_error(synth([tmp_path], tmp_path / "o"), "Patient.ndjson:1", "not UTF-8")


def test_empty_directory(tmp_path):
    (tmp_path / "empty").mkdir()
    check_error(synth([tmp_path / "empty"], tmp_path / "o"), "no FHIR files found")


def test_schema_with_a_typo(tmp_path):
    text = SCHEMA.read_text().replace("summary: exists", "sumary: exists", 1)
    bad = tmp_path / "typo.yaml"
    bad.write_text(text)
    line = check_error(run("schema", "check", str(bad)), "typo.yaml:", "sumary", "Did you mean 'summary'")
    assert line.split("typo.yaml:")[1].split(":")[0].isdigit()


def test_skip_bad_input_counts_instead_of_stopping(tmp_path):
    (tmp_path / "Patient.ndjson").write_text(json.dumps(PATIENT) + "\n{not json\n")
    out = tmp_path / "o"
    proc = run("synthesize", str(tmp_path), "--schema", str(SCHEMA), "--epsilon", "1", "--rows", "5",
               "--out", str(out), "--skip-bad-input")
    assert proc.returncode == 0, proc.stderr
    report = json.loads((tmp_path / "o.internal.json").read_text())
    assert report["ingest"]["errors_skipped"] == {"malformed JSON": 1}


def test_schema_check_ok():
    proc = run("schema", "check", str(SCHEMA))
    assert proc.returncode == 0, proc.stderr
    assert "OK:" in proc.stdout and "59 columns" in proc.stdout
    assert "timeline" not in proc.stdout


def test_schema_check_lists_the_timeline_streams_and_their_bounds():
    import os

    wide = {**os.environ, "COLUMNS": "240"}  # the tables unwrapped
    proc = subprocess.run([sys.executable, "-m", "privsynth", "schema", "check",
                           str(SCHEMA.parent / "patient-timeline.yaml")], capture_output=True, text=True, env=wide,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr
    assert "timeline: 4 event streams" in proc.stdout
    for stream in ("encounters", "labs", "medications", "procedures"):
        assert stream in proc.stdout
    assert "OK:" in proc.stdout and "127 columns, 121 learned" in proc.stdout
    assert "hba1c (around diabetes: at and after)" in proc.stdout  # at the diagnosis and a year later


@pytest.mark.parametrize("args", [pytest.param(["synthesize"], id="no-input"),
                                  pytest.param(["frobnicate"], id="unknown-command")])
def test_usage_errors_exit_2(args):
    proc = run(*args)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr


def test_demo_runs_end_to_end(tmp_path):
    out = tmp_path / "demo"
    proc = run("demo", "--out", str(out), "--patients", "120", "--seed", "3")
    assert proc.returncode == 0, proc.stderr
    manifest = json.loads((out / "fhir" / "manifest.json").read_text())
    assert {o["type"] for o in manifest["output"]} >= {"Patient", "Condition", "Observation", "Encounter"}
    assert (out / "patients.csv").exists() and (out / "privacy.json").exists()
    assert (tmp_path / "demo.internal.json").exists()
    assert "rho spent / allowed" in proc.stdout


def test_a_huge_domain_is_refused_by_schema_check_and_before_reading(tmp_path):
    text = SCHEMA.read_text()
    systolic, diastolic = ("bins: [60, 90, 110, 120, 130, 140, 160, 180, 250]",
                           "bins: [30, 60, 70, 80, 90, 100, 110, 150]")
    assert systolic in text and diastolic in text
    huge = tmp_path / "huge.yaml"  # two numbers of 4 M bins each: 72 M cells with their within-bin detail
    huge.write_text(text.replace(systolic, "bins: 4000000", 1).replace(diastolic, "bins: 4000000", 1))
    check_error(run("schema", "check", str(huge)), "huge.yaml:", "needs at least", "cells", "above the limit")
    # refused before the (missing) input is even looked at
    check_error(run("synthesize", str(tmp_path / "no-such-export"), "--schema", str(huge), "--epsilon", "1",
                    "--out", str(tmp_path / "o")), "above the limit of 50,000,000")
    ok = run("schema", "check", str(huge), "--max-model-cells", "100000000")
    assert ok.returncode == 0 and "OK:" in ok.stdout, ok.stderr



def test_progress_off_a_terminal_prints_a_line_every_few_seconds_with_an_eta(monkeypatch, capsys):
    """A piped run shows where it is: a line per stage every PROGRESS_EVERY seconds (a fake
    clock here, no waiting) with the time left, and one when the stage ends."""
    import privsynth.cli.app as cli

    clock = iter([0.0, 1.0, 6.0, 7.0, 12.5, 13.0])
    monkeypatch.setattr(cli.time, "monotonic", lambda: next(clock))
    monkeypatch.delenv("PRIVSYNTH_PROGRESS", raising=False)
    with cli.progress_bar() as progress:
        for done in (0, 10, 30, 40, 60, 100):
            progress("write FHIR", done, 100)
    lines = [line.strip() for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert lines == ["write FHIR: 30/100, about 14 s left", "write FHIR: 60/100, about 8 s left",
                     "write FHIR: 100/100 done in 13 s"]


def test_the_gate_is_one_line_per_check_off_a_terminal():
    """On a pipe the verdicts are plain lines, never a table wrapped into 80 columns."""
    import io

    from rich.console import Console

    from privsynth.audit.result import AuditResult, Check
    from privsynth.cli.app import print_verdicts

    long_rule = "fails if " + "a very long rule " * 12
    result = AuditResult((Check("re-identification", "exact matches", 0.0, (0.0, 0.01), long_rule, True,
                                "detail " * 20), Check("coherence", "rules", float("inf"), None, "r", True)), {})
    buffer = io.StringIO()
    print_verdicts(Console(file=buffer, width=80, force_terminal=False), result, "release audit")
    lines = buffer.getvalue().splitlines()
    assert lines[0] == "release audit" and len(lines) == 3
    assert lines[1].startswith("pass  re-identification: exact matches = 0") and long_rule.strip() in lines[1]
    assert lines[2].startswith("FAIL  coherence: rules = inf")
