"""The point-in-time feature frame: the ONE function training, batch scoring and the service call.

``feature_catalog`` declares the features from params alone (names, kinds, explanation signals,
monotone constraints), so a saved model knows its inputs without seeing data. ``build_features``
computes them for any set of leads as of a snapshot time: an activity after the snapshot never
counts, so a training row sees exactly what a scorer would have seen at that moment.

Everything is vectorised over leads and activities (text rules run once per distinct value), which
keeps one call fast for a single lead in the service and for millions of leads in batch.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd

from pipelines.config import FeatureParams, value_map_labels
from pipelines.contract import CLOCK_SLACK, LARGEST_NUMBER, LEADS, email_address
from pipelines.numbers import TWO_WAYS_WHERE, DecimalMark, read_numbers

DAY_NS = 86_400 * 10**9
NAT = np.iinfo(np.int64).min  # NaT as numpy stores it in int64 nanoseconds
TREND_DAYS = 7  # engagement_trend compares the last week with the week before

# Company size bands (upper bound inclusive, LinkedIn style), for the size_band feature.
SIZE_BAND_UPPER = (10, 50, 200, 1000, 5000)
SIZE_BAND_NAMES = ("1-10", "11-50", "51-200", "201-1000", "1001-5000", "5001+")

# Job-title rules, first match wins; titles are lower-cased with punctuation turned into spaces
# ("Sr. Director, IT" -> "sr director it") before matching.
SENIORITY_RULES: tuple[tuple[str, str], ...] = (
    ("student", r"\b(?:student|undergrad\w*|phd candidate|doctoral candidate|werkstudent\w*)\b"),
    ("intern", r"\b(?:intern|interns|internship|trainee|apprentice|praktikant\w*)\b"),
    ("individual", r"\bassistant (?:to|of)\b|\b(?:ea|pa) to\b"),  # "Executive Assistant to the CEO"
    (
        "c_level",
        r"\b(?:chief|ceo|cto|cfo|coo|cmo|cio|cro|cso|cdo|cco|ciso|cxo|founder|cofounder|proprietor"
        r"|managing director|managing partner|general partner|founding partner|executive director"
        r"|geschäftsführer|pdg)\b|(?<!vice )\bpresident\b|(?<!product )\bowner\b",
    ),
    ("vp", r"\b(?:vp|svp|evp|avp|vice president|v p)\b"),
    ("director", r"\b(?:director|directeur|direktor|head|dir)\b"),
    ("manager", r"\b(?:manager|mgr|management|leader|supervisor|foreman|superintendent)\b|\blead\b(?! gen)"),
    (
        "individual",
        r"\b(?:engineer\w*|developer|programmer|analyst|specialist|consultant|associate|representative|rep"
        r"|coordinator|administrator|admin|accountant|bookkeeper|designer|scientist|architect|executive"
        r"|officer|assistant|agent|marketer|writer|editor|researcher|technician|advisor|adviser|planner"
        r"|buyer|recruiter|strategist|staff|employee|clerk|operator|attorney|lawyer|counsel|paralegal"
        r"|auditor|controller|professional|generalist|member|senior|sr|junior|jr|nurse|teacher"
        r"|physician|doctor|pharmacist|professor|lecturer|contractor|freelance\w*|trader|broker|worker"
        r"|expert|product owner|salesperson|sales|marketing|support)\b",
    ),
)
DEPARTMENT_RULES: tuple[tuple[str, str], ...] = (
    ("hr", r"\b(?:hr|human resources?|recruit\w*|talent|people|personnel)\b"),
    (
        "marketing",
        r"\b(?:marketing|marketer|cmo|growth|demand gen\w*|brand\w*|content|seo|sem|communications?|pr"
        r"|social media|campaigns?)\b",
    ),
    (
        "sales",
        r"\b(?:sales|salesperson|cro|chief revenue officer|revenue|account executive|account manager"
        r"|account director|key account|business development|bdr|sdr|bd|partnerships?|commercial)\b",
    ),
    ("customer_success", r"\b(?:customer success|customer support|customer service|customer experience|support|cx)\b"),
    (
        "finance",
        r"\b(?:finance|financial|cfo|accountant|accounting|accounts|controller|comptroller|treasurer|treasury"
        r"|fp a|bookkeep\w*|audit\w*|tax)\b",
    ),
    ("legal", r"\b(?:legal|counsel|lawyer|attorney|paralegal|compliance)\b"),
    ("data", r"\b(?:data|analytics|bi|business intelligence|machine learning|ml|ai)\b"),
    (
        "it",
        r"\b(?:it|information technology|chief information officer|cio|ciso|sysadmin|system administrator"
        r"|systems administrator|network|security|infrastructure|help ?desk)\b",
    ),
    (
        "engineering",
        r"\b(?:engineer\w*|developer|development|software|cto|devops|sre|programmer|architect|r d|technical"
        r"|technology|qa)\b",
    ),
    ("product", r"\b(?:product|ux|ui|design\w*)\b"),
    ("operations", r"\b(?:operations|operating|coo|ops|supply chain|logistics|procurement|purchasing|office)\b"),
    (
        "executive",
        r"\b(?:ceo|chief executive|founder|cofounder|owner|managing director|general manager|managing partner"
        r"|executive director|geschäftsführer)\b|(?<!vice )\bpresident\b",
    ),
)
UNKNOWN = "unknown"  # no job title, or one no rule recognises (seniority)
OTHER_DEPARTMENT = "other"  # a job title that names no department the rules know

# Derived feature groups: params name -> (feature, kind, explanation signal).
_DERIVED: dict[str, tuple[tuple[str, str, str], ...]] = {
    "size_band": (("size_band", "categorical", "size_band"),),
    "seniority": (("seniority", "categorical", "seniority"),),
    "department": (("department", "categorical", "department"),),
    "icp_match": (("icp_match", "numeric", "icp_match"),),
    "email_signals": (
        ("email_free", "numeric", "email_domain_type"),
        ("email_student", "numeric", "email_domain_type"),
        ("email_competitor", "numeric", "email_domain_type"),
    ),
    "contact_gaps": (
        ("missing_email", "numeric", "missing_email"),
        ("missing_phone", "numeric", "missing_phone"),
        ("missing_company", "numeric", "missing_company"),
    ),
    "country_support": (("unsupported_country", "numeric", "unsupported_country"),),
}
# A derived feature that says what another signal says joins that signal when it is computed:
# "No e-mail address" and "No usable e-mail address" are one fact, so are "250 employees" and
# "Company size: 201-1000 employees"; each is one factor, worded by the signal joined. "Country: RU"
# and "In a country we do not serve" are one factor too, which says both ("Country RU, which we do
# not serve").
_JOINS: dict[str, str] = {"missing_email": "email_domain_type", "size_band": "employees", "unsupported_country": "country"}
# Activity types with an "ever before the snapshot" flag: the two strongest buying signals.
_EVER_FLAGS = {"pricing_view": "pricing_viewed", "demo_request": "demo_requested"}
# The numeric features that answer yes (1) or no (0): every other numeric feature is an amount or a count,
# whose values in a few leads can be 0 and 1 only.
_FLAGS = frozenset({name for group in ("email_signals", "contact_gaps", "country_support") for name, _, _ in _DERIVED[group]}
                   | set(_EVER_FLAGS.values()))
# The activity columns intent features are built from (others, e.g. detail, are ignored).
ACTIVITY_COLUMNS = ("lead_id", "occurred_at", "activity")
# "No activity yet" reads as "last activity long ago" rather than as missing, so recency can be
# constrained monotone (a new event never makes a lead look staler).
RECENCY_CAP_DAYS = 365


@dataclass(frozen=True)
class FeatureDef:
    """One column of the feature frame, declared from params.

    Attributes:
        name: column name in the frame.
        kind: "categorical" or "numeric".
        signal: what the explanation groups it under: every window of pricing views is
            "pricing_view"; a plain lead column is its own name.
        window_days: the look-back window of an activity count, else None.
        monotone: +1 / -1 when the score must never fall / rise as the value grows, else 0.
    """

    name: str
    kind: str
    signal: str
    window_days: int | None = None
    monotone: int = 0


def feature_catalog(spec: FeatureParams) -> list[FeatureDef]:
    """The features ``spec`` asks for, in a fixed order that depends only on params.

    Order: categorical lead columns, numeric lead columns, derived groups (in ``spec.derived``
    order), then intent: per activity type its windows, the ever flags, recency, trend and age.

    Raises:
        ValueError: two features would share a name, icp_match has no ICP criterion, or a
            monotone signal names no numeric feature (a typo would otherwise be ignored).
    """
    rows: list[tuple[str, str, str, int | None]] = []
    rows += [(c, "categorical", c, None) for c in spec.categorical]
    rows += [(c, "numeric", c, None) for c in spec.numeric]
    rows += [(name, kind, signal, None) for group in dict.fromkeys(spec.derived) for name, kind, signal in _DERIVED[group]]
    signals = {signal for _, _, signal, _ in rows}
    rows = [(name, kind, _JOINS[name] if _JOINS.get(name) in signals else signal, window)
            for name, kind, signal, window in rows]
    joined = joined_into({name: signal for name, _, signal, _ in rows})
    types = _activity_types(spec)
    if types:
        for activity in types:
            rows += [(f"{activity}_{w}d", "numeric", activity, w) for w in spec.windows]
        rows += [(flag, "numeric", activity, None) for activity, flag in _EVER_FLAGS.items() if activity in types]
        rows += [
            ("days_since_last_activity", "numeric", "activity_recency", None),
            ("engagement_trend", "numeric", "engagement_trend", None),
        ]

    names = [r[0] for r in rows]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise ValueError(f"features: these names would appear twice in the feature frame: {repeated}")
    if "icp_match" in spec.derived and not icp_criteria(spec):
        raise ValueError("features.derived has icp_match but features.icp sets no criterion")
    both = set(spec.monotone_increasing) & set(spec.monotone_decreasing)
    if both:
        raise ValueError(f"features: signal(s) {sorted(both)} are both monotone_increasing and monotone_decreasing")
    numeric_signals = {signal for _, kind, signal, _ in rows if kind == "numeric"}
    unknown = sorted((set(spec.monotone_increasing) | set(spec.monotone_decreasing)) - numeric_signals)
    if unknown:
        advice = "".join(
            f"; {name} is joined into signal {joined[name]} (one factor): name {joined[name]} to constrain all of its"
            f" features ({', '.join(n for n, _, s, _ in rows if s == joined[name])})"
            for name in unknown if name in joined
        )
        raise ValueError(
            f"features.monotone_*: {unknown} name no numeric feature signal{advice}; known: {sorted(numeric_signals)}"
        )

    def monotone(kind: str, signal: str) -> int:
        if kind != "numeric":
            return 0
        return 1 if signal in spec.monotone_increasing else -1 if signal in spec.monotone_decreasing else 0

    return [FeatureDef(n, k, s, w, monotone(k, s)) for n, k, s, w in rows]


def flag_signals(catalog: list[FeatureDef]) -> set[str]:
    """The signals of `catalog` all of whose features are yes/no flags ("free e-mail address", "no phone"): they
    read as present or absent, where "more of it" means nothing."""
    signals: dict[str, bool] = {}
    for d in catalog:
        signals[d.signal] = signals.get(d.signal, True) and d.name in _FLAGS
    return {signal for signal, flag in signals.items() if flag}


def joined_into(signal_of: dict[str, str]) -> dict[str, str]:
    """The derived features of a catalog (feature name -> its signal) that joined another signal
    (``_JOINS``, e.g. size_band -> employees). Their names are no signal any more, so params naming
    one (``features.phrases``, ``features.monotone_*``) are refused with the signal to name instead."""
    return {name: signal for name, signal in signal_of.items() if _JOINS.get(name) == signal}


def build_features(
    leads: pd.DataFrame,
    activities: pd.DataFrame | None,
    snapshot_at: pd.Series | pd.Timestamp | None,
    spec: FeatureParams,
    decimal_mark: DecimalMark = "point",
) -> pd.DataFrame:
    """The feature frame for ``leads`` as known at ``snapshot_at``.

    Args:
        leads: contract ``leads``; columns the spec uses but the table lacks become all-missing
            features (never an error), so a service request may omit optional fields.
        activities: contract ``activities`` for (at least) these leads, or None when there is no
            activity table: activity features are then NaN ("unknown"), whereas an empty table
            means "no activity" (counts 0). Unknown activity types and other leads' rows are ignored.
        snapshot_at: when each lead is scored. A Series indexed by ``lead_id`` (as
            ``training_snapshots`` returns) or by the leads' own index; one Timestamp for all; or
            None for undated data (then activities must be None). Leads whose snapshot is NaT get NaN
            activity features.
        spec: the ``features`` section of params.yaml.
        decimal_mark: how the leads' file writes numbers (``CRMData.decimal_mark``), for a numeric column the
            export was not read as a number field with (another model's features.numeric).

    Returns:
        Index ``lead_id`` in the leads' order; columns exactly ``feature_catalog(spec)`` names.
        Categorical columns hold stripped, lower-cased strings (missing = NaN); numeric ones float64.

    Raises:
        ValueError: ``lead_id`` missing, empty or repeated; a numeric column holds what a number field
            refuses (text that is no number, true/false, out of range, below 0 where it counts) or a date
            text that is no date; activities without a snapshot time; a snapshot Series that
            lacks some leads.
    """
    return build_features_placing(leads, activities, snapshot_at, spec, decimal_mark)[0]


@dataclass(frozen=True)
class PlacedActivities:
    """The activities ``build_features`` counts from: those of a type the features read, of a lead with a snapshot,
    dated (``_placed_activities``). Per activity, in the same order."""

    lead: np.ndarray  # its lead's position in the leads built
    kind: np.ndarray  # its type's position in features.activity_types
    occurred: np.ndarray  # when it happened, int64 ns
    before: np.ndarray  # how long before its lead's snapshot, ns (negative: after it, which no feature counts)


def build_features_placing(leads: pd.DataFrame, activities: pd.DataFrame | None, snapshot_at, spec: FeatureParams,
                           decimal_mark: DecimalMark = "point") -> tuple[pd.DataFrame, PlacedActivities | None]:
    """``build_features`` (the same arguments), and where it placed the leads' activities (None: no activity table,
    undated, or no activity type read), for what a caller tells about them without placing them again: the service
    and batch scoring warn of activities dated apart (``activities_dated_apart``)."""
    catalog = feature_catalog(spec)
    ids = checked_lead_ids(leads)
    index = pd.Index(ids, name="lead_id")
    columns: dict[str, object] = {}

    for column in spec.categorical:
        columns[column] = clean_text(_column(leads, column))
    for column in spec.numeric:
        columns[column] = _numeric(_column(leads, column), f"leads.{column}", ids,
                                   column in spec.non_negative or column in LEADS.non_negative, decimal_mark)
    employees = columns["employees"] if "employees" in spec.numeric else None  # read once: derived signals use it too
    columns.update(_derived(leads, ids, spec, decimal_mark, employees))
    placed = None
    if _activity_types(spec):
        snapshot = _snapshot_ns(snapshot_at, leads, ids)
        if snapshot is None and activities is not None:
            raise ValueError(
                "activities were given without snapshot_at: undated data cannot place activities in time"
            )
        if activities is not None:
            placed = _placed_activities(index, snapshot, activities, _activity_types(spec))
        columns.update(_intent(len(index), snapshot, placed, spec))

    typed = {
        d.name: _as_text(columns[d.name]) if d.kind == "categorical" else np.asarray(columns[d.name], dtype=np.float64)
        for d in catalog
    }
    return pd.DataFrame(typed, index=index, columns=[d.name for d in catalog]), placed


def lead_age_days(created_at: pd.Series, snapshot_at) -> np.ndarray:
    """Each lead's age in days at ``snapshot_at`` (one moment, or one per lead in the same order); NaN
    when undated. Scoring, training rows and monitor's rebuilt leads all take their age from here.

    Not a feature (see ``_intent``): the calibration's age shift reads it, and explanations word the
    silence of a lead younger than the recency window with it ("No activity since it was created 2 days ago").
    """
    if snapshot_at is None:
        return np.full(len(created_at), np.nan)
    created = to_epoch_ns(pd.Series(created_at), "leads.created_at")
    if np.ndim(snapshot_at) == 0:
        snapshot = to_epoch_ns(pd.Series([pd.Timestamp(snapshot_at)]), "snapshot_at")[0]
    else:
        snapshot = to_epoch_ns(pd.Series(np.asarray(snapshot_at)), "snapshot_at")
    return np.where((created == NAT) | (snapshot == NAT), np.nan, (snapshot - created) / DAY_NS)


def older_than_horizon(age_days, horizon_days: int | None) -> np.ndarray:
    """Whether each lead's age (``lead_age_days``) is past the label horizon: it can no longer convert within
    the horizon its probability is about (``past_horizon`` in scores). False when undated or without a horizon."""
    ages = np.asarray(age_days, dtype=np.float64)
    return ages > horizon_days if horizon_days is not None else np.zeros(ages.shape, dtype=bool)  # NaN: False


def training_snapshots(leads: pd.DataFrame, labels: pd.DataFrame, spec: FeatureParams) -> pd.Series:
    """When each training lead is seen: ``created_at`` plus one of the ages in ``snapshot_days``.

    The CRM scores a lead when it arrives and again whenever it changes, so a lead is scored at any
    age while it is open. Seeing every training lead at one fixed age would teach the model one
    moment of a lead's life (windows all equal, recency of days at most) and misjudge every lead
    scored later: on the demo export, a model trained at 3 days predicted 13% for test leads still
    open at 30 days, which converted 26% of the time (README, "Design decisions"). So each lead is
    seen at one of the ages it reached undecided, picked by a stable hash of its lead id (the same
    lead gets the same age in every run, whatever the row order). The leads seen at age a are a
    sample of the leads open at age a that over-represents those decided soon after; ``ages_open``
    gives the weights that undo it.

    A lead decided before the youngest age is seen at its decision (never after the outcome was
    known, never before its creation). Undated leads (no ``created_at``) get NaT.

    Args:
        leads: contract ``leads``.
        labels: ``LabelResult.frame``: ``decided_at`` per lead, keyed by a ``lead_id`` column when
            there is one (e.g. after ``reset_index()``), else by the index. Leads it lacks get no cap.
        spec: the ``features`` section (``snapshot_days``).

    Returns:
        datetime64[ns] Series indexed by ``lead_id`` in the leads' order, named ``snapshot_at``;
        zone-aware dates are converted to naive UTC.
    """
    ids, created, decided, ages, reached = _ages_reached(leads, labels, spec)
    undecided = decided == NAT
    pick = (_unit_hash(ids) * np.maximum(reached, 1)).astype(np.intp)
    snapshot = np.where(created != NAT, created + ages[np.minimum(pick, len(ages) - 1)], NAT)
    cap = ~undecided & (snapshot != NAT) & (decided < snapshot)
    snapshot = np.where(cap, np.maximum(decided, created), snapshot)
    return pd.Series(
        snapshot.view("datetime64[ns]"), index=pd.Index(ids, name="lead_id"), name="snapshot_at"
    )


def ages_open(leads: pd.DataFrame, labels: pd.DataFrame, spec: FeatureParams) -> np.ndarray:
    """How many of the ``snapshot_days`` ages each lead reached undecided (at least 1), in leads order.

    ``training_snapshots`` sees a lead at one of those ages, picked uniformly, so a lead open at k
    ages is seen at any one of them with chance 1/k: a lead rejected within days is over-represented
    among the young rows. Weighted by this count, the rows seen at an age stand for all the leads
    open at that age (``LeadScorer`` calibration). Same arguments as ``training_snapshots``.
    """
    return np.maximum(_ages_reached(leads, labels, spec)[4], 1).astype(np.float64)


def _ages_reached(
    leads: pd.DataFrame, labels: pd.DataFrame, spec: FeatureParams
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(lead ids, created, decided, sorted ages, how many of those ages each lead reached undecided);
    times in int64 ns, NAT when unknown."""
    ids = checked_lead_ids(leads)
    if "decided_at" not in labels.columns:
        raise ValueError("labels: required column 'decided_at' is missing (pass LabelResult.frame)")
    if "created_at" in leads.columns:
        created = to_epoch_ns(leads["created_at"], "leads.created_at")
    else:
        created = np.full(len(ids), NAT, dtype=np.int64)
    keys = labels["lead_id"] if "lead_id" in labels.columns else labels.index.to_series()
    decided = decision_times(labels, positions_of(pd.Index(ids), keys, "labels.lead_id"), created)

    ages = np.array([round(a * DAY_NS) for a in sorted(np.atleast_1d(spec.snapshot_days))], dtype=np.int64)
    # The ages a lead reached open are the first `reached` of the sorted ages.
    reached = np.where(decided == NAT, len(ages), np.searchsorted(ages, decided - created, side="left"))
    return ids, created, decided, ages, reached


