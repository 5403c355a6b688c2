"""The report's filed-document sections, in the order of an EMA Policy 0070 anonymisation
report (and Health Canada's Public Release of Clinical Information guidance, which follows
it): context and recipients; the data and each variable's role and technique; the privacy
statement as NIST SP 800-226 asks it to be disclosed; the risks (the audit gates and the
WP29 attacks); the residual-risk conclusion; utility; appropriate-use terms; sign-off.

The figures come from the manifest (public) and the internal audit (real-data aggregates,
small cells suppressed); nothing here reads the patients.
"""

from __future__ import annotations

import math
from html import escape
from typing import Any

from privsynth.schema.model import Schema

TECHNIQUE = {
    "identifier": "never read; a fresh value made up by Faker for each synthetic patient",
    "learned": "synthesised: drawn from the differentially private model",
    "kept": "kept: the training patient's REAL value (partial synthesis; not covered by differential privacy)",
    "derived": "recomputed from synthesised columns (e.g. BMI from weight and height)",
}
ROLES = {"quasi_identifier": "quasi-identifier", "sensitive": "sensitive", "other": "other",
         "identifier": "direct identifier"}
WP29 = ("singling out", "linkability", "inference")
TERMS = (
    "The recipient does not attempt to re-identify any person, to link these records with other data about "
    "persons, or to find out whether a given person's record was used to make them.",
    "The records are synthetic: no row is a real patient. They must not be used for decisions about an "
    "individual's care, nor presented as real patient data; results drawn from them are reported as results on "
    "synthetic data, citing this release id.",
    "Findings that matter (an effect, a signal) are confirmed on the real data by the data owner before they are "
    "acted upon or published: the synthetic data keep marginals and low-order associations, not every rare pattern.",
    "The data are shared only with the recipients named above and for the stated purpose; onward sharing needs "
    "the data owner's written agreement. A partial synthesis (real columns kept) is never shared publicly.",
    "The recipient reports to the data owner any suspected disclosure, and deletes the data when the purpose ends.",
)


def variables(schema: Schema) -> list[dict[str, str]]:
    """Each column of the schema (public): its role, kind and where it is read from."""
    out = []
    for col in schema.columns:
        src = col.source
        where = f"{src.resource or ''} {src.path or ''}".strip() or (src.column or col.name)
        kind = "identifier" if not col.in_view else ("derived" if col.derived is not None else "learned")
        out.append({"name": col.name, "role": "identifier" if kind == "identifier" else col.role,
                    "kind": col.kind, "source": where, "treatment": kind})
    return out


def _table(head: list[str], rows: list[list[str]], classes: list[str] | None = None) -> str:
    """A table; with an empty ``head`` it has no header row (a list of key/value pairs)."""
    out = ["<table>" + ("<tr>" + "".join(f"<th>{escape(h)}</th>" for h in head) + "</tr>" if any(head) else "")]
    for k, row in enumerate(rows):
        cls = f' class="{classes[k]}"' if classes and classes[k] else ""
        out.append(f"<tr{cls}>" + "".join(f"<td>{cell}</td>" for cell in row) + "</tr>")
    return "".join(out) + "</table>"


def context(m: dict[str, Any]) -> str:
    recipients = m.get("recipients") or ""
    purpose = m.get("purpose") or ""
    rows = [["release", escape(str(m.get("release_id", "")))], ["created", escape(str(m.get("created", "")))],
            ["data", f"synthetic patients of schema <b>{escape(m['schema']['name'])}</b>, made from the data owner's "
                     "export (which never leaves the data owner)"],
            ["recipients", escape(recipients) if recipients else "<b>not stated</b> (release --recipients)"],
            ["purpose", escape(purpose) if purpose else "<b>not stated</b> (release --purpose)"],
            ["form", "FHIR R4, OMOP CDM v5.4 or a table, as listed in the manifest's files; the DP model itself "
                     "(model.json, model.npz) so that more patients can be drawn without new privacy loss"]]
    return ("<p>What is released, to whom, and why. A compliance officer reads this page as the release's "
            "anonymisation report: its sections follow the EMA's Policy 0070 guidance.</p>"
            + _table(["", ""], rows))


def data_and_variables(m: dict[str, Any], report: dict[str, Any] | None) -> str:
    listed = (report or {}).get("variables") or []
    if not listed:
        return "<p>The variables were not recorded with this release (its report predates them).</p>"
    kept = set(m.get("real_columns") or [])
    rows, classes = [], []
    for v in listed:
        treatment = "kept" if v["name"] in kept else v["treatment"]
        rows.append([escape(v["name"]), ROLES.get(v["role"], escape(v["role"])), escape(v["kind"]),
                     f"<span class='small'>{escape(v['source'])}</span>", escape(TECHNIQUE[treatment])])
        classes.append("flag" if treatment == "kept" else "")
    counts = {t: sum(1 for v in listed if (("kept" if v["name"] in kept else v["treatment"]) == t))
              for t in TECHNIQUE}
    return (f"<p>{len(listed)} variables: {counts['identifier']} direct identifier(s) (replaced, never read), "
            f"{counts['learned']} synthesised, {counts['derived']} derived, {counts['kept']} kept real. Roles come "
            "from the schema: a quasi-identifier is what an attacker may know (age, sex, place); a sensitive "
            "variable is what must not be learned about a person.</p>"
            + _table(["variable", "role", "kind", "read from", "technique"], rows, classes))


