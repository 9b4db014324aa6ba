"""The HTTP API: the tracking API for SDKs, and the admin API (documented in OpenAPI).

Routes translate HTTP to calls on services held by the `Legato` composition root
(`request.app.state.legato`); they never compose SQL or build adapters.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from legato import __version__
from legato.api import (
    client,
    consent,
    delivery,
    errors,
    journeys,
    links,
    profile_journeys,
    profiles,
    rejections,
    segments,
    tracking,
    workspace,
)
from legato.app import Legato
from legato.ui import install as install_console


def create_api(legato: Legato, *, manage_lifecycle: bool = True) -> FastAPI:
    """The ASGI application for one Legato process.

    With `manage_lifecycle`, the app's lifespan starts and stops the workers.
    """

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        if manage_lifecycle:
            await legato.start()
        try:
            yield
        finally:
            if manage_lifecycle:
                await legato.stop()

    app = FastAPI(
        title="Legato",
        version=__version__,
        summary="Customer journey orchestration: tracking API and admin API.",
        lifespan=lifespan,
    )
    app.state.legato = legato
    errors.install(app)
    app.include_router(workspace.router)
    app.include_router(rejections.router)
    app.include_router(profiles.router)
    app.include_router(profile_journeys.router)  # a profile's runs (the console's 360° view)
    app.include_router(journeys.router)
    app.include_router(segments.router)
    for router in (delivery.router, consent.router, links.router, client.router):
        app.include_router(router)  # delivery: admin, consent pages, links, client API
    tracking.install(app, legato)  # the SDK routes, in front of FastAPI (the hot path)

    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    install_console(app)  # the web console at `/` (order-independent: a router fallback)
    return app
