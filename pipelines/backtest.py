"""`leadscore backtest`: replay quarterly retraining over the export's history.

For each of the last N calendar quarters whose leads have matured outcomes: train exactly as
`leadscore retrain` would have on the quarter's first day (only what had matured by then, with only the
feedback store's decisions it had received by then; the cold-start peer when that was too little), then score that quarter's leads and compare with what
became of them. Per quarter: AUC, top-20% capture, ECE and conversion per tier, plus predicted vs
observed conversion per segment (lead source by default), which is where a source whose quality
dropped shows up. The per-quarter models are not logged or registered; the replay is one MLflow run.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from models.metrics import evaluate_scores, fraction_key, tier_table
from models.splits import make_split
from pipelines.config import Params
from pipelines.dataset import assemble, training_warnings
from pipelines.history import FeedbackMerge, load_history
from pipelines.ingest import CRMData
from pipelines.monitor import segment_calibration
from pipelines.retrain import PEER_NAMES, closed_counts, fit_challenger

CAPTURE_FRACTION = 0.2
HEADLINE = ["roc_auc", f"capture_{fraction_key(CAPTURE_FRACTION)}", "ece"]
# Segment values drawn in the plot (the largest by leads); the tables keep every value.
PLOTTED_SEGMENTS = 8


@dataclass
class BacktestResult:
    """Per-quarter figures of the replayed models, per-segment calibration, the plot, and what the
    feedback store changed in the outcomes every quarter is labelled from."""

    table: pd.DataFrame  # one row per quarter, oldest first
    segments: pd.DataFrame  # quarter, feature, value, leads, conversions, predicted, observed, gap, z, status
    figure: Figure
    feedback: FeedbackMerge
    # The export against the settings every quarter trains with (dataset.training_warnings, as train gives them): an
    # activity file of its header only replays models that never saw a lead active
    warnings: list[str] = field(default_factory=list)
    run_id: str = ""

    def flagged(self) -> pd.DataFrame:
        """Quarter x segment values whose observed conversion left the prediction (monitor's rule)."""
        return self.segments[self.segments["status"] == "alert"].reset_index(drop=True)

    def feedback_line(self) -> str:
        """What the store changed as of the export's end, then how many of its decisions each quarter's training
        left out as received after the quarter's first day (as monitor --as-of words it)."""
        later = self.table["training_received_later"]
        return self.feedback.line() + (
            "; decisions received after a quarter's first day not used to train it (not known then): "
            + ", ".join(f"{quarter} {n:,}" for quarter, n in later.items()) if later.any() else "")

    def lines(self) -> list[str]:
        shown = self.table.drop(columns=["trained_as_of", "training_received_later"])  # in the feedback line
        out = [self.feedback_line(), *shown.to_string(float_format=lambda v: f"{v:.3f}").splitlines()]
        out.append("leads: created in the quarter; rows: those labelled by the export's end (matured, not left out by "
                   "the label policy), which every figure is over: the newest quarter may be only partly matured")
        out.append("training_feedback: the store's decisions that replaced the export's in what the quarter was trained on "
                   "(those dated and received by its first day; the feedback line counts the store as of the export's end)")
        flagged = self.flagged()
        if len(flagged):
            out.append("\nsegments whose conversion left the prediction:")
            out += flagged.drop(columns=["status"]).to_string(index=False, float_format=lambda v: f"{v:.3f}").splitlines()
        return out


def backtest_quarters(created_at: pd.Series, quarters: int) -> list[pd.Period]:
    """The last `quarters` calendar quarters holding labelled (matured) leads, oldest first."""
    if quarters < 1:
        raise ValueError(f"quarters must be at least 1, got {quarters}")
    present = pd.Series(created_at).dt.to_period("Q").dropna().unique()
    return sorted(present)[-quarters:]


def replay(params: Params, quarters: int = 4, segment: str = "lead_source", crm: CRMData | None = None) -> BacktestResult:
    """Retrain as of each quarter's first day and evaluate on that quarter's matured leads (no MLflow).

    Args:
        quarters: how many of the most recent quarters with matured leads to replay.
        segment: feature (or lead column) whose values get their own predicted-vs-observed rows.
        crm: an already loaded export (default: load params.data); the feedback store is laid over it, as
            retrain does (`load_history`).
    """
    if not params.data.dated:
        raise ValueError("backtest needs dated leads (data.dated is false): without creation dates there are no quarters")
    crm = load_history(params, crm)
    outcome = assemble(params, crm=crm)  # every lead whose outcome has matured by the export's end
    if segment in outcome.features:
        segment_values = outcome.features[segment]
    elif segment in crm.leads:
        segment_values = crm.leads.set_index("lead_id")[segment].reindex(outcome.features.index)
    else:
        raise ValueError(f"segment {segment!r} is neither a feature nor a leads column; features: "
                         f"{', '.join(outcome.features.columns)}")
    if pd.api.types.is_numeric_dtype(segment_values):  # one row per value: hundreds of segments too small to judge
        categories = [c for c in outcome.features.columns if not pd.api.types.is_numeric_dtype(outcome.features[c])]
        raise ValueError(f"segment {segment!r} is a number ({segment_values.nunique():,} values): segment by a "
                         f"category instead, e.g. {', '.join(categories)}")
    quarter_of = outcome.created_at.dt.to_period("Q").to_numpy()
    created_quarter = crm.leads["created_at"].dt.to_period("Q")

    rows, segment_tables, names = [], [], []
    replayed = backtest_quarters(outcome.created_at, quarters)
    for quarter in replayed:
        start = quarter.start_time
        ts = assemble(params, as_of=start, crm=crm, as_received=True)  # what the store held then, not what it got since
        closed, conversions = closed_counts(ts)
        try:
            split = make_split(ts.created_at, pd.Series(ts.y), params.evaluate.split, params.model.seed)
            scorer, why = fit_challenger(ts, split, params)
        except ValueError as err:  # fewer quarters helps only while a newer quarter is left to replay
            newer = len(replayed) - replayed.index(quarter) - 1
            advice = (f"replay the {newer} newer quarter{'s' if newer > 1 else ''} only (--quarters {newer})" if newer else
                      "it is the newest quarter with matured leads, so the export has too little history to backtest")
            raise ValueError(f"backtest {quarter} (trained as of {start:%Y-%m-%d}, when {closed:,} closed leads with "
                             f"{conversions:,} conversions had matured): {err}; {advice}") from None
        names = scorer.tiers.names
        held = np.flatnonzero(quarter_of == quarter)
        y = outcome.y[held]
        p = scorer.predict_proba(outcome.features.iloc[held], outcome.age_days[held])
        metrics = evaluate_scores(y, p, ece_bins=params.evaluate.ece_bins, top_fractions=[CAPTURE_FRACTION])
        tiers = tier_table(y, scorer.tiers.assign(p), names)["conversion_rate"]
        rows.append({
            "quarter": str(quarter), "trained_as_of": start,
            "model": f"peer {PEER_NAMES[params.retrain.cold_start_peer]}" if why else "learned",
            "training_rows": closed, "training_conversions": conversions,
            "training_feedback": ts.crm.feedback.applied if ts.crm.feedback else 0,
            "training_received_later": ts.crm.feedback.received_later if ts.crm.feedback else 0,
            "leads": int((created_quarter == quarter).sum()), "rows": len(held), "conversions": int(y.sum()),
            "conversion_rate": metrics["positive_rate"], "mean_p": metrics["mean_p"],
            **{k: metrics[k] for k in HEADLINE},
            **{f"conversion_{tier}": rate for tier, rate in tiers.items()},
        })
        table = segment_calibration(segment_values.iloc[held].to_frame(segment), p, y, params.monitor)
        segment_tables.append(table.assign(quarter=str(quarter)))
    table = pd.DataFrame(rows).set_index("quarter")
    segments = pd.concat(segment_tables, ignore_index=True) if segment_tables else pd.DataFrame()
    if len(segments):
        segments = segments[["quarter", *[c for c in segments.columns if c != "quarter"]]]
    # What the store changed as of the export's end, the latest any quarter is labelled from.
    return BacktestResult(table, segments, backtest_figure(table, segments, names), outcome.crm.feedback,
                          training_warnings(outcome, params))


def backtest_figure(table: pd.DataFrame, segments: pd.DataFrame, tier_names: list[str]) -> Figure:
    """Three panels over quarters: headline metrics, conversion per tier, observed/predicted per segment."""
    figure = Figure(figsize=(15, 4.5), layout="constrained")
    FigureCanvasAgg(figure)
    metric_axes, tier_axes, segment_axes = figure.subplots(1, 3)
    x = np.arange(len(table))
    labels = list(table.index)
    for column in HEADLINE:
        metric_axes.plot(x, table[column], marker="o", label=column)
    metric_axes.set(title="Replayed model per quarter", ylabel="value", ylim=(0, 1))
    for tier in tier_names:
        tier_axes.plot(x, table[f"conversion_{tier}"], marker="o", label=f"tier {tier}")
    tier_axes.set(title="Conversion rate per tier", ylabel="conversion rate")
    if len(segments):
        judged = segments[segments["status"] != "n/a"]
        biggest = judged.groupby("value")["leads"].sum().nlargest(PLOTTED_SEGMENTS).index
        for value in biggest:
            part = judged[judged["value"] == value].set_index("quarter").reindex(labels)
            segment_axes.plot(x, 100 * part["gap"], marker="o", label=str(value))
            alert = (part["status"] == "alert").to_numpy()
            segment_axes.scatter(x[alert], 100 * part["gap"].to_numpy()[alert], s=160, facecolors="none",
                                 edgecolors="#c0392b", linewidths=2)
        segment_axes.axhline(0.0, color="grey", linestyle=":")
        segment_axes.set(title=f"{segments['feature'].iloc[0]}: observed - predicted (circled: flagged)",
                         ylabel="percentage points")
    for axes in (metric_axes, tier_axes, segment_axes):
        axes.set_xticks(x, labels)
        axes.grid(alpha=0.3)
        if axes.get_legend_handles_labels()[0]:  # no segment may be large enough to draw
            axes.legend(fontsize="small")
    return figure


def backtest(
    params: Params,
    quarters: int = 4,
    segment: str = "lead_source",
    out_dir: Path | None = None,
    crm: CRMData | None = None,
) -> BacktestResult:
    """`replay`, then log the tables, plot, what the feedback store changed and the setting warnings to one MLflow
    run (tagged backtest) and optionally write the tables and plot to `out_dir`."""
    import mlflow

    from pipelines import tracking

    tracking.configure(params, create=True)  # an unreachable tracking store is told before the quarters are trained
    result = replay(params, quarters, segment, crm)
    with tracking.start_run("backtest", f"backtest {quarters} quarters") as run:
        result.run_id = run.info.run_id
        mlflow.set_tags({"backtest": "true", "segment": segment})
        mlflow.log_params({"quarters": quarters, "segment": segment})
        mlflow.log_dict({"feedback": result.feedback.as_dict()}, "data/fingerprint.json")  # as train and evaluate log it
        tracking.log_setting_warnings(result.warnings)
        for step, (quarter, values) in enumerate(result.table.iterrows()):
            mlflow.log_metrics({k: float(values[k]) for k in HEADLINE if pd.notna(values[k])}, step=step)
        with tempfile.TemporaryDirectory() as tmp:
            write_outputs(result, Path(tmp))
            mlflow.log_artifacts(tmp, "backtest")
    if out_dir is not None:
        write_outputs(result, Path(out_dir))
    return result


def write_outputs(result: BacktestResult, out_dir: Path) -> list[Path]:
    """backtest.csv, segments.csv and backtest.png in `out_dir`."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = [out_dir / "backtest.csv", out_dir / "segments.csv", out_dir / "backtest.png"]
    result.table.to_csv(paths[0])
    result.segments.to_csv(paths[1], index=False)
    result.figure.savefig(paths[2], dpi=110)
    return paths
