"""The scoring service over real HTTP: `bentoml serve` on 127.0.0.1 with the trained champion.

One server for the module (started once, stopped in teardown). Every endpoint, the API key, the
limits and the bad inputs a CRM integration can send are checked against what a client receives.
"""

from __future__ import annotations

import contextlib
import dataclasses
import gzip
import hashlib
import html
import http.client
import importlib.metadata
import json
import pickle
import re
import shutil
import sqlite3
import time
import uuid
import zlib
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import quote

import jsonschema
import numpy as np
import pandas as pd
import pytest

from models.explain import explain
from serving.local_server import Client
from pipelines.ingest import API_CLIENT, prepare_table, sqlite_file
from serving.store import Store
from conftest import moved_tracking_store, running_service

AS_OF = "2025-12-31T00:00:00"
MAX_BATCH = 20
MAX_BODY = 100_000
# The CRM's own picklist labels, as a Salesforce org sends a decision (the sample export uses the codes), and its
# IsConverted checkbox, a boolean an export writes as true/false.
CRM_LABELS = {"status": {"Closed - Not Converted": "rejected", "true": "converted", "false": "rejected"},
              "reason": {"No Budget": "no_budget"}}


def _records(frame: pd.DataFrame) -> list[dict]:
    """Rows as JSON objects without empty cells: what a CRM sends."""
    return [{k: v for k, v in row.items() if isinstance(v, str)} for row in frame.to_dict("records")]


@pytest.fixture(scope="module")
def crm(sample_dir) -> tuple[pd.DataFrame, pd.DataFrame]:
    read = dict(dtype=str, keep_default_na=False, na_values=[""])
    return pd.read_csv(sample_dir / "leads.csv", **read), pd.read_csv(sample_dir / "activities.csv", **read)


@pytest.fixture(scope="module")
def leads(crm) -> list[dict]:
    """Eight leads with their activities nested, as the CRM would post them."""
    lead_rows, activities = crm
    active = lead_rows[lead_rows["lead_id"].isin(activities["lead_id"])].head(8)
    out = []
    for lead in _records(active):
        acts = activities[activities["lead_id"] == lead["lead_id"]].drop(columns="lead_id")
        out.append({**lead, "activities": _records(acts)})
    return out


@pytest.fixture(scope="module")
def server(trained, sample_params, tmp_path_factory):
    folder = tmp_path_factory.mktemp("service")
    overrides = {"serving.store_url": f"sqlite:///{folder / 'store.db'}", "serving.max_batch": MAX_BATCH,
                 "serving.max_body_bytes": MAX_BODY, "data.value_maps": CRM_LABELS}
    with running_service(sample_params, folder, overrides) as srv:
        yield srv


def _in_process(trained, leads: list[dict], top_k: int) -> tuple[pd.DataFrame, list]:
    """Scores and explanations the batch path computes for the same leads (no HTTP, no service code)."""
    scorer = trained.scorer
    raw = pd.DataFrame.from_records([{k: v for k, v in lead.items() if k != "activities"} for lead in leads])
    acts = pd.DataFrame.from_records([{**a, "lead_id": lead["lead_id"]} for lead in leads for a in lead["activities"]])
    features, problems, ages = scorer.build(raw, acts, as_of=pd.Timestamp(AS_OF))
    assert not problems
    return scorer.predict(features, ages), explain(scorer, features, top_k, age_days=ages)


# ---------------------------------------------------------------- auth and health


def test_health_routes_answer_without_a_key(server):
    anonymous = Client(server.url)
    for path in ("/readyz", "/livez", "/healthz", "/metrics"):
        assert anonymous.get(path).status == 200, path


@pytest.mark.parametrize("key", [None, "wrong-key"])
def test_every_other_route_needs_the_key(server, key, leads):
    client = Client(server.url, key)
    for method, path, body in [
        ("POST", "/score", {"leads": leads[:1]}),
        ("POST", "/explain", {"lead": leads[0]}),
        ("POST", "/feedback", {"event_id": "x", "lead_id": "x", "status": "open", "decided_at": AS_OF}),
        ("POST", "/reload", {}),
        ("GET", "/model", None),
        ("GET", f"/leads/{leads[0]['lead_id']}", None),
    ]:
        # As an API client: a browser gets the card route's 401 as a page (test_scorecard).
        reply = client.request(method, path, body, {"Accept": "application/json"})
        assert reply.status == 401, path
        assert reply.json()["detail"] == [] and "Authorization: Bearer" in reply.json()["error"]


def test_a_browser_opens_the_api_docs_without_the_key(server, client):
    """Swagger UI at / answered 401 to a browser, which sends no key: the docs could not even be opened. The page,
    the Swagger UI files it loads and /docs.json open without the key (what a request may hold, never a score or a
    decision); every other route still needs it (test_every_other_route_needs_the_key)."""
    browser = Client(server.url)
    page = browser.get("/", {"Accept": "text/html"})
    assert page.status == 200 and page.headers["content-type"].startswith("text/html"), page.body
    assets = re.findall(r'(?:src|href)="\./([^"]+)"', page.body.decode())
    assert len(assets) == 4 and all(browser.get(f"/{asset}").status == 200 for asset in assets)
    assert 'url: "./docs.json"' in browser.get("/static_content/swagger-initializer.js").body.decode()
    assert browser.get("/docs.json").json() == client.get("/docs.json").json()
    assert "googletagmanager" not in page.body.decode()  # BentoML's own page loaded Google Tag Manager


def _series(metrics_text: str) -> list[str]:
    return [line.rsplit(" ", 1)[0] for line in metrics_text.splitlines() if line and not line.startswith("#")]


def test_metrics_count_requests_per_route_whatever_paths_clients_send(server):
    """Every distinct path used to add series to /metrics for good (and list the lead ids opened)."""
    anonymous, keyed = Client(server.url), server.client()

    def distinct_requests() -> list[str]:
        ids = [f"lead-{uuid.uuid4()}" for _ in range(30)]
        for lead_id in ids:
            assert anonymous.get(f"/leads/{lead_id}").status == 401
            assert anonymous.get(f"/no-such-route/{lead_id}").status == 401
            assert keyed.get(f"/leads/{quote(lead_id + '/x', safe='')}").status == 404
            assert keyed.get(f"/no-such-route/{lead_id}").status == 404
        return ids

    distinct_requests()
    before = _series(anonymous.get("/metrics").body.decode())
    ids = distinct_requests()
    after = anonymous.get("/metrics").body.decode()
    assert len(_series(after)) == len(before)
    assert not any(lead_id in after for lead_id in ids)
    assert 'endpoint="/leads/{lead_id}"' in after and 'endpoint="/score"' in after


def test_metrics_count_the_api_documentation_under_its_own_routes_not_as_other(server):
    """/metrics' `other` is for paths no route serves: the Swagger UI page, /docs.json and the UI's files are served."""
    anonymous = Client(server.url)
    for path in ("/", "/docs.json", "/static_content/swagger-ui.css"):
        assert anonymous.get(path).status == 200, path
    counted = anonymous.get("/metrics").body.decode()
    for route in ("/", "/docs.json", "/static_content/{file}"):
        assert f'endpoint="{route}"' in counted, route


def test_the_access_log_names_a_score_cards_route_never_the_lead_id_in_its_path(client, server, leads):
    """BentoML's access log wrote each request's path, and a score card's is /leads/<lead id>: every lead id whose card
    was opened ended up in log files `leadscore forget` cannot erase. It names the route, as /metrics counts it."""
    lead = {k: v for k, v in leads[0].items() if k != "activities"}
    assert client.post("/score", {"leads": [{**lead, "lead_id": "00Q5eLOGGED"}], "as_of": AS_OF}).status == 200
    before = server.log_path.read_text(errors="replace")
    assert client.get("/leads/00Q5eLOGGED").status == 200
    assert Client(server.url).get("/leads/00Q5eUNKEYED").status == 401
    assert client.get(f"/leads/{quote('00Q5eNEVER,type=x', safe='')}").status == 404
    assert client.get("/no-such-route/00Q5eASTRAY").status == 404
    deadline = time.monotonic() + 10
    while len(lines := [line for line in server.log_path.read_text(errors="replace")[len(before):].splitlines()
                        if "method=GET" in line]) < 4:
        assert time.monotonic() < deadline, lines
        time.sleep(0.1)
    assert not [line for line in lines if "00Q5e" in line], lines
    assert [re.search(r"path=(.*?),.*\(status=(\d+)", line).groups() for line in lines] == [
        ("/leads/{lead_id}", "200"), ("/leads/{lead_id}", "401"), ("/leads/{lead_id}", "404"), ("other", "404")]


def test_metrics_count_scored_leads_per_tier_and_never_seen_values_per_crm_field(client, server, trained, leads):
    """An operator alerts on a CRM mapping mistake or a new lead source, and watches the tier mix, from /metrics
    without reading responses: labelled by tier and by the CRM field, never by the value sent. A refused request
    counts nothing."""
    known = {k: v for k, v in leads[0].items() if k != "activities"}
    sent = [known, {**known, "lead_id": "METRIC-1", "lead_source": "TikTok"},
            {**known, "lead_id": "METRIC-2", "lead_source": "Carrier Pigeon", "industry": "Quantum Basket Weaving"}]
    before = server.lead_counts()
    reply = client.post("/score", {"leads": sent, "as_of": AS_OF})
    assert reply.status == 200, reply.body
    after = server.lead_counts()
    tiers = Counter(score["tier"] for score in reply.json()["scores"])
    changed = {key: after[key] - before.get(key, 0) for key in after if after[key] != before.get(key, 0)}
    assert changed == {**{("leadscore_scored_leads_total", tier): n for tier, n in tiers.items()},
                       ("leadscore_never_seen_leads_total", "lead_source"): 2,
                       ("leadscore_never_seen_leads_total", "industry"): 1}
    assert not {label for _, label in after} & {"TikTok", "Carrier Pigeon", "Quantum Basket Weaving"}
    # Every tier and category field shows from the start (at 0 until counted): an alert then sees the first lead.
    assert {("leadscore_scored_leads_total", tier) for tier in trained.scorer.tiers.names} <= after.keys()
    assert {("leadscore_never_seen_leads_total", field) for field in trained.scorer.features.categorical} <= after.keys()

    bad = {**known, "lead_id": "METRIC-3", "created_at": "the day before yesterday"}
    refused = client.post("/score", {"leads": [*sent, bad], "as_of": AS_OF})
    assert refused.status == 422, refused.body
    assert server.lead_counts() == after


# ---------------------------------------------------------------- model and scores


def test_model_describes_the_served_champion(client, trained):
    info = client.get("/model").json()
    assert (info["name"], info["version"], info["alias"]) == ("leadscore", str(trained.version), "champion")
    assert info["trained_at"] == trained.scorer.info["trained_at"]
    assert info["metrics"]["roc_auc"] == pytest.approx(trained.scorer.info["metrics"]["roc_auc"])
    assert [f["name"] for f in info["features"]] == trained.scorer.feature_names
    assert info["tiers"] == pytest.approx(trained.scorer.tiers.as_dict())


def test_scores_and_reasons_equal_the_batch_path(client, trained, sample_params, leads):
    reply = client.post("/score", {"leads": leads, "as_of": AS_OF})
    assert reply.status == 200, reply.body
    got = reply.json()["scores"]
    expected, explanations = _in_process(trained, leads, sample_params.serving.top_factors)
    assert [s["lead_id"] for s in got] == [lead["lead_id"] for lead in leads]  # request order
    assert [s["probability"] for s in got] == pytest.approx(expected["probability"].tolist(), abs=1e-12)
    assert [s["score"] for s in got] == expected["score"].tolist()
    assert [s["tier"] for s in got] == expected["tier"].tolist()
    assert [s["past_horizon"] for s in got] == expected["past_horizon"].tolist()
    assert [s["likely_rejection_reason"] for s in got] == expected["likely_rejection_reason"].tolist()
    got_reason_p = [s["likely_rejection_probability"] for s in got]
    assert got_reason_p == pytest.approx(expected["likely_rejection_probability"].tolist(), abs=1e-12)
    for score, e in zip(got, explanations):
        assert [f["phrase"] for f in score["reasons"]["positive"]] == [f.phrase for f in e.positives]
        assert [f["phrase"] for f in score["reasons"]["negative"]] == [f.phrase for f in e.negatives]
        assert [f["points"] for f in score["reasons"]["positive"]] == pytest.approx([f.points for f in e.positives])
        assert (score["model_name"], score["model_version"]) == ("leadscore", str(trained.version))


def test_a_lead_older_than_the_label_horizon_is_scored_and_flagged_as_docs_json_says(client, leads):
    lead = {k: v for k, v in leads[0].items() if k != "activities"}
    aged = [{**lead, "lead_id": "OLD-1", "created_at": "2025-05-31T00:00:00"},  # 214 days before AS_OF
            {**lead, "lead_id": "NEW-1", "created_at": "2025-12-28T00:00:00"}]
    reply = client.post("/score", {"leads": aged, "as_of": AS_OF})
    assert reply.status == 200, reply.body
    old, new = reply.json()["scores"]
    assert (old["past_horizon"], new["past_horizon"]) == (True, False)
    assert 1 <= old["score"] <= 99 and old["tier"]  # still scored: the CRM writes back every lead
    documented = client.get("/docs.json").json()["components"]["schemas"]["LeadScore"]
    assert "past_horizon" in documented["required"] and documented["properties"]["past_horizon"]["type"] == "boolean"
    assert "label.horizon_days" in documented["properties"]["past_horizon"]["description"]


def test_explain_of_a_lead_past_the_label_horizon_says_so_in_the_words_score_and_its_card_give(client, server, leads):
    """/score flagged a lead older than the label horizon; /explain of it said nothing, so a rep reading why it
    scored so was not told the score only ranks it among the oldest leads."""
    lead = {k: v for k, v in leads[0].items() if k != "activities"}
    aged = [{**lead, "lead_id": "OLD-EXPLAINED", "created_at": "2025-05-31T00:00:00"},  # 214 days before AS_OF
            {**lead, "lead_id": "NEW-EXPLAINED", "created_at": "2025-12-28T00:00:00"}]
    scored = client.post("/score", {"leads": aged, "as_of": AS_OF})
    explained = [client.post("/explain", {"lead": one, "as_of": AS_OF}) for one in aged]
    assert [reply.status for reply in (scored, *explained)] == [200, 200, 200], [r.body for r in explained]
    old, new = (reply.json() for reply in explained)
    assert (old["past_horizon"], new["past_horizon"]) == (True, False)
    assert old["past_horizon_note"].startswith("Created 214 days ago, past the ") and new["past_horizon_note"] is None
    assert [(e["past_horizon"], e["past_horizon_note"]) for e in (old, new)] == [
        (s["past_horizon"], s["past_horizon_note"]) for s in scored.json()["scores"]]
    assert Store(server.params.serving.store_url).latest_score("OLD-EXPLAINED")["past_horizon_note"] == \
        old["past_horizon_note"]  # the score card's line
    spec = client.get("/docs.json").json()
    documented = spec["components"]["schemas"]["Explanation"]
    assert {"past_horizon", "past_horizon_note"} <= set(documented["required"])
    assert "label.horizon_days" in documented["properties"]["past_horizon"]["description"]
    assert _documented(spec, "Explanation", old) and _documented(spec, "ScoreResponse", scored.json())


def test_empty_batch_returns_an_empty_result(client):
    reply = client.post("/score", {"leads": []})
    assert (reply.status, reply.json()) == (200, {"scores": [], "warnings": []})


@pytest.mark.parametrize(("path", "body", "at"), [
    ("/score", {"leads": [{}]}, "leads[0]"),
    ("/score", {"leads": [{}, {}]}, "leads[1]"),
    ("/score", {"leads": [{"attributes": {"type": "Lead"}}]}, "leads[0]"),  # no field read: dropped, as {}
    ("/explain", {"lead": {}}, "lead"),
])
def test_a_lead_sent_as_an_empty_object_is_refused_for_its_missing_fields(client, path, body, at):
    """pandas builds no row from records that are all empty: /explain of {} crashed (500) and /score of [{}] scored
    nothing (a Salesforce record holding no field the model reads, too). Each such lead lacks its id and creation
    date, a 422 at its own path, as beside a lead that has them."""
    reply = client.post(path, {**body, "as_of": AS_OF})
    assert reply.status == 422, reply.body
    assert {(d["field"], d["type"]) for d in reply.json()["detail"]} >= {
        (f"{at}.lead_id", "missing"), (f"{at}.created_at", "missing")}, reply.json()


def test_unseen_categories_and_missing_optional_fields_score(client):
    strange = {"lead_id": "NEW-1", "created_at": "2025-12-01T09:00:00+01:00", "industry": "quantum basket weaving",
               "country": "ZZ", "lead_source": "carrier pigeon", "employees": 12, "job_title": None}
    bare = {"lead_id": "NEW-2", "created_at": "2025-12-01"}
    reply = client.post("/score", {"leads": [strange, bare], "as_of": AS_OF})
    assert reply.status == 200, reply.body
    for score in reply.json()["scores"]:
        assert 1 <= score["score"] <= 99 and 0 < score["probability"] < 1


def test_a_date_java_writes_with_its_zone_id_in_brackets_scores_as_the_instant_it_names(client, server, leads):
    """Java's ZonedDateTime.toString() ("...Z[UTC]", "...+01:00[Europe/Paris]", "...[UTC+01:00]"), which Java/Kotlin
    CRM connectors send, was refused as an unparsable created_at, and as an unparsable as_of after created_at read it
    (as_of had a reader of its own); both score and log as the same instant written in ISO 8601 does."""
    created, as_of = pd.Timestamp(leads[0]["created_at"]), pd.Timestamp(AS_OF)
    store = Store(server.params.serving.store_url)

    def probability(created_at: str, as_of: str = AS_OF) -> float:
        lead_id = f"JAVA-DATE-{uuid.uuid4().hex[:8]}"
        reply = client.post("/score", {"leads": [{**leads[0], "lead_id": lead_id, "created_at": created_at}],
                                       "as_of": as_of})
        assert reply.status == 200, reply.body
        assert store.score_log_frame().set_index("lead_id").loc[lead_id, "features_as_of"] == pd.Timestamp(AS_OF)
        return reply.json()["scores"][0]["probability"]

    expected = probability(f"{created:%Y-%m-%dT%H:%M:%S}Z")
    assert probability(f"{created:%Y-%m-%dT%H:%M:%S}Z[UTC]") == expected
    assert probability(f"{created + pd.Timedelta(hours=1):%Y-%m-%dT%H:%M:%S}+01:00[Europe/Paris]") == expected
    assert probability(f"{created + pd.Timedelta(hours=1):%Y-%m-%dT%H:%M:%S}[UTC+01:00]") == expected  # Java's sign
    an_hour_later = as_of + pd.Timedelta(hours=1)
    for java_as_of in (f"{as_of:%Y-%m-%dT%H:%M}Z[UTC]", f"{an_hour_later:%Y-%m-%dT%H:%M}+01:00[GMT+01:00]",
                       f"{an_hour_later:%Y-%m-%dT%H:%M:%S}[Europe/Paris]"):
        assert probability(f"{created:%Y-%m-%dT%H:%M:%S}Z", java_as_of) == expected, java_as_of
    refused = client.post("/score", {"leads": [leads[0]], "as_of": f"{as_of:%Y-%m-%dT%H:%M}Z[Mars/Base]"})
    assert refused.status == 422, refused.body
    (problem,) = refused.json()["detail"]
    assert (problem["field"], problem["type"]) == ("as_of", "unparsable_date"), problem
    assert "unknown time zone 'Mars/Base' in brackets" in problem["msg"], problem


def test_each_score_names_the_values_the_model_never_saw_as_the_lead_sent_them(client, leads):
    """A lead source added since training ("TikTok") was scored as the model's "other" level with no sign of it: a
    CRM mapping mistake went unnoticed. Each score now names such values per field, as sent; {} when there is none."""
    known = {k: v for k, v in leads[0].items() if k != "activities"}
    sent = [known, {**known, "lead_id": "NEW-SOURCE", "lead_source": "TikTok"},
            {**known, "lead_id": "NEW-BOTH", "lead_source": " TikTok ", "industry": "Quantum Basket Weaving"}]
    reply = client.post("/score", {"leads": sent, "as_of": AS_OF})
    assert reply.status == 200, reply.body
    assert [s["never_seen"] for s in reply.json()["scores"]] == [
        {}, {"lead_source": "TikTok"}, {"lead_source": "TikTok", "industry": "Quantum Basket Weaving"}]


