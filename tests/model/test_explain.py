"""Per-lead explanations: the numbers add up, the points mean what the rep is told, the words fit."""

from __future__ import annotations

import copy
import dataclasses
import re
from html import escape

import lightgbm as lgb
import numpy as np
import pandas as pd
import pytest
import shap
from scipy import sparse

from models.calibration import Calibrator, TierThresholds
from models.explain import _turning_point, by_signal, contributions, explain, factor_columns
from features.build import RECENCY_CAP_DAYS, feature_catalog
from features.phrases import (ABSENCE_RAISES, HIGH_AMOUNT_LOWERS, LONG_AGO_LOWERS, LOW_AMOUNT_LOWERS, PRESENCE_LOWERS,
                              phrasebook)
from models.peers import LogisticPeer
from models.scorer import LeadScorer
from pipelines.config import PROJECT_ROOT, load_params
from pipelines.dataset import assemble
from pipelines.score import score_file
from serving import scorecard

AS_OF = pd.Timestamp("2025-06-01")


@pytest.fixture(scope="module")
def scorer(trained):
    return trained.scorer


@pytest.fixture(scope="module")
def features(trained) -> pd.DataFrame:
    return trained.training_set.features.iloc[:400]


@pytest.fixture(scope="module")
def ages(trained) -> np.ndarray:
    """The ``features`` leads' ages at their snapshots, which the model's calibration reads."""
    return trained.training_set.age_days[:400]


@pytest.fixture(scope="module")
def blended(trained):
    """The trained scorer with both LightGBM and logistic parts weighted (fitting whichever it lacks)."""
    scorer, ts = trained.scorer, trained.training_set
    booster, logistic = scorer.booster, scorer.logistic
    if booster is None:
        data = lgb.Dataset(scorer.encoder.transform(ts.features), ts.y)
        booster = lgb.train({"objective": "binary", "num_leaves": 7, "verbose": -1}, data, num_boost_round=30)
    if logistic is None:
        logistic = LogisticPeer(seed=0).fit(ts.features, ts.y)
    return dataclasses.replace(scorer, booster=booster, logistic=logistic, gbm_coef=0.4, logistic_coef=0.7)


def variants(blended) -> dict:
    return {
        "blend": blended,
        "lightgbm": dataclasses.replace(blended, logistic=None, gbm_coef=1.0, logistic_coef=0.0),
        "logistic": dataclasses.replace(blended, booster=None, gbm_coef=0.0, logistic_coef=1.0),
    }


def raw_lead(**values) -> pd.DataFrame:
    """A cold lead in the CRM's own columns (the synthetic CRM uses the contract names)."""
    lead = {
        "lead_id": "D1", "created_at": "2025-05-29 10:00", "email": "kim@gmail.com", "phone": "+1 555 0100",
        "company": "", "industry": "retail", "employees": "8", "country": "BR", "job_title": "Intern",
        "lead_source": "web_organic", "campaign": "",
    }
    lead.update(values)
    return pd.DataFrame([{k: v for k, v in lead.items() if v is not None}])


def absence(words: str, factor) -> str:
    """A factor saying the lead lacks something, as worded for its sign: with ``ABSENCE_RAISES`` when it raises the score."""
    return ABSENCE_RAISES.format(phrase=words) if factor.contribution > 0 else words


def presence(words: str, factor) -> str:
    """A factor saying the lead has something usually good, as worded for its sign: with ``PRESENCE_LOWERS`` when it
    lowers the score."""
    return PRESENCE_LOWERS.format(phrase=words) if factor.contribution < 0 else words


def activity(kind: str, when: str) -> dict:
    return {"lead_id": "D1", "occurred_at": when, "activity": kind}


@pytest.mark.parametrize("variant", ["trained", "blend", "lightgbm", "logistic"])
def test_base_plus_contributions_is_the_scorers_margin(variant, scorer, blended, features):
    model = scorer if variant == "trained" else variants(blended)[variant]
    base, per_feature = contributions(model, features)
    assert list(per_feature.columns) == model.feature_names
    assert per_feature.index.equals(features.index)
    np.testing.assert_allclose(base + per_feature.sum(axis=1).to_numpy(), model.margin(features), rtol=0, atol=1e-6)
    assert np.ptp(base) == 0  # one base for every lead: contributions compare leads with one reference


def test_contributions_still_add_up_where_the_logistic_log_odds_are_clipped(blended, features):
    peer = copy.deepcopy(blended.logistic)
    peer.model_.coef_ = peer.model_.coef_ * 40  # pushes many leads past the scorer's 1e-6 probability clip
    model = dataclasses.replace(blended, logistic=peer)
    logistic_log_odds = np.abs(model.margin(features) - 0.4 * model.booster.predict(model.encoder.transform(features), raw_score=True))
    assert (logistic_log_odds > 0.7 * 13.8).any()
    base, per_feature = contributions(model, features)
    np.testing.assert_allclose(base + per_feature.sum(axis=1).to_numpy(), model.margin(features), rtol=0, atol=1e-6)


def x_education_logistic(csv) -> tuple[LeadScorer, pd.DataFrame]:
    """A logistic-only scorer of the X Education export, and the export's feature rows."""
    params = load_params(PROJECT_ROOT / "params.x_education.yaml", overrides={"data.leads": str(csv)})
    ts = assemble(params)
    rows, y = ts.features, np.asarray(ts.y)
    peer = LogisticPeer(seed=0).fit(rows, y)
    model = LeadScorer(
        data=params.data, features=params.features, encoder=None, booster=None, logistic=peer, gbm_coef=0.0,
        logistic_coef=1.0, calibrator=Calibrator("isotonic"), tiers=TierThresholds(names=["all"], min_probability=[0.0]),
        reasons=None,
    )
    model.calibrator.fit(model.margin(rows), y)
    return model, rows


def test_x_education_explains_in_its_own_words_with_a_sparse_logistic_design(x_education_csv):
    model, rows = x_education_logistic(x_education_csv)
    assert sparse.issparse(model.logistic.preprocessor_.transform(model.logistic._design(rows.head())))  # many one-hot levels
    base, per_feature = contributions(model, rows)
    np.testing.assert_allclose(base + per_feature.sum(axis=1).to_numpy(), model.margin(rows), rtol=0, atol=1e-6)
    professional = rows.index[rows["occupation"] == "working professional"][0]
    unanswered = rows.index[rows["occupation"].isna()][0]
    professional_e, unanswered_e = explain(model, rows.loc[[professional, unanswered]])
    occupation = {e.lead_id: next(f for f in e.factors if f.signal == "occupation") for e in (professional_e, unanswered_e)}
    assert {lead: f.phrase for lead, f in occupation.items()} == {
        str(professional): "Working professional", str(unanswered): absence("Occupation not given", occupation[str(unanswered)])}


