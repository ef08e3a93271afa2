"""params.yaml, validated once into typed objects.

Each stage reads only its own section. Unknown keys and bad values are refused with the key path
and the allowed values, so a typo in params.yaml never silently falls back to a default.
"""

from __future__ import annotations

import json
import os
import re
import types
from pathlib import Path
from typing import Annotated, Any, Literal, Union, get_args, get_origin
from urllib.parse import urlsplit

import pandas as pd
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator, model_validator

from pipelines.contract import LARGEST_NUMBER, LEADS, OUTCOMES, true_false_spellings
from pipelines.numbers import read_numbers

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_PARAMS = PROJECT_ROOT / "params.yaml"

ReasonAction = Literal["negative", "soft_negative", "exclude"]


def _takes_numbers(annotation) -> bool:
    """Whether a setting is a number, an optional one or a list of them (int or float; bool is not one)."""
    if get_origin(annotation) is Annotated:
        annotation = get_args(annotation)[0]
    if annotation in (int, float):
        return True
    return get_origin(annotation) in (Union, types.UnionType, list) and any(map(_takes_numbers, get_args(annotation)))


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    @field_validator("*", mode="before")
    @classmethod
    def _no_true_false_for_a_number(cls, value, info: ValidationInfo):
        """A number setting refuses true/false, which pydantic reads as 1/0: `max_rounds: true` trained one round,
        `windows: [7, yes]` counted activities of the last day (YAML reads yes/no and on/off as true/false too)."""
        entries = value if isinstance(value, list) else [value]
        flagged = [i for i, entry in enumerate(entries) if isinstance(entry, bool)]
        if flagged and _takes_numbers(cls.model_fields[info.field_name].annotation):
            where = f"{info.field_name}[{flagged[0]}] is " if isinstance(value, list) else "got "
            raise ValueError(f"{where}{str(entries[flagged[0]]).lower()}, not a number (YAML reads yes/no and on/off "
                             "as true/false too)")
        return value

    def __setstate__(self, state: dict) -> None:
        """A section saved with a model by an earlier version loads with the settings added since at
        their defaults (e.g. data.day_first), so an older registered model still serves."""
        fields = state.get("__dict__", {})
        for name, info in type(self).model_fields.items():
            if name not in fields and not info.is_required():
                fields[name] = info.get_default(call_default_factory=True)
        super().__setstate__(state)


class TableMapping(_Section):
    """CRM column name -> contract column name, per canonical table."""

    leads: dict[str, str] = Field(default_factory=dict)
    activities: dict[str, str] = Field(default_factory=dict)
    outcomes: dict[str, str] = Field(default_factory=dict)


# scheme://user:password@host: the password is everything between the user's colon and the last @ before the
# host (SQLAlchemy reads a raw / or @ in it too), so a message never shows part of it.
_URL_PASSWORD = re.compile(r"^(?P<head>[A-Za-z][\w+.-]*://[^:/@?#]*):.*@(?P<tail>[^@/?#]*(?:[/?#].*)?)$", re.DOTALL)
# https://TOKEN@host: a web address's user alone is a token (GitHub's, Databricks'), where a database's is a name.
_WEB_TOKEN = re.compile(r"^(?P<scheme>https?://)[^:/@?#]+@", re.IGNORECASE)
# A query parameter that holds a credential (?password=, ?token=, ?access_token=, ?api_key=, ?sig=): libpq and
# SQLAlchemy dialects read a password or token there too.
_SECRET_PARAM = re.compile(r"password|passwd|pwd|secret|token|credential|key$|^sig(nature)?$", re.IGNORECASE)


def shown_url(url: str) -> str:
    """A URL (tracking URI, serving.store_url, data.sql_url) as a message, log, page or MLflow param may show
    it: scheme, user, host and path kept, a password replaced by *** (as SQLAlchemy hides it), and so are a web
    address's user-only token (https://***@host) and a credential in the query (?password=***)."""
    found = _URL_PASSWORD.match(url)
    url = f"{found['head']}:***@{found['tail']}" if found else _WEB_TOKEN.sub(r"\g<scheme>***@", url)
    base, question, rest = url.partition("?")
    if not question or not re.match(r"[A-Za-z][\w+.-]*://", base):  # flatten passes every param, URL or not
        return url
    query, hash_mark, fragment = rest.partition("#")
    return f"{base}?{'&'.join(map(_hide_if_secret, query.split('&')))}{hash_mark}{fragment}"


def _hide_if_secret(field: str) -> str:
    """One name=value of a URL's query, its value as *** when the name says it is a credential."""
    name, equals, _ = field.partition("=")
    return f"{name}=***" if equals and _SECRET_PARAM.search(name) else field


