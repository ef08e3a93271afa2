"""Explanation phrases: every signal a model can show reads as words a rep understands."""

from __future__ import annotations

import math
import pickle

import numpy as np
import pandas as pd
import pytest

from features.build import build_features
from features.phrases import ABSENCE_RAISES, PRESENCE_LOWERS, AmountDirection, describe, past_horizon, phrase_templates, phrasebook
from pipelines.config import PROJECT_ROOT, FeatureParams, load_params

SNAPSHOT = pd.Timestamp("2024-03-01 12:00")
PARAMS_FILES = ["params.yaml", "params.x_education.yaml"]


def demo_spec(**overrides) -> FeatureParams:
    """The demo params' features section, with overrides."""
    spec = load_params(PROJECT_ROOT / "params.yaml").features
    return spec.model_copy(update=overrides)


def lead(**values) -> dict:
    return {"lead_id": "L1", "created_at": SNAPSHOT - pd.Timedelta(days=3), **values}


def described(leads: list[dict], events: list[tuple[str, str, float]] | None, spec: FeatureParams):
    """Phrases and values for leads and (lead_id, activity, days before the snapshot) events."""
    activities = pd.DataFrame(
        [{"lead_id": i, "activity": a, "occurred_at": SNAPSHOT - pd.Timedelta(days=d)} for i, a, d in events or []],
        columns=["lead_id", "activity", "occurred_at"],
    )
    features = build_features(pd.DataFrame(leads), activities, SNAPSHOT if spec.activity_types else None, spec)
    return describe(features, spec)


@pytest.mark.parametrize("params_file", PARAMS_FILES)
def test_every_signal_of_both_params_files_has_a_template_that_renders(params_file):
    spec = load_params(PROJECT_ROOT / params_file).features
    templates = phrase_templates(spec)  # raises naming any signal without a template
    # One lead that answered little and one that answered nothing: every state the data can reach.
    leads = [{"lead_id": "A", "created_at": SNAPSHOT, "country": "India", "occupation": "Student", "email": "x@gmail.com"},
             {"lead_id": "B", "created_at": SNAPSHOT}]
    activities = None
    if spec.activity_types:
        activities = pd.DataFrame({"lead_id": ["A"], "activity": [spec.activity_types[0]], "occurred_at": [SNAPSHOT]})
    features = build_features(pd.DataFrame(leads), activities, SNAPSHOT if spec.activity_types else None, spec)
    phrases, values = describe(features, spec)
    assert list(phrases.columns) == list(templates)
    text = phrases.to_numpy().ravel()
    assert all(isinstance(t, str) and t and "{" not in t and "|" not in t and "[" not in t for t in text)
    assert values.notna().all().all()


def test_a_signal_without_a_template_is_refused_by_name():
    spec = demo_spec(categorical=["industry", "occupation"])
    with pytest.raises(ValueError, match=r"'occupation' has no template: add features\.phrases\.occupation"):
        phrase_templates(spec)


@pytest.mark.parametrize(
    "phrases, message",
    [
        ({"ocupation": "Occupation: {value}"}, r"'ocupation' is not a signal"),
        ({"industry": "Industry: {level}"}, r"'industry': unknown field \{level\}"),
        ({"pricing_view": "Viewed pricing | [never] Not yet"}, r"'pricing_view': unknown state \[never\]"),
        ({"industry": "[known] Industry: {value}"}, r"'industry': no text for state\(s\) \['unknown'\]"),
        ({"icp_match": "Fit {value:.1f}"}, r"'icp_match': does not render"),
        ({"employees": "[=ten] Ten people | {value}"}, r"only for category signals"),
    ],
)
def test_a_template_that_cannot_render_is_refused_with_the_signal(phrases, message):
    with pytest.raises(ValueError, match=message):
        phrase_templates(demo_spec(phrases=phrases))


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"phrases": {"size_band": "Size {value}"}},
         r"'size_band' is not a signal .*joined into 'employees'.*write features\.phrases\.employees instead"),
        ({"phrases": {"missing_email": "No e-mail"}},
         r"'missing_email' is not a signal .*joined into 'email_domain_type'.*write features\.phrases\.email_domain_type"),
        ({"monotone_decreasing": ["activity_recency", "missing_email"]},
         r"missing_email is joined into signal email_domain_type .*name email_domain_type to constrain all of its"
         r" features \(email_free, email_student, email_competitor, missing_email\)"),
    ],
)
def test_naming_a_joined_feature_in_params_says_which_signal_to_name_instead(overrides, message):
    with pytest.raises(ValueError, match=message):
        phrase_templates(demo_spec(**overrides))


def test_activity_reads_its_shortest_window_with_events_and_says_when_there_are_none():
    spec = demo_spec()
    events = [("A", "pricing_view", d) for d in (1, 2, 3, 6)] + [("A", "pricing_view", 20)] * 2
    events += [("A", "demo_request", 200), ("B", "page_view", 40)]
    phrases, values = described([lead(lead_id="A"), lead(lead_id="B")], events, spec)
    assert phrases.loc["A", "pricing_view"] == "Viewed pricing 4 times in the last 7 days"
    assert values.loc["A", "pricing_view"] == "7d: 4, 30d: 6, 90d: 6, ever: yes"
    assert phrases.loc["B", "pricing_view"] == "Has not viewed pricing"
    # A demo requested before every window is still there in the "ever" flag: the phrase says so.
    assert phrases.loc["A", "demo_request"] == "Requested a demo more than 90 days ago"
    assert phrases.loc["B", "page_view"] == "Viewed 1 web page in the last 90 days"
    assert phrases.loc["A", "activity_recency"] == "Last activity 1 day ago"
    assert phrases.loc["B", "activity_recency"] == "Last activity 40 days ago"


