"""The unit of work that turns transitions into rows: what it asks the store to delete, and the
outbox ids it derives (stored, so their format must never change)."""

from __future__ import annotations

import pytest

from legato.domain.conditions import EventFact
from legato.domain.engine import Enter, Run, TimerFired, advance, compile_journey
from legato.domain.journeys import parse_journey
from legato.runtime.listening import Facts
from legato.runtime.transitions import Unit, outbox_id
from legato.store.runs import StoredRun

T0 = 1_767_603_600_000
HOUR = 3_600_000
WAIT_THEN_SEND = compile_journey(
    parse_journey(
        {
            "kind": "Journey",
            "key": "wait_then_send",
            "trigger": {"event": "Signed Up"},
            "nodes": [
                {"id": "w", "type": "wait", "duration": "1h", "next": "m"},
                {"id": "m", "type": "message", "channel": "email", "template": "hi"},
            ],
        }
    ),
    1,
)


def waiting_run() -> Run:
    run = advance(WAIT_THEN_SEND, None, Enter("r1", EventFact("Signed Up", T0, {})), T0, Facts("p"))
    assert run.run is not None and run.run.timers() == {("w", T0 + HOUR)}
    return run.run


@pytest.mark.parametrize(
    ("claimed", "deletes"),
    [
        # The timer worker claimed (deleted) the run's only timer: nothing left to delete.
        ({("r1", "w", T0 + HOUR)}, False),
        # Nothing claimed by this transaction (an event moved the run): delete its timers.
        (set(), True),
        # Another timer of the run was claimed, not this one: it is still stored.
        ({("r1", "w", T0 + 2 * HOUR)}, True),
    ],
)
def test_cancelled_timers_are_deleted_unless_this_transaction_claimed_them(
    claimed: set[tuple[str, str, int]], deletes: bool
) -> None:
    run = waiting_run()
    unit = Unit("ws", T0 + HOUR)
    unit.claimed = claimed
    tracked = unit.adopt(WAIT_THEN_SEND, StoredRun(run.to_dict(), "u1", None))
    fired = TimerFired("w", T0 + HOUR)
    transition = unit.step(WAIT_THEN_SEND, tracked, fired, Facts("p"), T0 + HOUR)
    assert transition.run is not None and transition.run.status == "exited"
    changes = unit.finish()
    assert changes.cancelled_timers == ({"r1"} if deletes else set())
    assert [row["idempotency_key"] for row in changes.outbox] == ["r1:m:1"]
    assert not changes.timers


@pytest.mark.parametrize(
    ("key", "expected"),
    [
        ("01hxyzabcdefghjkmnpqrstvwx:m:1", "7gpqfdq93qw8wawcedw5mqccr5"),
        ("r:n:2", "0kqfkc5aw5npwy1zbx30sx7bmk"),
        ("", "6awsmm3pffqn04wkc8ep7acxkg"),
    ],
)
def test_outbox_ids_keep_their_format(key: str, expected: str) -> None:
    assert outbox_id(key) == expected
