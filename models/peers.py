"""The peers leadscore must beat, scored on the same rows in the same run.

Each peer is what a team would otherwise use:

- `PointsScorer`: the manual MQL score of Marketo/Mautic-style marketing automation (rules -> points).
- `OdooNaiveBayes`: Odoo CRM's built-in predictive lead scoring, reimplemented exactly.
- `LogisticPeer`: the regularised logistic regression a data scientist would fit first.

Each learns from the rows it is fit on (`pipelines.evaluate.fit_peers` gives them every row leadscore
learns from), takes the same feature frame as leadscore (categorical columns hold lower-cased strings
or missing, numeric columns floats) and returns p(converted) per row, so every metric in
`models.metrics` applies to them unchanged. Validation rows are accepted by all three so an evaluator
can call them alike; only the logistic peer uses them (to choose C).
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from scipy.special import expit, logit
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from models.metrics import log_loss
from pipelines.config import PointsRule

# Odoo adds this to every won and lost frequency count ("should be +1 but it weights too much on
# small recordset", crm_lead.py `_pls_update_frequency_table`).
ODOO_SMOOTHING = 0.1
# Recent Odoo releases store the probability clamped to [0.01 %, 99.99 %]
# (`_pls_get_naive_bayes_probabilities`; older ones only round it to 0.01 %).
ODOO_PROBABILITY_RANGE = (0.0001, 0.9999)
# Inverse regularisation of the 1-D Platt fit for the points score: effectively unpenalised, yet
# finite when the points happen to separate the training classes perfectly.
PLATT_C = 1e4
# Candidate inverse regularisation strengths for the logistic peer; on a tie in validation log loss
# the stronger regularisation (smaller C) wins.
LOGISTIC_C_GRID = (0.001, 0.01, 0.1, 1.0, 10.0, 100.0)
# C used when no validation rows are given to choose one from several (scikit-learn's default).
LOGISTIC_DEFAULT_C = 1.0
# Category levels seen on fewer training rows than this share one "infrequent" column, so a level
# seen twice cannot earn a large coefficient from noise.
RARE_LEVEL_MIN_COUNT = 10
# The level a missing categorical value becomes for the one-hot encoder ("not answered" is a signal).
MISSING_LEVEL = "__missing__"
# Knots of a curved numeric (LogisticPeer `curves`): its training quantiles 0, 20, ..., 100 %.
CURVE_QUANTILES = np.linspace(0.0, 1.0, 6)

ArrayLike = Sequence[float] | pd.Series | np.ndarray


def _labels_and_weights(
    X: pd.DataFrame, y: ArrayLike, weights: ArrayLike | None, part: str = "training"
) -> tuple[np.ndarray, np.ndarray]:
    """Labels and weights as float arrays, checked against the frame they belong to."""
    labels = np.asarray(y, dtype="float64").ravel()
    if len(labels) != len(X):
        raise ValueError(f"{part} feature frame and labels differ in length: {len(X)} vs {len(labels)}")
    bad = ~np.isin(labels, (0.0, 1.0))
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise ValueError(f"{part} labels must be 0 or 1; position {row} is {labels[row]!r}")
    if weights is None:
        return labels, np.ones_like(labels)
    w = np.asarray(weights, dtype="float64").ravel()
    if len(w) != len(labels) or not (w >= 0).all():
        raise ValueError(f"{part} weights must be one non-negative number per row")
    return labels, w


def _training_arrays(X: pd.DataFrame, y: ArrayLike, weights: ArrayLike | None) -> tuple[np.ndarray, np.ndarray]:
    """Training labels and weights; a peer needs both classes to learn anything."""
    labels, w = _labels_and_weights(X, y, weights)
    if not (0 < labels.sum() < len(labels)):
        raise ValueError(
            f"the training rows need converted and non-converted leads; got {int(labels.sum())} converted "
            f"of {len(labels)}"
        )
    return labels, w


def _require_columns(X: pd.DataFrame, columns: Sequence[str], setting: str) -> None:
    """Clear error naming the configured features the frame lacks."""
    missing = [c for c in columns if c not in X.columns]
    if missing:
        available = sorted(map(str, X.columns))
        shown = ", ".join(available[:30]) + (" ..." if len(available) > 30 else "")
        raise ValueError(f"{setting} names feature(s) {missing} that the feature frame lacks; it has: {shown}")


def _is_numeric(column: pd.Series) -> bool:
    return pd.api.types.is_numeric_dtype(column)


def _categories(column: pd.Series) -> pd.Series:
    """A column's values as Python str (object dtype), None where missing, whatever dtype it arrived in.

    A batch may carry an all-missing categorical column as float NaN; converting by what the column
    was at fit time, not by its dtype today, keeps such a batch scoring like any other.
    """
    as_text = column.astype("str")
    return as_text.astype(object).where(as_text.notna(), None)


def _numbers(column: pd.Series, feature: str) -> np.ndarray:
    """A numeric feature as float64, NaN where missing; a clear error if it holds text."""
    try:
        return column.astype("float64").to_numpy()
    except (TypeError, ValueError):
        examples = column.dropna().head(3).tolist()
        raise ValueError(
            f"feature {feature!r} must be numeric (it was at fit time); got values such as {examples}"
        ) from None


# --------------------------------------------------------------------------------------------------
# Manual points score
# --------------------------------------------------------------------------------------------------

_NUMERIC_OPS = {
    "==": np.equal,
    "!=": np.not_equal,
    ">=": np.greater_equal,
    ">": np.greater,
    "<=": np.less_equal,
    "<": np.less,
}


class PointsScorer:
    """The manual MQL score: each rule that holds adds its points (negative points subtract).

    Rules compare one feature with a value (``==``, ``!=``, ``>=``, ``>``, ``<=``, ``<``, ``in``).
    Categorical features compare as lower-cased text, matching the feature frame; ordered comparisons
    need a numeric feature. A missing value never satisfies a rule (not even ``!=``): a marketing
    automation tool cannot score a field nobody filled in.

    `fit` maps the raw points to a probability by Platt scaling (a 1-D logistic fit on the training
    rows), so the peer is comparable on log loss and ECE too. Platt rather than isotonic because it is
    strictly increasing: the peer ranks leads exactly as the marketing team's points do, and ranking
    metrics (AUC, lift) measure their rules, not a re-learned ordering. Should the fit find that more
    points mean *fewer* conversions, the slope is held at 0 (every lead gets the base rate) instead of
    silently reversing the rules.
    """

    probability_range = (0.0, 1.0)  # predict_proba = expit(log-odds), unclipped

    def __init__(self, rules: Sequence[PointsRule]):
        if not rules:
            raise ValueError("evaluate.points_rules is empty; the points peer needs at least one rule")
        self.rules = list(rules)

    def _compile(self, X: pd.DataFrame) -> None:
        """Check every rule against the training frame and fix how each feature is compared."""
        _require_columns(X, [rule.feature for rule in self.rules], "evaluate.points_rules")
        self.numeric_features_ = {rule.feature: _is_numeric(X[rule.feature]) for rule in self.rules}
        self.rule_values_: list[Any] = []
        for i, rule in enumerate(self.rules):
            where = f"evaluate.points_rules[{i}] ({rule.feature} {rule.op} {rule.value!r})"
            if (rule.op == "in") != isinstance(rule.value, (list, tuple)):
                raise ValueError(f"{where}: 'in' takes a list of values and the other operators one value")
            values = rule.value if rule.op == "in" else [rule.value]
            if self.numeric_features_[rule.feature]:
                try:
                    numbers = [float(v) for v in values]
                except (TypeError, ValueError):
                    raise ValueError(f"{where}: {rule.feature!r} is numeric, so the value must be a number") from None
                self.rule_values_.append(numbers if rule.op == "in" else numbers[0])
            else:
                if rule.op not in ("==", "!=", "in"):
                    raise ValueError(f"{where}: {rule.feature!r} is categorical; use ==, != or in")
                texts = [str(v).lower() for v in values]
                self.rule_values_.append(texts if rule.op == "in" else texts[0])

    def points(self, X: pd.DataFrame) -> np.ndarray:
        """Raw points per row, the number a marketing team would see in its automation tool."""
        return self._rule_points(X).sum(axis=1)

    def log_odds_contributions(self, X: pd.DataFrame) -> tuple[np.ndarray, pd.DataFrame]:
        """Base and per-feature log-odds: each rule that holds adds slope * points to its feature."""
        per_rule = self._rule_points(X) * self.slope_
        features = list(dict.fromkeys(rule.feature for rule in self.rules))
        parts = pd.DataFrame(0.0, index=X.index, columns=features)
        for i, rule in enumerate(self.rules):
            parts[rule.feature] += per_rule[:, i]
        return np.full(len(X), self.intercept_), parts

    def _rule_points(self, X: pd.DataFrame) -> np.ndarray:
        """(rows, rules): the points each rule gives each row."""
        _require_columns(X, [rule.feature for rule in self.rules], "evaluate.points_rules")
        out = np.zeros((len(X), len(self.rules)))
        for i, (rule, value) in enumerate(zip(self.rules, self.rule_values_)):
            if self.numeric_features_[rule.feature]:
                column = _numbers(X[rule.feature], rule.feature)
                known = ~np.isnan(column)
                holds = np.isin(column, value) if rule.op == "in" else _NUMERIC_OPS[rule.op](column, value)
            else:
                column = _categories(X[rule.feature])
                known = column.notna().to_numpy()
                if rule.op == "in":
                    holds = column.isin(value).to_numpy()
                else:
                    holds = (column == value).to_numpy() if rule.op == "==" else (column != value).to_numpy()
            out[:, i] = np.where(known & holds, rule.points, 0.0)
        return out

    def fit(
        self,
        X_train: pd.DataFrame,
        y_train: ArrayLike,
        weights: ArrayLike | None = None,
        X_val: pd.DataFrame | None = None,
        y_val: ArrayLike | None = None,
        val_weights: ArrayLike | None = None,
    ) -> PointsScorer:
        """Check the rules against the frame and fit the points -> probability map on training rows."""
        labels, w = _training_arrays(X_train, y_train, weights)
        self._compile(X_train)
        points = self.points(X_train)
        base_log_odds = float(logit(np.average(labels, weights=w)))
        self.slope_, self.intercept_ = 0.0, base_log_odds
        spread = points.std()
        if spread > 0:
            centred = ((points - points.mean()) / spread).reshape(-1, 1)
            platt = LogisticRegression(C=PLATT_C).fit(centred, labels, sample_weight=w)
            slope = float(platt.coef_[0, 0]) / spread
            if slope > 0:
                self.slope_ = slope
                self.intercept_ = float(platt.intercept_[0]) - slope * points.mean()
        return self

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        """p(converted) per row: the Platt map of the row's points."""
        return expit(self.intercept_ + self.slope_ * self.points(X))


