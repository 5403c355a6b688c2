"""`privsynth release` and `privsynth audit` end to end on a shared real table (rhc:
5,735 patients x 55 columns), and the leak suite: copies and near-copies are refused,
clean DP output passes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.conftest import ROOT, SHARED

RHC = SHARED / "tabular" / "rhc.csv"
RHC_SCHEMA = ROOT / "schemas" / "tabular" / "rhc.yaml"


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


def _near_copies(schema, rows: pd.DataFrame, seed: int) -> pd.DataFrame:
    """Records with every number moved by up to 1% of its public range."""
    rng = np.random.default_rng(seed)
    out = rows.copy()
    for col in schema.learned_columns:
        domain = col.domain
        if hasattr(domain, "lower"):
            values = pd.to_numeric(out[col.name], errors="coerce").astype(float)
            jitter = rng.uniform(-0.01, 0.01, len(values)) * (domain.upper - domain.lower)
            values = (values + jitter).clip(domain.lower, domain.upper)
            out[col.name] = values.round().astype("Int64") if domain.integer else values
    return out


def test_clean_dp_output_passes_ten_of_ten(rhc, clean_samples):
    from privsynth.audit import evaluate

    schema, train, holdout = rhc
    failures = []
    for seed, sample in enumerate(clean_samples):
        result = evaluate(train, holdout, sample, schema, epsilon=1.0, seed=seed)
        failures += [c.line() for c in result.failures()]
    assert failures == []


@pytest.mark.parametrize("leak", ["verbatim-copy-of-train", "2pct-verbatim-copies", "1pct-near-copies"])
def test_leaks_are_refused(rhc, clean_samples, leak):
    from privsynth.audit import evaluate

    schema, train, holdout = rhc
    for seed in range(3):
        clean = clean_samples[seed]
        donors = train.sample(frac=1, random_state=seed).reset_index(drop=True)
        if leak == "verbatim-copy-of-train":
            synthetic = train
        elif leak == "2pct-verbatim-copies":
            k = int(0.02 * len(clean))
            synthetic = pd.concat([clean.iloc[k:], donors.iloc[:k]], ignore_index=True)
        else:
            k = int(0.01 * len(clean))
            synthetic = pd.concat([clean.iloc[k:], _near_copies(schema, donors.iloc[:k], seed)], ignore_index=True)
        result = evaluate(train, holdout, synthetic, schema, epsilon=1.0, seed=seed)
        assert not result.passed, f"{leak} (seed {seed}) was not refused"


def test_release_writes_manifest_and_keeps_audit_outside(tmp_path):
    need_rhc()
    out = tmp_path / "release"
    ledger = tmp_path / "ledger.sqlite3"
    run = cli("release", str(RHC), "--schema", str(RHC_SCHEMA), "--epsilon", "1", "--ledger", str(ledger),
              "--out", str(out))
    assert run.returncode == 0, run.stderr + run.stdout
    manifest = json.loads((out / "manifest.json").read_text())
    from privsynth.release.release import sha256_file

    files = {str(p.relative_to(out)) for p in out.rglob("*") if p.is_file()} - {"manifest.json"}
    assert set(manifest["files"]) == files and "data/synthetic.csv" in files
    assert all(manifest["files"][f] == sha256_file(out / f) for f in files)
    assert manifest["inputs"]["files"][0]["sha256"] == sha256_file(RHC)
    assert manifest["schema"]["sha256"] == sha256_file(RHC_SCHEMA)
    assert manifest["epsilon"] == 1.0 and manifest["audit"]["passed"] is True
    assert {v["verdict"] for v in manifest["audit"]["verdicts"]} <= {"pass", "info"}
    assert manifest["policy"]["weakened"] == []
    # the full audit (real-data figures) is beside the release, never inside it
    assert (tmp_path / "release.audit.json").is_file() and not list(out.rglob("*audit*"))
    show = cli("budget", "show", "--ledger", str(ledger))
    assert show.returncode == 0 and "rhc.csv" in show.stdout


def test_a_failed_gate_writes_no_data_and_attempts_are_capped(tmp_path):
    need_rhc()
    policy = tmp_path / "strict.yaml"
    policy.write_text("mia_auc_max: 0.5\nmax_attempts: 2\n")  # an AUC interval always reaches above 0.5
    ledger = tmp_path / "ledger.sqlite3"
    for attempt in range(2):
        out = tmp_path / f"r{attempt}"
        run = cli("release", str(RHC), "--schema", str(RHC_SCHEMA), "--epsilon", "0.5", "--policy", str(policy),
                  "--ledger", str(ledger), "--out", str(out))
        assert run.returncode == 3, run.stderr
        assert "release refused" in run.stderr and "AUC" in run.stderr and "Traceback" not in run.stderr
        assert not out.exists() and not list(tmp_path.glob(f".r{attempt}*"))
    run = cli("release", str(RHC), "--schema", str(RHC_SCHEMA), "--epsilon", "0.5", "--policy", str(policy),
              "--ledger", str(ledger), "--out", str(tmp_path / "r2"))
    assert run.returncode == 2 and "2 release attempts" in run.stderr


def test_too_few_patients_is_a_clear_error(tmp_path):
    need_rhc()
    whas = SHARED / "tabular" / "whas500.csv"
    run = cli("release", str(whas), "--schema", str(ROOT / "schemas" / "tabular" / "whas500.yaml"),
              "--epsilon", "1", "--ledger", str(tmp_path / "l.sqlite3"), "--out", str(tmp_path / "r"))
    assert run.returncode == 2 and "too few patients to audit" in run.stderr
    from privsynth.privacy.ledger import Ledger

    assert Ledger(tmp_path / "l.sqlite3").datasets()[0].rho_spent == 0  # refunded: the generator never ran


@pytest.mark.parametrize("how", [signal.SIGTERM, signal.SIGKILL], ids=["terminated", "killed"])
def test_a_killed_release_leaves_no_partial_directory(tmp_path, how):
    need_rhc()
    out = tmp_path / "release"
    proc = subprocess.Popen([sys.executable, "-m", "privsynth", "release", str(RHC), "--schema",
                             str(RHC_SCHEMA), "--epsilon", "1", "--ledger", str(tmp_path / "l.sqlite3"),
                             "--out", str(out)], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.time() + 120
    while time.time() < deadline and not list(tmp_path.glob(".release.*.partial")):
        time.sleep(0.02)  # wait until it is writing the release
    assert list(tmp_path.glob(".release.*.partial")), "the release never started writing"
    os.kill(proc.pid, how)
    proc.wait(60)
    assert not out.exists()
    if how == signal.SIGTERM:
        assert not list(tmp_path.glob(".release*"))
    # a later release (of anything, here a refused one) cleans up what a killed one left
    from privsynth.release.atomic import remove_stale_partials

    remove_stale_partials(out)
    assert not list(tmp_path.glob(".release*"))


def test_audit_command_on_another_tools_tables(rhc, clean_samples, tmp_path):
    schema, train, holdout = rhc
    columns = {c.name: c.source.column or c.name for c in schema.columns}
    paths = {}
    for name, frame in (("train", train), ("holdout", holdout), ("clean", clean_samples[0]), ("copy", train)):
        paths[name] = tmp_path / f"{name}.csv"
        frame.rename(columns=columns).to_csv(paths[name], index=False)
    common = ["audit", "--schema", str(RHC_SCHEMA), "--train", str(paths["train"]), "--holdout", str(paths["holdout"])]
    passed = cli(*common, "--synthetic", str(paths["clean"]), "--epsilon", "1", "--json", str(tmp_path / "a.json"))
    assert passed.returncode == 0, passed.stdout + passed.stderr
    assert "PASS" in passed.stdout and json.loads((tmp_path / "a.json").read_text())["passed"] is True
    failed = cli(*common, "--synthetic", str(paths["copy"]))
    assert failed.returncode == 3 and "FAIL" in failed.stdout and "Traceback" not in failed.stderr


def test_a_release_beyond_the_budget_is_refused_before_reading(tmp_path):
    need_rhc()
    from privsynth.privacy.ledger import Ledger
    from privsynth.privacy.mechanism import rho_for
    from privsynth.release.release import dataset_hash

    ledger = Ledger(tmp_path / "l.sqlite3")
    content, _ = dataset_hash([RHC])
    budget = rho_for(3.0, 1e-5)  # the default policy's total
    ledger.reserve(content, "earlier", rho=budget * 0.9, rho_budget=budget, epsilon=2.9, delta=1e-6, max_attempts=3)
    run = cli("release", str(RHC), "--schema", str(RHC_SCHEMA), "--epsilon", "1", "--ledger",
              str(tmp_path / "l.sqlite3"), "--out", str(tmp_path / "r"))
    assert run.returncode == 2 and "is left; nothing was read or written" in run.stderr
    assert not (tmp_path / "r").exists() and not (tmp_path / "r.audit.json").exists()
    assert ledger.spent(content) == pytest.approx(budget * 0.9)


def test_fhir_release_of_the_example_hospital_records_a_weakened_policy(tmp_path):
    """A FHIR export in, valid FHIR R4 out. 1,500 patients are too few for the default
    policy; a policy loosened for it is recorded in the manifest as a weakening."""
    from privsynth.example.hospital import write_example_export

    export = tmp_path / "export"
    write_example_export(export, 1500, 0)
    policy = tmp_path / "small.yaml"
    policy.write_text("min_holdout: 250\nmia_auc_max: 0.6\nmia_tpr_at_1pct_fpr_max: 0.05\n")
    out = tmp_path / "release"
    run = cli("release", str(export), "--schema", str(ROOT / "schemas" / "patient-core.yaml"), "--epsilon", "1",
              "--policy", str(policy), "--ledger", str(tmp_path / "l.sqlite3"), "--out", str(out))
    assert run.returncode == 0, run.stdout + run.stderr
    manifest = json.loads((out / "manifest.json").read_text())
    assert "data/fhir/Patient.ndjson" in manifest["files"] and "data/patients.csv" in manifest["files"]
    assert manifest["policy"]["weakened"] == ["min_holdout: 250 (default 1000)", "mia_auc_max: 0.6 (default 0.55)",
                                              "mia_tpr_at_1pct_fpr_max: 0.05 (default 0.02)"]
    assert "policy weakened" in run.stdout
    from fhir.resources.R4B.patient import Patient

    first = (out / "data" / "fhir" / "Patient.ndjson").read_text().splitlines()[0]
    assert Patient.model_validate_json(first).id


def test_partial_release_keeps_columns_real_and_says_so(tmp_path):
    need_rhc()
    out = tmp_path / "partial"
    run = cli("release", str(RHC), "--schema", str(RHC_SCHEMA), "--epsilon", "1", "--keep", "age,sex,race",
              "--ledger", str(tmp_path / "l.sqlite3"), "--out", str(out))
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


def test_partial_release_refuses_to_keep_a_sensitive_column(tmp_path):
    need_rhc()
    run = cli("release", str(RHC), "--schema", str(RHC_SCHEMA), "--epsilon", "1", "--keep", "age,dnr1",
              "--ledger", str(tmp_path / "l.sqlite3"), "--out", str(tmp_path / "p"))
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
        policy.write_text("allow_keep_sensitive: 1\n")
        extra = ["--keep", ",".join(c.name for c in load_schema(RHC_SCHEMA).learned_columns), "--policy", str(policy)]
        inputs = [str(RHC)]
    else:
        twin = tmp_path / "copy.csv"
        twin.write_bytes(RHC.read_bytes())
        inputs, extra = [str(RHC), str(twin)], []
    run = cli("release", *inputs, "--schema", str(RHC_SCHEMA), "--epsilon", "1", *extra,
              "--ledger", str(tmp_path / "l.sqlite3"), "--out", str(tmp_path / "r"))
    assert run.returncode == 2 and message in run.stderr and "Traceback" not in run.stderr
    from privsynth.privacy.ledger import Ledger

    assert Ledger(tmp_path / "l.sqlite3").datasets() == []