def test_explain_and_the_score_log_name_the_values_never_seen_as_score_does(client, server, leads):
    """A rep asking /explain why a lead scored as it did, or reading its card, was not told its lead source was new
    to the model: /explain answers never_seen as /score does, as /docs.json says, and the score log keeps it."""
    known = {k: v for k, v in leads[0].items() if k != "activities"}
    sent = [{**known, "lead_id": "NS-NONE"}, {**known, "lead_id": "NS-SOURCE", "lead_source": " TikTok "},
            {**known, "lead_id": "NS-BOTH", "lead_source": "TikTok", "industry": True}]
    scores = client.post("/score", {"leads": sent, "as_of": AS_OF}).json()["scores"]
    explained = [client.post("/explain", {"lead": lead, "as_of": AS_OF}) for lead in sent]
    assert [e.status for e in explained] == [200] * 3, [e.body for e in explained]
    expected = [{}, {"lead_source": "TikTok"}, {"lead_source": "TikTok", "industry": "true"}]
    assert [e.json()["never_seen"] for e in explained] == [s["never_seen"] for s in scores] == expected
    store = Store(server.params.serving.store_url)
    assert [store.latest_score(lead["lead_id"])["never_seen"] for lead in sent] == expected
    spec = client.get("/docs.json").json()
    assert all(_documented(spec, "Explanation", e.json()) for e in explained)
    assert not _documented(spec, "Explanation", {**explained[1].json(), "never_seen": {"Lead Source": "TikTok"}})


def test_each_score_names_the_activity_types_the_model_does_not_read_as_the_lead_sent_them(client, server, leads):
    """An activity of a type the model does not read ("webinar_attend", or a CRM label data.value_maps.activity does
    not translate) scored as no activity with no sign of it: a CRM mapping mistake scored every lead as never active.
    /score and /explain now name such types per lead, as sent, by the rule batch scoring warns by; [] when none;
    /metrics counts the leads; /docs.json documents the field."""
    known = {k: v for k, v in leads[0].items() if k != "activities"}
    when = leads[0]["activities"][0]["occurred_at"]
    sent = [{**known, "lead_id": "UA-MIXED", "activities": [
                {"occurred_at": when, "activity": "demo_request"}, {"occurred_at": when, "activity": "webinar_attend"},
                {"occurred_at": when, "activity": " webinar_attend "}]},
            {**known, "lead_id": "UA-READ", "activities": [  # in another letter case too, as features compare them
                {"occurred_at": when, "activity": "demo_request"}, {"occurred_at": when, "activity": "Email_Open"}]},
            {**known, "lead_id": "UA-UNREAD", "activities": [{"occurred_at": when, "activity": "Demo Requested"}]},
            {**known, "lead_id": "UA-NONE"}]
    before = server.lead_counts()
    reply = client.post("/score", {"leads": sent, "as_of": AS_OF})
    assert reply.status == 200, reply.body
    scores = reply.json()["scores"]
    expected = [["webinar_attend"], [], ["Demo Requested"], []]
    assert [s["unread_activity_types"] for s in scores] == expected
    assert scores[2]["probability"] == scores[3]["probability"]  # why it must be told: scored as no activity at all
    explained = [client.post("/explain", {"lead": lead, "as_of": AS_OF}) for lead in sent]
    assert [e.json()["unread_activity_types"] for e in explained] == expected, [e.body for e in explained]
    store = Store(server.params.serving.store_url)  # the score log keeps them, as it keeps never_seen
    assert [store.latest_score(lead["lead_id"])["unread_activity_types"] for lead in sent] == expected
    unread_leads = ("leadscore_unread_activity_leads_total", "")
    assert server.lead_counts()[unread_leads] - before.get(unread_leads, 0) == 2
    spec = client.get("/docs.json").json()
    assert all(_documented(spec, "LeadScore", s) for s in scores) and all(
        _documented(spec, "Explanation", e.json()) for e in explained)
    assert not _documented(spec, "LeadScore", {**scores[0], "unread_activity_types": {"webinar_attend": 2}})
    documented = spec["components"]["schemas"]["LeadScore"]
    assert "unread_activity_types" in documented["required"]
    assert "'demo_request'" in documented["properties"]["unread_activity_types"]["description"]


def test_a_very_long_value_is_echoed_by_its_start_and_length_not_whole(client, server, leads):
    """A CRM mapping its notes field to status, reason, lead source or activity type sent 90,000 characters that came
    back whole: a 90 KB refusal per decision, and a lead source never seen (or an activity type not read) echoed in
    the answer and stored so in the score log. Each is now shown by its start and its length (ingest.shortened), as
    an export's refusals show a cell: the integrator still sees which value it was."""
    long = "Called twice, no answer." * 3750
    for field in ("status", "reason"):
        reply = client.post("/feedback", _feedback(f"evt-long-{field}", **{field: long}))
        assert reply.status == 422 and len(reply.body) < 2_000, (field, reply.status, len(reply.body))
        (problem,) = reply.json()["detail"]
        assert problem["field"] == field and "'Called twice, no answer." in problem["msg"], problem
        assert "(90,002 characters)" in problem["msg"], problem
    known = {k: v for k, v in leads[0].items() if k != "activities"}
    when = leads[0]["activities"][0]["occurred_at"]
    sent = [{**known, "lead_id": "LONG-SOURCE", "lead_source": long},
            {**known, "lead_id": "LONG-TYPE", "activities": [{"occurred_at": when, "activity": long}]}]
    store = Store(server.params.serving.store_url)
    for lead in sent:
        reply = client.post("/score", {"leads": [lead], "as_of": AS_OF})
        assert reply.status == 200 and len(reply.body) < 5_000, (reply.status, len(reply.body))
        logged = store.latest_score(lead["lead_id"])
        assert len(json.dumps(logged, default=str)) < 5_000
        (score,) = reply.json()["scores"]
        shown = score["never_seen"].get("lead_source") or score["unread_activity_types"][0]
        assert shown.startswith("Called twice, no answer.") and shown.endswith("(90,000 characters)"), shown
        assert shown in (logged["never_seen"].get("lead_source"), *logged["unread_activity_types"])


def test_a_crm_label_the_models_value_maps_translate_is_a_type_it_reads(trained, leads):
    """Types are judged after data.value_maps.activity, as the model's features read them: "Requested Demo" mapped to
    demo_request is read (and scores as demo_request does), an unmapped label is named as the lead sent it."""
    from serving.scoring import ModelRef, explain_request, score_request

    data = trained.scorer.data.model_copy(update={"value_maps": {"activity": {"Requested Demo": "demo_request"}}})
    scorer = dataclasses.replace(trained.scorer, data=data)
    lead = {k: v for k, v in leads[0].items() if k != "activities"}
    when = leads[0]["activities"][0]["occurred_at"]
    sent = [[{"occurred_at": when, "activity": kind}] for kind in ("demo_request", " requested demo ", "Demo Requested")]
    scored = score_request(scorer, [{**lead, "lead_id": f"UA-{i}"} for i in range(3)], sent, ModelRef.of(scorer),
                           as_of=pd.Timestamp(AS_OF), top_k=1, card_key=b"key", card_link_days=1).results
    assert [score["unread_activity_types"] for score in scored] == [[], [], ["Demo Requested"]]
    assert scored[0]["probability"] == scored[1]["probability"] != scored[2]["probability"]
    explained = explain_request(scorer, lead, sent[2], ModelRef.of(scorer), as_of=pd.Timestamp(AS_OF))
    assert explained["unread_activity_types"] == ["Demo Requested"]


def test_a_model_that_does_not_remember_its_training_values_answers_null_not_none_never_seen(trained, leads):
    """A model pickled before encoders remembered their training values cannot tell a new value from a known one:
    never_seen is null ("cannot tell"), not {} ("none"), for each lead, and the response is still the documented one."""
    from serving.schemas import Explanation, ScoreResponse
    from serving.scoring import ModelRef, explain_request, score_request

    old_encoder = object.__new__(type(trained.scorer.encoder))
    old_encoder.__dict__.update({k: v for k, v in trained.scorer.encoder.__getstate__().items() if k != "seen"})
    old = dataclasses.replace(trained.scorer, encoder=pickle.loads(pickle.dumps(old_encoder)))
    lead = {k: v for k, v in leads[0].items() if k != "activities"}
    scored = score_request(old, [lead, {**lead, "lead_id": "NEW-SOURCE", "lead_source": "TikTok"}], [None, None],
                           ModelRef.of(old), as_of=pd.Timestamp(AS_OF), top_k=1, card_key=b"key", card_link_days=1)
    assert [score["never_seen"] for score in scored.results] == [None, None]
    assert ScoreResponse.model_validate({"scores": scored.results, "warnings": scored.warnings}).scores[1].never_seen is None
    explained = explain_request(old, {**lead, "lead_id": "NEW-SOURCE", "lead_source": "TikTok"}, None, ModelRef.of(old),
                                as_of=pd.Timestamp(AS_OF))
    assert Explanation.model_validate(explained).never_seen is None


def test_each_score_is_logged_with_the_email_only_hashed(client, server, leads):
    lead = {**leads[1], "lead_id": "LOGGED-1", "email": "  Rita.Hayworth@Granitedata.COM "}
    placeholder = {**leads[1], "lead_id": "LOGGED-2", "email": "Test@Test.com"}  # no one's: no hash to find it by
    score = client.post("/score", {"leads": [lead, placeholder], "as_of": AS_OF}).json()["scores"][0]
    store = Store(server.params.serving.store_url)
    logged = store.latest_score("LOGGED-1")
    assert (logged["score"], logged["tier"], logged["model_version"]) == (score["score"], score["tier"], score["model_version"])
    assert logged["email_sha256"] == hashlib.sha256(b"rita.hayworth@granitedata.com").hexdigest()
    assert store.latest_score("LOGGED-2")["email_sha256"] is None
    assert [f["phrase"] for f in logged["factors"]] == [f["phrase"] for f in score["reasons"]["positive"] + score["reasons"]["negative"]]
    stored_bytes = b"".join(p.read_bytes() for p in server.folder.glob("store.db*"))
    assert b"hayworth" not in stored_bytes.lower()
    assert "hayworth" not in server.log_path.read_text(errors="replace").lower()


def test_the_log_keeps_the_as_of_a_lead_was_scored_at_beside_the_wall_clock(client, server, leads):
    """A CRM re-scoring open leads as of a past day: monitor rebuilds their features at that day, not today."""
    before = pd.Timestamp.now(tz="UTC").tz_localize(None)
    client.post("/score", {"leads": [{**leads[3], "lead_id": "AS-OF-1"}], "as_of": AS_OF})
    client.post("/score", {"leads": [{**leads[3], "lead_id": "NOW-1"}]})
    log = Store(server.params.serving.store_url).score_log_frame().set_index("lead_id")
    assert log.loc["AS-OF-1", "features_as_of"] == pd.Timestamp(AS_OF)
    assert log.loc["AS-OF-1", "scored_at"] >= before  # the wall clock: when the CRM got the score
    assert log.loc["NOW-1", "features_as_of"] == log.loc["NOW-1", "scored_at"]


def test_explain_gives_every_factor_adding_up_to_the_models_margin(client, trained, leads):
    explained = client.post("/explain", {"lead": leads[2], "as_of": AS_OF}).json()
    scored = client.post("/score", {"leads": [leads[2]], "as_of": AS_OF}).json()["scores"][0]
    signals = {d.signal for d in trained.scorer.catalog}
    assert {f["signal"] for f in explained["factors"]} == signals
    assert explained["base"] + sum(f["contribution"] for f in explained["factors"]) == pytest.approx(explained["margin"])
    lead = pd.DataFrame.from_records([{k: v for k, v in leads[2].items() if k != "activities"}])
    acts = pd.DataFrame.from_records([{**a, "lead_id": leads[2]["lead_id"]} for a in leads[2]["activities"]])
    features, problems, ages = trained.scorer.build(lead, acts, as_of=pd.Timestamp(AS_OF))
    assert not problems
    assert explained["margin"] == pytest.approx(trained.scorer.margin(features)[0], abs=1e-6)
    assert explained["probability"] == pytest.approx(trained.scorer.predict_proba(features, ages)[0], abs=1e-12)
    assert explained["score"] == scored["score"]
    assert all(f["phrase"] for f in explained["factors"])


def test_explain_answers_the_tier_and_likely_rejection_reason_score_gives(client, leads):
    """A rep's panel built on /explain alone could not show "Tier B · likely rejection: Ringing, 41%": /explain
    answered the score but neither the tier nor the likely rejection reason. It now answers both as /score does, under
    the same names, and /docs.json documents them."""
    scores = client.post("/score", {"leads": leads, "as_of": AS_OF}).json()["scores"]
    explained = [client.post("/explain", {"lead": lead, "as_of": AS_OF}).json() for lead in leads]
    same = ("score", "tier", "likely_rejection_reason")
    assert [{k: e[k] for k in same} for e in explained] == [{k: s[k] for k in same} for s in scores]
    for number in ("probability", "likely_rejection_probability"):  # one lead's TreeSHAP sums as 8 leads' to 1e-16
        assert [e[number] for e in explained] == pytest.approx([s[number] for s in scores], abs=1e-12)
    assert all(e["likely_rejection_reason"] for e in explained)  # the sample model learns reasons
    spec = client.get("/docs.json").json()
    assert {*same, "likely_rejection_probability"} <= set(spec["components"]["schemas"]["Explanation"]["required"])
    assert all(_documented(spec, "Explanation", e) for e in explained)
    assert not _documented(spec, "Explanation", {**explained[0], "tier": None})


def test_a_crm_record_forwarded_as_it_is_scores_as_without_the_fields_the_model_does_not_read(client, leads):
    """Every Salesforce REST record carries an "attributes" object: /score answered 400 "leads[0].attributes:
    expected text, a number, true/false or null, not a JSON object", so a record could not be forwarded as it is.
    A field the model does not read is ignored, whatever its value; in a lead or in an activity."""
    lead = {**leads[3], "lead_id": "SF-RECORD"}
    record = {"attributes": {"type": "Lead", "url": "/services/data/v59.0/sobjects/Lead/00Q5e00000AbCdEAAA"},
              **lead, "Tags__c": ["webinar", "pricing"],
              "activities": [{"attributes": {"type": "Task"}, **activity} for activity in lead["activities"]]}
    plain = client.post("/score", {"leads": [lead], "as_of": AS_OF})
    forwarded = client.post("/score", {"leads": [record], "as_of": AS_OF})
    assert (plain.status, forwarded.status) == (200, 200), forwarded.body
    (expected,), (got,) = plain.json()["scores"], forwarded.json()["scores"]
    assert {k: v for k, v in got.items() if k != "card_url"} == {k: v for k, v in expected.items() if k != "card_url"}
    explained = client.post("/explain", {"lead": record, "as_of": AS_OF})
    assert explained.status == 200, explained.body
    assert explained.json() == client.post("/explain", {"lead": lead, "as_of": AS_OF}).json()


def _renamed(lead: dict, name: str, sent_as: str) -> dict:
    """The lead with its field `name` sent under `sent_as`, as a CRM mapping mistake sends it."""
    return {(sent_as if k == name else k): v for k, v in lead.items()}


def test_a_field_sent_under_a_name_like_one_the_model_reads_is_warned_of_naming_the_field_and_the_lead(client, leads):
    """A CRM sending "Industry" or "industy" for industry, or its own "Lead Source" that the model's data.mapping does
    not declare, was scored as having none with no sign: a mapping mistake lowered scores silently. /score and /explain
    still score the lead as without the field, and warn at the field as sent, naming the field to send and the lead by
    its id (once at leads[*] when every lead of the batch sends it); a field that looks like none the model reads
    ("Twitter Handle") stays silent. /docs.json requires the warnings, as a feedback receipt's."""
    plain = [{**lead, "Twitter Handle": "@ana"} for lead in leads if "industry" in lead and "lead_source" in lead][:3]
    assert len(plain) == 3
    sent = [_renamed(plain[0], "industry", "Industry"), _renamed(plain[1], "industry", "industy"), plain[2]]
    without = [{k: v for k, v in lead.items() if k != "industry"} for lead in plain[:2]] + [plain[2]]
    reply = client.post("/score", {"leads": sent, "as_of": AS_OF})
    expected = client.post("/score", {"leads": without, "as_of": AS_OF})
    assert (reply.status, expected.status) == (200, 200), reply.body
    assert [s["probability"] for s in reply.json()["scores"]] == [s["probability"] for s in expected.json()["scores"]]
    assert expected.json()["warnings"] == [] and client.post("/score", {"leads": plain, "as_of": AS_OF}).json()[
        "warnings"] == []
    warnings = reply.json()["warnings"]
    assert [(w["loc"], w["field"], w["type"], w["lead_id"]) for w in warnings] == [
        (["leads", 0, "Industry"], "leads[0].Industry", "misnamed_field", plain[0]["lead_id"]),
        (["leads", 1, "industy"], "leads[1].industy", "misnamed_field", plain[1]["lead_id"])]
    assert warnings[1]["msg"].startswith("field 'industry', which the model reads, is not sent (the lead has 'industy', "
                                         "which looks like the same name written differently"), warnings[1]["msg"]
    assert "send it as 'industry'" in warnings[1]["msg"] and "data.mapping.leads" in warnings[1]["msg"]

    every = client.post("/score", {"leads": [_renamed(lead, "lead_source", "Lead Source") for lead in plain],
                                   "as_of": AS_OF}).json()
    (warning,) = every["warnings"]
    assert (warning["loc"], warning["field"], "lead_id" in warning) == (["leads", "*", "Lead Source"],
                                                                         "leads[*].Lead Source", False)
    assert "every lead has 'Lead Source'" in warning["msg"] and "send it as 'lead_source'" in warning["msg"]

    explained = client.post("/explain", {"lead": sent[0], "as_of": AS_OF}).json()
    assert explained["probability"] == client.post("/explain", {"lead": without[0], "as_of": AS_OF}).json()["probability"]
    assert [(w["field"], "lead_id" in w) for w in explained["warnings"]] == [("lead.Industry", False)]
    assert client.post("/explain", {"lead": plain[0], "as_of": AS_OF}).json()["warnings"] == []

    spec = client.get("/docs.json").json()
    for answer, body in (("ScoreResponse", reply.json()), ("ScoreResponse", every), ("Explanation", explained)):
        assert "warnings" in spec["components"]["schemas"][answer]["required"]
        assert _documented(spec, answer, body)
        assert not _documented(spec, answer, {k: v for k, v in body.items() if k != "warnings"})


def test_a_misnamed_field_is_warned_of_only_where_a_value_was_lost(client, leads):
    """"Industry": null was warned of as a misnamed industry, though the lead lost nothing; "industry": null beside
    "Industry": "software" was not, though that lead lost its industry. A field counts by its value: null, blank or
    one of data.missing_values is none."""
    lead = next(lead for lead in leads if "industry" in lead)
    without = {k: v for k, v in lead.items() if k != "industry"}
    for empty in (None, "", "N/A"):
        reply = client.post("/score", {"leads": [{**without, "Industry": empty}], "as_of": AS_OF})
        assert (reply.status, reply.json()["warnings"]) == (200, []), (empty, reply.body)
    lost = client.post("/score", {"leads": [{**without, "industry": None, "Industry": lead["industry"]}],
                                  "as_of": AS_OF})
    assert [(w["field"], w["type"]) for w in lost.json()["warnings"]] == [("leads[0].Industry", "misnamed_field")]


def test_activities_dated_after_the_scoring_time_or_long_before_their_lead_are_warned_of_and_scored_as_before(
        client, trained, sample_params, leads):
    """An activity dated after the request's as_of (after now without one) was left out of the score with no sign,
    and one dated long before its lead was created counted with none: a CRM sending wrong dates (a time zone, the
    wrong field mapped) could not tell. /score and /explain warn at the lead's activities, naming the lead, how many
    and what was done; the score is as before: as without the later ones, and the batch path's with the earlier one."""
    lead = next(lead for lead in leads if len(lead["activities"]) > 1)
    created = pd.Timestamp(lead["created_at"])
    later = [{"occurred_at": "2026-01-05T10:00:00Z", "activity": "demo_request"},
             {"occurred_at": "2031-03-01", "activity": "pricing_view"}]
    early = [{"occurred_at": (created - pd.Timedelta(days=30)).isoformat(), "activity": "page_view"}]
    counted = {**lead, "activities": lead["activities"] + early}
    sent = {**lead, "activities": lead["activities"] + later + early}
    other = next(other for other in leads if other["lead_id"] != lead["lead_id"])
    reply = client.post("/score", {"leads": [other, sent], "as_of": AS_OF})
    expected = client.post("/score", {"leads": [other, counted], "as_of": AS_OF})
    assert (reply.status, expected.status) == (200, 200), reply.body
    assert reply.json()["scores"][1]["probability"] == expected.json()["scores"][1]["probability"]
    batch, _ = _in_process(trained, [counted], sample_params.serving.top_factors)
    assert reply.json()["scores"][1]["probability"] == pytest.approx(batch["probability"].iloc[0], abs=1e-12)
    warnings = reply.json()["warnings"]
    assert [(w["field"], w["type"], w["lead_id"]) for w in warnings] == [
        ("leads[1].activities", "activity_after_scoring_time", lead["lead_id"]),
        ("leads[1].activities", "activity_before_created", lead["lead_id"])]
    assert warnings[0]["msg"].startswith("2 of the lead's activities have an 'occurred_at' after the request's as_of "
                                         "(2025-12-31 00:00:00 UTC)") and "they were left out" in warnings[0]["msg"]
    assert warnings[1]["msg"].startswith("1 of the lead's activities has an 'occurred_at' more than a day before the "
                                         "lead's 'created_at'") and "it was counted" in warnings[1]["msg"]
    assert expected.json()["warnings"][0]["type"] == "activity_before_created"
    assert client.post("/score", {"leads": leads, "as_of": AS_OF}).json()["warnings"] == []  # web visits within a day

    soon = (pd.Timestamp.now(tz="UTC") + pd.Timedelta(hours=6)).isoformat()
    now = client.post("/score", {"leads": [{**lead, "activities": lead["activities"] + [
        {"occurred_at": soon, "activity": "demo_request"}]}]}).json()
    (warning,) = now["warnings"]
    assert warning["msg"].startswith("1 of the lead's activities has an 'occurred_at' after now (") and (
        "it was left out" in warning["msg"]), warning

    explained = client.post("/explain", {"lead": sent, "as_of": AS_OF}).json()
    assert explained["probability"] == pytest.approx(reply.json()["scores"][1]["probability"], abs=1e-12)  # one lead
    assert [(w["field"], w["type"], w["msg"], "lead_id" in w) for w in explained["warnings"]] == [
        ("lead.activities", w["type"], w["msg"], False) for w in warnings]
    spec = client.get("/docs.json").json()
    assert _documented(spec, "ScoreResponse", reply.json()) and _documented(spec, "Explanation", explained)