def label_key(label) -> str:
    """How a CRM value is matched to a data.value_maps label: stripped, in any letter case."""
    return str(label).strip().lower()


def reads_activities(features: FeatureParams, data: DataParams) -> bool:
    """Whether a model of these settings scores leads by their activities (dated data with activity types to count):
    `LeadScorer.reads_activities`, and what training checks the export against before it fits one."""
    return bool(features.activity_types) and data.dated


def value_map_labels(value_map: dict[str, str]) -> dict[str, str]:
    """A data.value_maps entry as a CRM value is matched to it: each label as `label_key` folds it -> its value. A map
    of a yes/no field's labels only (`{"true": converted, "false": open}`) also reads them in their other spelling
    (contract.true_false_spellings): PostgreSQL's CSV export writes the database's true as "t"."""
    folded = {label_key(key): value for key, value in value_map.items()}
    return folded | {other: folded[known] for other, known in true_false_spellings(folded).items()}


def _number_refused(text: str, non_negative: bool) -> str | None:
    """Why a number field refuses `text` as an export's cell reads it (numbers.read_numbers, as ingest does), None
    when it takes it. The text NaN, a missing value in an export, is no number here: a label meaning not known
    belongs in data.missing_values."""
    cells = read_numbers(pd.Series([text], dtype=object), non_negative)
    if cells.too_large[0]:
        return f"not smaller than {LARGEST_NUMBER:g} in size"
    if cells.below_zero[0]:
        return "below 0"
    return "no number" if pd.isna(cells.numbers.iloc[0]) else None


class DataParams(_Section):
    """Where the CRM export is and how it maps onto the data contract."""

    format: Literal["tables", "flat"] = "tables"
    leads: str = Field(description="Leads file (CSV/Parquet), or a table name / SELECT when sql_url is set.")
    activities: str | None = None
    outcomes: str | None = Field(None, description="Outcomes source; unused for flat exports.")
    sql_url: str | None = Field(None, description="SQLAlchemy URL; when set, sources are tables or queries.")
    mapping: TableMapping = Field(default_factory=TableMapping)
    value_maps: dict[str, dict[str, str]] = Field(
        default_factory=dict, description="Per contract column, raw CRM value -> contract value."
    )
    missing_values: list[str] = Field(default_factory=list, description="Strings that mean 'not answered'.")
    drop_columns: list[str] = Field(
        default_factory=list, description="CRM columns never read (post-contact fields that leak the outcome)."
    )
    dated: bool = Field(True, description="False for exports without timestamps (no created_at).")
    day_first: bool | None = Field(
        None, description="How a date written 06/02/2025 (slashes, dots or dashes) reads: true = day first (6 "
        "February), false = month first (June 2). Unset, such a date is refused when both readings are dates."
    )
    decimal_mark: Literal["auto", "point", "comma"] = Field(
        "auto", description="How a CSV export writes numbers: point (1234.5 or 1,234.5: a comma only separates "
        "thousands), comma (1234,5 or 1.234,5: a dot or a space only separates thousands), or auto: comma or point in "
        "a CSV separated by ';' (Excel writes ';' where the decimal mark is a comma), point in any other (1,234,567 "
        "and 12,500.5 read), a number that reads both ways (1.200 or 1,200 there, 1,200 here) refused. In scientific "
        "notation the mark before the exponent is the decimal mark (1.200E3 is 1200; 1,2E+03 where a comma can be one)."
    )
    on_error: Literal["stop", "drop"] = "stop"
    dedupe_by_email: bool = False
    currency: str | None = Field(
        None, description="Currency of the deal amounts (outcomes.amount), e.g. EUR: named wherever the audit prints "
        "an amount (its won revenue column, on the page and in the notebook) and in its model details; unset, none is named.")
    statuses: list[str] = Field(
        default_factory=lambda: ["converted", "rejected", "nurture", "duplicate", "open"]
    )

    @field_validator("value_maps")
    @classmethod
    def _one_translation_per_label(cls, maps: dict[str, dict[str, str]]) -> dict[str, dict[str, str]]:
        """A label matches in any letter case (`label_key`): two spellings of it must say the same, or one
        would silently overrule the other. A blank label would never match: a blank cell is always missing."""
        for column, value_map in maps.items():
            first: dict[str, str] = {}
            for key, value in value_map.items():
                if not label_key(key):
                    raise ValueError(f"data.value_maps.{column}: the blank label {key!r} never matches, as a blank "
                                     "cell is always a missing value; write the value in the export instead")
                seen = first.setdefault(label_key(key), key)
                if value_map[seen] != value:
                    raise ValueError(f"data.value_maps.{column}: {seen!r} and {key!r} are one label (matched in any "
                                     f"letter case) mapped to {value_map[seen]!r} and to {value!r}; keep one of them")
        return maps

    def kept_with_model(self) -> DataParams:
        """These settings as a fitted scorer keeps them, pickled into the MLflow model and the bento that anyone
        loading the model reads: the CRM database's password hidden (`shown_url`), as in the run's params. The
        scorer never reads the database (`score` and the service read files and requests)."""
        return self.model_copy(update={"sql_url": shown_url(self.sql_url)}) if self.sql_url else self


