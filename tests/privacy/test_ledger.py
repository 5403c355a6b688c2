"""The per-patient budget ledger: charges every patient, refuses any who would overspend,
counts the same patients as the same whatever the file, never stores a raw id, and
survives concurrency."""

from __future__ import annotations

import multiprocessing as mp
import sqlite3

import pytest

from privsynth.errors import BudgetError, OutputError
from privsynth.privacy.ledger import Ledger

LIMITS = {"rho_budget": 1.0, "delta_budget": 1e-5, "epsilon": 1.0, "delta": 1e-6, "show_counts": True}


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


# -- issue 19: the budget cannot be reset by a choice of key, name or file --------------------

def _charts(n: int, keyed_by: str) -> list:
    """The same n patients keyed as a schema would key them: by Patient.id alone, or with the
    MRN or the SSN as the primary key (Patient.id is always among a FHIR patient's keys)."""
    from privsynth.privacy.keys import PatientKeys

    out = []
    for i in range(n):
        pid, mrn, ssn = f"pid-{i}", f"urn:mrn|M{i}", f"urn:ssn|999-{i}"
        out.append({"Patient.id": PatientKeys((pid,)), "mrn": PatientKeys((f"M{i}", pid, mrn)),
                    "ssn": PatientKeys((f"999-{i}", pid, ssn)), "all": PatientKeys((pid, mrn, ssn))}[keyed_by])
    return out


def test_four_keyings_of_the_same_patients_are_refused_after_the_total(tmp_path):
    """Keyed by Patient.id, then MRN, then SSN, then all three: one person each time."""
    ledger = Ledger(tmp_path / "l.sqlite3")
    for keyed_by in ("Patient.id", "mrn", "ssn"):
        ledger.reserve("b", ledger.patient_keys(_charts(800, keyed_by)), rho=0.3, max_attempts=9, **LIMITS)
    with pytest.raises(BudgetError, match="800 of its patients would exceed"):
        ledger.reserve("b", ledger.patient_keys(_charts(800, "all")), rho=0.3, max_attempts=9, **LIMITS)
    [summary] = ledger.budgets()
    assert (summary.patients, summary.worst_rho) == (800, pytest.approx(0.9))


def test_a_new_patient_id_with_a_known_mrn_is_the_same_person(tmp_path):
    """A re-export that gave every Patient a new id: the MRN links them to what they spent."""
    from privsynth.privacy.keys import PatientKeys

    ledger = Ledger(tmp_path / "l.sqlite3")
    first = [PatientKeys((f"old-{i}", f"urn:mrn|M{i}")) for i in range(50)]
    second = [PatientKeys((f"new-{i}", f"urn:mrn|M{i}")) for i in range(50)]
    ledger.reserve("b", ledger.patient_keys(first), rho=0.6, max_attempts=9, **LIMITS)
    with pytest.raises(BudgetError, match="50 of its patients would exceed"):
        ledger.reserve("b", ledger.patient_keys(second), rho=0.6, max_attempts=9, **LIMITS)
    assert ledger.spent(ledger.patient_keys([PatientKeys((f"new-{i}",)) for i in range(3)])) == [0.6] * 3


def test_persons_known_apart_are_merged_and_their_spends_added(tmp_path):
    from privsynth.privacy.keys import PatientKeys

    ledger = Ledger(tmp_path / "l.sqlite3")
    ledger.reserve("b", ledger.patient_keys(["a"]), rho=0.3, max_attempts=9, **LIMITS)
    ledger.reserve("b", ledger.patient_keys(["b"]), rho=0.3, max_attempts=9, **LIMITS)
    both = ledger.reserve("b", ledger.patient_keys([PatientKeys(("a", "b"))]), rho=0.3, max_attempts=9, **LIMITS)
    assert ledger.spent(ledger.patient_keys(["a", "b"])) == pytest.approx([0.9, 0.9])
    assert ledger.budgets()[0].patients == 1
    with pytest.raises(BudgetError, match="1 of its patients would exceed"):
        ledger.reserve("b", ledger.patient_keys(["b"]), rho=0.2, max_attempts=9, **LIMITS)
    ledger.finish(both, "failed", refund=True)  # the refund finds the merged person
    assert ledger.spent(ledger.patient_keys(["a"])) == pytest.approx([0.6])


def test_a_new_budget_name_does_not_raise_a_patients_cap(tmp_path):
    """'strict' (total 0.5) refuses a third release; a new name with a larger total does too."""
    ledger = Ledger(tmp_path / "l.sqlite3")
    patients = ledger.patient_keys(ids(range(20)))
    strict = {**LIMITS, "rho_budget": 0.5}
    for _ in range(2):
        ledger.reserve("strict", patients, rho=0.2, max_attempts=9, **strict)
    with pytest.raises(BudgetError, match="20 of its patients would exceed their cap"):
        ledger.reserve("strict", patients, rho=0.2, max_attempts=9, **strict)
    with pytest.raises(BudgetError, match="20 of its patients would exceed their cap"):
        ledger.reserve("loose", patients, rho=0.2, max_attempts=9, **{**LIMITS, "rho_budget": 3.0})
    # patients never charged under 'strict' keep the new name's total
    ledger.reserve("loose", ledger.patient_keys(ids(range(100, 110))), rho=0.9, max_attempts=9,
                   **{**LIMITS, "rho_budget": 3.0})


