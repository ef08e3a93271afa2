"""Ingest of CRM exports: mapping, validation findings a RevOps engineer can act on, dedupe, sources."""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import sqlalchemy as sa

from features.labels import build_labels
from pipelines.config import DataParams, LabelParams, Params
from pipelines.ingest import (API_CLIENT, AsOfError, ContractError, CRMData, Problem, as_of_time, load_crm,
                             prepare_table, read_source)
from serving.schemas import Feedback
from serving.scoring import SentUnder, feedback_event

# A CRM that names things its own way (Salesforce-like export).
MAPPING = {
    "leads": {
        "Lead ID": "lead_id",
        "Created Date": "created_at",
        "Email": "email",
        "Employees": "employees",
        "Industry": "industry",
        "Country": "country",
    },
    "activities": {"Lead ID": "lead_id", "Activity Date": "occurred_at", "Activity Type": "activity"},
    "outcomes": {"Lead ID": "lead_id", "Stage": "status", "Lost Reason": "reason", "Closed Date": "decided_at"},
}
STAGES = {"Closed Won": "converted", "Closed Lost": "rejected", "Open": "open"}


def lead(lead_id: str, created: str = "2024-01-05", email: str = "", employees: str = "10", **extra) -> dict:
    return {"Lead ID": lead_id, "Created Date": created, "Email": email, "Employees": employees, **extra}


def outcome(lead_id: str, stage: str = "Closed Lost", reason: str = "no_budget", closed: str = "2024-02-01") -> dict:
    return {"Lead ID": lead_id, "Stage": stage, "Lost Reason": reason, "Closed Date": closed}


def activity(lead_id: str, when: str = "2024-01-06", kind: str = "page_view") -> dict:
    return {"Lead ID": lead_id, "Activity Date": when, "Activity Type": kind}


def crm_params(tmp_path: Path, leads: list[dict], activities=None, outcomes=None, **data) -> Params:
    """Write the tables as CSVs in tmp_path and point params at them (relative paths)."""
    settings: dict = {"mapping": MAPPING, "value_maps": {"status": STAGES}, "missing_values": ["", "Select"]}
    for name, rows in (("leads", leads), ("activities", activities), ("outcomes", outcomes)):
        if rows is not None:
            columns = list(rows[0]) if rows else list(MAPPING[name])
            pd.DataFrame(rows, columns=columns).to_csv(tmp_path / f"{name}.csv", index=False)
            settings[name] = f"{name}.csv"
    settings.update(data)
    return Params.model_validate({"data": settings, "base_dir": tmp_path})


def only_problem(err: pytest.ExceptionInfo) -> Problem:
    assert len(err.value.problems) == 1, err.value.problems
    return err.value.problems[0]


# ------------------------------------------------------------------ each error kind is located


@pytest.mark.parametrize(
    ("table", "bad_row", "column", "contract", "kind", "words"),
    [
        ("leads", lead("L2", created="yesterday"), "Created Date", "created_at", "unparsable_date",
         "unparsable date 'yesterday'"),
        ("leads", lead("L2", employees="about 50"), "Employees", "employees", "bad_number",
         "not a number: 'about 50'"),
        ("leads", lead(""), "Lead ID", "lead_id", "empty_value", "empty lead_id"),
        ("leads", lead("L2", created=""), "Created Date", "created_at", "empty_value", "empty created_at"),
        ("outcomes", outcome("L1", stage="Negotiation"), "Stage", "status", "unknown_status",
         "unknown status 'Negotiation'"),
        # a flat export's lead without a stage yet: its blank is refused saying how to write it
        ("outcomes", outcome("L1", stage=""), "Stage", "status", "empty_value",
         "empty status (write the CRM's open stage for a lead not decided yet, and translate it to open with "
         "data.value_maps.status: a blank cell is missing, which no map translates)"),
        ("outcomes", outcome("L1", closed="31/31/2024"), "Closed Date", "decided_at", "unparsable_date",
         "'31/31/2024'"),
        ("activities", activity("L1", when="soon"), "Activity Date", "occurred_at", "unparsable_date", "'soon'"),
        # CRMs write "no date" as 0001-01-01 or 9999-12-31; features compute in int64 nanoseconds (1677-2262)
        ("activities", activity("L1", when="0001-01-01T00:00:00Z"), "Activity Date", "occurred_at",
         "date_out_of_range", "date out of range '0001-01-01T00:00:00Z' (expected 1970-01-01 to 2199-12-31)"),
        ("leads", lead("L2", created="9999-12-31"), "Created Date", "created_at", "date_out_of_range",
         "date out of range '9999-12-31'"),
        ("outcomes", outcome("L1", closed="2262-04-12"), "Closed Date", "decided_at", "date_out_of_range",
         "'2262-04-12'"),
        # a CSV cell is text: epoch seconds in one are refused like a JSON number, not read as 1970
        ("activities", activity("L1", when="1764000000"), "Activity Date", "occurred_at", "number_as_date",
         "a date is text such as 2026-01-31 or 2026-01-31T09:30:00Z, not the number '1764000000'"),
        ("outcomes", outcome("L1", closed="20240201"), "Closed Date", "decided_at", "number_as_date",
         "not the number '20240201'"),
        # a number is named as the file writes it, as batch scoring names it: '1e308', not 1e+308
        ("leads", lead("L2", employees="-5"), "Employees", "employees", "bad_number",
         "negative employees '-5' (employees counts something: 0 or more)"),
        ("leads", lead("L2", employees="inf"), "Employees", "employees", "bad_number",
         "number out of range 'inf' (a number field holds a finite number smaller than 1e+15 in size)"),
        ("leads", lead("L2", employees="1e308"), "Employees", "employees", "bad_number", "number out of range '1e308'"),
        ("leads", lead("L2", employees="9" * 401), "Employees", "employees", "bad_number",
         f"number out of range '{'9' * 39}... (403 characters)"),
    ],
)
def test_each_error_kind_names_source_row_and_crm_column(tmp_path, table, bad_row, column, contract, kind, words):
    rows = {"leads": [lead("L1")], "outcomes": [outcome("L1")], "activities": [activity("L1")]}
    rows[table] = rows[table] + [bad_row]
    params = crm_params(tmp_path, rows["leads"], rows["activities"], rows["outcomes"])

    with pytest.raises(ContractError) as err:
        load_crm(params)

    problem = only_problem(err)
    assert (problem.source, problem.row, problem.column, problem.contract_column, problem.kind) == (
        f"{table}.csv", 2, column, contract, kind
    )
    assert str(problem).startswith(f"{table}.csv row 2 (header not counted), column '{column}' ({contract}): ")
    assert words in str(problem)
    assert words in str(err.value)


DATE_FORM = "a date is text such as 2026-01-31 or 2026-01-31T09:30:00Z"
# The dated column of each table as a request sends it, with the other values of a good row.
DATED_ROWS = {
    "leads": ("Created Date", {"Lead ID": "L1"}),
    "activities": ("Activity Date", {"Lead ID": "L1", "Activity Type": "page_view"}),
    "outcomes": ("Closed Date", {"Lead ID": "L1", "Stage": "converted"}),
}


@pytest.mark.parametrize("table", DATED_ROWS)
@pytest.mark.parametrize(
    ("sent", "words"),
    [
        (1764000000, "not the number 1764000000"),  # epoch seconds: pandas reads nanoseconds after 1970
        (1764000000000, "not the number 1764000000000"),  # epoch milliseconds
        (1.5, "not the number 1.5"),
        (1e20, "not the number 1e+20"),
        (int("9" * 401), f"not the number {'9' * 40}... (401 characters)"),
        (True, "not True"),
        ("2026", "not the number '2026'"),  # pandas reads it as 2026-01-01
        (" 1764000000 ", "not the number ' 1764000000 '"),
    ],
)
def test_a_number_sent_as_a_date_is_refused_not_read_as_1970(table, sent, words):
    data = DataParams(leads="unused", mapping=MAPPING)
    column, row = DATED_ROWS[table]
    raw = pd.DataFrame.from_records([{**row, column: "2024-01-05T10:00:00Z"}, {**row, column: sent}])

    kept, problems = prepare_table(raw, table, data)

    assert kept.index.tolist() == [0]  # the row with a text date is kept
    assert [(p.row, p.column, p.kind) for p in problems] == [(2, column, "number_as_date")]
    assert problems[0].message == f"{DATE_FORM}, {words}"


@pytest.mark.parametrize("nan", [float("nan"), "NaN", " nan "])
def test_nan_in_a_number_field_is_a_missing_value_as_text_too(nan):
    raw = pd.DataFrame.from_records([{"Lead ID": "L1", "Created Date": "2024-01-05", "Employees": nan}])

    kept, problems = prepare_table(raw, "leads", DataParams(leads="unused", mapping=MAPPING))

    assert problems == [] and kept["employees"].isna().all()


@pytest.mark.parametrize("dtype", ["str", object, "category"])  # a CSV's column, a JSON batch's, a Parquet dictionary's
def test_a_number_with_a_plus_sign_reads_as_written(dtype):
    """pandas reads "+"-signed text by another parser: "+999999999999999.9" was 1e15 and refused as out of range
    while params, /docs.json and /feedback take it; "+9999999999999.2504" read as 9999999999999.252; "+4e 2" was
    400 where "4e 2" is no number."""
    sent = ["+999999999999999.9", " +9999999999999.2504 ", "+4e 2", "+1e15", "+.5"]
    raw = pd.DataFrame({"Lead ID": ["L1", "L2", "L3", "L4", "L5"], "Created Date": "2024-01-05",
                        "Employees": pd.Series(sent, dtype=dtype)})

    kept, problems = prepare_table(raw, "leads", DataParams(leads="unused", mapping=MAPPING))

    assert kept["employees"].tolist() == [999999999999999.9, 9999999999999.2504, 0.5]
    assert [(p.row, p.message.partition(" (")[0]) for p in problems] == [
        (3, "not a number: '+4e 2'"), (4, "number out of range '+1e15'")]


@pytest.mark.parametrize("amount", ["12500.50", " 1e3\t", "+.5", "5.", "-0", "5\u00a0", "\u20035",
                                    "\u0661\u0662\u0663", "1_000", "lots", "+999999999999999.9", "-5", "-.5"])
def test_an_amount_feedback_takes_is_one_an_export_reads(amount):
    """/feedback took "5\u00a0" as the amount 5 (Python's \\s and float() take it), which an export's amount, as any
    number field, refuses as no number: a number's text reads one way. Arabic-Indic digits neither takes."""
    event = {"event_id": "E1", "lead_id": "L1", "status": "converted", "decided_at": "2024-02-01", "amount": amount}
    stored, warnings = feedback_event(Feedback.model_validate(event).model_dump(), SentUnder(),
                                      DataParams(leads="unused"), LabelParams())
    taken = stored["amount"] is not None and not warnings
    raw = pd.DataFrame.from_records([{"Lead ID": "L1", "Stage": "converted", "amount": amount}])

    _, problems = prepare_table(raw, "outcomes", DataParams(leads="unused", mapping=MAPPING))

    assert taken == (problems == []), problems


def test_true_or_false_in_a_text_field_is_the_text_true_or_false_as_value_maps_and_missing_values_read_it():
    """A JSON, SQL or Parquet boolean in a text field is the CRM's yes/no: the text "true"/"false", as a CSV export
    of it reads, which data.value_maps matches in any letter case and data.missing_values as written. It was refused
    by row, while batch scoring read a Parquet one as the text "True"."""
    raw = pd.DataFrame.from_records([
        {"Lead ID": "L1", "Created Date": "2024-01-05", "Country": True, "Industry": True},
        {"Lead ID": "L2", "Created Date": "2024-01-05", "Country": False, "Industry": False},
        {"Lead ID": "L3", "Created Date": "2024-01-05", "Country": "US", "Industry": 42},  # a code is text enough
    ])
    data = DataParams(leads="unused", mapping=MAPPING, value_maps={"industry": {"TRUE": "retail"}},
                      missing_values=["false"])

    kept, problems = prepare_table(raw, "leads", data, "request")

    assert problems == []
    assert kept["country"].astype(object).where(kept["country"].notna(), None).tolist() == ["true", None, "US"]
    assert kept["industry"].astype(object).where(kept["industry"].notna(), None).tolist() == ["retail", None, "42"]


@pytest.mark.parametrize("sent", [1764000000, True])
def test_a_column_of_numbers_only_is_refused_as_dates_too(sent):
    """All numbers (a JSON batch, a CSV column pandas reads as int64) give a number-typed column."""
    raw = pd.DataFrame({"Lead ID": ["L1", "L2"], "Activity Date": [sent, sent], "Activity Type": "page_view"})

    kept, problems = prepare_table(raw, "activities", DataParams(leads="unused", mapping=MAPPING))

    assert len(kept) == 0
    assert [p.kind for p in problems] == ["number_as_date"] * 2
    assert "np." not in problems[0].message and f" {sent}" in problems[0].message


@pytest.mark.parametrize(
    ("sent", "words"),
    [
        (True, "not a number: True"),
        (False, "not a number: False"),
        (float("inf"), "number out of range inf"),
        (float("-inf"), "number out of range -inf"),
        (1e308, "number out of range 1e+308"),
        (int("9" * 401), "number out of range 9999"),
        (-5, "negative employees -5"),
        ("-5", "negative employees '-5'"),
    ],
)
def test_employees_is_a_finite_count(sent, words):
    raw = pd.DataFrame.from_records([lead("L1", employees=12), lead("L2", employees=sent)])

    kept, problems = prepare_table(raw, "leads", DataParams(leads="unused", mapping=MAPPING))

    assert kept["employees"].tolist() == [12.0]
    assert [(p.row, p.column, p.kind) for p in problems] == [(2, "Employees", "bad_number")]
    assert problems[0].message.startswith(words) and "np." not in problems[0].message


def test_a_column_of_booleans_is_not_read_as_ones_and_zeros():
    raw = pd.DataFrame({"Lead ID": ["L1", "L2"], "Created Date": "2024-01-05", "Employees": [True, False]})

    kept, problems = prepare_table(raw, "leads", DataParams(leads="unused", mapping=MAPPING))

    assert len(kept) == 0 and [p.message for p in problems] == ["not a number: True", "not a number: False"]


def test_nan_is_a_missing_number_and_zero_employees_is_a_count():
    """NaN cannot be told from a missing value once in a frame (a SQL NULL arrives as NaN too)."""
    raw = pd.DataFrame.from_records([lead("L1", employees=float("nan")), lead("L2", employees=0)])

    kept, problems = prepare_table(raw, "leads", DataParams(leads="unused", mapping=MAPPING))

    assert problems == []
    assert kept["employees"].isna().tolist() == [True, False] and kept["employees"].iloc[1] == 0


@pytest.mark.parametrize(
    ("when", "kept"),
    [("1970-01-01", True), ("2199-12-31T23:59:59", True), ("1969-12-31T23:59:59", False),
     ("2200-01-01", False), ("2199-12-31T23:00:00-05:00", False)],  # compared in UTC
)
def test_date_range_edges(when, kept):
    """On an activity: a CRM may book one ahead, so only the range bounds its date."""
    raw = pd.DataFrame.from_records([activity("L1", when=when)])

    activities, problems = prepare_table(raw, "activities", DataParams(leads="unused", mapping=MAPPING))

    assert len(activities) == int(kept)
    assert [p.kind for p in problems] == ([] if kept else ["date_out_of_range"])


def test_a_creation_or_decision_dated_after_now_is_refused_by_row():
    """One such date would become the export's 'now' and expire every open lead unconverted; an open
    deal's expected close date mapped as decided_at is the usual cause."""
    now = pd.Timestamp.now(tz="UTC").tz_localize(None)
    soon, later = f"{now + pd.Timedelta(hours=20):%Y-%m-%dT%H:%M:%S}", f"{now + pd.Timedelta(days=3):%Y-%m-%d}"
    data = DataParams(leads="unused", mapping=MAPPING, value_maps={"status": STAGES})

    leads, lead_problems = prepare_table(pd.DataFrame.from_records([lead("L1", created=soon), lead("L2", created=later)]),
                                         "leads", data, "leads.csv")
    outcomes, outcome_problems = prepare_table(pd.DataFrame.from_records(
        [outcome("L1", closed="2099-01-01"), outcome("L2", closed=soon)]), "outcomes", data, "outcomes.csv")

    assert leads["lead_id"].tolist() == ["L1"] and outcomes["lead_id"].tolist() == ["L2"]  # a clock a day ahead is fine
    assert [(p.row, p.column, p.kind) for p in lead_problems + outcome_problems] == [
        (2, "Created Date", "date_in_future"), (1, "Closed Date", "date_in_future")]
    assert "an open deal's close date, is not one" in str(outcome_problems[0])


DAY_MONTH_DATES = ["06/02/2025", "13/02/2025", "02/13/2025", "2025-06-02", "7.3.25 10:30", "06/13/2025"]


