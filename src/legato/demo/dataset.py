"""A deterministic generator of a realistic multi-channel retail dataset, as tracking messages.

`generate(spec)` yields batches of messages shaped exactly as Segment-spec SDKs send them to
`/v1/batch` (dicts with type, messageId, anonymousId/userId, ISO-8601 timestamp, traits or
properties, context): web and app browsing that turns identified at signup, carts, checkouts and
orders, the ERP's stock updates, helpdesk tickets, contact-centre calls and NPS answers, over the
`days` before `now_ms`, in time order. The same spec gives the same messages, byte for byte.

It must never read the clock, the environment or a file, and never hold the whole dataset:
memory grows with the number of people and their planned visits, not with the events (one day
of events is buffered, to sort it).
Email and other engagement events are not generated: the platform makes those itself.
"""

from __future__ import annotations

import bisect
import itertools
import random
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Generic, TypeVar

from legato.demo.catalogue import CATEGORY_NAMES, Product, build_catalogue, category_path
from legato.demo.locales import ASCII_FOLD, COUNTRIES, City, Country
from legato.errors import InvalidInput

Message = dict[str, Any]

DAY_MS = 86_400_000
HOUR_MS = 3_600_000
MINUTE_MS = 60_000

SHOP_URL = "https://shop.legato.example"
#: The ERP is not a person: its stock updates come from one fixed anonymous source id.
ERP_SOURCE_ID = "erp-inventory-sync"
#: A customer with no activity in this many days before `now` is lapsed.
LAPSED_AFTER_DAYS = 45
#: A customer with at least this many orders in the window is a VIP.
VIP_MIN_ORDERS = 5
#: Anonymous visitors who never sign up, per customer.
VISITORS_PER_CUSTOMER = 0.5
#: Size of the shop's catalogue.
CATALOGUE_SIZE = 240
MAX_CUSTOMERS = 1_000_000
MAX_DAYS = 3650

# Messages per customer by length of the window in days, measured on this generator (mean of
# two seeds at 2,000 customers); `estimated_messages` interpolates between the points. Short
# windows keep a floor: every customer signs up or logs in, and visitors visit.
_MESSAGES_PER_CUSTOMER = (
    (1, 13.5),
    (30, 16.1),
    (45, 17.6),
    (60, 20.9),
    (90, 26.3),
    (180, 40.7),
    (365, 80.0),
)


@dataclass(frozen=True, slots=True)
class DemoSpec:
    """What to generate: `customers` people over the `days` before `now_ms`, from `seed`."""

    now_ms: int
    customers: int = 10_000
    days: int = 90
    seed: int = 7

    def __post_init__(self) -> None:
        if not 1 <= self.customers <= MAX_CUSTOMERS:
            raise InvalidInput(
                f"customers must be between 1 and {MAX_CUSTOMERS}, not {self.customers}",
                field="customers",
            )
        if not 1 <= self.days <= MAX_DAYS:
            raise InvalidInput(
                f"days must be between 1 and {MAX_DAYS}, not {self.days}", field="days"
            )

    @property
    def start_ms(self) -> int:
        """The first instant of the window."""
        return self.now_ms - self.days * DAY_MS

    @property
    def visitors(self) -> int:
        """Anonymous visitors who browse and never sign up."""
        return round(self.customers * VISITORS_PER_CUSTOMER)


def customer_user_id(index: int, seed: int) -> str:
    """The userId of the `index`-th customer of a dataset made with `seed`."""
    # Scrambling the index with an odd multiplier keeps ids unique and not sequential.
    return f"cus_{(index * 2_654_435_761 + seed) % 2**32:08x}"


def estimated_messages(customers: int, days: int) -> int:
    """About how many messages `generate` yields for this size (within about 10%)."""
    points = _MESSAGES_PER_CUSTOMER
    if days >= points[-1][0]:
        (d0, m0), (d1, m1) = points[-2], points[-1]
    else:
        i = max(1, bisect.bisect_right([d for d, _ in points], days))
        (d0, m0), (d1, m1) = points[i - 1], points[i]
    per_customer = m0 + (m1 - m0) * (days - d0) / (d1 - d0)
    return round(customers * per_customer)


