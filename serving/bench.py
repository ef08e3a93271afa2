"""Benchmark a running scoring service on 127.0.0.1 the way a CRM uses it.

    LEADSCORE_API_KEY=... python -m serving.bench --url http://127.0.0.1:3000   (or: make bench-serve)

1. One lead (with its activities) per POST /score, reasons included, sequentially: p50/p99, and
   the in-process cost of the same call (parse, score, explain, log, serialise; no HTTP) — the
   ratio shows what HTTP and BentoML add.
2. A batch of 1,000 leads per request: p50/max.
3. Concurrent clients posting single leads for a fixed time: throughput, latency, status codes
   (a 5xx is a failure).

Leads come from the params' CRM export (data.leads / data.activities), ids prefixed "bench-" so
their rows in the score log are easy to tell apart. Loops are bounded; only loopback URLs are used.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import threading
import time
import urllib.parse
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd

from pipelines.config import Params, load_params, params_from_env
from serving.local_server import Client

LOOPBACK = {"127.0.0.1", "localhost", "::1"}


def _records(frame: pd.DataFrame) -> list[dict]:
    return [{k: v for k, v in row.items() if isinstance(v, str)} for row in frame.to_dict("records")]


def bench_leads(params: Params, n: int) -> tuple[list[dict], str]:
    """`n` leads of the export as request objects (activities nested), and the export's latest date as as_of."""
    read = dict(dtype=str, keep_default_na=False, na_values=[""])
    leads = pd.read_csv(params.resolve(params.data.leads), nrows=n, **read)
    as_of = str(pd.to_datetime(leads["created_at"]).max())
    activities = pd.read_csv(params.resolve(params.data.activities), **read) if params.data.activities else None
    out = []
    for lead in _records(leads):
        row = {**lead, "lead_id": f"bench-{lead['lead_id']}"}
        if activities is not None:
            own = activities[activities["lead_id"] == lead["lead_id"]].drop(columns="lead_id")
            row["activities"] = _records(own)
        out.append(row)
    return out, as_of


def _quantiles(seconds: list[float]) -> dict[str, float]:
    ms = np.asarray(seconds) * 1000
    return {"n": len(ms), "p50_ms": float(np.percentile(ms, 50)), "p99_ms": float(np.percentile(ms, 99)),
            "max_ms": float(ms.max())}


def sequential(client: Client, leads: list[dict], as_of: str, requests: int) -> dict:
    """One lead per request, one request at a time."""
    latencies, statuses = [], Counter()
    for i in range(requests):
        body = json.dumps({"leads": [leads[i % len(leads)]], "as_of": as_of}).encode()
        start = time.perf_counter()
        reply = client.post("/score", body, {"Content-Type": "application/json"})
        latencies.append(time.perf_counter() - start)
        statuses[reply.status] += 1
    return {**_quantiles(latencies), "statuses": dict(statuses)}


def in_process(params: Params, leads: list[dict], as_of: str, requests: int) -> dict:
    """The work of one /score call without HTTP: validate, score with reasons, log, serialise."""
    os.environ.setdefault("OMP_NUM_THREADS", "1")  # as the service sets it
    from pipelines import tracking
    from serving.schemas import ScoreRequest, ScoreResponse
    from serving.scoring import ModelRef, request_as_of, score_request
    from serving.security import card_link_key
    from serving.store import Store

    scorer = tracking.load_scorer(params, params.serving.alias)
    model = ModelRef.of(scorer)
    latencies = []
    with tempfile.TemporaryDirectory() as tmp:
        store = Store(f"sqlite:///{Path(tmp) / 'store.db'}")
        for i in range(requests):
            body = json.dumps({"leads": [leads[i % len(leads)]], "as_of": as_of}).encode()
            start = time.perf_counter()
            request = ScoreRequest.model_validate_json(body)
            scored = score_request(scorer, [lead.model_extra for lead in request.leads],
                                   [lead.activities for lead in request.leads], model,
                                   as_of=request_as_of(request.as_of), top_k=params.serving.top_factors,
                                   card_key=card_link_key("bench"), card_link_days=params.serving.card_link_days)
            store.log_scores(scored.log_rows)
            ScoreResponse.model_validate({"scores": scored.results, "warnings": scored.warnings}).model_dump_json()
            latencies.append(time.perf_counter() - start)
        store.engine.dispose()
    return {**_quantiles(latencies), "model_version": model.version}


