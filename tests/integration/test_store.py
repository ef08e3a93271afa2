"""The score log and feedback store the service writes and retraining/monitoring read."""

from __future__ import annotations

import hashlib
import logging
import threading
from datetime import datetime

import pandas as pd
import pytest
import sqlalchemy as sa

from pipelines.contract import OUTCOMES
from serving.store import FEEDBACK, FeedbackConflict, Store, email_sha256, utc_naive


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request, tmp_path) -> str:
    """A store's URL on each backend the docs promise: a SQLite file, and a database on a real PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'store.db'}"
    return request.getfixturevalue("postgres").database()


@pytest.fixture()
def store(store_url) -> Store:
    return Store(store_url)


def _event(event_id: str, lead_id: str = "L1", **values) -> dict:
    return {"event_id": event_id, "lead_id": lead_id, "status": "rejected", "reason": "no_budget",
            "decided_at": "2025-03-01T10:00:00Z", **values}


def _scores(lead_ids: list[str], **values) -> pd.DataFrame:
    n = len(lead_ids)
    frame = pd.DataFrame({
        "lead_id": lead_ids, "model_name": "leadscore", "model_version": "3", "probability": [0.4] * n,
        "score": [40] * n, "tier": ["A"] * n, "likely_rejection_reason": ["no_budget"] * n,
        "factors": [[{"signal": "demo_request", "phrase": "Requested a demo", "value": "1", "contribution": 0.8, "points": 12.0}]] * n,
        "email_sha256": [None] * n,
    })
    return frame.assign(**values)


def test_feedback_is_idempotent_on_event_id(store):
    assert store.add_feedback(_event("e1")) is True
    assert store.add_feedback(_event("e1", decided_at="2025-03-01T11:00:00+01:00")) is False  # the same instant
    assert store.feedback_frame()["event_id"].tolist() == ["e1"]


def test_an_event_id_sent_again_with_another_decision_is_refused_and_the_stored_one_kept(store):
    store.add_feedback(_event("e1"))
    with pytest.raises(FeedbackConflict, match="'e1' is already stored with a different status, reason") as err:
        store.add_feedback(_event("e1", status="converted", reason=None))
    assert {d["field"]: d["msg"] for d in err.value.detail}["status"] == 'stored "rejected", sent "converted"'
    frame = store.feedback_frame()
    assert frame[["event_id", "status", "reason"]].values.tolist() == [["e1", "rejected", "no_budget"]]


def test_a_conflict_names_each_value_as_json_writes_it_not_as_python_does(store):
    """The CRM integrator reads the 409 in JSON's terms: null, not None; a date as ISO text, not datetime.datetime(...)."""
    store.add_feedback(_event("e1"))
    with pytest.raises(FeedbackConflict) as err:
        store.add_feedback(_event("e1", reason=None, decided_at="2025-03-02T09:30:00Z"))
    msgs = {d["field"]: d["msg"] for d in err.value.detail}
    assert msgs["reason"] == 'stored "no_budget", sent null'
    assert msgs["decided_at"] == 'stored "2025-03-01T10:00:00Z", sent "2025-03-02T09:30:00Z"'


@pytest.mark.parametrize("decided_at", ["0001-01-01T00:00:00Z", "1969-12-31T23:59:59Z", "2099-01-01"])
def test_feedback_with_an_impossible_decision_date_is_refused(store, decided_at):
    with pytest.raises(ValueError, match="feedback event 'e1': decided_at"):
        store.add_feedback(_event("e1", decided_at=decided_at))
    assert store.feedback_frame().empty


@pytest.mark.parametrize("value", ["9999-12-31T23:59:59-05:00", "0001-01-01T00:00:00Z", "2500-01-01"])
def test_utc_naive_refuses_dates_out_of_range_saying_which(value):
    with pytest.raises(ValueError, match=rf"date '{value}' is out of range: dates must fall between 1677-09-22 and 2262"):
        utc_naive(value)


def test_stored_events_with_impossible_dates_are_left_out_of_the_outcomes_with_a_warning(store, caplog):
    """Rows an older version stored unchecked: a year-1 date crashed labelling, a 2099 one won forever."""
    received = datetime(2026, 11, 25)
    legacy = [("p1", "L1", datetime(1, 1, 1)), ("p2", "L2", datetime(2099, 1, 1))]
    with store.engine.begin() as conn:
        conn.execute(FEEDBACK.insert(), [{"event_id": e, "lead_id": lead, "status": "converted", "reason": None,
                                          "decided_at": d, "amount": None, "received_at": received}
                                         for e, lead, d in legacy])
    store.add_feedback(_event("e1", "L2", decided_at="2025-03-01"))
    with caplog.at_level(logging.WARNING, logger="serving.store"):
        outcomes = store.export_outcomes()
    assert outcomes[["lead_id", "status"]].values.tolist() == [["L2", "rejected"]]
    assert "left out 2 feedback event(s) with an impossible decided_at" in caplog.text
    assert "event 'p1' (lead 'L1', decided_at 0001-01-01 00:00:00)" in caplog.text
    assert "event 'p2' (lead 'L2', decided_at 2099-01-01 00:00:00)" in caplog.text
    assert sorted(store.feedback_frame()["event_id"]) == ["e1", "p1", "p2"]  # kept, to be corrected


def test_feedback_survives_reopening_the_store(store_url):
    url = store_url
    Store(url).add_feedback(_event("e1"))
    assert Store(url).feedback_frame()["event_id"].tolist() == ["e1"]


def test_dates_are_stored_as_naive_utc(store):
    store.add_feedback(_event("e1", decided_at="2025-03-01T12:00:00+02:00"))
    assert store.feedback_frame()["decided_at"].iloc[0] == pd.Timestamp("2025-03-01 10:00:00")


