"""The service's two tables: a score log (what the model said) and feedback (what sales decided).

SQLAlchemy Core, so any URL works: a SQLite file by default (params serving.store_url), a shared
PostgreSQL for a team. Feedback closes the loop — next quarter's labels come from it — so every
event is committed before the service acknowledges it, and SQLite runs in WAL mode with
synchronous=FULL: a killed server loses no acknowledged event. The score log keeps no raw personal
data: the e-mail only as a SHA-256 of its normalised form.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pandas as pd
import sqlalchemy as sa

from pipelines.config import Params, shown_url
from pipelines.contract import CLOCK_SLACK, DATE_RANGE, OUTCOMES, UTC_TIME, email_address
from pipelines.ingest import database_reason, resolve_sqlite, sqlite_file

log = logging.getLogger(__name__)

_metadata = sa.MetaData()

SCORE_LOG = sa.Table(
    "score_log",
    _metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("lead_id", sa.String(255), nullable=False),
    sa.Column("model_name", sa.String(255), nullable=False),
    sa.Column("model_version", sa.String(64), nullable=False),
    sa.Column("probability", sa.Float, nullable=False),
    sa.Column("score", sa.Integer, nullable=False),
    sa.Column("tier", sa.String(64), nullable=False),
    sa.Column("likely_rejection_reason", sa.String(255)),
    sa.Column("likely_rejection_probability", sa.Float),
    sa.Column("factors", sa.Text),  # JSON list of {signal, phrase, value, contribution, points}
    sa.Column("email_sha256", sa.String(64)),
    sa.Column("scored_at", sa.DateTime, nullable=False),  # naive UTC, like every contract date; wall clock
    # When the features were computed as of: the request's as_of (a CRM re-scoring its open leads as of
    # a past day), else scored_at. Null in rows logged before the column existed: read as scored_at.
    sa.Column("features_as_of", sa.DateTime),
    # The score card's line for a lead past the label horizon (features.phrases.past_horizon), worded when it
    # was scored as its factors are; null for any other lead, and in rows logged before the column existed.
    sa.Column("past_horizon_note", sa.Text),
    # The score's never_seen as /score answered it, JSON text: CRM field -> value the model never saw in training
    # ("{}" for none), worded on the score card (features.phrases.never_seen); null when the model cannot tell,
    # and in rows logged before the column existed.
    sa.Column("never_seen", sa.Text),
    # The score's unread_activity_types as /score answered it, JSON text: the activity types the lead sent that the
    # model does not read, as sent ("[]" for none); null in rows logged before the column existed.
    sa.Column("unread_activity_types", sa.Text),
    sa.Index("ix_score_log_lead_time", "lead_id", "scored_at"),
    sa.Index("ix_score_log_time", "scored_at"),
)

FEEDBACK = sa.Table(
    "feedback",
    _metadata,
    sa.Column("event_id", sa.String(255), primary_key=True),  # the CRM's id: makes retries idempotent
    sa.Column("lead_id", sa.String(255), nullable=False, index=True),
    sa.Column("status", sa.String(64), nullable=False),
    sa.Column("reason", sa.String(255)),
    sa.Column("decided_at", sa.DateTime, nullable=False),
    sa.Column("amount", sa.Float),
    sa.Column("received_at", sa.DateTime, nullable=False),
)

# A DPO's record that each erasure was done (`Store.forget`): what kind of request, how many rows per table, never the
# lead ids or e-mails named, which the store must no longer hold.
ERASURE_LOG = sa.Table(
    "erasure_log",
    _metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("erased_at", sa.DateTime, nullable=False),  # naive UTC
    sa.Column("lead_ids_named", sa.Integer, nullable=False),  # how many --lead-id the request gave
    sa.Column("emails_named", sa.Integer, nullable=False),  # how many --email
    sa.Column("last_scored_before", sa.DateTime),  # --expired: leads last scored before this lost their scores; else null
    sa.Column("score_log_rows", sa.Integer, nullable=False),
    sa.Column("feedback_rows", sa.Integer, nullable=False),
    sa.Column("dry_run", sa.Boolean, nullable=False),  # counted only: nothing deleted
)

SCORE_LOG_COLUMNS = [c.name for c in SCORE_LOG.columns if c.name != "id"]
FEEDBACK_COLUMNS = [c.name for c in FEEDBACK.columns]
ERASURE_LOG_COLUMNS = [c.name for c in ERASURE_LOG.columns if c.name != "id"]
_SERVICE_TABLES = (FEEDBACK, SCORE_LOG)  # what the service writes (erasure_log only forget does)
_TIME_COLUMNS = ("scored_at", "features_as_of", "decided_at", "received_at", "erased_at", "last_scored_before")
_NUMBER_COLUMNS = ("probability", "likely_rejection_probability", "amount")
_COUNT_COLUMNS = ("score", "lead_ids_named", "emails_named", "score_log_rows", "feedback_rows")
_JSON_COLUMNS = ("factors", "never_seen", "unread_activity_types")  # stored as JSON text
_DECISION_FIELDS = ("lead_id", "status", "reason", "decided_at", "amount")  # what a retried event must repeat

# A decision date outside [EARLIEST_DECISION, received + CLOCK_SLACK] is a CRM default or typo
# (0001-01-01, 2099-...): stored, it would crash labelling or win every "latest decision" forever.
EARLIEST_DECISION = DATE_RANGE[0]


def email_sha256(emails: pd.Series) -> pd.Series:
    """SHA-256 of each e-mail address as ingest matches leads by it (`email_address`: stripped and case-folded, so
    "A@x.com " == "a@x.com"); missing where there is none, and for a placeholder ("test", "x@x", "test@test.com")
    many people share."""
    key = email_address(emails)
    present = key.notna()
    hashed = [hashlib.sha256(e.encode()).hexdigest() for e in key[present]]  # one hash per address
    out = pd.Series([None] * len(emails), index=emails.index, dtype=object)
    out[present] = hashed
    return out


def utc_naive(value) -> datetime:
    """A datetime as naive UTC (zone-aware values converted, naive ones taken as UTC).

    Raises:
        ValueError: text that is not a date, or a date outside what pandas computes with in
            nanoseconds (1677-2262): features and labels would fail on it later, far from the cause.
    """
    stamp = pd.Timestamp(value)
    try:
        if stamp.tzinfo is not None:
            stamp = stamp.tz_convert("UTC").tz_localize(None)
        in_range = pd.Timestamp.min <= stamp <= pd.Timestamp.max
    except (ValueError, OverflowError):  # e.g. 9999-12-31T23:59:59-05:00 is in the year 10000 in UTC
        in_range = False
    if not in_range:
        raise ValueError(f"date {str(value)!r} is out of range: dates must fall between "
                         f"{pd.Timestamp.min.ceil('D'):%Y-%m-%d} and {pd.Timestamp.max.floor('D'):%Y-%m-%d} (UTC)")
    return stamp.to_pydatetime()


def decision_date(value, received_at: datetime) -> datetime:
    """`value` as naive UTC when a decision received at `received_at` (naive UTC) can have that date.

    Raises:
        ValueError: not a date, before EARLIEST_DECISION, or more than CLOCK_SLACK after
            `received_at`; the message says which.
    """
    try:
        decided = utc_naive(value)
    except ValueError as err:
        if isinstance(value, datetime):  # a year pandas cannot compute with, e.g. 0001-01-01: told by the rule above
            when = f"before {EARLIEST_DECISION:%Y-%m-%d}" if value.year < EARLIEST_DECISION.year else "in the future"
            raise ValueError(f"decided_at {value.isoformat(sep=' ')} is {when}: not a real decision date") from None
        raise ValueError(f"decided_at: {err}") from None
    if decided < EARLIEST_DECISION:
        raise ValueError(f"decided_at {decided:{UTC_TIME}} is before {EARLIEST_DECISION:%Y-%m-%d}: "
                         "not a real decision date")
    if decided > received_at + CLOCK_SLACK:
        raise ValueError(f"decided_at {decided:{UTC_TIME}} is more than {CLOCK_SLACK.days} day "
                         f"after the event was received ({received_at:{UTC_TIME}}): a decision cannot "
                         "be in the future")
    return decided


def _as_json(value) -> str:
    """A stored or sent decision value as JSON writes it, the client's own terms: "no_budget", null, 12500.5,
    "2025-07-01T10:00:00Z" (a stored date is UTC), not Python's None or datetime.datetime(2025, 7, 1, 10, 0)."""
    if isinstance(value, datetime):
        value = value.isoformat() + ("Z" if value.tzinfo is None else "")
    return json.dumps(value)


