"""The main job: FHIR R4 export in, DP synthetic FHIR R4 (and a table) out.

``synthesize`` reads the export into the patient view, fits the DP generator, samples,
writes validated FHIR R4 and the synthetic patient view into a directory that appears
atomically. What may be shared goes inside ``out``; the internal run report (exact
counts from the real data, which are not DP) goes beside it, never inside.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import secrets
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from privsynth.atomic import atomic_directory, write_bytes
from privsynth.engine.protocol import Engine
from privsynth.engine.write import IN_PARTS
from privsynth.errors import InputError, OutputError
from privsynth.fhir.view import build_patient_view
from privsynth.formats import Output
from privsynth.generator.footprint import check_footprint
from privsynth.generator.learnability import Learnability
from privsynth.generator.synthesizer import Synthesizer, ViewCounts
from privsynth.history.bound import bound_view
from privsynth.ingest import Ingest
from privsynth.progress import Progress
from privsynth.quality import Finding, findings
from privsynth.records import versions, write_fhir_output
from privsynth.run import RunSpec
from privsynth.schema.load import dump_schema
from privsynth.schema.model import Schema
from privsynth.table import read_table, write_table


@dataclass(frozen=True)
class SynthesisResult:
    out: Path
    internal_report: Path
    patients_in: int
    patients_out: int
    resources_out: dict[str, int]
    epsilon: float
    delta: float
    rho_total: float
    rho_spent: float
    seconds: dict[str, float]
    findings: tuple[dict[str, str], ...] = ()  # data quality of the input (internal: counts from the real data)


def post_processing_seed(seed: int | None) -> int:
    """The seed of sampling, decoding, Faker identities and dates: the one given, else fresh.

    It only ever touches DP output (never which patients are used), so it is recorded in
    the output; a fresh default makes each run's synthetic ids, MRNs and names its own."""
    if seed is None:
        return secrets.randbits(52)  # exact in any JSON reader
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise InputError("--seed must be a non-negative whole number")
    return seed


def read_view(inputs: list[Path], schema: Schema, *, validate_input: bool = False, on_error: str = "raise",
              progress: Progress | None = None, keyed: bool = True,
              notice: Callable[[Finding], None] | None = None) -> tuple[pd.DataFrame, Ingest]:
    """The patient view of FHIR files or tables (as the schema says), and what reading it
    counted, with the data-quality findings (each also passed to ``notice``, for the data
    owner's screen). ``keyed=False``: a table's patient_id column may be absent (audits of
    other tools' data)."""
    timeline = None
    if schema.input_format == "table":
        view, table_report = read_table(inputs, schema, on_error=on_error, keyed=keyed)
        ingest = table_report.to_ingest()
    else:
        view, fhir_report = build_patient_view(inputs, schema, validate=validate_input, on_error=on_error,
                                               progress=progress)
        ingest = fhir_report.to_ingest()
        if schema.timeline is not None:
            view, timeline = bound_view(view, schema.timeline)
    ingest = replace(ingest, timeline=timeline)
    found = findings(view, schema, ingest)
    if notice is not None:
        for finding in found:
            notice(finding)
    return view, replace(ingest, data_quality=tuple(found))


def write_synthetic(base: Path, sample: pd.DataFrame, schema: Schema, output: Output,
                    progress: Progress | None = None, placement: Counter[str] | None = None) -> dict[str, int]:
    """Write synthetic rows under ``base``: FHIR R4 (``fhir/``) and ``patients.csv`` for
    FHIR schemas, ``synthetic.csv``/``.parquet`` for table schemas. ``placement`` receives
    what placing timelines as FHIR histories had to add or move (counts of synthetic events)."""
    if schema.input_format == "table":
        return write_table_output(base, sample, schema, output.seed)
    return dict(write_fhir_output(base, sample, schema, output, progress, placement))


def synthesize(inputs: Iterable[str | Path], schema: Schema, out: str | Path, *, progress: Progress | None = None,
               notice: Callable[[Finding], None] | None = None, **options: Any) -> SynthesisResult:
    """Run the whole path once and write the shareable output directory ``out``.

    ``options`` are :class:`privsynth.run.RunSpec`'s fields (``epsilon`` required; ``delta``,
    ``rows``, ``seed``, ``output_format``, ``validate_input``, ``on_error``, ``method``,
    ``max_model_cells``). FHIR schemas read FHIR files and write FHIR R4 plus the patient-view
    table; table schemas read CSV/Parquet and write CSV and Parquet. ``seed`` fixes the
    post-processing (a fresh one is drawn and recorded when it is None).
    """
    return run_synthesis(RunSpec.of(schema, inputs, options), out, progress=progress, notice=notice)


