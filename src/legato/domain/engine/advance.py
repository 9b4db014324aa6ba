"""The journey engine: a pure state machine that moves one run one step.

`advance(version, run, stimulus, now_ms, ctx)` returns a `Transition`: the run's next state and
the effects the runtime must apply with it, atomically (sends and webhook calls go to an outbox,
timers to a timer table, profile updates and emitted events to their stores). Between waits it
executes node after node in one call, bounded by a loop guard. It is deterministic: the same
compiled version, run, stimulus, instant and profile give the same transition, so journeys can
be tested on a simulated clock and backtested on history.

This module never does I/O, never reads the clock and never draws random numbers: time is the
`now_ms` it is given and random splits hash (journey, node, profile) with BLAKE2b.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from legato.domain.conditions import (
    EventFact,
)
from legato.domain.engine.compiled import (
    CompiledJourney,
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

# ---------------------------------------------------------------------------------------------
# advance
from legato.domain.engine.moments import date_instant, local_start_ms, profile_zone
from legato.domain.engine.runs import (
    EXIT_CHECK_TIMER,
    EXIT_CONVERTED,
    EXIT_CRITERIA,
    EXIT_END,
    EXIT_HOLDOUT,
    EXIT_LOOP_GUARD,
    EXIT_NODE,
    MAX_STEPS_PER_ADVANCE,
    MISSING,
    REFUSED_EXIT,
    REFUSED_KEY,
    REFUSED_LIMIT,
    REFUSED_MAX_ENTRIES,
    REFUSED_RE_ENTRY,
    REFUSED_TRIGGER,
    START_TIMER,
    TERMINAL,
    Run,
    RunStatus,
    lookup,
    resolve,
)
from legato.domain.engine.splits import random_split_arm
from legato.domain.engine.stimuli import (
    Enter,
    EventArrived,
    Stimulus,
    TimerFired,
    WebhookDone,
)
from legato.domain.journeys import (
    BranchNode,
    EmitEventNode,
    ExitNode,
    MessageNode,
    Node,
    RandomSplitNode,
    SplitNode,
    UpdateProfileNode,
    WaitForEventNode,
    WaitNode,
    WaitUntilNode,
    WebhookNode,
)
from legato.domain.local_time import (
    next_local_time_ms,
    weekday_numbers,
)
from legato.errors import InvalidInput

if TYPE_CHECKING:
    from legato.domain.conditions import EvalContext


def advance(
    version: CompiledJourney,
    run: Run | None,
    stimulus: Stimulus,
    now_ms: int,
    ctx: EvalContext,
) -> Transition:
    """Apply one stimulus to one run at `now_ms`; deterministic, no I/O."""
    if isinstance(stimulus, Enter):
        if run is not None:
            raise InvalidInput("Enter starts a new run; this run exists already", run=run.run_id)
        return _enter(version, stimulus, now_ms, ctx)
    if run is None:
        raise InvalidInput(f"{type(stimulus).__name__} needs the run it is for")
    if run.journey_key != version.key or run.version != version.version:
        raise InvalidInput(
            f"run {run.run_id} is on {run.journey_key} v{run.version}, "
            f"not {version.key} v{version.version}"
        )
    if run.status == "active":
        raise InvalidInput(f"run {run.run_id} is mid-step (active); stored runs wait or are done")
    if run.profile_id != ctx.profile_id:
        raise InvalidInput(f"run {run.run_id} belongs to {run.profile_id}, not {ctx.profile_id}")
    step = _Step(version, run, now_ms, ctx)
    if isinstance(stimulus, EventArrived):
        step.on_event(stimulus.event)
    elif isinstance(stimulus, TimerFired):
        step.on_timer(stimulus)
    else:
        step.on_webhook(stimulus)
    return step.finish()


def _enter(version: CompiledJourney, stimulus: Enter, now_ms: int, ctx: EvalContext) -> Transition:
    journey = version.journey
    profile_id = ctx.profile_id

    def refuse(reason: str) -> Transition:
        return Transition(None, (EntryRefused(profile_id, reason),))

    if not version.matches_trigger(stimulus.trigger):
        return refuse(REFUSED_TRIGGER)
    try:
        entry_key = version.entry_key(stimulus.trigger)
    except InvalidInput:
        return refuse(REFUSED_KEY)
    rules = journey.entry
    history = stimulus.history
    if rules.enrollment_limit is not None and history.journey_enrollments >= rules.enrollment_limit:
        return refuse(REFUSED_LIMIT)
    if rules.max_entries is not None and history.profile_entries >= rules.max_entries:
        return refuse(REFUSED_MAX_ENTRIES)
    if rules.re_entry == "never" and history.live_runs_for_key + history.finished_runs_for_key:
        return refuse(REFUSED_RE_ENTRY)
    if rules.re_entry == "after_exit" and history.live_runs_for_key:
        return refuse(REFUSED_RE_ENTRY)
    if _exit_condition_holds(version, ctx, now_ms)[0]:
        return refuse(REFUSED_EXIT)
    within = journey.goal.within if journey.goal else None
    run = Run(
        run_id=stimulus.run_id,
        journey_key=journey.key,
        version=version.version,
        profile_id=profile_id,
        entry_key=entry_key,
        status="active",
        node_id=None,
        trigger=stimulus.trigger,
        entered_ms=now_ms,
        updated_ms=now_ms,
        goal_deadline_ms=now_ms + within if within is not None else None,
    )
    step = _Step(version, run, now_ms, ctx, new=True)
    step.effects.append(Entered(run.run_id, entry_key))
    start_ms = local_start_ms(version, stimulus.trigger, ctx)
    if start_ms is not None and start_ms > now_ms:
        step.status = "waiting"
        step.wait_deadline_ms = start_ms
    else:
        step.run_from(journey.start_node)
    return step.finish()


def _exit_condition_holds(
    version: CompiledJourney, ctx: EvalContext, now_ms: int
) -> tuple[bool, int | None]:
    """(some exit condition holds, the earliest instant one of them may change)."""
    until: int | None = None
    for predicate in version.exit_conditions:
        verdict = predicate(ctx, now_ms)
        if verdict.value:
            return True, None
        if verdict.valid_until_ms is not None:
            until = verdict.valid_until_ms if until is None else min(until, verdict.valid_until_ms)
    return False, until


class _OverlayContext:
    """The caller's EvalContext with traits changed by update_profile nodes earlier in the step."""

    def __init__(self, base: EvalContext, traits: Mapping[str, Any]) -> None:
        self._base = base
        self.profile_id = base.profile_id
        self.traits = traits
        self.computed_traits = base.computed_traits
        self.segments = base.segments

    def events(self, name: str) -> Sequence[EventFact]:
        """The base context's events (the engine emits none mid-step that conditions read)."""
        return self._base.events(name)


