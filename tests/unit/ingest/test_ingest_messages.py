"""Normalisation and validation of tracking-spec messages (pure: no database, no clock)."""

from __future__ import annotations

import itertools
from typing import Any

import orjson
import pytest

from legato.domain.messages import (
    BATCH,
    EventRow,
    MessageLimits,
    Normalised,
    format_instant,
    messages_of,
    normalise,
    partition_for,
)
from legato.errors import InvalidInput

WS = "ws_1"
NOW = 1_767_603_600_000  # 2026-01-05T09:00:00.000Z
ISO_NOW = "2026-01-05T09:00:00.000Z"


def run(
    messages: list[Any],
    kind: str = BATCH,
    envelope: dict[str, Any] | None = None,
    header: str | None = None,
    max_bytes: int = 32 * 1024,
) -> Normalised:
    ids = (f"gen-{n}" for n in itertools.count(1))
    return normalise(
        messages,
        kind=kind,
        workspace_id=WS,
        received_ms=NOW,
        partitions=8,
        new_message_id=lambda: next(ids),
        envelope=envelope,
        sent_at_header=header,
        limits=MessageLimits(max_bytes),
    )


def one(message: dict[str, Any], **kwargs: Any) -> EventRow:
    out = run([message], **kwargs)
    assert not out.rejected, out.rejected
    (row,) = out.rows
    return row


def payload(row: EventRow) -> dict[str, Any]:
    decoded: dict[str, Any] = orjson.loads(row.payload)
    return decoded


VALID = [
    ({"type": "identify", "userId": "u1", "traits": {"plan": "pro"}}, "identify", None),
    ({"type": "track", "anonymousId": "a1", "event": "Signed Up"}, "track", "Signed Up"),
    ({"type": "page", "userId": "u1", "name": "Home"}, "page", "Home"),
    ({"type": "page", "userId": "u1"}, "page", None),
    ({"type": "screen", "anonymousId": "a1", "name": "Settings"}, "screen", "Settings"),
    ({"type": "group", "userId": "u1", "groupId": "g1"}, "group", None),
    ({"type": "group", "userId": "u1", "groupId": 42}, "group", None),
    ({"type": "alias", "userId": "u2", "previousId": "a1"}, "alias", None),
    ({"type": "TRACK", "userId": "u1", "event": "Upper"}, "track", "Upper"),
]


@pytest.mark.parametrize("message, kind, event", VALID)
def test_valid_messages_become_rows(message: dict[str, Any], kind: str, event: str | None) -> None:
    row = one({**message, "messageId": "m1"})
    assert (row.workspace_id, row.message_id, row.type, row.event) == (WS, "m1", kind, event)
    assert row.received_ms == NOW and payload(row)["receivedAt"] == ISO_NOW
    assert payload(row)["type"] == kind


INVALID = [
    ("not an object", None, "a message must be a JSON object"),
    ({"userId": "u1", "event": "x"}, "type", "type must be one of"),
    ({"type": "purchase", "userId": "u1"}, "type", "type must be one of"),
    ({"type": ["track"], "userId": "u1"}, "type", "type must be one of"),
    ({"type": "track", "event": "x"}, "userId", "userId or anonymousId is required"),
    ({"type": "track", "event": "x", "userId": "", "anonymousId": None}, "userId", "required"),
    ({"type": "track", "userId": "u1"}, "event", "track needs event"),
    ({"type": "track", "userId": "u1", "event": "  "}, "event", "track needs event"),
    ({"type": "track", "userId": "u1", "event": 7}, "event", "track needs event"),
    ({"type": "track", "userId": "u1", "event": "e" * 201}, "event", "longer than 200"),
    ({"type": "group", "userId": "u1"}, "groupId", "group needs groupId"),
    ({"type": "alias", "previousId": "a1", "anonymousId": "a2"}, "userId", "alias needs userId"),
    ({"type": "alias", "userId": "u1"}, "previousId", "alias needs previousId"),
    ({"type": "track", "event": "x", "userId": ["u1"]}, "userId", "userId must be a string"),
    ({"type": "track", "event": "x", "userId": True}, "userId", "userId must be a string"),
    ({"type": "track", "event": "x", "userId": 1.5}, "userId", "userId must be a string"),
    ({"type": "track", "event": "x", "anonymousId": {"a": 1}}, "anonymousId", "must be a string"),
    ({"type": "track", "event": "x", "userId": "u" * 201}, "userId", "longer than 200"),
    ({"type": "track", "event": "x", "userId": "u", "properties": [1]}, "properties", "object"),
    ({"type": "identify", "userId": "u", "traits": "vip"}, "traits", "traits must be a JSON"),
    ({"type": "track", "event": "x", "userId": "u", "context": 3}, "context", "context must"),
    ({"type": "track", "event": "x", "userId": "u", "integrations": []}, "integrations", "must"),
    ({"type": "page", "userId": "u", "name": 5}, "name", "name must be a string"),
    ({"type": "track", "event": "x", "userId": "u", "timestamp": 1700}, "timestamp", "ISO 8601"),
    ({"type": "track", "event": "x", "userId": "u", "timestamp": "yesterday"}, "timestamp", "ISO"),
    (
        {"type": "track", "event": "x", "userId": "u", "originalTimestamp": "13/13/2020"},
        "originalTimestamp",
        "not an ISO 8601",
    ),
    ({"type": "track", "event": "x", "userId": "u", "messageId": 12}, "messageId", "string"),
    ({"type": "track", "event": "x", "userId": "u", "messageId": "m" * 201}, "messageId", "200"),
    ({"type": "track", "event": "x", "userId": "u", "properties": {"a": "\0"}}, None, "NUL"),
]


