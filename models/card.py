"""The model card: what one registered version is, what it was trained on and where it falls short.

A RevOps lead deciding whether to trust a score, or an auditor months later, reads this rather than
an MLflow run: data window, label policy, features, metrics against the peers on the same rows,
calibration, and known limits worked out from the run itself (thin data, undated split, leakage
warnings, a peer that keeps up, ...). `model_card` is pure; `log_card` stores it with the run and
puts its summary on the registry version.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from features.build import feature_catalog
from features.phrases import PRESENCE_LOWERS, AmountDirection, Phrasebook, phrasebook
from models.metrics import calibration_bins
from models.scorer import LeadScorer
from models.splits import Split
from pipelines.config import Params

CARD_ARTIFACT = "model_card.md"
# Below this many test conversions an AUC moves by several points from one sample to the next.
FEW_TEST_CONVERSIONS = 100
# A feature missing on more than this share of training rows mostly says "not filled in".
MOSTLY_MISSING = 0.5
# A peer within this much of the model's test AUC is "keeping up" (the model's edge is not proven).
PEER_MARGIN = 0.01
METRIC_COLUMNS = ["roc_auc", "pr_auc", "log_loss", "brier", "ece", "capture_top10", "capture_top20", "lift_top10"]


def _table(frame: pd.DataFrame, index: bool = True, digits: int = 4) -> str:
    """A DataFrame as a GitHub markdown table (numbers rounded, missing shown as an em dash)."""
    if frame.empty:
        return "_(no rows)_"
    shown = frame.reset_index() if index else frame

    def cell(value) -> str:
        if isinstance(value, (float, np.floating)):
            return "—" if np.isnan(value) else f"{value:.{digits}f}".rstrip("0").rstrip(".") if digits else f"{value:.0f}"
        return "—" if value is None or (not isinstance(value, str) and pd.isna(value)) else str(value).replace("|", "\\|")

    header = "| " + " | ".join(map(str, shown.columns)) + " |"
    rule = "|" + "|".join("---" for _ in shown.columns) + "|"
    rows = ["| " + " | ".join(cell(v) for v in row) + " |" for row in shown.itertuples(index=False)]
    return "\n".join([header, rule, *rows])


def _bullets(lines: Sequence[str]) -> str:
    return "\n".join(f"- {line}" for line in lines)


def _model_kind(scorer: LeadScorer) -> str:
    cold = scorer.info.get("cold_start")
    if cold:
        return (f"cold-start peer **{cold['peer']}** (no learned model: {cold['closed_leads']:,} closed leads, "
                f"{cold['conversions']:,} conversions), Platt-calibrated")
    if scorer.gbm_coef and scorer.logistic_coef:
        share = scorer.info.get("blend", {}).get("lightgbm_weight")
        return f"LightGBM blended with a sign-constrained logistic regression (LightGBM share {share})"
    return "LightGBM with monotone constraints" if scorer.gbm_coef else "sign-constrained logistic regression"


def _seen_at(ages: list[float]) -> str:
    if len(ages) == 1:
        return f"{ages[0]:g} days after creation"
    return f"at one of {', '.join(f'{a:g}' for a in ages)} days after creation that they reached still open"


def _summary(scorer: LeadScorer, params: Params, version: str, name: str) -> list[str]:
    label, features = params.label, params.features
    horizon = f"within {label.horizon_days} days of creation" if label.horizon_days else "at any time"
    when = _seen_at(features.snapshot_days) if params.data.dated else "as exported (undated)"
    info = scorer.info
    lines = [
        f"Model: `{name}`" + (f" version {version}" if version else " (not registered)"),
        f"Predicts: probability that a lead reaches status {', '.join(label.converted_statuses)} {horizon}; "
        f"training rows are seen as they looked {when}",
        f"Output: calibrated probability, score 1–99 (= 100 × p), tier {' / '.join(scorer.tiers.names)} from "
        "thresholds frozen at training, likely rejection reason"
        + ("" if scorer.reasons is not None else " (no reason model in this version)"),
        f"Kind: {_model_kind(scorer)}",
        f"Trained at {info.get('trained_at', '?')} on data as of {info.get('as_of') or 'the export (undated)'}"
        + (f"; MLflow run `{info['run_id']}`" if info.get("run_id") else ""),
    ]
    return lines


def _data_window(training_set, split: Split | None) -> str:
    ts = training_set
    rate = ts.y.mean() if len(ts.y) else float("nan")
    lines = [
        f"Export: {len(ts.crm.leads):,} leads, "
        f"{0 if ts.crm.activities is None else len(ts.crm.activities):,} activities",
        f"Labelled (closed, mature) leads: {len(ts.y):,}, of which {int(ts.y.sum()):,} converted ({rate:.1%})",
    ]
    if ts.created_at is not None and len(ts.created_at):
        lines.append(f"Leads created {ts.created_at.min():%Y-%m-%d} .. {ts.created_at.max():%Y-%m-%d}; "
                     f"outcomes known as of {ts.as_of}")
    if ts.crm.feedback is not None:  # the labels read the export's outcomes with the service's feedback over them
        lines.append(ts.crm.feedback.line())
    out = _bullets(lines)
    if split is not None:
        parts = pd.DataFrame(
            [{"part": name, "rows": len(rows), "conversions": int(ts.y[rows].sum()),
              "from": f"{split.date_ranges[name][0]:%Y-%m-%d}" if name in split.date_ranges else "—",
              "to": f"{split.date_ranges[name][1]:%Y-%m-%d}" if name in split.date_ranges else "—"}
             for name, rows in split.parts().items()]
        )
        out += f"\n\nSplit: **{split.kind_description}**\n\n" + _table(parts, index=False, digits=0)
    counts = pd.DataFrame(list(ts.labels.counts.items()), columns=["label rule", "leads"])
    return out + "\n\nLeads per label rule:\n\n" + _table(counts, index=False, digits=0)


def _label_policy(params: Params) -> str:
    label = params.label
    lines = [
        f"Converted: {', '.join(label.converted_statuses)}"
        + (f" within {label.horizon_days} days" if label.horizon_days else " (no horizon)"),
        f"Rejected: {', '.join(label.rejected_statuses)}; the reason code decides (below); unknown reason → "
        f"{label.unknown_reason}, missing reason → {label.missing_reason}",
        f"Open: censored until the horizon passes, then negative; mature cohorts only: {label.mature_only}",
        f"Soft negatives weigh {label.soft_negative_weight}",
    ]
    actions = {**{f"status {k}": v for k, v in label.status_policy.items()},
               **{f"reason {k}": v for k, v in label.reasons.items()}}
    table = pd.DataFrame(list(actions.items()), columns=["outcome", "action"])
    return _bullets(lines) + "\n\n" + _table(table, index=False)


def _features(params: Params, training_set) -> str:
    catalog = feature_catalog(params.features)
    frame = training_set.features if training_set is not None else None
    rows = []
    for d in catalog:
        missing = float(frame[d.name].isna().mean()) if frame is not None and d.name in frame and len(frame) else np.nan
        rows.append({"feature": d.name, "kind": d.kind, "signal": d.signal,
                     "direction": {1: "never lowers", -1: "never raises", 0: ""}[d.monotone],
                     "missing in training": missing})
    note = ("Point in time: activity features count only events before the snapshot; e-mail is never a raw "
            "feature (only its domain type); category levels seen fewer than 10 times, or never, share one "
            "`__other__` level.")
    return note + "\n\n" + _table(pd.DataFrame(rows), index=False, digits=3)


def _amount_directions(scorer: LeadScorer) -> str:
    """Which way more of each amount moves the score, and up to which amount, as the scorer keeps it
    (``LeadScorer.amount_directions``): what a rep's factor rests on when it says "22 employees (leads that convert
    usually have more)" or "Last activity 40 days ago (leads that convert were usually seen more recently)". '' for a
    scorer pickled before it kept them, or without an amount signal."""
    directions = scorer.amount_directions
    book = phrasebook(scorer.features)
    amounts = list(book.amount_words)
    if directions is None or not amounts:
        return ""
    rows = []
    for signal in amounts:
        direction, feature = directions.get(signal), book.amount_feature(signal)
        if direction is None:
            rows.append({"signal": signal, "more of it": "no clear direction (its factors give the amount alone)",
                         "up to": None, "known from": "the fitted model", "converting leads' median": None})
            continue
        declared = f"features.monotone_{'increasing' if direction.more > 0 else 'decreasing'}"
        rows.append({"signal": signal, "more of it": "raises the score" if direction.more > 0 else "lowers the score",
                     "up to": "any amount" if np.isinf(direction.up_to) else _amount_in_words(book, signal, direction.up_to),
                     "known from": f"declared ({declared})" if feature.monotone else "learned from the fitted model",
                     "converting leads' median": _converting_medians(book, signal, direction)})
    said = list(dict.fromkeys(book.amount_words.values()))
    lowers = " or ".join(f"\"{w.format(phrase='…')}\"" for w in dict.fromkeys(words.lowers for words in said))
    raises = " or ".join(f"\"{w.format(phrase='…')}\"" for w in dict.fromkeys(words.raises for words in said) if w)
    return ("Whether more of each amount raises or lowers the score, and up to which amount, as the fitted model "
            "scores its own leads (or as params declare it), and the amount's median among the converting leads it was "
            "learned on (of events, in each window). A rep's factor rests on it: a lead whose amount lowers its score "
            f"where the model scores more of it that way and falls short of that median reads {lowers}, one at or "
            f"past it \"{PRESENCE_LOWERS.format(phrase='…')}\"; its mirror reads {raises}; past *up to*, or with no "
            "clear direction, the amount reads alone."
            "\n\n" + _table(pd.DataFrame(rows), index=False))


def _converting_medians(book: Phrasebook, signal: str, direction: AmountDirection) -> str:
    """``AmountDirection.converting`` as the card shows it: in a factor's words ("225 employees"), of events per window
    ("7d: 1.5, 30d: 3, 90d: 4"); "not kept" for a model trained before it kept them."""
    if direction.converting is None:
        return "not kept (a model trained before it kept them)"
    stated = book.stated_amounts(signal)
    if len(stated) == 1:
        return _amount_in_words(book, signal, direction.converting.get(stated[0].name, np.nan))
    medians = [f"{direction.converting.get(d.name, np.nan):,.2f}".rstrip("0").rstrip(".") for d in stated]
    return ", ".join(f"{d.window_days}d: {m}" for d, m in zip(stated, medians))


def _amount_in_words(book: Phrasebook, signal: str, amount: float) -> str:
    """`amount` of an amount `signal` as a rep's factor words it ("1,066 employees")."""
    row = pd.DataFrame({feature: [np.nan] for feature in book.signal_of})
    row[book.amount_feature(signal).name] = amount
    column = book.signals.index(signal)
    needed = np.zeros((1, len(book.signals)), dtype=bool)
    needed[0, column] = True
    return book.render(row, needed=needed)[0][0, column]


