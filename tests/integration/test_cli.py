"""The `leadscore` command line as a RevOps engineer uses it."""

from __future__ import annotations

import os
import re
import shutil
import socket
import struct
import subprocess
import sys
import threading
from contextlib import contextmanager

import pandas as pd
import pytest
from typer.testing import CliRunner

from pipelines.cli import app
from pipelines.config import PROJECT_ROOT, ParamsError, load_params
from conftest import moved_tracking_store

runner = CliRunner()


def run(*args: str):
    return runner.invoke(app, list(args), catch_exceptions=False)


def test_every_command_has_help():
    commands = re.findall(r"│ (\S+)\s", run("--help").output)
    assert {"sample-data", "features", "train", "score"} <= set(commands)
    for command in commands:
        result = run(command, "--help")
        assert result.exit_code == 0 and "Usage" in result.output


def help_text(command: str) -> str:
    """A command's --help as one line of words, without the boxes and line breaks of the terminal's width."""
    return " ".join(re.sub(r"[│╭╮╰╯─]", " ", run(command, "--help").output).split())


def test_each_command_states_the_as_of_default_it_uses():
    """score reads a lead table, not the export: its 'now' is the clock's (README: default now); audit rebuilds the
    rows the model was trained on, as of its training date; both helps said the export's latest date, as the other
    commands reading the export take."""
    assert "Score as if it were this date (default: now, UTC)" in help_text("score")
    assert "default: the export's latest lead creation or decision" in help_text("train")
    assert "(default: the date the audited model was trained as of)" in help_text("audit")


def test_the_help_of_a_command_writing_a_table_names_every_suffix_that_makes_it_parquet():
    """A scores.pq was written as Parquet while the help said only .parquet makes one."""
    for command in ("score", "export-outcomes"):
        assert "Parquet when it ends in .parquet or .pq" in help_text(command)


def test_sample_data_then_features_prints_counts_rules_and_features(tmp_path):
    out = tmp_path / "crm"
    result = run("sample-data", "--leads", "1500", "--seed", "3", "--out", str(out))
    assert result.exit_code == 0
    assert re.search(r"leads\s+1,500 rows", result.output)
    params = tmp_path / "params.yaml"
    text = (PROJECT_ROOT / "params.yaml").read_text().replace("data/sample/", f"{out}/")
    params.write_text(text)
    result = run("features", "--params", str(params))
    assert result.exit_code == 0, result.output
    assert "1,500 rows read" in result.output
    assert re.search(r"positive:converted: \d+", result.output)
    assert re.search(r"negative:reason:no_budget: \d+", result.output)
    assert "pricing_view_7d" in result.output and "seniority" in result.output
    assert "WARNING" not in result.output  # the demo's settings name values its export holds

    # The same export as a CRM labels its activities: every activity count would be 0, and features says so
    activities = pd.read_csv(out / "activities.csv", dtype=str)
    some = activities.copy()
    some.loc[some["activity"] == "pricing_view", "activity"] = "Pricing Page"  # one type unread: named alone
    some.to_csv(out / "activities.csv", index=False)
    result = run("features", "--params", str(params))
    assert result.exit_code == 0, result.output
    assert "WARNING features.activity_types: no activity in the export is of type pricing_view, so" in result.output
    assert "'Pricing Page' (" in result.output and "data.value_maps.activity" in result.output
    pricing = int((some["activity"] == "Pricing Page").sum())  # rows the model does not read: counted, as score does
    assert (f"WARNING {pricing:,} of the {len(some):,} activity rows of data.activities ({out / 'activities.csv'}) are "
            f"of a type the model does not read ('Pricing Page' {pricing:,}): not counted in training; have "
            "data.value_maps.activity translate them") in result.output.replace("\n", "")
    activities["activity"] = activities["activity"].str.replace("_", " ").str.title().replace(
        {"Webinar": "Attended Webinar"})
    activities.to_csv(out / "activities.csv", index=False)
    result = run("features", "--params", str(params))
    assert result.exit_code == 0, result.output
    output = result.output.replace("\n", "")
    assert (f"WARNING none of the {len(activities):,} activity rows of data.activities ({out / 'activities.csv'}) is "
            "of a type the features read (page_view, pricing_view") in output
    assert ("every lead trains as never active, so the model learns from lead fields only; the file's types: "
            "'Page View' ") in output and "data.value_maps.activity" in output
    assert "features.activity_types: no activity" not in output  # said once, not again type by type


def test_sample_data_never_replaces_a_users_open_leads_file(tmp_path):
    """open_leads.<format> is a file it writes too: one the user put there stays byte for byte."""
    folder = tmp_path / "crm"
    folder.mkdir()
    (folder / "open_leads.csv").write_bytes(b"lead_id,created_at\r\nREAL-1,2025-01-02\r\n")
    result = runner.invoke(app, ["sample-data", "--leads", "50", "--out", str(folder)])
    assert result.exit_code == 1
    assert "already holds open_leads.csv, not written by sample-data" in result.output
    assert (folder / "open_leads.csv").read_bytes() == b"lead_id,created_at\r\nREAL-1,2025-01-02\r\n"
    assert not (folder / "leads.csv").exists()


def test_sample_data_never_replaces_an_export_in_the_other_format(tmp_path):
    folder = tmp_path / "crm"
    folder.mkdir()
    (folder / "leads.parquet").write_bytes(b"PAR1 the user's export")
    assert run("sample-data", "--leads", "50", "--out", str(folder)).exit_code == 0  # CSVs beside it
    result = runner.invoke(app, ["sample-data", "--leads", "50", "--out", str(folder), "--format", "parquet"])
    assert result.exit_code == 1 and "already holds leads.parquet" in result.output
    assert (folder / "leads.parquet").read_bytes() == b"PAR1 the user's export"
    assert run("sample-data", "--leads", "50", "--out", str(folder)).exit_code == 0  # its own it replaces


@pytest.mark.parametrize(("args", "message"), [
    (["--leads", "-5"], "--leads"),
    (["--quarters", "0"], "--quarters"),
    (["--format", "xlsx"], "'csv' or 'parquet'"),
])
def test_sample_data_refuses_bad_options_by_name(tmp_path, args, message):
    result = runner.invoke(app, ["sample-data", "--out", str(tmp_path / "crm"), *args])
    assert result.exit_code in (1, 2) and isinstance(result.exception, SystemExit)  # a message, no traceback
    assert message in result.output


def test_sample_data_into_a_folder_it_cannot_write_is_a_clear_error(tmp_path):
    (tmp_path / "file").write_text("not a folder")
    result = runner.invoke(app, ["sample-data", "--leads", "50", "--out", str(tmp_path / "file" / "crm")])
    assert result.exit_code == 1 and isinstance(result.exception, SystemExit)
    assert f"--out: cannot write the sample into {tmp_path / 'file' / 'crm'}" in result.output


def test_features_as_of_a_date_before_or_long_after_the_export_says_so_and_zero_labels_print_no_nan(tmp_path):
    out = tmp_path / "crm"
    assert run("sample-data", "--leads", "300", "--seed", "3", "--out", str(out)).exit_code == 0
    params = tmp_path / "params.yaml"
    params.write_text((PROJECT_ROOT / "params.yaml").read_text().replace("data/sample/", f"{out}/"))
    before = runner.invoke(app, ["features", "--params", str(params), "--as-of", "2023-01-01"])
    assert before.exit_code == 1 and isinstance(before.exception, SystemExit)
    assert re.search(r"--as-of 2023-01-01: no lead in the export was created by then \(the first was created 2024-01-\d\d\)",
                     before.output)
    too_early = run("features", "--params", str(params), "--as-of", "2024-01-20")  # leads, but none mature yet
    assert too_early.exit_code == 0
    assert "training rows: 0 (the label rules above left every lead out)" in too_early.output
    assert "nan" not in too_early.output
    # A month after the export ends, its open leads would look expired unconverted: refused (a date after now is, too).
    end = pd.Timestamp(max(pd.read_csv(out / "leads.csv")["created_at"].max(),
                           pd.read_csv(out / "outcomes.csv")["decided_at"].max()))
    late = runner.invoke(app, ["features", "--params", str(params), "--as-of", f"{end + pd.Timedelta(days=30):%Y-%m-%d}"])
    assert late.exit_code == 1 and isinstance(late.exception, SystemExit)
    assert f"days after the export's latest lead creation or decision ({end:%Y-%m-%d %H:%M})" in late.output
    assert f"use a date up to {end + pd.Timedelta(days=7):%Y-%m-%d}, or a newer export" in late.output
    assert run("features", "--params", str(params), "--as-of", f"{end + pd.Timedelta(days=6):%Y-%m-%d}").exit_code == 0


def test_score_names_the_model_version_what_it_refused_and_a_missing_activity_file(trained, sample_params, sample_dir, tmp_path):
    from serving.local_server import params_file

    params = params_file(sample_params, tmp_path / "params.yaml")
    leads = (sample_dir / "leads.csv").read_text().splitlines()[:31]
    leads[5] = leads[5].replace(leads[5].split(",")[0], "", 1)  # a lead without its id
    (tmp_path / "leads.csv").write_text("\n".join(leads) + "\n")
    result = run("score", "--params", str(params), "--input", str(tmp_path / "leads.csv"),
                 "--output", str(tmp_path / "scores.parquet"), "--as-of", "2026-01-01")
    assert result.exit_code == 0, result.output
    assert re.search(r"scored 29 of 30 rows with leadscore v\d+ \(champion\) -> .*scores.parquet", result.output)
    assert "1 row failed validation" in result.output
    past = re.search(r"^(\d+) of 29 leads are past the 120-day horizon \(column past_horizon\)$", result.output, re.M)
    assert past and int(past[1]) == pd.read_parquet(tmp_path / "scores.parquet")["past_horizon"].sum() > 0
    assert "no --activities file: every lead is scored as having no activity" in result.output  # none was given
    with_activities = run("score", "--params", str(params), "--input", str(tmp_path / "leads.csv"), "--output",
                          str(tmp_path / "scores.csv"), "--activities", str(sample_dir / "activities.csv"))
    assert with_activities.exit_code == 0 and "no --activities" not in with_activities.output


def test_score_warns_when_the_file_lacks_columns_the_model_reads(trained, sample_params, sample_dir, tmp_path):
    """An export without its industry and campaign columns scores every lead as not having them: the scores
    come out, so only a warning tells RevOps they are not what the model would give."""
    from serving.local_server import params_file

    params = params_file(sample_params, tmp_path / "params.yaml")
    leads = pd.read_csv(sample_dir / "leads.csv", dtype=str).head(30)
    leads.drop(columns=["industry", "campaign"]).to_csv(tmp_path / "partial.csv", index=False)
    leads.to_csv(tmp_path / "whole.csv", index=False)

    def score(name: str):
        return runner.invoke(app, ["score", "--params", str(params), "--input", str(tmp_path / name), "--output",
                                   str(tmp_path / "scores.csv"), "--as-of", "2026-01-01"])

    partial, whole = score("partial.csv"), score("whole.csv")
    assert partial.exit_code == 0 and "scored 30 of 30 rows" in partial.output
    assert re.search(r"partial\.csv has no column 'industry', 'campaign', which the model reads: every lead was "
                     r"scored as not having it", partial.output.replace("\n", ""))
    assert whole.exit_code == 0 and "which the model reads" not in whole.output


