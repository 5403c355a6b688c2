"""Output formats of a FHIR schema: each writes the same typed synthetic records.

A format is a name, a one-line summary and ``open(base, context) -> RecordSink``; a sink takes
one patient's :class:`~privsynth.fhir.record.Record` at a time (``add``), and ``close`` returns
what it wrote (counts per resource type or table). ``abort`` stops it after a failure (the
caller removes the directory). Register a new one with :func:`register`; the CLI's
``--format`` choices and :class:`privsynth.run.RunSpec` read the registry.

Built in: ``ndjson`` (FHIR Bulk Data: a file per resource type and a manifest), ``bundle``
(a FHIR Bundle per patient), ``omop`` (OMOP CDM v5.4 tables, :mod:`privsynth.omop`) and
``csv`` (only the patient table every format writes beside its records).
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from privsynth.atomic import write_bytes
from privsynth.fhir.output import FhirSink, validation_rule
from privsynth.fhir.provenance import provenance, provenance_id
from privsynth.fhir.record import Record
from privsynth.identity import Identity


@dataclass(frozen=True)
class Output:
    """How synthetic records are written: the format, the post-processing seed (identities,
    dates, ids), the run's time, the model's DP parameters, and the release they belong to
    (None for synthesize, or a sample of a model that was not released)."""

    format: str
    seed: int
    now: str
    epsilon: float
    delta: float
    release_id: str | None = None
    validation: str = "all"  # FHIR: every resource validated, or a stated sample (privsynth.fhir.output)


@dataclass(frozen=True)
class SinkContext:
    """What a sink may need besides the records: how many will come, the run's time and DP
    parameters (for manifests), the reference date of the export (OMOP's observation
    periods end there) and the package version."""

    patients: int
    now: str
    epsilon: float
    delta: float
    reference: object  # a datetime.date
    version: str
    seed: int = 0  # the post-processing seed (ids of what the sink adds)
    release_id: str | None = None  # a release's id (None for synthesize and sample)
    part: int | None = None  # output written in parts (privsynth.engine.write): this part's number
    validation: str = "all"  # FHIR output: every resource validated, or a stated sample


class RecordSink(Protocol):
    def add(self, who: Identity, record: Record) -> None: ...

    def close(self) -> Counter[str]: ...

    def abort(self) -> None: ...


@dataclass(frozen=True)
class Format:
    name: str
    summary: str
    open: Callable[[Path, SinkContext], RecordSink]


_FORMATS: dict[str, Format] = {}


def register(fmt: Format) -> Format:
    if fmt.name in _FORMATS and _FORMATS[fmt.name] is not fmt:
        raise ValueError(f"an output format named '{fmt.name}' is already registered")
    _FORMATS[fmt.name] = fmt
    return fmt


def formats() -> dict[str, Format]:
    return dict(_FORMATS)


def record_formats() -> tuple[str, ...]:
    """The formats that write records (synthesize and release; ``sample`` also takes ``csv``)."""
    return tuple(name for name in _FORMATS if name != "csv")


def get(name: str) -> Format:
    try:
        return _FORMATS[name]
    except KeyError:
        raise ValueError(f"unknown output format '{name}'; allowed: {', '.join(_FORMATS)}") from None


def bulk_manifest(fhir_dir: Path, context: SinkContext, files: list[tuple[str, str, int]]) -> None:
    """The Bulk Data manifest of an NDJSON output: every file, its type and its count."""
    manifest = {
        "transactionTime": context.now, "request": "privsynth synthesize", "requiresAccessToken": False,
        "output": [{"type": rtype, "url": url, "count": n} for rtype, url, n in sorted(files)],
        "error": [],
        "extension": {"privsynth": {"synthetic": True, "epsilon": context.epsilon, "delta": context.delta,
                                    "validation": validation_rule(context.validation)}},
    }
    write_bytes(fhir_dir / "manifest.json", json.dumps(manifest, indent=2).encode())


class _Fhir:
    """FHIR R4 resources, validated, as NDJSON (with a Bulk Data manifest) or Bundles."""

    def __init__(self, base: Path, context: SinkContext, kind: str) -> None:
        self.dir = base / "fhir"
        self.dir.mkdir(parents=True, exist_ok=context.part is not None)
        self.kind, self.context = kind, context
        # a part is written by one worker of an engine: it validates in its own process
        self.suffix = "" if context.part is None else f".{context.part:04d}"
        self.sink = FhirSink(self.dir, kind, context.patients, workers=None if context.part is None else 1,
                             suffix=self.suffix, validation=context.validation)
        self.patients: list[str] = []

    def _provenance(self, patients: list[str], part: int) -> dict[str, Any]:
        c = self.context
        return provenance(provenance_id(c.seed, part), patients, c.now, c.epsilon, c.delta, c.version, c.release_id)

    def add(self, who: Identity, record: Record) -> None:
        resources = record.resources()
        if self.kind == "bundle":  # each Bundle is an output of its own: it says how it was made
            resources.append(self._provenance([who.id], len(self.patients) + 1))
        self.patients.append(who.id)
        self.sink.add(who.id, resources)

    def close(self) -> Counter[str]:
        if self.kind == "ndjson" and self.patients:  # one Provenance for the whole Bulk output
            self.sink.add("provenance", [self._provenance(self.patients, 0)], validate=True)
        counts = self.sink.close()
        if self.kind == "bundle":
            return Counter({"Bundle": self.sink.bundles})
        if self.context.part is None:  # parts: the engine writes one manifest listing every part's files
            bulk_manifest(self.dir, self.context, [(rtype, f"{rtype}.ndjson", counts[rtype]) for rtype in counts])
        return counts

    def abort(self) -> None:
        self.sink.abort()


class _Omop:
    """OMOP CDM v5.4 tables (CSV and Parquet) with their DDL."""

    def __init__(self, base: Path, context: SinkContext) -> None:
        import datetime as dt

        from privsynth.omop.sink import OmopMapper
        from privsynth.omop.vocabulary import Vocabulary

        assert isinstance(context.reference, dt.date)
        self.dir, self.context = base / "omop", context
        self.mapper = OmopMapper(Vocabulary.shipped(), context.reference)

    def add(self, who: Identity, record: Record) -> None:
        self.mapper.add(record)

    def close(self) -> Counter[str]:
        from privsynth.omop.output import write_omop, write_omop_part

        c = self.context
        if c.part is not None:  # one part of an output written in parts: joined by the driver
            return write_omop_part(self.dir, c.part, self.mapper.out)
        return write_omop(self.dir, self.mapper.out, c.now, c.epsilon, c.delta, c.version)

    def abort(self) -> None:
        pass


class _TableOnly:
    """Nothing but the patient table (written for every format by the caller)."""

    def __init__(self, base: Path, context: SinkContext) -> None:
        self.patients = 0

    def add(self, who: Identity, record: Record) -> None:
        self.patients += 1

    def close(self) -> Counter[str]:
        return Counter({"patients": self.patients})

    def abort(self) -> None:
        pass


register(Format("ndjson", "FHIR R4 Bulk Data: one NDJSON file per resource type and a manifest",
                lambda base, context: _Fhir(base, context, "ndjson")))
register(Format("bundle", "FHIR R4: one Bundle per patient", lambda base, context: _Fhir(base, context, "bundle")))
register(Format("omop", "OMOP CDM v5.4 tables (CSV and Parquet) with DDL for DuckDB and PostgreSQL", _Omop))
register(Format("csv", "the synthetic patient table only", _TableOnly))
