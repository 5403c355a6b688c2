"""privsynth benchmarks: speed, memory and accuracy, printed as tables.

    python benchmarks/run.py [--seeds 5] [--data ../shared/data]

Measures, on the 200 shared Synthea R4 Bundles (and the built-in 1,000-patient example):
ingest resources per second; fit + sample seconds and peak traced memory at epsilon 1;
mean total-variation distance over ALL 3-way marginals of the encoded patient view, for
privsynth (MST) and for an independent-marginals baseline at the same epsilon (all rho on
1-way marginals, OpenDP noise), next to the floor of a same-size bootstrap of the real
view; and the whole `synthesize` command end to end.
"""

from __future__ import annotations

import argparse
import itertools
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.common import independent, peak_traced_mb, table, timed_sample, tvd3  # noqa: E402
from privsynth.domain import domain_sizes, encode  # noqa: E402
from privsynth.fhir.view import build_patient_view  # noqa: E402
from privsynth.schema import load_schema  # noqa: E402

SCHEMA = ROOT / "schemas" / "patient-core.yaml"


def accuracy(name: str, view, schema, seeds: int, epsilon: float, rows: list[list[object]],
             speed: list[list[object]]) -> None:
    codes, _ = encode(view, schema)
    sizes = domain_sizes(schema)
    triples = list(itertools.combinations(range(len(sizes)), 3))
    n = len(codes)
    mst, ind, boot, secs = [], [], [], []  # mst: privsynth (default method) errors
    peak = peak_traced_mb(schema, view, epsilon, n)
    for seed in range(seeds):
        rng = np.random.default_rng(seed)
        sample, seconds = timed_sample(schema, view, epsilon, n, rng)
        secs.append(seconds)
        mst.append(tvd3(codes, sample, sizes, triples))
        ind.append(tvd3(codes, independent(codes, sizes, epsilon, n, rng), sizes, triples))
        boot.append(tvd3(codes, codes[rng.integers(0, n, n)], sizes, triples))
    rows.append([name, n, len(sizes), len(triples), epsilon, float(np.mean(boot)), float(np.mean(ind)),
                 float(np.mean(mst)), float(np.std(mst)), "yes" if np.mean(mst) < np.mean(ind) else "NO"])
    speed.append([name, f"fit+sample eps={epsilon:g} (median of {seeds})", float(np.median(secs)), peak])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--epsilon", type=float, default=1.0)
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    args = parser.parse_args()
    schema = load_schema(SCHEMA)
    bundles_dir = args.data / "fhir" / "synthea-r4-smart-2019"
    speed: list[list[object]] = []
    rows: list[list[object]] = []

    t0 = time.perf_counter()
    view, report = build_patient_view([bundles_dir], schema)
    secs = time.perf_counter() - t0
    n_res = sum(report.resources_read.values())
    speed.append(["synthea-2019 (200 bundles)", f"ingest {n_res:,} resources", secs, "-"])
    speed.append(["synthea-2019 (200 bundles)", "ingest resources/s", n_res / secs, "-"])
    accuracy("synthea-2019", view, schema, args.seeds, args.epsilon, rows, speed)

    from privsynth.example.hospital import write_example_export

    with tempfile.TemporaryDirectory() as tmp:
        write_example_export(Path(tmp) / "ex", 1000, seed=0)
        t0 = time.perf_counter()
        example, report = build_patient_view([Path(tmp) / "ex"], schema)
        secs = time.perf_counter() - t0
        n_res = sum(report.resources_read.values())
        speed.append(["example (1,000 patients)", "ingest resources/s", n_res / secs, "-"])
        accuracy("example-1000", example, schema, args.seeds, args.epsilon, rows, speed)

        from privsynth.pipeline import synthesize

        t0 = time.perf_counter()
        result = synthesize([bundles_dir], schema, Path(tmp) / "out", epsilon=args.epsilon)
        speed.append(["synthea-2019 (200 bundles)", "whole synthesize (ingest..write)",
                      time.perf_counter() - t0, "-"])
        speed.append(["", "  of which " + ", ".join(f"{k} {v:.1f}s" for k, v in result.seconds.items()), "", ""])

    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    table("speed and memory (seconds; peak traced MB during fit+sample)", ["data", "what", "value", "peak MB"], speed)
    table(f"accuracy: mean TVD over all 3-way marginals, epsilon={args.epsilon:g}, {args.seeds} seeds",
          ["data", "patients", "columns", "triples", "eps", "bootstrap floor", "independent", "privsynth",
           "sd", "beats independent"], rows)
    print(f"\nprocess max RSS: {rss:.0f} MB")


if __name__ == "__main__":
    main()
