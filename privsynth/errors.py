"""One error hierarchy for privsynth.

Every error a user can cause is a :class:`PrivsynthError`. Subclasses also inherit
the matching builtin so callers may catch either. Messages say what was wrong, where
(file, line, field), what is allowed and how to fix it -- and never echo a value read
from patient data.
"""

from __future__ import annotations


class PrivsynthError(Exception):
    """Base class of every error privsynth raises on purpose."""

    exit_code = 2


class SchemaError(PrivsynthError, ValueError):
    """A schema file or schema dict is invalid."""


class InputError(PrivsynthError, ValueError):
    """An input file (FHIR, table) cannot be read as the schema requires."""


class BudgetError(PrivsynthError, ValueError):
    """A privacy budget is invalid or would be exceeded."""


class PolicyError(PrivsynthError, ValueError):
    """A release policy file is invalid."""


class AuditError(PrivsynthError, ValueError):
    """An audit cannot be run as asked (e.g. too few patients to audit)."""


class AuditFailed(PrivsynthError):
    """A release was refused: an audit gate failed. The message lists the reasons."""

    exit_code = 3


class NotFittedError(PrivsynthError, RuntimeError):
    """A synthesizer was used before ``fit``."""


class ModelTooLargeError(PrivsynthError, MemoryError):
    """A graphical model would not fit in the memory allowed for it."""


class EngineError(PrivsynthError, RuntimeError):
    """A worker of the engine running the shard tasks stopped (killed, out of memory)."""


class OutputError(PrivsynthError, OSError):
    """Output cannot be written where it was asked for."""


def where(file: object = None, line: int | None = None, field: str | None = None) -> str:
    """Format a location as ``file:line: field`` with the parts that are known."""
    parts: list[str] = []
    if file is not None:
        parts.append(str(file) + (f":{line}" if line is not None else ""))
    elif line is not None:
        parts.append(f"line {line}")
    if field:
        parts.append(f"field '{field}'")
    return ", ".join(parts)
