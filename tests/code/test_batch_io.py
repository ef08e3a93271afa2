"""Batch scoring reads files as the CRM wrote them, hands each chunk exactly its leads' activities, and
runs its chunks on one-thread model workers whose errors stop the run."""

from __future__ import annotations

import dataclasses
import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import lightgbm as lgb
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from features.build import feature_catalog
from models.calibration import Calibrator, TierThresholds
from models.explain import explain
from models.gbm import predict_threads, usable_cores
from models.peers import LogisticPeer
from models.scorer import LeadScorer
from models.train import category_encoder
from pipelines.config import PROJECT_ROOT, DataParams, load_params
from pipelines.dataset import TrainingSet, assemble, model_features
from pipelines.ingest import API_CLIENT, load_crm, read_header
from pipelines.score import _activities_of, _lead_chunks, _read_activities, _read_whole, _ScoresFile, score_file
from pipelines.synthetic import generate_crm, write_crm
from serving.scoring import request_frames

PANDAS_TEXT = {"dtype": str, "keep_default_na": False, "na_values": [""]}
X_EDUCATION = PROJECT_ROOT / "params.x_education.yaml"


# The readers as score_file calls them: with the file's header, read once before (ingest.read_header).
def read_whole(path: Path) -> pd.DataFrame:
    return _read_whole(path, read_header(path))[0]


def read_activities(path: Path, data) -> pd.DataFrame:
    return _read_activities(path, read_header(path), data)[0]


def lead_chunks(path: Path, chunk_size: int, id_column: str) -> tuple[pd.Series | None, Iterator[pd.DataFrame]]:
    ids, _, chunks, _ = _lead_chunks(path, read_header(path), chunk_size, id_column)
    return ids, chunks


def quick_scorer(params, booster: bool = False) -> tuple[TrainingSet, LeadScorer]:
    """The export of `params` assembled for training, and a scorer fit on all of it in a second (a logistic
    peer, no LightGBM): enough to tell leads' features apart by their scores. With `booster`, the category
    levels training learns (`category_encoder`) and a small LightGBM on them, blended half and half with the peer."""
    ts = assemble(params)
    y = np.asarray(ts.y)
    encoder = category_encoder(ts.features, feature_catalog(params.features)) if booster else None
    gbm = lgb.train({"objective": "binary", "verbose": -1, "min_data_in_leaf": 5, "seed": 0},
                    lgb.Dataset(encoder.transform(ts.features), y), num_boost_round=30) if booster else None
    scorer = LeadScorer(data=params.data, features=params.features, encoder=encoder, booster=gbm,
                        logistic=LogisticPeer(seed=0).fit(ts.features, y), gbm_coef=0.5 if booster else 0.0,
                        logistic_coef=0.5 if booster else 1.0,
                        calibrator=Calibrator("sigmoid"), tiers=TierThresholds(names=["all"], min_probability=[0.0]),
                        reasons=None)
    scorer.calibrator.fit(scorer.margin(ts.features), np.asarray(ts.y))
    return ts, scorer


@pytest.mark.parametrize(
    "text",
    [
        "lead_id,activity,detail\n007,page_view,NA\nL2,,\"a, b\"\n",  # leading zeros, Namibia, quoted comma
        "lead_id,activity,detail\nL1,page_view\nL2,form_fill,x\n",  # a short row: pandas pads it
        "\ufefflead_id,activity\nL1,caf\u00e9\n",  # byte-order mark, non-ASCII text
    ],
    ids=["plain", "ragged", "bom"],
)
def test_activities_file_reads_as_pandas_reads_it(tmp_path, text):
    path = tmp_path / "activities.csv"
    path.write_text(text, encoding="utf-8")

    pd.testing.assert_frame_equal(read_whole(path), pd.read_csv(path, **PANDAS_TEXT))


@pytest.mark.parametrize("name", ["leads.csv", "leads.csv.gz"])
def test_a_csv_excel_wrote_with_semicolons_reads_as_the_comma_one(tmp_path, name):
    """Excel in a region whose decimal mark is a comma writes ";" between fields: read with commas, the
    file was one column and refused as missing lead_id (or as ragged, a comma in a company name)."""
    text = pd.DataFrame({"lead_id": ["007", "L2"], "occurred_at": ["2024-01-02", "2024-01-03"],
                         "company": ["M\u00fcller; S\u00f6hne, GmbH", None], "activity": ["page_view", "webinar"]})
    path = tmp_path / name
    text.to_csv(path, sep=";", index=False, encoding="utf-8-sig")

    pd.testing.assert_frame_equal(read_whole(path), text.astype(str).where(text.notna()), check_dtype=False)
    activities = read_activities(path, DataParams(leads="unused"))  # coded and typed as it is read
    assert activities["lead_id"].astype(str).tolist() == ["007", "L2"]
    assert activities["activity"].astype(str).tolist() == ["page_view", "webinar"]
    assert activities["occurred_at"].tolist() == [pd.Timestamp("2024-01-02"), pd.Timestamp("2024-01-03")]


def test_each_chunk_gets_exactly_the_activities_isin_would_select_in_file_order():
    activities = pd.DataFrame(
        {"lead_id": pd.array(["L1", "L2", None, "L1", "L9", "L3", "L2"], dtype="str"),
         "occurred_at": pd.date_range("2024-01-01", periods=7),
         "activity": pd.array(list("abcdefg"), dtype="str"), "detail": "not used by features"}
    )
    select = _activities_of(activities)

    for chunk in (["L1", "L3"], ["L2", "L4"], ["L2", None], [], ["L9", "L9"]):
        ids = pd.Series(chunk, dtype="str")
        picked = select(ids).astype({"lead_id": "str", "activity": "str"})
        expected = activities.loc[activities["lead_id"].isin(ids), ["lead_id", "occurred_at", "activity"]]
        pd.testing.assert_frame_equal(picked, expected)
    assert select(pd.Series(["L1"], dtype="str"))["activity"].tolist() == ["a", "d"]
    assert np.array_equal(select(pd.Series([None], dtype="str")).index, [2])  # blank ids go with blank leads


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_only_the_activity_columns_features_use_are_read_under_the_crm_names(tmp_path, suffix):
    table = pa.table({"Type": ["page_view"], "detail": ["/pricing"], "Lead": ["L1"], "occurred_at": ["2024-01-02"]})
    path = tmp_path / f"activities{suffix}"
    pq.write_table(table, path) if suffix == ".parquet" else table.to_pandas().to_csv(path, index=False)
    data = SimpleNamespace(mapping=SimpleNamespace(activities={"Lead": "lead_id", "Type": "activity"}))

    activities = read_activities(path, data)
    assert activities.columns.tolist() == ["Type", "Lead", "occurred_at"]  # file order, detail left out
    assert activities.astype(str).to_dict("records") == [
        {"Type": "page_view", "Lead": "L1", "occurred_at": "2024-01-02"}]


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_activity_ids_and_types_read_coded_keep_the_crm_text(tmp_path, suffix):
    text = pd.DataFrame({"lead_id": ["007", "NA", None, " L1", "007"], "occurred_at": ["2024-01-02"] * 5,
                         "activity": ["page_view", "form_fill", "page_view", None, "webinar"]})
    path = tmp_path / f"activities{suffix}"
    text.to_parquet(path) if suffix == ".parquet" else text.to_csv(path, index=False)

    activities = read_activities(path, DataParams(leads="unused"))

    assert activities["lead_id"].dtype == "category" and activities["activity"].dtype == "category"
    as_text = activities.astype({"lead_id": object, "activity": object}).to_dict("list")
    assert as_text["lead_id"][:2] == ["007", "NA"] and pd.isna(as_text["lead_id"][2]) and as_text["lead_id"][3] == " L1"
    assert pd.isna(as_text["activity"][3]) and as_text["activity"][4] == "webinar"


def test_activity_times_are_parsed_while_read_unless_one_is_not_plain_iso(tmp_path):
    plain, zoned = tmp_path / "plain.csv", tmp_path / "zoned.csv"
    plain.write_text("lead_id,occurred_at,activity\n"
                     "L1,2024-01-02 03:04:05,page_view\nL2,,webinar\nL3,2024-01-03,webinar\n")
    zoned.write_text("lead_id,occurred_at,activity\nL1,2024-01-02T03:04:05+02:00,webinar\nL2,soon,webinar\n")

    parsed = read_activities(plain, DataParams(leads="unused"))
    as_text = read_activities(zoned, DataParams(leads="unused"))

    assert parsed["occurred_at"].dtype == "datetime64[us]"
    assert parsed["occurred_at"].tolist()[::2] == [pd.Timestamp("2024-01-02 03:04:05"), pd.Timestamp("2024-01-03")]
    assert pd.isna(parsed["occurred_at"][1])
    # A zone or a typo: the times stay text (validation converts the zone and names the typo's row);
    # ids and types are still coded.
    assert as_text["occurred_at"].tolist() == ["2024-01-02T03:04:05+02:00", "soon"]
    assert as_text["lead_id"].dtype == "category"


