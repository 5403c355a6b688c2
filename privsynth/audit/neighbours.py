"""Nearest neighbours in the audit space, both ways, in one blocked pass.

>>> import numpy as np
>>> from privsynth.audit.space import AuditSpace
>>> x = AuditSpace.from_arrays(np.array([[0.0], [1.0]]), np.zeros((2, 0)), ())
>>> y = AuditSpace.from_arrays(np.array([[0.1], [0.3], [0.9]]), np.zeros((3, 0)), ())
>>> nn = nearest(x, y, k=2)
>>> np.round(nn.mean, 2).tolist(), np.round(nn.reverse, 2).tolist()
([[0.1, 0.3], [0.1, 0.7]], [0.1, 0.3, 0.1])
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from privsynth.audit.space import AuditSpace, blocks


@dataclass(frozen=True)
class Nearest:
    """``mean``: (n_x, k) smallest mean distances from each x row to y, ascending;
    ``worst``: (n_x, min(k, 2)) smallest worst-column distances, ascending; ``reverse``:
    (n_y,) smallest mean distance from each y row to any x row; ``index``: (n_x,) the y row
    nearest to each x row by mean distance, ``worst_index`` by worst-column distance (the
    first of ties)."""

    mean: np.ndarray
    worst_k: np.ndarray
    reverse: np.ndarray
    index: np.ndarray
    worst_index: np.ndarray

    @property
    def worst(self) -> np.ndarray:
        """(n_x,) the smallest worst-column distance."""
        return self.worst_k[:, 0]


def _smallest(matrix: np.ndarray, k: int) -> np.ndarray:
    part = np.partition(matrix, k - 1, axis=1)[:, :k] if k < matrix.shape[1] else matrix
    return np.sort(part, axis=1)[:, :k]


def nearest(x: AuditSpace, y: AuditSpace, k: int = 1, workers: int | None = None) -> Nearest:
    kw = min(k, 2)
    mean = np.full((x.n, k), np.inf)
    worst = np.full((x.n, kw), np.inf)
    reverse = np.full(y.n, np.inf)
    index = np.full(x.n, -1, dtype=np.int64)
    worst_index = np.full(x.n, -1, dtype=np.int64)
    if x.n == 0 or y.n == 0:
        return Nearest(mean, worst, reverse, index, worst_index)
    kk = min(k, y.n)
    for start, stop, m, w in blocks(x, y, workers):
        mean[start:stop, :kk] = _smallest(m, kk)
        worst[start:stop, :min(kw, y.n)] = _smallest(w, min(kw, y.n))
        index[start:stop] = m.argmin(axis=1)
        worst_index[start:stop] = w.argmin(axis=1)
        np.minimum(reverse, m.min(axis=0), out=reverse)
    return Nearest(mean, worst, reverse, index, worst_index)
