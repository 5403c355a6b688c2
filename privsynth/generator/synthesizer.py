"""The synthesizer: scikit-learn style ``fit`` / ``sample`` / ``save`` / ``load``.

>>> from privsynth.schema import load_schema
>>> import pandas as pd
>>> schema = load_schema({"name": "t", "input": "table", "columns": [
...     {"name": "sex", "kind": "categorical", "role": "quasi_identifier",
...      "source": {"column": "sex"}, "domain": {"categories": ["F", "M"]}},
...     {"name": "age", "kind": "integer", "role": "sensitive",
...      "source": {"column": "age"}, "domain": {"lower": 0, "upper": 99, "bins": 10}}]})
>>> df = pd.DataFrame({"sex": ["F", "M"] * 50, "age": list(range(100))})
>>> synth = Synthesizer(schema, epsilon=1.0, delta=1e-6).fit(df)
>>> synth.sample(5, rng=0).shape
(5, 2)
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from privsynth.binshape import public_shape, shrink
from privsynth.domain import SUB_BINS, EncodeReport, decode, domain_sizes, encode, sub_bin_index
from privsynth.errors import BudgetError, InputError, NotFittedError
from privsynth.generator import registry
from privsynth.generator.constraint import satisfy, tilt
from privsynth.generator.counts import ArrayCounts, Counts
from privsynth.generator.footprint import DEFAULT_MAX_MODEL_CELLS, check_footprint
from privsynth.generator.junction import DEFAULT_MAX_CELLS
from privsynth.generator.learnability import assess, empty_streams
from privsynth.generator.measure import SAFETY
from privsynth.generator.model import MarginalModel
from privsynth.generator.prior import PublicPrior
from privsynth.generator.protocol import Problem
from privsynth.privacy.accounting import Accountant
from privsynth.privacy.mechanism import measure_counts
from privsynth.progress import Progress
from privsynth.schema.model import NumericDomain, Schema

REFINE_SHARE = 0.03  # of rho, for the within-bin detail of numeric columns


@dataclass(frozen=True)
class ViewCounts:
    """What a fit reads of the patient view, and nothing more: the exact marginal counts of
    its codes (:class:`Counts`), each numeric column's exact fine histogram (``n_bins *
    SUB_BINS`` cells) and the counted treatments of values outside their domains. Computed
    here from a frame, or per shard and summed by an engine (:mod:`privsynth.engine`)."""

    counts: Counts
    fine: dict[str, np.ndarray]
    report: EncodeReport


def fine_histograms(frame: pd.DataFrame, schema: Schema) -> dict[str, np.ndarray]:
    """Each numeric learned column's exact fine histogram (missing values not counted)."""
    out: dict[str, np.ndarray] = {}
    for col in schema.learned_columns:
        if isinstance(col.domain, NumericDomain):
            index = sub_bin_index(frame[col.name], col.domain)
            out[col.name] = np.bincount(index[index >= 0], minlength=col.domain.n_bins * SUB_BINS)
    return out


def view_counts(frame: pd.DataFrame, schema: Schema) -> ViewCounts:
    """:class:`ViewCounts` of a patient view held in this process."""
    codes, report = encode(frame, schema)
    return ViewCounts(ArrayCounts(codes, domain_sizes(schema)), fine_histograms(frame, schema), report)


