"""`leadscore score`: batch-score a whole lead table with a registered model.

Reads CSV or Parquet and scores it in chunks through the same two steps as the service's
`LeadScorer.score` (`build`, then `scores_of`, optionally with each lead's top factors): model
workers score earlier chunks while the next is built. Results are appended in input order to a
hidden file beside the output (CSV, or Parquet by its name), put in place only when the whole run
succeeded, and every row that failed validation goes to a rejects CSV with the reason: no row is
silently dropped, and no failed run leaves a partial file.
"""

from __future__ import annotations

import dataclasses
import glob
import json
import os
from collections import Counter, deque
from collections.abc import Callable, Collection, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq
from tqdm import tqdm

from features.build import (ACTIVITY_COLUMNS, activities_dated_apart, crm_spellings, lead_columns_read,
                            unread_activity_types)
from models.gbm import predict_on_one_thread, usable_cores
from models.scorer import OUTPUT_COLUMNS, LeadScorer
from pipelines.config import DataParams
from pipelines.ingest import (
    BATCH_SCORING,
    ContractError,
    Problem,
    TableHeader,
    absent_columns,
    as_plain_text,
    bytes_as_text,
    crm_column_in,
    decimal_mark_of,
    is_parquet,
    named_as_in_file,
    not_utf8,
    parquet_kept,
    prepare_table,
    read_csv_kept,
    read_csv_text,
    read_header,
    readable_file,
    refuse_nested_columns,
    refuse_repeated_columns,
    refuse_to_overwrite,
)
from pipelines.numbers import infinite_numbers


@dataclass(frozen=True)
class DatedApart:
    """How many activities of a type the model reads, of how many scored leads, are dated one way apart from their
    lead (``features.build.activities_dated_apart``, which the service warns of per lead)."""

    activities: int = 0
    leads: int = 0

    def plus(self, per_lead: np.ndarray) -> DatedApart:
        """These counts and a chunk's (`per_lead`: each lead's activities so dated)."""
        return DatedApart(self.activities + int(per_lead.sum()), self.leads + int(np.count_nonzero(per_lead)))


@dataclass
class BatchSummary:
    rows_read: int
    rows_scored: int
    rows_rejected: int
    output: Path
    rejects: Path | None
    activities_rejected: int = 0
    activity_rejects: Path | None = None
    activities_valid: int = 0  # activity rows that passed validation
    activities_used: int = 0  # of those, the rows of a lead in the scored file (none: the ids may not match)
    # The valid activity rows' types the model does not read (features.activity_types, after data.value_maps) -> rows,
    # most first (`unread_activity_types`): those rows were not counted; when they are all the rows, every lead was
    # scored as never active. Empty when it reads every one.
    unread_activity_types: dict[str, int] = dataclasses.field(default_factory=dict)
    rows_past_horizon: int = 0  # scored leads older than the model's label horizon (LeadScorer.past_horizon)
    # Columns the model reads that the file lacks (CRM names): every lead was scored as not having them. Each
    # with a hint, if any (ingest.absent_columns: the file's column that looks like it written differently).
    columns_absent: dict[str, str | None] = dataclasses.field(default_factory=dict)
    # Per CRM column the model reads as a category: its values never seen in training, as the file spells them
    # ("TikTok"), -> scored leads that have them, most first (LeadScorer.unseen_values); only columns with some.
    # None: nothing can be told (a model pickled before it remembered its training values, or no lead was read).
    unseen_values: dict[str, dict[str, int]] | None = None
    # Of the activities the scores counted from: those dated after the time the leads were scored as of (as_of, else
    # now), left out as the service's type activity_after_scoring_time, and those dated more than a day (CLOCK_SLACK)
    # before their lead's created_at, counted, as its activity_before_created.
    activities_after_scoring_time: DatedApart = DatedApart()
    activities_before_created: DatedApart = DatedApart()
    # A warning per CSV file (leads, activities) with rows of fewer values than its header, read with their last
    # columns blank (`ingest.check_row_lengths`), as training gives it.
    short_rows: list[str] = dataclasses.field(default_factory=list)


