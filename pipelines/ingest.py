"""Ingest: read a CRM export, map it onto the data contract, validate it and dedupe it.

The model artifact and the scoring service call `prepare_table` on raw CRM rows, so mapping and
validation are pure and need no files; `load_crm` adds the I/O and the cross-table rules for a whole
export. Every refused row is named (source, row, column, value) so a RevOps engineer can fix the
export instead of guessing, and every row that does not reach the canonical tables is counted.
"""

from __future__ import annotations

import contextlib
import csv
import difflib
import functools
import io
import os
import random
import re
import string
import unicodedata
from collections import Counter
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta, timezone, tzinfo
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import sqlalchemy as sa
from pandas.arrays import ArrowStringArray

from features.build import crm_spellings
from pipelines.config import DataParams, Params, label_key, shown_url, value_map_labels
from pipelines.contract import (
    CLOCK_SLACK, DATE_RANGE, LARGEST_NUMBER, LEADS, NUMBER_TEXT, OUTCOMES, TABLES, TableSpec, email_address,
)
from pipelines.numbers import (
    TWO_WAYS_WHERE,
    DecimalMark,
    both_readings,
    infinite_numbers,
    numbers_sent,
    read_numbers,
    signalling_nans_quieted,
)

if TYPE_CHECKING:  # not at run time: pipelines.history imports this module
    from pipelines.history import FeedbackMerge

# Outcome columns a flat export carries on the lead row; split off into `outcomes`.
OUTCOME_COLUMNS = tuple(c for c in OUTCOMES.columns if c != "lead_id")
# Contract columns holding ids, codes or free text (a blank required one is empty).
TEXT_COLUMNS = frozenset(
    c for spec in TABLES.values() for c in spec.columns if c not in spec.dates and c not in spec.numeric
)
MAX_LISTED_PROBLEMS = 20
DATE_RANGE_TEXT = f"{DATE_RANGE[0]:%Y-%m-%d} to {DATE_RANGE[1] - timedelta(days=1):%Y-%m-%d}"
DATE_FORM = "a date is text such as 2026-01-31 or 2026-01-31T09:30:00Z"
# A SQL source is a query when, after comments and parentheses, it starts with one of these words.
_QUERY_START = re.compile(r"(\s|\(|--[^\n]*|/\*.*?\*/)*(select|with|values)\b", re.IGNORECASE | re.DOTALL)

# Why a row did not reach the canonical tables (report keys -> words for people).
DROP_REASONS = {
    "empty_value": "empty required value",
    "unparsable_date": "unparsable date",
    "number_as_date": "number instead of a date",
    "date_out_of_range": "date out of range",
    "ambiguous_date": "day and month order unclear (data.day_first)",
    "date_in_future": "date in the future",
    "decided_before_created": "decided before its lead was created",
    "bad_number": "invalid number",
    "infinite_number": "infinite number where text belongs",
    "unknown_status": "unknown status",
    "ambiguous_column": "different values in columns mapped to one",
    "duplicate_lead_id": "conflicting duplicate lead_id",
    "unknown_lead": "lead_id not in leads",
    "identical_duplicate": "identical duplicate row",
    "merged_by_email": "lead merged into an earlier lead with the same e-mail",
    "superseded": "superseded by a later decision",
}


@dataclass(frozen=True)
class Problem:
    """One validation finding, precise enough to find and fix the cell in the CRM.

    `row` is the 1-based data row of the source (a CSV's header is not counted); None for problems
    about a whole column. `column` is the CRM's own column name, `contract_column` the name it maps to.
    `row_kept`: the value alone refuses no row (`TableSpec.cleared_if_bad`): it is left out (set missing) and its
    row kept, unless the row goes for another problem (`load_crm` then sets it False). `lead_id`: the row's, where
    its number locates nothing (a database's rows come in no set order: `prepare_table`'s `lead_ids_shown`).
    """

    source: str
    row: int | None
    column: str | None
    message: str
    contract_column: str | None = None
    kind: str = "invalid"
    row_kept: bool = False
    lead_id: str | None = None

    def __str__(self) -> str:
        where = self.source
        if self.row is not None:
            where += f" row {self.row}"
            if ".csv" in self.source.lower():
                where += " (header not counted)"
            if self.lead_id is not None:
                where += f" (lead_id {self.lead_id!r})"
        if self.column is not None:
            where += f", column {self.column!r}"
            if self.contract_column and self.contract_column != self.column:
                where += f" ({self.contract_column})"
        return f"{where}: {self.message}" + ("; the row is kept without this value" if self.row_kept else "")


@dataclass(frozen=True)
class Audience:
    """Who reads the contract's problems, and so what their advice tells them to change: someone loading an
    export or running a command changes the export, params and the command's flags; `leadscore score`'s user the
    file, or the model by a retrain (it reads with the model's data settings); an API client only its request (the
    served model's params were fixed when it was trained)."""

    scoring_time: str  # how to check the time rows are scored as of
    ambiguous_date: str  # what to do with a date that reads day first and month first
    # Why a date did not parse when data.day_first put a number over 12 in the month; str.format fields:
    # {day_first} (true/false), {order} (day first/month first), {month}, {other} (the other setting), {first}.
    day_month_order: str
    # What to do with a picklist's band of numbers ('51-200', '10,001+') in a number field; str.format field: {column}.
    number_band: str
    # What to do with an amount of money written with its currency ('$1,234.56', as PostgreSQL writes its money type)
    # in a number field; str.format field: {column}, as the CRM names it.
    amount_of_money: str
    # What to do with a number of a file that reads two ways ('1.200' or '1,200': a decimal mark or thousands).
    ambiguous_number: str


COMMAND_LINE = Audience(
    scoring_time="check the scoring time, e.g. --as-of, or the date",
    ambiguous_date="set data.day_first (true: 06/02/2025 is 6 February; false: it is June 2)",
    day_month_order="data.day_first is {day_first}, so {month} would be the month; set it to {other} if the export "
                    "writes the {first} first",
    number_band="a band of numbers: translate each label to one number with data.value_maps.{column}, "
                "e.g. '11-50': '30'",
    amount_of_money='an amount of money: export it as a number, without its currency; with data.sql_url, select a '
                    'PostgreSQL money column as one, "{column}"::numeric AS "{column}"',
    ambiguous_number="set data.decimal_mark to comma or point, as the file writes numbers, or write it with no "
                     "thousands separator",
)
# `leadscore score` reads with the model's data settings, kept from its training so a file reads as training read it:
# params.yaml does not change them, so its advice is to write the file as the model reads it, or to retrain.
BATCH_SCORING = Audience(
    scoring_time=COMMAND_LINE.scoring_time,
    ambiguous_date="write dates year first, 2025-06-02, or retrain with data.day_first set (true: 06/02/2025 is 6 "
                   "February; false: it is June 2): the model reads dates by the setting it was trained with, unset, "
                   "whatever params.yaml says now",
    day_month_order="the model was trained with data.day_first {day_first}, so {month} would be the month; write dates "
                    "year first, 2025-06-02, or retrain with it set to {other} if the export writes the {first} first",
    number_band="a band of numbers: write one number, or retrain with data.value_maps.{column} translating each "
                "label to one, e.g. '11-50': '30' (the model reads with the value maps it was trained with)",
    amount_of_money=COMMAND_LINE.amount_of_money,
    ambiguous_number="write it with no thousands separator, or retrain with data.decimal_mark set to comma or point, "
                     "as the file writes numbers (the model reads numbers by the setting it was trained with)",
)
API_CLIENT = Audience(
    scoring_time="check the request's as_of (default: now), or the date",
    ambiguous_date="send dates as ISO 8601 text, year first: 2025-06-02",
    day_month_order="this service reads such dates {order}, so {month} would be the month; send dates as ISO 8601 "
                    "text, year first: 2025-06-02",
    number_band="a band of numbers: send one number",
    amount_of_money="an amount of money: send the number alone, without its currency",
    ambiguous_number="send it as a JSON number, or as text with a point as its decimal mark and no thousands separator",
)


# What to do about an export's refused rows (`ContractError`).
EXPORT_FIX = ("fix the export, or set data.on_error: drop to load it without these rows (and the rows said to be kept, "
              "without those values).")


class ContractError(ValueError):
    """The export breaks the data contract; the message counts the problems and lists the first ones."""

    def __init__(self, problems: list[Problem], fix: str = EXPORT_FIX):
        """``fix``: what to do when every problem is a row's (loading an export: drop them; scoring: another line)."""
        self.problems, self.fix = list(problems), fix
        super().__init__(_summarise(self.problems, fix))

    def __reduce__(self):  # keep `problems` when the error crosses a process boundary
        return (type(self), (self.problems, self.fix))


def _summarise(problems: list[Problem], fix: str) -> str:
    counts = Counter((p.source, p.column, p.contract_column, p.kind) for p in problems)
    lines = [f"the CRM export breaks the data contract ({len(problems)} problem(s)):"]
    for (source, column, contract, kind), n in counts.most_common():
        where = "" if column is None else f", column {column!r}" + (
            f" ({contract})" if contract and contract != column else ""
        )
        lines.append(f"  {n:>7,} x {kind.replace('_', ' ')} in {source}{where}")
    shown = problems[:MAX_LISTED_PROBLEMS]
    lines.append(f"first {len(shown)}:" if len(problems) > len(shown) else "problems:")
    lines.extend(f"  - {p}" for p in shown)
    number = next((p for p in problems if p.kind == "number_as_date"), None)
    if number is not None:  # unix time or julian days: what a database's own date functions convert
        column = f'"{number.column}"'
        lines.append(f"dates sent as numbers: export them as text, or with data.sql_url convert them in a SELECT, "
                     f"e.g. in SQLite datetime({column}, 'unixepoch') AS {column} (unix seconds) or "
                     f"datetime({column}) AS {column} (julian days); in PostgreSQL to_timestamp({column}) AS {column} "
                     "(unix seconds)")
    if all(p.row is not None for p in problems):
        lines.append(fix)
    return "\n".join(lines)


@dataclass
class TableReport:
    """What happened to one table's rows: rows_read == rows_kept + sum(dropped.values())."""

    source: str
    rows_read: int = 0
    rows_kept: int = 0
    dropped: dict[str, int] = field(default_factory=dict)  # reason (DROP_REASONS key) -> rows
    # reason -> a few of the dropped rows' values as sent, where no problem names them (an activity's unknown lead id
    # '51234008;51234036', a cell holding two): the count alone does not say why
    examples: dict[str, list[str]] = field(default_factory=dict)
    repointed: int = 0  # activities moved to the surviving lead of an e-mail duplicate
    # leads kept unmerged by data.dedupe_by_email: their e-mail is no address ("test", "test@test.com": `email_address`)
    email_not_address: int = 0
    # contract column -> bad values left out of rows that were kept (`Problem.row_kept`)
    cleared: dict[str, int] = field(default_factory=dict)

    def drop(self, reason: str, rows: int) -> None:
        if rows:
            self.dropped[reason] = self.dropped.get(reason, 0) + int(rows)


@dataclass
class IngestReport:
    """Per-table row accounting of one load, plus the problems behind rows dropped, and values left out of rows
    kept, with on_error=drop."""

    tables: dict[str, TableReport] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)

    def lines(self) -> list[str]:
        """Human-readable summary, one line per table, then the first problems."""
        out = []
        for name, t in self.tables.items():
            line = f"{name} ({t.source}): {t.rows_read:,} rows read, {t.rows_kept:,} kept"
            if t.repointed:
                line += f", {t.repointed:,} re-pointed to the surviving lead of an e-mail duplicate"
            if t.email_not_address:
                line += (f", {t.email_not_address:,} with an e-mail that is no address ('test', 'x@x', "
                         "'test@test.com'), not merged by it")
            if t.dropped:
                line += "; dropped: " + ", ".join(
                    f"{n:,} {DROP_REASONS.get(reason, reason)}"
                    + (f" (e.g. {', '.join(t.examples[reason])})" if t.examples.get(reason) else "")
                    for reason, n in t.dropped.items()
                )
            if t.cleared:
                line += "; values left out of rows kept: " + ", ".join(
                    f"{n:,} invalid {column}" for column, n in t.cleared.items())
            out.append(line)
        if self.problems:
            out.append(f"{len(self.problems):,} problem(s) behind the dropped rows and values, first ones:")
            out.extend(f"  - {p}" for p in self.problems[:MAX_LISTED_PROBLEMS])
        return out

    def as_dict(self) -> dict[str, int]:
        """Flat counts (`leads.rows_kept`, `leads.dropped.unparsable_date`, ...) for MLflow."""
        out: dict[str, int] = {}
        for name, t in self.tables.items():
            out[f"{name}.rows_read"] = t.rows_read
            out[f"{name}.rows_kept"] = t.rows_kept
            if name == "activities":
                out[f"{name}.repointed"] = t.repointed
            if t.email_not_address:
                out[f"{name}.email_not_address"] = t.email_not_address
            out.update({f"{name}.dropped.{reason}": n for reason, n in t.dropped.items()})
            out.update({f"{name}.cleared.{column}": n for column, n in t.cleared.items()})
        out["problems"] = len(self.problems)
        return out


