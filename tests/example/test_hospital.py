"""Tests for the example hospital export: determinism, FHIR R4 validity, structure, correlations.

Bundles are read back with plain ``json`` so the checks do not depend on privsynth's own reader.
"""

from __future__ import annotations

import datetime as dt
import json
import statistics
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from faker import Faker
from fhir.resources.R4B import get_fhir_model_class

from privsynth.example.hospital import REFERENCE_DATE, example_bundle, write_example_export

Resource = dict[str, Any]
REF = dt.datetime.combine(REFERENCE_DATE, dt.time(), dt.UTC)
DATETIME_FIELDS = ("deceasedDateTime", "onsetDateTime", "abatementDateTime", "recordedDate",
                   "effectiveDateTime", "authoredOn")

DIABETES, PREDIABETES, OBESITY = "44054006", "15777000", "162864005"
HEART_FAILURE, PROSTATE, BREAST, LOCAL = "88805009", "126906006", "254837009", "999999001"


def _load(directory: Path) -> list[list[Resource]]:
    bundles = []
    for path in sorted(directory.glob("*.json")):
        bundle = json.loads(path.read_text(encoding="utf-8"))
        assert bundle["resourceType"] == "Bundle" and bundle["type"] == "transaction"
        assert path.stem == bundle["entry"][0]["resource"]["id"]
        bundles.append([entry["resource"] for entry in bundle["entry"]])
    return bundles


def _when(text: str) -> dt.datetime:
    value = dt.datetime.fromisoformat(text)
    assert value.utcoffset() is not None, f"{text!r} has no UTC offset"
    return value


def _conditions(resources: list[Resource]) -> set[str]:
    return {r["code"]["coding"][0]["code"] for r in resources if r["resourceType"] == "Condition"}


def _latest(resources: list[Resource], loinc: str) -> float | None:
    found = [r for r in resources if r["resourceType"] == "Observation"
             and r["code"]["coding"][0]["code"] == loinc]
    if not found:
        return None
    return float(max(found, key=lambda r: _when(r["effectiveDateTime"]))["valueQuantity"]["value"])


def _age(patient: Resource) -> int:
    birth = dt.date.fromisoformat(patient["birthDate"])
    return REFERENCE_DATE.year - birth.year - ((REFERENCE_DATE.month, REFERENCE_DATE.day)
                                               < (birth.month, birth.day))


def _count(resources: list[Resource], cls: str) -> int:
    return sum(1 for r in resources if r["resourceType"] == "Encounter" and r["class"]["code"] == cls)


def _rate(flags: list[bool]) -> float:
    assert flags, "empty group"
    return sum(flags) / len(flags)


@pytest.fixture(scope="module")
def population(tmp_path_factory: pytest.TempPathFactory) -> list[list[Resource]]:
    out = write_example_export(tmp_path_factory.mktemp("population"), n_patients=1000, seed=7)
    bundles = _load(out)
    assert len(bundles) == 1000
    return bundles


def test_same_seed_gives_byte_identical_files(tmp_path: Path) -> None:
    first = write_example_export(tmp_path / "a", n_patients=30, seed=3)
    second = write_example_export(tmp_path / "b", n_patients=30, seed=3)
    names = sorted(p.name for p in first.glob("*.json"))
    assert len(names) == 30
    assert names == sorted(p.name for p in second.glob("*.json"))
    for name in names:
        assert (first / name).read_bytes() == (second / name).read_bytes()


def test_different_seed_gives_different_export(tmp_path: Path) -> None:
    first = write_example_export(tmp_path / "a", n_patients=10, seed=1)
    second = write_example_export(tmp_path / "b", n_patients=10, seed=2)
    assert not {p.name for p in first.glob("*.json")} & {p.name for p in second.glob("*.json")}
    patients_a = [b[0] for b in _load(first)]
    patients_b = [b[0] for b in _load(second)]
    assert [p["birthDate"] for p in patients_a] != [p["birthDate"] for p in patients_b]
    assert [p["name"] for p in patients_a] != [p["name"] for p in patients_b]


def test_progress_and_output_dir_creation(tmp_path: Path) -> None:
    calls: list[tuple[int, int]] = []
    out = write_example_export(tmp_path / "nested" / "dir", n_patients=5, seed=0,
                               progress=lambda done, total: calls.append((done, total)))
    assert out == tmp_path / "nested" / "dir"
    assert calls == [(i, 5) for i in range(1, 6)]
    assert len(list(out.glob("*.json"))) == 5


def test_example_bundle_is_deterministic_given_rng_and_faker() -> None:
    def make() -> Resource:
        fake = Faker("en_US")
        fake.seed_instance(11)
        return example_bundle(0, np.random.default_rng(11), fake, REFERENCE_DATE)

    assert make() == make()


