"""The audits that gate a release, in the order they run and are reported.

``evaluate`` runs every registered audit that applies; the policy's thresholds are the
release's own (below) plus every registered audit's; the report and the CLI list checks in
this order, and the report shows their sections (if any) in it. Register a new audit with
:func:`register` in its module and import that module in :func:`builtin` -- that is the
whole of adding one.
"""

from __future__ import annotations

from privsynth.audit.protocol import Audit, Threshold

# thresholds of the release itself, not of one audit
RELEASE_THRESHOLDS = (
    Threshold("holdout_fraction", 0.2, 0.05, 0.5, False, help="each patient's chance of being held out"),
    Threshold("min_holdout", 1000, 100, 10**9, False, whole=True,
              help="fewer holdout patients cannot tell a leak from chance"),
    Threshold("max_attempts", 3, 1, 10**6, True, whole=True, help="charged release attempts per patient"),
    Threshold("total_epsilon", 3.0, 1e-6, 1e3, True, help="a named budget's total, with total_delta"),
    Threshold("total_delta", 1e-5, 1e-15, 0.01, True, help="a named budget's total delta"),
    Threshold("allow_keep_sensitive", 0, 0, 1, True, whole=True,
              help="1 lets partial synthesis keep sensitive columns"),
    Threshold("allow_row_hash_key", 0, 0, 1, True, whole=True,
              help="1 lets a table without a stable patient id be released (patients keyed by a hash of their row: "
                   "a patient whose values change in a re-export is a new patient to the budget)"),
    Threshold("max_noise_share", 0.25, 0.01, 1.0, True,
              help="refuse when, by the model's own DP measurements, more than this share of what it learned of a "
                   "column is noise on average (too few patients for the schema at this epsilon)"),
    Threshold("min_cell_patients", 10, 1, 10**6, False, whole=True,
              help="reports suppress categories and bins with fewer real patients"),
    Threshold("bias_shift_max", 0.05, 0.0, 1.0, True, help="the bias check flags a protected group shifting more"),
    Threshold("audit_rows_max", 50_000, 1000, 10**9, False, whole=True,
              help="the distance audits compare at most this many train, holdout and synthetic rows each (a uniform "
                   "random sample past it; fewer lowers their power: docs/audit.md, 'At scale')"),
)

_AUDITS: dict[str, Audit] = {}


def register(audit: Audit) -> Audit:
    """Add ``audit`` to the registry (its name and threshold names must be new)."""
    if audit.name in _AUDITS and _AUDITS[audit.name] is not audit:
        raise ValueError(f"an audit named '{audit.name}' is already registered")
    taken = {t.name for t in RELEASE_THRESHOLDS}
    for other in _AUDITS.values():
        if other is not audit:
            taken |= {t.name for t in other.thresholds}
    clash = taken & {t.name for t in audit.thresholds}
    if clash:
        raise ValueError(f"audit '{audit.name}': threshold(s) {', '.join(sorted(clash))} already belong to another")
    _AUDITS[audit.name] = audit
    return audit


def unregister(name: str) -> None:
    """Remove an audit (for tests that register a toy one)."""
    _AUDITS.pop(name, None)


BUILTIN = ("privsynth.audit.reidentification", "privsynth.audit.consistency", "privsynth.audit.membership",
           "privsynth.audit.wp29", "privsynth.audit.inference", "privsynth.audit.coherence",
           "privsynth.audit.facevalidity")


def builtin() -> None:
    """Import the audits that ship with privsynth (each registers itself), in report order."""
    import importlib

    for module in BUILTIN:
        importlib.import_module(module)


def audits() -> list[Audit]:
    """Every registered audit: the builtin ones in ``BUILTIN`` order (whichever module was
    imported first), then the others in the order they were registered."""
    builtin()
    rank = {module: k for k, module in enumerate(BUILTIN)}
    return sorted(_AUDITS.values(), key=lambda audit: rank.get(type(audit).__module__, len(BUILTIN)))


def thresholds() -> tuple[Threshold, ...]:
    """Every policy threshold: the release's, then each registered audit's."""
    out = list(RELEASE_THRESHOLDS)
    for audit in audits():
        out.extend(audit.thresholds)
    return tuple(out)
