"""`legato demo`: a workspace full of realistic retail data, then the console to explore it.

Creates (or reuses) the `demo` workspace, generates the dataset (`legato.demo.dataset`), ingests
it through the tracking API's ingestion service in-process, waits while the pipeline applies it,
installs the example journeys, prints the keys and the console URL, and serves like `legato
serve`. Progress goes to stderr; `--json` prints one machine-readable summary on stdout.

Loading drains a backlog of 90 days at once, so its pipeline applies bigger chunks
(`BULK_CHUNK_SIZE`: less CPU per event); the console is then served with the configured
`pipeline_chunk_size`, which keeps the write lock short for live traffic.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
)

from legato.cli.context import console_err, print_json, settings, settle_gc
from legato.cli.serve import serve

if TYPE_CHECKING:  # the application and the loader load when the command runs
    from legato.app import Legato
    from legato.demo.dataset import DemoSpec
    from legato.demo.loader import DemoKeys, IngestReport, JourneyReport
    from legato.settings import Settings

#: Events per pipeline transaction while the demo loads (at least; the setting when larger).
#: On SQLite, 2,000 instead of 500 cuts the pipeline's CPU per event by a fifth (the whole
#: demo pipeline) to a third (identity and profile stages, `bench/pipeline.py`).
BULK_CHUNK_SIZE = 2_000

#: Where the example journeys live: in the source checkout (the README's `pip install -e .`),
#: else in the working directory.
EXAMPLE_JOURNEYS = (
    Path(__file__).resolve().parents[3] / "examples" / "journeys",
    Path("examples") / "journeys",
)


def demo(
    customers: int = typer.Option(
        10_000, "--customers", help="Customers to invent (plus half as many visitors)."
    ),
    days: int = typer.Option(90, "--days", help="Days of history before now."),
    seed: int = typer.Option(7, "--seed", help="Same seed, same data."),
    host: str = typer.Option(None, "--host", envvar="LEGATO_HOST", help="Address to listen on."),
    port: int = typer.Option(None, "--port", envvar="LEGATO_PORT", help="Port to listen on."),
    no_serve: bool = typer.Option(
        False, "--no-serve", help="Load the data and exit instead of serving the console."
    ),
    journeys: str = typer.Option(
        None, "--journeys", help="Folder of journey documents to install (default: examples)."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print a JSON summary on stdout."),
) -> None:
    """Load a realistic multi-channel retail dataset into the `demo` workspace and serve it."""
    from legato.app import Legato
    from legato.demo.dataset import DemoSpec
    from legato.observability import configure_logging

    config = settings(host=host, port=port, run_workers=True)
    configure_logging(config.log_level)
    spec = DemoSpec(now_ms=0, customers=customers, days=days, seed=seed)  # validates early
    folder = (
        Path(journeys)
        if journeys
        else next((p for p in EXAMPLE_JOURNEYS if p.is_dir()), EXAMPLE_JOURNEYS[0])
    )
    legato = Legato(loading_settings(config))
    settle_gc()  # loading runs every worker for a minute, as `legato serve` would
    summary = asyncio.run(_load(legato, spec, folder))
    url = f"http://{config.host}:{config.port}/"
    summary["console_url"] = url
    if as_json:
        print_json(summary)
    _print_summary(summary)
    if not no_serve:
        serve(host=host, port=port, workers=True)


def loading_settings(config: Settings) -> Settings:
    """The settings of the process that loads the demo: the pipeline drains in bulk chunks."""
    return config.with_(pipeline_chunk_size=max(config.pipeline_chunk_size, BULK_CHUNK_SIZE))


async def _load(legato: Legato, spec: DemoSpec, journeys_dir: Path) -> dict[str, Any]:
    from legato.demo.dataset import DemoSpec
    from legato.demo.loader import (
        DEMO_WORKSPACE,
        go_live,
        install_journeys,
        log_head,
        open_demo_workspace,
    )

    legato.claim_engine()
    try:
        await asyncio.to_thread(legato.migrate)
        keys = await open_demo_workspace(legato, DEMO_WORKSPACE)
        spec = DemoSpec(legato.clock.now_ms(), spec.customers, spec.days, spec.seed)
        start_seq = await log_head(legato)
        ingested = await _ingest(legato, keys, spec)
        # The workers start once the log holds everything: on one process the pipeline and the
        # generator would share one interpreter lock, and ingestion would be slower for it.
        await legato.start()
        pipeline_seconds = await _wait_for_pipeline(legato, start_seq)
        # What the journeys read exists before they are published; the live moment comes after.
        await _prepare_audience(legato, keys.workspace_id)
        journeys = await install_journeys(legato, keys.workspace_id, journeys_dir)
        live = await go_live(legato, keys.workspace_id, spec, journeys.published)
    finally:
        await legato.stop()
    summary = _summary(keys, spec, ingested, pipeline_seconds, journeys)
    summary["live_messages"] = live.messages
    summary["lapsed_customers"] = live.lapsed_entered
    summary["journey_entries"] = live.entries
    return summary


async def _ingest(legato: Legato, keys: DemoKeys, spec: DemoSpec) -> IngestReport:
    from legato.demo.dataset import estimated_messages
    from legato.demo.loader import ingest_dataset

    estimate = estimated_messages(spec.customers, spec.days)
    with _progress() as progress:
        task = progress.add_task("Generating and ingesting events", total=estimate)

        def advance(accepted: int) -> None:
            progress.update(task, completed=accepted, total=max(estimate, accepted))

        report = await ingest_dataset(legato, keys.workspace_id, spec, on_progress=advance)
        progress.update(task, completed=report.messages, total=report.messages)
    console_err.print(
        f"Ingested {report.messages:,} events in {report.seconds:.1f} s "
        f"({report.messages / max(report.seconds, 1e-9):,.0f}/s)",
        highlight=False,
    )
    if report.rejected:
        console_err.print(
            f"[yellow]{report.rejected} messages were rejected[/] (first: "
            f"{report.first_rejection}); see `legato rejections list`",
            highlight=False,
        )
    return report


async def _wait_for_pipeline(legato: Legato, start_seq: int) -> float:
    from legato.demo.loader import wait_for_pipeline

    with _progress(counted=False) as progress:
        task = progress.add_task("Building profiles (pipeline)", total=100)

        def advance(fraction: float) -> None:
            progress.update(task, completed=round(fraction * 100, 1))

        seconds = await wait_for_pipeline(legato, start_seq, on_progress=advance)
    console_err.print(f"Pipeline caught up in {seconds:.1f} s more", highlight=False)
    return seconds


async def _prepare_audience(legato: Legato, workspace_id: str) -> None:
    from legato.demo.loader import prepare_audience

    with _progress() as progress:
        tasks: dict[str, TaskID] = {}

        def advance(key: str, done: int, total: int) -> None:
            if key not in tasks:
                if not total:
                    return  # nothing to compute (no such events yet): no empty bar
                tasks[key] = progress.add_task(f"Computing {key} over the history", total=total)
            progress.update(tasks[key], completed=done, total=max(total, done))

        await prepare_audience(legato, workspace_id, progress=advance)


@contextlib.contextmanager
def _progress(counted: bool = True) -> Iterator[Progress]:
    columns = [TextColumn("[bold]{task.description}"), BarColumn(), TaskProgressColumn()]
    if counted:
        columns.append(MofNCompleteColumn())
    columns.append(TimeElapsedColumn())
    with Progress(*columns, console=console_err, transient=False) as progress:
        yield progress


def _summary(
    keys: DemoKeys,
    spec: DemoSpec,
    ingested: IngestReport,
    pipeline_seconds: float,
    journeys: JourneyReport,
) -> dict[str, Any]:
    return {
        "workspace_id": keys.workspace_id,
        "workspace": keys.name,
        "workspace_created": keys.created,
        "write_key": keys.write_key,
        "admin_key": keys.admin_key,
        "customers": spec.customers,
        "days": spec.days,
        "seed": spec.seed,
        "messages": ingested.messages,
        "rejected": ingested.rejected,
        "ingest_seconds": round(ingested.seconds, 2),
        "pipeline_seconds": round(pipeline_seconds, 2),
        "journeys": list(journeys.published),
        "journeys_unpublished": {key: reason for key, reason in journeys.unpublished},
        "journeys_note": journeys.note,
    }


def _print_summary(summary: dict[str, Any]) -> None:
    if summary["journeys_note"]:
        console_err.print(f"Journeys: {summary['journeys_note']}", highlight=False)
    if summary["journeys"]:
        console_err.print(f"Journeys published: {', '.join(summary['journeys'])}", highlight=False)
        entries = ", ".join(f"{k} {n}" for k, n in summary.get("journey_entries", {}).items())
        console_err.print(f"People in them after the live moment: {entries}", highlight=False)
    for key, reason in summary["journeys_unpublished"].items():
        console_err.print(f"Journey {key} kept as a draft: {reason}", highlight=False)
    state = "created" if summary["workspace_created"] else "reused"
    console_err.print(
        f"\nWorkspace [bold]{summary['workspace']}[/] ({state}, {summary['workspace_id']})\n"
        f"  admin key: [bold]{summary['admin_key']}[/]  (log in to the console with it)\n"
        f"  write key: {summary['write_key']}  (for SDKs and the tracking API)\n"
        f"  console:   [bold]{summary['console_url']}[/]",
        highlight=False,
        soft_wrap=True,
    )
