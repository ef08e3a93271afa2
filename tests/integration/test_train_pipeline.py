"""End to end on the synthetic CRM: train -> MLflow run + registry -> load by alias -> batch score."""

from __future__ import annotations

import copy

import dataclasses
import json
import logging
import os
import pickle

import mlflow
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from mlflow.tracking import MlflowClient
from sklearn.metrics import roc_auc_score

from models.peers import PointsScorer
from models.scorer import LeadScorer
from models.splits import make_split
from pipelines import tracking
from pipelines.config import TableMapping
from pipelines.ingest import ContractError
from pipelines.score import score_file


def test_first_model_is_registered_as_champion_and_challenger(trained, sample_params):
    assert trained.version == "1"
    assert set(trained.aliases) == {"champion", "challenger"}
    client = MlflowClient(tracking.tracking_uri(sample_params))
    name = sample_params.tracking.registered_model
    assert str(client.get_model_version_by_alias(name, "champion").version) == "1"


def test_the_run_records_params_data_fingerprint_metrics_and_plots(trained, sample_params):
    client = MlflowClient(tracking.tracking_uri(sample_params))
    run = client.get_run(trained.run_id)
    assert run.data.params["model.calibration"] == sample_params.model.calibration
    # A list setting reads whole and as JSON, as params.yaml writes it, not as Python's repr cut at 500 characters
    # (the points rules, the MQL peer's definition, ended mid-rule).
    rules = sample_params.model_dump(mode="json")["evaluate"]["points_rules"]
    assert json.loads(run.data.params["evaluate.points_rules"]) == rules
    assert run.data.params["data.missing_values"] == json.dumps(sample_params.data.missing_values)  # ["", "Select", ...]
    assert run.data.metrics["test.roc_auc"] == pytest.approx(trained.evaluation.metrics()["roc_auc"])
    assert "label_rows.positive:converted" in run.data.metrics
    artifacts = {a.path for a in client.list_artifacts(trained.run_id, "evaluation")}
    for name in ("roc.png", "pr.png", "calibration.png", "gain.png", "feature_importance.png", "metrics.json"):
        assert f"evaluation/{name}" in artifacts
    fingerprint = json.loads(open(client.download_artifacts(trained.run_id, "data/fingerprint.json")).read())
    assert fingerprint["labelled_rows"] == len(trained.training_set.y)
    assert len(fingerprint["sha256_leads"]) == 64
    # The sample export fits the settings: no setting warning, and the run says so rather than saying nothing.
    assert trained.warnings == [] and run.data.tags[tracking.SETTING_WARNINGS] == "0"
    assert "data/setting_warnings.txt" not in {a.path for a in client.list_artifacts(trained.run_id, "data")}


def test_train_and_evaluate_title_every_plot_with_the_test_leads_it_was_computed_on(trained, sample_params):
    """A VP shown roc.png out of the MLflow UI, or pasted in a slide, must know what it describes: the titles say the
    test leads, how many and created when, as the run's data/split.json records them, for train's run and evaluate's."""
    from pipelines.evaluate import evaluate_registered

    evaluated, evaluate_run = evaluate_registered(sample_params, "challenger")
    for run_id, evaluation in ((trained.run_id, trained.evaluation), (evaluate_run, evaluated)):
        split = mlflow.artifacts.load_dict(f"runs:/{run_id}/data/split.json")
        caption = (f"test leads (n={split['test_rows']:,}, created {split['test_from'][:10]} → "
                   f"{split['test_to'][:10]})")
        titles = {name: figure.axes[0].get_title() for name, figure in evaluation.plots().items()}
        assert titles == {"roc.png": f"ROC — {caption}", "pr.png": f"Precision-recall — {caption}",
                          "calibration.png": f"Calibration — {caption}", "gain.png": f"Cumulative gain — {caption}"}
        logged = {a.path for a in MlflowClient(tracking.tracking_uri(sample_params)).list_artifacts(run_id, "evaluation")}
        assert {f"evaluation/{name}" for name in titles} <= logged


def test_the_feature_importance_plot_is_titled_with_the_leads_the_model_was_trained_on(trained, sample_params):
    """"LightGBM gain" said neither what it measures nor on which rows: the gain is the model's, on the training
    leads its run's data/split.json records, and evaluate's run of the registered model says the same rows. The
    sample's few thousand dated leads cross-validate (`model.dated_cv_max_rows`): every lead older than the test."""
    tracking.use_store(sample_params)
    split = mlflow.artifacts.load_dict(f"runs:/{trained.run_id}/data/split.json")
    pooled = split["train_rows"] + split["validation_rows"] + split["calibration_rows"]
    title = (f"Feature importance (LightGBM gain) — training leads, all older than the test leads (n={pooled:,}, "
             f"created {split['train_from'][:10]} → {split['calibration_to'][:10]})")
    registered = tracking.load_scorer(sample_params, version=trained.version)
    for scorer in (trained.scorer, registered):
        assert trained.evaluation.plots(scorer)["feature_importance.png"].axes[0].get_title() == title


def test_the_input_example_of_a_parquet_export_holds_its_values_as_the_crm_shows_them(sample_dir, tmp_path):
    """A Parquet file types its columns: employees as floats once a lead lacks them, the creation date as a timestamp.
    The example holds them as text, as a CRM sends them ("46", not 46.0), "Select" as written and the missing empty."""
    from conftest import params_for
    from pipelines.dataset import assemble
    from pipelines.train import input_example

    leads = pd.read_csv(sample_dir / "leads.csv", parse_dates=["created_at"])
    leads.loc[0, "industry"] = "Select"
    leads.to_parquet(tmp_path / "leads.parquet")
    params = params_for(sample_dir, tmp_path, **{"data.leads": str(tmp_path / "leads.parquet")})

    example = input_example(assemble(params), params)

    first = leads.head(5)
    assert pd.isna(first["employees"]).any() and first["employees"].dtype == "float64"  # what the file holds
    assert example["employees"].fillna("").tolist() == ["" if pd.isna(n) else str(int(n)) for n in first["employees"]]
    assert example["created_at"].tolist() == first["created_at"].astype(str).tolist()
    assert example.loc[0, "industry"] == "Select"


def test_the_registered_version_says_what_it_was_trained_on_without_opening_its_run(trained, sample_params):
    """The VP reads the registry alone: each version names the export's as-of date and the training key of its run,
    the run is tagged with the kind of command that logged it, and the model says what it is and how versions are
    promoted. A version carried only its run's id; a training run had no `kind` tag, an evaluate run had."""
    client = MlflowClient(tracking.tracking_uri(sample_params))
    run = client.get_run(trained.run_id)
    assert run.data.tags["kind"] == "train"
    version = client.get_model_version(sample_params.tracking.registered_model, trained.version)
    assert version.tags["as_of"] == run.data.tags["as_of"] == str(trained.training_set.as_of)
    assert version.tags["training_key"] == run.data.tags["training_key"]
    assert version.tags["run_id"] == trained.run_id
    description = client.get_registered_model(sample_params.tracking.registered_model).description
    assert "champion" in description and "leadscore promote" in description


