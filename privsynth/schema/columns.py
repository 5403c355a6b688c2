"""Columns of a schema: their sources in FHIR or a table, their public domains, the code
groups they read, and the patient key. Every error names the file, line and field."""

from __future__ import annotations

import difflib
import math
from collections.abc import Mapping
from typing import Any, cast

from privsynth.schema import path as fpath
from privsynth.schema.document import Document, Key, check_keys, choice, number
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
    Source,
    Where,
)
from privsynth.schema.summary import SUMMARIES as SUMMARY_KINDS

CODE_SYSTEMS = {
    "snomed": "http://snomed.info/sct",
    "loinc": "http://loinc.org",
    "rxnorm": "http://www.nlm.nih.gov/research/umls/rxnorm",
    "icd10": "http://hl7.org/fhir/sid/icd-10-cm",
}


COLUMN_KEYS = ("name", "description", "kind", "role", "source", "domain", "faker", "output", "derived")


SOURCE_KEYS = ("resource", "path", "codes", "where", "summary", "transform", "date", "unit",
               "column")


DOMAIN_KEYS = ("categories", "other", "missing", "lower", "upper", "bins")


GROUP_KEYS = ("system", "codes", "indications")


OUTPUT_KEYS = ("category", "display", "system", "code", "unit")


def parse_patient_key(doc: Document, raw: Any, input_format: str, names: list[str]) -> PatientKey:
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
    check_keys(doc, raw, key, ("identifier", "identifiers", "shared"), "patient_id")
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


def parse_categories(doc: Document, raw: Any, key: Key) -> tuple[tuple[Category, ...], bool]:
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
                check_keys(doc, spec, key + (code,), ("display", "aliases"), "a category")
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


def parse_code_groups(doc: Document, raw: Any) -> dict[str, CodeGroup]:
    if not isinstance(raw, dict):
        raise doc.error(("code_groups",), "must be a mapping of group name -> {system, codes}")
    groups: dict[str, CodeGroup] = {}
    for name, spec in raw.items():
        key: Key = ("code_groups", name)
        check_keys(doc, spec, key, GROUP_KEYS, "a code group")
        system = spec.get("system")
        if not isinstance(system, str):
            raise doc.error(key + ("system",), f"needs a code system URI or one of {', '.join(CODE_SYSTEMS)}")
        system = CODE_SYSTEMS.get(system, system)
        cats, _ = parse_categories(doc, spec.get("codes"), key + ("codes",))
        groups[name] = CodeGroup(name, system, cats, parse_indications(doc, spec.get("indications"), key, cats))
    return groups


def parse_indications(doc: Document, raw: Any, key: Key, codes: tuple[Category, ...]
                      ) -> tuple[tuple[str, tuple[str, ...]], ...]:
    """``indications: {code: [condition, ...]}``: what each code of the group treats (the
    condition names are checked against the schema's columns once they are read)."""
    if raw is None:
        return ()
    if not isinstance(raw, dict):
        raise doc.error(key + ("indications",), "must be a mapping of code -> a list of condition columns")
    known = {c.code for c in codes}
    out = []
    for code, names in raw.items():
        if str(code) not in known:
            raise doc.error(key + ("indications", code), f"'{code}' is not a code of this group")
        names = [names] if isinstance(names, str) else names
        if not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names):
            raise doc.error(key + ("indications", code), "must name one or more condition columns")
        out.append((str(code), tuple(names)))
    return tuple(out)


