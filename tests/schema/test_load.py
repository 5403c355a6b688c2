"""Schema loading: the shipped schema, and errors that name file, line and field."""

from __future__ import annotations

import textwrap

import pytest

from privsynth.errors import SchemaError
from privsynth.schema import CategoricalDomain, NumericDomain, load_schema

GOOD = """\
name: tiny
reference_date: 2024-01-01
code_groups:
  diabetes:
    system: snomed
    codes: {"44054006": Diabetes}
columns:
  - {name: name, role: direct_identifier, faker: name}
  - name: gender
    role: quasi_identifier
    kind: categorical
    source: {resource: Patient, path: gender}
    domain: {categories: [female, male]}
  - name: age
    role: quasi_identifier
    kind: integer
    source: {resource: Patient, path: birthDate, transform: age}
    domain: {lower: 0, upper: 99, bins: {width: 10}}
  - name: diabetes
    role: sensitive
    kind: boolean
    source: {resource: Condition, codes: diabetes, summary: exists}
"""


def write(tmp_path, text):
    path = tmp_path / "s.yaml"
    path.write_text(textwrap.dedent(text))
    return path


def test_shipped_schema_covers_what_issue_2_asks(core_schema):
    names = {c.name for c in core_schema.columns}
    for col in ("gender", "age", "race", "ethnicity", "state", "marital_status", "deceased"):
        assert col in names
    conditions = [c for c in core_schema.columns
                  if c.source.resource == "Condition" and c.source.summary == "exists"]
    onsets = [c for c in core_schema.columns if c.source.resource == "Condition" and c.source.summary == "first"]
    observations = [c for c in core_schema.columns if c.source.resource == "Observation"]
    loincs = {c.output.get("code") for c in observations}
    assert len(conditions) >= 10 and len(onsets) >= 3
    assert {"39156-5", "8480-6", "8462-4", "4548-4", "2093-3", "29463-7"} <= loincs
    assert any(c.source.resource == "Encounter" and c.source.summary == "count" for c in core_schema.columns)
    assert {c.faker for c in core_schema.identifier_columns} >= {"name", "mrn", "ssn"}


def test_good_schema_builds_public_domains(tmp_path):
    schema = load_schema(write(tmp_path, GOOD))
    gender = schema.column("gender").domain
    assert isinstance(gender, CategoricalDomain)
    assert gender.labels == ("female", "male", "other", "missing")
    age = schema.column("age").domain
    assert isinstance(age, NumericDomain)
    assert age.edges[:3] == (0.0, 10.0, 20.0) and age.edges[-1] == 99.0
    assert age.size == age.n_bins + 1
    assert [c.name for c in schema.learned_columns] == ["gender", "age", "diabetes"]


def test_schema_from_dict_equals_file(tmp_path):
    import yaml

    assert load_schema(yaml.safe_load(GOOD)).columns == load_schema(write(tmp_path, GOOD)).columns


@pytest.mark.parametrize(
    ("old", "new", "line", "words"),
    [
        pytest.param("    domain: {categories: [female, male]}", "    doman: {categories: [female, male]}",
                     13, ["doman", "did you mean 'domain'"], id="typo-key"),
        pytest.param("source: {resource: Patient, path: gender}", "source: {resource: Patient, path: gendr}",
                     12, ["gendr", "did you mean 'gender'"], id="typo-fhir-path"),
        pytest.param("resource: Condition,", "resource: Condtion,", 22, ["not an R4 resource type"],
                     id="typo-resource"),
        pytest.param("codes: diabetes,", "codes: diabetis,", 22, ["no code group", "did you mean 'diabetes'"],
                     id="typo-code-group"),
        pytest.param("kind: integer", "kind: number", 16, ["must be one of", "numeric"], id="bad-kind"),
        pytest.param("bins: {width: 10}", "bins: [0, 50, 40, 99]", 18, ["strictly increasing"], id="bad-bins"),
        pytest.param("domain: {lower: 0, upper: 99,", "domain: {lower: 0,", 18, ["upper"], id="missing-bound"),
        pytest.param("reference_date: 2024-01-01", "reference_date: soon", 2, ["YYYY-MM-DD"], id="bad-date"),
        pytest.param("faker: name}", "faker: nam}", 8, ["faker", "name"], id="bad-faker"),
        pytest.param("reference_date: 2024-01-01", "reference_date: 2024-01-01\npatient_id: gender", 3,
                     ["patient_id", "Patient.id", "identifier"], id="fhir-patient-id-is-not-a-column"),
        pytest.param("reference_date: 2024-01-01", "reference_date: 2024-01-01\npatient_id: {identifer: x}", 3,
                     ["patient_id.identifer", "did you mean 'identifier'"], id="patient-id-typo"),
    ],
)
def test_schema_errors_name_file_line_field(tmp_path, old, new, line, words):
    assert old in GOOD
    assert_schema_error(write(tmp_path, GOOD.replace(old, new)), line, words)


