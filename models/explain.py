"""Why a lead got its score: the top positive and negative factors, in words and score points.

Sales reps ignore a number they cannot explain, so every score can come with its factors. A factor
is one *signal* (``FeatureDef.signal``): all windows of pricing views and the "ever viewed" flag
together are one factor, worded by ``features.phrases`` ("Viewed pricing 4 times in the last 7 days").

How a factor is measured:

- **contribution** (log-odds of the scorer's margin): the margin is split exactly over the
  features, ``base + sum(contributions) == margin``. The LightGBM part is path-dependent
  TreeSHAP (the values ``shap.TreeExplainer`` gives: relative to the average training lead the
  trees saw), times the blend coefficient. The logistic part is exact and additive: coefficient
  times the peer's own standardised design value (for a curved numeric, its curve's height at the
  lead's value), one-hot and missing-indicator columns added back to their source feature; inputs
  are centred on the training mean by the peer's scaler and a category's term on its training mean
  (``LogisticPeer._centre_levels``), so the intercept plus those means is the base and a feature's
  contribution reads "compared with an average lead".
  A feature's contributions from both parts add up; a signal's are the sum of its features'.
  Where a lead has no activity at all, "No activity in the last 365 days" also carries the activity
  factors it already says ("No web page views in the last 90 days"), and a number at 0 carries those
  ``features.zero_covers`` lists under it ("Never visited the website" the "Spent no time on the
  website"; ``Phrasebook.said_by_others``), which then count 0.
- **points**: the score is ``round(100 * calibrated probability)``. A factor's points are the
  exact counterfactual ``100 * (calibrator(margin) - calibrator(margin - contribution))``:
  "without this factor the score would be N points lower" (or higher, for a negative factor).
  The calibrator is monotone, so points never have the opposite sign of the contribution; a
  flat stretch of isotonic calibration can make a small factor worth 0 points, which is honest.
  Points of several factors need not add up to the score: calibration is not linear.

A rep reads points as whole numbers (``shown_points``), so only a factor worth at least one point as
shown is a top factor (``moves_score``): "Has a phone number 0 pts" moves nothing and is noise. The
service's reasons, batch scoring's columns and the score card all list by that one rule; every
factor (``/explain``) still lists them all, since they add up to the margin.

A factor saying the lead lacks something ("No form filled in the last 90 days") that raises the score says the
model counts that as a plus for leads like this one (``features.phrases.ABSENCE_RAISES``); one saying it has something
usually good ("Has a phone number") that lowers the score, as a minus (``PRESENCE_LOWERS``). An amount lower than usual
where more of it usually raises the score (``amount_directions``, learned from the fitted model) says that leads that
convert usually have more ("Spent 5 minutes on the website", ``LOW_AMOUNT_LOWERS``), a last activity longer ago than
usual where fewer days raise it that leads that convert were usually seen more recently, and a number params declare
monotone_decreasing ("12 days since the last contact") that leads that convert usually have fewer
(``Phrasebook.amount_words``): only its words change. Each only where the amount its words state is short of its median
among the converting leads the direction was learned on (``AmountDirection.converting``); an amount the model scores
lower though more of it usually raises the score, at or past that median, says the model counts it as a minus.

Factors are ranked by |points|, then |contribution|. Everything except building the returned
objects and rendering each distinct phrase once is vectorised over leads.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import lightgbm as lgb
import numpy as np
import pandas as pd
from scipy.special import expit

from features.phrases import AmountDirection, phrasebook
from models.calibration import to_score
from models.gbm import predict_threads
from pipelines.ingest import crm_column

if TYPE_CHECKING:
    from models.scorer import LeadScorer


@dataclass(slots=True)
class Factor:
    """One signal's part in one lead's score.

    Attributes:
        signal: ``FeatureDef.signal``; every feature of the signal is grouped into this factor.
        phrase: what a rep reads, e.g. "Viewed pricing 4 times in the last 7 days".
        value: the lead's own value(s) of the signal, for display ("7d: 4, 30d: 6, 90d: 9").
        contribution: the signal's share of the margin, in log-odds.
        points: score points this factor is worth: the score minus the score without it.
    """

    signal: str
    phrase: str
    value: str
    contribution: float
    points: float


@dataclass(slots=True)
class Explanation:
    """One lead's score and the factors behind it.

    Attributes:
        lead_id: the lead.
        base: margin of a lead with no factor (log-odds); ``base + sum of contributions == margin``.
        margin: the scorer's raw blended log-odds; probability = calibrator(margin).
        probability: calibrated probability of conversion; score: round(100 * probability), 1-99.
        positives: the top factors raising the score by a point or more as shown (``moves_score``),
            largest effect first; empty when none does.
        negatives: the top factors lowering it by a point or more as shown, largest effect first.
        factors: every signal, largest effect first (factors worth nothing included); None when
            only the top factors were asked for (``explain(..., every_factor=False)``).
    """

    lead_id: str
    base: float
    margin: float
    probability: float
    score: int
    positives: list[Factor]
    negatives: list[Factor]
    factors: list[Factor] | None


def contributions(scorer: LeadScorer, features: pd.DataFrame) -> tuple[np.ndarray, pd.DataFrame]:
    """Split each lead's margin over the features, exactly.

    Args:
        scorer: a fitted LeadScorer.
        features: its feature frame (``scorer.build`` output), any number of rows.

    Returns:
        (base, contributions): base margin per row, and per-feature contributions in margin
        log-odds (index of ``features``, columns ``scorer.feature_names``), such that
        ``base + contributions.sum(axis=1) == scorer.margin(features)`` (to float rounding).
    """
    base, values = _contribution_arrays(scorer, features)
    return base, pd.DataFrame(values, index=features.index, columns=scorer.feature_names)


def by_signal(scorer: LeadScorer, contributions: pd.DataFrame) -> pd.DataFrame:
    """Per-feature contributions summed per signal; columns are the signals in catalog order."""
    signals, membership = _signal_membership(scorer)
    names = scorer.feature_names
    return pd.DataFrame(contributions[names].to_numpy() @ membership, index=contributions.index, columns=signals)


# |Spearman rho| of an amount against its contribution below this reads as no consistent direction: the audit's
# reading of a signal ("more of it raises the score") and a factor's words (``amount_directions``) alike.
DIRECTION_THRESHOLD = 0.1
# Rows ``amount_directions`` reads at most: the sign of a rank correlation is settled long before, and TreeSHAP on a
# large export's validation rows would add minutes to a fit.
DIRECTION_ROWS = 20_000
# Bands of about equal size an amount is cut into to find where the model's direction turns (``_turning_point``).
DIRECTION_BANDS = 10


def amount_directions(scorer: LeadScorer, features: pd.DataFrame, converted: np.ndarray) -> dict[str, AmountDirection]:
    """Per amount signal (``Phrasebook.amount_words``: a number, ICP criteria matched, an activity's count over
    its longest window, days since the last activity, the week's change in activity; ``Phrasebook.amount_feature``),
    how the fitted `scorer` scores more of it on `features` (rows it was tuned
    or fit on, up to ``DIRECTION_ROWS`` of them, seeded): the direction params declare (``features.monotone_*``), else
    the sign of the Spearman rank correlation between the amount and its signal's contribution where it is at least
    ``DIRECTION_THRESHOLD``, up to where the direction turns (``_turning_point``); a signal without a clear direction is
    left out. With it, the median among the rows' converting leads (`converted`: 1/0 per row) of each amount a factor's
    words state (``AmountDirection.converting``). Kept as ``LeadScorer.amount_directions`` for a factor's words: "Spent
    5 minutes on the website (leads that convert usually have more)", "Last activity 40 days ago (leads that convert
    were usually seen more recently)", where the lead's amount is short of that median."""
    book = phrasebook(scorer.features)
    amounts = {signal: book.amount_feature(signal) for signal in book.amount_words}
    if len(features) > DIRECTION_ROWS:
        rows = pd.RangeIndex(len(features)).to_series().sample(DIRECTION_ROWS, random_state=0).to_numpy()
        features, converted = features.iloc[rows], np.asarray(converted)[rows]
    converters = features[np.asarray(converted) == 1]
    converting = {signal: {d.name: _median(converters[d.name]) for d in book.stated_amounts(signal)}
                  for signal in amounts}
    directions = {signal: AmountDirection(d.monotone, np.inf, converting[signal])
                  for signal, d in amounts.items() if d.monotone}
    learned = [signal for signal in amounts if signal not in directions]
    if not learned or len(features) == 0:
        return directions
    signals = by_signal(scorer, contributions(scorer, features)[1])
    for signal in learned:
        amount = pd.Series(features[amounts[signal].name].to_numpy(dtype=np.float64, na_value=np.nan))
        contribution = pd.Series(signals[signal].to_numpy())
        if amount.nunique() < 2 or contribution.nunique() < 2:  # no variation (a peer that does not read it): none
            continue
        rho = amount.corr(contribution, method="spearman")
        if abs(rho) >= DIRECTION_THRESHOLD:
            more = 1 if rho > 0 else -1
            directions[signal] = AmountDirection(more, _turning_point(amount, contribution, more), converting[signal])
    return directions


def _median(values: pd.Series) -> float:
    """The median of a numeric column, NaN for none (no converting lead among the rows)."""
    return float(pd.Series(values.to_numpy(dtype=np.float64, na_value=np.nan)).median())


def _turning_point(amount: pd.Series, contribution: pd.Series, more: int) -> float:
    """The amount up to which the model scores more of it in direction `more`: the highest amount in the band of
    amounts (``DIRECTION_BANDS``) whose mean contribution goes furthest that way, inf when that is the highest band.
    The demo's model scores employees higher up to about 1,000 and lower past it, where "leads that convert usually
    have more" is false. An amount a lead had, not the band's edge, which interpolates between two ("up to 12.5
    visits" on the model card, of a count no lead can have)."""
    bands = pd.qcut(amount, DIRECTION_BANDS, duplicates="drop")
    means = contribution.groupby(bands, observed=True).mean() * more
    best = means.idxmax()
    return np.inf if best == means.index[-1] else float(amount[bands == best].max())


def explain(
    scorer: LeadScorer, features: pd.DataFrame, top_k: int = 3, every_factor: bool = True, age_days: np.ndarray | None = None,
    never_seen: dict[int, dict[str, str]] | None = None,
) -> list[Explanation]:
    """Score, top ``top_k`` positive and negative factors, and every factor, per lead.

    Args:
        scorer: a fitted LeadScorer (its ``features.phrases`` word the factors).
        features: its feature frame (``scorer.build`` output); 0 rows give [].
        top_k: factors per side (params ``serving.top_factors``).
        every_factor: also list every factor (``Explanation.factors``); the service's /score
            shows the top ones only and skips building the rest.
        age_days: each lead's age when scored (``features.build.lead_age_days``), or None when
            unknown: see ``features.phrases.Phrasebook.render``.
        never_seen: ``scorer.never_seen_as_sent`` of these leads, so a value training never saw is named as the
            lead sent it ("Industry: Asteroid Mining"), not as the model compares it; None: as compared ("Industry:
            asteroid mining"), worded as never seen all the same (``as_sent_columns``).

    Returns:
        One Explanation per row, in row order. Scores equal ``scorer.predict``'s.
    """
    batch = explain_batch(scorer, features, top_k=None if every_factor else top_k, age_days=age_days, never_seen=never_seen)
    return explanations(batch, features, top_k, every_factor)


def explanations(b: ExplainBatch, features: pd.DataFrame, top_k: int, every_factor: bool) -> list[Explanation]:
    """``explain`` from an already computed batch (``explain_batch`` of the same ``features``, with
    at least these ``top_k`` factors worded, or all of them for ``every_factor``)."""
    _check_top_k(top_k)
    if len(features) == 0:
        return []
    positives = _factors(b, b.positive_order[:, :top_k], b.n_positive)
    negatives = _factors(b, b.negative_order[:, :top_k], b.n_negative)
    if every_factor:
        every = _factors(b, _rank(b.points, b.contribution, np.ones(b.contribution.shape, dtype=bool)))
    else:
        every = [None] * len(features)
    rows = zip(features.index.astype(str).tolist(), b.base.tolist(), b.margin.tolist(), b.probability.tolist(),
               b.score.tolist(), positives, negatives, every)
    return [
        Explanation(lead_id=lead, base=base, margin=margin, probability=p, score=score,
                    positives=pos, negatives=neg, factors=factors)
        for lead, base, margin, p, score, pos, neg, factors in rows
    ]


def _factors(b: ExplainBatch, order: np.ndarray, counts: np.ndarray | None = None) -> list[list[Factor]]:
    """Factor objects per lead for the signal positions in ``order`` (leads x m), the first ``counts``.

    Only the chosen cells are turned into Python objects: /score shows 3 + 3 of ~30 signals.
    """
    def pick(values: np.ndarray) -> list[list]:
        return np.take_along_axis(values, order, axis=1).tolist()

    signals = np.asarray(b.signals, dtype=object)[order].tolist()
    shown = [order.shape[1]] * len(order) if counts is None else np.minimum(counts, order.shape[1]).tolist()
    columns = zip(signals, pick(b.phrases), pick(b.values), pick(b.contribution), pick(b.points), shown)
    return [list(map(Factor, s[:k], ph[:k], v[:k], c[:k], pt[:k])) for s, ph, v, c, pt, k in columns]


def factor_columns(
    scorer: LeadScorer, features: pd.DataFrame, top_k: int = 3, age_days: np.ndarray | None = None
) -> pd.DataFrame:
    """The top factors as flat columns, which a CRM import maps onto plain text and number fields.

    Columns, for rank r = 1..top_k: ``top_positive_r`` (phrase) and ``top_positive_r_points``,
    then ``top_negative_r`` and ``top_negative_r_points``; empty where a lead has fewer factors
    on that side (only factors that ``moves_score`` are listed). Points are whole points, the numbers the
    rep's score card shows (``shown_points``), so the CSV and the card never disagree. Rows
    follow ``features`` (RangeIndex, like ``scorer.predict``); no Python runs per lead.
    ``age_days``: see ``explain``.
    """
    return flat_factors(explain_batch(scorer, features, top_k=top_k, age_days=age_days), top_k)


def flat_factors(b: ExplainBatch, top_k: int) -> pd.DataFrame:
    """``factor_columns`` from an already computed batch (with at least ``top_k`` factors worded)."""
    _check_top_k(top_k)
    columns: dict[str, np.ndarray] = {}
    for side, order, count in (("positive", b.positive_order, b.n_positive), ("negative", b.negative_order, b.n_negative)):
        for rank in range(top_k):
            shown = count > rank
            signal = order[:, min(rank, order.shape[1] - 1), None]  # any column where nothing is shown
            phrase = np.take_along_axis(b.phrases, signal, axis=1)[:, 0]
            points = np.take_along_axis(b.points, signal, axis=1)[:, 0]
            columns[f"top_{side}_{rank + 1}"] = np.where(shown, phrase, None)
            columns[f"top_{side}_{rank + 1}_points"] = np.where(shown, shown_points(points), np.nan)
    return pd.DataFrame(columns)


def shown_points(points: np.ndarray | float) -> np.ndarray:
    """Points as a rep reads them: whole points, rounded as the score is (``to_score``: half to even)."""
    return np.rint(points)


def moves_score(points: np.ndarray | float) -> np.ndarray:
    """Whether a factor worth ``points`` is listed as a reason: it moves the score by a point or more as
    shown (``shown_points``); one that rounds to 0 moves nothing a rep can see."""
    return np.abs(shown_points(points)) >= 1


def _check_top_k(top_k: int) -> None:
    if top_k < 1:
        raise ValueError(f"top_k must be at least 1, got {top_k}")


# --- the vectorised core ------------------------------------------------------------------------


@dataclass
class ExplainBatch:
    """Every number and phrase of a batch's explanations; per-signal arrays are (leads, signals).

    ``probability`` is the scorer's calibrated probability from the exact margin (base plus
    contributions), so a caller that scores and explains the same leads models them once.
    """

    signals: list[str]
    base: np.ndarray
    margin: np.ndarray
    probability: np.ndarray
    score: np.ndarray
    contribution: np.ndarray
    points: np.ndarray
    phrases: np.ndarray
    values: np.ndarray
    positive_order: np.ndarray  # signal positions, strongest raising factor first
    n_positive: np.ndarray  # how many signals raise the score by a point or more as shown, per lead
    negative_order: np.ndarray
    n_negative: np.ndarray


def explain_batch(
    scorer: LeadScorer,
    features: pd.DataFrame,
    encoded: np.ndarray | None = None,
    top_k: int | None = None,
    age_days: np.ndarray | None = None,
    never_seen: dict[int, dict[str, str]] | None = None,
) -> ExplainBatch:
    """Contributions, points, phrases and rankings of every signal of every lead in one pass.

    Args:
        encoded: ``scorer.encoder.matrix(features)`` when the caller already has it.
        top_k: word only each lead's top ``top_k`` factors per side (the others' phrases and values
            stay None): rendering every signal of every lead costs more than TreeSHAP on shallow trees.
        age_days, never_seen: see ``explain``.
    """
    base, per_feature = _contribution_arrays(scorer, features, encoded)
    signals, membership = _signal_membership(scorer)
    contribution = per_feature @ membership
    book = phrasebook(scorer.features)
    for saying, said in book.said_by_others(features):  # "Never visited the website" once, with the points of all it says
        contribution[:, saying] += np.where(said, contribution, 0.0).sum(axis=1)
        contribution[said] = 0.0
    margin = base + per_feature.sum(axis=1)
    probability = scorer.calibrator.predict(margin, age_days)
    each_factor_age = None if age_days is None else np.repeat(np.asarray(age_days, dtype=np.float64), contribution.shape[1])
    without = scorer.calibrator.predict((margin[:, None] - contribution).ravel(), each_factor_age).reshape(contribution.shape)
    points = 100 * (probability[:, None] - without)
    listed = moves_score(points)  # a monotone calibrator: points have the sign of the contribution
    raises, lowers = listed & (contribution > 0), listed & (contribution < 0)
    positive_order, negative_order = _rank(points, contribution, raises), _rank(points, contribution, lowers)
    needed = None
    if top_k is not None:
        needed = np.zeros(contribution.shape, dtype=bool)
        np.put_along_axis(needed, positive_order[:, :top_k], True, axis=1)
        np.put_along_axis(needed, negative_order[:, :top_k], True, axis=1)
    phrases, values = book.render(features, needed, age_days, None if scorer.encoder is None else scorer.encoder.learned,
                                  scorer.category_spellings,
                                  book.telling_windows(features, per_feature, scorer.feature_names, contribution),
                                  as_sent_columns(scorer, never_seen, features), np.sign(contribution),
                                  scorer.amount_directions)
    return ExplainBatch(
        signals=signals, base=base, margin=margin,
        probability=probability, score=to_score(probability), contribution=contribution, points=points,
        phrases=phrases, values=values,
        positive_order=positive_order, n_positive=raises.sum(axis=1),
        negative_order=negative_order, n_negative=lowers.sum(axis=1),
    )


def as_sent_columns(scorer: LeadScorer, never_seen: dict[int, dict[str, str]] | None,
                    features: pd.DataFrame) -> dict[str, np.ndarray]:
    """``scorer.never_seen_as_sent`` (per lead, CRM field -> value as sent) per category feature, as
    ``Phrasebook.render`` reads it: per row, the value as the lead sent it, None where training saw the lead's.

    Without ``never_seen`` (a caller with the feature frame only: ``factor_columns``, ``explain``), a value training
    never saw (``scorer.never_seen``) is the one the model compares ("asteroid mining"): still worded as no past lead
    having it, never as "too few past leads had this value", which would say training saw it.
    """
    if never_seen is None:
        new = scorer.never_seen(features) or {}
        return {column: np.where(rows, features[column].to_numpy(dtype=object), None)
                for column, rows in new.items() if rows.any()}
    field_of = {crm_column(scorer.data, "leads", column): column for column in scorer.features.categorical}
    out: dict[str, np.ndarray] = {}
    for row, fields in never_seen.items():
        for field, text in fields.items():
            out.setdefault(field_of[field], np.full(len(features), None, dtype=object))[row] = text
    return out


def _rank(points: np.ndarray, contribution: np.ndarray, eligible: np.ndarray) -> np.ndarray:
    """Signal positions per row: eligible ones first, by |points| then |contribution|, largest first."""
    magnitude = np.where(eligible, np.abs(points), -np.inf)
    tie = np.where(eligible, np.abs(contribution), -np.inf)
    return np.lexsort((-tie, -magnitude), axis=-1)


def _contribution_arrays(
    scorer: LeadScorer, features: pd.DataFrame, encoded: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """``contributions`` as arrays: base (rows,) and values (rows, scorer.feature_names).

    ``encoded``: see ``explain_batch``.
    """
    names = scorer.feature_names
    n = len(features)
    base = np.zeros(n)
    values = np.zeros((n, len(names)))
    if n == 0:
        return base, values
    if scorer.gbm_coef:
        encoded = scorer.encoder.matrix(features) if encoded is None else encoded
        tree_base, tree_values = _tree_contributions(scorer.booster, encoded)
        columns = scorer.encoder.columns
        base += scorer.gbm_coef * tree_base
        values[:, _positions(names, columns)] += scorer.gbm_coef * tree_values
    if scorer.logistic_coef:
        linear_base, linear_values, columns = _linear_contributions(scorer.logistic, features)
        base += scorer.logistic_coef * linear_base
        values[:, _positions(names, columns)] += scorer.logistic_coef * linear_values
    return base, values


def _signal_membership(scorer: LeadScorer) -> tuple[list[str], np.ndarray]:
    """Signals in catalog order and the (features, signals) 0/1 matrix that sums features into them."""
    catalog = scorer.catalog
    signals = list(dict.fromkeys(d.signal for d in catalog))
    membership = np.zeros((len(catalog), len(signals)))
    membership[np.arange(len(catalog)), [signals.index(d.signal) for d in catalog]] = 1.0
    return signals, membership


def _positions(names: list[str], columns: list[str]) -> np.ndarray:
    where = {name: i for i, name in enumerate(names)}
    return np.array([where[c] for c in columns], dtype=np.intp)


def _tree_contributions(booster: lgb.Booster, encoded: np.ndarray) -> tuple[float, np.ndarray]:
    """TreeSHAP values of the booster's raw log-odds: (expected value, (rows, encoder columns)).

    LightGBM's own TreeSHAP (``pred_contrib``) is what ``shap.TreeExplainer`` runs for a LightGBM
    booster (path-dependent, no background data); calling it directly returns the same values
    (tested) without parsing every tree into SHAP's structures, and lets a small batch run on one
    thread: OpenMP's thread hand-off costs milliseconds per call on a busy machine.
    """
    values = booster.predict(encoded, pred_contrib=True, num_threads=predict_threads(len(encoded)))
    return float(values[0, -1]), values[:, :-1]


def _linear_contributions(model, features: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Exact contributions of the additive model in the scorer's logistic slot.

    The model (the logistic candidate, or a transparent peer at cold start) splits its own log-odds
    with ``log_odds_contributions``. The scorer takes logit(clip(p, 1e-6, 1 - 1e-6)), and a peer
    may clamp its p too; on rows where a clip bites, contributions are scaled down together so they
    still add up to the margin the scorer uses.
    """
    # The scorer's own clip (imported here: models.scorer imports this module).
    from models.scorer import _logit

    base, parts = model.log_odds_contributions(features)
    values = parts.to_numpy(dtype=np.float64)
    linear = values.sum(axis=1)
    # = _logit(model.predict_proba(features)) - base, without transforming the features twice
    target = _logit(np.clip(expit(base + linear), *model.probability_range)) - base
    scale = np.divide(target, linear, out=np.ones_like(linear), where=linear != 0)
    return base, values * scale[:, None], list(parts.columns)
