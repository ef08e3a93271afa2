"""Closed-loop label policy: every rule, its label, weight and count."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from features.labels import build_labels
from pipelines.config import LabelParams

AS_OF = pd.Timestamp("2024-12-31")
CREATED = pd.Timestamp("2024-01-01")


def policy(**overrides) -> LabelParams:
    settings = dict(
        converted_statuses=["converted", "won"],
        open_statuses=["open"],
        horizon_days=120,
        status_policy={"nurture": "soft_negative", "duplicate": "exclude"},
        reasons={"no_budget": "negative", "bad_timing": "soft_negative", "invalid_contact": "exclude"},
        unknown_reason="negative",
        missing_reason="negative",
        soft_negative_weight=0.5,
    )
    return LabelParams(**{**settings, **overrides})


def crm(rows: list[tuple]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Leads + outcomes from (lead_id, created_at, status, reason, decided_at); status None = no outcome row."""
    leads = pd.DataFrame({"lead_id": [r[0] for r in rows], "created_at": pd.to_datetime([r[1] for r in rows])})
    decided = [r for r in rows if r[2] is not None]
    outcomes = pd.DataFrame(
        {
            "lead_id": [r[0] for r in decided],
            "status": [r[2] for r in decided],
            "reason": [r[3] for r in decided],
            "decided_at": pd.to_datetime([r[4] for r in decided]),
            "amount": [np.nan] * len(decided),
        }
    )
    return leads, outcomes


def day(n: float) -> pd.Timestamp:
    return CREATED + pd.Timedelta(days=n)


def test_every_rule_gives_its_label_weight_and_count():
    leads, outcomes = crm(
        [
            ("won_fast", CREATED, "converted", None, day(30)),
            ("won_alias", CREATED, "Won", None, day(10)),
            ("won_late", CREATED, "converted", None, day(200)),
            ("budget", CREATED, "rejected", "no_budget", day(5)),
            ("timing", CREATED, "rejected", "bad_timing", day(5)),
            ("junk", CREATED, "rejected", "invalid_contact", day(1)),
            ("odd_reason", CREATED, "rejected", "aliens", day(5)),
            ("no_reason", CREATED, "rejected", None, day(5)),
            ("nurture", CREATED, "nurture", None, day(5)),
            ("dupe", CREATED, "duplicate", None, day(1)),
            ("mystery", CREATED, "lost_in_space", None, day(1)),
            ("open_new", AS_OF - pd.Timedelta(days=10), "open", None, None),
            ("open_old", CREATED, "open", None, None),
            ("never_touched", CREATED, None, None, None),
        ]
    )
    result = build_labels(leads, outcomes, policy(), AS_OF)
    frame = result.frame

    expected = {
        "won_fast": (1.0, 1.0, "positive:converted"),
        "won_alias": (1.0, 1.0, "positive:converted"),
        "won_late": (0.0, 1.0, "negative:converted_after_horizon"),
        "budget": (0.0, 1.0, "negative:reason:no_budget"),
        "timing": (0.0, 0.5, "soft_negative:reason:bad_timing"),
        "junk": (np.nan, np.nan, "excluded:reason:invalid_contact"),
        "odd_reason": (0.0, 1.0, "negative:unknown_reason"),
        "no_reason": (0.0, 1.0, "negative:missing_reason"),
        "nurture": (0.0, 0.5, "soft_negative:status:nurture"),
        "dupe": (np.nan, np.nan, "excluded:status:duplicate"),
        "mystery": (np.nan, np.nan, "excluded:unknown_status:lost_in_space"),
        "open_new": (np.nan, np.nan, "censored:open_immature"),
        "open_old": (0.0, 1.0, "negative:open_expired"),
        "never_touched": (0.0, 1.0, "negative:open_expired"),
    }
    for lead_id, (label, weight, rule) in expected.items():
        row = frame.loc[lead_id]
        assert row["rule"] == rule, lead_id
        np.testing.assert_equal(row["label"], label, err_msg=lead_id)
        np.testing.assert_equal(row["weight"], weight, err_msg=lead_id)

    assert list(frame.index) == list(leads["lead_id"])
    assert result.counts["positive:converted"] == 2
    assert result.counts["negative:open_expired"] == 2
    assert sum(result.counts.values()) == len(leads)
    assert set(result.counts) == {rule for _, _, rule in expected.values()}
    assert frame.loc["budget", "reason"] == "no_budget"  # kept as the reason model's target
    assert frame.loc["never_touched", ["status", "reason"]].isna().all()


def test_horizon_is_inclusive_and_can_be_switched_off():
    leads, outcomes = crm(
        [
            ("on_the_day", CREATED, "converted", None, day(120)),
            ("a_second_late", CREATED, "converted", None, day(120) + pd.Timedelta(seconds=1)),
            ("no_decision_date", CREATED, "converted", None, None),
        ]
    )
    rules = build_labels(leads, outcomes, policy(), AS_OF).frame["rule"]
    assert rules.to_dict() == {
        "on_the_day": "positive:converted",
        "a_second_late": "negative:converted_after_horizon",
        "no_decision_date": "positive:converted",
    }
    no_horizon = build_labels(leads, outcomes, policy(horizon_days=None), AS_OF).frame
    assert (no_horizon["label"] == 1.0).all()