class LabelParams(_Section):
    """Closed-loop label policy: outcome + rejection reason -> label, weight, rule."""

    converted_statuses: list[str] = Field(default_factory=lambda: ["converted"])
    rejected_statuses: list[str] = Field(default_factory=lambda: ["rejected"])
    open_statuses: list[str] = Field(default_factory=lambda: ["open"])
    horizon_days: int | None = Field(
        120, gt=0, description="A conversion counts only within this many days of creation; None = any time."
    )
    mature_only: bool = Field(
        True,
        description="Censor every lead younger than horizon_days at as_of, decided or not (see features/labels).",
    )
    status_policy: dict[str, ReasonAction] = Field(
        default_factory=lambda: {"nurture": "soft_negative", "duplicate": "exclude"},
        description="Statuses other than converted/rejected/open.",
    )
    reasons: dict[str, ReasonAction] = Field(default_factory=dict, description="Rejection reason code -> action.")
    unknown_reason: ReasonAction = "negative"
    missing_reason: ReasonAction = "negative"
    soft_negative_weight: float = Field(0.5, gt=0, le=1)


class IcpParams(_Section):
    """Ideal customer profile: the fit a lead is matched against."""

    industries: list[str] = Field(default_factory=list)
    countries: list[str] = Field(default_factory=list)
    seniorities: list[str] = Field(default_factory=list)
    min_employees: int | None = None
    max_employees: int | None = None

    @model_validator(mode="after")
    def _size_range_not_empty(self) -> "IcpParams":
        """A lead's size would have to be at least the minimum and at most the maximum: never, so the ICP size
        criterion would silently count against every lead."""
        low, high = self.min_employees, self.max_employees
        if low is not None and high is not None and low > high:
            raise ValueError(f"features.icp.min_employees: {low} is above max_employees ({high}), so no lead's size "
                             "matches the profile; swap them")
        return self


class FeatureParams(_Section):
    """What the point-in-time feature frame contains."""

    snapshot_days: list[float] = Field(
        default_factory=lambda: [3.0],
        description="Ages (days after created_at) a training lead may be seen at: each lead is seen at one of "
        "those it reached undecided (see features.build.training_snapshots).",
    )
    windows: list[int] = Field(default_factory=lambda: [7, 30, 90])
    activity_types: list[str] = Field(default_factory=list)
    categorical: list[str] = Field(default_factory=list, description="Lead columns used as categories.")
    numeric: list[str] = Field(default_factory=list, description="Lead columns used as numbers.")
    non_negative: list[str] = Field(
        default_factory=list,
        description="Columns of `numeric` that count something (visits, minutes on the site): a negative value "
        "refuses its row, naming it, as a negative employee count does.",
    )
    zero_covers: dict[str, list[str]] = Field(
        default_factory=dict,
        description="Column of `numeric` -> columns of `numeric` that are 0 whenever it is (no visit: no time on "
        "the site, no page views). A lead at 0 hears the fact once, in the key's words (\"Never visited the "
        "website\"), worth their points too: the model splits it over the columns, and \"Viewed no pages\" "
        "raising the score beside \"Never visited\" lowering it read as a contradiction.",
    )
    derived: list[Literal["size_band", "seniority", "department", "icp_match", "email_signals", "contact_gaps", "country_support"]] = Field(
        default_factory=list, description="Built-in fit and negative signals to compute."
    )
    icp: IcpParams = Field(default_factory=IcpParams)
    free_email_domains: list[str] = Field(default_factory=list)
    student_email_patterns: list[str] = Field(default_factory=list)
    competitor_domains: list[str] = Field(default_factory=list)
    unsupported_countries: list[str] = Field(default_factory=list)
    monotone_increasing: list[str] = Field(default_factory=list)
    monotone_decreasing: list[str] = Field(default_factory=list)
    leakage_auc: float = Field(0.95, gt=0.5, le=1)
    phrases: dict[str, str] = Field(
        default_factory=dict,
        description="Signal -> rep-readable phrase template; overrides the built-in ones (features/phrases.py).",
    )

    @model_validator(mode="after")
    def _non_negative_are_numeric(self) -> "FeatureParams":
        stray = [c for c in self.non_negative if c not in self.numeric]
        if stray:
            raise ValueError(f"features.non_negative: {', '.join(map(repr, stray))} not in features.numeric; "
                             "list only columns read as numbers")
        return self

    @model_validator(mode="after")
    def _zero_covers_numeric(self) -> "FeatureParams":
        for key, covered in self.zero_covers.items():
            stray = [c for c in [key, *covered] if c not in self.numeric]
            if stray:
                raise ValueError(f"features.zero_covers.{key}: {', '.join(map(repr, stray))} not in features.numeric")
            nested = [c for c in covered if c == key or c in self.zero_covers]
            if nested:
                raise ValueError(f"features.zero_covers.{key}: {', '.join(map(repr, nested))} cannot be covered: "
                                 "it covers columns itself (list them under one key)")
        return self

    @field_validator("snapshot_days", mode="before")
    @classmethod
    def _ages_list(cls, ages):
        return [ages] if isinstance(ages, (int, float)) else ages

    @field_validator("snapshot_days")
    @classmethod
    def _ages_valid(cls, ages: list[float]) -> list[float]:
        if not ages or any(a < 0 for a in ages):
            raise ValueError("give at least one snapshot age, none negative (days after created_at)")
        return sorted(set(ages))

    @field_validator("windows")
    @classmethod
    def _windows_positive(cls, windows: list[int]) -> list[int]:
        if any(w <= 0 for w in windows):
            raise ValueError("every window must be a positive number of days")
        return sorted(set(windows))


