"""Evaluation metrics: calibration, capture/lift, tier table and the headline bundle."""

import math

import numpy as np
import pytest
from sklearn.metrics import log_loss as sklearn_log_loss
from sklearn.metrics import roc_auc_score

from models.metrics import (
    calibration_bins,
    capture_at,
    evaluate_scores,
    expected_calibration_error,
    lift_at,
    tier_table,
)


@pytest.fixture
def calibrated_sample():
    rng = np.random.default_rng(7)
    p = rng.uniform(0, 1, 20_000)
    y = (rng.uniform(0, 1, p.size) < p).astype(float)
    return y, p


def test_ece_is_near_zero_for_calibrated_and_large_for_shifted_probabilities(calibrated_sample):
    y, p = calibrated_sample
    assert expected_calibration_error(y, p, bins=10) < 0.02
    assert expected_calibration_error(y, np.clip(p + 0.2, 0, 1), bins=10) > 0.15


def test_ece_keeps_equal_probabilities_in_one_bin():
    # 30 % of leads convert and every lead is told 30 %: perfectly calibrated, whatever the row order.
    y = np.array([0.0] * 70 + [1.0] * 30)
    p = np.full(100, 0.3)
    assert expected_calibration_error(y, p, bins=10) == pytest.approx(0.0, abs=1e-12)
    assert len(calibration_bins(y, p, bins=10)) == 1


def test_ece_weights_count_rows_proportionally():
    y = np.array([1.0, 0.0])
    p = np.array([0.5, 0.5])
    # Weighted rate 2/3 against a promise of 0.5.
    assert expected_calibration_error(y, p, bins=2, weights=[2.0, 1.0]) == pytest.approx(1 / 6)


def test_calibration_bins_have_equal_counts_for_distinct_probabilities(calibrated_sample):
    y, p = calibrated_sample
    table = calibration_bins(y, p, bins=10)
    assert table["rows"].tolist() == [2000.0] * 10
    assert table["mean_p"].is_monotonic_increasing


def test_capture_and_lift_on_a_hand_made_ranking():
    y = np.array([1, 1, 0, 0, 1, 0, 0, 0, 0, 0], dtype=float)
    p = np.linspace(1.0, 0.1, 10)  # already best first
    assert capture_at(y, p, 0.2) == pytest.approx(2 / 3)
    assert lift_at(y, p, 0.2) == pytest.approx((2 / 2) / (3 / 10))
    assert capture_at(y, p, 0.3) == pytest.approx(2 / 3)
    assert lift_at(y, p, 0.3) == pytest.approx((2 / 3) / (3 / 10))
    assert capture_at(y, p, 1.0) == pytest.approx(1.0)
    assert lift_at(y, p, 1.0) == pytest.approx(1.0)


def test_ties_at_the_cut_are_shared_pro_rata_whatever_the_row_order():
    # Top 20 % of 10 = 2 leads: the 0.9 lead and one of three tied at 0.5 (one of which converted).
    y = np.array([1, 1, 0, 0, 0, 0, 0, 0, 0, 1], dtype=float)
    p = np.array([0.9, 0.5, 0.5, 0.5, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1])
    expected = (1 + 1 / 3) / 3
    assert capture_at(y, p, 0.2) == pytest.approx(expected)
    reordered = [0, 3, 2, 1, 4, 5, 6, 7, 8, 9]  # converted tied lead moved to the end of its tie group
    assert capture_at(y[reordered], p[reordered], 0.2) == pytest.approx(expected)


def test_capture_is_nan_without_conversions_and_fraction_is_checked():
    assert math.isnan(capture_at([0, 0, 0], [0.1, 0.2, 0.3], 0.5))
    assert math.isnan(lift_at([], [], 0.1))
    with pytest.raises(ValueError, match="fraction"):
        capture_at([1, 0], [0.5, 0.4], 0.0)
    with pytest.raises(ValueError, match="fraction"):
        lift_at([1, 0], [0.5, 0.4], 1.5)


def test_tier_table_counts_leads_and_conversions_per_tier_in_order():
    y = [1, 0, 1, 0, 0, 0]
    tiers = ["A", "A", "B", "B", "B", "D"]
    table = tier_table(y, tiers, order=["A", "B", "C", "D"])
    assert table.index.tolist() == ["A", "B", "C", "D"]
    assert table["leads"].tolist() == [2, 3, 0, 1]
    assert table["share"].tolist() == pytest.approx([2 / 6, 3 / 6, 0, 1 / 6])
    assert table["conversions"].tolist() == [1, 1, 0, 0]
    assert table.loc["A", "conversion_rate"] == pytest.approx(0.5)
    assert math.isnan(table.loc["C", "conversion_rate"])


def test_tier_table_refuses_a_tier_outside_the_configured_order():
    with pytest.raises(ValueError, match="'E'"):
        tier_table([1, 0], ["A", "E"], order=["A", "B"])


def test_evaluate_scores_reports_every_metric_and_matches_sklearn():
    rng = np.random.default_rng(3)
    p = rng.uniform(0.01, 0.99, 500)
    y = (rng.uniform(size=500) < p).astype(float)
    w = rng.choice([0.5, 1.0], size=500)
    metrics = evaluate_scores(y, p, ece_bins=10, top_fractions=[0.1, 0.25], weights=w)
    assert {"lift_top10", "capture_top10", "lift_top25", "capture_top25", "ece", "brier", "pr_auc"} <= set(metrics)
    assert metrics["roc_auc"] == pytest.approx(roc_auc_score(y, p, sample_weight=w))
    assert metrics["log_loss"] == pytest.approx(sklearn_log_loss(y, p, sample_weight=w))
    assert metrics["brier"] == pytest.approx(np.average((p - y) ** 2, weights=w))
    assert metrics["rows"] == 500


def test_evaluate_scores_with_one_class_gives_nan_aucs_not_a_crash():
    metrics = evaluate_scores([0.0, 0.0, 0.0], [0.1, 0.2, 0.3], ece_bins=10, top_fractions=[0.1])
    assert math.isnan(metrics["roc_auc"]) and math.isnan(metrics["pr_auc"])
    assert math.isnan(metrics["lift_top10"])
    assert metrics["log_loss"] == pytest.approx(-np.mean(np.log([0.9, 0.8, 0.7])))
    assert metrics["positives"] == 0


def test_evaluate_scores_on_no_rows_is_all_nan():
    metrics = evaluate_scores([], [], ece_bins=10, top_fractions=[0.1])
    assert metrics["rows"] == 0
    assert all(math.isnan(v) for k, v in metrics.items() if k not in ("rows", "positives"))
    assert "capture_top10" in metrics


def test_bad_probabilities_and_labels_are_refused_with_the_row():
    with pytest.raises(ValueError, match="row 1"):
        evaluate_scores([1, 0], [0.5, 1.2], ece_bins=10, top_fractions=[0.1])
    with pytest.raises(ValueError, match="row 0"):
        expected_calibration_error([2, 0], [0.5, 0.5])