def test_recency_counts_24_hour_periods_and_never_names_a_calendar_day():
    # At noon, 15 hours ago was yesterday evening and 45 hours ago two calendar days back.
    events = [("A", "page_view", 15 / 24), ("B", "page_view", 45 / 24)]
    phrases, _ = described([lead(lead_id="A"), lead(lead_id="B")], events, demo_spec())
    assert phrases["activity_recency"].tolist() == ["Last activity less than a day ago", "Last activity 1 day ago"]


def test_a_lead_younger_than_the_recency_window_without_activity_reads_new_not_dormant():
    spec = demo_spec()
    leads = [lead(lead_id="new"), lead(lead_id="today"), lead(lead_id="old"), lead(lead_id="active")]
    activities = pd.DataFrame({"lead_id": ["active"], "activity": ["page_view"], "occurred_at": [SNAPSHOT - pd.Timedelta(days=1)]})
    features = build_features(pd.DataFrame(leads), activities, SNAPSHOT, spec)
    ages = np.array([2.5, 0.2, 400.0, 2.5])
    phrases, values = describe(features, spec, ages)
    assert phrases["activity_recency"].tolist() == [
        "No activity since it was created 2 days ago", "No activity since it was created less than a day ago",
        "No activity in the last 365 days", "Last activity 1 day ago",
    ]
    assert values.loc["new", "activity_recency"] == "none yet"
    # Without ages (an undated export, or a caller that does not know them): as before.
    assert describe(features, spec)[0].loc["new", "activity_recency"] == "No activity in the last 365 days"
    # A params template without [new] says its [none] text with the lead's age.
    custom = demo_spec(phrases={"activity_recency": "Last activity {ago} | [none] Silent for {days} days | [unknown] ?"})
    assert describe(features, custom, ages)[0]["activity_recency"].tolist()[:3] == [
        "Silent for 2 days", "Silent for 0 days", "Silent for 365 days"]


def test_no_activity_table_reads_as_unknown_not_as_none():
    spec = demo_spec()
    features = build_features(pd.DataFrame([lead()]), None, SNAPSHOT, spec)
    phrases, _ = describe(features, spec)
    assert phrases.loc["L1", "pricing_view"] == "No activity data"
    assert phrases.loc["L1", "activity_recency"] == "No activity data"


@pytest.mark.parametrize(
    "email, phrase",
    [
        ("ana@gmail.com", "Free e-mail domain"),
        ("ana@mit.edu", "Student e-mail address"),
        ("ana@rivalsoft.com", "Competitor's e-mail domain"),
        ("ana@acme.com", "Business e-mail domain"),
        (None, "No usable e-mail address"),
    ],
)
def test_email_domain_type_reads_as_the_kind_of_domain(email, phrase):
    phrases, _ = described([lead(email=email)], [], demo_spec())
    assert phrases.loc["L1", "email_domain_type"] == phrase


def test_fit_signals_read_with_the_leads_own_values():
    fit = lead(industry="Software", country="us", employees=250, job_title="VP Marketing", email="a@acme.com",
               lead_source="Web_Organic", campaign="spring_promo 2025")
    phrases, values = described([fit], [], demo_spec())
    row = phrases.loc["L1"]
    assert row["icp_match"] == "Matches 4 of 4 ideal customer profile criteria"  # a rep does not read "ICP"
    assert row["industry"] == "Industry: software"
    # A CRM code reads as words; the value beside the factor stays the code, as features store it.
    assert (row["lead_source"], values.loc["L1", "lead_source"]) == ("Lead source: web organic", "web_organic")
    assert row["campaign"] == "Came in through campaign spring promo 2025"
    assert row["country"] == "Country: US"
    assert row["seniority"] == "Seniority: VP"
    assert row["department"] == "Department: Marketing"
    assert "size_band" not in phrases.columns  # joined to employees: one factor, worded by the count
    assert row["employees"] == "250 employees"
    assert values.loc["L1", "icp_match"] == "4 of 4"


def test_unseen_and_missing_values_read_as_themselves_and_as_not_given():
    phrases, values = described([lead(industry="Asteroid Mining")], [], demo_spec())
    assert phrases.loc["L1", "industry"] == "Industry: asteroid mining"
    assert phrases.loc["L1", "employees"] == "Employee count not given"
    assert values.loc["L1", "employees"] == "unknown"


def test_a_yes_no_fact_shows_the_leads_own_value_not_the_internal_flags():
    """/explain showed "Has a phone number" with the value "no" (the missing_phone flag's): the value says the lead's
    phone, company or country as the phrase does."""
    leads = [lead(lead_id="given", phone="+1 555 0100", company="Acme"), lead(lead_id="none", phone="n/a")]
    phrases, values = described(leads, [], demo_spec())
    assert list(zip(phrases["missing_phone"], values["missing_phone"])) == [
        ("Has a phone number", "given"), ("No phone number", "not given")]
    assert values["missing_company"].tolist() == ["given", "not given"]
    phrases, values = described([lead(lead_id="RU", country="RU"), lead(lead_id="US", country="US")], [],
                                demo_spec(categorical=["industry", "lead_source", "campaign"]))
    assert list(zip(phrases["unsupported_country"], values["unsupported_country"])) == [
        ("In a country we do not serve", "not served"), ("In a country we serve", "served")]