@pytest.mark.parametrize(("day_first", "read"), [
    # Unset: only the dates one order makes valid are read; 06/02/2025 and 7.3.25 are refused, by row.
    (None, [None, "2025-02-13 00:00", "2025-02-13 00:00", "2025-06-02 00:00", None, "2025-06-13 00:00"]),
    (True, ["2025-02-06 00:00", "2025-02-13 00:00", None, "2025-06-02 00:00", "2025-03-07 10:30", None]),
    (False, ["2025-06-02 00:00", None, "2025-02-13 00:00", "2025-06-02 00:00", "2025-07-03 10:30", "2025-06-13 00:00"]),
])
def test_a_date_written_day_and_month_first_reads_in_the_order_params_give(day_first, read):
    """A CRM export in a European locale writes 06/02/2025 for 6 February; pandas alone reads it as
    June 2 while reading 13/02/2025 as 13 February, and its dayfirst even turns 2025-06-02 around."""
    raw = pd.DataFrame({"Lead ID": [f"L{i}" for i in range(len(DAY_MONTH_DATES))], "Created Date": DAY_MONTH_DATES})
    data = DataParams(leads="unused", mapping=MAPPING, day_first=day_first)

    leads, problems = prepare_table(raw, "leads", data, "leads.csv")

    created = dict(zip(leads["lead_id"], leads["created_at"].dt.strftime("%Y-%m-%d %H:%M")))
    assert [created.get(f"L{i}") for i in range(len(read))] == read
    refused = {p.row: p for p in problems}
    assert sorted(refused) == [i + 1 for i, when in enumerate(read) if when is None]
    if day_first is None:
        assert {p.kind for p in problems} == {"ambiguous_date"}
        assert str(refused[1]) == ("leads.csv row 1 (header not counted), column 'Created Date' (created_at): date "
                                   "'06/02/2025' reads day "
                                   "first or month first: set data.day_first (true: 06/02/2025 is 6 February; "
                                   "false: it is June 2)")
    else:
        assert {p.kind for p in problems} == {"unparsable_date"}  # a 13th month, in the order given
        row, other = (3, "false") if day_first else (2, "true")
        assert refused[row].message.endswith(f"so 13 would be the month; set it to {other} if the export writes the "
                                             f"{'month' if day_first else 'day'} first)")


def test_a_date_no_order_makes_valid_gets_no_hint_about_the_order():
    raw = pd.DataFrame({"Lead ID": ["L1"], "Created Date": ["13/13/2025"]})
    _, (problem,) = prepare_table(raw, "leads", DataParams(leads="unused", mapping=MAPPING, day_first=False), "leads.csv")
    assert problem.message == "unparsable date '13/13/2025'"


def test_now_and_today_are_no_date():
    """pandas' date parser reads "now" and "today" as the moment it runs: a lead sent so was created whenever the
    export was read (and a --as-of or request as_of "now" passed as a date); each is refused as an unparsable date,
    beside a date that still reads."""
    raw = pd.DataFrame({"Lead ID": ["L1", "L2", "L3"], "Created Date": ["now", "today", "2024-01-08T18:07:00+01:00"]})

    leads, problems = prepare_table(raw, "leads", DataParams(leads="unused", mapping=MAPPING), "leads.csv")

    assert [(p.row, p.kind, p.message) for p in problems] == [
        (1, "unparsable_date", "unparsable date 'now'"), (2, "unparsable_date", "unparsable date 'today'")]
    assert leads["created_at"].tolist() == [pd.Timestamp("2024-01-08 17:07:00")]
    with pytest.raises(ValueError, match="unparsable date 'now'"):
        as_of_time("now")


# What Java's ZonedDateTime.toString() writes (Java/Kotlin CRM connectors), and the instant each is, in UTC.
JAVA_ZONED_DATES = {
    "2024-01-08T18:07:00Z[UTC]": "2024-01-08 18:07:00.000",
    "2024-01-08T18:07+01:00[Europe/Paris]": "2024-01-08 17:07:00.000",
    "2024-03-31T02:30:00.123+02:00[Europe/Berlin]": "2024-03-31 00:30:00.123",  # the offset decides, as in Java
    "2024-01-08T18:07:00[Europe/Paris]": "2024-01-08 17:07:00.000",  # no offset: read in the zone
    "2024-03-31T02:30:00[Europe/Berlin]": "2024-03-31 01:30:00.000",  # a time the clock skips: later by the gap
    "2024-10-27T02:30:00[Europe/Berlin]": "2024-10-27 00:30:00.000",  # a time the clock repeats: the earlier offset
}


def test_a_date_with_javas_zone_id_in_brackets_reads_as_the_instant_it_names():
    """Java's ZonedDateTime.toString() adds the zone id after the offset; such dates were refused as unparsable. An
    unknown zone id is refused naming it, among plain ISO dates that still read."""
    sent = [*JAVA_ZONED_DATES, "2024-01-08T18:07:00Z[Mars/Base]", "2024-01-08T18:07:00"]
    raw = pd.DataFrame({"Lead ID": [f"L{i}" for i in range(len(sent))], "Created Date": sent})

    leads, (problem,) = prepare_table(raw, "leads", DataParams(leads="unused", mapping=MAPPING), "leads.csv")

    read = leads["created_at"].dt.strftime("%Y-%m-%d %H:%M:%S.%f").str[:-3].tolist()
    assert read == [*JAVA_ZONED_DATES.values(), "2024-01-08 18:07:00.000"]
    assert (problem.row, problem.kind) == (len(JAVA_ZONED_DATES) + 1, "unparsable_date")
    assert problem.message.startswith("unparsable date '2024-01-08T18:07:00Z[Mars/Base]' (unknown time zone "
                                      "'Mars/Base' in brackets")


# Java's fixed-offset zone ids (ZoneId.of("UTC+01:00"), "GMT+2", "UT"), which zoneinfo has not, and the instant each
# date names, in UTC: Java's sign, UTC+01:00 an hour ahead of UTC (IANA's Etc/GMT+1 is an hour behind).
JAVA_FIXED_OFFSET_DATES = {
    "2024-01-08T18:07+01:00[UTC+01:00]": "2024-01-08 17:07:00",
    "2024-01-08T18:07Z[GMT]": "2024-01-08 18:07:00",
    "2024-01-08T18:07+02:00[GMT+02:00]": "2024-01-08 16:07:00",
    "2024-01-08T18:07-05:00[UT-05:00]": "2024-01-08 23:07:00",
    "2024-01-08T18:07+01:00[UTC+02:00]": "2024-01-08 17:07:00",  # the offset decides, as in Java
    "2024-01-08T18:07[UTC+01:00]": "2024-01-08 17:07:00",  # no offset: read at the id's
    "2024-01-08T18:07[GMT+2]": "2024-01-08 16:07:00",
    "2024-01-08T18:07:00[UT-05:00]": "2024-01-08 23:07:00",
    "2024-01-08T18:07[UT]": "2024-01-08 18:07:00",
    "2024-01-08T18:07[UTC+05:30:15]": "2024-01-08 12:36:45",
    "2024-01-08T18:07[Etc/GMT+1]": "2024-01-08 19:07:00",  # IANA's POSIX sign, as Java reads it too
}


def test_a_date_with_javas_fixed_offset_zone_id_in_brackets_reads_at_that_offset_as_java_means_it():
    """zoneinfo has no "UTC+01:00", "GMT+02:00" or "UT": such dates were refused as an unknown time zone, even after
    an offset that decides anyway. An offset past Java's 18 hours is refused naming the id."""
    sent = [*JAVA_FIXED_OFFSET_DATES, "2024-01-08T18:07[UTC+19:00]"]
    raw = pd.DataFrame({"Lead ID": [f"L{i}" for i in range(len(sent))], "Created Date": sent})

    leads, (problem,) = prepare_table(raw, "leads", DataParams(leads="unused", mapping=MAPPING), "leads.csv")

    assert leads["created_at"].dt.strftime("%Y-%m-%d %H:%M:%S").tolist() == list(JAVA_FIXED_OFFSET_DATES.values())
    assert (problem.row, problem.kind) == (len(sent), "unparsable_date")
    assert "(unknown time zone 'UTC+19:00' in brackets: give an IANA zone id such as Europe/Paris, a fixed one such " \
           "as UTC+01:00, or the UTC offset alone" in problem.message


@pytest.mark.parametrize("as_of", ["2026-01-31T00:00Z[UTC]", "2026-01-31T01:00+01:00[Europe/Paris]",
                                   "2026-01-31T01:00[Europe/Paris]", "2026-01-31T01:00[UTC+01:00]", " 2026-01-31 "])
def test_a_scoring_time_is_read_as_a_lead_date_is_java_zone_ids_included(as_of):
    """--as-of and a request's as_of had readers of their own, refusing Java's "...Z[UTC]" that created_at reads."""
    assert as_of_time(as_of) == pd.Timestamp("2026-01-31")


@pytest.mark.parametrize(("as_of", "kind", "message"), [
    ("2026-01-31T00:00Z[Mars/Base]", "unparsable_date", "unparsable date '2026-01-31T00:00Z[Mars/Base]' (unknown time "
                                                         "zone 'Mars/Base' in brackets"),
    ("yesterday", "unparsable_date", "unparsable date 'yesterday' (a date is text such as 2026-01-31"),
    ("", "unparsable_date", "unparsable date ''"),
    ("1764000000", "number_as_date", "a date is text such as 2026-01-31 or 2026-01-31T09:30:00Z, not the number "
                                     "'1764000000'"),
    ("01/02/2026", "ambiguous_date", "date '01/02/2026' reads day first or month first: write it year first"),
])
def test_a_scoring_time_that_is_no_date_is_refused_as_a_lead_date_is_naming_it(as_of, kind, message):
    with pytest.raises(AsOfError) as err:
        as_of_time(as_of)
    assert err.value.kind == kind and str(err.value).startswith(message)


def test_params_saved_with_a_model_before_a_setting_existed_load_with_its_default():
    """A registered model keeps the params it was trained with; one from before data.day_first still serves."""
    data = DataParams(leads="unused", mapping=MAPPING)
    state = data.__getstate__()
    state["__dict__"] = {k: v for k, v in state["__dict__"].items() if k != "day_first"}
    old = DataParams.__new__(DataParams)
    old.__setstate__(state)  # what unpickling the model does
    assert old.day_first is None and old == data


def test_dates_read_as_datetimes_are_range_checked_too():
    """Parquet and Arrow's typed CSV read give datetimes, not text; 9999-12-31 fits in microseconds."""
    raw = pd.DataFrame({"Lead ID": ["L1", "L2"],
                        "Created Date": pd.Series(["2024-01-05", "9999-12-31"], dtype="datetime64[us]")})

    leads, problems = prepare_table(raw, "leads", DataParams(leads="unused", mapping=MAPPING), "leads.parquet")

    assert leads["lead_id"].tolist() == ["L1"]
    assert str(problems[0]) == ("leads.parquet row 2, column 'Created Date' (created_at): date out of range "
                                "'9999-12-31T00:00:00' (expected 1970-01-01 to 2199-12-31)")


@pytest.mark.parametrize("as_of", ["0001-01-01T00:00:00", "2300-01-01T00:00:00Z", "9999-12-31T23:59:59"])
def test_an_as_of_outside_the_date_range_is_refused_by_name(as_of):
    with pytest.raises(ValueError, match=r"^as_of '.*' is out of range \(expected 1970-01-01 to 2199-12-31\)$"):
        as_of_time(as_of)


def test_as_of_is_naive_utc_like_the_dates_it_is_compared_with():
    assert as_of_time("2026-01-31T02:00:00+02:00") == pd.Timestamp("2026-01-31T00:00:00")


def test_missing_required_column_is_fatal_even_when_dropping_and_names_the_mapping(tmp_path):
    rows = [{k: v for k, v in lead("L1").items() if k != "Created Date"}]
    params = crm_params(tmp_path, rows, on_error="drop")

    with pytest.raises(ContractError) as err:
        load_crm(params)

    problem = only_problem(err)
    assert (problem.source, problem.row, problem.column, problem.contract_column) == (
        "leads.csv", None, "Created Date", "created_at"
    )
    assert "leads.csv" in str(err.value) and "'Created Date'" in str(err.value) and "created_at" in str(err.value)


def test_a_required_column_written_differently_is_named_in_the_error(tmp_path):
    """A header cell edited in Excel ('LEAD ID') or misspelt ('Creatd Date') is no mapped name; the error said only
    to set data.mapping, though the column was there. A different field that merely resembles one is not named."""
    rows = [{"LEAD ID": "L1", "Creatd Date": "2024-01-05"}]
    with pytest.raises(ContractError) as err:
        load_crm(crm_params(tmp_path, rows))
    messages = [p.message for p in err.value.problems]
    assert messages == [
        "missing required column 'Lead ID' (contract column lead_id; the export has 'LEAD ID', which looks like the "
        "same name written differently: rename it, or map it in data.mapping.leads)",
        "missing required column 'Created Date' (contract column created_at; the export has 'Creatd Date', which "
        "looks like the same name written differently: rename it, or map it in data.mapping.leads)",
    ]
    # Words joined another CRM's way: 'Lead_Id' differs from 'Lead ID' by more than difflib's misspelling ratio.
    with pytest.raises(ContractError) as err:
        load_crm(crm_params(tmp_path, [{"Lead_Id": "L1", "Created Date": "2024-01-05"}]))
    assert [p.message for p in err.value.problems] == [
        "missing required column 'Lead ID' (contract column lead_id; the export has 'Lead_Id', which looks like the "
        "same name written differently: rename it, or map it in data.mapping.leads)"]
    with pytest.raises(ContractError) as err:
        load_crm(crm_params(tmp_path, [{"Lead ID": "L1", "Updated Date": "2024-01-05"}]))
    assert [p.message for p in err.value.problems] == [
        "missing required column 'Created Date' (contract column created_at; set data.mapping.leads if the CRM names "
        "it differently)"]


def test_a_mapped_feature_column_written_differently_is_named_in_the_warning():
    """A mapped export's header edited in Excel ('Lead Source ', 'do not email') was warned about as the features
    listing the CRM's name ("the features name the contract's columns: list 'lead_source'"), which they did not: the
    header written differently is named, as for an unmapped one; listing the CRM's name still says to list the
    contract's."""
    from pipelines.ingest import absent_columns

    data = DataParams(leads="leads.csv", mapping={"leads": {
        "Prospect ID": "lead_id", "Lead Source": "lead_source", "Do Not Email": "do_not_email", "Country": "country"}})
    header = ["Prospect ID", "Lead Source ", "do not email", "Country Name"]

    assert absent_columns(header, "leads", data, ["do_not_email", "country", "Lead Source"]) == {
        "Do Not Email": "it has 'do not email', which looks like the same name written differently",
        "Country": None,  # a word more: another field
        "Lead Source": "data.mapping.leads reads it as 'lead_source', and the features name the contract's columns: "
                       "list 'lead_source'",
    }
    assert absent_columns(header, "leads", data, ["lead_source"]) == {
        "Lead Source": "it has 'Lead Source ', which looks like the same name written differently"}


@pytest.mark.parametrize(("header", "name", "alike"), [
    ("CreatedDate", "created_at", "CreatedDate"),  # Salesforce
    ("Create Date", "created_at", "Create Date"),  # HubSpot's label
    ("createdate", "created_at", "createdate"),  # HubSpot's internal name
    ("createdon", "created_at", "createdon"),  # Dynamics 365's
    ("createdby", "created_at", None),  # Dynamics 365's user who created the lead
    ("Created On", "Created Date", "Created On"),
    ("actualclosedate", "decided_at", None),
    ("occurredon", "occurred_at", "occurredon"),
    ("ClosedDate", "decided_at", None),  # another field, not the same name written differently
    ("Updated Date", "created_at", None),
    ("Created By", "created_at", None),
    ("CreatedById", "created_at", None),
    ("Campaign ID", "Campaign", None),  # a word more: another field
    ("CampaignId", "Campaign", None),
    ("Phone 2", "Phone", None),
])
def test_a_crm_date_column_joined_and_spelt_another_way_is_named_for_the_contract_one(header, name, alike):
    """A Salesforce export has 'CreatedDate' where the contract wants created_at: the error only said to set
    data.mapping, as neither difflib's ratio of the names (0.86) nor their letters alone matched. Their letters are
    now compared by the ratio too, but a column holding the name's every word and more is another field. Dynamics 365's
    'createdon' (0.78) is the date with another last word, as 'Created On' is 'Created Date'; its 'createdby' is not."""
    from pipelines.ingest import alike_column

    assert alike_column(["Id", header, "LastModifiedDate"], name) == alike
    if name == "created_at":
        raw = pd.DataFrame({"lead_id": ["L1"], header: ["2024-01-05"]}, dtype="str")
        (problem,) = prepare_table(raw, "leads", DataParams(leads="leads.csv"), "leads.csv")[1]
        assert problem.message == "missing required column 'created_at' (contract column created_at; " + (
            f"the export has {header!r}, which looks like the same name written differently: rename it, or map it "
            "in data.mapping.leads)" if alike else "set data.mapping.leads if the CRM names it differently)")


def test_a_csv_naming_a_column_twice_is_refused_unless_that_name_is_dropped(tmp_path):
    """A report joining leads and accounts writes 'Industry' twice; pandas read the second as 'Industry.1', so the
    model learnt from whichever came first, without a word."""
    params = crm_params(tmp_path, [lead("L1")])
    (tmp_path / "leads.csv").write_text("Lead ID,Created Date,Industry,Industry,Notes,Notes\n"
                                        "L1,2024-01-05,software,retail,a,b\n")
    with pytest.raises(ValueError, match=r"leads.csv: the header names 'Industry', 'Notes' more than once, so which "
                                         r"column is meant is unclear; rename the copies"):
        load_crm(params)

    dropped = Params.model_validate({**params.model_dump(), "data": {**params.data.model_dump(),
                                                                     "drop_columns": ["Industry", "Notes"]}})
    assert load_crm(dropped).leads["industry"].isna().all()


