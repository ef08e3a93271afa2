"""The OpenAPI document at GET /docs.json (and a built bento's apis/openapi.yaml, serving.bento):
what a CRM integration codes against.

BentoML 1.4 generates one from the service but offers no hook to declare an API's other answers:
it lists its own exception bodies (400 with `detail` as text, 404, 500) that this service never
sends, inlines request bodies dropping which fields may be null, and heads it with its own
boilerplate and version "None". `document` rewrites the generated document in this one place:
each JSON route's body and answers from serving.schemas, every error as ErrorResponse, a lead's
fields (required, optional, its activities') and example as the served model reads them, under the CRM's
own names (its params data.mapping).
"""

from __future__ import annotations

import copy
import re
from importlib.metadata import version

import pandas as pd
import yaml
from pydantic import BaseModel, TypeAdapter
from pydantic.json_schema import models_json_schema

from features.build import clean_text, lead_columns_read
from models.scorer import LeadScorer
from pipelines.config import DataParams, LabelParams
from pipelines.contract import LARGEST_NUMBER, LEADS, OUTCOMES
from pipelines.ingest import crm_column, numbers_not_answered, required_columns
from serving.schemas import (
    ErrorResponse,
    ExplainRequest,
    Explanation,
    Feedback,
    FeedbackReceipt,
    NAN_TEXT,
    Identifier,
    ModelInfo,
    ScoreRequest,
    ScoreResponse,
    UNREAD,
    any_case,
    id_text,
    literal,
    number_text,
)
from serving.scoring import (choices_in_words, columns_read, feedback_choices, feedback_names, outcome_names_setting,
                             quoted)
from serving.security import ACCEPTED_ENCODINGS, CARD_ID_FIELD, CARD_PATH, ENCODINGS, MAX_CODINGS, OPEN_PATHS

REF = "#/components/schemas/{model}"

# The page at / for a browser: Swagger UI (BentoML's files, which load ./docs.json) without BentoML's own page,
# which also loaded Google Tag Manager into the browser of everyone who opened it.
PAGE = """<!DOCTYPE html>
<html lang="en">
<head><meta charset="UTF-8"><title>leadscore API</title>
<link rel="stylesheet" type="text/css" href="./static_content/swagger-ui.css"></head>
<body><div id="swagger-ui"></div>
<script src="./static_content/swagger-ui-bundle.js" charset="UTF-8"></script>
<script src="./static_content/swagger-ui-standalone-preset.js" charset="UTF-8"></script>
<script src="./static_content/swagger-initializer.js" charset="UTF-8"></script></body>
</html>
"""

DESCRIPTION = (
    "Lead scoring for the CRM: POST /score for scores, tiers and reasons; POST /feedback for sales "
    "decisions; POST /explain and GET /model to look inside. Every route but the health ones and this document "
    "(and its page at /) needs the header `Authorization: Bearer <key>`. Every error is JSON in one shape "
    "(ErrorResponse), except that a rep's browser gets the score card's 401, 404 and 503 as HTML pages and a "
    "request the server does not answer within its traffic timeout (60 s unless configured) gets BentoML's own 504, "
    '`{"error": "Not able to process the request in N seconds"}` (N the timeout) without `detail` (a /feedback '
    "retry with the same event_id is safe). A JSON body may be sent compressed "
    "(`Content-Encoding: gzip` or `deflate`), and in another charset than UTF-8 when `Content-Type` names it "
    "(`application/json; charset=iso-8859-1`). Guide: serving/README.md."
)

BAD_JSON = ("Not JSON of the documented shape or types (e.g. a number where a date belongs, an object or a list in a "
            "field the model reads, or NaN, Infinity or "
            "-Infinity, no JSON values: send null for none); `detail` names "
            "each field (`body` for JSON that does not parse, or for bytes that are not text in the body's charset: "
            "UTF-8 unless Content-Type names another). Also a compressed body that is not valid data of its "
            "Content-Encoding (e.g. not gzip).")
