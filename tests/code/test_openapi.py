"""The OpenAPI document a CRM integration codes against, for a CRM whose field names differ from the contract's."""

from __future__ import annotations

import json
import random
import re

import jsonschema
import pandas as pd
import yaml

from models.encoding import CategoryEncoder
from models.scorer import LeadScorer
from pipelines.config import PROJECT_ROOT, ParamsError, load_params
from pipelines.contract import LARGEST_NUMBER
from pipelines.ingest import prepare_table
from serving import openapi, schemas
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



def test_the_documented_lead_example_keeps_a_demo_value_the_model_knows_in_another_letter_case():
    """The model compares categories in lower case: the demo's country "US" was taken for one it never saw ("us"),
    and the example's lead came from the first country it learned, "au". A value it never saw is replaced by one it
    learned as the export spelt it ("Partner", not "partner")."""
    params = load_params(PROJECT_ROOT / "params.yaml")
    training = pd.DataFrame({"industry": ["software"] * 20, "country": ["au"] * 10 + ["us"] * 10,
                             "lead_source": ["partner"] * 20, "campaign": ["blog"] * 20})
    encoder = CategoryEncoder(list(training.columns), []).fit(training)
    scorer = LeadScorer(params.data, params.features, encoder, None, None, 1.0, 0.0, None, None, None,
                        category_spellings={"lead_source": {"partner": "Partner"}})
    example = openapi.document(LeadScoreService.openapi_spec.asdict(), scorer, params.data,
                               params.label)["components"]["schemas"]["Lead"]["example"]
    assert (example["country"], example["industry"], example["lead_source"], example["campaign"]) == (
        "US", "software", "Partner", "blog")


def test_the_documented_never_seen_field_names_the_models_category_fields_as_the_crm_does():
    """A score's never_seen names a field as the request did ("Industry"): /docs.json says which, under those names,
    for /score's and /explain's alike."""
    params = load_params(PROJECT_ROOT / "params.yaml", overrides={"data.mapping": MAPPING})
    scorer = LeadScorer(params.data, params.features, None, None, None, 1.0, 0.0, None, None, None)
    spec = openapi.document(LeadScoreService.openapi_spec.asdict(), scorer, params.data, params.label)
    for answer in ("LeadScore", "Explanation"):
        never_seen = spec["components"]["schemas"][answer]["properties"]["never_seen"]
        assert "never saw in training" in never_seen["description"] and "'Industry'" in never_seen["description"]
        for body, documented in [({"Industry": "space"}, True), ({}, True), (None, True), ({"industry": "space"}, False),
                                 ({"Created Date": "2025-12-01"}, False)]:
            assert jsonschema.Draft202012Validator(never_seen).is_valid(body) == documented, (answer, body)
    assert "never_seen" in spec["components"]["schemas"]["Explanation"]["required"]


def test_the_documented_explanation_has_the_tier_and_likely_rejection_reason_a_score_has():
    """A panel built on /explain alone shows the tier and the likely rejection reason: /docs.json documents them on
    /explain's answer as on /score's, in the same words, and says they are the same."""
    params = load_params(PROJECT_ROOT / "params.yaml")
    scorer = LeadScorer(params.data, params.features, None, None, None, 1.0, 0.0, None, None, None)
    schemas = openapi.document(LeadScoreService.openapi_spec.asdict(), scorer, params.data, params.label)["components"]["schemas"]
    explanation, score = schemas["Explanation"], schemas["LeadScore"]
    for name in ("probability", "score", "tier", "likely_rejection_reason", "likely_rejection_probability"):
        assert name in explanation["required"], name
        assert explanation["properties"][name]["description"].endswith("The same as POST /score answers for the lead.")
        assert {k: v for k, v in explanation["properties"][name].items() if k != "description"} == \
            {k: v for k, v in score["properties"][name].items() if k != "description"}, name
        assert explanation["properties"][name]["description"].startswith(score["properties"][name]["description"])


