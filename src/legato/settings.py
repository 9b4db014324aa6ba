"""Settings: read once from the environment (prefix `LEGATO_`) and CLI flags, then frozen.

Nothing else in Legato reads `os.environ`; the composition root (`legato.app`) passes the
settings it needs to each adapter and service.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, fields, replace
from typing import Any

from legato.errors import InvalidInput

DEFAULT_DATABASE_URL = "sqlite:///legato.db"
#: Bounds of `Settings.pipeline_chunk_size` (events per pipeline transaction).
PIPELINE_CHUNK_BOUNDS = (1, 10_000)


def _parse_bool(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off", ""}:
        return False
    raise ValueError(f"not a boolean: {text!r}")


@dataclass(frozen=True, slots=True)
class Settings:
    """Every tunable of one Legato process."""

    database_url: str = DEFAULT_DATABASE_URL
    host: str = "127.0.0.1"
    port: int = 8000
    # Ingestion limits (bytes). Segment documents 32 KB per message and 500 KB per batch.
    max_message_bytes: int = 32 * 1024
    max_batch_bytes: int = 500 * 1024
    # A gzip body is refused when its compressed or decompressed size passes these caps.
    max_compressed_bytes: int = 500 * 1024
    max_decompressed_bytes: int = 4 * 1024 * 1024
    # Identity: trait keys that identify a person besides anonymousId and userId.
    identity_traits: tuple[str, ...] = ("email", "phone")
    # Default region for phone numbers written without a country code (E.164 normalisation).
    default_phone_region: str = "US"
    # Event log partitions: events of one identity hash to one partition (ordered per profile).
    partitions: int = 8
    # Events the pipeline applies per transaction. Bigger chunks cost less CPU per event when a
    # backlog is drained, but hold SQLite's one write lock longer (ingestion and journeys wait).
    pipeline_chunk_size: int = 500
    # Durability of SQLite commits: FULL survives power loss, NORMAL survives a process crash.
    sqlite_synchronous: str = "FULL"
    # Outbound calls from user-defined webhooks may reach private/loopback addresses only if set.
    allow_private_webhooks: bool = False
    # Run the background workers (pipeline, timers, delivery) inside `legato serve`.
    run_workers: bool = True
    # Delivery: secrets signing tracking, unsubscribe and preference links (each >= 16 bytes;
    # the first signs, all verify). Empty: a secret generated once and kept in the database.
    tracking_secrets: tuple[str, ...] = ()
    # Public URL of this server as recipients reach it (tracking links, unsubscribe, hooks).
    # Empty: http://HOST:PORT.
    public_base_url: str = ""
    # Outbound HTTP calls of channel providers: total and connect timeouts (seconds), and the
    # private networks (CIDRs) they may reach although private addresses are refused.
    outbound_timeout: float = 10.0
    outbound_connect_timeout: float = 5.0
    outbound_allowed_networks: tuple[str, ...] = ()
    # Delivery worker: messages claimed per batch and provider calls in flight at once.
    delivery_batch_size: int = 200
    delivery_concurrency: int = 64
    # Attempts at a message failing with retryable errors before it becomes a dead letter.
    delivery_max_attempts: int = 8
    # How long a worker holds claimed messages (longer than any provider call may take).
    delivery_lease_seconds: int = 300
    log_level: str = "info"
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        low, high = PIPELINE_CHUNK_BOUNDS
        chunk = self.pipeline_chunk_size
        if isinstance(chunk, bool) or not isinstance(chunk, int) or not low <= chunk <= high:
            raise InvalidInput(
                f"LEGATO_PIPELINE_CHUNK_SIZE: events per pipeline transaction, from {low} to "
                f"{high}, not {chunk!r}",
                field="pipeline_chunk_size",
            )

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None, **overrides: Any) -> Settings:
        """Settings from `LEGATO_*` variables, then `overrides` (CLI flags) on top."""
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for f in fields(cls):
            if f.name == "extra":
                continue
            raw = env.get("LEGATO_" + f.name.upper())
            if raw is None:
                continue
            values[f.name] = _coerce(f.name, f.type, raw)
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)

    def with_(self, **changes: Any) -> Settings:
        """A copy with some fields changed."""
        return replace(self, **changes)

    @property
    def is_sqlite(self) -> bool:
        """True when state lives in an embedded SQLite file."""
        return self.database_url.startswith("sqlite")


def _coerce(name: str, type_name: Any, raw: str) -> Any:
    kind = str(type_name)
    try:
        if kind == "int":
            return int(raw)
        if kind == "float":
            return float(raw)
        if kind == "bool":
            return _parse_bool(raw)
        if kind.startswith("tuple"):
            return tuple(part.strip() for part in raw.split(",") if part.strip())
    except ValueError as exc:
        raise InvalidInput(f"LEGATO_{name.upper()}: {exc}", field=name) from exc
    return raw