@dataclass
class CRMData:
    """The canonical tables of one export (RangeIndex frames) and how they were obtained."""

    leads: pd.DataFrame
    activities: pd.DataFrame | None
    outcomes: pd.DataFrame | None
    report: IngestReport
    # lead_id of each lead merged by e-mail -> the lead it was merged into (data.dedupe_by_email): a
    # scored id missing from `leads` may be one of these rather than a lead the export lacks.
    merged_by_email: pd.Series = field(default_factory=lambda: pd.Series(dtype="str"))
    # The leads source's columns as the CRM names them (data.drop_columns left out): what a setting naming a
    # column is checked against (`absent_columns`). None: not known (tables put together in code).
    leads_header: list[str] | None = None
    # What the service's feedback store changed in `outcomes` (pipelines.history.load_history); None: the
    # export's own outcomes alone.
    feedback: FeedbackMerge | None = None
    # Per leads column (and the outcomes' reason) that data.value_maps renames, each value as compared ('tiktok') ->
    # the file's most common spelling of it before the map ('TT', not the map's 'TikTok'; `crm_spellings`): the
    # tables hold only the mapped values, and a report naming a value (monitor's never-seen ones, the audit's
    # tables, a reason on the score card) names it as the export writes it (`export_spellings`).
    spellings: dict[str, dict[str, str]] = field(default_factory=dict)
    # How the leads file writes numbers (`decimal_mark_of`): a column another model's settings read as a number, which
    # this export's were not read as (`dataset.features_at`), is read as its number fields were.
    decimal_mark: DecimalMark = "point"
    # The first EXAMPLE_ROWS leads of `leads` as the source holds them, under its own column names: a CSV's text
    # ("674", "Select"), a database's or Parquet file's values as text (`as_plain_text`), where `leads` holds them
    # cleaned (674.0, "Select" as missing); their personal values made up (`example_leads`). The logged model's
    # input example (`pipelines.train.input_example`).
    leads_as_read: pd.DataFrame | None = None
    # A warning per CSV source with rows of fewer values than its header, read with their last columns blank
    # (`check_row_lengths`): a value holding a line break outside quotes cuts its row in two.
    short_rows: list[str] = field(default_factory=list)

    def export_spellings(self, column: str) -> dict[str, str]:
        """Each value of the leads `column` as compared ('tiktok') -> as the export writes it most ('TikTok', or 'TT'
        where data.value_maps renames it: `spellings`): how every report names a value, so marketing finds it in the
        file. The outcomes' `reason` too: X Education's Tag "ringing" -> "Ringing", a code the CRM's "No response"
        translates to ("unresponsive") -> "No response"."""
        table = self.outcomes if column == "reason" else self.leads
        written = crm_spellings(table[column]) if table is not None and column in table.columns else {}
        return {**written, **self.spellings.get(column, {})}


# ---------------------------------------------------------------- reading (I/O edge)


def refuse_to_overwrite(inputs: dict[str, Path | None], outputs: dict[str, Path]) -> None:
    """Refuse, before anything is written, an output that is a file the command reads or the CRM
    export: writing it would truncate or replace that data.

    Args:
        inputs: what each read file is ("leads", "data.outcomes", ...) -> its path (None: not read).
        outputs: what each written file is ("output", "rejects file", ...) -> its path.
    """
    for written, out in outputs.items():
        for read, source in inputs.items():
            if source is not None and out.exists() and source.exists() and os.path.samefile(out, source):
                raise ValueError(f"the {written} {out} is the {read} file: writing it would destroy that data; "
                                 "write it somewhere else")


class SourceTable(NamedTuple):
    """One raw CRM table as `read_source` reads it."""

    table: pd.DataFrame
    decimal_mark: DecimalMark  # how its text writes numbers, for `prepare_table`
    short_rows: str | None = None  # a CSV's warning of its rows of fewer values than its header (`check_row_lengths`)


def read_source(spec: str, data: DataParams, base_dir: Path) -> SourceTable:
    """One raw CRM table: a CSV or Parquet file, or (when data.sql_url is set) a table name or a SELECT; how
    its text writes numbers, for `prepare_table` (`decimal_mark_of`; "point" for a database); and a CSV's warning of
    its short rows (`check_row_lengths`).

    Every CSV cell is read as the CRM's text, as batch scoring reads a file (`pipelines.score`): `prepare_table`
    reads the numbers (the contract's and features.numeric) from it, by the file's decimal mark. A column pandas
    typed as numbers made a plan code "3.0" the category "3" in training but "3.0" in scoring, and "-1.0" match
    data.missing_values "-1" only in a column of numbers. Cells are only missing when empty (pandas' "NA"/"null"
    guessing is off: "NA" is Namibia); data.missing_values says what else means 'not answered'. Columns in
    data.drop_columns are not read.
    A file's header is read once (`read_header`), for its separator, repeated names and decimal mark.
    """
    dropped = set(data.drop_columns)
    if data.sql_url:
        return SourceTable(_read_sql(spec, data.sql_url, base_dir, dropped).drop(columns=data.drop_columns,
                                                                                 errors="ignore"), "point")
    path = Path(spec).expanduser()
    path = path if path.is_absolute() else base_dir / path
    readable_file("CRM export", path)
    if is_parquet(path):
        header = read_header(path)
        refuse_repeated_columns(path, header, dropped)
        refuse_nested_columns(path, header.nested, dropped)
        table = bytes_as_text(named_as_in_file(pq.ParquetFile(path).read(columns=parquet_kept(header, dropped)),
                                               header), path)
        # ids with a NULL stay exact
        return SourceTable(_usual_dtypes(table.to_pandas(types_mapper=_NULLABLE_INTEGERS.get)),
                           decimal_mark_of(header, data))
    if ".csv" not in path.name.lower():
        raise ValueError(f"{path}: unsupported file type; use .csv (optionally compressed) or .parquet")
    try:
        header = read_header(path)
        refuse_repeated_columns(path, header, dropped)
        table, short_rows = read_csv_kept(path, header, dropped)
        return SourceTable(table, decimal_mark_of(header, data), short_rows)
    except pd.errors.EmptyDataError:
        raise ValueError(f"{path}: the file is empty (not even a header row)") from None
    except UnicodeDecodeError as err:
        raise not_utf8(path, err) from None


# Every CSV cell is read as the CRM's own text; only empty cells are missing ("NA" is Namibia).
EXAMPLE_ROWS = 5  # leads kept as read, personal values made up (`CRMData.leads_as_read`)
CSV_TEXT = {"dtype": "str", "keep_default_na": False, "na_values": [""]}


def read_csv_text(path: Path, sep: str, columns: list[str] | None = None) -> tuple[pd.DataFrame, str | None]:
    """A CSV's cells (only `columns`, when given) as the CRM's text: how training and batch scoring read a file; and
    the warning of its rows of fewer values than the header (`check_row_lengths`), None when it has none.

    Arrow's multi-threaded parser, about six times cheaper than pandas' own; a file Arrow refuses (ragged rows,
    not UTF-8, a quoted value over several lines, no header) is read by pandas' parser, whose errors the caller
    names; its rows of another length than the header are found here (`check_row_lengths`): Arrow refuses a file with
    any, so a file it reads has none, and is read once.
    """
    try:
        return pd.read_csv(path, engine="pyarrow", sep=sep, usecols=columns, **CSV_TEXT), None
    except ValueError:  # Arrow's errors (pa.ArrowInvalid) are ValueErrors too
        # Excel and Salesforce exports start with a byte-order mark
        try:
            table = pd.read_csv(path, sep=sep, usecols=columns, encoding="utf-8-sig", **CSV_TEXT)
        except pd.errors.ParserError:  # e.g. a long row, which its error counts by line: name the rows
            check_row_lengths(path, sep)
            raise
        return table, check_row_lengths(path, sep)


# How many rows of another length than the header a refusal or warning names (`check_row_lengths`).
ROWS_NAMED = 3


def check_row_lengths(path: Path, sep: str) -> str | None:
    """Refuse a CSV with rows of more values than its header has columns, naming them: reading some columns only
    (data.drop_columns), pandas' parser left a row's extra values out, so a value holding the separator outside quotes
    ('Google, Inc') put its row's later values under the wrong columns, trained on and scored so without a word; reading
    them all, its error named a line of the file, not the row.

    Return the warning for its rows of fewer values (None when it has none), which pandas reads with their last columns
    blank: a value holding a line break outside quotes cuts its row in two, the rest read as another row (a lead of no
    date, or one with a note's words for an id); but an exporter leaving out a row's trailing empty values writes such
    rows harmlessly, so they are warned of, not refused. Blank lines are skipped, as pandas skips them.
    """
    long: list[tuple[int, int]] = []  # (file row, its values), the first ROWS_NAMED only
    short: list[tuple[int, int]] = []
    counts = {"long": 0, "short": 0}
    with pd.io.common.get_handle(path, "r", encoding="utf-8-sig", compression="infer") as handle:
        records = (fields for fields in csv.reader(handle.handle, delimiter=sep)
                   if len(fields) > 1 or "".join(fields).strip())
        header = next(records, [])
        for row, fields in enumerate(records, start=1):
            if len(fields) != len(header):
                kind, found = ("long", long) if len(fields) > len(header) else ("short", short)
                counts[kind] += 1
                if len(found) < ROWS_NAMED:
                    found.append((row, len(fields)))
    if long:
        raise ValueError(f"{path}: {_rows_named(long, counts['long'])}, where the header has {len(header)} columns: a "
                         f"value holding the separator {sep!r} outside double quotes splits in two, so the row's later "
                         "values would be read under the wrong columns; put such values in double quotes (Excel's CSV "
                         "does), or export the file again")
    if not short:
        return None
    blank = "; ".join(f"row {row}'s {_columns_named(header[values:])}" for row, values in short)
    return (f"{path}: {_rows_named(short, counts['short'])}, where the header has {len(header)} columns: read with "
            f"the last columns blank ({blank}); a value holding a line break outside double quotes cuts its row in "
            "two, the rest read as another row: put such values in double quotes (Excel's CSV does), or export the "
            "file again; if the export only leaves out trailing empty values, the rows are read right")


def _rows_named(rows: list[tuple[int, int]], count: int) -> str:
    """'row 5 (header not counted) has 8 values, row 9 7 and 4 more rows': `rows` (file row, its values; the first
    ROWS_NAMED of `count`) as `check_row_lengths` names them."""
    (first, values), *others = rows
    shown = "".join(f", row {row} {n}" for row, n in others)
    unnamed = count - len(rows)
    more = f" and {unnamed:,} more row{'s' * (unnamed > 1)}" if unnamed else ""
    return f"row {first} (header not counted) has {values} values{shown}{more}"


def _columns_named(names: list[str]) -> str:
    """A row's columns read blank: 'job_title', 'campaign', or a run of more as 'phone' to 'campaign' (9 columns)."""
    if len(names) <= 3:
        return ", ".join(map(repr, names))
    return f"{names[0]!r} to {names[-1]!r} ({len(names)} columns)"


def read_csv_kept(path: Path, header: TableHeader, dropped: Collection[str]) -> tuple[pd.DataFrame, str | None]:
    """The columns of a CSV with `header` (`read_header`) that `dropped` (data.drop_columns) does not name, as the CRM's
    text: how training and batch scoring read a leads or outcomes file; and the warning of its short rows
    (`check_row_lengths`), None without any.

    A column without a name (pandas' to_csv() writes its index so, Excel an empty column of the sheet) is read as any
    column the mapping does not name, as pandas names it ('Unnamed: 0', by its place in the file), unless `dropped`
    holds "". Neither parser selects one by its blank name (Arrow's renames it by its place among the columns read,
    pandas' refuses it), so a file keeping one while dropping others is read whole and the dropped left out by place.
    """
    kept = [i for i, name in enumerate(header.names) if name not in dropped]
    if len(kept) == len(header.names):
        table, short_rows = read_csv_text(path, header.sep)
    elif "" in [header.names[i] for i in kept]:
        table, short_rows = read_csv_text(path, header.sep)
        table = table.iloc[:, kept]
    else:
        table, short_rows = read_csv_text(path, header.sep, [header.names[i] for i in kept])
    refuse_report_footer(path, table)
    return table, short_rows


# How many of a CSV's last rows `refuse_report_footer` looks at: a report's footer is a few lines.
FOOTER_ROWS = 20


def refuse_report_footer(path: Path, table: pd.DataFrame) -> None:
    """Refuse a CSV whose last rows hold a value in their first column only: a report's footer (Salesforce Classic's
    Export Details ends its rows with the report's name, a copyright, 'Generated By' and the company), which was read
    as leads with an id and nothing else, each refused for its empty date or status with advice for a lead."""
    if table.shape[1] < 2 or table.empty:
        return
    tail = table.iloc[-FOOTER_ROWS:]
    single = (tail.iloc[:, 0].notna() & tail.iloc[:, 1:].isna().all(axis=1)).to_numpy()
    footer = int(np.argmin(single[::-1])) if not single.all() else len(single)  # the trailing run of such rows
    if not footer:
        return
    first = len(table) - footer + 1
    rows = f"row {first}" if footer == 1 else f"rows {first}-{len(table)}"
    raise ValueError(f"{path}: its last {footer} row(s) ({rows}, header not counted) hold a value in the first column "
                     f"only, starting {as_sent(table.iloc[-footer, 0])}: a report's footer (Salesforce Classic's Export "
                     "Details writes one); export the rows alone (Lightning's Details Only), or delete those lines")


# Field separators a CSV export may use: Excel writes the list separator of the computer's region, ";"
# where the decimal mark is a comma (most of Europe), also when saving "CSV UTF-8".
CSV_DELIMITERS = (",", ";", "\t")


def _first_line(path: Path) -> str | None:
    """A CSV's first line as written (quotes and all), or None when it cannot be read."""
    try:
        return str(pd.read_csv(path, sep="\x1f", header=None, nrows=1, dtype=str, quoting=csv.QUOTE_NONE,
                               encoding="utf-8-sig").iat[0, 0])
    except (ValueError, OSError, IndexError):  # empty, not UTF-8 (UnicodeDecodeError), unreadable
        return None


def _delimiter_in(line: str | None) -> str:
    """The separator of a CSV from its header `line`: the one of CSV_DELIMITERS it holds most often outside quotes,
    a comma when none or tied. Read with a comma, a ";" file's header is one column named 'lead_id;created_at;...',
    refused as missing lead_id. A file that cannot be read (no line) gets a comma, for the reader to name the
    problem."""
    if line is None:
        return ","
    outside_quotes = re.sub(r'"[^"]*"', "", line)
    return max(CSV_DELIMITERS, key=lambda sep: (outside_quotes.count(sep), sep == ","))


