"""The likely rejection reason: what a rep reads beside the score must beat a guess, and stay cheap."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient
from sklearn.metrics import log_loss

from models.reasons import LOG_LOSS_TOLERANCE, ReasonModel, reason_in_words
from pipelines import tracking


def test_the_reason_model_names_the_real_reason_more_often_than_the_best_constant_guess(trained, sample_params):
    reasons = trained.evaluation.reasons
    assert reasons["reason_rows"] >= 100
    assert reasons["reason_top1"] > reasons["reason_top1_constant_guess"] + 0.05
    # RevOps reads them in the training run next to the conversion metrics.
    logged = MlflowClient(tracking.tracking_uri(sample_params)).get_run(trained.run_id).data.metrics
    assert logged["test.reason_top1"] == pytest.approx(reasons["reason_top1"])
    assert logged["test.reason_top1_constant_guess"] == pytest.approx(reasons["reason_top1_constant_guess"])


def _reasons_data(seed: int, n: int) -> tuple[pd.DataFrame, pd.Series]:
    """Three reasons that two features tell apart, with noise: a model can learn it, not perfectly."""
    rng = np.random.default_rng(seed)
    X = pd.DataFrame({"budget": rng.normal(size=n), "seniority": rng.normal(size=n), "noise": rng.normal(size=n)})
    logits = np.column_stack([X["budget"], X["seniority"], -X["budget"] - X["seniority"]]) * 1.5
    p = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    codes = (rng.random(n)[:, None] > p.cumsum(axis=1)).sum(axis=1)
    return X, pd.Series(np.array(["no_budget", "not_decision_maker", "bad_timing"])[codes])


def test_the_reason_model_keeps_the_fewest_rounds_within_tolerance_of_its_best_validation_loss(monkeypatch):
    X, reasons = _reasons_data(1, 4000)
    X_val, reasons_val = _reasons_data(2, 2000)
    monkeypatch.setattr("models.reasons.LOG_LOSS_TOLERANCE", 0.0)
    best = ReasonModel.fit(X, reasons, X_val, reasons_val, seed=0, min_rows=50)
    monkeypatch.setattr("models.reasons.LOG_LOSS_TOLERANCE", LOG_LOSS_TOLERANCE)
    kept = ReasonModel.fit(X, reasons, X_val, reasons_val, seed=0, min_rows=50)

    truth = reasons_val.map({c: i for i, c in enumerate(best.classes)}).to_numpy()
    loss = np.array([log_loss(truth, best.booster.predict(X_val, num_iteration=k), labels=range(3))
                     for k in range(1, best.booster.current_iteration() + 1)])
    assert loss.argmin() + 1 == best.booster.current_iteration()
    within = np.flatnonzero(loss <= loss.min() + LOG_LOSS_TOLERANCE)
    assert kept.booster.current_iteration() == within[0] + 1 < best.booster.current_iteration()
    np.testing.assert_allclose(kept.booster.predict(X_val), best.booster.predict(X_val, num_iteration=within[0] + 1))


def test_a_reason_reads_as_the_export_spelled_it_and_an_unspelled_lower_case_code_as_a_sentence():
    tags = {"ringing": "Ringing", "switched off": "switched off", "no_budget": "no_budget"}
    assert reason_in_words("ringing", tags) == "Ringing"
    assert reason_in_words("switched off", tags) == "switched off"  # the export's own text, kept
    assert reason_in_words("no_budget", tags) == "No budget"
    # A score card for a score logged by a model that did not keep the export's spellings: no lower-case line.
    assert reason_in_words("lost to eins", {}) == "Lost to eins"
    assert reason_in_words("not_decision_maker", {}) == "Not decision maker"
    assert reason_in_words("Lost to EINS", {}) == "Lost to EINS"  # a CRM's own capitals stay


def test_the_likely_rejection_reason_is_written_back_as_the_crm_spells_it(trained):
    """X Education's Tags read 'Ringing' in the CRM: the CSV and /score wrote the lower-cased 'ringing' a rep then read."""
    scorer, features = trained.scorer, trained.training_set.features.iloc[:300]
    codes = scorer.predict(features, trained.training_set.age_days[:300])["likely_rejection_reason"]
    crm = {code: code.replace("_", " ").title() for code in scorer.reasons.classes}  # a CRM writing "No Budget"
    spelled = dataclasses.replace(scorer, reasons=dataclasses.replace(scorer.reasons, spellings=crm))
    written = spelled.predict(features, trained.training_set.age_days[:300])["likely_rejection_reason"]
    assert written.tolist() == codes.map(crm).tolist()
    assert written.str.contains(" ").any()  # the test says something: codes differ from spellings
