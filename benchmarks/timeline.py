"""Patient histories: the timeline generator against the flattening baseline and the real data.

    python -m benchmarks.timeline [--patients 6000] [--epsilons 1 3] [--repeats R] [--synthea DIR]
                                  [--scale 100000]

On the example hospital (its patients have seeded histories: onset -> lab series ->
medications -> admissions), the real export is split 80/20 by patient. ``patient-core``
(today's writer: one row, encounters on random dates) and ``patient-timeline`` (yearly
timeline cells, histories placed by privsynth.history.write) are fitted on the 80 % at each
epsilon, and every figure is computed the same way from FHIR output (real, baseline, new):

- events per patient per stream (encounters, conditions, the two timeline labs,
  medications, procedures of the schema's groups): TVD of the binned counts;
- next-event-type distribution (events of the last 6 years in date order): TVD of
  P(next | current), weighted by the real frequency of the current type;
- gap between consecutive encounters: TVD of binned days;
- time from a heart-failure diagnosis (in the ten-year window) to the first inpatient stay
  after it (Kaplan-Meier, censored at the reference date): share admitted by 1, 2 and 5 years;
- HbA1c change: mean 6-18 months after a diabetes diagnosis minus mean at it (+-90 days);
- TSTR: predict an inpatient stay in the last year from the history before it (yearly
  counts per stream, age, sex); logistic regression trained on synthetic, AUC on the real 20 %.

"Floor" is the same TVD between the real data and a bootstrap resample of it of the
synthetic size: what sampling alone costs. ``--scale N`` times ingest, fit, sampling and
writing of N example patients with histories (seconds, peak memory, events/s).
"""

from __future__ import annotations

import argparse
import datetime as dt
import glob
import gzip
import json
import multiprocessing
import os
import shutil
import tempfile
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
REFERENCE = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
COUNT_BINS = [0, 1, 2, 3, 5, 9, 17, 33, 10**9]
GAP_BINS = [0, 1, 7, 30, 90, 180, 365, 730, 10**9]
STREAMS = ("enc", "cond", "obs", "med", "proc")


def _groups() -> dict[tuple[str, str], str]:
    """(system, code) -> event label, from the timeline schema's public code groups."""
    from privsynth.schema.load import load_schema

    schema = load_schema(ROOT / "schemas" / "patient-timeline.yaml")
    labels: dict[tuple[str, str], str] = {}
    for col in schema.learned_columns:
        if col.source.resource == "Condition" and col.source.summary == "exists" and col.source.codes:
            group = schema.code_groups[col.source.codes]
            labels.update({(group.system, c.code): f"cond:{col.name}" for c in group.codes})
    assert schema.timeline is not None
    for stream in schema.timeline.streams:
        for g in stream.groups:
            if g.codes:
                group = schema.code_groups[g.codes]
                prefix = {"Observation": "obs", "MedicationRequest": "med", "Procedure": "proc"}[stream.resource]
                labels.update({(group.system, c.code): f"{prefix}:{g.name}" for c in group.codes})
    return labels


def _date(r: dict[str, Any]) -> str | None:
    t = r["resourceType"]
    if t == "Encounter":
        return (r.get("period") or {}).get("start")
    if t == "Procedure":
        return (r.get("performedPeriod") or {}).get("start") or r.get("performedDateTime")
    return r.get({"Condition": "onsetDateTime", "Observation": "effectiveDateTime",
                  "MedicationRequest": "authoredOn"}.get(t, ""))


