"""Audit results: one check per gated statistic, plus the figures behind them."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class Check:
    """One statistic against its threshold. ``passed`` is None for information only."""

    audit: str
    name: str
    value: float
    interval: tuple[float, float] | None
    rule: str
    passed: bool | None
    detail: str = ""

    def __post_init__(self) -> None:  # numpy booleans and floats in, plain Python out
        object.__setattr__(self, "value", float(self.value))
        if self.passed is not None:
            object.__setattr__(self, "passed", bool(self.passed))
        if self.passed and not math.isfinite(self.value):  # a statistic that could not be computed never passes
            object.__setattr__(self, "passed", False)
            object.__setattr__(self, "detail", "; ".join(filter(None, ["not a finite number", self.detail])))
        if self.interval is not None:
            object.__setattr__(self, "interval", (float(self.interval[0]), float(self.interval[1])))

    def line(self) -> str:
        interval = f" [{self.interval[0]:.3f}, {self.interval[1]:.3f}]" if self.interval else ""
        verdict = {True: "pass", False: "FAIL", None: "info"}[self.passed]
        return f"{verdict:4}  {self.audit}: {self.name} = {self.value:.4g}{interval} ({self.rule}) {self.detail}"


@dataclass(frozen=True)
class AuditResult:
    """Every check of one audit run, the sizes it used and the full figures (internal)."""

    checks: tuple[Check, ...]
    sizes: dict[str, int]
    figures: dict[str, Any] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return all(c.passed is not False for c in self.checks)

    def failures(self) -> list[Check]:
        return [c for c in self.checks if c.passed is False]

    def verdicts(self) -> list[dict[str, str]]:
        """The shareable part: each check's verdict and rule, without the figure (computed on real
        patients, not DP, so it stays in the internal audit)."""
        return [{"audit": c.audit, "check": c.name, "rule": c.rule,
                 "verdict": {True: "pass", False: "fail", None: "info"}[c.passed]} for c in self.checks]

    def as_dict(self) -> dict[str, Any]:
        return {"passed": self.passed, "sizes": self.sizes, "checks": [asdict(c) for c in self.checks],
                "figures": self.figures}
