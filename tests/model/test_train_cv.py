"""Cross-validated fitting of undated and small dated exports: every non-test row trains the one final model,
choices are made on folds, and the calibrator learns from margins of rows the model that made them never saw."""

from __future__ import annotations

import lightgbm as lgb
import numpy as np
import pandas as pd
import pytest

import models.train as train_module
from models.calibration import Calibrator
from models.encoding import OTHER, CategoryEncoder
from models.explain import explain
from models.gbm import AUC_TOLERANCE, _shap_cost, _smallest_near_best, train_gbm_cv
from models.reasons import ReasonModel
from models.splits import make_split, stratified_folds
from pipelines.config import load_params, PROJECT_ROOT
from pipelines.dataset import assemble, open_at_ages
from pipelines.train import fit_model

CV = {"model.cv_folds": 3, "model.tuning_trials": 2, "model.max_rounds": 200, "model.early_stopping_rounds": 20,
      "model.reason_model": False, "model.candidates": ["lightgbm"]}


@pytest.fixture(scope="module")
def training_set(sample_params):
    return assemble(sample_params)


def _params(sample_params, **overrides):
    values = {**CV, **overrides}
    return sample_params.model_copy(update={"model": sample_params.model.model_copy(
        update={k.split(".", 1)[1]: v for k, v in values.items()})})


def _undated_split(ts, params):
    return make_split(None, pd.Series(ts.y), params.evaluate.split, params.model.seed)


@pytest.fixture()
def spy(monkeypatch):
    """Records what the final LightGBM fit, the CV fit and the calibrator were given."""
    seen: dict = {"train_rows": [], "calibrator": [], "age_shifts": []}
    real_train, real_cv = lgb.train, train_module.train_gbm_cv
    real_fit, real_shifts = Calibrator.fit, Calibrator.fit_age_shifts

    def train(params, train_set, *args, **kwargs):
        booster = real_train(params, train_set, *args, **kwargs)
        seen["train_rows"].append(train_set.num_data())
        return booster

    def cv(*args, **kwargs):
        booster, info, oof, fold_models = real_cv(*args, **kwargs)
        seen["oof"] = oof
        return booster, info, oof, fold_models

    def fit(self, margin, y, weights=None):
        seen["calibrator"].append((np.asarray(margin).copy(), np.asarray(y).copy(), np.asarray(weights).copy()))
        return real_fit(self, margin, y, weights)

    def fit_age_shifts(self, margin, y, age_days, grid):
        seen["age_shifts"].append((np.asarray(margin).copy(), np.asarray(y).copy(), np.asarray(age_days).copy()))
        return real_shifts(self, margin, y, age_days, grid)

    monkeypatch.setattr(lgb, "train", train)
    monkeypatch.setattr(train_module, "train_gbm_cv", cv)
    monkeypatch.setattr(Calibrator, "fit", fit)
    monkeypatch.setattr(Calibrator, "fit_age_shifts", fit_age_shifts)
    return seen


def test_one_booster_is_refit_on_every_non_test_row_with_the_cv_chosen_rounds(training_set, sample_params, spy):
    params = _params(sample_params)
    split = _undated_split(training_set, params)
    scorer = train_module.fit_scorer(training_set.features, training_set.y, training_set.weights,
                                     training_set.reasons, split, params,
                                     calibration_weights=training_set.calibration_weights)
    pooled = len(split.train) + len(split.validation) + len(split.calibration)
    gbm = scorer.info["lightgbm"]
    assert scorer.info["cv"] == {"folds": 3, "rows": pooled}
    # The feature-importance plot's title (Evaluation.plots) names the rows this booster was refit on.
    assert scorer.info["trained_on"] == f"training leads, all but the seeded random test hold-out (n={pooled:,})"
    assert gbm["cv_folds"] == 3 and len(gbm["trials"]) == 2
    assert gbm["best_cv_auc"] == max(t["cv_auc"] for t in gbm["trials"])
    assert gbm["cv_auc"] >= gbm["best_cv_auc"] - AUC_TOLERANCE
    assert scorer.booster.num_trees() == gbm["best_iteration"]  # exactly the CV-chosen rounds
    assert spy["train_rows"] == [pooled]  # the only lgb.train call: the final refit, on all pooled rows
    assert gbm["params"]["max_depth"] in (2, 3, 4, 6)  # shallow trees for TreeSHAP


