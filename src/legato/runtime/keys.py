"""Resolving presented API keys to what they grant, with a short cache on the hot path."""

from __future__ import annotations

import time
from collections import OrderedDict

from legato.store.workspaces import KeyInfo, WorkspaceStore

CACHE_SECONDS = 30.0
CACHE_SIZE = 10_000


class KeyResolver:
    """Looks keys up once per `CACHE_SECONDS`; revocations on this process apply at once."""

    def __init__(self, store: WorkspaceStore):
        self.store = store
        self._cache: OrderedDict[str, tuple[float, KeyInfo]] = OrderedDict()

    async def resolve(self, key: str) -> KeyInfo | None:
        """What the key grants, or None when it is unknown or revoked."""
        if not key or len(key) > 200:
            return None
        hit = self._cache.get(key)
        now = time.monotonic()
        if hit is not None and hit[0] > now:
            return hit[1]
        info = await self.store.find_key(key)
        if info is None:
            self._cache.pop(key, None)
            return None
        self._cache[key] = (now + CACHE_SECONDS, info)
        self._cache.move_to_end(key)
        while len(self._cache) > CACHE_SIZE:
            self._cache.popitem(last=False)
        return info

    def forget(self, key_id: str) -> None:
        """Drop a revoked key from the cache."""
        for cached, (_, info) in list(self._cache.items()):
            if info.key_id == key_id:
                del self._cache[cached]
