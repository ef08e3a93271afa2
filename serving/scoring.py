"""Between HTTP and the LeadScorer: request rows in, scores with reasons and score-log rows out.

The service stays thin by calling these pure functions; the benchmark calls the same ones to
measure the in-process cost of a request. Scores, tiers and reasons come from `LeadScorer.explained_scores`
(the outputs batch scoring's `LeadScorer.scores_of` gives, from the same TreeSHAP pass as the factors), never from a
copy here.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import datetime

import numpy as np
import pandas as pd
from pydantic import TypeAdapter, ValidationError

from features import phrases
from features.build import activities_dated_apart, activity_types_read, lead_columns_read
from features.labels import policy_reason
from models.scorer import BuiltLeads, LeadScorer
from pipelines.config import DataParams, LabelParams
from pipelines.contract import LEADS, OUTCOMES, TABLES, UTC_TIME
from pipelines.ingest import (ALIKE, API_CLIENT, AsOfError, Problem, alike_column, as_of_time, as_plain_text,
                              as_sent, contract_status, crm_column, crm_columns, differing_values, name_words,
                              not_answered, now_if_after, one_value_per_row, prepare_table, shortened,
                              translate)
from serving.schemas import Identifier, plain_value
from serving.security import BAD_JSON_ERROR, card_link, error_message, field_path
from serving.store import decision_date, email_sha256, utc_naive

# Contract columns only an activity has: a problem about one of them is about an activity row.
_ACTIVITY_COLUMNS = frozenset({"occurred_at", "activity", "detail"})


class RequestError(ValueError):
    """The request's content cannot be used; `detail` names each field. `status`: 422 for content the contract
    refuses, 400 for a value of a type the field cannot hold (as the JSON check answers one)."""

    def __init__(self, message: str, detail: list[dict], status: int = 422):
        self.detail, self.status = detail, status
        super().__init__(message)

    def as_dict(self) -> dict:
        return {"error": str(self), "detail": self.detail}


@dataclass
class RequestFrames:
    """A request's leads and activities as raw CRM frames, and where each activity row came from."""

    leads: pd.DataFrame
    activities: pd.DataFrame | None
    activity_origin: list[tuple[int, int]] = field(default_factory=list)  # (lead position, activity position)


@dataclass
class ModelRef:
    """The served model's identity, returned with every score and logged with it."""

    name: str
    version: str
    alias: str

    @classmethod
    def of(cls, scorer: LeadScorer) -> "ModelRef":
        registry = scorer.info.get("registry", {})
        return cls(str(registry.get("name", "")), str(registry.get("version", "")), str(registry.get("alias", "")))


def _detail(loc: tuple, message: str, kind: str) -> dict:
    return {"loc": list(loc), "field": field_path(*loc), "msg": message, "type": kind}


_AS_OF_REFUSED = "the scoring time as_of cannot be used; nothing was scored"


def request_as_of(value: str | None) -> datetime | None:
    """A request's ``as_of``, text read as a lead's created_at is (`as_of_time`: Java's "...Z[UTC]" too, blanks around
    it), as naive UTC (None: now).

    Raises:
        RequestError: text that is no date, typed as a lead's created_at that is none is (both are content, not the
            body's shape), one outside the dates the contract accepts (e.g. 0001-01-01, 9999-12-31), or one more
            than CLOCK_SLACK after now, as a lead's created_at or a decision's decided_at is: no score counts what
            has not happened yet, and one logged as of a future time would be its score card's for good.
    """
    if value is None:
        return None
    try:
        stamp = as_of_time(value)
    except AsOfError as err:
        raise RequestError(_AS_OF_REFUSED, [_detail(("as_of",), str(err), err.kind)]) from None
    if (now := now_if_after(stamp)) is not None:
        raise RequestError(_AS_OF_REFUSED, [_detail(
            ("as_of",), f"date in the future {as_sent(value)} (now is {now:%Y-%m-%d %H:%M} UTC): a score counts what "
                        "has happened by the time it is scored as of; omit as_of to score as of now",
            "date_in_future")])
    return stamp.to_pydatetime()


def sent_lead_id(lead: dict, data: DataParams) -> tuple[str, object]:
    """The name and value of the lead id a request's lead sent, under the first of its names it holds (`crm_columns`:
    HubSpot's export and API name it `Record ID` and `hs_object_id`); the first name and None without one. Looked up
    under the first name alone, a lead sent under the other lost its activities without a word."""
    names = crm_columns(data, "leads", "lead_id")
    return next(((name, lead[name]) for name in names if lead.get(name) is not None), (names[0], None))


def request_frames(leads: list[dict], activities: list[list[dict] | None], data: DataParams) -> RequestFrames:
    """Raw CRM frames from request rows; each activity gets its lead's id under the CRM's activity field name.

    Activities of a lead without an id (none, blank, or one of data.missing_values such as "N/A") are left
    out: the lead itself is refused for it, and each activity would be refused again at a lead's field path.
    """
    activity_lead_field = crm_column(data, "activities", "lead_id")
    rows, origin = [], []
    for i, (lead, acts) in enumerate(zip(leads, activities)):
        _, lead_id = sent_lead_id(lead, data)
        if not acts or lead_id is None or not_answered(lead_id, data):
            continue
        rows.extend({**act, activity_lead_field: lead_id} for act in acts)
        origin.extend((i, j) for j in range(len(acts)))
    # A row per lead, one sent as {} too: pandas builds no row from records that are all empty, and such a lead went
    # unscored without a word (or /explain failed) instead of being told it lacks its id and creation date.
    lead_rows = pd.DataFrame.from_records(leads, index=range(len(leads)))
    return RequestFrames(lead_rows, pd.DataFrame.from_records(rows) if rows else None, origin)