# --------------------------------------------------------------------------------------------------
# Odoo CRM predictive lead scoring
# --------------------------------------------------------------------------------------------------


class OdooNaiveBayes:
    """Odoo CRM's predictive lead scoring (PLS), reproduced from its source.

    Source: odoo/odoo ``addons/crm/models/crm_lead.py`` (read at commit 0015f11c and in a newer
    release): ``_pls_get_naive_bayes_probabilities`` (scoring), ``_pls_update_frequency_table`` (the
    +0.1), ``_pls_prepare_frequencies`` and ``_pls_get_lead_pls_values`` (which values are counted).
    What Odoo does, and so this class:

    - Frequency table: per field and value, ``won = n_won(value) + 0.1`` and
      ``lost = n_lost(value) + 0.1`` over the closed (training) leads.
    - Prior: ``P(won) = (W + 0.1) / (W + L + 0.2)`` with W, L the won and lost leads. Odoo reads it
      from the first pipeline stage's frequencies, which every closed lead increments, so it carries
      the same +0.1.
    - Per field: ``P(value | won) = won(value) / sum of won(v) over the field's values`` (the sum
      includes each value's +0.1), likewise for lost.
    - ``S_won = P(won) * prod P(value | won)``, ``S_lost`` likewise, ``p = S_won / (S_won + S_lost)``,
      clamped to [0.0001, 0.9999] as recent Odoo releases store it (Odoo also rounds to 0.01 %; we
      keep full precision, which only breaks ties).
    - Missing values: Odoo drops unset fields both when counting and when scoring (only its
      ``email_state``/``phone_state`` keep "unset" as a value), so a missing value contributes no
      factor. NOTE: this follows Odoo, not "missing as its own value".
    - A value never seen in training has no frequency row; Odoo skips the field for that lead (factor
      1 for won and lost alike, i.e. no evidence either way). Followed here.
    - Stage and sales team, which Odoo always adds, are left out: every lead is scored at creation
      (first stage, whose factor is won/won = 1 for both classes) and there is one team.

    Sample weights, when given, replace Odoo's count of 1 per lead (a soft negative counts half);
    without weights the numbers are Odoo's. Numeric fields are refused rather than binned: Odoo's
    PLS only offers fields that take a handful of values (country, source, stage, tags, ...), and
    an invented binning would no longer be Odoo's method; list a banded feature such as size_band.
    """

    probability_range = ODOO_PROBABILITY_RANGE  # predict_proba clamps like Odoo

    def __init__(self, fields: Sequence[str]):
        if not fields:
            raise ValueError("evaluate.naive_bayes_fields is empty; the Odoo peer needs at least one field")
        self.fields = list(fields)

    def fit(
        self,
        X_train: pd.DataFrame,
        y_train: ArrayLike,
        weights: ArrayLike | None = None,
        X_val: pd.DataFrame | None = None,
        y_val: ArrayLike | None = None,
        val_weights: ArrayLike | None = None,
    ) -> OdooNaiveBayes:
        """Build Odoo's frequency table from the training rows."""
        _require_columns(X_train, self.fields, "evaluate.naive_bayes_fields")
        numeric = [f for f in self.fields if _is_numeric(X_train[f])]
        if numeric:
            raise ValueError(
                f"evaluate.naive_bayes_fields: {numeric} are numeric; Odoo's lead scoring counts categorical "
                "values only, so list a banded version instead (e.g. size_band for employees)"
            )
        labels, w = _training_arrays(X_train, y_train, weights)
        won_weight, lost_weight = w * labels, w * (1 - labels)
        self.prior_won_ = float(won_weight.sum()) + ODOO_SMOOTHING
        self.prior_lost_ = float(lost_weight.sum()) + ODOO_SMOOTHING
        self.frequencies_: dict[str, pd.DataFrame] = {}
        for field in self.fields:
            values = _categories(X_train[field]).to_numpy()
            known = pd.notna(values)
            counts = pd.DataFrame({"won": won_weight[known], "lost": lost_weight[known]}, index=values[known])
            self.frequencies_[field] = counts.groupby(level=0).sum() + ODOO_SMOOTHING
        return self

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        """p(won) per row by Odoo's formula; missing and unseen values contribute no factor."""
        base, parts = self.log_odds_contributions(X)
        # S_won / (S_won + S_lost) = expit(log S_won - log S_lost): log space, so many fields cannot underflow.
        return np.clip(expit(base + parts.to_numpy().sum(axis=1)), *ODOO_PROBABILITY_RANGE)

    def log_odds_contributions(self, X: pd.DataFrame) -> tuple[np.ndarray, pd.DataFrame]:
        """Base log(P(won)/P(lost)) and per field log(P(value|won)/P(value|lost)), 0 when missing or unseen."""
        _require_columns(X, self.fields, "evaluate.naive_bayes_fields")
        base = np.full(len(X), np.log(self.prior_won_ / self.prior_lost_))
        parts = {}
        for field in self.fields:
            table = self.frequencies_[field]
            ratio = np.log(table["won"] / table["won"].sum()) - np.log(table["lost"] / table["lost"].sum())
            parts[field] = _categories(X[field]).map(ratio).fillna(0.0).to_numpy(dtype="float64")
        return base, pd.DataFrame(parts, index=X.index, columns=self.fields)


