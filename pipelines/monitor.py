"""`leadscore monitor`: has the world drifted from the champion's training window, and does sales act on it?

Three questions, thresholds in params.monitor:

* Drift: population stability index (PSI) of every feature and of the score between the champion's
  training window (rebuilt from the export with the one feature function, as the CRM's queue of open leads
  held it at the ages recent leads were scored at) and the recently scored leads (score log: those whose first
  score falls in the window; each one's features rebuilt as the model saw them: as of the request's as_of, else
  of the moment it was scored).
* Calibration: the probability each lead was shown against the outcome that has since arrived
  (export + feedback under the label policy), naming the model versions that showed them (the champion monitored
  may have scored none of them yet: promoted since), overall, for the latest matured cohort on its own (a recent
  drop the whole window would dilute) and per segment (feature value) in both — a source whose quality dropped
  shows up here before any covariate moves.
* Hand-off: time from scoring to the first sales disposition against the SLA, share of top-tier leads
  worked, share of rejections carrying a reason code, and the reasons mix by tier.

The pieces are pure functions on frames; `monitor` does the I/O (export, store, registry, MLflow, HTML).
"""

from __future__ import annotations

import base64
import html
import io
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from features.build import (
    DAY_NS,
    NAT,
    FeatureDef,
    decision_times,
    feature_catalog,
    lead_age_days,
    older_than_horizon,
    to_epoch_ns,
)
from features.labels import build_labels, outcome_group
from models.encoding import most_frequent
from models.metrics import expected_calibration_error
from pipelines.config import LabelParams, MonitorParams, Params
from pipelines.contract import CLOCK_SLACK

# A share below this is treated as this in the PSI sum, so a bin empty on one side costs a large but
# finite amount (the usual convention; log(0) would make any new category an infinite shift).
PSI_FLOOR = 1e-4
# Category levels holding less than this share of the training window share one "other" bin: PSI
# over dozens of tiny bins measures sampling noise, not drift.
PSI_MIN_LEVEL_SHARE = 0.01
MISSING_BIN, OTHER_BIN = "(missing)", "(other)"
# A calibration gap (overall, latest matured cohort or segment) is flagged only when it also lies this
# many binomial standard errors from zero, i.e. the predicted rate is outside the observed rate's
# Wilson (score) interval: a bare tolerance flags 100 leads at 30 % about one run in four by chance,
# and a few dozen segments some every run. At 3, a calibrated model is flagged in under 3 runs in 1,000.
CALIBRATION_Z = 3.0
STATUS_ORDER = {"ok": 0, "n/a": 0, "warn": 1, "alert": 2}
RETRAIN = "retrain (`leadscore retrain`)"
# What RevOps does about each kind of finding (`MonitorReport.findings`): a number alone leaves them to guess.
TO_DO = {
    "drift": "ask marketing whether the lead mix changed on purpose (a new campaign, source or form): if so, watch "
             f"calibration and {RETRAIN} once its outcomes have matured; if not, check the CRM fields and params "
             "data.mapping / data.value_maps behind these features",
    "calibration": f"{RETRAIN} now rather than at the quarter; until the new champion serves, read scores as a "
                   "ranking of leads, not as their chance",
    # A calibration alert on scores a champion promoted since made none of (`MonitorReport.findings`): a retrain
    # would replace the model that did not make them.
    "replaced": "the model that made these scores was replaced by {champion}, trained since: judge {champion} on its "
                "own scores once their outcomes mature (the next monitor runs) before retraining again; meanwhile read "
                "the older scores still in the CRM as a ranking of leads, not as their chance",
    "latest cohort": "find what changed for the leads scored then (a competitor, pricing, routing, a lead source), "
                     f"then {RETRAIN} rather than wait for the quarter",
    "segment": f"check this segment's lead quality, tracking and routing with its owner; a {RETRAIN} relearns it",
    "speed": "check CRM routing (assignment rules, queue owners, working hours) and that reps record a disposition "
             "when they make it",
    "top tier": "check that top-tier leads are assigned to a rep and shown first in the CRM queue",
    "reason codes": "make a reason code required on rejection in the CRM (one of params label.reasons): a rejection "
                    "without one counts as label.missing_reason, and the reasons by tier cannot show why leads fail",
}
NOT_JUDGED = "not judged"  # the report's status when every check was n/a: "ok" would claim a health never checked


# ----------------------------------------------------------------------------- drift


def population_stability(reference: pd.Series, recent: pd.Series, categorical: bool, bins: int = 10) -> float:
    """PSI = sum over bins of (recent share - reference share) * ln(recent share / reference share).

    Numeric values are cut at the reference's quantiles, a value on which several quantiles fall
    being a bin of its own (zero and non-zero stay apart in a count most leads have at 0);
    categories keep the reference's frequent levels, the rest (and levels never seen) go to one
    "other" bin; missing values are a bin of their own in both cases (a form field that stops being
    filled in is drift too). NaN when either side has no rows.
    """
    if not len(reference) or not len(recent):
        return float("nan")
    if categorical:
        ref_values, new_values = reference.astype("str"), recent.astype("str")
        shares = ref_values.value_counts(normalize=True)
        kept = set(shares.index[shares >= PSI_MIN_LEVEL_SHARE])

        def bucket(values: pd.Series) -> pd.Series:
            return values.where(values.isin(kept), OTHER_BIN).where(values.notna(), MISSING_BIN)

        ref_bins, new_bins = bucket(ref_values), bucket(new_values)
    else:
        ref_numbers = pd.to_numeric(reference, errors="coerce").to_numpy(dtype="float64")
        new_numbers = pd.to_numeric(recent, errors="coerce").to_numpy(dtype="float64")
        known = ref_numbers[~np.isnan(ref_numbers)]
        quantiles = np.quantile(known, np.linspace(0, 1, bins + 1)[1:-1]) if len(known) else np.array([])
        edges, repeats = np.unique(quantiles, return_counts=True)
        # A value holding more than one bin's share is a bin of its own: demo requests are 0 for over
        # 90 % of leads, every edge is 0, and cutting there alone would put every lead in one bin.
        masses = edges[repeats > 1]

        def bucket(values: np.ndarray) -> pd.Series:
            codes = np.searchsorted(edges, values, side="right").astype(str)
            codes = np.where(np.isin(values, masses), np.char.add("=", values.astype(str)), codes)
            return pd.Series(np.where(np.isnan(values), MISSING_BIN, codes))

        ref_bins, new_bins = bucket(ref_numbers), bucket(new_numbers)
    ref_share = ref_bins.value_counts(normalize=True)
    new_share = new_bins.value_counts(normalize=True)
    levels = ref_share.index.union(new_share.index)
    a = np.maximum(ref_share.reindex(levels, fill_value=0).to_numpy(), PSI_FLOOR)
    b = np.maximum(new_share.reindex(levels, fill_value=0).to_numpy(), PSI_FLOOR)
    return float(np.sum((b - a) * np.log(b / a)))


