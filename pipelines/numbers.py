"""What a number field takes (the contract's employees and amount, features.numeric), written once.

An export's cells, a request's fields (ingest.prepare_table), a params value map's numbers (config) and a column
only another model reads as a number (features.build) are all read by `read_numbers`, the file's decimal mark
included, so what params accept, an export takes and the service takes cannot drift apart.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, time, timedelta
from decimal import Decimal
from typing import Literal

import numpy as np
import pandas as pd

from pipelines.contract import LARGEST_NUMBER

# How a file's text writes numbers (ingest.decimal_mark_of): "point" (1234.5, as Python and JSON write numbers: a
# request's, params', a Parquet file's or database's text), "comma" (1234,5 or 1.234,5), "point_grouped" (1234.5 or
# 1,234.5: a comma only groups thousands, as US Excel writes amounts; data.decimal_mark: point), or where
# data.decimal_mark is auto: "either" (a ';' file: both read) or "point_guessed" (a ',' file: as "point_grouped"),
# and a number that reads both ways there (1.200 or 1,200 in "either", 1,200 in "point_guessed") is refused, as it
# may be 1200 or 1.2. In scientific notation no one groups thousands: the mark before the exponent is a decimal mark
# in every setting (1.200E3 is 1200; 1,2E+03 too where a decimal comma reads).
DecimalMark = Literal["point", "comma", "either", "point_grouped", "point_guessed"]
# A number as written where the decimal mark is a comma: "2,5", "-0,75", "1.234,5", "1.234.567", "1 234,5"
# (thousands separated by dots or by spaces, all alike), "1,2E+03" (as German Excel writes 1200 in scientific
# notation); a whole number without separators too. No one groups thousands before an exponent: "1.200E3" is no
# number so written (a decimal point's 1200, not 1200E3).
_COMMA_DECIMAL = (r"[-+]?(?:[1-9]\d{0,2}(?P<sep>[. \u00a0\u202f])\d{3}(?:(?P=sep)\d{3})*(?:,\d+)?"
                  r"|\d*(?:,\d+)?(?:[eE][-+]?\d+)?)")
# A number as written where the decimal mark is a point and a comma groups thousands: "12,500", "-1,234,567.89";
# "1,5", "12,50" or "1234,567" are no number so written, nor "1,200E3" (no one groups thousands before an exponent).
_POINT_GROUPED = r"[-+]?[1-9]\d{0,2}(?:,\d{3})+(?:\.\d+)?"
# Where a comma groups thousands, and where it is a decimal comma, per decimal mark.
_GROUPING_COMMA: frozenset[DecimalMark] = frozenset({"point_grouped", "point_guessed", "either"})
_DECIMAL_COMMA: frozenset[DecimalMark] = frozenset({"comma", "either"})
# Per decimal mark data.decimal_mark "auto" reads a file with, a number that reads two ways there ("1.200" or
# "1,200": a thousands separator in one locale, a decimal mark before three decimals in the other); 0,125, 1234,5,
# 1.234.567 and 1,234,567 read one way only.
_ONE_GROUP: dict[DecimalMark, str] = {"either": r"[-+]?[1-9]\d{0,2}[.,]\d{3}",
                                      "point_guessed": r"[-+]?[1-9]\d{0,2},\d{3}"}
# Where such a file is, for a message saying why a number reads two ways (and how to say which it is).
TWO_WAYS_WHERE: dict[DecimalMark, str] = {
    "either": "in a file separated by ';' (as Excel writes where the decimal mark is a comma)",
    "point_guessed": "in a file separated by ',' (where a comma groups thousands, as US Excel writes them, or is a "
                     "decimal comma, as some tools quote it)",
}


@dataclass(frozen=True)
class NumberCells:
    """A number field's cells as read, and why a cell is refused (each mask True where it is)."""

    numbers: pd.Series  # float64; NaN where missing (NA, the text NaN) or not a number
    not_a_number: np.ndarray  # a value that is not missing and no number: text, true/false
    too_large: np.ndarray  # not smaller than LARGEST_NUMBER in size (1e309 and inf included)
    below_zero: np.ndarray  # below 0 (-0 is 0) where the field counts something; never also too_large
    reads_two_ways: np.ndarray  # decimal mark "either" or "point_guessed": 1,200, which may be 1200 or 1.2 (`both_readings`)