def columns_read(scorer: LeadScorer, table: str) -> list[str]:
    """The contract columns of a request's leads or activities the service reads for the served model, in the
    contract's order: a lead's contract fields (checked even where the model has no feature of them) and those
    its features read (`lead_columns_read`); an activity's own fields (its lead id is the lead's), when the model
    reads activities at all. /score checks these (`values_read`) and /docs.json documents them (serving.openapi)."""
    if table == "activities":
        return sorted(_ACTIVITY_COLUMNS) if scorer.reads_activities else []
    return list(dict.fromkeys([*LEADS.columns, *lead_columns_read(scorer.features)]))


def field_reader(scorer: LeadScorer, table: str):
    """Whether the service reads a field of a request's lead or activity (``table``) by that name for the served
    model: its data.mapping names it for a column it reads (`columns_read`), or it is such a column's own name, as
    ingest.prepare_table reads it; data.drop_columns are never read."""
    drop, mapping, read = set(scorer.data.drop_columns), getattr(scorer.data.mapping, table), set(columns_read(scorer, table))
    return lambda name: name not in drop and mapping.get(name, name) in read


def values_read(scorer: LeadScorer, leads: list[dict], activities: list[list[dict] | None]
                ) -> tuple[list[dict], list[list[dict] | None], list[dict]]:
    """The request's rows without the objects and arrays of the fields the served model does not read, and the
    problems of those it does.

    A CRM record carries fields no model reads (every Salesforce REST record its "attributes" object): whatever
    their value, they are ignored, so a record can be forwarded as it is (`field_reader` says which are read).
    A read field holding an object, a list or a
    number JSON has no value for (NaN, Infinity) is a problem at its path (`schemas.plain_value`), answered 400.
    """
    reads = {table: field_reader(scorer, table) for table in ("leads", "activities")}
    detail: list[dict] = []

    def kept(row: dict, table: str, loc: tuple) -> dict:
        out = {}
        for name, value in row.items():
            if not reads[table](name):
                if not isinstance(value, (dict, list)):  # a scalar is kept: a misspelt required field is told so
                    out[name] = value
                continue
            try:
                out[name] = plain_value(value)
            except ValueError as err:
                detail.append(_detail((*loc, name), str(err), "value_error"))
        return out

    return (*_each_row(kept, leads, activities), detail)


def _as_sent_text(value) -> str:
    """A field's value as text, stripped, as ingest reads a cell (a number as `as_plain_text` writes it)."""
    return (value if isinstance(value, str) else as_plain_text(pd.Series([value], dtype=object)).iloc[0]).strip()


def one_field_per_column(scorer: LeadScorer, leads: list[dict], activities: list[list[dict] | None]
                         ) -> tuple[list[dict], list[list[dict] | None], list[dict]]:
    """The request's rows with one field per contract column read (`one_value_per_column`), kept under the name the
    mapping gives the column (`crm_column`) when sent, and a problem for each row that sends one column under several
    names with different values.

    A lead may carry a column under the CRM's name the model's data.mapping declares and under the contract's
    ("Lead Source" and "lead_source"), as an integration adding the documented names to a forwarded record does.
    """
    data = scorer.data
    reads = {table: field_reader(scorer, table) for table in ("leads", "activities")}
    detail: list[dict] = []

    def single(row: dict, table: str, loc: tuple) -> dict:
        mapping = getattr(data.mapping, table)
        columns, problems = one_value_per_column(
            row, table, data, lambda name: mapping.get(name, name) if reads[table](name) else None, loc,
            scorer.features.numeric if table == "leads" else (), f"the model's data.mapping.{table}")
        detail.extend(problems)
        out = dict(row)
        for names, value in columns.values():
            if len(names) > 1:
                for name in names:
                    out.pop(name)
                out[names[0]] = value
        return out

    return (*_each_row(single, leads, activities), detail)


def one_value_per_column(row: dict, table: str, data: DataParams, column_of, loc: tuple = (),
                         numeric: Collection[str] = (), declared_in: str = "data.mapping"
                         ) -> tuple[dict[str, tuple[list[str], object]], list[dict]]:
    """Per contract column of `table` a request's row sends (`column_of(name)`: the column a field sent is read as,
    None for a field not read): the names it was sent under, the one data.mapping gives it (`crm_column`) first when
    sent, and its one value; and a problem for each column sent under several names with different values, which is
    left out. /score reads a lead (`one_field_per_column`) and /feedback a decision (`feedback_fields`) by it.

    Both names holding one value (`ingest.one_value_per_row`, the rule an export's rows are read by: compared as the
    column reads them, a date as its time, a number, the contract's or `numeric`'s, as its value, else as text,
    stripped; a field not answered holds none) is that value; different values are refused at the row's first such
    field, naming both ("ambiguous_column"; `declared_in`: the setting that maps them), as an export's row is: the
    service does not pick one.
    """
    by_column: dict[str, list[str]] = {}
    for name in row:
        if (column := column_of(name)) is not None:
            by_column.setdefault(column, []).append(name)
    out, detail = {}, []
    for column, names in by_column.items():
        kept = crm_column(data, table, column)
        read = [kept, *(name for name in names if name != kept)] if kept in names else names
        if len(names) == 1:
            out[column] = (read, row[read[0]])
            continue
        value, differ = one_value_per_row([pd.Series([row[name]], dtype=object) for name in read], data, table,
                                          column, numeric)
        if differ[0]:
            values = differing_values(TABLES[table], column, [
                (name, as_sent(_as_sent_text(row[name]))) for name in names
                if row[name] is not None and not not_answered(row[name], data)])
            detail.append(_detail((*loc, names[0]), f"{' and '.join(map(repr, names))} are one field, {column} "
                                  f"({declared_in}), sent with different values ({values}): send it once",
                                  "ambiguous_column"))
            continue
        out[column] = (read, value.iloc[0])
    return out, detail


