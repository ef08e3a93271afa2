"""The closed-loop history every command learns and judges from: the CRM export with the service's
feedback store laid over its outcomes (per lead, the newer decision wins).

The store hears sales' decisions as they happen; an export lags behind. `load_history` is the one
reader (`dataset.assemble` reads through it), so train, evaluate, retrain, backtest and monitor label a
lead alike for the same as-of date, and `FeedbackMerge.line()` says what the store changed. `history_as_of`
gives the history as it stood on an earlier date: only the decisions dated by then laid over the export, and for
a replay of that date only those the store had received by then (`received_by`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace

import pandas as pd

from pipelines.config import Params
from pipelines.contract import CLOCK_SLACK, OUTCOMES
from pipelines.ingest import CRMData, decided_before_created, load_crm

log = logging.getLogger(__name__)


def load_history(
    params: Params, crm: CRMData | None = None, feedback: tuple[pd.DataFrame, int] | None = None
) -> CRMData:
    """The export with the feedback store's decisions merged over its outcomes (`merge_feedback`);
    its `feedback` says what the store changed.

    Args:
        crm: an already loaded export (default: load params.data).
        feedback: the store's decisions (contract outcome columns and, when known, received_at; in the order
            received) and how many events it left out, as `feedback_outcomes` returns them (default: read
            params.serving.store_url).
    """
    crm = crm if crm is not None else load_crm(params)
    decisions, left_out = feedback if feedback is not None else feedback_outcomes(params)
    merged = merge_feedback(crm, decisions)
    merged.feedback.left_out = left_out
    if merged.feedback.before_created:  # warned once here, not at each date `history_as_of` merges again for
        before = merged.feedback.before_created
        log.warning("left out %d feedback decision(s) dated more than %d day before their lead was created, as the "
                    "export's ingest refuses them: %s%s. Send the decision again under a new event_id with its real "
                    "date, or correct the lead's created_at in the CRM.", len(before), CLOCK_SLACK.days,
                    "; ".join(before[:10]), f"; and {len(before) - 10} more" if len(before) > 10 else "")
    return merged


def history_as_of(crm: CRMData, when: pd.Timestamp, as_received: bool = False) -> CRMData:
    """The history as it stood at `when`: the export with only the store's decisions dated by then laid over it.

    A decision dated later was not known then. Merged in anyway, it would replace the export's earlier
    decision and then be cut off by the date with it, leaving the lead undecided (open, or expired
    unconverted) in a replay or a run --as-of; and the feedback line would count it. `crm` is
    `load_history`'s; one without a feedback store is returned as it is.

    `as_received`: also leave out the decisions the store received after `when`, even those dated before
    (`received_by`), and count them: a replay of a past date (a backtest quarter) must not learn what the store
    heard later. Off for train, evaluate and retrain, whose model is trained today and may learn every label the
    store holds by `when`'s date, however late the webhook delivered it.

    Both counts of decisions not used take only those for leads of the export created by `when` (`leads_created_by`):
    one for a lead it lacks, or merged by e-mail into another, would be ignored however early it was dated or received
    (`merge_feedback`), and one for a lead created later is outside the window as of `when` (not used however early
    it had been known).
    """
    merge = crm.feedback
    if merge is None or merge.decisions is None:
        return crm
    exported = leads_created_by(crm.leads, when)
    decisions, received_later = received_by(merge.decisions, when, exported) if as_received else (merge.decisions, 0)
    known = pd.to_datetime(decisions["decided_at"]) <= when
    decided_later = int((~known & decisions["lead_id"].isin(exported)).sum())
    out = merge_feedback(replace(crm, outcomes=merge.export_outcomes), decisions[known])
    out.feedback.left_out, out.feedback.as_of, out.feedback.decided_later = merge.left_out, when, decided_later
    out.feedback.received_later = received_later
    out.feedback.decisions = merge.decisions  # all of them: a later date may be asked for next (backtest's quarters)
    return out


def leads_created_by(leads: pd.DataFrame, when: pd.Timestamp) -> pd.Series:
    """The ids of the export's `leads` created by `when`: the leads a history as of then labels, the only ones whose
    decisions dated or received after it are counted as not used (`history_as_of`, `received_by`)."""
    return leads.loc[leads["created_at"] <= when, "lead_id"]


def received_by(events: pd.DataFrame, when: pd.Timestamp, leads: pd.Series) -> tuple[pd.DataFrame, int]:
    """The store's feedback events as it held them at `when` (those received by then), and how many it received
    later. A report replayed as of `when` must not know a decision the store got after it, even one dated before
    (a webhook retried for days, a backlog the CRM sent in one go). An event without received_at (or decisions
    without the column, e.g. passed to `retrain` in code) counts as received when it was decided.

    `leads`: the lead ids the caller reads (the export's, those created by `when` when it is dated:
    `leads_created_by`); only their later events are counted, since a decision for a lead it never reads would not
    have been used had it arrived in time.
    """
    decided = pd.to_datetime(events["decided_at"])
    received = pd.to_datetime(events["received_at"]).fillna(decided) if "received_at" in events else decided
    later = received > when
    return events[~later], int((later & events["lead_id"].isin(leads)).sum())


def feedback_outcomes(params: Params) -> tuple[pd.DataFrame, int]:
    """Every decision in the feedback store (contract outcomes and when the store received each, in the order
    received: a lead's latest is merged from them), and how many stored events it left out for an impossible
    decided_at (`Store.usable_feedback`); empty when no store exists yet.

    The store is opened read-only: training and retraining need no right to write it, and never leave
    an empty database behind (training on a fresh demo, before the service ran).
    """
    from serving.store import Store

    events, left_out = Store.from_params(params, read_only=True).usable_feedback()
    return events[[*OUTCOMES.columns, "received_at"]], left_out


def _differ_from_export(taken: pd.DataFrame, exported: pd.DataFrame) -> int:
    """How many of the store's decisions taken over the export's differ from its row for the lead (or it has none)."""
    columns = [c for c in OUTCOMES.columns if c != "lead_id"]
    taken = taken.set_index("lead_id")[columns]
    before = exported.drop_duplicates("lead_id", keep="last").set_index("lead_id")[columns].reindex(taken.index)
    same = pd.Series(True, index=taken.index)
    for column in columns:
        same &= (taken[column] == before[column]) | (taken[column].isna() & before[column].isna())
    return int((~same).sum())


def _empty_outcomes() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "lead_id": pd.Series(dtype="str"),
            "status": pd.Series(dtype="str"),
            "reason": pd.Series(dtype="str"),
            "decided_at": pd.Series(dtype="datetime64[us]"),
            "amount": pd.Series(dtype="float64"),
        }
    )


@dataclass
class FeedbackMerge:
    """What the feedback store changed in the export's outcomes."""

    events: int = 0  # leads with a decision in the store
    applied: int = 0  # of those, decisions that replace the export's: later, tied, or undated or absent there
    # Of those, decisions that differ from the export's row for the lead (or it has none): a CRM whose webhook and
    # export say the same thing changes no label, and "N replace the export's" alone cannot tell that apart.
    changed: int = 0
    unknown_leads: int = 0  # decisions for leads the export does not have (cannot be trained on)
    # Decisions for leads the export merged by e-mail into another lead (data.dedupe_by_email): ignored,
    # as the export's own outcomes for them are (the decision may be about the duplicate record itself).
    merged_leads: int = 0
    # Decisions the export would refuse too (ingest.decided_before_created), e.g. "lead 'L7' decided 2020-01-01,
    # created 2024-03-01": one per lead, left out.
    before_created: list[str] = field(default_factory=list)
    left_out: int = 0  # stored events with an impossible decided_at, not counted above (Store.usable_feedback)
    as_of: pd.Timestamp | None = None  # set by `history_as_of`: only decisions dated by then are counted above
    # The store's decisions for leads of the export created by as_of dated after it: not known then, not merged.
    decided_later: int = 0
    # Set by `history_as_of` for a replay, and by monitor (`received_by`): the store's decisions for leads of the
    # export created by as_of received after it, not merged.
    received_later: int = 0
    # What was merged, so that `history_as_of` can merge again for an earlier date: the export's own outcomes and the
    # store's decisions (None when the merge was not given any).
    export_outcomes: pd.DataFrame | None = field(default=None, repr=False)
    decisions: pd.DataFrame | None = field(default=None, repr=False)

    def as_dict(self) -> dict:
        """The counts and the line, for the data fingerprint a run logs (`TrainingSet.fingerprint`)."""
        return {"events": self.events, "applied": self.applied, "changed": self.changed, "unknown_leads": self.unknown_leads,
                "merged_leads": self.merged_leads, "decided_before_created": len(self.before_created),
                "left_out": self.left_out, "as_of": None if self.as_of is None else str(self.as_of),
                "decided_later": self.decided_later, "received_later": self.received_later, "summary": self.line()}

    def line(self) -> str:
        later = (f"; {self.decided_later:,} decision{'' if self.decided_later == 1 else 's'} dated after "
                 f"{self.as_of:%Y-%m-%d %H:%M} not used (not known then)") if self.decided_later else ""
        later += (f"; {self.received_later:,} decision{'' if self.received_later == 1 else 's'} received after "
                  f"{self.as_of:%Y-%m-%d %H:%M} not used (not known then)") if self.received_later else ""
        if not self.events and not self.left_out:
            if later:
                known = "known" if self.received_later else "dated"
                return (f"feedback store: no sales decision {known} by {self.as_of:%Y-%m-%d %H:%M} (the export's outcomes "
                        f"alone){later}")
            return "feedback store: no sales decision received yet (the export's outcomes alone)"  # a fresh install
        repeats = self.applied - self.changed
        named = "; ".join(self.before_created[:3]) + (f"; and {len(self.before_created) - 3:,} more"
                                                       if len(self.before_created) > 3 else "")
        return (f"feedback store: {self.events:,} lead decision{'' if self.events == 1 else 's'}, {self.applied:,} replace the export's "
                "(decided later, at the same time, or undated there)"
                + (f": {self.changed:,} change{'s' if self.changed == 1 else ''} a lead's outcome or add{'s' if self.changed == 1 else ''} "
                   "one the export lacks" if self.applied else "")
                + (f", {repeats:,} repeat{'s' if repeats == 1 else ''} it" if repeats else "")
                + (f", {self.unknown_leads:,} for leads not in the export (ignored)" if self.unknown_leads else "")
                + (f", {self.merged_leads:,} for leads merged by e-mail into another lead (ignored, as the export's "
                   "own outcomes for them are)" if self.merged_leads else "")
                + (f", {len(self.before_created):,} decided more than a day before their lead was created (ignored, "
                   f"as the export's own would be: {named})" if self.before_created else "")
                + later
                + (f"; {self.left_out:,} events with an impossible decided_at left out (they stay in the store; "
                   "see the warning)" if self.left_out else ""))


def merge_feedback(crm: CRMData, feedback: pd.DataFrame) -> CRMData:
    """The export with the feedback store's decisions laid over its outcomes: per lead, the newer wins.

    Newer = later decided_at; on a tie, or when the export's row has no date, the feedback wins
    (the service hears a decision as it happens; an export lags behind it). Feedback for leads the
    export does not contain is dropped and counted: without the lead row there is nothing to learn from.
    So is feedback for a lead the export merged by e-mail into another, as the export drops its outcomes.
    A decision dated before its lead was created is left out and named, as the export's ingest refuses
    it: otherwise, once the lead matured, a wrong date would become a label that no export would give.
    The result's `feedback` counts all of this.
    """
    stats = FeedbackMerge(events=int(feedback["lead_id"].nunique()) if len(feedback) else 0,
                          export_outcomes=crm.outcomes, decisions=feedback)
    if not len(feedback):
        return replace(crm, feedback=stats)
    known = feedback["lead_id"].isin(crm.leads["lead_id"])
    merged_away = feedback["lead_id"].isin(crm.merged_by_email.index)
    stats.merged_leads = int(feedback.loc[merged_away, "lead_id"].nunique())
    stats.unknown_leads = int(feedback.loc[~known & ~merged_away, "lead_id"].nunique())
    incoming = feedback.loc[known, list(OUTCOMES.columns)]
    exported = crm.outcomes[list(OUTCOMES.columns)] if crm.outcomes is not None else _empty_outcomes()
    date_type = exported["decided_at"].dtype if len(exported) else "datetime64[us]"
    incoming = incoming.assign(decided_at=pd.to_datetime(incoming["decided_at"]).astype(date_type))
    early = decided_before_created(incoming, crm.leads)
    if len(early):
        refused = incoming.loc[early.index]
        stats.before_created = [f"lead {lead!r} decided {decided:%Y-%m-%d}, created {created:%Y-%m-%d}"
                                for lead, decided, created in zip(refused["lead_id"], refused["decided_at"], early)]
        incoming = incoming.drop(index=early.index)
    both = pd.concat([exported.assign(_from_store=0), incoming.assign(_from_store=1)], ignore_index=True)
    ordered = both.sort_values(["decided_at", "_from_store"], na_position="first", kind="stable")
    latest = ordered.drop_duplicates("lead_id", keep="last")
    stats.applied = int(latest["_from_store"].sum())
    stats.changed = _differ_from_export(latest[latest["_from_store"] == 1], exported)
    outcomes = latest.drop(columns="_from_store").sort_index().reset_index(drop=True)
    return replace(crm, outcomes=outcomes, feedback=stats)
