"""Category levels learned at fit time map any later frame the same way (train, batch, service)."""

from __future__ import annotations

import lightgbm as lgb
import numpy as np
import pandas as pd

from models.encoding import OTHER, CategoryEncoder


def fitted() -> CategoryEncoder:
    train = pd.DataFrame({"industry": ["software"] * 12 + ["retail"] * 10 + ["mining"] * 2, "employees": 1.0})
    return CategoryEncoder(["industry"], ["employees"], min_count=10).fit(train)


def test_known_levels_keep_their_code_and_rare_or_unseen_values_share_other():
    encoder = fitted()
    frame = pd.DataFrame(
        {"industry": ["retail", "mining", "space", None, "software"], "employees": ["3", "x", None, 4, 5]}
    )

    out = encoder.transform(frame)

    assert encoder.levels["industry"] == ["retail", "software", OTHER]
    assert list(out["industry"].cat.categories) == ["retail", "software", OTHER]
    assert out["industry"].tolist()[:3] == ["retail", OTHER, OTHER]  # rare in training, never seen
    assert pd.isna(out["industry"].tolist()[3])  # missing stays missing, it is not "other"
    np.testing.assert_array_equal(out["employees"].to_numpy(), [3.0, np.nan, np.nan, 4.0, 5.0])


def test_all_missing_or_empty_columns_encode_without_error():
    encoder = fitted()
    all_missing = pd.DataFrame({"industry": [np.nan, np.nan], "employees": [np.nan, 1.0]}, index=["a", "b"])

    out = encoder.transform(all_missing)
    empty = encoder.transform(all_missing.iloc[:0])

    assert out.index.tolist() == ["a", "b"] and out["industry"].isna().all()
    assert list(out["industry"].cat.categories) == encoder.levels["industry"]
    assert len(empty) == 0 and list(empty.columns) == encoder.columns


def test_a_refit_encoder_transforms_with_its_new_levels():
    encoder = fitted()
    encoder.transform(pd.DataFrame({"industry": ["retail"], "employees": [1.0]}))

    encoder.fit(pd.DataFrame({"industry": ["space"] * 10, "employees": 1.0}))
    out = encoder.transform(pd.DataFrame({"industry": ["retail", "space"], "employees": [1.0, 2.0]}))

    assert out["industry"].tolist() == [OTHER, "space"]


def test_a_booster_predicts_the_same_from_the_matrix_as_from_the_training_frame():
    rng = np.random.default_rng(0)
    industries = np.array(["software", "retail", "mining", "energy"], dtype=object)
    train = pd.DataFrame({"industry": industries[rng.integers(0, 4, 600)], "employees": rng.normal(size=600)})
    y = ((train["industry"] == "retail") | (train["employees"] > 0.5)).astype(int)
    encoder = CategoryEncoder(["industry"], ["employees"], min_count=10).fit(train)
    booster = lgb.train({"objective": "binary", "num_leaves": 7, "verbose": -1, "min_data_per_group": 5},
                        lgb.Dataset(encoder.transform(train), y), num_boost_round=20)
    later = pd.DataFrame({"industry": ["retail", "space", None, "software", np.nan],
                          "employees": [0.0, 1.0, np.nan, -1.0, 2.0]})

    from_frame = booster.predict(encoder.transform(later), raw_score=True)
    from_matrix = booster.predict(encoder.matrix(later), raw_score=True)
    contrib_frame = booster.predict(encoder.transform(later), pred_contrib=True)
    contrib_matrix = booster.predict(encoder.matrix(later), pred_contrib=True)

    np.testing.assert_array_equal(from_matrix, from_frame)
    np.testing.assert_array_equal(contrib_matrix, contrib_frame)
    assert encoder.matrix(later.iloc[:0]).shape == (0, 2)
