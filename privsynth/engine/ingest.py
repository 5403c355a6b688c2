"""Patient-sharded ingest: an export read in shards, one patient's resources all in one.

Three steps, each run by an engine (:mod:`privsynth.engine.protocol`), none holding the
export in one process:

1. **Route** (a task per chunk of input files): every resource is read where it lies (the
   same reader, the same errors, the same counted skips as the whole-export path) and written,
   with where it was read, to the shard of its patient (a Bundle whose resources all belong
   to one patient -- Synthea's, most EHRs' per-patient exports -- is routed as the file's
   name, and its shard reads it where it lies): a Patient by its id, a clinical
   resource by the patient its ``subject``/``patient``/``beneficiary`` names (a ``urn:uuid:``
   reference resolved within its own Bundle, as FHIR resolves it). Types the schema does not
   read are only counted. Each task returns the identity of the Patients it saw.
2. **Who is who** (the driver, Patients only): every Patient's id and identifiers go through
   the same :class:`~privsynth.fhir.patients.PatientIndex` as the whole-export path, in input
   order, so a second Patient claiming a patient's id or identifier is refused across shards
   exactly as within one; with ``shared: merge`` a chart merged into a patient in another
   shard is moved to that shard.
3. **Shard views** (a task per shard): the shard's resources go through
   :func:`privsynth.fhir.view.view_of` -- the one code path that decides what a patient's row
   is -- then the timeline bounds, the encoding to public domains, and the exact per-shard
   figures (counted treatments, fine histograms, column findings) that add up over shards.
   The encoded rows are written as ``views/shard=K/part.parquet``; the driver only ever
   receives counts. The working directory holds real patients' data: it is the data
   owner's, never inside a shareable directory, and removed after the run unless kept.
"""

from __future__ import annotations

import shutil
import tempfile
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.parquet as pq

from privsynth.domain import EncodeReport, domain_sizes, encode
from privsynth.engine.protocol import Engine
from privsynth.engine.shard import codes_table, shard_of
from privsynth.errors import InputError
from privsynth.fhir.extractor import Extractors
from privsynth.fhir.patients import DuplicatePatientError, PatientIndex, full_url_id
from privsynth.fhir.read import Location, ReadStats, discover, iter_resources
from privsynth.fhir.reference import patient_ref, ref_key
from privsynth.fhir.report import IngestReport
from privsynth.fhir.view import check_fhir_schema, view_of
from privsynth.generator.synthesizer import ViewCounts, fine_histograms
from privsynth.history.bound import bound_view
from privsynth.ingest import Ingest
from privsynth.quality import ColumnStats, column_stats, findings_of
from privsynth.schema.model import Schema

FILES_PER_CHUNK = 2_000  # Bundles per routing task (NDJSON files are one task each)


@dataclass(frozen=True)
class ShardSetup:
    """What every task of one sharded ingest shares."""

    schema: Schema
    shards: int
    work: str
    validate: bool = False
    on_error: str = "raise"

    def routed(self, shard: int) -> Path:
        return Path(self.work) / "routed" / f"shard={shard}"

    def views(self) -> Path:
        return Path(self.work) / "views"


@dataclass(frozen=True)
class RouteTask:
    setup: ShardSetup
    chunk: int
    first: int  # the index of the chunk's first file in the whole input's file list
    files: tuple[str, ...]


@dataclass
class Routed:
    """What routing one chunk counted, and the identity of the Patients it saw (in order)."""

    stats: ReadStats
    not_in_schema: int = 0
    patients: list[tuple[Any, Any, Any, Location]] = field(default_factory=list)  # id, identifier, fullUrl, where


def route_chunk(task: RouteTask) -> Routed:
    """Route one chunk's resources to their patients' shards (step 1)."""
    setup = task.setup
    read_types = {"Patient", *Extractors(setup.schema).by_type}
    out = Routed(ReadStats())
    sinks: dict[int, BinaryIO] = {}
    try:
        for name in task.files:
            path = Path(name)
            bundle = not name.endswith((".ndjson", ".ndjson.gz"))  # NDJSON streams; a Bundle is read whole
            _route(iter_resources([path], out.stats, setup.on_error), task.chunk, setup, read_types, out, sinks,
                   bundle)
    finally:
        for sink in sinks.values():
            sink.close()
    return out