NO_KEY = "Missing or wrong API key (header `Authorization: Bearer <key>`)."
TOO_LARGE = "The body is larger than serving.max_body_bytes (a compressed body: as sent, or once decompressed)."
NOT_JSON = ("The body was not sent as `Content-Type: application/json`, names a charset the service does not know, "
            "or was compressed with a Content-Encoding other than gzip or deflate (e.g. br, zstd), or with more "
            f"than {MAX_CODINGS} codings listed.")
# The header a JSON route's body may be compressed with (serving.security.BodyLimit decompresses it).
CONTENT_ENCODING = {
    "name": "Content-Encoding", "in": "header", "required": False,
    "schema": {"type": "string", "enum": [*ENCODINGS, "identity"]},
    "description": f"Send the body {ACCEPTED_ENCODINGS} (e.g. a large batch); serving.max_body_bytes holds for it "
                   f"decompressed too. Another encoding, or more than {MAX_CODINGS} listed, is a 415.",
}
# The score card's refusals as serving.security.from_browser tells a rep's browser from an API client.
TO_A_BROWSER = ("A browser (no Authorization header, an Accept that does not ask for JSON alone) gets a page "
                "saying so instead.")
NOT_STORED = ("The store refused or failed the write (e.g. made read-only, or its database unreachable, since the "
              "service started); `error` names the store and the database's reason. Nothing was stored: send it "
              "again after the seconds its Retry-After header gives.")
REFUSED = ("Content the data contract refuses (e.g. no lead id, an unparsable date, a date out of range); "
           "`detail` names each field.")

# Each JSON route of the service: its body, its answers (status -> model, description) and its errors.
ROUTES: dict[str, tuple[type[BaseModel], dict[int, tuple[type[BaseModel], str]], dict[int, str]]] = {
    "/score": (
        ScoreRequest,
        {200: (ScoreResponse, "One score per lead, in request order; each is logged. `warnings` names each field "
                              "sent under a name that looks like one the model reads (\"Industry\" for industry), which "
                              "it scored without, and a lead's activities dated after the time it is scored as of "
                              "(left out) or more than a day before it was created (counted); [] when none.")},
        {400: BAD_JSON, 401: NO_KEY, 413: TOO_LARGE[:-1] + ", or holds more leads than serving.max_batch.",
         415: NOT_JSON, 422: REFUSED + " Nothing was scored or logged.", 503: NOT_STORED},
    ),
    "/explain": (
        ExplainRequest,
        {200: (Explanation, "Every factor of the lead's score, and its score, tier, likely rejection reason, "
                           "whether it is past the label horizon, the values the model never saw in training and the "
                           "warnings as POST /score answers them (not logged).")},
        {400: BAD_JSON, 401: NO_KEY, 413: TOO_LARGE, 415: NOT_JSON, 422: REFUSED},
    ),
    "/feedback": (
        Feedback,
        {201: (FeedbackReceipt, "Stored (on disk before this answer); `warnings` names each value it was stored "
                                "without (an amount the service cannot read, a reason or amount sent under its name "
                                "written differently), [] when none."),
         200: (FeedbackReceipt, "This event_id was already stored with the same decision (a retry): nothing changed.")},
        {400: BAD_JSON, 401: NO_KEY,
         409: "This event_id is already stored with another decision; the stored one is kept. "
              "A new decision needs a new event_id.",
         413: TOO_LARGE, 415: NOT_JSON,
         422: "A decision the service cannot take (e.g. an event_id, lead_id, status or decided_at that is blank "
              "or one of data.missing_values, an id over 255 characters or with a line break, an unknown status, a "
              "reason that is not a reason code, a decided_at unreadable or in the future, a field sent under its CRM "
              "name and its own with different values; absent or null, a "
              "required field is a 400, as is a value of the wrong type); `detail` names each field and what it "
              "takes.",
         503: NOT_STORED},
    ),
}

