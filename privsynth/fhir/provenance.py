"""The Provenance of a synthetic output: how it was made (software, version, epsilon, delta,
release), for every Patient it holds. Marked synthetic like every resource privsynth writes."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

import numpy as np

from privsynth.fhir.instant import instant
from privsynth.fhir.record import SYNTHETIC

DP_EXTENSION = "urn:privsynth:differential-privacy"
DATA_OPERATION = "http://terminology.hl7.org/CodeSystem/v3-DataOperation"
PARTICIPANT = "http://terminology.hl7.org/CodeSystem/provenance-participant-type"


def provenance_id(seed: int, part: int = 0) -> str:
    """A fresh id from the post-processing seed (reproducible with it, like every synthetic id)."""
    return str(uuid.UUID(bytes=np.random.default_rng([seed, 7, part]).bytes(16), version=4))


def provenance(resource_id: str, patients: list[str], now: str, epsilon: float, delta: float, version: str,
               release_id: str | None) -> dict[str, Any]:
    """One Provenance naming ``patients`` as what privsynth created, with the DP parameters."""
    facts: list[dict[str, Any]] = [{"url": "epsilon", "valueDecimal": epsilon}, {"url": "delta", "valueDecimal": delta},
                                   {"url": "privacyUnit", "valueString": "patient"}]
    if release_id is not None:
        facts.append({"url": "release", "valueString": release_id})
    return {
        "resourceType": "Provenance", "id": resource_id, "meta": {"security": [dict(SYNTHETIC)]},
        "extension": [{"url": DP_EXTENSION, "extension": facts}],
        "target": [{"reference": f"Patient/{p}"} for p in patients],
        "recorded": instant(dt.datetime.fromisoformat(now)),  # canonical: UTC, "Z"
        "activity": {"coding": [{"system": DATA_OPERATION, "code": "CREATE", "display": "create"}],
                     "text": "synthesized from a differentially private model"},
        "reason": [{"coding": [dict(SYNTHETIC)], "text": "synthetic data: not real patients"}],
        "agent": [{"type": {"coding": [{"system": PARTICIPANT, "code": "assembler", "display": "Assembler"}]},
                   "who": {"display": f"privsynth {version}"}}],
    }
