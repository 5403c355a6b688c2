"""The release report: it renders in headless Chromium with every section, and small cells
never reach it."""

from __future__ import annotations

import re
import shutil
import subprocess
from typing import Any

import numpy as np
import pandas as pd
import pytest

RARE = "zz-held-by-three"
# the report's sections in order: its own, then each registered audit's (registry order), then its own
# (EMA Policy 0070's order: context, data, statement, risks, conclusion, utility, terms, sign-off)
SECTIONS = [("context", "1. Context and recipients"), ("variables", "2. Data and variables"),
            ("guarantee", "3. Privacy statement (NIST SP 800-226)"), ("gates", "4. Risks: the audit gates"),
            ("distances", "Closest records"), ("membership", "Membership inference"),
            ("singling-out", "Singling-out risk (WP29)"), ("linkability", "Linkability risk (WP29)"),
            ("inference-risk", "Inference risk (WP29)"), ("coherence", "Coherence"),
            ("residual", "5. Residual risk: conclusion"), ("utility", "6. Utility"), ("bias", "6b. Subgroups"),
            ("patients", "6c. Synthetic patients"), ("terms", "7. Appropriate use"), ("signoff", "8. Sign-off")]


@pytest.fixture(scope="module")
def released(tmp_path_factory):
    """A release of a seeded 6,000-patient table in which one category has 3 patients."""
    from privsynth.privacy.ledger import Ledger
    from privsynth.release.release import release
    from privsynth.schema import load_schema

    tmp = tmp_path_factory.mktemp("report")
    rng = np.random.default_rng(0)
    n = 6000
    sex = rng.choice(["F", "M"], n)
    group = rng.choice(["north", "south", "east"], n, p=[0.5, 0.3, 0.2]).astype(object)
    group[:3] = RARE
    age = rng.integers(18, 90, n)
    outcome = (rng.random(n) < 0.2 + 0.4 * (sex == "F") + 0.003 * (age - 50)).astype(int)
    pd.DataFrame({"id": np.arange(n), "sex": sex, "region": group, "age": age, "outcome": outcome}).to_csv(
        tmp / "patients.csv", index=False)
    schema = load_schema({"name": "toy", "input": "table", "target": "outcome", "protected": ["sex", "region"],
                          "patient_id": "id", "columns": [
        {"name": "id", "role": "direct_identifier", "faker": "id", "source": {"column": "id"}},
        {"name": "sex", "kind": "categorical", "role": "quasi_identifier", "source": {"column": "sex"},
         "domain": {"categories": ["F", "M"]}},
        {"name": "region", "kind": "categorical", "role": "quasi_identifier", "source": {"column": "region"},
         "domain": {"categories": ["north", "south", "east", RARE]}},
        {"name": "age", "kind": "integer", "role": "quasi_identifier", "source": {"column": "age"},
         "domain": {"lower": 0, "upper": 100, "bins": 10}},
        {"name": "outcome", "kind": "categorical", "role": "sensitive", "source": {"column": "outcome"},
         "domain": {"categories": [0, 1]}},
    ]})
    result = release([tmp / "patients.csv"], schema, tmp / "release", epsilon=1.0, ledger=Ledger(tmp / "l.sqlite3"),
                     recipients="the toy consortium", purpose="testing the report")
    return result


def test_report_has_every_section_and_the_figures(released):
    html = released.report_file.read_text()
    for key, title in SECTIONS:
        assert f'id="{key}"' in html and title in html
    assert re.findall(r'<section id="([^"]+)">', html) == [key for key, _ in SECTIONS]
    assert re.findall(r'<a href="#([^"]+)">', html) == [key for key, _ in SECTIONS]  # the nav lists them all
    assert "ε = 1" in html and "Train on synthetic, test on real" in html and "<svg" in html
    assert "The audit gate is not part of the guarantee" in html and "at most 3 charged attempts" in html
    assert "http://" not in html.replace('xmlns="http://www.w3.org/2000/svg"', "")  # nothing fetched
    assert "the toy consortium" in html and "Residual risk judged acceptably low" in html
    assert "Against a sampling baseline" in html and "real minus synthetic" in html
    assert html.count("<td>direct identifier</td>") == 1 and "fresh value made up by Faker" in html
    manifest = (released.out / "manifest.json").read_bytes()
    import hashlib

    assert hashlib.sha256(manifest).hexdigest() in html  # the sign-off names what is signed


def test_a_category_held_by_three_patients_never_shows(released):
    assert RARE not in released.report_file.read_text()


def test_report_rebuilds_from_the_release_and_its_audit(released, tmp_path):
    from privsynth.release.release import rebuild_report

    again = rebuild_report(released.out, out_file=tmp_path / "again.html")
    assert again.read_text() == released.report_file.read_text()