def test_an_x_education_lead_that_never_visited_hears_it_once_with_the_points_of_no_time_and_no_page_views(x_education_csv):
    """'Viewed no pages on the website' raised the score beside 'Never visited the website' lowering it."""
    model, rows = x_education_logistic(x_education_csv)
    never = rows.index[(rows["total_visits"] == 0) & (rows["time_on_website"] == 0) & (rows["page_views_per_visit"] == 0)][0]
    visited = rows.index[(rows["total_visits"] > 0) & (rows["time_on_website"] > 0)][0]
    never_e, visited_e = explain(model, rows.loc[[never, visited]])
    site = ["total_visits", "time_on_website", "page_views_per_visit"]
    phrases = [f.phrase for f in never_e.positives + never_e.negatives]
    assert "Never visited the website" in [f.phrase for f in never_e.factors]
    assert not {"Spent no time on the website", "Viewed no pages on the website"} & set(phrases)
    by_signal = {f.signal: f for f in never_e.factors}
    _, per_feature = contributions(model, rows.loc[[never]])
    assert by_signal["total_visits"].contribution == pytest.approx(per_feature[site].iloc[0].sum(), abs=1e-9)
    assert by_signal["time_on_website"].contribution == 0 and by_signal["page_views_per_visit"].contribution == 0
    # A lead that visited keeps each of the three as a factor of its own.
    _, per_feature = contributions(model, rows.loc[[visited]])
    visited_by_signal = {f.signal: f.contribution for f in visited_e.factors}
    assert [visited_by_signal[s] for s in site] == pytest.approx(per_feature[site].iloc[0].tolist(), abs=1e-9)


def test_the_lightgbm_part_is_shaps_tree_explainer(blended, features):
    model = variants(blended)["lightgbm"]
    base, per_feature = contributions(model, features)
    encoded = model.encoder.transform(features)
    explainer = shap.TreeExplainer(model.booster)
    expected = explainer.shap_values(encoded, from_call=True)
    np.testing.assert_allclose(per_feature[list(encoded.columns)].to_numpy(), expected, atol=1e-12)
    assert base[0] == pytest.approx(explainer.expected_value, abs=1e-12)


def test_every_window_of_an_activity_is_one_factor(scorer, features, ages):
    _, per_feature = contributions(scorer, features)
    signals = by_signal(scorer, per_feature)
    assert list(signals.columns) == list(dict.fromkeys(d.signal for d in scorer.catalog))
    pricing = [d.name for d in scorer.catalog if d.signal == "pricing_view"]
    assert pricing == ["pricing_view_7d", "pricing_view_30d", "pricing_view_90d", "pricing_viewed"]
    np.testing.assert_allclose(signals["pricing_view"], per_feature[pricing].sum(axis=1), atol=1e-12)
    active = features["days_since_last_activity"] < 365  # see the next tests for leads without any activity
    for e, (_, row) in zip(explain(scorer, features[active].iloc[:20], age_days=ages[active.to_numpy()][:20]),
                           signals[active].iloc[:20].iterrows()):
        by_name = {f.signal: f for f in e.factors}
        assert len(e.factors) == len(by_name) == len(signals.columns)  # pricing_view_7d etc. never appear alone
        assert by_name["pricing_view"].contribution == pytest.approx(row["pricing_view"], abs=1e-12)


def test_points_are_the_exact_counterfactual_and_rank_the_shown_factors(scorer, features, ages, sample_params):
    k = sample_params.serving.top_factors
    explanations = explain(scorer, features, k, age_days=ages)
    predicted = scorer.predict(features, ages)
    assert [e.lead_id for e in explanations] == predicted["lead_id"].tolist()
    assert [e.score for e in explanations] == predicted["score"].tolist()
    for e, margin, probability, age in zip(explanations, scorer.margin(features), predicted["probability"], ages):
        # The explained lead is the scored lead (the model's own margin), and its factors, one per
        # signal, split all of that margin.
        assert e.margin == pytest.approx(margin, abs=1e-6) and e.probability == pytest.approx(probability, abs=1e-9)
        assert e.margin == pytest.approx(e.base + sum(f.contribution for f in e.factors), abs=1e-9)
        for f in e.positives + e.negatives:
            without = scorer.calibrator.predict(np.array([e.margin - f.contribution]), np.array([age]))[0]
            assert f.points == pytest.approx(100 * (e.probability - without), abs=1e-9)
        for side, sign in ((e.positives, 1), (e.negatives, -1)):
            assert all(f.points * sign >= 0 for f in e.factors if f.contribution * sign > 0)  # a monotone calibrator keeps the sign
            candidates = [f for f in e.factors if f.contribution * sign > 0 and abs(round(f.points)) >= 1]
            assert len(side) == min(k, len(candidates))
            ranked = sorted(candidates, key=lambda f: (abs(f.points), abs(f.contribution)), reverse=True)
            assert [f.signal for f in side] == [f.signal for f in ranked[:k]]


def test_a_factor_worth_no_point_as_a_rep_reads_it_is_not_a_reason(scorer, features, ages, sample_params):
    """'Has a phone number 0 pts' moves nothing: explanations and the CSV columns list a factor only when its
    points round to a whole point or more, and a low-score lead whose raising factors all round to 0 has none."""
    k = sample_params.serving.top_factors
    explanations = explain(scorer, features, k, age_days=ages)
    columns = factor_columns(scorer, features, k, ages)
    listed = [f for e in explanations for f in e.positives + e.negatives]
    assert listed and all(abs(round(f.points)) >= 1 for f in listed)
    written = [columns[f"top_{side}_{r}_points"] for side in ("positive", "negative") for r in range(1, k + 1)]
    assert all((points.dropna().abs() >= 0.5).all() for points in written)  # no "0.0" or "0.3" a rep would read as nothing
    # The fixture has what the rule is for: leads that raise the score only by fractions of a point.
    nothing_up = [e for e in explanations if any(f.contribution > 0 for f in e.factors) and not e.positives]
    assert nothing_up and all(round(f.points) == 0 for e in nothing_up for f in e.factors if f.contribution > 0)
    rows = [explanations.index(e) for e in nothing_up]
    assert columns.loc[rows, [f"top_positive_{r}" for r in range(1, k + 1)]].isna().all().all()


