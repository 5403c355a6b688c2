"""The engines privsynth can run sharded steps on, by name.

The CLI's ``--engine`` choices, the docs' list and the engine contract test read this
registry; adding an engine is one module that calls :func:`register` and one line in
``BUILTIN``. An engine whose libraries are not installed (Spark needs pyspark and Java) is
still listed; asking for it says what to install.

>>> names()
('duckdb', 'spark')
"""

from __future__ import annotations

import importlib
from typing import Any

from privsynth.engine.protocol import Engine, EngineFactory
from privsynth.errors import InputError

BUILTIN = ("privsynth.engine.local", "privsynth.engine.spark")
_ENGINES: dict[str, tuple[str, EngineFactory]] = {}


def register(name: str, summary: str, factory: EngineFactory) -> EngineFactory:
    """Add an engine under ``name`` (new, lower-case letters, digits, '-')."""
    if not name or not all(ch.islower() or ch.isdigit() or ch == "-" for ch in name):
        raise ValueError(f"engine name '{name}': use lower-case letters, digits and '-'")
    if name in _ENGINES and _ENGINES[name][1] is not factory:
        raise ValueError(f"an engine named '{name}' is already registered")
    _ENGINES[name] = (summary, factory)
    return factory


def builtin() -> None:
    for module in BUILTIN:
        importlib.import_module(module)


def names() -> tuple[str, ...]:
    builtin()
    return tuple(_ENGINES)


def summaries() -> dict[str, str]:
    builtin()
    return {name: summary for name, (summary, _) in _ENGINES.items()}


def start(name: str, workers: int = 2, master: str | None = None, options: dict[str, Any] | None = None) -> Engine:
    """A running engine called ``name``, or :class:`InputError` listing the allowed names."""
    builtin()
    found = _ENGINES.get(name)
    if found is None:
        raise InputError(f"unknown engine '{name}'; allowed: {', '.join(_ENGINES)}")
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise InputError("--workers must be a whole number of at least 1")
    return found[1](workers, master, dict(options or {}))
