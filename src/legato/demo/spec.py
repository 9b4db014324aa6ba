"""What the demo dataset is made of: its size and window (`DemoSpec`), and the names and
thresholds that its generator, the live moment and the demo's audience share.

Values only: no I/O, no clock, no randomness.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from legato.errors import InvalidInput

Message = dict[str, Any]

DAY_MS = 86_400_000
HOUR_MS = 3_600_000
MINUTE_MS = 60_000

#: A customer with no activity in this many days before `now` is lapsed.
LAPSED_AFTER_DAYS = 45
#: A customer with at least this many orders in the window is a VIP.
VIP_MIN_ORDERS = 5
#: Anonymous visitors who never sign up, per customer.
VISITORS_PER_CUSTOMER = 0.5
MAX_CUSTOMERS = 1_000_000
MAX_DAYS = 3650


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
