"""The training set and the frames other models are compared on."""

from __future__ import annotations

import dataclasses
import re
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from features.build import decision_times, to_epoch_ns
from pipelines import dataset
from pipelines.config import Params
from pipelines.dataset import (assemble, data_as_of, features_at, features_at_moments, model_features, open_at_ages,
                               setting_warnings)
from pipelines.ingest import ContractError, load_crm


def test_another_model_is_compared_on_its_own_settings_at_the_same_moments(sample_params):
    """An older model (other windows, trained at 3 days only) is scored on the same leads as they
    were at the training set's snapshots, with its own windows: same leads, same moments."""
    ts = assemble(sample_params)
    ids = ts.features.index[:300]
    older = SimpleNamespace(features=ts.feature_params.model_copy(update={"windows": [14, 60], "snapshot_days": [3.0]}),
                            as_known=lambda frame: frame)  # a model without category levels reads values as built

    frame = model_features(older, ts, ids)

    ages = (ts.snapshot_at.loc[ids] - ts.crm.leads.set_index("lead_id").loc[ids, "created_at"]).dt.days
    assert ages.nunique() > 3  # the training set sees these leads at several ages
    assert "page_view_14d" in frame.columns and "page_view_7d" not in frame.columns
    pd.testing.assert_series_equal(frame["days_since_last_activity"], ts.features.loc[ids, "days_since_last_activity"])
    # A model with the training set's own settings reuses its frame: that is what a rebuild gives.
    pd.testing.assert_frame_equal(features_at(ts.crm, ids, ts.snapshot_at, ts.feature_params), ts.features.loc[ids])


def test_an_activity_file_of_open_leads_only_is_said_to_leave_every_labelled_lead_never_active(sample_params):
    """An export of the pipeline's activity only (the leads still open) trained every labelled lead as never active
    without a word: training and judging say how many leads the file names and what to check. The sample's own file,
    which names decided leads too, gives no warning; one whose types the features do not read is said once, as that."""
    ts = assemble(sample_params)
    assert setting_warnings(ts, sample_params) == []
    labels = ts.labels.frame
    still_open = labels.index[~labels["decided"] & labels["label"].isna()]  # not yet expired either
    activities = ts.crm.activities[ts.crm.activities["lead_id"].isin(still_open)]
    assert len(activities) and not activities["lead_id"].isin(ts.features.index).any()
    open_only = assemble(sample_params, crm=dataclasses.replace(ts.crm, activities=activities))
    named = activities["lead_id"].nunique()
    source = f"data.activities ({sample_params.data.activities})"

    assert setting_warnings(open_only, sample_params) == [
        f"{source} names {named:,} leads ({named:,} of them still open), none of them one of the {len(ts.y):,} labelled "
        "leads training learns from: every labelled lead trains as never active, so the model learns from lead fields "
        "only; check that the export's activities cover the decided leads too, not only the open ones"]
    assert setting_warnings(open_only, sample_params, judging=True)[0].endswith(
        "labelled leads the model is judged on: every labelled lead is scored as never active, so the figures judge "
        "the model on lead fields only; check that the export's activities cover the decided leads too, not only the "
        "open ones")
    unread = activities.assign(activity=activities["activity"].str.replace("_", " ").str.title() + " (CRM)")
    (warning,) = setting_warnings(assemble(sample_params, crm=dataclasses.replace(ts.crm, activities=unread)),
                                  sample_params)
    assert warning.startswith(f"none of the {len(unread):,} activity rows of {source} is of a type the features read")


