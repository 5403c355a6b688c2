"""Helpers shared by the benchmark commands: tables, workload error, baselines."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from privsynth.generator import Synthesizer  # noqa: E402
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




def peak_traced_mb(schema, view, epsilon: float, n: int) -> float:  # type: ignore[no-untyped-def]
    """Peak traced memory of one fit + sample (a separate run: tracing slows the timed ones)."""
    import tracemalloc

    tracemalloc.start()
    Synthesizer(schema, epsilon).fit(view).sample_codes(n, np.random.default_rng(0))
    peak = tracemalloc.get_traced_memory()[1] / 2**20
    tracemalloc.stop()
    return peak


def timed_sample(schema, view, epsilon: float, n: int, rng: np.random.Generator):  # type: ignore[no-untyped-def]
    """Fit at ``epsilon`` and sample ``n`` rows of codes; return them and the seconds taken."""
    import time

    t0 = time.perf_counter()
    sample = Synthesizer(schema, epsilon).fit(view).sample_codes(n, rng)
    return sample, time.perf_counter() - t0
