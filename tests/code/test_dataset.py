"""The training set and the frames other models are compared on."""

from __future__ import annotations

from types import SimpleNamespace

import pandas as pd

from pipelines import dataset
from pipelines.dataset import assemble, features_at, model_features


def test_another_model_is_compared_on_its_own_settings_at_the_same_moments(sample_params):
    """An older model (other windows, trained at 3 days only) is scored on the same leads as they
    were at the training set's snapshots, with its own windows: same leads, same moments."""
    ts = assemble(sample_params)
    ids = ts.features.index[:300]
    older = SimpleNamespace(features=ts.feature_params.model_copy(update={"windows": [14, 60], "snapshot_days": [3.0]}))

    frame = model_features(older, ts, ids)

    ages = (ts.snapshot_at.loc[ids] - ts.crm.leads.set_index("lead_id").loc[ids, "created_at"]).dt.days
    assert ages.nunique() > 3  # the training set sees these leads at several ages
    assert "page_view_14d" in frame.columns and "page_view_7d" not in frame.columns
    pd.testing.assert_series_equal(frame["days_since_last_activity"], ts.features.loc[ids, "days_since_last_activity"])
    # A model with the training set's own settings reuses its frame: that is what a rebuild gives.
    pd.testing.assert_frame_equal(features_at(ts.crm, ids, ts.snapshot_at, ts.feature_params), ts.features.loc[ids])


def test_a_file_hash_is_read_once_but_follows_an_edit_of_the_same_size(tmp_path):
    """The training key must see a corrected export (same size, one digit changed), and retrain must not read
    a GB of activities twice to compare it."""
    export = tmp_path / "leads.csv"
    export.write_text("lead_id,employees\nL1,10\n")
    first = dataset.file_sha256(export)
    reads = dataset._sha256.cache_info().misses

    assert dataset.file_sha256(export) == first and dataset._sha256.cache_info().misses == reads  # not read again
    export.write_text("lead_id,employees\nL1,11\n")  # same size
    assert dataset.file_sha256(export) != first
