"""Quarterly retraining: the gate, cold start, feedback merge, manual alias moves and the model card.

The synthetic CRM carries a planted drop in web_organic's quality from 2025Q2. The champion is trained
before the drop; a challenger trained after it must be promoted, one trained on shuffled labels refused.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import mlflow
import numpy as np
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient
from typer.testing import CliRunner

from models.explain import explain
from models.peers import PointsScorer
from models.splits import make_split
from pipelines import tracking
from pipelines.cli import app
from pipelines.dataset import assemble
from pipelines.ingest import load_crm
from pipelines.history import feedback_outcomes, history_as_of, merge_feedback
from pipelines.retrain import decide, fit_cold_start_scorer, promote, retrain, rollback
from pipelines.synthetic import SourceShift, generate_crm, write_crm
from conftest import FAST, params_for

SHIFT = SourceShift(source="web_organic", from_quarter=5)  # 2025Q2 on, with quarters from 2024-01-01
BEFORE_SHIFT = pd.Timestamp("2025-04-01")


@pytest.fixture(scope="module")
def shifted_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("shifted_crm")
    write_crm(generate_crm(6000, seed=11, shift=SHIFT), out)
    return out


@pytest.fixture(scope="module")
def registry(shifted_dir, tmp_path_factory, monkeypatch_session):
    """Params whose registry holds one champion, trained before the planted drop."""
    from pipelines.train import train

    params = params_for(shifted_dir, tmp_path_factory.mktemp("registry"), **FAST)
    train(params, as_of=BEFORE_SHIFT)
    return params


def champion_version(params) -> str:
    tracking.configure(params)
    return str(MlflowClient().get_model_version_by_alias(params.tracking.registered_model, tracking.CHAMPION).version)


# ----------------------------------------------------------------------------- champion vs challenger


def test_a_challenger_trained_after_the_shift_is_promoted(registry):
    before = champion_version(registry)

    result = retrain(registry)

    assert result.promoted and result.decision.promote, result.lines()
    assert champion_version(registry) == result.challenger_version != before
    metrics = result.metrics
    assert list(metrics.index) == ["champion", "challenger"]
    assert metrics.loc["challenger", "rows"] == metrics.loc["champion", "rows"]  # the same window rows
    assert metrics.loc["challenger", "roc_auc"] >= metrics.loc["champion", "roc_auc"] - registry.retrain.max_auc_drop
    version = MlflowClient().get_model_version(registry.tracking.registered_model, result.challenger_version)
    assert version.tags["previous_champion"] == before
    assert version.tags["promotion_reason"].startswith("retrain as of 2025-12-31") and "ok: challenger AUC" in version.tags["promotion_reason"]
    run = mlflow.get_run(result.run_id)
    assert run.data.tags["retrain"] == "true" and run.data.tags["decision"] == "promoted"
    assert run.data.tags["kind"] == "retrain" and mlflow.get_run(result.challenger_run_id).data.tags["kind"] == "train"
    # The runs list tells the challenger retrain trained from a plain `train` on the same export date, by version.
    assert mlflow.get_run(result.challenger_run_id).info.run_name == f"retrain challenger v{result.challenger_version} 2025-12-31"
    champion_run = MlflowClient().get_model_version(registry.tracking.registered_model, before).run_id
    assert mlflow.get_run(champion_run).info.run_name == f"train v{before} {BEFORE_SHIFT:%Y-%m-%d}"
    assert {"champion.roc_auc", "challenger.roc_auc", "challenger.ece"} <= set(run.data.metrics)
    # What each model learned from, under the comparison window: last quarter's champion and this challenger.
    lines = result.lines()
    window = lines.index(f"comparison window: {result.window}")
    assert lines[window + 1].startswith(f"  champion v{before} trained as of {BEFORE_SHIFT:%Y-%m-%d} on ")
    assert lines[window + 1].endswith(f" closed leads, MLflow run {champion_run}")
    assert lines[window + 2] == (f"  challenger v{result.challenger_version} trained as of 2025-12-31 on "
                                 f"{result.closed_leads:,} closed leads, MLflow run {result.challenger_run_id}")


def test_a_challenger_trained_on_shuffled_labels_is_refused(registry):
    crm = load_crm(registry)
    ts = assemble(registry, crm=crm)
    split = make_split(ts.created_at, pd.Series(ts.y), registry.evaluate.split, registry.model.seed)
    window_start = ts.created_at.iloc[split.test].min()
    # Scramble who converted among the leads the challenger learns from; the window keeps its real outcomes.
    created = crm.leads.set_index("lead_id")["created_at"]
    older = (created.reindex(crm.outcomes["lead_id"]) < window_start).to_numpy()
    outcomes = crm.outcomes.copy()
    order = np.random.default_rng(0).permutation(older.sum())
    for column in ("status", "reason", "amount"):
        outcomes.loc[older, column] = outcomes.loc[older, column].to_numpy()[order]
    before = champion_version(registry)

    result = retrain(registry, crm=crm.__class__(crm.leads, crm.activities, outcomes, crm.report),
                     feedback=crm.outcomes.iloc[:0])

    assert not result.promoted and not result.decision.promote
    assert result.decision.checks["auc_vs_champion"] is False
    assert any(r.startswith("FAILED: challenger AUC") for r in result.decision.reasons)
    assert champion_version(registry) == before
    refused = MlflowClient().get_model_version(registry.tracking.registered_model, result.challenger_version)
    assert "FAILED" in refused.tags["retrain_refused"]
    assert "ok:" not in refused.tags["retrain_refused"]  # promote's note shows why it was refused, not what passed
    assert mlflow.get_run(result.run_id).data.tags["decision"] == "refused"
    # A human may overrule the gate: the summary ends with the command, as train and evaluate print it.
    assert result.lines()[-1] == (f"to serve v{result.challenger_version} anyway: leadscore promote --version "
                                  f"{result.challenger_version} --reason \"...\"")


def test_cold_start_never_replaces_a_learned_champion(registry):
    before = champion_version(registry)
    thin = registry.model_copy(update={"retrain": registry.retrain.model_copy(update={"min_closed_leads": 10**6})})

    result = retrain(thin)  # as if the export held too few closed leads

    assert result.cold_start and "cold start" in result.cold_start
    assert not result.promoted and champion_version(registry) == before
    assert any("never replaced by the cold-start peer" in r for r in result.decision.reasons)


def test_retraining_as_of_a_date_before_the_champions_training_is_refused(registry):
    client, name = MlflowClient(), registry.tracking.registered_model
    before, versions = champion_version(registry), len(client.search_model_versions(f"name='{name}'"))
    trained = pd.Timestamp(tracking.load_scorer(registry, tracking.CHAMPION).info["as_of"])

    for dry_run in (True, False):
        with pytest.raises(ValueError, match=rf"retrain as of 2024-10-01: champion v{before} was trained on what had "
                                             rf"matured by {trained:%Y-%m-%d}, later than that; .*leadscore backtest"):
            retrain(registry, as_of=pd.Timestamp("2024-10-01"), dry_run=dry_run)

    assert champion_version(registry) == before
    assert len(client.search_model_versions(f"name='{name}'")) == versions  # nothing registered


def test_the_registered_version_carries_its_model_card(registry):
    client = MlflowClient()
    version = client.get_model_version(registry.tracking.registered_model, "1")
    card = mlflow.artifacts.load_text(f"runs:/{version.run_id}/model_card.md")

    assert card.startswith("# Model card: leadscore v1")
    for section in ("## Data window", "## Label policy", "## Features", "## Metrics vs peers", "## Calibration",
                    "## Known limits"):
        assert section in card
    assert "outcomes known as of 2025-04-01" in card  # the data window is the training as-of date
    assert "| reason bad_timing | soft_negative |" in card
    assert "| points_mql |" in card and "| odoo_naive_bayes |" in card
    assert "demo_requested" in card
    assert "Lead fields (industry, employees, job title, e-mail, phone, ...) are read as the export holds them" in card
    assert version.description.startswith("# Model card: leadscore v1") and "model_card.md" in version.description


# ----------------------------------------------------------------------------- cold start


def test_cold_start_ships_the_points_peer_through_the_one_inference_path(tmp_path, monkeypatch_session):
    crm_dir = tmp_path / "crm"
    write_crm(generate_crm(700, seed=3), crm_dir)
    params = params_for(crm_dir, tmp_path, **FAST)

    dry = retrain(params, dry_run=True)
    assert dry.cold_start and dry.verdict.startswith("dry run: would promote")
    assert not MlflowClient().search_model_versions(f"name='{params.tracking.registered_model}'")
    assert mlflow.get_run(dry.challenger_run_id).info.run_name == f"cold start peer (dry run, not registered) {dry.as_of:%Y-%m-%d}"

    result = retrain(params)
    assert result.cold_start and result.promoted
    scorer = tracking.load_scorer(params)
    assert scorer.booster is None and isinstance(scorer.logistic, PointsScorer) and scorer.info["cold_start"]

    raw = pd.read_csv(crm_dir / "leads.csv", dtype=str).head(300)
    activities = pd.read_csv(crm_dir / "activities.csv", dtype=str)
    batch = scorer.score(raw, activities[activities["lead_id"].isin(raw["lead_id"])], as_of=pd.Timestamp("2026-01-01"))
    features, _, _ = scorer.build(raw, activities, as_of=pd.Timestamp("2026-01-01"))
    points = scorer.logistic.points(features)
    by_points = batch.scores.assign(points=points).sort_values(["points", "probability"])
    assert not batch.problems
    assert by_points["probability"].is_monotonic_increasing  # the score ranks exactly as the points do
    explained = explain(scorer, features.head(20), top_k=3)  # reps get reasons from the peer as well
    np.testing.assert_allclose([e.base + sum(f.contribution for f in e.factors) for e in explained],
                               scorer.margin(features.head(20)), atol=1e-6)
    assert any(f.signal == "demo_request" for e in explained for f in e.factors)
    card = mlflow.artifacts.load_text(f"runs:/{result.challenger_run_id}/model_card.md")
    assert "cold-start peer **points_mql**" in card


def test_a_dry_runs_challenger_run_says_it_registered_nothing(sample_dir, tmp_path, monkeypatch_session):
    """`leadscore retrain --dry-run` logs its challenger's run and registers no version: named 'retrain challenger
    2025-12-31' beside the 'retrain challenger v3 2025-12-31' of real retrains, it read as a version whose number was
    lost. The retrain run judging it says it is a dry run too."""
    params = params_for(sample_dir, tmp_path, **FAST)

    dry = retrain(params, dry_run=True)

    assert not dry.cold_start and not dry.challenger_version
    assert not MlflowClient().search_model_versions(f"name='{params.tracking.registered_model}'")
    name = mlflow.get_run(dry.challenger_run_id).info.run_name
    assert name == f"retrain challenger (dry run, not registered) {dry.as_of:%Y-%m-%d}"
    assert mlflow.get_run(dry.run_id).info.run_name == f"retrain (dry run) {dry.as_of:%Y-%m-%d}"  # no --as-of given


def test_the_cold_start_peer_folds_a_level_too_rare_for_its_rows_into_other_as_a_learned_model_would(sample_params):
    """On many closed leads with few conversions, the shipped peer's levels follow its row count as a learned
    model's do: on 60,000 training rows a level 12 of them have is too rare for a level of its own."""
    ts = assemble(sample_params)
    copies = -(-100_000 // len(ts.y))
    y = np.tile(ts.y, copies)
    split = make_split(None, pd.Series(y), sample_params.evaluate.split, sample_params.model.seed)
    fit_rows = np.concatenate([split.train, split.validation])  # what the peer learns from
    assert len(fit_rows) >= 60_000
    features = pd.concat([ts.features] * copies)
    features.index = [f"{lead}-{i}" for i in range(copies) for lead in ts.features.index]
    features.iloc[split.train[:12], features.columns.get_loc("lead_source")] = "partner_portal"
    common = features["lead_source"].iloc[fit_rows].value_counts().index[0]
    big = dataclasses.replace(ts, features=features, y=y, weights=np.tile(ts.weights, copies),
                              calibration_weights=np.tile(ts.calibration_weights, copies))

    scorer = fit_cold_start_scorer(big, split, sample_params, "cold start")
    assert "partner_portal" in scorer.encoder.seen["lead_source"]  # seen in training, so not reported as new
    assert "partner_portal" not in scorer.encoder.levels["lead_source"]  # but read as a rare value
    assert common in scorer.encoder.levels["lead_source"]


def test_the_cold_start_peer_names_category_values_as_the_export_spelled_them(sample_dir, tmp_path):
    """A young CRM writing "Web Organic" ships the points peer: its factors say "Lead source: Web Organic", as the
    learned model's do, not the lower-cased "web organic" the model compares."""
    leads = pd.read_csv(sample_dir / "leads.csv", dtype=str, keep_default_na=False)
    leads["lead_source"] = leads["lead_source"].str.replace("_", " ").str.title()  # "web_organic" -> "Web Organic"
    leads.to_csv(tmp_path / "leads.csv", index=False)
    params = params_for(sample_dir, tmp_path, **{"data.leads": str(tmp_path / "leads.csv")})
    ts = assemble(params)
    split = make_split(ts.created_at, pd.Series(ts.y), params.evaluate.split, params.model.seed)

    scorer = fit_cold_start_scorer(ts, split, params, "cold start")

    row = ts.features[ts.features["lead_source"] == "web organic"].head(1)
    (factor,) = [f for f in explain(scorer, row)[0].factors if f.signal == "lead_source"]
    assert (factor.phrase, factor.value) == ("Lead source: Web Organic", "Web Organic")


def test_retraining_on_the_same_data_and_params_registers_no_copy_of_the_champion(tmp_path, monkeypatch_session):
    """A quarterly job run twice on one export must not put an identical version in service; --force still can."""
    crm_dir = tmp_path / "crm"
    write_crm(generate_crm(700, seed=3), crm_dir)
    params = params_for(crm_dir, tmp_path, **FAST)
    first = retrain(params)
    client, name = MlflowClient(), params.tracking.registered_model  # on the store retrain configured
    assert first.promoted and champion_version(params) == first.challenger_version

    again = retrain(params)

    assert again.unchanged and not again.promoted and again.challenger_version == ""
    assert len(client.search_model_versions(f"name='{name}'")) == 1 and champion_version(params) == first.challenger_version
    assert again.lines()[-1].startswith(f"unchanged: champion v{first.challenger_version} was trained on this same data "
                                        "with these same params and code")
    assert mlflow.get_run(again.run_id).data.tags["decision"] == "unchanged"
    reseeded = params.model_copy(update={"model": params.model.model_copy(update={"seed": params.model.seed + 1})})
    assert not retrain(reseeded, dry_run=True).unchanged  # another parameter: another model
    forced = retrain(params, force=True)
    assert not forced.unchanged and forced.challenger_version == "2"


def test_rerunning_a_refused_retrain_judges_the_refused_version_again_and_registers_no_copy(tmp_path, monkeypatch_session):
    """The quarterly job re-run after the gate refused its challenger (the champion, trained on other data, stays):
    the same data and params would fit the same model, so the refused version is judged again, not copied."""
    crm_dir = tmp_path / "crm"
    write_crm(generate_crm(700, seed=3), crm_dir)
    params = params_for(crm_dir, tmp_path, **FAST)
    first = retrain(params.model_copy(update={"model": params.model.model_copy(update={"seed": params.model.seed + 1})}))
    strict = params.model_copy(update={"retrain": params.retrain.model_copy(update={"max_ece": 0.0})})
    refused = retrain(strict)
    assert not refused.promoted and refused.challenger_version == "2"
    assert mlflow.get_run(refused.challenger_run_id).info.run_name == f"cold start peer v2 {refused.as_of:%Y-%m-%d}"
    client, name = MlflowClient(), params.tracking.registered_model

    again = retrain(strict)

    assert len(client.search_model_versions(f"name='{name}'")) == 2 and champion_version(params) == first.challenger_version
    assert again.reused and not refused.reused and not again.promoted and again.challenger_version == "2"
    assert again.metrics.equals(refused.metrics) and again.decision == refused.decision
    assert f"challenger v2 was already trained on this same data with these same params and code (run {refused.challenger_run_id})" \
        in "\n".join(again.lines())
    assert again.lines()[-2] == f"refused v2: champion stays v{first.challenger_version}"
    assert mlflow.get_run(again.run_id).data.tags["challenger_reused"] == "true"
    loose = params.model_copy(update={"retrain": params.retrain.model_copy(update={"max_ece": 1.0, "min_conversions": 1})})
    loosened = retrain(loose)  # the gate fits nothing: loosening it judges the refused model again, it trains no copy
    assert loosened.reused and loosened.challenger_version == "2" and len(client.search_model_versions(f"name='{name}'")) == 2
    assert loosened.promoted and champion_version(params) == "2"
    # the refusal it overcame is no longer its verdict (`promote` shows retrain_refused as one)
    assert "retrain_refused" not in client.get_model_version(name, "2").tags
    assert retrain(strict, force=True).challenger_version == "3"  # --force still trains one


def test_a_retrain_after_the_crm_relabelled_its_activities_says_every_count_is_zero(tmp_path, monkeypatch_session):
    """A CRM admin renames 'demo_request' to 'Requested Demo' between quarters: the quarterly command must say so."""
    crm_dir = tmp_path / "crm"
    write_crm(generate_crm(700, seed=3), crm_dir)
    activities = pd.read_csv(crm_dir / "activities.csv", dtype=str)
    activities["activity"] = activities["activity"].str.replace("_", " ").str.title()
    activities.to_csv(crm_dir / "activities.csv", index=False)

    result = retrain(params_for(crm_dir, tmp_path, **FAST), dry_run=True)

    (note,) = [n for n in result.warnings if n.startswith("features.activity_types")]
    assert "counts are 0 for every lead" in note and "data.value_maps.activity" in note
    assert f"WARNING {note}" in result.lines()  # worded as train and the other commands print it
    for run_id in (result.run_id, result.challenger_run_id):  # the retrain's decision and the challenger it trained
        run = mlflow.get_run(run_id)
        assert run.data.tags[tracking.SETTING_WARNINGS] == str(len(result.warnings))
        assert note in mlflow.artifacts.load_text(f"{run.info.artifact_uri}/data/setting_warnings.txt").splitlines()


def test_a_rejection_reason_new_this_quarter_is_named_in_the_retrain_summary_and_its_run(tmp_path, monkeypatch_session):
    """Sales starts rejecting with 'wrong_region', which label.reasons does not list: it trains as unknown_reason
    (a negative), and the quarterly command must say so and where to declare it, as train does."""
    crm_dir = tmp_path / "crm"
    write_crm(generate_crm(700, seed=3), crm_dir)
    outcomes = pd.read_csv(crm_dir / "outcomes.csv", dtype=str)
    outcomes.loc[outcomes["reason"].eq("no_budget"), "reason"] = "wrong_region"
    outcomes.to_csv(crm_dir / "outcomes.csv", index=False)

    result = retrain(params_for(crm_dir, tmp_path, **FAST), dry_run=True)

    line, warning = [line for line in result.lines() if "unknown_reason" in line]
    assert line.startswith("  label rule negative:unknown_reason: ") and "'wrong_region'" in line and "label.reasons" in line
    # Among some 15 rule lines it is easily missed: it is repeated with retrain's other warnings, kept in its run.
    assert warning == "WARNING " + line.strip() and result.lines().index(warning) > result.lines().index(line)
    run = mlflow.get_run(result.run_id)
    summary = mlflow.artifacts.load_text(f"{run.info.artifact_uri}/retrain/summary.txt")
    assert {line, warning} <= set(summary.splitlines())
    assert line.strip() in mlflow.artifacts.load_text(f"{run.info.artifact_uri}/data/setting_warnings.txt").splitlines()


def test_a_lead_source_new_in_the_last_months_is_named_as_not_learned_by_the_challenger(tmp_path, monkeypatch_session):
    """Marketing added a G2 listing lately: its decided leads are all in the comparison window, which the challenger
    is tested on, not fit on. The summary says the challenger never saw it, as the export writes it, with its leads."""
    crm_dir = tmp_path / "crm"
    write_crm(generate_crm(700, seed=3), crm_dir)
    leads = pd.read_csv(crm_dir / "leads.csv", dtype=str)
    leads.loc[pd.to_datetime(leads["created_at"]) >= "2025-06-01", "lead_source"] = "G2 Marketplace"  # 7 months ago
    leads.to_csv(crm_dir / "leads.csv", index=False)

    params = params_for(crm_dir, tmp_path, **FAST)
    result = retrain(params, dry_run=True)

    ts = assemble(params, as_of=result.as_of)
    window = make_split(ts.created_at, pd.Series(ts.y), params.evaluate.split, params.model.seed).test
    planted = int(ts.features["lead_source"].iloc[window].str.lower().eq("g2 marketplace").sum())
    assert planted  # decided in the window: the note has leads to count
    (note,) = [n for n in result.notes if "never saw in training" in n]
    assert f"lead_source 'G2 Marketplace' {planted:,}" in note and "as `leadscore score` will until a later retrain" in note
    assert f"note: {note}" in result.lines()


def test_the_training_key_follows_the_files_params_and_code_and_is_none_for_sql_sources(sample_params, monkeypatch):
    fingerprint = {"leads": 10, "sha256_leads": "ab", "label_rules": {"converted": 3}}

    key = tracking.training_key(fingerprint, sample_params)

    assert key == tracking.training_key(dict(fingerprint), sample_params)
    assert key != tracking.training_key({**fingerprint, "sha256_leads": "ac"}, sample_params)  # one edited byte
    reseeded = sample_params.model_copy(update={"model": sample_params.model.model_copy(update={"seed": 99})})
    assert key != tracking.training_key(fingerprint, reseeded)
    looser = sample_params.model_copy(update={"retrain": sample_params.retrain.model_copy(update={"max_ece": 0.5})})
    assert key == tracking.training_key(fingerprint, looser)  # the gate judges a model, fits nothing
    floor = sample_params.model_copy(update={"retrain": sample_params.retrain.model_copy(update={"min_closed_leads": 5})})
    assert key != tracking.training_key(fingerprint, floor)  # the cold-start floor decides what is fitted
    assert tracking.training_key({"leads": 10, "label_rules": {"converted": 3}}, sample_params) is None
    monkeypatch.setattr(tracking, "_code_sha256", lambda: "an edited models/peers.py")  # a checkout pulled since
    assert key != tracking.training_key(fingerprint, sample_params)


def test_settings_the_fitted_scorer_never_holds_keep_the_training_key(sample_dir, tmp_path):
    """RevOps shows 5 factors instead of 3, or tightens a drift threshold: the next retrain on the same export must
    find the champion already trained on it, not train and register a copy. What the pickled scorer holds (the
    feature settings, its factors' phrases among them) or what training reads (the feedback store) is a new training."""
    fingerprint = {"leads": 10, "sha256_leads": "ab", "label_rules": {"converted": 3}}

    def key(**overrides) -> str:
        return tracking.training_key(fingerprint, params_for(sample_dir, tmp_path, **overrides))

    assert key() == key(**{"serving.top_factors": 5}) == key(**{"monitor.psi_warn": 0.2, "monitor.min_within_sla": 0.5})
    assert key() == key(**{"serving.public_url": "https://leadscore.example.com", "tracking.experiment": "q3"})
    assert key() == key(**{"serving.score_retention_days": 730})  # how long scores are kept, after the fit
    assert key() != key(**{"features.phrases": {"campaign": "From campaign {value!w} | [unknown] No campaign"}})
    assert key() != key(**{"serving.store_url": f"sqlite:///{tmp_path / 'other_store.db'}"})


def test_a_rotated_password_alone_keeps_the_training_key(sample_dir, tmp_path):
    """A new password for the CRM database, the feedback store or the tracking server is no new training: retrain
    must not train and register a copy of the champion for it. Another database is another training."""
    fingerprint = {"leads": 10, "sha256_leads": "ab", "label_rules": {"converted": 3}}

    def key(password: str, host: str = "db.example.com") -> str:
        return tracking.training_key(fingerprint, params_for(sample_dir, tmp_path, **{
            "serving.store_url": f"postgresql+psycopg://svc:{password}@{host}/leadscore",
            "tracking.uri": f"https://ops:{password}@mlflow.example.com",
            "data.sql_url": f"postgresql://crm@{host}/crm?sslmode=require&password={password}"}))

    assert key("old-s3cr3t") == key("new-s3cr3t")
    assert key("old-s3cr3t") != key("old-s3cr3t", host="db2.example.com")


@pytest.mark.parametrize("fit", ["learned", "cold start peer"])
def test_the_fitted_model_keeps_no_crm_database_password(sample_params, fit):
    """The scorer is pickled into the MLflow model and the bento, which anyone who may load the model reads: it keeps
    data.sql_url with the password hidden, as the run's params show it, never the CRM database's password."""
    import pickle

    from pipelines.train import fit_model

    ts = assemble(sample_params)  # read from the files: only the settings the scorer keeps name a database
    params = sample_params.model_copy(update={"data": sample_params.data.model_copy(
        update={"sql_url": "postgresql+psycopg://crm:s3cr3t@crm.example.com/crm"})})
    split = make_split(ts.created_at, pd.Series(ts.y), params.evaluate.split, params.model.seed)

    scorer = fit_model(ts, split, params) if fit == "learned" else fit_cold_start_scorer(ts, split, params, "cold start")

    assert b"s3cr3t" not in pickle.dumps(scorer)
    assert scorer.data.sql_url == "postgresql+psycopg://crm:***@crm.example.com/crm"


# ----------------------------------------------------------------------------- the gate


def window(champion_auc=0.70, challenger_auc=0.72, ece=0.02, positives=80.0):
    rows = {"champion": {"positives": positives, "roc_auc": champion_auc, "ece": 0.03},
            "challenger": {"positives": positives, "roc_auc": challenger_auc, "ece": ece}}
    return pd.DataFrame.from_dict(rows, orient="index")


@pytest.mark.parametrize(
    ("metrics", "leaks", "failed"),
    [
        (window(), 0, None),
        (window(challenger_auc=0.69), 0, None),  # trails by exactly max_auc_drop: still allowed
        (window(challenger_auc=0.6899), 0, "auc_vs_champion"),
        (window(ece=0.08), 0, "calibration"),
        (window(positives=12), 0, "enough_conversions"),
        (window(), 1, "no_leakage"),
        (window(challenger_auc=float("nan")), 0, "auc_vs_champion"),
    ],
)
def test_the_gate_refuses_on_each_declared_condition(sample_params, metrics, leaks, failed):
    decision = decide(metrics, leaks, sample_params)

    assert decision.promote is (failed is None)
    assert [name for name, ok in decision.checks.items() if not ok] == ([failed] if failed else [])


def test_a_challenger_trailing_the_champion_within_max_auc_drop_passes_with_the_reason_why(sample_params):
    """0.735 against 0.744 is promoted: reported as only "ok", a fresher but slightly worse model reads as a mistake."""
    def gate(max_auc_drop):
        return sample_params.model_copy(update={"retrain": sample_params.retrain.model_copy(
            update={"max_auc_drop": max_auc_drop})})

    trailing, fresher = window(champion_auc=0.7444, challenger_auc=0.7352), gate(0.02)

    decision = decide(trailing, 0, fresher, trained_as_of=("2025-03-31 00:00:00", "2025-12-31 00:00:00"))

    assert decision.promote
    assert ("ok: challenger AUC 0.7352 is 0.0092 below the champion's 0.7444, within max_auc_drop 0.02, which the gate "
            "allows a challenger for its fresher data (trained as of 2025-12-31, the champion as of 2025-03-31)"
            in decision.reasons)
    same_day = decide(trailing, 0, fresher, trained_as_of=("2025-12-31 00:00:00", "2025-12-31 09:00:00"))
    assert any(r.endswith("within max_auc_drop 0.02, which the gate allows a newly trained challenger")
               for r in same_day.reasons)  # --force or new params on the same data: not fresher, and not said to be
    refused = decide(trailing, 0, gate(0.005))
    assert ("FAILED: challenger AUC 0.7352 is 0.0092 below the champion's 0.7444, more than max_auc_drop 0.005"
            in refused.reasons)


def test_without_a_champion_the_gate_checks_the_challenger_alone(sample_params):
    decision = decide(window().drop(index="champion"), 0, sample_params)

    assert decision.promote and "auc_vs_champion" not in decision.checks
    assert "ok: no champion to beat" in decision.reasons


def test_a_cold_start_peer_never_replaces_a_learned_champion_automatically(sample_params):
    better_peer = window(challenger_auc=0.80)
    assert decide(better_peer, 0, sample_params).promote
    refused = decide(better_peer, 0, sample_params, cold_start=True)
    assert not refused.promote and refused.checks["keeps_learned_champion"] is False
    assert decide(better_peer, 0, sample_params, cold_start=True, champion_is_cold_start=True).promote


def test_the_first_version_serves_even_when_a_check_fails_and_the_reasons_say_so(sample_params):
    decision = decide(window(ece=0.08).drop(index="champion"), 0, sample_params)
    assert decision.promote and decision.checks["calibration"] is False
    assert any("no champion yet" in r for r in decision.reasons)


# ----------------------------------------------------------------------------- feedback


def crm_with(outcomes: pd.DataFrame):
    from pipelines.ingest import CRMData, IngestReport

    leads = pd.DataFrame({"lead_id": ["a", "b", "c"], "created_at": pd.to_datetime(["2025-01-01"] * 3)})
    return CRMData(leads, None, outcomes, IngestReport())


def outcomes(rows):
    return pd.DataFrame(rows, columns=["lead_id", "status", "reason", "decided_at", "amount"]).astype(
        {"decided_at": "datetime64[us]", "amount": "float64"})


def test_the_newer_decision_wins_and_feedback_for_unknown_leads_is_ignored():
    export = outcomes([("a", "rejected", "no_budget", "2025-02-01", None),
                       ("b", "converted", None, "2025-03-01", 5000.0),
                       ("c", "open", None, None, None)])
    feedback = outcomes([("a", "converted", None, "2025-04-01", 9000.0),  # newer: wins
                         ("b", "rejected", "competitor", "2025-02-15", None),  # older than the export's: loses
                         ("c", "rejected", "student", "2025-01-20", None),  # the export has no date: wins
                         ("zz", "converted", None, "2025-04-01", 100.0)])  # not in the export

    merged = merge_feedback(crm_with(export), feedback)
    stats = merged.feedback

    got = merged.outcomes.set_index("lead_id")
    assert got.loc["a", "status"] == "converted" and got.loc["a", "amount"] == 9000.0
    assert got.loc["b", "status"] == "converted"
    assert got.loc["c", "reason"] == "student"
    assert "zz" not in got.index and len(got) == 3
    assert (stats.events, stats.applied, stats.unknown_leads) == (4, 2, 1)


def test_the_feedback_line_tells_decisions_that_change_an_outcome_from_repeats_of_the_export():
    """A CRM sends /feedback the decisions its export also holds: "N replace the export's" alone read as N changes."""
    export = outcomes([("a", "rejected", "no_budget", "2025-02-01", None),
                       ("b", "converted", None, "2025-03-01", 5000.0)])
    feedback = outcomes([("a", "rejected", "no_budget", "2025-02-01", None),  # the export's own decision, repeated
                         ("b", "converted", None, "2025-03-01", 7000.0),  # same day, another amount
                         ("c", "rejected", "student", "2025-01-20", None)])  # the export has no outcome for c

    stats = merge_feedback(crm_with(export), feedback).feedback

    assert (stats.applied, stats.changed) == (3, 2)
    assert "3 replace the export's (decided later, at the same time, or undated there): 2 change a lead's outcome " \
           "or add one the export lacks, 1 repeats it" in stats.line()
    assert stats.as_dict()["changed"] == 2


def test_a_tie_goes_to_the_feedback_store_and_no_feedback_changes_nothing():
    export = outcomes([("a", "rejected", "bad_timing", "2025-02-01", None)])
    same_day = outcomes([("a", "rejected", "competitor", "2025-02-01", None)])

    assert merge_feedback(crm_with(export), same_day).outcomes.loc[0, "reason"] == "competitor"
    unchanged = merge_feedback(crm_with(export), same_day.iloc[:0])
    stats = unchanged.feedback
    assert unchanged.outcomes.equals(export) and stats.applied == 0


def test_feedback_decided_before_its_lead_was_created_is_left_out_and_named():
    export = outcomes([("a", "rejected", "no_budget", "2025-02-01", None)])
    feedback = outcomes([("a", "converted", None, "2020-01-01", 9000.0),  # years before lead a was created
                         ("b", "converted", None, "2024-12-31 12:00", 100.0)])  # half a day before: clock slack, kept

    merged = merge_feedback(crm_with(export), feedback)
    stats = merged.feedback

    got = merged.outcomes.set_index("lead_id")
    assert got.loc["a", "status"] == "rejected" and got.loc["b", "status"] == "converted"
    assert (stats.events, stats.applied) == (2, 1)
    assert ("1 decided more than a day before their lead was created (ignored, as the export's own would be: "
            "lead 'a' decided 2020-01-01, created 2025-01-01)") in stats.line()


def test_feedback_for_a_lead_merged_by_email_is_ignored_as_the_exports_outcomes_are():
    export = outcomes([("a", "rejected", "no_budget", "2025-02-01", None)])
    crm = crm_with(export)
    crm.merged_by_email = pd.Series({"a2": "a"})  # a2 had the same e-mail as the earlier lead a
    feedback = outcomes([("a2", "duplicate", None, "2025-03-01", None), ("zz", "converted", None, "2025-03-01", None)])

    merged = merge_feedback(crm, feedback)
    stats = merged.feedback

    assert merged.outcomes.set_index("lead_id")["status"].to_dict() == {"a": "rejected"}
    assert (stats.merged_leads, stats.unknown_leads) == (1, 1)
    assert stats.line().endswith(", 1 for leads not in the export (ignored), 1 for leads merged by e-mail into "
                                 "another lead (ignored, as the export's own outcomes for them are)")


def test_as_of_an_earlier_date_only_the_store_decisions_dated_by_then_are_merged_and_counted():
    """A replay or a run --as-of sees what was known then: a later decision does not hide the export's earlier one."""
    export = outcomes([("a", "rejected", "no_budget", "2025-02-01", None), ("b", "open", None, None, None)])
    feedback = outcomes([("a", "converted", None, "2025-06-01", 9000.0),  # won back after the as-of date
                         ("b", "nurture", None, "2025-03-01", None),  # b's first decision ...
                         ("b", "converted", None, "2025-05-01", 100.0)])  # ... and its second, both in the store
    history = merge_feedback(crm_with(export), feedback)

    then = history_as_of(history, pd.Timestamp("2025-04-01"))

    got = then.outcomes.set_index("lead_id")
    assert got.loc["a", ["status", "reason"]].tolist() == ["rejected", "no_budget"]
    assert got.loc["b", "status"] == "nurture"
    assert then.feedback.line() == ("feedback store: 1 lead decision, 1 replace the export's (decided later, at the "
                                    "same time, or undated there): 1 changes a lead's outcome or adds one the export lacks; 2 decisions dated after 2025-04-01 00:00 not used "
                                    "(not known then)")
    later = history_as_of(then, pd.Timestamp("2025-07-01"))  # backtest's next quarter, from the same history
    assert later.outcomes.set_index("lead_id")["status"].to_dict() == {"a": "converted", "b": "converted"}
    assert (later.feedback.events, later.feedback.applied, later.feedback.decided_later) == (2, 2, 0)


def test_as_of_a_date_decisions_for_leads_created_after_it_are_not_counted_as_not_used():
    """A lead created after the as-of date is outside that history's window (a backtest quarter's training leads, those
    monitor judges then): its decision, dated and received after the date, would not have been used had it been known
    then, so neither count of decisions "not used (not known then)" takes it."""
    crm = crm_with(outcomes([("a", "rejected", "no_budget", "2025-02-01", None)]))
    crm.leads = pd.concat([crm.leads, pd.DataFrame({"lead_id": ["newer"], "created_at": pd.to_datetime(["2025-05-01"])})],
                          ignore_index=True)
    feedback = outcomes([("a", "converted", None, "2025-06-01", 9000.0),  # won back after the as-of date
                         ("newer", "converted", None, "2025-06-01", 100.0)])
    history = merge_feedback(crm, feedback.assign(received_at=feedback["decided_at"]))
    as_of = pd.Timestamp("2025-04-01")

    dated, replayed = history_as_of(history, as_of), history_as_of(history, as_of, as_received=True)

    assert (dated.feedback.decided_later, replayed.feedback.received_later) == (1, 1)
    assert dated.feedback.line().endswith("; 1 decision dated after 2025-04-01 00:00 not used (not known then)")
    assert replayed.feedback.line().endswith("; 1 decision received after 2025-04-01 00:00 not used (not known then)")
    assert history_as_of(history, pd.Timestamp("2025-05-15")).feedback.decided_later == 2  # both leads created by then


def test_training_as_of_a_date_labels_a_lead_by_the_exports_decision_when_the_store_won_it_back_later(
        sample_dir, tmp_path):
    from serving.store import Store

    params = params_for(sample_dir, tmp_path)
    export = load_crm(params)
    as_of = pd.Timestamp("2025-06-01")
    rejected = export.outcomes[(export.outcomes["status"] == "rejected") & (export.outcomes["reason"] == "competitor")
                               & (export.outcomes["decided_at"] < as_of - pd.Timedelta(days=150))]
    lead = rejected.iloc[0]
    Store.from_params(params).add_feedback({"event_id": "won-back", "lead_id": lead["lead_id"], "status": "converted",
                                            "reason": None, "decided_at": "2025-09-01", "amount": 5000.0})

    ts = assemble(params, as_of=as_of)

    assert ts.labels.frame.loc[lead["lead_id"], "rule"] == "negative:reason:competitor"  # not open, nor expired
    pd.testing.assert_frame_equal(ts.labels.frame, assemble(params, as_of=as_of, crm=load_crm(params)).labels.frame)
    assert ts.crm.feedback.line() == ("feedback store: no sales decision dated by 2025-06-01 00:00 (the export's "
                                      "outcomes alone); 1 decision dated after 2025-06-01 00:00 not used (not known then)")


def test_training_as_of_a_date_counts_as_dated_later_only_the_store_decisions_for_leads_of_the_export(
        sample_dir, tmp_path):
    """The store also holds decisions for leads the export lacks (another pipeline's, a test lead) or merged by e-mail
    into another: train and evaluate never use those, however early they are dated, so the feedback line does not
    count them among the decisions dated after --as-of and not used. Nor one for a lead created after --as-of: it is
    outside the training window, and would not have been used had it been known then."""
    from serving.store import Store

    params = params_for(sample_dir, tmp_path)
    export = load_crm(params)
    as_of = pd.Timestamp("2025-06-01")
    created = export.leads.set_index("lead_id")["created_at"]
    assert created.iloc[0] <= as_of
    newer = created[(created > as_of) & (created < pd.Timestamp("2025-09-01"))].index[0]
    store = Store.from_params(params)
    for event, lead in [("exported", created.index[0]), ("elsewhere", "NOT-IN-THE-EXPORT"),
                        ("duplicate", export.merged_by_email.index[0]), ("created later", newer)]:
        store.add_feedback({"event_id": event, "lead_id": lead, "status": "converted", "reason": None,
                            "decided_at": "2025-09-01", "amount": 5000.0})

    ts = assemble(params, as_of=as_of)

    assert ts.crm.feedback.line() == ("feedback store: no sales decision dated by 2025-06-01 00:00 (the export's "
                                      "outcomes alone); 1 decision dated after 2025-06-01 00:00 not used (not known then)")


def test_feedback_is_read_from_the_store_and_a_missing_store_is_not_created(sample_dir, tmp_path):
    from serving.store import Store

    params = params_for(sample_dir, tmp_path)
    assert feedback_outcomes(params)[0].empty
    assert not (tmp_path / "store.db").exists()

    store = Store.from_params(params)
    for i, status in enumerate(["rejected", "converted"]):
        store.add_feedback({"event_id": f"e{i}", "lead_id": "L0000001", "status": status, "reason": None,
                            "decided_at": f"2026-01-0{i + 1}", "amount": None, "received_at": None})
    decisions, left_out = feedback_outcomes(params)
    assert decisions[["lead_id", "status"]].values.tolist() == [["L0000001", "rejected"], ["L0000001", "converted"]]
    assert left_out == 0


def test_retraining_as_of_a_date_before_any_lead_matured_is_one_line_naming_the_date(sample_dir, tmp_path):
    import yaml

    params_file = tmp_path / "params.yaml"
    params_file.write_text(yaml.safe_dump(params_for(sample_dir, tmp_path).model_dump(mode="json", exclude={"base_dir"})))

    def retrain_as_of(date: str):
        return CliRunner().invoke(app, ["retrain", "--as-of", date, "--dry-run", "--params", str(params_file)])

    unripe, before = retrain_as_of("2024-02-01"), retrain_as_of("2021-01-01")  # the first lead: 2024-01-01

    assert unripe.exit_code == before.exit_code == 1 and "Traceback" not in unripe.output + before.output
    assert unripe.output.strip().splitlines()[-1].startswith(  # above it only MLflow creating its new database
        "retrain as of 2024-02-01: 0 closed leads with 0 conversions had matured, too few to split: no labelled lead "
        "to train or evaluate on")
    assert before.output.strip().splitlines()[-1] == (
        "--as-of 2021-01-01: no lead in the export was created by then (the first was created 2024-01-01); "
        "choose a later date")


def test_the_summary_counts_stored_feedback_left_out_for_an_impossible_date_or_before_its_lead(
        tmp_path, monkeypatch_session):
    from datetime import datetime

    from serving.store import FEEDBACK, Store

    crm_dir = tmp_path / "crm"
    write_crm(generate_crm(700, seed=3), crm_dir)
    params = params_for(crm_dir, tmp_path, **FAST)
    store = Store.from_params(params)
    store.add_feedback({"event_id": "e1", "lead_id": "L0000001", "status": "converted", "reason": None,
                        "decided_at": "2025-12-01", "amount": None, "received_at": None})
    store.add_feedback({"event_id": "e2", "lead_id": "L0000004", "status": "converted", "reason": None,
                        "decided_at": "2020-06-01", "amount": None, "received_at": None})  # the service takes it
    with store.engine.begin() as conn:  # what an older service stored without checking the date
        conn.execute(FEEDBACK.insert(), [{"event_id": f"legacy{i}", "lead_id": f"L000000{i + 2}", "status": "rejected",
                                          "reason": None, "decided_at": datetime(year, 1, 1), "amount": None,
                                          "received_at": datetime(2025, 12, 1)} for i, year in enumerate([1, 2099])])

    result = retrain(params, dry_run=True)

    assert result.feedback.events == 2 and result.feedback.left_out == 2
    summary = "\n".join(result.lines())
    assert ("feedback store: 2 lead decisions, 1 replace the export's (decided later, at the same time, or undated "
            "there): 1 changes a lead's outcome or adds one the export lacks, 1 decided more than a day before their lead was created (ignored, as the export's own would be: "
            "lead 'L0000004' decided 2020-06-01, created 2024-") in summary
    assert "; 2 events with an impossible decided_at left out" in summary
    metrics = mlflow.get_run(result.run_id).data.metrics
    assert metrics["feedback_left_out"] == 2 and metrics["feedback_decided_before_created"] == 1


def test_a_retrain_as_of_a_past_date_learns_every_decision_dated_by_then_however_late_the_store_received_it(
        tmp_path, monkeypatch_session):
    """The model is trained today: a decision dated before --as-of but received after it (a webhook retried for days)
    is a label it may learn from, as train and evaluate --as-of do; only a backtest quarter, a replay of what was
    known then, leaves it out (tests/model/test_backtest.py). A decision dated after --as-of is not used."""
    from serving.store import Store

    crm_dir = tmp_path / "crm"
    write_crm(generate_crm(700, seed=3), crm_dir)
    params = params_for(crm_dir, tmp_path, **FAST)
    as_of = pd.Timestamp("2025-09-01")
    export = load_crm(params).outcomes
    first, second, third = export[(export["status"] == "rejected")
                                  & (export["decided_at"] < "2025-01-01")]["lead_id"].iloc[:3]
    store = Store.from_params(params)
    store.add_feedback({"event_id": "on-time", "lead_id": first, "status": "converted", "reason": None,
                        "decided_at": "2025-07-20", "amount": None, "received_at": "2025-07-21"})
    store.add_feedback({"event_id": "retried", "lead_id": second, "status": "converted", "reason": None,  # received
                        "decided_at": "2025-08-01", "amount": None, "received_at": "2026-01-15"})  # after the export too
    store.add_feedback({"event_id": "later", "lead_id": third, "status": "converted", "reason": None,
                        "decided_at": "2025-10-01", "amount": None, "received_at": "2025-10-02"})

    result = retrain(params, as_of=as_of, dry_run=True)

    assert (result.feedback.applied, result.feedback.decided_later, result.feedback.received_later) == (2, 1, 0)
    assert "received after" not in result.lines()[1]


# ----------------------------------------------------------------------------- promote / rollback


@pytest.fixture(scope="module")
def bookkeeping_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("bookkeeping")


@pytest.fixture()
def three_versions(sample_dir, bookkeeping_dir, request, monkeypatch_session):
    """A registered model of its own with versions 1-3 and no champion (registry bookkeeping, no real models)."""
    params = params_for(sample_dir, bookkeeping_dir, **{"tracking.registered_model": request.node.name[:60]})
    tracking.configure(params, create=True)
    client = MlflowClient()
    client.create_registered_model(params.tracking.registered_model)
    with mlflow.start_run() as run:
        pass
    for _ in range(3):
        client.create_model_version(params.tracking.registered_model, f"runs:/{run.info.run_id}/model", run.info.run_id)
    return params


def test_promote_and_rollback_record_why_and_walk_back_the_chain(three_versions):
    params, name, client = three_versions, three_versions.tracking.registered_model, MlflowClient()

    first = promote(params, 2, "launch")
    second = promote(params, "3", "Q3 retrain looked better offline")
    assert (first.previous, second.previous) == (None, "2")
    assert client.get_model_version(name, "3").tags["promotion_reason"] == "manual: Q3 retrain looked better offline"
    assert client.get_model_version(name, "2").tags["replaced_by"] == "3"

    back = rollback(params, "tier A conversion halved")
    assert (back.version, back.previous) == ("2", "3") and champion_version(params) == "2"
    assert client.get_model_version(name, "3").tags["rollback_reason"] == "tier A conversion halved"
    assert mlflow.get_run(back.run_id).data.params["reason"] == "tier A conversion halved"
    assert [mlflow.get_run(c.run_id).data.tags["kind"] for c in (first, back)] == ["promote", "rollback"]
    with pytest.raises(LookupError, match="records no previous champion"):
        rollback(params, "again")  # v2 replaced nothing: nowhere further back to go
    assert champion_version(params) == "2"


def test_a_version_serving_again_no_longer_says_it_was_replaced(three_versions):
    """v3 replaced v2, then was rolled back: v2 serves again, so its tags must not still say v3 replaced it, and v3's
    say it was rolled back to v2. Promoted again, v3 no longer says it was rolled back."""
    params, name, client = three_versions, three_versions.tracking.registered_model, MlflowClient()
    promote(params, 1, "launch")
    promote(params, 2, "Q2 retrain")
    promote(params, 3, "Q3 retrain")

    rollback(params, "tier A conversion halved")

    served, left = client.get_model_version(name, "2").tags, client.get_model_version(name, "3").tags
    assert not {"replaced_by", "replaced_at"} & set(served)
    assert served["previous_champion"] == "1"  # the next rollback still goes one step further back
    assert (left["rolled_back_to"], left["rollback_reason"]) == ("2", "tier A conversion halved")
    assert "rolled_back_at" in left

    promote(params, 3, "the halving was a CRM outage")
    served = client.get_model_version(name, "3").tags
    assert not {"rolled_back_to", "rolled_back_at", "rollback_reason"} & set(served)
    assert client.get_model_version(name, "2").tags["replaced_by"] == "3"


@contextlib.contextmanager
def _store_stops_answering(monkeypatch):
    """The tracking store fails every registry tag write inside the block, which must end in its error."""
    def store_down(self, *args, **kwargs):
        raise mlflow.exceptions.MlflowException("the store stopped answering")

    with monkeypatch.context() as patched, pytest.raises(mlflow.exceptions.MlflowException):
        patched.setattr(MlflowClient, "set_model_version_tag", store_down)
        yield


def test_a_store_failing_while_a_champion_is_promoted_leaves_the_champion_where_it_was(three_versions, monkeypatch):
    """The tracking store stops answering between the registry calls of a promotion (a retrain's or a human's):
    `champion` stays on the version it was, not moved to one recording no previous champion to roll back to."""
    params = three_versions
    promote(params, 1, "launch")

    with _store_stops_answering(monkeypatch):
        promote(params, 2, "Q3 retrain")
    assert champion_version(params) == "1"

    promote(params, 2, "Q3 retrain")  # the store is back: done again, the chain back is intact
    assert rollback(params, "tier A halved").version == "1"


def test_a_store_failing_while_a_champion_is_rolled_back_leaves_the_champion_where_it_was(three_versions, monkeypatch):
    """As for a promotion: a rollback stopped by the store midway leaves `champion` on the version it was, whose
    tags still say where to roll back to, not moved to a version whose tags say nothing of the rollback."""
    params, name, client = three_versions, three_versions.tracking.registered_model, MlflowClient()
    promote(params, 1, "launch")
    promote(params, 2, "Q3 retrain")

    with _store_stops_answering(monkeypatch):
        rollback(params, "tier A halved")
    assert champion_version(params) == "2"

    assert rollback(params, "tier A halved").version == "1"  # the store is back: done again
    assert client.get_model_version(name, "1").tags["promotion_reason"] == "rollback from v2: tier A halved"
    assert client.get_model_version(name, "2").tags["rollback_reason"] == "tier A halved"


def test_the_audit_compares_a_champion_with_the_one_it_replaced_by_default(three_versions):
    """v2 was refused by the gate and never served: the audit of v3, promoted over v1, compares with v1."""
    from pipelines.audit import default_comparison

    promote(three_versions, 1, "launch")
    promote(three_versions, 3, "Q3 retrain, v2 refused")
    assert default_comparison(three_versions, "3") == ("1", "version 1, the champion it replaced")
    assert default_comparison(three_versions, "2") == ("1", "version 1")  # never champion: the version before
    assert default_comparison(three_versions, "1") is None


def test_promote_refuses_an_unknown_version_or_a_missing_reason(three_versions):
    with pytest.raises(LookupError, match="with version 9 in "):
        promote(three_versions, 9, "typo")
    with pytest.raises(LookupError, match="with version 9 in "):
        promote(three_versions, "v9", "typo")
    with pytest.raises(ValueError, match="reason is required"):
        promote(three_versions, 1, "  ")
    with pytest.raises(ValueError, match="--version is empty"):  # an unset shell variable: not "no version  in ..."
        promote(three_versions, " ", "typo")


class RegistryDown(BaseHTTPRequestHandler):
    """A tracking server whose registry fails (503, as with its database down behind it): it answers its health
    check and experiment lookups, so a command gets past pointing MLflow at it."""

    def do_GET(self):
        if self.path.startswith("/api/2.0/mlflow/experiments/get-by-name"):
            body = {"experiment": {"experiment_id": "1", "name": "leadscore", "lifecycle_stage": "active"}}
            self._answer(200, body)
        else:
            self._answer(200 if self.path == "/health" else 503, {})

    def _answer(self, status: int, body: dict) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


def test_promote_tells_a_failing_tracking_store_from_a_version_it_lacks(sample_params, monkeypatch):
    """Any failure of the registry's lookup read as "has no version 1": a user would look for a typo in a version
    the registry holds while its server was failing."""
    before = mlflow.get_tracking_uri()
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")  # a 503 is retried for minutes otherwise
    with ThreadingHTTPServer(("127.0.0.1", 0), RegistryDown) as server:
        threading.Thread(target=server.serve_forever, daemon=True).start()
        monkeypatch.setenv("MLFLOW_TRACKING_URI", f"http://ops:s3cr3t@127.0.0.1:{server.server_port}")
        try:
            with pytest.raises(tracking.TrackingStoreFailed) as failed:
                promote(sample_params, 1, "launch")
        finally:
            server.shutdown()
            mlflow.set_tracking_uri(before)

    assert str(failed.value).startswith(f"the MLflow tracking store http://ops:***@127.0.0.1:{server.server_port} failed: ")
    assert "503" in str(failed.value) and "s3cr3t" not in str(failed.value)


def test_promoting_the_champion_again_changes_nothing_and_says_so(three_versions):
    params, name, client = three_versions, three_versions.tracking.registered_model, MlflowClient()
    promote(params, 1, "launch")
    promote(params, 2, "Q3 retrain")

    with pytest.raises(ValueError, match="--version 2: v2 is already the champion"):
        promote(params, "2", "clicked twice")

    assert client.get_model_version(name, "2").tags["promotion_reason"] == "manual: Q3 retrain"
    assert rollback(params, "tier A halved").version == "1"  # the chain back is intact


def test_the_cli_moves_aliases_and_reports_failures(three_versions, tmp_path):
    import yaml

    params_file = tmp_path / "params.yaml"
    params_file.write_text(yaml.safe_dump(three_versions.model_dump(mode="json", exclude={"base_dir"})))
    runner = CliRunner()

    failed = runner.invoke(app, ["rollback", "--reason", "oops", "--params", str(params_file)])
    assert failed.exit_code == 1 and "no champion to roll back" in failed.output
    promoted = runner.invoke(app, ["promote", "--version", "1", "--reason", "first", "--params", str(params_file)])
    assert promoted.exit_code == 0 and "champion: v1 (was none)" in promoted.output
    # as every command prints a version
    again = runner.invoke(app, ["promote", "--version", "v2", "--reason", "Q3", "--params", str(params_file)])
    assert again.exit_code == 0 and "champion: v2 (was v1)" in again.output
    assert "note:" not in promoted.output + again.output
    MlflowClient().set_model_version_tag(three_versions.tracking.registered_model, "3", "retrain_refused",
                                         "FAILED: challenger AUC 0.61 is 0.08 below the champion's")
    overruled = runner.invoke(app, ["promote", "--version", "3", "--reason", "Q4 override", "--params", str(params_file)])
    assert overruled.exit_code == 0 and "champion: v3 (was v2)" in overruled.output  # a human decided
    assert ("note: retrain refused to promote v3: FAILED: challenger AUC 0.61 is 0.08 below the champion's"
            in overruled.output)


def test_a_challenger_registered_by_a_retrain_that_stopped_before_its_gate_is_promoted_with_a_note_saying_so(
        tmp_path, monkeypatch_session, monkeypatch):
    """The store fails after the challenger is registered: `challenger` names a version with no verdict, which a
    human promoting it must be told, as of a refused one; a verdict clears the mark."""
    import yaml

    from pipelines.retrain import NOT_JUDGED

    crm_dir = tmp_path / "crm"
    write_crm(generate_crm(700, seed=3), crm_dir)
    params = params_for(crm_dir, tmp_path, **FAST)
    first = retrain(params)  # the first version: champion, judged
    name, client = params.tracking.registered_model, MlflowClient()
    assert first.promoted and NOT_JUDGED not in client.get_model_version(name, first.challenger_version).tags

    with _store_stops_answering(monkeypatch):
        retrain(params, force=True)
    version = str(client.get_model_version_by_alias(name, tracking.CHALLENGER).version)
    assert version != first.challenger_version and champion_version(params) == first.challenger_version

    params_file = tmp_path / "params.yaml"
    params_file.write_text(yaml.safe_dump(params.model_dump(mode="json", exclude={"base_dir"})))
    promoted = CliRunner().invoke(app, ["promote", "--version", version, "--reason", "Q4", "--params", str(params_file)])
    assert promoted.exit_code == 0, promoted.output
    assert (f"note: v{version} was never judged: retrain as of {first.as_of:%Y-%m-%d} registered it and stopped "
            "before its gate compared it with the champion") in promoted.output
