"""/metrics counts requests per route, never per raw path, and the leads POST /score scored per tier, per
CRM field holding a value the model never saw, and with an activity type the model does not read; the access
log names requests per route too.

BentoML 1.4 labels every HTTP metric with the request's raw path, refused and unknown ones included:
each distinct path adds series for good, so any client could grow /metrics (served without the key)
and the worker's memory without limit, and the score-card route would list every lead id opened.
Its access log writes the raw path as well: every lead id whose card was opened, in log files `leadscore
forget` cannot erase. BentoML has no setting for either, so its metrics and access log middlewares are
wrapped: they see the documented route a path belongs to (``/leads/{lead_id}``), or ``other``; the routes
behind them still get the real path.
"""

from __future__ import annotations

import functools
import re
from collections import Counter
from collections.abc import Callable, Iterable

from bentoml._internal.server.http import access, instruments

OTHER = "other"  # the label of every path no documented route matches
_REAL_PATH = "leadscore.real_path"  # scope key carrying the real path past BentoML's middleware
_BentoMLMetrics = instruments.RunnerTrafficMetricsMiddleware
_BentoMLAccessLog = access.AccessLogMiddleware


@functools.cache
def _route_patterns(routes: tuple[str, ...]) -> list[tuple[re.Pattern, str]]:
    """Each route template as a full-match pattern; a parameter may hold any text, '/' included."""
    return [(re.compile(re.sub(r"\\\{\w+\\\}", "(?s:.+)", re.escape(route)) + r"\Z"), route) for route in routes]


def route_label(path: str, routes: Iterable[str]) -> str:
    """The route template `path` is counted under: one of `routes`, or OTHER."""
    return next((route for pattern, route in _route_patterns(tuple(routes)) if pattern.match(path)), OTHER)


def _by_route(middleware: type, routes: Callable[[], Iterable[str]]) -> type:
    """`middleware` (a BentoML ASGI middleware class) seeing each request's route template as its path (`route_label`);
    the app it wraps gets the real path."""

    class RouteLabelled:
        def __init__(self, app, **options):
            self.app = app
            self.middleware = middleware(self._with_real_path, **options)
            self.routes = tuple(routes())

        async def __call__(self, scope, receive, send) -> None:
            if scope["type"] not in ("http", "websocket"):
                return await self.app(scope, receive, send)
            labelled = {**scope, "path": route_label(scope["path"], self.routes), _REAL_PATH: scope["path"]}
            return await self.middleware(labelled, receive, send)

        async def _with_real_path(self, scope, receive, send) -> None:
            return await self.app({**scope, "path": scope[_REAL_PATH]}, receive, send)

    return RouteLabelled


def label_requests_by_route(routes: Callable[[], Iterable[str]]) -> None:
    """Make BentoML count requests in /metrics, and name them in its access log, per route template (call when the
    service module is imported, before the server builds its app).

    Args:
        routes: returns the route templates, e.g. the paths of the service's OpenAPI document.
    """
    # BentoML imports each class from its module each time it builds an app.
    instruments.RunnerTrafficMetricsMiddleware = _by_route(_BentoMLMetrics, routes)
    access.AccessLogMiddleware = _by_route(_BentoMLAccessLog, routes)


@functools.cache
def _lead_counters():
    """The lead counters, created once per worker on first use. Not at import: the server's main process
    imports the service too, and prometheus_client must first be imported in a worker, after BentoML set its
    PROMETHEUS_MULTIPROC_DIR, for /metrics to sum every worker's counts. (BentoML 1.4.40 deprecates its
    bentoml.metrics, now a lazy alias, and points to prometheus_client used this way.)"""
    import prometheus_client

    by_tier = prometheus_client.Counter("leadscore_scored_leads_total", "Leads POST /score scored, per tier.", ["tier"])
    never_seen = prometheus_client.Counter(
        "leadscore_never_seen_leads_total",
        "Leads POST /score scored with a value the model never saw in training, per CRM field (features.categorical).",
        ["field"])
    unread_activity = prometheus_client.Counter(
        "leadscore_unread_activity_leads_total",
        "Leads POST /score scored with an activity of a type the model does not read (unread_activity_types).")
    return by_tier, never_seen, unread_activity


def expect_leads(tiers: Iterable[str], fields: Iterable[str]) -> None:
    """Show each tier's and category field's lead counter at 0 until it counts (call when a model is loaded): an
    alert on its increase then fires on the first lead, not only once a series exists.

    A tier or field a reloaded model lacks keeps its series, counted no more, until restart: prometheus_client
    cannot remove a series in the multi-process mode BentoML runs workers in (Counter.remove only warns, and
    /metrics still sums it from this worker's file), and another worker may not have reloaded yet."""
    by_tier, never_seen, _ = _lead_counters()  # the unread activity counter, unlabelled, shows at 0 once created
    for tier in tiers:
        by_tier.labels(tier=tier)
    for field in fields:
        never_seen.labels(field=field)


def count_leads(scores: list[dict]) -> None:
    """Count the leads of one answered POST /score: per tier, per CRM field naming a never-seen value
    (``never_seen``; None when the model cannot tell), and those naming an unread activity type
    (``unread_activity_types``, unlabelled: the types are the client's text). Labels are tier and field names,
    never a value a client sent. One increment per label per request."""
    by_tier, never_seen, unread_activity = _lead_counters()
    for tier, leads in Counter(score["tier"] for score in scores).items():
        by_tier.labels(tier=tier).inc(leads)
    for field, leads in Counter(field for score in scores for field in score["never_seen"] or ()).items():
        never_seen.labels(field=field).inc(leads)
    unread_activity.inc(sum(bool(score["unread_activity_types"]) for score in scores))