def test_batch_model_workers_predict_on_one_thread_while_the_caller_keeps_every_core(trained, sample_dir, tmp_path):
    """score_file runs one model worker per core, each on its own chunk, so each must not also
    start a LightGBM thread per core; the caller (building the next chunk's features) keeps them all."""
    threads = []

    class Recording(LeadScorer):
        def scores_of(self, features, top_factors=0, age_days=None, never_seen=None):
            threads.append(predict_threads(100_000))  # what a 100k-row predict would ask for here
            return super().scores_of(features, top_factors, age_days, never_seen)

    scorer = Recording(**{f.name: getattr(trained.scorer, f.name) for f in dataclasses.fields(LeadScorer)})
    pd.read_csv(sample_dir / "leads.csv", dtype=str).head(300).to_csv(tmp_path / "leads.csv", index=False)
    score_file(scorer, tmp_path / "leads.csv", tmp_path / "scores.csv", as_of=pd.Timestamp("2026-01-01"),
               chunk_size=100, progress=False)
    assert threads == [1, 1, 1]
    assert predict_threads(100_000) == usable_cores()


def test_a_ragged_activities_file_is_still_read_coded_or_not(tmp_path):
    path = tmp_path / "activities.csv"
    path.write_text("lead_id,occurred_at,activity\nL1,2024-01-02\nL2,2024-01-03,form_fill\n")  # pandas pads a short row

    activities = read_activities(path, DataParams(leads="unused"))

    assert activities.astype(object).where(activities.notna(), None).values.tolist() == [
        ["L1", "2024-01-02", None], ["L2", "2024-01-03", "form_fill"]]


def test_an_activities_file_without_its_lead_id_column_is_refused_by_name(tmp_path):
    (tmp_path / "leads.csv").write_text("lead_id,created_at\nL1,2024-01-01\n")
    (tmp_path / "activities.csv").write_text("Lead,occurred_at,activity\nL1,2024-01-02,page_view\n")
    scorer = SimpleNamespace(data=DataParams(leads="unused"))  # nothing is scored before the check

    with pytest.raises(ValueError, match=r"(?s)activities.csv.*missing required column 'lead_id'.*data.mapping.activities"):
        score_file(scorer, tmp_path / "leads.csv", tmp_path / "scores.csv",
                   activities_path=tmp_path / "activities.csv", progress=False)


def test_parquet_tables_read_as_crm_text_even_when_empty(tmp_path):
    pq.write_table(pa.table({"lead_id": ["007"], "employees": [12]}), tmp_path / "leads.parquet")
    pq.write_table(pa.table({"lead_id": pa.array([], pa.string())}), tmp_path / "none.parquet")

    assert read_whole(tmp_path / "leads.parquet").to_dict("records") == [{"lead_id": "007", "employees": "12"}]
    pq.write_table(pa.table({"lead_id": [7, None]}), tmp_path / "ids.parquet")  # pandas would make it float
    assert read_whole(tmp_path / "ids.parquet")["lead_id"].isna().tolist() == [False, True]
    assert read_whole(tmp_path / "ids.parquet")["lead_id"][0] == "7"
    assert read_whole(tmp_path / "none.parquet").columns.tolist() == ["lead_id"]


def test_parquet_scores_keep_a_column_that_the_first_chunk_left_all_missing(tmp_path):
    """A first chunk without any likely reason (e.g. no reason model applies) must not type the
    column as null, or the next chunk's reasons could not be appended."""
    path = tmp_path / "scores.parquet"
    with _ScoresFile(path) as out:
        out.write(pd.DataFrame({"lead_id": ["a", "b"], "score": [10, 20], "likely_rejection_reason": [None, None]}))
        out.write(pd.DataFrame({"lead_id": ["c"], "score": [30], "likely_rejection_reason": ["no_budget"]}))
    written = pd.read_parquet(path)
    assert written["lead_id"].tolist() == ["a", "b", "c"] and written["score"].tolist() == [10, 20, 30]
    assert written["likely_rejection_reason"].isna().tolist() == [True, True, False]
    assert written["likely_rejection_reason"].iloc[2] == "no_budget"


@pytest.mark.parametrize(
    "output, activities, written",
    [
        ("leads.csv", None, "output"),  # --output the same as --input
        ("scores.csv", "scores.rejects.csv", "rejects file"),  # the rejects would land on the activities
        ("link.csv", None, "output"),  # another name for the input (a symbolic link)
    ],
)
def test_scoring_never_writes_over_a_file_it_reads(tmp_path, output, activities, written):
    leads = "lead_id,created_at\nL1,2024-01-01\n"
    (tmp_path / "leads.csv").write_text(leads)
    (tmp_path / "link.csv").symlink_to(tmp_path / "leads.csv")
    (tmp_path / "scores.rejects.csv").write_text("lead_id,occurred_at,activity\nL1,2024-01-02,page_view\n")
    scorer = SimpleNamespace(data=DataParams(leads="unused"))  # refused before anything is read or scored

    with pytest.raises(ValueError, match=rf"the {written} .*{output if written == 'output' else activities} is the "
                                         rf"{'activities' if activities else 'leads'} file: writing it would destroy"):
        score_file(scorer, tmp_path / "leads.csv", tmp_path / output, progress=False,
                   activities_path=tmp_path / activities if activities else None)
    assert (tmp_path / "leads.csv").read_text() == leads
    assert (tmp_path / "scores.rejects.csv").read_text().startswith("lead_id,occurred_at")


@pytest.mark.parametrize(
    "source, content, output, chunk_size, error",
    [
        ("leads.csv", "lead_id,created_at\nL1,2024-01-01\n", "scores.csv", 0, "chunk size 0: a chunk holds at least one lead"),
        ("leads.csv", "lead_id,created_at\nL1,2024-01-01\n", "scores.xlsx", 10, r"scores.xlsx: name it .csv or .parquet"),
        ("leads.csv", "lead_id,created_at\nL1,2024-01-01\nL2,2024-01-02,x,y\n", "scores.csv", 10,
         r"leads.csv: row 2 \(header not counted\) has 4 values, where the header has 2 columns: a value holding the "
         r"separator ',' outside double quotes splits in two"),
        ("leads.parquet", "lead_id,created_at\n", "scores.csv", 10, r"leads.parquet cannot be read as a Parquet file"),
    ],
    ids=["no chunk", "unknown output format", "a long row", "not Parquet"],
)
def test_a_batch_that_cannot_run_says_which_file_or_option_is_wrong(tmp_path, source, content, output, chunk_size, error):
    (tmp_path / source).write_text(content)
    scorer = SimpleNamespace(data=DataParams(leads="unused"))  # refused before any lead is scored

    with pytest.raises(ValueError, match=error):
        score_file(scorer, tmp_path / source, tmp_path / output, chunk_size=chunk_size, progress=False)
    assert not (tmp_path / output).exists()


def test_a_row_split_by_an_unquoted_comma_is_refused_when_data_drop_columns_leaves_columns_unread(tmp_path):
    """X Education's params drop 9 columns: pandas' parser, reading the others only, left a row's extra value out, and
    'Google, Inc' was scored with 'Inc' as its do-not-e-mail answer and every later value one column on."""
    (tmp_path / "leads.csv").write_text('lead_id,lead_source,do_not_email,notes\nL1,Web,No,"two\nlines"\n'
                                        "L2,Google, Inc,No,x\n")
    scorer = SimpleNamespace(data=DataParams(leads="unused", drop_columns=["notes"]))  # refused before any scoring

    with pytest.raises(ValueError, match=r"leads.csv: row 2 \(header not counted\) has 5 values, where the header has "
                                         r"4 columns: a value holding the separator ','"):
        score_file(scorer, tmp_path / "leads.csv", tmp_path / "scores.csv", progress=False)
    assert not (tmp_path / "scores.csv").exists()


