"""`legato segments ...`: list segments, their members and counts, export, upload, delete.

Segments are created and edited with `legato apply -f FILE` (whose backfills show a progress
bar from `backfill_progress`).
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table

from legato.cli.context import console, console_err, current_workspace, opened, print_json, run
from legato.errors import InvalidInput

if TYPE_CHECKING:  # runtime modules load when a command runs, not at CLI start-up
    from legato.runtime.segment_service import Member, SegmentInfo, UploadResult
    from legato.runtime.segment_service import Progress as ProgressFn

app = typer.Typer(help="Segments: list, members, count, export, upload (static), delete.")


@contextlib.contextmanager
def backfill_progress() -> Iterator[ProgressFn]:
    """A progress callback for backfills, drawn as rich progress bars on stderr."""
    bars = Progress(
        TextColumn("backfill [bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console_err,
        transient=False,
    )
    tasks: dict[str, TaskID] = {}

    def report(key: str, done: int, total: int) -> None:
        task = tasks.get(key)
        if task is None:
            task = tasks[key] = bars.add_task(key, total=total or None)
        bars.update(task, completed=done, total=total or None)

    with bars:
        yield report


@app.command("list")
def list_(as_json: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """Every segment with its member count."""

    async def work() -> list[SegmentInfo]:
        async with opened() as legato:
            workspace = await current_workspace(legato)
            return await legato.segments.list_segments(workspace.id)

    found = run(work)
    if as_json:
        print_json([info.model_dump(mode="json") for info in found])
        return
    table = Table("key", "name", "kind", "members", "version", "state")
    for info in found:
        kind = "static" if info.static else "live"
        table.add_row(info.key, info.name, kind, str(info.members), str(info.version), info.state)
    console.print(table)


@app.command("members")
def members(
    key: str,
    # max: segment_service.MAX_PAGE, written out so that the CLI starts without the runtime
    # (tests/acceptance/test_cli_basics.py keeps the two equal).
    limit: int = typer.Option(100, "--limit", min=1, max=1000, help="Members per page."),
    cursor: str | None = typer.Option(None, "--cursor", help="`next_cursor` of a page."),
    all_pages: bool = typer.Option(False, "--all", help="Every member, page after page."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """A segment's member profiles (with their user ids)."""

    async def work() -> tuple[list[dict[str, object]], str | None]:
        async with opened() as legato:
            workspace = await current_workspace(legato)
            rows: list[Member] = []
            after = cursor
            while True:
                page = await legato.segments.members(workspace.id, key, cursor=after, limit=limit)
                rows.extend(page.members)
                after = page.next_cursor
                if not all_pages or after is None:
                    break
            out: list[dict[str, object]] = []
            for member in rows:
                profile = await legato.profiles.get(workspace.id, member.profile_id)
                users = [i.value for i in profile.identities if i.kind == "user_id"]
                out.append(
                    {
                        "profile_id": member.profile_id,
                        "user_id": users[0] if users else None,
                        "entered_ms": member.entered_ms,
                        "traits": profile.traits,
                    }
                )
            return out, after

    rows, next_cursor = run(work)
    if as_json:
        print_json({"members": rows, "next_cursor": next_cursor})
        return
    table = Table("profile", "user id", "entered_ms")
    for row in rows:
        table.add_row(str(row["profile_id"]), str(row["user_id"] or ""), str(row["entered_ms"]))
    console.print(table)
    if next_cursor:
        console.print(f"more: --cursor {next_cursor}", highlight=False)


@app.command("count")
def count(key: str, as_json: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """How many members a segment has."""

    async def work() -> int:
        async with opened() as legato:
            workspace = await current_workspace(legato)
            return await legato.segments.count(workspace.id, key)

    total = run(work)
    if as_json:
        print_json({"key": key, "count": total})
    else:
        console.print(str(total))


@app.command("export")
def export(
    key: str,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="File (default: stdout).")
    ] = None,
) -> None:
    """Members as CSV (profile_id, user_id, entered_ms)."""

    async def work() -> None:
        async with opened() as legato:
            workspace = await current_workspace(legato)
            sink = output.open("w", newline="") if output else sys.stdout
            try:
                async for chunk in legato.segments.export_csv(workspace.id, key):
                    sink.write(chunk)
            finally:
                if output:
                    sink.close()

    run(work)


@app.command("upload")
def upload(
    key: str,
    file: Path,
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Replace a static segment's members with a CSV (user_id, email or anonymous_id column)."""
    try:
        data = file.read_bytes()
    except OSError as exc:
        raise InvalidInput(f"cannot read {file}: {exc.strerror}", path=str(file)) from exc

    async def work() -> UploadResult:
        async with opened() as legato:
            workspace = await current_workspace(legato)
            return await legato.segments.upload(workspace.id, key, data)

    result = run(work)
    if as_json:
        print_json(result.model_dump(mode="json"))
    else:
        console.print(
            f"{result.members} members ({result.matched} rows matched, "
            f"{result.unmatched} matched no profile)",
            highlight=False,
        )


@app.command("delete")
def delete(key: str) -> None:
    """Delete a segment and its memberships."""

    async def work() -> None:
        async with opened() as legato:
            workspace = await current_workspace(legato)
            await legato.segments.delete_segment(workspace.id, key)

    run(work)
    console.print(f"deleted {key}", highlight=False)
