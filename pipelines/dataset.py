"""From a CRM export to the labelled, point-in-time training frame (used by train, evaluate, inspect).

One function so every command sees the same rows: ingest + the feedback store (history.load_history) ->
closed-loop labels -> snapshot per lead (when it would have been scored) -> feature frame -> leakage check.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd

from features.build import (ACTIVITY_COLUMNS, NAT, ages_open, build_features, decision_times, lead_age_days,
                            lead_columns_read, positions_of, to_epoch_ns, training_snapshots, unmatched_settings,
                            unread_activity_types)
from features.labels import LabelResult, build_labels, outcome_group
from features.leakage import LeakWarning, leakage_check
from models.encoding import most_frequent
from pipelines.config import FeatureParams, Params
from pipelines.history import history_as_of, load_history
from pipelines.ingest import (CRMData, absent_columns, absent_columns_text, crm_column_in, personal_by_name,
                             personal_columns_listed)

# How long after an export's 'now' (data_as_of) `as_of` may be. Past it, leads still open when the
# export was taken would count as expired unconverted (no outcome by their horizon) while their
# outcome was simply not in the file yet; a CRM with enough leads to train on is not silent a week.
AS_OF_PAST_EXPORT_LIMIT = pd.Timedelta(days=7)
# How long before the export's 'now' its activity file may end, leads created since, before `activities_end_early`
# asks whether it is an earlier export's: as long as a CRM with enough leads to train on is not silent.
ACTIVITIES_END_LIMIT = AS_OF_PAST_EXPORT_LIMIT


@dataclass
class TrainingSet:
    crm: CRMData
    labels: LabelResult
    features: pd.DataFrame  # labelled rows only, index lead_id
    feature_params: FeatureParams  # the features section `features` was built with
    y: np.ndarray
    weights: np.ndarray  # the label policy's (soft negatives count less): they shape ranking
    # Per row, how many leads open at its snapshot age it stands for (features.build.ages_open; 1
    # undated). The calibrator fits real conversions with these, so a probability holds at every age.
    calibration_weights: np.ndarray
    reasons: pd.Series  # rejection reason of rejected rows, NaN otherwise (target of the reason model)
    created_at: pd.Series | None
    snapshot_at: pd.Series | None  # when each row is seen (training_snapshots), index lead_id; None undated
    as_of: pd.Timestamp | None
    leaks: list[LeakWarning]

    @property
    def age_days(self) -> np.ndarray:
        """Each row's age in days at its snapshot (what the calibrator's age shift reads); NaN undated."""
        if self.snapshot_at is None or self.created_at is None:
            return np.full(len(self.y), np.nan)
        return lead_age_days(self.created_at, self.snapshot_at)

    def fingerprint(self, params: Params) -> dict:
        """What the model was trained on: rows, label counts per rule, what the feedback store changed,
        source file hashes."""
        out = {
            "leads": len(self.crm.leads),
            "activities": 0 if self.crm.activities is None else len(self.crm.activities),
            "labelled_rows": len(self.y),
            "positives": int(self.y.sum()),
            "as_of": str(self.as_of) if self.as_of is not None else None,
            "label_rules": dict(self.labels.counts),
        }
        if self.crm.feedback is not None:
            out["feedback"] = self.crm.feedback.as_dict()
        if params.data.sql_url is None:
            for key in ("leads", "activities", "outcomes"):
                spec = getattr(params.data, key)
                if spec and (path := params.resolve(spec)).exists():
                    out[f"sha256_{key}"] = file_sha256(path)
        return out


def file_sha256(path) -> str:
    """A file's SHA-256, read once while it stays the same file of the same size and modification time:
    retrain fingerprints the export to compare with the champion's training key, then again when it logs
    the challenger (a GB of activities at 1M leads)."""
    stat = path.stat()
    return _sha256(str(path), stat.st_ino, stat.st_size, stat.st_mtime_ns)


@functools.lru_cache(maxsize=16)
def _sha256(path: str, inode: int, size: int, mtime_ns: int) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def data_as_of(crm: CRMData) -> pd.Timestamp | None:
    """The export's 'now': its latest lead creation or decision (None for undated exports).

    Not its latest activity: CRMs log scheduled meetings and webinars ahead, and one activity dated
    next year would make every open lead look past the label horizon, so labelled negative. Nor the
    feedback store's latest decision (`history.load_history`): the store hears only the decisions the
    CRM sends the service, so one decision sent today would make a months-old export's open leads,
    which may have been decided since without the store hearing of it, count as expired unconverted.
    """
    stamps = []
    outcomes = crm.outcomes if crm.feedback is None else crm.feedback.export_outcomes  # the export's own
    if "created_at" in crm.leads:
        stamps.append(crm.leads["created_at"].max())
    if outcomes is not None and "decided_at" in outcomes:
        stamps.append(outcomes["decided_at"].max())
    stamps = [s for s in stamps if pd.notna(s)]
    return max(stamps) if stamps else None


# A features section naming nothing to read, as in a params file written without one (`FeatureParams`' defaults
# are empty): the export's columns then go unread, and the model would give every lead one score.
NO_FEATURES_READ = ("the features section reads no feature: features.categorical, numeric, derived and activity_types "
                    "are all empty, as in a params file without a features section; copy the project's params.yaml "
                    "features section and name the export's columns there")


def setting_warnings(ts: TrainingSet, params: Params, judging: bool = False) -> list[str]:
    """What features, train, retrain, backtest, evaluate and audit warn about the feature settings against the
    export of `ts`: a CSV's rows of fewer values than its header (`CRMData.short_rows`, as `score` warns), no feature
    read at all (`NO_FEATURES_READ`), a lead column the features read that the leads source lacks (a typo, a header
    'Industry ' with a blank: every lead trains as not having it, as `score` warns) or leaves blank on every labelled
    lead (`columns_blank`), most conversions labelled past the horizon (`conversions_after_horizon`),
    decisions without a date (`decisions_undated`), an activity file that gives training no activity
    (`activities_unused`) or none of the labelled leads' (`activities_of_open_leads_only`), or some of whose rows are
    of types the features do not read (`activities_partly_unread`), then the values
    `unmatched_settings` finds in none of its rows; and, of the settings alone, a personal column read as a category
    (`personal_categories`). A warning, not a refusal: an export may lack an optional column,
    and the model then learns without it.

    `judging`: the command judges a model on the export (evaluate, audit) rather than training one, so the
    sentences say what its figures then show: every lead scored without it, not trained without it."""
    crm = ts.crm
    out = list(crm.short_rows) + ([] if ts.features.shape[1] else [NO_FEATURES_READ])
    absent = {} if crm.leads_header is None else absent_columns(crm.leads_header, "leads", params.data,
                                                                 lead_columns_read(params.features))
    if absent:
        out.append(f"data.leads ({params.data.leads}) has no column {absent_columns_text(absent)}, "
                   f"which the features read: every lead {_as(judging)} not having it; check the export's columns or "
                   "data.mapping.leads")
    out += (columns_blank(ts, params, absent, judging) + personal_categories(params) + outcomes_none(ts, params)
            + conversions_after_horizon(ts, params, judging))
    # Counted once per type (`unread_activity_types`): a large export's activity file holds millions of rows.
    unread = unread_activity_types(crm.activities["activity"], params.features) if _activities_read(crm, params) else {}
    unused = activities_unused(crm, params, unread, judging)
    # The file's types are named there already: not again, type by type, as settings no row matches.
    return (out + decisions_undated(ts, params, judging)
            + (unused or activities_of_open_leads_only(ts, params, judging) + activities_end_early(ts, params, judging)
               + activities_partly_unread(crm, params, unread, judging))
            + unmatched_settings(crm.leads, None if unused else crm.activities, params.features))


def columns_blank(ts: TrainingSet, params: Params, absent: dict[str, str | None], judging: bool = False) -> list[str]:
    """A warning naming the lead columns the features read that the leads source has (not `absent`) but that hold no
    value for any labelled lead: a report field exported empty, or one the CRM fills only lately. The model then learns
    nothing from it, as from a column the export lacks, and only the `features` command's fill rates would show it.
    None without labelled leads: the label counts say that already."""
    leads = ts.crm.leads
    labelled = leads[leads["lead_id"].isin(ts.features.index)]
    if labelled.empty:
        return []
    header = ts.crm.leads_header or []
    blank = [name for name in (crm_column_in(params.data, "leads", column, header)
                               for column in lead_columns_read(params.features)
                               if column in labelled and labelled[column].isna().all())
             if name not in absent]
    if not blank:
        return []
    several = len(blank) > 1
    return [f"data.leads ({params.data.leads}) has no value for any of the {len(labelled):,} labelled leads in "
            f"column{'s' * several} {', '.join(map(repr, blank))}, which the features read: every lead "
            f"{_as(judging)} not having {'them' if several else 'it'}; check that the export fills "
            f"{'them' if several else 'it'} (data.missing_values counts as no value)"]


def personal_categories(params: Params) -> list[str]:
    """A warning per personal column of the lead (e-mail, phone, company: contract `LEADS.personal`) that
    features.categorical lists, by its name or by the CRM's name data.mapping maps to it
    (`ingest.personal_columns_listed`; the CRM's name reads no value, as the features name contract columns): its values
    would be the model's category levels and appear in the audit's tables and the score log's factors, which otherwise
    hold no e-mail, phone or company. A warning, not a refusal: a company name is a real, if unwise, category for some
    B2B teams.

    A column of the CRM's own is warned about by its name (`ingest.personal_by_name`: 'Personal Email', 'Contact
    Mobile'), which then says it holds a lead's e-mail, phone number, address, name or company."""
    listed = personal_columns_listed(params.data, params.features.categorical)
    whiches = {}
    for name in params.features.categorical:
        column, kind = listed.get(name), personal_by_name(name)
        if column == name:
            whiches[name] = "a personal column of the lead: its values are kept"
        elif column is not None:
            whiches[name] = (f"which data.mapping maps to {column}, a personal column of the lead: listed as {column}, "
                             "its values would be kept")
        elif kind is not None:
            whiches[name] = f"whose name says it holds the lead's {kind}, personal data: its values are kept"
    return [f"features.categorical lists {name!r}, {which} in the model, the audit and the score log; leave it out, or "
            "derive a non-personal signal from it in features.derived (email_signals: the e-mail domain's kind; "
            "contact_gaps: whether an e-mail, phone or company is given)" for name, which in whiches.items()]


def training_warnings(ts: TrainingSet, params: Params, problems_listed: bool = False) -> list[str]:
    """What features, train and retrain warn of before training on `ts`: the export against the feature settings
    (`setting_warnings`), the rows `data.on_error: drop` left out (`rows_left_out`; not when `problems_listed`: the
    `features` command prints the ingest report's problems above its warnings), then each label rule line of
    rejection reason codes the policy does not list (`LabelResult.unknown_reason_lines`), repeated as a warning because
    it is easily lost among some 15 rule lines."""
    return (setting_warnings(ts, params) + ([] if problems_listed else rows_left_out(ts.crm))
            + [f"label rule {line}" for line in ts.labels.unknown_reason_lines()])


def rows_left_out(crm: CRMData) -> list[str]:
    """A warning counting, per file, the rows (and values of rows kept) `data.on_error: drop` left out for bad values,
    naming the first problem. Only the `features` command's ingest report and the run's data/ingest_report.json said so:
    `train` and `retrain` trained on the rest without a word."""
    problems = crm.report.problems
    if not problems:
        return []
    rows: dict[str, set] = {}
    values: dict[str, int] = {}
    for problem in problems:
        if problem.row_kept:
            values[problem.source] = values.get(problem.source, 0) + 1
        else:
            rows.setdefault(problem.source, set()).add(problem.row)
    left = [f"{len(dropped):,} rows of {source}" for source, dropped in rows.items()]
    left += [f"{count:,} values (their rows kept) of {source}" for source, count in values.items()]
    return [f"data.on_error is drop: training left out {', '.join(left)} that ingest refused (the first problem: "
            f"{problems[0]}); `leadscore features` lists the problems"]


# The share of the conversions training labels that may come after label.horizon_days before
# `conversions_after_horizon` warns. A horizon that covers the sales cycle leaves out only its slow tail (1.5% of the
# demo's conversions, 2.5% of the tests' sample); past a quarter, the horizon is much shorter than the cycle or the
# creation dates are not the leads' own, and the model learns a large part of what converts as not converting.
LATE_CONVERSIONS_SHARE = 0.25
# The share of the leads created on one day past which `conversions_after_horizon` says their creation dates look
# like an import's (a CRM migration or bulk import stamps its own date): leads recorded as they come in put well
# under 1% on any one day (the demo's busiest day holds 0.35%).
ONE_DAY_LEADS_SHARE = 0.2


def conversions_after_horizon(ts: TrainingSet, params: Params, judging: bool = False) -> list[str]:
    """A warning when more than `LATE_CONVERSIONS_SHARE` of the conversions training labels are labelled negative for
    coming more than label.horizon_days after the lead's creation (`negative:converted_after_horizon`): a horizon far
    shorter than the sales cycle, or creation dates that are an import's (every lead of a CRM migration created on its
    day, `ONE_DAY_LEADS_SHARE`, which it names). Only that rule's count in the label lines would show it. It gives the
    median days from creation to conversion against the horizon. A warning, not a refusal: a short horizon may be
    meant. `judging` a model (evaluate, audit), the same labels are what it is judged by."""
    counts = ts.labels.counts
    late = counts.get("negative:converted_after_horizon", 0)
    conversions = late + counts.get("positive:converted", 0)
    if not late or late <= LATE_CONVERSIONS_SHARE * conversions:
        return []
    # A late conversion has both dates, so the export is dated and `as_of` set; the labelled rows are `ts.features`'.
    labelled = ts.labels.frame.loc[ts.features.index]
    converted = labelled["rule"].isin(["positive:converted", "negative:converted_after_horizon"]).to_numpy()
    days = lead_age_days(ts.created_at[converted], labelled["decided_at"].to_numpy()[converted])
    labels, learns = (("the model is judged by", "they count") if judging else ("training labels", "it learns them"))
    warning = (f"{late:,} of the {conversions:,} conversions {labels} ({late / conversions:.1%}) came more than "
               f"label.horizon_days ({params.label.horizon_days}) after the lead's creation, so {learns} as not "
               f"converted (negative:converted_after_horizon); the median conversion came {np.nanmedian(days):,.0f} "
               "days after creation")
    created = ts.crm.leads["created_at"]
    per_day = created[created <= ts.as_of].dt.floor("D").value_counts()
    that_day, leads = int(per_day.iloc[0]), int(per_day.sum())
    if that_day > ONE_DAY_LEADS_SHARE * leads:
        how_many = f"all {leads:,}" if that_day == leads else f"{that_day:,} of the {leads:,}"
        warning += (f", and {how_many} leads were created on {per_day.index[0]:%Y-%m-%d}: their creation dates look "
                    "like an import date (a CRM migration or bulk import stamps its own), not when the leads came in")
    return [warning + "; raise label.horizon_days to cover the sales cycle, or map the CRM's original creation date "
            "field to created_at in data.mapping.leads"]


# How much more often one side's decisions (conversions, or the others) lack a date than the other's for
# `decisions_undated` to say the dates are one-sided: half of all decisions.
ONE_SIDED_UNDATED = 0.5


def decisions_undated(ts: TrainingSet, params: Params, judging: bool = False) -> list[str]:
    """A warning when a dated export's decisions lack `decided_at` (the CRM's close date left unmapped, or blank):
    each such lead is seen at its creation, its later activity unread, and its conversion counts however long it
    took. The label counts look as usual, so nothing else would say so. Where the dates are missing mostly on one
    side (`ONE_SIDED_UNDATED`: a report's Converted Date, the only date Salesforce's Lead report gives a decision),
    it says so: the two sides are then seen at different ages, and the model learns the difference."""
    labels = ts.labels.frame
    decided = labels["decided"].to_numpy(dtype=bool)
    undated_rows = decided & labels["decided_at"].isna().to_numpy()
    undated = int(undated_rows.sum())
    if not params.data.dated or not undated:
        return []
    warning = (f"{undated:,} of the {int(decided.sum()):,} decided leads have no decided_at (check that data.mapping "
               f"maps the CRM's close date): each {_as(judging)} seen at its creation, its later activity unread, and "
               "its conversion counts however long it took, unchecked against label.horizon_days")
    converted = outcome_group(labels["status"], params.label) == "converted"
    sides = [(int((undated_rows & side).sum()), int((decided & side).sum())) for side in (converted, ~converted)]
    if all(total for _, total in sides) and abs(sides[0][0] / sides[0][1] - sides[1][0] / sides[1][1]) >= ONE_SIDED_UNDATED:
        (conversions_undated, conversions), (others_undated, others) = sides
        warning += (f"; they are {conversions_undated:,} of the {conversions:,} conversions but {others_undated:,} of "
                    f"the {others:,} other decisions, so one side is seen later in its life than the other, with "
                    "activity the other is never seen with, and the model learns which leads have a date rather "
                    "than which convert (a date only conversions get, as Salesforce's Converted Date, does this): "
                    "map a date every decision has, the day its status closed")
    return [warning]


def _as(judging: bool) -> str:
    """How every lead meets a value the export lacks: in training, or in the scores a model is judged by."""
    return "is scored as" if judging else "trains as"


def outcomes_none(ts: TrainingSet, params: Params) -> list[str]:
    """A warning when a tables export gives no outcome: data.outcomes is unset, of its header only (a report filter
    that matched nothing, as a leads file of its header only is refused for) or has every row refused. Every lead the
    service's feedback store holds no decision for is then open, and counts as not converted once past
    label.horizon_days: only the label counts' `negative:open_expired` would say so. A warning, not a refusal: the
    store's decisions may be the labels a CRM gives."""
    crm = ts.crm
    own = crm.outcomes if crm.feedback is None else crm.feedback.export_outcomes  # the export's, without the store's
    if params.data.format == "flat" or (own is not None and len(own)):  # a flat export's lead rows hold their outcome
        return []
    table = crm.report.tables.get("outcomes")
    read = table.rows_read if table is not None else 0
    kept = f"none of its {read:,} rows kept (the ingest report says why)" if read else "no row (its header only)"
    found = "data.outcomes is not set" if own is None else f"data.outcomes ({params.data.outcomes}) has {kept}"
    expired = ts.labels.counts.get("negative:open_expired", 0)
    return [f"{found}: every lead without a decision in the service's feedback store is open, and counts as not "
            f"converted past label.horizon_days ({expired:,} leads: negative:open_expired); export the outcomes "
            "(status, reason, decided_at) with the leads"]