def _each_row(change, leads: list[dict], activities: list[list[dict] | None]
              ) -> tuple[list[dict], list[list[dict] | None]]:
    """`change(row, table, loc)` applied to each lead and each of its activities, `loc` the row's place in the
    request ("leads", 0, "activities", 1) for its problems."""
    return ([change(lead, "leads", ("leads", i)) for i, lead in enumerate(leads)],
            [None if acts is None else [change(act, "activities", ("leads", i, "activities", j))
                                        for j, act in enumerate(acts)]
             for i, acts in enumerate(activities)])


_IDENTIFIER = TypeAdapter(Identifier)


def id_error(value) -> dict | None:
    """pydantic's error for a value breaking the rule every id of the service follows (schemas.Identifier: text of
    at most 255 characters once stripped, no line break, as the score log and the feedback table store it); None
    for an id."""
    try:
        _IDENTIFIER.validate_python(value)
    except ValidationError as err:
        return err.errors()[0]
    return None


def lead_id_problems(leads: list[dict], data: DataParams) -> list[dict]:
    """Problems for a lead id that breaks the rule every id of the service follows (`id_error`). A number is
    refused rather than guessed at: 42 and "042" would be different leads. An id not sent or holding no value (blank
    or one of data.missing_values) is left to the contract, which names it as any required field (`_lacking`)."""
    out = []
    for i, lead in enumerate(leads):
        lead_id_field, lead_id = sent_lead_id(lead, data)
        if lead_id is None or not_answered(lead_id, data):
            continue
        if error := id_error(lead_id):
            out.append(_detail(("leads", i, lead_id_field), f"the lead id: {error_message(error)}", error["type"]))
    return out


def with_lead_ids(detail: list[dict], leads: list, data: DataParams) -> list[dict]:
    """A batch's problems (its 400 or 422), each about a lead (or one of its activities) also naming that lead by the id
    it sent (`lead_id`, stripped), which a CRM integrator looks the lead up by: ``loc`` counts leads from 0 in the
    request, `leads` as sent (a lead that is no JSON object names none).
    An added field beside loc and field, which a client reads as before; left out where the lead sent no id the
    service takes as one (none, one meaning not answered, or one breaking `schemas.Identifier`: its own problem)."""
    out = []
    for problem in detail:
        position = problem["loc"][1] if problem["loc"][:1] == ["leads"] and len(problem["loc"]) > 1 else None
        lead = leads[position] if isinstance(position, int) else None
        sent = sent_lead_id(lead, data)[1] if isinstance(lead, dict) else None
        lead_id = None if sent is None or not_answered(sent, data) or id_error(sent) else str(sent).strip()
        out.append({**problem, "lead_id": lead_id} if lead_id is not None else problem)
    return out


def _as_one_lead(detail: list[dict]) -> list[dict]:
    """Problems about the single lead /explain takes, at its field paths: lead.created_at, not leads[0].created_at."""
    return [_detail(("lead", *d["loc"][2:]), d["msg"], d["type"]) for d in detail]


def duplicate_ids(frames: RequestFrames, data: DataParams) -> list[dict]:
    """Problems for a lead id sent twice in one request (scores and logs are keyed by it)."""
    lead_id_field = crm_column(data, "leads", "lead_id")
    if lead_id_field not in frames.leads or frames.leads.empty:
        return []
    ids = frames.leads[lead_id_field].astype("str").str.strip()
    sent = frames.leads[lead_id_field].map(lambda v: not pd.isna(v) and not not_answered(v, data))
    repeated = ids.duplicated() & sent  # two leads without an id are each missing one (the contract says so)
    return [
        _detail(("leads", int(i), lead_id_field), f"lead id {ids.iloc[i]!r} appears more than once in the request", "duplicate_lead_id")
        for i in np.flatnonzero(repeated.to_numpy())
    ]


def _location(position: int | str, column: str, from_activity: bool, frames: RequestFrames) -> tuple:
    """The request path of a row's field: the lead's, or (``from_activity``) the activity's under its lead;
    position "*" for every row."""
    if position == "*":
        return ("leads", "*", "activities", "*", column) if from_activity else ("leads", "*", column)
    if from_activity:
        lead, act = frames.activity_origin[position]
        return ("leads", lead, "activities", act, column)
    return ("leads", position, column)


# How many of a lead's unread fields a missing field's message lists (a CRM record has dozens).
_FIELDS_LISTED = 8


def _lacking(p: Problem, frames: RequestFrames, from_activity: bool, scorer: LeadScorer) -> list[dict]:
    """A required field rows lack, at each such row: one not sent (absent or null) in a missing field's words (type
    "missing", as a 400's), one sent holding no value (blank text, one of data.missing_values: "N/A") saying so
    (type "empty_value", as /feedback calls a blank id), so a client handling problems by type reads one code for
    one mistake on every route.

    The contract check, written for exports, calls a field no row has a missing column (at no row, advising
    data.mapping) and one some rows leave out an empty value: to a client both are leads without the field,
    which it fixes in its request. A row without the name that holds fields the model does not read (a
    Salesforce record's "Id", a HubSpot one's "createdate") is told which look like it (`alike_column`), or else
    which it has, and where a CRM's own name is declared: the model's data.mapping, which the service reads as the
    model was trained with it, so a new name takes a retrain.
    """
    rows, table = (frames.activities, "activities") if from_activity else (frames.leads, "leads")
    reads = field_reader(scorer, table)
    # An activity's lead id is its lead's, set by `request_frames`: no field the client sent in the activity.
    added = {crm_column(scorer.data, "activities", "lead_id")} if from_activity else set()
    row_name = "activity" if from_activity else "lead"
    looked_for = repr(p.column) + (f" (the contract's {p.contract_column}, under the name the model's "
                                   f"data.mapping.{table} gives it)" if p.contract_column != p.column else "")
    out = []
    for i in range(len(rows)) if p.row is None else [p.row - 1]:
        sent = [name for name, value in rows.iloc[i].items() if pd.notna(value) and name not in added]
        unread = [name for name in sent if not reads(name)]
        if p.column in sent:
            out.append(_detail(_location(i, p.column, from_activity, frames), f"required field {looked_for} holds no "
                               f"value: {as_sent(rows.iloc[i][p.column])} ({_read_as_none(scorer.data)})",
                               "empty_value"))
            continue
        alike = alike_column(sent, p.column)
        words = f"required field {looked_for} missing"
        if alike or unread:
            listed = ", ".join(map(repr, unread[:_FIELDS_LISTED])) + (
                f" and {len(unread) - _FIELDS_LISTED} more" if len(unread) > _FIELDS_LISTED else "")
            words += (f" (the {row_name} has {alike!r}, {ALIKE}): send it as {p.column!r}" if alike else
                      f" (the {row_name} has fields this model does not read: {listed}): if one of them is it under the "
                      f"CRM's name, send it as {p.column!r}")
            words += _mapping_note(table)
        out.append(_detail(_location(i, p.column, from_activity, frames), words, "missing"))
    return out