# --------------------------------------------------------------------------------------------------
# Logistic regression
# --------------------------------------------------------------------------------------------------


class QuantileCurves(BaseEstimator, TransformerMixin):
    """Piecewise-linear basis of each numeric column, with knots at its training quantiles.

    Per column: the median fills missing values, then one "hat" column per knot but the first (hat
    k is 1 at knot k, 0 from the neighbouring knots on), so any weights give a line through the
    knots, flat beyond the outer ones; a missing indicator follows for columns with missing training
    values. `layout_` lists (knots, hat columns, indicator column or None) per input column.
    """

    def fit(self, X, y=None):
        X = np.asarray(X, dtype=np.float64)
        self.median_, self.layout_ = [], []
        width = 0
        for column in X.T:
            seen = column[~np.isnan(column)]
            self.median_.append(float(np.median(seen)) if len(seen) else 0.0)
            knots = np.unique(np.quantile(seen, CURVE_QUANTILES)) if len(seen) else np.zeros(1)
            hats = list(range(width, width + len(knots) - 1))
            width += len(hats)
            indicator = width if np.isnan(column).any() else None
            width += indicator is not None
            self.layout_.append((knots, hats, indicator))
        self.n_out_ = width
        return self

    def transform(self, X):
        X = np.asarray(X, dtype=np.float64)
        out = np.zeros((len(X), self.n_out_))
        for column, median, (knots, hats, indicator) in zip(X.T, self.median_, self.layout_):
            missing = np.isnan(column)
            filled = np.where(missing, median, column)
            for k, j in enumerate(hats, start=1):
                out[:, j] = np.interp(filled, knots, np.eye(len(knots))[k])
            if indicator is not None:
                out[:, indicator] = missing
        return out


