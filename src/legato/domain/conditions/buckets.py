"""Random buckets without `random`: a profile's bucket is a hash of (seed, profile id).

The hash is simple enough for SQL to compute too (`legato.store.conditions_sql`): a polynomial
hash mod the Mersenne prime 2**31-1 over the seed then the first 26 characters of the profile
id (code points; a shorter id counts as padded with zeros), then a non-linear finaliser (two
xor-shift-multiply rounds, 32-bit) so that different seeds split independently, then mod 10000.
Every intermediate fits in a signed 64-bit integer; xor is (a | b) - (a & b) for SQLite.
"""

from __future__ import annotations

MODULUS = 2**31 - 1
BASE = 31
#: Multiplier of the finaliser's rounds (below 2**27, so a 32-bit value times it fits 2**59).
MIX = 0x45D9F3B
MASK = 0xFFFFFFFF
#: Buckets are hundredths of a percent.
BUCKETS = 10_000
#: Characters of the profile id the hash reads (profile ids are 26 characters).
ID_CHARS = 26
#: Weight of each id position: BASE ** (ID_CHARS - 1 - position) mod MODULUS.
WEIGHTS = tuple(pow(BASE, ID_CHARS - 1 - position, MODULUS) for position in range(ID_CHARS))


def seed_offset(seed: str) -> int:
    """The seed's share of the hash: its polynomial hash shifted past the id's positions."""
    value = 0
    for char in seed:
        value = (value * BASE + ord(char)) % MODULUS
    return value * pow(BASE, ID_CHARS, MODULUS) % MODULUS


def mix_round(value: int) -> int:
    """One finaliser round: xor-shift then multiply, kept to 32 bits."""
    return (((value >> 16) ^ value) * MIX) & MASK


def mix(raw: int) -> int:
    """The bucket (0..BUCKETS-1) of an unreduced hash sum."""
    value = mix_round(mix_round(raw % MODULUS))
    return ((value >> 16) ^ value) % BUCKETS


def bucket_of(offset: int, profile_id: str) -> int:
    """The bucket of a profile for a seed's `seed_offset`."""
    raw = offset
    for char, weight in zip(profile_id[:ID_CHARS], WEIGHTS, strict=False):
        raw += ord(char) * weight
    return mix(raw)