@dataclass(frozen=True)
class TableHeader:
    """A table file's header, read once (`read_header`) and passed to each check and reader of the file.

    Attributes:
        names: the column names as written, in order, repeats included; "" for a CSV's column without a name.
        sep: a CSV's separator (`_delimiter_in` its first line); None for Parquet.
        nested: a Parquet file's columns of lists, records or maps, each with its type as Arrow writes it
            ("list<item: string>"); `refuse_nested_columns` names them.
    """

    names: list[str]
    sep: str | None
    nested: dict[str, str] = field(default_factory=dict)


def read_header(path: Path) -> TableHeader:
    """`path`'s header: a Parquet file's schema, or a CSV's first line (compressed too), read from the file once.

    Raises the parser's own error for a file without a readable header (empty, not UTF-8, not Parquet), for the
    caller to name the file. Only a CSV whose first line cannot be read, or whose quoted name runs on to the next
    line, is read a second time, as a header row: its parser then names the problem, or reads the name whole.
    """
    if is_parquet(path):
        schema = pq.read_schema(path)
        return TableHeader(schema.names, None, {f.name: str(f.type) for f in schema if pa.types.is_nested(f.type)})
    line = _first_line(path)
    if line is not None and re.fullmatch(r"sep=.", line.strip().strip('"'), re.IGNORECASE):
        raise ValueError(f"{path}: the first line {line.strip()!r} is Excel's separator hint, not the header row; delete "
                         "that line (the separator is read from the header)")
    sep = _delimiter_in(line)
    row = None
    if line is not None:
        with contextlib.suppress(pd.errors.ParserError):  # a quoted name left open at the line's end
            row = pd.read_csv(io.StringIO(line), sep=sep, header=None, dtype=str)
    if row is None:
        row = pd.read_csv(path, sep=sep, header=None, nrows=1, dtype=str, encoding="utf-8-sig")
    return TableHeader(row.iloc[0].fillna("").tolist(), sep)


def decimal_mark_of(header: TableHeader, data: DataParams) -> DecimalMark:
    """How a file writes its numbers, for `prepare_table`: data.decimal_mark for a CSV when set, its point taking
    commas that group thousands ("point_grouped": 1,234,567.89, as US Excel writes amounts); unset ("auto"), "either"
    for a CSV separated by ';', which Excel writes where the decimal mark is a comma and the thousands separator a dot
    (2,5 and 1.234,5), though other tools write 2.5 there; "point_guessed" for one separated otherwise, where a comma
    groups thousands or, quoted, may be a decimal comma (1,200 is refused); "point" for a Parquet file."""
    if header.sep is None:  # Parquet
        return "point"
    return csv_decimal_mark(header.sep, data)


def csv_decimal_mark(sep: str, data: DataParams) -> DecimalMark:
    """How a CSV separated by `sep` writes its numbers (`decimal_mark_of`); with "," also how the MLflow model reads
    the text of rows read from a file as `pd.read_csv(path, dtype=str)` reads it, as `leadscore score` reads it."""
    if data.decimal_mark != "auto":
        return "point_grouped" if data.decimal_mark == "point" else data.decimal_mark
    return "either" if sep == ";" else "point_guessed"


def readable_file(kind: str, path: Path) -> None:
    """Refuse an input file that is missing, a folder or cannot be read (no permission to read it, a disk
    error) by name: the parser's OSError was a traceback."""
    if path.is_dir():
        raise ValueError(f"the {kind} file {path} is a folder: name the CSV or Parquet file in it")
    if not path.exists():
        raise FileNotFoundError(f"the {kind} file {path} does not exist")
    try:
        with path.open("rb") as file:
            file.read(1)
    except OSError as err:
        raise ValueError(f"the {kind} file {path} cannot be read: {err.strerror or err}") from None


def refuse_repeated_columns(path: Path, header: TableHeader, dropped: set[str]) -> None:
    """Refuse a CSV or Parquet file whose header (`read_header`) names a column twice (a report joining two objects:
    the lead's 'Created Date' and the account's): pandas reads the second as 'Created Date.1', so which one the
    mapping read was chance, and Arrow stopped on 'Multiple matches'. Columns in data.drop_columns are read neither
    time. The export and the files `score` reads alike. Columns without a name are no name written twice: nothing
    can name them, and each is read apart ('Unnamed: 3', 'Unnamed: 5': `read_csv_kept`, `named_as_in_file`)."""
    repeated = [name for name, n in Counter(header.names).items() if n > 1 and name not in dropped and name != ""]
    if repeated:
        raise ValueError(f"{path}: the header names {', '.join(map(repr, repeated))} more than once, so which column "
                         "is meant is unclear; rename the copies in the export, or list the name in data.drop_columns "
                         "to read none of them")


def refuse_nested_columns(source: Path | str, nested: dict[str, str], dropped: set[str],
                          flatten: str = "flatten them in the export (a column per value)") -> None:
    """Refuse a source with a column of lists, records or maps that data.drop_columns does not list: a Parquet file's
    (a warehouse's repeated or nested field: `TableHeader.nested`) or a database's (a PostgreSQL array or JSON:
    `_nested_sql_columns`), `nested` naming each column's type. A CRM column holds one value per row, as a CSV cell
    and a request's field do: training stopped on a traceback over a Parquet one, and read a database's as its
    Python text ("['a', 'b']", "{'k': 1}"), as scoring read a lead id or category ("['L7']"). `flatten` says how to
    make one value of each."""
    nested = {name: kind for name, kind in nested.items() if name not in dropped}
    if nested:
        columns = ", ".join(f"{name!r} ({kind})" for name, kind in nested.items())
        which = f"column {columns} holds" if len(nested) == 1 else f"columns {columns} hold"
        raise ValueError(f"{source}: {which} lists, records or maps where a CRM column holds one value per row; "
                         f"{flatten}, or leave them out or list them in data.drop_columns to read none of them")


def parquet_kept(header: TableHeader, dropped: Collection[str]) -> list[str]:
    """The names to read a Parquet file with `header` by, those `dropped` (data.drop_columns) does not name, each once:
    Arrow reads every column of a name for it, so "" reads all those without a name (`named_as_in_file`)."""
    return list(dict.fromkeys(name for name in header.names if name not in dropped))


def named_as_in_file(table: pa.Table | pa.RecordBatch, header: TableHeader) -> pa.Table | pa.RecordBatch:
    """Columns read from a Parquet file with `header` by their names (`parquet_kept`) in the file's order, each without
    a name named as pandas names a CSV's ('Unnamed: 3', by its place in the file): training and `score` then read them
    as a CSV's, as any column the mapping does not name. Arrow returns the columns of one name together (all those
    without one, where the first is), each name's in the file's order."""
    places: dict[str, list[int]] = {}
    for place, name in enumerate(header.names):
        places.setdefault(name, []).append(place)
    remaining = {name: iter(found) for name, found in places.items()}
    positions = [next(remaining[name]) for name in table.schema.names]
    names = [header.names[place] or f"Unnamed: {place}" for place in positions]
    return table.rename_columns(names).select(sorted(range(len(positions)), key=positions.__getitem__))


def is_parquet(path: Path) -> bool:
    """Parquet by the file's name (.parquet, .pq); other tables are read and written as CSV."""
    return path.name.lower().endswith((".parquet", ".pq"))


def bytes_as_text(table: pa.Table | pa.RecordBatch, path: Path, first_row: int = 1) -> pa.Table | pa.RecordBatch:
    """Parquet byte columns as text, as a CSV cell is (some writers store text as plain bytes).

    ValueError naming the file, the row (`first_row` is the file row of the table's first) and
    column, and the value of the first cell that is not UTF-8.
    """
    for i, column in enumerate(table.schema):
        if not (pa.types.is_binary(column.type) or pa.types.is_large_binary(column.type)):
            continue
        try:
            table = table.set_column(i, column.name, table.column(i).cast(pa.large_string()))
        except pa.ArrowInvalid:
            row, bad = next((row, cell) for row, cell in enumerate(table.column(i).to_pylist())
                            if cell is not None and not _decodes(cell))
            raise ValueError(f"{path} row {first_row + row}, column {column.name!r}: {bad!r} is not UTF-8 "
                             "text; write the file's text as UTF-8") from None
    return table


def _decodes(cell: bytes) -> bool:
    try:
        cell.decode("utf-8")
        return True
    except UnicodeDecodeError:
        return False


def not_utf8(path: Path, err: UnicodeDecodeError) -> ValueError:
    """The error for a CSV that is not UTF-8: the file line (a plain .csv) and byte, and how to fix it."""
    line = _first_line_not_utf8(path) if path.suffix.lower() == ".csv" else 0
    where = f"line {line} holds byte" if line else "byte"
    return ValueError(f"{path}: not UTF-8 text, {where} {err.object[err.start:err.start + 1].hex(' ')} "
                      f"({err.reason}); save the file as UTF-8 (in Excel: CSV UTF-8)")


def _first_line_not_utf8(path: Path) -> int:
    """The file line (the header is line 1) of the first bytes that are not UTF-8 (0: none found);
    read again only when a parser refused the file, as parsers report a position in their own buffer."""
    with path.open("rb") as lines:
        for number, line in enumerate(lines, start=1):
            try:
                line.decode("utf-8")
            except UnicodeDecodeError:
                return number
    return 0


def _read_sql(spec: str, url: str, base_dir: Path, dropped: set[str]) -> pd.DataFrame:
    """A table or view by name, or a query's rows, with every value as the database stores it.

    A name is read as `SELECT *`, not by pandas' read_sql_table: that parses a declared DATETIME
    column itself and turns text it cannot read (a second UTC offset, after a DST change) into an
    empty date. A database error becomes a ValueError naming the database and the table or query; so does a column
    of arrays or JSON that `dropped` (data.drop_columns) does not name (`refuse_nested_columns`).
    """
    engine = _sql_engine(url, base_dir)
    is_query = _QUERY_START.match(spec) is not None
    what = f"query {as_sent(spec)}" if is_query else f"table {spec!r}"
    source = f"data.sql_url {shown_url(engine.url.render_as_string(hide_password=False))}: {what}"
    described: list = []  # the columns of each statement run, the rows' last

    @sa.event.listens_for(engine, "after_cursor_execute")
    def describe(conn, cursor, statement, parameters, context, executemany) -> None:
        described.append(cursor.description)

    try:
        with engine.connect() as conn:
            # A colon is text to the database (':x' in a literal), not one of SQLAlchemy's parameters.
            query = sa.text(spec.replace(":", r"\:")) if is_query else _select_all(spec, conn)
            rows = pd.read_sql_query(query, conn, dtype_backend="numpy_nullable")
    except (sa.exc.SQLAlchemyError, pd.errors.DatabaseError) as err:
        cause = err.__cause__ if isinstance(err, pd.errors.DatabaseError) and err.__cause__ else err
        raise ValueError(f"{source} failed: {database_reason(cause)}") from None
    finally:
        engine.dispose()
    nested = {name: kind for name, kind in _nested_sql_columns(described[-1] or ()).items() if name not in dropped}
    refuse_nested_columns(source, nested, dropped, "select one value of each, e.g. " + ", ".join(
        f'array_to_string("{name}", \';\') AS "{name}"' if kind.endswith("[]") else f'"{name}"->>\'key\' AS "{name}"'
        for name, kind in nested.items()))
    return _usual_dtypes(rows)


def _nested_sql_columns(description: Sequence) -> dict[str, str]:
    """The columns of a database's rows (a DB-API cursor's `description`) holding lists or records, each with its
    type as the database names it: a PostgreSQL array ("text[]") or JSON ("jsonb"), which psycopg reads as a Python
    list or dict (whose text pandas then made the value). psycopg names each column's type (`type_display`); other
    drivers name none, and SQLite has neither type. By its type, as a Parquet column is, whatever its rows hold: a JSON
    column of text today may hold a record in the next export."""
    kinds = {column[0]: getattr(column, "type_display", None) or "" for column in description}
    return {name: kind for name, kind in kinds.items() if kind.endswith("[]") or kind in ("json", "jsonb")}


def _sql_engine(url: str, base_dir: Path) -> sa.Engine:
    """An engine for data.sql_url; a SQLite file that does not exist is refused, not created empty."""
    try:
        parsed = resolve_sqlite(url, base_dir)
        path = sqlite_file(parsed)
        if path is not None and not Path(path).is_file():
            raise FileNotFoundError(f"data.sql_url: SQLite database not found: {path} (a relative "
                                    "path resolves against the params file's folder)")
        return sa.create_engine(parsed)
    except sa.exc.ArgumentError:
        raise ValueError("data.sql_url is not a SQLAlchemy URL such as sqlite:///crm.db or "
                         "postgresql://user@host/crm") from None
    except ImportError as err:
        raise ValueError(f"data.sql_url: the database driver is not installed ({err}); install it "
                         "next to leadscore") from None


def database_reason(err: BaseException) -> str:
    """The database's own reason for an error (its driver's message, not SQLAlchemy's wrapping), on one line:
    PostgreSQL adds lines (the statement's LINE with a caret, DETAIL, HINT) that would break a one-line message."""
    return str(getattr(err, "orig", None) or err).splitlines()[0]


def sqlite_file(url: str | sa.URL) -> str | None:
    """The file path a SQLite URL names, also as a URI (`sqlite:///file:store.db?mode=ro&uri=true`);
    None for another database or one in memory."""
    url = sa.make_url(url)
    db = url.database
    if url.get_backend_name() != "sqlite" or not db or db == ":memory:":
        return None
    if url.query.get("uri") == "true":
        db = db.removeprefix("file:")
        db = db[2:] if db.startswith("///") else db  # file:///abs/path
    return db if db and not db.startswith(":memory:") else None


def resolve_sqlite(url: str | sa.URL, base_dir: Path) -> sa.URL:
    """A relative SQLite file (a URI's too) resolves against the params file's folder, like every other
    path: the CRM's data.sql_url and the service's serving.store_url alike."""
    parsed = sa.make_url(url)
    path = sqlite_file(parsed)
    if path is None:
        return parsed
    resolved = Path(path).expanduser()
    resolved = resolved if resolved.is_absolute() else base_dir / resolved
    return parsed.set(database=parsed.database[: len(parsed.database) - len(path)] + str(resolved))


