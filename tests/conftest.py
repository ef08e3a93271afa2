"""Shared fixtures: a seeded synthetic CRM on disk, params pointing at it, one trained model; and
`running_service`, the one way integration tests start the real service.

Everything lives in pytest's temporary folders: MLflow's SQLite store and artifacts included, so
tests never touch the project's own mlflow.db.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import secrets
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import sqlalchemy as sa
from prometheus_client.parser import text_string_to_metric_families

from pipelines.config import PARAMS_ENV, PROJECT_ROOT, Params, load_params
from serving.local_server import SERVICE, Client, LocalServer, params_file, start

SHARED_DATA = PROJECT_ROOT.parent / "shared" / "data" / "x_education" / "Leads.csv"
os.environ.setdefault("BENTOML_DO_NOT_TRACK", "true")


@pytest.fixture(scope="session")
def sample_dir(tmp_path_factory) -> Path:
    """A 6,000-lead synthetic CRM written as CSV (the demo uses the same generator, larger)."""
    from pipelines.synthetic import generate_crm, write_crm

    out = tmp_path_factory.mktemp("crm")
    write_crm(generate_crm(6000, seed=11), out)
    return out


# Small, quick models for tests that train several (retrain, backtest, monitor). LightGBM alone: the
# gate and the alias moves do not depend on which candidate wins, and the logistic candidate's
# sign-constrained refits cost ~10 s per fit on 6k leads.
FAST = {"model.tuning_trials": 2, "model.max_rounds": 300, "model.early_stopping_rounds": 30,
        "model.reason_model": False, "model.candidates": ["lightgbm"]}


def params_for(sample_dir: Path, tracking_dir: Path, **overrides) -> Params:
    """The project's params.yaml pointed at `sample_dir`, tracking in `tracking_dir`, fast tuning."""
    values = {
        "data.leads": str(sample_dir / "leads.csv"),
        "data.activities": str(sample_dir / "activities.csv"),
        "data.outcomes": str(sample_dir / "outcomes.csv"),
        "tracking.uri": f"sqlite:///{tracking_dir / 'mlflow.db'}",
        "serving.store_url": f"sqlite:///{tracking_dir / 'store.db'}",
        "model.tuning_trials": 3,
        "model.max_rounds": 400,
    }
    values.update(overrides)
    return load_params(PROJECT_ROOT / "params.yaml", overrides=values)


@pytest.fixture(scope="session")
def tracking_dir(tmp_path_factory) -> Path:
    """The shared MLflow store's folder (a test may register models of its own there under other names)."""
    return tmp_path_factory.mktemp("tracking")


@pytest.fixture(scope="session")
def sample_params(sample_dir, tracking_dir) -> Params:
    return params_for(sample_dir, tracking_dir)


@pytest.fixture(scope="session")
def trained(sample_params, monkeypatch_session):
    """One model trained, evaluated and registered on the sample CRM (the first gets champion)."""
    from pipelines.train import train

    return train(sample_params)


def moved_tracking_store(params: Params, folder: Path) -> str:
    """A copy of the params' SQLite tracking store and its mlruns/ folder in `folder`, its absolute artifact paths
    rewritten to the copy (as if the project had been moved there with them); returns its URI. The shared store's
    files are never touched: a test deletes the copy's mlruns/ to leave its versions without their files."""
    import shutil

    store = Path(params.tracking.uri.removeprefix("sqlite:///"))
    copy = folder / "tracking" / "mlflow.db"
    copy.parent.mkdir(parents=True)
    shutil.copy(store, copy)
    shutil.copytree(store.parent / "mlruns", copy.parent / "mlruns")
    engine = sa.create_engine(f"sqlite:///{copy}")
    with engine.begin() as connection:
        for table in sa.inspect(connection).get_table_names():
            for column in sa.inspect(connection).get_columns(table):
                if isinstance(column["type"], (sa.String, sa.Text)):
                    connection.execute(sa.text(f'UPDATE "{table}" SET "{column["name"]}" = '
                                               f'replace("{column["name"]}", :old, :new)'),
                                       {"old": str(store.parent), "new": str(copy.parent)})
    engine.dispose()
    return f"sqlite:///{copy}"