def activities_unused(crm: CRMData, params: Params, unread: dict[str, int], judging: bool = False) -> list[str]:
    """A warning when the activity file gives training no activity to count: it has no row (its header only, or
    every row refused), or none of its rows is of a type the features read (`unread`, its `unread_activity_types`:
    the CRM's 'Requested Demo' for demo_request, as `score` warns). Every lead then trains as never active (or,
    `judging` a model, is scored as never active). A warning, not a refusal: a CRM without activity tracking is
    legitimate, and the model learns from lead fields alone."""
    if not _activities_read(crm, params):
        return []
    source = _activities_source(crm)
    never_active = _never_active(judging, "lead")
    if crm.activities.empty:
        read = crm.report.tables["activities"].rows_read
        found = (f"none of its {read:,} rows was kept (the ingest report says why)" if read else
                 "no activity row (its header only)")
        return [f"{source} has {found}: {never_active}"]
    if sum(unread.values()) < len(crm.activities):  # some row is of a type read
        return []
    return [f"none of the {len(crm.activities):,} activity rows of {source} is of a type the features read "
            f"({', '.join(params.features.activity_types)}): {never_active}; the file's types: {most_frequent(unread)} "
            "(write them as features.activity_types does, or translate them with data.value_maps.activity)"]


def unread_activity_rows(unread: Mapping[str, int], rows: int, source: str | None = None) -> str:
    """"4 of the 120 activity rows are of a type the model does not read ('chat_started' 3, 'Requested Demo' 1)":
    how `leadscore score` and training count the rows of `unread_activity_types` (of `rows`, some of them read), one
    sentence for both so a user reads the same words at either. `source` names the file ("data.activities (...)")."""
    unread_rows = sum(unread.values())
    of = f" of {source}" if source else ""
    return (f"{unread_rows:,} of the {rows:,} activity rows{of} {'is' if unread_rows == 1 else 'are'} of a type the "
            f"model does not read ({most_frequent(unread)})")


