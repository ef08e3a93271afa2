"""The X Education export through params.x_education.yaml: what the model may learn from."""

from __future__ import annotations

import pandas as pd
import pytest

from models.splits import make_split
from pipelines.config import PROJECT_ROOT, load_params
from pipelines.dataset import assemble
from pipelines.evaluate import LEADSCORE, compare, fit_peers
from pipelines.ingest import load_crm
from pipelines.train import fit_model

PARAMS_FILE = PROJECT_ROOT / "params.x_education.yaml"
POST_CONTACT = [
    "Tags",
    "Lead Quality",
    "Lead Profile",
    "Asymmetrique Activity Index",
    "Asymmetrique Profile Index",
    "Asymmetrique Activity Score",
    "Asymmetrique Profile Score",
    "Last Activity",
    "Last Notable Activity",
]


@pytest.fixture(scope="module")
def params():
    return load_params(PARAMS_FILE)


@pytest.fixture(scope="module")
def raw(params) -> pd.DataFrame:
    path = params.resolve(params.data.leads)
    if not path.exists():
        pytest.skip(f"X Education export not found: {path}")
    return pd.read_csv(path, keep_default_na=False, na_values=[""])


@pytest.fixture(scope="module")
def crm(params, raw):
    return load_crm(params)


def test_every_lead_loads_with_the_published_conversion_rate(crm):
    assert len(crm.leads) == 9240
    assert crm.leads["lead_id"].is_unique
    assert crm.outcomes["lead_id"].tolist() == crm.leads["lead_id"].tolist()
    assert crm.outcomes["status"].eq("converted").mean() == pytest.approx(0.3854, abs=5e-4)
    assert set(crm.outcomes["status"]) == {"converted", "rejected"}
    assert crm.report.problems == []


def test_no_post_contact_or_outcome_column_reaches_the_leads(crm, params):
    leaked = {"status", "reason", "decided_at", "Converted", "Lead Number", *POST_CONTACT}
    leaked |= {c.lower().replace(" ", "_") for c in POST_CONTACT}
    assert not leaked & set(crm.leads.columns)
    assert not {"reason", "status"} & set(params.features.categorical + params.features.numeric)


def test_select_means_not_answered(crm, raw):
    assert not crm.leads.isin(["Select"]).any().any()
    assert crm.leads["city"].isna().sum() == raw["City"].isin(["Select"]).sum() + raw["City"].isna().sum()


def test_outcome_reasons_are_the_sales_tags(crm, raw):
    reasons = crm.outcomes.set_index("lead_id")["reason"]
    tags = raw.set_index("Prospect ID")["Tags"]
    pd.testing.assert_series_equal(reasons.loc[tags.index], tags, check_names=False, check_dtype=False)


def test_every_tag_value_has_a_considered_label_policy(params, raw):
    policy = params.label.reasons
    assert set(raw["Tags"].dropna()) <= set(policy)
    for timing in ("Shall take in the next coming month", "Still Thinking", "Interested in Next batch"):
        assert policy[timing] == "soft_negative"
    for unreachable in ("invalid number", "wrong number given", "number not provided"):
        assert policy[unreachable] == "exclude"


def test_features_and_rules_name_loaded_columns(crm, params):
    features = params.features
    assert set(features.categorical + features.numeric) <= set(crm.leads.columns)
    for column in features.numeric:
        assert pd.api.types.is_numeric_dtype(crm.leads[column]), column
    assert set(params.evaluate.naive_bayes_fields) == set(features.categorical)
    for rule in params.evaluate.points_rules:
        assert rule.feature in features.categorical + features.numeric
        values = rule.value if isinstance(rule.value, list) else [rule.value]
        if rule.feature in features.categorical:  # the feature builder lower-cases categories
            assert all(v == v.lower().strip() for v in values)
            levels = set(crm.leads[rule.feature].dropna().str.strip().str.lower())
            assert set(values) <= levels, rule


def test_the_honest_model_beats_every_peer_on_the_real_export(params, crm):
    """The README's X Education claims, loosely: no post-contact column, so an AUC in the honest
    0.86-0.95 range (0.95+ would mean a leak), above every peer on the same split, and calibrated."""
    ts = assemble(params, crm=crm)
    split = make_split(ts.created_at, pd.Series(ts.y), params.evaluate.split, params.model.seed)
    peers = fit_peers(ts.features, ts.y, split, params)
    table = compare({LEADSCORE: fit_model(ts, split, params), **peers}, ts.features, ts.y, split, params).table
    assert not ts.leaks
    assert 0.86 <= table.loc[LEADSCORE, "roc_auc"] < 0.95
    assert table.loc[LEADSCORE, "roc_auc"] > table.drop(index=LEADSCORE)["roc_auc"].max()
    assert table.loc[LEADSCORE, "ece"] <= 0.04
