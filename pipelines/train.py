"""`leadscore train`: fit, evaluate against the peers, log everything to MLflow, register.

A run logs the flattened params, the data fingerprint (rows, label counts per rule, what the service's
feedback store changed in the export's outcomes, file hashes),
leakage warnings, the warnings of the export against the feature settings (`tracking.log_setting_warnings`), the comparison table and plots, and ONE pyfunc model holding the whole LeadScorer.
The new version becomes `challenger`; the very first also becomes `champion`.
"""

from __future__ import annotations

import json
import logging
import tempfile
from dataclasses import dataclass
from pathlib import Path

import mlflow
import pandas as pd
from mlflow.utils.mlflow_tags import MLFLOW_RUN_NAME

from features.phrases import phrase_templates
from models.card import log_card, model_card
from models.scorer import LeadScorer
from models.splits import Split, make_split
from models.train import fit_scorer
from pipelines import tracking
from pipelines.config import Params, flatten, reads_activities
from pipelines.dataset import (NO_FEATURES_READ, TrainingSet, assemble, open_at_ages, refuse_before_first_lead,
                               training_warnings)
from pipelines.evaluate import LEADSCORE, Evaluation, compare, evaluate_while_open, fit_peers
from pipelines.contract import ACTIVITIES
from pipelines.ingest import EXAMPLE_ROWS, CRMData, crm_column, crm_columns, example_leads

log = logging.getLogger(__name__)


@dataclass
class TrainResult:
    scorer: object
    evaluation: Evaluation
    training_set: TrainingSet
    run_id: str
    model_uri: str
    version: str
    aliases: list[str]
    split_kind: str
    warnings: list[str]  # of the export against the settings (dataset.training_warnings), logged in the run


def run_name(what: str, training_set: TrainingSet) -> str:
    """A run's name in the MLflow UI, "train v3 2025-12-31" ("evaluate challenger v3 2025-12-31"): the date its data
    was taken as of, beside the "retrain 2025-12-31" run that judged it, where MLflow would give it a random name."""
    return f"{what} {training_set.as_of:%Y-%m-%d}" if training_set.as_of is not None else what


def model_run_name(what: str, training_set: TrainingSet, registers: bool = True, version: str = "") -> str:
    """The name of a run that logs a model (train, a retrain's challenger, the cold-start peer), one rule for all:
    "retrain challenger v3 2025-12-31" once it registered version 3 ("retrain challenger 2025-12-31" until then), and
    "retrain challenger (dry run, not registered) 2025-12-31" when it registers nothing (`retrain --dry-run`), where
    a name without a number read as a version whose number was lost."""
    if not registers:
        return run_name(f"{what} (dry run, not registered)", training_set)
    return run_name(f"{what} v{version}" if version else what, training_set)


def name_registered_run(what: str, version: str, training_set: TrainingSet) -> None:
    """Rename the active run for the version it registered (`model_run_name`): the number exists only once
    registered, and without it a retrain's challenger and a plain `train` on the same export date shared one name
    in the runs list."""
    mlflow.set_tag(MLFLOW_RUN_NAME, model_run_name(what, training_set, version=version))


def input_example(training_set: TrainingSet, params: Params, rows: int = EXAMPLE_ROWS,
                  activities: bool = False) -> pd.DataFrame:
    """A few training leads under the CRM's own column names (the model's input signature): the columns its leads
    source has, not the contract's it lacks (X Education's export has no `email` or `created_at`), which the
    tables hold as empty and the signature would list as inputs of a model that never read them. Their values as
    the source holds them (`CRMData.leads_as_read`: "674" and "Select", not the cleaned 674.0 and empty), what a
    CRM sends the model; its id, e-mail, phone, company and other columns the model reads no value of made up
    (`pipelines.ingest.example_leads`), as anyone reading the run sees them. A column data.mapping names twice (the
    export's `Create Date` and the CRM API's `createdate`, for the service) is under each name the source has: the
    name the source lacks alone left the signature without the export's own, and the model refused the export.
    With `activities` (a model that reads them) the leads' activities too, in `tracking.ACTIVITIES_COLUMN`
    (`example_activities`): the example then shows the format a caller must send them in."""
    export, named = training_set.crm, _named_in_source(training_set, params)
    if export.leads_as_read is None:  # tables put together in code: their leads, made up as an export's are
        example = example_leads(pd.DataFrame({name: export.leads[column].head(rows) for column, name in named}), params)
    else:
        example = export.leads_as_read.head(rows)[[name for _, name in named]]
    if not activities:
        return example
    refuse_activities_column(training_set, params)
    return example.assign(**{tracking.ACTIVITIES_COLUMN: example_activities(export, params, rows)})