def _mapping_note(table: str) -> str:
    """Where a CRM's own field name goes, ending a message about a field sent under another name."""
    return (f". A CRM's own field names are read where the model's data.mapping.{table} declares them: the service "
            "reads the mapping the model was trained with, so a new one takes a retrain")


def misnamed_fields(scorer: LeadScorer, leads: list[dict]) -> list[tuple[tuple[str, str], ...]]:
    """Per lead (request order): each (field as sent, field the model reads) where the lead sends no field the model
    reads as a column its features read (`lead_columns_read`, as batch scoring warns of a file lacking one), but one it
    does not read that looks like that column's name written differently (`ingest.alike_column`, the rule a file's and
    a lead's missing required columns are told by): "Industry" or "industy" for industry, "Lead Source" where the
    mapping reads lead_source. Such a lead is scored as having no value there: a CRM mapping mistake that lowers its
    score with no sign. A field that looks like no field the model reads says nothing (CRMs send many others).
    Only fields holding a value count (`_answered`): "Industry": null loses nothing, and "industry": null beside
    "Industry": "Software" loses the value. Computed once per set of field names sent with a value (`_misnamed_in`),
    so a batch of one CRM's records costs a lookup a lead."""
    data = scorer.data
    wanted = tuple((column, crm_column(data, "leads", column)) for column in lead_columns_read(scorer.features))
    find = _misnamed_in(tuple(data.mapping.leads.items()), frozenset(data.drop_columns),
                        frozenset(columns_read(scorer, "leads")), wanted)
    return [find(frozenset(name for name, value in lead.items() if _answered(value, data))) for lead in leads]


def _answered(value, data: DataParams) -> bool:
    """Whether a field sent holds a value, as `misnamed_fields` weighs it: null, blank text and data.missing_values
    are none (a number or true/false always is one: no Series is built per field to tell)."""
    return value is not None and not (isinstance(value, str) and not_answered(value, data))


@functools.lru_cache(maxsize=8)  # one per served model's field names: a reload adds one
def _misnamed_in(mapping: tuple[tuple[str, str], ...], dropped: frozenset[str], read: frozenset[str],
                 wanted: tuple[tuple[str, str], ...]):
    """`misnamed_fields` for one model (its data.mapping.leads, data.drop_columns, the contract columns the service
    reads and the (column, CRM name) pairs its features read), cached per set of field names a lead sends, and per
    name sent: CRMs leave a record's empty fields out, so one batch's sets differ where its names do not (500 sets of
    40 names took 2 s compared anew, measured)."""
    renamed = dict(mapping)

    @functools.lru_cache(maxsize=65536)
    def looks_like(sent: str) -> tuple[str, ...]:
        return tuple(name for _, name in wanted if alike_column([sent], name) is not None)

    @functools.lru_cache(maxsize=1024)
    def misnamed(sent: frozenset[str]) -> tuple[tuple[str, str], ...]:
        kept = [name for name in sent if name not in dropped]  # data.drop_columns: never read, by choice
        present = {renamed.get(name, name) for name in kept}
        alike: dict[str, list[str]] = {}
        for other in kept:
            if renamed.get(other, other) not in read:
                for name in looks_like(other):
                    alike.setdefault(name, []).append(other)
        # Of several, the one alike_column picks among all the lead's unread fields (sorted: a set has no order).
        return tuple((alike_column(sorted(alike[name]), name), name) for column, name in wanted
                     if column not in present and name in alike)

    return misnamed


def misnamed_warnings(scorer: LeadScorer, leads: list[dict]) -> list[dict]:
    """/score's and /explain's warnings for the fields `misnamed_fields` finds, at the field as sent (``loc``
    ("leads", 3, "Industry")), type "misnamed_field": once per lead sending it, or once at leads[*] when every lead of
    a batch of several does (an integration's mapping, not a lead's record: one warning, not 500). Nothing is
    refused and no score changes."""
    by_pair: dict[tuple[str, str], list[int]] = {}
    for i, pairs in enumerate(misnamed_fields(scorer, leads)):
        for pair in pairs:
            by_pair.setdefault(pair, []).append(i)
    out = []
    for (sent, name), positions in by_pair.items():
        every = len(leads) > 1 and len(positions) == len(leads)
        who = "every lead" if every else "the lead"
        words = (f"field {name!r}, which the model reads, is not sent ({who} has {sent!r}, {ALIKE}): {who} was "
                 f"scored as not having it; send it as {name!r}" + _mapping_note("leads"))
        out += [_detail(("leads", i, sent), words, "misnamed_field") for i in (["*"] if every else positions)]
    return out


