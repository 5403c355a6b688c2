"""The command line: a thin layer over the Python API. The only module that prints.

Exit codes: 0 success, 2 bad input or usage (one line, no traceback), 3 an audit failed
(the release was refused), 1 internal error.
"""

from __future__ import annotations

import os
import signal
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from privsynth.errors import PrivsynthError

console = Console(stderr=True)
out = Console()
DEFAULT_SCHEMA = Path(__file__).resolve().parent / "schemas" / "patient-core.yaml"


def _fail(message: str, code: int = 2) -> None:
    console.print(f"[bold red]privsynth: error:[/] {message}", highlight=False, soft_wrap=True)
    if "--json" in sys.argv[1:]:  # a --json run prints one JSON document on stdout, an error too
        _emit_json({"error": message, "exit_code": code})
    sys.exit(code)


PROGRESS_EVERY = 5.0  # seconds between progress lines when standard error is not a terminal


@contextmanager
def _progress() -> Iterator[Callable[[str, int, int], None]]:
    """Bars with an ETA on a terminal; otherwise one line per stage every few seconds (with
    its ETA) and one when it ends, so that a piped or CI run shows where it is."""
    quiet = not console.is_terminal and os.environ.get("PRIVSYNTH_PROGRESS") != "1"
    if quiet:
        started: dict[str, float] = {}
        last: dict[str, float] = {}
        finished: set[str] = set()

        def plain(stage: str, done: int, total: int) -> None:
            now = time.monotonic()
            if stage not in started:
                started[stage] = last[stage] = now
            if done >= total:
                if stage not in finished:
                    finished.add(stage)
                    console.print(f"  {stage}: {done}/{total} done in {now - started[stage]:.0f} s", highlight=False)
                return
            if now - last[stage] >= PROGRESS_EVERY:
                last[stage] = now
                rate = done / max(now - started[stage], 1e-9)
                eta = f", about {(total - done) / rate:.0f} s left" if done > 0 else ""
                console.print(f"  {stage}: {done}/{total}{eta}", highlight=False)

        yield plain
        return
    with Progress(TextColumn("{task.description:<16}"), BarColumn(), MofNCompleteColumn(),
                  TimeElapsedColumn(), TextColumn("eta"), TimeRemainingColumn(), console=console,
                  transient=False) as bar:
        tasks: dict[str, Any] = {}

        def update(stage: str, done: int, total: int) -> None:
            if stage not in tasks:
                tasks[stage] = bar.add_task(stage, total=total)
            bar.update(tasks[stage], completed=done, total=total)

        yield update


def _emit_json(doc: Any) -> None:
    """The one JSON document of a --json run, on stdout (everything else went to stderr)."""
    import json

    click.echo(json.dumps(doc, indent=2, default=_json_default))


def _json_default(value: Any) -> Any:
    if isinstance(value, Path):
        return str(value)
    if hasattr(value, "item"):
        return value.item()  # numpy scalars
    if isinstance(value, set | frozenset | tuple):
        return list(value)
    return str(value)


def _notice(finding: Any) -> None:
    """A data-quality finding, on the data owner's screen (stderr), as soon as ingest ends."""
    console.print(f"[yellow]data quality:[/] {finding.line()}", highlight=False, soft_wrap=True)


class _Group(click.Group):
    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except PrivsynthError as exc:
            _fail(str(exc), exc.exit_code)
        except KeyboardInterrupt:
            _fail("interrupted; no output was written", 130)
        except (click.exceptions.Exit, click.exceptions.Abort, click.ClickException, SystemExit):
            raise
        except Exception as exc:  # a bug: never print its message (it might hold data)
            if os.environ.get("PRIVSYNTH_DEBUG") == "1":
                raise
            _fail(f"internal error ({type(exc).__name__}); rerun with PRIVSYNTH_DEBUG=1 and report it", 1)


