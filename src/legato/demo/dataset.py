"""A deterministic generator of a realistic multi-channel retail dataset, as tracking messages.

`generate(spec)` yields batches of messages shaped exactly as Segment-spec SDKs send them to
`/v1/batch` (dicts with type, messageId, anonymousId/userId, ISO-8601 timestamp, traits or
properties, context) over the `days` before `now_ms`, in time order. The same spec gives the
same messages, byte for byte. Each source of events has its module, and all of them write
through one `timeline.Timeline` (seeded generator, ids, messages queued by day):

- `people`: customers and visitors, their devices and their plan for the window;
- `web`: web and app visits that turn identified at sign-up, carts and checkouts;
- `commerce`: orders with revenue, loyalty-tier changes from the CRM;
- `inventory`: the catalogue, and the ERP's stock updates (restocks, nightly sync);
- `support`: helpdesk tickets and contact-centre calls; `surveys`: NPS answers.

It must never read the clock, the environment or a file, and never hold the whole dataset:
memory grows with the number of people and their planned visits, not with the events (one day
of events is buffered, to sort it).
Email and other engagement events are not generated: the platform makes those itself.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterator

from legato.demo.commerce import Orders
from legato.demo.inventory import CATALOGUE_SIZE, ERP_SOURCE_ID, SHOP_URL, Inventory
from legato.demo.people import Population
from legato.demo.spec import (
    DAY_MS,
    HOUR_MS,
    LAPSED_AFTER_DAYS,
    MAX_CUSTOMERS,
    MAX_DAYS,
    MINUTE_MS,
    VIP_MIN_ORDERS,
    VISITORS_PER_CUSTOMER,
    DemoSpec,
    Message,
    customer_user_id,
)
from legato.demo.support import Support
from legato.demo.surveys import Surveys
from legato.demo.timeline import Source, Timeline
from legato.demo.web import Storefront
from legato.errors import InvalidInput

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
    for day in days_played(spec):
        batch += day
        while len(batch) >= batch_size:
            yield batch[:batch_size]
            batch = batch[batch_size:]
    if batch:
        yield batch


def days_played(spec: DemoSpec) -> Iterator[list[Message]]:
    """The messages of each day of the window in turn, in timestamp order.

    Everyone is planned up front; then, day after day, the storefront plays the visits, the
    contact centre the calls and the ERP its restocks and nightly sync (orders, tickets and
    surveys follow from visits), and the day's messages are taken in time order.
    """
    timeline = Timeline(spec)
    # The order of construction is the order the seeded generator is drawn from.
    inventory = Inventory(timeline)
    population = Population(timeline)
    support = Support(timeline, population)
    orders = Orders(timeline, inventory, support, Surveys(timeline))
    sources: tuple[Source, ...] = (
        Storefront(timeline, population, inventory, orders),
        support,
        inventory,
    )
    for day in range(spec.days):
        timeline.day = day
        for source in sources:
            source.play(day)
        yield timeline.take(day)
    # Follow-ups scheduled past `now` never happened.
    timeline.drop_later()


__all__ = [
    "CATALOGUE_SIZE",
    "DAY_MS",
    "ERP_SOURCE_ID",
    "HOUR_MS",
    "LAPSED_AFTER_DAYS",
    "MAX_CUSTOMERS",
    "MAX_DAYS",
    "MINUTE_MS",
    "SHOP_URL",
    "VIP_MIN_ORDERS",
    "VISITORS_PER_CUSTOMER",
    "DemoSpec",
    "Message",
    "customer_user_id",
    "days_played",
    "estimated_messages",
    "generate",
]
