"""Leakage check: a planted leak is flagged by name; honest and ID-like columns are not."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from features.leakage import leakage_check

N = 2000


@pytest.fixture
def data() -> tuple[pd.DataFrame, pd.Series]:
    rng = np.random.default_rng(1)
    y = (rng.random(N) < 0.3).astype(float)
    features = pd.DataFrame(
        {
            # honest, moderately useful signals
            "demo_request_30d": rng.poisson(0.3 + 0.6 * y).astype(float),
            "industry": pd.array(rng.choice(["software", "retail", "fintech"], N), dtype="str"),
            # an ID: one level per row, perfect on the training rows but useless out of fold
            "email_local_part": pd.array([f"user{i}" for i in range(N)], dtype="str"),
        },
        index=pd.Index([f"L{i}" for i in range(N)], name="lead_id"),
    )
    return features, pd.Series(y, index=features.index)


def test_honest_and_id_like_columns_pass(data):
    features, label = data
    assert leakage_check(features, label, threshold=0.95) == []


def test_planted_numeric_leak_is_flagged_with_advice(data):
    features, label = data
    leaky = features.assign(days_to_close=np.where(label == 1, 5.0, 60.0) + np.random.default_rng(2).random(N))
    warnings = leakage_check(leaky, label, threshold=0.95)
    assert [w.feature for w in warnings] == ["days_to_close"]
    assert warnings[0].auc == pytest.approx(1.0)
    assert "days_to_close" in warnings[0].message and "drop" in warnings[0].message
    assert "before first contact" in warnings[0].message


def test_inverted_leak_counts_as_a_leak(data):
    features, label = data
    inverted = features.assign(lost_flag=1.0 - label)
    assert [w.feature for w in leakage_check(inverted, label, 0.95)] == ["lost_flag"]


def test_planted_categorical_leak_is_flagged(data):
    features, label = data
    stage = pd.array(np.where(label == 1, "Closed Won", "Closed Lost"), dtype="str")
    warnings = leakage_check(features.assign(deal_stage=stage), label, 0.95)
    assert [w.feature for w in warnings] == ["deal_stage"]


def test_missingness_that_encodes_the_outcome_is_a_leak(data):
    features, label = data
    # "contract value" only filled in for won deals: the value itself is noise, its absence is the label
    value = np.where(label == 1, np.random.default_rng(3).normal(size=N), np.nan)
    assert [w.feature for w in leakage_check(features.assign(contract_value=value), label, 0.95)] == ["contract_value"]


def test_unlabelled_rows_are_ignored_and_warnings_sorted(data):
    features, label = data
    label = label.copy()
    label.iloc[:500] = np.nan
    leaky = features.assign(
        perfect=label.fillna(0.5),
        nearly=np.where(np.arange(N) % 20 == 0, 1 - label.fillna(0), label.fillna(0)),
    )
    warnings = leakage_check(leaky, label, 0.8)
    assert [w.feature for w in warnings] == ["perfect", "nearly"]
    assert warnings[0].auc > warnings[1].auc


def test_threshold_is_inclusive_and_single_class_gives_nothing(data):
    features, label = data
    shuffled = features.assign(score=label.to_numpy())
    assert [w.feature for w in leakage_check(shuffled, label, 1.0)] == ["score"]
    assert leakage_check(features, pd.Series(0.0, index=features.index), 0.95) == []


def test_bad_labels_are_refused(data):
    features, label = data
    with pytest.raises(ValueError, match="1, 0 or NaN"):
        leakage_check(features, label * 2, 0.95)
    with pytest.raises(ValueError, match="same rows"):
        leakage_check(features, label.iloc[1:], 0.95)