def test_a_dated_export_keeps_the_cheapest_model_near_the_best_validation_auc(training_set, sample_params):
    """The hold-out path chooses like the CV path: every scored lead pays for each tree kept."""
    params = _params(sample_params, **{"model.tuning_trials": 4, "model.dated_cv_max_rows": 0})
    split = make_split(training_set.created_at, pd.Series(training_set.y), params.evaluate.split, params.model.seed)
    scorer = train_module.fit_scorer(training_set.features, training_set.y, training_set.weights,
                                     training_set.reasons, split, params,
                                     calibration_weights=training_set.calibration_weights)
    gbm = scorer.info["lightgbm"]
    assert gbm["best_val_auc"] == max(t["val_auc"] for t in gbm["trials"])
    assert gbm["val_auc"] >= gbm["best_val_auc"] - AUC_TOLERANCE
    assert scorer.booster.num_trees() == gbm["best_iteration"]
    best = max(gbm["trials"], key=lambda t: t["val_auc"])
    assert _shap_cost(gbm["params"], gbm["best_iteration"]) <= _shap_cost(best, best["best_iteration"])


def test_the_calibrator_is_fit_on_out_of_fold_margins_of_every_pooled_row(training_set, sample_params, spy):
    params = _params(sample_params)
    split = _undated_split(training_set, params)
    scorer = train_module.fit_scorer(training_set.features, training_set.y, training_set.weights,
                                     training_set.reasons, split, params,
                                     calibration_weights=training_set.calibration_weights)
    pooled = np.sort(np.concatenate([split.train, split.validation, split.calibration]))
    (margin, y, weights), = spy["calibrator"]
    np.testing.assert_array_equal(y, training_set.y[pooled])
    np.testing.assert_array_equal(weights, training_set.calibration_weights[pooled])
    np.testing.assert_allclose(margin, scorer.gbm_coef * spy["oof"], rtol=0, atol=1e-12)
    in_sample = scorer.margin(training_set.features.iloc[pooled])
    assert not np.allclose(margin, in_sample)  # not the final model's own (optimistic) margins
    assert scorer.info["calibration"]["fit_on"] == "out_of_fold margins"


def test_test_rows_never_shape_the_cross_validated_model(training_set, sample_params):
    params = _params(sample_params)
    split = _undated_split(training_set, params)
    ts = training_set
    flipped = ts.y.copy()
    flipped[split.test] = 1 - flipped[split.test]
    a = train_module.fit_scorer(ts.features, ts.y, ts.weights, ts.reasons, split, params,
                                     calibration_weights=ts.calibration_weights)
    b = train_module.fit_scorer(ts.features, flipped, ts.weights, ts.reasons, split, params,
                                     calibration_weights=ts.calibration_weights)
    np.testing.assert_array_equal(a.predict_proba(ts.features), b.predict_proba(ts.features))


@pytest.mark.parametrize("undated", [True, False], ids=["cross-validated", "holdout"])
def test_a_scorer_fit_alone_names_category_values_as_the_export_spelled_them(training_set, sample_params, undated):
    """A scorer from fit_scorer alone (the bench's, a test's) is complete: given the export's spellings, its factors
    say "Lead source: Web Organic" as the CRM writes it, not the lower-cased value compared; it keeps the spellings
    of values it saw, not of the export's every value."""
    params, ts = _params(sample_params), training_set
    split = _undated_split(ts, params) if undated else make_split(ts.created_at, pd.Series(ts.y),
                                                                  params.evaluate.split, params.model.seed)
    spellings = {"lead_source": {"web_organic": "Web Organic", "not_in_training": "Not In Training"}}

    scorer = train_module.fit_scorer(ts.features, ts.y, ts.weights, ts.reasons, split, params,
                                     calibration_weights=ts.calibration_weights, category_spellings=spellings)

    assert scorer.category_spellings == {"lead_source": {"web_organic": "Web Organic"}}
    row = ts.features[ts.features["lead_source"] == "web_organic"].head(1)
    (factor,) = [f for f in explain(scorer, row)[0].factors if f.signal == "lead_source"]
    assert (factor.phrase, factor.value) == ("Lead source: Web Organic", "Web Organic")