def test_activity_rows_of_types_the_features_do_not_read_are_counted_when_others_are_read(sample_params):
    """A retrain on an export where 30% of the activities are a new CRM type ('Webinar Attended') no value map
    translates trained the model ignoring them without a word, where `score` counts such rows: training (and judging)
    says so in score's words, counting them per type, most first, with how to have them read."""
    ts = assemble(sample_params)
    activities = ts.crm.activities
    position = np.arange(len(activities))
    webinars, chats = position % 10 < 3, position % 100 == 99
    new_types = activities.assign(activity=activities["activity"].mask(webinars, "Webinar Attended")
                                  .mask(chats, "chat_started"))
    export = assemble(sample_params, crm=dataclasses.replace(ts.crm, activities=new_types))
    counted = (f"{webinars.sum() + chats.sum():,} of the {len(activities):,} activity rows of data.activities "
               f"({sample_params.data.activities}) are of a type the model does not read ('Webinar Attended' "
               f"{webinars.sum():,}, 'chat_started' {chats.sum():,})")
    advice = ("have data.value_maps.activity translate them to one the features read "
              f"({', '.join(sample_params.features.activity_types)}), or list them in features.activity_types for")

    assert setting_warnings(ts, sample_params) == []  # the export's own file: every type is read
    assert setting_warnings(export, sample_params) == [
        f"{counted}: not counted in training; {advice} the model to learn them"]
    assert setting_warnings(export, sample_params, judging=True) == [
        f"{counted}: not counted in the scores the model is judged by; {advice} a retrain to learn them"]


def test_a_column_the_features_read_left_blank_on_every_labelled_lead_is_named(sample_params):
    """A CRM report exporting 'Campaign' empty (and the job title, which seniority and department are parsed from)
    trained every lead as having none without a word, where a file lacking the column is warned about: training and
    judging name both columns, by the export's names, even when the leads still open have values; a column the
    file lacks is named once, as absent."""
    ts = assemble(sample_params)
    leads = ts.crm.leads
    labelled = leads["lead_id"].isin(ts.features.index)
    assert (~labelled).any() and leads.loc[labelled, ["campaign", "job_title"]].notna().any().all()
    blanked = leads.assign(campaign=leads["campaign"].mask(labelled), job_title=leads["job_title"].mask(labelled))
    export = dataclasses.replace(ts.crm, leads=blanked)

    warning = (f"data.leads ({sample_params.data.leads}) has no value for any of the {labelled.sum():,} labelled leads "
               "in columns 'campaign', 'job_title', which the features read: every lead trains as not having them; "
               "check that the export fills them (data.missing_values counts as no value)")
    assert setting_warnings(assemble(sample_params, crm=export), sample_params) == [warning]
    assert setting_warnings(assemble(sample_params, crm=export), sample_params, judging=True) == [
        warning.replace("trains as", "is scored as")]
    assert setting_warnings(ts, sample_params) == []
    without = dataclasses.replace(export, leads_header=[c for c in ts.crm.leads_header if c != "campaign"])
    assert [w.split(", which")[0] for w in setting_warnings(assemble(sample_params, crm=without), sample_params)] == [
        f"data.leads ({sample_params.data.leads}) has no column 'campaign'",
        f"data.leads ({sample_params.data.leads}) has no value for any of the {labelled.sum():,} labelled leads in "
        "column 'job_title'"]


def test_rows_on_error_drop_left_out_are_counted_where_training_is_told(sample_params, sample_dir, tmp_path):
    """An export with employees written 'unknown' in 3 rows and data.on_error: drop trained on the rest with only
    `features`' ingest report and the run's ingest_report.json saying so: train and retrain's warnings count the rows
    left out per file (a refused lead's outcome row goes too), naming the first problem; `features`, which lists the
    problems, does not say it again. A clean export gives none."""
    leads = pd.read_csv(sample_dir / "leads.csv", dtype=str, keep_default_na=False)
    leads.loc[[4, 9, 30], "employees"] = "unknown"
    leads.to_csv(tmp_path / "leads.csv", index=False)
    params = sample_params.model_copy(update={"data": sample_params.data.model_copy(
        update={"leads": str(tmp_path / "leads.csv"), "on_error": "drop"})})

    ts = assemble(params)
    warnings = dataset.training_warnings(ts, params)

    assert warnings == [
        f"data.on_error is drop: training left out 3 rows of {tmp_path / 'leads.csv'}, 3 rows of "
        f"{sample_params.data.outcomes} that ingest refused (the first problem: {tmp_path / 'leads.csv'} row 5 (header "
        "not counted), column 'employees': not a number: 'unknown'); `leadscore features` lists the problems"]
    # `features` prints the ingest report's problems above its warnings: the count is not said again there
    assert dataset.training_warnings(ts, params, problems_listed=True) == []
    assert dataset.training_warnings(assemble(sample_params), sample_params) == []


