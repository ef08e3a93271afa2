"""A number field's rule (pipelines.numbers) as params, an export and a request see it: they must agree."""

from __future__ import annotations

from decimal import Decimal

import re

import pandas as pd
import pytest
from pydantic import ValidationError

from pipelines.config import PROJECT_ROOT, DataParams, LabelParams, ParamsError, load_params
from pipelines.contract import NUMBER_TEXT
from pipelines.ingest import prepare_table
from serving.schemas import Feedback
from serving.scoring import SentUnder, feedback_event

MAPPING = {"leads": {"Lead ID": "lead_id", "Created Date": "created_at", "Employees": "employees"}}

# Text a CRM or a RevOps admin may write in a number field (employees: 0 or more), and its verdict: the number
# taken, a missing value, or why it is refused.
TEXTS = {
    "1e309": "too large", "-1e309": "too large", "-0": 0.0, " 3 ": 3.0, "\t3\n": 3.0, "0x10": "no number",
    "1_000": "no number", "1,000": "no number", "inf": "too large", "-Infinity": "too large", "+inf": "too large",
    "nan": "missing", " NaN ": "missing", "-nan": "no number", "3.": 3.0, ".5": 0.5, "+.5": 0.5, ".": "no number",
    "1e": "no number", "\u0661\u0662": "no number", "\uff15": "no number", "5\u00a0": "no number",
    "true": "no number", "False": "no number", "": "missing", "lots": "no number", "-5": "below 0",
    "-.5": "below 0", "1E+05": 1e5, "1e-400": 0.0, "1e15": "too large", "-1e15": "too large",
    "999999999999999.9375": "too large", "999999999999999.93": 999999999999999.9,
    "+999999999999999.9": 999999999999999.9, "+9999999999999.2504": 9999999999999.2504, "+4e 2": "no number",
    "4e 2": "no number", "9" * 400: "too large", "0" * 400 + "7": 7.0, str(10**400): "too large",
}
# What a JSON request, SQL or Parquet sends that is not text, with the verdict of the value; its text, as params
# would write it, gets the same verdict (true/false is no number as a value and as text alike).
VALUES = [(True, "no number"), (False, "no number"), (Decimal("3.5"), 3.5), (Decimal("-0"), 0.0),
          (Decimal("1E+309"), "too large"), (Decimal("-2"), "below 0"), (10**400, "too large"),
          (-(10**400), "too large"), (10**15, "too large"), (2**53 + 1, "too large"),
          (999999999999999, 999999999999999.0), (float("inf"), "too large"), (-0.0, 0.0)]

EXPORT_WORDS = {"not a number": "no number", "number out of range": "too large", "negative employees": "below 0"}


def export_verdicts(cells: list, dtype) -> list:
    """Each cell's verdict as an export's or a request's employees cell (ingest.prepare_table)."""
    raw = pd.DataFrame({"Lead ID": [f"L{i}" for i in range(len(cells))], "Created Date": "2024-01-05",
                        "Employees": pd.Series(cells, dtype=dtype)})
    kept, problems = prepare_table(raw, "leads", DataParams(leads="unused", mapping=MAPPING))
    refused = {p.row - 1: next(v for k, v in EXPORT_WORDS.items() if p.message.startswith(k)) for p in problems}
    numbers = kept["employees"]
    return [refused[i] if i in refused else "missing" if pd.isna(numbers[i]) else numbers[i] for i in range(len(cells))]


def params_refusal(label: str, value: str) -> str | None:
    """Why params refuse `{label: value}` as data.value_maps.employees, None when they load."""
    try:
        load_params(PROJECT_ROOT / "params.yaml", overrides={"data.value_maps": {"employees": {label: value}}})
    except ParamsError as refused:
        return str(refused)
    return None


@pytest.mark.parametrize("dtype", ["str", object])  # a CSV's column, a JSON batch's
def test_an_export_reads_each_number_text_by_the_rule(dtype):
    assert dict(zip(TEXTS, export_verdicts(list(TEXTS), dtype))) == TEXTS


def test_the_number_text_docs_json_and_dates_test_by_is_the_text_the_rule_reads_as_a_number():
    """contract.NUMBER_TEXT (/docs.json's number pattern, a number refused as a date, missing_values matched to
    numbers) is a regex beside `read_numbers`, which pandas parses: a text the reader takes must match it, and a
    text matching it must read as a number (taken, or refused for its size or sign, never as no number)."""
    for text, verdict in TEXTS.items():
        matches = re.match(NUMBER_TEXT, text) is not None
        assert matches or not isinstance(verdict, float), text
        assert not matches or verdict != "no number", text


def test_a_value_sent_as_a_json_sql_or_parquet_value_reads_as_its_text():
    values = [value for value, _ in VALUES]
    texts = [str(value).lower() if isinstance(value, bool) else str(value) for value in values]

    assert export_verdicts(values, object) == [verdict for _, verdict in VALUES]
    assert export_verdicts(texts, "str") == [verdict for _, verdict in VALUES]


