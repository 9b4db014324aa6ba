"""The condition language: one typed tree, two compilers.

Segments, journey branches, exit criteria and goals all say "who" with this language. The tree
(`tree`) is parsed from the JSON/YAML users write and published as JSON Schema; `predicates`
compiles it to closures answering (value, valid until) in memory; `legato.store.conditions_sql`
compiles the same tree to SQL, and property tests prove the two agree. Typing rules for values
are in `values`, the date grammar in `instants`, random buckets in `buckets`.

Pure: no I/O, no clock, no `random`.
"""

from legato.domain.conditions.facts import (
    EvalContext,
    EventFact,
    Predicate,
    ProfileSnapshot,
    Verdict,
)
from legato.domain.conditions.predicates import (
    References,
    compile_condition,
    may_hold_for_a_new_profile,
    references,
)
from legato.domain.conditions.schema import condition_schema
from legato.domain.conditions.tree import (
    AllOf,
    AnyOf,
    BucketSpec,
    Comparison,
    ComputedTraitCondition,
    Condition,
    ConditionNode,
    CountComparison,
    DateComparison,
    EventCondition,
    Not,
    PropertyFilter,
    RandomBucket,
    SegmentCondition,
    TraitCondition,
    dump_condition,
    parse_condition,
    parse_event_filters,
    walk,
)
from legato.domain.conditions.values import compile_event_filter

__all__ = [
    "AllOf",
    "AnyOf",
    "BucketSpec",
    "Comparison",
    "ComputedTraitCondition",
    "Condition",
    "ConditionNode",
    "CountComparison",
    "DateComparison",
    "EvalContext",
    "EventCondition",
    "EventFact",
    "Not",
    "Predicate",
    "ProfileSnapshot",
    "PropertyFilter",
    "RandomBucket",
    "References",
    "SegmentCondition",
    "TraitCondition",
    "Verdict",
    "compile_condition",
    "compile_event_filter",
    "condition_schema",
    "dump_condition",
    "may_hold_for_a_new_profile",
    "parse_condition",
    "parse_event_filters",
    "references",
    "walk",
]