def test_out_of_fold_margins_come_from_fold_models_that_never_saw_the_row():
    rng = np.random.default_rng(0)
    n = 600
    X = pd.DataFrame({"a": rng.normal(size=n), "b": rng.normal(size=n),
                      "c": pd.Categorical(rng.choice(["x", "y", "z"], size=n))})
    y = (X["a"] + 0.5 * (X["c"] == "x") + rng.normal(size=n) > 0.3).astype(float).to_numpy()
    w = np.ones(n)
    folds = stratified_folds(y, 3, seed=5)
    fold_frames = [(X.iloc[fit_rows], X.iloc[held_out]) for fit_rows, held_out in folds]
    booster, info, oof, fold_models = train_gbm_cv(X, y, w, folds, fold_frames, monotone=[0, 0, 0], seed=5,
                                                   learning_rate=0.1, max_rounds=100, early_stopping_rounds=10,
                                                   trials=2, balance_classes=True)
    rounds = info["best_iteration"]
    assert booster.num_trees() == rounds
    params = info["params"] | {"monotone_constraints": [0, 0, 0], "monotone_constraints_method": "intermediate"}
    for fit_rows, held_out in folds:
        # The same fold model, fit on the fold's own rows alone: its bins too come from them, not from
        # every row as lgb.cv's would.
        fold_model = lgb.train(params, lgb.Dataset(X.iloc[fit_rows], y[fit_rows], weight=w[fit_rows]),
                               num_boost_round=rounds)
        np.testing.assert_allclose(oof[held_out], fold_model.predict(X.iloc[held_out], raw_score=True), atol=1e-9)
    for (_, held_out), returned in zip(folds, fold_models):  # the fold models themselves, for other moments
        np.testing.assert_allclose(oof[held_out], returned.predict(X.iloc[held_out], num_iteration=rounds,
                                                                   raw_score=True), atol=1e-9)


def test_a_held_out_fold_shapes_nothing_of_the_model_that_scores_it(training_set, sample_params, spy):
    """The out-of-fold margins the blend and the calibrator learn from are those of unseen leads: each
    equals the margin of a model fit on its fold's fitting rows alone, with their category levels and
    LightGBM bins (pooled ones would let held-out rows decide which levels and cut points exist)."""
    params = _params(sample_params)
    ts = training_set
    split = _undated_split(ts, params)
    pooled = np.sort(np.concatenate([split.train, split.validation, split.calibration]))
    # A level 12 leads of the first held-out fold alone have: common enough in the pooled rows, absent from that
    # fold's fitting rows, so a fold model fit with pooled levels would know it.
    _, held_out = stratified_folds(ts.y[pooled], params.model.cv_folds, params.model.seed)[0]
    features = ts.features.copy()
    features.loc[ts.features.index[pooled[held_out[:12]]], "lead_source"] = "partner_portal"
    scorer = train_module.fit_scorer(features, ts.y, ts.weights, ts.reasons, split, params,
                                     calibration_weights=ts.calibration_weights)
    X, y, w = features.iloc[pooled], ts.y[pooled], ts.weights[pooled]
    gbm = scorer.info["lightgbm"]
    catalog = train_module.feature_catalog(params.features)
    lgb_params = gbm["params"] | {"monotone_constraints": train_module.monotone_vector(catalog, scorer.encoder.columns),
                                  "monotone_constraints_method": "intermediate"}
    fewer_levels = 0
    for fit_rows, held_out in stratified_folds(y, params.model.cv_folds, params.model.seed):
        encoder = CategoryEncoder(scorer.encoder.categorical, scorer.encoder.numeric, min_count=10).fit(X.iloc[fit_rows])
        fewer_levels += encoder.levels != scorer.encoder.levels
        fold_model = lgb.train(lgb_params, lgb.Dataset(encoder.transform(X.iloc[fit_rows]), y[fit_rows],
                                                       weight=w[fit_rows]), num_boost_round=gbm["best_iteration"])
        expected = fold_model.predict(encoder.transform(X.iloc[held_out]), raw_score=True)
        np.testing.assert_allclose(spy["oof"][held_out], expected, rtol=0, atol=1e-9)
    assert fewer_levels  # some level is common enough in the pooled rows only: the check means something