def _route(resources: Iterator[tuple[dict[str, Any], Location]], chunk: int, setup: ShardSetup,
           read_types: set[str], out: Routed, sinks: dict[int, BinaryIO], bundle: bool) -> None:
    """Route one file's resources. A Bundle's are held until its urn:uuid Patients are known
    (a reference may come before the Patient it names); an NDJSON file's stream through."""
    urns: dict[str, str] = {}
    pending: list[tuple[dict[str, Any], Location]] = []
    for resource, loc in resources:
        rtype = resource["resourceType"]
        if rtype not in read_types:
            out.not_in_schema += 1
            continue
        if rtype == "Patient":
            pid = resource.get("id")
            full_url = resource.get("_fullUrl")
            out.patients.append((pid, resource.get("identifier"), full_url, loc))
            if isinstance(pid, str) and isinstance(full_url, str) and full_url.startswith("urn:uuid:"):
                urns[full_url] = pid
        if bundle:
            pending.append((resource, loc))
        else:
            _write(resource, loc, urns, chunk, setup, sinks)
    keys = [_patient_of(resource, loc, urns) for resource, loc in pending]
    if pending and len(set(keys)) == 1 and keys[0]:  # one patient's Bundle: its shard reads the file itself
        _sink(shard_of(keys[0], setup.shards), chunk, setup, sinks).write(
            orjson.dumps({"p": keys[0], "file": pending[0][1].file}) + b"\n")
        return
    for (resource, loc), key in zip(pending, keys):
        _write(resource, loc, urns, chunk, setup, sinks, key)


def _sink(shard: int, chunk: int, setup: ShardSetup, sinks: dict[int, BinaryIO]) -> BinaryIO:
    sink = sinks.get(shard)
    if sink is None:
        folder = setup.routed(shard)
        folder.mkdir(parents=True, exist_ok=True)
        sink = sinks[shard] = open(folder / f"chunk-{chunk:08d}.ndjson", "ab")  # noqa: SIM115
    return sink


def _write(resource: dict[str, Any], loc: Location, urns: dict[str, str], chunk: int, setup: ShardSetup,
           sinks: dict[int, BinaryIO], key: str | None = None) -> None:
    key = _patient_of(resource, loc, urns) if key is None else key
    _sink(shard_of(key, setup.shards), chunk, setup, sinks).write(
        orjson.dumps({"p": key, "f": loc.file, "l": loc.line, "e": loc.entry, "r": resource}) + b"\n")


def _patient_of(resource: dict[str, Any], loc: Location, urns: dict[str, str]) -> str:
    """The key of the patient a resource belongs to, as the view will resolve it: a Patient's
    id; a clinical resource's patient reference (a urn:uuid one through its Bundle's Patients);
    a reference to no Patient keeps its own key (it is counted unresolved in its shard)."""
    if resource["resourceType"] == "Patient":
        pid = resource.get("id")
        return pid if isinstance(pid, str) else ""
    ref = patient_ref(resource)
    if not ref:
        return ""  # missing or unreadable: the shard's view says so, with where it was read
    if ref.startswith("urn:uuid:"):
        return urns.get(ref, ref_key(ref, loc.file))
    key = ref_key(ref, loc.file)
    return key[len("Patient/"):] if key.startswith("Patient/") else key


def check_identities(routed: list[Routed], setup: ShardSetup) -> dict[str, int]:
    """Step 2: every Patient through one :class:`PatientIndex`, in input order (a second
    Patient claiming an id or identifier is refused here across shards, as the whole-export
    path refuses it); the charts ``shared: merge`` joins across shards, and the shard each
    moves to (where the patient it joins is). Errors another step reports with the same
    words (a Patient without an id, a fullUrl naming another id) are left to that step."""
    index = PatientIndex(setup.schema.patient_id)
    for part in routed:
        for pid, identifier, full_url, loc in part.patients:
            if not isinstance(pid, str) or not pid:
                continue
            if isinstance(full_url, str) and full_url_id(full_url) != pid:
                continue
            try:
                index.add(pid, {"identifier": identifier}, loc)
            except DuplicatePatientError:
                raise
            except InputError:
                if setup.on_error != "skip":
                    raise
    moved: dict[str, int] = {}
    for pid in index.parent:
        home = shard_of(index.root(pid), setup.shards)
        if home != shard_of(pid, setup.shards):
            moved[pid] = home
    return moved


