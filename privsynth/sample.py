"""Sampling from a shared model: what a recipient can do with a model directory alone.

A ``synthesize`` or ``release`` output directory holds the DP model (``model.json`` +
``model.npz``), the schema it was fitted with (``schema.yaml``, public) and its privacy
statement (``privacy.json``). :func:`sample` draws new synthetic patients from it --
optionally conditioned exactly on some columns (``--where diabetes=true``) -- and writes
them as ``synthesize`` would. It reads nothing else: no real data, no ledger. Sampling is
post-processing of the model's DP release, so it costs no privacy budget; every output says
so, with the model's (epsilon, delta).
"""

from __future__ import annotations

import datetime as dt
import json
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from privsynth.atomic import atomic_directory, write_bytes
from privsynth.errors import InputError, OutputError
from privsynth.generator.synthesizer import Synthesizer
from privsynth.progress import Progress
from privsynth.schema.model import CategoricalDomain, Column, NumericDomain, Schema

MODEL_FILES = ("model.json", "model.npz", "schema.yaml", "privacy.json")
_NEXT = re.compile(r",(?=\s*[A-Za-z_][A-Za-z0-9_]*\s*=)")  # a comma that starts the next COL=VALUE


@dataclass(frozen=True)
class SharedModel:
    """A model directory, opened: the schema, the fitted synthesizer and its privacy statement."""

    path: Path
    schema: Schema
    synthesizer: Synthesizer
    privacy: dict[str, Any]
    release_id: str | None


@dataclass(frozen=True)
class SampleResult:
    out: Path
    rows: int
    where: dict[str, str]
    files: dict[str, int]
    statement: dict[str, Any]


def open_model(path: str | Path) -> SharedModel:
    """Open a ``synthesize``/``release`` output directory (or its ``model.json``)."""
    from privsynth.schema.load import load_schema

    root = Path(path)
    if root.name == "model.json":
        root = root.parent
    if not root.is_dir():
        raise InputError(f"{root}: not a directory; give the output directory of 'synthesize' or 'release'")
    missing = [f for f in MODEL_FILES if not (root / f).is_file()]
    if missing:
        hint = (" (made before models carried their schema: run synthesize or release again)"
                if missing == ["schema.yaml"] else "")
        raise InputError(f"{root}: not a privsynth model directory; missing {', '.join(missing)}{hint}")
    schema = load_schema(root / "schema.yaml")
    synth = Synthesizer.load(root / "model", schema)
    try:
        privacy = json.loads((root / "privacy.json").read_text())
    except (OSError, ValueError) as exc:
        raise InputError(f"{root / 'privacy.json'}: unreadable ({exc.__class__.__name__})") from None
    release_id = None
    if (root / "manifest.json").is_file():
        try:
            release_id = json.loads((root / "manifest.json").read_text()).get("release_id")
        except ValueError:
            release_id = None
    return SharedModel(root, schema, synth, privacy, release_id)


def parse_where(items: list[str] | tuple[str, ...]) -> dict[str, str]:
    """``COL=VALUE[,COL=VALUE...]`` items (several may be given) as {column: value text}."""
    out: dict[str, str] = {}
    for item in items:
        for part in _NEXT.split(item):
            if not part.strip():
                continue
            if "=" not in part:
                raise InputError(f"--where '{part.strip()}': write COLUMN=VALUE")
            name, value = (x.strip() for x in part.split("=", 1))
            if name in out and out[name] != value:
                raise InputError(f"--where names '{name}' twice with different values")
            out[name] = value
    return out


def where_codes(schema: Schema, where: dict[str, str]) -> dict[str, int]:
    """Each condition as the public code of its column; a clear error for anything else."""
    learned = {c.name: c for c in schema.learned_columns}
    codes: dict[str, int] = {}
    for name, text in where.items():
        col = learned.get(name)
        if col is None:
            other = next((c for c in schema.columns if c.name == name), None)
            if other is not None and other.role == "direct_identifier":
                raise InputError(f"--where {name}: a direct identifier is never learned, so it cannot be a condition")
            if other is not None:
                raise InputError(f"--where {name}: a derived column; condition on the columns it is computed from")
            raise InputError(f"--where {name}: not a column of schema '{schema.name}'; learned columns: "
                             f"{', '.join(learned)}")
        codes[name] = _code(col, text)
    return codes