def test_rows_of_fewer_values_than_the_header_are_named_where_training_is_told(sample_params, sample_dir, tmp_path):
    """A leads row cut short (a line break outside quotes, or an exporter leaving out trailing empty values) trained
    with its last columns blank without a word: features, train and evaluate name the first rows, their values against
    the header's columns, the columns read blank and the likely cause. A clean export gives no such warning."""
    lines = (sample_dir / "leads.csv").read_text().splitlines()
    for row, values in ((5, 8), (9, 4), (30, 4), (31, 4)):  # file rows, header not counted
        lines[row] = ",".join(lines[row].split(",")[:values])
    (tmp_path / "leads.csv").write_text("\n".join(lines) + "\n")
    params = sample_params.model_copy(update={"data": sample_params.data.model_copy(
        update={"leads": str(tmp_path / "leads.csv")})})

    ts = assemble(params)

    warning = (f"{tmp_path / 'leads.csv'}: row 5 (header not counted) has 8 values, row 9 4, row 30 4 and 1 more row, "
               "where the header has 11 columns: read with the last columns blank (row 5's 'job_title', 'lead_source', "
               "'campaign'; row 9's 'company' to 'campaign' (7 columns); row 30's 'company' to 'campaign' "
               "(7 columns)); a value holding a line break outside double quotes cuts its row in two, the rest read as "
               "another row: put such values in double quotes (Excel's CSV does), or export the file again; if the "
               "export only leaves out trailing empty values, the rows are read right")
    assert dataset.training_warnings(ts, params) == [warning]
    assert setting_warnings(ts, params, judging=True) == [warning]
    assert ts.crm.leads.loc[4, ["job_title", "lead_source", "campaign"]].isna().all()  # read, not refused
    assert dataset.training_warnings(assemble(sample_params), sample_params) == []


def test_most_conversions_labelled_after_the_horizon_are_warned_of_naming_an_import_day(sample_params):
    """A CRM migration stamping every lead's created_at with one day trained most conversions as negative
    (negative:converted_after_horizon, label.horizon_days counting from that day) with only the label counts to show
    it: training counts them against the conversions it labels, gives their median days to conversion and names the
    day as an import's; a horizon far shorter than the sales cycle is warned of without a day. The sample gives none."""
    ts = assemble(sample_params)
    assert dataset.training_warnings(ts, sample_params) == []
    leads, outcomes = ts.crm.leads, ts.crm.outcomes
    day = leads["created_at"].min().floor("D")
    imported = assemble(sample_params, crm=dataclasses.replace(ts.crm, leads=leads.assign(created_at=day)))
    won = outcomes.loc[outcomes["status"] == "converted", "decided_at"]
    assert won.notna().all()
    days = (won - day) / pd.Timedelta(days=1)
    late = int((days > 120).sum())
    assert late > 0.8 * len(won)

    (warning,) = dataset.training_warnings(imported, sample_params)

    assert warning == (
        f"{late:,} of the {len(won):,} conversions training labels ({late / len(won):.1%}) came more than "
        "label.horizon_days (120) after the lead's creation, so it learns them as not converted "
        f"(negative:converted_after_horizon); the median conversion came {days.median():,.0f} days after creation, and "
        f"all {len(leads):,} leads were created on {day:%Y-%m-%d}: their creation dates look like an "
        "import date (a CRM migration or bulk import stamps its own), not when the leads came in; raise "
        "label.horizon_days to cover the sales cycle, or map the CRM's original creation date field to created_at in "
        "data.mapping.leads")
    # evaluate and audit judge a model by the same labels
    judged = warning.replace("conversions training labels", "conversions the model is judged by")
    assert dataset.setting_warnings(imported, sample_params, judging=True) == [
        judged.replace("so it learns them", "so they count")]
    # A migration of the older half of the leads, the newer ones created in the CRM since: the day is named, counted.
    older = leads["created_at"] < leads["created_at"].median()
    migrated = assemble(sample_params, crm=dataclasses.replace(ts.crm, leads=leads.assign(
        created_at=leads["created_at"].mask(older, day))))
    (warning,) = dataset.training_warnings(migrated, sample_params)
    assert f"{older.sum():,} of the {len(leads):,} leads were created on {day:%Y-%m-%d}: their creation" in warning
    short = sample_params.model_copy(update={"label": sample_params.label.model_copy(update={"horizon_days": 14})})
    (warning,) = dataset.training_warnings(assemble(short), short)
    assert "came more than label.horizon_days (14) after the lead's creation" in warning
    assert "import date" not in warning


