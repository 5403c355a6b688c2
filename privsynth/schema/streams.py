"""The timeline section of a schema: event streams, their groups and their cells, and the
structural prior they add. Every error names the file, line and field."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any, cast

from privsynth.schema.columns import parse_column, parse_edges
from privsynth.schema.document import Document, Key, check_keys, choice, listed, number, whole
from privsynth.schema.model import (
    CodeGroup,
    Column,
    Structure,
    pair_conditions,
)
from privsynth.schema.timeline import (
    GRAINS,
    MAX_TIMELINE_COLUMNS,
    STREAM_RESOURCES,
    Around,
    EventGroup,
    Schedule,
    Stream,
    Timeline,
)

TIMELINE_KEYS = ("streams", "share")


STREAM_KEYS = ("name", "resource", "kind", "window_years", "grain", "max_events", "max_per_grain", "bins",
               "groups")


EVENT_GROUP_KEYS = ("name", "codes", "where", "path", "unit", "domain", "output", "treats", "follows", "around",
                    "schedule")
SCHEDULE_KEYS = ("min_age", "max_age", "sex", "every_years")


AROUND_KEYS = ("condition", "at_days", "after_days")


FOLLOWS_CELLS = 3  # the most recent cells of a group measured with each condition it follows


def parse_timeline(doc: Document, raw: Any, groups: Mapping[str, CodeGroup], taken: set[str],
              declared: list[Column]) -> tuple[Timeline, list[Column]]:
    """The timeline's streams and the patient-view columns of their cells."""
    paired = pair_conditions(declared)
    conditions = {c.name for c in paired}
    onsets = {c.name: c.onset.name for c in paired
              if c.onset is not None and c.onset.source.transform == "age_at_event"}
    key: Key = ("timeline",)
    data = check_keys(doc, raw, key, TIMELINE_KEYS, "a timeline")
    raw_streams = listed(doc, data, key, "streams", "a timeline")
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
    share = number(doc, data.get("share", TIMELINE_SHARE), key + ("share",))
    if not 0 < share <= 0.9:
        raise doc.error(key + ("share",), "must be a share of the budget above 0 and at most 0.9")
    return Timeline(tuple(streams), share), columns


TIMELINE_SHARE = 0.5  # of the budget for the structural prior when a timeline adds its transitions


def timeline_structure(timeline: Timeline, columns: list[Column], structure: Structure | None,
                       groups: Mapping[str, CodeGroup] | None = None) -> Structure:
    """The structural prior with each group's year-to-year transitions (consecutive cells),
    each lab series' most recent cell with the patient column of the same lab, each
    condition a group ``follows`` with the group's most recent cells (the chain of
    consecutive cells carries it further back), and each condition a code of the group is
    indicated for (its code group's ``indications``) with the group's most recent cell: who
    gets an inhaler is who has asthma or COPD."""
    marginals = list(structure.marginals) if structure is not None else []
    groups = groups or {}
    last = {c.output.get("code"): c.name for c in columns if c.source.cell is None
            and c.source.summary_kind.keeps == "latest" and c.output.get("code")}
    for stream in timeline.streams:
        for group in stream.groups:
            names = stream.columns(group)
            marginals += [(a, b) for a, b in zip(names, names[1:])]
            code = next(c.output.get("code") for c in columns if c.name == names[0])
            if stream.kind == "value" and code in last:
                marginals.append((last[code], names[0]))
            marginals += [(flag, name) for flag in group.follows for name in names[:FOLLOWS_CELLS]]
            indicated = groups[group.codes].indications if group.codes is not None and group.codes in groups else ()
            marginals += [(flag, names[0]) for flag in dict.fromkeys(f for _, fs in indicated for f in fs)]
            if group.around is not None:  # the condition with the values at its onset and after
                marginals.append((group.around.condition, *stream.anchored(group)))
    share = max(structure.share if structure is not None else 0.0, timeline.share)
    return Structure(tuple(dict.fromkeys(marginals)), share)


def _stream(doc: Document, raw: Any, key: Key, groups: Mapping[str, CodeGroup], taken: set[str],
            conditions: set[str], onsets: Mapping[str, str]) -> tuple[Stream, list[Column]]:
    data = check_keys(doc, raw, key, STREAM_KEYS, "a stream")
    stream, bins = _stream_shell(doc, data, key)
    raw_groups = listed(doc, data, key, "groups", "a stream")
    event_groups: list[EventGroup] = []
    columns: list[Column] = []
    for j, raw_group in enumerate(raw_groups):
        gkey = key + ("groups", j)
        g = check_keys(doc, raw_group, gkey, EVENT_GROUP_KEYS, "an event group")
        group = _event_group(doc, g, gkey, stream.kind, groups, conditions, onsets)
        if any(e.name == group.name for e in event_groups):
            raise doc.error(gkey + ("name",), f"group name '{group.name}' is used twice in this stream")
        event_groups.append(group)
        columns += _group_columns(doc, g, gkey, stream, group, bins, groups, taken)
    return dataclasses.replace(stream, groups=tuple(event_groups)), columns


