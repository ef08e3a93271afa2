"""The OpenAPI document a CRM integration codes against, for a CRM whose field names differ from the contract's."""

from __future__ import annotations

import jsonschema

from models.scorer import LeadScorer
from pipelines.config import PROJECT_ROOT, load_params
from serving import openapi
from serving.service import LeadScoreService

MAPPING = {"leads": {"Lead ID": "lead_id", "Created Date": "created_at", "Industry": "industry"},
           "activities": {"Lead ID": "lead_id", "Activity Date": "occurred_at"}}


def test_the_documented_lead_example_is_a_lead_under_the_crms_field_names():
    """An integrator copies the example: under the contract's names it missed the required "Lead ID" (a 422)."""
    params = load_params(PROJECT_ROOT / "params.yaml", overrides={"data.mapping": MAPPING})
    # The document reads only the scorer's params (and category levels, here none): no fitted model needed.
    scorer = LeadScorer(params.data, params.features, None, None, None, 1.0, 0.0, None, None, None)
    lead = openapi.document(LeadScoreService.openapi_spec.asdict(), scorer, params.data, params.label)["components"]["schemas"]["Lead"]
    example = lead["example"]
    jsonschema.validate(example, lead)
    assert {"Lead ID", "Created Date", "Industry", "email"} <= set(example)
    assert not {"lead_id", "created_at", "industry"} & set(example)
    assert all(set(activity) == {"Activity Date", "activity"} for activity in example["activities"])
    # Every field /score reads is a property under the CRM's name, not only in the example.
    assert {"Lead ID", "Created Date", "Industry", "email", "employees", "activities"} <= set(lead["properties"])
    activity = lead["properties"]["activities"]["anyOf"][0]["items"]
    assert activity["required"] == ["Activity Date", "activity"] and "detail" in activity["properties"]