def read_numbers(values: pd.Series, non_negative: bool, decimal_mark: DecimalMark = "point",
                 as_python_writes: np.ndarray | None = None) -> NumberCells:
    """A number field's cells: a number's text (digits 0-9, a sign, a decimal point, an exponent, ASCII blanks
    around it: contract.NUMBER_TEXT), or a number, finite and smaller than contract.LARGEST_NUMBER in size, and
    0 or more where `non_negative` (the field counts something). True/false is no number (a count of True is not
    1), nor is a date or a duration; NaN, as a float or as text in any letter case, and a NaN decimal, signalling
    ones included, are a missing value (pandas writes it so).

    `decimal_mark` says how the file's text writes numbers ("comma": 1.234,5 is 1234.5; "point_grouped": 1,234.5
    is 1234.5: `DecimalMark`); `as_python_writes` marks
    the cells written with a decimal point whatever the file's mark (a data.value_maps translation: params' text)."""
    values = signalling_nans_quieted(values)
    values, reads_two_ways = _with_decimal_point(values, decimal_mark, as_python_writes)
    numbers = _as_floats(values)
    not_a_number = (values.notna() & numbers.isna()).to_numpy(dtype=bool, copy=True)
    if not_a_number.any():
        not_a_number[not_a_number] = ~values[not_a_number].astype("str").str.strip().str.lower().eq("nan").to_numpy(
            dtype=bool)
    size = numbers.abs()
    too_large = (size >= LARGEST_NUMBER).to_numpy(dtype=bool)
    below_zero = ((numbers < 0) & (size < LARGEST_NUMBER)).to_numpy(dtype=bool) if non_negative else np.zeros(
        len(values), dtype=bool)
    return NumberCells(numbers, not_a_number, too_large, below_zero, reads_two_ways)


def both_readings(value) -> str:
    """What a number that reads two ways (`NumberCells.reads_two_ways`) reads as with the thousands separator it
    may be, and with the decimal mark: "1200 or 1.2"."""
    text = str(value).strip()
    return f"{float(text.replace('.', '').replace(',', '')):g} or {float(text.replace(',', '.')):g}"