def _lead_chunks(path: Path, header: TableHeader, chunk_size: int, id_column: str, dropped: Collection[str] = ()
                 ) -> tuple[pd.Series | None, int, Iterator[pd.DataFrame], str | None]:
    """The whole lead-id column (None without one), the file's rows (a CSV's as parsed: a quoted cell may span
    lines), the raw rows as strings (the CRM's own text), chunk by chunk, without the columns `dropped` names
    (data.drop_columns), as training reads the export; `header` is the file's (`read_header`); and a CSV's warning of
    its rows of fewer values than the header (`ingest.check_row_lengths`), as training gives it.

    Parquet streams by row groups, its id column read on its own first. A CSV is parsed whole by
    Arrow (``read_csv_kept``: the activity file of the same leads is read whole anyway and is ten
    times larger), then scored in chunks.
    """
    if is_parquet(path):
        file = _parquet_file(path)
        ids = None
        if id_column in file.schema_arrow.names:
            ids = _as_crm_text(_readable(path, lambda: file.read(columns=[id_column])), path)[id_column]
        return ids, file.metadata.num_rows, _parquet_chunks(file, path, header, chunk_size, dropped), None
    table, short_rows = _readable(path, lambda: read_csv_kept(path, header, dropped))
    ids = table[id_column] if id_column in table else None
    chunks = (table.iloc[start : start + chunk_size] for start in range(0, len(table), chunk_size))
    return ids, len(table), chunks, short_rows


def _parquet_chunks(file: pq.ParquetFile, path: Path, header: TableHeader, chunk_size: int,
                    dropped: Collection[str]) -> Iterator[pd.DataFrame]:
    """The row groups of the file's columns `dropped` does not name as CRM text, as training reads them (a column
    without a name as 'Unnamed: 3': `named_as_in_file`), each knowing its first file row (to name a bad cell)."""
    first_row = 1
    for batch in file.iter_batches(batch_size=chunk_size, columns=parquet_kept(header, dropped)):
        yield _as_crm_text(named_as_in_file(batch, header), path, first_row)
        first_row += batch.num_rows


def _read_whole(
    path: Path, header: TableHeader, columns: list[str] | None = None, coded: list[str] | None = None,
    dates: list[str] | None = None,
) -> tuple[pd.DataFrame, str | None]:
    """A whole table (or only `columns` of it) as strings, e.g. the activities (often 10+ rows per lead),
    and a CSV's warning of its rows of fewer values than the header (`ingest.check_row_lengths`), None without any;
    `header` is the file's (`read_header`: a CSV's separator).

    CSV is read as training reads it (`read_csv_text`: Arrow's parser, pandas' for a file Arrow refuses, as one with
    rows of another length than the header).
    Arrow can also type some of `columns` while it parses them, on every core: text in `coded` comes
    back dictionary-coded (categorical), and `dates` as datetimes when every one is plain ISO 8601,
    as validation would parse them. Where a date is anything else (a zone, padding, a typo) the dates
    are read as text instead, for validation to parse or to name the row.
    """
    if is_parquet(path):
        return _as_crm_text(_readable(path, lambda: pq.read_table(path, columns=columns, read_dictionary=coded)),
                            path), None
    sep = header.sep
    if coded or dates:
        for typed_dates in ([dates, []] if dates else [[]]):
            try:
                return _read_csv_typed(path, sep, columns, coded or [], typed_dates), None
            except ValueError:  # Arrow's errors (pa.ArrowInvalid) are ValueErrors too
                continue
    return _readable(path, lambda: read_csv_text(path, sep, columns))


def _parquet_file(path: Path) -> pq.ParquetFile:
    return _readable(path, lambda: pq.ParquetFile(path))


def _readable(path: Path, read: Callable):
    """``read()``, with a parser's refusal (not a table: a stray comma, not Parquet, not UTF-8, no
    header) naming the file."""
    try:
        return read()
    except (pd.errors.ParserError, pa.ArrowInvalid) as err:
        kind = "a Parquet file" if is_parquet(path) else "a CSV table"
        raise ValueError(f"{path} cannot be read as {kind}: {err}") from None
    except pd.errors.EmptyDataError:
        raise ValueError(f"{path} has no header row (the file is empty or only blank lines)") from None
    except UnicodeDecodeError as err:
        raise not_utf8(path, err) from None


