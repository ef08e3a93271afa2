"""Request and response bodies of the scoring service (they drive its OpenAPI page at /docs.json).

A lead arrives as the CRM stores it: its own field names (params data.mapping.leads turns them into
the contract) and JSON values. Field names are therefore not fixed here, nor which of them the served model
reads: a nested object or list in a field it reads is refused with its path by serving.scoring.values_read,
and ignored in any other field.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from decimal import Decimal
from typing import Annotated, Any

import pandas as pd
from pydantic import (AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, StringConstraints, WithJsonSchema,
                      model_validator)
from pydantic.json_schema import SkipJsonSchema

from models.encoding import LEARNT_BY_A_RETRAIN
from pipelines.contract import LARGEST_NUMBER, NUMBER_TEXT
from pipelines.ingest import DATE_FORM, as_plain_text


def _finite(value: Any) -> Any:
    """The value, refused when it is a number JSON has no such value for: NaN, Infinity and -Infinity, which Python's
    json writes and the service's JSON reader takes (as it reads 1e309, too large for a float, as Infinity). Read
    on, a text field would hold the category "-inf" and a number field no value for NaN."""
    if isinstance(value, float) and not math.isfinite(value):
        written = "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
        raise ValueError(f"expected a finite number, not {written} (JSON has no NaN or Infinity; a number beyond "
                         "1.8e308 reads as Infinity): send null for no value")
    return value


def plain_value(value: Any) -> Any:
    """The value of a CRM field the served model reads, refused when a table cell cannot hold it: an object, a list
    or a number that is not finite (`_finite`). Which fields that is, the schema cannot know: serving.scoring.values_read
    applies it, for the served model's mapping and features."""
    if isinstance(value, (dict, list)):
        raise ValueError(f"expected text, a number, true/false or null, not a JSON {'object' if isinstance(value, dict) else 'array'}")
    return _finite(value)


# What a lead or an activity may hold beside the fields /docs.json lists (serving.openapi, for the served model).
UNREAD = ("A field the served model does not read: ignored, whatever its value (a Salesforce record's attributes "
          "object, a list of tags), so a CRM record can be sent as it is; a lead's field whose name looks like one "
          "the model reads written differently (\"Industry\" for industry) is named in the answer's warnings.")
# One CRM field's value, as sent: any JSON value. A field the served model reads takes a plain one (`plain_value`).
CRMValue = Annotated[Any, WithJsonSchema({"description": UNREAD})]


def literal(text: str) -> str:
    """`text` as a JSON Schema pattern (ECMA 262, which Python's re reads alike) matching it as written: only the
    regex syntax characters escaped, as an ECMA validator in Unicode mode refuses any other escape."""
    return re.sub(r"[\^$\\.*+?()\[\]{}|/]", lambda found: "\\" + found[0], text)


# What Python's str.strip() and Arrow's utf8_trim_whitespace remove around a value read as none (blank text,
# data.missing_values, NaN, a data.value_maps label). Written out: a JSON Schema validator's \s differs by engine
# (ECMA's takes U+FEFF, Python's U+001C-U+001F).
BLANKS = r"\t-\r\x1c-\x1f \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"
# The text NaN in any letter case, which an export's number field and a lead's read as no number (ingest.prepare_table).
NAN_TEXT = "[nN][aA][nN]"


# The text of zero, with any exponent: 0 or more, also written -0 (as JSON's -0.0 is).
ZERO = r"(0+(\.0*)?|\.0+)([eE][-+]?[0-9]+)?"


def _tie_digits() -> str:
    """The digits after the leading nines of the midpoint between contract.LARGEST_NUMBER and the float64 below it
    ("9375": text from 999999999999999.9375 on reads as 1e15, which a number field refuses)."""
    below = Decimal(math.nextafter(LARGEST_NUMBER, 0))
    digits = str((below + Decimal(LARGEST_NUMBER)) / 2).replace(".", "")
    return digits[len(str(int(LARGEST_NUMBER))) - 1:]


def _at_least(digits: str) -> str:
    """A regex of digit strings that start with `digits` or with a larger run of as many digits."""
    return "|".join([digits] + [f"{digits[:i]}[{int(d) + 1}-9]" for i, d in enumerate(digits) if d != "9"])


