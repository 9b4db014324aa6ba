"""Workspaces and keys on SQLite and PostgreSQL, through the store and the admin API."""

from __future__ import annotations

import httpx
import pytest
import sqlalchemy as sa

from legato.api import create_api
from legato.app import Legato
from legato.errors import Conflict, InvalidInput
from legato.settings import Settings
from legato.store.tables import api_keys


@pytest.fixture
async def legato(db_url: str):
    app = Legato(Settings(database_url=db_url, run_workers=False))
    app.migrate()
    yield app
    await app.db.dispose()


async def test_keys_are_stored_hashed_and_resolve(legato: Legato) -> None:
    created = await legato.workspaces.create("shop", 1)
    async with legato.db.connect() as conn:
        stored = (await conn.execute(sa.select(api_keys.c.key_hash))).scalars().all()
    assert created.write_key not in stored and created.admin_key not in stored
    write = await legato.keys.resolve(created.write_key)
    admin = await legato.keys.resolve(created.admin_key)
    assert (
        write is not None and write.kind == "write" and write.workspace_id == created.workspace.id
    )
    assert admin is not None and admin.kind == "admin" and admin.role == "admin"
    # One character changed (never to itself: a key may already end in "0").
    tampered = created.write_key[:-1] + ("1" if created.write_key.endswith("0") else "0")
    assert await legato.keys.resolve(tampered) is None
    assert await legato.keys.resolve("") is None


@pytest.mark.parametrize("name, error", [("", InvalidInput), ("x" * 201, InvalidInput)])
async def test_bad_workspace_names(legato: Legato, name: str, error: type[Exception]) -> None:
    with pytest.raises(error):
        await legato.workspaces.create(name, 1)


async def test_duplicate_workspace_is_a_conflict(legato: Legato) -> None:
    await legato.workspaces.create("shop", 1)
    with pytest.raises(Conflict):
        await legato.workspaces.create("shop", 2)


async def test_admin_api_checks_roles_and_revocation(legato: Legato) -> None:
    created = await legato.workspaces.create("shop", 1)
    api = create_api(legato, manage_lifecycle=False)
    transport = httpx.ASGITransport(app=api)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        assert (await client.get("/api/v1/keys")).status_code == 401
        bad = await client.get("/api/v1/keys", headers={"Authorization": "Bearer ak_nope"})
        assert bad.status_code == 401 and "unknown" in bad.json()["message"]
        as_writer = {"Authorization": f"Bearer {created.write_key}"}
        assert (await client.get("/api/v1/keys", headers=as_writer)).status_code == 401
        admin = {"Authorization": f"Bearer {created.admin_key}"}
        made = await client.post(
            "/api/v1/keys", json={"kind": "admin", "role": "viewer"}, headers=admin
        )
        assert made.status_code == 201
        viewer = {"Authorization": f"Bearer {made.json()['key']}"}
        assert (await client.get("/api/v1/workspace", headers=viewer)).json()["role"] == "viewer"
        refused = await client.post("/api/v1/keys", json={"kind": "write"}, headers=viewer)
        assert refused.status_code == 403
        invalid = await client.post("/api/v1/keys", json={"kind": "root"}, headers=admin)
        assert invalid.status_code == 422 and invalid.json()["path"] == "$.kind"
        gone = await client.delete(f"/api/v1/keys/{made.json()['id']}", headers=admin)
        assert gone.status_code == 204
        assert (await client.get("/api/v1/workspace", headers=viewer)).status_code == 401
