"""Validated FHIR output, written as it is made: NDJSON per resource type, or one Bundle per patient.

Every resource is validated with the fhir.resources R4B model of its type before it is
written. privsynth builds resources in their canonical JSON form (UTC instants with ``Z``,
whole seconds), so the validated resource is written exactly as it was built, without a
second serialisation through the model (which costs twice the validation).

Validation dominates the cost of a large write (about 15,000 resources/s on one core), so
on a large output batches of patients can be validated and serialised in worker processes
while the main process builds the next batches. Results are taken in submission order, so
the output is the same whatever the number of workers. Workers are used only when asked for:
the command line asks (one per available core, at most 8; ``PRIVSYNTH_WORKERS=N`` overrides,
1 turns them off), a Python program calls :func:`use_workers` -- and, as multiprocessing
requires, guards its own code with ``if __name__ == "__main__":``, since every worker
imports the program's main module.
Bundles are written by the workers (each file fsynced); NDJSON lines by the main process.
The whole directory is made atomic by :func:`privsynth.atomic.atomic_directory`.

Validation can be SAMPLED (``--validate-output sample``): every resource of the first
``FULL_FIRST`` patients (of each part of an output written in parts), then every resource of
every ``SAMPLE_EVERY``-th patient; the rule is stated in the Bulk Data manifest. privsynth
builds every resource of a type by the same code, so a bug that makes one invalid shows in
the first patients that have it; a rare shape may pass unchecked, which is why ``all`` (every
resource) is the default.
"""

from __future__ import annotations

import multiprocessing
import os
from collections import Counter, deque
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import IO, Any

import orjson

from privsynth.errors import OutputError

BATCH = 250  # patients per task
FULL_FIRST = 1_000  # sampled validation: every resource of the first patients ...
SAMPLE_EVERY = 10  # ... then every resource of every 10th patient
VALIDATION = ("all", "sample")
INLINE_BELOW = 2_000  # patients: below this, validating in this process is faster than starting workers

MAX_WORKERS = 8
_MODELS: dict[str, Any] = {}
_WORKERS = 1  # in process, unless use_workers() was called (the command line does)


def use_workers(n: int | None = None) -> None:
    """Validate large outputs in ``n`` worker processes (default: one per available core, at
    most 8). The calling program must guard its main code with ``if __name__ == "__main__":``."""
    global _WORKERS
    if n is None:
        try:
            n = len(os.sched_getaffinity(0))
        except AttributeError:  # not on Linux
            n = os.cpu_count() or 1
    _WORKERS = max(1, min(int(n), MAX_WORKERS))


def worker_count() -> int:
    """The number of validating processes a large output uses now (``PRIVSYNTH_WORKERS`` first)."""
    value = os.environ.get("PRIVSYNTH_WORKERS", "")
    if value.strip().isdigit():
        return max(1, min(int(value), MAX_WORKERS))
    return _WORKERS


class InvalidResourceError(RuntimeError):
    """privsynth built a resource its R4 model rejects (a bug in privsynth, not in the input)."""


def check(resource: dict[str, Any]) -> None:
    """Validate one resource with its fhir.resources R4B model; raise InvalidResourceError."""
    from fhir.resources.R4B import get_fhir_model_class
    from pydantic import ValidationError

    rtype = resource["resourceType"]
    cls = _MODELS.get(rtype)
    if cls is None:
        cls = _MODELS[rtype] = get_fhir_model_class(rtype)
    try:
        cls.model_validate(resource)
    except ValidationError as err:  # where and what kind, never the value (it may be a kept real one)
        where = "; ".join(f"{'.'.join(str(p) for p in e.get('loc', ()))}: {e.get('type')}" for e in err.errors()[:5])
        raise InvalidResourceError(f"privsynth built an invalid {rtype} ({err.error_count()} errors: {where})"
                                   ) from None


def to_bundle(resources: list[dict[str, Any]]) -> dict[str, Any]:
    """A transaction Bundle of one patient's resources with ``urn:uuid:`` references."""
    entries = []
    for r in resources:
        r = dict(r)
        for field in ("subject", "encounter"):
            if field in r:
                r[field] = _local(r[field])
        for field in ("target", "reasonReference"):  # a Provenance's targets, an Encounter's reasons
            if field in r:
                r[field] = [_local(ref) for ref in r[field]]
        entries.append({"fullUrl": f"urn:uuid:{r['id']}", "resource": r,
                        "request": {"method": "POST", "url": r["resourceType"]}})
    return {"resourceType": "Bundle", "type": "transaction", "entry": entries}


def _local(reference: dict[str, str]) -> dict[str, str]:
    """``Type/id`` as the ``urn:uuid:id`` of an entry of the same transaction."""
    return {"reference": "urn:uuid:" + reference["reference"].split("/", 1)[1]}


def _write_synced(path: Path, data: bytes) -> None:
    with open(path, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())


