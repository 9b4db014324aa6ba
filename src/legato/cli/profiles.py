"""`legato profiles ...`: look at unified profiles from the command line."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import orjson
import typer
from rich.table import Table

from legato.cli.context import console, current_workspace, opened, print_json, run
from legato.errors import InvalidInput

if TYPE_CHECKING:
    from legato.domain.profiles import Profile, ProfilePage

app = typer.Typer(help="Unified profiles: one per person, across every identifier.")


def _show(profile: Profile) -> None:
    console.print(f"Profile [bold]{profile.id}[/]", highlight=False)
    console.print(
        f"  events: {profile.event_count}   first seen: {profile.first_seen_ms}   "
        f"last seen: {profile.last_seen_ms}",
        highlight=False,
    )
    identities = Table("kind", "value", title="identities", title_justify="left")
    for identity in profile.identities:
        identities.add_row(identity.kind, identity.value)
    console.print(identities)
    traits = Table("trait", "value", title="traits", title_justify="left")
    for key, value in sorted(profile.traits.items()):
        traits.add_row(key, orjson.dumps(value).decode())
    console.print(traits)
    for group in profile.groups:
        console.print(f"  group {group.group_id}: {orjson.dumps(group.traits).decode()}")
    if profile.merged_from:
        console.print(f"  merged from: {', '.join(profile.merged_from)}", highlight=False)


@app.command("get")
def get(
    profile_id: str | None = typer.Option(None, "--id", help="A profile id."),
    user_id: str | None = typer.Option(None, "--user-id", help="A userId."),
    anonymous_id: str | None = typer.Option(None, "--anonymous-id", help="An anonymousId."),
    email: str | None = typer.Option(None, "--email", help="An email address (any case)."),
    phone: str | None = typer.Option(None, "--phone", help="A phone number (any format)."),
    kind: str | None = typer.Option(None, "--kind", help="Another identifier kind (crm_id...)."),
    value: str | None = typer.Option(None, "--value", help="The value of --kind."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Show one profile, found by its id or by any one identifier."""
    # Imported when the command runs: the identity rules load phonenumbers.
    from legato.domain.identity import ANONYMOUS_ID, EMAIL, PHONE, USER_ID

    given = [
        (name, text)
        for name, text in (
            ("id", profile_id),
            (USER_ID, user_id),
            (ANONYMOUS_ID, anonymous_id),
            (EMAIL, email),
            (PHONE, phone),
        )
        if text is not None
    ]
    if kind is not None or value is not None:
        if kind is None or value is None:
            raise InvalidInput("give --kind and --value together", field="kind")
        given.append((kind, value))
    if len(given) != 1:
        raise InvalidInput(
            "give exactly one of --id, --user-id, --anonymous-id, --email, --phone, --kind/--value",
            field="id",
        )
    which, text = given[0]

    async def work() -> Profile:
        async with opened() as legato:
            workspace = await current_workspace(legato)
            if which == "id":
                found = await legato.profiles.get(workspace.id, text)
            else:
                found = await legato.profiles.lookup(workspace.id, which, text)
            return await legato.segments.with_segments(workspace.id, found)

    profile = run(work)
    if as_json:
        print_json(profile.model_dump(mode="json"))
    else:
        _show(profile)


@app.command("list")
def list_(
    trait: Annotated[
        list[str] | None,
        typer.Option(
            "--trait", help="KEY=VALUE: only profiles whose trait KEY reads VALUE (repeatable)."
        ),
    ] = None,
    limit: int = typer.Option(50, "--limit", help="Profiles per page (1-500)."),
    cursor: str | None = typer.Option(None, "--cursor", help="next_cursor of a previous page."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """List live profiles, oldest first, a page at a time."""
    filters: dict[str, str] = {}
    for item in trait or []:
        key, sep, text = item.partition("=")
        if not sep or not key:
            raise InvalidInput(f"--trait takes KEY=VALUE, not {item!r}", field="trait")
        filters[key] = text

    async def work() -> ProfilePage:
        async with opened() as legato:
            workspace = await current_workspace(legato)
            return await legato.profiles.find(
                workspace.id, traits=filters, limit=limit, cursor=cursor
            )

    page = run(work)
    if as_json:
        print_json(page.model_dump(mode="json"))
        return
    from legato.domain.identity import USER_ID

    table = Table("id", "user_id", "events", "last seen")
    for profile in page.profiles:
        user = next((i.value for i in profile.identities if i.kind == USER_ID), "")
        table.add_row(profile.id, user, str(profile.event_count), str(profile.last_seen_ms))
    console.print(table)
    if page.next_cursor:
        console.print(f"more: --cursor {page.next_cursor}", highlight=False)
