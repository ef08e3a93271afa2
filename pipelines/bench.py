"""The issue-3 benchmark: training time and batch throughput at scale, and quality on real data.

    .venv/bin/python -m pipelines.bench [--sizes 10000,100000,1000000] [--skip-x-education]   (or: make bench)

1. Synthetic CRM (`pipelines.synthetic.generate_crm`, CSVs in a temporary folder) per size:
   training time with the params.yaml model settings, split into ingest, labels + features and
   fit; batch throughput of `pipelines.score.score_file` on the leads CSV with its activities,
   without explanations; and the ratio to the raw `scorer.booster.predict` on the same encoded
   feature matrix, the physical limit of the path. Beside it, the model path alone
   (`LeadScorer.predict` on the built feature frame: encoding, both boosters, blend, calibration,
   tiers) against the same raw predict, so the file's reading and feature building are told apart
   from the inference overhead.
2. X Education (params.x_education.yaml): seeded stratified k-fold cross-validation. Per fold,
   leadscore and the three peers are fit on the same rows: train / validation / calibration are
   cut from the training folds in the evaluate.split proportions, the held-out fold is the test.
   The fixed seeded split `leadscore train` uses is reported beside it.

Figures are measured, never asserted; a markdown summary closes the output. Times are wall clock
(plus process CPU, which a busy machine inflates less); the load average is printed with them.
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

if TYPE_CHECKING:  # imported lazily below, after OMP_WAIT_POLICY is set
    from models.scorer import LeadScorer
    from models.splits import Split
    from pipelines.config import Params, SplitParams
    from pipelines.dataset import TrainingSet
    from pipelines.evaluate import Evaluation
    from pipelines.score import BatchSummary

DEFAULT_SIZES = (10_000, 100_000, 1_000_000)
SYNTHETIC_SEED = 7
TRAIN_TARGET_SECONDS = 300  # 1M leads
THROUGHPUT_TARGET = 50_000  # leads/s
RAW_PREDICT_TARGET_RATIO = 3.0
X_EDUCATION_TARGETS = {"roc_auc": 0.88, "ece": 0.03}
TOP_SHARE = 0.2  # the capture column of the X Education table
TIMED_RUNS = 3  # score_file, raw predict and the model path: each the fastest of this many runs


@dataclass
class Stopwatch:
    """Wall and process-CPU seconds of one stage."""

    wall: float = 0.0
    cpu: float = 0.0

    def __enter__(self) -> "Stopwatch":
        self._wall, self._cpu = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *exc) -> None:
        self.wall = time.perf_counter() - self._wall
        self.cpu = time.process_time() - self._cpu

    def __str__(self) -> str:
        return f"{self.wall:8.1f} s wall ({self.cpu:.1f} s CPU)"


def _load() -> str:
    one, five, _ = os.getloadavg()
    return f"load {one:.1f}/{five:.1f} (1/5 min) on {os.cpu_count()} cores"


def _say(message: str) -> None:
    print(message, flush=True)


# ---------------------------------------------------------------- 1. synthetic CRM at scale


def bench_synthetic(n_leads: int, work_dir: Path) -> dict:
    """Generate, train and batch-score one synthetic CRM of `n_leads` leads; return the figures."""
    from models.metrics import evaluate_scores
    from models.splits import make_split
    from pipelines.train import fit_model
    from pipelines.config import PROJECT_ROOT, load_params
    from pipelines.dataset import assemble
    from pipelines.evaluate import evaluate_reasons
    from pipelines.ingest import load_crm
    from pipelines.score import score_file
    from pipelines.synthetic import generate_crm, write_crm

    out = work_dir / f"crm_{n_leads}"
    with Stopwatch() as made:
        tables = generate_crm(n_leads, seed=SYNTHETIC_SEED)
        n_activities = len(tables["activities"])
        paths = write_crm(tables, out)
        del tables
    _say(f"\n== {n_leads:,} leads, {n_activities:,} activities (generated and written in {made.wall:.0f} s); {_load()}")
    params = load_params(
        PROJECT_ROOT / "params.yaml",
        overrides={f"data.{name}": str(path) for name, path in paths.items()},
    )

    with Stopwatch() as ingest:
        crm = load_crm(params)
    _say(f"  ingest            {ingest}")
    with Stopwatch() as features:
        ts = assemble(params, crm=crm)
        split = make_split(ts.created_at, pd.Series(ts.y), params.evaluate.split, params.model.seed)
    _say(f"  labels + features {features}  ({len(ts.y):,} labelled rows, {split.kind_description} split)")
    with Stopwatch() as fit:
        scorer = fit_model(ts, split, params)
    _say(f"  fit               {fit}  (LightGBM weight {scorer.info['blend']['lightgbm_weight']}); {_load()}")

    test = ts.features.iloc[split.test]
    figures = {
        "leads": n_leads, "activities": n_activities, "labelled": len(ts.y), "ingest": ingest,
        "features": features, "fit": fit, "train": ingest.wall + features.wall + fit.wall,
        "train_cpu": ingest.cpu + features.cpu + fit.cpu,
        "test_auc": evaluate_scores(ts.y[split.test], scorer.predict_proba(test, ts.age_days[split.test]), ece_bins=10, top_fractions=[])[
            "roc_auc"
        ],
        "reason_top1": evaluate_reasons(scorer, test, ts.reasons.iloc[split.test]).get("reason_top1", float("nan")),
    }
    as_of = ts.as_of  # score as of the export's 'now', like training
    del crm, ts, test

    runs: list[BatchSummary] = []
    scoring = _fastest(lambda: runs.append(score_file(scorer, paths["leads"], out / "scores.csv",
                                                      activities_path=paths["activities"], as_of=as_of,
                                                      progress=False)))
    summary = runs[-1]
    figures |= {"score": scoring, "throughput": summary.rows_read / scoring.wall}
    _say(f"  score_file        {scoring}  {figures['throughput']:,.0f} leads/s ({summary.rows_scored:,} scored, "
         f"{summary.rows_rejected:,} rejected); {_load()}")

    raw_predict, reasons, model_path = _raw_predict(scorer, paths, as_of)
    figures["raw_predict"] = raw_predict
    if raw_predict is not None:
        figures["ratio"] = scoring.wall / raw_predict.wall
        figures["model_path_ratio"] = model_path.wall / raw_predict.wall
        _say(f"  raw predict       {raw_predict}  {n_leads / raw_predict.wall:,.0f} leads/s; "
             f"score_file takes {figures['ratio']:.1f}x as long")
    if reasons is not None:
        _say(f"  reason model      {reasons}  ({scorer.reasons.booster.current_iteration()} rounds x "
             f"{len(scorer.reasons.classes)} reasons, same matrix)")
    _say(f"  model path        {model_path}  (LeadScorer.predict on the built feature frame"
         + (f"; {figures['model_path_ratio']:.1f}x raw predict)" if raw_predict is not None else ")"))
    for path in out.iterdir():
        path.unlink()
    out.rmdir()
    return figures


def _raw_predict(
    scorer: LeadScorer, paths: dict[str, Path], as_of: pd.Timestamp
) -> tuple[Stopwatch | None, Stopwatch | None, Stopwatch]:
    """The conversion booster alone on the encoded matrix of every lead score_file scored; the
    reason model (the other booster every scored lead pays for) on the same matrix; and the whole
    model path, ``LeadScorer.predict``, on the feature frame that matrix encodes. Each the fastest
    of `TIMED_RUNS` runs: a single run of the small sizes is within noise of the first call's set-up."""
    read = {"dtype": str, "keep_default_na": False, "na_values": [""], "engine": "pyarrow"}
    features, _, ages = scorer.build(pd.read_csv(paths["leads"], **read), pd.read_csv(paths["activities"], **read), as_of)
    model_path = _fastest(partial(scorer.predict, features, ages))
    encoded = scorer.encoder.matrix(features) if scorer.encoder is not None else None
    del features
    raw = reasons = None
    if scorer.booster is not None:
        raw = _fastest(lambda: scorer.booster.predict(encoded, raw_score=True))
    else:
        _say("  raw predict       n/a: the blend uses the logistic model alone")
    if scorer.reasons is not None:
        reasons = _fastest(lambda: scorer.reasons.predict_proba(encoded))
    return raw, reasons, model_path


