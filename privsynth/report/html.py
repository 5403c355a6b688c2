"""The release report: one self-contained HTML page for the compliance officer and the
research collaborator. Inline CSS and SVG only: nothing is fetched when it is opened.

Built from the release manifest and the internal audit (which carries the report's
figures, small cells already suppressed), so ``privsynth report`` can rebuild it later
without touching the real data.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from html import escape
from typing import Any

from privsynth.audit.protocol import HasSection
from privsynth.audit.registry import audits
from privsynth.audit.section import Bars, Block, Grid, ReportInfo, Roc, Section, Strong, Table, Text
from privsynth.report import dossier, svg

CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:0;color:#222;background:#fafafa}
header{background:#243447;color:#fff;padding:18px 32px}header h1{margin:0 0 4px;font-size:22px}
nav{background:#fff;border-bottom:1px solid #ddd;padding:8px 32px;position:sticky;top:0}
nav a{margin-right:14px;color:#243447;text-decoration:none;font-size:14px}
main{padding:8px 32px 40px;max-width:1200px}section{background:#fff;border:1px solid #e3e3e3;border-radius:6px;
padding:12px 20px;margin:16px 0}h2{font-size:18px;border-bottom:1px solid #eee;padding-bottom:6px}
table{border-collapse:collapse;font-size:13px;margin:8px 0}td,th{border:1px solid #ddd;padding:4px 8px;
text-align:left;vertical-align:top}th{background:#f3f3f3}.pass{color:#1a7f37;font-weight:bold}
.fail{color:#c62828;font-weight:bold}.info{color:#666}.flag{background:#fff3cd}.banner{background:#fff3cd;
border:1px solid #e0c060;padding:8px 12px;border-radius:4px}.grid{display:flex;flex-wrap:wrap;gap:16px}
.card{border:1px solid #ddd;border-radius:6px;padding:8px 12px;width:300px;font-size:12px;background:#fcfcfc}
.card dl{display:grid;grid-template-columns:max-content 1fr;gap:1px 10px;margin:6px 0}
.card dt{font-weight:bold;color:#555}.card dd{margin:0;overflow-wrap:anywhere}
.small{font-size:12px;color:#555}
@media print{nav{display:none}header{background:#fff;color:#000;border-bottom:2px solid #000}
section{break-inside:auto;border:none;padding:0 0 8px}h2{break-after:avoid}svg,table{break-inside:avoid}
body{background:#fff}main{max-width:none}}
@page{size:A4;margin:16mm 12mm}
"""

# the report's own sections, in the order of an EMA Policy 0070 anonymisation report; each
# registered audit's section goes between them (the risks), in registry order
BEFORE_AUDITS = [("context", "1. Context and recipients"), ("variables", "2. Data and variables"),
                 ("guarantee", "3. Privacy statement (NIST SP 800-226)"), ("gates", "4. Risks: the audit gates")]
AFTER_AUDITS = [("residual", "5. Residual risk: conclusion"), ("utility", "6. Utility"),
                ("bias", "6b. Subgroups"), ("patients", "6c. Synthetic patients"), ("terms", "7. Appropriate use"),
                ("signoff", "8. Sign-off")]


def _verdict(passed: bool | None) -> str:
    return {True: '<span class="pass">pass</span>', False: '<span class="fail">FAIL</span>',
            None: '<span class="info">info</span>'}[passed]


def _table(head: list[str], rows: list[list[str]], classes: list[str] | None = None) -> str:
    """A table; with an empty ``head`` it has no header row (a list of key/value pairs)."""
    out = ["<table>" + ("<tr>" + "".join(f"<th>{escape(h)}</th>" for h in head) + "</tr>" if any(head) else "")]
    for k, row in enumerate(rows):
        cls = f' class="{classes[k]}"' if classes and classes[k] else ""
        out.append(f"<tr{cls}>" + "".join(f"<td>{cell}</td>" for cell in row) + "</tr>")
    return "".join(out) + "</table>"