def _psi_status(psi: float, rows: int, mp: MonitorParams) -> str:
    if np.isnan(psi) or rows < mp.min_drift_rows:
        return "n/a"
    return "alert" if psi >= mp.psi_alert else "warn" if psi >= mp.psi_warn else "ok"


def drift_table(
    reference: pd.DataFrame,
    recent: pd.DataFrame,
    catalog: list[FeatureDef],
    mp: MonitorParams,
    reference_scores: np.ndarray | None = None,
    recent_scores: np.ndarray | None = None,
    unseen: dict[str, pd.Series] | None = None,
) -> pd.DataFrame:
    """PSI per feature (and for the score when both score arrays are given), largest first.

    Args:
        unseen: per feature with some, the recent leads' values the model never saw in training
            (``LeadScorer.unseen_values``; None when the model cannot tell).

    Returns:
        Columns feature, kind, psi, status (ok / warn / alert / n/a when the recent window holds fewer
        than monitor.min_drift_rows leads), reference_rows, recent_rows; with ``unseen``, never_seen: the
        most frequent of them with their recent leads (part of the "other" bin; see encoding.LEARNT_BY_A_RETRAIN).
    """
    rows = [
        {"feature": d.name, "kind": d.kind,
         "psi": population_stability(reference[d.name], recent[d.name], d.kind == "categorical", mp.psi_bins),
         "reference_rows": len(reference), "recent_rows": len(recent)}
        for d in catalog
    ]
    if reference_scores is not None and recent_scores is not None:
        rows.append({"feature": "score", "kind": "score",
                     "psi": population_stability(pd.Series(reference_scores), pd.Series(recent_scores), False, mp.psi_bins),
                     "reference_rows": len(reference_scores), "recent_rows": len(recent_scores)})
    table = pd.DataFrame(rows, columns=["feature", "kind", "psi", "reference_rows", "recent_rows"])
    if unseen is not None:
        table["never_seen"] = [most_frequent(unseen[f]) if f in unseen else "" for f in table["feature"]]
    table["status"] = [_psi_status(p, n, mp) for p, n in zip(table["psi"], table["recent_rows"])]
    return table.sort_values("psi", ascending=False, na_position="last", kind="stable").reset_index(drop=True)


# ----------------------------------------------------------------------------- calibration


def _gap_z(gap, predicted, leads):
    """The gap in binomial standard errors of the predicted rate (the Wilson score statistic)."""
    return gap / np.sqrt(np.clip(predicted * (1 - predicted), 1e-12, None) / np.maximum(leads, 1))


def _calibration_off(gap, z, mp: MonitorParams):
    """Whether a gap is both too large to accept (monitor.calibration_tolerance) and no sampling noise (CALIBRATION_Z)."""
    return (np.abs(gap) > mp.calibration_tolerance) & (np.abs(z) >= CALIBRATION_Z)


def scores_per_version(versions) -> dict[str, int]:
    """How many of these scores each model version (as text, as the registry names it) made, most first."""
    counts = pd.Series(versions, dtype="object").astype(str).value_counts()
    most_first = sorted(counts.items(), key=lambda version_n: (-version_n[1], version_n[0]))
    return {version: int(n) for version, n in most_first}


def scored_by(versions) -> str:
    """The model versions that made these scores: "v1", or each with its scores when several, most first: "v1 (1,150)
    and v2 (52)". Calibration judges logged scores, which the champion monitored may not have made ("" for none)."""
    counts = scores_per_version(versions)
    if len(counts) < 2:
        return "".join(f"v{version}" for version in counts)
    named = [f"v{version} ({n:,})" for version, n in counts.items()]
    return ", ".join(named[:-1]) + " and " + named[-1]


def calibration_summary(probability: np.ndarray, y: np.ndarray, mp: MonitorParams, ece_bins: int = 10,
                        cohort: str = "all", versions=None) -> pd.DataFrame:
    """One row for the `cohort` (a label naming its leads): leads with a matured outcome, predicted vs
    observed conversion, gap, z (`_gap_z`), ECE, status (alert: `_calibration_off`; n/a below
    monitor.min_calibration_rows); with `versions` (the model version that made each probability), scored_by
    (`scored_by`) after leads and scores_by_version (`scores_per_version`: the same as data, for the report to ask
    whether a version made any; the page leaves it out)."""
    p, y = np.asarray(probability, dtype="float64"), np.asarray(y, dtype="float64")
    n = len(p)
    predicted = float(p.mean()) if n else float("nan")
    observed = float(y.mean()) if n else float("nan")
    gap = observed - predicted
    z = float(_gap_z(gap, predicted, n))
    status = "n/a" if n < mp.min_calibration_rows else "alert" if _calibration_off(gap, z, mp) else "ok"
    row = pd.DataFrame([{
        "cohort": cohort, "leads": n, "conversions": int(y.sum()), "predicted": predicted, "observed": observed,
        "gap": gap, "z": z, "ece": expected_calibration_error(y, p, bins=ece_bins) if n else float("nan"), "status": status,
    }])
    if versions is not None:
        row.insert(2, "scored_by", scored_by(versions))
        row.insert(3, "scores_by_version", [scores_per_version(versions)])
    return row