def test_the_documented_unread_activity_types_field_names_the_activity_types_the_model_reads():
    """A score's unread_activity_types lists the activity types the lead sent that the model does not read: /docs.json
    documents it on /score's and /explain's answers, with the types this model reads and the CRM labels translated."""
    overrides = {"data.value_maps": {"activity": {"Requested Demo": "demo_request"}}}
    params = load_params(PROJECT_ROOT / "params.yaml", overrides=overrides)
    scorer = LeadScorer(params.data, params.features, None, None, None, 1.0, 0.0, None, None, None)
    undated = load_params(PROJECT_ROOT / "params.yaml", overrides={"features.activity_types": []})
    no_activities = LeadScorer(undated.data, undated.features, None, None, None, 1.0, 0.0, None, None, None)
    for served, words in [(scorer, "reads 'page_view', "), (scorer, "the CRM labels 'Requested Demo'"),
                          (no_activities, "This model reads no activities")]:
        spec = openapi.document(LeadScoreService.openapi_spec.asdict(), served, served.data, params.label)
        for answer in ("LeadScore", "Explanation"):
            schema = spec["components"]["schemas"][answer]
            unread = schema["properties"]["unread_activity_types"]
            assert "does not read" in unread["description"] and words in unread["description"], unread["description"]
            assert "unread_activity_types" in schema["required"]
            for body, documented in [([], True), (["webinar_attend"], True), (None, False), ({"webinar_attend": 1}, False)]:
                assert jsonschema.Draft202012Validator(unread).is_valid(body) == documented, (answer, body)


# Number texts at contract.LARGEST_NUMBER (1e15), written as a CRM or a spreadsheet may write them.
NEAR_LARGEST = ["999999999999999", "999999999999999.9374", "999999999999999.9375", "1e15", "1E+015", "10e14", "0.5e15",
                "0.9999999999999999375e15", "9.999999999999999e14", "9.999999999999999375e14", "99999999999999.99375e1",
                "999999999999999.9375e-0", "999999999999999.9375e-1", "1e-400", "0" * 400 + "1", "9" * 400, "0.0e99"]


def test_a_number_fields_pattern_takes_the_text_whose_size_the_service_takes():
    """/docs.json took "1e15" and "9" * 400 (its pattern read digits, not size), which the service refuses as
    out of range: its verdict is now float64's, rounding included (999999999999999.9375 reads as 1e15)."""
    pattern = re.compile(schemas.number_text(non_negative=False))
    for text in NEAR_LARGEST + [f"-{text}" for text in NEAR_LARGEST]:
        assert bool(pattern.search(text)) == (abs(float(text)) < LARGEST_NUMBER), text
    rng = random.Random(3)
    for _ in range(3000):  # never takes a text the service refuses, however its digits and exponent are spread
        whole, fraction = "".join(rng.choices("09", k=rng.randint(0, 18))), "".join(rng.choices("0937", k=rng.randint(0, 6)))
        text = f"{whole or '0'}.{fraction}e{rng.randint(-3, 17)}"
        assert not pattern.search(text) or float(text) < LARGEST_NUMBER, text


# data.value_maps.employees a RevOps admin may write: labels and codes renamed to a number, to "" (not known), to
# text, a number label the field refuses; and what a CRM may send for employees.
EMPLOYEE_MAPS = [{"11-50": "30", "Enterprise": "5e3"}, {"1": "10", "-0": "7"}, {"Unknown": ""}, {"5": "lots"},
                 {"-5": "0"}, {"1e15": "9"}, {"Huge": "1e15"}, {"None": "NaN"}, {"N/A": "0"}]
EMPLOYEES_SENT = [5, 1, -5, 1e15, 0, "5", " 1 ", "-5", "-0", "1e15", "11-50", " ENTERPRISE ", "unknown", "Huge", "none",
                  "N/A", "lots", "Mid-market"]


def test_docs_json_and_the_service_read_a_number_fields_value_map_alike_whenever_params_load():
    """A map that loads leaves a CRM integration nothing /docs.json and the service judge apart: `"5": "lots"` had
    the service refuse the number 5 that /docs.json took, and `"-5": "0"` the reverse (params now refuse both)."""
    loaded = 0
    for value_map in EMPLOYEE_MAPS:
        try:
            params = load_params(PROJECT_ROOT / "params.yaml", overrides={"data.value_maps": {"employees": value_map}})
        except ParamsError:
            continue
        loaded += 1
        scorer = LeadScorer(params.data, params.features, None, None, None, 1.0, 0.0, None, None, None)
        spec = openapi.document(LeadScoreService.openapi_spec.asdict(), scorer, params.data, params.label)
        field = spec["components"]["schemas"]["Lead"]["properties"]["employees"]
        for sent in EMPLOYEES_SENT:
            documented = jsonschema.Draft202012Validator(field).is_valid(sent)
            lead = pd.DataFrame.from_records([{"lead_id": "L1", "created_at": "2025-12-01", "employees": sent}])
            _, problems = prepare_table(lead, "leads", params.data, numeric=params.features.numeric,
                                        non_negative=params.features.non_negative)  # as LeadScorer.build reads a lead
            assert documented == (problems == []), (value_map, sent, problems)
    assert loaded == 3