def test_the_times_a_warning_or_refusal_quotes_name_their_zone_utc(client, leads):
    """A CRM sending its local time (09:00+02:00) read "after the request's as_of (2025-12-31 07:00:00)": the time
    read right, converted to UTC, but quoted without its zone, as if the service had misread it."""
    lead = {**leads[0], "lead_id": "IN-ZONE", "created_at": "2025-12-30T12:00:00+05:30",
            "activities": [{"occurred_at": "2025-12-31T09:30:00+02:00", "activity": "demo_request"},
                           {"occurred_at": "2025-11-01T10:00:00+05:30", "activity": "page_view"}]}
    as_of = "2025-12-31T09:00:00+02:00"
    for route, body, key in (("/score", {"leads": [lead]}, "warnings"), ("/explain", {"lead": lead}, "warnings")):
        reply = client.post(route, {**body, "as_of": as_of})
        assert reply.status == 200, reply.body
        after, before = reply.json()[key]
        assert "after the request's as_of (2025-12-31 07:00:00 UTC), the time" in after["msg"], after
        assert "before the lead's 'created_at' (2025-12-30 06:30:00 UTC):" in before["msg"], before
    late = client.post("/score", {"leads": [{**lead, "created_at": "2026-01-02T12:00:00+05:30"}], "as_of": as_of})
    assert late.status == 422, late.body
    assert late.json()["detail"][0]["msg"].startswith(
        "created 2026-01-02 06:30:00 UTC is after the time it is scored as of (2025-12-31 07:00:00 UTC): "), late.body


@pytest.mark.parametrize("value", [{"value": "organic"}, ["organic"]], ids=["object", "array"])
def test_an_object_or_array_in_a_field_the_model_reads_is_still_refused_at_its_path(client, server, leads, value):
    """Ignoring the fields the model does not read must not ignore one it reads: lead_source (a category) and an
    activity's detail (a contract field) refuse an object or a list, as before, with nothing scored."""
    lead = {**leads[0], "lead_id": "NESTED-READ", "lead_source": value,
            "activities": [{**leads[0]["activities"][0], "detail": value}]}
    scored = client.post("/score", {"leads": [leads[1], lead], "as_of": AS_OF})
    explained = client.post("/explain", {"lead": lead, "as_of": AS_OF})
    assert (scored.status, explained.status) == (400, 400), (scored.body, explained.body)
    words = f"expected text, a number, true/false or null, not a JSON {'object' if isinstance(value, dict) else 'array'}"
    assert [(d["field"], d["msg"]) for d in scored.json()["detail"]] == [
        ("leads[1].lead_source", words), ("leads[1].activities[0].detail", words)]
    assert [d["field"] for d in explained.json()["detail"]] == ["lead.lead_source", "lead.activities[0].detail"]
    assert "nothing was scored" in scored.json()["error"]
    assert Store(server.params.serving.store_url).latest_score("NESTED-READ") is None


def test_a_field_is_read_under_the_name_the_models_mapping_gives_it(trained, leads):
    """Which fields are read is the served model's data.mapping: a mapped CRM field refuses an object, the
    contract name it maps away from too (ingest reads it when the CRM field is absent), an unmapped one is ignored."""
    from serving.scoring import ModelRef, RequestError, score_request

    data = trained.scorer.data
    mapped = dataclasses.replace(trained.scorer, data=data.model_copy(update={"mapping": data.mapping.model_copy(
        update={"leads": {"LeadSource": "lead_source"}})}))
    lead = {k: v for k, v in leads[0].items() if k != "activities"}
    nested = {"value": "organic"}

    def score(sent: dict):
        return score_request(mapped, [sent], [None], ModelRef.of(mapped), as_of=pd.Timestamp(AS_OF), top_k=1,
                             card_key=b"key", card_link_days=1)

    for name in ("LeadSource", "lead_source"):
        with pytest.raises(RequestError) as refused:
            score({**{k: v for k, v in lead.items() if k != "lead_source"}, name: nested})
        assert (refused.value.status, [d["field"] for d in refused.value.detail]) == (400, [f"leads[0].{name}"])
    plain = score(lead).results[0]
    assert score({**lead, "Description": nested}).results[0]["probability"] == plain["probability"]


def test_a_lead_sending_a_mapped_field_also_under_its_contract_name_is_read_once_or_refused_naming_both(trained, leads):
    """The model maps the CRM's "Lead Source" to lead_source; a lead carrying "lead_source" too (an integration adding
    the contract's names to a forwarded record) was refused for every lead at leads[*] ("several CRM columns map to
    it"), whatever it held. The same value (as text, stripped; a blank one holds none) is scored as one field; two
    values are refused at that lead, naming both fields, on /score and /explain: the service never picks one."""
    from serving.scoring import ModelRef, RequestError, explain_request, score_request

    data = trained.scorer.data
    mapped = dataclasses.replace(trained.scorer, data=data.model_copy(update={"mapping": data.mapping.model_copy(
        update={"leads": {"Lead Source": "lead_source"}})}))
    model = ModelRef.of(mapped)

    def crm(lead: dict, **extra) -> dict:
        out = {k: v for k, v in lead.items() if k not in ("activities", "lead_source")}
        return {**out, "Lead Source": lead["lead_source"], **extra}

    def probabilities(sent: list[dict]) -> list[float]:
        scored = score_request(mapped, sent, [None] * len(sent), model, as_of=pd.Timestamp(AS_OF), top_k=1,
                               card_key=b"key", card_link_days=1)
        return [score["probability"] for score in scored.results]

    plain = probabilities([crm(leads[0]), crm(leads[1])])
    assert probabilities([crm(leads[0], lead_source=f" {leads[0]['lead_source']} "), crm(leads[1])]) == plain
    assert probabilities([crm(leads[0], lead_source=""), crm(leads[1], lead_source=None)]) == plain
    # One lead under the CRM's name, the next under the contract's: each sends the field once (the request's frame
    # holding both columns was refused for every lead at leads[*]).
    assert probabilities([crm(leads[0]), {k: v for k, v in leads[1].items() if k != "activities"}]) == plain
    other = next(lead["lead_source"] for lead in leads if lead["lead_source"] != leads[1]["lead_source"])
    twice = crm(leads[1], lead_source=other)
    with pytest.raises(RequestError) as scored:
        probabilities([crm(leads[0]), twice])
    with pytest.raises(RequestError) as explained:
        explain_request(mapped, twice, None, model, as_of=pd.Timestamp(AS_OF))
    words = (f"'Lead Source' and 'lead_source' are one field, lead_source (the model's data.mapping.leads), sent with "
             f"different values ('Lead Source': {leads[1]['lead_source']!r}, 'lead_source': {other!r}): send it once")
    assert scored.value.status == explained.value.status == 422
    assert [(d["field"], d["msg"], d["type"]) for d in scored.value.detail] == [
        ("leads[1].Lead Source", words, "ambiguous_column")]
    assert [(d["field"], d["msg"]) for d in explained.value.detail] == [("lead.Lead Source", words)]


def test_a_lead_id_sent_under_the_other_name_the_mapping_gives_it_keeps_its_activities(trained, leads):
    """HubSpot's export names the id `Record ID` and its API `hs_object_id`, both mapped to lead_id: a lead the API sent
    under the second name was scored as never active, its activities left out without a word (each is given its
    lead's id, which was looked up under the first name alone), and a number there was not refused as an id."""
    from serving.scoring import ModelRef, RequestError, score_request

    data = trained.scorer.data
    mapped = dataclasses.replace(trained.scorer, data=data.model_copy(update={"mapping": data.mapping.model_copy(
        update={"leads": {"Record ID": "lead_id", "hs_object_id": "lead_id"}})}))
    lead = {k: v for k, v in leads[0].items() if k not in ("activities", "lead_id")}
    as_of = max(pd.Timestamp(a["occurred_at"]) for a in leads[0]["activities"]) + pd.Timedelta(days=1)  # still fresh

    def probability(id_field: str, lead_id, activities: list[dict] | None) -> float:
        scored = score_request(mapped, [{**lead, id_field: lead_id}], [activities], ModelRef.of(mapped),
                               as_of=as_of, top_k=1, card_key=b"key", card_link_days=1)
        return scored.results[0]["probability"]

    active = probability("Record ID", leads[0]["lead_id"], leads[0]["activities"])
    assert active != probability("Record ID", leads[0]["lead_id"], None)
    assert probability("hs_object_id", leads[0]["lead_id"], leads[0]["activities"]) == active
    for field in ("Record ID", "hs_object_id"):
        with pytest.raises(RequestError) as refused:
            probability(field, 42, None)
        assert [d["field"] for d in refused.value.detail] == [f"leads[0].{field}"]


def test_a_lead_sending_a_date_or_number_under_two_names_is_read_once_where_they_read_alike(trained, leads):
    """A field sent under the CRM's name and the contract's is compared as its column reads it, as an export's two
    columns are (`ingest.one_value_per_row`): a date with and without its zone ("...Z"), or a number written "120"
    and "120.0", was refused as different text; it is one value now. A different date is still refused."""
    from serving.scoring import ModelRef, RequestError, score_request

    data = trained.scorer.data
    mapped = dataclasses.replace(trained.scorer, data=data.model_copy(update={"mapping": data.mapping.model_copy(
        update={"leads": {"Created Date": "created_at", "Employees": "employees"}})}))
    lead = next({k: v for k, v in lead.items() if k not in ("activities", "created_at", "employees")} | {
        "Created Date": lead["created_at"], "Employees": lead["employees"]} for lead in leads if "employees" in lead)
    created = pd.Timestamp(lead["Created Date"])

    def probability(sent: dict) -> float:
        return score_request(mapped, [sent], [None], ModelRef.of(mapped), as_of=pd.Timestamp(AS_OF), top_k=1,
                             card_key=b"key", card_link_days=1).results[0]["probability"]

    assert probability({**lead, "created_at": f"{created:%Y-%m-%dT%H:%M:%S}Z",
                        "employees": f"{lead['Employees']}.0"}) == probability(lead)
    with pytest.raises(RequestError) as refused:
        probability({**lead, "created_at": f"{created - pd.Timedelta(days=1):%Y-%m-%dT%H:%M:%S}Z"})
    assert [d["type"] for d in refused.value.detail] == ["ambiguous_column"]


def test_a_lead_sending_two_different_emails_is_refused_without_repeating_them(trained, leads):
    """Two fields mapping to the e-mail that hold different addresses are refused at the lead naming both fields,
    as for any field, but the message does not repeat the addresses: the lead and the fields named find them, and
    personal data has no place in an error a client's or a gateway's log keeps."""
    from serving.scoring import ModelRef, RequestError, score_request

    data = trained.scorer.data
    mapped = dataclasses.replace(trained.scorer, data=data.model_copy(update={"mapping": data.mapping.model_copy(
        update={"leads": {"Email": "email"}})}))
    sent = {**{k: v for k, v in leads[0].items() if k != "activities"}, "Email": "a.ruiz@acme.com",
            "email": "ana.ruiz@acme.com"}
    with pytest.raises(RequestError) as refused:
        score_request(mapped, [sent], [None], ModelRef.of(mapped), as_of=pd.Timestamp(AS_OF), top_k=1,
                      card_key=b"key", card_link_days=1)
    assert [(d["field"], d["msg"], d["type"]) for d in refused.value.detail] == [
        ("leads[0].email", "'email' and 'Email' are one field, email (the model's data.mapping.leads), sent with "
                           "different values (not repeated here: email is personal data): send it once",
         "ambiguous_column")]


# ---------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    ("change", "status", "field"),
    [
        (lambda ls: [{**ls[0], "employees": {"count": 5}}], 400, "leads[0].employees"),
        (lambda ls: [ls[0], {k: v for k, v in ls[1].items() if k != "lead_id"}], 422, "leads[1].lead_id"),
        (lambda ls: [ls[0], {**ls[1], "lead_id": "  "}], 422, "leads[1].lead_id"),
        (lambda ls: [{**ls[0], "created_at": "the day before yesterday"}], 422, "leads[0].created_at"),
        (lambda ls: [ls[0], {**ls[1], "created_at": "2026-02-01T00:00:00Z"}], 422, "leads[1].created_at"),
        (lambda ls: [{**ls[0], "employees": "a few"}], 422, "leads[0].employees"),
        (lambda ls: [{**ls[0], "activities": [{"occurred_at": "soon", "activity": "webinar"}]}], 422,
         "leads[0].activities[0].occurred_at"),
        (lambda ls: [ls[0], {**ls[1], "lead_id": ls[0]["lead_id"]}], 422, "leads[1].lead_id"),
        (lambda ls: [{"company": "No Id Inc"}], 422, "leads[0].lead_id"),
        (lambda ls: [ls[0], {**ls[1], "lead_id": 42}], 422, "leads[1].lead_id"),
        (lambda ls: [{**ls[0], "lead_id": True}], 422, "leads[0].lead_id"),
        (lambda ls: [{**ls[0], "lead_id": "L" * 256}], 422, "leads[0].lead_id"),
        (lambda ls: [{**ls[0], "lead_id": "a\nb"}], 422, "leads[0].lead_id"),
        (lambda ls: [ls[0], {**ls[1], "employees": True}], 422, "leads[1].employees"),
        (lambda ls: [{**ls[0], "created_at": "06/02/2025"}], 422, "leads[0].created_at"),
    ],
    ids=["wrong-type", "missing-id", "blank-id", "bad-date", "created-after-as-of", "bad-number", "bad-activity-date",
         "repeated-id", "no-id-field", "number-id", "true-id", "id-over-255", "line-break-in-id", "true-as-number",
         "day-or-month-first"],
)
def test_bad_leads_are_refused_naming_the_field(client, leads, change, status, field):
    reply = client.post("/score", {"leads": change(leads), "as_of": AS_OF})
    assert reply.status == status, reply.body
    detail = reply.json()["detail"]
    assert field in [d["field"] for d in detail]
    assert "nothing was scored" in reply.json()["error"]


@pytest.mark.parametrize(("value", "written"), [(float("-inf"), "-Infinity"), (float("inf"), "Infinity"),
                                               (float("nan"), "NaN")])
def test_a_json_nan_or_infinity_is_refused_in_a_text_field_as_in_a_number_field(client, server, leads, value, written):
    """Python's json writes NaN and Infinity, which JSON has not: -Infinity as a lead_source was scored as the
    category "-inf" and named in never_seen, NaN as no value; in employees Infinity was a 422 "number out of range".
    Each is a 400 at its lead's field, in the words /feedback's amount gets, and nothing is scored."""
    lead = {**leads[1], "lead_id": f"NOT-FINITE-{written}", "lead_source": value, "employees": value,
            "activities": [{**leads[1]["activities"][0], "detail": value}]}
    scored = client.post("/score", {"leads": [leads[0], lead], "as_of": AS_OF})
    explained = client.post("/explain", {"lead": lead, "as_of": AS_OF})
    stored = client.post("/feedback", _feedback(f"evt-amount-{written}", status="converted", reason=None, amount=value))
    assert (scored.status, explained.status, stored.status) == (400, 400, 400), (scored.body, explained.body)
    words = f"expected a finite number, not {written}"
    assert {(d["field"], d["msg"].partition(" (")[0]) for d in scored.json()["detail"]} == {
        ("leads[1].lead_source", words), ("leads[1].employees", words), ("leads[1].activities[0].detail", words)}
    assert {d["field"] for d in explained.json()["detail"]} == {
        "lead.lead_source", "lead.employees", "lead.activities[0].detail"}
    assert [(d["field"], d["msg"]) for d in stored.json()["detail"]] == [("amount", scored.json()["detail"][0]["msg"])]
    assert "nothing was scored" in scored.json()["error"]
    assert lead["lead_id"] not in Store(server.params.serving.store_url).score_log_frame()["lead_id"].tolist()


def test_a_lead_id_that_means_not_answered_is_one_problem_at_its_lead_not_one_per_activity(client, leads):
    """"N/A" is in data.missing_values: an empty id. Its activities once each named a lead the request did not hold."""
    acts = leads[1]["activities"][:3]
    reply = client.post("/score", {"leads": [leads[0], {**leads[1], "lead_id": "N/A", "activities": acts}], "as_of": AS_OF})
    assert reply.status == 422, reply.body
    assert [(d["field"], d["type"]) for d in reply.json()["detail"]] == [("leads[1].lead_id", "empty_value")]


def test_a_lead_without_an_id_is_missing_one_when_not_sent_and_empty_when_sent_blank_as_feedback_says(client, leads):
    """A blank lead id was "the lead id: String should have at least 1 character" (type string_too_short), and two
    leads without an id were told they shared one. Then every lead without an id was type missing, blank or "N/A"
    too, while /feedback calls a blank or "N/A" id empty_value: a CRM client handling problems by type read two codes
    for one mistake. Not sent (absent or null) is missing; sent holding no value is empty_value, on both routes."""
    known = {k: v for k, v in leads[0].items() if k != "lead_id"}
    sent = [leads[1], known, {**known, "lead_id": None}, {**known, "lead_id": ""}, {**known, "lead_id": "   "},
            {**known, "lead_id": "N/A"}, {**known, "lead_id": ""}]
    reply = client.post("/score", {"leads": sent, "as_of": AS_OF})
    assert reply.status == 422, reply.body
    detail = reply.json()["detail"]
    assert [(d["field"], d["type"]) for d in detail] == [
        ("leads[1].lead_id", "missing"), ("leads[2].lead_id", "missing"), ("leads[3].lead_id", "empty_value"),
        ("leads[4].lead_id", "empty_value"), ("leads[5].lead_id", "empty_value"), ("leads[6].lead_id", "empty_value")]
    assert not any("lead_id" in d for d in detail)
    assert detail[4]["msg"] == ("required field 'lead_id' holds no value: 'N/A' (the service reads blank text and "
                                "'Select' or 'N/A' as not answered)")
    explained = client.post("/explain", {"lead": {**known, "lead_id": "  "}, "as_of": AS_OF})
    stored = client.post("/feedback", _feedback("evt-blank-lead-id", lead_id="  "))
    assert (explained.status, stored.status) == (422, 422), (explained.body, stored.body)
    assert [(d["field"], d["type"]) for d in explained.json()["detail"]] == [("lead.lead_id", "empty_value")]
    assert [(d["field"], d["type"]) for d in stored.json()["detail"]] == [("lead_id", "empty_value")]


def test_each_problem_in_a_batch_names_its_lead_by_the_id_it_sent(client, leads):
    """A refused batch named a lead only by its place (leads[2].created_at), while a CRM integrator looks a lead up by
    its id: each problem about a lead or one of its activities now also has the lead's `lead_id` as sent (stripped),
    beside loc and field as before (a 422), and none where the lead sent no id the service takes; /docs.json documents
    it."""
    sent = [{**leads[0], "lead_id": "BATCH-OK"}, {**leads[1], "lead_id": " BATCH-BAD-DATE ", "created_at": "garbage"},
            {**leads[2], "lead_id": "BATCH-BAD-ACTIVITY", "activities": [{"activity": "webinar"}]},
            {**leads[3], "lead_id": "N/A", "created_at": "garbage"}]
    reply = client.post("/score", {"leads": sent, "as_of": AS_OF})
    assert reply.status == 422, reply.body
    named = [(d["field"], d.get("lead_id")) for d in reply.json()["detail"]]
    assert ("leads[1].created_at", "BATCH-BAD-DATE") in named and (
        "leads[2].activities[0].occurred_at", "BATCH-BAD-ACTIVITY") in named, named
    assert all(lead_id is None for field, lead_id in named if field.startswith("leads[3]")), named
    spec = client.get("/docs.json").json()
    assert spec["components"]["schemas"]["Problem"]["properties"]["lead_id"]["type"] == "string"
    assert _documented(spec, "ErrorResponse", reply.json())
    assert not _documented(spec, "ErrorResponse", {**reply.json(), "detail": [{**reply.json()["detail"][0], "lead_id": 7}]})


