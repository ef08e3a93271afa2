"""ASGI middlewares in front of every route: the API key, JSON bodies only, the request-size limit (and the
body's compression and charset), and one error shape for the errors BentoML answers itself.

BentoML's user middlewares wrap everything, its health routes and mounted pages included, so the
health and metrics routes are let through explicitly: a load balancer probes them without a key.
A lead's score card also opens without the key through a signed link (``card_link``), because a
rep clicks it in the CRM and a browser cannot send the API key; a browser refused there gets a page
saying what to do, not JSON (``from_browser``).
"""

from __future__ import annotations

import codecs
import hashlib
import hmac
import json
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from urllib.parse import parse_qs, quote, unquote, urlencode, urlsplit

from pipelines.ingest import DATE_FORM
from serving import scorecard

# Open without the key: the health routes, and the API's description (the Swagger page at /, the Swagger UI
# files it loads from DOCS_ASSETS, /docs.json), which says what a request may hold, never a score or a decision.
OPEN_PATHS = frozenset({"/readyz", "/livez", "/healthz", "/metrics", "/", "/docs.json"})
DOCS_ASSETS = "/static_content/"  # BentoML's Swagger UI files
CARD_PATH = "/leads/"  # + lead id: the score card route of serving.service
# Browsers resolve a path segment "." or ".." (also as %2E%2E) as a step between folders: /leads/.. opens /.
# Proxies do not pass a "/" in an id as sent (%2F): Apache answers 404 to it (AllowEncodedSlashes Off, its
# default); nginx, when proxy_pass names a URI, decodes it, then merges "//" and resolves ".." (a/../b is b).
# A card link for such a lead id carries it in this query field instead: /leads/?lead_id=..&expires=…
CARD_ID_FIELD = "lead_id"
_DOT_SEGMENTS = frozenset({".", ".."})


def card_link_key(api_key: str) -> bytes:
    """The key score-card links are signed with, derived from the API key: a new key revokes every link."""
    return hmac.new(api_key.encode(), b"leadscore score-card links", hashlib.sha256).digest()


def _card_signature(key: bytes, lead_id: str, expires: int) -> str:
    return hmac.new(key, f"{lead_id}\n{expires}".encode(), hashlib.sha256).hexdigest()


def card_link(key: bytes, lead_id: str, expires: int, base_url: str | None = None) -> str:
    """The link to the lead's score card that opens without the API key until `expires` (Unix seconds):
    a path on the service, or a full link under `base_url` (``serving.public_url``).

    Anyone holding the link sees that one lead's card (score, tier, reasons) until then, and nothing else.
    """
    in_path = lead_id not in _DOT_SEGMENTS and "/" not in lead_id
    fields = {} if in_path else {CARD_ID_FIELD: lead_id}
    query = urlencode({**fields, "expires": expires, "signature": _card_signature(key, lead_id, expires)})
    return f"{base_url or ''}{CARD_PATH}{quote(lead_id, safe='') if in_path else ''}?{query}"


def card_lead_id(path_id: str, query_id: str | None) -> str:
    """The lead a score-card request is for: the id in its path, else the one in its query (``CARD_ID_FIELD``)."""
    return path_id or query_id or ""


@dataclass(frozen=True)
class _Refusal:
    """Why a request gets a 401: told to an API client as JSON (`message`), to a rep's browser as a page."""

    message: str
    heading: str
    advice: str
    headers: tuple = ()


_FRESH_LINK = "Open the lead in your CRM again to get a fresh link."


