"""Small dated exports: holdout windows against cross-validation, on the same out-of-time split.

A dated export of a few thousand leads gives 30% of its non-test leads to validation and calibration
windows; with `model.dated_cv_max_rows` it cross-validates instead (models.train). This fits both ways
on each synthetic CRM with the project's params.yaml and prints, on the newest (test) leads, ROC AUC and
ECE, the same over every (test lead, age it was still open) pair (what a CRM's queue holds), and the
logistic peer's test AUC beside them.

    .venv/bin/python -m pipelines.bench_small_exports                       # 5,000 leads, seeds 11 7 3 21
    .venv/bin/python -m pipelines.bench_small_exports --leads 20000 --seeds 7
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import pandas as pd
from sklearn.metrics import roc_auc_score

from pipelines.config import DEFAULT_PARAMS, load_params


def compare(leads: int, seed: int, folder: Path, overrides: dict | None = None) -> list[dict]:
    """Both ways of fitting one synthetic CRM of `leads` leads (`seed`), params.yaml with `overrides`; a row of
    figures each. The cross-validated way cross-validates at any size up to CV_MAX_ROWS non-test leads."""
    from models.metrics import evaluate_scores
    from models.splits import make_split
    from models.train import CV_MAX_ROWS
    from pipelines.dataset import assemble
    from pipelines.evaluate import evaluate_while_open, fit_peers
    from pipelines.synthetic import generate_crm, write_crm
    from pipelines.train import fit_model

    paths = write_crm(generate_crm(leads, seed=seed), folder / f"crm_{leads}_{seed}")
    common = {f"data.{k}": str(v) for k, v in paths.items()} | (overrides or {})
    params = load_params(DEFAULT_PARAMS, overrides=common)
    ts = assemble(params)
    split = make_split(ts.created_at, pd.Series(ts.y), params.evaluate.split, params.model.seed)
    test = split.test
    rows = []
    for way, limit in (("windows", 0), ("cross-validated", CV_MAX_ROWS)):
        params = load_params(DEFAULT_PARAMS, overrides=common | {"model.dated_cv_max_rows": limit})
        started = time.perf_counter()
        scorer = fit_model(ts, split, params)
        fit = time.perf_counter() - started
        p = scorer.predict_proba(ts.features.iloc[test], ts.age_days[test])
        scores = evaluate_scores(ts.y[test], p, ece_bins=params.evaluate.ece_bins, top_fractions=[])
        _, open_pairs = evaluate_while_open(scorer, ts, test, params.features.snapshot_days, params.evaluate.ece_bins)
        peer = fit_peers(ts.features, ts.y, split, params)["logistic_regression"]
        rows.append({"leads": leads, "seed": seed, "way": way, "cross_validated": "cv" in scorer.info,
                     "non_test": len(split.train) + len(split.validation) + len(split.calibration),
                     "test_auc": scores["roc_auc"], "test_ece": scores["ece"], "open_auc": open_pairs["roc_auc"],
                     "open_ece": open_pairs["ece"],
                     "peer_auc": roc_auc_score(ts.y[test], peer.predict_proba(ts.features.iloc[test])), "fit_s": fit})
    return rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--leads", type=int, default=5000)
    parser.add_argument("--seeds", type=int, nargs="+", default=[11, 7, 3, 21])
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as folder:
        rows = [row for seed in args.seeds for row in compare(args.leads, seed, Path(folder))]
    table = pd.DataFrame(rows)
    print(table.to_string(index=False, float_format=lambda v: f"{v:.4f}"))


if __name__ == "__main__":
    main()
