"""Shared fixtures: the real input data in ../shared/data and one synthesis run on it."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("PRIVSYNTH_SHARED_DATA", ROOT.parent / "shared" / "data"))
BUNDLES = SHARED / "fhir" / "synthea-r4-smart-2019" / "bundles"
FHIR_2019 = SHARED / "fhir" / "synthea-r4-smart-2019"
NDJSON = SHARED / "fhir" / "synthea-bulk-ndjson-kansas-2023"
SCHEMA = ROOT / "schemas" / "patient-core.yaml"


def need_shared() -> None:
    if not BUNDLES.is_dir():
        pytest.skip(f"shared data not found at {SHARED} (set PRIVSYNTH_SHARED_DATA)")


@pytest.fixture(scope="session")
def core_schema():
    from privsynth.schema import load_schema

    return load_schema(SCHEMA)


@pytest.fixture(scope="session")
def timeline_schema():
    from privsynth.schema import load_schema

    return load_schema(SCHEMA.parent / "patient-timeline.yaml")


@pytest.fixture(scope="session")
def synthea_view(core_schema):
    need_shared()
    from privsynth.fhir.view import build_patient_view

    return build_patient_view([FHIR_2019], core_schema)


@pytest.fixture(scope="session")
def synthea_release(core_schema, tmp_path_factory):
    """One full `synthesize` run on the 200 shared Bundles at epsilon 1."""
    need_shared()
    from privsynth.pipeline import synthesize

    out = tmp_path_factory.mktemp("release") / "out"
    result = synthesize([FHIR_2019], core_schema, out, epsilon=1.0, seed=7)
    return result