def test_every_resource_validates_with_r4b_models(tmp_path: Path) -> None:
    out = write_example_export(tmp_path, n_patients=50, seed=5)
    seen: set[str] = set()
    for path in sorted(out.glob("*.json")):
        bundle = json.loads(path.read_text(encoding="utf-8"))
        get_fhir_model_class("Bundle").model_validate(bundle)
        for entry in bundle["entry"]:
            resource = entry["resource"]
            get_fhir_model_class(resource["resourceType"]).model_validate(resource)
            seen.add(resource["resourceType"])
    assert {"Patient", "Condition", "Observation", "Encounter", "MedicationRequest",
            "Procedure"} <= seen


def test_bundle_structure_references_and_times(tmp_path: Path) -> None:
    out = write_example_export(tmp_path, n_patients=60, seed=9)
    for path in sorted(out.glob("*.json")):
        bundle = json.loads(path.read_text(encoding="utf-8"))
        patients = [e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == "Patient"]
        assert len(patients) == 1
        patient = patients[0]
        birth = dt.datetime.combine(dt.date.fromisoformat(patient["birthDate"]), dt.time(), dt.UTC)
        end = _when(patient["deceasedDateTime"]) if "deceasedDateTime" in patient else REF
        assert birth < end <= REF
        assert 0 <= _age(patient) <= 100
        ids = [e["resource"]["id"] for e in bundle["entry"]]
        assert len(set(ids)) == len(ids)
        encounters = {e["fullUrl"] for e in bundle["entry"] if e["resource"]["resourceType"] == "Encounter"}
        for entry in bundle["entry"]:
            resource = entry["resource"]
            assert entry["fullUrl"] == f"urn:uuid:{resource['id']}"
            assert entry["request"] == {"method": "POST", "url": resource["resourceType"]}
            if resource["resourceType"] != "Patient":
                assert resource["subject"] == {"reference": f"urn:uuid:{patient['id']}"}
            # the patient, and the encounter it was recorded in: both in the bundle
            assert _references(resource) <= {f"urn:uuid:{patient['id']}", *encounters}
            if resource["resourceType"] not in ("Patient", "Encounter"):
                assert resource["encounter"]["reference"] in encounters
            for name in DATETIME_FIELDS:
                if name in resource:
                    assert birth < _when(resource[name]) <= end, (resource["resourceType"], name)
            for name in ("period", "performedPeriod"):
                if name in resource:
                    start, stop = _when(resource[name]["start"]), _when(resource[name]["end"])
                    assert birth < start <= stop <= end
            if resource["resourceType"] == "Encounter":
                assert isinstance(resource["class"], dict)
                assert resource["class"]["code"] in {"AMB", "EMER", "IMP", "HH"}
            if resource["resourceType"] == "Observation":
                _check_observation(resource)


def _references(value: Any) -> set[str]:
    if isinstance(value, dict):
        found = {value["reference"]} if isinstance(value.get("reference"), str) else set()
        return found.union(*(_references(v) for v in value.values()))
    if isinstance(value, list):
        return set().union(*(_references(v) for v in value))
    return set()


def _check_observation(obs: Resource) -> None:
    assert obs["status"] == "final"
    category = obs["category"][0]["coding"][0]
    assert category["system"] == "http://terminology.hl7.org/CodeSystem/observation-category"
    assert category["code"] in {"vital-signs", "laboratory"}
    assert obs["code"]["coding"][0]["system"] == "http://loinc.org"
    quantities = ([c["valueQuantity"] for c in obs["component"]] if "component" in obs
                  else [obs["valueQuantity"]])
    if obs["code"]["coding"][0]["code"] == "55284-4":
        assert "valueQuantity" not in obs
        assert [c["code"]["coding"][0]["code"] for c in obs["component"]] == ["8480-6", "8462-4"]
    for quantity in quantities:
        assert quantity["system"] == "http://unitsofmeasure.org"
        assert quantity["unit"] == quantity["code"]
        assert quantity["value"] > 0


def test_patient_demographics(population: list[list[Resource]]) -> None:
    patients = [b[0] for b in population]
    assert all(p["resourceType"] == "Patient" for p in patients)
    states = [p["address"][0]["state"] for p in patients]
    assert 0.6 < states.count("MA") / len(states) < 0.8
    assert set(states) <= {"MA", "NH", "RI", "CT", "NY", "VT", "ME"}
    deceased = [p for p in patients if "deceasedDateTime" in p]
    assert 0.05 < len(deceased) / len(patients) < 0.16
    assert "deceasedBoolean" not in str(patients)
    alive = [p for p in patients if "deceasedDateTime" not in p]
    assert statistics.mean(map(_age, deceased)) > statistics.mean(map(_age, alive)) + 15
    ages = [_age(p) for p in patients]
    assert min(ages) < 5 and max(ages) > 85 and 30 < statistics.mean(ages) < 50
    for p in patients:
        systems = {i["system"]: i for i in p["identifier"]}
        mrn = systems["http://hospital.example.org/mrn"]
        assert mrn["type"]["coding"][0]["code"] == "MR"
        assert systems["http://hl7.org/fhir/sid/us-ssn"]["value"].startswith("999-")
        assert p["gender"] in {"male", "female"}
        assert p["maritalStatus"]["coding"][0]["code"] in {"M", "S", "D", "W"}
        urls = {e["url"]: e for e in p["extension"]}
        race = urls["http://hl7.org/fhir/us/core/StructureDefinition/us-core-race"]["extension"]
        assert race[0]["valueCoding"]["system"] == "urn:oid:2.16.840.1.113883.6.238"
        assert race[1] == {"url": "text", "valueString": race[0]["valueCoding"]["display"]}
        assert "http://hl7.org/fhir/us/core/StructureDefinition/us-core-ethnicity" in urls
    assert len({p["identifier"][0]["value"] for p in patients}) == len(patients)