@pytest.mark.parametrize("on_error", ["stop", "drop"])
def test_two_columns_mapping_to_one_are_read_once_where_they_agree_and_refuse_only_a_row_where_they_differ(
        tmp_path, on_error):
    """An export carrying a column under the CRM's mapped name and the contract's ('Industry' and 'industry', as an
    integration adding the documented names writes it) was refused whole, as the service refuses only a lead whose
    two fields differ. Agreeing values (as text, stripped; a blank or data.missing_values holds none) are read
    once; a row whose values differ is refused like any bad row, naming the row, both columns and both values."""
    leads = [lead("L1", Industry="software", industry="software"), lead("L2", Industry=" retail", industry="retail "),
             lead("L3", Industry="", industry="health"), lead("L4", Industry="Select", industry="finance"),
             lead("L5", Industry="software", industry="retail"), lead("L6", Industry="", industry="")]
    params = crm_params(tmp_path, leads, on_error=on_error)
    words = ("leads.csv row 5 (header not counted), column 'Industry' (industry): 'Industry' and 'industry' map to "
             "one column, industry (data.mapping), and hold different values ('Industry': 'software', 'industry': "
             "'retail'): the row is refused rather than one picked; make them agree, or leave one out "
             "(data.drop_columns)")
    if on_error == "stop":
        with pytest.raises(ContractError) as err:
            load_crm(params)
        assert [str(p) for p in err.value.problems] == [words]
        assert only_problem(err).kind == "ambiguous_column"
        return
    crm = load_crm(params)
    assert crm.leads["lead_id"].tolist() == ["L1", "L2", "L3", "L4", "L6"]
    assert crm.leads["industry"].tolist()[:4] == ["software", "retail", "health", "finance"]
    assert pd.isna(crm.leads["industry"].iloc[4])
    assert crm.report.tables["leads"].dropped == {"ambiguous_column": 1}
    assert [str(p) for p in crm.report.problems] == [words]


def test_two_columns_mapping_to_one_agree_where_they_read_as_one_date_or_number_whatever_their_types(tmp_path):
    """A Parquet export with the CRM's datetime column and the contract's text beside it (2024-01-05 00:00:00 and
    "2024-01-05"), or a number and its text (3.0 and "3.0"), had every row refused as holding different values,
    compared as text. They compare as the contract column reads them: a date as its time, a number as its value; a
    row whose date or number differs is still refused, naming both values."""
    pd.DataFrame({
        "Lead ID": ["L1", "L2", "L3", "L4", "L5"],
        "Created Date": pd.to_datetime(["2024-01-05", "2024-01-06 09:30:00", "2024-01-07", "2024-01-08", "2024-01-09"],
                                       format="ISO8601"),
        "created_at": ["2024-01-05", "2024-01-06T10:30:00+01:00", "2024-01-07", "2024-01-09", "2024-01-09"],
        "Employees": [12.0, 12.5, 3.0, 4.0, 7.0], "employees": ["12", "12.50", " 3.0", "4", "7.5"],
    }).to_parquet(tmp_path / "leads.parquet")
    params = Params.model_validate({"data": {"leads": "leads.parquet", "mapping": MAPPING, "on_error": "drop"},
                                    "base_dir": tmp_path})

    crm = load_crm(params)

    assert crm.leads["created_at"].astype(str).tolist() == ["2024-01-05 00:00:00", "2024-01-06 09:30:00",
                                                            "2024-01-07 00:00:00"]
    assert crm.leads["employees"].tolist() == [12.0, 12.5, 3.0]
    assert [str(p).split("(data.mapping), ")[1] for p in crm.report.problems] == [
        "and hold different values ('Created Date': '2024-01-08T00:00:00', 'created_at': '2024-01-09'): the row is "
        "refused rather than one picked; make them agree, or leave one out (data.drop_columns)",
        "and hold different values ('Employees': 7.0, 'employees': '7.5'): the row is refused rather than one picked; "
        "make them agree, or leave one out (data.drop_columns)"]


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
@pytest.mark.parametrize("drop_columns", [[], ["Lead Score"]])
def test_columns_without_a_name_are_read_as_unmapped_ones_unless_drop_columns_lists_a_blank(tmp_path, drop_columns,
                                                                                            fmt):
    """pandas' to_csv() writes its index under a blank name, Excel an empty column of the sheet, Arrow a query's
    unnamed expressions; nothing can name such a column, so two are not a name written twice. They were read only
    while data.drop_columns was empty: listing any column made training skip them, and so decide whether rows
    differing only there (the index) were identical duplicates. They are read as any column the mapping does not
    name, unless drop_columns lists "", from a Parquet file as from a CSV (it was refused as a name written twice)."""
    rows = [",Lead ID,Created Date,,Industry,", "0,L1,2024-01-05,a,software,", "1,L1,2024-01-05,b,software,"]

    def load(on_error: str = "stop", blank_dropped: bool = False) -> CRMData:
        params = crm_params(tmp_path, [lead("L1")], drop_columns=drop_columns + [""] * blank_dropped, on_error=on_error)
        if fmt == "csv":
            (tmp_path / "leads.csv").write_text("\n".join(rows) + "\n")
            return load_crm(params)
        cells = [row.split(",") for row in rows[1:]]
        table = pa.Table.from_arrays([pa.array([row[i] or None for row in cells]) for i in range(6)],
                                     names=rows[0].split(","))
        pq.write_table(table, tmp_path / "leads.parquet")
        return load_crm(Params.model_validate({**params.model_dump(), "data": {
            **params.data.model_dump(), "leads": str(tmp_path / "leads.parquet")}}))

    with pytest.raises(ContractError) as err:  # the rows differ in the index, as they might in any other column
        load()
    assert only_problem(err).message == ("duplicate lead_id 'L1' with different values (Unnamed: 0, Unnamed: 3), "
                                         "also on row 1")
    assert load(on_error="drop").leads_header == ["Unnamed: 0", "Lead ID", "Created Date", "Unnamed: 3", "Industry",
                                                  "Unnamed: 5"]

    crm = load(blank_dropped=True)
    assert crm.leads_header == ["Lead ID", "Created Date", "Industry"]
    assert crm.leads["industry"].tolist() == ["software"] and crm.report.tables["leads"].dropped == {"identical_duplicate": 1}


def test_a_parquet_export_naming_a_column_twice_is_refused_unless_that_name_is_dropped(tmp_path):
    """Arrow stopped on a bare 'Multiple matches for FieldRef.Name(Industry)' traceback; the CSV's rule holds."""
    params = crm_params(tmp_path, [lead("L1")])
    columns = {"Lead ID": "L1", "Created Date": "2024-01-05", "Industry": "software"}
    table = pa.Table.from_arrays([pa.array([v]) for v in [*columns.values(), "retail"]], names=[*columns, "Industry"])
    pq.write_table(table, tmp_path / "leads.parquet")
    data = {**params.data.model_dump(), "leads": str(tmp_path / "leads.parquet")}

    with pytest.raises(ValueError, match=r"leads.parquet: the header names 'Industry' more than once"):
        load_crm(Params.model_validate({**params.model_dump(), "data": data}))
    dropped = Params.model_validate({**params.model_dump(), "data": {**data, "drop_columns": ["Industry"]}})
    assert load_crm(dropped).leads["lead_id"].tolist() == ["L1"]


def test_created_at_is_optional_for_undated_exports(tmp_path):
    rows = [{"Lead ID": "L1", "Industry": "software"}]
    params = crm_params(tmp_path, rows, dated=False)

    crm = load_crm(params)

    assert crm.leads["lead_id"].tolist() == ["L1"]
    assert crm.leads["created_at"].isna().all()
    assert crm.leads["industry"].tolist() == ["software"]


@pytest.mark.parametrize("on_error", ["stop", "drop"])
def test_an_export_without_any_creation_date_is_one_error_naming_data_dated(tmp_path, on_error):
    """A CRM without creation dates refused each of its rows (a 5,000-line error, or with drop no lead left) and never
    said that such an export is read with data.dated: false."""
    leads = [lead(f"L{i}", created="") for i in range(30)]
    params = crm_params(tmp_path, leads, outcomes=[outcome(f"L{i}") for i in range(30)], on_error=on_error)

    with pytest.raises(ContractError) as err:
        load_crm(params)

    problem = only_problem(err)
    assert (problem.row, problem.column, problem.kind) == (None, "Created Date", "undated_leads")
    assert "created_at is empty on every one of the 30 lead rows: an export without creation dates is read with " \
           "data.dated: false" in str(err.value)
    assert "data.on_error" not in str(err.value)  # dropping rows cannot help

    crm = load_crm(crm_params(tmp_path, [lead("L0"), *leads[1:]], on_error="drop"))  # one dated: the rest by row
    assert crm.report.tables["leads"].dropped == {"empty_value": 29}
    assert load_crm(crm_params(tmp_path, leads, dated=False)).leads["created_at"].isna().all()


def test_stop_summarises_counts_per_column_and_kind_and_lists_the_first_twenty(tmp_path):
    rows = [lead(f"L{i}", created="never") for i in range(25)] + [lead("X", employees="many")]
    params = crm_params(tmp_path, rows)

    with pytest.raises(ContractError) as err:
        load_crm(params)

    message = str(err.value)
    assert len(err.value.problems) == 26
    assert "25 x unparsable date in leads.csv, column 'Created Date' (created_at)" in message
    assert "1 x bad number in leads.csv, column 'Employees' (employees)" in message
    assert "row 20 (header not counted)" in message and "row 21 (header not counted)" not in message


def test_drop_keeps_the_good_rows_and_accounts_for_every_dropped_one(tmp_path):
    leads = [lead("L1"), lead("L2", created="yesterday"), lead("L3")]
    outcomes = [outcome("L1"), outcome("L2"), outcome("L3", stage="Closed Won")]
    params = crm_params(tmp_path, leads, outcomes=outcomes, on_error="drop")

    crm = load_crm(params)

    assert crm.leads["lead_id"].tolist() == ["L1", "L3"]
    assert crm.outcomes["lead_id"].tolist() == ["L1", "L3"]  # L2's outcome has no lead any more
    leads_report, outcomes_report = crm.report.tables["leads"], crm.report.tables["outcomes"]
    assert (leads_report.rows_read, leads_report.rows_kept, leads_report.dropped) == (3, 2, {"unparsable_date": 1})
    assert outcomes_report.dropped == {"unknown_lead": 1}
    assert [(p.source, p.row, p.kind) for p in crm.report.problems] == [
        ("leads.csv", 2, "unparsable_date"),
        ("outcomes.csv", 2, "unknown_lead"),
    ]
    assert crm.report.as_dict()["leads.dropped.unparsable_date"] == 1
    assert any("1 unparsable date" in line for line in crm.report.lines())


def test_a_crm_number_column_the_features_read_refuses_its_row_not_the_export(tmp_path):
    """features.numeric may name a column of the CRM's own (X Education's TotalVisits): a cell that is
    not a number is a problem of its row, which on_error drops, as for the contract's employees."""
    leads = [lead("L1", Visits="3"), lead("L2", Visits="lots"), lead("L3", Visits=" 4 "), lead("L4", Visits="")]
    params = crm_params(tmp_path, leads, outcomes=[outcome(i) for i in ("L1", "L2", "L3", "L4")], on_error="drop")
    params = Params.model_validate({**params.model_dump(), "features": {"numeric": ["Visits"]}})

    crm = load_crm(params)

    assert crm.leads["lead_id"].tolist() == ["L1", "L3", "L4"]
    assert crm.leads["Visits"].tolist()[:2] == [3.0, 4.0] and pd.isna(crm.leads["Visits"].iloc[2])
    assert str(crm.report.problems[0]) == "leads.csv row 2 (header not counted), column 'Visits': not a number: 'lots'"


def test_a_crm_count_declared_non_negative_refuses_a_negative_value_naming_its_row(tmp_path):
    """features.non_negative: -3 visits is a broken export row, not a lead with fewer visits than none."""
    leads = [lead("L1", Visits="3"), lead("L2", Visits="-3"), lead("L3", Visits="0")]
    params = crm_params(tmp_path, leads, outcomes=[outcome(i) for i in ("L1", "L2", "L3")], on_error="drop")
    params = Params.model_validate({**params.model_dump(), "features": {"numeric": ["Visits"], "non_negative": ["Visits"]}})

    crm = load_crm(params)

    assert crm.leads["lead_id"].tolist() == ["L1", "L3"]
    assert str(crm.report.problems[0]) == ("leads.csv row 2 (header not counted), column 'Visits': negative Visits '-3' "
                                           "(Visits counts something: 0 or more)")
    with pytest.raises(ValueError, match="features.non_negative: 'Visit' not in features.numeric"):
        Params.model_validate({**params.model_dump(), "features": {"numeric": ["Visits"], "non_negative": ["Visit"]}})


AMOUNT_MAPPING = {**MAPPING, "outcomes": {**MAPPING["outcomes"], "Amount": "amount"}}


def test_a_bad_deal_amount_leaves_out_the_amount_not_the_decision(tmp_path):
    """A deal amount is money won: -250 or 'TBD' is no amount (the service's feedback, too, stores the decision without it and warns). It is
    left out and reported by cell, the row kept: refusing the row lost its decision, so a won lead trained as never
    decided. A bad decision or decision date still refuses its row, and then its amount is not said to be kept."""
    outcomes = [outcome(lead_id, stage=stage, reason="", closed=closed) | {"Amount": amount}
                for lead_id, stage, closed, amount in (
                    ("L1", "Closed Won", "2024-02-01", "1200"), ("L2", "Closed Won", "2024-02-01", "-250"),
                    ("L3", "Closed Won", "2024-02-01", "TBD"), ("L4", "Closed Won", "2024-02-01", "-0"),
                    ("L5", "Closed Won", "2024-02-01", ""), ("L6", "Negotiation", "2024-02-01", "-100"),
                    ("L7", "Closed Won", "31/31/2024", "500"))]
    params = crm_params(tmp_path, [lead(f"L{i}") for i in range(1, 8)], outcomes=outcomes, on_error="drop",
                        mapping=AMOUNT_MAPPING)

    crm = load_crm(params)

    kept = crm.outcomes.set_index("lead_id")
    assert kept["status"].to_dict() == {f"L{i}": "converted" for i in range(1, 6)}
    assert kept["amount"].fillna(-1).to_dict() == {"L1": 1200.0, "L2": -1, "L3": -1, "L4": 0.0, "L5": -1}
    row = "outcomes.csv row {} (header not counted), column '{}' ({}): "
    assert [str(p) for p in crm.report.problems] == [
        row.format(7, "Closed Date", "decided_at") + "unparsable date '31/31/2024'",
        row.format(3, "Amount", "amount") + "not a number: 'TBD'; the row is kept without this value",
        row.format(2, "Amount", "amount") + "negative amount '-250' (amount counts something: 0 or more); the row is "
                                            "kept without this value",
        row.format(6, "Amount", "amount") + "negative amount '-100' (amount counts something: 0 or more)",
        row.format(6, "Stage", "status") + "unknown status 'Negotiation' (expected one of ['converted', 'rejected', "
                                           "'nurture', 'duplicate', 'open']; translate CRM values with "
                                           "data.value_maps.status)"]
    report = crm.report.tables["outcomes"]
    assert (report.rows_read, report.rows_kept, report.dropped) == (7, 5, {"unparsable_date": 1, "unknown_status": 1})
    assert report.cleared == {"amount": 2} and crm.report.as_dict()["outcomes.cleared.amount"] == 2
    assert crm.report.lines()[1].endswith("dropped: 1 unparsable date, 1 unknown status; values left out of rows kept: "
                                          "2 invalid amount")
    labels = build_labels(crm.leads, crm.outcomes, params.label, as_of=pd.Timestamp("2025-01-01")).frame
    assert labels.loc[["L2", "L3"], "rule"].tolist() == ["positive:converted"] * 2  # trained as won, not as open

    with pytest.raises(ContractError, match="negative amount '-250'") as err:  # data.on_error: stop still stops
        load_crm(params.model_copy(update={"data": params.data.model_copy(update={"on_error": "stop"})}))
    assert "set data.on_error: drop to load it without these rows (and the rows said to be kept, without those " \
           "values)" in str(err.value)


def test_a_flat_row_with_a_bad_amount_keeps_its_lead_and_decision(tmp_path):
    """In a flat export the amount is a cell of the lead's row: a bad one leaves the lead and its decision in; a row
    refused for its lead's own problem takes its amount with it, and says so."""
    rows = [{"Lead ID": "L1", "Created Date": "2024-01-01", "Stage": "Closed Won", "Amount": "-90"},
            {"Lead ID": "L2", "Created Date": "yesterday", "Stage": "Closed Won", "Amount": "-80"},
            {"Lead ID": "L3", "Created Date": "2024-01-03", "Stage": "Closed Won", "Amount": "70"}]
    pd.DataFrame(rows).to_csv(tmp_path / "export.csv", index=False)
    params = Params.model_validate({"data": {
        "format": "flat", "leads": "export.csv", "mapping": {"leads": {**MAPPING["leads"], **AMOUNT_MAPPING["outcomes"]}},
        "value_maps": {"status": STAGES}, "on_error": "drop"}, "base_dir": tmp_path})

    crm = load_crm(params)

    assert crm.leads["lead_id"].tolist() == ["L1", "L3"]
    assert crm.outcomes.set_index("lead_id")["amount"].fillna(-1).to_dict() == {"L1": -1, "L3": 70.0}
    assert crm.outcomes["status"].tolist() == ["converted", "converted"]
    assert [(p.row, p.column, p.kind, p.row_kept) for p in crm.report.problems] == [
        (2, "Created Date", "unparsable_date", False), (1, "Amount", "bad_number", True),
        (2, "Amount", "bad_number", False)]
    assert crm.report.tables["outcomes"].cleared == {"amount": 1}
    assert crm.report.tables["leads"].dropped == crm.report.tables["outcomes"].dropped == {"unparsable_date": 1}


