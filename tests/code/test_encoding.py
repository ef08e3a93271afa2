"""Category levels learned at fit time map any later frame the same way (train, batch, service)."""

from __future__ import annotations

import pickle

import lightgbm as lgb
import numpy as np
import pandas as pd

from models import encoding
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


def test_values_never_seen_in_training_are_told_from_rare_and_missing_ones():
    """"mining" (2 leads in training) and "space" (none) both score as __other__; only "space" is new."""
    encoder = fitted()
    batch = pd.Series(["space", "retail", "mining", None, "space", np.nan, "tiktok", "space"])

    unseen = encoder.unseen(batch, "industry")

    assert unseen.to_dict() == {"space": 3, "tiktok": 1}  # most first; rare "mining" and missing are not new
    # per lead, as the service tells each score (LeadScorer.never_seen): what `unseen` counts
    np.testing.assert_array_equal(encoder.never_seen(batch, "industry"), [True, False, False, False, True, False,
                                                                          True, True])
    assert encoder.transform(pd.DataFrame({"industry": ["mining", "space"], "employees": 1.0}))["industry"].tolist() == [OTHER, OTHER]
    assert encoder.unseen(pd.Series(["retail", "mining", None]), "industry").empty
    assert encoder.unseen(batch.iloc[:0], "industry").empty


def test_a_column_with_more_distinct_values_than_remembered_is_not_judged(monkeypatch):
    monkeypatch.setattr(encoding, "MAX_REMEMBERED", 3)
    train = pd.DataFrame({"industry": ["a", "b", "c"] * 5, "city": ["x", "y", "z", "w", "v"] * 3, "employees": 1.0})

    encoder = CategoryEncoder(["industry", "city"], ["employees"], min_count=2).fit(train)

    assert encoder.seen == {"industry": frozenset("abc"), "city": None}
    assert encoder.unseen(pd.Series(["q"]), "city") is None  # not "none unseen": unknown
    assert encoder.unseen(pd.Series(["q"]), "industry").to_dict() == {"q": 1}


def test_an_encoder_pickled_before_values_were_remembered_still_encodes_and_judges_nothing():
    fresh = fitted()
    old = object.__new__(CategoryEncoder)  # what an older release pickled: no `seen`
    old.__dict__.update({k: v for k, v in fresh.__getstate__().items() if k != "seen"})
    loaded = pickle.loads(pickle.dumps(old))
    frame = pd.DataFrame({"industry": ["retail", "space", None], "employees": [1.0, 2.0, 3.0]})

    assert "seen" not in loaded.__dict__ and loaded.seen is None
    assert loaded.unseen(frame["industry"], "industry") is None
    assert loaded.never_seen(frame["industry"], "industry") is None
    np.testing.assert_array_equal(loaded.matrix(frame), fresh.matrix(frame))


def codes_encoder() -> CategoryEncoder:
    """Plan codes as a CSV export writes them ("3.0"), one rare; "tier" knows "3" and "3.0", so 3 is either."""
    train = pd.DataFrame({"plan": ["1.0"] * 12 + ["3.0"] * 10 + ["7.0"] * 2, "tier": ["3", "3.0", "gold"] * 8,
                          "employees": 1.0})
    return CategoryEncoder(["plan", "tier"], ["employees"], min_count=5).fit(train)