# Score-card query parameters: the lead id a path cannot carry, and a signed link's (POST /score's card_url),
# which opens the card without the API key.
CARD_QUERY_PARAMETERS = [
    {"name": CARD_ID_FIELD, "in": "query", "required": False, "schema": {"type": "string"},
     "description": "The lead id when it is \".\" or \"..\", or holds \"/\", which a path cannot carry (browsers "
                    "resolve a dot segment as a folder step; proxies refuse a %2F, or decode it and resolve the path): "
                    f"GET /leads/?{CARD_ID_FIELD}=.. or /leads/?{CARD_ID_FIELD}=a%2Fb with the path's id empty. The path's id, when given, wins."},
    {"name": "expires", "in": "query", "required": False, "schema": {"type": "integer"},
     "description": "Unix seconds the link is valid until (with signature: no API key needed)."},
    {"name": "signature", "in": "query", "required": False, "schema": {"type": "string"},
     "description": "The link's signature, as card_url carries it."},
]


def _answer(description: str, model: type[BaseModel]) -> dict:
    return {"description": description,
            "content": {"application/json": {"schema": {"$ref": REF.format(model=model.__name__)}}}}


def _errors(statuses: dict[int, str]) -> dict[str, dict]:
    return {str(status): _answer(text, ErrorResponse) for status, text in sorted(statuses.items())}


def _crm_names(row: dict, table: str, data: DataParams) -> dict:
    """A contract-named example row under the CRM's field names (data.mapping), as a CRM sends it."""
    return {crm_column(data, table, column): value for column, value in row.items()}


DATE = {"type": "string", "description": "ISO 8601 date, or date and time, as text (UTC when no zone is given)."}
# A text field takes a number or true/false as its text ("5", "true"); a number field takes a number's text ("320"),
# as an export's cells.
TEXT = {"type": ["string", "number", "boolean", "null"]}
NUMBER = {"type": ["number", "string", "null"]}


def _number_range(non_negative: bool) -> dict:
    """A number field's bounds as JSON Schema words (a number's, not its text's): smaller than
    contract.LARGEST_NUMBER in size, and 0 or more where the field counts something."""
    return {"minimum": 0, "exclusiveMaximum": LARGEST_NUMBER} if non_negative else {
        "exclusiveMinimum": -LARGEST_NUMBER, "exclusiveMaximum": LARGEST_NUMBER}


def _number_labels(column: str, non_negative: bool, data: DataParams) -> list[str]:
    """The data.value_maps labels of a lead's number field that translate to a number it takes (a label mapped to
    "" or to text that is no number is refused by the service, its translation not read as missing again)."""
    taken = re.compile(number_text(non_negative, [NAN_TEXT]))
    return [label.strip() for label, value in data.value_maps.get(column, {}).items()
            if label.strip() and value.strip() and taken.search(value)]


def _number_field(column: str, non_negative: bool, data: DataParams) -> tuple[dict, str]:
    """A number field's schema as ingest.prepare_table reads it for `data` (a lead's, feedback's amount): a number or
    its text in range, a data.value_maps label translating to one; blank, data.missing_values and NaN are none, and
    a number is none when data.missing_values lists its text (-1 where "-1" is listed), whatever range the field
    takes. And what it takes, in words, for its description."""
    none = [NAN_TEXT, *(literal(m.strip()) for m in data.missing_values if m.strip())]
    none_numbers = numbers_not_answered(data)
    listed = [m.strip() for m in data.missing_values if m.strip()]
    not_known = (f"null, blank, NaN or data.missing_values' {quoted(listed)}" if listed else "null, blank or NaN") + (
        f" ({', '.join(none_numbers)} also as a JSON number)" if none_numbers else "")
    labels = _number_labels(column, non_negative, data)
    in_range = _number_range(non_negative)
    schema = {**NUMBER, **({"anyOf": [in_range, {"enum": [float(n) for n in none_numbers]}]} if none_numbers else in_range),
              "pattern": number_text(non_negative, none + [*map(any_case, labels)])}
    words = (f"A number or its text (\"320\"),{' 0 or more,' if non_negative else ''} smaller than {LARGEST_NUMBER:g} "
             "in size" + (f", or a CRM label data.value_maps translates (any letter case): {quoted(labels)}" if labels
                          else "") + f"; {not_known}: not known")
    return schema, words