def _read_csv_typed(path: Path, sep: str, columns: list[str], coded: list[str], dates: list[str]) -> pd.DataFrame:
    """`columns` of a CSV separated by `sep` as text (empty cells missing, as `read_csv_text` reads them), `coded` ones as
    categoricals, `dates` as datetimes (raises ValueError on one that is not ISO 8601)."""
    types = {c: pa.string() for c in columns}
    types |= {c: pa.dictionary(pa.int32(), pa.string()) for c in coded}
    types |= {c: pa.timestamp("us") for c in dates}
    options = pa_csv.ConvertOptions(include_columns=columns, column_types=types, null_values=[""],
                                    strings_can_be_null=True)
    return pa_csv.read_csv(path, parse_options=pa_csv.ParseOptions(delimiter=sep), convert_options=options).to_pandas()


def _read_activities(path: Path, header: TableHeader, data: DataParams) -> tuple[pd.DataFrame, str | None]:
    """The activity file's columns that features are built from (lead, time, type), in file order, as its
    `header` (`read_header`) names them, and its short rows' warning (`_read_whole`).

    Others (`detail`, CRM extras) are neither read nor checked: on 13.5M activity rows the detail
    text alone cost 1.8 s of reading and validation on one core. A missing one is still reported
    by validation, naming the column. Lead ids and activity types are read dictionary-coded: a
    million distinct ids over 13.5M rows are then cleaned, checked and encoded once each
    (about 2 s less, on one core, before the first chunk is scored), and times parsed as they are read.
    """
    contract = {c: data.mapping.activities.get(c, c) for c in header.names}
    columns = [c for c in contract if contract[c] in ACTIVITY_COLUMNS]
    return _read_whole(path, header, columns, coded=[c for c in columns if contract[c] in ("lead_id", "activity")],
                       dates=[c for c in columns if contract[c] == "occurred_at"])


def _as_crm_text(table: pa.Table | pa.RecordBatch, path: Path, first_row: int = 1) -> pd.DataFrame:
    """Parquet values as the CRM's text, like a CSV cell (typed columns included); dictionary-coded
    text stays categorical, and true/false stays a boolean, as training reads the file (`ingest.read_source`):
    validation reads it as the text "true"/"false" in a text field, and refuses it in a number or date field
    with training's words. So an infinite number stays a number, which validation refuses in any field, and a
    duration a duration, refused in a number field saying how to export it as one (its text lost that hint).

    Integers stay exact (through numpy a column with a null turns float, and id 7 "7.0"), a whole
    float reads as ingest reads it ("10", not "10.0"), and bytes must be UTF-8 text. `first_row` is
    the file row (from 1) of the table's first row, for naming a cell that is not.
    """
    table = bytes_as_text(table, path, first_row)
    frame = table.to_pandas(types_mapper=lambda kind: pd.ArrowDtype(kind) if pa.types.is_integer(kind) else None)
    for name, kind in zip(frame.columns, table.schema.types):
        if not (isinstance(frame[name].dtype, pd.CategoricalDtype) or pa.types.is_boolean(kind)
                or pa.types.is_duration(kind)):
            text, infinite = as_plain_text(frame[name]), infinite_numbers(frame[name])
            # An infinite number stays one, for validation to refuse in a text field as training does, not "inf".
            frame[name] = text.astype(object).mask(infinite, frame[name]) if infinite.any() else text
    return frame


