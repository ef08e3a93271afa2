"""Feedback is the closed loop's training data: a crash must not lose an event the CRM saw acknowledged."""

from __future__ import annotations

import http.client
import secrets
import threading
import time

from serving.local_server import Client, params_file, start
from serving.store import Store

CLIENTS = 4
MIN_ACKNOWLEDGED = 150


def _event(event_id: str) -> dict:
    return {"event_id": event_id, "lead_id": f"lead-{event_id}", "status": "rejected", "reason": "bad_timing",
            "decided_at": "2025-12-20T11:00:00Z"}


def test_sigkill_while_posting_loses_no_acknowledged_feedback(trained, sample_params, tmp_path):
    store_url = f"sqlite:///{tmp_path / 'store.db'}"
    key = secrets.token_urlsafe(16)
    env = {
        "LEADSCORE_PARAMS": str(params_file(sample_params, tmp_path / "params.yaml", {"serving.store_url": store_url})),
        sample_params.serving.api_key_env: key,
        "BENTOML_HOME": str(tmp_path / "bentoml"),
    }
    server = start(env, tmp_path / "server.log")
    acknowledged: list[str] = []
    failures: list[str] = []  # client-side errors: requests cut off by the kill
    unexpected: list[int] = []

    def post_events(worker: int) -> None:
        client = Client(server.url, key, timeout=10)
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
        if server.process.poll() is None:
            server.stop()
    assert len(acknowledged) >= MIN_ACKNOWLEDGED, server.log_tail()
    assert not unexpected
    assert len(failures) == CLIENTS  # every client was cut off while posting

    restarted = start(env, tmp_path / "server-restarted.log")
    try:
        stored = set(Store(store_url).feedback_frame()["event_id"])
        assert not set(acknowledged) - stored
        retry = Client(restarted.url, key).post("/feedback", _event(acknowledged[-1]))
        assert (retry.status, retry.json()["stored"]) == (200, False)
    finally:
        restarted.stop()
