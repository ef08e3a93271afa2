"""LightGBM conversion model: tuned on held-out rows, regularised to the data's size.

Real exports are often a few thousand leads; LightGBM's defaults overfit them. The search space
scales leaf size and regularisation with the number of training rows and keeps trees shallow (every
scored and explained lead pays TreeSHAP's trees x leaves x depth^2). Two ways to tune:

- `train_gbm`: every trial early-stops on a validation window (dated data: the window after the
  training rows in time); the winner is refit on the full training rows when tuning used a sample.
- `train_gbm_cv`: every trial is a K-fold cross-validation over all fitting rows (small exports,
  where a separate validation window would cost the model rows it needs); the rounds are
  chosen on the folds' mean AUC, ONE booster is refit on every row with those rounds, and the fold
  models and their out-of-fold margins are returned for the blend and the calibrator. Each fold model's
  category levels and bins come from its fitting rows alone, as a model fit on them would have.
"""

from __future__ import annotations

import logging
import os
import threading

import lightgbm as lgb
import numpy as np
import pandas as pd
from scipy.stats import rankdata
from sklearn.metrics import roc_auc_score

log = logging.getLogger(__name__)

# Above this many training rows, trials run on a stratified sample; the winner is refit on all rows.
TUNING_MAX_ROWS = 150_000
# Below this many rows, cross-validation fits on one thread: on ~7,000 leads a second thread cost
# more in synchronisation than it saved (lgb.cv 1.1 s on one thread vs 2.1 s on two).
CV_ONE_THREAD_ROWS = 20_000
# Below this many rows, predict on one thread: starting LightGBM's threads costs more than the rows.
SMALL_BATCH_ROWS = 512


_this_thread = threading.local()


def predict_threads(rows: int) -> int:
    """num_threads for booster.predict on `rows` rows: one for a small batch, else every usable core.

    Explicit, not LightGBM's default: the service sets OMP_NUM_THREADS=1 for its one-lead requests,
    and a 1,000-lead batch (TreeSHAP above all) should still use every core. A thread that called
    `predict_on_one_thread` always gets one.
    """
    if rows < SMALL_BATCH_ROWS or getattr(_this_thread, "one_thread", False):
        return 1
    return usable_cores()


def predict_on_one_thread() -> None:
    """From now on, boosters predict on one thread when called from this thread.

    For a pool of model workers (a ThreadPoolExecutor initializer) that are parallel across batches
    instead: batch scoring runs one per core, each on its own chunk.
    """
    _this_thread.one_thread = True


def usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def _base_params(seed: int, learning_rate: float, y: np.ndarray, weights: np.ndarray, balance_classes: bool) -> dict:
    """LightGBM settings every fit shares; with `balance_classes` positives weigh as much as negatives."""
    pos = float(np.average(y, weights=weights))
    pos_weight = (1 - pos) / pos if balance_classes and 0 < pos < 1 else 1.0
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


# Depth limits a trial may draw; its leaf count is capped at 2^depth (a full tree of that depth).
SHALLOW_DEPTHS = (2, 3, 4, 6)


