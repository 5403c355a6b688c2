"""The privacy budget ledger: every release's rho, per source dataset, in SQLite.

A source dataset is identified by a content hash of its input files. Each dataset has a
total budget (rho, from the policy's total (epsilon, delta) when it is first seen). A
release RESERVES its rho before any patient data is read, in one ``BEGIN IMMEDIATE``
transaction, so concurrent releases against one ledger file cannot overspend. Reserved rho
stays spent whether the release then passes its audits or not: the model was fitted on the
data either way, and a refusal is itself an answer about the data. Attempts per dataset are
capped (retrying until an audit passes would leak information) and recorded.

>>> import tempfile, pathlib
>>> path = pathlib.Path(tempfile.mkdtemp()) / "ledger.sqlite3"
>>> ledger = Ledger(path)
>>> a = ledger.reserve("abc", "demo", rho=0.1, rho_budget=0.25, epsilon=1.0, delta=1e-6, max_attempts=3)
>>> ledger.finish(a, "released")
>>> round(ledger.spent("abc"), 3)
0.1
"""

from __future__ import annotations

import datetime as dt
import os
import sqlite3
from dataclasses import dataclass
from pathlib import Path

from privsynth.errors import BudgetError, OutputError

SCHEMA = """
CREATE TABLE IF NOT EXISTS dataset (
    hash TEXT PRIMARY KEY,
    label TEXT NOT NULL,
    rho_budget REAL NOT NULL,
    created TEXT NOT NULL,
    delta_budget REAL NOT NULL DEFAULT 1e-6
);
CREATE TABLE IF NOT EXISTS release (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    dataset TEXT NOT NULL REFERENCES dataset(hash),
    rho REAL NOT NULL,
    epsilon REAL NOT NULL,
    delta REAL NOT NULL,
    status TEXT NOT NULL,
    started TEXT NOT NULL,
    finished TEXT,
    out TEXT
);
"""
STATUSES = ("reserved", "released", "refused", "failed")


def default_ledger_path() -> Path:
    """``$PRIVSYNTH_LEDGER``, else ``$XDG_DATA_HOME/privsynth/ledger.sqlite3``."""
    if os.environ.get("PRIVSYNTH_LEDGER"):
        return Path(os.environ["PRIVSYNTH_LEDGER"])
    base = Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share")
    return base / "privsynth" / "ledger.sqlite3"


@dataclass(frozen=True)
class DatasetBudget:
    hash: str
    label: str
    rho_budget: float
    rho_spent: float
    attempts: int
    released: int
    delta_budget: float


def _now() -> str:
    return dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat()


