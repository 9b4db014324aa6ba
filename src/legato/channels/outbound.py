"""Outbound HTTP to URLs that users, browsers or channel settings name (webhooks, push
endpoints, vendor APIs), guarded against server-side request forgery.

Every TCP connection goes to an address this module resolved and checked itself: loopback,
private, link-local, reserved, multicast and other non-global addresses are refused unless
`allow_private` (`Settings.allow_private_webhooks`). The check lives in the connection layer, so
redirect targets, fresh pooled connections and DNS answers that change between requests are all
checked, and the socket is opened to the very address that was checked (no DNS rebinding).
HTTP outcomes map onto the error tree: 408/425/429/5xx → `Retryable` (with Retry-After), other
4xx → `Permanent`. Never connects to an unchecked address, never keeps cookies between calls,
never takes proxies or settings from the environment.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import functools
import ipaddress
import select
import socket
import ssl
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from http.cookiejar import CookieJar, DefaultCookiePolicy
from typing import Any
from urllib.parse import urlsplit

import httpcore2
import httpx2
import orjson

from legato.clock import SystemClock
from legato.errors import InvalidInput, Permanent, ProviderError, Retryable
from legato.ports import Clock

Resolver = Callable[[str, int], Awaitable[list[str]]]
"""Resolves (host, port) to IP address strings."""

_REFUSED_PROPERTIES = (
    ("is_loopback", "loopback"),
    ("is_link_local", "link-local"),
    ("is_multicast", "multicast"),
    ("is_private", "private"),
    ("is_reserved", "reserved"),
    ("is_unspecified", "unspecified"),
)


def address_refusal(address: str) -> str | None:
    """Why `address` must not be reached from here ("loopback", "private"...), None if public.

    IPv6 forms that embed an IPv4 address (mapped, 6to4) are judged by the embedded address.
    """
    ip: ipaddress.IPv4Address | ipaddress.IPv6Address = ipaddress.ip_address(address)
    if isinstance(ip, ipaddress.IPv6Address):
        embedded = ip.ipv4_mapped or ip.sixtofour
        if embedded is not None:
            ip = embedded
    for attribute, label in _REFUSED_PROPERTIES:
        if getattr(ip, attribute):
            return label
    if not ip.is_global:
        return "non-global"
    return None


async def system_resolver(host: str, port: int) -> list[str]:
    """The operating system's answers for `host`, in its preference order, deduplicated."""
    loop = asyncio.get_running_loop()
    infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    seen: dict[str, None] = {}
    for info in infos:
        seen.setdefault(str(info[4][0]), None)
    return list(seen)


Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True, slots=True)
class AddressGuard:
    """Resolves a host and refuses it when any of its addresses is not public (or inside one
    of `allowed_networks`, e.g. an internal webhook receiver the operator vouches for)."""

    allow_private: bool = False
    resolver: Resolver = system_resolver
    allowed_networks: tuple[Network, ...] = ()

    async def resolve(self, host: str, port: int) -> list[str]:
        """The addresses to connect to; `Permanent` if refused, `Retryable` if unresolvable."""
        try:
            addresses = await self.resolver(host, port)
        except OSError as exc:
            raise Retryable(f"cannot resolve {host!r}: {exc}", host=host) from exc
        if not addresses:
            raise Retryable(f"cannot resolve {host!r}: no addresses", host=host)
        if self.allow_private:
            return addresses
        # Any refused answer refuses the host: mixing one public and one private record is a
        # classic way to slip past a guard that checks only the first.
        for address in addresses:
            reason = address_refusal(address)
            if reason is not None and not self._allowed(address):
                raise Permanent(
                    f"refused to connect to {host!r}: {address} is a {reason} address"
                    " (allowed only with allow_private_webhooks)",
                    host=host,
                    address=address,
                    refused=reason,
                )
        return addresses

    def _allowed(self, address: str) -> bool:
        ip = ipaddress.ip_address(address)
        return any(ip.version == net.version and ip in net for net in self.allowed_networks)


class _Stream(httpcore2.AsyncNetworkStream):
    """A connection as httpcore sees it, answering `is_readable` from the socket found once.

    The connection pool asks every idle connection whether it expired each time it places a
    request; anyio rebuilds its attribute table on each such question, which made the pool
    scan the largest cost of a send. The answer itself is unchanged (`is_socket_readable`)."""

    def __init__(self, inner: httpcore2.AsyncNetworkStream) -> None:
        self._inner = inner
        self._socket = inner.get_extra_info("socket")

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:  # noqa: ASYNC109
        return await self._inner.read(max_bytes, timeout)

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:  # noqa: ASYNC109
        await self._inner.write(buffer, timeout)

    async def aclose(self) -> None:
        await self._inner.aclose()

    async def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,  # noqa: ASYNC109 (httpcore's signature)
    ) -> httpcore2.AsyncNetworkStream:
        return _Stream(await self._inner.start_tls(ssl_context, server_hostname, timeout))

    def get_extra_info(self, info: str) -> Any:
        if info == "is_readable":
            return _readable(self._socket)
        return self._inner.get_extra_info(info)


