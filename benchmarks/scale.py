"""Past one machine: the whole-export path against patient-sharded ingest on each engine.

    python -m benchmarks.scale [--patients 100000] [--schema patient-timeline] [--shards 8]
                               [--workers 2] [--engines whole duckdb spark] [--export DIR]
                               [--end-to-end duckdb] [--rows N] [--validate-output sample]

Builds (or reuses, ``--export``) an example-hospital export of N patients with histories
(per-patient Bundles), then, each in a fresh process so that its memory is its own:

- reads it with each engine (``whole``: today's one-process path; ``duckdb``: sharded,
  worker processes and DuckDB counts; ``spark``: sharded on Spark local[workers]) and counts
  every 1-way and 2-way marginal and 300 seeded 3-way marginals of the encoded view;
  prints seconds, resources read per second and peak memory (resident set of the process
  tree, sampled every 0.2 s: Spark's JVM included), and checks that every count table of
  every engine equals the whole path's exactly;
- ``--end-to-end ENGINE``: the whole ``synthesize`` run (read, fit, sample, write) sharded
  on that engine, with its steps' seconds and resources written per second
  (``--validate-output sample``: the stated sample of resources validated, not every one).
"""

from __future__ import annotations

import argparse
import itertools
import json
import multiprocessing
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks.common import table  # noqa: E402


class PeakMemory:
    """Peak resident memory of this process and all its children, sampled on a thread."""

    def __init__(self, every: float = 0.2) -> None:
        import psutil

        self.root = psutil.Process()
        self.peak = 0
        self.every = every
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        import psutil

        while not self._stop.is_set():
            total = 0
            for p in [self.root, *self.root.children(recursive=True)]:
                try:
                    total += p.memory_info().rss
                except psutil.Error:
                    pass
            self.peak = max(self.peak, total)
            time.sleep(self.every)

    def __enter__(self) -> PeakMemory:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def cliques(d: int) -> list[tuple[int, ...]]:
    rng = np.random.default_rng(0)
    triples = list(itertools.combinations(range(d), 3))
    picked = [triples[k] for k in sorted(rng.choice(len(triples), min(300, len(triples)), replace=False))]
    return [(a,) for a in range(d)] + list(itertools.combinations(range(d), 2)) + picked


def read_one(engine: str, export: str, schema_file: str, shards: int, workers: int, out: str) -> None:
    """One reading, in this (fresh) process; its figures as JSON on stdout, its tables in ``out``."""
    from privsynth.schema import load_schema

    schema = load_schema(schema_file)
    with PeakMemory() as memory:
        t0 = time.perf_counter()
        if engine == "whole":
            from privsynth.generator.synthesizer import view_counts
            from privsynth.pipeline import read_view

            frame, ingest = read_view([Path(export)], schema)
            counts = view_counts(frame, schema).counts
            read = time.perf_counter() - t0
            t1 = time.perf_counter()
            tables = counts.many(cliques(len(counts.sizes)))
            counting = time.perf_counter() - t1
            rows = len(frame)
        else:
            from privsynth.engine import registry
            from privsynth.engine.ingest import read_sharded

            running = registry.start(engine, workers)
            with read_sharded([Path(export)], schema, running, shards) as sharded:
                read = time.perf_counter() - t0
                t1 = time.perf_counter()
                tables = sharded.counts.counts.many(cliques(len(sharded.counts.counts.sizes)))
                counting = time.perf_counter() - t1
                ingest, rows = sharded.ingest, sharded.rows
            running.close()
    np.savez_compressed(out, *tables)
    resources = sum(ingest.resources_read.values())
    print(json.dumps({"engine": engine, "read": read, "count": counting, "tables": len(tables), "rows": rows,
                      "resources": resources, "peak_mb": memory.peak / 2**20}))