def test_one_demo_request_shows_as_a_positive_factor(scorer, sample_params):
    k = sample_params.serving.top_factors
    visit = [activity("page_view", "2025-05-30 09:00")]
    before, problems, age = scorer.build(raw_lead(), pd.DataFrame(visit), as_of=AS_OF)
    after, _, _ = scorer.build(raw_lead(), pd.DataFrame([*visit, activity("demo_request", "2025-05-31 09:00")]), as_of=AS_OF)
    assert problems == []
    (without_demo,) = explain(scorer, before, k, age_days=age)
    (with_demo,) = explain(scorer, after, k, age_days=age)
    assert "demo_request" in [f.signal for f in with_demo.positives]
    assert "demo_request" not in [f.signal for f in without_demo.positives]
    demo = next(f for f in with_demo.positives if f.signal == "demo_request")
    # The window the model leans on names it; the demo, a day before, is within each.
    assert demo.phrase in {f"Requested a demo in the last {days} days" for days in sample_params.features.windows}
    assert with_demo.score >= without_demo.score


# The words of a factor saying the lead lacks something (features.phrases._says_absence), as the built-in templates
# word them for the sample model.
ABSENCE = re.compile(r"^(No |Not |Has not |Opened no |Matches none )|not given$")


def test_an_absence_that_raises_the_score_says_the_model_found_it_a_plus(scorer, features, ages, sample_params):
    """"No form filled in the last 90 days +1 pt" among the reasons a lead scored high read as nonsense to a rep: an
    absence that raises the score now says the model counts it as a plus for leads like this one; one that lowers it reads
    as before. Only the words change: the points and contributions are those of the same factor."""
    k = sample_params.serving.top_factors
    explanations = explain(scorer, features, k, age_days=ages)
    suffix = ABSENCE_RAISES.format(phrase="")
    plain = [(f.phrase.removesuffix(suffix), f) for e in explanations for f in e.factors]
    misworded = {f.phrase for words, f in plain if f.phrase.endswith(suffix) != (f.contribution > 0 and bool(ABSENCE.search(words)))}
    assert not misworded, misworded
    # The fixture has what the rule is for: an absence among the reasons a lead scored high, and absences lowering scores.
    raised = {f.phrase.removesuffix(suffix) for e in explanations for f in e.positives if f.phrase.endswith(suffix)}
    assert raised and any(ABSENCE.search(words) and f.contribution < 0 for words, f in plain)
    columns = factor_columns(scorer, features, k, ages)  # score --explain's columns, the words the card shows
    written = set(columns[[f"top_positive_{r}" for r in range(1, k + 1)]].stack())
    assert {ABSENCE_RAISES.format(phrase=words) for words in raised} <= written


# The words of a factor saying the lead has something usually good (features.phrases._PRESENT_STATES): events in a
# window, not one before every window ("Viewed pricing more than 90 days ago"), a flag's good side, a business domain.
PRESENCE = re.compile(r"^(?!No |Opened no |Has not ).* in the last \d+ days$"
                      r"|^(Has an? |Company name given$|In a country we serve$|Business e-mail domain$|Activity up by )")


def test_a_presence_that_lowers_the_score_says_the_model_found_it_a_minus(scorer, features, ages, sample_params):
    """ABSENCE_RAISES's mirror: "Opened 1 e-mail in the last 30 days -3 pts" or "Has a phone number -2 pts" among the
    reasons a lead scored low read as nonsense or as a bug to a rep; it now says the model counts that as a minus for leads
    like this one, and raising the score reads as before; events in a window whose count the model scores higher the more
    there are say leads that convert usually have more instead (``AMOUNT_WORDS``), and an amount lowering the score that
    is no shorter than converting leads' says the model counts it as a minus too. Only the words change."""
    k = sample_params.serving.top_factors
    explanations = explain(scorer, features, k, age_days=ages)
    suffix, fewer = PRESENCE_LOWERS.format(phrase=""), LOW_AMOUNT_LOWERS.format(phrase="")
    amounts = set(phrasebook(scorer.features).amount_words)
    plain = [(f.phrase.removesuffix(suffix).removesuffix(fewer), f) for e in explanations for f in e.factors]
    misworded = {f.phrase for words, f in plain if f.phrase.endswith(suffix) != (
        f.contribution < 0 and bool(PRESENCE.search(words)) and not f.phrase.endswith(fewer))
        and not (f.phrase.endswith(suffix) and f.contribution < 0 and f.signal in amounts)}
    assert not misworded, misworded
    # The fixture has what the rule is for: a presence among the reasons a lead scored low, and presences raising scores.
    lowered = {f.phrase.removesuffix(suffix) for e in explanations for f in e.negatives if f.phrase.endswith(suffix)}
    assert lowered and any(PRESENCE.search(words) and f.contribution > 0 for words, f in plain)
    columns = factor_columns(scorer, features, k, ages)  # score --explain's columns, the words the card shows
    written = set(columns[[f"top_negative_{r}" for r in range(1, k + 1)]].stack())
    assert {PRESENCE_LOWERS.format(phrase=words) for words in lowered} <= written


