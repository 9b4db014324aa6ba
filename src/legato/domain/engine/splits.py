"""Sticky random splits: which arm (or the holdout) a person lands on, by hash, never random.

BLAKE2b over (journey, node, profile) gives the same answer on every machine and every replay.
"""

from __future__ import annotations

import hashlib

from legato.domain.journeys import RandomSplitNode


def random_split_arm(journey_key: str, node: RandomSplitNode, profile_id: str) -> int | None:
    """The arm index a person lands on (None: holdout); sticky, uniform by BLAKE2b."""
    # The holdout draws on its own hash so that reweighting arms never moves people in or out.
    holdout = node.holdout
    if (
        holdout is not None
        and _unit_hash(journey_key, node.id, profile_id, "holdout") * 100 < holdout
    ):
        return None
    point = _unit_hash(journey_key, node.id, profile_id, "arm") * sum(
        arm.weight for arm in node.branches
    )
    cumulative = 0.0
    for i, arm in enumerate(node.branches):
        cumulative += arm.weight
        if point < cumulative:
            return i
    return len(node.branches) - 1


def _unit_hash(*parts: str) -> float:
    digest = hashlib.blake2b("\x1f".join(parts).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64
