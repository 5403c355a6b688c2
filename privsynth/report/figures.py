"""All the report's figures, computed once at release time and kept in the internal audit:
the aggregates of :mod:`.data`, the cards of :mod:`.cards`, the variables of :mod:`.dossier`."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from privsynth.domain import encode
from privsynth.report.cards import patients
from privsynth.report.data import associations, bias, one_way, sampling_baseline, tstr, two_way
from privsynth.report.dossier import variables
from privsynth.schema.model import Schema


def report_data(train: pd.DataFrame, holdout: pd.DataFrame, synthetic: pd.DataFrame, schema: Schema, *,
                min_cell: int, shift_max: float, target: str | None, seed: int) -> dict[str, Any]:
    """All the report's utility and bias figures (small cells suppressed)."""
    rng = np.random.default_rng(seed)
    real_codes, _ = encode(train, schema)
    synthetic_codes, _ = encode(synthetic, schema)
    holdout_codes, _ = encode(holdout, schema)
    assoc = associations(real_codes, synthetic_codes, schema)
    bias_rows, groups = bias(real_codes, synthetic_codes, holdout_codes, schema, min_cell, shift_max)
    target = target or schema.target
    data: dict[str, Any] = {
        "min_cell": min_cell,
        "one_way": one_way(real_codes, synthetic_codes, schema, min_cell),
        "associations": assoc,
        "two_way": two_way(real_codes, synthetic_codes, schema, assoc, min_cell),
        "bias": {"shift_max": shift_max, "groups": bias_rows},
        "patients": patients(synthetic, real_codes, synthetic_codes, schema, min_cell, rng),
        "tstr": None,
        "variables": variables(schema),
        "baseline": sampling_baseline(real_codes, synthetic_codes, holdout_codes, schema, rng),
    }
    if target is not None:
        data["tstr"] = tstr(real_codes, synthetic_codes, holdout_codes, schema, target, groups, seed)
    return data
