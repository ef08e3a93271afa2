"""`leadscore audit`: which signals predict wins, and why leads from a source get rejected.

For marketing, not for the model builder: six sections, each a table and a plot, written as one
self-contained HTML page (plots embedded as PNG), the same tables as CSV and JSON and the plots as PNG files, and
logged to MLflow as artifacts of a run tagged ``audit`` in the model's experiment.

1. Signal importance: mean |SHAP contribution| per signal (log-odds, all features of a signal summed,
   e.g. every window of pricing views) and its direction. Direction is read differently per kind:
   * numeric signals: Spearman rank correlation between the signal's value (the sum of its features,
     e.g. pricing views over all windows) and its contribution. A "present vs absent" mean was the
     alternative, but "present" has no meaning for a continuous value (visits, company size), and
     SHAP contributions average to about zero over rows, so a mean alone says little; a rank
     correlation reads "more of it raises / lowers the score" for counts, flags and amounts alike,
     and ignores scale and outliers.
   * categorical signals have no order, so no sign: the audit names the level that helps most and
     the one that hurts most (mean contribution per level, levels with too few rows left out).
2. Dependence of the top signals: value (binned) against contribution.
3. Lead sources and campaigns, from every lead of the export with an outcome training counts (a conversion after
   ``label.horizon_days`` counts as not converted, as the model learns it): conversion rate, acceptance rate
   (share not rejected), the rejection reasons mix and won revenue when the export
   has deal amounts (a converted lead without one counts 0: a note says how many, and how many ingest left out).
4. Conversion and lift per tier, and the share of conversions in the top of the list.
5. Calibration: does "30 %" mean 30 %.
6. What changed against the previous registered version (or one named with ``--compare-to``), both
   scored on the same held-out leads, each on features built with its own saved settings.

Sections 1, 2, 4, 5 and 6 use the held-out test rows of the training split (the model never saw
them); every section function takes frames, so a notebook can recompute any of them on a slice.
"""

from __future__ import annotations

import base64
import html
import io
import json
import math
import textwrap
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from mlflow.tracking import MlflowClient

from features.build import FeatureDef, clean_text, feature_catalog, flag_signals, icp_criteria
from features.labels import counted_outcomes, outcome_group
from features.phrases import IDEAL_CUSTOMER_PROFILE, describe, icp_match_words, level_words
from models import explain
from models.calibration import TierThresholds
from models.metrics import (calibration_bins, capture_at, evaluate_scores, expected_calibration_error, fraction_key,
                            tier_table, wilson_interval)
from models.plots import calibration_plot, importance_plot, percent_ticks, unused, unused_line
from models.reasons import reason_in_words
from models.scorer import LeadScorer
from models.splits import Split, make_split
from pipelines import tracking
from pipelines.config import DataParams, EvaluateParams, FeatureParams, LabelParams, Params, flatten, shown_url
from pipelines.dataset import (TrainingSet, assemble, model_features, refuse_before_first_lead, setting_warnings,
                               with_model_features)
from pipelines.history import FeedbackMerge
from pipelines.ingest import CRMData, crm_column
from pipelines.train import run_name

TOP_SIGNALS = 6  # signals with a dependence plot
PLOTTED_SIGNALS = 20  # bars in the importance plot
PANEL_TITLE_CHARS = 40  # a dependence panel's title wraps at this many characters a line (`panel_title`)
IMPORTANCE_DECIMALS = 3  # as the page shows importance (`_format_number`): a signal of 0.000 is one the model does not use
MIN_LEVEL_ROWS = 20  # a category level needs this many rows to be named as helping / hurting most, or shown alone
DEPENDENCE_BINS = 10  # bands of about equal size of a numeric signal in the dependence table (`value_bands`)
TOP_REASONS = 3  # rejection reasons named per source / campaign; the rest are pooled
PLOTTED_SEGMENTS = 12  # sources / campaigns in the segment plots, most leads first
HEADLINE_SEGMENTS = 5  # sources / campaigns with a rejection headline, most rejections first
SEGMENT_COLUMNS = ("lead_source", "campaign")
UNCOUNTED = ("censored", "excluded")  # `lead_outcomes`' outcomes training counts no outcome of: not in the rates

RARE_SUFFIX = f"with under {MIN_LEVEL_ROWS} leads)"  # ends the row of a category's rare values, pooled
MISSING = "(missing)"  # a lead without a value: a level of its own in every table, and a segment to slice by
NO_REASON = "(no reason given)"
OTHER_REASONS = "(other reasons)"  # the plots' one bar of a segment's reasons not named (`other_reasons` in the tables)
# The one reason row of a source or campaign with too few rejections to split by reason, as rare values are pooled.
FEW_REJECTIONS = f"(under {MIN_LEVEL_ROWS} rejections: too few to split by reason)"
# The top rejection reason of one split by reason whose reasons given are all too rare to name (`reason_mix`).
NO_NAMED_REASON = f"(no single reason given by {MIN_LEVEL_ROWS} or more of its rejections)"
SCORER_LABEL = "leadscore"
# Where a section's first note says what the numbers mean, in words (the sections use them as written here).
EFFECT = ("A signal's effect is how far it moves a lead's score, in log-odds, the model's own scale: +0.7 about "
          "doubles a lead's odds of converting, -0.7 halves them, 0 leaves them as they are")
HELD_OUT = "held-out leads (kept out of training to test the model on)"
# Tables, their columns and the model details as the HTML page heads them where the name alone is jargon
# ("<table>.<column>" for a column that means something else in another table); any other name shows with
# spaces for underscores. The CSV and JSON files keep the names, which notebooks and scripts read.
SHOWN_AS = {
    "capture": "conversions held by the top of the list",
    "mean_abs_contribution": "importance (average effect either way, log-odds)",
    "overall_mean_abs_contribution": "importance among all held-out leads",  # the notebook's slice, beside its own
    "signals.share": "share of all importance",
    "tiers.share": "share of leads",
    **{f"rejection_reasons_by_{by}.share": "share of its rejections" for by in SEGMENT_COLUMNS},
    "direction": "direction (-1 to +1)",
    "best_value": "helps most",
    "best_contribution": "effect of the one helping most",
    "worst_value": "hurts most",
    "worst_contribution": "effect of the one hurting most",
    "reading": "in words",
    "rows": "leads",
    "mean_value": "average value",
    "mean_contribution": "average effect (log-odds)",
    "decided": "leads with an outcome",
    "excluded": "left out, as in training",
    "acceptance_rate": "acceptance rate (share not rejected)",
    "conversion_low": "conversion rate, 95% interval: low",
    "conversion_high": "conversion rate, 95% interval: high",
    "top_reason_share": "top reason's share of rejections",
    "no_reason_share": "share rejected without a reason",
    "rejected": "rejected leads",
    "min_probability": "from predicted probability",
    "tiers.lift": "lift (times the average conversion rate)",
    "capture.lift": "lift (times what as many leads picked at random hold)",
    "top_share": "top of the list (share of leads)",
    "capture.capture": "share of all conversions held",
    "mean_p": "average predicted probability",
    "observed": "observed conversion rate",
    "current": "audited model",
    "previous": "previous model",
    "trained_at": "trained at",
    "training_run": "MLflow training run",
    "as_of": "data as of",
    "split": "held-out leads chosen",
    "split_because": "chosen so because",
    "test_rows": "held-out leads",
    "compared_with": "compared with",
    "generated_at": "written at",
    "currency": "currency of deal amounts",
}
# The metrics table's rows (models.metrics.evaluate_scores keys) as the page shows them: in words, each with the
# format of its numbers, since one column holds counts, shares and scores ("712", "39.2%", "0.878"); "top" is a
# capture or lift key's share of the list ("capture_top10": "10%"). The CSV and JSON keep the keys.
METRICS_SHOWN_AS = {
    "rows": ("held-out leads", "count"),
    "positives": ("conversions among them", "count"),
    "positive_rate": ("conversion rate", "share"),
    "mean_p": ("average predicted probability", "share"),
    "roc_auc": ("ROC AUC: chance a lead that converted is scored above one that did not (0.5 coin toss, 1 perfect)",
                "score"),
    "pr_auc": ("average precision: how much of the top of the list converted, averaged over every cut-off (1 best)",
               "score"),
    "log_loss": ("log loss: penalty for confident wrong predictions (lower is better)", "score"),
    "brier": ("Brier score: average squared gap between prediction and outcome (lower is better)", "score"),
    "ece": ("calibration error: average gap between predicted and observed conversion rates (0.02 = 2 points)",
            "score"),
    "capture": ("share of all conversions held by the top {top} of the list", "share"),
    "lift": ("lift of the top {top} (times the conversions as many leads picked at random hold)", "times"),
}
# The number format of the other tables' columns on the page, by "<table>.<column>" or column as SHOWN_AS keys them,
# in the metrics' formats: shares, rates and probabilities as percentages ("39.9%"), lifts as times ("3.30x"), a band's
# average value of visits or minutes to one decimal ("4.5", "1,228.7": X Education's read '920.989' beside '1,229'); any
# other column reads as a count or to 3 decimals (`_format_number`). The CSV and JSON keep the fractions (0.399).
COLUMN_FORMATS = {
    **dict.fromkeys(("share", "conversion_rate", "conversion_low", "conversion_high", "acceptance_rate", "top_reason_share", "no_reason_share",
                     "min_probability", "top_share", "capture.capture", "mean_p", "observed"), "share"),
    "lift": "times",
    "mean_value": "average",
}
# Derived signals whose code in words would still be jargon ("icp match") or read backwards ("more activity recency
# lowers the score"), as the page names them; any other reads as its CRM field or its code in words (`signal_name`).
SIGNAL_WORDS = {"icp_match": f"{IDEAL_CUSTOMER_PROFILE} match", "activity_recency": "days since the last activity",
                "email_domain_type": "non-business e-mail (free, student, competitor or none)"}
AMOUNT_COLUMNS = ("won_revenue",)  # columns of money, headed with data.currency where set (`table_html`)
KIND_SHOWN_AS = {"numeric": "number", "categorical": "category"}  # the signals table's kinds on the page
# Model details that are times (ISO in the JSON), shown as a reader writes them (`_time_shown`).
TIME_DETAILS = ("trained_at", "as_of", "generated_at")
# `tracking.run_in_ui`'s details of the training run as the JSON keeps them; the page says them in the training
# run's row (`_training_run_html`).
TRAINING_RUN_DETAILS = tuple(f"training_run_{key}" for key in ("name", "experiment", "url", "ui_command"))
SPLIT_SHOWN_AS = {"out_of_time": "the newest leads with an outcome", "stratified": "a random share of the leads with an outcome"}
# matplotlib's categorical colours for named reasons (pooled and missing reasons are grey), cycled.
REASON_COLORS = [f"tab:{c}" for c in ("blue", "orange", "green", "red", "purple", "brown", "pink", "olive", "cyan")]
HOW_MANY = "(how many in brackets)"  # a segment plot's axis label, of the counts its row labels give (`counted`)
# The plots' files (`plot_file`), in plots/ beside the tables and in the MLflow run's audit/plots, by figure name: what
# each shows, as a marketer browsing the run's artifacts recognises it, not the code's name ("dependence").
PLOT_FILES = {"importance": "signal_importance", "dependence": "top_signals_by_value", "tiers": "conversion_by_tier",
              "calibration": "calibration", "importance_change": "importance_change_vs_previous_model",
              **{f"by_{by}": f"outcomes_by_{by}" for by in SEGMENT_COLUMNS}}


@dataclass
class ExplainedRows:
    """Leads the audit explains, aligned by position: features, outcome, calibrated p, contributions.

    Attributes:
        features: feature frame, index lead_id.
        y: 1.0 converted, 0.0 not.
        probability: calibrated probability of conversion.
        signals: SHAP contribution per signal, in log-odds (models.explain.by_signal).
        age_days: each lead's age at its features' moment (NaN undated), which calibration reads.
        spellings: per category column, each stored (lower-cased) value as the tables show it (`category_spellings`:
            as the export writes it, or a derived level in a rep's words); a value it lacks is shown as stored.
        crm_fields: per signal read from a CRM column the mapping renames, that column's name (`crm_fields`), by
            which the page, its plots and notes name the signal (`name`).
        spec: the features section the model was built with, by which a yes/no signal's reading quotes the words
            the score card gives its leads ("No phone number", `card_phrases`).
    """

    features: pd.DataFrame
    y: np.ndarray
    probability: np.ndarray
    signals: pd.DataFrame
    age_days: np.ndarray
    spellings: dict[str, dict[str, str]] = field(default_factory=dict)
    crm_fields: dict[str, str] = field(default_factory=dict)
    spec: FeatureParams | None = None

    def name(self, signal: str) -> str:
        """The signal as the page, its plots and notes name it (`signal_name`)."""
        return signal_name(signal, self.crm_fields)

    def subset(self, mask: Sequence[bool] | np.ndarray | pd.Series) -> "ExplainedRows":
        """The rows where `mask` is true (same order)."""
        keep = np.asarray(mask, dtype=bool)
        return ExplainedRows(self.features[keep], self.y[keep], self.probability[keep], self.signals[keep],
                             self.age_days[keep], self.spellings, self.crm_fields, self.spec)

    def segment(self, column: str, value: str) -> "ExplainedRows":
        """The leads whose feature `column` equals `value` as stored or as the tables show it (`spellings`: "C-level"
        is c_level), compared stripped and lower-cased; MISSING, as the tables name it, selects the leads without one.

        Raises:
            LookupError: `column` is not a feature; the message lists the categorical ones.
        """
        if column not in self.features.columns:
            text = [c for c in self.features.columns if not pd.api.types.is_numeric_dtype(self.features[c])]
            raise LookupError(f"{column!r} is not a feature of this model; segment by one of {text}")
        wanted = str(value).strip().lower()
        if wanted == MISSING:
            return self.subset(self.features[column].isna())
        def equal(values: pd.Series) -> pd.Series:
            return values.astype("str").str.strip().str.lower().eq(wanted).fillna(False)

        stored = self.features[column]
        return self.subset(equal(stored) | equal(spelled(stored, self.spellings.get(column, {}))))


