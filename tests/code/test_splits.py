"""The shared train / validation / calibration / test split."""

import dataclasses

import numpy as np
import pandas as pd
import pytest

from models.splits import make_split
from pipelines.config import SplitParams

FRACTIONS = SplitParams(validation=0.15, calibration=0.15, test=0.2)


def _dated_leads(n=1000, seed=0):
    rng = np.random.default_rng(seed)
    created_at = pd.Series(pd.Timestamp("2024-01-01") + pd.to_timedelta(rng.integers(0, 365 * 24, n), unit="h"))
    y = pd.Series((rng.uniform(size=n) < 0.2).astype(float))
    return created_at, y


def test_out_of_time_parts_follow_creation_order():
    created_at, y = _dated_leads()
    split = make_split(created_at, y, FRACTIONS, seed=1)
    assert split.kind == "out_of_time"
    parts = [created_at.iloc[rows] for rows in (split.train, split.validation, split.calibration, split.test)]
    for older, newer in zip(parts, parts[1:]):
        assert older.max() <= newer.min()


def test_parts_have_the_configured_sizes_and_cover_every_row_once():
    created_at, y = _dated_leads()
    split = make_split(created_at, y, FRACTIONS, seed=1)
    assert [len(split.train), len(split.validation), len(split.calibration), len(split.test)] == [500, 150, 150, 200]
    everything = np.concatenate(list(split.parts().values()))
    assert sorted(everything.tolist()) == list(range(1000))


def test_out_of_time_split_does_not_depend_on_the_index_or_seed():
    created_at, y = _dated_leads()
    shifted = make_split(created_at.set_axis(created_at.index + 5000), y, FRACTIONS, seed=99)
    plain = make_split(created_at, y, FRACTIONS, seed=1)
    assert np.array_equal(shifted.test, plain.test)


def test_describe_reports_sizes_positives_and_date_ranges():
    created_at, y = _dated_leads()
    split = make_split(created_at, y, FRACTIONS, seed=1)
    summary = split.describe()
    assert summary["test_rows"] == 200
    assert summary["test_positives"] == int(y.iloc[split.test].sum())
    assert summary["test_to"] == created_at.max().isoformat()
    assert summary["train_from"] == created_at.min().isoformat()


def test_the_test_caption_says_which_leads_how_many_and_when_created_as_a_plot_title_shows_it():
    """Evaluation plots are titled with it (`Evaluation.plots`): a PNG shown alone says what it was computed on."""
    created_at, y = _dated_leads()
    dated = make_split(created_at, y, FRACTIONS, seed=1)
    first, last = created_at.iloc[dated.test].min(), created_at.iloc[dated.test].max()
    assert dated.test_caption() == f"test leads (n=200, created {first:%Y-%m-%d} → {last:%Y-%m-%d})"
    assert make_split(None, y, FRACTIONS, seed=1).test_caption() == "test leads, seeded random hold-out (n=200)"


def test_the_training_caption_says_which_leads_a_model_learned_from_by_the_test_captions_rule():
    """A model's feature-importance plot is titled with it (`Evaluation.plots`): the train part, or with the models
    cross-validating the train, validation and calibration parts pooled, and the creation dates they span."""
    created_at, y = _dated_leads()
    dated = make_split(created_at, y, FRACTIONS, seed=1)
    first, last = created_at.iloc[dated.train].min(), created_at.iloc[dated.train].max()
    assert dated.training_caption(pooled=False) == (f"training leads (n={len(dated.train):,}, created {first:%Y-%m-%d} → "
                                                    f"{last:%Y-%m-%d})")
    pooled = np.concatenate([dated.train, dated.validation, dated.calibration])
    assert dated.training_caption(pooled=True) == (
        f"training leads, all older than the test leads (n={len(pooled):,}, created "
        f"{created_at.iloc[pooled].min():%Y-%m-%d} → {created_at.iloc[pooled].max():%Y-%m-%d})")
    undated = make_split(None, y, FRACTIONS, seed=1)
    assert undated.training_caption(pooled=False) == f"training leads, seeded random share (n={len(undated.train):,})"
    assert undated.training_caption(pooled=True) == (f"training leads, all but the seeded random test hold-out "
                                                     f"(n={len(y) - len(undated.test):,})")
    shuffled = dataclasses.replace(dated, kind="stratified", stratified_because="a made-up reason")  # its parts span dates
    assert shuffled.training_caption(pooled=True) == (
        f"training leads, all but the seeded random test hold-out (n={len(pooled):,}, created "
        f"{created_at.iloc[pooled].min():%Y-%m-%d} → {created_at.iloc[pooled].max():%Y-%m-%d})")


