"""Checks a parsed journey before it can run: its graph, and that what it names exists.

Graph checks (always): the start node exists, no edge points at a missing node, every node is
reachable from the start, and every loop passes through a wait (`wait`, `wait_until`,
`wait_for_event`) so one step can never spin. Reference checks (when the caller passes the
known keys): templates, channels, topics, segments, traits and computed traits. Webhook URLs
naming loopback or private addresses are refused unless allowed. Every problem names the node id
(or document path) at fault. Pure: the sets of known keys are handed in, nothing is looked up.
"""

from __future__ import annotations

import difflib
import ipaddress
from collections.abc import Iterator
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from urllib.parse import urlsplit

from legato.domain.conditions import Condition, references
from legato.domain.journeys import (
    WAIT_NODE_TYPES,
    BranchNode,
    ConditionExit,
    Journey,
    MessageNode,
    ScheduleTrigger,
    SegmentTrigger,
    SplitNode,
    WaitUntilNode,
    WebhookNode,
)
from legato.errors import InvalidInput


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong with a journey: where (JSON path, node id) and why."""

    path: str
    message: str
    node: str | None = None

    def to_dict(self) -> dict[str, str | None]:
        """The problem as the API reports it."""
        return {"path": self.path, "message": self.message, "node": self.node}


@dataclass(frozen=True, slots=True)
class KnownReferences:
    """The keys that exist in the workspace; None for a kind means "do not check it"."""

    templates: AbstractSet[str] | None = None
    channels: AbstractSet[str] | None = None
    topics: AbstractSet[str] | None = None
    segments: AbstractSet[str] | None = None
    traits: AbstractSet[str] | None = None
    computed_traits: AbstractSet[str] | None = None
    allow_private_webhooks: bool = False


def graph_problems(journey: Journey) -> list[Problem]:
    """Start, dangling edges, unreachable nodes and loops without a wait, in document order."""
    problems: list[Problem] = []
    index = {node.id: i for i, node in enumerate(journey.nodes)}
    if journey.start is not None and journey.start not in index:
        problems.append(
            Problem(
                "$.start", f"start {journey.start!r} is not a node{_hint(journey.start, index)}"
            )
        )
    for i, node in enumerate(journey.nodes):
        for field, target in node.edges():
            if target not in index:
                problems.append(
                    Problem(
                        f"$.nodes[{i}].{field}",
                        f"node {node.id!r}: {field} → {target!r} is not a node"
                        f"{_hint(target, index)}",
                        node.id,
                    )
                )
    start = journey.start_node
    if start in index:
        reached = _reachable(journey, start, index)
        for i, node in enumerate(journey.nodes):
            if node.id not in reached:
                problems.append(
                    Problem(
                        f"$.nodes[{i}]",
                        f"node {node.id!r} is unreachable from the start node {start!r}",
                        node.id,
                    )
                )
    for cycle in _loops_without_wait(journey, index):
        first = cycle[0]
        path = " → ".join((*cycle, first))
        problems.append(
            Problem(
                f"$.nodes[{index[first]}]",
                f"node {first!r}: the loop {path} passes through no wait "
                "(add a wait, wait_until or wait_for_event)",
                first,
            )
        )
    return problems


def reference_problems(journey: Journey, known: KnownReferences) -> list[Problem]:
    """Templates, channels, topics, segments, traits and webhook hosts the journey names."""
    problems: list[Problem] = []

    def check(
        kind: str, name: str, pool: AbstractSet[str] | None, path: str, node: str | None
    ) -> None:
        if pool is not None and name not in pool:
            where = f"node {node!r}: " if node else ""
            problems.append(
                Problem(path, f"{where}{kind} {name!r} does not exist{_hint(name, pool)}", node)
            )

    trigger = journey.trigger
    if isinstance(trigger, SegmentTrigger | ScheduleTrigger):
        check("segment", trigger.segment, known.segments, "$.trigger.segment", None)
    for path, node_id, condition in _conditions(journey):
        refs = references(condition)
        for name in sorted(refs.segments):
            check("segment", name, known.segments, path, node_id)
        for name in sorted(refs.traits):
            check("trait", name, known.traits, path, node_id)
        for name in sorted(refs.computed_traits):
            check("computed trait", name, known.computed_traits, path, node_id)
    for i, node in enumerate(journey.nodes):
        at = f"$.nodes[{i}]"
        if isinstance(node, MessageNode):
            check("channel", node.channel, known.channels, f"{at}.channel", node.id)
            check("template", node.template, known.templates, f"{at}.template", node.id)
            if node.topic is not None:
                check("topic", node.topic, known.topics, f"{at}.topic", node.id)
        elif isinstance(node, WaitUntilNode) and node.date_trait is not None:
            check("trait", node.date_trait, known.traits, f"{at}.date_trait", node.id)
        elif isinstance(node, WebhookNode) and not known.allow_private_webhooks:
            reason = private_host_reason(node.url)
            if reason:
                problems.append(
                    Problem(f"{at}.url", f"node {node.id!r}: webhook URL {reason}", node.id)
                )
    return problems


def journey_problems(journey: Journey, known: KnownReferences | None = None) -> list[Problem]:
    """Every problem found: the graph first, then references (when `known` is given)."""
    problems = graph_problems(journey)
    if known is not None:
        problems.extend(reference_problems(journey, known))
    return problems


def validate_journey(journey: Journey, known: KnownReferences | None = None) -> None:
    """Raise InvalidInput naming the first problem (all of them in `details["errors"]`)."""
    problems = journey_problems(journey, known)
    if not problems:
        return
    first = problems[0]
    more = len(problems) - 1
    text = first.message + (f" (and {more} more problem{'s' if more > 1 else ''})" if more else "")
    details: dict[str, object] = {
        "path": first.path,
        "errors": [problem.to_dict() for problem in problems],
    }
    if first.node:
        details["node"] = first.node
    raise InvalidInput(text, **details)


def private_host_reason(url: str) -> str | None:
    """Why `url` names a loopback/private/reserved host (by literal address or name), or None.

    Only literal hosts can be judged here; the caller must check resolved addresses at call time.
    """
    try:
        host = urlsplit(url).hostname
    except ValueError:
        return "is not a valid URL"
    if not host:
        return "has no host"
    lowered = host.lower().rstrip(".")
    if lowered == "localhost" or lowered.endswith((".localhost", ".local", ".internal")):
        return f"names the local host {host!r}"
    try:
        address = ipaddress.ip_address(lowered)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    if (
        address.is_loopback
        or address.is_private
        or address.is_link_local
        or address.is_reserved
        or address.is_multicast
        or address.is_unspecified
    ):
        return f"names a loopback or private address ({host}); allow private webhooks to use it"
    return None


def _conditions(journey: Journey) -> Iterator[tuple[str, str | None, Condition]]:
    for i, criterion in enumerate(journey.exit_criteria):
        if isinstance(criterion, ConditionExit):
            yield f"$.exit_criteria[{i}].condition", None, criterion.condition
    for i, node in enumerate(journey.nodes):
        if isinstance(node, BranchNode):
            yield f"$.nodes[{i}].condition", node.id, node.condition
        elif isinstance(node, SplitNode):
            for j, arm in enumerate(node.branches):
                yield f"$.nodes[{i}].branches[{j}].condition", node.id, arm.condition


def _reachable(journey: Journey, start: str, index: dict[str, int]) -> set[str]:
    seen = {start}
    stack = [start]
    while stack:
        node = journey.nodes[index[stack.pop()]]
        for _, target in node.edges():
            if target in index and target not in seen:
                seen.add(target)
                stack.append(target)
    return seen


def _loops_without_wait(journey: Journey, index: dict[str, int]) -> list[list[str]]:
    """One concrete cycle per strongly connected set of non-wait nodes (Tarjan, iterative)."""
    successors: dict[str, list[str]] = {}
    for node in journey.nodes:
        if node.type in WAIT_NODE_TYPES:
            continue
        successors[node.id] = [
            target
            for _, target in node.edges()
            if target in index and journey.nodes[index[target]].type not in WAIT_NODE_TYPES
        ]
    order: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    components: list[list[str]] = []
    for root in successors:
        if root in order:
            continue
        work: list[tuple[str, int]] = [(root, 0)]
        while work:
            node_id, child = work.pop()
            if child == 0:
                order[node_id] = low[node_id] = len(order)
                stack.append(node_id)
                on_stack.add(node_id)
            children = successors[node_id]
            if child < len(children):
                work.append((node_id, child + 1))
                target = children[child]
                if target not in order:
                    work.append((target, 0))
                elif target in on_stack:
                    low[node_id] = min(low[node_id], order[target])
                continue
            if low[node_id] == order[node_id]:
                component: list[str] = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node_id:
                        break
                components.append(component)
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node_id])
    cycles: list[list[str]] = []
    for component in components:
        members = set(component)
        if len(component) == 1 and component[0] not in successors[component[0]]:
            continue
        first = min(component, key=index.__getitem__)
        cycles.append(_cycle_from(first, members, successors))
    cycles.sort(key=lambda cycle: index[cycle[0]])
    return cycles


def _cycle_from(first: str, members: set[str], successors: dict[str, list[str]]) -> list[str]:
    """A shortest cycle through `first` inside one strongly connected component (BFS)."""
    parents: dict[str, str] = {}
    frontier = [first]
    while frontier:
        following: list[str] = []
        for node_id in frontier:
            for target in successors[node_id]:
                if target not in members:
                    continue
                if target == first:
                    cycle = [node_id]
                    while cycle[-1] != first:
                        cycle.append(parents[cycle[-1]])
                    return list(reversed(cycle))
                if target not in parents:
                    parents[target] = node_id
                    following.append(target)
        frontier = following
    raise AssertionError("unreachable: a strongly connected component holds a cycle")


def _hint(name: str, pool: AbstractSet[str] | dict[str, int]) -> str:
    close = difflib.get_close_matches(name, list(pool), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""
