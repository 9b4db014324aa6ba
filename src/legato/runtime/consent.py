"""Consent: subscription changes with double opt-in for email, the preference centre, the
suppression list, and the export of consent records as evidence.

Every change is a consent record (channel, topic, status, source, time, evidence) appended in
the same transaction as its `Subscription Changed` event; records are never edited, the
current state is their fold (`legato.domain.consent`). Subscribing where double opt-in applies
records `pending` and queues a confirmation email whose signed link (`/c/...`) confirms it.
Consent is kept per channel kind (email, sms...), so every channel of a kind obeys it. Never
decides whether a message goes out: the delivery gate does, from these records.
"""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from dataclasses import dataclass

import orjson
from sqlalchemy.ext.asyncio import AsyncConnection

from legato.channels.tracking import ConfirmClaim
from legato.domain.consent import (
    ConsentChange,
    ConsentState,
    ConsentStatus,
    OptMode,
    SubscriptionTopic,
    Suppression,
    SuppressionReason,
    subscribe_change,
)
from legato.domain.delivery import suppression_key, validate_suppression_address
from legato.errors import InvalidInput, NotFound
from legato.ids import new_id
from legato.ports import Clock
from legato.runtime.channels import (
    BUILTIN_CHANNELS,
    CONFIRMATION_TEMPLATE,
    KNOWN_KINDS,
    DeliveryConfig,
    WorkspaceConfig,
)
from legato.runtime.links import Links
from legato.runtime.timeline import (
    MESSAGE_UNSUBSCRIBED,
    AppendInternal,
    consent_event,
    message_event,
)
from legato.store.consent import ConsentStore
from legato.store.database import Database
from legato.store.delivery import PRIORITY_TRANSACTIONAL, DeliveryStore, NewDelivery
from legato.store.recipients import RecipientStore
from legato.store.runs import InternalEvent

#: Channel kinds a person can opt in and out of (built-in in-app and web follow the app's own
#: settings, not consent).
CONSENT_KINDS = frozenset(KNOWN_KINDS - set(BUILTIN_CHANNELS.values()))
#: Export formats of consent evidence.
EXPORT_FORMATS = ("csv", "json")
_CSV_COLUMNS = ("id", "profile_id", "channel", "topic", "status", "source", "at_ms", "evidence")


@dataclass(frozen=True, slots=True)
class ConsentOutcome:
    """What a change did: the record (None when nothing changed) and the confirmation message
    queued for double opt-in (its delivery id), if any."""

    status: ConsentStatus
    record_id: str | None
    confirmation_id: str | None = None


@dataclass(frozen=True, slots=True)
class Preference:
    """One line of the preference centre: a channel (topic None) or a topic, and its state."""

    channel: str
    topic: str | None
    name: str
    description: str
    subscribed: bool
    pending: bool

    @property
    def field(self) -> str:
        """The form field naming this line: `email` or `email:newsletter`."""
        return self.channel if self.topic is None else f"{self.channel}:{self.topic}"


def _evidence(values: Mapping[str, object] | None) -> dict[str, str]:
    return {key: str(value) for key, value in (values or {}).items() if value is not None}


