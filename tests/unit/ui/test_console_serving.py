"""Serving the console bundle: index.html for client routes, cached hashed assets, API 404s kept."""

from __future__ import annotations

import gzip
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from legato.ui.console import IMMUTABLE, REVALIDATE, install

INDEX = (
    b'<!doctype html><html><head><script type="module" src="/assets/app-abc123.js">'
    b"</script></head></html>"
)
SCRIPT = b"console.log('legato');" * 200  # over the compression threshold
HTML = {"Accept": "text/html,application/xhtml+xml"}


@pytest.fixture
def bundle(tmp_path: Path) -> Path:
    (tmp_path / "assets").mkdir()
    (tmp_path / "index.html").write_bytes(INDEX)
    (tmp_path / "assets" / "app-abc123.js").write_bytes(SCRIPT)
    (tmp_path / "assets" / "app-abc123.css").write_bytes(b"body{margin:0}")
    return tmp_path


def client_for(root: Path) -> httpx.AsyncClient:
    app = FastAPI()

    @app.get("/api/v1/things")
    async def things() -> dict[str, list[str]]:
        return {"things": []}

    install(app, root)

    # A router included after the console must still win over the client-route fallback.
    @app.get("/api/v1/late")
    async def late() -> dict[str, bool]:
        return {"late": True}

    return httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://testserver")


@pytest.mark.parametrize(
    "path", ["/", "/journeys", "/journeys/abandoned_cart", "/profiles/01abc", "/settings"]
)
async def test_client_routes_answer_with_index_html(bundle: Path, path: str) -> None:
    async with client_for(bundle) as client:
        answer = await client.get(path, headers=HTML)
    assert answer.status_code == 200
    assert answer.content == INDEX
    assert answer.headers["cache-control"] == REVALIDATE
    assert answer.headers["content-type"].startswith("text/html")
    assert "frame-ancestors 'none'" in answer.headers["content-security-policy"]
    assert answer.headers["x-content-type-options"] == "nosniff"


@pytest.mark.parametrize(
    ("path", "headers", "status"),
    [
        ("/api/v1/nothing", HTML, 404),  # an unknown API path stays a JSON 404
        ("/v1/nothing", HTML, 404),
        ("/journeys/x", {"Accept": "application/json"}, 404),  # not a browser navigation
        ("/favicon.ico", HTML, 404),  # a file name is not a client route
        ("/assets/missing-123.js", {}, 404),
    ],
)
async def test_what_is_not_a_console_page_is_not_answered_with_one(
    bundle: Path, path: str, headers: dict[str, str], status: int
) -> None:
    async with client_for(bundle) as client:
        answer = await client.get(path, headers=headers)
    assert answer.status_code == status
    assert answer.content != INDEX


async def test_api_routes_win_whatever_the_order_of_inclusion(bundle: Path) -> None:
    async with client_for(bundle) as client:
        assert (await client.get("/api/v1/things", headers=HTML)).json() == {"things": []}
        assert (await client.get("/api/v1/late", headers=HTML)).json() == {"late": True}


async def test_hashed_assets_are_cached_for_good_and_compressed(bundle: Path) -> None:
    async with client_for(bundle) as client:
        plain = await client.get("/assets/app-abc123.js", headers={"Accept-Encoding": "identity"})
        assert plain.status_code == 200
        assert plain.content == SCRIPT
        assert plain.headers["cache-control"] == IMMUTABLE
        assert plain.headers["content-type"].startswith("text/javascript")
        assert "content-encoding" not in plain.headers

        raw = await client.get("/assets/app-abc123.js", headers={"Accept-Encoding": "gzip"})
        # httpx decodes gzip transparently: the bytes are the same, the wire was compressed.
        assert raw.headers["content-encoding"] == "gzip"
        assert raw.content == SCRIPT
        assert int(raw.headers["content-length"]) == len(gzip.compress(SCRIPT, 9, mtime=0))

        small = await client.get("/assets/app-abc123.css", headers={"Accept-Encoding": "gzip"})
        assert "content-encoding" not in small.headers  # not worth compressing


async def test_etag_revalidation_answers_304(bundle: Path) -> None:
    async with client_for(bundle) as client:
        first = await client.get("/settings", headers=HTML)
        again = await client.get(
            "/settings", headers={**HTML, "If-None-Match": first.headers["etag"]}
        )
        assert again.status_code == 304
        assert again.content == b""
        asset = await client.get("/assets/app-abc123.js")
        cached = await client.get(
            "/assets/app-abc123.js", headers={"If-None-Match": asset.headers["etag"]}
        )
        assert cached.status_code == 304


async def test_head_requests_get_headers_only(bundle: Path) -> None:
    async with client_for(bundle) as client:
        answer = await client.head("/assets/app-abc123.js", headers={"Accept-Encoding": "identity"})
    assert answer.status_code == 200
    assert answer.content == b""
    assert answer.headers["content-length"] == str(len(SCRIPT))


async def test_an_unbuilt_console_explains_how_to_build_it(tmp_path: Path) -> None:
    async with client_for(tmp_path) as client:
        answer = await client.get("/journeys", headers=HTML)
    assert answer.status_code == 503
    assert b"scripts/build-console" in answer.content


def test_the_packaged_bundle_is_present_and_references_its_assets() -> None:
    """The committed build: index.html names assets that exist (what `pip install` ships)."""
    from legato.ui.console import STATIC_DIR, Bundle

    built = Bundle.load(STATIC_DIR)
    assert built.index is not None, "run scripts/build-console"
    html = built.index.body.decode()
    referenced = [part.split('"')[0] for part in html.split("/assets/")[1:]]
    assert referenced, html
    for name in referenced:
        assert name in built.assets, name
