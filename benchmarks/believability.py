"""Believability: a clinician's red flags (privsynth.history.redflag), real export against synthetic.

    python -m benchmarks.believability REAL_DIR SYNTH_DIR [--reference 2025-01-01] [--schema FILE]
                                      [--json FILE] [--explain]
    python -m benchmarks.believability --example N --epsilon E --schema core|timeline
                                      [--out DIR] [--seed S] [--json FILE]

Each flag is a share among the patients its premise concerns (of the patients with heart
failure, those with onset under 18; of those with an admission, those whose stay has no
reason and nothing recorded; ...), computed the same way on both exports. A flag is a
"miss" when the synthetic rate exceeds max(2 x the real rate, 1 %). Summary distributions
(encounters per patient, inpatient length of stay, age at onset per condition) follow.

The reference date (the export's "now": ages, the 10-year admission window) is, in order:
``--reference``; the reference date of the schema (``--schema``, or the ``schema.yaml`` that
``privsynth synthesize`` saves in SYNTH_DIR, the date the synthetic histories were placed
against); else the latest event in the real data.

``--example N`` builds the example hospital export of N fake patients
(``privsynth demo --export-only``), synthesizes it with ``privsynth synthesize --schema
schemas/patient-<schema>.yaml --epsilon E`` and compares the two.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.common import ROOT, table
from privsynth.history.chart import iter_patients
from privsynth.history.redflag import (
    FLAGS,
    Comparison,
    Summary,
    compare,
    max_date,
    summarise,
)

SCHEMAS = {"core": ROOT / "schemas" / "patient-core.yaml", "timeline": ROOT / "schemas" / "patient-timeline.yaml"}


def schema_path(name: str) -> Path:
    return SCHEMAS.get(name, Path(name))


def fhir_dir(path: Path) -> Path:
    """A synthesize output's FHIR folder (OUT/fhir) when given OUT; the path itself otherwise."""
    return path / "fhir" if (path / "fhir").is_dir() and (path / "schema.yaml").is_file() else path


def schema_reference(path: Path) -> dt.date:
    from privsynth.schema.load import load_schema

    return load_schema(path).reference


def choose_reference(real: Path, synthetic: Path, reference: str | None, schema: str | None) -> tuple[dt.date, str]:
    if reference:
        return dt.date.fromisoformat(reference), "--reference"
    if schema:
        return schema_reference(schema_path(schema)), f"schema {schema_path(schema)}"
    saved = synthetic / "schema.yaml"
    if saved.is_file():
        return schema_reference(saved), f"schema saved with the synthetic output ({saved})"
    latest = max_date(iter_patients(fhir_dir(real)))
    if latest is None:
        raise SystemExit(f"{real}: no dated event; give --reference")
    return latest, "the latest event in the real data"


def pct(rate: float | None) -> str:
    return "-" if rate is None else f"{100 * rate:.1f}%"


