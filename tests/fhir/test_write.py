"""The FHIR writer: valid R4, identifiers only as the schema lists, safe date arithmetic."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from privsynth.fhir.output import check, to_bundle
from privsynth.fhir.write import FhirWriter
from privsynth.schema import load_schema


def schema_dict(reference_date="2024-02-29", identifiers=("name", "mrn")):
    return {
        "name": "w", "reference_date": reference_date,
        "code_groups": {"diabetes": {"system": "snomed", "codes": {"44054006": "Diabetes mellitus type 2"}}},
        "columns": [
            *({"name": f"id_{k}", "role": "direct_identifier", "faker": k} for k in identifiers),
            {"name": "gender", "kind": "categorical", "role": "quasi_identifier",
             "source": {"resource": "Patient", "path": "gender"}, "domain": {"categories": ["female", "male"]}},
            {"name": "age", "kind": "integer", "role": "quasi_identifier",
             "source": {"resource": "Patient", "path": "birthDate", "transform": "age"},
             "domain": {"lower": 0, "upper": 109, "bins": {"width": 10}}},
            {"name": "diabetes", "kind": "boolean", "role": "sensitive",
             "source": {"resource": "Condition", "codes": "diabetes", "summary": "exists"}},
            {"name": "diabetes_onset_age", "kind": "integer", "role": "sensitive",
             "source": {"resource": "Condition", "codes": "diabetes", "summary": "first", "path": "onset[x]",
                        "transform": "age_at_event"},
             "domain": {"lower": 0, "upper": 109, "bins": {"width": 10}}},
            {"name": "bmi", "kind": "numeric", "role": "sensitive",
             "source": {"resource": "Observation", "path": "valueQuantity", "summary": "last", "unit": "kg/m2"},
             "domain": {"lower": 10, "upper": 70, "bins": 6},
             "output": {"code": "39156-5", "display": "BMI", "unit": "kg/m2", "category": "vital-signs"}},
            {"name": "visits", "kind": "integer", "role": "other",
             "source": {"resource": "Encounter", "summary": "count", "where": [{"path": "class.code", "in": ["AMB"]}]},
             "domain": {"lower": 0, "upper": 5, "bins": 5, "missing": False}},
        ],
    }


def frame(n=60):
    rng = np.random.default_rng(0)
    return pd.DataFrame({
        "gender": rng.choice(["female", "male", "other", None], n),
        "age": pd.array(rng.integers(0, 110, n), dtype="Int64"),
        "diabetes": pd.array(rng.random(n) < 0.5, dtype="boolean"),
        "diabetes_onset_age": pd.array(np.where(rng.random(n) < 0.3, None, rng.integers(0, 110, n)), dtype="Int64"),
        "bmi": pd.array(np.where(rng.random(n) < 0.2, np.nan, rng.uniform(10, 70, n)), dtype="Float64"),
        "visits": pd.array(rng.integers(0, 6, n), dtype="Int64"),
    })


def canonical(resource):
    from fhir.resources.R4B import get_fhir_model_class

    model = get_fhir_model_class(resource["resourceType"]).model_validate(resource)
    return model.model_dump(mode="json", exclude_none=True)


def test_every_resource_validates_even_on_29_february():
    schema = load_schema(schema_dict())
    writer = FhirWriter(schema, seed=3)
    types = set()
    for who, _facts, resources in writer.patients(frame()):
        for r in resources:
            check(r)
            # built in canonical JSON form: what is written is what the R4 model would write
            assert canonical(r) == r
            types.add(r["resourceType"])
            if r["resourceType"] != "Patient":
                assert r["subject"]["reference"] == f"Patient/{who.id}"
        patient = resources[0]
        assert patient["birthDate"] <= "2024-02-29"
        for cond in (r for r in resources if r["resourceType"] == "Condition"):
            # an onset from the onset column, else none invented: only when it was recorded
            when = cond["onsetDateTime"] if "onsetDateTime" in cond else cond["recordedDate"]
            assert patient["birthDate"] <= when[:10] <= "2024-02-29"
        check(to_bundle(resources))
    assert types == {"Patient", "Condition", "Observation", "Encounter"}


@pytest.mark.parametrize("identifiers", [pytest.param(("name", "mrn"), id="name+mrn"),
                                         pytest.param(("ssn", "phone", "address"), id="ssn+phone+address")])
def test_only_the_schemas_identifiers_are_written(identifiers):
    schema = load_schema(schema_dict(identifiers=identifiers))
    _, _, resources = next(FhirWriter(schema, seed=1).patients(frame(1)))
    patient = resources[0]
    systems = {i["system"] for i in patient.get("identifier", [])}
    assert ("name" in patient) == ("name" in identifiers)
    assert ("http://hl7.org/fhir/sid/us-ssn" in systems) == ("ssn" in identifiers)
    assert ("urn:privsynth:synthetic-mrn" in systems) == ("mrn" in identifiers)
    assert ("telecom" in patient) == ("phone" in identifiers)
    assert ("line" in patient["address"][0]) == ("address" in identifiers)


def test_same_seed_same_resources_and_identities_follow_gender():
    schema = load_schema(schema_dict())
    one = [r for _, _, rs in FhirWriter(schema, seed=9).patients(frame()) for r in rs]
    two = [r for _, _, rs in FhirWriter(schema, seed=9).patients(frame()) for r in rs]
    assert one == two
    assert len({r["id"] for r in one}) == len(one)
