"""Load and validate a schema from a YAML file or a dict.

Every error names the schema file, the line and the field, says what is allowed and
how to fix it. See ``docs/schema.md`` for the format.
"""

from __future__ import annotations

import copy
import dataclasses
import datetime as dt
import difflib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, cast

import yaml

from privsynth.schema import rule as rules
from privsynth.schema.columns import parse_code_groups, parse_column, parse_patient_key
from privsynth.schema.document import Document, Key, check_keys, choice, number, read_yaml
from privsynth.schema.model import (
    CategoricalDomain,
    CodeGroup,
    Column,
    Schema,
    Structure,
    pair_conditions,
)
from privsynth.schema.streams import parse_timeline, timeline_structure
from privsynth.schema.timeline import Timeline

SCHEMA_KEYS = ("privsynth_schema", "name", "description", "input", "reference_date",
               "code_groups", "columns", "target", "protected", "patient_id", "constraints", "plausibility",
               "structure", "timeline", "extends", "drop_columns")


STRUCTURE_KEYS = ("share", "marginals")


def load_schema(source: str | Path | Mapping[str, Any]) -> Schema:
    """Load a schema from a YAML file path or from a dict; validate it fully."""
    if isinstance(source, Mapping):
        return _build(dict(source), Document("<schema dict>", {}))
    data, doc = read_yaml(source, "schema")
    if not isinstance(data, dict):
        raise doc.error((), "a schema must be a mapping with 'name' and 'columns'")
    base: tuple[dict[str, Any], Document] | None = None
    if "extends" in data:
        data, base = _extend(data, doc)
    elif "drop_columns" in data:
        raise doc.error(("drop_columns",), "only a schema that 'extends' another drops columns")
    schema = _build(data, doc, base)
    return schema


def _extend(data: dict[str, Any], doc: Document) -> tuple[dict[str, Any], tuple[dict[str, Any], Document]]:
    """A schema written as another (``extends: FILE``, relative to this one) with its own
    name, description, code groups added, columns dropped (``drop_columns``), a timeline,
    and rules added to the base's (``constraints``, ``plausibility``). The base is validated
    on its own first, so its errors name its own file and line; it is returned with its
    document, so its rules keep their own lines."""
    base_name = data["extends"]
    if not isinstance(base_name, str) or not base_name:
        raise doc.error(("extends",), "must be the path of a schema file, relative to this one")
    base_path = Path(doc.file).parent / base_name
    if not base_path.is_file():
        raise doc.error(("extends",), f"no schema file '{base_name}' next to this one")
    load_schema(base_path)
    base, base_doc = read_yaml(base_path, "schema")
    if "extends" in base:
        raise doc.error(("extends",), f"'{base_name}' extends another schema itself; extend one level only")
    drop = data.get("drop_columns", [])
    names = [c.get("name") for c in base.get("columns", []) if isinstance(c, dict)]
    if not isinstance(drop, list):
        raise doc.error(("drop_columns",), "must be a list of column names of the base schema")
    for i, name in enumerate(drop):
        if name not in names:
            raise doc.error(("drop_columns", i), f"'{name}' is not a column of '{base_name}'")
    merged = {k: v for k, v in base.items() if k not in ("name", "description", "constraints", "plausibility")}
    merged.update({k: v for k, v in data.items() if k not in ("extends", "drop_columns", "code_groups", "columns")})
    merged["code_groups"] = {**base.get("code_groups", {}), **data.get("code_groups", {})}
    merged["columns"] = [c for c in base["columns"] if not (isinstance(c, dict) and c.get("name") in drop)]
    merged["columns"] += data.get("columns", [])
    return merged, (base, base_doc)


def _build(data: dict[str, Any], doc: Document, base: tuple[dict[str, Any], Document] | None = None) -> Schema:
    check_keys(doc, data, (), SCHEMA_KEYS, "the schema")
    name, input_format, ref = _header(doc, data)
    groups = parse_code_groups(doc, data.get("code_groups", {}))
    columns, timeline = _view(doc, data, input_format, groups)
    target, protected = _target_and_protected(doc, data, columns)
    patient_id = parse_patient_key(doc, data.get("patient_id"), input_format, [c.name for c in columns])
    columns = _formulas(doc, data["columns"], columns[:len(data["columns"])]) + columns[len(data["columns"]):]
    document = copy.deepcopy(data)
    constraints = _inherited(base, "constraints", "declared", columns, document) + _rules(
        doc, data.get("constraints", []), "constraints", columns, "declared") + _anchored(doc, timeline)
    plausibility = _inherited(base, "plausibility", "plausibility", columns, document) + _rules(
        doc, data.get("plausibility", []), "plausibility", columns, "plausibility")
    structure = _structure(doc, data.get("structure"), columns)
    if timeline is not None:
        structure = timeline_structure(timeline, columns, structure, groups)
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
        document=document,
    )