def _lead_fields(scorer: LeadScorer) -> dict[str, dict]:
    """A lead's optional fields as /score reads them (`serving.scoring.columns_read`: contract.LEADS and what the
    model's features read), under the CRM's names, each saying whether the served model uses it."""
    data, features = scorer.data, scorer.features
    read = lead_columns_read(features)
    fields = {}
    for column in [c for c in columns_read(scorer, "leads") if c not in LEADS.required]:
        use = "a feature of this model" if column in read else "not read by this model, but checked"
        if column in LEADS.numeric or column in features.numeric:
            schema, words = _number_field(column, column in LEADS.non_negative or column in features.non_negative, data)
            fields[crm_column(data, "leads", column)] = {**schema, "description": f"{words} ({use})."}
        else:
            fields[crm_column(data, "leads", column)] = {
                **TEXT, "description": f"Text (true/false reads as the text \"true\"/\"false\"); null or blank: not known ({use})."}
    return fields


def _activity_item(scorer: LeadScorer) -> dict:
    """One activity's fields under the CRM's names (data.mapping.activities); the lead id comes from the lead."""
    data, types = scorer.data, scorer.features.activity_types
    occurred_at, activity = crm_column(data, "activities", "occurred_at"), crm_column(data, "activities", "activity")
    return {
        "type": "object",
        "properties": {
            occurred_at: {**DATE, "description": "When it happened: " + DATE["description"]},
            activity: {"type": ["string", "number", "boolean"],
                       "description": f"What happened; the model counts {types} (any other is accepted and not counted)."},
            crm_column(data, "activities", "detail"): {**TEXT, "description": "Free text, not read by the model."},
        },
        "required": [occurred_at, activity],
        "additionalProperties": {"description": UNREAD},
    }


def _example_value(scorer: LeadScorer, column: str, demo: dict):
    """The demo CRM's value of a lead column, or for a category the model never saw it as (compared as the model
    compares it, `clean_text`: "US" is its "us"), one it saw in training, as the export spelt it (an X Education model
    knows no "US"); None when there is neither."""
    learned = scorer.encoder.learned.get(column, {}) if scorer.encoder else {}
    value = demo.get(column)
    if not learned or clean_text(pd.Series([value], dtype=object)).iloc[0] in learned:
        return value
    level = next(iter(learned))
    return (scorer.category_spellings or {}).get(column, {}).get(level, level)


