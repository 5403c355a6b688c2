"""OMOP CDM v5.4 output (issue 22): written from the same records as the FHIR, it loads into
DuckDB with its primary and foreign keys, and three cohort queries give exactly the answers
the FHIR output gives."""

from __future__ import annotations

import datetime as dt
import json
from collections import Counter
from pathlib import Path

import duckdb
import pytest

from privsynth.formats import Output
from privsynth.omop.tables import TABLES, ddl
from privsynth.omop.vocabulary import Vocabulary
from privsynth.pipeline import read_view
from privsynth.records import write_fhir_output
from privsynth.schema import load_schema
from tests.conftest import BUNDLES, ROOT, need_shared

SNOMED, LOINC = "http://snomed.info/sct", "http://loinc.org"
T2D, HBA1C = "44054006", "4548-4"
HEART_FAILURE = ("88805009", "84114007", "42343007")
SEED, NOW = 17, "2024-01-01T00:00:00+00:00"


def _write_both(export: Path, schema_name: str, out: Path):
    schema = load_schema(ROOT / "schemas" / f"{schema_name}.yaml")
    view, _ = read_view([export], schema)
    rows = view.reset_index(drop=True)
    write_fhir_output(out / "fhir_run", rows, schema, Output("ndjson", SEED, NOW, 1.0, 1e-6))
    counts = write_fhir_output(out / "omop_run", rows, schema, Output("omop", SEED, NOW, 1.0, 1e-6))
    return schema, counts


def _load(omop_dir: Path) -> duckdb.DuckDBPyConnection:
    """The tables as a research network loads them: the shipped DDL (keys enforced), then each CSV."""
    con = duckdb.connect()
    con.execute((omop_dir / "ddl" / "duckdb.sql").read_text())
    for line in (omop_dir / "load_duckdb.sql").read_text().splitlines():
        if line.startswith("COPY"):
            con.execute(line.replace("FROM '", f"FROM '{omop_dir}/"))
    return con


def _fhir(fhir_dir: Path) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {}
    for path in fhir_dir.glob("*.ndjson"):
        out[path.stem] = [json.loads(line) for line in path.read_text().splitlines()]
    return out


def _subject(resource: dict) -> str:
    return resource["subject"]["reference"].split("/", 1)[1]


def _codes(concept: dict) -> set[str]:
    return {c["code"] for c in concept.get("coding", [])}


