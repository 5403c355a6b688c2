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
    assert sorted(str(k) for k in frame.index) == ["M-1", "M-2"]
    assert report.patient_key == "Patient.identifier of system urn:mrn"
    # the ledger also sees Patient.id and the prefixed identifier: re-keying cannot reset a budget
    assert sorted(k.values for k in frame.index) == [("M-1", "a", "urn:mrn|M-1"), ("M-2", "b", "urn:mrn|M-2")]
    (tmp_path / "c.json").write_text(json.dumps({"resourceType": "Patient", "id": "c", "gender": "male",
                                                 "identifier": [{"system": "urn:mrn", "value": "M-1"}]}))
    with pytest.raises(InputError, match=r"c\.json: field 'Patient\.identifier \(urn:mrn\)': the same"):
        build_patient_view([tmp_path], schema)


# -- one patient never rewrites another's row (issue 19) ------------------------------------

DIABETES = {"system": "http://snomed.info/sct", "code": "44054006"}
ASTHMA = {"system": "http://snomed.info/sct", "code": "195967001"}


def _condition(subject: str, coding: dict) -> dict:
    return {"resourceType": "Condition", "id": f"c-{coding['code']}", "code": {"coding": [coding]},
            "subject": {"reference": subject}, "onsetDateTime": "2015-01-01T00:00:00+00:00"}


def _bundle(patient: dict, full_url: str, *others: dict) -> dict:
    entries = [{"fullUrl": full_url, "resource": patient}]
    entries += [{"fullUrl": f"urn:uuid:{patient['id']}-{i}", "resource": r} for i, r in enumerate(others)]
    return {"resourceType": "Bundle", "type": "transaction", "entry": entries}


def _patient(pid: str, **extra: object) -> dict:
    return {"resourceType": "Patient", "id": pid, "gender": "female", "birthDate": "1960-05-01", **extra}


def _write(path, doc: dict) -> None:
    import json

    path.write_text(json.dumps(doc))


def _row_of(frame, pid: str) -> dict:
    [row] = [r for k, r in frame.iterrows() if k.primary == pid]
    return row.to_dict()


@pytest.mark.parametrize("claim", ["urn:uuid:C-7", "https://ehr.example.org/fhir/Patient/C-7", "Patient/C-7"],
                         ids=["urn-uuid", "absolute-url", "relative"])
def test_a_patient_whose_full_url_names_another_patient_is_refused(core_schema, tmp_path, claim):
    from privsynth.errors import InputError

    _write(tmp_path / "c.json", _bundle(_patient("C-7"), "urn:uuid:C-7", _condition("urn:uuid:C-7", DIABETES)))
    _write(tmp_path / "x.json", _bundle(_patient("X-1"), claim))
    for on_error in ("raise", "skip"):
        with pytest.raises(InputError, match=r"x\.json: entry\[0\]: field 'Bundle\.entry\.fullUrl': does not name "
                                             r"this Patient's own id") as err:
            build_patient_view([tmp_path], core_schema, on_error=on_error)
        assert "C-7" not in str(err.value) and "X-1" not in str(err.value)


def test_adding_a_patient_never_changes_another_patients_row(core_schema, tmp_path):
    """Bundles and NDJSON built to collide: X's bundle re-uses C's urn:uuid for its own
    resources, and an NDJSON line points at C's urn:uuid. A urn:uuid resolves within its own
    Bundle only, so C's row is the same with or without X, and the strays are counted."""
    import json

    export = tmp_path / "export"
    export.mkdir()
    _write(export / "c.json", _bundle(_patient("C-7"), "urn:uuid:C-7", _condition("urn:uuid:C-7", DIABETES),
                                      _condition("urn:uuid:C-7", ASTHMA)))
    before, _ = build_patient_view([export], core_schema)
    # X: no conditions of its own; its bundle holds conditions pointing at C's urn:uuid and C's id
    _write(export / "x.json", _bundle(_patient("X-1"), "urn:uuid:X-1", _condition("urn:uuid:C-7", DIABETES)))
    (export / "Condition.ndjson").write_text(json.dumps(_condition("urn:uuid:C-7", ASTHMA)) + "\n")
    after, report = build_patient_view([export], core_schema)
    assert _row_of(after, "C-7") == _row_of(before, "C-7")
    assert _row_of(after, "X-1")["diabetes"] is False and _row_of(after, "X-1")["asthma"] is False
    assert report.unresolved_patient["(reference to a Patient not in the input)"] == 2
    # the same conditions naming C by its id are C's record, wherever they are filed
    (export / "Condition.ndjson").write_text(json.dumps(_condition("Patient/C-7", ASTHMA)) + "\n")
    again, _ = build_patient_view([export], core_schema)
    assert _row_of(again, "C-7")["asthma"] is True and _row_of(again, "X-1")["asthma"] is False


SSN = "http://hl7.org/fhir/sid/us-ssn"


def test_two_charts_sharing_an_identifier_are_refused_or_merged(core_schema, tmp_path):
    """Two Patients with different ids but one SSN are one person: refused by default (never
    two rows, which would let one person count twice), one row with ``shared: merge``."""
    import dataclasses

    from privsynth.errors import InputError

    ssn = {"identifier": [{"system": SSN, "value": "999-55-SENTINEL"}]}
    _write(tmp_path / "a.json", _bundle(_patient("A-1", **ssn), "urn:uuid:A-1", _condition("urn:uuid:A-1", DIABETES)))
    _write(tmp_path / "b.json", _bundle(_patient("B-2", **ssn), "urn:uuid:B-2", _condition("urn:uuid:B-2", ASTHMA)))
    _write(tmp_path / "d.json", _bundle(_patient("D-3"), "urn:uuid:D-3"))
    assert SSN in core_schema.patient_id.identifiers
    for on_error in ("raise", "skip"):
        with pytest.raises(InputError, match=r"b\.json: entry\[0\]: field 'Patient\.identifier \(http://hl7\.org/fhir/"
                                             r"sid/us-ssn\)': the same .*/a\.json: entry\[0\].*shared: merge") as err:
            build_patient_view([tmp_path], core_schema, on_error=on_error)
        assert "SENTINEL" not in str(err.value)
    merging = dataclasses.replace(core_schema, patient_id=dataclasses.replace(core_schema.patient_id, shared="merge"))
    frame, report = build_patient_view([tmp_path], merging)
    assert len(frame) == 2 and report.patients_merged == 1
    merged = _row_of(frame, "A-1")
    assert merged["diabetes"] is True and merged["asthma"] is True  # both charts' records, one row
    [keys] = [k for k in frame.index if k.primary == "A-1"]
    assert set(keys.values) == {"A-1", "B-2", f"{SSN}|999-55-SENTINEL"}