@pytest.fixture(scope="session")
def monkeypatch_session():
    mp = pytest.MonkeyPatch()
    mp.delenv("MLFLOW_TRACKING_URI", raising=False)
    yield mp
    mp.undo()


@pytest.fixture()
def x_education_csv() -> Path:
    if not SHARED_DATA.exists():
        pytest.skip(f"X Education export not found at {SHARED_DATA}")
    return SHARED_DATA


# The store's tables as the version before the score log's features_as_of defined them (SQLAlchemy, so
# each database gets them in its own types: DATETIME in SQLite, TIMESTAMP and SERIAL in PostgreSQL).
EARLIER_STORE = sa.MetaData()
sa.Table(
    "score_log", EARLIER_STORE,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("lead_id", sa.String(255), nullable=False), sa.Column("model_name", sa.String(255), nullable=False),
    sa.Column("model_version", sa.String(64), nullable=False), sa.Column("probability", sa.Float, nullable=False),
    sa.Column("score", sa.Integer, nullable=False), sa.Column("tier", sa.String(64), nullable=False),
    sa.Column("likely_rejection_reason", sa.String(255)), sa.Column("likely_rejection_probability", sa.Float),
    sa.Column("factors", sa.Text), sa.Column("email_sha256", sa.String(64)),
    sa.Column("scored_at", sa.DateTime, nullable=False),
    sa.Index("ix_score_log_lead_time", "lead_id", "scored_at"), sa.Index("ix_score_log_time", "scored_at"),
)
sa.Table(
    "feedback", EARLIER_STORE,
    sa.Column("event_id", sa.String(255), primary_key=True),
    sa.Column("lead_id", sa.String(255), nullable=False, index=True),
    sa.Column("status", sa.String(64), nullable=False), sa.Column("reason", sa.String(255)),
    sa.Column("decided_at", sa.DateTime, nullable=False), sa.Column("amount", sa.Float),
    sa.Column("received_at", sa.DateTime, nullable=False),
)


def fill_earlier_store(url: str, scores: list[dict] = (), feedback: list[dict] = ()) -> None:
    """The earlier version's tables created in the (empty) database at `url`, holding `scores` (score log
    rows, without features_as_of, past_horizon_note, never_seen and unread_activity_types) and `feedback` events."""
    engine = sa.create_engine(url)
    try:
        EARLIER_STORE.create_all(engine)
        with engine.begin() as conn:
            for name, rows in (("score_log", scores), ("feedback", feedback)):
                if rows:
                    conn.execute(EARLIER_STORE.tables[name].insert(), list(rows))
    finally:
        engine.dispose()


def earlier_store(path: Path, scores: list[dict] = (), feedback: list[dict] = (), journal_mode: str = "wal") -> str:
    """A SQLite store as the version before features_as_of left it (that version set WAL mode): see
    `fill_earlier_store`.

    Returns the URL that opens it read-only, as a database account that may only read would: SQLite's
    mode=ro refuses writes even to root, whom file permissions do not stop.
    """
    import sqlite3

    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA journal_mode={journal_mode}")
    conn.close()
    fill_earlier_store(f"sqlite:///{path}", scores, feedback)
    return f"sqlite:///file:{path}?mode=ro&uri=true"


