"""MLflow: where runs are tracked, how a LeadScorer is logged as ONE pyfunc model, and the registry.

The tracking store is a SQLite file in the project by default (params.tracking.uri, overridden by
MLFLOW_TRACKING_URI); artifacts go to an absolute `mlruns/` folder beside it so runs can be opened
from any working directory. Nothing here runs at import time.
"""

from __future__ import annotations

import dataclasses
import difflib
import hashlib
import importlib
import importlib.metadata
import json
import logging
import os
import re
import shlex
import tempfile
import traceback
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import joblib
import mlflow
import pandas as pd
import requests
import sqlalchemy as sa
from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException
from mlflow.models import ModelSignature
from mlflow.store.db.db_types import DATABASE_ENGINES, MYSQL, POSTGRES, SQLITE
from mlflow.tracking import MlflowClient
from mlflow.types import ColSpec, ParamSchema, ParamSpec, Schema

from pipelines.config import Params, fitting_params, shown_url
from pipelines.ingest import ALIKE_RATIO, ContractError, Problem, csv_decimal_mark, database_reason, prepare_table

CHAMPION, CHALLENGER = "champion", "challenger"
UI_PORT = 5000  # the MLflow UI's port in the README's `mlflow ui` command
TRAINING_KEY = "training_key"  # run tag: what decided the model (`training_key`)
SETTING_WARNINGS = "setting_warnings"  # run tag: how many setting warnings the run was told (`log_setting_warnings`)
KIND = "kind"  # run tag: which command logged the run (`start_run`)
AS_OF = "as_of"  # run tag: the date the training data was taken as of (`log_training_data`)
# The training run's tags a registered version carries too (`register`): what it was trained on, without the run open.
VERSION_TRACE = (AS_OF, TRAINING_KEY)
MODEL_DESCRIPTION = (
    "Lead scores for RevOps, from leadscore. Each version is one whole LeadScorer (features, LightGBM model, "
    "calibrator, tiers, reason model) trained by `leadscore train` or `leadscore retrain` on a CRM export; its tags "
    "name its training run (run_id), the date the export was taken as of (as_of) and, for a file export, the hash of "
    "the data, params and code it was fit on (training_key); its description is its model card.\n\n"
    "A new version gets the alias `challenger` (the very first also `champion`). `champion`, the version the service "
    "scores with, moves only when `leadscore retrain`'s gate passes (AUC against the champion's, calibration, no "
    "leakage, enough conversions) or by hand with `leadscore promote --version N --reason ...` or `leadscore rollback "
    "--reason ...`; the reason is kept on the versions' tags."
)
# What MLflow raises when its tracking store fails: its own exception, and unwrapped, a database store's driver
# error or a tracking server's HTTP client error.
STORE_ERRORS = (MlflowException, sa.exc.DBAPIError, requests.RequestException)
REACH_TIMEOUT = 5  # seconds to connect to the tracking store before it is told unreachable (`check_reachable`)
log = logging.getLogger(__name__)
_reached: set[str] = set()  # tracking stores this process connected to (`check_reachable`)
# The MLflow model's input column holding each lead's activities, as JSON text: the list `/score` takes per lead
# (CRM field names, the lead's id taken from its row), '[{"occurred_at": "2025-06-04", "activity": "demo_request"}]'.
ACTIVITIES_COLUMN = "activities"
_REQUIREMENTS = ["scikit-learn", "lightgbm", "pandas", "numpy", "pyarrow", "pydantic", "pyyaml", "sqlalchemy", "shap", "joblib"]


def mlflow_keys(values: dict) -> dict:
    """Keys reduced to the characters MLflow accepts in param/metric names.

    Keys can come from the data (a CRM reason code such as "Diploma holder (Not Eligible)").
    """
    return {re.sub(r"[^\w\-. :/]", "_", str(k)): v for k, v in values.items()}


def tracking_uri(params: Params) -> str:
    """MLFLOW_TRACKING_URI if set, else params.tracking.uri with a relative SQLite path made absolute."""
    uri = os.environ.get("MLFLOW_TRACKING_URI") or params.tracking.uri
    prefix = "sqlite:///"
    if uri.startswith(prefix) and not uri.startswith(prefix + "/"):
        uri = prefix + str(params.resolve(uri[len(prefix):]))
    return uri


class TrackingStoreFailed(RuntimeError):
    """The MLflow tracking store could not be reached or failed a request (`store_failure`)."""


