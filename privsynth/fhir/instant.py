"""FHIR date-times as privsynth writes them: UTC, whole seconds, ``Z`` (the canonical JSON
form, so a validated resource is written exactly as it was built)."""

from __future__ import annotations

import datetime as dt


def instant(moment: dt.datetime) -> str:
    """``moment`` as ``YYYY-MM-DDTHH:MM:SSZ`` (an aware datetime; shown in UTC)."""
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
