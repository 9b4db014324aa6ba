"""Deliveries in SQL: one row per message to send (journey send request or transactional API
call), its lifecycle, and what delivery needs to read in bulk about recipients.

Declared on the shared `legato.store.tables.metadata`; migration `0004_delivery` creates exactly
these. A delivery is unique per (workspace, idempotency key) — the journey outbox key
"run:node:visit", or the API caller's key — so a request is queued once whatever is retried.

What delivery reads about the people behind deliveries is `store.recipients`.

Lifecycle (`status`): queued → claimed (a worker holds it; it has not reached a provider) →
sending (handed to a provider: the outcome is unknown until recorded) → sent / delivered /
bounced / complained, or skipped (gate or render said no), failed (permanent error), dead
(retries exhausted, or interrupted while sending). Every transition names the claim token of
the worker that holds the row, so a worker whose lease lapsed cannot overwrite another's work.
Decides nothing: `legato.runtime.delivery` does.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from legato.domain.delivery import MessageCategory, RecentSend
from legato.errors import InvalidInput, NotFound
from legato.store.database import Database
from legato.store.tables import Id, Json, metadata

#: Rows per statement when a list is spread over IN (...).
SLICE = 500

#: Statuses of a message that reached a provider (counted by frequency caps).
SENT_STATUSES = ("sent", "delivered", "bounced", "complained")
#: Statuses a replay may put back in the queue.
REPLAYABLE = ("failed", "dead")
#: Every status, in lifecycle order.
STATUSES = ("queued", "claimed", "sending", *SENT_STATUSES, "skipped", "failed", "dead")

#: The characters ids end with (`legato.ids`): lanes split people by them.
_ID_CHARS = "0123456789abcdefghjkmnpqrstvwxyz"

#: Priority of transactional messages (API sends, confirmations) and of bulk (journeys).
PRIORITY_TRANSACTIONAL = 0
PRIORITY_BULK = 1

deliveries = sa.Table(
    "deliveries",
    metadata,
    sa.Column("id", Id, primary_key=True),
    sa.Column("workspace_id", Id, nullable=False),
    # The idempotency key: the journey outbox key, or the API caller's.
    sa.Column("key", sa.String(200), nullable=False),
    # journey, api, confirm (double opt-in), replay.
    sa.Column("source", sa.String(16), nullable=False),
    sa.Column("priority", sa.SmallInteger, nullable=False),
    sa.Column("profile_id", Id, nullable=True),
    sa.Column("channel", sa.String(64), nullable=False),
    # The channel's kind (email, sms...): known once a worker has looked the channel up.
    sa.Column("kind", sa.String(32), nullable=True),
    sa.Column("template", sa.String(64), nullable=False),
    sa.Column("topic", sa.String(64), nullable=True),
    # marketing / transactional: known once the template is read.
    sa.Column("category", sa.String(16), nullable=True),
    sa.Column("journey_key", sa.String(128), nullable=True),
    sa.Column("journey_version", sa.Integer, nullable=True),
    sa.Column("run_id", Id, nullable=True),
    sa.Column("node_id", sa.String(64), nullable=True),
    # What rendering needs: trigger event, data, an explicit `to`, journey delivery settings.
    sa.Column("request", Json, nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
    sa.Column("next_attempt_ms", sa.BigInteger, nullable=False),
    sa.Column("claim", Id, nullable=True),
    sa.Column("lease_until_ms", sa.BigInteger, nullable=True),
    # The normalised address used, the provider that accepted it and its message id.
    sa.Column("address", sa.Text, nullable=True),
    sa.Column("provider", sa.String(128), nullable=True),
    sa.Column("provider_message_id", sa.String(256), nullable=True),
    sa.Column("locale", sa.String(32), nullable=True),
    # A skip reason, or the kind of the last error (retryable, permanent, interrupted...).
    sa.Column("reason", sa.String(64), nullable=True),
    sa.Column("detail", sa.Text, nullable=True),
    sa.Column("created_ms", sa.BigInteger, nullable=False),
    sa.Column("updated_ms", sa.BigInteger, nullable=False),
    sa.Column("sent_ms", sa.BigInteger, nullable=True),
    sa.Column("delivered_ms", sa.BigInteger, nullable=True),
    sa.Column("opened_ms", sa.BigInteger, nullable=True),
    sa.Column("clicked_ms", sa.BigInteger, nullable=True),
    sa.UniqueConstraint("workspace_id", "key"),
    sa.Index("ix_deliveries_queue", "status", "priority", "next_attempt_ms"),
    sa.Index("ix_deliveries_profile_sent", "workspace_id", "profile_id", "sent_ms"),
    sa.Index("ix_deliveries_workspace_status", "workspace_id", "status", "id"),
    sa.Index("ix_deliveries_provider_message", "provider_message_id"),
)

# Secrets the process generated for itself (the tracking secret when none is configured).
delivery_secrets = sa.Table(
    "delivery_secrets",
    metadata,
    sa.Column("name", sa.String(64), primary_key=True),
    sa.Column("value", sa.Text, nullable=False),
    sa.Column("created_ms", sa.BigInteger, nullable=False),
)


@dataclass(frozen=True, slots=True)
class NewDelivery:
    """A message to queue."""

    workspace_id: str
    key: str
    source: str
    priority: int
    profile_id: str | None
    channel: str
    template: str
    topic: str | None
    request: Mapping[str, Any]
    journey_key: str | None = None
    journey_version: int | None = None
    run_id: str | None = None
    node_id: str | None = None


@dataclass(frozen=True, slots=True)
class DeliveryRow:
    """A stored delivery."""

    id: str
    workspace_id: str
    key: str
    source: str
    priority: int
    profile_id: str | None
    channel: str
    kind: str | None
    template: str
    topic: str | None
    category: str | None
    journey_key: str | None
    journey_version: int | None
    run_id: str | None
    node_id: str | None
    request: dict[str, Any]
    status: str
    attempts: int
    next_attempt_ms: int
    claim: str | None
    lease_until_ms: int | None
    address: str | None
    provider: str | None
    provider_message_id: str | None
    locale: str | None
    reason: str | None
    detail: str | None
    created_ms: int
    updated_ms: int
    sent_ms: int | None
    delivered_ms: int | None
    opened_ms: int | None
    clicked_ms: int | None

    def public(self) -> dict[str, Any]:
        """The delivery as the admin API shows it."""
        body = {name: getattr(self, name) for name in self.__slots__}
        body.pop("claim")
        body.pop("lease_until_ms")
        return body


@dataclass(frozen=True, slots=True)
class Settlement:
    """What a worker decided about a claimed delivery: the new status and the fields to set."""

    id: str
    status: str
    values: Mapping[str, Any] = field(default_factory=dict)


def _insert(conn: AsyncConnection, table: sa.Table) -> Any:
    if conn.dialect.name == "postgresql":
        return postgresql.insert(table)
    return sqlite.insert(table)


def _slices(items: Sequence[Any], size: int = SLICE) -> Iterable[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _row(row: Any) -> DeliveryRow:
    values = dict(row._mapping)
    values["request"] = dict(values["request"] or {})
    return DeliveryRow(**values)


class DeliveryStore:
    """The deliveries table: queueing, claiming, settling, reading."""

    def __init__(self, db: Database):
        self.db = db

    # -- queueing -------------------------------------------------------------------------------

    async def enqueue(
        self, conn: AsyncConnection, items: Sequence[NewDelivery], ids: Sequence[str], now_ms: int
    ) -> None:
        """Queue messages on the caller's transaction; a key already queued is left alone."""
        if not items:
            return
        await conn.execute(
            _insert(conn, deliveries).on_conflict_do_nothing(
                index_elements=[deliveries.c.workspace_id, deliveries.c.key]
            ),
            [
                {
                    "id": delivery_id,
                    "workspace_id": item.workspace_id,
                    "key": item.key,
                    "source": item.source,
                    "priority": item.priority,
                    "profile_id": item.profile_id,
                    "channel": item.channel,
                    "template": item.template,
                    "topic": item.topic,
                    "journey_key": item.journey_key,
                    "journey_version": item.journey_version,
                    "run_id": item.run_id,
                    "node_id": item.node_id,
                    "request": dict(item.request),
                    "status": "queued",
                    "attempts": 0,
                    "next_attempt_ms": now_ms,
                    "created_ms": now_ms,
                    "updated_ms": now_ms,
                }
                for delivery_id, item in zip(ids, items, strict=True)
            ],
        )

    async def by_key(self, workspace_id: str, key: str) -> DeliveryRow | None:
        """The delivery queued under an idempotency key, if any."""
        async with self.db.connect() as conn:
            row = (
                await conn.execute(
                    sa.select(deliveries).where(
                        deliveries.c.workspace_id == workspace_id, deliveries.c.key == key
                    )
                )
            ).first()
        return None if row is None else _row(row)

    # -- claiming and settling ------------------------------------------------------------------

    async def claim(
        self,
        now_ms: int,
        limit: int,
        *,
        claim: str,
        lease_ms: int,
        lane: tuple[int, int] = (0, 1),
    ) -> list[DeliveryRow]:
        """Claim up to `limit` due deliveries, transactional first, then oldest due first.

        `lane` (index, count) takes only the people of one lane: a person's messages always
        fall in the same lane (by the last character of the profile id; messages without a
        profile in lane 0), so lanes working at once never race on one person's caps.
        """
        async with self.db.transaction() as conn:
            ready = (
                sa.select(deliveries.c.id)
                .where(deliveries.c.status == "queued", deliveries.c.next_attempt_ms <= now_ms)
                .order_by(deliveries.c.priority, deliveries.c.next_attempt_ms, deliveries.c.id)
                .limit(limit)
            )
            index, count = lane
            if count > 1:
                chars = [c for i, c in enumerate(_ID_CHARS) if i % count == index]
                mine: sa.ColumnElement[bool] = sa.func.substr(deliveries.c.profile_id, 26, 1).in_(
                    chars
                )
                if index == 0:
                    mine = sa.or_(deliveries.c.profile_id.is_(None), mine)
                ready = ready.where(mine)
            if conn.dialect.name == "postgresql":
                ready = ready.with_for_update(skip_locked=True)
            rows = (
                await conn.execute(
                    deliveries.update()
                    .where(deliveries.c.id.in_(ready))
                    .values(
                        status="claimed",
                        claim=claim,
                        lease_until_ms=now_ms + lease_ms,
                        updated_ms=now_ms,
                    )
                    .returning(*deliveries.c)
                )
            ).all()
        claimed = [_row(row) for row in rows]
        claimed.sort(key=lambda d: (d.priority, d.next_attempt_ms, d.id))
        return claimed

    async def settle(
        self, conn: AsyncConnection, claim: str, settlements: Sequence[Settlement], now_ms: int
    ) -> int:
        """Apply decisions to rows this claim still holds (one statement per shape of
        decision); returns how many rows were no longer held by it."""
        groups: dict[tuple[str, tuple[str, ...]], list[Settlement]] = defaultdict(list)
        for item in settlements:
            groups[(item.status, tuple(sorted(item.values)))].append(item)
        lost = 0
        for (status, columns), items in sorted(groups.items()):
            fixed: dict[str, Any] = {"status": status, "updated_ms": now_ms}
            if status not in {"claimed", "sending"}:
                fixed.update(claim=None, lease_until_ms=None)
            statement = (
                deliveries.update()
                .where(deliveries.c.id == sa.bindparam("b_id"), deliveries.c.claim == claim)
                .values(**fixed, **{c: sa.bindparam(f"b_{c}") for c in columns})
            )
            params = [
                {"b_id": item.id, **{f"b_{c}": item.values[c] for c in columns}} for item in items
            ]
            done = await conn.execute(statement, params)
            if done.rowcount is not None and 0 <= done.rowcount < len(items):
                lost += len(items) - done.rowcount
        return lost

    async def mark_sending(
        self,
        conn: AsyncConnection,
        claim: str,
        rows: Sequence[tuple[str, str, str]],
        lease_until_ms: int,
        now_ms: int,
    ) -> set[str]:
        """The rows (id, channel kind, address) are about to be handed to providers: from here
        their outcome is unknown until recorded, so a crash leaves them `sending` (with the
        address, for whoever checks a dead letter). Returns the ids this claim still held
        (only those may be sent)."""
        statement = (
            deliveries.update()
            .where(
                deliveries.c.id == sa.bindparam("b_id"),
                deliveries.c.claim == claim,
                # (no IN here: executemany cannot expand it)
                sa.or_(deliveries.c.status == "claimed", deliveries.c.status == "sending"),
            )
            .values(
                status="sending",
                kind=sa.bindparam("b_kind"),
                address=sa.bindparam("b_address"),
                lease_until_ms=lease_until_ms,
                updated_ms=now_ms,
            )
        )
        if rows:
            await conn.execute(
                statement,
                [{"b_id": i, "b_kind": k, "b_address": a} for i, k, a in rows],
            )
        held: set[str] = set()
        for part in _slices([row[0] for row in rows]):
            found = await conn.execute(
                sa.select(deliveries.c.id).where(
                    deliveries.c.id.in_(part),
                    deliveries.c.claim == claim,
                    deliveries.c.status == "sending",
                )
            )
            held.update(found.scalars())
        return held

    async def recover(
        self, now_ms: int, *, resend_kinds: Iterable[str] = (), everything: bool = False
    ) -> tuple[int, int]:
        """Rows whose worker vanished (lease lapsed; with `everything`, every held row — the
        caller knows no other worker runs): `claimed` ones go back to the queue (they never
        reached a provider); `sending` ones become dead letters (the provider may have sent
        them, and a second send could be a duplicate) unless their channel kind recognises a
        repeated send itself. Dead letters keep their claim, so a worker that was only slow can
        still record what happened. Returns (requeued, dead)."""
        resend = sorted(set(resend_kinds))
        held = deliveries.c.lease_until_ms.is_not(None)
        stale = held if everything else sa.and_(held, deliveries.c.lease_until_ms < now_ms)
        async with self.db.transaction() as conn:
            requeued = await conn.execute(
                deliveries.update()
                .where(
                    stale,
                    sa.or_(
                        deliveries.c.status == "claimed",
                        sa.and_(deliveries.c.status == "sending", deliveries.c.kind.in_(resend)),
                    ),
                )
                .values(status="queued", claim=None, lease_until_ms=None, updated_ms=now_ms)
            )
            dead = await conn.execute(
                deliveries.update()
                .where(stale, deliveries.c.status == "sending")
                .values(
                    status="dead",
                    lease_until_ms=None,
                    reason="interrupted",
                    detail=(
                        "the worker stopped while the provider had the message: it may or may "
                        "not have been sent, so it is not retried automatically (replay it if "
                        "it was not received)"
                    ),
                    updated_ms=now_ms,
                )
            )
        return int(requeued.rowcount or 0), int(dead.rowcount or 0)

    async def next_due_ms(self) -> int | None:
        """When the earliest queued delivery comes due (None when nothing is queued)."""
        async with self.db.connect() as conn:
            value = await conn.scalar(
                sa.select(sa.func.min(deliveries.c.next_attempt_ms)).where(
                    deliveries.c.status == "queued"
                )
            )
        return None if value is None else int(value)

    # -- reads for the worker -------------------------------------------------------------------

    async def recent_sends(
        self,
        conn: AsyncConnection,
        workspace_id: str,
        profile_ids: Iterable[str],
        since_ms: int,
        *,
        ignore_kinds: Iterable[str] = (),
    ) -> dict[str, list[RecentSend]]:
        """Messages sent to these profiles since `since_ms` (by channel kind), for frequency
        caps; kinds in `ignore_kinds` do not count."""
        found: dict[str, list[RecentSend]] = defaultdict(list)
        ignored = set(ignore_kinds)
        for part in _slices(sorted(set(profile_ids))):
            rows = await conn.execute(
                sa.select(
                    deliveries.c.profile_id,
                    deliveries.c.kind,
                    deliveries.c.category,
                    deliveries.c.sent_ms,
                ).where(
                    deliveries.c.workspace_id == workspace_id,
                    deliveries.c.profile_id.in_(part),
                    deliveries.c.sent_ms > since_ms,
                )
            )
            for row in rows:
                if row.kind in ignored:
                    continue
                category = MessageCategory(row.category or MessageCategory.MARKETING.value)
                found[row.profile_id].append(RecentSend(row.kind or "", category, row.sent_ms))
        return dict(found)

    # -- reads and changes for the API ----------------------------------------------------------

    async def get(self, workspace_id: str, delivery_id: str) -> DeliveryRow:
        """One delivery; NotFound if the workspace has no such message."""
        async with self.db.connect() as conn:
            row = (
                await conn.execute(
                    sa.select(deliveries).where(
                        deliveries.c.workspace_id == workspace_id, deliveries.c.id == delivery_id
                    )
                )
            ).first()
        if row is None:
            raise NotFound(f"no message {delivery_id!r} in this workspace", field="id")
        return _row(row)

    async def get_any(self, delivery_id: str) -> DeliveryRow | None:
        """A delivery by id whatever its workspace (tracking links carry the workspace)."""
        async with self.db.connect() as conn:
            row = (
                await conn.execute(sa.select(deliveries).where(deliveries.c.id == delivery_id))
            ).first()
        return None if row is None else _row(row)

    async def by_provider_message(self, provider_message_id: str) -> DeliveryRow | None:
        """The delivery a provider knows under this message id (status callbacks)."""
        async with self.db.connect() as conn:
            row = (
                await conn.execute(
                    sa.select(deliveries)
                    .where(deliveries.c.provider_message_id == provider_message_id)
                    .order_by(deliveries.c.id.desc())
                    .limit(1)
                )
            ).first()
        return None if row is None else _row(row)

    async def search(
        self,
        workspace_id: str,
        *,
        statuses: Sequence[str] = (),
        channel: str | None = None,
        profile_id: str | None = None,
        journey_key: str | None = None,
        template: str | None = None,
        limit: int = 50,
        before: str | None = None,
    ) -> tuple[list[DeliveryRow], str | None]:
        """Deliveries newest first, filtered; returns the page and the `before` of the next."""
        if not 1 <= limit <= 1000:
            raise InvalidInput("limit must be between 1 and 1000", field="limit")
        unknown = sorted(set(statuses) - set(STATUSES))
        if unknown:
            raise InvalidInput(
                f"unknown status {unknown[0]!r} (known: {', '.join(STATUSES)})", field="status"
            )
        query = (
            sa.select(deliveries)
            .where(deliveries.c.workspace_id == workspace_id)
            .order_by(deliveries.c.id.desc())
            .limit(limit + 1)
        )
        if statuses:
            query = query.where(deliveries.c.status.in_(list(statuses)))
        for column, value in (
            (deliveries.c.channel, channel),
            (deliveries.c.profile_id, profile_id),
            (deliveries.c.journey_key, journey_key),
            (deliveries.c.template, template),
        ):
            if value is not None:
                query = query.where(column == value)
        if before is not None:
            query = query.where(deliveries.c.id < before)
        async with self.db.connect() as conn:
            rows = [_row(r) for r in await conn.execute(query)]
        page = rows[:limit]
        return page, (page[-1].id if len(rows) > limit else None)

    async def counts(self, workspace_id: str) -> dict[str, int]:
        """How many deliveries a workspace has in each status."""
        async with self.db.connect() as conn:
            rows = await conn.execute(
                sa.select(deliveries.c.status, sa.func.count())
                .where(deliveries.c.workspace_id == workspace_id)
                .group_by(deliveries.c.status)
            )
            return {row[0]: int(row[1]) for row in rows}

    async def requeue(
        self, workspace_id: str, ids: Sequence[str] | None, now_ms: int, *, limit: int = 10_000
    ) -> list[str]:
        """Put failed or dead deliveries back in the queue (all of them when `ids` is None);
        returns the ids requeued (a delivery in another status is left alone)."""
        async with self.db.transaction() as conn:
            query = (
                sa.select(deliveries.c.id)
                .where(
                    deliveries.c.workspace_id == workspace_id,
                    deliveries.c.status.in_(REPLAYABLE),
                )
                .order_by(deliveries.c.id)
                .limit(limit)
            )
            if ids is not None:
                query = query.where(deliveries.c.id.in_(list(ids)))
            chosen = list((await conn.execute(query)).scalars())
            for part in _slices(chosen):
                await conn.execute(
                    deliveries.update()
                    .where(deliveries.c.id.in_(part), deliveries.c.status.in_(REPLAYABLE))
                    .values(
                        status="queued",
                        attempts=0,
                        next_attempt_ms=now_ms,
                        reason=None,
                        detail=None,
                        claim=None,
                        lease_until_ms=None,
                        updated_ms=now_ms,
                    )
                )
        return chosen

    async def mark(
        self,
        conn: AsyncConnection,
        delivery_id: str,
        *,
        status: str | None = None,
        first: Mapping[str, int] | None = None,
        now_ms: int,
        values: Mapping[str, Any] | None = None,
    ) -> None:
        """Record feedback about a sent message: a new status and/or first-time instants
        (`opened_ms`, `clicked_ms`, `delivered_ms` are set only if still empty)."""
        update: dict[str, Any] = {"updated_ms": now_ms, **(values or {})}
        if status is not None:
            update["status"] = status
        for column, at_ms in (first or {}).items():
            update[column] = sa.func.coalesce(deliveries.c[column], at_ms)
        await conn.execute(
            deliveries.update().where(deliveries.c.id == delivery_id).values(**update)
        )

    # -- secrets ----------------------------------------------------------------------------------

    async def secret(self, name: str, candidate: str, now_ms: int) -> str:
        """The stored secret called `name`, storing `candidate` first if there is none (several
        processes starting at once agree on the first one stored)."""
        async with self.db.transaction() as conn:
            await conn.execute(
                _insert(conn, delivery_secrets)
                .values(name=name, value=candidate, created_ms=now_ms)
                .on_conflict_do_nothing()
            )
            value = await conn.scalar(
                sa.select(delivery_secrets.c.value).where(delivery_secrets.c.name == name)
            )
        return str(value)
