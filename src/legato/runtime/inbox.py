"""The built-in channels: the in-app inbox and web personalisation placements.

Both are `ChannelProvider`s that store the rendered message for the person instead of calling
a vendor: `inapp` adds it to the person's inbox, `web` makes it the content of its placement.
The row id is the delivery id, so a repeated send stores one message. `InboxHub` wakes the
server-sent-event streams of a person on this process when something arrives (other processes'
streams see it at their next poll). `Inbox` is what the client API calls: fetch, mark read,
dismiss, the live stream, and the content decided for a placement. Never decides whether to
send and never composes SQL.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from typing import Any

from legato.domain.delivery import InAppContent, OutboundMessage, SendResult
from legato.errors import NotFound, Permanent
from legato.ports import Clock
from legato.store.devices import ClientIdentity, DeviceStore
from legato.store.inbox import InboxMessage, InboxStore


class InboxHub:
    """Per-person wake-ups for live inbox streams on this process."""

    def __init__(self) -> None:
        self._waiters: dict[tuple[str, str], set[asyncio.Event]] = defaultdict(set)

    @contextmanager
    def listen(self, workspace_id: str, profile_ids: list[str]) -> Iterator[asyncio.Event]:
        """An event set whenever a message arrives for one of these profiles."""
        event = asyncio.Event()
        keys = [(workspace_id, pid) for pid in profile_ids]
        for key in keys:
            self._waiters[key].add(event)
        try:
            yield event
        finally:
            for key in keys:
                self._waiters[key].discard(event)
                if not self._waiters[key]:
                    del self._waiters[key]

    def publish(self, workspace_id: str, profile_id: str) -> None:
        """Wake the streams of a person."""
        for event in self._waiters.get((workspace_id, profile_id), ()):
            event.set()


class InboxChannel:
    """`ChannelProvider` of the built-in `inapp` (inbox) and `web` (placements) channels."""

    def __init__(self, kind: str, store: InboxStore, hub: InboxHub, clock: Clock) -> None:
        self._kind = kind
        self.store = store
        self.hub = hub
        self.clock = clock

    @property
    def channel(self) -> str:
        """The channel kind served (`inapp` or `web`)."""
        return self._kind

    @property
    def name(self) -> str:
        """The channel's key (the same as its kind)."""
        return self._kind

    async def send(self, message: OutboundMessage) -> SendResult:
        """Store the message for the person (once per message id) and wake their streams."""
        content = message.content
        if not isinstance(content, InAppContent):
            raise Permanent(f"{self._kind} sends in-app content, got {type(content).__name__}")
        if message.profile_id is None:
            raise Permanent(f"{self._kind} messages need a profile", invalid_recipient=True)
        workspace_id = message.tags.get("workspace", "")
        placement = message.tags.get("placement", "") if self._kind == "web" else ""
        if self._kind == "web" and not placement:
            raise Permanent("a web message needs the placement its template names")
        expires = message.tags.get("expires_ms")
        body: dict[str, Any] = {
            "title": content.title,
            "body": content.body,
            "url": content.url,
            "image": content.image,
            "data": dict(content.data),
        }
        await self.store.put(
            message_id=message.message_id,
            workspace_id=workspace_id,
            profile_id=message.profile_id,
            placement=placement,
            template=message.tags.get("template", ""),
            content=body,
            now_ms=self.clock.now_ms(),
            expires_ms=int(expires) if expires else None,
        )
        self.hub.publish(workspace_id, message.profile_id)
        return SendResult(provider=self._kind, provider_message_id=message.message_id)

    async def aclose(self) -> None:
        """Nothing to release."""


class Inbox:
    """The client-side view: a person's inbox and placements, found by the id their app uses."""

    def __init__(
        self,
        store: InboxStore,
        devices: DeviceStore,
        hub: InboxHub,
        clock: Clock,
        *,
        poll_seconds: float = 5.0,
    ) -> None:
        self.store = store
        self.devices = devices
        self.hub = hub
        self.clock = clock
        self.poll_seconds = poll_seconds

    async def _family(self, workspace_id: str, who: ClientIdentity) -> list[str]:
        _, family = await self.devices.profile_family(workspace_id, who)
        return family

    async def messages(
        self,
        workspace_id: str,
        who: ClientIdentity,
        *,
        limit: int = 50,
        before: str | None = None,
        unread_only: bool = False,
    ) -> dict[str, Any]:
        """The person's live messages, newest first, and their unread count."""
        family = await self._family(workspace_id, who)
        if not family:
            return {"messages": [], "unread": 0, "next": None}
        now_ms = self.clock.now_ms()
        rows = await self.store.inbox(
            workspace_id,
            family,
            now_ms=now_ms,
            limit=limit + 1,
            before=before,
            unread_only=unread_only,
        )
        page = rows[:limit]
        return {
            "messages": [m.public() for m in page],
            "unread": await self.store.unread(workspace_id, family, now_ms),
            "next": page[-1].id if len(rows) > limit else None,
        }

    async def mark(
        self, workspace_id: str, who: ClientIdentity, message_id: str, what: str
    ) -> bool:
        """Mark a message `read` or `dismissed`; True the first time."""
        family = await self._family(workspace_id, who)
        if not family:
            raise NotFound("no such user in this workspace", field="userId")
        column = {"read": "read_ms", "dismissed": "dismissed_ms"}[what]
        return await self.store.touch(workspace_id, family, message_id, column, self.clock.now_ms())

    async def stream(
        self, workspace_id: str, who: ClientIdentity, *, after: str | None, stop: asyncio.Event
    ) -> AsyncIterator[InboxMessage | None]:
        """New messages as they arrive (oldest first); yields None as a keep-alive when a poll
        found nothing. Ends when `stop` is set."""
        family = await self._family(workspace_id, who)
        cursor = after
        with self.hub.listen(workspace_id, family) as arrived:
            while not stop.is_set():
                arrived.clear()
                if not family:
                    family = await self._family(workspace_id, who)
                found = (
                    await self.store.inbox(
                        workspace_id, family, now_ms=self.clock.now_ms(), after=cursor, limit=100
                    )
                    if family
                    else []
                )
                for message in found:
                    cursor = message.id
                    yield message
                if found:
                    continue
                yield None
                waits = [asyncio.ensure_future(arrived.wait()), asyncio.ensure_future(stop.wait())]
                _, pending = await asyncio.wait(
                    waits, timeout=self.poll_seconds, return_when=asyncio.FIRST_COMPLETED
                )
                for task in pending:
                    task.cancel()

    async def placement(
        self, workspace_id: str, who: ClientIdentity, placement: str
    ) -> InboxMessage | None:
        """The content decided for the person at a placement, if any."""
        family = await self._family(workspace_id, who)
        if not family:
            return None
        return await self.store.placement(workspace_id, family, placement, self.clock.now_ms())
