"""Behavioural tests of a trained model: what a sales team relies on, whatever the metrics say."""

from __future__ import annotations

import copy
import dataclasses
import pickle

import numpy as np
import pandas as pd
import pytest

AS_OF = pd.Timestamp("2026-01-01")


@pytest.fixture(scope="module")
def raw(sample_dir):
    """Raw CRM rows (strings, the CRM's own columns) of 300 leads and their activities."""
    leads = pd.read_csv(sample_dir / "leads.csv", dtype=str).sample(300, random_state=1).reset_index(drop=True)
    activities = pd.read_csv(sample_dir / "activities.csv", dtype=str)
    return leads, activities[activities["lead_id"].isin(leads["lead_id"])]


def scores(scorer, leads, activities):
    batch = scorer.score(leads, activities, as_of=AS_OF)
    assert not batch.problems
    return batch.scores.set_index("lead_id")


def test_lead_id_and_email_casing_do_not_move_the_score(trained, raw):
    scorer = trained.scorer
    leads, activities = raw
    before = scores(scorer, leads, activities)
    renamed = leads.assign(lead_id="X" + leads["lead_id"], email=leads["email"].str.upper() + "  ")
    after = scores(scorer, renamed, activities.assign(lead_id="X" + activities["lead_id"]))
    np.testing.assert_allclose(after["probability"].to_numpy(), before["probability"].to_numpy())
    assert (after["tier"].to_numpy() == before["tier"].to_numpy()).all()


@pytest.mark.parametrize("activity", ["demo_request", "pricing_view"])
def test_a_demo_request_or_pricing_view_never_lowers_the_score(trained, raw, activity):
    scorer = trained.scorer
    leads, activities = raw
    event = pd.DataFrame({"lead_id": leads["lead_id"], "occurred_at": str(AS_OF - pd.Timedelta(hours=1)),
                          "activity": activity, "detail": ""})
    before = scores(scorer, leads, activities)
    after = scores(scorer, leads, pd.concat([activities, event], ignore_index=True))
    assert (after["probability"] >= before["probability"] - 1e-12).all()
    assert (after["probability"] > before["probability"]).any(), "the signal should raise some scores"


def test_an_obvious_icp_hot_lead_outranks_an_obvious_cold_lead(trained):
    hot = {"lead_id": "hot", "created_at": "2025-12-20", "email": "cfo@acmesoftware.com", "phone": "+1 555 0100",
           "company": "Acme Software", "industry": "software", "employees": "800", "country": "US",
           "job_title": "VP of Sales", "lead_source": "referral", "campaign": ""}
    cold = {"lead_id": "cold", "created_at": "2025-12-20", "email": "kid123@student.uni.edu", "phone": "",
            "company": "", "industry": "", "employees": "", "country": "RU", "job_title": "Student",
            "lead_source": "content_syndication", "campaign": ""}
    days = [AS_OF - pd.Timedelta(days=d) for d in (1, 2, 3)]
    hot_events = [("hot", str(t), a) for t in days for a in ("pricing_view", "demo_request", "page_view")]
    events = pd.DataFrame(hot_events, columns=["lead_id", "occurred_at", "activity"])
    result = scores(trained.scorer, pd.DataFrame([hot, cold]), events)
    assert result.loc["hot", "score"] > result.loc["cold", "score"] + 20
    assert result.loc["hot", "tier"] == trained.scorer.tiers.names[0]
    assert result.loc["cold", "tier"] == trained.scorer.tiers.names[-1]


def test_unseen_categories_missing_optional_fields_and_empty_batches_score(trained):
    scorer = trained.scorer
    odd = pd.DataFrame([{"lead_id": "new1", "created_at": "2025-12-30", "industry": "asteroid mining",
                         "lead_source": "carrier pigeon", "country": "ZZ"}])
    result = scorer.score(odd, None, as_of=AS_OF)
    assert not result.problems and len(result.scores) == 1
    # An unseen value is "a value the model never saw", whichever it is: no arbitrary level's effect.
    other = odd.assign(industry="deep-sea salvage", lead_source="smoke signal", country="QQ")
    assert scorer.score(other, None, as_of=AS_OF).scores.loc[0, "probability"] == result.scores.loc[0, "probability"]
    empty = scorer.score(odd.iloc[:0], None, as_of=AS_OF)
    assert len(empty.scores) == 0 and list(empty.scores.columns) == list(result.scores.columns)


def test_invalid_rows_are_reported_not_scored(trained):
    rows = pd.DataFrame([{"lead_id": "ok", "created_at": "2025-12-30"}, {"lead_id": "bad", "created_at": "someday"}])
    result = trained.scorer.score(rows, None, as_of=AS_OF)
    assert result.scores["lead_id"].tolist() == ["ok"]
    assert len(result.problems) == 1 and result.problems[0].row == 2 and "created_at" in str(result.problems[0])


def test_a_lead_older_than_the_label_horizon_is_flagged_with_its_score_unchanged(trained, raw):
    scorer = trained.scorer
    assert scorer.horizon_days == 120  # params.yaml label.horizon_days, carried from training
    leads, activities = raw
    aged = pd.DataFrame([{"lead_id": name, "created_at": str(AS_OF - pd.Timedelta(days=days))}
                         for name, days in [("new", 3), ("at_horizon", 120), ("old", 214)]])
    flags = scores(scorer, aged, None)["past_horizon"]
    assert flags.to_dict() == {"new": False, "at_horizon": False, "old": True}

    flagged = scores(scorer, leads, activities)
    assert flagged["past_horizon"].dtype == bool and 0 < flagged["past_horizon"].sum() < len(flagged)
    # The flag changes no number: a scorer without a horizon gives the same probability, score and tier.
    unflagged = scores(dataclasses.replace(scorer, horizon_days=None), leads, activities)
    assert not unflagged["past_horizon"].any()
    pd.testing.assert_frame_equal(flagged.drop(columns="past_horizon"), unflagged.drop(columns="past_horizon"))
    explained = scorer.score(leads, activities, as_of=AS_OF, top_factors=2).scores  # probability from TreeSHAP's pass
    assert explained["past_horizon"].tolist() == flagged["past_horizon"].tolist()


def test_undated_leads_a_model_without_horizon_and_an_empty_batch_flag_nothing(trained):
    scorer = trained.scorer
    assert scorer.past_horizon(np.array([np.nan, 300.0]), 2).tolist() == [False, True]  # NaN: an undated lead
    assert scorer.past_horizon(None, 2).tolist() == [False, False]  # no ages given
    # A scorer pickled before it had a horizon loads as one without: it flags nothing.
    earlier = copy.copy(scorer)
    del earlier.__dict__["horizon_days"]
    assert pickle.loads(pickle.dumps(earlier)).past_horizon(np.array([300.0]), 1).tolist() == [False]
    empty = scorer.score(pd.DataFrame({"lead_id": pd.Series(dtype=str), "created_at": pd.Series(dtype=str)}), as_of=AS_OF)
    assert len(empty.scores) == 0 and empty.scores["past_horizon"].dtype == bool
