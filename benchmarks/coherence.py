"""Coherent synthetic patients: rules, the clinician's panel, small groups, utility, time.

    python -m benchmarks.coherence [--seeds 3] [--epsilons 1 3] [--baseline DIR]

On the example hospital (6,000 patients) and the shared Synthea export (200 patients), each
split once into 80% train and 20% test: fit on train at each epsilon (several seeds),
sample as many rows as train, and report

- hard rules of the schema broken by synthetic rows (must be 0);
- each plausibility-panel rule's violation rate among the rows its premise concerns,
  synthetic beside real (train), and whether it meets max(2 x real, 1%);
- protected groups holding >= 0.3% of real patients whose synthetic share is outside a
  factor of 2 of the real one;
- mean TVD over 2,000 random 3-way marginals of the learned columns (fixed triples);
- TSTR for the schema's target on the test patients (balanced accuracy, AUC);
- fit seconds.

``--baseline DIR`` also runs privsynth as checked out in DIR (e.g. a git worktree of the
commit before this work) with its own patient-core schema for the same splits, and evaluates
both versions on the learned columns the two schemas share, with the current schema's rules
over them, so the table shows before and after.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from benchmarks.common import ROOT, table
from privsynth.audit.coherence import rates
from privsynth.domain import encode
from privsynth.fhir.view import build_patient_view
from privsynth.generator import Synthesizer
from privsynth.generator.constraint import violations
from privsynth.report.data import _feature_columns
from privsynth.schema import load_schema
from privsynth.schema.model import Schema

SHARED = ROOT.parent / "shared" / "data"
SCHEMA = ROOT / "schemas" / "patient-core.yaml"
TRIPLES = 2000
GROUP_FLOOR = 0.003

BASELINE_FIT = """
import sys, time, json, pandas as pd, numpy as np
sys.path.insert(0, sys.argv[1])
from privsynth.schema import load_schema
from privsynth.generator import Synthesizer
schema = load_schema(sys.argv[1] + "/schemas/patient-core.yaml")
train = pd.read_pickle(sys.argv[2])
eps, seed, out = float(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
t0 = time.perf_counter()
synth = Synthesizer(schema, eps).fit(train)
seconds = time.perf_counter() - t0
sample = synth.sample(len(train), rng=seed)
try:
    from privsynth.pipeline import consistent
    sample = consistent(sample, schema)
except ImportError:
    pass
sample.to_pickle(out)
import privsynth
assert privsynth.__file__.startswith(sys.argv[1]), privsynth.__file__
print(json.dumps({"seconds": seconds}))
"""


def views() -> dict[str, pd.DataFrame]:
    from privsynth.example.hospital import write_example_export

    schema = load_schema(SCHEMA)
    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        write_example_export(Path(tmp), 6000, 0)
        out["example hospital 6,000"] = build_patient_view([tmp], schema)[0]
    out["Synthea 200"] = build_patient_view([SHARED / "fhir" / "synthea-r4-smart-2019"], schema)[0]
    return out


def tvd3(real: np.ndarray, synthetic: np.ndarray, sizes: tuple[int, ...], triples: list[tuple[int, ...]]) -> float:
    from benchmarks.common import tvd3 as tvd

    return tvd(real, synthetic, sizes, triples)


def tstr(train: pd.DataFrame, test: pd.DataFrame, synthetic: pd.DataFrame, schema: Schema) -> tuple[float, float]:
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.metrics import balanced_accuracy_score, roc_auc_score

    target = schema.target or schema.learned_columns[0].name
    t = [c.name for c in schema.learned_columns].index(target)
    features = _feature_columns(schema, target)
    x_syn, _ = encode(synthetic, schema)
    x_test, _ = encode(test, schema)
    model = HistGradientBoostingClassifier(max_iter=100, random_state=0)
    model.fit(x_syn[:, features], x_syn[:, t] == 1)
    scores = model.predict_proba(x_test[:, features])[:, 1]
    y = x_test[:, t] == 1
    if y.all() or not y.any():  # a test set without both values says nothing
        return float("nan"), float("nan")
    return float(balanced_accuracy_score(y, scores > 0.5)), float(roc_auc_score(y, scores))


def evaluate(train: pd.DataFrame, test: pd.DataFrame, synthetic: pd.DataFrame, schema: Schema,
             triples: list[tuple[int, ...]]) -> dict[str, object]:
    real_panel = rates(train, schema, schema.plausibility)
    syn_panel = rates(synthetic, schema, schema.plausibility)
    panel = []
    for rule, r, s in zip(schema.plausibility, real_panel, syn_panel):
        real_rate, syn_rate = (r[0] / r[1] if r[1] else 0.0), (s[0] / s[1] if s[1] else 0.0)
        panel.append((rule.text, real_rate, syn_rate, syn_rate <= max(2 * real_rate, 0.01)))
    sizes = tuple(c.domain.size for c in schema.learned_columns if c.domain is not None)
    real_codes, _ = encode(train, schema)
    syn_codes, _ = encode(synthetic, schema)
    names = [c.name for c in schema.learned_columns]
    groups: dict[str, tuple[float, float]] = {}  # protected group (public code, as the bias check groups) -> shares
    for attr in schema.protected:
        j, col = names.index(attr), schema.column(attr)
        assert col.domain is not None
        real_share = np.bincount(real_codes[:, j], minlength=col.domain.size) / len(real_codes)
        syn_share = np.bincount(syn_codes[:, j], minlength=col.domain.size) / max(1, len(syn_codes))
        for code, label in enumerate(col.domain.labels):
            if real_share[code] >= GROUP_FLOOR and label != "missing":
                groups[f"{attr}={label}"] = (float(real_share[code]), float(syn_share[code]))
    balanced, auc = tstr(train, test, synthetic, schema)
    weight, height, bmi = (pd.to_numeric(synthetic[c], errors="coerce") for c in ("body_weight", "body_height", "bmi"))
    mismatch = int(((bmi - weight / (height / 100) ** 2).abs() > 5).sum())
    return {"hard": int(violations(synthetic, schema, schema.rules).sum()), "panel": panel, "bmi": mismatch,
            "groups": groups, "tvd3": tvd3(real_codes, syn_codes, sizes, triples),
            "balanced": balanced, "auc": auc}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--epsilons", type=float, nargs="+", default=[1.0, 3.0])
    parser.add_argument("--baseline", type=Path, default=None, help="a checkout of privsynth to compare with")
    args = parser.parse_args()
    schema = load_schema(SCHEMA)
    judged = schema  # what both versions are evaluated on
    if args.baseline:
        judged = common(schema, load_schema(args.baseline / "schemas" / "patient-core.yaml"))
    d = len(judged.learned_columns)
    rng = np.random.default_rng(0)
    all_triples = [tuple(sorted(rng.choice(d, 3, replace=False).tolist())) for _ in range(TRIPLES)]
    rows, panel_rows = [], []
    for name, view in views().items():
        order = np.random.default_rng(1).permutation(len(view))
        cut = int(0.8 * len(view))
        train, test = view.iloc[order[:cut]].reset_index(drop=True), view.iloc[order[cut:]].reset_index(drop=True)
        for epsilon in args.epsilons:
            for version in (["before"] if args.baseline else []) + ["after"]:
                results, seconds = [], []
                for seed in range(args.seeds):
                    if version == "after":
                        t0 = time.perf_counter()
                        synth = Synthesizer(schema, epsilon).fit(train)
                        seconds.append(time.perf_counter() - t0)
                        synthetic = synth.sample(len(train), rng=seed)
                    else:
                        synthetic, took = baseline(args.baseline, train, epsilon, seed)
                        seconds.append(took)
                    results.append(evaluate(train, test, synthetic, judged, all_triples))
                panel_ok = [sum(r["panel"][k][3] for r in results) for k in range(len(judged.plausibility))]
                rows.append([name, f"{epsilon:g}", version, max(r["hard"] for r in results),
                             max(r["bmi"] for r in results),
                             f"{sum(panel_ok)}/{len(panel_ok) * args.seeds}", groups_summary(results),
                             f"{np.mean([r['tvd3'] for r in results]):.3f}",
                             f"{np.nanmean([r['balanced'] for r in results]):.3f}",
                             f"{np.nanmean([r['auc'] for r in results]):.3f}", f"{np.mean(seconds):.1f}"])
                for k, rule in enumerate(judged.plausibility):
                    panel_rows.append([name, f"{epsilon:g}", version, rule.text,
                                       f"{100 * results[0]['panel'][k][1]:.1f}%",
                                       "/".join(f"{100 * r['panel'][k][2]:.1f}" for r in results) + " %",
                                       f"{panel_ok[k]}/{args.seeds}"])
                print(f"{name} eps {epsilon:g} {version} done", flush=True)
    table("Coherence, small groups and utility (seeds averaged; hard = max over seeds)",
          ["data", "eps", "version", "rows breaking hard rules", "BMI != w/h2 (>5)", "panel rules met",
           "protected groups within x2 (missed: real -> synthetic shares per seed)",
           "3-way TVD", "TSTR bal. acc.", "TSTR AUC", "fit s"], rows)
    table("Plausibility panel: real rate, synthetic rate per seed, seeds meeting max(2 x real, 1%)",
          ["data", "eps", "version", "rule", "real", "synthetic", "met"], panel_rows)
    table("rhc (5,735 patients): protected groups with >= 0.3% of real patients within a factor of 2",
          ["eps", "groups within x2 (missed: real -> synthetic shares per seed)"],
          [[f"{e:g}", rhc_groups(e, args.seeds)] for e in args.epsilons])


def common(schema: Schema, other: Schema) -> Schema:
    """``schema`` restricted to the learned columns ``other`` has too, with the rules over
    those alone: the columns and rules both versions of a before/after comparison learn."""
    import dataclasses

    names = [c.name for c in schema.learned_columns if c.name in {o.name for o in other.learned_columns}]
    kept = set(names) | {c.name for c in schema.derived_columns}
    narrow = schema.only(names)
    return dataclasses.replace(narrow, constraints=tuple(r for r in narrow.constraints if r.columns <= kept),
                               plausibility=tuple(r for r in narrow.plausibility if r.columns <= kept))


def rhc_groups(epsilon: float, seeds: int) -> str:
    from privsynth.table import read_table

    schema = load_schema(ROOT / "schemas" / "tabular" / "rhc.yaml")
    view, _ = read_table([SHARED / "tabular" / "rhc.csv"], schema)
    codes, _ = encode(view, schema)
    names = [c.name for c in schema.learned_columns]
    results = []
    for seed in range(seeds):
        synthetic, _ = encode(Synthesizer(schema, epsilon).fit(view).sample(len(view), rng=seed), schema)
        groups = {}
        for attr in ("race", "sex"):
            j, col = names.index(attr), schema.column(attr)
            assert col.domain is not None
            real = np.bincount(codes[:, j], minlength=col.domain.size) / len(codes)
            syn = np.bincount(synthetic[:, j], minlength=col.domain.size) / len(synthetic)
            groups |= {f"{attr}={label}": (float(real[k]), float(syn[k])) for k, label in enumerate(col.domain.labels)
                       if real[k] >= GROUP_FLOOR and label != "missing"}
        results.append({"groups": groups})
    return groups_summary(results)


def groups_summary(results: list[dict]) -> str:
    """How many (group, seed) pairs of protected groups with >= 0.3% of real patients are
    within a factor of 2, and the groups that missed in any seed."""
    total = hits = 0
    missed: dict[str, list[str]] = {}
    for r in results:
        for group, (real, synthetic) in r["groups"].items():
            total += 1
            if 0.5 <= synthetic / real <= 2.0:
                hits += 1
            else:
                missed.setdefault(f"{group} {100 * real:.1f}%", []).append(f"{100 * synthetic:.1f}")
    text = "; ".join(f"{g} -> {'/'.join(v)}%" for g, v in sorted(missed.items()))
    return f"{hits}/{total}" + (f" ({text})" if text else "")


def baseline(checkout: Path, train: pd.DataFrame, epsilon: float, seed: int) -> tuple[pd.DataFrame, float]:
    with tempfile.TemporaryDirectory() as tmp:
        data, out = Path(tmp) / "train.pkl", Path(tmp) / "sample.pkl"
        train.to_pickle(data)
        run = subprocess.run([sys.executable, "-c", BASELINE_FIT, str(checkout), str(data), str(epsilon), str(seed),
                              str(out)], capture_output=True, text=True, check=True)
        seconds = json.loads(run.stdout.strip().splitlines()[-1])["seconds"]
        sample = pd.read_pickle(out)
    return sample, seconds


if __name__ == "__main__":
    main()
