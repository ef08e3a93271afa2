"""A newly promoted champion is picked up by the running service without a restart or a lost request."""

from __future__ import annotations

import shutil
import threading
import time
from pathlib import Path

from mlflow.tracking import MlflowClient

from pipelines import tracking
from pipelines.config import load_params
from conftest import FAST, running_service


def _private_store(sample_params, folder: Path, reload_seconds: float) -> dict:
    """Overrides serving from a private copy of the tracking store: moving the champion alias must
    not touch the session's."""
    copy = folder / "mlflow.db"
    shutil.copy(Path(sample_params.tracking.uri.removeprefix("sqlite:///")), copy)
    return {
        "tracking.uri": f"sqlite:///{copy}",
        "serving.store_url": f"sqlite:///{folder / 'store.db'}",
        "serving.reload_seconds": reload_seconds,
    }


def _promote_a_new_version(trained, params, sample_params) -> str:
    """Register the trained model again in the server's store and point the champion alias at it."""
    try:
        tracking.configure(params)
        new_version, _ = tracking.register(trained.model_uri, params, trained.run_id)
        MlflowClient().set_registered_model_alias(params.tracking.registered_model, "champion", new_version)
    finally:
        tracking.use_store(sample_params)  # this process back on the session's store
    return str(new_version)


def test_reload_swaps_the_champion_while_requests_keep_being_answered(trained, sample_params, tmp_path):
    # Only the endpoint reloads here (reload_seconds 0), so the test controls when.
    with running_service(sample_params, tmp_path, _private_store(sample_params, tmp_path, 0)) as server:
        client = server.client()
        before = client.get("/model").json()["version"]
        assert client.post("/reload", {}).json() == {"reloaded": False, "version": before}
        new_version = _promote_a_new_version(trained, server.params, sample_params)

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
        # The operator reads in the server log which model is served, from the start and after each swap.
        log = server.log_path.read_text(errors="replace")
        assert f"serving leadscore v{before} (alias champion) from the MLflow registry" in log
        assert f"now serving leadscore v{new_version} (was v{before})" in log


def test_every_worker_picks_up_a_new_champion_on_its_own(trained, sample_params, tmp_path):
    """What serving/README promises: no POST /reload needed, the alias is checked every reload_seconds."""
    with running_service(sample_params, tmp_path, _private_store(sample_params, tmp_path, 1)) as server:
        client = server.client()
        before = client.get("/model").json()["version"]
        new_version = _promote_a_new_version(trained, server.params, sample_params)
        assert new_version != before
        deadline = time.monotonic() + 15
        while client.get("/model").json()["version"] != new_version:
            assert time.monotonic() < deadline, "the new champion was not picked up within 15 s"
            time.sleep(0.2)


def test_a_reload_to_other_tiers_shows_them_at_0_and_never_takes_a_count_back(trained, sample_params, tmp_path):
    """Tiers renamed in params (A-D to hot/cold) and a model trained with them promoted: /metrics shows the new tiers
    at 0 from the reload on, as at start, so an alert on them sees the first lead; the tiers the old model gave keep
    the count they reached (a counter never goes back while its series exists), and are counted no more."""
    from pipelines.train import train

    with running_service(sample_params, tmp_path, _private_store(sample_params, tmp_path, 0)) as server:
        client = server.client()
        lead = {"lead_id": "T-1", "created_at": "2025-12-01", "employees": 120, "country": "US"}
        old_tier = client.post("/score", {"leads": [lead], "as_of": "2025-12-31"}).json()["scores"][0]["tier"]
        before = server.lead_counts()
        assert before[("leadscore_scored_leads_total", old_tier)] >= 1

        params = load_params(server.folder / "params.yaml", overrides={
            **FAST, "tiers.tiers": [{"name": "hot", "top_share": 0.2}, {"name": "cold"}]})
        try:
            retrained = train(params)
            MlflowClient().set_registered_model_alias(params.tracking.registered_model, "champion",
                                                      retrained.version)
        finally:
            tracking.use_store(sample_params)  # this process back on the session's store
        assert client.post("/reload", {}).json()["reloaded"] is True

        reloaded = server.lead_counts()
        tiers = {label: n for (metric, label), n in reloaded.items() if metric == "leadscore_scored_leads_total"}
        assert {tier: tiers.get(tier) for tier in ("hot", "cold")} == {"hot": 0, "cold": 0}
        assert {tier: tiers[tier] for tier in trained.scorer.tiers.names} == {
            tier: before[("leadscore_scored_leads_total", tier)] for tier in trained.scorer.tiers.names}

        new_tier = client.post("/score", {"leads": [lead], "as_of": "2025-12-31"}).json()["scores"][0]["tier"]
        assert new_tier in ("hot", "cold")
        changed = {key: n - reloaded.get(key, 0) for key, n in server.lead_counts().items() if n != reloaded.get(key, 0)}
        assert changed == {("leadscore_scored_leads_total", new_tier): 1}