def test_export_outcomes_keeps_the_latest_decision_per_lead_in_contract_columns(store):
    store.add_feedback(_event("e1", "L1", status="nurture", reason=None, decided_at="2025-03-01"))
    store.add_feedback(_event("e2", "L1", status="converted", reason=None, decided_at="2025-04-01", amount=1200.0))
    store.add_feedback(_event("e3", "L2", decided_at="2025-02-01"))
    store.add_feedback(_event("e0", "L1", status="rejected", decided_at="2025-01-01"))  # arrives late, decided earlier
    outcomes = store.export_outcomes().set_index("lead_id")
    assert list(store.export_outcomes().columns) == list(OUTCOMES.columns)
    assert outcomes.loc["L1", "status"] == "converted" and outcomes.loc["L1", "amount"] == 1200.0
    assert outcomes.loc["L2", "reason"] == "no_budget"
    assert len(outcomes) == 2


def test_empty_store_returns_typed_empty_frames(store):
    outcomes = store.export_outcomes()
    assert len(outcomes) == 0 and list(outcomes.columns) == list(OUTCOMES.columns)
    assert str(outcomes["decided_at"].dtype).startswith("datetime64")
    assert len(store.score_log_frame()) == 0
    assert store.latest_score("nobody") is None


def test_latest_score_is_the_most_recent_with_its_factors(store):
    store.log_scores(_scores(["L1"], score=[20], scored_at=pd.Timestamp("2025-01-01")))
    store.log_scores(_scores(["L1", "L2"], score=[55, 10], scored_at=pd.Timestamp("2025-02-01")))
    latest = store.latest_score("L1")
    assert latest["score"] == 55
    assert latest["factors"][0]["phrase"] == "Requested a demo"


def test_score_log_since_filters_by_time(store):
    store.log_scores(_scores(["L1"], scored_at=pd.Timestamp("2025-01-01")))
    store.log_scores(_scores(["L2"], scored_at=pd.Timestamp("2025-03-01")))
    assert store.score_log_frame(since=pd.Timestamp("2025-02-01", tz="UTC"))["lead_id"].tolist() == ["L2"]


def test_score_log_refuses_a_raw_email(store):
    with pytest.raises(ValueError, match="email_sha256"):
        store.log_scores(_scores(["L1"], email=["ana@example.com"]))


def test_email_hash_ignores_case_and_whitespace_and_keeps_missing():
    hashed = email_sha256(pd.Series([" Ana@Acme.com", "ana@acme.com", "john@john.com", None, "", "test", "x@x",
                                     "test@test.com", "None@None.com", "a@a.com", "x@example.com", "ana@acme.invalid"],
                                    dtype=object))
    assert hashed.iloc[0] == hashed.iloc[1] == hashlib.sha256(b"ana@acme.com").hexdigest()
    assert hashed.iloc[2] == hashlib.sha256(b"john@john.com").hexdigest()  # a personal domain is an address
    assert hashed.iloc[3:].isna().all()  # a CRM's placeholder is no one's address: nothing forget could find them by


def test_export_outcomes_command_writes_a_table_ingest_accepts(store, tmp_path, sample_params):
    from typer.testing import CliRunner

    from pipelines.cli import app
    from pipelines.ingest import prepare_table, read_source
    from serving.local_server import params_file

    store.add_feedback(_event("e1", "L1"))
    store.add_feedback(_event("e2", "L2", status="converted", reason=None, amount=900.0))
    params = params_file(sample_params, tmp_path / "params.yaml", {"serving.store_url": store.url})
    out = tmp_path / "exported" / "outcomes.csv"
    result = CliRunner().invoke(app, ["export-outcomes", "--params", str(params), "--output", str(out)])
    assert result.exit_code == 0, result.output
    outcomes, problems = prepare_table(read_source(str(out), sample_params.data, tmp_path)[0], "outcomes",
                                       sample_params.data)
    assert not problems
    assert outcomes.set_index("lead_id").loc["L2", "status"] == "converted"


def test_export_outcomes_never_replaces_the_crm_exports_outcomes(store, tmp_path, sample_params):
    """Retrain merges the feedback with the export; writing the feedback over data.outcomes would lose
    the closed-loop history it holds."""
    from typer.testing import CliRunner

    from pipelines.cli import app
    from serving.local_server import params_file

    store.add_feedback(_event("e1", "L1"))
    params = params_file(sample_params, tmp_path / "params.yaml", {"serving.store_url": store.url})
    history = sample_params.resolve(sample_params.data.outcomes)
    before = history.read_bytes()
    result = CliRunner().invoke(app, ["export-outcomes", "--params", str(params), "--output", str(history)])
    assert result.exit_code == 1
    assert "is the CRM export's data.outcomes file: writing it would destroy" in result.output
    assert history.read_bytes() == before


def _forget(store: Store, sample_params, tmp_path, *args: str, command: str = "forget", settings: dict | None = None):
    """`leadscore forget ARGS` (or another `command`) on `store`, as the privacy officer runs it."""
    from typer.testing import CliRunner

    from pipelines.cli import app
    from serving.local_server import params_file

    params = params_file(sample_params, tmp_path / "params.yaml", {"serving.store_url": store.url, **(settings or {})})
    result = CliRunner().invoke(app, [command, "--params", str(params), *args])
    assert result.exit_code == 0, result.output
    return result.output


ANA, BOB = "00Q5eANA", "00Q5eBOB"  # distinct enough not to be found by chance in a database file's bytes


def _two_leads(store: Store) -> None:
    """Ana's lead (scored twice, once with her e-mail) and someone else's, Bob's, each with a decision."""
    store.log_scores(_scores([ANA, ANA, BOB], email_sha256=email_sha256(pd.Series(
        [" Ana.Ruiz@Acme.com", None, "bob@acme.com"], dtype=object))))
    store.add_feedback(_event("e1", ANA))
    store.add_feedback(_event("e2", BOB, status="converted", reason=None, amount=900.0))


def test_forget_deletes_a_leads_scores_and_decisions_and_no_other_leads(store, tmp_path, sample_params):
    _two_leads(store)
    other_scores, other_feedback = store.score_log_frame().iloc[[2]], store.feedback_frame().iloc[[1]]
    output = _forget(store, sample_params, tmp_path, "--lead-id", ANA)
    assert "score_log: deleted 2 row(s)" in output and "feedback: deleted 1 row(s)" in output
    assert "`leadscore retrain` trains one without it" in output  # what it leaves, and how to drop it there
    assert "logs naming the lead: retrain's warning" in output
    assert store.latest_score(ANA) is None
    pd.testing.assert_frame_equal(store.score_log_frame(), other_scores.reset_index(drop=True))
    pd.testing.assert_frame_equal(store.feedback_frame(), other_feedback.reset_index(drop=True))


