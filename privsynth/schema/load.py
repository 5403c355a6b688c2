"""Load and validate a schema from a YAML file or a dict.

Every error names the schema file, the line and the field, says what is allowed and
how to fix it. See ``docs/schema.md`` for the format.
"""

from __future__ import annotations

import copy
import dataclasses
import datetime as dt
import difflib
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any, cast

import yaml

from privsynth.errors import PrivsynthError, SchemaError
from privsynth.schema import path as fpath
from privsynth.schema import rule as rules
from privsynth.schema.model import (
    FAKER_KINDS,
    KINDS,
    ROLES,
    SHARED_IDENTIFIER,
    SUMMARIES,
    TRANSFORMS,
    CategoricalDomain,
    Category,
    CodeGroup,
    Column,
    Domain,
    NumericDomain,
    PatientKey,
    Schema,
    Source,
    Structure,
    Where,
)
from privsynth.schema.timeline import (
    GRAINS,
    MAX_TIMELINE_COLUMNS,
    STREAM_RESOURCES,
    Around,
    EventGroup,
    Stream,
    Timeline,
)

Key = tuple[str | int, ...]

SCHEMA_KEYS = ("privsynth_schema", "name", "description", "input", "reference_date",
               "code_groups", "columns", "target", "protected", "patient_id", "constraints", "plausibility",
               "structure", "timeline", "extends", "drop_columns")
TIMELINE_KEYS = ("streams", "share")
STREAM_KEYS = ("name", "resource", "kind", "window_years", "grain", "max_events", "max_per_grain", "bins",
               "groups")
EVENT_GROUP_KEYS = ("name", "codes", "where", "path", "unit", "domain", "output", "treats", "follows", "around")
AROUND_KEYS = ("condition", "at_days", "after_days")
FOLLOWS_CELLS = 3  # the most recent cells of a group measured with each condition it follows
COLUMN_KEYS = ("name", "description", "kind", "role", "source", "domain", "faker", "output", "derived")
STRUCTURE_KEYS = ("share", "marginals")
SOURCE_KEYS = ("resource", "path", "codes", "where", "summary", "transform", "date", "unit",
               "column")
DOMAIN_KEYS = ("categories", "other", "missing", "lower", "upper", "bins")
GROUP_KEYS = ("system", "codes")
OUTPUT_KEYS = ("category", "display", "system", "code", "unit")
CODE_SYSTEMS = {
    "snomed": "http://snomed.info/sct",
    "loinc": "http://loinc.org",
    "rxnorm": "http://www.nlm.nih.gov/research/umls/rxnorm",
    "icd10": "http://hl7.org/fhir/sid/icd-10-cm",
}


class _Doc:
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
        field = _dotted(key)
        loc = self.file + (f":{line}" if line else "")
        return f"{loc}: field '{field}'" if field else loc

    def error(self, key: Key, message: str) -> PrivsynthError:
        return self.error_type(f"{self.where(key)}: {message}")


def _dotted(key: Key) -> str:
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
              error_type: type[PrivsynthError] = SchemaError) -> tuple[Any, _Doc]:
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
        raise _Doc(file, lines, error_type).error(
            exc.key, "a number with a leading zero would be read as octal; write codes in quotes ('0100')"
        ) from None
    return data, _Doc(file, lines, error_type)


def load_schema(source: str | Path | Mapping[str, Any]) -> Schema:
    """Load a schema from a YAML file path or from a dict; validate it fully."""
    if isinstance(source, Mapping):
        return _build(dict(source), _Doc("<schema dict>", {}))
    data, doc = read_yaml(source, "schema")
    if not isinstance(data, dict):
        raise doc.error((), "a schema must be a mapping with 'name' and 'columns'")
    if "extends" in data:
        data = _extend(data, doc)
    elif "drop_columns" in data:
        raise doc.error(("drop_columns",), "only a schema that 'extends' another drops columns")
    schema = _build(data, doc)
    return schema


def _extend(data: dict[str, Any], doc: _Doc) -> dict[str, Any]:
    """A schema written as another (``extends: FILE``, relative to this one) with its own
    name, description, code groups added, columns dropped (``drop_columns``) and a timeline.
    The base is validated on its own first, so its errors name its own file and line."""
    base_name = data["extends"]
    if not isinstance(base_name, str) or not base_name:
        raise doc.error(("extends",), "must be the path of a schema file, relative to this one")
    base_path = Path(doc.file).parent / base_name
    if not base_path.is_file():
        raise doc.error(("extends",), f"no schema file '{base_name}' next to this one")
    load_schema(base_path)
    base, _ = read_yaml(base_path, "schema")
    if "extends" in base:
        raise doc.error(("extends",), f"'{base_name}' extends another schema itself; extend one level only")
    drop = data.get("drop_columns", [])
    names = [c.get("name") for c in base.get("columns", []) if isinstance(c, dict)]
    if not isinstance(drop, list):
        raise doc.error(("drop_columns",), "must be a list of column names of the base schema")
    for i, name in enumerate(drop):
        if name not in names:
            raise doc.error(("drop_columns", i), f"'{name}' is not a column of '{base_name}'")
    merged = {k: v for k, v in base.items() if k not in ("name", "description")}
    merged.update({k: v for k, v in data.items() if k not in ("extends", "drop_columns", "code_groups", "columns")})
    merged["code_groups"] = {**base.get("code_groups", {}), **data.get("code_groups", {})}
    merged["columns"] = [c for c in base["columns"] if not (isinstance(c, dict) and c.get("name") in drop)]
    merged["columns"] += data.get("columns", [])
    return merged


