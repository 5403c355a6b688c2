"""The release manifest: what a recipient and a compliance officer read about a release.

It lives INSIDE the shareable release directory, so it carries nothing computed from the
real patients that is not differentially private: hashes of the OUTPUT files, the schema
(public), the DP parameters and mechanisms, the policy, the package versions, the
post-processing seed (it only touches DP output) and the pass/fail verdict of each gate --
no input file names or hashes, no patient counts, no audit values or intervals. Those stay
on the data owner's side: in the ledger and in ``<out>.audit.json`` beside the release.

>>> m = ReleaseManifest(release_id="r1", created="2026-01-01T00:00:00+00:00", epsilon=1.0, delta=1e-6,
...     rho=0.024, rho_spent=0.024, mechanisms=("discrete Gaussian",), generator="aim", real_columns=(),
...     schema_name="s", schema_sha256=None, holdout_fraction=0.2, policy={}, weakened=(),
...     verdicts=(Verdict("re-identification", "exact matches", "p < 0.0025", "pass"),), seed=7,
...     versions={}, files={})
>>> ReleaseManifest.from_json(m.to_json()) == m
True
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from privsynth.errors import InputError

MANIFEST_FORMAT = "privsynth-release-manifest/3"
READABLE_FORMATS = ("privsynth-release-manifest/2", MANIFEST_FORMAT)
PRIVACY_UNIT = "patient: one patient's whole record (one row of the patient view; add/remove)"
ACCOUNTING = "zero-concentrated DP (rho), converted to (epsilon, delta) by OpenDP"
HOLDOUT_NOTE = ("each patient was held out with this probability by a coin drawn from OS entropy and never "
                "recorded; held-out patients never reached the generator and serve the audits only")
PARTIAL_NOTE = ("the listed real_columns are the train patients' real values, copied; every other column is drawn "
                "from the DP model conditioned on them. The DP guarantee covers the model, not the real columns, "
                "and the rows are the train patients (their number is exact).")
GATE_NOTE = ("this directory exists because the audits below passed. They read the real patients and are NOT "
             "differentially private, so the existence and content of the release are (epsilon, delta + "
             "e^epsilon * beta)-DP for one attempt, where beta is the largest probability that the gate refuses a "
             "dataset that differs from this one by one patient (the generator's (epsilon, delta) holds for the model "
             "itself). Each further charged attempt is in the ledger's epsilon and adds at most e^epsilon * beta to "
             "delta (at most max_attempts attempts). privsynth does not bound beta for a worst-case neighbour; on "
             "clean DP output its gate refuses at most about 1 release in 20 (measured, docs/audit.md). Read the "
             "verdicts as evidence that no record was copied, not as part of the DP guarantee (docs/privacy.md, "
             "'The gate').")
VERDICTS = ("pass", "fail", "info")


@dataclass(frozen=True)
class Verdict:
    """One gate's outcome, without the figure behind it."""

    audit: str
    check: str
    rule: str
    verdict: str

    def __post_init__(self) -> None:
        if self.verdict not in VERDICTS:
            raise ValueError(f"verdict must be one of {', '.join(VERDICTS)}")