def _activities_of(activities: pd.DataFrame) -> Callable[[pd.Series], pd.DataFrame]:
    """A function from a chunk's lead ids to their activities (the rows `isin` would select).

    The checked activity file is encoded once: lead ids and activity types become categorical
    codes, times stay datetime64, and only the columns features are built from are kept. A chunk
    then selects numbers, not millions of text cells, and the feature builder factorizes codes
    instead of strings; the ids are hashed once for the file, not once per chunk.
    """
    codes, ids = _coded(activities["lead_id"])  # an activity without lead id gets -1
    kinds, kind_names = _coded(activities["activity"])
    # Codes that are already valid need no validation, and the levels no sort (pd.Categorical
    # sorts them; the feature builder does not care): about 0.2 s less for 13.5M activities.
    compact = pd.DataFrame(
        {
            "lead_id": pd.Categorical.from_codes(codes, categories=ids, validate=False),
            "occurred_at": activities["occurred_at"],
            "activity": pd.Categorical.from_codes(kinds, categories=kind_names, validate=False),
        },
        index=activities.index,
    )

    def select(lead_ids: pd.Series) -> pd.DataFrame:
        wanted = np.zeros(len(ids) + 1, dtype=bool)  # the last slot (code -1): no lead id
        found = ids.get_indexer(lead_ids)
        wanted[found[found >= 0]] = True
        wanted[-1] = lead_ids.isna().any()
        return compact[wanted[codes]]

    return select


def _coded(values: pd.Series) -> tuple[np.ndarray, pd.Index]:
    """Codes (-1 for missing) and the distinct values they index; a categorical already has them."""
    if isinstance(values.dtype, pd.CategoricalDtype):
        return values.cat.codes.to_numpy(), values.cat.categories
    return pd.factorize(values)


def _read_leads(path: Path, header: TableHeader, chunk_size: int, id_column: str, dropped: Collection[str]
                ) -> tuple[int, Iterator[pd.DataFrame], tuple[np.ndarray, np.ndarray], str | None]:
    """`_lead_chunks`' rows and chunks, the file's repeated ids (`_repeated_ids`), and its short rows' warning."""
    ids, rows, chunks, short_rows = _lead_chunks(path, header, chunk_size, id_column, dropped)
    return rows, chunks, _repeated_ids(ids), short_rows


def _write(frame: pd.DataFrame, path: Path, first: bool) -> None:
    """Append a chunk as CSV (header with the first), by Arrow's writer: ten times pandas' speed.

    Missing values are empty cells; text is always quoted, which every CSV reader accepts.
    """
    table = pa.Table.from_pandas(frame, preserve_index=False)
    with path.open("wb" if first else "ab") as out:
        pa_csv.write_csv(table, out, pa_csv.WriteOptions(include_header=first))


class _ScoresFile:
    """The scores output, written chunk by chunk in input order: CSV (appended), or Parquet when the
    name ends in .parquet / .pq (one row group per chunk, one writer kept open). Closed on the way
    out, whatever happened, so the file is complete before it is put in place (or removed)."""

    def __init__(self, path: Path):
        self.path, self._parquet = path, is_parquet(path)
        self._writer: pq.ParquetWriter | None = None
        self._first = True

    def __enter__(self) -> "_ScoresFile":
        return self

    def write(self, frame: pd.DataFrame) -> None:
        if not self._parquet:
            _write(frame, self.path, first=self._first)
        else:
            table = pa.Table.from_pandas(frame, preserve_index=False)
            if self._writer is None:
                self._writer = pq.ParquetWriter(self.path, _text_where_null(table.schema))
            # A later chunk may type a column differently (e.g. all reasons missing in the first).
            self._writer.write_table(table.cast(self._writer.schema))
        self._first = False

    def __exit__(self, *exc) -> None:
        if self._writer is not None:
            self._writer.close()


def _text_where_null(schema: pa.Schema) -> pa.Schema:
    """``schema`` with every all-missing (null-typed) column typed as text, as later chunks fill it."""
    return pa.schema([field.with_type(pa.string()) if pa.types.is_null(field.type) else field for field in schema])


class _Staged:
    """The files a run writes, each written under a hidden name beside it (`temp`) and put in place
    by `publish` once the whole run succeeded: a run that fails part-way leaves an earlier run's
    files as they were, and no partial file. The hidden files are created first, so an output that
    cannot be written is refused before anything is read or scored."""

    def __init__(self, paths: list[Path]):
        self.temp: dict[Path, Path] = {}
        try:
            for path in paths:
                self.temp[path] = _writable_beside(path)
        except BaseException:
            self.__exit__()
            raise

    def __enter__(self) -> "_Staged":
        return self

    def publish(self, path: Path, written: bool) -> None:
        """Put `path` in place; when nothing was `written`, an earlier run's file is removed instead,
        as it would pass for this run's (rejects of another input)."""
        temp = self.temp.pop(path)
        if written:
            os.replace(temp, path)
        else:
            temp.unlink()
            path.unlink(missing_ok=True)

    def __exit__(self, *exc) -> None:  # what was not published belongs to a run that failed
        for temp in self.temp.values():
            temp.unlink(missing_ok=True)


