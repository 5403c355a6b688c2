"""The per-patient budget ledger: charges every patient, refuses any who would overspend,
counts the same patients as the same whatever the file, never stores a raw id, and
survives concurrency."""

from __future__ import annotations

import multiprocessing as mp
import sqlite3

import pytest

from privsynth.errors import BudgetError, OutputError
from privsynth.privacy.ledger import Ledger

LIMITS = {"rho_budget": 1.0, "delta_budget": 1e-5, "epsilon": 1.0, "delta": 1e-6}


def ids(*ranges: range) -> list[str]:
    return [f"patient-{i}" for r in ranges for i in r]


def test_spend_refund_and_attempt_cap_per_patient(tmp_path):
    ledger = Ledger(tmp_path / "l.sqlite3")
    keys = ledger.patient_keys(ids(range(10)))
    first = ledger.reserve("b", keys, rho=0.1, max_attempts=2, **LIMITS)
    ledger.finish(first, "refused")
    failed = ledger.reserve("b", keys, rho=0.1, max_attempts=2, **LIMITS)
    ledger.finish(failed, "failed", refund=True)  # failed before the generator ran: no spend, no attempt
    assert ledger.spent(keys, "b") == pytest.approx([0.1] * 10)
    second = ledger.reserve("b", keys, rho=0.1, max_attempts=2, **LIMITS)
    ledger.finish(second, "released")
    with pytest.raises(BudgetError, match="10 of this input's patients have been in 2 release attempts"):
        ledger.reserve("b", keys, rho=0.1, max_attempts=2, **LIMITS)
    # new patients are not capped by others' attempts
    ledger.reserve("b", ledger.patient_keys(ids(range(10, 20))), rho=0.1, max_attempts=2, **LIMITS)
    [summary] = ledger.budgets()
    assert (summary.patients, summary.worst_rho, summary.patients_at_worst, summary.worst_attempts) == (
        20, pytest.approx(0.2), 10, 2)
    assert [r.status for r in ledger.releases()] == ["refused", "failed", "released", "reserved"]


def test_reordered_and_reexported_patients_are_the_same_patients(tmp_path):
    ledger = Ledger(tmp_path / "l.sqlite3")
    export = ids(range(100))
    ledger.reserve("hospital", ledger.patient_keys(export), rho=0.6, max_attempts=9, **LIMITS)
    reordered = list(reversed(export))
    with pytest.raises(BudgetError, match="100 of its patients would exceed"):
        ledger.reserve("hospital", ledger.patient_keys(reordered), rho=0.5, max_attempts=9, **LIMITS)
    # a later export with one new patient and the rest the same: still refused, and nothing charged
    with pytest.raises(BudgetError, match="100 of its patients would exceed"):
        ledger.reserve("hospital", ledger.patient_keys(export + ["newcomer"]), rho=0.5, max_attempts=9, **LIMITS)
    assert ledger.spent(ledger.patient_keys(["newcomer"])) == [0.0]
    # what is left is still spendable
    ledger.reserve("hospital", ledger.patient_keys(reordered), rho=0.4, max_attempts=9, **LIMITS)
    assert ledger.budgets()[0].worst_rho == pytest.approx(1.0)


def test_the_same_patients_under_another_budget_name_still_count(tmp_path):
    """A name groups releases and fixes a total; it does not give the same people a new budget."""
    ledger = Ledger(tmp_path / "l.sqlite3")
    ehr, registry = ids(range(100)), ids(range(80, 200))  # 20 patients in both sources
    ledger.reserve("ehr", ledger.patient_keys(ehr), rho=0.6, max_attempts=9, **LIMITS)
    with pytest.raises(BudgetError, match="20 of its patients would exceed"):
        ledger.reserve("registry", ledger.patient_keys(registry), rho=0.5, max_attempts=9, **LIMITS)
    ledger.reserve("registry", ledger.patient_keys(registry), rho=0.4, max_attempts=9, **LIMITS)
    assert {b.name: (b.patients, round(b.worst_rho, 9), b.patients_at_worst) for b in ledger.budgets()} == {
        "ehr": (100, 1.0, 20), "registry": (120, 1.0, 20)}
    # a budget's total is fixed when it is created: another total is refused, not ignored
    with pytest.raises(BudgetError, match="budget 'ehr' was created with a total of epsilon"):
        ledger.reserve("ehr", ledger.patient_keys(["new"]), rho=0.1, max_attempts=9,
                       **{**LIMITS, "rho_budget": 5.0})