def _schemas(scorer: LeadScorer) -> dict[str, dict]:
    """Every model the routes name, as components; a lead's fields and example under the CRM's names, as the
    served model reads them."""
    data = scorer.data
    models = [(body, "validation") for body, _, _ in ROUTES.values()]
    models += [(model, "serialization") for _, answers, _ in ROUTES.values() for model, _ in answers.values()]
    models += [(ErrorResponse, "serialization"), (ModelInfo, "serialization")]
    _, top = models_json_schema(models, ref_template=REF)
    schemas = top["$defs"]
    lead = schemas["Lead"]
    required = required_columns(LEADS, data)  # an undated export's model reads no creation date
    lead["required"] = [crm_column(data, "leads", column) for column in required]
    documented = {
        "lead_id": {**TypeAdapter(Identifier).json_schema(), "pattern": id_text(data.missing_values),
                    "description": "The CRM's id of the lead."},
        "created_at": {**DATE, "description": "When the lead was created: " + DATE["description"]},
    }
    activities = lead["properties"]["activities"]
    if scorer.reads_activities:
        activities["anyOf"][0]["items"] = _activity_item(scorer)
    else:
        activities["description"] += " This model reads no activities: they are ignored."
    lead["properties"] = {**{crm_column(data, "leads", c): documented[c] for c in required}, **_lead_fields(scorer),
                          "activities": activities}
    demo = lead["example"]
    example = {c: _example_value(scorer, c, demo) for c in [*required, *lead_columns_read(scorer.features)]}
    example = _crm_names({c: v for c, v in example.items() if v is not None}, "leads", data)
    if scorer.reads_activities:
        example["activities"] = [_crm_names(activity, "activities", data) for activity in demo["activities"]]
    lead["example"] = example
    # The fields never_seen may name: the served model's, under the CRM's names, as a lead's are documented.
    categories = [crm_column(data, "leads", column) for column in scorer.features.categorical]
    for answer in ("LeadScore", "Explanation"):
        never_seen = schemas[answer]["properties"]["never_seen"]
        never_seen["description"] += (f" With this model it may name {quoted(categories)}." if categories
                                      else " This model reads no field as a category: always {} or null.")
        never_seen["anyOf"][0]["propertyNames"] = {"enum": categories}
    # The activity types the served model reads, which unread_activity_types never names.
    labels = list(data.value_maps.get("activity", {}))
    read = (f" This model reads {quoted(scorer.features.activity_types)}"
            + (f", and the service translates the CRM labels {quoted(labels)}." if labels else ".")
            if scorer.reads_activities else " This model reads no activities: every type sent is listed.")
    for answer in ("LeadScore", "Explanation"):
        schemas[answer]["properties"]["unread_activity_types"]["description"] += read
    return schemas


def _feedback_choices(feedback: dict, data: DataParams, label: LabelParams) -> None:
    """Feedback's status and reason as the service takes them (serving.scoring.feedback_choices), listed as
    examples, not as an enum: any letter case and the CRM's own labels are taken too."""
    for name, (values, labels, setting) in feedback_choices(data, label).items():
        field = feedback["properties"][name]
        field["description"] += f" Takes {choices_in_words(values, labels, setting)}."
        field["examples"] = [*values, *labels]


def _feedback_crm_names(feedback: dict, data: DataParams) -> None:
    """Each decision field also under the CRM's names the service's data.mapping.outcomes declares for it
    (serving.scoring.feedback_names, which feedback_fields reads them by), documented as the field itself is; a
    required field is then required under one of its names."""
    properties, alternatives, setting = feedback["properties"], [], outcome_names_setting(data)
    read_under = feedback_names(data)
    for column in OUTCOMES.columns:
        names = [name for name, read_as in read_under.items() if read_as == column and name != column]
        if not names:
            continue
        field = properties[column]
        for name in names:
            properties[name] = {**field, "description": f"{column} under the CRM's name ({setting}), read as "
                                f"{column} is; send one of them. {field.get('description', '')}".rstrip()}
        field["description"] = (f"{field.get('description', '')} Also read under the CRM's name "
                                f"{quoted(names)} ({setting}); send one of them.").lstrip()
        if column in feedback.get("required", []):
            feedback["required"].remove(column)
            alternatives.append({"anyOf": [{"required": [name]} for name in [column, *names]]})
    if alternatives:
        feedback["allOf"] = alternatives


def _referenced(node, found: set[str]) -> set[str]:
    if isinstance(node, dict):
        ref = node.get("$ref", "")
        if isinstance(ref, str) and ref.startswith(REF.format(model="")):
            found.add(ref.rpartition("/")[2])
        for value in node.values():
            _referenced(value, found)
    elif isinstance(node, list):
        for value in node:
            _referenced(value, found)
    return found