def _readable(sock: socket.socket | None) -> bool:
    """Whether an idle connection's socket has something to read — for an idle HTTP/1.1
    connection that means the server closed it (or broke protocol): it must not be reused."""
    if sock is None or sock.fileno() == -1:
        return True
    poller = select.poll()
    poller.register(sock.fileno(), select.POLLIN)
    return bool(poller.poll(0))


class _GuardedBackend(httpcore2.AsyncNetworkBackend):
    """httpcore network backend that connects only to addresses the guard returned."""

    def __init__(self, guard: AddressGuard) -> None:
        self._guard = guard
        self._inner = httpcore2.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109 (httpcore's signature)
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore2.AsyncNetworkStream:
        async with asyncio.timeout(timeout):
            addresses = await self._guard.resolve(host, port)
        failure: Exception | None = None
        for address in addresses:
            try:
                stream = await self._inner.connect_tcp(
                    address,
                    port,
                    timeout=timeout,
                    local_address=local_address,
                    socket_options=socket_options,
                )
                return _Stream(stream)
            except (httpcore2.ConnectError, httpcore2.ConnectTimeout) as exc:
                failure = exc
        assert failure is not None
        raise failure

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,  # noqa: ASYNC109 (httpcore's signature)
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore2.AsyncNetworkStream:
        raise Permanent("outbound calls never use unix sockets")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


@functools.cache
def _default_tls() -> ssl.SSLContext:
    # Loading the CA bundle costs a noticeable fraction of a second; one context serves all.
    return httpx2.create_ssl_context(verify=True, trust_env=False)


class _GuardedTransport(httpx2.AsyncHTTPTransport):
    def __init__(self, *, guard: AddressGuard, verify: Any, limits: httpx2.Limits) -> None:
        # httpx2 has no parameter for the network backend, so the parent's constructor (which
        # only builds `_pool`) is replaced: same pool options, every connection via the guard.
        tls = (
            _default_tls()
            if verify is True
            else httpx2.create_ssl_context(verify=verify, trust_env=False)
        )
        self._pool = httpcore2.AsyncConnectionPool(
            ssl_context=tls,
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            network_backend=_GuardedBackend(guard),
        )


@dataclass(frozen=True, slots=True)
class OutboundResponse:
    """A response read in full (up to the client's size cap); header names are lower-case."""

    status: int
    headers: Mapping[str, str]
    body: bytes
    url: str

    @property
    def ok(self) -> bool:
        """True for 2xx."""
        return 200 <= self.status < 300

    def json(self) -> Any:
        """The body parsed as JSON, or None when it is not JSON."""
        try:
            return orjson.loads(self.body)
        except orjson.JSONDecodeError:
            return None

    @property
    def text(self) -> str:
        """The body as text (invalid UTF-8 replaced)."""
        return self.body.decode("utf-8", errors="replace")


def retry_after_seconds(headers: Mapping[str, str], now_ms: int) -> float | None:
    """Seconds a `Retry-After` header asks to wait (delta-seconds or an HTTP date); None if
    absent or unreadable. A date counts from the response's own `Date` when it has one."""
    value = headers.get("retry-after")
    if value is None:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        target = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    reference_ms = now_ms
    if "date" in headers:
        with contextlib.suppress(TypeError, ValueError):
            reference_ms = int(parsedate_to_datetime(headers["date"]).timestamp() * 1000)
    return max(0.0, (target.timestamp() * 1000 - reference_ms) / 1000)


def describe_url(url: str) -> str:
    """`url` without query, fragment and credentials, for error messages and logs."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{host}{port}{parts.path}"


def basic_auth(username: str, password: str) -> str:
    """An `Authorization` header value for HTTP basic authentication."""
    token = base64.b64encode(f"{username}:{password}".encode()).decode("ascii")
    return f"Basic {token}"


class OutboundClient:
    """The HTTP client for outbound calls: guarded connections, total timeout, capped bodies.

    `allow_private` lifts the address guard entirely; `allowed_networks` (CIDRs) lifts it for
    chosen internal ranges only. One instance is shared by every provider of a process;
    `aclose` it at shutdown.
    """

    def __init__(
        self,
        *,
        allow_private: bool = False,
        timeout: float = 10.0,
        connect_timeout: float = 5.0,
        max_redirects: int = 3,
        max_response_bytes: int = 1 << 20,
        max_connections: int = 100,
        user_agent: str = "Legato",
        verify: Any = True,
        resolver: Resolver = system_resolver,
        allowed_networks: Iterable[str] = (),
        clock: Clock | None = None,
    ) -> None:
        try:
            networks = tuple(ipaddress.ip_network(net) for net in allowed_networks)
        except ValueError as exc:
            raise InvalidInput(f"not a network: {exc}", field="allowed_networks") from exc
        self.guard = AddressGuard(
            allow_private=allow_private, resolver=resolver, allowed_networks=networks
        )
        self._timeout = timeout
        self._max_redirects = max_redirects
        self._max_bytes = max_response_bytes
        self._clock: Clock = clock or SystemClock()
        limits = httpx2.Limits(
            max_connections=max_connections, max_keepalive_connections=max_connections
        )
        self._client = httpx2.AsyncClient(
            transport=_GuardedTransport(guard=self.guard, verify=verify, limits=limits),
            timeout=httpx2.Timeout(timeout, connect=min(connect_timeout, timeout)),
            headers={"user-agent": user_agent},
            # A shared client must not carry one tenant's cookies into another's calls.
            cookies=CookieJar(policy=DefaultCookiePolicy(allowed_domains=())),
            trust_env=False,
            follow_redirects=False,
        )

    def now_ms(self) -> int:
        """The clock's time, for callers that judge Retry-After dates."""
        return self._clock.now_ms()

    async def request(
        self,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str] | None = None,
        content: bytes | None = None,
        json: Any = None,
        form: Mapping[str, str] | None = None,
        time_limit: float | None = None,
        follow_redirects: bool = True,
    ) -> OutboundResponse:
        """Send one request and read the response, whatever its status.

        Network failures and timeouts raise `Retryable`; refused addresses, bad URLs and too many
        redirects raise `Permanent`. Judge the status with `error_for_status`.
        """
        _check_url(url)
        if json is not None:
            content = orjson.dumps(json)
            headers = {"content-type": "application/json", **(headers or {})}
        total = self._timeout if time_limit is None else time_limit
        try:
            request = self._client.build_request(
                method, url, headers=headers, content=content, data=form
            )
        except (httpx2.InvalidURL, httpx2.UnsupportedProtocol) as exc:
            raise Permanent(f"invalid URL {describe_url(url)}: {exc}") from exc
        try:
            async with asyncio.timeout(total):
                return await self._exchange(request, follow_redirects)
        except TimeoutError as exc:
            raise Retryable(f"{describe_url(url)} timed out after {total:g}s", url=url) from exc
        except httpx2.TimeoutException as exc:
            raise Retryable(f"{describe_url(url)} timed out: {exc!r}", url=url) from exc
        except (httpx2.InvalidURL, httpx2.UnsupportedProtocol) as exc:
            raise Permanent(f"invalid URL {describe_url(url)}: {exc}") from exc
        except httpx2.TransportError as exc:
            raise Retryable(f"{describe_url(url)} failed: {exc!r}", url=url) from exc

    async def _exchange(self, request: httpx2.Request, follow_redirects: bool) -> OutboundResponse:
        for _ in range(self._max_redirects + 1):
            response = await self._client.send(request, stream=True, follow_redirects=False)
            try:
                redirect = response.next_request if follow_redirects else None
                if redirect is not None:
                    _check_url(str(redirect.url))
                    request = redirect
                    continue
                body = await self._read_capped(response)
            finally:
                await response.aclose()
            return OutboundResponse(
                status=response.status_code,
                headers={key.lower(): value for key, value in response.headers.items()},
                body=body,
                url=str(request.url),
            )
        raise Permanent(
            f"more than {self._max_redirects} redirects from {describe_url(str(request.url))}"
        )

    async def _read_capped(self, response: httpx2.Response) -> bytes:
        chunks: list[bytes] = []
        size = 0
        async for chunk in response.aiter_raw():
            chunks.append(chunk)
            size += len(chunk)
            if size >= self._max_bytes:
                break
        return b"".join(chunks)[: self._max_bytes]

    async def aclose(self) -> None:
        """Close pooled connections."""
        await self._client.aclose()

    async def __aenter__(self) -> OutboundClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()


def _check_url(url: str) -> None:
    parts = urlsplit(url)
    if parts.scheme not in {"http", "https"}:
        raise Permanent(f"only http and https URLs are called, not {parts.scheme or 'none'!r}")
    if not parts.hostname:
        raise Permanent(f"URL has no host: {describe_url(url)}")


def error_for_status(
    response: OutboundResponse, what: str, *, now_ms: int, **details: Any
) -> ProviderError | None:
    """The error a non-2xx response stands for (None for 2xx): 408/425/429/5xx `Retryable`
    with the Retry-After delay, anything else `Permanent`."""
    status = response.status
    if 200 <= status < 300:
        return None
    message = f"{what}: HTTP {status}"
    if status in {408, 425, 429} or status >= 500:
        return Retryable(
            message,
            retry_after=retry_after_seconds(response.headers, now_ms),
            status=status,
            **details,
        )
    return Permanent(message, status=status, **details)