def activity_date_warnings(scorer: LeadScorer, built: BuiltLeads, as_of: datetime | None) -> list[dict]:
    """/score's and /explain's warnings of the activities a lead's score treats by their dates, as the features
    count them (`features.build.activities_dated_apart`), at the lead's activities (``loc`` ("leads", 3,
    "activities")), saying how many and what was done: those dated after the time the lead is scored as of (the
    request's as_of, else now) were left out (type activity_after_scoring_time); those dated more than a day before
    the lead was created were counted (activity_before_created). Nothing is refused and no score changes."""
    after, early = activities_dated_apart(built.leads, built.placed)
    if not (after.any() or early.any()):  # undated too: no snapshot to name
        return []
    when = (f"the request's as_of ({built.snapshot:{UTC_TIME}})" if as_of is not None
            else f"now ({built.snapshot:%Y-%m-%d %H:%M} UTC)")
    occurred = repr(crm_column(scorer.data, "activities", "occurred_at"))
    created = repr(crm_column(scorer.data, "leads", "created_at"))
    out = []
    for i, (late, before) in enumerate(zip(after.tolist(), early.tolist())):
        at = ("leads", i, "activities")
        if late:
            out.append(_detail(at, f"{_of_the_leads_activities(late)} an {occurred} after {when}, the time the lead is "
                               f"scored as of: {_it_was(late)} left out, as a score counts only what happened by then",
                               "activity_after_scoring_time"))
        if before:
            created_at = built.leads["created_at"].iloc[i]
            out.append(_detail(at, f"{_of_the_leads_activities(before)} an {occurred} more than a day before the "
                               f"lead's {created} ({created_at:{UTC_TIME}}): {_it_was(before)} counted, as "
                               "training counts such activities (web visits a CRM ties to a lead once a form names "
                               "it); if that is not what they are, check both dates", "activity_before_created"))
    return out


def _of_the_leads_activities(count: int) -> str:
    return f"{count} of the lead's activities {'has' if count == 1 else 'have'}"


def _it_was(count: int) -> str:
    return "it was" if count == 1 else "they were"


def problem_details(problems: list[Problem], frames: RequestFrames, scorer: LeadScorer) -> list[dict]:
    """The LeadScorer's row/column problems as request field paths, e.g. leads[2].created_at."""
    out = []
    for p in problems:
        from_activity = p.contract_column in _ACTIVITY_COLUMNS
        if p.kind in ("missing_column", "empty_value"):
            out += _lacking(p, frames, from_activity, scorer)
        else:  # row None: about the field in every row, e.g. two CRM fields mapping to one column
            out.append(_detail(_location("*" if p.row is None else p.row - 1, p.column, from_activity, frames),
                               p.message, p.kind))
    return out


def _factor(f) -> dict:
    return {"signal": f.signal, "phrase": f.phrase, "value": str(f.value), "points": float(f.points), "contribution": float(f.contribution)}


def never_seen_per_lead(found: dict[int, dict[str, str]] | None, leads: int) -> list[dict[str, str] | None]:
    """Per lead (request order) of `leads`: the values it sent that the model never saw in training, field -> value,
    from ``LeadScorer.never_seen_as_sent`` (`found`, which batch scoring's never_seen column writes too and the
    factors name as sent); {} for none, None for every lead when the model cannot tell."""
    if found is None:
        return [None] * leads
    return [found.get(i, {}) for i in range(leads)]


def score_fields(scorer: LeadScorer, row: dict, age_days: float) -> dict:
    """A lead's probability, score, tier, past_horizon (``horizon_fields``) and likely rejection reason from its row of
    ``LeadScorer.explained_scores``' frame, as /score and /explain both answer them and the score log keeps them."""
    reason, reason_p = row["likely_rejection_reason"], row["likely_rejection_probability"]
    return {
        "probability": float(row["probability"]),
        "score": int(row["score"]),
        "tier": str(row["tier"]),
        **horizon_fields(scorer, row["past_horizon"], age_days),
        "likely_rejection_reason": None if pd.isna(reason) else str(reason),
        "likely_rejection_probability": None if pd.isna(reason_p) else float(reason_p),
    }


def horizon_fields(scorer: LeadScorer, past_horizon: bool, age_days: float) -> dict:
    """A lead's past_horizon (``LeadScorer.past_horizon``) and, when true, what a rep reads about it
    (``features.phrases.past_horizon``), as /score and /explain answer them and the score card shows the note."""
    note = (phrases.past_horizon(age_days, scorer.horizon_days, max(scorer.features.snapshot_days))
            if past_horizon else None)
    return {"past_horizon": bool(past_horizon), "past_horizon_note": note}


def unread_activity_types_as_sent(scorer: LeadScorer, frames: RequestFrames) -> list[list[str]]:
    """Per lead (request order): the activity types it sent that the model does not read once
    data.value_maps.activity translates them (`features.build.activity_types_read`, the rule batch scoring warns
    by), each once, as sent (text, stripped; a very long one `shortened`), in the order sent; [] for none. A model that reads no activities
    reads none (a value of data.missing_values is no type). Such an activity changes nothing in the score: a CRM
    label data.value_maps leaves out ("Requested Demo" for demo_request) scores every lead as never active."""
    out: list[list[str]] = [[] for _ in range(len(frames.leads))]
    column = crm_column(scorer.data, "activities", "activity")
    if frames.activities is None or column not in frames.activities:
        return out
    sent = frames.activities[column]
    present = sent.notna().to_numpy()
    sent = as_plain_text(sent[present]).str.strip()
    unread = np.ones(len(sent), dtype=bool)
    if scorer.reads_activities:
        translated = translate(sent, scorer.data.value_maps.get("activity", {}))
        unread = ~activity_types_read(translated.where(translated.notna(), sent), scorer.features)
    origin = [lead for (lead, _), kept in zip(frames.activity_origin, present) if kept]
    for lead, kind, not_read in zip(origin, sent.tolist(), unread):
        if not_read and shortened(kind) not in out[lead] and not not_answered(kind, scorer.data):
            out[lead].append(shortened(kind))
    return out


@dataclass
class Scored:
    """Scores in request order, their top reasons, the rows to append to the score log, and the request's warnings
    (`misnamed_warnings`)."""

    results: list[dict]
    log_rows: list[dict]
    warnings: list[dict] = field(default_factory=list)