def run_synthesis(spec: RunSpec, out: str | Path, *, progress: Progress | None = None,
                  notice: Callable[[Finding], None] | None = None) -> SynthesisResult:
    """:func:`synthesize` for a spec built once (the CLI's path)."""
    schema = spec.schema
    check_footprint(schema, spec.max_model_cells)  # a model too large for memory, before any data
    schema_text = dump_schema(schema) if schema.document is not None else None  # fails here, before any data
    spec = spec.with_seed(post_processing_seed(spec.seed))
    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise OutputError(f"{out}: already exists and is not empty; choose a new --out directory")
    timings: dict[str, float] = {}
    engine = start_engine(spec)
    try:
        synth, ingest, patients_in = read_and_fit(spec, timings, progress, notice, engine)
        now = dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat()
        placement: Counter[str] = Counter()
        counts: dict[str, int]
        if engine is not None and spec.output_format in IN_PARTS:
            patients_out, parts = _write_parts(spec, out, synth, engine, now, placement, timings, schema_text)
            counts = dict(parts)
        else:
            t0 = time.perf_counter()
            sample = synth.sample(spec.rows, rng=spec.seed)  # every rule of the schema holds; derived columns computed
            timings["sample"] = time.perf_counter() - t0
            t0 = time.perf_counter()
            with atomic_directory(out) as tmp:
                counts = write_model_directory(tmp, tmp / "data" if schema.input_format == "table" else tmp, synth,
                                               sample, spec, spec.output(now), progress, placement, schema_text)
            timings["write"] = time.perf_counter() - t0
            patients_out = len(sample)
    finally:
        if engine is not None:
            engine.close()

    internal = out.parent / f"{out.name}.internal.json"
    report = {
        "warning": "INTERNAL: exact counts from the real data; not differentially private; do not share",
        "created": now,
        "inputs": [str(p) for p in spec.inputs],
        "schema_file": schema.source_file,
        "schema_sha256": hashlib.sha256(Path(schema.source_file).read_bytes()).hexdigest()
        if schema.source_file else None,
        "ingest": ingest.as_dict(),
        "encoding": synth.encode_report_.as_dict(),
        "model": {"learnability": synth.model_.metadata["learnability"], "empty_streams": list(synth.empty_streams)},
        "seconds": timings,
        "reading": {"engine": spec.engine or "duckdb", "shards": spec.shard_count, "workers": spec.workers}
        if spec.sharded else {"engine": None, "shards": 1},
    }
    if schema.timeline is not None:
        # synthetic events only (post-processing): what placing the timeline cells as dated FHIR had to add or move
        report["history_placement"] = dict(sorted(placement.items()))
    write_bytes(internal, json.dumps(report, indent=2).encode())
    return SynthesisResult(out, internal, patients_in, patients_out, dict(counts), spec.epsilon, spec.delta,
                           synth.accountant_.rho_total, synth.accountant_.rho_spent, timings,
                           tuple(f.as_dict() for f in (*ingest.data_quality, *model_findings(synth, schema))))


def start_engine(spec: RunSpec) -> Engine | None:
    """The engine a sharded run asks for (None: the whole export, in this process)."""
    if not spec.sharded:
        return None
    from privsynth.engine import registry

    return registry.start(spec.engine or "duckdb", spec.workers, spec.master)


def _write_parts(spec: RunSpec, out: Path, synth: Synthesizer, engine: Engine, now: str, placement: Counter[str],
                 timings: dict[str, float], schema_text: bytes | None) -> tuple[int, Counter[str]]:
    """Sample and write the output in parts on the engine (privsynth.engine.write), then the model files."""
    from privsynth.engine.write import part_count, write_in_parts

    rows = spec.rows if spec.rows is not None else synth.n_rows_estimate
    t0 = time.perf_counter()
    with atomic_directory(out) as tmp:
        written, counts = write_in_parts(tmp, synth, rows, spec.output(now), engine,
                                         part_count(rows, engine.parallelism), placement)
        write_model_files(tmp, synth, spec, schema_text)
    timings["sample and write"] = time.perf_counter() - t0
    return written, counts


