"""The command line: a thin layer over the Python API. The only module that prints.

Exit codes: 0 success, 2 bad input or usage (one line, no traceback), 3 an audit failed
(the release was refused), 1 internal error.
"""

from __future__ import annotations

import os
import signal
import sys
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from privsynth.errors import PrivsynthError

console = Console(stderr=True)
out = Console()
DEFAULT_SCHEMA = Path(__file__).resolve().parent / "schemas" / "patient-core.yaml"


def _fail(message: str, code: int = 2) -> None:
    console.print(f"[bold red]privsynth: error:[/] {message}", highlight=False, soft_wrap=True)
    sys.exit(code)


@contextmanager
def _progress() -> Iterator[Callable[[str, int, int], None]]:
    quiet = not console.is_terminal and os.environ.get("PRIVSYNTH_PROGRESS") != "1"
    if quiet:
        stages: dict[str, int] = {}

        def plain(stage: str, done: int, total: int) -> None:
            if done >= total and stages.get(stage) != total:
                stages[stage] = total
                console.print(f"  {stage}: {done}/{total} done", highlight=False)

        yield plain
        return
    with Progress(TextColumn("{task.description:<16}"), BarColumn(), MofNCompleteColumn(),
                  TimeElapsedColumn(), console=console, transient=False) as bar:
        tasks: dict[str, Any] = {}

        def update(stage: str, done: int, total: int) -> None:
            if stage not in tasks:
                tasks[stage] = bar.add_task(stage, total=total)
            bar.update(tasks[stage], completed=done, total=total)

        yield update


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
    signal.signal(signal.SIGTERM, _terminate)


@main.group()
def schema() -> None:
    """Work with schema files."""


@schema.command("check")
@click.argument("file", type=click.Path(dir_okay=False))
def schema_check(file: str) -> None:
    """Load and validate a schema FILE; print its columns."""
    from privsynth.schema import load_schema

    s = load_schema(file)
    table = Table(title=f"schema '{s.name}' ({s.input_format}, reference date {s.reference_date})")
    for name in ("column", "role", "kind", "source", "domain size", "contribution bound"):
        table.add_column(name)
    for c in s.columns:
        src = c.source.column or f"{c.source.resource or ''} {c.source.summary}"
        table.add_row(c.name, c.role, c.kind if c.learned else "-", src,
                      str(c.domain.size) if c.domain else "-", c.contribution_bound)
    out.print(table)
    out.print(f"OK: {file}: {len(s.columns)} columns, {len(s.learned_columns)} learned")


def _run_synthesize(inputs: tuple[str, ...], schema_file: Path, epsilon: float, delta: float,
                    rows: int | None, seed: int, out_dir: str, fmt: str, validate_input: bool,
                    skip_bad: bool, method: str = "aim") -> None:
    from privsynth.pipeline import synthesize
    from privsynth.schema import load_schema

    s = load_schema(schema_file)
    with _progress() as progress:
        result = synthesize(list(inputs), s, out_dir, epsilon=epsilon, delta=delta, rows=rows,
                            seed=seed, output_format=fmt, validate_input=validate_input,
                            on_error="skip" if skip_bad else "raise", progress=progress, method=method)
    table = Table(title="privsynth synthesize")
    table.add_column("")
    table.add_column("")
    table.add_row("privacy unit", "patient (whole record)")
    table.add_row("(epsilon, delta)", f"({result.epsilon:g}, {result.delta:g})")
    table.add_row("rho spent / allowed", f"{result.rho_spent:.6g} / {result.rho_total:.6g}")
    table.add_row("patients in -> out", f"{result.patients_in} -> {result.patients_out}")
    for rtype, n in sorted(result.resources_out.items()):
        table.add_row(f"{rtype} written", str(n))
    table.add_row("seconds", ", ".join(f"{k} {v:.1f}" for k, v in result.seconds.items()))
    table.add_row("shareable output", str(result.out))
    table.add_row("internal report", f"{result.internal_report} (NOT for sharing)")
    out.print(table)