def nist_statement(m: dict[str, Any]) -> str:
    """The disclosure NIST SP 800-226 (2025) asks of a DP deployment."""
    versions = m.get("versions", {})
    rows = [
        ["privacy unit", "the patient: one patient's whole record (every resource that refers to them), added or "
                         "removed"],
        ["privacy loss", f"ε = {m['epsilon']:g}, δ = {m['delta']:g} for this release (e<sup>ε</sup> = "
                         f"{math.exp(m['epsilon']):.3g}); each patient's total across releases is capped by the "
                         "budget ledger (below)"],
        ["accounting", f"zero-concentrated DP, ρ = {m['rho']:.4g}, converted to (ε, δ) by OpenDP"],
        ["trust model", "central: the data owner runs privsynth on the real data in its own environment; recipients "
                        "see only the DP output. The audit gate reads the real data and is not DP (see the guarantee)"],
        ["mechanisms", escape(", ".join(m.get("mechanisms", [])))],
        ["implementation", f"privsynth {escape(versions.get('privsynth', '?'))}, OpenDP "
                           f"{escape(versions.get('opendp', '?'))} (noise), "
                           f"generator {escape(m.get('generator', ''))}"],
        ["post-processing", "model estimation, sampling, decoding inside public bins, fresh identifiers, writing"],
        ["end-to-end DP", "yes" if not m.get("real_columns") else
         f"<b>no</b>: partial synthesis keeps {escape(', '.join(m['real_columns']))} real"],
    ]
    return _table(["", ""], rows)


def residual_risk(m: dict[str, Any], audit: dict[str, Any]) -> str:
    checks = audit.get("checks", [])
    wp29 = [c for c in checks if c["audit"] in WP29]
    failed = [c for c in checks if c["passed"] is False]
    lines = []
    for c in wp29:
        low, high = c["interval"] if c.get("interval") else (c["value"], c["value"])
        lines.append([escape(c["audit"]), escape(c["name"]), f"{c['value']:.3f}", f"[{low:.3f}, {high:.3f}]",
                      escape(c["rule"]), "below" if c["passed"] else "<b>ABOVE</b>"])
    if failed:
        verdict = (f"<b>Not acceptable:</b> {len(failed)} gate(s) failed and the release was refused; nothing "
                   "was shared.")
    elif not wp29:
        verdict = ("The WP29 risks were not measured for this release (its audit predates them); the conclusion "
                   "rests on the differential privacy guarantee and the other gates.")
    else:
        worst = max(wp29, key=lambda c: c["value"])
        verdict = (f"<b>Residual risk judged acceptably low for the stated recipients.</b> Each WP29 risk is below "
                   f"its threshold (largest: {escape(worst['audit'])}, {worst['value']:.3f}); no record was copied "
                   "or memorised (re-identification, model consistency, membership); and whatever an attacker does, "
                   f"the guarantee bounds what the release reveals about any one patient (ε = {m['epsilon']:g}).")
        if m.get("real_columns"):
            verdict += " <b>The kept real columns are not covered by that guarantee.</b>"
    table = _table(["risk", "measured as", "value", "95% interval", "threshold", ""], lines) if lines else ""
    return f"<p>{verdict}</p>" + table


def terms() -> str:
    return ("<p>Appropriate use: by accepting the release the recipient agrees to the following.</p><ol>"
            + "".join(f"<li>{escape(t)}</li>" for t in TERMS) + "</ol>")


def sign_off(m: dict[str, Any], manifest_sha256: str) -> str:
    files = m.get("files", {})
    rows = [["release id", escape(str(m.get("release_id", "")))],
            ["manifest.json SHA-256", f"<code>{escape(manifest_sha256)}</code>"],
            ["files", f"{len(files)}, each with its SHA-256 in the manifest"],
            ["schema SHA-256", f"<code>{escape(str(m['schema'].get('sha256')))}</code>"]]
    signatures = [[role, "", "", ""] for role in ("data owner (custodian)", "data protection officer / compliance",
                                                  "clinical reviewer")]
    return (_table(["", ""], rows) + "<p>Approved for release to the recipients above under these terms:</p>"
            + _table(["role", "name", "signature", "date"], signatures))
