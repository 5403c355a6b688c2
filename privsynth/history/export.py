"""Reading a FHIR R4 export for charts: each patient's resources, grouped by patient.

:func:`iter_patients` reads FHIR files or directories (Bulk Data NDJSON or per-patient
transaction Bundles, optionally gzipped) and yields one patient's resources at a time,
keeping only the elements a :class:`~privsynth.history.chart.Chart` reads. :func:`ref_id`
and :func:`aliases` resolve the references that tie a resource to its patient and encounter.
"""

from __future__ import annotations

import gzip
from collections import defaultdict
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import orjson

Resource = dict[str, Any]

RESOURCE_TYPES = frozenset({"Patient", "Encounter", "Condition", "Observation", "MedicationRequest", "Procedure"})

# The elements the flags read; iter_patients keeps only these (a 6,000-patient export then
# fits in a few hundred MB).
_KEEP = frozenset({
    "resourceType", "id", "_fullUrl", "subject", "patient", "encounter", "code", "medicationCodeableConcept",
    "class", "type", "period", "reasonCode", "reasonReference", "onsetDateTime", "onsetPeriod", "recordedDate",
    "effectiveDateTime", "effectivePeriod", "issued", "valueQuantity", "component", "authoredOn",
    "performedDateTime", "performedPeriod", "birthDate", "gender", "deceasedDateTime", "deceasedBoolean",
})


def _slim(resource: Resource) -> Resource:
    return {k: v for k, v in resource.items() if k in _KEEP}


def ref_id(reference: Any) -> str | None:
    """The id a reference points at: ``Patient/<id>``, ``urn:uuid:<id>`` or an absolute URL
    (``.../Patient/<id>/_history/2``) give ``<id>``; a conditional reference gives None.

    >>> ref_id("Patient/p1"), ref_id("urn:uuid:ab-12"), ref_id("http://x/fhir/Encounter/e9/_history/2")
    ('p1', 'ab-12', 'e9')
    """
    if isinstance(reference, dict):
        reference = reference.get("reference")
    if not isinstance(reference, str) or not reference or "?" in reference:
        return None
    if reference.startswith(("urn:uuid:", "urn:oid:")):
        return reference.split(":", 2)[2]
    parts = reference.rstrip("/").split("/")
    if "_history" in parts:
        parts = parts[: parts.index("_history")]
    return parts[-1] or None


def _patient_ref(resource: Resource) -> str | None:
    return ref_id(resource.get("subject") or resource.get("patient"))


def aliases(resource: Resource) -> set[str]:
    """The ids a reference to ``resource`` may use: its id and the id of its Bundle fullUrl."""
    out = {str(resource["id"])} if resource.get("id") else set()
    full = ref_id(resource.get("_fullUrl"))
    if full:
        out.add(full)
    return out


def _files(paths: str | Path | Iterable[str | Path]) -> list[Path]:
    from privsynth.fhir.read import ReadStats, discover

    items: list[str | Path] = [paths] if isinstance(paths, str | Path) else list(paths)
    return discover(items, ReadStats())


def _load(path: Path) -> bytes:
    if path.name.endswith(".gz"):
        with gzip.open(path, "rb") as fh:
            return fh.read()
    return path.read_bytes()


def _lines(path: Path) -> Iterator[bytes]:
    opener: Any = gzip.open if path.name.endswith(".gz") else open
    with opener(path, "rb") as fh:
        yield from fh


def _bundle_resources(doc: Any) -> list[Resource]:
    if not isinstance(doc, dict):
        return []
    if doc.get("resourceType") != "Bundle":
        return [_slim(doc)] if doc.get("resourceType") in RESOURCE_TYPES else []
    out = []
    for entry in doc.get("entry") or []:
        resource = entry.get("resource") if isinstance(entry, dict) else None
        if not isinstance(resource, dict) or resource.get("resourceType") not in RESOURCE_TYPES:
            continue
        resource = _slim(resource)
        full = entry.get("fullUrl")
        if isinstance(full, str) and ref_id(full) != resource.get("id"):
            resource["_fullUrl"] = full  # references to it use the fullUrl (privsynth.fhir.read does the same)
        out.append(resource)
    return out


def iter_patients(paths: str | Path | Iterable[str | Path]) -> Iterator[list[Resource]]:
    """Each patient's resources (the Patient first), from FHIR files or directories.

    Per-patient Bundles (``*.json[.gz]``, one Patient whose resources all point at it) are
    yielded as they are read. Everything else (Bulk Data ``<Type>[.<n>].ndjson[.gz]``,
    multi-patient Bundles) is grouped by ``subject`` / ``patient`` reference
    (``Patient/<id>``, ``urn:uuid:<id>``) and yielded at the end. Resources of other types,
    and resources of patients with no Patient resource, are left out. Only the elements the
    flags read are kept.
    """
    # resources waiting for their patient are kept as compact JSON (a third of their size as dicts)
    pending: dict[str, list[bytes]] = defaultdict(list)
    patients: list[Resource] = []

    def hold(resource: Resource) -> None:
        if resource["resourceType"] == "Patient":
            patients.append(resource)
        else:
            key = _patient_ref(resource)
            if key is not None:
                # copied: orjson's own output keeps a 4 KiB buffer per resource
                pending[key].append(bytes(bytearray(orjson.dumps(resource))))

    for path in _files(paths):
        if path.name.endswith((".ndjson", ".ndjson.gz")):
            for line in _lines(path):
                if not line.strip():
                    continue
                resource = orjson.loads(line)
                if isinstance(resource, dict) and resource.get("resourceType") in RESOURCE_TYPES:
                    hold(_slim(resource))
            continue
        resources = _bundle_resources(orjson.loads(_load(path)))
        own = [r for r in resources if r["resourceType"] == "Patient"]
        if len(own) == 1:
            names = aliases(own[0])
            if all(_patient_ref(r) in names for r in resources if r is not own[0]):
                yield [own[0]] + [r for r in resources if r is not own[0]]
                continue
        for resource in resources:
            hold(resource)
    for patient in patients:
        group = [patient]
        for name in sorted(aliases(patient)):
            group.extend(orjson.loads(raw) for raw in pending.pop(name, ()))
        yield group
