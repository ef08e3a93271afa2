"""The peer scorers: manual points, Odoo's naive Bayes, logistic regression."""

import pickle

import numpy as np
import pandas as pd
import pytest

from models.metrics import evaluate_scores
from models.peers import LogisticPeer, OdooNaiveBayes, PointsScorer
from pipelines.config import PointsRule


def _leads(n, seed):
    """A small feature frame with a learnable signal: demo requests and fit industries convert."""
    rng = np.random.default_rng(seed)
    industry = rng.choice(["software", "fintech", "retail", "education"], size=n).astype(object)
    industry[rng.uniform(size=n) < 0.1] = None
    frame = pd.DataFrame(
        {
            "industry": pd.Series(industry, dtype="str"),
            "seniority": pd.Series(rng.choice(["c_level", "director", "staff"], size=n), dtype="str"),
            "demo_request_30d": rng.poisson(0.4, size=n).astype("float64"),
            "employees": np.where(rng.uniform(size=n) < 0.2, np.nan, rng.lognormal(4, 1, size=n)),
        }
    )
    logit = (
        -2.0
        + 1.5 * frame["demo_request_30d"].clip(upper=2)
        + 1.0 * frame["industry"].isin(["software", "fintech"])
        + 0.8 * (frame["seniority"] == "c_level")
    )
    y = pd.Series((rng.uniform(size=n) < 1 / (1 + np.exp(-logit))).astype("float64"))
    return frame, y


RULES = [
    PointsRule(feature="seniority", op="in", value=["C_Level", "director"], points=15),
    PointsRule(feature="demo_request_30d", op=">=", value=1, points=30),
    PointsRule(feature="industry", op="==", value="education", points=-10),
]


# --- Odoo naive Bayes -----------------------------------------------------------------------------


def _odoo_example():
    train = pd.DataFrame(
        {
            "a": pd.Series(["x", "x", "y", "x", "y", None, "y"], dtype="str"),
            "b": pd.Series(["u", "v", "u", None, "v", "u", "u"], dtype="str"),
        }
    )
    y = [1, 1, 0, 0, 0, 1, 0]
    return train, y


def test_odoo_naive_bayes_equals_the_hand_computed_formula():
    train, y = _odoo_example()
    model = OdooNaiveBayes(["a", "b"]).fit(train, y)
    # 3 won, 4 lost. Frequencies (+0.1 each):
    #   a: x won 2.1 lost 1.1 | y won 0.1 lost 3.1          -> totals won 2.2, lost 4.2
    #   b: u won 2.1 lost 2.1 | v won 1.1 lost 1.1          -> totals won 3.2, lost 3.2
    prior_won, prior_lost = 3.1 / 7.2, 4.1 / 7.2

    def odoo(s_won, s_lost):
        return s_won / (s_won + s_lost)

    leads = pd.DataFrame(
        {
            "a": pd.Series(["x", "y", "zzz", None, "x"], dtype="str"),
            "b": pd.Series(["v", None, "u", None, "never_seen"], dtype="str"),
        }
    )
    expected = [
        odoo(prior_won * (2.1 / 2.2) * (1.1 / 3.2), prior_lost * (1.1 / 4.2) * (1.1 / 3.2)),
        odoo(prior_won * (0.1 / 2.2), prior_lost * (3.1 / 4.2)),  # missing b: no factor
        odoo(prior_won * (2.1 / 3.2), prior_lost * (2.1 / 3.2)),  # unseen a: no factor
        odoo(prior_won, prior_lost),  # nothing known: the prior
        odoo(prior_won * (2.1 / 2.2), prior_lost * (1.1 / 4.2)),  # unseen b: no factor
    ]
    np.testing.assert_allclose(model.predict_proba(leads), expected, rtol=0, atol=1e-12)


