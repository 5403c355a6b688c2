"""Public clinical structure in the model: structural zeros get probability exactly 0, every
synthetic row satisfies every hard rule (full and partial synthesis), derived columns equal
their formula, protected columns are never compressed, and the table and the FHIR written
from one sample agree row by row."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from privsynth.domain import rule_rows
from privsynth.generator import Synthesizer
from privsynth.generator.constraint import violations, zero_masks
from privsynth.schema import load_schema

SCHEMA = {"name": "clinic", "input": "table", "protected": ["sex"],
          "constraints": ["age < 16 -> married in [no, missing]", "dx_onset <= age", "dx -> dx_onset is present",
                          "dx_onset is present -> dx"],
          "plausibility": ["age < 12 -> height <= 160"],
          "columns": [
              {"name": "sex", "kind": "categorical", "role": "quasi_identifier", "source": {"column": "sex"},
               "domain": {"categories": ["F", "M", "X"]}},
              {"name": "age", "kind": "integer", "role": "quasi_identifier", "source": {"column": "age"},
               "domain": {"lower": 0, "upper": 99, "bins": {"width": 10}}},
              {"name": "married", "kind": "categorical", "role": "quasi_identifier", "source": {"column": "married"},
               "domain": {"categories": ["no", "yes"]}},
              {"name": "dx", "kind": "boolean", "role": "sensitive", "source": {"column": "dx"}},
              {"name": "dx_onset", "kind": "integer", "role": "sensitive", "source": {"column": "dx_onset"},
               "domain": {"lower": 0, "upper": 99, "bins": {"width": 10}}},
              {"name": "weight", "kind": "numeric", "role": "sensitive", "source": {"column": "weight"},
               "domain": {"lower": 2, "upper": 200, "bins": [2, 20, 40, 60, 80, 100, 200]}},
              {"name": "height", "kind": "numeric", "role": "sensitive", "source": {"column": "height"},
               "domain": {"lower": 40, "upper": 220, "bins": [40, 100, 140, 160, 180, 220]}},
              {"name": "bmi", "kind": "numeric", "role": "sensitive", "source": {"column": "bmi"},
               "domain": {"lower": 10, "upper": 70, "bins": 6}, "derived": "weight / (height / 100) ** 2"},
          ]}


def clinic(n: int, rng: np.random.Generator) -> pd.DataFrame:
    """Coherent patients: married only as adults, onset before the age, height and weight by age."""
    age = rng.integers(0, 90, n)
    grown = np.minimum(age, 18) / 18
    height = 50 + 120 * grown + rng.normal(0, 6, n)
    weight = np.clip(3 + 70 * grown ** 1.5 + rng.normal(0, 8, n), 2.5, 190)
    dx = rng.random(n) < 0.1 + 0.004 * age
    onset = np.where(dx, np.floor(age * rng.uniform(0.3, 1.0, n)), np.nan)
    married = np.where((age >= 18) & (rng.random(n) < 0.6), "yes", "no")
    return pd.DataFrame({"sex": rng.choice(["F", "M", "X"], n, p=[0.49, 0.49, 0.02]), "age": age,
                         "married": married, "dx": dx, "dx_onset": onset, "weight": weight,
                         "height": np.clip(height, 41, 219), "bmi": weight / (height / 100) ** 2})


@pytest.fixture(scope="module")
def fitted():
    schema = load_schema(SCHEMA)
    data = clinic(4000, np.random.default_rng(1))
    return schema, data, Synthesizer(schema, epsilon=1.0).fit(data)


def test_structural_zeros_are_exactly_zero_and_never_sampled(fitted):
    """Hand-checked: an onset bin entirely above the age bin, a child bin married, a flag
    without its onset, are impossible cells."""
    schema, _, synth = fitted
    names = [c.name for c in schema.learned_columns]
    a, m, d, o = (names.index(x) for x in ("age", "married", "dx", "dx_onset"))
    masks = zero_masks(schema)
    assert not masks[(a, o)][2, 5] and masks[(a, o)][5, 2]  # onset [50, 60) > age [20, 30); the other way is fine
    assert not masks[(a, m)][0, 1] and masks[(a, m)][2, 1]  # married at [0, 10): no; at [20, 30): yes
    assert not masks[(d, o)][0, 3] and not masks[(d, o)][1, 10] and masks[(d, o)][0, 10]  # no dx with onset...
    model = synth.model_
    joint = model.marginal((a, o))
    assert joint[2, 5:10].sum() == 0.0 and joint[0, 1:10].sum() == 0.0
    assert model.marginal((a, m))[0:1, 1].sum() == 0.0
    codes = model.sample(10_000, np.random.default_rng(2))
    assert not ((codes[:, a] < codes[:, o]) & (codes[:, o] < 10)).any()  # onset bin above the age bin
    assert not ((codes[:, a] <= 0) & (codes[:, m] == 1)).any()
    assert not ((codes[:, d] == 0) & (codes[:, o] < 10)).any()  # an onset without the condition


def test_every_sampled_row_satisfies_every_hard_rule(fitted):
    schema, data, synth = fitted
    sample = synth.sample(10_000, rng=3)
    assert len(sample) == 10_000 and not violations(sample, schema, schema.rules).any()
    rows = rule_rows(sample, schema)
    onset, age = rows["dx_onset"], rows["age"]
    assert (np.isnan(onset) | np.isnan(age) | (onset <= age)).all() and (~np.isnan(onset) & (onset <= age)).any()
    # the panel is steered inside bins: children taller than 160 cm only where the bins force it,
    # i.e. where the DP model puts an age bin wholly under 12 ([0, 10)) with a height bin wholly
    # over 160 ([160, 180), [180, 220]); elsewhere a redraw inside the bins satisfies the panel
    names = [c.name for c in schema.learned_columns]
    joint = synth.model_.marginal((names.index("age"), names.index("height")))
    forced = float(joint[0, 3:5].sum() / joint.sum())
    children = rows["age"] < 12
    assert ((rows["height"] > 160) & children).mean() <= forced + 0.005
    assert ((data["height"] > 160) & (data["age"] < 12)).mean() == 0  # the real children are all shorter


def test_derived_columns_equal_their_formula_in_every_output(fitted):
    schema, data, synth = fitted
    for frame in (synth.sample(2000, rng=4), synth.sample_partial(data.head(2000), ["sex", "age"], rng=5)):
        expected = frame["weight"].astype(float) / (frame["height"].astype(float) / 100) ** 2
        both = expected.notna() & frame["bmi"].notna()
        assert both.sum() > 1000 and np.allclose(frame["bmi"][both].astype(float), expected[both], atol=1e-5)
        assert frame["bmi"].dropna().astype(float).between(10, 70).all()  # its bounds are a rule


def test_partial_synthesis_keeps_real_columns_and_satisfies_the_rules(fitted):
    schema, data, synth = fitted
    real = data.head(3000)
    out = synth.sample_partial(real, ["sex", "age"], rng=6)
    assert out["age"].tolist() == real["age"].tolist() and out["sex"].tolist() == real["sex"].tolist()
    assert not violations(out, schema, schema.rules).any()


def test_protected_columns_are_never_compressed(fitted):
    """'X' holds 2% of patients: without protection, noise at this budget would merge it away."""
    schema, _, synth = fitted
    sex = [c.name for c in schema.learned_columns].index("sex")
    comp = synth.model_.compressions[sex]
    assert comp.rare.size == 0 and comp.size == schema.column("sex").domain.size


def test_the_table_and_the_fhir_agree_row_by_row(core_schema, tmp_path):
    """One code path writes both: every patients.csv row's age, conditions, onsets and
    observations are what its FHIR resources say."""
    import json

    from privsynth.example.hospital import write_example_export
    from privsynth.pipeline import synthesize

    export = write_example_export(tmp_path / "export", 300, 0)
    out = synthesize([export], core_schema, tmp_path / "out", epsilon=1.0, rows=150, seed=1).out
    table = pd.read_csv(out / "patients.csv", dtype=str)
    resources = {t: [json.loads(line) for line in (out / "fhir" / f"{t}.ndjson").read_text().splitlines()]
                 for t in ("Patient", "Condition", "Observation")}
    by_patient: dict[str, list[dict]] = {}
    for t in ("Condition", "Observation"):
        for r in resources[t]:
            by_patient.setdefault(r["subject"]["reference"].split("/")[1], []).append(r)
    patients = {p["id"]: p for p in resources["Patient"]}
    reference = pd.Timestamp(core_schema.reference)
    groups = {g.codes[0].code: name for name, g in core_schema.code_groups.items()}
    checked = 0
    for _, row in table.iterrows():
        birth = pd.Timestamp(patients[row["patient_id"]]["birthDate"])
        age = (reference - birth).days // 365.25
        if isinstance(row["age"], str):
            assert abs(age - int(row["age"])) <= 1 and int(row["age"]) == _years(birth, reference)
        mine = by_patient.get(row["patient_id"], [])
        for cond in (r for r in mine if r["resourceType"] == "Condition"):
            group = groups[cond["code"]["coding"][0]["code"]]
            assert row[group] == "True"
            onset_col = f"{group}_onset_age"
            onset = pd.Timestamp(cond["onsetDateTime"]).tz_localize(None)
            assert birth <= onset.normalize() <= reference  # by day: an onset on the reference day is not after it
            if onset_col in row and isinstance(row[onset_col], str):
                assert _years(birth, onset) == int(row[onset_col])
                checked += 1
        for obs in (r for r in mine if r["resourceType"] == "Observation"):
            for part in obs.get("component", [obs]):  # a panel (blood pressure) carries its values as components
                col = next(c for c in core_schema.view_columns
                           if c.output.get("code") == part["code"]["coding"][0]["code"])
                assert part["valueQuantity"]["value"] == pytest.approx(float(row[col.name]), abs=0.051)
    assert checked > 5


def _years(start: pd.Timestamp, end: pd.Timestamp) -> int:
    return end.year - start.year - int((end.month, end.day) < (start.month, start.day))


def test_the_last_resort_repair_makes_two_changes_when_one_cannot_help(fitted):
    """A real age of 0 with a drawn condition whose onset bin is [10, 20): no single change
    helps (dropping the condition leaves an onset without it; dropping the onset leaves the
    condition without one; every other onset bin is above the age too), so the repair must
    drop both together."""
    from privsynth.generator.constraint import enforced, repair

    schema, _, _ = fitted
    names = [c.name for c in schema.learned_columns]
    row = pd.DataFrame({"sex": ["F"], "age": pd.array([0], dtype="Int64"), "married": ["no"],
                        "dx": pd.array([True], dtype="boolean"), "dx_onset": pd.array([15], dtype="Int64"),
                        "weight": [4.0], "height": [55.0], "bmi": [4.0 / 0.55 ** 2]})
    codes = np.zeros((1, len(names)), dtype=np.int64)
    onset_missing = schema.column("dx_onset").domain.size - 1

    def one_way(j: int) -> np.ndarray:
        w = np.ones(schema.learned_columns[j].domain.size)
        if names[j] == "dx_onset":
            w[0] = 0.0  # never the one bin that could hold an onset at age 0
        return w

    rules = enforced(schema, ["sex", "age"])
    assert violations(row, schema, rules).all()
    for seed in range(5):
        frame, c = row.copy(), codes.copy()
        left = repair(frame, c, np.array([0]), schema, np.random.default_rng(seed), {}, rules, ["sex", "age"], one_way)
        assert len(left) == 0 and not violations(frame, schema, rules).any()
        assert not frame["dx"].fillna(False).astype(bool).iloc[0] and pd.isna(frame["dx_onset"].iloc[0])
        assert c[0, names.index("dx_onset")] == onset_missing and frame["age"].iloc[0] == 0


def test_a_conditioned_number_and_a_free_one_move_together_when_a_rule_needs_both():
    """``sample --where age=[10, 20),married=yes`` on a row with a child's weight: an age below
    16 breaks the marriage rule, an age of 16-19 the weight rule, so no draw of the age alone
    and no repair of the weight at one age can help: the conditioned age must be drawn again
    and the weight repaired with it. The condition (the bins) holds throughout."""
    from privsynth.domain import encode
    from privsynth.generator.constraint import satisfy

    schema = load_schema({**SCHEMA, "constraints": [*SCHEMA["constraints"], "age >= 16 -> weight >= 40"]})
    names = [c.name for c in schema.learned_columns]
    rows = pd.DataFrame({"sex": ["F"] * 3, "age": pd.array([12] * 3, dtype="Int64"), "married": ["yes"] * 3,
                         "dx": pd.array([False] * 3, dtype="boolean"), "dx_onset": pd.array([None] * 3, dtype="Int64"),
                         "weight": [25.0] * 3, "height": [130.0] * 3, "bmi": [25.0 / 1.3 ** 2] * 3})
    codes, _ = encode(rows, schema)
    assert violations(rows, schema, schema.rules).all()

    # the model has nothing better to offer
    def redraw(bad: np.ndarray, held: dict[int, np.ndarray]) -> tuple[pd.DataFrame, np.ndarray]:
        return rows.iloc[bad].reset_index(drop=True), codes[bad].copy()

    def one_way(j: int) -> np.ndarray:
        return np.ones(schema.learned_columns[j].domain.size)

    for seed in range(5):
        out = satisfy(rows.copy(), codes.copy(), schema, np.random.default_rng(seed), {}, redraw, one_way=one_way,
                      pinned=["age", "married"])
        assert not violations(out, schema, schema.rules).any()
        assert out["age"].between(16, 19).all() and (out["married"] == "yes").all()
        assert ((out["weight"] >= 40) | out["weight"].isna()).all()
        again, _ = encode(out, schema)
        assert (again[:, names.index("age")] == codes[:, names.index("age")]).all()


def test_a_row_mended_by_the_last_whole_row_redraw_is_kept():
    """The last of the whole-row redraws may be the one that mends a row: it is kept, not
    reported as 'still breaking a rule' (only a partial synthesis stops redrawing after rounds
    that mend nothing: its real kept values may leave fresh rows no room)."""
    from privsynth.domain import encode
    from privsynth.generator.constraint import ROW_ROUNDS, satisfy

    schema = load_schema(SCHEMA)
    broken = pd.DataFrame({"sex": ["F"], "age": pd.array([5], dtype="Int64"), "married": ["yes"],
                           "dx": pd.array([False], dtype="boolean"), "dx_onset": pd.array([None], dtype="Int64"),
                           "weight": [20.0], "height": [110.0], "bmi": [20.0 / 1.1 ** 2]})
    good = broken.assign(married="no")
    calls = []

    def redraw(bad: np.ndarray, held: dict[int, np.ndarray]) -> tuple[pd.DataFrame, np.ndarray]:
        calls.append(1)
        rows = good if len(calls) == ROW_ROUNDS else broken
        return rows.copy(), encode(rows, schema)[0]

    out = satisfy(broken.copy(), encode(broken, schema)[0], schema, np.random.default_rng(0), {}, redraw)
    assert len(calls) == ROW_ROUNDS and out["married"].iloc[0] == "no"


@pytest.mark.parametrize("broken_rule", ["hard", "panel"])
def test_a_redrawn_row_keeps_who_the_patient_is(broken_rule):
    """A row a rule catches is drawn again given its quasi-identifiers' codes first (a child
    stays a child): whole-row rejection would trade the rows a rule catches most (children,
    under growth rules) for adults, and the model's counts of ages would not stand."""
    from privsynth.domain import encode
    from privsynth.generator.constraint import satisfy

    schema = load_schema(SCHEMA)
    names = [c.name for c in schema.learned_columns]
    child = {"sex": ["F"], "age": pd.array([5], dtype="Int64"), "married": ["no"],
             "dx": pd.array([False], dtype="boolean"), "dx_onset": pd.array([None], dtype="Int64"),
             "weight": [20.0], "height": [110.0], "bmi": [20.0 / 1.1 ** 2]}
    bad = pd.DataFrame({**child, **({"dx": pd.array([True], dtype="boolean"), "dx_onset": pd.array([40], dtype="Int64")}
                                    if broken_rule == "hard" else {"height": [170.0], "bmi": [20.0 / 1.7 ** 2]})})
    good_child = pd.DataFrame(child)
    adult = good_child.assign(age=pd.array([50], dtype="Int64"), weight=[70.0], height=[170.0],
                              bmi=[70.0 / 1.7 ** 2])
    asked: list[set[str]] = []

    def redraw(rows: np.ndarray, held: dict[int, np.ndarray]) -> tuple[pd.DataFrame, np.ndarray]:
        asked.append({names[j] for j in held})
        out = pd.concat([good_child if held else adult] * len(rows), ignore_index=True)
        if held:
            assert (held[names.index("age")] == encode(bad, schema)[0][0, names.index("age")]).all()
        return out, encode(out, schema)[0]

    out = satisfy(bad.copy(), encode(bad, schema)[0], schema, np.random.default_rng(0), {}, redraw)
    assert asked and asked[0] == {"age", "married"}  # the quasi-identifiers a rule reads (not the sex)
    assert out["age"].iloc[0] == 5 and not violations(out, schema, (*schema.rules, *schema.plausibility)).any()