def _select_all(name: str, conn: sa.Connection) -> sa.Select:
    """`SELECT *` of a table or view found as SQL finds a name: in any letter case, and schema-qualified
    (`crm.leads`) when the name holds a dot. ValueError listing the tables when there is none."""
    inspector = sa.inspect(conn)
    candidates = [(None, name.strip('"'))]
    if "." in name:
        schema, table = name.split(".", 1)
        candidates.append((schema.strip('"'), table.strip('"')))
    for schema, table in candidates:
        try:
            known = inspector.get_table_names(schema) + inspector.get_view_names(schema)
        except sa.exc.SQLAlchemyError:  # e.g. no such schema
            continue
        found = [k for k in known if k == table] or [k for k in known if k.lower() == table.lower()]
        if found:
            return sa.select(sa.text("*")).select_from(sa.table(found[0], schema=schema))
    known = sorted(inspector.get_table_names() + inspector.get_view_names())
    listed = ", ".join(map(repr, known[:MAX_LISTED_PROBLEMS])) + (", ..." if len(known) > MAX_LISTED_PROBLEMS else "")
    raise ValueError(f"data.sql_url {shown_url(conn.engine.url.render_as_string(hide_password=False))}: no table or view {name!r} "
                     f"(it has {listed or 'none'}); or write a SELECT")


# Arrow integer types as pandas' nullable ones: numpy would make a column with a NULL float64.
_NULLABLE_INTEGERS = {pa.int8(): pd.Int8Dtype(), pa.int16(): pd.Int16Dtype(), pa.int32(): pd.Int32Dtype(),
                      pa.int64(): pd.Int64Dtype(), pa.uint8(): pd.UInt8Dtype(), pa.uint16(): pd.UInt16Dtype(),
                      pa.uint32(): pd.UInt32Dtype(), pa.uint64(): pd.UInt64Dtype()}


def _usual_dtypes(frame: pd.DataFrame) -> pd.DataFrame:
    """Nullable columns (read_sql's numpy_nullable backend) as the dtypes a CSV or Parquet read gives,
    except whole numbers with a NULL: they stay Int64, where float64 would round an id beyond 2**53
    (1234567890123456789 -> 1234567890123456768) and lose every activity of that lead."""
    frame = frame.copy()
    for i, (_, values) in enumerate(frame.items()):
        dtype = values.dtype
        if isinstance(dtype, pd.StringDtype):
            frame.isetitem(i, values.astype("str"))
        elif isinstance(dtype, pd.BooleanDtype):
            frame.isetitem(i, values.astype(object).where(values.notna(), None) if values.hasnans
                           else values.astype(bool))
        elif pd.api.types.is_float_dtype(dtype):
            frame.isetitem(i, values.astype("float64"))
        elif pd.api.types.is_integer_dtype(dtype) and not values.hasnans:
            frame.isetitem(i, values.astype(dtype.numpy_dtype))
    return frame


# ---------------------------------------------------------------- one table (pure)


def _column_mapping(table: str, data: DataParams) -> dict[str, str]:
    """CRM -> contract names for a table; a flat export has one set of columns for leads and outcomes."""
    if data.format == "flat" and table in ("leads", "outcomes"):
        return {**data.mapping.leads, **data.mapping.outcomes}
    return dict(getattr(data.mapping, table))


def translate(values: pd.Series, value_map: dict[str, str]) -> pd.Series:
    """A data.value_maps entry applied to stripped text: each value's contract value, NA where the map does not
    list it. Keys match in any letter case, as statuses do ("closed won" is "Closed Won"); looked up once
    per distinct value, not per row."""
    folded = value_map_labels(value_map)
    return values.map({v: folded.get(label_key(v)) for v in pd.unique(values.dropna())})


def _as_text(values: pd.Series) -> pd.Series:
    """Values as stripped strings; whole floats lose their '.0' (SQL NULLs turn 0/1 ints into floats).

    Dictionary-coded text (categorical) stays coded: each distinct value is cleaned once, and values
    equal once stripped share a code.
    """
    if isinstance(values.dtype, pd.CategoricalDtype):
        categories = pd.Series(values.cat.categories)
        cleaned = _as_text(categories)
        if cleaned.equals(categories):  # the usual case: nothing to strip, no row to recode
            return values
        codes = values.cat.codes.to_numpy()
        merged, levels = pd.factorize(cleaned)
        merged = np.append(merged, -1).astype(codes.dtype)  # code -1 (missing) stays missing
        return pd.Series(pd.Categorical.from_codes(merged[codes], categories=levels, validate=False),
                         index=values.index, name=values.name)
    return as_plain_text(values).str.strip()


def as_plain_text(values: pd.Series) -> pd.Series:
    """Values as text, a whole float without its ".0": id 10 reads "10", as the CRM shows it (a NULL
    in SQL or Parquet turns a column of integer ids float).

    A number among text (a JSON request's field in a batch that also sends text, a SQL DECIMAL) reads as
    it would in a column of numbers: the JSON 5.0 is "5" whatever the rest of the batch holds, so
    data.missing_values and data.value_maps match a lead alike alone and among others. True/false (a JSON,
    SQL or Parquet boolean) is the text "true"/"false", as JSON writes it, wherever it comes from (and PostgreSQL's
    CSV t/f its other spelling in a yes/no field: contract.true_false_spellings).
    """
    values = signalling_nans_quieted(values)
    numbers, booleans = numbers_sent(values)
    if booleans.any():
        values = values.astype(object)
        values[booleans] = ["true" if v else "false" for v in values[booleans]]
    if values.dtype == object and numbers.any():
        cells = values.to_numpy()
        exact = np.fromiter((isinstance(v, (int, np.integer)) for v in cells), bool, len(cells)) & numbers
        text = values.astype("str")
        text[exact] = [str(int(v)) for v in cells[exact]]  # a whole number beyond 2**53 keeps its digits
        others = numbers & ~exact
        if others.any():
            text[others] = as_plain_text(pd.Series(cells[others].astype("float64"), index=values.index[others]))
        return text
    text = values.astype("str")
    if pd.api.types.is_float_dtype(values.dtype):
        whole = (values == values.round()) & (values.abs() < 2**53)  # 2**53: integers a float holds exactly
        if whole.any():
            text = text.mask(whole, values[whole].astype("int64").astype("str"))
    return text


def _is_text(values: pd.Series) -> bool:
    if isinstance(values.dtype, pd.CategoricalDtype):
        return _is_text(pd.Series(values.cat.categories))
    return values.dtype == object or isinstance(values.dtype, pd.StringDtype)


def not_answered(value, data: DataParams) -> bool:
    """Whether one value sent on its own (a request's field) means 'not answered' as `_missing_to_na` reads a
    column: empty, or one of data.missing_values, compared stripped (a number as `as_plain_text` writes it)."""
    text = value if isinstance(value, str) else as_plain_text(pd.Series([value], dtype=object)).iloc[0]
    text = text.strip()  # text as sent: no Series built per lead of a request (`request_frames`) for its id
    return text == "" or text in {v.strip() for v in data.missing_values}


def one_value_per_row(values: list[pd.Series], data: DataParams, table: str, column: str, numeric: Collection[str] = (),
                      decimal_mark: DecimalMark = "point") -> tuple[pd.Series, np.ndarray]:
    """One contract column of `table` sent under several names (a CRM's mapped name and the contract's, each a Series
    of the same rows): per row its first answered value, as sent (none answered: the first name's), and which rows
    answer it with different values, compared as the column reads them (`_compared`: a date as its time, a number, the
    contract's or `numeric`'s, as its value, else as text, stripped; not answered as `_missing_to_na` reads a cell).
    An export and a request (`serving.scoring.one_field_per_column`) read the column once where the values agree, and
    refuse only a row where they differ: nothing picks one."""
    values = [v.astype(object) if isinstance(v.dtype, pd.CategoricalDtype) else v for v in values]
    answered = dict(enumerate(values))
    _missing_to_na(answered, data.missing_values)
    spec = TABLES[table]
    kind = "date" if column in spec.dates else "number" if column in spec.numeric or column in numeric else "text"
    keys = [_compared(v, kind, data, decimal_mark).where(v.notna()) for v in answered.values()]
    first = keys[0]
    for key in keys[1:]:
        first = first.fillna(key)
    differ = np.zeros(len(first), dtype=bool)
    value, taken = values[0], keys[0].notna().to_numpy(dtype=bool, copy=True)
    for sent, key in zip(values[1:], keys[1:]):
        here = key.notna().to_numpy(dtype=bool)
        differ |= here & (key.fillna("") != first.fillna("")).to_numpy(dtype=bool)
        if (here & ~taken).any():
            value = value.where(taken | ~here, sent)
        taken |= here
    return value, differ


def _compared(values: pd.Series, kind: str, data: DataParams, decimal_mark: DecimalMark) -> pd.Series:
    """Cells as `one_value_per_row` compares them, by the contract column's `kind`: a date as the time it reads as
    (`_as_dates`: a Parquet datetime 2024-01-05 00:00:00 is the text "2024-01-05"), a number as its value
    (`read_numbers`: "12.0" is 12), and a cell neither reads, or a text column's, as its text, stripped."""
    text = as_plain_text(values).str.strip()
    if kind == "date":
        read = _as_dates(values, data.day_first)[0].astype(object)
    elif kind == "number":
        read = read_numbers(values, False, decimal_mark).numbers.astype(object)
    else:
        return text
    return read.where(read.notna(), text.astype(object))


def numbers_not_answered(data: DataParams) -> list[str]:
    """Those of data.missing_values a number (a JSON request's, a column of numbers') matches: the ones written as
    `as_plain_text` writes a number ("-1", "0", "2.5"); "-1.0" or "1e3" only ever matches that text."""
    listed = [v.strip() for v in data.missing_values if re.match(NUMBER_TEXT, v)]
    return [v for v in listed if as_plain_text(pd.Series([float(v)])).iloc[0] == v]


def _missing_to_na(columns: dict[str, pd.Series], missing_values: list[str]) -> None:
    """Cells that mean 'not answered' (compared stripped) become NA: blank ones always, as `not_answered`
    reads a request's field, and data.missing_values. A number compares as its text (`as_plain_text`): -1
    is "-1" in a column of numbers (a JSON request's, a SQL or Parquet column's) as among text.

    Stripped and matched by Arrow kernels (`_missing_cells`), without a Python object per cell.
    """
    missing = list(dict.fromkeys(["", *(v.strip() for v in missing_values)]))
    # The values a number compares to: a number's text is its value's (as_plain_text writes 5 as "5", never "5.0").
    numbers = [float(v) for v in missing if re.match(NUMBER_TEXT, v)]
    for name, values in columns.items():
        if len(values) == 0:
            continue
        if pd.api.types.is_bool_dtype(values.dtype) or (numbers and pd.api.types.is_numeric_dtype(values.dtype)):
            # Each distinct value of the few equal to a listed number (or true/false) compared once by its text.
            candidates = values.dropna() if pd.api.types.is_bool_dtype(values.dtype) else values[values.isin(numbers)]
            distinct = pd.Series(pd.unique(candidates), dtype=values.dtype)
            hits = _missing_cells(distinct, missing)
            if hits.any():
                columns[name] = values.mask(values.isin(distinct[hits]))
            continue
        if not _is_text(values):
            continue
        if isinstance(values.dtype, pd.CategoricalDtype):  # dictionary-coded: look at each value once
            categories = values.cat.categories
            hits = _missing_cells(pd.Series(categories), missing)
            if hits.any():
                columns[name] = values.cat.remove_categories(categories[hits])
            continue
        hits = _missing_cells(values, missing)
        if hits.any():
            columns[name] = values.mask(hits)


def _missing_cells(values: pd.Series, missing: list[str]) -> np.ndarray:
    """Which cells, stripped, are one of `missing` (stripped).

    Always by Arrow kernels, other columns than Arrow text (JSON requests, numbers) converted first: memory
    grows with the text. numpy's fixed-width strings took rows x the longest cell x 4 bytes per column
    (6,000 leads with one 1 MB note: 24 GB).
    """
    if not isinstance(values.array, ArrowStringArray):
        values = as_plain_text(values)  # a number or date compares as its text: -1.0 as "-1"
    text = pa.array(values.array)
    hits = pc.is_in(pc.utf8_trim_whitespace(text), value_set=pa.array(missing, type=text.type))
    return hits.fill_null(False).to_numpy(zero_copy_only=False)


def differing_values(spec: TableSpec, column: str, sent: list[tuple[str, str]]) -> str:
    """The different values fields mapping to one contract `column` hold, for a message: each field's as sent
    ("'Industry': 'software', 'industry': 'retail'"), unless the column is personal (`TableSpec.personal`: an
    e-mail, a phone, free text), whose values a message sent to a job's log must not repeat: the row and the fields
    it names find them."""
    if column in spec.personal:
        return f"not repeated here: {column} is personal data"
    return ", ".join(f"{name!r}: {shown}" for name, shown in sent)


def shortened(text: str) -> str:
    """A client's text as a message, an answer or the score log echoes it: its start and its length when very long,
    so a 200,000-character field sent by mistake is still recognised without coming back (or being stored) whole."""
    return text if len(text) <= 60 else f"{text[:40]}... ({len(text):,} characters)"


def as_sent(value) -> str:
    """A cell for a message, as the CRM sent it: text quoted, a number or true/false as the plain
    value (not numpy's ``np.float64(...)``), a date as ISO text; cut short when very long (`shortened`)."""
    if isinstance(value, (np.datetime64, datetime)):
        value = pd.Timestamp(value).isoformat()
    elif isinstance(value, (np.timedelta64, timedelta)):
        value = str(pd.Timedelta(value))  # '3 days 00:00:00', not numpy's count of microseconds
    elif isinstance(value, np.generic):
        value = value.item()
    return shortened(repr(value))