class LogisticPeer:
    """L2-regularised logistic regression on the same features, C chosen on the validation rows.

    Categoricals: missing becomes its own level, levels rarer than `rare_level_min_count` training
    rows share an "infrequent" column, and a level never seen in training joins that column (or, if
    no level was rare, gets all zeros) — scikit-learn's ``handle_unknown="infrequent_if_exist"``,
    chosen over plain "ignore" because an unseen level is by definition a rare one. Numerics: median
    imputation plus a missing indicator, then standardisation so one C suits every feature.

    With `curves`, a numeric feature without a declared direction gets a piecewise-linear curve
    through knots at its training quantiles (`QuantileCurves`) instead of one slope: a count or a
    duration often converts best at both ends (X Education's time on the website: 0 s and 15+ min),
    which a slope cannot say. Declared-monotone features keep their slope (and sign check).

    C is the value of `c_grid` with the lowest (weighted) validation log loss; without validation
    rows it is the grid's only value if it has one (a C chosen before, refit on more rows), else
    scikit-learn's default 1.0. The model is trained on the training rows only.

    Args:
        features: columns to use; None means every column of the training frame.
        c_grid: candidate C values (on a tie in validation log loss the smaller C wins).
        rare_level_min_count: training rows a category level needs to get its own column.
        seed: the solver's random_state (model.seed); lbfgs is deterministic today, and the seed keeps
            the peer reproducible should the solver become a stochastic one.
        monotone: numeric feature -> +1/-1 for features whose coefficient must have that sign
            (leadscore's own logistic candidate; the peer leaves it None). A feature that comes out
            with the wrong sign is dropped and the model refit, so the direction holds for every
            input, not just the rows it was checked on.
        curves: curve the undeclared numerics (leadscore's candidate); the peer keeps plain slopes.
    """

    probability_range = (0.0, 1.0)  # predict_proba = expit(log-odds), unclipped

    def __init__(
        self,
        features: Sequence[str] | None = None,
        c_grid: Sequence[float] = LOGISTIC_C_GRID,
        rare_level_min_count: int = RARE_LEVEL_MIN_COUNT,
        seed: int = 0,
        monotone: dict[str, int] | None = None,
        curves: bool = False,
    ):
        self.features = list(features) if features is not None else None
        self.monotone = dict(monotone or {})
        self.curves = curves
        self.c_grid = list(c_grid)
        self.rare_level_min_count = rare_level_min_count
        self.seed = seed

    def _design(self, X: pd.DataFrame) -> pd.DataFrame:
        """The frame the sklearn pipeline sees: floats, and text levels with missing spelled out."""
        _require_columns(X, self.features_, "the logistic peer's feature list")
        columns = {f: _numbers(X[f], f) for f in self.numeric_}
        columns |= {f: _categories(X[f]).fillna(MISSING_LEVEL).to_numpy() for f in self.categorical_}
        return pd.DataFrame(columns, index=X.index)

    def _preprocessor(self) -> ColumnTransformer:
        transformers = []
        if self.linear_:
            numeric = make_pipeline(
                SimpleImputer(strategy="median", add_indicator=True, keep_empty_features=True), StandardScaler()
            )
            transformers.append(("numeric", numeric, self.linear_))
        if self.curved_:
            transformers.append(("curved", make_pipeline(QuantileCurves(), StandardScaler()), self.curved_))
        if self.categorical_:
            encoder = OneHotEncoder(handle_unknown="infrequent_if_exist", min_frequency=self.rare_level_min_count)
            transformers.append(("categorical", encoder, self.categorical_))
        return ColumnTransformer(transformers)

    def fit(
        self,
        X_train: pd.DataFrame,
        y_train: ArrayLike,
        weights: ArrayLike | None = None,
        X_val: pd.DataFrame | None = None,
        y_val: ArrayLike | None = None,
        val_weights: ArrayLike | None = None,
    ) -> LogisticPeer:
        """Fit one model per C on the training rows; keep the one best on validation log loss.

        With `monotone`, features whose coefficient has the wrong sign are dropped (listed in
        `dropped_for_direction_`) and the fit repeated until every declared direction holds.
        """
        self.features_ = self.features if self.features is not None else list(X_train.columns)
        self.dropped_for_direction_: list[str] = []
        while True:
            self._fit_once(X_train, y_train, weights, X_val, y_val, val_weights)
            coefs = dict(zip(self.linear_, self.model_.coef_[0][: len(self.linear_)]))
            wrong = [f for f, sign in self.monotone.items() if f in coefs and coefs[f] * sign < 0]
            if not wrong:
                self._centre_levels(X_train)
                return self
            self.dropped_for_direction_ += wrong
            self.features_ = [f for f in self.features_ if f not in wrong]

    def _centre_levels(self, X_train: pd.DataFrame) -> None:
        """Centre each category's term on its mean over the training rows (the shift goes to the base).

        L2 with a free intercept makes a category's level coefficients sum to about zero, not average
        zero over the leads: a field (nearly) every lead answers "No" would give every lead the same
        factor ("Did not see the ad in a newspaper") that says nothing about it.
        """
        self.level_centre_: dict[str, float] = {}  # measured uncentred
        _, parts = self.log_odds_contributions(X_train)
        self.level_centre_ = {f: float(parts[f].mean()) for f in self.categorical_}

    def _fit_once(self, X_train, y_train, weights, X_val, y_val, val_weights) -> None:
        _require_columns(X_train, self.features_, "the logistic peer's feature list")
        if not self.features_:
            raise ValueError("the logistic peer has no features to learn from")
        labels, w = _training_arrays(X_train, y_train, weights)
        self.numeric_ = [f for f in self.features_ if _is_numeric(X_train[f])]
        self.categorical_ = [f for f in self.features_ if f not in self.numeric_]
        self.curved_ = [f for f in self.numeric_ if self.curves and f not in self.monotone]
        self.linear_ = [f for f in self.numeric_ if f not in self.curved_]
        self.preprocessor_ = self._preprocessor().fit(self._design(X_train))
        train_matrix = self.preprocessor_.transform(self._design(X_train))
        self.validation_log_loss_: dict[float, float] = {}

        if X_val is None or y_val is None or len(X_val) == 0:
            self.c_ = self.c_grid[0] if len(self.c_grid) == 1 else LOGISTIC_DEFAULT_C
            self.model_ = LogisticRegression(C=self.c_, max_iter=2000, random_state=self.seed)
            self.model_.fit(train_matrix, labels, sample_weight=w)
            return

        val_labels, val_w = _labels_and_weights(X_val, y_val, val_weights, part="validation")
        val_matrix = self.preprocessor_.transform(self._design(X_val))
        # Weakest regularisation last, each fit starting from the previous solution (warm start):
        # the path is smooth in C, so later fits need few iterations.
        model = LogisticRegression(max_iter=2000, warm_start=True, random_state=self.seed)
        best_loss = np.inf
        for c in sorted(self.c_grid):
            model.set_params(C=c).fit(train_matrix, labels, sample_weight=w)
            loss = log_loss(val_labels, model.predict_proba(val_matrix)[:, 1], weights=val_w)
            self.validation_log_loss_[c] = loss
            if loss < best_loss:  # strict: on a tie the smaller C, seen first, stays
                best_loss, self.c_, self.model_ = loss, c, copy.deepcopy(model)
        self.model_.set_params(warm_start=False)

    def log_odds_contributions(self, X: pd.DataFrame) -> tuple[np.ndarray, pd.DataFrame]:
        """Exact split of the log-odds: the intercept, and coefficient times design value per feature.

        Numeric inputs are centred on the training mean by the scaler and a category's term on its
        training mean (``_centre_levels``), so a contribution reads "compared with an average lead".
        One-hot and missing-indicator columns are summed back onto their source feature.
        """
        base, values = self._contribution_values(X)
        return base, pd.DataFrame(values, index=X.index, columns=list(self.features_))

    def _contribution_values(self, X: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        """``log_odds_contributions`` as an array, a column per feature of ``features_``: what ``predict_proba``
        sums, without the frame (building it copied the array: a tenth of batch scoring's logistic side)."""
        _require_columns(X, self.features_, "the logistic peer's feature list")
        terms = self._folded_terms()
        columns = list(self.features_)
        values = np.zeros((len(X), len(columns)), order="F")  # filled a column at a time
        if self.numeric_:
            try:  # one conversion for every numeric column (a single lead pays it once, not per column)
                x = X[self.numeric_].to_numpy(dtype=np.float64)
            except (TypeError, ValueError):
                x = np.column_stack([_numbers(X[f], f) for f in self.numeric_])  # names the bad feature
            missing = np.isnan(x)
            if self.linear_:
                at = [self.numeric_.index(f) for f in self.linear_]
                x_lin, missing_lin = x[:, at], missing[:, at]
                numeric = terms["value_coef"] * (np.where(missing_lin, terms["median"], x_lin) - terms["value_mean"])
                for i, coef, mean in terms["indicator"]:
                    numeric[:, i] += coef * (missing_lin[:, i] - mean)
                values[:, [columns.index(f) for f in self.linear_]] = numeric
            for f, (median, knots, heights, indicator) in terms["curves"].items():
                i = self.numeric_.index(f)
                curve = np.interp(np.where(missing[:, i], median, x[:, i]), knots, heights)
                if indicator is not None:
                    coef, mean = indicator
                    curve += coef * (missing[:, i] - mean)
                values[:, columns.index(f)] = curve
        for f in self.categorical_:
            level_coef, unseen = terms["levels"][f]
            # Looked up once per distinct value (as ``_design`` names it: str, or the missing level).
            codes, distinct = pd.factorize(X[f], use_na_sentinel=True)
            per_value = [level_coef.get(str(v), unseen) for v in distinct.tolist()]
            per_value.append(level_coef.get(MISSING_LEVEL, unseen))
            values[:, columns.index(f)] = np.array(per_value, dtype=np.float64)[codes] - self.level_centre_.get(f, 0.0)
        base = np.full(len(X), float(self.model_.intercept_[0]) + sum(self.level_centre_.values()))
        return base, values

    def __getstate__(self) -> dict:
        """Saved without the folded-coefficient cache: it is rebuilt from the model on first use."""
        return {k: v for k, v in self.__dict__.items() if k != "_folded"}

    def __setstate__(self, state: dict) -> None:
        """A model saved before curves (every numeric a slope) or centred levels loads and scores as it did."""
        state.setdefault("curves", False)
        state.setdefault("level_centre_", {})
        if "numeric_" in state:
            state.setdefault("curved_", [])
            state.setdefault("linear_", list(state["numeric_"]))
        self.__dict__.update(state)

    def _folded_terms(self) -> dict:
        """`_fold_terms` of the current coefficients, computed once per fitted coefficient array."""
        coef = self.model_.coef_
        cached = self.__dict__.get("_folded")
        if cached is None or cached[0] is not coef:
            self._folded = (coef, self._fold_terms())
        return self._folded[1]

    def _fold_terms(self) -> dict:
        """The fitted preprocessing folded into the coefficients, per feature.

        Numeric: coef / scale on (imputed value - mean), plus the missing indicator's term; curved
        numeric: the curve's height at each knot (hat k's coef / scale, less the centring), so one
        np.interp gives the term; category: one coefficient per level, unseen levels getting the
        infrequent column's (0 without one).
        Equal to coef @ transformed design (tested against predict_proba), without scikit-learn's
        per-call overhead, which dominates a single lead.
        """
        coef = self.model_.coef_[0]
        terms: dict = {"value_coef": [], "value_mean": [], "median": [], "indicator": [], "curves": {}, "levels": {}}
        transformer = self.preprocessor_
        if self.linear_:
            imputer, scaler = transformer.named_transformers_["numeric"]
            block = coef[transformer.output_indices_["numeric"]] / scaler.scale_
            n = len(self.linear_)
            terms["value_coef"], terms["value_mean"], terms["median"] = block[:n], scaler.mean_[:n], imputer.statistics_
            flagged = [] if imputer.indicator_ is None else imputer.indicator_.features_
            terms["indicator"] = [(i, block[n + j], scaler.mean_[n + j]) for j, i in enumerate(flagged)]
        if self.curved_:
            curves, scaler = transformer.named_transformers_["curved"]
            block = coef[transformer.output_indices_["curved"]] / scaler.scale_
            for f, median, (knots, hats, indicator) in zip(self.curved_, curves.median_, curves.layout_):
                at_knots = np.concatenate([[0.0], block[hats]])  # hat k is 1 at knot k; the first has none
                heights = at_knots - float(block[hats] @ scaler.mean_[hats])
                flag = None if indicator is None else (float(block[indicator]), float(scaler.mean_[indicator]))
                terms["curves"][f] = (median, knots, heights, flag)
        if self.categorical_:
            encoder = transformer.named_transformers_["categorical"]
            block = coef[transformer.output_indices_["categorical"]]
            start = 0
            for f, levels, rare in zip(self.categorical_, encoder.categories_, encoder.infrequent_categories_):
                rare_set = set() if rare is None else set(rare)
                kept = [level for level in levels if level not in rare_set]
                level_coef = dict(zip(kept, block[start:start + len(kept)]))
                start += len(kept)
                unseen = 0.0
                if rare_set:
                    unseen = float(block[start])
                    level_coef.update({level: unseen for level in rare_set})
                    start += 1
                terms["levels"][f] = ({level: float(c) for level, c in level_coef.items()}, unseen)
        return terms

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        """p(converted) per row; unseen levels and missing values are handled, missing columns refused.

        Computed from the folded coefficients (``log_odds_contributions``): the same numbers as
        scikit-learn's transform + predict_proba (tested), several times cheaper.
        """
        base, values = self._contribution_values(X)
        return expit(base + values.sum(axis=1))
