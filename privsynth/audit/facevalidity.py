"""Face validity: would a clinician laugh at the synthetic patients?

The coherence audit reads the patient table; this one reads the records as a clinician
does -- the FHIR resources the release writes, histories included -- and counts the red
flags of :mod:`privsynth.history.redflag` (heart failure from childhood, a repeat colonoscopy
within 3 years, an admission with no reason and nothing recorded, an event after death, a
lab before its era, a drug with no indication, a child's cholesterol, ...), each as a share
among the patients its premise concerns, on the real export and on the synthetic records.

- A flag is **raised** when its synthetic rate exceeds both ``red_flag_ratio_max`` times the
  real rate and ``red_flag_rate_floor``, among at least ``min_cell_patients`` synthetic
  patients in its premise (fewer cannot tell a generator's habit from chance).
- The release **fails** when more than ``red_flags_max`` flags are raised.
- A flag the schema decides rather than the model (an order the schema counts without
  naming it is written as "not specified") is shown and never raised.

It runs when the release has the records (FHIR input); a table release has none. The
synthetic side is a random sample of ``red_flag_sample`` released rows written the way the
release writes them. Real rates are computed on every patient of the input export, are not
differentially private and stay in the internal audit (the report shows a real count under
``min_cell_patients`` as "under").
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from privsynth.audit.protocol import AuditContext, Threshold
from privsynth.audit.registry import register
from privsynth.audit.result import Check
from privsynth.audit.section import ReportInfo, Section, Strong, Table, Text
from privsynth.history.redflag import Summary, is_miss, summarise


def raised(real: list[int], synthetic: list[int], ratio: float, floor: float, min_premise: int) -> bool:
    """Whether a flag is raised: (flagged, premise) counts, real and synthetic.

    >>> raised([0, 100], [3, 50], 2.0, 0.01, 10), raised([0, 100], [3, 5], 2.0, 0.01, 10)
    (True, False)
    >>> raised([10, 100], [19, 100], 2.0, 0.01, 10), raised([10, 100], [21, 100], 2.0, 0.01, 10)
    (False, True)
    """
    if synthetic[1] < min_premise:
        return False
    real_rate = real[0] / real[1] if real[1] else None
    return is_miss(real_rate, synthetic[0] / synthetic[1], ratio, floor)


def _figures(real: Summary, synthetic: Summary, policy: Any, unjudged: Mapping[str, str]) -> dict[str, Any]:
    flags = []
    for r in real.flags:
        s = synthetic.flag(r.name)
        pair_r, pair_s = [r.flagged, r.premise], [s.flagged, s.premise]
        up = r.name not in unjudged and raised(pair_r, pair_s, policy.red_flag_ratio_max,
                                               policy.red_flag_rate_floor, int(policy.min_cell_patients))
        flags.append({"name": r.name, "sentence": r.sentence, "real": pair_r, "synthetic": pair_s, "raised": up,
                      "unjudged": unjudged.get(r.name)})
    onsets = [{"name": d.name.removeprefix("age at onset: "), "real": vars(d),
               "synthetic": vars(synthetic.distribution(d.name))}
              for d in real.distributions if d.name.startswith("age at onset: ")]
    return {"reference": real.reference.isoformat(),
            "real": {"patients": real.patients, "any_flagged": real.any_flagged},
            "synthetic": {"patients": synthetic.patients, "any_flagged": synthetic.any_flagged},
            "flags": flags, "onsets": onsets}


def _share(count: int, among: int) -> str:
    return f"{100 * count / among:.1f}%" if among else "–"


class FaceValidity:
    """A clinician's red flags, real export against synthetic records."""

    name = "face validity"
    thresholds = (
        Threshold("red_flag_ratio_max", 2.0, 1.0, 1e6, True,
                  help="face validity: a red flag is raised when its synthetic rate exceeds this x the real rate ..."),
        Threshold("red_flag_rate_floor", 0.01, 0.0, 1.0, True, help="... and this rate"),
        Threshold("red_flags_max", 2, 0, 100, True, whole=True,
                  help="refuse when more red flags than this are raised"),
        Threshold("red_flag_sample", 3000, 100, 10**7, False, whole=True,
                  help="synthetic patients written and read for the red flags"),
    )
    partial_synthesis = "the same: the released records, kept columns included, against the real export"

    def applies(self, context: AuditContext) -> bool:
        return context.charts is not None

    def run(self, context: AuditContext) -> tuple[list[Check], dict[str, Any]]:
        charts, policy = context.charts, context.policy
        assert charts is not None  # applies() checked it
        size = min(len(context.synthetic), int(policy.red_flag_sample))
        rows = np.sort(context.rng.choice(len(context.synthetic), size=size, replace=False))
        real = summarise(charts.real(), charts.reference)
        synthetic = summarise(charts.synthetic(rows), charts.reference)
        figures = _figures(real, synthetic, policy, charts.unjudged)
        up = [f for f in figures["flags"] if f["raised"]]
        limit = int(policy.red_flags_max)
        detail = "; ".join(f"{f['name']} ({_share(*f['synthetic'])} of {f['synthetic'][1]})" for f in up)
        checks = [
            Check(self.name, f"red flags raised ({len(figures['flags'])} flags)", len(up), None,
                  f"fails if more than {limit} are raised; a flag is raised when its synthetic rate exceeds "
                  f"max({policy.red_flag_ratio_max:g} x real, {policy.red_flag_rate_floor:g})", len(up) <= limit,
                  detail),
            Check(self.name, "synthetic patients with at least one red flag (share)",
                  synthetic.any_flagged / synthetic.patients if synthetic.patients else 0.0, None,
                  "information: real patients' share in the internal audit", None,
                  f"of {synthetic.patients} synthetic patients read"),
        ]
        return checks, figures

    def section(self, figures: dict[str, Any], info: ReportInfo) -> Section | None:
        """Each flag, real beside synthetic (real counts under ``min_cell`` read "under"), and
        the age at onset per condition."""
        flags = figures.get("flags")
        if not flags:
            return None
        min_cell = info.min_cell

        def real_share(count: list[int]) -> str:
            if 0 < count[0] < min_cell:
                return f"under {min_cell} of about {int(round(count[1] / min_cell)) * min_cell}"
            return _share(*count)

        rows = tuple((f["name"], real_share(f["real"]),
                      f"{_share(*f['synthetic'])} ({f['synthetic'][0]} of {f['synthetic'][1]})",
                      "RAISED" if f["raised"] else f"not judged: {f['unjudged']}" if f.get("unjudged") else "ok")
                     for f in flags)
        blocks: list[Any] = [
            Text(("What a clinician checks first, read from the FHIR records themselves (histories included): each "
                  "flag is a share among the patients it concerns, on the real export and on a sample of the "
                  "synthetic records. Real records raise some of them (early-onset disease exists); a flag is ",
                  Strong("raised"), " when the synthetic share is well above the real one, and too many raised "
                  "flags refuse the release.")),
            Table(("red flag", "real patients", "synthetic patients", ""), rows, tuple(f["raised"] for f in flags)),
        ]

        def age(d: dict[str, Any]) -> str:
            if d["n"] < min_cell or d["mean"] is None:
                return "–"
            return f"{d['mean']:.0f} ({100 * d['under_18']:.0f}% under 18)"

        onsets = [(o["name"], age(o["real"]), age(o["synthetic"])) for o in figures.get("onsets", [])
                  if o["synthetic"]["n"] or o["real"]["n"]]
        if onsets:
            blocks += [Text(("Mean age at the first onset of each condition (among at least ", str(min_cell),
                             " patients)")),
                       Table(("condition", "real", "synthetic"), tuple(onsets))]
        return Section("face_validity", "Face validity", tuple(blocks))


register(FaceValidity())