def test_a_low_amount_against_the_models_direction_says_so_and_keeps_its_points(scorer, features, ages, sample_params):
    """"Spent 5 minutes on the website -9 pts" read as if time spent lowered the score: the model learns at fit time
    whether more of an amount usually raises the score, and a lower amount than usual that lowers it says leads that
    convert usually have more (its mirror, that the model counts a low number as a plus). Days since the last activity
    and the week's change in activity are amounts too, in their own words ("Last activity 40 days ago (leads that
    convert were usually seen more recently)"), with the directions the sample's params declare for them, and so are
    events in a window, by their count over the longest one ("Opened 1 e-mail in the last 30 days (leads that convert
    usually have more)", where it said the model counts that as a minus), each where the amount its words state is short
    of converting leads' median (else "for leads like this one, the model counts that as a minus"). A model saved
    before it kept the directions still explains, its amounts worded as themselves. Only the words change."""
    k = sample_params.serving.top_factors
    directions = scorer.amount_directions
    book = phrasebook(scorer.features)
    amount_of = {signal: book.amount_feature(signal) for signal in directions}
    assert directions and {d.more for d in directions.values()} <= {-1, 1}
    # Declared by params: days since the last activity lower the score, a rise in activity raises it.
    assert directions["activity_recency"][:2] == (-1, np.inf) and directions["engagement_trend"][:2] == (1, np.inf)
    # Each learned direction is how the model scores the fixture's leads up to where it turns: more of the amount, a
    # larger contribution (a smaller one for -1).
    signals = by_signal(scorer, contributions(scorer, features)[1])
    for signal, (more, up_to, _) in directions.items():
        if amount_of[signal].monotone:
            continue
        amount = features[amount_of[signal].name].astype(float).where(features[amount_of[signal].name] <= up_to)
        high, low = amount > amount.median(), amount <= amount.median()  # most leads opened no e-mail in 90 days
        assert (signals.loc[high, signal].mean() - signals.loc[low, signal].mean()) * more > 0, signal
    old = copy.copy(scorer)
    del old.__dict__["amount_directions"]  # as a scorer pickled before it kept them loads
    worded, plain = explain(scorer, features, k, age_days=ages), explain(old, features, k, age_days=ages)
    changed, every = set(), set()
    for row, (new, before) in enumerate(zip(worded, plain)):
        assert new.score == before.score
        for f, g in zip(new.factors, before.factors):
            assert (f.signal, f.points, f.contribution) == (g.signal, g.points, g.contribution)
            words = None
            if f.signal in directions:
                shape, (more, up_to, _) = book.shapes[f.signal], directions[f.signal]
                value = features[amount_of[f.signal].name].iloc[row]
                amount_words = book.amount_words[f.signal]
                side = -1 if more == amount_words.more_reads_better else 1  # the sign that goes against the lead
                if SAYS_AMOUNT[shape](value) and value <= up_to and np.sign(f.contribution) == side:
                    feature, stated = stated_amount(book, f, features.iloc[row])
                    short = (directions[f.signal].converting[feature] - stated) * amount_words.more_reads_better > 0
                    words = amount_words.raises if side > 0 else amount_words.lowers if short else PRESENCE_LOWERS
            # Events in a window lowering the score said the model counts them as a minus (PRESENCE_LOWERS).
            assert f.phrase == (words.format(phrase=g.phrase.removesuffix(PRESENCE_LOWERS.format(phrase="")))
                                if words else g.phrase)
            every |= {f.phrase} if words else set()
            changed |= {f.phrase} if words and f in new.negatives + new.positives else set()
    assert any(words.endswith(LOW_AMOUNT_LOWERS.format(phrase="")) for words in changed)  # what the rule is for
    assert any(words.endswith(LONG_AGO_LOWERS.format(phrase="")) for words in every)
    assert any(f.phrase in changed for e in worded for f in e.negatives if book.shapes[f.signal] == "activity")
    columns = factor_columns(scorer, features, k, ages)  # score --explain's columns, the words the card shows
    assert changed <= set(columns[[f"top_{side}_{r}" for side in ("positive", "negative") for r in range(1, k + 1)]].stack())


# A value that says an amount, not an absence: no employees, no ICP criterion met, no activity in the window do not.
SAYS_AMOUNT = {"number": lambda v: v > 0, "icp": lambda v: v > 0, "activity": lambda v: v > 0,
               "recency": lambda v: v < RECENCY_CAP_DAYS, "trend": lambda v: v <= 0}  # activity up says a presence


def stated_amount(book, factor, lead: pd.Series) -> tuple[str, float]:
    """The feature whose value an amount factor's words state, and the lead's value of it: of events, the window its
    words name ("Attended 3 webinars in the last 30 days": the 30-day count)."""
    stated = book.stated_amounts(factor.signal)
    named = re.search(r"in the last (\d+) days", factor.phrase)
    if book.shapes[factor.signal] == "activity" and named:
        stated = [d for d in stated if d.window_days == int(named.group(1))]
    return stated[0].name, float(lead[stated[0].name])


def test_a_factor_says_leads_that_convert_usually_have_more_only_where_they_do(trained, scorer, sample_params):
    """The demo's model scored "Attended 3 webinars in the last 30 days" a point lower and the factor read "(leads that
    convert usually have more)", where converting leads had attended 1 (the median; 2 at the 75th percentile): the
    model split the windows (the 30-day count lowered the score, the 90-day one raised it), and the amount's learned
    direction, more raises the score, let the words through for any count. On the sample CRM, every factor comparing a
    lead with converting leads holds for at least half of the converting leads the directions were learned on, and a
    lead's amount the model scores lower though more usually raises the score, at or past theirs, reads that the model
    counts it as a minus for leads like this one."""
    from models.splits import make_split
    from models.train import cross_validates

    ts, k = trained.training_set, sample_params.serving.top_factors
    split = make_split(ts.created_at, pd.Series(ts.y), sample_params.evaluate.split, sample_params.model.seed)
    learned_on = (np.concatenate([split.train, split.validation, split.calibration])
                  if cross_validates(split, sample_params) else split.validation)
    converting = ts.features.iloc[learned_on][ts.y[learned_on] == 1]
    book, directions = phrasebook(scorer.features), scorer.amount_directions
    leads = ts.features.iloc[:2000]
    compared, neutral = [], []
    explained = explain(scorer, leads, k, every_factor=False, age_days=ts.age_days[:2000])
    for (_, lead), e in zip(leads.iterrows(), explained):
        for f in e.negatives:
            words, direction = book.amount_words.get(f.signal), directions.get(f.signal)
            if words is None or direction is None or direction.more != words.more_reads_better:
                continue
            feature, stated = stated_amount(book, f, lead)
            beyond = (converting[feature].dropna().astype(float) * words.more_reads_better
                      > stated * words.more_reads_better).mean()  # the share of converting leads with more of it
            if f.phrase.endswith(words.lowers.format(phrase="")):
                compared.append((f.phrase, beyond))
            elif (beyond < 0.5 and lead[book.amount_feature(f.signal).name] <= direction.up_to
                  and SAYS_AMOUNT[book.shapes[f.signal]](stated)):
                neutral.append(f.phrase)
    assert compared and all(beyond >= 0.5 for _, beyond in compared), [c for c in compared if c[1] < 0.5]
    # The fixture has what the rule is for: a lead's amount at or past converting leads' lowering the score.
    assert neutral and all(phrase.endswith(PRESENCE_LOWERS.format(phrase="")) for phrase in neutral), neutral