def decision_times(labels: pd.DataFrame, lead: np.ndarray, created: np.ndarray) -> np.ndarray:
    """When each lead was decided, for seeing it while it was open (int64 ns, NAT: undecided).

    ``lead``: the position among the leads of each ``labels`` row (-1: none); ``created``: the leads'
    creation times. A lead with an outcome but no ``decided_at`` (the column is optional) counts as
    decided at its creation, the one moment known to come before its decision: seen at any age, a
    conversion of day 2 was seen at day 90, counting the activities after it (on the demo export
    without won dates, 458 such activities in 160 of 642 converted training leads).
    """
    decided = np.full(len(created), NAT, dtype=np.int64)
    known = lead >= 0
    decided[lead[known]] = to_epoch_ns(labels["decided_at"], "labels.decided_at")[known]
    if "decided" in labels.columns:  # LabelResult.frame's; a bare decided_at column has no undated decision
        undated = np.zeros(len(created), dtype=bool)
        undated[lead[known]] = labels["decided"].to_numpy(dtype=bool)[known]
        undated &= decided == NAT
        decided[undated] = created[undated]
    return decided


def _unit_hash(ids: np.ndarray) -> np.ndarray:
    """A number in [0, 1) per lead id, the same in every run and on every machine (SipHash, fixed key)."""
    hashed = pd.util.hash_pandas_object(pd.Series(ids, dtype=object), index=False).to_numpy()
    return (hashed >> np.uint64(11)).astype(np.float64) / float(1 << 53)


