"""The scoring service the CRM calls: BentoML in front of the one LeadScorer.

Start: `bentoml serve serving.service:LeadScoreService` (or `make serve`). Params come from the file
in LEADSCORE_PARAMS (default: the project's params.yaml). The model is loaded once, at start-up:
from the bento when served as a built bento, else the MLflow registry version that
params.serving.alias names. Without a model or without an API key the service refuses to start.

Every endpoint delegates to serving.scoring (request <-> LeadScorer) and serving.store.
"""

from __future__ import annotations

import os

# One lead per request is the common call: OpenMP's thread start-up then costs 10-20x the
# prediction itself (LightGBM, measured 24 ms vs 1.7 ms per row on 2 cores). Set before LightGBM
# loads; concurrency comes from requests. A large batch asks for every core explicitly
# (models.gbm.predict_threads): its TreeSHAP is worth the threads.
os.environ.setdefault("OMP_NUM_THREADS", "1")

import functools  # noqa: E402
import gc  # noqa: E402
import json  # noqa: E402
import logging  # noqa: E402
import signal  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
from dataclasses import dataclass  # noqa: E402

import bentoml  # noqa: E402
from fastapi import FastAPI, Request  # noqa: E402
from pydantic import Field, ValidationError, model_validator  # noqa: E402
from pydantic.json_schema import SkipJsonSchema  # noqa: E402
from fastapi.responses import HTMLResponse  # noqa: E402
from starlette.responses import JSONResponse, Response  # noqa: E402

from pipelines import tracking  # noqa: E402
from pipelines.config import Params, params_from_env  # noqa: E402
from pipelines.ingest import crm_column  # noqa: E402
from serving import metrics, openapi, scorecard  # noqa: E402
from serving.bento import REFUSALS, bento_model_tag, check_store_outside_bento, load_bento_scorer  # noqa: E402
from serving.schemas import (  # noqa: E402
    AsOf,
    ExplainRequest,
    Explanation,
    FeatureInfo,
    Feedback,
    FeedbackReceipt,
    Lead,
    ModelInfo,
    ScoreRequest,
    ScoreResponse,
)
from serving.scoring import (  # noqa: E402
    ModelRef,
    RequestError,
    SentUnder,
    explain_request,
    feedback_event,
    feedback_fields,
    feedback_names,
    request_as_of,
    score_request,
    warm_up,
    with_lead_ids,
)
from serving.security import (  # noqa: E402
    CARD_ID_FIELD,
    BearerAuth,
    DOCS_ASSETS,
    BodyLimit,
    JsonOnly,
    OneErrorShape,
    card_lead_id,
    card_link_key,
    from_browser,
)
from serving.store import FeedbackConflict, Store, StoreReadFailed, StoreWriteFailed  # noqa: E402

log = logging.getLogger(__name__)


class _ClientErrorsAsWarnings(logging.Filter):
    """BentoML logs every request its JSON check refuses (a 400) at ERROR with a full traceback: the
    client's mistake, answered in full, would read as a server fault and bury real ones. Those
    records become one WARNING line naming the route and the problems."""

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        if isinstance(error, ValidationError):
            record.msg = f"{record.msg}: {error.error_count()} invalid field(s), answered 400"
            record.levelno, record.levelname = logging.WARNING, "WARNING"
            record.exc_info, record.exc_text = None, None
        return True


logging.getLogger("bentoml._internal.server.http_app").addFilter(_ClientErrorsAsWarnings())


@dataclass(frozen=True)
class Served:
    """The model a request is answered with. Swapped whole on reload: a request reads it once, so
    requests in flight finish on the model they started with and none is lost or mixed."""

    scorer: object
    model: ModelRef
    source: str


@functools.cache
def service_params() -> Params:
    """The params file the service runs with (read once per process)."""
    return params_from_env()


@functools.cache
def feedback_names_read() -> dict[str, str]:
    """The names /feedback reads a decision's fields under for the service's params (`serving.scoring.feedback_names`),
    built once as the params are read once."""
    return feedback_names(service_params().data)


class FeedbackSent(Feedback):
    """/feedback's body as the service reads it: a decision's fields sent under the CRM's names the service's
    data.mapping.outcomes declares read as their own before the JSON check (`serving.scoring.feedback_fields`), so one
    sent only as "StageName" is not refused as lacking its status, and a value of the wrong type there is named at
    the field sent. /docs.json documents the body as Feedback, with those names (serving.openapi)."""

    sent_under: SkipJsonSchema[SentUnder] = Field(default_factory=SentUnder, exclude=True)

    @model_validator(mode="wrap")
    @classmethod
    def _crm_names(cls, body, handler):
        if not isinstance(body, dict):
            return handler(body)
        read, sent_under = feedback_fields(body, service_params().data, feedback_names_read())
        try:
            return handler({**read, "sent_under": sent_under})
        except ValidationError as err:  # at the field as sent, as the service's own problems are
            raise ValidationError.from_exception_data(err.title, [
                {"type": e["type"], "loc": (*sent_under.at(e["loc"][0]), *e["loc"][1:]) if e["loc"] else (),
                 "input": e["input"], **({"ctx": e["ctx"]} if "ctx" in e else {})} for e in err.errors()]) from None