class FeedbackConflict(ValueError):
    """A stored event_id was sent again with a different decision; the stored one was kept.

    `detail` names the event_id and each field that differs, in the service's error-detail shape.
    """

    def __init__(self, event_id: str, differences: dict[str, tuple]):
        self.detail = [{"loc": ["event_id"], "field": "event_id", "type": "event_id_conflict",
                        "msg": f"event {event_id!r} is already stored with another decision; "
                               "send a new event_id for a new decision"}]
        self.detail += [{"loc": [name], "field": name, "type": "event_id_conflict",
                         "msg": f"stored {_as_json(stored)}, sent {_as_json(sent)}"} for name, (stored, sent) in differences.items()]
        changed = ", ".join(differences)
        super().__init__(f"event_id {event_id!r} is already stored with a different {changed}; it was not changed "
                         "(an identical retry is accepted; a new decision needs a new event_id)")


def _plain(value):
    """A cell as a plain Python value for the database: NaN / NA / NaT become None, numpy scalars Python ones."""
    if value is None or isinstance(value, (str, list, dict)):
        return value
    if pd.isna(value):
        return None
    if isinstance(value, np.datetime64):
        return pd.Timestamp(value)
    return value.item() if isinstance(value, np.generic) else value


def _now() -> datetime:
    return datetime.now(timezone.utc).replace(tzinfo=None)


