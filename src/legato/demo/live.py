"""The demo's "live moment": what a few customers do in the minutes after the example journeys
are published, so every journey has people in it when the console opens.

History (`dataset.generate`) is loaded before the journeys exist, and a journey only listens to
events that arrive after it is published. These messages arrive after: carts checked out (one
emptied, one paid), sign-ups, orders (one refunded), contact-centre calls of each intent and
outcome the follow-up journey splits on, B2B leads with their CRM score, hotel bookings,
mortgage enquiries and app opens. Names and properties are the ones the examples read (see
examples/journeys/). Deterministic for a (spec, now): a run of the demo at another moment
brings new people in (message ids include the moment), the same run replayed brings nobody.
Never reads the clock, a file or the environment.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from typing import Any

from legato.demo.catalogue import CATEGORY_NAMES
from legato.demo.spec import MINUTE_MS, DemoSpec, Message, customer_user_id

#: How many customers take part in each kind of moment.
PER_KIND = 3
_SERVER = {"library": {"name": "shop-backend", "version": "3.8.1"}}
_CRM = {"library": {"name": "crm-sync", "version": "2.3.0"}}
_CONTACT_CENTRE = {"library": {"name": "contact-centre", "version": "7.2.0"}}
_APP = {"library": {"name": "analytics-ios", "version": "4.1.8"}}
#: (intent, outcome) of the live calls: one per branch of contact_centre_follow_up.
_CALLS = (
    ("delivery", "callback_scheduled"),
    ("upgrade", "callback_scheduled"),
    ("billing", "resolved"),
    ("delivery", "abandoned"),
    ("mortgage", "information_sent"),
)
_HOTELS = ("Legato Lisboa Centro", "Legato Porto Ribeira", "Legato Madrid Sol")


class _Moment:
    def __init__(self, spec: DemoSpec) -> None:
        self.spec = spec
        self.rng = random.Random(f"live:{spec.seed}:{spec.now_ms}")
        self.messages: list[Message] = []
        self.count = 0
        # Customers already in the dataset, a different handful for each kind of moment.
        pool = list(range(spec.customers))
        self.rng.shuffle(pool)
        self.pool = pool

    def who(self) -> str:
        index = self.pool[self.count % len(self.pool)]
        self.count += 1
        return customer_user_id(index, self.spec.seed)

    def at(self, minutes_ago: float) -> str:
        ts = self.spec.now_ms - int(minutes_ago * MINUTE_MS)
        return datetime.fromtimestamp(ts / 1000, UTC).isoformat(timespec="milliseconds")[:-6] + "Z"

    def track(
        self, user: str, event: str, props: dict[str, Any], minutes_ago: float, context: Any
    ) -> None:
        n = len(self.messages)
        self.messages.append(
            {
                "type": "track",
                "messageId": f"live-{self.spec.seed}-{self.spec.now_ms}-{n}",
                "userId": user,
                "event": event,
                "properties": props,
                "timestamp": self.at(minutes_ago),
                "context": context,
            }
        )

    def identify(self, user: str, traits: dict[str, Any], minutes_ago: float) -> None:
        n = len(self.messages)
        self.messages.append(
            {
                "type": "identify",
                "messageId": f"live-{self.spec.seed}-{self.spec.now_ms}-{n}",
                "userId": user,
                "traits": traits,
                "timestamp": self.at(minutes_ago),
                "context": _APP,
            }
        )

    def ref(self, prefix: str) -> str:
        return f"{prefix}{self.rng.getrandbits(40):010x}"

    def day(self, days_ahead: int) -> str:
        moment = datetime.fromtimestamp(self.spec.now_ms / 1000, UTC) + timedelta(days=days_ahead)
        return moment.date().isoformat()


def live_moment(spec: DemoSpec) -> list[Message]:
    """The messages of the live moment: the half hour before `spec.now_ms`, in time order."""
    m = _Moment(spec)
    rng = m.rng
    # Carts checked out: one paid a minute later, one emptied, one left (abandoned_cart).
    for n in range(PER_KIND):
        user, cart = m.who(), m.ref("cart_")
        value = round(20 + 180 * rng.random(), 2)
        checkout = {"cart_id": cart, "checkout_id": m.ref("chk_"), "value": value}
        checkout["currency"] = "EUR"
        m.track(user, "Checkout Started", checkout, 30 - n, _SERVER)
        if n == 0:
            order = {"order_id": m.ref("ORD-"), "cart_id": cart, "revenue": value}
            order |= {"currency": "EUR", "products": []}
            m.track(user, "Order Completed", order, 29 - n, _SERVER)
        elif n == 1:
            m.track(user, "Cart Emptied", {"cart_id": cart}, 29 - n, _SERVER)
    # Orders (post_purchase_cross_sell, vip_fifth_purchase); one refunded.
    for n in range(PER_KIND):
        user, order_id = m.who(), m.ref("ORD-")
        category = rng.choice(CATEGORY_NAMES)
        product = {"product_id": m.ref("prod_"), "category": category, "quantity": 1}
        product["price"] = round(15 + 120 * rng.random(), 2)
        order = {"order_id": order_id, "cart_id": m.ref("cart_"), "revenue": product["price"]}
        order |= {"currency": "EUR", "products": [product]}
        m.track(user, "Product Viewed", {"category": category, "currency": "EUR"}, 27 - n, _APP)
        m.track(user, "Order Completed", order, 26 - n, _SERVER)
        if n == 0:
            m.track(user, "Order Refunded", {"order_id": order_id}, 25 - n, _SERVER)
    # New customers sign up (welcome_series); one completes the profile.
    for n in range(PER_KIND):
        user = f"cus_live{m.ref('')}"
        traits = {"email": f"{user}@example.com", "first_name": rng.choice(("Ana", "Luca", "Mia"))}
        traits |= {"timezone": "Europe/London", "lifecycle_stage": "customer"}
        m.identify(user, traits, 24 - n)
        m.track(user, "Signed Up", {"method": "email"}, 24 - n, _APP)
        if n == 0:
            m.track(user, "Profile Completed", {}, 23 - n, _APP)
    # Contact-centre calls, one per branch of the follow-up (contact_centre_follow_up).
    for n, (intent, outcome) in enumerate(_CALLS):
        user, call = m.who(), m.ref("call_")
        props: dict[str, Any] = {"call_id": call, "direction": "inbound", "intent": intent}
        props["outcome"] = outcome
        props["duration_seconds"] = 60 + rng.randrange(600)
        m.track(user, "Call Completed", props, 20 - n, _CONTACT_CENTRE)
        if intent == "upgrade":
            m.track(user, "Quote Accepted", {"call_id": call}, 14 - n, _SERVER)
    # B2B leads scored by the CRM: one hot, one warm, one cold (lead_nurturing).
    for n, (source, score) in enumerate((("web", 86), ("webinar", 55), ("referral", 20))):
        user = m.who()
        m.track(user, "Lead Scored", {"score": score, "model": "crm-v3"}, 13 - n, _CRM)
        m.track(user, "Lead Created", {"source": source, "lead_id": m.ref("lead_")}, 12 - n, _CRM)
    # Hotel bookings (hotel_stay): check-in in a few days, for two nights; one cancelled.
    for n in range(PER_KIND):
        user, ahead = m.who(), 3 + n
        booking: dict[str, Any] = {"booking_id": m.ref("bk_"), "hotel": _HOTELS[n % 3]}
        booking |= {"check_in": m.day(ahead), "check_out": m.day(ahead + 2), "nights": 2}
        m.track(user, "Booking Confirmed", booking, 9 - n, _SERVER)
        if n == PER_KIND - 1:
            cancelled = {"booking_id": booking["booking_id"], "reason": "plans_changed"}
            m.track(user, "Booking Cancelled", cancelled, 8 - n, _SERVER)
    # Mortgage enquiries (mortgage_enquiry); one books an adviser call at once.
    for n in range(PER_KIND):
        user = m.who()
        enquiry = {"enquiry_id": m.ref("enq_"), "amount": 150_000 + 10_000 * rng.randrange(30)}
        m.track(user, "Mortgage Enquiry Submitted", enquiry, 6 - n, _SERVER)
        if n == 0:
            m.track(user, "Adviser Call Booked", {"enquiry_id": enquiry["enquiry_id"]}, 5, _SERVER)
    # People opening the app (abandoned_cart's "comes back", win_back's engagement check).
    for n in range(PER_KIND):
        m.track(m.who(), "Application Opened", {"from_background": False}, 2 - n / 2, _APP)
    m.messages.sort(key=lambda message: str(message["timestamp"]))
    return m.messages
