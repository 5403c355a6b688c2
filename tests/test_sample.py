"""Recipients sample from a shared model directory alone: post-processing, conditioned exactly."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import orjson
import pandas as pd
import pytest

from privsynth.errors import InputError
from privsynth.fhir.output import check
from privsynth.sample import open_model, sample
from tests.conftest import SCHEMA


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    """A synthesize output moved away from the export it was fitted on (which is then deleted)."""
    from privsynth.example.hospital import write_example_export
    from privsynth.pipeline import synthesize
    from privsynth.schema import load_schema

    tmp = tmp_path_factory.mktemp("shared")
    export = write_example_export(tmp / "export", 700, 5)
    synthesize([export], load_schema(SCHEMA), tmp / "out", epsilon=3.0, seed=2)
    shutil.rmtree(export)
    (tmp / "out.internal.json").unlink()
    shared = tmp_path_factory.mktemp("recipient") / "model"
    shutil.copytree(tmp / "out", shared)
    shutil.rmtree(tmp / "out")
    return shared


def test_a_conditioned_sample_meets_its_condition_and_writes_valid_linked_fhir(model_dir, tmp_path):
    result = sample(model_dir, 150, tmp_path / "s", where=["diabetes=true,gender=female"], seed=4)
    table = pd.read_csv(tmp_path / "s" / "patients.csv")
    assert len(table) == 150 and result.rows == 150
    assert (table["diabetes"].astype(str) == "True").all() and (table["gender"] == "female").all()
    ids = set(table["patient_id"])
    diabetic = set()
    for path in (tmp_path / "s" / "fhir").glob("*.ndjson"):
        for line in path.read_bytes().splitlines():
            r = orjson.loads(line)
            check(r)
            if r["resourceType"] == "Patient":
                assert r["id"] in ids and r["gender"] == "female"
                continue
            if r["resourceType"] == "Provenance":  # how the sample was made, naming every patient
                assert {t["reference"].split("/", 1)[1] for t in r["target"]} == ids
                continue
            assert r["subject"]["reference"].split("/", 1)[1] in ids
            if r["resourceType"] == "Condition" and r["code"]["coding"][0]["code"] == "44054006":
                diabetic.add(r["subject"]["reference"].split("/", 1)[1])
    assert diabetic == ids  # every patient got the diabetes Condition the condition asks for
    statement = json.loads((tmp_path / "s" / "sample.json").read_text())
    assert statement["where"] == {"diabetes": "true", "gender": "female"}
    assert "post-processing" in statement["privacy"] and statement["model"]["epsilon"] == 3.0


def test_a_sample_as_omop_holds_the_conditioned_patients(model_dir, tmp_path):
    """sample --format omop: the same patients as OMOP tables; every person has the condition."""
    import pyarrow.parquet as pq

    result = sample(model_dir, 40, tmp_path / "s", where=["diabetes=true"], output_format="omop", seed=4)
    omop = tmp_path / "s" / "omop"
    person = pq.read_table(omop / "person.parquet").to_pandas()
    conditions = pq.read_table(omop / "condition_occurrence.parquet").to_pandas()
    assert result.rows == len(person) == 40 and not (tmp_path / "s" / "fhir").exists()
    diabetic = set(conditions.loc[conditions["condition_concept_id"] == 201826, "person_id"])  # type 2 diabetes
    assert diabetic == set(person["person_id"])
    assert set(pd.read_csv(tmp_path / "s" / "patients.csv")["patient_id"]) == set(person["person_source_value"])


def test_conditional_shares_match_the_models_conditional_probabilities(model_dir, tmp_path):
    shared = open_model(model_dir)
    names = [c.name for c in shared.schema.learned_columns]
    model = shared.synthesizer.model_
    d = names.index("diabetes")
    result = sample(model_dir, 4000, tmp_path / "s", where=["diabetes=true"], output_format="csv", seed=9)
    table = pd.read_csv(result.out / "patients.csv")
    assert not (result.out / "fhir").exists()
    text = pd.read_csv(result.out / "patients.csv", dtype=str, keep_default_na=False)
    for col in shared.schema.view_columns:  # types round-trip: integers stay whole, yes/no stay True/False
        values = set(text[col.name]) - {""}
        if col.kind == "integer":
            assert all(v.lstrip("-").isdigit() for v in values), col.name
        elif col.kind == "boolean":
            assert values <= {"True", "False"}, col.name
    # the three yes/no columns the condition moves most (the model's noise differs run to run)
    flags = [c.name for c in shared.schema.learned_columns if c.kind == "boolean" and c.name != "diabetes"]
    given = {c: model.probability({d: 1, names.index(c): 1}) / model.probability({d: 1}) for c in flags}
    moved = sorted(flags, key=lambda c: -abs(given[c] - model.probability({names.index(c): 1})))[:3]
    assert abs(given[moved[0]] - model.probability({names.index(moved[0]): 1})) > 0.05  # 0.096 on one CI fit
    # the reference is what the same sampler gives without the condition, kept where it holds: both go
    # through the decoding and the repair of rule-breaking rows, which moves shares a little away from
    # the model's exact probabilities (by up to 0.05 where the onset rules bind; seen in CI)
    free = shared.synthesizer.sample(40_000, rng=10)
    free = free[free["diabetes"].astype(str) == "True"]
    assert len(free) > 1500
    for column in moved:
        observed = (table[column].astype(str) == "True").mean()
        expected = (free[column].astype(str) == "True").mean()
        spread = (expected * (1 - expected) * (1 / len(table) + 1 / len(free))) ** 0.5
        assert abs(observed - expected) <= 4.5 * spread + 0.005, (column, observed, expected)
    # Not compared with the model's exact conditional probabilities: the panel prior tilts the
    # sampler's shares away from them by design, by 0.086 (anemia among diabetics) to 0.124
    # (prediabetes) on clean-clone CI fits, so a fixed tolerance there tests the tilt, not the
    # conditioning; the conditioning is what the comparison above checks.


@pytest.mark.parametrize("where", [
    pytest.param(["age=[15, 20)", "marital_status=M"], id="a-rule-on-a-condition-and-a-bin"),
    pytest.param(["diastolic_bp=[110, 150]", "systolic_bp=[110, 120)"], id="a-rule-between-two-conditioned-bins"),
    # COPD only from 18 and its onset at most the age: an age of 18-19 of [15, 20) and, for
    # every condition the model gives, an onset inside its bin no later than that age
    pytest.param(["age=[15, 20)", "copd=true"], id="a-condition-whose-onset-the-bin-pins"),
])
def test_conditions_keep_every_rule_of_the_schema(model_dir, tmp_path, where):
    """A condition fixes a bin, not a value: numbers are drawn inside it so that every hard
    rule still holds (no marriage before 16, diastolic below systolic)."""
    from privsynth.generator.constraint import violations
    from privsynth.sample import where_codes

    shared = open_model(model_dir)
    schema = shared.schema
    codes = where_codes(schema, {k: v for k, v in (w.split("=", 1) for w in where)})
    # neither condition is a structural zero (ages 16-19 may be married; a diastolic of 110-119
    # may sit under a systolic of 120), and the model gives every other cell some mass
    frame = shared.synthesizer.sample_where(400, codes, rng=3)
    assert len(frame) == 400
    assert not violations(frame, schema, schema.rules).any()
    for name, code in codes.items():
        col = schema.column(name)
        label = col.domain.labels[code]
        if col.kind == "boolean":
            assert (frame[name] == (label == "true")).all()
        elif col.kind == "categorical":
            assert (frame[name].astype(str) == label).all()
        else:
            low, high = (float(x) for x in label.strip("[])").split(","))
            assert frame[name].between(low, high).all(), name


@pytest.mark.parametrize("where, message", [
    pytest.param("gender=robot", "not in the column's public domain", id="out-of-domain-category"),
    pytest.param("age=200", "outside the public domain", id="out-of-domain-number"),
    pytest.param("age=45", "takes a whole bin", id="number-inside-a-wide-bin"),
    pytest.param("diabetes=false,diabetes_onset_age=[0, 18)", "probability zero", id="impossible"),
    pytest.param("nosuch=1", "not a column", id="unknown-column"),
    pytest.param("name=Ann", "never learned", id="identifier"),
    pytest.param("gender", "COLUMN=VALUE", id="no-value"),
])
def test_impossible_and_out_of_domain_conditions_are_refused(model_dir, tmp_path, where, message):
    with pytest.raises(InputError, match=message):
        sample(model_dir, 10, tmp_path / "s", where=[where])
    assert not (tmp_path / "s").exists()


def test_a_category_is_named_by_its_code_or_its_display_name():
    """race=White is race=2106-3; a wrong name lists each code with its name."""
    from privsynth.sample import where_codes
    from privsynth.schema import load_schema

    schema = load_schema(SCHEMA)
    assert where_codes(schema, {"race": "white"}) == where_codes(schema, {"race": "2106-3"})
    assert where_codes(schema, {"marital_status": "Married"}) == where_codes(schema, {"marital_status": "M"})
    with pytest.raises(InputError, match=r"2106-3 \(White\)") as caught:
        where_codes(schema, {"race": "Martian"})
    assert "Martian" in str(caught.value)


def test_a_directory_without_the_models_schema_is_refused(model_dir, tmp_path):
    partial = tmp_path / "m"
    shutil.copytree(model_dir, partial)
    (partial / "schema.yaml").unlink()
    with pytest.raises(InputError, match="missing schema.yaml"):
        sample(partial, 10, tmp_path / "s")


def test_sample_json_on_stdout_parses_and_text_goes_to_stderr(model_dir, tmp_path):
    proc = subprocess.run([sys.executable, "-m", "privsynth", "sample", str(model_dir), "--rows", "20", "--where",
                           "asthma=true", "--format", "bundle", "--json", "--out", str(tmp_path / "s")],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["rows"] == 20 and doc["files"] == {"Bundle": 20} and doc["where"] == {"asthma": "true"}
    assert "privsynth sample" in proc.stderr
    assert len(list((tmp_path / "s" / "fhir").glob("*.json"))) == 20


def test_a_large_sample_through_python_m_validates_in_worker_processes(model_dir, tmp_path):
    """2,500 patients: above the in-process threshold, so worker processes validate (they
    import privsynth.__main__ without running the command again)."""
    from privsynth.fhir.output import INLINE_BELOW

    rows = INLINE_BELOW + 500
    proc = subprocess.run([sys.executable, "-m", "privsynth", "sample", str(model_dir), "--rows", str(rows), "--json",
                           "--seed", "1", "--out", str(tmp_path / "s")], capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["files"]["Patient"] == rows
    lines = (tmp_path / "s" / "fhir" / "Patient.ndjson").read_bytes().splitlines()
    assert len(lines) == rows and len({orjson.loads(x)["id"] for x in lines}) == rows


def test_an_error_under_json_is_one_json_document_too(model_dir, tmp_path):
    proc = subprocess.run([sys.executable, "-m", "privsynth", "sample", str(model_dir), "--rows", "5", "--where",
                           "gender=robot", "--json", "--out", str(tmp_path / "s")], capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 2 and "not in the column's public domain" in proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["exit_code"] == 2 and "gender=robot" in doc["error"]
