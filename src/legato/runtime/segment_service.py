"""Segments and computed traits as users manage them: save, backfill, members, uploads, export.

Saving a segment validates it (JSON path of a bad node; unknown references and cycles
refused), stores it, then backfills: membership over all history is one INSERT ... SELECT of
the SQL compiler, after which time-dependent segments get their re-checks scheduled by
evaluating the in-memory predicate page by page (and segments that read the saved one are
backfilled again, in dependency order). A first backfill logs no events (nobody *entered* a
segment that did not exist); an edit logs `Segment Entered`/`Segment Exited` for the difference.
Computed traits are backfilled by folding every past event with the incremental aggregator.
Static segments take their members from an uploaded CSV. The `Segment` and `ComputedTrait`
document kinds of `legato apply` are registered here. Never composes SQL.
"""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from legato.domain.conditions import (
    ConditionNode,
    condition_schema,
    parse_condition,
)
from legato.domain.engine import SEGMENT_ENTERED_EVENT
from legato.domain.profiles import Profile
from legato.domain.segments import (
    ComputedTrait,
    Segment,
    check_condition_references,
    dump_document,
    parse_segment,
    validate_references,
)
from legato.errors import Conflict, InvalidInput, NotFound
from legato.ports import Clock
from legato.runtime import documents
from legato.runtime.computed_trait_service import ComputedTraitUseCases
from legato.runtime.segment_views import (
    ComputedTraitInfo,
    Member,
    MemberPage,
    MembershipEvent,
    ProfileDetail,
    ProfileSegments,
    Progress,
    Saved,
    SegmentInfo,
    UploadResult,
    segment_info,
)
from legato.runtime.segments import (
    Change,
    Definitions,
    Evaluator,
    Touch,
    compile_workspace,
    logged_change,
)
from legato.store.database import Database
from legato.store.memberships import MembershipStore

#: Profiles evaluated per transaction when scheduling a backfill's re-checks.
PAGE = 500
MAX_PAGE = 1000
#: Largest CSV accepted by an upload.
MAX_UPLOAD_BYTES = 50 * 1024 * 1024
IDENTIFIER_COLUMNS = ("user_id", "email", "anonymous_id", "profile_id")


