"""Patient timelines: the schema section, reading and bounding histories, the sensitivity of
what is measured, and the coherence of the FHIR histories written back."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from privsynth.domain import domain_sizes, encode
from privsynth.errors import SchemaError
from privsynth.history.bound import bound_view
from privsynth.pipeline import read_view, synthesize
from privsynth.schema.load import load_schema

ROOT = Path(__file__).resolve().parents[2]
TIMELINE = ROOT / "schemas" / "patient-timeline.yaml"
REF = dt.date(2024, 1, 1)


def _patient(pid: str, birth: str = "1960-05-01") -> dict:
    return {"resourceType": "Patient", "id": pid, "gender": "female", "birthDate": birth}


def _encounter(pid: str, eid: str, day: str, cls: str = "AMB") -> dict:
    return {"resourceType": "Encounter", "id": eid, "status": "finished",
            "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": cls},
            "subject": {"reference": f"Patient/{pid}"},
            "period": {"start": f"{day}T09:00:00Z", "end": f"{day}T10:00:00Z"}}


def _a1c(pid: str, oid: str, day: str, value: float) -> dict:
    return {"resourceType": "Observation", "id": oid, "status": "final",
            "code": {"coding": [{"system": "http://loinc.org", "code": "4548-4"}]},
            "subject": {"reference": f"Patient/{pid}"}, "effectiveDateTime": f"{day}T09:00:00Z",
            "valueQuantity": {"value": value, "unit": "%", "system": "http://unitsofmeasure.org", "code": "%"}}


def _write(tmp: Path, resources: list[dict]) -> Path:
    by_type: dict[str, list[str]] = {}
    for r in resources:
        by_type.setdefault(r["resourceType"], []).append(json.dumps(r))
    for rtype, lines in by_type.items():
        (tmp / f"{rtype}.ndjson").write_text("\n".join(lines) + "\n")
    return tmp


def test_the_shipped_timeline_schema_declares_its_streams():
    schema = load_schema(TIMELINE)
    assert schema.timeline is not None
    assert [s.name for s in schema.timeline.streams] == ["encounters", "labs", "medications", "procedures"]
    enc = schema.timeline.stream("encounters")
    assert (enc.window_years, enc.grain, enc.max_events, enc.max_per_grain) == (10, "year", 40, 8)
    assert "encounters_inpatient_y10" in schema.timeline.column_names
    assert "encounters_ambulatory" not in [c.name for c in schema.columns]  # dropped: the stream replaces it
    # year-to-year transitions are in the structural prior
    assert schema.structure is not None and ("labs_hba1c_y1", "labs_hba1c_y2") in schema.structure.marginals
    # admissions follow heart failure, COPD and stroke: each measured with the 3 latest inpatient cells
    inpatient = next(g for g in enc.groups if g.name == "inpatient")
    assert inpatient.follows == ("heart_failure", "copd", "stroke")
    assert {("heart_failure", f"encounters_inpatient_y{k}") for k in (1, 2, 3)} <= set(schema.structure.marginals)
    assert ("heart_failure", "encounters_inpatient_y4") not in schema.structure.marginals
    # an inhaler only with asthma or COPD (a structural zero), measured with each of them
    texts = [r.text for r in schema.rules]
    assert "medications_respiratory_y3 > 0 -> asthma or copd" in texts
    assert {("asthma", "medications_respiratory_y1"), ("copd", "medications_respiratory_y1")} <= set(
        schema.structure.marginals)


def test_admissions_in_the_cell_of_the_onset_they_follow_come_after_it():
    from privsynth.fhir.write import FhirWriter

    schema = load_schema(TIMELINE)
    n = 80
    frame = pd.DataFrame({"gender": ["female"] * n, "age": [70] * n, "heart_failure": [True] * n,
                          "heart_failure_onset_age": [69] * n, "encounters_inpatient_y1": [3] * n,
                          "encounters_inpatient_y2": [3] * n})
    writer = FhirWriter(schema, seed=2)
    same_cell = 0
    stream = schema.timeline.stream("encounters")
    for _who, _facts, resources in writer.patients(frame):
        onset = next(r["onsetDateTime"] for r in resources if r["resourceType"] == "Condition")
        for k in (0, 1):
            lo, hi = (d.isoformat() for d in stream.span(k, schema.reference))
            if not lo <= onset[:10] < hi:
                continue
            admissions = [e for e in resources if e["resourceType"] == "Encounter" and e["class"]["code"] == "IMP"
                          and lo <= e["period"]["start"][:10] < hi]
            # after it, the first of them at it when in the onset's year of life (the diagnosis
            # made at that admission)
            assert len(admissions) == 3 and all(e["period"]["start"] >= onset for e in admissions)
            assert sum(e["period"]["start"] == onset for e in admissions) <= 1
            same_cell += 1
    assert same_cell >= n // 2  # the onset age puts most onsets in the two latest cells
    assert writer.history.stats["inpatient placed after the onset of the condition they follow"] == 3 * same_cell


def test_a_hand_built_history_lands_in_its_cells_and_its_transitions_count_by_hand(tmp_path):
    """Two patients, events placed by hand: the cells are what a clinician would count, and
    the noise-free pair marginal of consecutive years is the transition table by hand."""
    schema = load_schema(TIMELINE)
    export = _write(tmp_path, [
        _patient("a"), _patient("b"),
        _encounter("a", "e1", "2023-06-01"), _encounter("a", "e2", "2023-07-01", "IMP"),
        _encounter("a", "e3", "2022-03-01"), _encounter("a", "e4", "2013-12-31"),  # outside the 10 years
        _a1c("a", "o1", "2023-06-01", 8.1), _a1c("a", "o2", "2023-09-01", 7.2), _a1c("a", "o3", "2022-03-01", 6.8),
        _encounter("b", "e5", "2023-02-02"),
    ])
    view, report = read_view([export], schema)
    a, b = view.loc["a"], view.loc["b"]
    assert (a["encounters_ambulatory_y1"], a["encounters_inpatient_y1"], a["encounters_ambulatory_y2"]) == (1, 1, 1)
    assert sum(a[f"encounters_ambulatory_y{k}"] for k in range(1, 11)) == 2  # 2013 is outside the window
    assert a["labs_hba1c_y1"] == 7.2 and a["labs_hba1c_y2"] == 6.8  # the year's last value
    assert b["encounters_ambulatory_y1"] == 1 and pd.isna(b["labs_hba1c_y1"])
    assert report.timeline["encounters"]["events_in_window"] == 4
    # noise-free transition counts: (y2, y1) ambulatory pairs = {(1, 1): a, (0, 1): b}
    codes, _ = encode(view, schema)
    names = [c.name for c in schema.learned_columns]
    i, j = names.index("encounters_ambulatory_y2"), names.index("encounters_ambulatory_y1")
    pairs = sorted(map(tuple, codes[:, [i, j]].tolist()))
    assert pairs == [(0, 1), (1, 1)]


def _diabetes(pid: str, cid: str, onset: str) -> dict:
    return {"resourceType": "Condition", "id": cid, "subject": {"reference": f"Patient/{pid}"},
            "code": {"coding": [{"system": "http://snomed.info/sct", "code": "44054006"}]},
            "onsetDateTime": f"{onset}T10:00:00Z"}


def test_a_lab_around_an_onset_keeps_the_value_at_the_diagnosis_and_about_a_year_after(tmp_path):
    """HbA1c around a diabetes diagnosis on 2021-03-01, by hand: at = the value nearest the
    onset within 90 days; after = the value nearest day 362.5 within days 180-545. A patient
    with values outside the spans and one without the condition have neither."""
    schema = load_schema(TIMELINE)
    export = _write(tmp_path, [
        _patient("a"), _patient("b"), _patient("c"),
        _diabetes("a", "c1", "2021-03-01"),
        _a1c("a", "o1", "2020-10-01", 6.4),  # 151 days before: outside +-90
        _a1c("a", "o2", "2021-02-20", 9.0),  # 9 days before: nearest the onset
        _a1c("a", "o3", "2021-03-21", 8.1),  # 20 days after
        _a1c("a", "o4", "2021-09-01", 7.5),  # day 184
        _a1c("a", "o5", "2022-03-05", 7.0),  # day 369: nearest the middle of 180-545
        _a1c("a", "o6", "2022-09-01", 6.6),  # day 549: outside
        _diabetes("b", "c2", "2019-01-10"), _a1c("b", "o7", "2023-01-01", 7.9),
        _a1c("c", "o8", "2021-03-01", 5.2),
    ])
    view, _ = read_view([export], schema)
    at, after = view["labs_hba1c_at_diabetes"], view["labs_hba1c_after_diabetes"]
    assert (at["a"], after["a"]) == (9.0, 7.0)
    assert at[["b", "c"]].isna().all() and after[["b", "c"]].isna().all()
    assert ("diabetes", "labs_hba1c_at_diabetes", "labs_hba1c_after_diabetes") in schema.structure.marginals
    assert any(r.text == "labs_hba1c_at_diabetes is present -> diabetes" for r in schema.rules)


def test_values_around_an_onset_are_written_on_the_diagnosis_day_and_a_year_after():
    from privsynth.fhir.write import FhirWriter

    schema = load_schema(TIMELINE)
    n = 60
    frame = pd.DataFrame({"gender": ["male"] * n, "age": [60] * n, "diabetes": [True] * n,
                          "diabetes_onset_age": [55] * (n // 2) + [59] * (n // 2),
                          "labs_hba1c_at_diabetes": [8.7] * n, "labs_hba1c_after_diabetes": [7.3] * n})
    writer = FhirWriter(schema, seed=3)
    seen = {"at": 0, "after": 0}
    for _who, _facts, resources in writer.patients(frame):
        onset = dt.datetime.fromisoformat(next(r["onsetDateTime"] for r in resources
                                               if r["resourceType"] == "Condition"))
        encounters = {e["id"]: e for e in resources if e["resourceType"] == "Encounter"}
        for r in resources:
            if r["resourceType"] != "Observation" or r["valueQuantity"]["value"] not in (8.7, 7.3):
                continue
            days = (dt.datetime.fromisoformat(r["effectiveDateTime"]) - onset).total_seconds() / 86400
            enc = encounters[r["encounter"]["reference"].split("/", 1)[1]]
            assert enc["period"]["start"][:10] == r["effectiveDateTime"][:10]
            if r["valueQuantity"]["value"] == 8.7:
                assert 0 < days < 1
                seen["at"] += 1
            else:
                assert 180 <= days <= 546 and r["effectiveDateTime"][:10] < REF.isoformat()
                seen["after"] += 1
    assert seen["at"] == n
    # onsets at 59 of a 60-year-old lie in the last year or two: a value a year later may be past the reference
    past = writer.history.stats["labs after an onset past the reference date, not written"]
    assert seen["after"] + past == n and seen["after"] >= n // 2 and past > 0


def test_more_than_max_events_keeps_the_most_recent_and_counts_the_rest(tmp_path):
    schema = load_schema(TIMELINE)
    stream = schema.timeline.stream("encounters")
    k = stream.max_events
    # K + 5 ambulatory visits, 5 a year for 9 years: each cell under its cap of 8
    days = [f"{2023 - year}-{month:02d}-10" for year in range(9) for month in (1, 3, 5, 7, 9)][:k + 5]
    export = _write(tmp_path, [_patient("p"), *[_encounter("p", f"e{n}", d) for n, d in enumerate(days)]])
    view, report = read_view([export], schema)
    kept = sum(int(view.loc["p", f"encounters_ambulatory_y{c}"]) for c in range(1, 11))
    assert kept == k
    assert report.timeline["encounters"]["dropped_over_max_events"] == 5
    assert report.timeline["encounters"]["patients_truncated"] == 1
    assert int(view.loc["p", "encounters_ambulatory_y1"]) == 5  # the most recent are kept


def test_a_cell_above_its_cap_is_capped_and_counted():
    schema = load_schema(TIMELINE)
    view = pd.DataFrame({c: [0] for c in schema.timeline.stream("encounters").columns(
        schema.timeline.stream("encounters").groups[0])})
    view["encounters_ambulatory_y1"] = 12
    for s in schema.timeline.streams[1:]:
        for g in s.groups:
            for c in s.columns(g):
                view[c] = [0] if s.kind == "count" else [None]
    for g in schema.timeline.stream("encounters").groups[1:]:
        for c in schema.timeline.stream("encounters").columns(g):
            view[c] = [0]
    bounded, report = bound_view(view, schema.timeline)
    assert bounded.loc[0, "encounters_ambulatory_y1"] == 8
    assert report["encounters"]["dropped_over_grain_cap"] == 4


def test_adding_a_patient_with_a_maximal_history_moves_every_marginal_by_at_most_one(tmp_path):
    """The sensitivity docs/privacy.md states: one patient is one row of the view, so every
    marginal (1-way, pairs, and any k-way) changes by exactly one count, L2 norm 1, however
    long the patient's history."""
    schema = load_schema(TIMELINE)
    base = [_patient("a"), _encounter("a", "e1", "2020-01-05"), _patient("b", "2001-01-01")]
    heavy = [_patient("x", "1950-01-01")]
    for year in range(2014, 2024):
        for n in range(30):  # 300 encounters of every class, far beyond every bound
            for cls in ("AMB", "EMER", "IMP"):
                heavy.append(_encounter("x", f"x{year}{n}{cls}", f"{year}-{1 + n % 12:02d}-{1 + n % 28:02d}", cls))
        for n in range(6):
            heavy.append(_a1c("x", f"a{year}{n}", f"{year}-{1 + 2 * n:02d}-03", 9.5))
    (tmp_path / "d").mkdir()
    (tmp_path / "dx").mkdir()
    view_d, _ = read_view([_write(tmp_path / "d", base)], schema)
    view_dx, _ = read_view([_write(tmp_path / "dx", base + heavy)], schema)
    codes_d, _ = encode(view_d, schema)
    codes_dx, _ = encode(view_dx, schema)
    sizes = domain_sizes(schema)
    rng = np.random.default_rng(0)
    d = len(sizes)
    cliques = [(j,) for j in range(d)] + [tuple(sorted(rng.choice(d, 2, replace=False))) for _ in range(200)] \
        + [tuple(sorted(rng.choice(d, 3, replace=False))) for _ in range(200)]
    for clique in cliques:
        shape = tuple(sizes[j] for j in clique)

        def marginal(codes: np.ndarray, clique: tuple = clique, shape: tuple = shape) -> np.ndarray:
            flat = np.ravel_multi_index(tuple(codes[:, j] for j in clique), shape)
            return np.bincount(flat, minlength=int(np.prod(shape))).astype(float)

        change = marginal(codes_dx) - marginal(codes_d)
        assert np.linalg.norm(change) == pytest.approx(1.0), clique


