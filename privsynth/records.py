"""The synthetic rows as records: FHIR R4 (NDJSON or Bundles) or OMOP, and ``patients.csv``.

One writer (:class:`privsynth.fhir.write.FhirWriter`) makes every record; the formats of
:mod:`privsynth.formats` write them. The whole-output run (:mod:`privsynth.pipeline`) and a
part of an output written in parts (:mod:`privsynth.engine.write`) both call
:func:`write_fhir_output`, so a part's files are what the whole run writes for its rows.
"""

from __future__ import annotations

import platform
from collections import Counter
from collections.abc import Iterator
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from privsynth.atomic import write_bytes
from privsynth.fhir.record import tenths
from privsynth.fhir.write import FhirWriter, identity_row
from privsynth.formats import Output, SinkContext
from privsynth.formats import get as get_format
from privsynth.progress import Progress
from privsynth.schema.model import Schema


def versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for pkg in ("privsynth", "opendp", "numpy", "pandas", "scipy", "scikit-learn", "fhir.resources", "faker"):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            out[pkg] = "unknown"
    return out


def fhir_records(sample: pd.DataFrame, schema: Schema, seed: int) -> Iterator[list[dict[str, Any]]]:
    """Each row of ``sample`` as the FHIR resources :func:`write_fhir_output` writes for it
    (the same writer, in memory; nothing is written)."""
    for _who, _facts, resources in FhirWriter(schema, seed).patients(sample):
        yield resources


def write_fhir_output(tmp: Path, sample: pd.DataFrame, schema: Schema, output: Output,
                      progress: Progress | None = None, placement: Counter[str] | None = None,
                      part: tuple[int, int] | None = None) -> Counter[str]:
    """The records of ``sample`` in ``output.format`` (a registered format of
    :mod:`privsynth.formats`: FHIR NDJSON or Bundles, OMOP, or none) and ``patients.csv``
    (fresh identifiers and the synthetic row), all from one writer's typed records.
    ``part`` (k, K): this is part k of K of an output written in parts (its files and its
    ``patients.<k>.csv`` carry the part's number; :mod:`privsynth.engine.write`)."""
    writer = FhirWriter(schema, output.seed, block=part or (0, 1))
    identity_rows: list[dict[str, Any]] = []
    total = len(sample)
    context = SinkContext(total, output.now, output.epsilon, output.delta, schema.reference,
                          versions().get("privsynth", "unknown"), output.seed, output.release_id,
                          None if part is None else part[0], output.validation)
    sink = get_format(output.format).open(tmp, context)
    try:
        for k, (who, facts, record) in enumerate(writer.records(sample)):
            identity_rows.append({**identity_row(who, writer.kinds), "birth_date": facts["birth_date"]})
            sink.add(who, record)
            if progress is not None and (k % 50 == 0 or k == total - 1):
                progress("write records", k + 1, total)
        counts = sink.close()
    finally:
        sink.abort()
    if placement is not None and writer.history is not None:
        placement.update(writer.history.stats)
    shown = sample.reset_index(drop=True)
    if output.format != "csv":  # the table says what the FHIR says: numbers as written, to a tenth
        for col in schema.view_columns:
            if col.kind == "numeric" and col.name in shown.columns:
                values = pd.to_numeric(shown[col.name], errors="coerce").to_numpy(dtype=float, na_value=np.nan)
                shown[col.name] = pd.array(tenths(values), dtype="Float64")  # NaN stays NaN
    table = pd.concat([pd.DataFrame(identity_rows), shown], axis=1)
    write_bytes(tmp / ("patients.csv" if part is None else f"patients.{part[0]:04d}.csv"),
                table.to_csv(index=False).encode())
    return counts