def test_report_renders_in_headless_chromium(released, tmp_path):
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        pytest.skip("Debian's chromium package is not installed")
    run = subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu", "--dump-dom",
                          released.report_file.as_uri()], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr[-2000:]
    dom = run.stdout
    for key, title in SECTIONS:
        assert f'id="{key}"' in dom and f"<h2>{title}</h2>" in dom
    assert dom.count("<svg") >= 6 and RARE not in dom


def test_report_prints_to_pdf_in_headless_chromium(released, tmp_path):
    from privsynth.report.pdf import browser, to_pdf

    if browser() is None:
        pytest.skip("Debian's chromium package is not installed")
    pdf = to_pdf(released.report_file, tmp_path / "report.pdf")
    data = pdf.read_bytes()
    assert data.startswith(b"%PDF-") and data.rstrip().endswith(b"%%EOF") and len(data) > 20_000
    assert data.count(b"/Type /Page") - data.count(b"/Type /Pages") >= 4  # a filed document, several pages


def test_the_release_carries_a_dp_registry_entry(released):
    import json

    entry = json.loads((released.out / "dp-registry.json").read_text())
    manifest = json.loads((released.out / "manifest.json").read_text())
    assert entry["privacy_loss"]["epsilon"] == 1.0 and entry["trust_model"].startswith("central")
    assert entry["recipients"] == "the toy consortium" and "dp-registry.json" in manifest["files"]
    assert entry["implementation"]["noise_library"].startswith("OpenDP")


def test_a_small_protected_group_that_vanishes_is_flagged():
    """0.6% of real patients, none synthetic: a shift of 0.6 points only, but a factor of
    infinity; so is a group that doubles. A group holding fewer than min_cell real patients
    is not shown at all."""
    from privsynth.report.data import bias
    from privsynth.schema import load_schema

    schema = load_schema({"name": "t", "input": "table", "protected": ["race"], "columns": [
        {"name": "race", "kind": "categorical", "role": "quasi_identifier", "source": {"column": "race"},
         "domain": {"categories": ["a", "b", "c", "d"]}}]})
    real = np.array([0] * 9_640 + [1] * 60 + [2] * 295 + [3] * 5)[:, None]
    synthetic = np.array([0] * 9_350 + [2] * 650)[:, None]
    rows, _ = bias(real, synthetic, real, schema, min_cell=10, shift_max=0.05)
    by_group = {r["group"]: r for r in rows}
    assert by_group["b"]["flagged"] and by_group["b"]["why"] == "vanished"
    assert by_group["c"]["flagged"] and "relative change" in by_group["c"]["why"]
    assert not by_group["a"]["flagged"] and "d" not in by_group


def test_cards_list_conditions_held_as_numpy_booleans(core_schema):
    """A decoded frame may hold numpy booleans: a card tested ``value is True`` and showed no
    condition at all (0 of 24 cards, issue 21)."""
    import numpy as np
    import pandas as pd

    from privsynth.domain import encode
    from privsynth.report.cards import patients

    row = {c.name: (np.bool_(False) if c.kind == "boolean" else 0 if c.source.summary_kind.counts else None)
           for c in core_schema.view_columns}
    row.update({"gender": "female", "age": 71, "diabetes": np.bool_(True), "diabetes_onset_age": 60.0,
                "heart_failure": np.bool_(False), "deceased": np.bool_(True), "years_since_death": 3,
                "medication_requests": 2, "systolic_bp": 131.26, "race": "2106-3"})
    frame = pd.DataFrame([row] * 20)
    codes, _ = encode(frame, core_schema)
    [card] = patients(frame.head(1), codes, codes[:1], core_schema, min_cell=1, rng=np.random.default_rng(0))
    text = repr(card)
    assert "diabetes (onset at 60)" in text and "heart failure" not in text
    # the reference date is 1 January: three whole years before it is a death in the year before those
    year = core_schema.reference.year - 4
    assert f"deceased in {year}, at about 68" in card["person"] and "White" in card["person"]
    assert card["medications"] == ["medication requests: 2"]
    assert "Systolic blood pressure: 131.3 mmHg" in card["observations"]


