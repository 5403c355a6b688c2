"""How often the release gate refuses clean DP output, and whether it still refuses leaks.

    python -m benchmarks.false_refusal [--runs 20] [--leak-runs 10] [--only TEXT]

Each run is the release path without the file writing: split as ``release`` does (a coin
per patient from OS entropy), fit on train at epsilon 1, sample, audit under the policy
(fresh audit randomness). The settings:

- rhc (5,735 patients x 55 columns) under the DEFAULT policy (min_holdout 1,000);
- flchain (7,874 patients x 11 columns, a few of them crowded) under the DEFAULT policy: its
  min_holdout 1,000 needs at least 5,599 patients (docs/audit.md), so the default applies
  as it is; the holdout is about 1,575;
- the example hospital, 6,000 FHIR patients, under the DEFAULT policy;
- the example hospital, 3,000 FHIR patients, with min_holdout LOWERED to 100 (a holdout of
  about 600);
- the example hospital, 6,000 patients with histories (``patient-timeline``: 108 columns, the
  timeline cells among them), under the DEFAULT policy: the distance and membership audits
  then compare whole histories.

For the leak suite, the first ``--leak-runs`` clean samples of each setting get a leak
planted (:mod:`privsynth.audit.canary`): the train set itself, 2% verbatim copies, 1% near-
copies (numbers jittered by up to 1% of range). Prints a table of refusals and the checks
that refused, then one line per setting: the share of clean releases and of each leak refused.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd

from benchmarks.common import ROOT, table
from privsynth.audit import Policy, evaluate
from privsynth.audit.canary import KINDS, plant
from privsynth.generator import Synthesizer
from privsynth.release.release import split_view
from privsynth.schema import load_schema
from privsynth.schema.model import Schema

SHARED = ROOT.parent / "shared" / "data"


def settings() -> list[tuple[str, Schema, pd.DataFrame, Policy]]:
    from privsynth.example.hospital import write_example_export
    from privsynth.fhir.view import build_patient_view
    from privsynth.table import read_table

    rhc_schema = load_schema(ROOT / "schemas" / "tabular" / "rhc.yaml")
    rhc, _ = read_table([SHARED / "tabular" / "rhc.csv"], rhc_schema)
    out = [("rhc 5,735, default policy", rhc_schema, rhc, Policy())]
    flchain_schema = load_schema(ROOT / "schemas" / "tabular" / "flchain.yaml")
    flchain, _ = read_table([SHARED / "tabular" / "flchain.csv"], flchain_schema)
    out.append(("flchain 7,874, default policy", flchain_schema, flchain, Policy()))
    core = load_schema(ROOT / "schemas" / "patient-core.yaml")
    for patients, policy, label in ((6000, Policy(), "default policy"),
                                    (3000, Policy(min_holdout=100), "min_holdout 100")):
        with tempfile.TemporaryDirectory() as tmp:
            write_example_export(Path(tmp), patients, 0)
            hospital, _ = build_patient_view([tmp], core)
        out.append((f"example hospital {patients:,}, {label}", core, hospital, policy))
    from privsynth.pipeline import read_view

    timeline = load_schema(ROOT / "schemas" / "patient-timeline.yaml")
    with tempfile.TemporaryDirectory() as tmp:
        write_example_export(Path(tmp), 6000, 0)
        histories, _ = read_view([Path(tmp)], timeline)  # bounded as release reads them
    out.append(("example hospital 6,000 with histories (patient-timeline), default policy", timeline, histories,
                Policy()))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20, help="clean releases per setting")
    parser.add_argument("--leak-runs", type=int, default=10, help="clean samples per setting given each leak")
    parser.add_argument("--only", default="", help="run only the settings whose name contains this text")
    args = parser.parse_args()
    rows, summary = [], []
    for name, schema, view, policy in settings():
        if args.only not in name:
            continue
        refusals: dict[str, Counter[str]] = {k: Counter() for k in ("clean", *KINDS)}
        runs: Counter[str] = Counter()
        t0 = time.perf_counter()
        for run in range(args.runs):
            train, holdout = split_view(view, policy)
            train, holdout = train.reset_index(drop=True), holdout.reset_index(drop=True)
            model = Synthesizer(schema, 1.0).fit(train)
            clean = model.sample(None, rng=run)
            variants = {"clean": clean}
            if run < args.leak_runs:
                variants |= {k: plant(k, clean, train, schema, np.random.default_rng(run)) for k in KINDS}
            for kind, synthetic in variants.items():
                result = evaluate(train, holdout, synthetic, schema, policy, epsilon=1.0, seed=None,
                                  resample=model.sample)
                runs[kind] += 1
                if not result.passed:
                    refusals[kind]["refused"] += 1
                    refusals[kind].update(f"{c.audit}: {c.name}" for c in result.failures())
        seconds = time.perf_counter() - t0
        shares = [name]
        for kind, counted in refusals.items():
            refused = counted.pop("refused", 0)
            why = "; ".join(f"{k} ({v})" for k, v in counted.most_common(3))
            rows.append([name, kind, runs[kind], refused, f"{refused / max(1, runs[kind]):.2f}", why or "-"])
            shares.append(f"{refused} of {runs[kind]}")
        summary.append(shares)
        print(f"{name}: {seconds:.0f} s", flush=True)
    table("Release gate: refusals of clean DP output (epsilon 1) and of planted leaks",
          ["setting", "synthetic data", "runs", "refused", "rate", "refused by (count)"], rows)
    table("Refused, per setting", ["setting", "clean", *KINDS], summary)


if __name__ == "__main__":
    main()