def test_a_400_of_a_batch_names_each_lead_at_fault_by_the_id_it_sent_as_a_422_does(client, leads):
    """A 400 named a lead only by its place in the batch (leads[391].activities), while its 422 named it by its id: an
    integrator sending 500 leads could not look up which was wrong. BentoML's JSON check (activities that are no list,
    an activity that is no object), which answers before the service sees the request, and the service's own (an
    object in a field the model reads) now name it as the 422 does; a lead that is no JSON object names none."""
    checked_by_bentoml = [{**leads[0], "lead_id": "JSON-OK"}, {**leads[1], "lead_id": " JSON-ACTIVITIES ", "activities": 5},
                          {**leads[2], "lead_id": "JSON-ACTIVITY", "activities": ["webinar"]}, "JSON-NOT-A-LEAD"]
    checked_by_the_service = [{**leads[0], "lead_id": "JSON-OK"}, {**leads[1], "lead_id": "JSON-FIELD",
                                                                   "employees": {"count": 5}}]
    spec = client.get("/docs.json").json()
    for sent, expected in [(checked_by_bentoml, [("leads[1].activities", "JSON-ACTIVITIES"),
                                                  ("leads[2].activities[0]", "JSON-ACTIVITY"), ("leads[3]", None)]),
                           (checked_by_the_service, [("leads[1].employees", "JSON-FIELD")])]:
        reply = client.post("/score", {"leads": sent, "as_of": AS_OF})
        assert reply.status == 400, reply.body
        assert [(d["field"], d.get("lead_id")) for d in reply.json()["detail"]] == expected
        assert _documented(spec, "ErrorResponse", reply.json())


@pytest.mark.parametrize("route", ["/score", "/explain", "/feedback"])
def test_json_nested_deeper_than_the_json_check_reads_is_a_400_in_the_error_shape_not_a_500(client, server, route):
    """JSON nested a few thousand levels deep (10 kB of brackets) was a plain-text 500 on /score: the JSON check
    refuses it (400), and re-reading the body for the leads' ids then raised Python's RecursionError."""
    nested = "[" * 5000 + "]" * 5000
    body = f'{{"leads": [{{"lead_id": "DEEP", "created_at": "2025-11-01", "note": {nested}}}]}}'.encode()
    reply = client.post(route, body, {"Content-Type": "application/json"})
    assert reply.status == 400, reply.body
    (problem,) = reply.json()["detail"]
    assert (problem["field"], problem["type"]) == ("body", "json_invalid"), problem
    assert "recursion limit" in problem["msg"], problem
    assert "ASGI callable returned without starting response" not in server.log_path.read_text(errors="replace")


def test_a_problem_about_no_lead_of_a_batch_has_no_lead_id_as_docs_json_says_not_null(client):
    """/docs.json gave Problem.lead_id "default: null" and a feedback receipt's warnings sent "lead_id": null, while
    the docs said absent: a client checking `"lead_id" in problem` took null for a lead's id."""
    spec = client.get("/docs.json").json()
    documented = spec["components"]["schemas"]["Problem"]
    assert "default" not in documented["properties"]["lead_id"] and "lead_id" not in documented.get("required", [])
    reply = client.post("/feedback", _feedback("evt-warning-no-lead-id", status="converted", reason=None, amount="lots"))
    assert reply.status == 201, reply.body
    (warning,) = reply.json()["warnings"]
    assert "lead_id" not in warning, warning


def test_a_lead_without_a_required_field_gets_one_answer_whatever_the_other_leads_send(client, leads):
    """Alone (no lead of the request has the field) it was "missing required column ... set data.mapping.leads" at
    leads[*].created_at, the CSV check's words; beside a lead that has it, "empty created_at" at leads[1]."""
    bare = {k: v for k, v in leads[0].items() if k != "created_at"}
    for body, index in [([bare], 0), ([leads[1], bare], 1), ([leads[1], {**bare, "created_at": None}], 1)]:
        reply = client.post("/score", {"leads": body, "as_of": AS_OF})
        assert reply.status == 422, reply.body
        assert reply.json()["detail"] == [{"loc": ["leads", index, "created_at"], "field": f"leads[{index}].created_at",
                                           "msg": "required field 'created_at' missing", "type": "missing",
                                           "lead_id": bare["lead_id"]}]
    for body, index in [([{**bare, "created_at": "  "}], 0), ([leads[1], {**bare, "created_at": "N/A"}], 1)]:
        reply = client.post("/score", {"leads": body, "as_of": AS_OF})
        assert reply.status == 422, reply.body
        assert [(d["field"], d["type"]) for d in reply.json()["detail"]] == [
            (f"leads[{index}].created_at", "empty_value")]
    two = client.post("/score", {"leads": [bare, {**bare, "lead_id": "NO-DATE-2"}], "as_of": AS_OF}).json()["detail"]
    assert [d["field"] for d in two] == ["leads[0].created_at", "leads[1].created_at"]
    # What the client can fix: a field name in other letter case is not the field.
    misspelled = client.post("/score", {"leads": [{**bare, "Created_At": leads[0]["created_at"]}], "as_of": AS_OF})
    assert misspelled.json()["detail"][0]["msg"].startswith(
        "required field 'created_at' missing (the lead has 'Created_At', which looks like the same name "
        "written differently): send it as 'created_at'. ")
    undated = client.post("/score", {"leads": [{**leads[0], "activities": [{"activity": "webinar"}, {
        "activity": "webinar", "occurred_at": ""}]}], "as_of": AS_OF})
    assert [(d["field"], d["type"]) for d in undated.json()["detail"]] == [
        ("leads[0].activities[0].occurred_at", "missing"), ("leads[0].activities[1].occurred_at", "empty_value")]
    explained = client.post("/explain", {"lead": bare, "as_of": AS_OF}).json()["detail"]
    assert [(d["field"], d["msg"]) for d in explained] == [("lead.created_at", "required field 'created_at' missing")]


def test_an_activity_without_a_required_field_is_told_of_its_own_fields_not_of_the_lead_id_the_service_adds(client,
                                                                                                          leads):
    """An activity lacking occurred_at was told "(the lead has fields this model does not read: 'lead_id'): if one of
    them is it under the CRM's name, send it as 'occurred_at'": the lead id is the one the service gives each activity
    from its lead, and the fields listed are the activity's. A Salesforce Task's own date field is named as such."""
    bare = client.post("/score", {"leads": [{**leads[0], "activities": [{"activity": "webinar"}]}], "as_of": AS_OF})
    task = client.post("/score", {"leads": [{**leads[0], "activities": [
        {"ActivityDate": "2025-12-01", "activity": "webinar", "attributes": {"type": "Task"}}]}], "as_of": AS_OF})
    assert (bare.status, task.status) == (422, 422), (bare.body, task.body)
    assert [(d["field"], d["msg"]) for d in bare.json()["detail"]] == [
        ("leads[0].activities[0].occurred_at", "required field 'occurred_at' missing")]
    (problem,) = task.json()["detail"]
    assert problem["field"] == "leads[0].activities[0].occurred_at"
    assert problem["msg"].startswith("required field 'occurred_at' missing (the activity has fields this model "
                                     "does not read: 'ActivityDate'): if one of them is it under the CRM's name, send "
                                     "it as 'occurred_at'. A CRM's own field names are read where the model's "
                                     "data.mapping.activities declares them"), problem


@pytest.mark.parametrize("system", ["salesforce", "hubspot"])
def test_a_lead_under_its_crms_own_field_names_is_told_which_it_looked_for_and_where_a_mapping_goes(client, leads, system):
    """A CRM record posted as the CRM writes it, where the served model's data.mapping.leads maps none of its names,
    was told only "required field 'lead_id' missing or empty". It is now told, per field looked for, the lead's fields
    that look like it (Salesforce's CreatedDate, HubSpot's createdate for created_at), else those the model does not read (Salesforce's Id),
    and that a CRM's names are declared in the model's data.mapping.leads, which takes a retrain."""
    lead = leads[0]
    record = ({"attributes": {"type": "Lead"}, "Id": lead["lead_id"], "CreatedDate": lead["created_at"],
               "LeadSource": lead["lead_source"]} if system == "salesforce" else
              {"hs_object_id": lead["lead_id"], "createdate": lead["created_at"], "email": lead["email"]})
    scored = client.post("/score", {"leads": [record], "as_of": AS_OF})
    explained = client.post("/explain", {"lead": record, "as_of": AS_OF})
    assert (scored.status, explained.status) == (422, 422), (scored.body, explained.body)
    problems = {d["field"]: d["msg"] for d in scored.json()["detail"]}
    assert list(problems) == ["leads[0].lead_id", "leads[0].created_at"]
    assert [d["msg"] for d in explained.json()["detail"]] == list(problems.values())
    fields = "'Id', 'CreatedDate', 'LeadSource'" if system == "salesforce" else "'hs_object_id', 'createdate'"
    assert problems["leads[0].lead_id"].startswith(
        f"required field 'lead_id' missing (the lead has fields this model does not read: {fields}): if one "
        "of them is it under the CRM's name, send it as 'lead_id'. ")
    alike = "CreatedDate" if system == "salesforce" else "createdate"
    assert problems["leads[0].created_at"].startswith(f"required field 'created_at' missing (the lead has "
                                                      f"{alike!r}, which looks like the same name written differently)")
    for msg in problems.values():
        assert msg.endswith("A CRM's own field names are read where the model's data.mapping.leads declares them: the "
                            "service reads the mapping the model was trained with, so a new one takes a retrain"), msg
        assert "attributes" not in msg


def test_refusals_speak_of_the_request_not_of_command_line_flags_or_params_to_set(client, leads):
    """A lead created after as_of was told "e.g. --as-of", a date like 06/02/2025 "set data.day_first": a CLI
    user's fixes, which an API client cannot apply."""
    late = client.post("/score", {"leads": [{**leads[0], "created_at": "2026-02-01T00:00:00Z"}], "as_of": AS_OF})
    ambiguous = client.post("/score", {"leads": [{**leads[0], "created_at": "06/02/2025"}], "as_of": AS_OF})
    (late_problem,), (ambiguous_problem,) = late.json()["detail"], ambiguous.json()["detail"]
    assert late_problem["msg"].endswith("the lead did not exist yet (check the request's as_of (default: now), or the date)")
    assert ambiguous_problem["msg"] == ("date '06/02/2025' reads day first or month first: send dates as ISO 8601 text, "
                                        "year first: 2025-06-02")
    for problem in (late_problem, ambiguous_problem):
        assert "--" not in problem["msg"] and "data." not in problem["msg"]


@pytest.mark.parametrize("as_of", ["", "  "])
def test_a_blank_as_of_scores_as_of_now_as_an_omitted_one_does(client, server, leads, as_of):
    """CRMs send an empty date field as "": it was a 400 (as feedback's blank amount was, now no amount)."""
    lead = {**leads[2], "lead_id": f"BLANK-AS-OF-{len(as_of)}"}
    scored = client.post("/score", {"leads": [lead], "as_of": as_of})
    explained = client.post("/explain", {"lead": lead, "as_of": as_of})
    assert (scored.status, explained.status) == (200, 200), (scored.body, explained.body)
    logged = Store(server.params.serving.store_url).score_log_frame().set_index("lead_id").loc[lead["lead_id"]]
    assert logged["features_as_of"] == logged["scored_at"]  # as of now, as without as_of


def test_an_as_of_with_blanks_around_it_is_read_as_a_lead_date_with_blanks_is(client, server, leads):
    """A CRM template pads a date field (" 2025-12-31T00:00:00 "): a lead's created_at so is read; as_of was refused."""
    lead = {**leads[2], "lead_id": "PADDED-AS-OF"}
    for route, body in (("/score", {"leads": [lead]}), ("/explain", {"lead": lead})):
        reply = client.post(route, {**body, "as_of": f" {AS_OF}\t"})
        assert reply.status == 200, reply.body
    logged = Store(server.params.serving.store_url).score_log_frame().set_index("lead_id").loc["PADDED-AS-OF"]
    assert logged["features_as_of"] == pd.Timestamp(AS_OF)


def test_a_lead_id_with_a_line_break_is_refused_in_the_words_feedback_uses(client, leads):
    """Without pydantic's "Value error, " prefix, which a 400 already drops; a 422 from both, as text the service cannot
    use as an id (/feedback's was a 400, as if the body were of the wrong shape)."""
    scored = client.post("/score", {"leads": [{**leads[0], "lead_id": "a\nb"}], "as_of": AS_OF})
    stored = client.post("/feedback", _feedback("evt-line-break", lead_id="a\nb"))
    assert (scored.status, stored.status) == (422, 422), (scored.body, stored.body)
    (in_score,), (in_feedback,) = scored.json()["detail"], stored.json()["detail"]
    assert in_score["msg"] == "the lead id: " + in_feedback["msg"]
    assert in_feedback["msg"] == "an id cannot hold control characters (line breaks, tabs)"


def test_a_400_names_the_field_in_our_words_and_does_not_echo_the_value_back(client):
    """pydantic's own errors carry the value sent (an e-mail, a phone), a docs URL and "Value error, "."""
    reply = client.post("/feedback", _feedback("evt-words", decided_at=True, status=1))
    assert reply.status == 400, reply.body
    detail = {d["field"]: d for d in reply.json()["detail"]}
    assert all(set(d) == {"loc", "field", "msg", "type"} for d in detail.values())
    assert detail["decided_at"]["msg"] == "a date is text such as 2026-01-31 or 2026-01-31T09:30:00Z"
    assert detail["status"]["msg"] == "expected text or true/false, not a number"


# A body of another shape than its route takes: how it is built from one lead and one decision.
_OTHER_SHAPES = {
    "a lead bare": lambda lead, event: lead,
    "a lead for the list": lambda lead, event: {"leads": lead},
    "a list of leads bare": lambda lead, event: [lead],
    "a batch to explain": lambda lead, event: {"leads": [lead]},
    "a list of decisions": lambda lead, event: [event],
}


@pytest.mark.parametrize(("path", "sent", "field", "shape"), [
    ("/score", "a lead bare", "leads", '{"leads": [{...}, ...]'),
    ("/score", "a lead for the list", "leads", '{"leads": [{...}, ...]'),
    ("/score", "a list of leads bare", "body", '{"leads": [{...}, ...]'),
    ("/explain", "a batch to explain", "lead", '{"lead": {...}'),
    ("/feedback", "a list of decisions", "body", '{"event_id": ...'),
])
def test_a_body_of_another_shape_is_told_the_shape_its_route_takes(client, leads, path, sent, field, shape):
    """A CRM integrator's common slip: a lead sent bare to /score or a batch to /explain got only "Field required"."""
    reply = client.post(path, _OTHER_SHAPES[sent]({**leads[0], "lead_id": "SHAPE-1"}, _feedback("evt-shape")))
    assert reply.status == 400, reply.body
    (problem,) = reply.json()["detail"]
    assert problem["field"] == field and f"; send the body as {shape}" in problem["msg"], problem


@pytest.mark.parametrize(("path", "values", "field", "words"), [
    ("/feedback", {"event_id": 981}, "event_id", 'expected text, a JSON string: send a number as its text, "981" for 981; '
                                                 'null is no value'),
    ("/feedback", {"lead_id": None}, "lead_id", 'expected text, a JSON string: send a number as its text, "981" for 981; '
                                                'null is no value'),
    ("/score", {"lead_id": 42}, "leads[0].lead_id", 'the lead id: expected text, not the number 42: send it as a JSON string, "42"'),
])
def test_an_id_that_is_not_text_is_told_what_it_is_and_what_to_send(client, leads, path, values, field, words):
    """A CRM's numeric record id (HubSpot's objectId) got pydantic's "Input should be a valid string"."""
    body = ({**_feedback("evt-id-type"), **values} if path == "/feedback"
            else {"leads": [{**leads[0], **values}], "as_of": AS_OF})
    reply = client.post(path, body)
    assert reply.status in (400, 422), reply.body
    assert {d["field"]: d["msg"] for d in reply.json()["detail"]}[field] == words


def test_every_error_the_api_answers_is_json_in_one_shape(client):
    """A CRM integration parses one error shape, whether our code or BentoML's answered."""
    not_json = client.post("/score", b'{"leads": [', {"Content-Type": "application/json"})
    no_route = client.get("/no-such-route")
    wrong_method = client.get("/score")
    no_card = client.get("/leads/NEVER-SCORED")  # a rep's browser gets a page instead (test_scorecard)
    for reply, status in ((not_json, 400), (no_route, 404), (wrong_method, 405), (no_card, 404)):
        assert reply.status == status and reply.headers["content-type"] == "application/json", reply.body
        assert set(reply.json()) == {"error", "detail"}
    assert [(d["field"], d["type"]) for d in not_json.json()["detail"]] == [("body", "json_invalid")]
    assert no_route.json()["error"].startswith("no such route: GET /no-such-route")
    assert wrong_method.json()["error"] == "GET /score: method not allowed; this route answers POST"
    assert no_card.json()["error"].startswith("lead 'NEVER-SCORED' has no score")


@pytest.mark.parametrize(("method", "path", "meant"), [("GET", "/leads", "GET /leads/<lead id>"),
                                                      ("POST", "/score/", "POST /score"), ("GET", "/model/", "GET /model")])
def test_a_path_off_by_a_trailing_slash_is_a_404_naming_the_route_not_a_redirect(client, server, leads, method, path, meant):
    """Starlette answered a 307 to the path with or without the slash, empty, at the service's own absolute address:
    a CRM's HTTP client follows no redirect and saw nothing to act on, and behind a proxy the address was wrong."""
    lead = {k: v for k, v in leads[0].items() if k != "activities"}
    body = {"leads": [{**lead, "lead_id": "SLASH-1"}], "as_of": AS_OF} if method == "POST" else None
    reply = client.request(method, path, body)
    assert (reply.status, reply.headers.get("location")) == (404, None)
    assert reply.json() == {"error": f"no such route: {method} {path}; did you mean {meant}? "
                                     "(the API is listed at GET /docs.json)", "detail": []}
    assert Store(server.params.serving.store_url).latest_score("SLASH-1") is None


def test_a_refused_request_is_one_warning_line_in_the_server_log_not_an_error_with_a_traceback(client, server, leads):
    before = server.log_path.read_text(errors="replace")
    assert client.post("/score", {"leads": [leads[0]], "as_of": 1764000000}).status == 400  # BentoML's JSON check
    deadline = time.monotonic() + 10
    while "answered 400" not in (added := server.log_path.read_text(errors="replace")[len(before):]):
        assert time.monotonic() < deadline, added
        time.sleep(0.1)
    assert "Traceback" not in added and "ERROR" not in added
    assert "Exception on /score [POST]: 1 invalid field(s), answered 400" in added


def test_explain_names_the_field_of_its_one_lead(client, leads):
    for lead, field in [({**leads[0], "employees": "a few"}, "lead.employees"), ({**leads[0], "lead_id": 7}, "lead.lead_id")]:
        reply = client.post("/explain", {"lead": lead, "as_of": AS_OF})
        assert reply.status == 422, reply.body
        assert field in [d["field"] for d in reply.json()["detail"]]


@pytest.mark.parametrize("path", ["/score", "/explain", "/feedback"])
@pytest.mark.parametrize(
    "content_type",
    ["multipart/form-data; boundary=x", "multipart/form-data", "application/x-www-form-urlencoded", "text/plain"],
)
def test_a_body_that_is_not_json_is_refused_as_such(client, path, content_type):
    reply = client.post(path, b'{"leads": []}', {"Content-Type": content_type})
    assert reply.status == 415, reply.body
    assert "application/json" in reply.json()["error"] and reply.json()["detail"] == []


@pytest.mark.parametrize("route", ["/score", "/explain", "/feedback"])
@pytest.mark.parametrize("encoding", ["latin-1", "utf-16", "utf-16-le"])
def test_a_body_not_written_in_utf8_is_told_so_naming_the_first_byte_at_fault(client, leads, route, encoding):
    """JSON is UTF-8 (RFC 8259). A client writing Latin-1 ('Müller' as the byte 0xFC) was told "Invalid JSON: invalid
    unicode code point at line 1 column 65", one writing UTF-16 (.NET's Encoding.Unicode, with or without its byte order
    mark) "expected value" or "key must be a string" at column 1 or 2: neither says the body is in another encoding."""
    lead = {**leads[0], "lead_id": "NOT-UTF-8", "company": "Müller GmbH", "activities": []}
    body = {"/score": {"leads": [lead], "as_of": AS_OF}, "/explain": {"lead": lead, "as_of": AS_OF},
            "/feedback": {"event_id": "not-utf-8", "lead_id": "Müller-1", "status": "converted",
                          "decided_at": "2025-06-02"}}[route]
    sent = json.dumps(body, ensure_ascii=False).encode(encoding)
    at = next(i for i, byte in enumerate(sent) if byte == 0 or byte > 0x7F)
    reply = client.post(route, sent, {"Content-Type": "application/json"})
    assert reply.status == 400, reply.body
    (problem,) = reply.json()["detail"]
    assert (problem["field"], problem["type"]) == ("body", "json_invalid"), problem
    assert problem["msg"].startswith(f"the body is not UTF-8 text: byte {at + 1} is 0x{sent[at]:02X}"), problem
    assert "send the JSON encoded as UTF-8" in problem["msg"], problem


