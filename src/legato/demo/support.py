"""Customer service in the demo dataset: helpdesk tickets (opened after an order goes wrong,
closed with a resolution time and often a satisfaction score) and contact-centre calls (planned
per day by `people`, during office hours, with an intent and an outcome). Slow answers make a
customer unhappy, which their NPS answer shows (`surveys`).
"""

from __future__ import annotations

from typing import Any

from legato.demo.distributions import Weighted
from legato.demo.people import Person, Population
from legato.demo.spec import MINUTE_MS
from legato.demo.timeline import Timeline

_HELPDESK_LIBRARY = {"name": "helpdesk-webhook", "version": "1.9.2"}
_CONTACT_CENTRE_LIBRARY = {"name": "contact-centre", "version": "7.2.0"}
# Contact-centre and helpdesk hours (local): 08:00 to 20:00.
_OFFICE_HOURS = tuple(range(8, 20))

_TICKET_SUBJECTS = {
    "delivery": ("Where is my order?", "Parcel arrived damaged", "Wrong delivery address"),
    "returns": ("How do I return an item?", "Refund not received yet", "Exchange for a size"),
    "product": ("Item not as described", "Size advice", "Missing part in the box"),
    "billing": ("Charged twice", "Invoice request", "Promo code did not apply"),
    "account": ("Cannot log in", "Change my e-mail address", "Delete my account"),
}
_TICKET_CHANNELS = Weighted.of(
    ("email", 0.4), ("chat", 0.35), ("whatsapp", 0.15), ("web_form", 0.1)
)
_TICKET_PRIORITIES = Weighted.of(("low", 0.3), ("normal", 0.5), ("high", 0.15), ("urgent", 0.05))
_CALL_INTENTS = Weighted.of(
    ("delivery", 0.35), ("billing", 0.3), ("upgrade", 0.2), ("mortgage", 0.15)
)
_CALL_OUTCOMES = {
    "delivery": Weighted.of(
        ("resolved", 0.6), ("callback_scheduled", 0.2), ("transferred", 0.1), ("abandoned", 0.1)
    ),
    "billing": Weighted.of(
        ("resolved", 0.65), ("refund_issued", 0.15), ("transferred", 0.1), ("abandoned", 0.1)
    ),
    "upgrade": Weighted.of(
        ("upgraded", 0.4),
        ("not_interested", 0.35),
        ("callback_scheduled", 0.15),
        ("abandoned", 0.1),
    ),
    "mortgage": Weighted.of(
        ("appointment_booked", 0.3),
        ("information_sent", 0.4),
        ("not_eligible", 0.2),
        ("abandoned", 0.1),
    ),
}


class Support:
    """`Source` of the contact centre's calls; the helpdesk's tickets, opened by orders."""

    def __init__(self, timeline: Timeline, population: Population) -> None:
        self.timeline = timeline
        self.rng = timeline.rng
        self.population = population

    def play(self, day: int) -> None:
        """The calls planned for `day`."""
        people = self.population.people
        for index in self.population.calls.pop(day, []):
            self._call(people[index], day)

    def ticket(self, person: Person, t: int, category: str, order_id: str | None) -> None:
        """A ticket opened at `t`, and closed when it is solved."""
        rng, timeline = self.rng, self.timeline
        ticket_id = f"T-{timeline.id('')[-7:].upper()}"
        priority = _TICKET_PRIORITIES.draw(rng)
        channel = _TICKET_CHANNELS.draw(rng)
        opened: dict[str, Any] = {
            "ticket_id": ticket_id,
            "subject": rng.choice(_TICKET_SUBJECTS[category]),
            "category": category,
            "priority": priority,
            "channel": channel,
        }
        if order_id is not None:
            opened["order_id"] = order_id
        message = timeline.server(person.user_id, "Ticket Opened", opened, _HELPDESK_LIBRARY)
        if not timeline.emit(t, message, person.horizon_ms):
            return
        hours = rng.expovariate(1 / (4 if priority in ("high", "urgent") else 20))
        resolution_min = 10 + int(hours * 60)
        closed: dict[str, Any] = {
            "ticket_id": ticket_id,
            "category": category,
            "priority": priority,
            "channel": channel,
            "status": "solved",
            "resolution_minutes": resolution_min,
        }
        if rng.random() < 0.55:
            # Slow answers earn poor scores.
            good = 0.85 if resolution_min < 240 else 0.55 if resolution_min < 1440 else 0.3
            csat = rng.choice((4, 5)) if rng.random() < good else rng.choice((1, 2, 3))
            closed["csat"] = csat
            person.unhappy = person.unhappy or csat <= 2
        message = timeline.server(person.user_id, "Ticket Closed", closed, _HELPDESK_LIBRARY)
        timeline.emit(t + resolution_min * MINUTE_MS, message, person.horizon_ms)

    def _call(self, person: Person, day: int) -> None:
        rng, timeline = self.rng, self.timeline
        if not person.identified:
            return  # the contact centre only logs calls from known customers
        intent = _CALL_INTENTS.draw(rng)
        outcome = _CALL_OUTCOMES[intent].draw(rng)
        duration = (
            20 + int(rng.expovariate(1 / 45))
            if outcome == "abandoned"
            else 60 + int(rng.lognormvariate(5.6, 0.5))
        )
        props: dict[str, Any] = {
            "call_id": timeline.id("call_"),
            "direction": "inbound",
            "intent": intent,
            "outcome": outcome,
            "duration_seconds": duration,
            "wait_seconds": int(rng.expovariate(1 / 70)),
            "queue": "mortgages" if intent == "mortgage" else "customer_care",
        }
        if outcome != "abandoned":
            props["agent_id"] = f"agent_{rng.randrange(1, 41):03d}"
        t = self._office_time(day, person)
        message = timeline.server(person.user_id, "Call Completed", props, _CONTACT_CENTRE_LIBRARY)
        timeline.emit(t, message, person.horizon_ms)

    def _office_time(self, day: int, person: Person) -> int:
        """A moment of `day` during the contact centre's opening hours, local to the person."""
        rng = self.rng
        minute = rng.choice(_OFFICE_HOURS) * 60 + rng.randrange(60) - person.city.utc_offset_min
        return self.timeline.at(day, minute) + rng.randrange(MINUTE_MS)