def end_to_end(engine: str, export: Path, schema_file: str, shards: int, workers: int, rows: int | None,
               work: Path, validation: str = "all") -> None:
    from privsynth.fhir.output import use_workers
    from privsynth.pipeline import synthesize
    from privsynth.schema import load_schema

    use_workers(workers)  # as the command line does: the whole path validates its output in worker processes
    schema = load_schema(schema_file)
    with PeakMemory() as memory:
        t0 = time.perf_counter()
        sharding = {} if engine == "whole" else {"engine": engine, "shards": shards, "workers": workers}
        result = synthesize([export], schema, work / f"out-{engine}", epsilon=1.0, seed=1, rows=rows,
                            validate_output=validation, **sharding)
        total = time.perf_counter() - t0
    written = sum(result.resources_out.values())
    ingest = json.loads(result.internal_report.read_text())["ingest"]
    read = sum(ingest["resources_read"].values())
    writing = sum(v for k, v in result.seconds.items() if k in ("sample", "write", "sample and write"))
    table(f"End to end on {engine}: {result.patients_in:,} patients in, {result.patients_out:,} out, "
          f"output validated: {validation}",
          ["step", "seconds"],
          [[k, round(v, 1)] for k, v in result.seconds.items()] + [["end to end", round(total, 1)]])
    print(f"resources read {read:,} ({read / result.seconds['ingest']:,.0f}/s in ingest); written {written:,} "
          f"({written / writing:,.0f}/s sampling and writing); peak memory {memory.peak / 2**20:,.0f} MB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--patients", type=int, default=100_000)
    parser.add_argument("--schema", default="patient-timeline")
    parser.add_argument("--shards", type=int, default=8)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--engines", nargs="*", default=["whole", "duckdb", "spark"])
    parser.add_argument("--export", default=None, help="an existing export to read (else one is built and removed)")
    parser.add_argument("--end-to-end", nargs="*", default=[], help="engines to run synthesize on end to end")
    parser.add_argument("--rows", type=int, default=None, help="synthetic patients end to end (default: DP estimate)")
    parser.add_argument("--validate-output", choices=["all", "sample"], default="all",
                        help="end to end: validate every resource written, or the stated sample")
    parser.add_argument("--one", nargs=5, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        engine, export, schema_file, shards, out = args.one
        read_one(engine, export, schema_file, int(shards), args.workers, out)
        return
    schema_file = str(ROOT / "schemas" / f"{args.schema}.yaml")
    work = Path(tempfile.mkdtemp(prefix="privsynth-scale-"))
    try:
        if args.export:
            export = Path(args.export)
        else:
            from privsynth.example.hospital import write_example_export

            t0 = time.perf_counter()
            maker = multiprocessing.get_context("spawn").Process(target=write_example_export,
                                                                 args=(work / "export", args.patients, 0))
            maker.start()
            maker.join()
            export = work / "export"
            print(f"example export of {args.patients:,} patients written in {time.perf_counter() - t0:.0f} s")
        runs, tables = [], {}
        for engine in args.engines:
            out = work / f"{engine}.npz"
            done = subprocess.run([sys.executable, "-m", "benchmarks.scale", "--workers", str(args.workers), "--one",
                                   engine, str(export), schema_file, str(args.shards), str(out)],
                                  cwd=ROOT, capture_output=True, text=True)
            if done.returncode != 0:
                print(f"{engine}: failed\n{done.stderr[-2000:]}")
                continue
            runs.append(json.loads(done.stdout.strip().splitlines()[-1]))
            with np.load(out) as z:
                tables[engine] = [z[f"arr_{k}"] for k in range(len(z.files))]
        first = runs[0]["engine"] if runs else None
        rows = []
        for r in runs:
            same = all(np.array_equal(a, b) for a, b in zip(tables[first], tables[r["engine"]])) \
                and len(tables[first]) == len(tables[r["engine"]])
            rows.append([r["engine"], f"{r['rows']:,}", f"{r['resources']:,}", round(r["read"], 1),
                         f"{r['resources'] / r['read']:,.0f}", round(r["count"], 1), r["tables"],
                         "yes" if same else "NO", f"{r['peak_mb']:,.0f}"])
        if rows:
            table(f"Reading {args.patients:,} example patients ({args.schema}; {args.shards} shards, "
                  f"{args.workers} workers)",
                  ["engine", "patients", "resources", "read s", "resources/s", "count s", "tables",
                   f"= {first}", "peak MB"], rows)
        for engine in args.end_to_end:
            end_to_end(engine, export, schema_file, args.shards, args.workers, args.rows, work, args.validate_output)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