def _writable_beside(path: Path) -> Path:
    """A new empty hidden file in `path`'s folder (created if need be), with `path`'s suffix.

    Raises:
        ValueError: naming `path`, when it is a folder or its folder cannot be written.
    """
    if path.is_dir():
        raise ValueError(f"the output {path} is a folder: name a file in it, e.g. {path / 'scores.csv'}")
    temp = path.with_name(f".{path.stem}.{os.getpid()}.partial{path.suffix}")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        temp.open("wb").close()
    except OSError as err:
        raise ValueError(f"cannot write {path}: {err.strerror} ({err.filename})") from None
    _remove_stale_partials(path)
    return temp


def _remove_stale_partials(path: Path) -> None:
    """Remove hidden files of `path` left by runs that were killed (SIGKILL, out of memory, power
    loss) before they could clean up: their process no longer exists. A running one's stays."""
    for stale in path.parent.glob(f".{glob.escape(path.stem)}.*.partial{glob.escape(path.suffix)}"):
        pid = stale.name[len(path.stem) + 2 : -len(f".partial{path.suffix}")]
        if pid.isdigit() and not _running(int(pid)):
            stale.unlink(missing_ok=True)


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def _repeated_ids(ids: pd.Series | None) -> tuple[np.ndarray, np.ndarray]:
    """File positions (from 0) of the rows whose lead id an earlier row already has, and the file
    row (from 1) of that first copy; ids compare stripped, and empty ones are left to validation.

    Scores are keyed by lead id, so a lead is scored once, from its first row, wherever the chunks
    split. One Arrow hash of the whole column: 0.3 s per million ids, where a dict of the ids met,
    chunk by chunk, took 0.6 s on the main thread that builds the features.
    """
    if ids is None or not len(ids):
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    text = pa.array(ids.astype("str"), from_pandas=True)
    text = pc.utf8_trim_whitespace(text.combine_chunks() if isinstance(text, pa.ChunkedArray) else text)
    codes = pc.fill_null(pc.dictionary_encode(text).indices, -1).to_numpy(zero_copy_only=False).astype(np.int64)
    codes[pc.fill_null(pc.equal(text, ""), False).to_numpy(zero_copy_only=False)] = -1
    # Codes number the distinct ids in order of first appearance: a row is a first copy when its
    # code is above every code before it.
    first = codes > np.maximum.accumulate(np.concatenate([[-1], codes[:-1]]))
    first_position = np.zeros(codes.max() + 1, np.int64)
    first_position[codes[first]] = np.flatnonzero(first)
    repeated = np.flatnonzero((codes >= 0) & ~first)
    return repeated, first_position[codes[repeated]] + 1