def test_batch_scores_are_the_same_whether_activities_are_read_coded_or_as_plain_text(
        trained, sample_dir, tmp_path, monkeypatch):
    """Batch scoring reads activity ids and types dictionary-coded and times typed by Arrow; the
    scores must be exactly those of the same file read as text, padded and unanswered cells included."""
    from pipelines import score

    leads = pd.read_csv(sample_dir / "leads.csv", dtype=str).head(400)
    activities = pd.read_csv(sample_dir / "activities.csv", dtype=str)
    activities = activities[activities["lead_id"].isin(leads["lead_id"])].reset_index(drop=True)
    activities.loc[::7, "lead_id"] = " " + activities.loc[::7, "lead_id"]  # the same lead, padded
    activities.loc[::11, "activity"] = "Select"  # an unanswered type: the row is refused
    leads.to_csv(tmp_path / "leads.csv", index=False)
    activities.to_csv(tmp_path / "activities.csv", index=False)

    def scores(name: str) -> tuple[str, score.BatchSummary]:
        summary = score_file(trained.scorer, tmp_path / "leads.csv", tmp_path / f"{name}.csv", chunk_size=150,
                             activities_path=tmp_path / "activities.csv", as_of=pd.Timestamp("2026-01-01"),
                             progress=False)
        return (tmp_path / f"{name}.csv").read_text(), summary

    coded, coded_summary = scores("coded")
    monkeypatch.setattr(score, "_read_activities",
                        lambda path, header, data: score._read_whole(path, header, ["lead_id", "occurred_at", "activity"]))
    plain, plain_summary = scores("plain")

    assert coded == plain
    assert coded_summary.activities_rejected == plain_summary.activities_rejected == len(activities[::11])


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_each_scored_lead_names_the_values_the_model_never_saw_as_score_answers_them(trained, sample_dir, tmp_path,
                                                                                      suffix):
    """A RevOps engineer scoring a file was told how many leads had a lead source new to the model (scored as its
    "other" level), not which leads: only the service named them per lead. Each scored row's never_seen is now what
    /score answers for the lead, as JSON text (a ";" or a quote in a value survives); empty for a lead with none,
    in any chunk and after a refused row."""
    from serving.scoring import ModelRef, score_request

    leads = pd.read_csv(sample_dir / "leads.csv", dtype=str, keep_default_na=False).head(7)
    leads.loc[1, "created_at"] = "not a date"  # refused: the chunk's later rows must still be told apart
    leads.loc[2, "lead_source"] = " TikTok "
    leads.loc[4, ["lead_source", "industry"]] = ["TikTok", 'Quantum "Basket"; Weaving']
    leads.loc[6, "industry"] = "Quantum Basket Weaving"  # the next chunk
    path = tmp_path / f"leads{suffix}"
    leads.to_parquet(path, index=False) if suffix == ".parquet" else leads.to_csv(path, index=False)

    summary = score_file(trained.scorer, path, tmp_path / f"scores{suffix}", as_of=pd.Timestamp("2026-01-01"),
                         chunk_size=5, progress=False)

    written = pd.read_parquet(summary.output) if suffix == ".parquet" else pd.read_csv(summary.output, dtype=str)
    assert summary.rows_rejected == 1 and written["lead_id"].tolist() == leads["lead_id"].drop(1).tolist()
    assert written["never_seen"].isna().tolist() == [True, False, True, False, True, False]
    sent = leads.drop(1).to_dict("records")
    served = score_request(trained.scorer, sent, [None] * len(sent), ModelRef.of(trained.scorer),
                           as_of=pd.Timestamp("2026-01-01"), top_k=1, card_key=b"key", card_link_days=1).results
    assert [{} if pd.isna(text) else json.loads(text) for text in written["never_seen"]] == [
        score["never_seen"] for score in served]
    assert served[3]["never_seen"] == {"lead_source": "TikTok", "industry": 'Quantum "Basket"; Weaving'}


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_a_failure_while_modelling_a_chunk_stops_batch_scoring_with_that_error(
        trained, sample_dir, tmp_path, monkeypatch, suffix):
    """Model workers run on earlier chunks while the next is built: an error must surface, not vanish,
    and the scores and rejects of an earlier run stay as they were (no partial file replaces them)."""
    leads = pd.read_csv(sample_dir / "leads.csv", dtype=str).head(300)
    leads.loc[150, "created_at"] = "soon"  # a reject in the unfinished run
    leads.to_csv(tmp_path / "leads.csv", index=False)
    (tmp_path / f"scores{suffix}").write_bytes(b"the earlier run's scores")
    (tmp_path / "scores.rejects.csv").write_text("the earlier run's rejects")
    real_scores_of, calls = trained.scorer.scores_of, []

    def failing_on_the_second_chunk(features, top_factors=0, age_days=None, never_seen=None):
        calls.append(len(features))
        if len(calls) == 2:
            raise MemoryError("out of memory on chunk 2")
        return real_scores_of(features, top_factors, age_days, never_seen)

    monkeypatch.setattr(trained.scorer, "scores_of", failing_on_the_second_chunk)
    with pytest.raises(MemoryError, match="chunk 2"):
        score_file(trained.scorer, tmp_path / "leads.csv", tmp_path / f"scores{suffix}",
                   as_of=pd.Timestamp("2026-01-01"), chunk_size=100, progress=False)
    assert (tmp_path / f"scores{suffix}").read_bytes() == b"the earlier run's scores"
    assert (tmp_path / "scores.rejects.csv").read_text() == "the earlier run's rejects"
    assert {p.name for p in tmp_path.iterdir()} == {"leads.csv", "scores.rejects.csv", f"scores{suffix}"}


def test_a_long_text_cell_costs_memory_in_proportion_to_the_text(trained, sample_dir, tmp_path):
    """One 200 kB note among 1,000 leads: fixed-width numpy text took rows x longest cell x 4 bytes
    (800 MB here; 24 GB for 6,000 leads with a 1 MB note), whether it came from Parquet or JSON."""
    import tracemalloc

    from pipelines.ingest import prepare_table

    leads = pd.read_csv(sample_dir / "leads.csv", dtype=str).head(1000)
    leads["notes"] = None
    leads.loc[3, "notes"] = "x" * 200_000
    leads.to_parquet(tmp_path / "leads.parquet")
    as_json = leads.astype(object).where(leads.notna(), None)  # what a request's rows arrive as

    tracemalloc.start()
    try:
        summary = score_file(trained.scorer, tmp_path / "leads.parquet", tmp_path / "scores.csv",
                             as_of=pd.Timestamp("2026-01-01"), progress=False)
        checked, problems = prepare_table(as_json, "leads", trained.scorer.data)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert summary.rows_scored == 1000 and not problems and len(checked) == 1000
    assert peak < 150e6


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
@pytest.mark.parametrize("chunk_size", [1, 2, 4, 1000])
def test_a_repeated_lead_id_is_refused_naming_its_first_row_however_the_file_is_chunked(
        trained, sample_dir, tmp_path, chunk_size, suffix):
    leads = pd.read_csv(sample_dir / "leads.csv", dtype=str).head(6)
    repeated = pd.concat([leads, leads.iloc[[1]], leads.iloc[[4]].assign(lead_id=" " + leads["lead_id"][4]),
                          leads.iloc[[1]].assign(industry="other")])  # file rows 7-9 repeat rows 2, 5 and 2
    source = tmp_path / f"leads{suffix}"
    repeated.to_csv(source, index=False) if suffix == ".csv" else repeated.to_parquet(source, index=False)

    summary = score_file(trained.scorer, source, tmp_path / "scores.csv", chunk_size=chunk_size,
                         as_of=pd.Timestamp("2026-01-01"), progress=False)

    assert pd.read_csv(tmp_path / "scores.csv")["lead_id"].tolist() == leads["lead_id"].tolist()
    rejects = pd.read_csv(tmp_path / "scores.rejects.csv")
    assert (summary.rows_read, summary.rows_scored, summary.rows_rejected) == (9, 6, 3)
    assert rejects["row"].tolist() == [7, 8, 9]
    for problem, first in zip(rejects["problems"], [2, 5, 2]):
        assert f"also on row {first}: each lead is scored once, from its first row" in problem
    assert rejects["industry"].tolist()[2] == "other"  # the refused copy as it was read


def test_batch_scoring_counts_the_activities_the_service_warns_of_by_their_dates_over_every_chunk(
        trained, sample_dir, tmp_path):
    """A walk-through found a 2019 demo request moving a 2024 lead's score, and activities after --as-of left out,
    without a word from batch scoring, where /score warns of both per lead. The summary counts both over the file:
    activities of a type the model reads dated after the time the leads are scored as of (left out), and those dated
    more than a day before their lead was created (counted), with their leads; a lead's in any chunk."""
    from pipelines.score import DatedApart

    leads = pd.read_csv(sample_dir / "leads.csv", dtype=str).head(30)
    activities = pd.read_csv(sample_dir / "activities.csv", dtype=str)
    activities = activities[activities["lead_id"].isin(leads["lead_id"])].reset_index(drop=True)
    activities.to_csv(tmp_path / "as_exported.csv", index=False)

    def activity_of(lead: int, nth: int = 0) -> int:
        return activities.index[activities["lead_id"] == leads["lead_id"][lead]][nth]

    # Leads of the 1st chunk (two of one lead's) and of the 4th
    for row in (activity_of(0), activity_of(2), activity_of(2, 1), activity_of(25)):
        activities.loc[row, "occurred_at"] = "2019-05-02 10:00:00"
    activities.loc[activity_of(4), ["occurred_at", "activity"]] = ["2019-05-02 10:00:00", "sales_call"]  # not read
    leads.to_csv(tmp_path / "leads.csv", index=False)
    activities.to_csv(tmp_path / "activities.csv", index=False)
    as_of = pd.Timestamp("2024-02-01")

    summary = score_file(trained.scorer, tmp_path / "leads.csv", tmp_path / "scores.csv", chunk_size=7, as_of=as_of,
                         activities_path=tmp_path / "activities.csv", progress=False)

    dated = activities.merge(leads[["lead_id", "created_at"]], on="lead_id")
    occurred, created = pd.to_datetime(dated["occurred_at"]), pd.to_datetime(dated["created_at"])
    read = dated["activity"].isin(trained.scorer.features.activity_types)
    after, early = read & (occurred > as_of), read & (occurred <= as_of) & (occurred < created - pd.Timedelta(days=1))
    assert summary.rows_scored == 30 and (early.sum(), dated["lead_id"][early].nunique()) == (4, 3)
    assert 0 < after.sum() < read.sum()
    assert summary.activities_after_scoring_time == DatedApart(int(after.sum()), dated["lead_id"][after].nunique())
    assert summary.activities_before_created == DatedApart(4, 3)

    later = score_file(trained.scorer, tmp_path / "leads.csv", tmp_path / "scores.csv", chunk_size=7,
                       as_of=pd.Timestamp("2026-01-01"), activities_path=tmp_path / "as_exported.csv", progress=False)
    assert later.activities_after_scoring_time == later.activities_before_created == DatedApart()


