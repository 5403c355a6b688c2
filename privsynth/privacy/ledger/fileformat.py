"""The ledger's SQLite file: its tables, its format, the migration of a format-2 file, the
secret in its key file (checked against the ledger) and connections to it."""

from __future__ import annotations

import contextlib
import datetime as dt
import hmac
import secrets
import sqlite3
from collections.abc import Iterator
from pathlib import Path

from privsynth.errors import OutputError
from privsynth.privacy.keyfile import KEY_VARIABLE, SECRET_BYTES, check_value, read_key_file, write_key_file

FORMAT = "privsynth-ledger/3"
OLD_FORMAT = "privsynth-ledger/2"  # the secret inside the file, spend per key: migrated on open
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


def now() -> str:
    """The time stamps of the ledger: UTC, to the second, ISO 8601."""
    return dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat()


@contextlib.contextmanager
def connect(path: Path) -> Iterator[sqlite3.Connection]:
    """A connection in autocommit mode (transactions are begun explicitly), closed on exit."""
    try:
        db = sqlite3.connect(path, timeout=60, isolation_level=None)
        db.execute("PRAGMA busy_timeout = 60000")
        db.execute("PRAGMA temp_store = MEMORY")
    except sqlite3.Error as exc:
        raise OutputError(f"{path}: cannot open the budget ledger ({exc})") from None
    try:
        yield db
    finally:
        db.close()


def open_tables(db: sqlite3.Connection, path: Path, key_path: Path) -> bytes:
    """Create or migrate the tables of the ledger at ``path``; return the secret of its key
    file ``key_path``, checked against the ledger."""
    tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    if "dataset" in tables:
        raise OutputError(
            f"{path}: a ledger of privsynth 0.1, which kept budgets per input file; per-patient "
            "budgets cannot be derived from it. Keep it as the record of what was spent, start a new "
            "ledger with --ledger (or $PRIVSYNTH_LEDGER), and lower the new policy's total_epsilon by "
            "what the old ledger shows for the same patients")
    db.executescript(SCHEMA)  # idempotent; commits on its own
    db.execute("BEGIN IMMEDIATE")
    try:
        found = db.execute("SELECT value FROM meta WHERE key = 'format'").fetchone()
        if found is not None and found[0] == OLD_FORMAT:
            secret = _migrate(db, path, key_path)
        elif found is not None and found[0] != FORMAT:
            raise OutputError(f"{path}: ledger format '{found[0]}', this privsynth reads '{FORMAT}'")
        else:
            secret = _secret_for(db, path, key_path)
        db.execute("COMMIT")
    except BaseException:
        if db.in_transaction:
            db.execute("ROLLBACK")
        raise
    return secret


def created_at(db: sqlite3.Connection) -> str:
    """When the ledger was created, as recorded in it ("unknown" if it is not)."""
    created = db.execute("SELECT value FROM meta WHERE key = 'created'").fetchone()
    return str(created[0]) if created else "unknown"


def _secret_for(db: sqlite3.Connection, path: Path, key_path: Path) -> bytes:
    check = db.execute("SELECT value FROM meta WHERE key = 'key_check'").fetchone()
    if check is None:  # a new ledger: its key file is made (or an existing one adopted) now
        if not key_path.exists():
            write_key_file(key_path, secrets.token_bytes(SECRET_BYTES))
        secret = read_key_file(key_path)
        db.execute("INSERT INTO meta (key, value) VALUES ('format', ?)", (FORMAT,))
        db.execute("INSERT INTO meta (key, value) VALUES ('key_check', ?)", (check_value(secret),))
        db.execute("INSERT OR IGNORE INTO meta (key, value) VALUES ('created', ?)", (now(),))
        return secret
    if not key_path.exists():
        raise OutputError(
            f"{path}: its key file {key_path} is missing. Without it the ledger cannot recognise the "
            "patients it has charged (every patient would start from zero). Restore the key file from where the "
            f"data owner keeps it, or name it with ${KEY_VARIABLE}")
    secret = read_key_file(key_path)
    if not hmac.compare_digest(bytes(check[0]), check_value(secret)):
        raise OutputError(f"{path}: the key file {key_path} belongs to another ledger; name this "
                          f"ledger's own key file with ${KEY_VARIABLE}")
    return secret


def _migrate(db: sqlite3.Connection, path: Path, key_path: Path) -> bytes:
    """A privsynth-ledger/2 file: its secret moves to the key file, each key becomes a person."""
    secret = bytes(db.execute("SELECT value FROM meta WHERE key = 'secret'").fetchone()[0])
    if key_path.exists():
        if not hmac.compare_digest(read_key_file(key_path), secret):
            raise OutputError(f"{path}: migrating this ledger needs its key file at {key_path}, but a "
                              "different key is there; move it away or name another path with "
                              f"${KEY_VARIABLE}")
    else:
        write_key_file(key_path, secret)
    db.execute("INSERT OR IGNORE INTO person (key, person) SELECT DISTINCT patient, patient FROM spend")
    db.execute("DELETE FROM meta WHERE key = 'secret'")
    db.execute("UPDATE meta SET value = ? WHERE key = 'format'", (FORMAT,))
    db.execute("INSERT INTO meta (key, value) VALUES ('key_check', ?)", (check_value(secret),))
    db.execute("INSERT OR IGNORE INTO meta (key, value) VALUES ('created', 'before format 3')")
    return secret
