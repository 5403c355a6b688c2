"""Find FHIR R4 input files and stream their resources with a location for every one.

Accepted: per-patient (or any) Bundles and single resources as ``.json`` / ``.json.gz``;
Bulk Data NDJSON as ``<ResourceType>[.<anything>].ndjson[.gz]``. Files of other names in
an input directory (manifests, READMEs, a bulk export's ``log.ndjson``) are skipped and
counted. Parsing uses orjson; full fhir.resources validation is optional.
"""

from __future__ import annotations

import gzip
import re
import zlib
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from privsynth.errors import InputError

JSON_SUFFIXES = (".json", ".json.gz")
NDJSON_SUFFIXES = (".ndjson", ".ndjson.gz")
_NDJSON_NAME = re.compile(r"^([A-Z][A-Za-z]+)(\..*)?\.ndjson(\.gz)?$")


@dataclass(frozen=True)
class Location:
    """Where a resource was read: file, line (NDJSON) or bundle entry index."""

    file: str
    line: int | None = None
    entry: int | None = None

    def describe(self, field_name: str | None = None) -> str:
        text = self.file
        if self.line is not None:
            text += f":{self.line}"
        if self.entry is not None:
            text += f": entry[{self.entry}]"
        if field_name:
            text += f": field '{field_name}'"
        return text


@dataclass
class ReadStats:
    """What was read, what was skipped and why (counts only, never values)."""

    files_read: int = 0
    files_skipped: list[str] = field(default_factory=list)
    resources: Counter[str] = field(default_factory=Counter)
    errors_skipped: Counter[str] = field(default_factory=Counter)


def discover(inputs: list[str | Path], stats: ReadStats) -> list[Path]:
    """Expand files and directories into the list of FHIR files to read, sorted."""
    if not inputs:
        raise InputError("no input given: name FHIR files or directories")
    files: list[Path] = []
    for raw in inputs:
        path = Path(raw)
        if path.is_dir():
            found = sorted(p for p in path.rglob("*") if p.is_file())
            fhir = [p for p in found if _kind(p) is not None]
            stats.files_skipped.extend(str(p) for p in found if _kind(p) is None)
            if not fhir:
                raise InputError(
                    f"{path}: no FHIR files found (expected *.json, *.json.gz for Bundles or "
                    "<ResourceType>.ndjson[.gz] for Bulk Data)"
                )
            files.extend(fhir)
        elif path.is_file():
            if _kind(path) is None:
                raise InputError(
                    f"{path}: not a FHIR file name; use .json/.json.gz (Bundle or resource) or "
                    "<ResourceType>.ndjson[.gz] (Bulk Data)"
                )
            files.append(path)
        else:
            raise InputError(f"{path}: no such file or directory")
    return files


def _kind(path: Path) -> str | None:
    name = path.name
    if name == "manifest.json":  # a Bulk Data export manifest, not a resource
        return None
    if name.endswith(NDJSON_SUFFIXES):
        return "ndjson" if _NDJSON_NAME.match(name) else None
    if name.endswith(JSON_SUFFIXES):
        return "json"
    return None


def _read_bytes(path: Path) -> bytes:
    try:
        if path.name.endswith(".gz"):
            with gzip.open(path, "rb") as fh:
                return fh.read()
        return path.read_bytes()
    except (OSError, EOFError, zlib.error) as exc:
        why = getattr(exc, "strerror", None) or "corrupt or truncated gzip data"
        raise InputError(f"{path}: cannot read file ({why})") from None


def _check_utf8(data: bytes, path: Path) -> None:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise InputError(
            f"{path}:{line}: not UTF-8 (invalid byte at offset {exc.start}); FHIR JSON must be "
            "UTF-8 encoded: re-export or convert the file"
        ) from None


def _decode(text: bytes, path: Path, line_offset: int = 0) -> Any:
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        line = line_offset + (exc.lineno or 1)
        kind = str(exc.msg).split(":")[0] if exc.msg else "syntax error"
        raise InputError(
            f"{path}:{line}: malformed JSON ({kind}, column {exc.colno}); is the file truncated?"
        ) from None


