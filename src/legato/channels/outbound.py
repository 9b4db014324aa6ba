"""Outbound HTTP to URLs that users, browsers or channel settings name (webhooks, push
endpoints, vendor APIs), guarded against server-side request forgery.

Every TCP connection goes to an address this module resolved and checked itself: loopback,
private, link-local, reserved, multicast and other non-global addresses are refused unless
`allow_private` (`Settings.allow_private_webhooks`). The check lives where connections are
opened, so redirect targets, fresh pooled connections and DNS answers that change between
requests are all checked, and the socket is opened to the very address that was checked (no DNS
rebinding). The HTTP/1.1 itself is this module's (asyncio protocol, httptools parser): a general
client cost several times more CPU per call, and a provider call is most of a send.
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
import re
import socket
import ssl
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any, cast
from urllib.parse import quote, urlencode, urljoin, urlsplit

import httptools
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
        # Any refused answer refuses the host: mixing one public and one private record is a
        # classic way to slip past a guard that checks only the first.
        for address in addresses:
            self.check(host, address)
        return addresses

    def check(self, host: str, address: str) -> None:
        """Raise `Permanent` if `address` (an answer for `host`) must not be connected to."""
        if self.allow_private:
            return
        reason = address_refusal(address)
        if reason is not None and not self._allowed(address):
            raise Permanent(
                f"refused to connect to {host!r}: {address} is a {reason} address"
                " (allowed only with allow_private_webhooks)",
                host=host,
                address=address,
                refused=reason,
            )

    def _allowed(self, address: str) -> bool:
        ip = ipaddress.ip_address(address)
        return any(ip.version == net.version and ip in net for net in self.allowed_networks)


@functools.cache
def _default_tls() -> ssl.SSLContext:
    # Loading the CA bundle costs a noticeable fraction of a second; one context serves all.
    return ssl.create_default_context()


def _tls(verify: Any) -> ssl.SSLContext | None:
    """The TLS context of `verify`: True (system CAs), False (no checks), a context, or a
    CA bundle path."""
    if verify is True:
        return _default_tls()
    if isinstance(verify, ssl.SSLContext):
        return verify
    if verify is False:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        return context
    return ssl.create_default_context(cafile=str(verify))


Origin = tuple[str, str, int]
"""(scheme, host, port) of a URL: what a pooled connection serves."""

Fields = dict[str, tuple[str, str]]
"""Request headers: lower-case name → (name as given, value)."""


class _Connection(asyncio.Protocol):
    """One HTTP/1.1 connection to one origin: a request at a time, kept alive between them.

    Responses are parsed by httptools (llhttp, the parser uvicorn uses). A connection the
    server closed, or whose response was not read to its end, is never used again."""

    def __init__(self, origin: Origin, loop: asyncio.AbstractEventLoop) -> None:
        self.origin = origin
        self.loop = loop
        self.idle_since = 0.0
        self.usable = True
        self._transport: asyncio.Transport | None = None
        self._parser = httptools.HttpResponseParser(self)
        self._waiter: asyncio.Future[tuple[int, list[tuple[bytes, bytes]], bytes]] | None = None
        self._head = False
        self._cap = 0
        self._status = 0
        self._headers: list[tuple[bytes, bytes]] = []
        self._body: list[bytes] = []
        self._size = 0
        self._headers_done = False

    # -- asyncio.Protocol --------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # (uvloop's transports do not derive from asyncio's classes)
        self._transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        if self._waiter is None:
            # Nothing was asked: a server talking out of turn breaks the protocol.
            self.close()
            return
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(ConnectionError(f"malformed HTTP response: {exc}"))

    def eof_received(self) -> bool | None:
        self.usable = False
        self._finish_at_close()
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        self.usable = False
        self._finish_at_close()
        self._fail(exc or ConnectionError("the server closed the connection"))

    # -- httptools callbacks -----------------------------------------------------------------

    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers.append((name, value))

    def on_headers_complete(self) -> None:
        self._status = self._parser.get_status_code()
        if self._status < 200:
            return  # 1xx: an interim answer, the real one follows
        self._headers_done = True
        if self._head:
            # httptools cannot tell that a HEAD answer has no body: end here, close after.
            self.usable = False
            self._complete()

    def on_body(self, body: bytes) -> None:
        if self._size >= self._cap:
            return
        self._body.append(body)
        self._size += len(body)
        if self._size >= self._cap:
            # Capped: the rest is not read, so the connection cannot serve another request.
            self.usable = False
            self._complete()

    def on_message_complete(self) -> None:
        if self._status < 200:
            self._headers.clear()
            return
        if not self._parser.should_keep_alive():
            self.usable = False
        self._complete()

    # -- the client's side -------------------------------------------------------------------

    async def exchange(
        self, request: bytes, *, head: bool, cap: int
    ) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
        """Write one request and wait for its response: (status, raw headers, body)."""
        assert self._transport is not None and self._waiter is None
        self._waiter = self.loop.create_future()
        self._head, self._cap = head, cap
        self._status, self._headers, self._body, self._size = 0, [], [], 0
        self._headers_done = False
        self._transport.write(request)
        return await self._waiter

    def close(self) -> None:
        """Close the connection (idempotent)."""
        self.usable = False
        if self._transport is not None and not self.loop.is_closed():
            self._transport.close()

    def _complete(self) -> None:
        waiter, self._waiter = self._waiter, None
        if waiter is not None and not waiter.done():
            body = b"".join(self._body)[: self._cap]
            waiter.set_result((self._status, self._headers, body))
        if not self.usable:
            self.close()

    def _finish_at_close(self) -> None:
        # A response without Content-Length or chunking ends when the server closes.
        framed = any(
            name.lower() in (b"content-length", b"transfer-encoding") for name, _ in self._headers
        )
        if self._waiter is not None and self._headers_done and self._status >= 200 and not framed:
            self._complete()

    def _fail(self, exc: BaseException) -> None:
        waiter, self._waiter = self._waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_exception(exc)
        self.close()


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


#: Statuses that redirect when they carry a Location.
_REDIRECTS = frozenset({301, 302, 303, 307, 308})
#: Request headers that describe a body (dropped when a redirect turns the request into a GET).
_BODY_HEADERS = frozenset({"content-type", "content-length", "transfer-encoding"})
#: Request headers this module writes itself.
_OWN_HEADERS = frozenset({"host", "content-length", "transfer-encoding", "connection"})
#: A header name: an RFC 9110 token.
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
#: What a request target may hold unescaped: unreserved, reserved and '%' (kept as escapes).
_TARGET_SAFE = "!$%&'()*+,/:;=?@[]~"


class OutboundClient:
    """The HTTP client for outbound calls: guarded connections, total timeout, capped bodies.

    HTTP/1.1 on asyncio, responses parsed by httptools: keep-alive connections pooled per
    origin, up to `max_connections` requests at once. A provider call is most of a send, and a
    general-purpose client cost several times the CPU per call (`bench/delivery.py`'s bare loop
    on the project's machine: ~1,000 us per post with httpx, 70 to 140 us with this).
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
        keepalive_seconds: float = 5.0,
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
        self._connect_timeout = min(connect_timeout, timeout)
        self._max_redirects = max_redirects
        self._max_bytes = max_response_bytes
        self._max_connections = max_connections
        self._keepalive = keepalive_seconds
        self._user_agent = user_agent
        self._verify = verify
        self._tls_context: ssl.SSLContext | None = None
        self._clock: Clock = clock or SystemClock()
        self._idle: dict[Origin, list[_Connection]] = {}
        self._idle_count = 0
        self._slots: asyncio.Semaphore | None = None

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

        Network failures and timeouts raise `Retryable`; refused addresses, bad URLs, bad
        headers and too many redirects raise `Permanent`. Judge the status with
        `error_for_status`.
        """
        _check_url(url)
        if json is not None:
            content = orjson.dumps(json)
            headers = {"content-type": "application/json", **(headers or {})}
        elif form is not None:
            content = urlencode(form).encode()
            headers = {"content-type": "application/x-www-form-urlencoded", **(headers or {})}
        fields = _header_lines(headers or {})
        total = self._timeout if time_limit is None else time_limit
        try:
            async with asyncio.timeout(total):
                return await self._exchange(method.upper(), url, fields, content, follow_redirects)
        except TimeoutError as exc:
            raise Retryable(f"{describe_url(url)} timed out after {total:g}s", url=url) from exc
        except OSError as exc:
            raise Retryable(f"{describe_url(url)} failed: {exc!r}", url=url) from exc

    async def _exchange(
        self,
        method: str,
        url: str,
        fields: Fields,
        content: bytes | None,
        follow_redirects: bool,
    ) -> OutboundResponse:
        for _ in range(self._max_redirects + 1):
            status, raw, body = await self._send(method, url, fields, content)
            response_headers: dict[str, str] = {}
            for name, value in raw:
                key = name.decode("latin-1").lower()
                text = value.decode("latin-1")
                previous = response_headers.get(key)
                response_headers[key] = text if previous is None else f"{previous}, {text}"
            location = response_headers.get("location")
            if follow_redirects and location and status in _REDIRECTS:
                target = urljoin(url, location.strip())
                _check_url(target)
                method, fields, content = _redirected(status, method, fields, content, url, target)
                url = target
                continue
            return OutboundResponse(status=status, headers=response_headers, body=body, url=url)
        raise Permanent(f"more than {self._max_redirects} redirects from {describe_url(url)}")

    async def _send(
        self, method: str, url: str, fields: Fields, content: bytes | None
    ) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
        origin, host_header, target = _split(url)
        lines = [f"{method} {target} HTTP/1.1", f"host: {host_header}"]
        if "user-agent" not in fields:
            lines.append(f"user-agent: {self._user_agent}")
        lines += [f"{name}: {value}" for name, value in fields.values()]
        if content is not None or method in {"POST", "PUT", "PATCH"}:
            lines.append(f"content-length: {len(content or b'')}")
        request = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + (content or b"")
        if self._slots is None:
            self._slots = asyncio.Semaphore(self._max_connections)
        async with self._slots:
            connection = self._take(origin) or await self._connect(origin)
            try:
                answer = await connection.exchange(
                    request, head=method == "HEAD", cap=self._max_bytes
                )
            except BaseException:
                connection.close()  # interrupted: its state is unknown
                raise
            self._give_back(connection)
        return answer

    def _take(self, origin: Origin) -> _Connection | None:
        idle = self._idle.get(origin)
        loop = asyncio.get_running_loop()
        now = loop.time()
        while idle:
            connection = idle.pop()
            self._idle_count -= 1
            # Checked when taken: a connection the server closed while idle has seen its EOF
            # by now (it arrives as an event on the loop), so it is never written to.
            if (
                connection.usable
                and connection.loop is loop
                and now - connection.idle_since < self._keepalive
            ):
                return connection
            connection.close()
        return None

    def _give_back(self, connection: _Connection) -> None:
        if not connection.usable or self._idle_count >= self._max_connections:
            connection.close()
            return
        connection.idle_since = connection.loop.time()
        self._idle.setdefault(connection.origin, []).append(connection)
        self._idle_count += 1

    async def _connect(self, origin: Origin) -> _Connection:
        scheme, host, port = origin
        loop = asyncio.get_running_loop()
        async with asyncio.timeout(self._connect_timeout):
            if _is_ip(host):
                self.guard.check(host, host)
                addresses = [host]
            else:
                addresses = await self.guard.resolve(host, port)
            tls = None
            if scheme == "https":
                if self._tls_context is None:
                    self._tls_context = _tls(self._verify)
                tls = self._tls_context
            failure: OSError | None = None
            for address in addresses:
                try:
                    # Connected to the very address checked above (no second lookup).
                    _, connection = await loop.create_connection(
                        lambda: _Connection(origin, loop),
                        address,
                        port,
                        ssl=tls,
                        server_hostname=host if tls is not None else None,
                    )
                    return connection
                except OSError as exc:
                    failure = exc
        assert failure is not None
        raise failure

    async def aclose(self) -> None:
        """Close pooled connections."""
        idle, self._idle, self._idle_count = self._idle, {}, 0
        for connections in idle.values():
            for connection in connections:
                connection.close()

    async def __aenter__(self) -> OutboundClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


@functools.lru_cache(maxsize=1024)
def _split(url: str) -> tuple[Origin, str, str]:
    """The origin of `url`, its Host header value and its request target (escaped)."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    try:
        port = parts.port or (443 if scheme == "https" else 80)
        name = parts.hostname or ""
        host = name if _is_ip(name) else name.encode("idna").decode("ascii")
    except (ValueError, UnicodeError) as exc:
        raise Permanent(f"invalid URL {describe_url(url)}: {exc}") from exc
    shown = f"[{host}]" if ":" in host else host
    if parts.port is not None and parts.port != (443 if scheme == "https" else 80):
        shown = f"{shown}:{port}"
    target = quote(parts.path or "/", safe=_TARGET_SAFE)
    if parts.query:
        target += "?" + quote(parts.query, safe=_TARGET_SAFE)
    return (scheme, host, port), shown, target


def _header_lines(headers: Mapping[str, str]) -> Fields:
    """Request headers by lower-case name (sent as the caller spelled them), refusing what
    could split the request."""
    lines: Fields = {}
    for name, value in headers.items():
        key = name.lower()
        text = str(value)
        if not _TOKEN.fullmatch(key) or any(c in text for c in "\r\n\0") or not _latin1(text):
            raise Permanent(f"invalid request header {name!r}")
        if key in _OWN_HEADERS:
            continue
        lines[key] = (name, text)
    return lines


def _latin1(text: str) -> bool:
    try:
        text.encode("latin-1")
    except UnicodeEncodeError:
        return False
    return True


def _redirected(
    status: int,
    method: str,
    headers: Fields,
    content: bytes | None,
    source: str,
    target: str,
) -> tuple[str, Fields, bytes | None]:
    """The request a redirect asks for, as browsers make it: 303 (and 301/302 after a POST)
    becomes a body-less GET; credentials are not carried to another origin."""
    if (status == 303 and method != "HEAD") or (status in {301, 302} and method == "POST"):
        method, content = "GET", None
        headers = {k: v for k, v in headers.items() if k not in _BODY_HEADERS}
    if _split(target)[0] != _split(source)[0]:
        headers = {k: v for k, v in headers.items() if k != "authorization"}
    return method, headers, content


@functools.lru_cache(maxsize=1024)
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