def test_undated_split_is_stratified_and_keeps_the_positive_rate():
    rng = np.random.default_rng(5)
    y = pd.Series((rng.uniform(size=2000) < 0.1).astype(float))
    split = make_split(None, y, FRACTIONS, seed=42)
    assert split.kind == "stratified"
    overall = y.mean()
    for name, rows in split.parts().items():
        assert abs(y.iloc[rows].mean() - overall) < 0.005, name
    assert len(split.test) == pytest.approx(400, abs=2)
    assert "test_from" not in split.describe()


def test_stratified_split_is_deterministic_per_seed():
    y = pd.Series(np.tile([1.0, 0.0, 0.0, 0.0, 0.0], 200))
    first = make_split(None, y, FRACTIONS, seed=42)
    again = make_split(None, y, FRACTIONS, seed=42)
    other = make_split(None, y, FRACTIONS, seed=7)
    assert np.array_equal(first.test, again.test) and np.array_equal(first.train, again.train)
    assert not np.array_equal(first.test, other.test)


def test_a_part_without_a_converted_lead_is_a_clear_error():
    created_at = pd.Series(pd.date_range("2024-01-01", periods=100, freq="D"))
    y = pd.Series([1.0] * 10 + [0.0] * 90)  # conversions only among the oldest leads
    with pytest.raises(ValueError, match="validation part .* no converted lead"):
        make_split(created_at, y, FRACTIONS, seed=1)


@pytest.mark.parametrize(
    "y, message",
    [([], r"no labelled lead to train or evaluate on: the label rules left every lead out"),
     ([0.0] * 100, r"none of the 100 labelled leads converted, .* check that label.converted_statuses"),
     ([1.0] * 100, r"all 100 labelled leads converted, .* check that label.rejected_statuses")],
    ids=["no row", "no conversion", "only conversions"],
)
def test_rows_without_a_class_at_all_say_so_rather_than_blame_the_split_fractions(y, message):
    """An export whose leads are all open or unlabelled, or whose won status is mapped wrong: the error named a part
    ("the train part (0 of 0 rows)") and advised changing evaluate.split, which cannot help."""
    created_at = pd.Series(pd.date_range("2024-01-01", periods=len(y), freq="D"))
    with pytest.raises(ValueError, match=message) as refused:
        make_split(created_at, pd.Series(y, dtype=float), FRACTIONS, seed=1)
    assert "evaluate.split" not in str(refused.value)


def test_missing_creation_date_is_refused_with_its_position():
    created_at, y = _dated_leads(n=50)
    created_at.iloc[7] = pd.NaT
    with pytest.raises(ValueError, match="position 7"):
        make_split(created_at, y, FRACTIONS, seed=1)


def test_leads_all_created_on_one_day_get_the_stratified_split_and_say_why():
    """A bulk import stamps every lead with one day: a test part 'newer' only by file order is no out-of-time test."""
    _, y = _dated_leads()
    created_at = pd.Series(pd.Timestamp("2026-01-05 08:00") + pd.to_timedelta(np.arange(len(y)), unit="s"))
    split = make_split(created_at, y, FRACTIONS, seed=42)
    undated = make_split(None, y, FRACTIONS, seed=42)
    assert split.kind == "stratified"
    assert all(np.array_equal(a, b) for a, b in zip(split.parts().values(), undated.parts().values()))
    expected = "stratified (all leads created on 2026-01-05: dates cannot order train/validation/test)"
    assert split.kind_description == expected
    assert split.describe()["stratified_because"] == split.tags()["split_because"] == expected.removeprefix("stratified (")[:-1]


def test_too_few_creation_days_for_a_test_after_training_get_the_stratified_split():
    _, y = _dated_leads()
    created_at = pd.Series(pd.to_datetime(["2026-01-05"] * 900 + ["2026-01-06"] * 100))  # the test would reach back into day 1
    split = make_split(created_at, y, FRACTIONS, seed=42)
    assert split.kind == "stratified"
    assert split.kind_description == (
        "stratified (leads created on 2 days, 2026-01-05 .. 2026-01-06, and the training and test parts would share "
        "2026-01-05: dates cannot order train/validation/test)")


def test_two_creation_days_that_keep_the_test_after_training_stay_out_of_time():
    """Validation and calibration may share the day a cut falls on; the test still holds only newer leads."""
    _, y = _dated_leads()
    created_at = pd.Series(pd.to_datetime(["2026-01-05"] * 500 + ["2026-01-06"] * 500))
    split = make_split(created_at, y, FRACTIONS, seed=42)
    assert split.kind_description == split.describe()["kind"] == "out_of_time"
    assert "stratified_because" not in split.describe() and split.tags() == {"split": "out_of_time"}
    assert created_at.iloc[split.train].max() < created_at.iloc[split.test].min()
