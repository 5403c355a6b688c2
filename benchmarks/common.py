"""Helpers shared by the benchmark commands: tables, workload error, baselines."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from privsynth.generator.factor import contingency  # noqa: E402
from privsynth.privacy import Accountant, measure_counts  # noqa: E402


def table(title: str, header: list[str], rows: list[list[object]]) -> None:
    cells = [header] + [[f"{v:.3f}" if isinstance(v, float) else str(v) for v in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    print(f"\n{title}")
    print("  ".join(h.ljust(w) for h, w in zip(header, widths)))
    print("  ".join("-" * w for w in widths))
    for r in cells[1:]:
        print("  ".join(v.ljust(w) for v, w in zip(r, widths)))


def tvd3(real: np.ndarray, synth: np.ndarray, sizes: tuple[int, ...], triples: list[tuple[int, ...]]) -> float:
    errors = []
    for t in triples:
        p = contingency(real, t, sizes).ravel() / len(real)
        q = contingency(synth, t, sizes).ravel() / max(1, len(synth))
        errors.append(0.5 * np.abs(p - q).sum())
    return float(np.mean(errors))


def independent(codes: np.ndarray, sizes: tuple[int, ...], epsilon: float, n: int, rng: np.random.Generator):
    """Baseline: every rho on noisy 1-way marginals; columns sampled independently."""
    acc = Accountant.from_epsilon_delta(epsilon, 1e-6)
    per = acc.rho_total / len(sizes) * (1 - 1e-9)
    out = np.empty((n, len(sizes)), dtype=np.int32)
    for j, s in enumerate(sizes):
        noisy, release = measure_counts(np.bincount(codes[:, j], minlength=s), per)
        acc.charge(f"1-way {j}", release)
        p = np.clip(noisy, 0, None)
        p = p / p.sum() if p.sum() > 0 else np.full(s, 1 / s)
        out[:, j] = rng.choice(s, n, p=p)
    return out


