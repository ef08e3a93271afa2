"""Closed-loop labels: a lead's CRM outcome and rejection reason become a label, a weight and the rule
that decided them.

The policy lives in params.yaml (``label``), so "what counts as a conversion" is declared, versioned
and printed with every training run instead of being buried in code. Every lead gets exactly one rule;
``LabelResult.counts`` shows how many leads each rule touched, which is the first thing to check when a
model looks too good or too bad. The rejection reason stays in the frame: it is the target of the
"likely rejection reason" model and of the marketing audit.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from features.build import DAY_NS, NAT, checked_lead_ids, clean_text, positions_of, to_epoch_ns
from pipelines.config import LabelParams

_RULE_PREFIX = {"negative": "negative", "soft_negative": "soft_negative", "exclude": "excluded"}
_ACTION_LABEL = {"negative": 0.0, "soft_negative": 0.0, "exclude": np.nan}


@dataclass
class LabelResult:
    """Labels for every lead plus how many leads each policy rule decided.

    Attributes:
        frame: one row per lead (index ``lead_id``, same order as the leads): ``label`` (1.0 / 0.0 /
            NaN when excluded or censored), ``weight`` (training weight, NaN when the row is unused),
            ``rule``, and the outcome as known at ``as_of``: ``status``, ``reason``, ``decided_at``, and
            ``decided`` (an outcome other than open, dated or not: ``features.build.decision_times``).
        counts: leads per rule, largest first; only rules that touched at least one lead.
    """

    frame: pd.DataFrame
    counts: dict[str, int]

    def lines(self) -> list[str]:
        """One "rule: n (share)" line per rule, for the training log and the CLI. The unknown-reason
        line names the codes, most frequent first, and where to declare them: a typo, a new code or a CRM label
        left untranslated is then seen, not just counted."""
        total = sum(self.counts.values())
        out = []
        for rule, n in self.counts.items():
            line = f"{rule}: {n} ({n / total:.1%})"
            if rule.endswith(":unknown_reason"):
                codes = self.frame.loc[self.frame["rule"] == rule, "reason"].value_counts()
                line += ("; codes not in label.reasons: " + ", ".join(f"{code!r} {k}" for code, k in codes.head(5).items())
                         + (f" and {len(codes) - 5} more" if len(codes) > 5 else "")
                         + " (list them in label.reasons, or translate the CRM's labels with data.value_maps.reason)")
            out.append(line)
        return out

    def unknown_reason_lines(self) -> list[str]:
        """The `lines` of rejections whose reason code the policy does not list (a code new this quarter such as
        'wrong_region', trained as the unknown-reason action): a command printing every rule repeats it as a warning,
        where it is not lost among the rule lines."""
        return [line for rule, line in zip(self.counts, self.lines()) if rule.endswith(":unknown_reason")]


def build_labels(
    leads: pd.DataFrame,
    outcomes: pd.DataFrame | None,
    policy: LabelParams,
    as_of: pd.Timestamp | None = None,
    known_until: pd.Timestamp | None = None,
) -> LabelResult:
    """Apply the label policy to every lead.

    Rules, first match wins:
      * converted status: positive (``positive:converted``) when decided within ``horizon_days`` of
        ``created_at``, else ``negative:converted_after_horizon``. Without a horizon, a decision date
        or a creation date there is nothing to check and the conversion counts.
      * rejected status: the action of ``policy.reasons[reason]`` (``{action}:reason:{code}``); a code
        the policy does not list gets ``unknown_reason``, an empty one ``missing_reason``.
      * open status, or no outcome row: still able to convert, so censored (label NaN) while
        ``created_at + horizon_days > as_of`` (``censored:open_immature``), else
        ``negative:open_expired``; censored (``censored:open_past_export``) when the horizon ended after
        ``known_until``, the outcomes being silent about that time. Undated leads and a horizon of None
        can never expire: ``censored:open_undated`` / ``censored:open_no_horizon``.
      * any other status: ``policy.status_policy`` (``{action}:status:{status}``); a status the policy
        does not mention is excluded (``excluded:unknown_status:{status}``) so it shows up in counts.

    Outcomes decided after ``as_of`` were not known then and count as open, so labels for a backtest
    cut-off never see the future. Statuses and reasons compare after strip + lower-case. Outcome rows
    for leads not in ``leads`` are ignored.

    Args:
        leads: contract ``leads`` (``lead_id``; ``created_at`` unless the export is undated).
        outcomes: contract ``outcomes`` (``lead_id``, ``status``; optional ``reason``, ``decided_at``),
            or None when no outcome is known yet (every lead is then open).
        policy: the ``label`` section of params.yaml.
        as_of: when the labels are taken; defaults to the latest creation or decision date in the data
            (the export time, as far as the data can tell).
        known_until: until when the outcomes cover every lead (the export's own 'now',
            `dataset.data_as_of`), for an ``as_of`` after it: a lead still open in a months-old export may
            have been decided since without the data saying so, so it does not expire after it.

    Returns:
        The label frame and the leads-per-rule counts.

    Raises:
        ValueError: a required column is missing, a lead or outcome ``lead_id`` is empty or repeated,
            or a date column holds values that are not dates.
    """
    ids = checked_lead_ids(leads)
    n = len(ids)
    dated = "created_at" in leads.columns
    created = to_epoch_ns(leads["created_at"], "leads.created_at") if dated else _nat(n)
    status, reason, decided = _outcome_per_lead(outcomes, ids)

    if as_of is not None:
        as_of_ns = to_epoch_ns(pd.Series([pd.Timestamp(as_of)]), "as_of")[0]
    else:
        known = np.concatenate([created, decided])
        known = known[known != NAT]
        as_of_ns = known.max() if known.size else NAT
    if as_of_ns != NAT:
        not_yet_known = (decided != NAT) & (decided > as_of_ns)
        status[not_yet_known] = np.nan
        reason[not_yet_known] = np.nan
        decided[not_yet_known] = NAT

    group = outcome_group(status, policy)
    is_converted, is_rejected, is_open = group == "converted", group == "rejected", group == "open"
    is_other = group == "other"

    label = np.full(n, np.nan)
    rule = np.empty(n, dtype=object)
    soft = np.zeros(n, dtype=bool)

    # Converted: positive unless the decision came after the horizon.
    late = np.zeros(n, dtype=bool)
    if policy.horizon_days is not None:
        both = (decided != NAT) & (created != NAT)
        late = both & (decided - created > policy.horizon_days * DAY_NS)
    label[is_converted & ~late] = 1.0
    rule[is_converted & ~late] = "positive:converted"
    label[is_converted & late] = 0.0
    rule[is_converted & late] = "negative:converted_after_horizon"

    # Rejected: the reason decides.
    reasons = {k.strip().lower(): v for k, v in policy.reasons.items()}
    rejected_reason = pd.Series(reason[is_rejected], dtype=object)
    action = rejected_reason.map(reasons)
    kind = np.where(action.notna(), "reason:" + rejected_reason.fillna(""), "unknown_reason")
    kind = np.where(rejected_reason.isna(), "missing_reason", kind)
    action = action.where(action.notna(), policy.unknown_reason)
    action = action.where(rejected_reason.notna(), policy.missing_reason)
    rule[is_rejected] = action.map(_RULE_PREFIX).to_numpy(dtype=object) + ":" + kind
    label[is_rejected] = action.map(_ACTION_LABEL).to_numpy(dtype=float)
    soft[is_rejected] = (action == "soft_negative").to_numpy()

    # Other statuses: the status policy decides; an unlisted status is kept out of training.
    other_status = pd.Series(status[is_other], dtype=object)
    statuses = {k.strip().lower(): v for k, v in policy.status_policy.items()}
    action = other_status.map(statuses)
    listed = action.notna().to_numpy()
    prefix = action.map(_RULE_PREFIX).fillna("excluded").to_numpy(dtype=object)
    rule[is_other] = prefix + np.where(listed, ":status:", ":unknown_status:") + other_status.to_numpy(dtype=object)
    label[is_other] = action.map(_ACTION_LABEL).to_numpy(dtype=float)
    soft[is_other] = (action == "soft_negative").to_numpy()

    # Open: censored until the horizon has passed without a conversion.
    if policy.horizon_days is None:
        rule[is_open] = "censored:open_no_horizon"
    else:
        undated = is_open & ((created == NAT) | (as_of_ns == NAT))
        deadline = created + policy.horizon_days * DAY_NS
        immature = is_open & ~undated & (deadline > as_of_ns)
        unseen = np.zeros(n, dtype=bool)
        if known_until is not None:
            known_until_ns = to_epoch_ns(pd.Series([pd.Timestamp(known_until)]), "known_until")[0]
            unseen = is_open & ~undated & ~immature & (deadline > known_until_ns)
        expired = is_open & ~undated & ~immature & ~unseen
        rule[undated] = "censored:open_undated"
        rule[immature] = "censored:open_immature"
        rule[unseen] = "censored:open_past_export"
        rule[expired] = "negative:open_expired"
        label[expired] = 0.0

    # Mature cohorts only: inside the horizon, quick rejections are known but slow conversions are
    # not yet, so recent labelled leads would over-represent negatives and bias calibration.
    if policy.mature_only and policy.horizon_days is not None and as_of_ns != NAT:
        young = (created != NAT) & (created + policy.horizon_days * DAY_NS > as_of_ns) & ~np.isnan(label)
        rule[young] = "censored:decided_inside_horizon"
        label[young] = np.nan

    weight = np.where(soft, policy.soft_negative_weight, 1.0)
    weight[np.isnan(label)] = np.nan
    frame = pd.DataFrame(
        {
            "label": label,
            "weight": weight,
            "rule": pd.array(rule, dtype="str"),
            "status": pd.array(status, dtype="str"),
            "reason": pd.array(reason, dtype="str"),
            "decided_at": decided.view("datetime64[ns]"),
            "decided": ~is_open,
        },
        index=pd.Index(ids, name="lead_id"),
    )
    per_rule = frame["rule"].value_counts()
    counts = {str(r): int(c) for r, c in sorted(per_rule.items(), key=lambda rc: (-rc[1], rc[0]))}
    return LabelResult(frame=frame, counts=counts)


def _outcome_per_lead(
    outcomes: pd.DataFrame | None, ids: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Status, reason (normalised, object arrays with NaN) and decided_at (int64 ns) per lead."""
    n = len(ids)
    if outcomes is None:
        return np.full(n, np.nan, dtype=object), np.full(n, np.nan, dtype=object), _nat(n)
    for column in ("lead_id", "status"):
        if column not in outcomes.columns:
            raise ValueError(f"outcomes: required column {column!r} is missing")
    lead_ids = outcomes["lead_id"].dropna()
    repeated = lead_ids[lead_ids.duplicated()]
    if len(repeated):
        raise ValueError(
            f"outcomes.lead_id: a lead has more than one outcome row, e.g. {list(repeated.unique()[:5])}"
        )
    lead_of_outcome = positions_of(pd.Index(ids), outcomes["lead_id"], "outcomes.lead_id")
    matched = lead_of_outcome >= 0
    row = np.full(n, -1)  # the outcome row of each lead
    row[lead_of_outcome[matched]] = np.flatnonzero(matched)
    has = row >= 0

    def per_lead(values: np.ndarray, empty):
        out = np.full(n, empty, dtype=values.dtype)
        out[has] = values[row[has]]
        return out

    status = per_lead(_normalised_text(outcomes["status"]), np.nan)
    reason = (
        per_lead(_normalised_text(outcomes["reason"]), np.nan)
        if "reason" in outcomes.columns
        else np.full(n, np.nan, dtype=object)
    )
    decided = (
        per_lead(to_epoch_ns(outcomes["decided_at"], "outcomes.decided_at"), NAT)
        if "decided_at" in outcomes.columns
        else _nat(n)
    )
    return status, reason, decided