def test_a_personal_column_listed_as_a_category_is_said_to_be_kept(sample_params, sample_dir, tmp_path):
    """features.categorical listing the lead's company kept every company name in the model, the audit and the score
    log without a word, though the README says no e-mail, phone or company is kept: training (and judging) says so,
    naming the setting, also when it lists the CRM's name data.mapping maps to the contract's column."""
    listed = sample_params.model_copy(update={"features": sample_params.features.model_copy(
        update={"categorical": [*sample_params.features.categorical, "company"]})})
    ts = assemble(listed)
    advice = ("in the model, the audit and the score log; leave it out, or derive a non-personal signal from it in "
              "features.derived (email_signals: the e-mail domain's kind; contact_gaps: whether an e-mail, phone or "
              "company is given)")

    assert ts.features["company"].notna().any()  # the names are read as categories: what the warning says
    assert setting_warnings(ts, listed) == [
        f"features.categorical lists 'company', a personal column of the lead: its values are kept {advice}"]
    assert setting_warnings(ts, listed, judging=True) == setting_warnings(ts, listed)

    leads = pd.read_csv(sample_dir / "leads.csv").rename(columns={"email": "E-Mail"})
    leads.to_csv(renamed := tmp_path / "leads.csv", index=False)
    crm_named = listed.model_copy(update={
        "data": listed.data.model_copy(update={"leads": str(renamed), "mapping": listed.data.mapping.model_copy(
            update={"leads": {"E-Mail": "email"}})}),
        "features": listed.features.model_copy(update={"categorical": [*sample_params.features.categorical,
                                                                       "E-Mail"]})})
    warnings = setting_warnings(assemble(crm_named), crm_named)
    # The export has 'E-Mail', read as email: the warning that it has no column 'E-Mail' says why and what to list.
    assert warnings[0].startswith(f"data.leads ({renamed}) has no column 'E-Mail' (data.mapping.leads reads it as "
                                  "'email', and the features name the contract's columns: list 'email'), which the "
                                  "features read")
    assert warnings[1:] == [
        "features.categorical lists 'E-Mail', which data.mapping maps to email, a personal column of the lead: listed "
        f"as email, its values would be kept {advice}"]


def test_a_crm_column_whose_name_says_it_is_personal_listed_as_a_category_is_warned_about_by_its_name(sample_params):
    """A CRM's own column of a lead's mobile or private e-mail, which the contract's email/phone/company do not name,
    was listed as a category without a word; normal fields, flags about contact data and the real X Education
    settings are not warned about."""
    from pipelines.config import PROJECT_ROOT, load_params

    personal = {"Contact Mobile": "phone number", "Personal Email": "e-mail", "personal_email": "e-mail",
                "Phone 2": "phone number", "Email ID": "e-mail", "Billing Address": "address", "First Name": "name",
                "Company Name": "name", "Parent Company": "company"}
    normal = ["Lead Source", "Company Size", "company_size", "Do Not Email", "do_not_call", "Campaign Name",
              "Email Opt Out", "Emails Sent", "Email Domain", "Lead Number"]
    listed = sample_params.model_copy(update={"features": sample_params.features.model_copy(
        update={"categorical": [*normal, *personal]})})

    assert dataset.personal_categories(listed) == [
        f"features.categorical lists {name!r}, whose name says it holds the lead's {kind}, personal data: its values "
        "are kept in the model, the audit and the score log; leave it out, or derive a non-personal signal from it in "
        "features.derived (email_signals: the e-mail domain's kind; contact_gaps: whether an e-mail, phone or company "
        "is given)" for name, kind in personal.items()]
    assert dataset.personal_categories(load_params(PROJECT_ROOT / "params.x_education.yaml")) == []


