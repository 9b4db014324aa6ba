"""`legato serve` and `legato migrate`."""

from __future__ import annotations

import typer

from legato.cli.context import console_err, settings, settle_gc


def serve(
    host: str = typer.Option(None, "--host", envvar="LEGATO_HOST", help="Address to listen on."),
    port: int = typer.Option(None, "--port", envvar="LEGATO_PORT", help="Port to listen on."),
    workers: bool = typer.Option(
        True,
        "--workers/--no-workers",
        help="Run the pipeline, timers and delivery in this process.",
    ),
) -> None:
    """Run the API and the workers in one process (migrating the database first)."""
    # The server, the API and the application are imported here, not at start-up of every
    # command: `legato --help` must not pay for them.
    import uvicorn

    from legato.api import create_api
    from legato.app import Legato
    from legato.observability import configure_logging

    config = settings(host=host, port=port, run_workers=workers)
    configure_logging(config.log_level)
    legato = Legato(config)
    legato.claim_engine()
    legato.migrate()
    app = create_api(legato)
    server = uvicorn.Server(
        uvicorn.Config(
            app,
            host=config.host,
            port=config.port,
            log_config=None,
            access_log=False,
            loop="uvloop",
            http="httptools",
            lifespan="on",
            timeout_graceful_shutdown=10,
        )
    )
    console_err.print(f"Legato listening on http://{config.host}:{config.port}", highlight=False)
    settle_gc()
    server.run()  # on the configured loop (uvloop): asyncio.run would ignore it


def migrate() -> None:
    """Apply the database migrations and exit."""
    from legato.app import Legato

    config = settings()
    Legato(config).migrate()
    console_err.print(f"database at {config.database_url} is up to date", highlight=False)