def test_odoo_naive_bayes_refuses_numeric_and_absent_fields():
    train, y = _odoo_example()
    with pytest.raises(ValueError, match=r"\['n'\] are numeric"):
        OdooNaiveBayes(["a", "n"]).fit(train.assign(n=np.arange(7.0)), y)
    with pytest.raises(ValueError, match=r"naive_bayes_fields names feature\(s\) \['country'\]"):
        OdooNaiveBayes(["a", "country"]).fit(train, y)
    model = OdooNaiveBayes(["a", "b"]).fit(train, y)
    with pytest.raises(ValueError, match=r"\['b'\]"):
        model.predict_proba(train[["a"]])


# --- Points -----------------------------------------------------------------------------------------


def test_points_rules_add_up_including_in_and_negative_points():
    frame = pd.DataFrame(
        {
            "seniority": pd.Series(["c_level", "staff", None, "director"], dtype="str"),
            "demo_request_30d": [2.0, 0.0, np.nan, 1.0],
            "industry": pd.Series(["software", "education", "education", None], dtype="str"),
        }
    )
    scorer = PointsScorer(RULES).fit(*_leads(300, seed=1))
    assert scorer.points(frame).tolist() == [45.0, -10.0, -10.0, 45.0]


def test_missing_value_never_satisfies_a_not_equal_rule():
    rules = [PointsRule(feature="industry", op="!=", value="retail", points=5)]
    frame, y = _leads(300, seed=1)
    scorer = PointsScorer(rules).fit(frame, y)
    batch = pd.DataFrame({"industry": pd.Series(["software", None, "retail"], dtype="str")})
    assert scorer.points(batch).tolist() == [5.0, 0.0, 0.0]


def test_points_probability_rises_with_points_and_keeps_their_ranking():
    frame, y = _leads(2000, seed=2)
    scorer = PointsScorer(RULES).fit(frame, y)
    points, p = scorer.points(frame), scorer.predict_proba(frame)
    order = np.argsort(points)
    assert np.all(np.diff(p[order]) >= 0)
    assert len(np.unique(p)) == len(np.unique(points))
    # The Platt map is fitted on these rows, so its mean matches their conversion rate.
    assert p.mean() == pytest.approx(y.mean(), abs=0.01)


def test_rules_that_point_the_wrong_way_get_the_base_rate_not_a_reversed_ranking():
    frame, y = _leads(2000, seed=2)
    backwards = [PointsRule(feature="demo_request_30d", op=">=", value=1, points=-50)]
    p = PointsScorer(backwards).fit(frame, y).predict_proba(frame)
    assert np.allclose(p, y.mean())


def test_points_rule_errors_name_the_rule():
    frame, y = _leads(200, seed=3)
    with pytest.raises(ValueError, match=r"names feature\(s\) \['budget'\]"):
        PointsScorer([PointsRule(feature="budget", op=">", value=1, points=5)]).fit(frame, y)
    with pytest.raises(ValueError, match=r"points_rules\[0\].*categorical"):
        PointsScorer([PointsRule(feature="industry", op=">=", value="a", points=5)]).fit(frame, y)
    with pytest.raises(ValueError, match="must be a number"):
        PointsScorer([PointsRule(feature="employees", op=">=", value="many", points=5)]).fit(frame, y)
    with pytest.raises(ValueError, match="empty"):
        PointsScorer([])


# --- Logistic -----------------------------------------------------------------------------------------


def test_logistic_peer_beats_a_constant_on_a_learnable_problem():
    X_train, y_train = _leads(3000, seed=10)
    X_val, y_val = _leads(1000, seed=11)
    X_test, y_test = _leads(1000, seed=12)
    peer = LogisticPeer().fit(X_train, y_train, X_val=X_val, y_val=y_val)
    assert peer.c_ in peer.validation_log_loss_
    assert peer.validation_log_loss_[peer.c_] == min(peer.validation_log_loss_.values())
    model = evaluate_scores(y_test, peer.predict_proba(X_test), ece_bins=10, top_fractions=[0.1])
    constant = evaluate_scores(y_test, np.full(len(y_test), y_train.mean()), ece_bins=10, top_fractions=[0.1])
    assert model["log_loss"] < constant["log_loss"] - 0.05
    assert model["roc_auc"] > 0.7


