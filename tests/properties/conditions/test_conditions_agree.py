"""The two condition compilers agree: for generated conditions and generated profiles, events,
computed values and memberships, the profiles the SQL compiler selects (on SQLite and on
PostgreSQL) are exactly those the in-memory predicate holds for. Also: every generated
condition dumps and parses back to itself, and a verdict holds until its `valid_until`."""

from __future__ import annotations

from typing import Any

import jsonschema
import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from legato.domain.conditions import (
    AllOf,
    AnyOf,
    ConditionNode,
    Not,
    compile_condition,
    condition_schema,
    dump_condition,
    parse_condition,
)
from legato.domain.conditions.instants import operand_span
from legato.store.conditions_sql import count_matching_profiles, matching_profile_ids
from tests.properties.conditions.condition_facts import WORKSPACE, ProfileFacts, replace_facts

SCHEMA = jsonschema.Draft202012Validator(condition_schema())
SECOND, MINUTE, HOUR, DAY = 1000, 60_000, 3_600_000, 86_400_000
NOW = 1_767_603_600_000  # 2026-01-05T09:00:00Z
DURATIONS = {"90s": 90 * SECOND, "1h": HOUR, "1d": DAY, "7d": 7 * DAY}

# ------------------------------------------------------------------------------ values

ISO_TEXTS = [
    "2026-01-05",
    "2026-01-04",
    "2026-01-06",
    "2026-01-05T09:00",
    "2026-01-05T09:00:00Z",
    "2026-01-05T08:00:00.000Z",
    "2026-01-05T10:00:00+01:00",
    "2026-01-05 09:00:00.5",
    "2026-01-05T08:59:59.999999999-00:00",
    "2026-01-12T09:00:00Z",
    "2025-12-29T09:00:00.001Z",
    "2024-02-29",
    "2023-02-29",  # no such day
    "2026-01-05T24:00",  # no such hour
    "2026-01-05T09:00+24:00",  # no such zone
    "2026-1-5",
    "2026-01-05T09:00:00z",
    "2026-01-05T09:00:00.Z",
    "0000-01-01",
    "2026-01-05T09",
    "2026-01-05\n",
    "2026-01-05T09:00:00.1234567890Z",
    "２０２６-01-05",  # noqa: RUF001 - full-width digits are not digits to the grammar
]
STRINGS = ["", "a", "ab", "abc", "b", "B", "é", "ES", "MX", "1", "true", "a.b", "Z", "20"]
INTS = [-2, 0, 1, 2, 5, 10, 2**53, NOW - HOUR, NOW // 1000 - 60, 100_000_000_000]
FLOATS = [0.5, 1.0, 2.5, -0.25, 1.5e9, float((NOW - DAY) // 1000)]

SCALARS = [*STRINGS, *ISO_TEXTS, *INTS, *range(-3, 13), *FLOATS, True, False]
LISTS = [[], ["a"], ["a", "b"], ["ab", 1], [1, 2.0], [True], [0.5, "é"], [["a"]], [{"d": 1}]]
# Sampled from flat pools: cheap to draw, and operands meet the data often.
scalars = st.sampled_from(SCALARS)
leaf_values = st.sampled_from([*SCALARS, None, *LISTS])
json_values = st.one_of(
    leaf_values, st.dictionaries(st.sampled_from(["d", "e"]), leaf_values, max_size=2)
)

# ------------------------------------------------------------------------- conditions

DATE_OPERANDS = [
    "2026-01-05",
    "2026-01-04",
    "2026-01-05T09:00:00Z",
    "2026-01-05T08:00:00.000Z",
    "2026-01-05T10:00:00+01:00",
    NOW - HOUR,
    NOW // 1000 - 60,
    "2025-12-29T09:00:00.001Z",
]
date_operands = st.sampled_from(DATE_OPERANDS)
durations = st.sampled_from(sorted(DURATIONS))
ordered_operands = st.one_of(
    st.sampled_from(STRINGS + ISO_TEXTS[:4]), st.integers(-3, 12), st.sampled_from(FLOATS)
)


def _pair(values: st.SearchStrategy[Any]) -> st.SearchStrategy[list[Any]]:
    return st.tuples(values, values).map(lambda p: sorted(p))


ordered_pairs = st.one_of(
    _pair(st.sampled_from(STRINGS)),
    _pair(st.one_of(st.integers(-3, 12), st.sampled_from(FLOATS))),
)
date_pairs = st.tuples(date_operands, date_operands).map(
    lambda p: sorted(p, key=lambda d: operand_span(d).start_ms)
)


def comparisons(*, relative: bool = True) -> st.SearchStrategy[dict[str, Any]]:
    """One `{op: operand}` of any operator (relative date ones only when allowed)."""
    options: list[st.SearchStrategy[dict[str, Any]]] = [
        st.builds(lambda op, v: {op: v}, st.sampled_from(["eq", "ne", "contains"]), scalars),
        st.builds(
            lambda op, v: {op: v}, st.sampled_from(["gt", "gte", "lt", "lte"]), ordered_operands
        ),
        st.builds(lambda v: {"between": v}, ordered_pairs),
        st.builds(
            lambda op, v: {op: v}, st.sampled_from(["in", "not_in"]), st.lists(scalars, max_size=4)
        ),
        st.builds(
            lambda op, v: {op: v},
            st.sampled_from(["starts_with", "ends_with", "contains"]),
            st.sampled_from(["a", "b", "ab", "é", "20", "Z", "2026-01"]),
        ),
        st.builds(lambda op: {op: True}, st.sampled_from(["exists", "not_exists"])),
        st.builds(lambda op, v: {op: v}, st.sampled_from(["before", "after"]), date_operands),
        st.builds(lambda v: {"between_dates": v}, date_pairs),
    ]
    if relative:
        options.append(
            st.builds(
                lambda op, v: {op: v}, st.sampled_from(["within_last", "within_next"]), durations
            )
        )
    return st.one_of(options)


TRAIT_PATHS = ["a", "b", "c.d", "c"]
trait_leaves = st.builds(
    lambda path, cmp: {"trait": path, **cmp}, st.sampled_from(TRAIT_PATHS), comparisons()
)
computed_leaves = st.builds(
    lambda key, cmp: {"computed_trait": key, **cmp}, st.sampled_from(["ct1", "ct2"]), comparisons()
)
segment_leaves = st.builds(lambda key: {"segment": key}, st.sampled_from(["s1", "s2", "s3"]))
bucket_leaves = st.builds(
    lambda percent, seed: {
        "random_bucket": {"percent": percent, **({"seed": seed} if seed else {})}
    },
    st.sampled_from([0, 12.5, 50, 99.99, 100]),
    st.sampled_from([None, "a", "exp-1"]),
)
filters = st.builds(
    lambda path, cmp: {"property": path, **cmp},
    st.sampled_from(["p", "q.r"]),
    comparisons(relative=False),
)
date_measures = st.one_of(
    st.builds(lambda op, v: {op: v}, st.sampled_from(["before", "after"]), date_operands),
    st.builds(lambda v: {"between_dates": v}, date_pairs),
    st.builds(lambda v: {"within_last": v}, durations),
)
count_measures = st.one_of(
    st.builds(
        lambda op, n: {op: n},
        st.sampled_from(["eq", "ne", "gt", "gte", "lt", "lte"]),
        st.integers(0, 3),
    ),
    st.builds(lambda v: {"between": v}, _pair(st.integers(0, 3))),
)


@st.composite
def event_leaves(draw: st.DrawFn) -> dict[str, Any]:
    leaf: dict[str, Any] = {"event": draw(st.sampled_from(["E1", "E2", "Segment Entered"]))}
    where = draw(st.lists(filters, max_size=2))
    if where:
        leaf["where"] = where
    measure = draw(st.sampled_from(["none", "performed", "count", "first", "last"]))
    if measure == "performed":
        leaf["performed"] = draw(st.booleans())
    elif measure == "count":
        leaf["count"] = draw(count_measures)
    elif measure in ("first", "last"):
        leaf[f"{measure}_performed"] = draw(date_measures)
        return leaf
    window = draw(st.sampled_from(["none", "within", "between"]))
    if window == "within":
        leaf["within"] = draw(durations)
    elif window == "between":
        leaf["between"] = draw(date_pairs)
    return leaf


leaves = st.one_of(trait_leaves, event_leaves(), computed_leaves, segment_leaves, bucket_leaves)
condition_shapes = st.recursive(
    leaves,
    lambda children: st.one_of(
        st.builds(lambda items: {"all": items}, st.lists(children, max_size=3)),
        st.builds(lambda items: {"any": items}, st.lists(children, max_size=3)),
        st.builds(lambda item: {"not": item}, children),
    ),
    max_leaves=6,
)
conditions = condition_shapes.map(parse_condition)

# ---------------------------------------------------------------------------- facts

OFFSETS = sorted(
    {sign * span + nudge for span in DURATIONS.values() for sign in (-1, 1) for nudge in (-1, 0, 1)}
    | {-1, 0, 1}
)
stamps = st.one_of(st.sampled_from(OFFSETS), st.integers(-10 * DAY, 2 * DAY)).map(
    lambda offset: NOW + offset
)
properties = st.fixed_dictionaries(
    {}, optional={"p": json_values, "q": st.fixed_dictionaries({}, optional={"r": json_values})}
)
event_facts = st.tuples(st.sampled_from(["E1", "E2", "Segment Entered"]), stamps, properties)
traits = st.fixed_dictionaries({}, optional={"a": json_values, "b": json_values, "c": json_values})
profile_ids = st.text("0123456789abcdefghjkmnpqrstvwxyz", min_size=1, max_size=26)


@st.composite
def populations(draw: st.DrawFn) -> list[ProfileFacts]:
    ids = draw(st.lists(profile_ids, min_size=1, max_size=5, unique=True))
    return [
        ProfileFacts(
            id=profile_id,
            traits=draw(traits),
            events=draw(st.lists(event_facts, max_size=6)),
            computed=draw(
                st.fixed_dictionaries({}, optional={"ct1": json_values, "ct2": json_values})
            ),
            segments=draw(st.sets(st.sampled_from(["s1", "s2"]))),
        )
        for profile_id in ids
    ]


# ---------------------------------------------------------------------------- proofs


def expected_ids(cond: ConditionNode, people: list[ProfileFacts], now: int) -> list[str]:
    predicate = compile_condition(cond)
    return sorted(person.id for person in people if predicate(person.snapshot(), now).value)


def assert_agree(
    engine: sa.Engine, people: list[ProfileFacts], conds: list[ConditionNode], now: int
) -> None:
    dialect = engine.dialect.name
    with engine.connect() as conn:  # rolled back on exit: nothing to fsync
        replace_facts(conn, people)
        for cond in conds:
            query = matching_profile_ids(cond, dialect=dialect, workspace_id=WORKSPACE, now_ms=now)
            got = list(conn.execute(query).scalars())
            assert got == expected_ids(cond, people, now), dump_condition(cond)
        counted = count_matching_profiles(
            conds[0], dialect=dialect, workspace_id=WORKSPACE, now_ms=now
        )
        assert conn.execute(counted).scalar_one() == len(expected_ids(conds[0], people, now))


AGREEMENT = settings(
    max_examples=80,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@AGREEMENT
@given(
    people=populations(),
    conds=st.lists(conditions, min_size=1, max_size=4),
    shift=st.sampled_from([0, 1, -1, HOUR]),
)
def test_sql_agrees_with_memory_on_sqlite(
    sqlite_engine: sa.Engine, people: list[ProfileFacts], conds: list[ConditionNode], shift: int
) -> None:
    assert_agree(sqlite_engine, people, conds, NOW + shift)


@pytest.mark.postgres
@AGREEMENT
@given(
    people=populations(),
    conds=st.lists(conditions, min_size=1, max_size=4),
    shift=st.sampled_from([0, 1, -1, HOUR]),
)
def test_sql_agrees_with_memory_on_postgresql(
    pg_engine: sa.Engine, people: list[ProfileFacts], conds: list[ConditionNode], shift: int
) -> None:
    assert_agree(pg_engine, people, conds, NOW + shift)


@settings(max_examples=150, deadline=None)
@given(cond=conditions)
def test_dump_parses_back_to_the_same_tree_and_fits_the_schema(cond: ConditionNode) -> None:
    dumped = dump_condition(cond)
    assert parse_condition(dumped) == cond
    SCHEMA.validate(dumped)


def _is_leaf(cond: ConditionNode) -> bool:
    return not isinstance(cond, AllOf | AnyOf | Not)


@settings(max_examples=120, deadline=None)
@given(people=populations(), cond=conditions, probes=st.lists(st.integers(0, 12 * DAY), max_size=6))
def test_a_verdict_holds_until_its_valid_until(
    people: list[ProfileFacts], cond: ConditionNode, probes: list[int]
) -> None:
    """Sound for every node; exact (the value flips right then) for leaves."""
    predicate = compile_condition(cond)
    for person in people:
        ctx = person.snapshot()
        value, until = predicate(ctx, NOW)
        horizon = NOW + 12 * DAY if until is None else until
        for probe in probes:
            if NOW + probe < horizon:
                assert predicate(ctx, NOW + probe).value == value
        if until is not None:
            assert until > NOW
            assert predicate(ctx, until - 1).value == value
            if _is_leaf(cond):
                assert predicate(ctx, until).value != value
