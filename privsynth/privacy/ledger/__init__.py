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

The parts: :class:`Ledger` (``book``) opens the file and wraps each step in one connection;
``fileformat`` holds the tables, the format and its migration, and the key file's secret;
``person`` links keys to persons; ``budget`` fixes totals, checks caps and sums spends;
``reservation`` records releases (reserve, finish, refund, settle); ``request`` is what a
release asks for (:class:`ReservationRequest`).

>>> import tempfile, pathlib
>>> ledger = Ledger(pathlib.Path(tempfile.mkdtemp()) / "ledger.sqlite3")
>>> keys = ledger.patient_keys(["p1", "p2"])
>>> r = ledger.reserve("demo", keys, rho=0.1, rho_budget=0.25, delta_budget=1e-5, epsilon=1.0, delta=1e-6,
...                    max_attempts=3)
>>> ledger.finish(r, "released")
>>> [(b.name, round(b.worst_rho, 3), b.patients) for b in ledger.budgets()]
[('demo', 0.1, 2)]
"""

from privsynth.privacy.ledger.book import Ledger
from privsynth.privacy.ledger.budget import BudgetSummary
from privsynth.privacy.ledger.fileformat import FORMAT, OLD_FORMAT, SCHEMA
from privsynth.privacy.ledger.person import KEY_BYTES
from privsynth.privacy.ledger.request import ReservationRequest
from privsynth.privacy.ledger.reservation import STATUSES, ReleaseRecord, Reservation

__all__ = ["FORMAT", "KEY_BYTES", "OLD_FORMAT", "SCHEMA", "STATUSES", "BudgetSummary", "Ledger", "ReleaseRecord",
           "Reservation", "ReservationRequest"]