def parse_column(
    doc: Document, raw: Any, key: Key, input_format: str, groups: Mapping[str, CodeGroup]
) -> Column:
    data = check_keys(doc, raw, key, COLUMN_KEYS, "a column")
    name = data.get("name")
    if not isinstance(name, str) or not name.isidentifier():
        raise doc.error(key + ("name",), "a column needs a 'name' made of letters, digits and _")
    role = choice(doc, data.get("role", "other"), key + ("role",), ROLES)
    if role == "direct_identifier":
        faker = choice(doc, data.get("faker"), key + ("faker",), FAKER_KINDS)
        kwargs = parse_source(doc, data.get("source", {}), key + ("source",), input_format, groups, None, "value")
        source = Source(**kwargs)
        return Column(name, "categorical", "direct_identifier", source, None,
                      data.get("description"), faker)
    if "faker" in data:
        raise doc.error(key + ("faker",), "only direct_identifier columns take 'faker'")
    kind = choice(doc, data.get("kind"), key + ("kind",), KINDS)
    src = data.get("source")
    if src is None:
        raise doc.error(key + ("source",), "a column needs a 'source'")
    source = Source(**parse_source(doc, src, key + ("source",), input_format, groups, kind, None))
    domain = parse_domain(doc, data.get("domain"), key + ("domain",), kind, source)
    output = data.get("output", {})
    check_keys(doc, output, key + ("output",), OUTPUT_KEYS, "an output block")
    where = key + ("domain", "bins") if isinstance(domain, NumericDomain) else key + ("domain",)
    return Column(name, cast(Any, kind), cast(Any, role), source, domain,
                  data.get("description"), None, {k: str(v) for k, v in output.items()}, doc.where(where))


def parse_source(
    doc: Document, raw: Any, key: Key, input_format: str, groups: Mapping[str, CodeGroup],
    kind: str | None, default_summary: str | None,
) -> dict[str, Any]:
    data = check_keys(doc, raw, key, SOURCE_KEYS, "a source")
    if input_format == "table":
        return _table_source(doc, data, key)
    if default_summary == "value" and not data:
        return {}
    resource = data.get("resource")
    if not isinstance(resource, str):
        raise doc.error(key + ("resource",), "a FHIR source needs 'resource' (e.g. Patient, Condition)")
    try:
        fpath.check(resource, ())
    except fpath.PathSyntaxError as exc:
        raise doc.error(key + ("resource",), f"{exc}; use an R4 resource type name") from None
    summary = choice(doc, data.get("summary", default_summary or "value"), key + ("summary",), SUMMARIES)
    path = data.get("path")
    kind_of = SUMMARY_KINDS[summary]
    if kind_of.reads_value and not isinstance(path, str):
        raise doc.error(key + ("path",), f"summary '{summary}' needs a 'path' to read")
    _check_paths(doc, data, key, resource)
    codes = data.get("codes")
    _check_codes(doc, codes, key, resource, groups)
    raw_where = data.get("where", [])
    wheres = _where_filters(doc, raw_where, key, resource)
    transform = data.get("transform")
    if transform is not None:
        transform = choice(doc, transform, key + ("transform",), TRANSFORMS)
    if kind is not None:
        _check_kind(doc, key, kind, summary, transform)
    if kind_of is not SUMMARY_KINDS["value"] and resource == "Patient":
        raise doc.error(key + ("summary",), "Patient has one resource per patient; use summary 'value'")
    if raw_where and resource == "Patient":
        raise doc.error(key + ("where",), "filters apply to many-per-patient resources, not Patient")
    return {
        "resource": resource, "path": path, "codes": codes, "where": wheres,
        "summary": summary, "transform": transform, "date": data.get("date"),
        "unit": None if data.get("unit") is None else str(data.get("unit")),
    }


def _table_source(doc: Document, data: dict[str, Any], key: Key) -> dict[str, Any]:
    """A table source: the input ``column`` (and its ``unit``), nothing else."""
    column = data.get("column")
    if not isinstance(column, str):
        raise doc.error(key + ("column",), "a table source needs 'column' (the input column name)")
    extra = set(data) - {"column", "unit"}
    if extra:
        raise doc.error(key + (sorted(extra)[0],), "table sources take only 'column' and 'unit'")
    return {"column": column, "unit": data.get("unit")}


def _check_paths(doc: Document, data: dict[str, Any], key: Key, resource: str) -> None:
    """The ``path`` and ``date`` elements, if given, exist in the R4 resource."""
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


def _check_codes(doc: Document, codes: Any, key: Key, resource: str, groups: Mapping[str, CodeGroup]) -> None:
    """``codes``, if given, names a code group, and the resource has a code to match it against."""
    if codes is not None and codes not in groups:
        close = difflib.get_close_matches(str(codes), list(groups), n=1)
        hint = f" Did you mean '{close[0]}'?" if close else ""
        raise doc.error(key + ("codes",), f"no code group named '{codes}' in code_groups.{hint}")
    coded = {"code", "medicationCodeableConcept"} & set(fpath.element_fields(resource))
    if codes is not None and not coded:
        raise doc.error(key + ("codes",), f"R4 '{resource}' has no 'code' element to match codes against")