@dataclass(frozen=True)
class ShardTask:
    setup: ShardSetup
    shard: int
    moved: dict[str, int]  # merged charts (rare): Patient id -> the shard of the patient it joins


@dataclass
class ShardView:
    """The exact figures of one shard's view, each of which adds up over shards (the rows
    themselves stay in the shard's partition)."""

    rows: int
    report: IngestReport
    encoding: EncodeReport
    timeline: dict[str, dict[str, int]] | None
    columns: ColumnStats
    fine: dict[str, np.ndarray]
    stats: ReadStats


def shard_view(task: ShardTask) -> ShardView:
    """Step 3: one shard's patient view, bounded, encoded and written as its partition."""
    setup, schema = task.setup, task.setup.schema
    stats = ReadStats()
    frame, report = view_of(_routed_resources(task), stats, schema, validate=setup.validate,
                            on_error=setup.on_error, require_patients=False)
    timeline = None
    if schema.timeline is not None:
        frame, timeline = bound_view(frame, schema.timeline)
    codes, encoding = encode(frame, schema)
    folder = setup.views() / f"shard={task.shard}"
    folder.mkdir(parents=True, exist_ok=True)
    table = codes_table(codes.reshape(len(frame), len(domain_sizes(schema))))
    keys = pa.array([list(k.values) for k in frame.index], type=pa.list_(pa.string()))
    pq.write_table(table.append_column("keys", keys), folder / "part.parquet")
    return ShardView(len(frame), report, encoding, timeline, column_stats(frame, schema),
                     fine_histograms(frame, schema), stats)


def _routed_resources(task: ShardTask) -> Iterator[tuple[dict[str, Any], Location]]:
    """The shard's routed resources with where each was read (the original file, line or
    entry: messages name the export, never the working directory), in input order; charts
    merged into a patient of another shard move there."""
    setup = task.setup
    sources = [setup.routed(task.shard)]
    arriving = {pid for pid, home in task.moved.items() if home == task.shard}
    if arriving:
        sources += [setup.routed(k) for k in range(setup.shards) if k != task.shard]
    for folder in sources:
        own = folder == setup.routed(task.shard)
        for path in sorted(folder.glob("chunk-*.ndjson")) if folder.is_dir() else ():
            with open(path, "rb") as fh:
                for raw in fh:
                    line = orjson.loads(raw)
                    if (line["p"] in task.moved and task.moved[line["p"]] != task.shard) if own \
                            else line["p"] not in arriving:
                        continue
                    if "file" in line:  # a one-patient Bundle, read where it lies
                        yield from iter_resources([Path(line["file"])], ReadStats(), setup.on_error)
                    else:
                        yield line["r"], Location(line["f"], line["l"], line["e"])


@dataclass
class ShardedView:
    """A patient view read in shards: what a fit reads of it (:class:`ViewCounts`, counted
    by the engine), what reading it counted (:class:`Ingest`, with its findings), its number
    of rows, and where its partitions are (the data owner's working directory)."""

    counts: ViewCounts
    ingest: Ingest
    rows: int
    setup: ShardSetup
    keep: bool = False

    def keys(self) -> Iterator[tuple[str, ...]]:
        """Every patient's stable keys, shard by shard (for the budget ledger only)."""
        for part in sorted(self.setup.views().glob("shard=*/part.parquet")):
            for values in pq.read_table(part, columns=["keys"]).column("keys").to_pylist():
                yield tuple(values)

    def close(self) -> None:
        """Remove the working directory (real patients' data) unless it was asked to be kept."""
        if not self.keep:
            shutil.rmtree(self.setup.work, ignore_errors=True)

    def __enter__(self) -> ShardedView:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def read_sharded(inputs: list[Path], schema: Schema, engine: Engine, shards: int, *, work: Path | None = None,
                 validate: bool = False, on_error: str = "raise") -> ShardedView:
    """Read a FHIR export in ``shards`` patient shards on ``engine`` (steps 1-3), the
    encoded view written under ``work`` (a fresh temporary directory when None, removed by
    :meth:`ShardedView.close`; a directory given is kept)."""
    check_fhir_schema(schema, on_error)
    if isinstance(shards, bool) or not isinstance(shards, int) or shards < 1:
        raise InputError("--shards must be a whole number of at least 1")
    listing = ReadStats()
    files = [str(p) for p in discover(list(inputs), listing)]
    if work is not None and Path(work).exists() and any(Path(work).iterdir()):
        raise InputError(f"{work}: the working directory must be new or empty (it will hold the shards)")
    root = Path(work) if work is not None else Path(tempfile.mkdtemp(prefix="privsynth-shards-"))
    root.mkdir(parents=True, exist_ok=True)
    setup = ShardSetup(schema, shards, str(root), validate, on_error)
    try:
        tasks = _route_tasks(files, setup)
        routed = engine.map(route_chunk, tasks)
        moved = check_identities(routed, setup)
        views = engine.map(shard_view, [ShardTask(setup, k, moved) for k in range(shards)])
        counts, ingest, rows = _combine(routed, views, listing, setup)
    except BaseException:
        if work is None:
            shutil.rmtree(root, ignore_errors=True)
        raise
    shutil.rmtree(root / "routed", ignore_errors=True)  # the views are all later steps read
    return ShardedView(ViewCounts(engine.counts(setup.views(), domain_sizes(schema)), *counts), ingest, rows, setup,
                       keep=work is not None)


