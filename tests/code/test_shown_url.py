"""A database or tracking server's password never reaches a terminal, a CI log or an MLflow run."""

from __future__ import annotations

import pytest

from pipelines.config import PROJECT_ROOT, flatten, load_params, shown_url


@pytest.mark.parametrize(("url", "shown"), [
    ("postgresql+psycopg://crm:s3cr3t@db.example.com:5432/crm?sslmode=require",
     "postgresql+psycopg://crm:***@db.example.com:5432/crm?sslmode=require"),
    # SQLAlchemy reads a raw / or @ in a password too: none of it is shown
    ("postgresql://crm:s3/cr@t@db.example.com/crm", "postgresql://crm:***@db.example.com/crm"),
    ("https://ops:s3cr3t@mlflow.example.com/", "https://ops:***@mlflow.example.com/"),
    ("postgresql://crm@db.example.com/crm", "postgresql://crm@db.example.com/crm"),
    ("https://mlflow.example.com:5000/mlflow", "https://mlflow.example.com:5000/mlflow"),
    ("sqlite:///file:store.db?mode=ro&uri=true", "sqlite:///file:store.db?mode=ro&uri=true"),
    ("databricks://scope:prefix", "databricks://scope:prefix"),
    # a credential in the query, in any letter case; the other parameters kept
    ("postgresql://crm@db.example.com/crm?sslmode=require&Password=s3cr3t",
     "postgresql://crm@db.example.com/crm?sslmode=require&Password=***"),
    ("snowflake://crm@acct/db?warehouse=wh&token=s3cr3t&PWD=s3cr3t",
     "snowflake://crm@acct/db?warehouse=wh&token=***&PWD=***"),
    ("https://mlflow.example.com/?access_token=s3cr3t&client_secret=s3cr3t&api_key=s3cr3t&sig=s3cr3t#runs",
     "https://mlflow.example.com/?access_token=***&client_secret=***&api_key=***&sig=***#runs"),
    # a web address's user alone is a token (GitHub, Databricks); a database's user is a name
    ("https://dapi0123s3cr3t@mlflow.example.com/", "https://***@mlflow.example.com/"),
    ("HTTP://s3cr3t@127.0.0.1:5000", "HTTP://***@127.0.0.1:5000"),
    # not a URL (flatten shows every param through shown_url): a query's text is kept as written
    ("SELECT * FROM leads WHERE note <> '?token=x'", "SELECT * FROM leads WHERE note <> '?token=x'"),
])
def test_a_url_is_shown_with_its_scheme_user_host_and_path_but_not_its_password(url, shown):
    assert shown_url(url) == shown


def test_the_params_a_run_logs_to_mlflow_hold_no_password():
    params = load_params(PROJECT_ROOT / "params.yaml", overrides={
        "data.sql_url": "postgresql://crm:s3cr3t@crm.example.com/crm",
        "serving.store_url": "postgresql+psycopg://svc:s3cr3t@db.example.com/leadscore",
        "tracking.uri": "https://ops:s3cr3t@mlflow.example.com"})

    logged = flatten(params)

    assert not [key for key, value in logged.items() if "s3cr3t" in value]
    assert logged["data.sql_url"] == "postgresql://crm:***@crm.example.com/crm"
    assert logged["serving.store_url"] == "postgresql+psycopg://svc:***@db.example.com/leadscore"
    assert logged["tracking.uri"] == "https://ops:***@mlflow.example.com"