def _fastest(run, times: int = TIMED_RUNS) -> Stopwatch:
    """The Stopwatch of the fastest of `times` calls of `run`."""
    watches = []
    for _ in range(times):
        with Stopwatch() as watch:
            run()
        watches.append(watch)
    return min(watches, key=lambda w: w.wall)


# ---------------------------------------------------------------- 2. X Education cross-validation


def cross_validation_splits(y: np.ndarray, folds: int, split_params: SplitParams, seed: int) -> list[Split]:
    """One `Split` per fold: the fold is the test; train / validation / calibration come from the rest.

    Inside the training folds each class is shuffled with the seed and cut so validation and
    calibration keep their evaluate.split shares of all rows (0.15 of all = 0.15 / 0.8 of the
    training folds with 5 folds); evaluate.split.test is unused, the fold is the test.
    """
    from sklearn.model_selection import StratifiedKFold

    from models.splits import Split

    training_folds = 1.0 - 1.0 / folds
    shares = (split_params.validation / training_folds, split_params.calibration / training_folds)
    rng = np.random.default_rng(seed)
    out = []
    for rest, test in StratifiedKFold(folds, shuffle=True, random_state=seed).split(np.zeros(len(y)), y):
        parts: dict[str, list[np.ndarray]] = {"train": [], "validation": [], "calibration": []}
        for label in (0.0, 1.0):
            rows = rng.permutation(rest[y[rest] == label])
            n_val, n_cal = round(len(rows) * shares[0]), round(len(rows) * shares[1])
            parts["validation"].append(rows[:n_val])
            parts["calibration"].append(rows[n_val : n_val + n_cal])
            parts["train"].append(rows[n_val + n_cal :])
        kept = {name: np.sort(np.concatenate(chunks)) for name, chunks in parts.items()}
        out.append(Split(**kept, test=np.sort(test), kind="stratified",
                         positives={name: int(y[rows].sum()) for name, rows in {**kept, "test": test}.items()}))
    return out


