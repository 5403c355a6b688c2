"""A gated release: read -> charge the patients -> split -> fit on train -> sample -> audit
-> release or refuse.

Order matters for privacy:

1. the schema's model size is checked and the ledger reconciled (releases killed
   earlier are settled) before any patient data is read;
2. the input is read into the patient view, with each patient's stable key (the schema's
   ``patient_id``); data too small to audit is refused here, nothing spent;
3. the ledger charges the release's rho to EVERY patient of the input, under the named
   budget -- or refuses, before anything is fitted, if any of them would exceed it;
4. each patient is held out by a coin from fresh OS entropy, never recorded (the holdout
   never reaches the generator); the DP model is fitted on train and sampled with the
   post-processing seed (given, or fresh); the sample is audited against train and
   holdout under the policy, with fresh randomness too;
5. on pass, the release directory appears atomically: ``data/``, ``model.*``,
   ``privacy.json`` and ``manifest.json`` -- which says nothing about the real input
   beyond DP output and pass/fail verdicts (:mod:`privsynth.release.manifest`). Input file
   names and hashes, patient counts and every audit figure go to ``<out>.audit.json``
   BESIDE it (internal, not for sharing), and the HTML report to ``<out>.report.html``,
   also beside it. On fail nothing is written but that internal audit, and
   :class:`AuditFailed` carries the reasons.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import signal
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from privsynth.atomic import atomic_directory, remove_stale_partials, write_bytes
from privsynth.audit import AuditResult, Policy, evaluate, holdout_split
from privsynth.audit.protocol import Charts
from privsynth.audit.split import check_split_size
from privsynth.errors import AuditFailed, InputError, OutputError
from privsynth.fhir.write import unnamed_orders
from privsynth.generator.footprint import check_footprint
from privsynth.generator.learnability import Learnability
from privsynth.generator.synthesizer import Synthesizer, check_keep
from privsynth.history.chart import iter_patients
from privsynth.history.redflag import UNCODED_ORDER
from privsynth.ingest import Ingest
from privsynth.pipeline import fit_model, post_processing_seed, read_view, write_model_directory
from privsynth.privacy.ledger import Ledger, Reservation
from privsynth.privacy.mechanism import epsilon_for, rho_for
from privsynth.progress import Progress
from privsynth.quality import Finding
from privsynth.records import fhir_records, versions
from privsynth.release.inputs import input_files, input_fingerprint, sha256_file
from privsynth.release.internal import InternalAudit, LedgerNote, PatientCounts
from privsynth.release.manifest import ReleaseManifest, Verdict, registry_entry
from privsynth.report.figures import report_data
from privsynth.report.html import render
from privsynth.run import RunSpec
from privsynth.schema.load import dump_schema
from privsynth.schema.model import Schema

PAUSE_VARIABLE = "PRIVSYNTH_TEST_PAUSE_AT"  # crash-safety tests: stop at a named point, for a kill


@dataclass(frozen=True)
class ReleaseResult:
    out: Path
    audit_file: Path
    manifest: ReleaseManifest
    audit: AuditResult
    report_file: Path
    budget: str
    worst_epsilon_spent: float  # the worst-off patient's spend under the budget, at its delta
    epsilon_budget: float
    delta_budget: float
    patient_key: str  # what keyed the patients in the ledger (e.g. "Patient.id", or a row hash)
    rows_sharing_a_key: int  # rows whose key another row has too (charged for their multiplicity squared)


def pause_point(name: str) -> None:
    """Stop here when ``$PRIVSYNTH_TEST_PAUSE_AT`` names this point, so a crash-safety test
    can kill the process at a known moment (it waits for this line on stderr, not a clock).
    A no-op otherwise."""
    if os.environ.get(PAUSE_VARIABLE) != name:
        return
    os.write(2, f"privsynth: paused at {name}\n".encode())
    while True:
        signal.pause()


def split_view(view: pd.DataFrame, policy: Policy) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Train and holdout patients, as ``release`` splits them: one coin per patient from
    fresh OS entropy (see :mod:`privsynth.audit.split`)."""
    train_rows, holdout_rows = holdout_split(len(view), policy.holdout_fraction, policy.min_holdout)
    return view.iloc[train_rows], view.iloc[holdout_rows]