def _keys(doc: _Doc, data: Any, key: Key, allowed: tuple[str, ...], what: str) -> dict[str, Any]:
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


def _choice(doc: _Doc, value: Any, key: Key, allowed: tuple[str, ...]) -> str:
    if value not in allowed:
        close = difflib.get_close_matches(str(value), allowed, n=1)
        hint = f" Did you mean '{close[0]}'?" if close else ""
        raise doc.error(key, f"must be one of {', '.join(allowed)}.{hint}")
    return cast(str, value)


def _number(doc: _Doc, value: Any, key: Key) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise doc.error(key, "must be a finite number")
    return float(value)


def _build(data: dict[str, Any], doc: _Doc) -> Schema:
    _keys(doc, data, (), SCHEMA_KEYS, "the schema")
    version = data.get("privsynth_schema", 1)
    if version != 1:
        raise doc.error(("privsynth_schema",), "only version 1 is supported")
    name = data.get("name")
    if not isinstance(name, str) or not name:
        raise doc.error(("name",), "a schema needs a non-empty 'name'")
    input_format = _choice(doc, data.get("input", "fhir"), ("input",), ("fhir", "table"))
    ref = data.get("reference_date")
    if ref is None and input_format == "fhir":
        raise doc.error(("reference_date",), "a FHIR schema needs 'reference_date' (YYYY-MM-DD) for ages")
    if ref is not None and not isinstance(ref, dt.date):
        try:
            ref = dt.date.fromisoformat(str(ref))
        except ValueError:
            raise doc.error(("reference_date",), "must be a date written YYYY-MM-DD") from None
    if isinstance(ref, dt.datetime):
        ref = ref.date()
    groups = _groups(doc, data.get("code_groups", {}))
    raw_columns = data.get("columns")
    if not isinstance(raw_columns, list) or not raw_columns:
        raise doc.error(("columns",), "a schema needs a non-empty list of 'columns'")
    columns: list[Column] = []
    seen: set[str] = set()
    for i, raw in enumerate(raw_columns):
        col = _column(doc, raw, ("columns", i), input_format, groups)
        if col.name in seen:
            raise doc.error(("columns", i, "name"), f"column name '{col.name}' is used twice")
        seen.add(col.name)
        columns.append(col)
    timeline = None
    if "timeline" in data:
        if input_format != "fhir":
            raise doc.error(("timeline",), "timelines are read from FHIR; a table schema has none")
        timeline, cells = _timeline(doc, data["timeline"], groups, seen, columns)
        columns += cells
    if not any(c.learned for c in columns):
        raise doc.error(("columns",), "at least one column must be learned (not a direct_identifier)")
    learned = [c.name for c in columns if c.learned]
    target = data.get("target")
    if target is not None and target not in learned:
        raise doc.error(("target",), f"'{target}' is not a learned column; allowed: {', '.join(learned)}")
    protected = data.get("protected", [])
    if not isinstance(protected, list):
        raise doc.error(("protected",), "must be a list of learned column names")
    for i, attribute in enumerate(protected):
        if attribute not in learned:
            raise doc.error(("protected", i), f"'{attribute}' is not a learned column; allowed: {', '.join(learned)}")
    patient_id = _patient_key(doc, data.get("patient_id"), input_format, [c.name for c in columns])
    columns = _formulas(doc, data["columns"], columns[:len(data["columns"])]) + columns[len(data["columns"]):]
    constraints = _rules(doc, data.get("constraints", []), "constraints", columns, "declared")
    if timeline is not None:  # a value anchored to an onset exists only with its condition
        constraints += tuple(rules.parse_rule(f"{name} is present -> {group.around.condition}", "declared",
                                              doc.where(("timeline",)))
                             for stream in timeline.streams for group in stream.groups if group.around is not None
                             for name in stream.anchored(group))
    plausibility = _rules(doc, data.get("plausibility", []), "plausibility", columns, "plausibility")
    structure = _structure(doc, data.get("structure"), columns)
    if timeline is not None:
        structure = _timeline_structure(timeline, columns, structure)
    return Schema(
        name=name,
        input_format=cast(Any, input_format),
        reference_date=ref,
        columns=tuple(columns),
        code_groups=groups,
        description=data.get("description"),
        source_file=None if doc.file.startswith("<") else doc.file,
        target=target,
        protected=tuple(protected),
        patient_id=patient_id,
        constraints=constraints,
        plausibility=plausibility,
        structure=structure,
        timeline=timeline,
        document=copy.deepcopy(data),
    )


def dump_schema(schema: Schema) -> bytes:
    """The schema as a self-contained YAML document (``extends`` resolved): what a model
    directory carries so that the model can be sampled without the original files."""
    if schema.document is None:
        raise ValueError("this schema was not loaded from a document")
    header = (f"# schema '{schema.name}' as the model was fitted with it (public: no data in it)\n"
              "# written by privsynth; load it with privsynth.schema.load_schema\n")
    return header.encode() + yaml.safe_dump(_yaml_ready(schema.document), sort_keys=False, allow_unicode=True).encode()


