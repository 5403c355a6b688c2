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
    result = synthesize([small], schema, tmp_path / "out", epsilon=1.0, rows=500)
    out = pd.read_csv(result.out / "data" / "synthetic.csv")
    assert sorted(out["id"]) == list(range(1, 501))  # a permutation of 1..n, unrelated to the input


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
