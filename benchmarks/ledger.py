"""The per-patient budget ledger at scale: keying, charging and reading 1,000,000 patients.

    python -m benchmarks.ledger [--patients 1000000 100000]

A fresh ledger file; string patient ids. Times the keyed hashes (HMAC-SHA-256), a first
charge (every patient new), a second charge of the same patients (every patient updated),
the refusal of a third that would exceed the total (checked, nothing written), a refund,
and `budget show`'s summary. Also gives the ledger file's size.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from benchmarks.common import table
from privsynth.errors import BudgetError
from privsynth.privacy.ledger import Ledger


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--patients", nargs="+", type=int, default=[100_000, 1_000_000])
    args = parser.parse_args()
    rows = []
    limits = {"rho_budget": 0.05, "delta_budget": 1e-5, "epsilon": 1.0, "delta": 1e-6, "max_attempts": 10}
    for n in args.patients:
        with tempfile.TemporaryDirectory() as tmp:
            ledger = Ledger(Path(tmp) / "ledger.sqlite3")
            ids = [f"Patient/{i:08d}" for i in range(n)]
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
        rows.append([f"{n:,}", *(f"{timings[k]:.2f}" for k in ("keys", "first charge", "second charge", "refusal",
                                                              "refund", "budget show")), f"{total:.2f}",
                     f"{size:.0f}"])
    table("Per-patient ledger (seconds; a release charges after keying: keys + first charge)",
          ["patients", "keys", "first charge", "second charge", "refusal", "refund", "budget show",
           "keys + charge", "file MB"], rows)


if __name__ == "__main__":
    main()
