"""Serving the console bundle: index.html for client routes, hashed assets cached for a year.

The built files are read once, when the app is created, and kept in memory with a gzip copy
(the whole bundle is a few hundred kilobytes). Client routes such as `/journeys/welcome` are
answered with index.html by the router's fallback, so reloading any console page works and the
order in which API routers are included does not matter. This module serves files only: it
never reads the database and never answers an API path.
"""

from __future__ import annotations

import gzip
import hashlib
import mimetypes
from dataclasses import dataclass
from pathlib import Path

from fastapi import FastAPI, Request
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

STATIC_DIR = Path(__file__).parent / "static"

#: Paths that belong to the APIs: an unknown one is a JSON 404, never the console.
API_PREFIXES = ("/api/", "/v1/", "/beacon/")

#: Vite names every built asset after a hash of its content, so it may be cached for good.
IMMUTABLE = "public, max-age=31536000, immutable"
#: index.html names the current assets: always revalidate it (cheap, thanks to the ETag).
REVALIDATE = "no-cache"

#: Same-origin only; inline style attributes are how React and React Flow position elements.
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
        "img-src 'self' data: blob:; connect-src 'self'; font-src 'self' data:; "
        "object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
}

#: Only text is worth compressing; images and fonts are compressed already.
COMPRESSIBLE = ("text/", "application/javascript", "application/json", "image/svg+xml")

NOT_BUILT = b"""<!doctype html><html lang="en"><head><meta charset="utf-8">
<title>Legato console not built</title></head><body style="font-family:sans-serif;margin:3rem">
<h1>The console is not built into this installation</h1>
<p>Run <code>scripts/build-console</code> in a source checkout (it needs Node 20), or install a
released package. The API is available: see <a href="/docs">/docs</a>.</p></body></html>"""


@dataclass(frozen=True, slots=True)
class Asset:
    """One built file, ready to send."""

    body: bytes
    gzipped: bytes | None
    media_type: str
    etag: str


def _asset(path: Path) -> Asset:
    body = path.read_bytes()
    media_type = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
    if path.suffix == ".js":
        media_type = "text/javascript"
    if media_type.startswith("text/"):
        media_type += "; charset=utf-8"
    gzipped = None
    if media_type.startswith(COMPRESSIBLE) and len(body) > 1024:
        # mtime=0 keeps the compressed bytes (and so any cache keyed on them) reproducible.
        gzipped = gzip.compress(body, compresslevel=9, mtime=0)
    etag = '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
    return Asset(body, gzipped, media_type, etag)


@dataclass(frozen=True, slots=True)
class Bundle:
    """The built console held in memory: index.html and the files under assets/."""

    index: Asset | None
    assets: dict[str, Asset]

    @classmethod
    def load(cls, root: Path) -> Bundle:
        """Read a build output folder (an empty bundle when it was never built)."""
        index_path = root / "index.html"
        index = _asset(index_path) if index_path.is_file() else None
        assets_dir = root / "assets"
        assets: dict[str, Asset] = {}
        if assets_dir.is_dir():
            for path in sorted(assets_dir.rglob("*")):
                if path.is_file():
                    assets[path.relative_to(assets_dir).as_posix()] = _asset(path)
        return cls(index, assets)


def _send(
    asset: Asset, accept_encoding: str, if_none_match: str, cache_control: str, *, head: bool
) -> Response:
    headers = {"Cache-Control": cache_control, "ETag": asset.etag, "Vary": "Accept-Encoding"}
    if if_none_match and asset.etag in {tag.strip() for tag in if_none_match.split(",")}:
        return Response(status_code=304, headers=headers)
    body = asset.body
    if asset.gzipped is not None and "gzip" in accept_encoding.lower():
        body = asset.gzipped
        headers["Content-Encoding"] = "gzip"
    if head:
        headers["Content-Length"] = str(len(body))
        body = b""
    return Response(body, media_type=asset.media_type, headers=headers)


def _index(bundle: Bundle, accept_encoding: str, if_none_match: str, *, head: bool) -> Response:
    if bundle.index is None:
        return Response(
            NOT_BUILT,
            status_code=503,
            media_type="text/html; charset=utf-8",
            headers=SECURITY_HEADERS,
        )
    response = _send(bundle.index, accept_encoding, if_none_match, REVALIDATE, head=head)
    response.headers.update(SECURITY_HEADERS)
    return response


def _is_client_route(scope: Scope) -> bool:
    """A browser navigation to a console page (not an API path, not a file)."""
    if scope["type"] != "http" or scope["method"] not in {"GET", "HEAD"}:
        return False
    path: str = scope["path"]
    if path.startswith(API_PREFIXES) or "." in path.rsplit("/", 1)[-1]:
        return False
    accept = dict(scope["headers"]).get(b"accept", b"").decode("latin-1")
    return "text/html" in accept


def install(app: FastAPI, root: Path = STATIC_DIR) -> None:
    """Serve the console from `root` at `/`, with index.html for every client route."""
    bundle = Bundle.load(root)

    async def index(request: Request) -> Response:
        return _index(
            bundle,
            request.headers.get("accept-encoding", ""),
            request.headers.get("if-none-match", ""),
            head=request.method == "HEAD",
        )

    async def asset(request: Request, name: str) -> Response:
        found = bundle.assets.get(name)
        if found is None:
            return Response(b"no such console asset", status_code=404, media_type="text/plain")
        return _send(
            found,
            request.headers.get("accept-encoding", ""),
            request.headers.get("if-none-match", ""),
            IMMUTABLE,
            head=request.method == "HEAD",
        )

    app.add_api_route("/", index, methods=["GET", "HEAD"], include_in_schema=False)
    app.add_api_route(
        "/assets/{name:path}", asset, methods=["GET", "HEAD"], include_in_schema=False
    )
    not_found: ASGIApp = app.router.default

    async def fallback(scope: Scope, receive: Receive, send: Send) -> None:
        if not _is_client_route(scope):
            await not_found(scope, receive, send)
            return
        headers = dict(scope["headers"])
        response = _index(
            bundle,
            headers.get(b"accept-encoding", b"").decode("latin-1"),
            headers.get(b"if-none-match", b"").decode("latin-1"),
            head=scope["method"] == "HEAD",
        )
        await response(scope, receive, send)

    app.router.default = fallback
