"""The real service with its store on a real PostgreSQL (serving.store_url), as a team deploys it.

One server for the module; test_service.py checks every endpoint on the default SQLite store, this
module what differs on a database server: concurrent writers, a read-only account for the commands
that only read, a database that stops taking writes, and a start refused on an account that may not write.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pandas as pd
import pytest
from typer.testing import CliRunner

from conftest import running_service
from pipelines.cli import app
from serving.local_server import params_file
from serving.store import Store

AS_OF = "2025-12-31T00:00:00"
LEAD = {"lead_id": "PG-1", "created_at": "2025-12-01T09:00:00Z", "industry": "software",
        "activities": [{"occurred_at": "2025-12-02T10:00:00Z", "activity": "page_view"}]}


def _feedback(event_id: str, **values) -> dict:
    return {"event_id": event_id, "lead_id": "PG-1", "status": "rejected", "reason": "no_budget",
            "decided_at": "2025-12-15T14:00:00Z", **values}


@pytest.fixture(scope="module")
def server(trained, sample_params, postgres, tmp_path_factory):
    with running_service(sample_params, tmp_path_factory.mktemp("service-pg"),
                         {"serving.store_url": postgres.database()}) as srv:
        yield srv


def test_scores_and_decisions_go_to_postgres_and_a_read_only_account_exports_them(server, client, postgres, tmp_path):
    """Retries and concurrent retries of one event store it once (PostgreSQL makes the second insert wait
    for the first, then refuses it); `export-outcomes` reads the store with an account allowed SELECT only."""
    scored = client.post("/score", {"leads": [LEAD], "as_of": AS_OF})
    first, retry = client.post("/feedback", _feedback("pg-1")), client.post("/feedback", _feedback("pg-1"))
    changed = client.post("/feedback", _feedback("pg-1", status="converted", reason=None))

    def post(_) -> int:
        c = server.client()
        try:
            return c.post("/feedback", _feedback("pg-race", decided_at="2025-12-16T09:00:00Z")).status
        finally:
            c.close()

    with ThreadPoolExecutor(max_workers=10) as pool:
        statuses = list(pool.map(post, range(20)))

    assert scored.status == 200, scored.body
    assert (first.status, retry.status, changed.status) == (201, 200, 409), changed.body
    assert sorted(statuses) == [200] * 19 + [201]
    reader = postgres.reader(server.params.serving.store_url)
    store = Store(reader, read_only=True)
    assert store.latest_score("PG-1")["score"] == scored.json()["scores"][0]["score"]
    assert store.feedback_frame()["event_id"].tolist() == ["pg-1", "pg-race"]
    params = params_file(server.params, tmp_path / "params.yaml", {"serving.store_url": reader})
    result = CliRunner().invoke(app, ["export-outcomes", "--params", str(params), "--output", str(tmp_path / "out.csv")])
    assert result.exit_code == 0, result.output
    exported = pd.read_csv(tmp_path / "out.csv")
    assert exported[["lead_id", "status", "decided_at"]].values.tolist() == [["PG-1", "rejected", "2025-12-16 09:00:00"]]


def test_a_postgres_store_that_stops_taking_writes_answers_503_saying_why_and_the_service_recovers(
        server, client, postgres):
    """A failover to a read-only replica: each decision is refused with a 503 naming the store and the
    database's reason, nothing stored; once the database takes writes again, so does the service (its
    pooled connections, closed by the switch, are replaced)."""
    url = server.params.serving.store_url
    postgres.set_read_only(url, True)
    try:
        refused = client.post("/feedback", _feedback("pg-read-only"))
    finally:
        postgres.set_read_only(url, False)

    assert refused.status == 503, refused.body
    assert refused.json() == {"error": f"cannot write to the store {Store(url, read_only=True).name}: cannot execute "
                                       "INSERT in a read-only transaction. Nothing of this request was stored; send it "
                                       "again once the store takes writes (the service's account, or SQLite file, must "
                                       "be allowed to write).", "detail": []}
    assert "pg-read-only" not in Store(url, read_only=True).feedback_frame()["event_id"].tolist()
    assert client.post("/feedback", _feedback("pg-read-only")).status == 201


def test_the_service_refuses_to_start_in_one_line_on_a_postgres_account_that_may_only_read(
        trained, sample_params, postgres, tmp_path):
    url = postgres.database()
    Store(url).add_feedback(_feedback("kept"))
    reader = postgres.reader(url)

    with pytest.raises(RuntimeError, match="exited with code") as refused:
        with running_service(sample_params, tmp_path, {"serving.store_url": reader}, timeout=60):
            pass

    log = str(refused.value)
    (line,) = [line for line in log.splitlines() if "leadscore refuses to start" in line]
    assert (f"leadscore refuses to start: cannot open the store {Store(reader, read_only=True).name} for writing: "
            "permission denied for table ") in line
    assert line.endswith("work with a read-only account.") and "Traceback" not in log
    assert Store(url).feedback_frame()["event_id"].tolist() == ["kept"]


def test_the_running_service_goes_on_after_forget_erases_a_lead_from_its_store(server, client, tmp_path):
    """The privacy officer runs `leadscore forget` against the store the service is writing: the lead's card is gone,
    other leads' stay, and the service scores and takes decisions as before, the erased lead's too if the CRM sends it."""
    ana = {**LEAD, "lead_id": "PG-ANA", "email": " Ana.Ruiz@Acme.com"}
    assert client.post("/score", {"leads": [ana, {**LEAD, "lead_id": "PG-BOB"}], "as_of": AS_OF}).status == 200
    assert client.post("/feedback", _feedback("pg-ana", lead_id="PG-ANA")).status == 201
    params = params_file(server.params, tmp_path / "params.yaml")
    result = CliRunner().invoke(app, ["forget", "--params", str(params), "--email", "ana.ruiz@acme.com"])
    assert result.exit_code == 0, result.output
    assert "score_log: deleted 1 row(s)" in result.output and "feedback: deleted 1 row(s)" in result.output

    assert client.get("/leads/PG-ANA").status == 404
    assert client.get("/leads/PG-BOB").status == 200
    assert client.post("/score", {"leads": [ana], "as_of": AS_OF}).status == 200
    assert client.post("/feedback", _feedback("pg-ana-2", lead_id="PG-ANA")).status == 201
    assert client.get("/leads/PG-ANA").status == 200
