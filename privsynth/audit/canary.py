"""Planted leaks: synthetic data made to leak on purpose, to check that the gates refuse it.

A gate that never fails proves nothing; these are the leaks the test suite and the
false-refusal benchmark plant into clean DP output. Each keeps the clean sample's size:

- ``verbatim``: the training patients themselves;
- ``copies``: a share of the clean rows replaced by verbatim training records;
- ``near-copies``: a share replaced by training records with every number moved by up to
  ``jitter`` of its public range (categories kept).

>>> import pandas as pd
>>> from privsynth.schema import load_schema
>>> s = load_schema({"name": "t", "input": "table", "columns": [{"name": "x", "kind": "numeric", "role": "other",
...     "source": {"column": "x"}, "domain": {"lower": 0, "upper": 100}}]})
>>> train = pd.DataFrame({"x": [10.0, 20.0, 30.0, 40.0]})
>>> leaked = plant("copies", pd.DataFrame({"x": [50.0] * 4}), train, s, np.random.default_rng(0), share=0.5)
>>> sorted(leaked["x"].tolist())[2:], len(leaked)
([50.0, 50.0], 4)
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from privsynth.schema.model import NumericDomain, Schema

KINDS = ("verbatim", "copies", "near-copies")


def near_copies(schema: Schema, rows: pd.DataFrame, rng: np.random.Generator, jitter: float = 0.01) -> pd.DataFrame:
    """``rows`` with every number moved by up to ``jitter`` of its public range."""
    out = rows.copy()
    for col in schema.learned_columns:
        domain = col.domain
        if isinstance(domain, NumericDomain):
            values = pd.to_numeric(out[col.name], errors="coerce").astype(float)
            moved = (values + rng.uniform(-jitter, jitter, len(values)) * (domain.upper - domain.lower))
            moved = moved.clip(domain.lower, domain.upper)
            out[col.name] = moved.round().astype("Int64") if domain.integer else moved
    return out


def plant(kind: str, clean: pd.DataFrame, train: pd.DataFrame, schema: Schema, rng: np.random.Generator,
          share: float | None = None) -> pd.DataFrame:
    """Clean synthetic rows with a leak of ``kind`` planted (``share``: 2% copies, 1% near-copies)."""
    if kind not in KINDS:
        raise ValueError(f"unknown leak '{kind}'; allowed: {', '.join(KINDS)}")
    if kind == "verbatim":
        return train.reset_index(drop=True)
    share = (0.02 if kind == "copies" else 0.01) if share is None else share
    k = int(share * len(clean))
    donors = train.iloc[rng.permutation(len(train))[:k]].reset_index(drop=True)
    if kind == "near-copies":
        donors = near_copies(schema, donors, rng)
    return pd.concat([clean.iloc[k:].reset_index(drop=True), donors], ignore_index=True)
