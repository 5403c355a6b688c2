"""Audit time and peak memory at 10k, 50k and 100k patients.

    python -m benchmarks.audit [--sizes 10000 50000 100000]

A seeded patient view of 30 columns (10 numbers, 20 categories, as in the scale run);
20% holdout; the synthetic data are a fresh draw of the train size from the same
process (what a perfect generator would give). Times the whole ``evaluate`` (all
re-identification and membership-inference statistics) and traces its peak memory.
"""

from __future__ import annotations

import argparse
import time
import tracemalloc

import numpy as np

from benchmarks.common import table
from benchmarks.tables import scale_table
from privsynth.audit import evaluate, holdout_split


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", nargs="+", type=int, default=[10_000, 50_000, 100_000])
    args = parser.parse_args()
    rows = []
    for n in args.sizes:
        schema, frame = scale_table(2 * n)
        real, fresh = frame.iloc[:n].reset_index(drop=True), frame.iloc[n:].reset_index(drop=True)
        train_rows, holdout_rows = holdout_split(n, 0.2, 1000, np.random.default_rng(0))
        train, holdout = real.iloc[train_rows], real.iloc[holdout_rows]
        synthetic = fresh.iloc[: len(train)]
        tracemalloc.start()
        t0 = time.perf_counter()
        result = evaluate(train, holdout, synthetic, schema, epsilon=1.0)
        seconds = time.perf_counter() - t0
        peak = tracemalloc.get_traced_memory()[1] / 2**20
        tracemalloc.stop()
        pairs = len(synthetic) * (len(train) + len(holdout))
        rows.append([f"{n:,}", len(train), len(holdout), len(synthetic), f"{pairs / 1e9:.2f}", f"{seconds:.1f}",
                     f"{peak:.0f}", "pass" if result.passed else "FAIL"])
    table("audit (evaluate) on a 30-column patient view, 2 threads",
          ["patients", "train", "holdout", "synthetic", "pairs (1e9)", "seconds", "peak MB", "verdict"], rows)


if __name__ == "__main__":
    main()