def test_a_crm_number_params_declare_fewer_is_better_reads_so_on_a_trained_model(trained, sample_params):
    """A CRM's own "Days Since Last Contact" as a number: the model, constrained by params' monotone_decreasing, scores
    fewer days higher, and its factors read "2 days since the last contact (the model counts a low number as a plus)"
    (``LOW_AMOUNT_RAISES``),
    words a rep does not follow, and "Contacted today" raising the score as a plus the model found. Declared, the number
    reads as a rep reads it: raising the score as itself, lowering it "(leads that convert usually have fewer)"; the
    model card says what that rests on."""
    from models import train as train_module
    from models.card import _amount_directions
    from models.splits import make_split

    ts = trained.training_set
    rng = np.random.default_rng(3)
    days = np.where(ts.y == 1, rng.integers(0, 20, len(ts.y)), rng.integers(0, 60, len(ts.y))).astype(float)
    spec = sample_params.features.model_copy(update={
        "numeric": [*sample_params.features.numeric, "days_since_contact"],
        "monotone_decreasing": [*sample_params.features.monotone_decreasing, "days_since_contact"],
        "phrases": {**sample_params.features.phrases, "days_since_contact": (
            "{value} day{s} since the last contact | [zero] Contacted today | [unknown] No contact logged")}})
    model = sample_params.model.model_copy(update={"tuning_trials": 2, "max_rounds": 200, "reason_model": False,
                                                   "candidates": ["lightgbm"]})
    params = sample_params.model_copy(update={"features": spec, "model": model})
    features = ts.features.assign(days_since_contact=days)[[d.name for d in feature_catalog(spec)]]
    split = make_split(ts.created_at, pd.Series(ts.y), params.evaluate.split, params.model.seed)
    scorer = train_module.fit_scorer(features, ts.y, ts.weights, ts.reasons, split, params,
                                     calibration_weights=ts.calibration_weights)
    assert scorer.amount_directions["days_since_contact"][:2] == (-1, np.inf)
    rows = features.iloc[split.test[:600]]
    factors = [(f, rows["days_since_contact"].iloc[i]) for i, e in enumerate(explain(scorer, rows, age_days=None))
               for f in e.positives + e.negatives if f.signal == "days_since_contact"]
    for f, value in factors:
        said = "Contacted today" if value == 0 else f"{value:.0f} day{'' if value == 1 else 's'} since the last contact"
        fewer = value > scorer.amount_directions["days_since_contact"].converting["days_since_contact"]
        lowered = HIGH_AMOUNT_LOWERS if fewer else PRESENCE_LOWERS  # than converting leads' median, else the minus
        assert f.phrase == (lowered.format(phrase=said) if f.contribution < 0 and value else said)
    # The fixture has what the rule is for: a low number raising the score, a high one lowering it, 0 raising it.
    assert {(f.contribution > 0, value > 0) for f, value in factors} == {(True, True), (False, True), (True, False)}
    card = _amount_directions(scorer)
    assert HIGH_AMOUNT_LOWERS.format(phrase="…") in card
    assert "| days_since_contact | lowers the score | any amount | declared (features.monotone_decreasing) |" in card


def test_where_an_amounts_direction_turns_is_an_amount_a_lead_had():
    """The card's "up to" and a factor's check against it read the band's edge, which interpolates between two amounts:
    "up to 12.5 employees" (or "3.4999 visits") of a count no lead can have. It is the highest amount a lead had in the
    band, so the card words it as a rep would, "12 employees"."""
    from models.card import _amount_in_words

    amount = pd.Series(np.repeat(np.arange(1, 25), 3).astype(float))  # band edges fall at 3.0, 5.2, ..., 12.5, 15.0
    contribution = -(amount - 12).abs()  # the model scores more higher up to 12, lower past it
    up_to = _turning_point(amount, contribution, 1)
    assert up_to == 12
    spec = load_params(PROJECT_ROOT / "params.yaml").features
    assert _amount_in_words(phrasebook(spec), "employees", up_to) == "12 employees"
    assert _turning_point(amount, -contribution, -1) == 12  # the mirror
    assert _turning_point(amount, amount, 1) == np.inf  # more is better all the way


def test_an_unseen_category_and_missing_optional_fields_explain(scorer):
    lead = raw_lead(industry="Asteroid Mining", employees=None, phone=None, company=None, campaign=None)
    features, problems, ages = scorer.build(lead, None, as_of=AS_OF)
    assert problems == []
    (e,) = explain(scorer, features, 3, age_days=ages)
    by_name = {f.signal: f for f in e.factors}
    # Scored with the pool of rare values: 'Industry: asteroid mining  -3 pts' alone says asteroid mining lowers it.
    # Explained from the feature frame alone (no never_seen), it is named as compared, and as no past lead had it.
    assert (by_name["industry"].phrase, by_name["industry"].value) == (
        "Industry: asteroid mining (no past lead had this value: judged as the rare ones are)", "asteroid mining")
    assert by_name["employees"].phrase == absence("Employee count not given", by_name["employees"])
    assert by_name["missing_phone"].phrase == absence("No phone number", by_name["missing_phone"])
    assert e.margin == pytest.approx(scorer.margin(features)[0], abs=1e-6)
    assert 1 <= e.score <= 99


def test_a_value_the_model_learned_reads_as_itself_and_only_a_new_one_says_it_is_judged_as_the_rare_ones(scorer):
    """Explained from the feature frame alone (``explain``, ``factor_columns``: no never_seen), a value no past lead had
    read "too few past leads had this value", which says training saw it: it now reads as never seen, as compared
    (the lead's own spelling is in raw rows these callers do not have)."""
    # Warm leads, and a campaign: on a cold lead, or of a signal whose rare values the model pools near the average
    # (the sample's industry), the pool moves the score by less than the point a factor needs to be listed.
    warm = {"job_title": "VP Engineering", "employees": "800", "country": "US", "email": "kim@acme.com", "lead_source": "referral"}
    leads = pd.concat([raw_lead(lead_id="known", campaign="gads_brand", **warm), raw_lead(lead_id="rare", campaign="Asteroid Summit", **warm)])
    acts = pd.DataFrame([activity("demo_request", "2025-05-30 10:00"), activity("pricing_view", "2025-05-30 11:00")] * 2)
    acts["lead_id"] = ["known", "known", "rare", "rare"]
    features, _, ages = scorer.build(leads, acts, as_of=AS_OF)
    phrases = [next(f.phrase for f in e.factors if f.signal == "campaign") for e in explain(scorer, features, age_days=ages)]
    new = "Came in through campaign asteroid summit (no past lead had this value: judged as the rare ones are)"
    assert phrases == ["Came in through campaign gads brand", new]
    # Batch scoring's top-factor columns word it the same way.
    columns = factor_columns(scorer, features, top_k=len(scorer.catalog), age_days=ages)
    assert new in columns.iloc[1].tolist()


