"""The synthetic CRM that tests and `make demo` train on: contract, determinism, and the realism the
label policy, point-in-time features, reason model and drift checks rely on."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from pipelines.contract import ACTIVITIES, LEADS, OUTCOMES, REASON_CODES, TABLES
from pipelines.synthetic import HISTORY_END, SourceShift, generate_crm, write_crm

START = pd.Timestamp("2024-01-01")
NOW = pd.Timestamp("2026-01-01")  # end of the 8th quarter
ACTIVITY_TYPES = {"page_view", "pricing_view", "form_fill", "demo_request", "email_open", "email_click",
                  "webinar", "content_download"}
STATUSES = {"converted", "rejected", "nurture", "duplicate", "open"}
DECIDED = ["converted", "rejected", "nurture"]


@pytest.fixture(scope="module")
def crm() -> dict[str, pd.DataFrame]:
    return generate_crm(5000, seed=3)


@pytest.fixture(scope="module")
def leads_with_outcome(crm) -> pd.DataFrame:
    frame = crm["leads"].merge(crm["outcomes"], on="lead_id", validate="one_to_one")
    frame["quarter"] = (frame.created_at.dt.year - START.year) * 4 + (frame.created_at.dt.month - 1) // 3
    return frame


def _conversion_rate(frame: pd.DataFrame) -> float:
    decided = frame[frame.status.isin(DECIDED)]
    return float((decided.status == "converted").mean())


def test_tables_have_exactly_the_contract_columns_and_dtypes(crm):
    for spec in (LEADS, ACTIVITIES, OUTCOMES):
        frame = crm[spec.name]
        assert tuple(frame.columns) == spec.columns
        for column in frame.columns:
            dtype = str(frame[column].dtype)
            if column in spec.dates:
                assert dtype == "datetime64[us]", column
            elif column == "employees":
                assert dtype == "Int64"
            elif column == "amount":
                assert dtype == "float64"
            else:
                assert dtype == "str", column
    leads, outcomes = crm["leads"], crm["outcomes"]
    assert leads.lead_id.is_unique and leads.lead_id.str.fullmatch(r"L\d{7}").all()
    assert outcomes.lead_id.tolist() == leads.lead_id.tolist()  # one outcome per lead
    assert set(crm["activities"].lead_id) <= set(leads.lead_id)
    assert set(crm["activities"].activity) == ACTIVITY_TYPES
    assert set(outcomes.status) == STATUSES


def test_same_seed_gives_identical_tables_and_another_seed_differs(crm):
    again = generate_crm(5000, seed=3)
    for name in TABLES:
        pd.testing.assert_frame_equal(again[name], crm[name])
    other = generate_crm(5000, seed=4)
    assert not other["leads"].equals(crm["leads"])
    assert not other["outcomes"].status.equals(crm["outcomes"].status)


def test_leads_span_every_quarter_with_growth(leads_with_outcome):
    created = leads_with_outcome.created_at
    assert created.min() >= START and created.max() < NOW
    per_quarter = leads_with_outcome.quarter.value_counts().sort_index()
    assert per_quarter.index.tolist() == list(range(8))
    assert per_quarter.iloc[-2:].mean() > per_quarter.iloc[:2].mean()  # the funnel grows
    assert (created.dt.day_of_week >= 5).mean() < 0.15  # B2B leads arrive on workdays


@pytest.mark.parametrize("quarters", [3, 16])
def test_any_length_of_history_ends_at_the_same_past_now(quarters):
    """Counted back from HISTORY_END: a longer sample never holds leads or decisions in the future,
    which ingest refuses."""
    tables = generate_crm(400, seed=2, quarters=quarters)
    first = pd.Timestamp(HISTORY_END) - pd.DateOffset(months=3 * quarters)
    assert first <= tables["leads"]["created_at"].min() < first + pd.DateOffset(months=3)
    assert tables["leads"]["created_at"].max() < pd.Timestamp(HISTORY_END)
    assert tables["outcomes"]["decided_at"].max() <= pd.Timestamp(HISTORY_END)


def test_every_status_and_reason_code_appears(crm):
    outcomes = crm["outcomes"]
    assert set(outcomes.status) == STATUSES
    assert set(outcomes.reason.dropna()) == set(REASON_CODES)


def test_reasons_only_on_rejections_and_a_few_rejections_lack_one(crm):
    outcomes = crm["outcomes"]
    assert (outcomes.loc[outcomes.reason.notna(), "status"] == "rejected").all()
    missing = outcomes.loc[outcomes.status == "rejected", "reason"].isna().mean()
    assert 0.01 < missing < 0.10


def test_conversion_rate_of_decided_leads_is_realistic(leads_with_outcome):
    assert 0.08 <= _conversion_rate(leads_with_outcome) <= 0.20


def test_decisions_follow_creation_with_realistic_delays(leads_with_outcome):
    frame = leads_with_outcome
    is_open = frame.status == "open"
    assert frame.loc[is_open, "decided_at"].isna().all()
    assert frame.loc[~is_open, "decided_at"].notna().all()
    decided = frame[~is_open]
    assert (decided.decided_at > decided.created_at).all() and (decided.decided_at < NOW).all()
    days = (decided.decided_at - decided.created_at).dt.total_seconds() / 86_400
    assert days[decided.status == "converted"].between(10, 150).all()
    assert days[(decided.status == "rejected") & (decided.reason != "duplicate")].between(1, 60).all()
    nurture_median = days[decided.status == "nurture"].median()
    assert nurture_median > days[decided.status == "rejected"].median()


def test_amount_only_on_conversions_and_grows_with_company_size(leads_with_outcome):
    frame = leads_with_outcome
    won = frame.status == "converted"
    assert frame.loc[~won, "amount"].isna().all() and (frame.loc[won, "amount"] > 0).all()
    sized = frame[won & frame.employees.notna()]
    assert sized.amount.corr(sized.employees.astype("float64"), method="spearman") > 0.3


def test_open_leads_concentrate_at_the_end(leads_with_outcome):
    open_share = (leads_with_outcome.status == "open").groupby(leads_with_outcome.quarter).mean()
    assert open_share.loc[7] > 0.15
    assert open_share.loc[7] > 5 * open_share.loc[:5].mean()


def test_activities_precede_creation_by_at_most_a_day(crm):
    activities = crm["activities"].merge(crm["leads"][["lead_id", "created_at"]], on="lead_id")
    lead_time = activities.created_at - activities.occurred_at
    assert (lead_time <= pd.Timedelta(days=1)).all()
    assert (lead_time > pd.Timedelta(0)).any()  # web visits before the form are matched to the lead
    assert (activities.occurred_at < NOW).all()


def test_customers_keep_activity_after_the_decision_and_rejected_leads_fade(crm):
    """The leak point-in-time features must avoid: post-decision activity gives conversions away."""
    activities = crm["activities"].merge(crm["outcomes"], on="lead_id")
    late = activities[activities.occurred_at > activities.decided_at + pd.Timedelta(days=14)]
    late_leads = set(late.lead_id)
    outcomes = crm["outcomes"]
    active_after = outcomes.lead_id.isin(late_leads).groupby(outcomes.status).mean()
    assert active_after["converted"] > 0.7
    assert active_after["rejected"] < 0.1


def test_intent_shows_in_early_activity_but_noisily(crm):
    leads, outcomes = crm["leads"], crm["outcomes"]
    activities = crm["activities"].merge(leads[["lead_id", "created_at"]], on="lead_id")
    early = activities[activities.occurred_at <= activities.created_at + pd.Timedelta(days=3)]
    counts = early.lead_id.value_counts().reindex(leads.lead_id, fill_value=0).to_numpy()
    hot = early[early.activity.isin(["demo_request", "pricing_view"])].lead_id.unique()
    decided = outcomes.status.isin(DECIDED).to_numpy()
    won = (outcomes.status == "converted").to_numpy()
    assert np.median(counts[won]) > np.median(counts[decided & ~won])
    has_hot = leads.lead_id.isin(hot).to_numpy()
    assert won[decided & has_hot].mean() > 1.5 * won[decided & ~has_hot].mean()
    assert (counts[won] <= 2).mean() > 0.1  # many buyers are quiet
    assert (counts[decided & ~won] >= np.median(counts[won])).mean() > 0.2  # and many tire-kickers are not


def test_rejection_reasons_follow_observable_signals(leads_with_outcome):
    rejected = leads_with_outcome[leads_with_outcome.status == "rejected"]
    email = rejected.email.fillna("").str.strip().str.lower()
    title = rejected.job_title.fillna("").str.lower()
    reason = rejected.reason

    def lift(signal: pd.Series, code: str) -> float:
        return signal[reason == code].mean() / signal.mean()

    student = email.str.contains(r"\.edu$|\.ac\.|student\.|stud\.") | title.str.contains("student")
    assert lift(student, "student") > 5
    assert lift(email.str.endswith(("@rivalsoft.com", "@competeco.io")), "competitor") > 10
    assert lift(rejected.employees.astype("float64").lt(50), "no_budget") > 1.5
    assert lift(title.str.contains("intern|assistant|trainee"), "not_decision_maker") > 1.5
    bad_contact = ~email.str.fullmatch(r"[^@\s]+@[^@\s]+\.[a-z]{2,}")
    assert lift(bad_contact, "invalid_contact") > 5


def test_duplicates_resubmit_an_earlier_email_typed_differently(leads_with_outcome):
    frame = leads_with_outcome
    is_duplicate = (frame.status == "duplicate") | (frame.reason == "duplicate")
    assert 0.01 < is_duplicate.mean() < 0.04
    normalized = frame.email.str.strip().str.lower()
    first_lead = frame.assign(key=normalized).dropna(subset=["key"]).groupby("key").lead_id.first()
    duplicates = frame[is_duplicate].assign(key=normalized[is_duplicate])
    originals = frame.set_index("lead_id").loc[duplicates.key.map(first_lead)]
    assert (originals.index != duplicates.lead_id.to_numpy()).all()  # an earlier lead has that e-mail
    assert (originals.email.to_numpy() != duplicates.email.to_numpy()).all()  # typed differently
    assert (originals.created_at.to_numpy() < duplicates.created_at.to_numpy()).all()


def test_shift_lowers_only_that_sources_late_conversions():
    shift = SourceShift("paid_search", from_quarter=4)
    base, shifted = generate_crm(5000, seed=11), generate_crm(5000, seed=11, shift=shift)
    pd.testing.assert_frame_equal(shifted["leads"], base["leads"])
    leads = base["leads"]
    hit = ((leads.lead_source == "paid_search") & (leads.created_at >= START + pd.DateOffset(months=12))).to_numpy()

    # Everything outside the shifted source's late leads is unchanged, activities included.
    pd.testing.assert_frame_equal(shifted["outcomes"][~hit], base["outcomes"][~hit])
    hit_ids = set(leads.lead_id[hit])

    def untouched(activities: pd.DataFrame) -> pd.DataFrame:
        return activities[~activities.lead_id.isin(hit_ids)].reset_index(drop=True)

    pd.testing.assert_frame_equal(untouched(shifted["activities"]), untouched(base["activities"]))

    # The shifted leads convert much less than the same leads without the shift, and than before it.
    assert _conversion_rate(shifted["outcomes"][hit]) < 0.6 * _conversion_rate(base["outcomes"][hit])
    frame = shifted["leads"].merge(shifted["outcomes"], on="lead_id")
    early = frame[(frame.lead_source == "paid_search").to_numpy() & ~hit]
    assert _conversion_rate(frame[hit]) < 0.6 * _conversion_rate(early)


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_write_crm_round_trips(crm, tmp_path, fmt):
    paths = write_crm(crm, tmp_path / "crm", fmt=fmt)
    assert set(paths) == set(TABLES)
    for name, path in paths.items():
        assert path.exists() and path.suffix == f".{fmt}"
        if fmt == "parquet":
            back = pd.read_parquet(path)
        else:
            back = pd.read_csv(path, parse_dates=list(TABLES[name].dates), keep_default_na=False,
                               na_values=[""], dtype={"employees": "Int64"})
        pd.testing.assert_frame_equal(back, crm[name], check_dtype=fmt == "parquet")


def test_write_crm_never_replaces_files_it_did_not_write(crm, tmp_path):
    export = tmp_path / "crm"
    export.mkdir()
    (export / "leads.csv").write_text("lead_id\nREAL-1\n")  # e.g. the CRM export
    with pytest.raises(FileExistsError, match=r"already holds leads.csv, not written by sample-data"):
        write_crm(crm, export)
    assert (export / "leads.csv").read_text() == "lead_id\nREAL-1\n" and not (export / "outcomes.csv").exists()
    # Its own sample it replaces: `make demo` regenerates data/sample on every run.
    write_crm(crm, tmp_path / "sample")
    paths = write_crm(crm, tmp_path / "sample")
    assert len(pd.read_csv(paths["leads"])) == len(crm["leads"])


def test_write_crm_replaces_only_the_files_its_marker_lists(crm, tmp_path):
    """The marker beside a sample covers the files that run wrote, not every file in the folder."""
    folder = tmp_path / "crm"
    folder.mkdir()
    crm["leads"].head(3).to_parquet(folder / "leads.parquet")  # the user's export, in the other format
    export = (folder / "leads.parquet").read_bytes()
    write_crm(crm, folder)  # no CSV there yet: the sample goes beside it
    with pytest.raises(FileExistsError, match=r"already holds leads.parquet, not written by sample-data"):
        write_crm(crm, folder, fmt="parquet")
    assert (folder / "leads.parquet").read_bytes() == export and not (folder / "outcomes.parquet").exists()
    write_crm(crm, folder)  # its own CSVs it may still replace


def test_a_marker_that_lists_no_files_covers_the_csv_sample_only(crm, tmp_path):
    """Earlier versions wrote a marker without a file list, after writing the default CSV set."""
    folder = tmp_path / "crm"
    write_crm(crm, folder)
    (folder / ".leadscore-sample").write_text("Written by `leadscore sample-data`: the next run may replace its files.\n")
    write_crm({**crm, "open_leads": crm["leads"].head(2)}, folder)
    crm["leads"].head(3).to_parquet(folder / "leads.parquet")
    (folder / ".leadscore-sample").write_text("Written by `leadscore sample-data`: the next run may replace its files.\n")
    export = (folder / "leads.parquet").read_bytes()
    with pytest.raises(FileExistsError, match="leads.parquet"):
        write_crm(crm, folder, fmt="parquet")
    assert (folder / "leads.parquet").read_bytes() == export


def test_write_crm_refuses_unknown_format_and_missing_tables(crm, tmp_path):
    with pytest.raises(ValueError, match="fmt"):
        write_crm(crm, tmp_path, fmt="xlsx")
    with pytest.raises(ValueError, match="outcomes"):
        write_crm({"leads": crm["leads"], "activities": crm["activities"]}, tmp_path)


def test_zero_leads_gives_empty_tables_with_the_contract_columns(crm):
    empty = generate_crm(0)
    for name, frame in empty.items():
        assert frame.empty
        assert tuple(frame.columns) == TABLES[name].columns
        assert frame.dtypes.equals(crm[name].dtypes)


@pytest.mark.parametrize(
    ("call", "field"),
    [
        (lambda: generate_crm(-1), "n_leads"),
        (lambda: generate_crm(10, quarters=0), "quarters"),
        (lambda: generate_crm(10, start="not a date"), "start"),
        (lambda: SourceShift("carrier_pigeon", 2), "shift.source"),
        (lambda: SourceShift("webinar", -1), "shift.from_quarter"),
        (lambda: SourceShift("webinar", 2, conversion_factor=0), "shift.conversion_factor"),
    ],
)
def test_bad_arguments_name_the_field(call, field):
    with pytest.raises(ValueError, match=field):
        call()
