"""The demo's people: customers and anonymous visitors, their devices, and their plan for the
window (which days they visit, which visits end in an order, whether they lapse, when they
call the contact centre), drawn up front from the timeline's seeded generator.

Never emits a message: the sources play the plan (`web`, `support`).
"""

from __future__ import annotations

import bisect
from datetime import UTC, datetime
from typing import Any

from legato.demo.catalogue import CATEGORY_NAMES
from legato.demo.distributions import Weighted, cumulative
from legato.demo.locales import ASCII_FOLD, COUNTRIES, City, Country
from legato.demo.spec import DAY_MS, LAPSED_AFTER_DAYS, VIP_MIN_ORDERS, customer_user_id
from legato.demo.timeline import Timeline

#: Loyalty tiers, lowest first (the CRM promotes frequent buyers).
TIERS = ("member", "silver", "gold", "platinum")

# Relative traffic by weekday (Monday first): weekends shop more.
_WEEKDAY_FACTOR = (0.92, 0.88, 0.9, 0.95, 1.05, 1.25, 1.2)
_PRE_SIGNUP_VISITS = Weighted.of((0, 0.4), (1, 0.3), (2, 0.18), (3, 0.12))
_VISITOR_VISITS = Weighted.of((1, 0.6), (2, 0.28), (3, 0.12))
_CALLS = Weighted.of((1, 0.7), (2, 0.22), (3, 0.08))
_CITIES = {c.code: Weighted.of(*((city, city.weight) for city in c.cities)) for c in COUNTRIES}

_WEB_AGENTS = (
    (
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/125.0.0.0 Safari/537.36"
    ),
    (
        "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) "
        "Version/17.4 Safari/605.1.15"
    ),
    (
        "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 "
        "(KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1"
    ),
    (
        "Mozilla/5.0 (Linux; Android 14; SM-S918B) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/125.0.0.0 Mobile Safari/537.36"
    ),
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:126.0) Gecko/20100101 Firefox/126.0",
)
_WEB_AGENT_WEIGHTS = (0.34, 0.18, 0.26, 0.17, 0.05)
_WEB_LIBRARY = {"name": "analytics.js", "version": "next-1.72.0"}
_IOS_LIBRARY = {"name": "analytics-ios", "version": "4.1.8"}
_ANDROID_LIBRARY = {"name": "analytics-android", "version": "4.11.3"}
_APP = {"name": "Legato Shop", "version": "5.12.0", "build": "5120", "namespace": "shop.legato"}
_IOS_MODELS = ("iPhone15,2", "iPhone15,4", "iPhone16,1", "iPhone14,5", "iPhone13,2")
_ANDROID_MODELS = (
    ("samsung", "SM-S918B"),
    ("samsung", "SM-A546B"),
    ("Google", "Pixel 8"),
    ("Xiaomi", "23049PCD8G"),
)


class Device:
    """A browser or app install: one anonymousId and the context its SDK sends."""

    __slots__ = ("anonymous_id", "context", "identified", "kind")

    def __init__(self, anonymous_id: str, kind: str, context: dict[str, Any]):
        self.anonymous_id = anonymous_id
        self.kind = kind  # "web" | "ios" | "android"
        self.context = context
        self.identified = False


class Person:
    """A customer (or an anonymous visitor, with no user_id) and their plan for the window."""

    __slots__ = (
        "city",
        "country",
        "created_ms",
        "crm_id",
        "devices",
        "email",
        "favourite",
        "first_name",
        "horizon_ms",
        "identified",
        "last_name",
        "nps_done",
        "order_sessions",
        "orders_done",
        "phone",
        "sessions_done",
        "signup_session",
        "tier",
        "unhappy",
        "user_id",
    )

    def __init__(self, country: Country, city: City, favourite: str):
        self.country = country
        self.city = city
        self.favourite = favourite
        self.user_id: str | None = None
        self.email = ""
        self.phone = ""
        self.first_name = ""
        self.last_name = ""
        self.crm_id: str | None = None
        self.tier = "member"
        self.created_ms = 0
        self.devices: list[Device] = []
        self.identified = False
        # Index of the session in which a new customer signs up (-1: known before the window).
        self.signup_session = -1
        self.order_sessions: frozenset[int] = frozenset()
        self.sessions_done = 0
        self.orders_done = 0
        # No event of this person is later than this (lapsed customers stop early).
        self.horizon_ms = 0
        self.nps_done = False
        self.unhappy = False