def _duration_hint(column: str) -> str:
    """How to send a duration (a SQL INTERVAL, a Parquet duration) to a number field, which reads none."""
    return (f'a duration: export it as a number, e.g. of days; with data.sql_url, PostgreSQL\'s EXTRACT(EPOCH FROM '
            f'"{column}") / 86400 AS "{column}"')


# A date written day and month (in either order) before the year: 06/02/2025, 6.2.25, 06-02-2025 10:30.
_DAY_MONTH_YEAR = r"^\s*(\d{1,2})[/.\-](\d{1,2})[/.\-](\d{4}|\d{2})((?:[\sT].*)?)$"


def _day_month_as_iso(values: pd.Series, day_first: bool | None) -> tuple[pd.Series, np.ndarray]:
    """``values`` with dates like 06/02/2025 rewritten as ISO text, and which of them were ambiguous.

    pandas reads 06/02/2025 as June 2 but 13/02/2025 as 13 February in the same column, and with
    dayfirst=True reads even 2025-06-02 as 6 February: a CRM export in a European locale would be
    misdated without a word. The order is ``data.day_first``; unset, a date only one order makes
    valid (13/02/2025) is read so, and one both orders make valid is refused (None here, flagged).
    A two-digit year is 20yy.
    """
    parts = values.astype("string").str.extract(_DAY_MONTH_YEAR)
    found = parts[0].notna().to_numpy()
    if not found.any():
        return values, np.zeros(len(values), dtype=bool)
    first, second = parts[0].astype("Float64"), parts[1].astype("Float64")
    if day_first is None:
        ambiguous = (found & (first <= 12) & (second <= 12) & (first != second)).to_numpy(dtype=bool, na_value=False)
        day_is_first = (first > 12).fillna(False)
    else:
        ambiguous = np.zeros(len(values), dtype=bool)
        day_is_first = pd.Series(day_first, index=values.index)
    day, month = parts[0].where(day_is_first, parts[1]), parts[1].where(day_is_first, parts[0])
    year = parts[2].where(parts[2].str.len() == 4, "20" + parts[2])
    iso = year + "-" + month.str.zfill(2) + "-" + day.str.zfill(2) + parts[3]
    rewritten = values.astype(object).where(~found, iso.astype(object))
    return rewritten.where(~ambiguous, None), ambiguous


def _day_month_order_hint(value, day_first: bool | None, audience: Audience) -> str:
    """Why a date like 13/12/2025 did not parse, when data.day_first put its day where the month goes."""
    found = re.match(_DAY_MONTH_YEAR, str(value))
    if day_first is None or not found:
        return ""
    month, day = (int(found[2]), int(found[1])) if day_first else (int(found[1]), int(found[2]))
    if month <= 12 or not 1 <= day <= 12:
        return ""
    return " (" + audience.day_month_order.format(
        day_first=str(day_first).lower(), order="day first" if day_first else "month first", month=month,
        other=str(not day_first).lower(), first="month" if day_first else "day") + ")"


# Java's ZonedDateTime.toString(), which many Java/Kotlin CRM connectors send: an ISO date and time, its offset or Z,
# then the zone id in brackets: 2024-01-08T18:07:00Z[UTC], 2024-01-08T18:07+01:00[Europe/Paris].
_ZONE_ID = r"^(?P<time>.*?)\[\s*(?P<zone>[^\[\]]*?)\s*\]\s*$"
# A time ending in an offset or Z (18:07Z, 18:07:00.123+02:00); a date's own day (2024-01-08) is none.
_OFFSET_AT_END = r"\d:\d{2}(?::\d{2}(?:[.,]\d+)?)?\s*(?:Z|[+-]\d{2}(?::?\d{2})?)$"


# Java's fixed-offset zone ids (ZoneId.of), which zoneinfo has not: UTC, GMT or UT alone or before an offset
# (UTC+01:00, GMT+2, UT-05:00), or an offset alone (+01:00, Z). Java's sign: UTC+01:00 is an hour ahead of UTC, unlike
# the POSIX sign of IANA's Etc/GMT+1, which is an hour behind.
_FIXED_OFFSET_ZONE = re.compile(r"(?:UTC|GMT|UT)?(?P<sign>[+-])(?:(?P<hour>\d)|(?P<hours>\d{2})(?:(?P<colon>:?)"
                                r"(?P<minutes>\d{2})(?:(?P=colon)(?P<seconds>\d{2}))?)?)|UTC|GMT|UT|Z")


@functools.cache
def _time_zone(name: str) -> tzinfo | None:
    """The time zone `name` names: Java's fixed offset (`_FIXED_OFFSET_ZONE`, first, as Java reads it) or an IANA
    zone (Europe/Paris, UTC); None when there is none of that name or the offset is past Java's 18 hours."""
    if fixed := _FIXED_OFFSET_ZONE.fullmatch(name):
        if not fixed["sign"]:
            return timezone.utc
        minutes, seconds = int(fixed["minutes"] or 0), int(fixed["seconds"] or 0)
        offset = timedelta(hours=int(fixed["hour"] or fixed["hours"]), minutes=minutes, seconds=seconds)
        if offset > timedelta(hours=18) or minutes > 59 or seconds > 59:
            return None
        return timezone(-offset if fixed["sign"] == "-" else offset)
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):  # ValueError: a path, not a key ("../x"); OSError: a folder
        return None


def _zone_ids_read(values: pd.Series) -> pd.Series:
    """``values`` with the zone id in brackets (`_ZONE_ID`) read, the others untouched.

    After an offset or Z the bracket is dropped: the offset decides the instant, Java's own rule when both are given.
    Without one the time is read in that zone and written in UTC, a time a clock change skips or repeats read as
    Java reads it (later by the gap; the earlier offset), which zoneinfo's fold=0 does. A zone id that names no zone
    (`_time_zone`) makes the value None, refused as unparsable (`_zone_id_hint` says why). Only values holding "[" are
    looked at.
    """
    text = _arrow_text(values)
    if text is None:
        return values
    bracketed = pc.match_substring(text, "[").fill_null(False)
    if not pc.any(bracketed).as_py():
        return values
    parts = pc.extract_regex(text.filter(bracketed), _ZONE_ID)  # Arrow's kernels: ~3x faster than pandas' str
    time, zone = parts.field("time"), parts.field("zone")
    zones = [name for name in pc.unique(zone).to_pylist() if name is not None and _time_zone(name) is not None]
    known = pc.is_in(zone, value_set=pa.array(zones, type=zone.type)).fill_null(False).to_numpy(zero_copy_only=False)
    offset = pc.match_substring_regex(time, _OFFSET_AT_END).fill_null(False).to_numpy(zero_copy_only=False)
    read = time.to_numpy(zero_copy_only=False)
    read[~(known & offset)] = None
    local = known & ~offset
    if local.any():
        walls = pd.to_datetime(pd.Series(time.filter(local)), format="ISO8601", errors="coerce")
        names = zone.filter(local).to_pylist()
        read[local] = [None if pd.isna(wall) else wall.to_pydatetime().replace(tzinfo=_time_zone(name))
                       .astimezone(timezone.utc).isoformat() for wall, name in zip(walls, names)]
    out = values.astype(object)
    out[bracketed.to_numpy(zero_copy_only=False)] = read
    return out


def _zone_id_hint(value) -> str:
    """Why a date with a zone id in brackets did not parse, when that id is no time zone."""
    found = re.match(_ZONE_ID, str(value))
    if not found or _time_zone(found["zone"]) is not None:
        return ""
    return (f" (unknown time zone {found['zone']!r} in brackets: give an IANA zone id such as Europe/Paris, a fixed "
            "one such as UTC+01:00, or the UTC offset alone, e.g. 2024-01-08T18:07:00+01:00)")


# Text pandas' date parser reads as the time it runs (`_parse_dates` refuses it as no date).
_MOMENT_WORDS = ("now", "today")


def _parse_dates(values: pd.Series, day_first: bool | None = None) -> tuple[pd.Series, np.ndarray, np.ndarray]:
    """Text dates as datetimes, NaT where unparsable, a number or ambiguous; which cells are a number;
    and which are ambiguous in their day and month order (``_day_month_as_iso``).

    A number (or true/false, or text of a number) is never read as a date: pandas takes 1764000000
    as nanoseconds after 1970 and "2026" as 2026-01-01, silently. Plain ISO 8601 without a zone (what
    CRM exports and the synthetic CRM write) takes Arrow's cast, ~15x faster than pandas' per-value
    "mixed" parser, and holds no number and no day-month date; a column holding anything else (zone
    offsets, other layouts, stray blanks) has its day-month dates put in order and Java's zone ids in brackets read
    (`_zone_ids_read`), then takes Arrow's cast if that made it plain ISO, else pandas' parser as a whole.
    """
    numbers, booleans = numbers_sent(values)
    numbers = numbers | booleans
    if numbers.any():
        values = values.astype(object).where(~numbers, None)
    text = _arrow_text(values)
    if text is not None:
        stamps = _iso_stamps(text)
        if stamps is not None:
            return pd.Series(stamps, index=values.index, name=values.name), numbers, np.zeros(len(values), dtype=bool)
        number_text = pc.match_substring_regex(text, NUMBER_TEXT).fill_null(False).to_numpy(zero_copy_only=False)
        if number_text.any():
            numbers |= number_text
            values = values.astype(object).where(~numbers, None)
    values, ambiguous = _day_month_as_iso(values, day_first)
    values = _zone_ids_read(values)
    rewritten = _arrow_text(values)
    stamps = _iso_stamps(rewritten) if rewritten is not None else None
    if stamps is not None:
        return pd.Series(stamps, index=values.index, name=values.name), numbers, ambiguous
    parsed = pd.to_datetime(values, format="mixed", utc=True, errors="coerce")
    # pandas reads "now" and "today" as the moment it parses them: a lead created (or scored as of) whenever it is read
    return parsed.mask(values.isin(_MOMENT_WORDS)), numbers, ambiguous


def _as_dates(values: pd.Series, day_first: bool | None) -> tuple[pd.Series, np.ndarray, np.ndarray]:
    """A date column as the contract holds it (naive UTC, microseconds): a CSV's text or a request's parsed
    (`_parse_dates`, which also says which cells are a number or ambiguous), a Parquet or SQL datetime as it is."""
    parsed, numbers, ambiguous = values, np.zeros(len(values), dtype=bool), np.zeros(len(values), dtype=bool)
    if not pd.api.types.is_datetime64_any_dtype(values.dtype):
        parsed, numbers, ambiguous = _parse_dates(values, day_first)
    if getattr(parsed.dtype, "tz", None) is not None:
        parsed = parsed.dt.tz_convert("UTC").dt.tz_localize(None)
    return parsed.astype("datetime64[us]"), numbers, ambiguous


def _arrow_text(values: pd.Series) -> pa.Array | None:
    """``values`` as an Arrow string array, or None when they are not all text (e.g. datetimes among text)."""
    try:
        text = pa.array(values, from_pandas=True)
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        return None
    return text if pa.types.is_string(text.type) or pa.types.is_large_string(text.type) else None


def _iso_stamps(text: pa.Array) -> np.ndarray | None:
    """Arrow's cast of plain ISO 8601 text (no zone) to datetimes; None when any value is something else."""
    try:
        return text.cast(pa.timestamp("us")).to_numpy(zero_copy_only=False)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return None


def contract_status(values: pd.Series, data: DataParams) -> pd.Series:
    """Statuses spelled as data.statuses spells them, in any letter case and with blanks around them
    (labelling compares them so too): "Converted " is converted. Any other value is kept as sent."""
    spelled = {s.strip().lower(): s for s in data.statuses}
    return values.str.strip().str.lower().map(spelled).fillna(values)


def _number_as_date(value) -> str:
    """Why a number (or true/false) is refused as a date: a lead's date or an as_of."""
    return f"{DATE_FORM}, not {'' if isinstance(value, (bool, np.bool_)) else 'the number '}{as_sent(value)}"


def _ambiguous_date(value, advice: str) -> str:
    """Why a date that reads day first and month first is refused (a lead's date or an as_of), with what to do."""
    return f"date {as_sent(value)} reads day first or month first: {advice}"


class AsOfError(ValueError):
    """A time to score or train as of that cannot be used; `kind` as a lead's date refused so is typed."""

    def __init__(self, message: str, kind: str):
        super().__init__(message)
        self.kind = kind


def as_of_time(value) -> pd.Timestamp:
    """A time to score or train as of (--as-of, a request's as_of), as naive UTC like every contract date. Text is read
    as a lead's created_at is (`_as_dates`: one rule for what a date is, Java's zone in brackets included), with no
    data.day_first: a date that reads day first and month first is refused.

    Raises:
        AsOfError: naming the value, when text is no date, a number or reads both orders, or when it lies outside the
            dates the contract accepts: it is compared with the leads' dates, and 0001-01-01 or 9999-12-31 is a "no
            date" sent by mistake.
    """
    if isinstance(value, str):
        read, numbers, ambiguous = _as_dates(pd.Series([value], dtype=object), None)
        if numbers[0]:
            raise AsOfError(_number_as_date(value), "number_as_date")
        if ambiguous[0]:
            raise AsOfError(_ambiguous_date(value, "write it year first, e.g. 2026-01-31"), "ambiguous_date")
        if pd.isna(read.iloc[0]):
            raise AsOfError(f"unparsable date {as_sent(value)}{_zone_id_hint(value) or f' ({DATE_FORM})'}",
                            "unparsable_date")
        stamp = read.iloc[0]
    else:  # a datetime, e.g. an --as-of already read, passed on to the scorer
        stamp = pd.Timestamp(value)
    try:
        if stamp.tzinfo is not None:
            stamp = stamp.tz_convert("UTC").tz_localize(None)
        in_range = DATE_RANGE[0] <= stamp < DATE_RANGE[1]
    except (ValueError, OverflowError):  # e.g. 9999-12-31T23:59:59-05:00 is in the year 10000 in UTC
        in_range = False
    if not in_range:
        raise AsOfError(f"as_of {as_sent(value)} is out of range (expected {DATE_RANGE_TEXT})", "as_of_out_of_range")
    return stamp