class _Step:
    """The mutable working state of one `advance` call; `finish` freezes it into a Transition."""

    def __init__(
        self,
        version: CompiledJourney,
        run: Run,
        now_ms: int,
        ctx: EvalContext,
        *,
        new: bool = False,
    ) -> None:
        self.version = version
        self.run = run
        self.now = now_ms
        self.ctx: EvalContext = ctx
        self.new = new
        self.effects: list[Effect] = []
        self.status: RunStatus = run.status
        self.node_id = run.node_id
        self.data = run.data
        self.visits = run.visits
        self.wait_deadline_ms = run.wait_deadline_ms
        self.recheck_ms = run.recheck_ms
        self.converted_ms = run.converted_ms
        self.exited_ms = run.exited_ms
        self.exit_reason = run.exit_reason
        self.converted_now = False
        # wait_until nodes passed without waiting in this call: a second pass must really wait.
        self.passed: set[str] = set()

    # -- stimuli ------------------------------------------------------------------------------

    def on_event(self, fact: EventFact) -> None:
        version = self.version
        goal = version.goal
        if (
            goal is not None
            and self.converted_ms is None
            and self._in_goal_window(fact)
            and goal.matches(fact, self.run)
        ):
            self.converted_ms = self.now
            self.converted_now = True
            self.effects.append(Converted(goal.event, fact, self.node_id))
            if self.live and self._goal_exits():
                # The journey did its job: stop here, before any path the event would open.
                self.exit(self.node_id, EXIT_CONVERTED)
        if not self.live:
            return
        if any(matcher.matches(fact, self.run) for matcher in version.exit_events):
            self.exit(self.node_id, EXIT_CRITERIA)
            return
        if self._exit_if_condition_holds():
            return
        matcher = version.wait_matchers.get(self.node_id or "")
        if self.status == "waiting" and matcher is not None and matcher.matches(fact, self.run):
            node = version.nodes[self.node_id or ""]
            assert isinstance(node, WaitForEventNode)
            self.leave_wait()
            self.run_from(node.on_event)

    def on_timer(self, timer: TimerFired) -> None:
        if not self.live or self.now < timer.due_ms:
            return
        if timer.node_id == EXIT_CHECK_TIMER:
            if timer.due_ms == self.recheck_ms:
                self.recheck_ms = None
                self._exit_if_condition_holds()
            return
        if self.status != "waiting" or timer.due_ms != self.wait_deadline_ms:
            return
        if timer.node_id == START_TIMER and self.node_id is None:
            self.leave_wait()
            if not self._exit_if_condition_holds():
                self.run_from(self.version.journey.start_node)
            return
        if timer.node_id != self.node_id:
            return
        node = self.version.nodes[timer.node_id]
        self.leave_wait()
        if self._exit_if_condition_holds():
            return
        if isinstance(node, WaitUntilNode):
            self.passed.add(node.id)  # its moment is now: looping back must wait for the next
            self.run_from(node.next)
        elif isinstance(node, WaitNode):
            self.run_from(node.next)
        elif isinstance(node, WaitForEventNode):
            self.run_from(node.on_timeout)
        elif isinstance(node, WebhookNode):
            self.run_from(node.on_failure)

    def on_webhook(self, done: WebhookDone) -> None:
        if not self.live or self.status != "waiting" or done.node_id != self.node_id:
            return
        node = self.version.nodes.get(done.node_id)
        if not isinstance(node, WebhookNode):
            return
        expected = self._key(done.node_id, self.visits.get(done.node_id, 0))
        if done.idempotency_key is not None and done.idempotency_key != expected:
            return
        self.leave_wait()
        if 200 <= done.status < 300:
            self._keep_response(node, done.body)
            if self._exit_if_condition_holds():
                return
            self.run_from(node.on_success)
        else:
            if self._exit_if_condition_holds():
                return
            self.run_from(node.on_failure)

    # -- execution ----------------------------------------------------------------------------

    @property
    def live(self) -> bool:
        return self.status not in TERMINAL

    def _stopped(self) -> bool:
        """True once the node just run left the run waiting or finished."""
        return self.status != "active"

    def run_from(self, node_id: str | None) -> None:
        """Execute nodes from `node_id` until a wait, an exit or the end of the path."""
        self.status = "active"
        steps = 0
        current = node_id
        while True:
            if current is None:
                self.exit(self.node_id, EXIT_END)
                return
            steps += 1
            if steps > MAX_STEPS_PER_ADVANCE:
                self.exit(current, EXIT_LOOP_GUARD)
                return
            node = self.version.nodes[current]
            self.node_id = current
            attempt = self.visits.get(current, 0) + 1
            self.visits = {**self.visits, current: attempt}
            current = self._execute(node, attempt)
            if self._stopped():
                return

    def _execute(self, node: Node, attempt: int) -> str | None:
        """Run one node; return the next node id (None: end of path; status set when stopping)."""
        key = self._key(node.id, attempt)
        if isinstance(node, MessageNode):
            self.effects.append(NodeVisited(node.id))
            self.effects.append(
                Send(
                    run_id=self.run.run_id,
                    journey_key=self.version.key,
                    version=self.version.version,
                    profile_id=self.run.profile_id,
                    node_id=node.id,
                    channel=node.channel,
                    template=node.template,
                    topic=node.topic,
                    idempotency_key=key,
                    trigger=self.run.trigger,
                    data=self.data,
                    settings=self.version.journey.settings,
                )
            )
            return node.next
        if isinstance(node, WaitNode):
            self.effects.append(NodeVisited(node.id))
            self.wait(self.now + node.duration)
            return None
        if isinstance(node, WaitUntilNode):
            again = node.id in self.passed
            due, missing = self._wait_until(node, strictly_later=again)
            self.effects.append(NodeVisited(node.id, "missing" if missing else None))
            if due is not None and due > self.now:
                self.wait(due)
                return None
            if again:
                # A loop came back here without time passing (a date already past): stop it.
                self.exit(node.id, EXIT_LOOP_GUARD)
                return None
            self.passed.add(node.id)
            return (node.on_missing or node.next) if missing else node.next
        if isinstance(node, WaitForEventNode):
            self.effects.append(NodeVisited(node.id))
            self.wait(self.now + node.timeout)
            return None
        if isinstance(node, BranchNode):
            holds = self.version.predicates[node.id](self.ctx, self.now).value
            self.effects.append(NodeVisited(node.id, "then" if holds else "else"))
            return node.then if holds else node.else_
        if isinstance(node, SplitNode):
            for i, arm in enumerate(node.branches):
                if self.version.predicates[f"{node.id}#{i}"](self.ctx, self.now).value:
                    self.effects.append(NodeVisited(node.id, arm.name or f"branches[{i}]"))
                    return arm.next
            self.effects.append(NodeVisited(node.id, "default"))
            return node.default
        if isinstance(node, RandomSplitNode):
            chosen = random_split_arm(self.version.key, node, self.run.profile_id)
            if chosen is None:
                self.effects.append(NodeVisited(node.id, "holdout"))
                self.exit(node.id, EXIT_HOLDOUT)
                return None
            self.effects.append(NodeVisited(node.id, node.arm_names()[chosen]))
            return node.branches[chosen].next
        if isinstance(node, UpdateProfileNode):
            self.effects.append(NodeVisited(node.id))
            self._update_profile(node, key)
            return node.next
        if isinstance(node, WebhookNode):
            self.effects.append(NodeVisited(node.id))
            give_up = self.now + node.give_up_after
            request = WebhookRequest(
                url=node.url,
                method=node.method,
                headers=dict(node.headers),
                body_template=node.body,
                timeout_ms=node.timeout,
                give_up_at_ms=give_up,
                trigger=self.run.trigger,
                data=self.data,
            )
            self.effects.append(CallWebhook(self.run.run_id, node.id, request, key))
            self.wait(give_up)
            return None
        if isinstance(node, EmitEventNode):
            self.effects.append(NodeVisited(node.id))
            properties = {name: self._value(value) for name, value in node.properties.items()}
            self.effects.append(Emit(self.run.profile_id, node.event, properties, key))
            return node.next
        assert isinstance(node, ExitNode)
        self.effects.append(NodeVisited(node.id))
        self.exit(node.id, EXIT_NODE)
        return None

    def wait(self, due_ms: int) -> None:
        self.status = "waiting"
        self.wait_deadline_ms = due_ms

    def leave_wait(self) -> None:
        self.status = "active"
        self.wait_deadline_ms = None

    def exit(self, node_id: str | None, reason: str) -> None:
        self.status = "converted" if reason == EXIT_CONVERTED else "exited"
        self.node_id = node_id
        self.wait_deadline_ms = None
        self.recheck_ms = None
        self.exited_ms = self.now
        self.exit_reason = reason
        self.effects.append(Exit(node_id, reason))

    def finish(self) -> Transition:
        if self.live:
            holds, until = _exit_condition_holds(self.version, self.ctx, self.now)
            if holds:
                self.exit(self.node_id, EXIT_CRITERIA)
            else:
                # Time-windowed conditions say when they may flip; re-check then, never poll.
                self.recheck_ms = until if until is not None and until > self.now else None
        status: RunStatus = self.status
        if status == "active":
            raise AssertionError("a step always ends waiting or finished")
        before = self.run
        if (
            not self.new
            and not self.effects
            and (
                status,
                self.node_id,
                self.data,
                self.visits,
                self.wait_deadline_ms,
                self.recheck_ms,
                self.converted_ms,
                self.exited_ms,
                self.exit_reason,
            )
            == (
                before.status,
                before.node_id,
                before.data,
                before.visits,
                before.wait_deadline_ms,
                before.recheck_ms,
                before.converted_ms,
                before.exited_ms,
                before.exit_reason,
            )
        ):
            return Transition(before, (), changed=False)
        # The constructor, not dataclasses.replace: this runs once per transition.
        run = Run(
            before.run_id,
            before.journey_key,
            before.version,
            before.profile_id,
            before.entry_key,
            status,
            self.node_id,
            before.trigger,
            before.entered_ms,
            self.now,
            self.data,
            self.visits,
            self.wait_deadline_ms,
            self.recheck_ms,
            before.goal_deadline_ms,
            self.converted_ms,
            self.exited_ms,
            self.exit_reason,
        )
        expected = frozenset() if self.new else before.timers()
        after = run.timers()
        timers: list[Effect] = []
        if expected - after:
            timers.append(CancelTimers())
            timers.extend(ScheduleTimer(name, due) for name, due in sorted(after))
        else:
            timers.extend(ScheduleTimer(name, due) for name, due in sorted(after - expected))
        return Transition(run, (*self.effects, *timers))

    # -- node helpers -------------------------------------------------------------------------

    def _key(self, node_id: str, attempt: int) -> str:
        return f"{self.run.run_id}:{node_id}:{attempt}"

    def _goal_exits(self) -> bool:
        goal = self.version.journey.goal
        return goal is not None and goal.exit

    def _in_goal_window(self, fact: EventFact) -> bool:
        if fact.timestamp_ms < self.run.entered_ms:
            return False
        deadline = self.run.goal_deadline_ms
        if deadline is None:
            return self.live
        return fact.timestamp_ms <= deadline

    def _exit_if_condition_holds(self) -> bool:
        if (
            self.version.exit_conditions
            and _exit_condition_holds(self.version, self.ctx, self.now)[0]
        ):
            self.exit(self.node_id, EXIT_CRITERIA)
            return True
        return False

    def _value(self, value: Any) -> Any:
        resolved = resolve(value, self.run, self.data)
        return None if resolved is MISSING else resolved

    def _update_profile(self, node: UpdateProfileNode, key: str) -> None:
        ops: list[TraitOp] = []
        traits = dict(self.ctx.traits)
        for name, raw in node.set.items():
            value = self._value(raw)
            ops.append(TraitOp("set", name, value))
            traits[name] = value
        for name in node.unset:
            ops.append(TraitOp("unset", name))
            traits.pop(name, None)
        for name, amount in node.increment.items():
            ops.append(TraitOp("increment", name, amount))
            current = traits.get(name)
            base = (
                current if isinstance(current, int | float) and not isinstance(current, bool) else 0
            )
            traits[name] = base + amount
        self.effects.append(UpdateProfile(self.run.profile_id, tuple(ops), key))
        self.ctx = _OverlayContext(self.ctx, traits)

    def _keep_response(self, node: WebhookNode, body: Any) -> None:
        ops: list[TraitOp] = []
        traits = dict(self.ctx.traits)
        for trait, path in node.response.traits.items():
            value = lookup(body, tuple(path.split(".")))
            if value is not MISSING:
                ops.append(TraitOp("set", trait, value))
                traits[trait] = value
        if node.response.data:
            data = dict(self.data)
            for name, path in node.response.data.items():
                value = lookup(body, tuple(path.split(".")))
                if value is not MISSING:
                    data[name] = value
            self.data = data
        if ops:
            key = self._key(node.id, self.visits.get(node.id, 0)) + ":response"
            self.effects.append(UpdateProfile(self.run.profile_id, tuple(ops), key))
            self.ctx = _OverlayContext(self.ctx, traits)

    def _wait_until(self, node: WaitUntilNode, *, strictly_later: bool) -> tuple[int | None, bool]:
        """(due instant, date missing) for a wait_until node."""
        tz = profile_zone(self.version, self.ctx)
        if node.date_trait is None and node.date is None:
            assert node.time is not None
            after = self.now + 1 if strictly_later else self.now
            return next_local_time_ms(after, tz, node.time, weekday_numbers(node.weekdays)), False
        if node.date_trait is not None:
            value = self.ctx.traits.get(node.date_trait)
        else:
            value = self._value(node.date)
        due = date_instant(value, tz, node.time, node.offset)
        return due, due is None