def _fhir_cohorts(resources: dict[str, list[dict]], reference: dt.date):
    conditions = resources.get("Condition", [])
    diabetic = {_subject(c) for c in conditions if T2D in _codes(c["code"])}
    failing = {_subject(c) for c in conditions if _codes(c["code"]) & set(HEART_FAILURE)}
    high = {_subject(o) for o in resources.get("Observation", []) if HBA1C in _codes(o["code"])
            and o.get("valueQuantity", {}).get("value", 0) >= 6.5}
    admitted = {_subject(e) for e in resources.get("Encounter", []) if e["class"]["code"] == "IMP"}
    pyramid: Counter[tuple[str, int]] = Counter()
    for p in resources["Patient"]:
        birth = dt.date.fromisoformat(p["birthDate"])
        age = reference.year - birth.year - ((reference.month, reference.day) < (birth.month, birth.day))
        pyramid[(p["gender"], age // 10)] += 1
    return diabetic & high, failing & admitted, pyramid


def _omop_cohorts(con: duckdb.DuckDBPyConnection, reference: dt.date):
    vocabulary = Vocabulary.shipped()
    t2d = vocabulary.concept(SNOMED, T2D).concept_id
    hba1c = vocabulary.concept(LOINC, HBA1C).concept_id
    failure = ", ".join(str(vocabulary.concept(SNOMED, c).concept_id) for c in HEART_FAILURE)
    diabetic_high = {r[0] for r in con.execute(f"""
        SELECT DISTINCT p.person_source_value FROM person p
        JOIN condition_occurrence c ON c.person_id = p.person_id AND c.condition_concept_id = {t2d}
        JOIN measurement m ON m.person_id = p.person_id AND m.measurement_concept_id = {hba1c}
        WHERE m.value_as_number >= 6.5""").fetchall()}
    failing_admitted = {r[0] for r in con.execute(f"""
        SELECT DISTINCT p.person_source_value FROM person p
        JOIN condition_occurrence c ON c.person_id = p.person_id AND c.condition_concept_id IN ({failure})
        JOIN visit_occurrence v ON v.person_id = p.person_id AND v.visit_concept_id = 9201""").fetchall()}
    pyramid = Counter({(gender, int(band)): n for gender, band, n in con.execute(f"""
        SELECT CASE gender_concept_id WHEN 8507 THEN 'male' WHEN 8532 THEN 'female' ELSE gender_source_value END,
               floor(({reference.year} - year_of_birth - CASE WHEN month_of_birth > {reference.month} OR
                      (month_of_birth = {reference.month} AND day_of_birth > {reference.day}) THEN 1 ELSE 0 END) / 10),
               count(*)
        FROM person GROUP BY 1, 2""").fetchall()})
    return diabetic_high, failing_admitted, pyramid


def _orphans(con: duckdb.DuckDBPyConnection) -> int:
    """Rows whose person or visit is not in the tables (the keys should make this impossible)."""
    total = 0
    for table in TABLES.values():
        for field, target in table.foreign_keys:
            key = TABLES[target].primary_key
            total += con.execute(f"SELECT count(*) FROM {table.name} t WHERE t.{field} IS NOT NULL AND "
                                 f"t.{field} NOT IN (SELECT {key} FROM {target})").fetchone()[0]
    return total


@pytest.fixture(scope="module")
def example_export(tmp_path_factory):
    from privsynth.example.hospital import write_example_export

    path = tmp_path_factory.mktemp("omop") / "export"
    write_example_export(path, 300, 5)
    return path


@pytest.mark.parametrize("which, schema_name", [("example", "patient-timeline"), ("synthea", "patient-core")],
                         ids=["example-hospital-timeline", "synthea-core"])
def test_omop_loads_with_its_keys_and_cohorts_match_the_fhir(which, schema_name, example_export, tmp_path):
    if which == "synthea":
        need_shared()
        export = BUNDLES
    else:
        export = example_export
    schema, counts = _write_both(export, schema_name, tmp_path)
    omop_dir = tmp_path / "omop_run" / "omop"
    con = _load(omop_dir)  # primary and foreign keys enforced on every row
    assert _orphans(con) == 0
    assert counts["person"] == con.execute("SELECT count(*) FROM person").fetchone()[0] > 0
    fhir = _fhir(tmp_path / "fhir_run" / "fhir")
    assert len(fhir["Patient"]) == counts["person"]
    expected = _fhir_cohorts(fhir, schema.reference)
    got = _omop_cohorts(con, schema.reference)
    assert got[2] == expected[2], "age/sex pyramid"
    assert got[0] == expected[0] and got[1] == expected[1]
    assert expected[2].total() == counts["person"]
    # every coded event is a row: conditions, drugs and procedures as many as the FHIR has
    rows = {name: con.execute(f"SELECT count(*) FROM {name}").fetchone()[0] for name in TABLES}
    assert rows["condition_occurrence"] + rows["observation"] >= len(fhir.get("Condition", []))
    assert rows["visit_occurrence"] == len(fhir.get("Encounter", []))
    assert rows["drug_exposure"] == len(fhir.get("MedicationRequest", []))
    summary = json.loads((omop_dir / "omop.json").read_text())
    assert summary["rows"] == rows


def test_the_cohorts_are_not_empty_on_the_example(example_export, tmp_path):
    """The cohort comparison above would pass on empty tables: the example has patients in each."""
    schema, _ = _write_both(example_export, "patient-timeline", tmp_path)
    diabetic_high, failing_admitted, _ = _omop_cohorts(_load(tmp_path / "omop_run" / "omop"), schema.reference)
    assert len(diabetic_high) >= 5 and len(failing_admitted) >= 1


def test_unmapped_codes_are_written_with_concept_zero_and_counted(core_schema, tmp_path):
    """patient-core counts orders without naming them: concept 0, the text as source value, counted."""
    from privsynth.example.hospital import write_example_export

    write_example_export(tmp_path / "export", 60, 2)
    view, _ = read_view([tmp_path / "export"], core_schema)
    write_fhir_output(tmp_path / "out", view.reset_index(drop=True), core_schema, Output("omop", SEED, NOW, 1.0, 1e-6))
    con = _load(tmp_path / "out" / "omop")
    zero = con.execute("SELECT count(*) FROM drug_exposure WHERE drug_concept_id = 0").fetchone()[0]
    total = con.execute("SELECT count(*) FROM drug_exposure").fetchone()[0]
    summary = json.loads((tmp_path / "out" / "omop" / "omop.json").read_text())
    assert total > 0 and zero == total
    assert summary["unmapped"]["rows"] >= zero
    assert con.execute("SELECT count(*) FROM condition_occurrence WHERE condition_concept_id = 0").fetchone()[0] == 0


def test_ddl_declares_the_keys_and_both_dialects():
    text = ddl("postgresql")
    assert text.count("CREATE TABLE") == len(TABLES) == 10
    assert "FOREIGN KEY (visit_occurrence_id) REFERENCES visit_occurrence (visit_occurrence_id)" in text
    with pytest.raises(ValueError, match="allowed: duckdb, postgresql"):
        ddl("oracle")


def _tables(omop_dir: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(omop_dir.glob("*.csv"))}


def test_omop_in_one_part_joins_to_the_whole_output_byte_for_byte(example_export, tmp_path):
    """A part numbers its keys from 1 and the join shifts nothing: one part is the whole output."""
    from privsynth.omop.output import join_omop_parts

    schema = load_schema(ROOT / "schemas" / "patient-timeline.yaml")
    rows = read_view([example_export], schema)[0].reset_index(drop=True)
    output = Output("omop", SEED, NOW, 1.0, 1e-6)
    whole = write_fhir_output(tmp_path / "whole", rows, schema, output)
    part = write_fhir_output(tmp_path / "parts", rows, schema, output, part=(0, 1))
    joined = join_omop_parts(tmp_path / "parts" / "omop", 1, NOW, 1.0, 1e-6, "test")
    assert {k: v for k, v in part.items() if k != "cdm_source"} == {k: v for k, v in whole.items() if k != "cdm_source"}
    assert joined == whole and not list((tmp_path / "parts" / "omop").glob("part-*"))
    a, b = _tables(tmp_path / "whole" / "omop"), _tables(tmp_path / "parts" / "omop")
    assert set(a) == set(b) and all(a[name] == b[name] for name in a if name != "cdm_source.csv")
    assert (json.loads((tmp_path / "whole" / "omop" / "omop.json").read_text())
            == json.loads((tmp_path / "parts" / "omop" / "omop.json").read_text()))


def test_omop_in_parts_loads_with_its_keys_numbered_without_gaps(example_export, tmp_path):
    """Three parts of the same rows: every table's own key unique and 1..n, every reference
    resolving (DuckDB enforces the DDL's keys on load), the counts the parts' counts."""
    from privsynth.omop.output import join_omop_parts

    schema = load_schema(ROOT / "schemas" / "patient-timeline.yaml")
    rows = read_view([example_export], schema)[0].reset_index(drop=True)
    thirds = [rows.iloc[k::3].reset_index(drop=True) for k in range(3)]
    counts: Counter[str] = Counter()
    for k, third in enumerate(thirds):
        counts.update(write_fhir_output(tmp_path, third, schema, Output("omop", SEED + k, NOW, 1.0, 1e-6),
                                        part=(k, 3)))
    joined = join_omop_parts(tmp_path / "omop", 3, NOW, 1.0, 1e-6, "test")
    con = _load(tmp_path / "omop")
    assert _orphans(con) == 0
    for name, table in TABLES.items():
        n = con.execute(f"SELECT count(*) FROM {name}").fetchone()[0]
        assert n == joined[name] == (counts[name] if name != "cdm_source" else 1)
        if table.primary_key == f"{name}_id":  # its own key (death's is the person's)
            low, high, distinct = con.execute(f"SELECT min({table.primary_key}), max({table.primary_key}), "
                                              f"count(DISTINCT {table.primary_key}) FROM {name}").fetchone()
            assert n == 0 or (low, high, distinct) == (1, n, n)
    assert joined["person"] == len(rows) and json.loads((tmp_path / "omop" / "omop.json").read_text())["rows"] == \
        dict(joined)


def test_a_sharded_run_writes_omop_in_parts(core_schema, tmp_path):
    from privsynth.example.hospital import write_example_export
    from privsynth.pipeline import synthesize

    export = write_example_export(tmp_path / "export", 300, 2)
    result = synthesize([export], core_schema, tmp_path / "out", epsilon=1.0, rows=2000, seed=5, engine="duckdb",
                        shards=2, workers=2, output_format="omop")
    con = _load(tmp_path / "out" / "omop")
    assert _orphans(con) == 0 and con.execute("SELECT count(*) FROM person").fetchone()[0] == 2000
    assert result.patients_out == 2000 and not list((tmp_path / "out" / "omop").glob("part-*"))
    assert len((tmp_path / "out" / "patients.csv").read_text().splitlines()) == 2001