def test_the_reason_model_learns_from_every_pooled_row_its_rounds_kept_by_a_fold_model_blind_to_its_held_out_leads(
        training_set, sample_params, monkeypatch):
    """The reason model reads the final model's matrix, so it is refit on every pooled row with their levels. Its
    rounds are kept on the first fold's held-out rows by a model fit on that fold's fitting rows with their own
    levels: a level only held-out leads have is ``__other__`` to it, as to a model that never saw those leads."""
    params = _params(sample_params, **{"model.reason_model": True})
    ts = training_set
    split = _undated_split(ts, params)
    pooled = np.sort(np.concatenate([split.train, split.validation, split.calibration]))
    _, held_out = stratified_folds(ts.y[pooled], params.model.cv_folds, params.model.seed)[0]
    rejected = held_out[ts.reasons.iloc[pooled[held_out]].notna().to_numpy()]
    planted = ts.features.index[pooled[rejected[:30]]]  # 30 rejected leads of the first held-out fold alone
    features = ts.features.copy()
    features.loc[planted, "lead_source"] = "partner_portal"
    fits = []
    real_fit = ReasonModel.fit.__func__

    def fit(cls, X, reasons, X_val, reasons_val, **kwargs):
        model = real_fit(cls, X, reasons, X_val, reasons_val, **kwargs)
        fits.append({"X": X, "X_val": X_val, "model": model})
        return model

    monkeypatch.setattr(ReasonModel, "fit", classmethod(fit))
    scorer = train_module.fit_scorer(features, ts.y, ts.weights, ts.reasons, split, params,
                                     calibration_weights=ts.calibration_weights)
    assert "partner_portal" in scorer.encoder.levels["lead_source"]  # common enough in the pooled rows
    fold = fits[0]
    assert (fold["X_val"].loc[planted, "lead_source"] == OTHER).all()  # but unseen by the fold's model
    final = fits[-1]
    assert len(fits) == 2 and final["model"] is scorer.reasons and final["X_val"] is None
    pd.testing.assert_frame_equal(final["X"], scorer.encoder.transform(features.iloc[pooled]))
    assert scorer.reasons.booster.current_iteration() == fold["model"].booster.current_iteration()


def test_the_cheapest_model_near_the_best_cross_validated_auc_is_kept():
    deep = {"num_leaves": 31, "max_depth": 6}
    shallow = {"num_leaves": 4, "max_depth": 2}
    curves = [
        (deep, np.array([0.80, 0.85, 0.870]), "deep folds"),
        (shallow, np.concatenate([np.linspace(0.70, 0.8692, 30), np.full(10, 0.8695)]), "shallow folds"),
    ]
    space, rounds, auc, folds = _smallest_near_best(curves)
    assert space is shallow and folds == "shallow folds"
    assert auc >= 0.870 - AUC_TOLERANCE and rounds < 40  # stopped at the first round near the best
    far = [(deep, np.array([0.80, 0.85, 0.870]), "deep"), (shallow, np.array([0.70, 0.80, 0.85]), "shallow")]
    assert _smallest_near_best(far)[0] is deep  # a cheap model that ranks worse is not taken


def test_stratified_folds_hold_out_every_row_once_and_keep_the_positive_rate():
    y = np.array([1.0] * 30 + [0.0] * 70)
    folds = stratified_folds(y, 5, seed=1)
    held = np.concatenate([h for _, h in folds])
    assert np.array_equal(np.sort(held), np.arange(100))
    for fit_rows, held_out in folds:
        assert not set(fit_rows) & set(held_out) and len(fit_rows) + len(held_out) == 100
        assert y[held_out].mean() == pytest.approx(0.3)
    with pytest.raises(ValueError, match="at least 5 converted and non-converted"):
        stratified_folds(np.array([1.0] * 3 + [0.0] * 50), 5, seed=1)


def test_the_logistic_candidate_takes_the_c_with_the_lowest_out_of_fold_log_loss():
    rng = np.random.default_rng(1)
    n = 400
    X = pd.DataFrame({"a": rng.normal(size=n), "b": rng.choice(["p", "q"], size=n).astype(object)})
    y = (X["a"] + rng.normal(size=n) > 0).astype(float).to_numpy()
    folds = stratified_folds(y, 4, seed=2)
    model, info, oof, fold_models = train_module.logistic_cv(X, y, np.ones(n), folds, seed=0, directions={})
    losses = {float(c): v for c, v in info["cv_log_loss"].items()}
    assert info["C"] == min(losses, key=losses.get) and model.c_ == info["C"]
    assert oof.shape == (n,) and np.isfinite(oof).all()
    for (_, held_out), fold_model in zip(folds, fold_models):  # each at the chosen C, its held-out rows' margins
        assert fold_model.c_ == info["C"]
        np.testing.assert_allclose(oof[held_out], train_module._logit(fold_model.predict_proba(X.iloc[held_out])))
    assert model.curved_ == ["a"]  # an undeclared numeric gets a curve; the logistic peer keeps a slope
    declared, *_ = train_module.logistic_cv(X, y, np.ones(n), folds, seed=0, directions={"a": 1})
    assert declared.curved_ == [] and declared.linear_ == ["a"]