def _guarantee(m: dict[str, Any], ledger_line: str) -> str:
    real = m.get("real_columns") or []
    lines = [
        f"<p>This release was produced with <b>differential privacy</b> at <b>ε = {m['epsilon']:g}</b>, "
        f"<b>δ = {m['delta']:g}</b> (zero-concentrated DP, ρ = {m['rho']:.4g}). The privacy unit is the "
        "<b>patient</b>: adding or removing one patient's whole record changes the probability of any output "
        f"by at most a factor e<sup>ε</sup> = {math.exp(m['epsilon']):.3g}, except with "
        f"probability δ.</p>",
        "<p>Every number learned from the patients was measured with noise drawn by OpenDP "
        f"({escape(', '.join(m.get('mechanisms', [])))}). Everything after that is <b>post-processing</b>, which "
        "cannot weaken the guarantee: fitting a consistent model to the noisy measurements, sampling synthetic "
        "patients from it, drawing numbers inside their public bins, fresh identifiers (names, addresses, "
        "record numbers) made up by Faker, and writing the files.</p>",
        f"<p>About {int(round(m['holdout']['fraction'] * 100))}% of the patients were held out, each by a random "
        "coin that is not recorded anywhere: the generator never "
        "saw them; the audits below compare the synthetic data with both groups.</p>",
        "<p><b>The audit gate is not part of the guarantee.</b> This release exists because the audits passed, and "
        "they read the real patients without noise: with β the largest chance that the gate refuses a dataset "
        "differing by one patient, the release is (ε, δ + e<sup>ε</sup>·β)-DP per attempt (at most "
        f"{int(m.get('gate', {}).get('max_attempts', 3))} charged attempts per patient). Read the verdicts as "
        "evidence that no record was copied, not as privacy loss accounting.</p>",
    ]
    key = m.get("patient_key")
    if isinstance(key, dict) and key.get("row_hash"):
        lines.append('<p class="banner">Patients were keyed in the budget ledger by a <b>hash of their row</b> (the '
                     "table has no stable patient id): a patient whose values change in a re-export counts as a new "
                     "patient to the budget.</p>")
    if real:
        lines.append('<p class="banner"><b>Partial synthesis — not end-to-end differentially private.</b> These '
                     f"columns are the patients' <b>real values</b>: {escape(', '.join(real))}. Every other column "
                     "was drawn from the DP model conditioned on them. The rows are the training patients.</p>")
    weakened = m.get("policy", {}).get("weakened", [])
    if weakened:
        lines.append('<p class="banner">The release policy was <b>weakened</b> against the defaults: '
                     + escape("; ".join(weakened)) + "</p>")
    lines.append(_table(["", ""], [["release", escape(str(m.get("release_id", "")))],
                                   ["schema", f"{escape(m['schema']['name'])} ({escape(str(m['schema']['sha256']))})"],
                                   ["generator", escape(m.get("generator", ""))],
                                   ["ledger", escape(ledger_line or "not recorded")],
                                   ["seed", str(m.get("seed"))], ["created", escape(m.get("created", ""))]]))
    return "".join(lines)


def _gates(audit: dict[str, Any]) -> str:
    rows = []
    for c in audit["checks"]:
        interval = f"[{c['interval'][0]:.3f}, {c['interval'][1]:.3f}]" if c.get("interval") else ""
        rows.append([_verdict(c["passed"]), escape(c["audit"]), escape(c["name"]), f"{c['value']:.4g}", interval,
                     escape(c["rule"]), f'<span class="small">{escape(c.get("detail", ""))}</span>'])
    verdict = "every gate passed" if audit["passed"] else "a gate FAILED: the release was refused"
    return (f"<p><b>{verdict}.</b> How to read each statistic: docs/audit.md.</p>"
            + _table(["verdict", "audit", "check", "value", "95% interval", "rule", "detail"], rows))


def _text(block: Text) -> str:
    # text content: &, < and > escaped (quotes only matter inside attributes)
    return "<p>" + "".join(f"<b>{escape(part.text, quote=False)}</b>" if isinstance(part, Strong)
                           else escape(part, quote=False) for part in block.parts) + "</p>"


def _table_block(block: Table) -> str:
    return _table(list(block.head), [[escape(cell) for cell in row] for row in block.rows],
                  ["flag" if flagged else "" for flagged in block.flagged] or None)