def _route_tasks(files: list[str], setup: ShardSetup) -> list[RouteTask]:
    """A task per NDJSON file and per FILES_PER_CHUNK Bundles, numbered in input order (the
    order who-is-who reads Patients in, and a shard reads its resources in)."""
    chunks: list[tuple[int, tuple[str, ...]]] = []
    bundles: list[tuple[int, str]] = []
    for i, name in enumerate(files):
        if name.endswith((".ndjson", ".ndjson.gz")):
            chunks.append((i, (name,)))
        else:
            bundles.append((i, name))
    for start in range(0, len(bundles), FILES_PER_CHUNK):
        part = bundles[start:start + FILES_PER_CHUNK]
        chunks.append((part[0][0], tuple(name for _, name in part)))
    return [RouteTask(setup, k, first, names) for k, (first, names) in enumerate(sorted(chunks))]


def _combine(routed: list[Routed], views: list[ShardView], listing: ReadStats, setup: ShardSetup,
             ) -> tuple[tuple[dict[str, np.ndarray], EncodeReport], Ingest, int]:
    """The shards' figures added up: the fine histograms and counted treatments a fit reads,
    and the ingest record (with its data-quality findings) the whole-export path would give."""
    schema = setup.schema
    rows = sum(v.rows for v in views)
    if rows == 0:
        raise InputError("no Patient resource found in the input; the patient view needs one Patient per "
                         "patient (Bundles with a Patient entry, or a Patient.ndjson file)")
    report = IngestReport(files_read=sum(r.stats.files_read for r in routed),
                          files_skipped=len(listing.files_skipped), patients=rows,
                          patient_key=schema.patient_id.describe("fhir"),
                          resources_not_in_schema=sum(r.not_in_schema for r in routed))
    read: Counter[str] = Counter()
    skipped: Counter[str] = Counter()
    for r in routed:
        read.update(r.stats.resources)
        skipped.update(r.stats.errors_skipped)
    encoding = EncodeReport()
    fine: dict[str, np.ndarray] = {}
    columns = ColumnStats()
    for v in views:
        skipped.update(v.stats.errors_skipped)
        for name in ("resources_used", "unresolved_patient", "unit_mismatch", "unreadable_value"):
            getattr(report, name).update(getattr(v.report, name))
        report.patients_merged += v.report.patients_merged
        for name in ("mapped_to_other", "unknown_to_missing", "clamped", "missing"):
            getattr(encoding, name).update(getattr(v.encoding, name))
        for name, hist in v.fine.items():
            fine[name] = fine[name] + hist if name in fine else hist
        columns = columns.add(v.columns)
    report.resources_read = dict(read)
    report.errors_skipped = dict(skipped)
    ingest = report.to_ingest()
    if schema.timeline is not None:
        ingest = _with_timeline(ingest, [v.timeline or {} for v in views])
    ingest = Ingest(**{**ingest.__dict__, "data_quality": tuple(findings_of(columns, schema, ingest))})
    return (fine, encoding), ingest, rows


def _with_timeline(ingest: Ingest, parts: list[dict[str, dict[str, int]]]) -> Ingest:
    total: dict[str, dict[str, int]] = {}
    for part in parts:
        for stream, figures in part.items():
            into = total.setdefault(stream, {})
            for name, value in figures.items():
                into[name] = value if name == "max_events" else into.get(name, 0) + value
    return Ingest(**{**ingest.__dict__, "timeline": total})