def _card_link_problem(key: bytes, path: str, query: bytes, now: float) -> _Refusal | None:
    """Why a signed score-card request is refused, or None when its link is valid."""
    fields = parse_qs(query.decode("latin-1"))
    expires, signature = fields.get("expires", [""])[0], fields.get("signature", [""])[0]
    lead_id = card_lead_id(path[len(CARD_PATH):], fields.get(CARD_ID_FIELD, [""])[0])
    valid_expiry = expires.isascii() and expires.isdigit()  # "²".isdigit() is True, int("²") fails
    expected = _card_signature(key, lead_id, int(expires)) if valid_expiry else ""
    if not expected or not hmac.compare_digest(signature.encode(), expected.encode()):
        # The page does not repeat the lead id: a forged link must not put its own words on the page.
        return _Refusal("this score-card link is not valid for this lead: use the card_url POST /score returned",
                        "This link is not valid for this lead",
                        f"It may have been cut or changed when it was copied. {_FRESH_LINK}")
    if int(expires) < now:
        when = datetime.fromtimestamp(int(expires), timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
        return _Refusal(f"this score-card link expired on {when}: scoring the lead again (POST /score) returns a "
                        "fresh card_url", f"This link expired on {when}", _FRESH_LINK)
    return None


def from_browser(scope) -> bool:
    """A score-card request from a rep's browser, which is answered a refusal or a missing card as a
    page: no `Authorization` header (an API client sends one) and an `Accept` that does not ask for
    JSON without HTML. Anything else gets the error JSON."""
    headers = dict(scope["headers"])
    accept = headers.get(b"accept", b"").lower()
    return (scope["method"] in ("GET", "HEAD") and scope["path"].startswith(CARD_PATH)
            and b"authorization" not in headers and not (b"application/json" in accept and b"text/html" not in accept))


# pydantic's error types for text that is no date or time.
_NOT_A_DATE = frozenset({"datetime_parsing", "datetime_from_date_parsing", "date_parsing", "date_from_datetime_parsing"})

# The error of a 400 listing the values of a type their field cannot hold (BentoML's JSON check, reshaped here, and
# serving.scoring.values_read's).
BAD_JSON_ERROR = "{} problem(s) in the request's JSON; nothing was scored or stored"

# What an id or a decision sent as a number, true/false or null is told when the value sent is not known.
_TEXT_EXPECTED = 'expected text, a JSON string: send a number as its text, "981" for 981; null is no value'


def _not_text(value) -> str:
    """What a value sent where text belongs is, in JSON's words, and for a number the text to send instead."""
    if value is None or isinstance(value, bool):
        return f"expected text, not {json.dumps(value)}"
    if isinstance(value, (int, float)):  # a CRM's numeric id: 42 and "042" would be different leads, so never guessed
        return f'expected text, not the number {json.dumps(value)}: send it as a JSON string, "{json.dumps(value)}"'
    return f"expected text, not a JSON {'object' if isinstance(value, dict) else 'array'}"


def error_message(error: dict) -> str:
    """The words of one of pydantic's validation errors, without its "Value error, " before our own
    messages; text that is no date is told what a date is, as ingest tells it; an id or decision that is not
    text is told what it is and what to send (pydantic's "Input should be a valid string" says neither)."""
    if error.get("type") in _NOT_A_DATE:  # pydantic's "invalid character in year" for "last Tuesday"
        return DATE_FORM
    if error.get("type") == "string_type":  # BentoML's 400 leaves the value sent out, our 422 keeps it
        return _not_text(error["input"]) if "input" in error else _TEXT_EXPECTED
    return str(error.get("msg", "")).removeprefix("Value error, ")


def _problem(error: dict) -> dict:
    """One of pydantic's validation errors in the shape of every other problem: loc, field, msg, type.

    Its `input`, `url` and `ctx` are left out (the first echoes the client's value back, the others
    are pydantic's); its message is `error_message`'s. The lead a problem of the service's own names (`lead_id`) is kept.
    """
    loc = list(error.get("loc", []))
    lead = {"lead_id": error["lead_id"]} if error.get("lead_id") is not None else {}
    return {"loc": loc, "field": error.get("field") or field_path(*loc) or "body", "msg": error_message(error),
            "type": str(error.get("type", "")), **lead}


# Each JSON route's body, told to a client whose body has another shape at its top (one lead sent bare to /score,
# a batch to /explain, a list of events to /feedback): pydantic says only "Field required" for `leads`.
_BODY_SHAPES = {
    "/score": ("leads", '{"leads": [{...}, ...], "as_of": ...}: a list of leads, even of one'),
    "/explain": ("lead", '{"lead": {...}, "as_of": ...}: one lead, not a list'),
    "/feedback": (None, '{"event_id": ..., "lead_id": ..., "status": ..., "decided_at": ...}: one decision, not a list'),
}


def _with_body_shape(problem: dict, path: str) -> dict:
    """The problem, naming the route's body shape when it is about the body's top (`_BODY_SHAPES`)."""
    field, shape = _BODY_SHAPES.get(path, (None, None))
    if shape and problem["type"] != "json_invalid" and problem["loc"] in ([], [field]):
        return {**problem, "msg": f"{problem['msg']}; send the body as {shape}"}
    return problem


def field_path(*parts) -> str:
    """A JSON location as one field name, e.g. ("leads", 2, "created_at") -> "leads[2].created_at"."""
    out = ""
    for part in parts:
        out += f"[{part}]" if isinstance(part, int) or part == "*" else (f".{part}" if out else str(part))
    return out


def _in_error_shape(body: bytes) -> dict | None:
    """A reply body that is already the error JSON every endpoint answers with, else None."""
    try:
        reply = json.loads(body)
    except ValueError:
        return None
    return reply if isinstance(reply, dict) and set(reply) == {"error", "detail"} else None


def _slash_twin(start: dict, scope: dict) -> str | None:
    """The path a response redirects to when it is Starlette's redirect of a path no route matches to the
    same path with or without a trailing slash, which one does; else None."""
    if start["status"] != 307:
        return None
    path = scope["path"]
    twin = path[:-1] if path.endswith("/") else path + "/"
    location = dict(start["headers"]).get(b"location", b"").decode("latin-1")
    return twin if unquote(urlsplit(location).path) == twin else None


async def _send(send, status: int, content_type: bytes, payload: bytes, headers: tuple = ()) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", content_type), (b"content-length", str(len(payload)).encode()), *headers],
        }
    )
    await send({"type": "http.response.body", "body": payload})