def generate(spec: DemoSpec, batch_size: int = 1000) -> Iterator[list[Message]]:
    """The dataset as batches of at most `batch_size` messages, oldest first."""
    if batch_size < 1:
        raise InvalidInput("batch_size must be at least 1", field="batch_size")
    batch: list[Message] = []
    for day in _Generator(spec).days_played():
        batch += day
        while len(batch) >= batch_size:
            yield batch[:batch_size]
            batch = batch[batch_size:]
    if batch:
        yield batch


# ---------------------------------------------------------------------------------------------
# Distributions

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class _Weighted(Generic[T]):
    """Values with cumulative weights, to draw from with one `random()` and a bisection."""

    values: tuple[T, ...]
    cumulative: tuple[float, ...]

    @classmethod
    def of(cls, *options: tuple[T, float]) -> _Weighted[T]:
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


# Relative traffic by weekday (Monday first): weekends shop more.
_WEEKDAY_FACTOR = (0.92, 0.88, 0.9, 0.95, 1.05, 1.25, 1.2)
# Relative traffic by local hour: a lunch peak and an evening peak.
# fmt: off
_HOUR_WEIGHTS = (
    0.25, 0.12, 0.06, 0.04, 0.04, 0.08, 0.25, 0.6, 0.9, 1.0, 1.05, 1.15,
    1.4, 1.45, 1.2, 1.05, 1.0, 1.05, 1.2, 1.5, 1.75, 1.7, 1.25, 0.65,
)
# fmt: on
_HOUR_CUM = [sum(_HOUR_WEIGHTS[: h + 1]) for h in range(24)]
# Contact-centre and helpdesk hours (local): 08:00 to 20:00.
_OFFICE_HOURS = tuple(range(8, 20))

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
_SERVER_LIBRARY = {"name": "shop-backend", "version": "3.8.1"}
_ERP_LIBRARY = {"name": "erp-connector", "version": "1.4.0"}
_CRM_LIBRARY = {"name": "crm-sync", "version": "2.3.0"}
_HELPDESK_LIBRARY = {"name": "helpdesk-webhook", "version": "1.9.2"}
_CONTACT_CENTRE_LIBRARY = {"name": "contact-centre", "version": "7.2.0"}
_SURVEY_LIBRARY = {"name": "nps-survey", "version": "2.0.5"}

_TICKET_SUBJECTS = {
    "delivery": ("Where is my order?", "Parcel arrived damaged", "Wrong delivery address"),
    "returns": ("How do I return an item?", "Refund not received yet", "Exchange for a size"),
    "product": ("Item not as described", "Size advice", "Missing part in the box"),
    "billing": ("Charged twice", "Invoice request", "Promo code did not apply"),
    "account": ("Cannot log in", "Change my e-mail address", "Delete my account"),
}
_TICKET_CHANNELS = _Weighted.of(
    ("email", 0.4), ("chat", 0.35), ("whatsapp", 0.15), ("web_form", 0.1)
)
_TICKET_PRIORITIES = _Weighted.of(("low", 0.3), ("normal", 0.5), ("high", 0.15), ("urgent", 0.05))
_CALL_INTENTS = _Weighted.of(
    ("delivery", 0.35), ("billing", 0.3), ("upgrade", 0.2), ("mortgage", 0.15)
)
_CALL_OUTCOMES = {
    "delivery": _Weighted.of(
        ("resolved", 0.6), ("callback_scheduled", 0.2), ("transferred", 0.1), ("abandoned", 0.1)
    ),
    "billing": _Weighted.of(
        ("resolved", 0.65), ("refund_issued", 0.15), ("transferred", 0.1), ("abandoned", 0.1)
    ),
    "upgrade": _Weighted.of(
        ("upgraded", 0.4),
        ("not_interested", 0.35),
        ("callback_scheduled", 0.15),
        ("abandoned", 0.1),
    ),
    "mortgage": _Weighted.of(
        ("appointment_booked", 0.3),
        ("information_sent", 0.4),
        ("not_eligible", 0.2),
        ("abandoned", 0.1),
    ),
}
_NPS_COMMENTS = {
    "promoter": ("Fast delivery and great quality!", "Love the new collection.",
                 "Always a pleasure to shop here."),
    "passive": ("Good, but delivery took a while.", "Fine. Prices could be better."),
    "detractor": ("Support never answered my ticket.", "The item broke after a week.",
                  "Too many e-mails."),
}  # fmt: skip
_PAYMENT_METHODS = _Weighted.of(
    ("card", 0.62), ("paypal", 0.2), ("apple_pay", 0.1), ("bizum", 0.08)
)
_COUPONS = ("WELCOME10", "SPRING15", "VIP20", "FREESHIP")
_TIERS = ("member", "silver", "gold", "platinum")


