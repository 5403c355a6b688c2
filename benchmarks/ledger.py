"""The per-patient budget ledger at scale: keying, charging and reading 1,000,000 patients.

    python -m benchmarks.ledger [--patients 1000000 100000] [--keys 1 3]

A fresh ledger file; string patient ids, each patient known by 1 key (Patient.id) or 3 (with an
MRN and an SSN, linked to one person as a FHIR schema listing identifiers makes them).
Times the keyed hashes (HMAC-SHA-256), a first charge (every patient new), a second charge of
the same patients (every patient updated), the refusal of a third that would exceed the total
(checked, nothing written), a refund, and `budget show`'s summary. Also gives the ledger file's size.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from benchmarks.common import table
from privsynth.errors import BudgetError
from privsynth.privacy.keys import PatientKeys
from privsynth.privacy.ledger import Ledger


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--patients", nargs="+", type=int, default=[100_000, 1_000_000])
    parser.add_argument("--keys", nargs="+", type=int, default=[1, 3], choices=[1, 3])
    args = parser.parse_args()
    rows = []
    limits = {"rho_budget": 0.05, "delta_budget": 1e-5, "epsilon": 1.0, "delta": 1e-6, "max_attempts": 10}
    for n, per_patient in ((n, k) for n in args.patients for k in args.keys):
        with tempfile.TemporaryDirectory() as tmp:
            ledger = Ledger(Path(tmp) / "ledger.sqlite3")
            ids: list[object] = [f"Patient/{i:08d}" for i in range(n)]
            if per_patient == 3:
                ids = [PatientKeys((str(i), f"urn:mrn|M{k:08d}", f"urn:ssn|999-{k:08d}")) for k, i in enumerate(ids)]
            timings = {}
            t0 = time.perf_counter()
            keys = ledger.patient_keys(ids)
            timings["keys"] = time.perf_counter() - t0
            for step in ("first charge", "second charge"):
                t0 = time.perf_counter()
                reservation = ledger.reserve("b", keys, rho=0.02, **limits)
                timings[step] = time.perf_counter() - t0
            t0 = time.perf_counter()
            try:
                ledger.reserve("b", keys, rho=0.02, **limits)
            except BudgetError:
                timings["refusal"] = time.perf_counter() - t0
            t0 = time.perf_counter()
            ledger.finish(reservation, "failed", refund=True)
            timings["refund"] = time.perf_counter() - t0
            t0 = time.perf_counter()
            ledger.budgets()
            timings["budget show"] = time.perf_counter() - t0
            size = (Path(tmp) / "ledger.sqlite3").stat().st_size / 2**20
        total = timings["keys"] + timings["first charge"]
        steps = ("keys", "first charge", "second charge", "refusal", "refund", "budget show")
        rows.append([f"{n:,}", str(per_patient), *(f"{timings[k]:.2f}" for k in steps), f"{total:.2f}",
                     f"{size:.0f}"])
    table("Per-patient ledger (seconds; a release charges after keying: keys + first charge)",
          ["patients", "keys each", "keys", "first charge", "second charge", "refusal", "refund", "budget show",
           "keys + charge", "file MB"], rows)


if __name__ == "__main__":
    main()
