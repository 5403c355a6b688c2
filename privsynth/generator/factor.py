"""Factors: numpy arrays over a sorted tuple of attribute indices, with their algebra."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

Clique = tuple[int, ...]


def expand(values: np.ndarray, attrs: Clique, target: Clique, sizes: Sequence[int]) -> np.ndarray:
    """Broadcast a factor over ``attrs`` to the shape of ``target`` (a superset)."""
    if attrs == target:
        return values
    shape = [sizes[a] if a in attrs else 1 for a in target]
    return values.reshape(shape)


def project(values: np.ndarray, attrs: Clique, onto: Clique) -> np.ndarray:
    """Sum a factor over ``attrs`` down to ``onto`` (a subset), keeping sorted order."""
    if attrs == onto:
        return values
    axes = tuple(i for i, a in enumerate(attrs) if a not in onto)
    return values.sum(axis=axes)


def contingency(codes: np.ndarray, attrs: Clique, sizes: Sequence[int]) -> np.ndarray:
    """The exact count table of ``codes`` (n x d integer array) over ``attrs``; fastest on a
    column-major (Fortran-ordered) array."""
    shape = tuple(sizes[a] for a in attrs)
    if not attrs:
        return np.array(codes.shape[0], dtype=np.int64)
    total = math.prod(shape)
    if codes.flags.f_contiguous:  # columns are contiguous: build the flat index in place
        flat: np.ndarray = codes[:, attrs[0]].astype(np.int32 if total < 2**31 else np.int64)
        for a in attrs[1:]:
            np.multiply(flat, sizes[a], out=flat)
            np.add(flat, codes[:, a], out=flat, casting="unsafe")
    else:
        flat = np.ravel_multi_index(tuple(codes[:, a] for a in attrs), shape)
    return np.bincount(flat, minlength=total).reshape(shape)


def cells(attrs: Clique, sizes: Sequence[int]) -> int:
    return math.prod(int(sizes[a]) for a in attrs)