def _metrics(evaluation) -> str:
    table = evaluation.table[[c for c in METRIC_COLUMNS if c in evaluation.table]].rename_axis("scorer")
    rows, positives = evaluation.table.iloc[0][["rows", "positives"]]
    text = (f"Same {rows:.0f} test leads ({positives:.0f} conversions) for every scorer, each lead counted once "
            "(a soft negative as a non-conversion):\n\n" + _table(table))
    r = evaluation.reasons
    if r:
        text += (f"\n\nLikely rejection reason, on the {r['reason_rows']:.0f} rejected test leads with a reason the model "
                 f"knows: named first for {r['reason_top1']:.1%} of them, against {r['reason_top1_constant_guess']:.1%} "
                 f"for always naming their most common reason (log loss {r['reason_log_loss']:.3f}).")
    return text


def _calibration(scorer: LeadScorer, evaluation, params: Params) -> str:
    from pipelines.evaluate import LEADSCORE

    where = "its own split (never on training or test rows)"
    shifted_on = "the calibration leads at every age they were open"
    if scorer.info.get("calibration", {}).get("fit_on") == "out_of_fold margins":
        where = (f"out-of-fold margins of the {scorer.info['calibration']['rows']:,} non-test rows "
                 f"({scorer.info['cv']['folds']}-fold cross-validation; never on test rows)")
        shifted_on = "every non-test lead at every age it was open, scored by the fold models that never saw it"
    weighted = ", each row weighted by the snapshot ages its lead reached open" if params.data.dated else ""
    lines = [f"Calibrator: {scorer.calibrator.method}, fit on {where}, on real conversions (a soft negative "
             f"counts as a whole non-conversion){weighted}"]
    if scorer.calibrator.age_shift:
        shifts = ", ".join(f"{age:g} d {shift:+.2f}" for age, shift in zip(scorer.calibrator.age_grid, scorer.calibrator.age_shift))
        lines.append(f"Shifted by lead age (log-odds per snapshot age, fit on {shifted_on}, so a new lead is promised "
                     f"what new leads convert at): {shifts}")
    body = ""
    if evaluation is not None and LEADSCORE in evaluation.test_probabilities:
        p = evaluation.test_probabilities[LEADSCORE]
        lines.append(f"ECE on test: {evaluation.metrics()['ece']:.4f}")
        bins = calibration_bins(evaluation.y_test, p, bins=params.evaluate.ece_bins)
        bins = bins.rename(columns={"mean_p": "predicted", "observed": "observed"})[["predicted", "observed", "rows"]]
        body = "\n\nPredicted vs observed conversion on test (equal-count bins):\n\n" + _table(bins, index=False, digits=3)
        if not evaluation.tiers.empty:
            tiers = evaluation.tiers.assign(min_probability=pd.Series(scorer.tiers.as_dict()))
            body += "\n\nTiers (threshold = minimum calibrated p; conversion on test):\n\n" + _table(tiers, digits=3)
        if not evaluation.by_age.empty:
            from pipelines.evaluate import while_open_line

            body += ("\n\nBy lead age (test leads still open at each age, scored as of then; the CRM re-scores "
                     "open leads):\n\n" + _table(evaluation.by_age, index=False, digits=3))
            if evaluation.while_open:
                body += "\n\n" + while_open_line(evaluation.while_open)
    return _bullets(lines) + body


