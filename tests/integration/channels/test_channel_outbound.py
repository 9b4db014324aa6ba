"""The guarded outbound HTTP client against a real local server: SSRF refusals (literal
addresses, names resolving to private addresses, redirects), the allowed case, timeouts,
capped bodies, no cookie carry-over."""

from __future__ import annotations

import asyncio
import time

import pytest

from legato.channels.outbound import OutboundClient
from legato.errors import InvalidInput, Permanent, Retryable
from tests.integration.channels.channel_fakes import Recorded, Reply, VendorServer, json_reply


def refused_urls(port: int) -> list[str]:
    return [
        f"http://127.0.0.1:{port}/hook",
        f"http://127.1.2.3:{port}/hook",
        f"http://localhost:{port}/hook",
        f"http://[::1]:{port}/hook",
        f"http://[::ffff:127.0.0.1]:{port}/hook",
        f"http://0.0.0.0:{port}/hook",
        "http://10.1.2.3/hook",
        "http://172.16.0.1/hook",
        "http://192.168.1.1/hook",
        "http://169.254.169.254/latest/meta-data/",
        "http://100.64.0.1/hook",
        "http://224.0.0.1/hook",
        "http://[fe80::1]/hook",
        "http://[fd00::1]/hook",
    ]


@pytest.mark.parametrize("index", range(len(refused_urls(0))))
async def test_private_and_special_addresses_are_refused(vendor: VendorServer, index: int) -> None:
    url = refused_urls(vendor.port)[index]
    async with OutboundClient(timeout=3) as client:
        with pytest.raises(Permanent) as caught:
            await client.request("POST", url, json={"x": 1})
    assert "refused" in caught.value.details
    assert "allow_private_webhooks" in caught.value.message
    assert vendor.requests == []


async def test_a_name_with_one_private_answer_is_refused(vendor: VendorServer) -> None:
    async def resolver(host: str, port: int) -> list[str]:
        # A public answer next to a private one must not let the request through.
        return {"hooks.example": ["93.184.215.14", "10.0.0.7"]}[host]

    async with OutboundClient(resolver=resolver) as client:
        with pytest.raises(Permanent) as caught:
            await client.request("GET", "http://hooks.example/x")
    assert caught.value.details["address"] == "10.0.0.7"


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
async def test_private_addresses_are_reached_when_allowed(vendor: VendorServer, host: str) -> None:
    vendor.handler = lambda request: json_reply(200, {"ok": True})
    async with OutboundClient(allow_private=True) as client:
        response = await client.request("POST", f"http://{host}:{vendor.port}/hook", json={"a": 1})
    assert response.status == 200 and response.json() == {"ok": True}
    assert vendor.requests[0].json() == {"a": 1}


async def test_an_allowed_network_is_reached(vendor: VendorServer) -> None:
    async with OutboundClient(allowed_networks=["127.0.0.1/32"]) as client:
        response = await client.request("GET", f"{vendor.base_url}/x")
    assert response.ok


def redirect_to(location: str) -> Reply:
    return 302, {"location": location}, b""


@pytest.mark.parametrize(
    "target",
    [
        "http://169.254.169.254/latest/meta-data/",
        "http://127.0.0.2:{port}/inside",
        "http://10.0.0.1/",
    ],
)
async def test_redirects_are_checked_again(vendor: VendorServer, target: str) -> None:
    vendor.handler = lambda request: redirect_to(target.format(port=vendor.port))
    async with OutboundClient(allowed_networks=["127.0.0.1/32"]) as client:
        with pytest.raises(Permanent) as caught:
            await client.request("GET", f"{vendor.base_url}/start")
    assert "refused" in caught.value.details
    assert [r.path for r in vendor.requests] == ["/start"]