def test_score_warns_of_a_row_of_fewer_values_than_the_header_naming_it_and_still_scores_it(
        trained, sample_params, sample_dir, tmp_path):
    """A lead row cut after its 8th value (a line break outside quotes, or an exporter leaving out trailing empty
    values) was scored with a blank job title, source and campaign without a word: score names the row, what was read
    blank and the likely cause, as training does, and scores the lead; an activity file's short row too. A clean file
    gives no such warning."""
    from serving.local_server import params_file

    params = params_file(sample_params, tmp_path / "params.yaml")
    lines = (sample_dir / "leads.csv").read_text().splitlines()[:31]
    (tmp_path / "whole.csv").write_text("\n".join(lines) + "\n")
    lines[5] = ",".join(lines[5].split(",")[:8])
    (tmp_path / "short.csv").write_text("\n".join(lines) + "\n")
    activities = (sample_dir / "activities.csv").read_text().splitlines()
    activities[2] = ",".join(activities[2].split(",")[:3])
    (tmp_path / "activities.csv").write_text("\n".join(activities) + "\n")

    def score(name: str, *activity_file: str):
        return runner.invoke(app, ["score", "--params", str(params), "--input", str(tmp_path / name), "--output",
                                   str(tmp_path / f"{name}.scores.csv"), "--as-of", "2026-01-01", *activity_file])

    short, whole = score("short.csv", "--activities", str(tmp_path / "activities.csv")), score("whole.csv")
    assert short.exit_code == 0 and "scored 30 of 30 rows" in short.output
    told = short.output.replace("\n", "")
    assert (f"{tmp_path / 'short.csv'}: row 5 (header not counted) has 8 values, where the header has 11 columns: "
            "read with the last columns blank (row 5's 'job_title', 'lead_source', 'campaign'); a value holding a line "
            "break outside double quotes cuts its row in two") in told
    assert (f"{tmp_path / 'activities.csv'}: row 2 (header not counted) has 3 values, where the header has 4 columns: "
            "read with the last columns blank (row 2's 'detail')") in told
    assert lines[5].split(",")[0] in pd.read_csv(tmp_path / "short.csv.scores.csv")["lead_id"].tolist()
    assert whole.exit_code == 0 and "scored 30 of 30 rows" in whole.output and "header has" not in whole.output


def test_score_names_lead_sources_the_model_never_saw_with_their_leads_and_says_a_retrain_learns_them(
        trained, sample_params, sample_dir, tmp_path):
    """A quarter's leads from sources added after the last retrain score as the model's other level: the
    summary says so, per column, the most frequent new values first."""
    from serving.local_server import params_file

    params = params_file(sample_params, tmp_path / "params.yaml")
    leads = pd.read_csv(sample_dir / "leads.csv", dtype=str).head(60)
    leads.to_csv(tmp_path / "known.csv", index=False)
    leads.loc[:12, "lead_source"] = ["TikTok"] * 6 + ["Threads"] * 3 + ["Podcast"] * 2 + ["Reddit", "Bluesky"]
    leads.to_csv(tmp_path / "new.csv", index=False)

    def score(name: str):
        return run("score", "--params", str(params), "--input", str(tmp_path / name), "--output",
                   str(tmp_path / "scores.csv"), "--as-of", "2026-01-01")

    new, known = score("new.csv"), score("known.csv")
    assert new.exit_code == 0, new.output
    assert ("13 of 60 leads have a 'lead_source' value the model never saw in training ('TikTok' 6, 'Threads' 3, "
            "'Podcast' 2, and 2 more): scored as the model's \"other\" level") in new.output.replace("\n", "")
    # Not "a retrain would learn the ones with enough leads": its challenger is fit on the older leads only.
    assert ("a retrain learns a value only if enough of the leads it is fit on have it: with creation dates those are "
            "its oldest leads") in new.output.replace("\n", "")
    assert "each lead's are in column never_seen" in new.output.replace("\n", "")  # where the CRM finds them
    assert known.exit_code == 0 and "never saw" not in known.output
    leads.head(0).to_csv(tmp_path / "none.csv", index=False)
    empty = score("none.csv")
    assert empty.exit_code == 0 and "never saw" not in empty.output


def test_score_warns_when_no_activity_row_belongs_to_a_scored_lead(trained, sample_params, sample_dir, tmp_path):
    """Activity ids written differently from the leads' (here a prefix) would score every lead as never engaged."""

    from serving.local_server import params_file

    params = params_file(sample_params, tmp_path / "params.yaml")
    leads = pd.read_csv(sample_dir / "leads.csv", dtype=str).head(40)
    activities = pd.read_csv(sample_dir / "activities.csv", dtype=str)
    activities = activities[activities["lead_id"].isin(leads["lead_id"])]
    leads.to_csv(tmp_path / "leads.csv", index=False)
    activities.to_csv(tmp_path / "activities.csv", index=False)
    activities.assign(lead_id="crm-" + activities["lead_id"]).to_csv(tmp_path / "other_ids.csv", index=False)

    def score(activity_file: str):
        return run("score", "--params", str(params), "--input", str(tmp_path / "leads.csv"), "--output",
                   str(tmp_path / "scores.csv"), "--activities", str(tmp_path / activity_file), "--as-of", "2026-01-01")

    mismatched = score("other_ids.csv")
    assert mismatched.exit_code == 0
    assert f"none of the {len(activities):,} activity rows belongs to a lead of" in mismatched.output
    assert "none of the" not in score("activities.csv").output


def test_score_warns_when_no_activity_row_is_of_a_type_the_model_reads(trained, sample_params, sample_dir, tmp_path):
    """An activity file of the CRM's labels ('Requested Demo' for demo_request) scored every lead as never engaged,
    saying nothing."""

    from serving.local_server import params_file

    params = params_file(sample_params, tmp_path / "params.yaml")
    leads = pd.read_csv(sample_dir / "leads.csv", dtype=str).head(40)
    activities = pd.read_csv(sample_dir / "activities.csv", dtype=str)
    activities = activities[activities["lead_id"].isin(leads["lead_id"])]
    leads.to_csv(tmp_path / "leads.csv", index=False)
    labels = {"demo_request": "Requested Demo", "page_view": "Web Visit"}
    activities.assign(activity=activities["activity"].map(labels).fillna("Other")).to_csv(tmp_path / "labels.csv",
                                                                                        index=False)
    activities.to_csv(tmp_path / "activities.csv", index=False)

    def score(activity_file: str):
        return run("score", "--params", str(params), "--input", str(tmp_path / "leads.csv"), "--output",
                   str(tmp_path / "scores.csv"), "--activities", str(tmp_path / activity_file), "--as-of", "2026-01-01")

    labelled = score("labels.csv")
    assert labelled.exit_code == 0
    output = labelled.output.replace("\n", "")
    assert (f"none of the {len(activities):,} activity rows is of a type the model reads (page_view, pricing_view, "
            "form_fill, demo_request") in output
    assert "every lead was scored as having no activity; the file's types: 'Other' " in output
    assert "'Web Visit' " in output and "data.value_maps.activity" in output
    assert "does not read" not in output  # the line for a file of some such is not printed too
    as_exported = score("activities.csv").output.replace("\n", "")
    assert "is of a type the model reads" not in as_exported and "does not read" not in as_exported


def test_score_warns_when_some_activity_rows_are_of_types_the_model_does_not_read(trained, sample_params, sample_dir,
                                                                                  tmp_path):
    """A new CRM activity type (chat_started) or a label no data.value_maps entry translates ('Requested Demo'), beside
    rows of types the model reads, was not counted without a word, where /score names such types per lead."""

    from serving.local_server import params_file

    params = params_file(sample_params, tmp_path / "params.yaml")
    leads = pd.read_csv(sample_dir / "leads.csv", dtype=str).head(40)
    activities = pd.read_csv(sample_dir / "activities.csv", dtype=str)
    activities = activities[activities["lead_id"].isin(leads["lead_id"])].reset_index(drop=True)
    leads.to_csv(tmp_path / "leads.csv", index=False)
    activities.loc[[0, 2, 4], "activity"] = "chat_started"
    activities.loc[[6], "activity"] = "Requested Demo"
    activities.to_csv(tmp_path / "activities.csv", index=False)

    scored = run("score", "--params", str(params), "--input", str(tmp_path / "leads.csv"), "--output",
                 str(tmp_path / "scores.csv"), "--activities", str(tmp_path / "activities.csv"),
                 "--as-of", "2026-01-01")

    assert scored.exit_code == 0
    output = scored.output.replace("\n", "")
    assert (f"4 of the {len(activities):,} activity rows are of a type the model does not read ('chat_started' 3, "
            "'Requested Demo' 1): not counted in any score") in output
    assert "data.value_maps.activity" in output and "features.activity_types lists it" in output
    assert "is of a type the model reads" not in output  # that line is for a file of none such


def test_score_warns_when_the_activity_file_holds_no_activity_row(trained, sample_params, sample_dir, tmp_path):
    """An activity export of its header only (a report filter that matched nothing), or whose every row was refused,
    scored every lead as never engaged, saying nothing, where training warns of the same file."""

    from serving.local_server import params_file

    params = params_file(sample_params, tmp_path / "params.yaml")
    leads = pd.read_csv(sample_dir / "leads.csv", dtype=str).head(40)
    activities = pd.read_csv(sample_dir / "activities.csv", dtype=str)
    activities = activities[activities["lead_id"].isin(leads["lead_id"])]
    leads.to_csv(tmp_path / "leads.csv", index=False)
    activities.head(0).to_csv(tmp_path / "header_only.csv", index=False)
    activities.head(3).assign(occurred_at="yesterday").to_csv(tmp_path / "all_refused.csv", index=False)

    def score(activity_file: str):
        return run("score", "--params", str(params), "--input", str(tmp_path / "leads.csv"), "--output",
                   str(tmp_path / "scores.csv"), "--activities", str(tmp_path / activity_file), "--as-of", "2026-01-01")

    header_only, all_refused = score("header_only.csv"), score("all_refused.csv")
    assert header_only.exit_code == all_refused.exit_code == 0
    assert (f"{tmp_path / 'header_only.csv'} has no valid activity row (its header only): every lead was scored as having "
            "no activity, though the model reads page_view") in header_only.output.replace("\n", "")
    assert (f"{tmp_path / 'all_refused.csv'} has no valid activity row (each of its 3 rows failed validation: "
            f"{tmp_path / 'scores.activity_rejects.csv'} says why): every lead was scored as having no activity") in \
        all_refused.output.replace("\n", "")
    activities.to_csv(tmp_path / "activities.csv", index=False)
    assert "has no valid activity row" not in score("activities.csv").output.replace("\n", "")


def test_score_says_how_many_activities_are_dated_after_the_scoring_time_or_long_before_their_lead(
        trained, sample_params, sample_dir, tmp_path):
    """A walk-through found a 2019 demo request moving a 2024 lead's score, and activities after --as-of left out,
    without a word, where /score warns of both per lead: score now says how many of how many leads, what was done,
    and what to check, as of --as-of or of now."""
    from serving.local_server import params_file

    params = params_file(sample_params, tmp_path / "params.yaml")
    leads = pd.read_csv(sample_dir / "leads.csv", dtype=str).head(40)
    activities = pd.read_csv(sample_dir / "activities.csv", dtype=str)
    activities = activities[activities["lead_id"].isin(leads["lead_id"])].reset_index(drop=True)
    leads.to_csv(tmp_path / "leads.csv", index=False)
    activities.to_csv(tmp_path / "activities.csv", index=False)
    first_of = activities.drop_duplicates("lead_id").index
    activities.loc[first_of[:2], ["occurred_at", "activity"]] = ["2019-05-02 10:00:00", "demo_request"]
    activities.to_csv(tmp_path / "early.csv", index=False)
    after = pd.to_datetime(activities["occurred_at"]) > pd.Timestamp("2024-03-01")
    soon = pd.Timestamp.now(tz="UTC").tz_localize(None) + pd.Timedelta(hours=3)  # a CRM's local time, as UTC
    activities.loc[first_of[5], "occurred_at"] = f"{soon:%Y-%m-%d %H:%M:%S}"
    activities.to_csv(tmp_path / "ahead.csv", index=False)

    def score(activity_file: str, *as_of: str) -> str:
        result = run("score", "--params", str(params), "--input", str(tmp_path / "leads.csv"), "--output",
                     str(tmp_path / "scores.csv"), "--activities", str(tmp_path / activity_file), *as_of)
        assert result.exit_code == 0, result.output
        return result.output.replace("\n", "")

    in_march, in_2026 = score("early.csv", "--as-of", "2024-03-01"), score("early.csv", "--as-of", "2026-01-01")
    assert (f"{after.sum():,} activities of {activities['lead_id'][after].nunique()} leads are dated after --as-of "
            "(2024-03-01 00:00:00 UTC), the time the leads were scored as of: left out, as a score counts only what "
            "happened by then; if they happened by then, check --as-of or the activity dates") in in_march
    expected = ("2 activities of 2 leads are dated more than a day before their lead was created: counted, as training "
                "counts such activities (web visits a CRM ties to a lead once a form names it); if that is not what "
                "they are, check the activity dates or the leads' 'created_at'")
    assert expected in in_march and expected in in_2026
    assert "dated after" not in in_2026

    ahead = score("ahead.csv")
    assert ("1 activity of 1 lead is dated after now, the time the leads were scored as of: left out, as a score "
            "counts only what happened by then; if they happened by then, check the activity dates or their time "
            "zone") in ahead
    assert "dated" not in score("activities.csv", "--as-of", "2026-01-01")