def test_forget_by_email_finds_the_lead_through_its_hash_whatever_the_case_and_blanks(store, tmp_path, sample_params):
    """The erasure request names a person by e-mail; feedback, which holds none, goes too, by the lead it names."""
    _two_leads(store)
    output = _forget(store, sample_params, tmp_path, "--email", "ana.ruiz@ACME.com  ")
    assert "e-mail 'ana.ruiz@ACME.com  ': lead(s) 00Q5eANA (by its email_sha256 in score_log)" in output
    assert "score_log: deleted 2 row(s)" in output and "feedback: deleted 1 row(s)" in output
    assert store.score_log_frame()["lead_id"].tolist() == [BOB]
    assert store.feedback_frame()["lead_id"].tolist() == [BOB]


def test_forget_dry_run_counts_the_rows_and_deletes_none(store, tmp_path, sample_params):
    _two_leads(store)
    scores, feedback = store.score_log_frame(), store.feedback_frame()
    output = _forget(store, sample_params, tmp_path, "--lead-id", ANA, "--email", "bob@acme.com", "--dry-run")
    assert "(dry run: nothing deleted)" in output
    assert "score_log: would delete 3 row(s)" in output and "feedback: would delete 2 row(s)" in output
    pd.testing.assert_frame_equal(store.score_log_frame(), scores)
    pd.testing.assert_frame_equal(store.feedback_frame(), feedback)


def test_forget_of_a_lead_the_store_does_not_hold_deletes_nothing_and_says_so(store, tmp_path, sample_params):
    _two_leads(store)
    output = _forget(store, sample_params, tmp_path, "--lead-id", "00Q5eNONE", "--email", "eve@acme.com")
    assert "lead id '00Q5eNONE': no row in the store, nothing to delete" in output
    assert "e-mail 'eve@acme.com': no score carries its hash, nothing to delete" in output
    assert "score_log: deleted 0 row(s)" in output and "feedback: deleted 0 row(s)" in output
    assert len(store.score_log_frame()) == 3 and len(store.feedback_frame()) == 2


def test_forget_refuses_a_placeholder_email_many_leads_share(store, tmp_path, sample_params):
    """A CRM writes "test" for people who gave no address; an earlier version logged its hash for each of them."""
    from typer.testing import CliRunner

    from pipelines.cli import app
    from serving.local_server import params_file

    store.log_scores(_scores([ANA, BOB], email_sha256=[hashlib.sha256(b"test").hexdigest()] * 2))
    store.log_scores(_scores([ANA, BOB], email_sha256=[hashlib.sha256(b"test@test.com").hexdigest()] * 2))
    params = params_file(sample_params, tmp_path / "params.yaml", {"serving.store_url": store.url})
    for placeholder in ("Test ", "Test@Test.com", "x@example.com"):
        result = CliRunner().invoke(app, ["forget", "--params", str(params), "--email", placeholder])
        assert result.exit_code == 1
        assert f"e-mail {placeholder!r} is no address (local@domain.tld) or a placeholder" in result.output
        assert "name the lead by its id (--lead-id). Nothing was deleted." in result.output
    assert store.score_log_frame()["lead_id"].tolist() == [ANA, BOB, ANA, BOB]


def test_forget_leaves_no_copy_of_the_lead_in_the_sqlite_files(tmp_path, sample_params):
    """Deleted rows stay in SQLite's free pages, and the write-ahead log keeps them as written, unless zeroed and
    checkpointed: the erased lead could be read back from the file."""
    store = Store(f"sqlite:///{tmp_path / 'store.db'}")
    _two_leads(store)
    _forget(store, sample_params, tmp_path, "--lead-id", ANA)
    files = [path.read_bytes() for path in tmp_path.glob("store.db*")]
    her_hash = hashlib.sha256(b"ana.ruiz@acme.com").hexdigest().encode()
    assert not [data for data in files if b"00Q5eANA" in data or her_hash in data]
    assert [data for data in files if b"00Q5eBOB" in data]


def test_forget_while_a_reader_holds_the_sqlite_log_deletes_and_says_the_log_still_holds_copies(tmp_path, sample_params):
    """The service reading at that moment keeps the write-ahead log from being emptied (forget waits the store's
    busy timeout, 30 s, for it first): the rows are deleted, and the user told the log's copies remain, and what to do."""
    import sqlite3

    store = Store(f"sqlite:///{tmp_path / 'store.db'}")
    _two_leads(store)
    reader = sqlite3.connect(tmp_path / "store.db", isolation_level=None)
    try:
        reader.execute("BEGIN")
        reader.execute("SELECT count(*) FROM score_log").fetchone()  # a read snapshot, as a request holds one
        output = _forget(store, sample_params, tmp_path, "--lead-id", ANA)
    finally:
        reader.close()
    assert "score_log: deleted 2 row(s)" in output
    assert f"note: a reader (the running service) held the SQLite write-ahead log, {tmp_path / 'store.db'}-wal" in output
    assert "run forget again when the service is idle" in output.replace("\n", " ")
    assert store.score_log_frame()["lead_id"].tolist() == [BOB]


def test_forget_by_email_on_sqlite_holds_the_write_lock_from_its_first_lookup(tmp_path):
    """A score the service logs for the same e-mail while forget looks up that e-mail's leads waits for the erasure to
    commit: it cannot land between the lookup and the deletion, leaving a row of the person just erased. (The service's
    store here answers "database is locked" at once rather than wait its 30 s busy timeout.)"""
    from serving.store import StoreWriteFailed

    url = f"sqlite:///{tmp_path / 'store.db'}"
    store, service = Store(url), Store(url)
    _two_leads(store)
    sa.event.listen(service.engine, "connect", lambda dbapi_conn, _: dbapi_conn.execute("PRAGMA busy_timeout=0"))
    service.engine.dispose()  # its pooled connection waits 30 s
    her_hash = email_sha256(pd.Series(["ana.ruiz@acme.com"], dtype=object))
    service_writes = []

    def service_scores_her_again(conn, cursor, statement, *_):
        if "email_sha256 =" in statement and not service_writes:  # forget has just looked up her leads
            try:
                service.log_scores(_scores(["00Q5eANA2"], email_sha256=her_hash))
                service_writes.append("stored")
            except StoreWriteFailed as err:
                service_writes.append(str(err))

    sa.event.listen(store.engine, "after_cursor_execute", service_scores_her_again)
    done = store.forget([], ["ana.ruiz@acme.com"])

    assert len(service_writes) == 1 and "database is locked" in service_writes[0]
    assert done.leads_by_email == {"ana.ruiz@acme.com": [ANA]} and done.rows == {"score_log": 2, "feedback": 1}
    assert store.score_log_frame()["lead_id"].tolist() == [BOB]