def test_a_factor_reads_the_models_finding_where_its_words_make_its_sign_look_like_nonsense():
    """"Has a phone number -2 pts" or "Viewed 1 web page in the last 7 days -1 pt" read as nonsense or as a bug to a
    rep, as "No phone number +1 pt" did: a factor saying the lead has something usually good that lowers its score says
    the model counts that as a minus for leads like this one, as an absence raising it says a plus (words a rep reads
    at a glance: "the model found that a plus" was not English). A category value or an amount ("250 employees",
    "Matches 2 of 4 ...", "Last activity 2 days ago") reads as itself whatever its sign, and so does a factor whose
    words and sign agree."""
    spec = demo_spec()
    leads = pd.DataFrame([
        lead(lead_id="has", phone="+1 555 0100", company="Acme", email="kim@acme.io", industry="software", employees=250),
        lead(lead_id="lacks", phone="n/a"),
    ])
    events = pd.DataFrame({"lead_id": ["has"], "activity": ["page_view"], "occurred_at": [SNAPSHOT - pd.Timedelta(days=2)]})
    features = build_features(leads, events, SNAPSHOT, spec)
    book = phrasebook(spec)

    def rendered(sign: float | None) -> pd.DataFrame:
        signs = None if sign is None else np.full((len(features), len(book.signals)), sign)
        return pd.DataFrame(book.render(features, signs=signs)[0], index=features.index, columns=book.signals)

    plain = rendered(None)
    assert plain.loc["has", ["missing_phone", "page_view"]].tolist() == ["Has a phone number", "Viewed 1 web page in the last 7 days"]
    for sign, found in ((-1.0, PRESENCE_LOWERS), (1.0, ABSENCE_RAISES)):
        worded = rendered(sign)
        changed = {(row, signal): plain.loc[row, signal] for row in worded.index for signal in worded.columns
                   if worded.loc[row, signal] != plain.loc[row, signal]}
        assert all(worded.loc[key] == found.format(phrase=words) for key, words in changed.items())
        if sign < 0:
            assert changed == {("has", "missing_phone"): "Has a phone number", ("has", "missing_company"): "Company name given",
                               ("has", "email_domain_type"): "Business e-mail domain",
                               ("has", "page_view"): "Viewed 1 web page in the last 7 days",
                               ("has", "engagement_trend"): "Activity up by 1 this week vs the week before"}
        else:
            assert {("lacks", "missing_phone"), ("lacks", "page_view"), ("has", "form_fill")} <= changed.keys()
            assert not {key for key in changed if key[0] == "has" and key[1] in ("missing_phone", "page_view", "industry")}
    assert rendered(-1.0).loc["has", "missing_phone"] == "Has a phone number (for leads like this one, the model counts that as a minus)"
    assert rendered(1.0).loc["lacks", "missing_phone"] == "No phone number (for leads like this one, the model counts that as a plus)"


def test_a_low_amount_against_the_models_direction_says_what_leads_that_convert_usually_have():
    """"Spent 5 minutes on the website -9 pts" read to a rep as if spending time lowered the score: the lead spent
    little, where the model scores more higher. An amount lowering the score where more usually raises it says leads
    that convert usually have more; its mirror, one raising it where more usually lowers it, that the model counts a
    low number as a plus. An amount whose sign agrees with its direction, past where the direction turns, or without a
    direction (a model saved before it kept them), reads as itself; 0 says an absence, worded as one. Events in a window
    are an amount too, by their count over the longest window: "Viewed 1 web page in the last 7 days" lowering the score
    said the model counts that as a minus, and says leads that convert usually have more where the model scores more
    higher; where it scores fewer higher, or past where that turns, it still says the model counts it as a minus, and
    raising the score it reads as itself."""
    spec = demo_spec()
    leads = pd.DataFrame([lead(lead_id="few", employees=8, industry="software", country="US", job_title="VP Sales"),
                          lead(lead_id="none", employees=0)])
    events = pd.DataFrame({"lead_id": ["few"], "activity": ["page_view"], "occurred_at": [SNAPSHOT - pd.Timedelta(days=2)]})
    features = build_features(leads, events, SNAPSHOT, spec)
    book = phrasebook(spec)
    # Converting leads had 50 employees, met 3 criteria, viewed 2 pages in 7 days (medians): more than these leads.
    converting = {"employees": 50.0, "icp_match": 3.0, "page_view_7d": 2.0, "page_view_30d": 4.0, "page_view_90d": 9.0}
    up, down = AmountDirection(1, math.inf, converting), AmountDirection(-1, math.inf, converting)

    def worded(signal: str, sign: float, directions: dict[str, AmountDirection] | None) -> list[str]:
        signs = np.full((len(features), len(book.signals)), sign)
        return book.render(features, signs=signs, directions=directions)[0][:, book.signals.index(signal)].tolist()

    assert worded("employees", -1.0, {"employees": up}) == ["8 employees (leads that convert usually have more)",
                                                            "Employee count given as 0"]
    assert worded("employees", 1.0, {"employees": down}) == [
        "8 employees (the model counts a low number as a plus)",
        "Employee count given as 0 (for leads like this one, the model counts that as a plus)"]
    assert worded("icp_match", -1.0, {"icp_match": up})[0].endswith(
        "ideal customer profile criteria (leads that convert usually have more)")
    for sign, directions in ((1.0, {"employees": up}), (-1.0, {"employees": down}), (1.0, None), (-1.0, None),
                             (-1.0, {"icp_match": up}), (-1.0, {"employees": AmountDirection(1, 5.0, converting)})):
        assert worded("employees", sign, directions)[0] == "8 employees"
    viewed = "Viewed 1 web page in the last 7 days"
    assert worded("page_view", -1.0, {"page_view": up}) == [f"{viewed} (leads that convert usually have more)",
                                                            "No web page views in the last 90 days"]
    assert worded("page_view", 1.0, {"page_view": down}) == [  # events raising the score read right as they are
        viewed, "No web page views in the last 90 days (for leads like this one, the model counts that as a plus)"]
    for directions in ({"page_view": down}, {"page_view": AmountDirection(1, 0.5, converting)}, None):
        assert worded("page_view", -1.0, directions)[0] == PRESENCE_LOWERS.format(phrase=viewed)