def test_the_explanation_benchmarks_model_run_is_named_as_the_benchmark(tmp_path, monkeypatch_session):
    """`python -m pipelines.bench_explain` trains a model it never registers: its run read "train (dry run, not
    registered) 2025-12-31", as if someone had run `leadscore train`. It is named as the benchmark's, by the one rule
    for runs that log a model (`train.model_run_name`)."""
    from pipelines.bench_explain import _trained_on_synthetic

    before = mlflow.get_tracking_uri()
    try:
        _, ts = _trained_on_synthetic(1500, 1, tmp_path)
    finally:  # the benchmark points MLflow at its throw-away store: back, without pinning MLFLOW_TRACKING_URI (use_store)
        mlflow.set_tracking_uri(before)
        os.environ.pop("MLFLOW_TRACKING_URI", None)
    store = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    runs = store.search_runs([e.experiment_id for e in store.search_experiments()])
    assert [r.info.run_name for r in runs] == [f"bench_explain (dry run, not registered) {ts.as_of:%Y-%m-%d}"]


def test_a_description_the_user_gave_the_registered_model_is_kept(sample_dir, tmp_path):
    from conftest import FAST, params_for
    from pipelines.train import train

    params = params_for(sample_dir, tmp_path, **FAST)
    tracking.configure(params, create=True)
    client = MlflowClient(tracking.tracking_uri(params))
    client.create_registered_model(params.tracking.registered_model, description="EMEA inbound scores, owner: RevOps")
    train(params)
    assert client.get_registered_model(params.tracking.registered_model).description == "EMEA inbound scores, owner: RevOps"


def test_the_run_keeps_the_setting_warnings_training_printed(sample_dir, tmp_path):
    """A RevOps engineer opening the run a month later sees that the model learnt from lead fields only, not just
    the console that trained it: the count as a tag to filter runs on, the sentences in data/setting_warnings.txt."""
    from conftest import FAST, params_for
    from pipelines.train import train

    activities = tmp_path / "activities.csv"
    pd.read_csv(sample_dir / "activities.csv", nrows=0).to_csv(activities, index=False)
    params = params_for(sample_dir, tmp_path, **{**FAST, "data.activities": str(activities)})
    result = train(params)
    warning = (f"data.activities ({activities}) has no activity row (its header only): every lead trains as never "
               "active, so the model learns from lead fields only")
    assert result.warnings == [warning]
    client = MlflowClient(tracking.tracking_uri(params))
    assert client.get_run(result.run_id).data.tags[tracking.SETTING_WARNINGS] == "1"
    assert open(client.download_artifacts(result.run_id, "data/setting_warnings.txt")).read() == f"{warning}\n"


def test_peers_are_scored_on_the_test_rows_and_leadscore_beats_the_manual_ones(trained, sample_params):
    table = trained.evaluation.table
    assert {"leadscore", "points_mql", "odoo_naive_bayes", "logistic_regression"} <= set(table.index)
    assert table["rows"].nunique() == 1 and table["positives"].nunique() == 1
    # Recomputed from the split's test rows: the MQL points (a fixed rule, nothing fitted) rank them
    # exactly as the table says, and leadscore's own scores of those rows give its AUC.
    ts = trained.training_set
    test = make_split(ts.created_at, pd.Series(ts.y), sample_params.evaluate.split, sample_params.model.seed).test
    rules = PointsScorer(sample_params.evaluate.points_rules).fit(ts.features, ts.y)  # the fit sets no points
    points = rules.points(ts.features.iloc[test])
    assert roc_auc_score(ts.y[test], points) == pytest.approx(table.loc["points_mql", "roc_auc"], abs=1e-12)
    assert roc_auc_score(ts.y[test], trained.scorer.predict_proba(ts.features.iloc[test], ts.age_days[test])) == pytest.approx(
        table.loc["leadscore", "roc_auc"], abs=1e-12)
    auc = table["roc_auc"]
    assert auc["leadscore"] > auc["points_mql"] + 0.05 and auc["leadscore"] > auc["odoo_naive_bayes"] + 0.03
    assert auc["leadscore"] >= auc["logistic_regression"] - 0.01  # on small data the two are close
    # The synthetic CRM has real but bounded signal: a model that solves it would mean a leak.
    assert 0.7 < auc["leadscore"] < 0.92


def test_peers_promise_the_conversions_the_table_counts_not_the_label_policys_weighted_rate(trained, sample_params):
    """A soft negative (nurture, bad timing) did not convert, and the table counts it so. Fit with it as half a
    lead, the peers promised the weighted rate: the points and logistic peers' mean probability on the
    sample's test rows was 0.034 and 0.025 above its conversion rate (0.011 and 0.003 counting leads),
    flattering leadscore's log loss and ECE beside them."""
    from models.peers import OdooNaiveBayes

    ts = trained.training_set
    split = make_split(ts.created_at, pd.Series(ts.y), sample_params.evaluate.split, sample_params.model.seed)
    # The peers learn from every row leadscore learns from (pipelines.evaluate.fit_peers).
    train, test = np.sort(np.concatenate([split.train, split.validation, split.calibration])), split.test
    assert (ts.weights[train] < 1).sum() > 100  # the sample's soft negatives
    probabilities = trained.evaluation.test_probabilities
    # The points peer is a Platt map of the marketing points: over the leads it was fit on it promises
    # what they converted at, so on the test leads it is the map fit with every learning lead counted once.
    points = PointsScorer(sample_params.evaluate.points_rules).fit(ts.features.iloc[train], ts.y[train])
    assert points.predict_proba(ts.features.iloc[train]).mean() == pytest.approx(ts.y[train].mean(), abs=1e-3)
    np.testing.assert_allclose(probabilities["points_mql"], points.predict_proba(ts.features.iloc[test]), rtol=1e-6)
    # Odoo's lead scoring counts won and lost leads, one each.
    odoo = OdooNaiveBayes(sample_params.evaluate.naive_bayes_fields).fit(ts.features.iloc[train], ts.y[train])
    np.testing.assert_allclose(probabilities["odoo_naive_bayes"], odoo.predict_proba(ts.features.iloc[test]), rtol=1e-9)
    table = trained.evaluation.table
    for peer in ("points_mql", "logistic_regression"):
        assert abs(table.loc[peer, "mean_p"] - table.loc[peer, "positive_rate"]) < 0.02, table


def test_probabilities_hold_for_leads_still_open_weeks_after_creation(trained, sample_params):
    """The CRM re-scores open leads as they change: a lead open for a month must get its real odds.

    (Trained on every lead as it looked 3 days in, the model predicted about half the observed
    conversion of leads still open at 30 days.)"""
    by_age = trained.evaluation.by_age.set_index("age_days")
    assert list(by_age.index) == sample_params.features.snapshot_days
    month = by_age.loc[30]
    assert month["leads"] >= 200
    assert abs(month["predicted"] - month["observed"]) < 0.06, by_age
    run = MlflowClient(tracking.tracking_uri(sample_params)).get_run(trained.run_id)
    assert run.data.metrics["test.calibration_gap.age_30d"] == pytest.approx(month["predicted"] - month["observed"])