def to_epoch_ns(values: pd.Series, what: str) -> np.ndarray:
    """Nanoseconds since the epoch as int64 (NaT = ``NAT``), so times compare as plain integers.

    Zone-aware values are converted to UTC; naive values are taken as UTC. Text is parsed (the
    service receives ISO strings); ``what`` names the field in the error when it is not a date or
    lies outside what int64 nanoseconds hold (1677-09-21 to 2262-04-11; ingest keeps dates well inside).
    """
    dtype = values.dtype
    if isinstance(dtype, pd.DatetimeTZDtype) or pd.api.types.is_datetime64_dtype(dtype):
        stamps = values
    else:
        try:
            stamps = pd.to_datetime(values, format="ISO8601", utc=True)
        except (ValueError, TypeError) as exc:
            raise ValueError(f"{what}: values that are not dates ({exc})") from None
    if isinstance(stamps.dtype, pd.DatetimeTZDtype):
        stamps = stamps.dt.tz_convert("UTC").dt.tz_localize(None)
    try:
        return stamps.astype("datetime64[ns]").to_numpy().view(np.int64)
    except (pd.errors.OutOfBoundsDatetime, OverflowError):
        outside = stamps[(stamps < pd.Timestamp.min) | (stamps > pd.Timestamp.max)]
        raise ValueError(f"{what}: date out of range, e.g. {outside.iloc[0]} (features compute in nanoseconds since "
                         f"1970, which hold {pd.Timestamp.min:%Y-%m-%d} to {pd.Timestamp.max:%Y-%m-%d})") from None


