"""The tracking API: the Segment HTTP spec and the routes RudderStack and Segment SDKs call.

`POST /v1/batch` (`/v1/b`, `/beacon/v1/batch`), `/v1/{identify,track,page,screen,group,alias}`
and their short forms `/v1/{i,t,p,s,g,a}`; `GET /v1/projects/{writeKey}/settings` (analytics.js)
and `GET /sourceConfig` (rudder-sdk-js) so browser SDKs start. Write key from the Basic-auth
username, else the body's `writeKey`, else `?writeKey=`. JSON whatever the Content-Type; gzip
stream-decompressed under a cap, so a gzip bomb costs at most the cap in memory.

These routes are the hot path, so they are a plain ASGI layer in front of the FastAPI app (no
per-request dependency injection, no pydantic per event); the admin API stays in FastAPI and in
OpenAPI. The layer parses HTTP and answers; validation is `legato.domain.messages`, storage is
`legato.runtime.ingest`. It never composes SQL.

Answers: 200 `{"success": true, "rejected": [{index, reason, field}]}` once the valid messages
are committed; 400 malformed body; 401 unknown or missing write key; 413 over a size limit;
415 unknown Content-Encoding; 503 with Retry-After when ingestion is overloaded.
"""

from __future__ import annotations

import base64
import binascii
import zlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs

import orjson
import structlog
from fastapi import FastAPI
from starlette.types import ASGIApp, Receive, Scope, Send

from legato.domain.messages import BATCH, MESSAGE_TYPES, SHORT_TYPES
from legato.errors import (
    InvalidInput,
    LegatoError,
    PayloadTooLarge,
    Retryable,
    Unauthorized,
)

if TYPE_CHECKING:
    from legato.app import Legato
    from legato.store.workspaces import KeyInfo

log = structlog.get_logger(__name__)

#: Path → route kind: "batch" or a message type.
ROUTES: dict[str, str] = {
    "/v1/batch": BATCH,
    "/v1/b": BATCH,
    "/beacon/v1/batch": BATCH,
    **{f"/v1/{kind}": kind for kind in MESSAGE_TYPES},
    **{f"/v1/{short}": kind for short, kind in SHORT_TYPES.items()},
}
SOURCE_CONFIG = "/sourceConfig"
SETTINGS_PREFIX, SETTINGS_SUFFIX = "/v1/projects/", "/settings"

#: Request headers browser SDKs send, which a CORS preflight must allow (plus any `Rsa-*`).
CORS_HEADERS = frozenset(
    {
        "authorization",
        "content-type",
        "content-encoding",
        "anonymousid",
        "sentat",
        "x-retry-count",
    }
)
CORS_MAX_AGE = b"86400"

_JSON = (b"content-type", b"application/json")
_OK_EMPTY = b'{"success":true,"rejected":[]}'
_STATUS = (
    (PayloadTooLarge, 413, "payload_too_large"),
    (InvalidInput, 400, "invalid_request"),
    (Unauthorized, 401, "unauthorized"),
    (Retryable, 503, "unavailable"),
)


class UnsupportedEncoding(InvalidInput):
    """The body's Content-Encoding is neither gzip nor identity (HTTP 415)."""


@dataclass(frozen=True, slots=True)
class BodyLimits:
    """Caps on a request body, in bytes (from `Settings`)."""

    max_body_bytes: int = 500 * 1024
    max_compressed_bytes: int = 500 * 1024
    max_decompressed_bytes: int = 4 * 1024 * 1024

    @property
    def max_json_bytes(self) -> int:
        """The most JSON one body may hold, however it was encoded."""
        return min(self.max_body_bytes, self.max_decompressed_bytes)


@dataclass(slots=True)
class _Request:
    """The parts of an HTTP request the tracking API reads."""

    method: str
    authorization: str = ""
    content_encoding: str = ""
    content_length: int | None = None
    origin: bytes | None = None
    sent_at: str | None = None
    preflight_headers: str = ""
    host: str = ""
    forwarded_proto: str = ""

    @classmethod
    def of(cls, scope: Scope) -> _Request:
        request = cls(scope["method"])
        for name, value in scope["headers"]:
            if name == b"authorization":
                request.authorization = value.decode("latin-1")
            elif name == b"content-encoding":
                request.content_encoding = value.decode("latin-1").strip().lower()
            elif name == b"content-length":
                try:
                    request.content_length = int(value)
                except ValueError:
                    raise InvalidInput("Content-Length is not a number") from None
            elif name == b"origin":
                request.origin = value
            elif name == b"sentat":
                request.sent_at = value.decode("latin-1")
            elif name == b"access-control-request-headers":
                request.preflight_headers = value.decode("latin-1")
            elif name == b"host":
                request.host = value.decode("latin-1")
            elif name == b"x-forwarded-proto":
                request.forwarded_proto = value.decode("latin-1")
        return request


