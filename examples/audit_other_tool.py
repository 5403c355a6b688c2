"""Audit another tool's synthetic data with `privsynth audit` (no real data involved).

    python examples/audit_other_tool.py [--patients 6000]

Makes a seeded 'hospital' table, splits it into train and holdout, and plays two other
synthesizers: one that resamples every column independently from train (it keeps no
record), and a careless one that also slips 2% verbatim training records into its output.
`privsynth audit` passes the first (exit 0) and refuses the second (exit 3).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

SCHEMA = """\
name: toy-hospital
input: table
columns:
  - {name: sex, kind: categorical, role: quasi_identifier, source: {column: sex}, domain: {categories: [F, M]}}
  - {name: age, kind: integer, role: quasi_identifier, source: {column: age}, domain: {lower: 0, upper: 100, bins: 10}}
  - {name: sbp, kind: numeric, role: sensitive, source: {column: sbp}, domain: {lower: 60, upper: 240, bins: 12}}
  - {name: bmi, kind: numeric, role: sensitive, source: {column: bmi}, domain: {lower: 10, upper: 70, bins: 12}}
  - {name: diabetes, kind: categorical, role: sensitive, source: {column: diabetes}, domain: {categories: [0, 1]}}
"""


def hospital(n: int, rng: np.random.Generator) -> pd.DataFrame:
    age = rng.integers(18, 95, n)
    bmi = np.round(np.clip(rng.normal(27 + 0.03 * age, 5), 10, 70), 1)
    sbp = np.round(np.clip(rng.normal(100 + 0.5 * age + 0.4 * bmi, 15), 60, 240), 0)
    diabetes = (rng.random(n) < 0.03 + 0.004 * (bmi - 20) + 0.002 * (age - 18)).astype(int)
    return pd.DataFrame({"sex": rng.choice(["F", "M"], n), "age": age, "sbp": sbp, "bmi": bmi, "diabetes": diabetes})


def audit(tmp: Path, synthetic: pd.DataFrame, name: str) -> int:
    path = tmp / f"{name}.csv"
    synthetic.to_csv(path, index=False)
    run = subprocess.run([sys.executable, "-m", "privsynth", "audit", "--schema", str(tmp / "schema.yaml"),
                          "--train", str(tmp / "train.csv"), "--holdout", str(tmp / "holdout.csv"),
                          "--synthetic", str(path)], capture_output=True, text=True)
    print(run.stdout.strip().splitlines()[-1] if run.stdout.strip() else run.stderr.strip())
    return run.returncode


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--patients", type=int, default=6000)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    real = hospital(args.patients, rng)
    holdout_rows = rng.random(len(real)) < 0.2
    train, holdout = real[~holdout_rows].reset_index(drop=True), real[holdout_rows].reset_index(drop=True)
    independent = pd.DataFrame({c: rng.choice(train[c].to_numpy(), len(train)) for c in train.columns})
    copies = train.sample(frac=0.02, random_state=1)
    careless = pd.concat([independent.iloc[len(copies):], copies], ignore_index=True)
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        (tmp / "schema.yaml").write_text(SCHEMA)
        train.to_csv(tmp / "train.csv", index=False)
        holdout.to_csv(tmp / "holdout.csv", index=False)
        print(f"train {len(train)}, holdout {len(holdout)} patients")
        code = audit(tmp, independent, "independent")
        print(f"independent resampler: exit {code}")
        code = audit(tmp, careless, "careless")
        print(f"careless tool with 2% copies: exit {code}")


if __name__ == "__main__":
    main()