@pytest.mark.parametrize(("charset", "encoding"), [("utf-8", "utf-8"), ("iso-8859-1", "latin-1"),
                                                   ('"Windows-1252"', "cp1252"), ("utf-16", "utf-16")])
def test_a_body_in_the_charset_its_content_type_names_is_read_as_sent(client, server, leads, charset, encoding):
    """A CRM integration on a Latin-1 database or an older Java/.NET/PHP client sends 'Müller' in the charset its
    Content-Type names: it was a 400 "not UTF-8 text" (JSON is UTF-8 by RFC 8259, so UTF-8 stays the default). It is
    decoded from that charset, also once decompressed: the lead is scored and logged, the decision stored, as sent."""
    tag = encoding.upper()
    lead = {**leads[0], "lead_id": f"Müller-{tag}", "company": "Société Générale", "activities": []}
    headers = {"Content-Type": f"application/json; charset={charset}"}
    score = {"leads": [lead], "as_of": AS_OF}
    sent = client.post("/score", json.dumps(score, ensure_ascii=False).encode(encoding), headers)
    assert sent.status == 200, sent.body
    assert _without_card_urls(sent.json()) == _without_card_urls(client.post("/score", score).json())
    store = Store(server.params.serving.store_url)
    assert store.latest_score(f"Müller-{tag}") is not None
    decision = _feedback(f"evt-charset-{tag}", lead_id=f"Müller GmbH {tag}")
    stored = client.post("/feedback", gzip.compress(json.dumps(decision, ensure_ascii=False).encode(encoding)),
                         {**headers, "Content-Encoding": "gzip"})
    assert stored.status == 201, stored.body
    rows = store.feedback_frame().set_index("event_id")
    assert rows.loc[f"evt-charset-{tag}", "lead_id"] == f"Müller GmbH {tag}"


@pytest.mark.parametrize("charset", ["foo", "base64", "unicode_escape"])
def test_a_charset_the_service_does_not_know_is_refused_naming_it(client, leads, charset):
    """An unknown charset was read as UTF-8 without a word; base64 or unicode_escape, which Python knows, is no charset
    of text (a body read through it would not be the JSON sent)."""
    lead = {**leads[0], "lead_id": "UNKNOWN-CHARSET"}
    for route, body in (("/score", {"leads": [lead], "as_of": AS_OF}), ("/feedback", _feedback("evt-charset-foo"))):
        reply = client.post(route, json.dumps(body).encode(), {"Content-Type": f"application/json; charset={charset}"})
        assert reply.status == 415, reply.body
        assert f"charset '{charset}'" in reply.json()["error"] and "send the body as UTF-8" in reply.json()["error"]
        assert reply.json()["detail"] == []


@pytest.mark.parametrize(("charset", "sent", "at"), [
    ("us-ascii", '{"leads": [{"lead_id": "Müller"}]}'.encode("latin-1"), 26),
    ("utf-16", '{"leads": []}'.encode("utf-16") + b"x", 29),
    ("windows-1252", b'{"leads": [{"lead_id": "\x81"}]}', 25),
    ("utf-8", '{"leads": [{"lead_id": "Müller"}]}'.encode("latin-1"), 26)], ids=["ascii", "utf-16", "cp1252", "utf-8"])
def test_a_body_that_is_not_text_in_its_charset_is_a_400_naming_the_charset_and_byte(client, charset, sent, at):
    """Bytes the declared charset does not hold (0xFC in US-ASCII, a UTF-16 body cut in a character, a byte
    windows-1252 leaves undefined) are the JSON check's 400, naming the charset and the byte (1 for the first)."""
    reply = client.post("/score", sent, {"Content-Type": f"application/json; charset={charset}"})
    assert reply.status == 400, reply.body
    assert reply.json()["error"] == "1 problem(s) in the request's JSON; nothing was scored or stored"
    (problem,) = reply.json()["detail"]
    assert (problem["field"], problem["type"]) == ("body", "json_invalid"), problem
    named = "UTF-8" if charset == "utf-8" else charset
    assert f"not {named} text" in problem["msg"] and f"byte {at} is 0x{sent[at - 1]:02X}" in problem["msg"], problem


@pytest.mark.parametrize("as_of", ["0001-01-01T00:00:00", "2300-01-01T00:00:00Z", "9999-12-31T23:59:59-05:00"])
def test_a_scoring_time_no_date_computation_can_hold_is_refused_naming_as_of(client, leads, as_of):
    for route, body in (("/score", {"leads": [leads[0]]}), ("/explain", {"lead": leads[0]})):
        reply = client.post(route, {**body, "as_of": as_of})
        assert reply.status == 422, reply.body
        assert [d["field"] for d in reply.json()["detail"]] == ["as_of"]


@pytest.mark.parametrize("as_of", ["yesterday", "2025-02-30", "N/A"])
def test_a_scoring_time_that_is_no_date_is_refused_as_a_lead_date_that_is_no_date_is(client, leads, as_of):
    """An as_of of "yesterday" was a 400 ("a date is text such as ...", the value not named) while a created_at or a
    decided_at of "yesterday" is a 422 naming it: text the service cannot read as a date is content, not shape."""
    for route, body in (("/score", {"leads": [leads[0]]}), ("/explain", {"lead": leads[0]})):
        reply = client.post(route, {**body, "as_of": as_of})
        assert reply.status == 422, reply.body
        (problem,) = reply.json()["detail"]
        assert (problem["field"], problem["type"]) == ("as_of", "unparsable_date"), problem
        assert f"unparsable date {as_of!r}" in problem["msg"], problem
    created = client.post("/score", {"leads": [{**leads[0], "created_at": as_of}], "as_of": AS_OF})
    assert created.status == 422, created.body


def test_a_scoring_time_in_the_future_is_refused_and_leaves_the_score_card_as_it_was(client, server, leads):
    """An as_of of 2199-12-31 (a CRM's "no date" default) was scored and logged: the score card, which shows the
    score of the latest as_of, then showed that one for good, whatever the CRM sent the lead's score as of later."""
    lead = {**leads[0], "lead_id": "AS-OF-FUTURE"}
    assert client.post("/score", {"leads": [lead], "as_of": AS_OF}).status == 200
    store = Store(server.params.serving.store_url)
    logged = store.latest_score(lead["lead_id"])
    tomorrow = pd.Timestamp.now(tz="UTC") + pd.Timedelta(hours=20)  # a CRM clock a little ahead: scored
    assert client.post("/explain", {"lead": lead, "as_of": tomorrow.isoformat()}).status == 200
    for as_of in ["2199-12-31", (pd.Timestamp.now(tz="UTC") + pd.Timedelta(days=2)).isoformat()]:
        for route, body in (("/score", {"leads": [lead]}), ("/explain", {"lead": lead})):
            reply = client.post(route, {**body, "as_of": as_of})
            assert reply.status == 422, reply.body
            (problem,) = reply.json()["detail"]
            assert (problem["field"], problem["type"]) == ("as_of", "date_in_future"), problem
            assert problem["msg"].startswith(f"date in the future {as_of!r} (now is "), problem
    assert store.latest_score(lead["lead_id"]) == logged


@pytest.mark.parametrize("as_of", [1764000000, "1764000000"])
def test_a_scoring_time_sent_as_a_number_is_refused_not_read_as_unix_seconds(client, server, leads, as_of):
    lead = {**leads[0], "lead_id": f"AS-OF-NUMBER-{type(as_of).__name__}"}
    for route, body in (("/score", {"leads": [lead]}), ("/explain", {"lead": lead})):
        reply = client.post(route, {**body, "as_of": as_of})
        assert reply.status == 400, reply.body
        assert [d["field"] for d in reply.json()["detail"]] == ["as_of"]
        assert "not the number" in reply.json()["detail"][0]["msg"]
    assert Store(server.params.serving.store_url).latest_score(lead["lead_id"]) is None


def test_nothing_is_scored_or_logged_when_one_lead_is_bad(client, server, leads):
    good = {**leads[3], "lead_id": "GOOD-IN-BAD-BATCH"}
    reply = client.post("/score", {"leads": [good, {**leads[4], "created_at": "nope"}]})
    assert reply.status == 422
    assert Store(server.params.serving.store_url).latest_score("GOOD-IN-BAD-BATCH") is None


def test_a_batch_over_the_limit_is_refused(client, leads):
    batch = [{"lead_id": f"B{i}", "created_at": "2025-11-01"} for i in range(MAX_BATCH + 1)]
    reply = client.post("/score", {"leads": batch})
    assert reply.status == 413
    assert "serving.max_batch" in reply.json()["error"]


def test_a_body_over_the_limit_is_refused_declared_or_chunked(server):
    body = b'{"leads": [' + b",".join([b'{"lead_id": "P", "note": "' + b"x" * 1000 + b'"}'] * 120) + b"]}"
    assert len(body) > MAX_BODY
    declared = server.client().post("/score", body, {"Content-Type": "application/json"})
    assert declared.status == 413 and "serving.max_body_bytes" in declared.json()["error"]
    assert declared.json()["detail"] == []
    connection = http.client.HTTPConnection("127.0.0.1", int(server.url.rsplit(":", 1)[1]), timeout=30)
    chunks = (body[i:i + 8192] for i in range(0, len(body), 8192))
    connection.request("POST", "/score", body=chunks, encode_chunked=True,
                       headers={"Authorization": f"Bearer {server.key}", "Content-Type": "application/json"})
    assert connection.getresponse().status == 413
    connection.close()


def _without_card_urls(reply: dict) -> dict:
    """A /score reply without its card links, whose expiry is the second they were made."""
    return {**reply, "scores": [{k: v for k, v in score.items() if k != "card_url"} for score in reply["scores"]]}


def _chunked(server, body: bytes, headers: dict, size: int = 8192):
    """POST /score with `body` sent in chunks (no Content-Length), as a streaming HTTP client sends it."""
    connection = http.client.HTTPConnection("127.0.0.1", int(server.url.rsplit(":", 1)[1]), timeout=30)
    connection.request("POST", "/score", body=(body[i:i + size] for i in range(0, len(body), size)),
                       encode_chunked=True, headers={"Authorization": f"Bearer {server.key}",
                                                     "Content-Type": "application/json", **headers})
    reply = connection.getresponse()
    status, answer = reply.status, json.loads(reply.read())
    connection.close()
    return status, answer


def _raw_deflate(body: bytes) -> bytes:
    """Deflate data without zlib's header and checksum, as .NET's DeflateStream and PHP's gzdeflate write it."""
    compressor = zlib.compressobj(wbits=-zlib.MAX_WBITS)
    return compressor.compress(body) + compressor.flush()


@pytest.mark.parametrize(("encoding", "compress"), [("gzip", gzip.compress), ("deflate", zlib.compress),
                                                     ("deflate", _raw_deflate), ("identity", lambda body: body)],
                         ids=["gzip", "deflate", "raw-deflate", "identity"])
def test_a_compressed_batch_scores_as_the_same_json_uncompressed(client, server, leads, encoding, compress):
    """CRM webhook clients gzip large batches: a compressed body was answered 400 "Invalid JSON". A "deflate" body
    may be zlib's format, as HTTP says, or raw deflate, as many clients send it: raw deflate was a 400."""
    body = json.dumps({"leads": leads, "as_of": AS_OF}).encode()
    plain = client.post("/score", body, {"Content-Type": "application/json"})
    assert plain.status == 200, plain.body
    sent = client.post("/score", compress(body), {"Content-Type": "application/json", "Content-Encoding": encoding})
    assert sent.status == 200, sent.body
    assert _without_card_urls(sent.json()) == _without_card_urls(plain.json())
    status, chunked = _chunked(server, compress(body), {"Content-Encoding": encoding}, size=100)
    assert status == 200 and _without_card_urls(chunked) == _without_card_urls(plain.json())
    explained = client.post("/explain", compress(json.dumps({"lead": leads[0], "as_of": AS_OF}).encode()),
                            {"Content-Type": "application/json", "Content-Encoding": encoding})
    assert explained.json() == client.post("/explain", {"lead": leads[0], "as_of": AS_OF}).json()
    event_id = f"evt-{encoding}-{uuid.uuid4()}"
    stored = client.post("/feedback", compress(json.dumps(_feedback(event_id)).encode()),
                         {"Content-Type": "application/json", "Content-Encoding": encoding})
    assert stored.status == 201, stored.body
    assert event_id in Store(server.params.serving.store_url).feedback_frame()["event_id"].tolist()


def test_a_body_starting_with_a_byte_order_mark_reads_as_the_json_after_it(client, server, leads):
    """.NET and PowerShell clients may send a UTF-8 byte order mark before the JSON: every route answered a bare 400
    "Invalid JSON" (RFC 8259 lets a reader ignore it). It is read as the JSON after it, sent as is, in chunks (the
    mark cut between two of them) or gzipped; in the middle of the body it is still no JSON."""
    bom = "\ufeff".encode()
    body = json.dumps({"leads": leads, "as_of": AS_OF}).encode()
    plain = client.post("/score", body, {"Content-Type": "application/json"})
    sent = client.post("/score", bom + body, {"Content-Type": "application/json; charset=utf-8"})
    assert (plain.status, sent.status) == (200, 200), sent.body
    assert _without_card_urls(sent.json()) == _without_card_urls(plain.json())
    status, chunked = _chunked(server, bom + body, {}, size=2)
    assert status == 200 and _without_card_urls(chunked) == _without_card_urls(plain.json())
    zipped = client.post("/score", gzip.compress(bom + body), {"Content-Type": "application/json",
                                                               "Content-Encoding": "gzip"})
    assert zipped.status == 200 and _without_card_urls(zipped.json()) == _without_card_urls(plain.json())
    explained = client.post("/explain", bom + json.dumps({"lead": leads[0], "as_of": AS_OF}).encode())
    assert explained.json() == client.post("/explain", {"lead": leads[0], "as_of": AS_OF}).json()
    event_id = f"evt-bom-{uuid.uuid4()}"
    stored = client.post("/feedback", bom + json.dumps(_feedback(event_id)).encode())
    assert stored.status == 201, stored.body
    assert event_id in Store(server.params.serving.store_url).feedback_frame()["event_id"].tolist()
    inside = client.post("/feedback", b" " + bom + json.dumps(_feedback("evt-bom-inside")).encode())
    assert inside.status == 400 and inside.json()["detail"][0]["type"] == "json_invalid", inside.body


def test_a_compressed_body_that_decompresses_past_the_limit_is_refused_without_decompressing_it(client, server):
    """A gzip bomb: 50 MB of zeros in ~50 kB, under the limit as sent, is refused as soon as it passes the limit
    decompressed, not decompressed whole in the server's memory."""
    bomb = gzip.compress(b"0" * 50_000_000)
    assert len(bomb) < MAX_BODY
    bombs = {"gzip": bomb, "GZIP": bomb, "deflate": zlib.compress(b"0" * 50_000_000),
             "Deflate": _raw_deflate(b"0" * 50_000_000)}
    for route, encoding in (("/score", "gzip"), ("/feedback", "GZIP"), ("/score", "deflate"), ("/score", "Deflate")):
        started = time.monotonic()
        reply = client.post(route, bombs[encoding], {"Content-Type": "application/json", "Content-Encoding": encoding})
        assert reply.status == 413, reply.body
        assert "serving.max_body_bytes" in reply.json()["error"] and "decompressed" in reply.json()["error"]
        assert time.monotonic() - started < 5
    status, answer = _chunked(server, bomb, {"Content-Encoding": "gzip"})
    assert status == 413 and "decompressed" in answer["error"]
    assert client.get("/readyz").status == 200


@pytest.mark.parametrize("body", [gzip.compress(b'{"leads": []}', mtime=0)[:-12], b'{"leads": []}', b"\x1f\x8b garbage"],
                         ids=["cut-short", "not-compressed", "garbage"])
def test_a_body_that_is_not_valid_gzip_is_refused_saying_so(client, body):
    reply = client.post("/score", body, {"Content-Type": "application/json", "Content-Encoding": "gzip"})
    assert reply.status == 400, reply.body
    assert "not valid gzip" in reply.json()["error"] and reply.json()["detail"] == []


@pytest.mark.parametrize("body", [zlib.compress(b'{"leads": []}')[:-4], _raw_deflate(b'{"leads": []}')[:-2],
                                  b'{"leads": []}', zlib.compress(b'{"leads": []}') + b"x", b"garbage"],
                         ids=["cut-short", "raw-cut-short", "not-compressed", "bytes-after-the-end", "garbage"])
def test_a_body_that_is_not_valid_deflate_either_way_is_refused_saying_so(client, body):
    """Raw deflate is read when the body is not zlib's format (test_a_compressed_batch_scores_as_the_same_json_
    uncompressed): bytes that are neither are still refused, not read as whatever they inflate to."""
    reply = client.post("/score", body, {"Content-Type": "application/json", "Content-Encoding": "deflate"})
    assert reply.status == 400, reply.body
    assert "not valid deflate" in reply.json()["error"] and reply.json()["detail"] == []


def test_a_body_compressed_twice_is_decompressed_in_turn_as_its_codings_are_listed(client, server, leads):
    """RFC 9110 lists every coding applied, in order (a client's gzip, then a proxy's): "gzip, gzip" was a 415. They
    are undone in turn, last first, as one header or repeated; the zip-bomb limit holds at each; more than three
    codings (each reads the whole body again) is a 415 saying so."""
    body = json.dumps({"leads": leads, "as_of": AS_OF}).encode()
    plain = client.post("/score", body)
    twice = client.post("/score", zlib.compress(gzip.compress(body)),
                        {"Content-Type": "application/json", "Content-Encoding": "gzip, deflate"})
    assert twice.status == 200, twice.body
    assert _without_card_urls(twice.json()) == _without_card_urls(plain.json())
    status, chunked = _chunked(server, gzip.compress(gzip.compress(body)), {"Content-Encoding": "gzip, GZIP"}, size=100)
    assert status == 200 and _without_card_urls(chunked) == _without_card_urls(plain.json())
    bomb = client.post("/score", gzip.compress(gzip.compress(b"0" * 50_000_000)),
                       {"Content-Type": "application/json", "Content-Encoding": "gzip, gzip"})
    assert bomb.status == 413 and "decompressed" in bomb.json()["error"], bomb.body
    cut = client.post("/score", gzip.compress(gzip.compress(body)[:-12]),
                      {"Content-Type": "application/json", "Content-Encoding": "gzip, gzip"})
    assert cut.status == 400 and "not valid gzip" in cut.json()["error"], cut.body
    many = client.post("/score", body, {"Content-Type": "application/json", "Content-Encoding": "gzip, " * 3 + "gzip"})
    assert many.status == 415 and "4 codings" in many.json()["error"], many.body


@pytest.mark.parametrize("encoding", ["br", "zstd", "compress", "gzip, br"])
def test_a_body_in_another_encoding_is_refused_naming_it_and_what_is_accepted(client, leads, encoding):
    reply = client.post("/score", gzip.compress(json.dumps({"leads": leads[:1]}).encode()),
                        {"Content-Type": "application/json", "Content-Encoding": encoding})
    assert reply.status == 415, reply.body
    assert f"'{encoding}'" in reply.json()["error"] and "gzip or deflate" in reply.json()["error"]


# ---------------------------------------------------------------- feedback


def _feedback(event_id: str, **values) -> dict:
    return {"event_id": event_id, "lead_id": "FB-1", "status": "rejected", "reason": "no_budget",
            "decided_at": "2025-12-15T14:00:00Z", **values}


def test_feedback_is_stored_once_per_event_id(client, server):
    first = client.post("/feedback", _feedback("evt-1"))
    retry = client.post("/feedback", _feedback("evt-1"))
    assert (first.status, first.json()["stored"]) == (201, True)
    assert (retry.status, retry.json()["stored"]) == (200, False)
    stored = Store(server.params.serving.store_url).feedback_frame()
    assert stored["event_id"].tolist().count("evt-1") == 1
    assert stored.set_index("event_id").loc["evt-1", "decided_at"] == pd.Timestamp("2025-12-15 14:00")