def activities_partly_unread(crm: CRMData, params: Params, unread: dict[str, int], judging: bool = False) -> list[str]:
    """A warning when some of the activity file's rows, not all (`activities_unused` says that), are of a type the
    features do not read (`unread`, its `unread_activity_types`): a new CRM type ('Webinar Attended') or a label no
    data.value_maps.activity entry translates. Training then ignores them (or, `judging` a model, its scores do), and
    nothing else would say so; counted and named in `score`'s words (`unread_activity_rows`)."""
    if not unread or sum(unread.values()) == len(crm.activities):
        return []
    ignored, learner = (("in the scores the model is judged by", "a retrain") if judging
                        else ("in training", "the model"))
    return [f"{unread_activity_rows(unread, len(crm.activities), _activities_source(crm))}: not counted {ignored}; "
            "have data.value_maps.activity translate them to one the features read "
            f"({', '.join(params.features.activity_types)}), or list them in features.activity_types for {learner} to "
            "learn them"]


def activities_of_open_leads_only(ts: TrainingSet, params: Params, judging: bool = False) -> list[str]:
    """A warning when the activity file names leads, but none of the labelled ones training learns from (or, `judging`
    a model, that it is judged on): an export of the open leads' activity only (a CRM view of the pipeline, a sync
    that skips closed leads). Every labelled lead then trains as never active while the open leads it scores are
    active, and nothing else would say so. None without labelled leads: the label counts say that already."""
    crm = ts.crm
    if not _activities_read(crm, params) or crm.activities.empty or not len(ts.features):
        return []
    named = crm.activities["lead_id"].drop_duplicates()
    if named.isin(ts.features.index).any():
        return []
    labels = ts.labels.frame
    still_open = int((labels.index.isin(named) & ~labels["decided"].to_numpy(dtype=bool)).sum())
    learns = "the model is judged on" if judging else "training learns from"
    return [f"{_activities_source(crm)} names {len(named):,} leads ({still_open:,} of them still open), none of them "
            f"one of the {len(ts.features):,} labelled leads {learns}: {_never_active(judging, 'labelled lead')}; check "
            "that the export's activities cover the decided leads too, not only the open ones"]