def _days_ago(days: float) -> pd.Timestamp:
    return pd.Timestamp.now(tz="UTC").tz_localize(None) - pd.Timedelta(days=days)


def test_forget_expired_deletes_the_scores_of_leads_last_scored_before_the_retention_and_keeps_their_feedback(
        store, tmp_path, sample_params):
    """The score log kept every lead's scored features forever. A lead last scored longer ago than
    serving.score_retention_days loses all its scores (its score card is then a 404, as a lead never scored); a lead
    scored since keeps all of them, its first score too, which monitor reads as the one that routed it; feedback is
    kept, as retrain and export-outcomes learn from it."""
    store.log_scores(_scores([ANA], scored_at=_days_ago(400)))  # Ana: scored once, long ago, and decided
    store.log_scores(_scores([BOB, BOB], scored_at=[_days_ago(400), _days_ago(10)]))  # Bob: scored again lately
    store.log_scores(_scores(["00Q5eNEW"], scored_at=_days_ago(10)))
    store.add_feedback(_event("e1", ANA, decided_at=_days_ago(390)))
    store.add_feedback(_event("e2", BOB, decided_at=_days_ago(5)))
    kept = {"serving.score_retention_days": 365}
    scores, feedback = store.score_log_frame(), store.feedback_frame()

    dry = _forget(store, sample_params, tmp_path, "--expired", "--dry-run", settings=kept)
    pd.testing.assert_frame_equal(store.score_log_frame(), scores)
    output = _forget(store, sample_params, tmp_path, "--expired", settings=kept)

    assert "score_log: would delete 1 row(s)" in dry and "feedback: would delete 0 row(s)" in dry
    assert "score_log: deleted 1 row(s)" in output and "feedback: deleted 0 row(s)" in output
    assert "(serving.score_retention_days: 365); their feedback is kept, as retrain learns from it" in output
    assert "Not touched" not in output  # no person asked to be erased
    assert store.latest_score(ANA) is None
    pd.testing.assert_frame_equal(store.score_log_frame(), scores.iloc[1:].reset_index(drop=True))
    pd.testing.assert_frame_equal(store.feedback_frame(), feedback)
    assert sorted(store.export_outcomes()["lead_id"]) == [ANA, BOB]


def test_forget_expired_from_cron_while_the_service_writes_loses_none_of_its_writes(store_url, tmp_path, sample_params):
    """The retention runs daily while the service scores and takes decisions on the same store: each of its writes,
    made all the while forget runs, waits for the one transaction or goes past it, and none fails or is deleted."""
    service = Store(store_url)
    service.log_scores(_scores([f"00Q5eOLD{i}" for i in range(2000)], scored_at=_days_ago(400)))
    written, failed, forgotten = [], [], threading.Event()

    def serve():
        try:
            while not forgotten.is_set() or len(written) < 5:
                lead = f"00Q5eNEW{len(written)}"
                service.log_scores(_scores([lead]))
                service.add_feedback(_event(f"e{len(written)}", lead))
                written.append(lead)
        except Exception as err:  # noqa: BLE001 - reported below
            failed.append(repr(err))

    writer = threading.Thread(target=serve)
    writer.start()
    try:
        output = _forget(Store(store_url, read_only=True), sample_params, tmp_path, "--expired",
                         settings={"serving.score_retention_days": 365})
    finally:
        forgotten.set()
        writer.join()

    assert not failed and "score_log: deleted 2,000 row(s)" in output
    assert sorted(service.score_log_frame()["lead_id"]) == sorted(written)
    assert len(service.feedback_frame()) == len(written)


def test_forget_expired_needs_a_retention_at_least_monitors_calibration_window(store, tmp_path, sample_params):
    """No setting: nothing is deleted, and the setting to make is named. A retention shorter than the window monitor
    checks scores against their outcomes in is refused where the params are read."""
    from typer.testing import CliRunner

    from pipelines.cli import app
    from pipelines.config import ParamsError, load_params
    from serving.local_server import params_file

    _two_leads(store)
    params = params_file(sample_params, tmp_path / "params.yaml", {"serving.store_url": store.url,
                                                                   "serving.score_retention_days": None})
    result = CliRunner().invoke(app, ["forget", "--params", str(params), "--expired"])
    assert result.exit_code == 1
    assert "--expired: serving.score_retention_days is not set (null: scores are kept forever)" in result.output
    assert len(store.score_log_frame()) == 3 and store.erasures().empty

    with pytest.raises(ParamsError, match=r"serving.score_retention_days: 180 is less than monitor.calibration_days "
                                          r"\(365\): monitor checks the scores of that window"):
        load_params(params, overrides={"serving.score_retention_days": 180})


@pytest.mark.parametrize("name", ["params.yaml", "params.x_education.yaml"])
def test_each_params_file_the_project_ships_sets_the_retention_forget_expired_applies(name):
    """The X Education params left it out: its service kept every score forever, and `forget --expired` refused."""
    from pipelines.config import PROJECT_ROOT, load_params

    assert load_params(PROJECT_ROOT / name).serving.score_retention_days == 365