def test_open_lead_is_censored_until_the_horizon_passes():
    as_of = day(200)
    leads, outcomes = crm(
        [
            ("young", as_of - pd.Timedelta(days=119), "open", None, None),
            ("exactly_due", as_of - pd.Timedelta(days=120), "open", None, None),
            ("old", as_of - pd.Timedelta(days=121), "open", None, None),
            ("young_no_row", as_of - pd.Timedelta(days=5), None, None, None),
        ]
    )
    result = build_labels(leads, outcomes, policy(), as_of)
    assert result.frame["rule"].to_dict() == {
        "young": "censored:open_immature",
        "exactly_due": "negative:open_expired",
        "old": "negative:open_expired",
        "young_no_row": "censored:open_immature",
    }
    assert result.frame.loc["young", ["label", "weight"]].isna().all()
    assert result.counts == {"censored:open_immature": 2, "negative:open_expired": 2}

    never_expires = build_labels(leads, outcomes, policy(horizon_days=None), as_of)
    assert never_expires.counts == {"censored:open_no_horizon": 4}


def test_an_open_lead_whose_horizon_ended_after_the_export_was_taken_is_not_called_unconverted():
    """Judged long after a stale export (monitor), a lead open in it may have been decided since without
    the data saying so; one whose horizon ended before the export was taken did stay open through it."""
    export_end, as_of = day(200), day(400)
    leads, outcomes = crm(
        [
            ("open_through_its_horizon", export_end - pd.Timedelta(days=121), "open", None, None),
            ("horizon_after_the_export", export_end - pd.Timedelta(days=60), "open", None, None),
            ("decided_after_the_export", export_end - pd.Timedelta(days=60), "rejected", "no_budget", day(250)),
        ]
    )
    result = build_labels(leads, outcomes, policy(), as_of, known_until=export_end)
    assert result.frame["rule"].to_dict() == {
        "open_through_its_horizon": "negative:open_expired",
        "horizon_after_the_export": "censored:open_past_export",
        "decided_after_the_export": "negative:reason:no_budget",  # the store heard it
    }
    assert np.isnan(result.frame.loc["horizon_after_the_export", "label"])
    assert build_labels(leads, outcomes, policy(), as_of).frame.loc["horizon_after_the_export", "rule"] == \
        "negative:open_expired"


def test_outcome_decided_after_as_of_is_not_known_yet():
    leads, outcomes = crm([("future_win", CREATED, "converted", None, day(50))])
    result = build_labels(leads, outcomes, policy(), as_of=day(20))
    row = result.frame.loc["future_win"]
    assert row["rule"] == "censored:open_immature"
    assert pd.isna(row["status"]) and pd.isna(row["decided_at"])


def test_as_of_defaults_to_latest_date_in_the_data():
    leads, outcomes = crm(
        [
            ("open_early", CREATED, "open", None, None),
            ("won_late", day(300), "converted", None, day(301)),
        ]
    )
    # latest known date is day 301, so the day-0 open lead is past its 120-day horizon
    assert build_labels(leads, outcomes, policy(), None).frame.loc["open_early", "rule"] == "negative:open_expired"


def test_reason_policy_for_unknown_missing_and_messy_codes():
    leads, outcomes = crm(
        [
            ("messy", CREATED, " Rejected ", " No_Budget ", day(3)),
            ("blank", CREATED, "rejected", "   ", day(3)),
            ("none", CREATED, "rejected", None, day(3)),
            ("unknown", CREATED, "rejected", "went_quiet", day(3)),
        ]
    )
    strict = policy(unknown_reason="exclude", missing_reason="soft_negative", soft_negative_weight=0.25)
    result = build_labels(leads, outcomes, strict, AS_OF)
    frame = result.frame
    assert frame.loc["messy", "rule"] == "negative:reason:no_budget"
    assert frame.loc["blank", "rule"] == frame.loc["none", "rule"] == "soft_negative:missing_reason"
    assert frame.loc["none", "weight"] == 0.25
    assert frame.loc["unknown", "rule"] == "excluded:unknown_reason"
    assert np.isnan(frame.loc["unknown", "label"])
    assert frame.loc["unknown", "reason"] == "went_quiet"
    assert result.counts == {
        "soft_negative:missing_reason": 2,
        "excluded:unknown_reason": 1,
        "negative:reason:no_budget": 1,
    }


def test_soft_negative_weight_applies_to_soft_reasons_and_statuses_only():
    leads, outcomes = crm(
        [
            ("timing", CREATED, "rejected", "bad_timing", day(3)),
            ("nurture", CREATED, "nurture", None, day(3)),
            ("budget", CREATED, "rejected", "no_budget", day(3)),
            ("won", CREATED, "converted", None, day(3)),
        ]
    )
    weights = build_labels(leads, outcomes, policy(soft_negative_weight=0.3), AS_OF).frame["weight"]
    assert weights.to_dict() == {"timing": 0.3, "nurture": 0.3, "budget": 1.0, "won": 1.0}


