"""The fitted model: DP (it is built only from noisy measurements), savable, samplable.

Saved as ``<stem>.json`` (metadata, cliques, budget) plus ``<stem>.npz`` (log-potentials)
-- never pickle, so a recipient can open it safely.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from privsynth.errors import InputError
from privsynth.generator.factor import Clique, expand, project
from privsynth.generator.junction import DEFAULT_MAX_CELLS, JunctionTree
from privsynth.release.atomic import write_bytes

FORMAT = "privsynth-model/1"


@dataclass
class MarginalModel:
    """A graphical model over encoded columns: potentials on cliques, and a total."""

    columns: tuple[str, ...]
    sizes: tuple[int, ...]
    potentials: dict[Clique, np.ndarray]
    total: float
    metadata: dict[str, Any] = field(default_factory=dict)
    max_cells: int = DEFAULT_MAX_CELLS

    def __post_init__(self) -> None:
        cliques = sorted(self.potentials, key=lambda c: (len(c), c))
        self._tree = JunctionTree(cliques, self.sizes, max_cells=self.max_cells)
        logs: dict[int, np.ndarray] = {}
        for c in cliques:
            h = self._tree.host(c)
            shape = tuple(self.sizes[a] for a in self._tree.cliques[h])
            logs[h] = np.broadcast_to(
                logs.get(h, 0.0) + expand(self.potentials[c], c, self._tree.cliques[h], self.sizes), shape
            ).copy()
        self._marginals = self._tree.calibrate(logs, self.total)

    def marginal(self, attrs: Clique) -> np.ndarray:
        """The model's marginal (in counts) over ``attrs`` if a tree clique covers them."""
        h = self._tree.host(tuple(sorted(attrs)))
        return project(self._marginals[h], self._tree.cliques[h], tuple(sorted(attrs)))

    def sample(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """``n`` i.i.d. rows of integer codes."""
        if n < 0:
            raise ValueError("the number of rows must be non-negative")
        return self._tree.sample(self._marginals, n, rng)

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
        buf = io.BytesIO()
        np.savez_compressed(buf, **{k: self.potentials[c] for c, k in zip(cliques, keys)})
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
        return cls(tuple(doc["columns"]), tuple(doc["sizes"]), potentials, float(doc["total"]),
                   dict(doc.get("metadata", {})))
