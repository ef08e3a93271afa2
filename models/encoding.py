"""Category levels learned at fit time, applied identically at train, batch and serve time.

LightGBM needs pandas categoricals with the *same* category list at predict time as at fit time.
The levels live here (and so in the saved artifact); values never seen in training, or too rare to
learn from, become one shared ``__other__`` level instead of crashing or silently shifting codes.
The values seen in training are remembered too, so batch scoring can tell a value never seen (a
lead source added since the last retrain) from a rare one, and say that a retrain is due.
A value never seen that is the number of exactly one value seen ("3" for the "3.0" a CSV export wrote)
is that value (``as_known``): a JSON 3, a Parquet or SQL number and a re-exported CSV all write it "3"; so is, in a
yes/no field, a true or false written as PostgreSQL's CSV export writes it ("t") or as a database read gives it ("true").
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from functools import cached_property

import numpy as np
import pandas as pd

from pipelines.contract import NUMBER_TEXT, true_false_spellings
from pipelines.ingest import shortened

OTHER = "__other__"
# When a value never seen in training stops being one, as batch scoring's summary and the service's never_seen say it:
# a model's levels come from the rows it is fit on, which with creation dates are the oldest part of models.splits.
LEARNT_BY_A_RETRAIN = (
    "a retrain learns a value only if enough of the leads it is fit on have it: with creation dates those are its "
    "oldest leads (half by default; evaluate.split holds out the newest for validation, calibration and test), so a "
    "value new in recent months is still unseen after the next retrain")
# Distinct training values remembered per column at most. A column with more (company names, cities)
# has new values in every batch, which says nothing about a retrain: its values are not remembered.
MAX_REMEMBERED = 10_000
# Lookups derived from the fitted levels on first use: not saved, so a model saved before one existed gets it.
_DERIVED = ("_code_lookup", "_number_levels", "_true_false_levels")


def most_frequent(rows_per_value: Mapping[str, int], shown: int = 3) -> str:
    """The first ``shown`` values of a most-first count with their rows, e.g. "'tiktok' 1,100, 'threads' 100,
    and 2 more": how scoring and monitor name the values a model never saw; a very long one (a free-text field)
    by its start and length (`shortened`), as the never_seen column names it, not whole in a job's log."""
    named = ", ".join(f"{shortened(repr(value))} {rows:,}" for value, rows in list(rows_per_value.items())[:shown])
    return named + (f", and {len(rows_per_value) - shown:,} more" if len(rows_per_value) > shown else "")