def test_good_export_loads_into_contract_dtypes(tmp_path):
    leads = [lead("00123", created="2024-03-01T10:00:00+02:00", email="a@b.com"), lead("L2", created="03/04/2024")]
    params = crm_params(tmp_path, leads, outcomes=[outcome("00123", stage="Closed Won", reason="", closed="2024-03-20")],
                        day_first=False)  # a US export: 03/04/2024 is March 4

    crm = load_crm(params)

    assert crm.leads["lead_id"].tolist() == ["00123", "L2"]  # ids keep their leading zeros
    assert crm.leads["created_at"].tolist() == [pd.Timestamp("2024-03-01 08:00"), pd.Timestamp("2024-03-04")]
    assert crm.leads["employees"].dtype == "float64"
    assert list(crm.leads.columns[:2]) == ["lead_id", "created_at"]
    assert crm.outcomes["status"].tolist() == ["converted"]
    assert crm.outcomes["reason"].isna().all()
    assert crm.leads.index.equals(pd.RangeIndex(2))


# ------------------------------------------------------------------ duplicates


def test_identical_duplicate_rows_collapse_silently_and_are_counted(tmp_path):
    params = crm_params(tmp_path, [lead("L1"), lead("L2"), lead("L1")])

    crm = load_crm(params)

    assert crm.leads["lead_id"].tolist() == ["L1", "L2"]
    assert crm.report.tables["leads"].dropped == {"identical_duplicate": 1}


def test_conflicting_duplicate_lead_id_is_a_problem_pointing_at_the_other_row(tmp_path):
    leads = [lead("L1", employees="10"), lead("L2"), lead("L1", employees="500")]

    with pytest.raises(ContractError) as err:
        load_crm(crm_params(tmp_path, leads))
    problem = only_problem(err)
    assert (problem.row, problem.column, problem.kind) == (3, "Lead ID", "duplicate_lead_id")
    assert problem.message == "duplicate lead_id 'L1' with different values (Employees), also on row 1"

    crm = load_crm(crm_params(tmp_path, leads, on_error="drop"))
    assert crm.leads.set_index("lead_id")["employees"].to_dict() == {"L1": 10.0, "L2": 10.0}  # first kept


def test_dedupe_by_email_keeps_earliest_lead_and_repoints_its_activities(tmp_path):
    leads = [
        lead("L1", created="2024-02-01", email=" Ann@Granitedata.com "),
        lead("L2", created="2024-01-01", email="ann@granitedata.com"),
        lead("L3", created="2024-01-15", email="bob@granitedata.com"),
        lead("L4", created="2024-01-20"),
        lead("L5", created="2024-01-21"),  # no e-mail: never merged with L4
    ]
    activities = [activity("L1", kind="demo_request"), activity("L2"), activity("L3"), activity("L9")]
    outcomes = [outcome("L1", stage="Closed Won"), outcome("L2"), outcome("L3")]
    params = crm_params(tmp_path, leads, activities, outcomes, dedupe_by_email=True)

    crm = load_crm(params)

    assert crm.leads["lead_id"].tolist() == ["L2", "L3", "L4", "L5"]
    assert crm.activities["lead_id"].tolist() == ["L2", "L2", "L3"]  # L1's demo request now on L2
    assert crm.activities["activity"].tolist()[0] == "demo_request"
    assert crm.outcomes["lead_id"].tolist() == ["L2", "L3"]  # the merged lead's outcome is dropped
    report = crm.report.tables
    assert report["leads"].dropped == {"merged_by_email": 1}
    assert report["activities"].repointed == 1
    assert report["activities"].dropped == {"unknown_lead": 1}  # L9: counted, not a problem
    assert report["outcomes"].dropped == {"merged_by_email": 1}
    assert crm.report.problems == []


def test_activities_of_no_lead_are_counted_naming_a_few_of_their_lead_ids_as_sent(tmp_path):
    """"dropped: 5 lead_id not in leads" gave the user no id to look up, so not why (a cell holding two ids): the
    line names up to three, each once, as the export wrote them."""
    leads = [lead("51234008"), lead("51234036")]
    activities = [activity("51234008"), activity("51234008;51234036"), activity("51234008;51234036"),
                  activity("L-7"), activity("51234036"), activity("9"), activity("10")]
    crm = load_crm(crm_params(tmp_path, leads, activities))

    assert crm.report.tables["activities"].dropped == {"unknown_lead": 5}
    assert crm.report.lines()[1].endswith("dropped: 5 lead_id not in leads (e.g. '51234008;51234036', 'L-7', '9')")
    assert "e.g." not in load_crm(crm_params(tmp_path, leads, activities[:1])).report.lines()[1]


def test_dedupe_by_email_merges_addresses_only_never_a_crms_placeholders(tmp_path):
    """A CRM writes "test" or "none" for people who gave no address, or "test@test.com" where the field wants an
    address's shape: different people, each with their outcome."""
    placeholders = ["none", "None ", "test", "test", "x@x", "X@X", "test@test.com", "Test@Test.com", "none@none.com",
                    "noemail@noemail.com", "na@na.com", "na@na.com", "a@a.com", "a@a.com", "x@example.com",
                    "x@example.com", "someone@domain.invalid", "someone@domain.invalid", "noemail@gmail.com",
                    "noemail@gmail.com"]
    others = ["Ann@Granitedata.com", " ann@granitedata.COM", "john@john.com", "john@john.com"]
    ids = [f"L{i}" for i in range(1, len(placeholders) + len(others) + 1)]
    leads = [lead(i, created=f"2024-01-{n:02}", email=e) for n, (i, e) in enumerate(zip(ids, placeholders + others), 1)]
    activities = [activity(i) for i in ids]
    outcomes = [outcome(i, stage="Closed Won" if n % 2 else "Closed Lost") for n, i in enumerate(ids)]

    crm = load_crm(crm_params(tmp_path, leads, activities, outcomes, dedupe_by_email=True))

    ann, ann_again, john, john_again = ids[len(placeholders):]
    assert crm.merged_by_email.to_dict() == {ann_again: ann, john_again: john}  # only real addresses merge
    assert crm.leads["lead_id"].tolist() == [i for i in ids if i not in (ann_again, john_again)]
    assert crm.outcomes.set_index("lead_id")["status"].to_dict() == {
        i: "converted" if n % 2 else "rejected" for n, i in enumerate(ids) if i not in (ann_again, john_again)}
    assert crm.activities["lead_id"].tolist() == ids[:len(placeholders)] + [ann, ann, john, john]
    assert crm.report.tables["leads"].dropped == {"merged_by_email": 2}
    assert crm.report.tables["leads"].email_not_address == len(placeholders)
    assert (f"{len(placeholders)} with an e-mail that is no address ('test', 'x@x', 'test@test.com'), not merged by it"
            in crm.report.lines()[0])


def test_latest_decision_per_lead_wins_whatever_the_file_order(tmp_path):
    outcomes = [
        outcome("L1", stage="Closed Won", closed="2024-03-01"),
        outcome("L1", stage="Closed Lost", closed="2024-02-01"),
        outcome("L1", stage="Open", closed=""),
    ]
    crm = load_crm(crm_params(tmp_path, [lead("L1")], outcomes=outcomes))

    assert crm.outcomes["status"].tolist() == ["converted"]
    assert crm.report.tables["outcomes"].dropped == {"superseded": 2}


def test_a_leads_file_of_its_header_only_beside_outcomes_is_one_problem_not_one_per_outcome(tmp_path):
    """Each outcome was listed as naming an unknown lead: thousands of lines hiding the one cause."""
    params = crm_params(tmp_path, [], activities=[activity("L1")], outcomes=[outcome(f"L{i}") for i in range(500)])

    with pytest.raises(ContractError) as err:
        load_crm(params)

    assert str(only_problem(err)) == ("leads.csv: no lead row (its header only) beside 1 activity row(s) and 500 "
                                      "outcome row(s) of leads: export the leads with them (a report filter that "
                                      "matched no lead?)")


def test_outcome_for_unknown_lead_is_a_problem(tmp_path):
    params = crm_params(tmp_path, [lead("L1")], outcomes=[outcome("L1"), outcome("GHOST")])

    with pytest.raises(ContractError) as err:
        load_crm(params)

    problem = only_problem(err)
    assert (problem.source, problem.row, problem.column) == ("outcomes.csv", 2, "Lead ID")
    assert problem.kind == "unknown_lead"
    assert "'GHOST'" in problem.message


# ------------------------------------------------------------------ mapping rules


def test_missing_values_become_na_but_a_real_na_value_survives(tmp_path):
    leads = [lead("L1", Country="NA", Industry="Select"), lead("L2", Country=" Select ", Industry="software")]
    crm = load_crm(crm_params(tmp_path, leads))

    assert crm.leads["country"].tolist()[0] == "NA"  # Namibia, not 'not available'
    assert crm.leads["country"].isna().tolist() == [False, True]
    assert crm.leads["industry"].isna().tolist() == [True, False]


def test_a_blank_cell_is_not_answered_even_when_missing_values_is_empty():
    """data.missing_values defaults to none; a blank or spaces-only number refused its row there ("not a number:
    '  '"), though /feedback and /docs.json read a blank field as not known (ingest.not_answered)."""
    data = DataParams(leads="unused", missing_values=[])
    raw = pd.DataFrame({"lead_id": ["L1", "L2"], "created_at": ["2025-01-01", "2025-01-02"],
                        "employees": ["", "  "], "industry": ["  ", "software"]})

    leads, problems = prepare_table(raw, "leads", data)

    assert problems == [] and leads["lead_id"].tolist() == ["L1", "L2"]
    assert leads["employees"].isna().all() and leads["industry"].isna().tolist() == [True, False]


def test_value_maps_translate_crm_codes_including_numeric_columns():
    data = DataParams(leads="x", value_maps={"status": {"1": "converted", "0": "rejected"}})
    raw = pd.DataFrame({"lead_id": [7, 8], "status": [1.0, 0.0]})  # ints read back from SQL as floats

    outcomes, problems = prepare_table(raw, "outcomes", data)

    assert problems == []
    assert outcomes["lead_id"].tolist() == ["7", "8"]
    assert outcomes["status"].tolist() == ["converted", "rejected"]


def test_value_maps_match_a_crm_label_in_any_letter_case_as_statuses_do():
    """A CRM's API may send 'closed won' where the picklist export says 'Closed Won'."""
    data = DataParams(leads="x", value_maps={"status": STAGES, "reason": {"No Budget": "no_budget"}})
    raw = pd.DataFrame({"lead_id": ["1", "2", "3"], "status": ["closed won", " CLOSED LOST", "Closed Won"],
                        "reason": [None, "no budget", None]})

    outcomes, problems = prepare_table(raw, "outcomes", data)

    assert problems == []
    assert outcomes["status"].tolist() == ["converted", "rejected", "converted"]
    assert outcomes["reason"].tolist()[1] == "no_budget"


@pytest.mark.parametrize("flat", [False, True])
def test_a_reason_a_value_map_translates_is_spelled_as_the_crm_writes_it(tmp_path, flat):
    """A HubSpot "Closed Lost Reason" mapped to the policy's codes: the audit and the score card read the code as
    words ("Unresponsive") where the CRM's reps pick "No response"; a reason the map leaves alone keeps its own."""
    from models.reasons import reason_in_words

    leads = [lead(f"L{i}") for i in range(4)]
    outcomes = [outcome("L0", reason="No response"), outcome("L1", reason=" no response "),
                outcome("L2", reason="No response"), outcome("L3", reason="Ringing")]
    maps = {"status": STAGES, "reason": {"NO RESPONSE": "unresponsive"}}
    if flat:
        params = crm_params(tmp_path, [{**row, **result} for row, result in zip(leads, outcomes)], format="flat",
                            value_maps=maps, mapping={"leads": {**MAPPING["leads"], **MAPPING["outcomes"]}})
    else:
        params = crm_params(tmp_path, leads, outcomes=outcomes, value_maps=maps)

    crm = load_crm(params)

    assert crm.outcomes["reason"].str.strip().str.lower().tolist() == ["unresponsive"] * 3 + ["ringing"]
    assert crm.export_spellings("reason") == {"unresponsive": "No response", "ringing": "Ringing"}
    assert reason_in_words("unresponsive", crm.export_spellings("reason")) == "No response"


@pytest.mark.parametrize("sent", [-1, -1.0, "-1", " -1 "])
def test_a_number_data_missing_values_lists_is_not_answered_whatever_else_the_batch_sends(sent):
    """A CRM sending -1 for an unknown headcount, with "-1" in data.missing_values: the JSON number -1 was refused
    as a negative employees when every lead of the request sent a number, and read as not known beside a lead
    that sent text. A number compares as its text, as an export writes it: -1.0 is "-1"."""
    data = DataParams(leads="unused", mapping=MAPPING, missing_values=["", "-1"])

    for batch in ([sent], [sent, 12], [sent, "N/A"]):
        raw = pd.DataFrame.from_records([lead(f"L{i}", employees=value) for i, value in enumerate(batch)])
        kept, problems = prepare_table(raw, "leads", data)
        assert [p.message for p in problems if p.row == 1] == [] and pd.isna(kept["employees"].iloc[0]), batch
    # Text is compared as written: "-1.0" is not the "-1" listed, and reads as the number it is.
    _, problems = prepare_table(pd.DataFrame.from_records([lead("L1", employees="-1.0")]), "leads", data)
    assert [p.message for p in problems] == ["negative employees '-1.0' (employees counts something: 0 or more)"]


def test_a_csv_column_of_numbers_reads_data_missing_values_as_a_column_with_text_does(tmp_path):
    """A CSV column holding numbers only is read as numbers: its -1 was refused where the same cell beside an
    "N/A" (a column of text) was not known."""
    for other in ("12", "N/A"):
        params = crm_params(tmp_path, [lead("L1", employees="-1"), lead("L2", employees=other)],
                            missing_values=["", "N/A", "-1"])
        assert load_crm(params).leads["employees"].isna().tolist() == [True, other == "N/A"]


@pytest.mark.parametrize("sent", [5, 5.0, "5", " 5 "])
def test_a_value_map_translates_a_lead_whatever_else_the_batch_sends(sent):
    """A JSON 5.0 matched data.value_maps' "5" alone or beside other numbers (a column of numbers), but beside a
    lead sending text it was compared as "5.0" and kept untranslated: a lead's score hung on its batch-mates. An
    untranslated number was the category "7" or "7.0" the same way."""
    data = DataParams(leads="unused", mapping=MAPPING, value_maps={"industry": {"5": "software"}})

    for others in ([], [8], ["retail"], [8.5, "retail"]):
        raw = pd.DataFrame.from_records([lead(f"L{i}", Industry=value, Country=float(7))
                                         for i, value in enumerate([sent, *others])])
        kept, problems = prepare_table(raw, "leads", data)
        assert problems == [] and (kept["industry"].iloc[0], kept["country"].iloc[0]) == ("software", "7"), others
    # A number is read as an export writes it (5, not 5.0); text as written, "5.0" being another label.
    kept, _ = prepare_table(pd.DataFrame.from_records([lead("L1", Industry="5.0"), lead("L2", Industry=5)]), "leads", data)
    assert kept["industry"].tolist() == ["5.0", "software"]


def test_a_status_value_map_to_a_status_params_lack_is_refused_when_params_load():
    """`"Won": "closed"` loaded, and then refused every export row and /feedback event saying Won as an unknown
    status 'closed': the fix was in params, named only once rows came in."""
    from pipelines.config import PROJECT_ROOT, ParamsError, load_params

    with pytest.raises(ParamsError) as refused:
        load_params(PROJECT_ROOT / "params.yaml", overrides={"data.value_maps": {"status": {
            "Lost": "rejected", "Won": "closed"}}})
    assert ("  - data.value_maps.status.Won: translates 'Won' to 'closed', which is not in data.statuses ['converted', "
            "'rejected', 'nurture', 'duplicate', 'open']; map it to one of them, or add 'closed' to data.statuses"
            ) in str(refused.value)
    # A status is matched in any letter case, blanks around it removed: so is a map's.
    loaded = load_params(PROJECT_ROOT / "params.yaml", overrides={"data.value_maps": {"status": {"Won": " Converted "}}})
    assert loaded.data.value_maps["status"] == {"Won": " Converted "}


def test_an_unquoted_yes_or_no_in_params_is_refused_saying_to_quote_it(tmp_path):
    """YAML reads `No: rejected` (X Education's own "No"), `Won: yes` or `- no` as true/false: pydantic said only
    'Input should be a valid string' at `value_maps.status[0].[key]`, naming neither the word nor the fix."""
    from pipelines.config import ParamsError, load_params

    params = tmp_path / "params.yaml"
    params.write_text("data:\n  leads: leads.csv\n  value_maps:\n    status:\n      No: rejected\n"
                      "      Won: converted\n    lead_source:\n      Web: yes\n  missing_values: [Select, no]\n")
    with pytest.raises(ParamsError) as refused:
        load_params(params)
    quote = ": YAML reads an unquoted yes/no, on/off or true/false as true/false; quote it to mean the text, e.g. \"No\""
    lines = str(refused.value).splitlines()[1:]
    assert sorted(lines) == sorted([f"  - data.value_maps.status: a key reads as false{quote}",
                                    f"  - data.value_maps.lead_source.Web: the value reads as true{quote}",
                                    f"  - data.missing_values[1]: the value reads as false{quote}"])
    params.write_text(params.read_text().replace("No:", '"No":').replace("yes", '"yes"').replace("no]", '"no"]'))
    loaded = load_params(params).data
    assert (loaded.value_maps["status"]["No"], loaded.missing_values) == ("rejected", ["Select", "no"])


