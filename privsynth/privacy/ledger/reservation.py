"""Releases in the ledger: reserved before any fitting, finished (or refunded) after, and
settled by :func:`settle` when their process was killed."""

from __future__ import annotations

import os
import socket
import sqlite3
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from privsynth.atomic import process_alive
from privsynth.errors import BudgetError
from privsynth.privacy.ledger.budget import charge
from privsynth.privacy.ledger.fileformat import now
from privsynth.privacy.ledger.person import group_persons, link_persons
from privsynth.privacy.ledger.request import ReservationRequest

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


def record_reservation(db: sqlite3.Connection, request: ReservationRequest,
                       keys: Sequence[Sequence[bytes]]) -> Reservation:
    """Link the input's keys to persons, then charge them and record the release as
    'reserved' -- or refuse (:class:`BudgetError`), charging nothing but keeping the links."""
    release_id = str(uuid.uuid4())
    db.execute("BEGIN IMMEDIATE")  # one writer at a time: link, check and spend atomically
    try:
        # who is who is a fact, kept even when this release is refused: a later release of the same
        # persons under any of their keys finds what they spent
        persons = group_persons(db, keys)
        link_persons(db, persons, keys)
        db.execute("SAVEPOINT charge")
        charge(db, request, persons)
        db.execute("INSERT INTO release (id, budget, rho, epsilon, delta, patients, status, started, out, "
                   "host, pid, partial) VALUES (?, ?, ?, ?, ?, ?, 'reserved', ?, ?, ?, ?, ?)",
                   (release_id, request.budget, request.rho, request.epsilon, request.delta, len(persons), now(),
                    request.out, socket.gethostname(), os.getpid(), int(request.partial)))
        db.execute("COMMIT")
    except BudgetError:
        db.execute("ROLLBACK TO charge")
        db.execute("COMMIT")
        raise
    except BaseException:
        if db.in_transaction:
            db.execute("ROLLBACK")
        raise
    return Reservation(release_id, request.budget, request.rho,
                       tuple((keys[p.rows[0]][0], p.weight) for p in persons))


def record_finish(db: sqlite3.Connection, reservation: Reservation, status: str, refund: bool) -> None:
    """Record how a release ended; with ``refund``, take its charge and attempt back first."""
    db.execute("BEGIN IMMEDIATE")
    try:
        if refund:
            _refund(db, reservation)
        db.execute("UPDATE release SET status = ?, finished = ? WHERE id = ?", (status, now(), reservation.id))
        db.execute("COMMIT")
    except BaseException:
        if db.in_transaction:
            db.execute("ROLLBACK")
        raise


def _refund(db: sqlite3.Connection, reservation: Reservation) -> None:
    """Each charged person found again by one of its keys (it may have merged since) gets its
    charge and its attempt back; the release stays on record with rho 0."""
    db.execute("CREATE TEMP TABLE IF NOT EXISTS refund (key BLOB PRIMARY KEY, weight REAL NOT NULL) WITHOUT ROWID")
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
    db.execute("DELETE FROM spend WHERE budget = ? AND attempts <= 0 AND rho <= 1e-15", (reservation.budget,))
    db.execute("UPDATE release SET rho = 0 WHERE id = ?", (reservation.id,))


def settle(db: sqlite3.Connection, is_complete: Callable[[Path, str], bool],
           cleanup: Callable[[Path], object]) -> list[tuple[str, str]]:
    """Settle the releases left 'reserved' by a process that no longer runs on this host:
    'released' if ``is_complete(out, release_id)``, else 'interrupted' (and ``cleanup(out)``).
    Returns ``(release id, new status)`` for each release settled."""
    settled: list[tuple[str, str]] = []
    rows = db.execute("SELECT id, out, pid FROM release WHERE status = 'reserved' AND host = ?",
                      (socket.gethostname(),)).fetchall()
    for release_id, out, pid in rows:
        if process_alive(int(pid)):
            continue
        path = Path(out)
        status = "released" if out and is_complete(path, release_id) else "interrupted"
        if status == "interrupted" and out:
            cleanup(path)
        db.execute("UPDATE release SET status = ?, finished = ? WHERE id = ? AND status = 'reserved'",
                   (status, now(), release_id))
        settled.append((release_id, status))
    return settled


def release_records(db: sqlite3.Connection) -> list[ReleaseRecord]:
    """Every release, in the order they were started."""
    rows = db.execute("SELECT id, budget, rho, epsilon, delta, patients, status, started, finished, out "
                      "FROM release ORDER BY started, rowid").fetchall()
    return [ReleaseRecord(*r) for r in rows]
