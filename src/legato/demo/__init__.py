"""The demo: a realistic multi-channel retail dataset and the loader behind `legato demo`.

`dataset` plays the window day by day through one `timeline`: the `people` it plans, the
storefront's visits, carts and checkouts (`web`), orders (`commerce`), stock (`inventory`),
tickets and calls (`support`) and NPS answers (`surveys`), as tracking messages (deterministic
for a seed); `live` adds the moment after the journeys are published; `loader` puts them into a
Legato through its ingestion service. Nothing here is used by Legato's own processing.
"""

from legato.demo.dataset import DemoSpec, estimated_messages, generate

__all__ = ["DemoSpec", "estimated_messages", "generate"]