def api_key() -> tuple[str, str]:
    """The API key and the environment variable holding it (params serving.api_key_env)."""
    env_var = service_params().serving.api_key_env
    key = os.environ.get(env_var, "").strip()
    if not key:
        raise RuntimeError(
            f"no API key: set the environment variable {env_var} "
            "(params serving.api_key_env); clients send it as 'Authorization: Bearer <key>'"
        )
    return key, env_var


def _error(status: int, message: str, detail: list | None = None, headers: dict | None = None) -> JSONResponse:
    return JSONResponse({"error": message, "detail": detail or []}, status_code=status, headers=headers)


# Seconds a client is told to wait (Retry-After) before sending again what the store could not take.
STORE_RETRY_SECONDS = 30


def _store_unavailable(err: StoreWriteFailed) -> JSONResponse:
    """A 503 naming the store and the database's reason, for a write it refused after the service started
    (e.g. the file or account made read-only): the client retries later, as Retry-After says; the log says
    it once per request."""
    log.error("%s", err)
    return _error(503, str(err), headers={"Retry-After": str(STORE_RETRY_SECONDS)})


def _no_card(request: Request, status: int, message: str, page: str, headers: dict | None = None) -> Response:
    """A score card that cannot be shown: `page` for a rep's browser, `message` as the error JSON for an API
    client (serving.security.from_browser, as for a refused link's 401)."""
    if from_browser(request.scope):
        return HTMLResponse(page, status_code=status, headers=headers)
    return _error(status, message, headers=headers)


pages = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)


