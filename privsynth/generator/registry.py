"""The generators privsynth can fit, by name.

``Synthesizer(method=...)``, the CLI's ``--method`` choices, the docs' list and the
contract test suite all read this registry, so adding a generator is one module that calls
:func:`register` and one line in ``BUILTIN``.

>>> names()[:2]
('aim', 'mst')
"""

from __future__ import annotations

import importlib

from privsynth.errors import InputError
from privsynth.generator.protocol import Generator

BUILTIN = ("privsynth.generator.aim", "privsynth.generator.mst")
_GENERATORS: dict[str, Generator] = {}


def register(generator: Generator) -> Generator:
    """Add ``generator`` under its name (which must be new, lower-case letters, digits, '-')."""
    name = generator.name
    if not name or not all(ch.islower() or ch.isdigit() or ch == "-" for ch in name):
        raise ValueError(f"generator name '{name}': use lower-case letters, digits and '-'")
    if name in _GENERATORS and _GENERATORS[name] is not generator:
        raise ValueError(f"a generator named '{name}' is already registered")
    _GENERATORS[name] = generator
    return generator


def unregister(name: str) -> None:
    """Remove a generator (for tests that register a toy one)."""
    _GENERATORS.pop(name, None)


def builtin() -> None:
    """Import the generators that ship with privsynth (each registers itself)."""
    for module in BUILTIN:
        importlib.import_module(module)


def names() -> tuple[str, ...]:
    """Every registered generator's name, built-in ones first."""
    builtin()
    return tuple(_GENERATORS)


def get(name: str) -> Generator:
    """The generator called ``name``, or :class:`InputError` listing the allowed names."""
    builtin()
    found = _GENERATORS.get(name)
    if found is None:
        raise InputError(f"unknown method '{name}'; allowed: {', '.join(_GENERATORS)}")
    return found