# --- lead columns and derived fit / negative signals -------------------------------------------


def checked_lead_ids(leads: pd.DataFrame) -> np.ndarray:
    """The ``lead_id`` values, refused when missing, empty or repeated (every output is keyed by them)."""
    if "lead_id" not in leads.columns:
        raise ValueError("leads: required column 'lead_id' is missing")
    ids = leads["lead_id"].to_numpy()
    empty = pd.isna(ids)
    if empty.any():
        rows = [int(r) for r in np.flatnonzero(empty)[:5]]
        raise ValueError(f"leads.lead_id: empty at row(s) {rows}")
    index = pd.Index(ids)
    if not index.is_unique:
        raise ValueError(f"leads.lead_id: repeated ids, e.g. {list(index[index.duplicated()].unique()[:5])}")
    return ids


def positions_of(index: pd.Index, keys: pd.Series, what: str) -> np.ndarray:
    """Row of each key in ``index`` (-1 when absent), e.g. the lead of every activity.

    Each distinct key is looked up once (millions of activities share far fewer leads). Numbers vs
    text ids are refused: they would silently match nothing.
    """
    numeric = pd.api.types.is_numeric_dtype
    if len(keys) and len(index) and numeric(keys.dtype) != numeric(index.dtype):
        raise ValueError(f"{what}: ids are {keys.dtype} but leads.lead_id is {index.dtype}; map both to one type")
    codes, distinct = pd.factorize(keys, use_na_sentinel=True)
    if isinstance(distinct, pd.CategoricalIndex):  # batch scoring's encoded activity ids
        distinct = distinct.categories.take(distinct.codes)  # looked up as plain values: 300x faster
    if not len(distinct):
        return np.full(len(keys), -1, dtype=np.intp)
    return np.where(codes >= 0, index.get_indexer(distinct)[codes], -1)