# Why params refuse a number field's value map, in their words, by verdict; a missing value is no number to map to.
PARAMS_WORDS = {"no number": "no number", "missing": "no number", "too large": "not smaller than 1e+15 in size",
                "below 0": "below 0"}


@pytest.mark.parametrize("text", dict.fromkeys([*TEXTS, *(str(v) for v, _ in VALUES if not isinstance(v, bool))]))
def test_params_refuse_a_value_map_number_and_a_number_label_as_an_export_reads_them(text):
    """A value map's number is one the export's field takes, and a label that is a number the field refuses is
    refused: the rule is one (pipelines.numbers), so params cannot drift from what an export, a request and
    /docs.json take. The label "inf" was let through (no number to params, out of range to the service)."""
    verdict = export_verdicts([text], "str")[0]
    why = PARAMS_WORDS.get(verdict) if isinstance(verdict, str) else None

    refused = params_refusal("Label", text)
    assert (f"translates 'Label' to {text!r}, {why}; employees takes" in refused) if why else refused is None, refused

    refused = params_refusal(text, "5")
    if not text.strip():  # a blank cell is always missing: no map's label (config, `_one_translation_per_label`)
        assert f"the blank label {text!r} never matches" in refused
    elif verdict in ("too large", "below 0"):
        assert f"the label {text!r} is a number employees refuses ({why})" in refused
    else:
        assert refused is None, refused


def export_amounts(cells: list) -> list:
    """Each cell's verdict as an export's deal amount (outcomes): the number taken, "missing", or "refused" (named as a
    problem: the amount is left out, its row kept)."""
    raw = pd.DataFrame({"lead_id": [f"L{i}" for i in range(len(cells))], "status": "converted",
                        "amount": pd.Series(cells, dtype=object)})
    kept, problems = prepare_table(raw, "outcomes", DataParams(leads="unused"))
    refused = {p.row - 1 for p in problems}
    amounts = kept["amount"]
    return ["refused" if i in refused else "missing" if pd.isna(amounts[i]) else amounts[i] for i in range(len(cells))]


def feedback_amount(value) -> float | str:
    """The amount /feedback stores for `value`, "missing" for none, or "refused": the whole event refused (a value no
    table cell holds), or stored without the amount and a warning naming it (`serving.scoring.feedback_amount`)."""
    event = {"event_id": "E1", "lead_id": "L1", "status": "converted", "decided_at": "2024-02-01", "amount": value}
    try:
        sent = Feedback.model_validate(event).model_dump()
    except ValidationError:
        return "refused"
    stored, warnings = feedback_event(sent, SentUnder(), DataParams(leads="unused"), LabelParams())
    return "refused" if warnings else "missing" if stored["amount"] is None else stored["amount"]


def test_feedback_takes_an_amount_as_an_export_reads_it():
    """/feedback's amount is read by the export's rule (ingest.prepare_table), limits included: its own check of a
    number's text could drift from what export-outcomes' file, read back as an export, takes. NaN as text is no amount
    there as in an export (and a lead's number field); JSON's NaN, which JSON has not, is refused as in a lead's field."""
    values = [*TEXTS, *(value for value, _ in VALUES), float("nan")]
    sent = [feedback_amount(value) for value in values]

    expected = export_amounts(values)
    expected[-1] = "refused"
    assert dict(zip(map(repr, values), sent)) == dict(zip(map(repr, values), expected))


@pytest.mark.parametrize("nan", [Decimal("NaN"), Decimal("sNaN"), Decimal("-sNaN")], ids=repr)
def test_a_nan_decimal_is_a_missing_value_signalling_or_not(nan):
    """A SQL or Python caller's NaN decimal is a missing value in a number, text or date field alike, and no amount
    to /feedback, as to an export. A signalling one (sNaN) stopped the whole read with decimal.InvalidOperation:
    pandas raises on asking whether it is missing."""
    assert export_verdicts([nan, Decimal("4")], object) == ["missing", 4.0]
    assert export_amounts([nan, Decimal("4")]) == ["missing", 4.0]
    assert feedback_amount(nan) == "missing"
    raw = pd.DataFrame({"Lead ID": ["L1", "L2"], "industry": pd.Series([nan, "Software"], dtype=object),
                        "Created Date": pd.Series(["2024-01-05", nan], dtype=object)})
    kept, problems = prepare_table(raw, "leads", DataParams(leads="unused", mapping=MAPPING))
    assert kept["lead_id"].tolist() == ["L1"] and pd.isna(kept["industry"].iloc[0])
    assert [(p.row, p.message) for p in problems] == [(2, "empty created_at")]  # a date it is missing from