def test_undated_export_censors_open_leads_and_skips_horizon():
    leads = pd.DataFrame({"lead_id": [1, 2, 3]})
    outcomes = pd.DataFrame({"lead_id": [1, 2], "status": ["converted", "open"]})
    result = build_labels(leads, outcomes, policy(), None)
    assert result.frame["rule"].tolist() == ["positive:converted", "censored:open_undated", "censored:open_undated"]


def test_no_outcome_table_means_every_lead_is_open():
    leads, _ = crm([("a", AS_OF - pd.Timedelta(days=1), None, None, None), ("b", CREATED, None, None, None)])
    result = build_labels(leads, None, policy(), AS_OF)
    assert result.counts == {"censored:open_immature": 1, "negative:open_expired": 1}


def test_zero_leads_give_an_empty_frame():
    leads = pd.DataFrame({"lead_id": pd.Series([], dtype="str"), "created_at": pd.Series([], dtype="datetime64[ns]")})
    result = build_labels(leads, None, policy(), AS_OF)
    assert len(result.frame) == 0
    assert list(result.frame.columns) == ["label", "weight", "rule", "status", "reason", "decided_at", "decided"]
    assert result.counts == {}
    assert result.lines() == []


def test_lines_show_count_and_share_largest_first():
    leads, outcomes = crm(
        [
            ("a", CREATED, "converted", None, day(1)),
            ("b", CREATED, "rejected", "no_budget", day(1)),
            ("c", CREATED, "rejected", "no_budget", day(1)),
            ("d", CREATED, "rejected", "no_budget", day(1)),
        ]
    )
    assert build_labels(leads, outcomes, policy(), AS_OF).lines() == [
        "negative:reason:no_budget: 3 (75.0%)",
        "positive:converted: 1 (25.0%)",
    ]


def test_the_unknown_reason_line_names_the_codes_so_a_typo_is_seen():
    """...and where to declare them: a CRM's "No response" left out of data.value_maps.reason trained as an unknown
    negative, with nothing saying which setting takes it."""
    rows = [(f"u{i}", CREATED, "rejected", code, day(1))
            for i, code in enumerate(["price_too_high"] * 3 + ["no budget"] * 2 + [f"new_{k}" for k in range(5)])]
    leads, outcomes = crm(rows + [("b", CREATED, "rejected", "no_budget", day(1))])

    lines = build_labels(leads, outcomes, policy(), AS_OF).lines()

    assert lines[0] == ("negative:unknown_reason: 10 (90.9%); codes not in label.reasons: 'price_too_high' 3, "
                        "'no budget' 2, 'new_0' 1, 'new_1' 1, 'new_2' 1 and 2 more (list them in label.reasons, or "
                        "translate the CRM's labels with data.value_maps.reason)")
    assert lines[1] == "negative:reason:no_budget: 1 (9.1%)"


def test_bad_input_is_refused_with_the_field_named():
    leads, outcomes = crm([("a", CREATED, "converted", None, day(1))])
    twice = pd.concat([outcomes, outcomes])
    with pytest.raises(ValueError, match="outcomes.lead_id.*more than one"):
        build_labels(leads, twice, policy(), AS_OF)
    with pytest.raises(ValueError, match="leads.lead_id.*repeated"):
        build_labels(pd.concat([leads, leads]), outcomes, policy(), AS_OF)
    with pytest.raises(ValueError, match="'status' is missing"):
        build_labels(leads, outcomes.drop(columns="status"), policy(), AS_OF)
    with pytest.raises(ValueError, match="outcomes.decided_at.*not dates"):
        build_labels(leads, outcomes.assign(decided_at=["last tuesday"]), policy(), AS_OF)


def test_mature_only_censors_every_young_lead_so_recent_cohorts_are_not_biased_to_quick_rejections():
    young = AS_OF - pd.Timedelta(days=30)
    leads, outcomes = crm(
        [
            ("old_rejected", CREATED, "rejected", "no_budget", day(5)),
            ("young_rejected", young, "rejected", "no_budget", young + pd.Timedelta(days=2)),
            ("young_converted", young, "converted", None, young + pd.Timedelta(days=20)),
        ]
    )
    mature = build_labels(leads, outcomes, policy(mature_only=True), AS_OF).frame
    assert mature.loc["old_rejected", "label"] == 0.0
    assert mature.loc[["young_rejected", "young_converted"], "label"].isna().all()
    assert set(mature.loc[["young_rejected", "young_converted"], "rule"]) == {"censored:decided_inside_horizon"}
    everything = build_labels(leads, outcomes, policy(mature_only=False), AS_OF).frame
    assert everything["label"].tolist() == [0.0, 0.0, 1.0]