@pytest.mark.parametrize("text, message", [
    pytest.param("timeline: {streams: []}", "non-empty list of 'streams'", id="no-streams"),
    pytest.param("timeline: {streams: [{name: e, resource: Encounter, window_years: 5, groups: [{name: a, "
                 "where: [{path: class.code, in: [AMB]}]}]}]}", "max_events': must be a whole number", id="no-bound"),
    pytest.param("timeline: {streams: [{name: e, resource: Encounter, window_years: 5, grain: week, max_events: 4, "
                 "groups: [{name: a, where: [{path: class.code, in: [AMB]}]}]}]}", "grain'", id="bad-grain"),
    pytest.param("timeline: {streams: [{name: l, resource: Observation, window_years: 5, max_events: 4, "
                 "groups: [{name: a, codes: hba1c, path: valueQuantity}]}]}", "public 'domain'", id="no-domain"),
    pytest.param("timeline: {streams: [{name: m, resource: MedicationRequest, window_years: 5, max_events: 4, "
                 "groups: [{name: a, codes: hba1c, treats: nobody}]}]}", "'nobody' is not a condition column",
                 id="treats-unknown"),
    pytest.param("timeline: {streams: [{name: m, resource: MedicationRequest, window_years: 5, max_events: 4, "
                 "groups: [{name: a, codes: hba1c, treats: age}]}]}", "'age' is not a condition column",
                 id="treats-not-a-condition"),
    pytest.param("timeline: {streams: [{name: m, resource: MedicationRequest, window_years: 5, max_events: 4, "
                 "groups: [{name: a, codes: hba1c, treats: [asthma, nobody]}]}]}", "'nobody' is not a condition column",
                 id="treats-one-of-a-list-unknown"),
    pytest.param("timeline: {streams: [{name: m, resource: Procedure, window_years: 5, max_events: 4, "
                 "groups: [{name: a}]}]}", "'codes' (a code group) or 'where'", id="no-codes"),
    pytest.param("timeline: {streams: [{name: e, resource: Encounter, window_years: 30, grain: month, max_events: 4, "
                 "groups: [{name: a, where: [{path: class.code, in: [AMB]}]}]}]}", "cell columns", id="too-wide"),
    pytest.param("timeline: {streams: [{name: e, resource: Encounter, window_years: 5, max_events: 4, "
                 "groups: [{name: a, where: [{path: class.code, in: [IMP]}], follows: [heart_failure, bmi]}]}]}",
                 "'bmi' is not a condition column", id="follows-not-a-condition"),
    pytest.param("timeline: {streams: [{name: e, resource: Encounter, window_years: 5, max_events: 4, "
                 "groups: [{name: a, where: [{path: class.code, in: [IMP]}], around: {condition: diabetes, "
                 "at_days: 90, after_days: [180, 545]}}]}]}", "only a value stream's group", id="around-a-count"),
    pytest.param("timeline: {streams: [{name: l, resource: Observation, window_years: 5, max_events: 4, groups: "
                 "[{name: a, codes: hba1c, path: valueQuantity, domain: {lower: 3, upper: 20, bins: 4}, around: "
                 "{condition: deceased, at_days: 90, after_days: [180, 545]}}]}]}",
                 "'deceased' is not a condition column with an onset column", id="around-no-onset"),
    pytest.param("timeline: {streams: [{name: l, resource: Observation, window_years: 5, max_events: 4, groups: "
                 "[{name: a, codes: hba1c, path: valueQuantity, domain: {lower: 3, upper: 20, bins: 4}, around: "
                 "{condition: diabetes, at_days: 400, after_days: [500, 545]}}]}]}", "at most 366",
                 id="around-at-too-wide"),
    pytest.param("timeline: {streams: [{name: l, resource: Observation, window_years: 5, max_events: 4, groups: "
                 "[{name: a, codes: hba1c, path: valueQuantity, domain: {lower: 3, upper: 20, bins: 4}, around: "
                 "{condition: diabetes, at_days: 90, after_days: [60, 545]}}]}]}", "at_days < first",
                 id="around-after-overlaps-at"),
    pytest.param("drop_columns: [nope]", "'nope' is not a column", id="drop-unknown"),
    pytest.param("code_groups: {d: {system: rxnorm, codes: {'1': a}, indications: {'2': [stroke]}}}",
                 "'2' is not a code of this group", id="indication-of-an-unknown-code"),
    pytest.param("code_groups: {d: {system: rxnorm, codes: {'1': a}, indications: {'1': [bmi]}}}",
                 "'bmi' is not a condition column", id="indication-not-a-condition"),
])
def test_timeline_schema_errors_name_the_file_line_and_field(tmp_path, text, message):
    path = tmp_path / "s.yaml"
    (tmp_path / "patient-core.yaml").write_text((ROOT / "schemas" / "patient-core.yaml").read_text())
    path.write_text(f"privsynth_schema: 1\nname: t\nextends: patient-core.yaml\n{text}\n")
    with pytest.raises(SchemaError) as info:
        load_schema(path)
    assert message in str(info.value) and f"{path}:" in str(info.value)