def _code(col: Column, text: str) -> int:
    domain = col.domain
    if isinstance(domain, CategoricalDomain):
        labels = list(domain.labels)
        if col.kind == "boolean":
            value = {"true": "true", "1": "true", "yes": "true", "false": "false", "0": "false",
                     "no": "false"}.get(text.lower(), text.lower())
            if value in labels:
                return labels.index(value)
        elif text in labels:
            return labels.index(text)
        else:  # a category by its display name too ("White" for 2106-3), in any case
            names = {c.display.casefold(): c.code for c in domain.categories if c.display}
            code = names.get(text.strip().casefold())
            if code is not None and code in labels:
                return labels.index(code)
        displays = {c.code: c.display for c in domain.categories if c.display}
        shown = ", ".join(f"{label} ({displays[label]})" if label in displays else label for label in labels[:20])
        shown += ", ..." if len(labels) > 20 else ""
        raise InputError(f"--where {col.name}={text}: not in the column's public domain; allowed (a code or its "
                         f"name): {shown}")
    assert isinstance(domain, NumericDomain)
    labels = list(domain.labels)
    if text in labels:
        return labels.index(text)
    try:
        number = float(text)
    except ValueError:
        raise InputError(f"--where {col.name}={text}: not a number nor a bin of the column ({', '.join(labels)})"
                         ) from None
    if not (math.isfinite(number) and domain.lower <= number <= domain.upper):
        raise InputError(f"--where {col.name}={text}: outside the public domain [{domain.lower:g}, {domain.upper:g}]")
    k = min(int(np.searchsorted(np.asarray(domain.edges), number, side="right")) - 1, domain.n_bins - 1)
    lo, hi = domain.edges[k], domain.edges[k + 1]
    last = k == domain.n_bins - 1
    single = domain.integer and number.is_integer() and (math.ceil(lo) == (math.floor(hi) if last
                                                                          else math.ceil(hi) - 1))
    if not single:
        raise InputError(f"--where {col.name}={text}: the model knows this column by public bins; a condition "
                         f"takes a whole bin: write {col.name}='{labels[k]}'")
    return k


def sample(model_dir: str | Path, rows: int, out: str | Path, *, where: list[str] | tuple[str, ...] = (),
           output_format: str | None = None, seed: int | None = None, progress: Progress | None = None) -> SampleResult:
    """Draw ``rows`` patients from a shared model (conditioned on ``where``) into ``out``:
    FHIR (``ndjson`` or ``bundle``) or OMOP (``omop``) plus ``patients.csv``, or the table alone (``csv``; the
    only form for a table schema, the default there), and ``sample.json``."""
    from privsynth.formats import Output, formats
    from privsynth.pipeline import post_processing_seed, write_synthetic
    from privsynth.records import versions

    if output_format is not None and output_format not in formats():
        raise InputError(f"unknown output format '{output_format}'; allowed: {', '.join(formats())}")
    if isinstance(rows, bool) or not isinstance(rows, int) or rows < 1:
        raise InputError("--rows must be a positive number of synthetic patients")
    seed = post_processing_seed(seed)
    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise OutputError(f"{out}: already exists and is not empty; choose a new --out directory")
    shared = open_model(model_dir)
    schema = shared.schema
    if schema.input_format == "table" and output_format not in (None, "csv"):
        raise InputError(f"schema '{schema.name}' is a table schema: its samples are tables (--format csv)")
    output_format = output_format or ("csv" if schema.input_format == "table" else "ndjson")
    conditions = parse_where(list(where))
    codes = where_codes(schema, conditions)
    try:  # before the sampling: the statement every output carries needs them
        epsilon, delta = float(shared.privacy["epsilon"]), float(shared.privacy["delta"])
    except (KeyError, TypeError, ValueError):
        raise InputError(f"{shared.path / 'privacy.json'}: no epsilon and delta in the model's privacy "
                         "statement") from None
    frame = shared.synthesizer.sample_where(rows, codes, rng=seed)
    now = dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat()
    statement = {
        "what": "synthetic patients sampled from a shared differentially private model",
        "privacy": (f"post-processing of the model's DP release (epsilon {epsilon}, delta {delta}, privacy unit: "
                    "one patient's whole record): no additional privacy cost, whatever is sampled"),
        "model": {"epsilon": epsilon, "delta": delta, "schema": schema.name,
                  "generator": shared.privacy.get("generator"), "release_id": shared.release_id},
        "rows": rows,
        "where": conditions,
        "seed": seed,
        "created": now,
        "versions": versions(),
    }
    with atomic_directory(out) as tmp:
        # as synthesize writes: the table under data/ for a table schema, else FHIR (or, csv, the table alone)
        base = tmp / "data" if schema.input_format == "table" else tmp
        output = Output(output_format, seed, now, epsilon, delta, shared.release_id)
        files = write_synthetic(base, frame, schema, output, progress)
        write_bytes(tmp / "sample.json", json.dumps(statement, indent=2).encode())
    return SampleResult(out, rows, conditions, dict(files), statement)