def score_file(
    scorer: LeadScorer,
    input_path: Path,
    output_path: Path,
    *,
    activities_path: Path | None = None,
    as_of: pd.Timestamp | None = None,
    chunk_size: int = 50_000,
    rejects_path: Path | None = None,
    progress: bool = True,
    top_factors: int = 0,
    protected: dict[str, Path | None] | None = None,
) -> BatchSummary:
    """Score every row of `input_path` into `output_path`; invalid rows go to `rejects_path`.

    All or nothing: the output and rejects files are written under hidden names beside them and
    put in place only when every row was scored or refused; a run that fails part-way leaves the
    files of an earlier run untouched; so does a file none of whose rows could be scored, whose rejects file
    is written before it is refused. A lead id met again (in any chunk) is refused on that row,
    naming the row of its first copy, which is scored. With `top_factors` > 0 each lead also gets
    its top positive and negative factors as flat columns (`top_positive_1`,
    `top_positive_1_points`, ... see `models.explain.factor_columns`). The id column has the file's own name
    for it, 'Prospect ID' rather than lead_id (`_as_written`).

    Args:
        protected: other files no output may replace, e.g. the CRM export's ("data.outcomes" -> path).
    """
    if chunk_size < 1:
        raise ValueError(f"chunk size {chunk_size}: a chunk holds at least one lead")
    # (an existing folder is refused as such when the outputs are staged: `_writable_beside`)
    if not output_path.is_dir() and not (is_parquet(output_path) or output_path.suffix.lower() == ".csv"):
        raise ValueError(f"the output {output_path}: name it .csv or .parquet (its format follows the name)")
    rejects_path = rejects_path or output_path.with_name(output_path.stem + ".rejects.csv")
    activity_rejects = output_path.with_name(output_path.stem + ".activity_rejects.csv")
    refuse_to_overwrite(
        {"leads": input_path, "activities": activities_path, **(protected or {})},
        {"output": output_path, "rejects file": rejects_path, "activity rejects file": activity_rejects},
    )
    headers = {}
    for kind, path in (("leads", input_path), ("activities", activities_path)):  # before anything is written
        if path is not None:
            readable_file(kind, path)
            headers[kind] = _readable(path, lambda: read_header(path))
            refuse_repeated_columns(path, headers[kind], set(scorer.data.drop_columns))
            refuse_nested_columns(path, headers[kind].nested, set(scorer.data.drop_columns))
    if as_of is None:  # one "now" for the run: each chunk read the clock itself, a long run's chunks a little apart
        as_of = pd.Timestamp.now(tz="UTC").tz_localize(None)
    with _Staged([output_path, rejects_path, activity_rejects]) as staged:
        summary = _score_chunks(scorer, input_path, staged.temp[output_path], activities_path, as_of, chunk_size,
                                staged.temp[rejects_path], staged.temp[activity_rejects], progress, top_factors,
                                headers)
        staged.publish(rejects_path, written=summary.rows_rejected > 0)
        staged.publish(activity_rejects, written=summary.activities_rejected > 0)
        if summary.rows_read and not summary.rows_scored:  # a failed run (a nightly job must see it): scores stay
            kept = f"{output_path} was left as it was" if output_path.exists() else f"no {output_path} was written"
            raise ValueError(f"no lead of {input_path} could be scored: every row failed validation (see "
                             f"{rejects_path}); {kept}")
        staged.publish(output_path, written=True)
    return dataclasses.replace(summary, output=output_path,
                               rejects=rejects_path if summary.rows_rejected else None,
                               activity_rejects=activity_rejects if summary.activities_rejected else None)