def test_a_table_schema_cannot_declare_a_timeline(tmp_path):
    path = tmp_path / "t.yaml"
    path.write_text("privsynth_schema: 1\nname: t\ninput: table\ncolumns:\n"
                    "  - {name: a, kind: boolean, source: {column: a}}\n"
                    "timeline: {streams: []}\n")
    with pytest.raises(SchemaError, match="timelines are read from FHIR"):
        load_schema(path)


@pytest.fixture(scope="module")
def timeline_output(tmp_path_factory):
    from privsynth.example.hospital import write_example_export

    tmp = tmp_path_factory.mktemp("timeline")
    export = write_example_export(tmp / "export", 600, 3)
    synthesize([export], load_schema(TIMELINE), tmp / "out", epsilon=3, seed=5)
    resources: dict[str, list[dict]] = {}
    for f in (tmp / "out" / "fhir").glob("*.ndjson"):
        resources[f.stem] = [json.loads(line) for line in f.read_text().splitlines()]
    return tmp, resources


def _when(r: dict) -> str:
    return {"Encounter": lambda: r["period"]["start"], "Condition": lambda: r["onsetDateTime"],
            "Observation": lambda: r["effectiveDateTime"], "MedicationRequest": lambda: r["authoredOn"],
            "Procedure": lambda: r["performedPeriod"]["start"]}[r["resourceType"]]()


