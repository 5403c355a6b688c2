"""What a release asks of the ledger before any fitting: its charge, the budget it is charged
under and that budget's total, and how the release is recorded."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ReservationRequest:
    """A release's request to charge ``rho`` to each of its patients under ``budget``.

    ``rho_budget`` and ``delta_budget`` are the budget's total (fixed when the ledger first
    sees its name); ``epsilon`` and ``delta`` are the release's own, as recorded;
    ``max_attempts`` caps a patient's charged release attempts; ``out`` is the release
    directory (for :meth:`Ledger.reconcile`); ``partial`` flags a partial synthesis; refusals
    give patient counts only with ``show_counts``."""

    budget: str
    rho: float
    rho_budget: float
    delta_budget: float
    epsilon: float
    delta: float
    max_attempts: int
    out: str = ""
    partial: bool = False
    show_counts: bool = False
