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
    ``worst``: (n_x,) smallest worst-column distance; ``reverse``: (n_y,) smallest mean
    distance from each y row to any x row; ``index``: (n_x,) the y row nearest to each x
    row by mean distance (the first of ties)."""

    mean: np.ndarray
    worst: np.ndarray
    reverse: np.ndarray
    index: np.ndarray


def nearest(x: AuditSpace, y: AuditSpace, k: int = 1, workers: int | None = None) -> Nearest:
    mean = np.full((x.n, k), np.inf)
    worst = np.full(x.n, np.inf)
    reverse = np.full(y.n, np.inf)
    index = np.full(x.n, -1, dtype=np.int64)
    if x.n == 0 or y.n == 0:
        return Nearest(mean, worst, reverse, index)
    kk = min(k, y.n)
    for start, stop, m, w in blocks(x, y, workers):
        part = np.partition(m, kk - 1, axis=1)[:, :kk] if kk < y.n else m
        mean[start:stop, :kk] = np.sort(part, axis=1)[:, :kk]
        worst[start:stop] = w.min(axis=1)
        index[start:stop] = m.argmin(axis=1)
        np.minimum(reverse, m.min(axis=0), out=reverse)
    return Nearest(mean, worst, reverse, index)
