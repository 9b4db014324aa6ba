"""`legato workspace ...`: create and list workspaces."""

from __future__ import annotations

import typer
from rich.table import Table

from legato.cli.context import console, opened, print_json, run

app = typer.Typer(
    help="Workspaces: each has its own keys, profiles, segments and journeys.", no_args_is_help=True
)


@app.command("create")
def create(
    name: str = typer.Argument(..., help="A unique name for the workspace."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Create a workspace with a write key (for SDKs) and an admin key (for the admin API)."""

    async def work() -> None:
        async with opened() as legato:
            created = await legato.workspaces.create(name, legato.clock.now_ms())
        body = {
            "workspace_id": created.workspace.id,
            "name": created.workspace.name,
            "write_key": created.write_key,
            "admin_key": created.admin_key,
        }
        if as_json:
            print_json(body)
            return
        console.print(f"Workspace [bold]{created.workspace.name}[/] ({created.workspace.id})")
        console.print(f"  write key: {created.write_key}  (for SDKs and the tracking API)")
        console.print(f"  admin key: {created.admin_key}  (Authorization: Bearer ...)")
        console.print("Keys are stored hashed: copy them now, they are not shown again.")

    run(work)


@app.command("list")
def list_(as_json: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """List workspaces."""

    async def work() -> None:
        async with opened() as legato:
            spaces = await legato.workspaces.list()
        if as_json:
            print_json(
                [{"id": ws.id, "name": ws.name, "created_ms": ws.created_ms} for ws in spaces]
            )
            return
        table = Table("id", "name")
        for ws in spaces:
            table.add_row(ws.id, ws.name)
        console.print(table)

    run(work)
