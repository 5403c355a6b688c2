"""Which patient a clinical resource belongs to: its ``subject``, ``patient`` or
``beneficiary`` reference, normalised to a key comparable with Patient keys.

A ``urn:uuid:`` reference resolves within its own Bundle only (it names that Bundle's entry
with the same ``fullUrl``); ``Patient/<id>`` and absolute ``.../Patient/<id>`` references
resolve by Patient.id.
"""

from __future__ import annotations

from typing import Any

PATIENT_FIELDS = ("subject", "patient", "beneficiary")


def patient_ref(resource: dict[str, Any]) -> str | None:
    """The resource's patient reference; "" when it has one that cannot be read as a single
    reference, None when it has none."""
    for name in PATIENT_FIELDS:
        ref = resource.get(name)
        if isinstance(ref, dict):
            value = ref.get("reference")
            return value if isinstance(value, str) else ""
        if isinstance(ref, list):  # e.g. R5 shapes or odd exports
            return ""
    return None


def ref_key(ref: str, file: str) -> str:
    """Normalise a reference to a key comparable with Patient keys. A ``urn:uuid:`` reference
    resolves within its own Bundle (file) only: the same uuid in another Bundle is another
    resource."""
    if ref.startswith("urn:uuid:"):
        return f"{file}#{ref}"
    if "/Patient/" in ref:
        ref = "Patient/" + ref.rsplit("/Patient/", 1)[1]
    if ref.startswith("Patient/"):
        return "Patient/" + ref[len("Patient/") :].split("/_history", 1)[0]
    return ref
