"""A small, fast subset of FHIRPath for schema sources, checked against the R4 models.

Grammar (segments joined by ``.``)::

    name                 an element; lists are flattened as in FHIRPath
    name[x]              a choice element: valueQuantity, valueString, ...
    name[sub.path=a|b]   keep items whose ``sub.path`` has one of the values

Examples: ``gender``, ``address.state``, ``deceased[x]``,
``extension[url=http://hl7.org/fhir/us/core/StructureDefinition/us-core-race]
.extension[url=ombCategory].valueCoding.code``, ``component[code.coding.code=8480-6]
.valueQuantity.value``.

A compiled :class:`Path` knows, from the fhir.resources R4B models, whether each element
is a list in R4. Reading data whose shape disagrees (a list where R4 has one value, as in
R5's ``Encounter.class``) raises :class:`ShapeError` instead of silently reading nothing.
"""

from __future__ import annotations

import functools
import typing
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


class PathSyntaxError(ValueError):
    """The path text does not follow the grammar."""


class ShapeError(ValueError):
    """Data does not have the R4 shape the path expects."""

    def __init__(self, element: str, expected_list: bool) -> None:
        self.element = element
        self.expected_list = expected_list
        want = "a list" if expected_list else "a single value"
        super().__init__(
            f"element '{element}' should be {want} in FHIR R4; "
            "is this R5 (or otherwise non-R4) data?"
        )


@dataclass(frozen=True)
class Segment:
    name: str
    choice: bool = False
    filter_path: tuple[Segment, ...] | None = None
    filter_values: frozenset[str] = frozenset()
    is_list: bool | None = None  # known from the R4 model, else None


def _split(text: str, sep: str) -> list[str]:
    """Split on ``sep`` outside square brackets."""
    parts: list[str] = []
    depth = 0
    start = 0
    for i, ch in enumerate(text):
        if ch == "[":
            depth += 1
        elif ch == "]":
            depth -= 1
            if depth < 0:
                raise PathSyntaxError("unbalanced ']'")
        elif ch == sep and depth == 0:
            parts.append(text[start:i])
            start = i + 1
    if depth != 0:
        raise PathSyntaxError("unbalanced '['")
    parts.append(text[start:])
    return parts


def parse(text: str) -> tuple[Segment, ...]:
    """Parse path text into segments (no model information yet)."""
    if not text or not text.strip():
        raise PathSyntaxError("empty path")
    segments: list[Segment] = []
    for raw in _split(text.strip(), "."):
        if not raw:
            raise PathSyntaxError("empty element name (two dots in a row?)")
        if "[" not in raw:
            if not raw.replace("_", "").isalnum():
                raise PathSyntaxError(f"bad element name '{raw}'")
            segments.append(Segment(raw))
            continue
        if not raw.endswith("]"):
            raise PathSyntaxError(f"text after ']' in '{raw}'")
        name, inner = raw[:-1].split("[", 1)
        if not name.isalnum():
            raise PathSyntaxError(f"bad element name '{name}'")
        if inner == "x":
            segments.append(Segment(name, choice=True))
            continue
        if "=" not in inner:
            raise PathSyntaxError(f"a filter needs 'path=value' in '{raw}'")
        sub, values = inner.split("=", 1)
        if not values:
            raise PathSyntaxError(f"a filter needs at least one value in '{raw}'")
        segments.append(
            Segment(name, filter_path=parse(sub), filter_values=frozenset(values.split("|")))
        )
    return tuple(segments)


# -- the R4 model check -------------------------------------------------------------


def model_class(name: str) -> Any:
    """The fhir.resources R4B model class of a resource or element type, or None if R4 has no such type."""
    from fhir.resources.R4B import get_fhir_model_class

    try:
        return get_fhir_model_class(name)
    except (KeyError, ValueError, AttributeError, ImportError):
        return None


def _unwrap(annotation: Any) -> tuple[bool, str]:
    """Return (is_list, type name) of a fhir.resources field annotation."""
    is_list = False
    ann = annotation
    for _ in range(4):
        args = typing.get_args(ann)
        origin = typing.get_origin(ann)
        if origin in (list, typing.List):  # noqa: UP006 - the models use typing.List
            is_list = True
            ann = args[0]
        elif args:
            non_none = [a for a in args if a is not type(None)]
            ann = non_none[0]
        else:
            break
    name = getattr(ann, "__name__", str(ann))
    return is_list, name.removesuffix("Type")