def test_an_export_without_outcomes_is_said_to_count_every_lead_past_its_horizon_as_not_converted(
        sample_params, sample_dir, tmp_path):
    """An outcomes report of its header only (a filter that matched nothing) beside the leads trained every lead past
    its horizon as not converted, without a word: the label counts alone showed it, as negative:open_expired (a leads
    file of its header only is refused). Unset, data.outcomes did the same. The export's own outcomes say nothing."""
    pd.read_csv(sample_dir / "outcomes.csv", dtype=str).head(0).to_csv(header_only := tmp_path / "outcomes.csv",
                                                                       index=False)

    def warnings(outcomes: str | None) -> list[str]:
        params = sample_params.model_copy(update={"data": sample_params.data.model_copy(update={"outcomes": outcomes})})
        ts = assemble(params)
        expired = ts.labels.counts["negative:open_expired"]
        assert expired > len(ts.y) / 2  # what the export's missing outcomes do to the labels
        return [w.replace(f"({expired:,} leads", "(N leads") for w in setting_warnings(ts, params)]

    consequence = ("every lead without a decision in the service's feedback store is open, and counts as not converted "
                   "past label.horizon_days (N leads: negative:open_expired); export the outcomes (status, reason, "
                   "decided_at) with the leads")
    assert warnings(str(header_only)) == [f"data.outcomes ({header_only}) has no row (its header only): {consequence}"]
    assert warnings(None) == [f"data.outcomes is not set: {consequence}"]
    assert setting_warnings(assemble(sample_params), sample_params) == []


def test_decisions_without_a_date_are_said_to_be_seen_at_creation(sample_params):
    """A contacts export whose close date was left unmapped (or blank) trained each decided lead as seen at its
    creation and counted its conversion however late, with label counts looking as usual and no word said."""
    ts = assemble(sample_params)
    outcomes = ts.crm.outcomes
    closed = outcomes.index[outcomes["status"].isin(["converted", "rejected"])][:40]
    undated = outcomes.assign(decided_at=outcomes["decided_at"].mask(outcomes.index.isin(closed)))
    decided = int(ts.labels.frame["decided"].sum())

    export = dataclasses.replace(ts.crm, outcomes=undated, feedback=None)  # the export alone: no store to lay over it
    warnings = setting_warnings(assemble(sample_params, crm=export),
                                sample_params, judging=True)

    assert warnings == [
        f"40 of the {decided:,} decided leads have no decided_at (check that data.mapping maps the CRM's close date): "
        "each is scored as seen at its creation, its later activity unread, and its conversion counts however long "
        "it took, unchecked against label.horizon_days"]


def test_decisions_dated_on_one_side_only_are_said_to_teach_the_model_the_date(sample_params):
    """A Salesforce Lead report dates only conversions (Converted Date): mapped as decided_at, every other decision
    trained as seen at its creation and every conversion later, with its activity, and the model promised half the
    leads a conversion (test ECE 0.35 on a 7,000-lead export) with a warning saying only to check the mapping."""
    ts = assemble(sample_params)
    outcomes = ts.crm.outcomes
    converted = outcomes["status"].eq("converted")
    dated_conversions = outcomes.assign(decided_at=outcomes["decided_at"].where(converted))
    export = dataclasses.replace(ts.crm, outcomes=dated_conversions, feedback=None)
    labels = assemble(sample_params, crm=export).labels.frame
    decided = labels["decided"]
    conversions = int((decided & labels["status"].eq("converted")).sum())
    others = int(decided.sum()) - conversions

    warnings = setting_warnings(assemble(sample_params, crm=export), sample_params)

    assert warnings == [
        f"{others:,} of the {int(decided.sum()):,} decided leads have no decided_at (check that data.mapping maps the "
        "CRM's close date): each trains as seen at its creation, its later activity unread, and its conversion counts "
        f"however long it took, unchecked against label.horizon_days; they are 0 of the {conversions:,} conversions "
        f"but {others:,} of the {others:,} other decisions, so one side is seen later in its life than the other, with "
        "activity the other is never seen with, and the model learns which leads have a date rather than which "
        "convert (a date only conversions get, as Salesforce's Converted Date, does this): map a date every "
        "decision has, the day its status closed"]