def num(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def flag_rows(rows: list[Comparison]) -> list[list[object]]:
    return [[r.name, r.real_premise, r.real_flagged, pct(r.real_rate), r.synthetic_premise, r.synthetic_flagged,
             pct(r.synthetic_rate), "MISS" if r.miss else ""] for r in rows]


def distribution_rows(real: Summary, synthetic: Summary) -> list[list[object]]:
    rows: list[list[object]] = []
    for r in real.distributions:
        s = synthetic.distribution(r.name)
        rows.append([r.name, r.n, num(r.mean), num(r.median), pct(r.under_18),
                     s.n, num(s.mean), num(s.median), pct(s.under_18)])
    return rows


def report(real_dir: Path, synth_dir: Path, reference: dt.date, source: str, json_out: Path | None,
           explain: bool = False, label: str = "") -> list[Comparison]:
    t0 = time.perf_counter()
    real = summarise(iter_patients(fhir_dir(real_dir)), reference)
    synthetic = summarise(iter_patients(fhir_dir(synth_dir)), reference)
    rows = compare(real, synthetic)
    seconds = time.perf_counter() - t0
    title = (f"Red flags{label}: {real.patients} real patients ({real_dir}) vs {synthetic.patients} synthetic "
             f"({synth_dir}); reference {reference} ({source}); miss = synthetic > max(2 x real, 1%)")
    table(title, ["flag", "real n", "real flagged", "real rate", "synth n", "synth flagged", "synth rate", "miss"],
          flag_rows(rows))
    table("Distributions (not flags)", ["distribution", "real n", "real mean", "real median", "real <18",
                                         "synth n", "synth mean", "synth median", "synth <18"],
          distribution_rows(real, synthetic))
    misses = [r.name for r in rows if r.miss]
    print(f"\n{len(misses)} of {len(rows)} flags missed: {', '.join(misses) or 'none'} ({seconds:.1f} s)")
    if explain:
        print("\nWhat each flag counts:")
        for flag in FLAGS:
            print(f"- {flag.name}: {flag.sentence}")
    if json_out is not None:
        json_out.write_text(json.dumps({
            "real_dir": str(real_dir), "synthetic_dir": str(synth_dir), "reference": reference.isoformat(),
            "reference_source": source, "real": real.to_dict(), "synthetic": synthetic.to_dict(),
            "comparison": [dataclasses.asdict(r) for r in rows], "misses": misses,
        }, indent=2) + "\n", encoding="utf-8")
        print(f"written: {json_out}")
    return rows


def privsynth(*args: str) -> None:
    command = [sys.executable, "-m", "privsynth", *args]
    print("$ " + " ".join(command[1:]), flush=True)
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
    if done.returncode != 0:
        sys.stderr.write(done.stdout[-4000:] + done.stderr[-4000:])
        raise SystemExit(f"privsynth {args[0]} failed (exit {done.returncode})")


def example(n: int, epsilon: float, schema: str, out: Path | None, seed: int, json_out: Path | None,
            explain: bool) -> None:
    if schema not in SCHEMAS:
        raise SystemExit("--example needs --schema core or timeline")
    work = out or Path(tempfile.mkdtemp(prefix="believability-"))
    work.mkdir(parents=True, exist_ok=True)
    real, synth = work / f"example-{n}", work / f"synthetic-{schema}-eps{epsilon:g}-seed{seed}"
    if not real.exists():
        privsynth("demo", "--export-only", str(real), "--patients", str(n), "--seed", str(seed))
    if not synth.exists():
        privsynth("synthesize", str(real), "--schema", str(SCHEMAS[schema]), "--epsilon", f"{epsilon:g}",
                  "--out", str(synth), "--seed", str(seed))
    report(real, synth, schema_reference(SCHEMAS[schema]), f"schema {SCHEMAS[schema].name}", json_out, explain,
           f" (example hospital, {schema}, eps {epsilon:g})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("real", nargs="?", type=Path, help="real FHIR export (Bundles or NDJSON)")
    parser.add_argument("synthetic", nargs="?", type=Path, help="synthetic FHIR output (or a synthesize OUT)")
    parser.add_argument("--reference", help="reference date YYYY-MM-DD (the export's 'now')")
    parser.add_argument("--schema", help="core, timeline or a schema file: its reference date is used")
    parser.add_argument("--example", type=int, metavar="N", help="build and synthesize an example hospital of N")
    parser.add_argument("--epsilon", type=float, default=1.0)
    parser.add_argument("--seed", type=int, default=0, help="seed of the example export and of the synthesis")
    parser.add_argument("--out", type=Path, help="--example: work directory (default: a new temporary one)")
    parser.add_argument("--json", type=Path, help="also write the tables as JSON to this file")
    parser.add_argument("--explain", action="store_true", help="print what each flag counts")
    args = parser.parse_args()
    if args.example is not None:
        example(args.example, args.epsilon, args.schema or "timeline", args.out, args.seed, args.json, args.explain)
        return
    if args.real is None or args.synthetic is None:
        parser.error("give REAL_DIR and SYNTH_DIR, or --example N")
    reference, source = choose_reference(args.real, args.synthetic, args.reference, args.schema)
    report(args.real, args.synthetic, reference, source, args.json, args.explain)


if __name__ == "__main__":
    main()
