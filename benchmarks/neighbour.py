"""The black-box neighbour test of the release path: does adding one patient move the DP
model more than the claimed epsilon allows?

    python -m benchmarks.neighbour [--fits 300] [--patients 20000]

D holds n patients with four independent balanced flags; D + x one more patient. For each
split -- privsynth's (a coin per patient from OS entropy) and v0.1's (a permutation seeded
by the published seed 0, which depends on n) -- the release path is run ``--fits`` times
per side: split as ``release`` does, fit the DP model on train at epsilon 1, read each
flag's modelled share (statistics fixed in advance). The table gives the empirical epsilon
lower bound (Clopper-Pearson 95%, Bonferroni over 20 thresholds and 4 statistics).
tests/release/test_split.py runs the first row with 200 fits.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import numpy as np
import pandas as pd

from benchmarks.common import table
from privsynth.audit import Policy
from privsynth.audit.stats import neighbour_epsilon_bound
from privsynth.generator import Synthesizer
from privsynth.release.release import split_view
from privsynth.schema import load_schema

FLAGS = ("a", "b", "c", "e")
Split = Callable[[pd.DataFrame, Policy], tuple[pd.DataFrame, pd.DataFrame]]


def seeded_split(view: pd.DataFrame, policy: Policy) -> tuple[pd.DataFrame, pd.DataFrame]:
    """privsynth 0.1: a permutation from the published seed, cut at round(n * fraction)."""
    n = len(view)
    size = int(round(n * policy.holdout_fraction))
    order = np.random.default_rng(0).permutation(n)
    return view.iloc[np.sort(order[size:])], view.iloc[np.sort(order[:size])]


def run(split: Split, views: tuple[pd.DataFrame, pd.DataFrame], fits: int) -> float:
    schema = load_schema({"name": "flags", "input": "table", "columns": [
        {"name": f, "kind": "categorical", "role": "sensitive", "source": {"column": f},
         "domain": {"categories": ["0", "1"], "other": False, "missing": False}} for f in FLAGS]})
    policy = Policy(min_holdout=100)
    stats = []
    for view in views:
        out = np.empty((fits, len(FLAGS)))
        for k in range(fits):
            train, _ = split(view, policy)
            model = Synthesizer(schema, epsilon=1.0, delta=1e-6, refine_numbers=False).fit(train).model_
            out[k] = [model.marginal((j,))[1] / model.marginal((j,)).sum() for j in range(len(FLAGS))]
        stats.append(out)
    return neighbour_epsilon_bound(stats[0], stats[1], 1e-6)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fits", type=int, default=300, help="fits per side")
    parser.add_argument("--patients", type=int, default=20_000)
    args = parser.parse_args()
    rng = np.random.default_rng(12345)
    n = args.patients
    small = pd.DataFrame({f: rng.integers(0, 2, n).astype(str) for f in FLAGS})
    large = pd.concat([small, pd.DataFrame({f: ["1"] for f in FLAGS})], ignore_index=True)
    rows = []
    for name, split in (("privsynth: a coin per patient from OS entropy", split_view),
                        ("v0.1: permutation seeded by the published seed", seeded_split)):
        t0 = time.perf_counter()
        bound = run(split, (small, large), args.fits)
        rows.append([name, args.fits, bound, 1.0, f"{time.perf_counter() - t0:.0f}"])
    table(f"Neighbour test, D = {n:,} patients vs D + 1, epsilon 1", ["split", "fits per side",
          "empirical epsilon lower bound", "claimed epsilon", "seconds"], rows)


if __name__ == "__main__":
    main()
