"""The marketing signal audit: what a marketer reads in it must be complete, consistent and traceable."""

from __future__ import annotations

import base64
import dataclasses
import json
import warnings
from datetime import datetime, timezone
from html.parser import HTMLParser
from pathlib import Path
from types import SimpleNamespace

import mlflow
import numpy as np
import pandas as pd
import pytest
import yaml
from mlflow.tracking import MlflowClient

from features.build import FeatureDef
from features.labels import build_labels
from features.phrases import describe, phrase_templates
from models.calibration import TierThresholds
from models.metrics import evaluate_scores
from pipelines import audit, tracking
from pipelines.dataset import assemble, file_sha256
from pipelines.ingest import CRMData, IngestReport
from conftest import FAST, params_for

SECTION_KEYS = ["importance", "dependence", "segments", "tiers", "calibration", "change"]


@pytest.fixture(scope="module")
def audited(trained, sample_dir, tracking_dir, tmp_path_factory):
    """The `trained` model audited once, as `leadscore audit` does.

    It is registered under a name of this module's own, so it is version 1 with no version before
    it, whatever other tests register under the shared name.
    """
    params = params_for(sample_dir, tracking_dir, **{"tracking.registered_model": "audit_first_version"})
    tracking.configure(params)
    tracking.register(trained.model_uri, params, trained.run_id)
    return audit.run_audit(params, out_dir=tmp_path_factory.mktemp("audit"))


def sections(result) -> dict[str, audit.Section]:
    return {s.key: s for s in result.audit.sections}


def test_every_section_is_produced_with_non_empty_tables(audited):
    by_key = sections(audited)
    assert list(by_key) == SECTION_KEYS
    assert set(by_key["segments"].tables) == {
        "by_lead_source", "rejection_reasons_by_lead_source", "by_campaign", "rejection_reasons_by_campaign"
    }
    for key in SECTION_KEYS:
        assert by_key[key].tables, key
        for name, table in by_key[key].tables.items():
            assert len(table), f"{key}.{name} is empty"
    for key in SECTION_KEYS[:5]:
        assert by_key[key].figures, key
    # The audited model is the only version of its registered model: the section says so.
    assert audited.audit.model["version"] == "1"
    assert "no previous model" in by_key["change"].notes[0]
    assert list(by_key["change"].tables["metrics"].columns) == ["metric", "current"]
    metrics = by_key["change"].tables["metrics"].set_index("metric")["current"]  # the console prints notes only
    assert (f"On the {metrics['rows']:,.0f} held-out leads: ROC AUC {metrics['roc_auc']:.3f} (the chance that a lead "
            "that converted is scored above one that did not: 0.5 is a coin toss, 1 perfect), calibration error "
            f"{metrics['ece']:.3f}; the top 10% hold {metrics['capture_top10']:.0%} of the conversions") in by_key["change"].notes[0]


def test_importance_is_sorted_covers_every_signal_and_reads_declared_buying_signals_as_positive(audited, trained):
    table = sections(audited)["importance"].tables["signals"]
    assert table["mean_abs_contribution"].is_monotonic_decreasing
    assert sorted(table["signal"]) == sorted({d.signal for d in trained.scorer.catalog})
    assert table["share"].sum() == pytest.approx(1.0)
    by_signal = table.set_index("signal")
    # params declare demo requests and pricing views monotone increasing: more of them raises scores.
    assert by_signal.loc["demo_request", "direction"] > 0
    assert by_signal.loc["pricing_view", "direction"] > 0
    lead_source = by_signal.loc["lead_source"]
    assert lead_source["best_contribution"] > lead_source["worst_contribution"]


def test_a_category_joined_by_a_derived_flag_reads_by_its_levels():
    """"Country RU, which we do not serve" is one signal: marketing reads which countries help and hurt, not
    "more of country lowers the score"; employees (the count, with its size band) still reads by amount."""
    catalog = [FeatureDef("country", "categorical", "country"), FeatureDef("employees", "numeric", "employees"),
               FeatureDef("size_band", "categorical", "employees"), FeatureDef("unsupported_country", "numeric", "country")]
    served = np.arange(60) < 30
    features = pd.DataFrame({"country": np.where(served, "us", "ru"), "employees": np.arange(60.0) * 10,
                             "size_band": np.where(np.arange(60) < 20, "1-50", "51-1000"),
                             "unsupported_country": np.where(served, 0.0, 1.0)})
    signals = pd.DataFrame({"country": np.where(served, 0.3, -1.0), "employees": np.linspace(-0.5, 0.5, 60)})
    rows = audit.ExplainedRows(features, np.zeros(60), np.full(60, 0.1), signals, np.zeros(60))
    table = audit.signal_importance(rows, catalog).set_index("signal")
    assert table.loc["country", ["kind", "best_value", "worst_value"]].tolist() == ["categorical", "us", "ru"]
    assert table.loc["country", "reading"] == "helps most: us (+0.30); hurts most: ru (-1.00)"
    assert table.loc["employees", "reading"] == "more of it raises the score (direction +1.00)"
    dependence = audit.dependence_table(rows, catalog, ["country"])
    assert dependence["value"].tolist() == ["us", "ru"]


def test_a_category_with_one_value_in_the_leads_is_not_said_to_help_and_hurt_most():
    """The notebook's slice by a source: lead_source has one value there, which cannot be both best and worst."""
    features = pd.DataFrame({"lead_source": ["webinar"] * 30})
    signals = pd.DataFrame({"lead_source": np.linspace(0.1, 0.3, 30)})
    rows = audit.ExplainedRows(features, np.zeros(30), np.full(30, 0.1), signals, np.zeros(30))
    lead_source = audit.signal_importance(rows, [FeatureDef("lead_source", "categorical", "lead_source")]).iloc[0]
    assert lead_source["reading"] == "every one of these leads is webinar (+0.20): nothing to compare it with"
    assert lead_source["best_value"] == "webinar" and lead_source["worst_value"] is None


def test_a_flag_reads_by_where_it_is_present_and_values_all_on_one_side_are_not_called_helps_and_hurts():
    """"More of it" means nothing for a yes/no flag (a free e-mail address, no phone), and a source that lowers
    every score it touches does not "help most"."""
    catalog = [FeatureDef("email_free", "numeric", "email_domain_type"),
               FeatureDef("missing_email", "numeric", "email_domain_type"),
               FeatureDef("lead_source", "categorical", "lead_source")]
    free = np.arange(60) < 20
    features = pd.DataFrame({"email_free": np.where(free, 1.0, 0.0), "missing_email": 0.0,
                             "lead_source": np.where(np.arange(60) % 2 == 0, "webinar", "event")})
    signals = pd.DataFrame({"email_domain_type": np.where(free, -0.5, 0.1),
                            "lead_source": np.where(np.arange(60) % 2 == 0, -0.1, -0.4)})
    rows = audit.ExplainedRows(features, np.zeros(60), np.full(60, 0.1), signals, np.zeros(60))
    table = audit.signal_importance(rows, catalog).set_index("signal")
    assert table.loc["email_domain_type", "reading"] == ("leads with non-business e-mail (free, student, competitor or "
                                                        "none) score lower (20 leads, -0.50 on average; +0.10 for the others)")
    assert table.loc["lead_source", "reading"] == "every value lowers the score; least: webinar (-0.10), most: event (-0.40)"
    # Two referral leads raise their scores: too few to compare, so "every value" would not be true
    features.loc[:1, "lead_source"], signals.loc[:1, "lead_source"] = "referral", 0.8
    rows = audit.ExplainedRows(features, np.zeros(60), np.full(60, 0.1), signals, np.zeros(60))
    reading = audit.signal_importance(rows, catalog).set_index("signal").loc["lead_source", "reading"]
    assert reading == f"every value of {audit.MIN_LEVEL_ROWS}+ leads lowers the score; least: webinar (-0.10), most: event (-0.40)"


def test_a_yes_no_signal_reads_in_the_words_the_score_card_gives_its_leads(audited, trained):
    """"missing phone: raises the score where present" was the code talking: a yes/no signal reads 'leads with "No
    phone number" score lower', quoting what the score card says of those leads, as reps and marketing both see it."""
    table = sections(audited)["importance"].tables["signals"].set_index("signal")
    rows = audited.audit.rows
    said, _ = describe(rows.features, trained.scorer.features)
    for signal in ("missing_phone", "email_domain_type"):
        present = rows.features[[d.name for d in trained.scorer.catalog if d.signal == signal]].sum(axis=1).gt(0)
        phrases = said.loc[present, signal].value_counts().index.tolist()  # most leads first
        contribution = rows.signals[signal]
        effect = "higher" if contribution[present].mean() > contribution[~present].mean() else "lower"
        reading = table.loc[signal, "reading"]
        assert reading.startswith(f'leads with "{phrases[0]}"') and all(f'"{p}"' in reading for p in phrases)
        assert reading.endswith(f" score {effect} ({present.sum():,} leads, {contribution[present].mean():+.2f} on "
                                f"average; {contribution[~present].mean():+.2f} for the others)")
    assert table.loc["missing_phone", "reading"].startswith('leads with "No phone number" score ')
    assert '"Free e-mail domain"' in table.loc["email_domain_type", "reading"]
    assert "where present" not in audited.paths[0].read_text(encoding="utf-8")


def test_a_count_that_is_0_or_1_in_a_slice_still_reads_as_a_count():
    """In a notebook slice every lead may have attended 0 or 1 webinars: that is still "more of it", not a yes/no
    flag "present" in some leads; a real flag (no phone) reads as present or absent whatever its values."""
    catalog = [FeatureDef("webinar_90d", "numeric", "webinar", 90), FeatureDef("missing_phone", "numeric", "missing_phone")]
    once = np.arange(40) < 10
    features = pd.DataFrame({"webinar_90d": np.where(once, 1.0, 0.0), "missing_phone": np.where(once, 0.0, 1.0)})
    signals = pd.DataFrame({"webinar": np.where(once, 0.3, -0.1), "missing_phone": np.where(once, 0.05, -0.2)})
    rows = audit.ExplainedRows(features, np.zeros(40), np.full(40, 0.1), signals, np.zeros(40))
    table = audit.signal_importance(rows, catalog).set_index("signal")
    assert table.loc["webinar", "reading"] == "more of it raises the score (direction +1.00)"
    assert table.loc["missing_phone", "reading"] == ("leads with missing phone score lower (30 leads, -0.20 on average; "
                                                     "+0.05 for the others)")


def test_dependence_covers_the_top_signals(audited):
    by_key = sections(audited)
    top = by_key["importance"].tables["signals"]["signal"].head(audit.TOP_SIGNALS)
    dependence = by_key["dependence"].tables["dependence"]
    assert list(dict.fromkeys(dependence["signal"])) == list(top)
    assert dependence.groupby("signal")["rows"].sum().eq(audited.audit.model["test_rows"]).all()


def test_values_of_too_few_leads_are_pooled_in_the_value_table_and_plots_not_shown_as_full_bars():
    """X Education's one "Businessman" lead would be a bar as long as 1,068 "Unemployed" ones; as the importance
    table leaves such values out, the value-by-value table pools them, and the plots show them as such or not."""
    sizes = {"Unemployed": 60, "Student": 25, "Housewife": 4, "Other": 2, "Businessman": 1}
    effects = {"Unemployed": -0.1, "Student": -0.3, "Housewife": 0.2, "Other": 0.4, "Businessman": 1.3}
    occupation = np.repeat(list(sizes), list(sizes.values()))
    n = len(occupation)
    rows = audit.ExplainedRows(pd.DataFrame({"occupation": occupation}), np.zeros(n), np.full(n, 0.2),
                               pd.DataFrame({"occupation": [effects[v] for v in occupation]}), np.zeros(n))
    catalog = [FeatureDef("occupation", "categorical", "occupation")]

    section = audit.dependence_section(rows, catalog, ["occupation"])

    table = section.tables["dependence"]
    assert table["value"].tolist() == ["Unemployed", "Student", f"(3 values, each with under {audit.MIN_LEVEL_ROWS} leads)"]
    assert table["rows"].tolist() == [60, 25, 7]
    assert table["mean_contribution"].iloc[-1] == pytest.approx((4 * 0.2 + 2 * 0.4 + 1.3) / 7)
    (panel,) = [ax for ax in section.figures["dependence"].axes if ax.get_visible()]
    bars = {label.get_text(): bar.get_facecolor() for label, bar in zip(panel.get_yticklabels(), panel.patches)}
    assert "Businessman" not in bars and bars[table["value"].iloc[-1]][:3] == pytest.approx((0.7529, 0.7529, 0.7529), abs=1e-3)
    assert "pooled in one row (grey in the plot)" in section.notes[0]
    one = audit.dependence_table(rows.subset(~np.isin(occupation, ["Housewife", "Businessman"])), catalog, ["occupation"])
    assert one["value"].iloc[-1] == f"(1 value with under {audit.MIN_LEVEL_ROWS} leads)"

    # The sources plot: a source of 2 leads converting 100% is no bar of its own
    outcomes = pd.DataFrame([{"lead_source": source, "outcome": "converted" if i % 2 or source == "Live Chat" else "rejected",
                              "reason": np.nan} for source, count in (("Google", 40), ("Reference", 30), ("Live Chat", 2))
                             for i in range(count)])
    summary, mix = audit.segment_outcomes(outcomes, "lead_source")
    plotted = [t.get_text() for t in audit.segments_plot(summary, mix, "lead_source").axes[0].get_yticklabels()]
    assert sorted(plotted) == ["Google (40)", "Reference (30)"] and "Live Chat" in summary["lead_source"].tolist()
    with warnings.catch_warnings():  # no empty legend either
        warnings.simplefilter("error")
        small = audit.segments_plot(summary[summary["lead_source"] == "Live Chat"], mix, "lead_source")
    assert [t.get_text() for t in small.axes[0].texts] == ["no lead source has 20 or more leads with an outcome"]


def test_the_value_plot_of_a_category_shows_the_values_the_importance_table_names():
    """X Education's Specialization: the importance table says E-COMMERCE (23 leads) helps most, and the value plot, of
    the 12 values with most leads, left it out. The plot shows those and the best and worst, and says so."""
    sizes = {f"big {i:02}": 100 + i for i in range(14)} | {"E-COMMERCE": 23, "Travel": 21, "Tiny": 3}
    effects = {f"big {i:02}": 0.01 * i for i in range(14)} | {"E-COMMERCE": 0.5, "Travel": -0.4, "Tiny": 2.0}
    values = np.repeat(list(sizes), list(sizes.values()))
    n = len(values)
    rows = audit.ExplainedRows(pd.DataFrame({"specialization": values}), np.zeros(n), np.full(n, 0.2),
                               pd.DataFrame({"specialization": [effects[v] for v in values]}), np.zeros(n))
    catalog = [FeatureDef("specialization", "categorical", "specialization")]

    importance = audit.signal_importance(rows, catalog).iloc[0]
    assert (importance["best_value"], importance["worst_value"]) == ("E-COMMERCE", "Travel")
    section = audit.dependence_section(rows, catalog, ["specialization"])
    (panel,) = [ax for ax in section.figures["dependence"].axes if ax.get_visible()]
    plotted = [label.get_text() for label in panel.get_yticklabels()]
    assert set(plotted) == {f"big {i:02}" for i in range(2, 14)} | {"E-COMMERCE", "Travel"}
    assert plotted[0] == "Travel" and plotted[-1] == "E-COMMERCE"  # worst at the bottom, best on top
    assert panel.get_title() == "specialization\n(14 of its 17 rows: most leads, best and worst)"
    assert len(section.tables["dependence"]) == 17  # every value, the rare one pooled