def _below_largest() -> str:
    """A regex of an unsigned number's text (contract.UNSIGNED_NUMBER) that float64 reads as smaller than
    contract.LARGEST_NUMBER (10**15): at most 15 digits before the decimal point once a positive exponent moves it
    (999999999999999.5, 1.5e14, 0.5e15), and not rounding up to 1e15 (999999999999999.9375). A regex cannot
    weigh digits against an exponent in general: text the service reads as smaller only beyond that (0.05e16,
    1234567890123456e-3) is refused here."""
    places = len(str(int(LARGEST_NUMBER))) - 1
    tie = _at_least(_tie_digits())
    fraction = r"(\.[0-9]*)?"
    zero_whole = r"(0+(\.[0-9]*)?|\.[0-9]+)"  # 0, 0.5, .5: no digit but 0 before the decimal point

    def mantissa(whole_digits: int) -> str:
        return f"(0*[1-9][0-9]{{0,{whole_digits - 1}}}{fraction}|{zero_whole})" if whole_digits else zero_whole

    branches = [ZERO, mantissa(places) + r"[eE]-0*[1-9][0-9]*"]  # a negative exponent: smaller than the digits say
    for exponent in range(places + 1):  # as large as the digits allow, and not rounding up to LARGEST_NUMBER
        written = r"([eE][-+]?0+)?" if exponent == 0 else rf"[eE]\+?0*{exponent}"
        branches.append(f"(?!0*9{{{places - exponent}}}\\.9{{{exponent}}}({tie})){mantissa(places - exponent)}{written}")
    return f"({'|'.join(branches)})"


def number_text(non_negative: bool, taken: Iterable[str] = ()) -> str:
    """A JSON Schema pattern of a number field's text as the service reads it (contract.NUMBER_TEXT) and takes it:
    smaller than contract.LARGEST_NUMBER in size (`_below_largest`), with no '-' where the number is 0 or more
    but for -0; or blank text, or one of `taken` (regexes of further text the field reads, compared stripped)."""
    below = _below_largest()
    number = rf"\+?{below}|-{ZERO}" if non_negative else rf"[-+]?{below}"
    stripped = rf"(({'|'.join(taken)})[{BLANKS}]*)?" if taken else ""
    return rf"^([{BLANKS}]*{stripped}|[\t-\r ]*({number})[\t-\r ]*)$"


def any_case(text: str) -> str:
    """`text` as a JSON Schema pattern matching it in any letter case (ECMA 262 has no flag for it in a pattern)."""
    return "".join(f"[{c.lower()}{c.upper()}]" if len(c.lower()) == len(c.upper()) == 1 and c.lower() != c.upper()
                   else literal(c) for c in text)


# Control characters (line breaks, tabs): an id holds none, on one line, as a path segment of the score-card link
# and a log line do.
CONTROL = r"\x00-\x1f\x7f"
# The longest id (after blanks around it are removed): the store's id columns.
ID_LENGTH = 255
# The blanks pydantic removes around an id (Unicode White_Space: BLANKS but U+001C-U+001F, refused as control).
ID_BLANKS = r"\t-\r \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"


def _printable(value: str) -> str:
    if re.search(f"[{CONTROL}]", value):
        raise ValueError("an id cannot hold control characters (line breaks, tabs)")
    return value


def id_text(missing: Iterable[str] = ()) -> str:
    """A JSON Schema pattern of an id as Identifier takes it: blanks around it removed, 1 to ID_LENGTH characters
    (counted here, not by maxLength, which would count the blanks) starting and ending with one other than a blank,
    no control character but the line breaks and tabs around it; not one of `missing` (data.missing_values:
    /score and /feedback read it as no id)."""
    refused = [literal(m.strip()) for m in missing if m.strip()]
    none_of = rf"(?![{BLANKS}]*({'|'.join(refused)})[{BLANKS}]*$)" if refused else ""
    edge = f"[^{CONTROL}{ID_BLANKS}]"
    return rf"^{none_of}[{ID_BLANKS}]*{edge}([^{CONTROL}]{{0,{ID_LENGTH - 2}}}{edge})?[{ID_BLANKS}]*$"


# An id: surrounding blanks removed, never empty, at most ID_LENGTH characters, with no control character.
# /docs.json documents it by its pattern alone (`id_text`): minLength and maxLength would count the blanks.
Identifier = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=ID_LENGTH),
                       AfterValidator(_printable), WithJsonSchema({"type": "string", "pattern": id_text()})]
