"""The WP29 risks (singling out, linkability, inference; anonymeter) on a release: their
figures on clean DP output and on a leak, and their cost as the patients grow.

    python -m benchmarks.wp29 [--patients 6000] [--scale 6000 100000] [--schema core|timeline] [--epsilon 1]

Fits the example hospital (``--patients``) at ``--epsilon`` on a random 80 % (train), samples
it, and runs the three audits against train and the 20 % holdout: once on the clean sample,
once on the train rows themselves (the worst leak). Then, for each ``--scale`` N, the cost of
the three audits with N synthetic rows against N train and N/4 holdout rows drawn from the
same model (the cost depends on the sizes, not on what the rows are). Prints two tables.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from benchmarks.common import ROOT, table
from privsynth.audit import Policy
from privsynth.audit.protocol import AuditContext
from privsynth.audit.wp29 import Inference, Linkability, SinglingOut
from privsynth.generator import Synthesizer
from privsynth.schema import load_schema
from privsynth.schema.model import Schema

AUDITS = (SinglingOut(), Linkability(), Inference())


def _run(train: pd.DataFrame, holdout: pd.DataFrame, synthetic: pd.DataFrame, schema: Schema,
         workers: int) -> list[tuple[str, float, tuple[float, float] | None, bool | None, float]]:
    context = AuditContext(train, holdout, synthetic, schema, Policy(), np.random.default_rng(), workers=workers)
    out = []
    for audit in AUDITS:
        t0 = time.perf_counter()
        checks, _ = audit.run(context)
        seconds = time.perf_counter() - t0
        for check in checks:
            out.append((check.name, check.value, check.interval, check.passed, seconds))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--patients", type=int, default=6000)
    parser.add_argument("--scale", type=int, nargs="*", default=[6000, 100000])
    parser.add_argument("--schema", choices=("core", "timeline"), default="core")
    parser.add_argument("--epsilon", type=float, default=1.0)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    from privsynth.example.hospital import write_example_export
    from privsynth.fhir.view import build_patient_view

    schema = load_schema(ROOT / "schemas" / f"patient-{args.schema}.yaml")
    with tempfile.TemporaryDirectory() as tmp:
        export = write_example_export(Path(tmp) / "export", args.patients, 1)
        view, _ = build_patient_view([export], schema)
    view = view.reset_index(drop=True)
    order = np.random.default_rng().permutation(len(view))
    cut = int(0.8 * len(view))
    train, holdout = view.iloc[order[:cut]].reset_index(drop=True), view.iloc[order[cut:]].reset_index(drop=True)
    synth = Synthesizer(schema, epsilon=args.epsilon, delta=1e-6).fit(train)
    sample = synth.sample(len(train), rng=1)
    rows = []
    for label, synthetic in (("clean DP sample", sample), ("leak: the train rows", train)):
        for name, value, interval, passed, seconds in _run(train, holdout, synthetic, schema, args.workers):
            shown = f"[{interval[0]:.3f}, {interval[1]:.3f}]" if interval else ""
            rows.append((label, name, f"{value:.3f}", shown, {True: "pass", False: "FAIL", None: "info"}[passed],
                         f"{seconds:.1f}"))
    table(f"WP29 risks, example hospital {args.patients:,} ({args.schema}), epsilon {args.epsilon:g}",
          ["data", "check", "risk", "95% interval", "verdict", "audit seconds"], [list(r) for r in rows])
    cost = []
    for n in args.scale:
        big_train, big_holdout = synth.sample(n, rng=2), synth.sample(max(n // 4, 1000), rng=3)
        big = synth.sample(n, rng=4)
        seconds: dict[str, float] = {}
        for name, _, _, _, s in _run(big_train, big_holdout, big, schema, args.workers):
            seconds[name.split(" ")[0]] = s
        cost.append((f"{n:,}", *(f"{seconds.get(k, 0):.1f}" for k in ("univariate", "linkability", "inference"))))
    table("WP29 audit cost (seconds; holdout = a quarter of train)",
          ["synthetic = train rows", "singling out s", "linkability s", "inference s"], [list(r) for r in cost])


if __name__ == "__main__":
    main()
