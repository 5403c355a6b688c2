"""Read and write clinical tables (CSV, Parquet) described by a ``table`` schema.

One row is one patient (the privacy unit). Each learned column's ``source.column`` names
the input column. A value that cannot be read as the column's kind is an error naming
file, line and column (never the value); with ``on_error="skip"`` it is counted and
treated as missing.

The unit is enforced, not assumed: a CSV row with more or fewer fields than the header is
an error with its line number (pandas would otherwise shift every column, or fill in
blanks), and when the schema declares a ``patient_id`` column a patient id given twice, or
not at all, is an error naming both lines. The view's index is the patient id -- or, for a
schema without one, a hash of each row's values -- and only keys the per-patient budget.
"""

from __future__ import annotations

import csv
import gzip
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from privsynth.errors import InputError
from privsynth.ingest import Ingest
from privsynth.schema.model import CategoricalDomain, Schema

TABLE_SUFFIXES = (".csv", ".csv.gz", ".parquet")


@dataclass
class TableReport:
    """Counts only: rows and files read, values that could not be read."""

    files_read: int = 0
    rows: int = 0
    unreadable_value: Counter[str] = field(default_factory=Counter)
    patient_key: str = ""

    def to_ingest(self) -> Ingest:
        """The typed record of this ingest (what crosses into quality and the internal report)."""
        return Ingest(patients=self.rows, patient_key=self.patient_key, files_read=self.files_read,
                      unreadable_value=dict(self.unreadable_value))


@dataclass(frozen=True)
class _Rows:
    """Where each data row of a table starts: its physical line in a CSV (blank lines and
    quoted line breaks counted), or its row number in a Parquet file."""

    path: Path
    lines: np.ndarray | None

    def where(self, row: int) -> str:
        return f"{self.path}:{int(self.lines[row])}" if self.lines is not None else f"{self.path}: row {row + 1}"


def _check_rectangular(path: Path) -> np.ndarray:
    """Every CSV row has exactly as many fields as the header (blank lines aside); returns
    the line each data row starts on."""
    opener = gzip.open if path.name.lower().endswith(".gz") else open
    starts: list[int] = []
    with opener(path, "rt", encoding="utf-8", newline="") as fh:
        reader = csv.reader(fh)
        header = next(reader, None)
        if header is None:
            return np.zeros(0, dtype=np.int64)
        width = len(header)
        before = reader.line_num
        for row in reader:
            if row:
                if len(row) != width:
                    raise InputError(
                        f"{path}:{before + 1}: {len(row)} fields, but the header (line 1) names {width} columns; "
                        "every row needs one field per column (check the delimiter, quoting and any trailing commas)")
                starts.append(before + 1)
            before = reader.line_num
    return np.asarray(starts, dtype=np.int64)


def _read_one(path: Path) -> tuple[pd.DataFrame, _Rows]:
    name = path.name.lower()
    try:
        if name.endswith(".parquet"):
            return pd.read_parquet(path), _Rows(path, None)
        if name.endswith((".csv", ".csv.gz")):
            lines = _check_rectangular(path)
            frame = pd.read_csv(path, dtype=str, keep_default_na=False, na_values=[""], encoding="utf-8",
                                index_col=False)
            return frame, _Rows(path, lines if len(lines) == len(frame) else None)
    except InputError:
        raise
    except FileNotFoundError:
        raise InputError(f"{path}: no such file") from None
    except UnicodeDecodeError as exc:
        raise InputError(f"{path}: not UTF-8 (invalid byte at offset {exc.start})") from None
    except csv.Error as exc:
        raise InputError(f"{path}: malformed CSV ({str(exc).split(':')[0]})") from None
    except (OSError, EOFError) as exc:
        why = getattr(exc, "strerror", None) or type(exc).__name__
        raise InputError(f"{path}: cannot read table ({why})") from None
    except (pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        line = str(exc).split("line ")[-1].split(",")[0] if "line " in str(exc) else ""
        where = f"{path}:{line}" if line.isdigit() else str(path)
        raise InputError(f"{where}: malformed CSV ({type(exc).__name__})") from None
    except ValueError as exc:
        raise InputError(f"{path}: cannot read table ({type(exc).__name__})") from None
    raise InputError(f"{path}: not a table file; use .csv, .csv.gz or .parquet")


def read_table(
    inputs: Iterable[str | Path], schema: Schema, *, on_error: str = "raise", keyed: bool = True
) -> tuple[pd.DataFrame, TableReport]:
    """Read one or more tables into the raw patient view (the schema's learned columns).

    ``keyed=False`` reads tables that need no patient key (another tool's synthetic data,
    an audit's train and holdout): the schema's patient_id column may then be absent, and
    rows are keyed by their content."""
    if schema.input_format != "table":
        raise InputError("this schema describes FHIR input; give FHIR files, or use a table schema")
    paths = [Path(p) for p in inputs]
    if not paths:
        raise InputError("no input table given")
    report = TableReport(patient_key=schema.patient_id.describe("table"))
    parts, keys = [], []
    spans: list[tuple[_Rows, int]] = []
    for path in paths:
        if path.is_dir():
            raise InputError(f"{path}: is a directory; name the table file(s)")
        frame, rows = _read_one(path)
        part = _columns(frame, rows, schema, report, on_error)
        parts.append(part)
        keys.append(_patient_ids(frame, part, rows, schema if keyed else _unkeyed(schema)))
        spans.append((rows, len(part)))
        report.files_read += 1
    view = pd.concat(parts, ignore_index=True) if len(parts) > 1 else parts[0]
    if len(view) == 0:
        raise InputError(f"{paths[0]}: the table has no rows")
    ids = pd.concat(keys, ignore_index=True) if len(keys) > 1 else keys[0]
    if keyed and schema.patient_id.column is not None:
        _refuse_duplicates(ids, spans, schema)
    view.index = pd.Index(ids.to_numpy(dtype=object), name="patient_id", dtype=object)
    report.rows = len(view)
    return view, report


def _unkeyed(schema: Schema) -> Schema:
    import dataclasses

    from privsynth.schema.model import PatientKey

    return dataclasses.replace(schema, patient_id=PatientKey())


def _text(series: pd.Series) -> pd.Series:
    """Values as the text they would be written as: integral numbers without '.0', so a
    CSV and a Parquet export of one table give the same patient keys."""
    if pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series):
        values = series.to_numpy(dtype=np.float64, na_value=np.nan)
        integral = np.isfinite(values) & (np.mod(np.where(np.isfinite(values), values, 0), 1) == 0)
        text = np.where(integral, np.where(integral, values, 0).astype(np.int64).astype(str), values.astype(str))
        out = pd.Series(text.astype(object), index=series.index)
        out[np.isnan(values)] = None
        return out
    return series.map(lambda v: None if v is None or (isinstance(v, float) and np.isnan(v)) or v is pd.NA
                      else str(v)).astype(object)