def score_request(
    scorer: LeadScorer,
    leads: list[dict],
    activities: list[list[dict] | None],
    model: ModelRef,
    *,
    as_of: pd.Timestamp | None,
    top_k: int,
    card_key: bytes,
    card_link_days: float,
    card_base_url: str | None = None,
) -> Scored:
    """Score request rows with their top `top_k` positive and negative reasons, the values the model never
    saw in training (`never_seen_per_lead`), the activity types it does not read (`unread_activity_types_as_sent`),
    and each lead's signed score-card link
    (`serving.security.card_link`, valid `card_link_days`, under `card_base_url` when given); and the fields sent
    under a name that looks like one the model reads (`misnamed_warnings`), naming each lead by its id.

    Raises:
        RequestError: any row breaks the contract (missing lead id, unparsable date, not a number,
            a lead id twice); nothing is scored then, so the CRM never gets half a batch.
    """
    if not leads:
        return Scored([], [])
    sent = leads
    leads, activities, detail = values_read(scorer, leads, activities)
    if detail:
        raise RequestError(BAD_JSON_ERROR.format(len(detail)), with_lead_ids(detail, sent, scorer.data), status=400)
    leads, activities, detail = one_field_per_column(scorer, leads, activities)
    frames = request_frames(leads, activities, scorer.data)
    detail += lead_id_problems(leads, scorer.data) + duplicate_ids(frames, scorer.data)
    if not detail:
        built = scorer.build_leads(frames.leads, frames.activities, as_of=as_of, audience=API_CLIENT)
        features, ages = built.features, built.ages
        detail = problem_details(built.problems, frames, scorer)
    if detail:
        raise RequestError(f"{len(detail)} problem(s) in the leads; nothing was scored",
                           with_lead_ids(detail, sent, scorer.data))
    found_new = scorer.never_seen_as_sent(features, frames.leads)
    scores, explanations = scorer.explained_scores(features, top_k, age_days=ages, never_seen=found_new)
    positives = [[_factor(f) for f in e.positives] for e in explanations]
    negatives = [[_factor(f) for f in e.negatives] for e in explanations]
    email_field = crm_column(scorer.data, "leads", "email")
    hashes = email_sha256(frames.leads[email_field]).tolist() if email_field in frames.leads else [None] * len(scores)
    scored_at = pd.Timestamp.now(tz="UTC").tz_localize(None).to_pydatetime()
    expires = int(time.time() + card_link_days * 86_400)
    never_seen = never_seen_per_lead(found_new, len(features))
    unread = unread_activity_types_as_sent(scorer, frames)
    results, log_rows = [], []
    for row, pos, neg, email_hash, age, new, unread_types in zip(scores.to_dict("records"), positives, negatives,
                                                                 hashes, ages, never_seen, unread):
        score = {
            "lead_id": row["lead_id"],
            **score_fields(scorer, row, age),
            "model_name": model.name,
            "model_version": model.version,
        }
        results.append({**score, "reasons": {"positive": pos, "negative": neg}, "never_seen": new,
                        "unread_activity_types": unread_types,
                        "card_url": card_link(card_key, score["lead_id"], expires, card_base_url)})
        log_rows.append({**score, "factors": pos + neg, "email_sha256": email_hash, "scored_at": scored_at,
                         "features_as_of": as_of,  # None: as of now, which the store logs as scored_at
                         "never_seen": new, "unread_activity_types": unread_types})
    warnings = misnamed_warnings(scorer, sent) + activity_date_warnings(scorer, built, as_of)
    return Scored(results, log_rows, with_lead_ids(warnings, sent, scorer.data))


def warm_up(scorer: LeadScorer, model: ModelRef) -> None:
    """Score one made-up lead: the first CRM request then pays no one-off set-up (explainer, phrases),
    and a model that cannot score fails the start-up instead of every request."""
    lead = {crm_column(scorer.data, "leads", "lead_id"): "warm-up"}
    if scorer.data.dated:
        lead[crm_column(scorer.data, "leads", "created_at")] = pd.Timestamp.now(tz="UTC").isoformat()
    score_request(scorer, [lead], [None], model, as_of=None, top_k=1, card_key=b"warm-up", card_link_days=1)


def explain_request(scorer: LeadScorer, lead: dict, activities: list[dict] | None, model: ModelRef, *, as_of: pd.Timestamp | None) -> dict:
    """Every factor's contribution for one lead (largest effect first), and its score, tier, likely rejection reason
    and whether it is past the label horizon (`score_fields`), the values the model never saw in training, the
    activity types it does not read and the warnings of its fields sent under a name that looks like one the model
    reads, as /score answers them.

    Raises:
        RequestError: the lead breaks the contract.
    """
    sent = lead
    (lead,), (activities,), detail = values_read(scorer, [lead], [activities])
    if detail:
        raise RequestError(BAD_JSON_ERROR.format(len(detail)), _as_one_lead(detail), status=400)
    (lead,), (activities,), detail = one_field_per_column(scorer, [lead], [activities])
    frames = request_frames([lead], [activities], scorer.data)
    detail += lead_id_problems([lead], scorer.data)
    if not detail:
        built = scorer.build_leads(frames.leads, frames.activities, as_of=as_of, audience=API_CLIENT)
        features, ages = built.features, built.ages
        detail = problem_details(built.problems, frames, scorer)
    if detail:
        raise RequestError("the lead cannot be explained", _as_one_lead(detail))
    found_new = scorer.never_seen_as_sent(features, frames.leads)
    scores, (e,) = scorer.explained_scores(features, every_factor=True, age_days=ages, never_seen=found_new)
    return {
        "lead_id": str(e.lead_id),
        "base": float(e.base),
        "margin": float(e.margin),
        **score_fields(scorer, scores.to_dict("records")[0], ages[0]),
        "factors": [_factor(f) for f in e.factors],
        "never_seen": never_seen_per_lead(found_new, 1)[0],
        "unread_activity_types": unread_activity_types_as_sent(scorer, frames)[0],
        "model_name": model.name,
        "model_version": model.version,
        "warnings": _as_one_lead(misnamed_warnings(scorer, [sent]) + activity_date_warnings(scorer, built, as_of)),
    }