def test_score_advises_what_changes_how_the_model_reads_a_file_not_a_setting_it_ignores(
        trained, sample_params, sample_dir, tmp_path):
    """A lead file writing dates day first (06/02/2025), or employees as a band, was refused row by row saying "set
    data.day_first": set in params.yaml, it changed nothing, as score reads with the model's settings from training.
    The advice is what does: dates written year first, or a retrain with the setting."""
    from serving.local_server import params_file

    assert sample_params.data.day_first is None  # the model was trained with it unset
    params = params_file(sample_params, tmp_path / "params.yaml", {"data.day_first": True})  # the user's fix
    leads = pd.read_csv(sample_dir / "leads.csv", dtype=str).head(3)
    leads.loc[0, "created_at"] = "06/02/2025"
    leads.loc[1, "employees"] = "11-50"
    leads.to_csv(tmp_path / "leads.csv", index=False)

    result = run("score", "--params", str(params), "--input", str(tmp_path / "leads.csv"), "--output",
                 str(tmp_path / "scores.csv"), "--as-of", "2026-01-01")

    assert result.exit_code == 0 and "scored 1 of 3 rows" in result.output
    problems = pd.read_csv(tmp_path / "scores.rejects.csv").set_index("row")["problems"]
    assert problems[1].endswith("date '06/02/2025' reads day first or month first: write dates year first, 2025-06-02, "
                                "or retrain with data.day_first set (true: 06/02/2025 is 6 February; false: it is June "
                                "2): the model reads dates by the setting it was trained with, unset, whatever "
                                "params.yaml says now")
    assert problems[2].endswith("not a number: '11-50' (a band of numbers: write one number, or retrain with "
                                "data.value_maps.employees translating each label to one, e.g. '11-50': '30' (the "
                                "model reads with the value maps it was trained with))")


def test_score_refuses_numbers_and_no_date_sentinels_as_dates_by_row(trained, sample_params, sample_dir, tmp_path):
    """A CRM's 0001-01-01 / 9999-12-31 "no date" and epoch seconds go to the rejects files, not 1970 or a crash."""

    from serving.local_server import params_file

    params = params_file(sample_params, tmp_path / "params.yaml")
    leads = pd.read_csv(sample_dir / "leads.csv", dtype=str).head(5)
    leads.loc[1, "created_at"] = "0001-01-01T00:00:00Z"
    activities = pd.read_csv(sample_dir / "activities.csv", dtype=str)
    activities = activities[activities["lead_id"].isin(leads["lead_id"])].head(4).reset_index(drop=True)
    activities.loc[1, "occurred_at"] = "1764000000"
    activities.loc[2, "occurred_at"] = "9999-12-31"
    leads.to_csv(tmp_path / "leads.csv", index=False)
    activities.to_csv(tmp_path / "activities.csv", index=False)

    result = run("score", "--params", str(params), "--input", str(tmp_path / "leads.csv"), "--output",
                 str(tmp_path / "scores.csv"), "--activities", str(tmp_path / "activities.csv"),
                 "--as-of", "2026-01-01")

    assert result.exit_code == 0, result.output
    assert "scored 4 of 5 rows" in result.output and "2 activity rows failed validation" in result.output
    rejects = pd.read_csv(tmp_path / "scores.rejects.csv")
    assert rejects["row"].tolist() == [2]
    assert ("column 'created_at': date out of range '0001-01-01T00:00:00Z' (expected 1970-01-01 to 2199-12-31)"
            in rejects["problems"][0])
    activity_rejects = pd.read_csv(tmp_path / "scores.activity_rejects.csv")
    assert activity_rejects["row"].tolist() == [2, 3]
    assert ("a date is text such as 2026-01-31 or 2026-01-31T09:30:00Z, not the number '1764000000'"
            in activity_rejects["problems"][0])
    assert "date out of range '9999-12-31'" in activity_rejects["problems"][1]


def test_score_reads_dates_java_writes_with_their_zone_id_in_brackets_as_the_instants_they_name(
        trained, sample_params, sample_dir, tmp_path):
    """Java's ZonedDateTime.toString() ("...Z[UTC]", "...+01:00[Europe/Paris]"), which Java/Kotlin CRM connectors
    write, was refused by row as an unparsable date, and as --as-of (read apart); leads, activities and the scoring
    time dated so score as the same times in UTC."""
    from serving.local_server import params_file

    params = params_file(sample_params, tmp_path / "params.yaml")
    leads = pd.read_csv(sample_dir / "leads.csv", dtype=str).head(5)
    activities = pd.read_csv(sample_dir / "activities.csv", dtype=str)
    activities = activities[activities["lead_id"].isin(leads["lead_id"])].reset_index(drop=True)

    def scores(name: str, leads: pd.DataFrame, activities: pd.DataFrame, as_of: str) -> pd.DataFrame:
        leads.to_csv(tmp_path / f"{name}_leads.csv", index=False)
        activities.to_csv(tmp_path / f"{name}_activities.csv", index=False)
        result = run("score", "--params", str(params), "--input", str(tmp_path / f"{name}_leads.csv"), "--output",
                     str(tmp_path / f"{name}_scores.csv"), "--activities", str(tmp_path / f"{name}_activities.csv"),
                     "--as-of", as_of)
        assert result.exit_code == 0 and "scored 5 of 5 rows" in result.output, result.output
        assert "failed validation" not in result.output
        return pd.read_csv(tmp_path / f"{name}_scores.csv")

    created, occurred = pd.to_datetime(leads["created_at"]), pd.to_datetime(activities["occurred_at"])
    java = scores("java", leads.assign(created_at=created.dt.strftime("%Y-%m-%dT%H:%M:%SZ[UTC]")),
                  activities.assign(occurred_at=(occurred + pd.Timedelta(hours=1)).dt.strftime(
                      "%Y-%m-%dT%H:%M:%S+01:00[Europe/Paris]")), "2026-01-01T00:00Z[UTC]")  # --as-of read alike
    pd.testing.assert_frame_equal(java, scores("plain", leads, activities, "2026-01-01"))


def test_score_reads_a_semicolon_files_decimal_commas_and_refuses_its_ambiguous_numbers_by_row(
        trained, sample_params, sample_dir, tmp_path):
    """Excel where the decimal mark is a comma writes ';' between fields and 2,5 or 1.234,5: each row was refused as
    'not a number'. They score as the same leads written with decimal points; 1.200 and 1,200 (1200 or 1.2?) refuse
    their row, where pandas read 1.200 as 1.2 employees without a word. The file written with commas is unchanged."""
    from serving.local_server import params_file

    params = params_file(sample_params, tmp_path / "params.yaml")
    leads = pd.read_csv(sample_dir / "leads.csv", dtype=str).head(6)
    points = leads.copy()
    leads.loc[:4, "employees"] = ["1.234,5", "2,5", "1.234.567", "1.200", "1,200"]
    points.loc[:4, "employees"] = ["1234.5", "2.5", "1234567", "1.200", "1200"]
    leads.to_csv(tmp_path / "leads.csv", index=False, sep=";")
    points.to_csv(tmp_path / "points.csv", index=False)

    def score(name: str):
        return run("score", "--params", str(params), "--input", str(tmp_path / f"{name}.csv"), "--output",
                   str(tmp_path / f"{name}.scores.csv"), "--as-of", "2026-01-01")

    result = score("leads")
    assert result.exit_code == 0, result.output
    assert "scored 4 of 6 rows" in result.output
    rejects = pd.read_csv(tmp_path / "leads.scores.rejects.csv")
    assert rejects["row"].tolist() == [4, 5]
    for problem, value in zip(rejects["problems"], ["1.200", "1,200"]):
        assert (f"column 'employees': ambiguous number '{value}': in a file separated by ';' (as Excel writes where "
                "the decimal mark is a comma) it may be 1200 or 1.2; write it with no thousands separator, or retrain "
                "with data.decimal_mark set") in problem  # score reads numbers by the model's setting, not params.yaml
    commas = score("points")
    assert commas.exit_code == 0 and "scored 6 of 6 rows" in commas.output
    semicolon_scores = pd.read_csv(tmp_path / "leads.scores.csv")
    comma_scores = pd.read_csv(tmp_path / "points.scores.csv").drop([3, 4]).reset_index(drop=True)
    pd.testing.assert_frame_equal(semicolon_scores, comma_scores)


def test_score_fails_when_no_row_could_be_scored_but_not_for_a_file_without_leads(trained, sample_params, sample_dir, tmp_path):
    """A nightly job must see a run that scored nothing (here --as-of before every lead) as failed; a file
    with only its header is an empty batch, and has no lead whose activities could be missing."""
    from serving.local_server import params_file

    params = params_file(sample_params, tmp_path / "params.yaml")
    leads = pd.read_csv(sample_dir / "leads.csv", dtype=str).head(5)
    leads.to_csv(tmp_path / "leads.csv", index=False)
    leads.head(0).to_csv(tmp_path / "no_leads.csv", index=False)

    def score(source: str, as_of: str):
        return run("score", "--params", str(params), "--input", str(tmp_path / source), "--output",
                   str(tmp_path / "scores.csv"), "--activities", str(sample_dir / "activities.csv"), "--as-of", as_of)

    (tmp_path / "scores.csv").write_text("yesterday's scores\n")
    nothing = score("leads.csv", "1990-01-01")
    assert nothing.exit_code == 1
    assert f"no lead of {tmp_path / 'leads.csv'} could be scored: every row failed validation" in \
        nothing.output.replace("\n", "")
    assert pd.read_csv(tmp_path / "scores.rejects.csv")["row"].tolist() == [1, 2, 3, 4, 5]
    assert (tmp_path / "scores.csv").read_text() == "yesterday's scores\n"  # a failed run leaves it as it was
    empty = score("no_leads.csv", "2026-01-01")
    assert empty.exit_code == 0 and "scored 0 of 0 rows" in empty.output
    assert "activity rows belongs to a lead" not in empty.output
    written = pd.read_csv(tmp_path / "scores.csv")  # the header alone, as README says
    assert written.empty and {"score", "tier"} <= set(written.columns)


def test_score_with_the_models_files_gone_says_where_they_were_and_what_to_do(trained, sample_params, sample_dir,
                                                                              tmp_path, monkeypatch):
    """The project moved or copied with its mlflow.db but not its mlruns/ folder (MLflow keeps absolute artifact
    paths), or that folder deleted: the store still lists the version. Told as the model's files missing, in one line
    naming the model, version, alias and where MLflow keeps them, not as "the tracking store failed"."""
    from pipelines.tracking import registered_version
    from serving.local_server import params_file

    params = params_file(sample_params, tmp_path / "params.yaml")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", moved_tracking_store(sample_params, tmp_path))
    version = registered_version(sample_params).version
    pd.read_csv(sample_dir / "leads.csv", dtype=str).head(5).to_csv(tmp_path / "leads.csv", index=False)

    def score():
        return run("score", "--params", str(params), "--input", str(tmp_path / "leads.csv"),
                   "--output", str(tmp_path / "scores.csv"), "--as-of", "2026-01-01")

    assert score().exit_code == 0  # the copy loads while its files are there
    shutil.rmtree(tmp_path / "tracking" / "mlruns")
    missing = score()
    assert missing.exit_code == 1
    assert re.fullmatch(
        re.escape(f"the files of model 'leadscore' version {version} (alias 'champion') are not there: MLflow keeps "
                  f"them in {tmp_path / 'tracking' / 'mlruns'}") + r"/\S+, which does not exist\. .*: put the mlruns "
        r"folder back where it was \(beside the tracking store it was trained with\), or train a new model with "
        r"`leadscore train`\n", missing.output)


