"""The outbound client's HTTP/1.1 against raw local servers that answer byte for byte: body
framings (length, chunked, until close), interim 1xx answers, HEAD, truncated answers, bodies
over the cap on a kept-alive connection, header injection, the request line and Host header,
and HTTPS with a certificate the client trusts (or not)."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

import pytest

from legato.channels.outbound import OutboundClient
from legato.errors import Permanent, Retryable
from tests.integration.channels.channel_fakes import Certificate

Answer = Callable[[bytes], bytes | None]
"""Given a request's head, the raw bytes to answer (None: close without answering)."""


@dataclass
class RawServer:
    """A loopback server that reads request heads (and Content-Length bodies) and writes
    whatever `answer` returns; it closes the connection after an answer ending in `close`."""

    answer: Answer
    heads: list[bytes] = field(default_factory=list)
    connections: int = 0
    port: int = 0

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                self.heads.append(head)
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        await reader.readexactly(int(line.split(b":")[1]))
                reply = self.answer(head)
                if reply is None:
                    break
                writer.write(reply.removesuffix(b"close"))
                await writer.drain()
                if reply.endswith(b"close"):
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


Start = Callable[..., Awaitable[RawServer]]
"""Starts a `RawServer`: `await raw(answer)`, or `await raw(answer, tls_context)`."""


@pytest.fixture
async def raw() -> AsyncIterator[Start]:
    servers: list[asyncio.Server] = []

    async def start(answer: Answer, tls: ssl.SSLContext | None = None) -> RawServer:
        recorder = RawServer(answer)
        server = await asyncio.start_server(recorder.serve, "127.0.0.1", 0, ssl=tls)
        servers.append(server)
        recorder.port = server.sockets[0].getsockname()[1]
        return recorder

    yield start
    for server in servers:
        server.close()
        await server.wait_closed()


def fixed(body: bytes, *extra: bytes) -> bytes:
    return b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n%s\r\n%s" % (
        len(body),
        b"".join(h + b"\r\n" for h in extra),
        body,
    )


async def test_chunked_and_close_delimited_bodies_are_read_whole(raw: Start) -> None:
    chunked = (
        b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n"
        b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"
    )
    until_close = b"HTTP/1.1 200 OK\r\nconnection: close\r\n\r\nall of it" + b"close"
    answers = iter([chunked, until_close])
    server = await raw(lambda head: next(answers))
    async with OutboundClient(allow_private=True) as client:
        first = await client.request("GET", f"http://127.0.0.1:{server.port}/a")
        second = await client.request("GET", f"http://127.0.0.1:{server.port}/b")
    assert first.body == b"hello world"
    assert second.body == b"all of it"
    assert server.connections == 1  # the chunked answer left the connection reusable


async def test_interim_answers_are_skipped_and_head_has_no_body(raw: Start) -> None:
    def answer(head: bytes) -> bytes:
        if head.startswith(b"HEAD"):
            return b"HTTP/1.1 200 OK\r\ncontent-length: 1000\r\nx-kind: head\r\n\r\n"
        return b"HTTP/1.1 103 Early Hints\r\nlink: </a.css>\r\n\r\n" + fixed(b"{}")

    server = await raw(answer)
    async with OutboundClient(allow_private=True) as client:
        got = await client.request("POST", f"http://127.0.0.1:{server.port}/x", json={})
        head = await client.request("HEAD", f"http://127.0.0.1:{server.port}/x")
    assert got.status == 200 and got.body == b"{}" and "link" not in got.headers
    assert head.status == 200 and head.body == b"" and head.headers["x-kind"] == "head"


async def test_truncated_answers_and_silent_closes_are_retryable(raw: Start) -> None:
    answers = iter([b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nhalf" + b"close", None])
    server = await raw(lambda head: next(answers))
    async with OutboundClient(allow_private=True) as client:
        for _ in range(2):
            with pytest.raises(Retryable):
                await client.request("GET", f"http://127.0.0.1:{server.port}/x")


async def test_a_capped_body_never_leaves_its_connection_for_reuse(raw: Start) -> None:
    answers = iter([fixed(b"x" * 5000), fixed(b"small")])
    server = await raw(lambda head: next(answers))
    async with OutboundClient(allow_private=True, max_response_bytes=100) as client:
        big = await client.request("GET", f"http://127.0.0.1:{server.port}/big")
        small = await client.request("GET", f"http://127.0.0.1:{server.port}/small")
    assert big.body == b"x" * 100 and small.body == b"small"
    assert server.connections == 2


@pytest.mark.parametrize(
    "headers",
    [
        {"x-a": "1\r\nx-injected: 1"},
        {"x-b": "1\nx: 2"},
        {"bad name": "1"},
        {"x-c\n": "1"},
        {"x-d": "€"},
    ],
)
async def test_header_injection_is_refused_before_anything_is_sent(
    raw: Start, headers: dict[str, str]
) -> None:
    server = await raw(lambda head: fixed(b""))
    async with OutboundClient(allow_private=True) as client:
        with pytest.raises(Permanent, match="invalid request header"):
            await client.request("POST", f"http://127.0.0.1:{server.port}/", headers=headers)
    assert server.connections == 0


async def test_request_line_and_host_header(raw: Start) -> None:
    server = await raw(lambda head: fixed(b""))
    async with OutboundClient(allow_private=True) as client:
        await client.request(
            "put",
            f"http://localhost:{server.port}/a path/ü?q=a b&x=%2F",
            content=b"abc",
            headers={"Host": "evil.example", "X-Mixed-Case": "v"},
        )
    head = server.heads[0].decode("latin-1").split("\r\n")
    assert head[0] == "PUT /a%20path/%C3%BC?q=a%20b&x=%2F HTTP/1.1"
    assert f"host: localhost:{server.port}" in head
    assert "content-length: 3" in head and "X-Mixed-Case: v" in head
    assert "evil.example" not in server.heads[0].decode("latin-1")


async def test_https_with_a_trusted_certificate_and_not_without(
    raw: Start, certificate: Certificate
) -> None:
    server = await raw(lambda head: fixed(b"secret"), certificate.server_context())
    url = f"https://localhost:{server.port}/x"
    async with OutboundClient(allow_private=True, verify=str(certificate.cert_path)) as client:
        response = await client.request("GET", url)
    assert response.body == b"secret"
    async with OutboundClient(allow_private=True) as untrusting:
        with pytest.raises(Retryable, match="CERTIFICATE_VERIFY_FAILED"):
            await untrusting.request("GET", url)
