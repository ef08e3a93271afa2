"""The data contract: canonical tables every CRM export is mapped onto.

One place names the columns; ingest validates against it, the synthetic CRM writes it, features
read it. Columns beyond the contract are kept on `leads` (custom features may use them).
"""

from __future__ import annotations

import re
import string
from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime, timedelta

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

# Dates the contract accepts: from the first up to (not including) the second. CRMs write "no date"
# as 0001-01-01 or 9999-12-31, which would score a lead from nothing; the bounds also keep every
# date, and the windows added to it, inside the int64 nanoseconds features compute in (1677-2262).
DATE_RANGE = (datetime(1970, 1, 1), datetime(2200, 1, 1))
# How far after "now" (when an export is read, a decision received, a lead scored as of) a date of
# something that already happened may lie: a CRM clock, or a time zone written as UTC, a little
# ahead. Beyond it the date is a typo, a default or an expected date (an open deal's close date).
CLOCK_SLACK = timedelta(days=1)
# A contract date (naive UTC) as a message quotes it, its zone named: a time sent as 09:00+02:00 reads 07:00 UTC,
# not a bare 07:00 that looks misread. A format spec: f"{stamp:{UTC_TIME}}".
UTC_TIME = "%Y-%m-%d %H:%M:%S UTC"
# The largest size a number field may have: no headcount or deal amount comes near it, so a larger
# value is a sentinel or a typo (1e308), and beyond 2**53 (about 9e15) float64 loses whole numbers.
LARGEST_NUMBER = 1e15
# A number's digits, decimal point and exponent, without its sign ("1.7e9", ".5", "12500.50"). ASCII digits: Python's
# \d and float() also take Arabic-Indic "١٢٣", which pandas reads as no number.
UNSIGNED_NUMBER = r"([0-9]+\.?[0-9]*|\.[0-9]+)([eE][-+]?[0-9]+)?"
# Text that is a number ("1764000000", " 2026 ", "1.7e9"): pandas would read "2026" as 2026-01-01. Only the ASCII
# blanks around it that pandas reads a number with: "5\u00a0" is no number to an export's number field.
NUMBER_TEXT = rf"^[\t-\r ]*[-+]?{UNSIGNED_NUMBER}[\t-\r ]*$"

# A yes/no value's two spellings: PostgreSQL writes a boolean as t or f wherever it writes text (COPY ... CSV, psql's
# \copy, a cast to text), where a database read, a Parquet file and JSON give true/false, read as the text
# "true"/"false" (ingest.as_plain_text).
_TRUE_FALSE = {"t": "true", "f": "false", "true": "t", "false": "f"}


def true_false_spellings(known: Collection[str]) -> dict[str, str]:
    """For a yes/no field known by `known` (its values stripped, in lower case: those training saw, a value map's
    labels), each other spelling of its true and false -> the one it is known by: {"t": "true", "f": "false"} where
    it holds true/false (a database read), {"true": "t", "false": "f"} where it holds PostgreSQL's t/f (its CSV
    export), so the one export reads as the other. Empty for a field holding anything else: in an ordinary category
    ("f", "m") an "f" is no false."""
    if not known or not set(known) <= _TRUE_FALSE.keys():
        return {}
    return {_TRUE_FALSE[value]: value for value in known if _TRUE_FALSE[value] not in known}


# Python's \s (what str.isspace calls blank), spelled out: the e-mail patterns run in Arrow's RE2, whose \s is ASCII
# only, because pandas runs a pattern with \s in Python, one cell at a time (`email_address` on the 1M benchmark's
# e-mails: 1.1 s that way, 0.4 s this way, in a one-off timing).
_BLANK = r"\t\n\x0b\x0c\r\x1c-\x20\x85\xa0\x{1680}\x{2000}-\x{200a}\x{2028}\x{2029}\x{202f}\x{205f}\x{3000}"
# An e-mail address's shape, local@domain.tld: no blank, one @, a dot in the domain.
_EMAIL_SHAPE = rf"[^@{_BLANK}]+@(?:[^@{_BLANK}.]+\.)+[^@{_BLANK}.]{{2,}}"
# What a CRM's rep types when a lead gave no e-mail but the field is required. Local parts that say there is none are
# a placeholder at any domain (none@gmail.com); the other words, and one character repeated (a, xxx), only with a
# domain whose first label is a placeholder word too or the same character (test@test.com, na@na.com, a@a.com): a
# company's test@acme.com mailbox or a personal john@john.com stays an address.
NO_ADDRESS_WORDS = ("none", "noemail", "nomail", "unknown", "null", "n/a")
PLACEHOLDER_WORDS = (*NO_ADDRESS_WORDS, "test", "testing", "na", "email", "mail", "fake", "dummy", "asdf", "qwerty",
                     "sample", "nobody")
# Reserved for examples and tests, no one's mailbox (RFC 2606, RFC 6761): these domains and their subdomains, and
# every domain under these top-level domains.
RESERVED_EMAIL_DOMAINS = ("example.com", "example.net", "example.org")
RESERVED_EMAIL_TLDS = ("example", "test", "invalid", "localhost")