def read_and_fit(spec: RunSpec, timings: dict[str, float], progress: Progress | None,
                 notice: Callable[[Finding], None] | None,
                 engine: Engine | None = None) -> tuple[Synthesizer, Ingest, int]:
    """Read the input (whole, or in patient shards by ``engine``) and fit the DP model on all
    of it; what reading counted, and the number of patients read."""
    t0 = time.perf_counter()
    if engine is not None:
        from privsynth.engine.ingest import read_sharded

        with read_sharded(list(spec.inputs), spec.schema, engine, spec.shard_count, work=spec.work_dir,
                          validate=spec.validate_input, on_error=spec.on_error) as sharded:
            for finding in sharded.ingest.data_quality:
                if notice is not None:
                    notice(finding)
            timings["ingest"] = time.perf_counter() - t0
            t0 = time.perf_counter()
            synth = fit_model(spec, sharded.counts, progress, notice)
            ingest, rows = sharded.ingest, sharded.rows
    else:
        view, ingest = read_view(list(spec.inputs), spec.schema, validate_input=spec.validate_input,
                                 on_error=spec.on_error, progress=progress, notice=notice)
        timings["ingest"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        synth = fit_model(spec, view, progress, notice)
        rows = len(view)
    timings["fit"] = time.perf_counter() - t0
    return synth, ingest, rows


def fit_model(spec: RunSpec, train: pd.DataFrame | ViewCounts, progress: Progress | None,
              notice: Callable[[Finding], None] | None = None) -> Synthesizer:
    """The DP model of ``train`` (the patient view, or what a fit reads of it, e.g. counted
    over shards) as the spec asks (the one place synthesize and release fit). What the model
    could not learn (too few patients for the schema; streams it fills with noise only,
    written empty) is passed to ``notice`` as findings: DP quantities only."""
    synth = Synthesizer(spec.schema, spec.epsilon, spec.delta, method=spec.method,
                        max_model_cells=spec.max_model_cells)
    if isinstance(train, ViewCounts):
        synth.fit_counts(train, progress=progress)
    else:
        synth.fit(train, progress=progress)
    if notice is not None:
        for finding in model_findings(synth, spec.schema):
            notice(finding)
    return synth


def model_findings(synth: Synthesizer, schema: Schema) -> list[Finding]:
    """What the fitted model says of itself (from its DP measurements; shareable)."""
    out = []
    learned = Learnability.of(synth.model_.metadata["learnability"])
    if not learned.learnable:
        out.append(Finding("too few patients", schema.name, learned.sentence(schema)))
    for name in synth.empty_streams:
        out.append(Finding("empty stream", name, "the model holds no more events of this stream than the noise of "
                           "its measurements: it is most likely empty in the export, and none of its events is "
                           "written", "check the export has these resources and codes"))
    return out


def write_model_directory(tmp: Path, data_dir: Path, synth: Synthesizer, sample: pd.DataFrame, spec: RunSpec,
                          output: Output, progress: Progress | None, placement: Counter[str] | None = None,
                          schema_text: bytes | None = None) -> dict[str, int]:
    """What every shareable directory holds, written under ``tmp``: the synthetic data (under
    ``data_dir``), the DP model, its public schema (lets a recipient sample it) and
    ``privacy.json``. The one write step synthesize and release share."""
    assert spec.seed is not None  # the caller fixed it (post_processing_seed)
    counts = write_synthetic(data_dir, sample, spec.schema, output, progress, placement)
    write_model_files(tmp, synth, spec, schema_text)
    return counts


def write_model_files(tmp: Path, synth: Synthesizer, spec: RunSpec, schema_text: bytes | None = None) -> None:
    """The DP model, its public schema and ``privacy.json`` (beside the data in ``tmp``)."""
    assert spec.seed is not None
    synth.save(tmp / "model")
    if schema_text is None and spec.schema.document is not None:
        schema_text = dump_schema(spec.schema)
    if schema_text is not None:
        write_bytes(tmp / "schema.yaml", schema_text)
    privacy = privacy_document(synth, spec.schema, spec.epsilon, spec.delta, spec.rows, spec.seed)
    write_bytes(tmp / "privacy.json", json.dumps(privacy, indent=2).encode())


def privacy_document(synth: Synthesizer, schema: Schema, epsilon: float, delta: float, rows: int | None,
                      seed: int) -> dict[str, Any]:
    return {
        "privacy_unit": "patient: one patient's whole record (one row of the patient view)",
        "epsilon": epsilon,
        "delta": delta,
        "rho_total": synth.accountant_.rho_total,
        "rho_spent": synth.accountant_.rho_spent,
        "accounting": "zero-concentrated DP (rho), converted to (epsilon, delta) by OpenDP",
        "mechanisms": sorted({c.mechanism for c in synth.accountant_.charges}),
        "measurements": [{"purpose": c.purpose, "rho": c.rho, "noise_scale": c.scale}
                         for c in synth.accountant_.charges],
        "record_count": "given by --rows" if rows is not None
        else "DP estimate from the noisy marginals (post-processing, no extra charge)",
        "post_processing": ["estimation of a consistent graphical model", "sampling",
                            "decoding inside public bins", "fresh identifiers", "output writing"],
        "schema": schema.name,
        "generator": synth.method,
        "generator_settings": synth.model_.metadata.get("generator_settings", {}) if synth.model_ is not None else {},
        "seed": seed,
        "versions": versions(),
    }


ID_SPACE = 10**12  # fresh table ids: distinct 12-digit numbers, so two releases' ids do not collide


def write_table_output(tmp: Path, sample: pd.DataFrame, schema: Schema, seed: int) -> dict[str, int]:
    """The synthetic table with the input's column names, fresh ids for identifier columns."""
    rng = np.random.default_rng(seed + 2)
    sample = sample.reset_index(drop=True)
    columns: dict[str, Any] = {}
    for col in schema.columns:
        name = col.source.column or col.name
        if col.in_view:
            columns[name] = sample[col.name]
        else:  # fresh, meaningless identifiers, distinct within the table, drawn from a large space
            columns[name] = pd.Series(ID_SPACE // 10 + rng.choice(ID_SPACE - ID_SPACE // 10, len(sample),
                                                                  replace=False))
    table = pd.DataFrame(columns)
    write_table(table, tmp, "synthetic")
    return {"rows": len(table)}
