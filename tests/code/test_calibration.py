"""What a score and a tier mean to the CRM that writes them back: the probability in percent, the
same at every lead age, and tier thresholds frozen at training time (models/calibration.py)."""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pytest
from pydantic import ValidationError
from scipy.special import expit

from models.calibration import Calibrator, TierThresholds, to_score
from pipelines.config import ModelParams, Tier, TierParams, load_params


def test_the_score_is_the_probability_in_percent_kept_within_1_to_99():
    p = np.array([0.0, 0.004, 0.005, 0.405, 0.5, 0.994, 0.996, 1.0])
    assert to_score(p).tolist() == [1, 1, 1, 40, 50, 99, 99, 99]  # 0.005 rounds half to even: 0


def test_capacity_tiers_hold_their_shares_of_the_training_population():
    reference = np.linspace(0, 1, 1001)
    tiers = TierThresholds.fit(TierParams(), reference)  # A top 10%, B to 30%, C to 60%, D the rest
    assert tiers.names == ["A", "B", "C", "D"]
    assert np.allclose(tiers.min_probability, [0.9, 0.7, 0.4, 0.0])
    shares = {name: np.mean(tiers.assign(reference) == name) for name in tiers.names}
    assert np.allclose([shares[n] for n in "ABCD"], [0.1, 0.2, 0.3, 0.4], atol=0.002)


def test_tiers_are_frozen_thresholds_not_quantiles_of_the_batch_scored():
    tiers = TierThresholds.fit(TierParams(), np.linspace(0, 1, 1001))
    # A batch of cold leads stays in D, one hot lead is A on its own or among them, and a
    # probability exactly on a threshold enters that tier.
    cold = np.full(200, 0.05)
    assert set(tiers.assign(cold)) == {"D"}
    assert tiers.assign(np.array([0.95]))[0] == tiers.assign(np.append(cold, 0.95))[-1] == "A"
    assert tiers.assign(np.array(tiers.min_probability)).tolist() == ["A", "B", "C", "D"]


def test_precision_tiers_take_their_thresholds_from_params():
    params = TierParams(method="precision", tiers=[Tier(name="hot", min_probability=0.6),
                                                   Tier(name="warm", min_probability=0.3), Tier(name="cold")])
    tiers = TierThresholds.fit(params, np.linspace(0, 1, 11))
    assert tiers.min_probability == [0.6, 0.3, 0.0]
    assert tiers.assign(np.array([0.65, 0.6, 0.55, 0.3, 0.1])).tolist() == ["hot", "hot", "warm", "warm", "cold"]


def test_precision_tiers_whose_thresholds_increase_down_the_list_are_refused():
    """"warm" asking for more than "hot" would get no lead: every lead that reaches it is hot."""
    with pytest.raises(ValidationError, match=r"tiers.tiers\[1\].min_probability: 0.6 is not below the 0.5 of tier 'hot'"):
        TierParams(method="precision", tiers=[Tier(name="hot", min_probability=0.5),
                                              Tier(name="warm", min_probability=0.6), Tier(name="cold")])


def _new_leads_convert_more_than_their_margin_says(rows: int = 20_000):
    """Leads at ages 0 and 30 with the same margins; the new ones convert at twice the odds."""
    rng = np.random.default_rng(0)
    margin = rng.normal(-1.5, 1.0, rows)
    age = np.where(np.arange(rows) % 2 == 0, 0.0, 30.0)
    y = (rng.random(rows) < expit(margin + np.where(age == 0, np.log(2), 0.0))).astype(float)
    return margin, y, age


def test_age_shifts_give_new_leads_the_conversion_their_age_shows_and_keep_the_order_within_an_age():
    margin, y, age = _new_leads_convert_more_than_their_margin_says()
    one_map = Calibrator("sigmoid").fit(margin, y)
    by_age = copy.deepcopy(one_map).fit_age_shifts(margin, y, age, [0, 3, 7, 14, 30, 60, 90])
    new, month = age == 0, age == 30
    assert abs(one_map.predict(margin)[new].mean() - y[new].mean()) > 0.02  # one map under-states new leads
    p = by_age.predict(margin, age)
    assert p[new].mean() == pytest.approx(y[new].mean(), abs=0.005)
    assert p[month].mean() == pytest.approx(y[month].mean(), abs=0.005)
    assert np.array_equal(np.argsort(p[new], kind="stable"), np.argsort(margin[new], kind="stable"))
    # An age between the snapshot ages takes the last one reached; an unknown age gets the one map.
    assert by_age.predict(margin[:1], np.array([45.0])) == pytest.approx(by_age.predict(margin[:1], np.array([30.0])))
    assert by_age.predict(margin[:1], np.array([np.nan])) == pytest.approx(one_map.predict(margin[:1]))


def test_an_age_shifted_calibrator_refuses_to_score_without_ages():
    """A caller that forgot the ages would show a new lead a lower score than the service does."""
    margin, y, age = _new_leads_convert_more_than_their_margin_says(2_000)
    calibrator = Calibrator("isotonic").fit(margin, y).fit_age_shifts(margin, y, age, [0, 30])
    with pytest.raises(ValueError, match="pass each lead's age"):
        calibrator.predict(margin)


def test_a_calibrator_saved_before_age_shifts_loads_and_scores_as_it_did():
    margin, y, _ = _new_leads_convert_more_than_their_margin_says(2_000)
    calibrator = Calibrator("sigmoid").fit(margin, y)
    state = {k: v for k, v in calibrator.__dict__.items() if k not in ("age_grid", "age_shift")}
    old = Calibrator.__new__(Calibrator)
    old.__setstate__(state)  # what unpickling a model saved by the earlier version does
    np.testing.assert_array_equal(old.predict(margin), calibrator.predict(margin))


def test_a_params_file_without_a_calibration_method_calibrates_as_the_shipped_ones_do():
    """A RevOps params file written from scratch gets the method both shipped files chose for its
    smooth score points, not a silently different one."""
    root = Path(__file__).resolve().parents[2]
    shipped = {load_params(root / name).model.calibration for name in ("params.yaml", "params.x_education.yaml")}
    assert shipped == {ModelParams().calibration}
