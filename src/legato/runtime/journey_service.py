"""Journey lifecycle and reporting: drafts, publishing, pause/resume/archive, stats, API entry.

A journey is saved as a draft (validated: the document and its graph), published into an
immutable version (validated again against what the workspace defines: segments, computed
traits, templates, channels, topics; webhook hosts), paused (no new entries; runs in flight
carry on), resumed, and archived (no entries ever again). Runs stay on the version they
entered: publishing v2 never moves them. Stats are read from the rollups the runtime keeps in
its transactions. Never composes SQL; the engine decides what runs do.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from legato.domain.conditions import EventFact
from legato.domain.engine import (
    API_TRIGGER_EVENT,
    SEGMENT_ENTERED_EVENT,
    SEGMENT_EXITED_EVENT,
    CompiledJourney,
    compile_journey,
)
from legato.domain.journey_validation import KnownReferences, validate_journey
from legato.domain.journeys import (
    ApiTrigger,
    EventTrigger,
    Journey,
    ScheduleTrigger,
    SegmentTrigger,
    parse_journey,
)
from legato.errors import Conflict, InvalidInput, NotFound
from legato.ports import Clock
from legato.runtime import documents
from legato.runtime.channels import BUILTIN_CHANNELS
from legato.runtime.documents import ApplyContext, Document, DocumentKind, declared
from legato.runtime.listening import Facts, Versions
from legato.runtime.timers import schedule_row
from legato.runtime.transitions import Origin, Unit, entry_book
from legato.store.database import Database
from legato.store.journeys import JOURNEY_NODE, JourneyRow, JourneyStore, reference_keys
from legato.store.profiles import ProfileStore
from legato.store.runs import JourneyChanges, RunStore

#: Lifecycle states.
DRAFT, PUBLISHED, PAUSED, ARCHIVED = "draft", "published", "paused", "archived"


@dataclass(frozen=True, slots=True)
class Saved:
    """The outcome of saving a draft."""

    key: str
    created: bool
    status: str


def check_journey(document: Any, known: KnownReferences | None = None) -> Journey:
    """Parse and validate a journey document; InvalidInput names the node and the reason."""
    journey = parse_journey(document)
    validate_journey(journey, known)
    return journey


def trigger_index(journey: Journey) -> tuple[str, str] | None:
    """The (event, segment) the trigger index files a journey under (None: no event starts it)."""
    trigger = journey.trigger
    if isinstance(trigger, EventTrigger):
        return trigger.event, ""
    if isinstance(trigger, SegmentTrigger):
        name = SEGMENT_ENTERED_EVENT if trigger.change == "entered" else SEGMENT_EXITED_EVENT
        return name, trigger.segment
    return None


class JourneyService:
    """Use cases on a workspace's journeys."""

    def __init__(
        self,
        db: Database,
        journeys: JourneyStore,
        runs: RunStore,
        versions: Versions,
        profiles: ProfileStore,
        clock: Clock,
        *,
        allow_private_webhooks: bool = False,
    ) -> None:
        self.db = db
        self.journeys = journeys
        self.runs = runs
        self.versions = versions
        self.profiles = profiles
        self.clock = clock
        self.allow_private_webhooks = allow_private_webhooks

    # -- documents ---------------------------------------------------------------------------

    async def known_references(
        self, workspace_id: str, declared: Mapping[str, set[str]] | None = None
    ) -> KnownReferences:
        """What journeys of the workspace may name, plus what `declared` adds (an apply file).

        A kind the workspace has not started to use (no template, channel or topic at all yet)
        is not checked, so journeys can be drafted and simulated before delivery is set up.
        Segments and computed traits are always checked.
        """
        async with self.db.connect() as conn:
            keys = await reference_keys(conn, workspace_id)
        for kind, extra in (declared or {}).items():
            keys.setdefault(kind, set()).update(extra)
        if keys.get("channels"):
            # Built-in channels (in-app, web) exist without a Channel document.
            keys["channels"] |= set(BUILTIN_CHANNELS)

        def optional(kind: str) -> frozenset[str] | None:
            found = keys.get(kind) or set()
            return frozenset(found) if found else None

        return KnownReferences(
            templates=optional("templates"),
            channels=optional("channels"),
            topics=optional("topics"),
            segments=frozenset(keys.get("segments", set())),
            computed_traits=frozenset(keys.get("computed_traits", set())),
            allow_private_webhooks=self.allow_private_webhooks,
        )

    async def save_draft(self, workspace_id: str, document: Any, key: str | None = None) -> Saved:
        """Validate and save a journey's draft (its document and graph; references are checked
        when it is published). `key`, when given, must be the document's key."""
        journey = check_journey(document)
        if key is not None and journey.key != key:
            raise InvalidInput(
                f"the document's key {journey.key!r} is not {key!r} (the key in the URL)",
                path="$.key",
            )
        now = self.clock.now_ms()
        async with self.db.transaction() as conn:
            try:
                row = await self.journeys.lock(conn, workspace_id, journey.key)
            except NotFound:
                row = None
            if row is not None and row.status == ARCHIVED:
                raise Conflict(
                    f"journey {journey.key!r} is archived; use a new key", key=journey.key
                )
            created = await self.journeys.save_draft(
                conn, workspace_id, journey.key, journey.name, journey.to_document(), now
            )
        return Saved(journey.key, created, row.status if row is not None else DRAFT)

    async def get(self, workspace_id: str, key: str) -> dict[str, Any]:
        """A journey: its lifecycle state, draft and versions."""
        async with self.db.connect() as conn:
            row = await self.journeys.get(conn, workspace_id, key)
        versions = await self.journeys.versions(workspace_id, key)
        return {
            **self._summary(row),
            "draft": row.draft,
            "versions": [{"version": v, "published_ms": at} for v, at in versions],
        }

    async def list(self, workspace_id: str) -> list[dict[str, Any]]:
        """Every journey of the workspace (lifecycle state, no documents)."""
        return [self._summary(row) for row in await self.journeys.all(workspace_id)]

    @staticmethod
    def _summary(row: JourneyRow) -> dict[str, Any]:
        return {
            "key": row.key,
            "name": row.name,
            "status": row.status,
            "version": row.version,
            "draft_updated_ms": row.draft_updated_ms,
            "created_ms": row.created_ms,
            "updated_ms": row.updated_ms,
        }

    # -- lifecycle ---------------------------------------------------------------------------

    async def publish(self, workspace_id: str, key: str) -> dict[str, Any]:
        """Publish the draft as a new immutable version (unless it equals the latest one) and
        accept entries; InvalidInput names any missing reference."""
        known = await self.known_references(workspace_id)
        now = self.clock.now_ms()
        async with self.db.transaction() as conn:
            row = await self.journeys.lock(conn, workspace_id, key)
            if row.status == ARCHIVED:
                raise Conflict(f"journey {key!r} is archived and cannot be published", key=key)
            journey = check_journey(row.draft, known)
            document = journey.to_document()
            version = row.version
            latest = (
                await self.journeys.version_document(conn, workspace_id, key, version)
                if version is not None
                else None
            )
            created = latest != document
            if created:
                version = await self.journeys.add_version(conn, workspace_id, key, document, now)
            assert version is not None
            await self.journeys.set_state(
                conn,
                workspace_id,
                key,
                status=PUBLISHED,
                now_ms=now,
                version=version,
                trigger=trigger_index(journey),
            )
            await self._arm_schedule(conn, workspace_id, compile_journey(journey, version), now)
        return {"key": key, "version": version, "status": PUBLISHED, "created": created}

    async def pause(self, workspace_id: str, key: str) -> dict[str, Any]:
        """Stop entries (runs in flight carry on)."""
        return await self._move(workspace_id, key, {PUBLISHED}, PAUSED)

    async def resume(self, workspace_id: str, key: str) -> dict[str, Any]:
        """Accept entries again (and re-arm a schedule)."""
        return await self._move(workspace_id, key, {PAUSED}, PUBLISHED)

    async def archive(self, workspace_id: str, key: str) -> dict[str, Any]:
        """Stop entries for good (runs in flight carry on)."""
        return await self._move(workspace_id, key, {DRAFT, PUBLISHED, PAUSED}, ARCHIVED)

    async def _move(
        self, workspace_id: str, key: str, allowed: set[str], status: str
    ) -> dict[str, Any]:
        now = self.clock.now_ms()
        async with self.db.transaction() as conn:
            row = await self.journeys.lock(conn, workspace_id, key)
            if row.status not in allowed:
                raise Conflict(
                    f"journey {key!r} is {row.status}; it cannot become {status}",
                    key=key,
                    status=row.status,
                )
            trigger = None
            if status == PUBLISHED and row.version is not None:
                version = await self.versions.get(conn, workspace_id, key, row.version)
                trigger = trigger_index(version.journey)
                await self._arm_schedule(conn, workspace_id, version, now)
            else:
                await self.journeys.drop_schedule(conn, workspace_id, key)
            await self.journeys.set_state(
                conn, workspace_id, key, status=status, now_ms=now, trigger=trigger
            )
        return {"key": key, "version": row.version, "status": status}

    async def _arm_schedule(
        self, conn: Any, workspace_id: str, version: CompiledJourney, now: int
    ) -> None:
        await self.journeys.drop_schedule(conn, workspace_id, version.key)
        if not isinstance(version.journey.trigger, ScheduleTrigger):
            return
        following = version.next_occurrence(now)
        if following is None:
            return
        row = schedule_row(workspace_id, version, following)
        changes = JourneyChanges()
        changes.timers[(row["owner"], row["name"], row["due_ms"])] = row
        await self.runs.write(conn, changes)

    # -- stats -------------------------------------------------------------------------------

    async def stats(
        self, workspace_id: str, key: str, version: int | None = None
    ) -> dict[str, Any]:
        """Per node: entered (visits), exited, converted, waiting now; per journey: entries,
        refusals and exits by reason, conversions. All versions unless `version` is given."""
        async with self.db.connect() as conn:
            row = await self.journeys.get(conn, workspace_id, key)
            shown = version if version is not None else row.version
            nodes: dict[str, dict[str, Any]] = {}
            if shown is not None:
                compiled = await self.versions.get(conn, workspace_id, key, shown)
                for node in compiled.journey.nodes:
                    nodes[node.id] = _empty_node()
        totals: dict[str, Any] = {
            "entered": 0,
            "converted": 0,
            "exited": 0,
            "refused": {},
            "exit_reasons": {},
        }
        for _, node_id, metric, count in await self.journeys.rollups(workspace_id, key, version):
            if node_id == JOURNEY_NODE:
                kind, _, reason = metric.partition(":")
                if kind == "refused":
                    totals["refused"][reason] = totals["refused"].get(reason, 0) + count
                elif kind == "exited":
                    totals["exited"] += count
                    totals["exit_reasons"][reason] = totals["exit_reasons"].get(reason, 0) + count
                elif kind in {"entered", "converted"}:
                    totals[kind] += count
                continue
            counters = nodes.setdefault(node_id, _empty_node())
            if metric.startswith("arm:"):
                arms = counters.setdefault("arms", {})
                arm = metric[4:]
                arms[arm] = arms.get(arm, 0) + count
            elif metric in counters:
                counters[metric] += count
        totals["waiting"] = sum(counters["waiting"] for counters in nodes.values())
        return {
            "key": key,
            "status": row.status,
            "version": row.version,
            "versions": version if version is not None else "all",
            "journey": totals,
            "nodes": nodes,
        }

    # -- API-triggered entry -----------------------------------------------------------------

    async def trigger(
        self,
        workspace_id: str,
        key: str,
        *,
        profile_id: str | None = None,
        user_id: str | None = None,
        anonymous_id: str | None = None,
        properties: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Enter one person into an API-triggered journey (the entry rules apply)."""
        given = [value for value in (profile_id, user_id, anonymous_id) if value]
        if len(given) != 1:
            raise InvalidInput(
                "name the person with exactly one of profile_id, user_id, anonymous_id",
                path="$.profile_id",
            )
        now = self.clock.now_ms()
        async with self.db.transaction() as conn:
            row = await self.journeys.get(conn, workspace_id, key)
            if row.status != PUBLISHED or row.version is None:
                raise Conflict(f"journey {key!r} is {row.status}: it takes no entries", key=key)
            version = await self.versions.get(conn, workspace_id, key, row.version)
            if not isinstance(version.journey.trigger, ApiTrigger):
                raise Conflict(
                    f"journey {key!r} is not triggered by the API (its trigger is "
                    f"{version.journey.trigger.type})",
                    key=key,
                )
            person = await self._person(conn, workspace_id, profile_id, user_id, anonymous_id)
            await self.profiles.lock(conn, workspace_id, [person])
            book = await entry_book(
                conn, self.journeys, self.runs, workspace_id, [version], [person]
            )
            loaded = await self.runs.facts(
                conn, workspace_id, [person], self.versions.reads(version)
            )
            if user_id is None:
                user_id = (await self.profiles.user_ids(conn, workspace_id, [person])).get(person)
            unit = Unit(workspace_id, now)
            fact = EventFact(API_TRIGGER_EVENT, now, dict(properties or {}))
            transition = unit.enter(
                version,
                fact,
                Facts(person, loaded[person]),
                now,
                book,
                Origin(user_id, anonymous_id),
            )
            await self.runs.write(conn, unit.finish())
        if transition.run is None:
            reason = next(
                (getattr(e, "reason", None) for e in transition.effects if hasattr(e, "reason")),
                None,
            )
            return {"entered": False, "profile_id": person, "reason": reason}
        return {
            "entered": True,
            "profile_id": person,
            "run_id": transition.run.run_id,
            "version": version.version,
        }

    async def _person(
        self,
        conn: Any,
        workspace_id: str,
        profile_id: str | None,
        user_id: str | None,
        anonymous_id: str | None,
    ) -> str:
        if profile_id:
            live = await self.profiles.live(conn, workspace_id, [profile_id])
            found = await self.profiles.lock(conn, workspace_id, [live[profile_id]])
            if not found:
                raise NotFound(f"no profile {profile_id!r}", path="$.profile_id")
            return live[profile_id]
        kind, value = ("user_id", user_id) if user_id else ("anonymous_id", anonymous_id)
        assert value is not None
        profile = await self.profiles.lookup(workspace_id, kind, value)
        return profile.id


# -- `legato apply`: the Journey kind -----------------------------------------------------------


async def _check_document(ctx: ApplyContext, doc: Document) -> Journey:
    journey = parse_journey(doc.body)
    if not ctx.options.get("publish"):
        validate_journey(journey)
        return journey
    service: JourneyService = ctx.services.journeys
    known = await service.known_references(
        ctx.workspace_id,
        {
            "segments": declared(ctx, ["Segment"]),
            "computed_traits": declared(ctx, ["ComputedTrait"]),
            "templates": declared(ctx, ["Template"]),
            "channels": declared(ctx, ["Channel"]),
            "topics": declared(ctx, ["Topic"]),
        },
    )
    validate_journey(journey, known)
    return journey


async def _apply_document(ctx: ApplyContext, doc: Document, journey: Journey) -> str:
    service: JourneyService = ctx.services.journeys
    saved = await service.save_draft(ctx.workspace_id, journey)
    outcome = "created" if saved.created else "draft updated"
    if ctx.options.get("publish"):
        published = await service.publish(ctx.workspace_id, journey.key)
        verb = "published" if published["created"] else "already published as"
        outcome += f", {verb} v{published['version']}"
    return outcome


documents.register(DocumentKind("Journey", check=_check_document, apply=_apply_document))


def _empty_node() -> dict[str, Any]:
    return {"entered": 0, "exited": 0, "converted": 0, "waiting": 0}