_PRE_SIGNUP_VISITS = _Weighted.of((0, 0.4), (1, 0.3), (2, 0.18), (3, 0.12))
_VISITOR_VISITS = _Weighted.of((1, 0.6), (2, 0.28), (3, 0.12))
_CALLS = _Weighted.of((1, 0.7), (2, 0.22), (3, 0.08))
_CART_LINES = _Weighted.of((1, 0.6), (2, 0.3), (3, 0.1))
_SIGNUP_METHODS = _Weighted.of(("email", 0.7), ("google", 0.2), ("apple", 0.1))
_ORDER_TICKETS = _Weighted.of(("delivery", 0.55), ("returns", 0.3), ("product", 0.15))
# NPS scores 0..10 of a happy customer and of one whose ticket went badly.
_NPS_HAPPY = _Weighted.of(*zip(range(11), (1, 1, 1, 1, 2, 3, 5, 9, 18, 25, 28), strict=True))
_NPS_UNHAPPY = _Weighted.of(*zip(range(11), (6, 5, 6, 7, 6, 5, 4, 3, 2, 1, 1), strict=True))
_CITIES = {c.code: _Weighted.of(*((city, city.weight) for city in c.cities)) for c in COUNTRIES}


# ---------------------------------------------------------------------------------------------
# People


class _Device:
    """A browser or app install: one anonymousId and the context its SDK sends."""

    __slots__ = ("anonymous_id", "context", "identified", "kind")

    def __init__(self, anonymous_id: str, kind: str, context: dict[str, Any]):
        self.anonymous_id = anonymous_id
        self.kind = kind  # "web" | "ios" | "android"
        self.context = context
        self.identified = False


class _Person:
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
        self.devices: list[_Device] = []
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


# ---------------------------------------------------------------------------------------------
# The generator


