"""Audit time and peak memory from 10k to 1M patients (the distance audits on a stated sample).

    python -m benchmarks.audit [--sizes 10000 100000 1250000] [--columns 30] [--audit-rows 50000]

A seeded patient view (10 numbers, the rest categories, as in the scale run); 20% holdout;
the synthetic data are a fresh draw of the train size from the same process (what a perfect
generator would give), and the model-consistency audit's fresh draws come from that process
too. Times the whole ``evaluate`` (every registered audit that applies: re-identification,
model consistency, membership inference, WP29, coherence) and traces its peak memory. Past
the policy's ``audit_rows_max`` the distance audits compare a uniform sample of each side
(docs/audit.md, "At scale"): the table shows the rows they compared. 1,250,000 patients
give 1M train x 1M synthetic rows.
"""

from __future__ import annotations

import argparse
import time
import tracemalloc

import numpy as np
import pandas as pd

from benchmarks.common import table
from benchmarks.tables import scale_table
from privsynth.audit import Policy, evaluate, holdout_split


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", nargs="+", type=int, default=[10_000, 100_000, 1_250_000])
    parser.add_argument("--columns", type=int, default=30)
    parser.add_argument("--audit-rows", type=int, default=None, help="the policy's audit_rows_max (its default)")
    args = parser.parse_args()
    policy = Policy() if args.audit_rows is None else Policy(audit_rows_max=args.audit_rows)
    rows = []
    for n in args.sizes:
        schema, frame = scale_table(2 * n, args.columns)
        real, fresh = frame.iloc[:n].reset_index(drop=True), frame.iloc[n:].reset_index(drop=True)
        train_rows, holdout_rows = holdout_split(n, 0.2, 1000, np.random.default_rng(0))
        train, holdout = real.iloc[train_rows], real.iloc[holdout_rows]
        synthetic = fresh.iloc[: len(train)]

        def resample(k: int, rng: np.random.Generator, pool: pd.DataFrame = fresh) -> pd.DataFrame:
            return pool.iloc[np.sort(rng.choice(len(pool), size=k, replace=False))].reset_index(drop=True)

        tracemalloc.start()
        t0 = time.perf_counter()
        result = evaluate(train, holdout, synthetic, schema, policy, epsilon=1.0, resample=resample)
        seconds = time.perf_counter() - t0
        peak = tracemalloc.get_traced_memory()[1] / 2**20
        tracemalloc.stop()
        s = result.sizes
        pairs = s["synthetic_audited"] * (s["train_audited"] + s["holdout_audited"])
        rows.append([f"{n:,}", f"{len(train):,}", f"{len(holdout):,}", f"{len(synthetic):,}",
                     f"{s['train_audited']:,} / {s['holdout_audited']:,} / {s['synthetic_audited']:,}",
                     f"{pairs / 1e9:.2f}", f"{seconds:.1f}", f"{peak:.0f}", "pass" if result.passed else "FAIL"])
    table(f"audit (evaluate) on a {args.columns}-column patient view, 2 threads, audit_rows_max "
          f"{policy.audit_rows_max:,}",
          ["patients", "train", "holdout", "synthetic", "compared (train / holdout / synthetic)",
           "pairs (1e9)", "seconds", "peak MB", "verdict"], rows)


if __name__ == "__main__":
    main()