def test_a_reason_or_amount_sent_under_its_name_written_differently_is_named_in_the_receipt(client, server):
    """A CRM's "Reason" (or "AMOUNT") was ignored without a word: the rejection was stored without its code (201,
    warnings []), the code the model learns rejection reasons from. The receipt now names the field and what to send,
    as /score names a lead's "Industry"; a field that looks like none /feedback reads is ignored silently, as there."""
    event = {**_feedback("evt-misnamed", reason=None), "Reason": "no_budget", "AMOUNT": "1200", "Owner": "ana"}
    reply = client.post("/feedback", event)
    assert reply.status == 201, reply.body
    warnings = reply.json()["warnings"]
    assert [(w["field"], w["type"]) for w in warnings] == [("Reason", "misnamed_field"), ("AMOUNT", "misnamed_field")]
    assert "send the decision again under a new event_id with it as 'reason'" in warnings[0]["msg"], warnings
    assert _documented(client.get("/docs.json").json(), "FeedbackReceipt", reply.json())
    sent_too = client.post("/feedback", {**_feedback("evt-not-misnamed"), "Reason": "no_budget", "Owner": "ana"})
    assert (sent_too.status, sent_too.json()["warnings"]) == (201, [])  # reason sent: nothing was left out
    stored = Store(server.params.serving.store_url).feedback_frame().set_index("event_id")
    assert stored.loc["evt-not-misnamed", "reason"] == "no_budget"


@pytest.mark.parametrize(("field", "value"), [("reason_code", "no_budget"), ("rejection_reason", "no_budget"),
                                              ("Closed Lost Reason", "No Budget"), ("deal_amount", "1200")])
def test_a_reason_or_amount_sent_under_a_crms_longer_name_for_it_is_named_in_the_receipt(client, server, field, value):
    """"Reason" was named, but a CRM's "reason_code" or "lost_reason" stored the rejection without its code without a
    word: the look-alike rule takes a name holding more words for another field (a lead's "Campaign ID" beside
    "Campaign"). A decision has one reason and one amount, so a field whose name holds the word is named as sent."""
    event_id = f"evt-longer-name-{field}"
    reply = client.post("/feedback", {**_feedback(event_id, reason=None), field: value})
    assert reply.status == 201, reply.body
    (warning,) = reply.json()["warnings"]
    name = "amount" if "amount" in field else "reason"
    assert (warning["field"], warning["type"]) == (field, "misnamed_field"), warning
    assert warning["msg"].startswith(f"field {name!r}, which /feedback reads, is not sent (the event has {field!r}, "
                                     f"whose name holds the word {name!r})"), warning
    stored = Store(server.params.serving.store_url).feedback_frame().set_index("event_id")
    assert pd.isna(stored.loc[event_id, "reason"])


@pytest.mark.parametrize("reason", ["meh, not a fit", "budget?"])
def test_a_rejection_with_a_reason_that_is_no_code_is_refused_naming_the_codes(client, server, sample_params, reason):
    """A vague note teaches the loop nothing; no reason at all is stored (test_a_rejection_without_a_reason...)."""
    reply = client.post("/feedback", _feedback(f"evt-bad-{reason}", reason=reason))
    assert reply.status == 422
    (problem,) = reply.json()["detail"]
    assert problem["field"] == "reason"
    assert all(code in problem["msg"] for code in sample_params.label.reasons)
    assert f"evt-bad-{reason}" not in Store(server.params.serving.store_url).feedback_frame()["event_id"].tolist()


@pytest.mark.parametrize(
    ("event", "status", "field"),
    [
        (_feedback("evt-s", status="won"), 422, "status"),
        (_feedback("evt-d", decided_at="last Tuesday"), 422, "decided_at"),
        (_feedback("evt-d-blank", decided_at=""), 422, "decided_at"),  # no date, as data.missing_values' "N/A" is
        (_feedback("evt-d-na", decided_at="N/A"), 422, "decided_at"),
        (_feedback("evt-d-null", decided_at=None), 400, "decided_at"),  # as every required field the JSON check misses
        ({k: v for k, v in _feedback("evt-d-absent").items() if k != "decided_at"}, 400, "decided_at"),
        ({k: v for k, v in _feedback("evt-l").items() if k != "lead_id"}, 400, "lead_id"),
        (_feedback("evt-b", lead_id="   "), 422, "lead_id"),  # no id, as "N/A" is
        (_feedback("evt-long-id", lead_id="L" * 256), 422, "lead_id"),
        (_feedback("evt-na", lead_id="N/A"), 422, "lead_id"),  # data.missing_values: /score reads it as no id
        (_feedback("evt-y1", decided_at="0001-01-01T00:00:00Z"), 422, "decided_at"),
        (_feedback("evt-1969", decided_at="1969-12-31T23:00:00Z"), 422, "decided_at"),
        (_feedback("evt-2099", decided_at="2099-01-01T00:00:00Z"), 422, "decided_at"),
        (_feedback("evt-y10k", decided_at="9999-12-31T23:59:59-05:00"), 422, "decided_at"),
        (_feedback("evt-unix", decided_at=1700000000), 400, "decided_at"),
        (_feedback("evt-unix-text", decided_at="1700000000"), 400, "decided_at"),
        (_feedback("evt-year-text", decided_at="2025"), 400, "decided_at"),
        (_feedback("evt-inf", status="converted", reason=None, amount=float("inf")), 400, "amount"),
        (_feedback("evt-ninf", status="converted", reason=None, amount=float("-inf")), 400, "amount"),
        (_feedback("evt-nan", status="converted", reason=None, amount=float("nan")), 400, "amount"),
        (b'{"event_id": "evt-big", "lead_id": "FB-1", "status": "converted", "decided_at": "2025-12-15", '
         b'"amount": 1e309}', 400, "amount"),
        (_feedback("evt-r", status="converted", reason="garbage reason"), 422, "reason"),
    ],
    ids=["unknown-status", "bad-date", "blank-date", "not-answered-date", "null-date", "no-date", "no-lead-id",
         "blank-lead-id", "overlong-lead-id", "not-answered-lead-id", "year-1", "before-1970",
         "future", "year-10000-in-utc", "unix-seconds", "unix-seconds-as-text", "year-as-text", "infinite-amount",
         "minus-infinite-amount", "nan-amount", "overflowing-amount", "unknown-reason-on-a-conversion"],
)
def test_bad_feedback_is_refused_naming_the_field(client, server, event, status, field):
    headers = {"Content-Type": "application/json"} if isinstance(event, bytes) else None
    reply = client.post("/feedback", event, headers)
    assert reply.status == status, reply.body
    assert field in [d["field"] for d in reply.json()["detail"]]
    event_id = json.loads(event)["event_id"] if isinstance(event, bytes) else event["event_id"]
    assert event_id not in Store(server.params.serving.store_url).feedback_frame()["event_id"].tolist()


@pytest.mark.parametrize("field", ["event_id", "lead_id", "status", "decided_at"])
def test_a_feedback_field_holding_no_value_is_one_422_whether_blank_or_a_missing_value_word(client, server, field):
    """A CRM integrator sorts errors by status: a blank lead_id was a 400 ("String should have at least 1 character")
    while "N/A" was a 422, the same problem (no lead id) under two statuses; so was a status "" (400) against "   "
    (422), and an event_id "N/A" was stored, making every later decision sent with it a retry. Text holding no value
    is a 422 of type empty_value at its field (absent or null: a 400 of the JSON check), and `error` names the event."""
    before = Store(server.params.serving.store_url).feedback_frame()
    for sent in ("", "   ", "N/A"):
        event = {**_feedback(f"evt-no-{field}-{len(sent)}"), field: sent}
        reply = client.post("/feedback", event)
        assert reply.status == 422, (sent, reply.body)
        (problem,) = reply.json()["detail"]
        assert (problem["field"], problem["type"]) == (field, "empty_value"), problem
        assert f"{field} {sent!r} is no " in problem["msg"] and "'N/A' as not answered" in problem["msg"], problem
        if field != "event_id":
            assert f"in feedback event 'evt-no-{field}-{len(sent)}'" in reply.json()["error"], reply.json()
    assert len(Store(server.params.serving.store_url).feedback_frame()) == len(before)


@pytest.mark.parametrize(("decided_at", "words"), [("0001-01-01", "expected 1970-01-01 to 2199-12-31"),
                                                   ("1677-01-01", "expected 1970-01-01 to 2199-12-31"),
                                                   ("2300-01-01T00:00:00Z", "expected 1970-01-01 to 2199-12-31"),
                                                   ("2150-01-01", "date in the future")])
def test_a_decision_date_no_computation_can_hold_is_refused_by_the_documented_rule(client, decided_at, words):
    """A CRM's 0001-01-01 placeholder was told pandas' limits (1677-09-22 to 2262-04-11), not the rule an export's
    decided_at is read by (1970 to 2199, and not in the future)."""
    reply = client.post("/feedback", _feedback(f"evt-placeholder-{decided_at}", decided_at=decided_at))
    assert reply.status == 422, reply.body
    (problem,) = reply.json()["detail"]
    assert problem["field"] == "decided_at" and words in problem["msg"], problem


def test_a_decision_date_is_read_as_a_leads_creation_date_is_and_a_refusal_echoes_it(client, server, leads):
    """/score took a created_at of "Jun 2, 2025" (the export's date reader) while /feedback refused that decided_at
    with a 400 that did not say what was sent: an export's decided_at is read by the same reader, so /feedback now is
    too, and a date it cannot read is refused (422) in the export's words, naming the value."""
    scored = client.post("/score", {"leads": [{**leads[0], "lead_id": "DATE-WORDS", "created_at": "Jun 2, 2025"}],
                                    "as_of": AS_OF})
    stored = client.post("/feedback", _feedback("evt-date-words", decided_at="Jun 2, 2025"))
    assert (scored.status, stored.status) == (200, 201), (scored.body, stored.body)
    kept = Store(server.params.serving.store_url).feedback_frame().set_index("event_id")
    assert kept.loc["evt-date-words", "decided_at"] == pd.Timestamp("2025-06-02")
    refused = client.post("/feedback", _feedback("evt-date-yesterday", decided_at="yesterday"))
    assert refused.status == 422, refused.body
    (problem,) = refused.json()["detail"]
    assert (problem["field"], problem["msg"], problem["type"]) == ("decided_at", "unparsable date 'yesterday'",
                                                                   "unparsable_date")
    spec = client.get("/docs.json").json()
    assert "Jun 2, 2025" in spec["components"]["schemas"]["Feedback"]["properties"]["decided_at"]["description"]


def test_an_event_id_sent_again_with_another_decision_is_refused_and_the_first_kept(client, server):
    first = client.post("/feedback", _feedback("evt-change"))
    changed = client.post("/feedback", _feedback("evt-change", status="converted", reason=None))
    retry = client.post("/feedback", _feedback("evt-change"))
    assert (first.status, changed.status, retry.status) == (201, 409, 200), changed.body
    assert "'evt-change' is already stored with a different status, reason" in changed.json()["error"]
    assert {d["field"] for d in changed.json()["detail"]} == {"event_id", "status", "reason"}
    stored = Store(server.params.serving.store_url).feedback_frame().set_index("event_id")
    assert stored.loc["evt-change", "status"] == "rejected"


@contextlib.contextmanager
def _tables_moved_away(path):
    """The store's tables renamed while the server runs, then back: a store that refuses the service's writes
    after it started, as a file or account made read-only would (SQLite lets root write a read-only file)."""
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        for table in ("score_log", "feedback"):
            conn.execute(f"ALTER TABLE {table} RENAME TO {table}_away")
        yield
    finally:
        for table in ("score_log", "feedback"):
            conn.execute(f"ALTER TABLE {table}_away RENAME TO {table}")
        conn.close()


def test_a_store_that_stops_taking_writes_answers_503_naming_it_and_the_service_recovers(client, server, leads):
    """A score or decision is answered only once stored: when the store refuses the write, the CRM gets a
    503 in the error shape naming the store and the database's reason (not a bare 500), as /docs.json
    documents it, and nothing is stored; once the store takes writes again, so does the service."""
    path = sqlite_file(server.params.serving.store_url)
    lead = {**leads[0], "lead_id": "UNWRITABLE-1"}
    event = _feedback("evt-unwritable")
    spec = client.get("/docs.json").json()

    with _tables_moved_away(path):
        refused = {"/score": client.post("/score", {"leads": [lead], "as_of": AS_OF}),
                   "/feedback": client.post("/feedback", event)}

    for (route, reply), table in zip(refused.items(), ("score_log", "feedback")):
        assert reply.status == 503, (route, reply.body)
        assert reply.headers["retry-after"] == "30"  # when a CRM's retry queue may send it again
        assert reply.json() == {"error": f"cannot write to the store {path}: no such table: {table}. Nothing of this "
                                         "request was stored; send it again once the store takes writes (the service's "
                                         "account, or SQLite file, must be allowed to write).", "detail": []}
        _conforms(reply.json(), _json_schema(spec, spec["paths"][route]["post"]["responses"]["503"]))
    store = Store(server.params.serving.store_url, read_only=True)
    assert store.latest_score("UNWRITABLE-1") is None
    assert "evt-unwritable" not in store.feedback_frame()["event_id"].tolist()
    assert client.post("/score", {"leads": [lead], "as_of": AS_OF}).status == 200
    assert client.post("/feedback", event).status == 201
    assert store.latest_score("UNWRITABLE-1") is not None


def test_a_score_card_the_store_cannot_read_is_a_503_asking_to_try_again(client, server, leads):
    """A rep's link while the score log cannot be read: a page saying to try again, not a bare 500; an API
    client gets the error JSON naming the store; both are told when to retry, and the link works again after."""
    score = client.post("/score", {"leads": [{**leads[7], "lead_id": "CARD-UNREADABLE"}], "as_of": AS_OF}).json()
    link = score["scores"][0]["card_url"]
    path = sqlite_file(server.params.serving.store_url)
    browser = Client(server.url)  # no API key

    with _tables_moved_away(path):
        page, api = browser.get(link), client.get("/leads/CARD-UNREADABLE")

    assert page.status == 503 and page.headers["content-type"].startswith("text/html"), page.body
    assert "The score card cannot be shown right now" in page.body.decode()
    assert api.status == 503 and api.json() == {
        "error": f"cannot read the store {path}: no such table: score_log", "detail": []}
    assert page.headers["retry-after"] == api.headers["retry-after"] == "30"
    documented = client.get("/docs.json").json()
    _conforms(api.json(), _json_schema(documented, documented["paths"]["/leads/{lead_id}"]["get"]["responses"]["503"]))
    assert browser.get(link).status == 200


def test_concurrent_retries_of_one_event_store_it_once(server):
    def post(_) -> int:
        client = server.client()
        try:
            return client.post("/feedback", _feedback("evt-race")).status
        finally:
            client.close()

    with ThreadPoolExecutor(max_workers=25) as pool:
        statuses = list(pool.map(post, range(50)))
    assert sorted(statuses) == [200] * 49 + [201]
    assert Store(server.params.serving.store_url).feedback_frame()["event_id"].tolist().count("evt-race") == 1


def test_a_status_is_matched_in_any_letter_case_and_stored_as_params_spell_it(client, server):
    reply = client.post("/feedback", _feedback("evt-status-case", status=" Converted ", reason=None))
    assert reply.status == 201, reply.body
    stored = Store(server.params.serving.store_url).feedback_frame().set_index("event_id")
    assert stored.loc["evt-status-case", "status"] == "converted"


def test_a_known_reason_code_on_a_nurture_decision_is_kept(client, server):
    reply = client.post("/feedback", _feedback("evt-nurture", status="nurture", reason="Bad_Timing"))
    assert reply.status == 201, reply.body
    stored = Store(server.params.serving.store_url).feedback_frame().set_index("event_id")
    assert stored.loc["evt-nurture", "reason"] == "bad_timing"


def test_a_reason_code_is_matched_as_training_matches_it_and_stored_as_the_policy_spells_it(client, server):
    reply = client.post("/feedback", _feedback("evt-case", reason="  No_Budget "))
    assert reply.status == 201, reply.body
    assert Store(server.params.serving.store_url).feedback_frame().set_index("event_id").loc["evt-case", "reason"] == "no_budget"


def test_feedback_takes_the_crms_own_labels_and_a_refused_reason_names_them(client, server):
    reply = client.post("/feedback", _feedback("evt-crm-labels", status="Closed - Not Converted", reason="No Budget"))
    assert reply.status == 201, reply.body
    stored = Store(server.params.serving.store_url).feedback_frame().set_index("event_id").loc["evt-crm-labels"]
    assert (stored["status"], stored["reason"]) == ("rejected", "no_budget")

    lower = client.post("/feedback", _feedback("evt-crm-lower", status="closed - not converted", reason="NO BUDGET"))
    assert lower.status == 201, lower.body  # in any letter case, as statuses and the export's labels are matched
    refused = client.post("/feedback", _feedback("evt-crm-typo", status="Closed - Not Converted", reason="Budget"))
    assert refused.status == 422, refused.body
    (detail,) = refused.json()["detail"]
    assert detail["field"] == "reason" and detail["msg"].startswith("reason 'Budget' is not a reason code")
    assert "or a CRM label the service translates: 'No Budget';" in detail["msg"]


def test_a_crm_checkbox_sent_as_true_or_false_is_stored_as_an_exports_boolean_status_reads(client, server):
    """Salesforce's IsConverted is a boolean: a JSON true/false status was a 400 (not text), though an export's
    boolean status is the text "true"/"false", which data.value_maps.status translates. Stored as the export's
    cells read; a number names no decision and stays refused, naming the field."""
    sent = [_feedback("evt-checkbox-true", status=True, reason=None), _feedback("evt-checkbox-false", status=False)]
    for event in sent:
        reply = client.post("/feedback", event)
        assert reply.status == 201, reply.body
    stored = Store(server.params.serving.store_url).feedback_frame().set_index("event_id")
    export = pd.DataFrame({"lead_id": ["FB-1", "FB-1"], "status": [True, False], "reason": [None, "no_budget"]})
    exported, problems = prepare_table(export, "outcomes", server.params.data)
    assert not problems
    for event, (_, row) in zip(sent, exported.iterrows()):
        assert stored.loc[event["event_id"], ["status", "reason"]].fillna("").tolist() == \
            row[["status", "reason"]].fillna("").tolist()
    assert stored.loc["evt-checkbox-true", "status"] == "converted"

    untranslated = client.post("/feedback", _feedback("evt-checkbox-reason", reason=True))
    assert untranslated.status == 422, untranslated.body  # read as 'true', which is no reason code here
    assert untranslated.json()["detail"][0]["msg"].startswith("reason 'true' is not a reason code")
    for field in ("status", "reason"):
        refused = client.post("/feedback", _feedback(f"evt-number-{field}", **{field: 1}))
        assert refused.status == 400, refused.body
        assert [(d["field"], d["msg"]) for d in refused.json()["detail"]] == [
            (field, "expected text or true/false, not a number")]


def test_a_refused_decision_is_told_in_the_terms_of_the_integrator_who_sent_it(client, sample_params):
    """The refusals named params keys ("a code from label.reasons", "data.missing_values"), which a CRM integrator
    has never seen: each names the field sent and lists what it takes, the CRM labels included, as /docs.json
    does; the params setting is left only as where a RevOps admin adds a label."""
    reply = client.post("/feedback", _feedback("evt-words-of-the-crm", lead_id="N/A", status="Won", reason="meh"))
    assert reply.status == 422, reply.body
    problems = {d["field"]: d["msg"] for d in reply.json()["detail"]}
    statuses = "'converted', 'rejected', 'nurture', 'duplicate' or 'open' (any letter case)"
    assert problems == {
        "lead_id": "lead_id 'N/A' is no id (the service reads blank text and 'Select' or 'N/A' as not answered): send "
                   "the CRM's id of the lead the decision is about",
        "status": f"unknown status 'Won': send {statuses}, or a CRM label the service translates: 'Closed - Not "
                  "Converted', 'true' or 'false'; a RevOps admin adds another CRM label in params data.value_maps.status",
        "reason": "reason 'meh' is not a reason code: send no reason (null), or 'not_decision_maker', 'no_budget', "
                  "'bad_timing', 'competitor', 'unresponsive', 'student', 'invalid_contact' or 'duplicate' (any letter "
                  "case), or a CRM label the service translates: 'No Budget'; a RevOps admin adds another CRM label in "
                  "params data.value_maps.reason"}
    assert list(sample_params.label.reasons) == ["not_decision_maker", "no_budget", "bad_timing", "competitor",
                                                 "unresponsive", "student", "invalid_contact", "duplicate"]
    documented = client.get("/docs.json").json()["components"]["schemas"]["Feedback"]["properties"]
    assert documented["status"]["examples"] == ["converted", "rejected", "nurture", "duplicate", "open",
                                                "Closed - Not Converted", "true", "false"]
    assert f"Takes {statuses}, or a CRM label the service translates" in documented["status"]["description"]
    assert documented["reason"]["examples"][-1] == "No Budget" and "enum" not in documented["reason"]


def test_a_rejection_without_a_reason_is_stored_as_uncoded(client, server):
    """Reps skip the reason field: refused, the decision was lost until the next export, and monitor's share of
    rejections with a reason code (which reads the store) only ever saw coded ones. Labelled as an export's
    reasonless rejection is (label.missing_reason)."""
    # "N/A" and a picklist's "Select" are data.missing_values: an export's reason cell holding them reads as none.
    for event_id, reason in [("evt-no-reason", None), ("evt-blank-reason", "  "), ("evt-na-reason", "N/A"),
                             ("evt-select-reason", "Select")]:
        reply = client.post("/feedback", _feedback(event_id, lead_id="FB-NR", reason=reason))
        assert reply.status == 201, reply.body
        stored = Store(server.params.serving.store_url).feedback_frame().set_index("event_id").loc[event_id]
        assert stored["status"] == "rejected" and pd.isna(stored["reason"])


