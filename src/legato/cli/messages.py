"""`legato messages ...`, `legato suppressions ...` and `legato consent export`: deliveries and
their failures, replaying dead letters, the suppression list, consent evidence.

They work on the database directly, so they act on a running `legato serve` too (its delivery
worker picks replayed messages up within a second).
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Annotated

import orjson
import typer
from rich.table import Table

from legato.cli.context import console, current_workspace, opened, print_json, run
from legato.errors import InvalidInput

if TYPE_CHECKING:  # the store loads SQLAlchemy: not at CLI start-up
    from legato.store.delivery import DeliveryRow

app = typer.Typer(
    help="Messages: deliveries, failures, dead letters, replay.", no_args_is_help=True
)
suppressions = typer.Typer(help="Addresses that must never be sent to.", no_args_is_help=True)
consent = typer.Typer(help="Consent records (evidence).", no_args_is_help=True)


def _table(rows: list[DeliveryRow]) -> Table:
    table = Table("id", "status", "channel", "template", "journey", "attempts", "reason", "detail")
    for row in rows:
        table.add_row(
            row.id,
            row.status,
            row.channel,
            row.template,
            row.journey_key or "",
            str(row.attempts),
            row.reason or "",
            (row.detail or "")[:60],
        )
    return table


def _listing(statuses: list[str], limit: int, as_json: bool, **filters: str | None) -> None:
    async def work() -> None:
        async with opened() as legato:
            workspace = await current_workspace(legato)
            rows, following = await legato.messages.search(
                workspace.id, statuses=statuses, limit=limit, **filters
            )
        if as_json:
            print_json({"messages": [row.public() for row in rows], "next": following})
            return
        console.print(_table(rows))
        if not rows:
            console.print("No messages.")

    run(work)


@app.command("list")
def list_(
    status: Annotated[
        list[str] | None, typer.Option("--status", "-s", help="Only these statuses.")
    ] = None,
    channel: str | None = typer.Option(None, "--channel", help="Only this channel."),
    profile: str | None = typer.Option(None, "--profile", help="Only this profile id."),
    journey: str | None = typer.Option(None, "--journey", help="Only this journey."),
    limit: int = typer.Option(50, "--limit", min=1, max=1000, help="How many, newest first."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """List messages, newest first."""
    _listing(status or [], limit, as_json, channel=channel, profile_id=profile, journey_key=journey)


@app.command("failures")
def failures(
    limit: int = typer.Option(50, "--limit", min=1, max=1000),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Messages that failed permanently."""
    _listing(["failed"], limit, as_json)


@app.command("dead-letters")
def dead_letters(
    limit: int = typer.Option(50, "--limit", min=1, max=1000),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Dead letters: retries exhausted, or interrupted while the provider had them."""
    _listing(["dead"], limit, as_json)


@app.command("show")
def show(message_id: str = typer.Argument(..., help="The message id.")) -> None:
    """One message, as JSON."""

    async def work() -> None:
        async with opened() as legato:
            workspace = await current_workspace(legato)
            row = await legato.messages.get(workspace.id, message_id)
        print_json(row.public())

    run(work)


@app.command("replay")
def replay(
    ids: Annotated[list[str] | None, typer.Argument(help="Message ids (failed or dead).")] = None,
    every: bool = typer.Option(False, "--all", help="Every failed message and dead letter."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Queue failed messages and dead letters again."""
    if not ids and not every:
        raise InvalidInput("give message ids, or --all", field="ids")

    async def work() -> None:
        async with opened() as legato:
            workspace = await current_workspace(legato)
            moved = await legato.messages.replay(workspace.id, None if every else ids)
        if as_json:
            print_json({"replayed": moved})
        else:
            console.print(f"{len(moved)} message(s) queued again.")

    run(work)


@app.command("send")
def send(
    template: str = typer.Option(..., "--template", "-t", help="Template key."),
    to: str = typer.Option(..., "--to", help="profile_id=..., user_id=..., email=... or phone=..."),
    data: str = typer.Option("{}", "--data", help="JSON object given to the template as data."),
    key: str | None = typer.Option(None, "--idempotency-key", help="Sends once per key."),
) -> None:
    """Queue a transactional message (the same as POST /api/v1/messages)."""
    field, sep, value = to.partition("=")
    if not sep:
        raise InvalidInput("--to is FIELD=VALUE, e.g. email=ann@example.com", field="to")
    try:
        values = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise InvalidInput(f"--data is not JSON: {exc}", field="data") from exc

    async def work() -> None:
        async with opened() as legato:
            workspace = await current_workspace(legato)
            row, created = await legato.messages.send(
                workspace.id,
                template=template,
                to={field: value},
                data=values,
                idempotency_key=key,
            )
        print_json({"id": row.id, "status": row.status, "created": created})

    run(work)


@suppressions.command("list")
def list_suppressions(
    channel: str | None = typer.Option(None, "--channel", help="Only this channel."),
    limit: int = typer.Option(100, "--limit", min=1, max=1000),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """List suppressed addresses."""

    async def work() -> None:
        async with opened() as legato:
            workspace = await current_workspace(legato)
            items = await legato.consent_store.list_suppressions(
                workspace.id, channel=channel, limit=limit
            )
        if as_json:
            print_json({"suppressions": items})
            return
        table = Table("channel", "address", "reason", "note", "at_ms")
        for item in items:
            table.add_row(
                item["channel"], item["address"], item["reason"], item["note"], str(item["at_ms"])
            )
        console.print(table)
        if not items:
            console.print("No suppressed addresses.")

    run(work)


@suppressions.command("add")
def add_suppression(
    channel: str = typer.Argument(..., help="Channel kind: email, sms, whatsapp, push..."),
    address: str = typer.Argument(..., help="The address, number or token."),
    reason: str = typer.Option("manual", "--reason", help="manual, hard_bounce, complaint..."),
    note: str = typer.Option("", "--note", help="Why, for whoever reads the list later."),
) -> None:
    """Suppress an address: nothing is sent to it any more, whatever consent says."""

    async def work() -> None:
        async with opened() as legato:
            workspace = await current_workspace(legato)
            added = await legato.consent.suppress(
                workspace.id, channel, address, reason=reason, note=note
            )
        console.print("suppressed" if added else "already suppressed")

    run(work)


@suppressions.command("remove")
def remove_suppression(
    channel: str = typer.Argument(..., help="Channel kind."),
    address: str = typer.Argument(..., help="The address."),
) -> None:
    """Take an address off the suppression list."""

    async def work() -> None:
        async with opened() as legato:
            workspace = await current_workspace(legato)
            await legato.consent.unsuppress(workspace.id, channel, address)
        console.print("removed")

    run(work)


@consent.command("export")
def export(
    fmt: str = typer.Option("csv", "--format", help="csv or json."),
    profile: str | None = typer.Option(None, "--profile", help="Only this profile id."),
) -> None:
    """Write every consent record (evidence) to stdout, oldest first."""

    async def work() -> None:
        async with opened() as legato:
            workspace = await current_workspace(legato)
            async for chunk in legato.consent.export(workspace.id, fmt=fmt, profile_id=profile):
                sys.stdout.buffer.write(chunk)
        sys.stdout.buffer.flush()

    run(work)