class _Generator:
    """Plans every person up front, then plays the window day by day."""

    def __init__(self, spec: DemoSpec):
        self.spec = spec
        self.rng = random.Random(spec.seed)
        self.start_ms = spec.start_ms
        self.now_ms = spec.now_ms
        self.days = spec.days
        self._dates: dict[int, str] = {}
        self._buckets: dict[int, list[tuple[int, int, Message]]] = {}
        self._counter = 0
        self._ids = 0
        self._day = 0
        self._messages = itertools.count(1)
        self._id_prefix = self._uuid()[:24]
        rng = self.rng
        self.products = build_catalogue(random.Random(spec.seed * 7919 + 1), CATALOGUE_SIZE)
        self.stock = [p.opening_stock for p in self.products]
        # Units sold since the last restock: the next purchase order covers twice that.
        self._sold = [0] * len(self.products)
        self._stock_changed: dict[int, int] = {}
        self._restocks: dict[int, list[int]] = {}
        self._restock_pending: set[int] = set()
        # Popularity is Zipf-like: a few best sellers, a long tail.
        order = list(range(len(self.products)))
        rng.shuffle(order)
        popularity = [0.0] * len(self.products)
        for rank, index in enumerate(order):
            popularity[index] = 1.0 / (rank + 1) ** 0.9
        self._all_cum = _cumulative(popularity)
        self._by_category: dict[str, tuple[list[int], list[float]]] = {}
        for name in CATEGORY_NAMES:
            members = [i for i, p in enumerate(self.products) if p.category == name]
            self._by_category[name] = (members, _cumulative([popularity[i] for i in members]))
        self._product_props: dict[tuple[int, str], dict[str, Any]] = {}
        self._day_cum = self._day_weights()
        self._countries_cum = _cumulative([c.weight for c in COUNTRIES])
        self._sources_cum = _cumulative([s[3] for s in _SOURCES])
        self._agents_cum = _cumulative(list(_WEB_AGENT_WEIGHTS))
        self._emails: set[str] = set()
        self.people: list[_Person] = []
        # day -> person index -> number of sessions that day; day -> people calling that day.
        self._sessions: dict[int, dict[int, int]] = {}
        self._calls: dict[int, list[int]] = {}
        self._plan()

    # -- planning --------------------------------------------------------------------------

    def _day_weights(self) -> list[float]:
        """Cumulative traffic weight per day: weekly rhythm, growth, and a mid-window sale."""
        weights = []
        sale = self.days * 2 // 3
        for d in range(self.days):
            weekday = datetime.fromtimestamp((self.start_ms + d * DAY_MS) / 1000, UTC).weekday()
            w = _WEEKDAY_FACTOR[weekday] * (1.0 + 0.3 * d / self.days)
            if sale <= d < sale + 3:
                w *= 1.9
            weights.append(w)
        return _cumulative(weights)

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
            person = _Person(country, city, rng.choice(CATEGORY_NAMES))
            person.horizon_ms = self.now_ms
            self.people.append(person)
            if index < spec.customers:
                self._plan_customer(index, person, lapse_day)
            else:
                self._plan_visitor(index, person)

    def _plan_customer(self, index: int, person: _Person, lapse_day: int) -> None:
        """Draw who the customer is, how active, when they shop, and whether they lapse."""
        rng, last = self.rng, self.days - 1
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
            person.horizon_ms = self.start_ms + (lapse_day + 2) * DAY_MS
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
            person.created_ms = self.start_ms - rng.randrange(1, 900) * DAY_MS
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
            person.tier = _TIERS[0 if history < 1.6 else 1 if history < 3 else 2]
            if vip:
                person.tier = rng.choice(_TIERS[2:])
        self._devices(person, vip)
        for d in days:
            per_day = self._sessions.setdefault(d, {})
            per_day[index] = per_day.get(index, 0) + 1
        if rng.random() < (0.25 if vip else 0.09):
            for _ in range(_CALLS.draw(rng)):
                self._calls.setdefault(self._pick_day(lo, hi), []).append(index)

    def _plan_visitor(self, index: int, person: _Person) -> None:
        """An anonymous visitor: one to three visits within ten days, never a signup."""
        rng = self.rng
        self._devices(person, False)
        first = self._pick_day(0, self.days - 1)
        for _ in range(_VISITOR_VISITS.draw(rng)):
            d = min(self.days - 1, first + rng.randrange(0, 10))
            per_day = self._sessions.setdefault(d, {})
            per_day[index] = per_day.get(index, 0) + 1

    def _name(self, index: int, person: _Person) -> None:
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

    def _devices(self, person: _Person, vip: bool) -> None:
        rng = self.rng
        count = 1 + (rng.random() < (0.6 if vip else 0.3)) + (rng.random() < 0.05)
        for n in range(count):
            roll = rng.random()
            kind = (
                "web" if roll < (0.72 if n == 0 else 0.35) else "ios" if roll < 0.85 else "android"
            )
            person.devices.append(_Device(self._uuid(), kind, self._context(person, kind)))

    def _context(self, person: _Person, kind: str) -> dict[str, Any]:
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
                "id": self._uuid().upper(),
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
                "id": self._uuid(),
            }
            ctx["os"] = {"name": "Android", "version": rng.choice(("14", "13", "12"))}
            ctx["network"] = {"wifi": rng.random() < 0.6}
        return ctx

    # -- playing the window ----------------------------------------------------------------

    def days_played(self) -> Iterator[list[Message]]:
        """The messages of each day of the window in turn, in timestamp order."""
        for day in range(self.days):
            self._day = day
            for index, count in self._sessions.pop(day, {}).items():
                person = self.people[index]
                if count == 1:
                    self._session(person, self._session_start(day, person))
                    continue
                for start in sorted(self._session_start(day, person) for _ in range(count)):
                    self._session(person, start)
            for index in self._calls.pop(day, []):
                self._call(self.people[index], day)
            self._erp(day)
            bucket = self._buckets.pop(day, [])
            bucket.sort()  # by time, then by creation: the counter is unique
            yield [message for _, _, message in bucket]
        # Follow-ups scheduled past `now` never happened.
        self._buckets.clear()

    def _at(self, day: int, utc_minute: int) -> int:
        """The instant in the `day`-th 24-hour slice of the window whose UTC clock reads
        `utc_minute` (minutes after midnight, any integer)."""
        day_start = self.start_ms + day * DAY_MS
        return day_start + (utc_minute * MINUTE_MS - day_start % DAY_MS) % DAY_MS

    def _session_start(self, day: int, person: _Person) -> int:
        """A moment of `day` at a local hour drawn from the daily rhythm of the person's city."""
        rng = self.rng
        local_hour = bisect.bisect_left(_HOUR_CUM, rng.random() * _HOUR_CUM[-1])
        minute = local_hour * 60 + rng.randrange(60) - person.city.utc_offset_min
        return self._at(day, minute) + rng.randrange(MINUTE_MS)

    def _office_time(self, day: int, person: _Person) -> int:
        """A moment of `day` during the contact centre's opening hours, local to the person."""
        rng = self.rng
        minute = rng.choice(_OFFICE_HOURS) * 60 + rng.randrange(60) - person.city.utc_offset_min
        return self._at(day, minute) + rng.randrange(MINUTE_MS)

    def _emit(self, ts: int, message: Message, horizon: int) -> bool:
        """Queue a message for its day; False (dropped) if it falls after `horizon`."""
        if ts > horizon:
            return False
        day = (ts - self.start_ms) // DAY_MS
        if day < self._day:
            raise AssertionError(f"message at {ts} is for a day already played")
        message["timestamp"] = self._iso(ts)
        self._counter += 1
        bucket = self._buckets.get(day)
        if bucket is None:
            bucket = self._buckets[day] = []
        bucket.append((ts, self._counter, message))
        return True

    def _iso(self, ts: int) -> str:
        """`ts` as ISO-8601 UTC with milliseconds, from cached date and clock strings."""
        day, rem = divmod(ts, DAY_MS)
        date = self._dates.get(day)
        if date is None:
            date = datetime.fromtimestamp(day * 86_400, UTC).strftime("%Y-%m-%dT")
            self._dates[day] = date
        minute, rem = divmod(rem, MINUTE_MS)
        return date + _CLOCK_MINUTES[minute] + _CLOCK_SECONDS[rem]

    def _message_id(self) -> str:
        """A UUID-shaped id: this run's random prefix and a counter (unique, and cheap)."""
        return f"{self._id_prefix}{next(self._messages):012x}"

    def _uuid(self) -> str:
        """A random (version 4) UUID drawn from the seeded generator."""
        h = f"{self.rng.getrandbits(128):032x}"
        variant = "89ab"[int(h[16], 16) & 3]
        return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{variant}{h[17:20]}-{h[20:]}"

    def _id(self, prefix: str) -> str:
        self._ids += 1
        return f"{prefix}{(self._ids * 2_654_435_761 + self.spec.seed) % 2**40:010x}"

    # -- a visit ---------------------------------------------------------------------------

    def _session(self, person: _Person, t: int) -> None:
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
                product = self._pick_product(person)
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

    def _base(self, kind: str, device: _Device, uid: str | None) -> Message:
        message: Message = {"type": kind, "messageId": self._message_id()}
        message["anonymousId"] = device.anonymous_id
        if uid is not None:
            message["userId"] = uid
        return message

    def _view(
        self,
        person: _Person,
        device: _Device,
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
        return t + 800 if self._emit(t, message, horizon) else -1

    def _track(
        self, device: _Device, uid: str | None, event: str, props: dict[str, Any]
    ) -> Message:
        message = self._base("track", device, uid)
        message["event"] = event
        message["properties"] = props
        message["context"] = dict(device.context)
        return message

    def _pick_product(self, person: _Person) -> int:
        rng = self.rng
        if rng.random() < 0.55:
            members, cum = self._by_category[person.favourite]
            if members:
                return members[bisect.bisect_left(cum, rng.random() * cum[-1])]
        return min(
            bisect.bisect_left(self._all_cum, rng.random() * self._all_cum[-1]),
            len(self.products) - 1,
        )

    def _props(self, product: int, currency: str, rate: float) -> dict[str, Any]:
        key = (product, currency)
        props = self._product_props.get(key)
        if props is None:
            p: Product = self.products[product]
            props = self._product_props[key] = {
                "product_id": p.product_id,
                "sku": p.sku,
                "name": p.name,
                "category": p.category,
                "brand": p.brand,
                "price": round(p.price_eur * rate, 2),
                "currency": currency,
                "url": SHOP_URL + p.url_path,
            }
        return dict(props)

    def _product_view(
        self,
        person: _Person,
        device: _Device,
        uid: str | None,
        t: int,
        product: int,
        horizon: int,
    ) -> int:
        p = self.products[product]
        t = self._view(person, device, uid, t, "Product", p.url_path, p.name, "", None, horizon)
        if t < 0:
            return -1
        props = self._props(product, person.country.currency, person.country.eur_rate)
        props["in_stock"] = self.stock[product] > 0
        message = self._track(device, uid, "Product Viewed", props)
        return t + 300 if self._emit(t, message, horizon) else -1

    def _category(
        self, person: _Person, device: _Device, uid: str | None, t: int, horizon: int
    ) -> int:
        rng = self.rng
        category = person.favourite if rng.random() < 0.6 else rng.choice(CATEGORY_NAMES)
        path = category_path(category)
        t = self._view(person, device, uid, t, "Category", path, category, "", None, horizon)
        if t < 0:
            return -1
        props = {"list_id": path[3:], "category": category}
        message = self._track(device, uid, "Product List Viewed", props)
        return t + 300 if self._emit(t, message, horizon) else -1

    def _search(
        self, person: _Person, device: _Device, uid: str | None, t: int, horizon: int
    ) -> int:
        query = self.rng.choice(_SEARCH_TERMS)
        path = "/search?q=" + query.replace(" ", "+")
        t = self._view(person, device, uid, t, "Search", path, "Search", "", None, horizon)
        if t < 0:
            return -1
        message = self._track(device, uid, "Products Searched", {"query": query})
        return t + 300 if self._emit(t, message, horizon) else -1

    # -- identity --------------------------------------------------------------------------

    def _traits(self, person: _Person) -> dict[str, Any]:
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
            "created_at": self._iso(person.created_ms),
        }
        if person.crm_id is not None:
            traits["crm_id"] = person.crm_id
        return traits

    def _identify(self, person: _Person, device: _Device, t: int, horizon: int) -> int:
        """An identify linking `device` to the person: all traits the first time, else email."""
        first = not any(d.identified for d in person.devices)
        message = self._base("identify", device, person.user_id)
        message["traits"] = self._traits(person) if first else {"email": person.email}
        message["context"] = dict(device.context)
        device.identified = True
        self._emit(t, message, horizon)
        return t + 1_500

    def _signup(self, person: _Person, device: _Device, t: int, horizon: int) -> int:
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
        return t + 1_000 if self._emit(t, message, horizon) else -1

    # -- carts and orders ------------------------------------------------------------------

    def _cart(
        self,
        person: _Person,
        device: _Device,
        uid: str | None,
        t: int,
        viewed: list[int],
        order: bool,
        horizon: int,
    ) -> None:
        rng = self.rng
        currency, rate = person.country.currency, person.country.eur_rate
        stock = self.stock
        candidates = [p for p in dict.fromkeys(viewed) if stock[p] > 0]
        if not candidates:
            if not order:
                return
            # Whoever came to buy finds something else in stock.
            for _ in range(8):
                product = self._pick_product(person)
                if stock[product] > 0:
                    candidates = [product]
                    break
            else:
                candidates = [max(range(len(stock)), key=stock.__getitem__)]
        items = candidates[: _CART_LINES.draw(rng)]
        cart_id = self._id("cart_")
        lines: list[dict[str, Any]] = []
        for product in items:
            t += 8_000 + int(rng.expovariate(1 / 30_000))
            line = self._props(product, currency, rate)
            line["quantity"] = 1 if rng.random() < 0.85 else 2
            lines.append(line)
            props = dict(line)
            props["cart_id"] = cart_id
            if not self._emit(t, self._track(device, uid, "Product Added", props), horizon):
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
        checkout_id = self._id("chk_")
        checkout = {
            "cart_id": cart_id,
            "checkout_id": checkout_id,
            "value": value,
            "revenue": value,
            "currency": currency,
            "products": lines,
        }
        if not self._emit(t, self._track(device, uid, "Checkout Started", checkout), horizon):
            return
        if not order:
            return  # an abandoned checkout
        t += 60_000 + int(rng.expovariate(1 / 90_000))
        self._order(person, t, cart_id, checkout_id, lines, value, horizon)
        self._view(person, device, uid, t + 2_000, "Order Confirmation", "/checkout/done",
                   "Thank you", "", None, horizon)  # fmt: skip

    def _order(
        self,
        person: _Person,
        t: int,
        cart_id: str,
        checkout_id: str,
        lines: list[dict[str, Any]],
        value: float,
        horizon: int,
    ) -> None:
        rng = self.rng
        rate = person.country.eur_rate
        coupon = rng.choice(_COUPONS) if rng.random() < 0.2 else None
        discount = round(value * (0.15 if coupon == "SPRING15" else 0.1), 2) if coupon else 0.0
        revenue = round(value - discount, 2)
        shipping = 0.0 if revenue >= 50 * rate or coupon == "FREESHIP" else round(4.95 * rate, 2)
        order_id = f"ORD-{self._id('')[-8:].upper()}"
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
            "payment_method": _PAYMENT_METHODS.draw(self.rng),
            "products": [dict(line) for line in lines],
        }
        if coupon is not None:
            props["coupon"] = coupon
        # Orders are confirmed by the shop's backend: server-side, userId only.
        message: Message = {
            "type": "track",
            "messageId": self._message_id(),
            "userId": person.user_id,
            "event": "Order Completed",
            "properties": props,
            "context": {"library": _SERVER_LIBRARY},
        }
        if not self._emit(t, message, horizon):
            return
        person.orders_done += 1
        for line in lines:
            self._sell(self._product_index(line["product_id"]), line["quantity"], t)
        if person.orders_done in (VIP_MIN_ORDERS, 2 * VIP_MIN_ORDERS):
            self._tier_change(person, t + HOUR_MS + rng.randrange(6 * HOUR_MS), horizon)
        if rng.random() < 0.07:
            category = _ORDER_TICKETS.draw(rng)
            self._ticket(person, t + rng.randrange(DAY_MS, 6 * DAY_MS), category, order_id)
        if not person.nps_done and rng.random() < 0.2:
            self._nps(person, t + rng.randrange(3 * DAY_MS, 7 * DAY_MS))
        if rng.random() < 0.005:
            self._ticket(person, t + rng.randrange(HOUR_MS, DAY_MS), "billing", order_id)

    def _product_index(self, product_id: str) -> int:
        return int(product_id[5:]) - 1

    def _sell(self, product: int, quantity: int, t: int) -> None:
        day = (t - self.start_ms) // DAY_MS
        before = self.stock[product]
        self._stock_changed.setdefault(product, before)
        self.stock[product] = max(0, before - quantity)
        self._sold[product] += quantity
        if self.stock[product] < 15 and product not in self._restock_pending:
            self._restock_pending.add(product)
            self._restocks.setdefault(day + self.rng.randrange(2, 8), []).append(product)

    def _tier_change(self, person: _Person, t: int, horizon: int) -> None:
        """The CRM promotes a frequent buyer: a server-side identify with the new tier."""
        current = _TIERS.index(person.tier)
        if current >= len(_TIERS) - 1:
            return
        person.tier = _TIERS[current + 1 if current >= 2 else 2]
        traits: dict[str, Any] = {"loyalty_tier": person.tier}
        if person.crm_id is not None:
            traits["crm_id"] = person.crm_id
        message: Message = {
            "type": "identify",
            "messageId": self._message_id(),
            "userId": person.user_id,
            "traits": traits,
            "context": {"library": _CRM_LIBRARY},
        }
        self._emit(t, message, horizon)

    # -- service channels ------------------------------------------------------------------

    def _server(self, person: _Person, event: str, props: dict[str, Any], lib: Any) -> Message:
        return {
            "type": "track",
            "messageId": self._message_id(),
            "userId": person.user_id,
            "event": event,
            "properties": props,
            "context": {"library": lib},
        }

    def _ticket(self, person: _Person, t: int, category: str, order_id: str | None) -> None:
        rng = self.rng
        ticket_id = f"T-{self._id('')[-7:].upper()}"
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
        if not self._emit(t, self._server(person, "Ticket Opened", opened, _HELPDESK_LIBRARY),
                          person.horizon_ms):  # fmt: skip
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
        self._emit(t + resolution_min * MINUTE_MS,
                   self._server(person, "Ticket Closed", closed, _HELPDESK_LIBRARY),
                   person.horizon_ms)  # fmt: skip

    def _call(self, person: _Person, day: int) -> None:
        rng = self.rng
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
            "call_id": self._id("call_"),
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
        self._emit(t, self._server(person, "Call Completed", props, _CONTACT_CENTRE_LIBRARY),
                   person.horizon_ms)  # fmt: skip

    def _nps(self, person: _Person, t: int) -> None:
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
        self._emit(t, self._server(person, "NPS Submitted", props, _SURVEY_LIBRARY),
                   person.horizon_ms)  # fmt: skip

    # -- the ERP ---------------------------------------------------------------------------

    def _erp(self, day: int) -> None:
        """Restocks arrive in the morning; a nightly sync reports every stock level that moved."""
        rng = self.rng
        t = self._at(day, 8 * 60)
        for product in self._restocks.pop(day, []):
            before = self.stock[product]
            ordered = max(60, 2 * self._sold[product])
            self.stock[product] = before + ordered - ordered % 10 + rng.randrange(0, 50, 10)
            self._sold[product] = 0
            self._restock_pending.discard(product)
            self._stock_event(product, before, "restock", t)
            t += rng.randrange(1_000, 60_000)
        t = self._at(day, 23 * 60 + 30)
        for product, before in sorted(self._stock_changed.items()):
            self._stock_event(product, before, "sale", t)
            t += 150
        self._stock_changed.clear()

    def _stock_event(self, product: int, before: int, reason: str, t: int) -> None:
        p = self.products[product]
        stock = self.stock[product]
        message: Message = {
            "type": "track",
            "messageId": self._message_id(),
            "anonymousId": ERP_SOURCE_ID,
            "event": "Product Stock Updated",
            "properties": {
                "product_id": p.product_id,
                "sku": p.sku,
                "name": p.name,
                "category": p.category,
                "stock": stock,
                "previous_stock": before,
                "in_stock": stock > 0,
                "reason": reason,
                "warehouse": "MAD-1",
            },
            "context": {"library": _ERP_LIBRARY},
        }
        self._emit(t, message, self.now_ms)


#: "HH:MM:" for every minute of a day, and "SS.mmmZ" for every millisecond of a minute.
_CLOCK_MINUTES = tuple(f"{m // 60:02d}:{m % 60:02d}:" for m in range(1440))
_CLOCK_SECONDS = tuple(f"{ms // 1000:02d}.{ms % 1000:03d}Z" for ms in range(MINUTE_MS))


def _cumulative(weights: list[float]) -> list[float]:
    out: list[float] = []
    total = 0.0
    for w in weights:
        total += w
        out.append(total)
    return out
