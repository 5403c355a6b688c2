"""Read and write clinical tables (CSV, Parquet) described by a ``table`` schema.

One row is one patient (the privacy unit). Each learned column's ``source.column`` names
the input column. A value that cannot be read as the column's kind is an error naming
file, line and column (never the value); with ``on_error="skip"`` it is counted and
treated as missing.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from privsynth.errors import InputError
from privsynth.schema.model import CategoricalDomain, Schema

TABLE_SUFFIXES = (".csv", ".csv.gz", ".parquet")


@dataclass
class TableReport:
    """Counts only: rows and files read, values that could not be read."""

    files_read: int = 0
    rows: int = 0
    unreadable_value: Counter[str] = field(default_factory=Counter)

    def as_dict(self) -> dict[str, Any]:
        return {"files_read": self.files_read, "patients": self.rows,
                "unreadable_value": dict(self.unreadable_value)}


def _read_one(path: Path) -> pd.DataFrame:
    name = path.name.lower()
    try:
        if name.endswith(".parquet"):
            return pd.read_parquet(path)
        if name.endswith((".csv", ".csv.gz")):
            return pd.read_csv(path, dtype=str, keep_default_na=False, na_values=[""], encoding="utf-8")
    except FileNotFoundError:
        raise InputError(f"{path}: no such file") from None
    except UnicodeDecodeError as exc:
        raise InputError(f"{path}: not UTF-8 (invalid byte at offset {exc.start})") from None
    except (pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        line = str(exc).split("line ")[-1].split(",")[0] if "line " in str(exc) else ""
        where = f"{path}:{line}" if line.isdigit() else str(path)
        raise InputError(f"{where}: malformed CSV ({type(exc).__name__})") from None
    except (OSError, ValueError) as exc:
        raise InputError(f"{path}: cannot read table ({type(exc).__name__})") from None
    raise InputError(f"{path}: not a table file; use .csv, .csv.gz or .parquet")


def read_table(
    inputs: Iterable[str | Path], schema: Schema, *, on_error: str = "raise"
) -> tuple[pd.DataFrame, TableReport]:
    """Read one or more tables into the raw patient view (the schema's learned columns)."""
    if schema.input_format != "table":
        raise InputError("this schema describes FHIR input; give FHIR files, or use a table schema")
    paths = [Path(p) for p in inputs]
    if not paths:
        raise InputError("no input table given")
    report = TableReport()
    parts = []
    for path in paths:
        if path.is_dir():
            raise InputError(f"{path}: is a directory; name the table file(s)")
        frame = _read_one(path)
        parts.append(_columns(frame, path, schema, report, on_error))
        report.files_read += 1
    view = pd.concat(parts, ignore_index=True) if len(parts) > 1 else parts[0]
    if len(view) == 0:
        raise InputError(f"{paths[0]}: the table has no rows")
    report.rows = len(view)
    return view, report


def _columns(
    frame: pd.DataFrame, path: Path, schema: Schema, report: TableReport, on_error: str
) -> pd.DataFrame:
    out: dict[str, pd.Series] = {}
    for col in schema.learned_columns:
        name = col.source.column or col.name
        if name not in frame.columns:
            import difflib

            close = difflib.get_close_matches(name, [str(c) for c in frame.columns], n=1)
            hint = f"; did you mean '{close[0]}'?" if close else ""
            raise InputError(f"{path}: column '{name}' (schema column '{col.name}') is not in the table{hint}")
        series = frame[name]
        if col.kind in ("numeric", "integer") or (
            isinstance(col.domain, CategoricalDomain) and col.domain.integer_codes
        ):
            numbers = pd.to_numeric(series, errors="coerce")
            bad = numbers.isna() & series.notna()
            if bad.any():
                line = int(np.flatnonzero(bad.to_numpy())[0]) + 2  # header is line 1
                if on_error != "skip":
                    raise InputError(
                        f"{path}:{line}: column '{name}': not a number ({int(bad.sum())} such value(s)); "
                        "fix the file or use --skip-bad-input to treat them as missing"
                    )
                report.unreadable_value[col.name] += int(bad.sum())
            series = numbers
        out[col.name] = series.reset_index(drop=True)
    return pd.DataFrame(out)


def _parquet_ready(frame: pd.DataFrame) -> pd.DataFrame:
    """Parquet needs one type per column: a column mixing integer categories with the
    'other' bucket is written as text (the CSV is unchanged)."""
    out = frame
    for name in frame.columns:
        values = frame[name]
        if values.dtype == object and len({type(v) for v in values.dropna()}) > 1:
            out = out.copy() if out is frame else out
            out[name] = values.map(lambda v: v if pd.isna(v) else str(v)).astype("string")
    return out


def write_table(frame: pd.DataFrame, directory: Path, stem: str) -> list[Path]:
    """Write ``frame`` as ``<stem>.csv`` and ``<stem>.parquet`` (atomically each)."""
    import io

    from privsynth.release.atomic import write_bytes

    csv_path = directory / f"{stem}.csv"
    parquet_path = directory / f"{stem}.parquet"
    write_bytes(csv_path, frame.to_csv(index=False).encode())
    buf = io.BytesIO()
    _parquet_ready(frame).to_parquet(buf, index=False)
    write_bytes(parquet_path, buf.getvalue())
    return [csv_path, parquet_path]