def test_an_amount_not_short_of_converting_leads_does_not_say_they_usually_have_more():
    """The demo's model scored "Attended 3 webinars in the last 30 days" a point lower (it split the windows: the 30-day
    count lowered the score, the 90-day one raised it) and the factor read "(leads that convert usually have more)",
    where converting leads had attended 1. A comparison with converting leads holds against their median of the amount
    the words state (for events, in the window named): a lead at or past it, or of a model saved before it kept the
    medians, reads that the model counts it as a minus for leads like this one."""
    spec = demo_spec()
    leads = pd.DataFrame([lead(lead_id="busy", employees=400), lead(lead_id="few", employees=8),
                          lead(lead_id="recent", employees=50)])
    events = [("busy", 10), ("busy", 20), ("busy", 25), ("few", 20), ("recent", 3)]  # webinars, days before
    activities = pd.DataFrame({"lead_id": [i for i, _ in events], "activity": "webinar",
                               "occurred_at": [SNAPSHOT - pd.Timedelta(days=d) for _, d in events]})
    features = build_features(leads, activities, SNAPSHOT, spec)
    book = phrasebook(spec)
    signs = np.full((len(features), len(book.signals)), -1.0)
    # Converting leads' medians: 50 employees; none, 2 and 4 webinars in 7, 30 and 90 days; last seen 15 days ago.
    medians = {"employees": 50.0, "webinar_7d": 0.0, "webinar_30d": 2.0, "webinar_90d": 4.0,
               "days_since_last_activity": 15.0}
    directions = {"employees": AmountDirection(1, math.inf, medians), "webinar": AmountDirection(1, math.inf, medians),
                  "activity_recency": AmountDirection(-1, math.inf, medians)}

    def worded(directions: dict[str, AmountDirection]) -> dict[str, list[str]]:
        phrases = book.render(features, signs=signs, directions=directions)[0]
        return {s: phrases[:, book.signals.index(s)].tolist() for s in directions}

    def minus(words: str) -> str:
        return PRESENCE_LOWERS.format(phrase=words)

    assert worded(directions) == {
        "employees": [minus("400 employees"), "8 employees (leads that convert usually have more)",
                      minus("50 employees")],
        # "busy" attended 3 in 90 days, fewer than converting leads' 4, but its words say 30 days, where they had 2.
        "webinar": [minus("Attended 3 webinars in the last 30 days"),
                    "Attended 1 webinar in the last 30 days (leads that convert usually have more)",
                    minus("Attended 1 webinar in the last 7 days")],
        "activity_recency": [minus("Last activity 10 days ago"),
                             "Last activity 20 days ago (leads that convert were usually seen more recently)",
                             minus("Last activity 3 days ago")]}
    saved_before = {signal: AmountDirection(d.more, d.up_to) for signal, d in directions.items()}
    assert worded(saved_before) == {signal: [minus(w.split(" (")[0]) for w in words]
                                    for signal, words in worded(directions).items()}


def test_a_slowing_week_says_leads_that_convert_pick_up_only_where_their_median_week_is_up():
    """"(leads that convert usually pick up their activity)" says more than "they had more than this lead": where
    converting leads' median week-on-week change is flat or down, a slowing lead's week lowering the score reads that
    the model counts it as a minus, not that converting leads pick up."""
    spec = demo_spec()
    leads = pd.DataFrame([lead(lead_id="slowing", created_at=SNAPSHOT - pd.Timedelta(days=40))])
    events = [9, 10, 12]  # page views the week before last, none in the last week
    activities = pd.DataFrame({"lead_id": "slowing", "activity": "page_view",
                               "occurred_at": [SNAPSHOT - pd.Timedelta(days=d) for d in events]})
    features = build_features(leads, activities, SNAPSHOT, spec)
    book = phrasebook(spec)
    signs = np.full((len(features), len(book.signals)), -1.0)
    trend = book.signals.index("engagement_trend")

    def worded(converting_median: float) -> str:
        direction = AmountDirection(1, math.inf, {"engagement_trend": converting_median})
        return book.render(features, signs=signs, directions={"engagement_trend": direction})[0][0, trend]

    assert worded(2.0).endswith("(leads that convert usually pick up their activity)")
    for flat_or_down in (0.0, -1.0):
        assert worded(flat_or_down) == PRESENCE_LOWERS.format(phrase=worded(2.0).split(" (")[0])


