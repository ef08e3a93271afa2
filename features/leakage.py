"""Leakage check: warn about any single feature that predicts the label almost perfectly.

Real lead-scoring signals are weak on their own (a demo request is strong, not perfect). A feature
that alone separates converted from lost leads is nearly always filled in by sales after contact
(a "deal stage", "last activity = meeting booked", a reason field) or derived from the outcome, and
a model trained on it scores well offline and fails on new leads, which don't have it yet.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

FOLDS = 5  # out-of-fold level rates for categorical columns
SEED = 0  # fixed fold assignment, so the check gives the same answer on every run


@dataclass(frozen=True)
class LeakWarning:
    """One feature that on its own predicts the label suspiciously well."""

    feature: str
    auc: float
    message: str


def leakage_check(features: pd.DataFrame, label: pd.Series, threshold: float) -> list[LeakWarning]:
    """Single-feature AUC of every column; a warning for each at or above ``threshold``.

    Numeric (and boolean) columns are ranked as they are; a missing value is its own level, placed
    below and above all values in turn (whichever separates better), since a model can put it on
    either side. Categorical columns score each row by its level's label rate learned on the other
    folds, so an ID-like column cannot look perfect by memorising each row. AUC is symmetric:
    max(auc, 1 - auc), because a perfectly inverted feature leaks just as much.

    Args:
        features: the feature frame (any columns); rows align with ``label`` by index.
        label: 1.0 / 0.0, NaN for rows to skip (excluded or censored leads).
        threshold: the ``features.leakage_auc`` setting.

    Returns:
        Warnings, the most predictive feature first; empty when the label has a single class
        (no AUC is defined, so nothing can be flagged).

    Raises:
        ValueError: the label holds values other than 0/1/NaN or does not match the features' rows.
    """
    if not label.index.equals(features.index):
        if len(label) != len(features) or not label.index.is_unique or set(label.index) != set(features.index):
            raise ValueError("leakage_check: label and features must cover the same rows (same index)")
        label = label.reindex(features.index)
    try:
        y_all = label.to_numpy(dtype=np.float64, na_value=np.nan)
        binary = bool(np.isin(y_all[~np.isnan(y_all)], (0.0, 1.0)).all())
    except (TypeError, ValueError):
        binary = False
    if not binary:
        raise ValueError("leakage_check: label must hold 1, 0 or NaN only")
    kept = ~np.isnan(y_all)
    y = y_all[kept]
    if y.size == 0 or y.min() == y.max():
        return []

    folds = np.random.default_rng(SEED).integers(0, FOLDS, size=y.size)
    warnings: list[LeakWarning] = []
    for column in features.columns:
        values = features[column].iloc[kept]
        if pd.api.types.is_bool_dtype(values.dtype) or pd.api.types.is_numeric_dtype(values.dtype):
            auc = _numeric_auc(values.to_numpy(dtype=np.float64, na_value=np.nan), y)
        else:
            auc = _categorical_auc(values, y, folds)
        if auc >= threshold:
            warnings.append(
                LeakWarning(
                    feature=str(column),
                    auc=auc,
                    message=(
                        f"{column!r} alone predicts the label with AUC {auc:.3f} (threshold {threshold}). "
                        "A single field this predictive is usually filled in after sales contact or "
                        "derived from the outcome: check it is known before first contact, or drop it "
                        "(data.drop_columns, or remove it from the features section)."
                    ),
                )
            )
    return sorted(warnings, key=lambda w: -w.auc)


def _rank_auc(score: np.ndarray, y: np.ndarray) -> float:
    """Mann-Whitney AUC with tied scores sharing their rank; max(auc, 1 - auc)."""
    ranks = pd.Series(score).rank(method="average").to_numpy()
    positives = y == 1
    n_pos, n_neg = positives.sum(), (~positives).sum()
    auc = (ranks[positives].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)
    return float(max(auc, 1 - auc))


def _numeric_auc(values: np.ndarray, y: np.ndarray) -> float:
    missing = np.isnan(values)
    if not missing.any():
        return _rank_auc(values, y)
    return max(_rank_auc(np.where(missing, -np.inf, values), y), _rank_auc(np.where(missing, np.inf, values), y))


def _categorical_auc(values: pd.Series, y: np.ndarray, folds: np.ndarray) -> float:
    """AUC of each row's level rate, learned on the other folds (unseen level -> overall rate)."""
    levels, _ = pd.factorize(values, use_na_sentinel=False)  # a missing value is its own level
    n_levels = levels.max() + 1 if levels.size else 0
    score = np.empty(y.size)
    for fold in range(FOLDS):
        held_out = folds == fold
        train = ~held_out
        seen = np.bincount(levels[train], minlength=n_levels)
        converted = np.bincount(levels[train], weights=y[train], minlength=n_levels)
        prior = y[train].mean() if train.any() else 0.5
        rate = np.divide(converted, seen, out=np.full(n_levels, prior), where=seen > 0)
        score[held_out] = rate[levels[held_out]]
    return _rank_auc(score, y)
