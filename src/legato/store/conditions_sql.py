"""The SQL compiler of the condition language: the same tree, as SQLAlchemy Core.

`condition_clause` turns a condition into a boolean expression over a `profiles` alias, for
backfills and bulk counts; `matching_profile_ids` / `count_matching_profiles` wrap it in the
queries callers run. It works on SQLite (json_type/json_extract/json_each) and PostgreSQL
(JSONB `#>`/`#>>`/`jsonb_typeof`/`@>`), and keeps exactly the rules the in-memory compiler
keeps (`legato.domain.conditions.values`, `.instants`, `.predicates`); the property tests in
`tests/properties/conditions` prove the two agree on both databases.

How it stays exact:
- every leaf is two-valued (never NULL), so `not` means what it says;
- on PostgreSQL a cast only runs inside a CASE branch whose type test passed;
- strings compare bytewise (COLLATE "C" on PostgreSQL; SQLite's BINARY); numbers compare as
  exact numerics against an integer operand and as doubles against a float operand, as Python;
- dates use the strict grammar of `instants`, parsed with plain arithmetic (`instants_sql`:
  no casts that can fail, no session time zone).
The current time is the bind parameter `now_ms`, the workspace `workspace_id`, so a statement
can be re-run with `.params(now_ms=...)`. This module only builds statements; it executes none.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import count
from typing import Any, Literal

import orjson
import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.sql.elements import ColumnElement, Grouping

from legato.domain.conditions import (
    AllOf,
    AnyOf,
    Comparison,
    ComputedTraitCondition,
    ConditionNode,
    CountComparison,
    DateComparison,
    EventCondition,
    Not,
    PropertyFilter,
    RandomBucket,
    SegmentCondition,
    TraitCondition,
)
from legato.domain.conditions.buckets import (
    BUCKETS,
    ID_CHARS,
    MASK,
    MIX,
    MODULUS,
    WEIGHTS,
    seed_offset,
)
from legato.domain.conditions.instants import operand_span
from legato.domain.conditions.predicates import count_test
from legato.domain.durations import parse_duration_ms
from legato.errors import InvalidInput
from legato.store.instants_sql import (
    Bool,
    Int,
    big,
    iso_fields,
    iso_instant,
    iso_shape,
    number_instant,
)
from legato.store.segments import computed_trait_values, segment_members
from legato.store.tables import events, profiles

Dialect = Literal["sqlite", "postgresql"]

#: Names of the bind parameters a compiled condition carries.
NOW_PARAM = "now_ms"
WORKSPACE_PARAM = "workspace_id"


def condition_clause(
    cond: ConditionNode,
    *,
    dialect: str,
    workspace_id: str,
    now_ms: int,
    profile: sa.FromClause | None = None,
) -> Bool:
    """The condition as a boolean over `profile` (a `profiles` alias; default the table)."""
    return _Compiler(dialect, workspace_id, now_ms, profile).condition(cond)


def matching_profile_ids(
    cond: ConditionNode, *, dialect: str, workspace_id: str, now_ms: int
) -> sa.Select[Any]:
    """Ids of the workspace's live (unmerged) profiles for which the condition holds, sorted."""
    profile = profiles.alias("p")
    compiler = _Compiler(dialect, workspace_id, now_ms, profile)
    return (
        sa.select(profile.c.id)
        .where(*compiler.live_profiles(), compiler.condition(cond))
        .order_by(profile.c.id)
    )


def count_matching_profiles(
    cond: ConditionNode, *, dialect: str, workspace_id: str, now_ms: int
) -> sa.Select[Any]:
    """How many of the workspace's live profiles the condition holds for."""
    profile = profiles.alias("p")
    compiler = _Compiler(dialect, workspace_id, now_ms, profile)
    return (
        sa.select(sa.func.count())
        .select_from(profile)
        .where(*compiler.live_profiles(), compiler.condition(cond))
    )


def event_filter_clause(
    filters: Sequence[PropertyFilter], *, dialect: str, event: sa.FromClause | None = None
) -> Bool:
    """`where:` property filters as a boolean over an `events` alias (default the table)."""
    table = events if event is None else event
    compiler = _Compiler(dialect, "", 0, None)
    return compiler.all_of([compiler.property_filter(table, item) for item in filters])


def _definite(clause: Bool) -> Bool:
    """The clause with NULL read as false, so NOT and OR stay two-valued."""
    return sa.case((clause, sa.true()), else_=sa.false())


