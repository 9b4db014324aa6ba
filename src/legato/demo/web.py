"""The storefront in the demo dataset: visits on the web (page calls) and in the app (screen
calls) — home, categories, searches, product pages — by anonymous devices that turn identified
at sign-up or log-in (two profiles, then a merge, when someone browses before logging in),
carts, checkouts (some abandoned) and the paid ones handed to `commerce`. Plays the visits that
`people` planned for each day, at local hours drawn from the daily rhythm.
"""

from __future__ import annotations

import bisect
from typing import Any

from legato.demo.catalogue import CATEGORY_NAMES, category_path
from legato.demo.commerce import Orders
from legato.demo.distributions import Weighted, cumulative
from legato.demo.inventory import SHOP_URL, Inventory
from legato.demo.people import Device, Person, Population
from legato.demo.spec import MINUTE_MS, Message
from legato.demo.timeline import Timeline

# Relative traffic by local hour: a lunch peak and an evening peak.
# fmt: off
_HOUR_WEIGHTS = (
    0.25, 0.12, 0.06, 0.04, 0.04, 0.08, 0.25, 0.6, 0.9, 1.0, 1.05, 1.15,
    1.4, 1.45, 1.2, 1.05, 1.0, 1.05, 1.2, 1.5, 1.75, 1.7, 1.25, 0.65,
)
# fmt: on
_HOUR_CUM = [sum(_HOUR_WEIGHTS[: h + 1]) for h in range(24)]
_SOURCES = (
    # (utm source, utm medium, referrer, weight); None: typed in or bookmarked.
    (None, None, "", 0.38),
    ("google", "organic", "https://www.google.com/", 0.24),
    ("google", "cpc", "https://www.google.com/", 0.1),
    ("instagram", "social", "https://l.instagram.com/", 0.09),
    ("facebook", "social", "https://m.facebook.com/", 0.05),
    ("tiktok", "social", "https://www.tiktok.com/", 0.04),
    ("newsletter", "email", "", 0.07),
    ("affiliate", "referral", "https://www.deals-hub.example/", 0.03),
)
_CAMPAIGNS = ("spring_sale", "new_arrivals", "weekend_deals", "loyalty_rewards", "brand_awareness")
_SEARCH_TERMS = (
    "white sneakers",
    "linen shirt",
    "summer dress",
    "running shoes",
    "backpack",
    "serum",
    "headphones",
    "yoga mat",
    "gift for her",
    "boots",
    "perfume",
    "power bank",
    "duvet cover",
)
_CART_LINES = Weighted.of((1, 0.6), (2, 0.3), (3, 0.1))
_SIGNUP_METHODS = Weighted.of(("email", 0.7), ("google", 0.2), ("apple", 0.1))


