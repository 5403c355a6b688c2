"""Rules and formulas: parsing, three-valued evaluation on rows, structural evaluation on
boxes of bins, and schema errors that name file, line and field."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from privsynth.errors import SchemaError
from privsynth.schema import load_schema
from privsynth.schema.rule import RuleSyntaxError, parse_formula, parse_rule
from tests.schema.test_load import GOOD, assert_schema_error, write


@pytest.mark.parametrize(("text", "rows", "violated"), [
    pytest.param("onset <= age", {"onset": [10, 50, np.nan, 5], "age": [20, 40, 30, np.nan]},
                 [False, True, False, False], id="comparison-missing-is-vacuous"),
    pytest.param("age < 16 -> m not in [M, D]", {"age": [10, 10, 30, np.nan], "m": ["M", "S", "M", "M"]},
                 [True, False, False, False], id="implication"),
    pytest.param("flag -> x is present", {"flag": ["true", "true", "false"], "x": [1.0, np.nan, np.nan]},
                 [False, True, False], id="exists-implies-present"),
    pytest.param("not (a > 1 or b > 1)", {"a": [0, 2, 0], "b": [0, 0, np.nan]}, [False, True, False],
                 id="kleene-or-with-unknown"),
    pytest.param("a + b <= 10", {"a": [3, 8], "b": [4, 4]}, [False, True], id="arithmetic"),
])
def test_rules_are_violated_only_where_surely_false(text, rows, violated):
    arrays = {k: (np.asarray(v, dtype=object) if isinstance(v[0], str) else np.asarray(v, dtype=float))
              for k, v in rows.items()}
    assert parse_rule(text).violated(arrays).tolist() == violated


@pytest.mark.parametrize(("text", "box", "impossible"), [
    pytest.param("onset <= age", {"onset": (50, 59), "age": (40, 44)}, True, id="onset-bin-above-age-bin"),
    pytest.param("onset <= age", {"onset": (40, 49), "age": (40, 44)}, False, id="overlapping-bins"),
    pytest.param("onset <= age", {"onset": None, "age": (40, 44)}, False, id="missing-onset"),
    pytest.param("age < 16 -> m in [S, missing]", {"age": (10, 14), "m": "M"}, True, id="child-married"),
    pytest.param("age < 16 -> m in [S, missing]", {"age": (15, 19), "m": "M"}, False, id="bin-straddles-16"),
    pytest.param("w / (h / 100) ** 2 <= 70", {"w": (100, 119), "h": (30, 59)}, True, id="bmi-formula"),
    pytest.param("w / (h / 100) ** 2 <= 70", {"w": (60, 69), "h": (170, 179)}, False, id="bmi-plausible"),
])
def test_a_cell_is_a_structural_zero_only_when_every_value_breaks_the_rule(text, box, impossible):
    assert parse_rule(text).surely_violated(box) is impossible


def test_formulas_compute_row_by_row_and_missing_stays_missing():
    bmi = parse_formula("body_weight / (body_height / 100) ** 2")
    out = bmi.evaluate({"body_weight": np.array([81.0, np.nan]), "body_height": np.array([180.0, 170.0])})
    assert out[0] == pytest.approx(25.0) and np.isnan(out[1])


@pytest.mark.parametrize("text", ["age <", "age << 3", "age in [", "-> x", "age + 3", "a < b c", "age @ 3"])
def test_syntax_errors_say_what_was_expected(text):
    with pytest.raises(RuleSyntaxError):
        parse_rule(text)


@pytest.mark.parametrize(("extra", "line", "words"), [
    pytest.param("constraints: [agee <= 3]", 23, ["constraints[0]", "no column 'agee'", "did you mean 'age'"],
                 id="unknown-column"),
    pytest.param("constraints: ['gender <= 3']", 23, ["'gender' is categorical", "in [...]"], id="category-as-number"),
    pytest.param("constraints: ['gender in [femal]']", 23, ["'femal' is not a category", "did you mean 'female'"],
                 id="unknown-code"),
    pytest.param("constraints: ['age <']", 23, ["constraints[0]", "ends too early"], id="syntax"),
    pytest.param("plausibility: [diabetes -> age]", 23, ["'age' is not boolean"], id="number-as-condition"),
    pytest.param("structure: {marginals: [[age, agge]]}", 23, ["'agge' is not a learned column"], id="structure"),
    pytest.param("structure: {share: 2, marginals: [[age, gender]]}", 23, ["share", "at most 0.9"],
                 id="structure-share"),
])
def test_rule_errors_name_file_line_and_field(tmp_path, extra, line, words):
    assert_schema_error(write(tmp_path, GOOD + extra + "\n"), line, words)


def test_a_derived_column_reads_learned_numbers_and_its_bounds_become_a_rule(tmp_path):
    text = GOOD.replace("  - name: diabetes\n", "  - name: age_twice\n    kind: numeric\n    role: other\n"
                        "    source: {resource: Patient, path: birthDate, transform: age}\n"
                        "    domain: {lower: 0, upper: 150}\n    derived: age * 2\n  - name: diabetes\n")
    schema = load_schema(write(tmp_path, text))
    derived = schema.column("age_twice")
    assert not derived.learned and derived.in_view and derived in schema.derived_columns
    assert "age_twice >= 0.0 and age_twice <= 150.0" in [r.text for r in schema.rules]
    bad = text.replace("derived: age * 2", "derived: gender * 2")
    with pytest.raises(SchemaError, match="'gender' is not a learned numeric column"):
        load_schema(write(tmp_path, bad))


def test_the_shipped_schema_implies_onset_rules(core_schema):
    implied = {r.text for r in core_schema.rules if r.kind == "implied"}
    assert {"diabetes_onset_age <= age", "diabetes -> diabetes_onset_age is present",
            "diabetes_onset_age is present -> diabetes", "bmi >= 10.0 and bmi <= 70.0"} <= implied
    assert core_schema.column("bmi").derived is not None and core_schema.structure is not None
    frame = pd.DataFrame({"age": [10], "marital_status": ["M"]})
    from privsynth.domain import rule_rows

    rows = rule_rows(frame, core_schema, [core_schema.column("age"), core_schema.column("marital_status")])
    marriage = next(r for r in core_schema.constraints if "marital_status" in r.columns)
    assert marriage.violated(rows).tolist() == [True]