def _terminate(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt  # unwinds: temporary output is removed, the ledger records the attempt


@click.group(cls=_Group)
@click.version_option(package_name="privsynth")
def main() -> None:
    """privsynth: differentially private synthetic FHIR R4 and tables."""
    from privsynth.fhir.output import use_workers

    signal.signal(signal.SIGTERM, _terminate)
    use_workers()  # large FHIR outputs are validated on every core (privsynth's entry points are guarded)


@main.group()
def schema() -> None:
    """Work with schema files."""


class _Methods(click.Choice):  # type: ignore[type-arg]
    """The registered generators, read when the option is shown or checked, so a generator
    registered after import is offered too."""

    def __init__(self) -> None:
        super().__init__(())

    @property  # type: ignore[override]
    def choices(self) -> tuple[str, ...]:
        from privsynth.generator.registry import names

        return names()

    @choices.setter
    def choices(self, value: object) -> None:
        pass


METHOD_HELP = "Generator: aim (adaptive selection) or mst (spanning tree); docs/generator.md lists every one."

MAX_MODEL_CELLS_HELP = ("Refuse a schema whose model needs more cells than this (1-way marginals plus within-bin "
                        "detail; default 50,000,000, about 400 MB).")


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
            groups = ", ".join(g.name + (f" (treats {g.treats})" if g.treats else "")
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
        _fail(f"{out_file}: already exists; privsynth does not overwrite a schema (choose another --out)")
    write_bytes(out_file, text.encode())
    roles = {c["name"]: c["role"] for c in doc["columns"]}
    quasi = [n for n, r in roles.items() if r == "quasi_identifier"]
    console.print(f"drafted {out_file}: {len(roles)} columns; quasi-identifiers (a guess, review them): "
                  f"{', '.join(quasi) or 'none'}. Then run: privsynth schema check {out_file}", highlight=False)


SPEC_NAMES = {"fmt": "output_format"}  # click option names that differ from RunSpec fields


def _spec(options: dict[str, Any]) -> Any:
    """The run's :class:`~privsynth.run.RunSpec` from a command's options (the options that are
    not the spec's -- output paths, --json, the ledger -- are popped first by the command).
    A new option of a run is a field of RunSpec and a click option here: nothing else."""
    from privsynth.audit import load_policy
    from privsynth.generator.footprint import DEFAULT_MAX_MODEL_CELLS
    from privsynth.run import RunSpec
    from privsynth.schema import load_schema

    options = {SPEC_NAMES.get(k, k): v for k, v in options.items()}
    schema = load_schema(options.pop("schema_file"))
    inputs = options.pop("inputs")
    if "policy_file" in options:
        options["policy"] = load_policy(options.pop("policy_file"))
    if "skip_bad_input" in options:
        options["on_error"] = "skip" if options.pop("skip_bad_input") else "raise"
    if isinstance(options.get("keep"), str):
        options["keep"] = tuple(k.strip() for k in options["keep"].split(",") if k.strip())
    if options.get("max_model_cells") is None:
        options["max_model_cells"] = DEFAULT_MAX_MODEL_CELLS
    return RunSpec.of(schema, inputs, options)


def _run_synthesize(options: dict[str, Any]) -> None:
    from privsynth.pipeline import run_synthesis

    out_dir = options.pop("out_dir")
    spec = _spec(options)
    rows = spec.rows
    with _progress() as progress:
        result = run_synthesis(spec, out_dir, progress=progress, notice=_notice)
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


LEDGER_KEY_HELP = ("Key file of the ledger (its HMAC secret, kept apart from the ledger file); default "
                   "$PRIVSYNTH_LEDGER_KEY or LEDGER.key beside the ledger.")
SHOW_COUNTS_HELP = ("Let refusals and warnings give exact patient counts (from the real data, not DP; recorded in the "
                    "internal audit). Without it they give none.")
SEED_HELP = ("Seed of the post-processing only (sampling, Faker identities, dates); default: a fresh one, recorded "
             "in privacy.json. Two runs with the same seed share synthetic ids and names.")


@main.command()
@click.argument("inputs", nargs=-1, required=True, type=click.Path())
@click.option("--schema", "schema_file", required=True, type=click.Path(dir_okay=False), help="Schema YAML.")
@click.option("--epsilon", type=float, required=True, help="Privacy loss epsilon (e.g. 1).")
@click.option("--delta", type=float, default=1e-6, show_default=True, help="Privacy loss delta.")
@click.option("--rows", type=int, default=None, help="Synthetic patients (default: a DP estimate).")
@click.option("--seed", type=click.IntRange(min=0), default=None, help=SEED_HELP)
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False), help="New output directory.")
@click.option("--format", "fmt", type=click.Choice(["ndjson", "bundle"]), default="ndjson", show_default=True)
@click.option("--method", type=_Methods(), default="aim", show_default=True, help=METHOD_HELP)
@click.option("--validate-input", is_flag=True, help="Validate every input resource with fhir.resources R4B.")
@click.option("--skip-bad-input", is_flag=True, help="Skip (and count) bad files and lines instead of stopping.")
@click.option("--max-model-cells", type=click.IntRange(min=1), default=None, help=MAX_MODEL_CELLS_HELP)
def synthesize(**options: Any) -> None:
    """Turn FHIR R4 files or directories, or CSV/Parquet tables (INPUTS), into DP synthetic data.

    A FHIR schema writes FHIR R4 (and the patient view as CSV); a table schema writes CSV
    and Parquet.
    """
    _run_synthesize(options)


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
        _fail("--patients must be at least 10")
    if export_dir is not None:
        target = Path(export_dir)
        if target.exists() and any(target.iterdir()):
            _fail(f"{target}: already exists and is not empty; choose a new directory")
        with _progress() as progress:
            write_example_export(target, patients, seed, progress=lambda d, t: progress("example export", d, t))
        out.print(f"example FHIR R4 export of {patients} fake patients written to {target}")
        return
    with tempfile.TemporaryDirectory(prefix="privsynth-example-") as tmp:
        console.print(f"Building an example hospital export of {patients} fake patients ...")
        with _progress() as progress:
            write_example_export(Path(tmp), patients, seed,
                                 progress=lambda d, t: progress("example export", d, t))
        _run_synthesize({"inputs": (tmp,), "schema_file": DEFAULT_SCHEMA, "epsilon": epsilon, "out_dir": out_dir})


