"""Surveys in the demo dataset: the post-purchase NPS question, answered once by some buyers a
few days after an order; a customer whose ticket went badly scores low (`support`).
"""

from __future__ import annotations

from typing import Any

from legato.demo.distributions import Weighted
from legato.demo.people import Person
from legato.demo.timeline import Timeline

_SURVEY_LIBRARY = {"name": "nps-survey", "version": "2.0.5"}
_NPS_COMMENTS = {
    "promoter": ("Fast delivery and great quality!", "Love the new collection.",
                 "Always a pleasure to shop here."),
    "passive": ("Good, but delivery took a while.", "Fine. Prices could be better."),
    "detractor": ("Support never answered my ticket.", "The item broke after a week.",
                  "Too many e-mails."),
}  # fmt: skip
# NPS scores 0..10 of a happy customer and of one whose ticket went badly.
_NPS_HAPPY = Weighted.of(*zip(range(11), (1, 1, 1, 1, 2, 3, 5, 9, 18, 25, 28), strict=True))
_NPS_UNHAPPY = Weighted.of(*zip(range(11), (6, 5, 6, 7, 6, 5, 4, 3, 2, 1, 1), strict=True))


class Surveys:
    """The NPS answers (asked by orders: a survey has no day of its own)."""

    def __init__(self, timeline: Timeline) -> None:
        self.timeline = timeline
        self.rng = timeline.rng

    def nps(self, person: Person, t: int) -> None:
        """The person's answer at `t`, scored by how their service went."""
        rng = self.rng
        person.nps_done = True
        score = (_NPS_UNHAPPY if person.unhappy else _NPS_HAPPY).draw(rng)
        group = "promoter" if score >= 9 else "passive" if score >= 7 else "detractor"
        props: dict[str, Any] = {
            "survey_id": "nps_post_purchase",
            "score": score,
            "category": group,
            "channel": rng.choice(("email", "web", "app")),
        }
        if rng.random() < 0.35:
            props["comment"] = rng.choice(_NPS_COMMENTS[group])
        message = self.timeline.server(person.user_id, "NPS Submitted", props, _SURVEY_LIBRARY)
        self.timeline.emit(t, message, person.horizon_ms)