def _as_text(values: pd.Series | np.ndarray) -> pd.api.extensions.ExtensionArray:
    """A str-dtype column; text already in that dtype is kept as is (no round trip via Python objects)."""
    if isinstance(values, pd.Series) and values.dtype == "str":
        return values.array
    return pd.array(np.asarray(values, dtype=object), dtype="str")


def _column(leads: pd.DataFrame, column: str) -> pd.Series:
    """The lead column, or an all-missing one when the export (or request) lacks it."""
    if column in leads.columns:
        return leads[column]
    return pd.Series(np.nan, index=leads.index, dtype=object)


def clean_text(values: pd.Series) -> pd.Series:
    """Stripped lower-case strings, blanks as NaN: "Software " and "software" are one category."""
    codes, levels = distinct_text(values)
    return pd.Series(_expand(codes, levels))


def crm_spellings(values: pd.Series, value_map: Mapping[str, str] | None = None) -> dict[str, str]:
    """Each cleaned value of `values` (`clean_text`) -> its most common spelling there, stripped: features and
    labels compare "Olark Chat" as "olark chat", but marketing knows the CRM's "Olark Chat". Counted per
    distinct value, so a million rows cost what their levels cost; a tie goes to the spelling seen first.

    `value_map`: the column's data.value_maps entry, for `values` read as the file holds them (before ingest
    applies it): a value it renames counts under its new value, as the features compare it, so "TT" mapped to
    "TikTok" is the file's spelling of "tiktok"."""
    renamed = {crm: _clean_value(contract) for crm, contract in value_map_labels(value_map or {}).items()}
    codes, uniques = pd.factorize(values, use_na_sentinel=True)
    counts = np.bincount(codes[codes >= 0], minlength=len(uniques))
    best: dict[str, tuple[int, str]] = {}
    for raw, n in zip(uniques.tolist(), counts.tolist()):
        key = _clean_value(raw)
        key = renamed.get(key, key)
        if key is not None and n > best.get(key, (0, ""))[0]:
            best[key] = (n, raw.strip() if isinstance(raw, str) else key)
    return {key: spelled for key, (_, spelled) in best.items()}


def distinct_text(values: pd.Series) -> tuple[np.ndarray, list[str | None]]:
    """Each row's code into its distinct cleaned values (-1 = missing), and those values.

    Text rules then run once per distinct value in plain Python: a million leads cost what their
    few thousand levels cost, and one lead costs microseconds instead of pandas' per-call overhead.
    A whole number read as a float (3.0 from a CSV column) is the category "3".
    """
    codes, uniques = pd.factorize(values, use_na_sentinel=True)
    if isinstance(uniques.dtype, pd.StringDtype):  # text only: clean all levels in one vectorised pass
        cleaned = uniques.str.strip().str.lower()
        return codes, [v or None for v in cleaned.tolist()]
    return codes, [_clean_value(v) for v in uniques.tolist()]


def _clean_value(value) -> str | None:
    if isinstance(value, float) and value.is_integer() and abs(value) < 2**53:
        value = int(value)
    text = str(value).strip().lower()
    return text or None


def _expand(codes: np.ndarray, levels: list, missing=np.nan, dtype=object) -> np.ndarray:
    """Per-row values from per-level ones (``missing`` where the code is -1 or the level is None)."""
    table = np.array([missing if v is None else v for v in levels] + [missing], dtype=dtype)
    return table[codes]


def _numeric(values: pd.Series, what: str, ids: np.ndarray, non_negative: bool,
             decimal_mark: DecimalMark) -> np.ndarray:
    """float64 values, read as an export's number field reads them (numbers.read_numbers, the file's decimal mark
    included), blank as missing. Text or true/false reaches here in a column the export was not read as a number
    field with (another model's features.numeric, which retrain, audit and monitor build on today's export); a cell
    that field refuses is refused with the lead ids that hold it, where pandas alone misread "+9999999999999.2504"
    and took "inf", -3 visits or True as 1, and "2,5" was no number in an export writing decimal commas."""
    if not pd.api.types.is_numeric_dtype(values.dtype):
        values = values.mask((values.astype("str").str.strip() == "").to_numpy(dtype=bool, na_value=False))
    cells = read_numbers(values, non_negative, decimal_mark)
    for refused, why in ((cells.not_a_number, "not a number"),
                         (cells.reads_two_ways, f"a number that reads two ways {TWO_WAYS_WHERE.get(decimal_mark)} "
                          "(1.200 or 1,200 may be 1200 or 1.2): set data.decimal_mark to comma or point, as the file "
                          "writes numbers"),
                         (cells.too_large, f"not a finite number smaller than {LARGEST_NUMBER:g} in size"),
                         (cells.below_zero, "below 0 (it counts something: 0 or more)")):
        if refused.any():
            examples = dict(zip(ids[refused][:5].tolist(), values.to_numpy()[refused][:5].tolist()))
            raise ValueError(f"{what}: {why} for lead_id -> value {examples}")
    return cells.numbers.to_numpy(dtype=np.float64, na_value=np.nan)