def test_a_logistic_c_chosen_on_validation_is_refit_on_more_rows_without_validation():
    """How the logistic peer learns from every non-test row: its C chosen on validation, then a one-value
    grid refits exactly that C (not scikit-learn's default) on rows that include the validation rows."""
    X_train, y_train = _leads(600, seed=10)
    X_val, y_val = _leads(600, seed=11)
    chosen = LogisticPeer(c_grid=[0.001, 100.0]).fit(X_train, y_train, X_val=X_val, y_val=y_val).c_
    X_all, y_all = pd.concat([X_train, X_val], ignore_index=True), pd.concat([y_train, y_val], ignore_index=True)
    refit = LogisticPeer(c_grid=[chosen]).fit(X_all, y_all)
    assert refit.c_ == chosen  # a grid without 1.0: the default would show
    with_validation = LogisticPeer(c_grid=[chosen]).fit(X_all, y_all, X_val=X_val, y_val=y_val)
    np.testing.assert_allclose(refit.predict_proba(X_val), with_validation.predict_proba(X_val))
    assert LogisticPeer().fit(X_all, y_all).c_ == 1.0  # several candidates and nothing to choose on: the default

def test_logistic_peer_scores_unseen_levels_and_missing_values_but_refuses_missing_columns():
    X_train, y_train = _leads(1000, seed=10)
    peer = LogisticPeer().fit(X_train, y_train)
    batch = pd.DataFrame(
        {
            "industry": pd.Series(["space_mining", None], dtype="str"),
            "seniority": pd.Series([None, "staff"], dtype="str"),
            "demo_request_30d": [np.nan, 1.0],
            "employees": [np.nan, np.nan],
        }
    )
    p = peer.predict_proba(batch)
    assert p.shape == (2,) and np.all((p > 0) & (p < 1))
    with pytest.raises(ValueError, match=r"\['employees'\]"):
        peer.predict_proba(batch.drop(columns="employees"))


# --- All peers ----------------------------------------------------------------------------------------


def _all_peers():
    return {
        "points": PointsScorer(RULES),
        "odoo": OdooNaiveBayes(["industry", "seniority"]),
        "logistic": LogisticPeer(),
    }


def test_all_peers_give_one_probability_per_row_on_the_same_rows():
    X_train, y_train = _leads(1500, seed=20)
    X_val, y_val = _leads(500, seed=21)
    X_test, _ = _leads(400, seed=22)
    for name, peer in _all_peers().items():
        p = peer.fit(X_train, y_train, X_val=X_val, y_val=y_val).predict_proba(X_test)
        assert p.shape == (len(X_test),), name
        assert np.all((p >= 0) & (p <= 1)), name
        empty = peer.predict_proba(X_test.iloc[:0])
        assert empty.shape == (0,), name


def test_peers_refuse_training_rows_with_one_class():
    X_train, _ = _leads(100, seed=23)
    for name, peer in _all_peers().items():
        with pytest.raises(ValueError, match="converted and non-converted"):
            peer.fit(X_train, np.zeros(len(X_train)))



@pytest.mark.parametrize(
    "make",
    [
        lambda: PointsScorer(RULES),
        lambda: OdooNaiveBayes(["industry", "seniority"]),
        lambda: LogisticPeer(seed=0),
        lambda: LogisticPeer(seed=0, curves=True),
    ],
    ids=["points", "odoo", "logistic", "logistic_curves"],
)
def test_log_odds_contributions_add_up_to_each_peers_own_log_odds(make):
    """Explanations rely on it: a peer served at cold start is explained exactly, like the model."""
    frame, y = _leads(400, seed=5)
    model = make().fit(frame, y)
    fresh = _leads(50, seed=6)[0].assign(industry=lambda f: f["industry"].where(f.index % 7 != 0, "unseen level"))
    base, parts = model.log_odds_contributions(fresh)
    p = model.predict_proba(fresh)
    np.testing.assert_allclose(base + parts.to_numpy().sum(axis=1), np.log(p / (1 - p)), atol=1e-9)
    assert list(parts.index) == list(fresh.index)