@bentoml.service(name="leadscore", traffic={"timeout": 60})
@bentoml.asgi_app(pages, path="/")
class LeadScoreService:
    @bentoml.on_deployment
    def refuse_to_start_unready() -> None:
        """Runs once in the server's main process: without a valid params file, a key, a model or a store it
        may write (outside the bento it runs from), exit with the reason. Opening the store brings one an earlier
        version created up to date, once.

        (A failing worker alone would be restarted forever by BentoML's process manager.) The reason is
        the one line printed: a traceback through BentoML's internals would bury it. The store is opened last, as
        opening creates it: a start refused for another reason leaves no empty store behind.
        """
        try:
            params = service_params()
            api_key()
            bento = LeadScoreService.bento
            if bento:
                bento_model_tag(bento, params)
                check_store_outside_bento(bento, params)
            else:
                tracking.loadable_version(params, params.serving.alias)
            Store.from_params(params)
        except REFUSALS as err:  # params, key, model, store (inside the bento, unreachable, not writable)
            raise SystemExit(f"leadscore refuses to start: {err}") from None

    def __init__(self) -> None:
        # BentoML shows its own INFO lines and only warnings of other loggers: the operator is told which model
        # each worker serves, at start and on reload.
        logging.getLogger("serving").setLevel(logging.INFO)
        params = service_params()
        threading.Thread(target=self._stop_with_server, daemon=True, name="server-watch").start()
        bento = LeadScoreService.bento  # set by BentoML when this runs from a built bento
        if bento:
            scorer = load_bento_scorer(bento, params)
            self.served = self._ready(scorer, f"bento {bento.tag}, model {bento_model_tag(bento, params)}")
        else:
            self.served = self._ready(tracking.load_scorer(params, params.serving.alias), "MLflow registry")
            if params.serving.reload_seconds:
                threading.Thread(target=self._watch_registry, daemon=True, name="champion-watch").start()
        log.info("serving %s v%s (alias %s) from the %s", self.served.model.name, self.served.model.version,
                 self.served.model.alias, self.served.source)
        self.serving = params.serving
        self.card_key = card_link_key(api_key()[0])
        self.data, self.label = params.data, params.label
        self.store = Store.from_params(params)
        self._reload_lock = threading.Lock()

    @staticmethod
    def _stop_with_server() -> None:
        """A worker whose server process is gone (a SIGKILL, which it cannot pass on) stops as if told to: left
        running, it would answer on the port unsupervised and a restarted server could not bind it."""
        server = os.getppid()
        while os.getppid() == server:
            time.sleep(1)
        log.warning("the server process %d is gone: this worker stops", server)
        os.kill(os.getpid(), signal.SIGTERM)  # uvicorn's graceful shutdown: requests in flight are answered

    @staticmethod
    def _ready(scorer, source: str) -> Served:
        model = ModelRef.of(scorer)
        warm_up(scorer, model)
        metrics.expect_leads(scorer.tiers.names,
                             [crm_column(scorer.data, "leads", column) for column in scorer.features.categorical])
        # Everything alive now (libraries, the model) lives as long as the worker: moved out of the
        # garbage collector's view, a full collection no longer walks it. Without this, every second
        # 1,000-lead request paid a ~200 ms collection (measured in process). What was frozen before
        # (a replaced model, the warm-up's leftovers) is collected first, or it would stay for good.
        gc.unfreeze()
        gc.collect()
        gc.freeze()
        return Served(scorer, model, source)

    def reload_if_changed(self) -> bool:
        """Load the version the registry alias names now, if it is not the one served; True if swapped."""
        params = service_params()
        with self._reload_lock:
            if str(tracking.registered_version(params, params.serving.alias).version) == self.served.model.version:
                return False
            replaced = self.served.model.version
            self.served = self._ready(tracking.load_scorer(params, params.serving.alias), "MLflow registry")
        log.info("now serving %s v%s (was v%s)", self.served.model.name, self.served.model.version, replaced)
        return True

    def _watch_registry(self) -> None:
        """Each worker follows the champion alias on its own (no restart, no lost request)."""
        interval = service_params().serving.reload_seconds
        while True:
            time.sleep(interval)
            try:
                self.reload_if_changed()
            except Exception:  # pragma: no cover - a registry hiccup must not kill the watcher
                log.exception("checking the registry for a new champion failed; serving the current model")

    @bentoml.api(route="/score", input_spec=ScoreRequest)
    def score(self, leads: list[Lead], as_of: AsOf = None) -> ScoreResponse:
        """Score, tier and top reasons per lead (CRM field names); each score is logged."""
        if len(leads) > self.serving.max_batch:
            return _error(413, f"{len(leads):,} leads in one request; the limit is {self.serving.max_batch:,} "
                               "(serving.max_batch): split the batch")
        served = self.served
        try:
            scored = score_request(
                served.scorer,
                [lead.model_extra for lead in leads],
                [lead.activities for lead in leads],
                served.model,
                as_of=request_as_of(as_of),
                top_k=self.serving.top_factors,
                card_key=self.card_key,
                card_link_days=self.serving.card_link_days,
                card_base_url=self.serving.public_url,
            )
        except RequestError as err:
            return _error(err.status, str(err), err.detail)
        try:
            self.store.log_scores(scored.log_rows)
        except StoreWriteFailed as err:  # every score is logged, or none is answered
            return _store_unavailable(err)
        metrics.count_leads(scored.results)
        return ScoreResponse.model_validate({"scores": scored.results, "warnings": scored.warnings})

    @bentoml.api(route="/explain", input_spec=ExplainRequest)
    def explain(self, lead: Lead, as_of: AsOf = None) -> Explanation:
        """Every factor's contribution to one lead's score (not logged)."""
        served = self.served
        try:
            explained = explain_request(served.scorer, lead.model_extra, lead.activities, served.model,
                                        as_of=request_as_of(as_of))
        except RequestError as err:
            return _error(err.status, str(err), err.detail)
        return Explanation.model_validate(explained)

    @bentoml.api(route="/feedback", input_spec=FeedbackSent)
    def feedback(self, ctx: bentoml.Context, **event) -> FeedbackReceipt:
        """Store a sales decision; answered only once it is on disk. Retrying an event_id is safe
        (200, stored false); sending it again with another decision is refused (409)."""
        sent_under = event.pop("sent_under")
        try:
            checked, warnings = feedback_event(event, sent_under, self.data, self.label)
        except RequestError as err:
            ctx.response.status_code = 422  # with a context, BentoML answers with its status code
            return _error(422, str(err), err.detail)
        try:
            stored = self.store.add_feedback(checked)
        except FeedbackConflict as err:  # the same event_id with another decision: never overwritten
            ctx.response.status_code = 409
            return _error(409, str(err), err.detail)
        except StoreWriteFailed as err:
            ctx.response.status_code = 503
            return _store_unavailable(err)
        ctx.response.status_code = 201 if stored else 200
        return FeedbackReceipt(event_id=checked["event_id"], stored=stored, warnings=warnings)

    @pages.post("/reload")
    def reload(self) -> dict:
        """Swap in the version the registry alias names now, without a restart (this worker; every
        worker also checks on its own every serving.reload_seconds)."""
        if LeadScoreService.bento:
            return _error(409, "a built bento serves the model packaged with it; deploy a new bento instead")
        swapped = self.reload_if_changed()
        return {"reloaded": swapped, "version": self.served.model.version}

    @pages.get("/model")
    def model_info(self) -> ModelInfo:
        """The served model: identity, training metrics, features and tier thresholds."""
        served = self.served
        info = served.scorer.info
        return ModelInfo(
            name=served.model.name,
            version=served.model.version,
            alias=served.model.alias,
            source=served.source,
            trained_at=info.get("trained_at"),
            training_rows=info.get("training_rows"),
            metrics=info.get("metrics", {}),
            features=[FeatureInfo(name=d.name, kind=d.kind, signal=d.signal) for d in served.scorer.catalog],
            tiers=served.scorer.tiers.as_dict(),
        )

    # Served by this mounted app, whose routes BentoML matches before its own / and /docs.json.
    @pages.get("/", response_class=HTMLResponse, include_in_schema=False)
    def api_page(self) -> HTMLResponse:
        """The API for a browser: Swagger UI over GET /docs.json (both open without the key)."""
        return HTMLResponse(openapi.PAGE)

    @pages.get("/docs.json", include_in_schema=False)
    def openapi_document(self) -> JSONResponse:
        """The OpenAPI document of the API as it answers (serving.openapi), not as BentoML assumes."""
        # The served model's mapping, which /score reads leads by (params may have been edited since it was trained).
        return JSONResponse(openapi.document(LeadScoreService.openapi_spec.asdict(), self.served.scorer, self.data,
                                             self.label))

    @pages.head("/leads/{lead_id:path}", response_class=HTMLResponse, include_in_schema=False)  # link checkers
    @pages.get("/leads/{lead_id:path}", response_class=HTMLResponse)
    def score_card(self, lead_id: str, request: Request) -> Response:
        """The rep's score card from the lead's latest logged score.

        Opens with the API key, or without it through the signed link /score returns (card_url). The
        id is the path's, or for "." and ".." the query's `lead_id`. A lead never scored is a 404, a
        score log that cannot be read a 503: a page saying so for a rep's browser, the error JSON for an
        API client."""
        lead_id = card_lead_id(lead_id, request.query_params.get(CARD_ID_FIELD))
        if not lead_id:
            where = f"/leads/<lead id> (or /leads/?{CARD_ID_FIELD}=<lead id>)"
            return _no_card(request, 404, f"no lead id: a score card is at {where}", scorecard.notice(
                "No lead id", "This link names no lead",
                f"A score card is at {where}. Open the lead in your CRM again to get its link."))
        try:
            latest = self.store.latest_score(lead_id)
        except StoreReadFailed as err:
            log.error("%s", err)
            return _no_card(request, 503, str(err), scorecard.notice(
                "Score card unavailable", "The score card cannot be shown right now",
                "The service cannot read its score log at the moment. Try the link again in a minute."),
                {"Retry-After": str(STORE_RETRY_SECONDS)})
        if latest is None:
            return _no_card(request, 404, f"lead {lead_id!r} has no score: its card exists once the CRM has sent the "
                                          "lead to POST /score, until its scores expire (serving.score_retention_days)"
                                          " or it is erased (leadscore forget)", scorecard.not_found(lead_id))
        scorer = self.served.scorer
        return HTMLResponse(scorecard.render(latest, scorer.tiers.names, scorer.reason_spellings))