def test_score_with_factors_names_a_value_no_past_lead_had_as_the_lead_sent_it(scorer):
    """``LeadScorer.score(top_factors=...)`` words a never-seen value as /score does, each lead its own, though a lead
    before them is refused and an activity row is too (its problem's row number is the activity's)."""
    warm = {"job_title": "VP Engineering", "employees": "800", "country": "US", "email": "kim@acme.com", "lead_source": "referral"}
    leads = pd.concat([raw_lead(lead_id="bad", created_at="not a date", campaign="Quantum Weaving", **warm),
                       raw_lead(lead_id="known", campaign="gads_brand", **warm),
                       raw_lead(lead_id="new", campaign="Asteroid Summit", **warm)])
    acts = pd.DataFrame([{"lead_id": "known", "occurred_at": "someday", "activity": "demo_request"}]
                        + [activity("demo_request", "2025-05-30 10:00"), activity("pricing_view", "2025-05-30 11:00")] * 2)
    acts.loc[1:, "lead_id"] = ["known", "known", "new", "new"]
    batch = scorer.score(leads, acts, as_of=AS_OF, top_factors=len(scorer.catalog))
    assert sorted((p.source, p.row) for p in batch.problems) == [("request", 1), ("request", 1)]  # a lead's, an activity's
    rows = batch.scores.set_index("lead_id").astype(str)
    assert "Came in through campaign gads brand" in rows.loc["known"].tolist()
    assert ("Came in through campaign Asteroid Summit (no past lead had this value: judged as the rare ones are)"
            in rows.loc["new"].tolist())


@pytest.mark.parametrize("email", [None, "kim at acme"])
def test_a_lead_without_a_usable_email_hears_so_once(scorer, email):
    features, problems, ages = scorer.build(raw_lead(email=email), None, as_of=AS_OF)
    assert problems == []
    (e,) = explain(scorer, features, 3, age_days=ages)
    assert [f.phrase for f in e.factors if "e-mail address" in f.phrase] == ["No usable e-mail address"]
    assert e.margin == pytest.approx(e.base + sum(f.contribution for f in e.factors), abs=1e-9)


@pytest.mark.parametrize(("lead", "signal", "joined", "phrase"), [
    # '250 employees' beside 'Company size: 201-1000 employees' said one thing twice.
    ({"employees": 250}, "employees", "size_band", "250 employees"),
    # 'Country: RU' beside 'In a country we do not serve' too.
    ({"country": "RU"}, "country", "unsupported_country", "Country RU, which we do not serve"),
])
def test_a_joined_feature_is_one_factor_worded_once_and_worth_both_features(scorer, lead, signal, joined, phrase):
    features, _, ages = scorer.build(raw_lead(**lead), None, as_of=AS_OF)
    (e,) = explain(scorer, features, 3, every_factor=True, age_days=ages)
    by_signal = {f.signal: f for f in e.factors}
    assert joined not in by_signal and by_signal[signal].phrase == phrase
    _, per_feature = contributions(scorer, features)
    assert by_signal[signal].contribution == pytest.approx(per_feature[[signal, joined]].iloc[0].sum(), abs=1e-9)


def test_a_lead_without_any_activity_hears_it_once_with_the_points_of_every_silent_signal(scorer):
    """'No web page views in the last 90 days' beside 'No activity in the last 365 days' said it twice."""
    features, _, ages = scorer.build(raw_lead(created_at="2024-01-01"), None, as_of=AS_OF)
    (e,) = explain(scorer, features, 3, every_factor=True, age_days=ages)
    silent = [s for s in dict.fromkeys(d.signal for d in scorer.catalog)
              if s in scorer.features.activity_types or s == "engagement_trend"]
    by_signal = {f.signal: f for f in e.factors}
    assert by_signal["activity_recency"].phrase == "No activity in the last 365 days"
    assert all(by_signal[s].contribution == 0 for s in silent)
    assert not {f.signal for f in e.positives + e.negatives} & set(silent)
    _, per_feature = contributions(scorer, features)
    said = [d.name for d in scorer.catalog if d.signal in silent or d.signal == "activity_recency"]
    assert by_signal["activity_recency"].contribution == pytest.approx(per_feature[said].iloc[0].sum(), abs=1e-9)
    assert e.margin == pytest.approx(e.base + sum(f.contribution for f in e.factors), abs=1e-9)


def test_a_new_lead_without_activity_reads_so_not_as_a_year_of_silence(scorer, tmp_path):
    features, problems, ages = scorer.build(raw_lead(created_at="2025-05-29 10:00"), None, as_of=AS_OF)
    assert problems == [] and ages.tolist() == [pytest.approx(2 + 14 / 24)]
    (e,) = explain(scorer, features, 3, every_factor=True, age_days=ages)
    assert next(f.phrase for f in e.factors if f.signal == "activity_recency") == "No activity since it was created 2 days ago"
    # Batch scoring words it so too: fresh leads never read as a year without activity.
    leads = pd.concat([raw_lead(lead_id=f"N{i}", created_at=f"2025-05-{20 + i} 10:00") for i in range(8)])
    leads.to_csv(tmp_path / "leads.csv", index=False)
    summary = score_file(scorer, tmp_path / "leads.csv", tmp_path / "scores.csv", as_of=AS_OF, progress=False, top_factors=3)
    phrases = pd.read_csv(summary.output).filter(regex=r"^top_(positive|negative)_\d$").stack().dropna().tolist()
    assert any(p.startswith("No activity since it was created") for p in phrases)
    assert not [p for p in phrases if "365 days" in p]


def test_an_activity_before_every_window_stays_a_factor_of_its_own(scorer):
    old_demo = pd.DataFrame([activity("demo_request", "2023-01-01 09:00")])
    features, _, ages = scorer.build(raw_lead(created_at="2022-12-01"), old_demo, as_of=AS_OF)
    (e,) = explain(scorer, features, 3, every_factor=True, age_days=ages)
    by_signal = {f.signal: f for f in e.factors}
    assert by_signal["demo_request"].phrase == "Requested a demo more than 90 days ago"
    _, per_feature = contributions(scorer, features)
    demo = [d.name for d in scorer.catalog if d.signal == "demo_request"]
    assert by_signal["demo_request"].contribution == pytest.approx(per_feature[demo].iloc[0].sum(), abs=1e-9)


