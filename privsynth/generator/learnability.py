"""What a fitted model could learn at its size and budget, read from its own DP measurements.

Two questions, both post-processing of the model (its noise scales are public: they follow
from epsilon, delta and the schema; its total is the DP estimate of the number of patients):

- **Could the schema be learned at all?** Each column's 1-way marginal was measured with
  Gaussian noise of scale sigma over its public cells; the expected share of that
  distribution that is noise (its total variation from the truth) is about
  ``0.4 * sigma * cells / N``. :func:`assess` averages it over the columns: past
  ``NOISE_LIMIT`` the model mostly draws noise (60 patients x 121 columns at epsilon 1), and
  it says at which number of patients, or which epsilon, the same schema would fall under it.
- **Which event streams are empty?** A stream whose cells hold (by the model) no more
  events than the noise of their measurements would put there is most likely empty in the
  real data: :func:`empty_streams` names them, and the sampler writes none of their events
  rather than histories drawn from noise alone.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from privsynth.generator.model import MarginalModel
from privsynth.privacy.mechanism import epsilon_for
from privsynth.schema.model import Schema

NOISE_LIMIT = 0.25  # mean noise share of a column's distribution past which a schema is not learned
EMPTY_FACTOR = 0.75  # a stream is empty when its cells hold less non-zero mass than this share of the noise floor
HALF_NORMAL = math.sqrt(2 / math.pi) / 2  # E|N(0, 1)| / 2: a cell's expected share of the variation


@dataclass(frozen=True)
class Learnability:
    """The model's own measure of what it could learn (from DP quantities only)."""

    patients: int  # the DP estimate N
    columns: int
    noise_share: float  # mean over columns of the expected noise share of the 1-way distribution
    noisiest: tuple[str, ...]  # the columns past the limit, worst first (at most 5)
    min_patients: int  # the same schema and epsilon fall under the limit from this many patients
    min_epsilon: float  # ... or, at this N, from this epsilon
    limit: float = NOISE_LIMIT

    @property
    def learnable(self) -> bool:
        return self.noise_share <= self.limit

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "learnable": self.learnable}

    @classmethod
    def of(cls, data: dict[str, Any]) -> Learnability:
        """Read back :meth:`as_dict` (a model's metadata)."""
        fields = {k: v for k, v in data.items() if k != "learnable"}
        return cls(**{**fields, "noisiest": tuple(fields.get("noisiest", ()))})

    def sentence(self, schema: Schema) -> str:
        smaller = (" or a smaller schema (patient-core instead of patient-timeline: fewer columns, more patients "
                   "per cell)" if schema.timeline is not None else " or a schema with fewer columns or coarser bins")
        return (f"about {100 * self.noise_share:.0f}% of what the model learned of each column is noise (limit "
                f"{100 * self.limit:.0f}%): at this epsilon this schema needs about {self.min_patients:,} patients "
                f"(the DP estimate here is {self.patients:,}), or epsilon {self.min_epsilon:.3g} at this size;"
                f" use more patients, a larger epsilon{smaller}")


def column_scales(model: MarginalModel) -> dict[str, float]:
    """Each column's 1-way noise scale: its 1-way measurements combined (inverse variance)."""
    precision: dict[str, float] = {}
    for m in model.metadata.get("measurements", []):
        purpose, scale = str(m.get("purpose", "")), float(m.get("scale", 0.0))
        for prefix in ("1-way again ", "1-way "):
            if purpose.startswith(prefix) and scale > 0:
                name = purpose[len(prefix):]
                precision[name] = precision.get(name, 0.0) + scale ** -2
                break
    return {name: p ** -0.5 for name, p in precision.items() if p > 0}


def assess(schema: Schema, model: MarginalModel, delta: float) -> Learnability:
    n = max(1.0, float(model.total))
    scales = column_scales(model)
    raw = {c.name: HALF_NORMAL * scales[c.name] * size / n
           for c, size in zip(schema.learned_columns, model.domain_sizes) if c.name in scales}
    shares = {k: min(1.0, v) for k, v in raw.items()}  # a share is at most the whole distribution
    mean = float(np.mean(list(shares.values()))) if shares else 0.0
    noisiest = tuple(sorted((k for k, v in shares.items() if v > NOISE_LIMIT), key=lambda k: -raw[k])[:5])
    # the noise share falls as 1/N and as 1/sqrt(rho): where the same schema gets under the limit
    ratio = max(float(np.mean(list(raw.values()))) / NOISE_LIMIT if raw else 0.0, 1e-9)
    rho = float(model.metadata.get("rho_total", 0.0))
    min_epsilon = epsilon_for(rho * ratio ** 2, delta) if rho > 0 else float("nan")
    return Learnability(int(round(n)), len(schema.learned_columns), mean, noisiest,
                        int(math.ceil(n * ratio)), min_epsilon)


def empty_streams(schema: Schema, model: MarginalModel) -> tuple[str, ...]:
    """The timeline streams whose cells the model fills with no more than measurement noise:
    the mean probability of a non-empty cell is within ``EMPTY_FACTOR`` noise floors, a
    floor being what positive noise alone leaves in a column's non-zero bins."""
    if schema.timeline is None:
        return ()
    n = max(1.0, float(model.total))
    scales = column_scales(model)
    index = {c.name: j for j, c in enumerate(schema.learned_columns)}
    out = []
    for stream in schema.timeline.streams:
        filled, floors = [], []
        for group in stream.groups:
            for name in stream.columns(group):
                j = index.get(name)
                if j is None or name not in scales:
                    continue
                col = schema.column(name)
                p = model.one_way(j)
                p = p / max(p.sum(), 1e-12)
                empty = 0 if stream.kind == "count" else col.domain.missing_code  # type: ignore[union-attr]
                filled.append(1.0 - float(p[empty]) if empty is not None else 1.0)
                floors.append(HALF_NORMAL * scales[name] * (len(p) - 1) / n)
        if filled and float(np.mean(filled)) <= EMPTY_FACTOR * float(np.mean(floors)):
            out.append(stream.name)
    return tuple(out)