@pytest.mark.parametrize("message, field, reason", INVALID)
def test_invalid_messages_are_rejected_with_the_field(
    message: Any, field: str | None, reason: str
) -> None:
    out = run([{"type": "track", "userId": "ok", "event": "fine"}, message])
    assert len(out.rows) == 1, "the valid message beside the invalid one is kept"
    (rejection,) = out.rejected
    assert rejection.index == 1 and rejection.field == field
    assert reason in rejection.reason
    assert rejection.workspace_id == WS and rejection.received_ms == NOW
    assert rejection.public() == {"index": 1, "reason": rejection.reason, "field": field}


def test_oversized_message_is_rejected_and_kept_cut_at_the_limit() -> None:
    big = {"type": "track", "event": "x", "userId": "u", "properties": {"blob": "z" * 5000}}
    out = run([big, {"type": "track", "event": "x", "userId": "u"}], max_bytes=1024)
    assert len(out.rows) == 1
    (rejection,) = out.rejected
    assert rejection.index == 0 and "the limit is 1024 bytes" in rejection.reason
    assert len(rejection.payload) == 1024 and rejection.payload.startswith('{"type":"track"')


def test_the_write_key_is_never_stored() -> None:
    row = one({"type": "track", "event": "x", "userId": "u", "writeKey": "wk_secret"})
    assert "wk_secret" not in row.payload
    out = run([{"type": "track", "userId": "u", "writeKey": "wk_secret"}])
    assert "wk_secret" not in out.rejected[0].payload


def test_single_message_routes_take_the_type_from_the_path() -> None:
    row = one({"type": "identify", "event": "Clicked", "userId": "u"}, kind="track")
    assert row.type == "track" and row.event == "Clicked"


def test_numeric_ids_are_stringified() -> None:
    row = one({"type": "track", "event": "x", "userId": 123, "anonymousId": 9})
    assert (row.user_id, row.anonymous_id) == ("123", "9")
    assert payload(row)["userId"] == "123"


def test_anonymous_id_may_be_null_when_user_id_is_set() -> None:
    row = one({"type": "identify", "userId": "u1", "anonymousId": None})
    assert (row.user_id, row.anonymous_id) == ("u1", None)


def test_missing_message_id_gets_a_new_one_each_time() -> None:
    message = {"type": "track", "event": "x", "userId": "u"}
    out = run([message, dict(message), {**message, "messageId": ""}])
    assert [r.message_id for r in out.rows] == ["gen-1", "gen-2", "gen-3"]
    assert payload(out.rows[0])["messageId"] == "gen-1"


TIMESTAMPS = [
    # (message fields, envelope, SentAt header, expected timestamp)
    ({"timestamp": "2025-12-31T23:00:00Z"}, {}, None, "2025-12-31T23:00:00Z"),
    (
        {"timestamp": "2025-12-31T23:00:00Z", "originalTimestamp": "2020-01-01T00:00:00Z"},
        {"sentAt": "2020-01-01T00:00:05Z"},
        None,
        "2025-12-31T23:00:00Z",
    ),
    ({"originalTimestamp": "2026-01-05T08:59:00Z"}, {}, None, "2026-01-05T08:59:00Z"),
    # The client's clock runs 1 h slow; the event happened 10 s before sending.
    (
        {"originalTimestamp": "2026-01-05T07:59:50Z", "sentAt": "2026-01-05T08:00:00Z"},
        {},
        None,
        "2026-01-05T08:59:50.000Z",
    ),
    (
        {"originalTimestamp": "2026-01-05T07:59:50Z"},
        {"sentAt": "2026-01-05T08:00:00Z"},
        None,
        "2026-01-05T08:59:50.000Z",
    ),
    (
        {"originalTimestamp": "2026-01-05T07:59:50Z"},
        {},
        "2026-01-05T08:00:00Z",
        "2026-01-05T08:59:50.000Z",
    ),
    # The message's own sentAt wins over the batch's, which wins over the header.
    (
        {"originalTimestamp": "2026-01-05T07:59:50Z", "sentAt": "2026-01-05T08:00:00Z"},
        {"sentAt": "2026-01-05T07:00:00Z"},
        "2026-01-05T06:00:00Z",
        "2026-01-05T08:59:50.000Z",
    ),
    (
        {"originalTimestamp": "2026-01-05T07:59:50Z"},
        {"sentAt": "2026-01-05T08:00:00Z"},
        "2026-01-05T06:00:00Z",
        "2026-01-05T08:59:50.000Z",
    ),
    # An unreadable sentAt is transport metadata: ignored, the event keeps its own time.
    (
        {"originalTimestamp": "2026-01-05T07:59:50Z", "sentAt": "soon"},
        {},
        None,
        "2026-01-05T07:59:50Z",
    ),
    ({}, {"sentAt": "2026-01-05T08:00:00Z"}, None, ISO_NOW),
    ({}, {}, None, ISO_NOW),
    ({"timestamp": "2026-01-05T10:00:00+01:00"}, {}, None, "2026-01-05T10:00:00+01:00"),
]