def test_a_dated_export_above_dated_cv_max_rows_keeps_its_out_of_time_windows(training_set, sample_params, spy):
    ts = training_set
    split = make_split(ts.created_at, pd.Series(ts.y), sample_params.evaluate.split, sample_params.model.seed)
    pooled = len(split.train) + len(split.validation) + len(split.calibration)
    params = _params(sample_params, **{"model.dated_cv_max_rows": pooled - 1})
    scorer = fit_model(ts, split, params)
    assert split.kind == "out_of_time" and "cv" not in scorer.info and "val_auc" in scorer.info["lightgbm"]
    margin, y, weights = spy["calibrator"][0]
    assert len(y) == len(split.calibration)  # the calibrator learns on the newest window only
    np.testing.assert_array_equal(weights, ts.calibration_weights[split.calibration])
    assert len(scorer.calibrator.age_shift) == len(params.features.snapshot_days)  # then shifted by lead age


def test_a_small_dated_export_cross_validates_over_every_lead_older_than_its_test(training_set, sample_params, spy):
    """A few thousand dated leads cannot spare 30% of their rows to validation and calibration windows: up to
    `model.dated_cv_max_rows` pooled rows the one booster learns from every lead older than the test leads, and the
    calibrator from their out-of-fold margins; the test is still the newest leads."""
    ts = training_set
    split = make_split(ts.created_at, pd.Series(ts.y), sample_params.evaluate.split, sample_params.model.seed)
    pooled = np.concatenate([split.train, split.validation, split.calibration])
    params = _params(sample_params, **{"model.dated_cv_max_rows": len(pooled)})
    scorer = fit_model(ts, split, params)
    assert split.kind == "out_of_time" and ts.created_at.iloc[pooled].max() <= ts.created_at.iloc[split.test].min()
    assert scorer.info["cv"] == {"folds": 3, "rows": len(pooled)}
    assert scorer.info["trained_on"].startswith(f"training leads, all older than the test leads (n={len(pooled):,}, ")
    assert spy["train_rows"] == [len(pooled)]  # the only lgb.train call: the final refit, on every pooled row
    (margin, y, weights), = spy["calibrator"]
    np.testing.assert_array_equal(margin, spy["oof"])
    np.testing.assert_array_equal(y, ts.y[np.sort(pooled)])
    assert len(scorer.calibrator.age_shift) == len(params.features.snapshot_days)


def test_a_cross_validated_dated_model_shifts_by_age_from_out_of_fold_margins(training_set, sample_params, spy):
    """The age shifts learn from every pooled lead at every age it was open, each scored by the fold models that
    never saw it: seen at the age of its training snapshot (the same features), a lead's margin is exactly its
    out-of-fold margin, the calibrator's, not what the final model, fit on it, makes of it."""
    ts = training_set
    split = make_split(ts.created_at, pd.Series(ts.y), sample_params.evaluate.split, sample_params.model.seed)
    params = _params(sample_params, **{"model.candidates": ["lightgbm", "logistic"]})
    scorer = fit_model(ts, split, params)
    pooled = np.sort(np.concatenate([split.train, split.validation, split.calibration]))
    (oof_margin, _, _), = spy["calibrator"]
    (margin, y, ages), = spy["age_shifts"]
    pairs = open_at_ages(ts, pooled, params.features, params.features.snapshot_days)
    lead_ids = np.concatenate([p.features.index.to_numpy() for p in pairs])
    assert len(margin) == len(lead_ids) > len(pooled)
    np.testing.assert_array_equal(y, np.concatenate([p.y for p in pairs]))
    at_snapshot = pd.Series(ts.age_days[pooled], index=ts.features.index[pooled]).loc[lead_ids].to_numpy() == ages
    assert at_snapshot.sum() > len(pooled) / 2
    expected = pd.Series(oof_margin, index=ts.features.index[pooled]).loc[lead_ids[at_snapshot]].to_numpy()
    np.testing.assert_allclose(margin[at_snapshot], expected, atol=1e-9)
    final = np.concatenate([scorer.margin(p.features) for p in pairs])
    assert np.abs(final[at_snapshot] - expected).max() > 0.01  # the final model's own margins are other numbers