def test_new_leads_are_promised_what_new_leads_convert_at(trained, sample_params):
    """A lead decided within days is only ever seen young, so one margin-to-probability map under-states
    every new lead, the ones the CRM scores on arrival. The calibrator's age shifts, fit on the
    calibration leads at every age they were open, bring new test leads closer to what they convert at.
    On this small CRM the other ages gain little (on the 20k-lead demo the mean gap halves)."""
    from models.card import model_card
    from pipelines.dataset import open_at_ages

    scorer, ts = trained.scorer, trained.training_set
    assert scorer.calibrator.age_grid == sample_params.features.snapshot_days and any(scorer.calibrator.age_shift)
    one_map = copy.deepcopy(scorer)
    one_map.calibrator.age_grid, one_map.calibrator.age_shift = [], []
    test = make_split(ts.created_at, pd.Series(ts.y), sample_params.evaluate.split, sample_params.model.seed).test
    gaps = {"by age": [], "one map": []}
    for at_age in open_at_ages(ts, test, scorer.features, sample_params.features.snapshot_days):
        ages = np.full(len(at_age.y), at_age.age_days)
        gaps["by age"].append(len(ages) * abs(scorer.predict_proba(at_age.features, ages).mean() - at_age.y.mean()))
        gaps["one map"].append(len(ages) * abs(one_map.predict_proba(at_age.features).mean() - at_age.y.mean()))
        if at_age.age_days == 0:
            assert abs(gaps["by age"][-1]) < abs(gaps["one map"][-1])
    assert sum(gaps["by age"]) < 1.1 * sum(gaps["one map"])
    card = model_card(scorer, sample_params, evaluation=trained.evaluation)
    assert "Shifted by lead age (log-odds per snapshot age" in card and f"0 d {scorer.calibrator.age_shift[0]:+.2f}" in card
    # The sample's model cross-validates (model.dated_cv_max_rows): its shifts come from the fold models.
    assert "fit on every non-test lead at every age it was open, scored by the fold models that never saw it" in card


def test_the_model_is_also_measured_on_every_open_lead_a_crm_queue_holds(trained, sample_params):
    """Test rows see each lead at one age; a CRM's queue holds every lead at every age it is open.
    The pooled figures are over exactly the (lead, age) pairs of the by-age table."""
    by_age, pooled = trained.evaluation.by_age, trained.evaluation.while_open
    assert pooled["rows"] == by_age["leads"].sum() > len(trained.evaluation.y_test)
    assert pooled["mean_p"] == pytest.approx(np.average(by_age["predicted"], weights=by_age["leads"]))
    assert pooled["positive_rate"] == pytest.approx(np.average(by_age["observed"], weights=by_age["leads"]))
    assert 0.65 < pooled["roc_auc"] < 0.92 and pooled["ece"] < sample_params.retrain.max_ece
    metrics = MlflowClient(tracking.tracking_uri(sample_params)).get_run(trained.run_id).data.metrics
    assert metrics["test.while_open.roc_auc"] == pytest.approx(pooled["roc_auc"])
    assert metrics["test.while_open.rows"] == pooled["rows"]


def test_probabilities_promise_real_conversions_not_the_policy_weighted_rate(trained, sample_params, tmp_path):
    """Soft negatives (nurture, bad timing) count half in the models' loss, but they did not convert.

    On the calibration window of a model fit on windows (the demo's; the sample's size cross-validates, whose
    calibrator learns the same weights: tests/model/test_train_cv.py), weighted like the leads open at each age,
    the mean probability is the real conversion rate. Calibrated on the policy weights instead, the demo model
    promised 16.3% to test leads of whom 14.4% converted."""
    from conftest import params_for
    from pipelines.train import fit_model

    ts = trained.training_set
    params = params_for(tmp_path, tmp_path, **{"model.dated_cv_max_rows": 0})
    split = make_split(ts.created_at, pd.Series(ts.y), params.evaluate.split, params.model.seed)
    scorer = fit_model(ts, split, params)
    rows = split.calibration
    weights = ts.calibration_weights[rows]
    real = np.average(ts.y[rows], weights=weights)
    promised = np.average(scorer.predict_proba(ts.features.iloc[rows], ts.age_days[rows]), weights=weights)
    assert promised == pytest.approx(real, abs=0.002)
    assert np.average(ts.y[rows], weights=weights * ts.weights[rows]) - real > 0.01  # what policy weights teach


def test_the_model_card_shows_calibration_by_age_and_names_an_age_it_misjudges(trained, sample_params):
    from models.card import model_card

    card = model_card(trained.scorer, sample_params, evaluation=trained.evaluation)
    assert "By lead age (test leads still open at each age" in card
    assert f"({trained.evaluation.while_open['rows']:,.0f} pairs): AUC " in card
    by_age = trained.evaluation.by_age.assign(predicted=trained.evaluation.by_age["observed"])
    by_age.loc[by_age.index[-1], "predicted"] += 0.2
    card = model_card(trained.scorer, sample_params, evaluation=dataclasses.replace(trained.evaluation, by_age=by_age))
    oldest = by_age.iloc[-1]
    assert f"Leads still open {oldest['age_days']:g} days after creation are over-scored" in card
    assert card.count("-scored: predicted") == 1  # the well-calibrated ages are not listed


def test_the_model_card_says_which_way_more_of_each_amount_moves_the_score(trained, sample_params):
    """A rep reads "22 employees (leads that convert usually have more)"; the analyst showing the card to a VP sees
    what that rests on: per amount signal whether more raises or lowers the score, up to which amount, in the words
    of a factor, learned or declared (the sample's params declare that days since the last activity never raise the
    score and a rise in activity never lowers it), and the amount's median among converting leads, which a factor's
    comparison with them holds against. A model pickled before it kept the directions shows nothing new; one before it
    kept the medians says it did not keep them."""
    from features.phrases import AmountDirection, describe, phrasebook
    from models.card import model_card

    scorer = trained.scorer
    book = phrasebook(scorer.features)
    tracking.use_store(sample_params)
    card = mlflow.artifacts.load_text(f"runs:/{trained.run_id}/model_card.md")
    assert "## Which way more of an amount moves the score" in card
    assert scorer.amount_directions and any(d.up_to < np.inf for d in scorer.amount_directions.values())
    declared = {d.signal: d.monotone for d in scorer.catalog if d.monotone}
    for signal, (more, up_to, converting) in scorer.amount_directions.items():
        row = trained.training_set.features.head(1).copy()
        row[[d.name for d in book.features[signal]]] = np.nan  # the amount alone: an activity's count over 90 days
        row[book.amount_feature(signal).name] = up_to
        words = "any amount" if up_to == np.inf else describe(row, scorer.features)[0][signal].iloc[0]
        how = "raises the score" if more > 0 else "lowers the score"
        known = (f"declared (features.monotone_{'increasing' if more > 0 else 'decreasing'})" if signal in declared
                 else "learned from the fitted model")
        assert f"| {signal} | {how} | {words} | {known} |" in card, signal
        if signal in ("employees", "activity_recency"):  # one amount, its median in a factor's words
            row[book.amount_feature(signal).name] = converting[book.amount_feature(signal).name]
            assert f"| {known} | {describe(row, scorer.features)[0][signal].iloc[0]} |" in card, signal
    assert "| activity_recency | lowers the score | any amount | declared (features.monotone_decreasing) |" in card
    assert "| engagement_trend | raises the score | any amount | declared (features.monotone_increasing) |" in card
    assert '"… (leads that convert were usually seen more recently)"' in card  # the words those rows stand behind
    old = copy.copy(scorer)
    del old.__dict__["amount_directions"]  # as a scorer pickled before it kept them loads
    before, now = (model_card(s, sample_params, evaluation=trained.evaluation) for s in (old, scorer))
    assert before == now.replace(now[now.index("## Which way"):now.index("## Metrics")], "")  # only the section
    old.amount_directions = {signal: AmountDirection(d.more, d.up_to) for signal, d in scorer.amount_directions.items()}
    assert "| not kept (a model trained before it kept them) |" in model_card(old, sample_params)


