"""What one run is asked to do: a frozen :class:`RunSpec`, built once by the CLI or the API.

``synthesize`` and ``release`` (and the steps they share) read their options from one spec
instead of a dozen parameters each; adding an option is a field here and a flag in the CLI.
A spec checks itself when it is built, so a bad option is refused before any data is read.

>>> from privsynth.schema import load_schema
>>> s = load_schema({"name": "t", "input": "table", "columns": [{"name": "x", "kind": "numeric",
...     "source": {"column": "x"}, "domain": {"lower": 0, "upper": 1}}]})
>>> RunSpec(s, epsilon=1.0, inputs=("a.csv",)).inputs
(PosixPath('a.csv'),)
>>> RunSpec(s, epsilon=1.0, output_format="xml")
Traceback (most recent call last):
...
privsynth.errors.InputError: unknown output format 'xml'; allowed: ndjson, bundle, omop
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from privsynth.audit.policy import Policy
from privsynth.errors import InputError
from privsynth.fhir.output import VALIDATION
from privsynth.generator.footprint import DEFAULT_MAX_MODEL_CELLS
from privsynth.privacy.mechanism import rho_for
from privsynth.schema.model import Schema

if TYPE_CHECKING:
    from privsynth.formats import Output

ON_ERROR = ("raise", "skip")
DEFAULT_BUDGET = "default"


@dataclass(frozen=True)
class RunSpec:
    """Every option of a synthesis or a release run (a release reads the last group too).

    ``seed`` fixes the post-processing only (sampling, Faker, dates); None draws a fresh one.
    ``rows``: synthetic patients (None: the model's DP estimate). ``keep``: partial synthesis
    (release only). ``dataset``: the named budget the patients are charged under.
    ``show_counts``: refusals may give exact patient counts (release only)."""

    schema: Schema
    epsilon: float
    delta: float = 1e-6
    inputs: tuple[Path, ...] = ()
    seed: int | None = None
    output_format: str = "ndjson"
    validate_output: str = "all"  # FHIR output: "all" resources validated, or a stated "sample"
    method: str = "aim"
    rows: int | None = None
    validate_input: bool = False
    on_error: str = "raise"
    max_model_cells: int = DEFAULT_MAX_MODEL_CELLS
    # a release's
    policy: Policy = field(default_factory=Policy)
    keep: tuple[str, ...] = ()
    target: str | None = None
    dataset: str = DEFAULT_BUDGET
    show_counts: bool = False
    recipients: str = ""  # who receives a release, and why (stated in its manifest and report)
    purpose: str = ""
    # reading in patient shards (privsynth.engine): an engine, or a number of shards, asks for it
    engine: str | None = None
    shards: int | None = None
    workers: int = 2
    master: str | None = None
    work_dir: Path | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "inputs", tuple(Path(p) for p in self.inputs))
        object.__setattr__(self, "keep", tuple(self.keep))
        from privsynth.formats import record_formats

        if self.output_format not in record_formats():
            raise InputError(f"unknown output format '{self.output_format}'; allowed: {', '.join(record_formats())}")
        if self.output_format == "omop" and self.schema.input_format != "fhir":
            raise InputError(f"--format omop writes patient records: schema '{self.schema.name}' is a table schema "
                             "(its output is the table, as CSV and Parquet)")
        if self.validate_output not in VALIDATION:
            raise InputError(f"--validate-output must be one of {', '.join(VALIDATION)}")
        if self.rows is not None and (isinstance(self.rows, bool) or self.rows < 1):
            raise InputError("--rows must be a positive number of synthetic patients")
        if self.on_error not in ON_ERROR:
            raise InputError(f"on_error must be one of {', '.join(ON_ERROR)}")
        if not isinstance(self.dataset, str) or not self.dataset.strip():
            raise InputError("--dataset must be a non-empty budget name")
        if self.target is not None and self.target not in [c.name for c in self.schema.learned_columns]:
            raise InputError(f"--target '{self.target}': not a learned column of schema '{self.schema.name}'")
        rho_for(self.epsilon, self.delta)  # a bad budget is refused before anything else
        self._check_sharding()

    def _check_sharding(self) -> None:
        from privsynth.engine import registry

        if self.engine is not None and self.engine not in registry.names():
            raise InputError(f"unknown engine '{self.engine}'; allowed: {', '.join(registry.names())}")
        if self.shards is not None and (isinstance(self.shards, bool) or self.shards < 1):
            raise InputError("--shards must be a whole number of at least 1")
        if isinstance(self.workers, bool) or not isinstance(self.workers, int) or self.workers < 1:
            raise InputError("--workers must be a whole number of at least 1")
        if self.work_dir is not None:
            object.__setattr__(self, "work_dir", Path(self.work_dir))
        if self.sharded and self.schema.input_format != "fhir":
            raise InputError(f"--engine/--shards read a FHIR export in patient shards: schema '{self.schema.name}' "
                             "reads a table")
        if not self.sharded and (self.master is not None or self.work_dir is not None):
            raise InputError("--master and --work-dir are for a sharded run: give --engine (or --shards) too")

    @property
    def sharded(self) -> bool:
        """Whether the export is read in patient shards by an engine (else whole, in this process)."""
        return self.engine is not None or self.shards is not None

    @property
    def shard_count(self) -> int:
        """The number of shards (default: four per worker, so that workers stay busy)."""
        return self.shards if self.shards is not None else 4 * self.workers

    @property
    def rho(self) -> float:
        return rho_for(self.epsilon, self.delta)

    def output(self, now: str, release_id: str | None = None) -> Output:
        """How this run writes its records (its seed fixed first: :meth:`with_seed`)."""
        from privsynth.formats import Output

        assert self.seed is not None, "the post-processing seed is fixed before anything is written"
        return Output(self.output_format, self.seed, now, self.epsilon, self.delta, release_id, self.validate_output)

    def with_seed(self, seed: int) -> RunSpec:
        return replace(self, seed=seed)

    @classmethod
    def of(cls, schema: Schema, inputs: Iterable[str | Path], options: dict[str, Any]) -> RunSpec:
        """A spec from keyword options (the Python API's functions take them); unknown ones are refused."""
        known = set(cls.__dataclass_fields__) - {"schema", "inputs"}
        unknown = sorted(set(options) - known)
        if unknown:
            raise TypeError(f"unknown option(s) {', '.join(unknown)}; allowed: {', '.join(sorted(known))}")
        if options.get("policy") is None:
            options = {k: v for k, v in options.items() if k != "policy"}
        options = {k: tuple(v) if k == "keep" and v is not None else v for k, v in options.items()
                   if not (k == "keep" and v is None)}
        return cls(schema, inputs=tuple(Path(p) for p in inputs), **options)