def test_an_amount_direction_pickled_before_it_kept_converting_leads_medians_loads_without_them():
    """A registered model pickled its directions as (more, up_to): it still loads, its medians unknown, so its factors
    make no comparison with converting leads they cannot check."""
    now = pickle.dumps(AmountDirection(1, math.inf), protocol=2)
    assert b"N\x87" in now  # the class, then its fields (1, inf, None) as a 3-tuple, then NEWOBJ
    saved = now.replace(b"N\x87", b"\x86")  # as saved before: (1, inf) as a 2-tuple
    loaded = pickle.loads(saved)
    assert loaded == AmountDirection(1, math.inf) and loaded.converting is None


def test_a_crm_number_declared_fewer_is_better_reads_as_a_rep_reads_it():
    """A CRM's own "Days Since Last Contact", mapped as a number, read as a plain number: where the model scores fewer
    days higher, "2 days since the last contact +5 pts" read "(the model counts a low number as a plus)", words a rep
    does not follow, and "Contacted today" raising the score "(for leads like this one, the model counts that as a
    plus)". A number params declare monotone_decreasing reads fewer as better: raising the score it reads as itself, 0
    is the best of it rather than a lack, and one lowering the score says leads that convert usually have fewer. Its
    unit is its template's. Undeclared, or declared increasing, it reads more as better, as before."""
    phrases = {"days_since_contact": "{value} day{s} since the last contact | [zero] Contacted today"
                                     " | [unknown] No contact logged"}
    leads = pd.DataFrame([lead(lead_id=i, days_since_contact=d) for i, d in (("stale", 40), ("warm", 2), ("today", 0))])
    demo = demo_spec()

    def worded(sign: float, declared: int) -> list[str]:
        """The column's words where params declare it (1 increasing, -1 decreasing, 0 not), the model's direction
        that declared, or fewer days learned as better where not."""
        up, down = demo.monotone_increasing, demo.monotone_decreasing
        spec = demo_spec(numeric=["employees", "days_since_contact"], phrases=phrases,
                         monotone_increasing=up + ["days_since_contact"] * (declared > 0),
                         monotone_decreasing=down + ["days_since_contact"] * (declared < 0))
        book = phrasebook(spec)
        features = build_features(leads, None, SNAPSHOT, spec)
        signs = np.full((len(features), len(book.signals)), sign)
        # Converting leads were last contacted a day ago (the median), or, with more read as better, 60 days ago.
        converting = {"days_since_contact": 1.0 if declared < 0 else 60.0}
        direction = {"days_since_contact": AmountDirection(declared or -1, math.inf, converting)}
        rendered = book.render(features, signs=signs, directions=direction)[0]
        return rendered[:, book.signals.index("days_since_contact")].tolist()

    assert worded(1.0, -1) == ["40 days since the last contact", "2 days since the last contact", "Contacted today"]
    assert worded(-1.0, -1) == ["40 days since the last contact (leads that convert usually have fewer)",
                                "2 days since the last contact (leads that convert usually have fewer)",
                                "Contacted today"]
    # Undeclared, with fewer days learned as better: a rep is told the model counts a low number as a plus, as for any
    # other number; declared increasing, one lowering the score says leads that convert usually have more.
    assert worded(1.0, 0) == ["40 days since the last contact (the model counts a low number as a plus)",
                              "2 days since the last contact (the model counts a low number as a plus)",
                              "Contacted today (for leads like this one, the model counts that as a plus)"]
    assert worded(-1.0, 1)[:2] == ["40 days since the last contact (leads that convert usually have more)",
                                   "2 days since the last contact (leads that convert usually have more)"]


def test_a_last_activity_long_ago_or_a_slower_week_says_which_way_the_model_scores_it():
    """"Last activity 40 days ago -3 pts" left a rep to guess whether 40 days was read as a plus or a minus: days since
    the last activity and the week's change in activity are amounts too, each worded the way a rep reads it. Where the
    model scores leads seen more recently higher, a last activity that lowers the score says leads that convert were
    usually seen more recently; where it scores a rise in activity higher, a flat or slower week lowering it says leads
    that convert usually pick up their activity; the mirrors say the model counts the longer gap, or the slower week,
    as a plus. No activity within the window says an absence; activity up, a presence; past where the direction turns,
    or without one, the factor reads as itself."""
    spec = demo_spec()
    events = [("stale", "page_view", 40), ("slowing", "page_view", 2), *[("slowing", "email_open", 9)] * 3,
              ("rising", "page_view", 1), ("rising", "page_view", 2)]
    leads = pd.DataFrame([lead(lead_id=i) for i in ("stale", "slowing", "rising", "silent")])
    activities = pd.DataFrame([{"lead_id": i, "activity": a, "occurred_at": SNAPSHOT - pd.Timedelta(days=d)}
                               for i, a, d in events])
    features = build_features(leads, activities, SNAPSHOT, spec)
    book = phrasebook(spec)

    def worded(sign: float | None, directions: dict[str, AmountDirection] | None) -> dict[str, list[str]]:
        signs = None if sign is None else np.full((len(features), len(book.signals)), sign)
        phrases = book.render(features, signs=signs, directions=directions)[0]
        return {s: phrases[:, book.signals.index(s)].tolist() for s in ("activity_recency", "engagement_trend")}

    plain = worded(None, None)
    assert plain == {
        "activity_recency": ["Last activity 40 days ago", "Last activity 2 days ago", "Last activity 1 day ago",
                             "No activity in the last 365 days"],
        "engagement_trend": ["As active this week as the week before", "Activity down by 2 this week vs the week before",
                             "Activity up by 2 this week vs the week before", "As active this week as the week before"]}
    # Converting leads' last activity was hours ago, and their activity rose by 1 (the medians).
    converting = {"days_since_last_activity": 0.5, "engagement_trend": 1.0}
    usual = {"activity_recency": AmountDirection(-1, math.inf, converting),
             "engagement_trend": AmountDirection(1, math.inf, converting)}
    assert worded(-1.0, usual) == {
        "activity_recency": [f"{words} (leads that convert were usually seen more recently)"
                             for words in plain["activity_recency"][:3]] + ["No activity in the last 365 days"],
        "engagement_trend": ["As active this week as the week before (leads that convert usually pick up their activity)",
                             "Activity down by 2 this week vs the week before (leads that convert usually pick up their"
                             " activity)", PRESENCE_LOWERS.format(phrase="Activity up by 2 this week vs the week before"),
                             "As active this week as the week before (leads that convert usually pick up their activity)"]}
    assert worded(1.0, usual)["activity_recency"][:3] == plain["activity_recency"][:3]
    assert worded(-1.0, None)["activity_recency"] == plain["activity_recency"]  # a model saved before it kept directions
    unusual = {"activity_recency": AmountDirection(1, math.inf), "engagement_trend": AmountDirection(-1, math.inf)}
    raised = worded(1.0, unusual)
    assert raised["activity_recency"][0] == "Last activity 40 days ago (the model counts a longer time without activity as a plus)"
    assert raised["engagement_trend"][:3] == [
        "As active this week as the week before (the model counts a slower week as a plus)",
        "Activity down by 2 this week vs the week before (the model counts a slower week as a plus)",
        "Activity up by 2 this week vs the week before"]
    assert raised["activity_recency"][3] == ABSENCE_RAISES.format(phrase="No activity in the last 365 days")
    turned = {"activity_recency": AmountDirection(-1, 30.0, converting),
              "engagement_trend": AmountDirection(1, -3.0, converting)}
    assert worded(-1.0, turned)["activity_recency"][0] == "Last activity 40 days ago"
    assert worded(-1.0, turned)["engagement_trend"][1] == "Activity down by 2 this week vs the week before"