def _score_chunks(scorer: LeadScorer, input_path: Path, output_path: Path, activities_path: Path | None,
                  as_of: pd.Timestamp | None, chunk_size: int, rejects_path: Path, activity_rejects: Path,
                  progress: bool, top_factors: int, headers: dict[str, TableHeader]) -> BatchSummary:
    """`score_file`'s work, written straight to the paths given (`headers`: each file's, "leads" and "activities")."""
    activities_of, activities_rejected, activities_valid, activities_used = None, 0, 0, 0
    activities_short = None  # the activity file's warning of its short rows (`_read_activities`)
    unread_types: dict[str, int] = {}
    lead_id_column = crm_column_in(scorer.data, "leads", "lead_id", headers["leads"].names)
    # The scores' id column as the file names it ('Prospect ID'), or the contract's `lead_id` where the file has that
    id_column = lead_id_column if lead_id_column in headers["leads"].names else "lead_id"
    with ThreadPoolExecutor(max_workers=1) as reader:
        # The lead file is read and its repeated ids found while the activities are checked and encoded on this
        # thread (mostly one core's work; Arrow's reading is outside the GIL).
        leads_read = reader.submit(_read_leads, input_path, headers["leads"], chunk_size, lead_id_column,
                                   scorer.data.drop_columns)
        if activities_path is not None:
            activities, activities_short = _read_activities(activities_path, headers["activities"], scorer.data)
            activities, activities_rejected = _valid_activities(scorer, activities, activities_path, activity_rejects)
            activities_of, activities_valid = _activities_of(activities), len(activities)
            unread_types = (unread_activity_types(activities["activity"], scorer.features)
                            if scorer.reads_activities else {})
        rows, chunks, (repeated, first_rows), leads_short = leads_read.result()
    short_rows = [warning for warning in (leads_short, activities_short) if warning]
    decimal_mark = decimal_mark_of(headers["leads"], scorer.data)

    read = scored = rejected = past_horizon = 0
    after_scoring_time = before_created = DatedApart()
    absent: dict[str, str | None] = {}
    unseen: dict[str, Counter] | None = None
    spelled: dict[str, dict[str, str]] = {}  # per column, an unseen value's spelling in the first chunk holding it
    bar = tqdm(total=rows if progress else None, unit="lead", disable=not progress)

    def write_scores(modelled: Future, rows: int, never_seen: np.ndarray) -> None:
        nonlocal scored, past_horizon
        scores = modelled.result()
        out.write(_as_written(scores, never_seen, id_column))
        scored += len(scores)
        past_horizon += int(scores["past_horizon"].sum())
        bar.update(rows)

    # Pipelined: one model worker per core scores a chunk each (LightGBM on one thread, outside the
    # GIL) while the next chunk's features are built in Python; results are written in input order.
    # Same build + scores_of as LeadScorer.score. On the 1M-lead benchmark this kept both cores
    # busier than one worker whose two LightGBM threads wait on each other beside the feature builder.
    # LightGBM's dense predict takes a shared lock: workers predicting with one booster run together,
    # safe when every call asks for the same iterations (LightGBM issue #666), as these do.
    workers = usable_cores()
    with _ScoresFile(output_path) as out, ThreadPoolExecutor(
            max_workers=workers, initializer=predict_on_one_thread) as model_workers:
        pending: deque[tuple[Future, int]] = deque()
        for raw in chunks:
            if read == 0:
                absent = absent_columns(raw.columns, "leads", scorer.data, lead_columns_read(scorer.features))
            here = slice(*np.searchsorted(repeated, [read, read + len(raw)]))
            repeats = [Problem(str(input_path), int(i) + 1, lead_id_column,
                               f"lead_id {raw[lead_id_column].iloc[i]!r} also on row {row}: each lead is scored once, "
                               "from its first row", "lead_id", "duplicate_lead_id")
                       for i, row in zip(repeated[here] - read, first_rows[here])]
            kept = np.delete(np.arange(len(raw)), [p.row - 1 for p in repeats])
            leads = raw.iloc[kept] if repeats else raw
            chunk_acts = None
            if activities_of is not None and lead_id_column in raw:
                chunk_acts = activities_of(as_plain_text(leads[lead_id_column]).str.strip())  # a Parquet bool too
                activities_used += len(chunk_acts)
            built = scorer.build_leads(leads, as_of=as_of, source=str(input_path), checked_activities=chunk_acts,
                                       decimal_mark=decimal_mark, audience=BATCH_SCORING)
            features, problems, ages = built.features, built.problems, built.ages
            fatal = [p for p in problems if p.row is None]
            if fatal:  # e.g. a required column is missing: no row of the file can be scored
                raise ContractError(fatal)
            after, early = activities_dated_apart(built.leads, built.placed)  # as the features placed them
            after_scoring_time, before_created = after_scoring_time.plus(after), before_created.plus(early)
            found_new = scorer.never_seen_as_sent(features, built.rows)  # the factors name these as sent too
            never_seen = _never_seen_text(found_new, len(features))
            found = scorer.unseen_values(features)
            if found is not None:
                unseen = unseen or {}
                for column, counts in found.items():
                    name = crm_column_in(scorer.data, "leads", column, leads.columns)
                    unseen.setdefault(name, Counter()).update(counts.to_dict())
                    # The model compares 'tiktok' (after data.value_maps); marketing wrote 'TikTok', or 'TT' that a map renames.
                    spellings = (crm_spellings(leads[name], scorer.data.value_maps.get(column))
                                 if name in leads.columns else {})
                    for value in counts.index:
                        spelled.setdefault(name, {}).setdefault(value, spellings.get(value, value))
            pending.append((model_workers.submit(scorer.scores_of, features, top_factors, ages, found_new), len(raw),
                            never_seen))
            problems = repeats + [dataclasses.replace(p, row=int(kept[p.row - 1]) + 1) for p in problems]
            if problems:
                rejected += _write_rejects(raw, problems, read, rejects_path, first=rejected == 0)
            read += len(raw)
            if len(pending) > workers:
                write_scores(*pending.popleft())
        while pending:
            write_scores(*pending.popleft())
        if read == 0:  # an empty file still gets its columns
            none = scorer.scores_of(scorer.build(pd.DataFrame(columns=[lead_id_column]))[0], top_factors)
            out.write(_as_written(none, _never_seen_text({}, 0), id_column))
    bar.close()
    return BatchSummary(read, scored, rejected, output_path, rejects_path, activities_rejected, activity_rejects,
                        activities_valid, activities_used, unread_types, past_horizon, absent,
                        None if unseen is None else {column: {spelled[column][value]: int(rows)
                                                              for value, rows in counts.most_common()}
                                                     for column, counts in unseen.items()},
                        after_scoring_time, before_created, short_rows)