def segment_calibration(segments: pd.DataFrame, probability: np.ndarray, y: np.ndarray, mp: MonitorParams,
                        versions=None) -> pd.DataFrame:
    """Predicted vs observed conversion per value of each segment column (e.g. lead_source=webinar).

    A segment is judged when it holds monitor.min_segment_rows leads, and flagged (alert) as the
    overall gap is (`_calibration_off`): where the model's idea of a segment no longer matches what
    sales sees.

    Returns:
        Columns feature, value, leads, conversions, predicted, observed, gap, z, status; worst first. With `versions`
        (the model version that made each probability), scored_by (`scored_by`) after leads.
    """
    columns = ["feature", "value", "leads", *(["scored_by"] if versions is not None else []),
               "conversions", "predicted", "observed", "gap", "z", "status"]
    if segments.empty or not len(segments.columns):
        return pd.DataFrame(columns=columns)
    values = segments.astype("str").where(segments.notna(), MISSING_BIN).reset_index(drop=True)
    long = values.melt(var_name="feature", value_name="value")
    long["p"] = np.tile(np.asarray(probability, dtype="float64"), len(segments.columns))
    long["y"] = np.tile(np.asarray(y, dtype="float64"), len(segments.columns))
    by_version = {}
    if versions is not None:
        long["version"] = np.tile(np.asarray(versions, dtype="object"), len(segments.columns))
        by_version = {"scored_by": ("version", scored_by)}
    table = long.groupby(["feature", "value"], sort=False).agg(
        leads=("y", "size"), conversions=("y", "sum"), predicted=("p", "mean"), observed=("y", "mean"), **by_version
    ).reset_index()
    table["gap"] = table["observed"] - table["predicted"]
    table["z"] = _gap_z(table["gap"], table["predicted"], table["leads"])
    judged = table["leads"] >= mp.min_segment_rows
    off = _calibration_off(table["gap"], table["z"], mp)
    table["status"] = np.where(~judged, "n/a", np.where(off, "alert", "ok"))
    table["conversions"] = table["conversions"].astype("int64")
    return worst_segments_first(table[columns])


def worst_segments_first(table: pd.DataFrame) -> pd.DataFrame:
    """Segment rows by |z|, largest first; those too small to judge (n/a) last."""
    order = table["z"].abs().where(table["status"] != "n/a", -1).sort_values(ascending=False, kind="stable").index
    return table.loc[order].reset_index(drop=True)


# ----------------------------------------------------------------------------- hand-off


def first_scores(score_log: pd.DataFrame) -> pd.DataFrame:
    """Each lead's first logged score (the one that routed it to sales), indexed by lead_id."""
    ordered = score_log.sort_values("scored_at", kind="stable")
    return ordered.drop_duplicates("lead_id", keep="first").set_index("lead_id")