async def _send_error(send, status: int, message: str, headers: tuple = ()) -> None:
    """An error in the shape every endpoint answers with (serving/README.md), with no field to name."""
    await _send(send, status, b"application/json", json.dumps({"error": message, "detail": []}).encode(), headers)


async def _refuse(scope, send, refusal: _Refusal) -> None:
    """A 401: a page in the score card's style for a rep's browser, the error JSON for anything else."""
    if not from_browser(scope):
        return await _send_error(send, 401, refusal.message, refusal.headers)
    page = scorecard.notice(refusal.heading, refusal.heading, refusal.advice)
    await _send(send, 401, b"text/html; charset=utf-8", page.encode(), refusal.headers)


class BearerAuth:
    """401 unless the request carries `Authorization: Bearer <key>`; health routes and the API's description
    stay open (``OPEN_PATHS``), and a score card opens through its signed link (``card_link``) without the key.

    Args:
        app: the wrapped ASGI app.
        key: returns the API key and the name of the environment variable it came from; called once
            when the server builds its app, so the key is read at start-up, never at import.
    """

    def __init__(self, app, key: Callable[[], tuple[str, str]]):
        self.app = app
        secret, self.env_var = key()
        self.secret = secret.encode()
        self.card_key = card_link_key(secret)

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http" or scope["path"] in OPEN_PATHS or scope["path"].startswith(DOCS_ASSETS):
            return await self.app(scope, receive, send)
        header = dict(scope["headers"]).get(b"authorization", b"")
        scheme, _, token = header.partition(b" ")
        if scheme.lower() == b"bearer" and hmac.compare_digest(token.strip(), self.secret):
            return await self.app(scope, receive, send)
        if (scope["method"] in ("GET", "HEAD") and scope["path"].startswith(CARD_PATH)
                and b"signature=" in scope.get("query_string", b"")):
            problem = _card_link_problem(self.card_key, scope["path"], scope["query_string"], time.time())
            if problem:
                return await _refuse(scope, send, problem)
            return await self.app(scope, receive, send)
        message = f"missing or wrong API key: send the header 'Authorization: Bearer <key>' (the key set in {self.env_var})"
        return await _refuse(scope, send, _Refusal(
            message, "This page opens through the lead's score-card link",
            "Open the lead in your CRM and follow its score-card link from there.", ((b"www-authenticate", b"Bearer"),)))