def test_value_map_spellings_of_one_label_that_disagree_are_refused_naming_both(tmp_path):
    """Labels match in any letter case: 'Won' and 'WON' mapped apart would let one silently overrule the other."""
    from pipelines.config import PROJECT_ROOT, ParamsError, load_params

    same = load_params(PROJECT_ROOT / "params.yaml", overrides={"data.value_maps": {"status": {
        "Won": "converted", "WON": "converted"}}})  # two spellings saying the same are fine
    assert same.data.value_maps["status"] == {"Won": "converted", "WON": "converted"}
    with pytest.raises(ParamsError, match=r"  - data\.value_maps\.status: 'Won' and ' WON' are one label \(matched in "
                                          r"any letter case\) mapped to 'converted' and to 'rejected'; keep one of them"):
        load_params(PROJECT_ROOT / "params.yaml", overrides={"data.value_maps": {"status": {
            "Won": "converted", " WON": "rejected"}}})


@pytest.mark.parametrize("label", ["", "  "])
def test_a_value_map_of_a_blank_label_is_refused_as_never_matching(label):
    """`status: {"": open}` (a flat export's leads without a stage are open) loaded and did nothing: a blank cell is
    always missing, so the rows were still refused as "empty status", the map looking right."""
    from pipelines.config import PROJECT_ROOT, ParamsError, load_params

    with pytest.raises(ParamsError, match=re.escape(
            f"data.value_maps.status: the blank label {label!r} never matches, as a blank cell is always a missing "
            "value; write the value in the export instead")):
        load_params(PROJECT_ROOT / "params.yaml", overrides={"data.value_maps": {"status": {label: "open"}}})


@pytest.mark.parametrize("column, label, value, why", [
    ("employees", "Unknown", "", "no number"), ("employees", "5", "lots", "no number"),
    ("employees", "Mid-market", "200-500", "no number"), ("employees", "Mid-market", "2,5", "no number"),
    ("employees", "Huge", "1e15", "not smaller than 1e+15 in size"), ("employees", "Shrinking", "-5", "below 0"),
    ("amount", "n/a", "NaN", "no number"), ("visits", "many", "lots", "no number"), ("visits", "fewer", "-1", "below 0")])
def test_a_number_fields_value_map_to_no_number_it_takes_is_refused_naming_the_label(column, label, value, why):
    """`"Unknown": ""` on employees refused each lead the CRM sent "Unknown" for, as "not a number: ''", naming
    neither the label nor the map; `"5": "lots"` made the service refuse the number 5, which /docs.json took."""
    from pipelines.config import PROJECT_ROOT, ParamsError, load_params

    with pytest.raises(ParamsError) as refused:
        load_params(PROJECT_ROOT / "params.yaml", overrides={
            "data.value_maps": {column: {label: value}}, "features.numeric": ["employees", "visits"],
            "features.non_negative": ["employees", "visits"]})
    assert f"  - data.value_maps.{column}.{label}: translates {label!r} to {value!r}, {why}; {column} takes a " in str(refused.value)
    assert f"if {label!r} means not known, list it in data.missing_values instead" in str(refused.value)


@pytest.mark.parametrize("column, label", [("employees", "-5"), ("employees", "1e15"), ("visits", " -1 ")])
def test_a_number_fields_value_map_label_that_is_a_number_the_field_refuses_is_refused(column, label):
    """`"-5": "0"` on employees (0 or more): the service took -5 while /docs.json refused it, as it refuses any
    negative employees, whatever params translate (JSON Schema cannot list numbers by the text a map matches)."""
    from pipelines.config import PROJECT_ROOT, ParamsError, load_params

    with pytest.raises(ParamsError, match=rf"  - data\.value_maps\.{column}\.{re.escape(label)}: the label "
                                          rf"{re.escape(repr(label))} is a number {column} refuses \("):
        load_params(PROJECT_ROOT / "params.yaml", overrides={
            "data.value_maps": {column: {label: "0"}}, "features.numeric": ["employees", "visits"],
            "features.non_negative": ["employees", "visits"]})


def test_a_number_fields_value_map_renaming_labels_and_codes_to_numbers_it_takes_loads():
    """A size picklist read as a headcount, and codes renamed to other numbers; a text field's labels are not numbers."""
    from pipelines.config import PROJECT_ROOT, load_params

    maps = {"employees": {"11-50": "30", "Enterprise": " 5e3 ", "1": "10", "-0": "0"}, "amount": {"1k": "1000"},
            "lead_source": {"TT": "TikTok"}}
    params = load_params(PROJECT_ROOT / "params.yaml", overrides={"data.value_maps": maps})
    assert params.data.value_maps == maps


@pytest.mark.parametrize("table, raw, maps, said", [
    ("outcomes", {"lead_id": ["L1"], "status": [" Won "]}, {"status": {"won": "closed"}},
     "unknown status 'closed' (expected one of ['converted', 'rejected', 'nurture', 'duplicate', 'open']; translate CRM "
     "values with data.value_maps.status); the CRM sent ' Won ', which data.value_maps.status translates to 'closed'"),
    # A model trained before params refused a number field's map to "" still holds it (LeadScorer.data).
    ("leads", {"lead_id": ["L1"], "created_at": ["2025-01-01"], "employees": ["Unknown"]}, {"employees": {"unknown": ""}},
     "not a number: ''; the CRM sent 'Unknown', which data.value_maps.employees translates to ''")])
def test_a_row_refused_for_what_a_value_map_translates_names_the_label_the_crm_sent(table, raw, maps, said):
    """The refusal named only the translation ("not a number: ''"), which the export nowhere holds: the admin could
    not tell which CRM label, nor which map, to fix."""
    data = DataParams(leads="unused", value_maps=maps)

    _, problems = prepare_table(pd.DataFrame(raw), table, data)

    assert [p.message for p in problems] == [said]


def test_a_currency_amount_in_a_number_field_is_refused_saying_to_leave_its_symbol_out():
    """A Salesforce report writes its Annual Revenue as '$34,740,000': refused as "not a number" with advice to write
    no thousands separator, which the file may well hold (data.decimal_mark), and no word of the '$' that was wrong."""
    from pipelines.ingest import API_CLIENT

    raw = pd.DataFrame({"lead_id": ["L1", "L2", "L3", "L4"], "created_at": ["2025-01-01"] * 4,
                        "employees": ["$34,740,000", "1.234,5 \u20ac", "USD 1,200.00", "-\u00a312"]})

    _, problems = prepare_table(raw, "leads", DataParams(leads="unused"))
    _, served = prepare_table(raw.iloc[:1], "leads", DataParams(leads="unused"), audience=API_CLIENT)

    fix = ("an amount of money: export it as a number, without its currency; with data.sql_url, select a PostgreSQL "
           'money column as one, "employees"::numeric AS "employees"')
    assert [p.message for p in problems] == [
        f"not a number: '$34,740,000' ({fix})", f"not a number: '1.234,5 \u20ac' ({fix})",
        f"not a number: 'USD 1,200.00' ({fix})", f"not a number: '-\u00a312' ({fix})"]
    assert [p.message for p in served] == [
        "not a number: '$34,740,000' (an amount of money: send the number alone, without its currency)"]


def test_a_picklist_band_in_a_number_field_is_refused_saying_which_value_map_turns_it_into_a_number():
    """A CRM's "Number of Employees" picklist ('51-200', '10,001+') was refused as "not a number: '51-200'" with no
    word of data.value_maps.employees, which reads each band as a number; an API client is told to send one."""
    from pipelines.ingest import API_CLIENT

    raw = pd.DataFrame({"lead_id": ["L1", "L2", "L3", "L4", "L5"], "created_at": ["2025-01-01"] * 5,
                        "employees": ["51-200", " 10,001+", "<10", "2024-01-05", "1,234"]})
    fix = "a band of numbers: translate each label to one number with data.value_maps.employees, e.g. '11-50': '30'"

    _, problems = prepare_table(raw, "leads", DataParams(leads="unused"))
    _, served = prepare_table(raw.iloc[:1], "leads", DataParams(leads="unused"), audience=API_CLIENT)

    assert [p.message for p in problems] == [
        f"not a number: '51-200' ({fix})", f"not a number: ' 10,001+' ({fix})", f"not a number: '<10' ({fix})",
        "not a number: '2024-01-05'",
        "not a number: '1,234' (write numbers with a decimal point and no thousands separator: 1234.5)"]
    assert [p.message for p in served] == ["not a number: '51-200' (a band of numbers: send one number)"]


@pytest.mark.parametrize("decimal_mark", ["comma", "either"])
def test_a_number_a_value_map_translates_to_reads_as_params_write_it_whatever_the_files_decimal_mark(decimal_mark):
    """A map's "2.125" is params' text (a decimal point, as YAML writes numbers): a file writing numbers with a
    decimal comma read it as 2125, and one that may write either refused it as ambiguous."""
    data = DataParams(leads="unused", value_maps={"amount": {"Small deal": "2.125"}})
    raw = pd.DataFrame({"lead_id": ["L1", "L2"], "status": ["converted", "converted"], "amount": ["Small deal", "1.234,5"]})

    outcomes, problems = prepare_table(raw, "outcomes", data, decimal_mark=decimal_mark)

    assert problems == [] and outcomes["amount"].tolist() == [2.125, 1234.5]


def test_dictionary_coded_activities_check_exactly_as_plain_text():
    """Batch scoring reads activity lead ids and types dictionary-coded; the rows kept, their values
    and every problem must be what the same text gives."""
    data = DataParams(leads="unused", mapping=MAPPING, missing_values=["", "Select"])
    raw = pd.DataFrame({
        "Lead ID": [" L1", "L1 ", "", "L2", "Select", None, "L3"],
        "Activity Date": ["2024-01-02", "2024-01-03", "2024-01-04", "soon", "2024-01-05", "2024-01-06", "2024-01-07"],
        "Activity Type": ["page_view", " page_view", "form_fill", "webinar", "form_fill", "page_view", " Select"],
    }, index=range(10, 17))
    coded = raw.astype({"Lead ID": "category", "Activity Type": "category"})

    plain, plain_problems = prepare_table(raw, "activities", data, "acts.csv")
    checked, problems = prepare_table(coded, "activities", data, "acts.csv")

    assert checked["lead_id"].dtype == "category"  # still coded: batch scoring encodes it for free
    assert problems == plain_problems
    assert [str(p) for p in problems] == [
        "acts.csv row 3 (header not counted), column 'Lead ID' (lead_id): empty lead_id",
        "acts.csv row 5 (header not counted), column 'Lead ID' (lead_id): empty lead_id",
        "acts.csv row 6 (header not counted), column 'Lead ID' (lead_id): empty lead_id",
        "acts.csv row 4 (header not counted), column 'Activity Date' (occurred_at): unparsable date 'soon'",
        "acts.csv row 7 (header not counted), column 'Activity Type' (activity): empty activity",
    ]
    pd.testing.assert_frame_equal(checked.astype({"lead_id": "str", "activity": "str"}), plain)
    assert checked.index.tolist() == [10, 11]
    assert checked["lead_id"].tolist() == ["L1", "L1"]  # padded ids are one lead
    assert checked["activity"].cat.codes.tolist() == [0, 0]  # and padded types one type


def test_drop_columns_are_never_read(tmp_path):
    leads = [lead("L1", **{"Lead Score": "99", "Industry": "software"})]
    crm = load_crm(crm_params(tmp_path, leads, drop_columns=["Lead Score"]))

    assert "Lead Score" not in crm.leads.columns
    assert "industry" in crm.leads.columns


def test_a_required_column_dropped_by_drop_columns_says_so(tmp_path):
    """A Salesforce leads report carries 'Stage' too; dropping it there drops the outcomes' status column."""
    params = crm_params(tmp_path, [lead("L1", Stage="Open")], outcomes=[outcome("L1")], drop_columns=["Stage"])
    with pytest.raises(ContractError) as err:
        load_crm(params)

    problem = only_problem(err)
    assert problem.column == "Stage" and problem.contract_column == "status"
    assert "listed in data.drop_columns" in problem.message
    assert "set data.mapping" not in problem.message  # the column is there, named as mapped


def test_flat_export_splits_outcomes_off_and_refuses_a_bad_row_as_a_whole(tmp_path):
    rows = [
        {"Lead ID": "L1", "Created Date": "2024-01-01", "Industry": "it", "Stage": "Closed Won", "Lost Reason": ""},
        {"Lead ID": "L2", "Created Date": "2024-01-02", "Industry": "retail", "Stage": "Closed Lost",
         "Lost Reason": "no_budget"},
        {"Lead ID": "L3", "Created Date": "2024-01-03", "Industry": "retail", "Stage": "Stalled", "Lost Reason": ""},
    ]
    pd.DataFrame(rows).to_csv(tmp_path / "export.csv", index=False)
    flat_mapping = {"leads": {**MAPPING["leads"], **MAPPING["outcomes"]}}
    params = Params.model_validate(
        {
            "data": {"format": "flat", "leads": "export.csv", "mapping": flat_mapping,
                     "value_maps": {"status": STAGES}, "on_error": "drop"},
            "base_dir": tmp_path,
        }
    )

    crm = load_crm(params)

    assert crm.leads["lead_id"].tolist() == ["L1", "L2"]
    assert not {"status", "reason", "Stage", "Lost Reason"} & set(crm.leads.columns)
    assert crm.outcomes["lead_id"].tolist() == ["L1", "L2"]
    assert crm.outcomes["status"].tolist() == ["converted", "rejected"]
    assert crm.outcomes["reason"].isna().tolist() == [True, False] and crm.outcomes["reason"][1] == "no_budget"
    assert crm.leads["industry"].tolist() == ["it", "retail"]
    assert [(p.row, p.column, p.kind) for p in crm.report.problems] == [(3, "Stage", "unknown_status")]
    assert crm.report.tables["leads"].dropped == crm.report.tables["outcomes"].dropped == {"unknown_status": 1}


def test_activities_that_name_no_lead_at_all_refuse_the_export_instead_of_training_without_them(tmp_path):
    """Leads keyed '000123' and activities keyed 123 (a database's number) match nothing: every lead
    would silently train as never active."""
    leads = [lead("000123"), lead("000124")]
    activities = [activity("123"), activity("124"), activity("124", kind="demo_request")]

    with pytest.raises(ContractError) as err:
        load_crm(crm_params(tmp_path, leads, activities=activities, on_error="drop"))
    assert only_problem(err).kind == "no_known_lead"
    assert "none of the 3 activity rows names a lead of the leads table (activity lead ids such as '123', " \
           "lead ids such as '000123')" in str(err.value)

    activities.append(activity("000123"))  # one that matches: the others are activities of deleted leads
    assert len(load_crm(crm_params(tmp_path, leads, activities=activities)).activities) == 1


def test_a_decision_dated_before_its_lead_was_created_is_refused_by_row(tmp_path):
    """Usually decided_at mapped to the wrong CRM field; a day of slack covers time zones."""
    leads = [lead("L1", created="2024-03-10"), lead("L2", created="2024-03-10T20:00:00"), lead("L3", created="2024-03-10")]
    outcomes = [outcome("L1", closed="2024-01-15"), outcome("L2", closed="2024-03-10T02:00:00"), outcome("L3")]

    with pytest.raises(ContractError) as err:
        load_crm(crm_params(tmp_path, leads, outcomes=outcomes))
    problems = err.value.problems
    assert [(p.row, p.column, p.kind) for p in problems] == [(1, "Closed Date", "decided_before_created"),
                                                            (3, "Closed Date", "decided_before_created")]
    assert "decided 2024-01-15 00:00:00 before its lead was created (2024-03-10 00:00:00)" in str(problems[0])

    crm = load_crm(crm_params(tmp_path, leads, outcomes=outcomes, on_error="drop"))
    assert crm.outcomes["lead_id"].tolist() == ["L2"] and crm.leads["lead_id"].tolist() == ["L1", "L2", "L3"]
    assert crm.report.tables["outcomes"].dropped == {"decided_before_created": 2}


def test_a_flat_lead_written_twice_with_another_outcome_names_the_outcome_columns_that_differ(tmp_path):
    rows = [{"Lead ID": "L1", "Created Date": "2024-03-10", "Stage": "Closed Won", "Closed Date": "2024-04-01"},
            {"Lead ID": "L1", "Created Date": "2024-03-10", "Stage": "Closed Lost", "Closed Date": "2024-04-02"}]
    pd.DataFrame(rows).to_csv(tmp_path / "export.csv", index=False)
    params = Params.model_validate({"data": {"format": "flat", "leads": "export.csv",
                                             "mapping": {"leads": {**MAPPING["leads"], **MAPPING["outcomes"]}},
                                             "value_maps": {"status": STAGES}}, "base_dir": tmp_path})

    with pytest.raises(ContractError) as err:
        load_crm(params)
    assert only_problem(err).message == ("duplicate lead_id 'L1' with different values (Stage, Closed Date), "
                                         "also on row 1")


