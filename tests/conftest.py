"""Shared fixtures: a seeded synthetic CRM on disk, params pointing at it, one trained model; and
`running_service`, the one way integration tests start the real service.

Everything lives in pytest's temporary folders: MLflow's SQLite store and artifacts included, so
tests never touch the project's own mlflow.db.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

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


# The store's tables as the version before the score log's features_as_of created them.
EARLIER_STORE_TABLES = """
    CREATE TABLE score_log (
        id INTEGER NOT NULL, lead_id VARCHAR(255) NOT NULL, model_name VARCHAR(255) NOT NULL,
        model_version VARCHAR(64) NOT NULL, probability FLOAT NOT NULL, score INTEGER NOT NULL,
        tier VARCHAR(64) NOT NULL, likely_rejection_reason VARCHAR(255), likely_rejection_probability FLOAT,
        factors TEXT, email_sha256 VARCHAR(64), scored_at DATETIME NOT NULL, PRIMARY KEY (id));
    CREATE INDEX ix_score_log_lead_time ON score_log (lead_id, scored_at);
    CREATE INDEX ix_score_log_time ON score_log (scored_at);
    CREATE TABLE feedback (
        event_id VARCHAR(255) NOT NULL, lead_id VARCHAR(255) NOT NULL, status VARCHAR(64) NOT NULL,
        reason VARCHAR(255), decided_at DATETIME NOT NULL, amount FLOAT, received_at DATETIME NOT NULL,
        PRIMARY KEY (event_id));
    CREATE INDEX ix_feedback_lead_id ON feedback (lead_id);
"""


def earlier_store(path: Path, scores: list[dict] = (), feedback: list[dict] = (), journal_mode: str = "wal") -> str:
    """A SQLite store as the version before features_as_of left it (that version set WAL mode), holding
    `scores` (score log rows, without features_as_of) and `feedback` events.

    Returns the URL that opens it read-only, as a database account that may only read would: SQLite's
    mode=ro refuses writes even to root, whom file permissions do not stop.
    """
    import sqlite3

    import sqlalchemy as sa

    from serving.store import FEEDBACK, SCORE_LOG

    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA journal_mode={journal_mode}")
    conn.executescript(EARLIER_STORE_TABLES)
    conn.close()
    engine = sa.create_engine(f"sqlite:///{path}")
    with engine.begin() as conn:
        for table, rows in ((SCORE_LOG, scores), (FEEDBACK, feedback)):
            if rows:
                conn.execute(table.insert(), list(rows))
    engine.dispose()
    return f"sqlite:///file:{path}?mode=ro&uri=true"


@dataclass
class RunningService(LocalServer):
    """A started server plus what a test talks to it with: its API key and the params it reads."""

    key: str | None
    params: Params
    folder: Path

    def client(self, timeout: float = 60) -> Client:
        return Client(self.url, self.key, timeout=timeout)


@contextlib.contextmanager
def running_service(params: Params, folder: Path, overrides: dict | None = None, *, api_key: bool = True,
                    target: str = SERVICE, bentoml_home: Path | None = None, log_name: str = "server.log",
                    timeout: float = 120) -> Iterator[RunningService]:
    """The real service served on 127.0.0.1 (`bentoml serve`) with `params` plus dotted `overrides`; stopped on exit.

    Its params file, log and BentoML home (unless `bentoml_home`) go in `folder`. Each start gets a
    fresh API key, or none with `api_key=False` (to see the service refuse to start).
    """
    path = params_file(params, folder / "params.yaml", overrides)
    served = load_params(path)
    key = secrets.token_urlsafe(16) if api_key else None
    env = {PARAMS_ENV: str(path), "BENTOML_HOME": str(bentoml_home or folder / "bentoml")}
    if key:
        env[served.serving.api_key_env] = key
    server = start(env, folder / log_name, target=target, timeout=timeout)
    try:
        yield RunningService(server.url, server.process, server.log_path, key, served, folder)
    finally:
        server.stop()
