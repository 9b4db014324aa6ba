"""Messages as the admin API and CLI see them: the transactional send API, template previews
(of saved templates and of unsaved drafts), the list of deliveries with their failures and dead
letters, and replaying them.

A transactional send is queued like a journey's, at the transactional priority (served before
bulk traffic) and wakes the worker; its idempotency key (the caller's, or a new one) makes a
retried request queue one message. Never composes SQL and never calls a provider.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from legato.channels.templates import TemplateRenderer
from legato.domain.delivery import normalize_email, normalize_phone
from legato.errors import InvalidInput, NotFound
from legato.ids import new_id
from legato.ports import Clock
from legato.runtime.channels import DeliveryConfig
from legato.runtime.composer import render_context
from legato.runtime.links import Links
from legato.store.database import Database
from legato.store.delivery import (
    PRIORITY_TRANSACTIONAL,
    DeliveryRow,
    DeliveryStore,
    NewDelivery,
)
from legato.store.recipients import Recipient, RecipientStore

#: The ways a caller may name a recipient, in the order they are tried.
RECIPIENT_FIELDS = ("profile_id", "user_id", "email", "phone")
#: Longest caller-chosen idempotency key.
MAX_KEY_CHARS = 200
#: The key a draft template is previewed under when it has none yet.
DRAFT_KEY = "draft"


class Messages:
    """Queues transactional messages and reads, previews and replays deliveries."""

    def __init__(
        self,
        db: Database,
        store: DeliveryStore,
        people: RecipientStore,
        config: DeliveryConfig,
        links: Links,
        renderer: TemplateRenderer,
        clock: Clock,
        *,
        wake: Callable[[], None] = lambda: None,
    ) -> None:
        self.db = db
        self.store = store
        self.people = people
        self.config = config
        self.links = links
        self.renderer = renderer
        self.clock = clock
        self.wake = wake

    async def resolve(
        self, workspace_id: str, to: Mapping[str, Any]
    ) -> tuple[str | None, str | None]:
        """(profile id, explicit address) of a recipient given as one of RECIPIENT_FIELDS."""
        given = [(name, to.get(name)) for name in RECIPIENT_FIELDS if to.get(name) is not None]
        if len(given) != 1 or not isinstance(given[0][1], str) or not given[0][1].strip():
            raise InvalidInput(
                "give the recipient as exactly one of profile_id, user_id, email, phone",
                path="to",
            )
        name, value = given[0]
        assert isinstance(value, str)
        if name == "profile_id":
            async with self.db.connect() as conn:
                found = await self.people.recipients(conn, workspace_id, [value])
            if value not in found:
                raise NotFound(f"no profile {value!r} in this workspace", path="to.profile_id")
            return found[value].profile_id, None
        if name == "user_id":
            profile = await self.people.profile_for(workspace_id, "user_id", value)
            if profile is None:
                raise NotFound(f"no profile with user id {value!r}", path="to.user_id")
            return profile, None
        try:
            address = normalize_email(value) if name == "email" else normalize_phone(value)
        except InvalidInput as exc:
            raise InvalidInput(exc.message, path=f"to.{name}") from exc
        lookup = address.lower() if name == "email" else address
        return await self.people.profile_for(workspace_id, name, lookup), address

    async def send(
        self,
        workspace_id: str,
        *,
        template: str,
        to: Mapping[str, Any],
        data: Mapping[str, Any] | None = None,
        channel: str | None = None,
        idempotency_key: str | None = None,
    ) -> tuple[DeliveryRow, bool]:
        """Queue one message ahead of bulk traffic; returns it and whether it is new (False:
        the idempotency key was used before, the first message stands)."""
        config = await self.config.snapshot(workspace_id)
        entry = config.template(template)
        if entry is None:
            raise NotFound(f"no template {template!r} in this workspace", path="template")
        channel = channel or entry.channel
        if config.kind_of(channel) is None:
            raise InvalidInput(f"channel {channel!r} is not configured", path="channel")
        if idempotency_key is not None and not 0 < len(idempotency_key) <= MAX_KEY_CHARS:
            raise InvalidInput(
                f"idempotency_key has 1 to {MAX_KEY_CHARS} characters", path="idempotency_key"
            )
        if data is not None and not isinstance(data, Mapping):
            raise InvalidInput("data must be an object", path="data")
        profile_id, address = await self.resolve(workspace_id, to)
        key = f"api:{idempotency_key or new_id()}"
        request: dict[str, Any] = {"data": dict(data or {})}
        if address is not None:
            request["to"] = address
        delivery_id = new_id()
        async with self.db.transaction() as conn:
            await self.store.enqueue(
                conn,
                [
                    NewDelivery(
                        workspace_id=workspace_id,
                        key=key,
                        source="api",
                        priority=PRIORITY_TRANSACTIONAL,
                        profile_id=profile_id,
                        channel=channel,
                        template=template,
                        topic=None,
                        request=request,
                    )
                ],
                [delivery_id],
                self.clock.now_ms(),
            )
        row = await self.store.by_key(workspace_id, key)
        assert row is not None
        created = row.id == delivery_id
        if created:
            self.wake()
        return row, created

    async def preview(
        self,
        workspace_id: str,
        template: str | None,
        *,
        to: Mapping[str, Any] | None,
        draft: Mapping[str, Any] | None = None,
        data: Mapping[str, Any] | None = None,
        event: Mapping[str, Any] | None = None,
        locale: str | None = None,
    ) -> dict[str, Any]:
        """Render a template for a chosen person, exactly as it would be sent (without link
        tracking): the saved `template`, or the unsaved `draft` document, checked and prepared
        as saving it would (MJML compiled, locales merged, Liquid parsed in the sandbox) and
        saving nothing; a draft given no `to` is rendered for nobody (it checks the syntax).
        A syntax or rendering error is a 422 naming the field, line and column."""
        if draft is not None:
            body = {"kind": "Template", **draft}
            body.setdefault("key", template or DRAFT_KEY)
            # The checks and preparation of saving (`DeliveryConfig.save_template`), unsaved.
            entry = await self.config.prepare_template(workspace_id, body)
            assert entry is not None  # None only for a channel declared in the same file
            template = entry.key
        else:
            if template is None:
                raise InvalidInput("name a saved template or give a draft", path="template")
            config = await self.config.snapshot(workspace_id)
            found = config.template(template)
            if found is None:
                raise NotFound(f"no template {template!r} in this workspace", path="template")
            entry = found
        profile_id = None
        if to is not None or draft is None:
            profile_id, _ = await self.resolve(workspace_id, to or {})
        who: Recipient | None = None
        if profile_id is not None:
            async with self.db.connect() as conn:
                who = (await self.people.recipients(conn, workspace_id, [profile_id])).get(
                    profile_id
                )
        tracker = await self.links.tracker()
        preview_id = "preview"
        unsubscribe = preferences = None
        if who is not None:
            unsubscribe = tracker.unsubscribe_url(
                workspace_id=workspace_id,
                profile_id=who.profile_id,
                channel=entry.kind,
                topic=entry.prepared.topic,
            )
            preferences = tracker.preferences_url(
                workspace_id=workspace_id, profile_id=who.profile_id
            )
        trigger = dict(event or {})
        context = render_context(
            message_id=preview_id,
            channel=entry.channel,
            template=template,
            who=who,
            request={"data": dict(data or {}), "trigger": trigger},
            unsubscribe_url=unsubscribe,
            preferences_url=preferences,
        )
        wanted = locale or (who.traits.get("locale") if who else None)
        rendered = self.renderer.render(
            entry.prepared, context, locale=wanted if isinstance(wanted, str) else None
        )
        content = {
            f.name: _plain(getattr(rendered.content, f.name))
            for f in dataclasses.fields(rendered.content)
        }
        return {
            "template": template,
            "channel": entry.channel,
            "kind": entry.kind,
            "locale": rendered.locale,
            "profile_id": who.profile_id if who else None,
            "content": content,
        }

    async def replay(self, workspace_id: str, ids: Sequence[str] | None) -> list[str]:
        """Queue failed messages and dead letters again (all of them when `ids` is None)."""
        if ids is not None:
            for delivery_id in ids:
                await self.store.get(workspace_id, delivery_id)
        moved = await self.store.requeue(workspace_id, ids, self.clock.now_ms())
        if moved:
            self.wake()
        return moved

    async def get(self, workspace_id: str, delivery_id: str) -> DeliveryRow:
        """One message."""
        return await self.store.get(workspace_id, delivery_id)

    async def search(
        self, workspace_id: str, **filters: Any
    ) -> tuple[list[DeliveryRow], str | None]:
        """Messages newest first, filtered (see `DeliveryStore.search`)."""
        return await self.store.search(workspace_id, **filters)

    async def counts(self, workspace_id: str) -> dict[str, int]:
        """How many messages are in each status."""
        return await self.store.counts(workspace_id)


def _plain(value: Any) -> Any:
    """A rendered field as JSON can hold it (read-only mappings and tuples included)."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value
