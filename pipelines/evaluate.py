"""Evaluate leadscore against its peers on the same split, same rows, same run.

Peers: (a) the manual MQL points score from params, (b) Odoo CRM's naive-Bayes lead scoring,
(c) a regularised logistic regression. Each learns from every row of the split that leadscore learns
from (train, validation and calibration) and is scored on the untouched test rows.
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from sklearn.metrics import log_loss

from models.metrics import evaluate_scores, tier_table
from models.peers import LogisticPeer, OdooNaiveBayes, PointsScorer
from models.plots import calibration_plot, gain_plot, importance_plot, pr_plot, roc_plot, unused
from models.scorer import LeadScorer
from models.splits import Split, stratified_folds
from models.train import cross_validates, logistic_cv
from pipelines.config import Params, flatten
from pipelines.dataset import TrainingSet, open_at_ages

LEADSCORE = "leadscore"
WHILE_OPEN_METRICS = ("rows", "roc_auc", "log_loss", "ece")


@dataclass
class Evaluation:
    table: pd.DataFrame  # one row per scorer, one column per metric
    tiers: pd.DataFrame  # leadscore's conversion per tier on the test rows
    test_probabilities: dict[str, np.ndarray] = field(default_factory=dict)
    y_test: np.ndarray = field(default_factory=lambda: np.zeros(0))
    reasons: dict[str, float] = field(default_factory=dict)  # leadscore's reason model (evaluate_reasons)
    by_age: pd.DataFrame = field(default_factory=pd.DataFrame)  # leadscore's calibration by age, when dated
    # leadscore over every (test lead, age it was still open) pair (evaluate_scores keys), when dated
    while_open: dict[str, float] = field(default_factory=dict)
    versions: dict[str, str] = field(default_factory=dict)  # registry version per registered scorer (evaluate_registered)
    notes: list[str] = field(default_factory=list)  # what to keep in mind reading the table (champion_overlap_notes)
    # The export against the feature settings (dataset.setting_warnings): an activity file of its header only judges
    # every model as if no lead were ever active
    warnings: list[str] = field(default_factory=list)
    # The rows' TrainingSet.fingerprint (evaluate_registered): labelled rows, positives, what the feedback store changed
    data: dict = field(default_factory=dict)
    # What the test rows are (Split.test_caption), said in every plot's title: "test leads (n=1,843, created ...)"
    computed_on: str = ""

    def metrics(self, scorer: str = LEADSCORE) -> dict[str, float]:
        return {k: float(v) for k, v in self.table.loc[scorer].items()}

    def by_age_metrics(self, prefix: str) -> dict[str, float]:
        """Predicted minus observed conversion per lead age, and the open-lead pairs' AUC, log loss
        and ECE, as MLflow metrics under ``prefix``."""
        gaps = {f"{prefix}.calibration_gap.age_{row.age_days:g}d": row.predicted - row.observed
                for row in self.by_age.itertuples(index=False)}
        pooled = {f"{prefix}.while_open.{k}": self.while_open[k] for k in WHILE_OPEN_METRICS if k in self.while_open}
        return gaps | pooled

    def write(self, out_dir: Path, scorer=None, ece_bins: int = 10) -> list[Path]:
        """metrics.json, the comparison and tier tables, and the ROC/PR/calibration/gain plots."""
        out_dir.mkdir(parents=True, exist_ok=True)
        paths = []
        metrics = {name: self.metrics(name) for name in self.table.index}
        if self.reasons:
            metrics["likely_rejection_reason"] = self.reasons
        (out_dir / "metrics.json").write_text(json.dumps(metrics, indent=2, default=float))
        self.table.to_csv(out_dir / "comparison.csv")
        self.tiers.to_csv(out_dir / "tiers.csv")  # indexed by tier name
        paths += [out_dir / "metrics.json", out_dir / "comparison.csv", out_dir / "tiers.csv"]
        if not self.by_age.empty:
            self.by_age.to_csv(out_dir / "calibration_by_age.csv", index=False)
            paths.append(out_dir / "calibration_by_age.csv")
        for name, fig in self.plots(scorer, ece_bins).items():
            fig.savefig(out_dir / name, dpi=110, bbox_inches="tight")
            paths.append(out_dir / name)
        return paths

    def plots(self, scorer=None, ece_bins: int = 10) -> dict[str, Figure]:
        """The ROC/PR/calibration/gain plots by file name, each titled with the test rows it was computed on
        (`computed_on`), and with `scorer`'s booster its LightGBM gain per feature, titled with the rows it was trained
        on (`Split.training_caption`, kept in its info; a model trained before says nothing of them), the features it
        never splits on said under the bars, not drawn as empty ones (`models.plots.unused`)."""
        curves = {name: (self.y_test, p) for name, p in self.test_probabilities.items()}
        on = self.computed_on
        plots = {"roc.png": roc_plot(curves, on), "pr.png": pr_plot(curves, on),
                 "calibration.png": calibration_plot(curves, bins=ece_bins, computed_on=on), "gain.png": gain_plot(curves, on)}
        if scorer is not None and scorer.booster is not None:
            names, gain = scorer.booster.feature_name(), scorer.booster.feature_importance(importance_type="gain")
            left_out = unused(names, gain)
            used = [(name, value) for name, value in zip(names, gain) if name not in left_out]
            plots["feature_importance.png"] = importance_plot(
                [n for n, _ in used], [v for _, v in used], "Feature importance (LightGBM gain)", left_out, noun="feature",
                computed_on=scorer.info.get("trained_on", ""))
        return plots


def fit_peers(features: pd.DataFrame, y: np.ndarray, split: Split, params: Params) -> dict:
    """The three peers, fit on every row leadscore learns from, each lead counting once.

    Those are the train, validation and calibration rows, never the test: leadscore fits on the
    training window, tunes and blends on the validation window and calibrates on the calibration
    window (or, when it cross-validates, models.train.cross_validates, uses all three pooled). The
    points map and Odoo's frequencies are fit on all of them. The logistic peer chooses its C as
    leadscore's own choices are made (holdout windows: fit on the training window, judged on the
    validation window; cross-validated: on the same folds) and is then refit with that C on all of
    them, so no scorer sees more data than another.

    Not the label policy's weights: a peer's probability is its fit to the rows it learns from, and
    with a soft negative counted as half a lead it promises the weighted rate, not the conversions the
    table counts (leadscore's calibrator learns real conversions for the same reason). On a 6,000-lead
    synthetic CRM (seed 7) the logistic peer's test ECE was 0.050 with those weights, 0.030 counting
    leads; and Odoo counts leads.
    """
    ev, seed = params.evaluate, params.model.seed
    fit = np.sort(np.concatenate([split.train, split.validation, split.calibration]))
    X_fit, y_fit = features.iloc[fit], y[fit]
    peers = {}
    if ev.points_rules:
        peers["points_mql"] = PointsScorer(ev.points_rules).fit(X_fit, y_fit)
    if ev.naive_bayes_fields:
        peers["odoo_naive_bayes"] = OdooNaiveBayes(ev.naive_bayes_fields).fit(X_fit, y_fit)
    if cross_validates(split, params):
        folds = stratified_folds(y_fit, params.model.cv_folds, seed)
        peers["logistic_regression"] = logistic_cv(X_fit, y_fit, np.ones(len(fit)), folds, seed, directions={},
                                                   curves=False)[0]
    else:
        tr, va = split.train, split.validation
        c = LogisticPeer(seed=seed).fit(features.iloc[tr], y[tr], X_val=features.iloc[va], y_val=y[va]).c_
        peers["logistic_regression"] = LogisticPeer(seed=seed, c_grid=[c]).fit(X_fit, y_fit)
    return peers


def compare(
    scorers: dict[str, object],
    features: pd.DataFrame,
    y: np.ndarray,
    split: Split,
    params: Params,
    reasons: pd.Series | None = None,
    age_days: np.ndarray | None = None,
) -> Evaluation:
    """Metrics of every scorer (anything with predict_proba) on the split's test rows.

    With `reasons` (the rejection reason code per row), leadscore's reason model is scored too.
    `age_days` (per row, ``TrainingSet.age_days``) is what a LeadScorer's calibration reads.
    """
    ev = params.evaluate
    X_te, y_te = features.iloc[split.test], y[split.test]
    age_te = None if age_days is None else age_days[split.test]
    probabilities = {name: np.asarray(s.predict_proba(X_te, age_te) if isinstance(s, LeadScorer) else s.predict_proba(X_te))
                     for name, s in scorers.items()}
    rows = {name: evaluate_scores(y_te, p, ece_bins=ev.ece_bins, top_fractions=ev.top_fractions)
            for name, p in probabilities.items()}
    table = pd.DataFrame.from_dict(rows, orient="index")
    main = next((s for s in scorers.values() if isinstance(s, LeadScorer)), None)
    tiers, reason_metrics = pd.DataFrame(), {}
    if main is not None:
        name = next(n for n, s in scorers.items() if s is main)
        tiers = tier_table(y_te, main.tiers.assign(probabilities[name]), main.tiers.names)
        if reasons is not None:
            reason_metrics = evaluate_reasons(main, X_te, reasons.iloc[split.test])
    return Evaluation(table=table, tiers=tiers, test_probabilities=probabilities, y_test=y_te, reasons=reason_metrics,
                      computed_on=split.test_caption())


def evaluate_reasons(scorer: LeadScorer, features: pd.DataFrame, reasons: pd.Series) -> dict[str, float]:
    """How well the likely rejection reason names what sales actually said, on held-out leads.

    Over the rejected leads whose reason the model knows: top-1 accuracy; the best constant guess
    (always the most common of these leads' own reasons, a baseline that even knows their mix); and
    multiclass log loss. Empty without a reason model or such leads.
    """
    if scorer.reasons is None:
        return {}
    known = reasons.isin(scorer.reasons.classes).to_numpy()
    if not known.any():
        return {}
    truth = reasons[known].to_numpy()
    proba = scorer.reasons.predict_proba(scorer.encoder.matrix(features[known]))
    truth_code = pd.Index(scorer.reasons.classes).get_indexer(truth)
    return {
        "reason_top1": float(np.mean(proba.argmax(axis=1) == truth_code)),
        "reason_top1_constant_guess": float(pd.Series(truth).value_counts(normalize=True).iloc[0]),
        "reason_log_loss": float(log_loss(truth_code, proba, labels=range(len(scorer.reasons.classes)))),
        "reason_rows": float(known.sum()),
    }


def evaluate_while_open(
    scorer: LeadScorer, ts: TrainingSet, rows: np.ndarray, ages: list[float], ece_bins: int
) -> tuple[pd.DataFrame, dict[str, float]]:
    """How ``scorer`` does on the ``rows`` leads at each age they were still open.

    The CRM scores a lead again whenever it changes, so the probability must hold at every age a
    lead is scored at, not on average over the training snapshots. Per age (days after creation):
    the leads of ``rows`` still undecided then and created at least that long before the export's
    'now', scored with features as of that moment. Pooled, these (lead, age) pairs are what a CRM's
    queue of open leads holds; the test rows (each lead at its one snapshot age) crowd young ages
    with quick rejections instead.

    Returns:
        One row per age: ``age_days``, ``leads``, ``observed`` and ``predicted`` conversion rates;
        and ``evaluate_scores`` over all the pairs. Both empty for undated exports.
    """
    columns = ["age_days", "leads", "observed", "predicted"]
    table, outcomes, probabilities = [], [], []
    for at_age in open_at_ages(ts, rows, scorer.features, ages):
        p = scorer.predict_proba(at_age.features, np.full(len(at_age.y), at_age.age_days))
        table.append((at_age.age_days, len(at_age.y), float(at_age.y.mean()), float(p.mean())))
        outcomes.append(at_age.y)
        probabilities.append(p)
    if not table:
        return pd.DataFrame(columns=columns), {}
    pooled = evaluate_scores(np.concatenate(outcomes), np.concatenate(probabilities), ece_bins=ece_bins,
                             top_fractions=[])
    return pd.DataFrame(table, columns=columns), pooled


def while_open_line(metrics: dict[str, float]) -> str:
    """``evaluate_while_open``'s pooled figures in one sentence (the CLI and the model card)."""
    return (f"Over every (test lead, age it was still open) pair, what a CRM's queue of open leads holds "
            f"({metrics['rows']:,.0f} pairs): AUC {metrics['roc_auc']:.3f}, log loss {metrics['log_loss']:.3f}, "
            f"ECE {metrics['ece']:.3f}.")


def format_table(table: pd.DataFrame) -> str:
    """The comparison table as printed by train/evaluate: counts whole, metrics to four places."""
    counts = {column: "{:,.0f}".format for column in ("rows", "positives") if column in table}
    return table.to_string(float_format=lambda v: f"{v:.4f}", formatters=counts)


def champion_overlap_notes(champion: LeadScorer, ts: TrainingSet, rows: np.ndarray) -> list[str]:
    """A warning when the champion was fit on leads it is compared on (retrain's window, evaluate's test
    rows): its figures are then optimistic, and a comparison favours it.

    A champion trained on a stratified split may have seen leads of any date.
    """
    if ts.created_at is None:
        return ["undated export: the champion may have been fit on some of the compared leads, so its figures can "
                "be optimistic (which favours it over the challenger)"]
    split = training_split(champion)
    if split is None:
        return ["the champion's training split is not on record: cannot tell whether it was fit on the compared leads"]
    if split["kind"] != "out_of_time":
        kind = f"{split['kind']} ({split['stratified_because']})" if split.get("stratified_because") else split["kind"]
        return [f"the champion was trained on a {kind} split: it may have been fit on some of the compared "
                "leads, so its figures can be optimistic (which favours it over the challenger)"]
    seen, before = seen_in_training(split, ts, rows)
    if not seen:
        return []
    return [f"the champion was fit on {seen:,} of the {len(rows):,} compared leads (created before "
            f"{before:%Y-%m-%d}): its figures are optimistic, which favours it over the challenger"]


def evaluated_overlap_notes(name: str, scorer: LeadScorer, ts: TrainingSet, rows: np.ndarray) -> list[str]:
    """A warning when the evaluated model was fit on some of its test rows: an `--as-of` (or an export) older
    than the one it was trained on puts its own training leads in the test part of evaluate's split, and the
    table would show them as unseen. Dated exports and out-of-time training splits only: a model's split of
    the export it was trained on is the one evaluate makes (same seed), and no date tells its training leads
    apart otherwise.
    """
    split = training_split(scorer) if ts.created_at is not None else None
    if split is None or split["kind"] != "out_of_time":
        return []
    seen, before = seen_in_training(split, ts, rows)
    if not seen:
        return []
    return [f"{name} was fit on {seen:,} of the {len(rows):,} test leads (created before {before:%Y-%m-%d}): "
            "its figures are optimistic, while the peers never saw them"]


def training_split(scorer: LeadScorer) -> dict | None:
    """``Split.describe()`` of the split a registered model was trained on (its run's `data/split.json`);
    None when it is not on record."""
    import mlflow

    try:
        return mlflow.artifacts.load_dict(f"runs:/{scorer.info['run_id']}/data/split.json")
    except (KeyError, OSError, mlflow.exceptions.MlflowException):
        return None


def seen_in_training(split: dict, ts: TrainingSet, rows: np.ndarray) -> tuple[int, pd.Timestamp]:
    """How many of the ``rows`` leads a model trained on the out-of-time ``split`` was fit on, and the date its
    test part began: it fit, tuned and calibrated on the leads created before then."""
    before = pd.Timestamp(split["test_from"])
    return int((ts.created_at.iloc[rows] < before).sum()), before


def evaluate_registered(params: Params, alias: str = "challenger", as_of=None) -> tuple[Evaluation, str]:
    """`leadscore evaluate`: a registered model vs the champion and the peers on today's export with the
    feedback store laid over it (`dataset.assemble`), the labels retrain gates on.

    The split is the training split definition (same seed, same out-of-time order), so on the export
    a model was trained on its test rows are the ones it never saw. Logged as an MLflow run named
    "evaluate challenger v3 2025-12-31", tagged `evaluate`, with the flattened params and the split as a
    training run has them; returns the evaluation and the run id.
    """
    import mlflow

    from models.splits import make_split
    from pipelines import tracking
    from pipelines.dataset import assemble, refuse_before_first_lead, setting_warnings
    from pipelines.train import run_name

    tracking.configure(params)
    scorers = {alias: tracking.load_scorer(params, alias)}
    own = scorers[alias].info["registry"]["version"]
    try:
        champion = str(tracking.registered_version(params, tracking.CHAMPION).version)
    except LookupError:
        champion = None
    if champion not in (None, own):  # the first model is challenger and champion at once: nothing to compare
        scorers[tracking.CHAMPION] = tracking.load_scorer(params, version=champion)
    ts = assemble(params, as_of=as_of)
    refuse_before_first_lead(ts)
    split = make_split(ts.created_at, pd.Series(ts.y), params.evaluate.split, params.model.seed)
    peers = fit_peers(ts.features, ts.y, split, params)
    evaluation = compare({**scorers, **peers}, ts.features, ts.y, split, params, ts.reasons, ts.age_days)
    evaluation.by_age, evaluation.while_open = evaluate_while_open(
        scorers[alias], ts, split.test, params.features.snapshot_days, params.evaluate.ece_bins)
    versions = {name: str(s.info["registry"]["version"]) for name, s in scorers.items()}
    evaluation.versions = versions
    evaluation.data = ts.fingerprint(params)
    evaluation.warnings = setting_warnings(ts, params, judging=True)
    evaluation.notes = evaluated_overlap_notes(f"{alias} v{own}", scorers[alias], ts, split.test)
    if champion not in (None, own):
        evaluation.notes += champion_overlap_notes(scorers[tracking.CHAMPION], ts, split.test)
    elif champion == own and alias != tracking.CHAMPION:
        evaluation.notes.append(f"{alias} v{own} is also the champion: there is no other version to compare it with")
    tags = {**{f"version.{k}": v for k, v in versions.items()}, **split.tags()}
    with tracking.start_run("evaluate", run_name(f"evaluate {alias} v{own}", ts), tags) as run:
        mlflow.log_params(tracking.mlflow_keys(flatten(params)))  # what it read the export and judged with
        mlflow.log_dict(evaluation.data, "data/fingerprint.json")
        mlflow.log_dict(split.describe(), "data/split.json")
        tracking.log_setting_warnings(evaluation.warnings)
        if evaluation.notes:
            mlflow.log_dict({"notes": evaluation.notes}, "evaluation/notes.json")
        for name in evaluation.table.index:
            mlflow.log_metrics({f"{name}.{k}": float(v) for k, v in evaluation.metrics(name).items()})
        mlflow.log_metrics({f"{alias}.{k}": v for k, v in evaluation.reasons.items()})
        mlflow.log_metrics(evaluation.by_age_metrics(alias))
        with tempfile.TemporaryDirectory() as tmp:
            evaluation.write(Path(tmp), scorers[alias], params.evaluate.ece_bins)
            mlflow.log_artifacts(tmp, "evaluation")
    return evaluation, run.info.run_id
