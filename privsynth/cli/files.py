"""The commands that read and check files: schema check/draft, audit, report, budget show."""

from __future__ import annotations

import sys
from pathlib import Path

import click
from rich.table import Table

from privsynth.cli.app import (
    MAX_MODEL_CELLS_HELP,
    console,
    emit_json,
    fail,
    main,
    out,
    print_verdicts,
    progress_bar,
    schema,
)


@schema.command("check")
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--max-model-cells", type=int, default=None, help=MAX_MODEL_CELLS_HELP)
def schema_check(file: str, max_model_cells: int | None) -> None:
    """Load and validate a schema FILE; print its columns."""
    from privsynth.generator.footprint import DEFAULT_MAX_MODEL_CELLS, check_footprint
    from privsynth.schema import load_schema

    s = load_schema(file)
    size = check_footprint(s, max_model_cells or DEFAULT_MAX_MODEL_CELLS)
    table = Table(title=f"schema '{s.name}' ({s.input_format}, reference date {s.reference_date})")
    for name in ("column", "role", "kind", "source", "domain size", "contribution bound"):
        table.add_column(name)
    for c in s.columns:
        src = c.source.column or f"{c.source.resource or ''} {c.source.summary}"
        table.add_row(c.name, c.role, c.kind if c.learned else "-", src,
                      str(c.domain.size) if c.domain else "-", c.contribution_bound)
    out.print(table)
    if s.timeline is not None:
        streams = Table(title=f"timeline: {len(s.timeline.streams)} event streams (structural prior "
                              f"{s.timeline.share:.0%} of rho)")
        streams.add_column("stream", no_wrap=True, min_width=11)
        for name in ("resource", "kind", "cells", "K", "per cell", "groups"):
            streams.add_column(name, overflow="fold")
        for st in s.timeline.streams:
            groups = ", ".join(g.name + (f" (treats {' or '.join(g.treats)})" if g.treats else "")
                               + (f" (around {g.around.condition}: at and after)" if g.around else "")
                               for g in st.groups)
            streams.add_row(st.name, st.resource, st.kind, f"{st.cells} x {st.grain} ({st.window_years} y)",
                            str(st.max_events), f"<= {st.max_per_grain}" if st.kind == "count" else "1 value",
                            groups)
        out.print(streams)
    from privsynth.fhir.write import unwritten

    for name, why in unwritten(s):
        out.print(f"[yellow]not written as FHIR:[/] {name}: {why} (learned, and in patients.csv only)")
    out.print(f"patients keyed by {s.patient_id.describe(s.input_format)}; model at least {size.cells:,} cells "
              f"(limit {max_model_cells or DEFAULT_MAX_MODEL_CELLS:,})")
    out.print(f"OK: {file}: {len(s.columns)} columns, {len(s.learned_columns)} learned")


@schema.command("draft")
@click.option("--dictionary", required=True, type=click.Path(dir_okay=False),
              help="Data dictionary CSV: column, type, unit, lower_bound, upper_bound, meaning, levels.")
@click.option("--name", default=None, help="Schema name (default: the dictionary's file name).")
@click.option("--out", "out_file", type=click.Path(dir_okay=False), default=None,
              help="Write the schema here (default: standard output).")
def schema_draft(dictionary: str, name: str | None, out_file: str | None) -> None:
    """Draft a table schema from a data dictionary: public bounds and levels, never the data."""
    import yaml

    from privsynth.atomic import write_bytes
    from privsynth.schema import load_schema
    from privsynth.schema.draft import draft_schema, dump_draft

    doc = draft_schema(dictionary, name)
    text = dump_draft(doc, dictionary)
    load_schema(yaml.safe_load(text))  # a draft always passes schema check
    if out_file is None:
        click.echo(text, nl=False)
        return
    if Path(out_file).exists():
        fail(f"{out_file}: already exists; privsynth does not overwrite a schema (choose another --out)")
    write_bytes(out_file, text.encode())
    roles = {c["name"]: c["role"] for c in doc["columns"]}
    quasi = [n for n, r in roles.items() if r == "quasi_identifier"]
    console.print(f"drafted {out_file}: {len(roles)} columns; quasi-identifiers (a guess, review them): "
                  f"{', '.join(quasi) or 'none'}. Then run: privsynth schema check {out_file}", highlight=False)


@main.command()
@click.option("--schema", "schema_file", required=True, type=click.Path(dir_okay=False), help="Schema YAML.")
@click.option("--train", "train_path", required=True, type=click.Path(), help="Patients the generator saw.")
@click.option("--holdout", "holdout_path", required=True, type=click.Path(), help="Patients it never saw.")
@click.option("--synthetic", "synthetic_path", required=True, type=click.Path(), help="The synthetic data.")
@click.option("--policy", "policy_file", type=click.Path(dir_okay=False), default=None, help="Policy YAML.")
@click.option("--epsilon", type=float, default=None, help="The epsilon claimed for the synthetic data, if any.")
@click.option("--delta", type=float, default=1e-6, show_default=True, help="The delta claimed.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the audit's resampling.")
@click.option("--figures", "json_file", type=click.Path(dir_okay=False), default=None,
              help="Also write the full figures here as JSON (internal: computed on real patients).")
@click.option("--json", "as_json", is_flag=True,
              help="Print the full figures as one JSON document on stdout (text goes to stderr).")