def test_each_forget_is_recorded_in_the_store_without_the_ids_or_e_mails_named(store, tmp_path, sample_params):
    """A DPO must show each erasure request was honoured, and the store may not keep whom it named: erasure_log holds
    when, how many lead ids and e-mails, the retention's cut-off, the rows per table and whether it was a dry run;
    `leadscore erasures` lists them."""
    _two_leads(store)
    store.log_scores(_scores(["00Q5eOLD"], scored_at=_days_ago(400)))
    _forget(store, sample_params, tmp_path, "--email", "bob@acme.com", "--dry-run")
    _forget(store, sample_params, tmp_path, "--lead-id", ANA, "--email", "ana.ruiz@acme.com")
    _forget(store, sample_params, tmp_path, "--expired", settings={"serving.score_retention_days": 365})

    listed = _forget(store, sample_params, tmp_path, command="erasures")

    done = store.erasures()
    assert done[["lead_ids_named", "emails_named", "score_log_rows", "feedback_rows", "dry_run"]].values.tolist() == [
        [0, 1, 1, 1, True], [1, 1, 2, 1, False], [0, 0, 1, 0, False]]
    assert done["last_scored_before"].isna().tolist() == [True, True, False]
    assert (done["last_scored_before"].iloc[2] - _days_ago(365)).total_seconds() < 60
    assert (done["erased_at"] - _days_ago(0)).abs().max() < pd.Timedelta(minutes=1)
    lines = listed.splitlines()[1:]
    assert [line.split("  ", 2)[-1] for line in lines] == [
        "1 e-mail(s): would delete (dry run) 1 score_log row(s), 1 feedback row(s)",
        "1 lead id(s), 1 e-mail(s): deleted 2 score_log row(s), 1 feedback row(s)",
        f"expired: leads last scored before {done['last_scored_before'].iloc[2]:%Y-%m-%d %H:%M}: deleted 1 score_log "
        "row(s), 0 feedback row(s)"]
    with store.engine.connect() as conn:
        stored = str(conn.execute(sa.text("SELECT * FROM erasure_log")).all())
    her_hash, his_hash = (hashlib.sha256(e.encode()).hexdigest() for e in ("ana.ruiz@acme.com", "bob@acme.com"))
    assert not [name for name in (ANA, BOB, "acme", her_hash, his_hash) if name in stored]


def test_a_dpo_lists_the_erasures_with_an_account_that_may_only_read(tmp_path, sample_params):
    """The record is read where the store is, by someone who must not change it."""
    path = tmp_path / "store.db"
    store = Store(f"sqlite:///{path}")
    _two_leads(store)
    _forget(store, sample_params, tmp_path, "--lead-id", ANA)
    store.engine.dispose()

    listed = _forget(Store(f"sqlite:///file:{path}?mode=ro&uri=true", read_only=True), sample_params, tmp_path,
                     command="erasures")

    assert listed.splitlines()[1].endswith("  1 lead id(s): deleted 2 score_log row(s), 1 feedback row(s)")


def test_forget_on_a_store_an_earlier_version_created_records_the_erasure_there(store_url, tmp_path, sample_params):
    """The service of the earlier version may still run on it: forget creates erasure_log itself; before any forget,
    `leadscore erasures` says none is recorded rather than failing on the missing table."""
    from conftest import fill_earlier_store

    fill_earlier_store(store_url, [OLD_SCORE], [OLD_EVENT])
    earlier = Store(store_url, read_only=True)

    before = _forget(earlier, sample_params, tmp_path, command="erasures")
    _forget(earlier, sample_params, tmp_path, "--lead-id", "OLD-1")

    assert "no erasure recorded in the store" in before
    assert Store(store_url, read_only=True).erasures()[["lead_ids_named", "score_log_rows", "feedback_rows"]
                                                       ].values.tolist() == [[1, 1, 1]]
    assert earlier.score_log_frame().empty and earlier.feedback_frame().empty


def test_forget_refuses_a_store_the_service_never_ran_with(tmp_path, sample_params):
    """A wrong serving.store_url would report "no row" for a lead the real store still holds."""
    from typer.testing import CliRunner

    from pipelines.cli import app
    from serving.local_server import params_file

    wrong = tmp_path / "stor.db"
    params = params_file(sample_params, tmp_path / "params.yaml", {"serving.store_url": f"sqlite:///{wrong}"})
    result = CliRunner().invoke(app, ["forget", "--params", str(params), "--lead-id", ANA])
    assert result.exit_code == 1
    assert f"the store {wrong} has no score_log table" in result.output.replace("\n", "")
    assert "(nothing was deleted)" in result.output.replace("\n", " ") and not wrong.exists()


def test_forget_on_an_account_that_may_only_read_is_refused_saying_why_and_deletes_nothing(postgres, tmp_path,
                                                                                             sample_params):
    """The export-outcomes account (SELECT only) used for an erasure: one red line naming the store and the
    database's reason, not a traceback; and no half-erased lead (score_log deleted, feedback refused)."""
    from typer.testing import CliRunner

    from pipelines.cli import app
    from serving.local_server import params_file

    url = postgres.database()
    store = Store(url)
    _two_leads(store)
    reader = postgres.reader(url)
    params = params_file(sample_params, tmp_path / "params.yaml", {"serving.store_url": reader})
    result = CliRunner().invoke(app, ["forget", "--params", str(params), "--lead-id", ANA])
    assert result.exit_code == 1 and isinstance(result.exception, SystemExit), result.output
    assert (f"cannot delete from the store {Store(reader, read_only=True).name}: permission denied for table "
            in result.output.replace("\n", ""))
    assert result.output.rstrip().endswith("Nothing was deleted.")
    assert len(store.score_log_frame()) == 3 and len(store.feedback_frame()) == 2


def test_retrain_runs_past_stored_events_with_impossible_dates(tmp_path, caplog, monkeypatch_session):
    """A year-1 decision an older version stored made every `leadscore retrain` die in pandas
    ("Out of bounds nanosecond timestamp") until someone deleted the row by hand."""
    from typer.testing import CliRunner

    from conftest import FAST, params_for
    from pipelines.cli import app
    from pipelines.synthetic import generate_crm, write_crm
    from serving.local_server import params_file

    write_crm(generate_crm(700, seed=3), tmp_path / "crm")
    params = params_for(tmp_path / "crm", tmp_path, **FAST)
    lead = pd.read_csv(tmp_path / "crm" / "leads.csv")["lead_id"].iloc[0]
    with Store.from_params(params).engine.begin() as conn:
        conn.execute(FEEDBACK.insert(), {"event_id": "p1", "lead_id": lead, "status": "converted", "reason": None,
                                         "decided_at": datetime(1, 1, 1), "amount": None,
                                         "received_at": datetime(2026, 11, 25)})
    with caplog.at_level(logging.WARNING, logger="serving.store"):
        result = CliRunner().invoke(app, ["retrain", "--params", str(params_file(params, tmp_path / "params.yaml", {})),
                                          "--dry-run"])
    assert result.exit_code == 0, result.output
    assert "dry run: would promote" in result.output
    assert f"event 'p1' (lead '{lead}', decided_at 0001-01-01 00:00:00)" in caplog.text