def test_batch_scoring_counts_the_activity_rows_of_types_the_model_does_not_read_beside_those_it_reads(
        trained, sample_dir, tmp_path):
    """A new CRM type (chat_started) or a label no data.value_maps entry translates ('Requested Demo'), beside rows of
    types the model reads, was not counted without a word, where /score names such types per lead. The summary counts
    the file's such rows per type, after data.value_maps (a label it translates is read)."""
    data = trained.scorer.data
    scorer = dataclasses.replace(trained.scorer, data=data.model_copy(update={
        "value_maps": {**data.value_maps, "activity": {"Web Visit": "page_view"}}}))
    leads = pd.read_csv(sample_dir / "leads.csv", dtype=str).head(30)
    activities = pd.read_csv(sample_dir / "activities.csv", dtype=str)
    activities = activities[activities["lead_id"].isin(leads["lead_id"])].reset_index(drop=True)
    activities.loc[[0, 3, 5], "activity"] = "chat_started"
    activities.loc[[7], "activity"] = "Requested Demo"
    activities.loc[[8, 9], "activity"] = "Web Visit"
    leads.to_csv(tmp_path / "leads.csv", index=False)
    activities.to_csv(tmp_path / "activities.csv", index=False)

    summary = score_file(scorer, tmp_path / "leads.csv", tmp_path / "scores.csv", chunk_size=7,
                         as_of=pd.Timestamp("2026-01-01"), activities_path=tmp_path / "activities.csv", progress=False)

    assert summary.activities_valid == len(activities) > 4
    assert summary.unread_activity_types == {"chat_started": 3, "Requested Demo": 1}


def test_scores_name_the_id_as_the_file_does_where_the_mapping_gives_it_two_names(trained, sample_dir, tmp_path):
    """HubSpot's API names the id `hs_object_id`, its export `Record ID`, both mapped to lead_id: with the API's name
    first, the export's scores came back under `lead_id`, which the CRM's import does not match its records on, and a
    repeated id was not refused naming its first row."""
    data = trained.scorer.data
    scorer = dataclasses.replace(trained.scorer, data=data.model_copy(update={"mapping": data.mapping.model_copy(
        update={"leads": {"hs_object_id": "lead_id", "Record ID": "lead_id"}})}))
    leads = pd.read_csv(sample_dir / "leads.csv", dtype=str).head(6).rename(columns={"lead_id": "Record ID"})
    pd.concat([leads, leads.iloc[[1]]]).to_csv(tmp_path / "leads.csv", index=False)

    summary = score_file(scorer, tmp_path / "leads.csv", tmp_path / "scores.csv", as_of=pd.Timestamp("2026-01-01"),
                         progress=False)

    assert pd.read_csv(tmp_path / "scores.csv", dtype=str)["Record ID"].tolist() == leads["Record ID"].tolist()
    assert (summary.rows_scored, summary.rows_rejected) == (6, 1)
    assert "also on row 2: each lead is scored once" in pd.read_csv(tmp_path / "scores.rejects.csv")["problems"][0]


def test_the_progress_bar_counts_leads_not_lines_of_the_file(trained, sample_dir, tmp_path, capsys):
    """A company name exported with a line break in it spans two lines of the CSV: the bar counted lines, so a
    finished run stopped short of its total (4/5 leads)."""
    leads = pd.read_csv(sample_dir / "leads.csv", dtype=str).head(4)
    leads.loc[leads.index[1], "company"] = "Acme\nHoldings"
    leads.to_csv(tmp_path / "leads.csv", index=False)

    summary = score_file(trained.scorer, tmp_path / "leads.csv", tmp_path / "scores.csv",
                         as_of=pd.Timestamp("2026-01-01"))

    assert summary.rows_scored == 4
    assert "4/4" in capsys.readouterr().err.rsplit("\r", 1)[-1]


def test_an_infinite_number_in_a_parquet_text_column_goes_to_the_rejects_as_training_refuses_it(trained, sample_dir,
                                                                                                 tmp_path):
    """Batch scoring read every Parquet cell as text first: a float column's -inf scored as the lead_source "-inf",
    where training (ingest.prepare_table) and the service refuse it."""
    leads = pd.read_csv(sample_dir / "leads.csv", dtype=str).head(4).assign(lead_source=[None, float("-inf"), 3.0, None])
    leads.to_parquet(tmp_path / "leads.parquet", index=False)

    summary = score_file(trained.scorer, tmp_path / "leads.parquet", tmp_path / "scores.csv",
                         as_of=pd.Timestamp("2026-01-01"), progress=False)

    assert (summary.rows_scored, summary.rows_rejected) == (3, 1)
    rejects = pd.read_csv(tmp_path / "scores.rejects.csv")
    assert rejects["row"].tolist() == [2]
    assert "row 2, column 'lead_source': an infinite number is no lead_source value: -inf" in rejects["problems"][0]
    assert rejects["lead_source"].tolist() == [float("-inf")]  # the refused row as it was read

def test_parquet_numbers_read_as_the_crm_wrote_them(tmp_path):
    """pandas writes a nullable Int64 column with metadata that a text cast broke; a float id column
    (a null turns integer ids float) must read "10" as ingest reads it, not "10.0"."""
    leads = pd.DataFrame({"lead_id": [10.0, 24.0, None, 135.5],
                          "employees": pd.array([556, None, 12, 7], dtype="Int64")})
    leads.to_parquet(tmp_path / "leads.parquet")

    for read in (read_whole(tmp_path / "leads.parquet"), next(lead_chunks(tmp_path / "leads.parquet", 10, "lead_id")[1])):
        as_text = read.astype(object).where(read.notna(), None).to_dict("list")
        assert as_text == {"lead_id": ["10", "24", None, "135.5"], "employees": ["556", None, "12", "7"]}


def test_a_parquet_cell_not_utf8_is_named_by_its_file_row_in_any_chunk(tmp_path):
    companies = pa.array([b"Acme", b"Initech", b"Umbrella", "Soci\u00e9t\u00e9".encode("latin-1"), b"Hooli"], pa.binary())
    pq.write_table(pa.table({"lead_id": ["L1", "L2", "L3", "L4", "L5"], "company": companies}), tmp_path / "leads.parquet")

    ids, chunks = lead_chunks(tmp_path / "leads.parquet", 2, "lead_id")
    assert next(chunks)["company"].tolist() == ["Acme", "Initech"]
    with pytest.raises(ValueError, match=r"leads.parquet row 4, column 'company': b'Soci\\xe9t\\xe9' is not UTF-8"):
        next(chunks)


def test_a_file_none_of_whose_rows_could_be_scored_says_no_output_was_written_when_there_was_none(trained, tmp_path):
    """A first run whose every row failed said 'scores.csv was left as it was', as if an earlier run's scores were
    there for the CRM to import."""
    (tmp_path / "leads.csv").write_text("lead_id,created_at\n,2024-01-01\n,2024-01-02\n")

    with pytest.raises(ValueError, match=rf"every row failed validation \(see .*scores.rejects.csv\); no "
                                         rf"{re.escape(str(tmp_path / 'scores.csv'))} was written$"):
        score_file(trained.scorer, tmp_path / "leads.csv", tmp_path / "scores.csv", progress=False)
    assert not (tmp_path / "scores.csv").exists() and (tmp_path / "scores.rejects.csv").exists()


def test_a_partial_file_left_by_a_killed_run_is_removed_by_the_next_and_a_running_ones_kept(
        trained, sample_dir, tmp_path):
    """SIGKILL gives a run no chance to remove its hidden files; the next run of the same output does."""
    pd.read_csv(sample_dir / "leads.csv", dtype=str).head(20).to_csv(tmp_path / "leads.csv", index=False)
    killed = subprocess.Popen([sys.executable, "-c", "pass"])
    killed.wait()
    stale = tmp_path / f".scores.{killed.pid}.partial.csv"
    running = tmp_path / f".scores.{os.getppid()}.partial.csv"  # e.g. another run writing the same output
    other = tmp_path / f".scores_eu.{killed.pid}.partial.csv"
    for hidden in (stale, running, other):
        hidden.write_text("half a file")

    score_file(trained.scorer, tmp_path / "leads.csv", tmp_path / "scores.csv", as_of=pd.Timestamp("2026-01-01"),
               progress=False)

    assert len(pd.read_csv(tmp_path / "scores.csv")) == 20
    assert not stale.exists() and running.exists() and other.exists()


def _latin1_type(path):
    path.write_bytes("lead_id,occurred_at,activity\nL1,2024-01-02,page_view\nL1,2024-01-03,caf\u00e9\n".encode("latin-1"))


