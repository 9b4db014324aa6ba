"""The `legato` command line. Each concept's commands live in a module of this package.

Bad input ends with a readable message on stderr and a non-zero exit, never a traceback.
"""

from __future__ import annotations

import sys

import typer

from legato.cli import journeys, messages, profiles, rejections, segments, workspaces
from legato.cli.apply import apply
from legato.cli.context import console_err, state
from legato.cli.demo import demo
from legato.cli.serve import migrate, serve
from legato.cli.worker import worker
from legato.errors import InvalidInput, LegatoError

app = typer.Typer(
    name="legato",
    help="Legato: customer journey orchestration. Ingest, unify, decide, act, measure.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


@app.callback()
def _options(
    database_url: str | None = typer.Option(
        None,
        "--database-url",
        envvar="LEGATO_DATABASE_URL",
        help="Where state lives (default: sqlite:///legato.db in this directory).",
    ),
    workspace: str | None = typer.Option(
        None,
        "--workspace",
        "-w",
        envvar="LEGATO_WORKSPACE",
        help="Workspace name or id (needed only when there are several).",
    ),
) -> None:
    state.database_url = database_url
    state.workspace = workspace


app.command()(serve)
app.command()(migrate)
app.command()(demo)
app.add_typer(workspaces.app, name="workspace")
app.add_typer(rejections.app, name="rejections")
app.command()(worker)
app.add_typer(profiles.app, name="profiles")
app.add_typer(segments.app, name="segments")
app.command()(apply)
app.add_typer(journeys.app, name="journeys")
app.command("simulate")(journeys.simulate_command)
app.add_typer(messages.app, name="messages")
app.add_typer(messages.suppressions, name="suppressions")
app.add_typer(messages.consent, name="consent")


def main() -> None:
    """Entry point of the `legato` console script."""
    try:
        app(standalone_mode=False)
    except LegatoError as exc:
        console_err.print(f"[bold red]error:[/] {exc.message}", highlight=False)
        for key, value in exc.details.items():
            console_err.print(f"  {key}: {value}", highlight=False)
        sys.exit(2 if isinstance(exc, InvalidInput) else 1)
    except (typer.Abort, KeyboardInterrupt):
        console_err.print("aborted")
        sys.exit(130)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except typer.TyperException as exc:
        # Usage errors (missing argument, unknown command) know how to show themselves.
        show = getattr(exc, "show", None)
        if callable(show):
            show()
        else:
            console_err.print(f"[bold red]error:[/] {exc}", highlight=False)
        sys.exit(int(getattr(exc, "exit_code", 2)))