def test_pyfunc_model_loaded_by_alias_scores_crm_rows(trained, sample_params, sample_dir):
    tracking.use_store(sample_params)
    model = mlflow.pyfunc.load_model(f"models:/{sample_params.tracking.registered_model}@champion")
    leads = pd.read_csv(sample_dir / "leads.csv", dtype=str)
    rows = pd.concat([leads.head(20), leads[leads["created_at"] > "2025-12-01"].head(10)])  # old leads, and new ones
    out = model.predict(rows, params={"as_of": "2026-01-01"})
    assert out["lead_id"].tolist() == rows["lead_id"].tolist()
    # The registered model is the one trained: the same scores as the scorer in memory, as of the date asked.
    expected = trained.scorer.score(rows, as_of=pd.Timestamp("2026-01-01")).scores
    pd.testing.assert_frame_equal(out.reset_index(drop=True), expected.reset_index(drop=True))
    assert out["probability"].nunique() > 10  # real scores, not one constant
    # Past the 120-day horizon on 2026-01-01: the leads of the export created long before, not the new ones.
    assert out["past_horizon"].dtype == bool and out["past_horizon"].tolist() == [True] * 20 + [False] * 10
    # Logged as code, not as a cloudpickled wrapper: loading unpickles no wrapper, training warns of none.
    flavor = mlflow.models.Model.load(f"models:/{sample_params.tracking.registered_model}@champion").flavors
    assert flavor["python_function"]["loader_module"] == "mlflow.pyfunc.loaders.code_model"


def test_the_pyfunc_model_scores_each_lead_with_the_activities_its_row_holds(trained, sample_params, sample_dir):
    """The registered model took lead rows alone, so it scored every lead as never active, saying nothing: the model
    learnt most from activity (a demo request, pricing views), and on the synthetic CRM's test leads the MLflow model
    ranked at AUC 0.70 where `leadscore score --activities` ranks them at 0.77. A lead's row now holds its activities
    as JSON text, the list `/score` takes per lead, and scores as `leadscore score` scores it with them."""
    tracking.use_store(sample_params)
    model = mlflow.pyfunc.load_model(f"models:/{sample_params.tracking.registered_model}@champion")
    assert "activities" in model.metadata.get_input_schema().input_names()
    leads = pd.read_csv(sample_dir / "leads.csv", dtype=str)
    activities = pd.read_csv(sample_dir / "activities.csv", dtype=str)
    rows = leads[leads["lead_id"].isin(activities["lead_id"]) & (leads["created_at"] > "2025-11-01")].head(30)
    theirs = activities[activities["lead_id"].isin(rows["lead_id"])]
    lists = {lead: acts.drop(columns="lead_id").to_json(orient="records") for lead, acts in theirs.groupby("lead_id")}
    with_activities = rows.assign(activities=rows["lead_id"].map(lists))

    out = model.predict(with_activities, params={"as_of": "2026-01-01"})

    expected = trained.scorer.score(rows, theirs, as_of=pd.Timestamp("2026-01-01")).scores
    pd.testing.assert_frame_equal(out.reset_index(drop=True), expected.reset_index(drop=True))
    alone = model.predict(rows, params={"as_of": "2026-01-01"})
    assert (out["probability"].to_numpy() != alone["probability"].to_numpy()).sum() > 20  # the activity counted
    # A cell that is no list of activities, or an activity the contract refuses, is refused naming the lead's row.
    broken = with_activities.assign(activities=[lists[rows["lead_id"].iloc[0]], "not json"] + [None] * (len(rows) - 2))
    with pytest.raises(ContractError, match=r"request row 2, column 'activities': not a JSON list of activities"):
        model.predict(broken, params={"as_of": "2026-01-01"})
    broken = with_activities.assign(activities=[None, '[{"occurred_at": "2025-12-01", "activity": "demo_request"}, '
                                                '{"occurred_at": "someday", "activity": "demo_request"}]']
                                   + [None] * (len(rows) - 2))
    with pytest.raises(ContractError, match=r"request row 2, activities row 2, column 'occurred_at': unparsable date"):
        model.predict(broken, params={"as_of": "2026-01-01"})


def test_the_pyfunc_model_warns_when_its_rows_have_no_activities_column(trained, sample_params, sample_dir, caplog):
    """Rows without an `activities` column scored every lead as never active without a word: plausible scores, only
    lower (a mean probability of 0.13 where the leads' activities give 0.18). Each predict now logs a warning naming
    the column and its format; a column whose every cell is empty (new leads, none active yet) is no omission."""
    tracking.use_store(sample_params)
    model = mlflow.pyfunc.load_model(f"models:/{sample_params.tracking.registered_model}@champion")
    rows = pd.read_csv(sample_dir / "leads.csv", dtype=str).head(10)

    with caplog.at_level(logging.WARNING, logger="pipelines.tracking"):
        without = model.predict(rows, params={"as_of": "2026-01-01"})
    warned = [r.getMessage() for r in caplog.records if r.name == "pipelines.tracking"]
    assert len(warned) == 1
    assert "no 'activities' column: their 10 leads are scored as never active" in warned[0]
    assert '[{"occurred_at": "2025-06-04", "activity": "demo_request"}]' in warned[0]
    assert list(without.columns) == list(trained.scorer.score(rows.head(1)).scores.columns)  # callers' columns kept

    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="pipelines.tracking"):
        empty = model.predict(rows.assign(activities=None), params={"as_of": "2026-01-01"})
    assert [r for r in caplog.records if r.name == "pipelines.tracking"] == []
    pd.testing.assert_frame_equal(empty, without)