def activities_end_early(ts: TrainingSet, params: Params, judging: bool = False) -> list[str]:
    """A warning when the activity file ends well before the export's 'now' (`data_as_of`) while leads were created
    since: an earlier export's file beside this one's leads (`--leads` names the new leads file, data.activities
    still last quarter's). The leads created since then, and every lead's activity since, are read as none; the
    labels look as usual, so nothing else would say so."""
    crm = ts.crm
    now = data_as_of(crm)
    if not _activities_read(crm, params) or crm.activities.empty or now is None:
        return []
    last = crm.activities["occurred_at"].max()
    later = int((crm.leads["created_at"] > last).sum())
    if now - last <= ACTIVITIES_END_LIMIT or not later:
        return []
    return [f"{_activities_source(crm)} ends {last:%Y-%m-%d %H:%M}, {(now - last).days} days before the export's "
            f"latest lead or decision ({now:%Y-%m-%d %H:%M}), and {later:,} leads were created since: is it an earlier "
            "export's? Their activity, and every lead's since then, is read as none, so the model "
            f"{'is judged on' if judging else 'learns from'} them as if inactive; name this export's activity file "
            "in data.activities (--leads names the leads file only)"]


def _activities_read(crm: CRMData, params: Params) -> bool:
    """Whether the features read an activity file: there is one, and the export is dated (an undated one places no
    activity in time) and the settings count activity types."""
    return crm.activities is not None and params.data.dated and bool(params.features.activity_types)


