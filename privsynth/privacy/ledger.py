"""The privacy budget ledger: what every patient has spent, per named budget, in SQLite.

The privacy unit is the patient, so the budget is a property of patients, not of files.
Each release charges its rho to EVERY patient of its input (train and holdout alike: the
audit's verdict depends on the holdout too), under a named budget (``--dataset NAME``: it
fixes the total and groups the releases of one data source).

**Patients, not keys.** A patient may be known by several stable keys at once (Patient.id,
the MRN, the SSN: :class:`privsynth.privacy.keys.PatientKeys`). The ledger records each key
only as a keyed hash -- HMAC-SHA-256 (first 16 bytes) under a secret kept OUTSIDE the
ledger, in a key file (``<ledger>.key``, mode 0600, by default; see :func:`key_path_for`) --
and links every key to one PERSON: the keys of one input row are one person, and a key seen
again (in any later release, under any budget name, whatever the primary key) finds its
person. Two persons that turn out to share a key are merged and their spends added (they
were charged by different releases). Spend is kept per person, so re-keying the same
patients by Patient.id, then MRN, then SSN charges the same person every time. Without the
key file the ledger's hashes cannot be tested against guessed ids; whoever holds both can.

**Caps.** A patient's cap is the SMALLEST total of any budget they have been charged
under, this release's included: a new ``--dataset`` name with a larger total does not raise
it. A patient's spend is the sum over every budget name.

A key that occurs c times in one input (a table keyed by row content, where identical rows
may be one patient counted twice; or rows that an earlier release linked to one person) is
charged c^2 * rho: c rows of one patient make every count vector move by c, so its zCDP
cost is c^2 times the unit's (Gaussian mechanisms scale with the squared sensitivity).

A release RESERVES its rho in one ``BEGIN IMMEDIATE`` transaction before any fitting:
it is refused when any of its patients would exceed their cap, or has been in
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

Refusal messages give no patient counts unless asked (``show_counts``): the operator's
screen is not a counting oracle on the ledger.

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
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from privsynth.atomic import process_alive
from privsynth.errors import BudgetError, OutputError
from privsynth.privacy.keyfile import (
    KEY_VARIABLE,
    SECRET_BYTES,
    LedgerOrigin,
    check_value,
    key_path_for,
    ledgers_near,
    read_key_file,
    write_key_file,
)
from privsynth.privacy.keys import as_keys

FORMAT = "privsynth-ledger/3"
OLD_FORMAT = "privsynth-ledger/2"  # the secret inside the file, spend per key: migrated on open
KEY_BYTES = 16  # truncated HMAC-SHA-256: collisions among a billion patients have probability ~1e-21
SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS budget (
    name TEXT PRIMARY KEY,
    rho_budget REAL NOT NULL,
    delta_budget REAL NOT NULL,
    created TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS person (
    key BLOB PRIMARY KEY,
    person BLOB NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS person_keys ON person (person);
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


@dataclass(frozen=True)
class Reservation:
    """A release's charge: its id (a random UUID, also written to the release manifest),
    the budget it was charged to, and per charged person one of its keys and its weight
    (kept in memory for a refund)."""

    id: str
    budget: str
    rho: float
    charges: tuple[tuple[bytes, float], ...]


@dataclass(frozen=True)
class BudgetSummary:
    """One named budget: its total and what its worst-off patient has spent."""

    name: str
    rho_budget: float
    delta_budget: float
    patients: int  # persons with a charge under this budget
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


@dataclass
class _Person:
    """One person of an input: the ledger persons it was known as before (sorted; the first
    is its id, the others merge into it) and its rows in the input."""

    earlier: list[bytes]
    rows: list[int]
    id: bytes = b""

    @property
    def weight(self) -> float:
        """c rows of one person move every count by c: c^2 times the rho."""
        return float(len(self.rows) ** 2)


class Ledger:
    """A per-patient budget ledger in one SQLite file (created with mode 0600) and its key
    file (``key_path``, default :func:`key_path_for`; mode 0600)."""

    def __init__(self, path: str | Path, key_path: str | Path | None = None) -> None:
        self.path = Path(path)
        self.key_path = Path(key_path) if key_path is not None else key_path_for(self.path)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            created_now = False
            nearby: tuple[str, ...] = ()
            if not self.path.exists():
                nearby = ledgers_near(self.path)
                with contextlib.suppress(FileExistsError):  # another process may be creating it too
                    os.close(os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
                    created_now = True
            with self._connection() as db:
                self._secret = self._open(db)
                created = db.execute("SELECT value FROM meta WHERE key = 'created'").fetchone()
        except sqlite3.Error as exc:
            raise OutputError(f"{self.path}: cannot open the budget ledger ({exc})") from None
        except OSError as exc:
            if isinstance(exc, OutputError):
                raise
            raise OutputError(f"{self.path}: cannot open the budget ledger ({exc.strerror or exc})") from None
        self.origin = LedgerOrigin(str(self.path), str(self.key_path), str(created[0]) if created else "unknown",
                                   created_now, nearby)

    def _open(self, db: sqlite3.Connection) -> bytes:
        """Create or migrate the tables; return the secret, checked against the ledger."""
        tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        if "dataset" in tables:
            raise OutputError(
                f"{self.path}: a ledger of privsynth 0.1, which kept budgets per input file; per-patient "
                "budgets cannot be derived from it. Keep it as the record of what was spent, start a new "
                "ledger with --ledger (or $PRIVSYNTH_LEDGER), and lower the new policy's total_epsilon by "
                "what the old ledger shows for the same patients")
        db.executescript(SCHEMA)  # idempotent; commits on its own
        db.execute("BEGIN IMMEDIATE")
        try:
            found = db.execute("SELECT value FROM meta WHERE key = 'format'").fetchone()
            if found is not None and found[0] == OLD_FORMAT:
                secret = self._migrate(db)
            elif found is not None and found[0] != FORMAT:
                raise OutputError(f"{self.path}: ledger format '{found[0]}', this privsynth reads '{FORMAT}'")
            else:
                secret = self._secret_for(db, fresh=found is None)
            db.execute("COMMIT")
        except BaseException:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise
        return secret

    def _secret_for(self, db: sqlite3.Connection, fresh: bool) -> bytes:
        check = db.execute("SELECT value FROM meta WHERE key = 'key_check'").fetchone()
        if check is None:  # a new ledger: its key file is made (or an existing one adopted) now
            if not self.key_path.exists():
                write_key_file(self.key_path, secrets.token_bytes(SECRET_BYTES))
            secret = read_key_file(self.key_path)
            db.execute("INSERT INTO meta (key, value) VALUES ('format', ?)", (FORMAT,))
            db.execute("INSERT INTO meta (key, value) VALUES ('key_check', ?)", (check_value(secret),))
            db.execute("INSERT OR IGNORE INTO meta (key, value) VALUES ('created', ?)", (_now(),))
            return secret
        if not self.key_path.exists():
            raise OutputError(
                f"{self.path}: its key file {self.key_path} is missing. Without it the ledger cannot recognise the "
                "patients it has charged (every patient would start from zero). Restore the key file from where the "
                f"data owner keeps it, or name it with ${KEY_VARIABLE}")
        secret = read_key_file(self.key_path)
        if not hmac.compare_digest(bytes(check[0]), check_value(secret)):
            raise OutputError(f"{self.path}: the key file {self.key_path} belongs to another ledger; name this "
                              f"ledger's own key file with ${KEY_VARIABLE}")
        return secret

    def _migrate(self, db: sqlite3.Connection) -> bytes:
        """A privsynth-ledger/2 file: its secret moves to the key file, each key becomes a person."""
        secret = bytes(db.execute("SELECT value FROM meta WHERE key = 'secret'").fetchone()[0])
        if self.key_path.exists():
            if not hmac.compare_digest(read_key_file(self.key_path), secret):
                raise OutputError(f"{self.path}: migrating this ledger needs its key file at {self.key_path}, but a "
                                  "different key is there; move it away or name another path with "
                                  f"${KEY_VARIABLE}")
        else:
            write_key_file(self.key_path, secret)
        db.execute("INSERT OR IGNORE INTO person (key, person) SELECT DISTINCT patient, patient FROM spend")
        db.execute("DELETE FROM meta WHERE key = 'secret'")
        db.execute("UPDATE meta SET value = ? WHERE key = 'format'", (FORMAT,))
        db.execute("INSERT INTO meta (key, value) VALUES ('key_check', ?)", (check_value(secret),))
        db.execute("INSERT OR IGNORE INTO meta (key, value) VALUES ('created', 'before format 3')")
        return secret

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

    def patient_keys(self, ids: Iterable[object]) -> tuple[tuple[bytes, ...], ...]:
        """The ledger's keyed hashes of each patient's stable keys (never the keys themselves):
        one tuple per patient (a plain id or row hash is one key; :class:`PatientKeys` many)."""
        secret = self._secret
        return tuple(tuple(hmac.digest(secret, k.encode("utf-8"), "sha256")[:KEY_BYTES] for k in as_keys(i).values)
                     for i in ids)

    @staticmethod
    def _persons(db: sqlite3.Connection, rows: Sequence[Sequence[bytes]]) -> list[_Person]:
        """Group the input's rows into persons: rows sharing a key, and keys an earlier release
        linked to one person, are one person (a union-find over keys)."""
        db.execute("CREATE TEMP TABLE IF NOT EXISTS incoming (key BLOB PRIMARY KEY) WITHOUT ROWID")
        db.execute("DELETE FROM incoming")
        # sorted: B-tree inserts in key order are several times faster than in random order
        db.executemany("INSERT OR IGNORE INTO incoming VALUES (?)", ((k,) for k in sorted({k for row in rows
                                                                                             for k in row})))
        known = [(bytes(k), bytes(p)) for k, p in db.execute(
            "SELECT p.key, p.person FROM incoming i JOIN person p ON p.key = i.key")]
        parent: dict[bytes, bytes] = {}

        def find(x: bytes) -> bytes:
            root = x
            while root in parent:
                root = parent[root]
            while x != root:
                parent[x], x = root, parent[x]
            return root

        def union(a: bytes, b: bytes) -> None:
            ra, rb = find(a), find(b)
            if ra != rb:
                parent[rb] = ra

        for row in rows:
            for k in row[1:]:
                union(row[0], k)
        # a person's id is one of its own keys, so keys and person ids share one space
        for k, person in known:  # a key's earlier person joins everyone who shares it
            if k != person:
                union(person, k)
        groups: dict[bytes, _Person] = {}
        for i, row in enumerate(rows):
            root = find(row[0])
            group = groups.get(root)
            if group is None:
                groups[root] = group = _Person([], [])
            group.rows.append(i)
        for k, person in known:
            group = groups[find(k)]
            if person not in group.earlier:
                group.earlier.append(person)
        for group in groups.values():
            group.earlier.sort()
            group.id = group.earlier[0] if group.earlier else rows[group.rows[0]][0]
        return list(groups.values())

    @staticmethod
    def _link(db: sqlite3.Connection, persons: list[_Person], rows: Sequence[Sequence[bytes]]) -> None:
        """Record the input's keys under their persons; fold the earlier persons a shared key
        merges into one (their keys, and their spends added: different releases charged them)."""
        for person in persons:
            for other in person.earlier[1:]:
                db.execute("UPDATE person SET person = ? WHERE person = ?", (person.id, other))
                db.execute("INSERT INTO spend (budget, patient, rho, attempts) SELECT budget, ?, rho, attempts "
                           "FROM spend WHERE patient = ? AND true ON CONFLICT (budget, patient) DO UPDATE SET "
                           "rho = rho + excluded.rho, attempts = MAX(attempts, excluded.attempts)", (person.id, other))
                db.execute("DELETE FROM spend WHERE patient = ?", (other,))
        db.executemany("INSERT INTO person (key, person) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET "
                       "person = excluded.person WHERE person.person != excluded.person",
                       sorted((k, person.id) for person in persons for i in person.rows for k in rows[i]))

    # -- releases ------------------------------------------------------------------------

    def reserve(self, budget: str, keys: Sequence[Sequence[bytes]], *, rho: float, rho_budget: float,
                delta_budget: float, epsilon: float, delta: float, max_attempts: int, out: str = "",
                partial: bool = False, show_counts: bool = False) -> Reservation:
        """Charge ``rho`` to every patient in ``keys`` (one tuple of keyed hashes per input
        row, from :meth:`patient_keys`) under ``budget``, or refuse.

        Refused (:class:`BudgetError`, nothing charged) when any of these patients would
        then exceed their cap -- the smallest total of this budget and of every budget they
        were charged under before -- counting what they spent under every budget name, or
        has been in ``max_attempts`` charged attempts. A budget's total is fixed when the
        ledger first sees its name: a different total is refused, not ignored. Messages
        give patient counts only with ``show_counts``."""
        if not keys:
            raise BudgetError("a release needs at least one patient to charge")
        try:
            return self._reserve(budget, keys, rho, rho_budget, delta_budget, epsilon, delta, max_attempts, out,
                                 partial, show_counts)
        except sqlite3.Error as exc:
            raise OutputError(f"{self.path}: the budget ledger failed ({exc}); nothing was fitted or written") from None

    def _reserve(self, budget: str, keys: Sequence[Sequence[bytes]], rho: float, rho_budget: float,
                 delta_budget: float, epsilon: float, delta: float, max_attempts: int, out: str, partial: bool,
                 show_counts: bool) -> Reservation:
        from privsynth.privacy.mechanism import epsilon_for

        release_id = str(uuid.uuid4())
        with self._connection() as db:
            db.execute("BEGIN IMMEDIATE")  # one writer at a time: link, check and spend atomically
            try:
                # who is who is a fact, kept even when this release is refused: a later release of the same
                # persons under any of their keys finds what they spent
                persons = self._persons(db, keys)
                self._link(db, persons, keys)
                db.execute("SAVEPOINT charge")
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
                            "--dataset name (what its patients spent elsewhere, and the smallest total they were "
                            "charged under, still count)")
                db.execute("CREATE TEMP TABLE IF NOT EXISTS charge (patient BLOB PRIMARY KEY, weight REAL NOT NULL) "
                           "WITHOUT ROWID")
                db.execute("DELETE FROM charge")
                db.executemany("INSERT INTO charge VALUES (?, ?)", sorted((p.id, p.weight) for p in persons))
                heaviest = max(len(p.rows) for p in persons)
                worst, attempts, over, capped = db.execute(
                    "SELECT COALESCE(MAX(t.spent), 0), COALESCE(MAX(t.attempts), 0), "
                    "COALESCE(SUM(t.spent + ? * t.weight > MIN(t.cap, ?) * (1 + 1e-12)), 0), "
                    "COALESCE(SUM(t.attempts >= ?), 0) "
                    "FROM (SELECT c.weight AS weight, SUM(s.rho) AS spent, SUM(s.attempts) AS attempts, "
                    "             MIN(b.rho_budget) AS cap "
                    "      FROM charge c JOIN spend s ON s.patient = c.patient JOIN budget b ON b.name = s.budget "
                    "      GROUP BY c.patient) t",
                    (rho, total, max_attempts)).fetchone()
                new_over = db.execute(
                    "SELECT COUNT(*) FROM charge c WHERE ? * c.weight > ? * (1 + 1e-12) "
                    "AND NOT EXISTS (SELECT 1 FROM spend s WHERE s.patient = c.patient)", (rho, total)).fetchone()[0]
                if over or new_over:
                    worst_eps = epsilon_for(float(worst), total_delta)
                    repeated = "" if heaviest <= 1 else (
                        " Some patients occur more than once in this input (identical rows of a table keyed by its "
                        "values, or rows an earlier release linked to one patient), so each is charged rho times "
                        "its count squared; declare the table's patient id (the schema's patient_id) if its rows "
                        "are distinct patients.")
                    who = f"{int(over) + int(new_over):,} of its patients" if show_counts else "some of its patients"
                    raise BudgetError(
                        f"budget '{budget}': this release needs rho {rho:.6g} per patient, but {who} would exceed "
                        f"their cap (the smallest total of any budget they are charged under; here epsilon "
                        f"{epsilon_for(total, total_delta):.3g} at delta {total_delta:g}); the worst-off has "
                        f"spent rho {float(worst):.6g} (epsilon {worst_eps:.3g}). Nothing was fitted or written. Use a "
                        f"smaller epsilon, leave those patients out, or see `privsynth budget show`.{repeated}")
                if capped:
                    who = f"{int(capped):,} of this input's patients have" if show_counts else \
                        "some of this input's patients have"
                    raise BudgetError(
                        f"budget '{budget}': {who} been in {int(attempts)} release attempts; the policy allows "
                        f"{max_attempts}. Re-running until an audit passes leaks information; have the data owner "
                        "raise max_attempts (recorded as a weakening) if more releases are justified")
                db.execute(
                    "INSERT INTO spend (budget, patient, rho, attempts) SELECT ?, patient, ? * weight, 1 FROM charge "
                    "WHERE true ON CONFLICT (budget, patient) DO UPDATE SET rho = rho + excluded.rho, "
                    "attempts = attempts + 1", (budget, rho))
                db.execute("INSERT INTO release (id, budget, rho, epsilon, delta, patients, status, started, out, "
                           "host, pid, partial) VALUES (?, ?, ?, ?, ?, ?, 'reserved', ?, ?, ?, ?, ?)",
                           (release_id, budget, rho, epsilon, delta, len(persons), _now(), out, socket.gethostname(),
                            os.getpid(), int(partial)))
                db.execute("COMMIT")
            except BudgetError:
                db.execute("ROLLBACK TO charge")
                db.execute("COMMIT")
                raise
            except BaseException:
                if db.in_transaction:
                    db.execute("ROLLBACK")
                raise
        return Reservation(release_id, budget, rho, tuple((keys[p.rows[0]][0], p.weight) for p in persons))

    def finish(self, reservation: Reservation, status: str, refund: bool = False) -> None:
        """Record how a release ended: 'released', 'refused' or 'failed'. Its rho stays
        spent, unless ``refund``: the attempt failed before the generator touched the data
        (e.g. a holdout too small to audit); the charge and the attempt are then taken back
        from each of its patients, and the release stays on record with rho 0."""
        if status not in STATUSES:
            raise ValueError(f"unknown status '{status}'; allowed: {', '.join(STATUSES)}")
        try:
            with self._connection() as db:
                db.execute("BEGIN IMMEDIATE")
                try:
                    if refund:  # each charged person found again by one of its keys (it may have merged since)
                        db.execute("CREATE TEMP TABLE IF NOT EXISTS refund (key BLOB PRIMARY KEY, weight REAL NOT NULL)"
                                   " WITHOUT ROWID")
                        db.execute("DELETE FROM refund")
                        db.executemany("INSERT OR REPLACE INTO refund VALUES (?, ?)", reservation.charges)
                        db.execute("CREATE TEMP TABLE IF NOT EXISTS refund_person (patient BLOB PRIMARY KEY, "
                                   "weight REAL NOT NULL) WITHOUT ROWID")
                        db.execute("DELETE FROM refund_person")
                        db.execute("INSERT INTO refund_person SELECT p.person, SUM(r.weight) FROM refund r "
                                   "JOIN person p ON p.key = r.key GROUP BY p.person")
                        db.execute("UPDATE spend SET rho = MAX(0, rho - ? * (SELECT weight FROM refund_person r "
                                   "WHERE r.patient = spend.patient)), attempts = attempts - 1 "
                                   "WHERE budget = ? AND patient IN (SELECT patient FROM refund_person)",
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

    def spent(self, keys: Sequence[Sequence[bytes]], budget: str | None = None) -> list[float]:
        """What each of these patients (one tuple of keyed hashes each, from :meth:`patient_keys`)
        has spent: under ``budget``, or under every name; a patient whose keys belong to
        persons not yet merged has spent what they have together."""
        try:
            with self._connection() as db:
                flat = sorted({k for row in keys for k in row})
                person: dict[bytes, bytes] = {}
                spent: dict[bytes, float] = {}
                where = "" if budget is None else "budget = ? AND "
                for start in range(0, len(flat), 500):
                    chunk = flat[start:start + 500]
                    marks = ",".join("?" * len(chunk))
                    person.update((bytes(k), bytes(p)) for k, p in db.execute(
                        f"SELECT key, person FROM person WHERE key IN ({marks})", chunk))
                persons = sorted(set(person.values()))
                for start in range(0, len(persons), 500):
                    chunk = persons[start:start + 500]
                    marks = ",".join("?" * len(chunk))
                    spent.update((bytes(p), float(r)) for p, r in db.execute(
                        f"SELECT patient, SUM(rho) FROM spend WHERE {where}patient IN ({marks}) GROUP BY patient",
                        (*([budget] if budget else []), *chunk)))
                return [sum(spent.get(p, 0.0) for p in {person[k] for k in row if k in person}) for row in keys]
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