def test_a_value_never_seen_that_is_the_number_of_one_known_value_is_that_value():
    """A JSON 3, a Parquet number and a re-exported CSV write "3" (ingest.as_plain_text): the "3.0" training read.
    A value equal to several known ones ("3" and "3.0"), or to none, stays as sent: a value never seen."""
    encoder = codes_encoder()
    frame = pd.DataFrame({"plan": pd.array(["3", " +3.00 ", "3.0", "7", "4", "1e0", None, "gold"], dtype="str"),
                          "tier": pd.array(["3.00", "3", "3.0", "gold", None, "4", "3e0", "4.0"], dtype="str"),
                          "employees": 1.0}, index=list("abcdefgh"))

    known = encoder.as_known(frame)

    # "7.0" was seen, if too rarely to be kept: "7" is it, as rare
    assert known["plan"].fillna("missing").tolist() == ["3.0", "3.0", "3.0", "7.0", "4", "1.0", "missing", "gold"]
    assert known["tier"].equals(frame["tier"]) and known.index.equals(frame.index)
    assert known["plan"].dtype == frame["plan"].dtype and list(known.columns) == list(frame.columns)
    assert encoder.unseen(known["plan"], "plan").to_dict() == {"4": 1, "gold": 1}
    assert encoder.unseen(known["tier"], "tier").to_dict() == {"3.00": 1, "4": 1, "3e0": 1, "4.0": 1}
    np.testing.assert_array_equal(encoder.matrix(known)[:3, 0], encoder.matrix(frame)[[2] * 3, 0])
    assert encoder.as_known(known) is known  # nothing to map: the frame as it is, not a copy


def test_only_a_yes_no_field_reads_the_other_spelling_of_true_false_as_the_one_training_saw():
    """PostgreSQL's CSV export writes true as "t", a database read as "true" (contract.true_false_spellings). A field
    of t/f reads "true" as "t"; one of true/false and a lone "t" reads "f" as "false", keeping the "t" it saw; an
    ordinary category's "f" ("f", "m") is no false, nor its "m" anything."""
    train = pd.DataFrame({"opt_out": ["t", "f"] * 10, "flag": ["true", "false"] * 9 + ["t", "t"],
                          "gender": ["f", "m"] * 10, "employees": 1.0})
    encoder = CategoryEncoder(["opt_out", "flag", "gender"], ["employees"], min_count=5).fit(train)
    frame = pd.DataFrame({"opt_out": pd.array(["true", "false", "t", None, "yes"], dtype="str"),
                          "flag": pd.array(["t", "f", "true", "false", "no"], dtype="str"),
                          "gender": pd.array(["false", "true", "f", "m", "t"], dtype="str"), "employees": 1.0})

    known = encoder.as_known(frame)

    assert known["opt_out"].fillna("missing").tolist() == ["t", "f", "t", "missing", "yes"]
    assert known["flag"].tolist() == ["t", "false", "true", "false", "no"]
    assert known["gender"].equals(frame["gender"])
    assert {column: encoder.unseen(known[column], column).to_dict() for column in ["opt_out", "flag", "gender"]} == {
        "opt_out": {"yes": 1}, "flag": {"no": 1}, "gender": {"false": 1, "true": 1, "t": 1}}


def test_an_encoder_saved_before_it_matched_numbers_matches_them_from_its_levels_once_loaded():
    """Nothing new is saved: the numbers are read from the levels after loading, of an encoder pickled before
    it remembered its training values too (its kept levels are then all it knows)."""
    fresh = codes_encoder()
    frame = pd.DataFrame({"plan": pd.array(["3", "7"], dtype="str"), "tier": ["3", "3"], "employees": 1.0})
    fresh.as_known(frame)
    old = object.__new__(CategoryEncoder)  # what an older release pickled: no `seen`
    old.__dict__.update({k: v for k, v in fresh.__getstate__().items() if k != "seen"})

    loaded = pickle.loads(pickle.dumps(old))

    assert "_number_levels" not in fresh.__getstate__()
    assert loaded.as_known(frame)["plan"].tolist() == ["3.0", "7"]  # "7.0" was too rare to be kept
    assert loaded.as_known(frame)["tier"].tolist() == ["3", "3"]  # kept: "3" and "3.0", "3" is one of them


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


def test_a_very_long_value_is_named_by_its_start_and_length_not_whole():
    """A free-text field listed as a category: score's warning of values the model never saw printed a 100,000-character
    cell whole (200 KB of log for 3 leads), where the never_seen column names it by its start and length."""
    long_value = "note " * 20_000

    named = encoding.most_frequent({long_value: 2, "tiktok": 1})

    assert named == f"{repr(long_value)[:40]}... (100,002 characters) 2, 'tiktok' 1"
