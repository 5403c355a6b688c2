"""The command line's group, its shared helpers and option texts (the commands are in
:mod:`privsynth.cli.run` and :mod:`privsynth.cli.files`). The CLI is the only code that prints.

Exit codes: 0 success, 2 bad input or usage (one line, no traceback), 3 an audit failed
(the release was refused), 1 internal error.
"""

from __future__ import annotations

import os
import signal
import sys
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
DEFAULT_SCHEMA = Path(__file__).resolve().parent.parent / "schemas" / "patient-core.yaml"


def fail(message: str, code: int = 2) -> None:
    console.print(f"[bold red]privsynth: error:[/] {message}", highlight=False, soft_wrap=True)
    if "--json" in sys.argv[1:]:  # a --json run prints one JSON document on stdout, an error too
        emit_json({"error": message, "exit_code": code})
    sys.exit(code)


PROGRESS_EVERY = 5.0  # seconds between progress lines when standard error is not a terminal


@contextmanager
def progress_bar() -> Iterator[Callable[[str, int, int], None]]:
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


def emit_json(doc: Any) -> None:
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


def notice(finding: Any) -> None:
    """A data-quality finding, on the data owner's screen (stderr), as soon as ingest ends."""
    console.print(f"[yellow]data quality:[/] {finding.line()}", highlight=False, soft_wrap=True)


class _Group(click.Group):
    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except PrivsynthError as exc:
            fail(str(exc), exc.exit_code)
        except KeyboardInterrupt:
            fail("interrupted; no output was written", 130)
        except (click.exceptions.Exit, click.exceptions.Abort, click.ClickException, SystemExit):
            raise
        except Exception as exc:  # a bug: never print its message (it might hold data)
            if os.environ.get("PRIVSYNTH_DEBUG") == "1":
                raise
            fail(f"internal error ({type(exc).__name__}); rerun with PRIVSYNTH_DEBUG=1 and report it", 1)


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


class Methods(click.Choice):  # type: ignore[type-arg]
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


LEDGER_KEY_HELP = ("Key file of the ledger (its HMAC secret, kept apart from the ledger file); default "
                   "$PRIVSYNTH_LEDGER_KEY or LEDGER.key beside the ledger.")
SHOW_COUNTS_HELP = ("Let refusals and warnings give exact patient counts (from the real data, not DP; recorded in the "
                    "internal audit). Without it they give none.")
FORMAT_HELP = ("ndjson: FHIR R4 Bulk Data (a file per resource type); bundle: a FHIR Bundle per patient; omop: "
               "OMOP CDM v5.4 tables (CSV, Parquet, DDL for DuckDB and PostgreSQL; docs/omop.md).")

SEED_HELP = ("Seed of the post-processing only (sampling, Faker identities, dates); default: a fresh one, recorded "
             "in privacy.json. Two runs with the same seed share synthetic ids and names.")


def verdict_table(result: Any, title: str) -> Table:
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


def print_verdicts(text: Console, result: Any, title: str) -> None:
    """The gate's checks: a table on a terminal; one line per check when the output goes to a
    pipe or a file (a table squeezed into 80 columns wraps into unreadable fragments)."""
    if text.is_terminal:
        text.print(verdict_table(result, title))
        return
    text.print(title, highlight=False)
    for c in result.checks:
        text.print(c.line(), markup=False, highlight=False, soft_wrap=True)


SPEC_NAMES = {"fmt": "output_format"}  # click option names that differ from RunSpec fields


def sharding_options(command: Any) -> Any:
    """The options of reading an export in patient shards (privsynth.engine)."""
    from privsynth.engine import registry

    summaries = registry.summaries()
    engines = "; ".join(f"{name}: {text}" for name, text in summaries.items())
    for option in reversed([
        click.option("--engine", type=click.Choice(list(summaries)), default=None,
                     help=f"Read the FHIR export in patient shards with this engine ({engines})."),
        click.option("--shards", type=click.IntRange(min=1), default=None,
                     help="Patient shards (default with --engine: 4 per worker)."),
        click.option("--workers", type=click.IntRange(min=1), default=2, show_default=True,
                     help="Worker processes (duckdb) or local cores (spark without --master)."),
        click.option("--master", default=None, help="Spark master URL (--engine spark; default: local mode)."),
        click.option("--work-dir", "work_dir", type=click.Path(file_okay=False), default=None,
                     help="Where the shards are written (real patients' data: the data owner's storage, reachable "
                          "by every executor; default: a temporary directory removed after the run)."),
    ]):
        command = option(command)
    return command


def spec_from(options: dict[str, Any]) -> Any:
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