class ConsentService:
    """Records consent changes and keeps the suppression list of workspaces."""

    def __init__(
        self,
        db: Database,
        store: ConsentStore,
        deliveries: DeliveryStore,
        people: RecipientStore,
        config: DeliveryConfig,
        links: Links,
        append: AppendInternal,
        clock: Clock,
        *,
        wake: Callable[[], None] = lambda: None,
    ) -> None:
        self.db = db
        self.store = store
        self.deliveries = deliveries
        self.people = people
        self.config = config
        self.links = links
        self.append = append
        self.clock = clock
        self.wake = wake

    # -- changes --------------------------------------------------------------------------------

    async def change(
        self,
        workspace_id: str,
        profile_id: str,
        *,
        channel: str,
        topic: str | None = None,
        status: ConsentStatus | str,
        source: str,
        evidence: Mapping[str, object] | None = None,
        message_id: str | None = None,
    ) -> ConsentOutcome:
        """Record that a person (un)subscribed from a channel or topic. Subscribing where double
        opt-in applies records `pending` and queues the confirmation email. Saying what the
        latest record already says records nothing."""
        config = await self.config.snapshot(workspace_id)
        kind, topic_doc = self._target(config, channel, topic)
        try:
            wanted = ConsentStatus(status)
        except ValueError:
            raise InvalidInput(
                "status must be subscribed or unsubscribed", field="status"
            ) from None
        if wanted is ConsentStatus.PENDING:
            raise InvalidInput("status must be subscribed or unsubscribed", field="status")
        if not source or len(source) > 64:
            raise InvalidInput("source is 1 to 64 characters", field="source")
        now_ms = self.clock.now_ms()
        proof = _evidence({**(evidence or {}), "message_id": message_id})
        if wanted is ConsentStatus.SUBSCRIBED:
            record = subscribe_change(
                channel=kind,
                topic=topic_doc,
                policy=config.policy.channel_policy(kind),
                source=source,
                at_ms=now_ms,
                evidence=proof,
            )
            if record.status is ConsentStatus.PENDING and kind != "email":
                # Confirmation links go by email; elsewhere an explicit opt-in stands.
                record = ConsentChange(
                    kind, record.topic, ConsentStatus.SUBSCRIBED, source, now_ms, proof
                )
        else:
            record = ConsentChange(kind, topic, ConsentStatus.UNSUBSCRIBED, source, now_ms, proof)
        message = await self.deliveries.get_any(message_id) if message_id is not None else None
        if message is not None and message.workspace_id != workspace_id:
            message = None
        confirmation: str | None = None
        async with self.db.transaction() as conn:
            who = (await self.people.recipients(conn, workspace_id, [profile_id])).get(profile_id)
            if who is None:
                raise NotFound(f"no profile {profile_id!r} in this workspace", field="profile_id")
            history = await self.store.changes_of(conn, workspace_id, [who.profile_id])
            state = ConsentState.from_changes(history.get(who.profile_id, []))
            if state.status(kind, record.topic) is record.status:
                return ConsentOutcome(record.status, None)
            (record_id,) = await self.store.record(conn, workspace_id, who.profile_id, [record])
            events: list[InternalEvent] = [
                consent_event(workspace_id, record_id, record, who, who.profile_id)
            ]
            if message is not None and record.status is ConsentStatus.UNSUBSCRIBED:
                event = message_event(
                    message,
                    MESSAGE_UNSUBSCRIBED,
                    suffix=f"unsubscribed:{record_id}",
                    at_ms=now_ms,
                    who=who,
                    source=source,
                    unsubscribed_topic=record.topic,
                )
                if event is not None:
                    events.append(event)
            if record.status is ConsentStatus.PENDING:
                confirmation = await self._queue_confirmation(
                    conn,
                    config,
                    who.profile_id,
                    record,
                    record_id,
                    None if topic_doc is None else topic_doc.name or topic_doc.key,
                )
            await self.append(conn, events)
        if confirmation is not None:
            self.wake()
        return ConsentOutcome(record.status, record_id, confirmation)

    def _target(
        self, config: WorkspaceConfig, channel: str, topic: str | None
    ) -> tuple[str, SubscriptionTopic | None]:
        kind = config.kind_of(channel) or channel
        if kind not in CONSENT_KINDS:
            known = ", ".join(sorted(CONSENT_KINDS))
            raise InvalidInput(
                f"consent is kept per channel kind ({known}), not {channel!r}", field="channel"
            )
        if topic is None:
            return kind, None
        topic_doc = config.topics.get(topic)
        if topic_doc is None:
            raise NotFound(f"no subscription topic {topic!r} in this workspace", field="topic")
        if topic_doc.channel != kind:
            raise InvalidInput(
                f"topic {topic!r} belongs to channel {topic_doc.channel!r}, not {kind!r}",
                field="topic",
            )
        return kind, topic_doc

    async def _queue_confirmation(
        self,
        conn: AsyncConnection,
        config: WorkspaceConfig,
        profile_id: str,
        record: ConsentChange,
        record_id: str,
        topic_name: str | None,
    ) -> str | None:
        channel = config.channel_of_kind("email")
        if channel is None:
            return None
        tracker = await self.links.tracker()
        url = tracker.confirm_url(
            workspace_id=config.workspace_id,
            profile_id=profile_id,
            channel=record.channel,
            topic=record.topic,
        )
        delivery_id = new_id()
        await self.deliveries.enqueue(
            conn,
            [
                NewDelivery(
                    workspace_id=config.workspace_id,
                    key=f"confirm:{record_id}",
                    source="confirm",
                    priority=PRIORITY_TRANSACTIONAL,
                    profile_id=profile_id,
                    channel=channel,
                    template=CONFIRMATION_TEMPLATE,
                    topic=None,
                    request={"data": {"confirm_url": url, "topic_name": topic_name}},
                )
            ],
            [delivery_id],
            self.clock.now_ms(),
        )
        return delivery_id

    async def confirm(
        self, claim: ConfirmClaim, evidence: Mapping[str, object] | None = None
    ) -> ConsentOutcome:
        """Confirm a pending double opt-in (a confirmation link was followed)."""
        async with self.db.connect() as conn:
            who = await self.people.recipients(conn, claim.workspace_id, [claim.profile_id])
            history = await self.store.changes_of(
                conn, claim.workspace_id, [p.profile_id for p in who.values()]
            )
        if claim.profile_id not in who:
            raise NotFound("this confirmation link's person no longer exists", field="token")
        profile_id = who[claim.profile_id].profile_id
        state = ConsentState.from_changes(history.get(profile_id, []))
        current = state.status(claim.channel, claim.topic)
        if current is ConsentStatus.SUBSCRIBED:
            return ConsentOutcome(current, None)
        if current is not ConsentStatus.PENDING:
            raise InvalidInput(
                "nothing to confirm: this subscription was withdrawn since", field="token"
            )
        now_ms = self.clock.now_ms()
        record = ConsentChange(
            claim.channel,
            claim.topic,
            ConsentStatus.SUBSCRIBED,
            "double_opt_in",
            now_ms,
            _evidence(evidence),
        )
        async with self.db.transaction() as conn:
            (record_id,) = await self.store.record(conn, claim.workspace_id, profile_id, [record])
            await self.append(
                conn,
                [
                    consent_event(
                        claim.workspace_id, record_id, record, who[claim.profile_id], profile_id
                    )
                ],
            )
        return ConsentOutcome(ConsentStatus.SUBSCRIBED, record_id)

    # -- reading state and the preference centre -----------------------------------------------

    async def state(self, workspace_id: str, profile_id: str) -> ConsentState:
        """A person's current consent."""
        async with self.db.connect() as conn:
            who = (await self.people.recipients(conn, workspace_id, [profile_id])).get(profile_id)
            if who is None:
                raise NotFound(f"no profile {profile_id!r} in this workspace", field="profile_id")
            history = await self.store.changes_of(conn, workspace_id, [who.profile_id])
        return ConsentState.from_changes(history.get(who.profile_id, []))

    async def preferences(self, workspace_id: str, profile_id: str) -> list[Preference]:
        """The lines of a person's preference centre: each channel kind the workspace uses,
        then its topics, with what the person receives now."""
        config = await self.config.snapshot(workspace_id)
        state = await self.state(workspace_id, profile_id)
        kinds = sorted(
            (
                {entry.kind for entry in config.channels.values()}
                | {topic.channel for topic in config.topics.values()}
            )
            & CONSENT_KINDS
        )
        lines: list[Preference] = []
        for kind in kinds:
            policy = config.policy.channel_policy(kind)
            status = state.status(kind)
            lines.append(
                Preference(
                    channel=kind,
                    topic=None,
                    name=f"{kind} messages",
                    description="",
                    subscribed=status is ConsentStatus.SUBSCRIBED
                    or (status is None and policy.mode is OptMode.OPT_OUT),
                    pending=status is ConsentStatus.PENDING,
                )
            )
            for topic in sorted(config.topics.values(), key=lambda t: t.key):
                if topic.channel != kind:
                    continue
                topic_status = state.status(kind, topic.key)
                lines.append(
                    Preference(
                        channel=kind,
                        topic=topic.key,
                        name=topic.name or topic.key,
                        description=topic.description,
                        subscribed=topic_status is ConsentStatus.SUBSCRIBED
                        or (topic_status is None and topic.mode is OptMode.OPT_OUT),
                        pending=topic_status is ConsentStatus.PENDING,
                    )
                )
        return lines

    async def save_preferences(
        self,
        workspace_id: str,
        profile_id: str,
        checked: Iterable[str],
        *,
        source: str = "preference_centre",
        evidence: Mapping[str, object] | None = None,
    ) -> list[ConsentOutcome]:
        """Apply a submitted preference form: `checked` holds the fields ticked; each line whose
        state differs becomes a change (records only what changed)."""
        ticked = set(checked)
        outcomes: list[ConsentOutcome] = []
        for line in await self.preferences(workspace_id, profile_id):
            want = line.field in ticked
            if want == (line.subscribed or line.pending):
                continue
            outcomes.append(
                await self.change(
                    workspace_id,
                    profile_id,
                    channel=line.channel,
                    topic=line.topic,
                    status=ConsentStatus.SUBSCRIBED if want else ConsentStatus.UNSUBSCRIBED,
                    source=source,
                    evidence=evidence,
                )
            )
        return outcomes

    # -- suppressions ---------------------------------------------------------------------------

    def _address(self, channel: str, address: str) -> tuple[str, str, str]:
        if channel not in CONSENT_KINDS:
            known = ", ".join(sorted(CONSENT_KINDS))
            raise InvalidInput(f"channel must be one of {known}", field="channel")
        try:
            normal = validate_suppression_address(channel, address)
        except InvalidInput as exc:
            raise InvalidInput(exc.message, field="address") from exc
        return channel, normal, suppression_key(channel, normal)

    async def suppress(
        self,
        workspace_id: str,
        channel: str,
        address: str,
        *,
        reason: SuppressionReason | str = SuppressionReason.MANUAL,
        note: str = "",
        profile_id: str | None = None,
        message_id: str | None = None,
    ) -> bool:
        """Put an address on the suppression list; False if it was on it already."""
        kind, normal, key = self._address(channel, address)
        try:
            why = SuppressionReason(reason)
        except ValueError:
            known = ", ".join(r.value for r in SuppressionReason)
            raise InvalidInput(f"reason must be one of {known}", field="reason") from None
        entry = Suppression(kind, normal, why, self.clock.now_ms(), note[:1000])
        async with self.db.transaction() as conn:
            return await self.store.suppress(
                conn, workspace_id, entry, key, profile_id=profile_id, message_id=message_id
            )

    async def unsuppress(self, workspace_id: str, channel: str, address: str) -> None:
        """Take an address off the suppression list."""
        kind, _, key = self._address(channel, address)
        await self.store.unsuppress(workspace_id, kind, key)

    # -- evidence -------------------------------------------------------------------------------

    async def export(
        self,
        workspace_id: str,
        *,
        fmt: str = "csv",
        profile_id: str | None = None,
        since_ms: int | None = None,
        until_ms: int | None = None,
    ) -> AsyncIterator[bytes]:
        """Consent records as CSV (one row each, evidence as JSON) or a JSON array, streamed."""
        if fmt not in EXPORT_FORMATS:
            raise InvalidInput("format must be csv or json", field="format")
        records = self.store.export(
            workspace_id, profile_id=profile_id, since_ms=since_ms, until_ms=until_ms
        )
        if fmt == "json":
            yield b"["
            first = True
            async for record in records:
                yield (b"" if first else b",") + orjson.dumps(record.to_dict())
                first = False
            yield b"]"
            return
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\r\n")
        writer.writerow(_CSV_COLUMNS)
        async for record in records:
            row = record.to_dict()
            row["evidence"] = orjson.dumps(row["evidence"], option=orjson.OPT_SORT_KEYS).decode()
            writer.writerow(
                [row[column] if row[column] is not None else "" for column in _CSV_COLUMNS]
            )
            if buffer.tell() > 64 * 1024:
                yield buffer.getvalue().encode()
                buffer.seek(0)
                buffer.truncate()
        yield buffer.getvalue().encode()