def _activities_source(crm: CRMData) -> str:
    """The activity file as a warning names it."""
    return f"data.activities ({crm.report.tables['activities'].source})"


def _never_active(judging: bool, lead: str) -> str:
    """What a warning says when no `lead`'s activity is counted: in training, or in the scores a model is judged by."""
    return (f"every {lead} {_as(judging)} never active, so "
            + ("the figures judge the model on lead fields only" if judging else "the model learns from lead fields only"))


def with_model_features(params: Params, scorer) -> Params:
    """`params` whose features section is the one `scorer` was trained with (saved on the model).

    Explaining or monitoring a model on features built from today's params.yaml would measure it on
    values it never sees in serving if ICP, e-mail domain lists or windows changed since training.
    """
    return params.model_copy(update={"features": scorer.features})


def model_features(scorer, training_set: TrainingSet, lead_ids: pd.Index) -> pd.DataFrame:
    """These leads of `training_set` as `scorer`'s own saved feature settings build them.

    Comparing models on the same leads (retrain's champion, the audit's previous version) must give
    each the values it would see in serving: a model trained with another ICP, domain list or window
    list would otherwise be scored on another model's columns of the same name, or on none, and one
    trained on codes written "3.0" would read a newer export's "3" as never seen (``LeadScorer.as_known``). Both
    are seen at the same moments (the training set's snapshots). The training set's frame is reused
    when it was built with the same settings.
    """
    if scorer.features == training_set.feature_params:
        return scorer.as_known(training_set.features.loc[lead_ids])
    # The same moments as the training set's rows, whatever ages the other model was trained at.
    return scorer.as_known(features_at(training_set.crm, lead_ids, training_set.snapshot_at, scorer.features))