def test_an_employee_count_of_one_or_zero_reads_as_english():
    leads = [lead(lead_id="one", employees=1), lead(lead_id="none", employees=0), lead(lead_id="big", employees=500_000)]
    phrases, _ = described(leads, [], demo_spec())
    assert phrases["employees"].tolist() == ["1 employee", "Employee count given as 0", "500,000 employees"]
    # Without the count as a feature, the size band is a signal of its own and says the band.
    bands, _ = described(leads + [lead(lead_id="unknown")], [], demo_spec(numeric=[]))
    assert bands["size_band"].tolist() == ["Company size: 1-10 employees", "Company size not given",
                                           "Company size: 5001+ employees", "Company size not given"]


def test_a_country_we_do_not_serve_is_one_factor_that_names_the_country():
    """'Country: RU' beside 'In a country we do not serve' said one thing twice."""
    leads = [lead(lead_id="RU", country="ru"), lead(lead_id="US", country="US"), lead(lead_id="none")]
    phrases, values = described(leads, [], demo_spec())
    assert "unsupported_country" not in phrases.columns
    assert phrases["country"].tolist() == ["Country RU, which we do not serve", "Country: US", "Country not given"]
    assert values.loc["RU", "country"] == "ru"


def test_a_country_the_crm_writes_by_name_reads_as_a_name_not_shouted():
    """A Salesforce export writes 'United States': 'Country: UNITED STATES' on a rep's card read as a typo."""
    phrases, _ = described([lead(lead_id="A", country="United States"), lead(lead_id="B", country="gb")], [], demo_spec())
    assert phrases["country"].tolist() == ["Country: United States", "Country: GB"]
    # A params template for the joined country must word the country we do not serve.
    with pytest.raises(ValueError, match=r"'country': no \[unserved\] alternative"):
        phrase_templates(demo_spec(phrases={"country": "Country: {value} | [unknown] Country not given"}))


def test_values_derived_from_the_job_title_read_in_one_case_style():
    """"Department: sales" beside "Department: IT": a derived value reads capitalised, as a CRM value does, in the
    factor and its value alike."""
    titles = {"a": "Sales Manager", "b": "Director, IT", "c": "Customer Success Lead", "d": "VP Sales", "e": "Analyst"}
    phrases, values = described([lead(lead_id=i, job_title=t) for i, t in titles.items()], [], demo_spec())
    assert phrases["department"].tolist() == ["Department: Sales", "Department: IT", "Department: Customer success",
                                              "Department: Sales", "Department not clear from the job title"]
    assert phrases["seniority"].tolist() == ["Seniority: Manager", "Seniority: Director", "Seniority: Manager",
                                             "Seniority: VP", "Seniority: Individual contributor"]
    assert values["department"].tolist()[:3] == ["Sales", "IT", "Customer success"]


def test_a_job_title_that_tells_nothing_reads_as_such_not_as_a_level_named_unknown():
    """A lead without a job title read "Seniority not clear from the job title": it says the title is missing."""
    leads = [lead(lead_id="none"), lead(lead_id="blank", job_title="  "),
             lead(lead_id="odd", job_title="Wizard of Light Bulb Moments")]
    phrases, values = described(leads, [], demo_spec())
    assert phrases["seniority"].tolist() == ["No job title to tell the seniority"] * 2 + [
        "Seniority not clear from the job title"]
    assert values["seniority"].tolist()[:2] == values["department"].tolist()[:2] == ["No job title"] * 2
    assert phrases["department"].tolist() == ["No job title to tell the department"] * 2 + [
        "Department not clear from the job title"]


