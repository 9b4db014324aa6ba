"""`legato journeys ...` and `legato simulate`: journeys from the command line.

Lifecycle (publish, pause, resume, archive), listing and per-node stats; `simulate` replays
history (the workspace's log, or a JSON-lines file) through a journey document on a simulated
clock and prints who would reach each node and how many messages each channel would send a
day. Nothing here composes SQL or decides anything: the journey service does.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import orjson
import typer
from rich.table import Table

from legato.cli.context import console, current_workspace, opened, print_json, run
from legato.domain.durations import parse_duration_ms
from legato.errors import InvalidInput

if TYPE_CHECKING:  # runtime modules load when a command runs, not at CLI start-up
    from legato.domain.journeys import Journey
    from legato.runtime.simulation import SimulationReport

app = typer.Typer(help="Journeys: publish, pause, resume, archive, stats.")

JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON.")]


def _lifecycle(action: str, key: str, as_json: bool) -> None:
    async def work() -> dict[str, Any]:
        async with opened() as legato:
            workspace = await current_workspace(legato)
            result: dict[str, Any] = await getattr(legato.journeys, action)(workspace.id, key)
            return result

    result = run(work)
    if as_json:
        print_json(result)
    else:
        console.print(
            f"journey [bold]{key}[/] is {result['status']} (version {result['version']})",
            highlight=False,
        )


@app.command("publish")
def publish(key: str, as_json: JsonFlag = False) -> None:
    """Publish the journey's draft as a new immutable version and accept entries."""
    _lifecycle("publish", key, as_json)


@app.command("pause")
def pause(key: str, as_json: JsonFlag = False) -> None:
    """Stop entries (runs in flight carry on)."""
    _lifecycle("pause", key, as_json)


@app.command("resume")
def resume(key: str, as_json: JsonFlag = False) -> None:
    """Accept entries again."""
    _lifecycle("resume", key, as_json)


@app.command("archive")
def archive(key: str, as_json: JsonFlag = False) -> None:
    """Stop entries for good."""
    _lifecycle("archive", key, as_json)


@app.command("list")
def list_(as_json: JsonFlag = False) -> None:
    """Every journey of the workspace."""

    async def work() -> list[dict[str, Any]]:
        async with opened() as legato:
            workspace = await current_workspace(legato)
            return await legato.journeys.list(workspace.id)

    found = run(work)
    if as_json:
        print_json(found)
        return
    table = Table("key", "name", "status", "version")
    for row in found:
        table.add_row(row["key"], row["name"] or "", row["status"], str(row["version"] or "-"))
    console.print(table)


@app.command("stats")
def stats(
    key: str,
    version: Annotated[int | None, typer.Option("--version", help="One version only.")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Per node: entered, exited, converted and waiting now."""

    async def work() -> dict[str, Any]:
        async with opened() as legato:
            workspace = await current_workspace(legato)
            return await legato.journeys.stats(workspace.id, key, version)

    result = run(work)
    if as_json:
        print_json(result)
        return
    totals = result["journey"]
    console.print(
        f"journey [bold]{key}[/] ({result['status']}, version {result['version']}): "
        f"{totals['entered']} entered, {totals['converted']} converted, "
        f"{totals['exited']} exited, {totals['waiting']} waiting",
        highlight=False,
    )
    table = Table("node", "entered", "exited", "converted", "waiting", "arms")
    for node_id, counts in result["nodes"].items():
        arms = ", ".join(f"{arm}: {n}" for arm, n in sorted(counts.get("arms", {}).items()))
        table.add_row(
            node_id,
            str(counts["entered"]),
            str(counts["exited"]),
            str(counts["converted"]),
            str(counts["waiting"]),
            arms,
        )
    console.print(table)
    if totals["refused"]:
        console.print(
            "refused: " + ", ".join(f"{r}: {n}" for r, n in sorted(totals["refused"].items())),
            highlight=False,
        )


def _journey_file(path: Path) -> Journey:
    from legato.domain.journeys import parse_journey

    try:
        return parse_journey(path.read_text())
    except OSError as exc:
        raise InvalidInput(f"cannot read {path}: {exc.strerror}", path=str(path)) from exc


def simulate_command(
    file: Annotated[Path, typer.Option("--file", "-f", help="The journey document (YAML/JSON).")],
    since: Annotated[
        str, typer.Option("--since", help="Replay the workspace's log for this long, up to now.")
    ] = "30d",
    events: Annotated[
        Path | None,
        typer.Option("--events", help="Replay this JSON-lines file of messages instead."),
    ] = None,
    until: Annotated[
        str | None,
        typer.Option("--until", help="With --events: run on this long after the last event."),
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Replay history through a journey on a simulated clock (sending nothing): how many
    people reach each node, how many messages each channel sends per day."""
    from legato.runtime.simulation import events_from_lines, simulate

    journey = _journey_file(file)
    if events is not None:
        try:
            with events.open() as lines:
                replayed = list(events_from_lines(lines))
        except OSError as exc:
            raise InvalidInput(f"cannot read {events}: {exc.strerror}", path=str(events)) from exc
        if not replayed:
            raise InvalidInput(f"no events in {events}", path=str(events))
        times = [event.fact.timestamp_ms for event in replayed]
        extra = parse_duration_ms(until) if until else 0
        report = simulate(journey, replayed, start_ms=min(times), end_ms=max(times) + extra)
    else:
        window = parse_duration_ms(since)

        async def work() -> SimulationReport:
            async with opened() as legato:
                workspace = await current_workspace(legato)
                return await legato.simulations.from_log(workspace.id, journey, window)

        report = run(work)
    if as_json:
        print_json(orjson.loads(orjson.dumps(report.to_dict())))
        return
    show_report(journey, report)


def show_report(journey: Journey, report: SimulationReport) -> None:
    """A simulation report as tables."""
    refused = sum(report.refused.values())
    console.print(
        f"simulated [bold]{journey.key}[/] on {report.events} events of {report.people} people: "
        f"{report.entered} entered ({refused} refused), {report.converted} converted",
        highlight=False,
    )
    nodes = Table("node", "type", "people", "visits", "waiting at the end")
    types = {node.id: node.type for node in journey.nodes}
    for node_id, counts in report.nodes.items():
        nodes.add_row(
            node_id,
            types.get(node_id, ""),
            str(counts["people"]),
            str(counts["visits"]),
            str(counts["waiting"]),
        )
    console.print(nodes)
    days = sorted({day for per_day in report.messages.values() for day in per_day})
    if not days:
        console.print("no messages would be sent")
        return
    channels = sorted(report.messages)
    messages = Table("day", *channels, "total", title="messages per channel per day")
    for day in days:
        sent = [report.messages[channel].get(day, 0) for channel in channels]
        messages.add_row(day, *map(str, sent), str(sum(sent)))
    console.print(messages)