def _named_in_source(training_set: TrainingSet, params: Params) -> list[tuple[str, str]]:
    """(contract column, the CRM's name for it) of each leads column: each name the source has, where data.mapping
    gives one column two (`input_example`)."""
    header, named = training_set.crm.leads_header, []
    for column in training_set.crm.leads.columns:
        names = crm_columns(params.data, "leads", column)
        named += [(column, name) for name in (names[:1] if header is None else [n for n in names if n in header])]
    return named


def refuse_activities_column(training_set: TrainingSet, params: Params) -> None:
    """Refuse, before fitting, a leads export with a column of its own named `tracking.ACTIVITIES_COLUMN` where the
    model reads activities: the MLflow model takes each lead's activities under that name, so its rows could not tell
    the two apart (refused when the model was logged, the fit's minutes were lost)."""
    names = {name for _, name in _named_in_source(training_set, params)}
    if reads_activities(params.features, params.data) and tracking.ACTIVITIES_COLUMN in names:
        raise ValueError(
            f"the leads export has a column '{tracking.ACTIVITIES_COLUMN}', the name under which the MLflow model "
            "takes each lead's activities: its rows could not tell the two apart. Rename that column in the export (or "
            "list it in data.drop_columns and leave it out of the rows the model scores) and train again")


def example_activities(export: CRMData, params: Params, rows: int = EXAMPLE_ROWS) -> list[str | None]:
    """The activities of the export's first `rows` leads (those of `input_example`), per lead the JSON text the MLflow
    model reads (`tracking.LeadScorerModel.activities_of`), None for a lead without any: its contract fields under
    the CRM's names (`crm_column`), dates as ISO text. No lead id (the model takes each lead's from its row, whose id
    `example_leads` made up) and no personal field (a note, `ACTIVITIES.personal`): the run shows no real person's."""
    acts = export.activities
    if acts is None:
        return [None] * len(export.leads.head(rows))
    fields = [c for c in ACTIVITIES.columns if c != "lead_id" and c not in ACTIVITIES.personal and c in acts.columns]
    first = export.leads["lead_id"].head(rows)
    theirs = acts[acts["lead_id"].isin(first)]  # one pass over the activity file (13.5M rows at 1M leads)
    by_lead = {lead: [{crm_column(params.data, "activities", field): _as_text(value)
                       for field, value in activity.items() if pd.notna(value)}
                      for activity in group[fields].to_dict("records")]
               for lead, group in theirs.groupby("lead_id", sort=False, observed=True)}
    return [json.dumps(by_lead[lead]) if lead in by_lead else None for lead in first]


def _as_text(value) -> str:
    """A cleaned activity's value as an export writes it: a date at midnight as its day ("2025-06-04")."""
    if isinstance(value, pd.Timestamp):
        return str(value.date()) if value == value.normalize() else value.isoformat()
    return str(value)


def train(
    params: Params, as_of: pd.Timestamp | None = None, register: bool = True, crm: CRMData | None = None,
    what: str = "train",
) -> TrainResult:
    """Train on the export in params with the feedback store laid over it, as retrain reads them
    (`dataset.assemble`; or on `crm`, an export already loaded), and track the run, named `what` (`model_run_name`:
    a benchmark's model is no `train` run); see the module docstring."""
    phrase_templates(params.features)  # refuse to train a model whose factors could not be worded
    tracking.configure(params, create=True)
    ts = assemble(params, as_of=as_of, crm=crm)
    refuse_before_first_lead(ts)
    refuse_activities_column(ts, params)
    split = make_split(ts.created_at, pd.Series(ts.y), params.evaluate.split, params.model.seed)
    return log_trained(fit_model(ts, split, params), ts, split, params, training_warnings(ts, params), register, what=what)


def fit_model(ts: TrainingSet, split: Split, params: Params) -> LeadScorer:
    """The learned scorer on a training set (``models.train.fit_scorer``): the label policy's weights
    shape the models, the ages-open weights the calibrator. Train, retrain and the benchmark all fit
    through here, so no caller can hand the calibrator the policy weights.

    Refuses an export whose features are the same for every lead (e.g. leads with only an id and a
    date, no activities): its model would give every lead one score, ranking nobody, in tier A.
    """
    if len(ts.y) and not ts.features.shape[1]:
        raise ValueError(f"{NO_FEATURES_READ}: every lead would get the same score")
    if len(ts.y) and not any(ts.features[name].nunique(dropna=False) > 1 for name in ts.features):  # stops at the first that varies
        raise ValueError(f"every feature has one value for all {len(ts.y):,} training leads, so every lead would "
                         "get the same score; the export needs lead columns that differ between leads (industry, "
                         "employees, country, job_title, email, lead_source, ...) or an activity log")
    return fit_scorer(ts.features, ts.y, ts.weights, ts.reasons, split, params,
                      calibration_weights=ts.calibration_weights, age_days=ts.age_days,
                      open_at=lambda rows: open_at_ages(ts, rows, params.features, params.features.snapshot_days),
                      reason_spellings=ts.crm.export_spellings("reason"),
                      category_spellings=export_category_spellings(ts, params))


