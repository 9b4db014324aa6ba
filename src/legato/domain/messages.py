"""Tracking-spec messages: cheap validation and normalisation of what Segment/RudderStack SDKs send.

One request body becomes rows for the event log (`EventRow`) and rejections (`RejectedMessage`,
kept so nothing is silently dropped). This is the hot path of ingestion, so messages are checked
with plain dict and type tests, never with a model per event, and serialised once with orjson.

Pure: never reads the clock (`received_ms` is passed in), never draws random numbers (a missing
messageId comes from the injected `new_message_id`), never touches a socket, file or database.
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple

import orjson

from legato.errors import InvalidInput

#: The message types of the tracking spec.
MESSAGE_TYPES = frozenset({"identify", "track", "page", "screen", "group", "alias"})
#: Short route names (analytics.js posts to /v1/t, /v1/i ... and batches to /v1/b).
SHORT_TYPES = {
    "i": "identify",
    "t": "track",
    "p": "page",
    "s": "screen",
    "g": "group",
    "a": "alias",
}
#: The route kind of a body holding `{"batch": [...]}`.
BATCH = "batch"

#: Longest identifier, event name or messageId the log's indexed columns hold.
MAX_ID_CHARS = 200

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_EPOCH_NAIVE = datetime(1970, 1, 1)
_ONE_MS = timedelta(milliseconds=1)
# The body keys that describe the request, not the event: never copied into a stored message.
_TRANSPORT_KEYS = ("writeKey",)
_OBJECT_FIELDS = ("properties", "traits", "context", "integrations")


@dataclass(frozen=True, slots=True)
class MessageLimits:
    """Size limits applied to each message (the body's own limits are the API's business)."""

    max_message_bytes: int = 32 * 1024


class EventRow(NamedTuple):
    """One row of the `events` table, as ingestion appends it (`payload` is JSON text).

    A NamedTuple rather than a frozen dataclass: as immutable, four times cheaper to build
    (one per event), and already the tuple the database driver takes.
    """

    workspace_id: str
    message_id: str
    partition: int
    type: str
    event: str | None
    user_id: str | None
    anonymous_id: str | None
    timestamp_ms: int
    received_ms: int
    payload: str


@dataclass(frozen=True, slots=True)
class RejectedMessage:
    """A message refused at ingestion, with the reason and the field at fault."""

    workspace_id: str
    received_ms: int
    index: int
    reason: str
    field: str | None
    payload: str

    def public(self) -> dict[str, Any]:
        """What the HTTP answer says about it: `{index, reason, field}`."""
        return {"index": self.index, "reason": self.reason, "field": self.field}


@dataclass(frozen=True, slots=True)
class Normalised:
    """The outcome of one request: rows to append and messages refused."""

    rows: list[EventRow]
    rejected: list[RejectedMessage]


class _Refused(ValueError):
    """One message is invalid: `reason` and the `field` at fault (a ValueError to callers)."""

    def __init__(self, reason: str, field: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.field = field


def parse_instant(value: object, field: str) -> int:
    """Epoch milliseconds of an ISO 8601 instant (naive means UTC); a ValueError names `field`."""
    if not isinstance(value, str):
        raise _Refused(f"{field} must be an ISO 8601 string", field)
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise _Refused(f"{field} is not an ISO 8601 date-time: {value[:40]!r}", field) from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return (parsed - _EPOCH) // _ONE_MS


def instant_ms(value: object) -> int | None:
    """Epoch milliseconds of an ISO 8601 instant, or None when it is not one."""
    try:
        return parse_instant(value, "instant")
    except _Refused:
        return None


def format_instant(ms: int) -> str:
    """An epoch-ms instant as ISO 8601 UTC with milliseconds, the way SDKs write it."""
    return (_EPOCH_NAIVE + timedelta(milliseconds=ms)).isoformat(timespec="milliseconds") + "Z"


def partition_for(key: str, partitions: int) -> int:
    """The log partition of an identity key (userId, else anonymousId): stable everywhere."""
    return zlib.crc32(key.encode()) % partitions


def messages_of(body: Any, kind: str) -> tuple[list[Any], dict[str, Any]]:
    """The messages of a request body and its batch-level fields (sentAt, context...).

    `kind` is "batch" or a message type. A body that is not what the route expects is an
    `InvalidInput` naming the JSON path (the whole request is refused: HTTP 400).
    """
    if not isinstance(body, dict):
        raise InvalidInput("the body must be a JSON object", path="$")
    if kind != BATCH:
        return [body], {}
    batch = body.get("batch")
    if not isinstance(batch, list):
        raise InvalidInput("a batch body needs `batch`, a list of messages", path="$.batch")
    return batch, body


def normalise(
    messages: Sequence[Any],
    *,
    kind: str,
    workspace_id: str,
    received_ms: int,
    partitions: int,
    new_message_id: Callable[[], str],
    envelope: dict[str, Any] | None = None,
    sent_at_header: str | None = None,
    limits: MessageLimits = MessageLimits(),
) -> Normalised:
    """Validate and normalise the messages of one request (see the module docstring).

    `envelope` holds the batch's own `sentAt`, `context` and `integrations`; `sent_at_header`
    is the `SentAt` HTTP header. A message's own `sentAt` wins over the batch's, which wins
    over the header. Clock skew is corrected only when the client did not set `timestamp`.
    """
    envelope = envelope or {}
    batch_sent_ms = instant_ms(envelope.get("sentAt"))
    if batch_sent_ms is None and sent_at_header:
        batch_sent_ms = instant_ms(sent_at_header)
    batch_context = envelope.get("context")
    batch_integrations = envelope.get("integrations")
    job = _Job(
        kind=kind,
        workspace_id=workspace_id,
        received_ms=received_ms,
        received_at=format_instant(received_ms),
        batch_sent_ms=batch_sent_ms,
        batch_context=batch_context if isinstance(batch_context, dict) else None,
        batch_integrations=batch_integrations if isinstance(batch_integrations, dict) else None,
        partitions=partitions,
        max_bytes=limits.max_message_bytes,
        new_message_id=new_message_id,
    )
    rows: list[EventRow] = []
    rejected: list[RejectedMessage] = []
    for index, message in enumerate(messages):
        try:
            rows.append(job.row(message))
        except _Refused as refusal:
            rejected.append(
                RejectedMessage(
                    workspace_id,
                    received_ms,
                    index,
                    refusal.reason,
                    refusal.field,
                    _raw_text(message, limits.max_message_bytes),
                )
            )
    return Normalised(rows, rejected)


@dataclass(frozen=True, slots=True)
class _Job:
    """What every message of one request shares."""

    kind: str
    workspace_id: str
    received_ms: int
    received_at: str
    batch_sent_ms: int | None
    batch_context: dict[str, Any] | None
    batch_integrations: dict[str, Any] | None
    partitions: int
    max_bytes: int
    new_message_id: Callable[[], str]

    def row(self, message: object) -> EventRow:
        """The log row of one message, or `_Refused`.

        Written for speed (it runs for every event): exact-type tests, the common case first,
        and the helpers only on the unusual path.
        """
        if type(message) is not dict:
            raise _Refused("a message must be a JSON object")
        payload = message.copy()
        if "writeKey" in payload:
            del payload["writeKey"]

        kind = self.kind
        if kind == BATCH:
            declared = payload.get("type")
            if type(declared) is not str or declared not in MESSAGE_TYPES:
                if type(declared) is not str or declared.lower() not in MESSAGE_TYPES:
                    raise _Refused(
                        "type must be one of identify, track, page, screen, group, alias", "type"
                    )
                declared = declared.lower()
            kind = declared
        payload["type"] = kind

        user_id = payload.get("userId")
        if type(user_id) is not str or not 0 < len(user_id) <= MAX_ID_CHARS:
            user_id = _identifier(payload, "userId")
        anonymous_id = payload.get("anonymousId")
        if type(anonymous_id) is not str or not 0 < len(anonymous_id) <= MAX_ID_CHARS:
            anonymous_id = _identifier(payload, "anonymousId")

        event: str | None = None
        if kind == "track":
            event = payload.get("event")
            if type(event) is not str or not event.strip():
                raise _Refused("track needs event, a non-empty string", "event")
            if len(event) > MAX_ID_CHARS:
                raise _Refused(f"event is longer than {MAX_ID_CHARS} characters", "event")
        elif kind == "page" or kind == "screen":
            name = payload.get("name")
            if name is not None:
                if type(name) is not str:
                    raise _Refused("name must be a string", "name")
                # Only the indexed column is cut; the stored message keeps the whole name.
                event = name[:MAX_ID_CHARS] or None
        elif kind == "alias":
            if user_id is None:
                raise _Refused("alias needs userId (the new id)", "userId")
            if _identifier(payload, "previousId") is None:
                raise _Refused("alias needs previousId (the id being aliased)", "previousId")
        elif kind == "group" and _identifier(payload, "groupId") is None:
            raise _Refused("group needs groupId", "groupId")
        if user_id is None and anonymous_id is None:
            raise _Refused("userId or anonymousId is required", "userId")

        properties = payload.get("properties")
        traits = payload.get("traits")
        context = payload.get("context")
        integrations = payload.get("integrations")
        if (
            (properties is not None and type(properties) is not dict)
            or (traits is not None and type(traits) is not dict)
            or (context is not None and type(context) is not dict)
            or (integrations is not None and type(integrations) is not dict)
        ):
            values = (properties, traits, context, integrations)
            field = next(
                key
                for key, value in zip(_OBJECT_FIELDS, values, strict=True)
                if value is not None and type(value) is not dict
            )
            raise _Refused(f"{field} must be a JSON object", field)
        if self.batch_context is not None:
            context = payload["context"] = {**self.batch_context, **(context or {})}
        if self.batch_integrations is not None:
            payload["integrations"] = {**self.batch_integrations, **(integrations or {})}
        if kind == "identify" and not traits and context:
            context_traits = context.get("traits")
            if type(context_traits) is dict:
                payload["traits"] = context_traits

        explicit = payload.get("timestamp")
        if type(explicit) is str:
            timestamp_ms = parse_instant(explicit, "timestamp")
        else:
            payload["timestamp"], timestamp_ms = self._timestamp(payload)
        payload["receivedAt"] = self.received_at
        message_id = payload.get("messageId")
        if type(message_id) is not str or not 0 < len(message_id) <= MAX_ID_CHARS:
            if message_id is None or message_id == "":
                # Without an id from the client a retry cannot be recognised: a fresh one.
                message_id = payload["messageId"] = self.new_message_id()
            elif type(message_id) is not str:
                raise _Refused("messageId must be a string", "messageId")
            else:
                raise _Refused(f"messageId is longer than {MAX_ID_CHARS} characters", "messageId")

        try:
            data = orjson.dumps(payload)
        except orjson.JSONEncodeError as exc:  # e.g. an integer past 64 bits
            raise _Refused(f"message cannot be stored as JSON: {exc}") from None
        if len(data) > self.max_bytes:
            raise _Refused(f"message is {len(data)} bytes; the limit is {self.max_bytes} bytes")
        if b"\\u0000" in data:
            # PostgreSQL's jsonb refuses NUL characters; refuse them on every backend alike.
            raise _Refused("message contains a NUL character (\\u0000)")

        identity: str = user_id if user_id is not None else anonymous_id  # type: ignore[assignment]
        return EventRow(
            self.workspace_id,
            message_id,
            zlib.crc32(identity.encode()) % self.partitions,
            kind,
            event,
            user_id,
            anonymous_id,
            timestamp_ms,
            self.received_ms,
            data.decode(),
        )

    def _timestamp(self, payload: dict[str, Any]) -> tuple[object, int]:
        """(stored `timestamp`, its epoch ms): the client's, else skew-corrected, else now."""
        explicit = payload.get("timestamp")
        if explicit is not None:
            return explicit, parse_instant(explicit, "timestamp")
        original = payload.get("originalTimestamp")
        if original is None:
            return self.received_at, self.received_ms
        original_ms = parse_instant(original, "originalTimestamp")
        own_sent = payload.get("sentAt")
        sent_ms = instant_ms(own_sent) if own_sent is not None else None
        if sent_ms is None:
            sent_ms = self.batch_sent_ms
        if sent_ms is None:
            return original, original_ms
        # The client's clock may be off; the offset between sending and the event is not.
        corrected = self.received_ms - (sent_ms - original_ms)
        return format_instant(corrected), corrected


def _identifier(payload: dict[str, Any], key: str) -> str | None:
    """A userId-like field as a string (numbers are accepted, as SDKs stringify them)."""
    value = payload.get(key)
    if value is None or value == "":
        return None
    if isinstance(value, str):
        if len(value) > MAX_ID_CHARS:
            raise _Refused(f"{key} is longer than {MAX_ID_CHARS} characters", key)
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        text = str(value)
        payload[key] = text
        return text
    raise _Refused(f"{key} must be a string", key)


def _raw_text(message: object, limit: int) -> str:
    """The refused message as JSON text (never its write key), cut at the size limit."""
    if isinstance(message, dict) and any(key in message for key in _TRANSPORT_KEYS):
        message = {k: v for k, v in message.items() if k not in _TRANSPORT_KEYS}
    try:
        text = orjson.dumps(message).decode()
    except orjson.JSONEncodeError:  # integers past 64 bits: the slow encoder takes them
        text = json.dumps(message, ensure_ascii=False, default=str)
    return text[:limit]