def _derived(leads: pd.DataFrame, ids: np.ndarray, spec: FeatureParams, decimal_mark: DecimalMark,
             employees: np.ndarray | None) -> dict[str, object]:
    """The derived signals (features.derived); `employees`: the leads' employees already read (`_numeric`), None to
    read them here."""
    groups = set(spec.derived)
    out: dict[str, object] = {}
    if not groups:
        return out
    if employees is None:
        employees = _numeric(_column(leads, "employees"), "leads.employees", ids, True, decimal_mark)
    if "size_band" in groups:
        band = np.searchsorted(np.array(SIZE_BAND_UPPER, dtype=float), employees, side="left")
        named = np.array(SIZE_BAND_NAMES, dtype=object)[np.minimum(band, len(SIZE_BAND_NAMES) - 1)]
        out["size_band"] = np.where(np.isnan(employees) | (employees <= 0), np.nan, named)
    if groups & {"seniority", "department", "icp_match"}:
        seniority, department = _parse_job_titles(_column(leads, "job_title"))
        out["seniority"], out["department"] = seniority, department
    if "icp_match" in groups:
        out["icp_match"] = _icp_match(leads, employees, out["seniority"], spec)
    email = _email_addresses(_column(leads, "email")) if groups & {"email_signals", "contact_gaps"} else None
    if "email_signals" in groups:
        out.update(_email_signals(email, spec))
    if "contact_gaps" in groups:
        out.update(_contact_gaps(leads, email))
    if "country_support" in groups:
        codes, countries = distinct_text(_column(leads, "country"))
        unsupported = _lower_set(spec.unsupported_countries)
        flags = [None if c is None else float(c in unsupported) for c in countries]
        out["unsupported_country"] = _expand(codes, flags, dtype=np.float64)
    return out


def lead_columns_read(spec: FeatureParams) -> list[str]:
    """The lead columns (contract names) the features read, besides lead_id and created_at: ``spec``'s
    categories and numbers, and what each derived group (``_derived``, keep in step) is computed from. A file
    without one scores every lead as not having it, which batch scoring warns about."""
    icp = spec.icp
    sources = {
        "size_band": ["employees"], "seniority": ["job_title"], "department": ["job_title"],
        "icp_match": ["industry"] * bool(icp.industries) + ["country"] * bool(icp.countries)
        + ["job_title"] * bool(icp.seniorities)
        + ["employees"] * (icp.min_employees is not None or icp.max_employees is not None),
        "email_signals": ["email"], "contact_gaps": ["email", "phone", "company"], "country_support": ["country"],
    }
    return list(dict.fromkeys([*spec.categorical, *spec.numeric, *(c for group in spec.derived for c in sources[group])]))


def unread_activity_types(types: pd.Series, spec: FeatureParams) -> dict[str, int]:
    """The activity types of `types` (one per activity row) that the features do not count (`activity_types_read`)
    -> their rows, most first; {} when they count every one. Counted per type, not per row: a million rows cost
    what their types cost. A new CRM type (chat_started) or label ('Requested Demo' for demo_request) is then not
    counted; when every row is such, every lead is scored as never active."""
    counts = types.value_counts()
    counts = counts[counts > 0]
    unread = counts[~activity_types_read(pd.Series(counts.index), spec)]
    return {str(kind): int(rows) for kind, rows in unread.items()}


def activity_types_read(types: pd.Series, spec: FeatureParams) -> np.ndarray:
    """Per row of `types` (contract values: after data.value_maps.activity), whether the features count it
    (features.activity_types, compared as features compare them). One rule for batch scoring's warning
    (`unread_activity_types`) and the service's per-lead unread_activity_types."""
    return clean_text(types).isin(_activity_types(spec)).to_numpy()


def unmatched_settings(leads: pd.DataFrame, activities: pd.DataFrame | None, spec: FeatureParams) -> list[str]:
    """Warnings for feature settings that name values the export never holds, compared as features compare them.

    A CRM writes its own labels ('Requested Demo', 'United States') where the settings say demo_request or
    US: the features built from them are then the same for every lead and nothing else would say so. The
    export's values are quoted as it spells them, as data.value_maps matches them.
    """
    def spelled(values: pd.Series, unlisted: set[str]) -> str:
        counts = values.value_counts()
        counts = counts[[c > 0 and _clean_value(v) in unlisted for v, c in counts.items()]]
        return ", ".join(f"{v!r} ({c:,})" for v, c in counts.head(5).items())

    out = []
    types = _activity_types(spec)
    if activities is not None and len(activities) and types:
        present = {_clean_value(v) for v in activities["activity"].dropna().unique()}
        absent = [t for t in types if t not in present]
        if absent:
            others = spelled(activities["activity"], present - set(types))
            out.append(f"features.activity_types: no activity in the export is of type {', '.join(absent)}, so their "
                       "counts are 0 for every lead" + (f"; the export's types not listed there: {others} (translate "
                       "them with data.value_maps.activity)" if others else ""))
    checks = []
    if "icp_match" in spec.derived:  # a customer profile lists values its leads have: each is checked
        checks += [("icp.industries", "industry", spec.icp.industries, True),
                   ("icp.countries", "country", spec.icp.countries, True)]
    if "country_support" in spec.derived:  # a block list may name countries no lead came from yet
        checks.append(("unsupported_countries", "country", spec.unsupported_countries, False))

    def coded(values) -> bool:  # mostly codes ('RU') rather than names ('Russia')
        values = list(values)
        return 2 * sum(len(str(v).strip()) <= 3 for v in values) > len(values)

    for setting, column, listed, each in checks:
        if not listed or column not in leads or leads[column].isna().all():
            continue
        present = {_clean_value(v) for v in leads[column].dropna().unique()}
        absent = [v for v in listed if _clean_value(v) not in present]
        # A block list none of whose countries sent a lead is said only when written unlike the export (codes
        # against names): forms often keep those countries out, and a warning at every training is noise.
        if absent and (each or (len(absent) == len(listed) and coded(listed) != coded(present))):
            others = spelled(leads[column], present - _lower_set(listed))
            out.append(f"features.{setting}: no lead's {column} is any of {absent}, so those never count"
                       + (f"; the export's values not listed there: {others} (write them as the export does, or "
                          f"translate them with data.value_maps.{column})" if others else
                          f" (every {column} the export holds is listed there)"))
    return out


_SENIORITY = tuple((name, re.compile(pattern)) for name, pattern in SENIORITY_RULES)
_DEPARTMENT = tuple((name, re.compile(pattern)) for name, pattern in DEPARTMENT_RULES)
_NOT_WORD = re.compile(r"[\W_]+")
_DIGIT = re.compile(r"\d")


