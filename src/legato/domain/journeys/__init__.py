"""The journey document: what a marketer draws in the builder or writes as YAML.

A journey is a trigger (`triggers`), entry rules, exit criteria, an optional goal and settings
(`rules`), and a list of nodes joined by node ids (`nodes`), built from the scalar types in
`fields`. `document` holds the `Journey` model, its JSON Schema and `parse_journey`, which turns
user input into a `Journey` or raises `InvalidInput` naming the node and field at fault. Graph
checks live in `journey_validation`; execution lives in `engine`. Nothing here does I/O.
"""

from __future__ import annotations

from legato.domain.journeys.document import (
    Journey,
    journey_schema,
    parse_journey,
)
from legato.domain.journeys.fields import (
    REFERENCE_PREFIXES,
    BodyPath,
    ConditionField,
    Duration,
    EventFilter,
    EventName,
    Key,
    NodeId,
    PropertyPath,
    Reference,
    SignedDuration,
    TimeOfDay,
    TimeZoneName,
    TraitName,
    reference_path,
)
from legato.domain.journeys.nodes import (
    NODE_TYPES,
    WAIT_NODE_TYPES,
    BranchNode,
    EmitEventNode,
    ExitNode,
    MessageNode,
    Node,
    RandomBranch,
    RandomSplitNode,
    SplitBranch,
    SplitNode,
    UpdateProfileNode,
    WaitForEventNode,
    WaitNode,
    WaitUntilNode,
    WebhookNode,
    WebhookResponse,
)
from legato.domain.journeys.rules import (
    ConditionExit,
    EntryRules,
    EventExit,
    ExitCriterion,
    Goal,
    JourneySettings,
    QuietHours,
)
from legato.domain.journeys.triggers import (
    ApiTrigger,
    EventTrigger,
    Schedule,
    ScheduleTrigger,
    SegmentTrigger,
    Trigger,
)

__all__ = [
    "NODE_TYPES",
    "REFERENCE_PREFIXES",
    "WAIT_NODE_TYPES",
    "ApiTrigger",
    "BodyPath",
    "BranchNode",
    "ConditionExit",
    "ConditionField",
    "Duration",
    "EmitEventNode",
    "EntryRules",
    "EventExit",
    "EventFilter",
    "EventName",
    "EventTrigger",
    "ExitCriterion",
    "ExitNode",
    "Goal",
    "Journey",
    "JourneySettings",
    "Key",
    "MessageNode",
    "Node",
    "NodeId",
    "PropertyPath",
    "QuietHours",
    "RandomBranch",
    "RandomSplitNode",
    "Reference",
    "Schedule",
    "ScheduleTrigger",
    "SegmentTrigger",
    "SignedDuration",
    "SplitBranch",
    "SplitNode",
    "TimeOfDay",
    "TimeZoneName",
    "TraitName",
    "Trigger",
    "UpdateProfileNode",
    "WaitForEventNode",
    "WaitNode",
    "WaitUntilNode",
    "WebhookNode",
    "WebhookResponse",
    "journey_schema",
    "parse_journey",
    "reference_path",
]
