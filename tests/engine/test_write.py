"""Synthetic output written in parts on an engine (issue 23): every part's files in one Bulk
Data manifest, ids and MRNs unique across parts, every reference resolving, one
patients.csv, and the whole run reproducible from the one recorded seed."""

from __future__ import annotations

import json
from collections import Counter

import pytest

from privsynth.engine.write import part_seed
from privsynth.identity import IdentityFactory


def test_parts_draw_mrns_from_disjoint_blocks_and_one_part_draws_as_before():
    parts = [IdentityFactory(part_seed(3, k), block=(k, 4)) for k in range(4)]
    mrns = [[f.make("female", "MA").mrn for _ in range(300)] for f in parts]
    for k, drawn in enumerate(mrns):
        assert all(int(m[3:]) % 4 == k and 10**7 <= int(m[3:]) < 10**8 for m in drawn)
    assert len({m for drawn in mrns for m in drawn}) == 1200
    import numpy as np

    whole = IdentityFactory(11)  # a whole output (one block) draws exactly what earlier versions drew
    rng = np.random.default_rng(11)
    first = whole.make("male", "MA").mrn
    assert first == f"SYN{rng.integers(10**7, 10**8)}"


@pytest.fixture(scope="module")
def written(core_schema, tmp_path_factory):
    from privsynth.example.hospital import write_example_export
    from privsynth.pipeline import synthesize

    work = tmp_path_factory.mktemp("parts")
    export = write_example_export(work / "export", 400, 2)
    result = synthesize([export], core_schema, work / "out", epsilon=1.0, rows=2000, seed=5, engine="duckdb",
                        shards=2, workers=2)
    return result, work / "out"


def test_a_sharded_run_writes_every_part_in_one_manifest(written):
    result, out = written
    assert result.patients_out == 2000
    manifest = json.loads((out / "fhir" / "manifest.json").read_text())
    listed = {entry["url"]: entry for entry in manifest["output"]}
    files = {p.name for p in (out / "fhir").glob("*.ndjson")}
    assert set(listed) == files and any(".0000." in f for f in files) and any(".0001." in f for f in files)
    per_type: Counter[str] = Counter()
    ids: set[str] = set()
    mrns: list[str] = []
    referenced: list[str] = []
    for name, entry in listed.items():
        lines = (out / "fhir" / name).read_text().splitlines()
        assert len(lines) == entry["count"] and all(name.startswith(entry["type"] + ".") for _ in lines)
        per_type[entry["type"]] += len(lines)
        for line in lines:
            r = json.loads(line)
            ids.add(f"{r['resourceType']}/{r['id']}")
            if r["resourceType"] == "Patient":
                mrns += [i["value"] for i in r.get("identifier", []) if "mrn" in i.get("system", "").lower()]
            if "subject" in r:
                referenced.append(r["subject"]["reference"])
    assert sum(per_type.values()) == len(ids)  # no id written twice, across parts
    assert dict(per_type) == {k: v for k, v in result.resources_out.items()}
    assert per_type["Patient"] == 2000 and len(set(mrns)) == len(mrns) == 2000
    assert all(ref in ids for ref in referenced)  # every subject resolves, whichever part wrote it
    table = (out / "patients.csv").read_text().splitlines()
    assert len(table) == 2001 and not list(out.glob("patients.0*.csv"))
    assert json.loads((out / "privacy.json").read_text())["seed"] == 5


def test_the_same_seed_writes_the_same_parts(written, core_schema, tmp_path):
    from privsynth.engine.write import PartTask, write_part
    from privsynth.formats import Output
    from privsynth.generator.synthesizer import Synthesizer

    _, out = written
    synth = Synthesizer.load(out / "model", core_schema)
    output = Output("ndjson", part_seed(5, 1), "2026-01-01T00:00:00+00:00", 1.0, 1e-6)
    for run in ("a", "b"):
        (tmp_path / run).mkdir()
        write_part(PartTask(synth, 50, 1, 2, output, str(tmp_path / run)))
    a = sorted(p.name for p in (tmp_path / "a" / "fhir").iterdir())
    assert a == sorted(p.name for p in (tmp_path / "b" / "fhir").iterdir()) and "Patient.0001.ndjson" in a
    for name in a:
        assert (tmp_path / "a" / "fhir" / name).read_bytes() == (tmp_path / "b" / "fhir" / name).read_bytes()
