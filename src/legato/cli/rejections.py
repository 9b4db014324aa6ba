"""`legato rejections ...`: inspect the messages refused at ingestion, with their reasons."""

from __future__ import annotations

import typer
from rich.table import Table

from legato.cli.context import console, current_workspace, opened, print_json, run

app = typer.Typer(
    help="Messages refused at ingestion (kept with the reason: nothing is silently dropped).",
    no_args_is_help=True,
)


@app.command("list")
def list_(
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
    limit: int = typer.Option(50, "--limit", min=1, max=1000, help="How many, newest first."),
) -> None:
    """List the newest rejected messages of the workspace."""

    async def work() -> None:
        async with opened() as legato:
            workspace = await current_workspace(legato)
            page = await legato.rejections.list(workspace.id, limit=limit)
        if as_json:
            print_json({"rejections": page.items, "next": page.next})
            return
        table = Table("id", "received", "index", "field", "reason", "message")
        for item in page.items:
            table.add_row(
                item["id"],
                str(item["received_ms"]),
                "" if item["index"] is None else str(item["index"]),
                item["field"] or "",
                item["reason"],
                item["payload"][:60],
            )
        console.print(table)
        if not page.items:
            console.print("No rejected messages.")

    run(work)