def _bars(block: Bars) -> str:
    return (f"<div><h3>{escape(block.title)}</h3>"
            + svg.bars(list(block.labels), {name: list(values) for name, values in block.series},
                       label_axis=block.label_axis, value_axis=block.value_axis) + "</div>")


def _roc(block: Roc) -> str:
    return svg.roc({name: (list(fpr), list(tpr)) for name, fpr, tpr in block.curves}, block.epsilon, block.delta,
                   size=480)


def _grid(block: Grid) -> str:
    return "<div class='grid'>" + "".join(_block(b) for b in block.blocks) + "</div>"


DRAW: dict[type, Callable[[Any], str]] = {Text: _text, Table: _table_block, Bars: _bars, Roc: _roc, Grid: _grid}


def _block(block: Block) -> str:
    draw = DRAW.get(type(block))
    if draw is None:
        raise TypeError(f"the report cannot draw a {type(block).__name__} block (privsynth.audit.section)")
    return draw(block)


def _section(key: str, title: str, body: str) -> str:
    return f'<section id="{escape(key)}"><h2>{escape(title)}</h2>{body}</section>'


def section_html(section: Section) -> str:
    """One section, drawn: its anchor, its heading and its blocks."""
    return _section(section.key, section.title, "".join(_block(b) for b in section.blocks))


def audit_sections(figures: dict[str, Any], info: ReportInfo) -> list[Section]:
    """The section of every registered audit that shows one, in registry order; each reads
    the figures filed under its name."""
    out = []
    for audit in audits():
        if isinstance(audit, HasSection):
            section = audit.section(figures.get(audit.name, {}), info)
            if section is not None:
                out.append(section)
    return out


def _utility(report: dict[str, Any]) -> str:
    out = [f"<p class='small'>Categories, bins and cells held by fewer than {report['min_cell']} real patients "
           f"are suppressed from every table and plot; real counts are rounded to multiples of {report['min_cell']} "
           "and shares are taken among the cells shown.</p>", _baseline(report)]
    t = report.get("tstr")
    if t:
        def fmt(v: float | None, percent: bool = True) -> str:
            return "–" if v is None else (f"{100 * v:.1f}%" if percent else f"{v:.3f}")

        def row(label: str, r: dict[str, Any]) -> list[str]:
            return [label, fmt(r.get("accuracy")), fmt(r.get("balanced_accuracy")), fmt(r.get("auc"), False)]

        out.append(f"<h3>Train on synthetic, test on real: predicting <i>{escape(t['target'])}</i></h3>"
                   "<p>A gradient-boosting classifier trained on the synthetic data and one trained on the real "
                   f"training patients, both tested on the {t['test_patients']} held-out patients, from "
                   f"{len(t.get('features', []))} other columns (columns read from the target's own codes are "
                   "left out). Balanced accuracy and the AUC are the measures to read when one value is common "
                   f"(always guessing the most common value is right {fmt(t['majority'])} of the time, with a balanced "
                   "accuracy of 50% and an AUC of 0.5).</p>"
                   + _table(["trained on", "accuracy", "balanced accuracy", "AUC"],
                            [row("real training patients", t["real"]), row("synthetic data", t["synthetic"])]))
    a = report["associations"]
    gap = _difference(a["real"], a["synthetic"])
    out.append("<h3>Associations between columns (Cramér's V)</h3><p>Cramér's V of every pair of columns "
               "(0: independent, 1: one determines the other), real and synthetic, and real minus synthetic "
               f"(blue: the synthetic data under-state the association). Mean absolute difference "
               f"{a['mean_abs_difference']:.3f}.</p><div class='grid'>"
               + svg.heatmap(a["real"], a["columns"], a["columns"], title="real")
               + svg.heatmap(a["synthetic"], a["columns"], a["columns"], title="synthetic")
               + svg.heatmap(gap, a["columns"], a["columns"], vmax=_largest(gap), title="real minus synthetic",
                             signed=True) + "</div>")
    out.append("<h3>Most associated pairs, cell by cell (share of patients)</h3><div class='grid'>")
    for pair in report["two_way"]:
        vmax = max([v for row in pair["real"] + pair["synthetic"] for v in row if v == v] + [1e-9])
        name = " × ".join(pair["columns"])
        gap = _difference(pair["real"], pair["synthetic"])
        out.append("<div>" + svg.heatmap(pair["real"], pair["row_labels"], pair["col_labels"], vmax=vmax,
                                         title=f"{name}: real")
                   + svg.heatmap(pair["synthetic"], pair["row_labels"], pair["col_labels"], vmax=vmax,
                                 title=f"{name}: synthetic")
                   + svg.heatmap(gap, pair["row_labels"], pair["col_labels"], vmax=_largest(gap),
                                 title=f"{name}: real minus synthetic", signed=True) + "</div>")
    out.append("</div><h3>Every column: real vs synthetic shares</h3><div class='grid'>")
    for col in report["one_way"]:
        out.append(f"<div><b>{escape(col['column'])}</b> <span class='small'>TVD {col['tvd']:.3f}</span><br>"
                   + svg.bars(col["labels"], {"real": col["real"], "synthetic": col["synthetic"]}, width=460)
                   + "</div>")
    return "".join(out) + "</div>"


