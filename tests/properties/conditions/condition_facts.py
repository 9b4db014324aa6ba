"""Facts for the agreement proofs: profiles with traits, events, computed values and
segments, written to the tables the SQL compiler reads and turned into in-memory contexts."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson
import sqlalchemy as sa

import legato.store.segments as segment_tables
from legato.domain.conditions import EventFact, ProfileSnapshot
from legato.store.tables import events, profiles

WORKSPACE = "w" * 26
OTHER_WORKSPACE = "x" * 26


@dataclass
class ProfileFacts:
    """One profile as the agreement tests write it."""

    id: str
    traits: dict[str, Any] = field(default_factory=dict)
    events: list[tuple[str, int, dict[str, Any]]] = field(default_factory=list)
    computed: dict[str, Any] = field(default_factory=dict)
    segments: set[str] = field(default_factory=set)

    def snapshot(self) -> ProfileSnapshot:
        """The in-memory context, from the same JSON the database stores."""

        def through_json(value: Any) -> Any:
            return orjson.loads(orjson.dumps(value))

        return ProfileSnapshot.of(
            self.id,
            traits=through_json(self.traits),
            computed_traits=through_json(self.computed),
            segments=self.segments,
            events=[
                EventFact(name, stamp, through_json(props)) for name, stamp, props in self.events
            ],
        )


def replace_facts(conn: sa.Connection, people: Sequence[ProfileFacts]) -> None:
    """Empty the tables conditions read and write `people` into WORKSPACE.

    Also writes noise no condition may see: a profile and events in another workspace, and
    events that belong to no profile.
    """
    for table in (
        events,
        profiles,
        segment_tables.segment_members,
        segment_tables.computed_trait_values,
    ):
        conn.execute(table.delete())
    rows, event_rows, members, values = [], [], [], []
    for person in people:
        rows.append(_profile_row(WORKSPACE, person.id, person.traits))
        for index, (name, stamp, props) in enumerate(person.events):
            event_rows.append(
                _event_row(WORKSPACE, person.id, f"{person.id}-{index}", name, stamp, props)
            )
            # The same event with no profile, and in another workspace for the same id.
            event_rows.append(
                _event_row(WORKSPACE, None, f"{person.id}-{index}-n", name, stamp, props)
            )
            event_rows.append(
                _event_row(OTHER_WORKSPACE, person.id, f"{person.id}-{index}-o", name, stamp, props)
            )
        members += [
            {
                "workspace_id": WORKSPACE,
                "segment_key": key,
                "profile_id": person.id,
                "entered_ms": 0,
            }
            for key in sorted(person.segments)
        ]
        values += [
            {
                "workspace_id": WORKSPACE,
                "key": key,
                "profile_id": person.id,
                "value": value,
                "state": {},
                "due_ms": None,
                "updated_ms": 0,
            }
            for key, value in person.computed.items()
        ]
    rows.append(_profile_row(OTHER_WORKSPACE, "other-profile", {"a": 1}))
    for table, batch in (
        (profiles, rows),
        (events, event_rows),
        (segment_tables.segment_members, members),
        (segment_tables.computed_trait_values, values),
    ):
        if batch:
            conn.execute(table.insert(), batch)


def _profile_row(workspace: str, profile_id: str, traits: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": profile_id,
        "workspace_id": workspace,
        "traits": traits,
        "trait_times": {},
        "first_seen_ms": 0,
        "last_seen_ms": 0,
        "event_count": 0,
        "created_ms": 0,
        "updated_ms": 0,
        "merged_into": None,
    }


def _event_row(
    workspace: str,
    profile_id: str | None,
    message_id: str,
    name: str,
    stamp: int,
    props: dict[str, Any],
) -> dict[str, Any]:
    return {
        "workspace_id": workspace,
        "message_id": message_id,
        "partition": 0,
        "type": "track",
        "event": name,
        "user_id": None,
        "anonymous_id": None,
        "profile_id": profile_id,
        "timestamp_ms": stamp,
        "received_ms": stamp,
        "payload": {"event": name, "properties": props},
    }
