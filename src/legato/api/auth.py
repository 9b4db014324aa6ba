"""Who is calling: write keys for ingestion, admin keys with a role for the admin API."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import Depends, Request

from legato.errors import Forbidden, Unauthorized
from legato.runtime.keys import KeyResolver
from legato.store.workspaces import KeyInfo

#: Roles in increasing power; a route names the least it needs.
ROLE_ORDER = {"viewer": 0, "admin": 1}


def key_resolver(request: Request) -> KeyResolver:
    """The process's key resolver, put on app.state by the composition root."""
    resolver: KeyResolver = request.app.state.legato.keys
    return resolver


def require_role(role: str) -> Callable[..., Awaitable[KeyInfo]]:
    """A dependency admitting admin keys whose role is at least `role`."""
    needed = ROLE_ORDER[role]

    async def dependency(
        request: Request, resolver: Annotated[KeyResolver, Depends(key_resolver)]
    ) -> KeyInfo:
        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Unauthorized("send an admin key as `Authorization: Bearer <key>`")
        info = await resolver.resolve(token.strip())
        if info is None or info.kind != "admin":
            raise Unauthorized("unknown or revoked admin key")
        if ROLE_ORDER.get(info.role or "", -1) < needed:
            raise Forbidden(f"this key's role {info.role!r} cannot do this; it needs {role!r}")
        return info

    return dependency


#: Route parameters: `key: Viewer` for reads, `key: Admin` for changes.
Viewer = Annotated[KeyInfo, Depends(require_role("viewer"))]
Admin = Annotated[KeyInfo, Depends(require_role("admin"))]