def now_if_after(stamp: pd.Timestamp) -> pd.Timestamp | None:
    """Now (naive UTC) when `stamp`, an `as_of_time`, is more than CLOCK_SLACK after it, else None: the command line's
    --as-of and a request's as_of are refused then, as a lead's created_at is (nothing after now has happened yet)."""
    now = pd.Timestamp.now(tz="UTC").tz_localize(None)
    return now if stamp > now + CLOCK_SLACK else None


def _empty_column(column: str, spec: TableSpec, index: pd.Index) -> pd.Series:
    if column in spec.dates:
        return pd.Series(pd.NaT, index=index, dtype="datetime64[us]")
    if column in spec.numeric:
        return pd.Series(np.nan, index=index, dtype="float64")
    # All-null Arrow text: a list of Nones cost 1 s per 13M activity rows without a detail column.
    return pd.Series(pd.array(pa.nulls(len(index), pa.large_string()), dtype="str"), index=index)


# "1,234", "1 234", "1.234,5" or "1.234.567": a number written for people in some locale, which a number field
# refuses.
_GROUPED_DIGITS = re.compile(r"\d[, ]\d|\d\.\d{3}\.\d")
# "51-200", "10,001+", "<10": a CRM picklist's band of company sizes, which data.value_maps turns into a number.
_NUMBER_BAND = re.compile(r"\s*(\d[\d,.]*\s*[-\u2013]\s*\d[\d,.]*|\d[\d,.]*\s*\+|[<>]=?\s*\d[\d,.]*)\s*")
# How a number that is refused for its separators should be written, by how the file writes numbers.
_DECIMAL_MARK_HINT: dict[DecimalMark, str] = {
    "point": "with a decimal point and no thousands separator: 1234.5",
    "point_guessed": "with a decimal point and no thousands separator: 1234.5",
    "point_grouped": "with a decimal point, and commas, if any, between groups of three digits and never before an "
                     "exponent: 1234.5, 1,234.5 or 1.2345E+03",
    "comma": "with a decimal comma and no thousands separator: 1234,5",
    "either": "with no thousands separator: 1234,5 or 1234.5",
}


def _is_amount_of_money(text: str) -> bool:
    """Whether `text` is a number written with its currency: '$1,234.56', '-$5.00', '1.234,56 €', as PostgreSQL
    writes its money type (by its lc_monetary), or 'USD 1,200.00', as a CRM's report (Salesforce's) may write one."""
    if _ISO_CURRENCY_AMOUNT.fullmatch(text):
        return True
    rest = re.sub(r"[\d.,'\s()+-]", "", text)
    return rest != "" and any(c.isdigit() for c in text) and all(unicodedata.category(c) == "Sc" for c in rest)


# 'USD 1,200.00', '-1.234,5 EUR': an amount with its ISO 4217 code before or after it.
_ISO_CURRENCY_AMOUNT = re.compile(r"\s*[-+]?\s*(?:[A-Z]{3}\s*[-+]?\d[\d.,' ]*|\d[\d.,' ]*\s*[A-Z]{3})\s*")


def prepare_table(
    raw: pd.DataFrame, table: str, data: DataParams, source: str = "request", numeric: Sequence[str] = (),
    non_negative: Sequence[str] = (), decimal_mark: DecimalMark = "point",
    audience: Audience = COMMAND_LINE, text: Sequence[str] = (), lead_ids_shown: bool = False,
) -> tuple[pd.DataFrame, list[Problem]]:
    """Map raw CRM rows onto one contract table and validate them.

    Renames via data.mapping (data.drop_columns are never read), turns data.missing_values into NA,
    applies data.value_maps, then checks types: dates (tz-naive UTC; a lead's creation and a decision
    not in the future), numbers, statuses, and that required values are present. Contract columns
    come first with fixed dtypes (absent optional ones as NA), extra columns are kept as read; in
    flat mode the outcome columns belong to `outcomes` only.
    Works column by column on Series (not a growing DataFrame) so one request row costs little.

    Args:
        numeric: further columns read as numbers (``features.numeric``, e.g. a CRM's visit count),
            checked like the contract's: a cell that is not a number refuses its row, not the batch.
        non_negative: those of them that count something (``features.non_negative``): below 0 refuses the row.
        decimal_mark: how the rows' text writes numbers (``decimal_mark_of`` their file, `numbers.DecimalMark`):
            "point" (1234.5), "comma" (1234,5 or 1.234,5), "point_grouped" (1,234.5), or "either" or "point_guessed":
            both marks, or a grouping comma, read, and a number that reads both ways (1.200, 1,200) refuses its row,
            as it may be 1200 or 1.2.
        audience: who reads the problems' advice (the service's API clients, or a command's user).
        text: further columns read as text (``features.categorical``, e.g. a CRM's lead origin), kept as read but,
            like the contract's text fields, refusing a row that holds an infinite number (`check_text`).
        lead_ids_shown: a problem of a row names its lead_id too (`Problem.lead_id`): a database's row number locates
            nothing, as a SELECT without ORDER BY returns rows in no set order.

    Returns:
        The frame without the bad rows (kept rows keep their raw index labels, so a caller can tell
        which rows were refused) and the problems; the caller decides whether to stop or drop. A bad
        value of a column in the spec's ``cleared_if_bad`` refuses no row: it is missing in the frame,
        its problem ``row_kept`` (the row may be refused for another). A missing required column returns no rows and a problem with row None.
    """
    if table not in TABLES:
        raise ValueError(f"unknown contract table {table!r}; expected one of {sorted(TABLES)}")
    spec = TABLES[table]
    mapping = _column_mapping(table, data)
    crm_name: dict[str, str] = {}  # contract -> CRM column, preferring one the export has
    for crm, contract in mapping.items():
        if contract not in crm_name or crm in raw.columns:
            crm_name[contract] = crm
    problems: list[Problem] = []

    def problem(row: int | None, column: str | None, message: str, kind: str, row_kept: bool = False) -> Problem:
        return Problem(source, row, crm_name.get(column, column), message, column, kind, row_kept,
                       lead_of(row) if column != "lead_id" else None)

    def lead_of(row: int | None) -> str | None:
        """The lead_id of a 1-based `row` as read (`lead_ids_shown`), stripped; None when not shown or empty."""
        if not lead_ids_shown or row is None or lead_ids is None or pd.isna(lead_ids.iloc[row - 1]):
            return None
        if not shown_ids:  # written once, at the first problem
            shown_ids.append(as_plain_text(lead_ids.astype(object)).str.strip())
        return shown_ids[0].iloc[row - 1] or None

    columns: dict[str, pd.Series] = {}
    origins: dict[str, list[str]] = {}
    skipped = set(data.drop_columns)
    if data.format == "flat" and table == "leads":
        skipped |= {crm for crm in raw.columns if mapping.get(crm, crm) in OUTCOME_COLUMNS}
    for crm in raw.columns:
        name = mapping.get(crm, crm)
        if crm in skipped or (data.format == "flat" and table == "outcomes" and name not in OUTCOMES.columns):
            continue
        origins.setdefault(name, []).append(crm)
        columns.setdefault(name, signalling_nans_quieted(raw[crm]))
    differ: dict[str, np.ndarray] = {}  # per column several CRM columns map to, the rows where their values differ
    for name, crms in origins.items():
        if len(crms) > 1:
            columns[name], differ[name] = one_value_per_row([signalling_nans_quieted(raw[crm]) for crm in crms], data,
                                                            table, name, numeric, decimal_mark)
    lead_ids, shown_ids = columns.get("lead_id"), []  # as read, and as text once a problem names one (`lead_of`)

    required = required_columns(spec, data)
    for column in required:
        if column not in columns:
            expected = crm_name.get(column, column)
            # drop_columns holds for every table: a leads column dropped there hides the outcomes' same-named one.
            alike = alike_column(raw.columns, expected)
            fix = ("it is listed in data.drop_columns, which no table reads; take it out of that list"
                   if expected in data.drop_columns else
                   f"the export has {alike!r}, {ALIKE}: rename it, or map it in "
                   f"data.mapping.{table}" if alike else f"set data.mapping.{table} if the CRM names it differently")
            problems.append(
                Problem(source, None, expected, f"missing required column {expected!r} (contract column "
                        f"{column}; {fix})", column, "missing_column")
            )
    if problems:
        return pd.DataFrame(columns).iloc[:0], problems

    _missing_to_na(columns, data.missing_values)
    # Per column data.value_maps translates, its values as the CRM sent them and which cells were translated.
    translated: dict[str, tuple[pd.Series, np.ndarray]] = {}
    for column, value_map in data.value_maps.items():
        if column in columns:
            mapped = translate(_as_text(columns[column]), value_map)
            translated[column] = (columns[column], mapped.notna().to_numpy(dtype=bool))
            columns[column] = mapped.where(mapped.notna(), columns[column])

    bad = np.zeros(len(raw), dtype=bool)
    for name, rows in differ.items():
        crms = origins[name]
        for i in np.flatnonzero(rows):
            sent = differing_values(spec, name, [(crm, as_sent(raw[crm].iloc[i])) for crm in crms
                                                 if pd.notna(raw[crm].iloc[i]) and not not_answered(raw[crm].iloc[i], data)])
            problems.append(Problem(source, int(i) + 1, crms[0], f"{' and '.join(map(repr, crms))} map to one column, {name} "
                                    f"(data.mapping), and hold different values ({sent}): the row is refused rather "
                                    "than one picked; make them agree, or leave one out (data.drop_columns)", name,
                                    "ambiguous_column"))
        bad |= rows
    cleared: dict[str, np.ndarray] = {}  # per column of spec.cleared_if_bad, its bad values, left out of kept rows
    now = pd.Timestamp.now(tz="UTC").tz_localize(None)

    def translated_from(column: str, position: int, value) -> str:
        """Where a refused value came from, when data.value_maps translated it: the label the CRM sent."""
        sent, hits = translated.get(column, (None, None))
        if sent is None or not hits[position]:
            return ""
        return (f"; the CRM sent {as_sent(sent.iloc[position])}, which data.value_maps.{column} translates to "
                f"{as_sent(value)}")

    def flag(mask: pd.Series | np.ndarray, column: str, kind: str, describe) -> None:
        positions = np.flatnonzero(np.asarray(mask, dtype=bool))
        if not len(positions):  # the usual case: no row to name
            return
        values = columns[column].iloc[positions].to_numpy()
        kept = column in spec.cleared_if_bad
        problems.extend(problem(int(i) + 1, column, describe(v) + translated_from(column, i, v), kind, kept)
                        for i, v in zip(positions, values))
        if kept:
            cleared.setdefault(column, np.zeros(len(raw), dtype=bool))[positions] = True
        else:
            bad[positions] = True

    def check_number(column: str) -> None:
        # A translation is params' text: "1.500" is 1.5 whatever the file's decimal mark.
        cells = read_numbers(columns[column], column in spec.non_negative or column in non_negative, decimal_mark,
                             translated[column][1] if column in translated else None)
        def not_a_number(v) -> str:
            text, hint = str(v), ""
            if _NUMBER_BAND.fullmatch(text):
                hint = audience.number_band.format(column=column)
            elif _is_amount_of_money(text):
                hint = audience.amount_of_money.format(column=crm_name.get(column, column))
            elif _GROUPED_DIGITS.search(text):
                hint = f"write numbers {_DECIMAL_MARK_HINT[decimal_mark]}"
            elif isinstance(v, (np.timedelta64, timedelta)):
                hint = _duration_hint(crm_name.get(column, column))
            return f"not a number: {as_sent(v)}" + (f" ({hint})" if hint else "")

        flag(cells.not_a_number, column, "bad_number", not_a_number)
        flag(cells.reads_two_ways, column, "bad_number", lambda v: (
            f"ambiguous number {as_sent(v)}: {TWO_WAYS_WHERE[decimal_mark]} it may be {both_readings(v)}; "
            f"{audience.ambiguous_number}"))
        flag(cells.too_large, column, "bad_number", lambda v: f"number out of range {as_sent(v)} "
             f"(a number field holds a finite number smaller than {LARGEST_NUMBER:g} in size)")
        flag(cells.below_zero, column, "bad_number",
             lambda v, c=column: f"negative {c} {as_sent(v)} ({c} counts something: 0 or more)")
        columns[column] = cells.numbers

    def check_text(column: str) -> None:
        # A SQL or Parquet float's inf read on would be the category "inf"; the service refuses a JSON Infinity.
        flag(infinite_numbers(columns[column]), column, "infinite_number",
             lambda v, c=column: f"an infinite number is no {c} value: {as_sent(v)}")

    for column in spec.columns:
        if column not in columns:
            columns[column] = _empty_column(column, spec, raw.index)
            continue
        values = columns[column]
        if column in spec.dates:
            parsed, numbers, ambiguous = _as_dates(values, data.day_first)
            flag(numbers, column, "number_as_date", _number_as_date)
            flag(ambiguous, column, "ambiguous_date", lambda v: _ambiguous_date(v, audience.ambiguous_date))
            flag(values.notna() & parsed.isna() & ~numbers & ~ambiguous, column, "unparsable_date",
                 lambda v: f"unparsable date {as_sent(v)}{_day_month_order_hint(v, data.day_first, audience)}"
                           f"{_zone_id_hint(v)}")
            flag((parsed < DATE_RANGE[0]) | (parsed >= DATE_RANGE[1]), column, "date_out_of_range",
                 lambda v: f"date out of range {as_sent(v)} (expected {DATE_RANGE_TEXT})")
            if column in spec.past:  # one such date would also become the export's 'now' (dataset.data_as_of)
                flag((parsed > now + CLOCK_SLACK) & (parsed < DATE_RANGE[1]), column, "date_in_future",
                     lambda v: f"date in the future {as_sent(v)} (now is {now:%Y-%m-%d %H:%M} UTC): it records "
                               "something that has happened; an expected date, such as an open deal's close date, is not one")
            columns[column] = parsed
        elif column in spec.numeric:
            check_number(column)
        else:  # a JSON, SQL or Parquet true/false is the text "true"/"false" (`as_plain_text`)
            check_text(column)
            columns[column] = _as_text(values)
        if column in required:
            empty = values.isna() | (columns[column] == "") if column in TEXT_COLUMNS else values.isna()
            flag(empty, column, "empty_value", lambda v, c=column: f"empty {c}" + (
                " (write the CRM's open stage for a lead not decided yet, and translate it to open with "
                "data.value_maps.status: a blank cell is missing, which no map translates)" if c == "status" else ""))
    for column in numeric:
        if column in columns and column not in spec.columns:
            check_number(column)
    for column in text:
        if column in columns and column not in spec.columns:
            check_text(column)
    if "status" in spec.columns:
        status = columns["status"] = contract_status(columns["status"], data)
        flag(
            status.notna() & (status != "") & ~status.isin(data.statuses),
            "status",
            "unknown_status",
            lambda v: f"unknown status {as_sent(v)} (expected one of {data.statuses}; translate CRM values "
            "with data.value_maps.status)",
        )

    for column, values in cleared.items():
        columns[column] = columns[column].mask(values)
    order = list(spec.columns) + [c for c in columns if c not in spec.columns]
    frame = pd.DataFrame({name: columns[name] for name in order}, index=raw.index)
    return (frame[~bad] if bad.any() else frame), problems


