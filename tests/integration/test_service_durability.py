"""Feedback is the closed loop's training data: a crash must not lose an event the CRM saw acknowledged."""

from __future__ import annotations

import http.client
import json
import re
import sqlite3
import threading
import time
import urllib.parse

import psutil

from serving.store import Store
from conftest import running_service

CLIENTS = 4
MIN_ACKNOWLEDGED = 150


def _event(event_id: str) -> dict:
    return {"event_id": event_id, "lead_id": f"lead-{event_id}", "status": "rejected", "reason": "bad_timing",
            "decided_at": "2025-12-20T11:00:00Z"}


def test_sigkill_while_posting_loses_no_acknowledged_feedback(trained, sample_params, tmp_path):
    overrides = {"serving.store_url": f"sqlite:///{tmp_path / 'store.db'}"}
    acknowledged: list[str] = []
    failures: list[str] = []  # client-side errors: requests cut off by the kill
    unexpected: list[int] = []

    with running_service(sample_params, tmp_path, overrides) as server:

        def post_events(worker: int) -> None:
            client = server.client(timeout=10)
            for i in range(5000):  # bounded; the kill ends it much earlier
                event_id = f"w{worker}-{i}"
                try:
                    reply = client.post("/feedback", _event(event_id))
                except (OSError, http.client.HTTPException) as err:
                    failures.append(f"{event_id}: {err!r}")
                    return
                if 200 <= reply.status < 300:
                    acknowledged.append(event_id)
                else:
                    unexpected.append(reply.status)

        threads = [threading.Thread(target=post_events, args=(w,)) for w in range(CLIENTS)]
        try:
            for t in threads:
                t.start()
            deadline = time.monotonic() + 60
            while len(acknowledged) < MIN_ACKNOWLEDGED and time.monotonic() < deadline:
                time.sleep(0.05)
            server.kill()  # every process of the server, SIGKILL, mid-stream
        finally:
            for t in threads:
                t.join(timeout=30)
        assert len(acknowledged) >= MIN_ACKNOWLEDGED, server.log_tail()
    assert not unexpected
    assert len(failures) == CLIENTS  # every client was cut off while posting

    with running_service(sample_params, tmp_path, overrides, log_name="server-restarted.log") as restarted:
        stored = set(Store(restarted.params.serving.store_url).feedback_frame()["event_id"])
        assert not set(acknowledged) - stored
        retry = restarted.client().post("/feedback", _event(acknowledged[-1]))
        assert (retry.status, retry.json()["stored"]) == (200, False)


def test_a_sigkill_of_the_server_process_alone_stops_its_workers_so_it_starts_again(trained, sample_params, tmp_path):
    """A supervisor may kill only the process `bentoml serve` runs as, not its workers (each in a process group of
    its own). Those workers kept answering on the port, unsupervised, and the server could not start again on it."""
    overrides = {"serving.store_url": f"sqlite:///{tmp_path / 'store.db'}"}
    with running_service(sample_params, tmp_path, overrides) as server:
        workers = psutil.Process(server.process.pid).children(recursive=True)
        server.process.kill()
        server.process.wait(timeout=10)
        _, alive = psutil.wait_procs(workers, timeout=20)
        for orphan in alive:  # this test's own processes, never left behind
            orphan.kill()
        assert workers and not alive
        port = urllib.parse.urlsplit(server.url).port

    with running_service(sample_params, tmp_path, overrides, port=port, log_name="server-restarted.log") as restarted:
        assert restarted.client().post("/feedback", _event("after-restart")).status == 201


def test_a_decision_answered_504_past_the_timeout_is_stored_once_and_its_retry_is_safe(trained, sample_params, tmp_path,
                                                                                        monkeypatch):
    """A request not answered within BentoML's traffic timeout gets BentoML's own 504, `{"error": ...}` without
    `detail`, as /docs.json and serving/README.md say (BentoML answers it outside the service's middleware). The
    decision is still stored once the service gets to it, so the CRM's retry with the same event_id is answered 200,
    never stored twice. Slow here as in production: another writer holds the store's lock (`leadscore erase`)."""
    monkeypatch.setenv("BENTOML_CONFIG_OPTIONS", "services.leadscore.traffic.timeout=1")
    store_path = tmp_path / "store.db"
    with running_service(sample_params, tmp_path, {"serving.store_url": f"sqlite:///{store_path}"}) as server:
        client = server.client()
        lock = sqlite3.connect(store_path, isolation_level=None)
        try:
            lock.execute("BEGIN IMMEDIATE")  # the service's write waits for it (its busy timeout is 30 s)
            timed_out = client.post("/feedback", _event("slow-1"))
        finally:
            lock.close()  # the open transaction is rolled back: the service's write goes ahead
        assert (timed_out.status, timed_out.headers["content-type"]) == (504, "application/json"), timed_out.body
        assert timed_out.json() == {"error": "Not able to process the request in 1 seconds"}
        documented = client.get("/docs.json").json()["info"]["description"]  # as an integrator reads it
        assert re.sub(r"in \d+ seconds", "in N seconds", json.dumps(timed_out.json())) in documented

        store = Store(server.params.serving.store_url)
        deadline = time.monotonic() + 30
        while "slow-1" not in set(store.feedback_frame()["event_id"]) and time.monotonic() < deadline:
            time.sleep(0.1)
        retry = client.post("/feedback", _event("slow-1"))
        assert (retry.status, retry.json()["stored"]) == (200, False), retry.body
        assert store.feedback_frame()["event_id"].tolist().count("slow-1") == 1