@functools.cache
def element_fields(class_name: str) -> dict[str, tuple[bool, str]]:
    """The elements of an R4 type: name -> (is a list, the element's type name)."""
    cls = model_class(class_name)
    if cls is None:
        return {}
    out: dict[str, tuple[bool, str]] = {}
    for fname, info in cls.model_fields.items():
        if fname.endswith("__ext") or fname == "fhir_comments":
            continue
        out[info.alias or fname] = _unwrap(info.annotation)
    return out


def check(resource_type: str, segments: tuple[Segment, ...]) -> tuple[Segment, ...]:
    """Resolve each segment against the R4 model of ``resource_type``.

    Returns the segments annotated with their list-ness. Raises ``PathSyntaxError``
    naming the first element the R4 model does not have.
    """
    if model_class(resource_type) is None:
        raise PathSyntaxError(f"'{resource_type}' is not an R4 resource type")
    return _check(resource_type, segments, resource_type)


def _check(type_name: str, segments: tuple[Segment, ...], where: str) -> tuple[Segment, ...]:
    out: list[Segment] = []
    current = type_name
    for seg in segments:
        fields = element_fields(current)
        if not fields:
            raise PathSyntaxError(f"'{where}' is a primitive; it has no element '{seg.name}'")
        if seg.choice:
            options = [k for k in fields if k.startswith(seg.name) and k[len(seg.name) :][:1].isupper()]
            if not options:
                raise PathSyntaxError(f"'{current}' has no choice element '{seg.name}[x]'")
            out.append(Segment(seg.name, choice=True, is_list=False))
            current = "Element"
            where = f"{where}.{seg.name}[x]"
            continue
        if seg.name not in fields:
            raise PathSyntaxError(_unknown(current, seg.name, fields))
        is_list, child = fields[seg.name]
        filter_path = None
        if seg.filter_path is not None:
            filter_path = _check(child, seg.filter_path, f"{where}.{seg.name}")
        out.append(
            Segment(seg.name, False, filter_path, seg.filter_values, is_list=is_list)
        )
        current = child
        where = f"{where}.{seg.name}"
    return tuple(out)


def _unknown(type_name: str, name: str, fields: dict[str, tuple[bool, str]]) -> str:
    import difflib

    close = difflib.get_close_matches(name, list(fields), n=1)
    hint = f"; did you mean '{close[0]}'?" if close else ""
    return f"R4 '{type_name}' has no element '{name}'{hint}"


# -- evaluation ---------------------------------------------------------------------


def _step(seg: Segment, trail: str) -> Callable[[list[Any]], list[Any]]:
    name = seg.name
    element = f"{trail}.{name}" if trail else name
    if seg.choice:
        prefix = name
        n = len(prefix)

        def choice(items: list[Any]) -> list[Any]:
            out: list[Any] = []
            for item in items:
                if isinstance(item, dict):
                    for key, value in item.items():
                        if key.startswith(prefix) and key[n : n + 1].isupper():
                            out.append(value)
            return out

        return choice

    expected = seg.is_list
    sub = compile_segments(seg.filter_path, element) if seg.filter_path else None
    values = seg.filter_values

    def step(items: list[Any]) -> list[Any]:
        out: list[Any] = []
        for item in items:
            if not isinstance(item, dict):
                continue
            value = item.get(name)
            if value is None:
                continue
            if isinstance(value, list):
                if expected is False:
                    raise ShapeError(element, False)
                out.extend(value)
            else:
                if expected is True:
                    raise ShapeError(element, True)
                out.append(value)
        if sub is not None:
            out = [v for v in out if any(str(x) in values for x in sub(v))]
        return out

    return step


def compile_segments(
    segments: tuple[Segment, ...] | None, trail: str = ""
) -> Callable[[Any], list[Any]]:
    """Compile segments into a function ``resource -> list of values``."""
    steps = []
    for seg in segments or ():
        steps.append(_step(seg, trail))
        trail = f"{trail}.{seg.name}" if trail else seg.name

    def run(resource: Any) -> list[Any]:
        items = [resource]
        for step in steps:
            items = step(items)
            if not items:
                return items
        return items

    return run


def compile_path(text: str, resource_type: str | None = None) -> Callable[[Any], list[Any]]:
    """Parse, check against the R4 model when a resource type is given, and compile."""
    segments = parse(text)
    if resource_type is not None:
        segments = check(resource_type, segments)
    return compile_segments(segments, resource_type or "")