def _verdict_table(result: Any, title: str) -> Table:
    table = Table(title=title, show_lines=False)
    table.add_column("verdict", no_wrap=True)
    table.add_column("check", ratio=3)
    table.add_column("value [95% interval]", no_wrap=True)
    table.add_column("rule", ratio=2)
    for c in result.checks:
        verdict = {True: "[green]pass[/]", False: "[bold red]FAIL[/]", None: "info"}[c.passed]
        value = f"{c.value:.4g}" + (f" [{c.interval[0]:.3f}, {c.interval[1]:.3f}]" if c.interval else "")
        check = f"{c.audit}: {c.name}" + (f"\n[dim]{c.detail}[/]" if c.detail else "")
        table.add_row(verdict, check, value, c.rule)
    return table


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
    with _progress() as progress:
        train, _ = read_view([Path(train_path)], s, progress=progress, keyed=False)
        holdout, _ = read_view([Path(holdout_path)], s, progress=progress, keyed=False)
        synthetic, _ = read_view([Path(synthetic_path)], s, progress=progress, keyed=False)
        result = evaluate(train, holdout, synthetic, s, policy, epsilon=epsilon, delta=delta, seed=seed,
                          progress=progress)
    text = console if as_json else out
    text.print(_verdict_table(result, f"privsynth audit ({result.sizes['synthetic']} synthetic rows)"))
    for line in policy.weakened():
        text.print(f"[yellow]policy weakened:[/] {line}")
    if json_file:
        write_bytes(json_file, json.dumps(result.as_dict(), indent=2, default=float).encode())
    if as_json:
        _emit_json({"passed": result.passed, "policy_weakened": list(policy.weakened()), **result.as_dict()})
    if result.passed:
        text.print("[bold green]PASS[/]: every gate passed")
    else:
        text.print(f"[bold red]FAIL[/]: {len(result.failures())} gate(s) failed")
        sys.exit(3)