def raised_by_mlflow(err: BaseException) -> bool:
    """Whether MLflow raised `err` (a frame of its package raised or passed it on): a database or HTTP error is
    the tracking store's only then, not the feedback store's or the CRM database's."""
    return any(frame.f_globals.get("__name__", "").split(".")[0] == "mlflow"
               for frame, _ in traceback.walk_tb(err.__traceback__))


def store_failure(err: BaseException, uri: str | None = None) -> TrackingStoreFailed:
    """An error MLflow raised as one line naming the tracking store at `uri` (default: the one MLflow is pointed at,
    `use_store`) with its password hidden, and what failed. MLflow's own message quotes a tracking server's URI as
    given, password and all, and a traceback of a database store's error shows the URL MLflow was given."""
    uri = uri or mlflow.get_tracking_uri()
    unreachable = _connection_failure(err)
    if unreachable:
        return TrackingStoreFailed(
            f"cannot reach the MLflow tracking store {shown_url(uri)}: {unreachable}. Check {_setting()}: that the "
            "server runs and is reachable from here, and that its address and credentials are right")
    reason = re.sub(r"[A-Za-z][\w+.-]*://\S+", lambda url: shown_url(url[0]), database_reason(err))  # its request's URL
    return TrackingStoreFailed(f"the MLflow tracking store {shown_url(uri)} failed: {reason}")


def _setting() -> str:
    """The setting that names the tracking store: MLFLOW_TRACKING_URI when set (`tracking_uri` prefers it)."""
    return "MLFLOW_TRACKING_URI" if os.environ.get("MLFLOW_TRACKING_URI") else "tracking.uri"


def _connection_failure(err: BaseException) -> str | None:
    """Why the tracking store could not be connected to, when that is what failed: a database store's own reason, or
    a tracking server's network one (the innermost cause, e.g. "Connection refused"); None for another failure."""
    chain = [err]
    while (cause := chain[-1].__cause__ or chain[-1].__context__) is not None and cause not in chain:
        chain.append(cause)
    database = next((link for link in chain if isinstance(link, sa.exc.DBAPIError)), None)
    if database is not None:
        return database_reason(database) if database.statement is None else None  # no statement yet: connecting
    if any(isinstance(link, (requests.ConnectionError, requests.Timeout)) for link in chain):
        return getattr(chain[-1], "strerror", None) or str(chain[-1])
    return None


def ui_address(uri: str) -> tuple[str | None, str | None]:
    """Where the MLflow UI shows the tracking store at `uri`, and the command that starts it there: a tracking
    server's own address (its user:password@ left out), or for a store on this machine (SQLite, a folder) the
    address of the README's ``mlflow ui`` started on it. Neither for a database server, whose URI may hold a
    password, which a page must not."""
    parts = urlsplit(uri)
    if parts.scheme in ("http", "https"):
        return urlunsplit(parts._replace(netloc=parts.netloc.rpartition("@")[2])).rstrip("/"), None
    if parts.scheme in ("sqlite", "file", ""):
        return f"http://127.0.0.1:{UI_PORT}", f"mlflow ui --backend-store-uri {shlex.quote(uri)} --port {UI_PORT}"
    return None, None


def run_in_ui(params: Params, run_id: str) -> dict:
    """How a reader opens a run of the params' store, for a page that names it (the audit's training run): its
    ``name`` and ``experiment``, the ``url`` of its page in the MLflow UI and the ``ui_command`` that starts the UI
    (`ui_address`; None where there is none). All None for a run the store no longer has (deleted, or the model
    registered from another store): the page keeps the bare ID rather than the audit failing over a link."""
    uri = tracking_uri(params)
    client = MlflowClient(uri)
    try:
        run = client.get_run(run_id)
        experiment = client.get_experiment(run.info.experiment_id)
    except MlflowException:
        return dict.fromkeys(("name", "experiment", "url", "ui_command"))
    ui, command = ui_address(uri)
    page = f"{ui}/#/experiments/{experiment.experiment_id}/runs/{run_id}" if ui else None
    return {"name": run.info.run_name, "experiment": experiment.name, "url": page, "ui_command": command}


