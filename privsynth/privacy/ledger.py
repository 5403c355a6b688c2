"""The privacy budget ledger: what every patient has spent, per named budget, in SQLite.

The privacy unit is the patient, so the budget is a property of patients, not of files.
Each release charges its rho to EVERY patient of its input (train and holdout alike: the
audit's verdict depends on the holdout too), under a named budget (``--dataset NAME``: it
fixes the total and groups the releases of one data source). A patient is recorded only as
a keyed hash -- HMAC-SHA-256 (first 16 bytes) of their stable id under a secret created in
and kept by the ledger -- so the ledger never stores a raw patient id, and the hashes cannot
be tested against guessed ids without the ledger's own secret. Re-exports, re-ordered rows
and overlapping exports of the same patients land on the same entries, and a patient's
spend is the sum over EVERY budget name (the same key under two names is the same person):
the budget holds per patient.

A key that occurs c times in one input (a table keyed by row content, where identical rows
may be one patient counted twice) is charged c^2 * rho: c rows of one patient make every
count vector move by c, so its zCDP cost is c^2 times the unit's (Gaussian mechanisms scale
with the squared sensitivity).

A release RESERVES its rho in one ``BEGIN IMMEDIATE`` transaction before any fitting:
it is refused when any of its patients would exceed the budget's total, or has been in
``max_attempts`` charged release attempts already (retrying until an audit passes leaks
information). Concurrent releases on one ledger file cannot overspend. A reserved rho
stays spent whether the release passes its audits or not; it is refunded only when the
release failed before the generator touched the data. A partial synthesis is charged like
the others but flagged: its kept columns are real values, which no epsilon covers.

A release killed outright (``kill -9``) stays "reserved" until :meth:`Ledger.reconcile`
(run by the next ``release`` and by ``budget show``) finds its process gone and looks at
the disk: a complete release directory carrying the release's id is recorded "released";
anything else is recorded "interrupted" and its temporary directory removed. Its rho stays
spent: the ledger cannot know how far it got.

>>> import tempfile, pathlib
>>> ledger = Ledger(pathlib.Path(tempfile.mkdtemp()) / "ledger.sqlite3")
>>> keys = ledger.patient_keys(["p1", "p2"])
>>> r = ledger.reserve("demo", keys, rho=0.1, rho_budget=0.25, delta_budget=1e-5, epsilon=1.0, delta=1e-6,
...                    max_attempts=3)
>>> ledger.finish(r, "released")
>>> [(b.name, round(b.worst_rho, 3), b.patients) for b in ledger.budgets()]
[('demo', 0.1, 2)]
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hmac
import math
import os
import secrets
import socket
import sqlite3
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from privsynth.atomic import process_alive
from privsynth.errors import BudgetError, OutputError

FORMAT = "privsynth-ledger/2"
KEY_BYTES = 16  # truncated HMAC-SHA-256: collisions among a billion patients have probability ~1e-21
SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS budget (
    name TEXT PRIMARY KEY,
    rho_budget REAL NOT NULL,
    delta_budget REAL NOT NULL,
    created TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS spend (
    budget TEXT NOT NULL REFERENCES budget(name),
    patient BLOB NOT NULL,
    rho REAL NOT NULL,
    attempts INTEGER NOT NULL,
    PRIMARY KEY (budget, patient)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS spend_by_patient ON spend (patient);
CREATE TABLE IF NOT EXISTS release (
    id TEXT PRIMARY KEY,
    budget TEXT NOT NULL REFERENCES budget(name),
    rho REAL NOT NULL,
    epsilon REAL NOT NULL,
    delta REAL NOT NULL,
    patients INTEGER NOT NULL,
    status TEXT NOT NULL,
    started TEXT NOT NULL,
    finished TEXT,
    out TEXT NOT NULL,
    host TEXT NOT NULL,
    pid INTEGER NOT NULL,
    partial INTEGER NOT NULL DEFAULT 0
);
"""
STATUSES = ("reserved", "released", "refused", "failed", "interrupted")