@main.command("release")
@click.argument("inputs", nargs=-1, required=True, type=click.Path())
@click.option("--schema", "schema_file", required=True, type=click.Path(dir_okay=False), help="Schema YAML.")
@click.option("--epsilon", type=float, required=True, help="Privacy loss epsilon of this release.")
@click.option("--delta", type=float, default=1e-6, show_default=True, help="Privacy loss delta.")
@click.option("--policy", "policy_file", type=click.Path(dir_okay=False), default=None, help="Policy YAML.")
@click.option("--ledger", "ledger_file", type=click.Path(dir_okay=False), default=None,
              help="Budget ledger (SQLite); default $PRIVSYNTH_LEDGER or ~/.local/share/privsynth/ledger.sqlite3.")
@click.option("--dataset", default="default", show_default=True,
              help="The named budget (one per data source) whose patients this release is charged to.")
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False), help="New release directory.")
@click.option("--seed", type=click.IntRange(min=0), default=None, help=SEED_HELP + " The train/holdout split is "
              "never seeded.")
@click.option("--format", "fmt", type=click.Choice(["ndjson", "bundle"]), default="ndjson", show_default=True)
@click.option("--method", type=_Methods(), default="aim", show_default=True, help=METHOD_HELP)
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
    spec = _spec(options)  # a bad option is refused before the ledger is opened
    ledger = Ledger(ledger_file or default_ledger_path(), ledger_key)
    s, policy, show_counts = spec.schema, spec.policy, spec.show_counts
    text = console if as_json else out
    if ledger.origin.warning():
        console.print(f"[yellow]warning:[/] {ledger.origin.warning()}", highlight=False)
    with _progress() as progress:
        result = run_release(spec, out_dir, ledger=ledger, progress=progress, notice=_notice)
    text.print(_verdict_table(result.audit, "release audit"))
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
        _emit_json({"released": True, "out": result.out, "audit_file": result.audit_file,
                    "report_file": result.report_file, "budget": result.budget,
                    "worst_epsilon_spent": result.worst_epsilon_spent, "epsilon_budget": result.epsilon_budget,
                    "delta_budget": result.delta_budget, "manifest": m.as_dict()})


@main.command("sample")
@click.argument("model_dir", type=click.Path(file_okay=False))
@click.option("--rows", type=click.IntRange(min=1), required=True, help="Synthetic patients to draw.")
@click.option("--where", "where", multiple=True, metavar="COL=VALUE[,COL=VALUE]",
              help="Condition exactly on these values (a category, true/false, or a numeric column's bin "
                   "label such as 'age=[40, 50)'). Repeatable.")
@click.option("--format", "fmt", type=click.Choice(["ndjson", "bundle", "csv"]), default=None,
              help="FHIR NDJSON (default for FHIR schemas), Bundles, or the patient table alone (csv; the only "
                   "form for table schemas).")
@click.option("--seed", type=click.IntRange(min=0), default=None, help=SEED_HELP)
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False), help="New output directory.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document on stdout (text goes to stderr).")
def sample_command(model_dir: str, rows: int, where: tuple[str, ...], fmt: str | None, seed: int | None,
                   out_dir: str, as_json: bool) -> None:
    """Draw patients from a shared model (a synthesize or release directory): no real data, no budget.

    Post-processing of the model's DP release: it costs no privacy budget, whatever is drawn.
    """
    from privsynth.sample import sample

    with _progress() as progress:
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
        _emit_json({"out": result.out, "files": result.files, **result.statement})


@main.command()
@click.argument("release_dir", type=click.Path(file_okay=False))
@click.option("--audit", "audit_file", type=click.Path(dir_okay=False), default=None,
              help="The release's internal audit (default: RELEASE_DIR.audit.json beside it).")
@click.option("--out", "out_file", type=click.Path(dir_okay=False), default=None,
              help="Where to write the HTML (default: RELEASE_DIR.report.html beside it).")
def report(release_dir: str, audit_file: str | None, out_file: str | None) -> None:
    """Rebuild the self-contained HTML report of an existing release."""
    from privsynth.release.release import rebuild_report

    out.print(f"report written: {rebuild_report(release_dir, audit_file, out_file)}")


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
        _fail(f"{path}: no ledger yet (it is created by the first `privsynth release`)")
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
        _emit_json({"ledger": path, "budgets": rows})
    if partial:
        text.print(f"[yellow]{partial} partial-synthesis release(s):[/] their kept columns are real values, which no "
                  "epsilon covers")
