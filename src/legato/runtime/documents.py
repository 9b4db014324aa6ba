"""Applying documents (`legato apply -f FILE`): a registry of kinds, validate-all-then-apply.

A file holds one or more YAML (or JSON) documents, each with a `kind` and a `key`. Every kind
registers one `DocumentKind` here — a `check` that validates a document and returns what
`apply` needs, and an `apply` that saves it — with one call from its own module:

    documents.register(DocumentKind("Segment", check=check_segment, apply=apply_segment))

`apply_documents` checks every document first and applies none if any is invalid (the error
names the document's index, kind, key and the path inside it); then it applies them in
`APPLY_ORDER` (channels and templates before the segments and journeys that name them), file
order within a kind. Documents declared in the same file count as existing when a later kind
checks its references. Each `apply` commits on its own: validation up front is what keeps a
bad file from applying half. Never composes SQL and knows nothing of any kind's rules.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import yaml

from legato.errors import InvalidInput, LegatoError

#: Kinds in the order they are applied; kinds not listed come after, in registration order.
APPLY_ORDER = ("Channel", "Topic", "Template", "ComputedTrait", "Segment", "Journey")


@dataclass(frozen=True, slots=True)
class Document:
    """One document of a file: its position (from 0), kind, key and body as written."""

    index: int
    kind: str
    key: str
    body: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class ApplyContext:
    """What a kind's `check` and `apply` get: the workspace, the composition root (`services`,
    a `legato.app.Legato`), the keys each kind declares in this file, and the options."""

    workspace_id: str
    services: Any
    declared: Mapping[str, frozenset[str]]
    options: Mapping[str, Any] = field(default_factory=dict)


CheckFn = Callable[[ApplyContext, Document], Awaitable[Any]]
ApplyFn = Callable[[ApplyContext, Document, Any], Awaitable[str]]


@dataclass(frozen=True, slots=True)
class DocumentKind:
    """How one kind is validated (`check` raises InvalidInput with `path`, returns what
    `apply` needs) and saved (`apply` returns what it did: created, updated, published v2...)."""

    kind: str
    check: CheckFn
    apply: ApplyFn


@dataclass(frozen=True, slots=True)
class Applied:
    """What applying one document did."""

    index: int
    kind: str
    key: str
    outcome: str


_KINDS: dict[str, DocumentKind] = {}


def register(kind: DocumentKind) -> None:
    """Make a kind appliable (registering a kind again replaces it)."""
    _KINDS[kind.kind] = kind


def registered() -> tuple[str, ...]:
    """The registered kinds, in apply order."""
    return tuple(sorted(_KINDS, key=_order))


def _order(kind: str) -> tuple[int, int]:
    if kind in APPLY_ORDER:
        return (APPLY_ORDER.index(kind), 0)
    return (len(APPLY_ORDER), list(_KINDS).index(kind) if kind in _KINDS else 0)


def parse_documents(text: str) -> list[Document]:
    """The documents of a YAML/JSON stream (`---` separated, or one list of documents)."""
    try:
        loaded = [doc for doc in yaml.safe_load_all(text) if doc is not None]
    except yaml.YAMLError as exc:
        raise InvalidInput(f"not valid YAML/JSON: {exc}", path="$") from exc
    if len(loaded) == 1 and isinstance(loaded[0], list):
        loaded = loaded[0]
    documents: list[Document] = []
    for index, body in enumerate(loaded):
        where = f"document {index}"
        if not isinstance(body, Mapping):
            raise InvalidInput(
                f"{where}: a document is a mapping with `kind` and `key`", document=index, path="$"
            )
        kind, key = body.get("kind"), body.get("key")
        if not isinstance(kind, str) or not kind:
            raise InvalidInput(f"{where}: field required: kind", document=index, path="$.kind")
        if kind not in _KINDS:
            known = ", ".join(registered()) or "none"
            raise InvalidInput(
                f"{where}: unknown kind {kind!r} (known: {known})",
                document=index,
                kind=kind,
                path="$.kind",
            )
        if not isinstance(key, str) or not key:
            raise InvalidInput(
                f"{where} ({kind}): field required: key", document=index, kind=kind, path="$.key"
            )
        documents.append(Document(index, kind, key, body))
    seen: dict[tuple[str, str], int] = {}
    for doc in documents:
        first = seen.setdefault((doc.kind, doc.key), doc.index)
        if first != doc.index:
            raise InvalidInput(
                f"document {doc.index} ({doc.kind} {doc.key!r}) repeats document {first}",
                document=doc.index,
                kind=doc.kind,
                key=doc.key,
                path="$.key",
            )
    return documents


async def check_documents(
    documents: Sequence[Document],
    *,
    workspace_id: str,
    services: Any,
    options: Mapping[str, Any] | None = None,
) -> tuple[ApplyContext, list[Any]]:
    """Check every document; InvalidInput naming the first bad one (all in `errors`)."""
    declared: dict[str, set[str]] = {}
    for doc in documents:
        declared.setdefault(doc.kind, set()).add(doc.key)
    ctx = ApplyContext(
        workspace_id,
        services,
        {kind: frozenset(keys) for kind, keys in declared.items()},
        dict(options or {}),
    )
    checked: list[Any] = []
    problems: list[dict[str, Any]] = []
    for doc in documents:
        try:
            checked.append(await _KINDS[doc.kind].check(ctx, doc))
        except InvalidInput as exc:
            checked.append(None)
            problems.append(_problem(doc, exc))
    if problems:
        first = problems[0]
        more = len(problems) - 1
        suffix = f" (and {more} more invalid document{'s' if more > 1 else ''})" if more else ""
        raise InvalidInput(
            first["message"] + suffix,
            **{k: v for k, v in first.items() if k != "message" and v is not None},
            errors=problems,
        )
    return ctx, checked


async def apply_documents(
    documents: Sequence[Document],
    *,
    workspace_id: str,
    services: Any,
    options: Mapping[str, Any] | None = None,
    dry_run: bool = False,
) -> list[Applied]:
    """Check all documents, then (unless `dry_run`) apply them in `APPLY_ORDER`."""
    ctx, checked = await check_documents(
        documents, workspace_id=workspace_id, services=services, options=options
    )
    ordered = sorted(
        zip(documents, checked, strict=True), key=lambda p: (_order(p[0].kind), p[0].index)
    )
    results: list[Applied] = []
    for doc, value in ordered:
        if dry_run:
            outcome = "valid"
        else:
            try:
                outcome = await _KINDS[doc.kind].apply(ctx, doc, value)
            except LegatoError as exc:
                applied = ", ".join(f"{r.kind} {r.key!r}" for r in results) or "nothing"
                exc.message = (
                    f"document {doc.index} ({doc.kind} {doc.key!r}): {exc.message} "
                    f"(already applied: {applied})"
                )
                exc.details.setdefault("document", doc.index)
                raise
        results.append(Applied(doc.index, doc.kind, doc.key, outcome))
    return results


def _problem(doc: Document, exc: InvalidInput) -> dict[str, Any]:
    path = exc.details.get("path") or exc.details.get("field")
    return {
        "message": f"document {doc.index} ({doc.kind} {doc.key!r}): {exc.message}",
        "document": doc.index,
        "kind": doc.kind,
        "key": doc.key,
        "path": path,
        "node": exc.details.get("node"),
    }


def declared(ctx: ApplyContext, kinds: Iterable[str]) -> set[str]:
    """The keys declared in this file under any of `kinds`."""
    found: set[str] = set()
    for kind in kinds:
        found |= ctx.declared.get(kind, frozenset())
    return found
