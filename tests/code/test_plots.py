"""Evaluation plots: every scorer appears, labelled with the number the report quotes."""

from types import SimpleNamespace

import lightgbm as lgb
import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from models.metrics import capture_at, expected_calibration_error
from models.plots import UNUSED_NAMED, calibration_plot, gain_plot, importance_plot, pr_plot, roc_plot, unused, unused_line
from pipelines.evaluate import Evaluation


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


def test_unused_fields_are_said_in_one_line_not_drawn_as_empty_bars(curves):
    """X Education's model never splits on 12 of its form fields: 12 empty rows filled the importance plot. They are
    left out of it, and one line under it says how many and which, so a reader still learns they predict nothing."""
    rng = np.random.default_rng(0)
    y = curves["leadscore"][0]
    x = pd.DataFrame({"visits": y * 3 + rng.normal(size=len(y)), "do_not_call": 0.0, "search": 0.0})
    booster = lgb.train({"objective": "binary", "verbose": -1, "min_data_in_leaf": 5}, lgb.Dataset(x, y), 5)
    evaluation = Evaluation(pd.DataFrame(), pd.DataFrame(), {"leadscore": curves["leadscore"][1]}, y)

    figure = evaluation.plots(SimpleNamespace(booster=booster, info={}))["feature_importance.png"]

    assert [tick.get_text() for tick in figure.axes[0].get_yticklabels()] == ["visits"]
    assert figure.get_supxlabel() == ("2 features the model does not use (importance 0), left out: do_not_call, "
                                      "search.")
    assert unused(["a", "b", "c"], [0.4, 0.0, -0.1]) == ["b"]  # a negative change is no unused field
    assert unused(["a", "b", "c"], [0.4, 0.0001, -0.1], decimals=3) == ["b"]  # 0.000 as a table shows it
    assert unused_line(["Do Not Call"]) == "1 field the model does not use (importance 0), left out: Do Not Call."
    many = [f"f{i}" for i in range(UNUSED_NAMED + 3)]
    assert unused_line(many).endswith(f"f{UNUSED_NAMED - 1} and 3 more.")
    assert unused_line([]) == ""
    assert importance_plot(["a"], [0.2], "SHAP importance").get_supxlabel() == ""