def test_a_long_field_name_wraps_in_its_value_plot_title_instead_of_running_off_the_panel():
    """X Education's "What matters most to you in choosing a course" ran past its panel's edge as one line; a panel
    title wraps at PANEL_TITLE_CHARS, every word kept, and the count of rows shown stays on its own line."""
    name = "What matters most to you in choosing a course, and why"
    n = 60
    values = np.repeat(["Better Career Prospects", "Other"], n // 2)
    rows = audit.ExplainedRows(pd.DataFrame({"choice": values}), np.zeros(n), np.full(n, 0.2),
                               pd.DataFrame({"choice": np.where(values == "Other", -0.2, 0.3)}), np.zeros(n),
                               crm_fields={"choice": name})
    catalog = [FeatureDef("choice", "categorical", "choice")]

    (panel,) = [ax for ax in audit.dependence_plot(rows, catalog, audit.dependence_table(rows, catalog, ["choice"])).axes
                if ax.get_visible()]

    lines = panel.get_title().split("\n")
    assert len(lines) > 1 and all(len(line) <= audit.PANEL_TITLE_CHARS for line in lines)
    assert " ".join(lines) == name
    assert audit.panel_title("Lead Origin") == "Lead Origin"


def test_the_value_plot_of_a_number_crops_a_far_outlier_and_says_so():
    """X Education's one lead of 251 visits stretched the TotalVisits panel to 260, every other lead (0 to 30) in a
    sliver at its left edge. The panel ends at twice the 99th percentile and counts the leads beyond."""
    visits = np.r_[np.tile(np.arange(21.0), 10), [251.0]]
    n = len(visits)
    rows = audit.ExplainedRows(pd.DataFrame({"visits": visits}), np.zeros(n), np.full(n, 0.2),
                               pd.DataFrame({"visits": visits / 100}), np.zeros(n))
    catalog = [FeatureDef("visits", "numeric", "visits")]

    (panel,) = [ax for ax in audit.dependence_section(rows, catalog, ["visits"]).figures["dependence"].axes
                if ax.get_visible()]
    assert panel.get_xlim()[1] == pytest.approx(40.0)
    assert panel.get_xlabel() == "visits (value)\n1 lead over 40 (up to 251) off the plot"

    spread = rows.subset(visits < 100)  # nothing far out: the whole range, no note
    (panel,) = [ax for ax in audit.dependence_section(spread, catalog, ["visits"]).figures["dependence"].axes
                if ax.get_visible()]
    assert panel.get_xlim()[1] > 20 and panel.get_xlabel() == "visits (value)"


def test_a_lead_cropped_off_the_value_plot_does_not_stretch_its_effect_axis():
    """The one lead of 251 visits, off the plot at 40, still set its effect axis: its +5.0 squeezed every lead shown,
    -0.3 to +0.3, into a band at the bottom of the panel. The panel's effect axis spans the leads it shows."""
    visits = np.r_[np.tile(np.arange(21.0), 10), [251.0]]
    n = len(visits)
    effect = np.r_[np.linspace(-0.3, 0.3, n - 1), [5.0]]
    rows = audit.ExplainedRows(pd.DataFrame({"visits": visits}), np.zeros(n), np.full(n, 0.2),
                               pd.DataFrame({"visits": effect}), np.zeros(n))
    (panel,) = [ax for ax in audit.dependence_section(rows, [FeatureDef("visits", "numeric", "visits")], ["visits"])
                .figures["dependence"].axes if ax.get_visible()]
    assert panel.get_xlim()[1] == pytest.approx(40.0)
    assert panel.get_xlabel().endswith("1 lead over 40 (up to 251) off the plot")
    assert panel.get_ylim()[1] < 1


def test_the_value_plot_of_a_count_starts_at_zero():
    """X Education's TotalVisits panel started at -10 visits, the axis' padding: a count starts at 0, cropped or not,
    while a number that can be negative keeps its padding below its smallest value."""
    catalog = [FeatureDef("visits", "numeric", "visits")]
    for visits in (np.r_[np.tile(np.arange(21.0), 10), [251.0]], np.tile(np.arange(21.0), 10)):
        n = len(visits)
        rows = audit.ExplainedRows(pd.DataFrame({"visits": visits}), np.zeros(n), np.full(n, 0.2),
                                   pd.DataFrame({"visits": visits / 100}), np.zeros(n))
        (panel,) = [ax for ax in audit.dependence_section(rows, catalog, ["visits"]).figures["dependence"].axes
                    if ax.get_visible()]
        assert panel.get_xlim()[0] == 0
    change = np.tile(np.arange(-5.0, 16.0), 10)
    n = len(change)
    rows = audit.ExplainedRows(pd.DataFrame({"visits": change}), np.zeros(n), np.full(n, 0.2),
                               pd.DataFrame({"visits": change / 100}), np.zeros(n))
    (panel,) = [ax for ax in audit.dependence_section(rows, catalog, ["visits"]).figures["dependence"].axes
                if ax.get_visible()]
    assert panel.get_xlim()[0] < -5


def test_the_legend_of_a_cropped_value_plot_hides_none_of_its_note():
    """X Education's TotalVisits panel: its legend, placed where the panel is emptiest, the lower right, covered the
    note '1 lead over 34 (up to 251) off the plot' written in that corner. Leads of 0 or 1 visit spread over every
    effect and leads of more visits scoring high leave only that corner empty, as there."""
    visits = np.r_[np.tile(np.arange(21.0), 10), [251.0]]
    n = len(visits)
    effect = np.where(visits <= 1, np.linspace(-0.4, 0.3, n), 0.1 + np.minimum(visits, 10) / 50)
    rows = audit.ExplainedRows(pd.DataFrame({"visits": visits}), np.zeros(n), np.full(n, 0.2),
                               pd.DataFrame({"visits": effect}), np.zeros(n))
    catalog = [FeatureDef("visits", "numeric", "visits")]

    figure = audit.dependence_section(rows, catalog, ["visits"]).figures["dependence"]
    figure.canvas.draw()

    (panel,) = [ax for ax in figure.axes if ax.get_visible()]
    legend = panel.get_legend().get_window_extent()
    notes = [text for text in [*panel.texts, panel.xaxis.label] if "off the plot" in text.get_text()]
    assert len(notes) == 1 and not notes[0].get_window_extent().overlaps(legend)


def test_number_bands_of_too_few_leads_are_merged_as_rare_values_are_pooled():
    """The sample's 18 leads with 4 e-mail opens had a row and a plotted point of their own beside 508 with 0 to 3;
    a band of under 20 leads is merged with the next (the top one with the one below), and leads without a number,
    a row of their own, are marked as few."""
    opens = [0] * 50 + [1] * 30 + [2] * 15 + [3] * 5 + [9] * 3  # a few values: one band each
    minutes = [0.0] * 60 + list(range(1, 41)) + [np.nan] * 3  # many values: bands of about equal size
    n = len(minutes)
    features = pd.DataFrame({"email_open": opens, "time_on_website": minutes})
    signals = pd.DataFrame({"email_open": np.linspace(-0.2, 0.5, n), "time_on_website": np.linspace(-0.3, 0.3, n)})
    rows = audit.ExplainedRows(features, np.zeros(n), np.full(n, 0.2), signals, np.zeros(n))
    catalog = [FeatureDef("email_open", "numeric", "email_open"), FeatureDef("time_on_website", "numeric", "time_on_website")]

    table = audit.dependence_section(rows, catalog, ["email_open", "time_on_website"]).tables["dependence"]

    opened = table[table["signal"] == "email_open"]
    assert opened[["value", "rows"]].values.tolist() == [["0", 50], ["1", 30], ["2 to 9", 23]]
    assert opened["mean_contribution"].iloc[2] == pytest.approx(signals["email_open"].iloc[80:].mean())
    time = table[table["signal"] == "time_on_website"]
    assert time[["value", "rows"]].values.tolist() == [
        ["0", 60], ["1 to 20", 20], ["21 to 40", 20],  # 10 and 10 leads merged
        [f"(missing, with under {audit.MIN_LEVEL_ROWS} leads)", 3]]
    assert time["mean_value"].iloc[1] == pytest.approx(np.mean(range(1, 21)))
    # A slice of fewer than 20 leads is one band
    assert audit.value_bands(pd.Series([1.0, 2.0, np.nan, 3.0])).tolist()[:2] == ["1 to 3", "1 to 3"]


def test_a_counts_bands_read_in_whole_numbers_and_an_amounts_edges_in_the_digits_that_keep_its_bands_apart():
    """A count of minutes read "over 0.4 up to 20.2" for the leads of 1 to 20, and X Education's time on the website
    "over 240 up to 349.6" (seconds); an amount's edges had as many digits as its quantiles. A count's bands run from a
    whole number to a whole number, each from the one after the last; an amount's edges have as few significant digits
    as keep its bands about equal; and every lead lies in its band as it reads."""
    def bounds(band: str) -> tuple[float, float]:
        numbers = [float(n.replace(",", "")) for n in band.replace("over ", "").replace("up to ", "").split()
                   if n[0].isdigit()]
        low = -np.inf if band.startswith("up to") else numbers[0]
        high = np.inf if band.startswith("over") and " up to " not in band else numbers[-1]
        return low, high

    visits = pd.Series(np.r_[np.zeros(300), np.tile(np.arange(1.0, 61.0), 10), [251.0]])
    bands = audit.value_bands(visits)
    ranges = [bounds(band) for band in pd.unique(bands)]  # the values are in order, so are their bands
    assert all(value.is_integer() for bound in ranges for value in bound)
    assert ranges[0][0] == 0 and ranges[-1][1] == 251
    assert all(after[0] == before[1] + 1 for before, after in zip(ranges, ranges[1:]))
    assert all(low <= value <= high for value, (low, high) in zip(visits, bands.map(bounds)))

    per_visit = pd.Series(np.r_[np.arange(1000) / 7, [1000 / 3]])  # pages per visit: 0.142857...
    bands = audit.value_bands(per_visit)
    assert pd.unique(bands).tolist() == [
        "up to 14.3", "over 14.3 up to 28.6", "over 28.6 up to 42.9", "over 42.9 up to 57.1", "over 57.1 up to 71.4",
        "over 71.4 up to 85.7", "over 85.7 up to 100", "over 100 up to 114", "over 114 up to 129", "over 129"]
    assert all(low < value <= high or value == per_visit.min()
               for value, (low, high) in zip(per_visit, bands.map(bounds)))
    assert bands.value_counts().between(95, 105).all()  # about equal: 110 and 130 made bands of 70 and 140 leads


def test_the_icp_match_reads_as_the_criteria_a_lead_meets_in_the_score_cards_words(audited, trained):
    """The score card says "Matches 1 of 4 ideal customer profile criteria"; the value table said 0.25 and its plot
    spread the leads from 0 to 1. Each band reads as the card's words, merged ones as "Matches 3 to 4 of 4 ..."."""
    rows, catalog = audited.audit.rows, trained.scorer.catalog
    table = audit.dependence_table(rows, catalog, ["icp_match"])

    cards = set(audit.card_phrases(rows)["icp_match"])
    assert cards >= {"Matches none of the 4 ideal customer profile criteria", "Matches 1 of 4 ideal customer profile criteria"}
    merged = table["value"].str.contains(" to ")
    assert set(table["value"][~merged]) <= cards and (~merged).sum() >= 2
    assert table["value"][merged].str.fullmatch(r"Matches \d to \d of 4 ideal customer profile criteria").all()
    assert table["mean_value"].between(0, 4).all() and table["rows"].sum() == len(rows.y)
    axes = audit.dependence_plot(rows, catalog, table).axes[0]
    assert axes.get_xlabel() == "ideal customer profile criteria met, of 4"
    assert set(axes.collections[0].get_offsets()[:, 0]) <= {0, 1, 2, 3, 4}
    assert "1 of 4 ideal customer profile criteria" in audit.table_html("dependence", table)


def test_the_icp_match_reads_in_the_models_own_phrase_when_params_override_it(audited, trained):
    """features.phrases.icp_match rewords the score card's factor ("Fits 1 of our 4 target-account rules"); the audit's
    value table kept the built-in words, so marketing and the reps read the same leads differently. It words each band
    by the model's own template, as the card does."""
    rows, catalog = audited.audit.rows, trained.scorer.catalog
    spec = trained.scorer.features.model_copy(update={"phrases": {
        "icp_match": "Fits {matched} of our {criteria} target-account rules | [none] Fits none of our target-account rules"}})
    reworded = dataclasses.replace(rows, spec=spec)  # as a model trained with that override explains its rows

    table = audit.dependence_table(reworded, catalog, ["icp_match"])

    cards = set(audit.card_phrases(reworded)["icp_match"])
    assert {"Fits none of our target-account rules", "Fits 1 of our 4 target-account rules"} <= cards
    merged = table["value"].str.contains(" to ")
    assert set(table["value"][~merged]) <= cards and (~merged).sum() >= 2
    assert table["value"][merged].str.fullmatch(r"Fits \d to \d of our 4 target-account rules").all()
    assert not table["value"].str.contains("ideal customer profile").any()


def test_an_icp_match_override_that_formats_the_count_words_a_merged_band_too(audited, trained):
    """An override formatting the count as a number ("{matched:d}") passes params validation, which renders it with
    a count, and the score card words it; the value table's merged band ("3 to 4") was text, and the audit crashed
    with "Unknown format code 'd' for object of type 'str'". Each end of a band is formatted as a count is."""
    rows, catalog = audited.audit.rows, trained.scorer.catalog
    template = "{matched:d} of {criteria:d} ICP criteria met | [none] No ICP criteria met"
    spec = trained.scorer.features.model_copy(update={"phrases": {"icp_match": template}})
    assert phrase_templates(spec)["icp_match"] == template  # validated as train and retrain validate it
    met = (rows.features["icp_match"] * 4).round()
    top = met == met.max()
    few_at_top = ~top | (top.cumsum() <= audit.MIN_LEVEL_ROWS // 2)  # too few to show alone: merged with the band below
    reworded = dataclasses.replace(rows.subset(few_at_top), spec=spec)

    table = audit.dependence_table(reworded, catalog, ["icp_match"])

    merged = table["value"].str.contains(" to ")
    assert merged.any() and table["value"][merged].str.fullmatch(r"\d to \d of 4 ICP criteria met").all()
    assert set(table["value"][~merged]) <= set(audit.card_phrases(reworded)["icp_match"])


def test_source_table_counts_the_export_and_rejection_reasons_sum_to_one_per_source(audited, trained):
    segments = sections(audited)["segments"].tables
    summary, mix = segments["by_lead_source"], segments["rejection_reasons_by_lead_source"]
    leads = trained.training_set.crm.leads  # the same export; the audit reads it as of the model's as_of
    assert summary["leads"].sum() == (leads["created_at"] <= pd.Timestamp(audited.audit.model["as_of"])).sum()
    shares = mix.groupby("lead_source")["share"].sum()
    np.testing.assert_allclose(shares.to_numpy(), 1.0)
    rejected = summary.set_index("lead_source")["rejected"]
    assert mix.groupby("lead_source")["rejected"].sum().to_dict() == rejected[rejected > 0].to_dict()
    labels = trained.training_set.labels  # the leads training leaves out are no outcome of a source's
    excluded = sum(n for rule, n in labels.counts.items() if rule.startswith("excluded:"))
    assert summary["excluded"].sum() == excluded > 0
    assert summary["decided"].sum() == labels.frame["label"].notna().sum()  # the leads training learns from
    # The synthetic CRM has deal amounts: won revenue is reported, and only for converted leads.
    assert summary["won_revenue"].sum() > 0
    assert (summary.loc[summary["converted"] == 0, "won_revenue"] == 0).all()


def test_the_revenue_note_counts_the_won_deals_whose_amount_ingest_left_out(audited, trained, sample_dir, tracking_dir,
                                                                            tmp_path):
    """Two won deals have a negative amount in the CRM: ingest keeps the wins without it (on_error: drop), and won
    revenue counts them as 0, so their source and campaign read as worth less. Only the ingest report said so; the
    audit marketing reads says it too, with how many. The clean sample's audit has no such note."""
    assert not [note for note in sections(audited)["segments"].notes if "deal amount" in note]
    outcomes = pd.read_csv(sample_dir / "outcomes.csv", dtype=str, keep_default_na=False)
    merged = trained.training_set.crm.merged_by_email.index  # their outcomes are dropped, with their amounts
    won = outcomes.index[outcomes["status"].eq("converted") & ~outcomes["lead_id"].isin(merged)][:2]
    outcomes.loc[won, "amount"] = "-1200"
    outcomes.to_csv(tmp_path / "outcomes.csv", index=False)
    params = params_for(sample_dir, tracking_dir, **{"data.outcomes": str(tmp_path / "outcomes.csv"),
                                                     "data.on_error": "drop",
                                                     "serving.store_url": f"sqlite:///{tmp_path / 'store.db'}"})
    scorer, training_set = audit.load_inputs(params, "champion")
    assert training_set.crm.report.tables["outcomes"].cleared == {"amount": 2}

    segments = {s.key: s for s in audit.build_audit(scorer, training_set, params).sections}["segments"]

    converted = segments.tables["by_lead_source"]["converted"].sum()
    assert ("Won revenue counts a converted lead without a deal amount as 0, so its source and campaign read as worth "
            f"less than they are: 2 of the {converted:,} converted leads have none; ingest left out 2 of the export's "
            "deal amounts as invalid (negative, not a number or out of range; see the ingest report), keeping their "
            "leads' decisions.") in segments.notes


def test_won_revenue_is_headed_with_the_currency_data_currency_names(sample_params):
    """Won revenue read '8,535,000' with no currency: euros or rupees? data.currency heads its column on the page and in
    the notebook ("won revenue (EUR)") and is a model detail; unset, the heading names none, as before."""
    assert sample_params.data.currency is None
    summary = pd.DataFrame({"lead_source": ["web"], "leads": [3], "won_revenue": [8535000.0]})

    page = _PageTables("<h3>by lead source</h3>" + audit.table_html("by_lead_source", summary, currency="EUR"))

    assert page.tables["by lead source"][0]["won revenue (EUR)"] == "8,535,000"
    assert "won revenue" in _PageTables("<h3>by lead source</h3>" + audit.table_html(
        "by_lead_source", summary)).tables["by lead source"][0]
    report = audit.Audit(model={"name": "leadscore", "version": "1", "currency": "EUR"}, rows=None,
                         sections=[audit.Section("segments", "Lead sources", tables={"by_lead_source": summary})])
    page = audit.render_html(report)
    assert "won revenue (EUR)" in page and "currency of deal amounts" in page


def test_the_revenue_note_counts_converted_leads_without_an_amount_and_an_export_of_only_invalid_ones():
    """A blank amount counts 0 as well, said without an ingest count when ingest left none out; an export whose every
    amount was invalid has no won revenue to report, and says why rather than that the export has no amounts."""
    outcomes = pd.DataFrame({"lead_source": ["web", "web", "event"], "campaign": ["a", "b", "a"],
                             "outcome": ["converted", "converted", "rejected"], "reason": [None, None, "no_budget"],
                             "amount": [1200.0, np.nan, np.nan]})

    assert ("Won revenue counts a converted lead without a deal amount as 0, so its source and campaign read as worth "
            "less than they are: 1 of the 2 converted leads has none.") in audit.segments_section(outcomes).notes
    no_amounts = audit.segments_section(outcomes.drop(columns="amount"), invalid_amounts=3).notes
    assert ("This export has no valid deal amounts: ingest left out its 3 as invalid (negative, not a number or out of "
            "range; see the ingest report), so won revenue is not reported.") in no_amounts
    assert not [note for note in audit.segments_section(outcomes.fillna({"amount": 50.0})).notes if "deal amount" in note]


def test_the_source_note_counts_the_leads_it_tables_and_the_export_rows_they_come_from(audited, trained):
    """Marketing checks the count against its CRM export: two rows with one e-mail are one lead here."""
    segments = sections(audited)["segments"]
    counted = segments.tables["by_lead_source"]["leads"].sum()
    report = trained.training_set.crm.report.tables["leads"]
    merged = report.dropped["merged_by_email"]
    assert merged and counted == report.rows_read - merged  # the sample CRM has e-mail duplicates, nothing else
    assert segments.notes[0].startswith(f"All {counted:,} leads of the export ({report.rows_read:,} rows; {merged:,} "
                                        "merged by e-mail into an earlier lead with the same address); rates are over")
    # Its conversion rates count a converted status within the horizon only, as the label does.
    assert ("Conversion = the CRM's converted status within 120 days of a lead's creation, as the model learns it: a "
            "later conversion counts as not converted, as does a lead still open after 120 days; acceptance"
            ) in segments.notes[0]


def test_the_source_note_names_no_horizon_where_the_label_has_none_and_speaks_of_later_decisions():
    """An undated export (X Education) has no label.horizon_days to point at; a store whose every decision came
    after the model's date still changed nothing, and the note says so rather than nothing."""
    from pipelines.audit import segments_section
    from pipelines.history import FeedbackMerge

    outcomes = pd.DataFrame({"lead_source": ["web", "web", "event"], "campaign": ["a", "b", "a"],
                             "outcome": ["converted", "rejected", "censored"], "reason": [None, "no_budget", None]})
    later = FeedbackMerge(as_of=pd.Timestamp("2025-01-01"), decided_later=3)

    note = segments_section(outcomes, feedback=later).notes[0]

    assert "horizon" not in note and "whenever it came; acceptance = share not rejected." in note
    # Converted or rejected, as every lead of X Education with an outcome: the two rates are one, which the note says.
    assert ("Every one of them converted or was rejected (none is nurtured or in another status), so acceptance "
            "equals conversion.") in note
    nurtured = outcomes.assign(outcome=["converted", "other", "rejected"])
    assert "acceptance equals" not in segments_section(nurtured).notes[0]
    # A source or campaign left blank is a row '(missing)', named among the most rejected: the note says what it is.
    assert "(missing)" not in note
    assert ("training counts them. 1 more has no outcome training counts yet (still open). (missing) stands for the "
            "leads without a campaign. Conversion = ") in segments_section(
        outcomes.assign(campaign=["a", None, None])).notes[0]
    both = outcomes.assign(campaign=["a", None, None], lead_source=[None, "web", "web"])
    assert " (missing) stands for the leads without a lead source or a campaign. " in segments_section(both).notes[0]
    assert "3 decisions dated after 2025-01-01 00:00 not used (not known then)" in note


def test_the_source_note_says_what_the_feedback_store_changed_in_the_outcomes(audited, sample_dir, tracking_dir, tmp_path):
    """Sales won a lead back after the export had it rejected: the source tables count it converted, and the
    note, the page and the MLflow run say the outcomes include the service's feedback, in train's words."""
    import html

    from serving.store import Store

    assert "feedback store" not in sections(audited)["segments"].notes[0]  # no store yet: nothing to say
    params = params_for(sample_dir, tracking_dir, **{"tracking.registered_model": "audit_first_version",
                                                     "serving.store_url": f"sqlite:///{tmp_path / 'store.db'}"})
    outcomes = pd.read_csv(sample_dir / "outcomes.csv", parse_dates=["decided_at"])
    as_of = pd.Timestamp(audited.audit.model["as_of"])
    won_back = outcomes[(outcomes["status"] == "rejected") & (outcomes["decided_at"] < as_of - pd.Timedelta(days=30))].iloc[0]
    Store.from_params(params).add_feedback({
        "event_id": "won-back", "lead_id": won_back["lead_id"], "status": "converted", "reason": None,
        "decided_at": f"{won_back['decided_at'] + pd.Timedelta(days=1):%Y-%m-%dT%H:%M:%S}Z"})

    result = audit.run_audit(params, out_dir=tmp_path / "audit")

    segments = sections(result)["segments"]
    assert segments.tables["by_lead_source"]["converted"].sum() == (
        sections(audited)["segments"].tables["by_lead_source"]["converted"].sum() + 1)
    line = "feedback store: 1 lead decision, 1 replace the export's (decided later, at the same time, or undated there)"
    line += ": 1 changes a lead's outcome or adds one the export lacks"
    assert segments.notes[0].endswith(f"acceptance = share not rejected. Outcomes include the decisions sales sent "
                                      f"to the service: {line}.")
    assert html.escape(line) in result.paths[0].read_text(encoding="utf-8")
    logged = json.loads(mlflow.artifacts.load_text(f"runs:/{result.run_id}/audit/audit.json"))
    assert logged["sections"][2]["notes"][0] == segments.notes[0]


def test_export_rows_names_every_row_that_is_no_counted_lead():
    from pipelines.ingest import TableReport

    leads = TableReport("leads.csv", rows_read=10_000, rows_kept=9_750, dropped={"merged_by_email": 200, "unparsable_date": 50})
    training_set = SimpleNamespace(crm=SimpleNamespace(report=IngestReport({"leads": leads})),
                                   as_of=pd.Timestamp("2026-01-01"))
    assert audit.export_rows(training_set, 9_700) == (
        "10,000 rows; 200 merged by e-mail into an earlier lead with the same address, 50 dropped at ingest (see the "
        "ingest report), 50 created after 2026-01-01")
    every_row = TableReport("leads.csv", rows_read=9_750, rows_kept=9_750)
    assert audit.export_rows(SimpleNamespace(crm=SimpleNamespace(report=IngestReport({"leads": every_row})),
                                             as_of=None), 9_750) == ""


def _labelled(leads: pd.DataFrame, outcomes: pd.DataFrame, label) -> SimpleNamespace:
    """What `lead_outcomes` reads of a TrainingSet: the export and the labels training gives its leads."""
    return SimpleNamespace(labels=build_labels(leads, outcomes, label),
                           crm=CRMData(leads, None, outcomes, IngestReport()))


def test_a_status_the_label_policy_excludes_is_no_outcome_of_the_source(sample_params):
    """A duplicate is not a lead the source brought in: counted as decided, it read as an accepted lead."""
    ids = ["d", "n", "r"]
    training_set = _labelled(pd.DataFrame({"lead_id": ids, "lead_source": ["web"] * 3}),
                             pd.DataFrame({"lead_id": ids, "status": [" Duplicate", "nurture", "rejected"],
                                           "reason": [None, None, "no_budget"]}), sample_params.label)
    outcomes = audit.lead_outcomes(training_set, sample_params.label)
    assert outcomes["outcome"].tolist() == ["excluded", "other", "rejected"]
    web = audit.segment_outcomes(outcomes, "lead_source")[0].set_index("lead_source").loc["web"]
    assert (web["leads"], web["decided"], web["excluded"], web["rejected"]) == (3, 2, 1, 1)


def test_a_rejection_the_label_policy_excludes_is_left_out_of_the_rates_as_in_training(sample_params):
    """X Education's 156 leads tagged 'invalid number' and the like, which training leaves out, were counted as
    rejections: 9,240 leads with an outcome in the table, 9,084 trained on, and nothing saying why. They are left out of
    the rates by the same label rule training reads, counted in a column of their own, and the note says which."""
    label = sample_params.label.model_copy(update={"reasons": {**sample_params.label.reasons, "invalid number": "exclude"}})
    rows = ([("Google", "converted", None)] * 30 + [("Google", "rejected", "Ringing")] * 40
            + [("Google", "rejected", "invalid number")] * 8 + [("Google", "duplicate", None)] * 2
            + [("Olark Chat", "rejected", "invalid_contact")] * 3 + [("Olark Chat", "rejected", None)] * 20)
    ids = [f"L{i}" for i in range(len(rows))]
    training_set = _labelled(pd.DataFrame({"lead_id": ids, "lead_source": [r[0] for r in rows]}),
                             pd.DataFrame({"lead_id": ids, "status": [r[1] for r in rows], "reason": [r[2] for r in rows]}),
                             label)
    outcomes = audit.lead_outcomes(training_set, label)
    section = audit.segments_section(outcomes)
    summary = section.tables["by_lead_source"].set_index("lead_source")
    trained = training_set.labels.frame["label"].notna()
    assert summary["decided"].sum() == trained.sum() == 90
    assert summary["excluded"].sum() == len(rows) - trained.sum() == 13
    google = summary.loc["Google"]
    assert (google["leads"], google["decided"], google["excluded"], google["rejected"]) == (80, 70, 10, 40)
    assert google["conversion_rate"] == pytest.approx(30 / 70)
    mix = section.tables["rejection_reasons_by_lead_source"]
    assert set(mix[mix["lead_source"] == "Google"]["reason"]) == {"Ringing"}  # no 'invalid number' rejections
    assert section.notes[0].startswith(
        "All 103 leads of the export; rates are over the 90 leads with an outcome, counted as training counts them. 13 more are left out, as training "
        "leaves them out (column 'left out, as in training'): 11 rejected for a reason that says nothing of the lead "
        "(invalid number 8, Invalid contact 3); 2 with a status that is no outcome of a lead, e.g. duplicate.")
    only_reasons = audit.segments_section(outcomes[outcomes["lead_source"] == "Olark Chat"]).notes[0]
    assert "3 more are left out, as training leaves them out (column 'left out, as in training'): rejected for a " \
           "reason that says nothing of the lead (Invalid contact 3)." in only_reasons
    page = _PageTables("<h3>by lead source</h3>" + audit.table_html("by_lead_source", section.tables["by_lead_source"]))
    assert page.tables["by lead source"][0]["left out, as in training"] == "10"


def test_a_source_rate_counts_a_conversion_after_the_horizon_as_training_does(sample_params):
    """Training labels a conversion only within label.horizon_days of the lead's creation; the audit counted a later
    one as converted, so marketing read web at 30 of 40 (75%) where the model learns 20 of 45. A late conversion and a
    lead still open past the horizon are not converted, a late rejection is a rejection, and a lead younger than the
    horizon (label.mature_only) has no outcome to count yet, as in training."""
    label = sample_params.label
    assert label.horizon_days == 120 and label.mature_only
    start = pd.Timestamp("2025-01-01")
    # (source, status, days from creation to decision or None, days old at the export's date)
    kinds = ([("web", "converted", 30)] * 20 + [("web", "converted", 200)] * 10 + [("web", "rejected", 200)] * 10
             + [("web", "open", None)] * 5 + [("event", "converted", 10)] * 25 + [("event", "rejected", 10)] * 25)
    ids = [f"L{i}" for i in range(len(kinds))]
    created = [start] * len(kinds)
    decided = [start + pd.Timedelta(days=d) if d is not None else pd.NaT for _, _, d in kinds]
    young = ["Y1", "Y2", "Y3"]  # created 30 days before the export's date, one converted already
    as_of = start + pd.Timedelta(days=400)
    leads = pd.DataFrame({"lead_id": ids + young, "lead_source": [k[0] for k in kinds] + ["web"] * 3,
                          "created_at": created + [as_of - pd.Timedelta(days=30)] * 3})
    outcomes = pd.DataFrame({"lead_id": ids + ["Y1"], "status": [k[1] for k in kinds] + ["converted"],
                             "reason": [("no_budget" if k[1] == "rejected" else None) for k in kinds] + [None],
                             "decided_at": decided + [as_of]})
    training_set = _labelled(leads, outcomes, label)

    counted = audit.lead_outcomes(training_set, label)
    summary = audit.segment_outcomes(counted, "lead_source")[0]

    web = summary.set_index("lead_source").loc["web"]
    assert (web["leads"], web["decided"], web["converted"], web["rejected"]) == (48, 45, 20, 10)
    assert web["conversion_rate"] == pytest.approx(20 / 45)
    assert web["acceptance_rate"] == pytest.approx(35 / 45)
    trained = training_set.labels.frame["label"]  # what the model learns from, lead by lead
    assert summary["decided"].sum() == trained.notna().sum()
    assert summary["converted"].sum() == (trained == 1).sum()
    assert counted.loc[young, "outcome"].eq("censored").all()
    section = audit.segments_section(counted, label=label)
    assert ("rates are over the 95 leads with an outcome, counted as training counts them. 3 more have no outcome "
            "training counts yet (created within the last 120 days, decided or not (label.mature_only), or still "
            "open). Conversion = the CRM's converted status within 120 days of a lead's creation, as the model learns "
            "it: a later conversion counts as not converted, as does a lead still open after 120 days; acceptance"
            ) in section.notes[0]


def test_sources_and_reasons_read_as_the_crm_spells_them(sample_params):
    """The features compare lead sources lower-cased ("olark chat"); marketing knows the CRM's "Olark Chat". A reason
    code reads as words ("Not decision maker"); X Education's Tags keep their own spelling ("Ringing")."""
    copies = audit.MIN_LEVEL_ROWS  # each lead as often, for every source to have enough rejections to split by reason
    ids = pd.Index([f"L{i}" for i in range(6 * copies)], name="lead_id")
    sources = ["Olark Chat", "olark chat ", "Olark Chat", "Google", "Olark Chat", "google"] * copies
    exported = ["Ringing", "Ringing", "not_decision_maker", "ringing", None, None] * copies
    training_set = _labelled(pd.DataFrame({"lead_id": ids, "lead_source": sources}),
                             pd.DataFrame({"lead_id": ids, "status": (["rejected"] * 5 + ["converted"]) * copies,
                                           "reason": exported}), sample_params.label)

    summary, mix = audit.segment_outcomes(audit.lead_outcomes(training_set, sample_params.label), "lead_source")

    assert summary["lead_source"].tolist() == ["Olark Chat", "Google"]
    assert mix["reason"].tolist() == ["Ringing", "Not decision maker", audit.NO_REASON, "Ringing"]  # Olark Chat, Google
    assert audit.rejection_headlines(summary, "lead_source")[1].startswith(
        "lead source Olark Chat: 80 of 80 leads with an outcome rejected (100%), mostly for Ringing (50% of its "
        "rejections)")
    assert audit.segment_value(summary, "lead_source", "olark chat") == "Olark Chat"

    catalog = [FeatureDef("lead_source", "categorical", "lead_source"), FeatureDef("seniority", "categorical", "seniority")]
    features = pd.DataFrame({"lead_source": ["olark chat"] * 30 + ["google"] * 30, "seniority": ["vp", "intern"] * 30})
    signals = pd.DataFrame({"lead_source": [0.3] * 30 + [-0.2] * 30, "seniority": [0.1, -0.1] * 30})
    rows = audit.ExplainedRows(features, np.zeros(60), np.full(60, 0.2), signals, np.zeros(60),
                               audit.category_spellings(training_set.crm, features, sample_params.features))
    table = audit.signal_importance(rows, catalog).set_index("signal")
    assert table.loc["lead_source", "reading"] == "helps most: Olark Chat (+0.30); hurts most: Google (-0.20)"
    assert table.loc["seniority", "best_value"] == "VP"  # derived from the job title: as a rep reads it
    assert audit.dependence_table(rows, catalog, ["lead_source"])["value"].tolist() == ["Olark Chat", "Google"]
    olark = rows.segment("lead_source", "Olark Chat")  # the notebook's slice, as the tables spell it
    assert len(olark.y) == 30 and olark.spellings == rows.spellings


def test_the_source_note_says_which_spellings_a_source_counts_beside_its_own(sample_params):
    """X Education's table read Google 2,873 leads where the export's own count of 'Google' is 2,868: 5 more write
    'google', counted with it as the features compare them, and nothing said so to the analyst checking the table
    against the export. The sources note names each other spelling and its leads, most first."""
    sources = ["Google"] * 30 + ["google"] * 5 + [" GOOGLE"] * 2 + ["Olark Chat"] * 20 + ["olark chat "] * 1 + ["Event"] * 9
    ids = pd.Index([f"L{i}" for i in range(len(sources))], name="lead_id")
    training_set = _labelled(pd.DataFrame({"lead_id": ids, "lead_source": sources}),
                             pd.DataFrame({"lead_id": ids, "status": "converted", "reason": None}), sample_params.label)
    outcomes = audit.lead_outcomes(training_set, sample_params.label)

    note = audit.merged_spellings(training_set)
    section = audit.segments_section(outcomes.assign(campaign=np.nan), spellings=note)

    assert note == ("A source or campaign written alike but for letter case or spaces is one, named as most of its leads "
                    "write it: Google counts 5 leads written 'google'; Google counts 2 leads written 'GOOGLE'; Olark Chat "
                    "counts 1 lead written 'olark chat'.")
    assert note in section.notes[0]
    google = audit.segment_outcomes(outcomes, "lead_source")[0].set_index("lead_source").loc["Google", "leads"]
    assert google == 37  # 30 + 5 + 2, as the note says
    assert audit.merged_spellings(training_set, limit=1).endswith("Google counts 5 leads written 'google', and 2 more.")
    one_way = _labelled(pd.DataFrame({"lead_id": ids[:30], "lead_source": sources[:30]}),
                        pd.DataFrame({"lead_id": ids[:30], "status": "converted", "reason": None}), sample_params.label)
    assert audit.merged_spellings(one_way) == ""


def test_signals_the_model_does_not_use_are_named_in_one_line_not_tabled(sample_params):
    """X Education's model uses none of 12 of its form fields: 12 rows of importance 0.000 filled the importance table
    and plot (its LightGBM never splits on them; the blend's logistic part moves scores by under 0.0001 log-odds). They
    are left out of both, and one note (and the line under the plot) says how many and which, by the CRM's names, so
    marketing still learns they predict nothing."""
    catalog = [FeatureDef("visits", "numeric", "visits"), FeatureDef("do_not_call", "numeric", "do_not_call"),
               FeatureDef("search", "categorical", "search")]
    n = 60
    features = pd.DataFrame({"visits": np.arange(n, dtype=float), "do_not_call": 0.0, "search": ["no"] * n})
    signals = pd.DataFrame({"visits": np.linspace(-1, 1, n), "do_not_call": 0.0, "search": np.full(n, 1e-4)})
    rows = audit.ExplainedRows(features, np.zeros(n), np.full(n, 0.2), signals, np.zeros(n),
                               crm_fields={"do_not_call": "Do Not Call", "search": "Search"})

    section = audit.importance_section(rows, catalog)

    assert section.tables["signals"]["signal"].tolist() == ["visits"]
    line = "2 signals the model does not use (importance 0.000), left out: Search, Do Not Call."
    assert line in section.notes
    assert section.figures["importance"].get_supxlabel() == line
    assert [t.get_text() for t in section.figures["importance"].axes[0].get_yticklabels()] == ["visits"]


def test_a_value_that_a_value_map_renames_is_named_as_the_export_writes_it(sample_params, tmp_path):
    """The CRM writes 'TT' for a source that data.value_maps renames 'TikTok': the audit's tables name 'TT', as
    marketing finds it in the file and as monitor and `leadscore score` name it, not the map's 'TikTok'."""
    leads = pd.read_csv(sample_params.resolve(sample_params.data.leads), dtype=str, keep_default_na=False)
    paid = np.flatnonzero(leads["lead_source"] == "paid_search")
    leads.loc[paid, "lead_source"] = "TT"
    leads.loc[paid[::4], "lead_source"] = "tiktok"  # the same source once mapped, written less often
    leads.to_csv(tmp_path / "leads.csv", index=False)
    data = sample_params.data.model_copy(update={"leads": str(tmp_path / "leads.csv"),
                                                 "value_maps": {"lead_source": {"TT": "TikTok"}}})
    training_set = assemble(sample_params.model_copy(update={"data": data}))

    sources = audit.segment_outcomes(audit.lead_outcomes(training_set, sample_params.label), "lead_source")[0]
    assert "TT" in set(sources["lead_source"]) and not {"TikTok", "tiktok"} & set(sources["lead_source"])
    features = training_set.features[["lead_source"]]
    n = len(features)
    rows = audit.ExplainedRows(features, np.zeros(n), np.full(n, 0.2),
                               pd.DataFrame({"lead_source": np.where(features["lead_source"] == "tiktok", 0.3, -0.1)}),
                               np.zeros(n), audit.category_spellings(training_set.crm, features, sample_params.features))
    catalog = [FeatureDef("lead_source", "categorical", "lead_source")]
    assert audit.dependence_table(rows, catalog, ["lead_source"])["value"].iloc[0] == "TT"
    assert audit.signal_importance(rows, catalog)["best_value"].iloc[0] == "TT"
    assert len(rows.segment("lead_source", "TT").y) == int((features["lead_source"] == "tiktok").sum())
    assert audit.merged_spellings(training_set) == ""  # the table holds 'TikTok', not the file's 'TT' and 'tiktok'


def test_values_derived_from_the_job_title_read_as_a_rep_reads_them_not_as_codes(sample_params):
    """Seniority "c_level" and department "unknown" (no job title) are the feature rules' codes: the audit says
    "C-level" and "No job title to tell the department", the words of the rep's factor."""
    n = 90
    features = pd.DataFrame({"seniority": np.repeat(["c_level", "individual", "unknown"], 30),
                             "department": np.repeat(["customer_success", "other", "unknown"], 30)})
    signals = pd.DataFrame({"seniority": np.repeat([0.4, -0.1, -0.3], 30), "department": np.repeat([0.2, 0.0, -0.5], 30)})
    leads = pd.DataFrame({"lead_id": [f"L{i}" for i in range(n)], "job_title": None})
    rows = audit.ExplainedRows(features, np.zeros(n), np.full(n, 0.2), signals, np.zeros(n),
                               audit.category_spellings(CRMData(leads, None, None, IngestReport()), features,
                                                        sample_params.features))
    catalog = [FeatureDef("seniority", "categorical", "seniority"), FeatureDef("department", "categorical", "department")]

    table = audit.signal_importance(rows, catalog).set_index("signal")
    assert table.loc["seniority", "reading"] == ("helps most: C-level (+0.40); hurts most: Seniority not clear from the "
                                                 "job title (-0.30)")
    assert table.loc["department", "reading"] == ("helps most: Customer success (+0.20); hurts most: No job title to "
                                                  "tell the department (-0.50)")
    assert audit.dependence_table(rows, catalog, ["department"])["value"].tolist() == [
        "Customer success", "Department not clear from the job title", "No job title to tell the department"]
    assert len(rows.segment("seniority", "C-level").y) == len(rows.segment("seniority", "c_level").y) == 30


def test_the_sample_audit_shows_countries_and_reasons_as_the_crm_writes_them(audited, trained):
    """The sample CRM writes countries as codes ("US") and reasons as codes: the page says "RU", "Not decision maker"."""
    page = audited.paths[0].read_text(encoding="utf-8")
    country = sections(audited)["importance"].tables["signals"].set_index("signal").loc["country"]
    exported = set(trained.training_set.crm.leads["country"].dropna())
    assert {country["best_value"], country["worst_value"]} <= exported
    assert f"hurts most: {country['worst_value']} (" in page
    reasons = set(sections(audited)["segments"].tables["rejection_reasons_by_lead_source"]["reason"])
    assert {"Not decision maker", "No budget", "Unresponsive"} <= reasons
    assert "not_decision_maker" not in page and "Not decision maker" in page


def test_tier_rates_say_which_leads_they_are(audited, trained):
    """The tier rates are of the newest leads with an outcome, converted within the horizon: not of section 3's."""
    created = trained.training_set.created_at
    test = created.sort_values().iloc[-audited.audit.model["test_rows"]:]  # out-of-time split: the newest rows
    note = sections(audited)["tiers"].notes[0]
    assert note.startswith(f"{len(test):,} held-out leads (the newest ones with an outcome, created "
                           f"{test.min():%Y-%m-%d} to {test.max():%Y-%m-%d}, never seen in training; "
                           "converted = within 120 days of creation)")


def test_html_is_self_contained_with_every_heading_and_embedded_plots(audited):
    page = audited.paths[0].read_text(encoding="utf-8")
    for number, section in enumerate(audited.audit.sections, start=1):
        assert f"{number}. {section.title}</h2>" in page
    figures = sum(len(s.figures) for s in audited.audit.sections)
    assert page.count("src='data:image/png;base64,") == figures
    assert page.count("<img") == figures  # every image is embedded, none points at a file
    assert "<th>top rejection reason</th>" in page  # the tables are in the page too


def test_the_page_explains_its_terms_and_heads_tables_in_words_while_the_csv_keeps_column_names(audited):
    """A marketer does not know SHAP, log-odds, lift or ECE: each number says what it means where it is first shown,
    and a table column reads "leads with an outcome", not "decided"; a notebook still reads the CSV's `decided`."""
    page = audited.paths[0].read_text(encoding="utf-8")
    by_key = sections(audited)
    assert "+0.7 about doubles a lead&#x27;s odds of converting, -0.7 halves them" in page
    assert "Direction, for a number: +1 when more of it always raises the score" in by_key["importance"].notes[0]
    assert "lift = how many times that rate a tier converts at (lift 2: twice as often as the average lead)" in \
        by_key["tiers"].notes[0]
    assert "Calibration error" in by_key["calibration"].notes[0] and "0.02 = 2 percentage points" in page
    for header in ("importance (average effect either way, log-odds)", "direction (-1 to +1)", "helps most",
                   "leads with an outcome", "acceptance rate (share not rejected)", "share of its rejections",
                   "lift (times the average conversion rate)", "average predicted probability", "observed conversion rate"):
        assert f"<th>{header}</th>" in page, header
    assert not [h for h in ("mean_abs_contribution", "decided", "mean_p", "lift", "test_rows") if f"<th>{h}</th>" in page]
    assert not [w for w in ("SHAP contribution", "|contribution|", "(rho ", "ECE ") if w in page]
    assert "<td>held-out leads chosen</td><td>the newest leads with an outcome</td>" in page
    # Nor model-internal words: how the model is trained, params keys, codes of derived signals, feature kinds
    assert not [w for w in ("labelled", "label policy", "outcomes.amount", "icp match", "activity recency",
                            "domain type", "registered version", "<td>numeric</td>", "<td>categorical</td>") if w in page]
    assert "<td>ideal customer profile match</td>" in page and "<td>number</td>" in page
    assert "SHAP, a standard way to share a score out among what it is made of" in by_key["importance"].notes[0]
    assert "(missing) stands for the leads without a value" in by_key["importance"].notes[0]
    # The plots, which the page's text cannot be searched for, alike
    (calibration,) = by_key["calibration"].figures["calibration"].axes
    assert [t.get_text() for t in calibration.get_legend().get_texts()][1].startswith("leadscore (calibration error 0.")
    panels = by_key["dependence"].figures["dependence"].axes
    legends = {t.get_text() for ax in panels if ax.get_legend() for t in ax.get_legend().get_texts()}
    assert legends == {"lead", "band average"}
    bars = {t.get_text() for t in by_key["importance"].figures["importance"].axes[0].get_yticklabels()}
    assert "ideal customer profile match" in bars and "icp match" not in bars
    tables = audited.paths[0].parent / "tables"
    assert "decided" in pd.read_csv(tables / "segments.by_lead_source.csv").columns
    assert list(pd.read_csv(tables / "importance.signals.csv").columns)[:4] == ["signal", "crm_column", "kind",
                                                                                 "mean_abs_contribution"]


def test_the_calibration_plot_says_which_leads_it_is_drawn_on_as_evaluates_does(audited, trained, sample_params):
    """The calibration PNG, downloaded from the audit's run or pasted in a slide, said only "Calibration": it is titled
    with the held-out leads as evaluate's calibration plot of the same model on the same export is."""
    tracking.use_store(sample_params)
    split = mlflow.artifacts.load_dict(f"runs:/{trained.run_id}/data/split.json")
    title = sections(audited)["calibration"].figures["calibration"].axes[0].get_title()
    assert title == (f"Calibration — test leads (n={split['test_rows']:,}, created {split['test_from'][:10]} → "
                     f"{split['test_to'][:10]})")
    assert title == trained.evaluation.plots()["calibration.png"].axes[0].get_title()


def test_the_tier_plot_says_which_leads_it_is_drawn_on_and_how_many_each_tier_holds(audited, trained):
    """The tier PNG read 'Conversion rate per tier (held-out leads)' and '3.3x average' over each bar: out of the page
    it said neither which nor how many leads, and tier A's rate is of a tenth of them (the sample's 59). It is titled
    as the calibration plot beside it is, and each bar names its leads."""
    section = sections(audited)["tiers"]
    (ax,) = section.figures["tiers"].axes
    calibration = sections(audited)["calibration"].figures["calibration"].axes[0].get_title()
    assert ax.get_title() == "Conversion rate per tier — " + calibration.split(" — ", 1)[1]
    table = section.tables["tiers"]
    labels = [text.get_text() for text in ax.texts]
    assert labels == [f"{lift:.1f}x average\n{leads:,} leads" for lift, leads in zip(table["lift"], table["leads"])]


def test_html_tables_show_counts_as_whole_numbers():
    """Tier conversions are counted in floats: '137.000' would read as 137 thousand where a comma is the
    decimal mark. Counts read '137' and '3,839'; rates are percentages, a rate of exactly 1 too."""
    table = pd.DataFrame({"tier": ["A", "B"], "leads": [3839, 604], "conversions": [137.0, np.nan],
                          "conversion_rate": [0.484, 1.0], "won_revenue": [8535000.0, 1234.5]})
    page = audit.render_html(audit.Audit({"name": "m", "version": "1"}, [audit.Section("tiers", "Tiers", tables={"t": table})], None))
    cells = [cell.split("</td>")[0].strip() for cell in page.split("<h3>t</h3>")[1].split("<td>")[1:]]
    assert cells == ["A", "3,839", "137", "48.4%", "8,535,000", "B", "604", "", "100.0%", "1,234"]


def test_the_average_value_of_a_band_reads_in_one_format():
    """X Education's minutes on the website read '920.989' beside '1,229': three decimals of seconds are noise, and
    the column changed format at 1,000. Every average reads to one decimal, with thousands separators."""
    table = pd.DataFrame({"signal": ["time_on_website"] * 3 + ["lead_origin"], "value": ["a", "b", "c", "API"],
                          "rows": [546, 182, 182, 722], "mean_value": [4.4707, 920.989, 1228.74, np.nan],
                          "mean_contribution": [-0.291, 0.748, 0.840, 0.036]})
    cells = _PageTables("<h3>dependence</h3>" + audit.table_html("dependence", table)).tables["dependence"]
    assert [row["average value"] for row in cells] == ["4.5", "921.0", "1,228.7", ""]
    assert [row["average effect (log-odds)"] for row in cells] == ["-0.291", "0.748", "0.840", "0.036"]


class _PageTables(HTMLParser):
    """The page's tables as {heading: rows as {column heading: cell text}}."""

    def __init__(self, page: str):
        super().__init__()
        self.tables: dict[str, list[dict[str, str]]] = {}
        self._heading, self._text, self._header, self._row = "", None, [], []
        self.feed(page)

    def handle_starttag(self, tag, attrs):
        if tag in ("h3", "th", "td"):
            self._text = ""
        elif tag == "tr":
            self._row = []

    def handle_data(self, data):
        if self._text is not None:
            self._text += data

    def handle_endtag(self, tag):
        if tag == "h3":
            self._heading, self._header = self._text, []
            self.tables[self._heading] = []
        elif tag == "th":
            self._header.append(self._text.strip())
        elif tag == "td":
            self._row.append(self._text.strip())
        elif tag == "tr" and self._row and self._heading:
            self.tables[self._heading].append(dict(zip(self._header, self._row)))
        if tag in ("h3", "th", "td"):
            self._text = None


def test_shares_rates_and_probabilities_show_as_percentages_on_the_page_while_the_csv_and_json_keep_fractions(audited):
    """The README: the page shows shares as percentages ("39.9%", not 0.399) in every table, lifts as times as the
    metrics do; the CSV and JSON tables keep the fractions that scripts compute with."""
    page = _PageTables(audited.paths[0].read_text(encoding="utf-8")).tables
    saved = json.loads(audited.paths[1].read_text(encoding="utf-8"))
    as_percent = {
        ("importance", "signals", "signals"): {"share": "share of all importance"},
        ("segments", "by_lead_source", "by lead source"): {
            "conversion_rate": "conversion rate", "acceptance_rate": "acceptance rate (share not rejected)",
            "top_reason_share": "top reason's share of rejections", "no_reason_share": "share rejected without a reason"},
        ("segments", "rejection_reasons_by_campaign", "rejection reasons by campaign"): {"share": "share of its rejections"},
        ("tiers", "tiers", "tiers"): {"min_probability": "from predicted probability", "share": "share of leads",
                                      "conversion_rate": "conversion rate"},
        ("tiers", "capture", "conversions held by the top of the list"): {
            "top_share": "top of the list (share of leads)", "capture": "share of all conversions held"},
        ("calibration", "calibration", "calibration"): {"mean_p": "average predicted probability",
                                                        "observed": "observed conversion rate"},
    }
    for (section, name, heading), columns in as_percent.items():
        csv = pd.read_csv(audited.paths[0].parent / "tables" / f"{section}.{name}.csv")
        records = next(s for s in saved["sections"] if s["key"] == section)["tables"][name]
        assert len(page[heading]) == len(csv) == len(records), heading
        for column, header in columns.items():
            assert csv[column].between(0, 1).all() and [r[column] for r in records] == pytest.approx(csv[column].tolist())
            assert [row[header] for row in page[heading]] == [f"{v:.1%}" if pd.notna(v) else "" for v in csv[column]], header
    for name, heading in (("tiers", "tiers"), ("capture", "conversions held by the top of the list")):
        lifts = pd.read_csv(audited.paths[0].parent / "tables" / f"tiers.{name}.csv")["lift"]
        assert [row[audit.shown_as("lift", name)] for row in page[heading]] == [f"{v:.2f}x" for v in lifts]


def test_the_metrics_table_reads_in_words_with_counts_shares_and_scores_each_in_its_format():
    """Section 6's table heads its rows by metric: 'positives 712.000' and 'roc_auc' mean nothing to marketing."""
    from pipelines.config import EvaluateParams

    n = 1500
    y = (np.arange(n) % 4 == 0).astype(float)  # 375 conversions
    probability = np.clip(0.25 + 0.3 * (y - 0.25) + np.linspace(-0.2, 0.2, n), 0.01, 0.99)

    def rows(p):
        return audit.ExplainedRows(pd.DataFrame(index=range(n)), y, p, pd.DataFrame({"s": np.zeros(n)}), np.zeros(n))

    metrics, _ = audit.model_change(rows(probability), rows(np.full(n, 0.25)), EvaluateParams(top_fractions=[0.1]))
    page = audit.render_html(audit.Audit({"name": "m", "version": "2"},
                                         [audit.Section("change", "Change", tables={"metrics": metrics})], None))
    shown = {cells[0]: cells[1:] for cells in ([c.split("</td>")[0] for c in row.split("<td>")[1:]]
                                               for row in page.split("<tr>")[1:]) if cells}
    values = metrics.set_index("metric")
    assert shown["held-out leads"] == ["1,500", "1,500", "+0"]
    assert shown["conversions among them"] == ["375", "375", "+0"]
    assert shown["conversion rate"] == ["25.0%", "25.0%", "+0.0 points"]
    auc = values.loc["roc_auc"]
    assert shown["ROC AUC: chance a lead that converted is scored above one that did not (0.5 coin toss, 1 perfect)"] \
        == [f"{auc['current']:.3f}", "0.500", f"{auc['change']:+.3f}"]
    capture = values.loc["capture_top10"]
    assert shown["share of all conversions held by the top 10% of the list"] == [
        f"{capture['current']:.1%}", f"{capture['previous']:.1%}", f"{capture['change'] * 100:+.1f} points"]
    assert shown["lift of the top 10% (times the conversions as many leads picked at random hold)"][0] == \
        f"{values.loc['lift_top10', 'current']:.2f}x"
    assert not [key for key in ("roc_auc", "log_loss", "brier", "capture_top10", "positives") if f"<td>{key}</td>" in page]
    held_out = audit.render_html(audit.Audit({"name": "m", "version": "2", "test_rows": 1817}, [], None))
    assert "<td>held-out leads</td><td>1,817</td>" in held_out  # the model details count as the tables do
    assert "<th>audited model</th>" in page and "<th>previous model</th>" in page


def test_the_model_details_show_times_as_a_reader_writes_them_and_where_to_open_the_training_run(audited, trained,
                                                                                                   tracking_dir):
    """'2026-11-27T00:15:17+00:00' and a bare run ID mean little to marketing: the page reads '27 Nov 2026, 00:15 UTC'
    and links the training run's page in the MLflow UI the README starts, keeping the ID to paste; the JSON keeps
    the ISO times and the ID."""
    page = audited.paths[0].read_text(encoding="utf-8")
    model = audited.audit.model
    for key, heading in (("trained_at", "trained at"), ("generated_at", "written at")):
        when = datetime.fromisoformat(model[key]).astimezone(timezone.utc)
        assert f"<td>{heading}</td><td>{when.day} {when:%b %Y, %H:%M} UTC</td>" in page, heading
    run = MlflowClient().get_run(trained.run_id)
    experiment = MlflowClient().get_experiment(run.info.experiment_id).name
    url = f"http://127.0.0.1:5000/#/experiments/{run.info.experiment_id}/runs/{trained.run_id}"
    assert (f"<td>MLflow training run</td><td>run &#x27;{run.info.run_name}&#x27; in experiment &#x27;{experiment}&#x27;, "
            f"ID {trained.run_id}<br>in the MLflow UI: <a href='{url}'>{url}</a> (start it with <code>mlflow ui "
            f"--backend-store-uri sqlite:///{tracking_dir / 'mlflow.db'} --port 5000</code>)</td>") in page
    saved = json.loads(audited.paths[1].read_text(encoding="utf-8"))["model"]
    assert saved["trained_at"] == model["trained_at"] and datetime.fromisoformat(saved["trained_at"]).tzinfo
    assert saved["training_run"] == trained.run_id and saved["training_run_url"] == url
    # The export's own times carry no zone; an --as-of date reads as a date
    details = {"name": "m", "version": "1", "as_of": "2025-12-31 22:41:03"}
    assert "<td>data as of</td><td>31 Dec 2025, 22:41</td>" in audit.render_html(audit.Audit(details, [], None))
    details["as_of"] = "2026-01-01 00:00:00"
    assert "<td>data as of</td><td>1 Jan 2026</td>" in audit.render_html(audit.Audit(details, [], None))


def test_a_training_run_the_store_no_longer_has_is_named_by_its_id_alone(sample_dir, tracking_dir):
    """A model whose training run was deleted since (or registered from another store) is still audited: the page
    names the run by its ID, without names or a link, instead of the audit failing over a link."""
    params = params_for(sample_dir, tracking_dir)
    assert tracking.run_in_ui(params, "0" * 32) == dict.fromkeys(("name", "experiment", "url", "ui_command"))


def test_the_training_runs_address_gives_away_no_password():
    """A page marketing passes around links a tracking server without its user:password@, and names no command or
    address for a database server's store, whose URI may hold a password."""
    assert tracking.ui_address("https://ops:s3cret@mlflow.example.com/") == ("https://mlflow.example.com", None)
    assert tracking.ui_address("postgresql+psycopg://ops:s3cret@db.example.com/mlflow") == (None, None)
    assert tracking.ui_address("sqlite:////srv/my models/mlflow.db") == (
        "http://127.0.0.1:5000", "mlflow ui --backend-store-uri 'sqlite:////srv/my models/mlflow.db' --port 5000")


def test_a_tracking_server_that_cannot_be_reached_is_named_without_its_password_not_taken_for_a_missing_model(
        sample_params, monkeypatch):
    """The error reaches a terminal or a CI log: it names the store the lookup went to, without the password, and
    says it could not be reached, where "run `leadscore train` first" sent the user to train a model the store has."""
    before = mlflow.get_tracking_uri()
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://ops:s3cr3t@127.0.0.1:1/")  # nothing listens
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")

    try:
        for lookup in (lambda: tracking.registered_version(sample_params),
                       lambda: audit.find_previous(sample_params, "2", compare_to="1")):
            with pytest.raises(tracking.TrackingStoreFailed) as failed:
                lookup()
            assert str(failed.value).startswith("cannot reach the MLflow tracking store http://ops:***@127.0.0.1:1/: "
                                                "Connection refused")
            assert "s3cr3t" not in str(failed.value) and "leadscore train" not in str(failed.value)
    finally:
        mlflow.set_tracking_uri(before)  # the lookups pointed this process's MLflow client at the server


def test_a_revenue_sum_beyond_exact_integers_is_written_not_refused(tmp_path):
    """Whole floats are written as integers only where they are exact: a sum past 2**63 cannot be cast."""
    table = pd.DataFrame({"lead_source": ["a", "b"], "won_revenue": [1e19, 2.0], "leads": [3.0, 4.0]})
    paths = audit.write_audit(audit.Audit({"name": "m", "version": "1"},
                                          [audit.Section("segments", "Segments", tables={"by_lead_source": table})], None),
                              tmp_path)
    written = pd.read_csv(paths[-1])
    assert written["won_revenue"].tolist() == [1e19, 2.0] and written["leads"].dtype == "int64"
    assert "10,000,000,000,000,000,000" in paths[0].read_text()
    # A float32 count and a column holding an infinity (a lift over a zero rate) are written, not refused
    odd = pd.DataFrame({"rows": np.array([3.0, 4.0], dtype=np.float32), "lift": [np.inf, 2.0]})
    assert audit._whole_numbers_as_integers(odd).dtypes.astype(str).tolist() == ["Int64", "float64"]


def test_mlflow_run_holds_the_report_and_tables_in_the_models_experiment(audited, trained):
    client = MlflowClient()
    run = client.get_run(audited.run_id)
    assert run.data.tags["audit"] == "true" and run.data.tags["kind"] == "audit"
    assert run.data.tags["audited_version"] == audited.audit.model["version"]
    assert run.info.experiment_id == client.get_run(trained.run_id).info.experiment_id
    top = {a.path for a in client.list_artifacts(audited.run_id, "audit")}
    assert {"audit/audit.html", "audit/audit.json", "audit/tables"} <= top
    csvs = {a.path.rsplit("/", 1)[-1] for a in client.list_artifacts(audited.run_id, "audit/tables")}
    assert csvs == {f"{s.key}.{name}.csv" for s in audited.audit.sections for name in s.tables}
    logged = json.loads(mlflow.artifacts.load_text(f"runs:/{audited.run_id}/audit/audit.json"))
    assert [s["key"] for s in logged["sections"]] == SECTION_KEYS
    tiers_csv = audited.paths[0].parent / "tables" / "tiers.tiers.csv"
    tiers = pd.read_csv(tiers_csv)
    assert list(tiers["tier"]) == trained.scorer.tiers.names
    assert tiers["conversions"].dtype == "int64"  # counts read as counts ('137', not '137.0')
    assert "," + str(tiers["conversions"].iloc[0]) + "," in tiers_csv.read_text()


def test_the_audit_run_shows_each_plot_of_the_page_as_an_image_named_for_what_it_shows(audited, tmp_path):
    """Someone browsing the audit's run in the MLflow UI saw no plot: they were only inside audit.html. Each is a PNG
    of the run, read back from its SQLite store, numbered by section and named in words, the one the page embeds."""
    client = MlflowClient()
    assert mlflow.get_tracking_uri().startswith("sqlite:")
    logged = {a.path.rsplit("/", 1)[-1] for a in client.list_artifacts(audited.run_id, "audit/plots")}
    assert logged == {"1_signal_importance.png", "2_top_signals_by_value.png", "3_outcomes_by_lead_source.png",
                      "3_outcomes_by_campaign.png", "4_conversion_by_tier.png", "5_calibration.png"}
    folder = Path(mlflow.artifacts.download_artifacts(run_id=audited.run_id, artifact_path="audit/plots",
                                                      dst_path=tmp_path))
    page = audited.paths[0].read_text()
    for number, section in enumerate(audited.audit.sections, start=1):
        for name, figure in section.figures.items():
            png = (folder / audit.plot_file(number, name)).read_bytes()
            assert png.startswith(b"\x89PNG") and base64.b64encode(png).decode() in page
            assert png == (audited.paths[0].parent / "plots" / audit.plot_file(number, name)).read_bytes()


def test_a_slices_tier_plot_is_titled_with_the_leads_of_the_page_and_the_slice(audited, trained):
    """The notebook's tier plot of one source was titled '(held-out leads)', as if it were the page's of all of them."""
    report = audited.audit
    rows = report.rows.segment("lead_source", "webinar")
    section = audit.slice_tiers_section(report, rows, "lead_source", "webinar", trained.scorer.tiers, [0.1])
    page_title = sections(audited)["tiers"].figures["tiers"].axes[0].get_title()
    assert page_title == f"Conversion rate per tier — {report.computed_on}" and report.computed_on.startswith("test leads (n=")
    assert section.figures["tiers"].axes[0].get_title() == f"{page_title}, the {len(rows.y):,} of lead source webinar"
    assert section.notes[0].startswith(f"{len(rows.y):,} {report.held_out} of lead source webinar, ")


def test_the_audit_run_is_named_with_the_exports_date_as_the_training_run_is(audited, trained):
    """'audit leadscore v1' stood in the MLflow UI beside 'train v1 2025-09-02': nothing said which export it read."""
    client = MlflowClient()
    date = f"{trained.training_set.as_of:%Y-%m-%d}"
    assert client.get_run(trained.run_id).info.run_name.endswith(f" {date}")
    model = audited.audit.model
    assert client.get_run(audited.run_id).info.run_name == f"audit {model['name']} v{model['version']} {date}"


def test_the_audit_run_says_which_export_and_settings_its_figures_come_from(audited, sample_dir, tracking_dir):
    """Two audit runs in the MLflow UI, one of the sample and one of another export (`--leads`), showed the same
    tags and no params: nothing said which export or settings a run's figures came from. Its params and data
    fingerprint are those evaluate's run keeps: the leads and labels counted, and the export file's hash."""
    params = params_for(sample_dir, tracking_dir, **{"tracking.registered_model": "audit_first_version"})
    run = MlflowClient().get_run(audited.run_id)
    assert run.data.params["data.leads"] == str(params.data.leads)
    assert run.data.params["label.horizon_days"] == str(params.label.horizon_days)
    fingerprint = json.loads(mlflow.artifacts.load_text(f"runs:/{audited.run_id}/data/fingerprint.json"))
    segments = sections(audited)["segments"].tables["by_lead_source"]
    assert fingerprint["leads"] == segments["leads"].sum()
    assert fingerprint["sha256_leads"] == file_sha256(params.resolve(params.data.leads))


def test_change_against_a_previous_model_compares_the_same_leads(audited, trained, sample_params):
    rows, scorer, ts = audited.audit.rows, trained.scorer, trained.training_set
    same = audit.change_section(rows, ts, audit.PreviousModel("version 0", scorer), sample_params.evaluate)
    assert (same.tables["metrics"]["change"] == 0).all()
    assert (same.tables["importance_change"]["change"] == 0).all()
    assert "No signal's importance changed." in same.notes

    weaker = dataclasses.replace(scorer, gbm_coef=scorer.gbm_coef / 2, logistic_coef=scorer.logistic_coef / 2)
    changed = audit.change_section(rows, ts, audit.PreviousModel("version 0", weaker), sample_params.evaluate)
    importance = changed.tables["importance_change"]
    np.testing.assert_allclose(importance["change"], importance["current"] / 2, atol=1e-12)
    assert importance["change"].abs().is_monotonic_decreasing


def test_the_change_section_says_when_the_export_lacks_a_column_the_previous_model_uses(audited, trained, sample_params):
    """Version 0 used the campaign; today's export has no campaign column. Its comparison would be
    skewed without a word, since every compared lead's campaign is missing for it."""
    rows, scorer, ts = audited.audit.rows, trained.scorer, trained.training_set
    without_campaign = dataclasses.replace(ts, crm=dataclasses.replace(
        ts.crm, leads=ts.crm.leads.drop(columns=["campaign", "employees"])))
    # Other saved settings, so its features are rebuilt from the export (not reused from the training frame).
    previous = dataclasses.replace(scorer, features=scorer.features.model_copy(update={"free_email_domains": ["gmail.com"]}))
    assert "campaign" in previous.features.categorical and rows.features["campaign"].notna().any()

    change = audit.change_section(rows, without_campaign, audit.PreviousModel("version 0", previous), sample_params.evaluate)
    # Named as the page names signals: employees' size band is no name of its own there
    assert any(note.startswith("version 0 uses campaign, employees, missing for every compared lead")
               for note in change.notes), change.notes

    same = audit.change_section(rows, ts, audit.PreviousModel("version 0", previous), sample_params.evaluate)
    assert not any("missing for every compared lead" in note for note in same.notes)


def test_a_previous_version_trained_with_other_feature_settings_is_compared_on_its_own_features(
    trained, sample_dir, tracking_dir, tmp_path
):
    """Version 1 counted activity over other windows and matched a narrower ICP than the audited version 2.

    It must be scored on the features its own settings build for the same held-out leads: not on the
    audited model's columns (which lack its windows and carry another ICP match).
    """
    from pipelines.train import train

    params = params_for(sample_dir, tracking_dir, **FAST, **{
        "tracking.registered_model": "audit_changed_features",
        "features.windows": [14, 30, 90],
        "features.icp.industries": ["software"],
    })
    previous = train(params)  # version 1, with the settings above
    tracking.register(trained.model_uri, params, trained.run_id)  # version 2: the default settings

    result = audit.run_audit(params, alias="challenger", out_dir=tmp_path)

    rows = result.audit.rows
    own = previous.training_set.features.loc[rows.features.index]  # built by training with its settings
    assert "pricing_view_14d" in own and "pricing_view_14d" not in rows.features
    assert (own["icp_match"] != rows.features["icp_match"]).any()
    change = sections(result)["change"]
    assert change.notes[0] == f"Compared with version 1 on the same {len(rows.y):,} held-out leads."
    assert set(change.tables) == {"metrics", "importance_change"}
    expected = evaluate_scores(rows.y, previous.scorer.predict_proba(own, rows.age_days), ece_bins=params.evaluate.ece_bins,
                               top_fractions=params.evaluate.top_fractions)
    metrics = change.tables["metrics"].set_index("metric")
    # The audit reads probabilities off exact TreeSHAP sums: equal to predict_proba up to float
    # rounding, which may order tied leads differently (ranking metrics move in the 4th decimal).
    np.testing.assert_allclose(metrics["previous"], pd.Series(expected)[metrics.index], rtol=1e-3)


def test_cli_names_a_comparison_model_that_does_not_exist(trained, sample_params, tmp_path):
    from typer.testing import CliRunner

    from pipelines.cli import app

    params_file = tmp_path / "params.yaml"
    params_file.write_text(yaml.safe_dump(sample_params.model_dump(mode="json")))
    result = CliRunner().invoke(app, ["audit", "--params", str(params_file), "--compare-to", "999", "--out", str(tmp_path)])
    assert result.exit_code == 1
    assert "no version or alias '999'" in result.output
    assert not (tmp_path / "audit.html").exists()


def test_a_comparison_version_is_found_as_the_commands_print_it(audited, sample_dir, tracking_dir):
    """retrain, promote and train print "v3"; --compare-to v3 must not be read as an alias (MLflow reserves that form)."""
    params = params_for(sample_dir, tracking_dir, **{"tracking.registered_model": "audit_first_version"})
    for written in ("v1", "V1", " 1 "):
        previous = audit.find_previous(params, "2", written)
        assert previous.label == "version 1" and previous.scorer.info["registry"]["version"] == "1"


def test_comparing_the_audited_version_with_itself_is_refused_naming_it(audited, sample_dir, tracking_dir):
    """Champion and challenger are one version after a first training: `--compare-to challenger` compares nothing."""
    params = params_for(sample_dir, tracking_dir, **{"tracking.registered_model": "audit_first_version"})
    for written in ("v1", "challenger", "champion"):
        with pytest.raises(ValueError, match=rf"--compare-to {written}: that is version 1, the one audited; name "
                                             r"another version or alias$"):
            audit.find_previous(params, "1", written)


def test_previous_version_is_the_highest_number_below_the_audited_one():
    assert audit.previous_version(["1", "2", "9", "10", "11"], "11") == "10"
    assert audit.previous_version(["3", "4"], "3") is None


def test_segment_outcomes_on_a_small_export():
    outcomes = pd.DataFrame(
        {
            "lead_source": ["webinar", "webinar", "webinar", "webinar", "webinar", None, "webinar", "webinar"],
            "outcome": ["converted", "rejected", "rejected", "rejected", "censored", "rejected", "other", "excluded"],
            "reason": [np.nan, "no_budget", "no_budget", np.nan, np.nan, "student", np.nan, np.nan],
            "amount": [1200.0, np.nan, np.nan, np.nan, np.nan, np.nan, np.nan, np.nan],
        }
    )
    summary, mix = audit.segment_outcomes(outcomes, "lead_source")
    webinar = summary.set_index("lead_source").loc["webinar"]
    # A nurture lead (other) is decided and not rejected; a duplicate (excluded) is no outcome at all.
    assert (webinar["leads"], webinar["decided"], webinar["converted"], webinar["rejected"]) == (7, 5, 1, 3)
    # 5 leads with an outcome: too few for a rate (test_a_source_of_too_few_leads_with_an_outcome_shows_no_rate)
    assert webinar[["conversion_rate", "acceptance_rate"]].isna().all()
    # 3 rejections: too few to split by reason (test_reasons_of_too_few_rejections_are_not_split)
    assert webinar[["top_rejection_reason", "top_reason_share", "no_reason_share"]].isna().all()
    assert webinar["won_revenue"] == 1200.0
    assert audit.MISSING in set(summary["lead_source"])
    assert list(mix[mix["lead_source"] == "webinar"]["reason"]) == [audit.FEW_REJECTIONS]
    intro, headline = audit.rejection_headlines(summary, "lead_source")[:2]
    assert intro == ("Where the rejected leads come from, by lead source: the 2 with the most rejections (the rate of "
                     "every one of the 2 is in the report's table 'by lead source').")  # the console prints no table
    assert headline == ("lead source webinar: 3 of 5 leads with an outcome rejected (60%); under 20 leads with an "
                        "outcome, too few for these rates to say much (not in the plot)")

    assert audit.conversion_headline(summary, "lead_source") == []  # 5 leads with an outcome: too few to rank

    # The notebook's SEGMENT_VALUE: as typed, or the segment with most leads; a typo is named, not an empty slice.
    assert audit.segment_value(summary, "lead_source", " Webinar ") == "webinar"
    assert audit.segment_value(summary, "lead_source", None) == summary["lead_source"].iloc[0]
    with pytest.raises(LookupError, match=r"no lead has lead_source 'Webinr'; its values, most leads first: 'webinar', "):
        audit.segment_value(summary, "lead_source", "Webinr")

    # The notebook's SEGMENT_COLUMN set to a derived feature: lead_outcomes had no such lead column to add.
    with pytest.raises(LookupError, match="'seniority' is not a column of the export's leads table"):
        audit.segment_outcomes(outcomes, "seniority")

    empty_summary, empty_mix = audit.segment_outcomes(outcomes.iloc[:0], "lead_source")
    assert len(empty_summary) == 0 and len(empty_mix) == 0


def test_reason_mix_names_the_top_reasons_and_pools_the_rest():
    reasons = pd.Series(["a"] * 50 + ["b"] * 40 + ["c"] * 30 + ["d"] * 20 + [None] * 2)
    mix = audit.reason_mix(pd.Series(["s"] * len(reasons), name="campaign"), reasons, top=2)
    assert list(mix["reason"]) == ["a", "b", "(2 other reasons)", audit.NO_REASON]
    assert list(mix["rejected"]) == [50, 40, 50, 2]
    assert mix["share"].sum() == pytest.approx(1.0)


def test_the_rejection_reasons_table_lists_the_sources_in_the_order_of_the_table_by_source():
    """X Education's reasons by lead source listed its sources alphabetically, capitals first: "(missing)" (6
    rejections), Click2call (1), Direct Traffic, Facebook, then Google, the source of most leads and rejections, while
    the table above it lists Google first. Both list most leads first; a source's reasons keep their own order."""
    rows = [("Google", 90, "Ringing"), ("Direct Traffic", 60, "Already a student"), ("bing", 5, "Ringing"),
            (None, 6, "Busy"), ("Click2call", 2, "Ringing")]  # (source, rejections, reason of most of them)
    outcomes = pd.DataFrame([{"lead_source": source, "outcome": "rejected", "reason": reason if i % 3 else np.nan}
                             for source, rejected, reason in rows for i in range(rejected)])

    summary, mix = audit.segment_outcomes(outcomes, "lead_source")

    assert summary["lead_source"].tolist() == ["Google", "Direct Traffic", audit.MISSING, "bing", "Click2call"]
    assert list(dict.fromkeys(mix["lead_source"])) == summary["lead_source"].tolist()
    assert mix[mix["lead_source"] == "Google"]["reason"].tolist() == ["Ringing", audit.NO_REASON]


def test_a_reason_too_few_rejections_give_is_not_named_as_why_a_source_gets_rejected():
    """X Education's Facebook: 42 rejections, enough to split by reason, but "why Facebook leads get rejected" named a
    reason one of them gave. As a source needs 20 rejections to be split, a reason needs 20 to be named; the rarer
    ones are one row that says how many reasons it pools, one grey bar in the plot."""
    facebook = ["Ringing"] * 20 + [None] * 13 + ["Interested in other courses"] * 3 + [
        "Busy", "switched off", "wrong number given", "Graduation in progress"]
    google = ["Ringing"] * 30 + ["Busy"] * 25 + ["switched off"] * 19 + ["Already a student"]
    forum = ["Busy"] * 19 + ["Ringing"] * 2  # 21 rejections: split, but no reason given by 20
    rows = [("Facebook", facebook), ("Google", google), ("Forum", forum)]
    outcomes = pd.DataFrame([{"lead_source": source, "outcome": "rejected", "reason": reason}
                             for source, reasons in rows for reason in reasons])

    summary, mix = audit.segment_outcomes(outcomes, "lead_source")

    def reasons(source: str) -> list:
        return mix[mix["lead_source"] == source][["reason", "rejected"]].values.tolist()

    assert reasons("Facebook") == [["Ringing", 20], ["(5 other reasons)", 7], [audit.NO_REASON, 13]]
    assert reasons("Google") == [["Ringing", 30], ["Busy", 25], ["(2 other reasons)", 20]]
    assert reasons("Forum") == [["(2 other reasons)", 21]]
    by_source = summary.set_index("lead_source")
    assert by_source.loc["Facebook", "top_rejection_reason"] == "Ringing"
    assert by_source.loc["Forum", "top_rejection_reason"] == audit.NO_NAMED_REASON  # see the next test
    headlines = audit.rejection_headlines(summary, "lead_source")
    assert headlines[3] == ("lead source Forum: 21 of 21 leads with an outcome rejected (100%); no single reason given "
                            "by 20 or more of its rejections")
    plot = audit.segments_plot(summary, mix, "lead_source").axes[1]
    assert [t.get_text() for t in plot.get_legend().get_texts()] == ["Ringing", "Busy", audit.OTHER_REASONS,
                                                                      audit.NO_REASON]
    section = audit.segments_section(outcomes.assign(campaign=np.nan))
    assert ("Nor is a reason named for one unless 20 or more of its rejections give it (and it is among its 3 most "
            "frequent): the others are one row, e.g. '(4 other reasons)';") in section.notes[1]


def test_a_source_split_by_reason_with_no_reason_named_says_so():
    """A source of 20+ rejections whose reasons are each given by fewer than 20 (all pooled in '(N other reasons)' and
    '(no reason given)') had a blank top reason, and a headline that named none without saying why: it reads as a source
    no rejection gave a reason for. It says that no single reason is given by 20 of its rejections; a source none of
    whose rejections gave a reason says that instead."""
    event = ["Busy"] * 8 + ["Ringing"] * 7 + [None] * 10  # 25 rejections: split; no reason given by 20
    chat = [None] * 22  # 22 rejections, none with a reason
    outcomes = pd.DataFrame([{"lead_source": source, "outcome": "rejected", "reason": reason}
                             for source, reasons in [("Event", event), ("Chat", chat)] for reason in reasons])

    summary, mix = audit.segment_outcomes(outcomes, "lead_source")

    by_source = summary.set_index("lead_source")
    assert mix[mix["lead_source"] == "Event"]["reason"].tolist() == ["(2 other reasons)", audit.NO_REASON]
    assert by_source.loc["Event", "top_rejection_reason"] == "(no single reason given by 20 or more of its rejections)"
    assert pd.isna(by_source.loc["Event", "top_reason_share"]) and by_source.loc["Event", "no_reason_share"] == 0.4
    assert pd.isna(by_source.loc["Chat", "top_rejection_reason"]) and by_source.loc["Chat", "no_reason_share"] == 1.0
    assert audit.rejection_headlines(summary, "lead_source")[1:] == [
        "lead source Event: 25 of 25 leads with an outcome rejected (100%); no single reason given by 20 or more of its "
        "rejections; 40% without a reason",
        "lead source Chat: 22 of 22 leads with an outcome rejected (100%); 100% without a reason"]
    page = audit.table_html("by_lead_source", summary)
    assert "<td>(no single reason given by 20 or more of its rejections)</td>" in page
    section = audit.segments_section(outcomes.assign(campaign=np.nan))
    assert ("where none is named, its top rejection reason reads '(no single reason given by 20 or more of its "
            "rejections)'.") in section.notes[1]


def test_a_source_whose_rejections_mostly_give_no_reason_is_said_so_before_its_top_reason():
    """X Education's Olark Chat: 66% of its rejections give no reason, 9% 'Already a student'. "Most often for Already a
    student (9% of its rejections); 66% without a reason" answered why its leads get rejected with the 9%."""
    chat = ["Already a student"] * 20 + ["Ringing"] * 10 + [None] * 60
    google = ["Ringing"] * 40 + [None] * 30
    outcomes = pd.DataFrame([{"lead_source": source, "outcome": "rejected", "reason": reason}
                             for source, reasons in [("Olark Chat", chat), ("Google", google)] for reason in reasons])

    summary, _ = audit.segment_outcomes(outcomes, "lead_source")

    assert audit.rejection_headlines(summary, "lead_source")[1:] == [
        "lead source Olark Chat: 90 of 90 leads with an outcome rejected (100%), mostly without a reason (67%); the "
        "reason given most: Already a student (22% of its rejections)",
        "lead source Google: 70 of 70 leads with an outcome rejected (100%), mostly for Ringing (57% of its "
        "rejections); 43% without a reason"]


def test_reasons_of_too_few_rejections_are_not_split():
    """X Education's "Welingak Website" has 140 conversions and 2 rejections: a bar split 100% one way from 2
    rejections is no reason marketing can act on. As a value of under 20 leads is pooled in the value table, a
    source of under 20 rejections has one reason row, named by no top reason, note or bar colour."""
    rows = [("Google", 60, 40, "Ringing"), ("Welingak Website", 140, 2, "Ringing")]
    outcomes = pd.DataFrame(
        [{"lead_source": source, "outcome": "rejected" if i < rejected else "converted",
          "reason": reason if i % 4 else np.nan} for source, decided, rejected, reason in rows for i in range(decided)])

    summary, mix = audit.segment_outcomes(outcomes, "lead_source")

    welingak = mix[mix["lead_source"] == "Welingak Website"]
    assert welingak[["reason", "rejected", "share"]].values.tolist() == [[audit.FEW_REJECTIONS, 2, 1.0]]
    assert list(mix[mix["lead_source"] == "Google"]["reason"]) == ["Ringing", audit.NO_REASON]  # 40: split
    by_source = summary.set_index("lead_source")
    assert by_source.loc["Welingak Website", ["top_rejection_reason", "top_reason_share", "no_reason_share"]].isna().all()
    assert by_source.loc["Google", "top_rejection_reason"] == "Ringing"
    assert audit.rejection_headlines(summary, "lead_source")[2] == (
        "lead source Welingak Website: 2 of 140 leads with an outcome rejected (1%); under 20 rejections, too few to "
        "split by reason")
    reasons = audit.segments_plot(summary, mix, "lead_source").axes[1]
    legend = [t.get_text() for t in reasons.get_legend().get_texts()]
    assert legend == ["Ringing", audit.NO_REASON, audit.FEW_REJECTIONS]
    assert [t.get_text() for t in reasons.texts] == ["2 rejections: too few to split"]
    section = audit.segments_section(outcomes.assign(campaign=np.nan))
    assert "A source or campaign with fewer than 20 rejections is not split by reason" in section.notes[1]


def test_a_source_of_too_few_leads_with_an_outcome_shows_no_rate():
    """X Education's "Live Chat" (2 leads) and "NC_EDM" (1) read 100.0% conversion in the table by lead source, above
    Google's 39.9% of 2,873, and a campaign only in the newest leads read 0.0% from its first few decisions. A rate over
    fewer than 20 leads with an outcome is left blank, its counts kept, as a reason split of too few rejections is."""
    rows = [("Google", 40, 16, 24), ("NC_EDM", 1, 1, 0), ("q4_launch", 12, 0, 12)]  # (source, decided, converted, rejected)
    outcomes = pd.DataFrame(
        [{"lead_source": source, "reason": np.nan,
          "outcome": "converted" if i < converted else "rejected"}
         for source, decided, converted, rejected in rows for i in range(decided)]
        + [{"lead_source": "q4_launch", "reason": np.nan, "outcome": "censored"}] * 30)

    summary, _ = audit.segment_outcomes(outcomes, "lead_source")

    by_source = summary.set_index("lead_source")
    assert by_source.loc["Google", "conversion_rate"] == pytest.approx(0.4)
    assert by_source.loc["Google", "acceptance_rate"] == pytest.approx(0.4)
    for small in ("NC_EDM", "q4_launch"):
        assert by_source.loc[small, ["conversion_rate", "acceptance_rate"]].isna().all()
    assert by_source.loc["q4_launch", ["leads", "decided", "converted", "rejected"]].tolist() == [42, 12, 0, 12]
    page = _PageTables("<h3>by lead source</h3>" + audit.table_html("by_lead_source", summary))
    shown = {row["lead source"]: row for row in page.tables["by lead source"]}
    assert (shown["NC_EDM"]["converted"], shown["NC_EDM"]["conversion rate"]) == ("1", "")
    assert shown["Google"]["conversion rate"] == "40.0%"
    # The headline still gives the rate, with its caveat.
    assert audit.rejection_headlines(summary, "lead_source")[2] == (
        "lead source q4_launch: 12 of 12 leads with an outcome rejected (100%); under 20 leads with an outcome, too few "
        "for these rates to say much (not in the plot)")
    section = audit.segments_section(outcomes.assign(campaign=np.nan))
    assert section.notes[1].startswith(
        "A source or campaign with fewer than 20 leads with an outcome has its counts in the tables but no conversion or "
        "acceptance rate (1 converted of 1 is no 100% rate), and no bars in the plots.")


def test_the_rates_legend_hides_no_bar():
    """X Education's "(missing)" source converts 81%: its bars ran under the legend in the plot's lower right corner."""
    rows = [("Google", 2873, 1147), ("Reference", 534, 490), ("Welingak Website", 142, 140), ("(missing)", 36, 29)]
    outcomes = pd.DataFrame([{"lead_source": source, "reason": np.nan, "outcome": "converted" if i < converted else "rejected"}
                             for source, decided, converted in rows for i in range(decided)])
    figure = audit.segments_plot(*audit.segment_outcomes(outcomes, "lead_source"), "lead_source")
    figure.canvas.draw()
    legend = figure.legends[0] if figure.legends else figure.axes[0].get_legend()  # below the plots, or inside
    assert [t.get_text() for t in legend.get_texts()] == ["conversion rate", "acceptance rate"]
    box = legend.get_window_extent()
    bars = [bar.get_window_extent() for bar in figure.axes[0].patches]
    assert len(bars) == 8 and not [bar for bar in bars if bar.overlaps(box)]


def test_the_source_plots_give_each_source_the_count_its_bars_are_shares_of():
    """X Education's "(missing)" source, 35 leads with an outcome, had bars of 83% as long and firm as Google's 40% of
    2,849, and Facebook's split of 40 rejections read as Google's of 1,702: only the table gave the counts. Each row of
    the rates plot names its leads with an outcome, each of the reasons plot its rejections, as the axes say."""
    rows = [("Google", 2849, 1147), ("Facebook", 53, 13), (None, 35, 29)]  # (source, decided, converted)
    outcomes = pd.DataFrame([{"lead_source": source, "reason": "Ringing" if i % 2 else np.nan,
                              "outcome": "converted" if i < converted else "rejected"}
                             for source, decided, converted in rows for i in range(decided)])

    rates, reasons = audit.segments_plot(*audit.segment_outcomes(outcomes, "lead_source"), "lead_source").axes[:2]

    assert [t.get_text() for t in rates.get_yticklabels()][::-1] == ["Google (2,849)", "Facebook (53)", "(missing) (35)"]
    assert [t.get_text() for t in reasons.get_yticklabels()][::-1] == ["Google (1,702)", "Facebook (40)", "(missing) (6)"]
    assert rates.get_xlabel() == "share of leads with an outcome (how many in brackets)"
    assert reasons.get_xlabel() == "share of rejections (how many in brackets)"


def test_the_plots_read_shares_and_rates_as_percentages_as_the_tables_do():
    """The table by source read '39.9%' and the plot beside it 0.4: the plots' share and rate axes read '40%'; so do
    the calibration plot's probability and rate axes, as its table does, where they read 0.2 (shared with evaluate)."""
    outcomes = pd.DataFrame([{"lead_source": "Google", "reason": np.nan, "outcome": "converted" if i < 16 else "rejected"}
                             for i in range(40)])
    segments = audit.segments_plot(*audit.segment_outcomes(outcomes, "lead_source"), "lead_source")
    tiers = audit.tiers_plot(pd.DataFrame({"tier": ["A", "B"], "conversion_rate": [0.6, 0.1], "lift": [2.0, 0.3],
                                           "leads": [10, 90]}), 0.3)
    held_out = audit.ExplainedRows(pd.DataFrame(index=range(100)), (np.arange(100) % 3 == 0).astype(float),
                                   np.linspace(0.05, 0.95, 100), pd.DataFrame(index=range(100)), np.zeros(100))
    calibration = audit.calibration_section(held_out, 10).figures["calibration"]
    axes = [*(ax.xaxis for ax in segments.axes), tiers.axes[0].yaxis, calibration.axes[0].xaxis, calibration.axes[0].yaxis]
    for figure in (segments, tiers, calibration):
        figure.canvas.draw()
    for axis in axes:
        ticks = [t.get_text() for t in axis.get_ticklabels() if t.get_text()]
        assert ticks and all(t.endswith("%") for t in ticks), ticks
    assert "100%" in [t.get_text() for t in segments.axes[0].xaxis.get_ticklabels()]


def test_a_segment_slice_keeps_only_its_leads_and_rejects_unknown_columns(audited, trained):
    rows = audited.audit.rows
    webinar = rows.segment("lead_source", " Webinar ")
    assert len(webinar.y) == int((rows.features["lead_source"] == "webinar").sum()) > 0
    assert set(webinar.features["lead_source"]) == {"webinar"}
    assert len(webinar.signals) == len(webinar.y) == len(webinar.probability)
    # The segment table's row of leads without a campaign (the notebook's default when it has most leads).
    no_campaign = rows.segment("campaign", audit.MISSING)
    assert len(no_campaign.y) == int(rows.features["campaign"].isna().sum()) > 0
    by_campaign = sections(audited)["segments"].tables["by_campaign"]
    assert audit.MISSING in set(by_campaign["campaign"])
    with pytest.raises(LookupError, match="segment by one of"):
        rows.segment("favourite_colour", "blue")
    nobody = rows.subset(np.zeros(len(rows.y), dtype=bool))  # a segment without held-out leads
    tiers = audit.tiers_section(nobody, trained.scorer.tiers, [0.1]).tables["tiers"]
    assert list(tiers["leads"]) == [0] * len(trained.scorer.tiers.names)
    assert audit.importance_section(nobody, trained.scorer.catalog).tables["signals"]["mean_abs_contribution"].isna().all()


def test_the_calibration_note_gives_the_groups_and_sizes_its_table_has():
    """X Education's calibration table has groups of 58 and 295 leads under a note of '10 groups of about equal size':
    leads given one probability stay in one group. The note says how many groups there are and what they hold."""
    probability = np.r_[np.full(60, 0.1), np.linspace(0.2, 0.9, 40)]  # 60 leads of one probability: one group
    y = (np.arange(100) % 3 == 0).astype(float)
    rows = audit.ExplainedRows(pd.DataFrame(index=range(100)), y, probability, pd.DataFrame(index=range(100)),
                               np.zeros(100))
    section = audit.calibration_section(rows, 10)
    sizes = section.tables["calibration"]["rows"]
    assert (len(sizes), sizes.min(), sizes.max()) == (5, 10, 60)
    assert section.notes[0].startswith(f"The {audit.HELD_OUT} in 5 groups by predicted probability, 10 to 60 leads "
                                       "each (about equal, but leads given the same probability stay in one group):")
    even = audit.ExplainedRows(pd.DataFrame(index=range(100)), y, np.linspace(0.05, 0.95, 100),
                               pd.DataFrame(index=range(100)), np.zeros(100))
    assert " in 10 groups by predicted probability, 10 leads each (" in audit.calibration_section(even, 10).notes[0]


def test_tier_notes_of_a_slice_without_leads_or_conversions_say_so_instead_of_nan():
    tiers = TierThresholds(["A", "B"], [0.3, 0.0])
    empty = audit.ExplainedRows(pd.DataFrame(), np.zeros(0), np.zeros(0), pd.DataFrame(), np.zeros(0))
    assert audit.tiers_section(empty, tiers, [0.1, 0.2]).notes == ["0 held-out leads: no tier conversion or lift to report."]
    unconverted = audit.ExplainedRows(pd.DataFrame(index=range(5)), np.zeros(5), np.linspace(0.05, 0.5, 5),
                                      pd.DataFrame(index=range(5)), np.zeros(5))
    notes = audit.tiers_section(unconverted, tiers, [0.1, 0.2]).notes
    assert notes == ["5 held-out leads, 0.0% converted; lift = how many times that rate a tier converts at (lift 2: "
                     "twice as often as the average lead).",
                     "None of them converted: there are no conversions for the top of the list to hold."]
    assert not any("nan" in note for note in notes)


def test_x_education_audit_shows_pre_contact_signals_and_tags_as_rejection_reasons(x_education_csv, tmp_path):
    """The top signals are pre-contact ones; rejection reasons read as X Education's Tags ("Ringing"), and the
    score card, /score and the CSV give a lead's likely reason the same way."""
    from models.splits import make_split
    from pipelines.train import fit_model
    from pipelines.config import PROJECT_ROOT, load_params
    from pipelines.dataset import assemble
    from serving import scorecard

    params = load_params(
        PROJECT_ROOT / "params.x_education.yaml",
        overrides={
            "data.leads": str(x_education_csv),
            "model.tuning_trials": 2,
            "model.max_rounds": 300,
            "tracking.uri": f"sqlite:///{tmp_path / 'mlflow.db'}",
        },
    )
    ts = assemble(params)
    split = make_split(ts.created_at, pd.Series(ts.y), params.evaluate.split, params.model.seed)
    scorer = fit_model(ts, split, params)
    report = audit.build_audit(scorer, ts, params)
    by_key = {s.key: s for s in report.sections}

    top = set(by_key["importance"].tables["signals"]["signal"].head(10))
    pre_contact = set(params.features.categorical) | set(params.features.numeric)
    post_contact = {c.lower().replace(" ", "_") for c in params.data.drop_columns} | {"reason", "status", "tags"}
    assert top <= pre_contact
    assert not top & post_contact

    segments = by_key["segments"]
    mix = segments.tables["rejection_reasons_by_lead_source"]
    assert {"Ringing", "Interested in other courses", "Already a student"} <= set(mix["reason"])  # as the CRM's Tags
    named = ~(audit.is_other_reasons(mix["reason"]) | mix["reason"].isin([audit.NO_REASON, audit.FEW_REJECTIONS]))
    assert (mix.loc[named, "rejected"] >= audit.MIN_LEVEL_ROWS).all()  # Facebook's "Busy" rested on 1 lead
    facebook = mix[mix["lead_source"] == "Facebook"]
    assert facebook["reason"].iloc[0] == "Ringing" and facebook["reason"].iloc[1].endswith(" other reasons)")
    np.testing.assert_allclose(mix.groupby("lead_source")["share"].sum().to_numpy(), 1.0)
    assert "by_campaign" not in segments.tables
    assert any("no campaign values" in note for note in segments.notes)
    assert any("no deal amounts" in note for note in segments.notes)
    assert "won_revenue" not in segments.tables["by_lead_source"].columns

    scores = scorer.predict(ts.features.head(300))
    for tag in ("Ringing", "Interested in other courses"):
        lead = scores[scores["likely_rejection_reason"] == tag].iloc[0]  # as the CRM writes it, for it to write back
        card = scorecard.render({**lead.to_dict(), "factors": [], "model_name": "leadscore", "model_version": "1"},
                                scorer.tiers.names, scorer.reason_spellings)
        assert f'id="rejection">{tag} ({lead["likely_rejection_probability"]:.0%} if rejected)</div>' in card
        assert tag in set(mix["reason"])  # as the audit words it


def test_the_audit_builds_the_models_own_features_when_params_changed_since_training(trained, sample_params):
    """A marketer who edits the free-mail list after training still audits what serving computes."""
    edited = sample_params.model_copy(update={"features": sample_params.features.model_copy(
        update={"free_email_domains": [], "unsupported_countries": []})})
    scorer, training_set = audit.load_inputs(edited, "champion")
    _, as_trained = audit.load_inputs(sample_params, "champion")
    assert scorer.features.free_email_domains  # the model keeps what it was trained with
    pd.testing.assert_frame_equal(training_set.features, as_trained.features)


def test_audited_probabilities_are_the_scores_serving_gives(trained):
    """The audit reads p off the exact contributions; it must be the probability a rep is shown."""
    ts = trained.training_set
    rows = audit.explain_rows(trained.scorer, ts.features.iloc[:300], ts.y[:300], ts.age_days[:300])
    np.testing.assert_allclose(rows.probability, trained.scorer.predict_proba(ts.features.iloc[:300], ts.age_days[:300]),
                               rtol=0, atol=1e-9)


def test_tier_rates_of_a_stratified_test_do_not_claim_the_newest_leads(sample_params):
    """Leads all created on one day are split at random: the held-out ones are not 'the newest'."""
    created_at = pd.Series(pd.to_datetime(["2026-01-05"] * 1000))
    y = np.tile([1.0, 0.0, 0.0, 0.0, 0.0], 200)
    split = audit.make_split(created_at, pd.Series(y), sample_params.evaluate.split, seed=1)
    which = audit.held_out_leads(SimpleNamespace(created_at=created_at), split, sample_params.label)
    assert which == ("held-out leads (a random share of the ones with an outcome, created 2026-01-05 to 2026-01-05, "
                     "never seen in training; converted = within 120 days of creation)")


def test_the_console_headline_of_the_metrics_points_at_the_reports_table():
    """`leadscore audit` prints the notes, not the tables: '(every metric: table 'metrics')' sent the reader looking
    for a table the terminal does not have."""
    metrics = evaluate_scores(np.array([0, 1, 0, 1]), np.array([0.1, 0.9, 0.2, 0.8]), ece_bins=2, top_fractions=[0.5])
    assert audit._headline(metrics, [0.5]).endswith(
        "the top 50% hold 100% of the conversions (every metric: the report's table 'metrics').")


def test_the_change_note_of_a_slice_without_conversions_says_its_metrics_are_undefined():
    """A notebook slice may hold no conversion: no 'ROC AUC nan' in words."""
    assert audit._headline({"rows": 12.0, "positives": 0.0}, [0.1]) == (
        "Its metrics are not defined on 12 held-out leads with 0 conversions.")
    assert audit._headline({"rows": 3.0, "positives": 3.0}, [0.1]) == (
        "Its metrics are not defined on 3 held-out leads with 3 conversions.")


def test_a_form_field_every_lead_answers_alike_is_not_read_as_both_helping_and_hurting():
    """X Education's "Magazine" / "Search" fields: (nearly) every lead says "no"."""
    from features.build import FeatureDef

    n = 60
    features = pd.DataFrame(
        {
            "ad_magazine": ["no"] * n,
            "ad_search": ["no"] * (n - 2) + ["yes"] * 2,
            "do_not_email": ["no"] * (n // 2) + ["yes"] * (n // 2),
        },
        index=[f"L{i}" for i in range(n)],
    )
    signals = pd.DataFrame(
        {"ad_magazine": [0.04] * n, "ad_search": [-0.01] * (n - 2) + [0.3] * 2,
         "do_not_email": [0.1] * (n // 2) + [-0.4] * (n // 2)},
        index=features.index,
    )
    rows = audit.ExplainedRows(features, np.zeros(n), np.full(n, 0.5), signals, np.full(n, np.nan))
    catalog = [FeatureDef(c, "categorical", c) for c in features.columns]
    table = audit.signal_importance(rows, catalog).set_index("signal")

    assert table.loc["ad_magazine", "reading"] == "every one of these leads is no (+0.04): nothing to compare it with"
    assert table.loc["ad_search", "reading"] == (
        f"only no (-0.01) is common enough to compare: every other answer has fewer than {audit.MIN_LEVEL_ROWS} of these leads"
    )
    assert table.loc[["ad_magazine", "ad_search"], "worst_value"].isna().all()
    assert "hurts most" not in table.loc["ad_magazine", "reading"] + table.loc["ad_search", "reading"]
    assert table.loc["do_not_email", "reading"] == "helps most: no (+0.10); hurts most: yes (-0.40)"


def test_the_best_converting_sources_are_named_among_those_big_enough_to_say():
    """Marketing asks which sources win: a source of 3 leads converting 100% is not one of them."""
    rows = [("referral", 40, 30), ("webinar", 200, 70), ("tiny", 3, 3), ("paid_social", 100, 10), ("event", 30, 12)]
    outcomes = pd.DataFrame(
        [{"lead_source": source, "outcome": "converted" if i < converted else "rejected", "reason": np.nan}
         for source, decided, converted in rows for i in range(decided)])
    summary, _ = audit.segment_outcomes(outcomes, "lead_source")

    among = "of those with 20 or more leads with an outcome"
    # event (40.0% of 30) and webinar (35.0% of 200) read above all leads, but their intervals include 33.5%
    assert audit.conversion_headline(summary, "lead_source") == [
        f"Best converting by lead source, {among}: above the conversion rate of all leads, 33.5%, beyond chance (the "
        "95% interval in brackets lies wholly above it): referral 75.0% (59.8–85.8%) of 40 leads.",
        f"Worst converting by lead source, {among}: below the conversion rate of all leads, 33.5%, beyond chance (the "
        "95% interval in brackets lies wholly below it): paid_social 10.0% (5.5–17.4%) of 100 leads."]
    assert audit.conversion_headline(summary[summary["lead_source"] == "tiny"], "lead_source") == []


def test_a_source_named_best_converting_reads_above_the_rate_of_all_leads():
    """The sample CRM's paid_search (15.4%) was named best converting as '15% of 723' beside 'all leads: 15%' (14.5%):
    a winner that reads as average. Rates read to one decimal, as in the tables, and a source is named only when it
    reads above all leads at that precision."""
    rows = [("web", 884, 184), ("paid_search", 723, 111), ("outbound", 2000, 228)]
    outcomes = pd.DataFrame(
        [{"lead_source": source, "outcome": "converted" if i < converted else "rejected", "reason": np.nan}
         for source, decided, converted in rows for i in range(decided)])
    summary, _ = audit.segment_outcomes(outcomes, "lead_source")
    (best, _) = audit.conversion_headline(summary, "lead_source")
    assert best.endswith("all leads, 14.5%, beyond chance (the 95% interval in brackets lies wholly above it): "
                         "web 20.8% (18.3–23.6%) of 884 leads.")  # paid_search 15.4% (12.9-18.2%): within chance


def test_the_headline_says_how_many_more_convert_beyond_chance_than_it_names():
    """The sample CRM's headline named 5 campaigns converting below average beyond chance: 8 do, and nothing said the
    list stopped at 5. It names the 5 furthest below, and says how many more there are and where to find them."""
    rows = [("average", 2000, 400)] + [(f"weak_{i}", 200, 10 + i) for i in range(7)]
    outcomes = pd.DataFrame(
        [{"campaign": campaign, "outcome": "converted" if i < converted else "rejected", "reason": np.nan}
         for campaign, decided, converted in rows for i in range(decided)])
    summary, _ = audit.segment_outcomes(outcomes, "campaign")
    assert len(audit.worst_converting(summary, "campaign", len(summary))) == 7

    worst = audit.conversion_headline(summary, "campaign")[-1]
    assert [f"weak_{i} " in worst for i in range(7)] == [True] * 5 + [False] * 2
    assert worst.endswith("; and 2 more below it beyond chance (the table 'by campaign' gives every rate with its "
                          "interval).")


def test_a_source_within_chance_of_the_average_is_not_called_best_converting():
    """X Education's Google, 40.3% of 2,849 against all leads' 39.2%, was named best converting: its 95% interval,
    38.5-42.1%, holds the average, so the gap may be chance. The table gives each rate its interval and the notes say
    that no source stands out."""
    rows = [("Google", 2849, 1148), ("Direct Traffic", 2543, 972), ("tiny", 3, 3)]
    outcomes = pd.DataFrame(
        [{"lead_source": source, "outcome": "converted" if i < converted else "rejected", "reason": np.nan}
         for source, decided, converted in rows for i in range(decided)])
    summary, _ = audit.segment_outcomes(outcomes, "lead_source")
    google = summary.set_index("lead_source").loc["Google"]
    assert (google["conversion_low"], google["conversion_high"]) == pytest.approx((0.3851, 0.4211), abs=1e-4)
    assert summary.set_index("lead_source").loc["tiny", ["conversion_low", "conversion_high"]].isna().all()
    assert audit.conversion_headline(summary, "lead_source") == [
        "No lead source converts above or below the average beyond chance, of those with 20 or more leads with an "
        "outcome (all leads: 39.4%): the 95% interval of each one's conversion rate (in the table) includes it."]
    html = audit.table_html("by_lead_source", summary)
    assert "conversion rate, 95% interval: low" in html and "38.5%" in html and "42.1%" in html


def test_the_leads_without_a_source_are_not_named_best_converting_but_keep_their_row():
    """X Education's headline named '(missing) 80.6% of 36' among the best sources: nobody can invest in no source."""
    rows = [("Reference", 534, 490), (np.nan, 36, 29), ("Google", 2873, 1147)]
    outcomes = pd.DataFrame(
        [{"lead_source": source, "outcome": "converted" if i < converted else "rejected", "reason": np.nan}
         for source, decided, converted in rows for i in range(decided)])
    summary, _ = audit.segment_outcomes(outcomes, "lead_source")
    assert audit.MISSING in set(summary["lead_source"])
    (best, _) = audit.conversion_headline(summary, "lead_source")
    assert best.endswith("Reference 91.8% (89.1–93.8%) of 534 leads.")


def test_every_campaign_the_notes_name_is_in_the_plot():
    """The plot shows the 12 campaigns with most leads; the best converting one, named in the notes, may be smaller
    (the sample CRM's customer_referral, 66 leads), as may one with many rejections: both are plotted too."""
    rows = [(f"big_{i:02}", 100, 20, 10) for i in range(14)]  # (campaign, decided, converted, rejected)
    rows += [("small_winner", 30, 27, 3), ("small_loser", 80, 0, 70), ("tiny", 5, 5, 0)]
    outcomes = pd.DataFrame(
        [{"campaign": campaign, "reason": np.nan,
          "outcome": "converted" if i < converted else "rejected" if i < converted + rejected else "other"}
         for campaign, decided, converted, rejected in rows for i in range(decided)])
    summary, mix = audit.segment_outcomes(outcomes, "campaign")

    (best, _) = audit.conversion_headline(summary, "campaign")
    assert "small_winner 90.0% (74.4–96.5%) of 30 leads" in best
    assert audit.rejection_headlines(summary, "campaign")[1].startswith("campaign small_loser: 70 of 80")
    figure = audit.segments_plot(summary, mix, "campaign")
    plotted = [t.get_text().rsplit(" (", 1)[0] for t in figure.axes[0].get_yticklabels()]  # 'big_00 (100)'
    assert set(plotted) == {f"big_{i:02}" for i in range(12)} | {"small_winner", "small_loser"}
    assert plotted[::-1] == summary[summary["campaign"].isin(plotted)]["campaign"].tolist()  # most leads on top
    assert figure.axes[0].get_title() == ("Outcomes by campaign: the 12 with most leads and those the notes name\n"
                                          "(of 16 with 20+ leads with an outcome)")


def test_a_signal_reads_by_its_crm_field_or_in_words_in_notes_plots_and_page_while_the_csv_keeps_its_code():
    """Marketing knows X Education's 'Do Not Email' and 'Total Time Spent on Website', not do_not_email or
    time_on_website: one name per signal in the notes, the plots' labels and the page's tables."""
    from pipelines.config import DataParams

    n = 40
    features = pd.DataFrame({"do_not_email": ["no"] * 20 + ["yes"] * 20, "lead_industry": ["a", "b"] * 20,
                             "time_on_website": np.arange(n, dtype=float)})
    signals = pd.DataFrame({"do_not_email": [0.2] * 20 + [-0.6] * 20, "lead_industry": [0.01, -0.01] * 20,
                            "time_on_website": np.linspace(-0.3, 0.3, n)})
    data = DataParams(leads="x", mapping={"leads": {"Do Not Email": "do_not_email",
                                                    "Total Time Spent on Website": "time_on_website"}})
    rows = audit.ExplainedRows(features, np.zeros(n), np.full(n, 0.3), signals, np.zeros(n),
                               crm_fields=audit.crm_fields(data, signals.columns))
    catalog = [FeatureDef("do_not_email", "categorical", "do_not_email"),
               FeatureDef("lead_industry", "categorical", "lead_industry"),
               FeatureDef("time_on_website", "numeric", "time_on_website")]

    importance = audit.importance_section(rows, catalog)
    dependence = audit.dependence_section(rows, catalog, ["do_not_email", "time_on_website"])

    assert "Do Not Email: helps most: no (+0.20); hurts most: yes (-0.60)" in importance.notes
    assert "Total Time Spent on Website: more of it raises the score (direction +1.00)" in importance.notes
    assert "lead industry: " in "\n".join(importance.notes)  # not renamed: its name in words
    bars = {t.get_text() for t in importance.figures["importance"].axes[0].get_yticklabels()}
    assert bars == {"Do Not Email", "Total Time Spent on Website", "lead industry"}
    panels = dependence.figures["dependence"].axes
    assert [ax.get_title() for ax in panels if ax.get_visible()] == ["Do Not Email", "Total Time Spent on Website"]
    assert panels[1].get_xlabel() == "Total Time Spent on Website (value)"
    page = audit.render_html(audit.Audit({"name": "m", "version": "1"}, [importance, dependence], rows))
    assert "<td>Total Time Spent on Website</td>" in page and "<td>lead industry</td>" in page
    assert not [code for code in ("do_not_email", "time_on_website", "lead_industry") if code in page]
    # The tables (CSV, JSON, notebooks) keep the code, and the CRM field beside it
    table = importance.tables["signals"].set_index("signal")
    assert table.loc["do_not_email", "crm_column"] == "Do Not Email" and table.loc["lead_industry", "crm_column"] == ""
    assert set(dependence.tables["dependence"]["signal"]) == {"do_not_email", "time_on_website"}
    # A notebook's slice names them alike
    assert rows.segment("do_not_email", "yes").name("do_not_email") == "Do Not Email"
