"""The benchmark: its cross-validation never lets a test lead shape the model it scores, its verdicts name every miss."""

from __future__ import annotations

import numpy as np

from pipelines.bench import cross_validation_splits, verdicts
from pipelines.config import SplitParams


def test_folds_partition_the_rows_and_keep_test_rows_out_of_every_fitting_part():
    y = np.array([1.0] * 300 + [0.0] * 700)
    split_params = SplitParams(validation=0.15, calibration=0.15, test=0.2)
    splits = cross_validation_splits(y, folds=5, split_params=split_params, seed=3)

    tests = np.concatenate([s.test for s in splits])
    assert len(splits) == 5 and np.array_equal(np.sort(tests), np.arange(len(y)))  # each row tested once
    for s in splits:
        parts = [s.train, s.validation, s.calibration, s.test]
        assert sum(len(p) for p in parts) == len(y) and len(np.unique(np.concatenate(parts))) == len(y)
        assert len(s.validation) == len(s.calibration) == 150  # 0.15 of all rows, as in the fixed split
        assert y[s.test].mean() == y[s.validation].mean() == 0.3  # stratified
    again = cross_validation_splits(y, folds=5, split_params=SplitParams(), seed=3)
    assert all(np.array_equal(a.train, b.train) for a, b in zip(splits, again))  # seeded


def test_verdicts_name_every_size_that_misses_a_batch_target():
    def size(leads, throughput, ratio, model_path_ratio=1.8):
        return {"leads": leads, "train": 100.0, "throughput": throughput, "raw_predict": object(), "ratio": ratio,
                "model_path_ratio": model_path_ratio}

    lines = verdicts([size(10_000, 48_000, 10.4), size(1_000_000, 60_000, 2.3)], None)
    assert "NOT met at 10,000 leads; met at 1,000,000" in lines[1]
    assert "NOT met at 10,000 leads; met at 1,000,000" in lines[2]
    assert "1,000,000: 1.8x (met at every size)" in lines[3]  # the model path alone is a separate figure
    assert verdicts([size(1_000_000, 60_000, 2.3)], None)[1].endswith("(met at every size)")
    assert "NOT met at 1,000,000 leads" in verdicts([size(1_000_000, 60_000, 2.3, 3.4)], None)[3]


def test_the_small_export_benchmark_fits_one_split_both_ways(tmp_path):
    """Windows and cross-validation are judged on the same newest leads, each really fit its own way."""
    from pipelines.bench_small_exports import compare

    fast = {"model.tuning_trials": 1, "model.max_rounds": 100, "model.early_stopping_rounds": 10,
            "model.reason_model": False, "model.cv_folds": 3}
    windows, cross_validated = compare(2000, 5, tmp_path, fast)
    assert (windows["way"], windows["cross_validated"]) == ("windows", False)  # as the fit models say of themselves
    assert (cross_validated["way"], cross_validated["cross_validated"]) == ("cross-validated", True)
    for row in (windows, cross_validated):
        assert 0.5 < row["test_auc"] < 1 and 0 <= row["test_ece"] < 0.2 and 0.5 < row["open_auc"] < 1
