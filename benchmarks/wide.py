"""Wide tables: fit + sample seconds and peak memory of privsynth on seeded n x d tables.

    python benchmarks/wide.py [--shapes 10000x50 1000000x60] [--epsilon 1] [--method aim]

Each shape runs in a fresh subprocess (so peak RSS is that run's own): the seeded table of
``benchmarks/tables.py --scale`` widened to d columns (10 numeric with 10 bins, the rest
categorical with 2-7 levels, all driven by one latent variable, so there is structure to
find), ``Synthesizer(schema, epsilon).fit(table)`` then ``sample(n)``. Also printed: the
mean 3-way total-variation error over 300 random triples (seeded choice), next to the
independent-marginals baseline at the same epsilon, so a faster fit that learns nothing
shows up. Targets (issue 11): 10,000 x 50 in <= 5 s, 1,000,000 x 60 in <= 60 s, peak
memory <= 400 MB (read here as what fit + sample add to the RSS).
"""

from __future__ import annotations

import argparse
import gc
import json
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import psutil

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks.common import independent, table, tvd3  # noqa: E402
from benchmarks.tables import scale_table  # noqa: E402


def one(n: int, d: int, epsilon: float, method: str) -> dict[str, float]:
    from privsynth.domain import domain_sizes, encode
    from privsynth.generator import Synthesizer

    schema, frame = scale_table(n, d)
    gc.collect()
    process = psutil.Process()
    base_rss = process.memory_info().rss / 2**20
    peak = [base_rss]
    done = threading.Event()

    def watch() -> None:  # current RSS every 10 ms: the peak of fit + sample alone
        while not done.wait(0.01):
            peak[0] = max(peak[0], process.memory_info().rss / 2**20)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    t0 = time.perf_counter()
    synth = Synthesizer(schema, epsilon, method=method).fit(frame)
    fit = time.perf_counter() - t0
    t0 = time.perf_counter()
    codes = synth.sample_codes(n, np.random.default_rng(1))
    sample = time.perf_counter() - t0
    done.set()
    watcher.join()
    sizes = domain_sizes(schema)
    real = encode(frame, schema)[0]
    rng = np.random.default_rng(0)
    triples = sorted({tuple(sorted(rng.choice(d, 3, replace=False).tolist())) for _ in range(300)})
    return {"fit": fit, "sample": sample, "peak_mb": peak[0], "data_mb": base_rss,
            "tvd3": tvd3(real, codes, sizes, triples),
            "independent": tvd3(real, independent(real, sizes, epsilon, n, rng), sizes, triples),
            "measured": float(len(synth.accountant_.charges))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shapes", nargs="+", default=["10000x50", "1000000x60"])
    parser.add_argument("--epsilon", type=float, default=1.0)
    parser.add_argument("--method", default="aim")
    parser.add_argument("--one", help=argparse.SUPPRESS)
    a = parser.parse_args()
    if a.one:
        n, d = (int(x) for x in a.one.split("x"))
        print(json.dumps(one(n, d, a.epsilon, a.method)))
        return
    rows: list[list[object]] = []
    for shape in a.shapes:
        out = subprocess.run([sys.executable, __file__, "--one", shape, "--epsilon", str(a.epsilon),
                              "--method", a.method], capture_output=True, text=True, check=True)
        r = json.loads(out.stdout.strip().splitlines()[-1])
        rows.append([shape.replace("x", " x "), a.method, a.epsilon, f"{r['fit']:.1f}", f"{r['sample']:.1f}",
                     f"{r['fit'] + r['sample']:.1f}", f"{r['data_mb']:.0f}", f"{r['peak_mb']:.0f}",
                     f"{r['peak_mb'] - r['data_mb']:.0f}",
                     int(r["measured"]), r["tvd3"], r["independent"]])
    table("Wide tables: fit + sample (seconds); RSS in MB: before the fit (interpreter, libraries and the "
          "table) and the peak during fit + sample; 'added' = the difference",
          ["rows x cols", "method", "eps", "fit s", "sample s", "total s", "RSS before", "peak RSS", "added",
           "charges",
           "3-way TVD", "independent"], rows)


if __name__ == "__main__":
    main()
