"""schema draft: the shipped table schemas are the shared dictionaries' drafts plus the hand edits listed in docs."""

from __future__ import annotations

import subprocess
import sys

import pytest
import yaml

from privsynth.errors import InputError
from privsynth.schema import load_schema
from privsynth.schema.draft import draft_schema, dump_draft
from tests.conftest import ROOT, SHARED

TABULAR = SHARED / "tabular"
# the hand edits of docs/schema.md ("Drafting a table schema"), per shipped schema
OTHER_ROLE = {"whas500": {"los", "lenfol"}, "flchain": {"sample_yr", "flc_grp", "futime"}, "nafld1": {"futime"},
              "rhc": {"time"}}
HAND_KEYS = {"target", "protected", "patient_id", "constraints", "structure", "description"}
DERIVED = {"nafld1": {"bmi"}}


@pytest.mark.parametrize("table", sorted(OTHER_ROLE))
def test_a_draft_passes_schema_check_and_the_shipped_schema_is_it_plus_the_listed_hand_edits(table):
    dictionary = TABULAR / f"{table}.dictionary.csv"
    if not dictionary.is_file():
        pytest.skip(f"shared dictionaries not found at {TABULAR}")
    draft = yaml.safe_load(dump_draft(draft_schema(dictionary), dictionary))
    load_schema(draft)  # passes schema check
    shipped = yaml.safe_load((ROOT / "schemas" / "tabular" / f"{table}.yaml").read_text())
    assert {k for k in set(draft) | set(shipped) if draft.get(k) != shipped.get(k)} - {"columns"} <= HAND_KEYS
    assert [c["name"] for c in draft["columns"]] == [c["name"] for c in shipped["columns"]]
    for mine, theirs in zip(draft["columns"], shipped["columns"]):
        name = mine["name"]
        if name in OTHER_ROLE[table]:
            assert (mine["role"], theirs["role"]) == ("sensitive", "other"), name
        else:
            assert mine["role"] == theirs["role"], name
        if name in DERIVED.get(table, set()):
            assert "derived" in theirs and "derived" not in mine
        same = ("source", "kind", "domain", "faker")
        assert {k: mine.get(k) for k in same} == {k: theirs.get(k) for k in same}, name


@pytest.mark.parametrize("rows, message", [
    pytest.param("column,type\nage,number\n", ":2: field 'type' of 'age'", id="unknown-type"),
    pytest.param("column,type,lower_bound,upper_bound\nage,integer,,110\n", ":2: field 'lower_bound'", id="no-bound"),
    pytest.param("column,type,lower_bound,upper_bound\nage,integer,90,10\n", "must be below", id="bounds-reversed"),
    pytest.param("column,type,levels\nsex,categorical,\n", ":2: field 'levels' of 'sex'", id="no-levels"),
    pytest.param("column,type\nage,binary\nage,binary\n", ":3: field 'column': 'age' is listed twice", id="twice"),
    pytest.param("name,type\nage,binary\n", ":1: the dictionary has no 'column' column", id="no-column-header"),
    pytest.param("column,type\n", "no rows", id="empty"),
])
def test_dictionary_errors_name_the_file_line_and_field(tmp_path, rows, message):
    path = tmp_path / "t.dictionary.csv"
    path.write_text(rows)
    with pytest.raises(InputError) as info:
        draft_schema(path)
    assert message in str(info.value) and str(path) in str(info.value)


def test_the_command_writes_a_new_file_only(tmp_path):
    path = tmp_path / "t.dictionary.csv"
    path.write_text("column,type,unit,lower_bound,upper_bound,meaning,levels,n_missing\n"
                    "pid,identifier,,,,Row number,,0\nage,integer,years,0,110,Age,,3\nsex,categorical,,,,Sex,F | M,0\n")
    out = tmp_path / "t.yaml"
    run = subprocess.run([sys.executable, "-m", "privsynth", "schema", "draft", "--dictionary", str(path), "--out",
                          str(out)], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    schema = load_schema(out)
    assert [c.name for c in schema.columns] == ["pid", "age", "sex"] and schema.patient_id.column is None
    assert schema.column("age").role == "quasi_identifier" and "n_missing" not in out.read_text()
    again = subprocess.run([sys.executable, "-m", "privsynth", "schema", "draft", "--dictionary", str(path), "--out",
                            str(out)], capture_output=True, text=True, timeout=120)
    assert again.returncode == 2 and "already exists" in again.stderr