def use_store(params: Params, *, create: bool = False) -> str:
    """Point this process's MLflow client at the params' tracking store, once it is known to be reachable
    (`check_reachable`); returns its URI. Only a command that `create`s the store (train, retrain, backtest: they log
    runs before any model is read) may name a SQLite file that does not exist yet: MLflow would create it for any
    command, so a mistyped path read by `score` or the service left an empty store behind and was told as a missing
    model (`_check_sqlite_file`).

    MLflow 3 also writes MLFLOW_TRACKING_URI into the environment, which tracking_uri() prefers:
    the variable is put back to what the user had, so params chosen later are not pinned to this store.
    """
    uri = tracking_uri(params)
    check_reachable(uri, create=create)
    before = os.environ.get("MLFLOW_TRACKING_URI")
    mlflow.set_tracking_uri(uri)
    if before is None:
        os.environ.pop("MLFLOW_TRACKING_URI", None)
    else:
        os.environ["MLFLOW_TRACKING_URI"] = before
    return uri


def check_reachable(uri: str, *, create: bool = False) -> None:
    """Connect to the tracking store at `uri` once, or raise TrackingStoreFailed saying it cannot be reached.

    MLflow retries a tracking server it cannot connect to for about 4 minutes and a database for 100 seconds, so a
    wrong address or password kept a user or a CI job waiting minutes for the error. This one try waits
    REACH_TIMEOUT seconds to connect (MLFLOW_HTTP_REQUEST_TIMEOUT and MLFLOW_HTTP_REQUEST_MAX_RETRIES when the user
    set them; a database URL's own connect_timeout). Any answer counts: a store that answered keeps MLflow's
    retries for its later failures (a restart, a failover). Checked once per store and process, so the service's
    registry reloads keep them too. A SQLite file is on this machine: nothing to reach, but it is checked that it
    can be opened, or created when `create` (`_check_sqlite_file`). A folder store (a path, file:) is on this machine
    too: nothing to reach.
    """
    if uri in _reached:
        return
    scheme = urlsplit(uri).scheme
    try:
        if scheme in ("http", "https"):
            _request_health(uri)
        elif scheme.split("+")[0] == SQLITE:
            _check_sqlite_file(uri, create)
        elif scheme.split("+")[0] in DATABASE_ENGINES:
            _connect_database(uri)
        else:
            return
    except STORE_ERRORS as err:
        if _connection_failure(err) is not None:
            raise store_failure(err, uri) from None
    _reached.add(uri)


def _request_health(uri: str) -> None:
    """One GET of the server's /health, as MLflow sends its requests (credentials, TLS and proxy settings) but
    without retrying an answer; raises MlflowException when none came."""
    from mlflow.environment_variables import MLFLOW_HTTP_REQUEST_MAX_RETRIES, MLFLOW_HTTP_REQUEST_TIMEOUT
    from mlflow.utils.credentials import get_default_host_creds
    from mlflow.utils.rest_utils import http_request

    connect = MLFLOW_HTTP_REQUEST_TIMEOUT.get() if MLFLOW_HTTP_REQUEST_TIMEOUT.defined else REACH_TIMEOUT
    retries = MLFLOW_HTTP_REQUEST_MAX_RETRIES.get() if MLFLOW_HTTP_REQUEST_MAX_RETRIES.defined else 0
    http_request(get_default_host_creds(uri), "/health", "GET", max_retries=retries, retry_codes=frozenset(),
                 timeout=(connect, MLFLOW_HTTP_REQUEST_TIMEOUT.get()), raise_on_status=False)


def _check_sqlite_file(uri: str, create: bool) -> None:
    """Raise TrackingStoreFailed naming the SQLite file at `uri` and why it cannot be opened: a folder in its place,
    no folder to create it in, or one that cannot be written. MLflow retried such a file for 100 seconds, and makes a
    missing folder itself, a mistyped path's too. A file that is not there yet in a writable folder is MLflow's to
    `create` (the project's first `train`); else it is refused, with a file of a name alike in its folder ('mlflow.db'
    for 'mlfow.db'). One in memory (``sqlite://``) or named by a SQLite URI is not checked."""
    url = sa.make_url(uri)
    if not url.database or url.database == ":memory:" or "uri" in url.query:
        return
    file = Path(url.database)
    folder = file.parent
    if file.is_dir():
        problem = f"{file} is a folder; name the database file in it, e.g. {file / 'mlflow.db'}"
    elif file.exists():
        problem = None if os.access(file, os.R_OK) else f"{file} is not readable"
    elif not folder.is_dir():
        problem = (f"{folder} is a file, not a folder" if folder.exists()
                   else f"the folder {folder} does not exist; create it, or name a file in one that does")
    elif not create:
        alike = _alike_file(file)
        problem = (f"{file} does not exist{f' (its folder has {alike})' if alike else ''}, so no model is registered "
                   "there: run `leadscore train` first, which creates it")
    elif not os.access(folder, os.W_OK | os.X_OK):
        problem = f"{file} does not exist and its folder {folder} is not writable, so it cannot be created"
    else:
        problem = None
    if problem:
        raise TrackingStoreFailed(f"cannot open the MLflow tracking store {shown_url(uri)}: {problem}. "
                                  f"Check {_setting()}")


