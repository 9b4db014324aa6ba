"""Fixtures for the channel integration tests: a recording vendor HTTP server, the outbound
client, a self-signed certificate and a real aiosmtpd server (see `channel_fakes`)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from aiosmtpd.controller import Controller

from legato.channels.outbound import OutboundClient
from tests.integration.channels.channel_fakes import (
    Certificate,
    MailSink,
    SmtpServer,
    VendorServer,
    authenticator,
    free_port,
    make_certificate,
)


@pytest.fixture
def vendor() -> Iterator[VendorServer]:
    server = VendorServer().start()
    yield server
    server.stop()


@pytest.fixture
async def http() -> AsyncIterator[OutboundClient]:
    """The outbound client as tests need it: vendors live on loopback, so private is allowed."""
    client = OutboundClient(allow_private=True, timeout=5.0)
    yield client
    await client.aclose()


@pytest.fixture(scope="session")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> Certificate:
    """A self-signed certificate for 127.0.0.1 and localhost."""
    return make_certificate(tmp_path_factory.mktemp("tls"))


@pytest.fixture
def smtp_server(request: pytest.FixtureRequest, certificate: Certificate) -> Iterator[SmtpServer]:
    """aiosmtpd on loopback; `@pytest.mark.parametrize("smtp_server", ["starttls"], indirect=True)`
    offers STARTTLS (and requires it plus AUTH), `"tls"` speaks TLS from the first byte
    (implicit TLS, as on port 465) and offers AUTH; the default is plain."""
    mode = getattr(request, "param", "plain")
    sink = MailSink()
    port = free_port()
    options: dict[str, Any] = {}
    if mode == "starttls":
        options = {
            "tls_context": certificate.server_context(),
            "require_starttls": True,
            "authenticator": authenticator,
            "auth_required": True,
        }
    elif mode == "tls":
        options = {
            "ssl_context": certificate.server_context(),
            "authenticator": authenticator,
            # aiosmtpd counts only STARTTLS as TLS for AUTH; here the whole session is TLS.
            "auth_require_tls": False,
        }
    controller = Controller(sink, hostname="127.0.0.1", port=port, **options)
    controller.start()
    yield SmtpServer(sink, port)
    controller.stop()
