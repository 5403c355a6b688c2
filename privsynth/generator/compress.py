"""Domain compression (MST): merge categories too rare to measure into one bucket.

After the noisy 1-way marginal of a column is released, categories whose noisy count is
below ``threshold`` noise standard deviations are merged into a single bucket for every
later measurement and for the model. This is post-processing of a DP release: it reads
no data. Sampling maps the merged bucket back to one of its categories in proportion to
their (clipped) noisy counts.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Compression:
    """How one column's public domain is compressed for the model."""

    to_small: np.ndarray  # original code -> compressed code
    rare: np.ndarray  # original codes merged into the last compressed code (may be empty)
    rare_weights: np.ndarray  # probabilities of each rare code inside the merged bucket

    @property
    def size(self) -> int:
        return int(self.to_small.max()) + 1

    @classmethod
    def identity(cls, size: int) -> Compression:
        return cls(np.arange(size), np.zeros(0, dtype=np.int64), np.zeros(0))

    @classmethod
    def from_noisy(cls, noisy: np.ndarray, sigma: float, threshold: float = 3.0) -> Compression:
        """Merge categories whose noisy count is below ``threshold * sigma`` (if two or more)."""
        rare = np.flatnonzero(noisy < threshold * sigma)
        if rare.size < 2:
            return cls.identity(noisy.size)
        keep = np.flatnonzero(noisy >= threshold * sigma)
        to_small = np.empty(noisy.size, dtype=np.int64)
        to_small[keep] = np.arange(keep.size)
        to_small[rare] = keep.size
        weights = np.clip(noisy[rare], 0, None) + 1e-9
        return cls(to_small, rare, weights / weights.sum())

    def compress_counts(self, counts: np.ndarray) -> np.ndarray:
        return np.bincount(self.to_small, weights=counts, minlength=self.size)

    def expand(self, small: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Compressed codes back to original codes (rare bucket drawn by weight)."""
        if self.rare.size == 0:
            return small
        kept = np.full(self.size, -1, dtype=np.int64)
        kept[self.to_small[np.setdiff1d(np.arange(self.to_small.size), self.rare)]] = np.setdiff1d(
            np.arange(self.to_small.size), self.rare
        )
        out = kept[small]
        merged = small == self.size - 1
        out[merged] = rng.choice(self.rare, size=int(merged.sum()), p=self.rare_weights)
        return out