@pytest.mark.parametrize(
    "make, output, error",
    [
        (lambda p: p.write_bytes("lead_id,company\nL1,Soci\u00e9t\u00e9\n".encode("latin-1")), "scores.csv",
         r"leads.csv: not UTF-8 text, line 2 holds byte e9 .*save the file as UTF-8"),
        (lambda p: p.write_text("\n\n"), "scores.csv", r"leads.csv has no header row"),
        # what European Excel users add for Excel to split the columns: it was read as the header, 'lead_id' missing
        (lambda p: p.write_text("sep=;\nlead_id;created_at\nL1;2024-01-01\n"), "scores.csv",
         r"leads.csv: the first line 'sep=;' is Excel's separator hint, not the header row; delete that line"),
        (lambda p: p.write_text('lead_id,created_at\nL1,2024-01-01\n\n"Leads Report"\n"Acme Corp"\n'), "scores.csv",
         r"leads.csv: its last 2 row\(s\) \(rows 2-3, header not counted\) hold a value in the first column only, "
         r"starting 'Leads Report': a report's footer"),
        (lambda p: pq.write_table(pa.table({"lead_id": pa.array([b"L1", b"\xff\xfe"], pa.binary())}),
                                  p.with_suffix(".parquet")), "scores.csv",
         r"leads.parquet row 2, column 'lead_id': b'\\xff\\xfe' is not UTF-8 text"),
        (lambda p: p.write_text("lead_id\nL1\n"), "folder.csv", r"the output .*folder.csv is a folder"),
        (lambda p: p.write_text("lead_id\nL1\n"), "outputs", r"the output .*outputs is a folder: name a file in it"),
        (lambda p: p.write_text("lead_id\nL1\n"), "leads.csv/scores.csv", r"cannot write .*leads.csv/scores.csv"),
        (lambda p: p.mkdir(), "scores.csv", r"the leads file .*leads.csv is a folder"),
        # a file the parser cannot read (no permission, a disk error: reading /proc/self/mem fails even for
        # root) was the parser's OSError, a traceback
        (lambda p: p.symlink_to("/proc/self/mem"), "scores.csv", r"the leads file .*leads.csv cannot be read: "),
        (lambda p: (p.write_text("lead_id,created_at\nL1,2024-01-01\n"), _latin1_type(p.with_name("acts.csv"))),
         "scores.csv", r"acts.csv: not UTF-8 text, line 3 holds byte e9"),
    ],
    ids=["latin-1 leads", "blank lines", "excel separator hint", "report footer", "parquet bytes", "output is a folder", "output is a folder without suffix",
         "output under a file",
         "input is a folder", "input cannot be read", "latin-1 activities"],
)
def test_a_file_that_cannot_be_read_or_written_is_named_before_anything_is_written(tmp_path, make, output, error):
    make(tmp_path / "leads.csv")
    (tmp_path / "folder.csv").mkdir()
    (tmp_path / "outputs").mkdir()
    source = tmp_path / ("leads.parquet" if (tmp_path / "leads.parquet").exists() else "leads.csv")
    activities = tmp_path / "acts.csv" if (tmp_path / "acts.csv").exists() else None
    before = sorted(tmp_path.rglob("*"))
    scorer = SimpleNamespace(data=DataParams(leads="unused"))  # refused before any lead is scored

    with pytest.raises(ValueError, match=error):
        score_file(scorer, source, tmp_path / output, activities_path=activities, progress=False)
    assert sorted(tmp_path.rglob("*")) == before  # no output, no partial file


@pytest.mark.parametrize("repeated", ["leads", "activities"])
def test_a_csv_naming_a_column_twice_is_refused_before_anything_is_written(tmp_path, repeated):
    """As the export is (ingest.refuse_repeated_columns): pandas read the second 'industry' as 'industry.1', so
    which one was scored was chance."""
    leads, activities = "lead_id;industry;industry\nL1;software;retail\n", "lead_id,occurred_at,activity\n"
    if repeated == "activities":
        leads, activities = "lead_id,industry\nL1,software\n", "lead_id,activity,activity,occurred_at\n"
    (tmp_path / "leads.csv").write_text(leads)
    (tmp_path / "acts.csv").write_text(activities)
    name = "industry" if repeated == "leads" else "activity"
    scorer = SimpleNamespace(data=DataParams(leads="unused"))  # refused before any lead is scored

    with pytest.raises(ValueError, match=rf"{repeated if repeated == 'leads' else 'acts'}.csv: the header names "
                                         rf"'{name}' more than once, so which column is meant is unclear"):
        score_file(scorer, tmp_path / "leads.csv", tmp_path / "scores.csv", activities_path=tmp_path / "acts.csv",
                   progress=False)
    assert not (tmp_path / "scores.csv").exists()


def test_a_parquet_file_naming_a_column_twice_is_refused_before_anything_is_written(tmp_path):
    """Arrow stopped on a bare 'Multiple matches for FieldRef.Name(industry)' traceback; the CSV's rule holds."""
    table = pa.Table.from_arrays([pa.array(["L1"]), pa.array(["software"]), pa.array(["retail"])],
                                 names=["lead_id", "industry", "industry"])
    pq.write_table(table, tmp_path / "leads.parquet")
    scorer = SimpleNamespace(data=DataParams(leads="unused"))  # refused before any lead is scored

    with pytest.raises(ValueError, match=r"leads.parquet: the header names 'industry' more than once"):
        score_file(scorer, tmp_path / "leads.parquet", tmp_path / "scores.csv", progress=False)
    assert not (tmp_path / "scores.csv").exists()


@pytest.mark.parametrize("pandas_metadata", [False, True], ids=["warehouse", "pandas"])
def test_a_parquet_column_of_lists_is_refused_by_name_before_anything_is_written(tmp_path, pandas_metadata):
    """A warehouse's repeated field: the lead id was scored as the text "['L1']" (no CRM matches it back), and under
    pandas' metadata saying the column was text Arrow stopped on a traceback."""
    table = pa.Table.from_pandas(pd.DataFrame({"lead_id": ["L1", "L2"], "industry": ["software", "retail"]}),
                                 preserve_index=False)
    if not pandas_metadata:
        table = table.replace_schema_metadata(None)
    table = table.set_column(0, "lead_id", pa.array([["L1"], ["L2"]]))
    pq.write_table(table, tmp_path / "leads.parquet")
    scorer = SimpleNamespace(data=DataParams(leads="unused"))  # refused before any lead is scored

    with pytest.raises(ValueError, match=r"leads.parquet: column 'lead_id' \(list<element: string>\) holds lists, "
                                         r"records or maps where a CRM column holds one value per row"):
        score_file(scorer, tmp_path / "leads.parquet", tmp_path / "scores.csv", progress=False)
    assert not (tmp_path / "scores.csv").exists()


