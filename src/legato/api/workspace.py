"""Admin API: the calling workspace and its API keys."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Request
from pydantic import BaseModel, Field

from legato.api.auth import Admin, Viewer
from legato.app import Legato

router = APIRouter(prefix="/api/v1", tags=["workspace"])


class NewKey(BaseModel):
    """A key to create."""

    kind: Literal["write", "admin"]
    role: Literal["admin", "viewer"] | None = None
    label: str = Field(default="", max_length=200)


def _legato(request: Request) -> Legato:
    legato: Legato = request.app.state.legato
    return legato


@router.get("/workspace")
async def get_workspace(request: Request, key: Viewer) -> dict[str, Any]:
    """The workspace the key belongs to."""
    ws = await _legato(request).workspaces.get(key.workspace_id)
    return {"id": ws.id, "name": ws.name, "created_ms": ws.created_ms, "role": key.role}


@router.get("/keys")
async def list_keys(request: Request, key: Admin) -> dict[str, Any]:
    """The workspace's keys (never their secrets)."""
    return {"keys": await _legato(request).workspaces.list_keys(key.workspace_id)}


@router.post("/keys", status_code=201)
async def create_key(request: Request, body: NewKey, key: Admin) -> dict[str, Any]:
    """A new key; its secret is shown in this answer only."""
    legato = _legato(request)
    role = body.role or ("admin" if body.kind == "admin" else None)
    key_id, secret = await legato.workspaces.create_key(
        key.workspace_id, body.kind, role, body.label or f"{body.kind} key", legato.clock.now_ms()
    )
    return {"id": key_id, "kind": body.kind, "role": role, "key": secret}


@router.delete("/keys/{key_id}", status_code=204)
async def revoke_key(request: Request, key_id: str, key: Admin) -> None:
    """Revoke a key."""
    legato = _legato(request)
    await legato.workspaces.revoke_key(key.workspace_id, key_id, legato.clock.now_ms())
    legato.keys.forget(key_id)