OLD_SCORE = {"lead_id": "OLD-1", "model_name": "leadscore", "model_version": "2", "probability": 0.3, "score": 30,
             "tier": "B", "scored_at": datetime(2026, 1, 5, 9)}
OLD_EVENT = {"event_id": "e1", "lead_id": "OLD-1", "status": "rejected", "reason": "no_budget",
             "decided_at": datetime(2026, 1, 6), "amount": None, "received_at": datetime(2026, 1, 6, 1)}


def _columns(path, table: str) -> list[str]:
    import sqlite3

    conn = sqlite3.connect(path)
    try:
        return [row[1] for row in conn.execute(f"PRAGMA table_info({table})")]
    finally:
        conn.close()


def test_a_store_an_earlier_version_created_keeps_its_scores_and_gains_features_as_of(store_url):
    """The score log had no features_as_of before; opening such a database must add it, not lose rows."""
    from conftest import fill_earlier_store

    fill_earlier_store(store_url, [OLD_SCORE])

    store = Store(store_url)
    store.log_scores(_scores(["NEW-1"], scored_at=pd.Timestamp("2026-11-26 10:00"), features_as_of=pd.Timestamp("2026-01-01")))
    store.log_scores(_scores(["NEW-2"], scored_at=pd.Timestamp("2026-11-26 11:00")))

    log = Store(store_url).score_log_frame().set_index("lead_id")
    assert log.loc["OLD-1", ["score", "tier", "scored_at"]].tolist() == [30, "B", pd.Timestamp("2026-01-05 09:00")]
    assert log["features_as_of"].tolist() == [pd.Timestamp("2026-01-05 09:00"), pd.Timestamp("2026-01-01"),
                                              pd.Timestamp("2026-11-26 11:00")]
    assert store.latest_score("OLD-1")["features_as_of"] == datetime(2026, 1, 5, 9)


def test_the_score_log_keeps_never_seen_as_answered_and_an_earlier_versions_rows_read_it_as_null(store_url):
    """A store an earlier version created gains never_seen in place: a value named, none ({}) and "cannot tell"
    (null) read back apart, and the earlier rows read null, as "cannot tell" (the card then says nothing)."""
    from conftest import fill_earlier_store

    fill_earlier_store(store_url, [OLD_SCORE])
    named = {"Lead Source": 'TikTok "Live" 🎵', "industry": "true"}
    rows = _scores(["NEW", "NONE", "CANNOT-TELL"]).assign(never_seen=[named, {}, None])

    Store(store_url).log_scores(rows.to_dict("records"))

    store = Store(store_url)
    assert [store.latest_score(lead)["never_seen"] for lead in ("NEW", "NONE", "CANNOT-TELL", "OLD-1")] == [
        named, {}, None, None]
    assert list(store.latest_score("NEW")["never_seen"]) == ["Lead Source", "industry"]  # the order /score answered


def test_the_score_log_keeps_unread_activity_types_as_answered_and_an_earlier_versions_rows_read_them_as_null(store_url):
    """/score names per lead the activity types the model does not read; the score log kept never_seen beside the
    score but not these. A store an earlier version created gains the column in place: types named (as sent, in the
    order answered) and none ([]) read back apart, and the earlier rows read null (not known then)."""
    from conftest import fill_earlier_store

    fill_earlier_store(store_url, [OLD_SCORE])
    rows = _scores(["UNREAD", "NONE"]).assign(unread_activity_types=[["Requested Demo", "webinar_attend"], []])

    Store(store_url).log_scores(rows.to_dict("records"))

    store = Store(store_url)
    assert [store.latest_score(lead)["unread_activity_types"] for lead in ("UNREAD", "NONE", "OLD-1")] == [
        ["Requested Demo", "webinar_attend"], [], None]
    assert store.score_log_frame().set_index("lead_id")["unread_activity_types"]["UNREAD"] == (
        '["Requested Demo", "webinar_attend"]')


@pytest.mark.parametrize("journal_mode", ["wal", "delete"])
def test_a_read_only_account_reads_a_store_an_earlier_version_created_as_it_is(tmp_path, journal_mode):
    """Monitor and retrain only read: they must not need the right to add features_as_of (nor to set WAL
    mode on the file). Its scores read features_as_of as scored_at, as rows logged before the column did."""
    from conftest import earlier_store

    path = tmp_path / "old.db"
    url = earlier_store(path, [OLD_SCORE], [OLD_EVENT], journal_mode=journal_mode)

    store = Store(url, read_only=True)

    log = store.score_log_frame()
    assert log[["lead_id", "score", "scored_at", "features_as_of"]].values.tolist() == [
        ["OLD-1", 30, pd.Timestamp("2026-01-05 09:00"), pd.Timestamp("2026-01-05 09:00")]]
    assert store.latest_score("OLD-1")["features_as_of"] == datetime(2026, 1, 5, 9)
    assert store.latest_score("OLD-1")["never_seen"] is None
    assert store.export_outcomes()[["lead_id", "status", "reason"]].values.tolist() == [["OLD-1", "rejected", "no_budget"]]
    assert "features_as_of" not in _columns(path, "score_log")  # read as it is, not altered


