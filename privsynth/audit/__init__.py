"""Audits that gate a release: nearest-neighbour re-identification and membership inference."""

from privsynth.audit.evaluate import evaluate
from privsynth.audit.policy import Policy, load_policy
from privsynth.audit.result import AuditResult, Check
from privsynth.audit.split import holdout_split

__all__ = ["AuditResult", "Check", "Policy", "evaluate", "holdout_split", "load_policy"]