def numbers_sent(values: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """Which cells hold a number and which hold true/false (JSON, SQL or Parquet types; text is neither).

    Text and date columns (what CSV and Parquet reads give) answer from their dtype; only an object
    column holding something other than text or dates is looked at cell by cell.
    """
    none = np.zeros(len(values), dtype=bool)
    if pd.api.types.is_bool_dtype(values.dtype):
        return none, values.notna().to_numpy()
    if pd.api.types.is_numeric_dtype(values.dtype):
        return values.notna().to_numpy(), none
    if values.dtype != object:
        return none, none
    if pd.api.types.infer_dtype(values, skipna=True) in ("string", "empty", "datetime", "date"):
        return none, none
    cells = signalling_nans_quieted(values).to_numpy()
    booleans = np.fromiter((isinstance(v, (bool, np.bool_)) for v in cells), bool, len(cells))
    numbers = np.fromiter((isinstance(v, (int, float, Decimal, np.number)) for v in cells), bool, len(cells))
    return numbers & ~booleans & pd.notna(cells), booleans


def infinite_numbers(values: pd.Series) -> np.ndarray:
    """Which cells hold an infinite number (a SQL or Parquet float or decimal, a Python caller's float): no text
    field's value, as a JSON Infinity is none (serving.schemas refuses it). The text "inf" is text, not one."""
    if pd.api.types.is_float_dtype(values.dtype):
        return np.isinf(values.to_numpy(dtype="float64", na_value=np.nan))
    if values.dtype != object:  # text, integers, dates, true/false
        return np.zeros(len(values), dtype=bool)
    numbers = numbers_sent(values)[0]
    if numbers.any():  # numbers among text (a whole number beyond a float's range is finite)
        numbers[numbers] = [v.is_infinite() if isinstance(v, Decimal) else isinstance(v, (float, np.floating))
                            and bool(np.isinf(v)) for v in values.to_numpy()[numbers]]
    return numbers


def signalling_nans_quieted(values: pd.Series) -> pd.Series:
    """Decimal('sNaN') (a signalling NaN, which a Python caller's or a database driver's decimal may be) as
    Decimal('NaN'), a missing value as pandas reads it: pandas raised InvalidOperation on merely asking whether the
    signalling one is missing (`values.isna()`, `astype("str")`), so a row holding one stopped the whole read."""
    if values.dtype != object or pd.api.types.infer_dtype(values, skipna=True) not in (
            "decimal", "mixed", "mixed-integer"):  # text, floats, ...: no decimal to look at
        return values
    cells = values.to_numpy()
    signalling = np.fromiter((isinstance(v, Decimal) and v.is_snan() for v in cells), bool, len(cells))
    return values.mask(signalling, Decimal("NaN")) if signalling.any() else values


def _with_decimal_point(values: pd.Series, decimal_mark: DecimalMark,
                        as_python_writes: np.ndarray | None) -> tuple[pd.Series, np.ndarray]:
    """`values` with the text written with a decimal comma (`_COMMA_DECIMAL`, 1.234,5 -> 1234.5) or with commas
    grouping thousands (`_POINT_GROUPED`, 1,234.5 -> 1234.5) rewritten as Python writes numbers, where the file writes
    numbers so (a decimal comma first); other cells (2.5, 1e3, not numbers, numbers sent as numbers,
    `as_python_writes`) are left for the number parser as sent. Also which cells read two ways (`_ONE_GROUP`)."""
    none = np.zeros(len(values), dtype=bool)
    if decimal_mark == "point":
        return values, none
    numbers, booleans = numbers_sent(values)
    text = values.astype("str").str.strip().mask(numbers | booleans | values.isna().to_numpy()
                                                 | (none if as_python_writes is None else as_python_writes))

    def written(pattern: str) -> np.ndarray:
        return text.str.fullmatch(pattern).to_numpy(dtype=bool, na_value=False)

    reads_two_ways = written(_ONE_GROUP[decimal_mark]) if decimal_mark in _ONE_GROUP else none
    comma = written(_COMMA_DECIMAL) if decimal_mark in _DECIMAL_COMMA else none
    grouped = written(_POINT_GROUPED) & ~comma if decimal_mark in _GROUPING_COMMA else none
    if not (comma | grouped).any():
        return values, reads_two_ways
    values = values.astype(object)
    if comma.any():
        values = values.mask(comma, text[comma].str.replace(r"[. \u00a0\u202f]", "", regex=True).str.replace(
            ",", ".", regex=False))
    if grouped.any():
        values = values.mask(grouped, text[grouped].str.replace(",", "", regex=False))
    return values, reads_two_ways


def _as_floats(values: pd.Series) -> pd.Series:
    """Numbers as float64, NaN where not a number; true/false is not one, nor a date or a duration (a SQL DATE,
    TIMESTAMP or INTERVAL, a Parquet timestamp or duration), which pandas reads as its count of microseconds: a 3-day
    interval was the number 259200000000, a 2024 timestamp out of range, a 1999 one a number."""
    if pd.api.types.is_datetime64_any_dtype(values.dtype) or pd.api.types.is_timedelta64_dtype(values.dtype):
        return pd.Series(np.nan, index=values.index, dtype="float64")
    booleans = numbers_sent(values)[1]
    if booleans.any():
        values = values.astype(object).where(~booleans, None)
    if values.dtype == object and pd.api.types.infer_dtype(values, skipna=True) not in (
            "string", "empty", "integer", "floating", "mixed-integer-float", "decimal", "boolean"):
        times = np.fromiter((isinstance(v, (date, time, timedelta, np.datetime64, np.timedelta64))
                             for v in values.to_numpy()), bool, len(values))
        if times.any():
            values = values.where(~times, None)
    values = _without_plus_sign(values)
    try:
        parsed = pd.to_numeric(values, errors="coerce")
    except OverflowError:  # a whole number beyond float64 (e.g. 401 digits): as text it reads as inf
        parsed = pd.to_numeric(values.astype("str").where(values.notna()), errors="coerce")
    return parsed.astype("float64")


def _without_plus_sign(values: pd.Series) -> pd.Series:
    """Text with the '+' before a number's digits removed ("+2.5" -> "2.5"). pandas reads signed text by another
    parser, which misrounds long numbers ("+999999999999999.9" as 1e15, out of range) and takes blanks in
    the exponent ("+4e 2" as 400), where params, /docs.json and unsigned text read the number as written."""
    if isinstance(values.dtype, pd.StringDtype):  # an export's column: one Arrow scan
        signed = values.str.contains("+", regex=False).to_numpy(dtype=bool, na_value=False)
    elif values.dtype == object or isinstance(values.dtype, pd.CategoricalDtype):  # a request's, a database's
        values = values.astype(object)
        signed = np.fromiter((isinstance(v, str) and "+" in v for v in values.to_numpy()), bool, len(values))
    else:
        return values
    if not signed.any():
        return values
    unsigned = values[signed].astype("str").str.replace(r"^([\t-\r ]*)\+(?=[0-9.])", r"\1", regex=True)
    return values.astype(object).mask(signed, unsigned)
