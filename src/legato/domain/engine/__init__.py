"""The journey engine: a pure state machine that moves one run one step.

`advance(version, run, stimulus, now_ms, ctx)` (in `advance`) returns a `Transition` (`effects`):
the run's next state (`runs`) and the effects the runtime must apply with it, atomically. A
stimulus (`stimuli`) is an entry, an event, a timer or a webhook answer. `compiled` builds a
journey version's conditions once and answers the dispatch index's questions. Deterministic:
never does I/O, never reads the clock, never draws random numbers.
"""

from __future__ import annotations

from legato.domain.engine.advance import (
    advance,
)
from legato.domain.engine.compiled import (
    CompiledJourney,
    Interests,
    Occurrence,
    compile_journey,
)
from legato.domain.engine.effects import (
    CallWebhook,
    CancelTimers,
    Converted,
    Effect,
    Emit,
    Entered,
    EntryRefused,
    Exit,
    NodeVisited,
    ScheduleTimer,
    Send,
    TraitOp,
    Transition,
    UpdateProfile,
    WebhookRequest,
)
from legato.domain.engine.runs import (
    API_TRIGGER_EVENT,
    EXIT_CHECK_TIMER,
    EXIT_CONVERTED,
    EXIT_CRITERIA,
    EXIT_END,
    EXIT_HOLDOUT,
    EXIT_LOOP_GUARD,
    EXIT_NODE,
    MAX_STEPS_PER_ADVANCE,
    OCCURRENCE_PROPERTY,
    REFUSED_EXIT,
    REFUSED_KEY,
    REFUSED_LIMIT,
    REFUSED_MAX_ENTRIES,
    REFUSED_RE_ENTRY,
    REFUSED_TRIGGER,
    SCHEDULE_EVENT,
    SEGMENT_ENTERED_EVENT,
    SEGMENT_EXITED_EVENT,
    SEGMENT_PROPERTY,
    START_TIMER,
    Run,
    RunStatus,
)
from legato.domain.engine.splits import random_split_arm
from legato.domain.engine.stimuli import (
    Enter,
    EntryHistory,
    EventArrived,
    Stimulus,
    TimerFired,
    WebhookDone,
)

__all__ = [
    "API_TRIGGER_EVENT",
    "EXIT_CHECK_TIMER",
    "EXIT_CONVERTED",
    "EXIT_CRITERIA",
    "EXIT_END",
    "EXIT_HOLDOUT",
    "EXIT_LOOP_GUARD",
    "EXIT_NODE",
    "MAX_STEPS_PER_ADVANCE",
    "OCCURRENCE_PROPERTY",
    "REFUSED_EXIT",
    "REFUSED_KEY",
    "REFUSED_LIMIT",
    "REFUSED_MAX_ENTRIES",
    "REFUSED_RE_ENTRY",
    "REFUSED_TRIGGER",
    "SCHEDULE_EVENT",
    "SEGMENT_ENTERED_EVENT",
    "SEGMENT_EXITED_EVENT",
    "SEGMENT_PROPERTY",
    "START_TIMER",
    "CallWebhook",
    "CancelTimers",
    "CompiledJourney",
    "Converted",
    "Effect",
    "Emit",
    "Enter",
    "Entered",
    "EntryHistory",
    "EntryRefused",
    "EventArrived",
    "Exit",
    "Interests",
    "NodeVisited",
    "Occurrence",
    "Run",
    "RunStatus",
    "ScheduleTimer",
    "Send",
    "Stimulus",
    "TimerFired",
    "TraitOp",
    "Transition",
    "UpdateProfile",
    "WebhookDone",
    "WebhookRequest",
    "advance",
    "compile_journey",
    "random_split_arm",
]
