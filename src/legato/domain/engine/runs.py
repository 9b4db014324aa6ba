"""The run: one person's state in one journey version, and the names the engine shares.

A `Run` is the value the runtime persists between steps (`to_dict`/`from_dict` for a JSON
column). This module also holds the reserved timer ids, the internal event names the engine
reacts to, the exit and refusal reasons, and how document values referring to the run
(`trigger.properties.x`, `data.x`) are read. Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, TypeAlias

from legato.domain.conditions import (
    EventFact,
)
from legato.domain.journeys import (
    reference_path,
)

if TYPE_CHECKING:
    pass

#: Node executions allowed in one `advance` call; validation forbids loops without a wait, so
#: reaching it means a document slipped past validation and the run is stopped, not spun.
MAX_STEPS_PER_ADVANCE = 1000

#: The internal events the segment engine writes when membership changes.
SEGMENT_ENTERED_EVENT = "Segment Entered"
SEGMENT_EXITED_EVENT = "Segment Exited"
SEGMENT_PROPERTY = "segment"
#: The trigger event of a scheduled enrolment, and its property naming the local occurrence
#: ("2026-03-01T09:00:00", no offset); runs sent at local time start at it in their own zone.
SCHEDULE_EVENT = "Journey Scheduled"
#: The trigger event of an entry asked for through the API.
API_TRIGGER_EVENT = "Journey Triggered"
OCCURRENCE_PROPERTY = "occurrence"

#: Timer ids that are not node ids (node ids start with a letter).
START_TIMER = "$start"
EXIT_CHECK_TIMER = "$exit"

RunStatus: TypeAlias = Literal["active", "waiting", "exited", "converted"]
TERMINAL: frozenset[str] = frozenset({"exited", "converted"})

# Why a run ended (Exit.reason) or was not created (EntryRefused.reason).
EXIT_NODE = "exit_node"
EXIT_END = "end_of_path"
EXIT_CRITERIA = "exit_criteria"
EXIT_CONVERTED = "converted"
EXIT_HOLDOUT = "holdout"
EXIT_LOOP_GUARD = "loop_guard"
REFUSED_TRIGGER = "trigger_mismatch"
REFUSED_KEY = "missing_entry_key"
REFUSED_RE_ENTRY = "re_entry"
REFUSED_MAX_ENTRIES = "max_entries"
REFUSED_LIMIT = "enrollment_limit"
REFUSED_EXIT = "exit_criteria"


# ---------------------------------------------------------------------------------------------
# Run state


@dataclass(frozen=True, slots=True)
class Run:
    """One person's journey through one version; a value the runtime persists between steps.

    `node_id` is where the run waits (or ended); `visits` counts arrivals per node (the attempt
    in idempotency keys); `wait_deadline_ms` is the due time of the timer of the current wait.
    """

    run_id: str
    journey_key: str
    version: int
    profile_id: str
    entry_key: str | None
    status: RunStatus
    node_id: str | None
    trigger: EventFact
    entered_ms: int
    updated_ms: int
    data: Mapping[str, Any] = field(default_factory=dict)
    visits: Mapping[str, int] = field(default_factory=dict)
    wait_deadline_ms: int | None = None
    recheck_ms: int | None = None
    goal_deadline_ms: int | None = None
    converted_ms: int | None = None
    exited_ms: int | None = None
    exit_reason: str | None = None

    @property
    def live(self) -> bool:
        """True while the run can still move (waiting or active)."""
        return self.status not in TERMINAL

    def timers(self) -> frozenset[tuple[str, int]]:
        """The (timer id, due_ms) pairs this state expects to be scheduled."""
        timers: set[tuple[str, int]] = set()
        if self.live and self.wait_deadline_ms is not None:
            timers.add((self.node_id or START_TIMER, self.wait_deadline_ms))
        if self.live and self.recheck_ms is not None:
            timers.add((EXIT_CHECK_TIMER, self.recheck_ms))
        return frozenset(timers)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready mapping (for a JSON column); `Run.from_dict` reads it back."""
        return {
            "run_id": self.run_id,
            "journey_key": self.journey_key,
            "version": self.version,
            "profile_id": self.profile_id,
            "entry_key": self.entry_key,
            "status": self.status,
            "node_id": self.node_id,
            "trigger": {
                "name": self.trigger.name,
                "timestamp_ms": self.trigger.timestamp_ms,
                "properties": dict(self.trigger.properties),
            },
            "entered_ms": self.entered_ms,
            "updated_ms": self.updated_ms,
            "data": dict(self.data),
            "visits": dict(self.visits),
            "wait_deadline_ms": self.wait_deadline_ms,
            "recheck_ms": self.recheck_ms,
            "goal_deadline_ms": self.goal_deadline_ms,
            "converted_ms": self.converted_ms,
            "exited_ms": self.exited_ms,
            "exit_reason": self.exit_reason,
        }

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> Run:
        """The run `to_dict` wrote."""
        # Positional, with no intermediate dict: the timer worker reads a run per transition.
        trigger = raw["trigger"]
        visits = raw.get("visits")
        return cls(
            raw["run_id"],
            raw["journey_key"],
            raw["version"],
            raw["profile_id"],
            raw["entry_key"],
            raw["status"],
            raw["node_id"],
            EventFact(
                trigger["name"], int(trigger["timestamp_ms"]), dict(trigger.get("properties") or {})
            ),
            raw["entered_ms"],
            raw["updated_ms"],
            dict(raw.get("data") or {}),
            {str(k): int(v) for k, v in visits.items()} if visits else {},
            raw.get("wait_deadline_ms"),
            raw.get("recheck_ms"),
            raw.get("goal_deadline_ms"),
            raw.get("converted_ms"),
            raw.get("exited_ms"),
            raw.get("exit_reason"),
        )


class _Missing:
    __slots__ = ()

    def __repr__(self) -> str:
        return "<missing>"


#: What `lookup` returns for a path that leads nowhere (None is a real value).
MISSING: Any = _Missing()


def lookup(root: Any, path: Sequence[str]) -> Any:
    """The value at a dotted path (already split) in nested mappings/lists, or MISSING."""
    current = root
    for part in path:
        if isinstance(current, Mapping) and part in current:
            current = current[part]
        elif isinstance(current, list | tuple) and part.isdigit() and int(part) < len(current):
            current = current[int(part)]
        else:
            return MISSING
    return current


def resolve(value: Any, run: Run, data: Mapping[str, Any] | None = None) -> Any:
    """A document value with `trigger.` / `data.` references read from the run."""
    path = reference_path(value)
    if path is None:
        return value
    if path[0] == "trigger":
        trigger = run.trigger
        root = {
            "name": trigger.name,
            "event": trigger.name,
            "timestamp_ms": trigger.timestamp_ms,
            "properties": trigger.properties,
        }
        return lookup(root, path[1:])
    return lookup(data if data is not None else run.data, path[1:])
