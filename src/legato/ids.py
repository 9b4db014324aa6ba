"""Time-ordered identifiers.

Random UUIDs scatter index inserts (10x slower on SQLite); these ids sort by creation time,
like UUIDv7 (RFC 9562): 48 bits of milliseconds, then 74 random bits. Strings of 26 Crockford
base32 characters, so they sort the same as text and as numbers.
"""

from __future__ import annotations

import os
import threading
import time

_ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz"
_lock = threading.Lock()
_last_ms = 0
_last_rand = 0


def new_id() -> str:
    """A new id, strictly greater than every id this process made before."""
    global _last_ms, _last_rand
    with _lock:
        ms = time.time_ns() // 1_000_000
        if ms <= _last_ms:
            ms = _last_ms
            rand = _last_rand + 1
        else:
            rand = int.from_bytes(os.urandom(10), "big") >> 2  # 78 bits, room to increment
        _last_ms, _last_rand = ms, rand
    value = (ms << 80) | (rand & ((1 << 80) - 1))
    out = []
    for _ in range(26):
        out.append(_ALPHABET[value & 31])
        value >>= 5
    return "".join(reversed(out))


def new_secret(prefix: str, nbytes: int = 24) -> str:
    """A random credential such as an API key: `prefix` + url-safe random text."""
    return prefix + os.urandom(nbytes).hex()