@dataclass
class Section:
    """One part of the report: sentences to read first, then tables and figures."""

    key: str
    title: str
    notes: list[str] = field(default_factory=list)
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)
    figures: dict[str, Figure] = field(default_factory=dict)


@dataclass
class Audit:
    model: dict  # what was audited: registry name/version/alias, training run, as_of, rows
    sections: list[Section]
    rows: ExplainedRows  # the explained test rows, for slicing in a notebook
    # The export against the model's feature settings (dataset.setting_warnings), read before any section: an
    # activity file of its header only audits a model as if no lead were ever active
    warnings: list[str] = field(default_factory=list)
    # Which leads `rows` are, as the tier section's note (`held_out_leads`) and its plot's title (`Split.test_caption`)
    # say it: a notebook slice's tier section says the same of its leads (`slice_tiers_section`)
    held_out: str = "held-out leads"
    computed_on: str = ""


@dataclass
class PreviousModel:
    """The model the audited one is compared with."""

    label: str  # "version 3" or "version 3 (alias old_champion)"
    scorer: LeadScorer


@dataclass
class AuditResult:
    audit: Audit
    paths: list[Path]
    run_id: str


# ---------------------------------------------------------------- rows and signals


def explain_rows(scorer: LeadScorer, features: pd.DataFrame, y: Sequence[float] | np.ndarray,
                 age_days: np.ndarray, spellings: dict[str, dict[str, str]] | None = None) -> ExplainedRows:
    """Calibrated p and SHAP contributions per signal of `scorer` on `features` (leads of `age_days`), with the
    CRM's `spellings` of their category values (`category_spellings`) and names of its signals to show.

    The contributions add up to the margin exactly, so p comes from them (the model runs once).
    """
    base, contributions = explain.contributions(scorer, features)
    signals = explain.by_signal(scorer, contributions)
    return ExplainedRows(
        features=features,
        y=np.asarray(y, dtype=np.float64),
        probability=scorer.calibrator.predict(base + contributions.to_numpy().sum(axis=1), age_days),
        signals=signals,
        age_days=np.asarray(age_days, dtype=np.float64),
        spellings=spellings or {},
        crm_fields=crm_fields(scorer.data, signals.columns),
        spec=scorer.features,
    )


def signal_name(signal: str, crm_fields: dict[str, str]) -> str:
    """A signal as marketing reads it: its CRM field ("Total Time Spent on Website") where `crm_fields` has one,
    else SIGNAL_WORDS' words or its own name in words ("pricing view"). The tables' ``signal`` column keeps the
    code, for notebooks."""
    return crm_fields.get(signal) or SIGNAL_WORDS.get(signal) or signal.replace("_", " ")


def crm_fields(data: DataParams, signals: Sequence[str]) -> dict[str, str]:
    """Each of `signals` read from a leads column the mapping renames -> the CRM's name of it: marketing knows
    X Education's "Do Not Email", not do_not_email."""
    return {s: crm_column(data, "leads", s) for s in signals if crm_column(data, "leads", s) != s}


def category_spellings(crm: CRMData, features: pd.DataFrame, spec: FeatureParams) -> dict[str, dict[str, str]]:
    """How the tables show each category feature's stored values (lower-cased) in `features`, built with `spec`: one
    derived from the leads (seniority, department) as a rep reads it (`level_words`: "C-level", "No job title to
    tell the department", not c_level and unknown), one read from a leads column of `crm` as the export writes it
    (`CRMData.export_spellings`: "TT", not the "TikTok" data.value_maps renames it to)."""
    out = {}
    for d in feature_catalog(spec):
        if d.kind == "categorical" and d.name in features.columns:
            words = level_words(spec, d.name, pd.unique(features[d.name].dropna()))
            if words or d.name in crm.leads.columns:
                out[d.name] = words or crm.export_spellings(d.name)
    return out


def spelled(values: pd.Series, spellings: dict[str, str]) -> pd.Series:
    """`values` (stored lower-cased) as `spellings` writes them; one without a spelling as stored, missing stays
    missing."""
    return values.astype(object).map({v: spellings.get(v, v) for v in pd.unique(values.dropna())})


def _features_by_signal(catalog: list[FeatureDef]) -> dict[str, list[FeatureDef]]:
    out: dict[str, list[FeatureDef]] = {}
    for definition in catalog:
        out.setdefault(definition.signal, []).append(definition)
    return out


def icp_criteria_counted(signal: str, spec: FeatureParams | None) -> int | None:
    """The number of ideal customer profile criteria when `signal` is the ICP match of a model built with `spec`, else
    None: the audit reads that signal as the criteria a lead meets, as the score card counts them ("1 of 4"), not as
    the share the feature stores (0.25)."""
    return icp_criteria(spec) if signal == "icp_match" and spec is not None and signal in spec.derived else None


def signal_values(features: pd.DataFrame, catalog: list[FeatureDef],
                  spellings: dict[str, dict[str, str]] | None = None, spec: FeatureParams | None = None) -> pd.DataFrame:
    """The value each signal's contribution is read against, one column per signal.

    A numeric signal is the sum of its numeric features (pricing views over all windows; NaN when all
    are missing), the ICP match the criteria a lead meets when `spec`, the model's feature settings, counts them
    (`icp_criteria_counted`); a categorical signal is its category column as the CRM spells it when `spellings` has
    it, else as stored (lower-cased); `_signal_kinds` says which a signal is.
    """
    values = {}
    spellings = spellings or {}
    for signal, definitions in _features_by_signal(catalog).items():
        if definitions[0].kind == "categorical":
            name = definitions[0].name
            values[signal] = spelled(features[name], spellings[name]) if name in spellings else features[name]
        else:
            numeric = [d.name for d in definitions if d.kind == "numeric"]
            values[signal] = features[numeric].sum(axis=1, min_count=1)
            criteria = icp_criteria_counted(signal, spec)
            if criteria:
                values[signal] = (values[signal] * criteria).round()
    return pd.DataFrame(values, index=features.index)


def _signal_kinds(catalog: list[FeatureDef]) -> dict[str, str]:
    """Each signal read as the kind of its first feature, the column it is named after: a derived feature
    joined to it (country's "unsupported" flag, employees' size band) does not change how it reads, or
    "country" would read as "more of it lowers the score" instead of naming the countries."""
    return {signal: definitions[0].kind for signal, definitions in _features_by_signal(catalog).items()}


def _level_effects(values: pd.Series, contribution: pd.Series) -> pd.DataFrame:
    """Mean contribution and rows per category level (missing as its own level), best first."""
    levels = values.astype(object).where(values.notna(), MISSING)
    effects = contribution.groupby(levels.to_numpy()).agg(["mean", "size"])
    return effects.sort_values(["mean", "size"], ascending=[False, False])


def card_phrases(rows: ExplainedRows) -> pd.DataFrame | None:
    """Each lead's score-card phrase of each signal (`phrases.describe`: "No phone number"), by which the audit words
    a yes/no signal as the card does; None for rows without the model's feature settings (`ExplainedRows.spec`)."""
    return None if rows.spec is None else describe(rows.features, rows.spec, rows.age_days)[0]


def signal_importance(rows: ExplainedRows, catalog: list[FeatureDef]) -> pd.DataFrame:
    """Per signal, most important first: how much it moves scores, and which way.

    Returns:
        ``signal``, ``kind``, ``mean_abs_contribution`` (log-odds), ``share`` (of the total),
        ``direction`` (numeric: Spearman rho of value vs contribution), ``best_value`` /
        ``best_contribution`` and ``worst_value`` / ``worst_contribution`` (categorical: the levels
        with at least MIN_LEVEL_ROWS rows that raise / lower scores most; no worst when only one level
        has that many), and ``reading`` in words.
    """
    values = signal_values(rows.features, catalog, rows.spellings, rows.spec)
    kinds, flags = _signal_kinds(catalog), flag_signals(catalog)
    phrases = card_phrases(rows)

    def said_of(signal: str, leads: pd.Series) -> str:
        """What the score card says of `signal` for `leads`, quoted, most leads first ('"No phone number"'), or the
        signal's name without the model's feature settings."""
        if phrases is None:
            return rows.name(signal)
        quoted = [f'"{words}"' for words in phrases.loc[leads.to_numpy(), signal].value_counts().index]
        return quoted[0] if len(quoted) == 1 else f"{', '.join(quoted[:-1])} or {quoted[-1]}"

    mean_abs = rows.signals.abs().mean()
    total = mean_abs.sum()
    records = []
    for signal in rows.signals.columns:
        kind = kinds[signal]
        record = {
            "signal": signal,
            "kind": kind,
            "mean_abs_contribution": float(mean_abs[signal]),
            "share": float(mean_abs[signal] / total) if total > 0 else math.nan,
            "direction": math.nan,
            "best_value": None,
            "best_contribution": math.nan,
            "worst_value": None,
            "worst_contribution": math.nan,
        }
        contribution = rows.signals[signal]
        if not contribution.abs().gt(0).any():
            record["reading"] = "does not move any of these leads' scores"
        elif kind == "numeric":
            value = values[signal].astype("float64")
            varies = value.nunique() > 1 and contribution.nunique() > 1
            rho = value.corr(contribution, method="spearman") if varies else math.nan
            record["direction"] = float(rho)
            if math.isnan(rho):
                record["reading"] = "no variation in these leads"
            elif signal in flags:  # a yes/no flag (free e-mail, no phone): "more of it" means nothing
                present = value.gt(0)
                effect = "higher" if contribution[present].mean() > contribution[~present].mean() else "lower"
                record["reading"] = (f"leads with {said_of(signal, present)} score {effect} ({present.sum():,} leads, "
                                     f"{contribution[present].mean():+.2f} on average; "
                                     f"{contribution[~present].mean():+.2f} for the others)")
            elif rho >= explain.DIRECTION_THRESHOLD:
                record["reading"] = f"more of it raises the score (direction {rho:+.2f})"
            elif rho <= -explain.DIRECTION_THRESHOLD:
                record["reading"] = f"more of it lowers the score (direction {rho:+.2f})"
            else:
                record["reading"] = f"no consistent direction ({rho:+.2f})"
        else:
            levels = _level_effects(values[signal], contribution)
            named = levels[levels["size"] >= MIN_LEVEL_ROWS]
            effects = named if len(named) else levels
            record |= {"best_value": str(effects.index[0]), "best_contribution": float(effects["mean"].iloc[0])}
            best = f"{record['best_value']} ({record['best_contribution']:+.2f})"
            if len(effects) == 1:
                # A form field (nearly) every lead answers the same way ("No"), or lead_source in a slice of one
                # source: naming that answer as both the level that helps most and the one that hurts most
                # would say it does both.
                record["reading"] = (
                    f"every one of these leads is {best}: nothing to compare it with" if len(levels) == 1 else
                    f"only {best} is common enough to compare: every other answer has fewer than "
                    f"{MIN_LEVEL_ROWS} of these leads"
                )
            else:
                record |= {"worst_value": str(effects.index[-1]), "worst_contribution": float(effects["mean"].iloc[-1])}
                worst = f"{record['worst_value']} ({record['worst_contribution']:+.2f})"
                # Of the levels compared: a rarer one left out may well go the other way.
                every = "every value" if len(effects) == len(levels) else f"every value of {MIN_LEVEL_ROWS}+ leads"
                if record["best_contribution"] <= 0:  # "helps most" would call a value that lowers scores a help
                    record["reading"] = f"{every} lowers the score; least: {best}, most: {worst}"
                elif record["worst_contribution"] >= 0:
                    record["reading"] = f"{every} raises the score; most: {best}, least: {worst}"
                else:
                    record["reading"] = f"helps most: {best}; hurts most: {worst}"
        records.append(record)
    columns = ["signal", "kind", "mean_abs_contribution", "share", "direction", "best_value", "best_contribution",
               "worst_value", "worst_contribution", "reading"]
    table = pd.DataFrame(records, columns=columns)
    return table.sort_values(["mean_abs_contribution", "signal"], ascending=[False, True], na_position="last").reset_index(drop=True)


def rare_values(count: int) -> str:
    """The dependence table's row of a category's `count` values with fewer than MIN_LEVEL_ROWS leads each."""
    return f"(1 value {RARE_SUFFIX}" if count == 1 else f"({count} values, each {RARE_SUFFIX}"