@pytest.mark.parametrize("curves", [False, True])
def test_logistic_peer_probabilities_equal_scikit_learns_own_pipeline(curves):
    frame, y = _leads(400, seed=7)
    peer = LogisticPeer(seed=0, curves=curves).fit(frame, y)
    fresh = _leads(60, seed=8)[0].assign(industry=lambda f: f["industry"].where(f.index % 5 != 0, "never seen"))
    fresh.loc[fresh.index[:3], "employees"] = np.nan
    fresh.loc[fresh.index[3:5], "employees"] = [-5.0, 1e6]  # beyond the outer knots: the curve is flat
    sklearn_p = peer.model_.predict_proba(peer.preprocessor_.transform(peer._design(fresh)))[:, 1]
    np.testing.assert_allclose(peer.predict_proba(fresh), sklearn_p, rtol=0, atol=1e-12)
    assert len(peer.predict_proba(fresh.iloc[:0])) == 0


def test_a_logistic_model_saved_before_curves_existed_loads_and_scores_as_before():
    frame, y = _leads(400, seed=7)
    peer = LogisticPeer(seed=0).fit(frame, y)
    expected = peer.predict_proba(frame)
    saved = peer.__getstate__()
    for added_with_curves in ("curves", "curved_", "linear_"):
        del saved[added_with_curves]
    old = LogisticPeer.__new__(LogisticPeer)
    old.__setstate__(pickle.loads(pickle.dumps(saved)))
    np.testing.assert_array_equal(old.predict_proba(frame), expected)


def test_curves_learn_a_numeric_that_converts_at_both_ends_and_declared_directions_keep_a_slope():
    """Like X Education's time on the website: no time (a form lead) and long visits both convert."""
    rng = np.random.default_rng(3)
    n = 3000
    frame = pd.DataFrame({"minutes": rng.uniform(0, 30, n), "demo_requests": rng.poisson(1.0, n).astype("float64")})
    logit = -1.0 + 2.5 * (np.abs(frame["minutes"] - 15) > 10) + 0.5 * frame["demo_requests"]
    y = (rng.uniform(size=n) < 1 / (1 + np.exp(-logit))).astype("float64")
    curved = LogisticPeer(seed=0, curves=True, monotone={"demo_requests": 1}).fit(frame, y)
    assert curved.curved_ == ["minutes"] and curved.linear_ == ["demo_requests"]
    probe = pd.DataFrame({"minutes": [1.0, 15.0, 29.0], "demo_requests": [1.0, 1.0, 1.0]})
    ends, middle = curved.predict_proba(probe)[[0, 2]], curved.predict_proba(probe)[1]
    assert (ends > middle + 0.2).all()
    plain = LogisticPeer(seed=0).fit(frame, y)
    assert evaluate_scores(y, curved.predict_proba(frame), ece_bins=10, top_fractions=[])["roc_auc"] > (
        evaluate_scores(y, plain.predict_proba(frame), ece_bins=10, top_fractions=[])["roc_auc"] + 0.1
    )


def test_a_category_nearly_every_lead_answers_alike_explains_nothing_about_a_lead():
    """X Education's "Newspaper" field: "No" for all leads but one; it cannot be a reason for a score."""
    frame, y = _leads(400, seed=5)
    frame["ad_newspaper"] = pd.Series(["no"] * len(frame), dtype="str")
    frame.loc[frame.index[y.to_numpy() == 1][:3], "ad_newspaper"] = "yes"  # three converted leads said yes
    peer = LogisticPeer(seed=0).fit(frame, y)
    base, parts = peer.log_odds_contributions(frame)

    answered_no = parts.loc[frame["ad_newspaper"] == "no", "ad_newspaper"]
    assert answered_no.abs().max() < 0.02  # the common answer is the average lead: no factor
    np.testing.assert_allclose(parts[["industry", "seniority", "ad_newspaper"]].mean(), 0.0, atol=1e-9)
    p = peer.predict_proba(frame)
    np.testing.assert_allclose(base + parts.to_numpy().sum(axis=1), np.log(p / (1 - p)), atol=1e-9)