def _possible(decided_at, received_at) -> bool:
    try:
        decision_date(decided_at, received_at)
    except ValueError:
        return False
    return True


def _sqlite_pragmas(dbapi_connection, _record) -> None:
    """Per connection, and writing nothing: connecting works on a read-only file, so an error then means the
    store cannot be reached. (WAL mode, kept in the file, is set once by a writer at open: `_bring_up_to_date`.)"""
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA busy_timeout=30000")  # several workers write to one file
    cursor.execute("PRAGMA synchronous=FULL")  # a commit is on disk before the service answers
    cursor.close()


def _present_columns(engine: sa.Engine) -> dict[str, set[str]]:
    """The columns each of our tables has in the database (none for a table it lacks)."""
    inspector = sa.inspect(engine)
    return {table.name: {c["name"] for c in inspector.get_columns(table.name)} if inspector.has_table(table.name)
            else set() for table in _metadata.sorted_tables}


def _add_missing_columns(engine: sa.Engine) -> None:
    """Add the columns a later version gave a table to the table an earlier version created.

    create_all leaves an existing table as it is, and a store holds data no one may lose: the table
    is altered in place (the new column is nullable, so old rows keep their values and read it null).
    """
    present = _present_columns(engine)
    quote = engine.dialect.identifier_preparer
    for table in _metadata.sorted_tables:
        for column in table.columns:
            if column.name not in present[table.name]:
                with engine.begin() as conn:
                    conn.execute(sa.text(f"ALTER TABLE {quote.format_table(table)} ADD COLUMN "
                                         f"{quote.format_column(column)} {column.type.compile(engine.dialect)}"))


def _check_writable(engine: sa.Engine) -> None:
    """Raise what the database answers when the service may not write its tables (read-only file, account or
    transaction, no INSERT privilege), writing nothing: each table is given the rows of a select that
    finds none, in a transaction rolled back. No row, nor an autoincrement step, is used up."""
    with engine.connect() as conn:
        try:
            for table in _SERVICE_TABLES:
                conn.execute(table.insert().from_select(list(table.columns),
                                                        sa.select(*table.columns).where(sa.false())))
        finally:
            conn.rollback()