def _stream_shell(doc: Document, data: dict[str, Any], key: Key) -> tuple[Stream, tuple[float, ...]]:
    """A stream without its groups (``name``, ``resource``, ``kind``, window, grain and caps),
    and the bin edges of a count stream's cells."""
    name = data.get("name")
    if not isinstance(name, str) or not name.isidentifier():
        raise doc.error(key + ("name",), "a stream needs a 'name' made of letters, digits and _")
    resource = choice(doc, data.get("resource"), key + ("resource",), STREAM_RESOURCES)
    kind = choice(doc, data.get("kind", "value" if resource == "Observation" else "count"), key + ("kind",),
                   ("count", "value"))
    window = whole(doc, data.get("window_years"), key + ("window_years",), 1)
    grain = choice(doc, data.get("grain", "year"), key + ("grain",), tuple(GRAINS))
    max_events = whole(doc, data.get("max_events"), key + ("max_events",), 1)
    cap = whole(doc, data.get("max_per_grain", 1), key + ("max_per_grain",), 1)
    if kind == "value" and "max_per_grain" in data:
        raise doc.error(key + ("max_per_grain",), "a value stream keeps one value (the last) per grain cell")
    if kind == "count" and "bins" in data:
        bins = parse_edges(doc, data["bins"], key + ("bins",), 0, cap, True)
    else:
        bins = tuple(float(b) for b in range(cap + 1))
    return Stream(name, resource, cast(Any, kind), window, grain, max_events, cap, ()), bins


def _event_group(doc: Document, g: dict[str, Any], gkey: Key, kind: str, groups: Mapping[str, CodeGroup],
                 conditions: set[str], onsets: Mapping[str, str]) -> EventGroup:
    """An event group of a stream: its name, codes, the conditions it ``treats`` and
    ``follows``, its anchor ``around`` an onset and its ``schedule``."""
    gname = g.get("name")
    if not isinstance(gname, str) or not gname.isidentifier():
        raise doc.error(gkey + ("name",), "an event group needs a 'name' made of letters, digits and _")
    if "codes" not in g and "where" not in g:
        raise doc.error(gkey, "an event group needs 'codes' (a code group) or 'where' (a filter)")
    treats = _treats(doc, g, gkey, conditions)
    follows = g.get("follows", [])
    if not isinstance(follows, list) or not follows and "follows" in g:
        raise doc.error(gkey + ("follows",), "must be a non-empty list of condition columns")
    for i, flag in enumerate(follows):
        if flag not in conditions:
            raise doc.error(gkey + ("follows", i), f"'{flag}' is not a condition column of this schema (name "
                            f"a Condition 'exists' column; allowed: {', '.join(sorted(conditions))})")
    around = _around(doc, g["around"], gkey + ("around",), kind, onsets) if "around" in g else None
    schedule = _schedule(doc, g["schedule"], gkey + ("schedule",), groups.get(g.get("codes") or "")) \
        if "schedule" in g else ()
    return EventGroup(gname, g.get("codes"), tuple(dict.fromkeys(treats)), tuple(dict.fromkeys(follows)), around,
                      schedule)


def _treats(doc: Document, g: dict[str, Any], gkey: Key, conditions: set[str]) -> list[Any]:
    """The condition columns a group ``treats``: one name, or a list of them."""
    treats = g.get("treats", [])
    treats = [treats] if isinstance(treats, str) else treats
    if not isinstance(treats, list) or not treats and "treats" in g:
        raise doc.error(gkey + ("treats",), "must name a condition column, or list several")
    for i, flag in enumerate(treats):
        if flag not in conditions:
            raise doc.error(gkey + ("treats",) + ((i,) if isinstance(g["treats"], list) else ()),
                            f"'{flag}' is not a condition column of this schema (name a Condition 'exists' "
                            f"column; allowed: {', '.join(sorted(conditions))})")
    return treats


