"""Durations as users write them: "90s", "15m", "1h", "7d", "2w" (also "1d12h")."""

from __future__ import annotations

import re

from legato.errors import InvalidInput

_UNITS_MS = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000, "w": 604_800_000}
_PART = re.compile(r"(\d+)(ms|s|m|h|d|w)")
_WHOLE = re.compile(r"(?:\d+(?:ms|s|m|h|d|w))+")


def parse_duration_ms(text: str | int) -> int:
    """Milliseconds in a duration string; an int is taken as seconds."""
    if isinstance(text, bool):
        raise InvalidInput(f"not a duration: {text!r}")
    if isinstance(text, int):
        if text < 0:
            raise InvalidInput(f"a duration cannot be negative: {text}")
        return text * 1000
    cleaned = text.strip().lower().replace(" ", "")
    if not cleaned or len(cleaned) > 32 or not _WHOLE.fullmatch(cleaned):
        raise InvalidInput(f"not a duration: {text!r} (write e.g. 30m, 1h, 7d, 2w)")
    return sum(int(n) * _UNITS_MS[unit] for n, unit in _PART.findall(cleaned))


def format_duration_ms(ms: int) -> str:
    """The shortest exact spelling of a duration: 86400000 -> "1d"."""
    if ms == 0:
        return "0s"
    for unit in ("w", "d", "h", "m", "s"):
        size = _UNITS_MS[unit]
        if ms % size == 0:
            return f"{ms // size}{unit}"
    return f"{ms}ms"