def assert_schema_error(path, line: int, words: list[str]) -> None:
    """Loading ``path`` fails with one message that starts with file:line and holds ``words``."""
    with pytest.raises(SchemaError) as err:
        load_schema(path)
    message = str(err.value)
    assert message.startswith(f"{path}:{line}:"), message
    for word in words:
        assert word.lower() in message.lower(), message


def test_invalid_yaml_names_line(tmp_path):
    path = write(tmp_path, "name: x\ncolumns: [\n  {a: 1\n")
    with pytest.raises(SchemaError, match=r"s\.yaml:\d+: invalid YAML"):
        load_schema(path)


def test_missing_schema_file(tmp_path):
    with pytest.raises(SchemaError, match="schema file not found"):
        load_schema(tmp_path / "nope.yaml")


def test_boolean_exists_needs_boolean_kind(tmp_path):
    path = write(tmp_path, GOOD.replace("    kind: boolean", "    kind: categorical"))
    with pytest.raises(SchemaError, match="set kind: boolean"):
        load_schema(path)


def test_codes_with_a_leading_zero_must_be_quoted(tmp_path):
    path = write(tmp_path, GOOD.replace('"44054006": Diabetes', '0100: Diabetes'))
    with pytest.raises(SchemaError, match=r"s\.yaml:6: .*octal"):
        load_schema(path)


def test_a_table_patient_id_must_name_a_column(tmp_path):
    text = "name: t\ninput: table\npatient_id: pdi\ncolumns:\n  - {name: pid, role: direct_identifier, faker: id, " \
           "source: {column: pid}}\n  - {name: x, kind: boolean, role: other, source: {column: x}}\n"
    with pytest.raises(SchemaError, match=r"s\.yaml:3: field 'patient_id': must name a column .*Did you mean 'pid'"):
        load_schema(write(tmp_path, text))
    assert load_schema(write(tmp_path, text.replace("pdi", "pid"))).patient_id.column == "pid"


def test_a_model_too_large_for_memory_is_refused_with_its_size(tmp_path):
    """A column of ten million bins needs 90 M cells (1-way plus within-bin detail): refused
    with the computed size and the line of the bins, before any data is read."""
    from privsynth.generator.footprint import check_footprint

    huge = GOOD.replace("bins: {width: 10}", "bins: 10000000").replace("kind: integer", "kind: numeric")
    path = write(tmp_path, huge)
    schema = load_schema(path)
    with pytest.raises(SchemaError, match=rf"{path}:18: field 'columns\[2\]\.domain\.bins': the model of schema "
                                          r"'tiny' needs at least 90,000,0\d\d cells .* above the limit of 50,000,000"):
        check_footprint(schema)
    with pytest.raises(SchemaError, match=r"column 'age' has 10,000,001 public values; one column may have at most"):
        check_footprint(schema, limit=100_000_000)  # a larger limit, but one marginal must still fit in the model
    assert check_footprint(load_schema(write(tmp_path, GOOD))).cells < 1_000



def test_the_saved_schema_of_an_extending_schema_keeps_the_base_rules(tmp_path):
    """A model directory carries its schema as one document: patient-timeline extends
    patient-core, and the saved document lost the base's constraints and panel (a sampled
    timeline model then drew 4-year-olds 38 cm tall)."""
    from pathlib import Path

    from privsynth.schema.load import dump_schema

    timeline = load_schema(Path(__file__).resolve().parents[2] / "schemas" / "patient-timeline.yaml")
    saved = tmp_path / "schema.yaml"
    saved.write_bytes(dump_schema(timeline))
    again = load_schema(saved)
    assert [r.text for r in again.rules] == [r.text for r in timeline.rules]
    assert [r.text for r in again.plausibility] == [r.text for r in timeline.plausibility]
    assert "age - years_since_death >= 4 or years_since_death is missing and age >= 4 -> body_height >= 85" in [
        r.text for r in again.plausibility]