@pytest.mark.parametrize(("as_of", "problem"), [
    ("", "unparsable date ''"), ("yesterday", "unparsable date 'yesterday'"), ("2026", "not the number '2026'"),
    ("01/02/2026", "date '01/02/2026' reads day first or month first"),
    ("2.1.2026", "date '2.1.2026' reads day first or month first"),
    ("2026-01-01T00:00Z[Mars/Base]", "unknown time zone 'Mars/Base' in brackets")])
def test_an_as_of_that_is_no_date_is_refused_as_a_lead_date_that_is_none_is(as_of, problem):
    """01/02/2026 is 1 February or 2 January depending on who wrote it: refused, not guessed."""
    result = run("features", "--as-of", as_of)
    assert result.exit_code == 2 and "--as-of" in result.output
    assert problem in re.sub(r"[│\s]+", " ", result.output)  # the error panel wraps its lines


@pytest.mark.parametrize("key", ["leads", "outcomes"])
def test_score_never_writes_over_the_crm_export(trained, sample_params, sample_dir, tmp_path, key):
    """Scores written over data.outcomes (or leads, activities) would replace the history training learns from."""
    from serving.local_server import params_file

    export = {name: tmp_path / f"{name}.csv" for name in ("leads", "activities", "outcomes")}
    for name, path in export.items():  # a copy: a failing run must not break the session's sample CRM
        path.write_bytes((sample_dir / f"{name}.csv").read_bytes())
    params = params_file(sample_params, tmp_path / "params.yaml",
                         {f"data.{name}": str(path) for name, path in export.items()})
    (tmp_path / "open.csv").write_text("\n".join(export["leads"].read_text().splitlines()[:6]) + "\n")
    before = export[key].read_bytes()

    result = run("score", "--params", str(params), "--input", str(tmp_path / "open.csv"),
                 "--output", str(export[key]), "--as-of", "2026-01-01")

    assert result.exit_code == 1
    assert f"is the CRM export's data.{key} file: writing it would destroy that data" in result.output
    assert export[key].read_bytes() == before


@pytest.mark.parametrize("as_of", ["0001-01-01T00:00:00", "2300-01-01T00:00:00Z", "9999-12-31T23:59:59"])
def test_an_as_of_outside_the_date_range_is_refused_by_name(as_of):
    result = run("features", "--as-of", as_of)
    assert result.exit_code == 2
    assert "--as-of" in result.output and "out of range" in result.output  # the panel may wrap between them
    assert "1970-01-01 to 2199-12-31" in result.output


@pytest.mark.parametrize("command", ["features", "score"])
def test_an_as_of_in_the_future_is_refused_as_the_services_is(command, tmp_path):
    """A CRM's "no date" 2199-12-31 as --as-of scored every lead as if years had passed (past its horizon, long
    silent) without a word; the service refuses such an as_of (date_in_future)."""
    later = (pd.Timestamp.now(tz="UTC") + pd.Timedelta(days=3)).strftime("%Y-%m-%d")
    files = ["--input", str(tmp_path / "leads.csv"), "--output", str(tmp_path / "scores.csv")]
    args = files if command == "score" else []
    for as_of in ("2199-12-31", later):
        result = run(command, *args, "--as-of", as_of)
        assert result.exit_code == 2, result.output
        assert "--as-of" in result.output and f"'{as_of}' is in the future" in result.output
    assert not (tmp_path / "scores.csv").exists()


def test_python_dash_m_runs_the_commands(tmp_path):
    """`python -m pipelines.cli` (no installed entry point) must run the command, not exit 0 doing nothing."""
    out = tmp_path / "crm"
    result = subprocess.run([sys.executable, "-m", "pipelines.cli", "sample-data", "--leads", "50", "--out", str(out)],
                            capture_output=True, text=True, cwd=PROJECT_ROOT, timeout=120)
    assert result.returncode == 0, result.stderr
    assert re.search(r"leads\s+50 rows", result.stdout) and (out / "leads.csv").is_file()


def test_features_on_the_x_education_export(x_education_csv):
    result = run("features", "--params", str(PROJECT_ROOT / "params.x_education.yaml"), "--leads", str(x_education_csv))
    assert result.exit_code == 0, result.output
    assert "9,240 rows read" in result.output
    assert "undated export" in result.output
    assert re.search(r"excluded:reason:invalid number: \d+", result.output)
    for leak in ("tags", "lead_quality", "last_activity", "asymmetrique"):
        assert leak not in result.output.split("== features")[1].lower()


@pytest.mark.parametrize("command", ["features", "train", "evaluate", "audit", "retrain"])
def test_as_of_on_the_undated_x_education_export_is_refused_not_ignored(x_education_csv, command):
    """Without dates there is no 'as of': running anyway would let the user believe the run was as of that date."""
    result = runner.invoke(app, [command, "--params", str(PROJECT_ROOT / "params.x_education.yaml"),
                                 "--leads", str(x_education_csv), "--as-of", "2025-01-01"])
    text = re.sub(r"[│\s]+", " ", result.output)  # the error panel wraps its lines
    assert result.exit_code == 2
    assert "the export is undated (data.dated is false): there is no date to read it as of; leave --as-of out" in text


def test_an_invalid_params_file_names_the_key_and_allowed_values(tmp_path):
    params = tmp_path / "params.yaml"
    text = re.sub(r"(?m)^  calibration: \w+", "  calibration: platt", (PROJECT_ROOT / "params.yaml").read_text())
    assert "calibration: platt" in text
    params.write_text(text)
    result = run("features", "--params", str(params))
    assert result.exit_code == 2
    assert "model.calibration" in result.output and "isotonic" in result.output


def test_a_snapshot_age_past_the_label_horizon_is_refused(tmp_path):
    """A lead open at the horizon is labelled negative then; seeing it later would see it after its label."""
    with pytest.raises(ParamsError, match=r"features.snapshot_days: age 150 is not before label.horizon_days \(120\)"):
        load_params(PROJECT_ROOT / "params.yaml", overrides={"features.snapshot_days": [3, 150]})


@pytest.fixture()
def feedback_params(tmp_path):
    """The project's params with a real store in tmp_path holding two decisions."""
    from serving.store import Store

    store_url = f"sqlite:///{tmp_path / 'store.db'}"
    for event_id, lead, status, reason in [("e1", "L1", "rejected", "no_budget"), ("e2", "L2", "converted", None)]:
        Store(store_url).add_feedback({"event_id": event_id, "lead_id": lead, "status": status, "reason": reason,
                                       "decided_at": "2025-03-01T10:00:00Z"})
    params = tmp_path / "params.yaml"
    params.write_text((PROJECT_ROOT / "params.yaml").read_text().replace("sqlite:///leadscore_store.db", store_url))
    return params


def test_export_outcomes_from_a_store_the_service_never_ran_with_is_refused_naming_it(feedback_params, tmp_path):
    """A wrong serving.store_url would write an empty outcomes file, which data.outcomes may then read as "no
    decision at all"."""
    wrong = tmp_path / "params_wrong.yaml"
    wrong.write_text(feedback_params.read_text().replace("store.db", "stor.db"))
    result = runner.invoke(app, ["export-outcomes", "--params", str(wrong), "--output", str(tmp_path / "o.csv")])
    assert result.exit_code == 1 and isinstance(result.exception, SystemExit)
    assert f"the store {tmp_path / 'stor.db'} has no feedback table" in result.output.replace("\n", "")
    assert not (tmp_path / "o.csv").exists() and not (tmp_path / "stor.db").exists()


def test_export_outcomes_writes_parquet_for_a_parquet_name_and_ingest_reads_it(feedback_params, tmp_path):
    from pipelines.ingest import prepare_table, read_source

    params = load_params(feedback_params)
    out = tmp_path / "feedback" / "outcomes.parquet"
    result = run("export-outcomes", "--params", str(feedback_params), "--output", str(out))
    assert result.exit_code == 0, result.output
    assert out.read_bytes()[:4] == b"PAR1"
    outcomes, problems = prepare_table(read_source(str(out), params.data, tmp_path)[0], "outcomes", params.data)
    assert not problems and outcomes.set_index("lead_id")["status"].to_dict() == {"L1": "rejected", "L2": "converted"}


def test_export_outcomes_replaces_an_existing_file_only_with_overwrite(feedback_params, tmp_path):
    out = tmp_path / "open_leads.csv"  # e.g. sample-data's lead file, or last quarter's export
    out.write_text("lead_id,created_at\nL9,2025-01-01\n")

    refused = runner.invoke(app, ["export-outcomes", "--params", str(feedback_params), "--output", str(out)])
    assert refused.exit_code == 1 and isinstance(refused.exception, SystemExit)
    assert f"--output: {out} already exists; pass --overwrite to replace it" in refused.output.replace("\n", "")
    assert out.read_text() == "lead_id,created_at\nL9,2025-01-01\n"

    replaced = run("export-outcomes", "--params", str(feedback_params), "--output", str(out), "--overwrite")
    assert replaced.exit_code == 0, replaced.output
    assert pd.read_csv(out)["lead_id"].tolist() == ["L1", "L2"]


@pytest.mark.parametrize(("output", "message"), [
    ("outcomes.xlsx", "{out} is neither .csv (optionally compressed, e.g. .csv.gz) nor .parquet"),
    ("folder", "{out} is a folder; name the file to write in it"),
    ("a_file/outcomes.csv", "cannot write {out}: a folder on its path is a file"),
    ("/sys/outcomes.csv", "cannot write {out}: "),
])
def test_export_outcomes_to_an_output_it_cannot_write_is_a_one_line_error(feedback_params, tmp_path, output, message):
    (tmp_path / "folder").mkdir()
    (tmp_path / "a_file").write_text("not a folder")
    out = tmp_path / output
    result = runner.invoke(app, ["export-outcomes", "--params", str(feedback_params), "--output", str(out)])
    assert result.exit_code == 1 and isinstance(result.exception, SystemExit)  # no traceback
    assert f"--output: {message.format(out=out)}" in result.output.replace("\n", "")
    assert not (tmp_path / "outcomes.xlsx").exists() and (tmp_path / "a_file").read_text() == "not a folder"


@pytest.mark.parametrize(("data", "message"), [
    ("data:\n", r"data: expected a section of settings \(key: value lines\), got nothing"),
    ("data: leads.csv\n", r"data: expected a section of settings \(key: value lines\), got 'leads.csv'"),
])
def test_a_data_setting_that_is_no_section_is_refused_by_key_even_with_leads(tmp_path, data, message):
    params = tmp_path / "params.yaml"
    params.write_text(data)
    result = runner.invoke(app, ["features", "--params", str(params), "--leads", "x.csv"])
    assert result.exit_code == 2 and isinstance(result.exception, SystemExit)
    assert re.search(f"{re.escape(str(params))}: {message}", result.output.replace("\n", ""))


def test_a_params_file_that_is_not_utf8_or_not_a_file_is_a_params_error(tmp_path):
    params = tmp_path / "params.yaml"
    params.write_bytes("# Param\u00e8tres\ndata:\n  leads: x.csv\n".encode("latin-1"))
    with pytest.raises(ParamsError, match=rf"{re.escape(str(params))}: not UTF-8 text \(byte 7 cannot be read\); save it as UTF-8"):
        load_params(params)
    with pytest.raises(ParamsError, match=rf"{re.escape(str(tmp_path))}: cannot read the params file"):
        load_params(tmp_path)