def test_synthetic_histories_are_linked_dated_inside_life_and_valid(timeline_output):
    from fhir.resources.R4B import get_fhir_model_class

    _, resources = timeline_output
    assert {"Encounter", "Condition", "Observation", "MedicationRequest", "Procedure"} <= set(resources)
    patients = {p["id"]: p for p in resources["Patient"]}
    encounters = {e["id"]: e for e in resources["Encounter"]}
    for rtype, items in resources.items():
        model = get_fhir_model_class(rtype)
        for r in items[:300]:
            # raises on an invalid resource; privsynth writes the model's own canonical JSON
            assert model.model_validate(r).model_dump(mode="json", exclude_none=True) == r
        if rtype in ("Patient", "Provenance"):  # the Provenance names every patient (tests/fhir/test_provenance.py)
            continue
        for r in items:
            pid = r["subject"]["reference"].split("/", 1)[1]
            assert pid in patients
            birth = patients[pid]["birthDate"]
            assert birth <= _when(r)[:10] <= REF.isoformat(), (rtype, birth, _when(r))
            if rtype != "Encounter":
                enc = encounters[r["encounter"]["reference"].split("/", 1)[1]]  # resolves
                assert enc["subject"] == r["subject"]
                assert enc["period"]["start"][:10] == _when(r)[:10]  # recorded at that visit


