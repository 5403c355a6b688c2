"""Patients as the ledger knows them: keyed hashes of their stable keys, linked to PERSONS.

The keys of one input row are one person; a key seen again (in any later release, under any
budget name) finds its person; two persons found to share a key are merged, and their spends
added (different releases charged them). The ``person`` table maps every key to its person,
whose id is one of its own keys.
"""

from __future__ import annotations

import hmac
import sqlite3
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from privsynth.privacy.keys import as_keys

KEY_BYTES = 16  # truncated HMAC-SHA-256: collisions among a billion patients have probability ~1e-21
CHUNK = 500  # keys per ``IN (...)`` lookup, well under SQLite's limit on bound parameters


@dataclass(frozen=True)
class Person:
    """One person of an input: its id in the ledger, the ledger persons it was known as before
    (sorted; the first is its id, the others merge into it) and its rows in the input."""

    id: bytes
    earlier: tuple[bytes, ...]
    rows: tuple[int, ...]

    @property
    def weight(self) -> float:
        """c rows of one person move every count by c: c^2 times the rho."""
        return float(len(self.rows) ** 2)


def hash_keys(secret: bytes, ids: Iterable[object]) -> tuple[tuple[bytes, ...], ...]:
    """The keyed hashes of each patient's stable keys under ``secret``: one tuple per patient
    (a plain id or row hash is one key; :class:`PatientKeys` many)."""
    return tuple(tuple(hmac.digest(secret, k.encode("utf-8"), "sha256")[:KEY_BYTES] for k in as_keys(i).values)
                 for i in ids)


class _KeyForest:
    """A union-find over keys (and person ids, which are keys too)."""

    def __init__(self) -> None:
        self.parent: dict[bytes, bytes] = {}

    def find(self, x: bytes) -> bytes:
        parent = self.parent
        root = x
        while root in parent:
            root = parent[root]
        while x != root:
            parent[x], x = root, parent[x]
        return root

    def union(self, a: bytes, b: bytes) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[rb] = ra


def group_persons(db: sqlite3.Connection, rows: Sequence[Sequence[bytes]]) -> list[Person]:
    """Group the input's rows into persons: rows sharing a key, and keys an earlier release
    linked to one person, are one person (a union-find over keys)."""
    known = _known_persons(db, rows)
    forest = _KeyForest()
    for row in rows:
        for k in row[1:]:
            forest.union(row[0], k)
    # a person's id is one of its own keys, so keys and person ids share one space
    for k, person in known:  # a key's earlier person joins everyone who shares it
        if k != person:
            forest.union(person, k)
    members: dict[bytes, list[int]] = {}
    for i, row in enumerate(rows):
        members.setdefault(forest.find(row[0]), []).append(i)
    earlier: dict[bytes, set[bytes]] = {root: set() for root in members}
    for k, person in known:
        earlier[forest.find(k)].add(person)
    persons = []
    for root, group in members.items():
        before = tuple(sorted(earlier[root]))
        persons.append(Person(before[0] if before else rows[group[0]][0], before, tuple(group)))
    return persons


def _known_persons(db: sqlite3.Connection, rows: Sequence[Sequence[bytes]]) -> list[tuple[bytes, bytes]]:
    """(key, person) of every key of the input that the ledger has seen before."""
    db.execute("CREATE TEMP TABLE IF NOT EXISTS incoming (key BLOB PRIMARY KEY) WITHOUT ROWID")
    db.execute("DELETE FROM incoming")
    # sorted: B-tree inserts in key order are several times faster than in random order
    db.executemany("INSERT OR IGNORE INTO incoming VALUES (?)", ((k,) for k in sorted({k for row in rows
                                                                                         for k in row})))
    return [(bytes(k), bytes(p)) for k, p in db.execute(
        "SELECT p.key, p.person FROM incoming i JOIN person p ON p.key = i.key")]


def link_persons(db: sqlite3.Connection, persons: Sequence[Person], rows: Sequence[Sequence[bytes]]) -> None:
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


def persons_of(db: sqlite3.Connection, keys: Iterable[bytes]) -> dict[bytes, bytes]:
    """The person of each of these keys that the ledger knows."""
    flat = sorted(set(keys))
    person: dict[bytes, bytes] = {}
    for start in range(0, len(flat), CHUNK):
        chunk = flat[start:start + CHUNK]
        marks = ",".join("?" * len(chunk))
        person.update((bytes(k), bytes(p)) for k, p in db.execute(
            f"SELECT key, person FROM person WHERE key IN ({marks})", chunk))
    return person