@main.command()
@click.argument("inputs", nargs=-1, required=True, type=click.Path())
@click.option("--schema", "schema_file", required=True, type=click.Path(dir_okay=False), help="Schema YAML.")
@click.option("--epsilon", type=float, required=True, help="Privacy loss epsilon (e.g. 1).")
@click.option("--delta", type=float, default=1e-6, show_default=True, help="Privacy loss delta.")
@click.option("--rows", type=int, default=None, help="Synthetic patients (default: a DP estimate).")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the post-processing.")
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False), help="New output directory.")
@click.option("--format", "fmt", type=click.Choice(["ndjson", "bundle"]), default="ndjson", show_default=True)
@click.option("--method", type=click.Choice(["aim", "mst"]), default="aim", show_default=True,
              help="Generator: adaptive workload-aware selection (aim) or a spanning tree of pairs (mst).")
@click.option("--validate-input", is_flag=True, help="Validate every input resource with fhir.resources R4B.")
@click.option("--skip-bad-input", is_flag=True, help="Skip (and count) bad files and lines instead of stopping.")
def synthesize(inputs: tuple[str, ...], schema_file: str, epsilon: float, delta: float, rows: int | None,
               seed: int, out_dir: str, fmt: str, method: str, validate_input: bool, skip_bad_input: bool) -> None:
    """Turn FHIR R4 files or directories, or CSV/Parquet tables (INPUTS), into DP synthetic data.

    A FHIR schema writes FHIR R4 (and the patient view as CSV); a table schema writes CSV
    and Parquet.
    """
    _run_synthesize(inputs, Path(schema_file), epsilon, delta, rows, seed, out_dir, fmt,
                    validate_input, skip_bad_input, method)


@main.command()
@click.option("--out", "out_dir", default="privsynth-demo", show_default=True, type=click.Path(file_okay=False),
              help="New output directory.")