def _alike_file(file: Path) -> str | None:
    """The name of the file in `file`'s folder closest to its name, when one is as close as a misspelling
    (ALIKE_RATIO, as for a column); None when there is none or the folder cannot be listed."""
    try:
        names = [path.name for path in file.parent.iterdir() if path.is_file()]
    except OSError:
        return None
    return next(iter(difflib.get_close_matches(file.name, names, n=1, cutoff=ALIKE_RATIO)), None)


def _connect_database(uri: str) -> None:
    """One connection to the database store; raises its driver's error (a DBAPIError) when it cannot connect."""
    url = sa.make_url(uri)
    timeout = ({"connect_timeout": REACH_TIMEOUT}
               if url.get_backend_name() in (POSTGRES, MYSQL) and "connect_timeout" not in url.query else {})
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool, connect_args=timeout)
    try:
        with engine.connect():
            pass
    finally:
        engine.dispose()


def configure(params: Params, *, create: bool = False) -> str:
    """Point MLflow at the tracking store and experiment; returns the experiment id. A store not there yet is
    created only when `create` (`use_store`)."""
    uri = use_store(params, create=create)
    name = params.tracking.experiment
    experiment = mlflow.get_experiment_by_name(name)
    if experiment is not None:
        mlflow.set_experiment(name)
        return experiment.experiment_id
    artifacts = None
    if uri.startswith("sqlite:///"):
        artifacts = (Path(uri[len("sqlite:///"):]).parent / "mlruns").as_uri()
    experiment_id = mlflow.create_experiment(name, artifact_location=artifacts)
    mlflow.set_experiment(name)
    return experiment_id


# Logged once per predict given rows without ACTIVITIES_COLUMN by a model that reads activities: its scores are
# plausible numbers, only lower, so nothing else would tell the caller (`LeadScorerModel.activities_of`).
NO_ACTIVITIES_COLUMN = (
    f"the rows have no '{ACTIVITIES_COLUMN}' column: their %d leads are scored as never active (no demo request, no "
    f"pricing view), lower than with their activities. Give each lead's activities in a column '{ACTIVITIES_COLUMN}', "
    'JSON text of a list such as [{"occurred_at": "2025-06-04", "activity": "demo_request"}] (the CRM\'s field names; '
    "empty for a lead without any); the model's input example shows it")
NOTHING_SCORED = "no row of this batch was scored: fix these rows or leave them out, and score it again"