def known_limits(scorer: LeadScorer, params: Params, evaluation=None, training_set=None, split: Split | None = None) -> list[str]:
    """Limits worked out from this run, then the ones every version shares."""
    from pipelines.evaluate import LEADSCORE

    limits = []
    cold = scorer.info.get("cold_start")
    if cold:
        limits.append(f"{cold['why']}. The peer ranks by fixed rules/frequencies and will not learn interactions; "
                      "retrain once enough outcomes have closed.")
    if split is not None and split.kind != "out_of_time":
        why = f"Dated export split at random ({split.stratified_because})" if split.stratified_because else "Undated export"
        limits.append(f"{why}: figures come from a random (stratified) hold-out, not from newer leads, so "
                      "they overstate how the model does on next quarter's leads.")
    if evaluation is not None:
        metrics = evaluation.metrics()
        if metrics["positives"] < FEW_TEST_CONVERSIONS:
            limits.append(f"Only {metrics['positives']:.0f} conversions in the test rows: AUC and capture figures "
                          "are uncertain by several points.")
        if metrics["ece"] > params.retrain.max_ece:
            limits.append(f"Calibration error on test is {metrics['ece']:.3f} (gate {params.retrain.max_ece}): read "
                          "probabilities as a ranking more than as exact odds.")
        for age in evaluation.by_age.itertuples(index=False):
            if abs(age.predicted - age.observed) > params.retrain.max_ece:
                how = "over" if age.predicted > age.observed else "under"
                limits.append(f"Leads still open {age.age_days:g} days after creation are {how}-scored: predicted "
                              f"{age.predicted:.1%} against {age.observed:.1%} observed over {age.leads:,} test leads.")
        for peer, row in evaluation.table.drop(index=LEADSCORE, errors="ignore").iterrows():
            if row["roc_auc"] >= metrics["roc_auc"] - PEER_MARGIN:
                how = "beats" if row["roc_auc"] > metrics["roc_auc"] else f"comes within {PEER_MARGIN} AUC of"
                limits.append(f"Peer {peer} {how} the model on test ({row['roc_auc']:.4f} vs "
                              f"{metrics['roc_auc']:.4f}): the model's edge over it is not proven.")
    if training_set is not None:
        limits += [f"Leakage warning: {leak.message}" for leak in training_set.leaks]
        missing = training_set.features.isna().mean() if len(training_set.features) else pd.Series(dtype=float)
        mostly = sorted(missing[missing > MOSTLY_MISSING].index)
        if mostly:
            limits.append(f"Mostly missing in training (>{MOSTLY_MISSING:.0%}): {', '.join(mostly)}; their effect "
                          "rests on few rows.")
    violations = scorer.info.get("monotone_violations")
    if violations:
        where = scorer.info.get("monotone_checked_on", "validation rows")
        limits.append(f"Declared directions broken on {where}: {', '.join(violations)}.")
    if params.data.dated:
        oldest = max(params.features.snapshot_days)
        limits.append(f"Training leads are seen at most {oldest:g} days after creation: a lead still open later is "
                      "scored from what the model learned of leads at that age.")
    limits.append("Lead fields (industry, employees, job title, e-mail, phone, ...) are read as the export holds them, not as "
                  "of each training snapshot: only activities and outcomes carry dates. A field sales fills in or corrects "
                  "while working a lead (a job title after a call, a company size from enrichment) is seen in training "
                  "before scoring would see it; the leakage check (`features.leakage_auc`) catches only a field that alone "
                  "nearly predicts the outcome, so drop such fields (`data.drop_columns`) or export them as first entered.")
    limits.append("Sources, campaigns and other category values that appeared after training are scored as "
                  "`__other__` (`leadscore score` names them with their leads: a sign a retrain is due); a shift in a "
                  "source's quality shows up only after retraining (see `leadscore monitor`).")
    limits.append("Labels are sales decisions: a lead rejected for a reason the policy marks negative teaches the "
                  "model that such leads do not convert, whatever the rep's capacity was that week.")
    return limits