@pytest.mark.parametrize("fields, envelope, header, expected", TIMESTAMPS)
def test_timestamp_falls_back_and_corrects_clock_skew(
    fields: dict[str, Any], envelope: dict[str, Any], header: str | None, expected: str
) -> None:
    row = one(
        {"type": "track", "event": "x", "userId": "u", **fields}, envelope=envelope, header=header
    )
    assert payload(row)["timestamp"] == expected
    from datetime import datetime

    assert row.timestamp_ms == int(datetime.fromisoformat(expected).timestamp() * 1000)


def test_identify_traits_fall_back_to_context_traits() -> None:
    context = {"traits": {"email": "a@b.c"}, "ip": "1.2.3.4"}
    row = one({"type": "identify", "userId": "u", "context": context})
    assert payload(row)["traits"] == {"email": "a@b.c"}
    own = one({"type": "identify", "userId": "u", "traits": {"email": "x@y.z"}, "context": context})
    assert payload(own)["traits"] == {"email": "x@y.z"}
    track = one({"type": "track", "event": "e", "userId": "u", "context": context})
    assert "traits" not in payload(track)


def test_batch_context_and_integrations_merge_under_the_message() -> None:
    envelope = {
        "context": {"library": {"name": "lib"}, "ip": "1.1.1.1"},
        "integrations": {"A": True},
    }
    row = one(
        {"type": "track", "event": "e", "userId": "u", "context": {"ip": "2.2.2.2"}},
        envelope=envelope,
    )
    assert payload(row)["context"] == {"library": {"name": "lib"}, "ip": "2.2.2.2"}
    assert payload(row)["integrations"] == {"A": True}


def test_page_name_is_cut_for_the_column_only() -> None:
    row = one({"type": "page", "userId": "u", "name": "n" * 300})
    assert row.event == "n" * 200 and payload(row)["name"] == "n" * 300


@pytest.mark.parametrize(
    "body, kind, path",
    [
        ([], BATCH, "$"),
        ("text", "track", "$"),
        ({"batch": {"type": "track"}}, BATCH, "$.batch"),
        ({"sentAt": "x"}, BATCH, "$.batch"),
    ],
)
def test_unusable_bodies_are_invalid_input(body: Any, kind: str, path: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        messages_of(body, kind)
    assert caught.value.details["path"] == path


def test_messages_of_splits_batches_and_single_messages() -> None:
    assert messages_of({"batch": [1, 2], "sentAt": "s"}, BATCH) == (
        [1, 2],
        {"batch": [1, 2], "sentAt": "s"},
    )
    assert messages_of({"userId": "u"}, "track") == ([{"userId": "u"}], {})


@pytest.mark.parametrize("key", ["u1", "anon-7", "ü-ñ", "x" * 200])
def test_partition_for_is_stable_and_in_range(key: str) -> None:
    first = partition_for(key, 8)
    assert 0 <= first < 8 and all(partition_for(key, 8) == first for _ in range(3))


def test_partition_follows_user_id_then_anonymous_id() -> None:
    known = one({"type": "track", "event": "e", "userId": "u1", "anonymousId": "a1"})
    anonymous = one({"type": "track", "event": "e", "anonymousId": "a1"})
    assert known.partition == partition_for("u1", 8)
    assert anonymous.partition == partition_for("a1", 8)
    # Pinned (CRC-32): partitions must not move between versions or processes.
    assert [partition_for(k, 8) for k in ("u1", "a1", "user-42")] == [6, 3, 3]
    assert [partition_for(k, 64) for k in ("u1", "a1", "user-42")] == [54, 35, 51]


def test_format_instant_round_trips() -> None:
    assert format_instant(NOW) == ISO_NOW
    assert format_instant(0) == "1970-01-01T00:00:00.000Z"