# An id /feedback takes: text, or a 400 of the JSON check. Text that is no id by `Identifier`'s rule (blank, too long,
# a line break) or one of data.missing_values ("N/A") is refused with a 422 by serving.scoring.feedback_event, as
# /score refuses a lead's: a well-formed value the service cannot use, as a blank or "N/A" decided_at is.
IdText = Annotated[str, WithJsonSchema({"type": "string", "pattern": id_text()})]


class Lead(BaseModel):
    """One lead under the CRM's own field names (params data.mapping.leads maps them to the data
    contract), with its activities when the CRM has them. The lead id and, unless the model was trained on an
    undated export (data.dated), the creation date are required (missing: 422); every other field is
    optional, under the CRM's column name: a JSON scalar where the model reads it, anything where it does not."""

    model_config = ConfigDict(
        extra="allow",
        json_schema_extra={
            "example": {
                "lead_id": "L0000042",
                "created_at": "2025-06-02T09:15:00Z",
                "email": "ana.lopez@granitedata.com",
                "company": "Granite Data",
                "industry": "software",
                "employees": 320,
                "country": "US",
                "job_title": "VP Engineering",
                "lead_source": "organic",
                "campaign": "pricing_page",
                "activities": [
                    {"occurred_at": "2025-06-03T10:00:00Z", "activity": "pricing_view"},
                    {"occurred_at": "2025-06-04T16:30:00Z", "activity": "demo_request"},
                ],
            }
        },
    )
    __pydantic_extra__: dict[str, CRMValue] = Field(init=False)

    activities: list[dict[str, CRMValue]] | None = Field(
        None,
        description="The lead's activities (CRM field names; the lead id is taken from the lead). "
        "Omitted or empty: no activity known.",
    )


def _date_text(value: Any) -> Any:
    number = isinstance(value, (int, float)) and not isinstance(value, bool)
    if number or (isinstance(value, str) and re.match(NUMBER_TEXT, value)):
        raise ValueError(f"expected an ISO 8601 date as text, e.g. \"2025-12-15T14:00:00Z\", not the number {value!r}")
    return value


def _blank_as_none(value: Any) -> Any:
    """Blank text is no value given, as an export's empty cell reads: CRMs send an empty field (a currency,
    a date) as ""."""
    return None if isinstance(value, str) and not value.strip() else value


def _text_date(value: Any) -> Any:
    """A date sent as text, as `_date_text` takes it; true/false, null, an object or a list is told what a date is
    (pydantic's own words for them advise sending a number as its text)."""
    if not isinstance(_date_text(value), str):
        raise ValueError(DATE_FORM)
    return value


# A date sent as text; the service reads it (a 422 for text it cannot read as a date, naming it, as for a lead's
# created_at). A number, as JSON or as text, is refused here (400) rather than read as Unix seconds (pydantic's
# default): the CRM exports and the leads' own dates never are. Documented as text, not as format "date-time": that
# format needs a time zone, and a plain date or a time without a zone is accepted too.
_DATE_SCHEMA = {"type": "string", "description": "ISO 8601 date, or date and time, as text (UTC when no zone is given).",
                "examples": ["2025-12-15", "2025-12-15T14:00:00Z"]}
DateText = Annotated[str, BeforeValidator(_text_date), WithJsonSchema(_DATE_SCHEMA)]

# The time a request scores as of (serving.scoring.request_as_of reads it): omitted, null or blank text (as for
# feedback's amount) is now.
AsOf = Annotated[DateText | None, BeforeValidator(_blank_as_none)]
_AS_OF = ("The time to score as of, at most a day after now (omitted, null or blank text: now); a lead created more "
          "than a day after it is refused.")


class ScoreRequest(BaseModel):
    """The body of POST /score."""

    leads: list[Lead] = Field(description="Up to serving.max_batch leads.")
    as_of: AsOf = Field(None, description=_AS_OF)


class ExplainRequest(BaseModel):
    """The body of POST /explain."""

    lead: Lead
    as_of: AsOf = Field(None, description=_AS_OF)