class ModelParams(_Section):
    """The learner, its tuning and calibration."""

    seed: int = 42
    candidates: list[Literal["lightgbm", "logistic"]] = Field(default_factory=lambda: ["lightgbm", "logistic"])
    learning_rate: float = Field(0.05, gt=0, le=1)
    max_rounds: int = Field(2000, gt=0)
    early_stopping_rounds: int = Field(100, gt=0)
    tuning_trials: int = Field(12, ge=1)
    # Undated exports (stratified split): tune, blend and calibrate by K-fold cross-validation over
    # the train + validation + calibration rows and fit the final model on all of them. 0 = holdout
    # windows everywhere.
    cv_folds: int = Field(5, ge=0, le=20)
    # Dated exports with at most this many train + validation + calibration rows cross-validate too
    # (their test stays the newest leads); larger ones keep their out-of-time validation and
    # calibration windows. 0 = dated exports always keep their windows.
    dated_cv_max_rows: int = Field(10_000, ge=0)
    balance_classes: bool = True
    # Sigmoid by default, as both shipped params files choose: its smooth map keeps a reason's score
    # points in step with its contribution, where isotonic's flat steps can make a small factor worth
    # 0 points; isotonic is there for calibration windows large enough to afford its steps.
    calibration: Literal["isotonic", "sigmoid"] = "sigmoid"
    reason_model: bool = True
    reason_min_rows: int = Field(50, ge=1)

    @field_validator("cv_folds")
    @classmethod
    def _folds(cls, value: int) -> int:
        if value == 1:
            raise ValueError("cv_folds must be 0 (holdout windows) or at least 2 folds")
        return value


class SplitParams(_Section):
    validation: float = Field(0.15, gt=0, lt=0.5)
    calibration: float = Field(0.15, gt=0, lt=0.5)
    test: float = Field(0.2, gt=0, lt=0.5)


class PointsRule(_Section):
    """One rule of the manual (MQL) points score: feature compared to a value earns points."""

    feature: str
    op: Literal["==", "!=", ">=", ">", "<=", "<", "in"]
    value: Any
    points: float


class EvaluateParams(_Section):
    split: SplitParams = Field(default_factory=SplitParams)
    ece_bins: int = Field(10, ge=2)
    top_fractions: list[Annotated[float, Field(gt=0, le=1)]] = Field(
        default_factory=lambda: [0.1, 0.2, 0.3], description="Shares of leads, best first, whose conversion capture is reported."
    )
    points_rules: list[PointsRule] = Field(default_factory=list)
    naive_bayes_fields: list[str] = Field(default_factory=list)


class Tier(_Section):
    name: str
    top_share: float | None = Field(None, gt=0, lt=1, description="Capacity: this share of leads, best first.")
    min_probability: float | None = Field(None, gt=0, lt=1, description="Precision: calibrated p at least this.")


