"""Identity resolution and profiles through the real pipeline, on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from legato.errors import InvalidInput, NotFound
from legato.store.tables import profile_merges
from tests.integration.pipeline.conftest import T0, World, message

MIN = 60_000


def kinds(profile: object) -> set[tuple[str, str]]:
    return {(i.kind, i.value) for i in profile.identities}  # type: ignore[attr-defined]


async def test_anonymous_history_joins_the_known_user(world: World) -> None:
    # Device 1: the user signs in. Device 2: browses anonymously, then signs in too.
    await world.send(
        message("identify", user="u1", anon="d1", at=T0, traits={"plan": "free"}),
        message("track", anon="d2", at=T0 + 1 * MIN, event="Viewed"),
        message("page", anon="d2", at=T0 + 2 * MIN, name="Home"),
    )
    assert await world.drain() == 3
    anonymous = await world.lookup("anonymous_id", "d2")
    assert anonymous.event_count == 2 and kinds(anonymous) == {("anonymous_id", "d2")}

    await world.send(message("identify", user="u1", anon="d2", at=T0 + 3 * MIN))
    await world.drain()
    person = await world.lookup("user_id", "u1")
    assert kinds(person) == {("user_id", "u1"), ("anonymous_id", "d1"), ("anonymous_id", "d2")}
    assert person.event_count == 4
    assert person.first_seen_ms == T0 and person.last_seen_ms == T0 + 3 * MIN
    assert person.merged_from == [anonymous.id]
    assert person.traits == {"plan": "free"}
    # History is re-pointed: every event now names the survivor.
    assert set((await world.event_profiles()).values()) == {person.id}
    # The merged-away id still answers, with the survivor.
    assert (await world.legato.profiles.get(world.workspace_id, anonymous.id)).id == person.id
    async with world.legato.db.connect() as conn:
        merges = (await conn.execute(sa.select(profile_merges))).all()
    assert [(m.from_profile_id, m.into_profile_id, m.reason) for m in merges] == [
        (anonymous.id, person.id, "identify:anonymous_id")
    ]
    page = await world.legato.profiles.find(world.workspace_id)
    assert [p.id for p in page.profiles] == [person.id]


async def test_identify_claims_the_anonymous_profile_without_a_merge(world: World) -> None:
    await world.send(
        message("track", anon="a1", at=T0, event="Viewed"),
        message("identify", user="u1", anon="a1", at=T0 + MIN, traits={"name": "Ann"}),
        message("track", user="u1", at=T0 + 2 * MIN, event="Bought"),
    )
    await world.drain()
    person = await world.lookup("anonymous_id", "a1")
    assert kinds(person) == {("user_id", "u1"), ("anonymous_id", "a1")}
    assert person.event_count == 3 and person.merged_from == []
    assert (await world.lookup("user_id", "u1")).id == person.id


@pytest.mark.parametrize(
    "previous_kind",
    ["anonymous_id", "unknown"],
    ids=["previous-is-anonymous", "previous-never-seen"],
)
async def test_alias_merges_previous_id_into_user(world: World, previous_kind: str) -> None:
    await world.send(message("identify", user="u1", at=T0, traits={"email": "a@x.io"}))
    if previous_kind == "anonymous_id":
        await world.send(message("track", anon="old", at=T0 + MIN, event="Viewed"))
    await world.send(message("alias", user="u1", at=T0 + 2 * MIN, previousId="old"))
    await world.drain()
    # Partitions are ordered each on its own: send the next event once the alias is applied.
    await world.send(message("track", anon="old", at=T0 + 3 * MIN, event="Again"))
    await world.drain()
    person = await world.lookup("user_id", "u1")
    assert ("anonymous_id", "old") in kinds(person)
    assert person.event_count == (4 if previous_kind == "anonymous_id" else 3)
    assert len(person.merged_from) == (1 if previous_kind == "anonymous_id" else 0)
    assert len(await world.live_profiles()) == 1


async def test_email_links_profiles_case_and_space_insensitive(world: World) -> None:
    await world.send(
        message("identify", user="u1", at=T0, traits={"email": " Ann@Example.COM"}),
        message(
            "track",
            anon="a9",
            at=T0 + MIN,
            event="Opened",
            context={"traits": {"email": "ann@example.com"}},
        ),
    )
    await world.drain()
    person = await world.lookup("email", "ANN@example.com ")
    assert person.id == (await world.lookup("anonymous_id", "a9")).id
    assert ("email", "ann@example.com") in kinds(person)
    assert person.event_count == 2
    # The trait keeps what the customer wrote; the identity holds the normal form.
    assert person.traits["email"] == " Ann@Example.COM"


@pytest.mark.parametrize(
    "world",
    [{"identity_traits": ("email", "phone", "crm_id"), "default_phone_region": "GB"}],
    indirect=True,
)
async def test_phone_and_external_ids_are_identities(world: World) -> None:
    await world.send(
        message("identify", user="u1", at=T0, traits={"phone": "020 7946 0018", "crm_id": 77}),
        message("identify", anon="a2", at=T0 + MIN, traits={"crm_id": "77", "vip": True}),
    )
    await world.drain()
    person = await world.lookup("phone", "+44 20 7946 0018")
    assert {("phone", "+442079460018"), ("crm_id", "77")} <= kinds(person)
    assert (await world.lookup("crm_id", "77")).id == person.id
    assert ("anonymous_id", "a2") in kinds(person) and person.traits["vip"] is True


async def test_two_user_ids_are_never_merged(world: World) -> None:
    # One shared device and one shared family email: still two people.
    for body in [
        message("identify", user="u1", anon="shared", at=T0, traits={"email": "home@x.io"}),
        message("identify", user="u2", anon="shared", at=T0 + MIN, traits={"email": "home@x.io"}),
        message("alias", user="u2", at=T0 + 2 * MIN, previousId="u1"),
        message("track", anon="shared", at=T0 + 3 * MIN, event="Viewed"),
    ]:
        await world.send(body)  # one at a time: partitions are ordered each on its own
        await world.drain()
    first = await world.lookup("user_id", "u1")
    second = await world.lookup("user_id", "u2")
    assert first.id != second.id
    assert kinds(first) == {("user_id", "u1"), ("anonymous_id", "shared"), ("email", "home@x.io")}
    assert kinds(second) == {("user_id", "u2")}
    assert second.event_count == 2 and first.event_count == 2
    assert second.traits == {"email": "home@x.io"}
    assert first.merged_from == [] and second.merged_from == []


async def test_newest_trait_wins_whatever_the_arrival_order(world: World) -> None:
    await world.send(
        message("identify", user="u1", at=T0 + 5 * MIN, traits={"plan": "pro", "a": 1}),
        # Arrives later but happened earlier (an offline device): it loses on `plan`.
        message("identify", anon="d2", at=T0 + 1 * MIN, traits={"plan": "free", "b": 2}),
    )
    await world.drain()
    await world.send(message("identify", user="u1", anon="d2", at=T0 + 6 * MIN))
    await world.drain()
    person = await world.lookup("anonymous_id", "d2")
    assert person.traits == {"plan": "pro", "a": 1, "b": 2}
    await world.send(message("identify", user="u1", at=T0 + 2 * MIN, traits={"plan": "old"}))
    await world.drain()
    assert (await world.lookup("user_id", "u1")).traits["plan"] == "pro"


async def test_group_traits_are_kept_per_group(world: World) -> None:
    await world.send(
        message("group", user="u1", at=T0, groupId="acme", traits={"name": "Acme", "seats": 5}),
        message("group", user="u2", at=T0 + MIN, groupId="acme", traits={"seats": 9}),
        message("group", user="u1", at=T0 - MIN, groupId="acme", traits={"seats": 1, "tier": "b"}),
        message("group", user="u1", at=T0, groupId=42, traits={}),
    )
    await world.drain()
    first = await world.lookup("user_id", "u1")
    assert [(g.group_id, g.traits) for g in first.groups] == [
        ("42", {}),
        ("acme", {"name": "Acme", "seats": 9, "tier": "b"}),
    ]
    assert first.traits == {}  # a group's traits describe the group, not the person
    second = await world.lookup("user_id", "u2")
    assert [g.group_id for g in second.groups] == ["acme"]
    # Memberships follow a merge.
    await world.send(message("alias", user="u3", at=T0 + 2 * MIN, previousId="u9"))
    await world.send(message("group", anon="x", at=T0, groupId="beta", traits={}))
    await world.send(message("identify", user="u1", anon="x", at=T0 + 3 * MIN))
    await world.drain()
    assert [g.group_id for g in (await world.lookup("user_id", "u1")).groups] == [
        "42",
        "acme",
        "beta",
    ]


async def test_events_page_newest_first_and_trait_filter(world: World) -> None:
    await world.send(
        *[message("track", user="u1", at=T0 + i * MIN, event=f"E{i}") for i in range(7)],
        message("identify", user="u1", at=T0, traits={"age": 42, "vip": True, "city": "Oslo"}),
        message("identify", user="u2", at=T0, traits={"age": 7, "vip": False, "city": "Oslo"}),
    )
    await world.drain()
    person = await world.lookup("user_id", "u1")
    seen: list[str | None] = []
    cursor = None
    while True:
        page = await world.legato.profiles.events(
            world.workspace_id, person.id, limit=3, cursor=cursor
        )
        seen.extend(e.event for e in page.events)
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    # Newest first; on equal timestamps the later-logged event (the identify) comes first.
    assert seen == ["E6", "E5", "E4", "E3", "E2", "E1", None, "E0"]
    for filters, expected in [
        ({"age": "42"}, ["u1"]),
        ({"vip": "true"}, ["u1"]),
        ({"vip": "false"}, ["u2"]),
        ({"city": "Oslo"}, ["u1", "u2"]),
        ({"city": "Oslo", "age": "7"}, ["u2"]),
        ({"city": "Rome"}, []),
    ]:
        page = await world.legato.profiles.find(world.workspace_id, traits=filters)
        users = sorted(i.value for p in page.profiles for i in p.identities if i.kind == "user_id")
        assert users == expected, filters


@pytest.mark.parametrize(
    "kind, value, error",
    [
        ("email", "not-an-email", InvalidInput),
        ("phone", "12", InvalidInput),
        ("user_id", "nobody", NotFound),
        ("crm_id", "1", NotFound),
    ],
)
async def test_lookup_errors_name_the_problem(
    world: World, kind: str, value: str, error: type[Exception]
) -> None:
    with pytest.raises(error) as raised:
        await world.lookup(kind, value)
    assert raised.value.details["field"] == kind  # type: ignore[attr-defined]
