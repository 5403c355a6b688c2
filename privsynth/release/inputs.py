"""The release's input files: each one's path and SHA-256, for the internal audit only."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from pathlib import Path

from privsynth.errors import InputError


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def input_files(inputs: Iterable[Path]) -> list[Path]:
    files: list[Path] = []
    for p in inputs:
        if p.is_dir():
            files.extend(sorted(f for f in p.rglob("*") if f.is_file()))
        elif p.is_file():
            files.append(p)
        else:
            raise InputError(f"{p}: no such file or directory")
    if not files:
        raise InputError("the inputs contain no files")
    return files


def input_fingerprint(files: list[Path]) -> list[dict[str, str]]:
    """Each input file's path and SHA-256, for the INTERNAL record only. The same content
    given twice is refused: its patients would be read twice."""
    per_file = [{"path": str(f), "sha256": sha256_file(f)} for f in files]
    seen: dict[str, Path] = {}
    for f, entry in zip(files, per_file):
        if entry["sha256"] in seen:
            raise InputError(f"{f}: the same content as {seen[entry['sha256']]}; give each input file once")
        seen[entry["sha256"]] = f
    return per_file