def quoted(values) -> str:
    """Values as a message or /docs.json lists them for a client: 'a', 'b' or 'c'."""
    shown = [repr(str(v)) for v in values]
    return shown[0] if len(shown) == 1 else f"{', '.join(shown[:-1])} or {shown[-1]}"


def feedback_choices(data: DataParams, label: LabelParams) -> dict[str, tuple[list[str], list[str], str]]:
    """What /feedback's status and reason take, in a CRM integrator's terms: per field, the values (matched in
    any letter case), the CRM's own labels the service translates into them, and the params setting a
    RevOps admin adds a label under. /docs.json and the refusals list the same."""
    return {"status": (list(data.statuses), list(data.value_maps.get("status", {})), "data.value_maps.status"),
            "reason": (list(label.reasons), list(data.value_maps.get("reason", {})), "data.value_maps.reason")}


def choices_in_words(values: list[str], labels: list[str], setting: str) -> str:
    """`feedback_choices`' entry as a sentence's end: 'a' or 'b' (any letter case), or a CRM label ..."""
    text = f"{quoted(values)} (any letter case)"
    if labels:
        text += f", or a CRM label the service translates: {quoted(labels)}"
    return text + f"; a RevOps admin adds another CRM label in params {setting}"


def feedback_amount(amount, problems: list[Problem], sent_as: str) -> tuple[float | None, list[dict]]:
    """A feedback event's deal amount as stored, from its read as an export's outcomes row reads it
    (`_as_outcome_cells`, ingest.prepare_table: blank, NaN and data.missing_values are none, data.value_maps.amount
    translates a CRM label, then the contract's number rules), and a warning naming the field for each of that read's
    `problems`: an amount it cannot take ("12,500", -5, true). Such an amount is left out and the decision kept, as an
    export's row is kept without it (contract.OUTCOMES.cleared_if_bad): a CRM sends a decision once, and refusing it
    for its amount lost the decision itself. The warning is at `sent_as`, the field it came in (`feedback_fields`)."""
    warnings = [_detail((sent_as,), f"{p.message}; the decision was stored without an amount: to record one, send "
                        "the decision again under a new event_id with the amount as a number", p.kind)
                for p in problems]
    return (None if pd.isna(amount) else float(amount)), warnings


# A feedback event's fields read as an export's outcomes row reads them (`_as_outcome_cells`).
_READ_AS_EXPORTED = ("decided_at", "amount")


def _as_outcome_cells(event: dict, data: DataParams) -> dict[str, tuple[object, list[Problem]]]:
    """A feedback event's decided_at and amount as an export's outcomes row reads them, in one read
    (ingest.prepare_table, in an API client's words): per field, its value (NaT or NaN where none is read; None when
    the row is refused, which only a decided_at refuses) and its problems."""
    row = pd.DataFrame({"lead_id": ["lead"], "status": [data.statuses[0]],
                        **{column: pd.Series([event.get(column)], dtype=object) for column in _READ_AS_EXPORTED}})
    checked, problems = prepare_table(row, "outcomes", data, audience=API_CLIENT)
    return {column: (checked[column].iloc[0] if len(checked) else None,
                     [p for p in problems if p.contract_column == column]) for column in _READ_AS_EXPORTED}


def _read_as_none(data: DataParams) -> str:
    """Which text a feedback event's field holds no value in, for its refusal."""
    words = [v for v in data.missing_values if v.strip()]
    return f"the service reads blank text{f' and {quoted(words)}' if words else ''} as not answered"


def outcome_names_setting(data: DataParams) -> str:
    """The params setting declaring the CRM's names of a decision's fields: a flat export's one mapping holds them."""
    return "data.mapping" + ("" if data.format == "flat" else ".outcomes")


@dataclass(frozen=True)
class SentUnder:
    """Where a /feedback body sent its decision's fields (`feedback_fields`): the name a field's value came in when it
    is not the field's own (a CRM's "StageName" for status), which the field's problems are at; and the problems of
    each field sent under two names with different values."""

    names: dict[str, str] = field(default_factory=dict)
    twice: list[dict] = field(default_factory=list)

    def at(self, column: str) -> tuple[str]:
        """The place of a problem with the field `column`: its name as sent."""
        return (self.names.get(column, column),)


def feedback_names(data: DataParams) -> dict[str, str]:
    """Each name /feedback reads a decision's field (a contract outcomes column) under, -> that field: those the
    service's data.mapping.outcomes declares for it (`crm_columns`: a CRM's "Closed Lost Reason" for reason; with
    data.format flat, data.mapping.leads too) and the field's own, as training reads an outcomes export's row
    (ingest.prepare_table; data.drop_columns are never read). /docs.json documents them (serving.openapi)."""
    return {name: column for column in OUTCOMES.columns for name in crm_columns(data, "outcomes", column)
            if name not in data.drop_columns}


def feedback_fields(body: dict, data: DataParams, names: dict[str, str]) -> tuple[dict, SentUnder]:
    """A /feedback body with each field of a decision sent under one of the `names` it is read under (`feedback_names`
    of the service's params, built once) under the field's own name; and where the body sent them (`SentUnder`), with
    a problem for each field sent under two names with different values (`one_value_per_column`, the rule /score
    reads a lead's fields by), which is left as sent."""
    columns, problems = one_value_per_column(body, "outcomes", data, names.get,
                                             declared_in=f"the service's {outcome_names_setting(data)}")
    out, sent_as = dict(body), {}
    for column, (names, value) in columns.items():
        for name in names:
            out.pop(name)
        out[column] = value
        sent = next((name for name in names if _answered(body[name], data)), names[0])  # the value read came in it
        if sent != column:
            sent_as[column] = sent
    return out, SentUnder(sent_as, problems)