def validation_rule(validation: str) -> str:
    """What ``validation`` checks, in words (for the manifest)."""
    if validation == "all":
        return "every resource validated with its fhir.resources R4B model"
    return (f"sampled: every resource of the first {FULL_FIRST:,} patients (of each part of the output), then of "
            f"every {SAMPLE_EVERY}th patient, validated with its fhir.resources R4B model; the rest are built by the "
            "same code unchecked (--validate-output all checks every resource)")


Batch = list[tuple[str, list[dict[str, Any]], bool]]  # (patient id, resources, validate them)


def _batch(patients: Batch, bundle_dir: str | None) -> list[list[tuple[str, bytes]]]:
    """Validate a batch; Bundles are written here, NDJSON lines are returned (per patient)."""
    out: list[list[tuple[str, bytes]]] = []
    for patient_id, resources, validate in patients:
        if validate:
            for r in resources:
                check(r)
        if bundle_dir is not None:
            _write_synced(Path(bundle_dir) / f"{patient_id}.json", orjson.dumps(to_bundle(resources)))
            out.append([(r["resourceType"], b"") for r in resources])
        else:
            out.append([(r["resourceType"], orjson.dumps(r)) for r in resources])
    return out


class FhirSink:
    """Takes one patient's resources at a time; ``close()`` returns the count per type written."""

    def __init__(self, fhir_dir: Path, output_format: str, patients: int, workers: int | None = None,
                 suffix: str = "", validation: str = "all") -> None:
        if output_format not in ("ndjson", "bundle"):
            raise ValueError(f"unknown FHIR output format {output_format!r}")
        if validation not in VALIDATION:
            raise ValueError(f"unknown validation {validation!r}; allowed: {', '.join(VALIDATION)}")
        self.every = 1 if validation == "all" else SAMPLE_EVERY
        self.added = 0  # patients (and the Provenance) taken
        self.validated = 0  # resources validated
        self.dir = fhir_dir
        self.suffix = suffix  # NDJSON files of one part of an output: <Type><suffix>.ndjson
        self.bundle_dir = str(fhir_dir) if output_format == "bundle" else None
        self.counts: Counter[str] = Counter()
        self.bundles = 0
        self._files: dict[str, IO[bytes]] = {}
        self._pending: deque[Future[list[list[tuple[str, bytes]]]]] = deque()
        self._batch: Batch = []
        if workers is None:
            workers = worker_count()
        self._workers = workers
        self._pool: ProcessPoolExecutor | None = None
        if workers > 1 and patients >= INLINE_BELOW:
            self._pool = ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("forkserver"))

    def add(self, patient_id: str, resources: list[dict[str, Any]], validate: bool = False) -> None:
        """One patient's resources (``validate``: check them even when validation is sampled)."""
        validate = validate or self.added < FULL_FIRST or self.added % self.every == 0
        self.added += 1
        self.validated += len(resources) if validate else 0
        self._batch.append((patient_id, resources, validate))
        if len(self._batch) >= BATCH:
            self._submit()

    def _submit(self) -> None:
        batch, self._batch = self._batch, []
        if not batch:
            return
        if self._pool is None:
            self._take(_batch(batch, self.bundle_dir))
            return
        self._pending.append(self._pool.submit(_batch, batch, self.bundle_dir))
        while len(self._pending) > 2 * self._workers:
            self._take(self._result(self._pending.popleft()))

    @staticmethod
    def _result(future: Future[list[list[tuple[str, bytes]]]]) -> list[list[tuple[str, bytes]]]:
        try:
            return future.result()
        except BrokenProcessPool:
            raise OutputError("a process validating the FHIR output stopped (out of memory?); no output was "
                              "written. Run again with PRIVSYNTH_WORKERS=1 to validate in one process") from None

    def _take(self, results: list[list[tuple[str, bytes]]]) -> None:
        for lines in results:
            self.bundles += self.bundle_dir is not None
            for rtype, line in lines:
                self.counts[rtype] += 1
                if self.bundle_dir is None:
                    fh = self._files.get(rtype)
                    if fh is None:
                        fh = self._files[rtype] = open(self.dir / f"{rtype}{self.suffix}.ndjson", "wb")  # noqa: SIM115
                    fh.write(line)
                    fh.write(b"\n")

    def close(self) -> Counter[str]:
        """Finish every batch, sync and close the files; the count of resources per type."""
        try:
            self._submit()
            while self._pending:
                self._take(self._result(self._pending.popleft()))
            for fh in self._files.values():
                fh.flush()
                os.fsync(fh.fileno())
        finally:
            self.abort()
        return self.counts

    def abort(self) -> None:
        """Stop the workers and close the files (the caller removes the directory)."""
        for future in self._pending:
            future.cancel()
        self._pending.clear()
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
        for fh in self._files.values():
            fh.close()
        self._files.clear()