def default_ledger_path() -> Path:
    """``$PRIVSYNTH_LEDGER``, else ``$XDG_DATA_HOME/privsynth/ledger.sqlite3``."""
    if os.environ.get("PRIVSYNTH_LEDGER"):
        return Path(os.environ["PRIVSYNTH_LEDGER"])
    base = Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share")
    return base / "privsynth" / "ledger.sqlite3"


@dataclass(frozen=True)
class Reservation:
    """A release's charge: its id (a random UUID, also written to the release manifest),
    the budget it was charged to, and the patients' keys (kept in memory for a refund)."""

    id: str
    budget: str
    rho: float
    keys: tuple[bytes, ...]


@dataclass(frozen=True)
class BudgetSummary:
    """One named budget: its total and what its worst-off patient has spent."""

    name: str
    rho_budget: float
    delta_budget: float
    patients: int  # patients with a charge under this budget
    worst_rho: float  # the largest rho any one of them has spent, under every budget name
    patients_at_worst: int
    worst_attempts: int
    releases: int
    released: int
    reserved: int
    partial: int = 0  # charged partial-synthesis releases: real columns, not covered by epsilon


@dataclass(frozen=True)
class ReleaseRecord:
    id: str
    budget: str
    rho: float
    epsilon: float
    delta: float
    patients: int
    status: str
    started: str
    finished: str | None
    out: str


def _now() -> str:
    return dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat()