class _Json:
    """A JSON value at a path inside a document expression, with typed accessors.

    `owner` is the table the document column belongs to (what a derived table correlates to).
    """

    def __init__(
        self, dialect: Dialect, doc: ColumnElement[Any], path: tuple[str, ...], owner: sa.FromClause
    ):
        self.dialect = dialect
        self.doc = doc
        self.owner = owner
        if dialect == "sqlite":
            self.path_arg: ColumnElement[Any] = sa.literal(
                "$" + "".join(f'."{step}"' for step in path)
            )
            self.type: ColumnElement[str] = sa.func.json_type(doc, self.path_arg)
            self.text: ColumnElement[Any] = sa.func.json_extract(doc, self.path_arg)
        else:
            self.path_arg = sa.literal(list(path), ARRAY(sa.Text))
            self.json = doc.op("#>", return_type=JSONB)(self.path_arg)
            self.type = sa.func.jsonb_typeof(self.json)
            self.text = doc.op("#>>", return_type=sa.Text)(self.path_arg)

    def on(self, type_: ColumnElement[str], text: ColumnElement[Any]) -> _Json:
        """The same value read from columns of a derived table (type and text already out)."""
        view = object.__new__(_Json)
        view.dialect, view.doc, view.owner, view.path_arg = (
            self.dialect,
            self.doc,
            self.owner,
            self.path_arg,
        )
        view.type, view.text = type_, text
        return view

    def is_string(self) -> Bool:
        return self.type == ("text" if self.dialect == "sqlite" else "string")

    def is_number(self) -> Bool:
        if self.dialect == "sqlite":
            return self.type.in_(("integer", "real"))
        return self.type == "number"

    def is_array(self) -> Bool:
        return self.type == "array"

    def present(self) -> Bool:
        return _definite(sa.and_(self.type.is_not(None), self.type != "null"))

    def is_boolean(self, value: bool) -> Bool:
        literal = "true" if value else "false"
        if self.dialect == "sqlite":
            return _definite(self.type == literal)
        return _definite(sa.and_(self.type == "boolean", self.text == literal))

    def string(self) -> ColumnElement[str]:
        """The value as text (only meaningful where `is_string`); compares bytewise."""
        if self.dialect == "sqlite":
            return self.text
        return sa.collate(self.text, "C")

    def number(self, operand: int | float) -> ColumnElement[Any]:
        """The value as a number comparable with `operand` (only where `is_number`)."""
        if self.dialect == "sqlite":
            return self.text
        if isinstance(operand, int):
            return sa.cast(self.text, sa.Numeric)
        return sa.cast(self.text, sa.Double)


def _number_operand(dialect: Dialect, operand: int | float) -> ColumnElement[Any]:
    if dialect == "sqlite":
        return sa.literal(operand)
    return sa.literal(operand, sa.Numeric if isinstance(operand, int) else sa.Double)