def _group_columns(doc: Document, g: dict[str, Any], gkey: Key, stream: Stream, group: EventGroup,
                   bins: tuple[float, ...], groups: Mapping[str, CodeGroup], taken: set[str]) -> list[Column]:
    """The patient-view columns of a group: one per cell of the stream's window, then (for a
    group anchored ``around`` an onset) the values at the onset and after it."""
    kind, cap = stream.kind, stream.max_per_grain
    source: dict[str, Any] = {"resource": stream.resource, "summary": "count" if kind == "count" else "last",
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
    columns: list[Column] = []
    for k, cname in enumerate(stream.columns(group)):
        columns.append(_group_column(doc, gkey, "name", "the cell column", {**raw_col, "name": cname}, groups,
                                     taken, cell=(stream.name, k)))
    around = group.around
    if around is not None:
        at = (-around.at_days, around.at_days)
        for cname, span in zip(stream.anchored(group), (at, around.after_days)):
            columns.append(_group_column(doc, gkey, "around", "the column", {**raw_col, "name": cname}, groups,
                                         taken, anchor=(around.onset_column, *span)))
    return columns


def _schedule(doc: Document, raw: Any, key: Key, group: CodeGroup | None) -> tuple[Schedule, ...]:
    """``schedule: {CODE: {min_age, max_age, sex, every_years}}``: codes of the group's own
    code group, ages and an interval in years (public guidance)."""
    if group is None:
        raise doc.error(key, "a schedule needs the group's 'codes' (a code group)")
    if not isinstance(raw, dict) or not raw:
        raise doc.error(key, "must map codes of the group to {min_age, max_age, sex, every_years}")
    out = []
    for code, spec in raw.items():
        ckey = key + (code,)
        if str(code) not in group.code_set:
            raise doc.error(ckey, f"'{code}' is not a code of code group '{group.name}'")
        data = check_keys(doc, spec, ckey, SCHEDULE_KEYS, "a schedule entry")
        low = whole(doc, data.get("min_age", 0), ckey + ("min_age",), 0)
        high = whole(doc, data.get("max_age", 200), ckey + ("max_age",), low)
        sex = choice(doc, data["sex"], ckey + ("sex",), ("female", "male")) if "sex" in data else None
        every = number(doc, data.get("every_years", 0), ckey + ("every_years",))
        if every < 0:
            raise doc.error(ckey + ("every_years",), "must be at least 0")
        out.append(Schedule(str(code), low, high, sex, float(every)))
    return tuple(out)


def _group_column(doc: Document, gkey: Key, field_name: str, what: str, raw_col: dict[str, Any],
                  groups: Mapping[str, CodeGroup], taken: set[str], **source: Any) -> Column:
    """A column a timeline group adds (a cell, or a value around an onset): its name unused,
    its ``source`` fields (``cell``, ``anchor``) set."""
    cname = raw_col["name"]
    if cname in taken:
        raise doc.error(gkey + (field_name,), f"{what} '{cname}' clashes with another column's name")
    taken.add(cname)
    col = parse_column(doc, raw_col, gkey, "fhir", groups)
    return dataclasses.replace(col, source=dataclasses.replace(col.source, **source))


MAX_AROUND_DAYS = 3653  # ten years after an onset


def _around(doc: Document, raw: Any, key: Key, kind: str, onsets: Mapping[str, str]) -> Around:
    """A value group's anchor: ``{condition, at_days, after_days: [first, last]}``."""
    if kind != "value":
        raise doc.error(key, "only a value stream's group (a lab) can be anchored 'around' a condition's onset")
    data = check_keys(doc, raw, key, AROUND_KEYS, "'around'")
    condition = data.get("condition")
    if not isinstance(condition, str) or condition not in onsets:
        raise doc.error(key + ("condition",), f"'{condition}' is not a condition column with an onset column (a "
                                              "Condition 'exists' column and a 'first' onsetDateTime column with "
                                              f"transform age_at_event on the same codes; allowed: "
                                              f"{', '.join(sorted(onsets)) or 'none'})")
    at = whole(doc, data.get("at_days"), key + ("at_days",), 0)
    if at > 366:
        raise doc.error(key + ("at_days",), "must be at most 366 (a value 'at' a diagnosis is within a year of it)")
    after = data.get("after_days")
    if (not isinstance(after, list) or len(after) != 2
            or any(isinstance(d, bool) or not isinstance(d, int) for d in after)
            or not at < after[0] < after[1] <= MAX_AROUND_DAYS):
        raise doc.error(key + ("after_days",), f"must be [first, last]: whole days after the onset, at_days < first "
                                               f"< last <= {MAX_AROUND_DAYS}")
    return Around(condition, onsets[condition], at, (after[0], after[1]))
