"""Named budgets, patients' caps and what they have spent.

A budget's total is fixed when the ledger first sees its name. A patient's cap is the
SMALLEST total of any budget they have been charged under, this release's included; their
spend is the sum over every budget name. A person of c rows in one input is charged
c^2 * rho (:attr:`Person.weight`).
"""

from __future__ import annotations

import math
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass

from privsynth.errors import BudgetError
from privsynth.privacy.ledger.fileformat import now
from privsynth.privacy.ledger.person import CHUNK, Person, persons_of
from privsynth.privacy.ledger.request import ReservationRequest


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


def charge(db: sqlite3.Connection, request: ReservationRequest, persons: Sequence[Person]) -> None:
    """Charge ``request.rho`` times its weight to each person, or refuse (:class:`BudgetError`)
    when the budget's total differs from the one it was created with, when a person would
    exceed their cap, or has been in ``request.max_attempts`` charged attempts already."""
    total, total_delta = _fixed_total(db, request)
    db.execute("CREATE TEMP TABLE IF NOT EXISTS charge (patient BLOB PRIMARY KEY, weight REAL NOT NULL) "
               "WITHOUT ROWID")
    db.execute("DELETE FROM charge")
    db.executemany("INSERT INTO charge VALUES (?, ?)", sorted((p.id, p.weight) for p in persons))
    _check_caps(db, request, total, total_delta, max(len(p.rows) for p in persons))
    db.execute(
        "INSERT INTO spend (budget, patient, rho, attempts) SELECT ?, patient, ? * weight, 1 FROM charge "
        "WHERE true ON CONFLICT (budget, patient) DO UPDATE SET rho = rho + excluded.rho, "
        "attempts = attempts + 1", (request.budget, request.rho))


def _fixed_total(db: sqlite3.Connection, request: ReservationRequest) -> tuple[float, float]:
    """The budget's total (rho, delta): the request's for a new name, else the recorded one,
    which the request must match."""
    budget, rho_budget, delta_budget = request.budget, request.rho_budget, request.delta_budget
    row = db.execute("SELECT rho_budget, delta_budget FROM budget WHERE name = ?", (budget,)).fetchone()
    if row is None:
        db.execute("INSERT INTO budget (name, rho_budget, delta_budget, created) VALUES (?, ?, ?, ?)",
                   (budget, rho_budget, delta_budget, now()))
        return rho_budget, delta_budget
    total, total_delta = float(row[0]), float(row[1])
    if not (math.isclose(total, rho_budget, rel_tol=1e-9) and math.isclose(total_delta, delta_budget, rel_tol=1e-9)):
        from privsynth.privacy.mechanism import epsilon_for

        raise BudgetError(
            f"budget '{budget}' was created with a total of epsilon "
            f"{epsilon_for(total, total_delta):.3g} at delta {total_delta:g}; this release's policy "
            f"says epsilon {epsilon_for(rho_budget, delta_budget):.3g} at delta {delta_budget:g}. A "
            "budget's total is fixed when it is created: use the policy it was created with, or a new "
            "--dataset name (what its patients spent elsewhere, and the smallest total they were "
            "charged under, still count)")
    return total, total_delta


def _check_caps(db: sqlite3.Connection, request: ReservationRequest, total: float, total_delta: float,
                heaviest: int) -> None:
    """Refuse when a person of the ``charge`` table would exceed their cap or has used up
    their attempts; ``heaviest`` is the most rows any one of them has in the input."""
    rho, budget, max_attempts, show_counts = request.rho, request.budget, request.max_attempts, request.show_counts
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
        from privsynth.privacy.mechanism import epsilon_for

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


def summaries(db: sqlite3.Connection) -> list[BudgetSummary]:
    """Every named budget, with what its worst-off patient has spent under ALL names."""
    names = db.execute("SELECT name, rho_budget, delta_budget FROM budget ORDER BY created, name").fetchall()
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


def patient_spends(db: sqlite3.Connection, keys: Sequence[Sequence[bytes]], budget: str | None) -> list[float]:
    """What each patient (one tuple of keyed hashes each) has spent: under ``budget``, or under
    every name; a patient whose keys belong to persons not yet merged has spent what they
    have together."""
    person = persons_of(db, (k for row in keys for k in row))
    by_person: dict[bytes, float] = {}
    where = "" if budget is None else "budget = ? AND "
    persons = sorted(set(person.values()))
    for start in range(0, len(persons), CHUNK):
        chunk = persons[start:start + CHUNK]
        marks = ",".join("?" * len(chunk))
        by_person.update((bytes(p), float(r)) for p, r in db.execute(
            f"SELECT patient, SUM(rho) FROM spend WHERE {where}patient IN ({marks}) GROUP BY patient",
            (*([budget] if budget else []), *chunk)))
    return [sum(by_person.get(p, 0.0) for p in {person[k] for k in row if k in person}) for row in keys]