class JsonOnly:
    """415 for a body sent as anything but JSON to a JSON endpoint, before BentoML parses it.

    BentoML would read it as a form: a malformed multipart body then fails with a 500, a url-encoded
    one arrives as no fields at all ("leads: Field required").

    Args:
        app: the wrapped ASGI app.
        paths: returns the routes that take JSON (the service's APIs); called once at start-up.
    """

    def __init__(self, app, paths: Callable[[], list[str]]):
        self.app = app
        self.paths = frozenset(paths())

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "http" and scope["path"] in self.paths:
            content_type = dict(scope["headers"]).get(b"content-type")
            if content_type is not None and content_type.partition(b";")[0].strip().lower() != b"application/json":
                return await _send_error(send, 415, f"send the body as JSON with 'Content-Type: application/json', "
                                                    f"not {content_type.decode('latin-1')!r}")
        return await self.app(scope, receive, send)


# Content-Encoding of a request body the service decompresses (x-gzip is gzip), with zlib's window bits for it;
# many CRM webhook clients and HTTP libraries gzip a large batch. "deflate" is zlib's format (RFC 9110), but many
# clients (.NET's DeflateStream, PHP's gzdeflate, older browsers) send the raw deflate data inside it: its window
# bits are chosen from the body's first two bytes (`_deflate_wbits`).
ENCODINGS = {"gzip": 16 + zlib.MAX_WBITS, "x-gzip": 16 + zlib.MAX_WBITS, "deflate": None}
ACCEPTED_ENCODINGS = ("uncompressed, or compressed with gzip or deflate (once, or again: each listed in the order "
                      "applied, e.g. 'gzip, gzip')")


def _deflate_wbits(head: bytes) -> int:
    """zlib's window bits for a "deflate" body starting with `head` (two bytes): zlib's format when they are a zlib
    header (RFC 1950: method 8, a window of at most 32 KiB, a multiple of 31), else raw deflate (RFC 1951). Raw
    deflate never starts so: method 8's low bits would be a non-final stored block whose unused bits, which an
    encoder writes as 0, are set."""
    cmf, flg = head[0], head[1]
    zlib_header = cmf & 0x0F == 8 and cmf >> 4 <= 7 and (cmf << 8 | flg) % 31 == 0
    return zlib.MAX_WBITS if zlib_header else -zlib.MAX_WBITS


class _BodyTooLarge(Exception):
    """The decompressed body grew past the limit."""


class _Inflater:
    """Decompresses a body chunk by chunk and never holds more than `limit` bytes of it: a few kilobytes of
    gzip that inflate to gigabytes (a zip bomb) stop at the limit instead of filling the memory."""

    def __init__(self, encoding: str, limit: int):
        self.encoding, self.limit, self.size = encoding, limit, 0
        self.wbits = ENCODINGS[encoding]
        self.head = b""  # a deflate body's first bytes, until the two that tell zlib's format from raw deflate
        self.stream = zlib.decompressobj(self.wbits) if self.wbits is not None else None

    def feed(self, data: bytes) -> bytes:
        """The bytes `data` decompresses to; raises _BodyTooLarge past the limit, zlib.error for bytes that are
        not of the encoding."""
        if self.stream is None:
            self.head += data
            if len(self.head) < 2:
                return b""
            data, self.head = self.head, b""
            self.wbits = _deflate_wbits(data)
            self.stream = zlib.decompressobj(self.wbits)
        out = []
        while data:
            # One byte over the limit says it is over; input zlib did not reach waits in unconsumed_tail.
            chunk = self.stream.decompress(data, self.limit - self.size + 1)
            self.size += len(chunk)
            if self.size > self.limit:
                raise _BodyTooLarge
            out.append(chunk)
            data = self.stream.unused_data  # bytes after the end: gzip's next member (RFC 1952), else an error
            if data:
                if self.encoding == "deflate":
                    raise zlib.error("bytes after the end of the compressed data")
                self.stream = zlib.decompressobj(self.wbits)
        return b"".join(out)

    def finished(self) -> bool:
        """The body ended where its compressed data does (not cut short)."""
        return self.stream is not None and self.stream.eof