def test_refusals_give_no_patient_counts_unless_asked(tmp_path):
    ledger = Ledger(tmp_path / "l.sqlite3")
    quiet = {k: v for k, v in LIMITS.items() if k != "show_counts"}
    keys = ledger.patient_keys(ids(range(37)))
    ledger.reserve("b", keys, rho=0.6, max_attempts=9, **quiet)
    with pytest.raises(BudgetError, match="some of its patients would exceed") as err:
        ledger.reserve("b", keys, rho=0.6, max_attempts=9, **quiet)
    assert "37" not in str(err.value)


def test_the_secret_lives_in_a_key_file_beside_the_ledger(tmp_path, monkeypatch):
    """The ledger file alone cannot test guessed ids; a missing or foreign key file is an
    error, never a silent fresh start."""
    path = tmp_path / "l.sqlite3"
    ledger = Ledger(path)
    ledger.reserve("b", ledger.patient_keys(ids(range(5))), rho=0.1, max_attempts=9, **LIMITS)
    key = tmp_path / "l.sqlite3.key"
    assert ledger.key_path == key and oct(key.stat().st_mode & 0o777) == "0o600"
    secret = bytes.fromhex(key.read_text().strip())
    assert secret not in path.read_bytes()
    assert Ledger(path).spent(ledger.patient_keys(ids(range(1)))) == [pytest.approx(0.1)]
    moved = tmp_path / "vault" / "ledger.key"
    moved.parent.mkdir()
    key.rename(moved)
    with pytest.raises(OutputError, match="its key file .* is missing"):
        Ledger(path)
    monkeypatch.setenv("PRIVSYNTH_LEDGER_KEY", str(moved))
    assert Ledger(path).spent(ledger.patient_keys(ids(range(1)))) == [pytest.approx(0.1)]
    Ledger(tmp_path / "other.sqlite3", key_path=tmp_path / "other.key")
    with pytest.raises(OutputError, match="belongs to another ledger"):
        Ledger(path, key_path=tmp_path / "other.key")


def test_a_new_ledger_beside_an_existing_one_is_flagged(tmp_path):
    first = Ledger(tmp_path / "ledger.sqlite3")
    assert first.origin.created_now and first.origin.warning() is None
    assert not Ledger(tmp_path / "ledger.sqlite3").origin.created_now
    fresh = Ledger(tmp_path / "ledger-2.sqlite3")
    assert fresh.origin.created_now and str(tmp_path / "ledger.sqlite3") in fresh.origin.others_nearby
    assert "a NEW budget ledger" in (fresh.origin.warning() or "")


def test_a_format_2_ledger_is_migrated_with_its_secret_moved_out(tmp_path):
    """What a privsynth-ledger/2 file spent stays spent; its secret leaves the file."""
    import hmac
    import secrets as pysecrets

    path = tmp_path / "old.sqlite3"
    secret = pysecrets.token_bytes(32)
    key = hmac.digest(secret, b"patient-1", "sha256")[:16]
    with sqlite3.connect(path) as db:
        db.executescript("CREATE TABLE meta (key TEXT PRIMARY KEY, value BLOB NOT NULL);"
                         "CREATE TABLE budget (name TEXT PRIMARY KEY, rho_budget REAL NOT NULL, delta_budget REAL "
                         "NOT NULL, created TEXT NOT NULL);"
                         "CREATE TABLE spend (budget TEXT NOT NULL, patient BLOB NOT NULL, rho REAL NOT NULL, attempts "
                         "INTEGER NOT NULL, PRIMARY KEY (budget, patient)) WITHOUT ROWID;")
        db.execute("INSERT INTO meta VALUES ('format', 'privsynth-ledger/2'), ('secret', ?)", (secret,))
        db.execute("INSERT INTO budget VALUES ('b', 1.0, 1e-5, '2026-01-01')")
        db.execute("INSERT INTO spend VALUES ('b', ?, 0.7, 1)", (key,))
    ledger = Ledger(path)
    assert ledger.spent(ledger.patient_keys(["patient-1"])) == [pytest.approx(0.7)]
    assert secret not in path.read_bytes()
    with pytest.raises(BudgetError, match="would exceed"):
        ledger.reserve("b", ledger.patient_keys(["patient-1"]), rho=0.4, max_attempts=9, **LIMITS)