def _never_seen_text(found: dict[int, dict[str, str]] | None, leads: int) -> np.ndarray:
    """The never_seen column of `leads` scored leads (`LeadScorer.never_seen_as_sent`, what /score answers per lead):
    a lead's values the model never saw in training as JSON text, {"Lead Source": "TikTok"}, which any value (a ";",
    a quote) survives in CSV and Parquet; missing (an empty cell) for a lead with none, and for every lead when the
    model cannot tell. Only the leads with some are visited: nothing new costs one column of missing values."""
    column = np.full(leads, None, dtype=object)
    for i, values in (found or {}).items():
        column[i] = json.dumps(values, ensure_ascii=False)
    return column


def _as_written(scores: pd.DataFrame, never_seen: np.ndarray, id_column: str) -> pd.DataFrame:
    """`scores` as the file gets them: with the never_seen column (`_never_seen_text`) after the model's outputs,
    before any factors, and the lead id under `id_column`, the leads file's own name for it ('Prospect ID' in X
    Education's export, as data.mapping.leads names it): a CRM importing the scores back matches them on its own id
    field, as never_seen and the rejects file name the file's columns. `lead_id` stays where the file's name is
    already an output column's ('score')."""
    scores.insert(len(OUTPUT_COLUMNS), "never_seen", never_seen)
    return scores if id_column in scores.columns else scores.rename(columns={"lead_id": id_column})


def _write_rejects(raw: pd.DataFrame, problems: list, first_row: int, path: Path, first: bool) -> int:
    """Append a chunk's refused rows as read, with their file row and every problem; returns how many.

    `first_row`: file rows before this chunk (a problem's row counts from 1 within the chunk).
    """
    by_row: dict[int, list[str]] = {}
    for p in problems:
        if p.row:
            by_row.setdefault(p.row + first_row, []).append(str(dataclasses.replace(p, row=p.row + first_row)))
    bad = sorted(by_row)
    rows = raw.iloc[[r - first_row - 1 for r in bad]].copy()
    rows.insert(0, "row", bad)
    rows.insert(1, "problems", ["; ".join(by_row[r]) for r in bad])
    _write(rows, path, first=first)
    return len(rows)


def _valid_activities(scorer: LeadScorer, activities: pd.DataFrame, path: Path, rejects: Path) -> tuple[pd.DataFrame, int]:
    """The activity rows that pass validation, in contract form; the others go to `rejects` with their
    file row and reason.

    Checked once for the whole file, so a problem names the activity file's own row (not a lead row
    of a chunk), and a lead is still scored from its valid activities.
    """
    checked, problems = prepare_table(activities, "activities", scorer.data, str(path), audience=BATCH_SCORING)
    fatal = [p for p in problems if p.row is None]
    if fatal:
        raise ContractError(fatal)
    if not problems:
        return checked, 0
    return checked, _write_rejects(activities, problems, 0, rejects, first=True)