def _baseline(report: dict[str, Any]) -> str:
    """The sampling baseline, and the subgroups the synthetic data serve worst."""
    out = []
    b = report.get("baseline")
    if b:
        out.append("<h3>Against a sampling baseline</h3>"
                   f"<p>Mean total-variation distance between the training patients' shares and those of "
                   f"{b['patients']:,} synthetic patients: <b>{b['synthetic']:.3f}</b>; "
                   f"of {b['patients']:,} other real patients (the holdout): <b>{b['sampling']:.3f}</b>. "
                   "The second is what sampling alone costs; "
                   f"the synthetic data are {b['synthetic'] / max(b['sampling'], 1e-9):.1f} times as far.</p>")
    groups = sorted(report.get("bias", {}).get("groups", []), key=lambda g: -abs(g["shift"]))[:5]
    if groups:
        rows = [[escape(f"{g['attribute']} = {g.get('display', g['group'])}"), f"{100 * g['real']:.1f}%",
                 f"{100 * g['synthetic']:.1f}%", f"{100 * g['shift']:+.1f} pts"] for g in groups]
        out.append("<h3>Worst-served subgroups</h3><p>The protected groups whose share moved most (the full "
                   "table, with each group's prediction accuracy, is in 6b).</p>"
                   + _table(["group", "real share", "synthetic share", "shift"], rows))
    return "".join(out)


def _difference(real: list[list[float]], synthetic: list[list[float]]) -> list[list[float]]:
    """Cell by cell, real minus synthetic (a suppressed cell stays suppressed)."""
    return [[r - y if r == r and y == y and r is not None and y is not None else float("nan")
             for r, y in zip(row_r, row_s)] for row_r, row_s in zip(real, synthetic)]


def _largest(matrix: list[list[float]]) -> float:
    return max([abs(v) for row in matrix for v in row if v == v] + [1e-9])


def _bias(report: dict[str, Any]) -> str:
    b = report["bias"]
    if not b["groups"]:
        return "<p>The schema names no protected attributes (add <code>protected:</code> to it).</p>"
    by_group = {}
    t = report.get("tstr")
    if t and t["real"].get("by_group") is not None:
        by_group = {g: (t["real"]["by_group"].get(g), t["synthetic"]["by_group"].get(g))
                    for g in t["real"]["by_group"]}
    rows, classes = [], []
    for g in b["groups"]:
        key = f"{g['attribute']} = {g['group']}"
        acc = by_group.get(key, (None, None))
        name = g.get("display", g["group"])
        rows.append([escape(g["attribute"]), escape(name if name == g["group"] else f"{name} ({g['group']})"),
                     f"{100 * g['real']:.1f}%", f"{100 * g['synthetic']:.1f}%", f"{100 * g['shift']:+.1f} pts",
                     f"×{g.get('ratio', 1.0):.2f}",
                     "–" if acc[0] is None else f"{100 * acc[0]:.1f}%",
                     "–" if acc[1] is None else f"{100 * acc[1]:.1f}%",
                     f"FLAG: {escape(g.get('why', ''))}" if g["flagged"] else ""])
        classes.append("flag" if g["flagged"] else "")
    flagged = sum(g["flagged"] for g in b["groups"])
    return (f"<p>Each group of the protected attributes: its share among real and synthetic patients, flagged when "
            f"it shifts by more than {100 * b['shift_max']:.0f} percentage points, or when its share falls below half "
            "or rises above twice the real one (a small group that vanishes moves by a fraction of a point, yet it "
            "is gone); and the accuracy of the two prediction models on held-out patients of that group. "
            f"<b>{flagged} group(s) flagged.</b></p>"
            + _table(["attribute", "group", "real share", "synthetic share", "shift", "ratio",
                      "accuracy (trained on real)", "accuracy (trained on synthetic)", ""], rows, classes))