class Problem(BaseModel):
    """One problem with a request, at its place in the body."""

    loc: list[str | int] = Field(description='Path to the value, e.g. ["leads", 2, "created_at"].')
    field: str = Field(description="The same path as one name, e.g. leads[2].created_at; 'body' for JSON that does not parse.")
    msg: str = Field(description="What is wrong, in words.")
    type: str = Field(description="Kind of problem, for code, e.g. missing, json_invalid.")
    # Absent, never null, where there is none (a feedback receipt's warnings too): /docs.json documents text, not
    # required, without pydantic's "default: null", which told a client to expect null.
    lead_id: Annotated[str | None, WithJsonSchema({"type": "string"})] = Field(
        None, exclude_if=lambda lead_id: lead_id is None, json_schema_extra=lambda schema: schema.pop("default"),
        description="For a problem in a lead of /score's batch (its 400 or 422, or a warning of its 200): the id the "
        "lead at fault (or the lead of the activity at fault) sent, to look the lead up by in the CRM. Absent, not null, "
        "where the lead sent none the service takes as an id, and in every problem not about one lead of a batch "
        "(/explain's, /feedback's, as_of, the body's shape, a warning about every lead at leads[*]).")


class Factor(BaseModel):
    signal: str = Field(description="What the factor is about (feature signal), e.g. demo_request.")
    phrase: str = Field(description="What a rep reads, e.g. 'Requested a demo 2 days ago'.")
    value: str = Field(description="The lead's value of the feature, as text.")
    points: float = Field(description="How many score points (1-99 scale) the factor moves the score.")
    contribution: float = Field(description="The factor's contribution in log-odds (model scale).")


class Reasons(BaseModel):
    positive: list[Factor] = Field(description="Strongest factors raising the score by a point or more once rounded to "
                                               "whole points, strongest first; empty when none does.")
    negative: list[Factor] = Field(description="Strongest factors lowering the score by a point or more once rounded to "
                                               "whole points, strongest first; empty when none does.")


# /score's and /explain's never_seen (serving.scoring.never_seen_per_lead); /docs.json adds the served model's fields.
NEVER_SEEN = (
    "Per CRM field (named as this request names it) the model reads as a category (features."
    "categorical): the value this lead sent, as text, that the model never saw in training. It is scored as "
    "the model's shared \"other\" level, as values too rare to learn from are: a new lead source, or a field "
    "mapping that sends what training never read (true for a field trained on \"Yes\"/\"No\"); "
    + LEARNT_BY_A_RETRAIN + ". A value read as one the model knows is not listed (3 for a \"3.0\" "
    "it trained on), nor a missing one, nor one of a field with more than 10,000 distinct values in training "
    "(not judged). {} when there is none; null when the model cannot tell (trained before it remembered its "
    "training values)."
)


# /score's and /explain's past_horizon and past_horizon_note (serving.scoring.horizon_fields).
PAST_HORIZON = (
    "True when the lead is older than the model's label horizon (label.horizon_days) at the time it is scored as "
    "of: it can no longer convert within the horizon the probability is about, so its score only ranks it against "
    "the oldest leads the model was trained on (features.snapshot_days), e.g. to route it to a recycle or nurture "
    "queue. False for a lead without a creation date and a model without a horizon."
)
PAST_HORIZON_NOTE = ("What a rep reads when past_horizon is true, as the score card shows it (e.g. \"Created 214 "
                     "days ago, past the 120-day window this score predicts: ...\"); null when it is false.")

# /score's and /explain's unread_activity_types (serving.scoring.unread_activity_types_as_sent); /docs.json adds the
# types the served model reads.
UNREAD_ACTIVITY_TYPES = (
    "The activity types this lead sent that the model does not read (features.activity_types, compared in any "
    "letter case, after the service translates the CRM's labels by data.value_maps.activity), each once, as "
    "sent. Such an activity changes nothing in the score: a CRM label the service does not translate "
    "(\"Requested Demo\" for demo_request) scores the lead as if it had no such activity. [] when there is none."
)


# /score's and /explain's tier and likely rejection reason (serving.scoring.score_fields).
TIER = "Tier from thresholds fixed at training time, best first (see GET /model)."
LIKELY_REJECTION_REASON = ("Most likely reason if sales rejects the lead, as the training export spelled it (to write "
                           "back); null when the model predicts none (its training leads had too few reason codes to learn from).")
LIKELY_REJECTION_PROBABILITY = "Probability of that reason, given a rejection; null with no reason."