def _search_space(n_rows: int, trials: int, rng: np.random.Generator) -> list[dict]:
    """First a conservative default (depth 3, 8 leaves), then random draws sized to the data.

    Every tree is depth-limited: every scored and explained lead pays TreeSHAP's trees x leaves x
    depth^2. On X Education (5-fold CV) depth 2-4 ranked as well as 15-63 unbounded leaves. On the
    synthetic CRM out of time (10k and 20k leads, seeds 42/43/44) test AUC averaged 0.773 against
    0.774 unbounded (one seed 0.009 lower, one 0.009 higher: noise), while TreeSHAP for 1,000 leads
    took 24-125 ms against 17-493 ms (unbounded draws of 31-63 leaves grew up to 15 levels deep).
    """
    leaf_floor = max(5, n_rows // 1000)
    default = {
        "num_leaves": 8,
        "max_depth": 3,
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
        depth = int(rng.choice(SHALLOW_DEPTHS))
        space.append(
            {
                "num_leaves": min(int(rng.choice([4, 7, 15, 31, 63])), 2**depth),
                "max_depth": depth,
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


def _fit(params, X, y, w, X_val, y_val, max_rounds, early_stopping_rounds, monotone) -> tuple[lgb.Booster, np.ndarray]:
    """A booster early-stopped on the validation rows, and its validation AUC after every round.

    The AUC is LightGBM's own "auc" metric on the unweighted validation rows (what leads are judged by).
    """
    train_set = lgb.Dataset(X, y, weight=w, free_raw_data=False)
    valid_set = lgb.Dataset(X_val, y_val, reference=train_set)
    history: dict = {}
    booster = lgb.train(
        _constrained(params, monotone),
        train_set,
        num_boost_round=max_rounds,
        valid_sets=[valid_set],
        valid_names=["validation"],
        callbacks=[lgb.early_stopping(early_stopping_rounds, verbose=False), lgb.record_evaluation(history)],
    )
    return booster, np.asarray(history["validation"]["auc"])


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
    """Tune on the validation window and return the chosen booster with its trial log.

    Of every trial and round count, the cheapest whose validation AUC is within AUC_TOLERANCE of the
    best is kept (as in ``train_gbm_cv``): every scored and explained lead pays for each tree.

    Returns:
        The booster truncated to the chosen rounds, and a dict with the chosen parameters, the
        rounds, the validation AUC and every trial's best AUC.
    """
    rng = np.random.default_rng(seed)
    base = _base_params(seed, learning_rate, y, weights, balance_classes)

    sample = np.arange(len(X))
    if len(X) > TUNING_MAX_ROWS:
        sample = np.sort(rng.choice(len(X), TUNING_MAX_ROWS, replace=False))
    X_tune, y_tune, w_tune = X.iloc[sample], y[sample], weights[sample]

    trials_log, curves = [], []
    for i, space in enumerate(_search_space(len(X_tune), trials, rng)):
        booster, curve = _fit(
            {**base, **space}, X_tune, y_tune, w_tune, X_val, y_val, max_rounds, early_stopping_rounds, monotone
        )
        trials_log.append({"trial": i, "val_auc": float(curve.max()), "best_iteration": int(curve.argmax()) + 1, **space})
        log.info("trial %d: validation AUC %.4f at %d rounds", i, curve.max(), curve.argmax() + 1)
        curves.append((space, curve, booster))
    space, rounds, auc, booster = _smallest_near_best(curves)
    if len(sample) < len(X):  # tuned on a sample: the chosen parameters learn from every row
        booster, curve = _fit({**base, **space}, X, y, weights, X_val, y_val, max_rounds, early_stopping_rounds, monotone)
        _, rounds, auc, _ = _smallest_near_best([(space, curve, booster)])
    booster = lgb.Booster(model_str=booster.model_to_string(num_iteration=rounds))
    info = {"params": {**base, **space}, "best_iteration": rounds, "val_auc": auc,
            "best_val_auc": max(t["val_auc"] for t in trials_log), "trials": trials_log}
    return booster, info


def _unweighted_auc(preds: np.ndarray, data: lgb.Dataset) -> tuple[str, float, bool]:
    """ROC AUC of a fold's held-out rows without sample weights, the figure leads are judged by.

    LightGBM's own "auc" would weigh each held-out row by its sample weight (soft negatives count
    half); the hold-out path (`_fit`) validates on unweighted rows, and so does this. Rank form
    (Mann-Whitney, ties averaged): equal to roc_auc_score, several times cheaper per round.
    """
    label = data.get_label()
    positives = label > 0.5
    n_pos = int(positives.sum())
    n_neg = len(label) - n_pos
    ranks = rankdata(preds)
    return "auc", float((ranks[positives].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)), True


def _constrained(params: dict, monotone: list[int]) -> dict:
    # "advanced" was seen to break the constraints in LightGBM 4.7 (a +1 day of recency raised the
    # margin by 0.025 with scale_pos_weight + early stopping); "intermediate" holds them.
    return {**params, "monotone_constraints": monotone, "monotone_constraints_method": "intermediate"}


# Tuning keeps the cheapest model (trial and rounds) whose validation AUC (mean fold AUC when
# cross-validated) is within this of the best one. On X Education every trial lands within ~0.001
# AUC (fold-to-fold sd ~0.01) while the winners differed 5x in TreeSHAP cost; the cheaper model
# scores and explains faster at no real loss.
AUC_TOLERANCE = 0.001


def _shap_cost(space: dict, rounds: int) -> float:
    """TreeSHAP work of a booster, up to a constant: trees x leaves x depth^2 (nominal limits)."""
    leaves = space["num_leaves"]
    depth = space.get("max_depth", -1)
    depth = depth if depth > 0 else leaves - 1
    return rounds * leaves * depth**2


def _smallest_near_best(curves: list[tuple[dict, np.ndarray, object]]):
    """(space, rounds, AUC, model) of the cheapest trial and round count within AUC_TOLERANCE of the best.

    ``curves``: per trial its parameters, its AUC after every round and its model (a booster, or
    the fold models when cross-validated). Any trial at any round counts: a model stopped earlier
    is a smaller model.
    """
    best = max(float(curve.max()) for _, curve, _ in curves)
    options = []
    for space, curve, fold_models in curves:
        good = np.flatnonzero(curve >= best - AUC_TOLERANCE)
        if len(good):
            rounds = int(good[0]) + 1
            options.append((_shap_cost(space, rounds), -float(curve[rounds - 1]), space, rounds, fold_models))
    cost, neg_auc, space, rounds, fold_models = min(options, key=lambda o: (o[0], o[1]))
    return space, rounds, -neg_auc, fold_models


def train_gbm_cv(
    X: pd.DataFrame,
    y: np.ndarray,
    weights: np.ndarray,
    folds: list[tuple[np.ndarray, np.ndarray]],
    fold_frames: list[tuple[pd.DataFrame, pd.DataFrame]],
    *,
    monotone: list[int],
    seed: int,
    learning_rate: float,
    max_rounds: int,
    early_stopping_rounds: int,
    trials: int,
    balance_classes: bool,
) -> tuple[lgb.Booster, dict, np.ndarray, list[lgb.Booster]]:
    """Tune by K-fold cross-validation over every row, then refit one booster on all of them.

    Each trial boosts one model per fold of `folds` (positional (fit, held-out) pairs covering every
    row once as held-out) round by round, as ``lgb.cv`` does, early-stopped on the folds' mean
    unweighted held-out AUC. Unlike ``lgb.cv``, whose fold models share bins found over every row, a
    fold model learns from `fold_frames` (its fitting and held-out rows, encoded with the category
    levels of its fitting rows) with bins from its fitting rows: a held-out row shapes nothing of the
    model that scores it. Of every trial and round count, the cheapest to explain whose mean fold AUC
    is within AUC_TOLERANCE of the best is kept; its parameters and rounds make the final booster,
    fit on every row of X.

    Returns:
        The final booster (exactly the CV-chosen rounds), a dict with the chosen parameters, rounds,
        cross-validated AUC and every trial, and the out-of-fold margin of every row: each row's
        raw log-odds from the fold model that did not see it, truncated at the chosen rounds; and the fold
        models themselves, one per fold (predict with ``num_iteration`` the chosen rounds), for leads of a
        fold's held-out rows seen at other moments (a dated export's age shifts, ``models.train``).
    """
    rng = np.random.default_rng(seed)
    base = {**_base_params(seed, learning_rate, y, weights, balance_classes), "metric": "None"}
    if len(X) < CV_ONE_THREAD_ROWS:
        base["num_threads"] = 1

    trials_log, curves = [], []
    for i, space in enumerate(_search_space(len(X), trials, rng)):
        params = _constrained({**base, **space}, monotone)
        # Fresh datasets per trial: binning depends on min_data_in_leaf.
        fold_models = [_fold_model(params, fit_frame, held_frame, y[fit_rows], weights[fit_rows], y[held_out])
                       for (fit_rows, held_out), (fit_frame, held_frame) in zip(folds, fold_frames)]
        curve = _mean_held_out_auc(fold_models, max_rounds, early_stopping_rounds)
        trials_log.append({"trial": i, "cv_auc": float(curve[-1]), "best_iteration": len(curve), **space})
        log.info("trial %d: cross-validated AUC %.4f at %d rounds", i, curve[-1], len(curve))
        curves.append((space, curve, fold_models))
    space, rounds, auc, fold_models = _smallest_near_best(curves)
    oof = np.zeros(len(X))
    for (_, held_out), (_, held_frame), model in zip(folds, fold_frames, fold_models):
        oof[held_out] = model.predict(held_frame, num_iteration=rounds, raw_score=True)
    booster = lgb.train(_constrained({**base, **space}, monotone), lgb.Dataset(X, y, weight=weights),
                        num_boost_round=rounds)
    info = {"params": {**base, **space}, "best_iteration": rounds, "cv_auc": auc, "cv_folds": len(folds),
            "best_cv_auc": max(t["cv_auc"] for t in trials_log),
            "oof_auc": float(roc_auc_score(y, oof)), "trials": trials_log}
    return booster, info, oof, fold_models


def _fold_model(params: dict, fit_frame: pd.DataFrame, held_frame: pd.DataFrame, y_fit: np.ndarray,
                w_fit: np.ndarray, y_held: np.ndarray) -> lgb.Booster:
    """An untrained booster on one fold's fitting rows (bins from them alone), its held-out rows attached."""
    train_set = lgb.Dataset(fit_frame, y_fit, weight=w_fit, params=params)
    booster = lgb.Booster(params, train_set)
    booster.add_valid(lgb.Dataset(held_frame, y_held, reference=train_set, params=params), "held_out")
    return booster


def _mean_held_out_auc(fold_models: list[lgb.Booster], max_rounds: int, early_stopping_rounds: int) -> np.ndarray:
    """Boost the fold models in step; the folds' mean held-out AUC after each round, up to the best round.

    Stops `early_stopping_rounds` rounds after the last round that raised the mean, as ``lgb.cv``'s
    early stopping does (and, like it, returns the history up to the best round only).
    """
    curve: list[float] = []
    best = 0
    for i in range(max_rounds):
        aucs = []
        for model in fold_models:
            model.update()
            (_, _, auc, _), = model.eval_valid(_unweighted_auc)
            aucs.append(auc)
        curve.append(float(np.mean(aucs)))
        if curve[i] > curve[best]:
            best = i
        elif i - best >= early_stopping_rounds:
            break
    return np.asarray(curve[: best + 1])