@pytest.mark.parametrize(("method", "tiers", "message"), [
    ("capacity", [{"name": "A", "top_share": 0.6}, {"name": "B", "top_share": 0.1}, {"name": "C"}],
     r"tiers.tiers\[1\].top_share: 0.1 is not above the 0.6 of tier 'A' before it; .* tier 'B' gets no lead"),
    ("capacity", [{"name": "A", "top_share": 0.3}, {"name": "B", "top_share": 0.3}, {"name": "C"}],
     r"tiers.tiers\[1\].top_share: 0.3 is not above"),
    ("capacity", [{"name": "A", "top_share": 1.0}, {"name": "B"}], r"tiers.tiers\[0\].top_share: Input should be less than 1"),
    ("precision", [{"name": "A", "min_probability": 0.2}, {"name": "B", "min_probability": 0.4}, {"name": "C"}],
     r"tiers.tiers\[1\].min_probability: 0.4 is not below the 0.2 of tier 'A'"),
    ("capacity", [], r"tiers.tiers: list at least one tier"),  # training ended on an IndexError after all its work
])
def test_tiers_that_would_leave_a_tier_empty_are_refused_by_key(method, tiers, message):
    with pytest.raises(ParamsError, match=message):
        load_params(PROJECT_ROOT / "params.yaml", overrides={"tiers.method": method, "tiers.tiers": tiers})


@pytest.mark.parametrize(("overrides", "message"), [
    ({"label.converted_statuses": ["won"]}, r"label.converted_statuses: 'won' not in data.statuses \['converted', "),
    ({"data.statuses": ["Won", "Lost", "open"], "label.converted_statuses": ["won"]},
     r"label.rejected_statuses: 'rejected' not in data.statuses \['Won', 'Lost', 'open'\]"),
    ({"label.converted_statuses": []}, r"label.converted_statuses: list at least one status"),
])
def test_a_label_status_the_export_cannot_hold_is_refused_by_key(overrides, message):
    """Ingest refuses a status data.statuses lacks, so such a rule never matches: training went on to say only
    that no lead converted (or left every rejection out)."""
    with pytest.raises(ParamsError, match=message):
        load_params(PROJECT_ROOT / "params.yaml", overrides=overrides)
    # Statuses in another letter case are the same statuses, as labelling compares them.
    load_params(PROJECT_ROOT / "params.yaml", overrides={"data.statuses": ["Won", "Lost", "open"],
                                                         "label.converted_statuses": ["won"],
                                                         "label.rejected_statuses": ["LOST "]})


@pytest.mark.parametrize(("overrides", "message"), [
    # the ICP size match could never be true: the criterion counted against every lead without a word
    ({"features.icp": {"min_employees": 5000, "max_employees": 50}},
     r"features.icp.min_employees: 5000 is above max_employees \(50\), so no lead's size matches the profile"),
    # true/false where a number goes was read as 1/0: seed 1, one boosting round, a 1-day activity window
    ({"model.seed": True}, r"model.seed: got true, not a number \(YAML reads yes/no and on/off as true/false too\)"),
    ({"model.max_rounds": True}, r"model.max_rounds: got true, not a number"),
    ({"serving.max_batch": False}, r"serving.max_batch: got false, not a number"),
    ({"features.windows": [7, True]}, r"features.windows: windows\[1\] is true, not a number"),
    ({"features.icp": {"min_employees": True}}, r"features.icp.min_employees: got true, not a number"),
    ({"monitor.min_drift_rows": True}, r"monitor.min_drift_rows: got true, not a number"),
    ({"model.learning_rate": True}, r"model.learning_rate: got true, not a number"),
    ({"model.tuning_trials": 2.7}, r"model.tuning_trials: Input should be a valid integer, got a number with a fractional"),
])
def test_settings_that_cannot_mean_what_they_say_are_refused_by_key(overrides, message):
    with pytest.raises(ParamsError, match=message):
        load_params(PROJECT_ROOT / "params.yaml", overrides=overrides)
    params = load_params(PROJECT_ROOT / "params.yaml", overrides={
        "features.icp": {"min_employees": 50, "max_employees": 50}, "model.seed": 0, "model.max_rounds": "300",
        "model.tuning_trials": 4.0, "features.windows": [7, "30"], "data.day_first": True})
    assert (params.model.seed, params.model.max_rounds, params.model.tuning_trials) == (0, 300, 4)
    assert params.features.windows == [7, 30] and params.data.day_first is True


def test_a_top_fraction_outside_0_to_1_is_refused_by_key_before_any_data_is_read(tmp_path):
    params = tmp_path / "params.yaml"
    text = (PROJECT_ROOT / "params.yaml").read_text().replace("top_fractions: [0.1, 0.2, 0.3]", "top_fractions: [0.1, 0.0]")
    params.write_text(text.replace("data/sample/", f"{tmp_path}/missing/"))
    result = runner.invoke(app, ["train", "--params", str(params)], env={"MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path}/m.db"})
    assert result.exit_code == 2
    assert "evaluate.top_fractions[1]: Input should be greater than 0" in result.output and "missing" not in result.output


@pytest.mark.parametrize("url", ["leadscore.example.com", "https://", "https://x.example.com/?a=1", "ftp://x.example.com"])
def test_a_public_url_that_is_no_web_address_is_refused_by_name(url):
    with pytest.raises(ParamsError, match=r"serving.public_url.*http\(s\) address"):
        load_params(PROJECT_ROOT / "params.yaml", overrides={"serving.public_url": url})


def test_a_public_url_loses_its_trailing_slash_so_card_links_have_one():
    params = load_params(PROJECT_ROOT / "params.yaml", overrides={"serving.public_url": " https://crm.example.com/ls/ "})
    assert params.serving.public_url == "https://crm.example.com/ls"


@pytest.mark.parametrize(("name", "content", "message"), [
    ("leads.csv", b"", "the file is empty"),
    ("leads.xlsx", b"PK\x03\x04", "unsupported file type"),
    ("leads.csv", "lead_id,created_at,company\nL1,2025-01-02,Caf\u00e9 M\u00fcller\n".encode("latin-1"),
     r"not UTF-8 text, line 2 holds byte e9 \(invalid continuation byte\); save the file as UTF-8"),
])
@pytest.mark.parametrize("command", ["features", "train"])
def test_an_unreadable_export_is_a_one_line_error_naming_the_file(tmp_path, monkeypatch, command, name, content, message):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")  # train opens it first
    leads = tmp_path / name
    leads.write_bytes(content)
    result = runner.invoke(app, [command, "--leads", str(leads)])
    assert result.exit_code == 1 and isinstance(result.exception, SystemExit)  # no traceback
    assert re.search(f"{re.escape(str(leads))}: {message}", result.output.replace("\n", ""))


def test_a_missing_export_is_a_clear_error(tmp_path):
    result = run("features", "--leads", str(tmp_path / "nope.csv"))
    assert result.exit_code == 1
    assert "nope.csv" in result.output


def test_a_bug_keeps_its_traceback_while_a_missing_model_is_one_line(tmp_path, monkeypatch):
    """A KeyError or IndexError is a LookupError, as "no such alias" is, but it means our code is wrong:
    a one-line message would hide where."""
    import pipelines.evaluate

    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    missing = runner.invoke(app, ["evaluate"])
    assert missing.exit_code == 1 and isinstance(missing.exception, SystemExit)
    assert "run `leadscore train` first" in missing.output

    def broken(*args, **kwargs):
        return {}["roc_auc"]

    monkeypatch.setattr(pipelines.evaluate, "evaluate_registered", broken)
    bug = runner.invoke(app, ["evaluate"])
    assert isinstance(bug.exception, KeyError) and bug.exc_info[2] is not None


@pytest.mark.parametrize("command", ["features", "train", "evaluate", "audit", "retrain", "backtest", "monitor"])
def test_every_command_that_reads_the_export_reads_the_one_given_with_leads(trained, sample_params, tmp_path, command):
    """`train --leads` on a file outside params must have audit, backtest and monitor for company."""
    from serving.local_server import params_file

    params = params_file(sample_params, tmp_path / "params.yaml")
    result = run(command, "--params", str(params), "--leads", str(tmp_path / "other_export.csv"))
    assert result.exit_code == 1
    assert "other_export.csv" in result.output.replace("\n", "")


@pytest.fixture(scope="module")
def small_export(tmp_path_factory) -> dict:
    """A 2,000-lead sample export as text tables, for tests that edit a copy and run the training commands."""

    out = tmp_path_factory.mktemp("small_crm")
    assert run("sample-data", "--leads", "2000", "--seed", "5", "--out", str(out)).exit_code == 0
    return {name: pd.read_csv(out / f"{name}.csv", dtype=str, keep_default_na=False)
            for name in ("leads", "activities", "outcomes")}


def training_params(tables: dict, folder, monkeypatch, **overrides):
    """`tables` written to `folder` and a params file reading them, with MLflow in `folder` (fast tuning)."""
    from conftest import FAST, params_for
    from serving.local_server import params_file

    for name, frame in tables.items():
        frame.to_csv(folder / f"{name}.csv", index=False)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{folder / 'mlflow.db'}")
    return params_file(params_for(folder, folder, **{**FAST, **overrides}), folder / "params.yaml")


def test_train_and_evaluate_name_each_tier_in_its_conversion_table(small_export, tmp_path, monkeypatch):
    """The printed table and the logged tiers.csv say which tier each row is, not only its figures.
    With no feedback store yet (a fresh demo) they read the export alone and create none."""
    import mlflow

    params = training_params(small_export, tmp_path, monkeypatch)
    result = run("train", "--params", str(params))
    evaluated = run("evaluate", "--params", str(params))
    assert not (tmp_path / "store.db").exists()
    for printed in (result, evaluated):
        assert printed.exit_code == 0, printed.output
        assert "feedback store: no sales decision received yet (the export's outcomes alone)" in printed.output
        table = printed.output.split("conversion per tier (test rows):\n")[1].split("\n\n")[0].splitlines()
        assert [line.split()[0] for line in table[2:]] == ["A", "B", "C", "D"]  # header, index name, one row per tier
        assert re.search(r"^(leadscore|challenger) +[\d,]+ +\d+ +0\.\d{4} ", printed.output, re.M)  # counts whole, then rates
    run_id = re.search(r"MLflow run (\w+)", result.output).group(1)
    logged = mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path="evaluation/tiers.csv",
                                                 dst_path=str(tmp_path / "artifacts"))
    assert pd.read_csv(logged)["tier"].tolist() == ["A", "B", "C", "D"]
    card = mlflow.artifacts.load_text(f"runs:/{run_id}/model_card.md")  # says so as train does
    assert "\n- feedback store: no sales decision received yet (the export's outcomes alone)" in card.split("## Label policy")[0]


def test_evaluate_names_the_versions_compared_and_how_to_serve_the_challenger(small_export, tmp_path, monkeypatch):
    params = training_params(small_export, tmp_path, monkeypatch)
    first = run("train", "--params", str(params))  # v1: challenger and champion
    assert first.exit_code == 0 and "next:" not in first.output
    second = run("train", "--params", str(params))  # v2: challenger
    assert second.exit_code == 0
    assert ('aliases challenger\nnext: leadscore evaluate compares it with the champion; '
            'leadscore promote --version 2 --reason "..." serves it\n') in second.output

    evaluated = run("evaluate", "--params", str(params))

    assert evaluated.exit_code == 0, evaluated.output
    assert "challenger: leadscore v2, champion: leadscore v1" in evaluated.output
    advice = re.search(r'to serve v2: leadscore (promote --version 2) --reason "..."', evaluated.output)
    assert advice, evaluated.output
    promoted = run(*advice.group(1).split(), "--reason", "beat v1", "--params", str(params))
    assert "champion: v2 (was v1)" in promoted.output
    assert "to serve" not in run("evaluate", "--params", str(params)).output  # the challenger now serves


