"""Crash safety: a release killed at any point leaves no partial directory behind once the
next command runs, and the ledger ends up telling the truth about what is on disk.

Each test stops the release at a named point (``PRIVSYNTH_TEST_PAUSE_AT``) and waits for
the line it prints there -- an event, not a clock -- before sending the signal."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from privsynth.privacy.ledger import Ledger

SCHEMA = """\
name: toy
input: table
patient_id: pid
columns:
  - {name: pid, role: direct_identifier, faker: id, source: {column: pid}}
  - {name: sex, kind: categorical, role: quasi_identifier, source: {column: sex}, domain: {categories: [F, M]}}
  - {name: age, kind: integer, role: quasi_identifier, source: {column: age}, domain: {lower: 0, upper: 100}}
  - {name: outcome, kind: categorical, role: sensitive, source: {column: outcome}, domain: {categories: [0, 1]}}
"""


@pytest.fixture(scope="module")
def toy(tmp_path_factory) -> tuple[Path, Path]:
    """6,000 patients (enough for the default policy) in four columns: a fast release."""
    tmp = tmp_path_factory.mktemp("toy")
    rng = np.random.default_rng(0)
    n = 6000
    sex = rng.choice(["F", "M"], n)
    age = rng.integers(18, 90, n)
    outcome = (rng.random(n) < 0.2 + 0.3 * (sex == "F")).astype(int)
    pd.DataFrame({"pid": [f"P{i:05d}" for i in range(n)], "sex": sex, "age": age, "outcome": outcome}).to_csv(
        tmp / "toy.csv", index=False)
    (tmp / "toy.yaml").write_text(SCHEMA)
    return tmp / "toy.csv", tmp / "toy.yaml"


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "privsynth", *args], capture_output=True, text=True, timeout=600)


def paused_release(toy: tuple[Path, Path], out: Path, ledger: Path, point: str) -> subprocess.Popen[str]:
    """Start a release that stops at ``point``; return once it has printed that it stopped."""
    table, schema = toy
    proc = subprocess.Popen(
        [sys.executable, "-m", "privsynth", "release", str(table), "--schema", str(schema), "--epsilon", "1",
         "--ledger", str(ledger), "--out", str(out)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "PRIVSYNTH_TEST_PAUSE_AT": point})
    assert proc.stderr is not None
    seen = []
    for line in proc.stderr:  # blocks until the next line or the end: no clock involved
        seen.append(line)
        if f"paused at {point}" in line:
            return proc
    proc.wait()
    raise AssertionError(f"the release ended (exit {proc.returncode}) without reaching {point}:\n{''.join(seen)}")


def stop(proc: subprocess.Popen[str], how: signal.Signals) -> None:
    try:
        os.kill(proc.pid, how)
        proc.wait(120)
    finally:
        if proc.poll() is None:  # never leave a release running
            proc.kill()
            proc.wait()


def statuses(path: Path) -> list[str]:
    return [r.status for r in Ledger(path).releases()]


def test_a_terminated_release_cleans_up_and_records_itself(toy, tmp_path):
    out, ledger = tmp_path / "release", tmp_path / "l.sqlite3"
    stop(paused_release(toy, out, ledger, "writing"), signal.SIGTERM)
    assert not out.exists() and not list(tmp_path.glob(".release*"))
    assert statuses(ledger) == ["failed"]  # the model was fitted: the charge stays
    assert Ledger(ledger).budgets()[0].worst_rho > 0


def test_killed_while_writing_leaves_a_partial_that_the_next_command_removes(toy, tmp_path):
    out, ledger = tmp_path / "release", tmp_path / "l.sqlite3"
    stop(paused_release(toy, out, ledger, "writing"), signal.SIGKILL)
    assert not out.exists() and list(tmp_path.glob(".release.*.partial"))
    assert statuses(ledger) == ["reserved"]
    show = cli("budget", "show", "--ledger", str(ledger))
    assert show.returncode == 0 and "now interrupted" in show.stderr, show.stderr
    assert not list(tmp_path.glob(".release*")) and not out.exists()
    assert statuses(ledger) == ["interrupted"] and Ledger(ledger).budgets()[0].worst_rho > 0  # stays spent


def test_killed_after_the_rename_is_recorded_as_released(toy, tmp_path):
    """Between the rename and the ledger update: the release is complete on disk, and the
    next `budget show` records it as released (and writes its missing report)."""
    out, ledger = tmp_path / "release", tmp_path / "l.sqlite3"
    stop(paused_release(toy, out, ledger, "renamed"), signal.SIGKILL)
    manifest = json.loads((out / "manifest.json").read_text())
    assert statuses(ledger) == ["reserved"] and not (tmp_path / "release.report.html").exists()
    show = cli("budget", "show", "--ledger", str(ledger))
    assert show.returncode == 0 and "now released" in show.stderr, show.stderr
    assert statuses(ledger) == ["released"]
    assert Ledger(ledger).releases()[0].id == manifest["release_id"]
    assert (tmp_path / "release.report.html").is_file()


def test_killed_before_fitting_is_settled_by_the_next_release(toy, tmp_path):
    ledger = tmp_path / "l.sqlite3"
    stop(paused_release(toy, tmp_path / "first", ledger, "reserved"), signal.SIGKILL)
    assert statuses(ledger) == ["reserved"]
    table, schema = toy
    run = cli("release", str(table), "--schema", str(schema), "--epsilon", "1", "--ledger", str(ledger),
              "--out", str(tmp_path / "second"))
    assert run.returncode == 0, run.stderr
    assert statuses(ledger) == ["interrupted", "released"]
    summary = Ledger(ledger).budgets()[0]
    assert summary.releases == 2 and summary.worst_attempts == 2  # the killed attempt keeps its charge
