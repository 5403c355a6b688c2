"""Tabular input and output: the four shared tables, errors that name file/line/column."""

from __future__ import annotations

import pandas as pd
import pytest

from privsynth.errors import InputError
from privsynth.pipeline import synthesize
from privsynth.schema import load_schema
from privsynth.table import read_table
from tests.conftest import ROOT, SHARED

TABULAR = SHARED / "tabular"
TABLES = {"flchain": (7874, 11), "whas500": (500, 16), "nafld1": (17549, 7), "rhc": (5735, 55)}


def need_tables() -> None:
    if not TABULAR.is_dir():
        pytest.skip(f"shared tables not found at {TABULAR}")


@pytest.mark.parametrize("name", list(TABLES))
def test_shipped_table_schemas_read_the_shared_tables(name):
    need_tables()
    schema = load_schema(ROOT / "schemas" / "tabular" / f"{name}.yaml")
    view, report = read_table([TABULAR / f"{name}.csv"], schema)
    assert view.shape == TABLES[name] and report.rows == TABLES[name][0]


def test_synthesize_a_table_writes_csv_and_parquet_with_integer_codes(tmp_path):
    need_tables()
    schema = load_schema(ROOT / "schemas" / "tabular" / "whas500.yaml")
    result = synthesize([TABULAR / "whas500.csv"], schema, tmp_path / "out", epsilon=1.0, rows=300, seed=2)
    csv = pd.read_csv(result.out / "data" / "synthetic.csv")
    parquet = pd.read_parquet(result.out / "data" / "synthetic.parquet")
    real = pd.read_csv(TABULAR / "whas500.csv")
    assert list(csv.columns) == list(real.columns) and len(csv) == 300
    assert set(csv["gender"].dropna().unique()) <= {0, 1}
    assert pd.api.types.is_integer_dtype(parquet["gender"]) and pd.api.types.is_float_dtype(parquet["bmi"])
    assert csv["age"].dropna().between(18, 110).all()
    assert (result.out / "model.json").exists() and (result.out / "privacy.json").exists()


def test_identifier_columns_get_fresh_values(tmp_path):
    need_tables()
    schema = load_schema(ROOT / "schemas" / "tabular" / "nafld1.yaml")
    small = tmp_path / "nafld1-head.csv"
    pd.read_csv(TABULAR / "nafld1.csv").head(2000).to_csv(small, index=False)
    runs = [synthesize([small], schema, tmp_path / f"out{k}", epsilon=1.0, rows=500) for k in range(2)]
    ids = [pd.read_csv(r.out / "data" / "synthetic.csv")["id"] for r in runs]
    # distinct 12-digit numbers, unrelated to the input, and two runs' ids do not collide
    assert ids[0].is_unique and ids[0].between(10**11, 10**12 - 1).all()
    assert not set(ids[0]) & set(ids[1]) and not set(ids[0]) & set(pd.read_csv(small)["id"])


def test_a_missing_column_and_a_bad_number_are_clear_errors(tmp_path):
    schema = load_schema({"name": "t", "input": "table", "columns": [
        {"name": "age", "kind": "integer", "role": "quasi_identifier", "source": {"column": "age"},
         "domain": {"lower": 0, "upper": 100, "bins": 10}}]})
    bad = tmp_path / "bad.csv"
    bad.write_text("age\n34\n51\nSECRET-77\n")
    with pytest.raises(InputError) as err:
        read_table([bad], schema)
    assert "bad.csv:4: column 'age': not a number" in str(err.value) and "SECRET" not in str(err.value)
    view, report = read_table([bad], schema, on_error="skip")
    assert report.unreadable_value["age"] == 1 and view["age"].isna().sum() == 1
    other = tmp_path / "other.csv"
    other.write_text("agee\n1\n")
    with pytest.raises(InputError, match="column 'age' .* not in the table; did you mean 'agee'"):
        read_table([other], schema)


def test_fhir_schema_refuses_a_table_and_vice_versa(core_schema, tmp_path):
    table = tmp_path / "t.csv"
    table.write_text("a\n1\n")
    with pytest.raises(InputError, match="FHIR"):
        read_table([table], core_schema)


def test_integer_categories_mixed_with_other_write_to_parquet(tmp_path):
    """Integer-coded categories plus the 'other' bucket: one object column of ints and text."""
    import pandas as pd

    from privsynth.table import write_table

    frame = pd.DataFrame({"outcome": pd.Series([0, 1, "other", None], dtype=object), "age": [1, 2, 3, 4]})
    csv_path, parquet_path = write_table(frame, tmp_path, "t")
    back = pd.read_parquet(parquet_path)
    assert back["outcome"].tolist()[:3] == ["0", "1", "other"] and pd.isna(back["outcome"].iloc[3])
    assert csv_path.read_text().splitlines()[1:4] == ["0,1", "1,2", "other,3"]


