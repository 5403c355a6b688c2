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
from pathlib import Path
from typing import Any

from privsynth.errors import PolicyError
from privsynth.schema.document import read_yaml


class Policy:
    """Thresholds of the release gate: the release's own and every registered audit's
    (docs/audit.md explains each one). Immutable; any threshold left out keeps its default.

    Which threshold exists, its default, its sane range, whether it must be whole and which
    way is looser all come from one table per audit (:mod:`privsynth.audit.registry`), so
    adding an audit adds its thresholds here without touching this class.
    """

    __slots__ = ("_values", "source")

    def __init__(self, source: str = "defaults", **values: float) -> None:
        from privsynth.audit.registry import thresholds

        known = {t.name: t for t in thresholds()}
        unknown = sorted(set(values) - set(known))
        if unknown:
            close = difflib.get_close_matches(unknown[0], list(known), n=1)
            hint = f" Did you mean '{close[0]}'?" if close else ""
            raise PolicyError(f"policy '{source}': unknown threshold '{unknown[0]}'.{hint}")
        merged: dict[str, float] = {}
        for name, spec in known.items():
            value = values.get(name, spec.default)
            if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
                raise PolicyError(f"policy '{source}': '{name}' must be a finite number")
            if not spec.low <= value <= spec.high:
                raise PolicyError(f"policy '{source}': '{name}' must be between {spec.low:g} and {spec.high:g}")
            if spec.whole and float(value) != int(value):
                raise PolicyError(f"policy '{source}': '{name}' must be a whole number")
            merged[name] = int(value) if spec.whole else value
        object.__setattr__(self, "_values", merged)
        object.__setattr__(self, "source", source)

    def __getattr__(self, name: str) -> Any:
        try:
            return object.__getattribute__(self, "_values")[name]
        except KeyError:
            raise AttributeError(f"the policy has no threshold '{name}'") from None

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError("a Policy is immutable; use policy.replace(...)")

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Policy) and self._values == other._values

    def __hash__(self) -> int:
        return hash(tuple(sorted(self._values.items())))

    def __repr__(self) -> str:
        return f"Policy(source={self.source!r}, {', '.join(f'{k}={v!r}' for k, v in self._values.items())})"

    def replace(self, **values: float) -> Policy:
        return Policy(self.source, **{**self._values, **values})

    def weakened(self) -> list[str]:
        """Thresholds looser than the defaults, as 'name: value (default d)'."""
        from privsynth.audit.registry import thresholds

        out = []
        for spec in thresholds():
            mine = self._values[spec.name]
            if (mine > spec.default) if spec.looser_when_larger else (mine < spec.default):
                out.append(f"{spec.name}: {mine:g} (default {spec.default:g})")
        return out

    def as_dict(self) -> dict[str, Any]:
        return {**self._values, "source": self.source}


def load_policy(path: str | Path | None) -> Policy:
    """The policy in a YAML file (keys left out keep their defaults), or the defaults."""
    if path is None:
        return Policy()
    from privsynth.audit.registry import thresholds

    data, doc = read_yaml(path, "policy", PolicyError)
    if data is None:
        return Policy(source=str(path))
    if not isinstance(data, dict):
        raise doc.error((), "a policy must be a mapping of threshold names to numbers")
    allowed = [t.name for t in thresholds()]
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
            Policy(str(path), **{key: value})
        except PolicyError as exc:
            raise doc.error((key,), str(exc).split(": ", 1)[-1]) from None
        values[key] = value
    return Policy(str(path), **values)