def release(inputs: Iterable[str | Path], schema: Schema, out: str | Path, *, ledger: Ledger,
            progress: Progress | None = None, notice: Callable[[Finding], None] | None = None,
            **options: Any) -> ReleaseResult:
    """Release ``inputs`` through the gate into ``out``, charging ``ledger``.

    ``options`` are :class:`privsynth.run.RunSpec`'s fields: ``epsilon`` (required), ``delta``,
    ``policy``, ``seed`` (the post-processing only; fresh when None), ``output_format``,
    ``method``, ``keep`` (partial synthesis -- these columns of the train patients stay
    real, every other one is drawn from the DP model conditioned on them; not end-to-end
    DP: the manifest says so and the attribute-inference audit joins the gate), ``target``,
    ``dataset`` (the named budget the patients are charged under), ``max_model_cells``,
    ``show_counts`` (refusals may give exact patient counts, recorded in the internal
    audit; without it they give none)."""
    return run_release(RunSpec.of(schema, inputs, options), out, ledger=ledger, progress=progress, notice=notice)


def run_release(spec: RunSpec, out: str | Path, *, ledger: Ledger, progress: Progress | None = None,
                notice: Callable[[Finding], None] | None = None) -> ReleaseResult:
    """:func:`release` for a spec built once (the CLI's path)."""
    schema, policy = spec.schema, spec.policy
    if spec.sharded:  # refused, not ignored: a run must do what it was asked or say why not
        raise InputError("a release reads the export whole, in one process: its audits compare every train, "
                         "holdout and synthetic patient, which sharded reading does not yet collect "
                         "(docs/engines.md); --engine/--shards are for synthesize")
    if schema.patient_id.is_row_hash(schema.input_format) and not policy.allow_row_hash_key:
        raise InputError(
            f"schema '{schema.name}' declares no patient_id, so patients would be keyed by a hash of their row: a "
            "patient whose values change in a re-export would be a new patient to the budget ledger. Declare the "
            "table's stable patient id (the schema's patient_id), or set allow_row_hash_key: 1 in the policy "
            "(recorded in the manifest as a weakening)")
    if spec.keep:
        spec = replace(spec, keep=tuple(check_keep(schema, list(spec.keep), bool(policy.allow_keep_sensitive))))
    check_footprint(schema, spec.max_model_cells)
    if schema.document is not None:
        dump_schema(schema)  # a schema that cannot be written fails here, before any data is read or charged
    spec = spec.with_seed(post_processing_seed(spec.seed))
    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise OutputError(f"{out}: already exists and is not empty; choose a new --out directory")
    audit_file = audit_path(out)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"{out.parent}: cannot create the output's parent directory ({exc.strerror})") from None
    for beside in (audit_file, report_path(out)):
        if beside.is_dir():
            raise OutputError(f"{beside}: is a directory; privsynth writes a file there. Choose another --out")
    reconcile(ledger)
    remove_stale_partials(out)
    paths = list(spec.inputs)
    fingerprint = input_fingerprint(input_files(paths))
    t0 = time.perf_counter()
    view, ingest = read_view(paths, schema, progress=progress, notice=notice)
    check_split_size(len(view), policy.holdout_fraction, policy.min_holdout, spec.show_counts)  # nothing spent yet
    # identical rows of a table keyed by content may be one patient twice: the ledger charges c^2
    ingest = replace(ingest, rows_sharing_a_key=int(view.index.duplicated(keep=False).sum()))
    reservation = ledger.reserve(
        spec.dataset, ledger.patient_keys(view.index), rho=spec.rho,
        rho_budget=rho_for(policy.total_epsilon, policy.total_delta), delta_budget=policy.total_delta,
        epsilon=spec.epsilon, delta=spec.delta, max_attempts=policy.max_attempts, out=str(out.resolve()),
        partial=bool(spec.keep), show_counts=spec.show_counts)
    pause_point("reserved")
    status = "failed"
    stage: list[str] = []  # "fit" once the generator has touched the data, "released" once out exists
    try:
        result = _run(spec, out, _Input(view, ingest, fingerprint, time.perf_counter() - t0), ledger, reservation,
                      progress, stage, notice)
    except AuditFailed:
        status = "refused"
        raise
    finally:
        if "released" not in stage:
            try:
                ledger.finish(reservation, status, refund=status == "failed" and "fit" not in stage)
            except OutputError:
                if status != "refused":
                    raise  # a refusal's own message matters more than a ledger hiccup
    return result


