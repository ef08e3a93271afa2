"""A built bento is self-contained: exported, imported elsewhere, it serves without the MLflow store,
it installs the package versions the tests ran on, and it ships the OpenAPI document it serves."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path, PurePosixPath

import pandas as pd
import yaml

from pipelines.config import PROJECT_ROOT, load_params
from serving.bento import pinned_versions, requirements_path
from serving.local_server import params_file
from conftest import running_service


def _run(args: list[str], bentoml_home: Path) -> str:
    env = {**os.environ, "BENTOML_HOME": str(bentoml_home), "BENTOML_DO_NOT_TRACK": "true"}
    env.pop("MLFLOW_TRACKING_URI", None)
    done = subprocess.run([sys.executable, *args], cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done.stdout


def test_exported_bento_serves_with_the_tracking_store_moved_away(trained, sample_params, tmp_path):
    # A private copy of the tracking store, so moving it away leaves the session's store alone.
    tracking_db = Path(sample_params.tracking.uri.removeprefix("sqlite:///"))
    copy = tmp_path / "tracking" / "mlflow.db"
    copy.parent.mkdir()
    shutil.copy(tracking_db, copy)
    params = params_file(sample_params, tmp_path / "params.yaml", {
        "tracking.uri": f"sqlite:///{copy}",
        "serving.store_url": f"sqlite:///{tmp_path / 'store.db'}",
    })

    build_home, serve_home = tmp_path / "build-home", tmp_path / "serve-home"
    built = _run(["-m", "serving.bento", "--params", str(params)], build_home)
    (bento,) = json.loads(_run(["-m", "bentoml", "list", "-o", "json"], build_home))
    # The export command it suggests writes beside the user, not at / (where BentoML puts a relative path).
    assert f"bentoml export {bento['tag']} {PROJECT_ROOT / 'leadscore.bento'}`" in built
    archive = tmp_path / "leadscore.bento"
    _run(["-m", "bentoml", "export", bento["tag"], str(archive)], build_home)
    with tarfile.open(archive) as shipped:  # what the bento installs where it is deployed
        requirements = next(m for m in shipped if PurePosixPath(m.name) == PurePosixPath("env/python/requirements.txt"))
        installs = pinned_versions(shipped.extractfile(requirements).read().decode())
        openapi_yaml = shipped.extractfile(
            next(m for m in shipped if PurePosixPath(m.name) == PurePosixPath("apis/openapi.yaml"))).read().decode()
    shipped_openapi = yaml.safe_load(openapi_yaml)
    assert not re.search(r"[&*]id\d", openapi_yaml)  # YAML anchors and aliases, which some OpenAPI tools mishandle
    assert installs == pinned_versions(requirements_path().read_text())
    _run(["-m", "bentoml", "import", str(archive)], serve_home)
    shutil.rmtree(build_home)
    copy.rename(copy.with_name("moved-away.db"))

    with running_service(load_params(params), tmp_path, target=bento["tag"], bentoml_home=serve_home) as server:
        client = server.client()
        info = client.get("/model").json()
        assert (info["name"], info["version"], info["alias"]) == ("leadscore", str(trained.version), "champion")
        assert info["source"].startswith(f"bento {bento['tag']}")
        assert shipped_openapi == client.get("/docs.json").json()  # what the bento documents is what it answers
        lead = {"lead_id": "BENTO-1", "created_at": "2025-12-01", "email": "cto@granitedata.com", "employees": 400}
        reply = client.post("/score", {"leads": [lead], "as_of": "2025-12-31"})
        assert reply.status == 200, reply.body
        expected = trained.scorer.score(pd.DataFrame([lead]), as_of=pd.Timestamp("2025-12-31"))
        assert reply.json()["scores"][0]["score"] == int(expected.scores["score"].iloc[0])
    assert not copy.exists()  # the service never recreated the tracking store it was pointed at
