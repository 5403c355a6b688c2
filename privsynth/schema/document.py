"""The schema document: YAML read into plain data with the line of every node, and the checks
every part of a schema (and a policy) uses, each error naming the file, line and field."""

from __future__ import annotations

import difflib
import math
from pathlib import Path
from typing import Any, cast

import yaml

from privsynth.errors import PrivsynthError, SchemaError

Key = tuple[str | int, ...]


class Document:
    """Plain data from YAML plus the line of every node, keyed by its path."""

    def __init__(self, file: str, lines: dict[Key, int], error_type: type[PrivsynthError] = SchemaError) -> None:
        self.file = file
        self.lines = lines
        self.error_type = error_type

    def where(self, key: Key) -> str:
        """``file:line: field 'dotted.key'`` of the closest node that has a line."""
        line = None
        probe = key
        while probe and line is None:
            line = self.lines.get(probe)
            probe = probe[:-1]
        if line is None:
            line = self.lines.get(())
        field = dotted(key)
        loc = self.file + (f":{line}" if line else "")
        return f"{loc}: field '{field}'" if field else loc

    def error(self, key: Key, message: str) -> PrivsynthError:
        return self.error_type(f"{self.where(key)}: {message}")


def dotted(key: Key) -> str:
    out = ""
    for part in key:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else part)
    return out


class _LeadingZero(ValueError):
    def __init__(self, key: Key) -> None:
        self.key = key


def _check_number(node: yaml.Node, key: Key) -> None:
    if isinstance(node, yaml.ScalarNode) and node.tag.endswith(":int") and not node.style:
        text = str(node.value).lstrip("+-")
        if len(text) > 1 and text.startswith("0"):
            raise _LeadingZero(key)  # YAML 1.1 would read 0100 as octal 64


def _plain(node: yaml.Node, key: Key, lines: dict[Key, int]) -> Any:
    lines[key] = node.start_mark.line + 1
    _check_number(node, key)
    if isinstance(node, yaml.MappingNode):
        out: dict[str, Any] = {}
        for knode, vnode in node.value:
            lines[key + (str(knode.value),)] = knode.start_mark.line + 1
            _check_number(knode, key + (str(knode.value),))
            k = str(yaml.safe_load(yaml.serialize(knode)))
            out[k] = _plain(vnode, key + (k,), lines)
        return out
    if isinstance(node, yaml.SequenceNode):
        return [_plain(v, key + (i,), lines) for i, v in enumerate(node.value)]
    return yaml.safe_load(yaml.serialize(node))


def read_yaml(source: str | Path, what: str,
              error_type: type[PrivsynthError] = SchemaError) -> tuple[Any, Document]:
    """Read a YAML file into plain data plus the line of every node (for errors)."""
    file = str(source)
    try:
        text = Path(file).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise error_type(f"{file}: {what} file not found") from None
    except UnicodeDecodeError as exc:
        raise error_type(f"{file}: not UTF-8 text (byte {exc.start})") from None
    except OSError as exc:
        raise error_type(f"{file}: cannot read {what} ({exc.strerror})") from None
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f":{mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or "invalid YAML"
        raise error_type(f"{file}{line}: invalid YAML: {problem}") from None
    if node is None:
        raise error_type(f"{file}: the {what} file is empty")
    lines: dict[Key, int] = {}
    try:
        data = _plain(node, (), lines)
    except _LeadingZero as exc:
        raise Document(file, lines, error_type).error(
            exc.key, "a number with a leading zero would be read as octal; write codes in quotes ('0100')"
        ) from None
    return data, Document(file, lines, error_type)


def check_keys(doc: Document, data: Any, key: Key, allowed: tuple[str, ...], what: str) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise doc.error(key, f"{what} must be a mapping with keys {', '.join(allowed)}")
    for k in data:
        if k not in allowed:
            close = difflib.get_close_matches(k, allowed, n=1)
            hint = f" Did you mean '{close[0]}'?" if close else ""
            raise doc.error(
                key + (k,), f"unknown key in {what}; allowed: {', '.join(allowed)}.{hint}"
            )
    return data


def choice(doc: Document, value: Any, key: Key, allowed: tuple[str, ...]) -> str:
    if value not in allowed:
        close = difflib.get_close_matches(str(value), allowed, n=1)
        hint = f" Did you mean '{close[0]}'?" if close else ""
        raise doc.error(key, f"must be one of {', '.join(allowed)}.{hint}")
    return cast(str, value)


def number(doc: Document, value: Any, key: Key) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise doc.error(key, "must be a finite number")
    return float(value)


def listed(doc: Document, data: dict[str, Any], key: Key, field_name: str, what: str) -> list[Any]:
    value = data.get(field_name)
    if not isinstance(value, list) or not value:
        raise doc.error(key + (field_name,), f"{what} needs a non-empty list of '{field_name}'")
    return value


def whole(doc: Document, value: Any, key: Key, lowest: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < lowest:
        raise doc.error(key, f"must be a whole number of at least {lowest}")
    return value
