"""A table schema drafted from a data dictionary (``privsynth schema draft``).

The dictionary is a CSV file with a header row and one row per column of the table:

=============== ===============================================================================
``column``      the table's column name (required)
``type``        ``numeric``, ``integer``, ``binary`` (0/1), ``categorical`` or ``identifier`` (required)
``unit``        unit of a number (optional; kept in the description and ``source.unit``)
``lower_bound`` public lower bound of a number (required for numeric and integer)
``upper_bound`` public upper bound of a number (required for numeric and integer)
``meaning``     what the column means (the column's description)
``levels``      the public categories of a categorical column, separated by ``|`` (required there)
=============== ===============================================================================

Other columns of the dictionary (``notes``, and counts such as ``n_missing``) are ignored:
counts computed on the data are not public, and a schema takes nothing from the data.
Bins are 10 of equal width between the public bounds; binary columns are the categories
0 and 1 with no ``other``; identifiers become direct identifiers with fresh values (never
``patient_id``: a row number is not a patient, and only a person knows which is which).

Roles are a first guess that a person must review: demographic columns (age, sex, race,
education, income, insurance...) are quasi-identifiers, everything else is sensitive.
"""

from __future__ import annotations

import csv
import re
from pathlib import Path
from typing import Any

import yaml

from privsynth.errors import InputError

TYPES = ("numeric", "integer", "binary", "categorical", "identifier")
REQUIRED = ("column", "type")
BINS = 10
QUASI_NAMES = frozenset({"age", "sex", "gender", "male", "female", "race", "ethnicity", "ethnic", "edu", "education",
                         "income", "marital", "marital_status", "zip", "zipcode", "postcode", "state", "county"})
QUASI_WORDS = ("insurance", "income", "education", "ethnicity", "marital status", "postal code", "zip code")


def draft_schema(dictionary: str | Path, name: str | None = None) -> dict[str, Any]:
    """The schema document (a dict) drafted from ``dictionary``; errors name its file and line."""
    path = Path(dictionary)
    try:
        with path.open(newline="", encoding="utf-8-sig") as fh:
            rows = list(csv.DictReader(fh))
            header = list(rows[0].keys()) if rows else []
    except OSError as exc:
        raise InputError(f"{path}: cannot read the dictionary ({exc.strerror})") from None
    except (UnicodeDecodeError, csv.Error) as exc:
        raise InputError(f"{path}: not a UTF-8 CSV data dictionary ({exc.__class__.__name__})") from None
    if not rows:
        raise InputError(f"{path}: the dictionary has no rows (a header and one row per column are expected)")
    missing = [c for c in REQUIRED if c not in header]
    if missing:
        raise InputError(f"{path}:1: the dictionary has no '{missing[0]}' column; needed: {', '.join(REQUIRED)} "
                         "(and lower_bound, upper_bound for numbers, levels for categories)")
    columns: list[dict[str, Any]] = []
    seen: set[str] = set()
    for i, row in enumerate(rows):
        line = i + 2
        columns.append(_column(path, line, {k: (v or "").strip() for k, v in row.items() if k}, seen))
    stem = name or path.name.split(".dictionary")[0].split(".")[0]
    doc: dict[str, Any] = {
        "privsynth_schema": 1,
        "name": stem,
        "description": f"Drafted from {path.name} by privsynth schema draft: bounds, levels and units from the "
                       f"public data dictionary (not from the data); {BINS} equal-width bins per number.",
        "input": "table",
    }
    doc["columns"] = columns  # no patient_id: only a person knows whether an identifier is a stable patient id
    return doc


def _safe_name(text: str) -> str:
    name = re.sub(r"\W", "_", text)
    return f"c_{name}" if not name or name[0].isdigit() else name


def _column(path: Path, line: int, row: dict[str, str], seen: set[str]) -> dict[str, Any]:
    where = f"{path}:{line}"
    source = row.get("column", "")
    if not source:
        raise InputError(f"{where}: field 'column' is empty; every row names a column of the table")
    name = _safe_name(source)
    if name in seen:
        raise InputError(f"{where}: field 'column': '{source}' is listed twice (as '{name}')")
    seen.add(name)
    kind = row.get("type", "").lower()
    if kind not in TYPES:
        raise InputError(f"{where}: field 'type' of '{source}': must be one of {', '.join(TYPES)}")
    meaning, unit = row.get("meaning", ""), row.get("unit", "")
    description = meaning + (f" [{unit}]" if unit and kind in ("numeric", "integer") else "")
    col: dict[str, Any] = {"name": name}
    if description:
        col["description"] = description
    if kind == "identifier":
        col.update({"role": "direct_identifier", "faker": "id", "source": {"column": source}})
        return col
    col["role"] = "quasi_identifier" if _quasi(name, meaning) else "sensitive"
    col["source"] = {"column": source, **({"unit": unit} if unit and kind in ("numeric", "integer") else {})}
    if kind in ("numeric", "integer"):
        lower, upper = (_bound(where, row, f, source) for f in ("lower_bound", "upper_bound"))
        if not lower < upper:
            raise InputError(f"{where}: fields 'lower_bound', 'upper_bound' of '{source}': the lower bound must be "
                             "below the upper bound")
        col["kind"] = kind
        col["domain"] = {"lower": lower, "upper": upper, "bins": BINS}
    elif kind == "binary":
        col["kind"] = "categorical"
        col["domain"] = {"categories": [0, 1], "other": False}
    else:
        levels = [level.strip() for level in row.get("levels", "").split("|") if level.strip()]
        if not levels:
            raise InputError(f"{where}: field 'levels' of '{source}': a categorical column needs its public "
                             "levels, separated by '|'")
        if len(set(levels)) != len(levels):
            raise InputError(f"{where}: field 'levels' of '{source}': a level is listed twice")
        col["kind"] = "categorical"
        col["domain"] = {"categories": levels}
    return col


def _bound(where: str, row: dict[str, str], field: str, source: str) -> int | float:
    text = row.get(field, "")
    try:
        value = float(text)
    except ValueError:
        raise InputError(f"{where}: field '{field}' of '{source}': a number is needed (public bounds of a "
                         "numeric column come from the dictionary, never from the data)") from None
    return int(value) if value.is_integer() else value


def _quasi(name: str, meaning: str) -> bool:
    text = meaning.lower()
    return name.lower() in QUASI_NAMES or any(word in text for word in QUASI_WORDS)


def dump_draft(doc: dict[str, Any], dictionary: str | Path) -> str:
    """The drafted schema as YAML, with a header saying what to review."""
    header = (f"# privsynth schema drafted from {Path(dictionary).name} (privsynth schema draft).\n"
              "# Review before use: roles (quasi_identifier / sensitive / other), target, protected,\n"
              "# patient_id, bins, and clinical rules (constraints, structure); docs/schema.md.\n")
    return header + yaml.safe_dump(doc, sort_keys=False, allow_unicode=True, width=110)