class LeadScorerModel(mlflow.pyfunc.PythonModel):
    """Pyfunc wrapper: CRM rows in (their own column names, strings), scores out; `params={"as_of": ...}`
    scores them as of that time (default now). Their numbers are read as `leadscore score` reads a CSV's (the
    model's data.decimal_mark: "1,234,567" with point or auto): the rows are a file's as `pd.read_csv(path, dtype=str)`
    reads it, the input example the export's first leads as its file writes them. Each lead's activities come in its
    row's `activities` column (`ACTIVITIES_COLUMN`); without it every lead is scored as never active, and a warning
    is logged saying so (`NO_ACTIVITIES_COLUMN`)."""

    def load_context(self, context) -> None:
        self.scorer = joblib.load(context.artifacts["scorer"])

    def predict(self, context, model_input: pd.DataFrame, params: dict | None = None) -> pd.DataFrame:
        as_of = (params or {}).get("as_of") or None
        leads, activities, problems = self.activities_of(model_input)
        batch = self.scorer.score(leads, as_of=as_of, checked_activities=activities,
                                  decimal_mark=csv_decimal_mark(",", self.scorer.data))
        problems += batch.problems
        if problems:  # a row left out of the answer would be lost without a word: no half batch
            raise ContractError(problems, NOTHING_SCORED)
        return batch.scores

    def activities_of(self, rows: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame | None, list[Problem]]:
        """The lead rows without their `activities` column, its JSON lists as one checked activity table (each activity
        under its lead's id, as `/score` reads a request's: `serving.scoring.request_frames`) and its problems, each
        naming the lead's row and the activity's place in its list. The model learnt most from activity: without it, a
        demo request or pricing view scored as never active (on a synthetic CRM's test leads, AUC 0.70 where
        `leadscore score --activities` gives 0.77)."""
        if not self.scorer.reads_activities:  # a column of that name is the leads' own (`train.input_example`)
            return rows, None, []
        if ACTIVITIES_COLUMN not in rows.columns:
            if len(rows):
                log.warning(NO_ACTIVITIES_COLUMN, len(rows))
            return rows, None, []
        leads = rows.drop(columns=ACTIVITIES_COLUMN)
        from serving.scoring import request_frames

        lists, problems = [], []
        for row, cell in enumerate(rows[ACTIVITIES_COLUMN], start=1):
            if cell is None or (isinstance(cell, float) and pd.isna(cell)) or not str(cell).strip():
                lists.append(None)
                continue
            try:
                value = json.loads(cell)
            except (TypeError, ValueError):
                value = None
            if not isinstance(value, list) or not all(isinstance(activity, dict) for activity in value):
                problems.append(Problem("request", row, ACTIVITIES_COLUMN, "not a JSON list of activities, each an "
                                        f'object such as {{"occurred_at": "2025-06-04", "activity": "demo_request"}}: '
                                        f"{str(cell)[:80]!r}"))
            lists.append(value)
        if problems:
            return leads, None, problems
        frames = request_frames(leads.to_dict("records"), lists, self.scorer.data)
        if frames.activities is None:
            return leads, None, []
        checked, found = prepare_table(frames.activities, "activities", self.scorer.data, "request")
        origin = frames.activity_origin  # (lead position, activity position) per activity row
        problems = [dataclasses.replace(p, source=f"request row {origin[p.row - 1][0] + 1}, {ACTIVITIES_COLUMN}",
                                        row=origin[p.row - 1][1] + 1) if p.row else p for p in found]
        return leads, checked, problems


# The model's code, run by MLflow when it loads the model (mlflow.models.set_model).
_MODEL_CODE = """import mlflow

from pipelines.tracking import LeadScorerModel

mlflow.models.set_model(LeadScorerModel())
"""


def _requirements() -> list[str]:
    reqs = []
    for name in _REQUIREMENTS:
        try:
            reqs.append(f"{name}=={importlib.metadata.version(name)}")
        except importlib.metadata.PackageNotFoundError:  # pragma: no cover - every name is a dependency
            reqs.append(name)
    return reqs


def _code_sha256() -> str:
    """One hash of the code that builds features and fits models: leadscore's own modules, which change
    without a new package version in a checkout, and the libraries' versions (`_requirements`)."""
    digest = hashlib.sha256("\n".join(_requirements()).encode())
    for package in ("features", "models", "pipelines"):
        for path in sorted(Path(importlib.import_module(package).__file__).parent.glob("*.py")):
            digest.update(path.name.encode() + path.read_bytes())
    return digest.hexdigest()


def training_key(fingerprint: dict, params: Params) -> str | None:
    """One hash of what decides a model: the data fingerprint, every parameter that reaches it and the code
    (`_code_sha256`). A URL's password is not one of them (`shown_params`): rotating it alone must not retrain; nor
    are the retrain gate's, serving's, tracking's and monitor's (`config.fitting_params`), which fit nothing.

    Training is seeded, so two runs with the same key fit the same model; retrain reads it to skip
    registering a copy of the champion. None for data read from SQL: its fingerprint holds counts and
    no file hash, so an edited row would not change it.
    """
    if not any(key.startswith("sha256_") for key in fingerprint):
        return None
    inputs = {"data": fingerprint, "params": fitting_params(params), "code": _code_sha256()}
    return hashlib.sha256(json.dumps(inputs, sort_keys=True, default=str).encode()).hexdigest()


def start_run(kind: str, name: str, tags: dict[str, str] | None = None, **kwargs) -> mlflow.ActiveRun:
    """Start a run named `name` with its `kind` tag: train, evaluate, retrain, promote, rollback, audit, backtest or
    monitor, the command that logged it, so the runs list can be filtered to one (`tags.kind = "train"`) whatever
    other tags the command adds. Every run leadscore logs starts here."""
    return mlflow.start_run(run_name=name, tags={KIND: kind, **(tags or {})}, **kwargs)