def test_a_timeline_card_shows_each_group_in_a_line_and_a_series_instead_of_its_last_value():
    """A card says what the FHIR says: a lab series replaces the lab's last value (the
    history writer writes the series), counts read as events in how many cells."""
    from privsynth.domain import encode
    from privsynth.report.cards import patients
    from privsynth.schema import load_schema
    from tests.conftest import SCHEMA

    schema = load_schema(SCHEMA.parent / "patient-timeline.yaml")
    row = {c.name: (False if c.kind == "boolean" else 0 if c.source.summary_kind.counts else None)
           for c in schema.view_columns}
    row.update({"gender": "male", "age": 64, "diabetes": True, "diabetes_onset_age": 60, "hba1c": 7.9,
                "total_cholesterol": 190.0, "labs_hba1c_y1": 7.2, "labs_hba1c_y3": 8.1,
                "medications_antidiabetic_y1": 2, "medications_antidiabetic_y2": 1, "encounters_ambulatory_y1": 3})
    frame = pd.DataFrame([row] * 5)
    codes, _ = encode(frame, schema)
    [card] = patients(frame.head(1), codes, codes[:1], schema, min_cell=1, rng=np.random.default_rng(0))
    assert "hba1c series: 2 value(s) in the last 6 years, latest 7.2 %" in card["observations"]
    assert not any(line.startswith("Hemoglobin A1c") for line in card["observations"])  # the series carries it
    assert any(line.startswith("Cholesterol") for line in card["observations"])  # no cholesterol series here
    assert card["medications"] == ["antidiabetic: 3 in 2 of the last 6 years"]
    assert "ambulatory: 3 in 1 of the last 10 years" in card["encounters"]
    assert card["conditions"] == ["diabetes (onset at 60)"]


def test_a_registered_audit_shows_its_section_without_touching_the_report():
    """A toy audit registered here, with a section of every kind of block, appears in the
    page and its nav after the builtin audits' sections and before the report's own; one
    whose section is None, or that has none, does not. Text and cells are escaped."""
    from privsynth.audit.registry import register, unregister
    from privsynth.audit.section import Bars, Grid, ReportInfo, Roc, Section, Strong, Table, Text
    from privsynth.report.html import render

    class Toy:
        name = "toy audit"
        thresholds = ()
        partial_synthesis = "the same"

        def applies(self, context: Any) -> bool:
            return True

        def run(self, context: Any) -> tuple[list, dict[str, Any]]:
            return [], {}

        def section(self, figures: dict[str, Any], info: ReportInfo) -> Section | None:
            if not figures:
                return None
            return Section("toy", "Toy <audit>", (
                Text(("rows & ", Strong(f"{figures['rows']} <rows>"), f", min cell {info.min_cell}")),
                Table(("rule", "value"), (("a < b", "1"), ("c", "2")), (True, False)),
                Grid((Bars("shares", ("x", "y"), (("train", (0.25, 0.75)), ("holdout", (0.5, 0.5)))),)),
                Roc((("toy attack", (0.0, 0.5, 1.0), (0.0, 0.6, 1.0)),), None if info.partial else info.epsilon,
                    info.delta)))

    class Silent(Toy):
        name = "silent audit"

        def section(self, figures: dict[str, Any], info: ReportInfo) -> Section | None:
            return None

    class Bare:  # no section method at all
        name = "bare audit"
        thresholds = ()
        partial_synthesis = "the same"

    manifest = {"epsilon": 1.0, "delta": 1e-6, "rho": 0.02, "holdout": {"fraction": 0.2}, "schema":
                {"name": "toy", "sha256": "0"}, "seed": 1}
    audit = {"passed": True, "checks": [], "figures": {"toy audit": {"rows": 3}, "silent audit": {"rows": 3}}}
    for toy in (Toy(), Silent(), Bare()):
        register(toy)  # type: ignore[arg-type]
    try:
        html = render(manifest, audit, None, "")
        without_figures = render(manifest, {**audit, "figures": {}}, None, "")
    finally:
        for name in ("toy audit", "silent audit", "bare audit"):
            unregister(name)
    keys = ["context", "variables", "guarantee", "gates", "distances", "membership", "coherence", "toy", "residual",
            "utility", "bias", "patients", "terms", "signoff"]
    assert re.findall(r'<section id="([^"]+)">', html) == keys
    assert re.findall(r'<a href="#([^"]+)">', html) == keys
    assert '<a href="#toy">Toy &lt;audit&gt;</a>' in html and "<h2>Toy &lt;audit&gt;</h2>" in html
    assert "<p>rows &amp; <b>3 &lt;rows&gt;</b>, min cell 10</p>" in html
    assert '<tr class="flag"><td>a &lt; b</td><td>1</td></tr><tr><td>c</td><td>2</td></tr>' in html
    assert "<div class='grid'><div><h3>shares</h3><svg" in html and "toy attack" in html
    assert "DP envelope at epsilon 1" in html.split('id="toy"')[1]
    assert 'id="toy"' not in without_figures and "silent" not in html and "bare" not in html


def test_the_report_draws_every_kind_of_block():
    from privsynth.audit.section import BLOCKS
    from privsynth.report.html import DRAW

    assert set(DRAW) == set(BLOCKS)
