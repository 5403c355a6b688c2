"""The contribution bound of a timeline: at most ``max_per_grain`` events of a group in one
grain cell, and at most ``max_events`` events per patient per stream (the most recent are
kept; within one cell, groups in schema order). Everything dropped is counted, per stream,
in the internal ingest report (exact counts: never in a shareable output).

>>> import pandas as pd
>>> from privsynth.schema.timeline import EventGroup, Stream, Timeline
>>> s = Stream("enc", "Encounter", "count", 3, "year", 5, 3, (EventGroup("amb", None),))
>>> view = pd.DataFrame({"enc_amb_y1": [4, 1], "enc_amb_y2": [2, 0], "enc_amb_y3": [2, 0]})
>>> bounded, report = bound_view(view, Timeline((s,)))
>>> bounded.to_numpy().tolist(), report["enc"]["dropped_over_grain_cap"], report["enc"]["dropped_over_max_events"]
([[3, 2, 0], [1, 0, 0]], 1, 2)
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from privsynth.schema.timeline import Timeline


def bound_view(view: pd.DataFrame, timeline: Timeline) -> tuple[pd.DataFrame, dict[str, Any]]:
    """``view`` with every stream bounded; and, per stream, what was kept and dropped."""
    view = view.copy()
    report: dict[str, Any] = {}
    for stream in timeline.streams:
        names = [stream.columns(g) for g in stream.groups]  # groups x cells
        order = [names[g][k] for k in range(stream.cells) for g in range(len(stream.groups))]  # recent first
        if stream.kind == "count":
            raw = np.column_stack([pd.to_numeric(view[c], errors="coerce").fillna(0).to_numpy(float) for c in order])
            capped = np.minimum(raw, stream.max_per_grain)
        else:
            raw = np.column_stack([view[c].notna().to_numpy(float) for c in order])
            capped = raw
        before = np.cumsum(capped, axis=1) - capped
        kept = np.clip(stream.max_events - before, 0, capped)
        for j, name in enumerate(order):
            if stream.kind == "count":
                view[name] = kept[:, j].astype(np.int64)
            else:
                view.loc[kept[:, j] == 0, name] = None
        report[stream.name] = {
            "events_in_window": int(raw.sum()),
            "dropped_over_grain_cap": int((raw - capped).sum()),
            "dropped_over_max_events": int((capped - kept).sum()),
            "patients_truncated": int(((raw - kept).sum(axis=1) > 0).sum()),
            "max_events": stream.max_events,
        }
    return view, report
