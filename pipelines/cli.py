"""The `leadscore` command line: one command per step, each a thin shell over a plain function."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated, Optional

import pandas as pd
import typer

from pipelines.config import ParamsError, Params, load_params

app = typer.Typer(help="Predictive lead scoring trained on your CRM's closed loop.", no_args_is_help=True)

ParamsOption = Annotated[Optional[Path], typer.Option("--params", "-p", help="Params file (default: the project's params.yaml).")]
LeadsOption = Annotated[Optional[str], typer.Option("--leads", help="Override data.leads (file path, or table/query with data.sql_url).")]
AsOfOption = Annotated[Optional[str], typer.Option("--as-of", help="Treat this date as 'now' (default: latest date in the export).")]


@app.callback()
def _main(verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log progress details.")] = False) -> None:
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s")


def _params(path: Path | None, leads: str | None = None) -> Params:
    try:
        return load_params(path, overrides={"data.leads": leads} if leads else None)
    except ParamsError as err:
        typer.secho(str(err), fg="red", err=True)
        raise typer.Exit(2) from None


def _as_of(value: str | None) -> pd.Timestamp | None:
    if value is None:
        return None
    try:
        return pd.Timestamp(value)
    except ValueError:
        raise typer.BadParameter(f"not a date: {value!r} (use YYYY-MM-DD)", param_hint="--as-of") from None


def _fail(err: Exception) -> None:
    typer.secho(str(err), fg="red", err=True)
    raise typer.Exit(1) from None


@app.command("sample-data")
def sample_data(
    leads: Annotated[int, typer.Option(help="Number of leads.")] = 20_000,
    seed: Annotated[int, typer.Option(help="Random seed (same seed, same data).")] = 7,
    out: Annotated[Path, typer.Option(help="Output folder.")] = Path("data/sample"),
    fmt: Annotated[str, typer.Option("--format", help="csv or parquet.")] = "csv",
    quarters: Annotated[int, typer.Option(help="Quarters of history.")] = 8,
) -> None:
    """Write a seeded synthetic CRM (leads, activities, outcomes with reason codes)."""
    from pipelines.synthetic import generate_crm, write_crm

    tables = generate_crm(leads, seed=seed, quarters=quarters)
    paths = write_crm(tables, out, fmt=fmt)
    for name, frame in tables.items():
        typer.echo(f"{name:<11} {len(frame):>10,} rows -> {paths[name]}")
    # The leads sales still has to work: what a CRM would send for scoring today.
    open_ids = tables["outcomes"].loc[tables["outcomes"]["status"] == "open", "lead_id"]
    open_leads = tables["leads"][tables["leads"]["lead_id"].isin(open_ids)]
    open_path = out / f"open_leads.{fmt}"
    (open_leads.to_csv if fmt == "csv" else open_leads.to_parquet)(open_path, index=False)
    typer.echo(f"{'open leads':<11} {len(open_leads):>10,} rows -> {open_path}")


@app.command()
def features(params: ParamsOption = None, leads: LeadsOption = None, as_of: AsOfOption = None) -> None:
    """Inspect the training data: ingest report, label counts per rule, feature list, leakage check."""
    from pipelines.dataset import assemble
    from pipelines.ingest import ContractError

    p = _params(params, leads)
    try:
        ts = assemble(p, as_of=_as_of(as_of))
    except (ContractError, FileNotFoundError) as err:
        _fail(err)
    typer.echo("== ingest")
    for line in ts.crm.report.lines():
        typer.echo(f"  {line}")
    typer.echo(f"== labels (as of {ts.as_of})" if ts.as_of is not None else "== labels (undated export)")
    for line in ts.labels.lines():
        typer.echo(f"  {line}")
    typer.echo(f"  training rows: {len(ts.y):,}  positives: {int(ts.y.sum()):,} ({ts.y.mean():.1%})")
    typer.echo(f"== features ({ts.features.shape[1]})")
    for name, dtype in ts.features.dtypes.items():
        filled = ts.features[name].notna().mean()
        typer.echo(f"  {name:<32} {('categorical' if dtype == object or str(dtype) in ('str', 'string') else 'numeric'):<12} filled {filled:6.1%}")
    typer.echo("== leakage check")
    for leak in ts.leaks or []:
        typer.secho(f"  WARNING {leak.message}", fg="yellow")
    if not ts.leaks:
        typer.echo(f"  no single feature reaches AUC {p.features.leakage_auc}")


@app.command()
def train(params: ParamsOption = None, leads: LeadsOption = None, as_of: AsOfOption = None) -> None:
    """Train, compare against the peers on the same split, log to MLflow and register as challenger."""
    from pipelines.evaluate import format_table
    from pipelines.ingest import ContractError
    from pipelines.train import train as run_training

    p = _params(params, leads)
    try:
        result = run_training(p, as_of=_as_of(as_of))
    except (ContractError, FileNotFoundError, ValueError) as err:
        _fail(err)
    ts = result.training_set
    for line in ts.labels.lines():
        typer.echo(f"label rule {line}")
    typer.echo(f"trained on {len(ts.y):,} labelled leads ({int(ts.y.sum()):,} conversions); {result.split_kind} split")
    for leak in ts.leaks:
        typer.secho(f"WARNING {leak.message}", fg="yellow")
    typer.echo("\ntest-set comparison (same rows for every scorer):")
    typer.echo(format_table(result.evaluation.table))
    typer.echo("\nconversion per tier (test rows):")
    typer.echo(result.evaluation.tiers.to_string(index=False))
    typer.echo(f"\nMLflow run {result.run_id}; model {p.tracking.registered_model} v{result.version} "
               f"aliases {', '.join(result.aliases)}")


@app.command()
def evaluate(
    alias: Annotated[str, typer.Option(help="Registry alias to evaluate (compared with the champion).")] = "challenger",
    params: ParamsOption = None,
    leads: LeadsOption = None,
    as_of: AsOfOption = None,
) -> None:
    """Evaluate a registered model against the champion and the peers on the same split; log to MLflow."""
    from pipelines.evaluate import evaluate_registered, format_table
    from pipelines.ingest import ContractError

    p = _params(params, leads)
    try:
        evaluation, run_id = evaluate_registered(p, alias, _as_of(as_of))
    except (LookupError, ContractError, FileNotFoundError, ValueError) as err:
        _fail(err)
    typer.echo(format_table(evaluation.table))
    typer.echo(f"\nMLflow run {run_id}")


@app.command()
def score(
    input: Annotated[Path, typer.Option("--input", "-i", help="Leads to score (CSV or Parquet, CRM column names).")],
    output: Annotated[Path, typer.Option("--output", "-o", help="Scores CSV.")],
    activities: Annotated[Optional[Path], typer.Option(help="Activities of those leads (CSV or Parquet).")] = None,
    alias: Annotated[str, typer.Option(help="Registry alias to load.")] = "champion",
    as_of: AsOfOption = None,
    chunk_size: Annotated[int, typer.Option(help="Rows per chunk.")] = 100_000,
    params: ParamsOption = None,
) -> None:
    """Batch-score a lead table with the registered model; invalid rows go to a rejects file."""
    from pipelines.ingest import ContractError
    from pipelines.score import score_file
    from pipelines.tracking import load_scorer

    p = _params(params)
    try:
        scorer = load_scorer(p, alias)
        summary = score_file(scorer, input, output, activities_path=activities, as_of=_as_of(as_of), chunk_size=chunk_size)
    except (LookupError, ContractError, FileNotFoundError, ValueError) as err:
        _fail(err)
    typer.echo(f"scored {summary.rows_scored:,} of {summary.rows_read:,} rows -> {summary.output}")
    if summary.rejects:
        typer.secho(f"{summary.rows_rejected:,} rows failed validation -> {summary.rejects}", fg="yellow")
