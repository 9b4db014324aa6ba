"""What every command shares: global options, consoles, and opening a Legato on the database.

Imports here stay light (typer, rich, settings): `legato --help` and usage errors must not pay
for the application (FastAPI, SQLAlchemy, every runtime module), which `opened()` imports only
when a command needs the database.
"""

from __future__ import annotations

import asyncio
import gc
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

import orjson
from rich.console import Console

from legato.errors import InvalidInput, NotFound
from legato.settings import Settings

if TYPE_CHECKING:
    from legato.app import Legato
    from legato.store.workspaces import Workspace

T = TypeVar("T")

console = Console()
console_err = Console(stderr=True)


@dataclass
class GlobalOptions:
    """Options given before the command name."""

    database_url: str | None = None
    workspace: str | None = None


state = GlobalOptions()


def settings(**overrides: Any) -> Settings:
    """Settings from the environment, the global options, then `overrides`."""
    return Settings.from_env(database_url=state.database_url, **overrides)


@asynccontextmanager
async def opened(**overrides: Any) -> AsyncIterator[Legato]:
    """A migrated Legato on the configured database, without workers."""
    from legato.app import Legato  # the whole application: only when a command needs it

    legato = Legato(settings(run_workers=False, **overrides))
    await asyncio.to_thread(legato.migrate)
    try:
        yield legato
    finally:
        await legato.db.dispose()


async def current_workspace(legato: Legato) -> Workspace:
    """The workspace named by --workspace, or the only one there is."""
    if state.workspace:
        return await legato.workspaces.get(state.workspace)
    spaces = await legato.workspaces.list()
    if not spaces:
        raise NotFound("no workspace yet: create one with `legato workspace create NAME`")
    if len(spaces) > 1:
        names = ", ".join(ws.name for ws in spaces)
        raise InvalidInput(f"several workspaces ({names}): choose one with --workspace")
    return spaces[0]


def settle_gc() -> None:
    """For a process that now runs for long: freeze what start-up built out of the cyclic GC's
    reach and collect less often.

    Everything built so far lives as long as the process; without this the collector rescans
    the ~100k objects of the app many times a second (one ingest request allocates ~1,000
    containers, the pipeline several per event). Measured: `orjson.loads` of a 20-event batch
    ~350 → ~90 µs CPU in `legato serve`; about a quarter of a timer batch's CPU; 15-25% of the
    pipeline's with 100 segments.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(10_000, 50, 100)


def run(work: Callable[[], Awaitable[T]]) -> T:
    """Run a command's async body."""
    return asyncio.run(work())  # type: ignore[arg-type]


def print_json(value: Any) -> None:
    """Machine-readable output on stdout (no colours, no wrapping)."""
    print(orjson.dumps(value, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS).decode())
