"""Evaluation plots: several scorers on one figure, each labelled with its headline number.

Figures are built with matplotlib's object API on an Agg canvas created inside each function, never
through pyplot: nothing touches the global backend or figure registry, so importing this module has no
side effect, figures are not leaked between calls and plotting is safe inside a server or a thread.
Every function returns a `matplotlib.figure.Figure` (``mlflow.log_figure`` and ``savefig`` take it).
"""

from __future__ import annotations

import textwrap
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
UNUSED_NAMED = 12  # unused fields `unused_line` names; more are counted ("and 3 more")


def _new_axes(title: str, xlabel: str, ylabel: str, size: tuple[float, float] = (6.0, 5.0),
              computed_on: str = "") -> tuple[Figure, Axes]:
    """A figure with one axes titled `title`, and after a dash what its curves were `computed_on` when given
    ("ROC — test leads (n=1,843, created 2025-07-01 → 2025-12-31)"): a PNG downloaded from the MLflow UI or pasted
    into a slide travels without the run that says it. A long title wraps to the figure's width."""
    figure = Figure(figsize=size, layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    axes.set(xlabel=xlabel, ylabel=ylabel)
    axes.set_title(f"{title} — {computed_on}" if computed_on else title, wrap=True)
    axes.grid(alpha=0.3)
    return figure, axes


def percent_ticks(axis: Axis) -> None:
    """A share, rate or probability axis ticked in percentages ("40%"), as the audit's tables give them, not 0.4."""
    axis.set_major_formatter(PercentFormatter(xmax=1, decimals=0))


def _arrays(y: Values, p: Values) -> tuple[np.ndarray, np.ndarray]:
    return np.asarray(y, dtype="float64").ravel(), np.asarray(p, dtype="float64").ravel()


def _has_both_classes(y: np.ndarray) -> bool:
    return 0 < y.sum() < len(y)


def roc_plot(curves: Curves, computed_on: str = "") -> Figure:
    """ROC curve per scorer, labelled with its AUC; a scorer with one class only is listed as undefined. The title
    says the rows it was `computed_on` (`Split.test_caption`), when given."""
    figure, axes = _new_axes("ROC", "false positive rate", "true positive rate", computed_on=computed_on)
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


def pr_plot(curves: Curves, computed_on: str = "") -> Figure:
    """Precision-recall curve per scorer, labelled with average precision; the base rate is the floor. The title
    says the rows it was `computed_on`, when given."""
    figure, axes = _new_axes("Precision-recall", "recall", "precision", computed_on=computed_on)
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


def calibration_plot(curves: Curves, bins: int = 10, error_name: str = "ECE", computed_on: str = "") -> Figure:
    """Reliability diagram: observed conversion rate against mean predicted p, per equal-count bin.

    Uses the same bins as `expected_calibration_error`, and each scorer is labelled with that ECE, named
    `error_name` (marketing's audit says "calibration error"). The title says the rows it was `computed_on`, when
    given.
    """
    figure, axes = _new_axes("Calibration", "mean predicted probability", "observed conversion rate",
                             computed_on=computed_on)
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


def gain_plot(curves: Curves, computed_on: str = "") -> Figure:
    """Cumulative gain: share of conversions reached when working the leads best-first.

    Each scorer is labelled with its capture at the top 10 %; the diagonal is a random order.
    Leads with equal p are drawn as one straight segment (worked in random order). The title says the rows it was
    `computed_on`, when given.
    """
    figure, axes = _new_axes("Cumulative gain", "share of leads worked (best first)", "share of conversions reached",
                             computed_on=computed_on)
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


def unused(names: Sequence[str], importance: Sequence[float], decimals: int | None = None) -> list[str]:
    """The `names` of importance 0, in order, or 0 to `decimals` where a table shows that many: what the model does not
    use. An importance table or plot leaves them out, X Education's 12 unused form fields filling it with rows of
    0.000, and says them in one line (`unused_line`), so that a reader still learns they predict nothing."""
    values = np.asarray(importance, dtype="float64")
    zero = (values == 0) if decimals is None else (np.round(values, decimals) == 0)
    return [str(name) for name, is_zero in zip(names, zero) if is_zero]


def unused_line(names: Sequence[str], noun: str = "field", decimals: int | None = None) -> str:
    """One line for the `unused` `names`, a `noun` each: '2 fields the model does not use (importance 0), left out:
    Do Not Call, Search.' (importance 0.000 to 3 `decimals`), naming up to UNUSED_NAMED; '' when none."""
    if not len(names):
        return ""
    named = ", ".join(map(str, names[:UNUSED_NAMED]))
    more = f" and {len(names) - UNUSED_NAMED} more" if len(names) > UNUSED_NAMED else ""
    zero = "0" if decimals is None else f"{0:.{decimals}f}"
    return (f"{len(names)} {noun}{'s' * (len(names) != 1)} the model does not use (importance {zero}), left out: "
            f"{named}{more}.")


def importance_plot(names: Sequence[str], values: Sequence[float], title: str, unused: Sequence[str] = (),
                    noun: str = "field", decimals: int | None = None, computed_on: str = "") -> Figure:
    """Horizontal bars, largest absolute value on top; negative values (pushing scores down) in red. The `unused`
    names (`unused`, left out of `names` by the caller) are said under the plot (`unused_line`). The title says the
    rows it was `computed_on` (`Split.training_caption` for a model's gain), when given."""
    if len(names) != len(values):
        raise ValueError(f"names and values differ in length: {len(names)} vs {len(values)}")
    order = np.argsort(-np.abs(np.asarray(values, dtype="float64")), kind="mergesort")[::-1]
    labels = [str(names[i]) for i in order]
    heights = np.asarray(values, dtype="float64")[order]
    figure, axes = _new_axes(title, "importance", "", size=(7.0, max(2.5, 0.3 * len(labels) + 1.2)),
                             computed_on=computed_on)
    axes.barh(labels, heights, color=np.where(heights < 0, "tab:red", "tab:blue"))
    axes.axvline(0, color="black", linewidth=0.8)
    if len(unused):
        figure.supxlabel(textwrap.fill(unused_line(unused, noun, decimals), 90), fontsize="small", color="dimgray")
    return figure