@dataclass
class SegmentService(ComputedTraitUseCases):
    """Use cases of segments and computed traits (API, CLI and `legato apply` call these)."""

    db: Database
    store: MembershipStore
    definitions: Definitions
    evaluator: Evaluator
    clock: Clock
    on_change: Callable[[], None] | None = None

    # --------------------------------------------------------------------- reading

    async def list_segments(self, workspace_id: str) -> list[SegmentInfo]:
        """Every segment of the workspace, by key, with its member count."""
        async with self.db.connect() as conn:
            rows = await self.store.definitions(conn, workspace_id, "segment")
            return [
                segment_info(row, await self.store.member_count(conn, workspace_id, row.key))
                for row in rows
            ]

    async def get_segment(self, workspace_id: str, key: str) -> SegmentInfo:
        """One segment (NotFound if missing)."""
        async with self.db.connect() as conn:
            for row in await self.store.definitions(conn, workspace_id, "segment"):
                if row.key == key:
                    return segment_info(row, await self.store.member_count(conn, workspace_id, key))
        raise NotFound(f"no segment {key!r}", key=key)

    async def count(self, workspace_id: str, key: str) -> int:
        """How many members a segment has now."""
        await self.get_segment(workspace_id, key)
        async with self.db.connect() as conn:
            return await self.store.member_count(conn, workspace_id, key)

    async def members(
        self, workspace_id: str, key: str, *, cursor: str | None = None, limit: int = 100
    ) -> MemberPage:
        """Members by profile id, a page at a time."""
        if not 1 <= limit <= MAX_PAGE:
            raise InvalidInput(f"limit is between 1 and {MAX_PAGE}", field="limit")
        await self.get_segment(workspace_id, key)
        async with self.db.connect() as conn:
            rows = await self.store.members(conn, workspace_id, key, cursor or "", limit)
        page = [Member(profile_id=p, entered_ms=at) for p, at in rows]
        return MemberPage(
            members=page, next_cursor=page[-1].profile_id if len(page) == limit else None
        )

    async def export_csv(self, workspace_id: str, key: str) -> AsyncIterator[str]:
        """The members as CSV (profile_id, user_id, entered_ms), streamed page by page."""
        await self.get_segment(workspace_id, key)
        yield "profile_id,user_id,entered_ms\r\n"
        after = ""
        while True:
            async with self.db.connect() as conn:
                rows = await self.store.members(conn, workspace_id, key, after, MAX_PAGE)
                users = await self.store.user_ids(conn, workspace_id, [p for p, _ in rows])
            if not rows:
                return
            out = io.StringIO()
            writer = csv.writer(out)
            for profile_id, entered in rows:
                writer.writerow([profile_id, users.get(profile_id, ""), entered])
            yield out.getvalue()
            after = rows[-1][0]

    async def history(
        self, workspace_id: str, profile_id: str, *, limit: int = 100
    ) -> list[MembershipEvent]:
        """A profile's segment entries and exits, newest first (from the event log)."""
        async with self.db.connect() as conn:
            rows = await self.store.membership_events(conn, workspace_id, profile_id, limit)
        return [
            MembershipEvent(
                seq=seq,
                segment=str(props.get("segment", "")),
                entered=name == SEGMENT_ENTERED_EVENT,
                timestamp_ms=at,
            )
            for seq, name, at, props in rows
        ]

    async def profile_segments(self, workspace_id: str, profile_id: str) -> ProfileSegments:
        """A profile's computed-trait values and current segments."""
        async with self.db.connect() as conn:
            facts = (await self.store.facts(conn, workspace_id, [profile_id], ()))[profile_id]
        return ProfileSegments(
            computed_traits=dict(sorted(facts.computed_traits.items())),
            segments=sorted(facts.segments),
        )

    async def with_segments(self, workspace_id: str, profile: Profile) -> ProfileDetail:
        """The profile with `computed_traits` and `segments` beside its traits."""
        extras = await self.profile_segments(workspace_id, profile.id)
        return ProfileDetail(
            **profile.model_dump(),
            computed_traits=extras.computed_traits,
            segments=extras.segments,
        )

    async def preview(self, workspace_id: str, condition: Any) -> int:
        """How many profiles a condition holds for now, saving nothing (the live count)."""
        cond = parse_condition(condition, "$.condition")
        async with self.db.connect() as conn:
            known = await self._known(conn, workspace_id)
            probe = Segment(key="preview", condition=cond)
            check_condition_references(probe, set(known[0]), known[1])
            return await self.store.count_matching(conn, workspace_id, cond, self.clock.now_ms())

    @staticmethod
    def schema() -> dict[str, Any]:
        """The condition language's JSON Schema."""
        return condition_schema()

    # --------------------------------------------------------------------- writing

    async def check_segment(
        self,
        workspace_id: str,
        body: Mapping[str, Any],
        *,
        key: str | None = None,
        also_segments: Mapping[str, Segment] | None = None,
        also_traits: frozenset[str] = frozenset(),
    ) -> Segment:
        """Parse and validate a segment document against what exists (422 with the path)."""
        body = dict(body)
        if key is not None:
            if body.get("key", key) != key:
                raise InvalidInput(
                    f"key {body.get('key')!r} differs from the URL's {key!r}", path="$.key"
                )
            body["key"] = key
        body.setdefault("kind", "Segment")
        doc = parse_segment(body)
        async with self.db.connect() as conn:
            existing, traits = await self._known(conn, workspace_id)
        validate_references(doc, {**existing, **(also_segments or {})}, traits | also_traits)
        return doc

    async def save_segment(
        self,
        workspace_id: str,
        doc: Segment,
        *,
        progress: Progress | None = None,
        pending: frozenset[str] = frozenset(),
    ) -> Saved:
        """Store a (checked) segment and backfill it and the segments that read it.

        `pending`: segment keys about to be saved too (one `legato apply` file); a segment
        read before it is saved is backfilled again once it is.
        """
        now = self.clock.now_ms()
        async with self.db.transaction() as conn:
            existing, traits = await self._known(conn, workspace_id)
            placeholders = {k: Segment(key=k, static=True) for k in pending if k not in existing}
            validate_references(doc, {**placeholders, **existing}, traits)
            version, created = await self.store.save_definition(
                conn,
                workspace_id,
                "segment",
                doc.key,
                dump_document(doc),
                now,
                name=doc.title,
                description=doc.description,
                static=doc.static,
            )
        self.definitions.forget(workspace_id)
        members, changes = await self._backfill(
            workspace_id, doc.key, emit=not created, progress=progress
        )
        self._changed()
        return Saved(
            key=doc.key,
            created=created,
            version=version,
            members=members,
            entered=sum(1 for c in changes if c.entered),
            exited=sum(1 for c in changes if not c.entered),
        )

    async def put_segment(
        self, workspace_id: str, body: Mapping[str, Any], *, key: str | None = None,
        progress: Progress | None = None,
    ) -> Saved:  # fmt: skip
        """Check then save a segment document."""
        doc = await self.check_segment(workspace_id, body, key=key)
        return await self.save_segment(workspace_id, doc, progress=progress)

    async def delete_segment(self, workspace_id: str, key: str) -> None:
        """Delete a segment and its memberships; refused while another segment reads it."""
        async with self.db.transaction() as conn:
            existing, _ = await self._known(conn, workspace_id)
            readers = sorted(
                other
                for other, doc in existing.items()
                if other != key
                and doc.condition is not None
                and key in compile_workspace([(doc, 1)], []).segments[other].reads.segments
            )
            if readers:
                raise Conflict(
                    f"segment {key!r} is read by {', '.join(readers)}: change those first",
                    key=key,
                )
            await self.store.delete_definition(conn, workspace_id, "segment", key)
        self.definitions.forget(workspace_id)

    async def upload(self, workspace_id: str, key: str, data: bytes) -> UploadResult:
        """Replace a static segment's members with the profiles a CSV names (by user_id,
        email, anonymous_id or profile_id column); logs entries and exits."""
        info = await self.get_segment(workspace_id, key)
        if not info.static:
            raise InvalidInput(
                f"segment {key!r} follows its condition; only a static segment takes uploads",
                key=key,
            )
        if len(data) > MAX_UPLOAD_BYTES:
            raise InvalidInput(f"an upload is at most {MAX_UPLOAD_BYTES} bytes", field="file")
        try:
            text = data.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise InvalidInput("the CSV is not UTF-8", field="file") from exc
        reader = csv.DictReader(io.StringIO(text))
        columns = [c.strip().lower() for c in reader.fieldnames or []]
        usable = [c for c in columns if c in IDENTIFIER_COLUMNS]
        if not usable:
            raise InvalidInput(
                "the CSV needs a header with one of: " + ", ".join(IDENTIFIER_COLUMNS),
                field="file",
            )
        wanted: dict[str, list[str]] = {c: [] for c in usable}
        rows = 0
        for line, raw in enumerate(reader, start=2):
            row = {(k or "").strip().lower(): (v or "").strip() for k, v in raw.items()}
            given = [(c, row.get(c, "")) for c in usable if row.get(c)]
            if not given:
                raise InvalidInput(f"line {line} names no profile", field="file", line=line)
            column, value = given[0]
            wanted[column].append(value.lower() if column == "email" else value)
            rows += 1
        now = self.clock.now_ms()
        async with self.db.transaction() as conn:
            found: set[str] = set()
            matched = 0
            for column, values in wanted.items():
                if column == "profile_id":
                    live = await self.store.canonical(conn, workspace_id, values)
                    matched += sum(1 for v in values if v in live)
                    found |= live
                    continue
                resolved = await self.store.resolve_identifiers(conn, workspace_id, column, values)
                matched += sum(1 for v in values if v in resolved)
                found |= set(resolved.values())
            before = await self.store.member_ids(conn, workspace_id, key)
            entered = sorted(found - before)
            exited = sorted(before - found)
            await self.store.write_members(
                conn, workspace_id, [(key, p, now) for p in entered], [(key, p) for p in exited]
            )
            users = await self.store.user_ids(conn, workspace_id, [*entered, *exited])
            await self.evaluator.append_internal(
                conn,
                [
                    logged_change(
                        workspace_id,
                        Change(key, p, p in found, now),
                        Touch(p, frozenset(), None, f"u{now}", users.get(p)),
                    )
                    for p in [*entered, *exited]
                ],
            )
            # Segments reading this one follow it.
            compiled = await self.definitions.get(conn, workspace_id)
            readers = compiled.dependents.get(key, set())
            if readers:
                await self.evaluator.evaluate(
                    conn,
                    workspace_id,
                    compiled,
                    [
                        Touch(p, frozenset(readers), None, f"u{now}", users.get(p))
                        for p in [*entered, *exited]
                    ],
                    now,
                )
            members = await self.store.member_count(conn, workspace_id, key)
        self._changed()
        return UploadResult(members=members, matched=matched, unmatched=rows - matched)

    # ------------------------------------------------------------------ internals

    async def _known(
        self, conn: Any, workspace_id: str
    ) -> tuple[dict[str, Segment], frozenset[str]]:
        segment_rows = await self.store.definitions(conn, workspace_id, "segment")
        trait_rows = await self.store.definitions(conn, workspace_id, "computed_trait")
        return (
            {row.key: parse_segment(row.document) for row in segment_rows},
            frozenset(row.key for row in trait_rows),
        )

    async def _backfill(
        self,
        workspace_id: str,
        key: str,
        *,
        emit: bool,
        progress: Progress | None,
        follow: bool = True,
    ) -> tuple[int | None, list[Change]]:
        """Membership of `key` over all history, then its re-checks, then its readers."""
        now = self.clock.now_ms()
        changes: list[Change] = []
        async with self.db.transaction() as conn:
            # Exclusive: chunks evaluated without this segment commit before history is read,
            # and chunks that see it wait for this answer (`MembershipStore.hold_definitions`).
            await self.store.hold_definitions(conn, exclusive=True)
            compiled = await self.definitions.get(conn, workspace_id)
            segment = compiled.segments.get(key)
            if segment is None:  # static: members come from uploads
                await self.store.set_state(conn, workspace_id, "segment", key, "live")
                members = await self.store.member_count(conn, workspace_id, key)
                if progress is not None:
                    progress(key, members, members)
                return members, []
            condition: ConditionNode = segment.document.condition  # type: ignore[assignment]
            before = await self.store.member_ids(conn, workspace_id, key) if emit else set()
            members = await self.store.replace_members(conn, workspace_id, key, condition, now)
            if emit:
                after = await self.store.member_ids(conn, workspace_id, key)
                changes = [Change(key, p, True, now) for p in sorted(after - before)]
                changes += [Change(key, p, False, now) for p in sorted(before - after)]
                users = await self.store.user_ids(
                    conn, workspace_id, [c.profile_id for c in changes]
                )
                await self.evaluator.append_internal(
                    conn,
                    [
                        logged_change(
                            workspace_id,
                            change,
                            Touch(change.profile_id, frozenset(), None, f"b{segment.version}",
                                  users.get(change.profile_id)),
                        )
                        for change in changes
                    ],
                )  # fmt: skip
            total = await self.store.profile_total(conn, workspace_id)
        if progress is not None:
            # Membership is one statement; re-checks are then scheduled profile by profile.
            progress(key, 0 if segment.reads.uses_time else total, total)
        if segment.reads.uses_time:
            # The SQL answer says who is in now; the predicate says until when, per person.
            after_id, done = "", 0
            while True:
                async with self.db.transaction() as conn:
                    # Live evaluation of these people waits (briefly): a re-check scheduled
                    # from facts older than a concurrent event would replace a newer one.
                    await self.store.hold_definitions(conn, exclusive=True)
                    page = await self.store.profile_page(conn, workspace_id, after_id, PAGE)
                    if not page:
                        break
                    await self.evaluator.evaluate(
                        conn,
                        workspace_id,
                        compiled,
                        [Touch(p, frozenset({key}), None, f"b{segment.version}") for p in page],
                        now,
                        emit=emit,
                    )
                after_id, done = page[-1], done + len(page)
                if progress is not None:
                    progress(key, done, total)
        async with self.db.transaction() as conn:
            await self.store.set_state(conn, workspace_id, "segment", key, "live")
        if follow:
            readers = sorted(
                self.evaluator._closure(compiled, [key]) - {key},
                key=lambda k: compiled.segments[k].order,
            )
            for reader in readers:
                await self._backfill(
                    workspace_id, reader, emit=True, progress=progress, follow=False
                )
        return members, changes

    def _changed(self) -> None:
        if self.on_change is not None:
            self.on_change()


