"""`privsynth release` and `privsynth audit` end to end on a shared real table (rhc:
5,735 patients x 55 columns), and the leak suite: copies and near-copies are refused,
clean DP output passes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.conftest import ROOT, SHARED

RHC = SHARED / "tabular" / "rhc.csv"
RHC_SCHEMA = ROOT / "schemas" / "tabular" / "rhc.yaml"


def row_hash_policy(tmp: Path, extra: str = "") -> str:
    """A policy file that lets rhc be released: it has no stable patient id, so its patients
    are keyed by a hash of their row, which the default policy refuses (issue 19)."""
    path = tmp / "row-hash.yaml"
    path.write_text("allow_row_hash_key: 1\n" + extra)
    return str(path)


def need_rhc() -> None:
    if not RHC.is_file():
        pytest.skip(f"shared data not found at {SHARED}")


def cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "privsynth", *args], capture_output=True, text=True, cwd=cwd,
                          timeout=600)


@pytest.fixture(scope="module")
def rhc():
    need_rhc()
    from privsynth.audit import holdout_split
    from privsynth.schema import load_schema
    from privsynth.table import read_table

    schema = load_schema(RHC_SCHEMA)
    view, _ = read_table([RHC], schema)
    train_rows, holdout_rows = holdout_split(len(view), 0.2, 1000, np.random.default_rng(0))
    return schema, view.iloc[train_rows].reset_index(drop=True), view.iloc[holdout_rows].reset_index(drop=True)


@pytest.fixture(scope="module")
def clean_samples(rhc):
    """Ten clean DP samples at epsilon 1, from ten independent fits."""
    from privsynth.generator import Synthesizer

    schema, train, _ = rhc
    return [Synthesizer(schema, 1.0).fit(train).sample(None, rng=seed) for seed in range(10)]


def test_clean_dp_output_passes_ten_of_ten(rhc, clean_samples):
    from privsynth.audit import evaluate

    schema, train, holdout = rhc
    failures = []
    for seed, sample in enumerate(clean_samples):
        result = evaluate(train, holdout, sample, schema, epsilon=1.0, seed=seed)
        failures += [c.line() for c in result.failures()]
    assert failures == []


@pytest.mark.parametrize("leak", ["verbatim", "copies", "near-copies"],
                         ids=["verbatim-copy-of-train", "2pct-verbatim-copies", "1pct-near-copies"])
def test_leaks_are_refused(rhc, clean_samples, leak):
    from privsynth.audit import evaluate
    from privsynth.audit.canary import plant

    schema, train, holdout = rhc
    for seed in range(3):
        synthetic = plant(leak, clean_samples[seed], train, schema, np.random.default_rng(seed))
        result = evaluate(train, holdout, synthetic, schema, epsilon=1.0, seed=seed)
        assert not result.passed, f"{leak} (seed {seed}) was not refused"


def test_release_writes_manifest_and_keeps_audit_outside(tmp_path):
    need_rhc()
    out, run = release_retrying(tmp_path, str(RHC), "--schema", str(RHC_SCHEMA), "--epsilon", "1", "--json",
                                "--policy", row_hash_policy(tmp_path))
    assert run.returncode == 0, run.stderr + run.stdout
    manifest = json.loads((out / "manifest.json").read_text())
    printed = json.loads(run.stdout)  # --json: one document on stdout, the tables on stderr
    assert printed["released"] is True and printed["manifest"] == manifest and "RELEASED" in run.stderr
    from privsynth.release.release import sha256_file

    files = {str(p.relative_to(out)) for p in out.rglob("*") if p.is_file()} - {"manifest.json"}
    assert set(manifest["files"]) == files and "data/synthetic.csv" in files
    assert all(manifest["files"][f] == sha256_file(out / f) for f in files)
    assert "inputs" not in manifest and "ledger" not in manifest
    assert manifest["schema"]["sha256"] == sha256_file(RHC_SCHEMA)
    assert manifest["epsilon"] == 1.0 and manifest["audit"]["passed"] is True
    assert {v["verdict"] for v in manifest["audit"]["verdicts"]} <= {"pass", "info"}
    assert all(set(v) == {"audit", "check", "rule", "verdict"} for v in manifest["audit"]["verdicts"])
    assert manifest["policy"]["weakened"] == ["allow_row_hash_key: 1 (default 0)"]  # rhc has no stable id
    assert manifest["patient_key"]["row_hash"] is True
    # the full audit (real-data figures) is beside the release, never inside it
    internal = json.loads((out.parent / "release.audit.json").read_text())
    assert not list(out.rglob("*audit*")) and internal["release_id"] == manifest["release_id"]
    assert internal["inputs"][0]["sha256"] == sha256_file(RHC) and internal["patients"]["input"] == 5735
    show = cli("budget", "show", "--ledger", str(out.parent / "l.sqlite3"))
    assert show.returncode == 0 and "default" in show.stdout and "5,735" not in show.stdout  # no counts unless asked
    assert "patients" not in json.loads(cli("budget", "show", "--ledger", str(out.parent / "l.sqlite3"),
                                            "--json").stdout)["budgets"][0]
    show = cli("budget", "show", "--ledger", str(out.parent / "l.sqlite3"), "--show-counts")
    assert show.returncode == 0 and "5,735" in show.stdout
    shown = json.loads(cli("budget", "show", "--ledger", str(out.parent / "l.sqlite3"), "--json",
                           "--show-counts").stdout)
    (budget,) = shown["budgets"]
    assert budget["budget"] == "default" and budget["patients"] == 5735 and budget["released"] == 1
    from privsynth.privacy.mechanism import rho_for

    # the release's rho (epsilon 1 at delta 1e-6), shown as epsilon at the budget's own delta (1e-5)
    assert budget["worst_rho_spent"] == pytest.approx(rho_for(1.0, 1e-6), rel=1e-9)
    assert budget["delta"] == 1e-5 and 0.8 < budget["worst_epsilon_spent"] < 1.0


def test_a_memorising_generator_is_refused_writes_no_data_and_attempts_are_capped(tmp_path, monkeypatch):
    """A generator bug that returns its training patients: the gate refuses it (exit 3, the
    reasons on one screen, no data written), the charge stays, and attempts are capped."""
    need_rhc()
    from click.testing import CliRunner

    import privsynth.pipeline as pipeline_module
    from privsynth.cli import main
    from privsynth.generator import Synthesizer

    class Memorising(Synthesizer):
        def fit(self, data, progress=None):
            self.seen_ = data.reset_index(drop=True)
            return super().fit(data, progress)

        def sample(self, n_rows=None, rng=None):
            return self.seen_.copy()

    monkeypatch.setattr(pipeline_module, "Synthesizer", Memorising)  # the one fit step release uses
    policy = tmp_path / "strict.yaml"
    policy.write_text("max_attempts: 2\nallow_row_hash_key: 1\n")
    ledger = tmp_path / "ledger.sqlite3"
    runner = CliRunner()
    for attempt in range(2):
        out = tmp_path / f"r{attempt}"
        run = runner.invoke(main, ["release", str(RHC), "--schema", str(RHC_SCHEMA), "--epsilon", "0.5",
                                   "--policy", str(policy), "--ledger", str(ledger), "--out", str(out)])
        assert run.exit_code == 3, run.output
        assert "release refused" in run.output and "exact matches" in run.output and "AUC" in run.output
        assert not out.exists() and not list(tmp_path.glob(f".r{attempt}*"))
    run = runner.invoke(main, ["release", str(RHC), "--schema", str(RHC_SCHEMA), "--epsilon", "0.5", "--policy",
                               str(policy), "--ledger", str(ledger), "--out", str(tmp_path / "r2")])
    assert run.exit_code == 2 and "some of this input's patients have been in 2 release attempts" in run.output
    assert "5,735" not in run.output  # no exact count on the operator's screen unless asked
    run = runner.invoke(main, ["release", str(RHC), "--schema", str(RHC_SCHEMA), "--epsilon", "0.5", "--policy",
                               str(policy), "--ledger", str(ledger), "--out", str(tmp_path / "r2"), "--show-counts"])
    assert run.exit_code == 2 and "5,735 of this input's patients have been in 2 release attempts" in run.output


def test_too_few_patients_is_a_clear_error(tmp_path):
    need_rhc()
    whas = SHARED / "tabular" / "whas500.csv"
    run = cli("release", str(whas), "--schema", str(ROOT / "schemas" / "tabular" / "whas500.yaml"),
              "--epsilon", "1", "--ledger", str(tmp_path / "l.sqlite3"), "--out", str(tmp_path / "r"), "--policy",
              row_hash_policy(tmp_path))
    assert run.returncode == 2 and "too few patients to audit" in run.stderr and "needs at least 5599" in run.stderr
    from privsynth.privacy.ledger import Ledger

    assert Ledger(tmp_path / "l.sqlite3").budgets() == []  # refused before anything was charged


def test_audit_command_on_another_tools_tables(rhc, clean_samples, tmp_path):
    schema, train, holdout = rhc
    columns = {c.name: c.source.column or c.name for c in schema.columns}
    paths = {}
    for name, frame in (("train", train), ("holdout", holdout), ("clean", clean_samples[0]), ("copy", train)):
        paths[name] = tmp_path / f"{name}.csv"
        frame.rename(columns=columns).to_csv(paths[name], index=False)
    common = ["audit", "--schema", str(RHC_SCHEMA), "--train", str(paths["train"]), "--holdout", str(paths["holdout"])]
    passed = cli(*common, "--synthetic", str(paths["clean"]), "--epsilon", "1", "--figures", str(tmp_path / "a.json"))
    assert passed.returncode == 0, passed.stdout + passed.stderr
    assert "PASS" in passed.stdout and json.loads((tmp_path / "a.json").read_text())["passed"] is True
    printed = cli(*common, "--synthetic", str(paths["clean"]), "--epsilon", "1", "--json")
    assert printed.returncode == 0 and json.loads(printed.stdout)["passed"] is True and "PASS" in printed.stderr
    failed = cli(*common, "--synthetic", str(paths["copy"]))
    assert failed.returncode == 3 and "FAIL" in failed.stdout and "Traceback" not in failed.stderr


@pytest.mark.parametrize("export", ["same-file", "reordered-parquet"])
def test_patients_who_spent_their_budget_are_refused_whatever_the_file(tmp_path, export):
    """The budget belongs to the patients: the same patients re-ordered and re-exported as
    Parquet are refused once the total is spent, before anything is fitted."""
    need_rhc()
    from privsynth.privacy.ledger import Ledger
    from privsynth.privacy.mechanism import rho_for
    from privsynth.schema import load_schema
    from privsynth.table import read_table

    ledger = Ledger(tmp_path / "l.sqlite3")
    view, _ = read_table([RHC], load_schema(RHC_SCHEMA))  # rhc has no stable id: patients keyed by their row
    budget = rho_for(3.0, 1e-5)  # the default policy's total
    ledger.reserve("default", ledger.patient_keys(view.index), rho=budget * 0.9, rho_budget=budget,
                   delta_budget=1e-5, epsilon=2.9, delta=1e-6, max_attempts=3)
    path = RHC
    if export == "reordered-parquet":
        path = tmp_path / "rhc-reexport.parquet"
        pd.read_csv(RHC).sample(frac=1, random_state=1).to_parquet(path, index=False)
    for name in ("default", "another-name"):  # the same patients under another budget name still count
        run = cli("release", str(path), "--schema", str(RHC_SCHEMA), "--epsilon", "1", "--ledger",
                  str(tmp_path / "l.sqlite3"), "--dataset", name, "--out", str(tmp_path / "r"), "--show-counts",
                  "--policy", row_hash_policy(tmp_path))
        assert run.returncode == 2 and "5,735 of its patients would exceed" in run.stderr, run.stderr
        assert "Nothing was fitted or written" in run.stderr
        assert not (tmp_path / "r").exists() and not (tmp_path / "r.audit.json").exists()
    assert ledger.budgets()[0].worst_rho == pytest.approx(budget * 0.9)


def release_retrying(tmp: Path, *args: str):
    """``privsynth release ARGS`` into a fresh directory and ledger; a release refused by an
    audit (exit 3) is tried again, at most twice. The gates are statistical and a clean
    release is refused now and then (seen in CI: share closer to train 0.584 [0.521, 0.648]
    at a holdout of ~300, and 0.563 [0.526, 0.600] on rhc; docs/audit.md measures the rate);
    the tests using this check what a release writes, not the gate."""
    for attempt in range(3):
        out = tmp / f"attempt{attempt}" / "release"
        out.parent.mkdir()
        run = cli("release", *args, "--ledger", str(out.parent / "l.sqlite3"), "--out", str(out))
        if run.returncode != 3:
            break
    return out, run


@pytest.fixture(scope="module")
def fhir_release(tmp_path_factory):
    """A FHIR release of a 1,537-patient example export (its file names are the Patient ids).
    Too few patients for the default policy: a loosened one is recorded as a weakening."""
    from privsynth.example.hospital import write_example_export

    tmp = tmp_path_factory.mktemp("fhir-release")
    export = tmp / "export"
    write_example_export(export, 1537, 0)
    policy = tmp / "small.yaml"
    policy.write_text("min_holdout: 200\nmia_auc_max: 0.6\nmia_tpr_at_1pct_fpr_max: 0.05\n")
    out, run = release_retrying(tmp, str(export), "--schema", str(ROOT / "schemas" / "patient-core.yaml"),
                                "--epsilon", "1", "--policy", str(policy))
    assert run.returncode == 0, run.stdout + run.stderr
    return export, out, run


def test_fhir_release_of_the_example_hospital_records_a_weakened_policy(fhir_release):
    _, out, run = fhir_release
    manifest = json.loads((out / "manifest.json").read_text())
    assert "data/fhir/Patient.ndjson" in manifest["files"] and "data/patients.csv" in manifest["files"]
    assert manifest["policy"]["weakened"] == ["min_holdout: 200 (default 1000)", "mia_auc_max: 0.6 (default 0.55)",
                                              "mia_tpr_at_1pct_fpr_max: 0.05 (default 0.02)"]
    assert "policy weakened" in run.stdout
    from fhir.resources.R4B.patient import Patient

    first = (out / "data" / "fhir" / "Patient.ndjson").read_text().splitlines()[0]
    assert Patient.model_validate_json(first).id


def test_the_release_directory_carries_no_fact_about_the_real_input(fhir_release):
    """No input file name or hash, no real patient id, no exact count of input, train or
    holdout patients in any file of the shareable directory: they stay in the internal
    audit beside it (checked to hold them, so the test looks for the right strings)."""
    import re

    from privsynth.release.release import sha256_file

    export, out, _ = fhir_release
    internal = json.loads((out.parent / "release.audit.json").read_text())
    inputs = sorted(export.iterdir())
    names = {p.name for p in inputs} | {p.stem for p in inputs} | {str(export)}
    hashes = {sha256_file(p) for p in inputs}
    patient_ids = {json.loads(p.read_text())["entry"][0]["resource"]["id"] for p in inputs}
    assert {e["sha256"] for e in internal["inputs"]} == hashes and len(patient_ids) == 1537
    counts = internal["patients"]
    assert counts["input"] == 1537 and counts["train"] + counts["holdout"] == 1537
    # counts of the synthetic output (one is a DP estimate of the train size) may equal one by chance
    lines = [sum(1 for _ in p.open("rb")) for p in (out / "data").rglob("*") if p.is_file()]
    exact = {counts["input"], counts["train"], counts["holdout"]} - {n - header for n in lines for header in (0, 1)}
    metadata = ("manifest.json", "privacy.json", "model.json", "data/fhir/manifest.json")
    for path in sorted(p for p in out.rglob("*") if p.is_file()):
        text = path.read_bytes().decode("utf-8", errors="replace")
        found = [s for s in names | hashes | patient_ids if s in text]
        assert not found, f"{path.relative_to(out)} holds input facts: {found[:3]}"
        if str(path.relative_to(out)) in metadata:
            # whole numbers only: digits inside a hex hash or a decimal are not a count
            numbers = {int(m) for m in re.findall(r"(?<![\w.])\d+(?![\w.])", text)}
            assert not numbers & exact, f"{path.relative_to(out)} holds an exact input count"


def test_partial_release_keeps_columns_real_and_says_so(tmp_path):
    need_rhc()
    out = tmp_path / "partial"
    run = cli("release", str(RHC), "--schema", str(RHC_SCHEMA), "--epsilon", "1", "--keep", "age,sex,race",
              "--ledger", str(tmp_path / "l.sqlite3"), "--out", str(out), "--policy", row_hash_policy(tmp_path))
    assert run.returncode == 0, run.stdout + run.stderr
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["real_columns"] == ["age", "sex", "race"] and manifest["end_to_end_dp"] is False
    assert any(v["audit"] == "attribute inference" for v in manifest["audit"]["verdicts"])
    assert "NOT end-to-end DP" in run.stdout
    released = pd.read_csv(out / "data" / "synthetic.csv")
    real = pd.read_csv(RHC)
    # every released (age, sex, race) is a real patient's, value for value
    key = ["age", "sex", "race"]
    real_keys = set(map(tuple, real[key].astype(str).to_numpy()))
    assert set(map(tuple, released[key].astype(str).to_numpy())) <= real_keys
    # but not in the input's order, which would tell which input rows were held out
    ages, position, matched = real["age"].to_numpy(), 0, 0
    for age in released["age"].to_numpy():
        found = np.flatnonzero(ages[position:] == age)
        if len(found):
            position, matched = position + int(found[0]) + 1, matched + 1
    assert matched < 0.5 * len(released)


def test_partial_release_refuses_to_keep_a_sensitive_column(tmp_path):
    need_rhc()
    run = cli("release", str(RHC), "--schema", str(RHC_SCHEMA), "--epsilon", "1", "--keep", "age,dnr1",
              "--ledger", str(tmp_path / "l.sqlite3"), "--out", str(tmp_path / "p"), "--policy",
              row_hash_policy(tmp_path))
    assert run.returncode == 2 and "'dnr1': a sensitive column" in run.stderr


@pytest.mark.parametrize(("extra", "message"), [
    pytest.param(["--keep", "ALL"], "names every learned column", id="keep-everything"),
    pytest.param(["SAME-FILE-TWICE"], "give each input file once", id="duplicate-input"),
])
def test_mistakes_are_refused_before_the_ledger_spends(tmp_path, extra, message):
    need_rhc()
    from privsynth.schema import load_schema

    if extra == ["--keep", "ALL"]:
        policy = tmp_path / "p.yaml"
        policy.write_text("allow_keep_sensitive: 1\nallow_row_hash_key: 1\n")
        extra = ["--keep", ",".join(c.name for c in load_schema(RHC_SCHEMA).learned_columns), "--policy", str(policy)]
        inputs = [str(RHC)]
    else:
        twin = tmp_path / "copy.csv"
        twin.write_bytes(RHC.read_bytes())
        inputs, extra = [str(RHC), str(twin)], ["--policy", row_hash_policy(tmp_path)]
    run = cli("release", *inputs, "--schema", str(RHC_SCHEMA), "--epsilon", "1", *extra,
              "--ledger", str(tmp_path / "l.sqlite3"), "--out", str(tmp_path / "r"))
    assert run.returncode == 2 and message in run.stderr and "Traceback" not in run.stderr
    from privsynth.privacy.ledger import Ledger

    assert Ledger(tmp_path / "l.sqlite3").budgets() == []