def test_a_flat_row_decided_before_its_creation_is_refused_as_a_whole(tmp_path):
    rows = [{"Lead ID": "L1", "Created Date": "2024-03-10", "Stage": "Closed Won", "Closed Date": "2024-01-15"},
            {"Lead ID": "L2", "Created Date": "2024-03-10", "Stage": "Closed Won", "Closed Date": "2024-04-01"}]
    pd.DataFrame(rows).to_csv(tmp_path / "export.csv", index=False)
    params = Params.model_validate({"data": {"format": "flat", "leads": "export.csv", "on_error": "drop",
                                             "mapping": {"leads": {**MAPPING["leads"], **MAPPING["outcomes"]}},
                                             "value_maps": {"status": STAGES}}, "base_dir": tmp_path})

    crm = load_crm(params)

    assert crm.leads["lead_id"].tolist() == crm.outcomes["lead_id"].tolist() == ["L2"]
    assert crm.report.tables["leads"].dropped == crm.report.tables["outcomes"].dropped == {"decided_before_created": 1}


# ------------------------------------------------------------------ sources


def test_parquet_source_with_timezone_aware_dates(tmp_path):
    frame = pd.DataFrame(
        {"Lead ID": ["L1"], "Created Date": pd.to_datetime(["2024-05-01 12:00"]).tz_localize("Europe/Berlin")}
    )
    frame.to_parquet(tmp_path / "leads.parquet")
    params = Params.model_validate(
        {"data": {"leads": "leads.parquet", "mapping": MAPPING}, "base_dir": tmp_path}
    )

    crm = load_crm(params)

    assert crm.leads["created_at"].tolist() == [pd.Timestamp("2024-05-01 10:00")]  # naive UTC


def test_an_excel_separator_hint_above_the_header_is_refused_by_name(tmp_path):
    """Excel's "sep=;" first line was read as the header: the export was refused as missing lead_id, which it has."""
    (tmp_path / "leads.csv").write_text('"sep=;"\nLead ID;Created Date\nL1;2024-01-05\n')
    params = Params.model_validate({"data": {"leads": "leads.csv", "mapping": MAPPING}, "base_dir": tmp_path})

    with pytest.raises(ValueError, match=r"leads.csv: the first line '\"sep=;\"' is Excel's separator hint, not the "
                                         r"header row; delete that line"):
        load_crm(params)


def test_a_reports_footer_below_its_rows_is_refused_as_one(tmp_path):
    """Salesforce Classic's Export Details ends a report's rows with its name, a copyright, 'Generated By' and the
    company: read as leads with only an id, each was refused for its empty date with advice for a lead."""
    (tmp_path / "leads.csv").write_text(
        'Lead ID,Created Date\nL1,2024-01-05\nL2,2024-01-06\n\n"Leads Report"\n"Copyright (c) 2000-2025 '
        'salesforce.com, inc. All rights reserved."\n"Generated By:  Jane Doe  10/1/2025 9:02 AM"\n"Acme Corp"\n')
    params = Params.model_validate({"data": {"leads": "leads.csv", "mapping": MAPPING}, "base_dir": tmp_path})

    with pytest.raises(ValueError) as refused:
        load_crm(params)

    assert str(refused.value) == (
        f"{tmp_path / 'leads.csv'}: its last 4 row(s) (rows 3-6, header not counted) hold a value in the first column "
        "only, starting 'Leads Report': a report's footer (Salesforce Classic's Export Details writes one); export the "
        "rows alone (Lightning's Details Only), or delete those lines")
    assert "Jane Doe" not in str(refused.value)  # a user's name, which a scheduled job's log would keep


@pytest.mark.parametrize("drop_columns", [[], ["Notes"]])
def test_a_row_of_more_values_than_the_header_is_refused_naming_it(tmp_path, drop_columns):
    """A value holding a comma outside quotes splits in two: reading some columns only (data.drop_columns), pandas'
    parser left the row's extra value out, so 'Google, Inc' put 'Inc' under the status and every later value one
    column on, trained on without a word; reading them all, its error named a line of the file, not the row."""
    (tmp_path / "leads.csv").write_text(
        "Lead ID,Lead Source,Stage,Notes\n"
        '"L1","Web","Open","multi\nline"\n'  # quoted: the row reads whole
        "\n"  # a blank line is no row, as pandas reads it
        "L2,Google, Inc,Open,x\n"
        "L3,Web,Open,y\n")
    params = Params.model_validate({"data": {
        "format": "flat", "leads": "leads.csv", "dated": False, "drop_columns": drop_columns, "value_maps": {
            "status": STAGES}, "mapping": {"leads": {"Lead ID": "lead_id", "Lead Source": "lead_source",
                                                     "Stage": "status"}}}, "base_dir": tmp_path})

    with pytest.raises(ValueError) as refused:
        load_crm(params)

    assert str(refused.value) == (
        f"{tmp_path / 'leads.csv'}: row 2 (header not counted) has 5 values, where the header has 4 columns: a value "
        "holding the separator ',' outside double quotes splits in two, so the row's later values would be read under "
        "the wrong columns; put such values in double quotes (Excel's CSV does), or export the file again")


def test_a_row_cut_in_two_by_a_line_break_outside_quotes_is_named_where_it_is_refused_and_where_it_is_dropped(tmp_path):
    """A value holding a line break outside quotes cuts its row in two rows of fewer values than the header: pandas
    read them with their last columns blank, so a lead lost its stage and its note, and the rest ('Referral,Open,x')
    was read as a lead of its own; the refusal named that row's status 'x' only, and data.on_error: drop trained on
    without a word. Both rows are named, with what was read blank and the cause; a blank line is no row."""
    (tmp_path / "leads.csv").write_text(
        "Lead ID,Lead Source,Stage,Notes\n"
        "L1,Web,Open,called\n"
        "\n"
        "L2,Partner\nReferral,Open,x\n"
        "L3,Web,Open,y\n")
    data = {"format": "flat", "leads": "leads.csv", "dated": False, "value_maps": {"status": STAGES},
            "mapping": {"leads": {"Lead ID": "lead_id", "Lead Source": "lead_source", "Stage": "status"}}}
    short_rows = (
        f"{tmp_path / 'leads.csv'}: row 2 (header not counted) has 2 values, row 3 3, where the header has 4 columns: "
        "read with the last columns blank (row 2's 'Stage', 'Notes'; row 3's 'Notes'); a value holding a line break "
        "outside double quotes cuts its row in two, the rest read as another row: put such values in double quotes "
        "(Excel's CSV does), or export the file again; if the export only leaves out trailing empty values, the rows "
        "are read right")

    with pytest.raises(ContractError) as refused:
        load_crm(Params.model_validate({"data": data, "base_dir": tmp_path}))
    crm = load_crm(Params.model_validate({"data": {**data, "on_error": "drop"}, "base_dir": tmp_path}))

    assert str(refused.value).endswith(f"\n{short_rows}\nfix the export, or set data.on_error: drop to load it without "
                                       "these rows (and the rows said to be kept, without those values).")
    assert "row 3 (header not counted), column 'Stage' (status): unknown status 'x'" in str(refused.value)
    assert crm.short_rows == [short_rows]
    assert crm.leads["lead_id"].tolist() == ["L1", "L3"]


def test_a_parquet_column_of_lists_is_refused_by_name_unless_dropped(tmp_path):
    """A warehouse's repeated field (tags) stopped training on a traceback (unhashable numpy.ndarray), and in a
    column the features read trained its text ("['software']") as the category."""
    pq.write_table(pa.table({"Lead ID": ["L1", "L2"], "Created Date": ["2024-01-05"] * 2,
                             "Tags": pa.array([["webinar", "vip"], []])}), tmp_path / "leads.parquet")

    def load(drop_columns):
        return load_crm(Params.model_validate({"data": {"leads": "leads.parquet", "mapping": MAPPING,
                                                        "drop_columns": drop_columns}, "base_dir": tmp_path}))

    with pytest.raises(ValueError, match=r"leads.parquet: column 'Tags' \(list<element: string>\) holds lists, records "
                                         r"or maps where a CRM column holds one value per row; flatten them"):
        load([])
    assert load(["Tags"]).leads["lead_id"].tolist() == ["L1", "L2"]


def test_parquet_text_stored_as_bytes_reads_as_text_and_a_cell_not_utf8_is_named_by_row(tmp_path):
    """Some writers store text as plain bytes: it must train as the text it is (scoring reads it so),
    and a cell that is not UTF-8 is named by file row and column instead of a bare "Invalid UTF8"."""
    def export(industries):
        pq.write_table(pa.table({"Lead ID": ["L1", "L2", "L3"], "Created Date": ["2024-01-05"] * 3,
                                 "Industry": pa.array(industries, pa.binary())}), tmp_path / "leads.parquet")
        return Params.model_validate({"data": {"leads": "leads.parquet", "mapping": MAPPING}, "base_dir": tmp_path})

    crm = load_crm(export([b"software", None, "caf\u00e9".encode()]))
    assert crm.leads["industry"].tolist()[::2] == ["software", "caf\u00e9"]

    with pytest.raises(ValueError, match=r"leads.parquet row 3, column 'Industry': b'caf\\xe9' is not UTF-8 text"):
        load_crm(export([b"software", None, "caf\u00e9".encode("latin-1")]))


def test_parquet_integer_ids_with_a_null_keep_every_digit(tmp_path):
    """A NULL made numpy read the column as float64: 1234567890123456789 became ...768 and every
    activity of that lead named an unknown one."""
    big = 1234567890123456789
    pq.write_table(pa.table({"Lead ID": pa.array([big, 7], pa.int64()), "Created Date": ["2024-01-05"] * 2}),
                   tmp_path / "leads.parquet")
    pq.write_table(pa.table({"Lead ID": pa.array([big, None, big, 7], pa.int64()),
                             "Activity Date": ["2024-01-06"] * 4, "Activity Type": ["page_view"] * 4}),
                   tmp_path / "acts.parquet")
    params = Params.model_validate({"data": {"leads": "leads.parquet", "activities": "acts.parquet", "mapping": MAPPING,
                                             "on_error": "drop"}, "base_dir": tmp_path})

    crm = load_crm(params)

    assert crm.leads["lead_id"].tolist() == [str(big), "7"]
    assert crm.activities["lead_id"].tolist() == [str(big), str(big), "7"]  # the NULL one refused as empty


@pytest.mark.parametrize("source", ["parquet", "sqlite"])
def test_an_infinite_number_in_a_text_field_refuses_its_row_as_the_service_refuses_a_json_infinity(tmp_path, source):
    """A Parquet or SQL float's inf in a text field (an id, a contract category, a features.categorical column) was
    trained on as the category "inf" or "-inf", where the service refuses a JSON Infinity in any field."""
    leads = pd.DataFrame({"Lead ID": [1.0, 2.0, float("inf"), 4.0], "Created Date": ["2024-01-05"] * 4,
                          "Industry": [1.5, float("-inf"), 3.0, None], "Origin": [float("inf"), 1.0, 2.0, 3.0]})
    if source == "parquet":
        leads.to_parquet(tmp_path / "leads.parquet")
        where = {"leads": "leads.parquet"}
    else:
        sqlite_crm(tmp_path, crm_leads=leads)
        where = {"sql_url": "sqlite:///crm.db", "leads": "crm_leads"}

    def load(on_error):
        return load_crm(Params.model_validate({"data": {**where, "mapping": MAPPING, "on_error": on_error},
                                               "features": {"categorical": ["industry", "Origin"]},
                                               "base_dir": tmp_path}))

    with pytest.raises(ContractError) as err:
        load("stop")
    assert [(p.row, p.column, p.kind) for p in err.value.problems] == [
        (3, "Lead ID", "infinite_number"), (2, "Industry", "infinite_number"), (1, "Origin", "infinite_number")]
    named = " (lead_id '2')" if source == "sqlite" else ""  # a database's row number locates nothing
    assert f"row 2{named}, column 'Industry' (industry): an infinite number is no industry value: -inf" in str(err.value)
    crm = load("drop")
    assert crm.leads["lead_id"].tolist() == ["4"]
    assert crm.report.tables["leads"].dropped == {"infinite_number": 3}
    assert "infinite number where text belongs" in "\n".join(crm.report.lines())


def test_the_text_inf_in_a_text_field_is_text():
    """Only a number sent as a number is refused (`infinite_numbers`): a CSV's "inf" is a category like any other."""
    kept, problems = prepare_table(pd.DataFrame([lead("L1", Industry="inf"), lead("-inf", Industry="Infinity")]),
                                   "leads", DataParams(leads="unused", mapping=MAPPING))
    assert problems == []
    assert kept["industry"].tolist() == ["inf", "Infinity"] and kept["lead_id"].tolist() == ["L1", "-inf"]


def write_tables(url: str, **tables: pd.DataFrame) -> None:
    """`tables` written with pandas' to_sql into the database at `url`, as a CRM sync would."""
    engine = sa.create_engine(url)
    for name, frame in tables.items():
        frame.to_sql(name, engine, index=False)
    engine.dispose()


def sqlite_crm(tmp_path: Path, **tables: pd.DataFrame) -> Path:
    """`tables` written into tmp_path/crm.db (`write_tables`)."""
    write_tables(f"sqlite:///{tmp_path / 'crm.db'}", **tables)
    return tmp_path / "crm.db"


@pytest.fixture(params=["sqlite", "postgresql"])
def crm_database(request, tmp_path) -> str:
    """data.sql_url of an empty CRM database on each backend the docs promise: a SQLite file, a database on a
    real PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'crm.db'}"
    return request.getfixturevalue("postgres").database()


def sql_params(tmp_path: Path, leads: str, **data) -> Params:
    return Params.model_validate(
        {"data": {"sql_url": "sqlite:///crm.db", "leads": leads, "mapping": MAPPING, **data}, "base_dir": tmp_path}
    )


def test_sql_source_reads_tables_and_select_queries(tmp_path, crm_database):
    write_tables(crm_database, crm_leads=pd.DataFrame([lead("L1"), lead("L2", created="2024-01-09")]),
                 opportunities=pd.DataFrame([outcome("L1", stage="Closed Won"), outcome("L2")]).assign(Deleted=[0, 1]))
    query = 'SELECT "Lead ID", "Stage", "Lost Reason", "Closed Date" FROM opportunities WHERE "Deleted" = 0'
    params = Params.model_validate(
        {
            "data": {"sql_url": crm_database, "leads": "crm_leads", "outcomes": query,
                     "mapping": MAPPING, "value_maps": {"status": STAGES}},
            "base_dir": tmp_path,
        }
    )

    crm = load_crm(params)

    assert crm.leads["lead_id"].tolist() == ["L1", "L2"]
    assert crm.leads["created_at"].tolist() == [pd.Timestamp("2024-01-05"), pd.Timestamp("2024-01-09")]
    assert crm.outcomes[["lead_id", "status"]].values.tolist() == [["L1", "converted"]]


def test_sqlite_database_that_does_not_exist_is_refused_not_created(tmp_path):
    """A typo in data.sql_url must say so, not create an empty database and report a missing table."""
    with pytest.raises(FileNotFoundError, match=r"SQLite database not found: .*crm\.db"):
        load_crm(sql_params(tmp_path, "crm_leads"))

    assert not (tmp_path / "crm.db").exists()


def test_a_read_only_sqlite_uri_resolves_against_the_params_folder_as_the_feedback_store_does(tmp_path, monkeypatch):
    """A CRM replica opened read-only (`file:crm.db?mode=ro&uri=true`) is found beside the params file
    whatever the working folder, as a plain path and the service's store URL are; a missing one is refused."""
    sqlite_crm(tmp_path, crm_leads=pd.DataFrame([lead("L1")]))
    monkeypatch.chdir(tmp_path.parent)

    crm = load_crm(sql_params(tmp_path, "crm_leads", sql_url="sqlite:///file:crm.db?mode=ro&uri=true"))

    assert crm.leads["lead_id"].tolist() == ["L1"]
    with pytest.raises(FileNotFoundError, match=f"SQLite database not found: {tmp_path / 'nope.db'}"):
        load_crm(sql_params(tmp_path, "crm_leads", sql_url="sqlite:///file:nope.db?mode=ro&uri=true"))


def test_sql_table_is_found_as_sql_finds_it_in_any_case_with_its_schema_or_as_a_view(tmp_path, crm_database):
    write_tables(crm_database, **{"CRM Leads": pd.DataFrame([lead("L1"), lead("L2")])})
    engine = sa.create_engine(crm_database)
    with engine.begin() as conn:
        conn.exec_driver_sql('CREATE VIEW recent AS SELECT * FROM "CRM Leads" WHERE "Lead ID" = \'L2\'')
    schema = {"sqlite": "main", "postgresql": "public"}[engine.url.get_backend_name()]
    engine.dispose()

    for name in ("crm leads", f'{schema}."CRM Leads"'):
        assert load_crm(sql_params(tmp_path, name, sql_url=crm_database)).leads["lead_id"].tolist() == ["L1", "L2"]
    assert load_crm(sql_params(tmp_path, "recent", sql_url=crm_database)).leads["lead_id"].tolist() == ["L2"]