# ------------------------------------------------------------------ legato apply


async def _check_segment(ctx: documents.ApplyContext, doc: documents.Document) -> Segment:
    service: SegmentService = ctx.services.segments
    declared_segments = documents.declared(ctx, ["Segment"])
    parsed = parse_segment(doc.body)
    # Segments of the same file count as existing (their own checks run on their own).
    others = {k: Segment(key=k, static=True) for k in declared_segments if k != parsed.key}
    return await service.check_segment(
        ctx.workspace_id,
        doc.body,
        also_segments=others,
        also_traits=frozenset(documents.declared(ctx, ["ComputedTrait"])),
    )


async def _apply_segment(ctx: documents.ApplyContext, doc: documents.Document, value: Any) -> str:
    service: SegmentService = ctx.services.segments
    progress = ctx.options.get("progress")
    saved = await service.save_segment(
        ctx.workspace_id,
        value,
        progress=progress,
        pending=frozenset(documents.declared(ctx, ["Segment"])),
    )
    verb = "created" if saved.created else f"updated to v{saved.version}"
    return f"{verb}; {saved.members} members"


async def _check_trait(ctx: documents.ApplyContext, doc: documents.Document) -> ComputedTrait:
    return SegmentService.check_computed_trait(doc.body)


async def _apply_trait(ctx: documents.ApplyContext, doc: documents.Document, value: Any) -> str:
    service: SegmentService = ctx.services.segments
    saved = await service.save_computed_trait(
        ctx.workspace_id, value, progress=ctx.options.get("progress")
    )
    return "created" if saved.created else f"updated to v{saved.version}"


documents.register(documents.DocumentKind("Segment", check=_check_segment, apply=_apply_segment))
documents.register(documents.DocumentKind("ComputedTrait", check=_check_trait, apply=_apply_trait))

__all__ = [
    "MAX_PAGE",
    "ComputedTraitInfo",
    "Member",
    "MemberPage",
    "MembershipEvent",
    "ProfileDetail",
    "ProfileSegments",
    "Progress",
    "Saved",
    "SegmentInfo",
    "SegmentService",
    "UploadResult",
]
