"""A newly promoted champion is picked up by the running service without a restart or a lost request."""

from __future__ import annotations

import secrets
import shutil
import threading
from pathlib import Path

from mlflow.tracking import MlflowClient

from pipelines import tracking
from pipelines.config import load_params
from serving.local_server import Client, params_file, start


def test_reload_swaps_the_champion_while_requests_keep_being_answered(trained, sample_params, tmp_path):
    # A private copy of the tracking store: moving the champion alias must not touch the session's.
    copy = tmp_path / "mlflow.db"
    shutil.copy(Path(sample_params.tracking.uri.removeprefix("sqlite:///")), copy)
    path = params_file(sample_params, tmp_path / "params.yaml", {
        "tracking.uri": f"sqlite:///{copy}",
        "serving.store_url": f"sqlite:///{tmp_path / 'store.db'}",
        "serving.reload_seconds": 0,  # only the endpoint reloads here, so the test controls when
    })
    params = load_params(path)
    key = secrets.token_urlsafe(16)
    env = {"LEADSCORE_PARAMS": str(path), params.serving.api_key_env: key, "BENTOML_HOME": str(tmp_path / "bentoml")}
    server = start(env, tmp_path / "server.log")
    try:
        client = Client(server.url, key)
        before = client.get("/model").json()["version"]
        assert client.post("/reload", {}).json() == {"reloaded": False, "version": before}

        tracking.configure(params)
        new_version, _ = tracking.register(trained.model_uri, params, trained.run_id)
        MlflowClient().set_registered_model_alias(params.tracking.registered_model, "champion", new_version)

        statuses, versions, stop = [], set(), threading.Event()
        lead = {"lead_id": "R-1", "created_at": "2025-12-01", "employees": 120, "country": "US"}

        def crm_traffic():
            crm = Client(server.url, key)
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
    finally:
        server.stop()
        tracking.use_store(sample_params)