def test_cross_validation_follows_cv_folds_and_the_row_limits(training_set, sample_params):
    ts = training_set
    dated = make_split(ts.created_at, pd.Series(ts.y), sample_params.evaluate.split, sample_params.model.seed)
    undated = _undated_split(ts, sample_params)
    pooled = len(dated.train) + len(dated.validation) + len(dated.calibration)
    assert train_module.cross_validates(dated, _params(sample_params, **{"model.dated_cv_max_rows": pooled}))
    assert not train_module.cross_validates(dated, _params(sample_params, **{"model.dated_cv_max_rows": pooled - 1}))
    assert train_module.cross_validates(undated, _params(sample_params, **{"model.dated_cv_max_rows": 0}))
    for split in (dated, undated):
        assert not train_module.cross_validates(split, _params(sample_params, **{"model.cv_folds": 0}))


def test_one_fold_is_refused():
    with pytest.raises(ValueError, match="cv_folds"):
        load_params(PROJECT_ROOT / "params.yaml", overrides={"model.cv_folds": 1})


def test_peers_learn_from_the_same_rows_as_the_cross_validated_model(training_set, sample_params):
    """No scorer in the comparison sees more training data than another, and none sees a test row:
    the peers equal peers fit on exactly the pooled train + validation + calibration rows."""
    from models.splits import Split
    from pipelines.evaluate import fit_peers

    ts, params = training_set, _params(sample_params)
    split = _undated_split(ts, params)
    peers = fit_peers(ts.features, ts.y, split, params)

    pooled = np.sort(np.concatenate([split.train, split.validation, split.calibration]))
    only_pooled = Split(train=np.arange(len(pooled)), validation=np.arange(0), calibration=np.arange(0),
                        test=np.arange(0), kind=split.kind, positives={})
    refit = fit_peers(ts.features.iloc[pooled], ts.y[pooled], only_pooled, params)
    test = ts.features.iloc[split.test]
    assert set(peers) == {"points_mql", "odoo_naive_bayes", "logistic_regression"}
    for name, peer in peers.items():
        np.testing.assert_allclose(peer.predict_proba(test), refit[name].predict_proba(test), err_msg=name)


def test_peers_learn_from_every_row_the_out_of_time_model_learns_from(training_set, sample_params):
    """A dated export: leadscore fits on the training window, tunes on the validation window and
    calibrates on the calibration window, so each peer learns from all three (the logistic C chosen on
    the validation window, then refit) and from no test row: each equals the same peer fit on exactly
    those rows."""
    from models.peers import LogisticPeer, OdooNaiveBayes, PointsScorer
    from pipelines.evaluate import fit_peers

    ts, params = training_set, _params(sample_params, **{"model.dated_cv_max_rows": 0})
    split = make_split(ts.created_at, pd.Series(ts.y), params.evaluate.split, params.model.seed)
    assert split.kind == "out_of_time"
    peers = fit_peers(ts.features, ts.y, split, params)

    learned = np.sort(np.concatenate([split.train, split.validation, split.calibration]))
    X, y = ts.features.iloc[learned], ts.y[learned]
    tr, va, seed = split.train, split.validation, params.model.seed
    c = LogisticPeer(seed=seed).fit(ts.features.iloc[tr], ts.y[tr], X_val=ts.features.iloc[va], y_val=ts.y[va]).c_
    expected = {"points_mql": PointsScorer(params.evaluate.points_rules).fit(X, y),
                "odoo_naive_bayes": OdooNaiveBayes(params.evaluate.naive_bayes_fields).fit(X, y),
                "logistic_regression": LogisticPeer(seed=seed, c_grid=[c]).fit(X, y)}
    test = ts.features.iloc[split.test]
    assert set(peers) == set(expected) and peers["logistic_regression"].c_ == c
    for name, peer in peers.items():
        np.testing.assert_allclose(peer.predict_proba(test), expected[name].predict_proba(test), err_msg=name)