def features_at(crm: CRMData, lead_ids: pd.Index, snapshot_at: pd.Series | None, spec: FeatureParams) -> pd.DataFrame:
    """These leads of the export as `spec` builds them, each as of its moment in `snapshot_at` (a
    Series indexed by lead_id; None for undated exports), in `lead_ids` order."""
    leads = crm.leads.set_index("lead_id", drop=False).loc[lead_ids].reset_index(drop=True)
    if snapshot_at is None:
        return build_features(leads, None, None, spec, crm.decimal_mark)
    return build_features(leads, crm.activities, snapshot_at.loc[lead_ids], spec, crm.decimal_mark)


def features_at_moments(crm: CRMData, lead_ids: np.ndarray, moments: np.ndarray, spec: FeatureParams) -> pd.DataFrame:
    """(lead, moment) pairs of a dated export as `spec` builds them, in pair order (index lead_id, repeated where a
    lead is: monitor's reference sees a lead open long at several ages).

    One `build_features` over every pair, each a lead of its own with a copy of its lead's activities by then,
    instead of one build per set of distinct leads, each filtering the whole export again (130 builds on `sample-data
    --leads 200000`). A bad value of a lead's own (text in a numeric column) is named by its lead_id, as a build of the
    leads alone names it.
    """
    leads = crm.leads.set_index("lead_id", drop=False).loc[lead_ids].reset_index(drop=True)
    pair_leads = leads.assign(lead_id=np.arange(len(lead_ids)))
    activities = crm.activities
    if activities is not None:
        # Each dated activity of a drawn lead, once per pair of that lead seen at or after it: a later one never
        # counts, and copying it anyway for every pair of a lead seen young doubled the build's peak memory.
        lead_of_pair, distinct = pd.factorize(lead_ids)
        seen_at = to_epoch_ns(pd.Series(moments), "moments")
        per_lead = np.bincount(lead_of_pair, minlength=len(distinct))
        pairs_by_lead = np.lexsort((seen_at, lead_of_pair))  # each lead's pairs, earliest first
        first_pair = np.cumsum(per_lead) - per_lead  # where each lead's pairs start in pairs_by_lead
        lead = positions_of(pd.Index(distinct), activities["lead_id"], "activities.lead_id")
        rows = np.flatnonzero(lead >= 0)
        lead = lead[rows]
        occurred = to_epoch_ns(activities["occurred_at"].iloc[rows], "activities.occurred_at")
        # How many of its lead's pairs are seen before each activity: times ranked (equal times equal ranks) so that
        # (lead, time) fits one sortable int64.
        rank = np.unique(np.concatenate([seen_at, occurred]), return_inverse=True)[1].reshape(-1)
        times = rank.max() + 1
        earlier = np.searchsorted((lead_of_pair * times + rank[:len(seen_at)])[pairs_by_lead],
                                  lead * times + rank[len(seen_at):]) - first_pair[lead]
        copies = np.where(occurred == NAT, 0, per_lead[lead] - earlier)
        nth = np.arange(copies.sum()) - np.repeat(np.cumsum(copies) - copies, copies)
        activities = activities[list(ACTIVITY_COLUMNS)].iloc[np.repeat(rows, copies)].assign(
            lead_id=pairs_by_lead[np.repeat(first_pair[lead] + earlier, copies) + nth])
    try:
        features = build_features(pair_leads, activities, pd.Series(moments, index=pair_leads.index), spec,
                                  crm.decimal_mark)
    except ValueError:
        # Named by pair number there: each lead built once under its own lead_id (no activities, no moment) names it.
        build_features(leads.drop_duplicates("lead_id"), None, None, spec, crm.decimal_mark)
        raise
    return features.set_axis(pd.Index(lead_ids, name="lead_id"))