def test_the_logged_input_example_shows_the_first_leads_activities_as_the_model_reads_them(trained, sample_params,
                                                                                          sample_dir, caplog):
    """The input example, which the MLflow UI shows on the model's page, held lead rows alone: nothing told a caller
    the `activities` column or its format. It now holds the first leads' activities as the model reads them, JSON
    text in the CRM's field names, without their lead id (the example's ids are made up) or free-text detail, and
    MLflow logs it against the signature without a warning."""
    from pipelines.train import input_example

    leads = pd.read_csv(sample_dir / "leads.csv", dtype=str)
    activities = pd.read_csv(sample_dir / "activities.csv", dtype=str)
    first = leads.head(5)
    tracking.use_store(sample_params)
    example = mlflow.models.Model.load(trained.model_uri).load_input_example(trained.model_uri)

    lists = [json.loads(cell) if isinstance(cell, str) else [] for cell in example["activities"]]
    expected = [activities.loc[activities["lead_id"] == lead, ["occurred_at", "activity"]].to_dict("records")
                for lead in first["lead_id"]]
    assert sum(map(len, expected)) > 0
    assert [[{"occurred_at": a["occurred_at"][:10], "activity": a["activity"]} for a in acts] for acts in lists] == [
        [{"occurred_at": a["occurred_at"][:10], "activity": a["activity"]} for a in acts] for acts in expected]
    assert not any(lead in cell for lead in leads["lead_id"] for cell in example["activities"].dropna())
    # It scores as the first leads score with their activities.
    scores = mlflow.pyfunc.load_model(trained.model_uri).predict(example, params={"as_of": "2026-01-01"})
    theirs = activities[activities["lead_id"].isin(first["lead_id"])]
    assert np.allclose(scores["probability"], trained.scorer.score(first, theirs, as_of=pd.Timestamp("2026-01-01"))
                       .scores["probability"])
    # Logged again, MLflow checks it against the signature: no warning.
    mlflow_log = logging.getLogger("mlflow")
    mlflow_log.addHandler(caplog.handler)
    try:
        with caplog.at_level(logging.WARNING, logger="mlflow"), tracking.start_run("train", "input example"):
            tracking.log_scorer(trained.scorer, input_example(trained.training_set, sample_params, activities=True))
    finally:
        mlflow_log.removeHandler(caplog.handler)
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == []


def test_a_leads_column_named_activities_is_refused_where_the_model_reads_activities(sample_dir, tmp_path):
    """The MLflow model takes each lead's activities in an `activities` column: a leads export with a column of
    that name of its own (a count of activities) trained a model whose signature had one column for both, which read
    the CRM's count as a list of activities. Training a model that reads activities on it is refused, naming the
    column, before the fit; a model that reads none keeps it as the leads' own."""
    from conftest import FAST, params_for
    from pipelines.dataset import assemble
    from pipelines.retrain import retrain
    from pipelines.train import input_example, train

    leads = pd.read_csv(sample_dir / "leads.csv", dtype=str).assign(activities="3")
    leads.to_csv(tmp_path / "leads.csv", index=False)
    for table in ("outcomes", "activities"):
        (tmp_path / f"{table}.csv").write_bytes((sample_dir / f"{table}.csv").read_bytes())
    params = params_for(tmp_path, tmp_path, **FAST)

    refused = r"the leads export has a column 'activities', the name under which the MLflow model takes each lead's"
    with pytest.raises(ValueError, match=refused):
        train(params)
    with pytest.raises(ValueError, match=refused):
        retrain(params)
    assert MlflowClient().search_registered_models() == []  # nothing registered
    assert mlflow.search_runs(search_all_experiments=True).empty  # refused before fitting, not once the model is logged
    assert "activities" in input_example(assemble(params), params).columns
    dropped = params_for(tmp_path, tmp_path, **FAST, **{"data.drop_columns": ["activities"]})  # the CRM's left out
    assert input_example(assemble(dropped), dropped, activities=True)["activities"].notna().any()


def test_a_model_that_reads_no_activity_reads_the_leads_own_activities_column(sample_dir, tmp_path):
    """A model that reads no activity left its leads' own `activities` column (a CRM's count of them) out of every
    row it scored, as if it held the activity lists, though its signature lists it as the leads' column: a feature
    on it was read as missing for every lead. Such a model reads it as the leads' own column."""
    from conftest import FAST, params_for
    from pipelines.train import train

    leads = pd.read_csv(sample_dir / "leads.csv", dtype=str)
    counts = pd.read_csv(sample_dir / "activities.csv", dtype=str)["lead_id"].value_counts()
    leads = leads.assign(activities=leads["lead_id"].map(counts).fillna(0).astype(int).astype(str))
    leads.to_csv(tmp_path / "leads.csv", index=False)
    (tmp_path / "outcomes.csv").write_bytes((sample_dir / "outcomes.csv").read_bytes())
    params = params_for(tmp_path, tmp_path, **FAST, **{"data.activities": None, "features.activity_types": [],
                                                       "features.numeric": ["employees", "activities"],
                                                       "features.monotone_increasing": [],
                                                       "features.monotone_decreasing": [],
                                                       "features.phrases.activities": "{number} activities logged",
                                                       "evaluate.points_rules": [{"feature": "activities", "op": ">=",
                                                                                  "value": 5, "points": 20}]})
    result = train(params)
    assert not result.scorer.reads_activities

    model = mlflow.pyfunc.load_model(result.model_uri)
    rows = leads.head(30)
    out = model.predict(rows, params={"as_of": "2026-01-01"})
    expected = result.scorer.score(rows, as_of=pd.Timestamp("2026-01-01")).scores
    pd.testing.assert_frame_equal(out.reset_index(drop=True), expected.reset_index(drop=True))
    assert not out["probability"].equals(model.predict(rows.assign(activities="0"),
                                                       params={"as_of": "2026-01-01"})["probability"])


def test_the_pyfunc_model_reads_a_files_numbers_as_leadscore_score_does(trained, sample_dir):
    """The MLflow model's rows are a file's text (`pd.read_csv(path, dtype=str)`, its input example the export's
    first leads as written): a Salesforce report's "1,200" employees, read by training with data.decimal_mark: point,
    was refused by the model as no number, and so was its own input example (MLflow warned when logging it)."""
    from pipelines.tracking import LeadScorerModel

    rows = pd.read_csv(sample_dir / "leads.csv", dtype=str).head(3)
    for mark, written, number in (("point", "1,200", "1200"), ("comma", "1.200", "1200"),
                                  ("auto", "1,234,567", "1234567")):
        model = LeadScorerModel()
        model.scorer = dataclasses.replace(trained.scorer,
                                           data=trained.scorer.data.model_copy(update={"decimal_mark": mark}))
        out = model.predict(None, rows.assign(employees=written), params={"as_of": "2026-01-01"})
        expected = trained.scorer.score(rows.assign(employees=number), as_of=pd.Timestamp("2026-01-01")).scores
        pd.testing.assert_frame_equal(out, expected)


