"""The release policy: the thresholds every audit gate uses, with defensible defaults.

A policy file is YAML; any key left out keeps its default. Loosening a threshold (a value
that lets more through than the default) is allowed, and recorded in the manifest and the
report as a weakening.

>>> p = Policy()
>>> p.mia_auc_max, p.dcr_share_max, p.max_attempts
(0.55, 0.52, 3)
>>> Policy(mia_auc_max=0.6).weakened()
['mia_auc_max: 0.6 (default 0.55)']
"""

from __future__ import annotations

import difflib
import math
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any

from privsynth.errors import PolicyError
from privsynth.schema.load import read_yaml

# per threshold: does a LARGER value let more through (True) or less (False)?
_LOOSER_WHEN_LARGER = {
    "holdout_fraction": False,
    "min_holdout": False,
    "exact_match_p": False,
    "near_match_distance": False,
    "dcr_share_max": True,
    "tail_ratio_max": True,
    "tail_p": False,
    "mia_auc_max": True,
    "mia_tpr_at_1pct_fpr_max": True,
    "epsilon_lower_bound_max": True,
    "attribute_risk_max": True,
    "max_attempts": True,
    "total_epsilon": True,
    "total_delta": True,
    "min_cell_patients": False,
    "bias_shift_max": True,
    "allow_keep_sensitive": True,
}


# (threshold, lowest allowed, highest allowed): outside these a gate would be meaningless
_RANGES = (
    ("holdout_fraction", 0.05, 0.5), ("min_holdout", 100, 10**9), ("exact_match_p", 1e-12, 0.5),
    ("near_match_distance", 0.0, 1.0), ("dcr_share_max", 0.5, 1.0), ("tail_ratio_max", 1.0, 1e9),
    ("tail_p", 1e-12, 0.5), ("mia_auc_max", 0.5, 1.0), ("mia_tpr_at_1pct_fpr_max", 0.01, 1.0),
    ("epsilon_lower_bound_max", 0.0, 1e3), ("attribute_risk_max", 0.0, 1.0), ("allow_keep_sensitive", 0, 1),
    ("max_attempts", 1, 10**6), ("total_epsilon", 0.0, 1e3), ("total_delta", 0.0, 0.01),
    ("min_cell_patients", 1, 10**6), ("bias_shift_max", 0.0, 1.0),
)
_COUNTS = ("min_holdout", "max_attempts", "min_cell_patients", "allow_keep_sensitive")


@dataclass(frozen=True)
class Policy:
    """Thresholds of the release gate (docs/audit.md explains each one).

    A gate FAILS when:

    - exact matches: synthetic rows equal to a train record outnumber those equal to a
      holdout record with one-sided binomial p < ``exact_match_p``; the same for near
      matches (every column within ``near_match_distance`` of a record: a near-copy);
    - closeness: the Wilson lower bound of the share of synthetic rows closer to train than
      to holdout exceeds ``dcr_share_max`` (0.5 is what a model that never saw train gets);
    - tail: among the closest 1% of distances, train-side hits outnumber holdout-side hits
      by more than ``tail_ratio_max`` with binomial p < ``tail_p``; (these p-value tests are
      Bonferroni-corrected as one family: see reidentification.py)
    - membership inference: the lower end of an attack's AUC interval exceeds
      ``mia_auc_max``, or the lower end of its TPR-at-1%-FPR interval exceeds
      ``mia_tpr_at_1pct_fpr_max``, or its empirical epsilon lower bound exceeds
      ``epsilon_lower_bound_max`` -- or the claimed epsilon, always. (Every gate fails on
      evidence of a leak, so a clean release is refused rarely however small the holdout;
      ``min_holdout`` is what gives the gates their power.)
    - attribute inference (partial synthesis only): the lower bound of the risk of guessing
      a replaced column from the kept ones exceeds ``attribute_risk_max``.

    ``allow_keep_sensitive`` (0 or 1): whether partial synthesis may keep sensitive columns.
    """

    holdout_fraction: float = 0.2
    min_holdout: int = 1000
    exact_match_p: float = 0.01
    near_match_distance: float = 0.02
    dcr_share_max: float = 0.52
    tail_ratio_max: float = 1.5
    tail_p: float = 0.01
    mia_auc_max: float = 0.55
    mia_tpr_at_1pct_fpr_max: float = 0.02
    epsilon_lower_bound_max: float = 1.0
    attribute_risk_max: float = 0.05
    allow_keep_sensitive: int = 0
    max_attempts: int = 3
    total_epsilon: float = 3.0
    total_delta: float = 1e-5
    min_cell_patients: int = 10
    bias_shift_max: float = 0.05
    source: str = "defaults"

    def __post_init__(self) -> None:
        def bad(name: str, allowed: str) -> PolicyError:
            return PolicyError(f"policy '{self.source}': '{name}' must be {allowed}")

        for name in _LOOSER_WHEN_LARGER:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
                raise bad(name, "a finite number")
        for name, low, high in _RANGES:
            value = getattr(self, name)
            if not low <= value <= high:
                raise bad(name, f"between {low:g} and {high:g}")
        for name in _COUNTS:
            if float(getattr(self, name)) != int(getattr(self, name)):
                raise bad(name, "a whole number")
        if self.total_delta <= 0 or self.total_epsilon <= 0:
            raise bad("total_epsilon' and 'total_delta", "positive")

    def weakened(self) -> list[str]:
        """Thresholds looser than the defaults, as 'name: value (default d)'."""
        default = Policy()
        out = []
        for name, larger_is_looser in _LOOSER_WHEN_LARGER.items():
            mine, theirs = getattr(self, name), getattr(default, name)
            if (mine > theirs) if larger_is_looser else (mine < theirs):
                out.append(f"{name}: {mine:g} (default {theirs:g})")
        return out

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def load_policy(path: str | Path | None) -> Policy:
    """The policy in a YAML file (keys left out keep their defaults), or the defaults."""
    if path is None:
        return Policy()
    data, doc = read_yaml(path, "policy", PolicyError)
    if data is None:
        return Policy(source=str(path))
    if not isinstance(data, dict):
        raise doc.error((), "a policy must be a mapping of threshold names to numbers")
    allowed = [f.name for f in fields(Policy) if f.name != "source"]
    values: dict[str, Any] = {}
    for key, value in data.items():
        if key not in allowed:
            close = difflib.get_close_matches(key, allowed, n=1)
            hint = f" Did you mean '{close[0]}'?" if close else ""
            raise doc.error((key,), f"unknown threshold.{hint} Allowed: {', '.join(allowed)}")
        if isinstance(value, str):  # YAML 1.1 reads 1e-5 (no dot) as a string
            try:
                value = float(value)
            except ValueError:
                raise doc.error((key,), "must be a number") from None
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise doc.error((key,), "must be a number")
        try:  # each threshold on its own first, so an error names its line
            one: dict[str, Any] = {key: value}
            replace(Policy(source=str(path)), **one)
        except PolicyError as exc:
            raise doc.error((key,), str(exc).split(": ", 1)[-1]) from None
        values[key] = value
    return replace(Policy(source=str(path)), **values)