def _band_number(value: float) -> str:
    """A band's bound as text: '48', '349.6', '0.232', '1,366'."""
    return f"{value:,.0f}" if abs(value) >= 1000 else f"{value:.4g}"


def band_edges(present: pd.Series, bins: int = DEPENDENCE_BINS) -> tuple[np.ndarray, bool]:
    """The edges of `bins` bands of about equal size by value of `present` (no NaN), from its lowest value to its
    highest (band i holds the values above edges[i] up to edges[i + 1], the lowest from edges[0]), as a reader reads
    them, and whether they are a count's. A count's (every value whole: visits, page views) cut where the quantiles
    do, at whole numbers: its band "over 0.4 up to 20.2" held the leads of 1 to 20. An amount's inner edges are
    rounded to the fewest significant digits that keep its bands apart and about equal ("over 1.5 up to 2.3", not
    2.33333; 110 and 130, not 100 to 110 for half the leads of 110 to 130), its bands cut there: edges read as
    written hold what they say."""
    edges = np.unique(present.quantile(np.linspace(0, 1, bins + 1)).to_numpy())
    low, inner, high = edges[0], edges[1:-1], edges[-1]
    whole = bool((present == np.round(present)).all())
    if whole:  # the whole numbers above an edge a, up to b, are those above floor(a), up to floor(b)
        inner = np.unique(np.floor(inner))  # the lowest may be the lowest value: its band holds that value alone
    else:  # moved by a tenth of the narrower band beside it at most: the bands stay in order and about equal
        widths = np.diff(edges)
        moved = 0.1 * np.minimum(widths[:-1], widths[1:])
        inner = next(rounded for digits in range(1, 17)
                     if (np.abs((rounded := np.array([float(f"{edge:.{digits}g}") for edge in inner])) - inner)
                         <= moved).all())
    return np.r_[low, inner, high], whole


def value_bands(number: pd.Series, bins: int = DEPENDENCE_BINS) -> pd.Series:
    """Each lead's band of a numeric signal, as text (NaN where `number` is missing).

    Every value its own band when there are at most `bins` ("3"), else `bins` bands of about equal size by value
    (`band_edges`): a count's from its lowest value to its highest ("0 to 48", "49 to 139", "1,367 to 2,272"), an
    amount's between its edges ("up to 1.5", "over 1.5 up to 2.3", "over 5"). A band of fewer than MIN_LEVEL_ROWS
    leads is merged with the next one up ("7 to 12"; the top band with the one below), as a category's rare values
    are pooled: the 2 leads with 9 e-mail opens would show their own average effect as firmly as the 500 with none.
    """
    present = number.dropna()
    quantiles = present.nunique() > bins
    if quantiles:  # band i holds the values above edges[i] up to edges[i + 1] (the lowest from edges[0])
        edges, whole = band_edges(present, bins)
        codes = pd.Series(np.searchsorted(edges[1:-1], present, side="left"), index=present.index)
    else:  # band i holds edges[i]
        edges = np.sort(present.unique())
        codes = pd.Series(np.searchsorted(edges, present), index=present.index)
    codes = codes.astype(int)
    counts = np.bincount(codes, minlength=len(edges) - quantiles)
    merged, start, size = [], 0, 0  # (first band, last band) of each merged band
    for band, count in enumerate(counts):
        size += count
        if size >= MIN_LEVEL_ROWS:
            merged.append((start, band))
            start, size = band + 1, 0
    if start < len(counts):  # the top bands short of MIN_LEVEL_ROWS leads join the band below, if any
        merged[-1:] = [(merged[-1][0] if merged else 0, len(counts) - 1)]
    labels = {}
    for first, last in merged:
        if quantiles and whole:  # whole numbers: the lowest band from the lowest value, any other above its edge
            low, high = edges[first] + (first > 0), edges[last + 1]
            text = " to ".join(dict.fromkeys(_band_number(value) for value in (low, high)))
        elif quantiles:  # the top one "over" its edge: its highest value, to 4 digits, might read below itself
            text = (f"up to {_band_number(edges[last + 1])}" if first == 0 else
                    f"over {_band_number(edges[first])}" if last == len(counts) - 1 else
                    f"over {_band_number(edges[first])} up to {_band_number(edges[last + 1])}")
        else:
            text = " to ".join(dict.fromkeys(_band_number(edges[b]) for b in (first, last)))
        labels |= {band: text for band in range(first, last + 1)}
    return codes.map(labels).reindex(number.index)


def dependence_table(
    rows: ExplainedRows, catalog: list[FeatureDef], signals: Sequence[str], bins: int = DEPENDENCE_BINS
) -> pd.DataFrame:
    """Mean contribution per value of each signal: bands of values for numbers (`value_bands`; the ICP match's in
    the score card's words, by the model's own template: `phrases.icp_match_words`), levels for categories.

    A level of fewer than MIN_LEVEL_ROWS leads is pooled with the others as rare (`rare_values`): the
    average effect of X Education's one "Businessman" is that lead's, and its bar would be as long as any. Leads
    without a number are a row of their own, marked as rare when they are that few (no band to merge them with).

    Returns:
        ``signal``, ``value`` (band or level as text), ``rows``, ``mean_value`` (numeric signals) and
        ``mean_contribution``; numeric bands in value order (missing last), levels best first, then the rare ones.
    """
    values = signal_values(rows.features, catalog, rows.spellings, rows.spec)
    kinds = _signal_kinds(catalog)
    parts = []
    for signal in signals:
        contribution = rows.signals[signal]
        if kinds[signal] == "numeric":
            number = values[signal].astype("float64")
            missing = MISSING if number.isna().sum() >= MIN_LEVEL_ROWS else f"{MISSING[:-1]}, {RARE_SUFFIX}"
            bands = value_bands(number, bins)
            criteria = icp_criteria_counted(signal, rows.spec)
            if criteria:
                bands = bands.map(icp_match_words(rows.spec, bands.dropna().unique()))
            group = bands.where(number.notna(), missing)
            table = pd.DataFrame({"group": group, "value": number, "contribution": contribution})
            part = table.groupby("group").agg(
                rows=("contribution", "size"), mean_value=("value", "mean"), mean_contribution=("contribution", "mean")
            )
            part = part.sort_values("mean_value", na_position="last")
        else:
            effects = _level_effects(values[signal], contribution)
            rare = effects["size"] < MIN_LEVEL_ROWS
            if rare.any():
                pooled = effects[rare]
                mean = float((pooled["mean"] * pooled["size"]).sum() / pooled["size"].sum())
                effects = pd.concat([effects[~rare], pd.DataFrame({"mean": [mean], "size": [pooled["size"].sum()]},
                                                                  index=[rare_values(int(rare.sum()))])])
            part = pd.DataFrame(
                {"rows": effects["size"], "mean_value": math.nan, "mean_contribution": effects["mean"]}
            )
        part = part.rename_axis("value").reset_index()
        part.insert(0, "signal", signal)
        parts.append(part)
    columns = ["signal", "value", "rows", "mean_value", "mean_contribution"]
    if not parts:
        return pd.DataFrame(columns=columns)
    return pd.concat(parts, ignore_index=True)[columns]


# ---------------------------------------------------------------- sources and campaigns


def lead_outcomes(training_set: TrainingSet, label: LabelParams, columns: Sequence[str] = SEGMENT_COLUMNS) -> pd.DataFrame:
    """Every lead of the export (up to as_of) with its segments, outcome, reason and won amount.

    Returns:
        Index lead_id; one column per segment column the leads table has (values equal once stripped and
        lower-cased, as the features compare them, are one segment, spelled as the export writes most of them,
        `CRMData.export_spellings`: "Google"); ``outcome`` as training counts it (`features.labels.counted_outcomes`:
        converted / rejected / other / censored / excluded): a conversion after ``label.horizon_days`` is "other", as
        the model learns it not converted, and so is a lead still open past the horizon; a lead with no label yet is
        censored; excluded, a lead whose label rule training leaves out: a duplicate, or X Education's rejection for
        an 'Invalid number', which says nothing of the lead, not one to rate a source by); ``reason`` (the rejection
        reason of a rejected lead, a censored or excluded one too, as `readable_reasons` words it); and ``amount``
        (converted leads only) when the export has any deal amount.
    """
    frame = training_set.labels.frame
    leads = training_set.crm.leads.set_index("lead_id")
    out = pd.DataFrame(index=frame.index)
    for column in columns:
        if column in leads.columns:
            values = leads[column].reindex(frame.index)
            out[column] = spelled(clean_text(values).set_axis(frame.index), training_set.crm.export_spellings(column))
    group = outcome_group(frame["status"], label)
    out["outcome"] = counted_outcomes(frame, label)
    converted = out["outcome"] == "converted"
    outcomes = training_set.crm.outcomes
    out["reason"] = readable_reasons(frame["reason"].where(group == "rejected"), training_set.crm.export_spellings("reason"))
    if outcomes is not None and "amount" in outcomes.columns and outcomes["amount"].notna().any():
        amount = outcomes.set_index("lead_id")["amount"].reindex(frame.index)
        out["amount"] = pd.to_numeric(amount, errors="coerce").where(converted)
    return out


def readable_reasons(reasons: pd.Series, spellings: dict[str, str]) -> pd.Series:
    """Rejection `reasons` (as labels store them, lower-cased) in the words marketing reads, as the score card
    words a likely one (`models.reasons.reason_in_words` with the export's `spellings`)."""
    return reasons.astype(object).map({v: reason_in_words(v, spellings) for v in pd.unique(reasons.dropna())})


def other_reasons(count: int) -> str:
    """The reason row of a segment's `count` reasons `reason_mix` does not name: '(1 other reason)', '(4 other
    reasons)', as the value table's row of rare values says how many it pools."""
    return f"({count} other reason{'s' * (count != 1)})"


def is_other_reasons(reasons: pd.Series) -> pd.Series:
    """True for a `reason_mix` row of `other_reasons`."""
    return reasons.astype(str).str.fullmatch(r"\(\d+ other reasons?\)")


def reason_mix(segment: pd.Series, reason: pd.Series, top: int = TOP_REASONS) -> pd.DataFrame:
    """Rejection reasons per segment: the `top` most frequent by name, then the rest pooled, then none given.

    Rejections without a reason stay a row of their own (NO_REASON) instead of competing with the
    named reasons: in many CRMs it is the largest group and would hide what reps did write down.
    A segment with fewer than MIN_LEVEL_ROWS rejections has one row, FEW_REJECTIONS: X Education's
    "Welingak Website" split 100% one way from its 2 rejections says nothing, as a value of 2 leads is
    pooled in the dependence table. For the same reason a reason is named only when MIN_LEVEL_ROWS or more of
    the segment's rejections give it: X Education's Facebook has 42 rejections, and "why Facebook leads get
    rejected" named a reason one of them gave; it is pooled with the reasons beyond the `top` (`other_reasons`).

    Args:
        segment: the segment of each rejected lead (named like the segment column).
        reason: its reason; missing reads as NO_REASON.

    Returns:
        ``<segment>``, ``reason``, ``rejected`` (leads), ``share`` (of the segment's rejections, so
        shares sum to 1 per segment); per segment the named reasons most frequent first, then
        `other_reasons`, then NO_REASON; or FEW_REJECTIONS alone.
    """
    by = segment.name
    frame = pd.DataFrame({by: segment.to_numpy(), "reason": reason.astype(object).fillna(NO_REASON).to_numpy()})
    few = frame.groupby(by)["reason"].transform("size") < MIN_LEVEL_ROWS
    frame.loc[few, "reason"] = FEW_REJECTIONS
    counts = frame.groupby([by, "reason"]).size().rename("rejected").reset_index()
    counts["rank"] = np.select([counts["reason"] == NO_REASON, counts["reason"] == FEW_REJECTIONS], [2, 3], 0)
    counts = counts.sort_values([by, "rank", "rejected", "reason"], ascending=[True, True, False, True])
    named = counts["rank"] == 0
    beyond_top = counts[named].groupby(by).cumcount().reindex(counts.index, fill_value=0) >= top
    pooled = named & (beyond_top | (counts["rejected"] < MIN_LEVEL_ROWS))
    counts["reason"] = counts["reason"].where(~pooled, OTHER_REASONS)
    counts["rank"] = counts["rank"].where(~pooled, 1)
    mix = counts.groupby([by, "reason"], sort=False).agg(rejected=("rejected", "sum"), rank=("rank", "first"),
                                                         reasons=("rejected", "size"))
    mix = mix.reset_index()
    other = mix["rank"] == 1
    mix.loc[other, "reason"] = mix.loc[other, "reasons"].map(other_reasons)
    mix = mix.sort_values([by, "rank", "rejected", "reason"], ascending=[True, True, False, True])
    mix["share"] = mix["rejected"] / mix.groupby(by)["rejected"].transform("sum")
    return mix[[by, "reason", "rejected", "share"]].reset_index(drop=True)