def test_sqlite_datetime_column_with_two_utc_offsets_reads_every_row_in_utc(tmp_path):
    """pandas' read_sql_table parsed a declared DATETIME column itself: after a DST change (a second
    offset) every date came back empty and the rows were refused as 'empty created_at'."""
    db = sqlite_crm(tmp_path)
    with sa.create_engine(f"sqlite:///{db}").begin() as conn:
        conn.exec_driver_sql('CREATE TABLE leads ("Lead ID" TEXT, "Created Date" DATETIME)')
        conn.exec_driver_sql("INSERT INTO leads VALUES ('L1', '2024-03-09T08:00:00-05:00'), "
                             "('L2', '2024-03-11T08:00:00-04:00')")

    crm = load_crm(sql_params(tmp_path, "leads"))

    assert crm.leads["created_at"].tolist() == [pd.Timestamp("2024-03-09 13:00"), pd.Timestamp("2024-03-11 12:00")]


def test_a_postgres_crm_with_typed_columns_loads_through_an_account_that_may_only_read(tmp_path, postgres):
    """What a PostgreSQL CRM replica holds, unlike SQLite's text: dates with a zone (two UTC offsets, across a
    DST change), plain dates, BIGINT ids, NUMERIC amounts; read with SELECT rights only."""
    url = postgres.database()
    with sa.create_engine(url).begin() as conn:
        conn.exec_driver_sql('CREATE TABLE "Leads" ("Lead ID" BIGINT, "Created Date" TIMESTAMPTZ, "Employees" INTEGER)')
        conn.exec_driver_sql("""INSERT INTO "Leads" VALUES (1234567890123456789, '2024-03-09T08:00:00-05:00', 10), """
                             """(7, '2024-03-11T08:00:00-04:00', NULL)""")
        conn.exec_driver_sql('CREATE TABLE opportunities ("Lead ID" BIGINT, "Stage" TEXT, "Lost Reason" TEXT, '
                             '"Closed Date" DATE, "Amount" NUMERIC(12, 2))')
        conn.exec_driver_sql("INSERT INTO opportunities VALUES (7, 'Closed Won', NULL, '2024-04-01', 1200.50)")
    mapping = {**MAPPING, "outcomes": {**MAPPING["outcomes"], "Amount": "amount"}}

    crm = load_crm(Params.model_validate({"data": {
        "sql_url": postgres.reader(url), "leads": "leads", "outcomes": "opportunities", "mapping": mapping,
        "value_maps": {"status": STAGES}}, "base_dir": tmp_path}))

    assert crm.leads[["lead_id", "created_at"]].values.tolist() == [
        ["1234567890123456789", pd.Timestamp("2024-03-09 13:00")], ["7", pd.Timestamp("2024-03-11 12:00")]]
    assert crm.leads["employees"].tolist()[0] == 10 and pd.isna(crm.leads["employees"].tolist()[1])
    assert crm.outcomes[["lead_id", "status", "decided_at", "amount"]].values.tolist() == [
        ["7", "converted", pd.Timestamp("2024-04-01"), 1200.5]]


def test_a_postgres_boolean_outcome_flag_reads_alike_from_the_database_and_from_its_csv_export(tmp_path, postgres):
    """A CRM's yes/no outcome ("Is Won") is a PostgreSQL boolean: read from the database it is true/false, which
    data.value_maps.status translates ({"true": converted}); psql's `\\copy ... CSV` writes it "t"/"f", which was
    refused as an unknown status 't'. A value map of true/false labels reads either spelling, and one of t/f the
    database's true/false; an ordinary label stays as written ("F" is no false in a map that also holds "M")."""
    url = postgres.database()
    with sa.create_engine(url).begin() as conn:
        conn.exec_driver_sql('CREATE TABLE leads ("Lead ID" TEXT, "Created Date" TIMESTAMPTZ)')
        conn.exec_driver_sql("INSERT INTO leads VALUES ('L1', '2024-01-05'), ('L2', '2024-01-06'), ('L3', '2024-01-07')")
        conn.exec_driver_sql('CREATE TABLE opportunities ("Lead ID" TEXT, "Is Won" BOOLEAN, "Closed Date" DATE)')
        conn.exec_driver_sql("INSERT INTO opportunities VALUES ('L1', true, '2024-02-01'), ('L2', false, '2024-02-02')")
    engine = sa.create_engine(url)
    for table in ("leads", "opportunities"):  # what `psql -c "\\copy leads TO leads.csv CSV HEADER"` writes
        with engine.raw_connection().driver_connection.cursor() as cursor, \
                cursor.copy(f"COPY {table} TO STDOUT (FORMAT csv, HEADER)") as copy:
            (tmp_path / f"{table}.csv").write_bytes(b"".join(bytes(block) for block in copy))
    engine.dispose()
    assert (tmp_path / "opportunities.csv").read_text().splitlines()[1:] == ["L1,t,2024-02-01", "L2,f,2024-02-02"]
    mapping = {"leads": MAPPING["leads"], "outcomes": {"Lead ID": "lead_id", "Is Won": "status",
                                                       "Closed Date": "decided_at"}}

    def outcomes(status: dict, **source) -> list[list]:
        params = Params.model_validate({"data": {"leads": "leads", "outcomes": "opportunities", "mapping": mapping,
                                                 "value_maps": {"status": status}, **source}, "base_dir": tmp_path})
        return load_crm(params).outcomes[["lead_id", "status"]].values.tolist()

    expected = [["L1", "converted"], ["L2", "rejected"]]
    for status in ({"true": "converted", "false": "rejected"}, {"T": "converted", "F": "rejected"}):
        assert outcomes(status, sql_url=url) == outcomes(status, leads="leads.csv", outcomes="opportunities.csv") == expected
    with pytest.raises(ContractError, match=r"row 1 \(header not counted\), column 'Is Won' \(status\): unknown status 't'"):
        outcomes({"f": "rejected", "m": "converted"}, leads="leads.csv", outcomes="opportunities.csv")


def test_a_sql_timestamp_or_interval_in_a_number_field_is_refused_by_row_not_read_as_microseconds(tmp_path, postgres):
    """A number field read a TIMESTAMP or INTERVAL as pandas' count of microseconds: a 3-day interval was the number
    259200000000, a 1999 timestamp a headcount of 928195200000000, and every NULL of either column 'number out of range
    NaT' (or None), refusing each row without one. A date or a duration is no number: its row is refused naming the
    column and the value, a duration with how to convert it; a NULL is a missing value."""
    url = postgres.database()
    with sa.create_engine(url).begin() as conn:
        conn.exec_driver_sql('CREATE TABLE leads ("Lead ID" TEXT, "Created Date" TIMESTAMPTZ, "Employees" TIMESTAMP, '
                             '"Time On Site" INTERVAL)')
        conn.exec_driver_sql("INSERT INTO leads VALUES ('L1', '2024-01-05', '1999-06-01', NULL), "
                             "('L2', '2024-01-06', NULL, '3 days'), ('L3', '2024-01-07', NULL, NULL)")
    mapping = {"leads": {**MAPPING["leads"], "Time On Site": "time_on_site"}}
    params = Params.model_validate({"data": {"sql_url": url, "leads": "leads", "mapping": mapping, "on_error": "drop"},
                                    "features": {"numeric": ["employees", "time_on_site"]}, "base_dir": tmp_path})

    crm = load_crm(params)

    assert crm.leads["lead_id"].tolist() == ["L3"]
    assert [str(p) for p in crm.report.problems] == [
        "leads row 1 (lead_id 'L1'), column 'Employees' (employees): not a number: '1999-06-01T00:00:00'",
        "leads row 2 (lead_id 'L2'), column 'Time On Site' (time_on_site): not a number: '3 days 00:00:00' (a duration: export it as "
        'a number, e.g. of days; with data.sql_url, PostgreSQL\'s EXTRACT(EPOCH FROM "Time On Site") / 86400 AS '
        '"Time On Site")']


def test_a_postgres_array_or_json_column_is_refused_by_name_with_the_select_that_flattens_it(tmp_path, postgres):
    """psycopg reads a text[] as a Python list and a jsonb record as a dict, whose text pandas made the value: a lead
    tagged webinar and vip trained the category "['webinar', 'vip']", a custom field "{'plan': 'pro'}". As a Parquet
    column of lists is, the column is refused by name, with its type and the SELECT giving one value per row, unless
    data.drop_columns lists it."""
    url = postgres.database()
    with sa.create_engine(url).begin() as conn:
        conn.exec_driver_sql('CREATE TABLE leads ("Lead ID" TEXT, "Created Date" DATE, "Tags" TEXT[], '
                             '"Custom Fields" JSONB)')
        conn.exec_driver_sql("""INSERT INTO leads VALUES ('L1', '2024-01-05', ARRAY['webinar', 'vip'], """
                             """'{"plan": "pro"}'), ('L2', '2024-01-06', NULL, '"none"')""")

    def leads(source: str, **data) -> pd.DataFrame:
        return load_crm(Params.model_validate({"data": {"sql_url": url, "leads": source, "mapping": MAPPING, **data},
                                               "base_dir": tmp_path})).leads

    with pytest.raises(ValueError, match=re.escape(
            "leads': columns 'Tags' (text[]), 'Custom Fields' (jsonb) hold lists, records or maps where a CRM column "
            """holds one value per row; select one value of each, e.g. array_to_string("Tags", ';') AS "Tags", """
            """"Custom Fields"->>'key' AS "Custom Fields", or leave them out or list them in data.drop_columns""")):
        leads("leads")
    assert leads("leads", drop_columns=["Tags", "Custom Fields"])["lead_id"].tolist() == ["L1", "L2"]
    flattened = leads("""SELECT "Lead ID", "Created Date", array_to_string("Tags", ';') AS "Tags", """
                      """"Custom Fields"->>'plan' AS "Custom Fields" FROM leads""")
    assert flattened[["Tags", "Custom Fields"]].fillna("").values.tolist() == [["webinar;vip", "pro"], ["", ""]]


def test_a_postgres_money_amount_is_refused_with_the_cast_that_reads_it_as_a_number(tmp_path, postgres):
    """PostgreSQL writes its money type with its currency ('$1,234.56', by lc_monetary), which psycopg reads as that
    text: a deal's amount was refused as a number written with a thousands separator, as if the CRM had typed it so.
    The refusal names the money and the cast (`"Amount"::numeric`), as an INTERVAL's names EXTRACT(EPOCH ...); cast
    so, it reads. An API client sending such an amount is told to send the number alone."""
    url = postgres.database()
    with sa.create_engine(url).begin() as conn:
        conn.exec_driver_sql('CREATE TABLE leads ("Lead ID" TEXT, "Created Date" DATE)')
        conn.exec_driver_sql("INSERT INTO leads VALUES ('L1', '2024-01-05'), ('L2', '2024-01-06')")
        conn.exec_driver_sql('CREATE TABLE opportunities ("Lead ID" TEXT, "Stage" TEXT, "Amount" MONEY)')
        conn.exec_driver_sql("INSERT INTO opportunities VALUES ('L1', 'Closed Won', 1234.56), ('L2', 'Closed Won', 0)")
    mapping = {"leads": MAPPING["leads"], "outcomes": {"Lead ID": "lead_id", "Stage": "status", "Amount": "amount"}}

    def load(outcomes: str) -> CRMData:
        return load_crm(Params.model_validate({"data": {
            "sql_url": url, "leads": "leads", "outcomes": outcomes, "mapping": mapping, "value_maps": {"status": STAGES},
            "on_error": "drop"}, "base_dir": tmp_path}))

    crm = load("opportunities")
    assert crm.outcomes["amount"].isna().all()
    assert [str(p) for p in crm.report.problems] == [
        f"opportunities row {row} (lead_id '{lead_id}'), column 'Amount' (amount): not a number: {amount!r} (an amount "
        'of money: export it as a number, without its currency; with data.sql_url, select a PostgreSQL money column '
        'as one, "Amount"::numeric AS "Amount"); the row is kept without this value'
        for row, lead_id, amount in [(1, "L1", "$1,234.56"), (2, "L2", "$0.00")]]
    cast = load('SELECT "Lead ID", "Stage", "Amount"::numeric AS "Amount" FROM opportunities')
    assert cast.outcomes["amount"].tolist() == [1234.56, 0.0] and not cast.report.problems

    sent = pd.DataFrame({"lead_id": ["L1"], "status": ["converted"], "amount": ["$1,234.56"]})
    _, problems = prepare_table(sent, "outcomes", DataParams(leads="unused"), audience=API_CLIENT)
    assert [p.message for p in problems] == [
        "not a number: '$1,234.56' (an amount of money: send the number alone, without its currency)"]


def test_a_database_rows_problem_names_its_lead_id_as_its_row_number_locates_nothing(tmp_path, postgres):
    """A SELECT without ORDER BY returns rows in no set order (PostgreSQL returns a row updated since last), so 'leads
    row 3' named no row anyone can find in the table. A database row's problem names its lead_id too."""
    url = postgres.database()
    with sa.create_engine(url).begin() as conn:
        conn.exec_driver_sql('CREATE TABLE leads ("Lead ID" BIGINT, "Created Date" TIMESTAMPTZ, "Employees" INTEGER)')
        conn.exec_driver_sql("INSERT INTO leads VALUES (1, '2024-01-05', 10), (2, '2024-01-06', -3), (3, '2024-01-07', 5)")
        conn.exec_driver_sql('UPDATE leads SET "Created Date" = NULL WHERE "Lead ID" = 1')  # now read last
    params = Params.model_validate({"data": {"sql_url": url, "leads": "leads", "mapping": MAPPING, "on_error": "drop"},
                                    "base_dir": tmp_path})

    crm = load_crm(params)

    assert crm.leads["lead_id"].tolist() == ["3"]
    assert sorted(str(p) for p in crm.report.problems) == [
        "leads row 1 (lead_id '2'), column 'Employees' (employees): negative employees -3 (employees counts something: "
        "0 or more)",
        "leads row 3 (lead_id '1'), column 'Created Date' (created_at): empty created_at"]


def test_sql_errors_name_the_database_and_the_table_or_query(tmp_path):
    sqlite_crm(tmp_path, crm_leads=pd.DataFrame([lead("L1")]))

    with pytest.raises(ValueError, match=r"crm\.db: no table or view 'leadz' \(it has 'crm_leads'\)"):
        load_crm(sql_params(tmp_path, "leadz"))
    with pytest.raises(ValueError, match=r"crm\.db: query 'SELECT FROM crm_leads' failed: near \"FROM\": syntax error"):
        load_crm(sql_params(tmp_path, "SELECT FROM crm_leads"))
    (tmp_path / "crm.db").write_text("not a database")
    with pytest.raises(ValueError, match=r"crm\.db: table 'crm_leads' failed: file is not a database"):
        load_crm(sql_params(tmp_path, "crm_leads"))


def test_sql_query_may_start_with_a_comment_and_hold_a_colon_in_a_literal(tmp_path):
    sqlite_crm(tmp_path, crm_leads=pd.DataFrame([lead("L1"), lead("L2", Industry="a:b")]))
    query = "-- leads of one industry\nSELECT * FROM crm_leads WHERE \"Industry\" = 'a:b'"

    assert load_crm(sql_params(tmp_path, query)).leads["lead_id"].tolist() == ["L2"]


def test_sql_integer_ids_beyond_2_53_keep_every_digit_in_a_column_with_a_null(tmp_path, crm_database):
    """A NULL made pandas read an INTEGER column as float64, which rounds 19-digit ids: every activity
    then named a lead that does not exist and was dropped."""
    big = 1234567890123456789
    write_tables(crm_database, crm_leads=pd.DataFrame({"Lead ID": [big], "Created Date": ["2024-01-05"]}),
                 crm_activities=pd.DataFrame({"Lead ID": pd.array([big, None], dtype="Int64"),
                                              "Activity Date": ["2024-01-06"] * 2, "Activity Type": ["page_view"] * 2}))

    crm = load_crm(sql_params(tmp_path, "crm_leads", sql_url=crm_database, activities="crm_activities",
                              on_error="drop"))

    assert crm.leads["lead_id"].tolist() == [str(big)]
    assert crm.activities["lead_id"].tolist() == [str(big)]
    assert crm.report.tables["activities"].dropped == {"empty_value": 1}


def test_sql_dates_stored_as_numbers_are_refused_with_the_select_that_converts_them(tmp_path, crm_database):
    write_tables(crm_database, crm_leads=pd.DataFrame({"Lead ID": ["L1"], "Created Date": [1704449400]}))

    with pytest.raises(ContractError) as err:
        load_crm(sql_params(tmp_path, "crm_leads", sql_url=crm_database))
    assert "crm_leads row 1 (lead_id 'L1'), column 'Created Date' (created_at): a date is text" in str(err.value)
    advice = {"sqlite": """datetime("Created Date", 'unixepoch') AS "Created Date" (unix seconds)""",
              "postgresql": """to_timestamp("Created Date") AS "Created Date" (unix seconds)"""}
    backend = sa.make_url(crm_database).get_backend_name()
    assert advice[backend] in str(err.value)

    converted = f"""SELECT "Lead ID", {advice[backend].removesuffix(' (unix seconds)')} FROM crm_leads"""
    crm = load_crm(sql_params(tmp_path, converted, sql_url=crm_database))
    assert crm.leads["created_at"].tolist() == [pd.Timestamp("2024-01-05 10:10")]


def test_missing_file_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.csv"):
        read_source("nope.csv", DataParams(leads="nope.csv"), tmp_path)