def test_an_empty_frame_explains_to_nothing(scorer, features):
    empty = features.iloc[:0]
    assert explain(scorer, empty) == []
    base, per_feature = contributions(scorer, empty)
    assert base.shape == (0,) and per_feature.shape == (0, len(scorer.feature_names))
    columns = factor_columns(scorer, empty, 2)
    assert len(columns) == 0 and list(columns.columns)[-1] == "top_negative_2_points"


def test_top_k_below_one_is_refused(scorer, features, ages):
    with pytest.raises(ValueError, match="top_k must be at least 1"):
        explain(scorer, features.iloc[:2], 0, age_days=ages[:2])


def test_batch_scoring_writes_the_same_top_factors_as_explain(scorer, sample_dir, tmp_path):
    leads = pd.read_csv(sample_dir / "leads.csv", dtype=str, keep_default_na=False, na_values=[""]).iloc[:60]
    acts = pd.read_csv(sample_dir / "activities.csv", dtype=str)
    leads.to_csv(tmp_path / "leads.csv", index=False)
    acts[acts["lead_id"].isin(leads["lead_id"])].to_csv(tmp_path / "activities.csv", index=False)
    as_of = pd.Timestamp(leads["created_at"].max()) + pd.Timedelta(days=3)

    summary = score_file(scorer, tmp_path / "leads.csv", tmp_path / "scores.csv", activities_path=tmp_path / "activities.csv",
                         as_of=as_of, chunk_size=25, progress=False, top_factors=2)
    written = pd.read_csv(summary.output)
    assert summary.rows_scored == 60
    assert list(written.columns[-8:]) == [
        "top_positive_1", "top_positive_1_points", "top_positive_2", "top_positive_2_points",
        "top_negative_1", "top_negative_1_points", "top_negative_2", "top_negative_2_points",
    ]
    features, _, ages = scorer.build(leads, acts, as_of=as_of)
    cells = written.astype(object).where(written.notna(), None)  # empty where a lead has fewer factors on a side
    for e, (_, row) in zip(explain(scorer, features, 2, age_days=ages), cells.iterrows()):
        assert row["lead_id"] == e.lead_id and row["score"] == e.score
        assert row["top_positive_1"] == (e.positives[0].phrase if e.positives else None)
        assert row["top_positive_1_points"] == (round(e.positives[0].points) if e.positives else None)
        assert row["top_negative_2"] == (e.negatives[1].phrase if len(e.negatives) > 1 else None)
    # Scored with factors or without, a lead gets the same probability, score and tier.
    plain = score_file(scorer, tmp_path / "leads.csv", tmp_path / "plain.csv", activities_path=tmp_path / "activities.csv",
                       as_of=as_of, chunk_size=25, progress=False)
    plain_scores = pd.read_csv(plain.output)
    pd.testing.assert_frame_equal(written[plain_scores.columns], plain_scores, check_exact=False, rtol=1e-9)


def test_score_explain_writes_the_points_the_reps_score_card_shows(scorer, sample_dir, tmp_path):
    """A rep holding `score --explain`'s CSV beside the lead's score card reads the same number for each factor:
    '14' beside '+14 pts', never '13.6'."""
    leads = pd.read_csv(sample_dir / "leads.csv", dtype=str, keep_default_na=False, na_values=[""]).iloc[:80]
    acts = pd.read_csv(sample_dir / "activities.csv", dtype=str)
    acts = acts[acts["lead_id"].isin(leads["lead_id"])]
    leads.to_csv(tmp_path / "leads.csv", index=False)
    acts.to_csv(tmp_path / "activities.csv", index=False)
    as_of = pd.Timestamp(leads["created_at"].max()) + pd.Timedelta(days=3)
    summary = score_file(scorer, tmp_path / "leads.csv", tmp_path / "scores.csv", activities_path=tmp_path / "activities.csv",
                         as_of=as_of, progress=False, top_factors=3)
    cells = pd.read_csv(summary.output, dtype=str, keep_default_na=False)  # the text a spreadsheet shows
    features, _, ages = scorer.build(leads, acts, as_of=as_of)
    compared = 0
    for e, (_, row) in zip(explain(scorer, features, 3, age_days=ages), cells.iterrows()):
        logged = {"lead_id": e.lead_id, "score": e.score, "tier": "A", "probability": e.probability,
                  "factors": [dataclasses.asdict(f) for f in e.positives + e.negatives]}  # as the service logs them
        card = dict(re.findall(r'<td class="phrase">(.*?)</td>.*?<td class="pts">([+-]\d+) pts?</td>',
                               scorecard.render(logged, ["A"])))
        for side in ("positive", "negative"):
            for rank in range(1, 4):
                phrase, points = row[f"top_{side}_{rank}"], row[f"top_{side}_{rank}_points"]
                if phrase:
                    assert re.fullmatch(r"-?\d+", points) and int(card[escape(phrase)]) == int(points), (phrase, points)
                    compared += 1
    assert compared > 100


def test_explained_scores_are_predict_and_explain_in_one_pass(scorer, features, ages):
    rows = features.iloc[:40]
    scores, explanations = scorer.explained_scores(rows, top_k=2, age_days=ages[:40])
    pd.testing.assert_frame_equal(scores, scorer.predict(rows, ages[:40]), check_exact=False, rtol=1e-9)
    expected = explain(scorer, rows, 2, every_factor=False, age_days=ages[:40])
    assert [(e.lead_id, e.score, e.positives, e.negatives) for e in explanations] == [
        (e.lead_id, e.score, e.positives, e.negatives) for e in expected
    ]
    assert all(e.factors is None for e in explanations)  # /score shows the top factors only


