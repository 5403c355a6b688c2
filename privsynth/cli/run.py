"""The commands that make data: synthesize, demo, release, sample."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import click
from rich.table import Table

from privsynth.cli.app import (
    DEFAULT_SCHEMA,
    FORMAT_HELP,
    LEDGER_KEY_HELP,
    MAX_MODEL_CELLS_HELP,
    METHOD_HELP,
    SEED_HELP,
    SHOW_COUNTS_HELP,
    Methods,
    console,
    emit_json,
    fail,
    main,
    notice,
    out,
    print_verdicts,
    progress_bar,
    sharding_options,
    spec_from,
)
from privsynth.formats import formats, record_formats


def run_synthesize(options: dict[str, Any]) -> None:
    from privsynth.pipeline import run_synthesis

    out_dir = options.pop("out_dir")
    spec = spec_from(options)
    rows = spec.rows
    with progress_bar() as progress:
        result = run_synthesis(spec, out_dir, progress=progress, notice=notice)
    table = Table(title="privsynth synthesize")
    table.add_column("")
    table.add_column("")
    table.add_row("privacy unit", "patient (whole record)")
    table.add_row("(epsilon, delta)", f"({result.epsilon:g}, {result.delta:g})")
    table.add_row("rho spent / allowed", f"{result.rho_spent:.6g} / {result.rho_total:.6g}")
    table.add_row("synthetic patients", f"{result.patients_out:,}" + (" (as asked)" if rows is not None else
                                                                       " (a DP estimate of the input's size)"))
    for rtype, n in sorted(result.resources_out.items()):
        table.add_row(f"{rtype} written", str(n))
    table.add_row("seconds", ", ".join(f"{k} {v:.1f}" for k, v in result.seconds.items()))
    table.add_row("shareable output", str(result.out))
    table.add_row("internal report", f"{result.internal_report} (NOT for sharing)")
    out.print(table)
    if result.findings:
        out.print(f"[yellow]{len(result.findings)} data-quality finding(s)[/] (shown above; counts from the real data, "
                  "in the internal report, NOT for sharing)")


@main.command()
@click.argument("inputs", nargs=-1, required=True, type=click.Path())
@click.option("--schema", "schema_file", required=True, type=click.Path(dir_okay=False), help="Schema YAML.")
@click.option("--epsilon", type=float, required=True, help="Privacy loss epsilon (e.g. 1).")
@click.option("--delta", type=float, default=1e-6, show_default=True, help="Privacy loss delta.")
@click.option("--rows", type=int, default=None, help="Synthetic patients (default: a DP estimate).")
@click.option("--seed", type=click.IntRange(min=0), default=None, help=SEED_HELP)
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False), help="New output directory.")
@click.option("--format", "fmt", type=click.Choice(record_formats()), default="ndjson", show_default=True,
              help=FORMAT_HELP)
@click.option("--method", type=Methods(), default="aim", show_default=True, help=METHOD_HELP)
@click.option("--validate-input", is_flag=True, help="Validate every input resource with fhir.resources R4B.")
@click.option("--validate-output", type=click.Choice(["all", "sample"]), default="all", show_default=True,
              help="Validate every FHIR resource written, or a stated sample (the first 1,000 patients, then every "
                   "10th; stated in the Bulk Data manifest): about 2x faster writing.")
@click.option("--skip-bad-input", is_flag=True, help="Skip (and count) bad files and lines instead of stopping.")
@click.option("--max-model-cells", type=click.IntRange(min=1), default=None, help=MAX_MODEL_CELLS_HELP)
@sharding_options
def synthesize(**options: Any) -> None:
    """Turn FHIR R4 files or directories, or CSV/Parquet tables (INPUTS), into DP synthetic data.

    A FHIR schema writes FHIR R4 (and the patient view as CSV); a table schema writes CSV
    and Parquet.
    """
    run_synthesize(options)


@main.command()
@click.option("--out", "out_dir", default="privsynth-demo", show_default=True, type=click.Path(file_okay=False),
              help="New output directory.")
@click.option("--patients", type=int, default=1000, show_default=True, help="Size of the example hospital.")
@click.option("--epsilon", type=float, default=1.0, show_default=True)
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True,
              help="Seed of the example export (its fake patients); the synthesis draws a fresh one.")
@click.option("--export-only", "export_dir", type=click.Path(file_okay=False), default=None,
              help="Only write the example FHIR export to this new directory (e.g. to try `privsynth release`).")
def demo(out_dir: str, patients: int, epsilon: float, seed: int, export_dir: str | None) -> None:
    """Build an example hospital export (fake patients) and synthesize it."""
    from privsynth.example.hospital import write_example_export

    if patients < 10:
        fail("--patients must be at least 10")
    if export_dir is not None:
        target = Path(export_dir)
        if target.exists() and any(target.iterdir()):
            fail(f"{target}: already exists and is not empty; choose a new directory")
        with progress_bar() as progress:
            write_example_export(target, patients, seed, progress=lambda d, t: progress("example export", d, t))
        out.print(f"example FHIR R4 export of {patients} fake patients written to {target}")
        return
    with tempfile.TemporaryDirectory(prefix="privsynth-example-") as tmp:
        console.print(f"Building an example hospital export of {patients} fake patients ...")
        with progress_bar() as progress:
            write_example_export(Path(tmp), patients, seed,
                                 progress=lambda d, t: progress("example export", d, t))
        run_synthesize({"inputs": (tmp,), "schema_file": DEFAULT_SCHEMA, "epsilon": epsilon, "out_dir": out_dir})


@main.command("release")
@click.argument("inputs", nargs=-1, required=True, type=click.Path())
@click.option("--schema", "schema_file", required=True, type=click.Path(dir_okay=False), help="Schema YAML.")
@click.option("--epsilon", type=float, required=True, help="Privacy loss epsilon of this release.")
@click.option("--delta", type=float, default=1e-6, show_default=True, help="Privacy loss delta.")
@click.option("--policy", "policy_file", type=click.Path(dir_okay=False), default=None, help="Policy YAML.")
@click.option("--ledger", "ledger_file", type=click.Path(dir_okay=False), default=None,
              help="Budget ledger (SQLite); default $PRIVSYNTH_LEDGER or ~/.local/share/privsynth/ledger.sqlite3.")
@click.option("--recipients", default="", help="Who receives this release (stated in its manifest, report and "
              "dp-registry.json; e.g. 'the X consortium's analysts under DUA 2026-04').")
@click.option("--purpose", default="", help="What the release is for (stated beside the recipients).")
@click.option("--dataset", default="default", show_default=True,
              help="The named budget (one per data source) whose patients this release is charged to.")
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False), help="New release directory.")
@click.option("--seed", type=click.IntRange(min=0), default=None, help=SEED_HELP + " The train/holdout split is "
              "never seeded.")
@click.option("--format", "fmt", type=click.Choice(record_formats()), default="ndjson", show_default=True,
              help=FORMAT_HELP)
@click.option("--method", type=Methods(), default="aim", show_default=True, help=METHOD_HELP)
@click.option("--keep", default="", help="Partial synthesis: comma-separated columns that stay real.")
@click.option("--target", default=None, help="Column the report's TSTR models predict (default: the schema's).")
@click.option("--max-model-cells", type=click.IntRange(min=1), default=None, help=MAX_MODEL_CELLS_HELP)
@click.option("--json", "as_json", is_flag=True,
              help="Print the outcome (the manifest, paths, budget) as one JSON document on stdout.")
@click.option("--ledger-key", "ledger_key", type=click.Path(dir_okay=False), default=None, help=LEDGER_KEY_HELP)
@click.option("--show-counts", is_flag=True, help=SHOW_COUNTS_HELP)
def release_command(**options: Any) -> None:
    """Charge the patients, split, fit on train, sample, audit and gate: a release directory, or a refusal (exit 3)."""
    from privsynth.privacy.keyfile import default_ledger_path
    from privsynth.privacy.ledger import Ledger
    from privsynth.release.release import run_release

    out_dir, as_json = options.pop("out_dir"), options.pop("as_json")
    ledger_file, ledger_key = options.pop("ledger_file"), options.pop("ledger_key")
    spec = spec_from(options)  # a bad option is refused before the ledger is opened
    ledger = Ledger(ledger_file or default_ledger_path(), ledger_key)
    s, policy, show_counts = spec.schema, spec.policy, spec.show_counts
    text = console if as_json else out
    if ledger.origin.warning():
        console.print(f"[yellow]warning:[/] {ledger.origin.warning()}", highlight=False)
    with progress_bar() as progress:
        result = run_release(spec, out_dir, ledger=ledger, progress=progress, notice=notice)
    print_verdicts(text, result.audit, "release audit")
    m = result.manifest
    text.print(f"[bold green]RELEASED[/]: {result.out} ((epsilon, delta) = ({spec.epsilon:g}, {spec.delta:g}), "
               f"rho {m.rho:.6g}); "
              f"budget '{result.budget}': the worst-off patient has now spent epsilon {result.worst_epsilon_spent:.3g} "
              f"of {result.epsilon_budget:.3g} (delta {result.delta_budget:g})")
    if s.patient_id.is_row_hash(s.input_format):
        text.print("[yellow]patients keyed by a hash of each row (allowed by the policy, recorded as a weakening):[/] "
                  "the schema declares no patient_id column, so a patient whose values differ in another export "
                  "counts as a new patient in the budget")
    if result.rows_sharing_a_key:
        shown = f"{result.rows_sharing_a_key} rows share" if show_counts else "some rows share"
        text.print(f"[yellow]{shown} their key with another row:[/] they may be one patient counted more than once, "
                  "so the ledger charged each such key rho times its count squared")
    if m.real_columns:
        text.print(f"[yellow]partial synthesis, NOT end-to-end DP:[/] real columns {', '.join(m.real_columns)}")
    for line in policy.weakened():
        text.print(f"[yellow]policy weakened (recorded in the manifest):[/] {line}")
    text.print(f"internal audit figures (NOT for sharing): {result.audit_file}")
    text.print(f"report for the compliance review (internal): {result.report_file}")
    if as_json:
        emit_json({"released": True, "out": result.out, "audit_file": result.audit_file,
                    "report_file": result.report_file, "budget": result.budget,
                    "worst_epsilon_spent": result.worst_epsilon_spent, "epsilon_budget": result.epsilon_budget,
                    "delta_budget": result.delta_budget, "manifest": m.as_dict()})


@main.command("sample")
@click.argument("model_dir", type=click.Path(file_okay=False))
@click.option("--rows", type=click.IntRange(min=1), required=True, help="Synthetic patients to draw.")
@click.option("--where", "where", multiple=True, metavar="COL=VALUE[,COL=VALUE]",
              help="Condition exactly on these values (a category, true/false, or a numeric column's bin "
                   "label such as 'age=[40, 50)'). Repeatable.")
@click.option("--format", "fmt", type=click.Choice(list(formats())), default=None,
              help=FORMAT_HELP + " csv: the patient table alone (the default and only form for table schemas).")
@click.option("--seed", type=click.IntRange(min=0), default=None, help=SEED_HELP)
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False), help="New output directory.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document on stdout (text goes to stderr).")
def sample_command(model_dir: str, rows: int, where: tuple[str, ...], fmt: str | None, seed: int | None,
                   out_dir: str, as_json: bool) -> None:
    """Draw patients from a shared model (a synthesize or release directory): no real data, no budget.

    Post-processing of the model's DP release: it costs no privacy budget, whatever is drawn.
    """
    from privsynth.sample import sample

    with progress_bar() as progress:
        result = sample(model_dir, rows, out_dir, where=list(where), output_format=fmt, seed=seed,
                        progress=progress)
    table = Table(title="privsynth sample")
    table.add_column("")
    table.add_column("")
    table.add_row("model", f"{model_dir} (schema '{result.statement['model']['schema']}')")
    table.add_row("privacy", result.statement["privacy"])
    table.add_row("patients drawn", f"{result.rows:,}")
    table.add_row("conditioned on", ", ".join(f"{k}={v}" for k, v in result.where.items()) or "nothing")
    for name, n in sorted(result.files.items()):
        table.add_row(f"{name} written", f"{n:,}")
    table.add_row("output", str(result.out))
    (console if as_json else out).print(table)
    if as_json:
        emit_json({"out": result.out, "files": result.files, **result.statement})
