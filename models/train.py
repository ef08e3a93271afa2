"""Fit a LeadScorer from a point-in-time feature frame and its closed-loop labels.

LightGBM and a regularised logistic regression (with curves for numerics that declare no direction:
models.peers.LogisticPeer) are both fit; their margins are blended with the weight that maximises
held-out AUC (1.0 = LightGBM alone). On a few thousand leads or drifting data
the logistic side often carries the ranking; on large data LightGBM wins and the blend collapses to
it. Then a calibrator maps the blended margin to a probability, tiers are frozen, and a
rejection-reason model is fit on rejected leads. Two ways to use the rows:

- Holdout windows (dated data above `model.dated_cv_max_rows` pooled rows, or `model.cv_folds: 0`): both
  models fit on the training window, tuning and the blend use the validation window, the calibrator its
  own calibration window, then shifts by lead age. The windows follow time, so every choice is made on
  leads newer than the ones learned from.
- Cross-validation (undated exports up to CV_MAX_ROWS rows, dated ones up to `model.dated_cv_max_rows`;
  `model.cv_folds` > 1): train + validation + calibration rows are pooled and cut into seeded stratified
  folds (a dated export's test still holds its newest leads; README "Design decisions" has the measured
  gain). LightGBM's parameters and rounds and the logistic C are chosen on the folds, ONE booster and ONE logistic
  model (and ONE reason model, its rounds chosen on the first fold) are refit on every pooled row,
  and the blend weight and the calibrator are fit on the out-of-fold margins (scikit-learn's
  CalibratedClassifierCV(ensemble=False)). No row is set aside, and the calibrator learns from
  every pooled row instead of 15% of them. A dated export's age shifts learn from every pooled lead at
  every age it was open, each scored by the fold models that never saw it.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
from datetime import datetime, timezone
from typing import TYPE_CHECKING

import lightgbm as lgb
import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score

from features.build import FeatureDef, feature_catalog, with_event_at_snapshot
from models.calibration import Calibrator, TierThresholds
from models.encoding import CategoryEncoder
from models.explain import amount_directions
from models.gbm import train_gbm, train_gbm_cv
from models.peers import LogisticPeer
from models.reasons import ROUNDS_WITHOUT_VALIDATION, ReasonModel, shortfall as reason_shortfall
from models.scorer import LeadScorer, _logit
from models.splits import Split, stratified_folds
from pipelines.config import FeatureParams, Params

if TYPE_CHECKING:
    from pipelines.dataset import OpenAtAge

log = logging.getLogger(__name__)

BLEND_GRID = (1.0, 0.75, 0.5, 0.25, 0.0)
# Above this many pooled rows the holdout windows are large enough and K-fold tuning too slow.
CV_MAX_ROWS = 100_000


def monotone_vector(catalog: list[FeatureDef], columns: list[str]) -> list[int]:
    by_name = {d.name: d.monotone for d in catalog}
    return [by_name.get(c, 0) for c in columns]


def monotone_violations(margin_fn, X: pd.DataFrame, spec: FeatureParams) -> list[str]:
    """Monotone signals along which `margin_fn` moves the wrong way on some row (empty = none).

    An activity signal moves as it does in life: one more event at the snapshot (every window,
    the ever-flag, recency and trend together); any other signal's numeric features move by +1.
    """
    catalog = feature_catalog(spec)
    base = margin_fn(X)
    broken = []
    for signal, direction in {d.signal: d.monotone for d in catalog if d.monotone}.items():
        if signal in spec.activity_types:
            moved = with_event_at_snapshot(X, signal, spec)
        else:
            moved = X.copy()
            for d in catalog:
                if d.signal == signal and d.kind == "numeric":
                    moved[d.name] = X[d.name].fillna(0) + 1
        if ((margin_fn(moved) - base) * direction < -1e-9).any():
            broken.append(signal)
    return broken


def fit_scorer(
    features: pd.DataFrame,
    y: np.ndarray,
    weights: np.ndarray,
    reasons: pd.Series,
    split: Split,
    params: Params,
    *,
    calibration_weights: np.ndarray,
    age_days: np.ndarray | None = None,
    open_at: Callable[[np.ndarray], list[OpenAtAge]] | None = None,
    reason_spellings: dict[str, str] | None = None,
    category_spellings: dict[str, dict[str, str]] | None = None,
) -> LeadScorer:
    """Fit every part of the scorer on the split's train/validation/calibration rows.

    Args:
        features: feature frame (index lead_id), columns as in feature_catalog(params.features).
        y: 1/0 label per row; weights: sample weights from the label policy, for the models only.
        calibration_weights: the calibrator's row weights (``TrainingSet.calibration_weights``).
            Not the policy weights: a soft negative did not convert, and counting it as half a
            lead made the demo model promise 16.3% to test leads of whom 14.4% converted.
        reasons: rejection reason code per row (NaN for non-rejected rows).
        reason_spellings: how the export spells each reason code (``CRMData.export_spellings("reason")``), kept
            by the reason model so the score card words its likely reason as the CRM does.
        category_spellings: per lead column read as a category, how the export spells each value
            (``pipelines.train.export_category_spellings``); the scorer keeps those of the values it remembers
            (``remembered_spellings``) so a factor names a value as the CRM does. None: factors read the values as
            compared (lower-cased).
        age_days: each row's age at its snapshot (``TrainingSet.age_days``), which the calibration reads.
        open_at: the given rows' leads at every snapshot age they were open (``pipelines.dataset.open_at_ages``,
            which needs the export): the calibrator's age shifts are fit on the calibration leads so.
        split: positional train/validation/calibration/test indices; test rows are never touched.
            An undated (stratified) split with `model.cv_folds` > 1 pools the first three parts
            and cross-validates inside them (see the module docstring).
    """
    mp = params.model
    if cross_validates(split, params):
        return _fit_cv(features, y, weights, reasons, split, params, calibration_weights, reason_spellings,
                       category_spellings, age_days, open_at)
    catalog = feature_catalog(params.features)
    tr, va, ca = split.train, split.validation, split.calibration
    X_tr, X_va, X_ca = features.iloc[tr], features.iloc[va], features.iloc[ca]

    encoder = category_encoder(X_tr, catalog)
    E_tr, E_va = encoder.transform(X_tr), encoder.transform(X_va)
    info: dict = {"trained_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                  "trained_on": split.training_caption(pooled=False)}

    val_margins: dict[str, np.ndarray] = {}
    booster = logistic = None
    if "lightgbm" in mp.candidates:
        booster, gbm_info = train_gbm(
            E_tr, y[tr], weights[tr], E_va, y[va],
            monotone=monotone_vector(catalog, encoder.columns),
            seed=mp.seed, learning_rate=mp.learning_rate, max_rounds=mp.max_rounds,
            early_stopping_rounds=mp.early_stopping_rounds, trials=mp.tuning_trials,
            balance_classes=mp.balance_classes,
        )
        info["lightgbm"] = gbm_info
        val_margins["lightgbm"] = booster.predict(E_va, raw_score=True)
    if "logistic" in mp.candidates:
        directions = {d.name: d.monotone for d in catalog if d.monotone and d.kind == "numeric"}
        logistic = LogisticPeer(seed=mp.seed, monotone=directions, curves=True).fit(
            X_tr, y[tr], weights=weights[tr], X_val=X_va, y_val=y[va], val_weights=weights[va]
        )
        info["logistic"] = _logistic_info(logistic, {"C": logistic.c_})
        val_margins["logistic"] = _logit(logistic.predict_proba(X_va))
    if not val_margins:
        raise ValueError("no model candidate could be fit (model.candidates is empty or all were excluded)")

    (gbm_coef, logistic_coef), weight, best_auc, blend_log = _choose_blend(val_margins, y[va])
    info["blend"] = {"lightgbm_weight": weight, "val_auc": best_auc, "grid": blend_log}
    log.info("blend: LightGBM weight %.2f, validation AUC %.4f", weight, best_auc)

    scorer = _blended_scorer(params, encoder, booster, logistic, (gbm_coef, logistic_coef), info, X_va, y[va],
                             "validation rows", category_spellings)
    scorer.calibrator.fit(scorer.margin(X_ca), y[ca], calibration_weights[ca])
    if open_at is not None:
        _shift_by_age(scorer.calibrator, open_at(ca), scorer.margin, params.features.snapshot_days)
    reference = np.concatenate([tr, va, ca])
    scorer.tiers = TierThresholds.fit(
        params.tiers, scorer.predict_proba(features.iloc[reference], None if age_days is None else age_days[reference]))
    if mp.reason_model:
        scorer.reasons = ReasonModel.fit(
            E_tr, reasons.iloc[tr], E_va, reasons.iloc[va], seed=mp.seed, min_rows=mp.reason_min_rows,
            spellings=reason_spellings,
        )
        if scorer.reasons is None:  # why, for `leadscore train` and model_info.json
            info["no_reason_model"] = reason_shortfall(reasons.iloc[tr], mp.reason_min_rows)
    return scorer


def _shift_by_age(calibrator: Calibrator, pairs: list[OpenAtAge], margin_of: Callable[[pd.DataFrame], np.ndarray],
                  ages: list[float]) -> None:
    """The calibrator's age shifts (``Calibrator.fit_age_shifts``) from (lead, age) pairs, each scored by `margin_of`
    (a model that never saw the lead); none without pairs (an undated export)."""
    if pairs:
        calibrator.fit_age_shifts(np.concatenate([margin_of(p.features) for p in pairs]),
                                  np.concatenate([p.y for p in pairs]),
                                  np.concatenate([np.full(len(p.y), p.age_days) for p in pairs]), ages)


def category_encoder(rows: pd.DataFrame, catalog: list[FeatureDef]) -> CategoryEncoder:
    """The category levels a model fit on `rows` learns: those seen on enough of them (more on more rows)."""
    categorical = [d.name for d in catalog if d.kind == "categorical"]
    numeric = [d.name for d in catalog if d.kind == "numeric"]
    return CategoryEncoder(categorical, numeric, min_count=max(10, len(rows) // 5000)).fit(rows)


def cross_validates(split: Split, params: Params) -> bool:
    """Whether models fit on the pooled train + validation + calibration rows by K-fold CV.

    With `model.cv_folds` > 1: stratified splits (undated exports, or creation dates that cannot order the parts)
    with at most CV_MAX_ROWS pooled rows, out-of-time ones with at most `model.dated_cv_max_rows` (a few thousand
    leads cannot spare 30% of their rows to windows); the peers in pipelines.evaluate learn from the same rows
    either way (and choose the logistic C on the same folds then).
    """
    pooled = len(split.train) + len(split.validation) + len(split.calibration)
    if not params.model.cv_folds or pooled > CV_MAX_ROWS:
        return False
    return split.kind != "out_of_time" or pooled <= params.model.dated_cv_max_rows


def remembered_spellings(encoder: CategoryEncoder,
                         spellings: dict[str, dict[str, str]] | None) -> dict[str, dict[str, str]] | None:
    """``LeadScorer.category_spellings``: per category column the encoder remembers the training values of
    (``CategoryEncoder.seen``; not one of more than ``MAX_REMEMBERED`` distinct values), each of them as the export
    spells it (`spellings`, per column: value as compared -> as written; None: none known)."""
    if spellings is None:
        return None
    seen = encoder.seen or {}
    return {column: {value: written[value] for value in values if value in written}
            for column, written in spellings.items() if (values := seen.get(column)) is not None}


def _blended_scorer(params: Params, encoder, booster, logistic, coefs: tuple[float, float], info: dict,
                    X_check: pd.DataFrame, y_check: np.ndarray, rows: str,
                    category_spellings: dict[str, dict[str, str]] | None) -> LeadScorer:
    """The blended scorer (not yet calibrated), LightGBM alone if the blend breaks a monotone signal on `X_check`, with
    the directions of its amounts as it scores `X_check`, labelled `y_check` (``LeadScorer.amount_directions``)."""
    gbm_coef, logistic_coef = coefs
    scorer = LeadScorer(
        data=params.data.kept_with_model(), features=params.features, encoder=encoder,
        booster=booster if gbm_coef else None, logistic=logistic if logistic_coef else None,
        gbm_coef=gbm_coef, logistic_coef=logistic_coef, calibrator=Calibrator(params.model.calibration),
        tiers=TierThresholds(names=[]), reasons=None, info=info, horizon_days=params.label.horizon_days,
        category_spellings=remembered_spellings(encoder, category_spellings),
    )
    wrong_way = monotone_violations(scorer.margin, X_check, params.features)
    if wrong_way and booster is not None and scorer.logistic_coef:
        log.warning("blend scores %s the wrong way on %s: using LightGBM alone", wrong_way, rows)
        scorer.gbm_coef, scorer.logistic_coef, scorer.booster, scorer.logistic = 1.0, 0.0, booster, None
    info["monotone_violations"] = monotone_violations(scorer.margin, X_check, params.features)
    info["monotone_checked_on"] = rows
    scorer.amount_directions = amount_directions(scorer, X_check, y_check)
    return scorer


def _logistic_info(logistic: LogisticPeer, chosen: dict) -> dict:
    """What the model info records of the logistic candidate; a feature dropped for its direction is logged."""
    if logistic.dropped_for_direction_:
        log.info("logistic candidate: dropped %s (coefficient against its declared direction)",
                 logistic.dropped_for_direction_)
    return {**chosen, "dropped_for_direction": logistic.dropped_for_direction_}


def _choose_blend(val_margins: dict[str, np.ndarray], y_val: np.ndarray):
    """LightGBM's share of the margin blend that maximises validation AUC.

    Returns:
        (gbm_coef, logistic_coef) multiplying each model's raw log-odds, the chosen share,
        its validation AUC and the AUC of every share tried. A model alone keeps coefficient 1,
        so its contributions stay in its own log-odds units.
    """
    if len(val_margins) == 1:
        weight = 1.0 if "lightgbm" in val_margins else 0.0
        auc = float(roc_auc_score(y_val, next(iter(val_margins.values()))))
        return (weight, 1.0 - weight), weight, auc, {str(weight): auc}
    gbm, lr = val_margins["lightgbm"], val_margins["logistic"]
    # Margins live on different scales; standardise before mixing so the share means a share.
    gbm_sd, lr_sd = gbm.std() or 1.0, lr.std() or 1.0
    grid = {w: float(roc_auc_score(y_val, w * gbm / gbm_sd + (1 - w) * lr / lr_sd)) for w in BLEND_GRID}
    best = max(grid, key=lambda w: (grid[w], w))
    coefs = (1.0, 0.0) if best == 1.0 else (0.0, 1.0) if best == 0.0 else (best / gbm_sd, (1 - best) / lr_sd)
    return coefs, best, grid[best], {str(k): v for k, v in grid.items()}


def _fit_cv(
    features: pd.DataFrame,
    y: np.ndarray,
    weights: np.ndarray,
    reasons: pd.Series,
    split: Split,
    params: Params,
    calibration_weights: np.ndarray,
    reason_spellings: dict[str, str] | None = None,
    category_spellings: dict[str, dict[str, str]] | None = None,
    age_days: np.ndarray | None = None,
    open_at: Callable[[np.ndarray], list[OpenAtAge]] | None = None,
) -> LeadScorer:
    """fit_scorer by K-fold cross-validation over the pooled train + validation + calibration rows."""
    mp = params.model
    catalog = feature_catalog(params.features)
    rows = np.sort(np.concatenate([split.train, split.validation, split.calibration]))
    X, y_fit, w_fit = features.iloc[rows], y[rows], weights[rows]
    folds = stratified_folds(y_fit, mp.cv_folds, mp.seed)

    # The final models' levels come from every pooled row; each fold model's from its fitting rows, so
    # what a fold model's held-out rows tell (out-of-fold margins, the reason model's rounds) is
    # what it makes of unseen leads.
    encoder = category_encoder(X, catalog)
    E = encoder.transform(X)
    fold_encoders = [category_encoder(X.iloc[fit_rows], catalog) for fit_rows, _ in folds]
    fold_frames = [(fold_encoder.transform(X.iloc[fit_rows]), fold_encoder.transform(X.iloc[held_out]))
                   for fold_encoder, (fit_rows, held_out) in zip(fold_encoders, folds)]
    info: dict = {"trained_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                  "trained_on": split.training_caption(pooled=True), "cv": {"folds": mp.cv_folds, "rows": len(rows)}}

    oof: dict[str, np.ndarray] = {}
    booster = logistic = None
    if "lightgbm" in mp.candidates:
        booster, gbm_info, oof["lightgbm"], gbm_folds = train_gbm_cv(
            E, y_fit, w_fit, folds, fold_frames,
            monotone=monotone_vector(catalog, encoder.columns),
            seed=mp.seed, learning_rate=mp.learning_rate, max_rounds=mp.max_rounds,
            early_stopping_rounds=mp.early_stopping_rounds, trials=mp.tuning_trials,
            balance_classes=mp.balance_classes,
        )
        info["lightgbm"] = gbm_info
    if "logistic" in mp.candidates:
        directions = {d.name: d.monotone for d in catalog if d.monotone and d.kind == "numeric"}
        logistic, c_info, oof["logistic"], logistic_folds = logistic_cv(X, y_fit, w_fit, folds, mp.seed, directions)
        info["logistic"] = _logistic_info(logistic, c_info)
    if not oof:
        raise ValueError("no model candidate could be fit (model.candidates is empty or all were excluded)")

    (gbm_coef, logistic_coef), weight, best_auc, blend_log = _choose_blend(oof, y_fit)
    info["blend"] = {"lightgbm_weight": weight, "oof_auc": best_auc, "grid": blend_log}
    log.info("blend: LightGBM weight %.2f, out-of-fold AUC %.4f", weight, best_auc)

    scorer = _blended_scorer(params, encoder, booster, logistic, (gbm_coef, logistic_coef), info, X, y_fit,
                             "the fitting rows", category_spellings)

    # The calibrator learns the map from margin to probability on margins of rows the model that
    # produced them never saw: each pooled row's out-of-fold margin, blended like the final model.
    oof_margin = scorer.blend(oof.get("lightgbm", 0.0), oof.get("logistic", 0.0))
    scorer.calibrator.fit(np.asarray(oof_margin, dtype=np.float64), y_fit, calibration_weights[rows])
    info["calibration"] = {"fit_on": "out_of_fold margins", "rows": len(rows)}
    if open_at is not None:
        # A dated export's age shifts, as the calibrator's map: from the pooled leads at every age they were open,
        # each scored by the fold models that never saw the lead.
        fold_of_lead = pd.Series(0, index=X.index)
        for k, (_, held_out) in enumerate(folds):
            fold_of_lead.iloc[held_out] = k
        # Each fold's models in the final scorer's blend (`LeadScorer.margin`), the booster cut at the chosen rounds.
        fold_scorers = [dataclasses.replace(
            scorer, encoder=fold_encoders[k],
            booster=lgb.Booster(model_str=gbm_folds[k].model_to_string(num_iteration=gbm_info["best_iteration"]))
            if scorer.gbm_coef else None,
            logistic=logistic_folds[k] if scorer.logistic_coef else None) for k in range(len(folds))]

        def out_of_fold_margin(leads: pd.DataFrame) -> np.ndarray:
            fold, margin = fold_of_lead.loc[leads.index].to_numpy(), np.zeros(len(leads))
            for k in np.unique(fold):
                margin[fold == k] = fold_scorers[k].margin(leads[fold == k])
            return margin

        _shift_by_age(scorer.calibrator, open_at(rows), out_of_fold_margin, params.features.snapshot_days)
    scorer.tiers = TierThresholds.fit(params.tiers,
                                      scorer.predict_proba(X, None if age_days is None else age_days[rows]))
    if mp.reason_model:
        # ONE reason model too, on every pooled row: it reads the final model's encoded matrix, so it
        # has the final model's levels. Its rounds are those the first fold's model (its own levels
        # and bins) keeps on that fold's held-out rows.
        pooled_reasons = reasons.iloc[rows]
        (fit_rows, held_out), (fit_frame, held_frame) = folds[0], fold_frames[0]
        fold_model = ReasonModel.fit(fit_frame, pooled_reasons.iloc[fit_rows], held_frame, pooled_reasons.iloc[held_out],
                                     seed=mp.seed, min_rows=mp.reason_min_rows)
        scorer.reasons = ReasonModel.fit(
            E, pooled_reasons, None, None, seed=mp.seed, min_rows=mp.reason_min_rows, spellings=reason_spellings,
            rounds=fold_model.booster.current_iteration() if fold_model else ROUNDS_WITHOUT_VALIDATION,
        )
        if scorer.reasons is None:
            info["no_reason_model"] = reason_shortfall(pooled_reasons, mp.reason_min_rows)
    return scorer


def logistic_cv(
    X: pd.DataFrame,
    y: np.ndarray,
    weights: np.ndarray,
    folds: list[tuple[np.ndarray, np.ndarray]],
    seed: int,
    directions: dict[str, int],
    curves: bool = True,
) -> tuple[LogisticPeer, dict, np.ndarray, list[LogisticPeer]]:
    """A logistic model's C by out-of-fold log loss; one model refit on every row with it.

    leadscore's candidate (`curves`, declared `directions`) and, on the same folds' rows, the plain
    logistic peer (no curves, no directions) when the models cross-validate.

    Per fold, LogisticPeer fits the whole C grid on the fold's fitting rows and records each C's
    weighted log loss on the held-out rows; the C with the lowest loss over all held-out rows wins
    (on a tie the stronger regularisation, as in LogisticPeer).

    Returns:
        The refit model, {"C": chosen, "cv_log_loss": per C}, the out-of-fold log-odds at the
        chosen C (each row's from the fold model that did not see it), and those fold models.
    """
    fold_models, totals = [], {}
    for fit_rows, held_out in folds:
        model = LogisticPeer(seed=seed, monotone=directions, curves=curves).fit(
            X.iloc[fit_rows], y[fit_rows], weights=weights[fit_rows],
            X_val=X.iloc[held_out], y_val=y[held_out], val_weights=weights[held_out],
        )
        fold_models.append(model)
        for c, loss in model.validation_log_loss_.items():  # a weighted mean over the held-out rows
            totals[c] = totals.get(c, 0.0) + loss * weights[held_out].sum()
    losses = {c: total / weights.sum() for c, total in totals.items()}
    best = min(losses, key=lambda c: (losses[c], c))
    # A one-value grid makes LogisticPeer fit exactly that C; the held-out rows only yield a log loss.
    margin = np.zeros(len(X))
    for k, ((fit_rows, held_out), model) in enumerate(zip(folds, fold_models)):
        if model.c_ != best:
            fold_models[k] = model = LogisticPeer(seed=seed, monotone=directions, curves=curves, c_grid=[best]).fit(
                X.iloc[fit_rows], y[fit_rows], weights=weights[fit_rows],
                X_val=X.iloc[held_out], y_val=y[held_out], val_weights=weights[held_out],
            )
        margin[held_out] = _logit(model.predict_proba(X.iloc[held_out]))
    final = LogisticPeer(seed=seed, monotone=directions, curves=curves, c_grid=[best]).fit(X, y, weights=weights)
    return final, {"C": best, "cv_log_loss": {str(c): v for c, v in losses.items()}}, margin, fold_models
