"""A built bento is self-contained: exported, imported elsewhere, it serves without the MLflow store,
it installs the package versions the tests ran on, and it ships the OpenAPI document it serves. It does not
keep the score log and sales decisions inside its own folder. A build it cannot do is refused in a line saying why."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import pandas as pd
import pytest
import yaml

from pipelines.config import DEFAULT_PARAMS, PARAMS_ENV, PROJECT_ROOT, load_params
from serving.bento import pinned_versions, requirements_path
from serving.local_server import start
from conftest import moved_tracking_store, running_service


def _run(args: list[str], bentoml_home: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "BENTOML_HOME": str(bentoml_home), "BENTOML_DO_NOT_TRACK": "true"}
    env.pop("MLFLOW_TRACKING_URI", None)
    done = subprocess.run([sys.executable, *args], cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done


@dataclass(frozen=True)
class Shipped:
    """A bento built by `python -m serving.bento` and exported, its BentoML home and tracking store gone since."""

    tag: str
    archive: Path
    params: Path  # built with, and packaged: its store_url is the default, relative to the file, so inside the bento
    built: subprocess.CompletedProcess
    tracking_db: Path  # where the tracking store was: moved away


@pytest.fixture(scope="module")
def shipped(trained, sample_params, tmp_path_factory) -> Shipped:
    """Built once for the module: building is slow."""
    folder = tmp_path_factory.mktemp("shipped")
    # A private copy of the tracking store, so moving it away leaves the session's store alone.
    tracking_db = Path(sample_params.tracking.uri.removeprefix("sqlite:///"))
    copy = folder / "tracking" / "mlflow.db"
    copy.parent.mkdir()
    shutil.copy(tracking_db, copy)
    params = folder / "params.yaml"  # as a user writes one: no base_dir, so its relative paths are read beside it
    raw = sample_params.model_dump(mode="json", exclude={"base_dir"})
    raw["tracking"]["uri"] = f"sqlite:///{copy}"
    raw["serving"]["store_url"] = "sqlite:///leadscore_store.db"
    params.write_text(yaml.safe_dump(raw, sort_keys=False))
    build_home = folder / "build-home"
    built = _run(["-m", "serving.bento", "--params", str(params)], build_home)
    (bento,) = json.loads(_run(["-m", "bentoml", "list", "-o", "json"], build_home).stdout)
    archive = folder / "leadscore.bento"
    _run(["-m", "bentoml", "export", bento["tag"], str(archive)], build_home)
    shutil.rmtree(build_home)
    copy.rename(copy.with_name("moved-away.db"))
    return Shipped(bento["tag"], archive, params, built, copy)


def test_exported_bento_serves_with_the_tracking_store_moved_away(trained, shipped, tmp_path):
    # The export command it suggests writes beside the user, not at / (where BentoML puts a relative path).
    assert f"bentoml export {shipped.tag} {PROJECT_ROOT / 'leadscore.bento'}`" in shipped.built.stdout
    with tarfile.open(shipped.archive) as archive:  # what the bento installs where it is deployed
        requirements = next(m for m in archive if PurePosixPath(m.name) == PurePosixPath("env/python/requirements.txt"))
        installs = pinned_versions(archive.extractfile(requirements).read().decode())
        openapi_yaml = archive.extractfile(
            next(m for m in archive if PurePosixPath(m.name) == PurePosixPath("apis/openapi.yaml"))).read().decode()
        packaged = archive.extractfile(
            next(m for m in archive if PurePosixPath(m.name) == PurePosixPath("src/params.yaml"))).read().decode()
    assert packaged == shipped.params.read_text()  # served without LEADSCORE_PARAMS, it reads what it was built with
    shipped_openapi = yaml.safe_load(openapi_yaml)
    assert not re.search(r"[&*]id\d", openapi_yaml)  # YAML anchors and aliases, which some OpenAPI tools mishandle
    assert installs == pinned_versions(requirements_path().read_text())
    serve_home = tmp_path / "serve-home"
    _run(["-m", "bentoml", "import", str(shipped.archive)], serve_home)

    outside = {"serving.store_url": f"sqlite:///{tmp_path / 'store.db'}"}
    with running_service(load_params(shipped.params), tmp_path, outside, target=shipped.tag,
                         bentoml_home=serve_home) as server:
        client = server.client()
        info = client.get("/model").json()
        assert (info["name"], info["version"], info["alias"]) == ("leadscore", str(trained.version), "champion")
        assert info["source"].startswith(f"bento {shipped.tag}")
        assert shipped_openapi == client.get("/docs.json").json()  # what the bento documents is what it answers
        lead = {"lead_id": "BENTO-1", "created_at": "2025-12-01", "email": "cto@granitedata.com", "employees": 400}
        reply = client.post("/score", {"leads": [lead], "as_of": "2025-12-31"})
        assert reply.status == 200, reply.body
        expected = trained.scorer.score(pd.DataFrame([lead]), as_of=pd.Timestamp("2025-12-31"))
        assert reply.json()["scores"][0]["score"] == int(expected.scores["score"].iloc[0])
    assert not shipped.tracking_db.exists()  # the service never recreated the tracking store it was pointed at


def test_a_bento_keeping_its_store_inside_its_own_folder_is_refused(shipped, tmp_path):
    """Served with the params.yaml it packages, the default relative SQLite store_url lands in the bento's folder:
    the score log and the sales decisions would go with the bento (the next one starts empty, `bentoml delete`
    deletes them). The builder says so; the service refuses to start, creating nothing there."""
    serve_home = tmp_path / "serve-home"
    _run(["-m", "bentoml", "import", str(shipped.archive)], serve_home)
    name, version = shipped.tag.split(":")
    inside = serve_home / "bentos" / name / version / "src"
    fix = f"Serve with {PARAMS_ENV} naming a params file whose serving.store_url is an absolute SQLite path"
    (warning,) = [line for line in shipped.built.stderr.splitlines() if line.startswith("warning: ")]
    assert warning.startswith(f"warning: served without {PARAMS_ENV}, the bento refuses to start: the store ")
    assert fix in warning
    assert f"serve it with `{PARAMS_ENV}=<that params file> bentoml serve {shipped.tag}`" in shipped.built.stdout

    packaged = load_params(inside / "params.yaml")
    env = {PARAMS_ENV: "", "BENTOML_HOME": str(serve_home), packaged.serving.api_key_env: "a-key"}
    with pytest.raises(RuntimeError, match="exited with code") as refused:
        start(env, tmp_path / "server.log", target=shipped.tag, timeout=60)

    (line,) = [line for line in str(refused.value).splitlines() if "leadscore refuses to start" in line]
    assert line.startswith(f"leadscore refuses to start: the store {inside / 'leadscore_store.db'} (serving.store_url) "
                           f"lies inside the folder of bento {shipped.tag}, ")
    assert fix in line and "Traceback" not in str(refused.value)
    assert not list(inside.glob("leadscore_store.db*"))


def _refused(args: list[str], tmp_path: Path, **env: str) -> subprocess.CompletedProcess:
    """`python -m serving.bento` run where it refuses before importing or building anything."""
    home = tmp_path / "bentoml-home"
    env = {**os.environ, "BENTOML_HOME": str(home), "BENTOML_DO_NOT_TRACK": "true", **env}
    done = subprocess.run([sys.executable, "-m", "serving.bento", *args], cwd=PROJECT_ROOT, env=env,
                          capture_output=True, text=True, timeout=120)
    assert "Traceback" not in done.stdout + done.stderr
    assert not list(home.glob("models/*")) and not list(home.glob("bentos/*"))
    return done


def test_building_without_a_model_under_the_alias_is_refused_in_one_line(tmp_path):
    """A tracking store where no model is registered (a fresh one, or the model trained into another store): the
    builder says so and what to do in one line, as `leadscore` commands and the service do, not a traceback."""
    from mlflow import MlflowClient

    uri = f"sqlite:///{tmp_path / 'empty.db'}"
    MlflowClient(uri).search_registered_models()  # an MLflow store with no model; its creation logs nothing later
    done = _refused([], tmp_path, MLFLOW_TRACKING_URI=uri)
    assert done.returncode == 1
    assert done.stderr == (f"leadscore refuses to build the bento: no model 'leadscore' with alias 'champion' in {uri}: "
                           "no model has that name yet: run `leadscore train` first\n")


@pytest.mark.parametrize("problem", ["missing", "unknown key"])
def test_building_with_a_refused_params_file_says_why(problem, tmp_path):
    """A params file that is not there or has a setting it does not know is refused as `leadscore` refuses it: the
    file and the problem, exit code 2."""
    params = tmp_path / "params.yaml"
    if problem == "unknown key":
        raw = yaml.safe_load(DEFAULT_PARAMS.read_text())
        raw["serving"]["alais"] = "champion"
        params.write_text(yaml.safe_dump(raw, sort_keys=False))
    done = _refused(["--params", str(params)], tmp_path)
    assert done.returncode == 2
    assert done.stderr == ("leadscore refuses to build the bento: " + (
        f"params file not found: {params}\n" if problem == "missing"
        else f"{params}: 1 invalid setting(s)\n  - serving.alais: unknown key (check spelling)\n"))


def test_building_with_the_models_files_gone_is_refused_in_one_line(trained, sample_params, tmp_path):
    """A store whose mlruns/ folder is gone (the project moved or copied without it): the builder says the model's
    files are missing, where MLflow keeps them and what to do, as `leadscore score` does, not BentoML's 'is not a
    MLflow model' traceback."""
    uri = moved_tracking_store(sample_params, tmp_path)
    shutil.rmtree(tmp_path / "tracking" / "mlruns")
    done = _refused([], tmp_path, MLFLOW_TRACKING_URI=uri)
    assert done.returncode == 1
    assert done.stderr.startswith("leadscore refuses to build the bento: the files of model 'leadscore' version ")
    assert f"(alias 'champion') are not there: MLflow keeps them in {tmp_path / 'tracking' / 'mlruns'}/" in done.stderr
    assert done.stderr.endswith("or train a new model with `leadscore train`\n") and done.stderr.count("\n") == 1