@dataclass
class OpenAtAge:
    """The leads still open at one snapshot age, with their features as of then."""

    age_days: float
    features: pd.DataFrame  # index lead_id
    y: np.ndarray


def open_at_ages(ts: TrainingSet, rows: np.ndarray, spec: FeatureParams, ages: list[float]) -> list[OpenAtAge]:
    """The ``rows`` leads at each of ``ages`` (days after creation) at which they were still undecided
    and which the export's 'now' had reached, with features as of then (built with ``spec``).

    A CRM scores a lead again whenever it changes, so these (lead, age) pairs are what its queue of
    open leads holds: the calibrator's age shifts are fit on them (``models.train.fit_scorer``), and
    ``evaluate_while_open`` judges on them. Empty for undated exports.
    """
    if ts.created_at is None or ts.as_of is None:
        return []
    ids = ts.features.index[rows]
    created = ts.crm.leads.set_index("lead_id")["created_at"].loc[ids].to_numpy()
    labels = ts.labels.frame.loc[ids]
    decided = decision_times(labels, np.arange(len(ids)), to_epoch_ns(pd.Series(created), "leads.created_at")
                             ).view("datetime64[ns]")
    open_ages, open_rows, moments = [], [], []
    for age in ages:
        seen_at = created + np.timedelta64(round(age * 86_400), "s")
        open_then = (seen_at <= np.datetime64(ts.as_of)) & ~(decided <= seen_at)  # NaT compares False: open
        if open_then.any():
            open_ages.append(float(age))
            open_rows.append(np.flatnonzero(open_then))
            moments.append(seen_at[open_then])
    if not open_ages:
        return []
    # Every age's open leads in one build (features_at_moments), then cut back into ages in the same order.
    features = features_at_moments(ts.crm, ids.to_numpy()[np.concatenate(open_rows)], np.concatenate(moments), spec)
    ends = np.cumsum([len(r) for r in open_rows])
    y = ts.y[rows]
    return [OpenAtAge(age, features.iloc[end - len(r):end], y[r]) for age, r, end in zip(open_ages, open_rows, ends)]