def iter_resources(
    files: list[Path], stats: ReadStats, on_error: str = "raise",
    progress: Any = None,
) -> Iterator[tuple[dict[str, Any], Location]]:
    """Yield ``(resource, location)`` for every resource in the files.

    Bundles are unpacked (their ``fullUrl`` is attached as ``"_fullUrl"``). With
    ``on_error="skip"`` a bad file or line is counted in ``stats.errors_skipped``
    instead of stopping the run.
    """
    for path in files:
        try:
            data = _read_bytes(path)
            _check_utf8(data, path)
            if _kind(path) == "ndjson":
                yield from _ndjson(data, path, stats, on_error)
            else:
                yield from _json(data, path, stats)
            stats.files_read += 1
        except InputError as exc:
            if on_error != "skip":
                raise
            stats.errors_skipped[reason(exc)] += 1
        if progress is not None:
            progress(1)


def reason(exc: InputError) -> str:
    """The kind of an input error without its location: a key for counting skipped errors."""
    parts = [p for p in str(exc).split(": ")
             if not (p.startswith(("/", "entry[")) or ".json" in p or ".ndjson" in p)]
    text = ": ".join(parts) if parts else str(exc)
    return text.split(" (")[0].split("; ")[0]


def _json(data: bytes, path: Path, stats: ReadStats) -> Iterator[tuple[dict[str, Any], Location]]:
    doc = _decode(data, path)
    loc = Location(str(path))
    _require_resource(doc, loc)
    if doc["resourceType"] != "Bundle":
        stats.resources[doc["resourceType"]] += 1
        yield doc, loc
        return
    entries = doc.get("entry", [])
    if not isinstance(entries, list):
        raise InputError(f"{loc.describe('Bundle.entry')}: must be a list")
    for i, entry in enumerate(entries):
        eloc = Location(str(path), entry=i)
        if not isinstance(entry, dict) or "resource" not in entry:
            continue
        resource = entry["resource"]
        _require_resource(resource, eloc)
        full_url = entry.get("fullUrl")
        if isinstance(full_url, str):
            resource = dict(resource)
            resource["_fullUrl"] = full_url
        stats.resources[resource["resourceType"]] += 1
        yield resource, eloc


def _ndjson(
    data: bytes, path: Path, stats: ReadStats, on_error: str
) -> Iterator[tuple[dict[str, Any], Location]]:
    for number, raw in enumerate(data.split(b"\n"), start=1):
        if not raw.strip():
            continue
        loc = Location(str(path), line=number)
        try:
            resource = _decode(raw, path, number - 1)
            _require_resource(resource, loc)
        except InputError as exc:
            if on_error != "skip":
                raise
            stats.errors_skipped[reason(exc)] += 1
            continue
        stats.resources[resource["resourceType"]] += 1
        yield resource, loc


_KNOWN: dict[str, bool] = {}


def is_r4_type(name: str) -> bool:
    """Whether ``name`` is a resource type of the R4 models."""
    if name not in _KNOWN:
        from privsynth.schema.path import model_class

        _KNOWN[name] = name.isalpha() and model_class(name) is not None
    return _KNOWN[name]


def _require_resource(doc: Any, loc: Location) -> None:
    if not isinstance(doc, dict) or "resourceType" not in doc:
        raise InputError(
            f"{loc.describe('resourceType')}: not a FHIR resource (a JSON object with "
            "'resourceType' is expected)"
        )
    rtype = doc["resourceType"]
    if not isinstance(rtype, str) or not is_r4_type(rtype):
        raise InputError(
            f"{loc.describe('resourceType')}: not a FHIR R4 resource type; check the export "
            "is FHIR R4 JSON"
        )


def validate_resource(resource: dict[str, Any], loc: Location) -> None:
    """Fully validate one resource against the fhir.resources R4B model."""
    from pydantic import ValidationError

    from privsynth.schema.path import model_class

    clean = {k: v for k, v in resource.items() if k != "_fullUrl"}
    cls = model_class(resource["resourceType"])
    try:
        cls.model_validate(clean)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first.get("loc", ()))
        raise InputError(
            f"{loc.describe(resource['resourceType'] + ('.' + where if where else ''))}: "
            f"fails R4 validation ({first.get('type', 'invalid')}); "
            f"{len(exc.errors())} problem(s) in this resource"
        ) from None