# ---------------------------------------------------------------- whole export


def decided_before_created(outcomes: pd.DataFrame, leads: pd.DataFrame, flat: bool = False) -> pd.Series:
    """The lead's created_at of each outcome row decided more than CLOCK_SLACK before it (only those
    rows, indexed like `outcomes`): a decision cannot precede its lead. The export refuses such rows and
    retrain leaves such feedback out, so a bad date is a label in neither."""
    if "created_at" not in leads or not len(outcomes):
        return pd.Series(dtype="datetime64[us]")
    created = (leads["created_at"].reindex(outcomes.index) if flat
               else outcomes["lead_id"].map(leads.set_index("lead_id")["created_at"]))
    return created[outcomes["decided_at"] < created - CLOCK_SLACK]


def _decided_before_created(outcomes: pd.DataFrame, leads: pd.DataFrame, flat: bool, source: str,
                            column: str) -> list[Problem]:
    """Outcome rows decided before their lead was created (`decided_before_created`); a whole column of
    them means decided_at is mapped to the wrong CRM field."""
    early = decided_before_created(outcomes, leads, flat)
    return [
        Problem(source, int(i) + 1, column, f"decided {decided} before its lead was created ({made}): a decision "
                "cannot precede its lead (check what decided_at is mapped to, or the lead's created_at)",
                "decided_at", "decided_before_created")
        for i, decided, made in zip(early.index, outcomes.loc[early.index, "decided_at"], early)
    ]


def _drop_rows(frame: pd.DataFrame, rows: dict[int, str], report: TableReport) -> pd.DataFrame:
    """Drop refused source rows (frame index = source row - 1), counting one reason per row.

    Rows prepare_table already removed are counted here too, so every refused row is counted once.
    """
    for reason, n in Counter(rows.values()).items():
        report.drop(reason, n)
    if not rows:  # the usual case: no copy of a table of millions of rows
        return frame
    return frame.drop(index=[r - 1 for r in rows if r - 1 in frame.index])


def _lead_in(lead_ids: pd.Series, known: pd.Series | pd.Index) -> pd.Series:
    """``lead_ids.isin(known)``, by Arrow's hash lookup when both hold Arrow strings.

    pandas' isin on Arrow strings builds a Python object per known id, and an Index lookup one per
    id; with millions of activities either dominated loading the export.
    """
    ids, known_ids = lead_ids.array, pd.Series(known).array
    if isinstance(ids, ArrowStringArray) and isinstance(known_ids, ArrowStringArray):
        ids, value_set = pa.array(ids), pa.array(known_ids)
        if isinstance(value_set, pa.ChunkedArray):
            value_set = value_set.combine_chunks()
        hits = pc.is_in(ids, value_set=value_set.cast(ids.type))
        return pd.Series(hits.to_numpy(zero_copy_only=False), index=lead_ids.index)
    return lead_ids.isin(known)


def _dedupe_lead_ids(
    leads: pd.DataFrame, compare: pd.DataFrame, source: str, crm_name: Callable[[str], str], report: TableReport
) -> tuple[pd.DataFrame, list[Problem]]:
    """Collapse identical rows per lead_id silently; keep the first of conflicting rows, report the rest, naming
    the columns (as the CRM names them, `crm_name`) where each differs from the lead's first row: the fix (a
    column to drop, such as a row number, or a field edited twice) is then plain."""
    identical = compare.duplicated(keep="first")
    report.drop("identical_duplicate", identical.sum())
    leads = leads[~identical.to_numpy()]
    conflict = leads.duplicated("lead_id", keep="first")
    first_row = leads.index.to_series().groupby(leads["lead_id"].to_numpy()).transform("min")[conflict]
    these, firsts = compare.loc[first_row.index].to_numpy(), compare.loc[first_row.to_numpy()].to_numpy()
    differ = ~((these == firsts) | (pd.isna(these) & pd.isna(firsts)))
    problems = []
    for i, lead_id, first, columns in zip(first_row.index, leads["lead_id"][conflict], first_row, differ):
        names = [crm_name(c) for c in compare.columns[columns]]
        names_shown = ", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")
        problems.append(Problem(source, int(i) + 1, crm_name("lead_id"), f"duplicate lead_id {lead_id!r} with "
                                f"different values ({names_shown}), also on row {int(first) + 1}", "lead_id",
                                "duplicate_lead_id"))
    return leads, problems


def _merge_by_email(leads: pd.DataFrame, report: TableReport) -> tuple[pd.DataFrame, pd.Series]:
    """Keep the earliest-created lead per e-mail address (`email_address`); return the survivors and dropped id ->
    survivor id. A lead whose e-mail is no address is kept as it is, and counted (`TableReport.email_not_address`)."""
    key = email_address(leads["email"])
    has_email = key.notna()
    written = leads["email"].astype("string").str.strip().fillna("") != ""
    report.email_not_address = int((written & ~has_email).sum())
    order = (
        leads.assign(_key=key, _row=leads.index)[has_email]
        .sort_values(["created_at", "_row"], na_position="last", kind="stable")
    )
    survivor_of_key = order.drop_duplicates("_key").set_index("_key")["lead_id"]
    survivor = key.map(survivor_of_key)
    merged = has_email & (survivor != leads["lead_id"])
    report.drop("merged_by_email", merged.sum())
    redirect = pd.Series(survivor[merged].to_numpy(), index=leads["lead_id"][merged].to_numpy(), dtype="str")
    return leads[~merged], redirect


def _count_cleared(problems: list[Problem], kept: dict[str, pd.Index], report: IngestReport) -> list[Problem]:
    """Count each value left out of a row that was kept (`Problem.row_kept`) in its table's report. A row dropped
    for another reason (a bad decision, its lead refused, a later decision) took the value with it: its problem no
    longer says the row was kept. `kept`: each table's rows kept (index = source row - 1)."""
    out = []
    for p in problems:
        if p.row_kept:
            name = next(name for name, table in report.tables.items()
                        if table.source == p.source and p.contract_column in TABLES[name].cleared_if_bad)
            if p.row - 1 in kept[name]:
                cleared = report.tables[name].cleared
                cleared[p.contract_column] = cleared.get(p.contract_column, 0) + 1
            else:
                p = replace(p, row_kept=False)
        out.append(p)
    return out


def _latest_outcomes(outcomes: pd.DataFrame, report: TableReport) -> pd.DataFrame:
    """One outcome per lead: the latest decided_at wins; undated rows lose to dated ones, ties to later rows."""
    order = outcomes.assign(_row=outcomes.index).sort_values(
        ["decided_at", "_row"], na_position="first", kind="stable"
    )
    superseded = order.duplicated("lead_id", keep="last")
    report.drop("superseded", superseded.sum())
    return outcomes.drop(index=order.index[superseded.to_numpy()])


def _refuse_undated_leads(problems: list[Problem], rows: int, source: str, column: str) -> None:
    """Refuse a dated export (data.dated) whose created_at is empty on every lead row by one error naming the
    setting for an export without creation dates, not one line per row: the CRM has no such field, or the
    mapping names another. Some rows without it stay refused row by row."""
    empty = sum(p.kind == "empty_value" and p.contract_column == "created_at" for p in problems)
    if rows and empty == rows:
        raise ContractError([Problem(
            source, None, column, f"created_at is empty on every one of the {rows:,} lead rows: an export without "
            "creation dates is read with data.dated: false (its activities are not counted, having no lead age to "
            "place them by, nor is calibration shifted by age, and the split is seeded and stratified, not out of time); else export the leads' creation date (data.mapping.leads names "
            "the CRM's column)", "created_at", "undated_leads")])


def required_columns(spec: TableSpec, data: DataParams) -> list[str]:
    """The contract columns a table (an export, a /score lead) must hold: a lead's creation date only when
    the export is dated (data.dated)."""
    return [c for c in spec.required if data.dated or c not in LEADS.dates]


def crm_columns(data: DataParams, table: str, contract: str) -> list[str]:
    """Every name a contract column of a table is read under, the mapping's first: data.mapping may give it two (an
    export's `Create Date` and the CRM API's `createdate`, which the service receives), and the contract's own name
    is read too, unless the mapping gives that name to another column while naming this one otherwise."""
    mapping = _column_mapping(table, data)
    names = [crm for crm, column in mapping.items() if column == contract]
    return names + [contract] if contract not in mapping or not names else names


def crm_column(data: DataParams, table: str, contract: str) -> str:
    """The CRM's name for a contract column of a table (the contract name when the mapping has none)."""
    return crm_columns(data, table, contract)[0]


def crm_column_in(data: DataParams, table: str, contract: str, columns) -> str:
    """The CRM's name for a contract column of a table as `columns` (a file's header) writes it, of the names
    `crm_columns` reads it under; `crm_column`'s when it has none: a file of HubSpot's export has `Record ID` where
    the mapping gives the id the API's `hs_object_id` first."""
    names = crm_columns(data, table, contract)
    return next((name for name in names if name in columns), names[0])


# How close (difflib's ratio, 0-1) a header must be to a wanted name to be named as its misspelling: 'Industy' for
# 'Industry' is 0.93, 'Lead Sorce' for 'Lead Source' 0.95; 'Campaign ID' (0.84) or 'Phone 2' (0.83), other
# fields beside 'Campaign' and 'Phone', are not named.
ALIKE_RATIO = 0.88
ALIKE = "which looks like the same name written differently"  # how messages name an `alike_column`
# The last word of a date's name, after what happened: 'created_at', 'Created On', 'CreatedDate', 'Created Time'.
DATE_SUFFIXES = ("at", "on", "date", "time", "datetime", "timestamp")


def alike_column(header, name: str) -> str | None:
    """The column of ``header`` that looks like ``name`` written differently, None when there is none: with other
    blanks or letter case ('Lead ID ', 'LEAD ID'), as Excel and hand-edited headers gain them, or other word
    separators ('Lead_ID', 'LeadId' for 'Lead ID'; 'Created At' for 'created_at'), as each CRM joins words its own
    way, or a date's with another last word ('createdon', Dynamics 365's, for 'created_at': `_dated`), else the closest
    misspelling ('Industy'), its separators too ('CreatedDate', 'Create Date' for 'created_at'); a mapping matches
    names exactly."""
    others = [column for column in header if column != name]
    for key in (label_key, _words_key):
        same = next((column for column in others if key(column) == key(name)), None)
        if same is not None:
            return same
    dated = _dated(name)
    if dated:
        same = next((column for column in others if _words_key(column) in {dated + last for last in DATE_SUFFIXES}), None)
        if same is not None:
            return same
    # A column holding every word of the name and more, or some of them only, is another field: 'Campaign ID' or
    # 'CampaignId' beside 'Campaign', 'Phone 2' beside 'Phone'.
    words = set(name_words(name))
    candidates = [column for column in reversed(others)  # the first column of a key wins
                  if not (words <= set(name_words(column)) or set(name_words(column)) <= words)]
    for key in (label_key, _words_key):  # misspelt ('Industy'), then also joined another way ('CreatedDate')
        keys = {key(column): column for column in candidates}
        close = difflib.get_close_matches(key(name), list(keys), n=1, cutoff=ALIKE_RATIO)
        if close:
            return keys[close[0]]
    return None


def _dated(name) -> str | None:
    """What happened, for a date's name ending in one of DATE_SUFFIXES ('created' for 'created_at' or 'Created Date'):
    a column of those letters and another such last word, joined as Dynamics 365 joins its names ('createdon'), is the
    same date (`alike_column`); 'createdby', a user, is not. None for any other name ('Campaign', 'reason')."""
    words = name_words(name)
    return "".join(words[:-1]) if len(words) > 1 and words[-1] in DATE_SUFFIXES else None


def _words_key(name) -> str:
    """A column name's letters and digits in lower case: 'Lead_ID', 'lead-id', 'LeadId' and 'Lead ID' alike."""
    return re.sub(r"[\W_]+", "", label_key(name))


