"""Evaluation plots: every scorer appears, labelled with the number the report quotes."""

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from models.metrics import capture_at, expected_calibration_error
from models.plots import calibration_plot, gain_plot, importance_plot, pr_plot, roc_plot


@pytest.fixture
def curves():
    rng = np.random.default_rng(0)
    y = (rng.uniform(size=300) < 0.3).astype(float)
    good = np.clip(0.3 * y + 0.7 * rng.uniform(size=300), 0, 1)
    coarse = np.round(good, 1)  # many ties, like a points score
    return {"leadscore": (y, good), "points": (y, coarse)}


def _legend(figure):
    return [text.get_text() for text in figure.axes[0].get_legend().get_texts()]


def test_roc_and_calibration_labels_quote_the_metrics(curves):
    roc_labels = _legend(roc_plot(curves))
    for name, (y, p) in curves.items():
        assert f"{name} (AUC {roc_auc_score(y, p):.3f})" in roc_labels
    calibration_labels = _legend(calibration_plot(curves, bins=10))
    y, p = curves["points"]
    assert f"points (ECE {expected_calibration_error(y, p, bins=10):.3f})" in calibration_labels


def test_gain_curve_ends_at_all_conversions_and_quotes_the_top_decile(curves):
    figure = gain_plot(curves)
    y, p = curves["points"]
    assert f"points ({capture_at(y, p, 0.1):.0%} of conversions in top 10%)" in _legend(figure)
    line = next(line for line in figure.axes[0].get_lines() if line.get_label().startswith("points"))
    assert line.get_xdata()[-1] == pytest.approx(1.0) and line.get_ydata()[-1] == pytest.approx(1.0)


def test_one_class_scorers_are_listed_as_undefined_instead_of_crashing():
    one_class = {"tiny slice": (np.zeros(4), np.array([0.1, 0.2, 0.3, 0.4]))}
    assert _legend(roc_plot(one_class))[-1] == "tiny slice (AUC undefined: one class)"
    assert "tiny slice (AP undefined: one class)" in _legend(pr_plot(one_class))
    assert _legend(gain_plot(one_class))[-1] == "tiny slice (no conversions)"


def test_evaluate_plots_read_their_rates_and_shares_in_percent_as_the_calibration_plot_and_the_audit_do(curves, tmp_path):
    """ROC, precision-recall and gain plots ticked 0.0 to 1.0 beside a calibration plot and an audit ticked 0% to 100%:
    the same kind of number read two ways. Read from the figure as saved (`Evaluation.write` saves them so)."""
    for plot in (roc_plot, pr_plot, gain_plot, calibration_plot):
        figure = plot(curves)
        figure.savefig(tmp_path / "plot.png")  # the formatter writes the tick labels as it draws
        for axis in (figure.axes[0].xaxis, figure.axes[0].yaxis):
            low, high = sorted(axis.get_view_interval())
            shown = [tick.label1.get_text() for tick in axis.get_major_ticks() if low <= tick.get_loc() <= high]
            assert {"0%", "40%", "80%"} <= set(shown) and all(t.endswith("%") for t in shown), (plot.__name__, shown)
    y, _ = curves["leadscore"]
    assert f"base rate ({y.mean():.1%})" in _legend(pr_plot(curves))


def test_importance_plot_puts_the_largest_magnitude_on_top():
    figure = importance_plot(["a", "b", "c"], [0.2, -0.9, 0.5], "SHAP importance")
    labels = [tick.get_text() for tick in figure.axes[0].get_yticklabels()]
    assert labels[-1] == "b" and labels[0] == "a"  # barh draws the last label at the top
    assert figure.axes[0].get_title() == "SHAP importance"