class Population:
    """Everyone of the dataset, planned up front: who they are, and what they do on which day."""

    def __init__(self, timeline: Timeline) -> None:
        self.timeline = timeline
        self.rng = timeline.rng
        self.spec = timeline.spec
        self.days = timeline.days
        self._day_cum = self._day_weights()
        self._countries_cum = cumulative(c.weight for c in COUNTRIES)
        self._agents_cum = cumulative(_WEB_AGENT_WEIGHTS)
        self._emails: set[str] = set()
        self.people: list[Person] = []
        #: day -> person index -> number of sessions that day.
        self.sessions: dict[int, dict[int, int]] = {}
        #: day -> indexes of the people calling the contact centre that day.
        self.calls: dict[int, list[int]] = {}
        self._plan()

    def _day_weights(self) -> list[float]:
        """Cumulative traffic weight per day: weekly rhythm, growth, and a mid-window sale."""
        weights = []
        sale = self.days * 2 // 3
        start_ms = self.timeline.start_ms
        for d in range(self.days):
            weekday = datetime.fromtimestamp((start_ms + d * DAY_MS) / 1000, UTC).weekday()
            w = _WEEKDAY_FACTOR[weekday] * (1.0 + 0.3 * d / self.days)
            if sale <= d < sale + 3:
                w *= 1.9
            weights.append(w)
        return cumulative(weights)

    def _pick_day(self, lo: int, hi: int) -> int:
        """A day in [lo, hi] drawn by traffic weight."""
        cum = self._day_cum
        base = cum[lo - 1] if lo > 0 else 0.0
        u = base + self.rng.random() * (cum[hi] - base)
        return min(bisect.bisect_left(cum, u, lo, hi + 1), hi)

    def _plan(self) -> None:
        spec, rng = self.spec, self.rng
        # Lapsed customers are last active before this day, and nothing of theirs comes later
        # than two days after it: their last event is more than LAPSED_AFTER_DAYS old.
        lapse_day = self.days - LAPSED_AFTER_DAYS - 4
        for index in range(spec.customers + spec.visitors):
            country = COUNTRIES[bisect.bisect_left(self._countries_cum, rng.random())]
            city = _CITIES[country.code].draw(rng)
            person = Person(country, city, rng.choice(CATEGORY_NAMES))
            person.horizon_ms = self.timeline.now_ms
            self.people.append(person)
            if index < spec.customers:
                self._plan_customer(index, person, lapse_day)
            else:
                self._plan_visitor(index, person)

    def _plan_customer(self, index: int, person: Person, lapse_day: int) -> None:
        """Draw who the customer is, how active, when they shop, and whether they lapse."""
        rng, last = self.rng, self.days - 1
        start_ms = self.timeline.start_ms
        self._name(index, person)
        roll = rng.random()
        vip = roll < 0.035
        lapsed = not vip and lapse_day > 5 and roll < 0.165
        existing = vip or rng.random() < 0.45
        # Sessions per 30 days: heavy-tailed, so a few people are very active.
        rate = min(0.3 * rng.paretovariate(1.45), 24.0)
        if vip:
            rate = max(rate, 4.0 + 4.0 * rng.random())
        lo = 0 if existing else self._pick_day(0, last)
        hi = last
        if lapsed:
            if lo > lapse_day - 3:
                lo = rng.randrange(0, max(1, lapse_day - 10))
            hi = lo + rng.randrange(0, max(1, lapse_day - lo))
            person.horizon_ms = start_ms + (lapse_day + 2) * DAY_MS
        span = hi - lo + 1
        sessions = max(1, round(rate * span / 30.0 * (0.6 + 0.8 * rng.random())))
        if vip:
            sessions = max(sessions, VIP_MIN_ORDERS + 3)
        if lapsed:
            sessions = max(sessions, 2)
        sessions = min(sessions, span * 3)
        days = sorted(self._pick_day(lo, hi) for _ in range(sessions))
        if not existing:
            # A new customer browses anonymously for a few visits before signing up.
            pre = _PRE_SIGNUP_VISITS.draw(rng)
            person.signup_session = min(pre, sessions - 1)
            person.created_ms = 0  # set at signup
        else:
            person.identified = True
            person.created_ms = start_ms - rng.randrange(1, 900) * DAY_MS
            person.created_ms -= rng.randrange(DAY_MS)
        eligible = list(range(max(person.signup_session, 0), sessions))
        buyer = vip or lapsed or rng.random() < 0.72
        chosen: list[int] = []
        if buyer:
            p_buy = min(0.75, 0.14 + 0.3 * rng.random() + 0.02 * rate)
            chosen = [s for s in eligible if rng.random() < p_buy]
            need = min(VIP_MIN_ORDERS if vip else 1 if lapsed else 0, len(eligible))
            if len(chosen) < need:
                missing = [s for s in eligible if s not in chosen]
                chosen += rng.sample(missing, need - len(chosen))
        person.order_sessions = frozenset(chosen)
        if existing:
            history = rng.paretovariate(1.2)
            person.tier = TIERS[0 if history < 1.6 else 1 if history < 3 else 2]
            if vip:
                person.tier = rng.choice(TIERS[2:])
        self._devices(person, vip)
        for d in days:
            per_day = self.sessions.setdefault(d, {})
            per_day[index] = per_day.get(index, 0) + 1
        if rng.random() < (0.25 if vip else 0.09):
            for _ in range(_CALLS.draw(rng)):
                self.calls.setdefault(self._pick_day(lo, hi), []).append(index)

    def _plan_visitor(self, index: int, person: Person) -> None:
        """An anonymous visitor: one to three visits within ten days, never a signup."""
        rng = self.rng
        self._devices(person, False)
        first = self._pick_day(0, self.days - 1)
        for _ in range(_VISITOR_VISITS.draw(rng)):
            d = min(self.days - 1, first + rng.randrange(0, 10))
            per_day = self.sessions.setdefault(d, {})
            per_day[index] = per_day.get(index, 0) + 1

    def _name(self, index: int, person: Person) -> None:
        rng, country = self.rng, person.country
        first = rng.choice(country.first_names)
        last = rng.choice(country.last_names)
        person.first_name, person.last_name = first, last
        person.user_id = customer_user_id(index, self.spec.seed)
        if rng.random() < 0.6:
            person.crm_id = f"CRM-{(index * 7_368_787 + 1_000_003) % 10**8:08d}"
        local_first = first.lower().translate(ASCII_FOLD)
        local_last = last.lower().translate(ASCII_FOLD)
        style = rng.random()
        if style < 0.45:
            local = f"{local_first}.{local_last}"
        elif style < 0.75:
            local = f"{local_first}{local_last}{rng.randrange(1, 99)}"
        else:
            local = f"{local_first[0]}{local_last}{rng.randrange(60, 100):02d}"
        domain = rng.choice(country.email_domains)
        email = f"{local}@{domain}"
        while email in self._emails:
            email = f"{local}{rng.randrange(100, 10_000)}@{domain}"
        self._emails.add(email)
        person.email = email
        # Unique subscriber digits: an index scrambled by a multiplier coprime with 10.
        digits = country.phone_digits
        number = (index * 7_654_321 + 1_234_567) % 10**digits
        person.phone = rng.choice(country.phone_prefixes) + f"{number:0{digits}d}"

    def _devices(self, person: Person, vip: bool) -> None:
        rng = self.rng
        count = 1 + (rng.random() < (0.6 if vip else 0.3)) + (rng.random() < 0.05)
        for n in range(count):
            roll = rng.random()
            kind = (
                "web" if roll < (0.72 if n == 0 else 0.35) else "ios" if roll < 0.85 else "android"
            )
            person.devices.append(Device(self.timeline.uuid(), kind, self._context(person, kind)))

    def _context(self, person: Person, kind: str) -> dict[str, Any]:
        rng = self.rng
        ctx: dict[str, Any] = {
            "locale": person.country.locale,
            "timezone": person.city.timezone,
            "ip": f"{rng.choice((31, 37, 46, 62, 77, 81, 88, 90, 95, 176, 185, 189, 201))}"
            f".{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(1, 255)}",
        }
        if kind == "web":
            ctx["library"] = _WEB_LIBRARY
            ctx["userAgent"] = _WEB_AGENTS[bisect.bisect_left(self._agents_cum, rng.random())]
        elif kind == "ios":
            ctx["library"] = _IOS_LIBRARY
            ctx["app"] = _APP
            ctx["device"] = {
                "type": "ios",
                "manufacturer": "Apple",
                "model": rng.choice(_IOS_MODELS),
                "id": self.timeline.uuid().upper(),
            }
            ctx["os"] = {"name": "iOS", "version": rng.choice(("17.5", "17.4.1", "16.7.8"))}
            ctx["network"] = {"wifi": rng.random() < 0.6}
        else:
            maker, model = rng.choice(_ANDROID_MODELS)
            ctx["library"] = _ANDROID_LIBRARY
            ctx["app"] = _APP
            ctx["device"] = {
                "type": "android",
                "manufacturer": maker,
                "model": model,
                "id": self.timeline.uuid(),
            }
            ctx["os"] = {"name": "Android", "version": rng.choice(("14", "13", "12"))}
            ctx["network"] = {"wifi": rng.random() < 0.6}
        return ctx
