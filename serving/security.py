"""ASGI middlewares in front of every route: the API key, and the request-size limit.

BentoML's user middlewares wrap everything, its health routes and mounted pages included, so the
health and metrics routes are let through explicitly: a load balancer probes them without a key.
"""

from __future__ import annotations

import hmac
import json
from collections.abc import Callable

OPEN_PATHS = frozenset({"/readyz", "/livez", "/healthz", "/metrics"})


async def _send_json(send, status: int, body: dict, headers: tuple = ()) -> None:
    payload = json.dumps(body).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode()), *headers],
        }
    )
    await send({"type": "http.response.body", "body": payload})


class BearerAuth:
    """401 unless the request carries `Authorization: Bearer <key>`; health routes stay open.

    Args:
        app: the wrapped ASGI app.
        key: returns the API key and the name of the environment variable it came from; called once
            when the server builds its app, so the key is read at start-up, never at import.
    """

    def __init__(self, app, key: Callable[[], tuple[str, str]]):
        self.app = app
        secret, self.env_var = key()
        self.secret = secret.encode()

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http" or scope["path"] in OPEN_PATHS:
            return await self.app(scope, receive, send)
        header = dict(scope["headers"]).get(b"authorization", b"")
        scheme, _, token = header.partition(b" ")
        if scheme.lower() != b"bearer" or not hmac.compare_digest(token.strip(), self.secret):
            message = f"missing or wrong API key: send the header 'Authorization: Bearer <key>' (the key set in {self.env_var})"
            return await _send_json(send, 401, {"error": message}, ((b"www-authenticate", b"Bearer"),))
        return await self.app(scope, receive, send)


class BodyLimit:
    """413 for a request body over the limit, before any of it reaches the service.

    A declared Content-Length over the limit is refused without reading; a chunked body is read up
    to the limit, then handed on unchanged.

    Args:
        app: the wrapped ASGI app.
        max_bytes: returns the limit (params serving.max_body_bytes); called once at start-up.
    """

    def __init__(self, app, max_bytes: Callable[[], int]):
        self.app = app
        self.max_bytes = max_bytes()

    def _too_large(self, size: str) -> dict:
        return {"error": f"request body {size} exceeds the limit of {self.max_bytes:,} bytes "
                         "(serving.max_body_bytes): send fewer leads per request"}

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD", "OPTIONS"):
            return await self.app(scope, receive, send)
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            return await _send_json(send, 413, self._too_large(f"of {int(declared):,} bytes"))
        messages, size = [], 0
        while True:
            message = await receive()
            messages.append(message)
            if message["type"] != "http.request":
                break
            size += len(message.get("body", b""))
            if size > self.max_bytes:
                return await _send_json(send, 413, self._too_large(f"of more than {size:,} bytes"))
            if not message.get("more_body", False):
                break

        async def replay():
            return messages.pop(0) if messages else await receive()

        return await self.app(scope, replay, send)