class TrackingAPI:
    """ASGI layer answering the tracking routes and passing everything else to `app`."""

    def __init__(self, app: ASGIApp, legato: Legato) -> None:
        self.app = app
        self.legato = legato
        settings = legato.settings
        self.limits = BodyLimits(
            settings.max_batch_bytes,
            settings.max_compressed_bytes,
            settings.max_decompressed_bytes,
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        if len(path) > 1 and path[-1] == "/":
            path = path[:-1]
        kind = ROUTES.get(path)
        if kind is not None:
            await self._answer(scope, receive, send, "POST", kind)
        elif path == SOURCE_CONFIG:
            await self._answer(scope, receive, send, "GET", "sourceConfig")
        elif path.startswith(SETTINGS_PREFIX) and path.endswith(SETTINGS_SUFFIX):
            await self._answer(scope, receive, send, "GET", "settings")
        else:
            await self.app(scope, receive, send)

    async def _answer(
        self, scope: Scope, receive: Receive, send: Send, method: str, kind: str
    ) -> None:
        try:
            request = _Request.of(scope)
            cors = _cors_headers(request.origin)
            if request.method == "OPTIONS":
                await _send(send, 204, b"", cors + _preflight_headers(request, method))
                return
            if request.method != method:
                body = _error_body(405, "method_not_allowed", f"use {method} on this route")
                await _send(
                    send, 405, body, [*cors, _JSON, (b"allow", f"{method}, OPTIONS".encode())]
                )
                return
            if method == "GET":
                status, answer = await self._config(scope, request, kind)
            else:
                status, answer = await self._track(scope, receive, request, kind)
            await _send(send, status, answer, [*cors, _JSON])
        except LegatoError as exc:
            await self._refuse(send, scope, exc)

    async def _track(
        self, scope: Scope, receive: Receive, request: _Request, kind: str
    ) -> tuple[int, bytes]:
        key: KeyInfo | None = None
        presented = _basic_username(request.authorization)
        if presented is not None:
            key = await self._write_key(presented)
        raw = await _read_body(receive, request, self.limits)
        try:
            body = orjson.loads(raw) if raw else None
        except orjson.JSONDecodeError as exc:
            raise InvalidInput(f"malformed JSON: {exc}", path="$") from None
        if body is None:
            raise InvalidInput("the body is empty: send a JSON object", path="$")
        if key is None:
            in_body = body.get("writeKey") if isinstance(body, dict) else None
            presented = in_body if isinstance(in_body, str) and in_body else _query_key(scope)
            if presented is None:
                raise Unauthorized(
                    "no write key: send it as the Basic-auth username, `writeKey`, or ?writeKey="
                )
            key = await self._write_key(presented)
        rejected = await self.legato.ingest.accept(
            key.workspace_id, kind, body, sent_at_header=request.sent_at
        )
        if not rejected:
            return 200, _OK_EMPTY
        public = [r.public() for r in rejected]
        if kind != BATCH:
            first = rejected[0]
            raise InvalidInput(first.reason, field=first.field, rejected=public)
        return 200, orjson.dumps({"success": True, "rejected": public})

    async def _config(self, scope: Scope, request: _Request, kind: str) -> tuple[int, bytes]:
        if kind == "settings":
            presented: str | None = scope["path"][len(SETTINGS_PREFIX) :].split("/", 1)[0]
        else:
            presented = _basic_username(request.authorization) or _query_key(scope)
        if not presented:
            raise Unauthorized("no write key: pass ?writeKey= or Basic auth")
        key = await self._write_key(presented)
        if kind == "settings":
            return 200, orjson.dumps(segment_settings(presented, request, scope))
        workspace = await self.legato.workspaces.get(key.workspace_id)
        return 200, orjson.dumps(rudder_source_config(presented, key, workspace.name))

    async def _write_key(self, presented: str) -> KeyInfo:
        info = await self.legato.keys.resolve(presented)
        if info is None or info.kind != "write":
            raise Unauthorized("unknown or revoked write key")
        return info

    async def _refuse(self, send: Send, scope: Scope, exc: LegatoError) -> None:
        status, code = 500, "error"
        if isinstance(exc, UnsupportedEncoding):
            status, code = 415, "unsupported_encoding"
        else:
            for cls, mapped, name in _STATUS:
                if isinstance(exc, cls):
                    status, code = mapped, name
                    break
        headers = [_JSON]
        origin = next((v for k, v in scope["headers"] if k == b"origin"), None)
        headers += _cors_headers(origin)
        if isinstance(exc, Retryable):
            headers.append((b"retry-after", str(max(1, round(exc.retry_after or 1))).encode()))
        elif status == 401:
            headers.append((b"www-authenticate", b'Basic realm="legato"'))
        if status >= 500:
            log.warning("tracking request refused", status=status, error=exc.message)
        body = exc.to_dict()
        body["code"] = code
        await _send(send, status, orjson.dumps(body), headers)


def install(app: FastAPI, legato: Legato) -> None:
    """Put the tracking routes in front of the FastAPI app."""
    app.add_middleware(TrackingAPI, legato=legato)


def segment_settings(write_key: str, request: _Request, scope: Scope) -> dict[str, Any]:
    """What analytics.js loads from `/v1/projects/{writeKey}/settings` (its CDN settings)."""
    scheme = request.forwarded_proto or scope.get("scheme", "http")
    return {
        "integrations": {
            "Segment.io": {
                "apiKey": write_key,
                "apiHost": f"{request.host}/v1",
                "protocol": scheme,
            }
        },
        "plan": {
            "track": {"__default": {"enabled": True, "integrations": {}}},
            "identify": {"__default": {"enabled": True}},
            "group": {"__default": {"enabled": True}},
        },
        "edgeFunction": {},
        "analyticsNextEnabled": True,
        "middlewareSettings": {},
        "enabledMiddleware": {},
        "metrics": {"sampleRate": 0},
        "legacyVideoPluginsEnabled": False,
        "remotePlugins": [],
    }


def rudder_source_config(write_key: str, key: KeyInfo, workspace_name: str) -> dict[str, Any]:
    """What rudder-sdk-js loads from `/sourceConfig` (no device-mode destinations)."""
    return {
        "source": {
            "id": key.key_id,
            "name": workspace_name,
            "writeKey": write_key,
            "workspaceId": key.workspace_id,
            "enabled": True,
            "config": {
                "statsCollection": {
                    "errorReports": {"enabled": False},
                    "metrics": {"enabled": False},
                }
            },
            "destinations": [],
        },
    }


async def _read_body(receive: Receive, request: _Request, limits: BodyLimits) -> bytes:
    """The request body, decompressed, refused as soon as it passes a cap."""
    encoding = request.content_encoding
    gzipped = encoding in ("gzip", "x-gzip")
    if encoding not in ("", "identity") and not gzipped:
        raise UnsupportedEncoding(
            f"Content-Encoding {encoding!r} is not supported: send gzip or nothing",
            field="Content-Encoding",
        )
    cap = limits.max_compressed_bytes if gzipped else limits.max_json_bytes
    what = "compressed body" if gzipped else "body"
    if request.content_length is not None and request.content_length > cap:
        raise PayloadTooLarge(f"the {what} is {request.content_length} bytes; the limit is {cap}")
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            raise InvalidInput("the client went away before sending the whole body")
        chunk: bytes = message.get("body", b"")
        if chunk:
            size += len(chunk)
            if size > cap:
                raise PayloadTooLarge(f"the {what} is over the limit of {cap} bytes")
            chunks.append(chunk)
        if not message.get("more_body", False):
            break
    raw = chunks[0] if len(chunks) == 1 else b"".join(chunks)
    return gunzip(raw, limits.max_json_bytes) if gzipped else raw


def gunzip(data: bytes, limit: int) -> bytes:
    """Decompress gzip (one or more members), never producing more than `limit` + 1 bytes."""
    out = bytearray()
    while True:
        decompressor = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
        try:
            out += decompressor.decompress(data, limit - len(out) + 1)
        except zlib.error as exc:
            raise InvalidInput(f"the body is not valid gzip: {exc}") from None
        if len(out) > limit:
            raise PayloadTooLarge(f"the decompressed body is over the limit of {limit} bytes")
        if not decompressor.eof:
            raise InvalidInput("the gzip body is truncated")
        data = decompressor.unused_data
        if not data.strip(b"\0"):
            return bytes(out)


def _basic_username(header: str) -> str | None:
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(token.strip(), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        raise Unauthorized("the Basic authorization header is malformed") from None
    username = decoded.partition(":")[0]
    return username or None


def _query_key(scope: Scope) -> str | None:
    query: bytes = scope.get("query_string", b"")
    if b"writeKey" not in query:
        return None
    values = parse_qs(query.decode("latin-1")).get("writeKey")
    return values[0] if values else None


def _cors_headers(origin: bytes | None) -> list[tuple[bytes, bytes]]:
    if origin is None:
        return []
    return [
        (b"access-control-allow-origin", origin),
        (b"access-control-allow-credentials", b"true"),
        (b"access-control-expose-headers", b"Retry-After"),
        (b"vary", b"Origin"),
    ]


def _preflight_headers(request: _Request, method: str) -> list[tuple[bytes, bytes]]:
    asked = [h.strip() for h in request.preflight_headers.split(",") if h.strip()]
    allowed = [h for h in asked if h.lower() in CORS_HEADERS or h.lower().startswith("rsa-")]
    return [
        (b"access-control-allow-methods", f"{method}, OPTIONS".encode()),
        (b"access-control-allow-headers", ", ".join(allowed or ["Content-Type"]).encode()),
        (b"access-control-max-age", CORS_MAX_AGE),
        (b"allow", f"{method}, OPTIONS".encode()),
    ]


def _error_body(status: int, code: str, message: str) -> bytes:
    return orjson.dumps({"error": "HTTPError", "code": code, "message": message, "status": status})


async def _send(send: Send, status: int, body: bytes, headers: list[tuple[bytes, bytes]]) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [*headers, (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})