def _patient_ids(frame: pd.DataFrame, view: pd.DataFrame, rows: _Rows, schema: Schema) -> pd.Series:
    """Each row's stable patient key: the declared patient_id column, else a hash of the row."""
    key = schema.patient_id.column
    if key is None:  # no id: the row's values are the patient (a re-export with changed values is a new one)
        text = pd.DataFrame({c: _text(view[c]).fillna("\x00missing") for c in view.columns})
        hashed = pd.util.hash_pandas_object(text, index=False).to_numpy(dtype=np.uint64)
        return pd.Series(np.char.add("row:", np.char.mod("%016x", hashed)).astype(object))
    col = schema.column(key)
    name = col.source.column or col.name
    if name not in frame.columns:
        raise InputError(f"{rows.path}: column '{name}' (the schema's patient_id) is not in the table")
    ids = _text(frame[name].reset_index(drop=True))
    ids = ids.where(ids.isna(), ids.astype(str).str.strip())  # ' 7' and '7' are one patient
    empty = ids.isna() | (ids == "")
    if empty.any():
        raise InputError(f"{rows.where(int(np.flatnonzero(empty.to_numpy())[0]))}: column '{name}': no patient id "
                         f"({int(empty.sum())} such row(s)); every row needs one (the schema's patient_id keys the "
                         "privacy budget)")
    return ids


def _refuse_duplicates(ids: pd.Series, files: list[tuple[_Rows, int]], schema: Schema) -> None:
    dup = ids.duplicated(keep=False).to_numpy()
    if not dup.any():
        return
    first = int(np.flatnonzero(dup)[0])
    second = int(np.flatnonzero(dup & (ids == ids.iloc[first]).to_numpy())[1])

    def where(row: int) -> str:
        for rows, count in files:
            if row < count:
                return rows.where(row)
            row -= count
        return "?"  # pragma: no cover

    raise InputError(
        f"{where(second)}: the same patient id (column '{schema.patient_id.column}') as {where(first)}; "
        f"{int(dup.sum())} rows share an id with another. One row must be one patient (the privacy unit): merge "
        "or remove the duplicates, or give each export once")


def _columns(
    frame: pd.DataFrame, rows: _Rows, schema: Schema, report: TableReport, on_error: str
) -> pd.DataFrame:
    path = rows.path
    out: dict[str, pd.Series] = {}
    for col in schema.view_columns:
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
                if on_error != "skip":
                    raise InputError(
                        f"{rows.where(int(np.flatnonzero(bad.to_numpy())[0]))}: column '{name}': not a number "
                        f"({int(bad.sum())} such value(s)); "
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

    from privsynth.atomic import write_bytes

    csv_path = directory / f"{stem}.csv"
    parquet_path = directory / f"{stem}.parquet"
    write_bytes(csv_path, frame.to_csv(index=False).encode())
    buf = io.BytesIO()
    _parquet_ready(frame).to_parquet(buf, index=False)
    write_bytes(parquet_path, buf.getvalue())
    return [csv_path, parquet_path]