def _leads_named(route: str, detail: list[dict], body: bytes) -> list[dict]:
    """A 400 of /score naming each lead at fault by the id it sent, as its 422 does (`with_lead_ids`, by the served
    model's mapping): BentoML's JSON check (an activity that is no object) answers before the service sees the
    request, so the leads are read from the body the client sent."""
    try:
        leads = json.loads(body).get("leads") if route == "/score" else None
    # Not JSON, JSON that is no object, or JSON nested deeper than Python's json reads (which the JSON check refused
    # as nested past its own limit): no lead to name.
    except (ValueError, AttributeError, RecursionError):
        leads = None
    if not isinstance(leads, list):
        return detail
    return with_lead_ids(detail, leads, bentoml.get_current_service().served.scorer.data)


# The API's routes, and the documentation's, which /docs.json does not list: the Swagger UI page and its files.
metrics.label_requests_by_route(lambda: [*LeadScoreService.openapi_spec.asdict()["paths"], "/", "/docs.json",
                                         DOCS_ASSETS + "{file}"])
# The first added is outermost: the key is checked before any body is read.
LeadScoreService.add_asgi_middleware(BearerAuth, key=api_key)
LeadScoreService.add_asgi_middleware(JsonOnly, paths=lambda: [api.route for api in LeadScoreService.apis.values()])
LeadScoreService.add_asgi_middleware(BodyLimit, max_bytes=lambda: service_params().serving.max_body_bytes)
LeadScoreService.add_asgi_middleware(OneErrorShape, named=_leads_named)
