"""`leadscore retrain`: a challenger replaces the champion only after beating it on the same recent leads.

Flow: CRM export + the service's feedback store (`history.load_history`, as train and evaluate read
them) -> closed leads as of DATE -> `fit_challenger`: below the cold-start floor the transparent peer
(points or naive Bayes), otherwise the learned model (the backtest replays quarters through the same
function) -> the challenger is logged and registered -> champion and challenger are scored on the
challenger's out-of-time test rows -> the gate in params.retrain decides. `promote` and `rollback`
move the alias by hand.

Every move of the `champion` alias records why and which version it replaced (model-version tags
plus an MLflow run), so a rollback knows where to go back to. Nothing signals the service: it serves
`models:/<name>@champion` and picks a moved alias up on its own reload.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone

import mlflow
import numpy as np
import pandas as pd
from mlflow.tracking import MlflowClient

from features.build import feature_catalog
from features.phrases import phrase_templates
from models.calibration import Calibrator, TierThresholds
from models.encoding import most_frequent
from models.explain import amount_directions
from models.card import log_card, model_card
from models.metrics import evaluate_scores, fraction_key
from models.peers import OdooNaiveBayes, PointsScorer
from models.scorer import LeadScorer
from models.splits import Split, make_split
from models.train import category_encoder, remembered_spellings
from pipelines import tracking
from pipelines.config import Params, flatten, shown_url
from pipelines.dataset import TrainingSet, assemble, data_as_of, model_features, refuse_before_first_lead, training_warnings
from pipelines.evaluate import LEADSCORE, Evaluation, champion_overlap_notes, compare, format_table
from pipelines.history import FeedbackMerge, load_history
from pipelines.ingest import CRMData, crm_column
from pipelines.train import (export_category_spellings, fit_model, input_example, log_trained, model_run_name,
                             name_registered_run, refuse_activities_column, run_name)

CHAMPION_ROW, CHALLENGER_ROW = "champion", "challenger"
# Model-version tags saying how a champion stopped serving: promoted over (`replaced_by`) or rolled back from
# (`rolled_back_to`). A version that serves again loses them, so its tags never say it was replaced while it serves.
LEFT_CHAMPION_TAGS = ("replaced_by", "replaced_at", "rolled_back_to", "rolled_back_at", "rollback_reason")
# Model-version tag of a challenger retrain registered and has not judged yet, removed by the gate's verdict: a retrain
# stopped in between (the store failing, a bad champion) leaves it, and `promote` shows it.
NOT_JUDGED = "retrain_not_judged"
# Figures printed and gated on, in this order.
SHOWN_FRACTION = 0.2  # the capture shown in the gate table, whatever evaluate.top_fractions lists
SHOWN_METRICS = ["rows", "positives", "roc_auc", "pr_auc", "log_loss", "ece", f"capture_{fraction_key(SHOWN_FRACTION)}"]
PEER_NAMES = {"points": "points_mql", "naive_bayes": "odoo_naive_bayes"}


# ----------------------------------------------------------------------------- cold start


def closed_counts(ts: TrainingSet) -> tuple[int, int]:
    """(closed leads, conversions): the labelled rows of the training set, which the cold-start floor checks."""
    return len(ts.y), int(ts.y.sum())


def cold_start_shortfall(closed: int, conversions: int, params: Params) -> str | None:
    """Why the data is too thin for a learned model, or None when it is enough."""
    rp = params.retrain
    if closed >= rp.min_closed_leads and conversions >= rp.min_closed_conversions:
        return None
    return (f"cold start: {closed:,} closed leads with {conversions:,} conversions, below the minimum of "
            f"{rp.min_closed_leads:,} / {rp.min_closed_conversions:,} (params retrain): shipping the "
            f"transparent {PEER_NAMES[rp.cold_start_peer]} peer instead of a learned model")


def fit_cold_start_scorer(ts: TrainingSet, split: Split, params: Params, why: str) -> LeadScorer:
    """A LeadScorer whose margin is the transparent peer's log-odds: the one inference path, no learned model.

    The peer sits in the scorer's linear slot (`logistic`, coefficient 1, no booster), so batch scoring,
    the service and evaluation use it unchanged. The peer learns from train + validation rows (it has
    nothing to tune); a Platt calibrator, which two parameters keep stable on little data, is fit on
    the calibration rows (on the peer's rows when those lack a class), and tiers are frozen as usual.
    Its category levels (how a factor's value reads, which values are new) are those a learned model
    fit on the peer's rows would take (`models.train.category_encoder`).
    """
    rp = params.retrain
    closed, conversions = closed_counts(ts)
    fit_rows = np.concatenate([split.train, split.validation])
    X_fit, y_fit, w_fit = ts.features.iloc[fit_rows], ts.y[fit_rows], ts.weights[fit_rows]
    if not 0 < y_fit.sum() < len(y_fit):
        raise ValueError(
            f"{why}; but even the peer needs converted and non-converted leads to learn from, and the "
            f"{len(y_fit):,} training rows hold {int(y_fit.sum()):,} conversions"
        )
    if rp.cold_start_peer == "points":
        peer = PointsScorer(params.evaluate.points_rules)
    else:
        peer = OdooNaiveBayes(params.evaluate.naive_bayes_fields)
    peer.fit(X_fit, y_fit, weights=w_fit)

    encoder = category_encoder(X_fit, feature_catalog(params.features))
    scorer = LeadScorer(
        data=params.data.kept_with_model(), features=params.features, encoder=encoder, booster=None, logistic=peer,
        gbm_coef=0.0, logistic_coef=1.0, calibrator=Calibrator("sigmoid"), tiers=TierThresholds(names=[]),
        reasons=None, horizon_days=params.label.horizon_days,
        category_spellings=remembered_spellings(encoder, export_category_spellings(ts, params)),
        info={
            "trained_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "cold_start": {"peer": PEER_NAMES[rp.cold_start_peer], "closed_leads": closed,
                           "conversions": conversions, "why": why},
            "blend": {"peer_weight": 1.0},
        },
    )
    scorer.amount_directions = amount_directions(scorer, X_fit, y_fit)
    calibration = split.calibration if 0 < ts.y[split.calibration].sum() < len(split.calibration) else fit_rows
    scorer.calibrator.fit(scorer.margin(ts.features.iloc[calibration]), ts.y[calibration],
                          ts.calibration_weights[calibration])
    reference = np.concatenate([split.train, split.validation, split.calibration])
    scorer.tiers = TierThresholds.fit(params.tiers, scorer.predict_proba(ts.features.iloc[reference]))
    return scorer


def fit_challenger(ts: TrainingSet, split: Split, params: Params) -> tuple[LeadScorer, str | None]:
    """The model retraining ships on `ts`: the cold-start peer below the floor, else the learned model.

    Returns the scorer and why the peer was chosen (None for the learned model). `leadscore retrain`
    and the backtest's replayed quarters both fit through here, so a replay is what retrain would
    have shipped.
    """
    why = cold_start_shortfall(*closed_counts(ts), params)
    if why:
        return fit_cold_start_scorer(ts, split, params, why), why
    return fit_model(ts, split, params), None


# ----------------------------------------------------------------------------- the gate


@dataclass
class Decision:
    """The gate's verdict: promote or not, every check's result and a sentence per check."""

    promote: bool
    checks: dict[str, bool]
    reasons: list[str]


def window_metrics(
    probabilities: dict[str, np.ndarray], y: np.ndarray, params: Params
) -> pd.DataFrame:
    """Figures of each scorer on the same window rows, one row per scorer.

    Unweighted, like the train command's test table, so the two read alike.
    """
    fractions = sorted({*params.evaluate.top_fractions, SHOWN_FRACTION})
    rows = {name: evaluate_scores(y, p, ece_bins=params.evaluate.ece_bins, top_fractions=fractions)
            for name, p in probabilities.items()}
    return pd.DataFrame.from_dict(rows, orient="index")


def auc_comparison(new: float, old: float, max_drop: float, trained_as_of: tuple[str | None, str | None] = (None, None)
                   ) -> str:
    """The AUC check in words. A challenger trailing the champion within max_auc_drop passes: the allowance is for a
    model trained on fresher data, which the sentence names (`trained_as_of`: the champion's and the challenger's
    `as_of`, when known), as a lower AUC reported only as "ok" reads as a mistake."""
    if np.isnan(new) or np.isnan(old):
        return f"challenger AUC {new:.4f} vs champion {old:.4f}: not comparable"
    if new >= old:
        return f"challenger AUC {new:.4f} is {new - old:.4f} above the champion's {old:.4f}"
    text = f"challenger AUC {new:.4f} is {old - new:.4f} below the champion's {old:.4f}"
    if new < old - max_drop:
        return f"{text}, more than max_auc_drop {max_drop}"
    champion, challenger = (pd.Timestamp(d).normalize() if d else None for d in trained_as_of)
    if champion is not None and challenger is not None and challenger > champion:
        return (f"{text}, within max_auc_drop {max_drop}, which the gate allows a challenger for its fresher data "
                f"(trained as of {challenger:%Y-%m-%d}, the champion as of {champion:%Y-%m-%d})")
    return f"{text}, within max_auc_drop {max_drop}, which the gate allows a newly trained challenger"


def decide(metrics: pd.DataFrame, leakage_warnings: int, params: Params, *, cold_start: bool = False,
           champion_is_cold_start: bool = False, trained_as_of: tuple[str | None, str | None] = (None, None)) -> Decision:
    """Apply params.retrain to the window figures (rows `challenger` and, when there is one, `champion`).

    `trained_as_of` (the champion's and the challenger's training date) words why a challenger trailing the
    champion within max_auc_drop passes (`auc_comparison`).

    Two rules beyond the thresholds: a learned champion is never replaced by a cold-start peer
    (`cold_start`: the challenger is one) automatically; and with no champion yet the challenger
    serves whatever the checks say (registering the first version makes it champion), the reasons
    saying what failed.
    """
    rp = params.retrain
    challenger = metrics.loc[CHALLENGER_ROW]
    checks: dict[str, bool] = {}
    reasons: list[str] = []

    def check(name: str, passed: bool, sentence: str) -> None:
        checks[name] = bool(passed)
        reasons.append(f"{'ok' if passed else 'FAILED'}: {sentence}")

    conversions = challenger["positives"]
    check("enough_conversions", conversions >= rp.min_conversions,
          f"window holds {conversions:.0f} conversions (minimum {rp.min_conversions})")
    if CHAMPION_ROW in metrics.index:
        new, old = challenger["roc_auc"], metrics.loc[CHAMPION_ROW, "roc_auc"]
        check("auc_vs_champion", new >= old - rp.max_auc_drop, auc_comparison(new, old, rp.max_auc_drop, trained_as_of))
    else:
        reasons.append("ok: no champion to beat")
    ece = challenger["ece"]
    check("calibration", ece <= rp.max_ece, f"challenger ECE {ece:.4f} (maximum {rp.max_ece})")
    if rp.require_no_leakage:
        check("no_leakage", leakage_warnings == 0,
              f"{leakage_warnings} leakage warning(s) in the training data" if leakage_warnings
              else "no leakage warning in the training data")
    has_champion = CHAMPION_ROW in metrics.index
    if cold_start and has_champion and not champion_is_cold_start:
        check("keeps_learned_champion", False, "a learned champion is never replaced by the cold-start peer "
              "automatically (use `leadscore promote` to do it on purpose)")
    promote = all(checks.values())
    if not has_champion and not promote:
        promote = True
        reasons.append("ok: no champion yet, so this first version serves despite the failed checks; "
                       "fix them and retrain before relying on it")
    return Decision(promote=promote, checks=checks, reasons=reasons)


# ----------------------------------------------------------------------------- aliases


@dataclass
class AliasChange:
    """One move of the champion alias."""

    version: str
    previous: str | None
    reason: str
    run_id: str = ""
    refused_by_retrain: str = ""  # why retrain refused to promote this version, when it did (shown, not blocking)
    not_judged: str = ""  # which retrain registered this version and stopped before judging it (shown, not blocking)


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _champion_version(params: Params) -> str | None:
    """The version `champion` names, or None before the first one."""
    try:
        return str(tracking.registered_version(params, tracking.CHAMPION).version)
    except LookupError:
        return None


def _move_champion(params: Params, version: str, reason: str, rollback_reason: str = "") -> str | None:
    """Point `champion` at `version`, tagging it with the reason, and return the version `champion` named before.

    The version's tags are written before the alias moves: a store failing midway leaves `champion` where it
    was (a re-run judges or rolls back again), never a champion without the previous one `rollback` goes back to.
    A promotion records the champion it replaces as the version's `previous_champion`; a rollback
    (`rollback_reason`) keeps the version's own, so the next rollback walks one step further back, and tags the
    champion it leaves with where to, when and why. A version serving again loses the tags of how it last stopped
    serving (`LEFT_CHAMPION_TAGS`): the MLflow run of each move keeps that history.
    """
    client, name = MlflowClient(), params.tracking.registered_model
    current = _champion_version(params)
    if current != version and not rollback_reason:  # the first registration, already champion, keeps its history too
        client.set_model_version_tag(name, version, "previous_champion", current or "")
    client.set_model_version_tag(name, version, "champion_since", _now())
    client.set_model_version_tag(name, version, "promotion_reason", reason)
    for tag in set(LEFT_CHAMPION_TAGS) & set(client.get_model_version(name, version).tags):
        client.delete_model_version_tag(name, version, tag)
    client.set_registered_model_alias(name, tracking.CHAMPION, version)
    if current and current != version:
        if rollback_reason:
            client.set_model_version_tag(name, current, "rolled_back_to", version)
            client.set_model_version_tag(name, current, "rolled_back_at", _now())
            client.set_model_version_tag(name, current, "rollback_reason", rollback_reason)
        else:
            client.set_model_version_tag(name, current, "replaced_by", version)
            client.set_model_version_tag(name, current, "replaced_at", _now())
    return current


def _record_alias_run(params: Params, action: str, change: AliasChange) -> str:
    with tracking.start_run(action, f"{action} v{change.version}") as run:
        mlflow.set_tags({"alias_change": action, "version": change.version, "previous_champion": change.previous or ""})
        mlflow.log_params({"action": action, "version": change.version, "previous": change.previous or "",
                           "reason": change.reason[:500], "model": params.tracking.registered_model})
    return run.info.run_id


def promote(params: Params, version: str | int, reason: str) -> AliasChange:
    """Make `version` the champion by hand; the reason and the replaced champion are recorded.

    A version retrain refused, or registered and stopped before judging, is promoted all the same (a human
    decided); the refusal or the missing verdict comes back with the change so the command can show it.

    `version` may be written as every command prints it ("v3") as well as "3".
    """
    version = tracking.version_written(version)
    if not version:
        raise ValueError("promote: --version is empty; give the version number to serve, as printed (3 or v3)")
    if not reason.strip():
        raise ValueError("promote: a reason is required (it is recorded on the model version)")
    tracking.configure(params)
    name = params.tracking.registered_model
    tags = tracking.registered_version(params, version=version).tags
    if _champion_version(params) == str(version):  # moving it again would overwrite why it was promoted
        raise ValueError(f"--version {version}: v{version} is already the champion of model '{name}'; nothing changed")
    change = AliasChange(str(version), None, reason, refused_by_retrain=tags.get("retrain_refused", ""),
                         not_judged=tags.get(NOT_JUDGED, ""))
    change.previous = _move_champion(params, str(version), f"manual: {reason}")
    change.run_id = _record_alias_run(params, "promote", change)
    return change


def rollback(params: Params, reason: str) -> AliasChange:
    """Give `champion` back to the version the current champion replaced (walking back one step each time)."""
    if not reason.strip():
        raise ValueError("rollback: a reason is required (it is recorded on the model version)")
    tracking.configure(params)
    client, name = MlflowClient(), params.tracking.registered_model
    current = _champion_version(params)
    if current is None:
        raise LookupError(f"model '{name}' has no champion to roll back in {shown_url(tracking.tracking_uri(params))}")
    target = client.get_model_version(name, current).tags.get("previous_champion")
    if not target:
        raise LookupError(f"champion v{current} records no previous champion; use `leadscore promote --version N`")
    _move_champion(params, target, f"rollback from v{current}: {reason}", rollback_reason=reason)
    change = AliasChange(target, current, reason)
    change.run_id = _record_alias_run(params, "rollback", change)
    return change


# ----------------------------------------------------------------------------- retrain


@dataclass
class RetrainResult:
    """What a retrain saw, compared and decided."""

    as_of: pd.Timestamp | None
    closed_leads: int
    conversions: int
    feedback: FeedbackMerge
    decision: Decision
    metrics: pd.DataFrame  # rows champion / challenger on the same window
    window: str  # the comparison window in words
    challenger_version: str  # "" on a dry run (nothing registered)
    champion_version: str | None  # champion before the retrain
    promoted: bool
    dry_run: bool
    cold_start: str | None = None  # why the peer was shipped, when it was
    run_id: str = ""
    challenger_run_id: str = ""
    # The export against the settings (dataset.training_warnings, as features and train give them): printed as
    # WARNING lines before the notes, kept in the retrain run and the challenger's run (tracking.log_setting_warnings)
    warnings: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # what to keep in mind reading the comparison (champion_overlap_notes)
    # Leads per label rule (LabelResult.lines), printed as train prints them: a reason code new this quarter
    # ('wrong_region') is named on the unknown-reason line, which `warnings` repeats, not trained as a negative without
    # a word
    label_rules: list[str] = field(default_factory=list)
    unchanged: bool = False  # the champion was trained on the same data and params: nothing was trained
    reused: bool = False  # the challenger is the version an earlier retrain trained on the same data and params
    trained_on: list[str] = field(default_factory=list)  # what each compared model learned from (_trained_on)

    @property
    def verdict(self) -> str:
        """One line: what happened to the champion alias."""
        champion = f"v{self.champion_version}" if self.champion_version else "none"
        if self.unchanged:
            return (f"unchanged: champion {champion} was trained on this same data with these same params and code, "
                    "so a challenger would be a copy of it; nothing trained (--force trains one anyway)")
        new = f"v{self.challenger_version}" if self.challenger_version else "the challenger"
        if self.dry_run:
            return f"dry run: would {'promote' if self.decision.promote else 'refuse'} {new} (champion {champion})"
        if self.promoted:
            return f"promoted {new} to champion (was {champion})"
        return f"refused {new}: champion stays {champion}"

    def _warnings_and_notes(self) -> list[str]:
        """Setting warnings worded as train, evaluate, audit and backtest print them, then the notes."""
        return [f"WARNING {w}" for w in self.warnings] + [f"note: {n}" for n in self.notes]

    def lines(self) -> list[str]:
        out = [f"as of {self.as_of:%Y-%m-%d %H:%M}" if self.as_of is not None else "undated export",
               f"  {self.closed_leads:,} closed leads, {self.conversions:,} conversions; {self.feedback.line()}",
               *(f"  label rule {line}" for line in self.label_rules)]
        if self.unchanged:
            return out + self._warnings_and_notes() + [self.verdict]
        if self.reused:
            out.append(f"challenger v{self.challenger_version} was already trained on this same data with these same params "
                       f"and code (run {self.challenger_run_id}): judged again, nothing trained (--force trains a new one)")
        if self.cold_start:
            out.append(self.cold_start)
        out.append(f"comparison window: {self.window}")
        out += [f"  {line}" for line in self.trained_on]
        out += format_table(self.metrics[[c for c in SHOWN_METRICS if c in self.metrics]]).splitlines()
        out += [f"  {r}" for r in self.decision.reasons]
        out += self._warnings_and_notes()
        out.append(self.verdict)
        if not self.dry_run and not self.promoted and self.challenger_version:  # as train and evaluate say it
            out.append(f"to serve v{self.challenger_version} anyway: leadscore promote --version "
                       f"{self.challenger_version} --reason \"...\"")
        return out


def retrain(
    params: Params,
    as_of: pd.Timestamp | None = None,
    dry_run: bool = False,
    crm: CRMData | None = None,
    feedback: pd.DataFrame | None = None,
    force: bool = False,
) -> RetrainResult:
    """Train a challenger on what had matured by `as_of`, compare it with the champion, maybe promote.

    Args:
        as_of: the retraining date; defaults to the export's latest lead creation or decision. The store's
            decisions dated by then count whenever they were received: a model trained today may learn from what
            the webhook delivered late (only a replay of a past date, `leadscore backtest`, leaves those out).
        dry_run: decide and log, but register nothing and move no alias.
        force: train even when the champion was trained on the same data and params
            (`tracking.training_key`); otherwise such a retrain trains and registers nothing. Nor is a copy trained
            of the `challenger` version when it was (an earlier retrain refused it, or stopped before judging it):
            that version is judged again.
        crm: an already loaded export (default: load params.data).
        feedback: contract outcomes from the feedback store, with received_at when known (default: read
            params.serving.store_url).
    """
    phrase_templates(params.features)  # refuse to ship a model whose factors could not be worded
    tracking.configure(params, create=True)
    crm = load_history(params, crm, None if feedback is None else (feedback, 0))
    as_of = (pd.Timestamp(as_of) if as_of is not None else data_as_of(crm)) if params.data.dated else None
    client, name = MlflowClient(), params.tracking.registered_model
    champion_version = _champion_version(params)
    # By version, not alias: the model compared is the version recorded as the previous champion.
    champion = tracking.load_scorer(params, version=champion_version) if champion_version else None
    _refuse_going_back(champion, champion_version, as_of)
    ts = assemble(params, as_of=as_of, crm=crm)
    refuse_before_first_lead(ts)
    refuse_activities_column(ts, params)
    closed, conversions = closed_counts(ts)
    # A CRM label or column renamed since the last quarter ('Requested Demo') would zero a signal without a word.
    # So would rejections with a reason code the label policy lacks, named on one of the many label rule lines.
    warnings = training_warnings(ts, params)
    if not force and champion is not None and _same_training(champion.info.get("run_id"), ts, params):
        result = RetrainResult(
            as_of=as_of, closed_leads=closed, conversions=conversions, feedback=ts.crm.feedback,
            decision=Decision(promote=False, checks={}, reasons=[]), metrics=pd.DataFrame(), window="",
            challenger_version="", champion_version=champion_version, promoted=False, dry_run=dry_run, unchanged=True,
            warnings=warnings, label_rules=ts.labels.lines())
        with tracking.start_run("retrain", _retrain_run_name(ts, dry_run)) as run:
            result.run_id = run.info.run_id
            _log_retrain_run(result, params)
        return result
    try:
        split = make_split(ts.created_at, pd.Series(ts.y), params.evaluate.split, params.model.seed)
    except ValueError as err:  # too few closed leads even for the cold-start peer: say how few, as of when
        when = f"as of {as_of:%Y-%m-%d}" if as_of is not None else "on the undated export"
        raise ValueError(f"retrain {when}: {closed:,} closed leads with {conversions:,} conversions had matured, "
                         f"too few to split: {err}") from None

    reused = None if force else _challenger_trained_alike(params, ts, champion_version)
    not_judged = {NOT_JUDGED: f"retrain {f'as of {as_of:%Y-%m-%d} ' if as_of is not None else ''}registered it and "
                              "stopped before its gate compared it with the champion"}
    if reused:  # training is seeded: a new fit would be a copy of it
        challenger_version, challenger = reused
        challenger_run_id, why = challenger.info["run_id"], (challenger.info.get("cold_start") or {}).get("why")
    else:
        challenger, why = fit_challenger(ts, split, params)
        if why:
            evaluation = compare({LEADSCORE: challenger}, ts.features, ts.y, split, params, age_days=ts.age_days)
            example = input_example(ts, params, activities=challenger.reads_activities)
            challenger_run_id, challenger_version = _log_cold_start(challenger, evaluation, ts, split, params,
                                                                    warnings, dry_run, example, not_judged)
        else:
            trained = log_trained(challenger, ts, split, params, warnings, register=not dry_run, version_tags=not_judged,
                                  what="retrain challenger")
            challenger_run_id, challenger_version = trained.run_id, trained.version

    window_rows = split.test
    y = ts.y[window_rows]
    probabilities = {}
    notes = []
    trained_on = [_trained_on(CHALLENGER_ROW, challenger_version, challenger)]
    if champion is not None:
        trained_on.insert(0, _trained_on(CHAMPION_ROW, champion_version, champion))
        probabilities[CHAMPION_ROW] = champion.predict_proba(model_features(champion, ts, ts.features.index[window_rows]),
                                                             ts.age_days[window_rows])
        notes += champion_overlap_notes(champion, ts, window_rows)
    window_features = model_features(challenger, ts, ts.features.index[window_rows])
    probabilities[CHALLENGER_ROW] = challenger.predict_proba(window_features, ts.age_days[window_rows])
    notes += unlearned_notes(challenger, window_features, ts.crm)
    metrics = window_metrics(probabilities, y, params)
    decision = decide(metrics, len(ts.leaks), params, cold_start=bool(why),
                      champion_is_cold_start=champion is not None and bool(champion.info.get("cold_start")),
                      trained_as_of=(champion.info.get("as_of") if champion is not None else None,
                                     challenger.info.get("as_of")))

    result = RetrainResult(
        as_of=as_of, closed_leads=closed, conversions=conversions, feedback=ts.crm.feedback, decision=decision,
        metrics=metrics, window=_describe_window(ts, split), challenger_version=challenger_version,
        champion_version=champion_version, promoted=False, dry_run=dry_run, cold_start=why,
        challenger_run_id=challenger_run_id, warnings=warnings, notes=notes, label_rules=ts.labels.lines(),
        reused=reused is not None, trained_on=trained_on,
    )
    with tracking.start_run("retrain", _retrain_run_name(ts, dry_run)) as run:
        result.run_id = run.info.run_id
        if decision.promote and not dry_run:
            _move_champion(params, challenger_version, f"retrain as of {as_of}: {'; '.join(decision.reasons)}")
            result.promoted = True
        if challenger_version and not result.promoted and not dry_run:
            failed = [r for r in decision.reasons if r.startswith("FAILED")]  # what promote shows a human overruling it
            client.set_model_version_tag(name, challenger_version, "retrain_refused", "; ".join(failed or decision.reasons))
        if challenger_version and not dry_run:  # judged: promoted or refused, this verdict replacing an earlier one's
            stale = {NOT_JUDGED, *(["retrain_refused"] if result.promoted else [])}
            for tag in stale & set(client.get_model_version(name, challenger_version).tags):
                client.delete_model_version_tag(name, challenger_version, tag)
        _log_retrain_run(result, params)
    return result


def _same_training(run_id: str | None, ts: TrainingSet, params: Params) -> bool:
    """Whether a model's training run carries the training key this retrain would have."""
    if not run_id:
        return False
    key = tracking.training_key(ts.fingerprint(params), params)
    return key is not None and mlflow.get_run(run_id).data.tags.get(tracking.TRAINING_KEY) == key


def _challenger_trained_alike(params: Params, ts: TrainingSet,
                              champion_version: str | None) -> tuple[str, LeadScorer] | None:
    """The version `challenger` names, loaded, when it is not the champion and was trained on this same data, params
    and code: one an earlier retrain refused, or registered and stopped before judging. Judging it again keeps a
    re-run from registering a copy per run."""
    try:
        found = tracking.registered_version(params, tracking.CHALLENGER)
    except LookupError:
        return None
    version = str(found.version)
    if version == champion_version or not _same_training(found.run_id, ts, params):
        return None
    return version, tracking.load_scorer(params, version=version)


def _refuse_going_back(champion: LeadScorer | None, version: str | None, as_of: pd.Timestamp | None) -> None:
    """Refuse a retrain as of a date before the champion's own training date.

    The challenger would learn from less than the champion did, and be compared on leads the champion
    was fit on; the gate lets a challenger trail by max_auc_drop, so it could put an older model back in
    service.
    """
    trained = champion.info.get("as_of") if champion is not None else None
    if as_of is None or not trained or as_of.normalize() >= pd.Timestamp(trained).normalize():  # same day: hours apart
        return
    raise ValueError(f"retrain as of {as_of:%Y-%m-%d}: champion v{version} was trained on what had matured by "
                     f"{pd.Timestamp(trained):%Y-%m-%d}, later than that; retrain as of that day "
                     "or after, replay past quarters with `leadscore backtest`, or go back to an older version on "
                     "purpose with `leadscore promote --version N`")


def unlearned_notes(challenger: LeadScorer, window_features: pd.DataFrame, crm: CRMData) -> list[str]:
    """A note naming the compared leads' category values the challenger never saw in training, as the export writes
    them: a lead source or campaign new in the last months has its decided leads in the window, the newest, which
    the challenger is tested on and not fit on. Both models score them as their "other" level, and so will
    `leadscore score`, until a later retrain fits on enough of their leads."""
    found = challenger.unseen_values(window_features)
    if not found:
        return []
    named = []
    for column, counts in found.items():
        spelled = crm.export_spellings(column)
        named.append(f"{crm_column(challenger.data, 'leads', column)} "
                     + most_frequent({spelled.get(value, value): int(n) for value, n in counts.items()}))
    return [f"values of the compared leads the challenger never saw in training ({'; '.join(named)}): it fits on "
            "leads older than the window, so it scores them as its \"other\" level, as `leadscore score` will until "
            "a later retrain fits on enough of their decided leads"]


def _trained_on(role: str, version: str | None, scorer: LeadScorer) -> str:
    """What a compared model learned from, in words: the date it was trained as of, its closed leads and its
    training run, so the summary answers which data this quarter's and last quarter's model each saw."""
    info = scorer.info
    name = f"{role} v{version}" if version else f"{role} (not registered)"
    when = f"as of {pd.Timestamp(info['as_of']):%Y-%m-%d}" if info.get("as_of") else "on an undated export"
    rows = f" on {info['training_rows']:,} closed leads" if info.get("training_rows") else ""
    return f"{name} trained {when}{rows}, MLflow run {info.get('run_id') or 'unknown'}"


def _describe_window(ts: TrainingSet, split: Split) -> str:
    rows = split.test
    text = f"{len(rows):,} leads, {int(ts.y[rows].sum()):,} conversions"
    if ts.created_at is not None and len(rows):
        created = ts.created_at.iloc[rows]
        text += f", created {created.min():%Y-%m-%d} .. {created.max():%Y-%m-%d}"
    kind = "out-of-time" if split.kind == "out_of_time" else split.kind_description
    return text + f" (the challenger's {kind} test rows)"


def _log_cold_start(scorer: LeadScorer, evaluation: Evaluation, ts: TrainingSet, split: Split, params: Params,
                    warnings: list[str], dry_run: bool, example: pd.DataFrame,
                    version_tags: dict[str, str]) -> tuple[str, str]:
    """Log and (unless a dry run) register the peer scorer like a trained model, with the setting `warnings` and
    `version_tags` on the version; returns (run id, version)."""
    with tracking.start_run("train", model_run_name("cold start peer", ts, not dry_run)) as run:
        scorer.info.update({"metrics": evaluation.metrics(), "tiers": scorer.tiers.as_dict(), "training_rows": len(ts.y),
                            "as_of": str(ts.as_of) if ts.as_of is not None else None, "run_id": run.info.run_id})
        mlflow.log_params(tracking.mlflow_keys(flatten(params)))
        mlflow.set_tags({"cold_start": "true", **split.tags(), "leakage_warnings": str(len(ts.leaks))})
        tracking.log_training_data(ts.fingerprint(params), params)
        mlflow.log_dict(split.describe(), "data/split.json")
        tracking.log_setting_warnings(warnings)
        mlflow.log_metrics({f"test.{k}": float(v) for k, v in evaluation.metrics().items() if pd.notna(v)})
        model_uri = tracking.log_scorer(scorer, example)
        version = ""
        if not dry_run:
            version, _ = tracking.register(model_uri, params, run.info.run_id, version_tags)
            name_registered_run("cold start peer", version, ts)
        log_card(model_card(scorer, params, evaluation=evaluation, training_set=ts, split=split, version=version),
                 params, version)
    return run.info.run_id, version


def _retrain_run_name(ts: TrainingSet, dry_run: bool) -> str:
    """The run judging a challenger: "retrain 2025-12-31", or "retrain (dry run) 2025-12-31", as its challenger's
    run says it registered nothing; the date is the one the export was taken as of, also when --as-of was not given."""
    return run_name("retrain (dry run)" if dry_run else "retrain", ts)


def _log_retrain_run(result: RetrainResult, params: Params) -> None:
    verdict = ("unchanged" if result.unchanged else "promoted" if result.promoted
               else "dry_run" if result.dry_run else "refused")
    mlflow.set_tags({
        "retrain": "true", "decision": verdict, "would_promote": str(result.decision.promote).lower(),
        "dry_run": str(result.dry_run).lower(), "cold_start": str(bool(result.cold_start)).lower(),
        "challenger_version": result.challenger_version, "challenger_run_id": result.challenger_run_id,
        "challenger_reused": str(result.reused).lower(),
        "champion_version_before": result.champion_version or "",
    })
    mlflow.log_params(tracking.mlflow_keys({f"retrain.{k}": v for k, v in params.retrain.model_dump().items()}
                                           | {"as_of": str(result.as_of)}))
    for row, values in result.metrics.iterrows():
        mlflow.log_metrics({f"{row}.{k}": float(v) for k, v in values.items() if pd.notna(v)})
    mlflow.log_metrics({"closed_leads": result.closed_leads, "conversions": result.conversions,
                        "feedback_applied": result.feedback.applied, "feedback_left_out": result.feedback.left_out,
                        "feedback_decided_before_created": len(result.feedback.before_created),
                        "feedback_decided_later": result.feedback.decided_later})
    mlflow.log_dict({"verdict": result.verdict, "checks": result.decision.checks, "reasons": result.decision.reasons,
                     "notes": result.notes, "window": result.window, "cold_start": result.cold_start},
                    "retrain/decision.json")
    mlflow.log_text("\n".join(result.lines()) + "\n", "retrain/summary.txt")
    tracking.log_setting_warnings(result.warnings)
