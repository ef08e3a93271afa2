"""What a score and a tier mean to the CRM that writes them back: the probability in percent, and
tier thresholds frozen at training time (models/calibration.py)."""

from __future__ import annotations

import numpy as np
import pytest
from pydantic import ValidationError

from models.calibration import TierThresholds, to_score
from pipelines.config import Tier, TierParams


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
