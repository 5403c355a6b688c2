"""The audit space: patient-view rows as arrays for a mixed-type (Gower-like) distance.

Per column, the distance between two patients is

- numbers: ``|a - b| / (upper - lower)`` with the schema's PUBLIC bounds, capped at 1
  (values outside the bounds are clamped first);
- categories (and booleans): 0 if equal, 1 if not;
- missing vs missing: 0; missing vs a value: 1.

Two aggregates are computed in one pass: the MEAN over columns (how close two records are
overall) and the WORST single column (the largest per-column distance: a small worst
distance means a near-copy in every column). Categorical mismatches come from a matrix
product of one-hot codes, numbers from column-wise differences; pairs are processed in
blocks of rows so memory stays bounded (about ``BLOCK_CELLS`` floats per worker) whatever
the sizes.

>>> import numpy as np
>>> a = AuditSpace.from_arrays(np.array([[0.0], [0.5]]), np.array([[0], [1]]), (2,))
>>> b = AuditSpace.from_arrays(np.array([[0.25]]), np.array([[1]]), (2,))
>>> mean, worst = pairwise(a, b)
>>> mean.ravel().tolist(), worst.ravel().tolist()
([0.625, 0.125], [1.0, 0.25])
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import pandas as pd

from privsynth.domain import encode
from privsynth.schema.model import CategoricalDomain, NumericDomain, Schema

MISSING = 2.0  # a missing number: at distance >= 1 (capped to 1) from any value in [0, 1]
BLOCK_CELLS = 1 << 22  # pairs per block (16 MB per float32 matrix)


@dataclass(frozen=True)
class AuditSpace:
    """``numbers``: (p, n) float32 in [0, 1] or MISSING, stored column-major for speed;
    ``onehot``: (n, sum of category counts) float32; ``codes``: (n, q) category codes."""

    numbers: np.ndarray
    codes: np.ndarray
    onehot: np.ndarray
    columns: tuple[str, ...] = ()

    @classmethod
    def from_arrays(cls, numbers: np.ndarray, codes: np.ndarray, sizes: tuple[int, ...],
                    columns: tuple[str, ...] = ()) -> AuditSpace:
        """``numbers`` (n, p) already scaled to [0, 1] with NaN for missing; ``codes`` (n, q)."""
        n = len(numbers) if numbers.size else len(codes)
        scaled = np.where(np.isnan(numbers), MISSING, np.clip(numbers, 0.0, 1.0)).astype(np.float32)
        codes = np.asarray(codes, dtype=np.int64).reshape(n, -1)
        onehot = np.zeros((n, int(sum(sizes))), dtype=np.float32)
        offset = 0
        for j, size in enumerate(sizes):
            onehot[np.arange(n), offset + codes[:, j]] = 1.0
            offset += size
        return cls(np.ascontiguousarray(scaled.reshape(n, -1).T), codes, onehot, columns)

    @property
    def n(self) -> int:
        return len(self.codes)

    @property
    def n_columns(self) -> int:
        return self.numbers.shape[0] + self.codes.shape[1]

    def take(self, index: np.ndarray) -> AuditSpace:
        return AuditSpace(np.ascontiguousarray(self.numbers[:, index]), self.codes[index], self.onehot[index],
                          self.columns)

    def row_keys(self) -> np.ndarray:
        """One hashable key per row (bytes of its exact values): for exact-match counts."""
        rows = np.concatenate([self.numbers.T.astype(np.float64), self.codes.astype(np.float64)], axis=1)
        return np.array([r.tobytes() for r in np.ascontiguousarray(rows)], dtype=object)


def audit_space(frame: pd.DataFrame, schema: Schema) -> AuditSpace:
    """The learned (non-identifier) columns of a patient view, for the audit distance."""
    codes, _ = encode(frame, schema)
    numbers, categories, sizes, names = [], [], [], []
    for j, col in enumerate(schema.learned_columns):
        domain = col.domain
        if isinstance(domain, NumericDomain):
            values = pd.to_numeric(frame[col.name], errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
            numbers.append((values - domain.lower) / (domain.upper - domain.lower))
        else:
            assert isinstance(domain, CategoricalDomain)
            categories.append(codes[:, j])
            sizes.append(domain.size)
        names.append(col.name)
    n = len(frame)
    num = np.column_stack(numbers) if numbers else np.empty((n, 0))
    cat = np.column_stack(categories) if categories else np.empty((n, 0), dtype=np.int64)
    return AuditSpace.from_arrays(num, cat, tuple(sizes), tuple(names))


def pairwise(x: AuditSpace, y: AuditSpace) -> tuple[np.ndarray, np.ndarray]:
    """Full (mean, worst) distance matrices of ``x`` rows against ``y`` rows (small inputs)."""
    return _block(x, 0, x.n, y, _capped(x, y))


def _capped(x: AuditSpace, y: AuditSpace) -> np.ndarray:
    """Columns where a missing number may meet a value (there the difference is capped)."""
    if x.numbers.shape[0] == 0:
        return np.zeros(0, dtype=bool)
    return np.asarray((x.numbers == MISSING).any(axis=1) | (y.numbers == MISSING).any(axis=1))


def _block(x: AuditSpace, start: int, stop: int, y: AuditSpace, capped: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    rows = stop - start
    q = x.codes.shape[1]
    total = np.zeros((rows, y.n), dtype=np.float32)
    worst = np.zeros((rows, y.n), dtype=np.float32)
    if x.numbers.shape[0]:
        diff = np.empty((rows, y.n), dtype=np.float32)
        for j in range(x.numbers.shape[0]):
            np.subtract(x.numbers[j, start:stop, None], y.numbers[j, None, :], out=diff)
            np.abs(diff, out=diff)
            if capped[j]:
                np.minimum(diff, 1.0, out=diff)
            total += diff
            np.maximum(worst, diff, out=worst)
    if q:
        mismatch = q - x.onehot[start:stop] @ y.onehot.T
        total += mismatch
        worst[mismatch > 0.5] = 1.0
    total /= max(1, x.n_columns)
    return total, worst


def blocks(x: AuditSpace, y: AuditSpace, workers: int | None = None
           ) -> Iterator[tuple[int, int, np.ndarray, np.ndarray]]:
    """Yield ``(start, stop, mean, worst)`` for row blocks of ``x`` against all of ``y``,
    computed by ``workers`` threads (numpy releases the GIL in these loops)."""
    size = max(8, min(4096, BLOCK_CELLS // max(1, y.n)))
    starts = list(range(0, x.n, size))
    capped = _capped(x, y)
    workers = workers or min(4, os.cpu_count() or 1)
    with ThreadPoolExecutor(max_workers=workers) as pool:
        # at most 2 blocks per worker in flight keeps memory bounded
        pending: list = []
        for start in starts:
            stop = min(x.n, start + size)
            pending.append((start, stop, pool.submit(_block, x, start, stop, y, capped)))
            if len(pending) >= 2 * workers:
                s, e, fut = pending.pop(0)
                yield (s, e, *fut.result())
        for s, e, fut in pending:
            yield (s, e, *fut.result())