def _patients(report: dict[str, Any], real_columns: list[str]) -> str:
    cards = []
    for k, card in enumerate(report["patients"], 1):
        items = []
        for label, key in (("conditions", "conditions"), ("latest observations", "observations"),
                           ("medications", "medications"), ("procedures", "procedures"),
                           ("encounters", "encounters"), ("other", "other")):
            values = card.get(key) or []
            if key in ("medications", "procedures", "other") and not values:
                continue  # a card from before these lines existed, or nothing to say
            items.append(f"<dt>{label}</dt><dd>{escape('; '.join(values)) if values else 'none'}</dd>")
        cards.append(f"<div class='card'><b>Synthetic patient {k}</b><br>{escape(card.get('person', ''))}"
                     f"<dl>{''.join(items)}</dl></div>")
    who = ("None of them is a real person." if not real_columns else
           f"Partial synthesis: each is a real training patient whose {escape(', '.join(real_columns))} are real "
           "values; every other value was drawn from the DP model.")
    return ("<p>Random synthetic patients, for a clinician's face validation: do these records look plausible? "
            f"({who})</p><div class='grid'>" + "".join(cards) + "</div>")


def render(manifest: dict[str, Any], audit: dict[str, Any], report: dict[str, Any] | None,
           ledger_line: str = "", manifest_sha256: str = "") -> str:
    info = ReportInfo(manifest["epsilon"], manifest["delta"], tuple(manifest.get("real_columns") or ()),
                      (report or {}).get("min_cell", 10))
    own = {
        "context": dossier.context(manifest),
        "variables": dossier.data_and_variables(manifest, report),
        "guarantee": dossier.nist_statement(manifest) + _guarantee(manifest, ledger_line),
        "residual": dossier.residual_risk(manifest, audit),
        "terms": dossier.terms(),
        "signoff": dossier.sign_off(manifest, manifest_sha256 or "not recorded"),
        "gates": _gates(audit),
        "utility": _utility(report) if report else "<p>No utility figures were recorded.</p>",
        "bias": _bias(report) if report else "",
        "patients": _patients(report, manifest.get("real_columns") or []) if report else "",
    }
    body = ([(key, title, _section(key, title, own[key])) for key, title in BEFORE_AUDITS]
            + [(s.key, s.title, section_html(s)) for s in audit_sections(audit.get("figures", {}), info)]
            + [(key, title, _section(key, title, own[key])) for key, title in AFTER_AUDITS])
    nav = "".join(f'<a href="#{escape(key)}">{escape(title)}</a>' for key, title, _ in body)
    sections = "".join(html for _, _, html in body)
    return (f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>privsynth release report"
            f"</title><style>{CSS}</style></head><body><header><h1>privsynth release report</h1>"
            f"<div>{escape(manifest['schema']['name'])} · "
            + (f"<b>partial synthesis: NOT end-to-end differentially private</b> (real columns "
               f"{escape(', '.join(manifest['real_columns']))}) · model ε = {manifest['epsilon']:g} · "
               if manifest.get("real_columns") else f"ε = {manifest['epsilon']:g} · ")
            + f"{'audits passed' if audit['passed'] else 'REFUSED'}</div></header><nav>{nav}</nav><main>"
            "<p class='banner'>INTERNAL: this report contains aggregate statistics of the real patients (cells "
            "under the policy minimum suppressed) and audit figures; they are not differentially private. Share "
            "the release directory, not this page, unless the data owner agrees.</p>"
            f"{sections}</main></body></html>")