def _header(doc: Document, data: dict[str, Any]) -> tuple[str, str, dt.date | None]:
    """The schema's version (1), ``name``, ``input`` format and ``reference_date`` (FHIR needs one)."""
    version = data.get("privsynth_schema", 1)
    if version != 1:
        raise doc.error(("privsynth_schema",), "only version 1 is supported")
    name = data.get("name")
    if not isinstance(name, str) or not name:
        raise doc.error(("name",), "a schema needs a non-empty 'name'")
    input_format = choice(doc, data.get("input", "fhir"), ("input",), ("fhir", "table"))
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
    return name, input_format, ref


def _view(doc: Document, data: dict[str, Any], input_format: str, groups: dict[str, CodeGroup]
          ) -> tuple[list[Column], Timeline | None]:
    """The declared columns, then the timeline's cell columns (if any); at least one learned,
    and every code group's indications naming a condition column."""
    raw_columns = data.get("columns")
    if not isinstance(raw_columns, list) or not raw_columns:
        raise doc.error(("columns",), "a schema needs a non-empty list of 'columns'")
    columns: list[Column] = []
    seen: set[str] = set()
    for i, raw in enumerate(raw_columns):
        col = parse_column(doc, raw, ("columns", i), input_format, groups)
        if col.name in seen:
            raise doc.error(("columns", i, "name"), f"column name '{col.name}' is used twice")
        seen.add(col.name)
        columns.append(col)
    timeline = None
    if "timeline" in data:
        if input_format != "fhir":
            raise doc.error(("timeline",), "timelines are read from FHIR; a table schema has none")
        timeline, cells = parse_timeline(doc, data["timeline"], groups, seen, columns)
        columns += cells
    if not any(c.learned for c in columns):
        raise doc.error(("columns",), "at least one column must be learned (not a direct_identifier)")
    _check_indications(doc, groups, columns)
    return columns, timeline


def _check_indications(doc: Document, groups: dict[str, CodeGroup], columns: list[Column]) -> None:
    """Every condition a code group's ``indications`` name is a condition column of the schema."""
    flags = {c.name for c in pair_conditions(columns)}
    for group in groups.values():
        for code, names in group.indications:
            for n in names:
                if n not in flags:
                    raise doc.error(("code_groups", group.name, "indications", code),
                                    f"'{n}' is not a condition column (a yes/no column of a Condition) of this "
                                    f"schema; allowed: {', '.join(sorted(flags))}")


def _target_and_protected(doc: Document, data: dict[str, Any], columns: list[Column]) -> tuple[str | None, list[Any]]:
    """The ``target`` of utility reports and the ``protected`` attributes: learned columns."""
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
    return target, protected


def _inherited(base: tuple[dict[str, Any], Document] | None, field_name: str, kind: str, columns: list[Column],
               document: dict[str, Any]) -> tuple[rules.Rule, ...]:
    """The base schema's rules of a field (it was validated on its own), less those on a
    column this schema drops; the self-contained ``document`` gets them too."""
    if base is None:
        return ()
    raw, base_doc = base[0].get(field_name, []), base[1]
    names = {c.name for c in columns}
    kept = [r for r in raw if rules.parse_rule(r, kind).columns <= names]
    if kept:
        document[field_name] = copy.deepcopy(kept) + list(document.get(field_name, []))
    return _rules(base_doc, kept, field_name, columns, kind)


def _anchored(doc: Document, timeline: Timeline | None) -> tuple[rules.Rule, ...]:
    """A value anchored to an onset exists only with its condition."""
    if timeline is None:
        return ()
    return tuple(rules.parse_rule(f"{name} is present -> {group.around.condition}", "declared",
                                  doc.where(("timeline",)))
                 for stream in timeline.streams for group in stream.groups if group.around is not None
                 for name in stream.anchored(group))


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


def _formulas(doc: Document, raw_columns: list[Any], columns: list[Column]) -> list[Column]:
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


def _rules(doc: Document, raw: Any, field_name: str, columns: list[Column], kind: str) -> tuple[rules.Rule, ...]:
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


def _check_rule(doc: Document, key: Key, node: rules.Node, columns: Mapping[str, Column]) -> None:
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


def _structure(doc: Document, raw: Any, columns: list[Column]) -> Structure | None:
    if raw is None:
        return None
    key: Key = ("structure",)
    data = check_keys(doc, raw, key, STRUCTURE_KEYS, "structure")
    share = number(doc, data.get("share", 0.2), key + ("share",))
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