def model_card(
    scorer: LeadScorer,
    params: Params,
    *,
    evaluation=None,
    training_set=None,
    split: Split | None = None,
    version: str = "",
) -> str:
    """The markdown card of one trained scorer.

    Args:
        scorer: the trained LeadScorer (its `info` carries trained_at, as_of, run_id, blend, ...).
        params: the params it was trained with (label policy, features, gate thresholds).
        evaluation: `pipelines.evaluate.Evaluation` on the test rows (metrics vs peers, calibration).
        training_set: `pipelines.dataset.TrainingSet` it was trained on (data window, label counts).
        split: the split of that set (part sizes and dates).
        version: registry version, "" when not registered.
    """
    name = params.tracking.registered_model
    sections = [
        f"# Model card: {name}" + (f" v{version}" if version else ""),
        "## Summary\n\n" + _bullets(_summary(scorer, params, version, name)),
    ]
    if training_set is not None:
        sections.append("## Data window\n\n" + _data_window(training_set, split))
    sections.append("## Label policy\n\n" + _label_policy(params))
    sections.append("## Features\n\n" + _features(params, training_set))
    amounts = _amount_directions(scorer)
    if amounts:
        sections.append("## Which way more of an amount moves the score\n\n" + amounts)
    if evaluation is not None:
        sections.append("## Metrics vs peers\n\n" + _metrics(evaluation))
    sections.append("## Calibration\n\n" + _calibration(scorer, evaluation, params))
    sections.append("## Known limits\n\n" + _bullets(known_limits(scorer, params, evaluation, training_set, split)))
    return "\n\n".join(sections) + "\n"


def log_card(card: str, params: Params, version: str = "") -> None:
    """Store the card with the active MLflow run; a registered version also gets its summary as description.

    The registry's description field is short (5,000 characters), so it holds the summary and the path
    of the full card in the run.
    """
    import mlflow
    from mlflow.tracking import MlflowClient

    mlflow.log_text(card, CARD_ARTIFACT)
    if version:
        summary = card.split("## Data window")[0].split("## Label policy")[0].strip()
        run = mlflow.active_run()
        link = f"\n\nFull model card: `runs:/{run.info.run_id}/{CARD_ARTIFACT}`" if run else ""
        MlflowClient().update_model_version(params.tracking.registered_model, version, description=(summary + link)[:5000])
