"""The served model as a BentoML model, so a built bento serves without the MLflow tracking store.

`python -m serving.bento` imports the version the registry alias names (params serving.alias of
tracking.registered_model) into the BentoML model store — name, version and alias kept as labels —
and builds the bento from bentofile.yaml, which references it as `<name>:latest`. `bentoml export`
then bundles bento and model into one file that serves where MLflow is unreachable.
"""

from __future__ import annotations

import argparse

import bentoml

from models.scorer import LeadScorer
from pipelines import tracking
from pipelines.config import PROJECT_ROOT, Params, load_params


def bento_model_name(params: Params) -> str:
    """The BentoML model name (BentoML tags are lower case)."""
    return params.tracking.registered_model.lower()


def import_served_model(params: Params) -> bentoml.Model:
    """Copy the registry version that params.serving.alias names into the BentoML model store.

    Raises:
        LookupError: no such alias in the registry.
    """
    name, alias = params.tracking.registered_model, params.serving.alias
    version = tracking.registered_version(params, alias)
    return bentoml.mlflow.import_model(
        bento_model_name(params),
        f"models:/{name}/{version.version}",  # the exact version: the alias may move meanwhile
        labels={"registered_model": name, "version": str(version.version), "alias": alias},
        metadata={"mlflow_run_id": version.run_id or ""},  # no tracking URI: it may hold credentials
    )


def bento_model_tag(bento: bentoml.Bento, params: Params) -> bentoml.Tag:
    """The tag of the model a built bento packages.

    Raises:
        LookupError: the bento holds no model of that name.
    """
    name = bento_model_name(params)
    tags = [m.tag for m in bento.info.all_models if m.tag.name == name]
    if not tags:
        raise LookupError(f"bento {bento.tag} holds no model named {name!r}: list {name}:latest under `models` in "
                          "bentofile.yaml and rebuild with `python -m serving.bento`")
    return tags[0]


def load_bento_scorer(bento: bentoml.Bento, params: Params) -> LeadScorer:
    """The LeadScorer packaged in a built bento, with its registry identity from the model's labels."""
    stored = bentoml.models.get(bento_model_tag(bento, params))
    scorer = bentoml.mlflow.load_model(stored).unwrap_python_model().scorer
    labels = stored.info.labels
    scorer.info["registry"] = {
        "name": labels.get("registered_model", params.tracking.registered_model),
        "version": labels.get("version", ""),
        "alias": labels.get("alias", ""),
        "bento_model": str(stored.tag),
    }
    return scorer


def main() -> None:
    parser = argparse.ArgumentParser(description="Import the served model into BentoML and build the bento.")
    parser.add_argument("--params", help="params file (default: the project's params.yaml)")
    args = parser.parse_args()
    params = load_params(args.params)
    model = import_served_model(params)
    print(f"imported {model.tag} ({model.info.labels})")
    bento = bentoml.bentos.build_bentofile(str(PROJECT_ROOT / "bentofile.yaml"), build_ctx=str(PROJECT_ROOT))
    packaged = bento_model_tag(bento, params)
    if packaged != model.tag:
        raise SystemExit(f"bento {bento.tag} packages {packaged}, not the model just imported ({model.tag}): "
                         f"bentofile.yaml `models` must list {model.tag.name}:latest")
    print(f"built {bento.tag}: serve it with `bentoml serve {bento.tag}`, or `bentoml export {bento.tag} leadscore.bento`")


if __name__ == "__main__":
    main()