def test_evaluate_warns_when_the_champion_was_fit_on_the_rows_it_is_compared_on(small_export, tmp_path, monkeypatch):
    """A champion trained as of a later date has seen the challenger's test leads: its figures flatter it."""
    import mlflow

    params = training_params(small_export, tmp_path, monkeypatch)
    assert run("train", "--params", str(params)).exit_code == 0  # v1, champion: trained on what matured by the end
    assert run("train", "--as-of", "2025-06-01", "--params", str(params)).exit_code == 0  # v2, challenger

    evaluated = run("evaluate", "--as-of", "2025-06-01", "--params", str(params))

    assert evaluated.exit_code == 0, evaluated.output
    note = re.search(r"note: the champion was fit on ([\d,]+) of the ([\d,]+) compared leads \(created before "
                     r"\d{4}-\d\d-\d\d\): its figures are optimistic, which favours it over the challenger",
                     evaluated.output.replace("\n", " "))
    assert note and int(note.group(1).replace(",", "")) > 0, evaluated.output
    run_id = re.search(r"MLflow run (\w+)", evaluated.output).group(1)
    assert mlflow.artifacts.load_dict(f"runs:/{run_id}/evaluation/notes.json")["notes"][0].startswith(
        f"the champion was fit on {note.group(1)} of the")


def test_an_activity_dated_after_the_export_does_not_move_its_now(small_export, tmp_path, monkeypatch):
    """A webinar booked for next year must not make every open lead look past the horizon (labelled negative)."""

    tables = {name: frame.copy() for name, frame in small_export.items()}
    tables["activities"].loc[0, "occurred_at"] = "2027-06-01 10:00:00"
    params = training_params(tables, tmp_path, monkeypatch)
    result = run("features", "--params", str(params))
    assert result.exit_code == 0, result.output
    now = max(pd.to_datetime(tables["leads"]["created_at"]).max(), pd.to_datetime(tables["outcomes"]["decided_at"]).max())
    assert f"== labels (as of {now})" in result.output
    assert re.search(r"censored:open_immature: \d+", result.output)  # the youngest open leads still wait


@pytest.mark.parametrize("command", ["features", "train"])
def test_an_activity_file_of_its_header_only_trains_saying_every_lead_is_never_active(small_export, tmp_path,
                                                                                    monkeypatch, command):
    """A CRM without activity tracking may export the header alone: trained on (lead fields only), not in silence."""
    tables = {**small_export, "activities": small_export["activities"].head(0)}
    params = training_params(tables, tmp_path, monkeypatch)
    result = run(command, "--params", str(params))
    assert result.exit_code == 0, result.output
    assert (f"WARNING data.activities ({tmp_path / 'activities.csv'}) has no activity row (its header only): every "
            "lead trains as never active, so the model learns from lead fields only") in result.output.replace("\n", "")
    assert "has no activity row" not in run("features", "--params", str(training_params(
        small_export, tmp_path, monkeypatch))).output


@pytest.mark.parametrize(("command", "every_lead"), [
    ("evaluate", "is scored as never active, so the figures judge the model on lead fields only"),
    ("audit", "is scored as never active, so the figures judge the model on lead fields only"),
    ("backtest", "trains as never active, so the model learns from lead fields only"),  # its quarters' models do
])
def test_judging_a_model_on_an_activity_file_of_its_header_only_says_every_lead_is_never_active(
        trained, sample_dir, tracking_dir, tmp_path, command, every_lead):
    """Metrics as if no lead were ever active looked merely bad: evaluate, audit and backtest warn as train does,
    and keep the warning in their MLflow run as train does (tracking.log_setting_warnings), the audit in its report
    too."""
    import json

    from mlflow.tracking import MlflowClient

    from conftest import FAST, params_for
    from pipelines.tracking import SETTING_WARNINGS
    from serving.local_server import params_file

    activities = tmp_path / "activities.csv"
    pd.read_csv(sample_dir / "activities.csv", nrows=0).to_csv(activities, index=False)
    p = params_for(sample_dir, tracking_dir, **{**FAST, "data.activities": str(activities)})
    out = tmp_path / "report"
    options = {"evaluate": [], "audit": ["--out", str(out)], "backtest": ["--out", str(out), "--quarters", "1"]}
    result = run(command, "--params", str(params_file(p, tmp_path / "params.yaml")), *options[command])
    assert result.exit_code == 0, result.output
    warning = f"data.activities ({activities}) has no activity row (its header only): every lead {every_lead}"
    assert f"WARNING {warning}" in result.output.replace("\n", "")
    run_id = re.search(r"MLflow run (\w+)", result.output).group(1)
    client = MlflowClient(p.tracking.uri)
    assert client.get_run(run_id).data.tags[SETTING_WARNINGS] == "1"
    assert open(client.download_artifacts(run_id, "data/setting_warnings.txt")).read() == f"{warning}\n"
    if command == "audit":
        assert json.loads((out / "audit.json").read_text())["warnings"] == [warning]
        assert f"WARNING {warning}" in (out / "audit.html").read_text().replace("&#x27;", "'")


def test_audit_warns_of_activity_types_the_audited_model_reads_whatever_todays_settings_say(
        trained, sample_dir, tracking_dir, tmp_path):
    """Today's params may list the CRM's own labels ('Page View') since the model was trained: the audit judges the
    model with its own settings, which read page_view, so every lead is scored as never active and it says so."""
    from conftest import FAST, params_for
    from serving.local_server import params_file

    activities = pd.read_csv(sample_dir / "activities.csv", dtype=str, keep_default_na=False)
    activities["activity"] = activities["activity"].str.replace("_", " ").str.title().replace(
        {"Webinar": "Attended Webinar"})
    activities.to_csv(tmp_path / "activities.csv", index=False)
    p = params_for(sample_dir, tracking_dir, **{**FAST, "data.activities": str(tmp_path / "activities.csv"),
                                                "features.activity_types": sorted(set(activities["activity"]))})
    result = run("audit", "--params", str(params_file(p, tmp_path / "params.yaml")), "--out", str(tmp_path / "report"))
    assert result.exit_code == 0, result.output
    assert (f"WARNING none of the {len(activities):,} activity rows of data.activities ({tmp_path / 'activities.csv'}) is "
            f"of a type the features read ({', '.join(trained.scorer.features.activity_types)}): every lead is scored "
            "as never active") in result.output.replace("\n", "")


def test_an_export_without_any_creation_date_is_one_error_suggesting_data_dated_false(small_export, tmp_path,
                                                                                      monkeypatch):
    """Every lead's created_at empty (a CRM without the field) printed a line per row and never named the setting."""
    tables = {**small_export, "leads": small_export["leads"].assign(created_at="")}
    params = training_params(tables, tmp_path, monkeypatch)
    result = runner.invoke(app, ["features", "--params", str(params)])
    assert result.exit_code == 1 and isinstance(result.exception, SystemExit)  # no traceback
    assert (f"{tmp_path / 'leads.csv'}, column 'created_at': created_at is empty on every one of the 2,000 lead rows: "
            "an export without creation dates is read with data.dated: false") in result.output.replace("\n", "")
    assert "row 1 " not in result.output and "data.on_error" not in result.output


def test_train_refuses_an_export_whose_leads_all_look_alike(small_export, tmp_path, monkeypatch):
    """Leads with only an id and a date and no activity log: a model of them would score every lead the same."""
    tables = {"leads": small_export["leads"][["lead_id", "created_at"]], "outcomes": small_export["outcomes"]}
    params = training_params(tables, tmp_path, monkeypatch, **{"data.activities": None})
    result = runner.invoke(app, ["train", "--params", str(params)])
    assert result.exit_code == 1 and isinstance(result.exception, SystemExit)  # no traceback
    assert "every feature has one value for all" in result.output and "the same score" in result.output
    assert "Registered" not in result.output and "aliases" not in result.output


def test_a_params_file_without_a_features_section_is_told_so_not_that_its_export_is_uniform(small_export, tmp_path,
                                                                                           monkeypatch):
    """A params file written from README's data settings alone (its own CRM's mapping) read no feature: `features`
    listed none without a word and `train` blamed the export's leads for all looking alike."""
    import yaml

    for name, frame in small_export.items():
        frame.to_csv(tmp_path / f"{name}.csv", index=False)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump({"data": {name: str(tmp_path / f"{name}.csv") for name in small_export},
                                      "serving": {"store_url": f"sqlite:///{tmp_path / 'store.db'}"}}))
    told = ("the features section reads no feature: features.categorical, numeric, derived and activity_types are "
            "all empty")
    inspected = run("features", "--params", str(params))
    assert inspected.exit_code == 0 and "== features (0)" in inspected.output
    assert told in " ".join(inspected.output.split())
    trained = run("train", "--params", str(params))
    assert trained.exit_code == 1 and isinstance(trained.exception, SystemExit)  # no traceback
    assert told in " ".join(trained.output.split()) and "every feature has one value" not in trained.output
    assert "Registered" not in trained.output


@pytest.mark.parametrize("command", ["features", "train"])
def test_training_warns_of_a_column_the_features_read_that_the_export_lacks(small_export, tmp_path, monkeypatch, command):
    """A header 'Industry ' (Excel kept a blank) or a column gone from the report: the feature is empty for every
    lead and only `features` showed it, as "filled 0.0%"; score warned, train did not."""
    leads = small_export["leads"].rename(columns={"industry": "Industry "}).drop(columns=["campaign"])
    params = training_params({**small_export, "leads": leads}, tmp_path, monkeypatch)
    result = run(command, "--params", str(params))
    assert result.exit_code == 0, result.output
    assert (f"WARNING data.leads ({tmp_path / 'leads.csv'}) has no column 'industry' (it has 'Industry ', which looks "
            "like the same name written differently), 'campaign', which the features read: every lead trains as not having it; "
            "check the export's columns or data.mapping.leads") in " ".join(result.output.split())


@pytest.mark.parametrize("command", ["features", "train", "backtest"])
def test_training_warns_of_rejection_reason_codes_the_label_policy_does_not_list(small_export, tmp_path, monkeypatch,
                                                                                 command):
    """Sales started rejecting with 'gone_cold', which label.reasons does not list: those leads fall to
    label.unknown_reason. Retrain repeats that rule line as a WARNING; train, features and the backtest's quarterly
    trainings must too (features and train not leaving it among the rule lines)."""
    tables = {name: frame.copy() for name, frame in small_export.items()}
    outcomes = tables["outcomes"]
    outcomes.loc[outcomes["reason"] == "no_budget", "reason"] = "gone_cold"
    options = ["--out", str(tmp_path / "backtest"), "--quarters", "1"] if command == "backtest" else []
    result = run(command, "--params", str(training_params(tables, tmp_path, monkeypatch)), *options)
    assert result.exit_code == 0, result.output
    lines = [line.strip() for line in result.output.splitlines() if "'gone_cold'" in line]
    warning = lines[-1]
    assert warning.startswith("WARNING label rule ") and "unknown_reason" in warning
    if command != "backtest":  # the backtest prints no rule lines
        rule = lines[0].removeprefix("label rule ")
        assert len(lines) == 2 and warning == f"WARNING label rule {rule}"


def test_train_says_why_it_has_no_reason_model_when_sales_used_one_reason_code(small_export, tmp_path, monkeypatch):
    """model.reason_model is on, but one code cannot be learnt: the scores lose their likely reason, said out loud."""
    tables = {name: frame.copy() for name, frame in small_export.items()}
    outcomes = tables["outcomes"]
    outcomes.loc[outcomes["status"] == "rejected", "reason"] = "no_budget"
    params = training_params(tables, tmp_path, monkeypatch, **{"model.reason_model": True})
    result = run("train", "--params", str(params))
    assert result.exit_code == 0, result.output
    assert re.search(r"no likely rejection reason model \(model.reason_model is on\): it needs two reason codes with "
                     r"at least 5 rejected leads each, and the training leads have no_budget \([\d,]+\); scores come "
                     r"without a likely rejection reason", result.output.replace("\n", " "))
    assert "top-1" not in result.output