def _normalised_text(values: pd.Series) -> np.ndarray:
    """Strip + lower-case as an object array; blanks become NaN (a blank reason is a missing reason)."""
    return clean_text(values).to_numpy(dtype=object, na_value=np.nan)


def outcome_group(status, policy: LabelParams) -> np.ndarray:
    """"converted", "rejected", "open" or "other" per status, as the policy groups statuses.

    Compared stripped and lower-cased; no status yet is open; a status listed in two groups counts
    as converted before rejected before open. The one place the status lists are read.
    """
    codes, uniques = pd.factorize(np.asarray(status, dtype=object), use_na_sentinel=True)
    cleaned = np.array([v.strip().lower() if isinstance(v, str) else v for v in uniques] + [np.nan], dtype=object)
    key = pd.Series(cleaned[codes], dtype=object)  # each distinct status cleaned once; code -1 is missing
    converted = key.isin(_normalised_set(policy.converted_statuses)).to_numpy()
    rejected = key.isin(_normalised_set(policy.rejected_statuses)).to_numpy() & ~converted
    still_open = (key.isna() | key.isin(_normalised_set(policy.open_statuses))).to_numpy() & ~converted & ~rejected
    return np.select([converted, rejected, still_open], ["converted", "rejected", "open"], "other").astype(object)