def test_a_crm_number_column_with_text_in_it_rejects_that_row_and_the_file_still_scores(x_education_csv, tmp_path):
    """X Education's visit count and time on site are number columns of the CRM's own (features.numeric):
    "lots" or "1,234" in one goes to the rejects file with its row and column, like a bad contract number,
    instead of stopping the whole file."""
    raw = pd.read_csv(x_education_csv, **PANDAS_TEXT).head(400)
    raw.to_csv(tmp_path / "export.csv", index=False)
    _, scorer = quick_scorer(load_params(X_EDUCATION, overrides={"data.leads": str(tmp_path / "export.csv")}))
    leads = raw.head(30).copy()
    leads.loc[1, "TotalVisits"] = "lots"
    leads.loc[4, "Total Time Spent on Website"] = "1,234"
    leads.loc[7, "TotalVisits"] = "-3"  # features.non_negative in params.x_education.yaml
    leads.to_csv(tmp_path / "leads.csv", index=False)

    summary = score_file(scorer, tmp_path / "leads.csv", tmp_path / "scores.csv", chunk_size=10, progress=False)

    assert (summary.rows_scored, summary.rows_rejected) == (27, 3)
    assert pd.read_csv(summary.output)["Prospect ID"].tolist() == leads["Prospect ID"].drop(index=[1, 4, 7]).tolist()
    rejects = pd.read_csv(summary.rejects)
    assert rejects["row"].tolist() == [2, 5, 8]
    assert rejects["problems"].tolist() == [
        f"{tmp_path / 'leads.csv'} row 2 (header not counted), column 'TotalVisits' (total_visits): not a number: 'lots'",
        f"{tmp_path / 'leads.csv'} row 5 (header not counted), column 'Total Time Spent on Website' (time_on_website): "
        "ambiguous number '1,234': in a file separated by ',' (where a comma groups thousands, as US Excel writes them, "
        "or is a decimal comma, as some tools quote it) it may be 1234 or 1.234; write it with no thousands separator, "
        "or retrain with data.decimal_mark set to comma or point, as the file writes numbers (the model reads numbers "
        "by the setting it was trained with)",
        f"{tmp_path / 'leads.csv'} row 8 (header not counted), column 'TotalVisits' (total_visits): negative "
        "total_visits '-3' (total_visits counts something: 0 or more)"]


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_a_column_sent_under_its_crm_and_contract_names_scores_where_they_agree_and_rejects_a_row_where_they_differ(
        x_education_csv, tmp_path, suffix):
    """A file carrying X Education's 'Lead Source' and the contract's lead_source beside it was refused whole, while
    the service scores a lead whose two fields agree. Now a lead scores as from the one column where they agree (as
    text, stripped; a blank or 'Select' holds none), and a row where they differ goes to the rejects file naming its
    row, both columns and both values, the other rows scored."""
    raw = pd.read_csv(x_education_csv, **PANDAS_TEXT).head(400)
    raw.to_csv(tmp_path / "export.csv", index=False)
    _, scorer = quick_scorer(load_params(X_EDUCATION, overrides={"data.leads": str(tmp_path / "export.csv")}))
    leads = raw.head(12).reset_index(drop=True)
    leads.to_csv(tmp_path / "one.csv", index=False)
    expected = pd.read_csv(score_file(scorer, tmp_path / "one.csv", tmp_path / "one_scores.csv",
                                      progress=False).output)
    both = leads.assign(lead_source=leads["Lead Source"])
    both.loc[1, "lead_source"] = f"  {leads['Lead Source'][1]} "
    both.loc[2, "Lead Source"], both.loc[3, "lead_source"] = "Select", None
    other = next(v for v in raw["Lead Source"].dropna() if v != leads["Lead Source"][5])
    both.loc[5, "lead_source"] = other
    source = tmp_path / f"leads{suffix}"
    both.to_csv(source, index=False) if suffix == ".csv" else both.to_parquet(source, index=False)

    summary = score_file(scorer, source, tmp_path / "scores.csv", chunk_size=4, progress=False)

    assert (summary.rows_read, summary.rows_scored, summary.rows_rejected) == (12, 11, 1)
    pd.testing.assert_frame_equal(pd.read_csv(summary.output), expected.drop(index=5).reset_index(drop=True))
    rejects = pd.read_csv(summary.rejects, **PANDAS_TEXT)
    assert rejects["row"].tolist() == ["6"]
    assert rejects["problems"].tolist() == [
        f"{source} row 6{' (header not counted)' if suffix == '.csv' else ''}, column 'Lead Source' (lead_source): "
        f"'Lead Source' and 'lead_source' map to one column, lead_source (data.mapping), and hold different values "
        f"('Lead Source': {leads['Lead Source'][5]!r}, 'lead_source': {other!r}): the row is refused rather than one "
        "picked; make them agree, or leave one out (data.drop_columns)"]
    assert rejects[["Lead Source", "lead_source"]].values.tolist() == [[leads["Lead Source"][5], other]]


@pytest.mark.parametrize("blank", ["read", "dropped"])
def test_training_and_batch_scoring_read_a_csv_column_without_a_name_alike(x_education_csv, tmp_path, blank):
    """pandas' to_csv() writes its index under a blank name, as hand-made exports often have it. Training read such a
    column only while data.drop_columns was empty (X Education's is not), batch scoring always, even with "" listed:
    its rejects file carried it, and every column drop_columns lists. Both now read the columns drop_columns does not
    list, a blank-named one as any the mapping does not name."""
    raw = pd.read_csv(x_education_csv, **PANDAS_TEXT).head(400)
    raw.to_csv(tmp_path / "export.csv")  # with the index, under a blank name
    dropped = load_params(X_EDUCATION).data.drop_columns + ([""] if blank == "dropped" else [])
    ts, scorer = quick_scorer(load_params(X_EDUCATION, overrides={"data.leads": str(tmp_path / "export.csv"),
                                                                  "data.drop_columns": dropped}))
    leads = raw.head(30).copy()
    leads.loc[1, "TotalVisits"] = "lots"
    leads.to_csv(tmp_path / "leads.csv")

    summary = score_file(scorer, tmp_path / "leads.csv", tmp_path / "scores.csv", progress=False)

    assert (summary.rows_scored, summary.rows_rejected) == (29, 1)
    rejects = pd.read_csv(summary.rejects, **PANDAS_TEXT)
    read = [name for name in ts.crm.leads_header if name != "Unnamed: 0"]
    assert read == [name for name in raw.columns if name not in dropped]
    assert list(rejects.columns[2:]) == ts.crm.leads_header == (["Unnamed: 0"] if blank == "read" else []) + read
    assert rejects["Unnamed: 0"].tolist() == ["1"] if blank == "read" else "Unnamed: 0" not in rejects


def test_batch_scoring_reads_a_parquet_file_with_columns_without_a_name_as_their_csv(x_education_csv, tmp_path):
    """A query's unnamed expressions reach a Parquet file under blank names, as pandas' index and Excel's empty columns
    reach a CSV: the Parquet file was refused as naming a column twice. Both now score alike, each such column kept
    in the rejects file as 'Unnamed: <its place>'."""
    raw = pd.read_csv(x_education_csv, **PANDAS_TEXT).head(400)
    raw.to_csv(tmp_path / "export.csv", index=False)
    scorer = quick_scorer(load_params(X_EDUCATION, overrides={"data.leads": str(tmp_path / "export.csv")}))[1]
    leads = raw.head(30).copy()
    leads.loc[1, "TotalVisits"] = "lots"
    leads.insert(0, "", [str(i) for i in range(30)])
    leads.insert(5, "Unnamed", ["x"] * 30)  # renamed below: pandas writes no name twice
    names = [name if name != "Unnamed" else "" for name in leads.columns]
    leads.to_csv(tmp_path / "leads.csv", index=False, header=names)
    pq.write_table(pa.Table.from_pandas(leads, preserve_index=False).rename_columns(names), tmp_path / "leads.parquet")

    scored = {fmt: score_file(scorer, tmp_path / f"leads.{fmt}", tmp_path / f"scores_{fmt}.csv", progress=False)
              for fmt in ("csv", "parquet")}

    assert [(s.rows_scored, s.rows_rejected) for s in scored.values()] == [(29, 1)] * 2
    pd.testing.assert_frame_equal(pd.read_csv(scored["parquet"].output), pd.read_csv(scored["csv"].output))
    rejects = {fmt: pd.read_csv(s.rejects, **PANDAS_TEXT).drop(columns="problems") for fmt, s in scored.items()}
    pd.testing.assert_frame_equal(rejects["parquet"], rejects["csv"])
    assert rejects["csv"][["Unnamed: 0", "Unnamed: 5"]].values.tolist() == [["1", "x"]]


def test_training_batch_scoring_and_the_service_read_a_lead_of_a_csv_alike(x_education_csv, tmp_path):
    """Training let pandas type a CSV's columns, batch scoring read every cell as the CRM's text: a plan code the
    export writes "3.0" in a column of numbers was the category "3" in training and "3.0", never seen, in batch
    scoring; and TotalVisits "-1.0", which data.missing_values lists, was -1 visits in training (refused as
    negative) but not known in batch scoring. A lead now has the same features from the training export, from a
    scored file and from a request sending its cells."""
    raw = pd.read_csv(x_education_csv, **PANDAS_TEXT).head(400)
    raw["Plan"] = np.resize(["1.0", "2.0", "3.0"], len(raw))  # a picklist's codes, written as numbers
    raw.loc[::7, "TotalVisits"] = "-1.0"
    raw.to_csv(tmp_path / "export.csv", index=False)
    shipped = load_params(X_EDUCATION)
    params = load_params(X_EDUCATION, overrides={
        "data.leads": str(tmp_path / "export.csv"), "data.mapping.leads.Plan": "plan",
        "data.missing_values": [*shipped.data.missing_values, "-1.0"],
        "features.categorical": [*shipped.features.categorical, "plan"], "features.phrases.plan": "Plan {value}"})
    ts, scorer = quick_scorer(params)
    leads = raw.head(30)
    ids = pd.Index(leads["Prospect ID"], name="lead_id")
    trained = model_features(scorer, ts, ids)
    assert trained["plan"].tolist() == leads["Plan"].tolist()
    assert trained["total_visits"].isna().tolist() == (leads["TotalVisits"].isna() | (leads["TotalVisits"] == "-1.0")).tolist()

    sent = leads.astype(object).where(leads.notna(), None).to_dict("records")  # each cell as the CRM sends it
    served, problems, _ = scorer.build(request_frames(sent, [None] * len(sent), params.data).leads, audience=API_CLIENT)
    assert problems == []
    pd.testing.assert_frame_equal(served, trained)

    leads.to_csv(tmp_path / "leads.csv", index=False)
    summary = score_file(scorer, tmp_path / "leads.csv", tmp_path / "scores.csv", progress=False)
    batch = pd.read_csv(summary.output).set_index("Prospect ID")["probability"]
    assert summary.rows_rejected == 0
    np.testing.assert_allclose(batch.loc[ids], scorer.predict_proba(trained), rtol=1e-9)


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_batch_scores_name_their_ids_as_the_export_does_for_the_crm_to_import_them_back(x_education_csv, tmp_path, suffix):
    """A RevOps importing X Education's scores back into the CRM matches them on its 'Prospect ID': the scores file
    said lead_id, to rename before every import, beside a rejects file and never_seen under the export's names. A
    file naming its ids lead_id (the contract's name, the demo's) keeps it; an empty file gets the export's too."""
    raw = pd.read_csv(x_education_csv, **PANDAS_TEXT).head(400)
    raw.to_csv(tmp_path / "export.csv", index=False)
    _, scorer = quick_scorer(load_params(X_EDUCATION, overrides={"data.leads": str(tmp_path / "export.csv")}))
    leads = raw.head(20)
    leads.to_csv(tmp_path / "leads.csv", index=False)
    leads.head(0).to_csv(tmp_path / "none.csv", index=False)
    leads.rename(columns={"Prospect ID": "lead_id"}).to_csv(tmp_path / "contract.csv", index=False)

    def written(source: str) -> pd.DataFrame:
        output = score_file(scorer, tmp_path / source, tmp_path / f"{Path(source).stem}_scores{suffix}",
                            progress=False).output
        return pd.read_csv(output, dtype=str) if suffix == ".csv" else pd.read_parquet(output)

    scores = written("leads.csv")
    assert scores.columns[0] == "Prospect ID" and "lead_id" not in scores
    assert scores["Prospect ID"].tolist() == leads["Prospect ID"].tolist()
    assert written("none.csv").columns[0] == "Prospect ID"
    contract = written("contract.csv")
    assert contract.columns[0] == "lead_id" and contract["lead_id"].tolist() == leads["Prospect ID"].tolist()