def evaluate_split(ts: TrainingSet, split: Split, params: Params) -> Evaluation:
    """leadscore and the three peers fit on one split's train / validation / calibration rows, scored on its test rows."""
    from pipelines.train import fit_model
    from pipelines.evaluate import LEADSCORE, compare, fit_peers

    scorer = fit_model(ts, split, params)
    peers = fit_peers(ts.features, ts.y, split, params)
    return compare({LEADSCORE: scorer, **peers}, ts.features, ts.y, split, params, age_days=ts.age_days)


def bench_x_education(folds: int, params_path: Path) -> dict | None:
    """Cross-validated and fixed-split metrics on the X Education export; None when it is absent."""
    from models.metrics import evaluate_scores, fraction_key
    from models.splits import make_split
    from pipelines.config import load_params
    from pipelines.dataset import assemble
    from pipelines.ingest import load_crm

    top = f"capture_{fraction_key(TOP_SHARE)}"
    params = load_params(params_path, overrides={"evaluate.top_fractions": [TOP_SHARE]})
    source = params.resolve(params.data.leads)
    if not source.exists():
        _say(f"\n== X Education: skipped, export not found at {source} (see /work/shared/data/README.md)")
        return None
    ts = assemble(params, crm=load_crm(params))  # the export alone: no feedback store, whatever the machine holds
    mp = params.model
    _say(f"\n== X Education ({len(ts.y):,} labelled leads, {int(ts.y.sum()):,} converted): {folds}-fold seeded "
         f"stratified CV, seed {mp.seed}; calibration {mp.calibration}; {_load()}\n"
         f"  features: {', '.join(ts.features.columns)}; leakage warnings: {len(ts.leaks)}")
    columns = ["roc_auc", "pr_auc", "ece", top]
    tables, pooled_p, pooled_y = [], {}, []
    for i, split in enumerate(cross_validation_splits(ts.y, folds, params.evaluate.split, mp.seed)):
        with Stopwatch() as watch:
            evaluation = evaluate_split(ts, split, params)
        tables.append(evaluation.table[columns])
        pooled_y.append(evaluation.y_test)
        for name, p in evaluation.test_probabilities.items():
            pooled_p.setdefault(name, []).append(p)
        _say(f"  fold {i + 1}: {_one_line(tables[-1])}  ({watch.wall:.0f} s)")
    fixed = make_split(None, pd.Series(ts.y), params.evaluate.split, mp.seed)
    fixed_table = evaluate_split(ts, fixed, params).table[columns]
    _say(f"  fixed split: {_one_line(fixed_table)}")
    stacked = pd.concat(tables, keys=range(len(tables)), names=["fold", "scorer"])
    y_all = np.concatenate(pooled_y)
    pooled = pd.DataFrame.from_dict(
        {name: evaluate_scores(y_all, np.concatenate(ps), ece_bins=params.evaluate.ece_bins, top_fractions=[TOP_SHARE])
         for name, ps in pooled_p.items()},
        orient="index",
    )[columns]
    leadscore_p = np.concatenate(pooled_p["leadscore"])
    floor = {"fold": _ece_noise_floor(leadscore_p, len(y_all) // folds, params.evaluate.ece_bins, mp.seed),
             "pooled": _ece_noise_floor(leadscore_p, len(y_all), params.evaluate.ece_bins, mp.seed)}
    return {"mean": stacked.groupby(level="scorer", sort=False).mean(), "ece_floor": floor,
            "sd": stacked.groupby(level="scorer", sort=False).std(), "pooled": pooled, "fixed": fixed_table,
            "folds": folds, "top": top, "params": params, "rows": len(ts.y), "features": list(ts.features.columns),
            "leaks": len(ts.leaks)}


def _ece_noise_floor(p: np.ndarray, rows: int, bins: int, seed: int, draws: int = 200) -> float:
    """Mean ECE of a perfectly calibrated scorer on `rows` leads: outcomes drawn from p itself.

    ECE over a few thousand leads is never 0 even for perfect probabilities (each bin's observed
    rate is a sample); this is the floor a measured ECE should be read against.
    """
    from models.metrics import expected_calibration_error

    rng = np.random.default_rng(seed)
    eces = []
    for _ in range(draws):
        sample = rng.choice(p, size=rows, replace=False)
        eces.append(expected_calibration_error((rng.random(rows) < sample).astype(float), sample, bins=bins))
    return float(np.mean(eces))


def _one_line(table: pd.DataFrame) -> str:
    return ", ".join(f"{name} AUC {row['roc_auc']:.3f} ECE {row['ece']:.3f}" for name, row in table.iterrows())


# ---------------------------------------------------------------- report


def _model_settings() -> str:
    from pipelines.config import PROJECT_ROOT, load_params

    p = load_params(PROJECT_ROOT / "params.yaml")
    m, s = p.model, p.evaluate.split
    return (f"params.yaml model: candidates {m.candidates}, learning_rate {m.learning_rate}, max_rounds "
            f"{m.max_rounds}, early_stopping_rounds {m.early_stopping_rounds}, tuning_trials {m.tuning_trials}, "
            f"balance_classes {m.balance_classes}, calibration {m.calibration}, reason_model {m.reason_model}; "
            f"split validation {s.validation} / calibration {s.calibration} / test {s.test} (out of time)")


def synthetic_markdown(rows: list[dict]) -> str:
    lines = [
        "| leads | activities | labelled | ingest s | labels+features s | fit s | train total s (CPU s) "
        "| test AUC | reason top-1 | score_file s (CPU s) | leads/s | raw predict s | score_file / raw "
        "| model path / raw |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        raw, ratio, model_ratio = r["raw_predict"], r.get("ratio"), r.get("model_path_ratio")
        lines.append(
            f"| {r['leads']:,} | {r['activities']:,} | {r['labelled']:,} | {r['ingest'].wall:.1f} "
            f"| {r['features'].wall:.1f} | {r['fit'].wall:.1f} | {r['train']:.1f} ({r['train_cpu']:.0f}) "
            f"| {r['test_auc']:.3f} | {r['reason_top1']:.3f} | {r['score'].wall:.1f} ({r['score'].cpu:.1f}) "
            f"| {r['throughput']:,.0f} | {'n/a' if raw is None else f'{raw.wall:.2f}'} "
            f"| {'n/a' if ratio is None else f'{ratio:.1f}x'} "
            f"| {'n/a' if ratio is None else f'{model_ratio:.1f}x'} |"
        )
    return "\n".join(lines)


def x_education_markdown(result: dict) -> str:
    top = result["top"]
    names = {"leadscore": "leadscore", "points_mql": "points (MQL rules)", "odoo_naive_bayes": "Odoo naive Bayes",
             "logistic_regression": "logistic regression"}
    lines = [
        f"| scorer | AUC (mean ± sd of {result['folds']} folds) | PR AUC | ECE (mean ± sd) | ECE pooled out-of-fold "
        f"| top-{TOP_SHARE:.0%} capture | fixed split AUC | fixed split ECE |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    mean, sd, pooled, fixed = result["mean"], result["sd"], result["pooled"], result["fixed"]
    for key in mean.index:
        lines.append(
            f"| {names.get(key, key)} | {mean.at[key, 'roc_auc']:.3f} ± {sd.at[key, 'roc_auc']:.3f} "
            f"| {mean.at[key, 'pr_auc']:.3f} | {mean.at[key, 'ece']:.3f} ± {sd.at[key, 'ece']:.3f} "
            f"| {pooled.at[key, 'ece']:.3f} | {mean.at[key, top]:.3f} | {fixed.at[key, 'roc_auc']:.3f} "
            f"| {fixed.at[key, 'ece']:.3f} |"
        )
    return "\n".join(lines)


def verdicts(rows: list[dict], xe: dict | None) -> list[str]:
    """Each issue-3 target, met or not, with the measured figure."""
    out = []
    biggest = max(rows, key=lambda r: r["leads"]) if rows else None
    if biggest is not None:
        verdict = "met" if biggest["train"] <= TRAIN_TARGET_SECONDS else "NOT met"
        if biggest["leads"] < 1_000_000:
            verdict = "not measured"
        out.append(f"- train 1M leads in <= {TRAIN_TARGET_SECONDS} s: {verdict} "
                   f"({biggest['leads']:,} leads: {biggest['train']:.0f} s)")
        out.append(f"- batch scoring >= {THROUGHPUT_TARGET:,} leads/s: "
                   + ", ".join(f"{r['leads']:,}: {r['throughput']:,.0f}" for r in rows)
                   + _per_size([r for r in rows if r["throughput"] < THROUGHPUT_TARGET], rows))
        ratios = [r for r in rows if r["raw_predict"] is not None]
        if ratios:
            out.append(f"- score_file within {RAW_PREDICT_TARGET_RATIO:g}x of raw booster predict: "
                       + ", ".join(f"{r['leads']:,}: {r['ratio']:.1f}x" for r in ratios)
                       + _per_size([r for r in ratios if r["ratio"] > RAW_PREDICT_TARGET_RATIO], ratios))
            out.append("  - the model path alone (LeadScorer.predict on the same feature frame): "
                       + ", ".join(f"{r['leads']:,}: {r['model_path_ratio']:.1f}x" for r in ratios)
                       + _per_size([r for r in ratios if r["model_path_ratio"] > RAW_PREDICT_TARGET_RATIO], ratios))
    if xe is not None:
        mean = xe["mean"]
        auc, ece = mean.at["leadscore", "roc_auc"], mean.at["leadscore", "ece"]
        best_peer = mean.drop(index="leadscore")["roc_auc"].idxmax()
        peer_auc = mean.at[best_peer, "roc_auc"]
        met = auc >= X_EDUCATION_TARGETS["roc_auc"] and auc > peer_auc
        out.append(f"- X Education AUC >= {X_EDUCATION_TARGETS['roc_auc']} and above every peer: "
                   f"{'met' if met else 'NOT met'} (leadscore {auc:.3f}, best peer {best_peer} {peer_auc:.3f})")
        verdict = "met" if ece <= X_EDUCATION_TARGETS["ece"] else "NOT met"
        out.append(f"- X Education ECE <= {X_EDUCATION_TARGETS['ece']}: {verdict}"
                   f" (mean of folds {ece:.3f}, noise floor {xe['ece_floor']['fold']:.3f}; pooled out-of-fold "
                   f"{xe['pooled'].at['leadscore', 'ece']:.3f}, floor {xe['ece_floor']['pooled']:.3f})")
    return out


def _per_size(missed: list[dict], measured: list[dict]) -> str:
    """' (met at every size)' when no size missed the target, else the sizes that missed and those that met it."""
    if not missed:
        return " (met at every size)"
    def sizes(part: list[dict]) -> str:
        return ", ".join(f"{r['leads']:,}" for r in part)

    met = [r for r in measured if r not in missed]
    return f" (NOT met at {sizes(missed)} leads" + (f"; met at {sizes(met)})" if met else ")")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default=",".join(str(n) for n in DEFAULT_SIZES),
                        help="comma-separated synthetic CRM sizes in leads (default %(default)s)")
    parser.add_argument("--skip-x-education", action="store_true", help="skip the X Education cross-validation")
    parser.add_argument("--folds", type=int, default=5, help="cross-validation folds on X Education (default 5)")
    parser.add_argument("--x-education-params", type=Path, default=None,
                        help="params file for X Education (default params.x_education.yaml)")
    args = parser.parse_args(argv)
    sizes = [int(s.replace("_", "")) for s in args.sizes.split(",") if s.strip()]

    from pipelines.config import PROJECT_ROOT

    _say(f"leadscore benchmark on {platform.node()} ({platform.processor() or platform.machine()}), {_load()}")
    _say(f"OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY', '(unset)')}")
    _say(_model_settings())
    rows = []
    with tempfile.TemporaryDirectory(prefix="leadscore-bench-") as tmp:
        for n in sizes:
            rows.append(bench_synthetic(n, Path(tmp)))
    xe = None
    if not args.skip_x_education:
        xe = bench_x_education(args.folds, args.x_education_params or PROJECT_ROOT / "params.x_education.yaml")

    _say("\n## Benchmark\n")
    _say(_model_settings() + f". Measured with {_load()}.\n")
    if rows:
        _say("Synthetic CRM (generate_crm seed 7), wall seconds; test AUC on the out-of-time test split; reason "
             "top-1 = rejected test leads whose reason the reason model ranks first; score_file without "
             "explanations on the leads CSV + activities CSV; raw predict = conversion booster alone on the "
             "encoded feature matrix of the same leads; model path = LeadScorer.predict on their feature frame "
             f"(each the fastest of {TIMED_RUNS} runs, as score_file is):\n")
        _say(synthetic_markdown(rows) + "\n")
    if xe is not None:
        m = xe["params"].model
        _say(f"X Education ({xe['rows']:,} labelled leads, {len(xe['features'])} pre-contact features, "
             f"{xe['leaks']} leakage warnings), "
             f"{xe['folds']}-fold seeded stratified CV (seed {m.seed}; train/validation/calibration inside the "
             f"training folds), calibration {m.calibration}:\n")
        _say(x_education_markdown(xe) + "\n")
        _say(f"ECE noise floor (a perfectly calibrated scorer with leadscore's probabilities): "
             f"{xe['ece_floor']['fold']:.3f} on one fold's {xe['rows'] // xe['folds']:,} leads, "
             f"{xe['ece_floor']['pooled']:.3f} pooled over all {xe['rows']:,}.\n")
    _say("Targets:\n" + "\n".join(verdicts(rows, xe)))


if __name__ == "__main__":
    # Idle OpenMP threads sleep instead of spinning: on a shared 2-core machine spinning LightGBM
    # threads made training ~10x slower. Set before LightGBM / scikit-learn load OpenMP.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    main()
