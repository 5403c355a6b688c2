"""The budget ledger: spends, refuses overspending and extra attempts, survives concurrency."""

from __future__ import annotations

import multiprocessing as mp

import pytest

from privsynth.errors import BudgetError
from privsynth.privacy.ledger import Ledger


def test_spend_refund_and_attempt_cap(tmp_path):
    ledger = Ledger(tmp_path / "l.sqlite3")
    first = ledger.reserve("d1", "one", rho=0.1, rho_budget=1.0, epsilon=1, delta=1e-6, max_attempts=2)
    ledger.finish(first, "refused")
    failed = ledger.reserve("d1", "one", rho=0.1, rho_budget=1.0, epsilon=1, delta=1e-6, max_attempts=2)
    ledger.finish(failed, "failed", refund=True)  # failed before the generator ran: no spend, no attempt
    assert ledger.spent("d1") == pytest.approx(0.1)
    second = ledger.reserve("d1", "one", rho=0.1, rho_budget=1.0, epsilon=1, delta=1e-6, max_attempts=2)
    ledger.finish(second, "released")
    with pytest.raises(BudgetError, match="2 release attempts"):
        ledger.reserve("d1", "one", rho=0.1, rho_budget=1.0, epsilon=1, delta=1e-6, max_attempts=2)
    [row] = ledger.datasets()
    assert (row.attempts, row.released, row.rho_spent) == (2, 1, pytest.approx(0.2))


def test_refuses_a_release_beyond_the_budget(tmp_path):
    ledger = Ledger(tmp_path / "l.sqlite3")
    ledger.reserve("d", "x", rho=0.6, rho_budget=1.0, epsilon=1, delta=1e-6, max_attempts=9)
    with pytest.raises(BudgetError, match="only 0.4 of the total 1 is left"):
        ledger.reserve("d", "x", rho=0.5, rho_budget=1.0, epsilon=1, delta=1e-6, max_attempts=9)
    assert ledger.spent("d") == pytest.approx(0.6)
    # another dataset has its own budget
    ledger.reserve("e", "y", rho=0.5, rho_budget=1.0, epsilon=1, delta=1e-6, max_attempts=9)


def _reserve(path: str, barrier, results) -> None:
    ledger = Ledger(path)
    barrier.wait()
    try:
        ledger.reserve("shared", "s", rho=0.3, rho_budget=1.0, epsilon=1, delta=1e-6, max_attempts=100)
        results.put("ok")
    except BudgetError:
        results.put("refused")


def test_concurrent_releases_never_overspend(tmp_path):
    path = str(tmp_path / "l.sqlite3")
    Ledger(path)
    ctx = mp.get_context("spawn")
    barrier, results = ctx.Barrier(8), ctx.Queue()
    procs = [ctx.Process(target=_reserve, args=(path, barrier, results)) for _ in range(8)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
    outcomes = sorted(results.get(timeout=5) for _ in procs)
    assert outcomes.count("ok") == 3  # 3 x 0.3 <= 1.0 < 4 x 0.3
    assert Ledger(path).spent("shared") == pytest.approx(0.9)