@dataclass
class CategoryEncoder:
    """Fixed category levels per categorical feature."""

    categorical: list[str]
    numeric: list[str]
    min_count: int = 10
    levels: dict[str, list[str]] = field(default_factory=dict)
    # Per categorical: every value seen in training, kept or folded into __other__ as rare; None for a
    # column with more than MAX_REMEMBERED distinct values (its new values are not reported). None as
    # a whole: an encoder pickled before values were remembered (the class default it then reads).
    seen: dict[str, frozenset[str] | None] | None = None

    def fit(self, frame: pd.DataFrame) -> "CategoryEncoder":
        """Keep levels seen at least ``min_count`` times; the rest share ``__other__``."""
        for derived in _DERIVED:  # a refit must not transform with the old levels
            self.__dict__.pop(derived, None)
        self.levels, self.seen = {}, {}
        for col in self.categorical:
            counts = frame[col].dropna().astype(str).value_counts()
            kept = sorted(counts.index[counts >= self.min_count])
            self.levels[col] = [*kept, OTHER]
            self.seen[col] = frozenset(counts.index) if len(counts) <= MAX_REMEMBERED else None
        return self

    def __getstate__(self) -> dict:
        """Saved without the lookups (``_DERIVED``): they are rebuilt from the levels on first use after loading."""
        return {k: v for k, v in self.__dict__.items() if k not in _DERIVED}

    @property
    def columns(self) -> list[str]:
        return [*self.categorical, *self.numeric]

    @cached_property
    def _code_lookup(self) -> dict[str, tuple[dict[str, int], pd.CategoricalDtype]]:
        """Per categorical: level -> code of the kept levels, and the fixed dtype (built once, not per call)."""
        return {
            col: ({level: code for code, level in enumerate(levels[:-1])}, pd.CategoricalDtype(levels))
            for col, levels in self.levels.items()
        }

    @cached_property
    def _number_levels(self) -> dict[str, tuple[frozenset[str], dict[Decimal, str | None]]]:
        """Per categorical whose known values include numbers: the known values, and per number the one
        that writes it ("3.0" for 3; None when several do, "3" and "3.0"). Known: the values seen in training,
        or the kept levels of a column (or model) that did not remember them. Exact values (Decimal): a
        float would make 9007199254740993 the known 9007199254740992."""
        out = {}
        for col, levels in self.levels.items():
            remembered = (self.seen or {}).get(col)
            known = frozenset(levels[:-1]) if remembered is None else remembered
            by_value: dict[Decimal, str | None] = {}
            for value in known:
                if re.match(NUMBER_TEXT, value):
                    number = Decimal(value.strip())
                    by_value[number] = None if number in by_value else value
            if by_value:
                out[col] = (known, by_value)
        return out

    @cached_property
    def _true_false_levels(self) -> dict[str, dict[str, str]]:
        """Per categorical that is a yes/no field (its known values, as ``_number_levels`` reads them, are true/false,
        or PostgreSQL's t/f): each other spelling of them -> the known one (``contract.true_false_spellings``)."""
        out = {}
        for col, levels in self.levels.items():
            remembered = (self.seen or {}).get(col)
            spellings = true_false_spellings(frozenset(levels[:-1]) if remembered is None else remembered)
            if spellings:
                out[col] = spellings
        return out

    def as_known(self, frame: pd.DataFrame) -> pd.DataFrame:
        """``frame`` with each categorical value never seen in training that is the number of exactly one known
        value replaced by it: "3", "3.00" or "3e0" is the "3.0" training read. A value equal to several known
        ones ("3" and "3.0") or to none stays as it is, unseen. Likewise in a yes/no field, a true or false written
        the other way: the "t" of a PostgreSQL CSV export is the "true" training read from the database, and a JSON
        true the "t" training read from such an export. Everything that reads a scored lead (both models, the
        unseen-value report, a factor's words) then reads the level the model used.

        Checked once per distinct value of the columns whose known values include a number or are true/false (none:
        no cost).
        """
        renamed = {}
        for col in self._number_levels.keys() | self._true_false_levels.keys():
            known, by_value = self._number_levels.get(col, (frozenset(), {}))
            distinct = frame[col].array.unique().tolist()  # the cheapest way for one lead as for a million
            renames = {v: by_value.get(Decimal(v.strip())) for v in distinct
                       if isinstance(v, str) and v not in known and re.match(NUMBER_TEXT, v)}
            renames = {v: level for v, level in renames.items() if level is not None}
            spellings = self._true_false_levels.get(col, {})
            renames |= {v: spellings[v] for v in distinct if isinstance(v, str) and v in spellings}
            if renames:
                renamed[col] = frame[col].replace(renames)
        return frame.assign(**renamed) if renamed else frame

    @property
    def learned(self) -> dict[str, Mapping[str, int]]:
        """Per categorical: the levels learned on their own (level -> code), which a factor's words read as themselves
        (``Phrasebook.render``); any other value is scored as ``__other__``. The codes' lookup, built once per model."""
        return {col: code_of for col, (code_of, _) in self._code_lookup.items()}

    def codes(self, values: pd.Series, column: str) -> np.ndarray:
        """Level code per row: unseen or rare values get ``__other__`` (the last level), missing -1.

        Looked up once per distinct value, not per row (a few dozen vs millions), in plain Python so
        a single lead costs microseconds.
        """
        code_of, _ = self._code_lookup[column]
        other = len(code_of)
        row_codes, distinct = pd.factorize(values, use_na_sentinel=True)
        level = np.array([code_of.get(str(v), other) for v in distinct.tolist()] + [-1], dtype=np.int64)
        return level[row_codes]

    def never_seen(self, values: pd.Series, column: str) -> np.ndarray | None:
        """Per row: whether its value of ``column`` was never seen in training, so is scored as ``__other__``
        like a rare one (missing: False); None when its training values are not remembered (``seen``).

        What the service tells a CRM per lead (``LeadScorer.never_seen``) and ``unseen`` counts. Checked once
        per distinct value, as ``codes`` is.
        """
        seen = (self.seen or {}).get(column)
        if seen is None:
            return None
        row_codes, distinct = pd.factorize(values, use_na_sentinel=True)
        new = np.array([str(v) not in seen for v in distinct.tolist()] + [False])  # the last: missing (code -1)
        return new[row_codes]

    def unseen(self, values: pd.Series, column: str) -> pd.Series | None:
        """Rows per value of ``column`` never seen in training (``never_seen``), most first, a tie in the order
        first met; empty when none; None when its training values are not remembered."""
        new = self.never_seen(values, column)
        if new is None:
            return None
        row_codes, distinct = pd.factorize(values[new].astype(str))
        return pd.Series(np.bincount(row_codes, minlength=len(distinct)), index=list(distinct),
                         dtype=np.int64).sort_values(ascending=False, kind="stable")

    def transform(self, frame: pd.DataFrame) -> pd.DataFrame:
        """Model-ready frame for training: categoricals with the fitted levels, numerics as float64."""
        out = {
            col: pd.Categorical.from_codes(self.codes(frame[col], col), dtype=self._code_lookup[col][1])
            for col in self.categorical
        }
        return pd.concat([pd.DataFrame(out, index=frame.index), self._numeric(frame)], axis=1)[self.columns]

    def matrix(self, frame: pd.DataFrame) -> np.ndarray:
        """The same values as ``transform`` as one float64 matrix (category codes, NaN = missing).

        What a booster trained on ``transform``'s frames predicts from: LightGBM turns the pandas
        categoricals into exactly these codes itself, so predictions are equal (tested) and skip
        pandas' per-column conversion.
        """
        out = np.empty((len(frame), len(self.columns)))
        for i, col in enumerate(self.categorical):
            codes = self.codes(frame[col], col)
            out[:, i] = np.where(codes < 0, np.nan, codes)
        out[:, len(self.categorical):] = self._numeric(frame).to_numpy(dtype=np.float64)
        return out

    def _numeric(self, frame: pd.DataFrame) -> pd.DataFrame:
        numeric = frame[self.numeric]
        if not (numeric.dtypes == np.float64).all():
            numeric = numeric.apply(pd.to_numeric, errors="coerce").astype(np.float64)
        return numeric