class TierParams(_Section):
    """Tiers with thresholds fixed at training time, best tier first; the last tier takes the rest."""

    method: Literal["capacity", "precision"] = "capacity"
    tiers: list[Tier] = Field(
        default_factory=lambda: [
            Tier(name="A", top_share=0.1),
            Tier(name="B", top_share=0.3),
            Tier(name="C", top_share=0.6),
            Tier(name="D"),
        ]
    )

    @model_validator(mode="after")
    def _thresholds_match_method(self) -> "TierParams":
        if not self.tiers:  # every scored lead gets a tier: the last one takes those no tier above took
            raise ValueError("tiers.tiers: list at least one tier, e.g. [{name: all}]")
        key = "top_share" if self.method == "capacity" else "min_probability"
        for tier in self.tiers[:-1]:
            if getattr(tier, key) is None:
                raise ValueError(f"tier {tier.name!r} needs {key} when method is {self.method!r}")
        if len({t.name for t in self.tiers}) != len(self.tiers):
            raise ValueError("tier names must be unique")
        # Out of order, a tier would get no lead at all: the one above it already takes them.
        capacity = self.method == "capacity"
        for i in range(1, len(self.tiers) - 1):
            above, value = getattr(self.tiers[i - 1], key), getattr(self.tiers[i], key)
            if (value <= above) if capacity else (value >= above):
                raise ValueError(
                    f"tiers.tiers[{i}].{key}: {value:g} is not {'above' if capacity else 'below'} the {above:g} of "
                    f"tier {self.tiers[i - 1].name!r} before it; list the tiers best first, or tier "
                    f"{self.tiers[i].name!r} gets no lead"
                )
        return self


class ServingParams(_Section):
    alias: str = Field("champion", description="Registry alias served; the model name is tracking.registered_model.")
    api_key_env: str = "LEADSCORE_API_KEY"
    store_url: str = "sqlite:///leadscore_store.db"
    max_batch: int = Field(1000, ge=1)
    max_body_bytes: int = Field(5_000_000, ge=1024)
    top_factors: int = Field(3, ge=1)
    card_link_days: float = Field(
        30, gt=0, description="How long the score-card link /score returns opens without the API key."
    )
    reload_seconds: float = Field(
        60, ge=0, description="How often each worker checks the registry alias for a new champion (0: never)."
    )
    score_retention_days: int | None = Field(
        None, gt=0, description="`leadscore forget --expired` deletes the scores of the leads last scored longer ago "
        "than this (null: kept forever); feedback events are kept, as retraining learns from them."
    )
    public_url: str | None = Field(
        None, description="The service's address as reps' browsers reach it (e.g. behind a proxy); when set, "
        "each card_url is a full link the CRM can store as is, otherwise a path on the service."
    )

    @field_validator("public_url")
    @classmethod
    def _public_url_absolute(cls, url: str | None) -> str | None:
        if url is None:
            return None
        parts = urlsplit(url.strip())
        if parts.scheme not in ("http", "https") or not parts.netloc or parts.query or parts.fragment:
            raise ValueError(f"{url!r} is not an http(s) address without query or fragment, "
                             "e.g. https://leadscore.example.com")
        return url.strip().rstrip("/")


class TrackingParams(_Section):
    uri: str = Field("sqlite:///mlflow.db", description="Used unless MLFLOW_TRACKING_URI is set.")
    experiment: str = "leadscore"
    registered_model: str = "leadscore"


# The gate's settings in params.retrain: they judge a challenger and fit nothing, so the training key leaves them out
# (tracking.training_key): a gate loosened after a refusal judges the refused version again rather than training a copy.
GATE_SETTINGS = ("max_auc_drop", "max_ece", "require_no_leakage", "min_conversions")
# Every setting the training key leaves out (`fitting_params`), per section, None for the whole section: they decide
# how a model is judged, served, watched or stored, nothing the fitted scorer holds. Not serving.store_url: training
# reads the feedback store's decisions. The evaluate section stays: its ece_bins and top_fractions shape the metrics
# the scorer keeps in its info and card, and its split and peer rules the fit itself.
NOT_FITTING_SETTINGS: dict[str, tuple[str, ...] | None] = {
    "retrain": GATE_SETTINGS,
    "serving": ("alias", "api_key_env", "max_batch", "max_body_bytes", "top_factors", "card_link_days", "reload_seconds",
                "score_retention_days", "public_url"),
    "tracking": None,
    "monitor": None,
}