def test_a_conversion_needs_no_reason(client):
    reply = client.post("/feedback", _feedback("evt-won", status="converted", reason=None, amount=4800))
    assert reply.status == 201


def test_an_amount_written_as_text_is_stored_as_its_number(client, server):
    """CRM webhooks often send numbers as text; an export's amount column is text too."""
    reply = client.post("/feedback", _feedback("evt-won-text", status="converted", reason=None, amount=" 12500.50 "))
    assert reply.status == 201, reply.body
    stored = Store(server.params.serving.store_url).feedback_frame().set_index("event_id").loc["evt-won-text"]
    assert stored["amount"] == 12500.5 and reply.json()["warnings"] == []


def test_the_docs_require_the_warnings_every_feedback_receipt_has(client):
    """The service always sends `warnings` ([] when stored as sent), but /docs.json left it optional: a client
    generated from it had to handle a receipt without it."""
    spec = client.get("/docs.json").json()
    receipt = client.post("/feedback", _feedback("evt-receipt")).json()
    assert "warnings" in spec["components"]["schemas"]["FeedbackReceipt"]["required"]
    assert _documented(spec, "FeedbackReceipt", receipt)
    assert not _documented(spec, "FeedbackReceipt", {k: v for k, v in receipt.items() if k != "warnings"})


@pytest.mark.parametrize("amount", ["", "  ", None])
def test_a_blank_amount_is_stored_as_no_amount(client, server, amount):
    """Salesforce and HubSpot send an empty currency field as "": it was refused (400), and the decision lost."""
    event_id = f"evt-won-blank-{amount!r}"
    reply = client.post("/feedback", _feedback(event_id, status="converted", reason=None, amount=amount))
    assert reply.status == 201, reply.body
    assert pd.isna(Store(server.params.serving.store_url).feedback_frame().set_index("event_id").loc[event_id, "amount"])


@pytest.mark.parametrize("amount", ["12,500", "lots", "51-200", -100, True, 1e15])
def test_a_decision_whose_amount_cannot_be_read_is_stored_without_it_and_the_answer_names_the_field(client, server,
                                                                                                   amount):
    """Refused whole (400), the decision was lost: a CRM sends it once, not again for its amount. An export's row with
    such an amount is kept without it (contract.OUTCOMES.cleared_if_bad); the event is stored so too, and the answer
    warns in the export's words, at the field, on a retry as well."""
    event = _feedback(f"evt-bad-amount-{amount!r}", lead_id="FB-AMOUNT", status="converted", reason=None, amount=amount)
    first, retry = client.post("/feedback", event), client.post("/feedback", event)
    assert (first.status, retry.status) == (201, 200), first.body
    exported = pd.DataFrame({"lead_id": ["FB-AMOUNT"], "status": ["converted"], "amount": pd.Series([amount], dtype=object)})
    _, (problem,) = prepare_table(exported, "outcomes", server.params.data, audience=API_CLIENT)
    assert problem.row_kept
    (warning,) = first.json()["warnings"]
    assert warning["field"] == "amount" and warning["msg"].startswith(
        f"{problem.message}; the decision was stored without an amount"), warning
    assert retry.json()["warnings"] == first.json()["warnings"]
    stored = Store(server.params.serving.store_url).feedback_frame().set_index("event_id").loc[event["event_id"]]
    assert stored["status"] == "converted" and pd.isna(stored["amount"])


# A Salesforce org's own names for a decision's fields, as its outcomes export has them and its integration sends them.
CRM_OUTCOME_NAMES = {"LeadId": "lead_id", "StageName": "status", "Lost Reason": "reason", "CloseDate": "decided_at",
                     "Amount": "amount"}
DECIDED = ["lead_id", "status", "reason", "decided_at", "amount"]


@pytest.fixture(scope="module")
def crm_named(trained, sample_params, tmp_path_factory):
    """The service with params whose data.mapping.outcomes names a decision's fields as the CRM does."""
    folder = tmp_path_factory.mktemp("crm-named")
    overrides = {"serving.store_url": f"sqlite:///{folder / 'store.db'}", "data.value_maps": CRM_LABELS,
                 "data.mapping.outcomes": CRM_OUTCOME_NAMES}
    with running_service(sample_params, folder, overrides, timeout=60) as srv:
        yield srv


@pytest.fixture()
def crm_client(crm_named):
    """A client of `crm_named`, closed after the test."""
    c = crm_named.client()
    yield c
    c.close()


def _stored(srv, event_id: str) -> list:
    """A stored decision's fields (None where it holds none)."""
    row = Store(srv.params.serving.store_url).feedback_frame().set_index("event_id").loc[event_id, DECIDED]
    return [None if pd.isna(value) else value for value in row.tolist()]


def test_a_decision_sent_under_the_crms_own_field_names_is_stored_as_training_reads_its_export_row(crm_named,
                                                                                                   crm_client):
    """A CRM sends a decision under the names its outcomes export has and params data.mapping.outcomes declares
    ("StageName", "Lost Reason"): /feedback read none of them, so the decision was refused for lacking the status it
    was sent (400), or stored without its reason, which retraining learns why leads are rejected from. Each field is
    read as training reads the same row of the export (the mapping, then data.value_maps), and /docs.json says so."""
    client = crm_client
    rejected = {"event_id": "evt-crm-names-rejected", "LeadId": "FB-CRM-1", "StageName": "Closed - Not Converted",
                "Lost Reason": "No Budget", "CloseDate": "2025-12-15T14:00:00Z"}
    won = {"event_id": "evt-crm-names-won", "LeadId": "FB-CRM-2", "StageName": "true", "CloseDate": "Dec 16, 2025",
           "Amount": "12500.50"}
    replies = [client.post("/feedback", event) for event in (rejected, won)]
    spec = client.get("/docs.json").json()
    assert [(r.status, r.json()["warnings"]) for r in replies] == [(201, []), (201, [])], [r.body for r in replies]
    export = pd.DataFrame([{k: v for k, v in event.items() if k != "event_id"} for event in (rejected, won)])
    exported, problems = prepare_table(export, "outcomes", crm_named.params.data)
    assert not problems
    for event, (_, row) in zip((rejected, won), exported.iterrows()):
        assert _stored(crm_named, event["event_id"]) == [None if pd.isna(v) else v for v in row[DECIDED].tolist()]
    assert _stored(crm_named, "evt-crm-names-rejected")[1:3] == ["rejected", "no_budget"]
    assert _stored(crm_named, "evt-crm-names-won")[1::3] == ["converted", 12500.5]
    assert _documented(spec, "Feedback", rejected) and _documented(spec, "Feedback", won)
    assert not _documented(spec, "Feedback", {k: v for k, v in rejected.items() if k != "StageName"})
    assert "Also read under the CRM's name 'Lost Reason'" in spec["components"]["schemas"]["Feedback"]["properties"][
        "reason"]["description"]


def test_a_decision_field_sent_under_its_crm_name_and_its_own_is_read_once_or_refused_naming_both(crm_named,
                                                                                                   crm_client):
    """A CRM adding the documented names to its own record sends a field twice: it is read once where both hold one
    value (compared as an export's two such columns are: a date as its time, text stripped; null holds none), and
    refused naming both where they differ, as /score refuses a lead's: the service never picks one."""
    client = crm_client
    same = {"event_id": "evt-both-names-same", "lead_id": "FB-BOTH", "LeadId": " FB-BOTH ", "status": "rejected",
            "StageName": "rejected", "reason": None, "Lost Reason": "No Budget", "decided_at": "2025-12-15",
            "CloseDate": "2025-12-15T00:00:00Z"}
    reply = client.post("/feedback", same)
    assert (reply.status, reply.json()["warnings"]) == (201, []), reply.body
    assert _stored(crm_named, "evt-both-names-same")[:3] == ["FB-BOTH", "rejected", "no_budget"]
    differ = {"event_id": "evt-both-names-differ", "lead_id": "FB-BOTH", "status": "rejected", "reason": "competitor",
              "Lost Reason": "No Budget", "decided_at": "2025-12-15"}
    reply = client.post("/feedback", differ)
    assert reply.status == 422, reply.body
    assert [(d["field"], d["type"], d["msg"]) for d in reply.json()["detail"]] == [(
        "reason", "ambiguous_column", "'reason' and 'Lost Reason' are one field, reason (the service's "
        "data.mapping.outcomes), sent with different values ('reason': 'competitor', 'Lost Reason': 'No Budget'): "
        "send it once")]
    stored = Store(crm_named.params.serving.store_url).feedback_frame()
    assert "evt-both-names-differ" not in stored["event_id"].tolist()


def test_a_problem_of_a_field_sent_under_its_crm_name_is_named_at_that_name(crm_named, crm_client):
    """The client wrote "StageName": a refusal or warning at "status", a field it never sent, would not say which of
    its fields to fix."""
    client = crm_client
    event = {"event_id": "evt-crm-problem", "LeadId": "FB-CRM-3", "StageName": "converted", "CloseDate": "2025-12-15"}
    unknown = client.post("/feedback", {**event, "StageName": "Won"})
    as_number = client.post("/feedback", {**event, "CloseDate": 1765000000})
    bad_amount = client.post("/feedback", {**event, "Amount": "12,500"})
    assert (unknown.status, as_number.status, bad_amount.status) == (422, 400, 201)
    assert [(d["field"], d["type"]) for d in unknown.json()["detail"]] == [("StageName", "unknown_status")]
    assert unknown.json()["detail"][0]["msg"].startswith("unknown status 'Won'")
    assert [d["field"] for d in as_number.json()["detail"]] == ["CloseDate"]
    assert [(w["field"], w["type"]) for w in bad_amount.json()["warnings"]] == [("Amount", "bad_number")]


# ---------------------------------------------------------------- score card and docs


def test_score_card_shows_the_latest_logged_score(client, leads):
    lead = {**leads[5], "lead_id": "CARD-1"}
    score = client.post("/score", {"leads": [lead], "as_of": AS_OF}).json()["scores"][0]
    page = client.get("/leads/CARD-1")
    assert page.status == 200 and page.headers["content-type"].startswith("text/html")
    html = page.body.decode()
    assert f'id="score">{score["score"]}<' in html and f'id="tier">{score["tier"]}<' in html
    # The answer keeps the reason code for the CRM; the card words it ("no_budget" -> "No budget").
    code = score["likely_rejection_reason"]
    assert code in {"not_decision_maker", "no_budget", "bad_timing", "competitor", "unresponsive", "student"}
    assert f'id="rejection">{code.replace("_", " ").capitalize()} (' in html
    assert client.get("/leads/NEVER-SCORED").status == 404


@pytest.mark.parametrize("lead_id", ["a/b", "../model", "<script>alert(1)</script>", "x/"])
def test_a_card_link_opens_whatever_characters_the_lead_id_holds(client, server, leads, lead_id):
    score = client.post("/score", {"leads": [{**leads[6], "lead_id": lead_id}], "as_of": AS_OF}).json()["scores"][0]
    browser = Client(server.url)  # a rep's browser: no API key
    page = browser.get(score["card_url"])
    assert page.status == 200 and page.headers["content-type"].startswith("text/html"), page.body
    assert f'id="score">{score["score"]}<' in page.body.decode() and html.escape(lead_id) in page.body.decode()
    assert browser.request("HEAD", score["card_url"]).status == 200  # link checkers ask before opening


def _json_schema(spec: dict, answer: dict) -> dict:
    """The schema of a documented JSON body, its references resolvable within the document."""
    return {**answer["content"]["application/json"]["schema"], "components": spec["components"]}


def _conforms(body, schema: dict) -> None:
    jsonschema.Draft202012Validator(schema).validate(body)  # OpenAPI 3.1's dialect