def test_retrain_and_export_outcomes_read_an_earlier_versions_store_with_a_read_only_url(tmp_path, sample_params):
    """The read-only SQLite URL names its file relative to the params file's folder, as a plain one does."""
    from typer.testing import CliRunner

    from conftest import earlier_store
    from pipelines.cli import app
    from pipelines.config import load_params
    from pipelines.history import feedback_outcomes
    from serving.local_server import params_file

    (tmp_path / "conf").mkdir()
    earlier_store(tmp_path / "conf" / "old.db", [OLD_SCORE], [OLD_EVENT])
    path = params_file(sample_params, tmp_path / "conf" / "params.yaml",
                       {"serving.store_url": "sqlite:///file:old.db?mode=ro&uri=true", "base_dir": str(tmp_path / "conf")})

    outcomes, left_out = feedback_outcomes(load_params(path))
    result = CliRunner().invoke(app, ["export-outcomes", "--params", str(path), "--output", str(tmp_path / "out.csv")])

    assert outcomes[["lead_id", "status"]].values.tolist() == [["OLD-1", "rejected"]] and left_out == 0
    assert result.exit_code == 0, result.output
    assert pd.read_csv(tmp_path / "out.csv")["lead_id"].tolist() == ["OLD-1"]


def test_a_store_that_does_not_exist_reads_as_empty_and_is_not_created(tmp_path):
    store = Store(f"sqlite:///{tmp_path / 'none.db'}", read_only=True)

    assert store.score_log_frame().empty and store.feedback_frame().empty and store.latest_score("L1") is None
    assert not (tmp_path / "none.db").exists()


@pytest.mark.parametrize("journal_mode", ["wal", "delete"])
def test_a_writer_on_a_read_only_store_of_an_earlier_version_is_told_why_and_loses_no_row(tmp_path, journal_mode):
    from conftest import earlier_store
    from serving.store import StoreNotWritable

    path = tmp_path / "old.db"
    url = earlier_store(path, [OLD_SCORE], [OLD_EVENT], journal_mode=journal_mode)

    with pytest.raises(StoreNotWritable) as refused:
        Store(url)

    message = str(refused.value)
    assert message.startswith(f"cannot open the store {path} for writing: "
                              "attempt to write a readonly database")
    assert "must be allowed to write and alter the tables" in message and "Nothing stored was changed" in message
    if journal_mode == "wal":  # the file is WAL already: the change refused is the new table
        assert "(running: CREATE TABLE erasure_log (" in message
    reader = Store(url, read_only=True)
    assert reader.score_log_frame()["lead_id"].tolist() == ["OLD-1"]
    assert reader.feedback_frame()["event_id"].tolist() == ["e1"]


def _up_to_date_store(path) -> str:
    """A store this version created and wrote a score and a decision to; the URL opening it read-only."""
    store = Store(f"sqlite:///{path}")
    store.log_scores(_scores(["NOW-1"]))
    store.add_feedback(_event("e1", "NOW-1"))
    store.engine.dispose()
    return f"sqlite:///file:{path}?mode=ro&uri=true"


def test_a_writer_on_an_up_to_date_read_only_store_is_refused_at_open_and_changes_nothing(tmp_path):
    """Nothing to create or alter: the store must still be found unwritable at open, or every score and
    decision the service is sent would fail."""
    from serving.store import StoreNotWritable

    path = tmp_path / "store.db"
    url = _up_to_date_store(path)
    before = path.read_bytes()

    with pytest.raises(StoreNotWritable) as refused:
        Store(url)

    assert str(refused.value).startswith(f"cannot open the store {path} for writing: attempt to write a readonly "
                                         "database (checking that the tables take rows, with none written). ")
    assert path.read_bytes() == before
    reader = Store(url, read_only=True)
    assert reader.score_log_frame()["lead_id"].tolist() == ["NOW-1"]
    assert reader.feedback_frame()["event_id"].tolist() == ["e1"]


def test_opening_a_writable_store_leaves_no_row_behind(tmp_path):
    """The check that a writer may write writes nothing: opening, even often, adds no row."""
    path = tmp_path / "store.db"
    _up_to_date_store(path)

    for _ in range(3):
        Store(f"sqlite:///{path}")

    reader = Store(f"sqlite:///{path}", read_only=True)
    assert reader.score_log_frame()["lead_id"].tolist() == ["NOW-1"]
    assert reader.feedback_frame()["event_id"].tolist() == ["e1"]


@pytest.mark.parametrize(("where", "read_only"), [("missing/store.db", False), (".", False), (".", True)],
                         ids=["writer-in-a-missing-folder", "writer-on-a-folder", "reader-on-a-folder"])
def test_a_store_that_cannot_be_connected_to_is_told_apart_from_one_that_may_not_be_written(tmp_path, where, read_only):
    """Advice about write permissions would mislead for a wrong path, host or password. (A reader reads a
    SQLite file that does not exist as an empty store.)"""
    from serving.store import StoreUnreachable

    path = (tmp_path / where).resolve()

    with pytest.raises(StoreUnreachable) as refused:
        Store(f"sqlite:///{path}", read_only=read_only)

    message = str(refused.value)
    assert message.startswith(f"cannot connect to the store {path}: unable to open database file. Check "
                              "serving.store_url: ")
    assert "a file in an existing folder" in message and "write" not in message
    assert not (tmp_path / "missing").exists()


@pytest.mark.parametrize(
    ("store", "reason"),
    [
        ("earlier", "cannot open the store {path} for writing: attempt to write a readonly database"),
        ("up-to-date", "cannot open the store {path} for writing: attempt to write a readonly database"),
        ("missing-folder", "cannot connect to the store {path}: unable to open database file"),
    ],
    ids=["earlier-version", "up-to-date", "missing-folder"],
)
def test_the_service_refuses_to_start_on_a_store_it_cannot_write_saying_why(trained, sample_params, tmp_path, store,
                                                                          reason):
    """The service writes: it must bring the store up to date on start and be allowed to write it, or exit
    naming the store and the problem (before its workers start, which BentoML would restart forever). The store is
    checked once nothing else refuses: with a model to serve."""
    from conftest import earlier_store, running_service

    path = tmp_path / ("missing" if store == "missing-folder" else "") / "store.db"
    url = {"earlier": lambda: earlier_store(path, [OLD_SCORE], [OLD_EVENT]),
           "up-to-date": lambda: _up_to_date_store(path),
           "missing-folder": lambda: f"sqlite:///{path}"}[store]()

    with pytest.raises(RuntimeError, match="exited with code") as refused:
        with running_service(sample_params, tmp_path, {"serving.store_url": url}, timeout=60):
            pass

    log = str(refused.value)
    assert f"leadscore refuses to start: {reason.format(path=path)}" in log
    assert "Traceback" not in log
    if store != "missing-folder":
        kept = ["OLD-1" if store == "earlier" else "NOW-1"]
        assert Store(url, read_only=True).score_log_frame()["lead_id"].tolist() == kept