class RetrainParams(_Section):
    """Quarterly retraining: the gate a challenger must pass to replace the champion, and the cold start.

    Champion and challenger are scored on the same window (the challenger's out-of-time test rows).
    Below the cold-start floor no learned model is shipped: the transparent peer is registered instead.
    """

    max_auc_drop: float = Field(
        0.01, ge=0, le=1, description="The challenger's AUC may trail the champion's on the window by at most this."
    )
    max_ece: float = Field(0.05, gt=0, le=1, description="The challenger's expected calibration error on the window.")
    require_no_leakage: bool = Field(True, description="Refuse a challenger whose training data raised a leakage warning.")
    min_conversions: int = Field(
        30, ge=1, description="Conversions the comparison window needs before its AUC/ECE mean anything."
    )
    min_closed_leads: int = Field(
        1000, ge=1, description="Cold start below this many labelled (closed, mature) leads."
    )
    min_closed_conversions: int = Field(
        120, ge=1, description="Cold start below this many conversions among them (Salesforce Einstein asks 120)."
    )
    cold_start_peer: Literal["points", "naive_bayes"] = Field(
        "points", description="The transparent peer shipped at cold start: evaluate.points_rules or naive_bayes_fields."
    )


class MonitorParams(_Section):
    """Drift and hand-off health of the champion in production (`leadscore monitor`)."""

    window_days: int = Field(30, gt=0, description="Recent scored leads compared with the training window.")
    psi_bins: int = Field(10, ge=2, description="Quantile bins of a numeric feature (missing gets its own bin).")
    psi_warn: float = Field(0.1, gt=0, description="Population stability index from which a shift is worth a look.")
    psi_alert: float = Field(0.25, gt=0, description="PSI from which a shift is an alert.")
    min_drift_rows: int = Field(
        200, ge=1, description="Recent scored leads needed before PSI is judged (its noise is about bins / leads)."
    )
    calibration_days: int = Field(
        365, gt=0, description="Scored leads whose matured outcomes are checked against the probability they got."
    )
    recent_calibration_days: int = Field(
        90, gt=0, description="The latest matured cohort (leads first scored in these days up to label.horizon_days "
        "ago) is also judged on its own: a recent conversion change is diluted in calibration_days.",
    )
    calibration_tolerance: float = Field(
        0.05, gt=0, le=1, description="Largest accepted |observed - predicted| conversion rate, overall and per segment."
    )
    min_calibration_rows: int = Field(100, ge=1, description="Matured leads needed before calibration is judged.")
    min_segment_rows: int = Field(50, ge=1, description="Leads a segment (feature value) needs to be judged on its own.")
    handoff_sla_hours: float = Field(4, gt=0, description="Target time from scoring to the first sales disposition.")
    min_within_sla: float = Field(0.8, ge=0, le=1, description="Share of scored leads dispositioned within the SLA.")
    min_top_tier_worked: float = Field(0.95, ge=0, le=1, description="Share of top-tier leads sales has worked.")
    min_reason_coded: float = Field(0.9, ge=0, le=1, description="Share of rejections that carry a reason code.")

    @model_validator(mode="after")
    def _alert_above_warn(self) -> "MonitorParams":
        if self.psi_alert < self.psi_warn:
            raise ValueError("psi_alert must be at least psi_warn")
        return self


