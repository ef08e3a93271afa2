"""LeadScorer: the one inference path from raw CRM rows to probability, score, tier and reason.

Batch scoring, the BentoML service, evaluation and the tests all call `LeadScorer.score` (raw CRM
rows) or `LeadScorer.predict` (an already built feature frame). Everything learned at fit time —
column mapping, feature settings, category levels, models, calibrator, tier thresholds, label
horizon — lives on this object and is saved with it, so serving cannot drift from training.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import lightgbm as lgb
import numpy as np
import pandas as pd

from features.build import (FeatureDef, PlacedActivities, build_features, build_features_placing, feature_catalog,
                            lead_age_days, older_than_horizon)
from features.phrases import AmountDirection
from models import explain
from models.calibration import Calibrator, TierThresholds, to_score
from models.encoding import CategoryEncoder
from models.gbm import predict_threads
from models.reasons import ReasonModel
from pipelines.config import DataParams, FeatureParams, reads_activities
from pipelines.contract import CLOCK_SLACK, UTC_TIME
from pipelines.ingest import (COMMAND_LINE, Audience, Problem, as_of_time, as_plain_text, crm_column, prepare_table,
                              shortened)
from pipelines.numbers import DecimalMark

OUTPUT_COLUMNS = ["lead_id", "probability", "score", "tier", "likely_rejection_reason", "likely_rejection_probability",
                  "past_horizon"]


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, 1e-6, 1 - 1e-6)
    return np.log(p / (1 - p))


@dataclass
class ScoreBatch:
    """Scores for the rows that passed validation, and the problems of the rows that did not."""

    scores: pd.DataFrame
    problems: list[Problem] = field(default_factory=list)


@dataclass
class BuiltLeads:
    """``LeadScorer.build_leads``: the features, problems and ages ``build`` returns, with the raw and contract rows
    the features were built from, where their activities were placed and the time they were built as of, for what a
    caller tells about them (``never_seen_as_sent``; ``features.build.activities_dated_apart``, which the service
    and batch scoring warn of)."""

    features: pd.DataFrame
    problems: list[Problem]
    ages: np.ndarray
    rows: pd.DataFrame  # the raw lead rows built, in the features' order
    leads: pd.DataFrame  # the same as contract rows
    placed: PlacedActivities | None  # the activities the features counted from (None: none placed)
    snapshot: pd.Timestamp | None  # None: undated


@dataclass
class LeadScorer:
    data: DataParams
    features: FeatureParams
    encoder: CategoryEncoder
    booster: lgb.Booster | None
    # The logistic candidate, or at cold start a transparent peer (models.peers): an additive
    # log-odds model with predict_proba and log_odds_contributions.
    logistic: object | None
    gbm_coef: float  # margin = gbm_coef * LightGBM log-odds + logistic_coef * logistic log-odds
    logistic_coef: float
    calibrator: Calibrator
    tiers: TierThresholds
    reasons: ReasonModel | None
    info: dict = field(default_factory=dict)
    # label.horizon_days: the probability is of converting within this many days of creation. None: no
    # horizon; also what a scorer pickled before this field reads (the class default), so it flags no lead.
    horizon_days: int | None = None
    # Per lead column read as a category (features.categorical): each value seen in training as the model compares it
    # ("olark chat") -> as the training export spelled it most ("Olark Chat", `CRMData.export_spellings`), so a factor
    # names it in the CRM's words. None: a scorer pickled before it kept them (the class default); factors then read
    # the compared values.
    category_spellings: dict[str, dict[str, str]] | None = None
    # Per amount signal (employees, ICP criteria matched), whether more of it raises or lowers the score and up to
    # which amount, as the fitted model scores its own rows (`models.explain.amount_directions`), so a low amount that
    # lowers the score says leads that convert usually have more. None: a scorer pickled before it kept them (the
    # class default); its amounts then read as themselves whatever their sign.
    amount_directions: dict[str, AmountDirection] | None = None

    @property
    def catalog(self) -> list[FeatureDef]:
        return feature_catalog(self.features)

    @property
    def feature_names(self) -> list[str]:
        return [d.name for d in self.catalog]

    @property
    def reason_spellings(self) -> dict[str, str]:
        """Each likely rejection reason code as the training export spelled it ("ringing" -> "Ringing"), for
        ``models.reasons.reason_in_words``; empty without a reason model or for one pickled before it kept them."""
        return (self.reasons.spellings if self.reasons is not None else None) or {}

    @property
    def reads_activities(self) -> bool:
        """Whether scores depend on the leads' activities (``pipelines.config.reads_activities``)."""
        return reads_activities(self.features, self.data)

    def margin(self, features: pd.DataFrame, encoded: np.ndarray | None = None) -> np.ndarray:
        """Raw log-odds of the blended model (before calibration).

        Args:
            encoded: ``self.encoder.matrix(features)`` when the caller already has it.
        """
        if len(features) == 0:
            return np.zeros(0)
        gbm = logistic = 0.0
        if self.gbm_coef:
            encoded = self.encoder.matrix(features) if encoded is None else encoded
            gbm = self.booster.predict(encoded, raw_score=True, num_threads=predict_threads(len(encoded)))
        if self.logistic_coef:
            logistic = _logit(self.logistic.predict_proba(features))
        return self.blend(gbm, logistic)  # a scorer has at least one model: an array

    def blend(self, gbm: np.ndarray | float, logistic: np.ndarray | float) -> np.ndarray:
        """The blended log-odds from each model's own: `margin`'s, and training's out-of-fold margins (each lead's from
        the fold models that never saw it), so the calibrator learns the map of the margin the model serves."""
        return self.gbm_coef * gbm + self.logistic_coef * logistic

    def predict_proba(self, features: pd.DataFrame, age_days: np.ndarray | None = None) -> np.ndarray:
        """Calibrated probability of conversion per row of a feature frame.

        Args:
            age_days: each lead's age in days at its features' moment (``build``,
                ``TrainingSet.age_days``); required by a dated model, whose calibration depends on it.
        """
        return self.calibrator.predict(self.margin(features), age_days)

    def predict(self, features: pd.DataFrame, age_days: np.ndarray | None = None) -> pd.DataFrame:
        """Probability, 1-99 score, tier and likely rejection reason per row of a feature frame
        (``age_days``: see ``predict_proba``)."""
        return self._outputs(features, self._encode(features), age_days=age_days)

    def _encode(self, features: pd.DataFrame) -> np.ndarray | None:
        """The LightGBM matrix both boosters (conversion and reason) read; None without an encoder."""
        return self.encoder.matrix(features) if self.encoder is not None else None

    def as_known(self, features: pd.DataFrame) -> pd.DataFrame:
        """A feature frame as this model reads it: a category value it never saw that is the number of exactly one
        it saw is that one ("3" for the "3.0" training read, ``CategoryEncoder.as_known``). Every frame built for
        the model goes through it (``build``; a retrain's or audit's champion, ``dataset.model_features``;
        monitor's scored leads), so a comparison or a drift report reads what serving scored."""
        return self.encoder.as_known(features) if self.encoder is not None else features

    def never_seen(self, features: pd.DataFrame) -> dict[str, np.ndarray] | None:
        """Per lead column the model reads as a category (``features.categorical``): per row, whether its value was
        never seen in training (``CategoryEncoder.never_seen``), so is scored as the model's ``__other__`` level
        (until ``models.encoding.LEARNT_BY_A_RETRAIN``). Named per lead by ``never_seen_as_sent``; ``unseen_values`` counts it.

        None when the model does not remember its training values (pickled before it did): nothing can
        be told then. Derived categories (size band, seniority, department) are left out: their values
        are the feature rules' own labels, not the CRM's.
        """
        if self.encoder is None or self.encoder.seen is None:
            return None
        rows = {column: self.encoder.never_seen(features[column], column) for column in self.features.categorical}
        return {column: new for column, new in rows.items() if new is not None}

    def never_seen_as_sent(self, features: pd.DataFrame, leads: pd.DataFrame) -> dict[int, dict[str, str]] | None:
        """Per lead (its position in ``features``) with a value the model never saw in training and scored as its
        "other" level (``never_seen``): each such CRM field, as ``leads`` names it -> that value as the lead sent it,
        as text ("TikTok", "true" for a JSON true; not the trimmed lower-case value the model compares; a very long one
        `shortened`, as the answer, the score log and the factors naming it echo it). A value read
        as one it knows ("3" for a "3.0" it trained on) is not one. ``leads``: the raw rows ``features`` were built
        from, in their order. Leads with none are left out, so a batch where nothing is new costs a check per column;
        None when the model cannot tell. The service's /score and /explain and batch scoring's never_seen column."""
        rows = self.never_seen(features)
        if rows is None:
            return None
        out: dict[int, dict[str, str]] = {}
        for column, new in rows.items():
            if new.any():
                name = crm_column(self.data, "leads", column)
                for i, value in zip(np.flatnonzero(new).tolist(), as_plain_text(leads[name][new]).str.strip()):
                    out.setdefault(i, {})[name] = shortened(value)
        return out

    def unseen_values(self, features: pd.DataFrame) -> dict[str, pd.Series] | None:
        """Per lead column with values never seen in training (``never_seen``): rows per such value, most first
        (``CategoryEncoder.unseen``); None when the model cannot tell."""
        if self.encoder is None or self.encoder.seen is None:
            return None
        counts = {column: self.encoder.unseen(features[column], column) for column in self.features.categorical}
        return {column: rows for column, rows in counts.items() if rows is not None and len(rows)}

    def past_horizon(self, age_days: np.ndarray | None, rows: int) -> np.ndarray:
        """Whether each lead is older than ``horizon_days`` at its scoring time (``age_days``: ``build``).

        Such a lead can no longer convert within the horizon its probability is about: the calibrator
        scores it as a lead of the oldest snapshot age, so its score ranks it against those, and the
        output says so instead of leaving it out (README "Design decisions"). False for an undated lead,
        a model without a horizon and when no ages are given.
        """
        return older_than_horizon(np.full(rows, np.nan) if age_days is None else age_days, self.horizon_days)

    def _outputs(self, features: pd.DataFrame, encoded: np.ndarray | None, probability: np.ndarray | None = None,
                 age_days: np.ndarray | None = None) -> pd.DataFrame:
        """``predict``'s frame; ``probability`` when an explanation batch already computed it from
        the exact margin (the same numbers), so a scored and explained lead is modelled once."""
        p = self.calibrator.predict(self.margin(features, encoded), age_days) if probability is None else probability
        out = pd.DataFrame(
            {
                "lead_id": features.index.astype(str),
                "probability": p,
                "score": to_score(p),
                "tier": self.tiers.assign(p),
                "past_horizon": self.past_horizon(age_days, len(p)),
            }
        )
        if self.reasons is not None:
            out["likely_rejection_reason"], out["likely_rejection_probability"] = self.reasons.most_likely(encoded)
        else:
            out["likely_rejection_reason"] = pd.Series([None] * len(out), dtype=object)
            out["likely_rejection_probability"] = np.nan
        return out[OUTPUT_COLUMNS]

    def build(
        self,
        raw_leads: pd.DataFrame,
        raw_activities: pd.DataFrame | None = None,
        as_of: pd.Timestamp | None = None,
        source: str = "request",
        checked_activities: pd.DataFrame | None = None,
        decimal_mark: DecimalMark = "point",
        audience: Audience = COMMAND_LINE,
    ) -> tuple[pd.DataFrame, list[Problem], np.ndarray]:
        """Map raw CRM rows onto the contract, validate them and build their features as of `as_of`.

        Returns the features, the problems, and each built lead's age in days at `as_of` (NaN
        undated: ``lead_age_days``): the calibration of a dated model reads it (a new lead converts
        differently from a month-old one with the same margin), and so does the wording of a new
        lead's silence ("No activity since it was created 2 days ago").

        A problem about a whole column (no row number) leaves no row to build: the features are
        then empty and the problems say why.

        Args:
            checked_activities: activities already mapped and validated (``prepare_table``), used as
                they are instead of ``raw_activities``: batch scoring checks a whole activity file once,
                so its problems name that file's rows, and no chunk checks them again.
            decimal_mark: how the leads' text writes numbers (``ingest.decimal_mark_of`` their file).
            audience: who reads the problems' advice (``pipelines.ingest.Audience``): the service passes
                its API clients.
        """
        built = self.build_leads(raw_leads, raw_activities, as_of, source, checked_activities, decimal_mark, audience)
        return built.features, built.problems, built.ages

    def build_leads(
        self, raw_leads: pd.DataFrame, raw_activities: pd.DataFrame | None = None, as_of: pd.Timestamp | None = None,
        source: str = "request", checked_activities: pd.DataFrame | None = None, decimal_mark: DecimalMark = "point",
        audience: Audience = COMMAND_LINE,
    ) -> BuiltLeads:
        """``build``, keeping what a caller tells about the leads (``BuiltLeads``): the raw rows built, in the features'
        order (``never_seen_as_sent`` reads them), told by their index labels, as a problem's row number is the
        activity file's for an activity's problem (when every row was built, `raw_leads` itself: no copy, batch
        scoring asks for every chunk); the contract rows, where their activities were placed and the time they were
        built as of."""
        if not raw_leads.index.is_unique:  # rows are told apart by their index label (`_existing_at`)
            raw_leads = raw_leads.reset_index(drop=True)
        leads, problems = prepare_table(raw_leads, "leads", self.data, source, numeric=self.features.numeric,
                                        non_negative=self.features.non_negative, decimal_mark=decimal_mark,
                                        audience=audience, text=self.features.categorical)
        activities = None
        if self.reads_activities:
            if checked_activities is not None:
                activities = checked_activities
            elif raw_activities is not None and len(raw_activities):
                activities, act_problems = prepare_table(raw_activities, "activities", self.data, source,
                                                         audience=audience)
                problems += act_problems
            else:
                activities = pd.DataFrame({"lead_id": pd.Series(dtype=str), "occurred_at": pd.Series(dtype="datetime64[ns]"), "activity": pd.Series(dtype=str)})
        if any(p.row is None for p in problems):  # e.g. a required column is missing: no row can be built
            nothing = pd.DataFrame({"lead_id": pd.Series(dtype="str")})
            return BuiltLeads(build_features(nothing, None, None, self.features), problems, np.empty(0),
                              raw_leads.iloc[:0], nothing, None, None)
        snapshot = None
        if self.data.dated:
            snapshot = as_of_time(as_of) if as_of is not None else pd.Timestamp.now(tz="UTC").tz_localize(None)
            leads = self._existing_at(leads, raw_leads, snapshot, source, problems, audience)
        features, placed = build_features_placing(leads, activities, snapshot, self.features)
        features = self.as_known(features)
        ages = lead_age_days(leads.get("created_at", pd.Series(pd.NaT, index=leads.index)), snapshot)
        rows = raw_leads if leads.index.equals(raw_leads.index) else raw_leads.loc[leads.index]
        return BuiltLeads(features, problems, ages, rows, leads, placed, snapshot)

    def _existing_at(self, leads: pd.DataFrame, raw_leads: pd.DataFrame, snapshot: pd.Timestamp, source: str,
                     problems: list[Problem], audience: Audience) -> pd.DataFrame:
        """The leads that existed at ``snapshot``; the others become problems of their created_at.

        A lead created after the time it is scored as of would get a score from nothing (no age, no
        activity), which is never what the caller meant: a wrong scoring time or a wrong date. A day
        of slack keeps a CRM clock or a time zone written as UTC from refusing new leads.
        """
        late = (leads["created_at"] > snapshot + CLOCK_SLACK).to_numpy()
        if not late.any():
            return leads
        rows = raw_leads.index.get_indexer(leads.index[late]) + 1
        column = crm_column(self.data, "leads", "created_at")
        problems += [
            Problem(source, int(row), column, f"created {created:{UTC_TIME}} is after the time it is scored as of "
                    f"({snapshot:{UTC_TIME}}): the lead did not exist yet ({audience.scoring_time})",
                    "created_at", "created_after_scoring_time")
            for row, created in zip(rows, leads["created_at"][late])
        ]
        return leads[~late]

    def score(
        self,
        raw_leads: pd.DataFrame,
        raw_activities: pd.DataFrame | None = None,
        as_of: pd.Timestamp | None = None,
        source: str = "request",
        top_factors: int = 0,
        checked_activities: pd.DataFrame | None = None,
        decimal_mark: DecimalMark = "point",
    ) -> ScoreBatch:
        """Score raw CRM rows (the CRM's own column names); invalid rows come back as problems.

        With ``top_factors`` > 0 the scores also get that many top positive and negative factors
        per lead as flat columns (``models.explain.factor_columns``), which name a value training never saw as the
        lead sent it, as /score's do (``never_seen_as_sent``). ``checked_activities``, ``decimal_mark``: see ``build``.
        """
        built = self.build_leads(raw_leads, raw_activities, as_of, source, checked_activities, decimal_mark)
        never_seen = self.never_seen_as_sent(built.features, built.rows) if top_factors else None
        return ScoreBatch(scores=self.scores_of(built.features, top_factors, built.ages, never_seen),
                          problems=built.problems)

    def scores_of(self, features: pd.DataFrame, top_factors: int = 0, age_days: np.ndarray | None = None,
                  never_seen: dict[int, dict[str, str]] | None = None) -> pd.DataFrame:
        """What ``score`` returns for a built feature frame: ``predict``, plus the top factors if asked
        (``age_days``: see ``build``; ``never_seen``: ``never_seen_as_sent``, which the factors name as sent).

        With factors, the probabilities come from the same TreeSHAP pass as the factors: the
        booster runs once per lead, not once for the score and again for its explanation.
        """
        encoded = self._encode(features)
        if not top_factors:
            return self._outputs(features, encoded, age_days=age_days)
        batch = explain.explain_batch(self, features, encoded, top_k=top_factors, age_days=age_days, never_seen=never_seen)
        return pd.concat([self._outputs(features, encoded, batch.probability, age_days), explain.flat_factors(batch, top_factors)], axis=1)

    def explained_scores(
        self, features: pd.DataFrame, top_k: int = 3, every_factor: bool = False, age_days: np.ndarray | None = None,
        never_seen: dict[int, dict[str, str]] | None = None,
    ) -> tuple[pd.DataFrame, list[explain.Explanation]]:
        """``predict`` and ``models.explain.explain`` of the same leads from one encoding and one TreeSHAP pass."""
        encoded = self._encode(features)
        batch = explain.explain_batch(self, features, encoded, top_k=None if every_factor else top_k, age_days=age_days,
                                      never_seen=never_seen)
        return self._outputs(features, encoded, batch.probability, age_days), explain.explanations(batch, features, top_k, every_factor)