# data.missing_values a CRM may use for an unknown headcount (as text and as numbers), and what it may send then.
NUMBERS_NOT_KNOWN = ["", "N/A", "-1", "0", "-2.50", "1e3"]
SENT_FOR_NOT_KNOWN = [-1, -1.0, "-1", " -1 ", "-1.0", 0, -0.0, -2.5, "-2.50", "-2.5", 1000, "1e3", -3]


def test_docs_json_and_the_service_read_a_number_data_missing_values_lists_alike():
    """A JSON -1 where data.missing_values lists "-1" is not known to the service, which /docs.json refused as
    below employees' minimum: only the text "-1" was documented. A number matches a listed text written as an
    export writes that number ("-1", never "-1.0" or "1e3"), and /docs.json lists just those numbers."""
    params = load_params(PROJECT_ROOT / "params.yaml", overrides={"data.missing_values": NUMBERS_NOT_KNOWN})
    scorer = LeadScorer(params.data, params.features, None, None, None, 1.0, 0.0, None, None, None)
    field = openapi.document(LeadScoreService.openapi_spec.asdict(), scorer, params.data, params.label)[
        "components"]["schemas"]["Lead"]["properties"]["employees"]
    assert "(-1, 0 also as a JSON number)" in field["description"]
    for sent in SENT_FOR_NOT_KNOWN:
        documented = jsonschema.Draft202012Validator(field).is_valid(sent)
        lead = pd.DataFrame.from_records([{"lead_id": "L1", "created_at": "2025-12-01", "employees": sent}])
        _, problems = prepare_table(lead, "leads", params.data, numeric=params.features.numeric,
                                    non_negative=params.features.non_negative)  # as LeadScorer.build reads a lead
        assert documented == (problems == []), (sent, problems)


def test_docs_json_says_a_json_body_may_be_sent_gzip_compressed():
    """CRM webhook clients gzip large batches; the service decompresses them (test_service's compressed tests)."""
    params = load_params(PROJECT_ROOT / "params.yaml")
    scorer = LeadScorer(params.data, params.features, None, None, None, 1.0, 0.0, None, None, None)
    spec = openapi.document(LeadScoreService.openapi_spec.asdict(), scorer, params.data, params.label)
    assert "Content-Encoding: gzip" in spec["info"]["description"]
    for route in ("/score", "/explain", "/feedback"):
        operation = spec["paths"][route]["post"]
        (header,) = [p for p in operation["parameters"] if p["name"] == "Content-Encoding"]
        assert header["in"] == "header" and {"gzip", "deflate", "identity"} <= set(header["schema"]["enum"])
        assert "decompressed" in operation["responses"]["413"]["description"]
        assert "gzip" in operation["responses"]["415"]["description"]


def test_docs_json_says_a_json_nan_or_infinity_is_a_400():
    """The service refuses them in any field (serving.schemas._finite); the 400's words named only shapes and types."""
    params = load_params(PROJECT_ROOT / "params.yaml")
    scorer = LeadScorer(params.data, params.features, None, None, None, 1.0, 0.0, None, None, None)
    spec = openapi.document(LeadScoreService.openapi_spec.asdict(), scorer, params.data, params.label)
    for route in ("/score", "/explain", "/feedback"):
        assert "NaN, Infinity or -Infinity" in spec["paths"][route]["post"]["responses"]["400"]["description"]

def test_a_bentos_openapi_yaml_writes_every_value_out_with_no_yaml_alias():
    """A lead field's types and the never_seen field names are one Python list in several places of the document:
    apis/openapi.yaml held them as &id001 anchors and *id001 aliases, which some OpenAPI tools mishandle."""
    params = load_params(PROJECT_ROOT / "params.yaml")
    scorer = LeadScorer(params.data, params.features, None, None, None, 1.0, 0.0, None, None, None)
    spec = openapi.document(LeadScoreService.openapi_spec.asdict(), scorer, params.data, params.label)
    written = openapi.as_yaml(spec)
    assert not re.search(r"[&*]id\d", written), re.search(r".*[&*]id\d.*", written)[0]
    assert yaml.safe_load(written) == json.loads(json.dumps(spec))  # as GET /docs.json answers it