class Ledger:
    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self._connect() as db:
                db.executescript(SCHEMA)
        except (sqlite3.Error, OSError) as exc:
            raise OutputError(f"{self.path}: cannot open the budget ledger ({exc})") from None

    def _connect(self) -> sqlite3.Connection:
        try:
            db = sqlite3.connect(self.path, timeout=60, isolation_level=None)
            db.execute("PRAGMA busy_timeout = 60000")
        except sqlite3.Error as exc:
            raise OutputError(f"{self.path}: cannot open the budget ledger ({exc})") from None
        return db

    def reserve(self, dataset: str, label: str, *, rho: float, rho_budget: float, epsilon: float, delta: float,
                max_attempts: int, out: str = "", delta_budget: float = 1e-6) -> int:
        """Record a release attempt and spend its ``rho``; refuse (BudgetError) if the
        dataset's budget or attempt cap would be exceeded. Returns the release id.

        A dataset's total budget is fixed when the ledger first sees it."""
        try:
            return self._reserve(dataset, label, rho, rho_budget, epsilon, delta, max_attempts, out, delta_budget)
        except sqlite3.Error as exc:
            raise OutputError(f"{self.path}: the budget ledger failed ({exc}); nothing was read or written") from None

    def _reserve(self, dataset: str, label: str, rho: float, rho_budget: float, epsilon: float, delta: float,
                 max_attempts: int, out: str, delta_budget: float) -> int:
        db = self._connect()
        try:
            db.execute("BEGIN IMMEDIATE")  # one writer at a time: check and spend atomically
            row = db.execute("SELECT rho_budget FROM dataset WHERE hash = ?", (dataset,)).fetchone()
            if row is None:
                db.execute("INSERT INTO dataset (hash, label, rho_budget, created, delta_budget) "
                           "VALUES (?, ?, ?, ?, ?)", (dataset, label, rho_budget, _now(), delta_budget))
                budget = rho_budget
            else:
                budget = float(row[0])
            spent, attempts, released = db.execute(
                "SELECT COALESCE(SUM(rho), 0), COALESCE(SUM(rho > 0), 0), COALESCE(SUM(status = 'released'), 0) "
                "FROM release WHERE dataset = ?", (dataset,)).fetchone()
            if attempts >= max_attempts:
                raise BudgetError(
                    f"dataset {dataset[:12]} ({label}) has had {attempts} release attempts ({released} released); "
                    f"the policy allows {max_attempts}. Re-running until an audit passes leaks information; have "
                    "the data owner raise max_attempts (recorded as a weakening) if more releases are justified")
            if spent + rho > budget * (1 + 1e-12):
                raise BudgetError(
                    f"dataset {dataset[:12]} ({label}): this release needs rho {rho:.6g}, but only "
                    f"{max(0.0, budget - spent):.6g} of the total {budget:.6g} is left; nothing was read or "
                    "written. Use a smaller epsilon, or see `privsynth budget show`")
            cursor = db.execute(
                "INSERT INTO release (dataset, rho, epsilon, delta, status, started, out) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (dataset, rho, epsilon, delta, "reserved", _now(), out))
            db.execute("COMMIT")
            return int(cursor.lastrowid or 0)
        except BaseException:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise
        finally:
            db.close()

    def finish(self, release_id: int, status: str, refund: bool = False) -> None:
        """Mark a release 'released', 'refused' or 'failed'. Its rho stays spent, unless
        ``refund``: the attempt failed before the generator touched the data (unreadable
        input, too few patients); it is then kept on record with rho 0 and is no attempt."""
        if status not in STATUSES:
            raise ValueError(f"unknown status '{status}'; allowed: {', '.join(STATUSES)}")
        db = self._connect()
        try:
            db.execute("UPDATE release SET status = ?, finished = ?, rho = CASE WHEN ? THEN 0 ELSE rho END "
                       "WHERE id = ?", (status, _now(), refund, release_id))
        except sqlite3.Error as exc:
            raise OutputError(f"{self.path}: could not record release {release_id} as {status} ({exc}); "
                              "fix the ledger file and record it by hand") from None
        finally:
            db.close()

    def spent(self, dataset: str) -> float:
        db = self._connect()
        try:
            return float(db.execute("SELECT COALESCE(SUM(rho), 0) FROM release WHERE dataset = ?",
                                    (dataset,)).fetchone()[0])
        finally:
            db.close()

    def datasets(self) -> list[DatasetBudget]:
        db = self._connect()
        try:
            rows = db.execute(
                "SELECT d.hash, d.label, d.rho_budget, COALESCE(SUM(r.rho), 0), COALESCE(SUM(r.rho > 0), 0), "
                "COALESCE(SUM(r.status = 'released'), 0), d.delta_budget FROM dataset d "
                "LEFT JOIN release r ON r.dataset = d.hash GROUP BY d.hash ORDER BY d.created").fetchall()
        except sqlite3.Error as exc:
            raise OutputError(f"{self.path}: cannot read the budget ledger ({exc})") from None
        finally:
            db.close()
        return [DatasetBudget(h, lab, float(b), float(s), int(a), int(r), float(db_)) for h, lab, b, s, a, r, db_
                in rows]
