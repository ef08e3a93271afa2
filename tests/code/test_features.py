"""Point-in-time feature frame: catalog, activity windows, derived fit signals, messy input."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest

from features.build import (
    RECENCY_CAP_DAYS,
    FeatureDef,
    ages_open,
    build_features,
    crm_spellings,
    feature_catalog,
    lead_columns_read,
    training_snapshots,
    unmatched_settings,
    with_event_at_snapshot,
)
from features.labels import build_labels
from pipelines.config import FeatureParams, IcpParams, LabelParams
from pipelines.contract import email_address

SNAPSHOT = pd.Timestamp("2024-03-01 12:00")
SECOND = pd.Timedelta(seconds=1)


def spec(**overrides) -> FeatureParams:
    settings = dict(
        snapshot_days=3,
        windows=[7, 30],
        activity_types=["page_view", "pricing_view", "demo_request"],
        categorical=["industry", "country", "lead_source"],
        numeric=["employees"],
        derived=[
            "size_band", "seniority", "department", "icp_match", "email_signals", "contact_gaps", "country_support"
        ],
        icp=IcpParams(
            industries=["Software"], countries=["US", "DE"], seniorities=["c_level", "vp"], min_employees=50, max_employees=5000
        ),
        free_email_domains=["gmail.com"],
        student_email_patterns=[".edu", ".ac.uk", "student."],
        competitor_domains=["rivalsoft.com"],
        unsupported_countries=["RU"],
        monotone_increasing=["demo_request", "pricing_view"],
        monotone_decreasing=["email_domain_type"],
    )
    return FeatureParams(**{**settings, **overrides})


def lead(**fields) -> dict:
    row = dict(
        lead_id="L1",
        created_at=SNAPSHOT - pd.Timedelta(days=10),
        email="ana@acme.io",
        phone="+1 555 0100",
        company="Acme",
        industry="Software",
        employees=120,
        country="US",
        job_title="VP of Sales",
        lead_source="Web",
        campaign="spring",
    )
    return {**row, **fields}


def leads_frame(*rows: dict) -> pd.DataFrame:
    return pd.DataFrame(list(rows) or [lead()])


def activities(*events: tuple) -> pd.DataFrame:
    """(lead_id, occurred_at, activity) rows."""
    frame = pd.DataFrame(events, columns=["lead_id", "occurred_at", "activity"])
    return frame.astype({"occurred_at": "datetime64[ns]"})


# --- catalog ---------------------------------------------------------------------------------------


def test_catalog_names_the_frame_columns_in_a_fixed_order():
    catalog = feature_catalog(spec())
    assert catalog == feature_catalog(spec())
    frame = build_features(leads_frame(), activities(), SNAPSHOT, spec())
    assert list(frame.columns) == [d.name for d in catalog]
    assert frame.index.name == "lead_id"
    for d in catalog:
        expected = "str" if d.kind == "categorical" else "float64"
        assert str(frame[d.name].dtype) == expected, d.name


def test_catalog_groups_windows_under_one_signal_with_monotone_constraints():
    by_name = {d.name: d for d in feature_catalog(spec())}
    assert by_name["pricing_view_7d"] == FeatureDef("pricing_view_7d", "numeric", "pricing_view", 7, 1)
    assert by_name["pricing_viewed"].signal == "pricing_view" and by_name["pricing_viewed"].monotone == 1
    assert by_name["demo_request_30d"].monotone == 1
    assert by_name["email_free"].monotone == -1
    assert by_name["page_view_7d"].monotone == 0
    assert by_name["industry"] == FeatureDef("industry", "categorical", "industry")


def test_catalog_without_activity_types_has_no_intent_features():
    names = [d.name for d in feature_catalog(spec(activity_types=[], monotone_increasing=[]))]
    assert not any(n.endswith("d") and n[-2].isdigit() for n in names)
    assert "days_since_last_activity" not in names


def test_catalog_refuses_contradictory_or_misspelt_settings():
    with pytest.raises(ValueError, match="twice.*seniority"):
        feature_catalog(spec(categorical=["seniority"]))
    with pytest.raises(ValueError, match="demo_requets"):
        feature_catalog(spec(monotone_increasing=["demo_requets"]))
    with pytest.raises(ValueError, match="both"):
        feature_catalog(spec(monotone_decreasing=["demo_request"]))
    with pytest.raises(ValueError, match="icp"):
        feature_catalog(spec(icp=IcpParams()))


# --- point in time -------------------------------------------------------------------------------


def test_an_activity_after_the_snapshot_never_counts():
    base = build_features(leads_frame(), activities(), SNAPSHOT, spec())
    late = build_features(leads_frame(), activities(("L1", SNAPSHOT + SECOND, "demo_request")), SNAPSHOT, spec())
    pd.testing.assert_frame_equal(base, late)

    early = build_features(leads_frame(), activities(("L1", SNAPSHOT - SECOND, "demo_request")), SNAPSHOT, spec())
    assert early.loc["L1", "demo_request_7d"] == base.loc["L1", "demo_request_7d"] + 1 == 1
    assert early.loc["L1", "demo_requested"] == 1 and base.loc["L1", "demo_requested"] == 0
    assert early.loc["L1", "days_since_last_activity"] == pytest.approx(1 / 86400)


@pytest.mark.parametrize("activity", ["demo_request", "page_view"])
def test_adding_an_event_at_the_snapshot_equals_rebuilding_with_it(activity):
    history = activities(("L1", SNAPSHOT - pd.Timedelta(days=12), "page_view"), ("L1", SNAPSHOT - pd.Timedelta(days=2), "demo_request"))
    leads = leads_frame(lead(), lead(lead_id="quiet", email="q@acme.io"))
    before = build_features(leads, history, SNAPSHOT, spec())
    rebuilt = build_features(leads, pd.concat([history, activities(("L1", SNAPSHOT, activity), ("quiet", SNAPSHOT, activity))]), SNAPSHOT, spec())
    pd.testing.assert_frame_equal(with_event_at_snapshot(before, activity, spec()), rebuilt)


def test_window_is_open_at_its_start_and_closed_at_the_snapshot():
    events = activities(
        ("L1", SNAPSHOT, "page_view"),  # at the snapshot: counts
        ("L1", SNAPSHOT - pd.Timedelta(days=7) + SECOND, "page_view"),  # just inside 7 days
        ("L1", SNAPSHOT - pd.Timedelta(days=7), "page_view"),  # exactly 7 days: 30-day window only
        ("L1", SNAPSHOT - pd.Timedelta(days=30), "page_view"),  # exactly 30 days: outside both
    )
    row = build_features(leads_frame(), events, SNAPSHOT, spec()).loc["L1"]
    assert (row["page_view_7d"], row["page_view_30d"]) == (2, 3)
    assert row["days_since_last_activity"] == 0
    assert row["engagement_trend"] == 2 - 1  # last 7 days vs the 7 days before


def test_per_lead_snapshots_are_matched_by_lead_id():
    leads = leads_frame(lead(lead_id="early"), lead(lead_id="late"))
    event = SNAPSHOT - pd.Timedelta(days=1)
    events = activities(("early", event, "pricing_view"), ("late", event, "pricing_view"))
    snapshots = pd.Series([event - SECOND, event], index=pd.Index(["early", "late"], name="lead_id"))
    frame = build_features(leads, events, snapshots.iloc[::-1], spec())  # aligned by lead_id, not position
    assert frame["pricing_view_7d"].to_dict() == {"early": 0, "late": 1}


def test_training_snapshot_is_capped_at_the_decision():
    created = pd.Timestamp("2024-01-01")
    leads = pd.DataFrame({"lead_id": ["slow", "fast", "open"], "created_at": [created] * 3})
    outcomes = pd.DataFrame(
        {
            "lead_id": ["slow", "fast", "open"],
            "status": ["converted", "rejected", "open"],
            "reason": [None, "no_budget", None],
            "decided_at": [created + pd.Timedelta(days=30), created + pd.Timedelta(hours=5), pd.NaT],
        }
    )
    labels = build_labels(leads, outcomes, LabelParams(reasons={"no_budget": "negative"}), pd.Timestamp("2024-02-01"))
    snapshots = training_snapshots(leads, labels.frame, spec())
    assert snapshots.to_dict() == {
        "slow": created + pd.Timedelta(days=3),
        "fast": created + pd.Timedelta(hours=5),
        "open": created + pd.Timedelta(days=3),
    }
    assert training_snapshots(leads, labels.frame.reset_index(), spec()).equals(snapshots)
    # the rep's call logged right after rejecting never reaches the training row
    events = activities(("fast", created + pd.Timedelta(hours=6), "demo_request"))
    assert build_features(leads, events, snapshots, spec()).loc["fast", "demo_requested"] == 0


def test_a_lead_decided_on_an_unknown_date_is_seen_at_its_creation_never_after_its_outcome():
    """decided_at is optional: a CRM that leaves a deal's won date empty must not have its lead seen at day 90
    with the activities that came after the conversion counted as intent."""
    created = pd.Timestamp("2024-01-01")
    ids = [f"won-{i}" for i in range(50)] + ["open"]
    leads = pd.DataFrame({"lead_id": ids, "created_at": [created] * len(ids)})
    outcomes = pd.DataFrame({"lead_id": ids[:-1], "status": "converted", "decided_at": pd.NaT})
    labels = build_labels(leads, outcomes, LabelParams(), pd.Timestamp("2024-12-01"))
    ages = [0, 3, 7, 14, 30, 60, 90]

    seen_at = training_snapshots(leads, labels.frame, spec(snapshot_days=ages))

    assert (seen_at.iloc[:-1] == created).all()  # about six in seven were seen at days 3-90
    assert list(ages_open(leads, labels.frame, spec(snapshot_days=ages))[:-1]) == [1.0] * 50
    assert seen_at["open"] >= created  # a lead that is still open is seen at any age, as before
    events = activities(("won-0", created + pd.Timedelta(days=20), "demo_request"))
    assert build_features(leads, events, seen_at, spec()).loc["won-0", "demo_request_30d"] == 0


def test_training_leads_are_seen_at_ages_they_reached_still_open():
    ages = [0, 3, 7, 14, 30, 60, 90]
    created = pd.Timestamp("2024-01-01")
    n = 2000
    ids = [f"lead-{i}" for i in range(n)]
    decided_after = np.where(np.arange(n) % 2 == 0, 10.0, np.nan)  # half decided on day 10, half still open
    leads = pd.DataFrame({"lead_id": ids, "created_at": [created] * n})
    labels = pd.DataFrame(
        {"lead_id": ids, "decided_at": created + pd.to_timedelta(decided_after, unit="D")}
    )
    seen_at = (training_snapshots(leads, labels, spec(snapshot_days=ages)) - created).dt.days
    decided_leads, open_leads = seen_at.iloc[::2], seen_at.iloc[1::2]
    # Never at or after the decision: a lead decided on day 10 is seen at day 0, 3 or 7.
    assert set(decided_leads) == {0, 3, 7}
    assert set(open_leads) == set(ages)
    # Spread over the ages (each about 1/7 of the open leads), not piled on one.
    assert open_leads.value_counts().min() > n / 2 / len(ages) * 0.7
    # The same lead gets the same age whatever the row order or the other leads in the export.
    shuffled = training_snapshots(leads.iloc[::-1], labels, spec(snapshot_days=ages))
    assert shuffled.loc[seen_at.index].equals(training_snapshots(leads, labels, spec(snapshot_days=ages)))
    alone = training_snapshots(leads.iloc[[5]], labels, spec(snapshot_days=ages))
    assert (alone - created).dt.days.iloc[0] == seen_at.iloc[5]


def test_weighted_by_ages_open_the_leads_seen_at_an_age_stand_for_all_leads_open_then():
    """Half the leads are rejected on day 10, half stay open; at days 0-7 half of the open leads are
    the soon-rejected ones. Seen at one age each, those are over-represented among the young rows
    (each of their 3 ages gets a third of them, each of the others' 7 ages a seventh)."""
    ages = [0, 3, 7, 14, 30, 60, 90]
    created = pd.Timestamp("2024-01-01")
    n = 4000
    ids = [f"lead-{i}" for i in range(n)]
    soon_rejected = pd.Series(np.arange(n) % 2 == 0, index=pd.Index(ids, name="lead_id"))
    leads = pd.DataFrame({"lead_id": ids, "created_at": [created] * n})
    labels = pd.DataFrame(
        {"lead_id": ids, "decided_at": created + pd.to_timedelta(np.where(soon_rejected, 10.0, np.nan), unit="D")}
    )
    seen_at = (training_snapshots(leads, labels, spec(snapshot_days=ages)) - created).dt.days
    weights = pd.Series(ages_open(leads, labels, spec(snapshot_days=ages)), index=seen_at.index)
    assert set(weights[soon_rejected]) == {3} and set(weights[~soon_rejected]) == {7}
    for age in (0, 3, 7):
        at = seen_at == age
        assert soon_rejected[at].mean() > 0.62  # unweighted: about 0.7
        assert abs(weights[at & soon_rejected].sum() / weights[at].sum() - 0.5) < 0.07


def test_a_lead_decided_before_the_youngest_age_is_seen_at_its_decision():
    created = pd.Timestamp("2024-01-01")
    leads = pd.DataFrame({"lead_id": ["fast"], "created_at": [created]})
    labels = pd.DataFrame({"lead_id": ["fast"], "decided_at": [created + pd.Timedelta(hours=5)]})
    assert training_snapshots(leads, labels, spec(snapshot_days=[1, 3])).iloc[0] == created + pd.Timedelta(hours=5)


@pytest.mark.parametrize("ages, message", [([], "at least one snapshot age"), ([3, -1], "none negative")])
def test_bad_snapshot_ages_are_refused(ages, message):
    with pytest.raises(ValueError, match=message):
        spec(snapshot_days=ages)


def test_zone_aware_and_iso_text_times_agree_with_naive_utc():
    naive = build_features(
        leads_frame(), activities(("L1", SNAPSHOT - SECOND, "demo_request")), SNAPSHOT, spec()
    )
    berlin = activities(("L1", SNAPSHOT - SECOND, "demo_request"))
    berlin["occurred_at"] = berlin["occurred_at"].dt.tz_localize("UTC").dt.tz_convert("Europe/Berlin")
    as_text = leads_frame(lead(created_at=(SNAPSHOT - pd.Timedelta(days=10)).isoformat()))
    aware = build_features(as_text, berlin, SNAPSHOT.tz_localize("UTC").isoformat(), spec())
    pd.testing.assert_frame_equal(naive, aware)


@pytest.mark.parametrize("when", ["0001-01-01T00:00:00Z", "9999-12-31", "2262-04-12", "1677-09-21"])
def test_a_date_nanoseconds_cannot_hold_is_refused_by_name(when):
    """Features compute in int64 nanoseconds; ingest refuses such dates, a direct caller gets the field."""
    events = pd.DataFrame({"lead_id": ["L1"], "occurred_at": pd.Series([when]), "activity": ["demo_request"]})
    with pytest.raises(ValueError, match=r"^activities.occurred_at: date out of range, e.g. "):
        build_features(leads_frame(), events, SNAPSHOT, spec())


def test_activity_types_are_matched_loosely_and_unknown_ones_ignored():
    events = activities(
        ("L1", SNAPSHOT - SECOND, " Demo_Request "),
        ("L1", SNAPSHOT - SECOND, "fax_received"),
        ("someone_else", SNAPSHOT - SECOND, "demo_request"),
    )
    row = build_features(leads_frame(), events, SNAPSHOT, spec()).loc["L1"]
    assert row["demo_request_7d"] == 1
    assert row["page_view_30d"] == 0


def test_settings_naming_values_the_export_never_holds_are_named_with_the_exports_own_spelling():
    """A Salesforce/HubSpot export writes 'Requested Demo' and 'United States' where params say demo_request, US."""
    leads = leads_frame(lead(), lead(lead_id="L2", country="United States", industry="Computer Software"))
    events = activities(("L1", SNAPSHOT, "Requested Demo"), ("L2", SNAPSHOT, "Requested Demo"),
                        ("L1", SNAPSHOT, " page_view"), ("L1", SNAPSHOT, "PRICING_VIEW"))

    settings = spec(icp=IcpParams(industries=["Software", "fintech"], countries=["US"]), unsupported_countries=["RU", "US"])
    warnings = unmatched_settings(leads, events, settings)

    assert warnings == [
        "features.activity_types: no activity in the export is of type demo_request, so their counts are 0 for "
        "every lead; the export's types not listed there: 'Requested Demo' (2) (translate them with "
        "data.value_maps.activity)",
        "features.icp.industries: no lead's industry is any of ['fintech'], so those never count; the export's "
        "values not listed there: 'Computer Software' (1) (write them as the export does, or translate them with "
        "data.value_maps.industry)",
    ]
    # A block list may name countries no lead came from (RU above), but not only those
    names = unmatched_settings(leads_frame(lead(country="Russia")), None, spec(unsupported_countries=["RU"]))
    assert names[-1].startswith("features.unsupported_countries: no lead's country is any of ['RU']")
    assert "'Russia' (1)" in names[-1]
    # Written as the export writes countries, a block list no lead came from is what a blocking form gives: no warning
    blocked = unmatched_settings(leads_frame(lead(country="US")), None, spec(unsupported_countries=["RU", "KP"]))
    assert not [w for w in blocked if w.startswith("features.unsupported_countries")]
    # An ICP market no lead came from yet, every export value listed: nothing to quote or translate
    (market,) = [w for w in unmatched_settings(leads_frame(lead(country="US")), None,
                                               spec(icp=IcpParams(countries=["US", "DE"])))
                 if w.startswith("features.icp.countries")]
    assert market == ("features.icp.countries: no lead's country is any of ['DE'], so those never count (every country "
                      "the export holds is listed there)")


def test_each_cleaned_value_is_spelled_as_the_crm_spells_most_of_its_rows():
    """Features compare "Olark Chat" as "olark chat"; marketing reads the CRM's own "Olark Chat" back."""
    values = pd.Series(["Olark Chat", " olark chat", "Olark Chat ", "OLARK CHAT", None, "", "google", 3.0],
                       dtype=object)
    assert crm_spellings(values) == {"olark chat": "Olark Chat", "google": "google", "3": "3"}
    # Dictionary-coded text (a Parquet export) reads the same; a tie goes to the spelling seen first
    assert crm_spellings(pd.Series(["E-COMMERCE", "e-commerce"], dtype="category")) == {"e-commerce": "E-COMMERCE"}


def test_no_activity_table_is_unknown_but_an_empty_one_is_zero():
    unknown = build_features(leads_frame(), None, SNAPSHOT, spec()).loc["L1"]
    assert np.isnan(unknown["demo_request_7d"]) and np.isnan(unknown["engagement_trend"])
    none = build_features(leads_frame(), activities(), SNAPSHOT, spec()).loc["L1"]
    assert none["demo_request_7d"] == 0 and none["days_since_last_activity"] == RECENCY_CAP_DAYS


def test_undated_leads_without_activities():
    undated = leads_frame(lead(lead_id="a"), lead(lead_id="b")).drop(columns="created_at")
    frame = build_features(undated, None, None, spec())
    assert len(frame) == 2
    assert frame["demo_request_7d"].isna().all()
    assert frame.loc["a", "seniority"] == "vp"
    with pytest.raises(ValueError, match="without snapshot_at"):
        build_features(undated, activities(("a", SNAPSHOT, "demo_request")), None, spec())


def test_one_lead_scored_alone_matches_the_same_lead_in_a_batch():
    batch = leads_frame(lead(lead_id="a"), lead(lead_id="b", job_title="Student", email="x@mit.edu", employees=3))
    events = activities(("a", SNAPSHOT - SECOND, "pricing_view"), ("b", SNAPSHOT - pd.Timedelta(days=8), "page_view"))
    together = build_features(batch, events, SNAPSHOT, spec())
    alone = build_features(batch.iloc[[1]], events[events["lead_id"] == "b"], SNAPSHOT, spec())
    pd.testing.assert_frame_equal(alone, together.loc[["b"]])


# --- lead columns and derived signals ------------------------------------------------------------


@pytest.mark.parametrize(
    ("title", "seniority", "department"),
    [
        ("VP of Sales", "vp", "sales"),
        ("Head of Marketing", "director", "marketing"),
        ("CTO", "c_level", "engineering"),
        ("Founder & CEO", "c_level", "executive"),
        ("Co-Founder", "c_level", "executive"),
        ("Sr. Software Engineer", "individual", "engineering"),
        ("Marketing Intern", "intern", "marketing"),
        ("Student", "student", "other"),
        ("PhD Student, Computer Science", "student", "other"),
        ("Director, IT", "director", "it"),
        ("Senior Vice President, Finance", "vp", "finance"),
        ("President", "c_level", "executive"),
        ("Chief Marketing Officer", "c_level", "marketing"),
        ("Managing Director", "c_level", "executive"),
        ("Executive Assistant to the CEO", "individual", "executive"),
        ("Account Executive", "individual", "sales"),
        ("Sales Development Rep (SDR)", "individual", "sales"),
        ("Business Development Manager", "manager", "sales"),
        ("Product Marketing Manager", "manager", "marketing"),
        ("Product Owner", "individual", "product"),
        ("Engineering Team Lead", "manager", "engineering"),
        ("Lead Generation Specialist", "individual", "other"),
        ("Data Scientist", "individual", "data"),
        ("Technical Recruiter", "individual", "hr"),
        ("Customer Success Manager", "manager", "customer_success"),
        ("  DIRECTOR OF OPERATIONS ", "director", "operations"),
        ("Controller", "individual", "finance"),
        ("asdfgh", "unknown", "other"),
        (None, "unknown", "unknown"),
        ("", "unknown", "unknown"),
    ],
)
def test_job_title_parsing(title, seniority, department):
    fit_only = spec(activity_types=[], monotone_increasing=[])
    row = build_features(leads_frame(lead(job_title=title)), None, None, fit_only).iloc[0]
    assert (row["seniority"], row["department"]) == (seniority, department)


def test_email_signals_ignore_casing_and_spaces():
    plain = leads_frame(lead(lead_id="a", email="bob@gmail.com"), lead(lead_id="b", email="kim@sales.rivalsoft.com"))
    shouty = leads_frame(
        lead(lead_id="a", email="  Bob@GMAIL.com "), lead(lead_id="b", email="KIM@Sales.RivalSoft.COM")
    )
    pd.testing.assert_frame_equal(
        build_features(plain, None, SNAPSHOT, spec()), build_features(shouty, None, SNAPSHOT, spec())
    )
    frame = build_features(plain, None, SNAPSHOT, spec())
    assert frame["email_free"].tolist() == [1, 0]
    assert frame["email_competitor"].tolist() == [0, 1]


@pytest.mark.parametrize(
    ("email", "free", "student", "competitor", "missing"),
    [
        ("ana@mit.edu", 0, 1, 0, 0),
        ("ana@ox.ac.uk", 0, 1, 0, 0),
        ("ana@student.uni-bonn.de", 0, 1, 0, 0),
        ("ana@education.com", 0, 0, 0, 0),
        ("ana@notrivalsoft.com", 0, 0, 0, 0),
        ("ana@ana.com", 0, 0, 0, 0),  # a personal domain
        ("test@acme.com", 0, 0, 0, 0),  # a company's test mailbox
        # what a CRM's rep types for a lead who gave no e-mail: no way to reach them, no domain
        ("not an email", np.nan, np.nan, np.nan, 1),
        ("none", np.nan, np.nan, np.nan, 1),
        ("asdf@asdf", np.nan, np.nan, np.nan, 1),
        ("Test@Test.com", np.nan, np.nan, np.nan, 1),
        ("noemail@gmail.com", np.nan, np.nan, np.nan, 1),
        ("x@example.com", np.nan, np.nan, np.nan, 1),
        (None, np.nan, np.nan, np.nan, 1),
        ("   ", np.nan, np.nan, np.nan, 1),
    ],
)
def test_email_domain_flags(email, free, student, competitor, missing):
    """A placeholder e-mail is as missing as none (`pipelines.contract.email_address`): it reaches no one, and its
    domain (gmail.com, example.com) is not the lead's."""
    row = build_features(leads_frame(lead(email=email)), None, SNAPSHOT, spec()).iloc[0]
    np.testing.assert_equal(
        row[["email_free", "email_student", "email_competitor", "missing_email"]].to_numpy(dtype=float),
        [free, student, competitor, missing],
    )


def test_an_email_with_any_blank_inside_is_no_address():
    """Exports carry no-break and ideographic spaces (pasted from a document or a form) as well as tabs: any character
    Python calls blank makes an e-mail no address, as a plain space does; accented letters do not."""
    blanks = [c for c in map(chr, range(0x3001)) if c.isspace()]  # the last blank Python knows is U+3000
    emails = pd.Series([f"ann{blank}lee@acme.com" for blank in blanks] + ["ann.lee@acme.com", "\u00e9mile@caf\u00e9.fr"])
    assert email_address(emails).isna().tolist() == [True] * len(blanks) + [False, False]


def test_size_band_edges():
    sizes = [1, 10, 11, 50, 51, 5000, 5001, 0, None]
    rows = [lead(lead_id=f"L{i}", employees=n) for i, n in enumerate(sizes)]
    bands = build_features(leads_frame(*rows), None, SNAPSHOT, spec())["size_band"].tolist()
    assert bands[:7] == ["1-10", "1-10", "11-50", "11-50", "51-200", "1001-5000", "5001+"]
    assert pd.isna(bands[7]) and pd.isna(bands[8])


def test_icp_match_is_the_share_of_criteria_met():
    rows = [
        lead(lead_id="perfect"),  # software, US, vp, 120 employees
        lead(lead_id="half", industry="Retail", job_title="Engineer"),
        lead(lead_id="unknown", industry=None, country=None, job_title=None, employees=None),
    ]
    frame = build_features(leads_frame(*rows), None, SNAPSHOT, spec())
    assert frame["icp_match"].to_dict() == {"perfect": 1.0, "half": 0.5, "unknown": 0.0}


def test_contact_gaps_and_unsupported_country():
    rows = [
        lead(lead_id="full"),
        lead(lead_id="gaps", phone="n/a", company="  ", country="ru"),
        lead(lead_id="no_country", phone=None, country=None),
    ]
    frame = build_features(leads_frame(*rows), None, SNAPSHOT, spec())
    assert frame.loc["gaps", ["missing_phone", "missing_company", "unsupported_country"]].tolist() == [1, 1, 1]
    assert frame.loc["full", ["missing_phone", "missing_company", "unsupported_country"]].tolist() == [0, 0, 0]
    assert frame.loc["no_country", "missing_phone"] == 1 and np.isnan(frame.loc["no_country", "unsupported_country"])


def test_categories_are_normalised_and_unseen_values_pass_through():
    rows = [
        lead(lead_id="a", industry=" Software ", region=3.0),
        lead(lead_id="b", industry="Quantum Basket Weaving", lead_source=None, region=np.nan),
    ]
    frame = build_features(leads_frame(*rows), None, SNAPSHOT, spec(categorical=["industry", "lead_source", "region"]))
    assert frame["industry"].tolist() == ["software", "quantum basket weaving"]
    assert pd.isna(frame.loc["b", "lead_source"])
    assert frame.loc["a", "region"] == "3" and pd.isna(frame.loc["b", "region"])  # a code read as 3.0


def test_missing_optional_columns_become_missing_features():
    bare = pd.DataFrame({"lead_id": ["a"], "created_at": [SNAPSHOT]})
    row = build_features(bare, activities(), SNAPSHOT, spec()).iloc[0]
    assert pd.isna(row["industry"]) and np.isnan(row["employees"]) and pd.isna(row["size_band"])
    assert row["seniority"] == "unknown" and row["icp_match"] == 0
    assert np.isnan(row["missing_phone"]) and np.isnan(row["email_free"])
    assert row["page_view_7d"] == 0


def test_numeric_text_is_parsed_and_garbage_refused_by_name():
    frame = build_features(leads_frame(lead(employees=" 120 ")), None, SNAPSHOT, spec())
    assert frame.iloc[0]["employees"] == 120
    with pytest.raises(ValueError, match=r"leads.employees.*'L1': 'lots'"):
        build_features(leads_frame(lead(employees="lots")), None, SNAPSHOT, spec())


def test_numeric_text_is_read_by_the_number_fields_rule():
    """Text reaches a numeric feature when a model's features.numeric names a column today's params do not read as
    a number (retrain's champion, audit's previous model, monitor): pandas' fallback parser read the '+'-signed
    "+9999999999999.2504" as 9999999999999.252, and took "inf" and a negative count, which the service refuses."""
    counts = spec(numeric=["employees", "visits"], non_negative=["visits"])
    frame = build_features(leads_frame(lead(visits="+9999999999999.2504"), lead(lead_id="L2", visits=" 3 "),
                                       lead(lead_id="L3", visits=" ")), None, SNAPSHOT, counts)
    assert frame["visits"].tolist()[:2] == [9999999999999.2504, 3.0] and np.isnan(frame["visits"].iloc[2])
    for visits, why in (("inf", "not a finite number smaller than 1e+15 in size"), ("-3", "below 0"),
                        ("5\u00a0", "not a number")):
        with pytest.raises(ValueError, match=rf"leads\.visits: {re.escape(why)}.*'L1': {re.escape(repr(visits))}"):
            build_features(leads_frame(lead(visits=visits)), None, SNAPSHOT, counts)


def test_a_numeric_column_of_numbers_is_held_to_the_number_fields_limits_too():
    """A Parquet or SQL column of numbers that only another model reads as a number (retrain's champion, audit's
    previous model, monitor) was built as it stood, inf and -3 visits included, where the export's number field and
    the service refuse them: it is refused by column and lead as text of the same numbers is."""
    counts = spec(numeric=["employees", "visits"], non_negative=["visits"])
    frame = build_features(leads_frame(lead(visits=2.0), lead(lead_id="L2", visits=np.nan)), None, SNAPSHOT, counts)
    assert frame["visits"].iloc[0] == 2.0 and np.isnan(frame["visits"].iloc[1])
    for visits, why in ((np.inf, "not a finite number smaller than 1e+15 in size"), (-3.0, "below 0")):
        with pytest.raises(ValueError, match=rf"leads\.visits: {re.escape(why)}.*'L1': {re.escape(repr(visits))}"):
            build_features(leads_frame(lead(visits=visits)), None, SNAPSHOT, counts)


def test_zero_leads_give_zero_rows_with_every_column():
    empty = leads_frame(lead()).iloc[0:0]
    frame = build_features(empty, activities(), SNAPSHOT, spec())
    assert frame.shape == (0, len(feature_catalog(spec())))
    no_labels = pd.DataFrame({"decided_at": pd.Series([], dtype="datetime64[ns]")})
    assert len(training_snapshots(empty, no_labels, spec())) == 0


def test_bad_keys_are_refused():
    with pytest.raises(ValueError, match="repeated"):
        build_features(leads_frame(lead(), lead()), None, SNAPSHOT, spec())
    with pytest.raises(ValueError, match="activities.lead_id.*int64"):
        build_features(leads_frame(), activities((1, SNAPSHOT, "demo_request")), SNAPSHOT, spec())
    with pytest.raises(ValueError, match="no snapshot for lead_id"):
        build_features(leads_frame(), None, pd.Series([SNAPSHOT], index=["other"]), spec())


def test_the_lead_columns_read_are_the_plain_ones_and_those_each_derived_signal_is_computed_from():
    spec = FeatureParams(categorical=["lead_source"], numeric=["employees"], derived=["contact_gaps", "icp_match"],
                         icp=IcpParams(industries=["software"], seniorities=["vp"]))
    assert lead_columns_read(spec) == ["lead_source", "employees", "email", "phone", "company", "industry", "job_title"]
    assert lead_columns_read(FeatureParams(derived=["icp_match"], icp=IcpParams(countries=["DE"]))) == ["country"]