def audit(schema_file: str, train_path: str, holdout_path: str, synthetic_path: str, policy_file: str | None,
          epsilon: float | None, delta: float, seed: int, json_file: str | None, as_json: bool) -> None:
    """Audit ANY synthetic dataset (tables or FHIR directories) against train and holdout.

    Exit code 0 if every gate passes, 3 if one fails.
    """
    import json

    from privsynth.atomic import write_bytes
    from privsynth.audit import evaluate, load_policy
    from privsynth.pipeline import read_view
    from privsynth.schema import load_schema

    s = load_schema(schema_file)
    policy = load_policy(policy_file)
    with progress_bar() as progress:
        train, _ = read_view([Path(train_path)], s, progress=progress, keyed=False)
        holdout, _ = read_view([Path(holdout_path)], s, progress=progress, keyed=False)
        synthetic, _ = read_view([Path(synthetic_path)], s, progress=progress, keyed=False)
        result = evaluate(train, holdout, synthetic, s, policy, epsilon=epsilon, delta=delta, seed=seed,
                          progress=progress)
    text = console if as_json else out
    print_verdicts(text, result, f"privsynth audit ({result.sizes['synthetic']} synthetic rows)")
    for line in policy.weakened():
        text.print(f"[yellow]policy weakened:[/] {line}")
    if json_file:
        write_bytes(json_file, json.dumps(result.as_dict(), indent=2, default=float).encode())
    if as_json:
        emit_json({"passed": result.passed, "policy_weakened": list(policy.weakened()), **result.as_dict()})
    if result.passed:
        text.print("[bold green]PASS[/]: every gate passed")
    else:
        text.print(f"[bold red]FAIL[/]: {len(result.failures())} gate(s) failed")
        sys.exit(3)


@main.command()
@click.argument("release_dir", type=click.Path(file_okay=False))
@click.option("--audit", "audit_file", type=click.Path(dir_okay=False), default=None,
              help="The release's internal audit (default: RELEASE_DIR.audit.json beside it).")
@click.option("--out", "out_file", type=click.Path(dir_okay=False), default=None,
              help="Where to write the HTML (default: RELEASE_DIR.report.html beside it).")
@click.option("--pdf", is_flag=True, help="Also print it as PDF beside the HTML (headless Chromium), to file and sign.")
def report(release_dir: str, audit_file: str | None, out_file: str | None, pdf: bool) -> None:
    """Rebuild the self-contained HTML report of an existing release (and its PDF)."""
    from privsynth.release.release import rebuild_report

    html = rebuild_report(release_dir, audit_file, out_file)
    out.print(f"report written: {html}")
    if pdf:
        from privsynth.report.pdf import to_pdf

        out.print(f"PDF written: {to_pdf(html, html.with_suffix('.pdf'))}")


@main.group()
def budget() -> None:
    """The privacy budget ledger."""


@budget.command("show")
@click.option("--ledger", "ledger_file", type=click.Path(dir_okay=False), default=None, help="Budget ledger file.")
@click.option("--json", "as_json", is_flag=True, help="Print the budgets as one JSON document on stdout.")
@click.option("--ledger-key", "ledger_key", type=click.Path(dir_okay=False), default=None, help="Key file of the "
              "ledger; default $PRIVSYNTH_LEDGER_KEY or LEDGER.key beside it.")
@click.option("--show-counts", is_flag=True, help="Also show how many patients each budget has charged (exact "
              "counts from the real data: not for sharing).")
def budget_show(ledger_file: str | None, as_json: bool, ledger_key: str | None, show_counts: bool) -> None:
    """Every named budget: its total, and what its worst-off patient has spent."""
    from privsynth.privacy.keyfile import default_ledger_path
    from privsynth.privacy.ledger import Ledger
    from privsynth.privacy.mechanism import epsilon_for
    from privsynth.release.release import reconcile

    path = Path(ledger_file) if ledger_file else default_ledger_path()
    if not path.exists():
        fail(f"{path}: no ledger yet (it is created by the first `privsynth release`)")
    ledger = Ledger(path, ledger_key)
    for release_id, status in reconcile(ledger):
        console.print(f"reconciled: release {release_id} was left unfinished by a killed process; now {status}")
    table = Table(title=f"privacy budget ledger {path}")
    columns = ["budget", "worst-off patient: epsilon / total (delta)", "rho / total"]
    columns += ["patients", "at the worst"] if show_counts else []
    for name in (*columns, "releases (released)"):
        table.add_column(name)
    partial = 0
    text = console if as_json else out
    rows = []
    for b in ledger.budgets():
        eps = epsilon_for(b.worst_rho, b.delta_budget) if b.worst_rho > 0 else 0.0
        row = {"budget": b.name, "worst_epsilon_spent": eps, "epsilon_total": epsilon_for(b.rho_budget,
               b.delta_budget), "delta": b.delta_budget, "worst_rho_spent": b.worst_rho, "rho_total": b.rho_budget,
               "releases": b.releases, "released": b.released, "running": b.reserved, "partial": b.partial}
        counts = [f"{b.patients:,}", f"{b.patients_at_worst:,}"] if show_counts else []
        if show_counts:
            row |= {"patients": b.patients, "patients_at_worst": b.patients_at_worst}
        rows.append(row)
        table.add_row(b.name, f"{eps:.3g} / {epsilon_for(b.rho_budget, b.delta_budget):.3g} ({b.delta_budget:g})",
                      f"{b.worst_rho:.6g} / {b.rho_budget:.6g}", *counts,
                      f"{b.releases} ({b.released})" + (f", {b.reserved} running" if b.reserved else "")
                      + (f", {b.partial} partial" if b.partial else ""))
        partial += b.partial
    text.print(table)
    text.print("A patient's spend counts every budget name they were charged under; their cap is the smallest total "
               "of those budgets." + ("" if show_counts else " Patient counts: --show-counts."))
    if as_json:
        emit_json({"ledger": path, "budgets": rows})
    if partial:
        text.print(f"[yellow]{partial} partial-synthesis release(s):[/] their kept columns are real values, which no "
                  "epsilon covers")