def _any_of(words) -> str:
    return "|".join(map(re.escape, words))


_REPEATED = [f"{c}+" for c in string.ascii_lowercase + string.digits]  # a, xxx, 000
# A placeholder of address shape (`email_address`), matched whole against the stripped, case-folded e-mail.
_PLACEHOLDER_EMAIL = (
    rf"(?:{_any_of(NO_ADDRESS_WORDS)})@.*"
    rf"|(?:(?:{_any_of(PLACEHOLDER_WORDS)}|{'|'.join(_REPEATED)})@(?:{_any_of(PLACEHOLDER_WORDS)})"
    rf"|{'|'.join(f'{r}@{r}' for r in _REPEATED)})\..*"
    rf"|.*[@.](?:{_any_of(RESERVED_EMAIL_DOMAINS)})|.*\.(?:{_any_of(RESERVED_EMAIL_TLDS)})"
)


def email_address(emails: pd.Series) -> pd.Series:
    """Each e-mail stripped and case-folded ("Ann@X.com " -> "ann@x.com") where it is really an address, the key that
    matches a lead by e-mail (ingest's dedupe, the service's `email_sha256`, forget) and the lead's way to be reached
    (features' `missing_email`, the domain `email_signals` read); missing where blank, of no address shape
    (local@domain.tld: "test", "x@x", "info@company") or a placeholder (`PLACEHOLDER_WORDS`,
    `RESERVED_EMAIL_DOMAINS`: "test@test.com", "x@example.com"): a CRM gives those to people who have nothing else in
    common, and none reaches the lead."""
    key = emails.astype("string").str.strip().str.casefold()
    text = pa.array(key.array, type=pa.string())
    address = pc.and_(_whole_match(text, _EMAIL_SHAPE), pc.invert(_whole_match(text, _PLACEHOLDER_EMAIL)))
    return key.where(pc.fill_null(address, False).to_numpy(zero_copy_only=False))


def _whole_match(text: pa.Array, pattern: str) -> pa.Array:
    return pc.match_substring_regex(text, f"^(?:{pattern})$")


@dataclass(frozen=True)
class TableSpec:
    name: str
    required: tuple[str, ...]
    optional: tuple[str, ...] = ()
    dates: tuple[str, ...] = ()
    numeric: tuple[str, ...] = ()
    non_negative: tuple[str, ...] = ()  # numeric columns that count something: never below zero
    # Dates of what already happened when the export was taken: never after then (CLOCK_SLACK).
    # Not activities: CRMs log meetings and webinars booked ahead.
    past: tuple[str, ...] = ()
    # Optional columns whose bad value (a negative deal amount, a number that is none) is left out and reported, its
    # row kept: a row refused over it would lose what else it says (an outcome's decision, the label). Other bad
    # values refuse their row.
    cleared_if_bad: tuple[str, ...] = ()
    key: str | None = None  # unique per row when set
    # Columns naming or reaching a person, or free text that may (GDPR personal data): shown nowhere outside the
    # export, so the logged model's input example holds made-up values in their place (`pipelines.ingest.example_leads`)
    # and no message repeats them (`pipelines.ingest.differing_values`).
    personal: tuple[str, ...] = ()

    @property
    def columns(self) -> tuple[str, ...]:
        return self.required + self.optional


LEADS = TableSpec(
    name="leads",
    required=("lead_id", "created_at"),
    optional=(
        "email",
        "phone",
        "company",
        "industry",
        "employees",
        "country",
        "job_title",
        "lead_source",
        "campaign",
    ),
    dates=("created_at",),
    past=("created_at",),
    numeric=("employees",),
    non_negative=("employees",),
    key="lead_id",
    personal=("email", "phone", "company"),
)

ACTIVITIES = TableSpec(
    name="activities",
    required=("lead_id", "occurred_at", "activity"),
    optional=("detail",),
    dates=("occurred_at",),
    personal=("detail",),  # free text: a page's address, an e-mail's subject, a rep's note
)

OUTCOMES = TableSpec(
    name="outcomes",
    required=("lead_id", "status"),
    optional=("reason", "decided_at", "amount"),
    dates=("decided_at",),
    past=("decided_at",),
    numeric=("amount",),
    non_negative=("amount",),  # money won: a refund or a credit note is no deal's amount
    # Not decided_at: an undated decision counts at every as-of date and inside any horizon, so a wrong date (an
    # open deal's expected close date) left out would turn a later or not yet made decision into a label.
    cleared_if_bad=("amount",),
    key="lead_id",
)

TABLES = {spec.name: spec for spec in (LEADS, ACTIVITIES, OUTCOMES)}

# The rejection reason codes sales uses in the synthetic CRM and the default params.yaml.
REASON_CODES = (
    "not_decision_maker",
    "no_budget",
    "bad_timing",
    "competitor",
    "unresponsive",
    "student",
    "invalid_contact",
    "duplicate",
)