def _content_codings(scope) -> list[str]:
    """The request's Content-Encoding codings in lower case, in the order they were applied ("identity" is none).
    RFC 9110 lets a sender list several (``gzip, gzip``) or send the header more than once: one list either way."""
    listed = b",".join(value for name, value in scope["headers"] if name.lower() == b"content-encoding")
    codings = (c.strip() for c in listed.decode("latin-1").lower().split(","))
    return [c for c in codings if c and c != "identity"]


# Codecs Python knows that are no charset a client writes text in: they read backslash escapes (the JSON's own
# would be read twice) or host names.
_NOT_CHARSETS = frozenset({"unicode-escape", "raw-unicode-escape", "idna", "punycode"})


def _charset(headers: dict) -> str:
    """The charset the request's Content-Type names, in lower case without quotes; "" for none."""
    _, _, parameters = headers.get(b"content-type", b"").decode("latin-1").partition(";")
    for parameter in parameters.split(";"):
        name, _, value = parameter.partition("=")
        if name.strip().lower() == "charset":
            return value.strip().strip('"').lower()
    return ""


def _codec(charset: str) -> str | None:
    """Python's codec for a charset (``windows-1252`` is cp1252), or None when it has no text codec of that name."""
    try:
        codec = codecs.lookup(charset).name
        " ".encode(codec)  # LookupError for a codec of bytes, not text (base64, zlib)
    except (LookupError, UnicodeError, ValueError):
        return None
    return None if codec in _NOT_CHARSETS else codec


def _as_utf8(body: bytes, charset: str) -> tuple[bytes, str | None]:
    """The body as UTF-8, decoded from the charset its Content-Type names (``_codec(charset)``; "" is UTF-8, as RFC
    8259 has JSON sent); or why it is not text in that charset, naming its first byte at fault.

    A client writing Latin-1 ('Müller' with the byte 0xFC) or UTF-16 (.NET's Encoding.Unicode: a NUL byte beside each
    ASCII character, which UTF-8 JSON never holds) without saying so was told only "invalid unicode code point" or
    "expected value" at some column by the JSON check.
    """
    codec = _codec(charset or "utf-8")
    if codec != "utf-8":
        try:
            return body.decode(codec).encode("utf-8"), None
        except UnicodeDecodeError as err:
            return body, (f"the body is not {charset} text as its Content-Type says: byte {err.start + 1:,} is "
                          f"0x{body[err.start]:02X}, which {charset} does not hold there ({err.reason}); send the JSON "
                          "encoded as UTF-8 (RFC 8259), or name the charset it is written in")
    try:
        body.decode("utf-8")
        invalid = len(body)
    except UnicodeDecodeError as err:
        invalid = err.start
    nul = body.find(b"\x00", 0, invalid)
    at = invalid if nul < 0 else nul
    if at == len(body):
        return body, None
    return body, (f"the body is not UTF-8 text: byte {at + 1:,} is 0x{body[at]:02X}, which UTF-8 JSON does not hold "
                  "there; send the JSON encoded as UTF-8 (RFC 8259), or name the charset it is written in: "
                  "'Content-Type: application/json; charset=iso-8859-1' for Latin-1, charset=utf-16 for UTF-16")


# The most codings a body may list: each one undone reads the whole body again.
MAX_CODINGS = 3