@dataclass(frozen=True)
class ReleaseManifest:
    release_id: str  # a random UUID, also the release's key in the ledger and its internal audit
    created: str
    epsilon: float
    delta: float
    rho: float
    rho_spent: float
    mechanisms: tuple[str, ...]
    generator: str
    real_columns: tuple[str, ...]
    schema_name: str
    schema_sha256: str | None
    holdout_fraction: float
    policy: dict[str, Any]
    weakened: tuple[str, ...]
    verdicts: tuple[Verdict, ...]
    seed: int
    versions: dict[str, str]
    files: dict[str, str] = field(default_factory=dict)
    patient_key: str = "Patient.id"  # what keyed the patients in the budget ledger (from the schema: public)
    patient_key_row_hash: bool = False  # a hash of each row: a changed re-export is a new patient (a weakening)
    max_attempts: int = 3
    recipients: str = ""  # who receives the release, as the operator stated it (public)
    purpose: str = ""  # what for, as the operator stated it (public)

    @property
    def end_to_end_dp(self) -> bool:
        return not self.real_columns

    @property
    def passed(self) -> bool:
        return all(v.verdict != "fail" for v in self.verdicts)

    def as_dict(self) -> dict[str, Any]:
        return {
            "format": MANIFEST_FORMAT,
            "release_id": self.release_id,
            "created": self.created,
            "synthetic": True,
            "privacy_unit": PRIVACY_UNIT,
            "epsilon": self.epsilon,
            "delta": self.delta,
            "rho": self.rho,
            "rho_spent": self.rho_spent,
            "accounting": ACCOUNTING,
            "mechanisms": list(self.mechanisms),
            "generator": self.generator,
            "real_columns": list(self.real_columns),
            "end_to_end_dp": self.end_to_end_dp,
            "partial_synthesis": None if self.end_to_end_dp else PARTIAL_NOTE,
            "holdout": {"fraction": self.holdout_fraction, "note": HOLDOUT_NOTE},
            "patient_key": {"key": self.patient_key, "row_hash": self.patient_key_row_hash},
            "gate": {"differentially_private": False, "max_attempts": self.max_attempts, "guarantee": GATE_NOTE},
            "schema": {"name": self.schema_name, "sha256": self.schema_sha256},
            "policy": {**self.policy, "weakened": list(self.weakened)},
            "audit": {"passed": self.passed, "verdicts": [
                {"audit": v.audit, "check": v.check, "rule": v.rule, "verdict": v.verdict} for v in self.verdicts]},
            "seed": self.seed,
            "versions": dict(self.versions),
            "files": dict(self.files),
            "recipients": self.recipients,
            "purpose": self.purpose,
        }

    def to_json(self) -> bytes:
        return json.dumps(self.as_dict(), indent=2).encode()

    @classmethod
    def from_json(cls, data: bytes | str, where: str = "manifest.json") -> ReleaseManifest:
        try:
            doc = json.loads(data)
            if doc.get("format") not in READABLE_FORMATS:
                raise InputError(f"{where}: not a privsynth release manifest of format {MANIFEST_FORMAT}")
            key = doc.get("patient_key", {"key": "unrecorded (manifest format 2)", "row_hash": False})
            gate = doc.get("gate", {"max_attempts": 3})
            policy = dict(doc["policy"])
            weakened = tuple(policy.pop("weakened", ()))
            return cls(
                release_id=doc["release_id"], created=doc["created"], epsilon=float(doc["epsilon"]),
                delta=float(doc["delta"]), rho=float(doc["rho"]), rho_spent=float(doc["rho_spent"]),
                mechanisms=tuple(doc["mechanisms"]), generator=doc["generator"],
                real_columns=tuple(doc["real_columns"]), schema_name=doc["schema"]["name"],
                schema_sha256=doc["schema"]["sha256"], holdout_fraction=float(doc["holdout"]["fraction"]),
                policy=policy, weakened=weakened,
                verdicts=tuple(Verdict(**v) for v in doc["audit"]["verdicts"]), seed=int(doc["seed"]),
                versions=dict(doc["versions"]), files=dict(doc["files"]), patient_key=str(key["key"]),
                patient_key_row_hash=bool(key["row_hash"]), max_attempts=int(gate["max_attempts"]),
                recipients=str(doc.get("recipients", "")), purpose=str(doc.get("purpose", "")))
        except json.JSONDecodeError as exc:
            raise InputError(f"{where}: not valid JSON (line {exc.lineno}); is this a privsynth release?") from None
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            if isinstance(exc, InputError):
                raise
            raise InputError(f"{where}: not a privsynth release manifest (missing or bad field {exc})") from None


def registry_entry(m: ReleaseManifest) -> bytes:
    """The release as an entry of a registry of differential privacy deployments (the fields
    Dwork, Kohli and Mulligan's "Expose your epsilons" (2019) ask every deployment to publish,
    as the DP deployments registry collects them): shareable, from the manifest alone."""
    entry = {
        "registry_format": "dp-deployment/1",
        "name": f"privsynth synthetic release {m.release_id}",
        "date": m.created,
        "data_product": "synthetic patient records (not real persons)" + ("" if m.end_to_end_dp else
                                                                         "; partial synthesis: some columns real"),
        "schema": {"name": m.schema_name, "sha256": m.schema_sha256},
        "recipients": m.recipients, "purpose": m.purpose,
        "privacy_unit": PRIVACY_UNIT,
        "privacy_loss": {"epsilon": m.epsilon, "delta": m.delta, "rho": m.rho, "accounting": ACCOUNTING,
                         "per_patient_cap": "each patient's total across releases is capped by the data owner's "
                                            "budget ledger", "end_to_end": m.end_to_end_dp},
        "trust_model": "central (the data owner runs the mechanism on the real data)",
        "mechanisms": list(m.mechanisms),
        "implementation": {"software": "privsynth", "version": m.versions.get("privsynth", "unknown"),
                           "noise_library": f"OpenDP {m.versions.get('opendp', 'unknown')}", "generator": m.generator},
        "gate": {"differentially_private": False, "max_attempts": m.max_attempts,
                 "verdicts": {"pass": sum(v.verdict == "pass" for v in m.verdicts),
                              "fail": sum(v.verdict == "fail" for v in m.verdicts)}},
    }
    return json.dumps(entry, indent=2).encode()
