"""LightGBM conversion model: tuned on the validation window, regularised to the data's size.

Real exports are often a few thousand leads; LightGBM's defaults overfit them. The search space
scales leaf size and regularisation with the number of training rows, every trial early-stops on the
validation window, and the winner is refit on the full training rows when tuning used a sample.
"""

from __future__ import annotations

import logging
import os

import lightgbm as lgb
import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score

log = logging.getLogger(__name__)

# Above this many training rows, trials run on a stratified sample; the winner is refit on all rows.
TUNING_MAX_ROWS = 150_000
# Below this many rows, predict on one thread: starting LightGBM's threads costs more than the rows.
SMALL_BATCH_ROWS = 512


def predict_threads(rows: int) -> int:
    """num_threads for booster.predict on `rows` rows: one for a small batch, else every usable core.

    Explicit, not LightGBM's default: the service sets OMP_NUM_THREADS=1 for its one-lead requests,
    and a 1,000-lead batch (TreeSHAP above all) should still use every core.
    """
    return 1 if rows < SMALL_BATCH_ROWS else _usable_cores()


def _usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def _base_params(seed: int, learning_rate: float, pos_weight: float) -> dict:
    return {
        "objective": "binary",
        "metric": "auc",
        "learning_rate": learning_rate,
        "scale_pos_weight": pos_weight,
        "seed": seed,
        "deterministic": True,
        "force_col_wise": True,
        "num_threads": 0,
        "verbosity": -1,
        "max_cat_to_onehot": 4,
        "cat_l2": 10.0,
        "max_bin": 127,
    }


def _search_space(n_rows: int, trials: int, rng: np.random.Generator) -> list[dict]:
    """First a conservative default, then random draws sized to the data."""
    leaf_floor = max(5, n_rows // 1000)
    default = {
        "num_leaves": 15,
        "min_data_in_leaf": max(20, leaf_floor * 2),
        "lambda_l2": 5.0,
        "feature_fraction": 0.8,
        "bagging_fraction": 0.8,
        "bagging_freq": 1,
        "cat_smooth": 20.0,
        "min_data_per_group": 50,
    }
    space = [default]
    for _ in range(trials - 1):
        space.append(
            {
                "num_leaves": int(rng.choice([4, 7, 15, 31, 63])),
                "min_data_in_leaf": int(leaf_floor * rng.choice([1, 2, 5, 10, 20])),
                "lambda_l2": float(rng.choice([0.0, 1.0, 5.0, 20.0, 50.0])),
                "feature_fraction": float(rng.choice([0.5, 0.7, 0.9, 1.0])),
                "bagging_fraction": float(rng.choice([0.6, 0.8, 1.0])),
                "bagging_freq": 1,
                "cat_smooth": float(rng.choice([5.0, 20.0, 50.0])),
                "min_data_per_group": int(rng.choice([20, 50, 100, 200])),
            }
        )
    return space


def _fit(params, X, y, w, X_val, y_val, max_rounds, early_stopping_rounds, monotone):
    train_set = lgb.Dataset(X, y, weight=w, free_raw_data=False)
    valid_set = lgb.Dataset(X_val, y_val, reference=train_set)
    # "advanced" was seen to break the constraints in LightGBM 4.7 (a +1 day of recency raised the
    # margin by 0.025 with scale_pos_weight + early stopping); "intermediate" holds them.
    full = {**params, "monotone_constraints": monotone, "monotone_constraints_method": "intermediate"}
    booster = lgb.train(
        full,
        train_set,
        num_boost_round=max_rounds,
        valid_sets=[valid_set],
        callbacks=[lgb.early_stopping(early_stopping_rounds, verbose=False)],
    )
    auc = roc_auc_score(y_val, booster.predict(X_val, num_iteration=booster.best_iteration, raw_score=True))
    return booster, float(auc)


def train_gbm(
    X: pd.DataFrame,
    y: np.ndarray,
    weights: np.ndarray,
    X_val: pd.DataFrame,
    y_val: np.ndarray,
    *,
    monotone: list[int],
    seed: int,
    learning_rate: float,
    max_rounds: int,
    early_stopping_rounds: int,
    trials: int,
    balance_classes: bool,
) -> tuple[lgb.Booster, dict]:
    """Tune on the validation window and return the best booster with its trial log.

    Returns:
        The booster truncated to its best iteration, and a dict with the chosen parameters,
        the best iteration, the validation AUC and every trial's AUC.
    """
    rng = np.random.default_rng(seed)
    pos = float(np.average(y, weights=weights))
    pos_weight = (1 - pos) / pos if balance_classes and 0 < pos < 1 else 1.0
    base = _base_params(seed, learning_rate, pos_weight)

    sample = np.arange(len(X))
    if len(X) > TUNING_MAX_ROWS:
        sample = np.sort(rng.choice(len(X), TUNING_MAX_ROWS, replace=False))
    X_tune, y_tune, w_tune = X.iloc[sample], y[sample], weights[sample]

    trials_log = []
    best = None
    for i, space in enumerate(_search_space(len(X_tune), trials, rng)):
        booster, auc = _fit(
            {**base, **space}, X_tune, y_tune, w_tune, X_val, y_val, max_rounds, early_stopping_rounds, monotone
        )
        trials_log.append({"trial": i, "val_auc": auc, "best_iteration": booster.best_iteration, **space})
        log.info("trial %d: validation AUC %.4f at %d rounds", i, auc, booster.best_iteration)
        if best is None or auc > best[1]:
            best = (booster, auc, space)
    booster, auc, space = best
    if len(sample) < len(X):
        booster, auc = _fit({**base, **space}, X, y, weights, X_val, y_val, max_rounds, early_stopping_rounds, monotone)
    booster = lgb.Booster(model_str=booster.model_to_string(num_iteration=booster.best_iteration))
    info = {"params": {**base, **space}, "best_iteration": booster.current_iteration(), "val_auc": auc, "trials": trials_log}
    return booster, info