def test_train_says_its_split_is_stratified_when_every_lead_was_created_on_one_day(small_export, tmp_path, monkeypatch):
    """A bulk import stamps every lead with its day: the console and MLflow must not claim an out-of-time test."""
    import mlflow

    tables = {name: frame.copy() for name, frame in small_export.items()}
    day = pd.to_datetime(tables["leads"]["created_at"]).min().normalize()  # every decision comes after it
    tables["leads"] = tables["leads"].sample(frac=1.0, random_state=0).assign(created_at=f"{day:%Y-%m-%d}")  # any order
    params = training_params(tables, tmp_path, monkeypatch)
    result = run("train", "--params", str(params))
    assert result.exit_code == 0, result.output
    kind = f"stratified (all leads created on {day:%Y-%m-%d}: dates cannot order train/validation/test)"
    assert re.search(rf"labelled leads \([\d,]+ conversions\); {re.escape(kind)} split", result.output)
    run_id = re.search(r"MLflow run (\w+)", result.output).group(1)
    tags = mlflow.get_run(run_id).data.tags
    assert (tags["split"], tags["split_because"]) == ("stratified", kind.removeprefix("stratified (")[:-1])
    card = mlflow.artifacts.load_text(f"runs:/{run_id}/model_card.md")
    assert f"Split: **{kind}**" in card
    assert f"Dated export split at random ({kind.removeprefix('stratified (')}: figures come from a random" in card


def test_retrain_on_leads_created_on_one_day_calls_its_window_and_the_champions_split_stratified(
        small_export, tmp_path, monkeypatch):
    """The comparison window is a random share then, and a champion trained so may have seen any window lead."""
    tables = {name: frame.copy() for name, frame in small_export.items()}
    day = pd.to_datetime(tables["leads"]["created_at"]).min().normalize()
    tables["leads"] = tables["leads"].sample(frac=1.0, random_state=0).assign(created_at=f"{day:%Y-%m-%d}")
    params = training_params(tables, tmp_path, monkeypatch)
    kind = f"stratified (all leads created on {day:%Y-%m-%d}: dates cannot order train/validation/test)"
    first = run("retrain", "--params", str(params))
    assert first.exit_code == 0, first.output
    assert f"(the challenger's {kind} test rows)" in first.output.replace("\n", " ")
    second = run("retrain", "--force", "--params", str(params))  # the same export: --force, or nothing is trained
    assert second.exit_code == 0, second.output
    assert (f"note: the champion was trained on a {kind} split: it may have been fit on some of the compared leads, "
            "so its figures can be optimistic") in second.output.replace("\n", " ")


def test_train_evaluate_and_retrain_label_the_export_with_the_feedback_store_alike(small_export, tmp_path, monkeypatch):
    """Sales won back a lead the export still has as rejected: the service's store says so, and evaluate's
    table, train's model and retrain's gate are figures over the same labels, each run saying what the store
    changed (a decision dated before its lead was created is named and left out, as retrain does)."""
    import mlflow

    from pipelines.dataset import assemble
    from pipelines.ingest import load_crm
    from serving.store import Store

    params = training_params(small_export, tmp_path, monkeypatch)
    as_of = "2025-10-01"
    leads = small_export["leads"].set_index("lead_id")
    outcomes = small_export["outcomes"].set_index("lead_id")
    decided = pd.to_datetime(outcomes["decided_at"].replace("", None))
    created = pd.to_datetime(leads["created_at"]).reindex(outcomes.index)
    rejected = outcomes[(outcomes["status"] == "rejected") & (outcomes["reason"] == "no_budget")
                        & (created < "2025-05-01") & (decided - created < pd.Timedelta(days=100))]
    won_back = rejected.index[0]  # matured by as_of, a negative in the export
    young = pd.to_datetime(leads["created_at"]).loc[lambda c: c > "2024-06-01"].index[0]
    store = Store.from_params(load_params(params))
    store.add_feedback({"event_id": "won-back", "lead_id": won_back, "status": "converted", "reason": None,
                        "decided_at": f"{decided[won_back] + pd.Timedelta(days=1):%Y-%m-%dT%H:%M:%S}Z"})
    store.add_feedback({"event_id": "typo", "lead_id": young, "status": "converted", "reason": None,
                        "decided_at": "2024-02-01T00:00:00Z"})

    trained = run("train", "--as-of", as_of, "--params", str(params))
    evaluated = run("evaluate", "--as-of", as_of, "--params", str(params))
    retrained = run("retrain", "--as-of", as_of, "--dry-run", "--params", str(params))

    for result in (trained, evaluated, retrained):
        assert result.exit_code == 0, result.output
    gate = re.search(r"^  ([\d,]+) closed leads, ([\d,]+) conversions; feedback store", retrained.output, re.M)
    trained_on = re.search(r"^trained on ([\d,]+) labelled leads \(([\d,]+) conversions\)", trained.output, re.M)
    evaluated_on = re.search(r"^([\d,]+) labelled leads \(([\d,]+) conversions\); feedback store", evaluated.output, re.M)
    assert trained_on.groups() == gate.groups(), trained.output
    assert evaluated_on and evaluated_on.groups() == gate.groups(), evaluated.output
    rows, conversions = (int(n.replace(",", "")) for n in gate.groups())
    p = load_params(params)
    assert conversions == assemble(p, as_of=pd.Timestamp(as_of), crm=load_crm(p)).y.sum() + 1  # the export alone: one fewer
    for result in (trained, evaluated, retrained):
        assert ("feedback store: 2 lead decisions, 1 replace the export's (decided later, at the same time, or undated "
                "there): 1 changes a lead's outcome or adds one the export lacks, 1 decided more than a day before their "
                f"lead was created (ignored, as the export's own would be: lead '{young}' decided 2024-02-01, created "
                ) in result.output
    for result in (trained, evaluated):  # what each run logged it was computed on
        run_id = re.search(r"MLflow run (\w+)", result.output).group(1)
        fingerprint = mlflow.artifacts.load_dict(f"runs:/{run_id}/data/fingerprint.json")
        assert (fingerprint["labelled_rows"], fingerprint["positives"]) == (rows, conversions)
        assert {k: fingerprint["feedback"][k] for k in ("events", "applied", "decided_before_created")} == {
            "events": 2, "applied": 1, "decided_before_created": 1}
    # The registered version's model card states the feedback its training data included, in the console's words.
    printed = re.search(r"feedback store: .*", trained.output).group(0)
    train_run = re.search(r"MLflow run (\w+)", trained.output).group(1)
    card = mlflow.artifacts.load_text(f"runs:/{train_run}/model_card.md")
    assert f"\n- {printed}\n" in card.split("## Label policy")[0]


@pytest.mark.parametrize("command", ["features", "train", "retrain", "export-outcomes"])
def test_a_feedback_store_that_cannot_be_reached_is_a_one_line_error(small_export, tmp_path, monkeypatch, command):
    """A deployment's store_url with a wrong host or path: every command that reads the store says so, no traceback."""
    folder = tmp_path / "a-folder"  # SQLite cannot open a folder as its file
    folder.mkdir()
    params = training_params(small_export, tmp_path, monkeypatch, **{"serving.store_url": f"sqlite:///{folder}"})
    extra = {"retrain": ["--as-of", "2025-10-01"], "export-outcomes": ["--output", str(tmp_path / "o.csv")]}
    result = runner.invoke(app, [command, "--params", str(params), *extra.get(command, [])])
    assert result.exit_code == 1 and isinstance(result.exception, SystemExit), result.output  # no traceback
    assert f"cannot connect to the store {folder}: unable to open database file" in result.output.replace("\n", "")


def test_a_decision_the_store_got_long_after_the_export_does_not_expire_the_exports_open_leads(small_export, tmp_path,
                                                                                               monkeypatch):
    """The store hears only what the CRM sends the service: one decision sent months after a stale export must not
    move its 'now', or every lead open in it would count as expired unconverted. The default as-of stays the
    export's; the line says the later decision was not used; an --as-of that late is refused as without a store."""
    from serving.store import Store

    params = training_params(small_export, tmp_path, monkeypatch)
    end = max(pd.Timestamp(small_export["leads"]["created_at"].max()),
              pd.Timestamp(small_export["outcomes"]["decided_at"].replace("", None).dropna().max()))
    without_store = run("features", "--params", str(params))
    late = end + pd.Timedelta(days=200)
    Store.from_params(load_params(params)).add_feedback({
        "event_id": "today", "lead_id": small_export["leads"]["lead_id"].iloc[0], "status": "converted",
        "reason": None, "decided_at": f"{late:%Y-%m-%dT%H:%M:%S}Z", "received_at": f"{late:%Y-%m-%dT%H:%M:%S}Z"})

    with_store = run("features", "--params", str(params))

    assert with_store.exit_code == 0, with_store.output
    assert f"== labels (as of {end})" in with_store.output
    labels = re.compile(r"^  \w+:[\w:]+: \d+ \(.*\)$", re.M)  # one line per label rule: "  negative:open_expired: 333 (1.7%)"
    assert len(labels.findall(without_store.output)) > 3  # the label rule lines
    assert labels.findall(with_store.output) == labels.findall(without_store.output)  # no open lead expired
    assert f"1 decision dated after {end:%Y-%m-%d %H:%M} not used (not known then)" in with_store.output
    refused = runner.invoke(app, ["train", "--params", str(params), "--as-of", f"{late:%Y-%m-%d}"])
    assert refused.exit_code == 1 and f"the export's latest lead creation or decision ({end:%Y-%m-%d %H:%M})" in refused.output


@pytest.mark.parametrize(("command", "out", "message"), [
    ("monitor", "folder", "--out: {out} is a folder; name the file to write in it, e.g. {out}/monitor.html"),
    ("audit", "a_file", "--out: {out} is a file; name a folder to write into"),
    ("backtest", "a_file", "--out: {out} is a file; name a folder to write into"),
    ("backtest", "a_file/tables", "--out: cannot write into {out}: a folder on its path is a file"),
])
def test_a_report_out_in_the_wrong_place_is_one_line_before_any_work(trained, sample_params, tmp_path, command, out,
                                                                    message):
    """Found only when the report was written, after the run was logged to MLflow, it was a traceback."""
    from serving.local_server import params_file

    (tmp_path / "folder").mkdir()
    (tmp_path / "a_file").write_text("not a folder")
    params = params_file(sample_params, tmp_path / "params.yaml")
    result = runner.invoke(app, [command, "--params", str(params), "--out", str(tmp_path / out)])
    assert result.exit_code == 1 and isinstance(result.exception, SystemExit), result.output  # no traceback
    assert message.format(out=tmp_path / out) in result.output.replace("\n", "")
    assert (tmp_path / "a_file").read_text() == "not a folder"


@pytest.mark.parametrize("command", ["audit", "backtest", "monitor"])
def test_a_refused_report_leaves_no_empty_out_folder_behind(sample_params, tmp_path, command):
    """The --out place is checked before any work, not made: a run refused for its data left an empty folder."""
    from serving.local_server import params_file

    params = params_file(sample_params, tmp_path / "params.yaml")
    out = tmp_path / "reports" / "q3" / ("monitor.html" if command == "monitor" else "")
    result = runner.invoke(app, [command, "--params", str(params), "--leads", str(tmp_path / "absent.csv"),
                                 "--out", str(out)])
    assert result.exit_code == 1 and "absent.csv" in result.output, result.output
    assert not (tmp_path / "reports").exists()


@pytest.mark.parametrize("command", ["train", "retrain"])
def test_training_as_of_a_date_before_the_first_lead_says_so(small_export, tmp_path, monkeypatch, command):
    """Not that "the train part has no converted lead": nothing existed yet, and the date is what to change."""
    params = training_params(small_export, tmp_path, monkeypatch)
    result = runner.invoke(app, [command, "--params", str(params), "--as-of", "2020-01-01"])
    assert result.exit_code == 1 and isinstance(result.exception, SystemExit), result.output
    first = pd.Timestamp(small_export["leads"]["created_at"].min())
    assert (f"--as-of 2020-01-01: no lead in the export was created by then (the first was created {first:%Y-%m-%d}); "
            "choose a later date") in result.output.replace("\n", "")


