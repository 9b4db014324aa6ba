"""Workspaces and their API keys. Keys are stored as SHA-256 hashes, never in clear."""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from legato.errors import Conflict, InvalidInput, NotFound
from legato.ids import new_id, new_secret
from legato.store.database import Database
from legato.store.tables import api_keys, workspaces

WRITE_KEY_PREFIX = "wk_"
ADMIN_KEY_PREFIX = "ak_"
ROLES = ("admin", "viewer")


def hash_key(key: str) -> str:
    """The stored form of a key."""
    return hashlib.sha256(key.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class Workspace:
    """A tenant: its own keys, profiles, events, segments and journeys."""

    id: str
    name: str
    created_ms: int
    settings: dict[str, Any]


@dataclass(frozen=True, slots=True)
class KeyInfo:
    """What a presented key grants."""

    key_id: str
    workspace_id: str
    kind: str  # "write" | "admin"
    role: str | None  # for admin keys: "admin" | "viewer"
    key_hash: str


@dataclass(frozen=True, slots=True)
class CreatedWorkspace:
    """A new workspace with its first keys, in clear: shown once, never stored."""

    workspace: Workspace
    write_key: str
    admin_key: str


class WorkspaceStore:
    """Creates workspaces and keys, and resolves presented keys."""

    def __init__(self, db: Database):
        self.db = db

    async def create(self, name: str, now_ms: int) -> CreatedWorkspace:
        """A workspace with one write key and one admin key (role admin)."""
        name = name.strip()
        if not name or len(name) > 200:
            raise InvalidInput("a workspace name must have 1 to 200 characters", field="name")
        ws = Workspace(id=new_id(), name=name, created_ms=now_ms, settings={})
        write_key = new_secret(WRITE_KEY_PREFIX)
        admin_key = new_secret(ADMIN_KEY_PREFIX)
        async with self.db.transaction() as conn:
            exists = await conn.scalar(sa.select(workspaces.c.id).where(workspaces.c.name == name))
            if exists is not None:
                raise Conflict(f"a workspace named {name!r} exists already", field="name")
            await conn.execute(
                workspaces.insert().values(
                    id=ws.id, name=ws.name, settings=ws.settings, created_ms=now_ms
                )
            )
            await conn.execute(
                api_keys.insert(),
                [
                    _key_row(ws.id, "write", None, write_key, "default write key", now_ms),
                    _key_row(ws.id, "admin", "admin", admin_key, "default admin key", now_ms),
                ],
            )
        return CreatedWorkspace(ws, write_key, admin_key)

    async def create_key(
        self, workspace_id: str, kind: str, role: str | None, label: str, now_ms: int
    ) -> tuple[str, str]:
        """A new key for a workspace: returns (key id, key in clear)."""
        if kind not in {"write", "admin"}:
            raise InvalidInput(f"key kind must be write or admin, not {kind!r}", field="kind")
        if kind == "admin" and role not in ROLES:
            raise InvalidInput(f"an admin key's role must be one of {ROLES}", field="role")
        key = new_secret(WRITE_KEY_PREFIX if kind == "write" else ADMIN_KEY_PREFIX)
        row = _key_row(workspace_id, kind, role if kind == "admin" else None, key, label, now_ms)
        async with self.db.transaction() as conn:
            await conn.execute(api_keys.insert().values(**row))
        return row["id"], key

    async def revoke_key(self, workspace_id: str, key_id: str, now_ms: int) -> None:
        """Revoke a key: at once on this process, within the key cache TTL on others."""
        async with self.db.transaction() as conn:
            result = await conn.execute(
                api_keys.update()
                .where(api_keys.c.id == key_id, api_keys.c.workspace_id == workspace_id)
                .values(revoked_ms=now_ms)
            )
        if result.rowcount == 0:
            raise NotFound(f"no key {key_id!r} in this workspace")

    async def list_keys(self, workspace_id: str) -> list[dict[str, Any]]:
        """The workspace's keys, without their secrets."""
        async with self.db.connect() as conn:
            rows = await conn.execute(
                sa.select(
                    api_keys.c.id,
                    api_keys.c.kind,
                    api_keys.c.role,
                    api_keys.c.label,
                    api_keys.c.created_ms,
                    api_keys.c.revoked_ms,
                )
                .where(api_keys.c.workspace_id == workspace_id)
                .order_by(api_keys.c.id)
            )
            return [dict(r._mapping) for r in rows]

    async def find_key(self, key: str) -> KeyInfo | None:
        """What an unrevoked key grants, or None. Compared in constant time."""
        digest = hash_key(key)
        async with self.db.connect() as conn:
            row = (
                await conn.execute(
                    sa.select(
                        api_keys.c.id,
                        api_keys.c.workspace_id,
                        api_keys.c.kind,
                        api_keys.c.role,
                        api_keys.c.key_hash,
                    ).where(api_keys.c.key_hash == digest, api_keys.c.revoked_ms.is_(None))
                )
            ).first()
        # The index lookup is on a hash of a 192-bit secret, which leaks nothing useful by
        # timing; compare_digest keeps the final equality constant-time all the same.
        if row is None or not hmac.compare_digest(row.key_hash, digest):
            return None
        return KeyInfo(row.id, row.workspace_id, row.kind, row.role, row.key_hash)

    async def get(self, ref: str) -> Workspace:
        """A workspace by id or by name."""
        async with self.db.connect() as conn:
            row = (
                await conn.execute(
                    sa.select(workspaces).where(
                        sa.or_(workspaces.c.id == ref, workspaces.c.name == ref)
                    )
                )
            ).first()
        if row is None:
            raise NotFound(f"no workspace {ref!r}")
        return Workspace(row.id, row.name, row.created_ms, row.settings)

    async def list(self) -> list[Workspace]:
        """Every workspace, oldest first."""
        async with self.db.connect() as conn:
            rows = await conn.execute(sa.select(workspaces).order_by(workspaces.c.id))
            return [Workspace(r.id, r.name, r.created_ms, r.settings) for r in rows]


def _key_row(
    workspace_id: str, kind: str, role: str | None, key: str, label: str, now_ms: int
) -> dict[str, Any]:
    return {
        "id": new_id(),
        "workspace_id": workspace_id,
        "kind": kind,
        "role": role,
        "key_hash": hash_key(key),
        "label": label,
        "created_ms": now_ms,
        "revoked_ms": None,
    }
