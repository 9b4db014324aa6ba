"""`legato apply -f FILE`: save the documents of YAML/JSON files (journeys, segments...).

Every document is validated before any is applied; a bad one names its index, kind, key and
the path inside it. Kinds are applied in dependency order (see `legato.runtime.documents`).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from legato.cli.context import console, current_workspace, opened, print_json, run
from legato.cli.segments import backfill_progress
from legato.errors import InvalidInput

if TYPE_CHECKING:  # runtime modules load when a command runs, not at CLI start-up
    from legato.runtime.documents import Applied, Document


def read_documents(files: list[Path]) -> list[Document]:
    """The documents of the files, in order ('-' reads standard input)."""
    import legato.app  # noqa: F401 - the composition root imports (registers) every kind
    from legato.runtime.documents import Document, parse_documents

    documents: list[Document] = []
    for path in files:
        if str(path) == "-":
            text = sys.stdin.read()
        else:
            try:
                text = path.read_text()
            except OSError as exc:
                raise InvalidInput(f"cannot read {path}: {exc.strerror}", path=str(path)) from exc
        for doc in parse_documents(text):
            documents.append(Document(len(documents), doc.kind, doc.key, doc.body))
    if not documents:
        raise InvalidInput("no documents in " + ", ".join(map(str, files)), path="$")
    return documents


def apply(
    files: Annotated[
        list[Path],
        typer.Option(
            "--file", "-f", help="A YAML/JSON file of documents ('-' reads stdin); repeatable."
        ),
    ],
    publish: bool = typer.Option(False, "--publish", help="Publish journeys once saved."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Validate every document, save none."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Validate every document of the files, then apply them all (or none if one is bad)."""
    documents = read_documents(files)

    from legato.runtime.documents import apply_documents

    async def work() -> list[Applied]:
        async with opened() as legato:
            workspace = await current_workspace(legato)
            with backfill_progress() as progress:  # segments and computed traits backfill
                return await apply_documents(
                    documents,
                    workspace_id=workspace.id,
                    services=legato,
                    options={"publish": publish, "progress": progress},
                    dry_run=dry_run,
                )

    results = run(work)
    if as_json:
        print_json([_row(result) for result in results])
        return
    table = Table("#", "kind", "key", "outcome")
    for result in results:
        table.add_row(str(result.index), result.kind, result.key, result.outcome)
    console.print(table)


def _row(result: Applied) -> dict[str, object]:
    return {
        "index": result.index,
        "kind": result.kind,
        "key": result.key,
        "outcome": result.outcome,
    }