def test_writers_opening_a_new_store_at_the_same_moment_all_open_it(store_url):
    """Service replicas starting together on an empty database: each creates the tables, one wins, the
    others must open the store it created. (PostgreSQL answered the losers with a duplicate key in its
    catalog, which failed their start with a traceback.)"""
    start = threading.Barrier(8)
    opened, failed = [], []

    def open_store():
        start.wait()
        try:
            opened.append(Store(store_url))
        except Exception as err:  # noqa: BLE001 - each failure is reported below
            failed.append(repr(err))

    writers = [threading.Thread(target=open_store) for _ in range(8)]
    for writer in writers:
        writer.start()
    for writer in writers:
        writer.join()

    assert not failed and len(opened) == 8
    assert all(store.add_feedback(_event(f"e{i}")) for i, store in enumerate(opened))


# ------------------------------------------------------------------ on a PostgreSQL server


@pytest.mark.parametrize(
    ("tables", "refusal"),
    [("none", "permission denied for schema public (running: CREATE TABLE "),  # feedback or score_log first
     ("earlier", "permission denied for schema public (running: CREATE TABLE erasure_log ("),  # the table it lacks
     ("up-to-date", "permission denied for table feedback (checking that the tables take rows, with none written)")],
    ids=["none", "earlier", "up-to-date"],
)
def test_an_account_that_may_only_read_reads_a_postgres_store_and_may_not_open_it_for_writing(postgres, tables, refusal):
    """Monitor, retrain and export-outcomes get an account allowed SELECT only: it reads the store as it is
    (one not created yet as empty, an earlier version's without features_as_of); the service on such an
    account refuses to start saying why, whatever the store needs, and changes nothing."""
    from conftest import fill_earlier_store
    from serving.store import StoreNotWritable

    url = postgres.database()
    if tables == "earlier":
        fill_earlier_store(url, [OLD_SCORE], [OLD_EVENT])
    elif tables == "up-to-date":
        writer = Store(url)
        writer.log_scores(_scores(["OLD-1"], scored_at=OLD_SCORE["scored_at"]))
        writer.add_feedback({**OLD_EVENT, "decided_at": "2026-01-06"})
    reader = postgres.reader(url)

    with pytest.raises(StoreNotWritable) as refused:
        Store(reader)
    store = Store(reader, read_only=True)

    message = str(refused.value)
    assert message.startswith(f"cannot open the store {store.name} for writing: {refusal}")
    assert "Nothing stored was changed" in message and "\n" not in message  # the service's start refusal is one line
    expected = [] if tables == "none" else [["OLD-1", pd.Timestamp("2026-01-05 09:00"), pd.Timestamp("2026-01-05 09:00")]]
    assert store.score_log_frame()[["lead_id", "scored_at", "features_as_of"]].values.tolist() == expected
    assert store.feedback_frame()["event_id"].tolist() == ([] if tables == "none" else ["e1"])
    assert (store.latest_score("OLD-1") is None) == (tables == "none")
    present = sa.inspect(sa.create_engine(url))
    assert sorted(present.get_table_names()) == {"none": [], "earlier": ["feedback", "score_log"],
                                                 "up-to-date": ["erasure_log", "feedback", "score_log"]}[tables]


@pytest.mark.parametrize("wrong", ["port", "socket-folder", "database", "user"])
@pytest.mark.parametrize("read_only", [False, True], ids=["writer", "reader"])
def test_a_postgres_store_that_cannot_be_connected_to_is_told_apart_from_one_that_may_not_be_written(
        postgres, wrong, read_only):
    from serving.store import StoreUnreachable

    url = sa.make_url(postgres.database())
    url = {"port": sa.URL.create("postgresql+psycopg", "postgres", host="127.0.0.1", port=1, database=url.database),
           "socket-folder": url.set(query={"host": "/nonexistent"}),
           "database": url.set(database="no_such_database"),
           "user": url.set(username="no_such_user")}[wrong]

    with pytest.raises(StoreUnreachable) as refused:
        Store(url.render_as_string(hide_password=False), read_only=read_only)

    message = str(refused.value)
    assert message.startswith(f"cannot connect to the store {url.render_as_string()}: ")
    assert {"port": "Connection refused", "socket-folder": "No such file or directory",
            "database": 'database "no_such_database" does not exist', "user": 'role "no_such_user" does not exist'}[wrong] in message
    assert "the host, port, database name, user and password are right" in message and "write" not in message


def test_a_postgres_store_whose_server_closed_the_connections_goes_on_writing_and_reading(postgres):
    """A restart, a failover or an idle timeout closes the service's pooled connections: the next score or
    decision must use a new one, not fail with a 503 while the database is back."""
    store = Store(postgres.database())
    store.add_feedback(_event("e1"))

    postgres.drop_connections(store.url)
    assert store.add_feedback(_event("e2")) is True
    postgres.drop_connections(store.url)
    assert store.feedback_frame()["event_id"].tolist() == ["e1", "e2"]


def test_a_postgres_store_made_read_only_refuses_each_write_saying_why_and_takes_them_again_after(postgres):
    """The service answers 503 with this message (StoreWriteFailed) while the database takes no writes."""
    from serving.store import StoreWriteFailed

    store = Store(postgres.database())
    store.add_feedback(_event("e1"))

    postgres.set_read_only(store.url, True)
    with pytest.raises(StoreWriteFailed, match=r"cannot write to the store postgresql\+psycopg://postgres:\*\*\*@.*: "
                                                "cannot execute INSERT in a read-only transaction. Nothing of this"):
        store.add_feedback(_event("e2"))
    with pytest.raises(StoreWriteFailed, match="cannot execute INSERT in a read-only transaction"):
        store.log_scores(_scores(["L1"]))
    assert store.feedback_frame()["event_id"].tolist() == ["e1"] and store.score_log_frame().empty
    postgres.set_read_only(store.url, False)

    assert store.add_feedback(_event("e2")) is True
