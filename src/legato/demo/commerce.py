"""Orders in the demo dataset, as the shop's backend confirms them (`Order Completed`, server
side, with revenue, tax, shipping, discount and lines), and what follows an order: stock sold,
the CRM promoting a frequent buyer (an identify with the new loyalty tier), now and then a
helpdesk ticket, and for some buyers the NPS question a few days later.
"""

from __future__ import annotations

from typing import Any

from legato.demo.distributions import Weighted
from legato.demo.inventory import Inventory
from legato.demo.people import TIERS, Person
from legato.demo.spec import DAY_MS, HOUR_MS, VIP_MIN_ORDERS, Message
from legato.demo.support import Support
from legato.demo.surveys import Surveys
from legato.demo.timeline import Timeline

_SERVER_LIBRARY = {"name": "shop-backend", "version": "3.8.1"}
_CRM_LIBRARY = {"name": "crm-sync", "version": "2.3.0"}
_PAYMENT_METHODS = Weighted.of(("card", 0.62), ("paypal", 0.2), ("apple_pay", 0.1), ("bizum", 0.08))
_COUPONS = ("WELCOME10", "SPRING15", "VIP20", "FREESHIP")
_ORDER_TICKETS = Weighted.of(("delivery", 0.55), ("returns", 0.3), ("product", 0.15))


class Orders:
    """Confirms orders and plays what follows them (no day of its own: checkouts call it)."""

    def __init__(
        self, timeline: Timeline, inventory: Inventory, support: Support, surveys: Surveys
    ) -> None:
        self.timeline = timeline
        self.rng = timeline.rng
        self.inventory = inventory
        self.support = support
        self.surveys = surveys

    def order(
        self,
        person: Person,
        t: int,
        cart_id: str,
        checkout_id: str,
        lines: list[dict[str, Any]],
        value: float,
        horizon: int,
    ) -> None:
        """The order of a paid checkout, and its consequences."""
        rng, timeline = self.rng, self.timeline
        rate = person.country.eur_rate
        coupon = rng.choice(_COUPONS) if rng.random() < 0.2 else None
        discount = round(value * (0.15 if coupon == "SPRING15" else 0.1), 2) if coupon else 0.0
        revenue = round(value - discount, 2)
        shipping = 0.0 if revenue >= 50 * rate or coupon == "FREESHIP" else round(4.95 * rate, 2)
        order_id = f"ORD-{timeline.id('')[-8:].upper()}"
        props: dict[str, Any] = {
            "order_id": order_id,
            "checkout_id": checkout_id,
            "cart_id": cart_id,
            "total": round(revenue + shipping, 2),
            "revenue": revenue,
            "subtotal": value,
            "shipping": shipping,
            "tax": round(revenue * 0.21 / 1.21, 2),
            "discount": discount,
            "currency": person.country.currency,
            "payment_method": _PAYMENT_METHODS.draw(rng),
            "products": [dict(line) for line in lines],
        }
        if coupon is not None:
            props["coupon"] = coupon
        # Orders are confirmed by the shop's backend: server-side, userId only.
        message = timeline.server(person.user_id, "Order Completed", props, _SERVER_LIBRARY)
        if not timeline.emit(t, message, horizon):
            return
        person.orders_done += 1
        for line in lines:
            self.inventory.sell(self.inventory.index_of(line["product_id"]), line["quantity"], t)
        if person.orders_done in (VIP_MIN_ORDERS, 2 * VIP_MIN_ORDERS):
            self._tier_change(person, t + HOUR_MS + rng.randrange(6 * HOUR_MS), horizon)
        if rng.random() < 0.07:
            category = _ORDER_TICKETS.draw(rng)
            self.support.ticket(person, t + rng.randrange(DAY_MS, 6 * DAY_MS), category, order_id)
        if not person.nps_done and rng.random() < 0.2:
            self.surveys.nps(person, t + rng.randrange(3 * DAY_MS, 7 * DAY_MS))
        if rng.random() < 0.005:
            self.support.ticket(person, t + rng.randrange(HOUR_MS, DAY_MS), "billing", order_id)

    def _tier_change(self, person: Person, t: int, horizon: int) -> None:
        """The CRM promotes a frequent buyer: a server-side identify with the new tier."""
        current = TIERS.index(person.tier)
        if current >= len(TIERS) - 1:
            return
        person.tier = TIERS[current + 1 if current >= 2 else 2]
        traits: dict[str, Any] = {"loyalty_tier": person.tier}
        if person.crm_id is not None:
            traits["crm_id"] = person.crm_id
        message: Message = {
            "type": "identify",
            "messageId": self.timeline.message_id(),
            "userId": person.user_id,
            "traits": traits,
            "context": {"library": _CRM_LIBRARY},
        }
        self.timeline.emit(t, message, horizon)