def batch(client: Client, leads: list[dict], as_of: str, repeats: int) -> dict:
    """All `leads` in one request, `repeats` times."""
    body = json.dumps({"leads": leads, "as_of": as_of}).encode()
    latencies, statuses = [], Counter()
    for _ in range(repeats):
        start = time.perf_counter()
        reply = client.post("/score", body, {"Content-Type": "application/json"})
        latencies.append(time.perf_counter() - start)
        statuses[reply.status] += 1
    return {**_quantiles(latencies), "leads": len(leads), "body_bytes": len(body), "statuses": dict(statuses)}


def concurrent(url: str, key: str, leads: list[dict], as_of: str, clients: int, seconds: float) -> dict:
    """`clients` threads, each posting single leads back to back for `seconds` (at most 100,000 each)."""
    deadline = time.monotonic() + seconds
    latencies: list[float] = []
    statuses: Counter = Counter()
    errors: Counter = Counter()
    lock = threading.Lock()

    def run(worker: int) -> None:
        client = Client(url, key)
        mine, codes = [], Counter()
        for i in range(100_000):
            if time.monotonic() >= deadline:
                break
            body = json.dumps({"leads": [leads[(worker * 7919 + i) % len(leads)]], "as_of": as_of}).encode()
            start = time.perf_counter()
            try:
                reply = client.post("/score", body, {"Content-Type": "application/json"})
            except OSError as err:
                with lock:
                    errors[type(err).__name__] += 1
                client.close()
                continue
            mine.append(time.perf_counter() - start)
            codes[reply.status] += 1
        client.close()
        with lock:
            latencies.extend(mine)
            statuses.update(codes)

    started = time.monotonic()
    threads = [threading.Thread(target=run, args=(w,)) for w in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.monotonic() - started
    server_errors = sum(n for code, n in statuses.items() if code >= 500)
    return {**_quantiles(latencies), "clients": clients, "seconds": round(elapsed, 1),
            "requests_per_s": round(len(latencies) / elapsed, 1), "statuses": dict(statuses),
            "server_errors": server_errors, "client_errors": dict(errors)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", default="http://127.0.0.1:3000")
    parser.add_argument("--params", help="params file (default: LEADSCORE_PARAMS, else the project's params.yaml)")
    parser.add_argument("--requests", type=int, default=1000, help="sequential single-lead requests")
    parser.add_argument("--batch", type=int, default=1000, help="leads in the batch request")
    parser.add_argument("--batch-repeats", type=int, default=10)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args(argv)

    host = urllib.parse.urlsplit(args.url).hostname
    if host not in LOOPBACK:
        parser.error(f"--url must be a loopback address ({', '.join(sorted(LOOPBACK))}), got {host!r}")
    params = load_params(args.params) if args.params else params_from_env()
    key = os.environ.get(params.serving.api_key_env, "")
    if not key:
        parser.error(f"set {params.serving.api_key_env} to the server's API key")
    leads, as_of = bench_leads(params, max(args.batch, 200))
    client = Client(args.url, key)
    served = client.get("/model")
    if served.status != 200:
        parser.error(f"GET {args.url}/model answered {served.status}: {served.body[:200]!r}")
    print(f"server {args.url}: model {served.json()['name']} v{served.json()['version']}; as_of {as_of}", flush=True)

    results = {"url": args.url, "model_version": served.json()["version"], "cpus": os.cpu_count()}
    for _ in range(20):  # warm up both sides
        client.post("/score", {"leads": [leads[0]], "as_of": as_of})
    results["single_http"] = sequential(client, leads, as_of, args.requests)
    print(f"single lead over HTTP  : {results['single_http']}", flush=True)
    results["single_in_process"] = in_process(params, leads, as_of, args.requests)
    results["http_over_in_process_p50"] = round(results["single_http"]["p50_ms"] / results["single_in_process"]["p50_ms"], 2)
    print(f"single lead in process : {results['single_in_process']}  (HTTP/in-process p50 "
          f"{results['http_over_in_process_p50']}x)", flush=True)
    results["batch_http"] = batch(client, leads[: args.batch], as_of, args.batch_repeats)
    print(f"{args.batch}-lead batch      : {results['batch_http']}", flush=True)
    results["concurrent_http"] = concurrent(args.url, key, leads, as_of, args.clients, args.seconds)
    print(f"{args.clients} concurrent clients: {results['concurrent_http']}", flush=True)
    client.close()
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 1 if results["concurrent_http"]["server_errors"] else 0


if __name__ == "__main__":
    sys.exit(main())
