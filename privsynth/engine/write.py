"""Synthetic output written in parts, in parallel, by an engine.

The fitted model is small; sampling and writing a million patients is not. The rows are
split into ``parts``; part ``k`` samples its rows from the model and writes them (FHIR
NDJSON files ``<Type>.<k>.ndjson``, one Bundle per patient, or OMOP tables keyed from 1)
on an engine's worker, with
its own post-processing seed derived from the recorded one (:func:`part_seed`: the whole
output is reproducible from the one seed in ``privacy.json``), MRNs from its own block
(no two parts give two patients one MRN) and every resource validated with its R4 model as
in one process. The driver then writes the Bulk Data manifest listing every part's files,
joins OMOP's tables (shifting each part's keys past the parts before it) and the parts'
``patients.csv``. It is all post-processing of the DP model: nothing
here reads the real data.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from privsynth.atomic import write_bytes
from privsynth.engine.protocol import Engine
from privsynth.formats import Output, SinkContext, bulk_manifest
from privsynth.generator.synthesizer import Synthesizer
from privsynth.records import versions, write_fhir_output

IN_PARTS = ("ndjson", "bundle", "omop")  # formats written in parts (every record format)
MIN_PART = 1_000  # patients: smaller parts cost more to start than they save


def part_seed(seed: int, part: int) -> int:
    """Part ``part``'s post-processing seed, derived from the recorded ``seed``.

    >>> part_seed(7, 0) == part_seed(7, 0) != part_seed(7, 1)
    True
    """
    return int(np.random.SeedSequence([seed, part]).generate_state(1, np.uint64)[0] >> np.uint64(12))


def part_count(rows: int, parallelism: int) -> int:
    """How many parts ``rows`` synthetic patients are written in: one per task the engine runs
    at once (each part pays sampling's fixed cost once), and none under MIN_PART patients."""
    return max(1, min(parallelism, rows // MIN_PART))


@dataclass(frozen=True)
class PartTask:
    synth: Synthesizer
    rows: int
    part: int
    parts: int
    output: Output  # its seed is the part's
    base: str


@dataclass(frozen=True)
class PartResult:
    rows: int
    counts: Counter[str]
    placement: Counter[str]


def write_part(task: PartTask) -> PartResult:
    """Sample and write one part (on a worker)."""

    sample = task.synth.sample(task.rows, rng=task.output.seed)
    placement: Counter[str] = Counter()
    counts = write_fhir_output(Path(task.base), sample, task.synth.schema, task.output, None, placement,
                               part=(task.part, task.parts))
    return PartResult(len(sample), counts, placement)


def write_in_parts(base: Path, synth: Synthesizer, rows: int, output: Output, engine: Engine, parts: int,
                   placement: Counter[str] | None = None) -> tuple[int, Counter[str]]:
    """Sample ``rows`` synthetic patients and write them under ``base`` in ``parts`` parts on
    ``engine``; the patients written and the resources per type."""

    sizes = [len(chunk) for chunk in np.array_split(np.arange(rows), parts)]
    tasks = [PartTask(synth, n, k, parts, replace(output, seed=part_seed(output.seed, k)), str(base))
             for k, n in enumerate(sizes)]
    results = engine.map(write_part, tasks)
    counts: Counter[str] = Counter()
    for r in results:
        counts.update(r.counts)
        if placement is not None:
            placement.update(r.placement)
    if output.format == "ndjson":
        context = SinkContext(rows, output.now, output.epsilon, output.delta, synth.schema.reference,
                              versions().get("privsynth", "unknown"), output.seed, output.release_id,
                              validation=output.validation)
        bulk_manifest(base / "fhir", context, [(rtype, f"{rtype}.{k:04d}.ndjson", n)
                                               for k, r in enumerate(results) for rtype, n in r.counts.items()])
    if output.format == "omop":  # keys numbered per part; the join shifts them (privsynth.omop.output)
        from privsynth.omop.output import join_omop_parts

        counts = join_omop_parts(base / "omop", parts, output.now, output.epsilon, output.delta,
                                 versions().get("privsynth", "unknown"))
    _join_tables(base, parts)
    return sum(r.rows for r in results), counts


def _join_tables(base: Path, parts: int) -> None:
    """The parts' ``patients.<k>.csv`` as one ``patients.csv`` (one header)."""
    chunks = []
    for k in range(parts):
        path = base / f"patients.{k:04d}.csv"
        text = path.read_bytes()
        chunks.append(text if k == 0 else text.split(b"\n", 1)[1])
        path.unlink()
    write_bytes(base / "patients.csv", b"".join(chunks))