def test_the_model_input_example_holds_the_crms_own_columns_and_none_it_lacks(sample_dir, tmp_path):
    """The logged model's input example (and so its signature) is what the CRM sends: an export that names
    columns its own way and has no phone, company or campaign column (X Education's has no e-mail or creation date
    either) gave an example listing those contract columns, empty, as inputs of a model that never read them."""
    from conftest import params_for
    from pipelines.dataset import assemble
    from pipelines.train import input_example

    leads = pd.read_csv(sample_dir / "leads.csv", dtype=str).drop(columns=["phone", "company", "campaign"])
    leads = leads.rename(columns={"lead_id": "Lead ID", "lead_source": "Lead Source"})
    leads.loc[0, "industry"] = "Select"  # X Education's 'not answered' (data.missing_values)
    leads.loc[1, "employees"] = "674"  # a number, which training reads as 674.0
    leads.to_csv(tmp_path / "leads.csv", index=False)
    outcomes = pd.read_csv(sample_dir / "outcomes.csv", dtype=str).rename(columns={"lead_id": "Lead ID"})
    outcomes.to_csv(tmp_path / "outcomes.csv", index=False)
    activities = pd.read_csv(sample_dir / "activities.csv", dtype=str).rename(columns={"lead_id": "Lead ID"})
    activities.to_csv(tmp_path / "activities.csv", index=False)
    mapping = {"leads": {"Lead ID": "lead_id", "Lead Source": "lead_source"}, "outcomes": {"Lead ID": "lead_id"},
               "activities": {"Lead ID": "lead_id"}}
    params = params_for(tmp_path, tmp_path, **{"data.mapping": mapping})

    example = input_example(assemble(params), params)

    assert list(example.columns) == list(leads.columns)
    # The values as the file writes them, what the CRM sends: not the cleaned 674.0, nor "Select" made empty. The
    # lead id and e-mail are made up (the next test).
    read = [column for column in leads.columns if column not in ("Lead ID", "email")]
    pd.testing.assert_frame_equal(example[read], leads.head(5)[read], check_dtype=False)


def test_a_column_mapped_from_two_names_keeps_the_exports_own_in_the_input_example(sample_dir, tmp_path):
    """A mapping naming a column twice, the export's `Create Date` and the CRM API's `createdate` (HubSpot's, which the
    service receives), gave the example, and so the model's signature, neither the export's name nor the API's
    (absent from the file): the logged model then refused the export's own rows for lacking 'Create Date'."""
    from conftest import params_for
    from pipelines.dataset import assemble
    from pipelines.train import input_example

    leads = pd.read_csv(sample_dir / "leads.csv", dtype=str).rename(columns={"created_at": "Create Date",
                                                                             "lead_source": "Original Source"})
    leads.to_csv(tmp_path / "leads.csv", index=False)
    for table in ("outcomes", "activities"):
        (tmp_path / f"{table}.csv").write_bytes((sample_dir / f"{table}.csv").read_bytes())
    mapping = {"leads": {"Create Date": "created_at", "createdate": "created_at", "Original Source": "lead_source",
                         "hs_analytics_source": "lead_source"}}
    params = params_for(tmp_path, tmp_path, **{"data.mapping": mapping})

    example = input_example(assemble(params), params)

    assert list(example.columns) == list(leads.columns)
    pd.testing.assert_frame_equal(example[["Create Date", "Original Source"]],
                                  leads.head(5)[["Create Date", "Original Source"]], check_dtype=False)


def test_the_logged_input_example_shows_no_real_persons_data_and_scores(trained, sample_params, sample_dir):
    """Anyone who can read the MLflow run reads the model's input example: the export's first leads with their id,
    e-mail, phone and company made up in the same shape (the e-mail's domain kept, as the features read it; a phone
    still a phone), the rest as the file writes them, and the model scores it."""
    export = pd.read_csv(sample_dir / "leads.csv", dtype=str)
    first = export.head(5)
    tracking.use_store(sample_params)  # `trained`'s store, whatever another test trained in
    example = mlflow.models.Model.load(trained.model_uri).load_input_example(trained.model_uri)

    for column in ("lead_id", "email", "phone", "company"):
        assert not set(example[column].dropna()) & set(export[column].dropna()), column
        assert example[column].isna().tolist() == first[column].isna().tolist(), column
    assert ([email.split("@")[1] for email in example["email"]] == [email.split("@")[1] for email in first["email"]])
    assert (example["phone"].str.replace(r"\d", "9", regex=True).dropna().tolist()
            == first["phone"].str.replace(r"\d", "9", regex=True).dropna().tolist())
    others = [column for column in first.columns if column not in ("lead_id", "email", "phone", "company")]
    pd.testing.assert_frame_equal(example[others], first[others], check_dtype=False)

    scores = mlflow.pyfunc.load_model(trained.model_uri).predict(example)
    assert len(scores) == len(example) and scores["probability"].between(0, 1).all()


def test_the_input_example_of_tables_put_together_in_code_makes_up_personal_values_too(sample_params, sample_dir):
    """Tables a caller puts together (no source read, so no `leads_as_read`) give the example their own leads, with
    the id, e-mail, phone and company made up as an export's are: no path logs a real person's data."""
    from pipelines.dataset import assemble
    from pipelines.ingest import CRMData, load_crm
    from pipelines.train import input_example

    read = load_crm(sample_params)
    built = CRMData(read.leads, read.activities, read.outcomes, read.report)

    example = input_example(assemble(sample_params, crm=built), sample_params)

    export = pd.read_csv(sample_dir / "leads.csv", dtype=str)
    for column in ("lead_id", "email", "phone", "company"):
        assert not set(example[column].dropna()) & set(export[column].dropna()), column
    assert example["industry"].fillna("").tolist() == read.leads["industry"].head(5).fillna("").tolist()


def test_pyfunc_model_refuses_rows_it_cannot_score_by_row_instead_of_leaving_them_out(trained, sample_params, sample_dir):
    tracking.use_store(sample_params)
    model = mlflow.pyfunc.load_model(f"models:/{sample_params.tracking.registered_model}@champion")
    rows = pd.read_csv(sample_dir / "leads.csv", dtype=str).head(5)
    rows.loc[2, "created_at"] = "yesterday"
    with pytest.raises(ContractError, match=r"row 3, column 'created_at': unparsable date 'yesterday'") as refused:
        model.predict(rows, params={"as_of": "2026-01-01"})
    # What to do about it in scoring's words: there is no export to load without them.
    assert str(refused.value).endswith("no row of this batch was scored: fix these rows or leave them out, and score it again")
    assert "data.on_error" not in str(refused.value)
    with pytest.raises(ContractError, match="missing required column 'lead_id'"):
        model.predict(rows.drop(columns="lead_id"), params={"as_of": "2026-01-01"})