class Params(_Section):
    data: DataParams
    label: LabelParams = Field(default_factory=LabelParams)
    features: FeatureParams = Field(default_factory=FeatureParams)
    model: ModelParams = Field(default_factory=ModelParams)
    evaluate: EvaluateParams = Field(default_factory=EvaluateParams)
    tiers: TierParams = Field(default_factory=TierParams)
    serving: ServingParams = Field(default_factory=ServingParams)
    tracking: TrackingParams = Field(default_factory=TrackingParams)
    retrain: RetrainParams = Field(default_factory=RetrainParams)
    monitor: MonitorParams = Field(default_factory=MonitorParams)
    base_dir: Path = Field(PROJECT_ROOT, description="Relative paths in the file resolve against this folder.")

    @model_validator(mode="after")
    def _latest_cohort_in_calibration_window(self) -> "Params":
        """The latest matured cohort is part of the calibration window: past its start it would be silently cut."""
        mp, horizon = self.monitor, self.label.horizon_days if self.data.dated else None
        if mp.recent_calibration_days + (horizon or 0) > mp.calibration_days:
            raise ValueError(
                f"monitor.recent_calibration_days ({mp.recent_calibration_days})"
                + (f" + label.horizon_days ({horizon})" if horizon else "")
                + f" is more than monitor.calibration_days ({mp.calibration_days}): the latest matured cohort "
                "must lie within the calibration window; lower the first or raise calibration_days"
            )
        return self

    @model_validator(mode="after")
    def _scores_kept_for_monitoring(self) -> "Params":
        """Monitor checks the probability leads first scored up to monitor.calibration_days ago got against their
        outcomes: scores deleted sooner would shrink that window without a word."""
        kept, window = self.serving.score_retention_days, self.monitor.calibration_days
        if kept is not None and kept < window:
            raise ValueError(
                f"serving.score_retention_days: {kept} is less than monitor.calibration_days ({window}): monitor checks "
                "the scores of that window against their outcomes, and forget --expired would delete them first; raise "
                "the first, or lower calibration_days (recent_calibration_days + label.horizon_days must fit in it)"
            )
        return self

    @model_validator(mode="after")
    def _snapshots_before_horizon(self) -> "Params":
        """A lead still open at the horizon is labelled negative then: seeing it later sees it after its label."""
        horizon, oldest = self.label.horizon_days, max(self.features.snapshot_days)
        if self.data.dated and horizon is not None and oldest >= horizon:
            raise ValueError(
                f"features.snapshot_days: age {oldest:g} is not before label.horizon_days ({horizon}); "
                "training leads are seen while their outcome is still open"
            )
        return self

    @model_validator(mode="after")
    def _label_statuses_are_statuses(self) -> "Params":
        """A converted or rejected status that data.statuses lacks can never match (ingest refuses such a row):
        training then said only that no lead converted, or left every rejection out. Open statuses and
        status_policy may name statuses a CRM lacks (their defaults do): leads without them are labelled alike."""
        if not self.label.converted_statuses:
            raise ValueError("label.converted_statuses: list at least one status (a conversion is what the model learns)")
        known = {label_key(s) for s in self.data.statuses}
        for key in ("converted_statuses", "rejected_statuses"):
            unknown = [s for s in getattr(self.label, key) if label_key(s) not in known]
            if unknown:
                raise ValueError(f"label.{key}: {', '.join(map(repr, unknown))} not in data.statuses "
                                 f"{self.data.statuses}; list only statuses the export holds once mapped")
        return self

    @model_validator(mode="after")
    def _status_maps_give_statuses(self) -> "Params":
        """data.value_maps.status renames a CRM label to one of data.statuses (in any letter case, as a status is
        matched): a label mapped elsewhere ({"Won": "closed"}) loaded, and then refused every export row and
        /feedback event holding it as an unknown status, where the fix is in params."""
        known = {label_key(s) for s in self.data.statuses}
        for label, value in self.data.value_maps.get("status", {}).items():
            if label_key(value) not in known:
                raise ValueError(f"data.value_maps.status.{label}: translates {label!r} to {value!r}, which is not in "
                                 f"data.statuses {self.data.statuses}; map it to one of them, or add {value!r} to "
                                 "data.statuses")
        return self

    @model_validator(mode="after")
    def _number_maps_give_numbers(self) -> "Params":
        """A data.value_maps entry of a number field (the contract's employees and amount, features.numeric) renames
        a CRM label to a number the field takes. A label mapped to "" (meaning not known) or to other text refused
        each row the CRM sent it on, as "not a number: ''"; a label that is itself a number the field refuses
        ("-5" where employees is 0 or more) the service took while /docs.json, which cannot list JSON numbers by
        their text, refused it."""
        numeric = {*LEADS.numeric, *OUTCOMES.numeric, *self.features.numeric}
        counts = {*LEADS.non_negative, *OUTCOMES.non_negative, *self.features.non_negative}
        for column, value_map in self.data.value_maps.items():
            if column not in numeric:
                continue
            non_negative = column in counts
            takes = (f"a number's text (digits 0-9, a decimal point, an exponent: 250, 2.5, 1e3) smaller than "
                     f"{LARGEST_NUMBER:g} in size" + (", 0 or more" if non_negative else ""))
            for label, value in value_map.items():
                why = _number_refused(value, non_negative)
                if why:
                    raise ValueError(f"data.value_maps.{column}.{label}: translates {label!r} to {value!r}, {why}; "
                                     f"{column} takes {takes}: map it to one, or, if {label!r} means not known, "
                                     "list it in data.missing_values instead")
                why = _number_refused(label, non_negative)
                if why not in (None, "no number"):  # a label that is no number is the CRM's text the map renames
                    raise ValueError(f"data.value_maps.{column}.{label}: the label {label!r} is a number {column} "
                                     f"refuses ({why}), which a CRM integration checking /docs.json never sends; "
                                     "if it means not known, list it in data.missing_values instead of mapping it")
        return self

    def resolve(self, path: str) -> Path:
        """A path from params, relative to the params file's folder."""
        p = Path(path).expanduser()
        return p if p.is_absolute() else self.base_dir / p


class ParamsError(ValueError):
    """params.yaml is unreadable or invalid; the message names each bad key."""


