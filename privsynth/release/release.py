"""A gated release: ledger -> split -> fit on train -> sample -> audit -> release or refuse.

Order matters for privacy:

1. the input files are hashed (bytes only, nothing parsed) to identify the dataset;
2. the ledger reserves the release's rho -- or refuses, before any patient data is read;
3. the patients are split: the holdout never reaches the generator;
4. the DP model is fitted on train and sampled; the sample is audited against train and
   holdout under the policy;
5. on pass, the release directory appears atomically: ``data/``, ``model.*``,
   ``privacy.json`` and ``manifest.json`` (SHA-256 of every file); the full audit figures go
   to ``<out>.audit.json`` BESIDE it (internal, not for sharing), with the report's figures
   (small cells suppressed), and the HTML report to ``<out>.report.html``, also beside it.
   On fail nothing is written but that internal audit, and :class:`AuditFailed` carries
   the reasons.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from privsynth.audit import AuditResult, Policy, evaluate, holdout_split
from privsynth.errors import AuditFailed, InputError, OutputError
from privsynth.generator.synthesizer import Synthesizer, check_keep
from privsynth.pipeline import consistent, privacy_document, read_view, versions, write_synthetic
from privsynth.privacy.ledger import Ledger
from privsynth.privacy.mechanism import rho_for
from privsynth.release.atomic import atomic_directory, remove_stale_partials, write_bytes
from privsynth.report.data import report_data
from privsynth.report.html import render
from privsynth.schema.model import Schema

Progress = Callable[[str, int, int], None]
MANIFEST_FORMAT = "privsynth-release-manifest/1"


@dataclass(frozen=True)
class ReleaseResult:
    out: Path
    audit_file: Path
    manifest: dict[str, Any]
    audit: AuditResult
    report_file: Path


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def input_files(inputs: Iterable[Path]) -> list[Path]:
    files: list[Path] = []
    for p in inputs:
        if p.is_dir():
            files.extend(sorted(f for f in p.rglob("*") if f.is_file()))
        elif p.is_file():
            files.append(p)
        else:
            raise InputError(f"{p}: no such file or directory")
    if not files:
        raise InputError("the inputs contain no files")
    return files


def dataset_hash(files: list[Path]) -> tuple[str, list[dict[str, str]]]:
    """A content hash of the dataset: independent of file names, paths and order.

    The same file given twice (or two copies of it) is refused: its patients would be read
    twice, which breaks the privacy unit and would start a fresh budget."""
    per_file = [{"name": f.name, "sha256": sha256_file(f)} for f in files]
    seen: dict[str, Path] = {}
    for f, entry in zip(files, per_file):
        if entry["sha256"] in seen:
            raise InputError(f"{f}: the same content as {seen[entry['sha256']]}; give each input file once")
        seen[entry["sha256"]] = f
    combined = hashlib.sha256("\n".join(sorted(x["sha256"] for x in per_file)).encode()).hexdigest()
    return combined, per_file


def release(
    inputs: Iterable[str | Path], schema: Schema, out: str | Path, *, epsilon: float, delta: float = 1e-6,
    policy: Policy | None = None, ledger: Ledger, seed: int = 0, output_format: str = "ndjson",
    method: str = "aim", progress: Progress | None = None, keep: list[str] | None = None,
    target: str | None = None,
) -> ReleaseResult:
    """``keep``: partial synthesis -- these columns of the train patients stay real, every
    other one is drawn from the DP model conditioned on them (not end-to-end DP; the
    manifest says so and the attribute-inference audit joins the gate)."""
    policy = policy or Policy()
    keep = list(keep or [])
    if target is not None and target not in [c.name for c in schema.learned_columns]:
        raise InputError(f"--target '{target}': not a learned column of schema '{schema.name}'")
    if keep:
        keep = check_keep(schema, keep, bool(policy.allow_keep_sensitive))
    rho = rho_for(epsilon, delta)  # a bad budget is refused before anything else
    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise OutputError(f"{out}: already exists and is not empty; choose a new --out directory")
    audit_file = out.parent / f"{out.name}.audit.json"
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"{out.parent}: cannot create the output's parent directory ({exc.strerror})") from None
    for beside in (audit_file, report_path(out)):
        if beside.is_dir():
            raise OutputError(f"{beside}: is a directory; privsynth writes a file there. Choose another --out")
    remove_stale_partials(out)
    paths = [Path(p) for p in inputs]
    files = input_files(paths)
    content, per_file = dataset_hash(files)
    label = ", ".join(p.name for p in paths)[:200]
    release_id = ledger.reserve(content, label, rho=rho, rho_budget=rho_for(policy.total_epsilon, policy.total_delta),
                                epsilon=epsilon, delta=delta, max_attempts=policy.max_attempts, out=str(out),
                                delta_budget=policy.total_delta)
    status = "failed"
    stage: list[str] = []  # "fit" once the generator has touched the data, "released" once out exists
    try:
        return _run(paths, schema, out, audit_file, epsilon, delta, rho, policy, ledger, content, per_file,
                    seed, output_format, method, progress, release_id, stage, keep, target)
    except AuditFailed:
        status = "refused"
        raise
    finally:
        if "released" not in stage:
            try:
                ledger.finish(release_id, status, refund=status == "failed" and "fit" not in stage)
            except OutputError:
                if status != "refused":
                    raise  # a refusal's own message matters more than a ledger hiccup


def _run(paths: list[Path], schema: Schema, out: Path, audit_file: Path, epsilon: float, delta: float, rho: float,
         policy: Policy, ledger: Ledger, content: str, per_file: list[dict[str, str]], seed: int,
         output_format: str, method: str, progress: Progress | None, release_id: int,
         stage: list[str], keep: list[str], target: str | None) -> ReleaseResult:
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    view, ingest = read_view(paths, schema, progress=progress)
    rng = np.random.default_rng(seed)
    train_rows, holdout_rows = holdout_split(len(view), policy.holdout_fraction, policy.min_holdout, rng)
    train = view.iloc[train_rows].reset_index(drop=True)
    holdout = view.iloc[holdout_rows].reset_index(drop=True)
    timings["ingest"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    stage.append("fit")
    synth = Synthesizer(schema, epsilon, delta, method=method).fit(train, progress=progress)
    if keep:
        sample = synth.sample_partial(train, keep, rng=seed, allow_sensitive=bool(policy.allow_keep_sensitive))
    else:
        sample = consistent(synth.sample(None, rng=seed), schema)
    timings["fit+sample"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    audit = evaluate(train, holdout, sample, schema, policy, epsilon=epsilon, delta=delta, seed=seed,
                     progress=progress, keep=keep or None)
    timings["audit"] = time.perf_counter() - t0
    now = dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat()
    internal: dict[str, Any] = {
        "warning": "INTERNAL: audit figures computed on the real patients; not differentially private; do not share",
        "created": now,
        "release_id": release_id,
        "dataset_sha256": content,
        "ingest": ingest,
        "encoding": synth.encode_report_.as_dict(),
        "audit": audit.as_dict(),
        "seconds": timings,
    }
    if audit.passed:
        internal["report"] = report_data(train, holdout, sample, schema, min_cell=policy.min_cell_patients,
                                         shift_max=policy.bias_shift_max, target=target, seed=seed)
    write_bytes(audit_file, json.dumps(internal, indent=2, default=float).encode())
    if not audit.passed:
        reasons = "\n".join("  " + c.line() for c in audit.failures())
        raise AuditFailed(
            f"release refused: {len(audit.failures())} audit check(s) failed; no data was written.\n{reasons}\n"
            f"Full figures (internal, not for sharing): {audit_file}. This attempt's rho stays spent in the ledger.")

    schema_hash = sha256_file(Path(schema.source_file)) if schema.source_file else None
    privacy = privacy_document(synth, schema, epsilon, delta, None, seed)
    with atomic_directory(out) as tmp:
        write_synthetic(tmp / "data", sample, schema, seed, output_format, now, epsilon, delta, progress)
        synth.save(tmp / "model")
        write_bytes(tmp / "privacy.json", json.dumps(privacy, indent=2).encode())
        files = {str(f.relative_to(tmp)): sha256_file(f) for f in sorted(tmp.rglob("*")) if f.is_file()}
        budget = next(d for d in ledger.datasets() if d.hash == content)
        manifest = {
            "format": MANIFEST_FORMAT,
            "created": now,
            "synthetic": True,
            "privacy_unit": "patient: one patient's whole record (one row of the patient view; add/remove)",
            "epsilon": epsilon,
            "delta": delta,
            "rho": rho,
            "rho_spent": synth.accountant_.rho_spent,
            "accounting": "zero-concentrated DP (rho), converted to (epsilon, delta) by OpenDP",
            "mechanisms": sorted({c.mechanism for c in synth.accountant_.charges}),
            "generator": method,
            "real_columns": keep,
            "end_to_end_dp": not keep,
            "partial_synthesis": None if not keep else (
                "the listed real_columns are the train patients' real values, copied; every other column is "
                "drawn from the DP model conditioned on them. The DP guarantee covers the model, not the real "
                "columns, and the rows are the train patients (their number is exact)."),
            "holdout": {"fraction": policy.holdout_fraction,
                        "note": "holdout patients never reached the generator; they serve the audits only"},
            "inputs": {"dataset_sha256": content, "files": per_file},
            "schema": {"name": schema.name, "sha256": schema_hash},
            "policy": {**policy.as_dict(), "weakened": policy.weakened()},
            "ledger": {"release_id": release_id, "dataset_rho_budget": budget.rho_budget,
                       "dataset_rho_spent": budget.rho_spent, "attempts": budget.attempts},
            "audit": {"passed": True, "verdicts": audit.verdicts(),
                      "sizes": {"synthetic": len(sample)} if not keep else {}},
            "seed": seed,
            "versions": versions(),
            "files": files,
        }
        write_bytes(tmp / "manifest.json", json.dumps(manifest, indent=2).encode())
        html = render(manifest, internal["audit"], internal["report"])
    # the release directory exists from here on: record it before anything else can fail
    stage.append("released")
    ledger.finish(release_id, "released")
    report_file = report_path(out)
    write_bytes(report_file, html.encode())
    return ReleaseResult(out, audit_file, manifest, audit, report_file)


def report_path(out: Path) -> Path:
    """The report is beside the release, not in it: it holds real-data aggregates."""
    return out.parent / f"{out.name}.report.html"


def rebuild_report(release_dir: str | Path, audit_file: str | Path | None = None,
                   out_file: str | Path | None = None) -> Path:
    """Render the report of an existing release from its manifest and internal audit."""
    release_dir = Path(release_dir)
    audit_file = Path(audit_file) if audit_file else release_dir.parent / f"{release_dir.name}.audit.json"
    try:
        manifest = json.loads((release_dir / "manifest.json").read_text())
        internal = json.loads(Path(audit_file).read_text())
    except FileNotFoundError as exc:
        raise InputError(f"{exc.filename}: not found; `privsynth report` needs a release directory and its "
                         "internal audit (DIR.audit.json, or --audit)") from None
    except json.JSONDecodeError as exc:
        raise InputError(f"not valid JSON (line {exc.lineno}); is this a privsynth release?") from None
    if manifest.get("format") != MANIFEST_FORMAT or "audit" not in internal:
        raise InputError(f"{release_dir}: not a privsynth release (manifest format) or audit file mismatch")
    if (internal.get("release_id") != manifest.get("ledger", {}).get("release_id")
            or internal.get("dataset_sha256") != manifest.get("inputs", {}).get("dataset_sha256")):
        raise InputError(f"{audit_file}: this internal audit belongs to another release than {release_dir} "
                         "(release id or dataset hash differ)")
    target = Path(out_file) if out_file else report_path(release_dir)
    write_bytes(target, render(manifest, internal["audit"], internal.get("report")).encode())
    return target
