"""Evaluation plots: several scorers on one figure, each labelled with its headline number.

Figures are built with matplotlib's object API on an Agg canvas created inside each function, never
through pyplot: nothing touches the global backend or figure registry, so importing this module has no
side effect, figures are not leaked between calls and plotting is safe inside a server or a thread.
Every function returns a `matplotlib.figure.Figure` (``mlflow.log_figure`` and ``savefig`` take it).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.axis import Axis
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import PercentFormatter
from sklearn.metrics import average_precision_score, precision_recall_curve, roc_auc_score, roc_curve

from models.metrics import calibration_bins, capture_at, expected_calibration_error

Values = Sequence[float] | np.ndarray | pd.Series
# Scorer name -> (labels, probabilities), all scorers on the same rows.
Curves = Mapping[str, tuple[Values, Values]]

# Top fraction quoted in the gain plot's legend ("captures 45 % of conversions in the top 10 %").
GAIN_LABEL_FRACTION = 0.1


def _new_axes(title: str, xlabel: str, ylabel: str, size: tuple[float, float] = (6.0, 5.0)) -> tuple[Figure, Axes]:
    figure = Figure(figsize=size, layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    axes.set(title=title, xlabel=xlabel, ylabel=ylabel)
    axes.grid(alpha=0.3)
    return figure, axes


def percent_ticks(axis: Axis) -> None:
    """A share, rate or probability axis ticked in percentages ("40%"), as the audit's tables give them, not 0.4."""
    axis.set_major_formatter(PercentFormatter(xmax=1, decimals=0))


def _arrays(y: Values, p: Values) -> tuple[np.ndarray, np.ndarray]:
    return np.asarray(y, dtype="float64").ravel(), np.asarray(p, dtype="float64").ravel()


def _has_both_classes(y: np.ndarray) -> bool:
    return 0 < y.sum() < len(y)


def roc_plot(curves: Curves) -> Figure:
    """ROC curve per scorer, labelled with its AUC; a scorer with one class only is listed as undefined."""
    figure, axes = _new_axes("ROC", "false positive rate", "true positive rate")
    axes.plot([0, 1], [0, 1], color="grey", linestyle=":", label="random (AUC 0.500)")
    for name, (y, p) in curves.items():
        y_arr, p_arr = _arrays(y, p)
        if not _has_both_classes(y_arr):
            axes.plot([], [], label=f"{name} (AUC undefined: one class)")
            continue
        fpr, tpr, _ = roc_curve(y_arr, p_arr)
        axes.plot(fpr, tpr, label=f"{name} (AUC {roc_auc_score(y_arr, p_arr):.3f})")
    percent_ticks(axes.xaxis)  # rates, as the calibration plot and the audit give them
    percent_ticks(axes.yaxis)
    axes.legend(loc="lower right")
    return figure


def pr_plot(curves: Curves) -> Figure:
    """Precision-recall curve per scorer, labelled with average precision; the base rate is the floor."""
    figure, axes = _new_axes("Precision-recall", "recall", "precision")
    for name, (y, p) in curves.items():
        y_arr, p_arr = _arrays(y, p)
        if not _has_both_classes(y_arr):
            axes.plot([], [], label=f"{name} (AP undefined: one class)")
            continue
        precision, recall, _ = precision_recall_curve(y_arr, p_arr)
        label = f"{name} (AP {average_precision_score(y_arr, p_arr):.3f})"
        axes.plot(recall, precision, drawstyle="steps-post", label=label)
    rates = [_arrays(y, p)[0].mean() for y, p in curves.values() if len(y)]
    if rates:
        axes.axhline(rates[0], color="grey", linestyle=":", label=f"base rate ({rates[0]:.1%})")
    axes.set(xlim=(0, 1), ylim=(0, 1.02))
    percent_ticks(axes.xaxis)
    percent_ticks(axes.yaxis)
    axes.legend(loc="upper right")
    return figure


def calibration_plot(curves: Curves, bins: int = 10, error_name: str = "ECE") -> Figure:
    """Reliability diagram: observed conversion rate against mean predicted p, per equal-count bin.

    Uses the same bins as `expected_calibration_error`, and each scorer is labelled with that ECE, named
    `error_name` (marketing's audit says "calibration error").
    """
    figure, axes = _new_axes("Calibration", "mean predicted probability", "observed conversion rate")
    axes.plot([0, 1], [0, 1], color="grey", linestyle=":", label="perfectly calibrated")
    for name, (y, p) in curves.items():
        y_arr, p_arr = _arrays(y, p)
        table = calibration_bins(y_arr, p_arr, bins=bins)
        ece = expected_calibration_error(y_arr, p_arr, bins=bins)
        axes.plot(table["mean_p"], table["observed"], marker="o", label=f"{name} ({error_name} {ece:.3f})")
    axes.set(xlim=(0, 1), ylim=(0, 1))
    percent_ticks(axes.xaxis)  # "20%", as the audit's calibration table reads its probabilities and rates
    percent_ticks(axes.yaxis)
    axes.legend(loc="upper left")
    return figure


def gain_plot(curves: Curves) -> Figure:
    """Cumulative gain: share of conversions reached when working the leads best-first.

    Each scorer is labelled with its capture at the top 10 %; the diagonal is a random order.
    Leads with equal p are drawn as one straight segment (worked in random order).
    """
    figure, axes = _new_axes("Cumulative gain", "share of leads worked (best first)", "share of conversions reached")
    axes.plot([0, 1], [0, 1], color="grey", linestyle=":", label="random order")
    top = f"{GAIN_LABEL_FRACTION:.0%}"
    for name, (y, p) in curves.items():
        y_arr, p_arr = _arrays(y, p)
        if y_arr.sum() == 0:
            axes.plot([], [], label=f"{name} (no conversions)")
            continue
        # One point per group of equal p, joined by straight lines: the expected curve when ties are
        # worked in random order, consistent with `capture_at`.
        _, group = np.unique(-p_arr, return_inverse=True)
        worked = np.concatenate([[0.0], np.cumsum(np.bincount(group))]) / len(y_arr)
        reached = np.concatenate([[0.0], np.cumsum(np.bincount(group, weights=y_arr))]) / y_arr.sum()
        capture = capture_at(y_arr, p_arr, GAIN_LABEL_FRACTION)
        axes.plot(worked, reached, label=f"{name} ({capture:.0%} of conversions in top {top})")
    axes.set(xlim=(0, 1), ylim=(0, 1.02))
    percent_ticks(axes.xaxis)
    percent_ticks(axes.yaxis)
    axes.legend(loc="lower right")
    return figure


def importance_plot(names: Sequence[str], values: Sequence[float], title: str) -> Figure:
    """Horizontal bars, largest absolute value on top; negative values (pushing scores down) in red."""
    if len(names) != len(values):
        raise ValueError(f"names and values differ in length: {len(names)} vs {len(values)}")
    order = np.argsort(-np.abs(np.asarray(values, dtype="float64")), kind="mergesort")[::-1]
    labels = [str(names[i]) for i in order]
    heights = np.asarray(values, dtype="float64")[order]
    figure, axes = _new_axes(title, "importance", "", size=(7.0, max(2.5, 0.3 * len(labels) + 1.2)))
    axes.barh(labels, heights, color=np.where(heights < 0, "tab:red", "tab:blue"))
    axes.axvline(0, color="black", linewidth=0.8)
    return figure
