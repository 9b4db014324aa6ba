"""The demo: a realistic multi-channel retail dataset and the loader behind `legato demo`.

`dataset` invents customers, visits, carts, orders, stock, tickets, calls and NPS answers as
tracking messages (deterministic for a seed); `loader` puts them into a Legato through its
ingestion service. Nothing here is used by Legato's own processing.
"""

from legato.demo.dataset import DemoSpec, estimated_messages, generate

__all__ = ["DemoSpec", "estimated_messages", "generate"]