@pytest.mark.parametrize(("make", "error"), [
    (lambda p: p.mkdir(), "is a folder: name the CSV or Parquet file in it"),  # was "not found"
    # no permission to read it, or a disk error (reading /proc/self/mem fails even for root): a traceback
    (lambda p: p.symlink_to("/proc/self/mem"), "cannot be read: "),
], ids=["folder", "unreadable"])
def test_an_export_that_is_a_folder_or_cannot_be_read_is_named(tmp_path, make, error):
    make(tmp_path / "leads.csv")
    with pytest.raises(ValueError, match=f"the CRM export file {tmp_path / 'leads.csv'} {error}"):
        read_source("leads.csv", DataParams(leads="leads.csv"), tmp_path)


# ------------------------------------------------------------------ edges and the serving path


def test_zero_row_export_loads_as_empty_contract_tables(tmp_path):
    params = crm_params(tmp_path, [], activities=[], outcomes=[], dedupe_by_email=True)

    crm = load_crm(params)

    assert len(crm.leads) == 0 and len(crm.activities) == 0 and len(crm.outcomes) == 0
    assert {"lead_id", "created_at", "email"} <= set(crm.leads.columns)
    assert crm.leads["created_at"].dtype.kind == "M"
    assert crm.report.tables["leads"].rows_read == 0


def test_prepare_table_on_one_raw_request_row():
    data = DataParams(leads="unused", mapping=MAPPING, missing_values=["", "Select"])
    raw = pd.DataFrame(
        [{"Lead ID": "L1", "Created Date": "2024-01-05", "Industry": "Select", "Employees": 40}], index=[7]
    )
    bad = pd.DataFrame([{"Lead ID": "L2", "Created Date": "tomorrow"}])

    leads, problems = prepare_table(raw, "leads", data)
    refused, bad_problems = prepare_table(bad, "leads", data)

    assert problems == [] and leads.index.tolist() == [7]  # kept rows keep the caller's index label
    assert leads["industry"].isna().all() and leads["employees"].tolist() == [40.0]
    assert len(refused) == 0
    assert str(bad_problems[0]) == "request row 1, column 'Created Date' (created_at): unparsable date 'tomorrow'"


def test_a_status_in_another_letter_case_is_the_contract_status_as_feedback_takes_it():
    """"Converted " in an export is converted, as /feedback and labelling read it; others stay refused."""
    data = DataParams(leads="unused", mapping={"outcomes": {"Lead ID": "lead_id", "Stage": "status"}})
    raw = pd.DataFrame({"Lead ID": ["L1", "L2", "L3"], "Stage": ["Converted ", "REJECTED", "Negotiation"]})

    outcomes, problems = prepare_table(raw, "outcomes", data)

    assert outcomes["status"].tolist() == ["converted", "rejected"]
    assert [(p.row, p.kind) for p in problems] == [(3, "unknown_status")]


def test_a_csv_excel_wrote_with_semicolons_reads_as_the_comma_one(tmp_path):
    """Excel saves CSV with the region's list separator, ";" where the decimal mark is a comma: read with a
    comma, the header was one column and the export was refused as missing 'Lead ID'."""
    leads = [lead("L1", email="a@x.com", Company="M\u00fcller; S\u00f6hne, GmbH"), lead("L2", employees="")]
    params = crm_params(tmp_path, leads, outcomes=[outcome("L1"), outcome("L2", stage="Closed Won")])
    expected = load_crm(params)
    for name in ("leads", "outcomes"):
        path = tmp_path / f"{name}.csv"
        pd.read_csv(path, dtype=str, keep_default_na=False).to_csv(path, sep=";", index=False, encoding="utf-8-sig")

    crm = load_crm(params)

    pd.testing.assert_frame_equal(crm.leads, expected.leads)
    pd.testing.assert_frame_equal(crm.outcomes, expected.outcomes)
    assert crm.leads["Company"].iloc[0] == "M\u00fcller; S\u00f6hne, GmbH"


def semicolon_export(tmp_path: Path, leads: list[dict], outcomes: list[dict] | None = None, sep: str = ";",
                     **data) -> Params:
    """`crm_params` with its CSVs written separated by `sep`, as Excel saves them where the decimal mark is a comma."""
    params = crm_params(tmp_path, leads, outcomes=outcomes, on_error="drop", **data)
    for name in ("leads", "outcomes") if outcomes else ("leads",):
        path = tmp_path / f"{name}.csv"
        pd.read_csv(path, dtype=str, keep_default_na=False).to_csv(path, sep=sep, index=False)
    return params


def test_a_semicolon_export_reads_its_numbers_as_excel_writes_them_where_the_decimal_mark_is_a_comma(tmp_path):
    """A German or French Excel export writes 2,5 and 1.234,5 between ';': each was 'not a number', so any decimal
    in a number column refused its row (with data.on_error: stop, the whole export). Numbers written with a decimal
    point read there too, and with commas grouping its thousands where they read one way only (1,234,567); a number that
    reads both ways (1.200, 1,200: 1200 or 1.2) refuses its row, naming it."""
    leads = [lead("L1", employees="2,5"), lead("L2", employees="1.234,5"), lead("L3", employees="1.234.567"),
             lead("L4", employees="0,125"), lead("L5", employees="2.5"), lead("L6", employees="1.200"),
             lead("L7", employees="1,200"), lead("L8", employees="12"), lead("L9", employees="1,234,567")]
    amounts = {"L1": "-0,75", "L2": "1.250.000,00", "L3": "3,5", "L4": "7", "L8": "1 234,5"}  # a refund (read, and
    outcomes = [outcome(lead_id) | {"amount": amount} for lead_id, amount in amounts.items()]  # left out); a French
    # thousands space
    params = semicolon_export(tmp_path, leads, outcomes)

    crm = load_crm(params)

    kept = crm.leads.set_index("lead_id")["employees"]
    assert kept.to_dict() == {"L1": 2.5, "L2": 1234.5, "L3": 1234567.0, "L4": 0.125, "L5": 2.5, "L8": 12.0,
                              "L9": 1234567.0}
    read = crm.outcomes.set_index("lead_id")["amount"].fillna(-1).to_dict()
    assert read == {"L1": -1, "L2": 1250000.0, "L3": 3.5, "L4": 7.0, "L8": 1234.5}
    assert [str(p) for p in crm.report.problems] == [
        f"leads.csv row {row} (header not counted), column 'Employees' (employees): ambiguous number {value!r}: in a "
        f"file separated by ';' (as Excel writes where the decimal mark is a comma) it may be {readings}; set "
        "data.decimal_mark to comma or point, as the file writes numbers, or write it with no thousands separator"
        for row, value, readings in [(6, "1.200", "1200 or 1.2"), (7, "1,200", "1200 or 1.2")]] + [
        "outcomes.csv row 1 (header not counted), column 'amount': negative amount '-0,75' (amount counts something: "
        "0 or more); the row is kept without this value"]


def test_a_comma_separated_export_reads_commas_grouping_thousands_where_they_read_one_way_only(tmp_path):
    """US Excel writes a ',' file's amounts and headcounts quoted with thousands separators ("1,234,567.89"): each was
    'not a number', so the row was refused (its amount left out). Where a comma can only group thousands (two groups,
    or a decimal point after it) the number reads; 1,200 or 12,500 may also be a decimal comma some tools quote (1.2,
    12.5), so its row is refused naming data.decimal_mark, as a ';' file refuses 1.200. Only a ';' file (or
    data.decimal_mark) reads decimal commas: a quoted 2,5 is still refused with the hint it had, and 1.200 is 1.2."""
    leads = [lead("L1", employees="2,5"), lead("L2", employees="1.234.567"), lead("L3", employees="1.200"),
             lead("L4", employees="1,200"), lead("L5", employees="1,234,567"), lead("L6", employees="12,500.5"),
             lead("L7", employees="+1,500")]
    amounts = {"L3": "1,234,567.89", "L5": "12,500", "L6": "2,500.00"}
    outcomes = [outcome(lead_id) | {"amount": amount} for lead_id, amount in amounts.items()]
    params = semicolon_export(tmp_path, leads, outcomes, sep=",")

    crm = load_crm(params)

    assert crm.leads.set_index("lead_id")["employees"].to_dict() == {"L3": 1.2, "L5": 1234567.0, "L6": 12500.5}
    read = crm.outcomes.set_index("lead_id")["amount"].fillna(-1).to_dict()
    assert read == {"L3": 1234567.89, "L5": -1, "L6": 2500.0}
    ambiguous = ("ambiguous number {!r}: in a file separated by ',' (where a comma groups thousands, as US Excel writes "
                 "them, or is a decimal comma, as some tools quote it) it may be {}; set data.decimal_mark to comma or "
                 "point, as the file writes numbers, or write it with no thousands separator")
    assert [str(p).split(": ", 1)[1] for p in crm.report.problems] == [
        f"not a number: {value!r} (write numbers with a decimal point and no thousands separator: 1234.5)"
        for value in ("2,5", "1.234.567")] + [
        ambiguous.format("1,200", "1200 or 1.2"), ambiguous.format("+1,500", "1500 or 1.5"),
        ambiguous.format("12,500", "12500 or 12.5") + "; the row is kept without this value"]


def test_data_decimal_mark_point_reads_a_comma_separated_exports_thousands_separators(tmp_path):
    """With data.decimal_mark: point a comma only groups thousands: US Excel's "12,500" employees and "1,234,567.89"
    amount read as 12500 and 1234567.89; a comma not between groups of three digits ("1,5", "12,50") is still no
    number, refused naming its row and column."""
    leads = [lead("L1", employees="12,500"), lead("L2", employees="1,200"), lead("L3", employees="1,5"),
             lead("L4", employees="12,50"), lead("L5", employees="1.200")]
    outcomes = [outcome("L1") | {"amount": "1,234,567.89"}, outcome("L2") | {"amount": "1234,567"}]
    params = semicolon_export(tmp_path, leads, outcomes, sep=",", decimal_mark="point")

    crm = load_crm(params)

    assert crm.leads.set_index("lead_id")["employees"].to_dict() == {"L1": 12500.0, "L2": 1200.0, "L5": 1.2}
    assert crm.outcomes.set_index("lead_id")["amount"].fillna(-1).to_dict() == {"L1": 1234567.89, "L2": -1}
    hint = ("(write numbers with a decimal point, and commas, if any, between groups of three digits and never before "
            "an exponent: 1234.5, 1,234.5 or 1.2345E+03)")
    assert [str(p) for p in crm.report.problems] == [
        f"leads.csv row 3 (header not counted), column 'Employees' (employees): not a number: '1,5' {hint}",
        f"leads.csv row 4 (header not counted), column 'Employees' (employees): not a number: '12,50' {hint}",
        f"outcomes.csv row 2 (header not counted), column 'amount': not a number: '1234,567' {hint}; the row is kept "
        "without this value"]


@pytest.mark.parametrize(("sep", "mark", "read"), [
    (";", "comma", {"L1": 1200.0, "L2": 1.2, "L3": 2.5}),  # a dot only separates thousands
    (",", "comma", {"L1": 1200.0, "L2": 1.2, "L3": 2.5}),  # quoted decimal commas in a ',' file
    (";", "point", {"L1": 1.2, "L2": 1200.0}),  # a ';' export written with decimal points: as a ',' file reads
    (",", "point", {"L1": 1.2, "L2": 1200.0}),  # a comma groups thousands, as US Excel writes them
])
def test_data_decimal_mark_says_how_an_export_writes_numbers_where_auto_cannot_tell(tmp_path, sep, mark, read):
    leads = [lead("L1", employees="1.200"), lead("L2", employees="1,200"), lead("L3", employees="2,5")]
    params = semicolon_export(tmp_path, leads, sep=sep, decimal_mark=mark)

    crm = load_crm(params)

    assert crm.leads.set_index("lead_id")["employees"].to_dict() == read
    assert all("not a number" in str(p) for p in crm.report.problems)


@pytest.mark.parametrize(("sep", "mark", "read"), [
    (";", "auto", {"L1": 1200.0, "L2": 1200.0, "L3": 1200.0, "L5": 0.25}),  # "either": a decimal comma or point
    (",", "auto", {"L1": 1200.0, "L5": 0.25}),  # "point_guessed": no decimal comma
    (";", "comma", {"L1": 1200.0, "L2": 1200.0, "L3": 1200.0, "L5": 0.25}),
    (",", "point", {"L1": 1200.0, "L5": 0.25}),
])
def test_a_number_in_scientific_notation_has_no_thousands_separator_whatever_the_decimal_mark(tmp_path, sep, mark,
                                                                                                read):
    """Excel writes 1200 in scientific notation as 1.200E+03, or 1,2E+03 where the decimal mark is a comma, and no
    one groups thousands before an exponent: a ';' file (or data.decimal_mark: comma) read "1.200E3" as 1200E3,
    1.2 million, and a ',' file "1,200E3" so, without a word. The mark before the exponent is a decimal mark, a
    comma one only where the file's decimal mark may be a comma; "1,234.5E+03" is no number, refused by row."""
    leads = [lead("L1", employees="1.200E3"), lead("L2", employees="1,2E+03"), lead("L3", employees="1,200E3"),
             lead("L4", employees="1,234.5E+03"), lead("L5", employees="2.5E-1")]
    params = semicolon_export(tmp_path, leads, sep=sep, decimal_mark=mark)

    crm = load_crm(params)

    assert crm.leads.set_index("lead_id")["employees"].to_dict() == read
    hint = {";": "with no thousands separator: 1234,5 or 1234.5",
            ",": "with a decimal point and no thousands separator: 1234.5"}[sep] if mark == "auto" else {
        "comma": "with a decimal comma and no thousands separator: 1234,5",
        "point": "with a decimal point, and commas, if any, between groups of three digits and never before an "
                 "exponent: 1234.5, 1,234.5 or 1.2345E+03"}[mark]
    assert [str(p).split(": ", 1)[1] for p in crm.report.problems] == [
        f"not a number: {employees!r} (write numbers {hint})"
        for lead_id, employees in [("L2", "1,2E+03"), ("L3", "1,200E3"), ("L4", "1,234.5E+03")] if lead_id not in read]


def shape(text: str) -> str:
    """A value with every digit written 9 and every letter A or a: what a made-up value keeps of the real one."""
    return re.sub("[a-z]", "a", re.sub("[A-Z]", "A", re.sub("[0-9]", "9", text)))


def test_the_model_input_example_makes_up_personal_values_and_keeps_those_the_model_reads(tmp_path):
    """The first leads kept for the logged model's input example (`leads_as_read`), which anyone reading the MLflow
    run sees, hold no real person's data: the lead id, e-mail, phone, company and columns the contract does not know
    (a name, a note) are made up in the same shape, the same on every read; the e-mail keeps its domain only where
    the features read it, "not answered" stays as written, and what the model reads stays as the file writes it."""
    real = {"Lead ID": "00Q5e01", "Email": "marco.clark@acme-robotics.com", "phone": "+34 463-535 6271",
            "company": "Acme Robotics S.L.", "First Name": "Marco", "Notes": "Called 3x, wants a demo"}
    leads = [lead("00Q5e01", email=real["Email"], employees="674", Industry="Select", Country="ES",
                  phone=real["phone"], company=real["company"], **{"First Name": "Marco", "Notes": real["Notes"]}),
             lead("00Q5e02", email="Select", employees="10", Industry="software", Country="DE",
                  phone="Select", company="", **{"First Name": "Anna", "Notes": ""})]
    params = crm_params(tmp_path, leads, outcomes=[outcome("00Q5e01"), outcome("00Q5e02")])

    example = load_crm(params).leads_as_read

    first = example.iloc[0]
    for column, value in real.items():
        assert first[column] != value and shape(first[column]) == shape(value), column
    assert first["Email"].split("@")[1] != "acme-robotics.com"  # no feature reads the domain here
    assert example["Lead ID"].nunique() == 2
    read = example[["Created Date", "Employees", "Industry", "Country"]].to_dict("records")
    assert read == [{"Created Date": "2024-01-05", "Employees": "674", "Industry": "Select", "Country": "ES"},
                    {"Created Date": "2024-01-05", "Employees": "10", "Industry": "software", "Country": "DE"}]
    assert example.loc[1, ["Email", "phone"]].tolist() == ["Select", "Select"]
    assert example.loc[1, ["company", "Notes"]].isna().all()
    pd.testing.assert_frame_equal(load_crm(params).leads_as_read, example)  # a re-run logs the same example

    reading_domains = params.model_copy(update={"features": params.features.model_copy(update={"derived": ["email_signals"]})})
    email = load_crm(reading_domains).leads_as_read.loc[0, "Email"]
    assert email.endswith("@acme-robotics.com") and shape(email) == shape(real["Email"]) and email != real["Email"]


def test_a_row_whose_two_email_columns_differ_is_refused_without_repeating_the_addresses(tmp_path):
    """A message naming a refused row lands in the console and the log of a scheduled train or retrain: it names the
    row and both columns of the e-mail (or phone, or company) that differ, not the addresses themselves."""
    leads = [{**lead("L1", email="ana.ruiz@acme.com"), "email": "ana.ruiz@acme.com"},
             {**lead("L2", email="a.ruiz@acme.com"), "email": "ana.ruiz@acme.com"}]
    params = crm_params(tmp_path, leads)

    with pytest.raises(ContractError) as err:
        load_crm(params)

    assert str(only_problem(err)) == (
        "leads.csv row 2 (header not counted), column 'Email' (email): 'Email' and 'email' map to one column, email "
        "(data.mapping), and hold different values (not repeated here: email is personal data): the row is refused "
        "rather than one picked; make them agree, or leave one out (data.drop_columns)")
    assert "ruiz" not in str(err.value)