class BodyLimit:
    """413 for a request body over the limit, before any of it reaches the service; a gzip or deflate body
    (Content-Encoding) is decompressed here, and the limit holds for it decompressed too; a body in another charset
    than UTF-8 (Content-Type's charset) is decoded here, so the service reads the text as it was sent.

    A declared Content-Length over the limit is refused without reading; a chunked body is read up
    to the limit. A compressed body is decompressed as it arrives and refused once it decompresses
    past the limit; bytes that are not of its encoding are a 400, another encoding (br, zstd) a 415. Codings listed
    together (``gzip, gzip``: a client and a proxy each compressed it) are undone in turn, last applied first, as
    RFC 9110 has them listed; more than MAX_CODINGS are a 415.
    A charset Python has no codec for is a 415; bytes that are not text in the body's charset (UTF-8 unless named) a
    400 naming the byte, in the shape of the JSON check's 400 (`BAD_JSON_ERROR`, field ``body``).
    The service gets the body as sent, or decompressed and decoded to UTF-8 without its Content-Encoding; either
    without a leading UTF-8 byte order mark, which some .NET and PowerShell clients send: RFC 8259 lets a JSON reader
    ignore it, and BentoML's, which reads the body before the service sees it, refused the whole body as invalid JSON.

    Args:
        app: the wrapped ASGI app.
        max_bytes: returns the limit (params serving.max_body_bytes); called once at start-up.
    """

    def __init__(self, app, max_bytes: Callable[[], int]):
        self.app = app
        self.max_bytes = max_bytes()

    def _too_large(self, size: str) -> str:
        return (f"request body {size} exceeds the limit of {self.max_bytes:,} bytes "
                "(serving.max_body_bytes): send fewer leads per request")

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD", "OPTIONS"):
            return await self.app(scope, receive, send)
        headers = dict(scope["headers"])
        codings = _content_codings(scope)
        encoding = ", ".join(codings)
        if any(coding not in ENCODINGS for coding in codings):
            return await _send_error(send, 415, f"Content-Encoding {encoding!r} is not accepted: send the body "
                                                f"{ACCEPTED_ENCODINGS}")
        if len(codings) > MAX_CODINGS:
            return await _send_error(send, 415, f"Content-Encoding {encoding!r} lists {len(codings)} codings, more "
                                                f"than the {MAX_CODINGS} the service undoes: compress the body once")
        charset = _charset(headers)
        if charset and _codec(charset) is None:
            return await _send_error(send, 415, f"charset {charset!r} in Content-Type is not one the service "
                                                "knows: send the body as UTF-8, "
                                                "'Content-Type: application/json; charset=utf-8'")
        declared = headers.get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            return await _send_error(send, 413, self._too_large(f"of {int(declared):,} bytes"))
        inflaters = [_Inflater(coding, self.max_bytes) for coding in reversed(codings)]
        messages, size = [], 0
        while True:
            message = await receive()
            messages.append(message)
            if message["type"] != "http.request":
                break
            size += len(message.get("body", b""))
            if size > self.max_bytes:
                return await _send_error(send, 413, self._too_large(f"of more than {size:,} bytes"))
            for inflater in inflaters:
                try:
                    message["body"] = inflater.feed(message.get("body", b""))
                except _BodyTooLarge:
                    return await _send_error(send, 413, self._too_large(
                        f"of more than {self.max_bytes:,} bytes once decompressed ({encoding})"))
                except zlib.error as err:
                    return await _send_error(send, 400, f"the body is not valid {inflater.encoding} data as its "
                                                        f"Content-Encoding says ({err})")
            if not message.get("more_body", False):
                break
        whole = messages[-1]["type"] == "http.request"  # not cut short by the client going away
        if not whole:
            return await self.app(scope, self._replay(messages, receive), send)
        unfinished = next((inflater.encoding for inflater in inflaters if not inflater.finished()), None)
        if unfinished:
            return await _send_error(send, 400, f"the body is not valid {unfinished} data as its Content-Encoding "
                                                "says: it ends before its compressed data does")
        sent = b"".join(message.get("body", b"") for message in messages)
        body, not_text = _as_utf8(sent, charset)
        if not_text:
            problem = {"loc": [], "field": "body", "msg": not_text, "type": "json_invalid"}
            return await _send(send, 400, b"application/json",
                               json.dumps({"error": BAD_JSON_ERROR.format(1), "detail": [problem]}).encode())
        body = body.removeprefix(codecs.BOM_UTF8)
        if inflaters or body != sent:
            messages = [{"type": "http.request", "body": body, "more_body": False}]
            recoded = _codec(charset or "utf-8") != "utf-8"
            replaced = (b"content-encoding", b"content-length") + ((b"content-type",) if recoded else ())
            scope = {**scope, "headers": [
                *((k, v) for k, v in scope["headers"] if k.lower() not in replaced),
                (b"content-length", str(len(body)).encode()),
                *([(b"content-type", b"application/json; charset=utf-8")] if recoded else [])]}
        return await self.app(scope, self._replay(messages, receive), send)

    @staticmethod
    def _replay(messages: list, receive):
        """The `receive` the service reads the body from: the messages already read, then the client's."""
        async def replay():
            return messages.pop(0) if messages else await receive()
        return replay


