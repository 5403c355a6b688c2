"""The fitted model: DP (it is built only from noisy measurements), savable, samplable.

Saved as ``<stem>.json`` (metadata, cliques, budget) plus ``<stem>.npz`` (log-potentials)
-- never pickle, so a recipient can open it safely.
"""

from __future__ import annotations

import io
import json
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from privsynth.atomic import write_bytes
from privsynth.domain import code_dtype
from privsynth.errors import InputError
from privsynth.generator.compress import Compression
from privsynth.generator.estimate import clique_log_potentials, clique_marginals
from privsynth.generator.factor import Clique, project
from privsynth.generator.junction import DEFAULT_MAX_CELLS, JunctionTree

FORMAT = "privsynth-model/1"


# numbers of the calibrations on evidence kept (512 MiB of float64 at most): patient-timeline's
# treatment zeros widen its tree, and a 6,000-patient sample redraws given about 150 evidences
# (sample 56 s with 128 MiB kept, 36 s with 512 MiB, peak memory 765 MiB)
CALIBRATIONS_KEPT = 2**26


@dataclass
class MarginalModel:
    """A graphical model over encoded columns: potentials on cliques, and a total.

    ``sizes`` are the compressed domain sizes the model works in; ``compressions`` map
    each column's public domain to them and back.
    """

    columns: tuple[str, ...]
    sizes: tuple[int, ...]
    potentials: dict[Clique, np.ndarray]
    total: float
    compressions: list[Compression] = field(default_factory=list)
    metadata: dict[str, Any] = field(default_factory=dict)
    max_cells: int = DEFAULT_MAX_CELLS
    refinements: dict[str, np.ndarray] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.compressions:
            self.compressions = [Compression.identity(s) for s in self.sizes]
        cliques = sorted(self.potentials, key=lambda c: (len(c), c))
        self._tree = JunctionTree(cliques, self.sizes, max_cells=self.max_cells)
        self._marginals = clique_marginals(self._tree, self.potentials, self.total)
        # sample_given's calibrations on evidence, by (columns, values): the panel's redraws
        # ask for the same patients' evidence (an age, a sex, a state) again and again
        self._calibrated: OrderedDict[tuple[tuple[int, ...], bytes], tuple[list[np.ndarray], dict[int, Any]]] = \
            OrderedDict()

    def marginal(self, attrs: Clique) -> np.ndarray:
        """The model's marginal (in counts) over ``attrs`` if a tree clique covers them."""
        h = self._tree.host(tuple(sorted(attrs)))
        return project(self._marginals[h], self._tree.cliques[h], tuple(sorted(attrs)))

    def one_way(self, column: int) -> np.ndarray:
        """The model's probabilities of each PUBLIC code of a column (a merged cell's mass
        shared among its codes by their noisy weights)."""
        small = self.marginal((column,))
        small = np.clip(small, 0, None) / max(float(small.sum()), 1e-300)
        comp = self.compressions[column]
        probs = small[comp.to_small].astype(np.float64)
        if comp.rare.size:
            probs[comp.rare] = small[comp.size - 1] * comp.rare_weights
        return probs

    @property
    def domain_sizes(self) -> tuple[int, ...]:
        """The public (uncompressed) domain size of every column."""
        return tuple(int(c.to_small.size) for c in self.compressions)

    def sample(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """``n`` i.i.d. rows of integer codes over the public domains."""
        if n < 0:
            raise ValueError("the number of rows must be non-negative")
        small = self._tree.sample(self._marginals, n, rng)
        out = np.empty(small.shape, dtype=code_dtype(self.domain_sizes))
        for j, comp in enumerate(self.compressions):
            out[:, j] = comp.expand(small[:, j], rng)
        return out

    def resample(self, codes: np.ndarray, blocks: Sequence[tuple[int, ...]], rng: np.random.Generator) -> np.ndarray:
        """``codes`` with each block of columns drawn again, block after block, from the model
        conditioned on every other column of the row: the product of the log-potentials
        that touch the block, evaluated at the row (one block-Gibbs sweep from the row). A
        row whose block has no possible value keeps it."""
        out = np.array(codes, copy=True)
        n = len(out)
        if n == 0:
            return out
        small = np.stack([comp.to_small[np.asarray(out[:, j], dtype=np.int64)]
                          for j, comp in enumerate(self.compressions)], axis=1)
        for block in blocks:
            block = tuple(block)
            shape = tuple(self.sizes[j] for j in block)
            logits = np.zeros((n, *shape))
            for clique, table in self.potentials.items():
                inside = [a for a in clique if a in block]
                if not inside:
                    continue
                others = [a for a in clique if a not in block]
                # the table's block axes in the block's order, its other axes indexed by each row
                order = [clique.index(a) for a in others] + [clique.index(a) for a in block if a in clique]
                moved = np.transpose(table, order)
                picked = moved[tuple(small[:, a] for a in others)] if others else np.broadcast_to(
                    moved, (n, *moved.shape))
                logits += picked.reshape((n, *(self.sizes[a] if a in clique else 1 for a in block)))
            flat = logits.reshape(n, -1)
            top = flat.max(axis=1, keepdims=True)
            possible = np.isfinite(top[:, 0])
            weights = np.where(possible[:, None], np.exp(flat - np.where(possible[:, None], top, 0.0)), 0.0)
            cumulative = np.cumsum(weights, axis=1)
            u = rng.random(n) * cumulative[:, -1]
            pick = np.minimum((cumulative < u[:, None]).sum(axis=1), flat.shape[1] - 1)
            cells = np.unravel_index(pick, shape)
            for a, values in zip(block, cells):
                chosen = possible
                small[chosen, a] = values[chosen]
                out[chosen, a] = self.compressions[a].expand(values[chosen], rng)
        return out

    def sample_given(self, given: dict[int, np.ndarray], rng: np.random.Generator) -> np.ndarray:
        """One row per row of ``given`` (column index -> public codes): the given columns as
        they are, every other column drawn from the model conditioned on them.

        Exact: for each distinct combination of given values, belief propagation with that
        evidence calibrates the tree, then forward sampling draws the rest.
        """
        if not given:
            raise ValueError("sample_given needs at least one given column")
        columns = sorted(given)
        n = len(given[columns[0]])
        small_given = np.stack([self.compressions[j].to_small[np.asarray(given[j], dtype=np.int64)]
                                for j in columns], axis=1)
        combos, inverse = np.unique(small_given, axis=0, return_inverse=True)
        base: dict[int, np.ndarray] | None = None
        hosts = {j: self._tree.host((j,)) for j in columns}
        small = np.zeros((n, len(self.sizes)), dtype=np.int64)
        order = np.argsort(inverse.ravel(), kind="stable")  # rows grouped by combination, in one sort
        bounds = np.searchsorted(inverse.ravel()[order], np.arange(len(combos) + 1))
        for k, combo in enumerate(combos):
            rows = order[bounds[k]:bounds[k + 1]]
            key = (tuple(columns), combo.tobytes())
            kept = self._calibrated.get(key)
            if kept is None:
                base = clique_log_potentials(self._tree, self.potentials) if base is None else base
                logs = dict(base)
                for j, value in zip(columns, combo.tolist()):
                    logs = self._with_evidence(logs, j, value, hosts[j])
                kept = (self._tree.calibrate(logs, 1.0), {})  # sampling reads proportions only
                self._remember(key, kept)
            else:
                self._calibrated.move_to_end(key)
            marginals, tables = kept
            fixed = {j: np.full(len(rows), v) for j, v in zip(columns, combo.tolist())}
            small[rows] = self._tree.sample(marginals, len(rows), rng, given=fixed, tables=tables)
        out = np.empty(small.shape, dtype=code_dtype(self.domain_sizes))
        for j, comp in enumerate(self.compressions):
            out[:, j] = given[j] if j in given else comp.expand(small[:, j], rng)
        return out

    def _remember(self, key: tuple[tuple[int, ...], bytes], kept: tuple[list[np.ndarray], dict[int, Any]]) -> None:
        """Keep a calibration on evidence (exact and deterministic: the same evidence gives the
        same tree) with its conditional tables, the least recently used first out past
        ``CALIBRATIONS_KEPT`` numbers (a calibration's tables count as much again)."""
        cells = 2 * sum(m.size for m in kept[0])
        self._calibrated[key] = kept
        while len(self._calibrated) > 1 and len(self._calibrated) * cells > CALIBRATIONS_KEPT:
            self._calibrated.popitem(last=False)

    def _with_evidence(self, logs: dict[int, np.ndarray], j: int, value: int, host: int | None = None
                       ) -> dict[int, np.ndarray]:
        """``logs`` (clique log-potentials) with column ``j`` fixed to compressed code ``value``."""
        h = self._tree.host((j,)) if host is None else host
        clique = self._tree.cliques[h]
        shape = tuple(self.sizes[a] for a in clique)
        evidence = np.full(self.sizes[j], -np.inf)
        evidence[value] = 0.0
        view = [1] * len(clique)
        view[clique.index(j)] = self.sizes[j]
        out = dict(logs)
        out[h] = (logs[h] if h in logs else np.zeros(shape)) + evidence.reshape(view)
        return out

    def probability(self, given: dict[int, int]) -> float:
        """The model's probability that every column ``j`` of ``given`` takes PUBLIC code
        ``given[j]`` (exact, by the chain rule: one calibration per given column)."""
        logs = clique_log_potentials(self._tree, self.potentials)
        p = 1.0
        for j, code in sorted(given.items()):
            comp = self.compressions[j]
            small = int(comp.to_small[code])
            h = self._tree.host((j,))
            marginals = self._tree.calibrate(logs, 1.0)
            one = np.clip(project(marginals[h], self._tree.cliques[h], (j,)), 0, None)
            total = float(one.sum())
            share = float(one[small]) / total if total > 0 and np.isfinite(total) else 0.0
            rare = np.flatnonzero(comp.rare == code)
            if rare.size:
                share *= float(comp.rare_weights[rare[0]])
            p *= share
            if not p > 0:
                return 0.0
            logs = self._with_evidence(logs, j, small, h)
        return p

    def save(self, path: str | Path) -> tuple[Path, Path]:
        stem = Path(path)
        if stem.suffix in (".json", ".npz"):
            stem = stem.with_suffix("")
        keys = [f"clique_{i}" for i in range(len(self.potentials))]
        cliques = list(self.potentials)
        doc = {
            "format": FORMAT,
            "columns": list(self.columns),
            "sizes": list(self.sizes),
            "total": self.total,
            "cliques": [{"attributes": list(c), "array": k} for c, k in zip(cliques, keys)],
            "metadata": self.metadata,
        }
        json_path, npz_path = stem.with_suffix(".json"), stem.with_suffix(".npz")
        arrays = {k: self.potentials[c] for c, k in zip(cliques, keys)}
        for name, weights in self.refinements.items():
            arrays[f"refine__{name}"] = weights
        for j, comp in enumerate(self.compressions):
            arrays[f"to_small_{j}"] = comp.to_small
            arrays[f"rare_{j}"] = comp.rare
            arrays[f"rare_weights_{j}"] = comp.rare_weights
        buf = io.BytesIO()
        np.savez_compressed(buf, **arrays)  # type: ignore[arg-type]
        write_bytes(npz_path, buf.getvalue())
        write_bytes(json_path, json.dumps(doc, indent=2).encode())
        return json_path, npz_path

    @classmethod
    def load(cls, path: str | Path) -> MarginalModel:
        stem = Path(path)
        if stem.suffix in (".json", ".npz"):
            stem = stem.with_suffix("")
        json_path, npz_path = stem.with_suffix(".json"), stem.with_suffix(".npz")
        try:
            doc = json.loads(json_path.read_text(encoding="utf-8"))
            arrays = np.load(npz_path, allow_pickle=False)
        except FileNotFoundError as exc:
            raise InputError(f"{exc.filename}: model file not found (need .json and .npz)") from None
        except (ValueError, OSError) as exc:
            raise InputError(f"{json_path}: not a readable privsynth model ({type(exc).__name__})") from None
        if not isinstance(doc, dict) or doc.get("format") != FORMAT:
            raise InputError(f"{json_path}: field 'format': not a {FORMAT} file")
        potentials = {
            tuple(int(a) for a in c["attributes"]): np.asarray(arrays[c["array"]], dtype=np.float64)
            for c in doc["cliques"]
        }
        compressions = [
            Compression(arrays[f"to_small_{j}"], arrays[f"rare_{j}"], arrays[f"rare_weights_{j}"])
            for j in range(len(doc["columns"]))
        ]
        refinements = {k.removeprefix("refine__"): np.asarray(arrays[k]) for k in arrays.files
                       if k.startswith("refine__")}
        return cls(tuple(doc["columns"]), tuple(doc["sizes"]), potentials, float(doc["total"]),
                   compressions, dict(doc.get("metadata", {})), DEFAULT_MAX_CELLS, refinements)