def test_batch_scoring_writes_scores_and_a_rejects_file(trained, sample_params, sample_dir, tmp_path):
    scorer = tracking.load_scorer(sample_params, "champion")
    leads = pd.read_csv(sample_dir / "leads.csv", dtype=str).head(500)
    leads.loc[[3, 7], "created_at"] = "not a date"
    leads.loc[200, "created_at"] = "2026-03-01 09:00:00"  # after --as-of: the lead did not exist yet
    leads.loc[300, "created_at"] = "2026-01-01 20:00:00"  # the same day: a clock or a zone off, scored
    source = tmp_path / "leads.csv"
    leads.to_csv(source, index=False)
    summary = score_file(scorer, source, tmp_path / "scores.csv", activities_path=sample_dir / "activities.csv",
                         as_of=pd.Timestamp("2026-01-01"), chunk_size=128, progress=False)
    scores = pd.read_csv(tmp_path / "scores.csv")
    assert (summary.rows_read, summary.rows_scored, summary.rows_rejected) == (500, 497, 3)
    assert len(scores) == 497 and scores["lead_id"].is_unique
    rejects = pd.read_csv(summary.rejects)
    assert rejects["row"].tolist() == [4, 8, 201]
    assert rejects["problems"].str.contains("created_at").all()
    assert ("is after the time it is scored as of (2026-01-01 00:00:00 UTC): the lead did not exist yet"
            in rejects["problems"][2])
    # The same leads scored in one chunk or many get the same scores.
    whole = scorer.score(leads.drop(index=[3, 7, 200]), pd.read_csv(sample_dir / "activities.csv", dtype=str),
                         as_of=pd.Timestamp("2026-01-01")).scores
    columns = ["lead_id", "probability", "score", "tier", "past_horizon"]
    pd.testing.assert_frame_equal(scores[columns], whole[columns].reset_index(drop=True), check_dtype=False)
    assert 0 < summary.rows_past_horizon == scores["past_horizon"].sum() < len(scores)
    # The score is the probability in percent; the tier the frozen threshold it reaches, whatever the chunk.
    assert (scores["score"] == np.clip(np.rint(100 * scores["probability"]), 1, 99)).all()
    assert (scores["tier"] == scorer.tiers.assign(scores["probability"].to_numpy())).all()
    # Scored again once the rows are fixed, the output has no rejects file left from the run before.
    leads.loc[[3, 7, 200], "created_at"] = "2025-06-01"
    leads.to_csv(source, index=False)
    again = score_file(scorer, source, tmp_path / "scores.csv", as_of=pd.Timestamp("2026-01-01"), progress=False)
    assert (again.rows_scored, again.rejects) == (500, None) and not (tmp_path / "scores.rejects.csv").exists()


def test_batch_scores_written_as_parquet_are_the_csv_scores_one_row_group_per_chunk(trained, sample_dir, tmp_path):
    """`--output scores.parquet`: the rows and values the CSV gets, factor columns included, typed."""
    leads = pd.read_csv(sample_dir / "leads.csv", dtype=str).head(250)
    leads.to_csv(tmp_path / "leads.csv", index=False)
    leads.head(0).to_csv(tmp_path / "no_leads.csv", index=False)

    def scored(source: str, output: str):
        return score_file(trained.scorer, tmp_path / source, tmp_path / output, chunk_size=100, top_factors=2,
                          activities_path=sample_dir / "activities.csv", as_of=pd.Timestamp("2026-01-01"),
                          progress=False)

    as_csv, as_parquet = scored("leads.csv", "scores.csv"), scored("leads.csv", "scores.parquet")
    written = pd.read_parquet(as_parquet.output)
    assert as_parquet.output == tmp_path / "scores.parquet" and as_parquet.rows_scored == 250
    pd.testing.assert_frame_equal(written, pd.read_csv(as_csv.output, dtype={"lead_id": str}),
                                  check_dtype=False, check_exact=False, rtol=1e-12)
    parquet = pq.ParquetFile(as_parquet.output)
    assert parquet.num_row_groups == 3  # chunks of 100, 100 and 50 leads, appended in order
    types = {field.name: field.type for field in parquet.schema_arrow}
    assert types["probability"] == pa.float64() and pa.types.is_integer(types["score"])
    assert types["past_horizon"] == pa.bool_()
    assert all(pa.types.is_string(types[c]) or pa.types.is_large_string(types[c])
               for c in ["lead_id", "tier", "likely_rejection_reason", "top_positive_1"])
    # A file without leads still gets the columns.
    empty = pd.read_parquet(scored("no_leads.csv", "none.parquet").output)
    assert len(empty) == 0 and list(empty.columns) == list(written.columns)


@pytest.mark.parametrize("columns, missing", [(["lead_id", "email"], "created_at"), (["email", "created_at"], "lead_id")])
def test_batch_scoring_refuses_a_file_missing_a_required_column(trained, sample_params, tmp_path, columns, missing):
    source = tmp_path / "leads.csv"
    values = {"lead_id": ["a", "b"], "email": ["x@y.com", "z@y.com"], "created_at": ["2025-01-01", "2025-01-02"]}
    pd.DataFrame({c: values[c] for c in columns}).to_csv(source, index=False)
    with pytest.raises(ContractError, match=f"missing required column '{missing}'"):
        score_file(trained.scorer, source, tmp_path / "out.csv", progress=False)


def test_loading_a_missing_alias_says_what_to_do(trained, sample_params):
    """A model name never trained, in a store that exists (one that does not is refused: `use_store`)."""
    never_trained = sample_params.model_copy(update={"tracking": sample_params.tracking.model_copy(
        update={"registered_model": "never-trained"})})
    with pytest.raises(LookupError, match="leadscore train"):
        tracking.load_scorer(never_trained, "no-such-alias")


def test_an_alias_the_model_lacks_is_named_with_the_aliases_it_has(trained, sample_params):
    """A typo in --alias must not send the user to train a model that exists."""
    with pytest.raises(LookupError, match=r"with alias 'champoin' in .*: its aliases are .*champion \(v1\)") as err:
        tracking.load_scorer(sample_params, "champoin")
    assert "leadscore train" not in str(err.value)


def test_evaluate_compares_a_registered_model_with_the_champion_and_peers_on_the_training_test_rows(trained, sample_params):
    from pipelines.evaluate import evaluate_registered

    evaluation, run_id = evaluate_registered(sample_params, "challenger")
    table = evaluation.table
    assert {"challenger", "points_mql", "odoo_naive_bayes", "logistic_regression"} <= set(table.index)
    # The first model is challenger and champion at once: one row, and the notes say why there is no other.
    assert "champion" not in table.index and evaluation.versions == {"challenger": str(trained.version)}
    assert evaluation.notes == [f"challenger v{trained.version} is also the champion: there is no other version to compare it with"]
    # Same export, same split: the registered model scores its own untouched test rows exactly as in training.
    assert table.loc["challenger", "roc_auc"] == pytest.approx(trained.evaluation.metrics()["roc_auc"])
    # The loaded model runs the installed code (no stale copy inside the artifact): it is this LeadScorer,
    # so evaluate finds it and reports its tiers.
    assert type(tracking.load_scorer(sample_params, "challenger")) is LeadScorer
    assert list(evaluation.tiers.index) == trained.scorer.tiers.names
    run = MlflowClient(tracking.tracking_uri(sample_params)).get_run(run_id)
    assert run.data.tags["kind"] == "evaluate"
    # The run says what it judged and with which settings, as the training run does, not a random name
    # and no params: the VP comparing it with the training run finds the same split and settings there.
    training = MlflowClient(tracking.tracking_uri(sample_params)).get_run(trained.run_id)
    as_of = trained.training_set.as_of
    assert run.info.run_name == f"evaluate challenger v{trained.version} {as_of:%Y-%m-%d}"
    assert run.data.params == training.data.params
    assert run.data.tags["split"] == training.data.tags["split"] == "out_of_time"
    # The same calibration by lead age as training reported for these test leads.
    pd.testing.assert_frame_equal(evaluation.by_age, trained.evaluation.by_age)
    assert run.data.metrics["challenger.calibration_gap.age_30d"] == pytest.approx(
        trained.evaluation.by_age_metrics("test")["test.calibration_gap.age_30d"])
    assert evaluation.while_open == pytest.approx(trained.evaluation.while_open, nan_ok=True)


