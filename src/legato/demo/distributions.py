"""Weighted draws for the demo dataset: values with weights, drawn with one `random()` each.

Pure: the caller passes the seeded generator; never draws from the global `random`.
"""

from __future__ import annotations

import bisect
import random
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Generic, TypeVar

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Weighted(Generic[T]):
    """Values with cumulative weights, to draw from with one `random()` and a bisection."""

    values: tuple[T, ...]
    cumulative: tuple[float, ...]

    @classmethod
    def of(cls, *options: tuple[T, float]) -> Weighted[T]:
        """From (value, weight) pairs."""
        total, cumulative = 0.0, []
        for _, weight in options:
            total += weight
            cumulative.append(total)
        return cls(tuple(v for v, _ in options), tuple(cumulative))

    def draw(self, rng: random.Random) -> T:
        """One value, drawn by weight."""
        cum = self.cumulative
        return self.values[bisect.bisect_left(cum, rng.random() * cum[-1])]


def cumulative(weights: Iterable[float]) -> list[float]:
    """Running sums of `weights` (to draw an index by bisecting `random() * total`)."""
    out: list[float] = []
    total = 0.0
    for w in weights:
        total += w
        out.append(total)
    return out
