"""A newly promoted champion is picked up by the running service without a restart or a lost request."""

from __future__ import annotations

import shutil
import threading
from pathlib import Path

from mlflow.tracking import MlflowClient

from pipelines import tracking
from conftest import running_service


def test_reload_swaps_the_champion_while_requests_keep_being_answered(trained, sample_params, tmp_path):
    # A private copy of the tracking store: moving the champion alias must not touch the session's.
    copy = tmp_path / "mlflow.db"
    shutil.copy(Path(sample_params.tracking.uri.removeprefix("sqlite:///")), copy)
    overrides = {
        "tracking.uri": f"sqlite:///{copy}",
        "serving.store_url": f"sqlite:///{tmp_path / 'store.db'}",
        "serving.reload_seconds": 0,  # only the endpoint reloads here, so the test controls when
    }
    with running_service(sample_params, tmp_path, overrides) as server:
        params = server.params
        client = server.client()
        before = client.get("/model").json()["version"]
        assert client.post("/reload", {}).json() == {"reloaded": False, "version": before}

        try:
            tracking.configure(params)
            new_version, _ = tracking.register(trained.model_uri, params, trained.run_id)
            MlflowClient().set_registered_model_alias(params.tracking.registered_model, "champion", new_version)
        finally:
            tracking.use_store(sample_params)  # this process back on the session's store

        statuses, versions, stop = [], set(), threading.Event()
        lead = {"lead_id": "R-1", "created_at": "2025-12-01", "employees": 120, "country": "US"}

        def crm_traffic():
            crm = server.client()
            while not stop.is_set():
                reply = crm.post("/score", {"leads": [lead], "as_of": "2025-12-31"})
                statuses.append(reply.status)
                if reply.status == 200:
                    versions.add(reply.json()["scores"][0]["model_version"])

        sender = threading.Thread(target=crm_traffic)
        sender.start()
        try:
            reloaded = client.post("/reload", {}).json()
            for _ in range(300):  # keep traffic flowing until it is answered by the new model
                if new_version in versions:
                    break
                threading.Event().wait(0.1)
        finally:
            stop.set()
            sender.join(timeout=60)
        assert reloaded == {"reloaded": True, "version": new_version}
        assert client.get("/model").json()["version"] == new_version
        assert statuses and set(statuses) == {200}, statuses
        assert versions == {before, new_version}
