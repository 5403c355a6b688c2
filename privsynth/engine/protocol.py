"""What an engine is: it runs privsynth's per-shard steps and sums their counts.

An engine decides nothing about patients. :mod:`privsynth.engine.ingest` holds the one code
path that routes every resource to its patient's shard and builds a shard's patient view;
an engine only runs those steps (``map``: each task on a worker, its small result back) and
counts the encoded view it wrote (``counts``: exact marginal tables, per shard and summed,
as :class:`~privsynth.generator.counts.Counts`). Noise is never added by an engine: the
tables it returns are measured once, centrally, through OpenDP.

The contract (tests/engine/test_engine.py runs it on every registered engine): ``map``
returns one result per task in task order and re-raises a task's input error as it is;
``counts`` returns exactly the counts of the partitions it reads.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Protocol, TypeVar

from privsynth.generator.counts import Counts

T = TypeVar("T")
R = TypeVar("R")


class Engine(Protocol):
    """Runs per-shard tasks and counts sharded views; see the module docstring."""

    @property
    def name(self) -> str: ...

    @property
    def summary(self) -> str: ...

    @property
    def parallelism(self) -> int:
        """How many tasks run at once (worker processes, or the cluster's cores)."""
        ...

    def map(self, fn: Callable[[T], R], tasks: Sequence[T]) -> list[R]: ...

    def counts(self, root: Path, sizes: tuple[int, ...]) -> Counts: ...

    def close(self) -> None: ...


class EngineFactory(Protocol):
    """Builds an engine: ``workers`` processes (or executor cores), ``master`` a cluster URL
    where the engine has one (Spark), ``options`` engine-specific settings."""

    def __call__(self, workers: int, master: str | None, options: dict[str, Any]) -> Engine: ...