def load(paths: list[Path]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Events (pid, label, stream, when, value) and patients (pid, birth, male) of FHIR
    Bundles or NDJSON files."""
    labels = _groups()
    events: list[tuple[str, str, str, Any, float]] = []
    patients: list[tuple[str, Any, bool]] = []

    def take(r: dict[str, Any]) -> None:
        t = r["resourceType"]
        if t == "Patient":
            patients.append((r["id"], r.get("birthDate"), r.get("gender") == "male"))
            return
        ref = (r.get("subject") or {}).get("reference", "")
        pid = ref.rsplit(":", 1)[-1].rsplit("/", 1)[-1]
        when = _date(r)
        if when is None:
            return
        value = np.nan
        if t == "Encounter":
            cls = r["class"]["code"]
            label = "enc:" + ("IMP" if cls in ("IMP", "ACUTE", "NONAC") else cls)
        else:
            concept = r.get("code") or r.get("medicationCodeableConcept") or {}
            label = next((labels[(c.get("system"), c.get("code"))] for c in concept.get("coding", [])
                          if (c.get("system"), c.get("code")) in labels), "")
            if not label:
                return
            value = float((r.get("valueQuantity") or {}).get("value", np.nan))
        events.append((pid, label, label.split(":")[0], when, value))

    for path in paths:
        if path.is_dir():
            files = sorted(glob.glob(str(path / "*.ndjson*"))) + sorted(glob.glob(str(path / "*.json*")))
        else:
            files = [str(path)]
        for f in files:
            if f.endswith("manifest.json"):
                continue
            data = Path(f).read_bytes()
            if f.endswith(".gz"):
                data = gzip.decompress(data)
                f = f[:-3]
            if f.endswith(".ndjson"):
                for line in data.splitlines():
                    if line.strip():
                        take(orjson.loads(line))
            else:
                doc = orjson.loads(data)
                for e in doc.get("entry", []) if doc.get("resourceType") == "Bundle" else [{"resource": doc}]:
                    take(e["resource"])
    ev = pd.DataFrame(events, columns=["pid", "label", "stream", "when", "value"])
    ev["when"] = pd.to_datetime(ev["when"], utc=True, format="ISO8601")
    pts = pd.DataFrame(patients, columns=["pid", "birth", "male"])
    pts["birth"] = pd.to_datetime(pts["birth"], utc=True)
    return ev, pts


def _tvd(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a / max(a.sum(), 1e-12), b / max(b.sum(), 1e-12)
    return float(0.5 * np.abs(a - b).sum())


def _hist(values: np.ndarray, bins: list[int]) -> np.ndarray:
    return np.histogram(values, bins=bins)[0].astype(float)


def events_per_patient(ev: pd.DataFrame, pts: pd.DataFrame, stream: str) -> np.ndarray:
    recent = ev[(ev["stream"] == stream) & (ev["when"] >= REFERENCE - pd.DateOffset(years=6))]
    counts = recent.groupby("pid").size().reindex(pts["pid"], fill_value=0).to_numpy()
    return _hist(counts, COUNT_BINS)


def transitions(ev: pd.DataFrame) -> dict[str, Counter[str]]:
    recent = ev[ev["when"] >= REFERENCE - pd.DateOffset(years=6)].sort_values(["pid", "when", "label"])
    out: dict[str, Counter[str]] = defaultdict(Counter)
    pid, label = recent["pid"].to_numpy(), recent["label"].to_numpy()
    for i in range(len(pid) - 1):
        if pid[i] == pid[i + 1]:
            out[label[i]][label[i + 1]] += 1
    return out


def transition_error(real: dict[str, Counter[str]], synth: dict[str, Counter[str]]) -> float:
    total = sum(sum(c.values()) for c in real.values())
    error = 0.0
    for cur, nxt in real.items():
        keys = sorted(set(nxt) | set(synth.get(cur, {})))
        a = np.array([nxt[k] for k in keys], float)
        b = np.array([synth.get(cur, Counter())[k] for k in keys], float)
        error += sum(nxt.values()) / total * (_tvd(a, b) if b.sum() else 1.0)
    return error


def gaps(ev: pd.DataFrame) -> np.ndarray:
    enc = ev[(ev["stream"] == "enc") & (ev["when"] >= REFERENCE - pd.DateOffset(years=10))].sort_values(
        ["pid", "when"])
    days = enc.groupby("pid")["when"].diff().dt.total_seconds().dropna().to_numpy() / 86400
    return _hist(days, GAP_BINS)


def km_to_admission(ev: pd.DataFrame) -> list[float]:
    onset = ev[ev["label"] == "cond:heart_failure"].groupby("pid")["when"].min()
    onset = onset[onset >= REFERENCE - pd.DateOffset(years=10)]
    imp = ev[ev["label"] == "enc:IMP"][["pid", "when"]]
    times, observed = [], []
    for pid, t0 in onset.items():
        after = imp[(imp["pid"] == pid) & (imp["when"] > t0)]["when"]
        if len(after):
            times.append((after.min() - t0).days / 365.25)
            observed.append(1)
        else:
            times.append((REFERENCE - t0).days / 365.25)
            observed.append(0)
    t, o = np.array(times), np.array(observed)
    out = []
    for horizon in (1, 2, 5):
        surv = 1.0
        for u in np.unique(t[(o == 1) & (t <= horizon)]):
            at_risk = (t >= u).sum()
            surv *= 1 - ((t == u) & (o == 1)).sum() / at_risk
        out.append(1 - surv)  # share admitted by the horizon
    return out


def hba1c_change(ev: pd.DataFrame) -> tuple[float, int]:
    onset = ev[ev["label"] == "cond:diabetes"].groupby("pid")["when"].min()
    a1c = ev[ev["label"] == "obs:hba1c"]
    diffs = []
    for pid, series in a1c.groupby("pid"):
        if pid not in onset.index:
            continue
        days = (series["when"] - onset[pid]).dt.days.to_numpy()
        values = series["value"].to_numpy()
        at, later = values[np.abs(days) <= 90], values[(days >= 180) & (days <= 545)]
        if len(at) and len(later):
            diffs.append(later.mean() - at.mean())
    return (float(np.mean(diffs)) if diffs else float("nan")), len(diffs)


def features(ev: pd.DataFrame, pts: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Yearly counts per stream in years 2-6 before the reference, age, sex; label: an
    inpatient stay in the last year."""
    last = REFERENCE - pd.DateOffset(years=1)
    years = ((REFERENCE - ev["when"]).dt.days // 365).clip(upper=99)
    ev = ev.assign(year=years)
    cols = []
    for stream in STREAMS:
        for y in range(1, 6):
            sub = ev[(ev["stream"] == stream) & (ev["year"] == y)]
            cols.append(sub.groupby("pid").size().reindex(pts["pid"], fill_value=0).to_numpy())
    imp_before = ev[(ev["label"] == "enc:IMP") & (ev["when"] < last)].groupby("pid").size()
    cols.append(imp_before.reindex(pts["pid"], fill_value=0).to_numpy())
    age = ((REFERENCE - pts["birth"]).dt.days / 365.25).to_numpy()
    x = np.column_stack([np.log1p(np.column_stack(cols)), age / 100, pts["male"].to_numpy(float)])
    y = ev[(ev["label"] == "enc:IMP") & (ev["when"] >= last)].groupby("pid").size()
    return x, (y.reindex(pts["pid"], fill_value=0).to_numpy() > 0).astype(int)


def tstr(train: tuple[pd.DataFrame, pd.DataFrame], test: tuple[pd.DataFrame, pd.DataFrame]) -> float:
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score

    x, y = features(*train)
    xt, yt = features(*test)
    if len(set(y)) < 2 or len(set(yt)) < 2:
        return float("nan")
    model = LogisticRegression(max_iter=2000).fit(x, y)
    return float(roc_auc_score(yt, model.predict_proba(xt)[:, 1]))


def evaluate(real: tuple[pd.DataFrame, pd.DataFrame], synth: tuple[pd.DataFrame, pd.DataFrame],
             test: tuple[pd.DataFrame, pd.DataFrame]) -> dict[str, Any]:
    (rev, rpts), (sev, spts) = real, synth
    per_stream = {s: _tvd(events_per_patient(rev, rpts, s), events_per_patient(sev, spts, s)) for s in STREAMS}
    km = km_to_admission(sev)
    change, n = hba1c_change(sev)
    return {"events/patient TVD": float(np.mean(list(per_stream.values()))), "per stream": per_stream,
            "transition error": transition_error(transitions(rev), transitions(sev)),
            "gap TVD": _tvd(gaps(rev), gaps(sev)), "KM admitted 1/2/5 y": km, "HbA1c change": (change, n),
            "TSTR AUC": tstr(synth, test)}


def resample(ev: pd.DataFrame, pts: pd.DataFrame, n: int, rng: np.random.Generator) -> tuple[pd.DataFrame,
                                                                                              pd.DataFrame]:
    pick = rng.choice(len(pts), size=n, replace=True)
    new_pts = pts.iloc[pick].reset_index(drop=True)
    new_pts["new"] = [f"b{i}" for i in range(n)]
    parts = []
    grouped = dict(tuple(ev.groupby("pid")))
    for old, new in zip(new_pts["pid"], new_pts["new"]):
        if old in grouped:
            parts.append(grouped[old].assign(pid=new))
    new_pts["pid"] = new_pts["new"]
    return pd.concat(parts, ignore_index=True), new_pts.drop(columns="new")


def split(export: Path, work: Path, rng: np.random.Generator) -> tuple[Path, Path]:
    files = sorted(export.glob("*.json*"))
    pick = rng.random(len(files)) < 0.8
    train, test = work / "train", work / "test"
    for d in (train, test):
        d.mkdir()
    for f, t in zip(files, pick):
        os.symlink(f, (train if t else test) / f.name)
    return train, test


def _mean(results: list[dict[str, Any]]) -> dict[str, Any]:
    """Repeated fits (fresh noise each) as one row: means, and the spread of the transition
    error and the HbA1c change (``sd``; nan where no synthetic patient has both values)."""
    shifts = [r["HbA1c change"][0] for r in results if not np.isnan(r["HbA1c change"][0])]
    out: dict[str, Any] = {}
    for key, first in results[0].items():
        values = [r[key] for r in results]
        if isinstance(first, dict):
            out[key] = {k: float(np.mean([v[k] for v in values])) for k in first}
        elif key == "HbA1c change":
            n = round(float(np.mean([v[1] for v in values])))
            out[key] = (float(np.mean(shifts)) if shifts else float("nan"), n)
        elif isinstance(first, list | tuple):
            out[key] = [float(x) for x in np.mean(np.asarray(values, dtype=float), axis=0)]
        else:
            out[key] = float(np.mean(values))
    out["sd"] = {"transition error": float(np.std([r["transition error"] for r in results])),
                 "HbA1c change": float(np.std(shifts)) if shifts else float("nan")}
    out["runs"] = len(results)
    return out


def compare(export: Path, epsilons: list[float], label: str, repeats: int = 1) -> None:
    from privsynth.pipeline import synthesize
    from privsynth.schema.load import load_schema

    core = load_schema(ROOT / "schemas" / "patient-core.yaml")
    timeline = load_schema(ROOT / "schemas" / "patient-timeline.yaml")
    work = Path(tempfile.mkdtemp(prefix="privsynth-timeline-"))
    try:
        rng = np.random.default_rng(0)
        train, test = split(export, work, rng)
        real, held = load([train]), load([test])
        rows: list[tuple[str, dict[str, Any]]] = []
        floor = evaluate(real, resample(*real, len(real[1]), rng), held)
        floor["TSTR AUC"] = tstr(real, held)
        rows.append(("real (floor / TRTR)", floor))
        for epsilon in epsilons:
            for name, schema in (("flattening (patient-core)", core), ("timeline (patient-timeline)", timeline)):
                results = []
                for run in range(repeats):  # the DP noise is fresh on every fit
                    out = work / f"{name.split()[0]}-{epsilon}-{run}"
                    t0 = time.perf_counter()
                    synthesize([train], schema, out, epsilon=epsilon, seed=1 + run)
                    seconds = time.perf_counter() - t0
                    result = evaluate(real, load([out / "fhir"]), held)
                    result["seconds"] = seconds
                    results.append(result)
                    shutil.rmtree(out)
                rows.append((f"{name}, eps {epsilon:g}", _mean(results)))
        print(f"\n## {label}: {len(real[1])} train / {len(held[1])} test patients"
              + (f"; each synthetic row the mean of {repeats} fits (± sd)" if repeats > 1 else "") + "\n")
        print("| | events/patient TVD | transition error | gap TVD | KM admitted by 1/2/5 y | "
              "HbA1c change (n) | TSTR AUC | seconds |")
        print("|---|---|---|---|---|---|---|---|")
        real_km, (real_change, real_n) = km_to_admission(real[0]), hba1c_change(real[0])
        print(f"| real | – | – | – | {'/'.join(f'{v:.2f}' for v in real_km)} | {real_change:+.2f} ({real_n}) "
              f"| – | – |")
        for name, r in rows:
            change, n = r["HbA1c change"]
            sd = r.get("sd") if repeats > 1 else None
            error = f"{r['transition error']:.3f}" + (f" ± {sd['transition error']:.3f}" if sd else "")
            shift = f"{change:+.2f}" + (f" ± {sd['HbA1c change']:.2f}" if sd else "")
            print(f"| {name} | {r['events/patient TVD']:.3f} | {error} | {r['gap TVD']:.3f} | "
                  f"{'/'.join(f'{v:.2f}' for v in r['KM admitted 1/2/5 y'])} | {shift} ({n}) | "
                  f"{r['TSTR AUC']:.3f} | {r.get('seconds', float('nan')):.0f} |")
        for epsilon in epsilons:
            base = dict(rows)[f"flattening (patient-core), eps {epsilon:g}"]["transition error"]
            new = dict(rows)[f"timeline (patient-timeline), eps {epsilon:g}"]["transition error"]
            print(f"\ntransition error at eps {epsilon:g}: {new:.3f} vs {base:.3f} ({new / base - 1:+.0%})", end="")
        print()
        print("\nevents/patient TVD per stream:")
        for name, r in rows:
            print(f"  {name}: " + ", ".join(f"{k} {v:.3f}" for k, v in r["per stream"].items()))
    finally:
        shutil.rmtree(work, ignore_errors=True)


def integrity(fhir: Path) -> dict[str, int]:
    """Over a whole NDJSON output: resources, references that resolve to nothing (subject,
    encounter), and dated events outside their patient's life (before birth, after the
    reference date)."""
    births: dict[str, str] = {}
    ids: set[str] = set()
    late = REFERENCE.date().isoformat()
    with (fhir / "Patient.ndjson").open("rb") as fh:
        for line in fh:
            p = orjson.loads(line)
            births[p["id"]] = p["birthDate"]
    counts = {"resources": len(births), "dangling references": 0, "events outside life": 0}
    files = sorted(f for f in fhir.glob("*.ndjson") if f.stem != "Patient")
    encounters = fhir / "Encounter.ndjson"
    with encounters.open("rb") as fh:
        for line in fh:
            ids.add(orjson.loads(line)["id"])
    for f in files:
        with f.open("rb") as fh:
            for line in fh:
                r = orjson.loads(line)
                counts["resources"] += 1
                pid = r["subject"]["reference"].split("/", 1)[1]
                enc = (r.get("encounter") or {}).get("reference", "Encounter/-").split("/", 1)[1]
                if pid not in births or ("encounter" in r and enc not in ids):
                    counts["dangling references"] += 1
                when = (_date(r) or "")[:10]
                if pid in births and when and not births[pid] <= when <= late:
                    counts["events outside life"] += 1
    return counts


def scale(n: int) -> None:
    import resource

    from privsynth.example.hospital import write_example_export
    from privsynth.fhir.output import use_workers
    from privsynth.pipeline import synthesize
    from privsynth.schema.load import load_schema

    use_workers()  # as the command line does (this module is guarded)
    schema = load_schema(ROOT / "schemas" / "patient-timeline.yaml")
    work = Path(tempfile.mkdtemp(prefix="privsynth-timeline-scale-"))
    try:
        t0 = time.perf_counter()
        # in a child process, so that the peak memory below is the synthesizer's own
        maker = multiprocessing.get_context("spawn").Process(target=write_example_export, args=(work / "export", n, 0))
        maker.start()
        maker.join()
        made = time.perf_counter() - t0
        t0 = time.perf_counter()
        result = synthesize([work / "export"], schema, work / "out", epsilon=1, seed=1)
        total = time.perf_counter() - t0
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kB on Linux
        # the largest child: the export maker before, the validating writers during the run
        child = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
        events = sum(result.resources_out.values())
        ingest = json.loads(result.internal_report.read_text())["ingest"]
        read = sum(ingest["resources_read"].values())
        print(f"\n## Scale: {n:,} example patients with histories (export written in {made:.0f} s)\n")
        print("| step | seconds |\n|---|---|")
        for step, seconds in result.seconds.items():
            print(f"| {step} | {seconds:.1f} |")
        print(f"| **end to end** | **{total:.1f}** |")
        print(f"\nresources read: {read:,} ({read / result.seconds['ingest']:,.0f}/s in ingest); "
              f"events in the timeline windows: {sum(s['events_in_window'] for s in ingest['timeline'].values()):,}")
        checked = integrity(work / "out" / "fhir")
        print("integrity of the whole output: " + ", ".join(f"{k} {v:,}" for k, v in checked.items())
              + " (every resource was validated with its R4 model before it was written)")
        print(f"resources written: {events:,} ({events / result.seconds['write']:,.0f}/s in write, "
              f"{events / total:,.0f}/s end to end); peak memory (max RSS) "
              f"{peak:,.0f} MB (largest child process {child:,.0f} MB)")
    finally:
        shutil.rmtree(work, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--patients", type=int, default=6000, help="0: only the --scale run")
    parser.add_argument("--epsilons", type=float, nargs="+", default=[1.0, 3.0])
    parser.add_argument("--synthea", type=Path, default=Path("/work/shared/data/fhir/synthea-r4-smart-2019/bundles"))
    parser.add_argument("--scale", type=int, default=0, help="also time N example patients end to end")
    parser.add_argument("--repeats", type=int, default=1, help="fits per row (fresh noise each): means and sd")
    args = parser.parse_args()
    from privsynth.example.hospital import write_example_export

    if args.patients:
        with tempfile.TemporaryDirectory() as tmp:
            export = write_example_export(Path(tmp) / "export", args.patients, 0)
            compare(export, args.epsilons, f"Example hospital ({args.patients} patients)", args.repeats)
    if args.patients and args.synthea.is_dir():
        compare(args.synthea, args.epsilons, "Synthea 2019 sample (200 patients; data end 2021-03-31)",
                args.repeats)
    if args.scale:
        scale(args.scale)


if __name__ == "__main__":
    main()