@dataclass(frozen=True)
class _Input:
    """What was read: the patient view, the ingest counts, the input files' fingerprint, the time it took."""

    view: pd.DataFrame
    ingest: Ingest
    fingerprint: list[dict[str, str]]
    seconds: float


def _run(spec: RunSpec, out: Path, read: _Input, ledger: Ledger, reservation: Reservation,
         progress: Progress | None, stage: list[str], notice: Callable[[Finding], None] | None = None) -> ReleaseResult:
    seed = spec.seed
    assert seed is not None  # run_release fixed it
    train, holdout = split_view(read.view, spec.policy)
    train, holdout = train.reset_index(drop=True), holdout.reset_index(drop=True)  # patient keys stay here
    timings: dict[str, float] = {"ingest": read.seconds}

    t0 = time.perf_counter()
    stage.append("fit")
    synth = fit_model(spec, train, progress, notice)
    _check_learned(spec, synth)
    if spec.keep:
        sample = partial_sample(synth, train, list(spec.keep), seed, bool(spec.policy.allow_keep_sensitive))
    else:
        sample = synth.sample(None, rng=seed)
    timings["fit+sample"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    audit = evaluate(train, holdout, sample, spec.schema, spec.policy, epsilon=spec.epsilon, delta=spec.delta,
                     seed=None, progress=progress, keep=list(spec.keep) or None,
                     resample=lambda n, rng: synth.sample(n, rng=rng), charts=_charts(spec, sample))
    timings["audit"] = time.perf_counter() - t0
    now = dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat()
    report = report_data(train, holdout, sample, spec.schema, min_cell=spec.policy.min_cell_patients,
                         shift_max=spec.policy.bias_shift_max, target=spec.target, seed=seed) if audit.passed else None
    internal = InternalAudit(
        release_id=reservation.id, created=now, inputs=tuple(read.fingerprint),
        patients=PatientCounts(len(read.view), len(train), len(holdout), read.ingest.patient_key),
        ledger=_ledger_note(ledger, reservation), show_counts=spec.show_counts, ingest=read.ingest.as_dict(),
        encoding=synth.encode_report_.as_dict(),
        model={"learnability": synth.model_.metadata["learnability"], "empty_streams": list(synth.empty_streams)},
        audit=audit.as_dict(), seconds=timings, report=report)
    audit_file = audit_path(out)
    write_bytes(audit_file, internal.to_json())
    if not audit.passed:
        reasons = "\n".join("  " + c.line() for c in audit.failures())
        raise AuditFailed(
            f"release refused: {len(audit.failures())} audit check(s) failed; no data was written.\n{reasons}\n"
            f"Full figures (internal, not for sharing): {audit_file}. This attempt's rho stays spent in the ledger.")
    manifest, html = _write_release(spec, out, synth, sample, audit, internal, progress)
    # the release directory exists from here on: record it before anything else can fail
    stage.append("released")
    pause_point("renamed")
    ledger.finish(reservation, "released")
    report_file = report_path(out)
    write_bytes(report_file, html.encode())
    summary = ledger.budget(reservation.budget)
    assert summary is not None  # the reservation created it
    return ReleaseResult(out, audit_file, manifest, audit, report_file, reservation.budget,
                         epsilon_for(summary.worst_rho, summary.delta_budget),
                         epsilon_for(summary.rho_budget, summary.delta_budget), summary.delta_budget,
                         read.ingest.patient_key, read.ingest.rows_sharing_a_key)


def _check_learned(spec: RunSpec, synth: Synthesizer) -> None:
    """Refuse a model that learned mostly noise (too few patients for the schema at this epsilon)."""
    learned = synth.model_.metadata["learnability"]
    if learned["noise_share"] > spec.policy.max_noise_share:
        raise AuditFailed(
            f"release refused: the model could not learn schema '{spec.schema.name}' from these patients at this "
            f"epsilon (policy max_noise_share {spec.policy.max_noise_share:g}): "
            f"{Learnability.of(learned).sentence(spec.schema)}. "
            "No data was written; this attempt's rho stays spent in the ledger.")


def _write_release(spec: RunSpec, out: Path, synth: Synthesizer, sample: pd.DataFrame, audit: AuditResult,
                   internal: InternalAudit, progress: Progress | None) -> tuple[ReleaseManifest, str]:
    """The release directory, whole or not at all (one rename), and the report's HTML."""
    schema, policy = spec.schema, spec.policy
    assert spec.seed is not None  # run_release fixed it
    schema_hash = sha256_file(Path(schema.source_file)) if schema.source_file else None
    with atomic_directory(out) as tmp:
        write_model_directory(tmp, tmp / "data", synth, sample, spec,
                              spec.output(internal.created, internal.release_id), progress)
        files = {str(f.relative_to(tmp)): sha256_file(f) for f in sorted(tmp.rglob("*")) if f.is_file()}
        shared_policy = {k: v for k, v in policy.as_dict().items() if k != "source"}
        manifest = ReleaseManifest(
            release_id=internal.release_id, created=internal.created, epsilon=spec.epsilon, delta=spec.delta,
            rho=spec.rho, rho_spent=synth.accountant_.rho_spent,
            mechanisms=tuple(sorted({c.mechanism for c in synth.accountant_.charges})),
            generator=spec.method, real_columns=tuple(spec.keep), schema_name=schema.name, schema_sha256=schema_hash,
            holdout_fraction=policy.holdout_fraction, policy=shared_policy, weakened=tuple(policy.weakened()),
            verdicts=tuple(Verdict(**v) for v in audit.verdicts()), seed=spec.seed, versions=versions(), files=files,
            patient_key=schema.patient_id.describe(schema.input_format),
            patient_key_row_hash=schema.patient_id.is_row_hash(schema.input_format),
            max_attempts=int(policy.max_attempts), recipients=spec.recipients, purpose=spec.purpose)
        entry = tmp / "dp-registry.json"
        write_bytes(entry, registry_entry(manifest))
        manifest = replace(manifest, files={**manifest.files, entry.name: sha256_file(entry)})
        manifest_bytes = manifest.to_json()
        write_bytes(tmp / "manifest.json", manifest_bytes)
        html = render(manifest.as_dict(), internal.audit, internal.report, internal.ledger.summary,
                      hashlib.sha256(manifest_bytes).hexdigest())
        pause_point("writing")
    return manifest, html


def _charts(spec: RunSpec, sample: pd.DataFrame) -> Charts | None:
    """The real export and the released rows as FHIR records, for the face-validity audit
    (a table input has no records)."""
    if spec.schema.input_format != "fhir":
        return None
    seed = spec.seed
    assert seed is not None  # run_release fixed it
    unnamed = unnamed_orders(spec.schema)
    unjudged = {UNCODED_ORDER: f"the schema counts {', '.join(unnamed)} without naming the drug or procedure "
                               "(written as 'not specified')"} if unnamed else {}
    return Charts(real=lambda: iter_patients(list(spec.inputs)),
                  synthetic=lambda rows: fhir_records(sample.iloc[rows], spec.schema, seed),
                  reference=spec.schema.reference, unjudged=unjudged)


def partial_sample(synth: Synthesizer, train: pd.DataFrame, keep: list[str], seed: int,
                   allow_sensitive: bool) -> pd.DataFrame:
    """One synthetic row per train patient, kept columns real. The train patients are put in
    an order drawn from OS entropy and never recorded BEFORE decoding: decoding draws its
    numbers in row order with the published seed, so in input order anyone holding the
    release could replay the seed, map each released row to its train position, and so tell
    who was held out. (Shuffling the rows after decoding does not help: the drawn values
    themselves carry the position.)"""
    order = np.random.default_rng().permutation(len(train))  # no seed: OS entropy, never recorded
    return synth.sample_partial(train.iloc[order].reset_index(drop=True), keep, rng=seed,
                                allow_sensitive=allow_sensitive)


def _ledger_note(ledger: Ledger, reservation: Reservation) -> LedgerNote:
    """Where the ledger lives and what it says after this charge (internal)."""
    origin = ledger.origin
    return LedgerNote(str(ledger.path), reservation.budget, reservation.rho, _ledger_line(ledger, reservation),
                      origin.key_path, origin.created, origin.created_now, tuple(origin.others_nearby))


def _ledger_line(ledger: Ledger, reservation: Reservation) -> str:
    """The report's ledger line (internal): the budget and its worst-off patient's spend,
    this release's charge included (recorded in the internal audit, so a rebuilt report
    says the same)."""
    summary = ledger.budget(reservation.budget)
    if summary is None:  # pragma: no cover - the reservation created it
        return f"budget '{reservation.budget}'"
    worst = epsilon_for(summary.worst_rho, summary.delta_budget)
    return (f"budget '{summary.name}': the worst-off patient has spent ε = {worst:.3g} of "
            f"{epsilon_for(summary.rho_budget, summary.delta_budget):.3g} (δ = {summary.delta_budget:g}; "
            f"ρ {summary.worst_rho:.4g} of {summary.rho_budget:.4g}), this release included")


def audit_path(out: Path) -> Path:
    """The internal audit is beside the release, not in it: it holds real-data figures."""
    return out.parent / f"{out.name}.audit.json"


def report_path(out: Path) -> Path:
    """The report is beside the release, not in it: it holds real-data aggregates."""
    return out.parent / f"{out.name}.report.html"


def holds_release(out: Path, release_id: str) -> bool:
    """Whether ``out`` is the complete release ``release_id`` (it only ever appears whole,
    by one rename, so its manifest naming the release is enough)."""
    try:
        return ReleaseManifest.from_json((out / "manifest.json").read_bytes()).release_id == release_id
    except (OSError, InputError):
        return False


def reconcile(ledger: Ledger) -> list[tuple[str, str]]:
    """Settle releases a killed process left 'reserved': a complete release directory is
    recorded released (its report rebuilt if it was missing), anything else interrupted
    (its temporary directory removed; its rho stays spent)."""
    settled = ledger.reconcile(holds_release, remove_stale_partials)
    for release_id, status in settled:
        if status != "released":
            continue
        record = next((r for r in ledger.releases() if r.id == release_id), None)
        if record is not None and not report_path(Path(record.out)).exists() and audit_path(Path(record.out)).exists():
            try:
                rebuild_report(record.out)
            except (InputError, OutputError, OSError):
                pass  # the release stands; `privsynth report` can rebuild it by hand
    return settled


def rebuild_report(release_dir: str | Path, audit_file: str | Path | None = None,
                   out_file: str | Path | None = None) -> Path:
    """Render the report of an existing release from its manifest and internal audit."""
    release_dir = Path(release_dir)
    audit_file = Path(audit_file) if audit_file else audit_path(release_dir)
    try:
        manifest = ReleaseManifest.from_json((release_dir / "manifest.json").read_bytes(),
                                             str(release_dir / "manifest.json"))
        internal = InternalAudit.from_json(Path(audit_file).read_bytes(), str(audit_file))
    except FileNotFoundError as exc:
        raise InputError(f"{exc.filename}: not found; `privsynth report` needs a release directory and its "
                         "internal audit (DIR.audit.json, or --audit)") from None
    if internal.release_id != manifest.release_id:
        raise InputError(f"{audit_file}: this internal audit belongs to another release than {release_dir} "
                         "(the release ids differ)")
    target = Path(out_file) if out_file else report_path(release_dir)
    manifest_sha256 = hashlib.sha256((release_dir / "manifest.json").read_bytes()).hexdigest()
    write_bytes(target, render(manifest.as_dict(), internal.audit, internal.report, internal.ledger.summary,
                               manifest_sha256).encode())
    return target