def test_an_activity_template_without_earlier_words_a_lead_active_only_before_every_window_as_none():
    """A params template for pricing views with no [earlier] text: a lead whose only view was 200 days ago read
    'Viewed pricing 0 times in the last 90 days', its default text with a count of 0; its [none] text is true."""
    spec = demo_spec(phrases={"pricing_view": "Viewed pricing {times} in {days} days | [none] No pricing view in {days} days"})
    phrases, values = described([lead(lead_id="A")], [("A", "pricing_view", 200)], spec)
    assert values.loc["A", "pricing_view"] == "7d: 0, 30d: 0, 90d: 0, ever: yes"
    assert phrases.loc["A", "pricing_view"] == "No pricing view in 90 days"


def test_params_phrases_override_built_ins_including_one_value_of_a_category():
    spec = demo_spec(
        categorical=["industry", "occupation"],
        phrases={
            "industry": "Sector {value!u} | [=software] Builds software | [unknown] Sector unknown",
            "occupation": "Occupation: {value!t} | [unknown] Occupation not given",
        },
    )
    leads = [lead(lead_id="A", industry="Software", occupation="working professional"),
             lead(lead_id="B", industry="retail"), lead(lead_id="C")]
    phrases, _ = described(leads, [], spec)
    assert phrases["industry"].tolist() == ["Builds software", "Sector RETAIL", "Sector unknown"]
    assert phrases["occupation"].tolist() == ["Occupation: Working Professional", "Occupation not given",
                                              "Occupation not given"]


def test_x_education_reads_an_unticked_do_not_email_box_as_no_opt_out_not_as_consent():
    spec = load_params(PROJECT_ROOT / "params.x_education.yaml").features
    leads = [{"lead_id": i, "do_not_email": e, "do_not_call": c} for i, e, c in [("A", "No", "No"), ("B", "Yes", None)]]
    phrases, _ = describe(build_features(pd.DataFrame(leads), None, None, spec), spec)
    assert phrases["do_not_email"].tolist() == ["Has not opted out of e-mail", "Asked not to be e-mailed"]
    assert phrases["do_not_call"].tolist() == ["Has not opted out of calls", "Call opt-out not recorded"]


def test_a_yes_no_fields_true_false_words_read_the_t_f_a_postgresql_csv_export_trains_it_on():
    """psql's `\\copy ... CSV` writes a boolean t/f, which a model trained on that file keeps as its levels: the
    template's [=true] and [=false] alternatives word them too, as a value map's true/false labels read them; an
    ordinary category's [=f] stays its own level."""
    spec = demo_spec(categorical=["do_not_email", "grade"], phrases={
        "do_not_email": "Do not e-mail: {value} | [=true] Asked not to be e-mailed | [=false] Has not opted out of "
                        "e-mail | [unknown] E-mail opt-out not recorded",
        "grade": "Grade {value} | [=f] Failed the assessment | [=a] Top grade | [unknown] Not graded"})
    leads = [lead(lead_id=i, do_not_email=e, grade=g) for i, e, g in [("A", "t", "false"), ("B", "f", "f"),
                                                                      ("C", "true", "a"), ("D", None, None)]]

    phrases, _ = described(leads, [], spec)

    assert phrases["do_not_email"].tolist() == ["Asked not to be e-mailed", "Has not opted out of e-mail",
                                                "Asked not to be e-mailed", "E-mail opt-out not recorded"]
    assert phrases["grade"].tolist() == ["Grade false", "Failed the assessment", "Top grade", "Not graded"]


def test_x_education_writes_a_specialization_as_the_form_does():
    spec = load_params(PROJECT_ROOT / "params.x_education.yaml").features
    leads = [{"lead_id": i, "specialization": v} for i, v in [("A", "IT Projects Management"), ("B", "Finance Management")]]
    phrases, _ = describe(build_features(pd.DataFrame(leads), None, None, spec), spec)
    assert phrases["specialization"].tolist() == ["Specialization: IT Projects Management",  # not "It Projects"
                                                  "Specialization: Finance Management"]


def test_x_education_says_time_on_the_website_in_minutes_not_seconds():
    spec = load_params(PROJECT_ROOT / "params.x_education.yaml").features
    seconds = {"long": 1532, "minute": 60, "short": 45, "none": 0, "unknown": None}
    leads = [{"lead_id": i, "time_on_website": s} for i, s in seconds.items()]
    phrases, values = describe(build_features(pd.DataFrame(leads), None, None, spec), spec)
    assert phrases["time_on_website"].tolist() == [
        "Spent 25 minutes on the website", "Spent 1 minute on the website", "Spent less than a minute on the website",
        "Spent no time on the website", "Time on the website unknown",
    ]
    assert values.loc["long", "time_on_website"] == "1,532"  # the CRM's own value, in its unit


def test_minutes_of_a_value_that_is_no_number_are_refused():
    with pytest.raises(ValueError, match=r"'industry': does not render"):
        phrase_templates(demo_spec(phrases={"industry": "Industry: {value!m} | [unknown] Industry not given"}))


def mixed_leads(n: int, seed: int) -> tuple[list[dict], list[tuple[str, str, float]]]:
    """`n` leads with mixed fit values and about three events each, for `described`."""
    rng = np.random.default_rng(seed)
    leads = [lead(lead_id=f"L{i}", industry=rng.choice(["software", "retail", None]), employees=rng.choice([5, 300, np.nan]))
             for i in range(n)]
    events = [(f"L{i}", str(rng.choice(["pricing_view", "page_view", "demo_request"])), float(rng.uniform(0, 100)))
              for i in rng.integers(0, n, 3 * n)]
    return leads, events