def test_backtest_names_the_option_when_quarters_is_below_one():
    """"quarters must be at least 1" named no option; refused before any data is read."""
    result = run("backtest", "--quarters", "0", "--params", str(PROJECT_ROOT / "params.yaml"), "--leads", "absent.csv")
    assert result.exit_code == 2 and "--quarters" in result.output and "absent.csv" not in result.output


@pytest.mark.parametrize("command", ["features", "train", "retrain"])
def test_an_export_of_header_rows_only_is_one_line_saying_there_is_no_lead(small_export, tmp_path, monkeypatch, command):
    """A CRM report exported with a filter that matched nothing: each file holds its header alone (this ended
    on a TypeError comparing dates with None)."""
    params = training_params({name: frame.iloc[:0] for name, frame in small_export.items()}, tmp_path, monkeypatch)
    result = runner.invoke(app, [command, "--params", str(params)])
    assert result.exit_code == 1 and isinstance(result.exception, SystemExit), result.output
    assert f"no lead to label: leads ({tmp_path / 'leads.csv'}): 0 rows read, 0 kept" in result.output.replace("\n", "")


@pytest.fixture()
def unreachable_tracking(sample_params, tmp_path, monkeypatch):
    """Params of the sample export, for a tracking store nothing answers at: its address comes from
    MLFLOW_TRACKING_URI, as a user points commands at a team's store. MLflow's client is pointed back after."""
    import mlflow

    from serving.local_server import params_file

    before = mlflow.get_tracking_uri()
    yield params_file(sample_params, tmp_path / "params.yaml")
    mlflow.set_tracking_uri(before)


@pytest.mark.parametrize("command", [
    ["train"], ["evaluate"], ["score", "-i", "{leads}", "-o", "{tmp}/scores.csv"], ["audit", "--out", "{tmp}/audit"],
    ["monitor", "--out", "{tmp}/monitor.html"], ["retrain"], ["backtest", "--out", "{tmp}/backtest"],
    ["promote", "--version", "1", "--reason", "r"], ["rollback", "--reason", "r"]])
def test_a_tracking_server_that_cannot_be_reached_is_one_line_naming_it_without_its_password(
        unreachable_tracking, sample_dir, tmp_path, monkeypatch, command):
    """MLflow's own error quotes the server's URI as given, password and all, into a terminal or CI log."""
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://ops:s3cr3t@127.0.0.1:1")
    args = [arg.format(leads=sample_dir / "leads.csv", tmp=tmp_path) for arg in command]

    result = run(*args, "--params", str(unreachable_tracking))

    assert result.exit_code == 1 and "s3cr3t" not in result.output
    assert ("cannot reach the MLflow tracking store http://ops:***@127.0.0.1:1: Connection refused. Check "
            "MLFLOW_TRACKING_URI") in result.output.replace("\n", "")


def test_a_tracking_database_that_cannot_be_reached_is_one_line_naming_it_without_its_password(
        unreachable_tracking, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "postgresql+psycopg://ops:s3cr3t@127.0.0.1:1/mlflow")

    result = run("evaluate", "--params", str(unreachable_tracking))

    assert result.exit_code == 1 and "s3cr3t" not in result.output
    assert ("cannot reach the MLflow tracking store postgresql+psycopg://ops:***@127.0.0.1:1/mlflow: connection failed"
            in result.output.replace("\n", ""))


@pytest.mark.parametrize("store, problem", [
    ("folder.db", "{tmp}/folder.db is a folder; name the database file in it, e.g. {tmp}/folder.db/mlflow.db"),
    ("missing/runs/mlflow.db", "the folder {tmp}/missing/runs does not exist; create it, or name a file in one that does"),
    ("notes.txt/mlflow.db", "{tmp}/notes.txt is a file, not a folder"),
])
def test_a_tracking_sqlite_file_that_cannot_be_opened_is_one_line_naming_it_and_why(
        unreachable_tracking, retries_at_once, tmp_path, monkeypatch, store, problem):
    """MLflow retried such a file for 100 seconds before its "unable to open database file", and made a missing
    folder itself, a mistyped path's too: nothing is created here."""
    (tmp_path / "folder.db").mkdir()
    (tmp_path / "notes.txt").write_text("not a folder")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / store}")

    result = runner.invoke(app, ["train", "--params", str(unreachable_tracking)])

    assert result.exit_code == 1 and isinstance(result.exception, SystemExit)  # no traceback
    assert (f"cannot open the MLflow tracking store sqlite:///{tmp_path / store}: {problem.format(tmp=tmp_path)}. "
            "Check MLFLOW_TRACKING_URI") in result.output.replace("\n", "")
    assert not (tmp_path / "missing").exists() and not list((tmp_path / "folder.db").iterdir())


@pytest.mark.parametrize("command", [
    ["score", "-i", "{leads}", "-o", "{tmp}/scores.csv"], ["evaluate"], ["audit", "--out", "{tmp}/audit"],
    ["monitor", "--out", "{tmp}/monitor.html"], ["promote", "--version", "1", "--reason", "r"],
    ["rollback", "--reason", "r"]])
def test_a_command_reading_the_registry_refuses_a_tracking_sqlite_file_that_does_not_exist(
        unreachable_tracking, sample_dir, tmp_path, monkeypatch, command):
    """A mistyped MLFLOW_TRACKING_URI ('mlfow.db'): MLflow created an empty 1 MB store there, and the command said
    to train first, as if the user's models were gone. It is refused before MLflow opens it, naming the file, the
    one of a name alike beside it, and the setting; nothing is created (`train` still creates a new store)."""
    runs = tmp_path / "runs"
    runs.mkdir()
    (runs / "mlflow.db").touch()
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{runs / 'mlfow.db'}")
    args = [arg.format(leads=sample_dir / "leads.csv", tmp=tmp_path) for arg in command]

    result = runner.invoke(app, [*args, "--params", str(unreachable_tracking)])

    assert result.exit_code == 1 and isinstance(result.exception, SystemExit), result.output  # no traceback
    assert (f"cannot open the MLflow tracking store sqlite:///{runs / 'mlfow.db'}: {runs / 'mlfow.db'} does not exist "
            "(its folder has mlflow.db), so no model is registered there: run `leadscore train` first, which creates "
            "it. Check MLFLOW_TRACKING_URI") in result.output.replace("\n", "")
    assert sorted(path.name for path in runs.iterdir()) == ["mlflow.db"]


def accepted(server: socket.socket):
    """Each connection made to `server` until the test closes it: accept then fails, and the serving thread ends
    quietly instead of with an error pytest reports as a warning."""
    while True:
        try:
            connection, _ = server.accept()
        except OSError:
            return
        yield connection


@contextmanager
def counted_connections(answers: int = 0):
    """A local port that counts the connections made to it, as (port, connections): the first `answers` get an empty
    HTTP answer (a tracking server's /health), every later one is reset unanswered, as at an address nothing serves."""
    connections = []

    def serve(server):
        for connection in accepted(server):
            connections.append(connection)
            with connection:
                if len(connections) <= answers:
                    connection.recv(65536)
                    connection.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                else:
                    connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # reset

    with socket.create_server(("127.0.0.1", 0)) as server:
        threading.Thread(target=serve, args=(server,), daemon=True).start()
        yield server.getsockname()[1], connections


@pytest.fixture()
def retries_at_once(monkeypatch):
    """MLflow's retries without their backoff: a command that made them would still end in seconds, not minutes."""
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_BACKOFF_JITTER", "0")
    monkeypatch.setattr("mlflow.store.db.utils.MAX_RETRY_COUNT", 3)  # 10 tries over 100 s


@pytest.mark.parametrize("own_retries, connections", [(None, 1), ("2", 3)])
def test_a_tracking_server_that_cannot_be_reached_fails_at_once_not_after_mlflows_retries(
        unreachable_tracking, retries_at_once, monkeypatch, own_retries, connections):
    """MLflow tries a server it cannot connect to 8 times over about 4 minutes: a wrong address kept a user or a CI
    job waiting that long for the one line. A MLFLOW_HTTP_REQUEST_MAX_RETRIES the user set is theirs to keep."""
    if own_retries:
        monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", own_retries)
    with counted_connections() as (port, made):
        monkeypatch.setenv("MLFLOW_TRACKING_URI", f"http://ops:s3cr3t@127.0.0.1:{port}")

        result = run("evaluate", "--params", str(unreachable_tracking))

    assert result.exit_code == 1 and "s3cr3t" not in result.output
    assert f"cannot reach the MLflow tracking store http://ops:***@127.0.0.1:{port}: " in result.output
    assert len(made) == connections


def test_a_tracking_server_that_answered_keeps_mlflows_retries(unreachable_tracking, retries_at_once, monkeypatch):
    """A store that is up and then drops a request (a restart, a failover) is retried as MLflow does."""
    from mlflow.environment_variables import MLFLOW_HTTP_REQUEST_MAX_RETRIES

    with counted_connections(answers=1) as (port, made):
        monkeypatch.setenv("MLFLOW_TRACKING_URI", f"http://127.0.0.1:{port}")

        result = run("evaluate", "--params", str(unreachable_tracking))

    assert result.exit_code == 1 and f"cannot reach the MLflow tracking store http://127.0.0.1:{port}: " in result.output
    assert len(made) == 1 + 1 + MLFLOW_HTTP_REQUEST_MAX_RETRIES.default  # the check, MLflow's request and its retries


def test_a_tracking_database_that_cannot_be_reached_fails_at_once_not_after_mlflows_retries(
        unreachable_tracking, retries_at_once, monkeypatch):
    """MLflow tries a database it cannot connect to 10 times over 100 seconds."""
    with counted_connections() as (port, made):
        monkeypatch.setenv("MLFLOW_TRACKING_URI", f"postgresql+psycopg://ops:s3cr3t@127.0.0.1:{port}/mlflow")

        result = run("evaluate", "--params", str(unreachable_tracking))

    assert result.exit_code == 1 and "s3cr3t" not in result.output
    assert f"cannot reach the MLflow tracking store postgresql+psycopg://ops:***@127.0.0.1:{port}/mlflow: " in result.output
    assert len(made) == 1


def test_a_tracking_server_whose_answer_breaks_off_is_one_line_without_its_password(unreachable_tracking, monkeypatch):
    """A store that answers but fails: MLflow's message quotes the request's full URL, password and all."""
    def answer_broken_off(server):
        for connection in accepted(server):
            with connection:
                connection.recv(65536)
                connection.sendall(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nnot a chunk\r\n")

    with socket.create_server(("127.0.0.1", 0)) as server:
        threading.Thread(target=answer_broken_off, args=(server,), daemon=True).start()
        port = server.getsockname()[1]
        monkeypatch.setenv("MLFLOW_TRACKING_URI", f"http://ops:s3cr3t@127.0.0.1:{port}")

        result = run("evaluate", "--params", str(unreachable_tracking))

    assert result.exit_code == 1 and "s3cr3t" not in result.output
    assert result.output.startswith(f"the MLflow tracking store http://ops:***@127.0.0.1:{port} failed: API request to "
                                    f"http://ops:***@127.0.0.1:{port}/api/")


def test_the_installed_command_shows_no_traceback_for_a_tracking_server_it_cannot_reach(unreachable_tracking):
    """As `leadscore` runs outside tests, where Typer's traceback page would print MLflow's message too; the token
    of a GitHub- or Databricks-style address (https://TOKEN@host) is hidden as a password is."""
    env = {**os.environ, "MLFLOW_TRACKING_URI": "https://s3cr3t@127.0.0.1:1/"}
    result = subprocess.run([sys.executable, "-m", "pipelines.cli", "evaluate", "--params", str(unreachable_tracking)],
                            capture_output=True, text=True, env=env, cwd=PROJECT_ROOT, timeout=120)

    assert result.returncode == 1 and "s3cr3t" not in result.stdout + result.stderr
    assert "cannot reach the MLflow tracking store https://***@127.0.0.1:1/: Connection refused" in result.stderr
    assert "Traceback" not in result.stderr
