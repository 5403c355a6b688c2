"""Which shard a patient is in, and writing an encoded view as shards.

Every patient lands in one shard, chosen by a keyed hash of the patient's key, so a patient's
whole record stays together wherever the shards are processed: the same key gives the same
shard on every run, machine and engine.

>>> shard_of("patient-1", 8) == shard_of("patient-1", 8)
True
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

SHARD_SALT = b"privsynth-shard-v1"  # public: shards split the work, not the privacy


def shard_of(key: str, shards: int) -> int:
    """The shard of a patient key (stable across runs, machines and engines)."""
    digest = hashlib.blake2b(key.encode(), digest_size=8, key=SHARD_SALT).digest()
    return int.from_bytes(digest, "big") % shards


def codes_table(codes: np.ndarray) -> pa.Table:
    """An encoded view (n x d codes) as the Arrow table a shard's partition holds."""
    return pa.table({f"c{j}": pa.array(codes[:, j].astype(np.int32)) for j in range(codes.shape[1])})


def write_shards(codes: np.ndarray, keys: Iterable[str], out: Path, shards: int) -> list[Path]:
    """Write the encoded view ``codes`` (n x d) as one Parquet partition per shard, each row in
    the shard of its patient's key; the partitions written."""
    assignment = np.fromiter((shard_of(k, shards) for k in keys), dtype=np.int64, count=len(codes))
    written = []
    for k in range(shards):
        part = out / f"shard={k}"
        part.mkdir(parents=True, exist_ok=True)
        pq.write_table(codes_table(codes[assignment == k]), part / "part.parquet")
        written.append(part / "part.parquet")
    return written