def feedback_event(event: dict, sent: SentUnder, data: DataParams, label: LabelParams) -> tuple[dict, list[dict]]:
    """A feedback event in contract values (data.value_maps applied), checked against the label policy, and the
    warnings of what it leaves out (an amount it cannot read: `feedback_amount`).

    A status matches data.statuses in any letter case and a reason matches label.reasons as
    labelling matches them; both are stored as params spell them. Any reason given must be one of the
    codes: the closed loop learns from them, and a vague note teaches it nothing. A rejection without
    one (or one data.missing_values reads as not answered, a picklist's "Select") is stored as such, as an
    export's is read (label.missing_reason): refused, the decision would be
    lost until the next export, and monitor's "share of rejections with a reason code" could never see
    the gap it is there to measure. decided_at is read as an export's outcomes row reads it (`_as_outcome_cells`: the
    date reader a lead's created_at has, "Jun 2, 2025" too, and its refusals, which echo the value) and must be a
    date a decision can have (`serving.store.decision_date`); its amount is read in the same read (`feedback_amount`).

    A field sent under a CRM name is read as its own, and its problems are at the name sent (`sent`, as
    `feedback_fields` reads the body), beside those of a field sent under two names with different values.

    The event's ids follow the rule every id of the service follows (`id_error`); an id, status or decided_at
    that is blank or one of data.missing_values is no value given (type empty_value), refused as a well-formed value
    the service cannot use, as /score refuses a lead without an id (absent or null, the JSON check refused it).

    Raises:
        RequestError: an id that is none, unknown status, a reason that is not a code, or an impossible decided_at.
    """
    out, detail = dict(event), list(sent.twice)
    at = sent.at  # a problem's place: the field's name as sent
    for column in ("status", "reason"):
        value = out.get(column)
        value = None if value is None or not_answered(value, data) else str(value).strip()
        mapped = translate(pd.Series([value], dtype=object), data.value_maps.get(column, {})).iloc[0]
        out[column] = value if pd.isna(mapped) else mapped
    for column, whose in (("event_id", "this event"), ("lead_id", "the lead the decision is about")):
        if not_answered(event[column], data):
            detail.append(_detail(at(column), f"{column} {as_sent(event[column])} is no id ({_read_as_none(data)}): "
                                  f"send the CRM's id of {whose}", "empty_value"))
        elif error := id_error(event[column]):
            detail.append(_detail(at(column), error_message(error), error["type"]))
        else:
            out[column] = event[column].strip()
    choices = feedback_choices(data, label)
    status = contract_status(pd.Series([out["status"]], dtype="str"), data).iloc[0]
    if out["status"] is None:
        detail.append(_detail(at("status"), f"status {as_sent(event['status'])} is no decision "
                              f"({_read_as_none(data)}): send " + choices_in_words(*choices["status"]), "empty_value"))
    elif status not in data.statuses:
        detail.append(_detail(at("status"), f"unknown status {as_sent(event['status'])}: send "
                              + choices_in_words(*choices["status"]), "unknown_status"))
    out["status"] = status
    code = policy_reason(label, out["reason"])
    if label.reasons and code is None and out["reason"] is not None:
        detail.append(_detail(at("reason"), f"reason {as_sent(event['reason'])} is not a reason code: send no reason "
                              "(null), or " + choices_in_words(*choices["reason"]), "reason_code"))
    out["reason"] = code if code is not None else out["reason"]  # "No_Budget" and "no_budget" are one code
    cells = _as_outcome_cells(event, data)
    decided, problems = cells["decided_at"]
    detail += [_detail(at("decided_at"), p.message, p.kind) for p in problems]
    if not problems and pd.isna(decided):
        detail.append(_detail(at("decided_at"), f"decided_at {as_sent(event['decided_at'])} is no date "
                              f"({_read_as_none(data)}): send when sales decided", "empty_value"))
    elif not problems:
        try:
            out["decided_at"] = decision_date(decided, utc_naive(pd.Timestamp.now(tz="UTC")))
        except ValueError as err:
            detail.append(_detail(at("decided_at"), str(err), "decided_at_out_of_range"))
    if detail:
        named = "" if any(d["field"] == "event_id" for d in detail) else f" {out['event_id']!r}"
        raise RequestError(f"{len(detail)} problem(s) in feedback event{named}; it was not stored", detail)
    out["amount"], warnings = feedback_amount(*cells["amount"], at("amount")[0])
    return out, warnings + misnamed_feedback_warnings(event, out.pop("unread_fields", {}), data)


def misnamed_feedback_warnings(event: dict, unread: dict, data: DataParams) -> list[dict]:
    """A feedback receipt's warnings of its optional fields (reason, amount) holding no value (absent, null, blank,
    data.missing_values) while a field the service does not read (`unread`, as schemas.Feedback collects them) holds
    one under a name that looks like theirs written differently (`ingest.alike_column`, the rule /score's
    `misnamed_fields` follows): "Reason" for reason; else under a name holding theirs as a word: "reason_code",
    "rejection_reason", "Closed Lost Reason", "deal_amount". alike_column takes such a name for another field
    ("Campaign ID" beside "Campaign"), as it is among a lead's dozens of fields; a decision has one reason and one
    amount, so it is the CRM's name for it. The decision was stored without it, as a lead is scored without such a
    field; a field that looks like none is ignored silently, as /score ignores it (CRMs send many others)."""
    sent = sorted(name for name, value in unread.items() if _answered(value, data))
    out = []
    for name in ("reason", "amount"):
        if _answered(event.get(name), data):
            continue
        alike, why = alike_column(sent, name), ALIKE
        if alike is None:
            alike = next((other for other in sent if name in name_words(other)), None)
            why = f"whose name holds the word {name!r}"
        if alike is not None:
            out.append(_detail((alike,), f"field {name!r}, which /feedback reads, is not sent (the event has "
                               f"{alike!r}, {why}): the decision was stored without it; to record it, send the "
                               f"decision again under a new event_id with it as {name!r}", "misnamed_field"))
    return out
