"""The benchmark's cross-validation never lets a test lead shape the model it scores."""

from __future__ import annotations

import numpy as np

from pipelines.bench import cross_validation_splits
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