def _typed(frame: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    """Stable dtypes whatever the backend returns (also for 0 rows): dates, floats, text."""
    out = {}
    for name in columns:
        # A column an earlier version's table lacks (read as it is) is missing in every row.
        values = frame[name] if name in frame else pd.Series(None, index=frame.index, dtype=object)
        if name in _TIME_COLUMNS:
            out[name] = pd.to_datetime(values).astype("datetime64[us]")
        elif name in _NUMBER_COLUMNS:
            out[name] = pd.to_numeric(values).astype("float64")
        elif name in _COUNT_COLUMNS:
            out[name] = values.astype("int64")
        elif name == "dry_run":
            out[name] = values.astype("bool")
        else:
            out[name] = values.astype("str")
    return pd.DataFrame(out, columns=columns)


# What a database answers when it may not, or cannot now, write or read: a read-only file, account or
# transaction, revoked privileges, a full disk, a lock held too long, a lost connection, a table gone.
# (IntegrityError and DataError are about the row written instead.)
_UNAVAILABLE = (sa.exc.OperationalError, sa.exc.ProgrammingError, sa.exc.InternalError, sa.exc.InterfaceError)


class StoreUnreachable(RuntimeError):
    """The store cannot be connected to (server down or unreachable, wrong credentials, no such SQLite folder)."""


class StoreNotWritable(RuntimeError):
    """A writer (the service) connects but may not write, create the store's tables or bring an earlier
    version's up to date."""


class StoreWriteFailed(RuntimeError):
    """The database refused or failed a write after the store opened (e.g. made read-only since): the
    service answers 503 with this message, not a bare 500."""


class StoreReadFailed(RuntimeError):
    """The database failed a read after the store opened (its server lost, a table gone): the score card
    answers 503 with this message, not a bare 500."""


class Store:
    """Score log and feedback tables behind one SQLAlchemy URL."""

    def __init__(self, url: str, read_only: bool = False):
        """Open the store; a writer (the default) creates the tables, and the columns an earlier version's
        tables lack, when missing, and checks it may write.

        Args:
            read_only: for commands that only read (monitor, retrain, export-outcomes), and forget, which deletes
                rows but must not create a wrong store_url's tables: nothing is created
                or altered, an earlier version's tables are read as they are (a column they lack reads as
                missing), and a store that does not exist yet reads as empty. So a read-only database
                account, or SQLite file (`sqlite:///file:store.db?mode=ro&uri=true`), works.

        Raises:
            StoreUnreachable: the database cannot be connected to.
            StoreNotWritable: a writer may not write, or create or alter the tables (e.g. a read-only account
                or SQLite file).
            Both messages name the store (password hidden) and the database's reason. Nothing stored is changed.
        """
        self.url = url
        path = sqlite_file(url)
        self.name = path or shown_url(url)  # for messages
        is_sqlite = sa.make_url(url).get_backend_name() == "sqlite"
        # pool_pre_ping: a pooled connection the server closed since (a restart or failover, an idle timeout)
        # is replaced before use, instead of failing the next score or decision with a 503.
        self.engine = sa.create_engine(url, connect_args={"check_same_thread": False} if is_sqlite else {},
                                       pool_pre_ping=True)
        if is_sqlite:
            sa.event.listen(self.engine, "connect", _sqlite_pragmas)
        if read_only and path is not None and not Path(path).exists():  # connecting would create an empty file
            log.info("no store at %s yet: read as empty", path)
            self._present = {table.name: set() for table in _metadata.sorted_tables}
            return
        self._connect()
        if not read_only:
            self._bring_up_to_date(is_sqlite)
        self._present = _present_columns(self.engine)

    def has_table(self, table: sa.Table) -> bool:
        """Whether the store holds `table` (a reader of a store not created yet, or another database, sees none)."""
        return bool(self._present[table.name])

    def _connect(self) -> None:
        """Connect once, so that a store that cannot be reached is not taken for one that may not be written."""
        try:
            with self.engine.connect():
                pass
        except sa.exc.DBAPIError as err:
            raise StoreUnreachable(
                f"cannot connect to the store {self.name}: {database_reason(err)}. Check serving.store_url: for a "
                "database server, that it runs and is reachable from here and that the host, port, database name, user "
                "and password are right; for a SQLite file, that the path names a file in an existing folder. "
                "Nothing was created or changed."
            ) from None

    def _bring_up_to_date(self, is_sqlite: bool) -> None:
        """Create missing tables and columns, then check the tables take rows, or say what the database refused:
        a bare driver traceback ("attempt to write a readonly database") names neither the store nor what to do,
        and an up-to-date store on a read-only account or file would open and fail every score and decision."""
        failure = None
        # Another writer may create a table (or add a column) between our check and our CREATE: each failed look
        # means one more now exists, so one look per table, and one more, always gets past them.
        for _ in range(len(_metadata.tables) + 1):
            try:
                if is_sqlite:  # kept in the file: readers never block the writer
                    with self.engine.connect() as conn:
                        conn.exec_driver_sql("PRAGMA journal_mode=WAL")
                _metadata.create_all(self.engine)
                _add_missing_columns(self.engine)
                break
            # IntegrityError: PostgreSQL's answer to a table another writer created at the same moment (a
            # duplicate key in its catalog), where SQLite answers "already exists" (OperationalError).
            except (*_UNAVAILABLE, sa.exc.IntegrityError) as err:
                failure = err
        else:
            doing = f"running: {' '.join(failure.statement.split())}" if failure.statement else None
            raise self._not_writable(failure, doing)
        try:
            _check_writable(self.engine)
        except _UNAVAILABLE as err:
            raise self._not_writable(err, "checking that the tables take rows, with none written") from None

    def _not_writable(self, failure: sa.exc.DBAPIError, doing: str | None) -> StoreNotWritable:
        return StoreNotWritable(
            f"cannot open the store {self.name} for writing: {database_reason(failure)}"
            f"{f' ({doing})' if doing else ''}. The service writes scores and feedback there and, on start, creates its "
            "tables or adds the columns this version needs to a store an earlier version created: its account (or "
            "file) must be allowed to write and alter the tables. Nothing stored was changed; commands that only read the store (monitor, retrain, "
            "export-outcomes) work with a read-only account."
        )

    @contextlib.contextmanager
    def _writing(self):
        """A transaction for a write the service acknowledges: one the database refuses or fails raises
        StoreWriteFailed naming the store and the reason; nothing of it is stored."""
        try:
            with self.engine.begin() as conn:
                yield conn
        except _UNAVAILABLE as err:
            raise StoreWriteFailed(
                f"cannot write to the store {self.name}: {database_reason(err)}. Nothing of this request was stored; "
                "send it again once the store takes writes (the service's account, or SQLite file, must be allowed to write)."
            ) from None

    @classmethod
    def from_params(cls, params: Params, read_only: bool = False) -> "Store":
        """The store params.serving.store_url names; a relative SQLite path is relative to the params file."""
        url = resolve_sqlite(params.serving.store_url, params.base_dir)
        return cls(url.render_as_string(hide_password=False), read_only)

    def _read(self, table: sa.Table, names: list[str], arrange) -> list:
        """Rows (mappings) of the columns of `names` the table has; `arrange` adds order and filters to the
        select. No rows when the table does not exist (a reader never creates it)."""
        columns = [table.c[name] for name in names if name in self._present[table.name]]
        if not columns:
            return []
        try:
            with self.engine.connect() as conn:
                return conn.execute(arrange(sa.select(*columns))).mappings().all()
        except _UNAVAILABLE as err:
            raise StoreReadFailed(f"cannot read the store {self.name}: {database_reason(err)}") from None

    # ------------------------------------------------------------------ score log

    def log_scores(self, rows: pd.DataFrame | list[dict]) -> None:
        """Append scores: lead_id, model_name, model_version, probability, score, tier,
        likely_rejection_reason, factors (JSON text or Python lists), email_sha256, scored_at (UTC),
        features_as_of (UTC), past_horizon_note, never_seen (JSON text or a Python dict), unread_activity_types
        (JSON text or a Python list).

        Rows are a frame or a list of dicts (what the service builds: no pandas per request).
        likely_rejection_probability, past_horizon_note, never_seen and unread_activity_types are optional;
        scored_at defaults to now, features_as_of to scored_at.
        A column named `email` is refused: only its hash (`email_sha256`) may be logged.

        Raises:
            StoreWriteFailed: the database refused or failed the write; no row of it was logged.
        """
        records = rows.to_dict("records") if isinstance(rows, pd.DataFrame) else rows
        has_email = "email" in rows.columns if isinstance(rows, pd.DataFrame) else any("email" in r for r in records)
        if has_email:
            raise ValueError("score log rows carry a raw e-mail; log email_sha256 (serving.store.email_sha256) instead")
        if not records:
            return
        now = _now()
        out = []
        for row in records:
            record = {name: _plain(row.get(name)) for name in SCORE_LOG_COLUMNS}
            for name in _JSON_COLUMNS:
                value = record[name]
                record[name] = value if value is None or isinstance(value, str) else json.dumps(value)
            record["scored_at"] = now if record["scored_at"] is None else utc_naive(record["scored_at"])
            as_of = record["features_as_of"]
            record["features_as_of"] = record["scored_at"] if as_of is None else utc_naive(as_of)
            record["model_version"] = str(record["model_version"])
            out.append(record)
        with self._writing() as conn:
            conn.execute(SCORE_LOG.insert(), out)

    def latest_score(self, lead_id: str) -> dict | None:
        """The lead's most recent logged score (factors, never_seen and unread_activity_types parsed from JSON), or
        None if never scored.

        Most recent by the time its features were computed as of, then by when it was logged: a backfill
        that re-scores the lead as of an earlier day does not replace what it looks like now.
        """
        as_of = (sa.func.coalesce(SCORE_LOG.c.features_as_of, SCORE_LOG.c.scored_at)  # none in an earlier version's rows
                 if "features_as_of" in self._present[SCORE_LOG.name] else SCORE_LOG.c.scored_at)  # or table
        rows = self._read(SCORE_LOG, SCORE_LOG_COLUMNS, lambda query: query.where(SCORE_LOG.c.lead_id == str(lead_id))
                          .order_by(as_of.desc(), SCORE_LOG.c.scored_at.desc(), SCORE_LOG.c.id.desc()).limit(1))
        if not rows:
            return None
        out = dict(rows[0])
        out["factors"] = json.loads(out["factors"]) if out["factors"] else []
        for name in ("never_seen", "unread_activity_types"):  # none in rows, or a table, an earlier version logged
            out[name] = None if out.get(name) is None else json.loads(out[name])
        out["features_as_of"] = out.get("features_as_of") or out["scored_at"]  # none in rows an earlier version logged
        return out

    def score_log_frame(self, since: pd.Timestamp | None = None) -> pd.DataFrame:
        """Logged scores (optionally scored from `since`, naive or zone-aware UTC), oldest first; features_as_of
        is scored_at where an earlier version logged none."""
        def arrange(query):
            query = query.order_by(SCORE_LOG.c.id)
            return query if since is None else query.where(SCORE_LOG.c.scored_at >= utc_naive(since))

        frame = _typed(pd.DataFrame(self._read(SCORE_LOG, SCORE_LOG_COLUMNS, arrange)), SCORE_LOG_COLUMNS)
        frame["features_as_of"] = frame["features_as_of"].fillna(frame["scored_at"])
        return frame

    # ------------------------------------------------------------------ feedback

    def add_feedback(self, event: dict) -> bool:
        """Store one CRM decision (event_id, lead_id, status, reason, decided_at, amount).

        Idempotent on event_id: a retried event is not stored twice. Committed before returning.

        Returns:
            True when the event was new, False when the same event was already stored.

        Raises:
            FeedbackConflict: the event_id is stored with a different decision (kept as it was).
            ValueError: decided_at is impossible (`decision_date`).
            StoreWriteFailed: the database refused or failed the write; the event was not stored.
        """
        record = {name: _plain(event.get(name)) for name in FEEDBACK_COLUMNS}
        record["received_at"] = utc_naive(record["received_at"]) if record["received_at"] else _now()
        try:
            record["decided_at"] = decision_date(record["decided_at"], record["received_at"])
        except ValueError as err:
            raise ValueError(f"feedback event {record['event_id']!r}: {err}") from None
        try:
            with self._writing() as conn:
                conn.execute(FEEDBACK.insert(), record)
        except sa.exc.IntegrityError:
            with self.engine.connect() as conn:
                query = sa.select(*[FEEDBACK.c[name] for name in _DECISION_FIELDS])
                stored = conn.execute(query.where(FEEDBACK.c.event_id == record["event_id"])).mappings().first()
            if stored is None:  # not a duplicate event: a real constraint violation
                raise
            differences = {name: (stored[name], record[name]) for name in _DECISION_FIELDS if stored[name] != record[name]}
            if differences:
                raise FeedbackConflict(record["event_id"], differences) from None
            return False
        return True

    def feedback_frame(self) -> pd.DataFrame:
        """Every stored feedback event, in the order received."""
        rows = self._read(FEEDBACK, FEEDBACK_COLUMNS, lambda query: query.order_by(FEEDBACK.c.received_at, FEEDBACK.c.event_id))
        return _typed(pd.DataFrame(rows), FEEDBACK_COLUMNS)

    def usable_feedback(self) -> tuple[pd.DataFrame, int]:
        """Stored events whose decided_at `decision_date` accepts, in the order received; and how many it left out.

        An event whose decided_at is impossible (stored before the service checked it) is left out
        with a warning naming it, and stays in the table: one bad row must not stop retraining, skew
        the monitor's hand-off times, nor win as the lead's latest decision forever.
        """
        events = self.feedback_frame()
        impossible = pd.Series([not _possible(decided, received) for decided, received in
                                zip(events["decided_at"], events["received_at"])], index=events.index, dtype=bool)
        if impossible.any():
            bad = events[impossible]
            named = "; ".join(f"event {e!r} (lead {lead!r}, decided_at {d})"
                              for e, lead, d in zip(bad["event_id"][:10], bad["lead_id"][:10], bad["decided_at"][:10]))
            log.warning(
                "left out %d feedback event(s) with an impossible decided_at (before %s, or more than %d day after the "
                "service received it); they stay in the feedback table: %s%s. Send each decision again under a new "
                "event_id with its real date, or correct decided_at in the table.",
                len(bad), f"{EARLIEST_DECISION:%Y-%m-%d}", CLOCK_SLACK.days, named,
                f"; and {len(bad) - 10} more" if len(bad) > 10 else "",
            )
        return events[~impossible], int(impossible.sum())

    def export_outcomes(self) -> pd.DataFrame:
        """The contract `outcomes` table from the usable feedback (`usable_feedback`): see `latest_decisions`."""
        return latest_decisions(self.usable_feedback()[0])

    # ------------------------------------------------------------------ erasure

    def forget(self, lead_ids: list[str], emails: list[str], expired_days: int | None = None,
               dry_run: bool = False) -> "Forgotten":
        """Delete every row of the leads named, by id or by e-mail, from score_log and feedback, and with
        `expired_days` the scores of each lead last scored longer ago, in one transaction that also records the
        erasure in erasure_log (`ERASURE_LOG`: counts, never the ids or e-mails).

        An e-mail is matched through `email_sha256` (normalised as the service hashed it) to the leads whose scores
        carry it; those leads' rows go from both tables, as feedback holds no e-mail. No other lead's row is touched.
        An expired lead loses all its scores at once, never its oldest only: monitor takes a lead's first score ever for
        the one that routed it to sales. Its feedback is kept: retraining learns from those decisions (name the lead to
        erase them). On SQLite the transaction takes the write lock before its first lookup: the service's writes wait
        for it, and none lands between the lookup of an e-mail's leads and their deletion; the deleted rows are
        overwritten (secure_delete) and the write-ahead log checkpointed, so the file no longer holds them; a database
        server keeps them in its own files until it reuses the space.
        A store an earlier version created gains its erasure_log table first.

        Raises:
            ValueError: a blank lead id or e-mail (it would match nothing, and the user would believe it erased), or
                an e-mail that is no address ("test", "test@test.com": `email_address`; it would erase every lead a
                CRM gave that placeholder).
            StoreWriteFailed: the database refused or failed the deletion, or creating erasure_log; nothing was
                deleted.
        """
        blank = ([f"lead id {v!r}" for v in lead_ids if not str(v).strip()]
                 + [f"e-mail {v!r}" for v in emails if not str(v).strip()])
        if blank:
            raise ValueError(f"{', '.join(blank)} is blank: name the lead to forget")
        hashes = dict(zip(emails, email_sha256(pd.Series(emails, dtype=object))))
        placeholders = [email for email, digest in hashes.items() if digest is None]
        if placeholders:
            raise ValueError(f"e-mail {', '.join(map(repr, placeholders))} is no address (local@domain.tld) or a "
                             "placeholder (test@test.com, a domain reserved for examples): a CRM writes such a "
                             "placeholder for many people, so it names no one lead; name the lead by its id "
                             "(--lead-id). Nothing was deleted.")
        is_sqlite = self.engine.dialect.name == "sqlite"
        now = _now()
        cutoff = None if expired_days is None else now - timedelta(days=expired_days)
        scored = SCORE_LOG.alias("scored")  # the same table in the subquery, not correlated with the DELETE's
        expired = (SCORE_LOG.c.lead_id.in_(sa.select(scored.c.lead_id).group_by(scored.c.lead_id)
                                           .having(sa.func.max(scored.c.scored_at) < cutoff))
                   if cutoff is not None else sa.false())
        self._create_erasure_log()
        try:
            with self.engine.connect() as conn:
                if is_sqlite:  # zero the deleted rows in the file, whatever this SQLite's build defaults to
                    conn.exec_driver_sql("PRAGMA secure_delete=ON")
                    conn.commit()
                with conn.begin():
                    if is_sqlite:  # pysqlite would BEGIN only at the first DELETE, leaving the lookups before it
                        # outside the transaction: a score logged between them for the e-mail would be left behind
                        conn.exec_driver_sql("BEGIN IMMEDIATE")  # the write lock first (waits the busy timeout)
                    by_email = {email: sorted(conn.execute(sa.select(SCORE_LOG.c.lead_id).distinct()
                                                           .where(SCORE_LOG.c.email_sha256 == digest)).scalars())
                                for email, digest in hashes.items()}
                    leads = sorted(set(map(str, lead_ids)).union(*by_email.values()))
                    rows, found = {}, set()
                    for table in (SCORE_LOG, FEEDBACK):
                        of_leads = table.c.lead_id.in_(leads)
                        found.update(conn.execute(sa.select(table.c.lead_id).where(of_leads).distinct()).scalars())
                        chosen = sa.or_(of_leads, expired) if table is SCORE_LOG else of_leads
                        if dry_run:
                            rows[table.name] = conn.execute(sa.select(sa.func.count()).select_from(table)
                                                            .where(chosen)).scalar_one()
                        else:
                            rows[table.name] = conn.execute(table.delete().where(chosen)).rowcount
                    conn.execute(ERASURE_LOG.insert(), {
                        "erased_at": now, "lead_ids_named": len(lead_ids), "emails_named": len(emails),
                        "last_scored_before": cutoff, "score_log_rows": rows[SCORE_LOG.name],
                        "feedback_rows": rows[FEEDBACK.name], "dry_run": dry_run})
        except _UNAVAILABLE as err:
            raise StoreWriteFailed(f"cannot delete from the store {self.name}: {database_reason(err)}. Nothing was "
                                   "deleted.") from None
        wal_checkpointed = None
        if is_sqlite and not dry_run:  # the log keeps the rows as they were written until a checkpoint empties it
            try:
                with self.engine.connect() as conn:
                    wal_checkpointed = not conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)").first()[0]  # busy
            except _UNAVAILABLE:
                wal_checkpointed = False
        return Forgotten(rows, by_email, [v for v in map(str, lead_ids) if v not in found],
                         [email for email in emails if not by_email.get(email)], wal_checkpointed, cutoff)

    def _create_erasure_log(self) -> None:
        """Create erasure_log in a store an earlier version's service created (the service creates it on start, and
        may be running the earlier version still); another writer creating it at the same moment is no failure."""
        if self.has_table(ERASURE_LOG):
            return
        try:
            ERASURE_LOG.create(self.engine, checkfirst=True)
        except (*_UNAVAILABLE, sa.exc.IntegrityError) as err:  # PostgreSQL's duplicate key in its catalog, as there
            if not sa.inspect(self.engine).has_table(ERASURE_LOG.name):
                raise StoreWriteFailed(
                    f"cannot create the erasure_log table, where forget records each erasure, in the store {self.name}: "
                    f"{database_reason(err)}. Start this version's service on the store once (it creates the table), or "
                    "run forget with an account that may create tables. Nothing was deleted.") from None
        self._present[ERASURE_LOG.name] = set(ERASURE_LOG_COLUMNS) | {"id"}

    def erasures(self) -> pd.DataFrame:
        """Every erasure forget recorded (`ERASURE_LOG`), oldest first; none in a store forget never ran on since
        erasure_log existed."""
        rows = self._read(ERASURE_LOG, ERASURE_LOG_COLUMNS, lambda query: query.order_by(ERASURE_LOG.c.id))
        return _typed(pd.DataFrame(rows), ERASURE_LOG_COLUMNS)


@dataclass
class Forgotten:
    """What `Store.forget` deleted (or would have, dry)."""

    rows: dict[str, int]  # table name -> rows deleted
    leads_by_email: dict[str, list[str]]  # each e-mail as given -> the lead ids its hash matched
    unknown_lead_ids: list[str]  # the lead ids no row of the store holds
    unknown_emails: list[str]  # the e-mails no score's email_sha256 matched
    wal_checkpointed: bool | None  # SQLite: whether its write-ahead log was emptied after (False: a reader held it)
    last_scored_before: datetime | None = None  # expired_days: the leads last scored before this (UTC) lost their scores


def latest_decisions(events: pd.DataFrame) -> pd.DataFrame:
    """Feedback events as the contract `outcomes` table: one row per lead, its latest decision.

    Latest = latest decided_at; events with the same decided_at are ordered by arrival.
    """
    latest = events.sort_values(["decided_at", "received_at"], kind="stable").drop_duplicates("lead_id", keep="last")
    return latest.reset_index(drop=True)[list(OUTCOMES.columns)]
