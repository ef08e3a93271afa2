"""The `leadscore` command line as a RevOps engineer uses it."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from pipelines.cli import app
from pipelines.config import PROJECT_ROOT, ParamsError, load_params

runner = CliRunner()


def run(*args: str):
    return runner.invoke(app, list(args), catch_exceptions=False)


def test_every_command_has_help():
    commands = re.findall(r"│ (\S+)\s", run("--help").output)
    assert {"sample-data", "features", "train", "score"} <= set(commands)
    for command in commands:
        result = run(command, "--help")
        assert result.exit_code == 0 and "Usage" in result.output


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
    assert "1 rows failed validation" in result.output
    assert "no --activities file: every lead is scored as having no activity" in result.output  # none was given
    with_activities = run("score", "--params", str(params), "--input", str(tmp_path / "leads.csv"), "--output",
                          str(tmp_path / "scores.csv"), "--activities", str(sample_dir / "activities.csv"))
    assert with_activities.exit_code == 0 and "no --activities" not in with_activities.output


def test_score_warns_when_no_activity_row_belongs_to_a_scored_lead(trained, sample_params, sample_dir, tmp_path):
    """Activity ids written differently from the leads' (here a prefix) would score every lead as never engaged."""
    import pandas as pd

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


def test_score_refuses_numbers_and_no_date_sentinels_as_dates_by_row(trained, sample_params, sample_dir, tmp_path):
    """A CRM's 0001-01-01 / 9999-12-31 "no date" and epoch seconds go to the rejects files, not 1970 or a crash."""
    import pandas as pd

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


@pytest.mark.parametrize("url", ["leadscore.example.com", "https://", "https://x.example.com/?a=1", "ftp://x.example.com"])
def test_a_public_url_that_is_no_web_address_is_refused_by_name(url):
    with pytest.raises(ParamsError, match=r"serving.public_url.*http\(s\) address"):
        load_params(PROJECT_ROOT / "params.yaml", overrides={"serving.public_url": url})


def test_a_public_url_loses_its_trailing_slash_so_card_links_have_one():
    params = load_params(PROJECT_ROOT / "params.yaml", overrides={"serving.public_url": " https://crm.example.com/ls/ "})
    assert params.serving.public_url == "https://crm.example.com/ls"


def test_a_missing_export_is_a_clear_error(tmp_path):
    result = run("features", "--leads", str(tmp_path / "nope.csv"))
    assert result.exit_code == 1
    assert "nope.csv" in result.output
