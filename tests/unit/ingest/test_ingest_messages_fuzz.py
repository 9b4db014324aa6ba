"""Whatever JSON arrives, every message becomes exactly one row or one rejection, never a crash."""

from __future__ import annotations

import itertools
from typing import Any

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from legato.domain.messages import BATCH, MESSAGE_TYPES, normalise

scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text()
json_values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=8,
)
fields = st.sampled_from(
    [
        "type",
        "userId",
        "anonymousId",
        "event",
        "name",
        "groupId",
        "previousId",
        "messageId",
        "timestamp",
        "originalTimestamp",
        "sentAt",
        "properties",
        "traits",
        "context",
        "integrations",
        "writeKey",
    ]
)
messages = (
    st.dictionaries(
        fields,
        st.sampled_from(sorted(MESSAGE_TYPES)) | json_values | st.just("2026-01-05T09:00:00Z"),
        max_size=8,
    )
    | json_values
)


@settings(max_examples=300, deadline=None)
@given(st.lists(messages, max_size=6), st.dictionaries(fields, json_values, max_size=3))
def test_every_message_is_either_stored_or_rejected(
    batch: list[Any], envelope: dict[str, Any]
) -> None:
    ids = (f"g{n}" for n in itertools.count())
    out = normalise(
        batch,
        kind=BATCH,
        workspace_id="ws",
        received_ms=1_767_603_600_000,
        partitions=8,
        new_message_id=lambda: next(ids),
        envelope=envelope,
    )
    assert len(out.rows) + len(out.rejected) == len(batch)
    assert sorted([r.index for r in out.rejected]) == [r.index for r in out.rejected]
    for row in out.rows:
        stored = orjson.loads(row.payload)
        assert stored["type"] == row.type in MESSAGE_TYPES
        assert stored["messageId"] == row.message_id and len(row.message_id) <= 200
        assert row.user_id is not None or row.anonymous_id is not None
        assert "writeKey" not in stored and 0 <= row.partition < 8
    for rejection in out.rejected:
        assert rejection.reason and 0 <= rejection.index < len(batch)
        raw = orjson.loads(rejection.payload)  # small messages: kept whole
        assert not (isinstance(raw, dict) and "writeKey" in raw)