def test_an_activity_file_ending_long_before_the_leads_is_asked_about(sample_params):
    """A quarter's retrain with `--leads` naming the new leads file and data.activities still last quarter's Tasks
    report: the leads created since, and every lead's activity since, trained as none, without a word."""
    ts = assemble(sample_params)
    now = data_as_of(ts.crm)
    end = now - pd.Timedelta(days=60)
    activities = ts.crm.activities[ts.crm.activities["occurred_at"] <= end]
    last = activities["occurred_at"].max()
    later = int((ts.crm.leads["created_at"] > last).sum())
    earlier = dataclasses.replace(ts.crm, activities=activities)

    warnings = setting_warnings(assemble(sample_params, crm=earlier), sample_params)

    assert setting_warnings(ts, sample_params) == []  # the export's own activity file
    assert later and warnings == [
        f"data.activities ({sample_params.data.activities}) ends {last:%Y-%m-%d %H:%M}, {(now - last).days} days before "
        f"the export's latest lead or decision ({now:%Y-%m-%d %H:%M}), and {later:,} leads were created since: is it "
        "an earlier export's? Their activity, and every lead's since then, is read as none, so the model learns from "
        "them as if inactive; name this export's activity file in data.activities (--leads names the leads file only)"]


def test_leads_seen_at_several_moments_are_each_built_as_of_their_own(sample_params):
    """Monitor's reference sees a lead open long at several ages: built in one pass, each (lead, moment) pair is the
    lead as it stood then, in pair order, as building it alone gives; without an activity table too (NaN intent)."""
    ts = assemble(sample_params)
    busy = ts.crm.activities["lead_id"].value_counts().index[0]
    quiet = ts.crm.leads.loc[~ts.crm.leads["lead_id"].isin(ts.crm.activities["lead_id"]), "lead_id"].iloc[0]
    lead_ids = np.array([busy, quiet, busy, ts.features.index[5], busy, busy], dtype=object)
    created = ts.crm.leads.set_index("lead_id").loc[lead_ids, "created_at"].to_numpy()
    moments = created + pd.to_timedelta([90, 3, 0, 30, 7, 0], unit="D").to_numpy()
    moments[-1] = ts.crm.activities.loc[ts.crm.activities["lead_id"] == busy, "occurred_at"].iloc[4]  # one it counts

    no_table = dataclasses.replace(ts.crm, activities=None)

    frame = features_at_moments(ts.crm, lead_ids, moments, ts.feature_params)
    unknown = features_at_moments(no_table, lead_ids, moments, ts.feature_params)

    for crm, built in ((ts.crm, frame), (no_table, unknown)):
        alone = pd.concat([features_at(crm, pd.Index([lead]), pd.Series([moment], index=[lead]), ts.feature_params)
                           for lead, moment in zip(lead_ids, moments)])
        pd.testing.assert_frame_equal(built, alone)
    # One lead at four moments, each recency counted from its last activity by then.
    acts = ts.crm.activities[(ts.crm.activities["lead_id"] == busy)
                             & ts.crm.activities["activity"].isin(ts.feature_params.activity_types)]["occurred_at"]
    expected = [(moment - acts[acts <= moment].max()) / pd.Timedelta(days=1) for moment in moments[lead_ids == busy]]
    assert frame.loc[busy, "days_since_last_activity"].tolist() == pytest.approx(expected)
    assert frame.loc[busy, "days_since_last_activity"].nunique() > 1
    assert frame["days_since_last_activity"].iloc[-1] == 0  # the activity at the moment itself counts
    assert unknown["page_view_90d"].isna().all()  # no activity table: unknown, not 0


def test_a_bad_value_of_a_lead_seen_at_several_moments_is_named_by_its_lead_id(sample_params):
    """Each (lead, moment) pair is built as a lead of its own, numbered by pair: text in a numeric column must still
    name the lead that holds it, as building the lead alone does, so the CRM row can be found and fixed."""
    ts = assemble(sample_params)
    bad, good = ts.features.index[7], ts.features.index[8]
    leads = ts.crm.leads.astype({"employees": object})
    leads.loc[leads["lead_id"] == bad, "employees"] = "about fifty"
    crm = dataclasses.replace(ts.crm, leads=leads)
    lead_ids = np.array([good, bad, bad], dtype=object)
    moments = ts.snapshot_at.loc[lead_ids].to_numpy()

    with pytest.raises(ValueError, match=re.escape(f"leads.employees: not a number for lead_id -> value {{'{bad}': 'about fifty'}}")):
        features_at_moments(crm, lead_ids, moments, ts.feature_params)