def test_evaluate_as_of_an_earlier_date_says_the_model_was_fit_on_its_test_leads(trained, sample_params):
    """Evaluated as of a date before the one it was trained as of, a model's 'test' leads are ones it learned
    from: the table would pass its training fit off as performance on unseen leads, above the peers'."""
    from pipelines.evaluate import evaluate_registered

    began = make_split(trained.training_set.created_at, pd.Series(trained.training_set.y),
                       sample_params.evaluate.split, sample_params.model.seed).date_ranges["test"][0]
    evaluation, _ = evaluate_registered(sample_params, "challenger", as_of=began - pd.Timedelta(days=30))

    tested = int(evaluation.table.loc["challenger", "rows"])
    assert evaluation.notes[0] == (
        f"challenger v{trained.version} was fit on {tested:,} of the {tested:,} test leads (created before "
        f"{began:%Y-%m-%d}): its figures are optimistic, while the peers never saw them")


def test_bad_activity_rows_are_reported_against_the_activity_file_and_leads_still_score(trained, sample_dir, tmp_path):
    leads = pd.read_csv(sample_dir / "leads.csv", dtype=str).head(50)
    activities = pd.read_csv(sample_dir / "activities.csv", dtype=str)
    activities = activities[activities["lead_id"].isin(leads["lead_id"])].reset_index(drop=True)
    activities.loc[1, "occurred_at"] = "last tuesday"
    leads.to_csv(tmp_path / "leads.csv", index=False)
    activities.to_csv(tmp_path / "activities.csv", index=False)
    summary = score_file(trained.scorer, tmp_path / "leads.csv", tmp_path / "scores.csv",
                         activities_path=tmp_path / "activities.csv", as_of=pd.Timestamp("2026-01-01"), progress=False)
    assert (summary.rows_scored, summary.rows_rejected, summary.activities_rejected) == (50, 0, 1)
    assert summary.activities_valid == summary.activities_used == len(activities) - 1  # each belongs to a lead
    rejects = pd.read_csv(summary.activity_rejects)
    assert rejects["row"].tolist() == [2] and "last tuesday" in rejects.loc[0, "problems"]


def test_batch_scoring_counts_category_values_the_model_never_saw_by_crm_column(trained, sample_dir, tmp_path):
    """Marketing added TikTok as a lead source after the last retrain: its leads score as the model's other
    level, and the summary says how many, per value, under the CRM's own column name."""
    data = trained.scorer.data.model_copy(update={"mapping": TableMapping(leads={"Lead Source": "lead_source"})})
    scorer = dataclasses.replace(trained.scorer, data=data)
    leads = pd.read_csv(sample_dir / "leads.csv", dtype=str).head(300)
    leads.loc[0:19, "lead_source"] = "TikTok"
    leads.loc[20:29, "lead_source"] = "tiktok "  # the same value as features compare text
    leads.loc[150:154, "lead_source"] = "Threads"  # in another chunk
    leads.loc[155:159, "lead_source"] = None  # missing is not a new value
    leads.rename(columns={"lead_source": "Lead Source"}).to_csv(tmp_path / "leads.csv", index=False)

    def scored(scorer: LeadScorer, output: str):
        return score_file(scorer, tmp_path / "leads.csv", tmp_path / output, as_of=pd.Timestamp("2026-01-01"),
                          chunk_size=100, progress=False)

    summary = scored(scorer, "scores.csv")
    assert summary.rows_scored == 300
    # One value as the model compares it, spelled as the file does most ("TikTok" 20 times, "tiktok " 10)
    assert summary.unseen_values["Lead Source"] == {"TikTok": 30, "Threads": 5}
    assert "lead_source" not in summary.unseen_values
    # A model pickled before encoders remembered their training values scores the same and tells nothing.
    old_encoder = object.__new__(type(scorer.encoder))
    old_encoder.__dict__.update({k: v for k, v in scorer.encoder.__getstate__().items() if k != "seen"})
    old = scored(dataclasses.replace(scorer, encoder=pickle.loads(pickle.dumps(old_encoder))), "old.csv")
    assert old.rows_scored == 300 and old.unseen_values is None
    written, old_written = pd.read_csv(summary.output), pd.read_csv(old.output)
    assert old_written["never_seen"].isna().all()
    pd.testing.assert_frame_equal(old_written.drop(columns="never_seen"), written.drop(columns="never_seen"))
    # Each lead names its own, as the file wrote it (trimmed)
    named = written["never_seen"].dropna().map(lambda text: json.loads(text)["Lead Source"])
    assert named.value_counts().to_dict() == {"TikTok": 20, "tiktok": 10, "Threads": 5}


def test_the_never_seen_summary_names_a_mapped_value_as_the_file_writes_it_and_counts_it_as_mapped(trained, sample_dir,
                                                                                                   tmp_path):
    """The CRM writes 'TT' for a new source that data.value_maps renames 'TikTok': the summary names 'TT', as marketing
    finds it in the file (not the model's 'tiktok'); 'Ref' mapped to 'Referral', a source the model learned, is no
    new value."""
    maps = {"lead_source": {"TT": "TikTok", "Ref": "Referral"}}
    data = trained.scorer.data.model_copy(update={"mapping": TableMapping(leads={"Lead Source": "lead_source"}),
                                                  "value_maps": maps})
    scorer = dataclasses.replace(trained.scorer, data=data)
    leads = pd.read_csv(sample_dir / "leads.csv", dtype=str).head(200)
    leads.loc[0:11, "lead_source"] = "TT"
    leads.loc[12:14, "lead_source"] = "tiktok"  # the same value once mapped, written less often
    leads.loc[15:40, "lead_source"] = "Ref"
    leads.rename(columns={"lead_source": "Lead Source"}).to_csv(tmp_path / "leads.csv", index=False)
    summary = score_file(scorer, tmp_path / "leads.csv", tmp_path / "scores.csv", as_of=pd.Timestamp("2026-01-01"),
                         progress=False)
    assert summary.rows_scored == 200
    assert summary.unseen_values == {"Lead Source": {"TT": 15}}
