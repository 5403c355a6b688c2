"""What every generator is: it selects marginals, measures them, and estimates a model.

A generator is one object with a ``name``, a one-line ``summary`` (shown by the CLI) and
``fit(problem, accountant) -> Fitted``. It reads the patient view as public codes
(:class:`Problem`), decides which marginals to measure and with how much rho (selection
itself may be a DP query), measures them through :mod:`privsynth.generator.measure` (every
noisy number comes from OpenDP there, and every one is charged to ``accountant``), and
estimates one consistent distribution from the noisy measurements
(:func:`privsynth.generator.estimate.mirror_descent`). What it returns is DP: the
measurements, each column's compression (a function of released 1-way marginals), and the
estimate. :class:`~privsynth.generator.synthesizer.Synthesizer` turns that into a
:class:`~privsynth.generator.model.MarginalModel` that samples, saves and loads.

The contract (tests/generator/test_contract.py runs it on every registered generator): it
spends at most the accountant's rho (and, by convention, all of it), every measurement and
selection is charged, domains are the public sizes given, and the structural zeros of the
prior stay exactly zero. Register it with :func:`privsynth.generator.registry.register`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from privsynth.generator.compress import Compression
from privsynth.generator.counts import Counts, as_counts
from privsynth.generator.estimate import Estimate, Measurement
from privsynth.generator.junction import DEFAULT_MAX_CELLS
from privsynth.generator.prior import PublicPrior
from privsynth.privacy.accounting import Accountant
from privsynth.progress import Progress


@dataclass(frozen=True)
class Problem:
    """The patient view as a generator sees it: ``data``, its exact marginal counts
    (:class:`~privsynth.generator.counts.Counts`; an n x d array of codes, column j in
    ``0 .. sizes[j] - 1``, one row per patient, is wrapped), public ``sizes`` and ``names``,
    and what is known before the data (:class:`PublicPrior`). ``max_cells`` bounds every
    junction-tree clique; ``iterations`` is the final estimation's budget of steps."""

    data: Counts
    sizes: tuple[int, ...]
    names: tuple[str, ...]
    prior: PublicPrior
    max_cells: int = DEFAULT_MAX_CELLS
    iterations: int = 300
    progress: Progress | None = None

    def __post_init__(self) -> None:
        d = len(self.sizes)
        if isinstance(self.data, np.ndarray):
            object.__setattr__(self, "data", as_counts(self.data, self.sizes))
        if tuple(self.data.sizes) != tuple(self.sizes) or len(self.names) != d:
            raise ValueError("data, sizes and names must describe the same columns")

    def report(self, stage: str, done: int, total: int) -> None:
        if self.progress is not None:
            self.progress(stage, done, total)


@dataclass(frozen=True)
class Fitted:
    """What a generator learned: all DP (noisy measurements, compressions of released
    1-way marginals, and their estimate)."""

    measurements: list[Measurement]
    compressions: list[Compression]
    estimate: Estimate
    settings: dict[str, Any] = field(default_factory=dict)  # the generator's tunables (public), for privacy.json


class Generator(Protocol):
    """Selects, measures and estimates over an accountant; see the module docstring."""

    @property
    def name(self) -> str: ...

    @property
    def summary(self) -> str: ...

    def fit(self, problem: Problem, accountant: Accountant) -> Fitted: ...