def log_training_data(fingerprint: dict, params: Params) -> None:
    """Log the data fingerprint in the active run, its as-of date as a tag when dated, and its training key as a tag
    when there is one."""
    mlflow.log_dict(fingerprint, "data/fingerprint.json")
    if fingerprint.get("as_of"):
        mlflow.set_tag(AS_OF, fingerprint["as_of"])
    key = training_key(fingerprint, params)
    if key:
        mlflow.set_tag(TRAINING_KEY, key)


def log_setting_warnings(warnings: list[str]) -> None:
    """Keep in the active run what the command warned of the export against the feature settings
    (`dataset.setting_warnings`): their count as the tag `setting_warnings` ("0" when none, so runs can be filtered
    on it, as on `leakage_warnings`) and, when there is one, the sentences in ``data/setting_warnings.txt``, one a
    line. Printed only, a model trained as if no lead were ever active looks like any other in the MLflow UI."""
    mlflow.set_tag(SETTING_WARNINGS, str(len(warnings)))
    if warnings:
        mlflow.log_text("".join(f"{warning}\n" for warning in warnings), "data/setting_warnings.txt")


def log_scorer(scorer, input_example: pd.DataFrame) -> str:
    """Log the scorer as one pyfunc model in the active run; returns its model URI.

    The signature takes every input column as an optional string: the CRM's own names and types,
    so a CRM can send exactly what it stores and the scorer's own validation reports problems; a model that reads
    activities also takes each lead's in `activities` (`LeadScorerModel.activities_of`).
    `as_of` is declared as a parameter: MLflow drops (with a log line) any parameter the signature lacks.
    The project's code is not copied in (no ``code_paths``): MLflow would put that copy ahead of
    the installed packages on load, so a process would run two versions of leadscore at once.
    The model needs the leadscore package installed, as a scikit-learn model needs scikit-learn.
    It is logged as code (MLflow's "models from code"): a two-line file naming `LeadScorerModel`, not a
    cloudpickle of the wrapper, so loading runs no pickled wrapper and training prints no warning about one.
    """
    example = input_example.astype("string").astype(object)
    columns = [str(c) for c in example.columns] + ([ACTIVITIES_COLUMN] if scorer.reads_activities else [])
    signature = ModelSignature(
        inputs=Schema([ColSpec("string", c, required=False) for c in dict.fromkeys(columns)]),
        params=ParamSchema([ParamSpec("as_of", "string", None)]),
    )
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "scorer.joblib"
        joblib.dump(scorer, path)
        code = Path(tmp) / "leadscore_model.py"
        code.write_text(_MODEL_CODE)
        info = mlflow.pyfunc.log_model(
            name="model",
            python_model=str(code),
            artifacts={"scorer": str(path)},
            signature=signature,
            input_example=example,
            pip_requirements=_requirements(),
        )
    return info.model_uri


def register(model_uri: str, params: Params, run_id: str, tags: dict[str, str] | None = None) -> tuple[str, list[str]]:
    """Register a new version as `challenger`; the first version ever also becomes `champion`.

    `tags` are created with the version, with its run's id and what the run tells of its training data
    (`VERSION_TRACE`), so no failure can leave it registered without them. The registered model gets
    `MODEL_DESCRIPTION` while it has none: a description a user wrote is kept."""
    name = params.tracking.registered_model
    client = MlflowClient()
    run_tags = client.get_run(run_id).data.tags
    traced = {key: run_tags[key] for key in VERSION_TRACE if key in run_tags}
    version = mlflow.register_model(model_uri, name, tags={"run_id": run_id, **traced, **(tags or {})}).version
    if not client.get_registered_model(name).description:
        client.update_registered_model(name, description=MODEL_DESCRIPTION)
    aliases = [CHALLENGER]
    client.set_registered_model_alias(name, CHALLENGER, version)
    try:
        client.get_model_version_by_alias(name, CHAMPION)
    except mlflow.exceptions.MlflowException:
        client.set_registered_model_alias(name, CHAMPION, version)
        aliases.append(CHAMPION)
    return str(version), aliases


def version_written(text: str | int) -> str:
    """A version as every command prints it ("v3") or as its number ("3"), as the number: MLflow reserves
    aliases of the form v<number>, so "v3" can name nothing else."""
    text = str(text).strip()
    return text[1:] if text[:1] in ("v", "V") and text[1:].isdigit() else text