def _parse_job_titles(titles: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """Seniority and department from free-text job titles, via the ordered rules above."""
    codes, cleaned = distinct_text(titles)
    words = [None if t is None else _NOT_WORD.sub(" ", t).strip() for t in cleaned]

    def first_match(rules: tuple[tuple[str, re.Pattern], ...], fallback: str) -> np.ndarray:
        per_title = [None if w is None else next((name for name, rx in rules if rx.search(w)), fallback) for w in words]
        return _expand(codes, per_title, missing=UNKNOWN)

    return first_match(_SENIORITY, UNKNOWN), first_match(_DEPARTMENT, OTHER_DEPARTMENT)


def icp_criteria(spec: FeatureParams) -> int:
    """How many ideal customer profile criteria `spec` sets: icp_match is the share of them a lead meets, which the
    score card and the audit say as a count ("1 of 4")."""
    icp = spec.icp
    has_size = icp.min_employees is not None or icp.max_employees is not None
    return bool(icp.industries) + bool(icp.countries) + bool(icp.seniorities) + has_size


def _icp_match(leads: pd.DataFrame, employees: np.ndarray, seniority: np.ndarray, spec: FeatureParams) -> np.ndarray:
    """Share of the configured ICP criteria the lead meets; an unknown value does not meet one."""
    icp = spec.icp
    met = np.zeros(len(leads))
    if icp.industries:
        met += _is_one_of(_column(leads, "industry"), icp.industries)
    if icp.countries:
        met += _is_one_of(_column(leads, "country"), icp.countries)
    if icp.seniorities:
        met += np.isin(seniority, list(_lower_set(icp.seniorities)))
    if icp.min_employees is not None or icp.max_employees is not None:
        low = -np.inf if icp.min_employees is None else icp.min_employees
        high = np.inf if icp.max_employees is None else icp.max_employees
        with np.errstate(invalid="ignore"):
            met += (employees >= low) & (employees <= high)
    return met / icp_criteria(spec)


def _is_one_of(values: pd.Series, allowed) -> np.ndarray:
    """True where the cleaned value is one of ``allowed`` (compared cleaned too); missing is False."""
    codes, cleaned = distinct_text(values)
    allowed = _lower_set(allowed)
    return _expand(codes, [v in allowed for v in cleaned], missing=False, dtype=bool)


def _email_addresses(emails: pd.Series) -> tuple[np.ndarray, list[str | None]]:
    """Each row's code into its distinct e-mails (-1 = missing), and each of those as an address (`email_address`),
    None where it is no address: a placeholder ("test", "test@test.com") reaches no one and has no domain to read."""
    codes, written = distinct_text(emails)
    addresses = email_address(pd.Series(written, dtype="string"))
    return codes, addresses.astype(object).where(addresses.notna(), None).tolist()


def _email_signals(email: tuple[np.ndarray, list[str | None]], spec: FeatureParams) -> dict[str, np.ndarray]:
    """Free-mail, student and competitor flags from the e-mail domain; NaN without an e-mail address
    (`_email_addresses`).

    Student patterns match whole domain labels: ".edu" matches mit.edu and unimelb.edu.au but not
    education.com; "student." matches student.uni-x.de. Competitor domains match subdomains too.
    """
    email_codes, emails = email
    # Domain per distinct e-mail, then each rule once per distinct domain (far fewer than e-mails).
    domain_of_email = [None if e is None else e.rsplit("@", 1)[1] for e in emails]
    domain_codes, domains = pd.factorize(np.array(domain_of_email, dtype=object), use_na_sentinel=True)
    codes = np.append(domain_codes, -1)[email_codes]  # no e-mail (-1) stays missing
    domains = domains.tolist()
    free_mail = _lower_set(spec.free_email_domains)
    student = ["." + p.strip().strip(".").lower() + "." for p in spec.student_email_patterns]
    rivals = tuple("." + r.strip().strip(".").lower() + "." for r in spec.competitor_domains)

    def flag(test) -> np.ndarray:
        return _expand(codes, [float(test(d)) for d in domains], dtype=np.float64)

    return {
        "email_free": flag(lambda d: d in free_mail),
        "email_student": flag(lambda d: any(p in f".{d}." for p in student)),
        "email_competitor": flag(lambda d: f".{d}.".endswith(rivals)),
    }


def _contact_gaps(leads: pd.DataFrame, email: tuple[np.ndarray, list[str | None]]) -> dict[str, np.ndarray]:
    """1.0 when the lead left out a way to reach them; NaN when the export has no such column.

    A phone without a single digit ("n/a", "-") is missing, and so is an e-mail that is no address (`_email_addresses`:
    "test", "none@none.com").
    """

    def gap(column: str, codes: np.ndarray, present: list[bool]) -> np.ndarray:
        if column not in leads.columns:
            return np.full(len(leads), np.nan)
        return (~_expand(codes, present, missing=False, dtype=bool)).astype(np.float64)

    phone_codes, phones = pd.factorize(_column(leads, "phone"), use_na_sentinel=True)
    if isinstance(phones.dtype, pd.StringDtype):
        dialable = phones.str.contains(_DIGIT.pattern).tolist()
    else:
        dialable = [bool(_DIGIT.search(str(p))) for p in phones.tolist()]
    email_codes, emails = email
    company_codes, companies = distinct_text(_column(leads, "company"))
    return {
        "missing_email": gap("email", email_codes, [e is not None for e in emails]),
        "missing_phone": gap("phone", phone_codes, dialable),
        "missing_company": gap("company", company_codes, [c is not None for c in companies]),
    }


def _lower_set(values) -> set[str]:
    return {str(v).strip().lower() for v in values}


# --- intent: activity counts as of the snapshot -------------------------------------------------


def _activity_types(spec: FeatureParams) -> list[str]:
    return list(dict.fromkeys(t.strip().lower() for t in spec.activity_types))


def _snapshot_ns(snapshot_at, leads: pd.DataFrame, ids: np.ndarray) -> np.ndarray | None:
    """Per-lead snapshot in int64 ns (see ``to_epoch_ns``), or None for undated data."""
    if snapshot_at is None:
        return None
    if isinstance(snapshot_at, pd.Series):
        if snapshot_at.index.equals(leads.index):
            values = snapshot_at
        else:
            if not snapshot_at.index.is_unique:
                raise ValueError("snapshot_at: the Series index repeats a lead_id")
            row = snapshot_at.index.get_indexer(ids)
            if (row < 0).any():
                raise ValueError(f"snapshot_at: no snapshot for lead_id(s) {ids[row < 0][:5].tolist()}")
            values = snapshot_at.iloc[row]
        return to_epoch_ns(values.reset_index(drop=True), "snapshot_at")
    stamp = pd.Timestamp(snapshot_at)
    if pd.isna(stamp):
        raise ValueError("snapshot_at: NaT; pass None for undated data")
    return np.full(len(ids), to_epoch_ns(pd.Series([stamp]), "snapshot_at")[0], dtype=np.int64)


def _intent(
    n: int,
    snapshot: np.ndarray | None,
    placed: PlacedActivities | None,
    spec: FeatureParams,
) -> dict[str, np.ndarray]:
    """Activity counts per type and window, recency and trend, all as of each lead's snapshot.

    There is deliberately no lead-age feature: a lead decided quickly can only be seen young, so
    among training rows the age encodes how fast sales decided. Measured with and without
    ages-open row weights, it did not improve scores of open leads (README, "Design decisions").

    An event counts in window w when ``snapshot - w days < occurred_at <= snapshot``; events after
    the snapshot never count. Counting is one ``np.bincount`` over (lead, type) codes per window.
    """
    types = _activity_types(spec)
    dated = np.zeros(n, dtype=bool) if snapshot is None else snapshot != NAT
    out: dict[str, np.ndarray] = {}

    names = [f"{t}_{w}d" for t in types for w in spec.windows] + [f for t, f in _EVER_FLAGS.items() if t in types]
    names += ["days_since_last_activity", "engagement_trend"]
    if placed is None:
        out.update({name: np.full(n, np.nan) for name in names})
        return out

    past = placed.before >= 0
    lead, kind, before = placed.lead[past], placed.kind[past], placed.before[past]

    cell = lead * len(types) + kind

    def per_lead_type(mask: np.ndarray | None) -> np.ndarray:
        chosen = cell if mask is None else cell[mask]
        counts = np.bincount(chosen, minlength=n * len(types)).reshape(n, len(types)).astype(np.float64)
        counts[~dated] = np.nan
        return counts

    for w in spec.windows:
        counts = per_lead_type(before < w * DAY_NS)
        for t, activity in enumerate(types):
            out[f"{activity}_{w}d"] = counts[:, t]
    ever = per_lead_type(None)
    for activity, flag in _EVER_FLAGS.items():
        if activity in types:
            out[flag] = np.minimum(ever[:, types.index(activity)], 1.0)

    latest = np.full(n, RECENCY_CAP_DAYS * DAY_NS)
    np.minimum.at(latest, lead, before)
    out["days_since_last_activity"] = np.where(dated, latest / DAY_NS, np.nan)

    week = TREND_DAYS * DAY_NS
    recent = np.bincount(lead[before < week], minlength=n)
    previous = np.bincount(lead[(before >= week) & (before < 2 * week)], minlength=n)
    out["engagement_trend"] = np.where(dated, (recent - previous).astype(np.float64), np.nan)
    return out


def _placed_activities(index: pd.Index, snapshot: np.ndarray, activities: pd.DataFrame, types: list[str]
                       ) -> PlacedActivities:
    """The activities of `types` (any letter case) of the leads in ``index`` with a snapshot, dated
    (``PlacedActivities``)."""
    for column in ACTIVITY_COLUMNS:
        if column not in activities.columns:
            raise ValueError(f"activities: required column {column!r} is missing")
    lead = positions_of(index, activities["lead_id"], "activities.lead_id")
    kind_codes, kinds = pd.factorize(activities["activity"], use_na_sentinel=True)
    kind_of = pd.Index(types).get_indexer(clean_text(pd.Series(kinds)).fillna(""))
    kind = np.where(kind_codes >= 0, kind_of[kind_codes] if len(kinds) else -1, -1)
    occurred = to_epoch_ns(activities["occurred_at"], "activities.occurred_at")

    keep = (lead >= 0) & (kind >= 0) & (occurred != NAT)
    lead, kind, occurred = lead[keep], kind[keep], occurred[keep]
    keep = snapshot[lead] != NAT
    lead, kind, occurred = lead[keep], kind[keep], occurred[keep]
    return PlacedActivities(lead, kind, occurred, snapshot[lead] - occurred)


def activities_dated_apart(leads: pd.DataFrame, placed: PlacedActivities | None) -> tuple[np.ndarray, np.ndarray]:
    """Per lead (``leads``' order), of its activities of a type the features read: how many are dated after its
    snapshot, which no feature counts (`_intent`), and how many are dated more than ``CLOCK_SLACK`` before its
    created_at, which count, as in training (web visits a CRM ties to a lead once a form names it), though a date
    that early may be wrong (a decision that early is refused: ``ingest.decided_before_created``). ``leads`` as
    ``build_features_placing`` took them and ``placed`` as it returned; zeros where it placed none.
    The service's /score and /explain warn of both per lead; batch scoring counts them per file (pipelines.score)."""
    none = np.zeros(len(leads), dtype=np.int64)
    if placed is None:
        return none, none
    after = np.bincount(placed.lead[placed.before < 0], minlength=len(leads))
    if "created_at" not in leads:
        return after, none
    created = to_epoch_ns(leads["created_at"], "leads.created_at")[placed.lead]
    early = ((placed.before >= 0) & (created != NAT)
             & (placed.occurred < created - pd.Timedelta(CLOCK_SLACK).value))
    return after, np.bincount(placed.lead[early], minlength=len(leads))


def with_event_at_snapshot(features: pd.DataFrame, activity: str, spec: FeatureParams) -> pd.DataFrame:
    """The same leads as if one more `activity` event had happened at their snapshot.

    Equal to rebuilding the frame with that event added (tested), without the activities: training
    uses it to check that a model never lowers a score for more of a monotone signal.
    """
    if activity not in _activity_types(spec):
        raise ValueError(f"{activity!r} is not one of features.activity_types")
    out = features.copy()
    dated = out["engagement_trend"].notna()
    for w in spec.windows:
        out[f"{activity}_{w}d"] = out[f"{activity}_{w}d"] + 1
    if activity in _EVER_FLAGS:
        out[_EVER_FLAGS[activity]] = np.where(dated, 1.0, np.nan)
    out["days_since_last_activity"] = np.where(dated, 0.0, np.nan)
    out["engagement_trend"] = out["engagement_trend"] + 1
    return out
