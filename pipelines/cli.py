"""The `leadscore` command line: one command per step, each a thin shell over a plain function."""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path
from typing import Annotated, Optional

import pandas as pd
import typer

from pipelines.config import ParamsError, Params, load_params

app = typer.Typer(help="Predictive lead scoring trained on your CRM's closed loop.", no_args_is_help=True)

ParamsOption = Annotated[Optional[Path], typer.Option("--params", "-p", help="Params file (default: the project's params.yaml).")]
LeadsOption = Annotated[Optional[str], typer.Option("--leads", help="Override data.leads (file path, or table/query with data.sql_url).")]
AsOfOption = Annotated[Optional[str], typer.Option("--as-of", help="Treat this date as 'now' (default: the export's latest lead creation or decision).")]


@app.callback()
def _main(verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log progress details.")] = False) -> None:
    # Before any command imports LightGBM: idle OpenMP threads sleep instead of spinning, which on a
    # busy machine made training several times slower (see pipelines/bench.py).
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s")


def _params(path: Path | None, leads: str | None = None) -> Params:
    try:
        return load_params(path, overrides={"data.leads": leads} if leads else None)
    except ParamsError as err:
        typer.secho(str(err), fg="red", err=True)
        raise typer.Exit(2) from None


def _as_of(value: str | None, export: Params | None = None) -> pd.Timestamp | None:
    """--as-of as naive UTC, like the export's dates it is compared with.

    `export`: the params of a command whose --as-of dates the export only. For an undated export the
    date is refused rather than silently ignored: the user would believe the run was as of it.
    """
    from pipelines.ingest import as_of_time, now_if_after

    if value is None:
        return None
    if export is not None and not export.data.dated:
        raise typer.BadParameter("the export is undated (data.dated is false): there is no date to read it as of; "
                                 "leave --as-of out", param_hint="--as-of")
    try:  # read as a lead's created_at is; "" (an unset shell variable) is no date
        stamp = as_of_time(value)
    except ValueError as err:
        raise typer.BadParameter(str(err), param_hint="--as-of") from None
    if (now := now_if_after(stamp)) is not None:  # as the service refuses a request's as_of
        raise typer.BadParameter(f"{value!r} is in the future (now is {now:%Y-%m-%d %H:%M} UTC): a run counts what has "
                                 "happened by the date it is as of; leave --as-of out to run as of now",
                                 param_hint="--as-of")
    return stamp


def _fail(err: Exception | str) -> None:
    if "pipelines.tracking" in sys.modules:  # else no command used MLflow yet (`_tracking_errors`)
        from pipelines import tracking

        if isinstance(err, tracking.STORE_ERRORS):  # MLflow's message and traceback would show the store's password
            if not tracking.raised_by_mlflow(err):  # a database or HTTP error our own code let through: a bug
                raise err
            err = tracking.store_failure(err)
    if isinstance(err, (KeyError, IndexError)):  # LookupErrors that are bugs, not bad input: keep the traceback
        raise err
    typer.secho(str(err), fg="red", err=True)
    raise typer.Exit(1) from None


def _out_folder(out: Path) -> None:
    """Check the --out folder can be written before any work: a file in its place (or on its path) or no right
    to write there would otherwise fail with a traceback after the run was logged to MLflow. Nothing is made
    here (the command makes the folder when it writes), so a refused run leaves no empty folder behind."""
    existing = out
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if existing == out and out.is_file():
        _fail(f"--out: {out} is a file; name a folder to write into")
    if existing.is_file():
        _fail(f"--out: cannot write into {out}: a folder on its path is a file")
    if not os.access(existing, os.W_OK | os.X_OK):
        _fail(f"--out: cannot write into {out}: {existing} is not writable")


def _out_file(out: Path, example: str) -> None:
    """Check the --out file's place before any work (`_out_folder`); a folder there is refused by name."""
    if out.is_dir():
        _fail(f"--out: {out} is a folder; name the file to write in it, e.g. {out / example}")
    _out_folder(out.parent)


def _input_errors() -> tuple[type[Exception], ...]:
    """What a command reports as one red line instead of a traceback: a refused export or params value, a
    missing file, no such registered model or alias, a feedback store or MLflow tracking store that cannot be
    reached or read (imported when an error is being handled, so `--help` stays fast). KeyError and IndexError
    are LookupErrors too, but bugs: `_fail` keeps their traceback."""
    from pipelines.ingest import ContractError
    from serving.store import StoreReadFailed, StoreUnreachable

    return (LookupError, ContractError, FileNotFoundError, ValueError, StoreUnreachable, StoreReadFailed,
            *_tracking_errors())


def _tracking_errors() -> tuple[type[Exception], ...]:
    """What the MLflow tracking store's failures are raised as (`tracking.STORE_ERRORS`, which `_fail` words,
    TrackingStoreFailed); none before a command used it, so an error then does not wait seconds for MLflow's import."""
    if "pipelines.tracking" not in sys.modules:
        return ()
    from pipelines.tracking import STORE_ERRORS, TrackingStoreFailed

    return (*STORE_ERRORS, TrackingStoreFailed)


@app.command("sample-data")
def sample_data(
    leads: Annotated[int, typer.Option(min=0, help="Number of leads.")] = 20_000,
    seed: Annotated[int, typer.Option(help="Random seed (same seed, same data).")] = 7,
    out: Annotated[Path, typer.Option(help="Output folder.")] = Path("data/sample"),
    fmt: Annotated[str, typer.Option("--format", help="csv or parquet.")] = "csv",
    quarters: Annotated[int, typer.Option(min=1, help="Quarters of history.")] = 8,
) -> None:
    """Write a seeded synthetic CRM (leads, activities, outcomes with reason codes)."""
    from pipelines.synthetic import generate_crm, write_crm

    try:
        tables = generate_crm(leads, seed=seed, quarters=quarters)
        # The leads sales still has to work: what a CRM would send for scoring today.
        open_ids = tables["outcomes"].loc[tables["outcomes"]["status"] == "open", "lead_id"]
        tables["open_leads"] = tables["leads"][tables["leads"]["lead_id"].isin(open_ids)]
        paths = write_crm(tables, out, fmt=fmt)
    except (FileExistsError, ValueError) as err:
        _fail(err)
    except OSError as err:  # e.g. a read-only or system folder
        _fail(f"--out: cannot write the sample into {out}: {err.strerror or err}")
    for name, frame in tables.items():
        label = name.replace("_", " ")
        typer.echo(f"{label:<11} {len(frame):>10,} rows -> {paths[name]}")


@app.command()
def features(params: ParamsOption = None, leads: LeadsOption = None, as_of: AsOfOption = None) -> None:
    """Inspect the training data: ingest report, label counts per rule, feature list, leakage check."""
    from features.build import feature_catalog
    from pipelines.dataset import assemble, refuse_before_first_lead, training_warnings

    p = _params(params, leads)
    try:
        ts = assemble(p, as_of=_as_of(as_of, p))
        refuse_before_first_lead(ts)
    except _input_errors() as err:
        _fail(err)
    typer.echo("== ingest")
    for line in ts.crm.report.lines():
        typer.echo(f"  {line}")
    typer.echo(f"  {ts.crm.feedback.line()}")
    typer.echo(f"== labels (as of {ts.as_of})" if ts.as_of is not None else "== labels (undated export)")
    for line in ts.labels.lines():
        typer.echo(f"  {line}")
    if len(ts.y):
        typer.echo(f"  training rows: {len(ts.y):,}  positives: {int(ts.y.sum()):,} ({ts.y.mean():.1%})")
    else:
        typer.secho("  training rows: 0 (the label rules above left every lead out)", fg="yellow")
    typer.echo(f"== features ({ts.features.shape[1]})")
    for feature in feature_catalog(p.features):
        filled = f"{ts.features[feature.name].notna().mean():6.1%}" if len(ts.y) else "     -"
        typer.echo(f"  {feature.name:<32} {feature.kind:<12} filled {filled}")
    _say_warnings(training_warnings(ts, p, problems_listed=True), indent="  ")
    typer.echo("== leakage check")
    for leak in ts.leaks or []:
        typer.secho(f"  WARNING {leak.message}", fg="yellow")
    if not ts.leaks:
        typer.echo(f"  no single feature reaches AUC {p.features.leakage_auc}")


@app.command()
def train(params: ParamsOption = None, leads: LeadsOption = None, as_of: AsOfOption = None) -> None:
    """Train, compare against the peers on the same split, log to MLflow and register as challenger."""
    from pipelines.train import train as run_training

    p = _params(params, leads)
    try:
        result = run_training(p, as_of=_as_of(as_of, p))
    except _input_errors() as err:
        _fail(err)
    ts = result.training_set
    typer.echo(ts.crm.feedback.line())
    for line in ts.labels.lines():
        typer.echo(f"label rule {line}")
    typer.echo(f"trained on {len(ts.y):,} labelled leads ({int(ts.y.sum()):,} conversions); {result.split_kind} split")
    for leak in ts.leaks:
        typer.secho(f"WARNING {leak.message}", fg="yellow")
    _say_warnings(result.warnings)
    typer.echo("\ntest-set comparison (same rows for every scorer):")
    _say_evaluation(result.evaluation)
    if result.scorer.info.get("no_reason_model"):
        typer.secho(f"\nno likely rejection reason model (model.reason_model is on): {result.scorer.info['no_reason_model']}; "
                    "scores come without a likely rejection reason", fg="yellow")
    typer.echo(f"\nMLflow run {result.run_id}; model {p.tracking.registered_model} v{result.version} "
               f"aliases {', '.join(result.aliases)}")
    if "champion" not in result.aliases:
        typer.echo(f"next: leadscore evaluate compares it with the champion; "
                   f"leadscore promote --version {result.version} --reason \"...\" serves it")


def _say_warnings(warnings: list[str], indent: str = "") -> None:
    """What features, train, evaluate, audit and backtest say of the export against the settings
    (`dataset.training_warnings`, `dataset.setting_warnings`), worded as retrain words them."""
    for warning in warnings:
        typer.secho(f"{indent}WARNING {warning}", fg="yellow")


def _say_evaluation(evaluation) -> None:
    """What train and evaluate print of an evaluation: peers, tiers, calibration by age, reasons."""
    from pipelines.evaluate import format_table, while_open_line

    typer.echo(format_table(evaluation.table))
    typer.echo("\nconversion per tier (test rows):")
    typer.echo(evaluation.tiers.to_string(na_rep="-", formatters={  # "-": no test lead in that tier
        "share": "{:.1%}".format, "conversions": "{:,.0f}".format, "conversion_rate": "{:.3f}".format}))
    if not evaluation.by_age.empty:
        typer.echo("\ncalibration by lead age (test leads still open at each age, scored as of then):")
        typer.echo(evaluation.by_age.to_string(index=False, float_format=lambda v: f"{v:.3f}",
                                               formatters={"age_days": "{:g}".format}))
        if evaluation.while_open:
            typer.echo(while_open_line(evaluation.while_open))
    metrics = evaluation.reasons
    if metrics:
        typer.echo(f"\nlikely rejection reason (test rows, {int(metrics['reason_rows']):,} rejected leads with a known reason): "
                   f"top-1 {metrics['reason_top1']:.3f} vs {metrics['reason_top1_constant_guess']:.3f} always naming "
                   f"the most common reason; log loss {metrics['reason_log_loss']:.3f}")


@app.command()
def evaluate(
    alias: Annotated[str, typer.Option(help="Registry alias to evaluate (compared with the champion).")] = "challenger",
    params: ParamsOption = None,
    leads: LeadsOption = None,
    as_of: AsOfOption = None,
) -> None:
    """Evaluate a registered model against the champion and the peers on the same split; log to MLflow."""
    from pipelines.evaluate import evaluate_registered

    p = _params(params, leads)
    try:
        evaluation, run_id = evaluate_registered(p, alias, _as_of(as_of, p))
    except _input_errors() as err:
        _fail(err)
    name, versions = p.tracking.registered_model, evaluation.versions
    typer.echo(", ".join(f"{row}: {name} v{version}" for row, version in versions.items()))
    data = evaluation.data
    typer.echo(f"{data['labelled_rows']:,} labelled leads ({data['positives']:,} conversions); {data['feedback']['summary']}")
    _say_warnings(evaluation.warnings)
    _say_evaluation(evaluation)
    for note in evaluation.notes:
        typer.secho(f"note: {note}", fg="yellow")
    typer.echo(f"\nMLflow run {run_id}")
    if alias != "champion" and "champion" in versions:  # another version is served: the command that serves what was evaluated
        typer.echo(f"to serve v{versions[alias]}: leadscore promote --version {versions[alias]} --reason \"...\"")


@app.command()
def score(
    input: Annotated[Path, typer.Option("--input", "-i", help="Leads to score (CSV or Parquet, CRM column names).")],
    output: Annotated[Path, typer.Option("--output", "-o", help="Scores file: CSV, or Parquet when it ends in .parquet or .pq.")],
    activities: Annotated[Optional[Path], typer.Option(help="Activities of those leads (CSV or Parquet).")] = None,
    alias: Annotated[str, typer.Option(help="Registry alias to load.")] = "champion",
    as_of: Annotated[Optional[str], typer.Option(  # a lead table, not the export: 'now' is the clock's, as for /score
        "--as-of", help="Score as if it were this date (default: now, UTC).")] = None,
    chunk_size: Annotated[int, typer.Option(help="Rows per chunk.")] = 50_000,
    params: ParamsOption = None,
    explain: Annotated[bool, typer.Option("--explain", help="Add each lead's top positive and negative factors (serving.top_factors per side).")] = False,
) -> None:
    """Batch-score a lead table with the registered model; invalid rows go to a rejects file."""
    from pipelines.contract import UTC_TIME
    from pipelines.ingest import absent_columns_text, crm_column
    from pipelines.score import score_file
    from pipelines.tracking import load_scorer

    when = _as_of(as_of)  # refused before the model is loaded
    p = _params(params)
    try:
        scorer = load_scorer(p, alias)
        if activities is None and scorer.reads_activities:
            typer.secho(f"no --activities file: every lead is scored as having no activity, though the model reads "
                        f"{', '.join(scorer.features.activity_types)}; pass the activity export to score engagement",
                        fg="yellow", err=True)
        summary = score_file(scorer, input, output, activities_path=activities, as_of=when, chunk_size=chunk_size,
                             top_factors=p.serving.top_factors if explain else 0, protected=_crm_export(p))
    except _input_errors() as err:
        _fail(err)
    registry = scorer.info["registry"]  # which model scored them, for the CRM's audit trail
    typer.echo(f"scored {summary.rows_scored:,} of {summary.rows_read:,} rows with {registry['name']} "
               f"v{registry['version']} ({alias}) -> {summary.output}")
    if summary.rows_past_horizon:
        typer.echo(f"{summary.rows_past_horizon:,} of {summary.rows_scored:,} leads are past the {scorer.horizon_days}-day "
                   "horizon (column past_horizon)")
    if summary.rejects:
        typer.secho(f"{summary.rows_rejected:,} {'row' if summary.rows_rejected == 1 else 'rows'} failed validation -> "
                    f"{summary.rejects}", fg="yellow")
    for warning in summary.short_rows:
        typer.secho(warning, fg="yellow", err=True)
    if summary.columns_absent:
        typer.secho(f"{input} has no column {absent_columns_text(summary.columns_absent)}, which the model reads: "
                    "every lead was scored as not having it; check the export's columns or data.mapping.leads",
                    fg="yellow", err=True)
    for column, values in (summary.unseen_values or {}).items():
        typer.secho(_unseen_line(column, values, summary.rows_scored), fg="yellow", err=True)
    if activities is not None and scorer.reads_activities and not summary.activities_valid and summary.rows_scored:
        rejected = summary.activities_rejected
        why = (f"each of its {rejected:,} rows failed validation: {summary.activity_rejects} says why" if rejected
               else "its header only")
        typer.secho(f"{activities} has no valid activity row ({why}): every lead was scored as having no activity, "
                    f"though the model reads {', '.join(scorer.features.activity_types)}; check the activity export",
                    fg="yellow", err=True)
    elif summary.activities_valid and not summary.activities_used and summary.rows_scored:
        typer.secho(f"none of the {summary.activities_valid:,} activity rows belongs to a lead of {input}: every "
                    "lead was scored as having no activity; check that both files use the same lead ids",
                    fg="yellow", err=True)
    elif summary.unread_activity_types and summary.rows_scored:
        from models.encoding import most_frequent
        from pipelines.dataset import unread_activity_rows

        unread = summary.unread_activity_types
        if sum(unread.values()) == summary.activities_valid:
            typer.secho(f"none of the {summary.activities_valid:,} activity rows is of a type the model reads "
                        f"({', '.join(scorer.features.activity_types)}): every lead was scored as having no activity; "
                        f"the file's types: {most_frequent(unread)} (write them as the training export did, or as "
                        "data.value_maps.activity translates them)", fg="yellow", err=True)
        else:  # a new CRM type (chat_started) or a label no map translates, which /score names per lead
            typer.secho(f"{unread_activity_rows(unread, summary.activities_valid)}: not counted in any score; "
                        "write them as the training export did, or have data.value_maps.activity translate them to "
                        "one it reads "
                        f"({', '.join(scorer.features.activity_types)}); a retrain learns a type only if "
                        "features.activity_types lists it", fg="yellow", err=True)
    after, early = summary.activities_after_scoring_time, summary.activities_before_created
    if after.activities:  # what /score warns of per lead (serving.scoring.activity_date_warnings), for the file
        scored_as_of, check = (("now", "the activity dates or their time zone") if when is None
                               else (f"--as-of ({when:{UTC_TIME}})", "--as-of or the activity dates"))
        typer.secho(f"{_activities_of_leads(after)} dated after {scored_as_of}, the time the leads were scored as of: "
                    f"left out, as a score counts only what happened by then; if they happened by then, check {check}",
                    fg="yellow", err=True)
    if early.activities:
        created = crm_column(scorer.data, "leads", "created_at")
        typer.secho(f"{_activities_of_leads(early)} dated more than a day before their lead was created: counted, as "
                    "training counts such activities (web visits a CRM ties to a lead once a form names it); if that "
                    f"is not what they are, check the activity dates or the leads' {created!r}", fg="yellow", err=True)
    if summary.activity_rejects:
        typer.secho(f"{summary.activities_rejected:,} activity {'row' if summary.activities_rejected == 1 else 'rows'} "
                    "failed validation (not counted) -> "
                    f"{summary.activity_rejects}", fg="yellow")


def _activities_of_leads(counted) -> str:
    """'1,204 activities of 310 leads are' (`pipelines.score.DatedApart`)."""
    return (f"{counted.activities:,} {'activity' if counted.activities == 1 else 'activities'} of {counted.leads:,} "
            f"{'lead' if counted.leads == 1 else 'leads'} {'is' if counted.activities == 1 else 'are'}")


def _unseen_line(column: str, values: dict[str, int], scored: int) -> str:
    """One CRM column's values the model never saw in training, the most frequent few with their leads."""
    from models.encoding import LEARNT_BY_A_RETRAIN, most_frequent

    return (f"{sum(values.values()):,} of {scored:,} leads have a {column!r} value the model never saw in training "
            f"({most_frequent(values)}): scored as the model's \"other\" level, as values too rare to learn from are; "
            f"{LEARNT_BY_A_RETRAIN}; each lead's are in column never_seen")


def _crm_export(p: Params) -> dict[str, Path | None]:
    """The CRM export's files (data.leads, ...), which no command's output may replace."""
    return {f"CRM export's data.{key}": p.resolve(getattr(p.data, key)) if getattr(p.data, key) else None
            for key in ("leads", "activities", "outcomes")}


def _store_the_service_ran_with(p: Params, tables: list, nothing_done: str):
    """The store serving.store_url names, opened without creating anything; refused when it lacks one of `tables`:
    a wrong store_url (a typo, another database) would otherwise pass for a store that holds nothing."""
    from serving.store import Store

    store = Store.from_params(p, read_only=True)
    for table in tables:
        if not store.has_table(table):
            _fail(f"the store {store.name} has no {table.name} table: the service never ran with it; check "
                  f"serving.store_url ({nothing_done})")
    return store


@app.command("export-outcomes")
def export_outcomes(
    output: Annotated[Path, typer.Option("--output", "-o", help="Outcomes file (contract columns), e.g. for data.outcomes: CSV, or Parquet when it ends in .parquet or .pq.")],
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace an existing --output file.")] = False,
    params: ParamsOption = None,
) -> None:
    """Write the feedback the service received as an outcomes table: the latest decision per lead."""
    from pipelines.ingest import is_parquet, refuse_to_overwrite
    from serving.store import FEEDBACK

    p = _params(params)
    if output.is_dir():
        _fail(f"--output: {output} is a folder; name the file to write in it, e.g. {output / 'outcomes.csv'}")
    parquet = is_parquet(output)
    if not parquet and ".csv" not in output.name.lower():  # the files data.outcomes reads back
        _fail(f"--output: {output} is neither .csv (optionally compressed, e.g. .csv.gz) nor .parquet")
    try:  # retrain merges the feedback with the export itself; replacing the export would lose its history
        refuse_to_overwrite(_crm_export(p), {"output": output})
    except ValueError as err:
        _fail(err)
    if output.exists() and not overwrite:  # e.g. last quarter's export, or a lead file of the same folder
        _fail(f"--output: {output} already exists; pass --overwrite to replace it, or name another file")
    try:  # an empty file would pass for "no decision yet" where data.outcomes reads it
        outcomes = _store_the_service_ran_with(p, [FEEDBACK], "nothing was written").export_outcomes()
    except _input_errors() as err:
        _fail(err)
    try:
        output.parent.mkdir(parents=True, exist_ok=True)
        (outcomes.to_parquet if parquet else outcomes.to_csv)(output, index=False)
    except (FileExistsError, NotADirectoryError):
        _fail(f"--output: cannot write {output}: a folder on its path is a file")
    except OSError as err:
        _fail(f"--output: cannot write {output}: {err.strerror or err}")
    typer.echo(f"{len(outcomes):,} leads with a decision -> {output}")


@app.command()
def forget(
    lead_id: Annotated[Optional[list[str]], typer.Option("--lead-id", help="A lead's id as the service got it; repeat for more.")] = None,
    email: Annotated[Optional[list[str]], typer.Option("--email", help="A lead's e-mail, matched through the score log's email_sha256 (case and blanks as the service ignored them); repeat for more.")] = None,
    expired: Annotated[bool, typer.Option("--expired", help="Delete the scores of the leads last scored more than serving.score_retention_days ago (the retention policy, e.g. daily from cron); their feedback is kept.")] = False,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Count the rows it would delete; delete none.")] = False,
    params: ParamsOption = None,
) -> None:
    """Erase leads from the service's store (score log and feedback), e.g. for a GDPR erasure request, or apply the
    score log's retention; each run is recorded in the store without the leads named (leadscore erasures lists them)."""
    from serving.store import FEEDBACK, SCORE_LOG, StoreWriteFailed

    if not lead_id and not email and not expired:
        raise typer.BadParameter("name at least one lead to forget, or pass --expired", param_hint="--lead-id / --email / --expired")
    p = _params(params)
    retention = p.serving.score_retention_days
    if expired and retention is None:
        _fail("--expired: serving.score_retention_days is not set (null: scores are kept forever); set it in the params "
              "file to the days a lead's scores are kept after its last score")
    try:
        store = _store_the_service_ran_with(p, [SCORE_LOG, FEEDBACK], "nothing was deleted")
        done = store.forget(lead_id or [], email or [], retention if expired else None, dry_run=dry_run)
    except (*_input_errors(), StoreWriteFailed) as err:
        _fail(err)
    verb = "would delete" if dry_run else "deleted"
    typer.echo(f"store {store.name}{' (dry run: nothing deleted)' if dry_run else ''}")
    for address, leads in done.leads_by_email.items():
        if leads:
            typer.echo(f"  e-mail {address!r}: lead(s) {', '.join(leads)} (by its email_sha256 in score_log)")
    for value in done.unknown_lead_ids:
        typer.echo(f"  lead id {value!r}: no row in the store, nothing to delete")
    for value in done.unknown_emails:
        typer.echo(f"  e-mail {value!r}: no score carries its hash, nothing to delete (a lead scored without its "
                   "e-mail is found by --lead-id only)")
    if done.last_scored_before is not None:
        typer.echo(f"  expired: the scores of every lead last scored before {done.last_scored_before:%Y-%m-%d %H:%M} "
                   f"UTC (serving.score_retention_days: {retention}); their feedback is kept, as retrain learns from it "
                   "(--lead-id erases a lead's)")
    for table, rows in done.rows.items():
        typer.echo(f"  {table}: {verb} {rows:,} row(s)")
    typer.echo("  recorded in the store's erasure_log, without the lead ids or e-mails named (leadscore erasures lists it)")
    if done.wal_checkpointed is False:
        typer.echo(f"  note: a reader (the running service) held the SQLite write-ahead log, {store.name}-wal, which "
                   "keeps copies of the deleted rows until its next checkpoint; run forget again when the service is idle")
    if not lead_id and not email:  # the retention alone: no person asked to be erased everywhere
        return
    exports = ", ".join(str(path) for path in _crm_export(p).values() if path)
    typer.echo("Not touched (erase the lead there yourself):\n"
               f"  - the CRM export's files ({exports}): erase the lead in the CRM and export again;\n"
               "  - models already trained on it (MLflow's registered versions, bentos built from them) keep what they "
               "learnt: once the export no longer holds the lead, `leadscore retrain` trains one without it (`leadscore "
               "promote` serves it if the gate refuses it); earlier versions stay in MLflow until you delete them;\n"
               "  - files you wrote (score's output and rejects files, export-outcomes files), and logs naming the "
               "lead: retrain's warning about a feedback event with an impossible date, the access log of a service "
               "earlier than this version (a score card's path);\n"
               "  - on a database server, its own copies: its files until VACUUM reuses the space, its write-ahead log, "
               "its backups.")


@app.command()
def erasures(params: ParamsOption = None) -> None:
    """List the erasures forget recorded in the service's store (when, by what, rows per table), for a DPO's records."""
    from serving.store import FEEDBACK, SCORE_LOG

    p = _params(params)
    try:
        store = _store_the_service_ran_with(p, [SCORE_LOG, FEEDBACK], "nothing to list")
        done = store.erasures()
    except _input_errors() as err:
        _fail(err)
    if done.empty:
        typer.echo(f"no erasure recorded in the store {store.name} (forget records each run from this version on)")
        return
    typer.echo(f"erasures recorded in the store {store.name} (UTC; no lead id or e-mail is kept):")
    for row in done.itertuples():
        named = [f"{count} {what}" for count, what in ((row.lead_ids_named, "lead id(s)"), (row.emails_named, "e-mail(s)"))
                 if count]
        if not pd.isna(row.last_scored_before):
            named.append(f"expired: leads last scored before {row.last_scored_before:%Y-%m-%d %H:%M}")
        verb = "would delete (dry run)" if row.dry_run else "deleted"
        typer.echo(f"  {row.erased_at:%Y-%m-%d %H:%M:%S}  {', '.join(named)}: {verb} {row.score_log_rows:,} score_log "
                   f"row(s), {row.feedback_rows:,} feedback row(s)")


@app.command()
def audit(
    params: ParamsOption = None,
    alias: Annotated[str, typer.Option(help="Registry alias of the model to audit.")] = "champion",
    compare_to: Annotated[Optional[str], typer.Option("--compare-to", help="Version number or alias to compare with (default: the champion it replaced, else the version before).")] = None,
    out: Annotated[Path, typer.Option(help="Folder for audit.html, audit.json, the CSV tables and the plots (plots/, PNG).")] = Path("outputs/audit"),
    as_of: Annotated[Optional[str], typer.Option(
        "--as-of", help="Treat this date as 'now' (default: the date the audited model was trained as of).")] = None,
    leads: LeadsOption = None,
) -> None:
    """Marketing signal audit: signal importance, sources and rejection reasons, tiers, calibration (HTML)."""
    from pipelines.audit import run_audit

    p = _params(params, leads)
    _out_folder(out)
    try:
        result = run_audit(p, alias=alias, out_dir=out, compare_to=compare_to, as_of=_as_of(as_of, p))
    except _input_errors() as err:
        _fail(err)
    _say_warnings(result.audit.warnings)
    for section in result.audit.sections:
        typer.echo(f"== {section.title}")
        for note in section.notes:
            typer.echo(f"  {note}")
    typer.echo(f"\nreport {result.paths[0]}; MLflow run {result.run_id}")


@app.command()
def retrain(
    as_of: AsOfOption = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Decide and log, but register nothing and move no alias.")] = False,
    force: Annotated[bool, typer.Option("--force", help="Train even if the champion was trained on the same data "
                                        "and params (by default nothing is trained then).")] = False,
    params: ParamsOption = None,
    leads: LeadsOption = None,
) -> None:
    """Train a challenger on what had matured by a date; promote it only if it passes the gate against the champion."""
    from pipelines.retrain import retrain as run_retrain

    p = _params(params, leads)
    try:
        result = run_retrain(p, as_of=_as_of(as_of, p), dry_run=dry_run, force=force)
    except _input_errors() as err:
        _fail(err)
    for line in result.lines():
        typer.echo(line)
    challenger = f"; challenger run {result.challenger_run_id}" if result.challenger_run_id else ""
    typer.echo(f"MLflow run {result.run_id} (tagged retrain){challenger}")


@app.command()
def promote(
    version: Annotated[str, typer.Option("--version", help="Registry version to make champion.")],
    reason: Annotated[str, typer.Option("--reason", help="Why (recorded on the model version).")],
    params: ParamsOption = None,
) -> None:
    """Make a registered version the champion by hand, recording the reason and the replaced champion."""
    from pipelines.retrain import promote as run_promote

    try:
        change = run_promote(_params(params), version, reason)
    except _input_errors() as err:
        _fail(err)
    if change.refused_by_retrain:
        typer.secho(f"note: retrain refused to promote v{change.version}: {change.refused_by_retrain}", fg="yellow")
    if change.not_judged:
        typer.secho(f"note: v{change.version} was never judged: {change.not_judged}", fg="yellow")
    typer.echo(f"champion: v{change.version} (was {'v' + change.previous if change.previous else 'none'}); "
               f"MLflow run {change.run_id}")


@app.command()
def rollback(
    reason: Annotated[str, typer.Option("--reason", help="Why (recorded on the model version).")],
    params: ParamsOption = None,
) -> None:
    """Give the champion alias back to the version the current champion replaced."""
    from pipelines.retrain import rollback as run_rollback

    try:
        change = run_rollback(_params(params), reason)
    except _input_errors() as err:
        _fail(err)
    typer.echo(f"champion: v{change.version} (rolled back from v{change.previous}); MLflow run {change.run_id}")


@app.command()
def backtest(
    quarters: Annotated[int, typer.Option(min=1, help="How many recent quarters with matured outcomes to replay.")] = 4,
    segment: Annotated[str, typer.Option(help="Feature (or lead column) whose values get their own predicted-vs-observed rows.")] = "lead_source",
    out: Annotated[Path, typer.Option(help="Folder for backtest.csv, segments.csv and backtest.png.")] = Path("outputs/backtest"),
    params: ParamsOption = None,
    leads: LeadsOption = None,
) -> None:
    """Replay quarterly retraining: per quarter AUC, top-20% capture, ECE, tier conversion (table + plot)."""
    from pipelines.backtest import backtest as run_backtest

    p = _params(params, leads)
    _out_folder(out)
    try:
        result = run_backtest(p, quarters=quarters, segment=segment, out_dir=out)
    except _input_errors() as err:
        _fail(err)
    _say_warnings(result.warnings)
    for line in result.lines():
        typer.echo(line)
    typer.echo(f"\nplot and tables in {out}; MLflow run {result.run_id} (tagged backtest)")


@app.command()
def monitor(
    as_of: Annotated[Optional[str], typer.Option(
        "--as-of", help="Replay the report of this date from the store as it stood then (default: the store's last "
                        "record, its last score logged or decision received).")] = None,
    out: Annotated[Path, typer.Option(help="HTML report to write.")] = Path("outputs/monitor.html"),
    params: ParamsOption = None,
    leads: LeadsOption = None,
) -> None:
    """Drift (PSI), calibration against arrived outcomes and hand-off SLA of the champion; HTML + MLflow."""
    from pipelines.monitor import monitor as run_monitor

    p = _params(params, leads)
    _out_file(out, "monitor.html")
    try:
        report = run_monitor(p, as_of=_as_of(as_of), out=out)
    except _input_errors() as err:
        _fail(err)
    for line in report.lines():
        typer.echo(line)
    typer.echo(f"report {out}; MLflow run {report.run_id} (tagged monitor)")


if __name__ == "__main__":  # python -m pipelines.cli, as well as the installed `leadscore`
    app()