def test_rendering_many_leads_equals_rendering_each_alone():
    spec = demo_spec()
    leads, events = mixed_leads(40, seed=3)
    together, _ = described(leads, events, spec)
    for i in (0, 7, 39):
        alone, _ = described([leads[i]], [e for e in events if e[0] == f"L{i}"], spec)
        pd.testing.assert_series_equal(together.loc[f"L{i}"], alone.loc[f"L{i}"])


def test_rendering_only_the_needed_cells_words_them_as_a_full_render_does():
    spec = demo_spec()
    leads, events = mixed_leads(30, seed=5)
    activities = pd.DataFrame(
        [{"lead_id": i, "activity": a, "occurred_at": SNAPSHOT - pd.Timedelta(days=d)} for i, a, d in events],
        columns=["lead_id", "activity", "occurred_at"],
    )
    features = build_features(pd.DataFrame(leads), activities, SNAPSHOT, spec)
    book = phrasebook(spec)
    needed = np.random.default_rng(5).random((len(features), len(book.signals))) < 0.2
    full_phrases, full_values = book.render(features)
    phrases, values = book.render(features, needed)
    assert (phrases[needed] == full_phrases[needed]).all() and (values[needed] == full_values[needed]).all()
    assert all(p is None for p in phrases[~needed])


def test_an_empty_frame_gives_empty_frames_with_every_signal():
    spec = demo_spec()
    features = build_features(pd.DataFrame({"lead_id": pd.Series(dtype=str)}), None, SNAPSHOT, spec)
    phrases, values = describe(features, spec)
    assert phrases.shape == (0, len(phrase_templates(spec))) and values.shape == phrases.shape


@pytest.mark.parametrize(("age", "created"), [(214.7, "Created 214 days ago"), (120.5, "Created more than 120 days ago")])
def test_a_lead_past_the_horizon_is_told_how_old_it_is_without_reading_as_inside_it(age, created):
    """Whole days: a lead 120.5 days old is past a 120-day horizon, but "120 days ago" would read as inside it."""
    assert past_horizon(age, 120, 90) == (f"{created}, past the 120-day window this score predicts: it ranks the "
                                          "lead against 90-day-old leads, not as a chance of converting now.")


@pytest.mark.parametrize(("covers", "message"), [
    ({"total_visits": ["time_on_site"]}, r"features.zero_covers.total_visits: 'time_on_site' not in features.numeric"),
    ({"total_visits": ["total_visits"]}, r"'total_visits' cannot be covered: it covers columns itself"),
])
def test_zero_covers_names_number_columns_a_typo_is_refused_by_name(covers, message):
    spec = load_params(PROJECT_ROOT / "params.x_education.yaml").features.model_dump()
    with pytest.raises(ValueError, match=message):
        FeatureParams(**{**spec, "zero_covers": covers})


def test_x_education_says_a_visit_count_as_a_rep_would_once_twice():
    """'Visited the website 1 time' read as a form letter."""
    spec = load_params(PROJECT_ROOT / "params.x_education.yaml").features
    leads = [{"lead_id": str(n), "total_visits": n} for n in (1, 2, 5, 0)]
    phrases, _ = describe(build_features(pd.DataFrame(leads), None, None, spec), spec)
    assert phrases["total_visits"].tolist() == ["Visited the website once", "Visited the website twice",
                                                "Visited the website 5 times", "Never visited the website"]


def test_x_education_title_cases_a_value_as_the_form_writes_it():
    """'City: Other Cities Of Maharashtra', 'Tier Ii Cities' and 'Media And Advertising' read as typos."""
    spec = load_params(PROJECT_ROOT / "params.x_education.yaml").features
    leads = [{"lead_id": "A", "city": "Other Cities of Maharashtra", "specialization": "Media and Advertising"},
             {"lead_id": "B", "city": "Tier II Cities", "specialization": "E-Business"}]
    phrases, _ = describe(build_features(pd.DataFrame(leads), None, None, spec), spec)
    assert phrases["city"].tolist() == ["City: Other Cities of Maharashtra", "City: Tier II Cities"]
    assert phrases["specialization"].tolist() == ["Specialization: Media and Advertising", "Specialization: E-Business"]


def test_x_education_words_the_forms_catch_all_answers_not_as_codes():
    """'Heard about X Education through: other', '... through: sms' read as codes, not as what the lead said."""
    spec = load_params(PROJECT_ROOT / "params.x_education.yaml").features
    leads = [{"lead_id": "A", "heard_about_us": "Other", "course_priority": "Other", "occupation": "Other"},
             {"lead_id": "B", "heard_about_us": "SMS", "course_priority": "Better Career Prospects"},
             {"lead_id": "C", "heard_about_us": "Word Of Mouth"}]
    phrases, _ = describe(build_features(pd.DataFrame(leads), None, None, spec), spec)
    assert phrases["heard_about_us"].tolist() == ["Heard about X Education some other way",
                                                  "Heard about X Education through an SMS",
                                                  "Heard about X Education through word of mouth"]
    assert phrases["course_priority"].tolist() == ["Chooses a course for another reason",
                                                   "Chooses a course for better career prospects",
                                                   "Did not say what matters in a course"]
    assert phrases.loc["A", "occupation"] == "Occupation: none the form lists"