def plan_export(x_education_csv, tmp_path, written: list[str]):
    """400 leads of the X Education export with a picklist code "Plan" its converted leads have (as the export
    writes it, `written` in turn), the others "1.0"; a model trained on it (`quick_scorer` with LightGBM)."""
    raw = pd.read_csv(x_education_csv, **PANDAS_TEXT).head(400)
    converted = np.flatnonzero(raw["Converted"] == "1")
    raw["Plan"] = "1.0"
    raw.loc[converted, "Plan"] = np.resize(written, len(converted))
    raw.to_csv(tmp_path / "export.csv", index=False)
    shipped = load_params(X_EDUCATION)
    params = load_params(X_EDUCATION, overrides={
        "data.leads": str(tmp_path / "export.csv"), "data.mapping.leads.Plan": "plan",
        "features.categorical": [*shipped.features.categorical, "plan"], "features.phrases.plan": "Plan {value}"})
    return raw, params, quick_scorer(params, booster=True)[1]


def scored_as_sent(scorer, params, lead: dict, plans: list, tmp_path,
                   field: str = "Plan") -> tuple[pd.Series, pd.Series, object]:
    """The lead with each of `plans` as its `field`: probabilities as the service scores each request of one lead
    (`request_frames`, JSON values) and as `score_file` scores a CSV of them (text), and that run's summary."""
    served = []
    for plan in plans:
        features, problems, _ = scorer.build(request_frames([{**lead, field: plan}], [None], params.data).leads,
                                             audience=API_CLIENT)
        assert problems == []
        served.append(scorer.predict_proba(features)[0])
    rows = pd.DataFrame([{**lead, "Prospect ID": f"L{i}", field: plan} for i, plan in enumerate(plans)])
    rows.to_csv(tmp_path / "leads.csv", index=False)
    summary = score_file(scorer, tmp_path / "leads.csv", tmp_path / "scores.csv", progress=False)
    return pd.Series(served, index=plans), pd.read_csv(summary.output)["probability"].set_axis(plans), summary


@pytest.mark.parametrize("trained", ["3.0", "3"])
def test_a_code_sent_as_another_spelling_of_the_number_training_read_scores_as_that_level(x_education_csv, tmp_path,
                                                                                           trained):
    """Training reads an export's cells as text: codes written "3.0" (Excel, many CRMs) are the level "3.0". The
    service's JSON 3 or 3.0, a Parquet or SQL number and a re-export all write "3" (ingest.as_plain_text), which was
    a value never seen: the lead scored as __other__ and was reported as new. A value never seen that is the number
    of exactly one known level is now that level, either way round, in the score and in the factor's words."""
    raw, params, scorer = plan_export(x_education_csv, tmp_path, [trained])
    lead = raw[raw["Converted"] == "0"].iloc[0].astype(object).where(lambda v: v.notna(), None).to_dict()
    plans = ["3.0", "3", 3, 3.0, " 3.00 "] if trained == "3.0" else ["3", "3.0", 3, 3.0, "3e0"]
    sent = lead | {"Plan": trained}

    served, batch, summary = scored_as_sent(scorer, params, sent, plans, tmp_path)

    np.testing.assert_allclose(served, served.iloc[0], rtol=1e-12)
    np.testing.assert_allclose(batch, served.iloc[0], rtol=1e-9)
    assert summary.unseen_values == {}  # no Plan value is reported as new
    features, _, _ = scorer.build(request_frames([{**lead, "Plan": 3}], [None], params.data).leads, audience=API_CLIENT)
    plan = next(f for f in explain(scorer, features)[0].factors if f.signal == "plan")
    assert (plan.phrase, plan.value) == (f"Plan {trained}", trained)  # what the model used, not a rare value's words


def test_a_champion_compared_on_a_re_export_writing_its_codes_another_way_reads_the_levels_it_trained_on(
        x_education_csv, tmp_path):
    """Retrain and the audit score the champion on the newest export's rows (`model_features`), and monitor rebuilds
    the leads it scored from it: a re-export writing the "3.0" training read as "3" must be read as serving reads it,
    or the champion is judged on __other__ and "3" reported as new while the service scores it as "3.0"."""
    raw, params, scorer = plan_export(x_education_csv, tmp_path, ["3.0"])
    training_set = assemble(params)
    trained = model_features(scorer, training_set, training_set.features.index)
    raw["Plan"] = raw["Plan"].str.removesuffix(".0")  # the same codes, re-exported as "1" and "3"
    raw.to_csv(tmp_path / "re-export.csv", index=False)
    re_export = assemble(params.model_copy(update={"data": params.data.model_copy(update={
        "leads": str(tmp_path / "re-export.csv")})}))

    compared = model_features(scorer, re_export, trained.index)

    assert set(compared["plan"]) == {"1.0", "3.0"}
    np.testing.assert_allclose(scorer.predict_proba(compared), scorer.predict_proba(trained), rtol=1e-12)
    assert scorer.unseen_values(compared) == {}


def test_a_number_two_known_levels_write_or_none_does_stays_a_value_never_seen(x_education_csv, tmp_path):
    """Training saw "3" and "3.0": "3.00" is either, so neither is guessed; "4" is none. Both score as a value never
    seen ("9"), and batch scoring reports them as new."""
    raw, params, scorer = plan_export(x_education_csv, tmp_path, ["3", "3.0"])
    lead = raw[raw["Converted"] == "0"].iloc[0].astype(object).where(lambda v: v.notna(), None).to_dict()

    served, batch, summary = scored_as_sent(scorer, params, lead, ["9", "3.00", 4, "4.0"], tmp_path)

    np.testing.assert_allclose(served, served.iloc[0], rtol=1e-12)
    np.testing.assert_allclose(batch, served.iloc[0], rtol=1e-9)
    assert summary.unseen_values == {"Plan": {"9": 1, "3.00": 1, "4": 1, "4.0": 1}}


@pytest.mark.parametrize("trained", [("t", "f"), ("true", "false")], ids=["psql-csv", "database"])
def test_a_yes_no_field_trained_on_one_spelling_of_true_false_scores_the_other_as_it(x_education_csv, tmp_path,
                                                                                     trained):
    """PostgreSQL writes a boolean as t/f in its CSV export (`\\copy ... CSV`), where a database read, a Parquet file
    and JSON give true/false: a model trained on the one scored the other as a value never seen (__other__, reported
    as new). In a field whose training values are all true/false, either spelling is now the level training read."""
    raw = pd.read_csv(x_education_csv, **PANDAS_TEXT).head(400)
    raw["Do Not Email"] = np.where((raw["Converted"] == "1") == (np.arange(len(raw)) % 4 > 0), *trained)  # a signal
    raw.to_csv(tmp_path / "export.csv", index=False)
    params = load_params(X_EDUCATION, overrides={"data.leads": str(tmp_path / "export.csv")})
    scorer = quick_scorer(params, booster=True)[1]
    lead = raw[raw["Converted"] == "0"].iloc[0].astype(object).where(lambda v: v.notna(), None).to_dict()

    probability = {}
    for value, others in ((trained[0], ["t", "true", True, "TRUE", " T "]), (trained[1], ["f", "false", False])):
        served, batch, summary = scored_as_sent(scorer, params, lead | {"Do Not Email": value}, [value, *others],
                                                tmp_path, "Do Not Email")

        np.testing.assert_allclose(served, served.iloc[0], rtol=1e-12)
        np.testing.assert_allclose(batch, served.iloc[0], rtol=1e-9)
        assert summary.unseen_values == {}
        probability[value] = served.iloc[0]
    assert probability[trained[0]] != probability[trained[1]]  # the field tells leads apart: the checks can fail


