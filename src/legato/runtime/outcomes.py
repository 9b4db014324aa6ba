"""What happens to a message after it left: opens, clicks, and provider status callbacks
(delivered, bounced, complained, failed, unsubscribed).

Each is recorded on the delivery (first open, first click, delivered time, a new status) and
logged as an internal event in the same transaction; the event's message id derives from the
delivery id, so the same open or status reported twice is logged once. A hard bounce or a
complaint puts the address on the suppression list; an unsubscribe reported by the provider
becomes a consent record. Never composes SQL and never verifies signatures (the API does,
with `legato.channels.status`).
"""

from __future__ import annotations

from typing import Any

import structlog

from legato.channels.status import StatusUpdate
from legato.domain.consent import ConsentStatus, Suppression, SuppressionReason
from legato.domain.delivery import suppression_key
from legato.ports import Clock
from legato.runtime.consent import ConsentService
from legato.runtime.timeline import (
    MESSAGE_BOUNCED,
    MESSAGE_CLICKED,
    MESSAGE_COMPLAINED,
    MESSAGE_DELIVERED,
    MESSAGE_FAILED,
    MESSAGE_OPENED,
    AppendInternal,
    message_event,
)
from legato.store.consent import ConsentStore
from legato.store.database import Database
from legato.store.delivery import SENT_STATUSES, DeliveryRow, DeliveryStore
from legato.store.recipients import RecipientStore

log = structlog.get_logger(__name__)


class Outcomes:
    """Records feedback about sent messages."""

    def __init__(
        self,
        db: Database,
        deliveries: DeliveryStore,
        people: RecipientStore,
        consent_store: ConsentStore,
        consent: ConsentService,
        append: AppendInternal,
        clock: Clock,
    ) -> None:
        self.db = db
        self.deliveries = deliveries
        self.people = people
        self.consent_store = consent_store
        self.consent = consent
        self.append = append
        self.clock = clock

    async def _row(self, workspace_id: str, message_id: str) -> DeliveryRow | None:
        row = await self.deliveries.get_any(message_id)
        if row is None or row.workspace_id != workspace_id:
            return None
        return row

    async def opened(self, workspace_id: str, message_id: str, **evidence: Any) -> bool:
        """Record an open (pixel load, inbox read); True the first time."""
        row = await self._row(workspace_id, message_id)
        if row is None or row.opened_ms is not None:
            return False
        await self._note(row, MESSAGE_OPENED, "opened", first={"opened_ms": 1}, **evidence)
        return True

    async def clicked(
        self, workspace_id: str, message_id: str, url: str, link: int = 0, **evidence: Any
    ) -> bool:
        """Record a click on link number `link` (one event per link); True if the message is
        known."""
        row = await self._row(workspace_id, message_id)
        if row is None:
            return False
        if row.opened_ms is None:
            # A click is also an open (images may be blocked, the pixel never loaded).
            await self._note(row, MESSAGE_OPENED, "opened", first={"opened_ms": 1}, via="click")
        await self._note(
            row,
            MESSAGE_CLICKED,
            f"clicked:{link}",
            first={"clicked_ms": 1},
            url=url,
            link=link,
            **evidence,
        )
        return True

    async def status(self, workspace_id: str, update: StatusUpdate) -> DeliveryRow | None:
        """Apply a provider's status callback; None when the message is unknown (or belongs to
        another workspace)."""
        row = None
        if update.message_id is not None:
            row = await self._row(workspace_id, update.message_id)
        elif update.provider_message_id is not None:
            found = await self.deliveries.by_provider_message(update.provider_message_id)
            row = found if found is not None and found.workspace_id == workspace_id else None
        if row is None:
            return None
        reason = update.reason or None
        if update.status == "opened":
            await self.opened(workspace_id, row.id, source="provider")
        elif update.status == "clicked":
            await self.clicked(workspace_id, row.id, update.url or "", source="provider")
        elif update.status == "delivered":
            status = "delivered" if row.status == "sent" else None
            await self._note(
                row, MESSAGE_DELIVERED, "delivered", status=status, first={"delivered_ms": 1}
            )
        elif update.status == "bounced":
            await self._note(
                row,
                MESSAGE_BOUNCED,
                "bounced",
                status="bounced",
                suppress=SuppressionReason.HARD_BOUNCE if update.hard else None,
                reason=reason,
                hard=update.hard,
            )
        elif update.status == "complained":
            await self._note(
                row,
                MESSAGE_COMPLAINED,
                "complained",
                status="complained",
                suppress=SuppressionReason.COMPLAINT,
                reason=reason,
            )
        elif update.status == "failed":
            await self._note(row, MESSAGE_FAILED, "undelivered", status="failed", reason=reason)
        elif update.status == "unsubscribed" and row.profile_id and row.kind:
            await self.consent.change(
                workspace_id,
                row.profile_id,
                channel=row.kind,
                status=ConsentStatus.UNSUBSCRIBED,
                source="provider",
                evidence={"reason": update.reason},
                message_id=row.id,
            )
        return row

    async def _note(
        self,
        row: DeliveryRow,
        name: str,
        suffix: str,
        *,
        status: str | None = None,
        first: dict[str, int] | None = None,
        suppress: SuppressionReason | None = None,
        **properties: Any,
    ) -> None:
        now_ms = self.clock.now_ms()
        if status is not None and row.status not in SENT_STATUSES:
            # Feedback about a message that never left (or was replayed since) changes nothing
            # but the timeline.
            status = None
        async with self.db.transaction() as conn:
            people = await self.people.recipients(
                conn, row.workspace_id, [row.profile_id] if row.profile_id else []
            )
            who = people.get(row.profile_id or "")
            await self.deliveries.mark(
                conn,
                row.id,
                status=status,
                first={column: now_ms for column in (first or {})},
                now_ms=now_ms,
                values={"reason": properties["reason"]}
                if status and properties.get("reason")
                else None,
            )
            if suppress is not None and row.kind and row.address:
                await self.consent_store.suppress(
                    conn,
                    row.workspace_id,
                    Suppression(row.kind, row.address, suppress, now_ms, name),
                    suppression_key(row.kind, row.address),
                    profile_id=who.profile_id if who else row.profile_id,
                    message_id=row.id,
                )
            event = message_event(
                row,
                name,
                suffix=suffix,
                at_ms=now_ms,
                who=who,
                **{k: v for k, v in properties.items() if v is not None},
            )
            await self.append(conn, [event] if event is not None else [])