def _format_error(err: ValidationError, source: Path) -> str:
    lines = [f"{source}: {err.error_count()} invalid setting(s)"]
    for e in err.errors():
        loc, msg = e["loc"], e["msg"]
        if e["type"] == "string_type" and isinstance(e["input"], bool):
            # YAML reads an unquoted yes/no, on/off or true/false as a boolean, a key too (`No: rejected`).
            is_key = loc[-1:] == ("[key]",)
            loc = loc[:-2] if is_key else loc
            msg = (f"{'a key' if is_key else 'the value'} reads as {str(e['input']).lower()}: YAML reads an unquoted "
                   'yes/no, on/off or true/false as true/false; quote it to mean the text, e.g. "No"')
        key = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in loc).lstrip(".") or "(top level)"
        if e["type"] == "literal_error":
            msg = f"got {e['input']!r}; allowed values: {e['ctx']['expected']}"
        elif e["type"] == "extra_forbidden":
            msg = "unknown key (check spelling)"
        elif e["type"] == "value_error":
            msg = str(e["ctx"]["error"])
            named, _, rest = msg.partition(": ")
            if rest and (not e["loc"] or named.startswith(f"{key}.")):  # a check across keys names the exact one
                key, msg = named, rest
        lines.append(f"  - {key}: {msg}")
    return "\n".join(lines)


# The params file a long-running process (the service, its benchmark, the audit notebook) runs with.
PARAMS_ENV = "LEADSCORE_PARAMS"


def params_from_env() -> Params:
    """The params file that LEADSCORE_PARAMS names, else the project's params.yaml."""
    return load_params(os.environ.get(PARAMS_ENV) or None)


def load_params(path: str | Path | None = None, overrides: dict[str, Any] | None = None) -> Params:
    """Read and validate a params file.

    Args:
        path: params file; defaults to the project's params.yaml.
        overrides: dotted keys replaced after reading, e.g. ``{"data.leads": "x.csv"}`` (CLI options).
    """
    source = Path(path) if path else DEFAULT_PARAMS
    try:
        raw = yaml.safe_load(source.read_text(encoding="utf-8")) or {}
    except FileNotFoundError:
        raise ParamsError(f"params file not found: {source}") from None
    except UnicodeDecodeError as exc:
        raise ParamsError(f"{source}: not UTF-8 text (byte {exc.start} cannot be read); save it as UTF-8") from None
    except OSError as exc:
        raise ParamsError(f"{source}: cannot read the params file: {exc.strerror or exc}") from None
    except yaml.YAMLError as exc:
        raise ParamsError(f"{source}: not valid YAML: {exc}") from None
    if not isinstance(raw, dict):
        raise ParamsError(f"{source}: expected a mapping of sections, got {type(raw).__name__}")
    for dotted, value in (overrides or {}).items():
        node = raw
        *parents, leaf = dotted.split(".")
        for depth, key in enumerate(parents, 1):
            node = node.setdefault(key, {})
            if not isinstance(node, dict):
                section = ".".join(parents[:depth])
                raise ParamsError(f"{source}: {section}: expected a section of settings (key: value lines), "
                                  f"got {'nothing' if node is None else repr(node)}")
        node[leaf] = value
    raw.setdefault("base_dir", str(source.resolve().parent))
    try:
        return Params.model_validate(raw)
    except ValidationError as err:
        raise ParamsError(_format_error(err, source)) from None


def shown_params(params: Params) -> dict:
    """The params as JSON values, every URL's password hidden (`shown_url`): what a run logs (`flatten`) and what
    the training key hashes, so rotating a database's or tracking server's password changes neither."""
    def shown(value: Any) -> Any:
        if isinstance(value, dict):
            return {key: shown(item) for key, item in value.items()}
        if isinstance(value, list):
            return [shown(item) for item in value]
        return shown_url(value) if isinstance(value, str) else value

    return shown(params.model_dump(mode="json", exclude={"base_dir"}))


def fitting_params(params: Params) -> dict:
    """`shown_params` without the settings that fit nothing (`NOT_FITTING_SETTINGS`): what the training key hashes,
    so changing serving.top_factors or a monitor threshold alone trains no copy of the champion."""
    shown = shown_params(params)
    for section, keys in NOT_FITTING_SETTINGS.items():
        if keys is None:
            del shown[section]
        else:
            shown[section] = {key: value for key, value in shown[section].items() if key not in keys}
    return shown


def flatten(params: Params) -> dict[str, str]:
    """Params as flat ``section.key`` strings, for MLflow's log_params; a URL's password hidden (`shown_params`).

    A text value as written, any other as JSON (``["", "Select"]``, ``null``, ``true``), whole: Python's repr
    cut at 500 characters showed the points rules ending mid-rule (MLflow keeps 6,000)."""
    out: dict[str, str] = {}

    def walk(prefix: str, value: Any) -> None:
        if isinstance(value, dict):
            for k, v in value.items():
                walk(f"{prefix}.{k}" if prefix else str(k), v)
        else:
            out[prefix] = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)

    walk("", shown_params(params))
    return out