class Storefront:
    """`Source` of the web and app visits, sign-ups, log-ins, carts and checkouts."""

    def __init__(
        self, timeline: Timeline, population: Population, inventory: Inventory, orders: Orders
    ) -> None:
        self.timeline = timeline
        self.rng = timeline.rng
        self.population = population
        self.inventory = inventory
        self.orders = orders
        self._sources_cum = cumulative(s[3] for s in _SOURCES)

    def play(self, day: int) -> None:
        """The visits planned for `day`, each at a moment of the person's local day."""
        people = self.population.people
        for index, count in self.population.sessions.pop(day, {}).items():
            person = people[index]
            if count == 1:
                self._session(person, self._session_start(day, person))
                continue
            for start in sorted(self._session_start(day, person) for _ in range(count)):
                self._session(person, start)

    def _session_start(self, day: int, person: Person) -> int:
        """A moment of `day` at a local hour drawn from the daily rhythm of the person's city."""
        rng = self.rng
        local_hour = bisect.bisect_left(_HOUR_CUM, rng.random() * _HOUR_CUM[-1])
        minute = local_hour * 60 + rng.randrange(60) - person.city.utc_offset_min
        return self.timeline.at(day, minute) + rng.randrange(MINUTE_MS)

    # -- a visit ---------------------------------------------------------------------------

    def _session(self, person: Person, t: int) -> None:
        rng = self.rng
        number = person.sessions_done
        person.sessions_done += 1
        device = person.devices[0]
        # Before signing up a person uses one device; afterwards, now and then another.
        if len(person.devices) > 1 and number > person.signup_session and rng.random() < 0.3:
            device = person.devices[1 + rng.randrange(len(person.devices) - 1)]
        horizon = person.horizon_ms
        order = number in person.order_sessions
        signup = number == person.signup_session
        steps = 1 + min(int(rng.expovariate(0.8)), 12) + (1 if order else 0)
        uid = person.user_id if person.identified and device.identified else None
        # A known person on a device not seen since the window began logs in, which links the
        # device to them: at once, or after browsing a little (two profiles, then a merge).
        login_at = -1
        if person.identified and not device.identified:
            if rng.random() < 0.5:
                t = self._identify(person, device, t, horizon)
                uid = person.user_id
            else:
                login_at = rng.randrange(steps)
        src = _SOURCES[bisect.bisect_left(self._sources_cum, rng.random())]
        campaign = None
        if src[0] is not None and src[1] != "organic":
            campaign = {"source": src[0], "medium": src[1], "name": rng.choice(_CAMPAIGNS)}
        t = self._view(
            person, device, uid, t, "Home", "/", "Legato Shop", src[2], campaign, horizon
        )
        if t < 0:
            return
        viewed: list[int] = []
        for step in range(steps):
            t += 5_000 + int(rng.expovariate(1 / 40_000))
            if step == login_at:
                t = self._identify(person, device, t, horizon)
                uid = person.user_id
            roll = rng.random()
            if roll < 0.2:
                t = self._category(person, device, uid, t, horizon)
            elif roll < 0.28:
                t = self._search(person, device, uid, t, horizon)
            else:
                product = self.inventory.pick(person)
                viewed.append(product)
                t = self._product_view(person, device, uid, t, product, horizon)
            if t < 0:
                return
        if signup:
            t = self._signup(person, device, t + 20_000, horizon)
            if t < 0:
                return
            uid = person.user_id
        cart_roll = rng.random()
        if order or (viewed and cart_roll < 0.14):
            self._cart(person, device, uid, t, viewed, order, horizon)

    def _base(self, kind: str, device: Device, uid: str | None) -> Message:
        message: Message = {"type": kind, "messageId": self.timeline.message_id()}
        message["anonymousId"] = device.anonymous_id
        if uid is not None:
            message["userId"] = uid
        return message

    def _view(
        self,
        person: Person,
        device: Device,
        uid: str | None,
        t: int,
        name: str,
        path: str,
        title: str,
        referrer: str,
        campaign: dict[str, str] | None,
        horizon: int,
    ) -> int:
        """A page call on the web, a screen call in the app; the time after it, or -1."""
        if device.kind == "web":
            message = self._base("page", device, uid)
            message["name"] = name
            props = {"path": path, "url": SHOP_URL + path, "title": title, "referrer": referrer}
            message["properties"] = props
            context = dict(device.context)
            context["page"] = props
        else:
            message = self._base("screen", device, uid)
            message["name"] = name
            message["properties"] = {"path": path}
            context = dict(device.context)
        if campaign is not None:
            context["campaign"] = campaign
        message["context"] = context
        return t + 800 if self.timeline.emit(t, message, horizon) else -1

    def _track(self, device: Device, uid: str | None, event: str, props: dict[str, Any]) -> Message:
        message = self._base("track", device, uid)
        message["event"] = event
        message["properties"] = props
        message["context"] = dict(device.context)
        return message

    def _product_view(
        self,
        person: Person,
        device: Device,
        uid: str | None,
        t: int,
        product: int,
        horizon: int,
    ) -> int:
        p = self.inventory.products[product]
        t = self._view(person, device, uid, t, "Product", p.url_path, p.name, "", None, horizon)
        if t < 0:
            return -1
        props = self.inventory.props(product, person.country.currency, person.country.eur_rate)
        props["in_stock"] = self.inventory.stock[product] > 0
        message = self._track(device, uid, "Product Viewed", props)
        return t + 300 if self.timeline.emit(t, message, horizon) else -1

    def _category(
        self, person: Person, device: Device, uid: str | None, t: int, horizon: int
    ) -> int:
        rng = self.rng
        category = person.favourite if rng.random() < 0.6 else rng.choice(CATEGORY_NAMES)
        path = category_path(category)
        t = self._view(person, device, uid, t, "Category", path, category, "", None, horizon)
        if t < 0:
            return -1
        props = {"list_id": path[3:], "category": category}
        message = self._track(device, uid, "Product List Viewed", props)
        return t + 300 if self.timeline.emit(t, message, horizon) else -1

    def _search(self, person: Person, device: Device, uid: str | None, t: int, horizon: int) -> int:
        query = self.rng.choice(_SEARCH_TERMS)
        path = "/search?q=" + query.replace(" ", "+")
        t = self._view(person, device, uid, t, "Search", path, "Search", "", None, horizon)
        if t < 0:
            return -1
        message = self._track(device, uid, "Products Searched", {"query": query})
        return t + 300 if self.timeline.emit(t, message, horizon) else -1

    # -- identity --------------------------------------------------------------------------

    def _traits(self, person: Person) -> dict[str, Any]:
        traits: dict[str, Any] = {
            "email": person.email,
            "phone": person.phone,
            "first_name": person.first_name,
            "last_name": person.last_name,
            "country": person.country.code,
            "city": person.city.name,
            "locale": person.country.locale,
            "timezone": person.city.timezone,
            "loyalty_tier": person.tier,
            "created_at": self.timeline.iso(person.created_ms),
        }
        if person.crm_id is not None:
            traits["crm_id"] = person.crm_id
        return traits

    def _identify(self, person: Person, device: Device, t: int, horizon: int) -> int:
        """An identify linking `device` to the person: all traits the first time, else email."""
        first = not any(d.identified for d in person.devices)
        message = self._base("identify", device, person.user_id)
        message["traits"] = self._traits(person) if first else {"email": person.email}
        message["context"] = dict(device.context)
        device.identified = True
        self.timeline.emit(t, message, horizon)
        return t + 1_500

    def _signup(self, person: Person, device: Device, t: int, horizon: int) -> int:
        rng = self.rng
        person.created_ms = t
        person.identified = True
        t = self._view(
            person,
            device,
            None,
            t,
            "Sign Up",
            "/account/signup",
            "Create account",
            "",
            None,
            horizon,
        )
        if t < 0:
            return -1
        t = self._identify(person, device, t + 25_000, horizon)
        method = _SIGNUP_METHODS.draw(rng)
        props = {"method": method, "marketing_opt_in": rng.random() < 0.62}
        message = self._track(device, person.user_id, "Signed Up", props)
        return t + 1_000 if self.timeline.emit(t, message, horizon) else -1

    # -- carts and checkouts ---------------------------------------------------------------

    def _cart(
        self,
        person: Person,
        device: Device,
        uid: str | None,
        t: int,
        viewed: list[int],
        order: bool,
        horizon: int,
    ) -> None:
        rng, inventory = self.rng, self.inventory
        currency, rate = person.country.currency, person.country.eur_rate
        stock = inventory.stock
        candidates = [p for p in dict.fromkeys(viewed) if stock[p] > 0]
        if not candidates:
            if not order:
                return
            # Whoever came to buy finds something else in stock.
            for _ in range(8):
                product = inventory.pick(person)
                if stock[product] > 0:
                    candidates = [product]
                    break
            else:
                candidates = [max(range(len(stock)), key=stock.__getitem__)]
        items = candidates[: _CART_LINES.draw(rng)]
        cart_id = self.timeline.id("cart_")
        lines: list[dict[str, Any]] = []
        for product in items:
            t += 8_000 + int(rng.expovariate(1 / 30_000))
            line = inventory.props(product, currency, rate)
            line["quantity"] = 1 if rng.random() < 0.85 else 2
            lines.append(line)
            props = dict(line)
            props["cart_id"] = cart_id
            if not self.timeline.emit(t, self._track(device, uid, "Product Added", props), horizon):
                return
        # Anonymous carts stop here; known customers often start the checkout.
        if not order and (uid is None or rng.random() < 0.45):
            return
        value = round(sum(line["price"] * line["quantity"] for line in lines), 2)
        t += 20_000 + int(rng.expovariate(1 / 40_000))
        t = self._view(
            person, device, uid, t, "Checkout", "/checkout", "Checkout", "", None, horizon
        )
        if t < 0:
            return
        checkout_id = self.timeline.id("chk_")
        checkout = {
            "cart_id": cart_id,
            "checkout_id": checkout_id,
            "value": value,
            "revenue": value,
            "currency": currency,
            "products": lines,
        }
        started = self._track(device, uid, "Checkout Started", checkout)
        if not self.timeline.emit(t, started, horizon):
            return
        if not order:
            return  # an abandoned checkout
        t += 60_000 + int(rng.expovariate(1 / 90_000))
        self.orders.order(person, t, cart_id, checkout_id, lines, value, horizon)
        self._view(person, device, uid, t + 2_000, "Order Confirmation", "/checkout/done",
                   "Thank you", "", None, horizon)  # fmt: skip