def test_age_and_risk_factor_correlations(population: list[list[Resource]]) -> None:
    rows = [(_age(b[0]), _conditions(b), b) for b in population]
    old = [DIABETES in c for a, c, _ in rows if a >= 60]
    young = [DIABETES in c for a, c, _ in rows if a < 40]
    assert _rate(old) > _rate(young) + 0.10
    obese = [DIABETES in c for a, c, _ in rows if a >= 18 and OBESITY in c]
    lean = [DIABETES in c for a, c, _ in rows if a >= 18 and OBESITY not in c]
    assert _rate(obese) > _rate(lean) + 0.05
    assert _rate([HEART_FAILURE in c for a, c, _ in rows if a >= 70]) > 0.05
    assert not any(HEART_FAILURE in c for a, c, _ in rows if a < 18)
    genders = {b[0]["id"]: b[0]["gender"] for _, _, b in rows}
    assert all(genders[b[0]["id"]] == "male" for _, c, b in rows if PROSTATE in c)
    breast = [genders[b[0]["id"]] for _, c, b in rows if BREAST in c]
    assert breast.count("female") > breast.count("male")
    local = sum(LOCAL in c for _, c, _ in rows)
    assert 1 <= local <= 30
    acute = sum(bool({"444814009", "10509002"} & c) for _, c, _ in rows)
    assert acute > 200


def test_observation_correlations(population: list[list[Resource]]) -> None:
    diabetic: list[float] = []
    other: list[float] = []
    child_heights: list[float] = []
    adult_heights: list[float] = []
    labbed_adults, adults = 0, 0
    for bundle in population:
        conditions, age = _conditions(bundle), _age(bundle[0])
        a1c = _latest(bundle, "4548-4")
        if a1c is not None:
            (diabetic if DIABETES in conditions else other).append(a1c)
        birth = dt.datetime.combine(dt.date.fromisoformat(bundle[0]["birthDate"]), dt.time(), dt.UTC)
        for r in bundle:
            if r["resourceType"] == "Observation" and r["category"][0]["coding"][0]["code"] == "laboratory":
                assert (_when(r["effectiveDateTime"]) - birth).days >= 17 * 365, "lab for a child"
        height = _latest(bundle, "8302-2")
        assert height is not None and _latest(bundle, "39156-5") is not None
        if age < 10 and "deceasedDateTime" not in bundle[0]:
            child_heights.append(height)
        elif age >= 25:
            adult_heights.append(height)
        if age >= 25:
            adults += 1
            labbed_adults += a1c is not None
    assert statistics.mean(diabetic) > statistics.mean(other) + 1.0
    assert 0.5 < labbed_adults / adults < 0.9
    assert max(child_heights) < 170 and statistics.mean(child_heights) < 130
    assert 155 < statistics.mean(adult_heights) < 180


def test_utilisation_correlations(population: list[list[Resource]]) -> None:
    amb_old = [_count(b, "AMB") for b in population if _age(b[0]) >= 65]
    amb_young = [_count(b, "AMB") for b in population if 18 <= _age(b[0]) < 40]
    assert statistics.mean(amb_old) > statistics.mean(amb_young) + 5
    assert max(_count(b, "AMB") for b in population) <= 150
    assert max(_count(b, "EMER") for b in population) <= 5
    with_hf = [_count(b, "IMP") for b in population if HEART_FAILURE in _conditions(b)]
    without = [_count(b, "IMP") for b in population if HEART_FAILURE not in _conditions(b)]
    assert statistics.mean(with_hf) > statistics.mean(without) + 0.5
    meds = {b[0]["id"]: {r["medicationCodeableConcept"]["coding"][0]["code"]
                         for r in b if r["resourceType"] == "MedicationRequest"} for b in population}
    diabetics = [b[0]["id"] for b in population if DIABETES in _conditions(b)]
    assert _rate(["860975" in meds[i] for i in diabetics]) > 0.7
    non_diabetics = [b[0]["id"] for b in population if DIABETES not in _conditions(b)]
    assert not any("860975" in meds[i] for i in non_diabetics)