class Synthesizer:
    """A differentially private, marginal-based synthesizer over a schema's patient view.

    Parameters are only stored here; ``fit`` validates them. The privacy unit is one row
    of the input (one patient). Learned state ends in ``_``.
    """

    def __init__(
        self,
        schema: Schema,
        epsilon: float = 1.0,
        delta: float = 1e-6,
        *,
        method: str = "aim",
        iterations: int = 300,
        max_cells: int = DEFAULT_MAX_CELLS,
        refine_numbers: bool = True,
        max_model_cells: int = DEFAULT_MAX_MODEL_CELLS,
    ) -> None:
        self.schema = schema
        self.epsilon = epsilon
        self.delta = delta
        self.method = method
        self.iterations = iterations
        self.max_cells = max_cells
        self.refine_numbers = refine_numbers
        self.max_model_cells = max_model_cells

    # -- learning --------------------------------------------------------------------

    def fit(self, data: pd.DataFrame, progress: Progress | None = None) -> Synthesizer:
        """Learn a DP model of ``data`` (the raw patient view, one row per patient)."""
        if not isinstance(data, pd.DataFrame):
            raise InputError("fit expects a pandas DataFrame with one row per patient")
        if len(data) == 0:
            raise InputError("the input has no patients")
        return self.fit_counts(view_counts(data, self.schema), progress)

    def fit_counts(self, view: ViewCounts, progress: Progress | None = None) -> Synthesizer:
        """Learn a DP model from what a fit reads of the patient view (:class:`ViewCounts`:
        exact marginal counts, wherever they are computed, e.g. summed over shards)."""
        generator = registry.get(self.method)
        check_footprint(self.schema, self.max_model_cells)
        try:
            epsilon, delta = float(self.epsilon), float(self.delta)
        except (TypeError, ValueError):
            raise BudgetError("epsilon and delta must be numbers") from None
        accountant = Accountant.from_epsilon_delta(epsilon, delta)
        sizes = domain_sizes(self.schema)
        names = tuple(c.name for c in self.schema.learned_columns)
        refinements = self._refine(view.fine, accountant) if self.refine_numbers else {}
        prior = PublicPrior.from_schema(self.schema)  # public: bin edges, rules, the schema's choices
        problem = Problem(view.counts, sizes, names, prior, self.max_cells, self.iterations, progress)
        fitted = generator.fit(problem, accountant)
        est, compressions = fitted.estimate, fitted.compressions
        small_sizes = tuple(c.size for c in compressions)
        metadata = {
            "schema": self.schema.name,
            "method": self.method,
            "privacy_unit": "patient (one row of the patient view; add/remove)",
            "epsilon": epsilon,
            "delta": delta,
            "rho_total": accountant.rho_total,
            "rho_spent": accountant.rho_spent,
            "measurements": [
                {"purpose": c.purpose, "mechanism": c.mechanism, "rho": c.rho, "scale": c.scale}
                for c in accountant.charges
            ],
            "estimation": {"iterations": est.iterations, "loss": est.loss},
            "generator_settings": dict(fitted.settings),
        }
        self.model_ = MarginalModel(names, small_sizes, est.potentials, est.total, compressions, metadata,
                                    self.max_cells, refinements)
        # what the model could learn (from its DP measurements): said on screen, and a stream the
        # model fills with no more than noise is written empty (learnability.py)
        self.model_.metadata["learnability"] = assess(self.schema, self.model_, delta).as_dict()
        self.model_.metadata["empty_streams"] = list(empty_streams(self.schema, self.model_))
        self.accountant_ = accountant
        self.encode_report_: EncodeReport = view.report
        return self

    def _refine(self, fine: dict[str, np.ndarray], accountant: Accountant) -> dict[str, np.ndarray]:
        """Measure each number's fine histogram (SUB_BINS per public bin) with a small share
        of rho; decoding then draws values by it inside their bin. One value per patient per
        column, so each histogram has sensitivity 1."""
        numeric = [c for c in self.schema.learned_columns if isinstance(c.domain, NumericDomain)]
        if not numeric:
            return {}
        rho_each = accountant.rho_total * REFINE_SHARE / len(numeric) * SAFETY
        out: dict[str, np.ndarray] = {}
        for col in numeric:
            assert isinstance(col.domain, NumericDomain)
            noisy, release = measure_counts(fine[col.name], rho_each)
            accountant.charge(f"within-bin detail {col.name}", release)
            # pulled towards the public shape by as much as the noise explains (binshape.py)
            out[col.name] = shrink(noisy.reshape(col.domain.n_bins, SUB_BINS), release.scale,
                                   public_shape(col.domain))
        return out

    def _check_fitted(self) -> MarginalModel:
        model = getattr(self, "model_", None)
        if model is None:
            raise NotFittedError("this Synthesizer is not fitted yet; call fit(data) or load(path) first")
        return model

    @property
    def n_rows_estimate(self) -> int:
        """The DP estimate of the number of patients (post-processing of the measurements)."""
        return max(1, int(round(self._check_fitted().total)))

    # -- sampling ----------------------------------------------------------------------

    def sample_codes(self, n_rows: int | None = None, rng: Any = None) -> np.ndarray:
        model = self._check_fitted()
        n = self.n_rows_estimate if n_rows is None else int(n_rows)
        if n < 0:
            raise InputError("the number of rows must be non-negative")
        return model.sample(n, np.random.default_rng(rng))

    def sample(self, n_rows: int | None = None, rng: Any = None) -> pd.DataFrame:
        """Draw synthetic rows: decoded values, derived columns computed, every rule of the
        schema satisfied (the model conditioned on them). ``rng``: a seed or a
        ``numpy.random.Generator``. Every writer reads these rows."""
        model = self._check_fitted()
        generator = np.random.default_rng(rng)
        codes = self._tilted(self.sample_codes(n_rows, generator), generator)
        frame = decode(codes, self.schema, generator, model.refinements)

        def redraw(rows: np.ndarray, held: dict[int, np.ndarray]) -> tuple[pd.DataFrame, np.ndarray]:
            drawn = model.sample_given(held, generator) if held else model.sample(len(rows), generator)
            fresh = self._tilted(drawn, generator)
            return decode(fresh, self.schema, generator, model.refinements), fresh

        return self._quiet(satisfy(frame, codes, self.schema, generator, model.refinements, redraw,
                                   one_way=model.one_way))

    @property
    def empty_streams(self) -> tuple[str, ...]:
        """Timeline streams the model fills with noise only: none of their events is drawn."""
        return tuple(self._check_fitted().metadata.get("empty_streams", ()))

    def _quiet(self, frame: pd.DataFrame, fixed: Sequence[str] = ()) -> pd.DataFrame:
        """``frame`` with the cells of the empty streams set to no event (0, or no value)."""
        timeline = self.schema.timeline
        if timeline is None or not self.empty_streams:
            return frame
        for stream in timeline.streams:
            if stream.name not in self.empty_streams:
                continue
            for group in stream.groups:
                names = list(stream.columns(group)) + (list(stream.anchored(group)) if group.around else [])
                for name in names:
                    if name in frame.columns and name not in fixed:
                        frame[name] = pd.array([0] * len(frame), dtype="Int64") if stream.kind == "count" and \
                            name in stream.columns(group) else pd.array([None] * len(frame), dtype=frame[name].dtype)
        return frame

    def _tilted(self, codes: np.ndarray, generator: np.random.Generator, fixed: Sequence[str] = ()) -> np.ndarray:
        """``codes`` under the schema's plausibility panel as a public prior (constraint.prior.tilt)."""
        model = self._check_fitted()

        def given(rows: np.ndarray, keep: tuple[int, ...]) -> np.ndarray:
            return model.sample_given({j: rows[:, j] for j in keep}, generator)

        return tilt(codes, self.schema, lambda c, blocks: model.resample(c, blocks, generator), generator, fixed,
                    given)

    def sample_partial(self, real: pd.DataFrame, keep: list[str] | tuple[str, ...], rng: Any = None, *,
                       allow_sensitive: bool = False) -> pd.DataFrame:
        """Partial synthesis: one row per row of ``real`` (a patient view), whose ``keep``
        columns are copied byte for byte and every other learned column is drawn from the
        DP model conditioned on them. NOT end-to-end DP: the kept columns are real.

        Only quasi-identifier and 'other' columns may be kept unless ``allow_sensitive``.
        """
        self._check_fitted()
        keep = check_keep(self.schema, keep, allow_sensitive)
        codes, _ = encode(real, self.schema)
        index = {c.name: j for j, c in enumerate(self.schema.learned_columns)}
        given = {name: codes[:, index[name]] for name in keep}
        kept = {name: real[name].reset_index(drop=True).to_numpy() for name in keep}
        return self._sample_given(given, kept, np.random.default_rng(rng))

    def sample_where(self, n_rows: int, where: dict[str, int], rng: Any = None) -> pd.DataFrame:
        """``n_rows`` synthetic rows conditioned exactly on ``where`` (column name -> PUBLIC
        code of a learned column): the model's conditional distribution given them (evidence
        on the junction tree), every rule of the schema satisfied. Post-processing of the
        model, as :meth:`sample`. A condition of probability zero under the model is refused."""
        model = self._check_fitted()
        if not where:
            return self.sample(n_rows, rng)
        index = {c.name: j for j, c in enumerate(self.schema.learned_columns)}
        if model.probability({index[name]: code for name, code in where.items()}) <= 0:
            shown = ", ".join(f"{name}={self.schema.column(name).domain.labels[code]}"  # type: ignore[union-attr]
                              for name, code in where.items())
            raise InputError(f"{shown}: probability zero under the model (ruled out by the schema's rules or "
                             "by the model): no synthetic patient can meet it")
        given = {name: np.full(int(n_rows), code) for name, code in where.items()}
        frame = self._sample_given(given, {}, np.random.default_rng(rng), pinned=True)
        drawn, _ = encode(frame, self.schema)
        for name, code in where.items():  # the condition holds exactly, whatever the rules made of the rest
            if not (drawn[:, index[name]] == code).all():
                raise RuntimeError(f"a sampled row left the condition on '{name}' (a bug in privsynth)")
        return frame

    def _sample_given(self, given: dict[str, np.ndarray], kept: dict[str, np.ndarray],
                      generator: np.random.Generator, pinned: bool = False) -> pd.DataFrame:
        """One row per entry of ``given`` (column -> public codes): those columns as given
        (their values from ``kept`` where given, else decoded), the rest drawn from the model
        conditioned on them. ``pinned=False`` (partial synthesis): the given values are real
        and never changed, and rules among them alone are theirs. ``pinned=True`` (``sample
        --where``): only their codes are fixed, so every rule of the schema holds (numbers
        redrawn inside their bins, rows redrawn under the same condition)."""
        model = self._check_fitted()
        index = {c.name: j for j, c in enumerate(self.schema.learned_columns)}
        fixed = list(given)
        by_index = {index[name]: codes for name, codes in given.items()}
        n = len(next(iter(given.values())))

        def draw(rows: np.ndarray, held: dict[int, np.ndarray] | None = None) -> tuple[pd.DataFrame, np.ndarray]:
            evidence = {**(held or {}), **{j: v[rows] for j, v in by_index.items()}}
            drawn = self._tilted(model.sample_given(evidence, generator), generator, fixed)
            out = decode(drawn, self.schema, generator, model.refinements)
            for name, values in kept.items():
                out[name] = values[rows]
            return out, drawn

        frame, drawn = draw(np.arange(n))

        def redraw(rows: np.ndarray, held: dict[int, np.ndarray]) -> tuple[pd.DataFrame, np.ndarray]:
            out, fresh = draw(rows, held)
            return (out, fresh) if pinned else (out.drop(columns=fixed), fresh)

        return self._quiet(satisfy(frame, drawn, self.schema, generator, model.refinements, redraw,
                                   one_way=model.one_way, fixed=() if pinned else fixed,
                                   pinned=fixed if pinned else ()), fixed)

    # -- persistence -------------------------------------------------------------------

    def save(self, path: str | Path) -> tuple[Path, Path]:
        """Save the DP model as ``<path>.json`` + ``<path>.npz``: shareable, no data in it."""
        model = self._check_fitted()
        model.metadata["schema_document"] = _schema_fingerprint(self.schema)
        return model.save(path)

    @classmethod
    def load(cls, path: str | Path, schema: Schema) -> Synthesizer:
        """Load a saved model; ``schema`` must be the one it was fitted with."""
        model = MarginalModel.load(path)
        names = tuple(c.name for c in schema.learned_columns)
        if model.columns != names or model.domain_sizes != domain_sizes(schema):
            raise InputError(
                f"{path}: the model's columns or domains differ from schema '{schema.name}'; "
                "load it with the schema it was fitted with"
            )
        synth = cls(schema, model.metadata.get("epsilon", 1.0), model.metadata.get("delta", 1e-6))
        synth.model_ = model
        return synth


def check_keep(schema: Schema, keep: list[str] | tuple[str, ...], allow_sensitive: bool = False) -> list[str]:
    """The columns to keep in a partial synthesis, checked: learned columns of ``schema``,
    not sensitive unless ``allow_sensitive``, at least one kept and one replaced."""
    learned = {c.name: c for c in schema.learned_columns}
    keep = list(dict.fromkeys(keep))
    if not keep:
        raise InputError("partial synthesis needs at least one column to keep")
    for name in keep:
        if name not in learned:
            raise InputError(f"cannot keep '{name}': not a learned column of schema '{schema.name}'; "
                             f"allowed: {', '.join(learned)}")
        if learned[name].role == "sensitive" and not allow_sensitive:
            raise InputError(f"cannot keep '{name}': a sensitive column may stay real only if the policy sets "
                             "allow_keep_sensitive: 1 (quasi-identifiers and 'other' columns may)")
    if set(keep) >= set(learned):
        raise InputError("the list to keep names every learned column; partial synthesis must replace at least one")
    return keep


def _schema_fingerprint(schema: Schema) -> str:
    return json.dumps({"name": schema.name, "columns": [c.name for c in schema.learned_columns]})
