"""The platform's own events about messages and consent, as they go into the event log.

Every delivery outcome — sent, delivered, opened, clicked, bounced, complained, unsubscribed,
skipped (with its reason), failed — and every consent change is an internal event on the
person's timeline, so segments and journey conditions can use them ("opened an email in the
last 30 days", "wait until the message is clicked"). Event message ids derive from the delivery
id, so recording the same outcome twice logs one event. Builds values only; the caller appends
them (`RunStore.append_internal`) in the transaction that records the outcome.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from legato.domain.consent import ConsentChange
from legato.store.delivery import DeliveryRow
from legato.store.recipients import Recipient
from legato.store.runs import InternalEvent

MESSAGE_SENT = "Message Sent"
MESSAGE_DELIVERED = "Message Delivered"
MESSAGE_OPENED = "Message Opened"
MESSAGE_CLICKED = "Message Clicked"
MESSAGE_BOUNCED = "Message Bounced"
MESSAGE_COMPLAINED = "Message Complained"
MESSAGE_UNSUBSCRIBED = "Message Unsubscribed"
MESSAGE_SKIPPED = "Message Skipped"
MESSAGE_FAILED = "Message Failed"
SUBSCRIPTION_CHANGED = "Subscription Changed"

#: Every event name this module writes.
EVENT_NAMES = (
    MESSAGE_SENT,
    MESSAGE_DELIVERED,
    MESSAGE_OPENED,
    MESSAGE_CLICKED,
    MESSAGE_BOUNCED,
    MESSAGE_COMPLAINED,
    MESSAGE_UNSUBSCRIBED,
    MESSAGE_SKIPPED,
    MESSAGE_FAILED,
    SUBSCRIPTION_CHANGED,
)

#: Appends internal events on the caller's transaction (`RunStore.append_internal`).
AppendInternal = Callable[[AsyncConnection, Sequence[InternalEvent]], Awaitable[None]]


def message_event(
    row: DeliveryRow,
    name: str,
    *,
    suffix: str,
    at_ms: int,
    who: Recipient | None = None,
    **properties: Any,
) -> InternalEvent | None:
    """The event `name` about a delivery (None when it has no profile to put it on).

    Properties: message_id, channel, template, journey, node, category, topic, plus the given
    ones (reason, detail, provider, url...); missing values are left out.
    """
    profile_id = who.profile_id if who is not None else row.profile_id
    if profile_id is None:
        return None
    props: dict[str, Any] = {
        "message_id": row.id,
        "channel": row.channel,
        "template": row.template,
        "journey": row.journey_key,
        "journey_version": row.journey_version,
        "node": row.node_id,
        "category": row.category,
        "topic": row.topic,
        **properties,
    }
    context: dict[str, Any] = {"delivery": row.id}
    if row.run_id is not None:
        context["run_id"] = row.run_id
    return InternalEvent(
        workspace_id=row.workspace_id,
        message_id=f"{row.id}:{suffix}",
        event=name,
        profile_id=profile_id,
        user_id=who.user_id if who is not None else None,
        anonymous_id=who.anonymous_id if who is not None else None,
        timestamp_ms=at_ms,
        properties={k: v for k, v in props.items() if v is not None},
        context=context,
    )


def consent_event(
    workspace_id: str, record_id: str, change: ConsentChange, who: Recipient | None, profile_id: str
) -> InternalEvent:
    """The `Subscription Changed` event of one consent record."""
    props: dict[str, Any] = {
        "channel": change.channel,
        "status": change.status.value,
        "source": change.source,
    }
    if change.topic is not None:
        props["topic"] = change.topic
    message = change.evidence.get("message_id")
    if message:
        props["message_id"] = message
    return InternalEvent(
        workspace_id=workspace_id,
        message_id=f"consent:{record_id}",
        event=SUBSCRIPTION_CHANGED,
        profile_id=who.profile_id if who is not None else profile_id,
        user_id=who.user_id if who is not None else None,
        anonymous_id=who.anonymous_id if who is not None else None,
        timestamp_ms=change.at_ms,
        properties=props,
    )