def test_a_yes_no_field_reads_alike_from_csv_text_a_parquet_boolean_and_json_true(tmp_path):
    """A warehouse exports a CRM's yes/no field as a Parquet boolean, a CSV export of the same leads writes it
    "True"/"False", an integration sends JSON true/false. In a text field the model reads as a category (here the
    campaign field holds whether the lead came from a campaign) training refused the Parquet boolean and the service
    the JSON one, while batch scoring read the Parquet one as the text "True": a lead now trains, and scores, the
    same whichever way it comes, true/false being one of the levels training learned."""
    tables = generate_crm(1500, seed=3)
    leads = tables["leads"]
    campaign_member = leads["campaign"].notna().astype(object)
    campaign_member[leads.index[::50]] = None  # not answered: a NULL in Parquet, an empty CSV cell, JSON null
    tables["leads"] = leads.assign(campaign=campaign_member)
    for fmt in ("csv", "parquet"):
        write_crm(tables, tmp_path / fmt, fmt)
    assert pq.read_schema(tmp_path / "parquet" / "leads.parquet").field("campaign").type == pa.bool_()
    assert set(pd.read_csv(tmp_path / "csv" / "leads.csv", **PANDAS_TEXT)["campaign"].dropna()) == {"True", "False"}

    def params(fmt: str):
        return load_params(PROJECT_ROOT / "params.yaml", overrides={
            f"data.{table}": str(tmp_path / fmt / f"{table}.{fmt}") for table in ("leads", "activities", "outcomes")})

    from_csv, scorer = quick_scorer(params("csv"))
    from_parquet = assemble(params("parquet"))
    pd.testing.assert_frame_equal(from_parquet.features, from_csv.features)
    assert np.asarray(from_parquet.y).tolist() == np.asarray(from_csv.y).tolist()
    assert {"true", "false"} <= set(from_csv.features["campaign"].dropna())

    as_of = pd.Timestamp("2026-01-01")
    scored = tables["leads"].tail(40)
    scored.to_parquet(tmp_path / "scored.parquet", index=False)
    scored.to_csv(tmp_path / "scored.csv", index=False)
    sent = scored.astype(object).where(scored.notna(), None).to_dict("records")  # JSON true/false/null
    for lead in sent:
        lead["created_at"] = lead["created_at"].isoformat()
    served, problems, ages = scorer.build(request_frames(sent, [None] * len(sent), scorer.data).leads, as_of=as_of,
                                          audience=API_CLIENT)
    assert problems == [] and set(served["campaign"].dropna()) == {"true", "false"}
    for name in ("scored.parquet", "scored.csv"):
        summary = score_file(scorer, tmp_path / name, tmp_path / "scores.csv", as_of=as_of, progress=False)
        assert summary.rows_rejected == 0
        batch = pd.read_csv(summary.output).set_index("lead_id")["probability"]
        np.testing.assert_allclose(batch.loc[served.index], scorer.predict_proba(served, ages), rtol=1e-9)


def test_batch_scoring_reads_a_us_excel_files_thousands_separators_as_training_did(tmp_path):
    """US Excel writes a headcount of 12500 as "12,500" in a ',' file: with data.decimal_mark: point (kept with the
    model's params) training read it as 12500 and batch scoring scores it as the lead written 12500; under auto it may
    be 12.5, so scoring refuses its row as training does, naming data.decimal_mark."""
    write_crm(generate_crm(800, seed=5), tmp_path)
    plain = pd.read_csv(tmp_path / "leads.csv", **PANDAS_TEXT)
    plain.to_csv(tmp_path / "plain.csv", index=False)
    grouped = plain.assign(employees=plain["employees"].map(lambda v: f"{int(v):,}", na_action="ignore"))
    grouped.to_csv(tmp_path / "leads.csv", index=False)
    thousands = grouped["employees"].str.contains(",", na=False)
    assert 0 < thousands.sum() < len(grouped)
    params = load_params(PROJECT_ROOT / "params.yaml", overrides={
        **{f"data.{table}": str(tmp_path / f"{table}.csv") for table in ("leads", "activities", "outcomes")},
        "data.decimal_mark": "point"})
    ts, scorer = quick_scorer(params)
    read = ts.crm.leads.set_index("lead_id")["employees"]
    assert read.equals(pd.to_numeric(plain.set_index("lead_id")["employees"]).astype("float64")[read.index])
    as_of = pd.Timestamp("2026-01-01")

    def scored(path: Path, reader: LeadScorer):
        return score_file(reader, path, path.with_suffix(".scores.csv"), as_of=as_of, progress=False)

    summary = scored(tmp_path / "leads.csv", scorer)
    assert summary.rows_rejected == 0
    pd.testing.assert_frame_equal(pd.read_csv(summary.output),
                                  pd.read_csv(scored(tmp_path / "plain.csv", scorer).output))
    auto = dataclasses.replace(scorer, data=params.data.model_copy(update={"decimal_mark": "auto"}))
    rejects = pd.read_csv(scored(tmp_path / "leads.csv", auto).rejects)
    assert rejects["row"].tolist() == (np.flatnonzero(thousands) + 1).tolist()
    advice = r"ambiguous number '\d+,\d{3}': .* retrain with data\.decimal_mark set"  # params.yaml is not read
    assert rejects["problems"].str.contains(advice).all()


def test_true_false_in_a_number_field_is_refused_alike_by_training_batch_scoring_and_the_service(tmp_path):
    """A headcount is no yes/no (a count of True is not 1): training and the service refused a Parquet or JSON boolean
    in a number field as "not a number: True", but batch scoring read the Parquet one as the text "True" and named it
    'True', a CSV cell it was never sent as. Each path now refuses that row alike, naming column and row."""
    tables = generate_crm(800, seed=5)
    write_crm(tables, tmp_path / "csv")
    params = load_params(PROJECT_ROOT / "params.yaml", overrides={
        f"data.{table}": str(tmp_path / "csv" / f"{table}.csv") for table in ("leads", "activities", "outcomes")})
    _, scorer = quick_scorer(params)
    typed = tables["leads"].head(30).assign(employees=[None, True, *[None] * 28])  # a NULL is not known
    typed.to_parquet(tmp_path / "leads.parquet", index=False)
    assert pq.read_schema(tmp_path / "leads.parquet").field("employees").type == pa.bool_()
    expected = "row 2, column 'employees': not a number: True"

    training = params.model_copy(update={"data": params.data.model_copy(update={
        "leads": str(tmp_path / "leads.parquet"), "on_error": "drop"})})
    refused = [str(p) for p in load_crm(training).report.problems if p.kind == "bad_number"]
    as_of = pd.Timestamp("2026-01-01")
    summary = score_file(scorer, tmp_path / "leads.parquet", tmp_path / "scores.csv", as_of=as_of, progress=False)
    rejects = pd.read_csv(summary.rejects)["problems"].tolist()
    sent = typed.astype(object).where(typed.notna(), None).to_dict("records")
    for lead in sent:
        lead["created_at"] = lead["created_at"].isoformat()
    _, problems, _ = scorer.build(request_frames(sent, [None] * len(sent), scorer.data).leads, as_of=as_of,
                                  audience=API_CLIENT)

    assert refused == rejects == [f"{tmp_path / 'leads.parquet'} {expected}"]
    assert [str(p) for p in problems] == [f"request {expected}"]
    assert summary.rows_scored == 29


def test_a_parquet_duration_in_a_number_field_is_refused_alike_by_training_and_batch_scoring(tmp_path):
    """A warehouse's duration (time to first reply) in a number field is no number: training refused its row saying how
    to export it as one, but batch scoring read the Parquet duration as the text '3 days 00:00:00' and refused it
    without the hint. Both now refuse it in the same words (ingest's one message for a duration)."""
    tables = generate_crm(800, seed=5)
    write_crm(tables, tmp_path / "csv")
    params = load_params(PROJECT_ROOT / "params.yaml", overrides={
        f"data.{table}": str(tmp_path / "csv" / f"{table}.csv") for table in ("leads", "activities", "outcomes")})
    _, scorer = quick_scorer(params)
    typed = tables["leads"].head(30).assign(employees=[None, pd.Timedelta(days=3), *[None] * 28])
    typed.to_parquet(tmp_path / "leads.parquet", index=False)
    assert pa.types.is_duration(pq.read_schema(tmp_path / "leads.parquet").field("employees").type)

    training = params.model_copy(update={"data": params.data.model_copy(update={
        "leads": str(tmp_path / "leads.parquet"), "on_error": "drop"})})
    refused = [str(p) for p in load_crm(training).report.problems if p.kind == "bad_number"]
    summary = score_file(scorer, tmp_path / "leads.parquet", tmp_path / "scores.csv", as_of=pd.Timestamp("2026-01-01"),
                         progress=False)

    assert refused == pd.read_csv(summary.rejects)["problems"].tolist() == [
        f"{tmp_path / 'leads.parquet'} row 2, column 'employees': not a number: '3 days 00:00:00' (a duration: export "
        """it as a number, e.g. of days; with data.sql_url, PostgreSQL's EXTRACT(EPOCH FROM "employees") / 86400 AS """
        '"employees")']
    assert summary.rows_scored == 29