TOY = {"name": "toy", "input": "table", "patient_id": "pid", "columns": [
    {"name": "pid", "role": "direct_identifier", "faker": "id", "source": {"column": "pid"}},
    {"name": "sex", "kind": "categorical", "role": "quasi_identifier", "source": {"column": "sex"},
     "domain": {"categories": ["F", "M"]}},
    {"name": "age", "kind": "integer", "role": "quasi_identifier", "source": {"column": "age"},
     "domain": {"lower": 0, "upper": 100, "bins": 10}}]}


@pytest.mark.parametrize(("lines", "where", "fields"), [
    pytest.param(["pid,sex,age", "1,F,30", "2,M,40,", "3,F,50"], ":3:", "4 fields", id="one-row-too-long"),
    pytest.param(["pid,sex,age", "1,F,30,x", "2,M,40,y"], ":2:", "4 fields", id="every-row-too-long"),
    pytest.param(["pid,sex,age", "1,F,30", "2,M"], ":3:", "2 fields", id="row-too-short"),
    pytest.param(["pid,sex,age", "1,F,30", "", '2,"M', 'x",40', "3,F"], ":6:", "2 fields",
                 id="after-a-blank-line-and-a-quoted-line-break"),
])
def test_rows_longer_or_shorter_than_the_header_are_refused_with_their_line(tmp_path, lines, where, fields):
    """pandas would take the first field as the index (every row one longer: all columns
    shift by one), or fill short rows with blanks; both are errors here."""
    path = tmp_path / "ragged.csv"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(InputError, match=f"ragged.csv{where} {fields}, but the header \\(line 1\\) names 3"):
        read_table([path], load_schema(TOY))


def test_a_patient_id_given_twice_is_refused_naming_both_lines(tmp_path):
    first, second = tmp_path / "a.csv", tmp_path / "b.csv"
    first.write_text("pid,sex,age\n1,F,30\n2,M,40\n")
    second.write_text("pid,sex,age\n3,F,50\n2,M,41\n")
    with pytest.raises(InputError, match=r"b\.csv:3: the same patient id \(column 'pid'\) as .*a\.csv:3") as err:
        read_table([first, second], load_schema(TOY))
    assert ",40" not in str(err.value) and "'2'" not in str(err.value)  # never a value
    missing = tmp_path / "c.csv"
    missing.write_text("pid,sex,age\n1,F,30\n,M,40\n")
    with pytest.raises(InputError, match=r"c\.csv:3: column 'pid': no patient id"):
        read_table([missing], load_schema(TOY))


def test_the_view_is_keyed_by_patient_id_or_by_row_content(tmp_path):
    csv, parquet = tmp_path / "t.csv", tmp_path / "t.parquet"
    csv.write_text("pid,sex,age\n10,F,30\n11,M,40\n")
    view, report = read_table([csv], load_schema(TOY))
    assert list(view.index) == ["10", "11"] and report.patient_key == "column 'pid'"
    # without a declared id, a hash of each row: the same rows as Parquet, re-ordered, get the same keys
    no_id = load_schema({**TOY, "patient_id": None})
    pd.read_csv(csv).iloc[::-1].to_parquet(parquet, index=False)
    from_csv, _ = read_table([csv], no_id)
    from_parquet, report = read_table([parquet], no_id)
    assert sorted(from_csv.index) == sorted(from_parquet.index) and from_csv.index[0] == from_parquet.index[1]
    assert report.patient_key.startswith("a hash of each row")


@pytest.mark.parametrize("name", list(TABLES))
def test_output_keeps_each_columns_type_in_csv_and_parquet(tmp_path, name):
    """Integer and 0/1 columns are written as integers (never '1.0'), booleans as booleans."""
    import re

    need_tables()
    schema = load_schema(ROOT / "schemas" / "tabular" / f"{name}.yaml")
    result = synthesize([TABULAR / f"{name}.csv"], schema, tmp_path / "out", epsilon=1.0, rows=200, seed=3)
    text = pd.read_csv(result.out / "data" / "synthetic.csv", dtype=str, keep_default_na=False)
    parquet = pd.read_parquet(result.out / "data" / "synthetic.parquet")
    whole = re.compile(r"-?\d+")
    checked = 0
    for col in schema.columns:
        name_out = col.source.column or col.name
        values = text[name_out][text[name_out] != ""]
        integral = col.kind == "integer" or col.role == "direct_identifier" or (
            col.kind == "categorical" and getattr(col.domain, "integer_codes", False))
        if integral:
            assert values.map(lambda v: bool(whole.fullmatch(v))).all(), (name_out, values.head(3).tolist())
            assert pd.api.types.is_integer_dtype(parquet[name_out]), (name_out, parquet[name_out].dtype)
            checked += 1
        elif col.kind == "boolean":
            assert set(values) <= {"True", "False"} and pd.api.types.is_bool_dtype(parquet[name_out])
            checked += 1
    assert checked >= 3