@dataclass
class Postgres:
    """A real PostgreSQL 16 server (pgserver's bundled binaries, on a Unix socket) shared by the session;
    each test takes a database of its own (`database`), and a reader account on it when it needs one."""

    admin_url: sa.URL  # the superuser, on the server's default database
    _made: itertools.count = field(default_factory=lambda: itertools.count(1))

    def _run(self, *statements: str, database: str | None = None) -> None:
        engine = sa.create_engine(self.admin_url.set(database=database or self.admin_url.database),
                                  isolation_level="AUTOCOMMIT")  # CREATE DATABASE runs outside a transaction
        try:
            with engine.connect() as conn:
                for statement in statements:
                    conn.exec_driver_sql(statement)
        finally:
            engine.dispose()

    def database(self) -> str:
        """The URL of a new, empty database, owned by the superuser (SQLAlchemy's psycopg 3 driver)."""
        name = f"test_{next(self._made)}"
        self._run(f"CREATE DATABASE {name}")
        return self.admin_url.set(database=name).render_as_string(hide_password=False)

    def reader(self, url: str) -> str:
        """The URL of a new account that may connect to `url`'s database and only read (SELECT) its tables,
        those there now and those the superuser creates later: what a monitoring job is given."""
        database = sa.make_url(url).database
        role = f"{database}_reader"
        self._run(f"CREATE ROLE {role} LOGIN", f"GRANT CONNECT ON DATABASE {database} TO {role}")
        self._run(f"GRANT USAGE ON SCHEMA public TO {role}", f"GRANT SELECT ON ALL TABLES IN SCHEMA public TO {role}",
                  f"ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT ON TABLES TO {role}", database=database)
        return sa.make_url(url).set(username=role).render_as_string(hide_password=False)

    def drop_connections(self, url: str) -> None:
        """Close every session on `url`'s database, as a server restart, a failover or an idle timeout does."""
        self._run("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = "
                  f"'{sa.make_url(url).database}' AND pid <> pg_backend_pid()")

    def set_read_only(self, url: str, read_only: bool) -> None:
        """`url`'s database refuses (or takes again) writes from its next sessions on, as after a failover to
        a read-only replica; its current sessions are closed."""
        database = sa.make_url(url).database
        self._run(f"ALTER DATABASE {database} SET default_transaction_read_only = {'on' if read_only else 'off'}")
        self.drop_connections(url)


@pytest.fixture(scope="session")
def postgres(tmp_path_factory) -> Iterator[Postgres]:
    """One PostgreSQL server for the session, stopped at its end; skips where pgserver has no wheel (Linux ARM)."""
    pgserver = pytest.importorskip("pgserver", reason="pgserver (a bundled PostgreSQL) is not installed here")
    server = pgserver.get_server(tmp_path_factory.mktemp("postgres"), cleanup_mode="stop")
    try:
        url = sa.make_url(server.get_uri()).set(drivername="postgresql+psycopg")
        yield Postgres(url)
    finally:
        server.cleanup()


@dataclass
class RunningService(LocalServer):
    """A started server plus what a test talks to it with: its API key and the params it reads."""

    key: str | None
    params: Params
    folder: Path

    def client(self, timeout: float = 60) -> Client:
        return Client(self.url, self.key, timeout=timeout)

    def lead_counts(self) -> dict[tuple[str, str], float]:
        """The lead counters on /metrics (served without the key): {(metric, tier or field, "" if unlabelled): value}."""
        text = Client(self.url).get("/metrics").body.decode()
        return {(sample.name, sample.labels.get("tier") or sample.labels.get("field", "")): sample.value
                for family in text_string_to_metric_families(text) if family.name.startswith("leadscore_")
                for sample in family.samples if sample.name.endswith("_total")}


@pytest.fixture()
def client(server):
    """A client of the test module's `server` fixture (a RunningService), closed after the test."""
    c = server.client()
    yield c
    c.close()


@contextlib.contextmanager
def running_service(params: Params, folder: Path, overrides: dict | None = None, *, api_key: bool = True,
                    target: str = SERVICE, bentoml_home: Path | None = None, log_name: str = "server.log",
                    timeout: float = 120, port: int | None = None) -> Iterator[RunningService]:
    """The real service served on 127.0.0.1 (`bentoml serve`) with `params` plus dotted `overrides`; stopped on exit.

    Its params file, log and BentoML home (unless `bentoml_home`) go in `folder`; `port` defaults to a free one. Each
    start gets a fresh API key, or none with `api_key=False` (to see the service refuse to start).
    """
    path = params_file(params, folder / "params.yaml", overrides)
    served = load_params(path)
    key = secrets.token_urlsafe(16) if api_key else None
    env = {PARAMS_ENV: str(path), "BENTOML_HOME": str(bentoml_home or folder / "bentoml")}
    if key:
        env[served.serving.api_key_env] = key
    server = start(env, folder / log_name, target=target, port=port, timeout=timeout)
    try:
        yield RunningService(server.url, server.process, server.log_path, key, served, folder)
    finally:
        server.stop()