def refuse_before_first_lead(ts: TrainingSet) -> None:
    """Refuse an as-of date before the export's first lead was created, naming both dates.

    Nothing existed then: without this, training fails on a split part without conversions and the
    audit on an empty frame, neither saying that the date is the problem. For the commands given a date
    (--as-of), not in `assemble`: the backtest's quarter starts and monitor's window pass their own dates,
    and a quarter too early to train on has the backtest's own advice (how many quarters to replay).
    """
    created = ts.crm.leads["created_at"] if ts.as_of is not None else None
    if created is None or (created <= ts.as_of).any():
        return
    first = f"the first was created {created.min():%Y-%m-%d}" if created.notna().any() else "it has none"
    raise ValueError(f"--as-of {ts.as_of:%Y-%m-%d}: no lead in the export was created by then ({first}); choose a later date")


def assemble(params: Params, as_of: pd.Timestamp | None = None, crm: CRMData | None = None,
             as_received: bool = False) -> TrainingSet:
    """Labelled point-in-time training frame for the export in params with the feedback store laid over
    its outcomes (`load_history`, as retrain reads them), or for an already loaded `crm`.

    Args:
        as_of: treat this as 'now' (leads created or decided after it are ignored); defaults to the
            export's latest lead creation or decision (data_as_of), and may not be more than
            AS_OF_PAST_EXPORT_LIMIT after it.
        as_received: a replay of `as_of`: also leave out the store's decisions it received after then
            (`history.history_as_of`); off, every decision the store holds by its date counts.
    """
    crm = crm if crm is not None else load_history(params)
    if crm.leads.empty:  # a header-only file, or every row refused: no date to be 'now', no lead to label
        raise ValueError(f"no lead to label: {crm.report.lines()[0]}")
    leads, outcomes, activities = crm.leads, crm.outcomes, crm.activities
    dated = params.data.dated
    if dated:
        end = data_as_of(crm)
        as_of = pd.Timestamp(as_of) if as_of is not None else end
        if end is not None and as_of > end + AS_OF_PAST_EXPORT_LIMIT:
            raise ValueError(
                f"as_of {as_of:%Y-%m-%d %H:%M} is {(as_of - end).days} days after the export's latest lead "
                f"creation or decision ({end:%Y-%m-%d %H:%M}): leads still open when it was taken would count as "
                f"expired without an outcome; use a date up to {end + AS_OF_PAST_EXPORT_LIMIT:%Y-%m-%d}, or a newer "
                "export"
            )
        crm = history_as_of(crm, as_of, as_received)  # a decision dated later must not hide the export's earlier one
        leads, outcomes = crm.leads[crm.leads["created_at"] <= as_of], crm.outcomes
        if outcomes is not None:
            outcomes = outcomes[outcomes["decided_at"].isna() | (outcomes["decided_at"] <= as_of)]
    labels = build_labels(leads, outcomes, params.label, as_of if dated else None)
    used = labels.frame[labels.frame["label"].notna()]
    leads = leads.set_index("lead_id", drop=False).loc[used.index].reset_index(drop=True)
    snapshots = training_snapshots(leads, used.reset_index(), params.features) if dated else None
    features = build_features(leads, activities if dated else None, snapshots, params.features, crm.decimal_mark)
    y = used["label"].to_numpy(dtype=np.float64)
    reasons = used["reason"].where(outcome_group(used["status"], params.label) == "rejected")
    leaks = leakage_check(features, pd.Series(y, index=features.index), params.features.leakage_auc)
    return TrainingSet(
        crm=crm,
        labels=labels,
        features=features,
        feature_params=params.features,
        y=y,
        weights=used["weight"].to_numpy(dtype=np.float64),
        calibration_weights=ages_open(leads, used.reset_index(), params.features) if dated else np.ones(len(y)),
        reasons=reasons.reset_index(drop=True),
        created_at=leads["created_at"].reset_index(drop=True) if dated else None,
        snapshot_at=snapshots,
        as_of=as_of if dated else None,
        leaks=leaks,
    )