def export_category_spellings(ts: TrainingSet, params: Params) -> dict[str, dict[str, str]]:
    """Per lead column the features read as a category and the export holds, each value as compared -> as the
    export spells it (`CRMData.export_spellings`): what a scorer fit on `ts` keeps of its remembered values
    (`models.train.remembered_spellings`)."""
    return {column: ts.crm.export_spellings(column) for column in params.features.categorical
            if column in ts.crm.leads.columns}


def log_trained(scorer: LeadScorer, ts: TrainingSet, split: Split, params: Params, warnings: list[str],
                register: bool = True, version_tags: dict[str, str] | None = None, what: str = "train") -> TrainResult:
    """Track a fitted learned scorer as one run: data, the setting `warnings` the command gives of it
    (`dataset.training_warnings`), comparison with the peers, the model and its card; `version_tags` go on the
    registered version (`tracking.register`). The run is named `what`, the version (or that it registers none) and
    the as-of date (`model_run_name`).

    Separate from the fit so `leadscore retrain` logs the challenger it chose with
    `pipelines.retrain.fit_challenger` exactly as `leadscore train` logs its model.
    """
    for leak in ts.leaks:
        log.warning(leak.message)
    with tracking.start_run("train", model_run_name(what, ts, register)) as run:
        mlflow.log_params(tracking.mlflow_keys(flatten(params)))
        tracking.log_training_data(ts.fingerprint(params), params)
        mlflow.log_dict(ts.crm.report.as_dict(), "data/ingest_report.json")
        mlflow.log_dict(split.describe(), "data/split.json")
        mlflow.set_tags({"leakage_warnings": str(len(ts.leaks)), **split.tags()})
        if ts.leaks:
            mlflow.log_dict([leak.__dict__ for leak in ts.leaks], "data/leakage_warnings.json")
        tracking.log_setting_warnings(warnings)
        mlflow.log_metrics(tracking.mlflow_keys({f"label_rows.{k}": v for k, v in ts.labels.counts.items()}))

        peers = fit_peers(ts.features, ts.y, split, params)
        evaluation = compare({LEADSCORE: scorer, **peers}, ts.features, ts.y, split, params, ts.reasons, ts.age_days)
        evaluation.by_age, evaluation.while_open = evaluate_while_open(
            scorer, ts, split.test, params.features.snapshot_days, params.evaluate.ece_bins)
        scorer.info.update(
            {
                "metrics": evaluation.metrics(),
                "reason_metrics": evaluation.reasons,
                "peers": {name: evaluation.metrics(name) for name in peers},
                "tiers": scorer.tiers.as_dict(),
                "training_rows": len(ts.y),
                "as_of": str(ts.as_of) if ts.as_of is not None else None,
                "run_id": run.info.run_id,
            }
        )
        for name in evaluation.table.index:
            mlflow.log_metrics({f"{name}.{k}": float(v) for k, v in evaluation.metrics(name).items()})
        mlflow.log_metrics({f"test.{k}": float(v) for k, v in {**evaluation.metrics(), **evaluation.reasons}.items()})
        mlflow.log_metrics(evaluation.by_age_metrics("test"))
        with tempfile.TemporaryDirectory() as tmp:
            evaluation.write(Path(tmp), scorer, params.evaluate.ece_bins)
            (Path(tmp) / "model_info.json").write_text(json.dumps(scorer.info, indent=2, default=str))
            mlflow.log_artifacts(tmp, "evaluation")
        model_uri = tracking.log_scorer(scorer, input_example(ts, params, activities=scorer.reads_activities))
        version, aliases = ("", [])
        if register:
            version, aliases = tracking.register(model_uri, params, run.info.run_id, version_tags)
            name_registered_run(what, version, ts)
        log_card(model_card(scorer, params, evaluation=evaluation, training_set=ts, split=split, version=version), params, version)
    return TrainResult(scorer, evaluation, ts, run.info.run_id, model_uri, version, aliases, split.kind_description, warnings)
