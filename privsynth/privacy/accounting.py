"""zCDP accounting: every measurement is charged in rho; people read (epsilon, delta)."""

from __future__ import annotations

from dataclasses import dataclass, field

from privsynth.errors import BudgetError
from privsynth.privacy.mechanism import Release, epsilon_for, rho_for


@dataclass(frozen=True)
class Charge:
    """One line of the accountant's ledger."""

    purpose: str
    mechanism: str
    rho: float
    scale: float


@dataclass
class Accountant:
    """Holds a rho budget and refuses any charge that would exceed it.

    >>> acc = Accountant.from_epsilon_delta(1.0, 1e-6)
    >>> round(acc.rho_total, 4)
    0.0244
    """

    rho_total: float
    delta: float
    charges: list[Charge] = field(default_factory=list)

    @classmethod
    def from_epsilon_delta(cls, epsilon: float, delta: float) -> Accountant:
        return cls(rho_for(epsilon, delta), delta)

    @property
    def rho_spent(self) -> float:
        return float(sum(c.rho for c in self.charges))

    @property
    def rho_remaining(self) -> float:
        return max(0.0, self.rho_total - self.rho_spent)

    def charge(self, purpose: str, release: Release) -> None:
        if self.rho_spent + release.rho > self.rho_total:
            raise BudgetError(
                f"'{purpose}' would spend rho={release.rho:.6g} but only "
                f"{self.rho_remaining:.6g} of {self.rho_total:.6g} remains"
            )
        self.charges.append(Charge(purpose, release.mechanism, release.rho, release.scale))

    def epsilon(self) -> float:
        """The epsilon (at this accountant's delta) of everything spent so far."""
        return epsilon_for(self.rho_spent, self.delta)

    def summary(self) -> dict[str, object]:
        return {
            "rho_total": self.rho_total,
            "rho_spent": self.rho_spent,
            "delta": self.delta,
            "epsilon_spent": self.epsilon(),
            "measurements": len(self.charges),
        }
