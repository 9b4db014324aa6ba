"""`legato worker`: the background workers without the HTTP API, to scale out on PostgreSQL."""

from __future__ import annotations

import asyncio
import signal

from legato.cli.context import console_err, settings, settle_gc


def worker() -> None:
    """Run only the workers (pipeline...): start several on PostgreSQL to share the load.

    Workers split the log's partitions between them; one that dies has its partitions taken
    over when its lease lapses. On SQLite only one engine process may run (`serve` or `worker`).
    """
    from legato.app import Legato  # the application: only when the command runs
    from legato.observability import configure_logging

    config = settings(run_workers=True)
    configure_logging(config.log_level)
    legato = Legato(config)
    legato.claim_engine()
    legato.migrate()
    settle_gc()

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await legato.start()
        console_err.print(
            f"Legato workers running on {config.database_url.split('@')[-1]} "
            f"({', '.join(w.name for w in legato.workers)}); Ctrl-C stops them",
            highlight=False,
        )
        try:
            await stop.wait()
        finally:
            await legato.stop()

    asyncio.run(main())