def _yaml_ready(value: Any) -> Any:
    """A document of plain YAML types (a schema given as a dict may hold numpy scalars or tuples)."""
    if isinstance(value, Mapping):
        return {str(k): _yaml_ready(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_yaml_ready(v) for v in value]
    if hasattr(value, "item") and not isinstance(value, str | bytes):
        return value.item()  # numpy scalars
    return value


def _formulas(doc: _Doc, raw_columns: list[Any], columns: list[Column]) -> list[Column]:
    """Parse each derived column's formula: numeric columns that are learned (not derived)."""
    by_name = {c.name: c for c in columns}
    out = []
    for i, (raw, col) in enumerate(zip(raw_columns, columns)):
        text = raw.get("derived") if isinstance(raw, dict) else None
        if text is None:
            out.append(col)
            continue
        key: Key = ("columns", i, "derived")
        if col.role == "direct_identifier" or col.kind not in ("numeric", "integer"):
            raise doc.error(key, "only numeric or integer columns (with a public domain) can be derived")
        if not isinstance(text, str):
            raise doc.error(key, "must be a formula such as 'body_weight / (body_height / 100) ** 2'")
        try:
            formula = rules.parse_formula(text)
        except rules.RuleSyntaxError as exc:
            raise doc.error(key, f"{exc}") from None
        for name in sorted(formula.columns):
            other = by_name.get(name)
            if other is None or not other.learned or other.kind not in ("numeric", "integer"):
                learned = [c.name for c in columns if c.learned and c.kind in ("numeric", "integer")]
                close = difflib.get_close_matches(name, learned, n=1)
                hint = f" Did you mean '{close[0]}'?" if close else ""
                raise doc.error(key, f"'{name}' is not a learned numeric column (a formula reads those).{hint}")
        out.append(dataclasses.replace(col, derived=formula))
    return out


def _rules(doc: _Doc, raw: Any, field_name: str, columns: list[Column], kind: str) -> tuple[rules.Rule, ...]:
    if not isinstance(raw, list):
        raise doc.error((field_name,), "must be a list of rules such as 'diabetes_onset_age <= age'")
    by_name = {c.name: c for c in columns if c.in_view}
    out = []
    for i, text in enumerate(raw):
        key: Key = (field_name, i)
        if not isinstance(text, str):
            raise doc.error(key, "a rule is a string; quote it if it holds ':' or starts with '['")
        try:
            rule = rules.parse_rule(text, kind, doc.where(key))
        except rules.RuleSyntaxError as exc:
            raise doc.error(key, str(exc)) from None
        _check_rule(doc, key, rule.node, by_name)
        out.append(rule)
    return tuple(out)


def _check_rule(doc: _Doc, key: Key, node: rules.Node, columns: Mapping[str, Column]) -> None:
    """Every column a rule names exists in the view, with a kind the rule can use."""
    def column(name: str) -> Column:
        if name not in columns:
            close = difflib.get_close_matches(name, list(columns), n=1)
            hint = f" Did you mean '{close[0]}'?" if close else ""
            raise doc.error(key, f"no column '{name}' in the patient view.{hint}")
        return columns[name]

    if isinstance(node, rules.Column):
        col = column(node.name)
        numeric = col.kind in ("numeric", "integer") or (
            isinstance(col.domain, CategoricalDomain) and col.domain.integer_codes)
        if not numeric:
            raise doc.error(key, f"'{col.name}' is {col.kind}: compare it with 'in [...]', not as a number")
    elif isinstance(node, rules.Flag):
        if column(node.column).kind != "boolean":
            raise doc.error(key, f"'{node.column}' is not boolean: a column alone is a condition only if boolean")
    elif isinstance(node, rules.Member):
        col = column(node.column)
        if not isinstance(col.domain, CategoricalDomain):
            raise doc.error(key, f"'{col.name}' is {col.kind}: 'in [...]' takes categorical or boolean columns")
        allowed = set(col.domain.labels) | {rules.MISSING}
        for code in node.codes:
            if code not in allowed:
                close = difflib.get_close_matches(code, sorted(allowed), n=1)
                hint = f" Did you mean '{close[0]}'?" if close else ""
                raise doc.error(key, f"'{code}' is not a category of '{col.name}'.{hint}")
    elif isinstance(node, rules.IsMissing):
        column(node.column)
    for child in vars(node).values():
        if isinstance(child, rules.Node):
            _check_rule(doc, key, child, columns)


def _structure(doc: _Doc, raw: Any, columns: list[Column]) -> Structure | None:
    if raw is None:
        return None
    key: Key = ("structure",)
    data = _keys(doc, raw, key, STRUCTURE_KEYS, "structure")
    share = _number(doc, data.get("share", 0.2), key + ("share",))
    if not 0 < share <= 0.9:
        raise doc.error(key + ("share",), "must be a share of the budget above 0 and at most 0.9")
    learned = [c.name for c in columns if c.learned]
    marginals = data.get("marginals")
    if not isinstance(marginals, list) or not marginals:
        raise doc.error(key + ("marginals",), "must be a non-empty list of column lists, e.g. [[age, body_height]]")
    out: list[tuple[str, ...]] = []
    for i, group in enumerate(marginals):
        gkey = key + ("marginals", i)
        if not isinstance(group, list) or not 2 <= len(group) <= 3 or len(set(map(str, group))) != len(group):
            raise doc.error(gkey, "a marginal is a list of 2 or 3 different learned columns")
        for name in group:
            if name not in learned:
                close = difflib.get_close_matches(str(name), learned, n=1)
                hint = f" Did you mean '{close[0]}'?" if close else ""
                raise doc.error(gkey, f"'{name}' is not a learned column.{hint}")
        ordered = tuple(sorted(group, key=learned.index))
        if ordered not in out:
            out.append(ordered)
    return Structure(tuple(out), share)


def _patient_key(doc: _Doc, raw: Any, input_format: str, names: list[str]) -> PatientKey:
    """``patient_id``: tables name a column of the schema; FHIR takes ``Patient.id`` (the
    default) or a mapping: ``identifier: SYSTEM`` (the primary key is the Patient.identifier
    of that system instead of Patient.id), ``identifiers: [SYSTEM, ...]`` (every other
    stable identifier a patient is also known by: the ledger charges each, and two Patients
    sharing a value of one are one patient) and ``shared: refuse | merge`` (what to do with
    such Patients: stop with an error, the default, or merge them into one patient)."""
    key: Key = ("patient_id",)
    if raw is None:
        return PatientKey()
    if input_format == "table":
        if not isinstance(raw, str) or raw not in names:
            close = difflib.get_close_matches(str(raw), names, n=1)
            hint = f" Did you mean '{close[0]}'?" if close else ""
            raise doc.error(key, f"must name a column of this schema (the table's patient id).{hint}")
        return PatientKey(column=raw)
    if raw == "Patient.id":
        return PatientKey()
    if not isinstance(raw, dict):
        raise doc.error(key, "a FHIR schema takes 'Patient.id' (the default) or a mapping with identifier: "
                             "SYSTEM-URI, identifiers: [SYSTEM-URI, ...] and shared: refuse | merge")
    _keys(doc, raw, key, ("identifier", "identifiers", "shared"), "patient_id")
    primary = None
    if "identifier" in raw:
        system = raw["identifier"]
        if not isinstance(system, str) or not system:
            raise doc.error(key + ("identifier",),
                            "must be an identifier system URI, e.g. http://hospital.example.org/mrn")
        primary = CODE_SYSTEMS.get(system, system)
    others = raw.get("identifiers", [])
    if not isinstance(others, list) or not all(isinstance(s, str) and s for s in others):
        raise doc.error(key + ("identifiers",), "must be a list of identifier system URIs")
    systems = tuple(dict.fromkeys(str(CODE_SYSTEMS.get(s, s)) for s in others if CODE_SYSTEMS.get(s, s) != primary))
    shared = raw.get("shared", "refuse")
    if shared not in SHARED_IDENTIFIER:
        raise doc.error(key + ("shared",), f"must be one of {', '.join(SHARED_IDENTIFIER)}")
    return PatientKey(identifier_system=primary, identifiers=systems, shared=shared)


def _categories(doc: _Doc, raw: Any, key: Key) -> tuple[tuple[Category, ...], bool]:
    """Categories as a list of codes, or a mapping code -> display | {display, aliases}."""
    cats: list[Category] = []
    integer = False
    if isinstance(raw, list):
        if raw and all(isinstance(v, int) and not isinstance(v, bool) for v in raw):
            integer = True
        for i, v in enumerate(raw):
            if isinstance(v, bool) or not isinstance(v, str | int):
                raise doc.error(key + (i,), "a category must be a string or an integer")
            cats.append(Category(str(v)))
    elif isinstance(raw, dict):
        if raw and all(isinstance(k, str) and k.lstrip("-").isdigit() for k in raw):
            integer = all(str(int(k)) == k for k in raw)
        for code, spec in raw.items():
            if spec is None or isinstance(spec, str):
                cats.append(Category(str(code), spec))
            elif isinstance(spec, dict):
                _keys(doc, spec, key + (code,), ("display", "aliases"), "a category")
                aliases = spec.get("aliases", [])
                if not isinstance(aliases, list) or not all(isinstance(a, str | int) for a in aliases):
                    raise doc.error(key + (code, "aliases"), "aliases must be a list of strings")
                cats.append(Category(str(code), spec.get("display"), tuple(str(a) for a in aliases)))
            else:
                raise doc.error(key + (code,), "must be a display string or {display, aliases}")
    else:
        raise doc.error(key, "categories must be a list of codes or a mapping code -> display")
    if not cats:
        raise doc.error(key, "at least one category is needed")
    codes = [c.code for c in cats]
    dupes = {c for c in codes if codes.count(c) > 1}
    if dupes:
        raise doc.error(key, f"category '{sorted(dupes)[0]}' is listed twice")
    return tuple(cats), integer


def _groups(doc: _Doc, raw: Any) -> dict[str, CodeGroup]:
    if not isinstance(raw, dict):
        raise doc.error(("code_groups",), "must be a mapping of group name -> {system, codes}")
    groups: dict[str, CodeGroup] = {}
    for name, spec in raw.items():
        key: Key = ("code_groups", name)
        _keys(doc, spec, key, GROUP_KEYS, "a code group")
        system = spec.get("system")
        if not isinstance(system, str):
            raise doc.error(key + ("system",), f"needs a code system URI or one of {', '.join(CODE_SYSTEMS)}")
        system = CODE_SYSTEMS.get(system, system)
        cats, _ = _categories(doc, spec.get("codes"), key + ("codes",))
        groups[name] = CodeGroup(name, system, cats)
    return groups


def _column(
    doc: _Doc, raw: Any, key: Key, input_format: str, groups: Mapping[str, CodeGroup]
) -> Column:
    data = _keys(doc, raw, key, COLUMN_KEYS, "a column")
    name = data.get("name")
    if not isinstance(name, str) or not name.isidentifier():
        raise doc.error(key + ("name",), "a column needs a 'name' made of letters, digits and _")
    role = _choice(doc, data.get("role", "other"), key + ("role",), ROLES)
    if role == "direct_identifier":
        faker = _choice(doc, data.get("faker"), key + ("faker",), FAKER_KINDS)
        kwargs = _source_kwargs(doc, data.get("source", {}), key + ("source",), input_format, groups, None, "value")
        source = Source(**kwargs)
        return Column(name, "categorical", "direct_identifier", source, None,
                      data.get("description"), faker)
    if "faker" in data:
        raise doc.error(key + ("faker",), "only direct_identifier columns take 'faker'")
    kind = _choice(doc, data.get("kind"), key + ("kind",), KINDS)
    src = data.get("source")
    if src is None:
        raise doc.error(key + ("source",), "a column needs a 'source'")
    source = Source(**_source_kwargs(doc, src, key + ("source",), input_format, groups, kind, None))
    domain = _domain(doc, data.get("domain"), key + ("domain",), kind, source)
    output = data.get("output", {})
    _keys(doc, output, key + ("output",), OUTPUT_KEYS, "an output block")
    where = key + ("domain", "bins") if isinstance(domain, NumericDomain) else key + ("domain",)
    return Column(name, cast(Any, kind), cast(Any, role), source, domain,
                  data.get("description"), None, {k: str(v) for k, v in output.items()}, doc.where(where))


def _source_kwargs(
    doc: _Doc, raw: Any, key: Key, input_format: str, groups: Mapping[str, CodeGroup],
    kind: str | None, default_summary: str | None,
) -> dict[str, Any]:
    data = _keys(doc, raw, key, SOURCE_KEYS, "a source")
    if input_format == "table":
        column = data.get("column")
        if not isinstance(column, str):
            raise doc.error(key + ("column",), "a table source needs 'column' (the input column name)")
        extra = set(data) - {"column", "unit"}
        if extra:
            raise doc.error(key + (sorted(extra)[0],), "table sources take only 'column' and 'unit'")
        return {"column": column, "unit": data.get("unit")}
    if default_summary == "value" and not data:
        return {}
    resource = data.get("resource")
    if not isinstance(resource, str):
        raise doc.error(key + ("resource",), "a FHIR source needs 'resource' (e.g. Patient, Condition)")
    try:
        fpath.check(resource, ())
    except fpath.PathSyntaxError as exc:
        raise doc.error(key + ("resource",), f"{exc}; use an R4 resource type name") from None
    summary = _choice(doc, data.get("summary", default_summary or "value"), key + ("summary",), SUMMARIES)
    path = data.get("path")
    if summary in ("value", "first", "last") and not isinstance(path, str):
        raise doc.error(key + ("path",), f"summary '{summary}' needs a 'path' to read")
    for field_name in ("path", "date"):
        text = data.get(field_name)
        if text is None:
            continue
        if not isinstance(text, str):
            raise doc.error(key + (field_name,), "must be a path string such as 'valueQuantity.value'")
        try:
            fpath.check(resource, fpath.parse(text))
        except fpath.PathSyntaxError as exc:
            raise doc.error(key + (field_name,), str(exc)) from None
    codes = data.get("codes")
    if codes is not None and codes not in groups:
        close = difflib.get_close_matches(str(codes), list(groups), n=1)
        hint = f" Did you mean '{close[0]}'?" if close else ""
        raise doc.error(key + ("codes",), f"no code group named '{codes}' in code_groups.{hint}")
    coded = {"code", "medicationCodeableConcept"} & set(fpath._fields(resource))
    if codes is not None and not coded:
        raise doc.error(key + ("codes",), f"R4 '{resource}' has no 'code' element to match codes against")
    wheres: list[Where] = []
    raw_where = data.get("where", [])
    if not isinstance(raw_where, list):
        raise doc.error(key + ("where",), "must be a list of {path: ..., in: [...]}")
    for i, w in enumerate(raw_where):
        wkey = key + ("where", i)
        _keys(doc, w, wkey, ("path", "in"), "a where filter")
        wpath, values = w.get("path"), w.get("in")
        if not isinstance(wpath, str):
            raise doc.error(wkey + ("path",), "needs a 'path'")
        try:
            fpath.check(resource, fpath.parse(wpath))
        except fpath.PathSyntaxError as exc:
            raise doc.error(wkey + ("path",), str(exc)) from None
        if not isinstance(values, list) or not values:
            raise doc.error(wkey + ("in",), "needs a non-empty list of allowed values")
        wheres.append(Where(wpath, frozenset(str(v) for v in values)))
    transform = data.get("transform")
    if transform is not None:
        transform = _choice(doc, transform, key + ("transform",), TRANSFORMS)
    if kind is not None:
        if summary == "exists" and kind != "boolean":
            raise doc.error(key + ("summary",), "summary 'exists' makes a boolean column; set kind: boolean")
        if summary == "count" and kind != "integer":
            raise doc.error(key + ("summary",), "summary 'count' makes an integer column; set kind: integer")
        if transform and kind not in ("numeric", "integer"):
            raise doc.error(key + ("transform",), "a date transform makes a number; set kind: numeric or integer")
    if summary != "value" and resource == "Patient":
        raise doc.error(key + ("summary",), "Patient has one resource per patient; use summary 'value'")
    if raw_where and resource == "Patient":
        raise doc.error(key + ("where",), "filters apply to many-per-patient resources, not Patient")
    return {
        "resource": resource, "path": path, "codes": codes, "where": tuple(wheres),
        "summary": summary, "transform": transform, "date": data.get("date"),
        "unit": None if data.get("unit") is None else str(data.get("unit")),
    }


def _domain(doc: _Doc, raw: Any, key: Key, kind: str, source: Source) -> Domain:
    if kind == "boolean":
        data = _keys(doc, raw or {}, key, ("missing",), "a boolean domain")
        missing = data.get("missing", source.summary not in ("exists",))
        if not isinstance(missing, bool):
            raise doc.error(key + ("missing",), "must be true or false")
        return CategoricalDomain((Category("false"), Category("true")), other=False,
                                 missing=bool(missing))
    if raw is None:
        raise doc.error(key, f"a {kind} column needs a public 'domain' (it never comes from the data)")
    data = _keys(doc, raw, key, DOMAIN_KEYS, "a domain")
    missing = data.get("missing", True)
    if not isinstance(missing, bool):
        raise doc.error(key + ("missing",), "must be true or false")
    if kind == "categorical":
        for bad in ("lower", "upper", "bins"):
            if bad in data:
                raise doc.error(key + (bad,), "categorical domains take categories, other, missing")
        if "categories" not in data:
            raise doc.error(key + ("categories",), "a categorical domain needs 'categories'")
        cats, integer = _categories(doc, data["categories"], key + ("categories",))
        other = data.get("other", True)
        if not isinstance(other, bool):
            raise doc.error(key + ("other",), "must be true or false")
        return CategoricalDomain(cats, other=other, missing=missing, integer_codes=integer)
    for bad in ("categories", "other"):
        if bad in data:
            raise doc.error(key + (bad,), "numeric domains take lower, upper, bins, missing")
    for bound in ("lower", "upper"):
        if bound not in data:
            raise doc.error(key + (bound,), f"a {kind} domain needs public '{bound}' bound")
    lower = _number(doc, data["lower"], key + ("lower",))
    upper = _number(doc, data["upper"], key + ("upper",))
    if not lower < upper:
        raise doc.error(key + ("upper",), "'upper' must be greater than 'lower'")
    edges = _edges(doc, data.get("bins", 10), key + ("bins",), lower, upper, kind == "integer")
    return NumericDomain(lower, upper, edges, missing=missing, integer=kind == "integer")


def _edges(doc: _Doc, bins: Any, key: Key, lower: float, upper: float, integer: bool) -> tuple[float, ...]:
    if isinstance(bins, int) and not isinstance(bins, bool):
        if bins < 1:
            raise doc.error(key, "the number of bins must be at least 1")
        if integer:
            span = upper - lower + 1
            if bins > span:
                bins = int(span)
            step = span / bins
            ints = [lower + round(i * step) for i in range(bins)] + [upper]
            return tuple(sorted(set(ints)))
        step = (upper - lower) / bins
        return tuple(lower + i * step for i in range(bins)) + (upper,)
    if isinstance(bins, dict):
        _keys(doc, bins, key, ("width",), "bins")
        width = _number(doc, bins.get("width"), key + ("width",))
        if width <= 0:
            raise doc.error(key + ("width",), "must be positive")
        n = max(1, math.ceil((upper - lower) / width - 1e-9))
        return tuple(min(upper, lower + i * width) for i in range(n)) + (upper,)
    if isinstance(bins, list):
        listed = tuple(_number(doc, b, key + (i,)) for i, b in enumerate(bins))
        if len(listed) < 2:
            raise doc.error(key, "give at least two bin edges")
        if listed[0] != lower or listed[-1] != upper:
            raise doc.error(key, "the first bin edge must equal 'lower' and the last 'upper'")
        for i, (a, b) in enumerate(zip(listed, listed[1:])):
            if b <= a:
                raise doc.error(key + (i + 1,), "bin edges must be strictly increasing")
        return listed
    raise doc.error(key, "bins must be a count, a list of edges, or {width: W}")


def _timeline(doc: _Doc, raw: Any, groups: Mapping[str, CodeGroup], taken: set[str],
              declared: list[Column]) -> tuple[Timeline, list[Column]]:
    """The timeline's streams and the patient-view columns of their cells."""
    conditions = {c.name for c in declared if c.source.resource == "Condition" and c.source.summary == "exists"}
    onsets = {flag.name: c.name for flag in declared if flag.name in conditions for c in declared
              if c.source.resource == "Condition" and c.source.summary == "first"
              and c.source.codes == flag.source.codes and c.source.transform == "age_at_event"}
    key: Key = ("timeline",)
    data = _keys(doc, raw, key, TIMELINE_KEYS, "a timeline")
    raw_streams = _listed(doc, data, key, "streams", "a timeline")
    streams: list[Stream] = []
    columns: list[Column] = []
    for i, raw_stream in enumerate(raw_streams):
        skey = key + ("streams", i)
        stream, cells = _stream(doc, raw_stream, skey, groups, taken, conditions, onsets)
        if any(s.name == stream.name for s in streams):
            raise doc.error(skey + ("name",), f"stream name '{stream.name}' is used twice")
        streams.append(stream)
        columns += cells
    if len(columns) > MAX_TIMELINE_COLUMNS:
        raise doc.error(key, f"the streams make {len(columns)} cell columns (at most {MAX_TIMELINE_COLUMNS}); use a "
                             "coarser grain, a shorter window or fewer groups")
    share = _number(doc, data.get("share", TIMELINE_SHARE), key + ("share",))
    if not 0 < share <= 0.9:
        raise doc.error(key + ("share",), "must be a share of the budget above 0 and at most 0.9")
    return Timeline(tuple(streams), share), columns


TIMELINE_SHARE = 0.5  # of the budget for the structural prior when a timeline adds its transitions


def _timeline_structure(timeline: Timeline, columns: list[Column], structure: Structure | None) -> Structure:
    """The structural prior with each group's year-to-year transitions (consecutive cells),
    each lab series' most recent cell with the patient column of the same lab, and each
    condition a group ``follows`` with the group's most recent cells (the chain of
    consecutive cells carries it further back)."""
    marginals = list(structure.marginals) if structure is not None else []
    last = {c.output.get("code"): c.name for c in columns if c.source.cell is None and c.source.summary == "last"
            and c.output.get("code")}
    for stream in timeline.streams:
        for group in stream.groups:
            names = stream.columns(group)
            marginals += [(a, b) for a, b in zip(names, names[1:])]
            code = next(c.output.get("code") for c in columns if c.name == names[0])
            if stream.kind == "value" and code in last:
                marginals.append((last[code], names[0]))
            marginals += [(flag, name) for flag in group.follows for name in names[:FOLLOWS_CELLS]]
            if group.around is not None:  # the condition with the values at its onset and after
                marginals.append((group.around.condition, *stream.anchored(group)))
    share = max(structure.share if structure is not None else 0.0, timeline.share)
    return Structure(tuple(dict.fromkeys(marginals)), share)


def _listed(doc: _Doc, data: dict[str, Any], key: Key, field_name: str, what: str) -> list[Any]:
    value = data.get(field_name)
    if not isinstance(value, list) or not value:
        raise doc.error(key + (field_name,), f"{what} needs a non-empty list of '{field_name}'")
    return value


def _whole(doc: _Doc, value: Any, key: Key, lowest: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < lowest:
        raise doc.error(key, f"must be a whole number of at least {lowest}")
    return value


def _stream(doc: _Doc, raw: Any, key: Key, groups: Mapping[str, CodeGroup], taken: set[str],
            conditions: set[str], onsets: Mapping[str, str]) -> tuple[Stream, list[Column]]:
    data = _keys(doc, raw, key, STREAM_KEYS, "a stream")
    name = data.get("name")
    if not isinstance(name, str) or not name.isidentifier():
        raise doc.error(key + ("name",), "a stream needs a 'name' made of letters, digits and _")
    resource = _choice(doc, data.get("resource"), key + ("resource",), STREAM_RESOURCES)
    kind = _choice(doc, data.get("kind", "value" if resource == "Observation" else "count"), key + ("kind",),
                   ("count", "value"))
    window = _whole(doc, data.get("window_years"), key + ("window_years",), 1)
    grain = _choice(doc, data.get("grain", "year"), key + ("grain",), tuple(GRAINS))
    max_events = _whole(doc, data.get("max_events"), key + ("max_events",), 1)
    cap = _whole(doc, data.get("max_per_grain", 1), key + ("max_per_grain",), 1)
    if kind == "value" and "max_per_grain" in data:
        raise doc.error(key + ("max_per_grain",), "a value stream keeps one value (the last) per grain cell")
    if kind == "count" and "bins" in data:
        bins = _edges(doc, data["bins"], key + ("bins",), 0, cap, True)
    else:
        bins = tuple(float(b) for b in range(cap + 1))
    raw_groups = _listed(doc, data, key, "groups", "a stream")
    stream = Stream(name, resource, cast(Any, kind), window, grain, max_events, cap, ())  # its groups below
    event_groups: list[EventGroup] = []
    columns: list[Column] = []
    for j, raw_group in enumerate(raw_groups):
        gkey = key + ("groups", j)
        g = _keys(doc, raw_group, gkey, EVENT_GROUP_KEYS, "an event group")
        gname = g.get("name")
        if not isinstance(gname, str) or not gname.isidentifier():
            raise doc.error(gkey + ("name",), "an event group needs a 'name' made of letters, digits and _")
        if "codes" not in g and "where" not in g:
            raise doc.error(gkey, "an event group needs 'codes' (a code group) or 'where' (a filter)")
        treats = g.get("treats")
        if treats is not None and treats not in conditions:
            raise doc.error(gkey + ("treats",), f"'{treats}' is not a condition column of this schema (name a "
                                                f"Condition 'exists' column; allowed: {', '.join(sorted(conditions))})")
        follows = g.get("follows", [])
        if not isinstance(follows, list) or not follows and "follows" in g:
            raise doc.error(gkey + ("follows",), "must be a non-empty list of condition columns")
        for i, flag in enumerate(follows):
            if flag not in conditions:
                raise doc.error(gkey + ("follows", i), f"'{flag}' is not a condition column of this schema (name "
                                f"a Condition 'exists' column; allowed: {', '.join(sorted(conditions))})")
        around = _around(doc, g["around"], gkey + ("around",), kind, onsets) if "around" in g else None
        group = EventGroup(gname, g.get("codes"), treats, tuple(dict.fromkeys(follows)), around)
        if any(e.name == gname for e in event_groups):
            raise doc.error(gkey + ("name",), f"group name '{gname}' is used twice in this stream")
        event_groups.append(group)
        source: dict[str, Any] = {"resource": resource, "summary": "count" if kind == "count" else "last",
                  **{f: g[f] for f in ("codes", "where", "path", "unit") if f in g}}
        if kind == "count":
            for bad in ("path", "unit", "domain"):
                if bad in g:
                    raise doc.error(gkey + (bad,), "a count stream's groups take no value 'path', 'unit' or 'domain'")
            domain: Any = {"lower": 0, "upper": cap, "bins": list(bins), "missing": False}
        else:
            if "domain" not in g:
                raise doc.error(gkey + ("domain",), "a value stream's group needs a public 'domain'")
            domain = g["domain"]
        raw_col = {"role": "sensitive", "kind": "integer" if kind == "count" else "numeric", "source": source,
                   "domain": domain, "output": g.get("output", {})}
        for k, cname in enumerate(stream.columns(group)):
            columns.append(_group_column(doc, gkey, "name", "the cell column", {**raw_col, "name": cname}, groups,
                                         taken, cell=(name, k)))
        if around is not None:
            at = (-around.at_days, around.at_days)
            for cname, span in zip(stream.anchored(group), (at, around.after_days)):
                columns.append(_group_column(doc, gkey, "around", "the column", {**raw_col, "name": cname}, groups,
                                             taken, anchor=(around.onset_column, *span)))
    return dataclasses.replace(stream, groups=tuple(event_groups)), columns


def _group_column(doc: _Doc, gkey: Key, field_name: str, what: str, raw_col: dict[str, Any],
                  groups: Mapping[str, CodeGroup], taken: set[str], **source: Any) -> Column:
    """A column a timeline group adds (a cell, or a value around an onset): its name unused,
    its ``source`` fields (``cell``, ``anchor``) set."""
    cname = raw_col["name"]
    if cname in taken:
        raise doc.error(gkey + (field_name,), f"{what} '{cname}' clashes with another column's name")
    taken.add(cname)
    col = _column(doc, raw_col, gkey, "fhir", groups)
    return dataclasses.replace(col, source=dataclasses.replace(col.source, **source))


MAX_AROUND_DAYS = 3653  # ten years after an onset


def _around(doc: _Doc, raw: Any, key: Key, kind: str, onsets: Mapping[str, str]) -> Around:
    """A value group's anchor: ``{condition, at_days, after_days: [first, last]}``."""
    if kind != "value":
        raise doc.error(key, "only a value stream's group (a lab) can be anchored 'around' a condition's onset")
    data = _keys(doc, raw, key, AROUND_KEYS, "'around'")
    condition = data.get("condition")
    if not isinstance(condition, str) or condition not in onsets:
        raise doc.error(key + ("condition",), f"'{condition}' is not a condition column with an onset column (a "
                                              "Condition 'exists' column and a 'first' onsetDateTime column with "
                                              f"transform age_at_event on the same codes; allowed: "
                                              f"{', '.join(sorted(onsets)) or 'none'})")
    at = _whole(doc, data.get("at_days"), key + ("at_days",), 0)
    if at > 366:
        raise doc.error(key + ("at_days",), "must be at most 366 (a value 'at' a diagnosis is within a year of it)")
    after = data.get("after_days")
    if (not isinstance(after, list) or len(after) != 2
            or any(isinstance(d, bool) or not isinstance(d, int) for d in after)
            or not at < after[0] < after[1] <= MAX_AROUND_DAYS):
        raise doc.error(key + ("after_days",), f"must be [first, last]: whole days after the onset, at_days < first "
                                               f"< last <= {MAX_AROUND_DAYS}")
    return Around(condition, onsets[condition], at, (after[0], after[1]))
