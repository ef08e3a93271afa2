"""/metrics counts requests per route, never per raw path.

BentoML 1.4 labels every HTTP metric with the request's raw path, refused and unknown ones included:
each distinct path adds series for good, so any client could grow /metrics (served without the key)
and the worker's memory without limit, and the score-card route would list every lead id opened.
BentoML has no setting for this, so its metrics middleware is wrapped: it sees the documented route
a path belongs to (``/leads/{lead_id}``), or ``other``; the routes behind it still get the real path.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Iterable

from bentoml._internal.server.http import instruments

OTHER = "other"  # the label of every path no documented route matches
_REAL_PATH = "leadscore.real_path"  # scope key carrying the real path past BentoML's middleware
_BentoMLMetrics = instruments.RunnerTrafficMetricsMiddleware


@functools.cache
def _route_patterns(routes: tuple[str, ...]) -> list[tuple[re.Pattern, str]]:
    """Each route template as a full-match pattern; a parameter may hold any text, '/' included."""
    return [(re.compile(re.sub(r"\\\{\w+\\\}", "(?s:.+)", re.escape(route)) + r"\Z"), route) for route in routes]


def route_label(path: str, routes: Iterable[str]) -> str:
    """The route template `path` is counted under: one of `routes`, or OTHER."""
    return next((route for pattern, route in _route_patterns(tuple(routes)) if pattern.match(path)), OTHER)


def count_by_route(routes: Callable[[], Iterable[str]]) -> None:
    """Make BentoML count requests per route template (call when the service module is imported,
    before the server builds its app).

    Args:
        routes: returns the route templates, e.g. the paths of the service's OpenAPI document.
    """

    class RouteLabelledMetrics:
        def __init__(self, app, **options):
            self.app = app
            self.metrics = _BentoMLMetrics(self._with_real_path, **options)
            self.routes = tuple(routes())

        async def __call__(self, scope, receive, send) -> None:
            if scope["type"] not in ("http", "websocket"):
                return await self.app(scope, receive, send)
            labelled = {**scope, "path": route_label(scope["path"], self.routes), _REAL_PATH: scope["path"]}
            return await self.metrics(labelled, receive, send)

        async def _with_real_path(self, scope, receive, send) -> None:
            return await self.app({**scope, "path": scope[_REAL_PATH]}, receive, send)

    # BentoML imports the class from this module each time it builds an app.
    instruments.RunnerTrafficMetricsMiddleware = RouteLabelledMetrics
