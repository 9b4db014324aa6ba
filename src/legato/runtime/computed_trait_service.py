"""Computed traits as users manage them: list, check, save (then compute over all history,
the segments reading the trait following), delete.

A part of `SegmentService` (mixed in): it shares the service's stores, compiled definitions
and segment backfills. Values are folded by the incremental aggregator of
`legato.domain.computed_traits`, exactly as the pipeline stage folds new events; a log offset
kept in each state makes an event count once whichever of the two sees it first. Never
composes SQL.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from typing import Any

from legato.domain.computed_traits import AggregateState, Aggregator
from legato.domain.conditions import EventFact
from legato.domain.segments import ComputedTrait, dump_document, parse_computed_trait
from legato.errors import Conflict, InvalidInput, NotFound
from legato.ports import Clock
from legato.runtime.segment_views import ComputedTraitInfo, Progress, Saved, trait_info
from legato.runtime.segments import LOG_SEQ, Change, Definitions, compile_workspace
from legato.store.database import Database
from legato.store.memberships import MembershipStore, ValueRow


class ComputedTraitUseCases:
    """The computed-trait half of `SegmentService`."""

    db: Database
    store: MembershipStore
    definitions: Definitions
    clock: Clock

    async def _backfill(
        self,
        workspace_id: str,
        key: str,
        *,
        emit: bool,
        progress: Progress | None,
        follow: bool = True,
    ) -> tuple[int | None, list[Change]]:
        raise NotImplementedError  # SegmentService's

    def _changed(self) -> None:
        raise NotImplementedError  # SegmentService's

    async def list_computed_traits(self, workspace_id: str) -> list[ComputedTraitInfo]:
        """Every computed trait of the workspace, by key."""
        async with self.db.connect() as conn:
            rows = await self.store.definitions(conn, workspace_id, "computed_trait")
        return [trait_info(row) for row in rows]

    async def get_computed_trait(self, workspace_id: str, key: str) -> ComputedTraitInfo:
        """One computed trait (NotFound if missing)."""
        for info in await self.list_computed_traits(workspace_id):
            if info.key == key:
                return info
        raise NotFound(f"no computed trait {key!r}", key=key)

    @staticmethod
    def check_computed_trait(body: Mapping[str, Any], *, key: str | None = None) -> ComputedTrait:
        """Parse a computed-trait document (422 with the path)."""
        body = dict(body)
        if key is not None:
            if body.get("key", key) != key:
                raise InvalidInput(
                    f"key {body.get('key')!r} differs from the URL's {key!r}", path="$.key"
                )
            body["key"] = key
        body.setdefault("kind", "ComputedTrait")
        return parse_computed_trait(body)

    async def save_computed_trait(
        self, workspace_id: str, doc: ComputedTrait, *, progress: Progress | None = None
    ) -> Saved:
        """Store a computed trait and compute it over all history; segments reading it follow."""
        now = self.clock.now_ms()
        async with self.db.transaction() as conn:
            version, created = await self.store.save_definition(
                conn, workspace_id, "computed_trait", doc.key, dump_document(doc), now
            )
            await self.store.delete_values(conn, workspace_id, doc.key)
        self.definitions.forget(workspace_id)
        aggregator = compile_workspace([], [doc]).aggregators[doc.key]
        done = 0
        if progress is not None:
            async with self.db.connect() as conn:
                total = await self.store.event_total(conn, workspace_id, doc.event)
            progress(doc.key, 0, total)
        events = self.store.trait_events(workspace_id, doc.event)
        async with contextlib.aclosing(events):  # it holds a connection: close it on errors
            async for page in events:
                await self._fold_history(workspace_id, doc, aggregator, page, now)
                done += len(page)
                if progress is not None:
                    progress(doc.key, done, total)
        async with self.db.transaction() as conn:
            await self.store.set_state(conn, workspace_id, "computed_trait", doc.key, "live")
            compiled = await self.definitions.get(conn, workspace_id)
        # Segments reading this trait are backfilled again with its values.
        for key in sorted(
            compiled.by_computed.get(doc.key, set()), key=lambda k: compiled.segments[k].order
        ):
            await self._backfill(workspace_id, key, emit=True, progress=progress, follow=False)
        self._changed()
        return Saved(key=doc.key, created=created, version=version)

    async def _fold_history(
        self,
        workspace_id: str,
        doc: ComputedTrait,
        aggregator: Aggregator,
        page: list[tuple[str, int, int, dict[str, Any]]],
        now: int,
    ) -> None:
        """Fold one page of the history (by profile, then log order) into the stored states;
        events the stored log offset already counts (the pipeline stage's) are skipped."""
        by_profile: dict[str, list[tuple[int, int, dict[str, Any]]]] = {}
        for profile_id, seq, at, props in page:
            by_profile.setdefault(profile_id, []).append((seq, at, props))
        async with self.db.transaction() as conn:
            stored = await self.store.values(conn, workspace_id, [doc.key], by_profile)
            rows: list[ValueRow] = []
            for profile_id, found in by_profile.items():
                previous = stored.get((doc.key, profile_id))
                state = (
                    AggregateState.from_json(previous.state)
                    if previous is not None
                    else aggregator.new_state()
                )
                upto = int(previous.state.get(LOG_SEQ, 0)) if previous is not None else 0
                for seq, at, props in found:
                    if seq > upto:
                        aggregator.fold(state, EventFact(doc.event, at, props), now)
                        upto = seq
                value, until = aggregator.value(state, now)
                rows.append(
                    ValueRow(doc.key, profile_id, value, {**state.to_json(), LOG_SEQ: upto}, until)
                )
            await self.store.write_values(conn, workspace_id, rows, now)

    async def put_computed_trait(
        self, workspace_id: str, body: Mapping[str, Any], *, key: str | None = None,
        progress: Progress | None = None,
    ) -> Saved:  # fmt: skip
        """Check then save a computed-trait document."""
        doc = self.check_computed_trait(body, key=key)
        return await self.save_computed_trait(workspace_id, doc, progress=progress)

    async def delete_computed_trait(self, workspace_id: str, key: str) -> None:
        """Delete a computed trait and its values; refused while a segment reads it."""
        async with self.db.transaction() as conn:
            compiled = await self.definitions.get(conn, workspace_id)
            readers = sorted(compiled.by_computed.get(key, set()))
            if readers:
                raise Conflict(
                    f"computed trait {key!r} is read by segment(s) {', '.join(readers)}",
                    key=key,
                )
            await self.store.delete_definition(conn, workspace_id, "computed_trait", key)
        self.definitions.forget(workspace_id)