def test_a_category_value_reads_as_the_training_export_spelled_it_not_lower_cased(sample_dir, tracking_dir, tmp_path):
    """A CRM writing "Web Organic" and "Financial Services": the factors said "Lead source: web organic" (the value
    as the model compares it), and /explain's value "web organic", in batch scoring and the service alike."""
    from conftest import FAST, params_for
    from pipelines.train import fit_model
    from models.splits import make_split

    leads = pd.read_csv(sample_dir / "leads.csv", dtype=str, keep_default_na=False)
    for column in ("lead_source", "industry"):
        leads[column] = leads[column].str.replace("_", " ").str.title()  # "web_organic" -> "Web Organic"
    leads.to_csv(tmp_path / "leads.csv", index=False)
    params = params_for(sample_dir, tracking_dir, **FAST, **{"data.leads": str(tmp_path / "leads.csv")})
    ts = assemble(params)
    scorer = fit_model(ts, make_split(ts.created_at, pd.Series(ts.y), params.evaluate.split, params.model.seed), params)
    # A lead whose form wrote the values in other letter cases: the words are the CRM's, as its reps know them.
    features, problems, ages = scorer.build(raw_lead(lead_source="REFERRAL", industry="retail"), None, as_of=AS_OF)
    assert problems == []
    (e,) = explain(scorer, features, age_days=ages)
    by_signal = {f.signal: f for f in e.factors}
    assert (by_signal["lead_source"].phrase, by_signal["lead_source"].value) == ("Lead source: Referral", "Referral")
    assert (by_signal["industry"].phrase, by_signal["industry"].value) == ("Industry: Retail", "Retail")
    columns = factor_columns(scorer, features, top_k=len(scorer.catalog), age_days=ages)
    assert "Lead source: Referral" in columns.iloc[0].tolist()  # score --explain's columns say the same


def test_an_activity_factor_names_the_window_whose_count_moved_the_score(scorer):
    """One e-mail opened in the last 7 days and 14 in the last 30 read "Opened 1 e-mail in the last 7 days +15 pts",
    the words another lead's single e-mail got at -3 pts: the words now name the count that carried the points."""
    busy = [activity("email_open", "2025-05-30 10:00")] + [activity("email_open", f"2025-05-{d:02d} 10:00") for d in range(2, 15)]
    earlier = [activity("email_open", f"2025-05-{d} 10:00") for d in (10, 12, 14)]  # none in the last 7 days
    acts = pd.DataFrame(busy + [activity("email_open", "2025-05-30 10:00")] + earlier)
    acts["lead_id"] = ["busy"] * len(busy) + ["once"] + ["earlier"] * len(earlier)
    leads = pd.concat([raw_lead(lead_id=lead, created_at="2025-04-01 10:00") for lead in ("busy", "once", "earlier")])
    features, problems, ages = scorer.build(leads, acts, as_of=AS_OF)
    assert problems == []
    _, per_feature = contributions(scorer, features)
    windows = {d.window_days: d.name for d in scorer.catalog if d.signal == "email_open" and d.window_days}
    past_shortest = []
    for e, (_, parts), (_, counts) in zip(explain(scorer, features, age_days=ages), per_feature.iterrows(), features.iterrows()):
        factor = next(f for f in e.factors if f.signal == "email_open")
        toward = {days: parts[name] * np.sign(factor.contribution) for days, name in windows.items() if counts[name] > 0}
        days = max(toward, key=toward.get)
        count = int(counts[windows[days]])
        words = f"Opened {count} e-mail{'' if count == 1 else 's'} in the last {days} days"
        assert factor.phrase == presence(words, factor)
        past_shortest.append(days != min(toward))
    assert any(past_shortest)  # not always the shortest window holding the lead's events



def test_a_value_training_never_saw_is_named_as_the_lead_sent_it_in_batch_score_and_explain(sample_dir, tracking_dir,
                                                                                            tmp_path):
    """"Industry: asteroid mining" (the value as the model compares it) beside the lead's never_seen
    {"industry": "Asteroid Mining"}: the factor names the value as sent, and says no past lead had it (not "too few
    past leads had this value", which says training saw it), in score --explain's columns, /score's reasons and
    /explain alike; a value a past lead or two had keeps "too few". Trained where each referral's source is its own
    rare value ("referral 17"), so the pool a new value scores as is worth points, and the factor is a reason on
    every path."""
    from conftest import FAST, params_for
    from models.splits import make_split
    from pipelines.train import fit_model
    from serving.scoring import ModelRef, explain_request, score_request

    leads = pd.read_csv(sample_dir / "leads.csv", dtype=str, keep_default_na=False)
    referred = leads["lead_source"] == "referral"
    leads.loc[referred, "lead_source"] = [f"referral {i}" for i in range(referred.sum())]
    leads.to_csv(tmp_path / "train.csv", index=False)
    params = params_for(sample_dir, tracking_dir, **FAST, **{"data.leads": str(tmp_path / "train.csv")})
    ts = assemble(params)
    scorer = fit_model(ts, make_split(ts.created_at, pd.Series(ts.y), params.evaluate.split, params.model.seed), params)

    lead = raw_lead(lead_id="NEW", lead_source=" TikTok Ads ", email="kim@acme.com", company="Acme", employees="500",
                    country="US", job_title="VP of Sales")
    row = lead.iloc[0].to_dict()
    explained = explain_request(scorer, row, None, ModelRef.of(scorer), as_of=AS_OF)
    assert explained["never_seen"] == {"lead_source": "TikTok Ads"}
    phrase = "Lead source: TikTok Ads (no past lead had this value: judged as the rare ones are)"
    (factor,) = [f for f in explained["factors"] if f["signal"] == "lead_source"]
    assert (factor["phrase"], factor["value"]) == (phrase, "TikTok Ads")
    assert abs(round(factor["points"])) >= 1  # a reason /score and score --explain list
    (scored,) = score_request(scorer, [row], [None], ModelRef.of(scorer), as_of=AS_OF, top_k=len(scorer.catalog),
                              card_key=b"key", card_link_days=1).results
    assert [(f["phrase"], f["value"]) for side in scored["reasons"].values() for f in side
            if f["signal"] == "lead_source"] == [(phrase, "TikTok Ads")]
    lead.to_csv(tmp_path / "leads.csv", index=False)
    score_file(scorer, tmp_path / "leads.csv", tmp_path / "scores.csv", as_of=AS_OF, progress=False,
               top_factors=len(scorer.catalog))
    assert phrase in pd.read_csv(tmp_path / "scores.csv").iloc[0].tolist()

    seen_once = min(scorer.encoder.seen["lead_source"] - set(scorer.encoder.learned["lead_source"]))  # "referral 17"
    explained = explain_request(scorer, {**row, "lead_source": seen_once}, None, ModelRef.of(scorer), as_of=AS_OF)
    assert explained["never_seen"] == {}
    (factor,) = [f for f in explained["factors"] if f["signal"] == "lead_source"]
    assert factor["phrase"] == f"Lead source: {seen_once} (too few past leads had this value to judge it on its own)"