# /score's and /explain's warnings of misnamed fields (serving.scoring.misnamed_warnings).
MISNAMED = (
    "Each field sent under a name the model does not read that looks like the name of one it reads written "
    "differently (\"Industry\" or \"industy\" for industry, a CRM's own field name the model's data.mapping.leads "
    "does not declare) holding a value, while none is sent under that name: the lead is scored as not having it, so "
    "a CRM mapping mistake lowers scores. Type misnamed_field, at the field as sent (leads[3].Industry), naming the "
    "field to send it as; nothing is refused and no score changes. A field that looks like none the model reads, or "
    "holds no value (null, blank text, one of data.missing_values: nothing is lost), is ignored silently."
)
# /score's and /explain's warnings of activities by their dates (serving.scoring.activity_date_warnings); {at}: where.
ACTIVITY_DATES = (
    "And per lead, at its activities ({at}), how many of those of a type the model reads are dated after the time it "
    "is scored as of (as_of, else now): left out, as a score counts only what happened by then (type "
    "activity_after_scoring_time); and how many more than a day before the lead was created: counted, as training "
    "counts them (web visits a CRM ties to a lead once a form names it; type activity_before_created). No score "
    "changes. [] when there is none."
)


class LeadScore(BaseModel):
    lead_id: str
    probability: float = Field(description="Calibrated probability of conversion.")
    score: int = Field(description="1-99: the probability in percent.")
    tier: str = Field(description=TIER)
    past_horizon: bool = Field(description=PAST_HORIZON)
    past_horizon_note: str | None = Field(description=PAST_HORIZON_NOTE)
    reasons: Reasons
    likely_rejection_reason: str | None = Field(description=LIKELY_REJECTION_REASON)
    likely_rejection_probability: float | None = Field(description=LIKELY_REJECTION_PROBABILITY)
    never_seen: dict[str, str] | None = Field(description=NEVER_SEEN)
    unread_activity_types: list[str] = Field(description=UNREAD_ACTIVITY_TYPES)
    model_name: str
    model_version: str
    card_url: str = Field(
        description="Link to the lead's score card: a full link when serving.public_url is set, else a path to "
        "append to the service's address. It opens in a browser without the API key until it expires "
        "(serving.card_link_days); store it on the lead."
    )


class ScoreResponse(BaseModel):
    scores: list[LeadScore] = Field(description="One entry per lead, in request order.")
    warnings: list[Problem] = Field(description=MISNAMED + " Once per lead sending it, naming it by its lead_id; once "
                                    "at leads[*] (no lead_id) when every lead of a batch of several sends it. "
                                    + ACTIVITY_DATES.format(at="leads[3].activities, naming the lead by its lead_id"))


class Explanation(BaseModel):
    lead_id: str
    base: float = Field(description="The model's average log-odds (where every lead starts).")
    margin: float = Field(description="This lead's log-odds: base plus every contribution.")
    probability: float = Field(description="Calibrated probability of conversion. The same as POST /score answers "
                               "for the lead.")
    score: int = Field(description="1-99: the probability in percent. The same as POST /score answers for the lead.")
    tier: str = Field(description=TIER + " The same as POST /score answers for the lead.")
    likely_rejection_reason: str | None = Field(description=LIKELY_REJECTION_REASON + " The same as POST /score "
                                                "answers for the lead.")
    likely_rejection_probability: float | None = Field(description=LIKELY_REJECTION_PROBABILITY + " The same as POST "
                                                       "/score answers for the lead.")
    factors: list[Factor] = Field(description="Every factor, largest effect first.")
    past_horizon: bool = Field(description=PAST_HORIZON + " The same as POST /score answers for the lead.")
    past_horizon_note: str | None = Field(description=PAST_HORIZON_NOTE)
    never_seen: dict[str, str] | None = Field(description=NEVER_SEEN + " The same as POST /score answers for the lead.")
    unread_activity_types: list[str] = Field(description=UNREAD_ACTIVITY_TYPES + " The same as POST /score answers for "
                                             "the lead.")
    model_name: str
    model_version: str
    warnings: list[Problem] = Field(description=MISNAMED + " At the lead's field (lead.Industry). "
                                    + ACTIVITY_DATES.format(at="lead.activities"))


def _true_false_as_text(value: Any) -> Any:
    """A JSON true/false is the text an export's boolean cell in a text field reads as (ingest.as_plain_text,
    "true"/"false"): data.value_maps then translates it alike (a CRM checkbox such as Salesforce's IsConverted:
    {"true": converted}). A number names no decision or reason code: refused."""
    if isinstance(value, bool):
        return as_plain_text(pd.Series([value], dtype=object)).iloc[0]
    if isinstance(value, (int, float)):
        raise ValueError("expected text or true/false, not a number")
    return value


# Feedback's status or reason as the CRM sends it: text, or true/false read as its text.
DecisionText = Annotated[str, BeforeValidator(_true_false_as_text), WithJsonSchema({"type": ["string", "boolean"]})]


