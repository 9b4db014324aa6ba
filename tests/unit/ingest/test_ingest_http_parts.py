"""The tracking API's pure parts: capped gunzip, Basic auth, CORS preflight."""

from __future__ import annotations

import base64
import gzip
import tracemalloc
import zlib

import pytest

from legato.api.tracking import (
    ROUTES,
    _basic_username,
    _preflight_headers,
    _Request,
    gunzip,
)
from legato.errors import InvalidInput, PayloadTooLarge, Unauthorized


def test_gunzip_round_trips_one_or_several_members() -> None:
    assert gunzip(gzip.compress(b'{"a":1}'), 100) == b'{"a":1}'
    assert gunzip(gzip.compress(b"ab") + gzip.compress(b"cd"), 100) == b"abcd"


def test_a_gzip_bomb_is_refused_without_inflating_it() -> None:
    bomb = gzip.compress(b"\0" * (16 * 1024 * 1024), compresslevel=9)  # 16 MB in ~16 KB
    tracemalloc.start()
    try:
        with pytest.raises(PayloadTooLarge, match="decompressed body is over the limit"):
            gunzip(bomb, 512 * 1024)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 4 * 1024 * 1024, f"decompression used {peak} bytes"


@pytest.mark.parametrize(
    "data, message",
    [
        (b"not gzip at all", "not valid gzip"),
        (gzip.compress(b"x" * 1000, mtime=0)[:-12], "truncated"),
        (zlib.compress(b"{}"), "not valid gzip"),
    ],
    ids=["garbage", "truncated", "zlib"],
)
def test_broken_gzip_is_invalid_input(data: bytes, message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        gunzip(data, 10_000)


def basic(text: str) -> str:
    return "Basic " + base64.b64encode(text.encode()).decode()


@pytest.mark.parametrize(
    "header, expected",
    [
        (basic("wk_1:"), "wk_1"),
        (basic("wk_1:ignored-password"), "wk_1"),
        (basic("wk_1"), "wk_1"),
        (basic(":"), None),
        ("Bearer abc", None),
        ("", None),
    ],
)
def test_write_key_from_basic_auth(header: str, expected: str | None) -> None:
    assert _basic_username(header) == expected


def test_malformed_basic_auth_is_unauthorized() -> None:
    with pytest.raises(Unauthorized, match="malformed"):
        _basic_username("Basic !!!not-base64")


def test_preflight_allows_the_headers_browser_sdks_send() -> None:
    request = _Request(
        "OPTIONS",
        preflight_headers="Authorization, Content-Type, AnonymousId, SentAt, X-Retry-Count, "
        "Rsa-Request-Id, X-Other",
    )
    headers = dict(_preflight_headers(request, "POST"))
    allowed = headers[b"access-control-allow-headers"].decode().split(", ")
    assert allowed == [
        "Authorization",
        "Content-Type",
        "AnonymousId",
        "SentAt",
        "X-Retry-Count",
        "Rsa-Request-Id",
    ]
    assert headers[b"access-control-allow-methods"] == b"POST, OPTIONS"


def test_every_route_of_the_spec_is_served() -> None:
    expected = {"/v1/batch", "/v1/b", "/beacon/v1/batch"}
    for long, short in [
        ("identify", "i"),
        ("track", "t"),
        ("page", "p"),
        ("screen", "s"),
        ("group", "g"),
        ("alias", "a"),
    ]:
        assert ROUTES[f"/v1/{long}"] == ROUTES[f"/v1/{short}"] == long
        expected |= {f"/v1/{long}", f"/v1/{short}"}
    assert set(ROUTES) == expected
    assert {ROUTES[p] for p in ("/v1/batch", "/v1/b", "/beacon/v1/batch")} == {"batch"}
