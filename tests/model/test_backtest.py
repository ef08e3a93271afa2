"""Backtest: replaying quarterly retraining shows when a lead source's quality dropped.

The synthetic CRM has web_organic converting at 0.3x the odds from 2025Q2 on. Each replayed model
knows only what had matured before its quarter began, so it still expects the old rate there.
"""

from __future__ import annotations


import mlflow
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from pipelines.backtest import backtest, backtest_quarters, replay
from pipelines.synthetic import SourceShift, generate_crm, write_crm
from conftest import FAST, params_for

SHIFTED_QUARTERS = ["2025Q2", "2025Q3"]


@pytest.fixture(scope="module")
def replayed(tmp_path_factory):
    """The backtest of the shifted CRM, with the service's store holding sales' later word on one lead
    rejected early in 2025Q1 (won back a day later, received the next day), the same on another lead that the
    store received only in May (a backlog the CRM sent late), and decisions on a lead the export does not have and on
    one it merged by e-mail into another, both received after every replayed quarter began."""
    from pipelines.ingest import load_crm
    from serving.store import Store

    crm_dir = tmp_path_factory.mktemp("shifted_crm")
    write_crm(generate_crm(6000, seed=11, shift=SourceShift(source="web_organic", from_quarter=5)), crm_dir)
    params = params_for(crm_dir, tmp_path_factory.mktemp("tracking"), **FAST)
    outcomes = pd.read_csv(crm_dir / "outcomes.csv", parse_dates=["decided_at"])
    early = outcomes[(outcomes["status"] == "rejected") & outcomes["decided_at"].between("2025-01-01", "2025-03-01")]
    rejected, backlogged = early.iloc[0], early.iloc[1]
    store = Store.from_params(params)
    store.add_feedback({"event_id": "won-back", "lead_id": rejected["lead_id"], "status": "converted", "reason": None,
                        "decided_at": f"{rejected['decided_at'] + pd.Timedelta(days=1):%Y-%m-%dT%H:%M:%S}Z",
                        "received_at": f"{rejected['decided_at'] + pd.Timedelta(days=2):%Y-%m-%dT%H:%M:%S}Z"})
    store.add_feedback({"event_id": "backlog", "lead_id": backlogged["lead_id"], "status": "converted", "reason": None,
                        "decided_at": f"{backlogged['decided_at'] + pd.Timedelta(days=1):%Y-%m-%dT%H:%M:%S}Z",
                        "received_at": "2025-05-15T00:00:00Z"})  # after 2025Q2 began: not known to its replay
    store.add_feedback({"event_id": "elsewhere", "lead_id": "NOT-IN-THE-EXPORT", "status": "rejected",
                        "reason": "no_budget", "decided_at": "2025-06-01T00:00:00Z", "received_at": "2025-08-01T00:00:00Z"})
    store.add_feedback({"event_id": "duplicate", "lead_id": load_crm(params).merged_by_email.index[0],
                        "status": "converted", "reason": None, "decided_at": "2025-06-01T00:00:00Z",
                        "received_at": "2025-08-01T00:00:00Z"})
    store.add_feedback({"event_id": "after-the-export", "lead_id": rejected["lead_id"], "status": "rejected",  # not known
                        "reason": "competitor", "decided_at": "2026-06-01T00:00:00Z"})            # by the export's end
    out = tmp_path_factory.mktemp("backtest")
    return backtest(params, quarters=4, out_dir=out), params, out


def test_the_backtest_shows_the_drop_in_the_shifted_sources_quarters(replayed):
    result, _, _ = replayed
    web = result.segments[result.segments["value"] == "web_organic"].set_index("quarter")

    flagged = result.flagged()
    assert sorted(flagged.loc[flagged["value"] == "web_organic", "quarter"]) == SHIFTED_QUARTERS
    assert (web.loc[SHIFTED_QUARTERS, "gap"] < -0.1).all()  # predicted far above what happened
    assert abs(web.loc["2024Q4", "gap"]) < 0.05  # before the drop the replayed model had it right
    assert set(flagged["value"]) == {"web_organic"}  # no other source is blamed


def test_the_printed_backtest_says_what_the_feedback_store_changed_as_retrain_does(replayed):
    """The replayed quarters are labelled from the export + the store: the console says so in retrain's words,
    as of the export's end (a decision dated later is known to no quarter)."""
    result, params, _ = replayed
    leads = pd.read_csv(params.resolve(params.data.leads), usecols=["created_at"])
    outcomes = pd.read_csv(params.resolve(params.data.outcomes), usecols=["decided_at"])
    end = max(pd.Timestamp(leads["created_at"].max()), pd.Timestamp(outcomes["decided_at"].max()))
    assert result.lines()[0] == ("feedback store: 4 lead decisions, 2 replace the export's (decided later, at the same "
                                 "time, or undated there): 2 change a lead's outcome or add one the export lacks, "
                                 "1 for leads not in the export (ignored), 1 for leads merged by e-mail into another "
                                 "lead (ignored, as the export's own outcomes for them are); 1 decision dated "
                                 f"after {end:%Y-%m-%d %H:%M} not used (not known then); decisions received after a "
                                 "quarter's first day not used to train it (not known then): 2024Q4 0, 2025Q1 3, "
                                 "2025Q2 2, 2025Q3 1")