def test_a_key_given_twice_is_charged_for_its_squared_multiplicity(tmp_path):
    """Two identical rows keyed by their content may be one patient counted twice: every
    count then moves by 2, which costs 4 times the rho (and the refund takes 4 back)."""
    ledger = Ledger(tmp_path / "l.sqlite3")
    keys = ledger.patient_keys(["twin", "twin", "single"])
    first = ledger.reserve("b", keys, rho=0.2, max_attempts=9, **LIMITS)
    assert ledger.spent(ledger.patient_keys(["twin", "single"])) == pytest.approx([0.8, 0.2])
    with pytest.raises(BudgetError, match="1 of its patients would exceed"):
        ledger.reserve("b", keys, rho=0.1, max_attempts=9, **LIMITS)
    ledger.finish(first, "failed", refund=True)
    assert ledger.spent(ledger.patient_keys(["twin", "single"])) == [0.0, 0.0]
    with pytest.raises(BudgetError, match="would exceed"):  # 4 x 0.3 > 1 even for a fresh pair
        ledger.reserve("b", keys, rho=0.3, max_attempts=9, **LIMITS)


def test_partial_synthesis_releases_are_flagged(tmp_path):
    ledger = Ledger(tmp_path / "l.sqlite3")
    ledger.reserve("b", ledger.patient_keys(ids(range(5))), rho=0.1, max_attempts=9, partial=True, **LIMITS)
    ledger.reserve("b", ledger.patient_keys(ids(range(5))), rho=0.1, max_attempts=9, **LIMITS)
    assert (ledger.budgets()[0].releases, ledger.budgets()[0].partial) == (2, 1)


def test_overlapping_exports_charge_the_overlap(tmp_path):
    ledger = Ledger(tmp_path / "l.sqlite3")
    january, february = ids(range(0, 60)), ids(range(40, 100))  # 20 patients in both
    ledger.reserve("b", ledger.patient_keys(january), rho=0.3, max_attempts=9, **LIMITS)
    ledger.reserve("b", ledger.patient_keys(february), rho=0.3, max_attempts=9, **LIMITS)
    spent = ledger.spent(ledger.patient_keys(ids(range(100))))
    assert spent == pytest.approx([0.3] * 40 + [0.6] * 20 + [0.3] * 40)
    summary = ledger.budgets()[0]
    assert (summary.patients, summary.patients_at_worst) == (100, 20)
    # the overlap refuses a third release that the others could afford
    with pytest.raises(BudgetError, match="20 of its patients would exceed"):
        ledger.reserve("b", ledger.patient_keys(ids(range(30, 70))), rho=0.5, max_attempts=9, **LIMITS)


def test_the_ledger_file_holds_no_raw_patient_id(tmp_path):
    path = tmp_path / "l.sqlite3"
    ledger = Ledger(path)
    secret_ids = [f"MRN-{i:08d}-SENTINEL" for i in range(50)]
    release = ledger.reserve("b", ledger.patient_keys(secret_ids), rho=0.1, max_attempts=3, **LIMITS)
    ledger.finish(release, "released")
    raw = b"".join(p.read_bytes() for p in tmp_path.iterdir())  # the database and any journal beside it
    assert b"SENTINEL" not in raw and "SENTINEL".encode("utf-16-le") not in raw
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    # keys are the ledger's own: another ledger's secret gives other keys for the same ids
    assert Ledger(tmp_path / "other.sqlite3").patient_keys(secret_ids[:1]) != ledger.patient_keys(secret_ids[:1])


def test_an_old_per_file_ledger_is_refused_with_advice(tmp_path):
    path = tmp_path / "old.sqlite3"
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE dataset (hash TEXT PRIMARY KEY, label TEXT)")
    with pytest.raises(OutputError, match="per input file; per-patient budgets cannot be derived"):
        Ledger(path)


def _reserve(path: str, barrier, results, index: int) -> None:
    ledger = Ledger(path)
    # every process: the same 1,000 shared patients plus 100 of its own
    keys = ledger.patient_keys(ids(range(1000), range(10_000 + 100 * index, 10_100 + 100 * index)))
    barrier.wait()
    try:
        ledger.reserve("shared", keys, rho=0.3, max_attempts=100, **LIMITS)
        results.put("ok")
    except BudgetError:
        results.put("refused")


def test_concurrent_releases_on_overlapping_patients_never_overspend(tmp_path):
    path = str(tmp_path / "l.sqlite3")
    Ledger(path)
    ctx = mp.get_context("spawn")
    barrier, results = ctx.Barrier(8), ctx.Queue()
    procs = [ctx.Process(target=_reserve, args=(path, barrier, results, i)) for i in range(8)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
    outcomes = sorted(results.get(timeout=5) for _ in procs)
    assert outcomes.count("ok") == 3  # 3 x 0.3 <= 1.0 < 4 x 0.3 for the shared patients
    ledger = Ledger(path)
    assert ledger.spent(ledger.patient_keys(ids(range(1000)))) == pytest.approx([0.9] * 1000)
    assert ledger.budgets()[0].patients == 1000 + 3 * 100
