"""What can move a run: entering, an event, a timer coming due, a webhook's answer. Pure data."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeAlias

from legato.domain.conditions import (
    EventFact,
)

if TYPE_CHECKING:
    pass

# ---------------------------------------------------------------------------------------------
# Stimuli


@dataclass(frozen=True, slots=True)
class EntryHistory:
    """What the runtime knows about earlier runs, so the engine can apply the entry rules."""

    live_runs_for_key: int = 0
    finished_runs_for_key: int = 0
    profile_entries: int = 0
    journey_enrollments: int = 0


@dataclass(frozen=True, slots=True)
class Enter:
    """The trigger fired for `ctx.profile_id`: start run `run_id` (if the entry rules allow)."""

    run_id: str
    trigger: EventFact
    history: EntryHistory = EntryHistory()


@dataclass(frozen=True, slots=True)
class EventArrived:
    """An event of the run's person: may end a wait_for_event, meet a goal or an exit criterion."""

    event: EventFact


@dataclass(frozen=True, slots=True)
class TimerFired:
    """A timer the engine asked for came due (a stale one is ignored)."""

    node_id: str
    due_ms: int


@dataclass(frozen=True, slots=True)
class WebhookDone:
    """The outcome of a webhook call: HTTP status (0 when no answer) and the decoded JSON body."""

    node_id: str
    status: int
    body: Any = None
    idempotency_key: str | None = None


Stimulus: TypeAlias = Enter | EventArrived | TimerFired | WebhookDone
