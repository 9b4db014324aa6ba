"""`legato apply`'s document registry: parsing a file, validating everything before applying
anything, the apply order, errors naming the document, kind, key, path and node."""

from __future__ import annotations

from typing import Any

import pytest

from legato.domain.journey_validation import KnownReferences
from legato.errors import InvalidInput
from legato.runtime import documents
from legato.runtime.documents import (
    ApplyContext,
    Document,
    DocumentKind,
    apply_documents,
    parse_documents,
)
from legato.runtime.journey_service import JourneyService


class Recorder:
    """A fake kind's check and apply, recording the order of calls."""

    def __init__(self, kind: str, log: list[str]) -> None:
        self.kind = kind
        self.log = log

    async def check(self, ctx: ApplyContext, doc: Document) -> Any:
        if doc.body.get("bad"):
            raise InvalidInput("bad is not allowed", path="$.bad")
        self.log.append(f"check {self.kind} {doc.key}")
        return doc.key.upper()

    async def apply(self, ctx: ApplyContext, doc: Document, value: Any) -> str:
        self.log.append(f"apply {self.kind} {doc.key} {value}")
        return "created"


@pytest.fixture
def log(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """A registry with fake Segment and Template kinds, plus the real Journey kind."""
    calls: list[str] = []
    kinds = {"Journey": documents._KINDS["Journey"]}
    monkeypatch.setattr(documents, "_KINDS", kinds)
    for kind in ("Segment", "Template", "Widget"):
        fake = Recorder(kind, calls)
        documents.register(DocumentKind(kind, check=fake.check, apply=fake.apply))
    return calls


JOURNEY = """
kind: Journey
key: welcome
trigger: {event: Signed Up}
nodes:
  - {id: gate, type: branch, condition: {segment: vip}, then: hi, else: hi}
  - {id: hi, type: message, channel: email, template: hello}
"""


class FakeJourneys:
    """The journey service's part `check` uses with --publish; saving is recorded."""

    def __init__(self, log: list[str]) -> None:
        self.log = log

    async def known_references(
        self, workspace_id: str, declared: dict[str, set[str]] | None = None
    ) -> KnownReferences:
        declared = declared or {}
        return KnownReferences(
            templates=frozenset(declared.get("templates", set())),
            segments=frozenset(declared.get("segments", set())),
        )


class Services:
    def __init__(self, log: list[str]) -> None:
        self.journeys = FakeJourneys(log)


def test_a_stream_of_documents_parses_in_order(log: list[str]) -> None:
    text = "kind: Segment\nkey: vip\n---\n" + JOURNEY + "---\n"
    parsed = parse_documents(text)
    assert [(d.index, d.kind, d.key) for d in parsed] == [
        (0, "Segment", "vip"),
        (1, "Journey", "welcome"),
    ]
    listed = parse_documents("- {kind: Segment, key: a}\n- {kind: Template, key: b}\n")
    assert [(d.kind, d.key) for d in listed] == [("Segment", "a"), ("Template", "b")]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("kind: Segment\nkey: a\n---\n- 1\n", "document 1: a document is a mapping"),
        ("key: a\n", "document 0: field required: kind"),
        ("kind: Gadget\nkey: a\n", "document 0: unknown kind 'Gadget'"),
        ("kind: Segment\n", "document 0 (Segment): field required: key"),
        ("kind: Segment\nkey: a\n---\nkind: Segment\nkey: a\n", "repeats document 0"),
        ("kind: [", "not valid YAML/JSON"),
    ],
)
def test_a_malformed_file_is_refused_naming_the_document(
    log: list[str], text: str, message: str
) -> None:
    with pytest.raises(InvalidInput, match=message.replace("(", r"\(").replace(")", r"\)")):
        parse_documents(text)


async def test_everything_is_checked_first_and_applied_in_dependency_order(
    log: list[str],
) -> None:
    text = (
        "kind: Widget\nkey: w\n---\n"
        + JOURNEY
        + "---\nkind: Template\nkey: hello\n---\nkind: Segment\nkey: vip\n"
    )
    applied = await apply_documents(
        parse_documents(text), workspace_id="ws", services=Services(log), dry_run=True
    )
    assert [(a.kind, a.key, a.outcome) for a in applied] == [
        ("Template", "hello", "valid"),
        ("Segment", "vip", "valid"),
        ("Journey", "welcome", "valid"),
        ("Widget", "w", "valid"),  # unlisted kinds come last
    ]
    assert log == ["check Widget w", "check Template hello", "check Segment vip"]


async def test_one_invalid_document_applies_none_and_is_named(log: list[str]) -> None:
    text = "kind: Segment\nkey: vip\n---\nkind: Template\nkey: t\nbad: true\n---\n" + JOURNEY
    with pytest.raises(InvalidInput) as caught:
        await apply_documents(parse_documents(text), workspace_id="ws", services=Services(log))
    error = caught.value
    assert error.message == "document 1 (Template 't'): bad is not allowed"
    assert (error.details["document"], error.details["kind"], error.details["key"]) == (
        1,
        "Template",
        "t",
    )
    assert error.details["path"] == "$.bad"
    assert not [entry for entry in log if entry.startswith("apply")]


async def test_a_journey_is_checked_against_what_the_file_declares(log: list[str]) -> None:
    broken = JOURNEY.replace("then: hi", "then: nowhere")
    with pytest.raises(InvalidInput) as caught:
        await apply_documents(parse_documents(broken), workspace_id="ws", services=Services(log))
    assert caught.value.details["node"] == "gate"
    assert caught.value.details["path"] == "$.nodes[0].then"
    assert caught.value.message.startswith("document 0 (Journey 'welcome'): node 'gate'")
    # With --publish, references count: the segment is missing, then declared in the file.
    with pytest.raises(InvalidInput, match="segment 'vip' does not exist"):
        await apply_documents(
            parse_documents(JOURNEY + "---\nkind: Template\nkey: hello\n"),
            workspace_id="ws",
            services=Services(log),
            options={"publish": True},
            dry_run=True,
        )
    applied = await apply_documents(
        parse_documents(JOURNEY + "---\nkind: Template\nkey: hello\n---\nkind: Segment\nkey: vip"),
        workspace_id="ws",
        services=Services(log),
        options={"publish": True},
        dry_run=True,
    )
    assert [a.kind for a in applied] == ["Template", "Segment", "Journey"]


def test_the_journey_kind_is_registered_by_the_journey_service_module() -> None:
    assert JourneyService.__module__ == "legato.runtime.journey_service"
    assert "Journey" in documents.registered()