def name_words(name) -> list[str]:
    """A column name's words in lower case, camel case split too: 'CampaignId' and 'Campaign ID' are campaign, id."""
    return [word.lower() for word in re.findall(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|\d+", str(name))]


def absent_columns(header, table: str, data: DataParams, wanted: list[str]) -> dict[str, str | None]:
    """The CRM names of the ``wanted`` contract columns of ``table`` that no column of ``header`` maps to
    (``data.drop_columns`` are never read, so they count as absent), each with a hint for a message, None when there
    is none: a name data.mapping renames ('Lead Origin' listed in features.categorical, which the mapping reads as
    lead_origin: the features name the contract's columns) says so, else the column of ``header`` that looks like
    it written differently (``alike_column``)."""
    mapping, dropped = _column_mapping(table, data), set(data.drop_columns)
    present = {mapping.get(column, column) for column in header if column not in dropped}
    names = {column: crm_column(data, table, column) for column in wanted if column not in present}
    return {name: _absent_hint(header, table, mapping, column, name) for column, name in names.items()}


def _absent_hint(header, table: str, mapping: dict[str, str], wanted: str, name: str) -> str | None:
    """`absent_columns`' hint for the ``wanted`` column, ``name`` in the CRM: the mapping's when ``wanted`` is itself a
    CRM name it renames, else the alike header's; a contract column the mapping names otherwise ('Country' for
    country, the export having 'Country ') gets the latter."""
    if wanted in mapping:
        return (f"data.mapping.{table} reads it as {mapping[wanted]!r}, and the features name the contract's columns: "
                f"list {mapping[wanted]!r}")
    alike = alike_column(header, name)
    return None if alike is None else f"it has {alike!r}, {ALIKE}"


def personal_columns_listed(data: DataParams, listed: list[str]) -> dict[str, str]:
    """The names of `listed` (a lead column setting, such as features.categorical) that are a lead's personal column
    (contract `LEADS.personal`: e-mail, phone, company), as the contract names it or as the CRM does where
    data.mapping maps it to one -> that personal column."""
    contract = _column_mapping("leads", data)
    return {name: contract.get(name, name) for name in listed if contract.get(name, name) in LEADS.personal}


# The last word of a lead column's name that says it holds a lead's personal data -> which: a CRM's own column such as
# 'Personal Email', 'Contact Mobile', 'Phone 2', 'Email ID', 'Billing Address' or 'Company Name', which the contract's
# email, phone and company (`LEADS.personal`) do not catch (`personal_by_name`).
PERSONAL_NAME_WORDS = {
    "email": "e-mail", "phone": "phone number", "telephone": "phone number", "tel": "phone number",
    "mobile": "phone number", "cell": "phone number", "cellphone": "phone number", "fax": "phone number",
    "whatsapp": "phone number", "address": "address", "street": "address", "surname": "name", "name": "name",
    "company": "company", "employer": "company", "organisation": "company", "organization": "company",
}
# A name ending in "name" is personal only after one of these words (or alone): 'Campaign Name' and 'Product Name' are not.
PERSONAL_NAME_OWNERS = frozenset({"first", "last", "full", "given", "middle", "family", "contact", "lead", "person",
                                  "customer", "company", "account", "organisation", "organization", "business"})
# Words after the one that says what a column holds: 'Phone No', 'Email ID', 'Address Line 1', 'Mobile 2'.
_TRAILING_WORDS = frozenset({"number", "no", "nr", "num", "id", "line"})
# Words starting a flag about a personal column rather than its value: 'Do Not Email', 'No Phone', 'Has Mobile'.
_FLAG_STARTS = frozenset({"do", "don", "dont", "no", "not", "has", "is"})


def personal_by_name(column: str) -> str | None:
    """Which personal data a lead column's name says it holds ('e-mail', 'phone number', 'address', 'name' or
    'company'; `PERSONAL_NAME_WORDS`), else None: 'Lead Source', 'Company Size', 'company_size', 'Do Not Email' and
    'Campaign Name' are about something else."""
    spaced = re.sub(r"(?<=[a-z])(?=[A-Z])|(?<=[A-Za-z])(?=[0-9])|(?<=[0-9])(?=[A-Za-z])", " ", column)  # camelCase, Phone2
    words = re.findall(r"[a-z0-9]+", re.sub(r"\be[\s-]?mail", "email", spaced.lower().replace("_", " ")))
    while words and (words[-1] in _TRAILING_WORDS or words[-1].isdigit()):
        words.pop()
    if not words or words[0] in _FLAG_STARTS:
        return None
    if words[-1] == "name" and len(words) > 1 and words[-2] not in PERSONAL_NAME_OWNERS:
        return None
    return PERSONAL_NAME_WORDS.get(words[-1])


def absent_columns_text(absent: dict[str, str | None]) -> str:
    """``absent_columns`` for a message: "'Industry' (it has 'Industry ', which looks like the same name written
    differently), 'campaign'"."""
    return ", ".join(repr(name) + (f" ({hint})" if hint else "") for name, hint in absent.items())


def example_leads(first: pd.DataFrame, params: Params) -> pd.DataFrame:
    """The first leads of the source (`CRMData.leads_as_read`) as text, for the model's input example, which anyone
    reading the MLflow run sees. A column the model reads a value of (the contract's `industry`, `created_at`, ...,
    and `features.categorical` and `numeric`) keeps it as written ("674", "Select"); every other column (the
    contract's `personal` ones and its lead id, and any it does not know, a name or a note) holds made-up values of
    the same shape (`made_up_like`), seeded by column and row so a re-run logs the same example. An e-mail keeps its
    domain where `email_signals` read it; a value meaning "not answered" (data.missing_values) stays as written."""
    data, features = params.data, params.features
    shown = ({*LEADS.columns, *features.categorical, *features.numeric} - {*LEADS.personal, LEADS.key})
    contract = _column_mapping("leads", data)
    example = {}
    for name, values in first.items():
        text = as_plain_text(values).where(values.notna())
        column = contract.get(name, name)
        if column not in shown:
            keep_domain = column == "email" and "email_signals" in features.derived
            taken: set[str] = set()  # a lead id made up twice would refuse the example's rows as duplicates
            made_up = []
            for row, value in enumerate(text):
                if pd.notna(value) and not not_answered(value, data):
                    rng = random.Random(f"{name}\n{row}")
                    while ((value := made_up_like(text.iloc[row], rng, keep_domain)) in taken
                           or not_answered(value, data)):
                        pass
                    if column == LEADS.key:
                        taken.add(value)
                made_up.append(value)
            text = pd.Series(made_up, index=text.index, dtype=object)
        example[name] = text
    return pd.DataFrame(example, index=first.index)


def made_up_like(value: str, rng: random.Random, keep_domain: bool = False) -> str:
    """`value` with every digit and letter drawn anew (a letter in its case), the rest as written: "+34 463-535"
    stays a phone number of that format, "Marco_Clark@acme.com" an e-mail; its domain kept with `keep_domain`."""
    local, at, domain = value.rpartition("@") if keep_domain and "@" in value else (value, "", "")

    def drawn(char: str) -> str:
        if char.isdigit():
            return rng.choice(string.digits)
        if char.isalpha():
            return rng.choice(string.ascii_uppercase if char.isupper() else string.ascii_lowercase)
        return char

    return "".join(map(drawn, local)) + at + domain


def load_crm(params: Params) -> CRMData:
    """Read, map, validate and dedupe the export named in params.data into the canonical tables.

    Raises:
        ContractError: a required column is missing (always), or any row breaks the contract and
            data.on_error is "stop". With "drop" the bad rows are dropped and listed in the report; a bad value
            of a column the contract leaves out alone (`TableSpec.cleared_if_bad`: a deal's amount) is set
            missing and listed, its row kept.
    """
    data = params.data
    flat = data.format == "flat"
    sources = {"leads": data.leads, "activities": data.activities, "outcomes": None if flat else data.outcomes}
    read = {name: read_source(spec, data, params.base_dir) for name, spec in sources.items() if spec}
    short_rows = [source.short_rows for source in read.values() if source.short_rows]
    raw = {name: source.table.reset_index(drop=True) for name, source in read.items()}
    decimal_marks = {name: source.decimal_mark for name, source in read.items()}  # how each file writes numbers
    if flat:
        raw["outcomes"], sources["outcomes"] = raw["leads"], data.leads
        decimal_marks["outcomes"] = decimal_marks["leads"]
    report = IngestReport({name: TableReport(str(sources[name]), len(frame)) for name, frame in raw.items()})
    others = {name: len(frame) for name, frame in raw.items() if name != "leads" and len(frame) and not flat}
    if not len(raw["leads"]) and others:  # each of their rows would be listed as naming an unknown lead
        rows = " and ".join(f"{n:,} {'activity' if name == 'activities' else 'outcome'} row(s)"
                            for name, n in others.items())
        raise ContractError([Problem(str(data.leads), None, None, f"no lead row (its header only) beside {rows} of "
                                     "leads: export the leads with them (a report filter that matched no lead?)",
                                     kind="no_leads")])

    prepared: dict[str, pd.DataFrame] = {}
    refused: dict[str, dict[int, str]] = {}  # table -> source row -> first problem kind
    problems: list[Problem] = []
    for name, frame in raw.items():
        prepared[name], found = prepare_table(frame, name, data, str(sources[name]),
                                              numeric=params.features.numeric if name == "leads" else (),
                                              non_negative=params.features.non_negative if name == "leads" else (),
                                              text=params.features.categorical if name == "leads" else (),
                                              decimal_mark=decimal_marks[name], lead_ids_shown=bool(data.sql_url))
        problems += found
        refused[name] = {}
        for p in found:
            if not p.row_kept:  # else only the value is left out
                refused[name].setdefault(p.row, p.kind)
    problems = list(dict.fromkeys(problems))  # a flat export reports a bad lead_id once, not per table
    _refuse_undated_leads(problems, len(raw["leads"]), str(sources["leads"]), crm_column(data, "leads", "created_at"))
    if any(p.row is None for p in problems):
        raise ContractError(problems)
    if flat:  # a flat row is one record: refused as a whole, from leads and from outcomes
        refused["leads"] = refused["outcomes"] = {**refused["outcomes"], **refused["leads"]}
    for name in prepared:
        prepared[name] = _drop_rows(prepared[name], refused[name], report.tables[name])

    leads, activities, outcomes = prepared["leads"], prepared.get("activities"), prepared.get("outcomes")
    leads_report = report.tables["leads"]
    compare = leads.join(outcomes[list(OUTCOME_COLUMNS)]) if flat else leads
    leads, found = _dedupe_lead_ids(leads, compare, leads_report.source,
                                    lambda column: crm_column(data, "leads", column), leads_report)
    problems += found
    leads = _drop_rows(leads, {p.row: p.kind for p in found}, leads_report)
    redirect = pd.Series(dtype="str")
    if data.dedupe_by_email:
        leads, redirect = _merge_by_email(leads, leads_report)

    if activities is not None:
        act_report = report.tables["activities"]
        repoint = _lead_in(activities["lead_id"], redirect.index)
        act_report.repointed = int(repoint.sum())
        if repoint.any():
            activities.loc[repoint, "lead_id"] = activities.loc[repoint, "lead_id"].map(redirect)
        known = _lead_in(activities["lead_id"], leads["lead_id"])
        if len(known) and len(leads) and not known.any():  # every lead would train as never active
            raise ContractError([Problem(
                act_report.source, None, crm_column(data, "activities", "lead_id"),
                f"none of the {len(known):,} activity rows names a lead of the leads table (activity lead ids such "
                f"as {activities['lead_id'].iloc[0]!r}, lead ids such as {leads['lead_id'].iloc[0]!r}): check that "
                "both tables write lead ids alike (a database may store '000123' as the number 123)",
                "lead_id", "no_known_lead")])
        act_report.drop("unknown_lead", (~known).sum())
        act_report.examples["unknown_lead"] = [as_sent(lead_id) for lead_id in
                                               activities.loc[~known, "lead_id"].drop_duplicates().head(3)]
        activities = activities[known]

    if outcomes is not None:
        out_report = report.tables["outcomes"]
        if flat:  # the same rows as leads, so the same reasons
            out_report.dropped = dict(leads_report.dropped)
            outcomes = outcomes.loc[leads.index]
        else:
            merged = _lead_in(outcomes["lead_id"], redirect.index)
            out_report.drop("merged_by_email", merged.sum())
            outcomes = outcomes[~merged]
            unknown = ~_lead_in(outcomes["lead_id"], leads["lead_id"])
            found = [
                Problem(out_report.source, int(i) + 1, crm_column(data, "outcomes", "lead_id"),
                        f"outcome for lead_id {lead_id!r}, which is not in the leads table (or its lead row "
                        "was refused)", "lead_id", "unknown_lead")
                for i, lead_id in zip(outcomes.index[unknown], outcomes["lead_id"][unknown])
            ]
            problems += found
            outcomes = _drop_rows(outcomes, {p.row: p.kind for p in found}, out_report)
            outcomes = _latest_outcomes(outcomes, out_report)
        found = _decided_before_created(outcomes, leads, flat, out_report.source, crm_column(data, "outcomes", "decided_at"))
        problems += found
        outcomes = _drop_rows(outcomes, {p.row: p.kind for p in found}, out_report)
        if flat:  # one record: its lead goes too
            leads = _drop_rows(leads, {p.row: p.kind for p in found}, leads_report)

    frames = {"leads": leads, "activities": activities, "outcomes": outcomes}
    problems = _count_cleared(problems, {name: frame.index for name, frame in frames.items() if frame is not None},
                              report)
    if problems and data.on_error == "stop":  # a row cut in two by a line break is refused as two: say so
        raise ContractError(problems, "\n".join([*short_rows, EXPORT_FIX]))
    report.problems = problems
    spellings = {column: crm_spellings(raw["leads"].loc[leads.index, name], value_map)  # the leads kept, as read
                 for column, value_map in data.value_maps.items()
                 if column in leads.columns and (name := crm_column(data, "leads", column)) in raw["leads"].columns}
    if (outcomes is not None and "reason" in data.value_maps
            and (name := crm_column(data, "outcomes", "reason")) in raw["outcomes"].columns):
        spellings["reason"] = crm_spellings(raw["outcomes"].loc[outcomes.index, name], data.value_maps["reason"])
    as_read = example_leads(raw["leads"].loc[leads.index[:EXAMPLE_ROWS]], params)  # the index is still the source row's
    for name, frame in frames.items():
        if frame is not None:
            report.tables[name].rows_kept = len(frame)
            frames[name] = frame.reset_index(drop=True)
    return CRMData(frames["leads"], frames["activities"], frames["outcomes"], report, redirect, list(raw["leads"].columns),
                   spellings=spellings, decimal_mark=decimal_marks["leads"],
                   leads_as_read=as_read.reset_index(drop=True), short_rows=short_rows)

