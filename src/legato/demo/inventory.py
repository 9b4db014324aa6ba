"""The shop's catalogue and stock in the demo dataset: which products people pick (a few best
sellers, a long tail, a favourite category), their properties as events carry them, and the
ERP's stock: sales draw it down, restocks arrive in the morning a few days after it runs low,
and a nightly sync reports every level that moved (`Product Stock Updated`).
"""

from __future__ import annotations

import bisect
import random
from typing import Any

from legato.demo.catalogue import CATEGORY_NAMES, Product, build_catalogue
from legato.demo.distributions import cumulative
from legato.demo.people import Person
from legato.demo.spec import DAY_MS, Message
from legato.demo.timeline import Timeline

SHOP_URL = "https://shop.legato.example"
#: The ERP is not a person: its stock updates come from one fixed anonymous source id.
ERP_SOURCE_ID = "erp-inventory-sync"
#: Size of the shop's catalogue.
CATALOGUE_SIZE = 240
_ERP_LIBRARY = {"name": "erp-connector", "version": "1.4.0"}


class Inventory:
    """`Source` of the ERP's stock updates; what the storefront and orders ask of products."""

    def __init__(self, timeline: Timeline) -> None:
        self.timeline = timeline
        self.rng = rng = timeline.rng
        seed = timeline.spec.seed
        self.products = build_catalogue(random.Random(seed * 7919 + 1), CATALOGUE_SIZE)
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
        self._all_cum = cumulative(popularity)
        self._by_category: dict[str, tuple[list[int], list[float]]] = {}
        for name in CATEGORY_NAMES:
            members = [i for i, p in enumerate(self.products) if p.category == name]
            self._by_category[name] = (members, cumulative([popularity[i] for i in members]))
        self._product_props: dict[tuple[int, str], dict[str, Any]] = {}

    def pick(self, person: Person) -> int:
        """A product someone looks at: often of their favourite category, else any, by
        popularity."""
        rng = self.rng
        if rng.random() < 0.55:
            members, cum = self._by_category[person.favourite]
            if members:
                return members[bisect.bisect_left(cum, rng.random() * cum[-1])]
        return min(
            bisect.bisect_left(self._all_cum, rng.random() * self._all_cum[-1]),
            len(self.products) - 1,
        )

    def props(self, product: int, currency: str, rate: float) -> dict[str, Any]:
        """A product's event properties in a currency (a fresh dict each time)."""
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

    @staticmethod
    def index_of(product_id: str) -> int:
        """The catalogue index of a product id."""
        return int(product_id[5:]) - 1

    def sell(self, product: int, quantity: int, t: int) -> None:
        """Units sold at `t`: the night's sync reports it; low stock orders a restock."""
        day = (t - self.timeline.start_ms) // DAY_MS
        before = self.stock[product]
        self._stock_changed.setdefault(product, before)
        self.stock[product] = max(0, before - quantity)
        self._sold[product] += quantity
        if self.stock[product] < 15 and product not in self._restock_pending:
            self._restock_pending.add(product)
            self._restocks.setdefault(day + self.rng.randrange(2, 8), []).append(product)

    def play(self, day: int) -> None:
        """Restocks arrive in the morning; a nightly sync reports every stock level that moved."""
        rng, timeline = self.rng, self.timeline
        t = timeline.at(day, 8 * 60)
        for product in self._restocks.pop(day, []):
            before = self.stock[product]
            ordered = max(60, 2 * self._sold[product])
            self.stock[product] = before + ordered - ordered % 10 + rng.randrange(0, 50, 10)
            self._sold[product] = 0
            self._restock_pending.discard(product)
            self._stock_event(product, before, "restock", t)
            t += rng.randrange(1_000, 60_000)
        t = timeline.at(day, 23 * 60 + 30)
        for product, before in sorted(self._stock_changed.items()):
            self._stock_event(product, before, "sale", t)
            t += 150
        self._stock_changed.clear()

    def _stock_event(self, product: int, before: int, reason: str, t: int) -> None:
        p = self.products[product]
        stock = self.stock[product]
        message: Message = {
            "type": "track",
            "messageId": self.timeline.message_id(),
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
        self.timeline.emit(t, message, self.timeline.now_ms)