@click.option("--patients", type=int, default=1000, show_default=True, help="Size of the example hospital.")
@click.option("--epsilon", type=float, default=1.0, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
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
        _run_synthesize((tmp,), DEFAULT_SCHEMA, epsilon, 1e-6, None, seed, out_dir, "ndjson",
                        False, False)


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
@click.option("--json", "json_file", type=click.Path(dir_okay=False), default=None,
              help="Also write the full figures here (internal: computed on real patients).")
def audit(schema_file: str, train_path: str, holdout_path: str, synthetic_path: str, policy_file: str | None,
          epsilon: float | None, delta: float, seed: int, json_file: str | None) -> None:
    """Audit ANY synthetic dataset (tables or FHIR directories) against train and holdout.

    Exit code 0 if every gate passes, 3 if one fails.
    """
    import json

    from privsynth.audit import evaluate, load_policy
    from privsynth.pipeline import read_view
    from privsynth.release.atomic import write_bytes
    from privsynth.schema import load_schema

    s = load_schema(schema_file)
    policy = load_policy(policy_file)
    with _progress() as progress:
        train, _ = read_view([Path(train_path)], s, progress=progress)
        holdout, _ = read_view([Path(holdout_path)], s, progress=progress)
        synthetic, _ = read_view([Path(synthetic_path)], s, progress=progress)
        result = evaluate(train, holdout, synthetic, s, policy, epsilon=epsilon, delta=delta, seed=seed,
                          progress=progress)
    out.print(_verdict_table(result, f"privsynth audit ({result.sizes['synthetic']} synthetic rows)"))
    for line in policy.weakened():
        out.print(f"[yellow]policy weakened:[/] {line}")
    if json_file:
        write_bytes(json_file, json.dumps(result.as_dict(), indent=2, default=float).encode())
    if result.passed:
        out.print("[bold green]PASS[/]: every gate passed")
    else:
        out.print(f"[bold red]FAIL[/]: {len(result.failures())} gate(s) failed")
        sys.exit(3)


@main.command("release")
@click.argument("inputs", nargs=-1, required=True, type=click.Path())
@click.option("--schema", "schema_file", required=True, type=click.Path(dir_okay=False), help="Schema YAML.")
@click.option("--epsilon", type=float, required=True, help="Privacy loss epsilon of this release.")
@click.option("--delta", type=float, default=1e-6, show_default=True, help="Privacy loss delta.")
@click.option("--policy", "policy_file", type=click.Path(dir_okay=False), default=None, help="Policy YAML.")
@click.option("--ledger", "ledger_file", type=click.Path(dir_okay=False), default=None,
              help="Budget ledger (SQLite); default $PRIVSYNTH_LEDGER or ~/.local/share/privsynth/ledger.sqlite3.")
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False), help="New release directory.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the split and post-processing.")
@click.option("--format", "fmt", type=click.Choice(["ndjson", "bundle"]), default="ndjson", show_default=True)
@click.option("--method", type=click.Choice(["aim", "mst"]), default="aim", show_default=True)
@click.option("--keep", default="", help="Partial synthesis: comma-separated columns that stay real.")
@click.option("--target", default=None, help="Column the report's TSTR models predict (default: the schema's).")
def release_command(inputs: tuple[str, ...], schema_file: str, epsilon: float, delta: float,
                    policy_file: str | None, ledger_file: str | None, out_dir: str, seed: int, fmt: str,
                    method: str, keep: str, target: str | None) -> None:
    """Split, fit on train, sample, audit and gate: a release directory, or a refusal (exit 3)."""
    from privsynth.audit import load_policy
    from privsynth.privacy.ledger import Ledger, default_ledger_path
    from privsynth.release.release import release
    from privsynth.schema import load_schema

    s = load_schema(schema_file)
    policy = load_policy(policy_file)
    ledger = Ledger(ledger_file or default_ledger_path())
    with _progress() as progress:
        result = release(list(inputs), s, out_dir, epsilon=epsilon, delta=delta, policy=policy, ledger=ledger,
                         seed=seed, output_format=fmt, method=method, progress=progress,
                         keep=[k.strip() for k in keep.split(",") if k.strip()], target=target)
    out.print(_verdict_table(result.audit, "release audit"))
    m = result.manifest
    spent, total = m["ledger"]["dataset_rho_spent"], m["ledger"]["dataset_rho_budget"]
    out.print(f"[bold green]RELEASED[/]: {result.out} ((epsilon, delta) = ({epsilon:g}, {delta:g}), "
              f"rho {m['rho']:.6g}; dataset budget spent {spent:.6g} of {total:.6g})")
    if m["real_columns"]:
        out.print(f"[yellow]partial synthesis, NOT end-to-end DP:[/] real columns {', '.join(m['real_columns'])}")
    for line in policy.weakened():
        out.print(f"[yellow]policy weakened (recorded in the manifest):[/] {line}")
    out.print(f"internal audit figures (NOT for sharing): {result.audit_file}")
    out.print(f"report for the compliance review (internal): {result.report_file}")


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
def budget_show(ledger_file: str | None) -> None:
    """Every dataset's total budget, what its releases spent, and its attempts."""
    from privsynth.privacy.ledger import Ledger, default_ledger_path
    from privsynth.privacy.mechanism import epsilon_for

    path = Path(ledger_file) if ledger_file else default_ledger_path()
    if not path.exists():
        _fail(f"{path}: no ledger yet (it is created by the first `privsynth release`)")
    table = Table(title=f"privacy budget ledger {path}")
    for name in ("dataset", "label", "rho spent / budget", "epsilon spent / budget (at the budget's delta)",
                 "attempts", "released"):
        table.add_column(name)
    for d in Ledger(path).datasets():
        eps = epsilon_for(d.rho_spent, d.delta_budget) if d.rho_spent > 0 else 0.0
        table.add_row(d.hash[:12], d.label, f"{d.rho_spent:.6g} / {d.rho_budget:.6g}",
                      f"{eps:.3g} / {epsilon_for(d.rho_budget, d.delta_budget):.3g} (delta {d.delta_budget:g})",
                      str(d.attempts), str(d.released))
    out.print(table)
