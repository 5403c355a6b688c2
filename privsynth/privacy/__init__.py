"""Privacy: OpenDP mechanisms (the only noise on private data) and zCDP accounting."""

from privsynth.privacy.accounting import Accountant, Charge
from privsynth.privacy.mechanism import Release, epsilon_for, measure_counts, rho_for, select_max

__all__ = ["Accountant", "Charge", "Release", "epsilon_for", "measure_counts", "rho_for", "select_max"]