class OneErrorShape:
    """The errors BentoML and Starlette answer themselves, in the shape of every other error.

    A 400 from BentoML's own JSON check lists pydantic's errors by `loc` only: each gains `field`
    (``leads[0].employees``, as a 409 or 422 names it; ``body`` for JSON that does not parse; a body that is no text in
    its charset never gets here: `BodyLimit`), and pydantic's "1 validation error for Input" reads like a 422's error.
    A 404 (no such route) or 405 (a method the route does not answer) comes as plain text: it becomes JSON naming the
    method and path. So does Starlette's 307 to the same path with or without a trailing slash (``/leads`` to
    ``/leads/``, ``/score/`` to ``/score``), as a 404 naming the route meant: a CRM's HTTP client
    (Salesforce, HubSpot) does not follow redirects and saw an empty answer, and the redirect's absolute
    address is the service's own, not the one a proxy serves it at. The score card's own 404 (a page, or
    the error JSON: ``from_browser``) and HEAD replies pass unchanged.

    Args:
        app: the wrapped ASGI app.
        named: called with a 400's route, problems and the request body as received (decompressed, in UTF-8);
            returns the problems naming what the body tells of them (the service: each lead by its id, as its 422
            does). The JSON check answers before the service sees the request, so only the body can tell.
    """

    RESHAPED = (400, 404, 405)

    def __init__(self, app, named: Callable[[str, list[dict], bytes], list[dict]]):
        self.app = app
        self.named = named

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http" or scope["method"] == "HEAD":
            return await self.app(scope, receive, send)
        start, body, request = None, b"", []

        async def recording():
            message = await receive()
            if message["type"] == "http.request":
                request.append(message.get("body", b""))
            return message

        async def reshaping(message) -> None:
            nonlocal start, body
            if message["type"] == "http.response.start" and (message["status"] in self.RESHAPED
                                                             or _slash_twin(message, scope)):
                headers = dict(message["headers"])
                if not headers.get(b"content-type", b"").startswith(b"text/html"):
                    start = message
                    return None
            if start is None or message["type"] != "http.response.body":
                return await send(message)
            body += message.get("body", b"")
            if message.get("more_body", False):
                return None
            reply = self._reshaped(start, body, scope)
            if start["status"] == 400 and reply["detail"]:
                reply["detail"] = self.named(scope["path"], reply["detail"], b"".join(request))
            payload = json.dumps(reply).encode()
            kept = [(k, v) for k, v in start["headers"]
                    if k.lower() not in (b"content-type", b"content-length", b"location")]
            await send({**start, "status": 404 if start["status"] == 307 else start["status"],
                        "headers": [*kept, (b"content-type", b"application/json"),
                                    (b"content-length", str(len(payload)).encode())]})
            await send({"type": "http.response.body", "body": payload})

        return await self.app(scope, recording, reshaping)

    @staticmethod
    def _reshaped(start: dict, body: bytes, scope: dict) -> dict:
        status, route = start["status"], f"{scope['method']} {scope['path']}"
        twin = _slash_twin(start, scope)
        if twin:
            meant = f"{twin}<lead id>" if twin == CARD_PATH else twin
            return {"error": f"no such route: {route}; did you mean {scope['method']} {meant}? "
                             "(the API is listed at GET /docs.json)", "detail": []}
        if status == 404:
            own = _in_error_shape(body)
            if own is not None:  # the score card's, for a lead never scored
                return own
            return {"error": f"no such route: {route} (the API is listed at GET /docs.json)", "detail": []}
        if status == 405:
            allowed = dict(start["headers"]).get(b"allow", b"").decode("latin-1")
            return {"error": f"{route}: method not allowed" + (f"; this route answers {allowed}" if allowed else ""),
                    "detail": []}
        try:
            reply = json.loads(body)
            detail = [_with_body_shape(_problem(d), scope["path"]) for d in reply["detail"]]
        except (ValueError, TypeError, KeyError):
            return {"error": body.decode("utf-8", "replace"), "detail": []}
        return {"error": BAD_JSON_ERROR.format(len(detail)), "detail": detail}