def test_leads_open_at_each_age_are_the_leads_built_alone_as_of_that_age(sample_params):
    """Training's age shifts and the while-open evaluation read each age's open leads: built in one pass with every
    other age's, each age holds the leads undecided then in the given rows' order, with their labels, as one build
    of that age's leads alone as of then gives (with the model's own settings, not the training set's)."""
    ts = assemble(sample_params)
    spec = ts.feature_params.model_copy(update={"windows": [14, 60]})
    rows = np.random.default_rng(3).permutation(len(ts.y))[:1500]
    ages = ts.feature_params.snapshot_days
    ids = ts.features.index[rows]
    created = ts.crm.leads.set_index("lead_id").loc[ids, "created_at"].to_numpy()
    decided = decision_times(ts.labels.frame.loc[ids], np.arange(len(ids)), to_epoch_ns(pd.Series(created), "created_at"))
    decided = decided.view("datetime64[ns]")

    at_ages = open_at_ages(ts, rows, spec, ages)

    assert [at_age.age_days for at_age in at_ages] == ages
    for at_age in at_ages:
        seen_at = created + pd.Timedelta(days=at_age.age_days).to_timedelta64()
        open_then = (seen_at <= np.datetime64(ts.as_of)) & ~(decided <= seen_at)
        alone = features_at(ts.crm, ids[open_then], pd.Series(seen_at[open_then], index=ids[open_then]), spec)
        pd.testing.assert_frame_equal(at_age.features, alone)
        np.testing.assert_array_equal(at_age.y, ts.y[rows][open_then])
    assert len(at_ages[-1].y) < len(at_ages[0].y)  # fewer leads stay open 90 days than are new


def test_a_file_hash_is_read_once_but_follows_an_edit_of_the_same_size(tmp_path):
    """The training key must see a corrected export (same size, one digit changed), and retrain must not read
    a GB of activities twice to compare it."""
    export = tmp_path / "leads.csv"
    export.write_text("lead_id,employees\nL1,10\n")
    first = dataset.file_sha256(export)
    reads = dataset._sha256.cache_info().misses

    assert dataset.file_sha256(export) == first and dataset._sha256.cache_info().misses == reads  # not read again
    export.write_text("lead_id,employees\nL1,11\n")  # same size
    assert dataset.file_sha256(export) != first


def test_another_models_number_column_is_read_from_the_export_by_the_number_fields_rule(tmp_path):
    """An older model whose features.numeric names a column today's params do not read as a number (retrain's
    champion, audit's previous version, monitor's champion) is built on the export's text of it: pandas read the
    '+'-signed "+9999999999999.2504" as 9999999999999.252, where the service reading the same lead gets it right."""
    pd.DataFrame({"lead_id": ["L1", "L2"], "created_at": "2025-01-05", "Visits": ["+9999999999999.2504", " 4 "]}).to_csv(
        tmp_path / "leads.csv", index=False)
    params = Params.model_validate({"data": {"leads": "leads.csv"}, "base_dir": tmp_path})
    crm = load_crm(params)
    older = SimpleNamespace(features=params.features.model_copy(update={"numeric": [*params.features.numeric, "Visits"]}),
                            as_known=lambda frame: frame)
    training_set = SimpleNamespace(crm=crm, snapshot_at=None, feature_params=params.features)

    frame = model_features(older, training_set, pd.Index(["L1", "L2"]))

    assert crm.leads["Visits"].tolist() == ["+9999999999999.2504", " 4 "]  # today's params read it as text
    assert frame["Visits"].tolist() == [9999999999999.2504, 4.0]


