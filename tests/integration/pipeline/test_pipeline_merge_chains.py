"""Merges chained several times (X into Y, then Y's survivor into Z, then Z into W) leave one
live profile that every old id, identifier and event resolves to, on SQLite and PostgreSQL,
whether the chain is decided inside one chunk or across chunks (through stored merges)."""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa

from legato.domain.messages import partition_for
from legato.domain.pipeline import INTERNAL
from legato.store.tables import events, profile_merges, profiles
from tests.integration.pipeline.conftest import T0, World, message

MIN = 60_000


def chain() -> list[list[dict[str, Any]]]:
    """Four profiles made oldest-first Z, Y, X, W (W holds the user id), then three steps.

    Step 1: email e1 joins X and Y (Y, the older, survives). Step 2: a phone joins that
    survivor with Z (Z, older still, survives: a survivor becomes a loser). Step 3: an alias
    joins Z to the user's profile W (a user's profile always survives).
    """
    return [
        [
            message("track", anon="z", at=T0, event="Viewed"),
            message("track", anon="y", at=T0 + 1 * MIN, event="Viewed"),
            message("track", anon="x", at=T0 + 2 * MIN, event="Viewed"),
            message("identify", user="u1", anon="w", at=T0 + 3 * MIN, traits={"plan": "pro"}),
        ],
        [
            message("identify", anon="y", at=T0 + 4 * MIN, traits={"email": "E1@x.io", "a": 1}),
            message(
                "track",
                anon="x",
                at=T0 + 5 * MIN,
                event="Opened",
                context={"traits": {"email": "e1@x.io"}},
            ),
        ],
        [
            message("identify", anon="z", at=T0 + 6 * MIN, traits={"phone": "+1 415 555 2671"}),
            message("identify", anon="y", at=T0 + 7 * MIN, traits={"phone": "(415) 555-2671"}),
        ],
        [message("alias", user="u1", at=T0 + 8 * MIN, previousId="z")],
    ]


@pytest.mark.parametrize("world", [{"partitions": 1}], indirect=True)
@pytest.mark.parametrize("chunked", [True, False], ids=["a-chunk-per-step", "one-chunk"])
async def test_a_chain_of_merges_ends_on_one_live_profile(world: World, chunked: bool) -> None:
    steps = chain()
    first = steps[0]
    await world.send(*first)
    await world.drain()
    before = {anon: (await world.lookup("anonymous_id", anon)).id for anon in "zyxw"}
    assert sorted(before, key=before.__getitem__) == ["z", "y", "x", "w"]
    for step in steps[1:]:
        await world.send(*step)
        if chunked:
            await world.drain()
    await world.drain()

    person = await world.lookup("user_id", "u1")
    assert person.id == before["w"]
    assert sorted(person.merged_from) == sorted(before[a] for a in "xyz")
    assert {(i.kind, i.value) for i in person.identities} == {
        ("user_id", "u1"),
        *{("anonymous_id", a) for a in "wxyz"},
        ("email", "e1@x.io"),
        ("phone", "+14155552671"),
    }
    total = sum(len(step) for step in steps)
    assert person.event_count == total
    assert person.first_seen_ms == T0 and person.last_seen_ms == T0 + 8 * MIN
    assert person.traits == {"plan": "pro", "email": "E1@x.io", "a": 1, "phone": "(415) 555-2671"}
    for anon in "xyz":
        # Every merged-away id answers with the last survivor, whatever its place in the chain.
        assert (await world.legato.profiles.get(world.workspace_id, before[anon])).id == person.id
        assert (await world.lookup("anonymous_id", anon)).id == person.id
    assert set((await world.event_profiles()).values()) == {person.id}
    assert [p.id for p in await world.live_profiles()] == [person.id]
    async with world.legato.db.connect() as conn:
        # Chains are compressed: every merged-away profile points at the survivor directly.
        pointers = dict(
            (await conn.execute(sa.select(profiles.c.id, profiles.c.merged_into))).all()
        )
        steps_kept = (
            await conn.execute(
                sa.select(profile_merges.c.from_profile_id, profile_merges.c.into_profile_id)
            )
        ).all()
    assert pointers == {
        before["w"]: None,
        before["x"]: person.id,
        before["y"]: person.id,
        before["z"]: person.id,
    }
    assert sorted(steps_kept) == sorted(
        [(before["x"], before["y"]), (before["y"], before["z"]), (before["z"], before["w"])]
    )

    # An internal event written for a profile before it was merged lands on the survivor.
    async with world.legato.db.transaction() as conn:
        await conn.execute(
            events.insert(),
            [
                {
                    "workspace_id": world.workspace_id,
                    "message_id": "internal-1",
                    "partition": partition_for("", 1),
                    "type": INTERNAL,
                    "event": "segment.entered",
                    "user_id": None,
                    "anonymous_id": None,
                    "profile_id": before["x"],
                    "timestamp_ms": T0 + 9 * MIN,
                    "received_ms": T0 + 9 * MIN,
                    "payload": {},
                }
            ],
        )
    assert await world.drain() == 1
    assert (await world.event_profiles())["internal-1"] == person.id
    assert (await world.lookup("user_id", "u1")).event_count == total  # internal: not counted
