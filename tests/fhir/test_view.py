"""Ingest: every shared file reads; one patient's values checked by hand."""

from __future__ import annotations

import pytest

from privsynth.fhir.view import build_patient_view
from tests.conftest import BUNDLES, FHIR_2019, NDJSON, need_shared

ADDIE = "4c875c3c-b4d6-4f6d-aabe-5ddc24892adc.json.gz"  # female, born 1992-03-30, see MANIFEST.tsv


def test_all_200_bundles_and_aux_files(synthea_view):
    frame, report = synthea_view
    assert len(frame) == 200
    assert report.files_read == 202  # 200 patient bundles + 2 aux bundles (organisations, practitioners)
    assert report.resources_read["Patient"] == 200
    assert report.resources_read["Observation"] == 28533
    assert sum(report.unresolved_patient.values()) == 0
    assert frame["gender"].value_counts().to_dict() == {"male": 106, "female": 94}
    assert int(frame["deceased"].sum()) == 48
    assert frame["state"].eq("Massachusetts").all()  # raw view: encoding maps the alias to MA


def test_ndjson_sample(core_schema):
    need_shared()
    frame, report = build_patient_view([NDJSON], core_schema)
    assert len(frame) == 13
    assert report.resources_read["Condition"] == 555
    assert report.resources_used["Encounter"] == 1214  # one 'VR' encounter is in no schema class
    assert report.files_skipped == 4  # MANIFEST.tsv, PROFILE.md, PROVENANCE.md, log.ndjson.gz
    assert int(frame["deceased"].sum()) == 3
    assert frame["state"].eq("KS").all()
    assert frame["bmi"].isna().all()  # the sample has no Observation file


def test_one_patient_by_hand(core_schema):
    need_shared()
    frame, _ = build_patient_view([BUNDLES / ADDIE], core_schema)
    row = frame.iloc[0]
    assert row["gender"] == "female"
    assert row["age"] == 31  # 1992-03-30 -> 2024-01-01
    assert row["race"] == "2106-3"
    assert row["marital_status"] == "M"
    assert bool(row["deceased"]) is False
    assert bool(row["hypertension"]) and row["hypertension_onset_age"] == 18  # onset 2010-05-24
    assert not bool(row["diabetes"])
    assert row["bmi"] == pytest.approx(25.68947556390733)  # latest of 4 BMI values (2020-06-08)
    assert (row["encounters_ambulatory"], row["encounters_emergency"], row["encounters_inpatient"]) == (33, 3, 1)
    assert (row["medication_requests"], row["procedures"]) == (7, 99)


def test_urn_uuid_and_relative_references_both_resolve(core_schema):
    need_shared()
    _, bundle_report = build_patient_view([BUNDLES / ADDIE], core_schema)
    _, ndjson_report = build_patient_view([NDJSON], core_schema)
    assert bundle_report.resources_used["Encounter"] == 37
    assert not bundle_report.unresolved_patient and not ndjson_report.unresolved_patient


def test_validate_flag_accepts_real_r4(core_schema):
    need_shared()
    frame, _ = build_patient_view([BUNDLES / ADDIE], core_schema, validate=True)
    assert len(frame) == 1


def test_directory_and_files_give_the_same_view(core_schema):
    need_shared()
    files = sorted(BUNDLES.glob("*.json.gz"))[:5]
    one, _ = build_patient_view(files, core_schema)
    assert len(one) == 5
    assert FHIR_2019.is_dir()


def test_bulk_manifest_is_skipped_and_unread_resources_need_no_subject(core_schema, tmp_path):
    import json

    patient = {"resourceType": "Patient", "id": "p1", "gender": "male", "birthDate": "1950-05-05"}
    unrelated = {"resourceType": "Condition", "id": "c0",  # a code in no group: never read
                 "code": {"coding": [{"system": "http://snomed.info/sct", "code": "444814009"}]}}
    diabetes = {"resourceType": "Condition", "id": "c1", "subject": {"reference": "Patient/p1"},
                "code": {"coding": [{"system": "http://snomed.info/sct", "code": "44054006"}]},
                "onsetDateTime": "2000-05-05T00:00:00+00:00"}
    orphan = dict(diabetes, id="c2", subject={"reference": "Patient/nobody"})
    (tmp_path / "Patient.ndjson").write_text(json.dumps(patient) + "\n")
    (tmp_path / "Condition.ndjson").write_text("\n".join(json.dumps(r) for r in (unrelated, diabetes, orphan)))
    (tmp_path / "manifest.json").write_text(json.dumps({"transactionTime": "2024-01-01", "output": []}))
    frame, report = build_patient_view([tmp_path], core_schema)
    assert report.files_skipped == 1 and report.files_read == 2
    assert bool(frame["diabetes"].iloc[0]) and frame["diabetes_onset_age"].iloc[0] == 50
    assert report.unresolved_patient == {"(reference to a Patient not in the input)": 1}


@pytest.mark.parametrize("same_content", [True, False], ids=["same-patient-twice", "two-patients-one-id"])
def test_two_patient_resources_with_one_id_are_refused_naming_both_files(core_schema, tmp_path, same_content):
    """Merging them would let a neighbour change a row instead of adding one; the error
    names both places and never the id."""
    import json

    from privsynth.errors import InputError

    def bundle(gender: str) -> dict:
        return {"resourceType": "Bundle", "type": "collection", "entry": [{"resource": {
            "resourceType": "Patient", "id": "SECRET-ID-7", "gender": gender, "birthDate": "1970-01-01"}}]}

    (tmp_path / "a.json").write_text(json.dumps(bundle("female")))
    (tmp_path / "b.json").write_text(json.dumps(bundle("female" if same_content else "male")))
    for on_error in ("raise", "skip"):  # never skipped: neither of the two can be chosen silently
        with pytest.raises(InputError, match=r"b\.json: entry\[0\]: field 'Patient\.id': the same Patient\.id as "
                                             r"the Patient at .*a\.json: entry\[0\]") as err:
            build_patient_view([tmp_path], core_schema, on_error=on_error)
        assert "SECRET-ID-7" not in str(err.value)


def test_patients_can_be_keyed_by_an_identifier(core_schema, tmp_path):
    import dataclasses
    import json

    from privsynth.errors import InputError
    from privsynth.schema.model import PatientKey

    schema = dataclasses.replace(core_schema, patient_id=PatientKey(identifier_system="urn:mrn"))
    for name, mrn in (("a", "M-1"), ("b", "M-2")):
        (tmp_path / f"{name}.json").write_text(json.dumps({"resourceType": "Patient", "id": name, "gender": "male",
                                                           "identifier": [{"system": "urn:mrn", "value": mrn}]}))
    frame, report = build_patient_view([tmp_path], schema)
    assert sorted(frame.index) == ["M-1", "M-2"] and report.patient_key == "Patient.identifier of system urn:mrn"
    (tmp_path / "c.json").write_text(json.dumps({"resourceType": "Patient", "id": "c", "gender": "male",
                                                 "identifier": [{"system": "urn:mrn", "value": "M-1"}]}))
    with pytest.raises(InputError, match=r"c\.json: field 'Patient\.identifier \(urn:mrn\)': the same"):
        build_patient_view([tmp_path], schema)