def test_openapi_documents_the_endpoints(client):
    spec = client.get("/docs.json").json()
    paths, schemas = spec["paths"], spec["components"]["schemas"]
    assert {"/score", "/explain", "/feedback"} <= set(paths)
    feedback = paths["/feedback"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    amount = schemas[feedback["$ref"].rpartition("/")[2]]["properties"]["amount"]
    assert (amount["minimum"], amount["exclusiveMaximum"]) == (0, 1e15)  # JSON Schema's words, which tools read


def _documented(spec: dict, model: str, body) -> bool:
    """Whether /docs.json's schema `model` admits `body`, as a client validating against it before sending would tell."""
    try:
        _conforms(body, {"$ref": f"#/components/schemas/{model}", "components": spec["components"]})
    except jsonschema.ValidationError:
        return False
    return True


def test_openapi_describes_every_field_a_lead_its_activities_and_feedback_may_send(client, leads):
    """A lead's optional and activity fields were only in the example, and feedback's amount a number: a client
    validating against /docs.json could not tell what /score reads, and refused the "12500.50" /feedback takes."""
    spec = client.get("/docs.json").json()
    lead = spec["components"]["schemas"]["Lead"]
    assert {"email", "phone", "company", "industry", "employees", "country", "job_title", "lead_source",
            "campaign"} <= set(lead["properties"])
    assert "number" in lead["properties"]["employees"]["type"]
    activity = lead["properties"]["activities"]["anyOf"][0]["items"]
    assert activity["required"] == ["occurred_at", "activity"] and "detail" in activity["properties"]

    no_date = {**leads[0], "activities": [{"activity": "webinar"}]}
    assert _documented(spec, "Lead", leads[0]) and not _documented(spec, "Lead", no_date)  # as the service answers:
    assert client.post("/score", {"leads": [no_date], "as_of": AS_OF}).status == 422
    won = _feedback(f"evt-docs-amount-{uuid.uuid4()}", status="converted", reason=None, amount="12500.50")
    assert _documented(spec, "Feedback", won) and client.post("/feedback", won).status == 201
    assert not _documented(spec, "Feedback", {**won, "amount": "12,500"})


# What a CRM may send, and whether it is taken: /docs.json and the service must give the same verdict.
LEAD_VERDICTS = [
    ({"employees": 320}, True), ({"employees": "320"}, True), ({"employees": ""}, True), ({"employees": None}, True),
    ({"industry": 5}, True), ({"partner_flag": True}, True),  # a field the model does not read takes any value
    ({"attributes": {"type": "Lead", "url": "/services/data/v59.0/sobjects/Lead/00Q"}}, True), ({"tags": [1]}, True),
    ({"industry": {"n": 1}}, False), ({"activities": [{"occurred_at": "2025-12-02", "activity": "webinar",
                                                       "attributes": {"type": "Task"}}]}, True),
    ({"activities": [{"occurred_at": "2025-12-02", "activity": "webinar", "detail": 3}]}, True),
    ({"employees": {"n": 1}}, False), ({"employees": [1]}, False), ({"industry": True}, True), ({"employees": True}, False),
    ({"lead_id": 42}, False), ({"created_at": 1764000000}, False), ({"activities": [{"activity": "webinar"}]}, False),
    # A number field's text is a number's, or blank or data.missing_values (none known); JSON numbers within range.
    ({"employees": " 1e3 "}, True), ({"employees": "N/A"}, True), ({"employees": "lots"}, False),
    ({"employees": "1_000"}, False), ({"employees": "12,500"}, False), ({"employees": "-5"}, False),
    ({"employees": -5}, False), ({"employees": 1e15}, False),
    # NaN as text is no number, as in an export; infinity is out of range. -0 is 0, as JSON's -0.0 is.
    ({"employees": "nan"}, True), ({"employees": " NaN "}, True), ({"employees": "-nan"}, False),
    ({"employees": "inf"}, False), ({"employees": "-inf"}, False), ({"employees": "Infinity"}, False),
    ({"employees": "-0"}, True), ({"employees": "-0.0"}, True), ({"employees": -0.0}, True),
    # Text as large as 1e15 once read, however written; ASCII digits and blanks only, as an export's number field.
    ({"employees": "1e15"}, False), ({"employees": "1000000000000000"}, False), ({"employees": "9" * 400}, False),
    ({"employees": "999999999999999.9375"}, False), ({"employees": "999999999999999.93"}, True),
    ({"employees": "0.5e15"}, True), ({"employees": "0" * 400 + "7"}, True), ({"employees": "\u0661\u0662\u0663"}, False),
    ({"employees": "5\u00a0"}, False), ({"employees": "\u3000"}, True),
    # An id is stripped, then needs a character and holds no control character; data.missing_values is no id.
    ({"lead_id": " VERDICT-PADDED\n"}, True), ({"lead_id": "   "}, False), ({"lead_id": "a\tb"}, False),
    ({"lead_id": "N/A"}, False),
    # At most 255 characters once stripped: the blanks around it are not counted.
    ({"lead_id": " " * 10 + "V" * 250}, True), ({"lead_id": "V" * 250 + "\u3000" * 10}, True),
    ({"lead_id": "V" * 256}, False),
]
FEEDBACK_VERDICTS = [
    ({"amount": "12500.50"}, True), ({"amount": " 12500.50 "}, True), ({"amount": ""}, True), ({"amount": None}, True),
    ({"amount": 4800}, True), ({"amount": "1e3"}, True),
    ({"amount": "1_000"}, False), ({"amount": "12,500"}, False), ({"amount": "-5"}, False), ({"amount": -5}, False),
    ({"amount": True}, False), ({"amount": "lots"}, False), ({"decided_at": 1700000000}, False), ({"status": 1}, False),
    ({"amount": "-0"}, True), ({"amount": "NaN"}, True), ({"amount": "1e15"}, False), ({"amount": "9" * 400}, False),
    ({"amount": " N/A "}, True), ({"amount": "Select"}, True),  # data.missing_values: no amount, as in an export
    ({"amount": "999999999999999.9375"}, False), ({"amount": "\u0661\u0662\u0663"}, False), ({"amount": "5\u00a0"}, False),
    ({"lead_id": " FB-1\t"}, True), ({"lead_id": ""}, False), ({"lead_id": " \n "}, False), ({"lead_id": "FB\n1"}, False),
    ({"lead_id": " N/A "}, False), ({"event_id": "   "}, False), ({"event_id": "evt\r\n1"}, False),
    ({"lead_id": " " * 10 + "F" * 250}, True), ({"event_id": f"{uuid.uuid4()}{'E' * 200}" + "\u3000" * 30}, True),
    ({"event_id": "E" * 256}, False),
]
# Category values: a CRM's own label and any letter case are taken, so /docs.json lists values, never an enum.
CATEGORY_VERDICTS = [({"status": "Closed - Not Converted", "reason": "No Budget"}, True),
                     ({"status": " CONVERTED ", "reason": None}, True), ({"reason": "  No_Budget "}, True),
                     ({"status": True}, True), ({"status": False, "reason": "no_budget"}, True),
                     ({"status": 1.5}, False), ({"reason": 3}, False)]


def test_docs_json_takes_and_refuses_what_the_service_takes_and_refuses(client):
    """A client validating against /docs.json before sending gets the service's own verdict: an amount "1_000"
    was stored as 1000 though the document refused it (and a CRM never writes one so); the document took any text
    in a lead's number field, and a blank id, or one with a line break, which the service refuses. An amount the
    service cannot read is left out with a warning, the decision stored: the document refuses it."""
    spec = client.get("/docs.json").json()
    for i, (change, taken) in enumerate(LEAD_VERDICTS):
        body = {"leads": [{"lead_id": f"VERDICT-{i}", "created_at": "2025-12-01T09:00:00Z", **change}], "as_of": AS_OF}
        reply = client.post("/score", body)
        assert reply.status in (200, 400, 422), (change, reply.body)
        assert (_documented(spec, "ScoreRequest", body), reply.status == 200) == (taken, taken), (change, reply.body)
    for change, taken in FEEDBACK_VERDICTS + CATEGORY_VERDICTS:
        event = {**_feedback(f"evt-verdict-{uuid.uuid4()}", status="converted", reason=None), **change}
        reply = client.post("/feedback", event)
        assert reply.status in (201, 400, 422), (change, reply.body)
        as_sent = reply.status == 201 and not reply.json()["warnings"]
        assert (_documented(spec, "Feedback", event), as_sent) == (taken, taken), (change, reply.body)


def test_openapi_documents_every_answer_the_api_gives_in_the_shape_it_gives_it(client, server, leads):
    """What a CRM integration codes against (/docs.json) is what the running service answers."""
    spec = client.get("/docs.json").json()
    assert spec["info"]["version"] == importlib.metadata.version("leadscore")
    answers = {route: {int(status): answer for status, answer in spec["paths"][route]["post"]["responses"].items()}
               for route in ("/score", "/feedback")}
    assert set(answers["/score"]) == {200, 400, 401, 413, 415, 422, 503}
    assert set(answers["/feedback"]) == {200, 201, 400, 401, 409, 413, 415, 422, 503}
    error_refs = {answer["content"]["application/json"]["schema"]["$ref"]
                  for route in answers.values() for status, answer in route.items() if status >= 400}
    assert len(error_refs) == 1  # one error shape for every status
    error = spec["components"]["schemas"][error_refs.pop().rpartition("/")[2]]
    detail = error["properties"]["detail"]
    problem = spec["components"]["schemas"][detail["items"]["$ref"].rpartition("/")[2]]
    assert error["required"] == ["error", "detail"] and detail["type"] == "array"
    assert set(problem["required"]) == {"loc", "field", "msg", "type"}

    no_key = Client(server.url)
    event = _feedback(f"evt-docs-{uuid.uuid4()}")
    assert client.post("/feedback", event).status == 201
    replies = {
        ("/score", 200): client.post("/score", {"leads": leads[:2], "as_of": AS_OF}),
        ("/score", 400): client.post("/score", {"leads": [{**leads[0], "employees": {"n": 1}}], "as_of": AS_OF}),
        ("/score", 401): no_key.post("/score", {"leads": leads[:1]}),
        ("/score", 413): client.post("/score", {"leads": [leads[0]] * (MAX_BATCH + 1), "as_of": AS_OF}),
        ("/score", 415): client.post("/score", b"leads=1", {"Content-Type": "application/x-www-form-urlencoded"}),
        ("/score", 422): client.post("/score", {"leads": [{**leads[0], "created_at": "yesterday"}], "as_of": AS_OF}),
        ("/feedback", 200): client.post("/feedback", event),
        ("/feedback", 409): client.post("/feedback", {**event, "status": "converted", "reason": None}),
        ("/feedback", 422): client.post("/feedback", {**event, "decided_at": "2999-01-01T00:00:00Z"}),
    }
    for (route, status), reply in replies.items():
        assert reply.status == status, (route, reply.body)
        _conforms(reply.json(), _json_schema(spec, answers[route][status]))

    model = spec["paths"]["/model"]["get"]["responses"]["200"]
    _conforms(client.get("/model").json(), _json_schema(spec, model))
    no_card = spec["paths"]["/leads/{lead_id}"]["get"]["responses"]["404"]
    _conforms(client.get("/leads/NEVER-SCORED").json(), _json_schema(spec, no_card))


def test_openapi_documents_how_a_score_card_is_asked_for(client, leads):
    """An id a path cannot carry ("." or "..", or one holding "/") goes in the query field lead_id: a client reads
    that in /docs.json."""
    card = client.get("/docs.json").json()["paths"]["/leads/{lead_id}"]["get"]
    parameters = {(p["name"], p["in"]): p for p in card["parameters"]}
    assert set(parameters) == {("lead_id", "path"), ("lead_id", "query"), ("expires", "query"), ("signature", "query")}
    by_query = parameters[("lead_id", "query")]
    assert by_query["required"] is False and by_query["schema"] == {"type": "string"}
    assert "/leads/?lead_id=.. or /leads/?lead_id=a%2Fb" in by_query["description"]

    for lead_id in ("..", "q/r"):
        assert client.post("/score", {"leads": [{**leads[4], "lead_id": lead_id}], "as_of": AS_OF}).status == 200
        page = client.get(f"/leads/?{by_query['name']}={quote(lead_id, safe='')}")  # as documented
        assert page.status == 200 and f"<h1>Lead {lead_id}</h1>" in page.body.decode()


@pytest.mark.parametrize(
    ("overrides", "with_key", "reason"),
    [
        ({"serving.alias": "gold"}, True, "no model 'leadscore' with alias 'gold'"),
        ({"serving.api_key_env": "LEADSCORE_KEY_NOBODY_SET"}, False,
         "leadscore refuses to start: no API key: set the environment variable LEADSCORE_KEY_NOBODY_SET"),
    ],
    ids=["no-model", "no-key"],
)
def test_the_service_refuses_to_start_saying_why(trained, sample_params, tmp_path, overrides, with_key, reason):
    """A refused start leaves nothing behind: no empty store where serving.store_url points, which a later start
    or a backup would take for the real one."""
    store = tmp_path / "store.db"
    with pytest.raises(RuntimeError, match="exited with code") as refused:
        with running_service(sample_params, tmp_path, {**overrides, "serving.store_url": f"sqlite:///{store}"},
                             api_key=with_key, timeout=60):
            pass
    assert reason in str(refused.value)
    assert not list(tmp_path.glob(f"{store.name}*"))


@pytest.mark.parametrize(("params_name", "extra", "reason"), [
    ("missing.yaml", None, "params file not found: {path}"),
    ("params.yaml", {"serving.workers": 2}, "{path}: 1 invalid setting(s)\n  - serving.workers: unknown key"),
], ids=["missing-file", "unknown-key"])
def test_a_params_file_the_service_cannot_use_is_refused_in_one_line(sample_params, tmp_path, params_name, extra,
                                                                     reason):
    """LEADSCORE_PARAMS naming a file that is not there, or a setting misspelt in it (an operator's usual mistakes),
    is said as the other refusals are, not buried at the end of a traceback through BentoML's start-up."""
    from pipelines.config import PARAMS_ENV
    from serving.local_server import params_file, start

    path = tmp_path / params_name
    if extra:
        params_file(sample_params, path, extra)
    env = {PARAMS_ENV: str(path), "BENTOML_HOME": str(tmp_path / "bentoml"),
           sample_params.serving.api_key_env: "a-key"}
    with pytest.raises(RuntimeError, match="exited with code") as refused:
        start(env, tmp_path / "server.log", timeout=60)
    assert f"leadscore refuses to start: {reason.format(path=path)}" in str(refused.value)
    assert "Traceback" not in str(refused.value)


def test_a_tracking_sqlite_file_that_does_not_exist_is_refused_creating_nothing(sample_params, tmp_path):
    """tracking.uri mistyped: MLflow created an empty tracking store there and the service refused for want of a
    model, leaving that store behind for the next start to read. It refuses naming the file, and creates neither
    store."""
    from pipelines.config import PARAMS_ENV
    from serving.local_server import params_file, start

    tracking_file, store = tmp_path / "mlfow.db", tmp_path / "store.db"
    path = params_file(sample_params, tmp_path / "params.yaml",
                       {"tracking.uri": f"sqlite:///{tracking_file}", "serving.store_url": f"sqlite:///{store}"})
    with pytest.raises(RuntimeError, match="exited with code") as refused:
        start({PARAMS_ENV: str(path), "BENTOML_HOME": str(tmp_path / "bentoml"),
               sample_params.serving.api_key_env: "a-key"}, tmp_path / "server.log", timeout=60)
    assert (f"leadscore refuses to start: cannot open the MLflow tracking store sqlite:///{tracking_file}: "
            f"{tracking_file} does not exist, so no model is registered there: run `leadscore train` first, which "
            "creates it. Check tracking.uri") in str(refused.value)
    assert not tracking_file.exists() and not store.exists()


def test_a_served_version_whose_files_are_gone_is_refused_saying_so(trained, sample_params, tmp_path):
    """The project moved or copied with its mlflow.db but not its mlruns/ folder (MLflow keeps absolute artifact
    paths): the service refuses to start in one line saying the model's files are not there and what to do."""
    from pipelines.config import PARAMS_ENV
    from serving.local_server import params_file, start

    uri = moved_tracking_store(sample_params, tmp_path)
    shutil.rmtree(tmp_path / "tracking" / "mlruns")
    path = params_file(sample_params, tmp_path / "params.yaml",
                       {"tracking.uri": uri, "serving.store_url": f"sqlite:///{tmp_path / 'store.db'}"})
    with pytest.raises(RuntimeError, match="exited with code") as refused:
        start({PARAMS_ENV: str(path), "BENTOML_HOME": str(tmp_path / "bentoml"),
               sample_params.serving.api_key_env: "a-key"}, tmp_path / "server.log", timeout=60)
    (line,) = [line for line in str(refused.value).splitlines() if "leadscore refuses to start" in line]
    assert line.startswith("leadscore refuses to start: the files of model 'leadscore' version ")
    assert f"(alias 'champion') are not there: MLflow keeps them in {tmp_path / 'tracking' / 'mlruns'}/" in line
    assert line.endswith("or train a new model with `leadscore train`")


def test_docs_name_a_leads_fields_as_the_served_model_reads_them_after_params_changed(trained, sample_params, tmp_path):
    """params.yaml's mapping edited after training (the CRM renamed fields, no retrain yet): /score still reads
    leads by the model's mapping, so /docs.json must document that one, or a CRM following it is refused."""
    renamed = {"data.mapping.leads": {"Lead ID": "lead_id", "Created Date": "created_at"}}
    with running_service(sample_params, tmp_path, renamed, timeout=60) as srv:
        client = srv.client()
        lead = client.get("/docs.json").json()["components"]["schemas"]["Lead"]
        assert {"lead_id", "created_at"} <= set(lead["required"]) and "Lead ID" not in lead["properties"]
        scored = client.post("/score", {"leads": [lead["example"]], "as_of": AS_OF})
    assert scored.status == 200, scored.body


def test_the_service_benchmark_runs_against_the_real_server(server, monkeypatch, tmp_path):
    """`make bench-serve` (serving.bench), shrunk: every phase runs, the in-process phase included."""
    from serving import bench

    monkeypatch.setenv(server.params.serving.api_key_env, server.key)
    out = tmp_path / "bench.json"
    code = bench.main(["--url", server.url, "--params", str(server.folder / "params.yaml"), "--requests", "5",
                       "--batch", "20", "--batch-repeats", "1", "--clients", "2", "--seconds", "1", "--json", str(out)])
    results = json.loads(out.read_text())
    assert code == 0 and results["concurrent_http"]["server_errors"] == 0
    assert results["single_http"]["statuses"] == {"200": 5}
    assert results["single_in_process"]["n"] == 5 and results["batch_http"]["n"] == 1


def test_docs_require_no_creation_date_of_a_lead_an_undated_model_scores(sample_dir, monkeypatch_session, tmp_path):
    """A model of an undated export (data.dated false, as X Education's) scores a lead without one; /docs.json
    required created_at all the same, so a CRM client validating against it could not send its leads."""
    from conftest import FAST, params_for
    from pipelines.train import train

    params = params_for(sample_dir, tmp_path, **FAST, **{"data.dated": False, "data.activities": None})
    train(params)
    lead = {"lead_id": "U-1", "industry": "software", "country": "US", "employees": "120"}
    with running_service(params, tmp_path, timeout=60) as srv:
        client = srv.client()
        spec = client.get("/docs.json").json()
        scored = client.post("/score", {"leads": [lead]})
        example = client.post("/score", {"leads": [spec["components"]["schemas"]["Lead"]["example"]]})
    assert (scored.status, example.status) == (200, 200), (scored.body, example.body)
    documented = spec["components"]["schemas"]["Lead"]
    assert documented["required"] == ["lead_id"] and "created_at" not in documented["example"]
    _conforms(lead, {"$ref": "#/components/schemas/Lead", "components": spec["components"]})
    # Its example is a lead of what the model reads, not the demo lead with activities it ignores.
    assert "activities" not in documented["example"] and set(documented["example"]) <= set(documented["properties"])
    assert "ignored" in documented["properties"]["activities"]["description"]


def test_true_or_false_in_a_category_field_is_scored_as_the_text_true_or_false(sample_dir, monkeypatch_session,
                                                                               tmp_path):
    """A JSON true/false in a CRM field read as a category is the text "true"/"false", as a CSV export writes the
    CRM's yes/no and as training reads a SQL or Parquet boolean: "Opted In" (trained on true/false) scores true as the
    "true" it learned, "Do Not Email" (trained on Yes/No) as the text "true" scores, a value it never saw. The service
    refused it in the second field, which batch scoring took from a Parquet boolean; /docs.json types both alike."""
    from conftest import FAST, params_for
    from pipelines.train import train

    crm = tmp_path / "crm"
    shutil.copytree(sample_dir, crm)
    rows = pd.read_csv(crm / "leads.csv", dtype=str, keep_default_na=False)
    rng = np.random.default_rng(5)
    rows["Do Not Email"] = rng.choice(["Yes", "No"], len(rows))
    rows["Opted In"] = rng.choice(["true", "false"], len(rows))
    rows.to_csv(crm / "leads.csv", index=False)
    defaults = params_for(crm, tmp_path)
    params = params_for(crm, tmp_path, **FAST, **{
        "data.mapping": {"leads": {"Do Not Email": "do_not_email", "Opted In": "opted_in"}},
        "features.categorical": [*defaults.features.categorical, "do_not_email", "opted_in"],
        "features.phrases": {**defaults.features.phrases, "do_not_email": "Do not e-mail: {value}",
                             "opted_in": "Opted in: {value}"}})
    train(params)
    lead = {"lead_id": "TF-1", "created_at": "2025-12-01", "Do Not Email": "No", "Opted In": "true"}
    sent = {"opted-in-true": ({**lead, "Opted In": True}, lead), "opted-in-false": ({**lead, "Opted In": False},
                                                                                  {**lead, "Opted In": "false"}),
            "do-not-email-true": ({**lead, "Do Not Email": True}, {**lead, "Do Not Email": "true"})}
    with running_service(params, tmp_path, timeout=60) as srv:
        client = srv.client()
        spec = client.get("/docs.json").json()
        replies = {(name, kind): client.post("/score", {"leads": [body], "as_of": AS_OF})
                   for name, bodies in sent.items() for kind, body in zip(("true/false", "text"), bodies)}
    for (name, kind), reply in replies.items():
        assert _documented(spec, "Lead", sent[name][kind == "text"]) and reply.status == 200, reply.body
    for name in sent:
        as_bool, as_text = (replies[name, kind].json()["scores"][0] for kind in ("true/false", "text"))
        assert as_bool["probability"] == as_text["probability"], name
        # "Do Not Email" never held "true" in training: the CRM is told, under its field name, as the text JSON writes.
        assert as_bool["never_seen"] == as_text["never_seen"] == (
            {"Do Not Email": "true"} if name == "do-not-email-true" else {}), name


def test_docs_json_takes_the_labels_a_number_fields_value_map_translates(sample_dir, monkeypatch_session, tmp_path):
    """data.value_maps on a number column (a CRM's size picklist read as a headcount): the service scored "11-50"
    and "enterprise" while /docs.json refused them as no number's text; a code renamed to another number is taken
    by both, a label the map lacks refused by both."""
    from conftest import FAST, params_for
    from pipelines.train import train

    params = params_for(sample_dir, tmp_path, **FAST, **{
        "data.value_maps": {"employees": {"11-50": "30", "Enterprise": "5000", "1": "10"}}})
    train(params)
    sent = {"11-50": True, " enterprise\u3000": True, "ENTERPRISE": True, 1: True, " 1 ": True, "Unknown": False,
            "Mid-market": False}
    with running_service(params, tmp_path, timeout=60) as srv:
        client = srv.client()
        spec = client.get("/docs.json").json()
        replies = {size: client.post("/score", {"leads": [{"lead_id": f"VM-{i}", "created_at": "2025-12-01",
                                                           "employees": size}], "as_of": AS_OF})
                   for i, size in enumerate(sent)}
    for (size, taken), reply in zip(sent.items(), replies.values()):
        body = {"leads": [{"lead_id": "VM", "created_at": "2025-12-01", "employees": size}], "as_of": AS_OF}
        assert (_documented(spec, "ScoreRequest", body), reply.status == 200) == (taken, taken), (size, reply.body)


def test_a_lead_scores_alike_alone_among_numbers_among_text_and_from_a_csv(sample_dir, monkeypatch_session, tmp_path):
    """A CRM sending employees -1 (data.missing_values: not known) and industry 5.0 (data.value_maps' "5"): alone the
    lead was refused (employees below 0), beside a lead sending text it scored with its industry left as "5.0",
    untranslated. A lead's score is now its own: what the same lead written as text scores, and what batch
    scoring gives its CSV row."""
    from conftest import FAST, params_for
    from pipelines.score import score_file
    from pipelines.train import train

    params = params_for(sample_dir, tmp_path, **FAST, **{
        "data.value_maps": {"industry": {"5": "software"}}, "data.missing_values": ["", "Select", "N/A", "-1"]})
    scorer = train(params).scorer
    lead = {"lead_id": "ALIKE", "created_at": "2025-12-01", "industry": 5.0, "employees": -1, "country": "US",
            "job_title": "VP Engineering", "lead_source": "organic"}
    batches = {"alone": [lead], "among numbers": [lead, {**lead, "lead_id": "NUMBERS", "industry": 8, "employees": 40}],
               "among text": [lead, {**lead, "lead_id": "TEXT", "industry": "retail", "employees": "N/A"}],
               "as text": [{**lead, "industry": "software", "employees": "N/A"}]}
    with running_service(params, tmp_path, timeout=60) as srv:
        client = srv.client()
        documented = _documented(client.get("/docs.json").json(), "ScoreRequest", {"leads": [lead], "as_of": AS_OF})
        replies = {name: client.post("/score", {"leads": body, "as_of": AS_OF}) for name, body in batches.items()}
    assert documented
    scores = {}
    for name, reply in replies.items():
        assert reply.status == 200, (name, reply.body)
        scores[name] = {k: v for k, v in reply.json()["scores"][0].items() if k != "card_url"}  # signed per request
    assert all(score == scores["as text"] for score in scores.values()), scores
    pd.DataFrame([{**lead, "industry": "5"}]).to_csv(tmp_path / "leads.csv", index=False)  # as a CRM export writes it
    score_file(scorer, tmp_path / "leads.csv", tmp_path / "scores.csv", as_of=pd.Timestamp(AS_OF), progress=False)
    batch = pd.read_csv(tmp_path / "scores.csv").iloc[0]
    assert (batch["score"], batch["probability"]) == (scores["alone"]["score"], pytest.approx(scores["alone"]["probability"]))


def test_a_value_never_seen_is_named_under_the_crms_field_and_a_number_the_model_knows_is_not(sample_dir,
                                                                                              monkeypatch_session,
                                                                                              tmp_path):
    """The CRM's "Lead Source" and "Plan" (codes an export wrote "1.0" and "3.0"): /score names a value the model never
    saw under the field name the request used, as sent, while the JSON 3 the model reads as its "3.0"
    (CategoryEncoder.as_known) is scored as that level and is not listed, as batch scoring does not report it; a
    file of the same leads names each lead's in its never_seen column as /score does."""
    from conftest import FAST, params_for
    from pipelines.score import score_file
    from pipelines.train import train

    crm = tmp_path / "crm"
    shutil.copytree(sample_dir, crm)
    rows = pd.read_csv(crm / "leads.csv", dtype=str, keep_default_na=False).rename(columns={"lead_source": "Lead Source"})
    rows["Plan"] = np.random.default_rng(3).choice(["1.0", "3.0"], len(rows))
    rows.to_csv(crm / "leads.csv", index=False)
    defaults = params_for(crm, tmp_path)
    params = params_for(crm, tmp_path, **FAST, **{
        "data.mapping": {"leads": {"Lead Source": "lead_source", "Plan": "plan"}},
        "features.categorical": [*defaults.features.categorical, "plan"],
        "features.phrases": {**defaults.features.phrases, "plan": "Plan {value}"}})
    scorer = train(params).scorer
    lead = {"lead_id": "K-1", "created_at": "2025-12-01", "industry": "software", "Lead Source": "webinar", "Plan": "3.0"}
    sent = [lead, {**lead, "lead_id": "K-2", "Plan": 3}, {**lead, "lead_id": "K-3", "Plan": "3"},
            {**lead, "lead_id": "N-1", "Lead Source": "TikTok"}, {**lead, "lead_id": "N-2", "Plan": 5},
            {**lead, "lead_id": "N-3", "Lead Source": "TikTok", "Plan": "5.5"}]
    with running_service(params, tmp_path, timeout=60) as srv:
        spec = srv.client().get("/docs.json").json()
        reply = srv.client().post("/score", {"leads": sent, "as_of": AS_OF})
        explained = [srv.client().post("/explain", {"lead": lead, "as_of": AS_OF}).json() for lead in sent]
    assert reply.status == 200, reply.body
    scores = reply.json()["scores"]
    assert [s["never_seen"] for s in scores] == [e["never_seen"] for e in explained] == [
        {}, {}, {}, {"Lead Source": "TikTok"}, {"Plan": "5"}, {"Lead Source": "TikTok", "Plan": "5.5"}]
    assert scores[1]["probability"] == scores[2]["probability"] == scores[0]["probability"]  # 3 is the "3.0" it knows
    pd.DataFrame(sent).to_csv(tmp_path / "leads.csv", index=False)
    score_file(scorer, tmp_path / "leads.csv", tmp_path / "scores.csv", as_of=pd.Timestamp(AS_OF), progress=False)
    batch = pd.read_csv(tmp_path / "scores.csv")["never_seen"]
    assert [{} if pd.isna(text) else json.loads(text) for text in batch] == [s["never_seen"] for s in scores]
    assert all(_documented(spec, "ScoreResponse", {"scores": [score], "warnings": []}) for score in scores)
    documented = spec["components"]["schemas"]["LeadScore"]["properties"]["never_seen"]
    assert "'Lead Source'" in documented["description"] and "'lead_source'" not in documented["description"]