class Feedback(BaseModel):
    """A sales decision on a lead, sent by the CRM when it happens (retries are safe). Each field but event_id is also
    read under the CRM's own name the service's params data.mapping.outcomes declare for it, as training reads the
    CRM's outcomes export (listed here when they declare one); sent under both names, its values must agree."""

    event_id: IdText = Field(description="The CRM's unique id of this event.")
    lead_id: IdText
    # Blank text is refused with a 422 (serving.scoring.feedback_event), as a blank lead_id or decided_at is.
    status: DecisionText = Field(json_schema_extra={"minLength": 1}, description="The decision, e.g. "
                                 "converted or rejected; true/false (a CRM checkbox) is the text \"true\"/\"false\", "
                                 "as in an export.")
    reason: DecisionText | None = Field(None, description="Why, as a reason code; optional, but what the model learns "
                                        "why leads are rejected from (monitor reports the share of rejections with one); "
                                        "true/false is the text \"true\"/\"false\", as for status.")
    # Read as an export's decided_at is (serving.scoring.feedback_event), so it takes what a lead's created_at takes.
    decided_at: DateText = Field(
        description="When sales decided (ISO 8601 text; UTC when no zone is given), read as an export's decided_at "
        "and a lead's created_at are (\"Jun 2, 2025\" too). From 1970 to at most a day after the service receives "
        "the event. Blank text or one of data.missing_values (\"N/A\") is no date: refused (422), as absent or "
        "null is (400).")
    # Read as an export's outcomes row reads its amount (serving.scoring.feedback_amount); only a value no table cell
    # holds (an object, a list, NaN or Infinity) is refused here, as in a lead's field. /docs.json documents what it
    # takes for the service's params (serving.openapi), as for a lead's number field.
    amount: Annotated[CRMValue, BeforeValidator(plain_value), WithJsonSchema({"type": ["number", "string", "null"]})] = Field(
        None, description="Deal amount, when converted. An amount the service cannot read (\"12,500\", -5) is left "
        "out and the decision stored without it, as an export's row is kept without it: the answer's warnings name it.")
    # The body's other fields, by name, filled by `_unread_fields` (not sent, not in /docs.json): ignored, but one that
    # looks like an optional field above written differently ("Reason", or "reason_code") is named in the receipt's
    # warnings (serving.scoring.misnamed_feedback_warnings), as /score names a lead's: the decision was stored
    # without it.
    unread_fields: SkipJsonSchema[dict[str, Any]] = Field(default_factory=dict, exclude=True)

    @model_validator(mode="before")
    @classmethod
    def _unread_fields(cls, body: Any) -> Any:
        if not isinstance(body, dict):  # refused by the JSON check, told the shape /feedback takes
            return body
        read = {name: value for name, value in body.items() if name in cls.model_fields and name != "unread_fields"}
        return {**read, "unread_fields": {name: value for name, value in body.items() if name not in read}}


class FeedbackReceipt(BaseModel):
    event_id: str
    stored: bool = Field(description="False when this event_id was already stored (a retry).")
    warnings: list[Problem] = Field(description="Each value sent that the stored decision "
                                    "leaves out, with its field and why (an amount the service cannot read, e.g. "
                                    "\"12,500\"; a reason or amount sent under a name that looks like its own written "
                                    "differently, \"Reason\", or holds it as a word, \"reason_code\", type "
                                    "misnamed_field): send the decision again under a "
                                    "new event_id to record it. Empty when the decision was stored as sent.")


class FeatureInfo(BaseModel):
    name: str
    kind: str = Field(description="categorical or numeric.")
    signal: str = Field(description="What explanations group it under (Factor.signal).")


class ModelInfo(BaseModel):
    """The body of GET /model: the served model."""

    name: str
    version: str
    alias: str
    source: str = Field(description="Where it was loaded from: the MLflow registry, or the bento it was built into.")
    trained_at: str | None
    training_rows: int | None
    metrics: dict[str, float] = Field(description="Evaluation metrics at training time, e.g. roc_auc.")
    features: list[FeatureInfo]
    tiers: dict[str, float] = Field(description="Each tier's lowest probability, best tier first.")


class ErrorResponse(BaseModel):
    """The body of every error the service answers (4xx), whichever part of it refused the request.
    Nothing of a refused request is scored or stored."""

    error: str = Field(description="What went wrong, in words.")
    detail: list[Problem] = Field(description="Each problem with its field; empty when no field is at fault.")