def segment_outcomes(outcomes: pd.DataFrame, by: str, top_reasons: int = TOP_REASONS) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Per value of `by` (a lead source, a campaign): volume, conversion, acceptance, reasons, revenue.

    Rates are over leads with an outcome training counts (censored ones may still convert; excluded ones, which
    training leaves out, such as duplicates, are no outcome of the source's: counted in their own column), and blank for a segment of fewer
    than MIN_LEVEL_ROWS of them: X Education's "Live Chat" and "NC_EDM" read 100.0% conversion from 2 leads and 1,
    in a table marketing sorts by rate (its counts stay). Leads without a value are one MISSING row.

    Returns:
        The summary (``<by>``, ``leads``, ``decided``, ``excluded``, ``converted``, ``rejected``,
        ``conversion_rate``, ``conversion_low`` and ``conversion_high`` (its 95% Wilson interval, `wilson_interval`:
        how far the rate could be from the source's true rate by chance), ``acceptance_rate`` (all four blank under
        MIN_LEVEL_ROWS decided leads),
        ``top_rejection_reason`` (most frequent named
        reason; NO_NAMED_REASON when reasons were given but none by MIN_LEVEL_ROWS rejections, so that the page
        does not leave it blank as for a source no rejection gave a reason), ``top_reason_share`` and
        ``no_reason_share`` (of the rejections; all three blank under MIN_LEVEL_ROWS rejections, which `reason_mix`
        does not split), and ``won_revenue`` when `outcomes` has ``amount``), most leads first; and the `reason_mix`,
        its segments in the summary's order: alphabetically, X Education's Google, 2,873 leads, came after
        "(missing)", Click2call, Direct Traffic and Facebook.

    Raises:
        LookupError: `by` is not a column of `outcomes` (a derived feature such as seniority is no lead column).
    """
    if by not in outcomes.columns:  # lead_outcomes leaves out a column the leads table lacks
        raise LookupError(f"{by!r} is not a column of the export's leads table: segment the outcomes by one it has, "
                          "such as lead_source or campaign (a feature derived from leads, e.g. seniority, is not one)")
    segment = outcomes[by].astype(object).where(outcomes[by].notna(), MISSING).rename(by)
    outcome = outcomes["outcome"]
    flags = pd.DataFrame(
        {
            by: segment,
            "leads": 1,
            "decided": (~outcome.isin(UNCOUNTED)).astype("int64"),
            "excluded": outcome.eq("excluded").astype("int64"),
            "converted": outcome.eq("converted").astype("int64"),
            "rejected": outcome.eq("rejected").astype("int64"),
        }
    )
    if "amount" in outcomes.columns:
        flags["won_revenue"] = outcomes["amount"].fillna(0.0)
    summary = flags.groupby(by).sum()
    decided = summary["decided"].where(summary["decided"] >= MIN_LEVEL_ROWS)
    summary["conversion_rate"] = summary["converted"] / decided
    summary["conversion_low"], summary["conversion_high"] = wilson_interval(summary["converted"], decided)
    summary["acceptance_rate"] = 1 - summary["rejected"] / decided
    rejected = outcome.eq("rejected").to_numpy()
    mix = reason_mix(segment[rejected], outcomes["reason"][rejected], top_reasons)
    named = ~(is_other_reasons(mix["reason"]) | mix["reason"].isin([NO_REASON, FEW_REJECTIONS]))
    top = mix[named].groupby(by).head(1).set_index(by)
    summary["top_rejection_reason"] = top["reason"].reindex(summary.index)
    summary["top_reason_share"] = top["share"].reindex(summary.index)
    no_reason = mix[mix["reason"] == NO_REASON].set_index(by)["share"]
    summary["no_reason_share"] = no_reason.reindex(summary.index, fill_value=0.0).where(
        summary["rejected"] >= MIN_LEVEL_ROWS)  # a share of too few rejections, as reason_mix splits none
    unnamed = summary["top_rejection_reason"].isna() & (summary["no_reason_share"] < 1)  # NaN share: not split
    summary["top_rejection_reason"] = summary["top_rejection_reason"].mask(unnamed, NO_NAMED_REASON)
    if "won_revenue" in summary.columns:
        summary = summary[[c for c in summary.columns if c != "won_revenue"] + ["won_revenue"]]
    summary = summary.reset_index().sort_values(["leads", by], ascending=[False, True]).reset_index(drop=True)
    order = pd.Series(range(len(summary)), index=summary[by])
    mix = mix.sort_values(by, key=lambda values: values.map(order), kind="stable").reset_index(drop=True)
    return summary, mix


def overall_conversion(summary: pd.DataFrame) -> float:
    """The conversion rate of all leads with an outcome in `summary`, the average each segment's is compared with."""
    decided = summary["decided"].sum()
    return summary["converted"].sum() / decided if decided else math.nan


def _comparable(summary: pd.DataFrame, by: str) -> pd.DataFrame:
    """The segments whose rate may be compared with the average: MIN_LEVEL_ROWS decided leads or more (a source of 3
    leads converting 100% says nothing), and a value (MISSING is no source to invest in: X Education's '(missing) 80.6%
    of 36' was named beside Reference; the tables keep its row)."""
    return summary[(summary["decided"] >= MIN_LEVEL_ROWS) & (summary[by] != MISSING)]


def best_converting(summary: pd.DataFrame, by: str, limit: int = HEADLINE_SEGMENTS) -> pd.DataFrame:
    """The rows of the `_comparable` segments converting above the rate of all leads beyond chance, best first: their
    95% interval lies above it. X Education's Google, 40.3% of 2,849 against 39.2% (its interval 38.5-42.1%), was
    named best converting: within noise; nor is a source that reads as average at the tables' precision named."""
    sized = _comparable(summary, by)
    overall = overall_conversion(summary)
    best = sized[(sized["conversion_low"] > overall) & (sized["conversion_rate"].round(3) > round(overall, 3))]
    return best.sort_values(["conversion_rate", "decided", by], ascending=[False, False, True]).head(limit)


def worst_converting(summary: pd.DataFrame, by: str, limit: int = HEADLINE_SEGMENTS) -> pd.DataFrame:
    """The rows of the `_comparable` segments converting below the rate of all leads beyond chance (their 95% interval
    lies below it), worst first: the sources marketing might spend less on, as `best_converting` those to spend more."""
    sized = _comparable(summary, by)
    overall = overall_conversion(summary)
    worst = sized[(sized["conversion_high"] < overall) & (sized["conversion_rate"].round(3) < round(overall, 3))]
    return worst.sort_values(["conversion_rate", "decided", by], ascending=[True, False, True]).head(limit)


def most_rejected(summary: pd.DataFrame, by: str, limit: int = HEADLINE_SEGMENTS) -> pd.DataFrame:
    """The rows of the segments with most rejections, most first: where the rejected leads come from."""
    return summary[summary["rejected"] > 0].sort_values(["rejected", by], ascending=[False, True]).head(limit)


def conversion_headline(summary: pd.DataFrame, by: str, limit: int = HEADLINE_SEGMENTS) -> list[str]:
    """Sentences naming the `best_converting` and `worst_converting` segments, each rate with its 95% interval, up to
    `limit` of each and how many more there are (the sample CRM's 8 campaigns converting below average beyond chance
    read as 5); when none converts above or below the average beyond chance, one sentence saying so (none when no
    segment is big enough to compare). Rates to one decimal, as the tables show them: 'paid_search 15% (all leads:
    15%)' read as no better than average."""
    if _comparable(summary, by).empty:
        return []
    overall, label = overall_conversion(summary), by.replace("_", " ")
    among = f"of those with {MIN_LEVEL_ROWS} or more leads with an outcome"
    lines = []
    for words, side, pick in (("Best", "above", best_converting), ("Worst", "below", worst_converting)):
        rows = pick(summary, by, len(summary))
        if rows.empty:
            continue
        named = "; ".join(f"{row[by]} {row['conversion_rate']:.1%} ({100 * row['conversion_low']:.1f}–"
                          f"{row['conversion_high']:.1%}) of {row['decided']:,} leads"
                          for row in rows.head(limit).to_dict("records"))
        more = (f"; and {len(rows) - limit} more {side} it beyond chance (the table 'by {label}' gives every rate "
                "with its interval)" if len(rows) > limit else "")
        lines.append(f"{words} converting by {label}, {among}: {side} the conversion rate of all leads, {overall:.1%}, "
                     f"beyond chance (the 95% interval in brackets lies wholly {side} it): {named}{more}.")
    return lines or [f"No {label} converts above or below the average beyond chance, {among} (all leads: "
                     f"{overall:.1%}): the 95% interval of each one's conversion rate (in the table) includes it."]


def segment_value(summary: pd.DataFrame, by: str, value: str | None) -> str:
    """The value to slice by as the tables write it (matched in any letter case: "google" is "Google"), or the
    one with most leads when none is given (the notebook's SEGMENT_VALUE).

    Raises:
        LookupError: no lead has that value (a typo would show empty tables); the message lists the values.
    """
    if not value or not str(value).strip():
        return str(summary[by].iloc[0])
    wanted = str(value).strip().lower()
    known = summary[by].astype(str).tolist()  # most leads first
    found = next((k for k in known if k.lower() == wanted), None)
    if found is None:
        shown = ", ".join(map(repr, known[:10])) + (f" and {len(known) - 10} more" if len(known) > 10 else "")
        raise LookupError(f"no lead has {by} {value!r}; its values, most leads first: {shown}")
    return found


def rejection_headlines(summary: pd.DataFrame, by: str, limit: int = HEADLINE_SEGMENTS) -> list[str]:
    """Sentences for the segments with most rejections: 'lead source webinar: ... mostly for no_budget'.

    Most rejections, not the highest rejection rate: where the rejected leads come from, so the biggest
    segments lead; the first sentence says so, and where the rate of each is (the report's table: the console prints
    none). Rejections given no reason outnumbering those of the top reason are said first, or "most often for Already
    a student (9%)" reads as the answer. A segment with fewer than MIN_LEVEL_ROWS decided leads is said to be too
    small for its rate to mean much, and one with fewer rejections than that too small to split by reason
    (`reason_mix`).
    """
    rejected = most_rejected(summary, by, limit)
    if rejected.empty:
        return []
    label = by.replace("_", " ")
    lines = [f"Where the rejected leads come from, by {label}: the {len(rejected)} with the most rejections "
             f"(the rate of every one of the {len(summary)} is in the report's table 'by {label}')."]
    for row in rejected.to_dict("records"):
        line = (f"{label} {row[by]}: {row['rejected']:,} of {row['decided']:,} leads with an outcome "
                f"rejected ({row['rejected'] / row['decided']:.0%})")  # said with its caveat under MIN_LEVEL_ROWS
        top, top_share, no_reason = row["top_rejection_reason"], row["top_reason_share"], row["no_reason_share"]
        if top == NO_NAMED_REASON:
            line += f"; {NO_NAMED_REASON.strip('()')}"
        elif pd.notna(top):
            top = f"{top} ({top_share:.0%} of its rejections)"
            if no_reason > top_share:  # X Education's Olark Chat: 9% one reason, 66% none
                line += (f", {'mostly' if no_reason >= 0.5 else 'most often'} without a reason ({no_reason:.0%}); "
                         f"the reason given most: {top}")
                no_reason = 0.0  # said
            else:
                line += f", {'mostly' if top_share >= 0.5 else 'most often'} for {top}"
        if no_reason > 0:
            line += f"; {no_reason:.0%} without a reason"
        if row["decided"] < MIN_LEVEL_ROWS:  # nor in the plot (`plotted_segments`)
            line += (f"; under {MIN_LEVEL_ROWS} leads with an outcome, too few for these rates to say much (not in "
                     "the plot)")
        elif row["rejected"] < MIN_LEVEL_ROWS:
            line += f"; under {MIN_LEVEL_ROWS} rejections, too few to split by reason"
        lines.append(line)
    return lines


# ---------------------------------------------------------------- tiers, calibration, change


def tier_lift(
    y: np.ndarray, probability: np.ndarray, tiers: TierThresholds, top_fractions: Sequence[float]
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Conversion and lift per tier (best first), and the share of conversions in the top of the list.

    Returns:
        Tiers: ``tier``, ``min_probability``, ``leads``, ``share``, ``conversions``,
        ``conversion_rate``, ``lift`` (conversion rate / overall rate). Capture: ``top_share``,
        ``capture`` (share of all conversions), ``lift``.
    """
    table = tier_table(y, tiers.assign(probability), tiers.names).reset_index()
    table.insert(1, "min_probability", tiers.min_probability)
    overall = float(np.mean(y)) if len(y) else math.nan
    table["lift"] = table["conversion_rate"] / overall if overall > 0 else math.nan
    capture = pd.DataFrame({"top_share": list(top_fractions)})
    capture["capture"] = [capture_at(y, probability, f) for f in top_fractions]
    capture["lift"] = capture["capture"] / capture["top_share"]
    return table, capture


def model_change(
    current: ExplainedRows, previous: ExplainedRows, evaluate: EvaluateParams
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Metrics side by side on the same rows, and how each signal's importance moved.

    A signal one model does not have counts as importance 0 there.

    Returns:
        Metrics: ``metric``, ``current``, ``previous``, ``change``. Importance: ``signal``,
        ``current``, ``previous``, ``change`` (mean |contribution|, log-odds), largest move first
        (then most important first).
    """
    metrics = pd.DataFrame(
        {
            "current": _metrics(current, evaluate),
            "previous": _metrics(previous, evaluate),
        }
    )
    metrics["change"] = metrics["current"] - metrics["previous"]
    metrics = metrics.rename_axis("metric").reset_index()
    importance = pd.concat(
        {"current": current.signals.abs().mean(), "previous": previous.signals.abs().mean()}, axis=1
    ).fillna(0.0)
    importance["change"] = importance["current"] - importance["previous"]
    importance = importance.rename_axis("signal").reset_index()
    order = np.lexsort((-importance["current"].to_numpy(), -importance["change"].abs().to_numpy()))
    return metrics, importance.iloc[order].reset_index(drop=True)


def _metrics(rows: ExplainedRows, evaluate: EvaluateParams) -> dict[str, float]:
    return evaluate_scores(rows.y, rows.probability, ece_bins=evaluate.ece_bins, top_fractions=evaluate.top_fractions)


def _headline(metrics: dict[str, float], top_fractions: list[float]) -> str:
    """`_metrics` in one sentence, for the console, which prints notes and not tables."""
    if not metrics["positives"] or metrics["positives"] == metrics["rows"]:  # no ranking to measure
        return f"Its metrics are not defined on {metrics['rows']:,.0f} held-out leads with {metrics['positives']:,.0f} conversions."
    captures = ", ".join(f"the top {f:.0%} hold {metrics[f'capture_{fraction_key(f)}']:.0%} of the conversions"
                         for f in top_fractions)
    return (f"On the {metrics['rows']:,.0f} held-out leads: ROC AUC {metrics['roc_auc']:.3f} (the chance that a "
            f"lead that converted is scored above one that did not: 0.5 is a coin toss, 1 perfect), calibration "
            f"error {metrics['ece']:.3f}; {captures} (every metric: the report's table 'metrics').")


# ---------------------------------------------------------------- plots (Agg canvas, no pyplot)


def _figure(size: tuple[float, float], rows: int = 1, columns: int = 1) -> tuple[Figure, np.ndarray]:
    figure = Figure(figsize=size, layout="constrained")
    FigureCanvasAgg(figure)
    return figure, figure.subplots(rows, columns, squeeze=False).ravel()


def crop_at(number: pd.Series) -> float:
    """Where a scatter of `number` (no NaN) ends its value axis: at twice the 99th percentile when some leads lie
    beyond, else inf. X Education's one lead of 251 visits squeezed every other, 0 to 30, into the left edge of its
    panel."""
    cut = 2 * float(number.quantile(0.99)) if len(number) else math.inf
    return cut if cut > 0 and (number > cut).any() else math.inf


def _crop_outliers(ax: Axes, number: pd.Series, cut: float) -> None:
    """End a scatter's value axis at the `cut` (`crop_at`) of `number` when finite, saying how many leads lie beyond
    under the axis' label, not in a corner of the panel, where the legend placed at its emptiest covered it. The
    caller leaves those leads out of the panel: drawn off it, they still stretched its effect axis to theirs."""
    beyond = number[number > cut]
    if len(beyond):
        ax.set_xlim(right=cut)
        ax.set_xlabel(f"{ax.get_xlabel()}\n{len(beyond):,} lead{'s' * (len(beyond) != 1)} over {_band_number(cut)} "
                      f"(up to {_band_number(float(beyond.max()))}) off the plot")


def _start_at_zero(ax: Axes, number: pd.Series) -> None:
    """Start a scatter's value axis at 0 when no value of `number` is below it (a count, an amount): the axis' padding
    started X Education's TotalVisits panel at -10 visits, a value no lead can have."""
    if not number.empty and number.min() >= 0 and ax.get_xlim()[0] < 0:
        ax.set_xlim(left=0)


def panel_title(name: str, width: int = PANEL_TITLE_CHARS) -> str:
    """A signal's `name` as a panel's title, wrapped at `width` characters a line: an X Education field such as "What
    matters most to you in choosing a course" ran past its panel, over the next one's title or off the figure."""
    return textwrap.fill(name, width)


def dependence_plot(rows: ExplainedRows, catalog: list[FeatureDef], table: pd.DataFrame) -> Figure:
    """One panel per signal: every lead's value vs contribution (numbers) or mean per level (categories)."""
    signals = list(dict.fromkeys(table["signal"]))
    columns = 2 if len(signals) > 1 else 1
    grid_rows = max(1, math.ceil(len(signals) / columns))
    figure, axes = _figure((5.5 * columns, 3.4 * grid_rows), grid_rows, columns)
    values = signal_values(rows.features, catalog, spec=rows.spec)
    kinds = _signal_kinds(catalog)
    for ax, signal in zip(axes, signals):
        part = table[table["signal"] == signal]
        title = panel_title(rows.name(signal))
        if kinds[signal] == "numeric":
            criteria = icp_criteria_counted(signal, rows.spec)
            cut = crop_at(values[signal].dropna())
            shown = values[signal] <= cut  # a lead without a value is in no scatter either
            ax.scatter(values[signal][shown], rows.signals[signal][shown], s=6, alpha=0.3, color="tab:blue",
                       label="lead")
            binned = part[part["mean_value"] <= cut]
            ax.plot(binned["mean_value"], binned["mean_contribution"], color="tab:orange", marker="o", label="band average")
            ax.axhline(0, color="grey", linewidth=0.8)
            ax.set(xlabel=f"{IDEAL_CUSTOMER_PROFILE} criteria met, of {criteria}" if criteria else
                   f"{rows.name(signal)} (value)", ylabel="effect on the score (log-odds)")
            ax.legend(loc="best", fontsize="small")
            _crop_outliers(ax, values[signal].dropna(), cut)
            _start_at_zero(ax, values[signal].dropna())
        else:
            pooled = part["value"].astype(str).str.endswith(RARE_SUFFIX)
            # The values the importance table names as helping and hurting most are the first and last not pooled
            # (both best first): X Education's E-COMMERCE, 23 leads, was named and left out of a plot of the 12 largest.
            named = part.index[~pooled][[0, -1]] if (~pooled).any() else []
            shown = part.index.isin(part.nlargest(PLOTTED_SEGMENTS, "rows").index) | part.index.isin(named)
            top = part[shown].sort_values("mean_contribution")
            heights = top["mean_contribution"].to_numpy()
            colors = np.where(heights < 0, "tab:red", "tab:blue").astype(object)
            colors[pooled.loc[top.index].to_numpy()] = "silver"  # pooled, not one value
            ax.barh(top["value"].astype(str), heights, color=colors)
            ax.axvline(0, color="grey", linewidth=0.8)
            ax.set(xlabel="average effect on the score (log-odds)")
            if len(top) < len(part):  # the table has every row
                title += f"\n({len(top)} of its {len(part)} rows: most leads, best and worst)"
        ax.set_title(title)
        ax.grid(alpha=0.3)
    for ax in axes[len(signals):]:
        ax.set_visible(False)
    return figure


def plotted_segments(summary: pd.DataFrame, by: str) -> pd.DataFrame:
    """The rows `segments_plot` shows, most leads first: of the segments with MIN_LEVEL_ROWS leads with an outcome
    or more (a source of 2 leads converting 100% would be the longest bar), the PLOTTED_SEGMENTS with most leads
    and every one the notes name (`best_converting`, `worst_converting`, `most_rejected`), or a best campaign of few leads would be
    named above a plot that lacks it."""
    sized = summary[summary["decided"] >= MIN_LEVEL_ROWS]
    named = pd.concat([best_converting(summary, by)[by], worst_converting(summary, by)[by], most_rejected(summary, by)[by]])
    return sized[sized.index.isin(sized.index[:PLOTTED_SEGMENTS]) | sized[by].isin(named)]


def counted(names: Sequence[str], counts: Sequence[int]) -> list[str]:
    """A segment plot's row labels: each name with the count of leads its bars are shares of, 'Google (2,849)', as the
    axis' label says (HOW_MANY)."""
    return [f"{name} ({int(count):,})" for name, count in zip(names, counts)]


def segments_plot(summary: pd.DataFrame, mix: pd.DataFrame, by: str) -> Figure:
    """Conversion and acceptance rate per segment, and its rejection reasons mix, for the `plotted_segments`, each
    labelled with the leads its bars are of (`counted`): X Education's "(missing)", 35 leads with an outcome, read 83%
    as firmly as Google's 40% of 2,849."""
    top = plotted_segments(summary, by).iloc[::-1]
    names = top[by].astype(str).to_numpy()
    figure, (rates, reasons) = _figure((13.0, max(3.0, 0.4 * len(top) + 1.5)), 1, 2)
    position = np.arange(len(top))
    rates.barh(position + 0.2, top["conversion_rate"], height=0.4, label="conversion rate", color="tab:green")
    rates.barh(position - 0.2, top["acceptance_rate"], height=0.4, label="acceptance rate", color="tab:blue")
    label = by.replace("_", " ")
    sized = int((summary["decided"] >= MIN_LEVEL_ROWS).sum())
    title = (f"Outcomes by {label}: the {PLOTTED_SEGMENTS} with most leads and those the notes name\n(of {sized} with "
             if len(top) < sized else f"Outcomes by {label} (")
    rates.set(yticks=position, yticklabels=counted(names, top["decided"]), xlim=(0, 1),
              xlabel=f"share of leads with an outcome {HOW_MANY}", title=f"{title}{MIN_LEVEL_ROWS}+ leads with an outcome)")
    if not top.empty:  # below the plots: inside, it hid the bars at its corner (X Education's converted 81%)
        figure.legend(*rates.get_legend_handles_labels(), loc="outside lower left", ncols=2, fontsize="small")
    shown = mix[mix[by].isin(names)]
    shown = shown.assign(reason=shown["reason"].mask(is_other_reasons(shown["reason"]), OTHER_REASONS))  # one grey bar
    shares = shown.pivot_table(index=by, columns="reason", values="share", fill_value=0.0)
    shares = shares.reindex(names, fill_value=0.0)
    pooled = [OTHER_REASONS, NO_REASON, FEW_REJECTIONS]
    named = shares.drop(columns=pooled, errors="ignore").sum().sort_values(ascending=False).index
    colors = {reason: REASON_COLORS[i % len(REASON_COLORS)] for i, reason in enumerate(named)}
    colors |= {OTHER_REASONS: "silver", NO_REASON: "dimgray"}
    left = np.zeros(len(shares))
    for reason in [*named, *(r for r in pooled[:2] if r in shares.columns)]:
        reasons.barh(position, shares[reason], left=left, label=str(reason), color=colors[reason])
        left += shares[reason].to_numpy()
    if FEW_REJECTIONS in shares.columns:  # hatched and labelled with its count, a bar of no reason in particular
        few = shares[FEW_REJECTIONS].to_numpy() > 0
        reasons.barh(position[few], shares[FEW_REJECTIONS].to_numpy()[few], label=FEW_REJECTIONS, color="whitesmoke",
                     edgecolor="silver", hatch="///")
        counts = mix[mix["reason"] == FEW_REJECTIONS].set_index(by)["rejected"]
        for y, name in zip(position[few], names[few]):
            n = int(counts[name])
            reasons.text(0.5, y, f"{n} rejection{'s' * (n != 1)}: too few to split", ha="center", va="center",
                         fontsize="small")
    reasons.set(yticks=position, yticklabels=counted(names, top["rejected"]), xlim=(0, 1),
                title=f"Rejection reasons by {label}", xlabel=f"share of rejections {HOW_MANY}")
    if top.empty:  # a notebook slice or a small export: say why the plot is empty
        for ax in (rates, reasons):
            ax.text(0.5, 0.5, f"no {label} has {MIN_LEVEL_ROWS} or more leads with an outcome", ha="center",
                    transform=ax.transAxes)
    elif len(shares.columns):  # any rejection to show
        reasons.legend(loc="upper left", bbox_to_anchor=(1.01, 1), fontsize="small")
    for ax in (rates, reasons):
        ax.grid(alpha=0.3, axis="x")
        percent_ticks(ax.xaxis)
    return figure


def tiers_plot(tiers: pd.DataFrame, overall_rate: float, computed_on: str = "") -> Figure:
    """Conversion rate per tier against the overall rate, each bar labelled with its lift and leads ("3.4x average" over
    "59 leads": tier A's rate is of a tenth of the held-out leads), titled with the leads it is drawn on when given
    (`Split.test_caption`, as the calibration plot is): the PNG said only "(held-out leads)" once out of the page."""
    figure, (ax,) = _figure((6.0, 4.0))
    bars = ax.bar(tiers["tier"].astype(str), tiers["conversion_rate"].fillna(0.0), color="tab:blue")
    ax.bar_label(bars, labels=[f"{lift:.1f}x average\n{leads:,} leads" if pd.notna(lift) else f"{leads:,} leads"
                               for lift, leads in zip(tiers["lift"], tiers["leads"])], fontsize="small")
    ax.margins(y=0.15)  # the labels of a bar near 100% inside the frame
    if pd.notna(overall_rate):
        ax.axhline(overall_rate, color="grey", linestyle=":", label=f"overall ({overall_rate:.1%})")
        ax.legend(loc="upper right")
    ax.set(xlabel="tier", ylabel="conversion rate")
    ax.set_title(f"Conversion rate per tier — {computed_on}" if computed_on else "Conversion rate per tier (held-out leads)",
                 wrap=True)
    percent_ticks(ax.yaxis)
    ax.grid(alpha=0.3, axis="y")
    return figure


# ---------------------------------------------------------------- sections


def importance_section(rows: ExplainedRows, catalog: list[FeatureDef]) -> Section:
    """1. Which signals move scores most, and which way.

    The table gives each signal's CRM field where the mapping renames one (``crm_column``) beside its code, for a
    notebook or script to map one to the other; the page, plot and notes name it as `ExplainedRows.name` does. A
    signal of importance 0.000 as the page shows it, which the model does not use (X Education's LightGBM never splits
    on 12 form fields, the logistic part of the blend moving scores by 1e-4 log-odds at most), is left out of the table
    and plot, and a note names it (`models.plots.unused`).
    """
    table = signal_importance(rows, catalog)
    left_out = unused(table["signal"], table["mean_abs_contribution"], IMPORTANCE_DECIMALS)
    table = table[~table["signal"].isin(left_out)].reset_index(drop=True)
    left_out = [rows.name(signal) for signal in left_out]
    table.insert(1, "crm_column", [rows.crm_fields.get(s, "") for s in table["signal"]])
    top = table.head(PLOTTED_SIGNALS)
    notes = [
        f"{len(rows.y):,} {HELD_OUT}. {EFFECT} (each lead's effects add up to its score; they are computed with "
        "SHAP, a standard way to share a score out among what it is made of). "
        "Importance is a signal's average effect either way. Direction, for a number: +1 when more of it always "
        "raises the score, -1 when it always lowers it, near 0 when it goes either way; a category has values "
        f"that help and values that hurt instead; {MISSING} stands for the leads without a value."
    ]
    notes += [f"{rows.name(r.signal)}: {r.reading}" for r in table.head(3).itertuples(index=False)]
    notes += [unused_line(left_out, "signal", IMPORTANCE_DECIMALS)] if left_out else []
    figure = importance_plot(top["signal"].map(rows.name).tolist(), top["mean_abs_contribution"].fillna(0.0).tolist(),
                             "Importance: average effect on the score, either way (log-odds)", left_out, "signal",
                             IMPORTANCE_DECIMALS)
    return Section("importance", "Which signals move the score, and which way", notes, {"signals": table},
                   {"importance": figure})


def dependence_section(rows: ExplainedRows, catalog: list[FeatureDef], signals: Sequence[str]) -> Section:
    """2. How the top signals' values map to score contributions."""
    table = dependence_table(rows, catalog, signals)
    notes = ["Each lead's effect against the signal's value: for a number, the average effect in bands of about "
             "equal size by value (one band per value where it takes a few), a band of fewer than "
             f"{MIN_LEVEL_ROWS} leads merged with the next; for a category, the average effect of each value, values "
             f"with fewer than {MIN_LEVEL_ROWS} leads pooled in one row (grey in the plot): too few leads each for "
             "their own average to say much."]
    return Section("dependence", "How the values of the top signals move the score", notes, {"dependence": table},
                   {"dependence": dependence_plot(rows, catalog, table)})


def export_rows(training_set: TrainingSet, leads: int) -> str:
    """How the leads table's rows became the `leads` counted, e.g. '10,000 rows; 200 merged by e-mail ...'.

    Marketing compares the count with the rows of its CRM export: rows merged into an earlier lead with
    the same e-mail, rows ingest dropped and leads created after the as-of date are not leads here.
    Empty when every row is a counted lead.
    """
    report = training_set.crm.report.tables["leads"]
    merged = report.dropped.get("merged_by_email", 0)
    dropped = report.rows_read - report.rows_kept - merged
    later = report.rows_kept - leads
    parts = [f"{merged:,} merged by e-mail into an earlier lead with the same address"] if merged else []
    parts += [f"{dropped:,} dropped at ingest (see the ingest report)"] if dropped else []
    parts += [f"{later:,} created after {training_set.as_of:%Y-%m-%d}"] if later and training_set.as_of is not None else []
    return (f"{report.rows_read:,} rows; " + ", ".join(parts)) if parts else ""


def merged_spellings(training_set: TrainingSet, columns: Sequence[str] = SEGMENT_COLUMNS, limit: int = 5) -> str:
    """The sources and campaigns of the counted leads the export writes in other ways but for letter case or spaces,
    counted as one as the features compare them, under the spelling most of their leads have: "Google counts 5 leads
    written 'google'" (the `limit` most leads, then how many more), or '' when none. X Education's Google read 2,873
    leads where the export's own count of 'Google' is 2,868, with nothing saying why. A column data.value_maps maps
    is left out: its table holds the mapped values, not the spellings the file wrote."""
    leads = training_set.crm.leads.set_index("lead_id")
    counted = training_set.labels.frame.index
    said = []
    for column in columns:
        if column not in leads.columns or column in training_set.crm.spellings:
            continue
        values = leads[column].reindex(counted).dropna()
        names = training_set.crm.export_spellings(column)
        written = pd.DataFrame({"key": clean_text(values).to_numpy(), "written": values.astype(str).str.strip().to_numpy()})
        for (key, spelling), n in written.dropna().value_counts().items():
            if spelling != names.get(key, spelling):
                said.append((n, f"{names[key]} counts {n:,} lead{'s' * (n != 1)} written '{spelling}'"))
    if not said:
        return ""
    said.sort(key=lambda item: -item[0])
    more = f", and {len(said) - limit} more" if len(said) > limit else ""
    return ("A source or campaign written alike but for letter case or spaces is one, named as most of its leads write "
            f"it: {'; '.join(text for _, text in said[:limit])}{more}.")


def amounts_left_out(crm: CRMData) -> int:
    """How many deal amounts ingest left out of the outcome rows it kept, as invalid (negative, not a number, out of
    range: `TableReport.cleared`): their won deals count no revenue, which the audit's revenue note says."""
    report = crm.report.tables.get("outcomes")
    return report.cleared.get("amount", 0) if report is not None else 0


def revenue_note(outcomes: pd.DataFrame, left_out: int = 0) -> str | None:
    """What the won revenue columns leave out, or None when nothing: every converted lead has a deal amount and
    ingest left none out. A converted lead without an amount (blank, or invalid and left out at ingest, `left_out`
    of the export's) counts 0 in its source's and campaign's won revenue, which then reads as worth less than it is.
    """
    why = "as invalid (negative, not a number or out of range; see the ingest report)"
    if "amount" not in outcomes.columns:
        if left_out:
            return (f"This export has no valid deal amounts: ingest left out its {left_out:,} {why}, so won revenue is "
                    "not reported.")
        return "This export has no deal amounts: won revenue is not reported."
    converted = outcomes["outcome"].eq("converted")
    without = int((converted & outcomes["amount"].isna()).sum())
    if not without and not left_out:
        return None
    return (f"Won revenue counts a converted lead without a deal amount as 0, so its source and campaign read as "
            f"worth less than they are: {without:,} of the {int(converted.sum()):,} converted leads "
            f"{'has' if without == 1 else 'have'} none"
            + (f"; ingest left out {left_out:,} of the export's deal amounts {why}, keeping their leads' decisions"
               if left_out else "") + ".")


def left_out_note(outcomes: pd.DataFrame) -> str:
    """The leads of no outcome to rate a source by, as training leaves them out (`lead_outcomes`' excluded), and why,
    or '' when none: X Education's 156 rejected for an 'Invalid number' and the like counted as rejections, its table
    reading 9,240 leads with an outcome where training learned from 9,084, with nothing saying why."""
    excluded = outcomes["outcome"].eq("excluded")
    if not excluded.any():
        return ""
    reasons = outcomes.loc[excluded, "reason"].value_counts()
    by_status = int(excluded.sum() - reasons.sum())
    parts = ([(int(reasons.sum()), "rejected for a reason that says nothing of the lead "
               f"({', '.join(f'{reason} {n:,}' for reason, n in reasons.items())})")] if len(reasons) else [])
    parts += [(by_status, "with a status that is no outcome of a lead, e.g. duplicate")] if by_status else []
    said = [text for _, text in parts] if len(parts) == 1 else [f"{n:,} {text}" for n, text in parts]
    return (f" {int(excluded.sum()):,} more are left out, as training leaves them out (column '{shown_as('excluded')}'): "
            + "; ".join(said) + ".")


def censored_note(outcomes: pd.DataFrame, label: LabelParams | None) -> str:
    """The leads with no outcome training counts yet (`lead_outcomes`' censored) and why, or '' when none: counted
    as open, a source's young leads would dilute its rate, or, decided, read as outcomes the model does not learn."""
    censored = int(outcomes["outcome"].eq("censored").sum())
    if not censored:
        return ""
    horizon = label.horizon_days if label is not None else None
    why = (f"created within the last {horizon} days, decided or not (label.mature_only), or still open"
           if horizon and label.mature_only else f"still open within {horizon} days of creation" if horizon
           else "still open")
    return f" {censored:,} more {'has' if censored == 1 else 'have'} no outcome training counts yet ({why})."


def segments_section(outcomes: pd.DataFrame, rows: str = "", feedback: FeedbackMerge | None = None,
                     label: LabelParams | None = None, invalid_amounts: int = 0, spellings: str = "") -> Section:
    """3. Lead sources and campaigns: volume, conversion, acceptance, rejection reasons, revenue.

    `rows` says how the export's rows became these leads (`export_rows`), `spellings` which of their sources and
    campaigns the export writes in more than one way (`merged_spellings`), `feedback` what the service's
    feedback store changed in their outcomes (said when it held any decision), `label` the policy `outcomes` were
    counted by (its horizon, said in the note), `invalid_amounts` how many deal
    amounts ingest left out as invalid (`amounts_left_out`, said in the `revenue_note`); a notebook slice leaves them
    out.
    """
    section = Section("segments", "Lead sources and campaigns")
    decided = ~outcomes["outcome"].isin(UNCOUNTED)
    # X Education's Converted 0 is a rejection: its two rate columns and bars are the same, which reads as a mistake.
    only_won_or_lost = decided.any() and outcomes["outcome"][decided].isin(["converted", "rejected"]).all()
    # The sources section is where marketing starts: "campaign (missing)" among the most rejected is no campaign's name.
    blank = [by.replace("_", " ") for by in SEGMENT_COLUMNS
             if by in outcomes.columns and outcomes[by].isna().any() and outcomes[by].notna().any()]
    horizon = label.horizon_days if label is not None else None
    section.notes.append(
        f"All {len(outcomes):,} leads of the export{f' ({rows})' if rows else ''}; rates are over the "
        f"{int(decided.sum()):,} leads with an outcome, counted as training counts them."
        + left_out_note(outcomes)
        + censored_note(outcomes, label)
        + (f" {MISSING} stands for the leads without a {' or a '.join(blank)}." if blank else "")
        + (f" {spellings}" if spellings else "")
        + (f" Conversion = the CRM's converted status within {horizon} days of a lead's creation, as the model learns "
           f"it: a later conversion counts as not converted, as does a lead still open after {horizon} days"
           if horizon else " Conversion = the CRM's converted status, whenever it came")
        + "; acceptance = share not rejected."
        + (" Every one of them converted or was rejected (none is nurtured or in another status), so acceptance equals "
           "conversion." if only_won_or_lost else "")
        + (f" Outcomes include the decisions sales sent to the service: {feedback.line()}."
           if feedback is not None and (feedback.events or feedback.left_out or feedback.decided_later) else "")
    )
    section.notes.append(f"A source or campaign with fewer than {MIN_LEVEL_ROWS} leads with an outcome has its counts "
                         "in the tables but no conversion or acceptance rate (1 converted of 1 is no 100% rate), and "
                         "no bars in the plots. "
                         f"A source or campaign with fewer than {MIN_LEVEL_ROWS} rejections is not split by reason "
                         "(one hatched bar in the plots): too few rejections for their split to say much. Nor is a "
                         f"reason named for one unless {MIN_LEVEL_ROWS} or more of its rejections give it (and it is "
                         f"among its {TOP_REASONS} most frequent): the others are one row, e.g. '{other_reasons(4)}'; where none is "
                         f"named, its top rejection reason reads '{NO_NAMED_REASON}'. Each conversion rate comes with its 95% "
                         "interval (Wilson): the range its source's or campaign's true rate lies in, given how many "
                         "leads it has, 19 times in 20. One is called best or worst converting only when that range "
                         "lies wholly above or below the rate of all leads; otherwise its gap from the average may be "
                         "chance.")
    revenue = revenue_note(outcomes, invalid_amounts)
    section.notes += [revenue] if revenue else []
    for by in SEGMENT_COLUMNS:
        if by not in outcomes.columns or outcomes[by].isna().all():
            section.notes.append(f"This export has no {by.replace('_', ' ')} values: no breakdown by {by}.")
            continue
        summary, mix = segment_outcomes(outcomes, by)
        section.tables[f"by_{by}"] = summary
        section.tables[f"rejection_reasons_by_{by}"] = mix
        section.figures[f"by_{by}"] = segments_plot(summary, mix, by)
        section.notes += conversion_headline(summary, by) + rejection_headlines(summary, by)
    return section


def tiers_section(
    rows: ExplainedRows, tiers: TierThresholds, top_fractions: Sequence[float], held_out: str = "held-out leads",
    computed_on: str = "",
) -> Section:
    """4. Whether working the best tiers first pays: conversion, lift and capture.

    `held_out` says which leads `rows` are (and what counts as converted), so the rates are not read
    as those of every lead in section 3; `computed_on` says it in the plot's title (`Split.test_caption`), when given.
    """
    table, capture = tier_lift(rows.y, rows.probability, tiers, top_fractions)
    overall = float(np.mean(rows.y)) if len(rows.y) else math.nan
    if not len(rows.y):  # a notebook slice with no held-out lead: no rate to give ("nan%")
        notes = [f"0 {held_out}: no tier conversion or lift to report."]
    else:
        notes = [f"{len(rows.y):,} {held_out}, {overall:.1%} converted; lift = how many times that rate a tier "
                 "converts at (lift 2: twice as often as the average lead)."]
    if overall > 0:
        notes += [f"The top {r.top_share:.0%} of leads hold {r.capture:.0%} of the conversions." for r in capture.itertuples()]
    elif overall == 0:
        notes.append("None of them converted: there are no conversions for the top of the list to hold.")
    return Section("tiers", "Conversion by tier: does working the top tiers first pay?", notes,
                   {"tiers": table, "capture": capture},
                   {"tiers": tiers_plot(table, overall, computed_on)})


def slice_tiers_section(report: Audit, rows: ExplainedRows, column: str, value: str, tiers: TierThresholds,
                        top_fractions: Sequence[float]) -> Section:
    """The `tiers_section` of a notebook slice's held-out leads (`ExplainedRows.segment`), its note and plot title
    saying which leads they are as the page's do, and of which `column` `value`: the notebook's plot was titled
    '(held-out leads)' alone, and read as the page's plot of all of them."""
    which = f"of {column.replace('_', ' ')} {value}"
    computed_on = f"{report.computed_on}, the {len(rows.y):,} {which}" if report.computed_on else ""
    return tiers_section(rows, tiers, top_fractions, f"{report.held_out} {which}", computed_on)


def calibration_section(rows: ExplainedRows, bins: int, computed_on: str = "") -> Section:
    """5. Whether a predicted probability means what it says. The plot's title says which leads `rows` are, when
    given (`Split.test_caption`, as evaluate's calibration plot says it): the PNG travels without the page."""
    table = calibration_bins(rows.y, rows.probability, bins=bins)
    ece = expected_calibration_error(rows.y, rows.probability, bins=bins)
    # Leads of one probability share a group (`calibration_bins`): X Education's read "about equal size" above groups
    # of 58 and 295 leads, so the note gives the groups and sizes the table has.
    smallest, largest = (int(table["rows"].min()), int(table["rows"].max())) if len(table) else (0, 0)
    sizes = f"{largest:,} leads each" if smallest == largest else f"{smallest:,} to {largest:,} leads each"
    notes = [f"The {HELD_OUT} in {len(table)} group{'s' * (len(table) != 1)} by predicted probability, {sizes} "
             "(about equal, but leads given the same probability stay in one group): each group's "
             f"average prediction against the share of it that converted. Calibration error {ece:.3f}: the "
             "average gap between the two (0.02 = 2 percentage points)."]
    figure = calibration_plot({SCORER_LABEL: (rows.y, rows.probability)}, bins=bins, error_name="calibration error",
                              computed_on=computed_on)
    return Section("calibration", "Do predicted probabilities come true? (calibration)", notes,
                   {"calibration": table.drop(columns="weight")}, {"calibration": figure})


def change_section(
    rows: ExplainedRows, training_set: TrainingSet, previous: PreviousModel | None, evaluate: EvaluateParams
) -> Section:
    """6. What changed against the previous model, or the current metrics when there is none.

    The previous model scores the same leads (those of `rows`, from `training_set`) on features built
    with its own saved settings, which may differ from the audited model's (ICP, lists, windows).
    """
    section = Section("change", "What changed versus the previous model")
    if previous is None:
        current = _metrics(rows, evaluate)
        section.notes.append("There is no previous model to compare with: this is the first version of the model. "
                             f"{_headline(current, evaluate.top_fractions)}")
        metrics = pd.DataFrame({"current": current}).rename_axis("metric").reset_index()
        section.tables["metrics"] = metrics
        return section
    before_features = model_features(previous.scorer, training_set, rows.features.index)
    before = explain_rows(previous.scorer, before_features, rows.y, rows.age_days)
    metrics, importance = model_change(rows, before, evaluate)
    section.notes.append(f"Compared with {previous.label} on the same {len(rows.y):,} held-out leads.")
    blank = [c for c in before_features.columns
             if before_features[c].isna().all() and not (c in rows.features and rows.features[c].isna().all())]
    if blank:
        signal_of = {d.name: d.signal for d in previous.scorer.catalog}
        named = dict.fromkeys(before.name(signal_of.get(c, c)) for c in blank)  # as the page names signals
        section.notes.append(
            f"{previous.label} uses {', '.join(named)}, missing for every compared lead (today's export lacks "
            "what it is built from): its figures here understate what it did with that data."
        )
    def name(signal: str) -> str:  # as the model that has it names it
        return rows.name(signal) if signal in rows.signals.columns else before.name(signal)

    moved = importance[importance["change"].abs() > 0].head(3)
    section.notes += [f"{name(row.signal)}: importance (average effect either way, log-odds) {row.previous:.3f} -> "
                      f"{row.current:.3f} ({row.change:+.3f})"
                      for row in moved.itertuples(index=False)]
    if moved.empty:
        section.notes.append("No signal's importance changed.")
    section.tables = {"metrics": metrics, "importance_change": importance}
    top = importance.head(PLOTTED_SIGNALS)
    section.figures["importance_change"] = importance_plot(
        top["signal"].map(name).tolist(), top["change"].tolist(), f"Change in importance (log-odds) vs {previous.label}"
    )
    return section


def held_out_leads(training_set: TrainingSet, split: Split, label: LabelParams) -> str:
    """Which leads the test rows are, in words: their creation dates and what counts as converted."""
    created = training_set.created_at.iloc[split.test] if training_set.created_at is not None else None
    if created is None or not len(created):
        which = "held-out leads (never seen in training"
    else:  # a stratified split of a dated export holds leads of any date, not the newest
        which = (f"held-out leads ({'the newest' if split.kind == 'out_of_time' else 'a random share of the'} ones "
                 f"with an outcome, created {created.min():%Y-%m-%d} to {created.max():%Y-%m-%d}, never seen in training")
    return which + (f"; converted = within {label.horizon_days} days of creation)" if label.horizon_days else ")")


def build_audit(
    scorer: LeadScorer,
    training_set: TrainingSet,
    params: Params,
    previous: PreviousModel | None = None,
    top_signals: int = TOP_SIGNALS,
) -> Audit:
    """All six sections for `scorer` on the export in `training_set`, and what the export lacks that the model reads.

    The held-out rows are the test part of the same split training used (models.splits.make_split with
    params.evaluate.split and params.model.seed), so with the training data they are rows the model
    never saw. Each model is explained on features built with its own saved settings. The one lookup: the
    training run's names and UI address in the MLflow store (`tracking.run_in_ui`), for the page to say where it is.
    """
    split = make_split(training_set.created_at, pd.Series(training_set.y), params.evaluate.split, params.model.seed)
    test = model_features(scorer, training_set, training_set.features.index[split.test])
    catalog = scorer.catalog
    rows = explain_rows(scorer, test, training_set.y[split.test], training_set.age_days[split.test],
                        category_spellings(training_set.crm, test, scorer.features))
    importance = importance_section(rows, catalog)
    top = importance.tables["signals"]["signal"].head(top_signals).tolist()
    outcomes = lead_outcomes(training_set, params.label)
    held_out, computed_on = held_out_leads(training_set, split, params.label), split.test_caption()
    sections = [
        importance,
        dependence_section(rows, catalog, top),
        segments_section(outcomes, export_rows(training_set, len(outcomes)), training_set.crm.feedback,
                         params.label, amounts_left_out(training_set.crm), merged_spellings(training_set)),
        tiers_section(rows, scorer.tiers, params.evaluate.top_fractions, held_out, computed_on),
        calibration_section(rows, params.evaluate.ece_bins, computed_on),
        change_section(rows, training_set, previous, params.evaluate),
    ]
    registry = scorer.info.get("registry", {})
    run_id = scorer.info.get("run_id")
    ui = tracking.run_in_ui(params, run_id) if run_id else {}
    model = {
        "name": registry.get("name"),
        "version": None if registry.get("version") is None else str(registry["version"]),
        "alias": registry.get("alias"),
        "trained_at": scorer.info.get("trained_at"),
        "training_run": run_id,
        **{detail: ui.get(detail.removeprefix("training_run_")) for detail in TRAINING_RUN_DETAILS},
        "as_of": str(training_set.as_of) if training_set.as_of is not None else None,
        "split": split.kind,
        "split_because": split.stratified_because or None,
        "test_rows": len(rows.y),
        "compared_with": previous.label if previous is not None else None,
        "generated_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "currency": params.data.currency,
    }
    warnings = setting_warnings(training_set, with_model_features(params, scorer), judging=True)
    return Audit(model=model, sections=sections, rows=rows, warnings=warnings, held_out=held_out, computed_on=computed_on)


# ---------------------------------------------------------------- rendering


def figure_png(figure: Figure, dpi: int = 100) -> bytes:
    """The figure as PNG bytes (for the HTML page and for notebooks)."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=dpi, bbox_inches="tight")
    return buffer.getvalue()


def _whole_numbers_as_integers(table: pd.DataFrame) -> pd.DataFrame:
    """Float columns holding only whole numbers (counts summed as floats) as integers: '137', not '137.0'.

    By column, so a rate of exactly 1 keeps its decimals beside 0.484; only below 2**53, where a float is still
    an exact integer (a revenue sum beyond int64 would not cast)."""
    def whole(values: pd.Series) -> bool:
        numbers = values.dropna().to_numpy(dtype=np.float64)
        return (bool(len(numbers)) and bool((np.abs(numbers) < 2**53).all())
                and bool((numbers == np.round(numbers)).all()))

    return table.astype({c: "Int64" for c in table.columns if pd.api.types.is_float_dtype(table[c]) and whole(table[c])})


def _format_number(value: float) -> str:
    """A count or a large number without decimals and with thousands separators ('137', '2,903'), anything
    else to 3 decimals: '137.000' conversions reads as 137 thousand to a reader who writes a decimal comma."""
    if pd.isna(value):
        return ""
    return f"{value:,.0f}" if isinstance(value, (int, np.integer)) or abs(value) >= 1000 else f"{value:.3f}"


def shown_as(name: str, table: str = "") -> str:
    """A table's, column's or model detail's heading on the page (`SHOWN_AS`); a column read in `table`."""
    return SHOWN_AS.get(f"{table}.{name}", SHOWN_AS.get(name, name.replace("_", " ")))


def _metric_shown(key: str) -> tuple[str, str]:
    """A metric's words and number format on the page (`METRICS_SHOWN_AS`); an unknown one as its key, 3 decimals."""
    kind, _, top = key.partition("_top")
    if top and kind in ("capture", "lift"):
        words, number = METRICS_SHOWN_AS[kind]
        return words.format(top=f"{top}%"), number
    return METRICS_SHOWN_AS.get(key, (key.replace("_", " "), "score"))


def _format_value(value: float, number: str, signed: bool = False) -> str:
    """A value in its `number` format (METRICS_SHOWN_AS, COLUMN_FORMATS); `signed` for a change, where a share moves
    in percentage points."""
    if pd.isna(value):
        return ""
    sign = "+" if signed else ""
    if number == "count":
        return f"{value:{sign},.0f}"
    if number == "average":
        return f"{value:{sign},.1f}"
    if number == "share":
        return f"{value * 100:+.1f} points" if signed else f"{value:.1%}"
    return f"{value:{sign}.2f}x" if number == "times" else f"{value:{sign}.3f}"


def _metrics_shown(table: pd.DataFrame) -> pd.DataFrame:
    """The metrics table as text, formatted by row: a count column beside rates would read 'positives 712.000'."""
    formats = [_metric_shown(key) for key in table["metric"]]
    shown = pd.DataFrame({"metric": [words for words, _ in formats]})
    for column in table.columns.drop("metric"):
        shown[column] = [_format_value(value, number, signed=column == "change")
                         for value, (_, number) in zip(table[column], formats)]
    return shown


def table_html(name: str, table: pd.DataFrame, crm_fields: dict[str, str] | None = None,
               currency: str | None = None) -> str:
    """The table `name` as the page shows it, for the page and the notebook alike: headed in words (`shown_as`),
    shares as percentages and lifts as times (COLUMN_FORMATS), counts as counts, a signal named by `signal_name`
    with `crm_fields` (its ``crm_column`` then says it again), an amount's column with its `currency`
    (``data.currency``: "won revenue (EUR)")."""
    crm_fields = crm_fields or {}
    if name == "metrics":
        shown = _metrics_shown(table)
    else:
        shown = _whole_numbers_as_integers(table)
        for c in table.columns:
            number = COLUMN_FORMATS.get(f"{name}.{c}", COLUMN_FORMATS.get(c))
            if number:  # from the table's own fractions: a rate column of only 1s was cast to whole numbers
                shown[c] = [_format_value(value, number) for value in table[c]]
    if "signal" in shown.columns:
        shown = shown.drop(columns="crm_column", errors="ignore").assign(
            signal=shown["signal"].map(lambda s: signal_name(s, crm_fields)))
    if "kind" in shown.columns:
        shown["kind"] = shown["kind"].map(lambda kind: KIND_SHOWN_AS.get(kind, kind))
    for c in shown.columns:
        if pd.api.types.is_numeric_dtype(shown[c]) and not pd.api.types.is_bool_dtype(shown[c]):
            shown[c] = shown[c].astype(object).map(_format_number)  # as text: to_html prints an Int64 NA as '<NA>'
    shown.columns = [shown_as(c, name) + (f" ({currency})" if currency and c in AMOUNT_COLUMNS else "")
                     for c in shown.columns]
    return shown.to_html(index=False, border=0, na_rep="")


def _time_shown(text: str) -> str:
    """An ISO time as a reader writes it: '2026-11-27T00:15:17+00:00' -> '27 Nov 2026, 00:15 UTC'; one without a
    zone (the export's own time) without 'UTC', and at midnight as its date alone ('1 Jan 2026', an --as-of date)."""
    stamp = pd.Timestamp(text)
    if stamp.tzinfo is not None:
        return f"{stamp.tz_convert('UTC'):%d %b %Y, %H:%M} UTC".lstrip("0")
    return (f"{stamp:%d %b %Y}" if stamp == stamp.normalize() else f"{stamp:%d %b %Y, %H:%M}").lstrip("0")


def _training_run_html(model: dict) -> str:
    """The training run's cell: its names, its ID to paste into a search, and a link to its page in the MLflow UI
    (with the command that starts the UI on a store on this machine)."""
    e = html.escape
    run_id, name, experiment = model["training_run"], model.get("training_run_name"), model.get("training_run_experiment")
    cell = e(f"run '{name}' in experiment '{experiment}', ID {run_id}" if name else f"ID {run_id}")
    url, command = model.get("training_run_url"), model.get("training_run_ui_command")
    if url:
        cell += f"<br>in the MLflow UI: <a href='{e(url)}'>{e(url)}</a>"
        cell += f" (start it with <code>{e(command)}</code>)" if command else ""
    return cell


def _model_cells(model: dict) -> dict[str, str]:
    """The model details the page lists, as HTML cells by key: times as a reader writes them, counts with thousands
    separators, the training run with its names and where to open it; details not known are left out."""
    cells = {}
    for key, value in model.items():
        if value is None or key in TRAINING_RUN_DETAILS:  # said in the training run's cell
            continue
        if key == "training_run":
            cells[key] = _training_run_html(model)
        else:
            shown = (_time_shown(value) if key in TIME_DETAILS else SPLIT_SHOWN_AS.get(value, value) if key == "split"
                     else f"{value:,}" if isinstance(value, int) else value)
            cells[key] = html.escape(str(shown))
    return cells


_STYLE = """
body{font-family:system-ui,sans-serif;margin:2em auto;max-width:1200px;color:#222;padding:0 1em}
table{border-collapse:collapse;font-size:13px;margin:0.5em 0 1.5em}
th,td{border-bottom:1px solid #ddd;padding:3px 8px;text-align:right}
th{background:#f4f4f4}td:first-child,th:first-child{text-align:left}
img{max-width:100%;margin:0.5em 0}.meta td{text-align:left}.warning{color:#8a5a00;background:#fff6db;padding:4px 8px}
"""


def model_html(model: dict) -> str:
    """The audited model's details as the page lists them (`_model_cells`), for the page and the notebook alike."""
    rows = [f"<tr><td>{html.escape(shown_as(key))}</td><td>{cell}</td></tr>" for key, cell in _model_cells(model).items()]
    return "\n".join(["<table class='meta'>", *rows, "</table>"])


def plot_pngs(audit: Audit) -> dict[str, bytes]:
    """Every plot of `audit` as PNG bytes by its file name (`plot_file`), in the page's order: rendered once for the
    page and the files alike, which a second rendering would not match byte for byte."""
    return {plot_file(number, name): figure_png(figure)
            for number, section in enumerate(audit.sections, start=1) for name, figure in section.figures.items()}


def render_html(audit: Audit, plots: dict[str, bytes] | None = None) -> str:
    """The report as one HTML page with every plot embedded (base64 PNG, `plots` when rendered already): no other
    file needed."""
    e = html.escape
    plots = plot_pngs(audit) if plots is None else plots
    model = audit.model
    title = f"Signal audit: {model.get('name')} v{model.get('version')}"
    parts = [f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{e(title)}</title><style>{_STYLE}</style></head><body>",
             f"<h1>{e(title)}</h1>", model_html(model)]
    parts += [f"<p class='warning'>WARNING {e(warning)}</p>" for warning in audit.warnings]
    parts.append("<ol>")
    parts += [f"<li><a href='#{s.key}'>{e(s.title)}</a></li>" for s in audit.sections]
    parts.append("</ol>")
    for number, section in enumerate(audit.sections, start=1):
        parts.append(f"<h2 id='{section.key}'>{number}. {e(section.title)}</h2>")
        parts += [f"<p>{e(note)}</p>" for note in section.notes]
        for name in section.figures:
            encoded = base64.b64encode(plots[plot_file(number, name)]).decode("ascii")
            parts.append(f"<img alt='{e(name)}' src='data:image/png;base64,{encoded}'>")
        for name, table in section.tables.items():
            parts.append(f"<h3>{e(shown_as(name))}</h3>")
            parts.append(table_html(name, table, audit.rows.crm_fields if audit.rows is not None else {},
                                    model.get("currency")))
    parts.append("</body></html>")
    return "\n".join(parts)


def audit_json(audit: Audit) -> dict:
    """Model details, warnings, notes and every table as records (NaN as null)."""
    return {
        "model": audit.model,
        "warnings": audit.warnings,
        "sections": [
            {
                "key": s.key,
                "title": s.title,
                "notes": s.notes,
                "tables": {name: json.loads(t.to_json(orient="records")) for name, t in s.tables.items()},
            }
            for s in audit.sections
        ],
    }


# ---------------------------------------------------------------- I/O edge


def plot_file(number: int, name: str) -> str:
    """The file of section `number`'s plot `name`: '4_conversion_by_tier.png' (`PLOT_FILES`), in the page's order."""
    return f"{number}_{PLOT_FILES.get(name, name)}.png"


def write_audit(audit: Audit, out_dir: Path) -> list[Path]:
    """audit.html, audit.json, tables/<section>.<table>.csv and plots/<number>_<what it shows>.png (`plot_file`, the
    PNGs the page embeds) in `out_dir`, old tables and plots replaced."""
    tables_dir, plots_dir = out_dir / "tables", out_dir / "plots"
    for folder, stale_files in ((tables_dir, "*.csv"), (plots_dir, "*.png")):
        folder.mkdir(parents=True, exist_ok=True)
        for stale in folder.glob(stale_files):
            stale.unlink()
    paths = [out_dir / "audit.html", out_dir / "audit.json"]
    plots = plot_pngs(audit)
    paths[0].write_text(render_html(audit, plots), encoding="utf-8")
    paths[1].write_text(json.dumps(audit_json(audit), indent=2), encoding="utf-8")
    for section in audit.sections:
        for name, table in section.tables.items():
            path = tables_dir / f"{section.key}.{name}.csv"
            _whole_numbers_as_integers(table).to_csv(path, index=False)
            paths.append(path)
    for file, png in plots.items():
        (plots_dir / file).write_bytes(png)
        paths.append(plots_dir / file)
    return paths


def previous_version(versions: Sequence[str], current: str) -> str | None:
    """The highest registered version number below `current`, or None when it is the first."""
    older = [int(v) for v in versions if int(v) < int(current)]
    return str(max(older)) if older else None


def default_comparison(params: Params, current_version: str) -> tuple[str, str] | None:
    """(version, label) of what to compare with when none is named: the champion the audited version replaced
    (its `previous_champion` tag), what marketing saw before; else the highest version number below it (a
    refused retrain's version never served). None for the first version."""
    name, client = params.tracking.registered_model, MlflowClient()
    replaced = client.get_model_version(name, str(current_version)).tags.get("previous_champion")
    if replaced:
        return replaced, f"version {replaced}, the champion it replaced"
    versions = [v.version for v in client.search_model_versions(f"name='{name}'")]
    version = previous_version(versions, current_version)
    return None if version is None else (version, f"version {version}")


def find_previous(params: Params, current_version: str, compare_to: str | None = None) -> PreviousModel | None:
    """The model to compare with: `compare_to` (a version number or an alias), else `default_comparison`.

    Raises:
        LookupError: `compare_to` names no registered version or alias.
        ValueError: `compare_to` names the audited version itself (a comparison of nothing).
    """
    name = params.tracking.registered_model
    if compare_to is None:
        found = default_comparison(params, current_version)
        return None if found is None else PreviousModel(found[1], tracking.load_scorer(params, version=found[0]))
    written, compare_to = compare_to.strip(), tracking.version_written(compare_to)
    try:
        if compare_to.isdigit():
            version, label = tracking.registered_version(params, version=compare_to).version, f"version {compare_to}"
        else:
            version = tracking.registered_version(params, alias=compare_to).version
            label = f"version {version} (alias {compare_to})"
    except LookupError:
        raise LookupError(
            f"no version or alias {compare_to!r} of model '{name}' in {shown_url(tracking.tracking_uri(params))}"
        ) from None
    if str(version) == str(current_version):
        found = default_comparison(params, current_version)
        instead = f", or leave it out to compare with {found[1]}" if found else ""
        raise ValueError(f"--compare-to {written}: that is version {version}, the one audited; name another "
                         f"version or alias{instead}")
    return PreviousModel(label, tracking.load_scorer(params, version=str(version)))


def model_as_of(scorer: LeadScorer) -> pd.Timestamp | None:
    """The 'now' the model was trained at (None for undated exports)."""
    return pd.Timestamp(scorer.info["as_of"]) if scorer.info.get("as_of") else None


def load_inputs(params: Params, alias: str = tracking.CHAMPION, as_of: pd.Timestamp | None = None) -> tuple[LeadScorer, TrainingSet]:
    """The registered model and its training export, as of the model's own as_of unless given.

    Using the model's as_of and its own feature settings rebuilds the rows it was trained on, so the
    test split matches training and every value is one the model would see in serving.
    """
    scorer = tracking.load_scorer(params, alias)
    as_of = as_of if as_of is not None else model_as_of(scorer)
    training_set = assemble(with_model_features(params, scorer), as_of=as_of)
    refuse_before_first_lead(training_set)
    return scorer, training_set


def run_audit(
    params: Params,
    alias: str = tracking.CHAMPION,
    out_dir: Path = Path("outputs/audit"),
    compare_to: str | None = None,
    as_of: pd.Timestamp | None = None,
) -> AuditResult:
    """Audit the model registered under `alias`: write the report and log it to MLflow.

    The run goes to the experiment of the model's training run, tagged ``audit``, with the files
    under the artifact folder ``audit/`` (the plots as PNG files in ``audit/plots``, `plot_file`, which the MLflow UI
    shows as it shows the training run's: embedded in audit.html only, the run showed none), named with the export's
    as-of date as train's and evaluate's runs are
    (`run_name`: "audit leadscore v1 2025-09-02"), and the setting warnings as every run keeps them (`tracking.log_setting_warnings`),
    and, as evaluate's run, the params it read the export with and the export's fingerprint (rows, label counts, file
    hashes): two audit runs in the MLflow UI said nothing of which export or settings each figures came from.
    """
    scorer, training_set = load_inputs(params, alias, as_of)
    previous = find_previous(params, str(scorer.info["registry"]["version"]), compare_to)
    audit = build_audit(scorer, training_set, params, previous)
    paths = write_audit(audit, Path(out_dir))
    experiment_id = tracking.configure(params)
    if scorer.info.get("run_id"):
        experiment_id = MlflowClient().get_run(scorer.info["run_id"]).info.experiment_id
    name, version = audit.model["name"], audit.model["version"]
    tags = {"audit": "true", "audited_model": name, "audited_version": version, "audited_alias": alias}
    with tracking.start_run("audit", run_name(f"audit {name} v{version}", training_set), tags,
                            experiment_id=experiment_id) as run:
        mlflow.log_params(tracking.mlflow_keys(flatten(params)))
        mlflow.log_dict(training_set.fingerprint(params), "data/fingerprint.json")
        tracking.log_setting_warnings(audit.warnings)
        for path in paths:
            mlflow.log_artifact(str(path), "audit" if path.parent == Path(out_dir) else f"audit/{path.parent.name}")
    return AuditResult(audit=audit, paths=paths, run_id=run.info.run_id)
