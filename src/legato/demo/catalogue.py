"""The demo shop's catalogue: products with categories, prices in euros and opening stock.

Built deterministically from a seeded PRNG by `build_catalogue`; the generator sells from it and
the ERP's `Product Stock Updated` events report its stock. Must never do I/O.
"""

from __future__ import annotations

import random
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Product:
    """One article the shop sells."""

    product_id: str
    sku: str
    name: str
    category: str
    brand: str
    price_eur: float
    url_path: str
    opening_stock: int


@dataclass(frozen=True, slots=True)
class _Category:
    name: str
    slug: str
    nouns: tuple[str, ...]
    # Median price and spread (lognormal sigma) in euros.
    median_eur: float
    sigma: float
    brands: tuple[str, ...]
    weight: float


_CATEGORIES = (
    _Category(
        "Women > Dresses",
        "women/dresses",
        ("Dress", "Midi Dress", "Wrap Dress", "Maxi Dress", "Shirt Dress"),
        49.0,
        0.35,
        ("Lumen", "Aurelia", "Norte"),
        1.4,
    ),
    _Category(
        "Women > Tops",
        "women/tops",
        ("Blouse", "T-Shirt", "Knit Top", "Cardigan"),
        29.0,
        0.35,
        ("Lumen", "Aurelia", "Basics Co."),
        1.3,
    ),
    _Category(
        "Men > Shirts",
        "men/shirts",
        ("Oxford Shirt", "Linen Shirt", "Polo", "Overshirt"),
        39.0,
        0.3,
        ("Norte", "Harbour", "Basics Co."),
        1.0,
    ),
    _Category(
        "Men > Trousers",
        "men/trousers",
        ("Chinos", "Jeans", "Cargo Trousers", "Joggers"),
        45.0,
        0.3,
        ("Norte", "Harbour", "Denim Lab"),
        0.9,
    ),
    _Category(
        "Shoes > Sneakers",
        "shoes/sneakers",
        ("Sneakers", "Runners", "Court Shoes", "High-tops"),
        79.0,
        0.35,
        ("Vela", "Stride", "Kōbe"),
        1.2,
    ),
    _Category(
        "Shoes > Boots",
        "shoes/boots",
        ("Chelsea Boots", "Ankle Boots", "Hiking Boots"),
        109.0,
        0.3,
        ("Vela", "Terra"),
        0.6,
    ),
    _Category(
        "Accessories > Bags",
        "accessories/bags",
        ("Tote Bag", "Backpack", "Crossbody Bag", "Weekender"),
        59.0,
        0.45,
        ("Aurelia", "Terra", "Nomad"),
        0.8,
    ),
    _Category(
        "Accessories > Watches",
        "accessories/watches",
        ("Watch", "Smartwatch Strap", "Chronograph"),
        129.0,
        0.5,
        ("Tempo", "Nomad"),
        0.4,
    ),
    _Category(
        "Home > Kitchen",
        "home/kitchen",
        ("Chef's Knife", "Dutch Oven", "Coffee Grinder", "Pan Set", "Kettle"),
        54.0,
        0.55,
        ("Casa Viva", "Hearth"),
        0.8,
    ),
    _Category(
        "Home > Bedding",
        "home/bedding",
        ("Duvet Cover", "Linen Sheets", "Pillow Set", "Throw Blanket"),
        69.0,
        0.4,
        ("Casa Viva", "Dormi"),
        0.6,
    ),
    _Category(
        "Beauty > Skincare",
        "beauty/skincare",
        ("Serum", "Moisturiser", "Cleanser", "Sunscreen SPF50", "Eye Cream"),
        24.0,
        0.45,
        ("Aqua Pura", "Botanica"),
        1.1,
    ),
    _Category(
        "Beauty > Fragrance",
        "beauty/fragrance",
        ("Eau de Parfum", "Eau de Toilette", "Body Mist"),
        64.0,
        0.4,
        ("Botanica", "Maison Fleur"),
        0.5,
    ),
    _Category(
        "Electronics > Audio",
        "electronics/audio",
        ("Wireless Earbuds", "Headphones", "Bluetooth Speaker", "Soundbar"),
        99.0,
        0.6,
        ("Sonora", "Pulse"),
        0.7,
    ),
    _Category(
        "Electronics > Accessories",
        "electronics/accessories",
        ("Phone Case", "Charger", "Power Bank", "USB-C Cable"),
        22.0,
        0.5,
        ("Pulse", "Volt"),
        0.7,
    ),
    _Category(
        "Sports > Running",
        "sports/running",
        ("Running Jacket", "Running Tights", "Running Vest", "Sports Socks"),
        39.0,
        0.45,
        ("Stride", "Vela"),
        0.7,
    ),
    _Category(
        "Sports > Yoga",
        "sports/yoga",
        ("Yoga Mat", "Yoga Block", "Leggings", "Sports Bra"),
        34.0,
        0.4,
        ("Prana Lab", "Stride"),
        0.6,
    ),
)
# fmt: off
_ADJECTIVES = (
    "Classic", "Essential", "Organic Cotton", "Recycled", "Slim", "Relaxed", "Premium", "Everyday",
    "Lightweight", "Merino", "Vintage", "Urban", "Coastal", "Studio", "Heritage", "Pro", "Soft",
)
_COLOURS = (
    "Black", "White", "Navy", "Sand", "Olive", "Terracotta", "Grey", "Ivory", "Sage", "Burgundy",
    "Sky Blue", "Charcoal",
)
# fmt: on


def build_catalogue(rng: random.Random, size: int = 240) -> tuple[Product, ...]:
    """`size` products spread over the categories by weight, with believable names and prices."""
    weights = [c.weight for c in _CATEGORIES]
    products: list[Product] = []
    seen: set[str] = set()
    while len(products) < size:
        category = rng.choices(_CATEGORIES, weights)[0]
        noun = rng.choice(category.nouns)
        name = f"{rng.choice(_ADJECTIVES)} {noun} — {rng.choice(_COLOURS)}"
        if name in seen:
            continue
        seen.add(name)
        number = len(products) + 1
        price = category.median_eur * rng.lognormvariate(0.0, category.sigma)
        # Shops price just under a round number.
        price = max(4.99, round(price) - 0.01) if price > 10 else round(price, 1) - 0.01
        slug = name.lower().replace(" — ", "-").replace(" ", "-").replace("'", "")
        products.append(
            Product(
                product_id=f"prod_{number:04d}",
                sku=f"{category.slug.split('/')[0][:3].upper()}-{number:05d}",
                name=name,
                category=category.name,
                brand=rng.choice(category.brands),
                price_eur=round(price, 2),
                url_path=f"/p/{slug}-{number}",
                opening_stock=int(rng.triangular(0, 400, 60)),
            )
        )
    return tuple(products)


def category_path(category: str) -> str:
    """The shop's URL path of a category page, e.g. `/c/women/dresses`."""
    for c in _CATEGORIES:
        if c.name == category:
            return "/c/" + c.slug
    raise KeyError(category)


CATEGORY_NAMES: tuple[str, ...] = tuple(c.name for c in _CATEGORIES)