def _where_filters(doc: Document, raw_where: Any, key: Key, resource: str) -> tuple[Where, ...]:
    """``where: [{path, in: [...]}, ...]``: filters on elements of the resource."""
    wheres: list[Where] = []
    if not isinstance(raw_where, list):
        raise doc.error(key + ("where",), "must be a list of {path: ..., in: [...]}")
    for i, w in enumerate(raw_where):
        wkey = key + ("where", i)
        check_keys(doc, w, wkey, ("path", "in"), "a where filter")
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
    return tuple(wheres)


def _check_kind(doc: Document, key: Key, kind: str, summary: str, transform: str | None) -> None:
    """The column's ``kind`` is what its summary and its date transform make."""
    kind_of = SUMMARY_KINDS[summary]
    if kind_of.makes is not None and kind != kind_of.makes:
        raise doc.error(key + ("summary",), f"summary '{summary}' makes a {kind_of.makes} column; set kind: "
                                            f"{kind_of.makes}")
    if transform and kind not in ("numeric", "integer"):
        raise doc.error(key + ("transform",), "a date transform makes a number; set kind: numeric or integer")


def parse_domain(doc: Document, raw: Any, key: Key, kind: str, source: Source) -> Domain:
    if kind == "boolean":
        data = check_keys(doc, raw or {}, key, ("missing",), "a boolean domain")
        missing = data.get("missing", source.summary_kind.has_missing)
        if not isinstance(missing, bool):
            raise doc.error(key + ("missing",), "must be true or false")
        return CategoricalDomain((Category("false"), Category("true")), other=False,
                                 missing=bool(missing))
    if raw is None:
        raise doc.error(key, f"a {kind} column needs a public 'domain' (it never comes from the data)")
    data = check_keys(doc, raw, key, DOMAIN_KEYS, "a domain")
    missing = data.get("missing", True)
    if not isinstance(missing, bool):
        raise doc.error(key + ("missing",), "must be true or false")
    if kind == "categorical":
        for bad in ("lower", "upper", "bins"):
            if bad in data:
                raise doc.error(key + (bad,), "categorical domains take categories, other, missing")
        if "categories" not in data:
            raise doc.error(key + ("categories",), "a categorical domain needs 'categories'")
        cats, integer = parse_categories(doc, data["categories"], key + ("categories",))
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
    lower = number(doc, data["lower"], key + ("lower",))
    upper = number(doc, data["upper"], key + ("upper",))
    if not lower < upper:
        raise doc.error(key + ("upper",), "'upper' must be greater than 'lower'")
    edges = parse_edges(doc, data.get("bins", 10), key + ("bins",), lower, upper, kind == "integer")
    return NumericDomain(lower, upper, edges, missing=missing, integer=kind == "integer")


def parse_edges(doc: Document, bins: Any, key: Key, lower: float, upper: float, integer: bool) -> tuple[float, ...]:
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
        check_keys(doc, bins, key, ("width",), "bins")
        width = number(doc, bins.get("width"), key + ("width",))
        if width <= 0:
            raise doc.error(key + ("width",), "must be positive")
        n = max(1, math.ceil((upper - lower) / width - 1e-9))
        return tuple(min(upper, lower + i * width) for i in range(n)) + (upper,)
    if isinstance(bins, list):
        listed = tuple(number(doc, b, key + (i,)) for i, b in enumerate(bins))
        if len(listed) < 2:
            raise doc.error(key, "give at least two bin edges")
        if listed[0] != lower or listed[-1] != upper:
            raise doc.error(key, "the first bin edge must equal 'lower' and the last 'upper'")
        for i, (a, b) in enumerate(zip(listed, listed[1:])):
            if b <= a:
                raise doc.error(key + (i + 1,), "bin edges must be strictly increasing")
        return listed
    raise doc.error(key, "bins must be a count, a list of edges, or {width: W}")