class _Compiler:
    def __init__(
        self, dialect: str, workspace_id: str, now_ms: int, profile: sa.FromClause | None
    ) -> None:
        if dialect not in ("sqlite", "postgresql"):
            raise InvalidInput(f"no SQL compiler for dialect {dialect!r}", field="dialect")
        self.dialect: Dialect = "sqlite" if dialect == "sqlite" else "postgresql"
        self.profile = profiles if profile is None else profile
        self.now: Int = sa.bindparam(NOW_PARAM, now_ms, type_=sa.BigInteger)
        self.workspace = sa.bindparam(WORKSPACE_PARAM, workspace_id, type_=sa.String)
        self._aliases = count()

    def live_profiles(self) -> list[Bool]:
        return [self.profile.c.workspace_id == self.workspace, self.profile.c.merged_into.is_(None)]

    # ------------------------------------------------------------------------ tree

    def condition(self, cond: ConditionNode) -> Bool:
        if isinstance(cond, AllOf):
            return self.all_of([self.condition(child) for child in cond.all])
        if isinstance(cond, AnyOf):
            parts = [self.condition(child) for child in cond.any]
            return sa.or_(*parts) if parts else sa.false()
        if isinstance(cond, Not):
            return sa.not_(self.condition(cond.not_))
        if isinstance(cond, TraitCondition):
            path = tuple(cond.trait.split("."))
            return self.comparison(
                _Json(self.dialect, self.profile.c.traits, path, self.profile), cond
            )
        if isinstance(cond, ComputedTraitCondition):
            return self.comparison(
                _Json(self.dialect, self._computed(cond.computed_trait), (), self.profile), cond
            )
        if isinstance(cond, SegmentCondition):
            member = segment_members
            return sa.exists().where(
                member.c.workspace_id == self.profile.c.workspace_id,
                member.c.segment_key == cond.segment,
                member.c.profile_id == self.profile.c.id,
            )
        if isinstance(cond, RandomBucket):
            return self._bucket(cond)
        return self._event(cond)

    def all_of(self, parts: list[Bool]) -> Bool:
        return sa.and_(*parts) if parts else sa.true()

    def _computed(self, key: str) -> ColumnElement[Any]:
        value = computed_trait_values
        return (
            sa.select(value.c.value)
            .where(
                value.c.workspace_id == self.profile.c.workspace_id,
                value.c.key == key,
                value.c.profile_id == self.profile.c.id,
            )
            .correlate(self.profile)
            .scalar_subquery()
        )

    # ---------------------------------------------------------------- comparisons

    def comparison(self, value: _Json, cmp: Comparison) -> Bool:
        name, operand = cmp.operator
        if name == "ne":
            return sa.not_(self._value_op(value, "eq", operand))
        if name == "not_in":
            return sa.not_(self._value_op(value, "in", operand))
        if name == "not_exists":
            return sa.not_(value.present())
        return self._value_op(value, name, operand)

    def _value_op(self, value: _Json, name: str, operand: Any) -> Bool:
        if name == "eq":
            return self._equals(value, operand)
        if name == "in":
            return self._member_of(value, operand)
        if name in ("gt", "gte", "lt", "lte"):
            return self._ordered(value, name, operand)
        if name == "between":
            low, high = operand
            if isinstance(low, str):
                # Not BETWEEN: PostgreSQL's grammar takes no COLLATE in its lower bound.
                text = value.string()
                return self._guarded(value.is_string(), sa.and_(text >= low, text <= high))
            return self._guarded(
                value.is_number(),
                sa.and_(
                    value.number(low) >= _number_operand(self.dialect, low),
                    value.number(high) <= _number_operand(self.dialect, high),
                ),
            )
        if name == "contains":
            return self._contains(value, operand)
        if name == "starts_with":
            head = sa.func.substr(value.string(), 1, len(operand))
            return self._guarded(value.is_string(), head == operand)
        if name == "ends_with":
            if self.dialect == "sqlite":
                tail = sa.func.substr(value.string(), -len(operand))
            else:
                tail = sa.func.right(value.string(), len(operand))
            return self._guarded(value.is_string(), tail == operand)
        if name == "exists":
            return value.present()
        table, instant = self._instant(value)
        test = self._date_op(instant, name, operand)
        return sa.select(test).select_from(table).scalar_subquery()

    def _guarded(self, guard: Bool, test: Bool) -> Bool:
        """`test` evaluated only where `guard` holds (PostgreSQL casts need this order)."""
        return sa.case((guard, _definite(test)), else_=sa.false())

    def _equals(self, value: _Json, operand: Any) -> Bool:
        if isinstance(operand, bool):
            return value.is_boolean(operand)
        if isinstance(operand, str):
            return self._guarded(value.is_string(), value.string() == operand)
        return self._guarded(
            value.is_number(), value.number(operand) == _number_operand(self.dialect, operand)
        )

    def _member_of(self, value: _Json, operands: Sequence[Any]) -> Bool:
        strings = [item for item in operands if isinstance(item, str)]
        ints = [item for item in operands if isinstance(item, int) and not isinstance(item, bool)]
        floats = [item for item in operands if isinstance(item, float)]
        parts: list[Bool] = [
            value.is_boolean(item) for item in {*operands} if isinstance(item, bool)
        ]
        if strings:
            parts.append(self._guarded(value.is_string(), value.string().in_(strings)))
        for group in (ints, floats):
            if group:
                numbers = [_number_operand(self.dialect, item) for item in group]
                parts.append(self._guarded(value.is_number(), value.number(group[0]).in_(numbers)))
        return sa.or_(*parts) if parts else sa.false()

    def _ordered(self, value: _Json, name: str, operand: Any) -> Bool:
        left: ColumnElement[Any]
        right: ColumnElement[Any]
        if isinstance(operand, str):
            guard, left, right = value.is_string(), value.string(), sa.literal(operand)
        else:
            guard = value.is_number()
            left, right = value.number(operand), _number_operand(self.dialect, operand)
        tests = {"gt": left > right, "gte": left >= right, "lt": left < right, "lte": left <= right}
        return self._guarded(guard, tests[name])

    def _contains(self, value: _Json, operand: Any) -> Bool:
        parts: list[Bool] = []
        if isinstance(operand, str):
            position = (
                sa.func.instr(value.string(), operand)
                if self.dialect == "sqlite"
                else sa.func.strpos(value.text, operand)
            )
            parts.append(self._guarded(value.is_string(), position > 0))
        parts.append(self._guarded(value.is_array(), self._array_has(value, operand)))
        return sa.or_(*parts)

    def _array_has(self, value: _Json, operand: Any) -> Bool:
        if self.dialect == "postgresql":
            needle = sa.cast(sa.literal(orjson.dumps([operand]).decode()), JSONB)
            return value.json.op("@>", return_type=sa.Boolean)(needle)
        element = sa.func.json_each(value.doc, value.path_arg).table_valued("type", "value")
        element = element.alias(f"je{next(self._aliases)}")
        if isinstance(operand, bool):
            matches = element.c.type == ("true" if operand else "false")
        elif isinstance(operand, str):
            matches = sa.and_(element.c.type == "text", element.c.value == operand)
        else:
            matches = sa.and_(element.c.type.in_(("integer", "real")), element.c.value == operand)
        return sa.exists(sa.select(sa.literal(1)).select_from(element).where(matches))

    # ---------------------------------------------------------------------- dates

    def _date_op(self, instant: Int, name: str, operand: Any) -> Bool:
        if name == "before":
            return _definite(instant < big(operand_span(operand).start_ms))
        if name == "after":
            return _definite(instant >= big(operand_span(operand).end_ms))
        if name == "between_dates":
            low, high = operand_span(operand[0]).start_ms, operand_span(operand[1]).end_ms
            return _definite(instant.between(big(low), big(high - 1)))
        span = parse_duration_ms(operand)
        if name == "within_last":
            return _definite(instant.between(self.now - big(span - 1), self.now))
        if name == "within_next":
            return _definite(instant.between(self.now + big(1), self.now + big(span)))
        raise ValueError(f"not a date operator: {name}")

    def _instant(self, value: _Json) -> tuple[sa.Subquery, Int]:
        """The instant a JSON value denotes (`instants.instant_ms`) or NULL, over a table.

        The date grammar reads the value dozens of times, so it runs over one-row derived
        tables, one step each: extract (type, text) once, test the shape, cut the fields,
        then add up. OFFSET 0 keeps both planners from inlining a step back into the next.
        """
        extracted = (
            sa.select(value.type.label("t"), value.text.label("v"))
            .correlate(value.owner)
            .offset(0)
            .subquery("extracted")
        )
        view = value.on(extracted.c.t, extracted.c.v)
        shape = _definite(sa.and_(view.is_string(), iso_shape(self.dialect, view.text)))
        shaped = (
            sa.select(extracted.c.t, extracted.c.v, shape.label("ok"))
            .select_from(extracted)
            .offset(0)
            .subquery("shaped")
        )
        fields = iso_fields(shaped.c.v, shaped.c.ok)
        cut = (
            sa.select(shaped.c.t, shaped.c.v, shaped.c.ok, *fields)
            .select_from(shaped)
            .offset(0)
            .subquery("cut")
        )
        number = number_instant(self.dialect, cut.c.v)
        instant = sa.case(
            (value.on(cut.c.t, cut.c.v).is_number(), number),
            (cut.c.ok == sa.true(), iso_instant(cut.c)),
            else_=sa.null(),
        )
        return cut, instant

    # --------------------------------------------------------------------- events

    def property_filter(self, event: sa.FromClause, item: PropertyFilter) -> Bool:
        path = ("properties", *item.property.split("."))
        return self.comparison(_Json(self.dialect, event.c.payload, path, event), item)

    def _event(self, cond: EventCondition) -> Bool:
        event = events.alias(f"ev{next(self._aliases)}")
        stamp = event.c.timestamp_ms
        where: list[Bool] = [
            event.c.workspace_id == self.workspace,
            event.c.event == cond.event,
            stamp <= self.now,
        ]
        if cond.within is not None:
            where.append(stamp > self.now - big(parse_duration_ms(cond.within)))
        if cond.between is not None:
            where.append(stamp >= big(operand_span(cond.between[0]).start_ms))
            where.append(stamp < big(operand_span(cond.between[1]).end_ms))
        where.extend(self.property_filter(event, item) for item in cond.where or ())
        mine = event.c.profile_id == self.profile.c.id
        # Events of no profile must not reach an IN list: NULL there would make it unknown.
        where_profile = [*where, event.c.profile_id.is_not(None)]
        for measure, aggregate in (
            (cond.first_performed, sa.func.min),
            (cond.last_performed, sa.func.max),
        ):
            if measure is not None:
                return self.profile.c.id.in_(
                    sa.select(event.c.profile_id)
                    .where(*where_profile)
                    .group_by(event.c.profile_id)
                    .having(self._performed_at(aggregate(stamp), measure))
                )
        if cond.count is None:
            performed = sa.exists().where(mine, *where)
            return sa.not_(performed) if cond.performed is False else performed
        having = self._count(sa.func.count(), cond.count)
        if not _count_holds_at_zero(cond.count):
            return self.profile.c.id.in_(
                sa.select(event.c.profile_id)
                .where(*where_profile)
                .group_by(event.c.profile_id)
                .having(having)
            )
        # True at zero events: a member unless it has events and their count fails.
        return self.profile.c.id.not_in(
            sa.select(event.c.profile_id)
            .where(*where_profile)
            .group_by(event.c.profile_id)
            .having(sa.not_(having))
        )

    def _performed_at(self, instant: Int, measure: DateComparison) -> Bool:
        name, operand = measure.operator
        return self._date_op(instant, name, operand)

    def _count(self, total: Int, cmp: CountComparison) -> Bool:
        name, operand = cmp.operator
        if name == "between":
            return total.between(operand[0], operand[1])
        tests: dict[str, Bool] = {
            "eq": total == operand,
            "ne": total != operand,
            "gt": total > operand,
            "gte": total >= operand,
            "lt": total < operand,
            "lte": total <= operand,
        }
        return tests[name]

    # -------------------------------------------------------------------- buckets

    def _bucket(self, cond: RandomBucket) -> Bool:
        """`buckets.bucket_of` in SQL; each finaliser round reads the previous value twice,
        so rounds run over one-row derived tables instead of nesting the whole expression."""
        code = sa.func.unicode if self.dialect == "sqlite" else sa.func.ascii
        raw: Int = big(seed_offset(cond.random_bucket.seed or ""))
        for position in range(ID_CHARS):
            character = sa.func.substr(self.profile.c.id, position + 1, 1)
            point = sa.cast(sa.func.coalesce(code(character), 0), sa.BigInteger)
            raw = raw + point * big(WEIGHTS[position])
        step = (
            sa.select((raw % big(MODULUS)).label("h"))
            .correlate(self.profile)
            .offset(0)
            .subquery("hashed")
        )
        for name in ("round1", "round2"):
            value = _bits("&", _xor(_shifted(step.c.h), step.c.h) * big(MIX), big(MASK))
            step = sa.select(value.label("h")).select_from(step).offset(0).subquery(name)
        bucket = _xor(_shifted(step.c.h), step.c.h) % big(BUCKETS)
        share = cond.random_bucket.basis_points
        return sa.select(_definite(bucket < share)).select_from(step).scalar_subquery()


def _bits(operator: str, left: ColumnElement[Any], right: ColumnElement[Any]) -> ColumnElement[Any]:
    """A bitwise operation, parenthesised whole (the dialects rank these operators apart)."""
    return Grouping(Grouping(left).op(operator)(Grouping(right)))


def _shifted(value: ColumnElement[Any]) -> ColumnElement[Any]:
    """value >> 16 (PostgreSQL shifts bigint by integer only)."""
    return _bits(">>", value, sa.literal(16, sa.Integer))


def _xor(left: ColumnElement[Any], right: ColumnElement[Any]) -> ColumnElement[Any]:
    """Bitwise xor both dialects share (SQLite has no xor operator)."""
    return Grouping(_bits("|", left, right) - _bits("&", left, right))


def _count_holds_at_zero(cmp: CountComparison) -> bool:
    return count_test(cmp)(0)