async def test_allowed_redirects_are_followed_and_capped(vendor: VendorServer) -> None:
    def handler(request: Recorded) -> Reply:
        hops = int(request.path.rsplit("/", 1)[1])
        return redirect_to(f"/hop/{hops + 1}") if hops < 10 else json_reply(200, {"hops": hops})

    vendor.handler = handler
    async with OutboundClient(allow_private=True, max_redirects=3) as client:
        response = await client.request("GET", f"{vendor.base_url}/hop/7")
        assert response.json() == {"hops": 10}
        with pytest.raises(Permanent, match="more than 3 redirects"):
            await client.request("GET", f"{vendor.base_url}/hop/0")
        unfollowed = await client.request("GET", f"{vendor.base_url}/hop/0", follow_redirects=False)
        assert unfollowed.status == 302


@pytest.mark.parametrize(
    "url", ["file:///etc/passwd", "ftp://example.com/x", "gopher://127.0.0.1:70/", "http:///nohost"]
)
async def test_only_http_urls_are_called(url: str) -> None:
    async with OutboundClient(allow_private=True) as client:
        with pytest.raises(Permanent):
            await client.request("GET", url)


async def test_slow_servers_time_out_as_retryable(vendor: VendorServer) -> None:
    def slow(request: Recorded) -> Reply:
        time.sleep(1.0)
        return json_reply(200, {})

    vendor.handler = slow
    async with OutboundClient(allow_private=True) as client:
        started = time.monotonic()
        with pytest.raises(Retryable, match="timed out"):
            await client.request("GET", f"{vendor.base_url}/slow", time_limit=0.2)
    assert time.monotonic() - started < 0.9


async def test_connection_refused_is_retryable() -> None:
    from tests.integration.channels.channel_fakes import free_port

    async with OutboundClient(allow_private=True) as client:
        with pytest.raises(Retryable):
            await client.request("GET", f"http://127.0.0.1:{free_port()}/")


async def test_bodies_are_capped_and_cookies_never_kept(vendor: VendorServer) -> None:
    vendor.handler = lambda request: (200, {"set-cookie": "session=secret; Path=/"}, b"x" * 50_000)
    async with OutboundClient(allow_private=True, max_response_bytes=1024) as client:
        first = await client.request("GET", f"{vendor.base_url}/a")
        await client.request("GET", f"{vendor.base_url}/b")
    assert len(first.body) == 1024
    assert "cookie" not in vendor.requests[1].headers


def test_allowed_networks_must_be_networks() -> None:
    with pytest.raises(InvalidInput):
        OutboundClient(allowed_networks=["not-a-network"])


async def test_pooled_connections_are_reused_until_the_server_closes_them() -> None:
    """Keep-alive connections serve several calls; one the server closed while idle (without
    saying so) is noticed before reuse, so the next call opens a new one instead of failing."""
    peers: list[int] = []
    close_after = {"count": 2}

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        handlers.append(task)
        peers.append(writer.get_extra_info("peername")[1])
        answered = 0
        try:
            while answered < close_after["count"]:
                head = await reader.readuntil(b"\r\n\r\n")
                assert head.startswith(b"POST")
                length = next(
                    int(line.split(b":")[1])
                    for line in head.split(b"\r\n")
                    if line.lower().startswith(b"content-length")
                )
                await reader.readexactly(length)
                writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
                await writer.drain()
                answered += 1
        except asyncio.IncompleteReadError:
            pass  # the client closed its pool
        finally:
            writer.close()  # after two answers: idle, unannounced
            await writer.wait_closed()

    handlers: list[asyncio.Task[None]] = []
    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    async with server, OutboundClient(allow_private=True) as client:
        for _ in range(5):
            answer = await client.request("POST", f"http://127.0.0.1:{port}/hook", json={"a": 1})
            assert answer.status == 200 and answer.body == b"ok"
            await asyncio.sleep(0.02)  # let a closing server's FIN arrive
    async with asyncio.timeout(5):
        await asyncio.gather(*handlers)
    # 5 calls, 2 per connection: 3 connections, none reused after its server closed it.
    assert len(peers) == 3
