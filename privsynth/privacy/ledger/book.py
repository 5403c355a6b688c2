"""The :class:`Ledger`: one SQLite file and its key file, and what a release asks of them
(the rules are in :mod:`privsynth.privacy.ledger`)."""

from __future__ import annotations

import contextlib
import os
import sqlite3
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

from privsynth.errors import BudgetError, OutputError
from privsynth.privacy.keyfile import LedgerOrigin, key_path_for, ledgers_near
from privsynth.privacy.ledger.budget import BudgetSummary, patient_spends, summaries
from privsynth.privacy.ledger.fileformat import connect, created_at, open_tables
from privsynth.privacy.ledger.person import hash_keys
from privsynth.privacy.ledger.request import ReservationRequest
from privsynth.privacy.ledger.reservation import (
    STATUSES,
    ReleaseRecord,
    Reservation,
    record_finish,
    record_reservation,
    release_records,
    settle,
)


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
            with connect(self.path) as db:
                self._secret = open_tables(db, self.path, self.key_path)
                created = created_at(db)
        except sqlite3.Error as exc:
            raise OutputError(f"{self.path}: cannot open the budget ledger ({exc})") from None
        except OSError as exc:
            if isinstance(exc, OutputError):
                raise
            raise OutputError(f"{self.path}: cannot open the budget ledger ({exc.strerror or exc})") from None
        self.origin = LedgerOrigin(str(self.path), str(self.key_path), created, created_now, nearby)

    # -- patients ------------------------------------------------------------------------

    def patient_keys(self, ids: Iterable[object]) -> tuple[tuple[bytes, ...], ...]:
        """The ledger's keyed hashes of each patient's stable keys (never the keys themselves):
        one tuple per patient (a plain id or row hash is one key; :class:`PatientKeys` many)."""
        return hash_keys(self._secret, ids)

    # -- releases ------------------------------------------------------------------------

    def reserve(self, budget: str, keys: Sequence[Sequence[bytes]], *, rho: float, rho_budget: float,
                delta_budget: float, epsilon: float, delta: float, max_attempts: int, out: str = "",
                partial: bool = False, show_counts: bool = False) -> Reservation:
        """Charge ``rho`` to every patient in ``keys`` (one tuple of keyed hashes per input
        row, from :meth:`patient_keys`) under ``budget``, or refuse: :meth:`reserve_request`
        with these fields as its :class:`ReservationRequest`."""
        return self.reserve_request(ReservationRequest(budget, rho, rho_budget, delta_budget, epsilon, delta,
                                                       max_attempts, out, partial, show_counts), keys)

    def reserve_request(self, request: ReservationRequest, keys: Sequence[Sequence[bytes]]) -> Reservation:
        """Charge ``request.rho`` to every patient in ``keys`` (one tuple of keyed hashes per
        input row, from :meth:`patient_keys`) under ``request.budget``, or refuse.

        Refused (:class:`BudgetError`, nothing charged) when any of these patients would
        then exceed their cap -- the smallest total of this budget and of every budget they
        were charged under before -- counting what they spent under every budget name, or
        has been in ``max_attempts`` charged attempts. A budget's total is fixed when the
        ledger first sees its name: a different total is refused, not ignored. Messages
        give patient counts only with ``show_counts``."""
        if not keys:
            raise BudgetError("a release needs at least one patient to charge")
        try:
            with connect(self.path) as db:
                return record_reservation(db, request, keys)
        except sqlite3.Error as exc:
            raise OutputError(f"{self.path}: the budget ledger failed ({exc}); nothing was fitted or written") from None

    def finish(self, reservation: Reservation, status: str, refund: bool = False) -> None:
        """Record how a release ended: 'released', 'refused' or 'failed'. Its rho stays
        spent, unless ``refund``: the attempt failed before the generator touched the data
        (e.g. a holdout too small to audit); the charge and the attempt are then taken back
        from each of its patients, and the release stays on record with rho 0."""
        if status not in STATUSES:
            raise ValueError(f"unknown status '{status}'; allowed: {', '.join(STATUSES)}")
        try:
            with connect(self.path) as db:
                record_finish(db, reservation, status, refund)
        except sqlite3.Error as exc:
            raise OutputError(f"{self.path}: could not record release {reservation.id} as {status} ({exc}); "
                              "`privsynth budget show` will reconcile it") from None

    def reconcile(self, is_complete: Callable[[Path, str], bool],
                  cleanup: Callable[[Path], object]) -> list[tuple[str, str]]:
        """Settle releases left 'reserved' by a process that no longer runs on this host.

        ``is_complete(out, release_id)`` says whether ``out`` holds that release, whole;
        ``cleanup(out)`` removes what a killed run left beside ``out``. Returns
        ``(release id, new status)`` for each release settled."""
        try:
            with connect(self.path) as db:
                return settle(db, is_complete, cleanup)
        except sqlite3.Error as exc:
            raise OutputError(f"{self.path}: cannot reconcile the budget ledger ({exc})") from None

    # -- reading -------------------------------------------------------------------------

    def budgets(self) -> list[BudgetSummary]:
        """Every named budget, with what its worst-off patient has spent under ALL names."""
        try:
            with connect(self.path) as db:
                return summaries(db)
        except sqlite3.Error as exc:
            raise OutputError(f"{self.path}: cannot read the budget ledger ({exc})") from None

    def budget(self, name: str) -> BudgetSummary | None:
        return next((b for b in self.budgets() if b.name == name), None)

    def spent(self, keys: Sequence[Sequence[bytes]], budget: str | None = None) -> list[float]:
        """What each of these patients (one tuple of keyed hashes each, from :meth:`patient_keys`)
        has spent: under ``budget``, or under every name; a patient whose keys belong to
        persons not yet merged has spent what they have together."""
        try:
            with connect(self.path) as db:
                return patient_spends(db, keys, budget)
        except sqlite3.Error as exc:
            raise OutputError(f"{self.path}: cannot read the budget ledger ({exc})") from None

    def releases(self) -> list[ReleaseRecord]:
        try:
            with connect(self.path) as db:
                return release_records(db)
        except sqlite3.Error as exc:
            raise OutputError(f"{self.path}: cannot read the budget ledger ({exc})") from None