def left_out(rules: pd.Series) -> pd.Series:
    """True per lead whose ``rule`` the policy's ``exclude`` decided (a status or a rejection reason; an unlisted
    status too): no outcome to learn from, as training leaves it out. Not a censored lead, which may still convert."""
    return rules.astype(str).str.startswith(_RULE_PREFIX["exclude"] + ":")


def counted_outcomes(frame: pd.DataFrame, policy: LabelParams) -> np.ndarray:
    """Each lead's outcome as training counts it, from its `build_labels` ``frame``: "converted" (labelled positive:
    within the horizon), "rejected" (a rejection it labels), "other" (any other negative: a conversion after the
    horizon, a lead still open past it, a status such as nurture), "censored" (no label yet: open inside the horizon,
    or decided but younger than it under ``mature_only``) or "excluded" (`left_out`). For a report whose rates must
    agree with what the model learns, e.g. the audit's conversion rate per source."""
    label = frame["label"].to_numpy(dtype=float)
    rejected = outcome_group(frame["status"], policy) == "rejected"
    return np.select([left_out(frame["rule"]).to_numpy(), np.isnan(label), label == 1.0, rejected],
                     ["excluded", "censored", "converted", "rejected"], "other").astype(object)


def policy_reason(policy: LabelParams, value) -> str | None:
    """The ``policy.reasons`` code that ``value`` names, compared as labelling compares it (stripped,
    lower-cased), spelled as the policy spells it; None when it names none."""
    codes = {code.strip().lower(): code for code in policy.reasons}
    return None if value is None else codes.get(str(value).strip().lower())


def _normalised_set(values) -> set[str]:
    return {str(v).strip().lower() for v in values}


def _nat(n: int) -> np.ndarray:
    return np.full(n, NAT, dtype=np.int64)