def handoff_health(
    scored: pd.DataFrame,
    feedback: pd.DataFrame,
    label: LabelParams,
    mp: MonitorParams,
    top_tier: str,
    as_of: pd.Timestamp,
    decisions_received: bool = True,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """How sales handled the scored leads: SLA, top tier worked, reason codes, and reasons by tier.

    Args:
        scored: first score per lead (index lead_id; columns tier, scored_at), see `first_scores`.
            The SLA runs from scored_at, the wall-clock time the CRM got the score, not from the
            features' as_of: re-scoring open leads as of a past day does not make sales late.
        feedback: the store's feedback events as it held them at as_of (lead_id, status, reason, decided_at, ...).
        top_tier: name of the best tier.
        as_of: 'now'; leads scored less than the SLA ago are not yet due and are left out.
        decisions_received: whether the store holds any decision by as_of; without one the CRM sends none
            to /feedback (yet), nothing can be said of sales' speed, and every check is n/a.

    Returns:
        (metrics: one row per check with value, target, status and the leads it counts;
         reasons by tier: share of each reason code among the tier's rejections, plus their count).
    """
    events = feedback[feedback["lead_id"].isin(scored.index) & (feedback["decided_at"] <= as_of)].copy()
    events["outcome"] = outcome_group(events["status"], label)
    dispositions = events[events["outcome"] != "open"]
    first_disposition = dispositions.groupby("lead_id")["decided_at"].min()
    latest = dispositions.sort_values(["decided_at", "received_at"], kind="stable").drop_duplicates("lead_id", keep="last")

    sla = pd.Timedelta(hours=mp.handoff_sla_hours)
    due = scored[scored["scored_at"] <= as_of - sla]
    decided_at = first_disposition.reindex(due.index)
    # Decided before its score existed (e.g. old leads scored when the service started): the score
    # handed nothing off, and counting it as 0 h would flatter the SLA. A clock a little off is 0 h.
    handed_off = ~(decided_at < due["scored_at"] - CLOCK_SLACK)
    hours = ((decided_at - due["scored_at"])[handed_off].dt.total_seconds() / 3600).clip(lower=0)
    within = hours <= mp.handoff_sla_hours  # not yet dispositioned (NaN) counts as outside the SLA
    top = due[due["tier"] == top_tier]
    rejections = latest[latest["outcome"] == "rejected"]
    coded = rejections["reason"].notna() & (rejections["reason"].astype("str").str.strip() != "")

    def row(check: str, value: float, target: float | None, leads: int, to_do: str, higher_is_better: bool = True) -> dict:
        if not leads or not decisions_received or target is None or np.isnan(value):
            status = "n/a"
        else:
            status = "ok" if (value >= target if higher_is_better else value <= target) else "alert"
        return {"check": check, "value": value, "target": target, "leads": leads, "status": status, "to do if alert": to_do}

    metrics = pd.DataFrame([
        row("median hours to first disposition", float(hours.median()) if hours.notna().any() else float("nan"),
            mp.handoff_sla_hours, int(hours.notna().sum()), TO_DO["speed"], higher_is_better=False),
        row(f"share dispositioned within {mp.handoff_sla_hours:g} h", float(within.mean()) if len(within) else float("nan"),
            mp.min_within_sla, len(within), TO_DO["speed"]),
        row(f"share of tier {top_tier} leads worked",
            float(top.index.isin(first_disposition.index).mean()) if len(top) else float("nan"),
            mp.min_top_tier_worked, len(top), TO_DO["top tier"]),
        row("share of rejections with a reason code", float(coded.mean()) if len(rejections) else float("nan"),
            mp.min_reason_coded, len(rejections), TO_DO["reason codes"]),
    ])

    tiers = scored["tier"].reindex(rejections["lead_id"]).to_numpy()
    reasons = rejections["reason"].astype("str").where(coded, "(no reason)").to_numpy()
    mix = pd.crosstab(pd.Series(tiers, name="tier"), pd.Series(reasons, name="reason"), normalize="index")
    counts = pd.Series(tiers, name="tier").value_counts()
    mix.insert(0, "rejections", counts.reindex(mix.index).astype("int64"))
    return metrics, mix


# ----------------------------------------------------------------------------- the report


@dataclass
class MonitorReport:
    """Everything `leadscore monitor` found; `findings` lists what needs attention, worst first."""

    as_of: pd.Timestamp
    model: str
    drift: pd.DataFrame
    calibration: pd.DataFrame  # `calibration_summary` of the whole window (row 0), of its latest matured cohort (row 1)
    segments: pd.DataFrame  # `segment_calibration` per cohort of `calibration` (column cohort), worst first
    handoff: pd.DataFrame
    reasons_by_tier: pd.DataFrame
    captions: dict[str, str] = field(default_factory=dict)  # which leads each section counts: drift, calibration, handoff
    not_judged: dict[str, str] = field(default_factory=dict)  # section with no check judged -> why (`unjudged_sections`)
    notes: list[str] = field(default_factory=list)
    feedback: str = ""  # what the feedback store changed in the outcomes calibration is judged on (FeedbackMerge.line)
    run_id: str = ""
    version: str = ""  # the champion's monitored (`model`'s version)

    @property
    def findings(self) -> list[tuple[str, str]]:
        """(status, sentence) for every warn/alert, alerts first: drifting features in one sentence per level
        (they share a cause to look for), every other check in its own."""
        out = []
        for level in ("alert", "warn"):  # one finding per level: the features share a cause to look for
            shifted = self.drift[self.drift["status"] == level]
            if len(shifted):
                psi = ", ".join(f"{r['feature']} {r['psi']:.2f}" + (f" (values the model never saw in training: {r['never_seen']})"
                                                                    if r.get("never_seen") else "")
                                for r in shifted.to_dict("records"))
                out.append((level, f"drift: PSI {psi} ({shifted['recent_rows'].max():,} recent vs "
                                   f"{shifted['reference_rows'].max():,} training leads). To do: {TO_DO['drift']}"))
        for i, r in enumerate(self.calibration.itertuples()):
            if r.status == "alert":
                promise = "over-promise" if r.gap < 0 else "under-promise"
                to_do = TO_DO["calibration"] if i == 0 else TO_DO["latest cohort"]  # the whole window, then the latest
                if self.version and self.version not in r.scores_by_version:
                    to_do = TO_DO["replaced"].format(champion=f"v{self.version}")
                out.append(("alert", f"calibration ({r.cohort}): scores {promise}: predicted {r.predicted:.1%}, observed "
                                     f"{r.observed:.1%} over {r.leads:,} matured leads scored by {r.scored_by} "
                                     f"(z {r.z:+.1f}). To do: {to_do}"))
        # A segment both cohorts flag the same way is one finding naming both; opposite ways, one per cohort.
        alerts = self.segments[self.segments["status"] == "alert"]
        cohort_order = {cohort: i for i, cohort in enumerate(self.calibration["cohort"])}
        for _, rows in alerts.groupby(["feature", "value", np.sign(alerts["gap"])], sort=False):  # worst first
            rows = rows.sort_values("cohort", key=lambda c: c.map(cohort_order), kind="stable").to_dict("records")
            figures = [f"predicted {r['predicted']:.1%}, observed {r['observed']:.1%} over {r['leads']:,} leads "
                       f"scored by {r['scored_by']} (z {r['z']:+.1f})" for r in rows]
            said = figures[0] if len(rows) == 1 else "; ".join(f"{r['cohort']} {f}" for r, f in zip(rows, figures))
            r = rows[0]
            out.append(("alert", f"calibration drift ({' and '.join(r['cohort'] for r in rows)}): {r['feature']}={r['value']} "
                                 f"converts {'less' if r['gap'] < 0 else 'more'} than scored: {said}. To do: {TO_DO['segment']}"))
        for r in self.handoff.to_dict("records"):
            if r["status"] == "alert":
                hours = r["check"].startswith("median hours")
                value, target = ((f"{r['value']:.1f} h", f"{r['target']:g} h") if hours
                                 else (f"{r['value']:.0%}", f"{r['target']:.0%}"))
                out.append(("alert", f"hand-off: {r['check']} is {value} (target {target}; {r['leads']:,} leads). "
                                     f"To do: {r['to do if alert']}"))
        return sorted(out, key=lambda f: -STATUS_ORDER[f[0]])

    @property
    def judged(self) -> list[str]:
        """The sections at least one check was judged in; hand-off says how many of its checks when not all."""
        out = [name for name in ("drift", "calibration") if name not in self.not_judged]
        if "hand-off" not in self.not_judged:
            judged = int((self.handoff["status"] != "n/a").sum())
            out.append("hand-off" if judged == len(self.handoff) else f"hand-off ({judged} of {len(self.handoff)} checks)")
        return out

    @property
    def status(self) -> str:
        if not self.judged:
            return NOT_JUDGED
        return max((s for s, _ in self.findings), key=STATUS_ORDER.get, default="ok")

    @property
    def verdict(self) -> str:
        """The status with what it covers, e.g. "OK (judged: calibration)": an OK over one check is not a clean bill."""
        return self.status.upper() + (f" (judged: {', '.join(self.judged)})" if self.judged else "")

    @property
    def unjudged(self) -> list[str]:
        return [f"{name} ({why})" for name, why in self.not_judged.items()]

    def lines(self) -> list[str]:
        out = [f"monitor as of {self.as_of:%Y-%m-%d %H:%M}: {self.model}: status {self.verdict}"]
        out += [f"  {self.feedback}"] if self.feedback else []
        whole = self.calibration.iloc[0]  # whose scores calibration judges: the champion monitored may have made none
        out += [f"  calibration ({whole['cohort']}): {whole['leads']:,} matured leads scored by {whole['scored_by']}"
                ] if whole["leads"] else []
        out += [f"  {status.upper():5} {sentence}" for status, sentence in self.findings]
        if self.judged and not self.findings:
            out.append("  nothing above the thresholds")
        out += [f"  not judged: {section}" for section in self.unjudged]
        out += [f"  note: {n}" for n in self.notes]
        return out

    def html(self) -> str:
        """A self-contained HTML page (tables + PSI chart)."""
        def table(frame: pd.DataFrame, index: bool = False) -> str:
            if frame.empty:
                return "<p><em>no rows</em></p>"
            return frame.to_html(index=index, float_format=lambda v: f"{v:.4f}", border=0, classes="t", na_rep="—")

        items = "".join(f'<li class="{s}">{html.escape(t)}</li>' for s, t in self.findings)
        items = items or ("<li>nothing above the thresholds</li>" if self.judged else "")
        items += "".join(f"<li>not judged: {html.escape(section)}</li>" for section in self.unjudged)
        notes = "".join(f"<li>{html.escape(n)}</li>" for n in self.notes)
        caption = {k: f"<p>{html.escape(v)}</p>" for k, v in self.captions.items()}
        scorers = html.escape(self.calibration.loc[0, "scored_by"])  # "" when no lead's outcome is known yet
        scorers = f" of the scores logged by {scorers}" if scorers else ""
        calibration = self.calibration.drop(columns="scores_by_version")  # scored_by says it in words
        return f"""<!doctype html><html><head><meta charset="utf-8"><title>leadscore monitor</title>
<style>body{{font-family:system-ui,sans-serif;margin:2em;max-width:70em}} .t{{border-collapse:collapse;font-size:90%}}
.t td,.t th{{padding:2px 8px;border-bottom:1px solid #ddd;text-align:right}} .alert{{color:#b00}} .warn{{color:#a60}}</style>
</head><body><h1>leadscore monitor — {html.escape(self.model)}</h1>
<p>As of {self.as_of:%Y-%m-%d %H:%M}; overall status <b class="{self.status}">{html.escape(self.verdict)}</b></p>{f"<p>{html.escape(self.feedback)}</p>" if self.feedback else ""}
<h2>Findings</h2><ul>{items}</ul>{f'<h2>Notes</h2><ul>{notes}</ul>' if notes else ''}
<h2>Drift (PSI, {html.escape(self.model)}'s training window vs recent scored leads)</h2>{caption.get("drift", "")}
<img alt="PSI per feature" src="data:image/png;base64,{_png(psi_figure(self.drift))}">{table(self.drift)}
<h2>Calibration{scorers} against matured outcomes</h2>{caption.get("calibration", "")}{table(calibration)}
<h3>By segment (worst first)</h3>{caption.get("segments", "")}{table(self.segments.head(40))}
<h2>Hand-off</h2>{caption.get("handoff", "")}{table(self.handoff)}<h3>Rejection reasons by tier</h3>{table(self.reasons_by_tier, index=True)}
</body></html>"""


def psi_figure(drift: pd.DataFrame) -> Figure:
    """Horizontal bars of PSI per feature with the warn/alert lines (largest 25)."""
    shown = drift.dropna(subset=["psi"]).head(25).iloc[::-1]
    figure = Figure(figsize=(7, 0.25 * len(shown) + 1.2), layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    colours = shown["status"].map({"alert": "#c0392b", "warn": "#e67e22"}).fillna("#7f8c8d")
    axes.barh(shown["feature"], shown["psi"], color=colours)
    axes.set(xlabel="population stability index", title="Drift per feature")
    return figure


def _png(figure: Figure) -> str:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=90)
    return base64.b64encode(buffer.getvalue()).decode()


def unjudged_sections(drift: pd.DataFrame, calibration: pd.DataFrame, segments: pd.DataFrame, handoff: pd.DataFrame,
                      mp: MonitorParams, decisions_received: bool = True) -> dict[str, str]:
    """Why each section in which no check was judged (all n/a) was not: too few leads for its threshold, or
    for hand-off no sales decision in the feedback store at all (`decisions_received`)."""
    out = {}
    if (drift["status"] == "n/a").all():
        recent = int(drift["recent_rows"].max()) if len(drift) else 0
        out["drift"] = (f"{recent:,} recently scored leads, fewer than monitor.min_drift_rows {mp.min_drift_rows:,}"
                        if recent < mp.min_drift_rows else "no training-window leads to compare with")
    if (calibration["status"] == "n/a").all() and (segments["status"] == "n/a").all():
        out["calibration"] = (f"{int(calibration['leads'].iloc[0]):,} scored leads with a known outcome, fewer than "
                              f"monitor.min_calibration_rows {mp.min_calibration_rows:,}")
    if not decisions_received:
        out["hand-off"] = ("the feedback store holds no sales decision yet: hand-off is measured from the decisions "
                           "the CRM sends to /feedback")
    elif (handoff["status"] == "n/a").all():  # a check is n/a only when it counts no lead
        out["hand-off"] = f"no score {mp.handoff_sla_hours:g} h old yet, and no rejection"
    return out


def assess(
    reference: pd.DataFrame,
    reference_scores: np.ndarray,
    recent: pd.DataFrame,
    recent_scores: np.ndarray,
    calibration_frame: pd.DataFrame,
    calibration_y: np.ndarray,
    scored: pd.DataFrame,
    feedback: pd.DataFrame,
    catalog: list[FeatureDef],
    top_tier: str,
    params: Params,
    as_of: pd.Timestamp,
    model: str,
    unseen: dict[str, pd.Series] | None = None,
) -> MonitorReport:
    """The whole report from frames (no I/O).

    Args:
        reference: training-window feature frame; reference_scores its probabilities by the champion.
        recent: feature frame of recently scored leads; recent_scores their logged probabilities.
        calibration_frame: matured scored leads: their categorical features and columns `probability`,
            `scored_at` and `model_version` (their first score's); calibration_y their labels.
        scored: first score per recently scored lead (index lead_id; tier, scored_at), leads the export
            merged by e-mail left out.
        feedback: feedback store events, as the store held them at as_of (`history.received_by`).
        unseen: the recent leads' category values the champion never saw in training (``drift_table``).
    """
    mp = params.monitor
    categorical = [d.name for d in catalog if d.kind == "categorical"]
    probability = calibration_frame["probability"].to_numpy(dtype="float64")
    versions = calibration_frame["model_version"].to_numpy(dtype="object")
    received = bool((feedback["decided_at"] <= as_of).any())
    handoff, mix = handoff_health(scored, feedback, params.label, mp, top_tier, as_of, received)
    window = f"first scored in the {mp.window_days} days to {as_of:%Y-%m-%d %H:%M}"
    horizon = params.label.horizon_days
    # The latest matured cohort: leads first scored in the recent_calibration_days up to the last moment whose
    # scores have all matured (their horizon has passed), so quick decisions do not skew its conversion, and a
    # change of the last months is not diluted by the rest of calibration_days. Undated or no horizon: to as_of.
    matured_by = as_of - pd.Timedelta(days=horizon) if params.data.dated and horizon else as_of
    first_scored = calibration_frame["scored_at"]
    latest = ((first_scored > matured_by - pd.Timedelta(days=mp.recent_calibration_days))
              & (first_scored <= matured_by)).to_numpy()
    whole, latest_cohort = f"{mp.calibration_days} days", f"latest matured {mp.recent_calibration_days} days"
    captions = {
        "drift": f"Recent: the {len(recent):,} leads {window}, each as it was when scored. Training window: "
                 f"{len(reference):,} leads labelled as of the champion's training date (its training, validation, calibration "
                 "and test leads, rebuilt from today's export)"
                 + (", seen at the ages recent leads were scored at, each drawn among those still undecided at its age, as "
                    "the CRM's queue of open leads held them (a lead open long may be drawn at several ages)."
                    if params.data.dated else "."),
        "calibration": f"The {len(probability):,} leads first scored in the {mp.calibration_days} days to "
                       f"{as_of:%Y-%m-%d %H:%M} whose outcome is known by then under the label policy"
                       + (f" (converted within {horizon} days of creation counts as converted)" if horizon else "")
                       + ": the probability each was shown, by the model version that scored it (scored_by), against "
                       "what became of it. More recent leads still wait for theirs. "
                       f"Latest matured {mp.recent_calibration_days} days: the {int(latest.sum()):,} of them first scored in the "
                       f"{mp.recent_calibration_days} days to {matured_by:%Y-%m-%d %H:%M}"
                       + (f" (all {horizon} days old by then)" if matured_by < as_of else "")
                       + ", judged on their own: a conversion change of the latest months, which the whole window dilutes.",
        "segments": f"Per value of each categorical feature, one row per cohort above ({whole}; {latest_cohort}): "
                    f"a value is judged on its own with at least {mp.min_segment_rows:,} leads of that cohort, flagged as "
                    "the cohorts are. A source whose leads stopped converting lately shows in its latest row first. "
                    "Up to the 40 worst rows here; all of them in the run's monitor/segments.csv.",
        "handoff": f"The {len(scored):,} leads {window}; the SLA and tier {top_tier} shares count those scored at "
                   f"least {mp.handoff_sla_hours:g} h before it (the leads column), the median hours only those "
                   "already dispositioned; the SLA leaves out leads decided before their first score.",
    }
    drift = drift_table(reference, recent, catalog, mp, reference_scores, recent_scores, unseen)
    cohorts = {whole: np.ones(len(probability), dtype=bool), latest_cohort: latest}
    calibration = pd.concat([calibration_summary(probability[leads], calibration_y[leads], mp, params.evaluate.ece_bins,
                                                 cohort, versions[leads]) for cohort, leads in cohorts.items()],
                            ignore_index=True)
    segments = worst_segments_first(pd.concat([
        segment_calibration(calibration_frame.loc[leads, categorical], probability[leads], calibration_y[leads], mp,
                            versions[leads]).assign(cohort=cohort)
        for cohort, leads in cohorts.items()], ignore_index=True))
    segments.insert(0, "cohort", segments.pop("cohort"))
    return MonitorReport(
        as_of=as_of,
        model=model,
        drift=drift,
        calibration=calibration,
        segments=segments,
        handoff=handoff,
        reasons_by_tier=mix,
        captions=captions,
        not_judged=unjudged_sections(drift, calibration, segments, handoff, mp, received),
    )


# ----------------------------------------------------------------------------- I/O edge


def _as_spelled(unseen: dict[str, pd.Series] | None, crm) -> dict[str, pd.Series] | None:
    """``LeadScorer.unseen_values`` with each value as the export spells it most ('TikTok', not the 'tiktok' the
    model compares; 'TT' when data.value_maps renames it 'TikTok'), as batch scoring names them
    (``CRMData.export_spellings``)."""
    if unseen is None:
        return None
    return {column: counts.rename(index=crm.export_spellings(column))
            if column in crm.leads.columns else counts for column, counts in unseen.items()}


def _features_as_scored(crm, scored: pd.DataFrame, champion, dated: bool) -> pd.DataFrame:
    """Feature frame of scored leads as `champion` saw them at each one's first score (the one feature
    function, as of the score's features_as_of: a request's as_of can lie months before scored_at; values
    read as the model reads them, ``LeadScorer.as_known``)."""
    from pipelines.dataset import features_at

    moments = scored["features_as_of"].astype("datetime64[ns]") if dated else None
    return champion.as_known(features_at(crm, scored.index, moments, champion.features))


def _not_in_export(ids: pd.Index, crm, which: str, section: str,
                   merged_section: str | None = None) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Which scored leads (`ids`) the export lacks, which of those it merged by e-mail into an earlier
    lead, and a note on each kind: the merged ones left out of `merged_section` (default `section`), the
    rest (not exported yet) of `section`."""
    missing = ~ids.isin(crm.leads["lead_id"])
    merged = missing & ids.isin(crm.merged_by_email.index)
    notes = []
    if merged.any():
        notes.append(f"{int(merged.sum()):,} {which} were merged by e-mail into an earlier lead of the export: left "
                     f"out of {merged_section or section}")
    if (missing & ~merged).any():
        notes.append(f"{int((missing & ~merged).sum()):,} {which} are not in the export yet: left out of {section}")
    return missing, merged, notes


def _reference_as_scored(reference_set, ages: pd.Series | None, spec) -> tuple[pd.DataFrame, np.ndarray]:
    """The training window as the CRM's queue of open leads held it at the ages recent leads were first scored at.

    A lead is scored while it is open: on arrival, when it changes, or in a batch of every lead still open (the
    demo's open leads, 0 to 727 days old). Activity windows, recency and trend depend on a lead's age and on its
    being undecided then: against training leads seen at other ages, or seen at the decision that closed them a
    week in, every time-relative feature of such a queue would drift (the demo's days_since_last_activity: PSI
    0.84). So the reference is as many draws as the window has leads, each (seeded) an age from the recent scoring
    ages and a training lead still open at that age, as `dataset.open_at_ages` counts it (undecided then, and that
    age reached by the training date), rebuilt as of then. Few leads stay open long, so one may be drawn at several
    ages; an age no training lead stayed open for has no reference. Undated exports, or no recent score: the
    training frame as it is. Also returns each draw's age, in days.
    """
    from pipelines.dataset import features_at_moments

    if reference_set.snapshot_at is None or ages is None or not len(ages):
        return reference_set.features, reference_set.age_days
    ids = reference_set.features.index
    created = to_epoch_ns(reference_set.created_at, "leads.created_at")
    decided = decision_times(reference_set.labels.frame.loc[ids], np.arange(len(ids)), created)
    # The oldest age each lead was open at: just before its decision, and by the training date.
    trained = to_epoch_ns(pd.Series([reference_set.as_of]), "as_of")[0]
    open_for = np.where(created == NAT, -1, np.minimum(np.where(decided == NAT, trained, decided - 1), trained) - created)
    by_open_for = np.argsort(open_for, kind="stable")
    rng = np.random.default_rng(0)
    drawn = rng.choice(ages.to_numpy(dtype="timedelta64[ns]").astype(np.int64), size=len(ids))
    first_open = np.searchsorted(open_for[by_open_for], drawn, side="left")  # it and the leads after it were open then
    still_open = len(ids) - first_open
    drawn, first_open, still_open = drawn[still_open > 0], first_open[still_open > 0], still_open[still_open > 0]
    lead = by_open_for[first_open + (rng.random(len(drawn)) * still_open).astype(np.intp)]
    moments = (created[lead] + drawn).view("datetime64[ns]")
    return features_at_moments(reference_set.crm, ids[lead], moments, spec), drawn / DAY_NS


def latest_record(score_log: pd.DataFrame, feedback: pd.DataFrame) -> pd.Timestamp:
    """The last time the store was written to (a score logged, a decision received): monitor's 'now' by default.

    Not the wall clock, which may lie long after a store's last record (a demo's, or one copied for a look): every
    window would then be empty or its leads all overdue. Nor only the last score: the decisions the CRM sent after
    it would go unread.
    """
    return max(score_log["scored_at"].max(), feedback["received_at"].max() if len(feedback) else pd.NaT)


def monitor(
    params: Params,
    as_of: pd.Timestamp | None = None,
    out: Path | None = None,
    crm=None,
    store=None,
) -> MonitorReport:
    """Compare the champion's training window with what it has scored lately; write HTML, log to MLflow.

    Args:
        as_of: 'now' (default: `latest_record`, the store's last score logged or decision received). A past date
            replays the report of that date from the store as it stood then: scores logged, and decisions dated or
            received, after it are ignored, and the model monitored is the one that served then (made the last score
            by it), not a champion promoted since.
        out: HTML file to write (optional; always logged to MLflow).
        crm: an already loaded export (default: load params.data).
        store: a `serving.store.Store` (default: the one params.serving.store_url names, opened read-only).
    """
    import mlflow

    from pipelines import tracking
    from pipelines.dataset import assemble, data_as_of, with_model_features
    from pipelines.history import history_as_of, leads_created_by, load_history, received_by
    from pipelines.ingest import load_crm
    from serving.store import Store

    version = str(tracking.registered_version(params).version)  # the champion now
    store = store if store is not None else Store.from_params(params, read_only=True)
    crm = crm if crm is not None else load_crm(params)  # an export that cannot be read is told first
    feedback, left_out = store.usable_feedback()
    log = store.score_log_frame()
    if log.empty:
        raise LookupError(f"the score log of the store {store.name} is empty: nothing has been scored with it yet, so "
                          "there is nothing to monitor (check serving.store_url)")
    replay = as_of is not None
    as_of = pd.Timestamp(as_of) if replay else latest_record(log, feedback)
    # The store as it stood then; of what it received later, only the decisions for leads of the export created by then
    # count as not used (one for a lead it lacks, or merged by e-mail into another, would be ignored however early it
    # arrived, and one for a lead created later judges nothing as of then).
    read = leads_created_by(crm.leads, as_of) if params.data.dated else crm.leads["lead_id"]
    feedback, received_later = received_by(feedback, as_of, read)
    crm = load_history(params, crm, (feedback, left_out))
    mp, dated = params.monitor, params.data.dated
    notes: list[str] = []
    if left_out:
        notes.append(f"{left_out:,} feedback events with an impossible decided_at were left out of calibration and "
                     "hand-off (they stay in the store; see the warning)")
    first = log["scored_at"].min()
    log = log[log["scored_at"] <= as_of]
    if log.empty:  # every section would be "not judged", logged as a run about nothing
        raise LookupError(f"--as-of {as_of:%Y-%m-%d %H:%M}: nothing had been scored by then (the first score in "
                          f"{store.name} was logged {first:%Y-%m-%d %H:%M}); choose a later date")
    if replay:  # the model that served then: one promoted since was trained on leads and outcomes after as_of
        served = str(log.sort_values("scored_at", kind="stable")["model_version"].iloc[-1])
        if served != version:
            try:
                tracking.registered_version(params, version=served)
                notes.append(f"as of {as_of:%Y-%m-%d %H:%M} v{served} served (it made the last score by then): "
                             f"monitored instead of today's champion v{version}")
                version = served
            except LookupError:
                notes.append(f"v{served}, which made the last score by {as_of:%Y-%m-%d %H:%M}, is not in the registry: "
                             f"today's champion v{version} is monitored instead; its training window may hold later leads")
    champion = tracking.load_scorer(params, version=version)
    model = f"{params.tracking.registered_model} v{version}"
    catalog = feature_catalog(champion.features)
    # A lead's first score ever, not its first in a window: an old lead re-scored lately is no recent lead.
    first_scored = first_scores(log)
    scored = first_scored[first_scored["scored_at"] > as_of - pd.Timedelta(days=mp.window_days)]
    if scored.empty:
        notes.append(f"no lead was first scored in the {mp.window_days} days before {as_of:%Y-%m-%d}: drift and hand-off "
                     "have nothing to judge")
    # A merged lead is left out of hand-off too: the CRM works the lead it kept, so the merged one's own
    # id gets no disposition and would count as never worked.
    missing, merged, absent = _not_in_export(scored.index, crm, "recently scored leads", "feature drift",
                                             "feature drift and hand-off")
    notes += absent
    recent = _features_as_scored(crm, scored[~missing], champion, dated)
    same_model = scored[scored["model_version"] == version]
    if len(same_model) < len(scored):
        notes.append(f"{len(scored) - len(same_model):,} recently scored leads were first scored by other versions than "
                     f"{version}: left out of the score's drift")
    recent_scores = same_model["probability"].to_numpy()

    trained_as_of = champion.info.get("as_of")
    window_params = with_model_features(params, champion)
    reference_set = assemble(window_params, as_of=pd.Timestamp(trained_as_of) if dated and trained_as_of else None, crm=crm)
    recent_leads = crm.leads.set_index("lead_id")["created_at"].reindex(scored.index[~missing]) if dated else None
    ages = (scored.loc[~missing, "features_as_of"] - recent_leads).dropna().clip(lower=pd.Timedelta(0)) if dated else None
    reference, reference_ages = _reference_as_scored(reference_set, ages, champion.features)
    reference_scores = champion.predict_proba(reference, reference_ages)

    calibration_log = first_scored[first_scored["scored_at"] > as_of - pd.Timedelta(days=mp.calibration_days)]
    # Their outcome, even one the service received, has no lead of the export to be labelled against.
    outside, _, absent = _not_in_export(calibration_log.index, crm,
                                        f"leads first scored in the {mp.calibration_days} days to {as_of:%Y-%m-%d}", "calibration")
    notes += absent
    calibration_log = calibration_log[~outside]
    horizon = params.label.horizon_days
    if dated and horizon:  # scored past the horizon (past_horizon): a ranking, not a chance to check against outcomes
        created = crm.leads.set_index("lead_id")["created_at"].reindex(calibration_log.index)
        late = older_than_horizon(lead_age_days(created, calibration_log["features_as_of"].to_numpy()), horizon)
        if late.any():
            notes.append(f"{int(late.sum()):,} leads first scored in the {mp.calibration_days} days to {as_of:%Y-%m-%d} "
                         f"were past their {horizon}-day horizon then (past_horizon): left out of calibration (their "
                         "score ranks them, it is no chance of converting within the horizon)")
            calibration_log = calibration_log[~late]
    leads = crm.leads[crm.leads["lead_id"].isin(calibration_log.index)]
    known = history_as_of(crm, as_of) if dated else crm  # a decision dated after as_of must not hide the export's
    known.feedback.as_of, known.feedback.received_later = as_of, received_later
    # A lead still open in the export when its horizon ended after the export was taken may have been decided
    # since without the export or the store saying so: it is not counted as unconverted.
    export_end = data_as_of(crm) if dated else None
    labels = build_labels(leads, known.outcomes, params.label, as_of if dated else None, known_until=export_end).frame
    censored = int((labels["rule"] == "censored:open_past_export").sum())
    if censored:
        notes.append(f"{censored:,} leads first scored in the {mp.calibration_days} days to {as_of:%Y-%m-%d} passed their "
                     f"{horizon}-day horizon after the export ends ({export_end:%Y-%m-%d}) with no "
                     "decision in it or the feedback store: left out of calibration (whether they converted is not "
                     "known; a newer export tells)")
    matured = labels.index[labels["label"].notna()]
    calibration_frame = _features_as_scored(crm, calibration_log.loc[matured], champion, dated)
    calibration_frame["probability"] = calibration_log["probability"].reindex(calibration_frame.index).to_numpy()
    calibration_frame["scored_at"] = calibration_log["scored_at"].reindex(calibration_frame.index).to_numpy()
    calibration_frame["model_version"] = calibration_log["model_version"].reindex(calibration_frame.index).to_numpy()

    report = assess(
        reference, reference_scores, recent, recent_scores,
        calibration_frame, labels.loc[calibration_frame.index, "label"].to_numpy(),
        scored[~merged], feedback, catalog, champion.tiers.names[0], params, as_of, model,
        _as_spelled(champion.unseen_values(recent), crm),
    )
    report.notes, report.feedback, report.version = notes, known.feedback.line(), version
    tracking.configure(params)
    with tracking.start_run("monitor", f"monitor {as_of:%Y-%m-%d}") as run:
        report.run_id = run.info.run_id
        mlflow.set_tags({"monitor": "true", "status": report.status, "champion_version": version,
                         "judged": ", ".join(report.judged), "not_judged": "; ".join(report.unjudged)})
        mlflow.log_metrics(tracking.mlflow_keys({f"psi.{r.feature}": r.psi for r in report.drift.itertuples() if pd.notna(r.psi)}))
        for prefix, cal in zip(("", "latest_matured."), report.calibration.to_dict("records")):  # whole window, latest cohort
            mlflow.log_metrics({prefix + k: float(cal[k]) for k in ("leads", "predicted", "observed", "gap", "ece")
                                if pd.notna(cal[k])})
            mlflow.set_tag(prefix + "scored_by", cal["scored_by"])  # not the champion's if it was promoted since
        mlflow.log_metrics(tracking.mlflow_keys({f"handoff.{r.check}": r.value for r in report.handoff.itertuples() if pd.notna(r.value)}))
        mlflow.log_text(report.html(), "monitor/monitor.html")
        for name, frame in {"drift": report.drift, "segments": report.segments, "handoff": report.handoff}.items():
            mlflow.log_text(frame.to_csv(index=False), f"monitor/{name}.csv")
        mlflow.log_text(report.reasons_by_tier.to_csv(), "monitor/reasons_by_tier.csv")
        mlflow.log_text("\n".join(report.lines()) + "\n", "monitor/summary.txt")
    if out is not None:
        out = Path(out)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(report.html())
    return report