def test_treatments_follow_the_diagnosis_and_flags_agree_with_conditions(timeline_output):
    tmp, resources = timeline_output
    diabetes = {c["code"]["coding"][0]["code"] for c in resources["Condition"]} & {"44054006"}
    onset = {c["subject"]["reference"]: c["onsetDateTime"] for c in resources["Condition"]
             if c["code"]["coding"][0]["code"] in diabetes}
    metformin = [m for m in resources.get("MedicationRequest", [])
                 if m["medicationCodeableConcept"]["coding"][0]["code"] == "860975"]
    assert metformin, "the example's diabetics are treated; the model should say so at epsilon 3"
    for m in metformin:
        assert m["subject"]["reference"] in onset  # a treatment implies its condition
        assert onset[m["subject"]["reference"]] <= m["authoredOn"]
    table = pd.read_csv(tmp / "out" / "patients.csv")
    flagged = set(table.loc[table["diabetes"].astype(str) == "True", "patient_id"])
    assert flagged == {ref.split("/", 1)[1] for ref in onset}


def test_a_drug_is_one_the_patients_conditions_call_for():
    """A cardiovascular prescription of a patient with atrial fibrillation only is a drug
    declared for it (metoprolol, warfarin, digoxin, verapamil), never clopidogrel or
    nitroglycerin; a patient with no declared indication gets any of the group's drugs."""
    from privsynth.fhir.write import FhirWriter

    schema = load_schema(TIMELINE)
    group = schema.code_groups["cardiovascular_drugs"]
    for_af = {c.code for c in group.indicated({"atrial_fibrillation"})}
    assert for_af == {"866414", "855332", "197604", "897718"}
    n = 80
    stream = next(s for s in schema.timeline.streams if s.name == "medications")
    cells = {name: [1] * n for name in stream.columns(next(g for g in stream.groups if g.name == "cardiovascular"))}
    frame = pd.DataFrame({"gender": ["male"] * n, "age": [70] * n, "atrial_fibrillation": [True] * (n // 2) +
                          [False] * (n // 2), "atrial_fibrillation_onset_age": [50] * (n // 2) + [None] * (n // 2),
                          **cells})
    drugs: dict[bool, set[str]] = {True: set(), False: set()}
    for k, (_who, _facts, resources) in enumerate(FhirWriter(schema, seed=4).patients(frame)):
        drugs[k < n // 2] |= {r["medicationCodeableConcept"]["coding"][0]["code"] for r in resources
                              if r["resourceType"] == "MedicationRequest"}
    assert drugs[True] and drugs[True] <= for_af
    assert len(drugs[False] - for_af) > 0  # without an indication: any of the group's


def test_what_placement_added_or_moved_is_counted_in_the_internal_report(timeline_output):
    tmp, resources = timeline_output
    placement = json.loads((tmp / "out.internal.json").read_text())["history_placement"]
    assert placement and all(isinstance(v, int) and v > 0 for v in placement.values())
    # every encounter placement added is in the output: the history's own encounters are the rest
    added = sum(v for k, v in placement.items() if k.startswith("encounters added"))
    assert 0 < added < len(resources["Encounter"])