def test_conditioned_numbers_and_the_onsets_they_pin_are_mended_one_rule_at_a_time():
    """``sample --where age=[10, 20) dx1=true ...``: conditions only from 18 and each onset in
    [18, 30) at most the age leave an age of 18-19 with every onset 18 (or 19): a joint
    uniform draw of the age and three onsets lands about once in 2,000 tries; drawn rule by
    rule (the age for the rules on it alone, then each onset for its own rule) every row is
    mended, inside the conditioned bins."""
    from privsynth.domain import encode
    from privsynth.generator.constraint import within_pinned_bins

    onset_bins = [0, 18, 30, 40, 50, 60, 70, 80, 99]
    columns = [{"name": "age", "kind": "integer", "role": "quasi_identifier", "source": {"column": "age"},
                "domain": {"lower": 0, "upper": 99, "bins": {"width": 10}}}]
    rules = []
    for k in (1, 2, 3):
        columns += [{"name": f"dx{k}", "kind": "boolean", "role": "sensitive", "source": {"column": f"dx{k}"}},
                    {"name": f"dx{k}_onset", "kind": "integer", "role": "sensitive",
                     "source": {"column": f"dx{k}_onset"}, "domain": {"lower": 0, "upper": 99, "bins": onset_bins}}]
        rules += [f"age < 18 -> not dx{k}", f"dx{k} -> dx{k}_onset >= 18", f"dx{k} -> dx{k}_onset is present",
                  f"dx{k}_onset is present -> dx{k}", f"dx{k}_onset <= age"]
    schema = load_schema({"name": "pinned", "input": "table", "constraints": rules, "columns": columns})
    n = 20
    rows = pd.DataFrame({"age": pd.array([15] * n, dtype="Int64"),
                         **{f"dx{k}": pd.array([True] * n, dtype="boolean") for k in (1, 2, 3)},
                         **{f"dx{k}_onset": pd.array([25] * n, dtype="Int64") for k in (1, 2, 3)}})
    codes, _ = encode(rows, schema)
    numbers = {c.name: j for j, c in enumerate(schema.learned_columns) if c.kind == "integer"}
    assert violations(rows, schema, schema.rules).all()
    left = within_pinned_bins(rows, codes, np.arange(n), schema, np.random.default_rng(0), schema.rules, ["age"],
                               numbers)
    assert len(left) == 0 and not violations(rows, schema, schema.rules).any()
    assert rows["age"].between(18, 19).all()
    again, _ = encode(rows, schema)
    assert (again == codes).all()  # every number stayed inside its bin
