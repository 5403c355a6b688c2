"""The command line: a thin layer over the Python API. The only module that prints.

Exit codes: 0 success, 2 bad input or usage (one line, no traceback), 1 internal error.
"""

from __future__ import annotations

import os
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


@click.group(cls=_Group)
@click.version_option(package_name="privsynth")
def main() -> None:
    """privsynth: differentially private synthetic FHIR R4 and tables."""


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
def demo(out_dir: str, patients: int, epsilon: float, seed: int) -> None:
    """Build an example hospital export (fake patients) and synthesize it."""
    from privsynth.example.hospital import write_example_export

    if patients < 10:
        _fail("--patients must be at least 10")
    with tempfile.TemporaryDirectory(prefix="privsynth-example-") as tmp:
        console.print(f"Building an example hospital export of {patients} fake patients ...")
        with _progress() as progress:
            write_example_export(Path(tmp), patients, seed,
                                 progress=lambda d, t: progress("example export", d, t))
        _run_synthesize((tmp,), DEFAULT_SCHEMA, epsilon, 1e-6, None, seed, out_dir, "ndjson",
                        False, False)