def test_each_quarter_reports_the_headline_figures_and_tier_conversion(replayed):
    from pipelines.ingest import load_crm
    from serving.store import Store

    result, params, _ = replayed
    table = result.table

    assert list(table.index) == ["2024Q4", "2025Q1", "2025Q2", "2025Q3"]
    assert table["roc_auc"].between(0.6, 0.9).all() and table["ece"].between(0, 0.2).all()
    assert table["capture_top20"].between(0.2, 1).all()
    assert (table["conversion_A"] > table["conversion_D"]).all()  # the tiers still rank every quarter
    assert table["training_rows"].is_monotonic_increasing  # each replay saw only what had matured by then
    # The newest quarter is only partly matured: the printed table says its figures cover fewer leads.
    assert table.loc["2025Q3", "rows"] < 0.8 * table.loc["2025Q3", "leads"]
    assert any(line.startswith("leads: created in the quarter; rows: those labelled") for line in result.lines())
    assert table.loc["2024Q4", "model"] == "peer points_mql"  # < 1,000 closed leads then: cold start
    # The won-back decision (early 2025Q1) is in the training data of the quarters replayed after it, not before; the
    # backlogged one, dated as early but received in May, only from 2025Q3 on: 2025Q2's replay did not know it yet.
    assert table["training_feedback"].to_dict() == {"2024Q4": 0, "2025Q1": 0, "2025Q2": 1, "2025Q3": 2}
    # Received later and left out: those two and the decision dated after the export, for leads of the export only (the
    # store's decisions for a lead the export lacks or merged away would be ignored however early they arrived), and
    # only from 2025Q1 on: their two leads were created after 2024Q4 began, outside its training window whenever the
    # store heard of them.
    created = load_crm(params).leads.set_index("lead_id")["created_at"]
    decided = Store.from_params(params).feedback_frame()["lead_id"]
    assert created.reindex(decided).dropna().between("2024-10-01", "2025-01-01").all()
    assert table["training_received_later"].to_dict() == {"2024Q4": 0, "2025Q1": 3, "2025Q2": 2, "2025Q3": 1}


def test_the_backtest_is_logged_and_written(replayed):
    result, params, out = replayed

    assert {p.name for p in out.iterdir()} == {"backtest.csv", "segments.csv", "backtest.png"}
    assert pd.read_csv(out / "backtest.csv", index_col="quarter")["roc_auc"].round(6).equals(result.table["roc_auc"].round(6))
    run = mlflow.get_run(result.run_id)
    assert run.data.tags["backtest"] == "true" and run.data.tags["kind"] == "backtest"
    logged = mlflow.artifacts.load_dict(f"runs:/{result.run_id}/data/fingerprint.json")["feedback"]
    assert (logged["events"], logged["applied"], logged["unknown_leads"], logged["merged_leads"]) == (4, 2, 1, 1)  # what the run was labelled from
    written = pd.read_csv(out / "backtest.csv", index_col="quarter")
    assert written["training_received_later"].to_dict() == result.table["training_received_later"].to_dict()
    history = MlflowClient().get_metric_history(result.run_id, "roc_auc")
    assert [round(m.value, 6) for m in sorted(history, key=lambda m: m.step)] == list(result.table["roc_auc"].round(6))


def test_an_undated_export_or_no_quarters_is_refused_clearly(replayed):
    _, params, _ = replayed
    with pytest.raises(ValueError, match="backtest needs dated leads"):
        replay(params.model_copy(update={"data": params.data.model_copy(update={"dated": False})}))
    with pytest.raises(ValueError, match="at least 1"):
        backtest_quarters(pd.Series(pd.to_datetime(["2025-01-01"])), 0)
    with pytest.raises(ValueError, match="segment 'nope'"):
        replay(params, quarters=1, segment="nope")
    with pytest.raises(ValueError, match=r"segment 'employees' is a number \([\d,]+ values\): segment by a category "
                                         r"instead, e.g. .*size_band"):
        replay(params, quarters=1, segment="employees")


def test_an_export_too_short_to_backtest_says_so_instead_of_fewer_quarters(tmp_path):
    """Three quarters of history and a 120-day horizon: no quarter had matured leads before it began."""
    write_crm(generate_crm(2000, seed=5, quarters=3), tmp_path / "crm")
    params = params_for(tmp_path / "crm", tmp_path, **FAST)
    with pytest.raises(ValueError, match=r"backtest 2025Q\d \(trained as of 2025-\d\d-01, when 0 closed leads with 0 "
                                         r"conversions had matured\): .*the export has too little history to backtest") as err:
        replay(params, quarters=1)
    assert "newer quarter" not in str(err.value)
    # Asked for more, it says how many newer quarters are left to replay.
    with pytest.raises(ValueError, match=r"replay the 1 newer quarter only \(--quarters 1\)"):
        replay(params, quarters=2)