def document(generated: dict, scorer: LeadScorer, data: DataParams, label: LabelParams) -> dict:
    """The OpenAPI document of the real API, from the one BentoML generated (`Service.openapi_spec`), for the
    served model (`scorer`: the fields it reads, under its mapping's names) and the statuses and reasons
    /feedback takes (the service's params `data` and `label`)."""
    spec = copy.deepcopy(generated)
    # pydantic writes JSON Schema 2020-12 (null as a type, numeric exclusiveMaximum): OpenAPI 3.1's dialect
    spec["openapi"] = "3.1.0"
    spec["info"] = {"title": spec["info"]["title"], "version": version("leadscore"), "description": DESCRIPTION}
    paths = spec["paths"]
    for route, (body, answers, errors) in ROUTES.items():
        paths[route]["post"]["requestBody"] = {
            "required": True, "content": {"application/json": {"schema": {"$ref": REF.format(model=body.__name__)}}}}
        paths[route]["post"]["parameters"] = [*paths[route]["post"].get("parameters", []), CONTENT_ENCODING]
        paths[route]["post"]["responses"] = {
            **{str(status): _answer(text, model) for status, (model, text) in answers.items()}, **_errors(errors)}
    for route, item in paths.items():
        for operation in item.values():
            if route in OPEN_PATHS:
                operation["security"] = []
            elif route not in ROUTES:  # the pages: no request body or parameter for FastAPI to refuse (422)
                operation["responses"].pop("422", None)
                operation["responses"].update(_errors({401: NO_KEY}))
    card = paths[CARD_PATH + "{lead_id}"]["get"]
    card["parameters"] += CARD_QUERY_PARAMETERS
    card["responses"]["401"] = _answer(NO_KEY[:-1] + ", or a signed link that expired or is for another lead. "
                                       + TO_A_BROWSER, ErrorResponse)
    card["responses"]["404"] = _answer("The lead was never scored, or the request names no lead. " + TO_A_BROWSER,
                                       ErrorResponse)
    card["responses"]["503"] = _answer("The score log cannot be read right now; `error` names the store and the "
                                       "database's reason. Try again after the seconds its Retry-After header gives. "
                                       + TO_A_BROWSER, ErrorResponse)
    for status in ("401", "404", "503"):
        card["responses"][status]["content"]["text/html"] = {"schema": {"type": "string"}}
    paths["/reload"]["post"]["responses"].update(_errors({409: "A built bento serves the model packaged with "
                                                               "it: deploy a new bento instead."}))
    schemas = {**spec.get("components", {}).get("schemas", {}), **_schemas(scorer)}
    _feedback_choices(schemas["Feedback"], data, label)
    # An id data.missing_values reads as none is refused, as /score refuses a lead's (the service's params: `data`).
    for name in ("event_id", "lead_id"):
        schemas["Feedback"]["properties"][name]["pattern"] = id_text(data.missing_values)
    # The amount as an export's outcomes row reads it (serving.scoring.feedback_amount), for the service's params.
    amount, words = _number_field("amount", "amount" in OUTCOMES.non_negative, data)
    field = schemas["Feedback"]["properties"]["amount"]
    schemas["Feedback"]["properties"]["amount"] = {**amount, "description": f"{field['description']} {words}."}
    _feedback_crm_names(schemas["Feedback"], data)
    used, pending = set(), _referenced(paths, set())
    while pending:  # BentoML's own exception and IO models are no longer referenced: left out
        name = pending.pop()
        used.add(name)
        pending |= _referenced(schemas.get(name, {}), set()) - used
    spec["components"] = {
        "schemas": {name: schemas[name] for name in sorted(used) if name in schemas},
        "securitySchemes": {"apiKey": {"type": "http", "scheme": "bearer",
                                       "description": "The key set in params serving.api_key_env's variable."}},
    }
    spec["security"] = [{"apiKey": []}]
    return spec


class _NoAliases(yaml.SafeDumper):
    """Writes a value held in several places of the document (a lead field's types, a route's Content-Encoding
    header) out at each: PyYAML's default anchor and alias (&id001, *id001) is mishandled by some OpenAPI tools."""

    def ignore_aliases(self, data) -> bool:
        return True


def as_yaml(spec: dict) -> str:
    """The document as a bento's apis/openapi.yaml holds it: YAML that reads back as GET /docs.json's JSON."""
    return yaml.dump(spec, Dumper=_NoAliases, sort_keys=False)