def test_another_models_number_column_is_read_with_the_exports_decimal_mark(tmp_path):
    """A ';' export written by a German Excel reads "2,5" in a number field as 2.5: the column an older model reads as
    a number, which today's params read as text, was read with a decimal point only ("2,5": 'not a number'), so
    retrain, the audit and monitor stopped on an export the service and training read. A number that reads two ways
    there (1.200: 1200 or 1.2) is refused by column and lead, as the export refuses it."""
    leads = pd.DataFrame({"lead_id": ["L1", "L2", "L3"], "created_at": "2025-01-05", "Visits": ["2,5", "1.234,5", " 4 "]})
    leads.to_csv(tmp_path / "leads.csv", sep=";", index=False)
    params = Params.model_validate({"data": {"leads": "leads.csv"}, "base_dir": tmp_path})
    older = SimpleNamespace(features=params.features.model_copy(update={"numeric": [*params.features.numeric, "Visits"]}),
                            as_known=lambda frame: frame)
    training_set = SimpleNamespace(crm=load_crm(params), snapshot_at=None, feature_params=params.features)

    frame = model_features(older, training_set, pd.Index(["L1", "L2", "L3"]))

    assert frame["Visits"].tolist() == [2.5, 1234.5, 4.0]
    leads.assign(Visits=["2,5", "1.200", "4"]).to_csv(tmp_path / "leads.csv", sep=";", index=False)
    training_set.crm = load_crm(params)
    with pytest.raises(ValueError, match=r"leads\.Visits: a number that reads two ways .*1200 or 1\.2.*'L2': '1\.200'"):
        model_features(older, training_set, pd.Index(["L1", "L2", "L3"]))


def test_another_models_number_column_reads_a_comma_files_thousands_separators_as_the_export_does(tmp_path):
    """A ',' export's "1,234,567" in a column an older model reads as a number reads as 1234567, as its number fields
    read it; 1,200 (1200, or a quoted decimal comma: 1.2) is refused by column and lead, naming data.decimal_mark."""
    leads = pd.DataFrame({"lead_id": ["L1", "L2"], "created_at": "2025-01-05", "Visits": ["1,234,567", "12,500.5"]})
    leads.to_csv(tmp_path / "leads.csv", index=False)
    params = Params.model_validate({"data": {"leads": "leads.csv"}, "base_dir": tmp_path})
    older = SimpleNamespace(features=params.features.model_copy(update={"numeric": [*params.features.numeric, "Visits"]}),
                            as_known=lambda frame: frame)
    training_set = SimpleNamespace(crm=load_crm(params), snapshot_at=None, feature_params=params.features)

    assert model_features(older, training_set, pd.Index(["L1", "L2"]))["Visits"].tolist() == [1234567.0, 12500.5]
    leads.assign(Visits=["1,200", "4"]).to_csv(tmp_path / "leads.csv", index=False)
    training_set.crm = load_crm(params)
    with pytest.raises(ValueError, match=r"leads\.Visits: a number that reads two ways in a file separated by ',' .*"
                                         r"data\.decimal_mark .*'L1': '1,200'"):
        model_features(older, training_set, pd.Index(["L1", "L2"]))


def test_another_models_number_column_refuses_true_false_by_lead_as_the_export_does(tmp_path):
    """A Parquet true/false column an older model reads as a number was built as 1 and 0, where the export's number
    field (and the service) refuses true/false as no number: it is refused by column and lead instead."""
    pd.DataFrame({"lead_id": ["L1", "L2"], "created_at": "2025-01-05", "Opted In": [False, True]}).to_parquet(
        tmp_path / "leads.parquet")
    params = Params.model_validate({"data": {"leads": "leads.parquet"}, "base_dir": tmp_path})
    older = SimpleNamespace(features=params.features.model_copy(update={"numeric": [*params.features.numeric,
                                                                                    "Opted In"]}),
                            as_known=lambda frame: frame)
    training_set = SimpleNamespace(crm=load_crm(params), snapshot_at=None, feature_params=params.features)

    with pytest.raises(ValueError, match=r"leads\.Opted In: not a number for lead_id -> value \{'L1': False, 'L2': True\}"):
        model_features(older, training_set, pd.Index(["L1", "L2"]))
    with pytest.raises(ContractError, match=r"row 2, column 'Opted In': not a number: True"):  # as the export does
        load_crm(params.model_copy(update={"features": older.features}))