def registered_version(params: Params, alias: str = CHAMPION, version: str | None = None) -> ModelVersion:
    """The registry's ModelVersion that `alias` names, or that exact `version` (a lookup; nothing is loaded).

    Raises:
        LookupError: no such alias or version (with the command that creates one, or the model's aliases).
        TrackingStoreFailed: the tracking store could not be reached or failed: that is no missing model.
    """
    use_store(params)
    name = params.tracking.registered_model
    client = MlflowClient()
    try:
        return client.get_model_version(name, version) if version else client.get_model_version_by_alias(name, alias)
    except STORE_ERRORS as err:
        if not _not_registered(err):
            raise store_failure(err, tracking_uri(params)) from None
        which = f"version {version}" if version else f"alias '{alias}'"
        aliases = _aliases(client, name)
        hint = ("no model has that name yet: run `leadscore train` first" if aliases is None
                else f"its aliases are {aliases}" if aliases else "it has no alias")
        raise LookupError(f"no model '{name}' with {which} in {shown_url(tracking_uri(params))}: {hint}") from None


def _not_registered(err: BaseException) -> bool:
    """Whether the registry answered that it has no such model, version or alias (an unknown alias is a bad
    parameter to it), rather than failing to answer."""
    return getattr(err, "error_code", None) in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE")


def _aliases(client: MlflowClient, name: str) -> str | None:
    """The registered model's aliases with their versions ("champion (v2), challenger (v3)"), for an
    error about one it lacks (a typo, not a missing model); None when no model has that name."""
    try:
        model = client.get_registered_model(name)
    except STORE_ERRORS as err:
        if _not_registered(err):
            return None
        raise store_failure(err) from None
    return ", ".join(f"{alias} (v{v})" for alias, v in sorted(model.aliases.items()))


def loadable_version(params: Params, alias: str = CHAMPION, version: str | None = None) -> ModelVersion:
    """The registered version as `registered_version` finds it, once its files are known to be where MLflow keeps
    them: what loads a version (`load_scorer`, the bento's import, the service's start) asks here first.

    MLflow keeps each version's files at the absolute path they were written to (the `mlruns/` folder beside a SQLite
    store), so a project moved or copied with its store but not that folder, or with the folder deleted, still lists
    the version; loading it failed as "No such artifact: ''" or "is not a MLflow model". Files on another machine
    (an artifact server, a bucket) are MLflow's to fetch and are not checked.

    Raises:
        LookupError: as `registered_version`, or the version's files are not there (where, and what to do).
        TrackingStoreFailed: the tracking store could not be reached or failed.
    """
    found = registered_version(params, alias, version)
    name = params.tracking.registered_model
    try:
        location = MlflowClient().get_model_version_download_uri(name, found.version)
    except STORE_ERRORS as err:
        raise store_failure(err, tracking_uri(params)) from None
    if urlsplit(location).scheme not in ("file", ""):
        return found
    from mlflow.utils.file_utils import local_file_uri_to_path

    folder = Path(local_file_uri_to_path(location))
    if not (folder / "MLmodel").is_file():
        which = f"version {found.version}" + ("" if version else f" (alias '{alias}')")
        raise LookupError(
            f"the files of model '{name}' {which} are not there: MLflow keeps them in {folder}, which "
            f"{'has no MLmodel file' if folder.is_dir() else 'does not exist'}. MLflow keeps the absolute path they "
            "were written to, so a project moved or copied without its mlruns folder, or with that folder deleted, "
            "finds none: put the mlruns folder back where it was (beside the tracking store it was trained with), "
            "or train a new model with `leadscore train`")
    return found


def load_scorer(params: Params, alias: str = CHAMPION, version: str | None = None):
    """The LeadScorer registered under `alias`, or that exact `version` (a clear error when missing, or when its files
    are: `loadable_version`).

    An alias is resolved to its version first and that version is loaded, so the scorer and the
    version it reports cannot differ if the alias moves meanwhile.
    """
    configure(params)
    name = params.tracking.registered_model
    found = loadable_version(params, alias, version)
    scorer = mlflow.pyfunc.load_model(f"models:/{name}/{found.version}").unwrap_python_model().scorer
    registry = {"name": name, "version": str(found.version)}
    if not version:
        registry["alias"] = alias
    scorer.info.setdefault("registry", {}).update(registry)
    return scorer