class Ledger:
    """A per-patient budget ledger in one SQLite file (created with mode 0600)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            if not self.path.exists():
                with contextlib.suppress(FileExistsError):  # another process may be creating it too
                    os.close(os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
            with self._connection() as db:
                tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
                if "dataset" in tables:
                    raise OutputError(
                        f"{self.path}: a ledger of privsynth 0.1, which kept budgets per input file; per-patient "
                        "budgets cannot be derived from it. Keep it as the record of what was spent, start a new "
                        "ledger with --ledger (or $PRIVSYNTH_LEDGER), and lower the new policy's total_epsilon by "
                        "what the old ledger shows for the same patients")
                db.executescript(SCHEMA)
                db.execute("INSERT OR IGNORE INTO meta (key, value) VALUES ('format', ?)", (FORMAT,))
                db.execute("INSERT OR IGNORE INTO meta (key, value) VALUES ('secret', ?)", (secrets.token_bytes(32),))
                found = db.execute("SELECT value FROM meta WHERE key = 'format'").fetchone()[0]
                if found != FORMAT:
                    raise OutputError(f"{self.path}: ledger format '{found}', this privsynth reads '{FORMAT}'")
                self._secret = bytes(db.execute("SELECT value FROM meta WHERE key = 'secret'").fetchone()[0])
        except sqlite3.Error as exc:
            raise OutputError(f"{self.path}: cannot open the budget ledger ({exc})") from None
        except OSError as exc:
            if isinstance(exc, OutputError):
                raise
            raise OutputError(f"{self.path}: cannot open the budget ledger ({exc.strerror or exc})") from None

    @contextlib.contextmanager
    def _connection(self) -> Iterator[sqlite3.Connection]:
        try:
            db = sqlite3.connect(self.path, timeout=60, isolation_level=None)
            db.execute("PRAGMA busy_timeout = 60000")
            db.execute("PRAGMA temp_store = MEMORY")
        except sqlite3.Error as exc:
            raise OutputError(f"{self.path}: cannot open the budget ledger ({exc})") from None
        try:
            yield db
        finally:
            db.close()

    # -- patients ------------------------------------------------------------------------

    def patient_keys(self, ids: Iterable[object]) -> tuple[bytes, ...]:
        """The ledger's keyed hash of each stable patient id (never the id itself)."""
        secret = self._secret
        return tuple(hmac.digest(secret, str(i).encode("utf-8"), "sha256")[:KEY_BYTES] for i in ids)

    @staticmethod
    def _load(db: sqlite3.Connection, keys: Sequence[bytes]) -> float:
        """Put ``keys`` into this connection's temporary table ``incoming``, each once with
        its weight (the square of how often it occurs); return the largest weight."""
        counts = Counter(keys)
        db.execute("CREATE TEMP TABLE IF NOT EXISTS incoming (patient BLOB PRIMARY KEY, weight REAL NOT NULL) "
                   "WITHOUT ROWID")
        db.execute("BEGIN")  # temp-only writes: no lock on the ledger itself
        db.execute("DELETE FROM incoming")
        db.executemany("INSERT INTO incoming VALUES (?, ?)", ((k, float(c * c)) for k, c in counts.items()))
        db.execute("COMMIT")
        return float(max(counts.values())) ** 2

    # -- releases ------------------------------------------------------------------------

    def reserve(self, budget: str, keys: Sequence[bytes], *, rho: float, rho_budget: float, delta_budget: float,
                epsilon: float, delta: float, max_attempts: int, out: str = "", partial: bool = False) -> Reservation:
        """Charge ``rho`` to every patient in ``keys`` under ``budget``, or refuse.

        Refused (:class:`BudgetError`, nothing charged) when any of these patients would
        then exceed the budget's total rho, counting what they spent under every budget
        name, or has been in ``max_attempts`` charged attempts. A budget's total is fixed
        when the ledger first sees its name: a different total is refused, not ignored."""
        if not keys:
            raise BudgetError("a release needs at least one patient to charge")
        try:
            return self._reserve(budget, keys, rho, rho_budget, delta_budget, epsilon, delta, max_attempts, out,
                                 partial)
        except sqlite3.Error as exc:
            raise OutputError(f"{self.path}: the budget ledger failed ({exc}); nothing was fitted or written") from None

    def _reserve(self, budget: str, keys: Sequence[bytes], rho: float, rho_budget: float, delta_budget: float,
                 epsilon: float, delta: float, max_attempts: int, out: str, partial: bool) -> Reservation:
        from privsynth.privacy.mechanism import epsilon_for

        release_id = str(uuid.uuid4())
        with self._connection() as db:
            heaviest = self._load(db, keys)
            db.execute("BEGIN IMMEDIATE")  # one writer at a time: check and spend atomically
            try:
                row = db.execute("SELECT rho_budget, delta_budget FROM budget WHERE name = ?", (budget,)).fetchone()
                if row is None:
                    db.execute("INSERT INTO budget (name, rho_budget, delta_budget, created) VALUES (?, ?, ?, ?)",
                               (budget, rho_budget, delta_budget, _now()))
                    total, total_delta = rho_budget, delta_budget
                else:
                    total, total_delta = float(row[0]), float(row[1])
                    if not (math.isclose(total, rho_budget, rel_tol=1e-9)
                            and math.isclose(total_delta, delta_budget, rel_tol=1e-9)):
                        raise BudgetError(
                            f"budget '{budget}' was created with a total of epsilon "
                            f"{epsilon_for(total, total_delta):.3g} at delta {total_delta:g}; this release's policy "
                            f"says epsilon {epsilon_for(rho_budget, delta_budget):.3g} at delta {delta_budget:g}. A "
                            "budget's total is fixed when it is created: use the policy it was created with, or a new "
                            "--dataset name (what its patients spent elsewhere still counts)")
                worst, attempts, over, capped = db.execute(
                    "SELECT COALESCE(MAX(t.spent), 0), COALESCE(MAX(t.attempts), 0), "
                    "COALESCE(SUM(t.spent + ? * t.weight > ? * (1 + 1e-12)), 0), COALESCE(SUM(t.attempts >= ?), 0) "
                    "FROM (SELECT i.weight AS weight, SUM(s.rho) AS spent, SUM(s.attempts) AS attempts "
                    "      FROM incoming i JOIN spend s ON s.patient = i.patient GROUP BY i.patient) t",
                    (rho, total, max_attempts)).fetchone()
                new_over = db.execute(
                    "SELECT COUNT(*) FROM incoming i WHERE ? * i.weight > ? * (1 + 1e-12) "
                    "AND NOT EXISTS (SELECT 1 FROM spend s WHERE s.patient = i.patient)", (rho, total)).fetchone()[0]
                if over or new_over:
                    worst_eps = epsilon_for(float(worst), total_delta)
                    repeated = "" if heaviest <= 1 else (
                        f" Some keys occur up to {math.isqrt(int(heaviest))} times in this input: identical rows of a "
                        "table keyed by its values may be one patient counted that many times, so each such key is "
                        "charged rho times its count squared; declare the table's patient id (the schema's "
                        "patient_id) if its rows are distinct patients.")
                    raise BudgetError(
                        f"budget '{budget}': this release needs rho {rho:.6g} per patient, but "
                        f"{int(over) + int(new_over):,} of its patients would exceed the total rho {total:.6g} "
                        f"(epsilon {epsilon_for(total, total_delta):.3g} at delta {total_delta:g}); the worst-off has "
                        f"spent rho {float(worst):.6g} (epsilon {worst_eps:.3g}). Nothing was fitted or written. Use a "
                        f"smaller epsilon, leave those patients out, or see `privsynth budget show`.{repeated}")
                if capped:
                    raise BudgetError(
                        f"budget '{budget}': {int(capped):,} of this input's patients have been in {int(attempts)} "
                        f"release attempts; the policy allows {max_attempts}. Re-running until an audit passes leaks "
                        "information; have the data owner raise max_attempts (recorded as a weakening) if more "
                        "releases are justified")
                db.execute(
                    "INSERT INTO spend (budget, patient, rho, attempts) SELECT ?, patient, ? * weight, 1 FROM incoming "
                    "WHERE true ON CONFLICT (budget, patient) DO UPDATE SET rho = rho + excluded.rho, "
                    "attempts = attempts + 1", (budget, rho))
                patients = db.execute("SELECT COUNT(*) FROM incoming").fetchone()[0]
                db.execute("INSERT INTO release (id, budget, rho, epsilon, delta, patients, status, started, out, "
                           "host, pid, partial) VALUES (?, ?, ?, ?, ?, ?, 'reserved', ?, ?, ?, ?, ?)",
                           (release_id, budget, rho, epsilon, delta, patients, _now(), out, socket.gethostname(),
                            os.getpid(), int(partial)))
                db.execute("COMMIT")
            except BaseException:
                if db.in_transaction:
                    db.execute("ROLLBACK")
                raise
        return Reservation(release_id, budget, rho, tuple(keys))

    def finish(self, reservation: Reservation, status: str, refund: bool = False) -> None:
        """Record how a release ended: 'released', 'refused' or 'failed'. Its rho stays
        spent, unless ``refund``: the attempt failed before the generator touched the data
        (e.g. a holdout too small to audit); the charge and the attempt are then taken back
        from each of its patients, and the release stays on record with rho 0."""
        if status not in STATUSES:
            raise ValueError(f"unknown status '{status}'; allowed: {', '.join(STATUSES)}")
        try:
            with self._connection() as db:
                if refund:
                    self._load(db, reservation.keys)
                db.execute("BEGIN IMMEDIATE")
                try:
                    if refund:
                        db.execute("UPDATE spend SET rho = MAX(0, rho - ? * (SELECT weight FROM incoming i "
                                   "WHERE i.patient = spend.patient)), attempts = attempts - 1 "
                                   "WHERE budget = ? AND patient IN (SELECT patient FROM incoming)",
                                   (reservation.rho, reservation.budget))
                        db.execute("DELETE FROM spend WHERE budget = ? AND attempts <= 0 AND rho <= 1e-15",
                                   (reservation.budget,))
                        db.execute("UPDATE release SET rho = 0 WHERE id = ?", (reservation.id,))
                    db.execute("UPDATE release SET status = ?, finished = ? WHERE id = ?",
                               (status, _now(), reservation.id))
                    db.execute("COMMIT")
                except BaseException:
                    if db.in_transaction:
                        db.execute("ROLLBACK")
                    raise
        except sqlite3.Error as exc:
            raise OutputError(f"{self.path}: could not record release {reservation.id} as {status} ({exc}); "
                              "`privsynth budget show` will reconcile it") from None

    def reconcile(self, is_complete: Callable[[Path, str], bool],
                  cleanup: Callable[[Path], object]) -> list[tuple[str, str]]:
        """Settle releases left 'reserved' by a process that no longer runs on this host.

        ``is_complete(out, release_id)`` says whether ``out`` holds that release, whole;
        ``cleanup(out)`` removes what a killed run left beside ``out``. Returns
        ``(release id, new status)`` for each release settled."""
        host = socket.gethostname()
        settled: list[tuple[str, str]] = []
        try:
            with self._connection() as db:
                rows = db.execute("SELECT id, out, pid FROM release WHERE status = 'reserved' AND host = ?",
                                  (host,)).fetchall()
                for release_id, out, pid in rows:
                    if process_alive(int(pid)):
                        continue
                    path = Path(out)
                    status = "released" if out and is_complete(path, release_id) else "interrupted"
                    if status == "interrupted" and out:
                        cleanup(path)
                    db.execute("UPDATE release SET status = ?, finished = ? WHERE id = ? AND status = 'reserved'",
                               (status, _now(), release_id))
                    settled.append((release_id, status))
        except sqlite3.Error as exc:
            raise OutputError(f"{self.path}: cannot reconcile the budget ledger ({exc})") from None
        return settled

    # -- reading -------------------------------------------------------------------------

    def budgets(self) -> list[BudgetSummary]:
        """Every named budget, with what its worst-off patient has spent under ALL names."""
        try:
            with self._connection() as db:
                names = db.execute("SELECT name, rho_budget, delta_budget FROM budget "
                                   "ORDER BY created, name").fetchall()
                # a patient's spend counts every budget name; with one name that is the plain sum
                per_patient = ("SELECT s.patient AS patient, SUM(a.rho) AS spent, SUM(a.attempts) AS attempts "
                               "FROM spend s JOIN spend a ON a.patient = s.patient WHERE s.budget = ? "
                               "GROUP BY s.patient") if len(names) > 1 else (
                              "SELECT patient, rho AS spent, attempts FROM spend WHERE budget = ?")
                out = []
                for name, rho_budget, delta_budget in names:
                    patients, worst, attempts = db.execute(
                        f"SELECT COUNT(*), COALESCE(MAX(spent), 0), COALESCE(MAX(attempts), 0) FROM ({per_patient})",
                        (name,)).fetchone()
                    at_worst = db.execute(f"SELECT COUNT(*) FROM ({per_patient}) WHERE spent >= ? * (1 - 1e-12)",
                                          (name, worst)).fetchone()[0] if worst > 0 else 0
                    releases, released, reserved, partial = db.execute(
                        "SELECT COUNT(*), COALESCE(SUM(status = 'released'), 0), "
                        "COALESCE(SUM(status = 'reserved'), 0), COALESCE(SUM(partial), 0) "
                        "FROM release WHERE budget = ? AND rho > 0", (name,)).fetchone()
                    out.append(BudgetSummary(name, float(rho_budget), float(delta_budget), int(patients), float(worst),
                                             int(at_worst), int(attempts), int(releases), int(released),
                                             int(reserved), int(partial)))
                return out
        except sqlite3.Error as exc:
            raise OutputError(f"{self.path}: cannot read the budget ledger ({exc})") from None

    def budget(self, name: str) -> BudgetSummary | None:
        return next((b for b in self.budgets() if b.name == name), None)

    def spent(self, keys: Sequence[bytes], budget: str | None = None) -> list[float]:
        """What each of these patients has spent: under ``budget``, or under every name."""
        try:
            with self._connection() as db:
                found: dict[bytes, float] = {}
                for start in range(0, len(keys), 500):
                    chunk = list(keys[start:start + 500])
                    marks = ",".join("?" * len(chunk))
                    where = "" if budget is None else "budget = ? AND "
                    found.update(db.execute(f"SELECT patient, SUM(rho) FROM spend WHERE {where}patient IN ({marks}) "
                                            "GROUP BY patient", (*([budget] if budget else []), *chunk)).fetchall())
                return [float(found.get(k, 0.0)) for k in keys]
        except sqlite3.Error as exc:
            raise OutputError(f"{self.path}: cannot read the budget ledger ({exc})") from None

    def releases(self) -> list[ReleaseRecord]:
        try:
            with self._connection() as db:
                rows = db.execute("SELECT id, budget, rho, epsilon, delta, patients, status, started, finished, out "
                                  "FROM release ORDER BY started, rowid").fetchall()
        except sqlite3.Error as exc:
            raise OutputError(f"{self.path}: cannot read the budget ledger ({exc})") from None
        return [ReleaseRecord(*r) for r in rows]
